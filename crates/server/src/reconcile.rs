//! Brings the clusters on disk in line with the metadata store when the server starts.
//!
//! - expired temporary instances are released first.
//! - `creating`: the create was interrupted; it is done again from scratch (the
//!   privileged account's SCRAM verifier was kept for this, a temporary instance's
//!   recovery target too), or undone if it fails.
//! - `deleting`: the delete is finished.
//! - `running`: the cluster is started if it is not running.
//! - `stopped`: the cluster is stopped if it runs.
//! - a directory under a region's `instances/` with no live record: its cluster is
//!   stopped and the directory removed (an instance deleted while the server was down,
//!   or a create that crashed before its record was written).

use lifeboat_domain::{InstanceId, InstanceStatus};
use lifeboat_postgres::{Cluster, StopMode};

use crate::instances;
use crate::state::SharedState;

/// Runs once at start. Errors are logged per instance; one broken instance does not
/// keep the others down.
pub async fn reconcile(state: SharedState) {
    if let Err(e) = state.pg_env() {
        tracing::warn!(error = %e, hint = %e.hint(), "PostgreSQL is not usable; instances are not reconciled");
        return;
    }
    // Temporary instances whose time ran out while the server was down go first.
    crate::temporary::release_expired(&state).await;
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
            InstanceStatus::Creating if rec.kind == lifeboat_domain::InstanceKind::Temporary => {
                tracing::info!(instance = %id, "restarting an interrupted temporary instance");
                tokio::spawn(crate::temporary::build(state.clone(), id.clone()));
                Ok(())
            }
            InstanceStatus::Creating => {
                tracing::info!(instance = %id, "resuming an interrupted create");
                instances::finish_create(state.clone(), id.clone()).await
            }
            InstanceStatus::Deleting => {
                tracing::info!(instance = %id, "finishing an interrupted delete");
                instances::finish_delete(state.clone(), id.clone()).await
            }
            InstanceStatus::Running => ensure_running(&state, rec).await,
            InstanceStatus::Stopped => ensure_stopped(&state, rec).await,
            InstanceStatus::Failed | InstanceStatus::Released => Ok(()),
        };
        if let Err(e) = outcome {
            tracing::error!(instance = %id, error = %e.body.message, "reconcile failed");
        }
    }
    sweep_orphans(&state).await;
}

async fn ensure_running(
    state: &SharedState,
    rec: &lifeboat_store::InstanceRecord,
) -> Result<(), crate::error::ApiError> {
    let lock = state.instance_lock(&rec.id);
    let _guard = lock.lock().await;
    instances::start_locked(state, rec).await
}

async fn ensure_stopped(
    state: &SharedState,
    rec: &lifeboat_store::InstanceRecord,
) -> Result<(), crate::error::ApiError> {
    let cluster = instances::cluster_of(state, rec)?;
    tokio::task::spawn_blocking(move || cluster.stop(StopMode::Fast)).await??;
    Ok(())
}

/// Stops and removes instance directories that no live record owns.
async fn sweep_orphans(state: &SharedState) {
    let Ok(env) = state.pg_env() else { return };
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
            let cluster = Cluster::new(entry.path(), 0, env.bins.clone(), env.user.clone());
            let outcome = tokio::task::spawn_blocking(move || {
                cluster.stop(StopMode::Immediate)?;
                cluster.remove_files()
            })
            .await;
            if !matches!(outcome, Ok(Ok(()))) {
                tracing::error!(instance = %id, "cannot remove the orphaned instance directory");
            }
        }
    }
}
