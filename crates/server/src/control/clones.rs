//! Permanent masters made from backups: a **clone** restores a master's backups (one
//! this server manages, or one found only in a region's repository, e.g. after the
//! host that wrote it was lost) to a point in time into a new master; **keeping** a
//! temporary instance makes it a master where it stands.
//!
//! A clone is built like a temporary instance ([`super::temporary::build`]: the same
//! persisted phases, the same recovery to the target, the accounts and passwords the
//! source had then), and then [`become_master`] gives it what a master has: WAL
//! archiving into its own repository entry, claimed for this server, its first base
//! backup (its restorable window starts there), no time to live.

use lifeboat_api::temporary::{CloneInstance, CreateTemporary};
use lifeboat_domain::names::validate_instance_name;
use lifeboat_domain::{
    InstanceKind, InstanceStatus, TaskState, TemporaryPhase, TemporaryProgress, WhitelistEntry,
};
use lifeboat_postgres::binaries::major_of;
use lifeboat_postgres::{Cluster, ClusterStatus, StopMode};
use lifeboat_store::{InstanceRecord, NewInstance};

use super::backups::entries::{self, backup_source};
use super::registry::{allocate_port, cluster_of, insert_with_fresh_id, region_of, whitelist_of};
use super::workers::blocking;
use super::{Error, ErrorCode, Result, Shared};
use crate::config::RegionConfig;

/// Accepts a request to clone `source_id` and starts building the new master.
pub async fn clone(state: &Shared, source_id: &str, req: CloneInstance) -> Result<InstanceRecord> {
    validate_instance_name(&req.name)?;
    let source = backup_source(state, source_id).await?;
    if source.kind != InstanceKind::Master {
        return Err(Error::invalid(
            format!(
                "{} is a temporary instance: it has no backups of its own",
                source.id
            ),
            format!(
                "keep it as a master with `lifeboat temp keep {} --name NAME`, or clone its master",
                source.id
            ),
        ));
    }
    let major = major_of(&source.engine_version).ok_or_else(|| {
        Error::internal(format!(
            "{} has an unknown engine version '{}'",
            source.id, source.engine_version
        ))
    })?;
    // A newer major is reached by pg_upgrade once the copy is restored; its binaries
    // must be there before anything starts.
    let upgrade_to = match req.engine_version {
        Some(asked) if asked < major => {
            return Err(Error::invalid(
                format!(
                    "engine version {asked} asked for, but the backups of {} are of PostgreSQL {major}, and a cluster cannot move to an older major",
                    source.id
                ),
                format!("leave out --engine-version, or give {major} or a newer one"),
            ));
        }
        Some(asked) if asked > major => {
            state.pg(Some(asked))?;
            Some(asked)
        }
        _ => None,
    };
    let target: CreateTemporary = req.target();
    let (target, checked) = super::temporary::resolve_target(state, &source, &target).await?;
    let region = region_of(state, &source.region)?.clone();
    // A known master's whitelist carries over; a master known only from the
    // repository had one this server never saw: local connections only.
    let known = state.store.find_instance(&source.id)?.is_some();
    // An adopted master's pg_hba.conf is managed where it runs: a clone, which
    // Lifeboat runs, starts with local connections too.
    let whitelist = if known && source.external.is_none() {
        whitelist_of(state, &source.id)?
    } else {
        vec![WhitelistEntry::localhost()]
    };
    let rec = {
        let _guard = state.create_lock.lock().await;
        let port = allocate_port(state, &region)?;
        insert_with_fresh_id(state, |id| NewInstance {
            id,
            name: req.name.clone(),
            kind: InstanceKind::Master,
            region: region.name.clone(),
            port,
            engine_version: source.engine_version.clone(),
            master_id: None,
            expires_at: None,
            privileged_account: source.privileged_account.clone(),
            pending_verifier: None,
            restore_target: Some(target.clone()),
            restored_from: Some(source.id.clone()),
            upgrade_to,
            // A copy of a cluster Lifeboat did not create has that cluster's superuser.
            management_role: source.management_role.clone(),
            external: None,
            whitelist: whitelist.clone(),
        })?
    };
    let _ = state.store.set_progress(
        &rec.id,
        &TemporaryProgress {
            phase: TemporaryPhase::Queued,
            ..Default::default()
        },
    );
    tracing::info!(instance = %rec.id, source = %source.id, target = ?target, "cloning a master from its backups");
    tokio::spawn(super::temporary::build(
        state.clone(),
        rec.id.clone(),
        checked,
    ));
    Ok(state.store.instance(&rec.id)?)
}

