//! Keyed comparison: checksums of key ranges on both sides, descending only into ranges
//! that differ.
//!
//! 1. The key space is cut into buckets of about `rows_per_bucket` rows (see
//!    [`crate::diff::split`]); each side returns, per bucket, its row count and the XOR
//!    of a 64-bit hash of each row (see [`TableSql::row_hash`]). One pass over the
//!    table, done inside PostgreSQL; only these checksums cross the network.
//! 2. A bucket whose checksums differ and that holds few rows is compared key by key: each
//!    side returns `(key, row hash)` for the rows of that bucket (index range scans when
//!    the key can be read in byte order through an index).
//! 3. A differing bucket with many rows is split again and checksummed again.
//! 4. Only keys whose hashes differ are fetched as whole rows, in batches, and compared
//!    column by column.
//!
//! Results stream through cursors, so memory is bounded by the batch sizes, not by the
//! table. Rows are reported in key (byte) order.

use std::collections::HashMap;

use crate::diff::DiffError;
use crate::diff::catalog::TablePlan;
use crate::diff::collect::{Collector, Fetched, keyed_row};
use crate::diff::request::Tuning;
use crate::diff::session::{Conn, Cursor, both};
use crate::diff::split::{Key, Range, Split, int_slices, refine_int};
use crate::diff::sql::{Param, Query, RowHash, TableSql};

/// Differing buckets whose keys are read per query in step 2 when buckets are read by
/// index ranges (one range scan each).
const BUCKETS_PER_KEY_SCAN: usize = 4096;

/// One side: its connection and its SQL.
struct SideCtx<'a> {
    conn: &'a Conn<'a>,
    sql: TableSql<'a>,
    ordered: bool,
    estimated_rows: f64,
}

pub(crate) struct Keyed<'a, 's> {
    plan: &'a TablePlan,
    src: SideCtx<'a>,
    dst: SideCtx<'a>,
    tuning: Tuning,
    out: &'a mut Collector<'s>,
    /// Keys found to differ, waiting to be fetched as whole rows.
    pending: Vec<Key>,
}

