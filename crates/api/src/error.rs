//! The body of every error answer, and the one list of its codes.
//!
//! A code says what kind of failure it is, for programs; the message says what failed
//! and on which object, and the hint what to do next, for people. The server maps each
//! code to one HTTP status, in one place (`lifeboat_server::http::error`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Every error code the API answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    // The request itself.
    /// A value in the request is invalid; the message names it.
    InvalidArgument,
    /// A recovery target outside the master's restorable window.
    OutsideWindow,
    /// No or a wrong API token.
    Unauthorized,
    /// The account given for an instance may not read what was asked.
    PermissionDenied,
    /// An instance refused the account or password given for it.
    AuthenticationFailed,
    /// No such instance, task, table or route.
    NotFound,
    /// The route does not take that method.
    MethodNotAllowed,

    // Conflicts with what exists.
    /// An instance or task with that name exists.
    DuplicateName,
    /// The account or entry exists already.
    AlreadyExists,
    /// The object is in a state that does not allow the operation.
    InvalidState,
    /// The instance is not running.
    InstanceNotRunning,
    /// The instance is still being created.
    InstanceBusy,
    /// The master has a temporary instance, which must be deleted first.
    HasTemporaryInstance,
    /// The master already has its one temporary instance.
    TemporaryInstanceExists,
    /// The instance is part of a running migration task.
    MigrationRunning,
    /// A base backup of the instance is running.
    BackupRunning,
    /// No complete base backup covers what was asked.
    NoBackup,
    /// The instance's data directory is gone.
    DataMissing,
    /// Another process listens on the instance's port.
    PortInUse,
    /// Every port of the region is taken.
    PortRangeExhausted,
    /// A migration task starts only after its pre-check passed.
    PrecheckRequired,
    /// The task changed since its pre-check passed.
    PrecheckStale,
    /// The archived WAL ends before the recovery target.
    RecoveryShortOfTarget,
    /// The instance's backups in the repository are written by another server.
    NotOwner,
    /// The instance is adopted: its cluster runs outside Lifeboat, which does not
    /// start, stop or configure it.
    ManagedExternally,
    /// A cluster failed its adoption check; the message names the failed items.
    AdoptionCheckFailed,

    // The machine or the instances.
    /// PostgreSQL's server binaries are not installed.
    PostgresBinariesMissing,
    /// The OS user clusters run as does not exist.
    OsUserMissing,
    /// The data directory cannot be used by the clusters' OS user.
    DataDirUnusable,
    /// Lifeboat's own connection to the instance failed.
    InstanceUnreachable,
    /// A connection with the given account failed.
    ConnectionFailed,
    /// A query on an instance failed.
    QueryFailed,
    /// A diff could not be completed.
    DiffFailed,
    /// A PostgreSQL program failed.
    PostgresFailed,
    /// Reading or writing the backup repository failed.
    BackupFailed,
    /// A base backup did not finish in time.
    BackupTimeout,
    /// The master's newest WAL did not reach the repository in time.
    WalNotArchived,
    /// PostgreSQL stopped while recovering a temporary instance.
    RecoveryFailed,
    /// A bug, or a problem of the machine; the server log says more.
    Internal,
}

impl ErrorCode {
    /// The code as it appears in answers, e.g. `not_found`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidArgument => "invalid_argument",
            Self::OutsideWindow => "outside_window",
            Self::Unauthorized => "unauthorized",
            Self::PermissionDenied => "permission_denied",
            Self::AuthenticationFailed => "authentication_failed",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::DuplicateName => "duplicate_name",
            Self::AlreadyExists => "already_exists",
            Self::InvalidState => "invalid_state",
            Self::InstanceNotRunning => "instance_not_running",
            Self::InstanceBusy => "instance_busy",
            Self::HasTemporaryInstance => "has_temporary_instance",
            Self::TemporaryInstanceExists => "temporary_instance_exists",
            Self::MigrationRunning => "migration_running",
            Self::BackupRunning => "backup_running",
            Self::NoBackup => "no_backup",
            Self::DataMissing => "data_missing",
            Self::PortInUse => "port_in_use",
            Self::PortRangeExhausted => "port_range_exhausted",
            Self::PrecheckRequired => "precheck_required",
            Self::PrecheckStale => "precheck_stale",
            Self::RecoveryShortOfTarget => "recovery_short_of_target",
            Self::NotOwner => "not_owner",
            Self::ManagedExternally => "managed_externally",
            Self::AdoptionCheckFailed => "adoption_check_failed",
            Self::PostgresBinariesMissing => "postgres_binaries_missing",
            Self::OsUserMissing => "os_user_missing",
            Self::DataDirUnusable => "data_dir_unusable",
            Self::InstanceUnreachable => "instance_unreachable",
            Self::ConnectionFailed => "connection_failed",
            Self::QueryFailed => "query_failed",
            Self::DiffFailed => "diff_failed",
            Self::PostgresFailed => "postgres_failed",
            Self::BackupFailed => "backup_failed",
            Self::BackupTimeout => "backup_timeout",
            Self::WalNotArchived => "wal_not_archived",
            Self::RecoveryFailed => "recovery_failed",
            Self::Internal => "internal",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The body of every error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// A stable, machine-readable code such as `not_found`.
    pub code: ErrorCode,
    /// What failed, naming the object.
    pub message: String,
    /// What to do next.
    pub hint: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_written_as_their_names() {
        for code in [
            ErrorCode::InvalidArgument,
            ErrorCode::OutsideWindow,
            ErrorCode::RecoveryShortOfTarget,
            ErrorCode::PostgresBinariesMissing,
        ] {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            assert_eq!(serde_json::from_str::<ErrorCode>(&json).unwrap(), code);
        }
    }
}
