//! The life of an instance: create, start, stop, delete, and the whitelist and accounts
//! that change its configuration.
//!
//! Each step is written to the metadata store before it acts, and each is idempotent,
//! so the reconciler can run any of them again after a crash. Blocking work (initdb,
//! pg_ctl) runs on the blocking pool, inside a spawned task so that a client that hangs
//! up does not cancel a create or delete halfway.

use lifeboat_domain::names::{validate_account_name, validate_instance_name, validate_password};
use lifeboat_domain::{InstanceId, InstanceKind, InstanceStatus, TaskState, WhitelistEntry};
use lifeboat_postgres::accounts::{account_exists, create_account, scram_verifier};
use lifeboat_postgres::{
    Cluster, ClusterSettings, ClusterStatus, PgError, StopMode, render_hba_for,
};
use lifeboat_store::{InstanceRecord, NewInstance, StoreError};

use super::registry::{
    allocate_port, cluster_of, insert_with_fresh_id, region_of, require_lifeboat_runs, whitelist_of,
};
use super::workers::blocking;
use super::{Error, ErrorCode, Result, Shared};
use crate::config::RegionConfig;

/// How often a create tries another port when the one it picked was taken meanwhile.
const PORT_ATTEMPTS: usize = 5;

/// A request to create a master.
pub struct CreateMaster {
    pub name: String,
    pub account: String,
    pub password: String,
    pub region: Option<String>,
    /// The PostgreSQL major; default: `[postgres] bin_dir`'s, else the newest installed.
    pub engine_version: Option<u32>,
}

/// Creates a master and returns it running, or fails leaving nothing behind.
pub async fn create_master(state: Shared, req: CreateMaster) -> Result<InstanceRecord> {
    validate_instance_name(&req.name)?;
    validate_account_name(&req.account)?;
    validate_password(&req.password)?;
    let region_name = req
        .region
        .unwrap_or_else(|| state.config.regions[0].name.clone());
    let region = region_of(&state, &region_name)?.clone();
    let env = state.pg(req.engine_version)?;
    let verifier = scram_verifier(&req.password);

    let rec = {
        let _guard = state.create_lock.lock().await;
        let port = allocate_port(&state, &region)?;
        insert_with_fresh_id(&state, |id| NewInstance {
            id,
            name: req.name.clone(),
            kind: InstanceKind::Master,
            region: region.name.clone(),
            port,
            engine_version: env.bins.version.clone(),
            master_id: None,
            expires_at: None,
            privileged_account: req.account.clone(),
            pending_verifier: Some(verifier.clone()),
            restore_target: None,
            restored_from: None,
            upgrade_to: None,
            management_role: None,
            external: None,
            whitelist: vec![WhitelistEntry::localhost()],
        })?
    };
    tracing::info!(instance = %rec.id, name = %rec.name, port = rec.port, "creating instance");
    let id = rec.id.clone();
    let task_state = state.clone();
    tokio::spawn(async move { finish_create(task_state, id).await }).await??;
    Ok(state.store.instance(&rec.id)?)
}

/// Builds the cluster of a record in status `creating`, from scratch: anything left by
/// an interrupted attempt is removed first. On failure everything is undone and the
/// record removed, so the name and port are free for the next try.
pub async fn finish_create(state: Shared, id: InstanceId) -> Result<()> {
    let lock = state.instance_lock(&id);
    let _guard = lock.lock().await;
    // The request that created the record and the reconciler at start can both get
    // here for one instance; whoever comes second finds it finished and leaves it be.
    if !matches!(state.store.find_instance(&id)?, Some(r) if r.status == InstanceStatus::Creating) {
        return Ok(());
    }
    let result = build_master(&state, &id).await;
    if result.is_ok() {
        super::temporary::prepared::refresh(&state, &id);
        super::backups::stream::start_if_streamed(&state, &id);
    }
    if let Err(err) = &result {
        tracing::warn!(instance = %id, error = %err.message, "create failed; cleaning up");
        if let Ok(rec) = state.store.instance(&id)
            && let Ok(cluster) = cluster_of(&state, &rec)
        {
            let _ = blocking(move || cluster.discard()).await;
        }
        let _ = state.store.delete_instance(&id);
    }
    result
}

