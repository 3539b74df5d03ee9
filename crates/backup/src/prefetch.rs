//! Fetching WAL ahead of replay during a restore.
//!
//! PostgreSQL runs `restore_command` once per segment and waits for it, so fetching one
//! segment at a time leaves the repository idle while WAL is replayed and the replay
//! idle while the next segment is fetched and decompressed. With a prefetch directory,
//! a fetch that misses it gets the requested segment and the next `ahead - 1` segments
//! of the same timeline in parallel, verified, and keeps the extra ones in the
//! directory; the following calls take their segment from there with a rename.
//!
//! The directory belongs to one restored instance (outside its PGDATA); the caller
//! removes it when recovery has finished. Files appear in it only complete and
//! verified (written to a temporary name, then renamed).

use std::path::{Path, PathBuf};

use futures::StreamExt;

use crate::BackupError;
use crate::repository::Repository;
use crate::wal::{self, FetchOutcome, WalFileKind};

/// Where and how far to fetch ahead.
#[derive(Debug, Clone)]
pub struct Prefetch {
    pub dir: PathBuf,
    /// Segments fetched at once on a miss, the requested one included.
    pub ahead: usize,
}

/// [`wal::wal_fetch`], reading ahead through `prefetch`.
pub async fn wal_fetch_ahead(
    repo: &Repository,
    instance: &str,
    name: &str,
    dest: &Path,
    prefetch: &Prefetch,
) -> Result<FetchOutcome, BackupError> {
    if wal::wal_file_kind(name)? != WalFileKind::Segment || prefetch.ahead <= 1 {
        return wal::wal_fetch(repo, instance, name, dest).await;
    }
    std::fs::create_dir_all(&prefetch.dir).map_err(BackupError::io(format!(
        "cannot create {}",
        prefetch.dir.display()
    )))?;
    let spooled = prefetch.dir.join(name);
    if spooled.exists() {
        move_file(&spooled, dest)?;
        forget_older(&prefetch.dir, name);
        return Ok(FetchOutcome::Restored);
    }
    let outcome = wal::wal_fetch(repo, instance, name, dest).await?;
    if outcome == FetchOutcome::NotFound {
        return Ok(outcome);
    }
    // The segment size is the size of the segment just fetched.
    let size = std::fs::metadata(dest)
        .map_err(BackupError::io(format!("cannot stat {}", dest.display())))?
        .len();
    let Some((tli, segno)) = wal::parse_segment(name, size) else {
        return Ok(outcome);
    };
    let next: Vec<String> = (1..prefetch.ahead as u64)
        .map(|i| wal::segment_name(tli, segno + i, size))
        .filter(|n| !prefetch.dir.join(n).exists())
        .collect();
    let mut fetches = futures::stream::iter(next)
        .map(|n| async move {
            let r = wal::wal_fetch(repo, instance, &n, &prefetch.dir.join(&n)).await;
            (n, r)
        })
        .buffer_unordered(prefetch.ahead);
    while let Some((n, r)) = fetches.next().await {
        // Read-ahead is an optimisation: a failure here is reported when PostgreSQL
        // asks for that segment itself.
        if let Err(e) = r {
            tracing::debug!(segment = %n, error = %e, "prefetch failed");
        }
    }
    forget_older(&prefetch.dir, name);
    Ok(outcome)
}

fn move_file(from: &Path, to: &Path) -> Result<(), BackupError> {
    match std::fs::rename(from, to) {
        Ok(()) => Ok(()),
        // Another file system: copy through a temporary name, then drop the spooled one.
        Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
            let data = std::fs::read(from)
                .map_err(BackupError::io(format!("cannot read {}", from.display())))?;
            wal::write_atomically(to, &data)?;
            let _ = std::fs::remove_file(from);
            Ok(())
        }
        Err(e) => Err(BackupError::io(format!(
            "cannot move {} to {}",
            from.display(),
            to.display()
        ))(e)),
    }
}

