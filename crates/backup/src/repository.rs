//! The backup repository: one object store per region, local directory or S3, behind
//! the `object_store` crate.
//!
//! Keys are `/`-separated paths relative to the repository root (see the crate docs for
//! the layout). Every write is atomic: a reader sees the whole object or nothing.
//! - S3 puts are atomic by the protocol.
//! - Local writes go to a staging file next to the target, named `<name>#<digits>`
//!   (which `object_store`'s local listing ignores), are fsynced, then renamed or
//!   hard-linked into place, and the directory is fsynced, so a push reported as done
//!   survives a power loss. [`Durability::Deferred`] skips the per-file fsyncs; the base
//!   backup uses it for its many content objects and calls [`Repository::sync_all`] once
//!   before it writes the manifest that makes them part of a backup.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as StorePath;

use crate::BackupError;
use crate::config::{RepositoryConfig, RepositoryLocation};
use crate::object::Codec;

/// How soon a write must be durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// On stable storage before the call returns.
    Durable,
    /// Atomic, but flushed only by a later [`Repository::sync_all`].
    Deferred,
}

/// What [`Repository::put_if_absent`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    Created,
    /// An object of that name already existed; it was left as it was.
    AlreadyExists,
}

/// One listed object.
#[derive(Debug, Clone)]
pub struct ObjectInfo {
    /// The key relative to the repository root.
    pub key: String,
    pub size: u64,
    pub last_modified: DateTime<Utc>,
}

/// A region's backup repository. Cheap to clone.
#[derive(Clone)]
pub struct Repository {
    store: Arc<dyn ObjectStore>,
    /// The local root, when the repository is a directory (for durable writes).
    local_root: Option<PathBuf>,
    /// The key prefix inside an S3 bucket ("" at the bucket's root).
    prefix: String,
    /// For messages: `file:///dir` or `s3://bucket/prefix`.
    description: String,
    /// How objects are written and read: every reader and writer of objects takes it
    /// from here, so one repository is never read with another's key.
    codec: Codec,
    /// Who owns the files this handle writes in a local repository (see
    /// [`Repository::owned_by`]); the server's user when `None`.
    owner: Option<lifeboat_postgres::OsUser>,
}

impl std::fmt::Debug for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.description)
    }
}

static STAGING_COUNTER: AtomicU64 = AtomicU64::new(0);

impl Repository {
    /// Opens the repository a config names, with its key when it is encrypted (the
    /// key file is read and checked). A local directory is created if missing.
    pub fn open(config: &RepositoryConfig) -> Result<Self, BackupError> {
        let codec = config.codec()?;
        Ok(Self::open_clear(config)?.with_codec(codec))
    }

    fn open_clear(config: &RepositoryConfig) -> Result<Self, BackupError> {
        match config.location()? {
            RepositoryLocation::Local { dir } => Self::local(&dir),
            RepositoryLocation::S3 { bucket, prefix } => {
                let mut b = AmazonS3Builder::from_env()
                    .with_bucket_name(&bucket)
                    .with_allow_http(config.allow_http);
                if let Some(e) = &config.endpoint {
                    b = b.with_endpoint(e);
                }
                if let Some(r) = &config.region {
                    b = b.with_region(r);
                }
                if let Some(k) = &config.access_key_id {
                    b = b.with_access_key_id(k);
                }
                if let Some(s) = config.secret()? {
                    b = b.with_secret_access_key(s);
                }
                let store = b
                    .build()
                    .map_err(|e| BackupError::Config(format!("s3://{bucket}: {e}")))?;
                Ok(Self {
                    store: Arc::new(store),
                    local_root: None,
                    description: format!("s3://{bucket}/{prefix}"),
                    prefix,
                    codec: Codec::clear(),
                    owner: None,
                })
            }
        }
    }