async fn build_master(state: &Shared, id: &InstanceId) -> Result<()> {
    let mut rec = state.store.instance(id)?;
    let Some(verifier) = rec.pending_verifier.clone() else {
        return Err(Error::internal(format!(
            "instance {id} cannot be finished: its privileged account's verifier is gone"
        )));
    };
    let region = region_of(state, &rec.region)?.clone();
    let cluster = cluster_of(state, &rec)?;
    let c = cluster.clone();
    blocking(move || -> Result<(), PgError> {
        c.discard()?;
        c.init()
    })
    .await?;

    super::backups::prepare_instance(state, &rec)?;
    // Claimed before the cluster first archives into it: an entry another server
    // writes is never written by this one.
    super::backups::entries::describe(state, &rec).await?;
    let mut cluster = cluster;
    for attempt in 1..=PORT_ATTEMPTS {
        write_config(state, &rec, &cluster, &region)?;
        let c = cluster.clone();
        let address = region.address.clone();
        match tokio::task::spawn_blocking(move || c.start(&address)).await? {
            Ok(()) => break,
            // Something took the port between allocation and start: pick another.
            Err(PgError::PortInUse { .. }) if attempt < PORT_ATTEMPTS => {
                let _guard = state.create_lock.lock().await;
                let port = allocate_port(state, &region)?;
                state.store.set_port(id, port)?;
                rec.port = port;
                cluster.port = port;
            }
            Err(e) => return Err(e.into()),
        }
    }

    let client = cluster.connect("postgres").await?;
    if !account_exists(&client, &rec.privileged_account).await? {
        create_account(&client, &rec.privileged_account, &verifier, true).await?;
    }
    match state.store.add_account(id, &rec.privileged_account, true) {
        Ok(()) | Err(StoreError::Duplicate(_)) => {}
        Err(e) => return Err(e.into()),
    }
    state.store.clear_pending_verifier(id)?;
    state.store.set_engine_version(id, &cluster.bins.version)?;
    // Backed up before anyone uses it: the restorable window starts with the instance.
    let rec = state.store.instance(id)?;
    // Now with its settings and exact version.
    super::backups::entries::describe(state, &rec).await?;
    super::backups::take_first_backup(state, &rec).await?;
    // Its names from the first minute, for the events found in its WAL.
    if let Err(e) = super::events::names::snapshot(state, &rec).await {
        tracing::warn!(instance = %id, error = %e.message, "cannot look at the catalogs");
    }
    state.store.set_status(id, InstanceStatus::Running, None)?;
    tracing::info!(instance = %id, port = rec.port, "instance running");
    Ok(())
}

/// Writes `lifeboat.conf` and `pg_hba.conf` from the record and its whitelist.
pub fn write_config(
    state: &Shared,
    rec: &InstanceRecord,
    cluster: &Cluster,
    region: &RegionConfig,
) -> Result<()> {
    cluster.write_settings(&ClusterSettings {
        port: rec.port,
        listen_address: region.address.clone(),
        socket_dir: cluster.socket_dir().to_path_buf(),
        archive: super::backups::archive_settings(state, rec)?,
        extra: Vec::new(),
    })?;
    cluster.write_hba(&render_hba_for(
        &cluster.role,
        &whitelist_of(state, &rec.id)?,
    ))?;
    Ok(())
}

