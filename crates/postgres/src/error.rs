//! Errors of the PostgreSQL driver, each able to say what the user can do about it.

use std::path::PathBuf;

/// What went wrong while driving a cluster.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PgError {
    /// No directory with `initdb`, `pg_ctl` and `postgres` was found.
    #[error("PostgreSQL server binaries not found (looked in {searched})")]
    BinariesMissing { searched: String },
    /// A major version Lifeboat does not run.
    #[error("{0}")]
    UnsupportedMajor(String),
    /// A supported major that is not installed on this host.
    #[error(
        "PostgreSQL {major} is not installed here (installed: {})",
        list(installed)
    )]
    MajorNotInstalled { major: u32, installed: Vec<u32> },
    /// The configured OS user does not exist.
    #[error("OS user '{0}' does not exist")]
    NoSuchOsUser(String),
    /// A PostgreSQL program exited with an error; `output` holds what it printed.
    #[error("{program} failed ({status}): {output}")]
    Command {
        program: String,
        status: String,
        output: String,
    },
    /// Another process listens on the port the cluster needs.
    #[error("port {port} on {address} is already in use by another process")]
    PortInUse { address: String, port: u16 },
    /// Unix socket paths are limited to about 107 bytes by the kernel.
    #[error("the socket path {0} is too long for a Unix socket")]
    SocketPathTooLong(PathBuf),
    /// The OS user cannot reach a directory the cluster needs.
    #[error("OS user '{user}' cannot write to {path}")]
    NotAccessible { user: String, path: PathBuf },
    #[error("cannot connect to the cluster at {socket_dir}: {message}")]
    Connect {
        socket_dir: PathBuf,
        message: String,
        /// The SQLSTATE PostgreSQL answered with, e.g. `3D000` for a database that
        /// does not exist.
        code: Option<String>,
    },
    #[error("{context}: {message}")]
    Sql { context: String, message: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl PgError {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| Self::Io { context, source }
    }

    pub(crate) fn sql(context: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> Self {
        let context = context.into();
        move |e| Self::Sql {
            context,
            message: describe(&e),
        }
    }

    /// What the user can do next.
    pub fn hint(&self) -> String {
        match self {
            Self::BinariesMissing { .. } => "install PostgreSQL's server binaries (Debian: apt-get install -y postgresql; other majors: scripts/install-deps), or set [postgres] bin_dirs in the config".into(),
            Self::UnsupportedMajor(_) => "choose a version from 15 to 18 (instance create --engine-version N)".into(),
            Self::MajorNotInstalled { major, installed } => format!(
                "choose one of {} with --engine-version, or install PostgreSQL {major} (Debian: apt-get install -y postgresql-{major}; or scripts/install-deps) and try again",
                list(installed)
            ),
            Self::NoSuchOsUser(user) => format!("create the OS user (useradd --system {user}) or set [postgres] os_user in the config"),
            Self::Command { .. } => "read the PostgreSQL output above; the instance's postgres.log has more".into(),
            Self::PortInUse { .. } => "stop the other process or choose another port range for the region in the config".into(),
            Self::SocketPathTooLong(_) => "use a shorter data directory path (--data-dir)".into(),
            Self::NotAccessible { .. } => "choose a data directory that the OS user can reach (every parent directory must be traversable, e.g. /var/lib/lifeboat)".into(),
            Self::Connect { .. } => "check that the instance is running (lifeboat instance start ID)".into(),
            Self::Sql { .. } | Self::Io { .. } => "see the server log for details".into(),
        }
    }

    /// True when the error comes from the environment (binaries, user, ports) rather
    /// than from the request, so the API answers 503 instead of 500.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::BinariesMissing { .. } | Self::NoSuchOsUser(_))
    }

    /// The SQLSTATE of a failed connection or statement, when PostgreSQL sent one.
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            Self::Connect { code, .. } => code.as_deref(),
            _ => None,
        }
    }
}

fn list(majors: &[u32]) -> String {
    if majors.is_empty() {
        return "none".into();
    }
    majors
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The whole of a tokio-postgres error: its `Display` alone says only "db error" for
/// errors the server sent, hiding PostgreSQL's message, detail and hint.
pub fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut s = format!("{}: {}", db.severity(), db.message());
            if let Some(detail) = db.detail() {
                s.push_str(&format!(" ({detail})"));
            }
            if let Some(hint) = db.hint() {
                s.push_str(&format!("; hint: {hint}"));
            }
            s
        }
        None => {
            let mut s = e.to_string();
            let mut src = std::error::Error::source(e);
            while let Some(inner) = src {
                s.push_str(&format!(": {inner}"));
                src = inner.source();
            }
            s
        }
    }
}
