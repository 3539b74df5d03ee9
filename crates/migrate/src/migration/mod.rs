//! Migration tasks: copy chosen databases, schemas or tables, optionally renamed, from
//! a source instance (usually a temporary instance restored to a point in time) into a
//! target instance (usually its master) while the target stays online.
//!
//! The server owns the task's state machine and credentials; this module does the
//! work, given a [`MigrationTask`] (a [`MigrationSpec`] plus a connection config for
//! each instance):
//!
//! 1. [`ObjectMapping::parse`] reads each `--object SRC[=DST]`.
//! 2. [`precheck`] returns [`PrecheckItem`]s (passed / warning / failed, with detail and
//!    advice); the server adds its whitelist item ([`PrecheckItem::whitelist`]).
//! 3. [`run`] migrates, reporting [`ProgressEvent`]s; the caller persists the keys of
//!    finished tables and passes them back after a restart. Cancel with the token.
//!    [`spawn`] does the same on a thread of its own (the faster way to run it).
//! 4. The [`MigrationReport`] holds each table's outcome (with the names of kept
//!    tables), the foreign keys added, the other objects created or kept
//!    ([`ObjectOutcome`]) and the verification.
//!
//! # Guarantees
//! - Each table is written in one target transaction, committed together with its
//!   entry in the target's journal (`lifeboat_migration.journal`): after a crash or
//!   cancel it is fully migrated or as it was, and a resumed run knows which.
//! - Existing target rows change only under `overwrite` and `repair` (saved first into
//!   a new table) and `replace` (the old table is kept under a new name).
//! - Every identifier is quoted; names are never interpolated unquoted.
//!
//! # Layout
//! - [`spec`]: the task description; [`names`]: parsing, quoting, derived names.
//! - `mapping`: objects to table pairs; `catalog`: source table definitions;
//!   `partition`: the trees of partitioned tables, migrated whole;
//!   `target`: what exists in the target and what the task will do to each table.
//! - `precheck`: the pre-check items.
//! - `run`: orchestration and foreign keys; `apply`: one table, atomically;
//!   `repair`: the rows that differ, found by the diff engine;
//!   `ddl`: statements; `copy`: the COPY stream; `journal`: finished tables;
//!   `types`: the user-defined types the tables use, created where missing;
//!   `objects`: functions, views, triggers, rules, policies, grants and extensions,
//!   created after the tables.
//! - `verify`: comparison with the source after the copy; [`report`]: results.

mod apply;
mod catalog;
mod conn;
mod copy;
mod ddl;
mod error;
mod journal;
mod mapping;
pub mod names;
mod objects;
mod partition;
mod precheck;
mod repair;
pub mod report;
mod run;
pub mod spec;
mod target;
mod types;
mod verify;

pub use error::{MigrationError, Side};
pub use journal::{JOURNAL_SCHEMA, forget};
pub use mapping::{QualifiedTable, TableKey, TableMapping};
pub use objects::{ObjectKind, ObjectOutcome};
pub use precheck::{PrecheckContext, PrecheckItem, PrecheckStatus, precheck, precheck_passed};
pub use report::{
    CommitCheck, Expectation, ForeignKeyOutcome, MigrationReport, PartitionOutcome, PlannedTable,
    ProgressEvent, TableOutcome, TableVerification,
};
pub use run::{run, spawn};
pub use spec::{ConflictMode, MigrationSpec, MigrationTask, MigrationTypes, ObjectMapping};
pub use target::TableAction;
pub use tokio_util::sync::CancellationToken;

/// The tables `task` selects, with their target names, read from the source catalog
/// (for showing the task before it runs). Objects that name nothing are an error.
pub async fn resolve(task: &MigrationTask) -> Result<Vec<TableMapping>, MigrationError> {
    let (resolution, mut errors) = mapping::resolve_all(&task.source, &task.spec.objects).await;
    if !errors.is_empty() {
        return Err(errors.remove(0));
    }
    if let Some(e) = partition::lone_error(&resolution) {
        return Err(e);
    }
    if !resolution.missing.is_empty() {
        return Err(MigrationError::Mapping(format!(
            "{} not found on the source",
            resolution.missing.join(", ")
        )));
    }
    Ok(resolution.tables.into_iter().map(|t| t.mapping).collect())
}
