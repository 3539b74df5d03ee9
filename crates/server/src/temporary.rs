//! Temporary instances: a master restored to a point in time from its backup repository
//! alone, never touching the master, one per master, released after a time to live.
//!
//! Creation is a persisted state machine: the record (status `creating`, with its
//! recovery target) is written first, then the build runs in the background through the
//! phases `restoring_files`, `replaying_wal`, `promoting`, `ready`, each recorded in the
//! record's progress. A build that fails is undone (cluster stopped, directory removed)
//! and the record says why; a build interrupted by a server crash is started again from
//! scratch by the reconciler.

use std::time::Duration;

use chrono::{DateTime, Offset, Utc};
use lifeboat_backup::prefetch::FeedControl;
use lifeboat_backup::{Lsn, Manifest, RecoverySettings, RecoveryTarget, RestoreOptions};
use lifeboat_domain::target::parse_time;
use lifeboat_domain::{InstanceId, InstanceKind, InstanceStatus, RestoreTarget, WhitelistEntry};
use lifeboat_postgres::{Cluster, ClusterSettings, ClusterStatus, StopMode, render_hba};
use lifeboat_store::{InstanceRecord, NewInstance, StoreError};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::backups::{self, backup_error};
use crate::error::ApiError;
use crate::instances::{allocate_port, cluster_of, region_of};
use crate::state::SharedState;

/// PostgreSQL's message when the archived WAL ended before the target.
const SHORT_OF_TARGET: &str = "recovery ended before configured recovery target was reached";
/// WAL segments `restore_command` fetches at once when a segment is not waiting.
const WAL_PREFETCH: usize = 8;
/// How far ahead of replay the server's WAL feeder keeps segments waiting (16 MiB each).
const WAL_FEED_AHEAD: usize = 32;
/// How often the build looks at the recovering cluster.
const POLL: Duration = Duration::from_millis(100);

/// What the user asked for: exactly one of `at`, `lsn`, `restore_point`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTemporary {
    /// RFC 3339, or `YYYY-MM-DD HH:MM:SS[.ffffff]` read in `tz`.
    pub at: Option<String>,
    /// IANA zone for `at` without an offset; default the server's zone.
    pub tz: Option<String>,
    /// A WAL position such as `0/3000028`.
    pub lsn: Option<String>,
    /// A restore point created on the master with `pg_create_restore_point`.
    pub restore_point: Option<String>,
}

/// How far the creation of a temporary instance got.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct TemporaryProgress {
    /// `queued`, `restoring_files`, `replaying_wal`, `promoting`, `ready` or `failed`.
    pub phase: String,
    /// The base backup restored.
    pub backup_id: Option<String>,
    pub bytes_done: u64,
    pub bytes_total: u64,
    /// The last WAL position replayed.
    pub replay_lsn: Option<String>,
    /// Bytes of WAL replayed since the backup's start.
    pub wal_replayed_bytes: u64,
}

fn save_progress(state: &SharedState, id: &InstanceId, p: &TemporaryProgress) {
    if let Ok(json) = serde_json::to_string(p) {
        let _ = state.store.set_progress(id, &json);
    }
}

/// Reads the request into one target, checked against the clock.
fn parse_target(req: &CreateTemporary) -> Result<RestoreTarget, ApiError> {
    let given = [
        req.at.is_some(),
        req.lsn.is_some(),
        req.restore_point.is_some(),
    ];
    if given.iter().filter(|g| **g).count() != 1 {
        return Err(ApiError::bad_request(
            "give exactly one recovery target",
            "use --at TIME, --lsn LSN or --restore-point NAME",
        ));
    }
    if let Some(at) = &req.at {
        let local = *chrono::Local::now().offset();
        let t = parse_time(at, req.tz.as_deref(), local)?;
        if t.with_timezone(&Utc) > Utc::now() {
            return Err(ApiError::bad_request(
                format!("{} is in the future", t.to_rfc3339()),
                "choose a time in the past, inside the restorable window (lifeboat backup window ID)",
            ));
        }
        return Ok(RestoreTarget::Time(t));
    }
    if let Some(lsn) = &req.lsn {
        let parsed: Lsn = lsn.parse().map_err(|_| {
            ApiError::bad_request(format!("'{lsn}' is not an LSN"), "write it like 0/3000028")
        })?;
        return Ok(RestoreTarget::Lsn(parsed.to_string()));
    }
    let name = req.restore_point.clone().unwrap_or_default();
    if name.is_empty() || name.len() > 63 {
        return Err(ApiError::bad_request(
            "a restore point name has 1 to 63 characters",
            "give the name passed to pg_create_restore_point on the master",
        ));
    }
    Ok(RestoreTarget::RestorePoint(name))
}

