//! Errors of the backup library, each able to say what the user can do about it.
//!
//! One enum for the whole crate: callers (the server, the CLI, `archive_command`) branch
//! on a few kinds only ([`BackupError::is_not_found`], [`BackupError::is_retryable`]), and
//! every message names the object it is about.

use std::path::PathBuf;

/// What went wrong in a backup, restore, archive or repository operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    /// The repository configuration cannot be used.
    #[error("invalid repository configuration: {0}")]
    Config(String),
    /// The repository (local directory or S3 endpoint) failed an operation.
    #[error("repository error on {object}: {message}")]
    Repository { object: String, message: String },
    /// The object does not exist in the repository.
    #[error("{object} is not in the repository")]
    NotFound { object: String },
    /// A WAL file of that name is already archived with other content: PostgreSQL must
    /// not be told it is archived, and an operator must look at why.
    #[error(
        "WAL file {name} is already archived with different content (stored sha256 {stored}, new sha256 {new})"
    )]
    WalConflict {
        name: String,
        stored: String,
        new: String,
    },
    /// A stored object does not match its checksum, or cannot be decoded.
    #[error("{object} is corrupt: {reason}")]
    Corrupt { object: String, reason: String },
    /// A repository key file cannot be used (missing, unreadable, readable by others,
    /// not a key).
    #[error("repository key file {path}: {reason}")]
    KeyFile { path: PathBuf, reason: String },
    /// The repository (or one object of it) was written with another key or cipher,
    /// or without encryption, than the region is configured with.
    #[error("{object}: {reason}")]
    KeyMismatch { object: String, reason: String },
    /// A name that is not a WAL segment, history or backup history file.
    #[error("'{0}' is not a WAL file name")]
    BadWalName(String),
    /// A backup with that id has no manifest in the repository.
    #[error("backup {0} does not exist (it has no manifest)")]
    NoSuchBackup(String),
    /// The data directory holds something the backup cannot copy faithfully.
    #[error("cannot back up {path}: {reason}")]
    Unsupported { path: PathBuf, reason: String },
    /// PostgreSQL refused a statement of the backup protocol.
    #[error("{context}: {message}")]
    Sql { context: String, message: String },
    /// Driving the cluster failed.
    #[error(transparent)]
    Postgres(#[from] lifeboat_postgres::PgError),
    /// The repository entry of an instance is written by another Lifeboat server.
    #[error(
        "the backups of {instance} in the repository are written by the Lifeboat server {owner}, not by this one ({this})"
    )]
    NotOwner {
        instance: String,
        owner: String,
        this: String,
    },
    /// A program such as pg_waldump failed.
    #[error("{program} failed: {message}")]
    Command { program: String, message: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl BackupError {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| Self::Io { context, source }
    }

    pub(crate) fn sql(context: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> Self {
        let context = context.into();
        move |e| Self::Sql {
            context,
            message: lifeboat_postgres::describe(&e),
        }
    }

    pub(crate) fn corrupt(object: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Corrupt {
            object: object.into(),
            reason: reason.into(),
        }
    }

    /// Maps an object store error; `NotFound` keeps its own kind so callers can tell
    /// "missing" from "broken".
    pub(crate) fn store(object: &str, e: object_store::Error) -> Self {
        match e {
            object_store::Error::NotFound { .. } => Self::NotFound {
                object: object.to_string(),
            },
            other => Self::Repository {
                object: object.to_string(),
                message: other.to_string(),
            },
        }
    }

    /// True when the object is simply absent (restore_command must then exit 1 quietly).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }

    /// True when trying again later may succeed (repository unreachable, disk full...).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Repository { .. } | Self::Io { .. })
    }

    /// What the user can do next.
    pub fn hint(&self) -> String {
        match self {
            Self::Config(_) => "fix the region's repository settings in the configuration file".into(),
            Self::Repository { .. } => "check that the repository is reachable and has free space; PostgreSQL retries archiving and keeps its WAL meanwhile".into(),
            Self::NotFound { .. } => "the repository does not hold it; run `lifeboat backup verify ID` to see what is missing".into(),
            Self::WalConflict { .. } => "two clusters may be archiving into the same instance prefix (a restored copy with archive_mode on?); stop the other one and keep the stored file".into(),
            Self::Corrupt { .. } => "the stored copy is damaged; run `lifeboat backup verify ID`, take a new base backup, and restore from another backup".into(),
            Self::KeyFile { path, .. } => format!(
                "for a new repository make a key with `{}`; for an existing one put back the key it was written with (its backups cannot be read without it). Keep a copy of the key away from this host",
                crate::encryption::key_file::make_key_command(path)
            ),
            Self::KeyMismatch { .. } => "give the region the repository_cipher and repository_key_file the repository was written with (its lifeboat-encryption.json names the cipher; without the key its backups cannot be read), or point the region at another repository".into(),
            Self::BadWalName(_) => "archive_command must pass %p, restore_command %f and %p".into(),
            Self::NoSuchBackup(_) => "run `lifeboat backup list ID` to see the complete backups".into(),
            Self::Unsupported { .. } => "move tablespaces into the default tablespace before backing up".into(),
            Self::Sql { .. } | Self::Postgres(_) => "check that the instance is running; its postgres.log says more".into(),
            Self::NotOwner { instance, .. } => format!(
                "two servers never write one instance's backups: restore from them with `lifeboat instance clone {instance} --at TIME --name NAME`, which makes a new master with backups of its own"
            ),
            Self::Command { .. } => "check that PostgreSQL's binaries are installed".into(),
            Self::Io { source, .. } if source.raw_os_error() == Some(libc::ENOSPC) => {
                "the disk holding the path named above is full: free space on it (or move the region's data_root to a larger disk) and try again".into()
            }
            Self::Io { .. } => "check free space and permissions of the path named above".into(),
        }
    }
}

impl From<lifeboat_domain::InvalidInput> for BackupError {
    fn from(e: lifeboat_domain::InvalidInput) -> Self {
        Self::Config(format!("{}; {}", e.message, e.hint))
    }
}