/// Removes spooled segments that replay has passed.
fn forget_older(dir: &Path, current: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let n = e.file_name();
        let Some(n) = n.to_str() else { continue };
        if n.len() == 24 && n < current {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Where replay is, for [`feed`]: the segment number PostgreSQL is replaying, which the
/// caller updates as it follows recovery, and whether to stop.
#[derive(Debug, Default)]
pub struct FeedControl {
    pub replay_segno: std::sync::atomic::AtomicU64,
    pub stop: std::sync::atomic::AtomicBool,
}

/// Segments [`feed`] fetches at once.
const FEED_CONCURRENCY: usize = 2;

/// Keeps the prefetch directory filled ahead of replay, from the segment `first`
/// (the base backup's start) on: up to `prefetch.ahead` segments past the one being
/// replayed, each verified and given to `owner` (the restored cluster's OS user, which
/// moves it into its `pg_wal`). Started before the base backup's files are restored,
/// it overlaps fetching WAL with restoring files and then with replay, so
/// `restore_command` finds each segment waiting (see [`wal_fetch_ahead`]). Returns
/// when `control.stop` is set or the repository has no next segment. Best effort: a
/// segment it fails to fetch is fetched by `restore_command` itself, which reports
/// the error.
pub async fn feed(
    repo: &Repository,
    instance: &str,
    prefetch: &Prefetch,
    (timeline, first): (u32, u64),
    segment_size: u64,
    owner: Option<&lifeboat_postgres::OsUser>,
    control: &FeedControl,
) {
    use std::sync::atomic::Ordering;
    if let Err(e) = std::fs::create_dir_all(&prefetch.dir) {
        tracing::debug!(error = %e, "cannot create the prefetch directory");
        return;
    }
    if let Some(u) = owner
        && let Err(e) = u.chown(&prefetch.dir)
    {
        tracing::debug!(error = %e, "cannot give the prefetch directory to the cluster's user");
        return;
    }
    let fetch_one = |segno: u64| async move {
        let name = wal::segment_name(timeline, segno, segment_size);
        let dest = prefetch.dir.join(&name);
        // Fetched under a name restore_command ignores, given to the cluster's user,
        // then renamed into place.
        let staged = prefetch.dir.join(format!("{name}.feed"));
        let outcome = wal::wal_fetch(repo, instance, &name, &staged).await;
        let result = match outcome {
            Ok(FetchOutcome::Restored) => owner
                .map_or(Ok(()), |u| u.chown(&staged).map_err(BackupError::from))
                .and_then(|()| {
                    std::fs::rename(&staged, &dest)
                        .map_err(BackupError::io(format!("cannot move {}", staged.display())))
                })
                .map(|()| true),
            Ok(_) => Ok(false),
            Err(e) => Err(e),
        };
        if !matches!(result, Ok(true)) {
            let _ = std::fs::remove_file(&staged);
        }
        (segno, result)
    };
    let mut next = first;
    let mut end: Option<u64> = None;
    let mut running = futures::stream::FuturesUnordered::new();
    loop {
        if control.stop.load(Ordering::Relaxed) {
            return;
        }
        let replay = control.replay_segno.load(Ordering::Relaxed).max(first);
        let ahead = prefetch.ahead as u64;
        next = next.max(replay);
        while running.len() < FEED_CONCURRENCY
            && next <= replay + ahead
            && end.is_none_or(|e| next < e)
        {
            let name = wal::segment_name(timeline, next, segment_size);
            if !prefetch.dir.join(&name).exists() {
                running.push(fetch_one(next));
            }
            next += 1;
        }
        if running.is_empty() {
            if end.is_some_and(|e| next >= e) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            continue;
        }
        tokio::select! {
            done = running.next() => match done {
                Some((segno, Ok(false))) => {
                    end = Some(end.map_or(segno, |e| e.min(segno)));
                }
                Some((segno, Err(e))) => {
                    tracing::debug!(segment = segno, error = %e, "feeding WAL ahead failed");
                }
                _ => {}
            },
            () = tokio::time::sleep(std::time::Duration::from_millis(20)) => {}
        }
    }
}