/// Deletes an instance: refuses while a temporary instance depends on it; otherwise
/// stops the cluster, removes its directory, then forgets the record.
pub async fn delete(state: Shared, id: InstanceId) -> Result<()> {
    let rec = state.store.instance(&id)?;
    if rec.kind == InstanceKind::Temporary {
        return super::temporary::release(&state, &id, "released by the user").await;
    }
    let temporaries = state.store.live_temporaries(&id)?;
    if let Some(t) = temporaries.first() {
        return Err(Error::new(
            ErrorCode::HasTemporaryInstance,
            format!(
                "instance {id} has the temporary instance {} ({})",
                t.id, t.status
            ),
            format!("delete it first: lifeboat temp delete {}", t.id),
        ));
    }
    if let Some(task) = state
        .store
        .tasks_of_instance(id.as_str(), TaskState::Migrating)?
        .first()
    {
        return Err(Error::new(
            ErrorCode::MigrationRunning,
            format!("instance {id} is part of the running migration task {task}"),
            format!("wait for it to end or cancel it: lifeboat migration cancel {task}"),
        ));
    }
    if rec.status == InstanceStatus::Creating {
        return Err(Error::new(
            ErrorCode::InstanceBusy,
            format!("instance {id} is still being created"),
            "wait until it is running, then delete it",
        ));
    }
    state
        .store
        .set_status(&id, InstanceStatus::Deleting, None)?;
    tokio::spawn(finish_delete(state, id)).await?
}

/// Stops and removes a record in status `deleting`. Idempotent.
pub async fn finish_delete(state: Shared, id: InstanceId) -> Result<()> {
    let lock = state.instance_lock(&id);
    let _guard = lock.lock().await;
    let rec = state.store.instance(&id)?;
    if rec.external.is_some() {
        // The cluster runs on; only Lifeboat's stream and slot go.
        super::backups::stream::stop(&state, &id);
        super::adoption::forget(&state, &rec).await;
        super::backups::entries::describe_deleted(&state, &rec).await;
        state.store.delete_instance(&id)?;
        tracing::info!(instance = %id, "adopted instance no longer protected; its cluster is left running");
        return Ok(());
    }
    super::backups::stream::stop(&state, &id);
    let cluster = cluster_of(&state, &rec)?;
    blocking(move || -> Result<(), PgError> {
        // A clean stop if it can, else a crash stop: the files go anyway.
        if cluster.stop(StopMode::Fast).is_err() {
            cluster.stop(StopMode::Immediate)?;
        }
        cluster.remove_files()
    })
    .await?;
    if rec.kind == InstanceKind::Master {
        super::temporary::prepared::remove_all(&state, &rec.region, &id);
        super::backups::entries::describe_deleted(&state, &rec).await;
    }
    state.store.delete_instance(&id)?;
    tracing::info!(instance = %id, "instance deleted");
    Ok(())
}

pub async fn stop(state: Shared, id: InstanceId) -> Result<InstanceRecord> {
    let lock = state.instance_lock(&id);
    let _guard = lock.lock().await;
    let rec = state.store.instance(&id)?;
    require_settled(&rec, "stop")?;
    // A failed instance has no server running; stopping it would only lose why it
    // failed.
    if rec.status == InstanceStatus::Failed {
        return Err(Error::invalid_state(
            format!(
                "instance {id} failed: {}; there is nothing to stop",
                rec.status_detail
                    .as_deref()
                    .unwrap_or("no reason was recorded")
            ),
            match rec.kind {
                InstanceKind::Temporary => format!("delete it: lifeboat temp delete {id}"),
                InstanceKind::Master => {
                    format!("start it again (lifeboat instance start {id}) or delete it")
                }
            },
        ));
    }
    let cluster = cluster_of(&state, &rec)?;
    blocking(move || cluster.stop(StopMode::Fast)).await?;
    state.store.set_status(&id, InstanceStatus::Stopped, None)?;
    Ok(state.store.instance(&id)?)
}

pub async fn start(state: Shared, id: InstanceId) -> Result<InstanceRecord> {
    let lock = state.instance_lock(&id);
    let _guard = lock.lock().await;
    let rec = state.store.instance(&id)?;
    require_settled(&rec, "start")?;
    // A temporary instance that failed has no files to start; starting would only
    // replace why it failed with "the data directory is missing".
    if rec.kind == InstanceKind::Temporary && rec.status == InstanceStatus::Failed {
        return Err(Error::invalid_state(
            format!(
                "temporary instance {id} failed: {}",
                rec.status_detail
                    .as_deref()
                    .unwrap_or("no reason was recorded")
            ),
            format!("delete it (lifeboat temp delete {id}) and create another"),
        ));
    }
    start_locked(&state, &rec).await?;
    super::backups::stream::start_if_streamed(&state, &id);
    Ok(state.store.instance(&id)?)
}

