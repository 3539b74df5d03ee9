//! The `repair` conflict mode: an existing target table is made to hold the source's
//! rows where the two differ, and nothing else is touched. Its cost follows the number
//! of differences, not the size of the table.
//!
//! Inside the table's target transaction (see [`crate::migration::apply`]):
//! 1. The table is locked against writers (readers go on) and the transaction's
//!    snapshot is exported, so what is compared is exactly what will be changed.
//! 2. The diff engine ([`crate::diff`]) compares the source, in the task's snapshot,
//!    with the target, in that snapshot, on two connections of its own: range
//!    checksums computed inside each server, descending only into ranges that
//!    differ. The key of every differing row goes to a temporary file, so memory stays
//!    bounded however many rows differ.
//! 3. The source rows of the keys only in the source or changed are copied, a batch of
//!    keys at a time, into a staging table with `COPY`: their values arrive exactly as
//!    the source holds them.
//! 4. The target rows about to change are saved into a new table (named in the
//!    report); then one `UPDATE` gives the changed rows the source's values, one
//!    `INSERT` adds the missing rows and, with `delete_rows_only_in_target`, batches of
//!    `DELETE` remove the rows whose key the source lacks (saved too).
//!
//! The commit comes with the table's journal entry, like every mode: after a crash the
//! table is repaired or as it was, and a resumed task knows which.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Seek, Write};

use serde_json::value::RawValue;

use crate::diff::{DiffRow, DiffSink, RowDiffKind};
use crate::migration::apply::{
    TableWork, create_staging, key_matches, overriding, save_staged_matches,
};
use crate::migration::conn::{Session, connect};
use crate::migration::copy::{self, Copied};
use crate::migration::names::{column_list, display_path, qualified, quote_ident, quote_literal};
use crate::migration::target::TargetTable;
use crate::migration::verify::compare_pair;
use crate::migration::{CommitCheck, MigrationError, ProgressEvent, Side, TableOutcome, ddl};

/// Keys per statement when source rows are fetched and target rows deleted: large
/// enough that round trips do not dominate, small enough for one index lookup each.
const KEYS_PER_BATCH: usize = 2000;

/// Repairs the existing table `existing` (see the module documentation).
pub(crate) async fn repair(
    w: &TableWork<'_>,
    src: &Session,
    tgt: &Session,
    existing: &TargetTable,
    out: &mut TableOutcome,
) -> Result<(), MigrationError> {
    let m = &w.table.mapping;
    let table = qualified(&m.target.schema, &m.target.table);
    // The table's own rows, as the diff compares them: an inheritance parent's
    // children are tables of their own, a partitioned table's rows are its leaves'.
    let only = if existing.relkind == 'p' { "" } else { "ONLY " };
    let delete = w.task.spec.delete_rows_only_in_target;
    // Writers wait from here to the commit: the rows compared below are the rows
    // changed, and the saved rows are exactly the ones replaced.
    tgt.execute(
        "locking the target table against writes",
        &format!("LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE"),
    )
    .await?;
    let snapshot: String = tgt
        .query_one(
            "exporting the repair's snapshot",
            "SELECT pg_export_snapshot()",
            &[],
        )
        .await?
        .get(0);
    let spill = find_differences(w, &snapshot, delete).await?;
    let same_key = {
        let (mut a, mut b) = (spill.key.clone(), existing.key.clone());
        a.sort();
        b.sort();
        a == b
    };
    if !same_key {
        return Err(MigrationError::Table {
            table: m.label(),
            reason: format!(
                "the rows were matched by ({}) but the target table's key is ({})",
                spill.key.join(", "),
                existing.key.join(", ")
            ),
            hint: "give the source and target tables the same primary key, or use --conflict overwrite".into(),
        });
    }
    out.rows_only_in_target = spill.only_in_target;
    (w.progress)(ProgressEvent::TableBuilding { key: m.key.clone() });

    let columns = w.def.copied_columns();
    let cols = column_list(&columns);
    create_staging(tgt, &table, &cols).await?;
    let copied = stage_source_rows(w, src, tgt, &spill.key, spill.fetch, spill.to_fetch).await?;
    out.rows_copied = copied.rows;
    out.bytes_copied = copied.bytes;
    tgt.execute("analyzing the staging table", "ANALYZE pg_temp.lb_stage")
        .await?;

    let key = &spill.key;
    let matches = key_matches(key);
    let saving = spill.changed > 0 || (delete && spill.only_in_target > 0);
    let mut saved = None;
    if saving {
        let (name, _) = save_staged_matches(
            w,
            tgt,
            &format!("{only}{table}"),
            key,
            "_repaired_",
            "as they were before the repair changed them (conflict mode repair)",
        )
        .await?;
        out.kept_table = Some(display_path(&[&m.target.schema, &name]));
        saved = Some(qualified(&m.target.schema, &name));
    }

    let updates: Vec<String> = columns
        .iter()
        .filter(|c| !key.contains(c))
        .map(|c| format!("{0} = s.{0}", quote_ident(c)))
        .collect();
    if !updates.is_empty() && spill.changed > 0 {
        out.rows_updated = tgt
            .count(
                "updating the rows that differ",
                &format!(
                    "UPDATE {only}{table} t SET {} FROM pg_temp.lb_stage s WHERE {matches}",
                    updates.join(", ")
                ),
                &[],
            )
            .await?;
    }
    let overriding = overriding(existing, &columns);
    out.rows_inserted = tgt
        .count(
            "inserting the missing rows",
            &format!(
                "INSERT INTO {table} ({cols}){overriding} SELECT {cols} FROM pg_temp.lb_stage s \
                 WHERE NOT EXISTS (SELECT 1 FROM {only}{table} t WHERE {matches})"
            ),
            &[],
        )
        .await?;
    if let (Some(saved), Some(keys)) = (&saved, spill.delete) {
        out.rows_deleted = delete_rows(tgt, only, &table, saved, key, keys).await?;
    }
    let remaining: i64 = tgt
        .query_one(
            "counting the table's rows",
            &format!("SELECT count(*) FROM {only}{table}"),
            &[],
        )
        .await?
        .get(0);
    out.rows_untouched = (remaining.max(0) as u64)
        .saturating_sub(out.rows_inserted)
        .saturating_sub(out.rows_updated);
    if w.task.spec.verify {
        (w.progress)(ProgressEvent::TableChecking { key: m.key.clone() });
        let check = Check {
            only,
            table: &table,
            columns: &columns,
            matches: &matches,
            delete,
            remaining: remaining.max(0) as u64,
            only_in_target: spill.only_in_target,
            staged: copied.rows,
        };
        out.checked = Some(check.run(w, src, tgt, out).await?);
    }
    Ok(())
}

