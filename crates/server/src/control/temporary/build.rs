//! Building a temporary instance: restore the base backup the target needs (files in
//! parallel, at low priority, while the WAL feeder fetches WAL ahead), configure
//! recovery, start the copy, follow it to the target ([`super::recovery`]), promote,
//! and take the accounts the master had then.

use std::path::PathBuf;
use std::time::Duration;

use lifeboat_backup::prefetch::Prefetch;
use lifeboat_backup::{RestorableWindow, RestoreOptions};
use lifeboat_domain::{
    InstanceId, InstanceStatus, RestoreTarget, TemporaryPhase, TemporaryProgress,
};
use lifeboat_postgres::recovery::{RecoverySettings, write_recovery_signal};
use lifeboat_postgres::{Cluster, ClusterSettings, PgError, render_hba_for};
use lifeboat_store::{InstanceRecord, StoreError};

use super::target::{backup_for, beyond_window, check_in_windows, recovery_target};
use super::wal_feed::WalFeed;
use super::{prepared, save_progress};
use crate::config::RegionConfig;
use crate::control::backups::entries::backup_source;
use crate::control::backups::inventory::restorable_windows;
use crate::control::backups::present::{ARCHIVE_WAIT, can_reach_present, reach_present};
use crate::control::backups::{lifeboat_binary, repository, repository_config_file};
use crate::control::registry::{cluster_of, region_of, whitelist_of};
use crate::control::workers::{self, Priority, blocking};
use crate::control::{Error, ErrorCode, Result, Shared};

/// WAL segments `restore_command` fetches at once when a segment is not waiting.
const WAL_PREFETCH: usize = 8;

/// Where fetched-ahead WAL segments wait for `restore_command`.
pub fn prefetch_dir(cluster: &Cluster) -> PathBuf {
    cluster.dir.join("wal-prefetch")
}

/// The master whose backups `rec` is restored from: a temporary instance's master, or
/// the source of a clone.
pub fn source_of(rec: &InstanceRecord) -> Option<InstanceId> {
    rec.master_id.clone().or_else(|| rec.restored_from.clone())
}

/// Builds a temporary instance (or a clone) in status `creating` from scratch; on failure undoes
/// everything and records why. `window` is the restorable window the request was
/// checked against, when it is known to hold the target (a resumed build reads it
/// again).
pub async fn build(state: Shared, id: InstanceId, window: Option<RestorableWindow>) {
    let lock = state.instance_lock(&id);
    let _guard = lock.lock().await;
    let Ok(rec) = state.store.instance(&id) else {
        return;
    };
    if rec.status != InstanceStatus::Creating {
        return;
    }
    let outcome = restore_and_recover(&state, &rec, window).await;
    // The next temporary instance finds a prepared copy again (made once this one no
    // longer needs the disk).
    if let Some(master) = source_of(&rec)
        && state.store.find_instance(&master).ok().flatten().is_some()
    {
        prepared::refresh(&state, &master);
    }
    if let Err(e) = outcome {
        tracing::error!(temporary = %id, error = %e.message, "temporary instance failed");
        if let Ok(cluster) = cluster_of(&state, &rec) {
            let _ = blocking(move || cluster.discard()).await;
        }
        if rec.kind == lifeboat_domain::InstanceKind::Master
            && let Err(e) = crate::control::backups::entries::discard(&state, &rec).await
        {
            tracing::warn!(instance = %id, error = %e.message, "cannot empty the failed clone's repository entry");
        }
        let mut progress = state
            .store
            .instance(&id)
            .ok()
            .and_then(|r| r.progress)
            .unwrap_or_default();
        progress.phase = TemporaryPhase::Failed;
        save_progress(&state, &id, &progress);
        let _ = state
            .store
            .set_status(&id, InstanceStatus::Failed, Some(&e.with_hint()));
    }
}

