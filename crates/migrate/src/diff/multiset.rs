//! Comparison of a table without a usable key, as a multiset of whole rows: how many
//! copies of each distinct row each side holds.
//!
//! Without a key there is no order to cut ranges by, so rows are put in buckets by a
//! hash of their text form (the same row lands in the same bucket on both sides). Each
//! side returns `count(*)` and a sum of a second hash per bucket; only buckets whose
//! sums differ are read again, grouped by distinct row, and their counts compared. That
//! is two scans of each table, and few rows cross the network when little differs.

use crate::diff::DiffError;
use crate::diff::catalog::TablePlan;
use crate::diff::collect::{Collector, values};
use crate::diff::report::{DiffRow, RowDiffKind};
use crate::diff::request::Tuning;
use crate::diff::session::{Conn, Cursor, both};
use crate::diff::sql::{Param, Query, RowHash, TableSql};

pub(crate) async fn run(
    plan: &TablePlan,
    src: &Conn<'_>,
    dst: &Conn<'_>,
    hash: RowHash,
    tuning: Tuning,
    out: &mut Collector<'_>,
) -> Result<(), DiffError> {
    let (ss, ts) = (
        TableSql::new(plan, &plan.source, hash),
        TableSql::new(plan, &plan.target, hash),
    );
    let rows = plan.source.estimated_rows.max(plan.target.estimated_rows);
    let wanted = (rows / tuning.rows_per_bucket.max(1) as f64).ceil() as u64;
    let buckets = wanted
        .clamp(1, tuning.max_buckets_per_scan.max(1))
        .next_power_of_two();
    let mask = i64::try_from(buckets - 1).unwrap_or(0);

    let (qs, qt) = (checksum_query(&ss, mask), checksum_query(&ts, mask));
    let (ps, pt) = (qs.params(), qt.params());
    let ctx = "computing row-hash bucket checksums";
    let (mut cs, mut ct) =
        both(src.cursor(ctx, &qs.sql, &ps), dst.cursor(ctx, &qt.sql, &pt)).await?;
    let mut differing = Vec::new();
    let (mut a, mut b) = both(cs.next(), ct.next()).await?;
    loop {
        let key = |r: &Option<tokio_postgres::Row>| {
            r.as_ref().map(|r| {
                (
                    r.get::<_, i64>(0),
                    r.get::<_, i64>(1),
                    r.get::<_, String>(2),
                )
            })
        };
        match (key(&a), key(&b)) {
            (None, None) => break,
            (Some(x), Some(y)) if x.0 == y.0 => {
                if x != y {
                    differing.push(x.0);
                }
                (a, b) = both(cs.next(), ct.next()).await?;
            }
            (Some(x), y) if y.as_ref().is_none_or(|y| x.0 < y.0) => {
                differing.push(x.0);
                a = cs.next().await?;
            }
            (_, y) => {
                differing.extend(y.map(|y| y.0));
                b = ct.next().await?;
            }
        }
    }
    if differing.is_empty() {
        return Ok(());
    }

    let (qs, qt) = (
        rows_query(&ss, mask, &differing),
        rows_query(&ts, mask, &differing),
    );
    let (ps, pt) = (qs.params(), qt.params());
    let ctx = "reading the rows of differing buckets";
    let (cs, ct) = both(src.cursor(ctx, &qs.sql, &ps), dst.cursor(ctx, &qt.sql, &pt)).await?;
    let (mut gs, mut gt) = (Distinct::new(cs), Distinct::new(ct));
    both(gs.fill(), gt.fill()).await?;
    loop {
        // Rows come ordered by (bucket, text form) on both sides: a plain merge.
        let order = match (gs.head(), gt.head()) {
            (None, None) => break,
            (Some(x), Some(y)) => x.cmp(&y),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
        };
        let (mine, theirs) = match order {
            std::cmp::Ordering::Less => (gs.take().await?, None),
            std::cmp::Ordering::Greater => (None, gt.take().await?),
            std::cmp::Ordering::Equal => both(gs.take(), gt.take()).await?,
        };
        let n_mine = mine.as_ref().map_or(0, |m| m.count);
        let n_theirs = theirs.as_ref().map_or(0, |m| m.count);
        let (kind, row, surplus) = match n_mine.cmp(&n_theirs) {
            std::cmp::Ordering::Equal => continue,
            std::cmp::Ordering::Greater => (RowDiffKind::OnlyInSource, mine, n_mine - n_theirs),
            std::cmp::Ordering::Less => (RowDiffKind::OnlyInTarget, theirs, n_theirs - n_mine),
        };
        let Some(row) = row else { continue };
        let all: Vec<usize> = (0..plan.columns.len()).collect();
        let shown = Some(values(plan, &row.json, &all));
        let (source, target) = match kind {
            RowDiffKind::OnlyInSource => (shown, None),
            _ => (None, shown),
        };
        out.emit(DiffRow {
            kind,
            key: None,
            source,
            target,
            changed_columns: Vec::new(),
            count: Some(surplus),
        })?;
    }
    Ok(())
}