    /// A repository in a local directory.
    pub fn local(dir: &Path) -> Result<Self, BackupError> {
        std::fs::create_dir_all(dir)
            .map_err(BackupError::io(format!("cannot create {}", dir.display())))?;
        let store = LocalFileSystem::new_with_prefix(dir)
            .map_err(|e| BackupError::Config(format!("cannot open {}: {e}", dir.display())))?;
        Ok(Self {
            store: Arc::new(store),
            local_root: Some(dir.to_path_buf()),
            prefix: String::new(),
            description: format!("file://{}", dir.display()),
            codec: Codec::clear(),
            owner: None,
        })
    }

    /// The same repository, its objects written and read with `codec`.
    pub fn with_codec(mut self, codec: Codec) -> Self {
        self.codec = codec;
        self
    }

    /// How this repository's objects are written and read ([`crate::object`]).
    pub fn codec(&self) -> &Codec {
        &self.codec
    }

    /// `file:///dir` or `s3://bucket/prefix`, for messages.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The local directory, for a `file` repository.
    pub fn local_root(&self) -> Option<&Path> {
        self.local_root.as_deref()
    }

    /// Creates an instance's directories in a local repository and gives them to the OS
    /// user clusters run as, because `archive_command` runs as that user and must create
    /// files there. A no-op on S3.
    pub fn prepare_instance(
        &self,
        instance: &str,
        owner: Option<&lifeboat_postgres::OsUser>,
    ) -> Result<(), BackupError> {
        let Some(root) = &self.local_root else {
            return Ok(());
        };
        for dir in [
            root.join(instance),
            root.join(instance).join("wal"),
            root.join(instance).join("stream"),
        ] {
            std::fs::create_dir_all(&dir)
                .map_err(BackupError::io(format!("cannot create {}", dir.display())))?;
            if let Some(user) = owner {
                user.chown(&dir)?;
            }
        }
        Ok(())
    }

    /// This repository, writing its local files as `owner`: WAL the server stores
    /// itself must be readable by `restore_command`, which runs as the clusters' OS
    /// user, like the WAL `archive_command` stores. Each file is given to `owner`
    /// before it takes its name, so no reader meets it half given. No effect on S3.
    pub fn owned_by(mut self, owner: lifeboat_postgres::OsUser) -> Self {
        self.owner = Some(owner);
        self
    }

    fn path(&self, key: &str) -> StorePath {
        if self.prefix.is_empty() {
            StorePath::from(key)
        } else {
            StorePath::from(format!("{}/{key}", self.prefix))
        }
    }

    fn key_of(&self, path: &StorePath) -> String {
        let s = path.as_ref();
        if self.prefix.is_empty() {
            s.to_string()
        } else {
            s.strip_prefix(&self.prefix)
                .map(|r| r.trim_start_matches('/').to_string())
                .unwrap_or_else(|| s.to_string())
        }
    }

    /// Writes an object, replacing any object of that name.
    pub async fn put(
        &self,
        key: &str,
        data: Bytes,
        durability: Durability,
    ) -> Result<(), BackupError> {
        match &self.local_root {
            Some(root) => {
                let target = root.join(key);
                let owner = self.owner.clone();
                spawn_io(move || local_write(&target, &data, durability, false, owner.as_ref()))
                    .await?;
                Ok(())
            }
            None => self
                .store
                .put(&self.path(key), data.into())
                .await
                .map(|_| ())
                .map_err(|e| BackupError::store(key, e)),
        }
    }

    /// Writes an object unless one of that name exists. Locally this is atomic (a hard
    /// link fails on an existing name). On S3 it is a HEAD then a PUT: callers use it
    /// where a concurrent writer would write the same content (a WAL segment PostgreSQL
    /// retries), so the race is harmless.
    pub async fn put_if_absent(
        &self,
        key: &str,
        data: Bytes,
        durability: Durability,
    ) -> Result<PutOutcome, BackupError> {
        match &self.local_root {
            Some(root) => {
                let target = root.join(key);
                let owner = self.owner.clone();
                spawn_io(move || local_write(&target, &data, durability, true, owner.as_ref()))
                    .await
            }
            None => {
                if self.head(key).await?.is_some() {
                    return Ok(PutOutcome::AlreadyExists);
                }
                self.put(key, data, durability).await?;
                Ok(PutOutcome::Created)
            }
        }
    }

