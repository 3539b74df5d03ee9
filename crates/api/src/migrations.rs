//! Migration tasks: the requests that create and change them, and the task as shown.
//! The stored task (with its sealed passwords) is another type, in the server: nothing
//! here can carry a secret back to a client.

use chrono::{DateTime, Utc};
use lifeboat_domain::{TableState, TaskState};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use lifeboat_domain::task::PrecheckStatus;

/// What `migration create` sends.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTask {
    /// 1 to 64 printable characters; default: a generated name.
    #[schema(pattern = "^[^\\u0000-\\u001f\\u007f]{1,64}$")]
    pub name: Option<String>,
    pub source: EndpointInput,
    pub target: EndpointInput,
    /// `SRC[=DST]`. May be empty: the task is then a draft, authorized and completed
    /// later with [`UpdateTask`] (as the console's wizard does); its pre-check fails
    /// until it selects an object.
    #[serde(default)]
    pub objects: Vec<String>,
    /// `schema,data` (default), `schema` or `data`.
    #[schema(pattern = "^\\s*(schema|data)\\s*(,\\s*(schema|data)\\s*)?$")]
    pub types: Option<String>,
    /// `error` (default), `skip-existing`, `overwrite`, `replace` or `repair`.
    #[schema(pattern = "^\\s*(error|skip-existing|overwrite|replace|repair)\\s*$")]
    pub conflict: Option<String>,
    /// Under `repair`: also delete the target rows whose key the source lacks (saved
    /// first). Default false: they are usually rows written after the chosen time.
    pub delete_rows_only_in_target: Option<bool>,
}

/// What `migration update` sends: the parts of a task that may change before it starts.
/// Fields left out keep their value.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTask {
    pub objects: Option<Vec<String>>,
    /// A new account or password for the source (the password is sealed like the
    /// first one).
    pub source: Option<EndpointChange>,
    /// A new account or password for the target.
    pub target: Option<EndpointChange>,
    /// `schema,data`, `schema` or `data`.
    #[schema(pattern = "^\\s*(schema|data)\\s*(,\\s*(schema|data)\\s*)?$")]
    pub types: Option<String>,
    /// `error`, `skip-existing`, `overwrite`, `replace` or `repair`.
    #[schema(pattern = "^\\s*(error|skip-existing|overwrite|replace|repair)\\s*$")]
    pub conflict: Option<String>,
    /// Under `repair`: also delete the target rows whose key the source lacks.
    pub delete_rows_only_in_target: Option<bool>,
}

/// A change to one side of a task that has not started: fields left out keep their
/// value.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointChange {
    #[schema(min_length = 1, max_length = 63)]
    pub account: Option<String>,
    /// 8 to 128 characters on one line.
    #[schema(
        min_length = 8,
        max_length = 128,
        pattern = "^[^\\n\\r\\u0000]{8,128}$"
    )]
    pub password: Option<String>,
}

/// One side of a task, as given.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointInput {
    #[schema(pattern = "^pg-[a-z0-9]{6}$")]
    pub instance: String,
    /// Default: the instance's region.
    pub region: Option<String>,
    pub account: String,
    /// 8 to 128 characters on one line.
    #[schema(
        min_length = 8,
        max_length = 128,
        pattern = "^[^\\n\\r\\u0000]{8,128}$"
    )]
    pub password: String,
}

/// One side of a task, as shown: never its password.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EndpointView {
    pub region: String,
    pub instance: String,
    pub account: String,
}

/// A migration task as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TaskView {
    pub id: String,
    pub name: String,
    pub source: EndpointView,
    pub target: EndpointView,
    /// `SRC[=DST]` as given.
    pub objects: Vec<String>,
    /// `schema`, `data` or both.
    pub types: Vec<String>,
    /// `error`, `skip-existing`, `overwrite`, `replace` or `repair`.
    pub conflict: String,
    /// Under `repair`: target rows whose key the source lacks are deleted (saved
    /// first) instead of kept.
    #[serde(default)]
    pub delete_rows_only_in_target: bool,
    pub state: TaskState,
    /// Whether the worker's address was added to both whitelists.
    pub authorized: bool,
    pub worker_address: String,
    /// The instances whose whitelist this task added the worker's address to.
    pub whitelist_added: Vec<String>,
    pub precheck: Vec<PrecheckItemView>,
    pub tables: Vec<TableProgress>,
    /// The keys of the tables already in the target.
    pub finished_tables: Vec<String>,
    /// The final report: each table's outcome, the foreign keys, the verification.
    #[schema(value_type = Option<Object>)]
    pub report: Option<serde_json::Value>,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// One item of a pre-check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PrecheckItemView {
    /// A stable id such as `source_connection`.
    pub id: String,
    pub name: String,
    pub status: PrecheckStatus,
    /// What was found, naming each object concerned.
    pub detail: String,
    /// What to do about it.
    pub advice: String,
}

/// Progress of one table.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TableProgress {
    pub key: String,
    pub source: String,
    pub target: String,
    pub state: TableState,
    pub rows: u64,
    pub bytes: u64,
    pub estimated_rows: u64,
    pub estimated_bytes: u64,
    pub percent: f64,
    /// Seconds left at the current speed.
    pub eta_seconds: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<DateTime<Utc>>,
}
