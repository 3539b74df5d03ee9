//! Verification after the copy: for each migrated table, the row counts on both sides
//! and the content comparison of [`crate::diff`] (checksums of key ranges computed
//! inside each server, descending only into ranges that differ), judged against what
//! the conflict mode promises: a created or replaced table equals the source; after
//! `overwrite` every source row is in the target as is; after `skip-existing` every
//! source key is in the target (rows the target had are kept as they were, and rows
//! only in the target are expected).
//!
//! A table compared inside its own transaction before the commit (a created or
//! replaced table read back, a repair's rewritten rows checked: see
//! [`crate::migration::CommitCheck`]) that matched needs no second pass; one that did
//! not match is compared as above, and the report gives both findings.
//!
//! The diff reads the source in a snapshot of its own, not the copy's: the source of a
//! migration is normally a temporary instance nobody writes to. A target written to
//! while it is verified can show differences the copy did not cause.

use std::collections::HashMap;

use crate::diff::{
    DiffRequest, DiffSink, NoSink, TableDiff, TableName, TablePair, diff_in_snapshots,
};
use crate::migration::conn::{Session, connect};
use crate::migration::mapping::{SourceTable, TableMapping};
use crate::migration::names::qualified;
use crate::migration::report::{Expectation, TableVerification};
use crate::migration::{
    MigrationError, MigrationTask, ProgressEvent, Side, TableAction, TableOutcome,
};
use tokio_util::sync::CancellationToken;

/// Verifies every table of `outcomes` whose rows the task wrote.
pub(crate) async fn verify(
    task: &MigrationTask,
    tables: &[&SourceTable],
    outcomes: &[TableOutcome],
    progress: &(dyn Fn(ProgressEvent) + Send + Sync),
    cancel: &CancellationToken,
) -> Result<Vec<TableVerification>, MigrationError> {
    let mappings: HashMap<_, _> = tables
        .iter()
        .map(|t| (&t.mapping.key, &t.mapping))
        .collect();
    let mut sessions: HashMap<(Side, String), Session> = HashMap::new();
    let mut results = Vec::new();
    for outcome in outcomes {
        let expectation = match outcome.action {
            TableAction::Create | TableAction::Append | TableAction::Replace => {
                Expectation::Identical
            }
            TableAction::SkipExisting => Expectation::SourceKeysPresent,
            TableAction::Overwrite => Expectation::SourceRowsPresent,
            TableAction::Repair if task.spec.delete_rows_only_in_target => Expectation::Identical,
            TableAction::Repair => Expectation::SourceRowsPresent,
            TableAction::Unchanged => continue,
        };
        let Some(m) = mappings.get(&outcome.key) else {
            continue;
        };
        if cancel.is_cancelled() {
            return Err(MigrationError::Cancelled);
        }
        progress(ProgressEvent::Verifying { key: m.key.clone() });
        if let Some(c) = outcome.checked.as_ref().filter(|c| c.passed) {
            results.push(TableVerification {
                key: m.key.clone(),
                table: m.label(),
                expectation,
                source_rows: c.source_rows,
                target_rows: c.target_rows,
                only_in_source: 0,
                only_in_target: 0,
                changed: 0,
                passed: true,
                detail: c.detail.clone(),
            });
            continue;
        }
        for (side, db) in [
            (Side::Source, &m.source.database),
            (Side::Target, &m.target.database),
        ] {
            if let std::collections::hash_map::Entry::Vacant(slot) =
                sessions.entry((side, db.clone()))
            {
                let config = if side == Side::Source {
                    &task.source
                } else {
                    &task.target
                };
                slot.insert(connect(config, side, db).await?);
            }
        }
        let (Some(src), Some(tgt)) = (
            sessions.get(&(Side::Source, m.source.database.clone())),
            sessions.get(&(Side::Target, m.target.database.clone())),
        ) else {
            continue;
        };
        let mut v = verify_table(src, tgt, m, expectation).await?;
        if let Some(c) = &outcome.checked {
            v.detail = format!("{}; {}", c.detail, v.detail);
        }
        results.push(v);
    }
    Ok(results)
}

