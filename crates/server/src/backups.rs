//! Continuous backup of every master: WAL archiving settings, base backups (after
//! create, on a schedule, on demand), retention, and the views of the repository.
//!
//! `archive_command` runs `<data dir>/bin/lifeboat wal-push` as the clusters' OS user,
//! reading `<region data root>/repository.toml`; both are put in place when the server
//! starts. A base backup attempt is recorded in the metadata store (`backup_runs`); the
//! backup itself exists only once its manifest is in the repository, so a crash during a
//! backup leaves nothing a restore would use, and the run is marked failed at restart.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::Utc;
use lifeboat_backup::{BackupOptions, Repository};
use lifeboat_domain::{InstanceId, InstanceKind, InstanceStatus};
use lifeboat_postgres::settings::ArchiveSettings;
use lifeboat_store::{BackupRun, InstanceRecord, StoreError};

use crate::config::RegionConfig;
use crate::error::ApiError;
use crate::instances::{cluster_of, region_of};
use crate::state::SharedState;

/// The longest a base backup may take before it is abandoned.
const BACKUP_TIMEOUT: Duration = Duration::from_secs(6 * 3600);
/// How often the scheduler looks for masters due a backup.
const SCHEDULER_TICK: Duration = Duration::from_secs(10);

/// Where the copy of the `lifeboat` binary that PostgreSQL runs lives.
pub fn lifeboat_binary(data_dir: &Path) -> PathBuf {
    data_dir.join("bin").join("lifeboat")
}

/// The repository config file `archive_command` and `restore_command` read.
pub fn repository_config_file(state: &SharedState, region: &RegionConfig) -> PathBuf {
    region.data_root(&state.data_dir).join("repository.toml")
}

/// Puts in place what PostgreSQL needs to archive into each region's repository: a copy
/// of this binary it can execute, and the repository config it can read. Called at start.
pub fn prepare(state: &SharedState) -> anyhow::Result<()> {
    install_binary(&state.data_dir)?;
    let user = state.pg_env().ok().map(|e| e.user);
    for region in &state.config.regions {
        let config = region.repository_config(&state.data_dir);
        let path = repository_config_file(state, region);
        config
            .save(&path)
            .map_err(|e| anyhow::anyhow!("region '{}': {e}; hint: {}", region.name, e.hint()))?;
        let repo = Repository::open(&config).map_err(|e| {
            anyhow::anyhow!(
                "region '{}': cannot open the backup repository: {e}; hint: {}",
                region.name,
                e.hint()
            )
        })?;
        if let Some(user) = &user {
            user.chown(&path)?;
            if let Some(root) = repo.local_root() {
                user.chown(root)?;
            }
        }
    }
    Ok(())
}

/// Links (or copies) the running binary to `<data dir>/bin/lifeboat`, mode 0755, so the
/// clusters' OS user can run it whatever directory the binary was started from.
fn install_binary(data_dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let exe = std::env::current_exe()?;
    let dir = data_dir.join("bin");
    std::fs::create_dir_all(&dir)?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))?;
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
    Ok(())
}

pub fn repository(state: &SharedState, region: &RegionConfig) -> Result<Repository, ApiError> {
    Repository::open(&region.repository_config(&state.data_dir)).map_err(backup_error)
}