/// The repair's own check, before the commit: every row it wrote holds the source's
/// values, and (with `delete_rows_only_in_target`) every row it was to delete is
/// gone. The other rows were found equal to the source's by the comparison that
/// chose what to repair, in the snapshot of this transaction, under a lock that keeps
/// writers out to the commit: together, what a second comparison of the whole table
/// would prove, at the cost of the rows repaired.
struct Check<'a> {
    only: &'a str,
    table: &'a str,
    columns: &'a [String],
    matches: &'a str,
    delete: bool,
    remaining: u64,
    only_in_target: u64,
    staged: u64,
}

impl Check<'_> {
    async fn run(
        &self,
        w: &TableWork<'_>,
        src: &Session,
        tgt: &Session,
        out: &TableOutcome,
    ) -> Result<CommitCheck, MigrationError> {
        let m = &w.table.mapping;
        let (only, table) = (self.only, self.table);
        // Whole rows compared as PostgreSQL writes them, as the diff compares them:
        // columns of types without an equality operator compare too.
        let row = |alias: &str| {
            let cols: Vec<String> = self
                .columns
                .iter()
                .map(|c| format!("{alias}.{}", quote_ident(c)))
                .collect();
            format!("ROW({})::text", cols.join(", "))
        };
        let wrong = tgt
            .query_one(
                "checking the repaired rows",
                &format!(
                    "SELECT count(*) FROM pg_temp.lb_stage s WHERE NOT EXISTS \
                     (SELECT 1 FROM {only}{table} t WHERE {} AND {} = {})",
                    self.matches,
                    row("t"),
                    row("s")
                ),
                &[],
            )
            .await?
            .get::<_, i64>(0)
            .max(0) as u64;
        let source_table = qualified(&m.source.schema, &m.source.table);
        let source_only = if w.table.partitioned { "" } else { "ONLY " };
        let source_rows = src
            .query_one(
                "counting the source's rows",
                &format!("SELECT count(*) FROM {source_only}{source_table}"),
                &[],
            )
            .await?
            .get::<_, i64>(0)
            .max(0) as u64;
        let repaired = out.rows_updated + out.rows_inserted;
        let deleted_all = !self.delete || out.rows_deleted == self.only_in_target;
        let counts_match = !self.delete || source_rows == self.remaining;
        let passed = wrong == 0 && deleted_all && counts_match;
        let detail = if passed {
            format!(
                "{source_rows} rows in source {}, {} in target {}: the comparison that chose what to repair found every other row equal to the source's, under a lock kept to the commit; checked before the commit, the {repaired} rows the repair wrote hold the source's values{}",
                m.source,
                self.remaining,
                m.target,
                if self.delete {
                    format!(
                        " and the {} rows only in the target are gone",
                        out.rows_deleted
                    )
                } else {
                    format!(
                        "; {} rows only in the target were kept",
                        self.only_in_target
                    )
                }
            )
        } else {
            format!(
                "checked before the commit, {wrong} of the {} staged source rows are not in the target as the source holds them, {} of {} rows only in the target were deleted; compared row by row after the commit",
                self.staged,
                out.rows_deleted,
                if self.delete { self.only_in_target } else { 0 }
            )
        };
        Ok(CommitCheck {
            source_rows,
            target_rows: self.remaining,
            passed,
            detail,
        })
    }
}

