//! Tables without a key, compared as multisets of whole rows.

use lifeboat_migrate::diff::Tuning;

use crate::support::{Pair, assert_counts, tiny};

#[tokio::test]
async fn rows_without_a_key_are_counted_copy_by_copy() {
    let p = Pair::start().await;
    p.both("CREATE TABLE m (a int, b text)").await;
    p.src(
        "INSERT INTO m VALUES (1, 'a'), (1, 'a'), (1, 'a'), (2, 'b'), (3, NULL), (4, '');
         INSERT INTO m SELECT g, 'same' FROM generate_series(10, 500) g;",
    )
    .await;
    p.dst(
        "INSERT INTO m VALUES (1, 'a'), (2, 'b'), (2, 'B'), (3, NULL), (4, NULL);
         INSERT INTO m SELECT g, 'same' FROM generate_series(10, 500) g;",
    )
    .await;
    for tuning in [Tuning::default(), tiny()] {
        let o = p.diff_with(&["m"], tuning, 100).await.unwrap();
        let t = o.table(0);
        assert!(!t.keyed && t.key.is_empty());
        assert!(
            t.warnings.iter().any(|w| w.contains("multiset")),
            "{:?}",
            t.warnings
        );
        // Two surplus copies of (1,'a'), and '' is not NULL.
        assert_counts(&o, 0, (3, 2, 0));
        let mut lines = o.lines();
        lines.sort();
        assert_eq!(
            lines,
            [
                "only_in_source null x1",
                "only_in_source null x2",
                "only_in_target null x1",
                "only_in_target null x1",
            ],
            "{tuning:?}"
        );
        let values: Vec<String> = o
            .streamed
            .iter()
            .map(|(_, r)| {
                let row = r.source.as_ref().or(r.target.as_ref()).expect("values");
                serde_json::to_string(row).unwrap()
            })
            .collect();
        for v in [
            r#"{"a":1,"b":"a"}"#,
            r#"{"a":4,"b":""}"#,
            r#"{"a":2,"b":"B"}"#,
            r#"{"a":4,"b":null}"#,
        ] {
            assert!(values.contains(&v.to_string()), "{v} in {values:?}");
        }
    }
}

#[tokio::test]
async fn a_unique_index_on_not_null_columns_is_a_key_and_one_on_nullable_columns_is_not() {
    let p = Pair::start().await;
    p.both(
        "CREATE TABLE u (code text NOT NULL, other int UNIQUE, v int);
         CREATE UNIQUE INDEX u_code ON u (code);
         CREATE TABLE w (x int UNIQUE, v int);
         INSERT INTO u SELECT 'c' || g, g, g FROM generate_series(1, 50) g;
         INSERT INTO w SELECT g, g FROM generate_series(1, 50) g;",
    )
    .await;
    p.dst("UPDATE u SET v = 0 WHERE code = 'c7'; UPDATE w SET v = 0 WHERE x = 7;")
        .await;
    let o = p.diff(&["u", "w"]).await;
    assert_eq!(o.table(0).key, ["code"]);
    assert_counts(&o, 0, (0, 0, 1));
    assert!(!o.table(1).keyed);
    assert_counts(&o, 1, (1, 1, 0));
}

#[tokio::test]
async fn identical_keyless_tables_and_empty_tables_are_identical() {
    let p = Pair::start().await;
    p.both(
        "CREATE TABLE k (a float8, b jsonb);
         INSERT INTO k SELECT g / 3.0, jsonb_build_object('g', g) FROM generate_series(1, 200) g;
         INSERT INTO k SELECT * FROM k;
         CREATE TABLE e (id int PRIMARY KEY);",
    )
    .await;
    let o = p.diff(&["k", "e"]).await;
    assert!(o.table(0).identical && o.table(1).identical);
    assert!(o.streamed.is_empty());
}
