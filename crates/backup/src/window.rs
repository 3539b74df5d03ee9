//! The restorable window: the times and LSNs that can be recovered, computed from the
//! manifests and WAL objects actually in the repository.
//!
//! - `earliest` is the stop of the oldest complete backup whose own WAL (start to stop
//!   segment) is all archived: a backup is consistent only from its stop LSN on.
//! - From that backup's start segment, WAL segments are followed one by one on its
//!   timeline. The first missing segment that has archived segments after it is a
//!   **gap**: nothing past it can be replayed, so the window ends before it and
//!   [`RestorableWindow::gap`] names it. (A missing segment with nothing after it is just
//!   the one PostgreSQL is still writing.)
//! - `latest` is the last commit record in that continuous WAL (see [`crate::waldump`]),
//!   found by reading segments backwards from the last one until a commit after the
//!   backup's stop appears. Without any such commit the window is the single point
//!   `earliest` (restore it with [`crate::RecoveryTarget::Immediate`]).
//!
//! Only the timeline of the base backups is followed: Lifeboat masters are never
//! promoted, so their WAL stays on one timeline.

use std::collections::HashSet;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::BackupError;
use crate::lsn::Lsn;
use crate::manifest::{self, Manifest};
use crate::repository::Repository;
use crate::wal::{self, WalFileKind};
use crate::waldump;

/// `[earliest, latest]` that a restore can reach.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RestorableWindow {
    pub earliest: DateTime<Utc>,
    pub earliest_lsn: Lsn,
    pub latest: DateTime<Utc>,
    pub latest_lsn: Lsn,
    pub timeline: u32,
    /// The first missing WAL segment, when later segments exist: the window ends
    /// before it.
    pub gap: Option<String>,
    /// The last segment of the continuous WAL.
    pub last_segment: Option<String>,
    /// The backups a restore inside the window can start from, oldest first.
    pub backups: Vec<String>,
}

/// Computes the window of `instance`, or `None` when no complete backup with its WAL
/// exists yet. `waldump` is the `pg_waldump` of the cluster's major version.
pub async fn restorable_window(
    repo: &Repository,
    instance: &str,
    waldump: &Path,
) -> Result<Option<RestorableWindow>, BackupError> {
    let backups = manifest::list_backups(repo, instance).await?;
    let Some(first) = backups.first() else {
        return Ok(None);
    };
    let seg_size = first.wal_segment_size;
    let segments = archived_segments(repo, instance, seg_size).await?;
    let has = |tli: u32, seg: u64| segments.contains(&(tli, seg));
    let backup_complete = |m: &Manifest| {
        let start = wal::segment_of(m.start_lsn.0, seg_size);
        let stop = wal::segment_of(m.stop_lsn.0.saturating_sub(1), seg_size);
        (start..=stop).all(|s| has(m.timeline, s))
    };
    let Some(base) = backups.iter().find(|m| backup_complete(m)) else {
        return Ok(None);
    };
    let tli = base.timeline;
    let mut next = wal::segment_of(base.start_lsn.0, seg_size);
    while has(tli, next) {
        next += 1;
    }
    let last = next - 1;
    let gap = segments
        .iter()
        .any(|&(t, s)| t == tli && s > next)
        .then(|| wal::segment_name(tli, next, seg_size));
    let end_lsn = Lsn((last + 1) * seg_size);
    let usable = backups
        .iter()
        .filter(|m| m.timeline == tli && m.stop_lsn >= base.stop_lsn && m.stop_lsn <= end_lsn)
        .filter(|m| backup_complete(m))
        .map(|m| m.id.clone())
        .collect();

    let stop_seg = wal::segment_of(base.stop_lsn.0.saturating_sub(1), seg_size);
    let commit = last_commit(
        repo,
        instance,
        waldump,
        tli,
        stop_seg,
        last,
        seg_size,
        base.stop_lsn,
    )
    .await?;
    let (latest, latest_lsn) = match commit {
        Some(c) if c.time > base.stop_time => (c.time, c.lsn),
        _ => (base.stop_time, base.stop_lsn),
    };
    Ok(Some(RestorableWindow {
        earliest: base.stop_time,
        earliest_lsn: base.stop_lsn,
        latest,
        latest_lsn,
        timeline: tli,
        gap,
        last_segment: Some(wal::segment_name(tli, last, seg_size)),
        backups: usable,
    }))
}

