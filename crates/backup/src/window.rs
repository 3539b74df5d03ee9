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
//! - After a gap, the first complete backup that started past it begins the next
//!   window ([`restorable_windows`]): the points between two windows are lost.
//! - `latest` is the last commit record in that continuous WAL (see [`crate::waldump`]),
//!   found by reading segments backwards from the last one until a commit after the
//!   backup's stop appears. Without any such commit the window is the single point
//!   `earliest`.
//!
//! Only the timeline of the base backups is followed: Lifeboat masters are never
//! promoted, so their WAL stays on one timeline.

use std::collections::HashSet;
use std::path::Path;

use chrono::{DateTime, Utc};
use lifeboat_domain::RestoreTarget;
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

/// The window that reaches furthest: the last of [`restorable_windows`], `None` when
/// no complete backup with its WAL exists yet.
pub async fn restorable_window(
    repo: &Repository,
    instance: &str,
    waldump: &Path,
) -> Result<Option<RestorableWindow>, BackupError> {
    Ok(restorable_windows(repo, instance, waldump).await?.pop())
}

/// Every restorable window of `instance`, oldest first; empty when no complete backup
/// with its WAL exists yet. There is more than one when WAL went missing (a slot
/// dropped, segments removed before they were stored): each window but the last ends
/// before its gap, and the next starts at the first complete backup taken after it.
/// `waldump` is the `pg_waldump` of the cluster's major version.
pub async fn restorable_windows(
    repo: &Repository,
    instance: &str,
    waldump: &Path,
) -> Result<Vec<RestorableWindow>, BackupError> {
    let backups = manifest::list_backups(repo, instance).await?;
    let Some(first) = backups.first() else {
        return Ok(Vec::new());
    };
    let seg_size = first.wal_segment_size;
    let segments = archived_segments(repo, instance, seg_size).await?;
    let wal = Wal {
        repo,
        instance,
        waldump,
        segments: &segments,
        seg_size,
    };
    let mut windows = Vec::new();
    // The segment the previous window's WAL broke off at.
    let mut after: Option<u64> = None;
    while let Some(base) = backups
        .iter()
        .find(|m| wal.backup_complete(m) && after.is_none_or(|gap| wal.start_segment(m) > gap))
    {
        let (window, gap) = wal.window_from(base, &backups).await?;
        windows.push(window);
        match gap {
            Some(seg) => after = Some(seg),
            None => break,
        }
    }
    Ok(windows)
}

/// What a window is computed from.
struct Wal<'a> {
    repo: &'a Repository,
    instance: &'a str,
    waldump: &'a Path,
    segments: &'a HashSet<(u32, u64)>,
    seg_size: u64,
}

impl Wal<'_> {
    fn has(&self, tli: u32, seg: u64) -> bool {
        self.segments.contains(&(tli, seg))
    }

    fn start_segment(&self, m: &Manifest) -> u64 {
        wal::segment_of(m.start_lsn.0, self.seg_size)
    }

    /// Whether a backup's own WAL, start to stop segment, is all stored.
    fn backup_complete(&self, m: &Manifest) -> bool {
        let stop = wal::segment_of(m.stop_lsn.0.saturating_sub(1), self.seg_size);
        (self.start_segment(m)..=stop).all(|s| self.has(m.timeline, s))
    }

    /// The window that starts at `base`'s end, and the missing segment it ends before
    /// when later segments exist.
    async fn window_from(
        &self,
        base: &Manifest,
        backups: &[Manifest],
    ) -> Result<(RestorableWindow, Option<u64>), BackupError> {
        let (repo, instance, waldump, seg_size) =
            (self.repo, self.instance, self.waldump, self.seg_size);
        let tli = base.timeline;
        let mut next = self.start_segment(base);
        while self.has(tli, next) {
            next += 1;
        }
        let gap_seg = self
            .segments
            .iter()
            .any(|&(t, s)| t == tli && s > next)
            .then_some(next);
        // The segment a WAL stream is receiving continues the stored WAL: what has
        // arrived of it is restorable too (wal_fetch reads it), up to a gap after it.
        let streaming = repo
            .head(&wal::stream_key(
                instance,
                &wal::segment_name(tli, next, seg_size),
            ))
            .await?
            .is_some();
        let last = if streaming { next } else { next - 1 };
        let end_lsn = Lsn((last + 1) * seg_size);
        let usable = backups
            .iter()
            .filter(|m| m.timeline == tli && m.stop_lsn >= base.stop_lsn && m.stop_lsn <= end_lsn)
            .filter(|m| self.backup_complete(m))
            .map(|m| m.id.clone())
            .collect();

        let stop_seg = wal::segment_of(base.stop_lsn.0.saturating_sub(1), seg_size);
        let commit = match last_commit(
            repo,
            instance,
            waldump,
            tli,
            stop_seg,
            last,
            seg_size,
            base.stop_lsn,
        )
        .await
        {
            // What a stream has received of a segment may not read yet (a page being
            // written), or be gone or torn (read as not there): the window then ends
            // with the archived WAL before it.
            Err(_) | Ok(None) if streaming => {
                tracing::debug!(
                    instance,
                    "the segment being received holds no commit that reads"
                );
                last_commit(
                    repo,
                    instance,
                    waldump,
                    tli,
                    stop_seg,
                    next - 1,
                    seg_size,
                    base.stop_lsn,
                )
                .await?
            }
            other => other?,
        };
        let (latest, latest_lsn) = match commit {
            Some(c) if c.time > base.stop_time => (c.time, c.lsn),
            _ => (base.stop_time, base.stop_lsn),
        };
        let window = RestorableWindow {
            earliest: base.stop_time,
            earliest_lsn: base.stop_lsn,
            latest,
            latest_lsn,
            timeline: tli,
            gap: gap_seg.map(|s| wal::segment_name(tli, s, seg_size)),
            last_segment: Some(wal::segment_name(tli, last, seg_size)),
            backups: usable,
        };
        Ok((window, gap_seg))
    }
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
    target: &RestoreTarget,
) -> Result<Option<Manifest>, BackupError> {
    Ok(backup_for(
        manifest::list_backups(repo, instance).await?,
        target,
    ))
}

