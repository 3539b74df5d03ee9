//! The WAL archive: `archive_command` pushes, `restore_command` fetches.
//!
//! Each WAL file is stored once, at `<instance>/wal/<name>`, in the object format of
//! [`crate::object`]. A push reports success only once the object is durable. Pushing a
//! name that is stored with the same content succeeds (PostgreSQL re-runs the command
//! after a crash between our success and its own bookkeeping); different content is
//! refused, because an archived segment must never be replaced (a second cluster
//! writing into the same prefix would otherwise destroy the first one's history).

use std::path::Path;

use bytes::Bytes;

use crate::BackupError;
use crate::object::MAX_HEADER_LEN;
use crate::repository::{Durability, PutOutcome, Repository};

/// zstd level for WAL: WAL compresses well even at a low level, and the push must keep
/// up with the cluster writing it.
pub const WAL_COMPRESSION_LEVEL: i32 = 1;

/// What [`wal_push`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    /// The file is now durable in the repository.
    Stored,
    /// The same content was already archived.
    AlreadyArchived,
}

/// What [`wal_fetch`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchOutcome {
    /// The file was written to the destination, its checksum verified.
    Restored,
    /// The repository has no such file (normal at the end of the archive).
    NotFound,
}

/// The kinds of file PostgreSQL archives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalFileKind {
    /// `000000010000000000000003`
    Segment,
    /// `00000002.history`
    History,
    /// `000000010000000000000003.00000028.backup`
    BackupHistory,
    /// `000000010000000000000003.partial`, archived at a promotion.
    Partial,
}

/// Classifies a WAL file name; refuses anything else (a path, a stray file).
pub fn wal_file_kind(name: &str) -> Result<WalFileKind, BackupError> {
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    let kind = match name.split('.').collect::<Vec<_>>().as_slice() {
        [seg] if hex(seg, 24) => Some(WalFileKind::Segment),
        [tli, "history"] if hex(tli, 8) => Some(WalFileKind::History),
        [seg, off, "backup"] if hex(seg, 24) && hex(off, 8) => Some(WalFileKind::BackupHistory),
        [seg, "partial"] if hex(seg, 24) => Some(WalFileKind::Partial),
        _ => None,
    };
    kind.ok_or_else(|| BackupError::BadWalName(name.to_string()))
}

/// The key of a WAL file in the repository.
pub fn wal_key(instance: &str, name: &str) -> String {
    format!("{instance}/wal/{name}")
}

/// Archives one WAL file (`%p` of `archive_command`).
pub async fn wal_push(
    repo: &Repository,
    instance: &str,
    path: &Path,
) -> Result<PushOutcome, BackupError> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| BackupError::BadWalName(path.display().to_string()))?
        .to_string();
    wal_file_kind(&name)?;
    let raw = tokio::fs::read(path)
        .await
        .map_err(BackupError::io(format!("cannot read {}", path.display())))?;
    wal_push_bytes(repo, instance, &name, raw).await
}

/// Archives the WAL file `name` with content `raw` (a segment received over the
/// replication protocol, or fetched with a base backup): stored once, durable before
/// it returns; the same name with other content is refused.
pub async fn wal_push_bytes(
    repo: &Repository,
    instance: &str,
    name: &str,
    raw: Vec<u8>,
) -> Result<PushOutcome, BackupError> {
    let name = name.to_string();
    wal_file_kind(&name)?;
    let key = wal_key(instance, &name);
    let (codec, k) = (repo.codec().clone(), key.clone());
    let (stored, digest) =
        tokio::task::spawn_blocking(move || codec.encode(&k, &raw, WAL_COMPRESSION_LEVEL))
            .await
            .map_err(|e| BackupError::io("compression task failed")(std::io::Error::other(e)))??;
    let stored = Bytes::from(stored);
    match repo
        .put_if_absent(&key, stored.clone(), Durability::Durable)
        .await?
    {
        PutOutcome::Created => Ok(PushOutcome::Stored),
        PutOutcome::AlreadyExists => {
            let head = repo.get_prefix(&key, MAX_HEADER_LEN as u64).await?;
            match repo.codec().header(&key, &head) {
                Ok(h) if h.digest == digest => Ok(PushOutcome::AlreadyArchived),
                Ok(h) => Err(BackupError::WalConflict {
                    name,
                    stored: hex::encode(h.digest),
                    new: hex::encode(digest),
                }),
                // No valid header: only a write that never completed leaves that, and
                // it was never reported archived, so replacing it loses nothing. (An
                // object of the other kind, clear or encrypted, is an error: it was
                // complete, and is not ours to replace.)
                Err(BackupError::Corrupt { .. }) => {
                    tracing::warn!(object = %key, "replacing an incomplete WAL object");
                    repo.put(&key, stored, Durability::Durable).await?;
                    Ok(PushOutcome::Stored)
                }
                Err(e) => Err(e),
            }
        }
    }
}

