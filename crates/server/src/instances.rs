//! The life of an instance: create, start, stop, delete, and the whitelist and accounts
//! that change its configuration.
//!
//! Each step is written to the metadata store before it acts, and each is idempotent,
//! so the reconciler can run any of them again after a crash. Blocking work (initdb,
//! pg_ctl) runs on the blocking pool, inside a spawned task so that a client that hangs
//! up does not cancel a create or delete halfway.

use std::net::TcpListener;

use lifeboat_domain::names::{validate_account_name, validate_instance_name, validate_password};
use lifeboat_domain::{InstanceId, InstanceKind, InstanceStatus, WhitelistEntry};
use lifeboat_postgres::accounts::{account_exists, create_account, scram_verifier};
use lifeboat_postgres::{Cluster, ClusterSettings, ClusterStatus, PgError, StopMode, render_hba};
use lifeboat_store::{InstanceRecord, NewInstance, StoreError};

use crate::config::RegionConfig;
use crate::error::ApiError;
use crate::state::SharedState;

/// How often a create tries another port when the one it picked was taken meanwhile.
const PORT_ATTEMPTS: usize = 5;

/// A request to create a master.
pub struct CreateMaster {
    pub name: String,
    pub account: String,
    pub password: String,
    pub region: Option<String>,
}

pub fn region_of<'a>(state: &'a SharedState, name: &str) -> Result<&'a RegionConfig, ApiError> {
    state.config.region(name).ok_or_else(|| {
        let known: Vec<&str> = state
            .config
            .regions
            .iter()
            .map(|r| r.name.as_str())
            .collect();
        ApiError::bad_request(
            format!("unknown region '{name}'"),
            format!("use one of the configured regions: {}", known.join(", ")),
        )
    })
}

/// The cluster behind a record.
pub fn cluster_of(state: &SharedState, rec: &InstanceRecord) -> Result<Cluster, ApiError> {
    let env = state.pg_env()?;
    let region = region_of(state, &rec.region)?;
    let dir = region.instances_dir(&state.data_dir).join(rec.id.as_str());
    Ok(Cluster::new(dir, rec.port, env.bins, env.user))
}

pub fn get(state: &SharedState, id: &str) -> Result<InstanceRecord, ApiError> {
    let id = InstanceId::parse(id)?;
    match state.store.find_instance(&id)? {
        Some(rec) => Ok(rec),
        None => Err(ApiError::not_found(
            format!("instance {id} not found"),
            "run `lifeboat instance list` to see the instances and their ids",
        )),
    }
}

/// Creates a master and returns it running, or fails leaving nothing behind.
pub async fn create_master(
    state: SharedState,
    req: CreateMaster,
) -> Result<InstanceRecord, ApiError> {
    validate_instance_name(&req.name)?;
    validate_account_name(&req.account)?;
    validate_password(&req.password)?;
    let region_name = req
        .region
        .unwrap_or_else(|| state.config.regions[0].name.clone());
    let region = region_of(&state, &region_name)?.clone();
    let env = state.pg_env()?;
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
            whitelist: vec![WhitelistEntry::localhost()],
        })?
    };
    tracing::info!(instance = %rec.id, name = %rec.name, port = rec.port, "creating instance");
    let id = rec.id.clone();
    let task_state = state.clone();
    tokio::spawn(async move { finish_create(task_state, id).await }).await??;
    Ok(state.store.instance(&rec.id)?)
}

fn insert_with_fresh_id(
    state: &SharedState,
    make: impl Fn(InstanceId) -> NewInstance,
) -> Result<InstanceRecord, ApiError> {
    loop {
        let new = make(InstanceId::generate());
        if state.store.find_instance(&new.id)?.is_none() {
            return Ok(state.store.insert_instance(&new)?);
        }
    }
}

/// The lowest port of the region's range that no instance holds and nothing listens on.
pub fn allocate_port(state: &SharedState, region: &RegionConfig) -> Result<u16, ApiError> {
    let used = state.store.used_ports(&region.name)?;
    region
        .ports
        .iter()
        .find(|p| !used.contains(p) && TcpListener::bind((region.address.as_str(), *p)).is_ok())
        .ok_or_else(|| {
            ApiError::conflict(
                "port_range_exhausted",
                format!(
                    "no free port left in region '{}' (range {} on {})",
                    region.name, region.ports, region.address
                ),
                "delete instances you no longer need or widen the region's `ports` range in the config",
            )
        })
}

