//! Prepared copies: each master's newest base backup, restored ahead of need into
//! `<data root>/prepared/<master>/<backup>`, so that a temporary instance that starts
//! from that backup takes the copy's files with one rename and goes straight to
//! replay. Restoring the files is most of a temporary instance's time when little WAL
//! follows the backup.
//!
//! A copy is made from the repository alone, on a low-priority thread, one at a time
//! for the whole server, after each base backup, at start, and after a temporary
//! instance took the previous one; it replaces the master's older copy. It is written
//! under `<backup>.partial`, synced, then renamed: a directory without the suffix is
//! always complete, and a partial one left by a crash is removed at the next start.
//! A copy takes as much disk as the master's data directory; it is not made when the
//! disk would keep less than [`RESERVE`] free, and not at all with
//! `[temporary_instance] prepared_copies = false`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex};

use lifeboat_backup::RestoreOptions;
use lifeboat_domain::{InstanceId, InstanceKind, InstanceStatus};
use lifeboat_postgres::disk;

use crate::control::backups::repository_of;
use crate::control::registry::region_of;
use crate::control::workers::{self, Priority};
use crate::control::{Error, Result, Shared};

/// Free space a copy must leave on its disk: at least this, and a tenth of the copy.
const RESERVE: u64 = 256 << 20;
/// The suffix of a copy still being written.
const PARTIAL: &str = "partial";
/// The suffix of a copy being removed.
const REMOVING: &str = "removing";

/// One copy is written at a time, whatever the number of masters.
static WRITING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);
/// Masters whose copy waits to be made.
static PENDING: LazyLock<Mutex<HashSet<InstanceId>>> = LazyLock::new(Default::default);
/// Held while a copy's directory is renamed or removed, so a copy is never taken
/// while it is replaced.
static RENAMING: Mutex<()> = Mutex::new(());

/// Where the copies of `master` live.
fn master_dir(state: &Shared, region: &str, master: &InstanceId) -> Result<PathBuf> {
    let region = region_of(state, region)?;
    Ok(region
        .data_root(&state.data_dir)
        .join("prepared")
        .join(master.as_str()))
}

/// Makes the copy of `master`'s newest base backup in the background, unless it
/// exists, is being made, or copies are turned off.
pub fn refresh(state: &Shared, master: &InstanceId) {
    if !state.config.temporary_instance.prepared_copies {
        return;
    }
    {
        let mut pending = PENDING.lock().unwrap_or_else(|p| p.into_inner());
        if !pending.insert(master.clone()) {
            return;
        }
    }
    let (state, master) = (state.clone(), master.clone());
    tokio::spawn(async move {
        let Ok(_slot) = WRITING.acquire().await else {
            return;
        };
        // From here on, a new request (a newer backup) waits for this copy and then
        // makes its own.
        PENDING
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&master);
        if let Err(e) = make(&state, &master).await {
            tracing::warn!(master = %master, error = %e.message, "no prepared copy: temporary instances restore the files instead");
        }
    });
}

/// Starts a copy for every master, and removes partial copies and copies of masters
/// that are gone. Run at start.
pub fn refresh_all(state: &Shared) {
    let records = match state.store.list_instances(false) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list instances for prepared copies");
            return;
        }
    };
    let masters: HashSet<String> = records
        .iter()
        .filter(|r| r.kind == InstanceKind::Master && r.status != InstanceStatus::Released)
        .map(|r| r.id.as_str().to_string())
        .collect();
    for region in &state.config.regions {
        let root = region.data_root(&state.data_dir).join("prepared");
        let Ok(entries) = std::fs::read_dir(&root) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            if !masters.contains(&name) || !state.config.temporary_instance.prepared_copies {
                remove(&entry.path());
                continue;
            }
            for copy in std::fs::read_dir(entry.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                if copy
                    .path()
                    .extension()
                    .is_some_and(|e| e == PARTIAL || e == REMOVING)
                {
                    remove(&copy.path());
                }
            }
        }
    }
    for rec in &records {
        if rec.kind == InstanceKind::Master && rec.status == InstanceStatus::Running {
            refresh(state, &rec.id);
        }
    }
}

/// Removes every copy of `master` (the master is being deleted).
pub fn remove_all(state: &Shared, region: &str, master: &InstanceId) {
    if let Ok(dir) = master_dir(state, region, master) {
        let _renaming = RENAMING.lock().unwrap_or_else(|p| p.into_inner());
        retire(&dir);
    }
}

/// Renames `path` out of the way at once (the caller holds [`RENAMING`]) and removes
/// it on the blocking pool: a copy is as large as its master.
fn retire(path: &Path) {
    if !path.exists() {
        return;
    }
    let gone = path.with_extension(REMOVING);
    match std::fs::rename(path, &gone) {
        Ok(()) => {
            tokio::task::spawn_blocking(move || remove(&gone));
        }
        Err(e) => {
            tracing::warn!(dir = %path.display(), error = %e, "cannot remove a prepared copy")
        }
    }
}