/// The archive settings of a master; temporary instances never archive.
pub fn archive_settings(
    state: &SharedState,
    rec: &InstanceRecord,
) -> Result<Option<ArchiveSettings>, ApiError> {
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
pub fn archive_status_file(state: &SharedState, rec: &InstanceRecord) -> Result<PathBuf, ApiError> {
    let region = region_of(state, &rec.region)?;
    Ok(region
        .instances_dir(&state.data_dir)
        .join(rec.id.as_str())
        .join("archive-status.json"))
}

/// Makes the instance's place in the repository writable by `archive_command`.
pub fn prepare_instance(state: &SharedState, rec: &InstanceRecord) -> Result<(), ApiError> {
    let region = region_of(state, &rec.region)?;
    let env = state.pg_env()?;
    repository(state, region)?
        .prepare_instance(rec.id.as_str(), Some(&env.user))
        .map_err(backup_error)
}

pub fn backup_error(e: lifeboat_backup::BackupError) -> ApiError {
    let hint = e.hint();
    if e.is_not_found() {
        return ApiError::not_found(e.to_string(), hint);
    }
    ApiError::new(
        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
        "backup_failed",
        e.to_string(),
        hint,
    )
}

/// Starts a base backup of a running master in the background and returns its run.
pub async fn start_backup(
    state: &SharedState,
    id: &InstanceId,
    trigger: &str,
) -> Result<BackupRun, ApiError> {
    let rec = state.store.instance(id)?;
    if rec.kind != InstanceKind::Master || rec.status != InstanceStatus::Running {
        return Err(ApiError::conflict(
            "invalid_state",
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
            return Err(ApiError::conflict(
                "backup_running",
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
                    tracing::warn!(instance = %id, error = %e.body.message, "retention failed");
                }
            }
            Err(e) => {
                tracing::error!(instance = %id, error = %e.body.message, "base backup failed");
                let _ = task_state
                    .store
                    .fail_backup_run(task_run.id, &e.body.message);
            }
        }
    });
    Ok(run)
}

async fn run_backup(
    state: &SharedState,
    rec: &InstanceRecord,
    run_id: i64,
) -> Result<(String, i64, i64), ApiError> {
    let region = region_of(state, &rec.region)?;
    let repo = repository(state, region)?;
    let cluster = cluster_of(state, rec)?;
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
    let manifest = crate::priority::run("backup", move || async move {
        let backup = lifeboat_backup::run_backup(&repo, id.as_str(), &cluster, &options, &progress);
        tokio::time::timeout(BACKUP_TIMEOUT, backup)
            .await
            .map_err(|_| {
                ApiError::new(
                    axum::http::StatusCode::GATEWAY_TIMEOUT,
                    "backup_timeout",
                    format!("the base backup of {id} did not finish within {} hours", BACKUP_TIMEOUT.as_secs() / 3600),
                    "check WAL archiving in `lifeboat instance show`: the backup waits for its WAL to be archived",
                )
            })?
            .map_err(backup_error)
    })
    .await?;
    Ok((
        manifest.id,
        manifest.logical_size as i64,
        manifest.stop_lsn.0 as i64,
    ))
}

/// Expires backups older than the retention, keeping the WAL every kept backup needs.
pub async fn apply_retention(state: &SharedState, rec: &InstanceRecord) -> Result<(), ApiError> {
    let region = region_of(state, &rec.region)?;
    let repo = repository(state, region)?;
    let keep = chrono::Duration::from_std(state.config.backup.retention)
        .map_err(|_| ApiError::internal("backup retention is out of range"))?;
    let report = lifeboat_backup::expire(&repo, rec.id.as_str(), keep, Utc::now())
        .await
        .map_err(backup_error)?;
    if !report.expired_backups.is_empty() {
        tracing::info!(instance = %rec.id, expired = ?report.expired_backups, wal = report.deleted_wal, "expired old backups");
    }
    Ok(())
}

/// Takes a base backup of every running master that has none yet or whose last one is
/// older than the schedule. Runs until the server stops.
pub async fn scheduler(state: SharedState) {
    // A schedule shorter than the tick (tests, busy systems) is still honoured.
    let period = SCHEDULER_TICK
        .min(state.config.backup.schedule / 2)
        .max(Duration::from_secs(1));
    let mut tick = tokio::time::interval(period);
    // The last archiving failure logged per instance, so each is logged once.
    let mut reported = std::collections::HashMap::new();
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Ok(masters) = state.store.list_instances(false) else {
            continue;
        };
        for rec in masters
            .iter()
            .filter(|r| r.kind == InstanceKind::Master && r.status == InstanceStatus::Running)
        {
            report_archiving_failure(&state, rec, &mut reported);
            let trigger = match due(&state, &rec.id) {
                Due::Now => Some("schedule"),
                Due::IfWalSince(lsn) => wal_since(&state, rec, lsn).await.then_some("wal"),
                Due::No => None,
            };
            if let Some(trigger) = trigger {
                match start_backup(&state, &rec.id, trigger).await {
                    Ok(run) => {
                        tracing::info!(instance = %rec.id, run = run.id, "scheduled base backup started")
                    }
                    Err(e) if e.body.code == "backup_running" => {}
                    Err(e) => {
                        tracing::warn!(instance = %rec.id, error = %e.body.message, "cannot start a scheduled backup")
                    }
                }
            }
        }
    }
}

/// Logs a new archiving failure of `rec` in the server log (the reason comes from the
/// status file `wal-push` keeps), once per failure.
fn report_archiving_failure(
    state: &SharedState,
    rec: &InstanceRecord,
    reported: &mut std::collections::HashMap<InstanceId, chrono::DateTime<Utc>>,
) {
    let Ok(path) = archive_status_file(state, rec) else {
        return;
    };
    let status = lifeboat_backup::archive_status::ArchiveStatus::load(&path);
    if !status.failing() {
        return;
    }
    let Some(failure) = status.last_failure else {
        return;
    };
    if reported.get(&rec.id) == Some(&failure.time) {
        return;
    }
    tracing::error!(
        instance = %rec.id,
        file = %failure.file,
        reason = %failure.reason.clone().unwrap_or_default(),
        "WAL archiving is failing; PostgreSQL keeps the WAL and retries"
    );
    reported.insert(rec.id.clone(), failure.time);
}