impl<'a, 's> Keyed<'a, 's> {
    pub fn new(
        plan: &'a TablePlan,
        src: &'a Conn<'a>,
        dst: &'a Conn<'a>,
        hash: RowHash,
        tuning: Tuning,
        out: &'a mut Collector<'s>,
    ) -> Self {
        let side = |conn, table: &'a crate::diff::catalog::SideTable| SideCtx {
            conn,
            sql: TableSql::new(plan, table, hash),
            ordered: table.ordered_key_index,
            estimated_rows: table.estimated_rows,
        };
        Self {
            plan,
            src: side(src, &plan.source),
            dst: side(dst, &plan.target),
            tuning,
            out,
            pending: Vec::new(),
        }
    }

    /// True when both sides read key ranges through an index: the table is then
    /// checksummed in slices, and differing buckets are read by range.
    fn by_range(&self) -> bool {
        self.src.ordered && self.dst.ordered
    }

    pub async fn run(mut self) -> Result<(), DiffError> {
        let rows = self.src.estimated_rows.max(self.dst.estimated_rows);
        let t = self.tuning;
        // Without an index in byte order every checksum query scans the whole table,
        // so the table is done in one query, with larger buckets if it is huge.
        let (per_bucket, per_query) = if self.by_range() {
            (t.rows_per_bucket, t.buckets_per_query)
        } else {
            let per = (rows / t.max_buckets_per_scan.max(1) as f64).ceil() as u64;
            (t.rows_per_bucket.max(per), u64::MAX)
        };
        if self.plan.integer_key {
            let (s, d) = both(int_bounds(&self.src), int_bounds(&self.dst)).await?;
            let (min, max) = match (s, d) {
                (None, None) => return Ok(()),
                (Some(a), None) | (None, Some(a)) => a,
                (Some(a), Some(b)) => (a.0.min(b.0), a.1.max(b.1)),
            };
            for split in int_slices(min, max, rows, per_bucket, per_query) {
                self.task(split).await?;
            }
        } else {
            self.bound_slices(per_bucket, per_query).await?;
        }
        self.flush_keys().await
    }

    /// Boundaries every `per_bucket` keys of the fuller side, sent in slices of
    /// `per_query` buckets.
    async fn bound_slices(&mut self, per_bucket: u64, per_query: u64) -> Result<(), DiffError> {
        let plan = self.plan;
        let side = if self.src.estimated_rows >= self.dst.estimated_rows {
            &self.src
        } else {
            &self.dst
        };
        let whole = Range::Keys { lo: None, hi: None };
        let q = quantile_query(&side.sql, &whole, per_bucket);
        let conn = side.conn;
        let mut cursor = conn
            .cursor("choosing key range boundaries", &q.sql, &q.params())
            .await?;
        let mut lo: Option<Key> = None;
        loop {
            let mut bounds = Vec::new();
            while (bounds.len() as u64) < per_query {
                match cursor.next().await? {
                    Some(row) => bounds.push(key_of(&row, 0, plan.key.len())),
                    None => break,
                }
            }
            // The next boundary (if any) ends this slice and starts the next one.
            let hi = cursor
                .next()
                .await?
                .map(|row| key_of(&row, 0, plan.key.len()));
            let last = hi.is_none();
            let split = Split::Bounds {
                lo: lo.take(),
                hi: hi.clone(),
                bounds,
            };
            self.task(split).await?;
            if last {
                return Ok(());
            }
            lo = hi;
        }
    }

    /// Checksums the buckets of `split` on both sides and handles those that differ.
    async fn task(&mut self, split: Split) -> Result<(), DiffError> {
        let differing = self.differing_buckets(&split).await?;
        if differing.is_empty() {
            return Ok(());
        }
        let limit = self.tuning.max_rows_compared_by_key.max(1);
        let by_range = self.by_range();
        let mut small = Vec::new();
        let mut large = Vec::new();
        for (b, counts) in differing {
            let rows = counts.0.max(counts.1);
            if rows <= limit {
                small.push(b);
                if by_range && small.len() >= BUCKETS_PER_KEY_SCAN {
                    let batch = std::mem::take(&mut small);
                    self.compare_keys(&split, batch, &[]).await?;
                }
            } else if by_range {
                // In range order, so rows come out in key order.
                let batch = std::mem::take(&mut small);
                self.compare_keys(&split, batch, &[]).await?;
                self.descend(&split, b, counts).await?;
            } else {
                large.push((b, counts));
            }
        }
        // Without ranges by index, all small buckets are read in one scan, and the
        // large ones are descended into as that scan passes them.
        self.compare_keys(&split, small, &large).await
    }

    /// `(bucket, (source rows, target rows))` of the buckets whose checksums differ.
    /// `&mut self`: a future holding `&Keyed` would need the caller's sink to be `Sync`.
    async fn differing_buckets(
        &mut self,
        split: &Split,
    ) -> Result<Vec<(i64, (u64, u64))>, DiffError> {
        let max = self.tuning.max_rows_compared_by_key;
        let (qs, qt) = (
            checksum_query(&self.src.sql, split, max),
            checksum_query(&self.dst.sql, split, max),
        );
        let (ps, pt) = (qs.params(), qt.params());
        let ctx = "computing range checksums";
        let (mut cs, mut ct) = both(
            self.src.conn.cursor(ctx, &qs.sql, &ps),
            self.dst.conn.cursor(ctx, &qt.sql, &pt),
        )
        .await?;
        // The first fetch runs the aggregation: on both sides at once.
        let (mut a, mut b) = both(cs.next(), ct.next()).await?;
        let mut out = Vec::new();
        loop {
            let sa = a.as_ref().map(bucket_sum);
            let sb = b.as_ref().map(bucket_sum);
            let source_first = match (&sa, &sb) {
                (None, None) => return Ok(out),
                (Some((ba, na, ha)), Some((bb, nb, hb))) if ba == bb => {
                    if na != nb || ha != hb {
                        out.push((*ba, (*na, *nb)));
                    }
                    (a, b) = both(cs.next(), ct.next()).await?;
                    continue;
                }
                (Some((ba, ..)), Some((bb, ..))) => ba < bb,
                (Some(_), None) => true,
                (None, Some(_)) => false,
            };
            // A bucket with rows on one side only.
            if let (true, Some((ba, na, _))) = (source_first, sa) {
                out.push((ba, (na, 0)));
                a = cs.next().await?;
            } else if let Some((bb, nb, _)) = sb {
                out.push((bb, (0, nb)));
                b = ct.next().await?;
            }
        }
    }

    /// Splits bucket `b` of `split`, found to hold `counts` rows on (source, target),
    /// and compares its parts.
    async fn descend(
        &mut self,
        split: &Split,
        b: i64,
        counts: (u64, u64),
    ) -> Result<(), DiffError> {
        let per = self.tuning.rows_per_bucket;
        let rows = counts.0.max(counts.1);
        let sub = match split.bucket_range(b) {
            Range::Int { lo, hi } => refine_int(lo, hi, rows, per),
            range @ Range::Keys { .. } => {
                // Boundaries from the side with more rows there; at least two parts,
                // at most `buckets_per_query`.
                let cap = rows.div_ceil(self.tuning.buckets_per_query.max(1));
                let step = per.max(cap).clamp(1, rows.div_ceil(2).max(1));
                let side = if counts.0 >= counts.1 {
                    &self.src
                } else {
                    &self.dst
                };
                let q = quantile_query(&side.sql, &range, step);
                let found = side
                    .conn
                    .query("choosing key range boundaries", &q.sql, &q.params())
                    .await?;
                let bounds = found
                    .iter()
                    .map(|r| key_of(r, 0, self.plan.key.len()))
                    .collect();
                let Range::Keys { lo, hi } = range else {
                    return Ok(());
                };
                Split::Bounds { lo, hi, bounds }
            }
        };
        self.flush_keys().await?;
        Box::pin(self.task(sub)).await
    }

    /// Step 2: reads `(key, row hash)` of the rows in `buckets` on both sides and
    /// queues the keys that differ; descends into the `large` buckets (sorted) in
    /// bucket order along the way, so that rows are reported in key order.
    async fn compare_keys(
        &mut self,
        split: &Split,
        buckets: Vec<i64>,
        large: &[(i64, (u64, u64))],
    ) -> Result<(), DiffError> {
        let mut large = large.iter().peekable();
        if buckets.is_empty() {
            for &(b, counts) in large {
                self.flush_keys().await?;
                self.descend(split, b, counts).await?;
            }
            return Ok(());
        }
        let nkey = self.plan.key.len();
        let qs = key_hash_query(&self.src, split, &buckets);
        let qt = key_hash_query(&self.dst, split, &buckets);
        let (ps, pt) = (qs.params(), qt.params());
        let ctx = "reading the keys of differing ranges";
        let (cs, ct) = both(
            self.src.conn.cursor(ctx, &qs.sql, &ps),
            self.dst.conn.cursor(ctx, &qt.sql, &pt),
        )
        .await?;
        let (mut gs, mut gt) = (Groups::new(cs), Groups::new(ct));
        both(gs.fill(), gt.fill()).await?;
        loop {
            let b = match (gs.bucket(), gt.bucket()) {
                (None, None) => break,
                (Some(x), Some(y)) => x.min(y),
                (Some(x), None) | (None, Some(x)) => x,
            };
            while let Some(&(l, counts)) = large.next_if(|l| l.0 < b) {
                self.flush_keys().await?;
                self.descend(split, l, counts).await?;
            }
            let (rs, rt) = both(gs.take(b), gt.take(b)).await?;
            let mut theirs: HashMap<Key, i64> = rt
                .iter()
                .map(|r| (key_of(r, 1, nkey), r.get::<_, i64>(nkey + 1)))
                .collect();
            for r in &rs {
                let key = key_of(r, 1, nkey);
                let h: i64 = r.get(nkey + 1);
                if theirs.remove(&key) != Some(h) {
                    self.pending.push(key);
                }
            }
            self.pending.extend(theirs.into_keys());
            if self.pending.len() >= self.tuning.rows_per_fetch.max(1) {
                self.flush_keys().await?;
            }
        }
        for &(b, counts) in large {
            self.flush_keys().await?;
            self.descend(split, b, counts).await?;
        }
        Ok(())
    }

    /// Step 3: fetches the whole rows of the pending keys from both sides and reports
    /// them in key order.
    async fn flush_keys(&mut self) -> Result<(), DiffError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let keys = std::mem::take(&mut self.pending);
        let nkey = self.plan.key.len();
        let qs = rows_query(&self.src.sql, &keys, true);
        let qt = rows_query(&self.dst.sql, &keys, false);
        let (ps, pt) = (qs.params(), qt.params());
        let ctx = "reading differing rows";
        let (src_rows, dst_rows) = both(
            self.src.conn.query(ctx, &qs.sql, &ps),
            self.dst.conn.query(ctx, &qt.sql, &pt),
        )
        .await?;
        // A row is taken only if its key has the same text form as the one asked for:
        // equality may hold between different text forms (0 and -0, 1.0 and 1.00),
        // which this diff treats as different keys.
        let found = |r: &tokio_postgres::Row| -> Option<(usize, Fetched)> {
            let o = usize::try_from(r.get::<_, i64>(0)).ok()?.checked_sub(1)?;
            let asked = keys.get(o)?;
            let key: Vec<Option<String>> = (0..nkey).map(|i| r.get(1 + i)).collect();
            let same = key.iter().zip(asked).all(|(k, a)| k.as_ref() == Some(a));
            same.then(|| (o, Fetched::from_row(r, 1 + nkey)))
        };
        let mut theirs: HashMap<usize, Fetched> = dst_rows.iter().filter_map(found).collect();
        for r in &src_rows {
            let Ok(o) = usize::try_from(r.get::<_, i64>(0) - 1) else {
                continue;
            };
            let mine = found(r).map(|(_, f)| f);
            if let Some(row) = keyed_row(self.plan, mine, theirs.remove(&o)) {
                self.out.emit(row)?;
            }
        }
        Ok(())
    }
}