/// [`backup_for_target`] among `backups` (oldest first).
pub fn backup_for(backups: Vec<Manifest>, target: &RestoreTarget) -> Option<Manifest> {
    match target {
        // A named restore point's position is unknown here: the oldest backup is the
        // safe start, since the point may lie anywhere after it.
        RestoreTarget::RestorePoint(_) => backups.into_iter().next(),
        _ => backups
            .into_iter()
            .rev()
            .find(|m| target.reachable_from(m.stop_time, m.stop_lsn)),
    }
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

#[cfg(test)]
mod tests {
    use chrono::FixedOffset;

    use super::*;

    fn manifest(id: &str, stop: &str, stop_lsn: u64) -> Manifest {
        let stop_time = DateTime::parse_from_rfc3339(stop)
            .unwrap()
            .with_timezone(&Utc);
        Manifest {
            format: 1,
            id: id.into(),
            instance: "pg-abc123".into(),
            label: id.into(),
            start_lsn: Lsn(stop_lsn - 0x100),
            stop_lsn: Lsn(stop_lsn),
            start_time: stop_time - chrono::Duration::seconds(5),
            stop_time,
            timeline: 1,
            wal_segment_size: 16 << 20,
            server_version_num: 150000,
            backup_label: String::new(),
            tablespace_map: None,
            files: Vec::new(),
            logical_size: 0,
            stored_size: 0,
            stored_objects: 0,
        }
    }

    fn backups() -> Vec<Manifest> {
        vec![
            manifest("a", "2026-11-24T08:00:00Z", 0x200_0000),
            manifest("b", "2026-11-24T09:00:00Z", 0x400_0000),
            manifest("c", "2026-11-24T10:00:00Z", 0x600_0000),
        ]
    }

    fn at(s: &str) -> RestoreTarget {
        RestoreTarget::Time(DateTime::<FixedOffset>::parse_from_rfc3339(s).unwrap())
    }

    #[test]
    fn a_restore_starts_from_the_newest_backup_that_ended_before_the_target() {
        let id = |t: &RestoreTarget| backup_for(backups(), t).map(|m| m.id);
        assert_eq!(id(&at("2026-11-24T09:30:00Z")).as_deref(), Some("b"));
        // The same instant written in another zone.
        assert_eq!(id(&at("2026-11-24T10:30:00+01:00")).as_deref(), Some("b"));
        assert_eq!(
            id(&at("2026-11-24T10:00:00Z")).as_deref(),
            Some("c"),
            "a backup's own end"
        );
        assert_eq!(
            id(&at("2026-11-24T07:59:59Z")),
            None,
            "before every backup ended"
        );
        assert_eq!(
            id(&RestoreTarget::Lsn(Lsn(0x500_0000))).as_deref(),
            Some("b")
        );
        assert_eq!(id(&RestoreTarget::Lsn(Lsn(0x100_0000))), None);
        // A restore point may lie anywhere after the oldest backup.
        assert_eq!(
            id(&RestoreTarget::RestorePoint("before_delete".into())).as_deref(),
            Some("a")
        );
        assert_eq!(backup_for(Vec::new(), &at("2026-11-24T09:30:00Z")), None);
    }
}
