//! What the repository holds for a master: its base backups and recent attempts, the
//! restorable window, and a verification of every stored object.

use lifeboat_api::backups::{
    BackupList, BackupRunView, BackupView, VerifyProblemView, VerifyView, WindowSpan, WindowView,
};
use lifeboat_backup::RestorableWindow;
use lifeboat_store::{BackupRun, InstanceRecord};

use super::repository_of;
use crate::control::{Result, Shared};

/// A base backup attempt as the API shows it.
pub fn run_view(r: BackupRun) -> BackupRunView {
    BackupRunView {
        id: r.id,
        trigger: r.trigger,
        state: r.state,
        started_at: r.started_at,
        finished_at: r.finished_at,
        backup_id: r.backup_id,
        bytes_done: r.bytes_done,
        bytes_total: r.bytes_total,
        error: r.error,
    }
}

/// The base backups in the repository and the latest attempts.
pub async fn list(state: &Shared, rec: &InstanceRecord) -> Result<BackupList> {
    let repo = repository_of(state, rec)?;
    let manifests = lifeboat_backup::list_backups(&repo, rec.id.as_str()).await?;
    let backups = manifests
        .into_iter()
        .map(|m| BackupView {
            id: m.id,
            start_time: m.start_time,
            stop_time: m.stop_time,
            start_lsn: m.start_lsn.to_string(),
            stop_lsn: m.stop_lsn.to_string(),
            timeline: m.timeline,
            logical_size: m.logical_size,
            stored_size: m.stored_size,
        })
        .collect();
    let runs = state
        .store
        .backup_runs(&rec.id, 20)?
        .into_iter()
        .map(run_view)
        .collect();
    Ok(BackupList { backups, runs })
}

/// The restorable window that reaches furthest, computed from the repository; `None`
/// before the first complete backup with its WAL.
pub async fn restorable_window(
    state: &Shared,
    rec: &InstanceRecord,
) -> Result<Option<RestorableWindow>> {
    Ok(restorable_windows(state, rec).await?.pop())
}

/// Every restorable window, oldest first (more than one after a WAL gap).
pub async fn restorable_windows(
    state: &Shared,
    rec: &InstanceRecord,
) -> Result<Vec<RestorableWindow>> {
    let repo = repository_of(state, rec)?;
    // The master's own pg_waldump: WAL formats differ between majors.
    let waldump = state.pg_of(rec)?.bins.path("pg_waldump");
    Ok(lifeboat_backup::restorable_windows(&repo, rec.id.as_str(), &waldump).await?)
}

/// A window as the API shows it in a list.
pub fn span(w: &RestorableWindow) -> WindowSpan {
    WindowSpan {
        earliest: w.earliest,
        latest: w.latest,
        earliest_lsn: w.earliest_lsn.to_string(),
        latest_lsn: w.latest_lsn.to_string(),
        timeline: w.timeline,
        gap: w.gap.clone(),
        backups: w.backups.clone(),
    }
}

/// What lies between two windows, as a sentence.
pub fn lost_between(before: &RestorableWindow, after: &RestorableWindow) -> String {
    let at =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    format!(
        "WAL segment {} is missing from the repository, so nothing between {} and {} can be restored; the window starts again at the end of base backup {}",
        before.gap.as_deref().unwrap_or("?"),
        at(before.latest),
        at(after.earliest),
        after.backups.first().map_or("?", String::as_str)
    )
}

/// The restorable window as the API shows it.
pub async fn window(state: &Shared, rec: &InstanceRecord) -> Result<WindowView> {
    let all = restorable_windows(state, rec).await?;
    let id = rec.id.to_string();
    let windows = all.iter().map(span).collect();
    Ok(match all.last() {
        None => WindowView {
            instance_id: id.clone(),
            available: false,
            earliest: None,
            latest: None,
            earliest_lsn: None,
            latest_lsn: None,
            timeline: None,
            gap: None,
            reaches_present: false,
            note: format!(
                "no complete base backup of {id} with its WAL is in the repository yet; see `lifeboat backup list {id}`"
            ),
            windows,
        },
        Some(w) => {
            let ends = match &w.gap {
                Some(seg) => format!(
                    "the WAL segment {seg} is missing from the repository: the window ends before it, and the next base backup starts a new one"
                ),
                None if super::present::can_reach_present(rec) => "the window ends at the last commit in the stored WAL; the master is running, so newer points up to the present are restorable too: temp create waits seconds for its newest WAL to be stored".into(),
                None => "the window ends at the last commit in the stored WAL".into(),
            };
            let earlier: Vec<String> = all
                .windows(2)
                .map(|pair| lost_between(&pair[0], &pair[1]))
                .collect();
            WindowView {
                instance_id: id,
                available: true,
                earliest: Some(w.earliest),
                latest: Some(w.latest),
                earliest_lsn: Some(w.earliest_lsn.to_string()),
                latest_lsn: Some(w.latest_lsn.to_string()),
                timeline: Some(w.timeline),
                reaches_present: w.gap.is_none() && super::present::can_reach_present(rec),
                note: if earlier.is_empty() {
                    ends
                } else {
                    format!(
                        "{ends}. {}; the earlier windows are listed under windows and stay restorable",
                        earlier.join("; ")
                    )
                },
                gap: w.gap.clone(),
                windows,
            }
        }
    })
}

/// Re-reads every stored object of the master and checks it.
pub async fn verify(state: &Shared, rec: &InstanceRecord) -> Result<VerifyView> {
    let repo = repository_of(state, rec)?;
    let parallelism = std::thread::available_parallelism().map_or(2, |n| n.get()) * 2;
    let report = lifeboat_backup::verify(&repo, rec.id.as_str(), parallelism).await?;
    Ok(VerifyView {
        instance_id: rec.id.to_string(),
        ok: report.is_ok(),
        backups: report.backups,
        objects_checked: report.objects_checked,
        bytes_checked: report.bytes_checked,
        problems: report
            .problems
            .into_iter()
            .map(|p| VerifyProblemView {
                object: p.object,
                files: p.files,
                detail: p.detail,
            })
            .collect(),
    })
}
