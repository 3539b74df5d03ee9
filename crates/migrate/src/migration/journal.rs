//! The migration journal in each target database: one row per finished table,
//! written in the same transaction as the table itself.
//!
//! The caller also persists finished tables (from [`ProgressEvent::TableFinished`]),
//! but a crash can fall between the target's commit and that write. Redoing such a
//! table would be wrong in most modes (a second `overwrite` would save the source's
//! rows as "replaced", a second create would fail on the table it made), so the run
//! asks the target itself: a table is done exactly when its journal row committed.
//!
//! The objects created after the tables ([`crate::migration::objects`]) have one row
//! per target database too, keyed `objects of <db>` (table keys always start with a
//! double quote, so the two never meet), holding the list of their outcomes.
//!
//! ```text
//! lifeboat_migration.journal (task_id, table_key, outcome JSON, finished_at)
//! ```
//!
//! [`ProgressEvent::TableFinished`]: crate::migration::ProgressEvent::TableFinished

use std::collections::HashMap;

use crate::migration::conn::Session;
use crate::migration::mapping::TableKey;
use crate::migration::objects::ObjectOutcome;
use crate::migration::{MigrationError, TableOutcome};

/// Schema of the journal; never migrated as part of a database.
pub const JOURNAL_SCHEMA: &str = "lifeboat_migration";

const CREATE: &str = "CREATE SCHEMA IF NOT EXISTS lifeboat_migration; \
    CREATE TABLE IF NOT EXISTS lifeboat_migration.journal ( \
        task_id text NOT NULL, \
        table_key text NOT NULL, \
        outcome text NOT NULL, \
        finished_at timestamptz NOT NULL DEFAULT now(), \
        PRIMARY KEY (task_id, table_key)); \
    COMMENT ON SCHEMA lifeboat_migration IS \
        'Lifeboat: tables finished by each migration task; drop it when no task needs resuming'";

/// Creates the journal if needed (in its own transaction, before any table's).
pub(crate) async fn ensure(s: &Session) -> Result<(), MigrationError> {
    if exists(s).await? {
        return Ok(());
    }
    match s.execute("creating the migration journal", CREATE).await {
        // Two tasks creating it at once: the other one won, which is fine.
        Err(e) if e.code() == Some("23505") || e.code() == Some("42P06") => Ok(()),
        other => other,
    }
}

/// The tables of `task_id` finished in this database, with how they were migrated
/// (none when the database has no journal yet).
pub(crate) async fn finished(
    s: &Session,
    task_id: &str,
) -> Result<HashMap<TableKey, TableOutcome>, MigrationError> {
    if !exists(s).await? {
        return Ok(HashMap::new());
    }
    let rows = s
        .query(
            "reading the migration journal",
            "SELECT table_key, outcome FROM lifeboat_migration.journal \
             WHERE task_id = $1 AND table_key NOT LIKE 'objects of %'",
            &[&task_id],
        )
        .await?;
    let mut done = HashMap::new();
    for r in rows {
        let key = TableKey(r.get(0));
        let text: &str = r.get(1);
        // An entry written by another version that does not parse still means done.
        let outcome = serde_json::from_str(text).unwrap_or_else(|_| TableOutcome {
            key: key.clone(),
            source: key.0.clone(),
            target: String::new(),
            action: crate::migration::TableAction::Unchanged,
            rows_copied: 0,
            bytes_copied: 0,
            rows_inserted: 0,
            rows_skipped: 0,
            rows_replaced: 0,
            rows_updated: 0,
            rows_deleted: 0,
            rows_only_in_target: 0,
            rows_untouched: 0,
            checked: None,
            kept_table: None,
            sequences_set: Vec::new(),
            seconds: 0.0,
            resumed: true,
            partitions: Vec::new(),
        });
        done.insert(key, outcome);
    }
    Ok(done)
}

/// Records a table as finished; call inside the table's transaction.
pub(crate) async fn record(
    s: &Session,
    task_id: &str,
    outcome: &TableOutcome,
) -> Result<(), MigrationError> {
    let text = serde_json::to_string(outcome).map_err(|e| {
        MigrationError::InvalidSpec(format!("cannot record the outcome of {}: {e}", outcome.key))
    })?;
    s.count(
        "recording the table in the migration journal",
        "INSERT INTO lifeboat_migration.journal (task_id, table_key, outcome) VALUES ($1, $2, $3)",
        &[&task_id, &outcome.key.0, &text],
    )
    .await?;
    Ok(())
}

/// The key of the objects entry of target database `db`.
fn objects_key(db: &str) -> String {
    format!("objects of {db}")
}

/// What an earlier run created in this database after the tables, when its
/// transaction committed.
pub(crate) async fn objects_finished(
    s: &Session,
    task_id: &str,
) -> Result<Option<Vec<ObjectOutcome>>, MigrationError> {
    if !exists(s).await? {
        return Ok(None);
    }
    let rows = s
        .query(
            "reading the migration journal",
            "SELECT outcome FROM lifeboat_migration.journal WHERE task_id = $1 AND table_key = $2",
            &[&task_id, &objects_key(&s.database)],
        )
        .await?;
    Ok(rows.first().map(|r| {
        // An entry another version wrote that does not parse still means done.
        serde_json::from_str(r.get::<_, &str>(0)).unwrap_or_default()
    }))
}

/// Records the objects of this database as created; call inside their transaction.
pub(crate) async fn record_objects(
    s: &Session,
    task_id: &str,
    outcomes: &[ObjectOutcome],
) -> Result<(), MigrationError> {
    let text = serde_json::to_string(outcomes).map_err(|e| {
        MigrationError::InvalidSpec(format!("cannot record the objects of {}: {e}", s.database))
    })?;
    s.count(
        "recording the objects in the migration journal",
        "INSERT INTO lifeboat_migration.journal (task_id, table_key, outcome) VALUES ($1, $2, $3)",
        &[&task_id, &objects_key(&s.database), &text],
    )
    .await?;
    Ok(())
}

/// Removes a task's entries (when the task is deleted) and the journal itself once it
/// is empty, so a master keeps nothing of finished tasks.
pub async fn forget(
    target: &tokio_postgres::Config,
    databases: &[String],
    task_id: &str,
) -> Result<(), MigrationError> {
    for db in databases {
        let s = crate::migration::conn::connect(target, crate::migration::Side::Target, db).await?;
        if !exists(&s).await? {
            continue;
        }
        s.count(
            "removing the task from the migration journal",
            "DELETE FROM lifeboat_migration.journal WHERE task_id = $1",
            &[&task_id],
        )
        .await?;
        let empty: bool = s
            .query_one(
                "checking the migration journal",
                "SELECT NOT EXISTS (SELECT 1 FROM lifeboat_migration.journal)",
                &[],
            )
            .await?
            .get(0);
        if empty {
            s.execute(
                "dropping the empty migration journal",
                // RESTRICT: anything else someone put in the schema stays.
                "DROP TABLE lifeboat_migration.journal; DROP SCHEMA lifeboat_migration RESTRICT",
            )
            .await?;
        }
    }
    Ok(())
}

async fn exists(s: &Session) -> Result<bool, MigrationError> {
    Ok(s.query_one(
        "looking for the migration journal",
        "SELECT to_regclass('lifeboat_migration.journal') IS NOT NULL",
        &[],
    )
    .await?
    .get(0))
}