/// Builds the cluster of a record in status `creating`, from scratch: anything left by
/// an interrupted attempt is removed first. On failure everything is undone and the
/// record removed, so the name and port are free for the next try.
pub async fn finish_create(state: SharedState, id: InstanceId) -> Result<(), ApiError> {
    let lock = state.instance_lock(&id);
    let _guard = lock.lock().await;
    // The request that created the record and the reconciler at start can both get
    // here for one instance; whoever comes second finds it finished and leaves it be.
    if !matches!(state.store.find_instance(&id)?, Some(r) if r.status == InstanceStatus::Creating) {
        return Ok(());
    }
    let result = build_master(&state, &id).await;
    if let Err(err) = &result {
        tracing::warn!(instance = %id, error = %err.body.message, "create failed; cleaning up");
        if let Ok(rec) = state.store.instance(&id)
            && let Ok(cluster) = cluster_of(&state, &rec)
        {
            let _ = tokio::task::spawn_blocking(move || {
                let _ = cluster.stop(StopMode::Immediate);
                cluster.remove_files()
            })
            .await;
        }
        let _ = state.store.delete_instance(&id);
    }
    result
}

async fn build_master(state: &SharedState, id: &InstanceId) -> Result<(), ApiError> {
    let mut rec = state.store.instance(id)?;
    let Some(verifier) = rec.pending_verifier.clone() else {
        return Err(ApiError::internal(format!(
            "instance {id} cannot be finished: its privileged account's verifier is gone"
        )));
    };
    let region = region_of(state, &rec.region)?.clone();
    let cluster = cluster_of(state, &rec)?;
    let c = cluster.clone();
    tokio::task::spawn_blocking(move || -> Result<(), PgError> {
        c.stop(StopMode::Immediate)?;
        c.remove_files()?;
        c.init()
    })
    .await??;

    crate::backups::prepare_instance(state, &rec)?;
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
    state.store.set_status(id, InstanceStatus::Running, None)?;
    tracing::info!(instance = %id, port = rec.port, "instance running");
    // Backed up from its first minute: the restorable window starts here.
    if let Err(e) = crate::backups::start_backup(state, id, "create").await {
        tracing::warn!(instance = %id, error = %e.body.message, "cannot start the first base backup; the scheduler will retry");
    }
    Ok(())
}

/// Writes `lifeboat.conf` and `pg_hba.conf` from the record and its whitelist.
pub fn write_config(
    state: &SharedState,
    rec: &InstanceRecord,
    cluster: &Cluster,
    region: &RegionConfig,
) -> Result<(), ApiError> {
    cluster.write_settings(&ClusterSettings {
        port: rec.port,
        listen_address: region.address.clone(),
        socket_dir: cluster.socket_dir().to_path_buf(),
        archive: crate::backups::archive_settings(state, rec)?,
        extra: Vec::new(),
    })?;
    let whitelist: Vec<WhitelistEntry> = state
        .store
        .whitelist(&rec.id)?
        .into_iter()
        .map(|w| w.entry)
        .collect();
    cluster.write_hba(&render_hba(&whitelist))?;
    Ok(())
}

