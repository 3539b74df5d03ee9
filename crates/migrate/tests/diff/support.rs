//! A cluster with a source and a target database, and a diff that collects every row
//! its sink receives.

use lifeboat_migrate::diff::{
    DiffError, DiffReport, DiffRequest, DiffRow, TableDiff, TablePair, Tuning, diff_tables,
};
use lifeboat_postgres::testing::TestCluster;
use tokio_postgres::Client;

/// Two databases of one cluster: `src` and `dst`, each with a superuser client.
pub struct Pair {
    /// Stopped when dropped.
    pub tc: TestCluster,
    pub src: Client,
    pub dst: Client,
}

impl Pair {
    pub async fn start() -> Self {
        let tc = TestCluster::start();
        let admin = tc.connect("postgres").await;
        for db in ["src", "dst"] {
            admin
                .batch_execute(&format!("CREATE DATABASE {db}"))
                .await
                .expect("create database");
        }
        let src = tc.connect("src").await;
        let dst = tc.connect("dst").await;
        Self { tc, src, dst }
    }

    /// Runs `sql` on both databases.
    pub async fn both(&self, sql: &str) {
        self.src.batch_execute(sql).await.expect("source setup");
        self.dst.batch_execute(sql).await.expect("target setup");
    }

    pub async fn src(&self, sql: &str) {
        self.src.batch_execute(sql).await.expect("source change");
    }

    pub async fn dst(&self, sql: &str) {
        self.dst.batch_execute(sql).await.expect("target change");
    }

    /// Diffs `tables` (CLI syntax) with default tuning.
    pub async fn diff(&self, tables: &[&str]) -> Outcome {
        self.diff_with(tables, Tuning::default(), 100)
            .await
            .expect("diff")
    }

    pub async fn diff_with(
        &self,
        tables: &[&str],
        tuning: Tuning,
        limit: usize,
    ) -> Result<Outcome, DiffError> {
        let request = DiffRequest {
            tables: tables
                .iter()
                .map(|t| TablePair::parse(t).expect("table name"))
                .collect(),
            limit,
            tuning,
            ..DiffRequest::default()
        };
        run(&self.src, &self.dst, &request).await
    }
}

/// A diff's report and every row its sink received.
pub struct Outcome {
    pub report: DiffReport,
    pub streamed: Vec<(String, DiffRow)>,
}

impl Outcome {
    pub fn table(&self, i: usize) -> &TableDiff {
        &self.report.tables[i]
    }

    /// The streamed rows as compact strings: `kind key [changed columns]`.
    pub fn lines(&self) -> Vec<String> {
        self.streamed.iter().map(|(_, r)| line(r)).collect()
    }
}

pub fn line(r: &DiffRow) -> String {
    let kind = serde_json::to_value(r.kind).expect("kind");
    let key = serde_json::to_string(&r.key).expect("key");
    let mut s = format!("{} {key}", kind.as_str().unwrap_or("?"));
    if !r.changed_columns.is_empty() {
        s.push_str(&format!(" {:?}", r.changed_columns));
    }
    if let Some(n) = r.count {
        s.push_str(&format!(" x{n}"));
    }
    s
}

pub async fn run(src: &Client, dst: &Client, request: &DiffRequest) -> Result<Outcome, DiffError> {
    let mut streamed = Vec::new();
    let mut sink = |table: &str, row: &DiffRow| {
        streamed.push((table.to_string(), row.clone()));
        Ok(())
    };
    let report = diff_tables(src, dst, request, &mut sink).await?;
    Ok(Outcome { report, streamed })
}

/// Tiny buckets and slices, so that small tables go through every path: several
/// slices, recursion into large buckets, several fetch batches.
pub fn tiny() -> Tuning {
    Tuning {
        rows_per_bucket: 4,
        buckets_per_query: 8,
        max_buckets_per_scan: 64,
        max_rows_compared_by_key: 6,
        rows_per_fetch: 5,
        portable_hash: false,
    }
}

/// Asserts the counts (only in source, only in target, changed) of table `i`.
#[track_caller]
pub fn assert_counts(o: &Outcome, i: usize, counts: (u64, u64, u64)) {
    let t = o.table(i);
    assert_eq!(
        (t.only_in_source, t.only_in_target, t.changed),
        counts,
        "table {}: {:#?}",
        t.table,
        o.lines()
    );
}

/// Asserts two row listings are equal, showing where they first part.
#[track_caller]
pub fn assert_same_lines(a: &[String], b: &[String]) {
    if let Some(i) = (0..a.len().max(b.len())).find(|&i| a.get(i) != b.get(i)) {
        let around = |v: &[String]| v[i.saturating_sub(2)..(i + 3).min(v.len())].to_vec();
        panic!(
            "listings part at row {i} of {}/{}: {:?} vs {:?}",
            a.len(),
            b.len(),
            around(a),
            around(b)
        );
    }
}
