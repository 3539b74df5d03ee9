//! How WAL archiving of a master is going: PostgreSQL's `pg_stat_archiver`, with the
//! reason of the last failure from what `lifeboat wal-push` recorded (or logged).

use lifeboat_api::backups::ArchivingView;
use lifeboat_backup::archive_status::ArchiveStatus;
use lifeboat_postgres::Cluster;
use lifeboat_postgres::archiver::archiver_stats;

/// What `lifeboat wal-push` writes in front of its messages in the cluster's log.
const PUSH_MARKER: &str = "lifeboat wal-push:";

/// Archiving health of a running master; `None` when it cannot be read.
pub async fn archiving_health(cluster: &Cluster) -> Option<ArchivingView> {
    let client = cluster.connect("postgres").await.ok()?;
    let stats = archiver_stats(&client).await.ok()?;
    let last_failure_reason = if stats.last_failed_at.is_some() {
        ArchiveStatus::load(&cluster.dir.join("archive-status.json"))
            .last_failure
            .and_then(|f| f.reason)
            .or_else(|| cluster.last_log_line_after(PUSH_MARKER))
    } else {
        None
    };
    Some(ArchivingView {
        failing: stats.failing(),
        archived_count: stats.archived_count,
        last_archived_wal: stats.last_archived_wal,
        last_archived_at: stats.last_archived_at,
        failed_count: stats.failed_count,
        last_failed_wal: stats.last_failed_wal,
        last_failed_at: stats.last_failed_at,
        last_failure_reason,
    })
}
