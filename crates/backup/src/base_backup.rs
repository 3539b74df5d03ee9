//! Base backups with PostgreSQL 15's low-level API, stored by content.
//!
//! `pg_backup_start` and `pg_backup_stop` run on one session that stays open for the
//! whole copy (closing it aborts the backup, which is what we want on any error). Files
//! are cut into chunks of [`CHUNK_SIZE`]; each chunk is stored once, zstd-compressed,
//! under its digest (its sha256, or in an encrypted repository its keyed HMAC), so a chunk already referenced by an earlier backup is not stored
//! again and a second backup of an unchanged cluster stores almost nothing. Chunks,
//! not files, are the unit of parallelism, so one large relation file is read and
//! compressed on every core.
//!
//! Only chunks named by an existing manifest and still present count as stored: content
//! objects left by an interrupted backup may never have been flushed, and a damaged one
//! that was removed must be stored again, so both are written again.
//! Content objects use deferred durability and are flushed with one `syncfs` before the
//! manifest is written.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use chrono::Utc;
use futures::StreamExt;
use lifeboat_postgres::Cluster;

use crate::BackupError;
use crate::datadir::{self, Found};
use crate::lsn::Lsn;
use crate::manifest::{self, FileEntry, FileKind, MANIFEST_FORMAT, Manifest};
use crate::object::{Codec, Digest};
use crate::repository::{Durability, Repository};

/// Bytes per content chunk: big enough that a 1 GB relation segment is about a hundred
/// objects, small enough that a few chunks in flight per core bound the memory used.
pub const CHUNK_SIZE: u64 = 8 << 20;

/// How a base backup runs.
#[derive(Debug, Clone)]
pub struct BackupOptions {
    /// Passed to `pg_backup_start`; defaults to `lifeboat <id>`.
    pub label: Option<String>,
    /// Request an immediate checkpoint instead of a spread one.
    pub fast_checkpoint: bool,
    /// Chunks read, compressed and stored at once.
    pub parallelism: usize,
    /// zstd level of content objects.
    pub compression_level: i32,
}

impl Default for BackupOptions {
    fn default() -> Self {
        Self {
            label: None,
            fast_checkpoint: true,
            parallelism: std::thread::available_parallelism().map_or(2, |n| n.get()) * 2,
            compression_level: 3,
        }
    }
}

/// Progress of a long operation (a backup or a restore), in bytes of file content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub bytes_done: u64,
    pub bytes_total: u64,
}

/// Called after each chunk; must be cheap (it runs on the backup's task).
pub type ProgressFn<'a> = &'a (dyn Fn(Progress) + Send + Sync);

/// Takes a base backup of a running cluster into `repo` under `instance/`. The cluster
/// must archive its WAL into the same repository: `pg_backup_stop` waits until the WAL
/// the backup needs is archived, so with archiving broken this call waits for as long
/// as archiving fails; the caller bounds it (`tokio::time::timeout`, or dropping the
/// future, which closes the session and so aborts the backup on the server). A failed
/// or abandoned backup leaves no manifest and so does not exist; retention removes
/// the content objects it wrote. The caller must not run [`crate::expire`] for the same
/// instance at the same time.
pub async fn run_backup(
    repo: &Repository,
    instance: &str,
    cluster: &Cluster,
    options: &BackupOptions,
    progress: ProgressFn<'_>,
) -> Result<Manifest, BackupError> {
    let Begun {
        start_time,
        id,
        label,
        known,
    } = begin(repo, instance, options).await?;

    let client = cluster.connect("postgres").await?;
    let row = client
        .query_one(
            "SELECT (SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size'), \
                    current_setting('server_version_num')::int",
            &[],
        )
        .await
        .map_err(BackupError::sql("cannot read the cluster's settings"))?;
    let wal_segment_size = u64::try_from(row.get::<_, i64>(0)).unwrap_or(16 << 20);
    let server_version_num: i32 = row.get(1);
    let start_lsn: String = client
        .query_one(
            "SELECT pg_backup_start($1, $2)::text",
            &[&label, &options.fast_checkpoint],
        )
        .await
        .map_err(BackupError::sql("pg_backup_start failed"))?
        .get(0);
    let start_lsn: Lsn = start_lsn.parse()?;
    tracing::info!(instance, backup = %id, %start_lsn, "base backup started");

    let data_dir = cluster.data_dir();
    let found = tokio::task::spawn_blocking(move || datadir::scan(&data_dir))
        .await
        .map_err(|e| BackupError::io("scan task failed")(std::io::Error::other(e)))??;
    let copied = copy_files(repo, instance, found, known, options, progress).await?;

    let row = client
        .query_one(
            "SELECT lsn::text, labelfile, spcmapfile FROM pg_backup_stop(true)",
            &[],
        )
        .await
        .map_err(BackupError::sql("pg_backup_stop failed"))?;
    let stop_time = Utc::now();
    let stop_lsn: Lsn = row.get::<_, String>(0).parse()?;
    let backup_label: String = row.get(1);
    let tablespace_map: Option<String> = row.get::<_, Option<String>>(2).filter(|s| !s.is_empty());
    let timeline = label_timeline(&backup_label).unwrap_or(1);

    // Every content object must be durable before the manifest makes them reachable.
    repo.sync_all().await?;
    let manifest = Manifest {
        format: MANIFEST_FORMAT,
        id,
        instance: instance.to_string(),
        label,
        start_lsn,
        stop_lsn,
        start_time,
        stop_time,
        timeline,
        wal_segment_size,
        server_version_num,
        backup_label,
        tablespace_map,
        logical_size: copied.files.iter().map(|f| f.size).sum(),
        stored_size: copied.stored_size,
        stored_objects: copied.stored_objects,
        files: copied.files,
    };
    manifest.store(repo).await?;
    tracing::info!(
        instance,
        backup = %manifest.id,
        %stop_lsn,
        logical = manifest.logical_size,
        stored = manifest.stored_size,
        "base backup complete"
    );
    Ok(manifest)
}

