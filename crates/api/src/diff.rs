//! The diff: what `lifeboat diff` sends ([`DiffBody`]), and what it gets back: a
//! [`DiffReport`] with one [`TableDiff`] per table pair, or with `format=ndjson` a
//! stream of [`DiffLine`]s (every differing row, each table's summary, the report).
//!
//! Row values are kept as the JSON text PostgreSQL's `to_json` wrote, never as a
//! floating-point number: `142.8571428571428571` stays `142.8571428571428571`, `NaN`
//! and `Infinity` stay strings, `-0` stays `-0`. Field names follow DESIGN.md: a diff
//! has `tables`, each with `table`, `only_in_source`, `only_in_target`, `changed` and
//! `rows`.

use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::{IntoParams, ToSchema};

use crate::error::ErrorBody;

/// One side of a diff, with optional credentials.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DiffSide {
    #[schema(pattern = "^pg-[a-z0-9]{6}$")]
    pub instance: String,
    /// Connect as this account over TCP instead of the management connection.
    pub account: Option<String>,
    pub password: Option<String>,
}

/// What `lifeboat diff` sends.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DiffBody {
    /// Usually the temporary instance.
    pub source: DiffSide,
    /// Usually its master.
    pub target: DiffSide,
    /// Default `postgres`.
    pub database: Option<String>,
    /// `SCHEMA.TABLE` or `SCHEMA.TABLE=SCHEMA.TABLE`.
    #[serde(default)]
    pub tables: Vec<String>,
    /// `SCHEMA` or `SCHEMA=SCHEMA`: every table of the schema.
    #[serde(default)]
    pub schemas: Vec<String>,
    /// Rows kept per table in the report (default 100).
    #[serde(default, deserialize_with = "crate::whole::optional")]
    pub limit: Option<usize>,
}

/// The query of POST /api/v1/diff.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DiffQuery {
    /// `json` (default): one report. `ndjson`: every differing row, streamed.
    #[param(pattern = "^(json|ndjson)$")]
    pub format: Option<String>,
}

/// Which instance of a comparison something belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Source,
    Target,
}

impl std::fmt::Display for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Side::Source => "source",
            Side::Target => "target",
        })
    }
}

/// One line of a streamed diff (`format=ndjson`), in this order: every differing row
/// of a table (`table` and `row`), then its summary (`table_done`); after the last
/// table, the report without rows (`report`), or the error that stopped the diff
/// (`error`). Each line has one of these shapes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DiffLine {
    /// The [`TableDiff::table`] a row belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row: Option<DiffRow>,
    /// A table's summary, without its rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_done: Option<TableDiff>,
    /// The whole report, without rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<DiffReport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

/// The result of a diff (`lifeboat_migrate::diff::diff_tables`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
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
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MissingTable {
    /// `schema.table` as named on the side where it exists.
    pub table: String,
    /// The side on which it does not exist.
    pub missing_on: Side,
}

/// The comparison of one table pair.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RowDiffKind {
    OnlyInSource,
    OnlyInTarget,
    Changed,
}

/// One differing row.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DiffRow {
    pub kind: RowDiffKind,
    /// The key columns and their values; `null` for a multiset comparison.
    #[schema(value_type = Option<Object>)]
    pub key: Option<RowValues>,
    /// The row as the source has it (absent for `only_in_target`).
    #[schema(value_type = Option<Object>)]
    pub source: Option<RowValues>,
    /// The row as the target has it (absent for `only_in_source`).
    #[schema(value_type = Option<Object>)]
    pub target: Option<RowValues>,
    /// For `changed`: the compared columns whose values differ.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changed_columns: Vec<String>,
    /// For a multiset comparison: how many more copies of this row one side has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
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

/// Reads the object back in column order, each value as the JSON text it was.
impl<'de> Deserialize<'de> for RowValues {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Columns;
        impl<'de> serde::de::Visitor<'de> for Columns {
            type Value = RowValues;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object of column values")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<RowValues, A::Error> {
                let mut columns = Vec::new();
                while let Some((name, value)) = map.next_entry::<String, Box<RawValue>>()? {
                    let value = (value.get() != "null").then_some(value);
                    columns.push((name, value));
                }
                Ok(RowValues(columns))
            }
        }
        deserializer.deserialize_map(Columns)
    }
}
