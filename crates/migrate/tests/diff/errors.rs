//! Bad input: missing tables, differing schemas, permissions, hostile names, and the
//! guarantee that a diff only reads.

use lifeboat_migrate::diff::{
    DiffError, DiffRequest, DiffRow, SchemaDifference, SchemaPair, Side, TableName, TablePair,
    diff_tables,
};

use crate::support::{Pair, assert_counts, run};

#[tokio::test]
async fn a_missing_table_is_named_with_its_side() {
    let p = Pair::start().await;
    p.both("CREATE TABLE present (id int PRIMARY KEY)").await;
    p.src("CREATE TABLE only_here (id int PRIMARY KEY)").await;
    let err = p
        .diff_with(&["present", "only_here"], Default::default(), 10)
        .await
        .err()
        .expect("missing table");
    match &err {
        DiffError::TableNotFound { side, table } => {
            assert_eq!((*side, table.as_str()), (Side::Target, "public.only_here"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        err.to_string(),
        "table public.only_here does not exist on the target"
    );
    assert!(err.is_user_error());
    // The connections are usable afterwards: no transaction was left open.
    let one: i32 = p.src.query_one("SELECT 1", &[]).await.unwrap().get(0);
    assert_eq!(one, 1);
}

#[tokio::test]
async fn differing_columns_are_reported_and_common_ones_compared() {
    let p = Pair::start().await;
    p.src(
        "CREATE TABLE t (id int PRIMARY KEY, name varchar(10), qty int, note text, gone int);
         INSERT INTO t SELECT g, 'n' || g, g, 'x', g FROM generate_series(1, 100) g;",
    )
    .await;
    p.dst(
        "CREATE TABLE t (id int PRIMARY KEY, qty bigint, name varchar(20), note text, added int);
         INSERT INTO t SELECT g, g, 'n' || g, 'x', 0 FROM generate_series(1, 100) g;
         UPDATE t SET name = 'changed' WHERE id = 5;",
    )
    .await;
    let o = p.diff(&["t"]).await;
    let t = o.table(0);
    assert_eq!(
        t.schema_differences,
        [
            SchemaDifference::TypeDiffers {
                column: "name".into(),
                source_type: "character varying(10)".into(),
                target_type: "character varying(20)".into(),
                compared: true,
            },
            SchemaDifference::TypeDiffers {
                column: "qty".into(),
                source_type: "integer".into(),
                target_type: "bigint".into(),
                compared: false,
            },
            SchemaDifference::ColumnOnlyInSource {
                column: "gone".into(),
                data_type: "integer".into(),
            },
            SchemaDifference::ColumnOnlyInTarget {
                column: "added".into(),
                data_type: "integer".into(),
            },
        ]
    );
    assert_eq!(t.compared_columns, ["id", "name", "note"]);
    assert!(!t.identical && !t.warnings.is_empty());
    assert_counts(&o, 0, (0, 0, 1));
    assert_eq!(o.lines(), [r#"changed {"id":5} ["name"]"#]);
}

#[tokio::test]
async fn a_role_without_select_gets_a_permission_error() {
    let p = Pair::start().await;
    p.both(
        "CREATE TABLE secret (id int PRIMARY KEY);
         DO $$ BEGIN CREATE ROLE reader LOGIN PASSWORD 'reader-pass'; EXCEPTION WHEN duplicate_object THEN NULL; END $$;",
    )
    .await;
    let conn = format!(
        "host=127.0.0.1 port={} user=reader password=reader-pass dbname=src",
        p.tc.cluster.port
    );
    let (reader, task) = tokio_postgres::connect(&conn, tokio_postgres::NoTls)
        .await
        .expect("reader connects");
    tokio::spawn(task);
    let request = DiffRequest::tables([TablePair::same(TableName::new("public", "secret"))]);
    let err = run(&reader, &p.dst, &request).await.err().expect("refused");
    match &err {
        DiffError::PermissionDenied { side, table, role } => {
            assert_eq!(
                (*side, table.as_str(), role.as_str()),
                (Side::Source, "public.secret", "reader")
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(
        err.hint()
            .contains("grant SELECT on public.secret to reader")
    );
}

#[tokio::test]
async fn hostile_names_are_quoted_everywhere() {
    let p = Pair::start().await;
    let setup = r#"
        CREATE TABLE y (id int);
        CREATE SCHEMA "Odd ""Schema""";
        CREATE TABLE "Odd ""Schema"""."""x""; DROP TABLE y; --" (
            "k""ey" text PRIMARY KEY, "va'l" int, "rt" int, "c0" text);
        INSERT INTO "Odd ""Schema"""."""x""; DROP TABLE y; --"
            SELECT 'k' || g, g, g, 'v' FROM generate_series(1, 100) g;
        CREATE TABLE "Odd ""Schema""".nokey ("a""b" int, "rt" text);
        INSERT INTO "Odd ""Schema""".nokey VALUES (1, 'x'), (2, 'y');"#;
    p.both(setup).await;
    p.dst(
        r#"UPDATE "Odd ""Schema"""."""x""; DROP TABLE y; --" SET "va'l" = 0 WHERE "k""ey" = 'k50';
           DELETE FROM "Odd ""Schema""".nokey WHERE "a""b" = 2;"#,
    )
    .await;
    let request = DiffRequest {
        tables: vec![
            TablePair::same(TableName::new("Odd \"Schema\"", "\"x\"; DROP TABLE y; --")),
            TablePair::parse(r#""Odd ""Schema""".nokey"#).unwrap(),
        ],
        tuning: crate::support::tiny(),
        ..DiffRequest::default()
    };
    let o = run(&p.src, &p.dst, &request).await.unwrap();
    assert_counts(&o, 0, (0, 0, 1));
    assert_eq!(o.lines()[0], r#"changed {"k\"ey":"k50"} ["va'l"]"#);
    assert_counts(&o, 1, (1, 0, 0));
    assert_eq!(
        o.table(0).table,
        r#""Odd ""Schema"""."""x""; DROP TABLE y; --""#
    );
    for c in [&p.src, &p.dst] {
        let n: i64 = c
            .query_one("SELECT count(*) FROM pg_class WHERE relname = 'y'", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 1, "table y still exists");
    }
}

#[tokio::test]
async fn the_diff_only_reads_and_stops_when_the_sink_fails() {
    let p = Pair::start().await;
    p.both(
        "CREATE TABLE t (id int PRIMARY KEY, v int);
         INSERT INTO t SELECT g, g FROM generate_series(1, 1000) g;",
    )
    .await;
    p.dst("UPDATE t SET v = 0 WHERE id % 100 = 0").await;
    let before = (writes(&p.src).await, writes(&p.dst).await);
    let request = DiffRequest::tables([TablePair::parse("t").unwrap()]);
    let mut seen = 0;
    let mut failing = |_: &str, _: &DiffRow| {
        seen += 1;
        Err(std::io::Error::new(
            std::io::ErrorKind::BrokenPipe,
            "closed",
        ))
    };
    let err = diff_tables(&p.src, &p.dst, &request, &mut failing)
        .await
        .expect_err("sink error");
    assert!(matches!(err, DiffError::Sink(_)), "{err:?}");
    assert_eq!(seen, 1);
    // Both connections are idle again, outside any transaction.
    for c in [&p.src, &p.dst] {
        let state: String = c
            .query_one(
                "SELECT state FROM pg_stat_activity WHERE pid = pg_backend_pid()",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(state, "active");
        c.batch_execute("CREATE TEMP TABLE can_write (x int)")
            .await
            .unwrap();
    }
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    assert_eq!((writes(&p.src).await, writes(&p.dst).await), before);
}

#[tokio::test]
async fn a_schema_request_compares_every_table_and_lists_missing_ones() {
    let p = Pair::start().await;
    p.both(
        "CREATE SCHEMA app;
         CREATE TABLE app.a (id int PRIMARY KEY); INSERT INTO app.a VALUES (1), (2);
         CREATE TABLE app.b (id int PRIMARY KEY);
         CREATE TABLE app.parted (id int, PRIMARY KEY (id)) PARTITION BY RANGE (id);
         CREATE TABLE app.parted_1 PARTITION OF app.parted FOR VALUES FROM (0) TO (100);
         CREATE TABLE app.parted_2 PARTITION OF app.parted FOR VALUES FROM (100) TO (200);
         INSERT INTO app.parted SELECT generate_series(0, 199);",
    )
    .await;
    p.src("CREATE TABLE app.only_src (id int)").await;
    p.dst("CREATE TABLE app.only_dst (id int); DELETE FROM app.a WHERE id = 2; DELETE FROM app.parted WHERE id = 150;")
        .await;
    let request = DiffRequest {
        schemas: vec![SchemaPair {
            source: "app".into(),
            target: "app".into(),
        }],
        ..DiffRequest::default()
    };
    let o = run(&p.src, &p.dst, &request).await.unwrap();
    let names: Vec<&str> = o.report.tables.iter().map(|t| t.table.as_str()).collect();
    assert_eq!(names, ["app.a", "app.b", "app.parted"]);
    assert_counts(&o, 0, (1, 0, 0));
    assert_counts(&o, 2, (1, 0, 0));
    let missing: Vec<(String, Side)> = o
        .report
        .missing_tables
        .iter()
        .map(|m| (m.table.clone(), m.missing_on))
        .collect();
    assert_eq!(
        missing,
        [
            ("app.only_src".to_string(), Side::Target),
            ("app.only_dst".to_string(), Side::Source)
        ]
    );
    assert!(!o.report.identical());
}

/// Rows written to table `t` as the statistics count them.
async fn writes(c: &tokio_postgres::Client) -> i64 {
    c.query_one(
        "SELECT n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_user_tables WHERE relname = 't'",
        &[],
    )
    .await
    .unwrap()
    .get(0)
}
