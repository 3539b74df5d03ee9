//! A base backup's manifest: the one object that makes a backup exist.
//!
//! It is written last, after every content object it names is durable, so a backup
//! interrupted at any point has no manifest and is ignored by listing, the restorable
//! window and restore; its orphaned content objects are removed by retention.

use std::collections::HashSet;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::BackupError;
use crate::lsn::Lsn;
use crate::object::{self, Digest};
use crate::repository::{Durability, Repository};

/// The manifest format written by this version.
pub const MANIFEST_FORMAT: u32 = 1;

/// One complete base backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    /// Sortable id, from the start time: `20261124T075500Z`.
    pub id: String,
    pub instance: String,
    /// The label given to `pg_backup_start`.
    pub label: String,
    pub start_lsn: Lsn,
    pub stop_lsn: Lsn,
    pub start_time: DateTime<Utc>,
    /// When `pg_backup_stop` returned: the backup is consistent from `stop_lsn` on, so
    /// no earlier time can be recovered from it.
    pub stop_time: DateTime<Utc>,
    pub timeline: u32,
    /// Needed to name the WAL segments between start and stop.
    pub wal_segment_size: u64,
    /// `server_version_num` of the cluster, e.g. 150010.
    pub server_version_num: i32,
    /// What `pg_backup_stop` returned; restore writes it into the data directory.
    pub backup_label: String,
    pub tablespace_map: Option<String>,
    pub files: Vec<FileEntry>,
    /// Sum of the sizes of the files.
    pub logical_size: u64,
    /// Bytes of content objects this backup had to store (unchanged content is shared
    /// with earlier backups and not counted).
    pub stored_size: u64,
    /// Content objects this backup had to store.
    pub stored_objects: u64,
}

/// A backup without its file list, for `lifeboat backup list` and the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupSummary {
    pub id: String,
    pub label: String,
    pub start_lsn: Lsn,
    pub stop_lsn: Lsn,
    pub start_time: DateTime<Utc>,
    pub stop_time: DateTime<Utc>,
    pub timeline: u32,
    pub files: usize,
    pub logical_size: u64,
    pub stored_size: u64,
}

/// A file or directory of the data directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Relative to the data directory, `/`-separated.
    pub path: String,
    pub kind: FileKind,
    /// Permission bits.
    pub mode: u32,
    pub size: u64,
    /// sha256 over the chunk digests in order (a hash list): each chunk is verified on
    /// its own, and this names the whole file's content in one value.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub checksum: String,
    /// The content, in order: the hex digest (sha256, or its keyed HMAC in an encrypted
    /// repository) of each chunk of [`crate::CHUNK_SIZE`] bytes
    /// (the last may be shorter), each stored once as a content object.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chunks: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileKind {
    File,
    Dir,
}

/// The key of a backup's manifest.
pub fn manifest_key(instance: &str, backup_id: &str) -> String {
    format!("{instance}/backups/{backup_id}/manifest.json")
}

/// The key of a content object.
pub fn content_key(instance: &str, sha256_hex: &str) -> String {
    let fan = sha256_hex.get(..2).unwrap_or("00");
    format!("{instance}/data/{fan}/{sha256_hex}")
}

/// The file checksum of [`FileEntry::checksum`] from the chunk digests.
pub fn file_checksum(chunks: &[Digest]) -> String {
    let mut all = Vec::with_capacity(chunks.len() * 32);
    for c in chunks {
        all.extend_from_slice(c);
    }
    hex::encode(object::sha256(&all))
}

impl Manifest {
    pub fn summary(&self) -> BackupSummary {
        BackupSummary {
            id: self.id.clone(),
            label: self.label.clone(),
            start_lsn: self.start_lsn,
            stop_lsn: self.stop_lsn,
            start_time: self.start_time,
            stop_time: self.stop_time,
            timeline: self.timeline,
            files: self
                .files
                .iter()
                .filter(|f| f.kind == FileKind::File)
                .count(),
            logical_size: self.logical_size,
            stored_size: self.stored_size,
        }
    }

    /// Every content object the backup needs, as hex digests.
    pub fn chunk_set(&self) -> HashSet<&str> {
        self.files
            .iter()
            .flat_map(|f| f.chunks.iter().map(String::as_str))
            .collect()
    }

    /// Writes the manifest durably; this is what makes the backup exist.
    pub async fn store(&self, repo: &Repository) -> Result<(), BackupError> {
        let json = serde_json::to_vec(self)
            .map_err(|e| BackupError::Config(format!("cannot serialize manifest: {e}")))?;
        let key = manifest_key(&self.instance, &self.id);
        let (stored, _) = repo.codec().encode(&key, &json, 3)?;
        repo.put(&key, Bytes::from(stored), Durability::Durable)
            .await
    }

    /// Reads and checks one manifest.
    pub async fn load(
        repo: &Repository,
        instance: &str,
        backup_id: &str,
    ) -> Result<Self, BackupError> {
        let key = manifest_key(instance, backup_id);
        let stored = match repo.get(&key).await {
            Ok(b) => b,
            Err(e) if e.is_not_found() => return Err(BackupError::NoSuchBackup(backup_id.into())),
            Err(e) => return Err(e),
        };
        let (_, json) = repo.codec().decode(&key, &stored)?;
        serde_json::from_slice(&json)
            .map_err(|e| BackupError::corrupt(&key, format!("bad manifest: {e}")))
    }
}

/// The ids of the complete backups of an instance, oldest first.
pub async fn list_backup_ids(
    repo: &Repository,
    instance: &str,
) -> Result<Vec<String>, BackupError> {
    let prefix = format!("{instance}/backups/");
    let mut ids: Vec<String> = repo
        .list(&prefix)
        .await?
        .into_iter()
        .filter_map(|o| {
            let rest = o.key.strip_prefix(&prefix)?;
            let id = rest.strip_suffix("/manifest.json")?;
            (!id.contains('/')).then(|| id.to_string())
        })
        .collect();
    ids.sort();
    Ok(ids)
}

/// The manifests of every complete backup, oldest first, and the backups whose manifest
/// cannot be read (with why). Readers of the window skip unreadable ones; retention
/// refuses to run while any exists, since it could not tell which objects they need.
pub async fn load_backups(
    repo: &Repository,
    instance: &str,
) -> Result<(Vec<Manifest>, Vec<(String, BackupError)>), BackupError> {
    let mut good = Vec::new();
    let mut bad = Vec::new();
    for id in list_backup_ids(repo, instance).await? {
        match Manifest::load(repo, instance, &id).await {
            Ok(m) => good.push(m),
            Err(
                e @ (BackupError::Corrupt { .. }
                | BackupError::KeyMismatch { .. }
                | BackupError::NoSuchBackup(_)),
            ) => bad.push((id, e)),
            Err(e) => return Err(e),
        }
    }
    good.sort_by_key(|m| (m.stop_lsn, m.id.clone()));
    Ok((good, bad))
}

/// The manifests of every complete backup, oldest first; unreadable ones are skipped
/// with a warning (`verify` reports them).
pub async fn list_backups(repo: &Repository, instance: &str) -> Result<Vec<Manifest>, BackupError> {
    let (good, bad) = load_backups(repo, instance).await?;
    for (id, e) in bad {
        tracing::warn!(backup = %id, error = %e, "skipping a backup whose manifest cannot be read");
    }
    Ok(good)
}
