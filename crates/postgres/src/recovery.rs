//! Recovering a restored copy of a cluster: the settings that make PostgreSQL replay
//! archived WAL up to a target, what a copy must not inherit from its master, how
//! replay is followed, promotion, and why a recovery stopped.
//!
//! PostgreSQL ends a recovery that reached its target with a full checkpoint before
//! it accepts writes, but a promotion it is asked for with an end-of-recovery record,
//! leaving the checkpoint to run in the background: a copy told to pause at the
//! target ([`RecoverySettings::pause_at_target`]) and then promoted ([`promote`]) is
//! usable seconds sooner.

use std::path::Path;

use lifeboat_domain::{Lsn, RestoreTarget};
use tokio_postgres::Client;

use crate::{Cluster, OsUser, PgError};

/// PostgreSQL's message when the archived WAL ended before the target.
const SHORT_OF_TARGET: &str = "recovery ended before configured recovery target was reached";

/// Settings a copy inherits in `postgresql.auto.conf` (from `ALTER SYSTEM` on the
/// master) that would make it listen where the master listens, archive into the
/// master's archive, or recover from somewhere else. `recovery_*` and `archive_*`
/// are prefixes.
const INHERITED_KEYS: &[&str] = &[
    "port",
    "listen_addresses",
    "unix_socket_directories",
    "archive_",
    "recovery_",
    "restore_command",
    "primary_conninfo",
];

/// The settings a restored data directory needs to recover to a target.
#[derive(Debug, Clone)]
pub struct RecoverySettings {
    /// How PostgreSQL fetches each archived WAL file (`%f`, `%p`).
    pub restore_command: String,
    pub target: RestoreTarget,
    /// Pause at the target instead of promoting; the caller then promotes with
    /// [`promote`].
    pub pause_at_target: bool,
}

impl RecoverySettings {
    /// Settings for `lifeboat.conf` (`ClusterSettings::extra`). They turn archiving off
    /// so the copy never writes WAL into the master's archive.
    pub fn settings(&self) -> Vec<(String, String)> {
        let mut s = vec![
            ("restore_command".to_string(), self.restore_command.clone()),
            (
                "recovery_target_action".into(),
                if self.pause_at_target {
                    "pause"
                } else {
                    "promote"
                }
                .into(),
            ),
            ("recovery_target_inclusive".into(), "on".into()),
            ("archive_mode".into(), "off".into()),
            // One syncfs instead of an fsync per file at recovery start (PostgreSQL 14+).
            ("recovery_init_sync_method".into(), "syncfs".into()),
        ];
        match &self.target {
            // Always with an explicit offset: PostgreSQL reads a time without one in
            // its own zone.
            RestoreTarget::Time(t) => s.push((
                "recovery_target_time".into(),
                t.format("%Y-%m-%d %H:%M:%S%.6f%:z").to_string(),
            )),
            RestoreTarget::Lsn(l) => s.push(("recovery_target_lsn".into(), l.to_string())),
            RestoreTarget::RestorePoint(n) => {
                s.push(("recovery_target_name".into(), n.clone()));
            }
            // Stop just before the transaction's commit: inclusive off.
            RestoreTarget::BeforeTransaction(c) => {
                s.push(("recovery_target_xid".into(), c.xid.to_string()));
                if let Some(i) = s.iter_mut().find(|(k, _)| k == "recovery_target_inclusive") {
                    i.1 = "off".into();
                }
            }
        }
        s
    }
}

/// Creates `recovery.signal`, which makes PostgreSQL start in targeted recovery.
pub fn write_recovery_signal(data_dir: &Path, owner: Option<&OsUser>) -> Result<(), PgError> {
    let path = data_dir.join("recovery.signal");
    std::fs::write(&path, b"").map_err(PgError::io(format!("cannot write {}", path.display())))?;
    if let Some(u) = owner {
        u.chown(&path)?;
    }
    Ok(())
}

/// Whether a `postgresql.auto.conf` line sets a key a copy must not inherit.
fn inherited(line: &str) -> bool {
    let key = line
        .split('=')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    INHERITED_KEYS.iter().any(|k| {
        if k.ends_with('_') {
            key.starts_with(k)
        } else {
            key == *k
        }
    })
}

/// Where replay is, as the recovering server says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayState {
    pub in_recovery: bool,
    /// The last WAL position replayed.
    pub replay_lsn: Option<Lsn>,
    /// Recovery reached its target and paused there (see
    /// [`RecoverySettings::pause_at_target`]).
    pub paused_at_target: bool,
}