/// Starts the cluster of `rec` (the caller holds its lock) and records the outcome.
pub async fn start_locked(state: &Shared, rec: &InstanceRecord) -> Result<()> {
    let region = region_of(state, &rec.region)?.clone();
    let cluster = cluster_of(state, rec)?;
    if cluster.status()? == ClusterStatus::Missing {
        let msg = format!(
            "the data directory {} is missing",
            cluster.data_dir().display()
        );
        state
            .store
            .set_status(&rec.id, InstanceStatus::Failed, Some(&msg))?;
        return Err(Error::new(
            ErrorCode::DataMissing,
            format!("instance {}: {msg}", rec.id),
            "the instance cannot be started; delete it, or restore it from its backups",
        ));
    }
    write_config(state, rec, &cluster, &region)?;
    let address = region.address.clone();
    match tokio::task::spawn_blocking(move || cluster.start(&address)).await? {
        Ok(()) => {
            state
                .store
                .set_status(&rec.id, InstanceStatus::Running, None)?;
            Ok(())
        }
        Err(e) => {
            let err = Error::from(e).on(&format!("instance {}", rec.id));
            state
                .store
                .set_status(&rec.id, InstanceStatus::Failed, Some(&err.message))?;
            Err(err)
        }
    }
}

/// Refuses while the instance is being created, deleted or is released: only an
/// instance that is running, stopped or failed can be started or stopped.
fn require_settled(rec: &InstanceRecord, action: &str) -> Result<()> {
    if matches!(
        rec.status,
        InstanceStatus::Running | InstanceStatus::Stopped | InstanceStatus::Failed
    ) {
        return Ok(());
    }
    Err(Error::invalid_state(
        format!("cannot {action} instance {}: it is {}", rec.id, rec.status),
        "wait for the current operation to end; `lifeboat instance show ID` shows the status",
    ))
}

