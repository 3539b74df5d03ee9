//! Lifeboat's continuous backup: the backup repository, WAL archiving, base backups,
//! the restorable window, restore, retention and verification.
//!
//! The server calls this library on a schedule and on demand; `archive_command` and
//! `restore_command` run the `lifeboat` binary, which calls [`wal_push_command`] and
//! [`wal_fetch_command`]. Everything is computed from what is actually in the
//! repository: there is no catalogue that could disagree with it.
//!
//! # Repository layout
//!
//! One repository per region (a local directory or an S3 bucket and prefix); each
//! instance's objects live under its id:
//!
//! ```text
//! <repository root>/
//!   lifeboat-encryption.json              only in an encrypted repository: its cipher
//!                                         and key check value, in clear
//!   <instance id>/                        e.g. pg-3kq9x2/
//!     instance.json                       what the instance is and which server
//!                                         writes its backups ([`description`])
//!     wal/
//!       000000010000000000000003          archived WAL segment
//!       00000002.history                  timeline history file
//!       000000010000000000000003.00000028.backup
//!     data/
//!       3f/3f9a...e1                      content object: one chunk (<= 8 MiB) of some
//!                                         file, named by the digest of its content
//!                                         (sha256; keyed HMAC when encrypted),
//!                                         shared by every backup that contains it
//!     backups/
//!       20261124T075500Z/manifest.json    a backup exists iff its manifest does
//! ```
//!
//! Every object (WAL, content, manifest) has the same format ([`object`]): a header with
//! the digest and length of the content, then a zstd frame, so any object can be
//! verified on its own and a half-written one is never accepted. In an encrypted
//! repository ([`encryption`]) the frame is encrypted and every object authenticated,
//! bound to its key; the repository's [`object::Codec`] does both, for every reader
//! and writer.
//!
//! # Using it
//!
//! ```text
//! Repository::open(&RepositoryConfig)                  one per region (reads its key)
//! repo.mark_encryption()                               at start: key checked, marker
//! repo.prepare_instance(id, Some(&os_user))            before archiving starts (local repo)
//! wal::archive_command(lifeboat, config, id)           -> archive_command setting
//! wal_push_command / wal_fetch_command                 what `lifeboat wal-push/-fetch` run
//! run_backup(repo, id, cluster, options, progress)     -> Manifest
//! list_backups(repo, id) / Manifest::summary           backup list
//! restorable_windows(repo, id, pg_waldump)             -> Vec<RestorableWindow>, oldest first
//! restorable_window(repo, id, pg_waldump)              -> the last of them
//! backup_for_target(repo, id, target)                  which backup a restore starts from
//! restore(repo, id, backup, dest, options, progress)   files + backup_label
//! lifeboat_postgres::recovery                          then recover the copy
//! expire(repo, id, keep_for, now)                      retention
//! verify(repo, id, parallelism)                        -> VerifyReport
//! ```
//!
//! # Layout
//! - [`config`]: [`RepositoryConfig`], the region's repository settings.
//! - [`repository`]: [`Repository`], atomic and durable object storage over
//!   `object_store` (local directory or S3).
//! - [`object`]: the stored object format, in clear or encrypted ([`object::Codec`]).
//! - [`encryption`]: ciphers, the keys derived from a key file, the marker object.
//! - [`wal`]: WAL push and fetch, and the entry points for `archive_command` and
//!   `restore_command`.
//! - [`prefetch`]: fetching WAL ahead of replay during a restore.
//! - [`archive_status`]: the last archived WAL file and the last failure, for `show`.
//! - [`description`]: the repository's description of each instance, and whose it is.
//! - [`datadir`]: what a base backup copies from a data directory.
//! - [`base_backup`]: base backups through `pg_backup_start`/`pg_backup_stop`.
//! - [`manifest`]: the manifest that makes a backup exist.
//! - [`waldump`]: finding commit times in archived WAL with `pg_waldump`.
//! - [`events`]: the transactions that destroyed data, folded from those facts.
//! - [`walscan`]: what each archived segment says about transactions (row changes,
//!   locks, created and dropped files, commits), cached per segment.
//! - [`window`]: the [`RestorableWindow`].
//! - [`mod@restore`]: writing a backup into a new data directory, and recovery settings.
//! - [`retention`]: expiring old backups, their WAL and unreferenced content.
//! - [`mod@verify`]: re-reading every stored object.

pub mod archive_status;
pub mod base_backup;
pub mod config;
pub mod datadir;
pub mod description;
pub mod encryption;
mod error;
pub mod events;
pub mod lsn;
pub mod manifest;
pub mod object;
pub mod prefetch;
pub mod replication_backup;
pub mod repository;
pub mod restore;
pub mod retention;
pub mod verify;
pub mod wal;
pub mod waldump;
pub mod walscan;
pub mod window;

pub use base_backup::{BackupOptions, CHUNK_SIZE, Progress, ProgressFn, run_backup};
pub use config::RepositoryConfig;
pub use description::InstanceDescription;
pub use error::BackupError;
pub use lsn::Lsn;
pub use manifest::{BackupSummary, Manifest, list_backups};
pub use replication_backup::{ReplicationSource, run_replication_backup};
pub use repository::Repository;
pub use restore::{RestoreOptions, restore};
pub use retention::{RetentionReport, expire};
pub use verify::{VerifyProblem, VerifyReport, remove_damaged, verify};
pub use wal::{
    CommandOutcome, FetchOutcome, PushOutcome, wal_fetch, wal_fetch_command, wal_push,
    wal_push_command,
};
pub use window::{
    RestorableWindow, backup_for, backup_for_target, restorable_window, restorable_windows,
};