/// Why a recovering cluster stopped, read from its log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecoveryStop {
    /// The archived WAL ended before the target was reached.
    ShortOfTarget,
    /// Another failure; the last FATAL or PANIC line of the log.
    Failed { last_fatal: String },
}

impl Cluster {
    /// Removes from `postgresql.auto.conf` the settings a restored copy inherits from
    /// its master's `ALTER SYSTEM` that must not apply to it (they override
    /// `lifeboat.conf`): the port, listen addresses and socket directory, archiving,
    /// recovery targets, `restore_command` and `primary_conninfo`.
    pub fn drop_inherited_settings(&self) -> Result<(), PgError> {
        let auto = self.data_dir().join("postgresql.auto.conf");
        let Ok(text) = std::fs::read_to_string(&auto) else {
            return Ok(());
        };
        let kept: String = text
            .lines()
            .filter(|l| !inherited(l))
            .map(|l| format!("{l}\n"))
            .collect();
        self.write_owned(&auto, &kept)
    }

    /// Why recovery stopped, from the end of the cluster's log.
    pub fn recovery_stop(&self) -> RecoveryStop {
        let log = self.log_tail(8192);
        if log.contains(SHORT_OF_TARGET) {
            return RecoveryStop::ShortOfTarget;
        }
        let last_fatal = log
            .lines()
            .rev()
            .find(|l| l.contains("FATAL") || l.contains("PANIC"))
            .unwrap_or("")
            .trim()
            .to_string();
        RecoveryStop::Failed { last_fatal }
    }
}

/// Where replay is on a recovering (or just promoted) cluster.
pub async fn replay_state(client: &Client) -> Result<ReplayState, PgError> {
    let row = client
        .query_one(
            "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text,
                    pg_is_in_recovery() AND pg_get_wal_replay_pause_state() = 'paused'",
            &[],
        )
        .await
        .map_err(PgError::sql("cannot read the recovery state"))?;
    Ok(ReplayState {
        in_recovery: row.get(0),
        replay_lsn: row.get::<_, Option<String>>(1).and_then(|l| l.parse().ok()),
        paused_at_target: row.get(2),
    })
}

/// Asks a cluster paused at its recovery target to promote, without waiting: the
/// paused startup process looks for the request about once a second, and the caller
/// follows [`replay_state`] until recovery has ended.
pub async fn promote(client: &Client) -> Result<(), PgError> {
    client
        .execute("SELECT pg_promote(false)", &[])
        .await
        .map_err(PgError::sql("promotion failed"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_time_keeps_its_offset() {
        let t = chrono::DateTime::parse_from_rfc3339("2026-11-24T09:30:00.25+02:00").unwrap();
        let s = RecoverySettings {
            restore_command: "x".into(),
            target: RestoreTarget::Time(t),
            pause_at_target: false,
        }
        .settings();
        assert!(s.contains(&(
            "recovery_target_time".to_string(),
            "2026-11-24 09:30:00.250000+02:00".to_string()
        )));
        assert!(s.contains(&("recovery_target_action".into(), "promote".into())));
        assert!(s.contains(&("archive_mode".into(), "off".into())));
    }

    #[test]
    fn before_a_transaction_stops_at_its_xid_exclusively() {
        let t = chrono::DateTime::parse_from_rfc3339("2026-11-24T09:30:00+02:00").unwrap();
        let s = RecoverySettings {
            restore_command: "x".into(),
            target: RestoreTarget::BeforeTransaction(lifeboat_domain::TransactionCommit {
                xid: 745,
                commit_lsn: Lsn(0x300_0028),
                commit_time: t,
                event: None,
            }),
            pause_at_target: true,
        }
        .settings();
        assert!(s.contains(&("recovery_target_xid".to_string(), "745".to_string())));
        assert!(s.contains(&("recovery_target_inclusive".to_string(), "off".to_string())));
        assert!(!s.iter().any(|(k, _)| k == "recovery_target_time"));
    }

    #[test]
    fn settings_the_master_set_with_alter_system_are_not_inherited() {
        for line in [
            "port = '5433'",
            "listen_addresses = '*'",
            "archive_command = 'cp %p /x'",
            "Recovery_Target_Time = 'x'",
            "restore_command = 'x'",
            "primary_conninfo = 'host=x'",
        ] {
            assert!(inherited(line), "{line}");
        }
        for line in [
            "work_mem = '64MB'",
            "# port = 1",
            "portal = 'x'",
            "shared_buffers = '1GB'",
        ] {
            assert!(!inherited(line), "{line}");
        }
    }
}
