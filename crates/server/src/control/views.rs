//! The API's views of instances, built from the store and, for a
//! running instance, from the instance itself.

use std::time::Duration;

use chrono::Utc;
use lifeboat_api::instances::{
    AccountView, InstanceView, Managed, RegionView, StreamingView, WhitelistView,
};
use lifeboat_domain::{InstanceKind, InstanceStatus};
use lifeboat_store::{AccountRecord, InstanceRecord, WhitelistRecord};

use super::registry::{cluster_of, region_of};
use super::{Result, Shared};

/// How long a view waits for a running instance to report its data size and archiving.
const LIVE_TIMEOUT: Duration = Duration::from_secs(2);

/// The view of a record, with its data size and archiving health when it runs.
pub async fn instance_view(state: &Shared, rec: &InstanceRecord) -> Result<InstanceView> {
    let mut view = instance_summary(state, rec)?;
    if let Some(h) = super::backups::stream::health_of(state, rec)? {
        view.streaming = Some(StreamingView {
            failing_since: h.failing_since.as_ref().map(|(t, _)| *t),
            failure: h.failing_since.map(|(_, w)| w),
            last_stored_wal: h.last_stored.as_ref().map(|(n, _)| n.clone()),
            last_stored_at: h.last_stored.map(|(_, t)| t),
        });
    }
    if rec.status == InstanceStatus::Running
        && let Ok(cluster) = cluster_of(state, rec)
    {
        view.data_size_bytes = tokio::time::timeout(LIVE_TIMEOUT, cluster.data_size())
            .await
            .ok()
            .and_then(|r| r.ok());
        if rec.kind == InstanceKind::Master {
            view.archiving = tokio::time::timeout(
                LIVE_TIMEOUT,
                super::backups::archiving::archiving_health(&cluster),
            )
            .await
            .ok()
            .flatten();
        }
    }
    Ok(view)
}

/// The view of a record from the store alone (for lists).
pub fn instance_summary(state: &Shared, rec: &InstanceRecord) -> Result<InstanceView> {
    let address = match &rec.external {
        Some(e) => e.host.clone(),
        None => region_of(state, &rec.region)
            .map(|r| r.address.clone())
            .unwrap_or_default(),
    };
    Ok(build(
        rec,
        &address,
        state.store.accounts(&rec.id)?,
        state.store.whitelist(&rec.id)?,
    ))
}

fn build(
    rec: &InstanceRecord,
    address: &str,
    accounts: Vec<AccountRecord>,
    whitelist: Vec<WhitelistRecord>,
) -> InstanceView {
    let connection_string = format!(
        "host={address} port={} user={} dbname=postgres",
        rec.port, rec.privileged_account
    );
    let time_left_seconds = match (rec.kind, rec.expires_at) {
        (InstanceKind::Temporary, Some(at)) => Some((at - Utc::now()).num_seconds().max(0)),
        _ => None,
    };
    InstanceView {
        id: rec.id.to_string(),
        name: rec.name.clone(),
        kind: rec.kind,
        status: rec.status,
        status_detail: rec.status_detail.clone(),
        managed: if rec.external.is_some() {
            Managed::External
        } else {
            Managed::Lifeboat
        },
        region: rec.region.clone(),
        engine_version: rec.engine_version.clone(),
        address: address.to_string(),
        port: rec.port,
        network_type: rec.network_type,
        whitelist: whitelist.into_iter().map(whitelist_view).collect(),
        accounts: accounts.into_iter().map(account_view).collect(),
        data_size_bytes: None,
        archiving: None,
        streaming: None,
        restore_target: rec.restore_target.clone(),
        progress: (rec.kind == InstanceKind::Temporary)
            .then(|| rec.progress.clone().unwrap_or_default()),
        created_at: rec.created_at,
        master_id: rec.master_id.as_ref().map(|m| m.to_string()),
        restored_from: rec.restored_from.as_ref().map(|m| m.to_string()),
        expires_at: rec.expires_at,
        time_left_seconds,
        psql: format!("psql \"{connection_string}\""),
        connection_string,
    }
}

pub fn account_view(a: AccountRecord) -> AccountView {
    AccountView {
        name: a.name,
        privileged: a.privileged,
        created_at: a.created_at,
    }
}

pub fn whitelist_view(w: WhitelistRecord) -> WhitelistView {
    WhitelistView {
        cidr: w.entry.to_string(),
        added_by: w.added_by,
        created_at: w.created_at,
    }
}

/// The configured regions.
pub fn regions(state: &Shared) -> Vec<RegionView> {
    state
        .config
        .regions
        .iter()
        .map(|r| RegionView {
            name: r.name.clone(),
            address: r.address.clone(),
            ports: r.ports.to_string(),
        })
        .collect()
}
