//! Each master's entry in its region's repository: the description that lets a new
//! server restore from it when this host is gone, whose entry it is, and the entries a
//! repository holds that this server does not manage (a master it deleted, or one
//! another server wrote: "repository-only" masters).
//!
//! This server writes into an entry only when the entry names it as its owner (or
//! names no one yet): a master's description is claimed before its cluster first
//! archives, and base backups and retention check it before they write or delete.

use std::collections::BTreeMap;

use chrono::Utc;
use lifeboat_api::backups::{RepositoryEntryView, RepositoryList};
use lifeboat_backup::description::{self, DESCRIPTION_FORMAT, InstanceDescription};
use lifeboat_domain::{InstanceId, InstanceKind, InstanceStatus, NetworkType};
use lifeboat_postgres::ClusterStatus;
use lifeboat_store::InstanceRecord;
use rand::Rng;

use super::{repository, repository_of};
use crate::control::registry::{cluster_of, region_of};
use crate::control::{Error, Result, Shared};

/// This server's id, made at its first start; entries it owns name it.
pub fn server_id(state: &Shared) -> Result<String> {
    Ok(state.store.server_id(|| {
        let mut rng = rand::thread_rng();
        let tail: String = (0..12)
            .map(|_| char::from(b"0123456789abcdefghijklmnopqrstuvwxyz"[rng.gen_range(0..36)]))
            .collect();
        format!("lb-{tail}")
    })?)
}

/// The description of a master as this server knows it now.
async fn description_of(state: &Shared, rec: &InstanceRecord) -> Result<InstanceDescription> {
    Ok(InstanceDescription {
        format: DESCRIPTION_FORMAT,
        id: rec.id.to_string(),
        name: rec.name.clone(),
        engine_version: rec.engine_version.clone(),
        privileged_account: rec.privileged_account.clone(),
        region: rec.region.clone(),
        created_at: rec.created_at,
        owner: server_id(state)?,
        restored_from: rec.restored_from.as_ref().map(ToString::to_string),
        settings: settings_of(state, rec).await,
        deleted_at: None,
        management_role: rec.management_role.clone(),
        updated_at: Utc::now(),
    })
}

/// The settings a running cluster was given that are not PostgreSQL's defaults;
/// nothing when it does not run (the description keeps what it said before).
async fn settings_of(state: &Shared, rec: &InstanceRecord) -> BTreeMap<String, String> {
    let Ok(cluster) = cluster_of(state, rec) else {
        return BTreeMap::new();
    };
    if !matches!(cluster.status(), Ok(ClusterStatus::Running)) {
        return BTreeMap::new();
    }
    let Ok(client) = cluster.connect("postgres").await else {
        return BTreeMap::new();
    };
    let query = "SELECT name, setting FROM pg_settings \
                 WHERE source = 'configuration file' ORDER BY name";
    match client.query(query, &[]).await {
        Ok(rows) => rows
            .iter()
            .filter_map(|r| Some((r.try_get(0).ok()?, r.try_get(1).ok()?)))
            .collect(),
        Err(_) => BTreeMap::new(),
    }
}

/// Writes the master's description into its repository entry, claiming the entry for
/// this server; refused (nothing written) when another server owns it.
pub async fn describe(state: &Shared, rec: &InstanceRecord) -> Result<()> {
    if rec.kind != InstanceKind::Master {
        return Ok(());
    }
    let repo = repository_of(state, rec)?;
    let mut desc = description_of(state, rec).await?;
    if desc.settings.is_empty()
        && let Ok(Some(old)) = InstanceDescription::load(&repo, rec.id.as_str()).await
    {
        desc.settings = old.settings;
    }
    Ok(description::claim(&repo, &desc).await?)
}