/// The key of the segment a WAL stream is receiving: what has arrived of it so far,
/// replaced as it grows, until the finished segment is archived.
pub fn stream_key(instance: &str, segment: &str) -> String {
    format!("{instance}/stream/{segment}")
}

/// Stores what a WAL stream has received of `segment` so far (`raw` is the whole
/// segment file, zeros after the received part), replacing the previous copy. Not an
/// archived segment: it is read only while the segment is not archived.
pub async fn stream_push(
    repo: &Repository,
    instance: &str,
    segment: &str,
    raw: Vec<u8>,
) -> Result<(), BackupError> {
    if wal_file_kind(segment)? != WalFileKind::Segment {
        return Err(BackupError::BadWalName(segment.to_string()));
    }
    let key = stream_key(instance, segment);
    let (codec, k) = (repo.codec().clone(), key.clone());
    let (stored, _) =
        tokio::task::spawn_blocking(move || codec.encode(&k, &raw, WAL_COMPRESSION_LEVEL))
            .await
            .map_err(|e| BackupError::io("compression task failed")(std::io::Error::other(e)))??;
    // Replaced every second or so while the segment grows, so not flushed each time:
    // after a crash of the host the copy may be torn (its digest then fails, and the
    // window ends with the stored WAL) until the stream stores it again; the cluster's
    // slot keeps that WAL meanwhile.
    repo.put(&key, Bytes::from(stored), Durability::Deferred)
        .await
}

/// Restores one WAL file (`%f` to `%p` of `restore_command`), verified, written
/// atomically so PostgreSQL never reads a partial file. A segment not archived yet is
/// restored from what a WAL stream has received of it, if anything.
pub async fn wal_fetch(
    repo: &Repository,
    instance: &str,
    name: &str,
    dest: &Path,
) -> Result<FetchOutcome, BackupError> {
    let kind = wal_file_kind(name)?;
    let mut key = wal_key(instance, name);
    let stored = match repo.get(&key).await {
        Ok(b) => b,
        Err(e) if e.is_not_found() && kind == WalFileKind::Segment => {
            key = stream_key(instance, name);
            match repo.get(&key).await {
                Ok(b) => b,
                Err(e) if e.is_not_found() => return Ok(FetchOutcome::NotFound),
                Err(e) => return Err(e),
            }
        }
        Err(e) if e.is_not_found() => return Ok(FetchOutcome::NotFound),
        Err(e) => return Err(e),
    };
    let dest = dest.to_path_buf();
    let codec = repo.codec().clone();
    let from_stream = key != wal_key(instance, name);
    tokio::task::spawn_blocking(move || {
        let raw = match codec.decode_restoring(&key, &stored) {
            Ok((_, raw)) => raw,
            // The stream's copy is not flushed as it is replaced (see stream_push): torn
            // by a crash of the host, it is as if nothing had arrived of that segment.
            Err(e @ BackupError::Corrupt { .. }) if from_stream => {
                tracing::warn!(object = %key, error = %e, "the stream's copy of a segment does not read; it is stored again as the stream goes on");
                return Ok(FetchOutcome::NotFound);
            }
            Err(e) => return Err(e),
        };
        write_atomically(&dest, &raw)?;
        Ok(FetchOutcome::Restored)
    })
    .await
    .map_err(|e| BackupError::io("fetch task failed")(std::io::Error::other(e)))?
}

/// Writes through a temporary name in the same directory, then renames. The temporary
/// name is unique to this write: two processes fetching the same segment ahead (the
/// server's feeder and a `wal-fetch`) never write into each other's file.
pub(crate) fn write_atomically(dest: &Path, data: &[u8]) -> Result<(), BackupError> {
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut tmp = dest.as_os_str().to_owned();
    tmp.push(format!(".{}.{n}.lifeboat-tmp", std::process::id()));
    let tmp = std::path::PathBuf::from(tmp);
    std::fs::write(&tmp, data)
        .and_then(|()| std::fs::rename(&tmp, dest))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            BackupError::io(format!("cannot write {}", dest.display()))(e)
        })
}

/// Splits a segment name into timeline and segment number, given the segment size.
pub fn parse_segment(name: &str, segment_size: u64) -> Option<(u32, u64)> {
    if name.len() != 24 || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let tli = u32::from_str_radix(&name[0..8], 16).ok()?;
    let log = u64::from_str_radix(&name[8..16], 16).ok()?;
    let seg = u64::from_str_radix(&name[16..24], 16).ok()?;
    let per_log = segments_per_log(segment_size);
    if seg >= per_log {
        return None;
    }
    Some((tli, log * per_log + seg))
}

/// The file name of segment `segno` of timeline `tli`.
pub fn segment_name(tli: u32, segno: u64, segment_size: u64) -> String {
    let per_log = segments_per_log(segment_size);
    format!("{tli:08X}{:08X}{:08X}", segno / per_log, segno % per_log)
}

/// The segment holding `lsn`.
pub fn segment_of(lsn: u64, segment_size: u64) -> u64 {
    lsn / segment_size
}

