//! What every request handler and worker shares.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use lifeboat_domain::InstanceId;
use lifeboat_postgres::{OsUser, PgBinaries, PgError};
use lifeboat_store::Store;

use crate::config::Config;

/// The PostgreSQL installation clusters run with.
#[derive(Debug, Clone)]
pub struct PgEnv {
    pub bins: PgBinaries,
    pub user: OsUser,
}

/// Shared state of the control plane.
pub struct AppState {
    pub config: Config,
    pub data_dir: PathBuf,
    pub store: Store,
    /// The API token; compared in constant time, never logged.
    pub token: String,
    /// Found on first use and kept; looked for again while missing, so installing
    /// PostgreSQL needs no restart of the server.
    pg: Mutex<Option<PgEnv>>,
    /// One lock per instance: operations on one instance never interleave.
    instance_locks: Mutex<HashMap<InstanceId, Arc<tokio::sync::Mutex<()>>>>,
    /// Held while a new instance picks its port and name.
    pub create_lock: tokio::sync::Mutex<()>,
    /// Seals the passwords migration tasks keep.
    pub secrets: crate::secrets::SecretBox,
    /// Cancels running migration tasks, by task id.
    pub migration_cancels: Mutex<HashMap<String, lifeboat_migrate::migration::CancellationToken>>,
}

impl AppState {
    pub fn new(
        config: Config,
        data_dir: PathBuf,
        store: Store,
        token: String,
        secrets: crate::secrets::SecretBox,
    ) -> Self {
        Self {
            config,
            data_dir,
            store,
            token,
            pg: Mutex::new(None),
            instance_locks: Mutex::new(HashMap::new()),
            create_lock: tokio::sync::Mutex::new(()),
            secrets,
            migration_cancels: Mutex::new(HashMap::new()),
        }
    }

    /// The PostgreSQL binaries and OS user, or why they cannot be used.
    pub fn pg_env(&self) -> Result<PgEnv, PgError> {
        let mut cached = self.pg.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(env) = cached.as_ref() {
            return Ok(env.clone());
        }
        let env = PgEnv {
            bins: PgBinaries::discover(self.config.postgres.bin_dir.as_deref())?,
            user: OsUser::for_clusters(self.config.postgres.os_user.as_deref())?,
        };
        *cached = Some(env.clone());
        Ok(env)
    }

    /// The lock serializing operations on `id`.
    pub fn instance_lock(&self, id: &InstanceId) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self
            .instance_locks
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        locks.entry(id.clone()).or_default().clone()
    }
}

pub type SharedState = Arc<AppState>;
