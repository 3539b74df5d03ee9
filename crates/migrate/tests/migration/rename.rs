//! Object mapping with new names: a table restored next to its original, a schema
//! mapped to another with one table inside renamed again, quoted names with dots.

use lifeboat_migrate::migration::{ConflictMode, TableAction, resolve};

use crate::support::{Pair, column, fingerprint, migrate, one};

#[tokio::test]
async fn a_table_restored_under_a_new_name_next_to_the_original() {
    let p = Pair::start().await;
    p.both(
        "CREATE TABLE orders (id int PRIMARY KEY, v text UNIQUE);
         CREATE INDEX orders_v_idx ON orders (lower(v));
         INSERT INTO orders SELECT i, 'v' || i FROM generate_series(1, 500) i;",
    )
    .await;
    p.dst("DELETE FROM orders WHERE id > 100").await;
    let before = fingerprint(&p.dst, "orders").await;

    let task = p.task(&["shop.public.orders=orders_restored"], ConflictMode::Error);
    let out = migrate(&task, &Default::default()).await;
    let t = &out.report().tables[0];
    assert_eq!(t.action, TableAction::Create);
    assert_eq!(t.target, "shop.public.orders_restored");
    assert!(out.report().verified());

    assert_eq!(
        fingerprint(&p.dst, "orders_restored").await,
        fingerprint(&p.src, "orders").await
    );
    assert_eq!(
        fingerprint(&p.dst, "orders").await,
        before,
        "the original is untouched"
    );
    // The restored table's indexes follow its name instead of colliding with the
    // original's.
    let indexes = column(
        &p.dst,
        "SELECT indexname::text FROM pg_indexes WHERE tablename = 'orders_restored' ORDER BY 1",
    )
    .await;
    assert_eq!(
        indexes,
        [
            "orders_restored_pkey",
            "orders_restored_v_idx",
            "orders_restored_v_key"
        ]
    );
}

#[tokio::test]
async fn a_schema_mapped_with_one_table_renamed_inside() {
    let p = Pair::start().await;
    p.src(
        "CREATE SCHEMA \"my.schema\";
         CREATE TABLE \"my.schema\".a (id int PRIMARY KEY);
         CREATE TABLE \"my.schema\".\"B\" (id int PRIMARY KEY);
         CREATE TABLE \"my.schema\".c (id int PRIMARY KEY);
         INSERT INTO \"my.schema\".a SELECT generate_series(1, 10);
         INSERT INTO \"my.schema\".\"B\" SELECT generate_series(1, 20);
         INSERT INTO \"my.schema\".c SELECT generate_series(1, 30);
         CREATE TABLE public.untouched (id int);",
    )
    .await;
    let task = p.task(
        &[
            "shop.\"my.schema\"=restored",
            "shop.\"my.schema\".\"B\"=b_old",
        ],
        ConflictMode::Error,
    );
    let mapped: Vec<String> = resolve(&task)
        .await
        .expect("resolve")
        .iter()
        .map(|m| m.label())
        .collect();
    assert_eq!(
        mapped,
        [
            "shop.\"my.schema\".\"B\"=shop.restored.b_old",
            "shop.\"my.schema\".a=shop.restored.a",
            "shop.\"my.schema\".c=shop.restored.c",
        ]
    );
    let out = migrate(&task, &Default::default()).await;
    assert_eq!(out.report().tables.len(), 3);
    assert_eq!(
        one(&p.dst, "SELECT count(*)::text FROM restored.a").await,
        "10"
    );
    assert_eq!(
        one(&p.dst, "SELECT count(*)::text FROM restored.b_old").await,
        "20"
    );
    assert_eq!(
        one(&p.dst, "SELECT count(*)::text FROM restored.c").await,
        "30"
    );
    assert_eq!(
        one(
            &p.dst,
            "SELECT count(*)::text FROM pg_tables WHERE tablename = 'untouched'"
        )
        .await,
        "0"
    );
}

#[tokio::test]
async fn a_whole_database_into_a_new_one() {
    let p = Pair::start().await;
    p.src(
        "CREATE TABLE t1 (id int PRIMARY KEY); INSERT INTO t1 SELECT generate_series(1, 5);
         CREATE SCHEMA s; CREATE TABLE s.t2 (x text); INSERT INTO s.t2 VALUES ('a'), ('a');",
    )
    .await;
    let task = p.task(&["shop=shop_restored"], ConflictMode::Error);
    let out = migrate(&task, &Default::default()).await;
    assert!(out.report().verified(), "{:#?}", out.report().verification);
    let restored = p.target.connect("shop_restored").await;
    assert_eq!(one(&restored, "SELECT count(*)::text FROM t1").await, "5");
    assert_eq!(one(&restored, "SELECT count(*)::text FROM s.t2").await, "2");
}

/// A whole database into a new one whose tables use user-defined types: the enum (in a
/// schema of its own, with its comment), the domain with its default and checks, the
/// composite type made of the enum, the range; created first, then the table.
#[tokio::test]
async fn a_new_database_gets_the_types_its_tables_use() {
    let p = Pair::start().await;
    p.src(
        "CREATE SCHEMA kinds;
         CREATE TYPE kinds.mood AS ENUM ('sad', 'ok', 'it''s');
         COMMENT ON TYPE kinds.mood IS 'how it went';
         CREATE DOMAIN positive AS numeric(10,2) DEFAULT 1 NOT NULL CONSTRAINT gt0 CHECK (VALUE > 0);
         CREATE TYPE pair AS (a int, m kinds.mood);
         CREATE TYPE floatrange AS RANGE (subtype = float8, subtype_diff = float8mi);
         CREATE TABLE t (id int PRIMARY KEY, m kinds.mood, moods kinds.mood[], p positive,
                         c pair, r floatrange);
         INSERT INTO t VALUES (1, 'sad', '{ok,sad}', 3.5, ROW(1, 'ok'), '[1.5,2.5)'),
                              (2, 'it''s', NULL, 1, NULL, 'empty');",
    )
    .await;
    let task = p.task(&["shop=shop_new"], ConflictMode::Error);
    let out = migrate(&task, &Default::default()).await;
    assert!(out.report().verified(), "{:#?}", out.report().verification);
    let new = p.target.connect("shop_new").await;
    assert_eq!(fingerprint(&new, "t").await, fingerprint(&p.src, "t").await);
    assert_eq!(
        one(&new, "SELECT enum_range(NULL::kinds.mood)::text").await,
        "{sad,ok,it's}"
    );
    assert_eq!(
        one(
            &new,
            "SELECT obj_description('kinds.mood'::regtype, 'pg_type')"
        )
        .await,
        "how it went"
    );
    assert_eq!(
        one(&new, "SELECT max(m)::text FROM t").await,
        "it's",
        "the enum sorts as on the source"
    );
    assert!(
        new.batch_execute("INSERT INTO t (id, p) VALUES (3, -1)")
            .await
            .is_err(),
        "the domain's check holds"
    );
    assert_eq!(
        one(&new, "SELECT (floatrange(1, 3) -|- floatrange(3, 4))::text").await,
        "true"
    );
}