async fn restore_and_recover(
    state: &Shared,
    rec: &InstanceRecord,
    known: Option<RestorableWindow>,
) -> Result<()> {
    let master_id =
        source_of(rec).ok_or_else(|| Error::internal("restored instance without a master"))?;
    let target = rec
        .restore_target
        .clone()
        .ok_or_else(|| Error::internal("temporary instance without a recovery target"))?;
    let region = region_of(state, &rec.region)?.clone();
    let repo = repository(state, &region)?;
    let env = state.pg_of(rec)?;
    let cluster = cluster_of(state, rec)?;
    let c = cluster.clone();
    blocking(move || -> Result<(), PgError> {
        c.discard()?;
        c.create_dir()
    })
    .await?;
    // A clone built again starts with an empty entry of its own.
    if rec.kind == lifeboat_domain::InstanceKind::Master {
        crate::control::backups::entries::discard(state, rec).await?;
    }

    let window = match known {
        Some(w) if !beyond_window(&w, &target) => w,
        _ => reach_target(state, rec, &master_id, &target).await?,
    };
    // Only a backup whose WAL reaches the target, in the window that holds it.
    let manifests = lifeboat_backup::list_backups(&repo, master_id.as_str())
        .await?
        .into_iter()
        .filter(|m| window.backups.contains(&m.id))
        .collect();
    let backup = backup_for(&master_id, manifests, &target)?;
    let mut progress = TemporaryProgress {
        phase: TemporaryPhase::RestoringFiles,
        backup_id: Some(backup.id.clone()),
        bytes_total: backup.logical_size,
        ..Default::default()
    };
    save_progress(state, &rec.id, &progress);

    // WAL is fetched ahead from now on, while the files are restored and then while
    // it is replayed; the guard stops the feeder whichever way this function ends.
    let feed = WalFeed::start(&repo, &master_id, &backup, &cluster, &env.user);
    let started = std::time::Instant::now();
    let (s, region_name, m, b, data) = (
        state.clone(),
        rec.region.clone(),
        master_id.clone(),
        backup.id.clone(),
        cluster.data_dir(),
    );
    progress.files_from_prepared_copy =
        blocking(move || prepared::take(&s, &region_name, &m, &b, &data)).await?;
    if progress.files_from_prepared_copy {
        tracing::info!(temporary = %rec.id, backup = %backup.id, "files taken from the backup's prepared copy");
    } else {
        restore_files(state, rec, &repo, &backup, &cluster, &progress).await?;
        tracing::info!(
            temporary = %rec.id,
            backup = %backup.id,
            bytes = backup.logical_size,
            seconds = started.elapsed().as_secs_f64(),
            "files restored"
        );
    }
    progress.bytes_done = backup.logical_size;

    let recover_to = recovery_target(&window, &target);
    configure_recovery(state, rec, &cluster, &region, &master_id, &recover_to)?;
    progress.phase = TemporaryPhase::ReplayingWal;
    save_progress(state, &rec.id, &progress);
    let c = cluster.clone();
    let address = region.address.clone();
    let started = std::time::Instant::now();
    blocking(move || c.start_recovery(&address)).await?;
    super::recovery::follow(state, rec, &cluster, &backup, &mut progress, &feed).await?;
    tracing::info!(
        temporary = %rec.id,
        wal_bytes = progress.wal_replayed_bytes,
        seconds = started.elapsed().as_secs_f64(),
        "recovered to the target and promoted"
    );
    drop(feed);
    // Segments fetched ahead that replay did not need.
    let _ = std::fs::remove_dir_all(prefetch_dir(&cluster));

    take_accounts(state, rec, &cluster).await?;
    // A clone now becomes the master it was asked to be, backed up from here on.
    if rec.kind == lifeboat_domain::InstanceKind::Master {
        crate::control::clones::become_master(state, rec, &cluster, &region).await?;
    }
    // Said in `temp show` and the console: their rows are not in any restore.
    match crate::control::catalog::unlogged_tables(state, rec).await {
        Ok(tables) => progress.unlogged_tables = tables,
        Err(e) => {
            tracing::warn!(temporary = %rec.id, error = %e.message, "cannot list unlogged tables")
        }
    }
    progress.phase = TemporaryPhase::Ready;
    save_progress(state, &rec.id, &progress);
    state
        .store
        .set_status(&rec.id, InstanceStatus::Running, None)?;
    tracing::info!(temporary = %rec.id, "temporary instance ready");
    Ok(())
}

