//! What a diff produces: a [`DiffReport`] with one [`TableDiff`] per table pair, each
//! holding counts and the first `limit` differing rows, and a [`DiffSink`] that receives
//! every differing row as it is found, so a caller can stream all of them (for
//! `--output json`) without the diff holding them in memory.
//!
//! Field names follow DESIGN.md: a diff has `tables`, each with `table`,
//! `only_in_source`, `only_in_target`, `changed` and `rows`.

use serde::Serialize;
use serde::ser::SerializeMap;
use serde_json::value::RawValue;

/// The result of [`crate::diff::diff_tables`].
#[derive(Debug, Clone, Serialize)]
pub struct DiffReport {
    /// One entry per compared table pair, in request order.
    pub tables: Vec<TableDiff>,
    /// Tables of a requested schema that exist on one side only (schema requests
    /// only; an explicitly named table that is missing is an error instead).
    pub missing_tables: Vec<MissingTable>,
}

impl DiffReport {
    /// True when every table is identical and no table is missing on a side.
    pub fn identical(&self) -> bool {
        self.missing_tables.is_empty() && self.tables.iter().all(|t| t.identical)
    }
}

/// A table of a compared schema that exists on one side only.
#[derive(Debug, Clone, Serialize)]
pub struct MissingTable {
    /// `schema.table` as named on the side where it exists.
    pub table: String,
    /// The side on which it does not exist.
    pub missing_on: crate::diff::Side,
}

/// The comparison of one table pair.
#[derive(Debug, Clone, Serialize)]
pub struct TableDiff {
    /// `schema.table`, or `source=target` when the two names differ.
    pub table: String,
    pub source_table: String,
    pub target_table: String,
    /// True when no row differs and the schemas match.
    pub identical: bool,
    /// True when rows were matched by `key`; false means a multiset comparison of
    /// whole rows (a changed row then shows as one row only in source and one only in
    /// target, and `changed` stays 0).
    pub keyed: bool,
    /// The columns rows were matched by (primary key or unique NOT NULL key).
    pub key: Vec<String>,
    /// Rows present only in the source (for a multiset: surplus copies).
    pub only_in_source: u64,
    /// Rows present only in the target (for a multiset: surplus copies).
    pub only_in_target: u64,
    /// Rows whose key is on both sides with different values.
    pub changed: u64,
    /// Columns present on both sides that were compared.
    pub compared_columns: Vec<String>,
    /// How the two tables' definitions differ; columns missing on a side or of another
    /// type are left out of the comparison.
    pub schema_differences: Vec<SchemaDifference>,
    /// Things the user should know about how the comparison was made.
    pub warnings: Vec<String>,
    /// The first `limit` differing rows, in key order.
    pub rows: Vec<DiffRow>,
    /// True when more rows differ than `rows` holds.
    pub rows_truncated: bool,
}

/// One way in which the two tables' definitions differ.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SchemaDifference {
    /// The column exists in the source table only.
    ColumnOnlyInSource { column: String, data_type: String },
    /// The column exists in the target table only.
    ColumnOnlyInTarget { column: String, data_type: String },
    /// The column exists on both sides with different types. `compared` says whether
    /// its values were still compared (same base type, different modifier such as
    /// `varchar(10)` vs `varchar(20)`).
    TypeDiffers {
        column: String,
        source_type: String,
        target_type: String,
        compared: bool,
    },
}

impl std::fmt::Display for SchemaDifference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ColumnOnlyInSource { column, data_type } => {
                write!(f, "column {column} ({data_type}) exists only in the source")
            }
            Self::ColumnOnlyInTarget { column, data_type } => {
                write!(f, "column {column} ({data_type}) exists only in the target")
            }
            Self::TypeDiffers {
                column,
                source_type,
                target_type,
                ..
            } => write!(
                f,
                "column {column} is {source_type} in the source and {target_type} in the target"
            ),
        }
    }
}

/// How a row differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RowDiffKind {
    OnlyInSource,
    OnlyInTarget,
    Changed,
}

/// One differing row.
#[derive(Debug, Clone, Serialize)]
pub struct DiffRow {
    pub kind: RowDiffKind,
    /// The key columns and their values; `null` for a multiset comparison.
    pub key: Option<RowValues>,
    /// The row as the source has it (absent for `only_in_target`).
    pub source: Option<RowValues>,
    /// The row as the target has it (absent for `only_in_source`).
    pub target: Option<RowValues>,
    /// For `changed`: the compared columns whose values differ.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changed_columns: Vec<String>,
    /// For a multiset comparison: how many more copies of this row one side has.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
}

/// Column values of a row as a JSON object, in column order. Each value is the JSON
/// PostgreSQL's `to_json` wrote (numbers keep all their digits; NaN, Infinity, bytea
/// and timestamps are strings; SQL NULL is `null`).
#[derive(Debug, Clone, Default)]
pub struct RowValues(pub Vec<(String, Option<Box<RawValue>>)>);

impl RowValues {
    /// The JSON text of `column`'s value (`None` when the column is absent; `null`
    /// for SQL NULL).
    pub fn get(&self, column: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(name, _)| name == column)
            .map(|(_, v)| v.as_deref().map_or("null", RawValue::get))
    }
}

impl Serialize for RowValues {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, value) in &self.0 {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

/// Wraps the JSON text PostgreSQL produced; anything that is not valid JSON (which
/// `to_json` never writes) is kept as a JSON string rather than failing the diff.
pub(crate) fn raw_json(text: String) -> Box<RawValue> {
    match RawValue::from_string(text) {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!("PostgreSQL returned invalid JSON: {e}");
            RawValue::from_string(serde_json::Value::String(e.to_string()).to_string())
                .unwrap_or_default()
        }
    }
}

/// Receives every differing row as it is found, in key order per table.
pub trait DiffSink {
    /// One differing row of `table` (the [`TableDiff::table`] name). An error stops
    /// the diff and is returned from it.
    fn row(&mut self, table: &str, row: &DiffRow) -> std::io::Result<()>;

    /// Called once a table is compared, with its summary (whose `rows` hold at most
    /// `limit` rows).
    fn table_done(&mut self, _table: &TableDiff) -> std::io::Result<()> {
        Ok(())
    }
}

/// A sink that ignores rows: the report alone is enough.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoSink;

impl DiffSink for NoSink {
    fn row(&mut self, _table: &str, _row: &DiffRow) -> std::io::Result<()> {
        Ok(())
    }
}

impl<F: FnMut(&str, &DiffRow) -> std::io::Result<()>> DiffSink for F {
    fn row(&mut self, table: &str, row: &DiffRow) -> std::io::Result<()> {
        self(table, row)
    }
}