/// Checks the target against the restorable window computed from the repository.
async fn check_window(
    state: &SharedState,
    master: &InstanceRecord,
    target: &RestoreTarget,
) -> Result<(), ApiError> {
    let region = region_of(state, &master.region)?;
    let repo = backups::repository(state, region)?;
    let waldump = state.pg_env()?.bins.path("pg_waldump");
    let window = lifeboat_backup::restorable_window(&repo, master.id.as_str(), &waldump)
        .await
        .map_err(backup_error)?;
    let Some(w) = window else {
        return Err(ApiError::conflict(
            "no_backup",
            format!(
                "instance {} has no complete base backup with its WAL yet",
                master.id
            ),
            format!(
                "wait for its first backup, or take one: lifeboat backup run {} --wait",
                master.id
            ),
        ));
    };
    let outside = |what: String| {
        let offset = match target {
            RestoreTarget::Time(t) => *t.offset(),
            _ => Utc.fix(),
        };
        ApiError::bad_request(
            format!(
                "{what} is outside the restorable window of {}: [{}, {}] (LSN [{}, {}])",
                master.id,
                w.earliest
                    .with_timezone(&offset)
                    .to_rfc3339_opts(chrono::SecondsFormat::Micros, false),
                w.latest
                    .with_timezone(&offset)
                    .to_rfc3339_opts(chrono::SecondsFormat::Micros, false),
                w.earliest_lsn,
                w.latest_lsn
            ),
            match &w.gap {
                Some(seg) => format!(
                    "choose a point inside the window; it ends early because WAL segment {seg} is missing"
                ),
                None => "choose a point inside the window (lifeboat backup window ID)".into(),
            },
        )
    };
    match target {
        RestoreTarget::Time(t) => {
            let utc = t.with_timezone(&Utc);
            if utc < w.earliest || utc > w.latest {
                return Err(outside(t.to_rfc3339()));
            }
        }
        RestoreTarget::Lsn(l) => {
            let lsn: Lsn = l.parse().map_err(backup_error)?;
            if lsn < w.earliest_lsn || lsn > w.latest_lsn {
                return Err(outside(format!("LSN {l}")));
            }
        }
        RestoreTarget::RestorePoint(_) => {}
    }
    Ok(())
}

