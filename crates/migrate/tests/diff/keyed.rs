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
