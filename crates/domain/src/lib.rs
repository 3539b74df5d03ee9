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
//! - [`target`]: recovery targets and how times are read.

pub mod id;
pub mod instance;
pub mod names;
pub mod target;
pub mod whitelist;

pub use id::InstanceId;
pub use instance::{InstanceKind, InstanceStatus, NetworkType};
pub use target::RestoreTarget;
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
