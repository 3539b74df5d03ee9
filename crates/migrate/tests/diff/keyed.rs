//! Keyed comparison: counts, rows, order, and every path of the range search.

use crate::support::{Pair, assert_counts, assert_same_lines, tiny};

#[tokio::test]
async fn identical_tables_are_identical() {
    let p = Pair::start().await;
    p.both(
        "CREATE TABLE t (id int PRIMARY KEY, v text);
         INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 1000) g;",
    )
    .await;
    let o = p.diff(&["public.t"]).await;
    assert_counts(&o, 0, (0, 0, 0));
    let t = o.table(0);
    assert!(t.identical && t.keyed);
    assert_eq!(t.key, ["id"]);
    assert!(t.rows.is_empty() && o.streamed.is_empty());
    assert!(o.report.identical());
}

#[tokio::test]
async fn deleted_added_and_changed_rows_are_reported_in_key_order() {
    let p = Pair::start().await;
    p.both(
        "CREATE TABLE t (id int PRIMARY KEY, a int, b text);
         INSERT INTO t SELECT g, g, 'b' || g FROM generate_series(1, 5000) g;",
    )
    .await;
    // The target (the master) lost rows, gained one, and had some changed.
    p.dst(
        "DELETE FROM t WHERE id IN (1, 777, 5000);
         INSERT INTO t VALUES (6000, 0, 'new');
         UPDATE t SET a = -a WHERE id = 42;
         UPDATE t SET a = 0, b = 'x' WHERE id = 4321;",
    )
    .await;
    let o = p.diff(&["t"]).await;
    assert_counts(&o, 0, (3, 1, 2));
    assert_eq!(
        o.lines(),
        [
            r#"only_in_source {"id":1}"#,
            r#"changed {"id":42} ["a"]"#,
            r#"only_in_source {"id":777}"#,
            r#"changed {"id":4321} ["a", "b"]"#,
            r#"only_in_source {"id":5000}"#,
            r#"only_in_target {"id":6000}"#,
        ]
    );
    let changed = &o.table(0).rows[1];
    let json = serde_json::to_value(changed).unwrap();
    assert_eq!(
        json["source"],
        serde_json::json!({"id": 42, "a": 42, "b": "b42"})
    );
    assert_eq!(
        json["target"],
        serde_json::json!({"id": 42, "a": -42, "b": "b42"})
    );
    assert!(!o.table(0).identical);
}

#[tokio::test]
async fn the_report_keeps_limit_rows_and_the_sink_gets_all() {
    let p = Pair::start().await;
    p.both(
        "CREATE TABLE t (id bigint PRIMARY KEY, v int);
         INSERT INTO t SELECT g, g FROM generate_series(1, 300) g;",
    )
    .await;
    p.dst("UPDATE t SET v = 0 WHERE id % 10 = 0").await;
    let o = p.diff_with(&["t"], Default::default(), 7).await.unwrap();
    assert_counts(&o, 0, (0, 0, 30));
    assert_eq!(o.table(0).rows.len(), 7);
    assert!(o.table(0).rows_truncated);
    assert_eq!(o.streamed.len(), 30);
    assert!(o.streamed.iter().all(|(t, _)| t == "public.t"));
}

/// Deletions spread over the key range plus a dense block of rows only the target has:
/// with tiny tuning this goes through several slices, recursion into large buckets on
/// each side, and several fetch batches; the result must not depend on the tuning.
async fn spread_and_block(key_type: &str, key_expr: &str) {
    let p = Pair::start().await;
    p.both(&format!(
        "CREATE TABLE t (k {key_type} PRIMARY KEY, v int);
         INSERT INTO t SELECT {key_expr}, g FROM generate_series(1, 2000) g;"
    ))
    .await;
    p.dst(&format!(
        "DELETE FROM t WHERE v % 97 = 5;
         UPDATE t SET v = -v WHERE v % 101 = 7;
         INSERT INTO t SELECT {}, g FROM generate_series(2001, 2300) g;",
        key_expr.replace('g', "(g)")
    ))
    .await;
    p.src("DELETE FROM t WHERE v BETWEEN 900 AND 1000").await;
    let deleted_dst = (1..=2000)
        .filter(|v| v % 97 == 5 && !(900..=1000).contains(v))
        .count() as u64;
    let changed = (1..=2000)
        .filter(|v| v % 101 == 7 && v % 97 != 5 && !(900..=1000).contains(v))
        .count() as u64;
    let only_dst = 300 + (900..=1000).filter(|v| v % 97 != 5).count() as u64;
    let expected = (deleted_dst, only_dst, changed);
    let default = p.diff(&["t"]).await;
    assert_counts(&default, 0, expected);
    let small = p.diff_with(&["t"], tiny(), 10_000).await.unwrap();
    assert_counts(&small, 0, expected);
    assert_same_lines(&default.lines(), &small.lines());
}

