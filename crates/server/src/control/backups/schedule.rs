//! When a master is due a base backup, and the scheduler that takes them.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use lifeboat_api::ErrorCode;
use lifeboat_domain::{BackupRunState, BackupTrigger, InstanceId, InstanceKind, InstanceStatus};
use lifeboat_store::{BackupRun, InstanceRecord};

use super::{archive_status_file, start_backup};
use crate::control::Shared;
use crate::control::registry::connect_db;

/// How often the scheduler looks for masters due a backup.
const SCHEDULER_TICK: Duration = Duration::from_secs(10);
/// The attempts [`due`] looks at.
const RECENT_RUNS: usize = 20;

/// Whether a master is due a base backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    Now,
    /// When more WAL than `max_wal_between_backups` was written since this position.
    IfWalSince(i64),
    No,
}

/// Due when no backup completed yet, or the last completed one started longer ago than
/// the schedule, or (checked by the caller) enough WAL was written since it ended. A
/// master whose latest attempts failed is retried at each tick after a pause of one
/// tick per failure, up to the schedule. `runs` are the latest attempts, newest first.
pub fn due(runs: &[BackupRun], schedule: Duration, now: DateTime<Utc>) -> Due {
    if runs
        .first()
        .is_some_and(|r| r.state == BackupRunState::Running)
    {
        return Due::No;
    }
    let schedule = chrono::Duration::from_std(schedule).unwrap_or(chrono::Duration::days(1));
    let failures = runs
        .iter()
        .take_while(|r| r.state == BackupRunState::Failed)
        .count() as i32;
    if let Some(last) = runs.first().filter(|_| failures > 0) {
        let pause =
            (chrono::Duration::seconds(SCHEDULER_TICK.as_secs() as i64) * failures).min(schedule);
        if now - last.finished_at.unwrap_or(last.started_at) < pause {
            return Due::No;
        }
    }
    match runs.iter().find(|r| r.state == BackupRunState::Completed) {
        None => Due::Now,
        Some(done) if now - done.started_at >= schedule => Due::Now,
        Some(done) => done.stop_lsn.map_or(Due::No, Due::IfWalSince),
    }
}

/// Takes a base backup of every running master that is [`due`] one. Runs until the
/// server stops.
pub async fn scheduler(state: Shared) {
    // A schedule shorter than the tick (tests, busy systems) is still honoured.
    let period = SCHEDULER_TICK
        .min(state.config.backup.schedule / 2)
        .max(Duration::from_secs(1));
    let mut tick = tokio::time::interval(period);
    // The last archiving failure logged per instance, so each is logged once.
    let mut reported = HashMap::new();
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
            let Ok(runs) = state.store.backup_runs(&rec.id, RECENT_RUNS) else {
                continue;
            };
            let trigger = match due(&runs, state.config.backup.schedule, Utc::now()) {
                Due::Now => Some(BackupTrigger::Schedule),
                Due::IfWalSince(lsn) => wal_since(&state, rec, lsn)
                    .await
                    .then_some(BackupTrigger::Wal),
                Due::No => None,
            };
            if let Some(trigger) = trigger {
                match start_backup(&state, &rec.id, trigger).await {
                    Ok(run) => {
                        tracing::info!(instance = %rec.id, run = run.id, "scheduled base backup started")
                    }
                    Err(e) if e.code == ErrorCode::BackupRunning => {}
                    Err(e) => {
                        tracing::warn!(instance = %rec.id, error = %e.message, "cannot start a scheduled backup")
                    }
                }
            }
        }
    }
}

/// Logs a new archiving failure of `rec` in the server log (the reason comes from the
/// status file `wal-push` keeps), once per failure.
fn report_archiving_failure(
    state: &Shared,
    rec: &InstanceRecord,
    reported: &mut HashMap<InstanceId, DateTime<Utc>>,
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

/// Whether the master wrote more WAL than `max_wal_between_backups` since `lsn`.
async fn wal_since(state: &Shared, rec: &InstanceRecord, lsn: i64) -> bool {
    // Lifeboat's own connection: over the private socket, or to an adopted cluster.
    let Ok(client) = connect_db(state, rec, "postgres", None).await else {
        return false;
    };
    let current = client
        .query_one("SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint", &[])
        .await
        .map(|r| r.get::<_, i64>(0));
    matches!(current, Ok(c) if c.saturating_sub(lsn) >= state.config.backup.max_wal_between_backups as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86400);

    fn run(state: BackupRunState, started_ago_s: i64, now: DateTime<Utc>) -> BackupRun {
        let started = now - chrono::Duration::seconds(started_ago_s);
        BackupRun {
            id: 1,
            instance_id: "pg-abcdef".into(),
            trigger: BackupTrigger::Schedule,
            state,
            started_at: started,
            finished_at: (state != BackupRunState::Running)
                .then(|| started + chrono::Duration::seconds(5)),
            backup_id: None,
            bytes_done: 0,
            bytes_total: 0,
            error: None,
            stop_lsn: (state == BackupRunState::Completed).then_some(0x300_0028),
        }
    }

    #[test]
    fn a_master_without_a_backup_is_due_now() {
        assert_eq!(due(&[], DAY, Utc::now()), Due::Now);
    }

    #[test]
    fn a_running_backup_is_never_doubled() {
        let now = Utc::now();
        assert_eq!(
            due(&[run(BackupRunState::Running, 1, now)], DAY, now),
            Due::No
        );
    }

    #[test]
    fn a_recent_backup_waits_for_the_schedule_or_for_wal() {
        let now = Utc::now();
        let recent = [run(BackupRunState::Completed, 60, now)];
        assert_eq!(due(&recent, DAY, now), Due::IfWalSince(0x300_0028));
        let old = [run(BackupRunState::Completed, 86400, now)];
        assert_eq!(due(&old, DAY, now), Due::Now);
    }

    #[test]
    fn failures_back_off_one_tick_each() {
        let now = Utc::now();
        // Two failures, the last finished 5 s ago: the pause is 20 s.
        let runs = [
            run(BackupRunState::Failed, 10, now),
            run(BackupRunState::Failed, 60, now),
        ];
        assert_eq!(due(&runs, DAY, now), Due::No);
        assert_eq!(
            due(&runs, DAY, now + chrono::Duration::seconds(16)),
            Due::Now
        );
        // The pause never exceeds the schedule.
        assert_eq!(due(&runs, Duration::from_secs(2), now), Due::Now);
    }
}