/// Records in the repository that this server deleted the master; its backups stay
/// there. A failure is logged only: the instance is gone either way.
pub async fn describe_deleted(state: &Shared, rec: &InstanceRecord) {
    let outcome = async {
        let repo = repository_of(state, rec)?;
        let mut desc = match InstanceDescription::load(&repo, rec.id.as_str()).await? {
            Some(d) => d,
            None => description_of(state, rec).await?,
        };
        if desc.owner != server_id(state)? {
            return Ok(());
        }
        desc.deleted_at = Some(Utc::now());
        desc.updated_at = Utc::now();
        desc.store(&repo).await?;
        Ok::<_, Error>(())
    };
    if let Err(e) = outcome.await {
        tracing::warn!(instance = %rec.id, error = %e.message, "cannot record the delete in the repository");
    }
}

/// Removes everything this server's entry for `rec` holds: a clone whose build starts
/// again (after a crash) or failed must not leave WAL of a timeline it will write
/// again with other content. Refused when another server owns the entry.
pub async fn discard(state: &Shared, rec: &InstanceRecord) -> Result<()> {
    require_owned(state, rec).await?;
    let repo = repository_of(state, rec)?;
    let objects = repo.list(rec.id.as_str()).await?;
    if !objects.is_empty() {
        tracing::info!(instance = %rec.id, objects = objects.len(), "removing what an unfinished build left in the repository");
    }
    for o in objects {
        repo.delete(&o.key).await?;
    }
    Ok(())
}

/// Fails unless this server owns the master's repository entry.
pub async fn require_owned(state: &Shared, rec: &InstanceRecord) -> Result<()> {
    let repo = repository_of(state, rec)?;
    Ok(description::check_owner(&repo, rec.id.as_str(), &server_id(state)?).await?)
}

/// Describes every master at start: entries written before descriptions existed get
/// one, and a master whose entry another server owns is reported.
pub async fn describe_all(state: &Shared) {
    let Ok(all) = state.store.list_instances(false) else {
        return;
    };
    for rec in all.iter().filter(|r| {
        r.kind == InstanceKind::Master
            && matches!(r.status, InstanceStatus::Running | InstanceStatus::Stopped)
    }) {
        if let Err(e) = describe(state, rec).await {
            tracing::error!(instance = %rec.id, error = %e.message, hint = %e.hint, "cannot describe the instance in its repository");
        }
    }
}

/// Where a master that is not an instance of this server has its entry: the region
/// and the description (absent for an entry written before descriptions existed).
async fn find_entry(
    state: &Shared,
    id: &InstanceId,
) -> Result<Option<(String, Option<InstanceDescription>)>> {
    for region in &state.config.regions {
        let repo = repository(state, region)?;
        if let Some(d) = InstanceDescription::load(&repo, id.as_str()).await? {
            return Ok(Some((region.name.clone(), Some(d))));
        }
        if !lifeboat_backup::manifest::list_backup_ids(&repo, id.as_str())
            .await?
            .is_empty()
        {
            return Ok(Some((region.name.clone(), None)));
        }
    }
    Ok(None)
}

/// A stand-in record for a master known only from its repository entry: it is not
/// running (`released`), so nothing tries to reach it, and it has the name, engine
/// version and account its description gives.
fn stand_in(id: &InstanceId, region: &str, desc: Option<&InstanceDescription>) -> InstanceRecord {
    InstanceRecord {
        id: id.clone(),
        name: desc.map_or_else(|| id.to_string(), |d| d.name.clone()),
        kind: InstanceKind::Master,
        status: InstanceStatus::Released,
        region: region.to_string(),
        port: 0,
        engine_version: desc.map_or_else(String::new, |d| d.engine_version.clone()),
        network_type: NetworkType::Classic,
        master_id: None,
        created_at: desc.map_or_else(Utc::now, |d| d.created_at),
        expires_at: None,
        status_detail: Some(format!(
            "known only from the backup repository of region '{region}'"
        )),
        privileged_account: desc
            .map_or_else(|| "postgres".into(), |d| d.privileged_account.clone()),
        pending_verifier: None,
        restore_target: None,
        progress: None,
        restored_from: desc
            .and_then(|d| d.restored_from.as_deref())
            .and_then(|r| InstanceId::parse(r).ok()),
        upgrade_to: None,
        management_role: desc.and_then(|d| d.management_role.clone()),
        external: None,
    }
}