/// The differing keys, spilled to temporary files, with the counts of each kind.
struct Spill {
    /// The columns rows were matched by.
    key: Vec<String>,
    /// Keys whose source row is fetched: only in the source, or changed.
    fetch: File,
    to_fetch: u64,
    changed: u64,
    only_in_target: u64,
    /// Keys only in the target, when they are to be deleted.
    delete: Option<File>,
}

/// Writes the keys of differing rows to the spill files as the diff finds them.
struct KeySink {
    fetch: BufWriter<File>,
    delete: Option<BufWriter<File>>,
}

impl DiffSink for KeySink {
    fn row(&mut self, _table: &str, row: &DiffRow) -> std::io::Result<()> {
        let Some(key) = &row.key else {
            return Err(std::io::Error::other(
                "a row without a key cannot be repaired",
            ));
        };
        let out = match row.kind {
            RowDiffKind::OnlyInSource | RowDiffKind::Changed => &mut self.fetch,
            RowDiffKind::OnlyInTarget => match &mut self.delete {
                Some(d) => d,
                None => return Ok(()),
            },
        };
        serde_json::to_writer(&mut *out, key)?;
        out.write_all(b"\n")
    }
}

/// Runs the diff of the table pair: the source in the task's snapshot, the target in
/// `target_snapshot`.
async fn find_differences(
    w: &TableWork<'_>,
    target_snapshot: &str,
    delete: bool,
) -> Result<Spill, MigrationError> {
    let m = &w.table.mapping;
    let spill_err = |e: std::io::Error| MigrationError::Table {
        table: m.label(),
        reason: format!("cannot write the differing keys to a temporary file: {e}"),
        hint: "free space in the server's temporary directory and start the task again".into(),
    };
    let (src, tgt) = tokio::try_join!(
        connect(&w.task.source, Side::Source, &m.source.database),
        connect(&w.task.target, Side::Target, &m.target.database),
    )?;
    let mut sink = KeySink {
        fetch: BufWriter::new(tempfile::tempfile().map_err(spill_err)?),
        delete: if delete {
            Some(BufWriter::new(tempfile::tempfile().map_err(spill_err)?))
        } else {
            None
        },
    };
    let d = compare_pair(
        (&src.client, Some(w.snapshot)),
        (&tgt.client, Some(target_snapshot)),
        m,
        0,
        &mut sink,
        "finding the rows that differ",
    )
    .await?;
    if !d.keyed {
        return Err(MigrationError::Table {
            table: m.label(),
            reason: "the table has no primary key or unique NOT NULL key to match rows by".into(),
            hint: "add a primary key, or use --conflict replace".into(),
        });
    }
    let rewind = |w: BufWriter<File>| -> std::io::Result<File> {
        let mut f = w.into_inner().map_err(|e| e.into_error())?;
        f.rewind()?;
        Ok(f)
    };
    Ok(Spill {
        key: d.key,
        fetch: rewind(sink.fetch).map_err(spill_err)?,
        to_fetch: d.only_in_source + d.changed,
        changed: d.changed,
        only_in_target: d.only_in_target,
        delete: match sink.delete {
            Some(f) => Some(rewind(f).map_err(spill_err)?),
            None => None,
        },
    })
}

/// Reads the spilled keys back, [`KEYS_PER_BATCH`] at a time, as JSON arrays.
struct Batches {
    lines: std::io::Lines<BufReader<File>>,
}