/// Makes the temporary instance `id` a master named `name`, where it runs: it keeps
/// its data, no longer expires, archives into its own repository entry and is backed
/// up from now on. Its master may then have another temporary instance.
pub async fn keep(state: &Shared, id: &str, name: String) -> Result<InstanceRecord> {
    validate_instance_name(&name)?;
    let rec = super::registry::instance(state, id)?;
    let id = rec.id.clone();
    let lock = state.instance_lock(&id);
    let _guard = lock.lock().await;
    let rec = state.store.instance(&id)?;
    if rec.kind != InstanceKind::Temporary {
        return Err(Error::invalid_state(
            format!("{id} is a master already"),
            "only a temporary instance can be kept; `lifeboat instance clone` makes a new master from a master's backups",
        ));
    }
    if rec.status != InstanceStatus::Running {
        return Err(Error::invalid_state(
            format!("temporary instance {id} is {}, not ready", rec.status),
            format!(
                "only a temporary instance that is ready can be kept: wait for it (lifeboat temp show {})",
                rec.master_id.as_ref().map_or("MASTER", |m| m.as_str())
            ),
        ));
    }
    if let Some(task) = state
        .store
        .tasks_of_instance(id.as_str(), TaskState::Migrating)?
        .first()
    {
        return Err(Error::new(
            ErrorCode::MigrationRunning,
            format!("temporary instance {id} is part of the running migration task {task}"),
            format!(
                "keeping it restarts it: wait for the task to end or cancel it (lifeboat migration cancel {task})"
            ),
        ));
    }
    state.store.keep_temporary(&id, &name)?;
    let rec = state.store.instance(&id)?;
    tracing::info!(instance = %id, name = %name, "keeping a temporary instance as a master");
    let region = region_of(state, &rec.region)?.clone();
    let cluster = cluster_of(state, &rec)?;
    if let Err(e) = become_master(state, &rec, &cluster, &region).await {
        let c = cluster.clone();
        if !matches!(
            blocking(move || c.status()).await,
            Ok(ClusterStatus::Running)
        ) {
            let _ = state
                .store
                .set_status(&id, InstanceStatus::Failed, Some(&e.with_hint()));
        }
        return Err(e);
    }
    Ok(state.store.instance(&id)?)
}

/// Gives a restored, promoted copy what a master has: its own repository entry
/// (claimed for this server), WAL archiving into it (a restart, since
/// `archive_mode` needs one), its first base backup, and its names for events. The
/// record is already a master.
pub async fn become_master(
    state: &Shared,
    rec: &InstanceRecord,
    cluster: &Cluster,
    region: &RegionConfig,
) -> Result<()> {
    let c = cluster.clone();
    blocking(move || c.stop(StopMode::Fast)).await?;
    let (rec, cluster) = match rec.upgrade_to {
        Some(major) if cluster.bins.major < major => upgrade(state, rec, cluster, major).await?,
        _ => {
            // The history file of the timeline the promotion began was written while
            // archiving was off: archive it with the first segments.
            mark_history_for_archiving(&cluster.data_dir(), &cluster.user)?;
            (rec.clone(), cluster.clone())
        }
    };
    let rec = &rec;
    super::backups::prepare_instance(state, rec)?;
    entries::describe(state, rec).await?;
    super::instances::write_config(state, rec, &cluster, region)?;
    let (c, address) = (cluster.clone(), region.address.clone());
    blocking(move || c.start(&address)).await?;
    super::backups::take_first_backup(state, rec).await?;
    entries::describe(state, rec).await?;
    if let Err(e) = super::events::names::snapshot(state, rec).await {
        tracing::warn!(instance = %rec.id, error = %e.message, "cannot look at the catalogs");
    }
    tracing::info!(instance = %rec.id, "restored copy is now a master, backed up");
    Ok(())
}

/// Moves the stopped copy to `major` with pg_upgrade and records its new engine
/// version; returns the record and cluster as they are now.
async fn upgrade(
    state: &Shared,
    rec: &InstanceRecord,
    cluster: &Cluster,
    major: u32,
) -> Result<(InstanceRecord, Cluster)> {
    let mut progress = rec.progress.clone().unwrap_or_default();
    if let Ok(Some(now)) = state
        .store
        .find_instance(&rec.id)
        .map(|r| r.and_then(|r| r.progress))
    {
        progress = now;
    }
    progress.phase = TemporaryPhase::Upgrading;
    let _ = state.store.set_progress(&rec.id, &progress);
    let env = state.pg(Some(major))?;
    let (c, bins) = (cluster.clone(), env.bins.clone());
    let started = std::time::Instant::now();
    blocking(move || lifeboat_postgres::upgrade::upgrade(&c, &bins)).await?;
    tracing::info!(instance = %rec.id, from = cluster.bins.major, to = major, seconds = started.elapsed().as_secs_f64(), "upgraded with pg_upgrade");
    state.store.set_engine_version(&rec.id, &env.bins.version)?;
    let rec = state.store.instance(&rec.id)?;
    let cluster = cluster_of(state, &rec)?;
    Ok((rec, cluster))
}

/// Marks every timeline history file in `pg_wal` that was never archived as ready,
/// so the archiver pushes it.
fn mark_history_for_archiving(
    data_dir: &std::path::Path,
    user: &lifeboat_postgres::OsUser,
) -> Result<()> {
    let wal = data_dir.join("pg_wal");
    let status = wal.join("archive_status");
    let entries = std::fs::read_dir(&wal)
        .map_err(|e| Error::internal(format!("cannot read {}: {e}", wal.display())))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if !name.ends_with(".history") {
            continue;
        }
        let done = status.join(format!("{name}.done"));
        let ready = status.join(format!("{name}.ready"));
        if !done.exists() && !ready.exists() {
            std::fs::write(&ready, b"")
                .map_err(|e| Error::internal(format!("cannot write {}: {e}", ready.display())))?;
            user.chown(&ready)?;
        }
    }
    Ok(())
}
