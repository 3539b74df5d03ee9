//! How the creation of a temporary instance goes, phase by phase.

use serde::{Deserialize, Serialize};

use crate::Lsn;
use crate::state::{state_machine, text_enum};

text_enum! {
    /// The phases of building a temporary instance.
    pub enum TemporaryPhase default Queued {
        Queued => "queued",
        /// The target lies beyond the archived WAL: the master switched WAL and the
        /// segment is on its way to the repository.
        WaitingForWal => "waiting_for_wal",
        RestoringFiles => "restoring_files",
        ReplayingWal => "replaying_wal",
        Promoting => "promoting",
        /// A clone asked for with a newer engine version: pg_upgrade runs.
        Upgrading => "upgrading",
        Ready => "ready",
        Failed => "failed",
    }
}

state_machine!(TemporaryPhase, "a temporary instance's creation", {
    // A build interrupted by a crash starts again from the files.
    Queued => [WaitingForWal, RestoringFiles, Failed],
    WaitingForWal => [RestoringFiles, WaitingForWal, Failed],
    RestoringFiles => [ReplayingWal, WaitingForWal, RestoringFiles, Failed],
    ReplayingWal => [Promoting, WaitingForWal, RestoringFiles, Failed],
    Promoting => [Ready, Upgrading, WaitingForWal, RestoringFiles, Failed],
    Upgrading => [Ready, WaitingForWal, RestoringFiles, Failed],
    Ready => [],
    Failed => [],
});

/// How far the creation of a temporary instance got.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TemporaryProgress {
    pub phase: TemporaryPhase,
    /// The base backup restored.
    pub backup_id: Option<String>,
    pub bytes_done: u64,
    pub bytes_total: u64,
    /// The files came from the backup's prepared copy, restored ahead of need.
    #[serde(default)]
    pub files_from_prepared_copy: bool,
    /// The last WAL position replayed.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub replay_lsn: Option<Lsn>,
    /// Bytes of WAL replayed since the backup's start.
    pub wal_replayed_bytes: u64,
    /// The master's unlogged tables (`db.schema.table`), which come back empty:
    /// PostgreSQL writes no WAL for their rows and empties them in recovery.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unlogged_tables: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::StateMachine;

    #[test]
    fn phases_go_forward_or_fail() {
        use TemporaryPhase::*;
        assert!(Queued.can_become(RestoringFiles));
        assert!(
            ReplayingWal.can_become(RestoringFiles),
            "a rebuild starts over"
        );
        assert!(Queued.can_become(WaitingForWal));
        assert!(WaitingForWal.can_become(RestoringFiles));
        assert!(!Queued.can_become(Ready));
        assert!(!Ready.can_become(Failed));
        assert!(Promoting.can_become(Failed));
    }
}
