//! Continuous backup of every master: WAL archiving settings, base backups (after
//! create, on a schedule, after much WAL, on demand), retention, and what the
//! repository holds.
//!
//! `archive_command` runs `<data dir>/bin/lifeboat wal-push` as the clusters' OS user,
//! reading `<region data root>/repository.toml`; both are put in place when the server
//! starts. A base backup attempt is recorded in the metadata store (`backup_runs`); the
//! backup itself exists only once its manifest is in the repository, so a crash during a
//! backup leaves nothing a restore would use, and the run is marked failed at restart.
//!
//! # Layout
//! - this module: the repository, archive settings, taking a backup, retention.
//! - [`schedule`]: when a master is due a backup, and the scheduler.
//! - [`inventory`]: the backups, the restorable window, verification.
//! - [`entries`]: each master's description in the repository, whose entry it is,
//!   and the masters a repository holds that this server does not manage.
//! - [`archiving`]: how archiving goes, for `instance show`.
//! - [`present`]: a window that reaches the present, by a WAL switch on the master.

pub mod archiving;
pub mod entries;
pub mod inventory;
pub mod present;
pub mod schedule;
pub mod stream;

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::Utc;
use lifeboat_backup::{BackupOptions, Repository};
use lifeboat_domain::{BackupTrigger, InstanceId, InstanceKind, InstanceStatus};
use lifeboat_postgres::settings::ArchiveSettings;
use lifeboat_store::{BackupRun, InstanceRecord, StoreError};

use super::registry::{cluster_of, region_of};
use super::workers::{self, Priority};
use super::{Error, ErrorCode, Result, Shared};
use crate::config::RegionConfig;

/// The longest a base backup may take before it is abandoned.
const BACKUP_TIMEOUT: Duration = Duration::from_secs(6 * 3600);

/// Where the copy of the `lifeboat` binary that PostgreSQL runs lives.
pub fn lifeboat_binary(data_dir: &Path) -> PathBuf {
    data_dir.join("bin").join("lifeboat")
}

/// The repository config file `archive_command` and `restore_command` read.
pub fn repository_config_file(state: &Shared, region: &RegionConfig) -> PathBuf {
    region.data_root(&state.data_dir).join("repository.toml")
}

/// The copy of an encrypted region's key that `archive_command` and `restore_command`
/// read (mode 0600, owned by the clusters' OS user, which may not read the original).
pub fn repository_key_copy(state: &Shared, region: &RegionConfig) -> PathBuf {
    region.data_root(&state.data_dir).join("repository.key")
}

/// Puts in place what PostgreSQL needs to archive into each region's repository: a copy
/// of this binary it can execute, and the repository config (and key) it can read.
/// Checks each repository's encryption against the region's key, and writes the
/// marker of a new encrypted repository. Called at start.
pub async fn prepare(state: &Shared) -> anyhow::Result<()> {
    let user = state.os_user().ok();
    install_binary(&state.data_dir, user.as_ref())?;
    for region in &state.config.regions {
        let in_region = |e: lifeboat_backup::BackupError| {
            let key = region
                .repository_key_file
                .as_ref()
                .map(|k| format!(" (repository_key_file {})", k.display()))
                .unwrap_or_default();
            anyhow::anyhow!("region '{}'{key}: {e}; hint: {}", region.name, e.hint())
        };
        let config = region.repository_config(&state.data_dir);
        let repo = Repository::open(&config).map_err(|e| {
            anyhow::anyhow!(
                "region '{}': cannot open the backup repository: {e}; hint: {}",
                region.name,
                e.hint()
            )
        })?;
        match repo.mark_encryption().await {
            Ok(()) => {}
            // An unreachable repository must not keep the server from starting; a
            // backup, a restore and verify check the key again before they run.
            Err(e) if e.is_retryable() => tracing::warn!(
                region = %region.name,
                error = %e,
                "cannot check the backup repository's encryption now; backups, restores and verify check it before they run"
            ),
            Err(e) => return Err(in_region(e)),
        }
        let mut for_commands = config.clone();
        let copy = repository_key_copy(state, region);
        match config.key().map_err(in_region)? {
            Some((_, key)) => {
                key.save(&copy).map_err(in_region)?;
                if let Some(user) = &user {
                    user.chown(&copy)?;
                }
                for_commands.repository_key_file = Some(copy);
            }
            None => {
                let _ = std::fs::remove_file(&copy);
            }
        }
        let path = repository_config_file(state, region);
        for_commands.save(&path).map_err(in_region)?;
        if let Some(user) = &user {
            user.chown(&path)?;
            if let Some(root) = repo.local_root() {
                user.chown(root)?;
            }
        }
    }
    Ok(())
}

