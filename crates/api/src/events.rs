//! Events: the committed transactions that destroyed data, found in a master's
//! archived WAL, each with the command that restores to just before it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// What an event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    DropDatabase,
    DropTable,
    Truncate,
    Delete,
    Update,
    /// `ALTER TABLE` dropped a column or changed a column's type.
    AlterTable,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DropDatabase => "drop_database",
            Self::DropTable => "drop_table",
            Self::Truncate => "truncate",
            Self::Delete => "delete",
            Self::Update => "update",
            Self::AlterTable => "alter_table",
        }
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The filters of `backup events` (all optional).
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Events that committed at or after this time (RFC 3339, or
    /// `YYYY-MM-DD HH:MM:SS` read in `tz`).
    pub since: Option<String>,
    /// Events that committed at or before this time.
    pub until: Option<String>,
    /// The IANA zone of `since` and `until` without an offset.
    pub tz: Option<String>,
    /// Events in this database only.
    pub database: Option<String>,
    /// Events on this table only, `SCHEMA.TABLE` as it was named then.
    pub table: Option<String>,
    /// Events of this kind only.
    pub kind: Option<EventKind>,
    /// Rows a DELETE or UPDATE must touch in one table to be an event (default 1000).
    #[param(minimum = 1, maximum = 9223372036854775807_i64)]
    #[serde(default, deserialize_with = "crate::whole::optional")]
    pub min_rows: Option<u64>,
}

/// A table an event touched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EventTable {
    /// `None` when Lifeboat never saw the table in the master's catalogs (created and
    /// dropped between two looks): then only its OID is known.
    pub schema: Option<String>,
    pub name: Option<String>,
    pub oid: Option<u32>,
    pub rows_deleted: u64,
    pub rows_updated: u64,
}

/// A committed transaction that destroyed data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EventView {
    /// `ev-<xid>-<commit LSN>`: give it to `temp create --before`.
    pub id: String,
    pub kind: EventKind,
    /// The database's name (its OID when it was never seen).
    pub database: String,
    /// The tables, by the names they had then.
    pub tables: Vec<EventTable>,
    /// Rows deleted or updated in all.
    pub rows: u64,
    pub xid: u32,
    pub commit_time: DateTime<Utc>,
    pub commit_lsn: String,
    /// The command that restores a temporary instance to just before it.
    pub restore_command: String,
}

/// How much WAL was read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ScanView {
    pub first_segment: Option<String>,
    pub last_segment: Option<String>,
    pub segments: u64,
    /// Of those, already read by an earlier listing.
    pub cached: u64,
    /// The first segment missing before the end of the WAL: the transactions between
    /// it and the next base backup are unknown.
    pub gap: Option<String>,
    /// Every missing segment a window ends before, oldest first; events are listed
    /// from each restorable window.
    #[serde(default)]
    pub gaps: Vec<String>,
    /// When the running master switched WAL so that the listing reaches the present;
    /// `None` when the archived WAL was all there was (master stopped, `--until` in
    /// the archived window).
    #[serde(default)]
    pub switched_at: Option<DateTime<Utc>>,
}

/// The events of a master, newest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EventList {
    pub instance_id: String,
    pub events: Vec<EventView>,
    pub scanned: ScanView,
    /// What limits the listing (no backup yet, a gap in the WAL).
    pub note: String,
}