impl RestorableWindow {
    /// Whether `target` can be recovered: inside `[earliest, latest]`.
    pub fn contains_time(&self, target: DateTime<Utc>) -> bool {
        self.earliest <= target && target <= self.latest
    }

    pub fn contains_lsn(&self, target: Lsn) -> bool {
        self.earliest_lsn <= target && target <= self.latest_lsn
    }
}

/// The backup a restore to `target` should start from: the newest complete backup that
/// stopped at or before the target, so the least WAL is replayed. `None` when the
/// target is before every backup's end (outside the window). Check the target against
/// [`restorable_window`] first: this looks at backups only, not at the WAL after them.
pub async fn backup_for_target(
    repo: &Repository,
    instance: &str,
    target: &crate::RecoveryTarget,
) -> Result<Option<Manifest>, BackupError> {
    use crate::RecoveryTarget;
    let backups = manifest::list_backups(repo, instance).await?;
    let fits = |m: &Manifest| match target {
        RecoveryTarget::Time(t) => m.stop_time <= t.with_timezone(&Utc),
        RecoveryTarget::Lsn(l) => m.stop_lsn <= *l,
        RecoveryTarget::Name(_) | RecoveryTarget::Immediate => true,
    };
    Ok(match target {
        // A named restore point's position is unknown here: the oldest backup is the
        // safe start, since the point may lie anywhere after it. `Immediate` means the
        // window's earliest point, the end of the oldest backup.
        RecoveryTarget::Name(_) | RecoveryTarget::Immediate => backups.into_iter().next(),
        _ => backups.into_iter().rev().find(|m| fits(m)),
    })
}

/// `(timeline, segment number)` of every archived segment.
pub(crate) async fn archived_segments(
    repo: &Repository,
    instance: &str,
    seg_size: u64,
) -> Result<HashSet<(u32, u64)>, BackupError> {
    let prefix = format!("{instance}/wal/");
    Ok(repo
        .list(&prefix)
        .await?
        .iter()
        .filter_map(|o| o.key.strip_prefix(&prefix))
        .filter(|n| matches!(wal::wal_file_kind(n), Ok(WalFileKind::Segment)))
        .filter_map(|n| wal::parse_segment(n, seg_size))
        .collect())
}

/// The last commit after `after` in segments `from..=to`, reading backwards.
#[allow(clippy::too_many_arguments)]
async fn last_commit(
    repo: &Repository,
    instance: &str,
    waldump: &Path,
    tli: u32,
    from: u64,
    to: u64,
    seg_size: u64,
    after: Lsn,
) -> Result<Option<waldump::CommitRecord>, BackupError> {
    let tmp = tempfile::tempdir().map_err(BackupError::io("cannot create a temp dir"))?;
    for seg in (from..=to).rev() {
        let name = wal::segment_name(tli, seg, seg_size);
        let dest = tmp.path().join(&name);
        if wal::wal_fetch(repo, instance, &name, &dest).await? == wal::FetchOutcome::NotFound {
            return Ok(None);
        }
        let (bin, dir, n) = (
            waldump.to_path_buf(),
            tmp.path().to_path_buf(),
            name.clone(),
        );
        let commits =
            tokio::task::spawn_blocking(move || waldump::commits_in_segment(&bin, &dir, &n))
                .await
                .map_err(|e| {
                    BackupError::io("pg_waldump task failed")(std::io::Error::other(e))
                })??;
        let _ = std::fs::remove_file(&dest);
        if let Some(c) = commits.into_iter().rfind(|c| c.lsn >= after) {
            return Ok(Some(c));
        }
    }
    Ok(None)
}
