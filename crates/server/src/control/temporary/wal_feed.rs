//! The WAL feeder of one restore ([`lifeboat_backup::prefetch::feed`]): fetches and
//! verifies WAL segments ahead of replay, from the moment the file restore starts, so
//! that `restore_command` finds each segment waiting.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use lifeboat_backup::prefetch::{FeedControl, Prefetch};
use lifeboat_backup::{Manifest, Repository};
use lifeboat_domain::{InstanceId, Lsn};
use lifeboat_postgres::{Cluster, OsUser};

use crate::control::workers::{self, Priority};

/// How far ahead of replay the feeder keeps segments waiting (16 MiB each). It fills
/// them while the files are restored, which waits on writes often enough to leave it
/// the CPU: replay then starts with half a gigabyte of WAL waiting and applies it as
/// fast as it can (in `bench/temporary`, with only 4 segments fetched before replay,
/// replay waited on the feeder from the fifth segment on).
const WAL_FEED_AHEAD: usize = 32;

/// The running feeder; dropping it stops it.
pub struct WalFeed {
    control: Arc<FeedControl>,
    segment_size: u64,
}

impl WalFeed {
    /// Starts feeding the WAL `backup` needs, and what follows, into the cluster's
    /// prefetch directory, on a low-priority thread.
    pub fn start(
        repo: &Repository,
        master: &InstanceId,
        backup: &Manifest,
        cluster: &Cluster,
        owner: &OsUser,
    ) -> Self {
        let control = Arc::new(FeedControl::default());
        let segment_size = backup.wal_segment_size.max(1);
        let first = backup.start_lsn.0 / segment_size;
        control.replay_segno.store(first, Ordering::Relaxed);
        let (repo, master, owner, ctl) = (
            repo.clone(),
            master.to_string(),
            owner.clone(),
            control.clone(),
        );
        let prefetch = Prefetch {
            dir: super::build::prefetch_dir(cluster),
            ahead: WAL_FEED_AHEAD,
        };
        let (timeline, size) = (backup.timeline, backup.wal_segment_size);
        let spawned = workers::spawn_thread("wal feed", Priority::Low, move || async move {
            lifeboat_backup::prefetch::feed(
                &repo,
                &master,
                &prefetch,
                (timeline, first),
                size,
                Some(&owner),
                &ctl,
            )
            .await
        });
        if let Err(e) = spawned {
            tracing::warn!(error = %e.message, "cannot start the WAL feeder; restore_command fetches WAL itself");
        }
        Self {
            control,
            segment_size,
        }
    }

    /// Tells the feeder where replay is, so it keeps its distance ahead.
    pub fn replayed(&self, lsn: Lsn) {
        self.control
            .replay_segno
            .store(lsn.0 / self.segment_size, Ordering::Relaxed);
    }
}

impl Drop for WalFeed {
    fn drop(&mut self) {
        self.control.stop.store(true, Ordering::Relaxed);
    }
}
