//! What the API returns: instances as users see them.

use chrono::{DateTime, Utc};
use lifeboat_domain::InstanceKind;
use lifeboat_store::{AccountRecord, InstanceRecord, WhitelistRecord};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// An instance with everything `lifeboat instance show` prints.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct InstanceView {
    pub id: String,
    pub name: String,
    /// `master` or `temporary`.
    pub kind: String,
    /// `creating`, `running`, `stopped`, `failed`, `deleting` or `released`.
    pub status: String,
    /// Why the instance is in its status, when there is something to say.
    pub status_detail: Option<String>,
    pub region: String,
    pub engine_version: String,
    /// The address the instance listens on.
    pub address: String,
    pub port: u16,
    pub network_type: String,
    pub whitelist: Vec<WhitelistView>,
    pub accounts: Vec<AccountView>,
    /// Bytes used by the instance's databases; absent when it is not running.
    pub data_size_bytes: Option<i64>,
    /// The recovery target of a temporary instance, times with their UTC offset.
    #[schema(value_type = Option<Object>)]
    pub restore_target: Option<lifeboat_domain::RestoreTarget>,
    /// How far the creation of a temporary instance got.
    pub progress: Option<crate::temporary::TemporaryProgress>,
    /// WAL archiving health of a running master.
    pub archiving: Option<crate::backups::ArchivingView>,
    pub created_at: DateTime<Utc>,
    /// The master of a temporary instance.
    pub master_id: Option<String>,
    /// When a temporary instance is released.
    pub expires_at: Option<DateTime<Utc>>,
    /// Seconds left before release, for temporary instances.
    pub time_left_seconds: Option<i64>,
    /// libpq connection string for the privileged account, without the password.
    pub connection_string: String,
    /// A ready-to-paste command: `psql "<connection_string>"`.
    pub psql: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AccountView {
    pub name: String,
    /// The first account, given at creation.
    pub privileged: bool,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WhitelistView {
    /// An address or network in CIDR form.
    pub cidr: String,
    /// `user`, or the migration task that added the entry.
    pub added_by: String,
    pub created_at: DateTime<Utc>,
}

/// A configured region.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RegionView {
    pub name: String,
    pub address: String,
    pub ports: String,
}

impl InstanceView {
    pub fn build(
        rec: &InstanceRecord,
        address: &str,
        accounts: Vec<AccountRecord>,
        whitelist: Vec<WhitelistRecord>,
        data_size_bytes: Option<i64>,
    ) -> Self {
        let connection_string = format!(
            "host={address} port={} user={} dbname=postgres",
            rec.port, rec.privileged_account
        );
        let time_left_seconds = match (rec.kind, rec.expires_at) {
            (InstanceKind::Temporary, Some(at)) => Some((at - Utc::now()).num_seconds().max(0)),
            _ => None,
        };
        Self {
            id: rec.id.to_string(),
            name: rec.name.clone(),
            kind: rec.kind.to_string(),
            status: rec.status.to_string(),
            status_detail: rec.status_detail.clone(),
            region: rec.region.clone(),
            engine_version: rec.engine_version.clone(),
            address: address.to_string(),
            port: rec.port,
            network_type: rec.network_type.to_string(),
            whitelist: whitelist
                .into_iter()
                .map(|w| WhitelistView {
                    cidr: w.entry.to_string(),
                    added_by: w.added_by,
                    created_at: w.created_at,
                })
                .collect(),
            accounts: accounts
                .into_iter()
                .map(|a| AccountView {
                    name: a.name,
                    privileged: a.privileged,
                    created_at: a.created_at,
                })
                .collect(),
            data_size_bytes,
            archiving: None,
            restore_target: crate::temporary::target_of(rec),
            progress: (rec.kind == InstanceKind::Temporary)
                .then(|| crate::temporary::progress_of(rec)),
            created_at: rec.created_at,
            master_id: rec.master_id.as_ref().map(|m| m.to_string()),
            expires_at: rec.expires_at,
            time_left_seconds,
            psql: format!("psql \"{connection_string}\""),
            connection_string,
        }
    }
}