#[tokio::test]
async fn integer_keys_take_every_path() {
    spread_and_block("int", "g * 3").await;
}

#[tokio::test]
async fn text_keys_take_every_path() {
    spread_and_block("text", "'k' || lpad(g::text, 6, '0')").await;
}

#[tokio::test]
async fn uuid_keys_take_every_path() {
    spread_and_block("uuid", "md5(g::text)::uuid").await;
}

#[tokio::test]
async fn two_instances_and_renamed_tables() {
    use lifeboat_postgres::testing::TestCluster;
    let (a, b) = (TestCluster::start(), TestCluster::start());
    let (src, dst) = (a.connect("postgres").await, b.connect("postgres").await);
    src.batch_execute(
        "CREATE TABLE orders (id bigint PRIMARY KEY, total numeric(10,2), placed timestamptz);
         INSERT INTO orders SELECT g, g * 1.5, TIMESTAMPTZ '2024-03-01 00:00+00' + g * interval '1 min'
           FROM generate_series(1, 3000) g;",
    )
    .await
    .unwrap();
    dst.batch_execute(
        "CREATE SCHEMA archive;
         CREATE TABLE archive.orders_old (id bigint PRIMARY KEY, total numeric(10,2), placed timestamptz);
         SET TimeZone = 'Asia/Tokyo';
         INSERT INTO archive.orders_old SELECT g, g * 1.5, TIMESTAMPTZ '2024-03-01 00:00+00' + g * interval '1 min'
           FROM generate_series(1, 3000) g WHERE g <> 1234;
         UPDATE archive.orders_old SET total = 0 WHERE id = 2000;",
    )
    .await
    .unwrap();
    let request =
        lifeboat_migrate::diff::DiffRequest::tables([lifeboat_migrate::diff::TablePair::parse(
            "public.orders=archive.orders_old",
        )
        .unwrap()]);
    let o = crate::support::run(&src, &dst, &request).await.unwrap();
    assert_counts(&o, 0, (1, 0, 1));
    assert_eq!(
        o.lines(),
        [
            r#"only_in_source {"id":1234}"#,
            r#"changed {"id":2000} ["total"]"#
        ]
    );
    let json = serde_json::to_value(&o.report).unwrap();
    let t = &json["tables"][0];
    assert_eq!(t["table"], "public.orders=archive.orders_old");
    assert_eq!(
        (&t["only_in_source"], &t["only_in_target"], &t["changed"]),
        (&1.into(), &0.into(), &1.into())
    );
    assert_eq!(t["rows"][1]["source"]["total"], serde_json::json!(3000.00));
    assert_eq!(
        t["rows"][1]["target"]["placed"],
        "2024-03-02T09:20:00+00:00"
    );
}

/// The server runs diffs on its runtime's worker threads.
#[test]
fn the_diff_future_can_be_spawned() {
    fn spawnable<T: Send>(_: &T) {}
    async fn with(src: &tokio_postgres::Client, dst: &tokio_postgres::Client) {
        let request = lifeboat_migrate::diff::DiffRequest::default();
        let mut sink = lifeboat_migrate::diff::NoSink;
        let fut = lifeboat_migrate::diff::diff_tables(src, dst, &request, &mut sink);
        spawnable(&fut);
        let _ = fut.await;
    }
    let _ = with;
}

/// An inheritance parent: its own rows are compared, and the diff says that its
/// children's rows, which `SELECT * FROM parent` shows too, were not.
#[tokio::test]
async fn an_inheritance_parent_is_compared_on_its_own_rows_with_a_warning() {
    let p = Pair::start().await;
    p.both(
        "CREATE TABLE parent (id int PRIMARY KEY, v text);
         CREATE TABLE kid_a () INHERITS (parent);
         INSERT INTO parent SELECT g, 'p' FROM generate_series(1, 10) g;
         INSERT INTO kid_a SELECT g, 'k' FROM generate_series(100, 140) g;",
    )
    .await;
    // Rows deleted from the child only on the target: not the parent's own rows.
    p.dst("DELETE FROM kid_a WHERE id > 120").await;
    let o = p.diff(&["parent"]).await;
    let t = o.table(0);
    assert_eq!(
        (t.only_in_source, t.only_in_target, t.changed),
        (0, 0, 0),
        "the parent's own rows are the same"
    );
    let warning = t
        .warnings
        .iter()
        .find(|w| w.contains("inheritance children"))
        .unwrap_or_else(|| panic!("no warning in {:?}", t.warnings));
    assert!(
        warning.contains("on the source (public.kid_a)")
            && warning.contains("--table public.kid_a"),
        "{warning}"
    );
    // The child compared by name shows what the parent's SELECT * would.
    let o = p.diff(&["kid_a"]).await;
    assert_eq!(o.table(0).only_in_source, 20);
}