fn segments_per_log(segment_size: u64) -> u64 {
    0x1_0000_0000 / segment_size.max(1)
}

/// The `archive_command` that runs `lifeboat wal-push`.
pub fn archive_command(lifeboat: &Path, repo_config: &Path, instance: &str) -> String {
    format!(
        "{} wal-push --repo-config {} --instance {} %p",
        shell_quote(&lifeboat.display().to_string()),
        shell_quote(&repo_config.display().to_string()),
        shell_quote(instance)
    )
}

/// Quotes for `/bin/sh` when needed (paths in archive and restore commands).
pub(crate) fn shell_quote(s: &str) -> String {
    if s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/-_.=:".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// What a thin binary prints and exits with, for `archive_command`/`restore_command`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutcome {
    pub code: i32,
    /// For stderr; empty when there is nothing to say (a quiet "not found").
    pub message: String,
}

/// `lifeboat wal-push --repo-config FILE --instance ID [--status-file FILE] %p`: exit 0
/// only when the file is durable; non-zero makes PostgreSQL keep the WAL and retry. With
/// `status_file`, the outcome is recorded there ([`crate::archive_status`]). Must not be
/// called inside an async runtime (it runs its own).
pub fn wal_push_command(
    config: &Path,
    instance: &str,
    wal_path: &Path,
    status_file: Option<&Path>,
) -> CommandOutcome {
    let result = run_blocking(async {
        let repo = Repository::open(&crate::RepositoryConfig::load(config)?)?;
        wal_push(&repo, instance, wal_path).await
    });
    let name = wal_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let outcome = match &result {
        Ok(_) => CommandOutcome {
            code: 0,
            message: String::new(),
        },
        Err(e) => CommandOutcome {
            code: 1,
            message: format!(
                "lifeboat wal-push: cannot archive {}: {e}; hint: {}",
                wal_path.display(),
                e.hint()
            ),
        },
    };
    if let Some(status) = status_file {
        let reason = result.as_ref().err().map(|e| e.to_string());
        // The status is a report: failing to write it must not fail archiving.
        if let Err(e) = crate::archive_status::ArchiveStatus::record(status, &name, reason) {
            tracing::warn!(error = %e, "cannot record the archive status");
        }
    }
    outcome
}

/// Exit status of [`wal_fetch_command`] for a failure other than "not found": PostgreSQL
/// aborts recovery on a status above 125 instead of taking the file as missing, which
/// would end recovery early at the damaged file.
pub const FETCH_FAILED_EXIT: i32 = 126;

/// `lifeboat wal-fetch --repo-config FILE --instance ID [--prefetch-dir DIR --prefetch N] %f %p`:
/// exit 0 when restored, 1 quietly when the archive has no such file,
/// [`FETCH_FAILED_EXIT`] on any other error. Must not be called inside an async runtime.
pub fn wal_fetch_command(
    config: &Path,
    instance: &str,
    name: &str,
    dest: &Path,
    prefetch: Option<&crate::prefetch::Prefetch>,
) -> CommandOutcome {
    let result = run_blocking(async {
        let repo = Repository::open(&crate::RepositoryConfig::load(config)?)?;
        match prefetch {
            Some(p) => crate::prefetch::wal_fetch_ahead(&repo, instance, name, dest, p).await,
            None => wal_fetch(&repo, instance, name, dest).await,
        }
    });
    match result {
        Ok(FetchOutcome::Restored) => CommandOutcome {
            code: 0,
            message: String::new(),
        },
        Ok(FetchOutcome::NotFound) => CommandOutcome {
            code: 1,
            message: String::new(),
        },
        Err(e) => CommandOutcome {
            code: FETCH_FAILED_EXIT,
            message: format!(
                "lifeboat wal-fetch: cannot restore {name}: {e}; hint: {}",
                e.hint()
            ),
        },
    }
}

fn run_blocking<T>(fut: impl Future<Output = Result<T, BackupError>>) -> Result<T, BackupError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(BackupError::io("cannot start the async runtime"))?;
    rt.block_on(fut)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_classified_and_paths_refused() {
        assert_eq!(
            wal_file_kind("000000010000000000000003").unwrap(),
            WalFileKind::Segment
        );
        assert_eq!(
            wal_file_kind("00000002.history").unwrap(),
            WalFileKind::History
        );
        assert_eq!(
            wal_file_kind("000000010000000000000003.00000028.backup").unwrap(),
            WalFileKind::BackupHistory
        );
        for bad in [
            "../x",
            "00000001000000000000000",
            "RECOVERYXLOG",
            "a/000000010000000000000003",
        ] {
            assert!(wal_file_kind(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn segment_numbers_round_trip() {
        let size = 16 << 20;
        let (tli, segno) = parse_segment("0000000200000001000000FF", size).unwrap();
        assert_eq!((tli, segno), (2, 256 + 255));
        assert_eq!(segment_name(2, segno + 1, size), "000000020000000200000000");
        assert!(parse_segment("000000010000000000000100", size).is_none());
    }
}
