//! What counts as equal, type by type: two values are equal when PostgreSQL writes
//! them as the same text. Each case is one row; the target differs from the source
//! in one column (or not at all when the values only look different).

use lifeboat_migrate::diff::Tuning;

use crate::support::{Pair, assert_counts, tiny};

const TABLE: &str = "CREATE TABLE v (
    id int PRIMARY KEY, t text, f float8, n numeric, ts timestamptz, j json, jb jsonb,
    b bytea, a int[], big text, c char(5), iv interval, r real);
    INSERT INTO v (id) SELECT generate_series(1, 20);";

/// `(id, column, source value, target value, differs)`.
const CASES: &[(i32, &str, &str, &str, bool)] = &[
    (1, "t", "NULL", "NULL", false),
    (2, "t", "NULL", "''", true),
    (3, "t", "'x'", "NULL", true),
    (4, "f", "0", "'-0'", true),
    (5, "f", "'NaN'", "'NaN'", false),
    (6, "n", "1.0", "1.00", true),
    (
        7,
        "ts",
        "'2024-01-01 12:00+00'",
        "'2024-01-01 14:00+02'",
        false,
    ),
    (
        8,
        "ts",
        "'2024-01-01 12:00+00'",
        "'2024-01-01 12:00:00.000001+00'",
        true,
    ),
    (9, "j", r#"'{"a":1}'"#, r#"'{"a": 1}'"#, true),
    (10, "jb", r#"'{"a":1,"b":2}'"#, r#"'{"b":2, "a":1}'"#, false),
    (11, "b", r"'\x00ff'", r"'\x00fe'", true),
    (12, "a", "'{1,2}'", "'{1,NULL}'", true),
    (
        13,
        "big",
        "repeat('x', 300000) || 'a'",
        "repeat('x', 300000) || 'b'",
        true,
    ),
    (
        14,
        "big",
        "repeat('y', 300000)",
        "repeat('y', 300000)",
        false,
    ),
    (15, "c", "'ab'", "'ab   '", false),
    (16, "f", "'Infinity'", "'Infinity'", false),
    (17, "n", "'NaN'", "'NaN'", false),
    (18, "iv", "'1 day'", "'24 hours'", true),
    (19, "r", "0.1", "0.1", false),
    (20, "jb", r#"'{"a":1.0}'"#, r#"'{"a":1.00}'"#, true),
];

async fn setup() -> Pair {
    let p = Pair::start().await;
    p.both(TABLE).await;
    for (id, col, s, t, _) in CASES {
        p.src(&format!("UPDATE v SET {col} = {s} WHERE id = {id}"))
            .await;
        p.dst(&format!("UPDATE v SET {col} = {t} WHERE id = {id}"))
            .await;
    }
    p
}

async fn check(p: &Pair, tuning: Tuning) {
    let o = p.diff_with(&["v"], tuning, 100).await.unwrap();
    let expected: Vec<String> = CASES
        .iter()
        .filter(|c| c.4)
        .map(|(id, col, ..)| format!(r#"changed {{"id":{id}}} ["{col}"]"#))
        .collect();
    assert_eq!(o.lines(), expected, "{tuning:?}");
    assert_counts(&o, 0, (0, 0, expected.len() as u64));
}

#[tokio::test]
async fn equality_follows_the_text_form() {
    let p = setup().await;
    check(&p, Tuning::default()).await;
    check(&p, tiny()).await;
    // The md5 hash used between servers of different architectures agrees.
    check(
        &p,
        Tuning {
            portable_hash: true,
            ..tiny()
        },
    )
    .await;
}

#[tokio::test]
async fn values_are_shown_as_postgresql_writes_them() {
    let p = setup().await;
    let o = p.diff(&["v"]).await;
    let row = |id: i32| {
        let r = o
            .table(0)
            .rows
            .iter()
            .find(|r| r.key.as_ref().and_then(|k| k.get("id")) == Some(&id.to_string()))
            .unwrap_or_else(|| panic!("row {id}"));
        (
            r.source.clone().expect("source"),
            r.target.clone().expect("target"),
        )
    };
    let (s, t) = row(2);
    assert_eq!((s.get("t"), t.get("t")), (Some("null"), Some(r#""""#)));
    let (s, t) = row(4);
    assert_eq!((s.get("f"), t.get("f")), (Some("0"), Some("-0")));
    let (s, t) = row(6);
    assert_eq!((s.get("n"), t.get("n")), (Some("1.0"), Some("1.00")));
    let (s, _) = row(11);
    assert_eq!(s.get("b"), Some(r#""\\x00ff""#));
    let (s, t) = row(12);
    assert_eq!((s.get("a"), t.get("a")), (Some("[1,2]"), Some("[1,null]")));
    let (s, _) = row(13);
    assert_eq!(s.get("big").map(str::len), Some(300_003));
    // The whole row is there, in column order.
    let names: Vec<&str> = s.0.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "id", "t", "f", "n", "ts", "j", "jb", "b", "a", "big", "c", "iv", "r"
        ]
    );
    let json = serde_json::to_value(&o.report).unwrap();
    assert_eq!(json["tables"][0]["rows"][0]["kind"], "changed");
    assert_eq!(json["tables"][0]["rows"][0]["changed_columns"][0], "t");
}

#[tokio::test]
async fn non_ascii_text_keys_are_ordered_by_bytes() {
    let p = Pair::start().await;
    // The source's key collates linguistically, the target's by bytes: the diff must
    // not care (and reads the first by scanning, the second by index ranges).
    p.src("CREATE TABLE k (name text COLLATE \"en-x-icu\" PRIMARY KEY, v int)")
        .await;
    p.dst("CREATE TABLE k (name text COLLATE \"C\" PRIMARY KEY, v int)")
        .await;
    let names = [
        "a", "B", "b", "é", "e", "Z", "ß", "ss", "日本", "😀", "a b", "a-b", "ab", "Ä",
    ];
    for (i, n) in names.iter().enumerate() {
        let sql = format!("INSERT INTO k VALUES ('{n}', {i})");
        p.both(&sql).await;
        for j in 0..40 {
            p.both(&format!("INSERT INTO k VALUES ('{n}{j:02}', {j})"))
                .await;
        }
    }
    p.dst("DELETE FROM k WHERE name IN ('é', 'ß07', '😀39'); UPDATE k SET v = -1 WHERE name IN ('Z', 'B', 'ss');")
        .await;
    p.src("DELETE FROM k WHERE name = 'e'").await;
    let expected = [
        r#"changed {"name":"B"} ["v"]"#,
        r#"changed {"name":"Z"} ["v"]"#,
        r#"only_in_target {"name":"e"}"#,
        r#"changed {"name":"ss"} ["v"]"#,
        r#"only_in_source {"name":"ß07"}"#,
        r#"only_in_source {"name":"é"}"#,
        r#"only_in_source {"name":"😀39"}"#,
    ];
    for tuning in [Tuning::default(), tiny()] {
        let o = p.diff_with(&["k"], tuning, 100).await.unwrap();
        assert_eq!(o.lines(), expected, "{tuning:?}");
    }
}

#[tokio::test]
async fn composite_keys_match_on_every_column() {
    let p = Pair::start().await;
    p.both(
        "CREATE TABLE c (region text, day date, seq bigint, v numeric,
                         PRIMARY KEY (region, day, seq));
         INSERT INTO c SELECT r, DATE '2024-01-01' + (g % 30), g, g / 7.0
           FROM unnest(ARRAY['north', 'süd', 'ost']) r, generate_series(1, 300) g;",
    )
    .await;
    p.dst(
        "DELETE FROM c WHERE region = 'süd' AND seq = 31;
         UPDATE c SET v = 0 WHERE region = 'ost' AND seq = 200;
         INSERT INTO c VALUES ('north', DATE '2024-01-05', 1, 1);",
    )
    .await;
    let expected = [
        r#"only_in_target {"region":"north","day":"2024-01-05","seq":1}"#,
        r#"changed {"region":"ost","day":"2024-01-21","seq":200} ["v"]"#,
        r#"only_in_source {"region":"süd","day":"2024-01-02","seq":31}"#,
    ];
    for tuning in [Tuning::default(), tiny()] {
        let o = p.diff_with(&["c"], tuning, 100).await.unwrap();
        assert_eq!(o.lines(), expected, "{tuning:?}");
        assert_eq!(o.table(0).key, ["region", "day", "seq"]);
    }
}

#[tokio::test]
async fn extreme_integer_keys_do_not_overflow() {
    let p = Pair::start().await;
    p.both(
        "CREATE TABLE e (id bigint PRIMARY KEY, v text);
         INSERT INTO e VALUES (-9223372036854775808, 'min'), (0, 'zero'),
                              (9223372036854775807, 'max'), (-1, 'm1'), (1, 'p1');",
    )
    .await;
    p.dst("UPDATE e SET v = 'MAX' WHERE id = 9223372036854775807; DELETE FROM e WHERE id = -9223372036854775808;")
        .await;
    for tuning in [Tuning::default(), tiny()] {
        let o = p.diff_with(&["e"], tuning, 100).await.unwrap();
        assert_eq!(
            o.lines(),
            [
                r#"only_in_source {"id":-9223372036854775808}"#,
                r#"changed {"id":9223372036854775807} ["v"]"#,
            ],
            "{tuning:?}"
        );
    }
}
