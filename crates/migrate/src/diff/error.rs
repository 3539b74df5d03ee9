//! Errors of a table diff. Each says what failed, on which table and side, and what the
//! user can do about it ([`DiffError::hint`]). Schema differences are not errors: they
//! are reported in [`crate::diff::TableDiff::schema_differences`].

/// Which instance of the comparison something belongs to.
pub use lifeboat_api::diff::Side;

/// What went wrong during a diff.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiffError {
    /// The request itself is unusable (no table, a name that does not parse).
    #[error("invalid diff request: {0}")]
    InvalidRequest(String),
    /// A requested table (or schema) does not exist on one side.
    #[error("table {table} does not exist on the {side}")]
    TableNotFound { side: Side, table: String },
    /// The role the diff connects as may not read a table.
    #[error("role {role} may not read table {table} on the {side}")]
    PermissionDenied {
        side: Side,
        table: String,
        role: String,
    },
    /// A query failed; `message` is PostgreSQL's whole message.
    #[error("{context} on the {side} failed: {message}")]
    Query {
        side: Side,
        context: String,
        message: String,
        /// The SQLSTATE, when the server sent one.
        code: Option<String>,
    },
    /// The sink refused a row (for example a closed output stream); the diff stopped.
    #[error("cannot write the diff output: {0}")]
    Sink(#[from] std::io::Error),
}

impl DiffError {
    /// Maps a tokio-postgres error met while doing `context` on `side`.
    pub(crate) fn query(
        side: Side,
        context: impl Into<String>,
    ) -> impl FnOnce(tokio_postgres::Error) -> Self {
        let context = context.into();
        move |e| Self::Query {
            side,
            context,
            message: lifeboat_postgres::describe(&e),
            code: e.code().map(|c| c.code().to_string()),
        }
    }

    /// What the user can do next.
    pub fn hint(&self) -> String {
        match self {
            Self::InvalidRequest(_) => {
                "name tables as SCHEMA.TABLE or SOURCE_SCHEMA.TABLE=TARGET_SCHEMA.TABLE".into()
            }
            Self::TableNotFound { side, .. } => format!(
                "check the name on the {side} instance (names are case-sensitive once quoted); \
                 list tables with \\dt in psql"
            ),
            Self::PermissionDenied { table, role, .. } => {
                format!("grant SELECT on {table} to {role}, or diff with a privileged account")
            }
            Self::Query { code, .. } if code.as_deref() == Some("42501") => {
                "grant SELECT on the table to the account used for the diff".into()
            }
            Self::Query { .. } => {
                "check that both instances are running and reachable, then retry".into()
            }
            Self::Sink(_) => "check where the output goes (disk space, closed pipe)".into(),
        }
    }

    /// True for errors caused by the request (names, permissions) rather than by the
    /// instances being unreachable, so an API can answer 4xx instead of 5xx.
    pub fn is_user_error(&self) -> bool {
        matches!(
            self,
            Self::InvalidRequest(_) | Self::TableNotFound { .. } | Self::PermissionDenied { .. }
        )
    }
}