/// Due when no backup completed yet, or the last completed one started longer ago than
/// the schedule, or (checked by the caller) enough WAL was written since it ended. A master whose latest attempts failed is retried at each tick after a
/// pause of one tick per failure, up to the schedule.
enum Due {
    Now,
    /// When more WAL than `max_wal_between_backups` was written since this position.
    IfWalSince(i64),
    No,
}

fn due(state: &SharedState, id: &InstanceId) -> Due {
    let Ok(runs) = state.store.backup_runs(id, 20) else {
        return Due::No;
    };
    if runs.first().is_some_and(|r| r.state == "running") {
        return Due::No;
    }
    let schedule = chrono::Duration::from_std(state.config.backup.schedule)
        .unwrap_or(chrono::Duration::days(1));
    let failures = runs.iter().take_while(|r| r.state == "failed").count() as i32;
    if let Some(last) = runs.first().filter(|_| failures > 0) {
        let pause =
            (chrono::Duration::seconds(SCHEDULER_TICK.as_secs() as i64) * failures).min(schedule);
        if Utc::now() - last.finished_at.unwrap_or(last.started_at) < pause {
            return Due::No;
        }
    }
    match runs.iter().find(|r| r.state == "completed") {
        None => Due::Now,
        Some(done) if Utc::now() - done.started_at >= schedule => Due::Now,
        Some(done) => done.stop_lsn.map_or(Due::No, Due::IfWalSince),
    }
}

/// Whether the master wrote more WAL than `max_wal_between_backups` since `lsn`.
async fn wal_since(state: &SharedState, rec: &InstanceRecord, lsn: i64) -> bool {
    let Ok(cluster) = cluster_of(state, rec) else {
        return false;
    };
    let Ok(client) = cluster.connect("postgres").await else {
        return false;
    };
    let current = client
        .query_one("SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint", &[])
        .await
        .map(|r| r.get::<_, i64>(0));
    matches!(current, Ok(c) if c.saturating_sub(lsn) >= state.config.backup.max_wal_between_backups as i64)
}

/// How WAL archiving of a master is going, from `pg_stat_archiver` and, for the reason
/// of the last failure, the message `lifeboat wal-push` left in the server log.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ArchivingView {
    pub archived_count: i64,
    pub last_archived_wal: Option<String>,
    pub last_archived_at: Option<chrono::DateTime<Utc>>,
    pub failed_count: i64,
    pub last_failed_wal: Option<String>,
    pub last_failed_at: Option<chrono::DateTime<Utc>>,
    /// Why the last attempt failed (repository unreachable, disk full...).
    pub last_failure_reason: Option<String>,
    /// True when the last attempt failed and nothing was archived since.
    pub failing: bool,
}

pub async fn archiving_health(cluster: &lifeboat_postgres::Cluster) -> Option<ArchivingView> {
    let client = cluster.connect("postgres").await.ok()?;
    let row = client
        .query_one(
            "SELECT archived_count, last_archived_wal, last_archived_time, failed_count, last_failed_wal, last_failed_time FROM pg_stat_archiver",
            &[],
        )
        .await
        .ok()?;
    let last_archived_at: Option<chrono::DateTime<Utc>> = row.get(2);
    let last_failed_at: Option<chrono::DateTime<Utc>> = row.get(5);
    let failing = match (last_failed_at, last_archived_at) {
        (Some(f), Some(a)) => f > a,
        (Some(_), None) => true,
        _ => false,
    };
    let last_failure_reason = if last_failed_at.is_some() {
        lifeboat_backup::archive_status::ArchiveStatus::load(
            &cluster.dir.join("archive-status.json"),
        )
        .last_failure
        .and_then(|f| f.reason)
        .or_else(|| last_push_error(&cluster.log_file()))
    } else {
        None
    };
    Some(ArchivingView {
        archived_count: row.get(0),
        last_archived_wal: row.get(1),
        last_archived_at,
        failed_count: row.get(3),
        last_failed_wal: row.get(4),
        last_failed_at,
        last_failure_reason,
        failing,
    })
}

/// The last `lifeboat wal-push: ...` line of the cluster's log (its last 256 kB).
fn last_push_error(log: &Path) -> Option<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(log).ok()?;
    let len = f.metadata().ok()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(256 * 1024)))
        .ok()?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf);
    text.lines().rev().find_map(|l| {
        l.find("lifeboat wal-push:")
            .map(|i| l[i + "lifeboat wal-push:".len()..].trim().to_string())
    })
}
