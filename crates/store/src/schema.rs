//! The store's schema, migrated forward by `PRAGMA user_version`.

use rusqlite::Connection;

use crate::StoreError;

/// Each entry brings the schema from version `i` to `i + 1`. Append only.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE instances (
    id                 TEXT PRIMARY KEY,
    name               TEXT NOT NULL,
    kind               TEXT NOT NULL,
    status             TEXT NOT NULL,
    region             TEXT NOT NULL,
    port               INTEGER NOT NULL,
    engine_version     TEXT NOT NULL,
    network_type       TEXT NOT NULL,
    master_id          TEXT REFERENCES instances(id),
    created_at         TEXT NOT NULL,
    expires_at         TEXT,
    -- why the instance is in its status (the error of a failed create, for example)
    status_detail      TEXT,
    privileged_account TEXT NOT NULL,
    -- SCRAM verifier of the privileged account while the create is unfinished, so a
    -- restarted server can finish it; cleared as soon as the account exists
    pending_verifier   TEXT
);
-- Names are unique among instances that still exist.
CREATE UNIQUE INDEX instances_live_name ON instances(name) WHERE status <> 'released';
CREATE TABLE accounts (
    instance_id TEXT NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    privileged  INTEGER NOT NULL,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (instance_id, name)
);
CREATE TABLE whitelist (
    instance_id TEXT NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
    cidr        TEXT NOT NULL,
    -- 'user', or the migration task that added it and will remove it
    added_by    TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (instance_id, cidr)
);
"#,
    r#"
-- One row per base backup attempt. The backup itself lives in the repository (it
-- exists iff its manifest does); this records who asked, how it went and why it failed.
CREATE TABLE backup_runs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    instance_id TEXT NOT NULL,
    -- 'create', 'schedule' or 'manual'
    trigger     TEXT NOT NULL,
    -- 'running', 'completed' or 'failed'
    state       TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    backup_id   TEXT,
    bytes_done  INTEGER NOT NULL DEFAULT 0,
    bytes_total INTEGER NOT NULL DEFAULT 0,
    error       TEXT
);
-- At most one running backup per instance.
CREATE UNIQUE INDEX backup_runs_one_running ON backup_runs(instance_id) WHERE state = 'running';
"#,
    r#"
-- A temporary instance's recovery target (JSON) and its creation progress (JSON).
ALTER TABLE instances ADD COLUMN restore_target TEXT;
ALTER TABLE instances ADD COLUMN progress TEXT;
"#,
    r#"
-- Data migration tasks. The task is a JSON document (its passwords encrypted by the
-- server); the columns beside it are those the store looks things up by.
CREATE TABLE migration_tasks (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    state      TEXT NOT NULL,
    source_id  TEXT NOT NULL,
    target_id  TEXT NOT NULL,
    created_at TEXT NOT NULL,
    doc        TEXT NOT NULL
);
"#,
    r#"
-- Where a completed base backup ends in the WAL, so the scheduler can take the next one
-- after enough WAL (a restore replays at most that much).
ALTER TABLE backup_runs ADD COLUMN stop_lsn INTEGER;
"#,
    r#"
-- Signed-in console browsers, so a restart of the server keeps them signed in. The id
-- the browser holds is stored only as its SHA-256; expires_at is in Unix seconds.
CREATE TABLE console_sessions (
    id_digest  TEXT PRIMARY KEY,
    csrf       TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
"#,
    r#"
-- The names a master's relations had, as seen in its catalogs: WAL names relations by
-- database OID, relation OID and relfilenode only, and an event about a table dropped
-- an hour ago must still say which table it was. A row is added when a relation is
-- first seen with this OID, relfilenode and name; first_seen says since when.
CREATE TABLE relation_names (
    instance_id TEXT NOT NULL,
    db_oid      INTEGER NOT NULL,
    oid         INTEGER NOT NULL,
    relfilenode INTEGER NOT NULL,
    -- pg_class.relkind: 'r' table, 'p' partitioned table, 'm' materialized view...
    relkind     TEXT NOT NULL,
    schema_name TEXT NOT NULL,
    rel_name    TEXT NOT NULL,
    first_seen  TEXT NOT NULL,
    PRIMARY KEY (instance_id, db_oid, oid, relfilenode, schema_name, rel_name)
);
CREATE INDEX relation_names_by_file ON relation_names(instance_id, db_oid, relfilenode);
CREATE TABLE database_names (
    instance_id TEXT NOT NULL,
    db_oid      INTEGER NOT NULL,
    datname     TEXT NOT NULL,
    first_seen  TEXT NOT NULL,
    PRIMARY KEY (instance_id, db_oid, datname)
);
"#,
    r#"
-- The master whose backups a clone or a kept temporary instance was restored from. Not
-- a reference: the master may be known only from the backup repository.
ALTER TABLE instances ADD COLUMN restored_from TEXT;
-- The major a clone is upgraded to (pg_upgrade) once restored, when newer than its
-- source's.
ALTER TABLE instances ADD COLUMN upgrade_to INTEGER;
-- This server's id, written into the repository entries it owns.
CREATE TABLE server_identity (
    id         TEXT NOT NULL,
    created_at TEXT NOT NULL
);
"#,
    r#"
-- A master Lifeboat did not create (an adopted instance): the host its cluster listens
-- on, and the password of the account Lifeboat logs in with, sealed by the server.
-- NULL for the clusters Lifeboat runs itself.
ALTER TABLE instances ADD COLUMN host TEXT;
ALTER TABLE instances ADD COLUMN sealed_password TEXT;
"#,
    r#"
-- The superuser Lifeboat manages a cluster as over its private socket, when it is not
-- Lifeboat's own role: an adopted cluster's bootstrap superuser (its restored copies
-- have no other), and that of the temporary instances restored from it.
ALTER TABLE instances ADD COLUMN management_role TEXT;
"#,
];

pub(crate) fn migrate(conn: &Connection) -> Result<(), StoreError> {
    let version: usize = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version > MIGRATIONS.len() {
        return Err(StoreError::Corrupt(format!(
            "the store has schema version {version}, newer than this Lifeboat knows ({}); upgrade Lifeboat",
            MIGRATIONS.len()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        let tx = conn.unchecked_transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i + 1)?;
        tx.commit()?;
    }
    Ok(())
}
