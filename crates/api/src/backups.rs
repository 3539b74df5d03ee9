//! Base backups, the restorable window, verification and archiving health.

use chrono::{DateTime, Utc};
use lifeboat_domain::{BackupRunState, BackupTrigger};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A base backup attempt.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BackupRunView {
    pub id: i64,
    pub trigger: BackupTrigger,
    pub state: BackupRunState,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// The backup it produced.
    pub backup_id: Option<String>,
    pub bytes_done: i64,
    pub bytes_total: i64,
    pub error: Option<String>,
}

/// A complete base backup in the repository.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BackupView {
    pub id: String,
    pub start_time: DateTime<Utc>,
    pub stop_time: DateTime<Utc>,
    pub start_lsn: String,
    pub stop_lsn: String,
    pub timeline: u32,
    /// Bytes of the data directory it holds.
    pub logical_size: u64,
    /// Bytes it added to the repository (unchanged content is shared).
    pub stored_size: u64,
}

/// The backups of an instance and the recent attempts.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BackupList {
    pub backups: Vec<BackupView>,
    pub runs: Vec<BackupRunView>,
}

/// The times and LSNs a temporary instance can be restored to.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WindowView {
    pub instance_id: String,
    /// False until a first base backup and its WAL are in the repository.
    pub available: bool,
    pub earliest: Option<DateTime<Utc>>,
    pub latest: Option<DateTime<Utc>>,
    pub earliest_lsn: Option<String>,
    pub latest_lsn: Option<String>,
    pub timeline: Option<u32>,
    /// The first missing WAL segment when later ones exist: the window ends before it.
    pub gap: Option<String>,
    /// The master is running: points after `latest`, up to the present, are
    /// restorable too; `temp create` has the master switch WAL and waits for it to
    /// be archived (seconds).
    #[serde(default)]
    pub reaches_present: bool,
    /// A sentence saying what limits the window.
    pub note: String,
    /// Every restorable window, oldest first; the fields above describe the last one.
    /// There is more than one when WAL went missing (a slot dropped, segments removed
    /// before they were stored): each ends before its gap, and the points between one
    /// window's end and the next one's start cannot be restored.
    #[serde(default)]
    pub windows: Vec<WindowSpan>,
}

/// One continuous stretch of restorable points.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WindowSpan {
    pub earliest: DateTime<Utc>,
    pub latest: DateTime<Utc>,
    pub earliest_lsn: String,
    pub latest_lsn: String,
    pub timeline: u32,
    /// The missing WAL segment this window ends before, when later WAL exists.
    pub gap: Option<String>,
    /// The base backups a restore inside this window starts from, oldest first.
    pub backups: Vec<String>,
}

/// What verify found.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct VerifyView {
    pub instance_id: String,
    pub ok: bool,
    pub backups: usize,
    pub objects_checked: u64,
    pub bytes_checked: u64,
    pub problems: Vec<VerifyProblemView>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct VerifyProblemView {
    /// The repository object.
    pub object: String,
    /// The backup files that depend on it.
    pub files: Vec<String>,
    pub detail: String,
}

/// How WAL archiving of a master is going, from `pg_stat_archiver` and, for the reason
/// of the last failure, what `lifeboat wal-push` recorded.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ArchivingView {
    pub archived_count: i64,
    pub last_archived_wal: Option<String>,
    pub last_archived_at: Option<DateTime<Utc>>,
    pub failed_count: i64,
    pub last_failed_wal: Option<String>,
    pub last_failed_at: Option<DateTime<Utc>>,
    /// Why the last attempt failed (repository unreachable, disk full...).
    pub last_failure_reason: Option<String>,
    /// True when the last attempt failed and nothing was archived since.
    pub failing: bool,
}

/// One master whose backups a region's repository holds, as the repository itself
/// describes it: one this server manages, one it deleted, or one it does not know
/// (written by another server, e.g. one whose host is gone).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RepositoryEntryView {
    /// The master's instance id (its entry's name in the repository).
    pub id: String,
    pub region: String,
    /// Its name, engine version and privileged account, from the repository's
    /// description (absent for an entry written before descriptions existed).
    pub name: Option<String>,
    pub engine_version: Option<String>,
    pub privileged_account: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
    /// The master it was restored from, for a clone or a kept temporary instance.
    pub restored_from: Option<String>,
    /// The id of the Lifeboat server that writes its backups.
    pub owner: Option<String>,
    /// `managed` (an instance of this server), `deleted` (this server deleted it;
    /// its backups remain), `other_server` (another server writes it) or
    /// `undescribed` (no description, and not an instance of this server).
    pub relation: String,
    /// The settings it ran with that are not PostgreSQL's defaults.
    #[serde(default)]
    pub settings: std::collections::BTreeMap<String, String>,
    /// Complete base backups in the repository.
    pub backups: usize,
    pub window: WindowView,
}

/// What `lifeboat repository list` prints.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RepositoryList {
    /// This server's id, as repository entries name their owner.
    pub server_id: String,
    pub regions: Vec<String>,
    pub entries: Vec<RepositoryEntryView>,
}

/// The query of `GET /repository`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RepositoryQuery {
    /// Only this region's repository.
    pub region: Option<String>,
}
