//! Base backup attempts: who asked, how far they got, how they ended.

use chrono::{DateTime, Utc};
use lifeboat_domain::{BackupRunState, BackupTrigger, InstanceId};
use rusqlite::{OptionalExtension, Row, params};

use crate::{Store, StoreError};

/// One attempt at a base backup.
#[derive(Debug, Clone, PartialEq)]
pub struct BackupRun {
    pub id: i64,
    pub instance_id: String,
    pub trigger: BackupTrigger,
    pub state: BackupRunState,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// The id of the backup in the repository, once completed.
    pub backup_id: Option<String>,
    pub bytes_done: i64,
    pub bytes_total: i64,
    pub error: Option<String>,
    /// Where a completed backup ends in the WAL (a byte position).
    pub stop_lsn: Option<i64>,
}

const COLUMNS: &str = "id, instance_id, trigger, state, started_at, finished_at, backup_id, bytes_done, bytes_total, error, stop_lsn";

/// A row, with the columns still to parse: trigger, state, started, finished.
type RawRun = (BackupRun, [String; 3], Option<String>);

fn read(row: &Row<'_>) -> rusqlite::Result<RawRun> {
    let started: String = row.get(4)?;
    let finished: Option<String> = row.get(5)?;
    Ok((
        BackupRun {
            id: row.get(0)?,
            instance_id: row.get(1)?,
            trigger: BackupTrigger::Manual,
            state: BackupRunState::Running,
            started_at: DateTime::<Utc>::MIN_UTC,
            finished_at: None,
            backup_id: row.get(6)?,
            bytes_done: row.get(7)?,
            bytes_total: row.get(8)?,
            error: row.get(9)?,
            stop_lsn: row.get(10)?,
        },
        [row.get(2)?, row.get(3)?, started],
        finished,
    ))
}

fn finish(raw: RawRun) -> Result<BackupRun, StoreError> {
    let (mut run, [trigger, state, started], finished) = raw;
    let parse = |s: &str| {
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| StoreError::Corrupt(format!("bad timestamp '{s}'")))
    };
    run.trigger = BackupTrigger::from_db(&trigger)
        .ok_or_else(|| StoreError::Corrupt(format!("bad backup trigger '{trigger}'")))?;
    run.state = BackupRunState::from_db(&state)
        .ok_or_else(|| StoreError::Corrupt(format!("bad backup state '{state}'")))?;
    run.started_at = parse(&started)?;
    run.finished_at = finished.as_deref().map(parse).transpose()?;
    Ok(run)
}

impl Store {
    /// Records a new running backup of `instance`; refuses while one is running.
    pub fn start_backup_run(
        &self,
        instance: &InstanceId,
        trigger: BackupTrigger,
    ) -> Result<BackupRun, StoreError> {
        let conn = self.conn();
        let inserted = conn.execute(
            "INSERT INTO backup_runs (instance_id, trigger, state, started_at) VALUES (?1, ?2, 'running', ?3)",
            params![instance.as_str(), trigger.as_str(), Utc::now().to_rfc3339()],
        );
        match inserted {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                return Err(StoreError::Duplicate(format!(
                    "a running backup of {instance}"
                )));
            }
            other => other?,
        };
        let id = conn.last_insert_rowid();
        drop(conn);
        self.backup_run(id)
    }

    pub fn backup_run(&self, id: i64) -> Result<BackupRun, StoreError> {
        let conn = self.conn();
        let raw = conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM backup_runs WHERE id = ?1"),
                [id],
                read,
            )
            .optional()?
            .ok_or_else(|| StoreError::NotFound(format!("backup run {id}")))?;
        finish(raw)
    }

    pub fn complete_backup_run(
        &self,
        id: i64,
        backup_id: &str,
        bytes: i64,
        stop_lsn: i64,
    ) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE backup_runs SET state = 'completed', finished_at = ?2, backup_id = ?3, \
             bytes_done = ?4, bytes_total = ?4, stop_lsn = ?5 WHERE id = ?1",
            params![id, Utc::now().to_rfc3339(), backup_id, bytes, stop_lsn],
        )?;
        Ok(())
    }

    pub fn fail_backup_run(&self, id: i64, error: &str) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE backup_runs SET state = 'failed', finished_at = ?2, error = ?3 WHERE id = ?1",
            params![id, Utc::now().to_rfc3339(), error],
        )?;
        Ok(())
    }

    pub fn set_backup_progress(&self, id: i64, done: i64, total: i64) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE backup_runs SET bytes_done = ?2, bytes_total = ?3 WHERE id = ?1",
            params![id, done, total],
        )?;
        Ok(())
    }

    /// Marks every running backup failed: called at start, when no backup can still run
    /// (PostgreSQL aborts a backup whose session ended with the server).
    pub fn fail_interrupted_backup_runs(&self) -> Result<usize, StoreError> {
        Ok(self.conn().execute(
            "UPDATE backup_runs SET state = 'failed', finished_at = ?1, \
             error = 'interrupted by a restart of the Lifeboat server' WHERE state = 'running'",
            [Utc::now().to_rfc3339()],
        )?)
    }

    /// The latest runs of `instance`, newest first.
    pub fn backup_runs(
        &self,
        instance: &InstanceId,
        limit: usize,
    ) -> Result<Vec<BackupRun>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM backup_runs WHERE instance_id = ?1 ORDER BY id DESC LIMIT ?2"
        ))?;
        let rows = stmt.query_map(params![instance.as_str(), limit as i64], read)?;
        rows.map(|r| finish(r?)).collect()
    }

    /// When the last backup of `instance` that completed started, if any.
    pub fn last_completed_backup(
        &self,
        instance: &InstanceId,
    ) -> Result<Option<BackupRun>, StoreError> {
        let conn = self.conn();
        let raw = conn
            .query_row(
                &format!(
                    "SELECT {COLUMNS} FROM backup_runs WHERE instance_id = ?1 AND state = 'completed' ORDER BY id DESC LIMIT 1"
                ),
                [instance.as_str()],
                read,
            )
            .optional()?;
        raw.map(finish).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_running_backup_per_instance() {
        let store = Store::in_memory().unwrap();
        let id = InstanceId::generate();
        let run = store.start_backup_run(&id, BackupTrigger::Manual).unwrap();
        assert!(matches!(
            store.start_backup_run(&id, BackupTrigger::Manual),
            Err(StoreError::Duplicate(_))
        ));
        store.set_backup_progress(run.id, 10, 100).unwrap();
        store
            .complete_backup_run(run.id, "20261124T000000Z", 100, 0x300_0028)
            .unwrap();
        let done = store.last_completed_backup(&id).unwrap().unwrap();
        assert_eq!(done.backup_id.as_deref(), Some("20261124T000000Z"));
        assert_eq!(done.stop_lsn, Some(0x300_0028));
        assert!(done.finished_at.is_some());
        let again = store
            .start_backup_run(&id, BackupTrigger::Schedule)
            .unwrap();
        assert_eq!(store.fail_interrupted_backup_runs().unwrap(), 1);
        let failed = store.backup_run(again.id).unwrap();
        assert_eq!(failed.state, BackupRunState::Failed);
        assert!(failed.error.unwrap().contains("interrupted"));
        assert_eq!(store.backup_runs(&id, 10).unwrap().len(), 2);
    }
}