/// The master whose backups `id` names: an instance of this server, else one found
/// only in a region's repository (as a stand-in record that does not run).
pub async fn backup_source(state: &Shared, id: &str) -> Result<InstanceRecord> {
    let id = InstanceId::parse(id)?;
    if let Some(rec) = state.store.find_instance(&id)?
        && rec.status != InstanceStatus::Released
    {
        return Ok(rec);
    }
    match find_entry(state, &id).await? {
        Some((region, desc)) => {
            let rec = stand_in(&id, &region, desc.as_ref());
            if rec.engine_version.is_empty() {
                return Err(Error::invalid_state(
                    format!(
                        "the repository of region '{region}' holds backups of {id} but no description of it (written by an older Lifeboat)"
                    ),
                    "start the server that wrote them once more: it describes its instances at start",
                ));
            }
            Ok(rec)
        }
        None => Err(Error::not_found(
            format!("instance {id} not found, neither on this server nor in a backup repository"),
            "run `lifeboat instance list` and `lifeboat repository list` to see the ids",
        )),
    }
}

/// The masters whose backups the repositories hold (one region's, or every one).
pub async fn list(state: &Shared, region: Option<&str>) -> Result<RepositoryList> {
    let regions: Vec<_> = match region {
        Some(name) => vec![region_of(state, name)?.clone()],
        None => state.config.regions.clone(),
    };
    let this = server_id(state)?;
    let mut entries = Vec::new();
    for region in &regions {
        let repo = repository(state, region)?;
        for name in description::entries(&repo).await? {
            let Ok(id) = InstanceId::parse(&name) else {
                continue;
            };
            let desc = InstanceDescription::load(&repo, &name).await?;
            let local = state
                .store
                .find_instance(&id)?
                .filter(|r| r.kind == InstanceKind::Master && r.status != InstanceStatus::Released);
            let relation = match (&local, &desc) {
                (_, Some(d)) if d.owner != this => "other_server",
                (Some(_), _) => "managed",
                (None, Some(_)) => "deleted",
                (None, None) => "undescribed",
            };
            let rec = local
                .clone()
                .unwrap_or_else(|| stand_in(&id, &region.name, desc.as_ref()));
            let backups = lifeboat_backup::manifest::list_backup_ids(&repo, &name)
                .await?
                .len();
            let window = if rec.engine_version.is_empty() {
                undescribed_window(&name)
            } else {
                match super::inventory::window(state, &rec).await {
                    Ok(w) => w,
                    Err(e) => lifeboat_api::backups::WindowView {
                        note: format!("the window cannot be computed: {}; {}", e.message, e.hint),
                        ..undescribed_window(&name)
                    },
                }
            };
            entries.push(RepositoryEntryView {
                id: name.clone(),
                region: region.name.clone(),
                name: desc.as_ref().map(|d| d.name.clone()),
                engine_version: desc.as_ref().map(|d| d.engine_version.clone()),
                privileged_account: desc.as_ref().map(|d| d.privileged_account.clone()),
                created_at: desc.as_ref().map(|d| d.created_at),
                restored_from: desc.as_ref().and_then(|d| d.restored_from.clone()),
                owner: desc.as_ref().map(|d| d.owner.clone()),
                relation: relation.into(),
                settings: desc.map(|d| d.settings).unwrap_or_default(),
                backups,
                window,
            });
        }
    }
    Ok(RepositoryList {
        server_id: this,
        regions: regions.iter().map(|r| r.name.clone()).collect(),
        entries,
    })
}

fn undescribed_window(id: &str) -> lifeboat_api::backups::WindowView {
    lifeboat_api::backups::WindowView {
        instance_id: id.to_string(),
        available: false,
        earliest: None,
        latest: None,
        earliest_lsn: None,
        latest_lsn: None,
        timeline: None,
        gap: None,
        reaches_present: false,
        note: "the entry has no description, so its engine version (and the pg_waldump to read its WAL with) is unknown".into(),
        windows: Vec::new(),
    }
}