/// Accepts a request for a temporary instance of `master_id` and starts building it.
pub async fn create(
    state: &SharedState,
    master_id: &InstanceId,
    req: CreateTemporary,
) -> Result<InstanceRecord, ApiError> {
    let master = state.store.instance(master_id)?;
    if master.kind != InstanceKind::Master {
        return Err(ApiError::bad_request(
            format!("{master_id} is a temporary instance"),
            "give the id of the master it was restored from",
        ));
    }
    let target = parse_target(&req)?;
    let env = state.pg_env()?;
    check_window(state, &master, &target).await?;
    let region = region_of(state, &master.region)?.clone();

    let rec = {
        let _guard = state.create_lock.lock().await;
        if let Some(existing) = state.store.live_temporaries(master_id)?.first() {
            return Err(ApiError::conflict(
                "temporary_instance_exists",
                format!(
                    "instance {master_id} already has the temporary instance {} ({})",
                    existing.id, existing.status
                ),
                format!(
                    "a master has one temporary instance at a time: delete it first with `lifeboat temp delete {}`",
                    existing.id
                ),
            ));
        }
        let port = allocate_port(state, &region)?;
        let whitelist: Vec<WhitelistEntry> = state
            .store
            .whitelist(master_id)?
            .into_iter()
            .map(|w| w.entry)
            .collect();
        let expires_at = Utc::now()
            + chrono::Duration::from_std(state.config.temporary_instance.ttl)
                .map_err(|_| ApiError::internal("temporary_instance.ttl is out of range"))?;
        let target_json =
            serde_json::to_string(&target).map_err(|e| ApiError::internal(e.to_string()))?;
        loop {
            let id = InstanceId::generate();
            if state.store.find_instance(&id)?.is_some() {
                continue;
            }
            break state.store.insert_instance(&NewInstance {
                name: format!("{}-temp-{}", master.name, &id.as_str()[3..]),
                id,
                kind: InstanceKind::Temporary,
                region: region.name.clone(),
                port,
                engine_version: env.bins.version.clone(),
                master_id: Some(master_id.clone()),
                expires_at: Some(expires_at),
                privileged_account: master.privileged_account.clone(),
                pending_verifier: None,
                restore_target: Some(target_json),
                whitelist,
            })?;
        }
    };
    save_progress(
        state,
        &rec.id,
        &TemporaryProgress {
            phase: "queued".into(),
            ..Default::default()
        },
    );
    tracing::info!(temporary = %rec.id, master = %master_id, target = ?target, "creating temporary instance");
    tokio::spawn(build(state.clone(), rec.id.clone()));
    Ok(state.store.instance(&rec.id)?)
}

/// Builds a temporary instance in status `creating` from scratch; on failure undoes
/// everything and records why.
pub async fn build(state: SharedState, id: InstanceId) {
    let lock = state.instance_lock(&id);
    let _guard = lock.lock().await;
    let Ok(rec) = state.store.instance(&id) else {
        return;
    };
    if rec.status != InstanceStatus::Creating {
        return;
    }
    if let Err(e) = restore_and_recover(&state, &rec).await {
        tracing::error!(temporary = %id, error = %e.body.message, "temporary instance failed");
        if let Ok(cluster) = cluster_of(&state, &rec) {
            let _ = tokio::task::spawn_blocking(move || {
                let _ = cluster.stop(StopMode::Immediate);
                cluster.remove_files()
            })
            .await;
        }
        let mut progress = progress_of(&rec);
        progress.phase = "failed".into();
        save_progress(&state, &id, &progress);
        let message = format!("{}; hint: {}", e.body.message, e.body.hint);
        let _ = state
            .store
            .set_status(&id, InstanceStatus::Failed, Some(&message));
    }
}

pub fn progress_of(rec: &InstanceRecord) -> TemporaryProgress {
    rec.progress
        .as_deref()
        .and_then(|p| serde_json::from_str(p).ok())
        .unwrap_or_default()
}

pub fn target_of(rec: &InstanceRecord) -> Option<RestoreTarget> {
    rec.restore_target
        .as_deref()
        .and_then(|t| serde_json::from_str(t).ok())
}

/// The newest backup a restore to `target` can start from.
fn pick_backup(backups: &[Manifest], target: &RestoreTarget) -> Option<Manifest> {
    let fits = |m: &&Manifest| match target {
        RestoreTarget::Time(t) => m.stop_time <= t.with_timezone(&Utc),
        RestoreTarget::Lsn(l) => l.parse::<Lsn>().is_ok_and(|l| m.stop_lsn <= l),
        // A restore point's position is unknown until replay reaches it: start from the
        // oldest backup so that every restore point in the window is reachable.
        RestoreTarget::RestorePoint(_) => true,
    };
    match target {
        RestoreTarget::RestorePoint(_) => backups.first().cloned(),
        _ => backups.iter().rev().find(fits).cloned(),
    }
}

