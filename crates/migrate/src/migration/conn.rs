//! Connections of a migration: one [`Session`] per database and purpose, each knowing
//! which instance and database it talks to so that every error names them.
//!
//! Every session pins the settings that make the migration behave the same on any
//! server: `search_path = pg_catalog` (so catalog functions print every user object
//! schema-qualified, and a user's function cannot shadow ours), no statement or idle
//! timeouts (a large table's copy takes as long as it takes; the snapshot session sits
//! idle inside its transaction for the whole run), and text formats for dates, floats
//! and bytea that read back as the same value on the other side.

use std::time::Duration;

use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Config, NoTls, Row};

use crate::migration::{MigrationError, Side};

const SETTINGS: &str = "SET search_path = pg_catalog; \
    SET statement_timeout = 0; \
    SET lock_timeout = 0; \
    SET idle_in_transaction_session_timeout = 0; \
    SET TimeZone = 'UTC'; \
    SET DateStyle = 'ISO, YMD'; \
    SET IntervalStyle = 'postgres'; \
    SET extra_float_digits = 3; \
    SET bytea_output = 'hex'";

/// A connection to one database of the source or the target.
pub(crate) struct Session {
    pub client: Client,
    pub side: Side,
    pub database: String,
}

/// Connects to `database` with the host, port, account and password of `config`.
pub(crate) async fn connect(
    config: &Config,
    side: Side,
    database: &str,
) -> Result<Session, MigrationError> {
    let mut config = config.clone();
    config
        .dbname(database)
        .application_name("lifeboat-migration");
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(15));
    }
    let (client, connection) =
        config
            .connect(NoTls)
            .await
            .map_err(|e| MigrationError::Connect {
                side,
                database: database.to_string(),
                message: lifeboat_postgres::describe(&e),
                code: e.code().map(|c| c.code().to_string()),
            })?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "migration connection ended");
        }
    });
    let session = Session {
        client,
        side,
        database: database.to_string(),
    };
    session.execute("setting up the session", SETTINGS).await?;
    Ok(session)
}

impl Session {
    /// The error mapper for a statement run while doing `context`.
    pub fn err(
        &self,
        context: impl Into<String>,
    ) -> impl FnOnce(tokio_postgres::Error) -> MigrationError {
        MigrationError::query(self.side, &self.database, context)
    }

    /// Runs one or more statements without parameters.
    pub async fn execute(&self, context: &str, sql: &str) -> Result<(), MigrationError> {
        self.client
            .batch_execute(sql)
            .await
            .map_err(self.err(context))
    }

    /// Runs one statement and returns the number of rows it affected.
    pub async fn count(
        &self,
        context: &str,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, MigrationError> {
        self.client
            .execute(sql, params)
            .await
            .map_err(self.err(context))
    }

    pub async fn query(
        &self,
        context: &str,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, MigrationError> {
        self.client
            .query(sql, params)
            .await
            .map_err(self.err(context))
    }

    pub async fn query_one(
        &self,
        context: &str,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, MigrationError> {
        self.client
            .query_one(sql, params)
            .await
            .map_err(self.err(context))
    }

    /// Asks the server to stop the statement running on this session, so that a
    /// cancelled task does not leave an index build running after the client is gone
    /// (a backend notices a closed connection only when it next talks to it).
    pub async fn cancel_running(&self) {
        if let Err(e) = self.client.cancel_token().cancel_query(NoTls).await {
            tracing::debug!(error = %e, database = %self.database, "cancel request failed");
        }
    }
}