/// Links (or copies) the running binary to `<data dir>/bin/lifeboat`, mode 0755 in a
/// directory only the clusters' OS user may pass, so that user can run it whatever
/// directory the binary was started from.
fn install_binary(data_dir: &Path, user: Option<&lifeboat_postgres::OsUser>) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let exe = std::env::current_exe()?;
    let dir = data_dir.join("bin");
    std::fs::create_dir_all(&dir)?;
    match user {
        Some(u) => u.share_dir(&dir)?,
        None => std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?,
    }
    let dest = lifeboat_binary(data_dir);
    let tmp = dir.join(".lifeboat.tmp");
    let _ = std::fs::remove_file(&tmp);
    if std::fs::hard_link(&exe, &tmp).is_err() {
        std::fs::copy(&exe, &tmp).map_err(|e| {
            anyhow::anyhow!("cannot copy {} to {}: {e}", exe.display(), tmp.display())
        })?;
    }
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))?;
    std::fs::rename(&tmp, &dest)?;
    // A rename onto another link to the same file does nothing: the temporary name
    // stays behind.
    let _ = std::fs::remove_file(&tmp);
    Ok(())
}

/// The backup repository of a region.
pub fn repository(state: &Shared, region: &RegionConfig) -> Result<Repository> {
    Ok(Repository::open(
        &region.repository_config(&state.data_dir),
    )?)
}

/// The backup repository an instance's backups are in.
pub fn repository_of(state: &Shared, rec: &InstanceRecord) -> Result<Repository> {
    repository(state, region_of(state, &rec.region)?)
}

/// The archive settings of a master; temporary instances never archive.
pub fn archive_settings(state: &Shared, rec: &InstanceRecord) -> Result<Option<ArchiveSettings>> {
    if rec.kind != InstanceKind::Master {
        return Ok(None);
    }
    let region = region_of(state, &rec.region)?;
    let command = lifeboat_backup::wal::archive_command(
        &lifeboat_binary(&state.data_dir),
        &repository_config_file(state, region),
        rec.id.as_str(),
    );
    // wal-push records the outcome of each push where the server can read why the
    // last one failed (the instance directory, writable by the cluster's OS user).
    let status = archive_status_file(state, rec)?;
    let quoted = format!("'{}'", status.display().to_string().replace('\'', "'\\''"));
    let command = match command.strip_suffix(" %p") {
        Some(head) => format!("{head} --status-file {quoted} %p"),
        None => command,
    };
    Ok(Some(ArchiveSettings {
        command,
        timeout_secs: state.config.backup.archive_timeout.as_secs().max(1),
    }))
}

/// Where `wal-push` records how archiving of `rec` goes.
pub fn archive_status_file(state: &Shared, rec: &InstanceRecord) -> Result<PathBuf> {
    let region = region_of(state, &rec.region)?;
    Ok(region
        .instances_dir(&state.data_dir)
        .join(rec.id.as_str())
        .join("archive-status.json"))
}

/// Makes the instance's place in the repository writable by `archive_command`.
pub fn prepare_instance(state: &Shared, rec: &InstanceRecord) -> Result<()> {
    let user = state.os_user()?;
    Ok(repository_of(state, rec)?.prepare_instance(rec.id.as_str(), Some(&user))?)
}

/// Takes the first base backup of a new master, before it is reported running: the
/// restorable window then starts with the instance (the cluster holds little yet, so
/// it takes seconds). A failure fails the create: a master that cannot be backed up
/// is not what the user asked for.
pub async fn take_first_backup(state: &Shared, rec: &InstanceRecord) -> Result<BackupRun> {
    let run = state
        .store
        .start_backup_run(&rec.id, BackupTrigger::Create)?;
    match run_backup(state, rec, run.id).await {
        Ok((backup_id, bytes, stop_lsn)) => {
            state
                .store
                .complete_backup_run(run.id, &backup_id, bytes, stop_lsn)?;
            tracing::info!(instance = %rec.id, backup = %backup_id, bytes, "first base backup completed");
            Ok(state.store.backup_run(run.id)?)
        }
        Err(e) => {
            let _ = state.store.fail_backup_run(run.id, &e.message);
            Err(Error::new(
                e.code,
                format!("the first base backup of {} failed: {}", rec.id, e.message),
                e.hint,
            ))
        }
    }
}

