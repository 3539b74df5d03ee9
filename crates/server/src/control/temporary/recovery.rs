//! Following a temporary instance's recovery: replay progress into its record, the
//! WAL feeder kept ahead of replay, promotion once replay paused at the target, and a
//! clear failure when PostgreSQL stops instead.

use std::time::Duration;

use lifeboat_api::ErrorCode;
use lifeboat_backup::Manifest;
use lifeboat_domain::{TemporaryPhase, TemporaryProgress};
use lifeboat_postgres::recovery::{RecoveryStop, promote, replay_state};
use lifeboat_postgres::{Cluster, ClusterStatus};
use lifeboat_store::InstanceRecord;

use super::save_progress;
use super::wal_feed::WalFeed;
use crate::control::workers::blocking;
use crate::control::{Error, Result, Shared};

/// How often the build looks at the recovering cluster.
const POLL: Duration = Duration::from_millis(100);

/// How long a running copy may refuse Lifeboat's login before the build fails.
const LOGIN_REFUSED_FOR: Duration = Duration::from_secs(10);

/// Promotion requests in a row a running, recovering copy may refuse before the build
/// fails (ten seconds of polls).
const MAX_PROMOTE_FAILURES: u32 = 100;

/// Follows replay until the copy is promoted; a cluster that stops means recovery
/// failed, and PostgreSQL's log says why.
///
/// Promotion is asked for as soon as the copy accepts connections, long before replay
/// reaches the target: a recovery that is not a standby's looks for the request only
/// once paused at its target, and then promotes at once. Asked for only once paused, it
/// would be seen up to a second later, when the paused startup process next looks.
pub async fn follow(
    state: &Shared,
    rec: &InstanceRecord,
    cluster: &Cluster,
    backup: &Manifest,
    progress: &mut TemporaryProgress,
    feed: &WalFeed,
) -> Result<()> {
    let mut promote_requested = false;
    let mut promote_failures = 0;
    // One connection while it lasts (recovery ends with a new timeline, not a restart).
    let mut connection = None;
    let mut refused_since: Option<std::time::Instant> = None;
    loop {
        tokio::time::sleep(POLL).await;
        let c = cluster.clone();
        if blocking(move || c.status()).await? != ClusterStatus::Running {
            return Err(stopped(rec, cluster));
        }
        if connection.is_none() {
            connection = match cluster.connect("postgres").await {
                Ok(c) => {
                    refused_since = None;
                    Some(c)
                }
                // Refused at login (not "starting up"): when it lasts, polling will
                // not change it.
                Err(lifeboat_postgres::PgError::Connect {
                    code: Some(code),
                    message,
                    ..
                }) if code.starts_with("28") => {
                    let since = *refused_since.get_or_insert_with(std::time::Instant::now);
                    if since.elapsed() >= LOGIN_REFUSED_FOR {
                        return Err(Error::internal(format!(
                            "temporary instance {}: the restored copy refuses Lifeboat's login as '{}': {message}",
                            rec.id, cluster.role
                        )));
                    }
                    None
                }
                Err(_) => {
                    refused_since = None;
                    None
                }
            };
        }
        let Some(client) = &connection else {
            continue;
        };
        let Ok(replay) = replay_state(client).await else {
            connection = None;
            continue;
        };
        if let Some(lsn) = replay.replay_lsn {
            progress.replay_lsn = Some(lsn);
            feed.replayed(lsn);
            progress.wal_replayed_bytes = lsn.0.saturating_sub(backup.start_lsn.0);
        }
        if !replay.in_recovery {
            progress.phase = TemporaryPhase::Promoting;
            save_progress(state, &rec.id, progress);
            return Ok(());
        }
        if replay.paused_at_target {
            progress.phase = TemporaryPhase::Promoting;
        }
        if !promote_requested || replay.paused_at_target {
            // A request can fail because the copy just stopped (a target that is not
            // in the WAL ends recovery with a FATAL and a shutdown) or just promoted
            // itself: the next look at its status and state tells which. Only a copy
            // that keeps refusing while it runs and recovers is an error.
            match promote(client).await {
                Ok(()) => {
                    promote_requested = true;
                    promote_failures = 0;
                }
                Err(e) => {
                    tracing::info!(temporary = %rec.id, error = %e, "promotion request not taken; looking at the copy again");
                    promote_failures += 1;
                    if promote_failures >= MAX_PROMOTE_FAILURES {
                        return Err(Error::internal(format!(
                            "temporary instance {}: {e}",
                            rec.id
                        )));
                    }
                    connection = None;
                    continue;
                }
            }
        }
        save_progress(state, &rec.id, progress);
    }
}

/// The error for a copy that stopped during recovery.
fn stopped(rec: &InstanceRecord, cluster: &Cluster) -> Error {
    match cluster.recovery_stop() {
        RecoveryStop::ShortOfTarget => Error::new(
            ErrorCode::RecoveryShortOfTarget,
            format!(
                "temporary instance {}: recovery ended before the recovery target was reached: the archived WAL of {} does not reach it",
                rec.id,
                rec.master_id.as_ref().map(|m| m.as_str()).unwrap_or("")
            ),
            "choose an earlier point inside the restorable window (lifeboat backup window ID); for a restore point, check its name",
        ),
        RecoveryStop::Failed { last_fatal } => Error::new(
            ErrorCode::RecoveryFailed,
            format!(
                "temporary instance {}: PostgreSQL stopped during recovery: {last_fatal}",
                rec.id
            ),
            format!("see {}", cluster.log_file().display()),
        ),
    }
}
