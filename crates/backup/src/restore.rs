//! Writing a base backup into a new data directory, and the `restore_command` that
//! feeds its recovery from the repository. The recovery settings themselves are
//! PostgreSQL's business: [`lifeboat_postgres::recovery`].
//!
//! Every chunk is checked twice: its object's own header checksum, and that this
//! checksum is the digest the manifest names for that part of the file. A mismatch
//! fails the restore with the file's path, so a restore never silently produces
//! different data. Chunks are fetched and written in parallel; files are created at
//! their full size first and filled with positioned writes.

use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use futures::StreamExt;
use lifeboat_postgres::OsUser;

use crate::BackupError;
use crate::base_backup::{CHUNK_SIZE, Progress, ProgressFn};
use crate::manifest::{self, FileKind, Manifest};
use crate::object::Codec;
use crate::repository::Repository;

/// How a restore runs.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// Chunks fetched and written at once.
    pub parallelism: usize,
    /// The OS user the restored cluster runs as; every file is given to it.
    pub owner: Option<OsUser>,
}

impl Default for RestoreOptions {
    fn default() -> Self {
        Self {
            parallelism: std::thread::available_parallelism().map_or(2, |n| n.get()) * 2,
            owner: None,
        }
    }
}

/// Writes backup `backup_id` of `instance` into `dest` (a new or empty directory; it
/// becomes PGDATA), with `backup_label`, `tablespace_map` and an empty `pg_wal`.
/// Returns the backup's manifest. Recovery settings are written separately
/// ([`RecoverySettings`], [`write_recovery_signal`]). On error, what was written so far
/// stays in `dest` for the caller to remove. The restored cluster must be started with
/// the binaries of the backup's major version ([`Manifest::server_version_num`]).
pub async fn restore(
    repo: &Repository,
    instance: &str,
    backup_id: &str,
    dest: &Path,
    options: &RestoreOptions,
    progress: ProgressFn<'_>,
) -> Result<Manifest, BackupError> {
    repo.check_encryption().await?;
    let manifest = Manifest::load(repo, instance, backup_id).await?;
    prepare_dest(dest)?;
    let owner = options.owner.clone();
    let chown = |p: &Path| -> Result<(), BackupError> {
        match &owner {
            Some(u) => u.chown(p).map_err(BackupError::from),
            None => Ok(()),
        }
    };
    chown(dest)?;

    // Directories first (the manifest lists parents before children), then files at
    // full size so chunks can be written in any order.
    let mut jobs = Vec::new();
    for entry in &manifest.files {
        let path = safe_join(dest, &entry.path)?;
        match entry.kind {
            FileKind::Dir => {
                std::fs::create_dir_all(&path)
                    .map_err(BackupError::io(format!("cannot create {}", path.display())))?;
                set_mode(&path, entry.mode.max(0o700))?;
            }
            FileKind::File => {
                let f = std::fs::File::create(&path)
                    .map_err(BackupError::io(format!("cannot create {}", path.display())))?;
                f.set_len(entry.size)
                    .map_err(BackupError::io(format!("cannot size {}", path.display())))?;
                set_mode(&path, entry.mode)?;
                if entry.chunks.len() as u64 != entry.size.div_ceil(CHUNK_SIZE) {
                    return Err(BackupError::corrupt(
                        format!("manifest of backup {backup_id}"),
                        format!(
                            "{} has {} chunks for {} bytes",
                            entry.path,
                            entry.chunks.len(),
                            entry.size
                        ),
                    ));
                }
                for (i, digest) in entry.chunks.iter().enumerate() {
                    let offset = i as u64 * CHUNK_SIZE;
                    jobs.push(ChunkJob {
                        rel: entry.path.clone(),
                        path: path.clone(),
                        offset,
                        len: CHUNK_SIZE.min(entry.size - offset),
                        digest: digest.clone(),
                    });
                }
            }
        }
        chown(&path)?;
    }
    for dir in ["pg_wal", "pg_wal/archive_status"] {
        let path = dest.join(dir);
        std::fs::create_dir_all(&path)
            .map_err(BackupError::io(format!("cannot create {}", path.display())))?;
        set_mode(&path, 0o700)?;
        chown(&path)?;
    }

    let total = manifest.logical_size;
    let done = AtomicU64::new(0);
    let mut results = futures::stream::iter(jobs)
        .map(|job| {
            let done = &done;
            async move {
                let key = manifest::content_key(instance, &job.digest);
                let stored = repo
                    .get(&key)
                    .await
                    .map_err(|e| in_file(&job.rel, &key, e))?;
                let codec = repo.codec().clone();
                let n =
                    tokio::task::spawn_blocking(move || write_chunk(&codec, &job, &key, &stored))
                        .await
                        .map_err(|e| {
                            BackupError::io("restore task failed")(std::io::Error::other(e))
                        })??;
                let d = done.fetch_add(n, Ordering::Relaxed) + n;
                progress(Progress {
                    bytes_done: d,
                    bytes_total: total,
                });
                Ok::<_, BackupError>(())
            }
        })
        .buffer_unordered(options.parallelism.max(1));
    while let Some(r) = results.next().await {
        r?;
    }
    drop(results);

    write_owned(&dest.join("backup_label"), &manifest.backup_label, &chown)?;
    if let Some(map) = &manifest.tablespace_map {
        write_owned(&dest.join("tablespace_map"), map, &chown)?;
    }
    Ok(manifest)
}

