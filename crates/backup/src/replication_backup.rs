//! Base backups over PostgreSQL's replication protocol, for clusters Lifeboat reaches
//! only over the network (adopted instances).
//!
//! `pg_basebackup` of the cluster's major writes the backup as one tar stream
//! (`-D - -Ft`, with `-X fetch` so the WAL the backup needs comes with it). Lifeboat
//! reads the stream as it arrives and stores it in the same repository format as
//! [`crate::run_backup`]: files cut into chunks stored once under their digest,
//! directories, and a manifest written last. `backup_label` and `tablespace_map` go
//! into the manifest (restore writes them), the WAL segments of `pg_wal/` are stored
//! as archived WAL, and the `backup_manifest` PostgreSQL appends gives where the
//! backup ends. Nothing is written to Lifeboat's disk: memory holds at most a few
//! chunks per core.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::Utc;
use futures::StreamExt;

use crate::BackupError;
use crate::base_backup::{
    BackupOptions, Begun, CHUNK_SIZE, Progress, ProgressFn, begin, encode_chunk, keep_chunk,
    label_timeline,
};
use crate::lsn::Lsn;
use crate::manifest::{self, FileEntry, FileKind, MANIFEST_FORMAT, Manifest};
use crate::object::Digest;
use crate::repository::Repository;
use crate::wal::{WalFileKind, wal_file_kind, wal_push_bytes};

/// Where the cluster is, how to log in for replication, and which `pg_basebackup`.
#[derive(Clone)]
pub struct ReplicationSource {
    /// `pg_basebackup` of the cluster's major.
    pub pg_basebackup: PathBuf,
    pub host: String,
    pub port: u16,
    pub account: String,
    pub password: String,
    /// `server_version_num` of the cluster.
    pub server_version_num: i32,
    /// Who must be able to read the WAL stored (see [`Repository::owned_by`]).
    pub wal_owner: Option<lifeboat_postgres::OsUser>,
}

impl std::fmt::Debug for ReplicationSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}:{}", self.account, self.host, self.port)
    }
}

/// What the tar reader hands to the storing side.
enum Piece {
    /// A file of the backup, numbered in the order met.
    File {
        index: usize,
        path: String,
        mode: u32,
        size: u64,
    },
    Chunk {
        file: usize,
        index: usize,
        data: Vec<u8>,
    },
    Dir {
        index: usize,
        path: String,
        mode: u32,
    },
    /// `backup_label`, `tablespace_map` or `backup_manifest`.
    Special { name: String, content: String },
    /// A WAL file of `pg_wal/`.
    Wal { name: String, data: Vec<u8> },
}

/// What storing one piece gave.
enum Stored {
    Nothing,
    Entry(usize, FileEntry),
    Chunk(usize, usize, Digest),
    Special(String, String),
    Segment(u64),
}

