//! Lifeboat's metadata store: what instances exist, in which state, with which accounts
//! and whitelist entries.
//!
//! The store is an embedded SQLite database (`<data dir>/lifeboat.db`, WAL journal).
//! Every long operation writes its state here before it acts, so that a restarted server
//! can finish or undo it (see the reconciler in `lifeboat-server`). Secrets never enter
//! the store: accounts are recorded by name only; an interrupted instance creation keeps
//! the privileged account's SCRAM verifier, never its password, until the account exists.
//!
//! # Layout
//! - [`schema`]: the schema and its migrations (`PRAGMA user_version`).
//! - [`instances`]: instance records, accounts and whitelist entries.
//! - [`backup_runs`]: base backup attempts and their outcome.
//! - [`migration_tasks`]: data migration tasks.
//! - `console_sessions`: signed-in console browsers (a digest of each session id).
//! - [`relation_names`]: the names a master's relations had, for naming events.

pub mod backup_runs;
mod console_sessions;
mod error;
pub mod instances;
pub mod migration_tasks;
pub mod relation_names;
mod schema;

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rusqlite::Connection;

pub use backup_runs::BackupRun;
pub use error::StoreError;
pub use instances::{AccountRecord, External, InstanceRecord, NewInstance, WhitelistRecord};
pub use migration_tasks::StoredTask;
pub use relation_names::{RelationKey, RelationName};

/// The metadata store. Cheap operations, called directly from async code: each holds
/// the connection for a few milliseconds at most.
pub struct Store {
    conn: Mutex<Connection>,
}

impl Store {
    /// Opens (creating if needed) the store at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path)?;
        Self::init(conn)
    }

    /// A store that lives in memory, for tests.
    pub fn in_memory() -> Result<Self, StoreError> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> Result<Self, StoreError> {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        schema::migrate(&conn)?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    /// This server's id: the one recorded, else `fresh` recorded now. It names the
    /// server in the backup repository entries it owns.
    pub fn server_id(&self, fresh: impl FnOnce() -> String) -> Result<String, StoreError> {
        let conn = self.conn();
        let found: Option<String> = rusqlite::OptionalExtension::optional(conn.query_row(
            "SELECT id FROM server_identity LIMIT 1",
            [],
            |r| r.get(0),
        ))?;
        if let Some(id) = found {
            return Ok(id);
        }
        let id = fresh();
        conn.execute(
            "INSERT INTO server_identity (id, created_at) VALUES (?1, ?2)",
            rusqlite::params![id, chrono::Utc::now().to_rfc3339()],
        )?;
        Ok(id)
    }

    pub(crate) fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite consistent (each statement is
        // atomic), so a poisoned lock is safe to reuse.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }
}