    /// Reads a whole object.
    pub async fn get(&self, key: &str) -> Result<Bytes, BackupError> {
        let r = self
            .store
            .get(&self.path(key))
            .await
            .map_err(|e| BackupError::store(key, e))?;
        r.bytes().await.map_err(|e| BackupError::store(key, e))
    }

    /// Reads the first `len` bytes of an object (fewer if it is shorter).
    pub async fn get_prefix(&self, key: &str, len: u64) -> Result<Bytes, BackupError> {
        let size = match self.head(key).await? {
            Some(info) => info.size,
            None => return Err(BackupError::NotFound { object: key.into() }),
        };
        self.store
            .get_range(&self.path(key), 0..len.min(size))
            .await
            .map_err(|e| BackupError::store(key, e))
    }

    /// The object's size and time, or `None` when it does not exist.
    pub async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, BackupError> {
        match self.store.head(&self.path(key)).await {
            Ok(meta) => Ok(Some(ObjectInfo {
                key: key.to_string(),
                size: meta.size,
                last_modified: meta.last_modified,
            })),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(BackupError::store(key, e)),
        }
    }

    /// Every object whose key starts with `prefix/` (recursively), in no fixed order.
    pub async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, BackupError> {
        let path = self.path(prefix.trim_end_matches('/'));
        let metas: Vec<_> = match self.store.list(Some(&path)).try_collect().await {
            Ok(m) => m,
            // A local prefix whose directory was never created holds nothing.
            Err(object_store::Error::NotFound { .. }) => Vec::new(),
            Err(e) => return Err(BackupError::store(prefix, e)),
        };
        Ok(metas
            .into_iter()
            .map(|m| ObjectInfo {
                key: self.key_of(&m.location),
                size: m.size,
                last_modified: m.last_modified,
            })
            .collect())
    }

    /// The names of the "directories" right under `prefix` ("" for the root): the
    /// first path segment of every key below it.
    pub async fn list_dirs(&self, prefix: &str) -> Result<Vec<String>, BackupError> {
        let trimmed = prefix.trim_end_matches('/');
        let path = match (trimmed.is_empty(), self.prefix.is_empty()) {
            (true, true) => None,
            (true, false) => Some(StorePath::from(self.prefix.as_str())),
            (false, _) => Some(self.path(trimmed)),
        };
        let listed = match self.store.list_with_delimiter(path.as_ref()).await {
            Ok(l) => l,
            Err(object_store::Error::NotFound { .. }) => return Ok(Vec::new()),
            Err(e) => return Err(BackupError::store(self.description(), e)),
        };
        let mut dirs: Vec<String> = listed
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_string))
            .collect();
        dirs.sort();
        Ok(dirs)
    }

    /// The key of some object of the repository other than `except`, or `None` when
    /// it holds no other: whether a repository is in use, without listing it all.
    pub async fn any_object(&self, except: &str) -> Result<Option<String>, BackupError> {
        let root = (!self.prefix.is_empty()).then(|| StorePath::from(self.prefix.as_str()));
        let mut listing = self.store.list(root.as_ref());
        loop {
            match listing.try_next().await {
                Ok(Some(meta)) => {
                    let key = self.key_of(&meta.location);
                    if key != except {
                        return Ok(Some(key));
                    }
                }
                Ok(None) | Err(object_store::Error::NotFound { .. }) => return Ok(None),
                Err(e) => return Err(BackupError::store(self.description(), e)),
            }
        }
    }

    /// Deletes an object; deleting a missing object succeeds.
    pub async fn delete(&self, key: &str) -> Result<(), BackupError> {
        match self.store.delete(&self.path(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(BackupError::store(key, e)),
        }
    }

    /// Makes every [`Durability::Deferred`] write durable (one `syncfs` of the local
    /// file system; S3 writes are durable when acknowledged).
    pub async fn sync_all(&self) -> Result<(), BackupError> {
        let Some(root) = self.local_root.clone() else {
            return Ok(());
        };
        spawn_io(move || {
            lifeboat_postgres::disk::sync_filesystem(&root)
                .map_err(BackupError::io(format!("cannot sync {}", root.display())))
        })
        .await
    }
}