/// What every base backup starts with.
pub(crate) struct Begun {
    pub(crate) start_time: chrono::DateTime<Utc>,
    /// Sortable, from the start time: `20261124T075500Z`.
    pub(crate) id: String,
    pub(crate) label: String,
    /// See [`durable_chunks`].
    pub(crate) known: HashSet<Digest>,
}

/// Names a new backup (refused when one of that second exists), marks an encrypted
/// repository's first backup (a backup never writes into a repository encrypted with
/// another key), and lists the chunks it may reuse.
pub(crate) async fn begin(
    repo: &Repository,
    instance: &str,
    options: &BackupOptions,
) -> Result<Begun, BackupError> {
    let start_time = Utc::now();
    let id = start_time.format("%Y%m%dT%H%M%SZ").to_string();
    if repo
        .head(&manifest::manifest_key(instance, &id))
        .await?
        .is_some()
    {
        return Err(BackupError::Config(format!(
            "backup {id} of {instance} already exists; start backups at least a second apart"
        )));
    }
    let label = options
        .label
        .clone()
        .unwrap_or_else(|| format!("lifeboat {id}"));
    repo.mark_encryption().await?;
    let known = durable_chunks(repo, instance).await?;
    Ok(Begun {
        start_time,
        id,
        label,
        known,
    })
}

/// Chunks a backup may reuse without storing them again: those named by a complete
/// backup (so flushed before its manifest was written) and still present. Content
/// objects of an interrupted backup may never have reached the disk, and a damaged
/// object removed with [`crate::verify::remove_damaged`] must be stored again.
async fn durable_chunks(repo: &Repository, instance: &str) -> Result<HashSet<Digest>, BackupError> {
    let referenced: HashSet<Digest> = manifest::list_backups(repo, instance)
        .await?
        .iter()
        .flat_map(|m| m.files.iter().flat_map(|f| f.chunks.iter()))
        .filter_map(|h| hex_digest(h))
        .collect();
    let prefix = format!("{instance}/data/");
    Ok(repo
        .list(&prefix)
        .await?
        .iter()
        .filter_map(|o| hex_digest(o.key.rsplit('/').next()?))
        .filter(|d| referenced.contains(d))
        .collect())
}

/// The `START TIMELINE` line of a `backup_label`.
pub(crate) fn label_timeline(label: &str) -> Option<u32> {
    label
        .lines()
        .find_map(|l| l.strip_prefix("START TIMELINE:"))
        .and_then(|v| v.trim().parse().ok())
}

fn hex_digest(h: &str) -> Option<Digest> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(h, &mut out).ok()?;
    Some(out)
}

struct Copied {
    files: Vec<FileEntry>,
    stored_size: u64,
    stored_objects: u64,
}

/// One chunk to read: file index, chunk index, offset, length.
#[derive(Clone, Copy)]
struct Job {
    file: usize,
    index: usize,
    offset: u64,
    len: u64,
}

