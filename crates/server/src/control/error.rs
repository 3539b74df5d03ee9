//! The control plane's one error type: an [`ErrorCode`] (what kind of failure), a
//! message (what failed, naming the object) and a hint (what to do next). It knows no
//! HTTP: `crate::http::error` maps each code to a status, in one place.
//!
//! The libraries' errors become control errors here, each with the code its cause
//! deserves, so callers branch on [`Error::code`] and never on text.

use lifeboat_api::{ErrorBody, ErrorCode};
use lifeboat_backup::BackupError;
use lifeboat_domain::InvalidInput;
use lifeboat_migrate::diff::DiffError;
use lifeboat_migrate::migration::MigrationError;
use lifeboat_postgres::PgError;
use lifeboat_store::StoreError;

/// A failure of the control plane, as a user is told of it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    pub code: ErrorCode,
    /// What failed, naming the object.
    pub message: String,
    /// What to do next.
    pub hint: String,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(code: ErrorCode, message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            hint: hint.into(),
        }
    }

    /// A value the user gave is invalid.
    pub fn invalid(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidArgument, message, hint)
    }

    pub fn not_found(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message, hint)
    }

    /// The operation does not fit the object's state.
    pub fn invalid_state(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidState, message, hint)
    }

    /// A bug or a problem of the machine.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(
            ErrorCode::Internal,
            message,
            "see the server log; this is a bug or a problem with the machine",
        )
    }

    /// Says which object failed in front of the message.
    pub fn on(mut self, object: &str) -> Self {
        self.message = format!("{object}: {}", self.message);
        self
    }

    /// `message; hint: hint`, for a record that keeps why something failed.
    pub fn with_hint(&self) -> String {
        format!("{}; hint: {}", self.message, self.hint)
    }

    /// The error as answers carry it.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            code: self.code,
            message: self.message.clone(),
            hint: self.hint.clone(),
        }
    }
}

impl From<InvalidInput> for Error {
    fn from(e: InvalidInput) -> Self {
        Self::invalid(e.message, e.hint)
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::DuplicateName(name) => Self::new(
                ErrorCode::DuplicateName,
                format!("an instance named '{name}' already exists"),
                "choose another name, or delete the existing instance first",
            ),
            StoreError::Duplicate(what) => Self::new(
                ErrorCode::AlreadyExists,
                format!("{what} already exists"),
                "nothing to do; list them to see what is there",
            ),
            StoreError::NotFound(what) => Self::not_found(
                format!("{what} not found"),
                "run `lifeboat instance list` to see the instances and their ids",
            ),
            StoreError::InvalidTransition(t) => Self::invalid_state(
                t.to_string(),
                "it changed meanwhile; look at its state again and retry",
            ),
            other => Self::internal(other.to_string()),
        }
    }
}

impl From<PgError> for Error {
    fn from(e: PgError) -> Self {
        let hint = e.hint();
        let code = match &e {
            PgError::BinariesMissing { .. } | PgError::MajorNotInstalled { .. } => {
                ErrorCode::PostgresBinariesMissing
            }
            PgError::UnsupportedMajor(_) => ErrorCode::InvalidArgument,
            PgError::NoSuchOsUser(_) => ErrorCode::OsUserMissing,
            PgError::PortInUse { .. } => ErrorCode::PortInUse,
            PgError::NotAccessible { .. } | PgError::SocketPathTooLong(_) => {
                ErrorCode::DataDirUnusable
            }
            PgError::Connect { .. } => ErrorCode::InstanceUnreachable,
            _ => ErrorCode::PostgresFailed,
        };
        Self::new(code, e.to_string(), hint)
    }
}

impl From<BackupError> for Error {
    fn from(e: BackupError) -> Self {
        let hint = e.hint();
        if e.is_not_found() {
            return Self::not_found(e.to_string(), hint);
        }
        if matches!(e, BackupError::NotOwner { .. }) {
            return Self::new(ErrorCode::NotOwner, e.to_string(), hint);
        }
        Self::new(ErrorCode::BackupFailed, e.to_string(), hint)
    }
}

impl From<MigrationError> for Error {
    fn from(e: MigrationError) -> Self {
        Self::invalid(e.to_string(), e.hint())
    }
}

impl From<DiffError> for Error {
    fn from(e: DiffError) -> Self {
        let hint = e.hint();
        let code = match &e {
            DiffError::InvalidRequest(_) => ErrorCode::InvalidArgument,
            DiffError::TableNotFound { .. } => ErrorCode::NotFound,
            DiffError::PermissionDenied { .. } => ErrorCode::PermissionDenied,
            _ => ErrorCode::DiffFailed,
        };
        Self::new(code, e.to_string(), hint)
    }
}

impl From<tokio::task::JoinError> for Error {
    fn from(e: tokio::task::JoinError) -> Self {
        Self::internal(format!("a background task ended abnormally: {e}"))
    }
}