/// Takes a base backup of the cluster at `source` into `repo` under `instance`, with
/// the WAL it needs. A failed or abandoned backup leaves no manifest (dropping the
/// future kills `pg_basebackup`, which ends the backup on the server).
pub async fn run_replication_backup(
    repo: &Repository,
    instance: &str,
    source: &ReplicationSource,
    options: &BackupOptions,
    progress: ProgressFn<'_>,
) -> Result<Manifest, BackupError> {
    let Begun {
        start_time,
        id,
        label,
        known,
    } = begin(repo, instance, options).await?;
    let known = Arc::new(Mutex::new(known));

    let mut child = Command::new(&source.pg_basebackup)
        .env_clear()
        .env("PGPASSWORD", &source.password)
        .env("LC_ALL", "C")
        .arg("-d")
        .arg(format!(
            "host='{}' port={} user='{}' application_name='lifeboat base backup' connect_timeout=10 \
             keepalives=1 keepalives_idle=10 keepalives_interval=5 keepalives_count=6",
            lifeboat_postgres::ident::conninfo_quote(&source.host),
            source.port,
            lifeboat_postgres::ident::conninfo_quote(&source.account)
        ))
        .args(["-D", "-", "-F", "t", "-X", "fetch", "--no-password", "-c"])
        .arg(if options.fast_checkpoint {
            "fast"
        } else {
            "spread"
        })
        .arg("-l")
        .arg(&label)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| BackupError::Command {
            program: source.pg_basebackup.display().to_string(),
            message: format!("cannot be run: {e}"),
        })?;
    let (Some(stdout), Some(mut stderr)) = (child.stdout.take(), child.stderr.take()) else {
        let _ = child.kill();
        return Err(BackupError::Config("pg_basebackup has no output".into()));
    };
    // Its messages, kept for the error (at most 64 kB).
    let errors = std::thread::spawn(move || {
        let mut text = Vec::new();
        let _ = (&mut stderr).take(64 << 10).read_to_end(&mut text);
        let _ = std::io::copy(&mut stderr, &mut std::io::sink());
        String::from_utf8_lossy(&text).trim().to_string()
    });
    let child = Arc::new(Mutex::new(child));
    let reader_child = child.clone();
    let parallelism = options.parallelism.max(1);
    let (tx, rx) = tokio::sync::mpsc::channel::<Piece>(parallelism);
    let reader = tokio::task::spawn_blocking(move || read_tar(stdout, &tx));
    // Dropped with the future: pg_basebackup must not outlive the backup.
    let _kill = KillOnDrop(reader_child);

    let wal_repo = match &source.wal_owner {
        Some(owner) => repo.clone().owned_by(owner.clone()),
        None => repo.clone(),
    };
    let wal_repo = &wal_repo;
    let done = AtomicU64::new(0);
    let stored_size = AtomicU64::new(0);
    let stored_objects = AtomicU64::new(0);
    let level = options.compression_level;
    // The stream (and the receiver in it) ends with this block, so a reader still
    // sending after a failure stops.
    let (entries, chunks, special, wal_segment_size, failure) = {
        let pieces =
            futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|p| (p, rx)) });
        let results = pieces
            .map(|piece| {
                let known = known.clone();
                let (done, stored_size, stored_objects) = (&done, &stored_size, &stored_objects);
                async move {
                    match piece {
                        Piece::File {
                            index,
                            path,
                            mode,
                            size,
                        } => Ok(Stored::Entry(
                            index,
                            FileEntry {
                                path,
                                kind: FileKind::File,
                                mode,
                                size,
                                checksum: String::new(),
                                chunks: Vec::new(),
                            },
                        )),
                        Piece::Dir { index, path, mode } => Ok(Stored::Entry(
                            index,
                            FileEntry {
                                path,
                                kind: FileKind::Dir,
                                mode,
                                size: 0,
                                checksum: String::new(),
                                chunks: Vec::new(),
                            },
                        )),
                        Piece::Chunk { file, index, data } => {
                            let len = data.len() as u64;
                            let codec = repo.codec().clone();
                            let owner = instance.to_string();
                            let k = known.clone();
                            let chunk = tokio::task::spawn_blocking(move || {
                                encode_chunk(&codec, &owner, &data, &k, level)
                            })
                            .await
                            .map_err(|e| {
                                BackupError::io("copy task failed")(std::io::Error::other(e))
                            })??;
                            let digest =
                                keep_chunk(repo, chunk, &known, stored_size, stored_objects)
                                    .await?;
                            let d = done.fetch_add(len, Ordering::Relaxed) + len;
                            progress(Progress {
                                bytes_done: d,
                                bytes_total: d,
                            });
                            Ok(Stored::Chunk(file, index, digest))
                        }
                        Piece::Special { name, content } => Ok(Stored::Special(name, content)),
                        Piece::Wal { name, data } => {
                            let size = data.len() as u64;
                            let segment = wal_file_kind(&name)? == WalFileKind::Segment;
                            wal_push_bytes(wal_repo, instance, &name, data).await?;
                            Ok(if segment {
                                Stored::Segment(size)
                            } else {
                                Stored::Nothing
                            })
                        }
                    }
                }
            })
            .buffer_unordered(parallelism);
        let mut results = std::pin::pin!(results);

        let mut entries: Vec<Option<FileEntry>> = Vec::new();
        let mut chunks: Vec<Vec<(usize, Digest)>> = Vec::new();
        let mut special: Vec<(String, String)> = Vec::new();
        let mut wal_segment_size = None;
        let mut failure = None;
        while let Some(r) = results.next().await {
            match r {
                Ok(Stored::Entry(i, e)) => {
                    if entries.len() <= i {
                        entries.resize(i + 1, None);
                        chunks.resize(i + 1, Vec::new());
                    }
                    entries[i] = Some(e);
                }
                Ok(Stored::Chunk(f, i, d)) => {
                    if chunks.len() <= f {
                        entries.resize(f + 1, None);
                        chunks.resize(f + 1, Vec::new());
                    }
                    chunks[f].push((i, d));
                }
                Ok(Stored::Special(n, c)) => special.push((n, c)),
                Ok(Stored::Segment(size)) => wal_segment_size = Some(size),
                Ok(Stored::Nothing) => {}
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        (entries, chunks, special, wal_segment_size, failure)
    };
    if let Some(e) = failure {
        kill(&child);
        let _ = reader.await;
        return Err(e);
    }
    let read = reader
        .await
        .map_err(|e| BackupError::io("tar reader failed")(std::io::Error::other(e)))?;
    let status = {
        let mut c = child.lock().unwrap_or_else(|p| p.into_inner());
        c.wait()
            .map_err(BackupError::io("cannot wait for pg_basebackup"))?
    };
    let messages = errors.join().unwrap_or_default();
    if !status.success() {
        return Err(BackupError::Command {
            program: format!("pg_basebackup from {}:{}", source.host, source.port),
            message: format!(
                "{status}: {}",
                if messages.is_empty() {
                    "no message".to_string()
                } else {
                    messages.replace('\n', "; ")
                }
            ),
        });
    }
    read?;

    let text = |name: &str| {
        special
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, c)| c.clone())
    };
    let backup_label = text("backup_label")
        .ok_or_else(|| BackupError::Config("the backup stream held no backup_label".into()))?;
    let start_lsn: Lsn = backup_label
        .lines()
        .find_map(|l| l.strip_prefix("START WAL LOCATION:"))
        .and_then(|v| v.split_whitespace().next())
        .ok_or_else(|| BackupError::Config("backup_label names no start location".into()))?
        .parse()?;
    let stop_lsn = text("backup_manifest")
        .and_then(|m| end_lsn(&m))
        .ok_or_else(|| {
            BackupError::Config("the backup stream's backup_manifest names no end LSN".into())
        })?;
    let timeline = label_timeline(&backup_label).unwrap_or(1);
    let files: Vec<FileEntry> = entries
        .into_iter()
        .zip(chunks)
        .filter_map(|(e, mut c)| {
            let mut e = e?;
            c.sort_by_key(|(i, _)| *i);
            let d: Vec<Digest> = c.into_iter().map(|(_, d)| d).collect();
            if e.kind == FileKind::File {
                e.checksum = manifest::file_checksum(&d);
                e.chunks = d.iter().map(hex::encode).collect();
            }
            Some(e)
        })
        .collect();
    repo.sync_all().await?;
    let manifest = Manifest {
        format: MANIFEST_FORMAT,
        id,
        instance: instance.to_string(),
        label,
        start_lsn,
        stop_lsn,
        start_time,
        stop_time: Utc::now(),
        timeline,
        wal_segment_size: wal_segment_size.unwrap_or(16 << 20),
        server_version_num: source.server_version_num,
        backup_label,
        tablespace_map: text("tablespace_map").filter(|s| !s.is_empty()),
        logical_size: files.iter().map(|f| f.size).sum(),
        stored_size: stored_size.load(Ordering::Relaxed),
        stored_objects: stored_objects.load(Ordering::Relaxed),
        files,
    };
    manifest.store(repo).await?;
    tracing::info!(
        instance,
        backup = %manifest.id,
        %start_lsn,
        %stop_lsn,
        logical = manifest.logical_size,
        stored = manifest.stored_size,
        "base backup over the replication protocol complete"
    );
    Ok(manifest)
}