/// Creates an account on a running instance.
pub async fn add_account(
    state: Shared,
    id: InstanceId,
    name: String,
    password: String,
) -> Result<()> {
    validate_account_name(&name)?;
    validate_password(&password)?;
    let lock = state.instance_lock(&id);
    let _guard = lock.lock().await;
    let rec = state.store.instance(&id)?;
    require_lifeboat_runs(&rec)?;
    require_running(&rec)?;
    let cluster = cluster_of(&state, &rec)?;
    let client = cluster.connect("postgres").await?;
    if account_exists(&client, &name).await? {
        return Err(Error::new(
            ErrorCode::AlreadyExists,
            format!("account '{name}' already exists on instance {id}"),
            "choose another account name",
        ));
    }
    create_account(&client, &name, &scram_verifier(&password), false).await?;
    match state.store.add_account(&id, &name, false) {
        Ok(()) | Err(StoreError::Duplicate(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Refuses unless the instance runs.
pub fn require_running(rec: &InstanceRecord) -> Result<()> {
    if rec.status == InstanceStatus::Running {
        return Ok(());
    }
    Err(Error::new(
        ErrorCode::InstanceNotRunning,
        format!("instance {} is {}, not running", rec.id, rec.status),
        format!("start it first: lifeboat instance start {}", rec.id),
    ))
}

/// Adds (`add = true`) or removes a whitelist entry, renders `pg_hba.conf` and reloads.
/// The store change is undone when the file cannot be written.
pub async fn change_whitelist(
    state: Shared,
    id: InstanceId,
    entry: WhitelistEntry,
    add: bool,
    added_by: &str,
) -> Result<()> {
    let lock = state.instance_lock(&id);
    let _guard = lock.lock().await;
    let rec = state.store.instance(&id)?;
    require_lifeboat_runs(&rec)?;
    if let Some(e) = whitelist_refused(&rec) {
        return Err(e);
    }
    if add {
        state.store.add_whitelist(&id, &entry, added_by)?;
    } else {
        state.store.remove_whitelist(&id, &entry)?;
    }
    if let Err(e) = apply_whitelist(&state, &rec).await {
        if add {
            let _ = state.store.remove_whitelist(&id, &entry);
        } else {
            let _ = state.store.add_whitelist(&id, &entry, added_by);
        }
        return Err(e);
    }
    Ok(())
}

/// Why the whitelist of `rec` cannot change now: only an instance that exists and has
/// its cluster (running or stopped) has a `pg_hba.conf` to render.
fn whitelist_refused(rec: &InstanceRecord) -> Option<Error> {
    let id = &rec.id;
    let hint = match rec.status {
        InstanceStatus::Running | InstanceStatus::Stopped => return None,
        InstanceStatus::Creating => {
            "wait until it is running, then change its whitelist".to_string()
        }
        InstanceStatus::Failed if rec.kind == InstanceKind::Temporary => format!(
            "a temporary instance that failed has nothing left to connect to: delete it (lifeboat temp delete {id}) and create another"
        ),
        InstanceStatus::Failed => format!(
            "start it first (lifeboat instance start {id}); `lifeboat instance show {id}` says why it failed"
        ),
        InstanceStatus::Deleting | InstanceStatus::Released => {
            "it no longer exists; whitelists can be changed on existing instances only".to_string()
        }
    };
    Some(Error::invalid_state(
        format!(
            "instance {id} is {}: its whitelist cannot change",
            rec.status
        ),
        hint,
    ))
}

async fn apply_whitelist(state: &Shared, rec: &InstanceRecord) -> Result<()> {
    let cluster = cluster_of(state, rec)?;
    cluster.write_hba(&render_hba_for(
        &cluster.role,
        &whitelist_of(state, &rec.id)?,
    ))?;
    if cluster.status()? == ClusterStatus::Running {
        blocking(move || cluster.reload()).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use lifeboat_store::Store;

    use super::*;
    use crate::control::Control;
    use crate::credentials::SecretBox;

    fn control(dir: &std::path::Path) -> Shared {
        Arc::new(Control::new(
            crate::Config::load(None).unwrap(),
            dir.to_path_buf(),
            Store::in_memory().unwrap(),
            "token".into(),
            SecretBox::load_or_create(dir).unwrap(),
        ))
    }

    /// The request that created an instance and the reconciler at start both ran
    /// `finish_create` for it; the one that came second found the verifier cleared by
    /// the first and tore the finished instance down as a failed create.
    #[tokio::test]
    async fn a_create_finished_by_the_reconciler_is_left_alone_by_the_request_that_began_it() {
        let dir = tempfile::tempdir().unwrap();
        let state = control(dir.path());
        let rec = state
            .store
            .insert_instance(&NewInstance {
                id: InstanceId::generate(),
                name: "shop".into(),
                kind: InstanceKind::Master,
                region: "local".into(),
                port: 15432,
                engine_version: "15".into(),
                master_id: None,
                expires_at: None,
                privileged_account: "admin".into(),
                pending_verifier: Some(scram_verifier("correct horse battery")),
                restore_target: None,
                restored_from: None,
                upgrade_to: None,
                management_role: None,
                external: None,
                whitelist: vec![WhitelistEntry::localhost()],
            })
            .unwrap();
        // What the first finish_create leaves: running, the verifier gone.
        state.store.add_account(&rec.id, "admin", true).unwrap();
        state.store.clear_pending_verifier(&rec.id).unwrap();
        state
            .store
            .set_status(&rec.id, InstanceStatus::Running, None)
            .unwrap();
        // The second one, waiting on the instance's lock meanwhile.
        let lock = state.instance_lock(&rec.id);
        let held = lock.lock().await;
        let second = tokio::spawn(finish_create(state.clone(), rec.id.clone()));
        tokio::task::yield_now().await;
        assert!(
            !second.is_finished(),
            "finish_create must wait for the instance's lock"
        );
        drop(held);
        second.await.unwrap().unwrap();
        let after = state.store.instance(&rec.id).unwrap();
        assert_eq!(after.status, InstanceStatus::Running);
        assert_eq!(state.store.accounts(&rec.id).unwrap().len(), 1);
    }
}