impl Batches {
    fn new(file: File) -> Self {
        Self {
            lines: BufReader::new(file).lines(),
        }
    }

    fn next_batch(&mut self) -> std::io::Result<Option<String>> {
        let mut batch = String::from("[");
        let mut n = 0;
        while n < KEYS_PER_BATCH {
            let Some(line) = self.lines.next() else { break };
            let line = line?;
            // Each line is one key object, as the diff wrote it.
            let key: &RawValue = serde_json::from_str(&line)?;
            if n > 0 {
                batch.push(',');
            }
            batch.push_str(key.get());
            n += 1;
        }
        batch.push(']');
        Ok((n > 0).then_some(batch))
    }
}

fn batch_err(e: std::io::Error) -> MigrationError {
    MigrationError::Worker(format!("cannot read the differing keys back: {e}"))
}

/// `(k1, k2) IN (SELECT k1, k2 FROM jsonb_populate_recordset(NULL::table, keys))`.
fn key_filter(key: &[String], table: &str, keys: &str) -> String {
    let cols = column_list(key);
    format!("({cols}) IN (SELECT {cols} FROM jsonb_populate_recordset(NULL::{table}, {keys}))")
}

/// Copies the source rows of the spilled keys into `pg_temp.lb_stage`.
async fn stage_source_rows(
    w: &TableWork<'_>,
    src: &Session,
    tgt: &Session,
    key: &[String],
    keys: File,
    expected: u64,
) -> Result<Copied, MigrationError> {
    let m = &w.table.mapping;
    let columns = w.def.copied_columns();
    let binary = w.def.binary_copy();
    let source = qualified(&m.source.schema, &m.source.table);
    let only = if w.table.partitioned { "" } else { "ONLY " };
    let in_sql = ddl::copy_in("pg_temp", "lb_stage", &columns, binary, true);
    let mut batches = Batches::new(keys);
    let mut total = Copied::default();
    let estimated_bytes = w
        .table
        .table_bytes
        .checked_div(w.table.estimated_rows)
        .map_or(0, |per_row| per_row * expected);
    while let Some(batch) = batches.next_batch().map_err(batch_err)? {
        let filter = key_filter(key, &source, &format!("{}::jsonb", quote_literal(&batch)));
        let out_sql = format!(
            "COPY (SELECT {} FROM {only}{source} WHERE {filter}) TO STDOUT (FORMAT {})",
            column_list(&columns),
            if binary { "binary" } else { "text" }
        );
        let before = total;
        let mut report = |c: Copied| {
            (w.progress)(ProgressEvent::TableCopying {
                key: m.key.clone(),
                rows: before.rows + c.rows,
                bytes: before.bytes + c.bytes,
                estimated_rows: expected,
                estimated_bytes,
            })
        };
        let c = copy::stream(src, tgt, &out_sql, &in_sql, binary, None, &mut report).await?;
        total.rows += c.rows;
        total.bytes += c.bytes;
    }
    Ok(total)
}

/// Deletes the target rows of the spilled keys, saving them into `saved` first.
async fn delete_rows(
    tgt: &Session,
    only: &str,
    table: &str,
    saved: &str,
    key: &[String],
    keys: File,
) -> Result<u64, MigrationError> {
    let mut batches = Batches::new(keys);
    let mut deleted = 0;
    let filter = key_filter(key, table, "$1::text::jsonb");
    let sql = format!(
        "WITH gone AS (DELETE FROM {only}{table} WHERE {filter} RETURNING *) \
         INSERT INTO {saved} SELECT * FROM gone"
    );
    while let Some(batch) = batches.next_batch().map_err(batch_err)? {
        deleted += tgt
            .count("deleting the rows only in the target", &sql, &[&batch])
            .await?;
    }
    Ok(deleted)
}

/// Rows of each kind shown per table in the pre-check's preview.
const PREVIEW_ROWS: usize = 3;

