//! What an instance is: its kind, the states of its life, how it is reached.

use crate::state::{state_machine, text_enum};

text_enum! {
    /// A master is created by a user; a temporary instance is restored from a master's
    /// backups.
    pub enum InstanceKind {
        Master => "master",
        Temporary => "temporary",
    }
}

text_enum! {
    /// The states of an instance. `creating` and `deleting` are persisted before the
    /// work starts so that a server restart can finish or undo it.
    ///
    /// ```text
    /// creating ─▶ running ◀─▶ stopped        any but deleting ─▶ released (temporary)
    ///    │          │  ▲         │           running, stopped, failed ─▶ deleting
    ///    └─▶ failed ◀─┘  └───────┴─▶ failed
    /// ```
    pub enum InstanceStatus {
        Creating => "creating",
        Running => "running",
        Stopped => "stopped",
        Failed => "failed",
        Deleting => "deleting",
        Released => "released",
    }
}

state_machine!(InstanceStatus, "an instance", {
    // A master whose create fails is removed, not failed; a temporary instance fails
    // and stays listed with its reason, and may be released while it is built.
    Creating => [Running, Failed, Released],
    Running => [Stopped, Failed, Deleting, Released],
    Stopped => [Running, Failed, Deleting, Released],
    Failed => [Running, Stopped, Deleting, Released],
    // A deleted instance's record is removed; a released one is kept as history.
    Deleting => [],
    Released => [],
});

text_enum! {
    /// How an instance is reached. Every instance listens on its region's address
    /// today, which is what `classic` means.
    pub enum NetworkType {
        Classic => "classic",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::StateMachine;

    #[test]
    fn instance_moves() {
        use InstanceStatus::*;
        assert!(Creating.can_become(Running));
        assert!(Failed.can_become(Running));
        assert!(Running.can_become(Running));
        let e = Released.transition(Running).unwrap_err();
        assert_eq!(
            e.to_string(),
            "an instance cannot go from released to running"
        );
        assert!(!Creating.can_become(Deleting));
        assert!(!Deleting.can_become(Running));
        assert!(Released.is_final() && Deleting.is_final());
        for s in InstanceStatus::ALL {
            assert_eq!(InstanceStatus::from_db(s.as_str()), Some(*s));
        }
    }
}
