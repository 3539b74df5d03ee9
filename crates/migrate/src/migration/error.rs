//! Errors of a migration task. Each says what failed, on which instance, database or
//! table, and [`MigrationError::hint`] says what the user can do next.

use serde::Serialize;

/// Which instance of the task something belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Source,
    Target,
}

impl std::fmt::Display for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Side::Source => "source",
            Side::Target => "target",
        })
    }
}

/// What went wrong in a migration task.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MigrationError {
    /// An `--object` that does not parse or names something impossible.
    #[error("invalid object '{object}': {reason}")]
    InvalidObject { object: String, reason: String },
    /// Some other part of the task description is unusable.
    #[error("invalid migration task: {0}")]
    InvalidSpec(String),
    /// The mapping cannot be carried out: an object missing on the source, two
    /// sources mapped to one target, a name PostgreSQL cannot hold.
    #[error("object mapping: {0}")]
    Mapping(String),
    /// Mapped tables cannot be migrated as asked (conflicts under the conflict mode,
    /// columns that do not match); nothing was written.
    #[error("the target has conflicts: {}", .0.join("; "))]
    Conflicts(Vec<String>),
    /// Logging in failed (unreachable, refused, wrong password, database missing).
    #[error("cannot connect to the {side} database {database}: {message}")]
    Connect {
        side: Side,
        database: String,
        message: String,
        /// The SQLSTATE when the server answered (28P01 is a wrong password).
        code: Option<String>,
    },
    /// A statement failed; `message` is PostgreSQL's whole message.
    #[error("{context} on the {side} database {database} failed: {message}")]
    Query {
        side: Side,
        database: String,
        context: String,
        message: String,
        code: Option<String>,
    },
    /// One table could not be migrated; the target table is as it was before.
    #[error("table {table}: {reason}")]
    Table {
        /// `source=target` names of the table.
        table: String,
        reason: String,
        hint: String,
    },
    /// An object created after the tables (view, function, trigger...) could not be;
    /// none of that database's objects were created, its tables stay migrated.
    #[error("{object}: {reason}")]
    Object {
        /// The kind and name of the object in the target.
        object: String,
        reason: String,
    },
    /// The thread or runtime running the task could not start or died.
    #[error("the migration worker failed: {0}")]
    Worker(String),
    /// The task was cancelled; tables already reported finished stay migrated, the
    /// one in progress was rolled back.
    #[error("the migration was cancelled")]
    Cancelled,
}

impl MigrationError {
    /// What the user can do about it.
    pub fn hint(&self) -> String {
        match self {
            Self::InvalidObject { .. } => "write objects as db, db.schema or db.schema.table, optionally =NEW_NAME; quote names with dots or capitals: shop.\"My.Schema\".orders".into(),
            Self::InvalidSpec(_) => "fix the task description and create the task again".into(),
            Self::Mapping(_) => "change the objects or their new names and run the pre-check again".into(),
            Self::Conflicts(_) => "run the pre-check for advice on each conflict; map the tables to new names or choose another --conflict mode".into(),
            Self::Connect { code, side, .. } => match code.as_deref() {
                Some("28P01") | Some("28000") => format!("check the {side} account name and password"),
                Some("3D000") => format!("check the database name, or create it on the {side}"),
                _ => format!("check that the {side} instance is running and that the migration worker's address is on its whitelist (lifeboat migration authorize TASK)"),
            },
            Self::Query { code, side, .. } => match code.as_deref() {
                Some("42501") => format!("grant the {side} account the privileges the pre-check lists, then start the task again"),
                Some("53100") => format!("free disk space on the {side} and start the task again; tables already finished are skipped"),
                Some("57P01") | Some("57P02") | Some("57P03") | Some("08006") | Some("08003") => {
                    format!("the {side} went away; when it is back, start the task again: finished tables are skipped")
                }
                _ => "read the message above; after fixing the cause start the task again: finished tables are skipped".into(),
            },
            Self::Table { hint, .. } => hint.clone(),
            Self::Object { .. } => "fix the cause in the target (or the source object), then start the task again: finished tables are skipped and the objects are created then".into(),
            Self::Cancelled => "start the task again to continue; finished tables are skipped".into(),
            Self::Worker(_) => "see the server log; start the task again: finished tables are skipped".into(),
        }
    }

    /// True when running the task again may succeed without changing it (the cause
    /// was outside the task: an instance went away, a disk filled up, a lock timed out).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Connect { code, .. } => code.is_none(),
            Self::Query { code, .. } => matches!(
                code.as_deref(),
                Some("53100" | "55P03" | "40001" | "40P01" | "57P01" | "57P02" | "57P03")
                    | Some("08006" | "08003")
                    | None
            ),
            Self::Table { .. } | Self::Cancelled | Self::Worker(_) => true,
            _ => false,
        }
    }

    /// Maps a tokio-postgres error met while doing `context` on one database.
    pub(crate) fn query(
        side: Side,
        database: &str,
        context: impl Into<String>,
    ) -> impl FnOnce(tokio_postgres::Error) -> Self {
        let database = database.to_string();
        let context = context.into();
        move |e| Self::Query {
            side,
            database,
            context,
            message: lifeboat_postgres::describe(&e),
            code: e.code().map(|c| c.code().to_string()),
        }
    }

    /// The SQLSTATE of a failed statement or login, if the server sent one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Connect { code, .. } | Self::Query { code, .. } => code.as_deref(),
            _ => None,
        }
    }
}