/// The pre-check item that says, per table, what a repair would change now: rows to
/// insert, to update and only in the target (kept or deleted), with a few of each.
/// It compares the tables as they are (read only); the repair itself compares them
/// again when it runs.
pub(crate) async fn preview(
    task: &crate::migration::MigrationTask,
    tables: &[&crate::migration::mapping::SourceTable],
) -> crate::migration::PrecheckItem {
    use crate::migration::PrecheckItem;
    let delete = task.spec.delete_rows_only_in_target;
    let mut lines = Vec::new();
    let mut problems = Vec::new();
    for t in tables {
        let m = &t.mapping;
        match preview_table(task, m).await {
            Ok(d) => lines.push(describe(&m.target.to_string(), &d, delete)),
            Err(e) => problems.push(format!("{}: {e}", m.target)),
        }
    }
    if !problems.is_empty() {
        return PrecheckItem::failed(
            "repair_preview",
            format!("cannot compare {}", problems.join("; ")),
            "fix what the message names (keys, columns, privileges) and run the pre-check again",
        );
    }
    PrecheckItem::passed("repair_preview", lines.join("\n"))
}

async fn preview_table(
    task: &crate::migration::MigrationTask,
    m: &crate::migration::TableMapping,
) -> Result<crate::diff::TableDiff, MigrationError> {
    let (src, tgt) = tokio::try_join!(
        connect(&task.source, Side::Source, &m.source.database),
        connect(&task.target, Side::Target, &m.target.database),
    )?;
    let mut sample = Sample::default();
    let mut d = compare_pair(
        (&src.client, None),
        (&tgt.client, None),
        m,
        0,
        &mut sample,
        "the comparison",
    )
    .await?;
    d.rows = sample.rows;
    Ok(d)
}

/// Keeps the first [`PREVIEW_ROWS`] rows of each kind.
#[derive(Default)]
struct Sample {
    rows: Vec<DiffRow>,
    seen: [usize; 3],
}

impl DiffSink for Sample {
    fn row(&mut self, _table: &str, row: &DiffRow) -> std::io::Result<()> {
        let i = match row.kind {
            RowDiffKind::OnlyInSource => 0,
            RowDiffKind::Changed => 1,
            RowDiffKind::OnlyInTarget => 2,
        };
        if self.seen[i] < PREVIEW_ROWS {
            self.seen[i] += 1;
            self.rows.push(row.clone());
        }
        Ok(())
    }
}

/// One table's line of the preview, e.g. `public.orders: 2 rows to insert (id=7,
/// id=9), 1 to update (id=3: total 10.00 -> 12.50), 0 only in the target`.
fn describe(table: &str, d: &crate::diff::TableDiff, delete: bool) -> String {
    if d.only_in_source == 0 && d.changed == 0 && d.only_in_target == 0 {
        return format!("{table}: no row differs; nothing will change");
    }
    // A few rows of one kind in parentheses, with "..." when there are more.
    let sample = |kind: RowDiffKind, total: u64| -> String {
        let rows: Vec<String> = d
            .rows
            .iter()
            .filter(|r| r.kind == kind)
            .map(describe_row)
            .collect();
        if rows.is_empty() {
            return String::new();
        }
        let more = if total > rows.len() as u64 {
            ", ..."
        } else {
            ""
        };
        format!(" ({}{more})", rows.join("; "))
    };
    let target_only = if delete {
        "to delete (saved first)"
    } else {
        "only in the target, kept (--delete-rows-only-in-target deletes them)"
    };
    format!(
        "{table}: {} rows to insert{}, {} to update (saved first){}, {} {target_only}{}; every other row stays as it is",
        d.only_in_source,
        sample(RowDiffKind::OnlyInSource, d.only_in_source),
        d.changed,
        sample(RowDiffKind::Changed, d.changed),
        d.only_in_target,
        sample(RowDiffKind::OnlyInTarget, d.only_in_target),
    )
}

/// `id=3: total 10.00 -> 12.50` for a changed row, `id=7` otherwise; values exactly as
/// PostgreSQL wrote them.
fn describe_row(row: &DiffRow) -> String {
    let value = |v: Option<&Option<Box<RawValue>>>| match v {
        Some(Some(v)) => v.get().to_string(),
        _ => "NULL".to_string(),
    };
    let key = row
        .key
        .as_ref()
        .map(|k| {
            k.0.iter()
                .map(|(name, v)| format!("{name}={}", value(Some(v))))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    if row.kind != RowDiffKind::Changed {
        return key;
    }
    let changes: Vec<String> = row
        .changed_columns
        .iter()
        .map(|c| {
            let get = |side: &Option<crate::diff::RowValues>| {
                value(
                    side.as_ref()
                        .and_then(|v| v.0.iter().find(|(n, _)| n == c).map(|(_, v)| v)),
                )
            };
            format!("{c} {} -> {}", get(&row.target), get(&row.source))
        })
        .collect();
    format!("{key}: {}", changes.join(", "))
}
