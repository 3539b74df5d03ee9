//! Temporary instances: a master restored to a point in time from its backup repository
//! alone, never touching the master, one per master, released after a time to live.
//!
//! Creation is a persisted state machine: the record (status `creating`, with its
//! recovery target) is written first, then the build runs in the background through the
//! phases of [`TemporaryPhase`] (`restoring_files`, `replaying_wal`, `promoting`,
//! `ready`), each recorded in the record's progress. A build that fails is undone
//! (cluster stopped, directory removed) and the record says why; a build interrupted by
//! a server crash is started again from scratch by the reconciler.
//!
//! # Layout
//! - this module: accepting a request, release and the time to live.
//! - [`target`]: the recovery target, the window check, the backup to start from.
//! - [`mod@build`]: restore, configure and start the copy; [`recovery`]: follow it to the
//!   target and promote; [`wal_feed`]: WAL fetched ahead of replay.
//! - [`prepared`]: each master's newest base backup restored ahead of need, which a
//!   build takes instead of restoring the files.

pub mod build;
pub mod prepared;
pub mod recovery;
pub mod target;
pub mod wal_feed;

use std::time::Duration;

use chrono::{DateTime, Utc};
use lifeboat_api::temporary::CreateTemporary;
use lifeboat_domain::{
    InstanceId, InstanceKind, InstanceStatus, RestoreTarget, TemporaryPhase, TemporaryProgress,
};
use lifeboat_store::{InstanceRecord, NewInstance};

use lifeboat_backup::RestorableWindow;
use lifeboat_domain::TransactionCommit;

use super::backups::inventory::restorable_windows;
use super::backups::present::{ARCHIVE_WAIT, can_reach_present, reach_present};
use super::registry::{allocate_port, cluster_of, insert_with_fresh_id, region_of, whitelist_of};
use super::workers::blocking;
use super::{Error, ErrorCode, Result, Shared};

pub use build::build;
use target::Requested;

/// Records how far a build got; a failure to record is not a failure of the build.
fn save_progress(state: &Shared, id: &InstanceId, p: &TemporaryProgress) {
    let _ = state.store.set_progress(id, p);
}

/// Accepts a request for a temporary instance of `master_id` and starts building it.
pub async fn create(
    state: &Shared,
    master_id: &InstanceId,
    req: CreateTemporary,
) -> Result<InstanceRecord> {
    let master = state.store.instance(master_id)?;
    if master.kind != InstanceKind::Master {
        return Err(Error::invalid(
            format!("{master_id} is a temporary instance"),
            "give the id of the master it was restored from",
        ));
    }
    let (target, checked) = resolve_target(state, &master, &req).await?;
    let region = region_of(state, &master.region)?.clone();

    let rec = {
        let _guard = state.create_lock.lock().await;
        if let Some(existing) = state.store.live_temporaries(master_id)?.first() {
            return Err(Error::new(
                ErrorCode::TemporaryInstanceExists,
                format!(
                    "instance {master_id} already has the temporary instance {} ({})",
                    existing.id, existing.status
                ),
                format!(
                    "a master has one temporary instance at a time: delete it first with `lifeboat temp delete {}`",
                    existing.id
                ),
            ));
        }
        let port = allocate_port(state, &region)?;
        // The master's whitelist; an adopted master's pg_hba.conf is managed where it
        // runs, so its temporary instance starts, like a new master, with this host.
        let whitelist = match state.store.instance(master_id)?.external {
            Some(_) => vec![lifeboat_domain::WhitelistEntry::localhost()],
            None => whitelist_of(state, master_id)?,
        };
        let expires_at = Utc::now()
            + chrono::Duration::from_std(state.config.temporary_instance.ttl)
                .map_err(|_| Error::internal("temporary_instance.ttl is out of range"))?;
        insert_with_fresh_id(state, |id| NewInstance {
            name: format!("{}-temp-{}", master.name, &id.as_str()[3..]),
            id,
            kind: InstanceKind::Temporary,
            region: region.name.clone(),
            port,
            engine_version: master.engine_version.clone(),
            master_id: Some(master_id.clone()),
            expires_at: Some(expires_at),
            privileged_account: master.privileged_account.clone(),
            pending_verifier: None,
            restore_target: Some(target.clone()),
            restored_from: None,
            upgrade_to: None,
            // A copy of a cluster Lifeboat did not create has that cluster's superuser.
            management_role: master.management_role.clone(),
            external: None,
            whitelist: whitelist.clone(),
        })?
    };
    save_progress(
        state,
        &rec.id,
        &TemporaryProgress {
            phase: TemporaryPhase::Queued,
            ..Default::default()
        },
    );
    tracing::info!(temporary = %rec.id, master = %master_id, target = ?target, "creating temporary instance");
    tokio::spawn(build(state.clone(), rec.id.clone(), checked));
    Ok(state.store.instance(&rec.id)?)
}

