//! Archiving health, as `archive_command` saw it: the last archived WAL file and the
//! last failure with its reason.
//!
//! PostgreSQL's `pg_stat_archiver` has the last failed file and time but not why it
//! failed; the reason (repository unreachable, disk full, a conflicting segment) only
//! reaches the server log. So `wal-push` can keep a small JSON file that the server
//! reads for `instance show` and the API. It lives in the instance directory, which the
//! cluster's OS user (who runs `archive_command`) can write, and is replaced atomically.
//! PostgreSQL runs one `archive_command` at a time, so there is no concurrent writer.

use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::BackupError;

/// One archiving event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveEvent {
    /// The WAL file name.
    pub file: String,
    pub time: DateTime<Utc>,
    /// Why it failed (absent for a success).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What the status file holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveStatus {
    pub last_archived: Option<ArchiveEvent>,
    pub last_failure: Option<ArchiveEvent>,
}

impl ArchiveStatus {
    /// Reads the status file; a missing or unreadable file is an empty status (it is a
    /// report, never a reason to fail archiving).
    pub fn load(path: &Path) -> Self {
        std::fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Whether the last event was a failure.
    pub fn failing(&self) -> bool {
        match (&self.last_failure, &self.last_archived) {
            (Some(f), Some(s)) => f.time > s.time,
            (Some(_), None) => true,
            _ => false,
        }
    }

    /// Records the outcome of one push and rewrites the file.
    pub fn record(path: &Path, file: &str, failure: Option<String>) -> Result<(), BackupError> {
        let mut status = Self::load(path);
        let event = ArchiveEvent {
            file: file.to_string(),
            time: Utc::now(),
            reason: failure.clone(),
        };
        if failure.is_some() {
            status.last_failure = Some(event);
        } else {
            status.last_archived = Some(event);
        }
        let json = serde_json::to_vec_pretty(&status)
            .map_err(|e| BackupError::Config(format!("cannot serialize archive status: {e}")))?;
        crate::wal::write_atomically(path, &json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_success_and_the_last_failure() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("archive-status.json");
        assert_eq!(ArchiveStatus::load(&p), ArchiveStatus::default());
        ArchiveStatus::record(&p, "000000010000000000000001", None).unwrap();
        ArchiveStatus::record(&p, "000000010000000000000002", Some("disk full".into())).unwrap();
        let s = ArchiveStatus::load(&p);
        assert_eq!(
            s.last_archived.as_ref().unwrap().file,
            "000000010000000000000001"
        );
        let f = s.last_failure.as_ref().unwrap();
        assert_eq!(
            (f.file.as_str(), f.reason.as_deref()),
            ("000000010000000000000002", Some("disk full"))
        );
        assert!(s.failing());
        ArchiveStatus::record(&p, "000000010000000000000002", None).unwrap();
        assert!(!ArchiveStatus::load(&p).failing());
    }
}
