//! Table diff: which rows one instance has that another lacks, and which differ.
//!
//! Used before copying data back into a master: the user compares a table of the
//! temporary instance (source) with the master's (target) and sees every row only in
//! the source, only in the target, or changed, with the changed columns.
//!
//! # How
//! Both sides are read in `REPEATABLE READ READ ONLY` transactions (one snapshot each;
//! nothing can be written). Rows are matched by the primary key, else by a unique index
//! on NOT NULL columns ([`keyed`]); a table with neither is compared as a multiset of
//! whole rows ([`multiset`]) with a warning. Almost all work happens inside PostgreSQL:
//! each side combines 64-bit hashes of its rows per key range, the checksums are
//! compared, and only ranges that differ are looked at more closely, so a large table
//! with few differences costs about one scan per side and little network traffic.
//! Both sides are queried at the same time.
//!
//! # What "equal" means
//! Two values are equal when PostgreSQL writes them as the same text (with the session
//! settings fixed in [`session`], e.g. `TimeZone = UTC`). So `1.0` and `1.00` differ
//! (numeric keeps its scale, and so would an application reading it), `0` and `-0`
//! differ, `NaN` equals `NaN`, NULL equals NULL and differs from every value including
//! `''`, two `timestamptz` equal as instants are equal whatever zone wrote them, `jsonb`
//! compares normalized while `json` compares as written, `interval '1 day'` differs
//! from `interval '24 hours'`. One exception: `character(n)` ignores trailing spaces,
//! as PostgreSQL does. Keys follow the same rule: a key `1.0` in one table and `1.00`
//! in the other are two different keys.
//!
//! # Using it
//! [`diff_tables`] takes two connected clients that are not inside a transaction, a
//! [`DiffRequest`] and a [`DiffSink`]; it returns a [`DiffReport`] (serializable as the
//! JSON of DESIGN.md) or a [`DiffError`] with a [`DiffError::hint`]. Dropping the future
//! mid-way leaves the clients inside the diff's read-only transaction: drop them too.
//!
//! # Layout
//! - [`request`]: what to compare; [`report`]: what comes back, and the row sink.
//! - [`catalog`]: columns, key, schema differences of a table pair.
//! - [`split`]: key ranges and buckets; [`sql`]: the statements for one side.
//! - [`keyed`], [`multiset`]: the two comparison strategies; [`collect`]: rows out.
//! - [`session`]: read-only transactions, settings, cursors.

mod catalog;
mod collect;
mod error;
mod keyed;
mod multiset;
mod report;
mod request;
mod session;
mod split;
mod sql;

pub use error::{DiffError, Side};
pub use report::{
    DiffReport, DiffRow, DiffSink, MissingTable, NoSink, RowDiffKind, RowValues, SchemaDifference,
    TableDiff,
};
pub use request::{DEFAULT_LIMIT, DiffRequest, SchemaPair, TableName, TablePair, Tuning};

use tokio_postgres::Client;

use crate::diff::collect::Collector;
use crate::diff::session::{Conn, both};
use crate::diff::sql::RowHash;

/// Compares the tables of `request` between `source` and `target`, handing every
/// differing row to `sink` as it is found and returning the per-table summary (with
/// at most `request.limit` rows per table).
///
/// Each client must not be inside a transaction: the diff opens (and rolls back) its
/// own read-only one on each. The two sides are queried concurrently.
///
/// ```no_run
/// # async fn f(src: &tokio_postgres::Client, dst: &tokio_postgres::Client)
/// #     -> Result<(), lifeboat_migrate::diff::DiffError> {
/// use lifeboat_migrate::diff::{DiffRequest, DiffRow, TablePair, diff_tables};
///
/// let request = DiffRequest::tables([TablePair::parse("public.orders=restored.orders")?]);
/// // `--output json`: one line per differing row, as found.
/// let mut sink = |table: &str, row: &DiffRow| {
///     println!("{}", serde_json::json!({ "table": table, "row": row }));
///     Ok(())
/// };
/// let report = diff_tables(src, dst, &request, &mut sink).await?;
/// for t in &report.tables {
///     let verdict = if t.identical { "identical" } else { "differs" };
///     println!("{}: {verdict} ({} only in source, {} only in target, {} changed)",
///         t.table, t.only_in_source, t.only_in_target, t.changed);
/// }
/// # Ok(()) }
/// ```
pub async fn diff_tables<S: DiffSink + Send>(
    source: &Client,
    target: &Client,
    request: &DiffRequest,
    sink: &mut S,
) -> Result<DiffReport, DiffError> {
    diff_in_snapshots(source, None, target, None, request, sink).await
}

/// Like [`diff_tables`], with each side reading the snapshot named (as
/// `pg_export_snapshot()` returned it, on a session whose transaction is still open)
/// instead of a fresh one: a migration's repair compares the source as the task's
/// snapshot shows it with the target as the repairing transaction sees it.
pub(crate) async fn diff_in_snapshots<S: DiffSink + Send>(
    source: &Client,
    source_snapshot: Option<&str>,
    target: &Client,
    target_snapshot: Option<&str>,
    request: &DiffRequest,
    sink: &mut S,
) -> Result<DiffReport, DiffError> {
    if request.tables.is_empty() && request.schemas.is_empty() {
        return Err(DiffError::InvalidRequest(
            "name at least one table or schema to compare".into(),
        ));
    }
    let src = Conn::new(source, Side::Source);
    let dst = Conn::new(target, Side::Target);
    let result = match both(src.begin(source_snapshot), dst.begin(target_snapshot)).await {
        Ok(_) => run(&src, &dst, request, sink).await,
        Err(e) => Err(e),
    };
    // Always end both transactions, also after an error, so the caller gets its
    // connections back idle.
    let ended = both(src.end(), dst.end()).await;
    let report = result?;
    ended?;
    Ok(report)
}