/// Deletes an instance: refuses while a temporary instance depends on it; otherwise
/// stops the cluster, removes its directory, then forgets the record.
pub async fn delete(state: SharedState, id: InstanceId) -> Result<(), ApiError> {
    let rec = state.store.instance(&id)?;
    if rec.kind == InstanceKind::Temporary {
        return crate::temporary::release(&state, &id, "released by the user").await;
    }
    let temporaries = state.store.live_temporaries(&id)?;
    if let Some(t) = temporaries.first() {
        return Err(ApiError::conflict(
            "has_temporary_instance",
            format!(
                "instance {id} has the temporary instance {} ({})",
                t.id, t.status
            ),
            format!("delete it first: lifeboat temp delete {}", t.id),
        ));
    }
    if let Some(task) = state
        .store
        .tasks_of_instance(id.as_str(), "migrating")?
        .first()
    {
        return Err(ApiError::conflict(
            "migration_running",
            format!("instance {id} is part of the running migration task {task}"),
            format!("wait for it to end or cancel it: lifeboat migration cancel {task}"),
        ));
    }
    if rec.status == InstanceStatus::Creating {
        return Err(ApiError::conflict(
            "instance_busy",
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
pub async fn finish_delete(state: SharedState, id: InstanceId) -> Result<(), ApiError> {
    let lock = state.instance_lock(&id);
    let _guard = lock.lock().await;
    let rec = state.store.instance(&id)?;
    let cluster = cluster_of(&state, &rec)?;
    tokio::task::spawn_blocking(move || -> Result<(), PgError> {
        if cluster.stop(StopMode::Fast).is_err() {
            cluster.stop(StopMode::Immediate)?;
        }
        cluster.remove_files()
    })
    .await??;
    state.store.delete_instance(&id)?;
    tracing::info!(instance = %id, "instance deleted");
    Ok(())
}

pub async fn stop(state: SharedState, id: InstanceId) -> Result<InstanceRecord, ApiError> {
    let lock = state.instance_lock(&id);
    let _guard = lock.lock().await;
    let rec = state.store.instance(&id)?;
    require_status(
        &rec,
        &[
            InstanceStatus::Running,
            InstanceStatus::Stopped,
            InstanceStatus::Failed,
        ],
        "stop",
    )?;
    let cluster = cluster_of(&state, &rec)?;
    tokio::task::spawn_blocking(move || cluster.stop(StopMode::Fast)).await??;
    state.store.set_status(&id, InstanceStatus::Stopped, None)?;
    Ok(state.store.instance(&id)?)
}

pub async fn start(state: SharedState, id: InstanceId) -> Result<InstanceRecord, ApiError> {
    let lock = state.instance_lock(&id);
    let _guard = lock.lock().await;
    let rec = state.store.instance(&id)?;
    require_status(
        &rec,
        &[
            InstanceStatus::Running,
            InstanceStatus::Stopped,
            InstanceStatus::Failed,
        ],
        "start",
    )?;
    start_locked(&state, &rec).await?;
    Ok(state.store.instance(&id)?)
}

/// Starts the cluster of `rec` (the caller holds its lock) and records the outcome.
pub async fn start_locked(state: &SharedState, rec: &InstanceRecord) -> Result<(), ApiError> {
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
        return Err(ApiError::conflict(
            "data_missing",
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
            let err = ApiError::from(e).on(&format!("instance {}", rec.id));
            state
                .store
                .set_status(&rec.id, InstanceStatus::Failed, Some(&err.body.message))?;
            Err(err)
        }
    }
}

fn require_status(
    rec: &InstanceRecord,
    allowed: &[InstanceStatus],
    action: &str,
) -> Result<(), ApiError> {
    if allowed.contains(&rec.status) {
        return Ok(());
    }
    Err(ApiError::conflict(
        "invalid_state",
        format!("cannot {action} instance {}: it is {}", rec.id, rec.status),
        "wait for the current operation to end; `lifeboat instance show ID` shows the status",
    ))
}

/// Creates an account on a running instance.
pub async fn add_account(
    state: SharedState,
    id: InstanceId,
    name: String,
    password: String,
) -> Result<(), ApiError> {
    validate_account_name(&name)?;
    validate_password(&password)?;
    let lock = state.instance_lock(&id);
    let _guard = lock.lock().await;
    let rec = state.store.instance(&id)?;
    require_running(&rec)?;
    let cluster = cluster_of(&state, &rec)?;
    let client = cluster.connect("postgres").await?;
    if account_exists(&client, &name).await? {
        return Err(ApiError::conflict(
            "already_exists",
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

fn require_running(rec: &InstanceRecord) -> Result<(), ApiError> {
    if rec.status == InstanceStatus::Running {
        return Ok(());
    }
    Err(ApiError::conflict(
        "instance_not_running",
        format!("instance {} is {}, not running", rec.id, rec.status),
        format!("start it first: lifeboat instance start {}", rec.id),
    ))
}

/// Adds (`add = true`) or removes a whitelist entry, renders `pg_hba.conf` and reloads.
/// The store change is undone when the file cannot be written.
pub async fn change_whitelist(
    state: SharedState,
    id: InstanceId,
    entry: WhitelistEntry,
    add: bool,
    added_by: &str,
) -> Result<(), ApiError> {
    let lock = state.instance_lock(&id);
    let _guard = lock.lock().await;
    let rec = state.store.instance(&id)?;
    if matches!(
        rec.status,
        InstanceStatus::Deleting | InstanceStatus::Released
    ) {
        return Err(ApiError::conflict(
            "invalid_state",
            format!("instance {id} is {}", rec.status),
            "whitelists can be changed on existing instances only",
        ));
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

async fn apply_whitelist(state: &SharedState, rec: &InstanceRecord) -> Result<(), ApiError> {
    if rec.status == InstanceStatus::Creating {
        // finish_create renders the file from the store when it gets there.
        return Ok(());
    }
    let cluster = cluster_of(state, rec)?;
    let whitelist: Vec<WhitelistEntry> = state
        .store
        .whitelist(&rec.id)?
        .into_iter()
        .map(|w| w.entry)
        .collect();
    cluster.write_hba(&render_hba(&whitelist))?;
    if cluster.status()? == ClusterStatus::Running {
        tokio::task::spawn_blocking(move || cluster.reload()).await??;
    }
    Ok(())
}