/// Starts a base backup of a running master in the background and returns its run.
pub async fn start_backup(
    state: &Shared,
    id: &InstanceId,
    trigger: BackupTrigger,
) -> Result<BackupRun> {
    let rec = state.store.instance(id)?;
    if rec.kind != InstanceKind::Master || rec.status != InstanceStatus::Running {
        return Err(Error::invalid_state(
            format!(
                "cannot back up instance {id}: it is a {} {} instance",
                rec.status, rec.kind
            ),
            "only running masters are backed up; start it first (lifeboat instance start ID)",
        ));
    }
    let run = match state.store.start_backup_run(id, trigger) {
        Ok(run) => run,
        Err(StoreError::Duplicate(_)) => {
            return Err(Error::new(
                ErrorCode::BackupRunning,
                format!("a backup of {id} is already running"),
                format!("wait for it to end: lifeboat backup list {id}"),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let task_state = state.clone();
    let task_run = run.clone();
    tokio::spawn(async move {
        let id = rec.id.clone();
        match run_backup(&task_state, &rec, task_run.id).await {
            Ok((backup_id, bytes, stop_lsn)) => {
                tracing::info!(instance = %id, backup = %backup_id, bytes, "base backup completed");
                let _ =
                    task_state
                        .store
                        .complete_backup_run(task_run.id, &backup_id, bytes, stop_lsn);
                if let Err(e) = apply_retention(&task_state, &rec).await {
                    tracing::warn!(instance = %id, error = %e.message, "retention failed");
                }
                crate::control::temporary::prepared::refresh(&task_state, &id);
            }
            Err(e) => {
                tracing::error!(instance = %id, error = %e.message, "base backup failed");
                let _ = task_state.store.fail_backup_run(task_run.id, &e.message);
            }
        }
    });
    Ok(run)
}

async fn run_backup(
    state: &Shared,
    rec: &InstanceRecord,
    run_id: i64,
) -> Result<(String, i64, i64)> {
    entries::require_owned(state, rec).await?;
    let repo = repository_of(state, rec)?;
    let store_state = state.clone();
    let last_saved = std::sync::Mutex::new(std::time::Instant::now());
    let progress = move |p: lifeboat_backup::Progress| {
        // Persist progress at most once a second: it runs after every chunk.
        let mut last = last_saved.lock().unwrap_or_else(|p| p.into_inner());
        if last.elapsed() >= Duration::from_secs(1) {
            *last = std::time::Instant::now();
            let _ = store_state.store.set_backup_progress(
                run_id,
                p.bytes_done as i64,
                p.bytes_total as i64,
            );
        }
    };
    // pg_backup_stop waits for its WAL to be archived, forever if archiving fails:
    // give up after a bound so the run ends, says why, and the next one can start.
    let options = BackupOptions::default();
    // Reading, hashing and compressing the master's files runs at low CPU and I/O
    // priority, so the master's own queries keep theirs.
    // The time bound applies on that thread, so a backup that gives up is dropped
    // there (its session closes and PostgreSQL ends the backup).
    let id = rec.id.clone();
    // An adopted cluster is backed up over the replication protocol, with the WAL the
    // backup needs; one Lifeboat runs from its data directory.
    let source = match &rec.external {
        Some(_) => Source::Replication(replication_source(state, rec)?),
        None => Source::Files(cluster_of(state, rec)?),
    };
    let manifest = workers::on_thread("backup", Priority::Low, move || async move {
        let backup = async {
            match &source {
                Source::Files(cluster) => {
                    lifeboat_backup::run_backup(&repo, id.as_str(), cluster, &options, &progress)
                        .await
                }
                Source::Replication(src) => {
                    lifeboat_backup::run_replication_backup(
                        &repo,
                        id.as_str(),
                        src,
                        &options,
                        &progress,
                    )
                    .await
                }
            }
        };
        tokio::time::timeout(BACKUP_TIMEOUT, backup)
            .await
            .map_err(|_| {
                Error::new(
                    ErrorCode::BackupTimeout,
                    format!("the base backup of {id} did not finish within {} hours", BACKUP_TIMEOUT.as_secs() / 3600),
                    "check WAL archiving in `lifeboat instance show`: the backup waits for its WAL to be archived",
                )
            })?
            .map_err(Error::from)
    })
    .await?;
    Ok((
        manifest.id,
        manifest.logical_size as i64,
        manifest.stop_lsn.0 as i64,
    ))
}

/// What a base backup reads.
enum Source {
    /// The data directory of a cluster Lifeboat runs.
    Files(lifeboat_postgres::Cluster),
    /// An adopted cluster, over the replication protocol.
    Replication(lifeboat_backup::ReplicationSource),
}

/// How an adopted instance is backed up: `pg_basebackup` of its major, as its
/// account.
fn replication_source(
    state: &Shared,
    rec: &InstanceRecord,
) -> Result<lifeboat_backup::ReplicationSource> {
    let env = state.pg_of(rec)?;
    let target = crate::control::adoption::target_of(state, rec)?;
    // engine_version is "major.minor" (15.10), as server_version_num counts it.
    let (major, minor) = rec
        .engine_version
        .split_once('.')
        .and_then(|(a, b)| Some((a.parse::<i32>().ok()?, b.parse::<i32>().ok()?)))
        .unwrap_or((env.bins.major as i32, 0));
    Ok(lifeboat_backup::ReplicationSource {
        pg_basebackup: env.bins.path("pg_basebackup"),
        host: target.host,
        port: target.port,
        account: target.account,
        password: target.password,
        server_version_num: major * 10_000 + minor,
        wal_owner: Some(env.user),
    })
}

/// Expires backups older than the retention, keeping the WAL every kept backup needs.
pub async fn apply_retention(state: &Shared, rec: &InstanceRecord) -> Result<()> {
    entries::require_owned(state, rec).await?;
    let repo = repository_of(state, rec)?;
    let keep = chrono::Duration::from_std(state.config.backup.retention)
        .map_err(|_| Error::internal("backup retention is out of range"))?;
    let report = lifeboat_backup::expire(&repo, rec.id.as_str(), keep, Utc::now()).await?;
    if !report.expired_backups.is_empty() {
        tracing::info!(instance = %rec.id, expired = ?report.expired_backups, wal = report.deleted_wal, "expired old backups");
    }
    Ok(())
}