async fn run(
    src: &Conn<'_>,
    dst: &Conn<'_>,
    request: &DiffRequest,
    sink: &mut (dyn DiffSink + Send),
) -> Result<DiffReport, DiffError> {
    let hash = if request.tuning.portable_hash {
        RowHash::Md5
    } else {
        row_hash(src, dst).await?
    };
    let (pairs, missing_tables) = expand(src, dst, request).await?;
    // Every table is looked up before any is compared, so a typo fails at once.
    let mut plans = Vec::new();
    for pair in &pairs {
        plans.push(catalog::plan(src, dst, &pair.source, &pair.target).await?);
    }
    let mut tables = Vec::new();
    for plan in &plans {
        let name = if plan.source.name == plan.target.name {
            plan.source.name.to_string()
        } else {
            format!("{}={}", plan.source.name, plan.target.name)
        };
        tracing::info!(table = %name, keyed = !plan.key.is_empty(), "comparing table");
        let mut out = Collector::new(name, request.limit, sink);
        if plan.key.is_empty() {
            multiset::run(plan, src, dst, hash, request.tuning, &mut out).await?;
        } else {
            keyed::Keyed::new(plan, src, dst, hash, request.tuning, &mut out)
                .run()
                .await?;
        }
        let table = TableDiff {
            identical: out.only_in_source == 0
                && out.only_in_target == 0
                && out.changed == 0
                && plan.schema_differences.is_empty(),
            table: out.table,
            source_table: plan.source.name.to_string(),
            target_table: plan.target.name.to_string(),
            keyed: !plan.key.is_empty(),
            key: plan
                .key
                .iter()
                .map(|&i| plan.columns[i].name.clone())
                .collect(),
            only_in_source: out.only_in_source,
            only_in_target: out.only_in_target,
            changed: out.changed,
            compared_columns: plan.columns.iter().map(|c| c.name.clone()).collect(),
            schema_differences: plan.schema_differences.clone(),
            warnings: plan.warnings.clone(),
            rows: out.rows,
            rows_truncated: out.truncated,
        };
        sink.table_done(&table)?;
        tables.push(table);
    }
    Ok(DiffReport {
        tables,
        missing_tables,
    })
}

/// The row hash both sides compute alike: PostgreSQL's own when both servers agree on
/// test values (same CPU architecture), md5 of the text form otherwise.
async fn row_hash(src: &Conn<'_>, dst: &Conn<'_>) -> Result<RowHash, DiffError> {
    let (a, b) = both(probe(src), probe(dst)).await?;
    Ok(match (a, b) {
        (Some(a), Some(b)) if a.1 == b.1 => RowHash::Native {
            v14: a.0 >= 140_000 && b.0 >= 140_000,
        },
        _ => RowHash::Md5,
    })
}

/// The server's version and its hashes of test values; `None` before version 11,
/// which lacks the 64-bit hash functions.
async fn probe(c: &Conn<'_>) -> Result<Option<(i32, Vec<i64>)>, DiffError> {
    let ctx = "probing the row hash";
    let version = c
        .query(
            ctx,
            "SELECT current_setting('server_version_num')::int",
            &[],
        )
        .await?;
    let version: i32 = version.first().map_or(0, |r| r.get(0));
    if version < 110_000 {
        return Ok(None);
    }
    let rows = c
        .query(
            ctx,
            "SELECT hashtextextended('lifeboat diff', 0), hashint8extended(42, 7)",
            &[],
        )
        .await?;
    let values = rows
        .first()
        .map(|r| vec![r.get::<_, i64>(0), r.get::<_, i64>(1)])
        .unwrap_or_default();
    Ok(Some((version, values)))
}

/// The explicit table pairs, then those of each schema pair; tables of a schema that
/// exist on one side only are returned apart.
async fn expand(
    src: &Conn<'_>,
    dst: &Conn<'_>,
    request: &DiffRequest,
) -> Result<(Vec<TablePair>, Vec<MissingTable>), DiffError> {
    let mut pairs = request.tables.clone();
    let mut missing = Vec::new();
    for schema in &request.schemas {
        let (s, t) = both(
            catalog::schema_tables(src, &schema.source),
            catalog::schema_tables(dst, &schema.target),
        )
        .await?;
        let not_found = |side, name: &str| DiffError::TableNotFound {
            side,
            table: format!("schema {name}"),
        };
        let s = s.ok_or_else(|| not_found(Side::Source, &schema.source))?;
        let t = t.ok_or_else(|| not_found(Side::Target, &schema.target))?;
        for name in &s {
            if t.contains(name) {
                pairs.push(TablePair {
                    source: TableName::new(&schema.source, name),
                    target: TableName::new(&schema.target, name),
                });
            } else {
                missing.push(MissingTable {
                    table: TableName::new(&schema.source, name).to_string(),
                    missing_on: Side::Target,
                });
            }
        }
        for name in t.iter().filter(|n| !s.contains(n)) {
            missing.push(MissingTable {
                table: TableName::new(&schema.target, name).to_string(),
                missing_on: Side::Source,
            });
        }
    }
    Ok((pairs, missing))
}
