//! What a diff produces: a [`DiffReport`] with one [`TableDiff`] per table pair (the
//! types are the API's, in `lifeboat_api::diff`), and a [`DiffSink`] that receives
//! every differing row as it is found, so a caller can stream all of them (for
//! `--output json`) without the diff holding them in memory.

use serde_json::value::RawValue;

pub use lifeboat_api::diff::{
    DiffReport, DiffRow, MissingTable, RowDiffKind, RowValues, SchemaDifference, TableDiff,
};

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