/// The window that holds `target`: when the target lies beyond the archived WAL of a
/// running master, the master switches WAL and the build waits for the segment to be
/// archived (phase `waiting_for_wal`). A target still outside is refused.
async fn reach_target(
    state: &Shared,
    rec: &InstanceRecord,
    master_id: &InstanceId,
    target: &RestoreTarget,
) -> Result<RestorableWindow> {
    let master = backup_source(state, master_id.as_str()).await?;
    let no_window = || {
        Error::new(
            ErrorCode::NoBackup,
            format!("instance {master_id} has no complete base backup with its WAL"),
            format!("take one: lifeboat backup run {master_id} --wait"),
        )
    };
    let mut windows = restorable_windows(state, &master).await?;
    let last = windows.last().cloned().ok_or_else(no_window)?;
    let mut reached_at = None;
    if beyond_window(&last, target) && last.gap.is_none() && can_reach_present(&master) {
        save_progress(
            state,
            &rec.id,
            &TemporaryProgress {
                phase: TemporaryPhase::WaitingForWal,
                ..Default::default()
            },
        );
        if let Some(reached) = reach_present(state, &master, ARCHIVE_WAIT).await? {
            reached_at = Some(reached.at);
            windows.pop();
            windows.push(reached.window);
        }
    }
    check_in_windows(master_id, &windows, reached_at, target)
}

/// Writes the backup's files into the copy's data directory, recording progress. The
/// restore reads, decompresses and writes every file: it runs on threads at low CPU
/// and I/O priority, like the recovering cluster, so the masters keep theirs.
async fn restore_files(
    state: &Shared,
    rec: &InstanceRecord,
    repo: &lifeboat_backup::Repository,
    backup: &lifeboat_backup::Manifest,
    cluster: &Cluster,
    progress: &TemporaryProgress,
) -> Result<()> {
    let last_saved = std::sync::Mutex::new(std::time::Instant::now());
    let (progress_state, progress_id, base) = (state.clone(), rec.id.clone(), progress.clone());
    let on_progress = move |p: lifeboat_backup::Progress| {
        let mut last = last_saved.lock().unwrap_or_else(|e| e.into_inner());
        if last.elapsed() >= Duration::from_millis(500) {
            *last = std::time::Instant::now();
            let mut now = base.clone();
            now.bytes_done = p.bytes_done;
            now.bytes_total = p.bytes_total;
            save_progress(&progress_state, &progress_id, &now);
        }
    };
    let options = RestoreOptions {
        owner: Some(cluster.user.clone()),
        ..RestoreOptions::default()
    };
    let (repo, master, backup_id, dest) = (
        repo.clone(),
        backup.instance.clone(),
        backup.id.clone(),
        cluster.data_dir(),
    );
    workers::on_thread("restore", Priority::Low, move || async move {
        lifeboat_backup::restore(&repo, &master, &backup_id, &dest, &options, &on_progress).await?;
        Ok(())
    })
    .await
}

/// Records the accounts of the copy: those the master had at the target.
async fn take_accounts(state: &Shared, rec: &InstanceRecord, cluster: &Cluster) -> Result<()> {
    let client = cluster.connect("postgres").await?;
    for account in lifeboat_postgres::accounts::list_accounts(&client).await? {
        match state.store.add_account(
            &rec.id,
            &account.name,
            account.name == rec.privileged_account,
        ) {
            Ok(()) | Err(StoreError::Duplicate(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Writes what the restored copy needs to recover to the target and pause there, and
/// removes what it inherited from the master that must not apply to it.
fn configure_recovery(
    state: &Shared,
    rec: &InstanceRecord,
    cluster: &Cluster,
    region: &RegionConfig,
    master_id: &InstanceId,
    target: &RestoreTarget,
) -> Result<()> {
    let recovery = RecoverySettings {
        restore_command: lifeboat_backup::restore::restore_command(
            &lifeboat_binary(&state.data_dir),
            &repository_config_file(state, region),
            master_id.as_str(),
            Some(&Prefetch {
                dir: prefetch_dir(cluster),
                ahead: WAL_PREFETCH,
            }),
        ),
        target: target.clone(),
        pause_at_target: true,
    };
    cluster.write_settings(&ClusterSettings {
        port: rec.port,
        listen_address: region.address.clone(),
        socket_dir: cluster.socket_dir().to_path_buf(),
        archive: None,
        extra: recovery
            .settings()
            .into_iter()
            .chain([(
                "shared_buffers".to_string(),
                state.config.temporary_instance.shared_buffers.clone(),
            )])
            .collect(),
    })?;
    cluster.write_hba(&render_hba_for(
        &cluster.role,
        &whitelist_of(state, &rec.id)?,
    ))?;
    // ALTER SYSTEM settings override lifeboat.conf.
    cluster.drop_inherited_settings()?;
    write_recovery_signal(&cluster.data_dir(), Some(&cluster.user))?;
    Ok(())
}