/// The recovery target a request names on `master`'s backups, checked against its
/// restorable window, and that window when it is known to hold the target (`None`:
/// the target lies beyond the archived WAL of a running master, and the build has it
/// switch WAL first).
pub(crate) async fn resolve_target(
    state: &Shared,
    master: &InstanceRecord,
    req: &CreateTemporary,
) -> Result<(RestoreTarget, Option<RestorableWindow>)> {
    let requested = target::parse_target(req, *chrono::Local::now().offset(), Utc::now())?;
    // Restored with the master's own major.
    state.pg_of(master)?;
    let windows = restorable_windows(state, master).await?;
    let Some(last) = windows.last().cloned() else {
        return Err(Error::new(
            ErrorCode::NoBackup,
            format!(
                "instance {} has no complete base backup with its WAL yet",
                master.id
            ),
            format!(
                "wait for its first backup, or take one: lifeboat backup run {} --wait",
                master.id
            ),
        ));
    };
    let target = match requested {
        Requested::Target(t) => t,
        Requested::BeforeEvent(_) | Requested::BeforeXid(_) => RestoreTarget::BeforeTransaction(
            transaction_of(state, master, windows.clone(), &requested).await?,
        ),
    };
    // A target beyond the stored WAL of a running master: the build waits for the
    // master's newest WAL (phase `waiting_for_wal`), then checks again.
    let checked =
        if target::beyond_window(&last, &target) && last.gap.is_none() && can_reach_present(master)
        {
            None
        } else {
            Some(target::check_in_windows(
                &master.id, &windows, None, &target,
            )?)
        };
    Ok((target, checked))
}

/// The commit a `--before` request names. Not found in the archived WAL of a running
/// master, it is looked for again once the master switched WAL into the archive: it
/// may have committed seconds ago.
async fn transaction_of(
    state: &Shared,
    master: &InstanceRecord,
    windows: Vec<RestorableWindow>,
    requested: &Requested,
) -> Result<TransactionCommit> {
    // Newest window first: that is where a recent mistake is.
    let find = |windows: Vec<RestorableWindow>| async move {
        let mut missing = None;
        for window in windows.iter().rev() {
            let found = match requested {
                Requested::BeforeEvent(id) => {
                    super::events::event_commit(state, master, window, id).await
                }
                Requested::BeforeXid(xid) => {
                    super::events::transaction_commit(state, master, window, *xid).await
                }
                Requested::Target(_) => Err(Error::internal("not a transaction")),
            };
            match found {
                Err(e) if e.code == ErrorCode::NotFound => missing = Some(e),
                other => return other,
            }
        }
        Err(missing.unwrap_or_else(|| Error::internal("no window to look in")))
    };
    match find(windows).await {
        Err(e) if e.code == ErrorCode::NotFound && can_reach_present(master) => {
            match reach_present(state, master, ARCHIVE_WAIT).await? {
                Some(reached) => find(vec![reached.window]).await,
                None => Err(e),
            }
        }
        other => other,
    }
}

/// Releases a temporary instance: stops it, removes its directory and whitelist
/// entries, and marks the record released. Idempotent.
pub async fn release(state: &Shared, id: &InstanceId, why: &str) -> Result<()> {
    let lock = state.instance_lock(id);
    let _guard = lock.lock().await;
    let rec = state.store.instance(id)?;
    if rec.status == InstanceStatus::Released {
        return Ok(());
    }
    let cluster = cluster_of(state, &rec)?;
    blocking(move || cluster.discard()).await?;
    for w in state.store.whitelist(id)? {
        let _ = state.store.remove_whitelist(id, &w.entry);
    }
    state
        .store
        .set_status(id, InstanceStatus::Released, Some(why))?;
    tracing::info!(temporary = %id, why, "temporary instance released");
    Ok(())
}

/// Releases every temporary instance whose time is up, including those that expired
/// while the server was down.
pub async fn release_expired(state: &Shared) {
    let Ok(all) = state.store.list_instances(false) else {
        return;
    };
    let now = Utc::now();
    for rec in all.iter().filter(|r| r.kind == InstanceKind::Temporary) {
        if rec.expires_at.is_some_and(|at: DateTime<Utc>| at <= now) {
            let why = "released automatically: its time to live ended";
            if let Err(e) = release(state, &rec.id, why).await {
                tracing::error!(temporary = %rec.id, error = %e.message, "cannot release an expired temporary instance");
            }
        }
    }
}

/// Runs [`release_expired`] every few seconds until the server stops.
pub async fn reaper(state: Shared) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tick.tick().await;
        release_expired(&state).await;
    }
}
