//! Instances as users see them, and the requests that create and change them.

use chrono::{DateTime, Utc};
use lifeboat_domain::{
    InstanceKind, InstanceStatus, NetworkType, RestoreTarget, TemporaryProgress,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::backups::ArchivingView;

/// What `instance create` sends.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateInstanceRequest {
    /// 1 to 64 letters, digits, `-` or `_`, starting with a letter.
    #[schema(pattern = "^[A-Za-z][A-Za-z0-9_-]{0,63}$")]
    pub name: String,
    /// The privileged account: a lowercase PostgreSQL name that needs no quoting, not
    /// starting with `pg_`, not one PostgreSQL or Lifeboat keeps for itself.
    #[schema(
        pattern = "^(?!pg_)(?!(lifeboat|postgres|public|none|current_user|session_user|current_role)$)[a-z_][a-z0-9_]{0,62}$"
    )]
    pub account: String,
    /// Its password, 8 to 128 characters on one line; turned into a SCRAM verifier at
    /// once and never stored.
    #[schema(
        min_length = 8,
        max_length = 128,
        pattern = "^[^\\n\\r\\u0000]{8,128}$"
    )]
    pub password: String,
    /// Default: the first configured region.
    pub region: Option<String>,
    /// The PostgreSQL major version, 15 to 18. Default: the server's (its
    /// `[postgres] bin_dir`, else the newest installed).
    #[serde(default, deserialize_with = "crate::whole::optional")]
    #[schema(minimum = 15, maximum = 18)]
    pub engine_version: Option<u32>,
}

/// What `instance adopt` sends: where an existing PostgreSQL cluster is and the
/// account Lifeboat logs in with (it needs REPLICATION).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdoptInstanceRequest {
    /// 1 to 64 letters, digits, `-` or `_`, starting with a letter.
    #[schema(pattern = "^[A-Za-z][A-Za-z0-9_-]{0,63}$")]
    pub name: String,
    /// A host name or IP address.
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9.:-]{0,252}$")]
    pub host: String,
    #[serde(deserialize_with = "crate::whole::required")]
    #[schema(minimum = 1, maximum = 65535)]
    pub port: u16,
    /// An existing role of the cluster, 1 to 63 bytes.
    #[schema(min_length = 1, max_length = 63, pattern = "^[^\\u0000]{1,63}$")]
    pub account: String,
    /// Its password, 1 to 1024 characters on one line; stored encrypted by the server,
    /// never shown.
    #[schema(
        min_length = 1,
        max_length = 1024,
        pattern = "^[^\\n\\r\\u0000]{1,1024}$"
    )]
    pub password: String,
    /// Default: the first configured region (whose repository keeps the backups).
    pub region: Option<String>,
}

/// What `instance update` sends: where an adopted cluster is now and how Lifeboat
/// logs in to it; absent fields keep their value.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateInstanceRequest {
    #[schema(pattern = "^[A-Za-z0-9:][A-Za-z0-9.:-]{0,252}$")]
    pub host: Option<String>,
    #[serde(default, deserialize_with = "crate::whole::optional")]
    #[schema(minimum = 1, maximum = 65535)]
    pub port: Option<u16>,
    #[schema(min_length = 1, max_length = 63, pattern = "^[^\\u0000]{1,63}$")]
    pub account: Option<String>,
    #[schema(
        min_length = 1,
        max_length = 1024,
        pattern = "^[^\\n\\r\\u0000]{1,1024}$"
    )]
    pub password: Option<String>,
}

/// The adoption check of a cluster: every requirement with its status.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AdoptionCheckView {
    /// True when no item failed.
    pub adoptable: bool,
    pub items: Vec<crate::migrations::PrecheckItemView>,
}

/// Who runs an instance's cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Managed {
    /// Lifeboat created it and starts, stops and configures it.
    Lifeboat,
    /// An adopted cluster: it runs outside Lifeboat, which backs it up over the
    /// replication protocol and never reconfigures it.
    External,
}

/// An instance with everything `lifeboat instance show` prints.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct InstanceView {
    pub id: String,
    pub name: String,
    pub kind: InstanceKind,
    pub status: InstanceStatus,
    /// Why the instance is in its status, when there is something to say.
    pub status_detail: Option<String>,
    /// `external` for an adopted instance.
    pub managed: Managed,
    pub region: String,
    pub engine_version: String,
    /// The address the instance listens on (an adopted instance's host).
    pub address: String,
    pub port: u16,
    pub network_type: NetworkType,
    pub whitelist: Vec<WhitelistView>,
    pub accounts: Vec<AccountView>,
    /// Bytes used by the instance's databases; absent when it is not running.
    pub data_size_bytes: Option<i64>,
    /// The recovery target of a temporary instance, times with their UTC offset.
    #[schema(value_type = Option<Object>)]
    pub restore_target: Option<RestoreTarget>,
    /// How far the creation of a temporary instance got.
    pub progress: Option<TemporaryProgress>,
    /// WAL archiving health of a running master.
    pub archiving: Option<ArchivingView>,
    /// WAL streaming of an adopted master.
    #[serde(default)]
    pub streaming: Option<StreamingView>,
    pub created_at: DateTime<Utc>,
    /// The master of a temporary instance.
    pub master_id: Option<String>,
    /// The master whose backups a clone or a kept temporary instance was restored
    /// from.
    #[serde(default)]
    pub restored_from: Option<String>,
    /// When a temporary instance is released.
    pub expires_at: Option<DateTime<Utc>>,
    /// Seconds left before release, for temporary instances.
    pub time_left_seconds: Option<i64>,
    /// libpq connection string for the privileged account, without the password.
    pub connection_string: String,
    /// A ready-to-paste command: `psql "<connection_string>"`.
    pub psql: String,
}

/// How the WAL streaming of an adopted master goes.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StreamingView {
    /// Since when the receiver fails (the cluster unreachable, the slot gone...);
    /// absent while it streams.
    pub failing_since: Option<DateTime<Utc>>,
    /// Why, in the receiver's words.
    pub failure: Option<String>,
    /// The last WAL file stored from the stream, and when.
    pub last_stored_wal: Option<String>,
    pub last_stored_at: Option<DateTime<Utc>>,
}

/// What `account create` sends.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAccountRequest {
    /// A lowercase PostgreSQL name that needs no quoting (see the privileged account).
    #[schema(
        pattern = "^(?!pg_)(?!(lifeboat|postgres|public|none|current_user|session_user|current_role)$)[a-z_][a-z0-9_]{0,62}$"
    )]
    pub account: String,
    /// 8 to 128 characters on one line; turned into a SCRAM verifier at once and never
    /// stored.
    #[schema(
        min_length = 8,
        max_length = 128,
        pattern = "^[^\\n\\r\\u0000]{8,128}$"
    )]
    pub password: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AccountView {
    pub name: String,
    /// The first account, given at creation.
    pub privileged: bool,
    pub created_at: DateTime<Utc>,
}

/// What `whitelist add` sends (and `whitelist remove` in its query).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct WhitelistRequest {
    /// An address (`10.0.0.5`) or network (`10.0.0.0/24`).
    pub cidr: String,
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
