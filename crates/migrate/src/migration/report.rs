//! What a run tells its caller while it works ([`ProgressEvent`]) and when it ends
//! ([`MigrationReport`]). The caller persists [`ProgressEvent::TableFinished`] keys so
//! that a restarted run skips those tables, and computes percent and time left from
//! the copied and estimated rows and bytes.

use serde::{Deserialize, Serialize};

use crate::migration::mapping::{TableKey, TableMapping};
use crate::migration::objects::ObjectOutcome;
use crate::migration::target::TableAction;

/// A table the run is about to work on, with the catalog's estimates.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedTable {
    pub mapping: TableMapping,
    /// The planner's row estimate of the source table (0 when never analyzed).
    pub estimated_rows: u64,
    /// The source table's size (heap and TOAST), about what the copy moves.
    pub estimated_bytes: u64,
    /// True when an earlier run finished it; it is skipped.
    pub already_finished: bool,
}

/// Something that happened during [`crate::migration::run`].
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ProgressEvent {
    /// Sent once, after the mapping is resolved: every table of the task.
    Planned { tables: Vec<PlannedTable> },
    /// A table's transaction began.
    TableStarted { key: TableKey, action: TableAction },
    /// Rows are streaming (sent about twice a second per table). `rows` counts COPY
    /// rows and is exact at the end; `bytes` counts the COPY stream.
    TableCopying {
        key: TableKey,
        rows: u64,
        bytes: u64,
        estimated_rows: u64,
        estimated_bytes: u64,
    },
    /// The rows are in and are being compared with the source inside the table's
    /// transaction (see [`CommitCheck`]).
    TableChecking { key: TableKey },
    /// The rows are in; keys, indexes and the rest are being built.
    TableBuilding { key: TableKey },
    /// The table's transaction committed: persist `outcome.key` as done.
    TableFinished { outcome: Box<TableOutcome> },
    /// The foreign keys between migrated tables are being created.
    ForeignKeys { count: usize },
    /// The copied tables are being compared with the source.
    Verifying { key: TableKey },
}

/// How one table was migrated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableOutcome {
    pub key: TableKey,
    pub source: String,
    pub target: String,
    pub action: TableAction,
    /// Rows read from the source.
    pub rows_copied: u64,
    /// Size of the COPY stream.
    pub bytes_copied: u64,
    /// Rows that are new in the target table.
    pub rows_inserted: u64,
    /// Source rows not inserted because the target had their key (`skip-existing`).
    pub rows_skipped: u64,
    /// Target rows replaced by source rows (`overwrite`); saved in `kept_table`.
    pub rows_replaced: u64,
    /// Target rows whose columns took the source's values (`repair`); saved in
    /// `kept_table`.
    #[serde(default)]
    pub rows_updated: u64,
    /// Target rows whose key the source lacks, deleted (`repair` with
    /// `delete_rows_only_in_target`); saved in `kept_table`.
    #[serde(default)]
    pub rows_deleted: u64,
    /// Target rows whose key the source lacks (`repair`): kept, unless deleted.
    #[serde(default)]
    pub rows_only_in_target: u64,
    /// Target rows the task left exactly as they were (`repair`).
    #[serde(default)]
    pub rows_untouched: u64,
    /// `overwrite` and `repair`: the table holding the target rows it replaced (and
    /// deleted); `replace`: the old table. Schema-qualified.
    pub kept_table: Option<String>,
    /// Sequences set to the source's values.
    pub sequences_set: Vec<String>,
    pub seconds: f64,
    /// True when an earlier run finished the table and this one skipped it.
    #[serde(default)]
    pub resumed: bool,
    /// For a partitioned table: each partition, with the name it got in the target
    /// and the rows copied from it. Empty for other tables.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partitions: Vec<PartitionOutcome>,
    /// The comparison with the source made inside the table's transaction, before the
    /// commit, when verification is on and the action allows one (a created or
    /// replaced table read back, a repair's rewritten rows checked): verification then
    /// needs no second pass over the table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checked: Option<CommitCheck>,
}

/// A table compared with the source inside its own transaction, before the commit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommitCheck {
    pub source_rows: u64,
    pub target_rows: u64,
    /// True when the target held exactly what the check expects.
    pub passed: bool,
    /// What was compared and found, in words.
    pub detail: String,
}

/// One partition of a migrated partitioned table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartitionOutcome {
    pub source: String,
    /// Where it went: the partition the task created, or, when the rows were merged
    /// into an existing table, that table (which routed them to its own partitions).
    pub target: String,
    /// Rows copied from it; 0 for a partition that is partitioned itself.
    pub rows_copied: u64,
}

/// A foreign key between migrated tables created after the data.
#[derive(Debug, Clone, Serialize)]
pub struct ForeignKeyOutcome {
    /// `schema.table` in the target.
    pub table: String,
    pub name: String,
    pub references: String,
    /// False when it already existed (an earlier run created it).
    pub created: bool,
}

/// What verification expects of a table, given what the task did to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Expectation {
    /// Same rows on both sides (created, replaced or appended tables).
    Identical,
    /// Every source row's key is in the target (`skip-existing`: target rows that
    /// differ were kept on purpose, and rows only in the target are allowed).
    SourceKeysPresent,
    /// Every source row is in the target as is (`overwrite`).
    SourceRowsPresent,
}

/// The comparison of one migrated table with its source after the copy.
#[derive(Debug, Clone, Serialize)]
pub struct TableVerification {
    pub key: TableKey,
    pub table: String,
    pub expectation: Expectation,
    pub source_rows: u64,
    pub target_rows: u64,
    /// Source rows (by key) missing in the target.
    pub only_in_source: u64,
    /// Target rows missing in the source.
    pub only_in_target: u64,
    /// Keys on both sides with different values.
    pub changed: u64,
    pub passed: bool,
    /// What was found, in words.
    pub detail: String,
}

/// The result of a run.
#[derive(Debug, Clone, Serialize)]
pub struct MigrationReport {
    pub task_id: String,
    pub tables: Vec<TableOutcome>,
    pub foreign_keys: Vec<ForeignKeyOutcome>,
    /// The extensions, functions, views, triggers, rules, row-level security,
    /// policies and grants the run created or kept (schema migrations only).
    #[serde(default)]
    pub objects: Vec<ObjectOutcome>,
    /// Empty when verification was off or only the schema was migrated.
    pub verification: Vec<TableVerification>,
    /// Things the user should know (foreign keys not recreated, a child whose parent stays behind).
    pub warnings: Vec<String>,
    pub seconds: f64,
}

impl MigrationReport {
    /// The report of a run that ended early (failed or cancelled): the tables it
    /// finished, whole and not verified.
    pub fn ended_early(task_id: &str, tables: Vec<TableOutcome>, seconds: f64) -> Self {
        Self {
            task_id: task_id.to_string(),
            tables,
            foreign_keys: Vec::new(),
            objects: Vec::new(),
            verification: Vec::new(),
            warnings: vec![
                "the task ended early: the tables listed were migrated whole but not verified; the others are as they were"
                    .into(),
            ],
            seconds,
        }
    }

    /// True when every verified table met its expectation.
    pub fn verified(&self) -> bool {
        self.verification.iter().all(|v| v.passed)
    }
}