/// Kills `pg_basebackup` when the backup is dropped before it ends.
struct KillOnDrop(Arc<Mutex<std::process::Child>>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        kill(&self.0);
    }
}

fn kill(child: &Mutex<std::process::Child>) {
    let mut c = child.lock().unwrap_or_else(|p| p.into_inner());
    if matches!(c.try_wait(), Ok(None)) {
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// Reads the tar stream, handing each piece over in order; blocks when the storing
/// side is `parallelism` pieces behind.
fn read_tar(
    stdout: std::process::ChildStdout,
    tx: &tokio::sync::mpsc::Sender<Piece>,
) -> Result<(), BackupError> {
    let closed = || BackupError::Config("the backup was abandoned".into());
    let bad = |e: std::io::Error| BackupError::io("cannot read the backup stream")(e);
    let mut archive = tar::Archive::new(stdout);
    read_entries(&mut archive, tx, &closed, &bad)?;
    // The end-of-archive marker may be followed by padding: read it all, or
    // pg_basebackup dies of a broken pipe writing it.
    std::io::copy(&mut archive.into_inner(), &mut std::io::sink()).map_err(bad)?;
    Ok(())
}

/// Hands over each entry of the archive (see [`read_tar`]).
fn read_entries(
    archive: &mut tar::Archive<std::process::ChildStdout>,
    tx: &tokio::sync::mpsc::Sender<Piece>,
    closed: &dyn Fn() -> BackupError,
    bad: &dyn Fn(std::io::Error) -> BackupError,
) -> Result<(), BackupError> {
    let mut index = 0usize;
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let path = entry.path().map_err(bad)?.to_string_lossy().to_string();
        let path = path
            .trim_start_matches("./")
            .trim_end_matches('/')
            .to_string();
        let mode = entry.header().mode().map_err(bad)? & 0o7777;
        let kind = entry.header().entry_type();
        if path.is_empty() {
            continue;
        }
        if kind.is_dir() {
            tx.blocking_send(Piece::Dir { index, path, mode })
                .map_err(|_| closed())?;
            index += 1;
            continue;
        }
        if kind.is_symlink() {
            return Err(BackupError::Unsupported {
                path: PathBuf::from(path),
                reason: "symbolic links (tablespaces outside the data directory) are not supported"
                    .into(),
            });
        }
        if !kind.is_file() {
            continue;
        }
        let size = entry.size();
        if matches!(
            path.as_str(),
            "backup_label" | "tablespace_map" | "backup_manifest"
        ) {
            let mut content = String::new();
            entry.read_to_string(&mut content).map_err(bad)?;
            tx.blocking_send(Piece::Special {
                name: path,
                content,
            })
            .map_err(|_| closed())?;
            continue;
        }
        if let Some(name) = path.strip_prefix("pg_wal/") {
            if wal_file_kind(name).is_ok() {
                let mut data = Vec::with_capacity(size as usize);
                entry.read_to_end(&mut data).map_err(bad)?;
                tx.blocking_send(Piece::Wal {
                    name: name.to_string(),
                    data,
                })
                .map_err(|_| closed())?;
            }
            // archive_status and anything else under pg_wal is the server's state.
            continue;
        }
        let file = index;
        index += 1;
        tx.blocking_send(Piece::File {
            index: file,
            path,
            mode,
            size,
        })
        .map_err(|_| closed())?;
        let mut chunk = 0usize;
        let mut left = size;
        while left > 0 {
            let len = CHUNK_SIZE.min(left);
            let mut data = vec![0u8; len as usize];
            entry.read_exact(&mut data).map_err(bad)?;
            tx.blocking_send(Piece::Chunk {
                file,
                index: chunk,
                data,
            })
            .map_err(|_| closed())?;
            chunk += 1;
            left -= len;
        }
    }
    Ok(())
}

/// The `End-LSN` of the last WAL range of a `backup_manifest`.
fn end_lsn(manifest: &str) -> Option<Lsn> {
    let doc: serde_json::Value = serde_json::from_str(manifest).ok()?;
    doc.get("WAL-Ranges")?
        .as_array()?
        .last()?
        .get("End-LSN")?
        .as_str()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_the_end_of_a_backup_manifest() {
        let m = r#"{ "PostgreSQL-Backup-Manifest-Version": 1, "Files": [],
            "WAL-Ranges": [ { "Timeline": 1, "Start-LSN": "0/2000028", "End-LSN": "0/2000138" } ] }"#;
        assert_eq!(
            super::end_lsn(m).map(|l| l.to_string()),
            Some("0/2000138".into())
        );
        assert_eq!(super::end_lsn("{}"), None);
    }
}
