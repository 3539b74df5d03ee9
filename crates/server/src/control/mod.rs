//! The control plane's orchestration: everything Lifeboat does to instances, backups,
//! temporary instances and migration tasks, apart from how it is asked. Nothing here
//! knows HTTP or HTML: the API and the console ([`crate::http`]) call these functions
//! and render what they return, and errors are [`Error`]s with an [`ErrorCode`] that
//! the HTTP layer alone maps to a status.
//!
//! Every long operation is a persisted state machine (`lifeboat_domain`'s states, kept
//! in the metadata store): each step writes its state before it acts and can run
//! again, and [`reconcile`] finishes or undoes at start what a crash interrupted.
//!
//! # Layout
//! - [`Control`]: what every operation shares (configuration, store, locks).
//! - [`error`]: the one error type of the control plane.
//! - [`registry`]: the lookups every part needs: an instance by id, its region, its
//!   cluster, a free port.
//! - [`workers`]: the one place that starts threads and runtimes (low-priority work,
//!   futures that are not `Send`).
//! - [`instances`]: create, start, stop, delete; accounts and whitelist.
//! - [`backups`]: archiving settings, base backups, the schedule, retention, the
//!   repository's views, archiving health.
//! - [`temporary`]: temporary instances: the target, the build, recovery, release.
//! - [`clones`]: permanent masters made from backups: clones, kept temporary instances.
//! - [`migrations`]: migration tasks: the stored task, access, pre-check, the runner.
//! - [`events`]: the transactions that destroyed data, found in the archived WAL.
//! - [`diff`]: comparing tables of two instances; [`catalog`]: what an instance holds.
//! - [`views`]: the API's views of instances.
//! - [`reconcile`]: all start-up repair.

pub mod adoption;
pub mod backups;
pub mod catalog;
pub mod clones;
pub mod diff;
pub mod error;
pub mod events;
pub mod instances;
pub mod migrations;
pub mod reconcile;
pub mod registry;
pub mod temporary;
pub mod views;
pub mod workers;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use lifeboat_domain::InstanceId;
use lifeboat_postgres::binaries::major_of;
use lifeboat_postgres::{Installations, OsUser, PgBinaries, PgError};
use lifeboat_store::{InstanceRecord, Store};

pub use error::{Error, Result};
pub use lifeboat_api::ErrorCode;

use crate::config::Config;
use crate::credentials::SecretBox;

/// The PostgreSQL installation clusters run with.
#[derive(Debug, Clone)]
pub struct PgEnv {
    pub bins: PgBinaries,
    pub user: OsUser,
}

/// What every operation of the control plane shares.
pub struct Control {
    pub config: Config,
    pub data_dir: PathBuf,
    pub store: Store,
    /// The API token; compared in constant time, never logged.
    pub token: String,
    /// The PostgreSQL installations found, on first use; looked for again when a
    /// major is asked for that is not among them, so installing PostgreSQL needs no
    /// restart of the server.
    pg: Mutex<Option<Installations>>,
    /// One lock per instance: operations on one instance never interleave.
    instance_locks: Mutex<HashMap<InstanceId, Arc<tokio::sync::Mutex<()>>>>,
    /// Held while a new instance picks its port and name.
    pub create_lock: tokio::sync::Mutex<()>,
    /// Seals the passwords migration tasks keep.
    pub secrets: SecretBox,
    /// Cancels running migration tasks, by task id.
    pub migration_cancels: Mutex<HashMap<String, lifeboat_migrate::migration::CancellationToken>>,
    /// The WAL streams of adopted instances.
    pub streams: backups::stream::Streams,
}

/// The control plane as handlers and workers hold it.
pub type Shared = Arc<Control>;

impl Control {
    pub fn new(
        config: Config,
        data_dir: PathBuf,
        store: Store,
        token: String,
        secrets: SecretBox,
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
            streams: backups::stream::Streams::default(),
        }
    }

    /// Every PostgreSQL installation found (see [`Installations::discover`]); looked
    /// for again when `want` is not satisfied by what was found before.
    pub fn installations(&self, want: impl Fn(&Installations) -> bool) -> Installations {
        let mut cached = self.pg.lock().unwrap_or_else(|p| p.into_inner());
        match cached.as_ref() {
            Some(found) if want(found) => found.clone(),
            _ => {
                let found = Installations::discover(&self.config.postgres.search_dirs());
                *cached = Some(found.clone());
                found
            }
        }
    }

    /// The binaries of `major` (`None`: the default for new instances: the configured
    /// `bin_dir`'s major, else the newest installed) with the OS user clusters run as.
    pub fn pg(&self, major: Option<u32>) -> std::result::Result<PgEnv, PgError> {
        let bins: PgBinaries = match (major, &self.config.postgres.bin_dir) {
            (Some(m), _) => self
                .installations(|f| f.majors().contains(&m))
                .major(m)?
                .clone(),
            // The configured default, which may have been installed since the start.
            (None, Some(dir)) => {
                let found = PgBinaries::at(dir).map_err(|why| PgError::BinariesMissing {
                    searched: format!("[postgres] bin_dir: {why}"),
                })?;
                if let Some(why) = lifeboat_postgres::binaries::unsupported(found.major) {
                    return Err(PgError::UnsupportedMajor(why));
                }
                found
            }
            (None, None) => self.installations(|f| !f.is_empty()).newest()?.clone(),
        };
        Ok(PgEnv {
            bins,
            user: OsUser::for_clusters(self.config.postgres.os_user.as_deref())?,
        })
    }

    /// The default installation, for work that is not about one instance.
    pub fn pg_env(&self) -> std::result::Result<PgEnv, PgError> {
        self.pg(None)
    }

    /// The OS user clusters run as.
    pub fn os_user(&self) -> std::result::Result<OsUser, PgError> {
        OsUser::for_clusters(self.config.postgres.os_user.as_deref())
    }

    /// The binaries an instance runs with: those of its major version.
    pub fn pg_of(&self, rec: &InstanceRecord) -> std::result::Result<PgEnv, PgError> {
        let major = major_of(&rec.engine_version).ok_or_else(|| {
            PgError::UnsupportedMajor(format!(
                "instance {} has an unknown engine version '{}'",
                rec.id, rec.engine_version
            ))
        })?;
        self.pg(Some(major))
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
