//! Retention: expiring old backups, the WAL only they needed, and content objects no
//! backup references.
//!
//! Kept: every backup that stopped within `keep_for`, plus the newest backup that
//! stopped before that (so the whole retention period stays restorable, not only the
//! part after the first kept backup), and always the newest backup. WAL is deleted only
//! below the start segment of the oldest kept backup: everything a kept backup needs,
//! and everything after it, stays. Timeline history files are kept (they are tiny and
//! recovery asks for them).
//!
//! The server must not run [`expire`] for an instance while a base backup of it runs:
//! the backup may reuse a content object that retention is deleting. As a second
//! safety, unreferenced content objects younger than [`CONTENT_GRACE`] are left alone.

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::BackupError;
use crate::manifest::{self, Manifest};
use crate::repository::Repository;
use crate::wal::{self, WalFileKind};

/// Unreferenced content objects younger than this may belong to a running backup.
pub const CONTENT_GRACE: Duration = Duration::hours(6);

/// What [`expire`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RetentionReport {
    pub expired_backups: Vec<String>,
    pub kept_backups: Vec<String>,
    pub deleted_wal: u64,
    pub deleted_content: u64,
    pub freed_bytes: u64,
}

/// Which backups to keep, by the policy above. `backups` are oldest first.
pub fn backups_to_keep(
    backups: &[Manifest],
    keep_for: Duration,
    now: DateTime<Utc>,
) -> HashSet<String> {
    let cutoff = now - keep_for;
    let mut keep: HashSet<String> = backups
        .iter()
        .filter(|m| m.stop_time >= cutoff)
        .map(|m| m.id.clone())
        .collect();
    if let Some(m) = backups.iter().rev().find(|m| m.stop_time < cutoff) {
        keep.insert(m.id.clone());
    }
    if let Some(m) = backups.last() {
        keep.insert(m.id.clone());
    }
    keep
}

/// Applies retention to `instance`. Refuses to run while any manifest is unreadable,
/// since it could not tell which content that backup needs.
pub async fn expire(
    repo: &Repository,
    instance: &str,
    keep_for: Duration,
    now: DateTime<Utc>,
) -> Result<RetentionReport, BackupError> {
    let (backups, unreadable) = manifest::load_backups(repo, instance).await?;
    if let Some((_, e)) = unreadable.into_iter().next() {
        return Err(e);
    }
    let mut report = RetentionReport::default();
    if backups.is_empty() {
        return Ok(report);
    }
    let keep = backups_to_keep(&backups, keep_for, now);
    let (kept, expired): (Vec<&Manifest>, Vec<&Manifest>) =
        backups.iter().partition(|m| keep.contains(&m.id));
    // Manifests first: once it is gone, a backup no longer exists for anyone, so the
    // objects deleted below are never part of a listed backup.
    for m in &expired {
        repo.delete(&manifest::manifest_key(instance, &m.id))
            .await?;
        report.expired_backups.push(m.id.clone());
    }
    report.kept_backups = kept.iter().map(|m| m.id.clone()).collect();

    if let Some(oldest) = kept.iter().min_by_key(|m| m.start_lsn) {
        let seg_size = oldest.wal_segment_size;
        let first_needed = wal::segment_of(oldest.start_lsn.0, seg_size);
        let prefix = format!("{instance}/wal/");
        for o in repo.list(&prefix).await? {
            let Some(name) = o.key.strip_prefix(&prefix) else {
                continue;
            };
            let segment = match wal::wal_file_kind(name) {
                Ok(WalFileKind::Segment) => name,
                Ok(WalFileKind::BackupHistory | WalFileKind::Partial) => &name[..24],
                _ => continue,
            };
            // Segments of any timeline below the first needed position are history.
            let Some((_, segno)) = wal::parse_segment(segment, seg_size) else {
                continue;
            };
            if segno < first_needed {
                repo.delete(&o.key).await?;
                report.deleted_wal += 1;
                report.freed_bytes += o.size;
            }
        }
    }

    let referenced: HashSet<&str> = kept.iter().flat_map(|m| m.chunk_set()).collect();
    let prefix = format!("{instance}/data/");
    for o in repo.list(&prefix).await? {
        let digest = o.key.rsplit('/').next().unwrap_or("");
        if !referenced.contains(digest) && o.last_modified < now - CONTENT_GRACE {
            repo.delete(&o.key).await?;
            report.deleted_content += 1;
            report.freed_bytes += o.size;
        }
    }
    tracing::info!(
        instance,
        expired = report.expired_backups.len(),
        wal = report.deleted_wal,
        content = report.deleted_content,
        "retention applied"
    );
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lsn::Lsn;

    fn backup(id: &str, stop: DateTime<Utc>) -> Manifest {
        Manifest {
            format: 1,
            id: id.into(),
            instance: "pg-abcdef".into(),
            label: String::new(),
            start_lsn: Lsn(0),
            stop_lsn: Lsn(0),
            start_time: stop,
            stop_time: stop,
            timeline: 1,
            wal_segment_size: 16 << 20,
            server_version_num: 150000,
            backup_label: String::new(),
            tablespace_map: None,
            files: vec![],
            logical_size: 0,
            stored_size: 0,
            stored_objects: 0,
        }
    }

    #[test]
    fn keeps_the_period_covered_and_always_the_newest() {
        let now = Utc::now();
        let days = |d: i64| now - Duration::days(d);
        let backups = [
            backup("a", days(20)),
            backup("b", days(9)),
            backup("c", days(8)),
            backup("d", days(3)),
            backup("e", days(1)),
        ];
        let mut keep: Vec<_> = backups_to_keep(&backups, Duration::days(7), now)
            .into_iter()
            .collect();
        keep.sort();
        // c is older than 7 days but covers the first days of the period.
        assert_eq!(keep, ["c", "d", "e"]);
        let keep = backups_to_keep(&backups, Duration::days(7), now + Duration::days(30));
        assert_eq!(keep.into_iter().collect::<Vec<_>>(), ["e"]);
        assert!(backups_to_keep(&[], Duration::days(7), now).is_empty());
    }
}
