//! The lookups every part of the control plane needs: an instance by the id a user
//! typed, its region, its cluster, its whitelist, a free port, a fresh id.

use std::net::TcpListener;

use lifeboat_domain::{InstanceId, WhitelistEntry};
use lifeboat_postgres::Cluster;
use lifeboat_store::{InstanceRecord, NewInstance};

use super::{Error, ErrorCode, Result, Shared};
use crate::config::RegionConfig;

/// The configured region `name`.
pub fn region_of<'a>(state: &'a Shared, name: &str) -> Result<&'a RegionConfig> {
    state.config.region(name).ok_or_else(|| {
        let known: Vec<&str> = state
            .config
            .regions
            .iter()
            .map(|r| r.name.as_str())
            .collect();
        Error::invalid(
            format!("unknown region '{name}'"),
            format!("use one of the configured regions: {}", known.join(", ")),
        )
    })
}

/// The cluster behind a record.
pub fn cluster_of(state: &Shared, rec: &InstanceRecord) -> Result<Cluster> {
    require_lifeboat_runs(rec)?;
    let env = state.pg_of(rec)?;
    let region = region_of(state, &rec.region)?;
    let dir = region.instances_dir(&state.data_dir).join(rec.id.as_str());
    let cluster = Cluster::new(dir, rec.port, env.bins, env.user);
    Ok(match &rec.management_role {
        Some(role) => cluster.with_role(role),
        None => cluster,
    })
}

/// Refuses what only a cluster Lifeboat runs allows (start, stop, configuration,
/// whitelist, accounts) for an adopted instance.
pub fn require_lifeboat_runs(rec: &InstanceRecord) -> Result<()> {
    match &rec.external {
        None => Ok(()),
        Some(e) => Err(Error::new(
            ErrorCode::ManagedExternally,
            format!(
                "instance {} is adopted: its cluster at {}:{} runs outside Lifeboat, which does not start, stop or configure it",
                rec.id, e.host, rec.port
            ),
            "do this where the cluster runs (its service, pg_ctl, postgresql.conf, pg_hba.conf, CREATE ROLE); Lifeboat backs it up and migrates into it",
        )),
    }
}

/// The address clients reach an instance at: an adopted instance's host, else its
/// region's address.
pub fn host_of(state: &Shared, rec: &InstanceRecord) -> Result<String> {
    match &rec.external {
        Some(e) => Ok(e.host.clone()),
        None => Ok(region_of(state, &rec.region)?.address.clone()),
    }
}

/// The instance a user named by its id.
pub fn instance(state: &Shared, id: &str) -> Result<InstanceRecord> {
    let id = InstanceId::parse(id)?;
    match state.store.find_instance(&id)? {
        Some(rec) => Ok(rec),
        None => Err(Error::not_found(
            format!("instance {id} not found"),
            "run `lifeboat instance list` to see the instances and their ids",
        )),
    }
}

/// Lifeboat's own connection to `database` of a running instance. A database that
/// does not exist is the user's mistake (404 naming it), not an unreachable instance.
pub async fn connect_db(
    state: &Shared,
    rec: &InstanceRecord,
    database: &str,
    which: Option<&str>,
) -> Result<tokio_postgres::Client> {
    if rec.external.is_some() {
        return super::adoption::connect(state, rec, database)
            .await
            .map_err(|e| match e.code {
                ErrorCode::NotFound => no_such_database(rec, database, which),
                _ => e,
            });
    }
    let cluster = cluster_of(state, rec)?;
    cluster.connect(database).await.map_err(|e| {
        if e.sqlstate() == Some(NO_SUCH_DATABASE) {
            no_such_database(rec, database, which)
        } else {
            e.into()
        }
    })
}

/// SQLSTATE `invalid_catalog_name`: the database does not exist.
pub const NO_SUCH_DATABASE: &str = "3D000";

/// The error for a database that is not on the instance.
pub fn no_such_database(rec: &InstanceRecord, database: &str, which: Option<&str>) -> Error {
    let side = which.map(|w| format!("{w} ")).unwrap_or_default();
    Error::not_found(
        format!(
            "database '{database}' does not exist on the {side}instance {}",
            rec.id
        ),
        "name an existing database (--database DB; psql's \\l lists them)",
    )
}

/// The whitelist of an instance, as entries to render.
pub fn whitelist_of(state: &Shared, id: &InstanceId) -> Result<Vec<WhitelistEntry>> {
    Ok(state
        .store
        .whitelist(id)?
        .into_iter()
        .map(|w| w.entry)
        .collect())
}

/// The lowest port of the region's range that no instance holds and nothing listens on.
pub fn allocate_port(state: &Shared, region: &RegionConfig) -> Result<u16> {
    let used = state.store.used_ports(&region.name)?;
    region
        .ports
        .iter()
        .find(|p| !used.contains(p) && TcpListener::bind((region.address.as_str(), *p)).is_ok())
        .ok_or_else(|| {
            Error::new(
                ErrorCode::PortRangeExhausted,
                format!(
                    "no free port left in region '{}' (range {} on {})",
                    region.name, region.ports, region.address
                ),
                "delete instances you no longer need or widen the region's `ports` range in the config",
            )
        })
}

/// Records a new instance under a fresh id (`make` builds it for the id tried).
pub fn insert_with_fresh_id(
    state: &Shared,
    make: impl Fn(InstanceId) -> NewInstance,
) -> Result<InstanceRecord> {
    loop {
        let new = make(InstanceId::generate());
        if state.store.find_instance(&new.id)?.is_none() {
            return Ok(state.store.insert_instance(&new)?);
        }
    }
}
