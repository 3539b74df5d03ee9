//! Reaching the present: the archived window ends with the last WAL segment the master
//! archived, up to `archive_timeout` behind what it wrote. When a recovery target or
//! an events listing lies beyond it and the master is running, Lifeboat has the master
//! switch to a new WAL segment (`pg_switch_wal()` writes no data) and waits for the
//! segment that holds everything written so far to reach the repository. A mistake
//! made two seconds ago is then restorable within a few seconds.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use lifeboat_backup::{Lsn, RestorableWindow, wal};

use lifeboat_domain::InstanceStatus;
use lifeboat_store::InstanceRecord;

use super::inventory::restorable_window;
use super::repository_of;
use crate::control::registry::cluster_of;
use crate::control::{Error, ErrorCode, Result, Shared};

/// How long a switched segment may take to reach the repository.
pub const ARCHIVE_WAIT: Duration = Duration::from_secs(60);

/// How often the repository is looked at while waiting.
const POLL: Duration = Duration::from_millis(100);

/// A switch of the master's WAL, archived.
#[derive(Debug, Clone)]
pub struct Reached {
    /// The master's clock when it switched: every commit it acknowledged before then
    /// is in the archived WAL.
    pub at: DateTime<Utc>,
    /// Where the switch ended the WAL written so far.
    pub lsn: Lsn,
    /// The window once the switched segment is archived.
    pub window: RestorableWindow,
}

/// Whether `master` can be asked to switch WAL: it is running as far as Lifeboat knows,
/// and Lifeboat runs it (an adopted cluster gets no writes but migrations and
/// Lifeboat's slot).
pub fn can_reach_present(master: &InstanceRecord) -> bool {
    master.status == InstanceStatus::Running && master.external.is_none()
}

/// Has the running `master` switch WAL and waits up to `wait` for the switched segment
/// to be archived; `None` when the master is not running or cannot be reached (the
/// archived window is all there is).
pub async fn reach_present(
    state: &Shared,
    master: &InstanceRecord,
    wait: Duration,
) -> Result<Option<Reached>> {
    if !can_reach_present(master) {
        return Ok(None);
    }
    let cluster = cluster_of(state, master)?;
    let client = match cluster.connect("postgres").await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(instance = %master.id, error = %e, "cannot reach the master to switch its WAL");
            return Ok(None);
        }
    };
    let row = client
        // The switch returns the end of its record (or, with nothing written since
        // the last switch, the start of the current segment): the segment holding the
        // byte before it holds everything written so far. `pg_walfile_name` of an
        // exact segment boundary names the segment before it up to PostgreSQL 17 and
        // the one after it from 18, hence `l - 1`.
        .query_one(
            "WITH s AS (SELECT pg_switch_wal() AS l) SELECT l::text, pg_walfile_name(l - 1), clock_timestamp() FROM s",
            &[],
        )
        .await
        .map_err(|e| {
            Error::new(
                ErrorCode::QueryFailed,
                format!(
                    "cannot switch the WAL of {}: {}",
                    master.id,
                    lifeboat_postgres::describe(&e)
                ),
                "check the master's log; the archived window is still usable",
            )
        })?;
    let lsn: Lsn = row.get::<_, String>(0).parse()?;
    let needed: String = row.get(1);
    let at: DateTime<Utc> = row.get(2);
    drop(client);
    let repo = repository_of(state, master)?;
    let key = wal::wal_key(master.id.as_str(), &needed);
    let started = Instant::now();
    loop {
        if repo.head(&key).await?.is_some() {
            break;
        }
        if started.elapsed() >= wait {
            return Err(Error::new(
                ErrorCode::WalNotArchived,
                format!(
                    "{} switched to a new WAL segment at {lsn}, but segment {needed} did not reach the repository within {} s",
                    master.id,
                    wait.as_secs()
                ),
                format!(
                    "see how archiving goes: lifeboat instance show {}; points in the archived window are restorable meanwhile",
                    master.id
                ),
            ));
        }
        tokio::time::sleep(POLL).await;
    }
    let Some(window) = restorable_window(state, master).await? else {
        return Ok(None);
    };
    tracing::info!(instance = %master.id, %lsn, segment = %needed, "WAL switched and archived");
    Ok(Some(Reached { at, lsn, window }))
}