fn prepare_dest(dest: &Path) -> Result<(), BackupError> {
    if dest.exists() {
        let mut entries = std::fs::read_dir(dest)
            .map_err(BackupError::io(format!("cannot list {}", dest.display())))?;
        if entries.next().is_some() {
            return Err(BackupError::Io {
                context: format!("cannot restore into {}", dest.display()),
                source: std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "the directory is not empty",
                ),
            });
        }
    }
    std::fs::create_dir_all(dest)
        .map_err(BackupError::io(format!("cannot create {}", dest.display())))?;
    // PostgreSQL refuses a data directory others can read.
    set_mode(dest, 0o700)
}

/// Joins a manifest path under `dest`, refusing anything that could escape it.
fn safe_join(dest: &Path, rel: &str) -> Result<PathBuf, BackupError> {
    let ok = !rel.is_empty()
        && !rel.starts_with('/')
        && rel
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..");
    if ok {
        Ok(dest.join(rel))
    } else {
        Err(BackupError::corrupt(
            "manifest",
            format!("unsafe path '{rel}'"),
        ))
    }
}

/// Names the restored file in an error about one of its content objects.
fn in_file(rel: &str, key: &str, e: BackupError) -> BackupError {
    match e {
        BackupError::NotFound { .. } => BackupError::corrupt(
            format!("{rel} (content object {key})"),
            "the content object is missing from the repository",
        ),
        BackupError::Corrupt { reason, .. } => {
            BackupError::corrupt(format!("{rel} (content object {key})"), reason)
        }
        other => other,
    }
}

/// One chunk of one file to restore.
struct ChunkJob {
    /// The file's path in the manifest, for messages.
    rel: String,
    path: PathBuf,
    offset: u64,
    len: u64,
    digest: String,
}

fn write_chunk(
    codec: &Codec,
    job: &ChunkJob,
    key: &str,
    stored: &[u8],
) -> Result<u64, BackupError> {
    let (header, raw) = codec
        .decode_restoring(key, stored)
        .map_err(|e| in_file(&job.rel, key, e))?;
    let problem = if hex::encode(header.digest) != job.digest {
        Some("the object holds other content than its name says".to_string())
    } else if raw.len() as u64 != job.len {
        Some(format!(
            "the chunk has {} bytes, the manifest expects {}",
            raw.len(),
            job.len
        ))
    } else {
        None
    };
    if let Some(reason) = problem {
        return Err(in_file(&job.rel, key, BackupError::corrupt(key, reason)));
    }
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&job.path)
        .map_err(BackupError::io(format!(
            "cannot open {}",
            job.path.display()
        )))?;
    f.write_all_at(&raw, job.offset)
        .map_err(BackupError::io(format!(
            "cannot write {}",
            job.path.display()
        )))?;
    Ok(raw.len() as u64)
}

fn write_owned(
    path: &Path,
    text: &str,
    chown: &dyn Fn(&Path) -> Result<(), BackupError>,
) -> Result<(), BackupError> {
    std::fs::write(path, text)
        .map_err(BackupError::io(format!("cannot write {}", path.display())))?;
    set_mode(path, 0o600)?;
    chown(path)
}

fn set_mode(path: &Path, mode: u32) -> Result<(), BackupError> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(BackupError::io(
        format!("cannot set the mode of {}", path.display()),
    ))
}

/// The `restore_command` that runs `lifeboat wal-fetch` (the program must be reachable
/// by the cluster's OS user). With `prefetch`, segments are fetched ahead of replay into
/// that directory (see [`crate::prefetch`]).
pub fn restore_command(
    lifeboat: &Path,
    repo_config: &Path,
    instance: &str,
    prefetch: Option<&crate::prefetch::Prefetch>,
) -> String {
    use crate::wal::shell_quote;
    let mut cmd = format!(
        "{} wal-fetch --repo-config {} --instance {}",
        shell_quote(&lifeboat.display().to_string()),
        shell_quote(&repo_config.display().to_string()),
        shell_quote(instance)
    );
    let Some(p) = prefetch else {
        cmd.push_str(" %f %p");
        return cmd;
    };
    let dir = shell_quote(&p.dir.display().to_string());
    cmd.push_str(&format!(
        " --prefetch-dir {dir} --prefetch {} %f %p",
        p.ahead
    ));
    // A segment already waiting in the prefetch directory (complete and verified: files
    // appear there only by rename) is moved into place by the shell, which costs a
    // fraction of starting `lifeboat` once per segment.
    format!("test -f {dir}/%f && mv -f {dir}/%f %p || {cmd}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_paths_escaping_the_data_directory() {
        for bad in ["../x", "/etc/passwd", "base/../../x", "", "a//b"] {
            assert!(safe_join(Path::new("/d"), bad).is_err(), "{bad}");
        }
        assert!(safe_join(Path::new("/d"), "base/1/1259").is_ok());
    }

    #[test]
    fn commands_quote_paths() {
        let c = crate::wal::archive_command(
            Path::new("/usr/bin/lifeboat"),
            Path::new("/r/it's.toml"),
            "pg-abc123",
        );
        assert_eq!(
            c,
            "/usr/bin/lifeboat wal-push --repo-config '/r/it'\\''s.toml' --instance pg-abc123 %p"
        );
    }
}