/// `(bucket, count, sum)` of a checksum row.
fn bucket_sum(r: &tokio_postgres::Row) -> (i64, u64, String) {
    let n: i64 = r.get(1);
    (r.get(0), n.max(0) as u64, r.get(2))
}

/// The key text columns `at..at + n` of a row.
fn key_of(r: &tokio_postgres::Row, at: usize, n: usize) -> Key {
    (at..at + n)
        .map(|i| r.get::<_, Option<String>>(i).unwrap_or_default())
        .collect()
}

async fn int_bounds(side: &SideCtx<'_>) -> Result<Option<(i64, i64)>, DiffError> {
    let col = side.sql.key_ordered("t");
    let sql = format!(
        "SELECT min({col})::int8, max({col})::int8 FROM {}",
        side.sql.from("t")
    );
    let rows = side
        .conn
        .query("reading the key's range", &sql, &[])
        .await?;
    Ok(rows
        .first()
        .and_then(|r| Some((r.get::<_, Option<i64>>(0)?, r.get::<_, Option<i64>>(1)?))))
}

/// Per bucket of `split`: its number, its row count and the combined hash of its rows.
/// The count is left out (0) where it cannot matter: an integer bucket no wider than
/// `max_rows` keys never holds more rows than can be compared key by key. Counting
/// costs a sizeable part of the query.
fn checksum_query(sql: &TableSql<'_>, split: &Split, max_rows: u64) -> Query {
    let mut q = Query::default();
    let rows = sql.bucketed(&mut q, split, true);
    let narrow = matches!(split, Split::Int { width, .. } if (*width as u64) <= max_rows);
    let count = if narrow { "0::int8" } else { "count(*)::int8" };
    q.sql = format!(
        "SELECT s.b, {count}, {} FROM {rows} GROUP BY s.b ORDER BY s.b",
        sql.hash.combine("s.h"),
    );
    q
}

