//! WAL streaming of adopted instances: `pg_receivewal` of the cluster's major receives
//! the WAL through Lifeboat's physical slot into a spool directory of this server, and
//! each segment it finishes is stored in the repository as archived WAL (durable, then
//! removed from the spool). The slot keeps on the cluster whatever was not received
//! yet, so a receiver that stops (the cluster unreachable, Lifeboat restarted or
//! killed) starts again where it left off, with no gap.
//!
//! One supervisor task runs per streamed instance. It restarts the receiver with a
//! growing pause after each failure and remembers since when streaming fails, for
//! `instance show`. The receiver dies with the server (`PR_SET_PDEATHSIG`), so a
//! killed server leaves no process behind.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use lifeboat_domain::{InstanceId, InstanceKind, InstanceStatus};
use lifeboat_postgres::adoption::slot_name;
use lifeboat_store::InstanceRecord;
use tokio::io::AsyncReadExt;

use super::entries::server_id;
use super::repository_of;
use crate::config::WalMode;
use crate::control::registry::cluster_of;
use crate::control::{Result, Shared};

/// How often the spool is looked at for finished segments and the segment being
/// received is stored, when it changed.
const SHIP_EVERY: Duration = Duration::from_millis(1000);
/// The longest pause between two attempts to start the receiver.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// How streaming of one instance goes, for `instance show`.
#[derive(Debug, Clone, Default)]
pub struct StreamHealth {
    /// Since when streaming fails, and why; `None` while it works.
    pub failing_since: Option<(DateTime<Utc>, String)>,
    /// The last WAL file stored from the stream, and when.
    pub last_stored: Option<(String, DateTime<Utc>)>,
}

/// The supervisors that run, by instance, with their health.
#[derive(Default)]
pub struct Streams {
    running: Mutex<HashMap<InstanceId, (tokio::task::AbortHandle, StreamHealth)>>,
}

impl Streams {
    pub fn health(&self, id: &InstanceId) -> Option<StreamHealth> {
        let running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        running.get(id).map(|(_, h)| h.clone())
    }

    fn update(&self, id: &InstanceId, f: impl FnOnce(&mut StreamHealth)) {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, h)) = running.get_mut(id) {
            f(h);
        }
    }
}

/// Whether `rec` streams its WAL: a running adopted master, or a running master
/// Lifeboat created when `[backup] wal = "stream"`.
fn streamed(state: &Shared, rec: &InstanceRecord) -> bool {
    rec.kind == InstanceKind::Master
        && rec.status == InstanceStatus::Running
        && (rec.external.is_some() || state.config.backup.wal == WalMode::Stream)
}

/// Starts streaming every instance that streams (at server start).
pub fn start_all(state: &Shared) {
    if let Ok(all) = state.store.list_instances(false) {
        for rec in all.iter().filter(|r| streamed(state, r)) {
            start(state, &rec.id);
        }
    }
}

/// Starts streaming `id` if it streams (after a create or a start).
pub fn start_if_streamed(state: &Shared, id: &InstanceId) {
    if matches!(state.store.find_instance(id), Ok(Some(r)) if streamed(state, &r)) {
        start(state, id);
    }
}

/// Starts the supervisor of `id`, unless it runs.
pub fn start(state: &Shared, id: &InstanceId) {
    let mut running = state
        .streams
        .running
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if running.get(id).is_some_and(|(h, _)| !h.is_finished()) {
        return;
    }
    let task = tokio::spawn(supervise(state.clone(), id.clone()));
    running.insert(id.clone(), (task.abort_handle(), StreamHealth::default()));
}

/// Starts the supervisor of `id` again, with what the store says now (a new host or
/// password); the spool is kept, so the receiver goes on where it was.
pub fn restart(state: &Shared, id: &InstanceId) {
    abort(state, id);
    start(state, id);
}

/// Ends the supervisor of `id`, if one runs (its receiver is killed with it).
fn abort(state: &Shared, id: &InstanceId) {
    let mut running = state
        .streams
        .running
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some((task, _)) = running.remove(id) {
        task.abort();
    }
}

/// Stops the supervisor of `id` (its receiver is killed with it) and removes its
/// spool: the instance is no longer protected.
pub fn stop(state: &Shared, id: &InstanceId) {
    abort(state, id);
    let _ = std::fs::remove_dir_all(spool_dir(state, id));
}

/// Where the receiver of `id` writes.
fn spool_dir(state: &Shared, id: &InstanceId) -> PathBuf {
    state.data_dir.join("streams").join(id.as_str())
}

