//! Migration tasks, stored as documents the server defines.

use lifeboat_domain::{StateMachine, TaskState};
use rusqlite::{OptionalExtension, Row, params};

use crate::{Store, StoreError};

/// A stored task: the columns the store indexes, and the server's document.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredTask {
    pub id: String,
    pub name: String,
    pub state: TaskState,
    pub source_id: String,
    pub target_id: String,
    pub created_at: String,
    /// The task as JSON; secrets in it are encrypted by the server.
    pub doc: String,
}

fn parse_state(s: &str) -> Result<TaskState, StoreError> {
    TaskState::from_db(s).ok_or_else(|| StoreError::Corrupt(format!("bad task state '{s}'")))
}

fn read(r: &Row<'_>) -> rusqlite::Result<Result<StoredTask, StoreError>> {
    let state: String = r.get(2)?;
    let (id, name, source_id, target_id, created_at, doc) = (
        r.get(0)?,
        r.get(1)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
    );
    Ok(parse_state(&state).map(|state| StoredTask {
        id,
        name,
        state,
        source_id,
        target_id,
        created_at,
        doc,
    }))
}

impl Store {
    pub fn insert_task(&self, t: &StoredTask) -> Result<(), StoreError> {
        let result = self.conn().execute(
            "INSERT INTO migration_tasks (id, name, state, source_id, target_id, created_at, doc) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                t.id,
                t.name,
                t.state.as_str(),
                t.source_id,
                t.target_id,
                t.created_at,
                t.doc
            ],
        );
        match result {
            Err(rusqlite::Error::SqliteFailure(e, Some(msg)))
                if e.code == rusqlite::ErrorCode::ConstraintViolation
                    && msg.contains("migration_tasks.name") =>
            {
                Err(StoreError::Duplicate(format!(
                    "a migration task named '{}'",
                    t.name
                )))
            }
            other => other.map(|_| ()).map_err(Into::into),
        }
    }

    /// Rewrites a task's state and document, when its current state may become
    /// `state` (see [`TaskState`]'s transitions); the check and the write are one step.
    pub fn update_task(&self, id: &str, state: TaskState, doc: &str) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let current: Option<String> = tx
            .query_row(
                "SELECT state FROM migration_tasks WHERE id = ?1",
                [id],
                |r| r.get(0),
            )
            .optional()?;
        let current =
            current.ok_or_else(|| StoreError::NotFound(format!("migration task {id}")))?;
        parse_state(&current)?.transition(state)?;
        tx.execute(
            "UPDATE migration_tasks SET state = ?2, doc = ?3 WHERE id = ?1",
            params![id, state.as_str(), doc],
        )?;
        tx.commit()?;
        Ok(())
    }

    pub fn find_task(&self, id_or_name: &str) -> Result<Option<StoredTask>, StoreError> {
        let conn = self.conn();
        conn.query_row(
            "SELECT id, name, state, source_id, target_id, created_at, doc FROM migration_tasks \
             WHERE id = ?1 OR name = ?1",
            [id_or_name],
            read,
        )
        .optional()?
        .transpose()
    }

    /// Every task, oldest first.
    pub fn list_tasks(&self) -> Result<Vec<StoredTask>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT id, name, state, source_id, target_id, created_at, doc FROM migration_tasks ORDER BY created_at, id",
        )?;
        let rows = stmt.query_map([], read)?;
        rows.map(|r| r?).collect()
    }

    pub fn delete_task(&self, id: &str) -> Result<(), StoreError> {
        self.conn()
            .execute("DELETE FROM migration_tasks WHERE id = ?1", [id])?;
        Ok(())
    }

    /// Tasks in `state` that involve `instance` as source or target.
    pub fn tasks_of_instance(
        &self,
        instance: &str,
        state: TaskState,
    ) -> Result<Vec<String>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT id FROM migration_tasks WHERE state = ?2 AND (source_id = ?1 OR target_id = ?1)",
        )?;
        let rows = stmt.query_map(params![instance, state.as_str()], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_round_trip() {
        let store = Store::in_memory().unwrap();
        let t = StoredTask {
            id: "mt-abc123".into(),
            name: "restore-orders".into(),
            state: TaskState::NotStarted,
            source_id: "pg-aaaaaa".into(),
            target_id: "pg-bbbbbb".into(),
            created_at: "2026-11-24T00:00:00Z".into(),
            doc: "{}".into(),
        };
        store.insert_task(&t).unwrap();
        assert!(matches!(
            store.insert_task(&StoredTask {
                id: "mt-other1".into(),
                ..t.clone()
            }),
            Err(StoreError::Duplicate(_))
        ));
        // A task that has not been pre-checked cannot start migrating.
        assert!(matches!(
            store.update_task("mt-abc123", TaskState::Migrating, "{}"),
            Err(StoreError::InvalidTransition(_))
        ));
        for state in [TaskState::Prechecking, TaskState::PrecheckPassed] {
            store.update_task("mt-abc123", state, "{}").unwrap();
        }
        store
            .update_task("mt-abc123", TaskState::Migrating, "{\"x\":1}")
            .unwrap();
        let got = store.find_task("restore-orders").unwrap().unwrap();
        assert_eq!(
            (got.state, got.doc.as_str()),
            (TaskState::Migrating, "{\"x\":1}")
        );
        assert_eq!(
            store
                .tasks_of_instance("pg-bbbbbb", TaskState::Migrating)
                .unwrap(),
            vec!["mt-abc123".to_string()]
        );
        store.delete_task("mt-abc123").unwrap();
        assert!(store.list_tasks().unwrap().is_empty());
    }
}
