//! Lifeboat's vocabulary, shared by every other crate.
//!
//! This crate holds the words of `DESIGN.md` as types: instance ids, instance kinds and
//! states, account and instance names, whitelist entries. It does no I/O, so every rule
//! here (what a valid name is, which CIDR is accepted) is checked the same way by the
//! server, the CLI and the console.
//!
//! # Layout
//! - [`id`]: instance ids such as `pg-3kq9x2`.
//! - [`names`]: instance and account name rules.
//! - [`instance`]: kinds, statuses and network types of instances.
//! - [`whitelist`]: CIDR entries rendered into `pg_hba.conf`.
//! - [`target`]: recovery targets and how times are read; [`lsn`]: WAL positions.
//! - [`state`]: what a state machine is; its states live beside what they belong to:
//!   [`instance`], [`backup_run`] (base backup attempts), [`temporary`] (the phases of
//!   building a temporary instance), [`task`] (migration tasks and their tables).
//!
//! With the `openapi` feature, the types the API shows derive `utoipa::ToSchema`.

pub mod backup_run;
pub mod id;
pub mod instance;
pub mod lsn;
pub mod names;
pub mod state;
pub mod target;
pub mod task;
pub mod temporary;
pub mod whitelist;

pub use backup_run::{BackupRunState, BackupTrigger};
pub use id::InstanceId;
pub use instance::{InstanceKind, InstanceStatus, NetworkType};
pub use lsn::Lsn;
pub use state::{InvalidTransition, StateMachine};
pub use target::{RestoreTarget, TransactionCommit};
pub use task::{TableState, TaskState};
pub use temporary::{TemporaryPhase, TemporaryProgress};
pub use whitelist::WhitelistEntry;

/// A value given by a user that Lifeboat refuses, with what to do instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct InvalidInput {
    /// What was wrong, naming the offending value.
    pub message: String,
    /// What the user can do about it.
    pub hint: String,
}

impl InvalidInput {
    pub fn new(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            hint: hint.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The text the store keeps and the text serde (and the API) writes are one.
    fn same_texts<T: serde::Serialize + Copy>(all: &[T], text: impl Fn(T) -> &'static str) {
        for v in all {
            let json = serde_json::to_string(v).unwrap();
            assert_eq!(json, format!("\"{}\"", text(*v)));
        }
    }

    #[test]
    fn stored_and_serialized_texts_agree() {
        same_texts(InstanceKind::ALL, InstanceKind::as_str);
        same_texts(InstanceStatus::ALL, InstanceStatus::as_str);
        same_texts(NetworkType::ALL, NetworkType::as_str);
        same_texts(BackupTrigger::ALL, BackupTrigger::as_str);
        same_texts(BackupRunState::ALL, BackupRunState::as_str);
        same_texts(TaskState::ALL, TaskState::as_str);
        same_texts(TableState::ALL, TableState::as_str);
        same_texts(TemporaryPhase::ALL, TemporaryPhase::as_str);
        same_texts(task::PrecheckStatus::ALL, task::PrecheckStatus::as_str);
    }
}
