//! All start-up repair: brings the clusters on disk and the long operations in line
//! with the metadata store after a stop or a crash.
//!
//! Before the server listens ([`before_serving`]):
//! - base backups that were running are marked failed (PostgreSQL ended them with
//!   their session); the schedule takes them again.
//!
//! Once it listens ([`after_start`]), in this order:
//! - expired temporary instances are released.
//! - `creating`: the create was interrupted; it is done again from scratch (the
//!   privileged account's SCRAM verifier was kept for this, a temporary instance's
//!   recovery target too), or undone if it fails.
//! - `deleting`: the delete is finished.
//! - `running`: the cluster is started if it is not running.
//! - `stopped`: the cluster is stopped if it runs.
//! - a directory under a region's `instances/` with no live record: its cluster is
//!   stopped and the directory removed (an instance deleted while the server was down,
//!   or a create that crashed before its record was written).
//! - every master is described in its repository entry (entries written by an
//!   earlier version get their description).
//! - migration tasks that were migrating resume; a pre-check cut short starts over.

use lifeboat_domain::{InstanceId, InstanceKind, InstanceStatus};
use lifeboat_postgres::{Cluster, StopMode};

use super::instances;
use super::registry::cluster_of;
use super::workers::blocking;
use super::{Result, Shared};

/// Repairs what must be right before the first request is answered.
pub fn before_serving(state: &Shared) -> anyhow::Result<()> {
    let interrupted = state.store.fail_interrupted_backup_runs()?;
    if interrupted > 0 {
        tracing::warn!(
            count = interrupted,
            "base backups were interrupted by the last stop; they will be taken again"
        );
    }
    Ok(())
}

/// Runs once at start, while the server already answers. Errors are logged per
/// instance; one broken instance does not keep the others down.
pub async fn after_start(state: Shared) {
    reconcile_instances(&state).await;
    super::migrations::resume(&state).await;
}

async fn reconcile_instances(state: &Shared) {
    if let Err(e) = state.pg_env() {
        tracing::warn!(error = %e, hint = %e.hint(), "PostgreSQL is not usable; instances are not reconciled");
        return;
    }
    // Temporary instances whose time ran out while the server was down go first.
    super::temporary::release_expired(state).await;
    let records = match state.store.list_instances(false) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "cannot read instances; nothing reconciled");
            return;
        }
    };
    for rec in &records {
        let id = rec.id.clone();
        let outcome = match rec.status {
            // A temporary instance or a clone: restored from backups.
            InstanceStatus::Creating
                if rec.kind == InstanceKind::Temporary || rec.restore_target.is_some() =>
            {
                tracing::info!(instance = %id, "restarting an interrupted temporary instance");
                tokio::spawn(super::temporary::build(state.clone(), id.clone(), None));
                Ok(())
            }
            InstanceStatus::Creating if rec.external.is_some() => {
                tracing::info!(instance = %id, "resuming an interrupted adoption");
                super::adoption::finish_adopt(state.clone(), id.clone()).await
            }
            // An adopted cluster runs, or not, outside Lifeboat.
            InstanceStatus::Running | InstanceStatus::Stopped if rec.external.is_some() => Ok(()),
            InstanceStatus::Creating => {
                tracing::info!(instance = %id, "resuming an interrupted create");
                instances::finish_create(state.clone(), id.clone()).await
            }
            InstanceStatus::Deleting => {
                tracing::info!(instance = %id, "finishing an interrupted delete");
                instances::finish_delete(state.clone(), id.clone()).await
            }
            InstanceStatus::Running => ensure_running(state, rec).await,
            InstanceStatus::Stopped => ensure_stopped(state, rec).await,
            InstanceStatus::Failed | InstanceStatus::Released => Ok(()),
        };
        if let Err(e) = outcome {
            tracing::error!(instance = %id, error = %e.message, "reconcile failed");
        }
    }
    sweep_orphans(state).await;
    super::backups::entries::describe_all(state).await;
    let s = state.clone();
    let _ = tokio::task::spawn_blocking(move || super::temporary::prepared::refresh_all(&s)).await;
}

async fn ensure_running(state: &Shared, rec: &lifeboat_store::InstanceRecord) -> Result<()> {
    let lock = state.instance_lock(&rec.id);
    let _guard = lock.lock().await;
    instances::start_locked(state, rec).await
}

async fn ensure_stopped(state: &Shared, rec: &lifeboat_store::InstanceRecord) -> Result<()> {
    let cluster = cluster_of(state, rec)?;
    blocking(move || cluster.stop(StopMode::Fast)).await
}

/// Stops and removes instance directories that no live record owns, each with the
/// binaries of the major its data directory says (`PG_VERSION`).
async fn sweep_orphans(state: &Shared) {
    let Ok(default) = state.pg_env() else { return };
    for region in &state.config.regions {
        let dir = region.instances_dir(&state.data_dir);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            // Only directories named like an instance id are Lifeboat's to remove.
            let Some(id) = name.to_str().and_then(|n| InstanceId::parse(n).ok()) else {
                continue;
            };
            let live = matches!(
                state.store.find_instance(&id),
                Ok(Some(r)) if r.status != InstanceStatus::Released
            );
            if live {
                continue;
            }
            tracing::warn!(instance = %id, dir = %entry.path().display(), "removing an orphaned instance directory");
            let major = std::fs::read_to_string(entry.path().join("data/PG_VERSION"))
                .ok()
                .and_then(|v| v.trim().parse().ok());
            let env = major
                .and_then(|m| state.pg(Some(m)).ok())
                .unwrap_or_else(|| default.clone());
            let cluster = Cluster::new(entry.path(), 0, env.bins, env.user);
            if blocking(move || cluster.discard()).await.is_err() {
                tracing::error!(instance = %id, "cannot remove the orphaned instance directory");
            }
        }
    }
}