async fn restore_and_recover(state: &SharedState, rec: &InstanceRecord) -> Result<(), ApiError> {
    let master_id = rec
        .master_id
        .clone()
        .ok_or_else(|| ApiError::internal("temporary instance without a master"))?;
    let target = target_of(rec)
        .ok_or_else(|| ApiError::internal("temporary instance without a recovery target"))?;
    let region = region_of(state, &rec.region)?.clone();
    let repo = backups::repository(state, &region)?;
    let env = state.pg_env()?;
    let cluster = cluster_of(state, rec)?;
    let c = cluster.clone();
    tokio::task::spawn_blocking(move || {
        c.stop(StopMode::Immediate)?;
        c.remove_files()?;
        c.create_dir()
    })
    .await??;

    let manifests = lifeboat_backup::list_backups(&repo, master_id.as_str())
        .await
        .map_err(backup_error)?;
    let backup = pick_backup(&manifests, &target).ok_or_else(|| {
        ApiError::conflict(
            "no_backup",
            format!("no base backup of {master_id} ends before the target"),
            format!("choose a later point; see lifeboat backup window {master_id}"),
        )
    })?;
    let mut progress = TemporaryProgress {
        phase: "restoring_files".into(),
        backup_id: Some(backup.id.clone()),
        bytes_total: backup.logical_size,
        ..Default::default()
    };
    save_progress(state, &rec.id, &progress);

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
        owner: Some(env.user.clone()),
        ..RestoreOptions::default()
    };
    // WAL is fetched ahead from now on, while the files are restored and then while
    // it is replayed; the guard stops the feeder whichever way this function ends.
    let feed = WalFeed::start(&repo, &master_id, &backup, &cluster, &env.user);
    // The restore reads, decompresses and writes every file: do it on threads at low
    // CPU and I/O priority, like the recovering cluster, so the masters keep theirs.
    let (master, backup_id, dest) = (master_id.to_string(), backup.id.clone(), cluster.data_dir());
    crate::priority::run("restore", move || async move {
        lifeboat_backup::restore(&repo, &master, &backup_id, &dest, &options, &on_progress)
            .await
            .map_err(backup_error)
    })
    .await?;
    progress.bytes_done = backup.logical_size;

    configure_recovery(state, rec, &cluster, &region, &master_id, &target)?;
    progress.phase = "replaying_wal".into();
    save_progress(state, &rec.id, &progress);
    let c = cluster.clone();
    let address = region.address.clone();
    tokio::task::spawn_blocking(move || c.start_recovery(&address)).await??;
    follow_recovery(state, rec, &cluster, &backup, &mut progress, &feed.control).await?;
    drop(feed);
    // Segments fetched ahead that replay did not need.
    let _ = std::fs::remove_dir_all(cluster.dir.join("wal-prefetch"));

    // The accounts are those the master had at the target: read them from the copy.
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
    progress.phase = "ready".into();
    save_progress(state, &rec.id, &progress);
    state
        .store
        .set_status(&rec.id, InstanceStatus::Running, None)?;
    tracing::info!(temporary = %rec.id, "temporary instance ready");
    Ok(())
}

/// The WAL feeder of one restore ([`lifeboat_backup::prefetch::feed`]), on a
/// low-priority thread; dropping it stops the feeder.
struct WalFeed {
    control: std::sync::Arc<FeedControl>,
}