async fn supervise(state: Shared, id: InstanceId) {
    let mut backoff = Duration::from_secs(1);
    loop {
        let rec = match state.store.find_instance(&id) {
            Ok(Some(r)) if streamed(&state, &r) => r,
            _ => return,
        };
        // The slot decides where the receiver starts when the spool holds no finished
        // segment; a slot that lost its WAL would start it past the gap, unnoticed.
        if let Some(repaired) = repair_slot(&state, &rec, None).await {
            tracing::warn!(instance = %id, error = %repaired, "WAL streaming starts after a gap");
        }
        let started = std::time::Instant::now();
        let why = match receive(&state, &rec).await {
            Ok(()) => "the receiver ended".to_string(),
            Err(e) => e,
        };
        // What it finished before it stopped is stored now, not at the next start.
        if let Err(e) = ship(&state, &rec).await {
            tracing::warn!(instance = %id, error = %e, "cannot store streamed WAL");
        }
        let why = match repair_slot(&state, &rec, Some(&why)).await {
            Some(repaired) => format!("{why}; {repaired}"),
            None => why,
        };
        tracing::warn!(instance = %id, error = %why, "WAL streaming stopped; it starts again");
        state.streams.update(&id, |h| {
            if h.failing_since.is_none() {
                h.failing_since = Some((Utc::now(), why.clone()));
            } else if let Some((_, w)) = &mut h.failing_since {
                *w = why.clone();
            }
        });
        if started.elapsed() > MAX_BACKOFF {
            backoff = Duration::from_secs(1);
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Before the receiver starts, and after it stopped (`why` it stopped): when Lifeboat's
/// slot on the cluster is gone (someone dropped it), lost its WAL
/// (`max_slot_wal_keep_size`), or the cluster removed WAL the receiver asked for, the
/// WAL from there to now is missing for good. The slot is made again, the spool
/// emptied (the restorable window ends before the gap and names it), and a base
/// backup is started so that protection starts again from it. Returns what was done;
/// `None` when the slot is fine or the cluster cannot be reached (the receiver is
/// simply retried).
async fn repair_slot(state: &Shared, rec: &InstanceRecord, why: Option<&str>) -> Option<String> {
    // A master Lifeboat runs also archives its WAL: its slot is made again before the
    // receiver starts, and nothing is lost without it.
    rec.external.as_ref()?;
    let client = crate::control::adoption::connect(state, rec, "postgres")
        .await
        .ok()?;
    let slot = slot_name(&server_id(state).ok()?, rec.id.as_str());
    let status: Option<Option<String>> = client
        .query_opt(
            "SELECT wal_status FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .ok()?
        .map(|r| r.get(0));
    let what = match &status {
        None => "was dropped on the cluster",
        Some(Some(s)) if s == "lost" => "lost WAL the cluster removed before it was received",
        // The slot is there but younger than the WAL asked for (dropped and made
        // again by someone): the cluster no longer has it.
        Some(_) if why.is_some_and(|w| w.contains("has already been removed")) => {
            "is behind WAL the cluster removed before it was received"
        }
        Some(_) => return None,
    };
    // What was received before the loss is stored first: it is WAL of the cluster
    // like any other, and the gap starts after it. Until it can be, nothing changes.
    if let Err(e) = ship(state, rec).await {
        return Some(format!(
            "Lifeboat's slot {slot} {what}; the WAL received before that cannot be stored yet ({e}), and the slot is made again once it is"
        ));
    }
    if status.is_some() {
        crate::control::adoption::drop_slot(&client, &slot).await;
    }
    if let Err(e) = client
        .query_one(
            "SELECT slot_name::text FROM pg_create_physical_replication_slot($1, true)",
            &[&slot],
        )
        .await
    {
        return Some(format!(
            "Lifeboat's slot {slot} {what}, and making it again failed: {}",
            lifeboat_postgres::describe(&e)
        ));
    }
    let spool = spool_dir(state, &rec.id);
    let _ = std::fs::remove_dir_all(&spool);
    tracing::error!(
        instance = %rec.id,
        slot = %slot,
        "Lifeboat's slot {what}: the WAL since the last segment received is missing; the restorable window ends before it; a new base backup starts protection again"
    );
    let backup =
        match super::start_backup(state, &rec.id, lifeboat_domain::BackupTrigger::Wal).await {
            Ok(_) => "a new base backup started".to_string(),
            Err(e) => format!("a new base backup could not start yet ({})", e.message),
        };
    Some(format!(
        "Lifeboat's slot {slot} {what}: WAL since the last segment received is missing; the slot was made again and {backup}"
    ))
}

/// Runs the receiver until it exits, storing each segment it finishes; the error says
/// why it stopped.
async fn receive(state: &Shared, rec: &InstanceRecord) -> std::result::Result<(), String> {
    let env = state.pg_of(rec).map_err(|e| e.to_string())?;
    let slot = slot_name(&server_id(state).map_err(|e| e.message)?, rec.id.as_str());
    let spool = spool_dir(state, &rec.id);
    std::fs::create_dir_all(&spool)
        .map_err(|e| format!("cannot create {}: {e}", spool.display()))?;
    let mut cmd = tokio::process::Command::new(env.bins.path("pg_receivewal"));
    cmd.env_clear().env("LC_ALL", "C");
    if rec.external.is_none() {
        // A master Lifeboat runs: over its private socket, as Lifeboat's role; its
        // slot is made when missing (its WAL is archived too, so none is lost).
        let cluster = cluster_of(state, rec).map_err(|e| e.message)?;
        let client = cluster
            .connect("postgres")
            .await
            .map_err(|e| e.to_string())?;
        let made = client
            .execute(
                "SELECT pg_create_physical_replication_slot($1, true) \
                 WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)",
                &[&slot],
            )
            .await
            .map_err(|e| {
                format!(
                    "cannot create the slot {slot}: {}",
                    lifeboat_postgres::describe(&e)
                )
            })?;
        if made > 0 {
            // A new slot starts now: the spool's segments are stored, then left, or
            // the receiver would ask for WAL after them that the cluster may have
            // archived and recycled already.
            ship(state, rec).await?;
            std::fs::remove_dir_all(&spool)
                .and_then(|()| std::fs::create_dir_all(&spool))
                .map_err(|e| format!("cannot empty {}: {e}", spool.display()))?;
        }
        cmd.arg("-d").arg(format!(
            "host='{}' port={} user='{}' application_name='lifeboat wal stream'",
            lifeboat_postgres::ident::conninfo_quote(&cluster.socket_dir().display().to_string()),
            cluster.port,
            lifeboat_postgres::ident::conninfo_quote(&cluster.role)
        ));
    } else {
        let target =
            crate::control::adoption::target_of(state, rec).map_err(|e| e.message.clone())?;
        cmd.env("PGPASSWORD", &target.password).arg("-d").arg(format!(
            // A cluster cut off without a reset (a link down) is noticed in seconds.
            "host='{}' port={} user='{}' application_name='lifeboat wal stream' connect_timeout=10 \
             keepalives=1 keepalives_idle=5 keepalives_interval=2 keepalives_count=3 tcp_user_timeout=10000",
            lifeboat_postgres::ident::conninfo_quote(&target.host),
            target.port,
            lifeboat_postgres::ident::conninfo_quote(&target.account)
        ));
    }
    cmd.arg("-D")
        .arg(&spool)
        // Without --synchronous: it would fsync the spool at every message, on the
        // disk the cluster may share, for nothing: what arrives is read from the page
        // cache and stored from there, and the slot keeps the segment in progress
        // until it is finished and flushed.
        .args(["-S", &slot, "--no-loop", "--no-password"])
        .args(["--status-interval", "5"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // SAFETY: prctl only sets a flag of the child process, before it runs the program.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run pg_receivewal: {e}"))?;
    let mut stderr = child.stderr.take();
    let messages = tokio::spawn(async move {
        let mut text = Vec::new();
        if let Some(s) = stderr.as_mut() {
            let _ = s.take(64 << 10).read_to_end(&mut text).await;
        }
        String::from_utf8_lossy(&text).trim().to_string()
    });
    let mut tick = tokio::time::interval(SHIP_EVERY);
    let mut healthy = false;
    let mut sent: Option<(String, std::time::SystemTime)> = None;
    let status = loop {
        tokio::select! {
            status = child.wait() => break status,
            _ = tick.tick() => {
                if let Err(e) = send_partial(state, rec, &mut sent).await {
                    tracing::warn!(instance = %rec.id, error = %e, "cannot store the segment being received");
                }
                match ship(state, rec).await {
                    Ok(shipped) => {
                        // Receiving and storing: whatever failed before is over.
                        if !healthy && (shipped || connected(&spool)) {
                            healthy = true;
                            state.streams.update(&rec.id, |h| h.failing_since = None);
                        }
                    }
                    Err(e) => tracing::warn!(instance = %rec.id, error = %e, "cannot store streamed WAL"),
                }
            }
        }
    };
    let text = messages.await.unwrap_or_default();
    let status = status.map_err(|e| format!("pg_receivewal: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "pg_receivewal {status}: {}",
            if text.is_empty() {
                "no message".into()
            } else {
                text.replace('\n', "; ")
            }
        ))
    }
}

/// Whether the receiver has a segment in progress: it is connected and receiving.
fn connected(spool: &Path) -> bool {
    std::fs::read_dir(spool).is_ok_and(|mut d| {
        d.any(|e| {
            e.ok()
                .is_some_and(|e| e.file_name().to_string_lossy().ends_with(".partial"))
        })
    })
}

/// Stores the finished WAL files of the spool in the repository, oldest first, each
/// removed from the spool once durable but the newest segment: `pg_receivewal` starts
/// after the newest segment it finds, so with it there the receiver asks the cluster
/// for the WAL that follows what Lifeboat stored, and a cluster that removed it says
/// so, where the slot alone could start it past a gap. True when it stored one.
async fn ship(state: &Shared, rec: &InstanceRecord) -> std::result::Result<bool, String> {
    let spool = spool_dir(state, &rec.id);
    let mut names: Vec<String> = match std::fs::read_dir(&spool) {
        Ok(d) => d
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| {
                matches!(
                    lifeboat_backup::wal::wal_file_kind(n),
                    Ok(lifeboat_backup::wal::WalFileKind::Segment
                        | lifeboat_backup::wal::WalFileKind::History)
                )
            })
            .collect(),
        Err(_) => return Ok(false),
    };
    if names.is_empty() {
        return Ok(false);
    }
    names.sort();
    let newest = names
        .iter()
        .rfind(|n| {
            matches!(
                lifeboat_backup::wal::wal_file_kind(n),
                Ok(lifeboat_backup::wal::WalFileKind::Segment)
            )
        })
        .cloned();
    let last_stored = state
        .streams
        .health(&rec.id)
        .and_then(|h| h.last_stored)
        .map(|(name, _)| name);
    let repo = wal_repository(state, rec)?;
    let mut stored = false;
    for name in &names {
        let path = spool.join(name);
        if last_stored.as_ref() != Some(name) {
            let data = tokio::fs::read(&path)
                .await
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let outcome = lifeboat_backup::wal::wal_push_bytes(&repo, rec.id.as_str(), name, data)
                .await
                .map_err(|e| format!("{name}: {e}"))?;
            stored |= outcome == lifeboat_backup::wal::PushOutcome::Stored;
            // Archived now: what the stream had of it is no longer read.
            let _ = repo
                .delete(&lifeboat_backup::wal::stream_key(rec.id.as_str(), name))
                .await;
            state.streams.update(&rec.id, |h| {
                h.last_stored = Some((name.clone(), Utc::now()))
            });
        }
        if newest.as_ref() != Some(name) {
            tokio::fs::remove_file(&path)
                .await
                .map_err(|e| format!("cannot remove {}: {e}", path.display()))?;
        }
    }
    Ok(stored)
}

/// Stores what has arrived of the segment being received (the spool's `.partial`
/// file), when it changed since `sent`: the restorable window then ends with the last
/// commit received, not with the last finished segment. A read that meets a write in
/// progress ends with the last whole record: PostgreSQL and the window check each
/// record's CRC.
async fn send_partial(
    state: &Shared,
    rec: &InstanceRecord,
    sent: &mut Option<(String, std::time::SystemTime)>,
) -> std::result::Result<(), String> {
    let spool = spool_dir(state, &rec.id);
    let Ok(dir) = std::fs::read_dir(&spool) else {
        return Ok(());
    };
    let Some((segment, path)) = dir.filter_map(|e| e.ok()).find_map(|e| {
        let name = e.file_name().into_string().ok()?;
        let segment = name.strip_suffix(".partial")?.to_string();
        Some((segment, e.path()))
    }) else {
        return Ok(());
    };
    let Ok(modified) = std::fs::metadata(&path).and_then(|m| m.modified()) else {
        return Ok(());
    };
    if sent.as_ref() == Some(&(segment.clone(), modified)) {
        return Ok(());
    }
    let data = match tokio::fs::read(&path).await {
        Ok(d) => d,
        // Finished and renamed meanwhile: ship() stores it.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    // A segment just begun is zeros until its first page arrives (its header starts
    // with a non-zero magic number): nothing to store yet.
    if data.get(..2).is_none_or(|magic| magic == [0, 0]) {
        return Ok(());
    }
    let repo = wal_repository(state, rec)?;
    lifeboat_backup::wal::stream_push(&repo, rec.id.as_str(), &segment, data)
        .await
        .map_err(|e| format!("{segment}: {e}"))?;
    *sent = Some((segment, modified));
    Ok(())
}

/// The repository of `rec`, writing as the clusters' OS user: `restore_command`
/// reads the streamed WAL as that user.
fn wal_repository(
    state: &Shared,
    rec: &InstanceRecord,
) -> std::result::Result<lifeboat_backup::Repository, String> {
    let repo = repository_of(state, rec).map_err(|e| e.message)?;
    Ok(match state.os_user() {
        Ok(user) => repo.owned_by(user),
        Err(_) => repo,
    })
}

/// Health of the stream of `rec`, when it streams.
pub fn health_of(state: &Shared, rec: &InstanceRecord) -> Result<Option<StreamHealth>> {
    Ok(streamed(state, rec)
        .then(|| state.streams.health(&rec.id))
        .flatten())
}