async fn copy_files(
    repo: &Repository,
    instance: &str,
    found: Vec<Found>,
    known: HashSet<Digest>,
    options: &BackupOptions,
    progress: ProgressFn<'_>,
) -> Result<Copied, BackupError> {
    let total: u64 = found.iter().map(|f| f.size).sum();
    let mut jobs = Vec::new();
    let mut digests: Vec<Vec<Option<Digest>>> = Vec::with_capacity(found.len());
    for (i, f) in found.iter().enumerate() {
        let n = if f.is_dir {
            0
        } else {
            f.size.div_ceil(CHUNK_SIZE)
        };
        digests.push(vec![None; n as usize]);
        for c in 0..n {
            let offset = c * CHUNK_SIZE;
            jobs.push(Job {
                file: i,
                index: c as usize,
                offset,
                len: CHUNK_SIZE.min(f.size - offset),
            });
        }
    }
    let known = Arc::new(Mutex::new(known));
    let found = Arc::new(found);
    let done = AtomicU64::new(0);
    let stored_size = AtomicU64::new(0);
    let stored_objects = AtomicU64::new(0);
    let level = options.compression_level;
    let mut results = futures::stream::iter(jobs)
        .map(|job| {
            let known = known.clone();
            let found = found.clone();
            let (done, stored_size, stored_objects) = (&done, &stored_size, &stored_objects);
            async move {
                let path = found[job.file].abs.clone();
                let k = known.clone();
                let codec = repo.codec().clone();
                let owner = instance.to_string();
                let read = tokio::task::spawn_blocking(move || {
                    read_chunk(&codec, &owner, &path, &job, &k, level)
                })
                .await
                .map_err(|e| BackupError::io("copy task failed")(std::io::Error::other(e)))??;
                let digest = keep_chunk(repo, read, &known, stored_size, stored_objects).await?;
                let d = done.fetch_add(job.len, Ordering::Relaxed) + job.len;
                progress(Progress {
                    bytes_done: d,
                    bytes_total: total,
                });
                Ok::<_, BackupError>((job.file, job.index, digest))
            }
        })
        .buffer_unordered(options.parallelism.max(1));
    while let Some(r) = results.next().await {
        let (file, index, digest) = r?;
        digests[file][index] = Some(digest);
    }
    drop(results);
    let found = Arc::try_unwrap(found).unwrap_or_else(|a| (*a).clone());
    let files = found
        .into_iter()
        .zip(digests)
        .map(|(f, d)| {
            let d: Vec<Digest> = d.into_iter().flatten().collect();
            FileEntry {
                path: f.rel,
                kind: if f.is_dir {
                    FileKind::Dir
                } else {
                    FileKind::File
                },
                mode: f.mode,
                size: f.size,
                checksum: if f.is_dir {
                    String::new()
                } else {
                    manifest::file_checksum(&d)
                },
                chunks: d.iter().map(hex::encode).collect(),
            }
        })
        .collect();
    Ok(Copied {
        files,
        stored_size: stored_size.into_inner(),
        stored_objects: stored_objects.into_inner(),
    })
}

pub(crate) struct ReadChunk {
    pub(crate) digest: Digest,
    /// The object's key and the object, when the content is not stored yet.
    pub(crate) stored: Option<(String, Vec<u8>)>,
}

/// Reads one chunk. A file that shrank or vanished while the backup runs is read as
/// zeros past its end, like pg_basebackup does: the WAL replayed from the backup's start
/// truncates or removes it again, and the manifest keeps the size it had when scanned.
fn read_chunk(
    codec: &Codec,
    instance: &str,
    path: &std::path::Path,
    job: &Job,
    known: &Mutex<HashSet<Digest>>,
    level: i32,
) -> Result<ReadChunk, BackupError> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; job.len as usize];
    match std::fs::File::open(path) {
        Ok(f) => {
            let mut got = 0usize;
            while got < buf.len() {
                match f.read_at(&mut buf[got..], job.offset + got as u64) {
                    Ok(0) => break,
                    Ok(n) => got += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        return Err(BackupError::io(format!("cannot read {}", path.display()))(
                            e,
                        ));
                    }
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(BackupError::io(format!("cannot open {}", path.display()))(
                e,
            ));
        }
    }
    encode_chunk(codec, instance, &buf, known, level)
}

/// Stores a chunk's object when it has one (content no backup has yet, written with
/// deferred durability: [`Repository::sync_all`] comes before the manifest), counts it,
/// and remembers its digest; returns the digest.
pub(crate) async fn keep_chunk(
    repo: &Repository,
    chunk: ReadChunk,
    known: &Mutex<HashSet<Digest>>,
    stored_size: &AtomicU64,
    stored_objects: &AtomicU64,
) -> Result<Digest, BackupError> {
    if let Some((key, object)) = chunk.stored {
        let n = object.len() as u64;
        repo.put(&key, Bytes::from(object), Durability::Deferred)
            .await?;
        if let Ok(mut k) = known.lock() {
            k.insert(chunk.digest);
        }
        stored_size.fetch_add(n, Ordering::Relaxed);
        stored_objects.fetch_add(1, Ordering::Relaxed);
    }
    Ok(chunk.digest)
}

/// The digest of a chunk and, when no stored backup has it yet, its object.
pub(crate) fn encode_chunk(
    codec: &Codec,
    instance: &str,
    buf: &[u8],
    known: &Mutex<HashSet<Digest>>,
    level: i32,
) -> Result<ReadChunk, BackupError> {
    let digest = codec.digest(buf);
    let present = known.lock().map(|k| k.contains(&digest)).unwrap_or(false);
    let stored = if present {
        None
    } else {
        let key = manifest::content_key(instance, &hex::encode(digest));
        let object = codec.encode_with(&key, buf, &digest, level)?;
        Some((key, object))
    };
    Ok(ReadChunk { digest, stored })
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_the_timeline_from_the_label() {
        let label = "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\n\
                     CHECKPOINT LOCATION: 0/2000060\nSTART TIMELINE: 3\n";
        assert_eq!(super::label_timeline(label), Some(3));
    }
}