/// Every `step`-th key of `range` in byte order.
fn quantile_query(sql: &TableSql<'_>, range: &Range, step: u64) -> Query {
    let mut q = Query::default();
    let cond = sql.range_cond(&mut q, "t", range);
    let step = q.bind(Param::Int(i64::try_from(step.max(1)).unwrap_or(i64::MAX)));
    q.sql = format!(
        "SELECT {} FROM (SELECT {}, row_number() OVER (ORDER BY {}) AS rn FROM {} \
         WHERE {cond}) AS s WHERE s.rn % {step} = 0 ORDER BY s.rn",
        sql.key_texts("s"),
        sql.key_select("t"),
        sql.key_order_list("t"),
        sql.from("t"),
    );
    q
}

/// `(bucket, key texts..., row hash)` of the rows in `buckets`, ordered by bucket.
fn key_hash_query(side: &SideCtx<'_>, split: &Split, buckets: &[i64]) -> Query {
    let sql = &side.sql;
    let mut q = Query::default();
    let inner = format!("{}, {} AS h", sql.key_select("t"), sql.row_hash("t"));
    if !side.ordered {
        // One scan of the range, keeping the rows of the differing buckets.
        let rows = sql.bucketed(&mut q, split, false);
        let ids = q.bind(Param::Ints(buckets.to_vec()));
        q.sql = format!(
            "SELECT s.b, {}, s.h FROM {rows} WHERE s.b = ANY({ids}) ORDER BY s.b",
            sql.key_texts("s"),
        );
        return q;
    }
    // One index range scan per bucket; buckets open at either end (the first and
    // last of the table) get a query of their own.
    let mut arms = Vec::new();
    let mut bounded = Vec::new();
    for &b in buckets {
        match split.bucket_range(b) {
            Range::Keys {
                lo: Some(lo),
                hi: Some(hi),
            } => bounded.push((b, Some((lo, hi)), None)),
            Range::Int { lo, hi } => bounded.push((b, None, Some((lo, hi)))),
            range => {
                let cond = sql.range_cond(&mut q, "t", &range);
                let id = q.bind(Param::Int(b));
                arms.push(format!(
                    "SELECT {id} AS b, {}, x.h FROM (SELECT {inner} FROM {} WHERE {cond}) AS x",
                    sql.key_texts("x"),
                    sql.from("t")
                ));
            }
        }
    }
    if !bounded.is_empty() {
        let ids = q.bind(Param::Ints(bounded.iter().map(|b| b.0).collect()));
        let key = sql.key_ordered("t");
        let (columns, cond) = if matches!(split, Split::Int { .. }) {
            let ends = |f: fn(&(i64, i64)) -> i64| {
                bounded.iter().filter_map(|b| b.2.as_ref().map(f)).collect()
            };
            let lo = q.bind(Param::Ints(ends(|e| e.0)));
            let hi = q.bind(Param::Ints(ends(|e| e.1)));
            (
                format!("{ids}, {lo}, {hi}) AS r(b, lo, hi"),
                format!("{key} >= r.lo AND {key} <= r.hi"),
            )
        } else {
            let n = side.sql.plan.key.len();
            let mut arrays = vec![ids];
            let mut names = vec!["b".to_string()];
            for (end, tag) in [(0, "lo"), (1, "hi")] {
                for c in 0..n {
                    let texts = bounded
                        .iter()
                        .filter_map(|b| b.1.as_ref())
                        .map(|e| {
                            if end == 0 {
                                e.0[c].clone()
                            } else {
                                e.1[c].clone()
                            }
                        })
                        .collect();
                    arrays.push(q.bind(Param::Texts(texts)));
                    names.push(format!("{tag}{c}"));
                }
            }
            let lo: Vec<String> = (0..n).map(|c| format!("r.lo{c}")).collect();
            let hi: Vec<String> = (0..n).map(|c| format!("r.hi{c}")).collect();
            (
                format!("{}) AS r({}", arrays.join(", "), names.join(", ")),
                format!(
                    "{key} >= {} AND {key} < {}",
                    sql.key_value(&lo),
                    sql.key_value(&hi)
                ),
            )
        };
        arms.push(format!(
            "SELECT r.b, {}, x.h FROM unnest({columns}) \
             CROSS JOIN LATERAL (SELECT {inner} FROM {} WHERE {cond}) AS x",
            sql.key_texts("x"),
            sql.from("t"),
        ));
    }
    q.sql = format!("{} ORDER BY 1", arms.join(" UNION ALL "));
    q
}