fn remove(path: &Path) {
    match std::fs::remove_dir_all(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            tracing::warn!(dir = %path.display(), error = %e, "cannot remove a prepared copy")
        }
    }
}

/// Moves the copy of `backup_id` of `master`, if there is one, to `data_dir` (which
/// must not hold anything yet). False when there is none or it cannot be moved there
/// (another disk): the caller restores the files.
pub fn take(
    state: &Shared,
    region: &str,
    master: &InstanceId,
    backup_id: &str,
    data_dir: &Path,
) -> Result<bool> {
    if !state.config.temporary_instance.prepared_copies {
        return Ok(false);
    }
    let copy = master_dir(state, region, master)?.join(backup_id);
    let _renaming = RENAMING.lock().unwrap_or_else(|p| p.into_inner());
    if !copy.is_dir() {
        return Ok(false);
    }
    if data_dir.exists() {
        std::fs::remove_dir(data_dir)
            .map_err(|e| Error::internal(format!("cannot use {}: {e}", data_dir.display())))?;
    }
    match std::fs::rename(&copy, data_dir) {
        Ok(()) => {
            if let Some(parent) = data_dir.parent() {
                sync_dir(parent);
            }
            Ok(true)
        }
        Err(e) => {
            tracing::warn!(copy = %copy.display(), error = %e, "cannot move the prepared copy; restoring the files instead");
            Ok(false)
        }
    }
}

/// Writes the copy of `master`'s newest base backup, replacing older ones.
async fn make(state: &Shared, master_id: &InstanceId) -> Result<()> {
    let Some(master) = state.store.find_instance(master_id)? else {
        return Ok(());
    };
    if master.kind != InstanceKind::Master || master.status != InstanceStatus::Running {
        return Ok(());
    }
    let repo = repository_of(state, &master)?;
    let backups = lifeboat_backup::list_backups(&repo, master_id.as_str()).await?;
    let Some(newest) = backups.into_iter().max_by_key(|b| b.stop_lsn) else {
        return Ok(());
    };
    let dir = master_dir(state, &master.region, master_id)?;
    let ready = dir.join(&newest.id);
    if ready.is_dir() {
        return Ok(());
    }
    // Older copies go first: a temporary instance restores from them no faster than
    // from the repository once a newer backup exists, and the disk holds one copy.
    {
        let _renaming = RENAMING.lock().unwrap_or_else(|p| p.into_inner());
        for old in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            retire(&old.path());
        }
    }
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::internal(format!("cannot create {}: {e}", dir.display())))?;
    let free = disk::free_bytes(&dir).map_err(|e| {
        Error::internal(format!(
            "cannot read the free space of {}: {e}",
            dir.display()
        ))
    })?;
    let needed = newest.logical_size + RESERVE.max(newest.logical_size / 10);
    if free < needed {
        return Err(Error::internal(format!(
            "the disk of {} has {} MiB free; a copy of backup {} needs {} MiB with what must stay free",
            dir.display(),
            free >> 20,
            newest.id,
            needed >> 20
        )));
    }
    let partial = dir.join(format!("{}.{PARTIAL}", newest.id));
    let env = state.pg_of(&master)?;
    let options = RestoreOptions {
        owner: Some(env.user.clone()),
        ..RestoreOptions::default()
    };
    let started = std::time::Instant::now();
    let (backup_id, dest, instance) = (newest.id.clone(), partial.clone(), master_id.to_string());
    let written = workers::on_thread("prepare", Priority::Low, move || async move {
        lifeboat_backup::restore(&repo, &instance, &backup_id, &dest, &options, &|_| {}).await?;
        disk::sync_filesystem(&dest)
            .map_err(|e| Error::internal(format!("cannot sync {}: {e}", dest.display())))?;
        Ok(())
    })
    .await;
    if let Err(e) = written {
        let _renaming = RENAMING.lock().unwrap_or_else(|p| p.into_inner());
        retire(&partial);
        return Err(e);
    }
    {
        let _renaming = RENAMING.lock().unwrap_or_else(|p| p.into_inner());
        // Deleted meanwhile: the copy goes too.
        if !matches!(state.store.find_instance(master_id), Ok(Some(r)) if r.status == InstanceStatus::Running)
        {
            retire(&dir);
            return Ok(());
        }
        std::fs::rename(&partial, &ready)
            .map_err(|e| Error::internal(format!("cannot rename {}: {e}", partial.display())))?;
        sync_dir(&dir);
    }
    tracing::info!(master = %master_id, backup = %newest.id, bytes = newest.logical_size, seconds = started.elapsed().as_secs_f64(), "prepared copy ready");
    Ok(())
}

fn sync_dir(path: &Path) {
    if let Ok(d) = std::fs::File::open(path) {
        let _ = d.sync_all();
    }
}