/// The row's text form, computed once per row (`OFFSET 0` keeps the planner from
/// inlining it into each of the two hashes).
fn fenced(sql: &TableSql<'_>, extra: &str) -> String {
    format!(
        "(SELECT {} AS rt{extra} FROM {} OFFSET 0) AS r",
        sql.row_text("t"),
        sql.from("t")
    )
}

fn checksum_query(sql: &TableSql<'_>, mask: i64) -> Query {
    let mut q = Query::default();
    let mask = q.bind(Param::Int(mask));
    q.sql = format!(
        "SELECT s.b, count(*)::int8, sum(s.h)::text FROM \
         (SELECT {} & {mask} AS b, {} AS h FROM {}) AS s GROUP BY s.b ORDER BY s.b",
        sql.hash.text("r.rt", 1),
        sql.hash.text("r.rt", 0),
        fenced(sql, ""),
    );
    q
}

fn rows_query(sql: &TableSql<'_>, mask: i64, buckets: &[i64]) -> Query {
    let mut q = Query::default();
    let mask = q.bind(Param::Int(mask));
    let ids = q.bind(Param::Ints(buckets.to_vec()));
    q.sql = format!(
        "SELECT s.b, s.rt, count(*)::int8, min(s.vj) FROM \
         (SELECT {} & {mask} AS b, r.rt, {} AS vj FROM {}) AS s \
         WHERE s.b = ANY({ids}) GROUP BY s.b, s.rt ORDER BY s.b, s.rt COLLATE \"C\"",
        sql.hash.text("r.rt", 1),
        sql.positional_json("r"),
        fenced(sql, &format!(", {}", sql.positional_select("t"))),
    );
    q
}

/// A distinct row of one side: its copies and its values as JSON.
struct Copies {
    count: u64,
    json: Vec<Option<String>>,
}

/// A cursor over `(bucket, row text, count, json)` rows.
struct Distinct<'c> {
    cursor: Cursor<'c>,
    head: Option<tokio_postgres::Row>,
}

impl<'c> Distinct<'c> {
    fn new(cursor: Cursor<'c>) -> Self {
        Self { cursor, head: None }
    }

    async fn fill(&mut self) -> Result<(), DiffError> {
        if self.head.is_none() {
            self.head = self.cursor.next().await?;
        }
        Ok(())
    }

    fn head(&self) -> Option<(i64, String)> {
        self.head.as_ref().map(|r| (r.get(0), r.get(1)))
    }

    async fn take(&mut self) -> Result<Option<Copies>, DiffError> {
        let copies = self.head.take().map(|r| Copies {
            count: r.get::<_, i64>(2).max(0) as u64,
            json: r
                .get::<_, Option<Vec<Option<String>>>>(3)
                .unwrap_or_default(),
        });
        self.fill().await?;
        Ok(copies)
    }
}