impl WalFeed {
    fn start(
        repo: &lifeboat_backup::Repository,
        master: &InstanceId,
        backup: &Manifest,
        cluster: &Cluster,
        owner: &lifeboat_postgres::OsUser,
    ) -> Self {
        let control = std::sync::Arc::new(FeedControl::default());
        let first = backup.start_lsn.0 / backup.wal_segment_size.max(1);
        control
            .replay_segno
            .store(first, std::sync::atomic::Ordering::Relaxed);
        let (repo, master, owner, ctl) = (
            repo.clone(),
            master.to_string(),
            owner.clone(),
            control.clone(),
        );
        let prefetch = lifeboat_backup::prefetch::Prefetch {
            dir: cluster.dir.join("wal-prefetch"),
            ahead: WAL_FEED_AHEAD,
        };
        let (timeline, size) = (backup.timeline, backup.wal_segment_size);
        let spawned = std::thread::Builder::new()
            .name("wal feed".into())
            .spawn(move || {
                crate::priority::lower();
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt.block_on(lifeboat_backup::prefetch::feed(
                        &repo,
                        &master,
                        &prefetch,
                        (timeline, first),
                        size,
                        Some(&owner),
                        &ctl,
                    )),
                    Err(e) => tracing::warn!(error = %e, "cannot start the WAL feeder"),
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start the WAL feeder; restore_command fetches WAL itself");
        }
        Self { control }
    }
}

impl Drop for WalFeed {
    fn drop(&mut self) {
        self.control
            .stop
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Writes what the restored copy needs to recover to the target and promote, and
/// removes what it inherited from the master that must not apply to it.
fn configure_recovery(
    state: &SharedState,
    rec: &InstanceRecord,
    cluster: &Cluster,
    region: &crate::config::RegionConfig,
    master_id: &InstanceId,
    target: &RestoreTarget,
) -> Result<(), ApiError> {
    let recovery_target = match target {
        RestoreTarget::Time(t) => RecoveryTarget::Time(*t),
        RestoreTarget::Lsn(l) => RecoveryTarget::Lsn(l.parse().map_err(backup_error)?),
        RestoreTarget::RestorePoint(n) => RecoveryTarget::Name(n.clone()),
    };
    let recovery = RecoverySettings {
        restore_command: lifeboat_backup::restore::restore_command(
            &backups::lifeboat_binary(&state.data_dir),
            &backups::repository_config_file(state, region),
            master_id.as_str(),
            Some(&lifeboat_backup::prefetch::Prefetch {
                dir: cluster.dir.join("wal-prefetch"),
                ahead: WAL_PREFETCH,
            }),
        ),
        target: recovery_target,
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
    let whitelist: Vec<WhitelistEntry> = state
        .store
        .whitelist(&rec.id)?
        .into_iter()
        .map(|w| w.entry)
        .collect();
    cluster.write_hba(&render_hba(&whitelist))?;
    // ALTER SYSTEM settings override lifeboat.conf: drop those that would make the copy
    // listen where the master listens or archive into the master's archive.
    let auto = cluster.data_dir().join("postgresql.auto.conf");
    if let Ok(text) = std::fs::read_to_string(&auto) {
        let kept: String = text
            .lines()
            .filter(|l| {
                let key = l
                    .split('=')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase();
                !(key == "port"
                    || key == "listen_addresses"
                    || key == "unix_socket_directories"
                    || key.starts_with("archive_")
                    || key.starts_with("recovery_")
                    || key == "restore_command"
                    || key == "primary_conninfo")
            })
            .map(|l| format!("{l}\n"))
            .collect();
        cluster.write_owned(&auto, &kept)?;
    }
    lifeboat_backup::restore::write_recovery_signal(&cluster.data_dir(), Some(&cluster.user))
        .map_err(backup_error)?;
    Ok(())
}

/// Follows replay until the copy is promoted; a cluster that stops means recovery
/// failed, and PostgreSQL's log says why.
async fn follow_recovery(
    state: &SharedState,
    rec: &InstanceRecord,
    cluster: &Cluster,
    backup: &Manifest,
    progress: &mut TemporaryProgress,
    feed: &FeedControl,
) -> Result<(), ApiError> {
    let mut promote_requested = false;
    loop {
        tokio::time::sleep(POLL).await;
        let c = cluster.clone();
        let status = tokio::task::spawn_blocking(move || c.status()).await??;
        if status != ClusterStatus::Running {
            let log = cluster.log_tail(8192);
            let last_fatal = log
                .lines()
                .rev()
                .find(|l| l.contains("FATAL") || l.contains("PANIC"))
                .unwrap_or("")
                .trim();
            if log.contains(SHORT_OF_TARGET) {
                return Err(ApiError::conflict(
                    "recovery_short_of_target",
                    format!(
                        "temporary instance {}: recovery ended before the recovery target was reached: the archived WAL of {} does not reach it",
                        rec.id,
                        rec.master_id.as_ref().map(|m| m.as_str()).unwrap_or("")
                    ),
                    "choose an earlier point inside the restorable window (lifeboat backup window ID); for a restore point, check its name",
                ));
            }
            return Err(ApiError::new(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "recovery_failed",
                format!(
                    "temporary instance {}: PostgreSQL stopped during recovery: {last_fatal}",
                    rec.id
                ),
                format!("see {}", cluster.log_file().display()),
            ));
        }
        let Ok(client) = cluster.connect("postgres").await else {
            continue;
        };
        let Ok(row) = client
            .query_one(
                "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text,
                        pg_is_in_recovery() AND pg_get_wal_replay_pause_state() = 'paused'",
                &[],
            )
            .await
        else {
            continue;
        };
        let in_recovery: bool = row.get(0);
        let paused_at_target: bool = row.get(2);
        if let Some(lsn) = row.get::<_, Option<String>>(1)
            && let Ok(l) = lsn.parse::<Lsn>()
        {
            progress.replay_lsn = Some(lsn);
            feed.replay_segno.store(
                l.0 / backup.wal_segment_size.max(1),
                std::sync::atomic::Ordering::Relaxed,
            );
            feed.replaying
                .store(true, std::sync::atomic::Ordering::Relaxed);
            progress.wal_replayed_bytes = l.0.saturating_sub(backup.start_lsn.0);
        }
        if paused_at_target {
            // Recovery reached the target and paused there (see configure_recovery):
            // promote, which ends recovery without waiting for a checkpoint.
            if !promote_requested {
                progress.phase = "promoting".into();
                save_progress(state, &rec.id, progress);
                client
                    .execute("SELECT pg_promote(false)", &[])
                    .await
                    .map_err(|e| {
                        ApiError::internal(format!(
                            "temporary instance {}: promotion failed: {}",
                            rec.id,
                            lifeboat_postgres::describe(&e)
                        ))
                    })?;
                promote_requested = true;
            }
            // The paused startup process looks for the promotion once a second.
            continue;
        }
        if !in_recovery {
            progress.phase = "promoting".into();
            save_progress(state, &rec.id, progress);
            return Ok(());
        }
        save_progress(state, &rec.id, progress);
    }
}

/// Releases a temporary instance: stops it, removes its directory and whitelist
/// entries, and marks the record released. Idempotent.
pub async fn release(state: &SharedState, id: &InstanceId, why: &str) -> Result<(), ApiError> {
    let lock = state.instance_lock(id);
    let _guard = lock.lock().await;
    let rec = state.store.instance(id)?;
    if rec.status == InstanceStatus::Released {
        return Ok(());
    }
    let cluster = cluster_of(state, &rec)?;
    tokio::task::spawn_blocking(move || {
        cluster.stop(StopMode::Immediate)?;
        cluster.remove_files()
    })
    .await??;
    for w in state.store.whitelist(id)? {
        let _ = state.store.remove_whitelist(id, &w.entry);
    }
    state
        .store
        .set_status(id, InstanceStatus::Released, Some(why))?;
    tracing::info!(temporary = %id, why, "temporary instance released");
    Ok(())
}

/// Releases every temporary instance whose time is up, including those that expired
/// while the server was down.
pub async fn release_expired(state: &SharedState) {
    let Ok(all) = state.store.list_instances(false) else {
        return;
    };
    let now = Utc::now();
    for rec in all.iter().filter(|r| r.kind == InstanceKind::Temporary) {
        if rec.expires_at.is_some_and(|at: DateTime<Utc>| at <= now) {
            let why = "released automatically: its time to live ended";
            if let Err(e) = release(state, &rec.id, why).await {
                tracing::error!(temporary = %rec.id, error = %e.body.message, "cannot release an expired temporary instance");
            }
        }
    }
}

/// Runs [`release_expired`] every few seconds until the server stops.
pub async fn reaper(state: SharedState) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tick.tick().await;
        release_expired(&state).await;
    }
}
