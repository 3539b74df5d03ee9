//! Data migration tasks: the states of a task and of each of its tables.

use crate::state::{state_machine, text_enum};

text_enum! {
    /// The life of a migration task.
    ///
    /// ```text
    /// not_started ─precheck─▶ prechecking ─▶ precheck_failed ─precheck─▶ ...
    ///                                    └─▶ precheck_passed ─start─▶ migrating ─▶ completed
    ///                                                                           ├─▶ failed
    ///                                                                           └─▶ cancelled
    /// ```
    /// A change to a task that has not started (`update`) takes it back to
    /// `not_started`; a task that failed or was cancelled may be pre-checked and
    /// started again, and resumes where it stopped.
    pub enum TaskState {
        NotStarted => "not_started",
        Prechecking => "prechecking",
        PrecheckFailed => "precheck_failed",
        PrecheckPassed => "precheck_passed",
        Migrating => "migrating",
        Completed => "completed",
        Failed => "failed",
        Cancelled => "cancelled",
    }
}

state_machine!(TaskState, "a migration task", {
    NotStarted => [Prechecking],
    // Back to not_started when a server restart cut the pre-check short.
    Prechecking => [PrecheckFailed, PrecheckPassed, NotStarted],
    PrecheckFailed => [Prechecking, NotStarted],
    // Back to not_started when the task changed after its pre-check passed.
    PrecheckPassed => [Prechecking, Migrating, NotStarted],
    Migrating => [Completed, Failed, Cancelled],
    Completed => [],
    Failed => [Prechecking],
    Cancelled => [Prechecking],
});

impl TaskState {
    /// Whether the task may still change what it migrates.
    pub fn editable(self) -> bool {
        matches!(
            self,
            Self::NotStarted | Self::PrecheckFailed | Self::PrecheckPassed
        )
    }

    /// Whether work for the task runs now (a pre-check or the migration).
    pub fn busy(self) -> bool {
        matches!(self, Self::Prechecking | Self::Migrating)
    }
}

text_enum! {
    /// How far one table of a running task got.
    pub enum TableState default Pending {
        Pending => "pending",
        Copying => "copying",
        /// Rows are in; indexes and constraints are being built.
        Building => "building",
        Done => "done",
        /// Finished by an earlier run of the task.
        Skipped => "skipped",
    }
}

state_machine!(TableState, "a table of a migration task", {
    Pending => [Copying, Done],
    Copying => [Building, Done],
    Building => [Done],
    Done => [],
    Skipped => [],
});

impl TableState {
    /// True once the table is in the target (now or by an earlier run).
    pub fn finished(self) -> bool {
        matches!(self, Self::Done | Self::Skipped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::StateMachine;

    #[test]
    fn task_moves() {
        use TaskState::*;
        assert!(NotStarted.can_become(Prechecking));
        assert!(!NotStarted.can_become(Migrating));
        assert!(PrecheckPassed.can_become(Migrating));
        assert!(!PrecheckFailed.can_become(Migrating));
        assert!(Failed.can_become(Prechecking));
        assert!(Completed.is_final());
        assert!(Migrating.transition(NotStarted).is_err());
        assert!(PrecheckPassed.editable() && !Migrating.editable() && !Failed.editable());
    }

    #[test]
    fn table_moves() {
        use TableState::*;
        assert!(Pending.can_become(Copying) && Copying.can_become(Building));
        assert!(!Done.can_become(Copying));
        assert!(Skipped.finished() && Done.finished() && !Building.finished());
    }
}

text_enum! {
    /// The outcome of one pre-check item.
    pub enum PrecheckStatus {
        Passed => "passed",
        /// The task can start, but the user should know (and maybe act).
        Warning => "warning",
        /// The task must not start until this is fixed.
        Failed => "failed",
    }
}