/// Whole rows for `keys`, by key equality (an index lookup whatever the collation).
/// With `all_keys`, every key comes back (with NULLs where the row is missing) in
/// byte order, which gives the report its order.
fn rows_query(sql: &TableSql<'_>, keys: &[Key], all_keys: bool) -> Query {
    let mut q = Query::default();
    let n = sql.plan.key.len();
    let arrays: Vec<String> = (0..n)
        .map(|c| q.bind(Param::Texts(keys.iter().map(|k| k[c].clone()).collect())))
        .collect();
    let names: Vec<String> = (0..n).map(|c| format!("k{c}")).collect();
    let texts: Vec<String> = (0..n).map(|c| format!("u.k{c}")).collect();
    let eq = sql.key_equals("t", &texts);
    let (join, order) = if all_keys {
        (
            "LEFT JOIN",
            format!(" ORDER BY {}", sql.key_value_order(&texts)),
        )
    } else {
        ("JOIN", String::new())
    };
    q.sql = format!(
        "SELECT u.o, {}, x.vt, x.vj FROM unnest({}) WITH ORDINALITY AS u({}, o) \
         {join} LATERAL (SELECT {}, {} AS vt, {} AS vj FROM {} WHERE {eq}) AS x ON TRUE{order}",
        sql.key_texts("x"),
        arrays.join(", "),
        names.join(", "),
        sql.key_select("t"),
        sql.value_texts("t"),
        sql.value_json("t"),
        sql.from("t"),
    );
    q
}

/// A cursor over rows whose first column is a bucket number, read a bucket at a time.
struct Groups<'c> {
    cursor: Cursor<'c>,
    head: Option<tokio_postgres::Row>,
}

impl<'c> Groups<'c> {
    fn new(cursor: Cursor<'c>) -> Self {
        Self { cursor, head: None }
    }

    async fn fill(&mut self) -> Result<(), DiffError> {
        if self.head.is_none() {
            self.head = self.cursor.next().await?;
        }
        Ok(())
    }

    fn bucket(&self) -> Option<i64> {
        self.head.as_ref().map(|r| r.get(0))
    }

    /// The rows of bucket `b` (none if the cursor is elsewhere).
    async fn take(&mut self, b: i64) -> Result<Vec<tokio_postgres::Row>, DiffError> {
        let mut rows = Vec::new();
        while self.bucket() == Some(b) {
            rows.extend(self.head.take());
            self.fill().await?;
        }
        Ok(rows)
    }
}