async fn spawn_io<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, BackupError> + Send + 'static,
) -> Result<T, BackupError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| BackupError::io("repository task failed")(std::io::Error::other(e)))?
}

/// Writes `data` to `target` through a staging file in the same directory. With
/// `create_only`, an existing target is left alone and reported.
fn local_write(
    target: &Path,
    data: &[u8],
    durability: Durability,
    create_only: bool,
    owner: Option<&lifeboat_postgres::OsUser>,
) -> Result<PutOutcome, BackupError> {
    let dir = target
        .parent()
        .ok_or_else(|| BackupError::Config(format!("bad object path {}", target.display())))?;
    ensure_dir(dir, durability)?;
    if create_only && target.exists() {
        return Ok(PutOutcome::AlreadyExists);
    }
    let mut staging = target.as_os_str().to_owned();
    // Digits only after '#': object_store's listing skips such names, so a staging file
    // left by a crash is never mistaken for an object.
    staging.push(format!(
        "#{}{:08}",
        std::process::id(),
        STAGING_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let staging = PathBuf::from(staging);
    let ctx = || format!("cannot write {}", target.display());
    let result = (|| {
        let mut f = std::fs::File::create(&staging).map_err(BackupError::io(ctx()))?;
        f.write_all(data).map_err(BackupError::io(ctx()))?;
        if durability == Durability::Durable {
            f.sync_all().map_err(BackupError::io(ctx()))?;
        }
        drop(f);
        if let Some(o) = owner {
            o.chown(&staging)?;
        }
        if create_only {
            match std::fs::hard_link(&staging, target) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    return Ok(PutOutcome::AlreadyExists);
                }
                Err(e) => return Err(BackupError::io(ctx())(e)),
            }
        } else {
            std::fs::rename(&staging, target).map_err(BackupError::io(ctx()))?;
        }
        if durability == Durability::Durable {
            fsync_dir(dir)?;
        }
        Ok(PutOutcome::Created)
    })();
    // After a rename the staging name is gone; after a link or a failure it is not.
    let _ = std::fs::remove_file(&staging);
    result
}

/// Creates `dir` and its missing parents; with `Durable`, fsyncs the parent of each
/// directory it creates so that the new entries survive a crash.
fn ensure_dir(dir: &Path, durability: Durability) -> Result<(), BackupError> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        ensure_dir(parent, durability)?;
    }
    match std::fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => {
            return Err(BackupError::io(format!("cannot create {}", dir.display()))(
                e,
            ));
        }
    }
    if let (Durability::Durable, Some(parent)) = (durability, dir.parent()) {
        fsync_dir(parent)?;
    }
    Ok(())
}

pub(crate) fn fsync_dir(dir: &Path) -> Result<(), BackupError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(BackupError::io(format!(
            "cannot sync directory {}",
            dir.display()
        )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_writes_are_listed_and_staging_files_are_not() {
        let tmp = tempfile::tempdir().unwrap();
        let repo = Repository::local(tmp.path()).unwrap();
        repo.put("i/a/one", Bytes::from_static(b"1"), Durability::Durable)
            .await
            .unwrap();
        assert_eq!(
            repo.put_if_absent("i/a/one", Bytes::from_static(b"2"), Durability::Durable)
                .await
                .unwrap(),
            PutOutcome::AlreadyExists
        );
        assert_eq!(repo.get("i/a/one").await.unwrap().as_ref(), b"1");
        // A staging file left behind by a crash.
        std::fs::write(tmp.path().join("i/a/two#123400000001"), b"half").unwrap();
        let listed: Vec<_> = repo
            .list("i")
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.key)
            .collect();
        assert_eq!(listed, vec!["i/a/one".to_string()]);
        assert!(repo.list("nothing").await.unwrap().is_empty());
        assert!(repo.get("i/a/two").await.unwrap_err().is_not_found());
        repo.delete("i/a/one").await.unwrap();
        repo.delete("i/a/one").await.unwrap();
        assert!(repo.head("i/a/one").await.unwrap().is_none());
    }
}
