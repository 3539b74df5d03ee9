//! Base backup attempts: why one started, and how it goes.

use crate::state::{state_machine, text_enum};

text_enum! {
    /// Why a base backup was taken.
    pub enum BackupTrigger {
        /// The first backup of a new master.
        Create => "create",
        /// The schedule (`backup.schedule`) was due.
        Schedule => "schedule",
        /// `max_wal_between_backups` of WAL was written since the last backup.
        Wal => "wal",
        /// A user asked (`lifeboat backup run`, "Back up now").
        Manual => "manual",
    }
}

text_enum! {
    /// How a base backup attempt goes. A running attempt interrupted by a restart is
    /// failed when the server starts again.
    pub enum BackupRunState {
        Running => "running",
        Completed => "completed",
        Failed => "failed",
    }
}

state_machine!(BackupRunState, "a base backup", {
    Running => [Completed, Failed],
    Completed => [],
    Failed => [],
});
