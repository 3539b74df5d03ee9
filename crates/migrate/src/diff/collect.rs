//! Turning fetched rows into [`DiffRow`]s: counting them, keeping the first `limit` for
//! the report, and handing every one to the caller's sink.

use tokio_postgres::Row;

use crate::diff::catalog::TablePlan;
use crate::diff::report::{DiffRow, RowDiffKind, RowValues, raw_json};
use crate::diff::{DiffError, DiffSink};

/// Counts and report rows of the table being compared.
pub(crate) struct Collector<'s> {
    pub table: String,
    limit: usize,
    pub rows: Vec<DiffRow>,
    pub truncated: bool,
    pub only_in_source: u64,
    pub only_in_target: u64,
    pub changed: u64,
    sink: &'s mut (dyn DiffSink + Send),
}

impl<'s> Collector<'s> {
    pub fn new(table: String, limit: usize, sink: &'s mut (dyn DiffSink + Send)) -> Self {
        Self {
            table,
            limit,
            rows: Vec::new(),
            truncated: false,
            only_in_source: 0,
            only_in_target: 0,
            changed: 0,
            sink,
        }
    }

    pub fn emit(&mut self, row: DiffRow) -> Result<(), DiffError> {
        let n = row.count.unwrap_or(1);
        match row.kind {
            RowDiffKind::OnlyInSource => self.only_in_source += n,
            RowDiffKind::OnlyInTarget => self.only_in_target += n,
            RowDiffKind::Changed => self.changed += n,
        }
        self.sink.row(&self.table, &row)?;
        if self.rows.len() < self.limit {
            self.rows.push(row);
        } else {
            self.truncated = true;
        }
        Ok(())
    }
}

/// One side's copy of a row: its column values as text (what is compared) and as
/// JSON (what is shown).
pub(crate) struct Fetched {
    pub texts: Vec<Option<String>>,
    pub json: Vec<Option<String>>,
}

impl Fetched {
    /// Reads the `text[]` and JSON `text[]` columns at `at` and `at + 1`.
    pub fn from_row(row: &Row, at: usize) -> Self {
        let texts: Option<Vec<Option<String>>> = row.get(at);
        let json: Option<Vec<Option<String>>> = row.get(at + 1);
        Self {
            texts: texts.unwrap_or_default(),
            json: json.unwrap_or_default(),
        }
    }
}

/// The JSON object of `columns` (indexes into the plan's columns) of a row.
pub(crate) fn values(plan: &TablePlan, json: &[Option<String>], columns: &[usize]) -> RowValues {
    RowValues(
        columns
            .iter()
            .map(|&i| {
                let name = plan.columns[i].name.clone();
                (name, json.get(i).cloned().flatten().map(raw_json))
            })
            .collect(),
    )
}

/// The differing row for a key found on one or both sides; `None` when both copies
/// are equal (which the checksums rule out, but a fetch cannot assume).
pub(crate) fn keyed_row(
    plan: &TablePlan,
    source: Option<Fetched>,
    target: Option<Fetched>,
) -> Option<DiffRow> {
    let all: Vec<usize> = (0..plan.columns.len()).collect();
    let key_of = |f: &Fetched| values(plan, &f.json, &plan.key);
    match (source, target) {
        (None, None) => None,
        (Some(s), None) => Some(DiffRow {
            kind: RowDiffKind::OnlyInSource,
            key: Some(key_of(&s)),
            source: Some(values(plan, &s.json, &all)),
            target: None,
            changed_columns: Vec::new(),
            count: None,
        }),
        (None, Some(t)) => Some(DiffRow {
            kind: RowDiffKind::OnlyInTarget,
            key: Some(key_of(&t)),
            source: None,
            target: Some(values(plan, &t.json, &all)),
            changed_columns: Vec::new(),
            count: None,
        }),
        (Some(s), Some(t)) => {
            let changed: Vec<String> = all
                .iter()
                .filter(|&&i| s.texts.get(i) != t.texts.get(i))
                .map(|&i| plan.columns[i].name.clone())
                .collect();
            if changed.is_empty() {
                return None;
            }
            Some(DiffRow {
                kind: RowDiffKind::Changed,
                key: Some(key_of(&s)),
                source: Some(values(plan, &s.json, &all)),
                target: Some(values(plan, &t.json, &all)),
                changed_columns: changed,
                count: None,
            })
        }
    }
}