async fn verify_table(
    src: &Session,
    tgt: &Session,
    m: &TableMapping,
    expectation: Expectation,
) -> Result<TableVerification, MigrationError> {
    let (source_rows, target_rows) =
        tokio::try_join!(count_rows(src, &m.source), count_rows(tgt, &m.target))?;
    let d = compare_pair(
        (&src.client, None),
        (&tgt.client, None),
        m,
        0,
        &mut NoSink,
        "verification",
    )
    .await?;
    let passed = match expectation {
        Expectation::Identical => {
            d.only_in_source == 0
                && d.only_in_target == 0
                && d.changed == 0
                && source_rows == target_rows
        }
        Expectation::SourceKeysPresent => d.only_in_source == 0,
        Expectation::SourceRowsPresent => d.only_in_source == 0 && d.changed == 0,
    };
    let mut detail = format!(
        "{source_rows} rows in source {}, {target_rows} in target {}; {} source rows missing in the target, {} rows only in the target, {} rows with the same key that differ",
        m.source, m.target, d.only_in_source, d.only_in_target, d.changed
    );
    if !d.keyed {
        detail.push_str(" (no key: compared as a multiset of whole rows)");
    }
    for w in &d.warnings {
        detail.push_str(&format!("; {w}"));
    }
    Ok(TableVerification {
        key: m.key.clone(),
        table: m.label(),
        expectation,
        source_rows,
        target_rows,
        only_in_source: d.only_in_source,
        only_in_target: d.only_in_target,
        changed: d.changed,
        passed,
        detail,
    })
}

async fn count_rows(
    s: &Session,
    t: &crate::migration::QualifiedTable,
) -> Result<u64, MigrationError> {
    // The table's own rows, as the copy and the diff read them: an inheritance
    // parent's children are tables of their own. A partitioned table holds no rows
    // itself: its rows are those of its partitions, counted through it.
    let table = qualified(&t.schema, &t.table);
    let partitioned: bool = s
        .query_one(
            "looking up the table",
            "SELECT relkind = 'p' FROM pg_class WHERE oid = $1::text::regclass",
            &[&table],
        )
        .await?
        .get(0);
    let only = if partitioned { "" } else { "ONLY " };
    let sql = format!("SELECT count(*) FROM {only}{table}");
    let row = s.query_one("counting rows", &sql, &[]).await?;
    Ok(row.get::<_, i64>(0).max(0) as u64)
}

/// Compares the table pair of `m` with the diff engine, each side in the snapshot named
/// (or a fresh one), handing every differing row to `sink` and keeping `limit` in the
/// result; `what` names the comparison in errors.
pub(crate) async fn compare_pair<S: DiffSink + Send>(
    source: (&tokio_postgres::Client, Option<&str>),
    target: (&tokio_postgres::Client, Option<&str>),
    m: &TableMapping,
    limit: usize,
    sink: &mut S,
    what: &str,
) -> Result<TableDiff, MigrationError> {
    let request = DiffRequest {
        tables: vec![TablePair {
            source: TableName::new(&m.source.schema, &m.source.table),
            target: TableName::new(&m.target.schema, &m.target.table),
        }],
        limit,
        ..DiffRequest::default()
    };
    let report = diff_in_snapshots(source.0, source.1, target.0, target.1, &request, sink)
        .await
        .map_err(|e| MigrationError::Table {
            table: m.label(),
            reason: format!("{what} failed: {e}"),
            hint: e.hint(),
        })?;
    report
        .tables
        .into_iter()
        .next()
        .ok_or_else(|| MigrationError::Table {
            table: m.label(),
            reason: format!("{what} returned no result"),
            hint: "compare the table with lifeboat diff".into(),
        })
}
