//! The schema migration type: everything a table is made of is recreated (identity
//! columns and owned sequences with their values, keys, checks, partial indexes,
//! generated columns, comments, foreign keys after the data), and hostile names are
//! only ever names.

use lifeboat_migrate::migration::{ConflictMode, TableAction};

use crate::support::{Pair, column, fingerprint, migrate, one};

const SHOP: &str = "
    CREATE TYPE mood AS ENUM ('ok', 'sad');
    CREATE TABLE customers (
        id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        email text NOT NULL UNIQUE CHECK (email LIKE '%@%'));
    COMMENT ON TABLE customers IS 'who buys';
    COMMENT ON COLUMN customers.email IS 'login, unique';
    CREATE TABLE orders (
        id bigserial PRIMARY KEY,
        customer_id int NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
        total numeric(12,2) NOT NULL DEFAULT 0 CONSTRAINT total_positive CHECK (total >= 0),
        status mood,
        tags text[],
        doubled numeric GENERATED ALWAYS AS (total * 2) STORED);
    CREATE INDEX orders_customer_idx ON orders (customer_id) WHERE total > 0;
    COMMENT ON INDEX orders_customer_idx IS 'paying customers';
    INSERT INTO customers (email) SELECT 'c' || i || '@x' FROM generate_series(1, 50) i;
    INSERT INTO orders (customer_id, total, status, tags)
        SELECT 1 + i % 50, i, CASE WHEN i % 3 = 0 THEN 'sad'::mood ELSE 'ok' END, ARRAY['t' || i, NULL]
        FROM generate_series(1, 300) i;
    -- Values handed out then rolled back or deleted still move sequences.
    DELETE FROM orders WHERE id > 290;";

#[tokio::test]
async fn tables_are_recreated_with_everything_they_are_made_of() {
    let p = Pair::start().await;
    p.src(SHOP).await;
    // Types are not tables: they must exist in the target (the pre-check says so).
    p.dst("CREATE TYPE mood AS ENUM ('ok', 'sad')").await;

    let task = p.task(&["shop.public"], ConflictMode::Error);
    let out = migrate(&task, &Default::default()).await;
    let report = out.report();
    assert!(
        report
            .tables
            .iter()
            .all(|t| t.action == TableAction::Create)
    );
    assert!(report.verified(), "{:#?}", report.verification);
    for t in ["customers", "orders"] {
        assert_eq!(
            fingerprint(&p.dst, t).await,
            fingerprint(&p.src, t).await,
            "{t}"
        );
    }
    // Identity and serial columns, with their sequences where the source left them.
    assert_eq!(
        one(&p.dst, "SELECT attidentity::text FROM pg_attribute WHERE attrelid = 'customers'::regclass AND attname = 'id'").await,
        "a"
    );
    assert_eq!(
        one(&p.dst, "SELECT last_value::text FROM orders_id_seq").await,
        "300"
    );
    assert_eq!(
        one(
            &p.dst,
            "INSERT INTO customers (email) VALUES ('new@x') RETURNING id::text"
        )
        .await,
        "51"
    );
    assert_eq!(
        one(&p.dst, "SELECT pg_get_serial_sequence('orders', 'id')").await,
        "public.orders_id_seq"
    );
    // Constraints, indexes, generated column, comments.
    let constraints = column(
        &p.dst,
        "SELECT conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint \
         WHERE conrelid = 'orders'::regclass ORDER BY conname",
    )
    .await;
    assert_eq!(
        constraints,
        [
            "orders_customer_id_fkey FOREIGN KEY (customer_id) REFERENCES customers(id) ON DELETE CASCADE",
            "orders_pkey PRIMARY KEY (id)",
            "total_positive CHECK ((total >= (0)::numeric))",
        ]
    );
    assert_eq!(report.foreign_keys.len(), 1);
    assert!(
        p.dst
            .batch_execute("INSERT INTO customers (email) VALUES ('no at sign')")
            .await
            .is_err()
    );
    assert_eq!(
        one(
            &p.dst,
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'orders_customer_idx'"
        )
        .await,
        "CREATE INDEX orders_customer_idx ON public.orders USING btree (customer_id) WHERE (total > (0)::numeric)"
    );
    assert_eq!(
        one(&p.dst, "SELECT attgenerated::text FROM pg_attribute WHERE attrelid = 'orders'::regclass AND attname = 'doubled'").await,
        "s"
    );
    assert_eq!(
        one(
            &p.dst,
            "SELECT obj_description('customers'::regclass, 'pg_class')"
        )
        .await,
        "who buys"
    );
    assert_eq!(
        one(&p.dst, "SELECT col_description('customers'::regclass, 2)").await,
        "login, unique"
    );
    assert_eq!(
        one(
            &p.dst,
            "SELECT obj_description('orders_customer_idx'::regclass, 'pg_class')"
        )
        .await,
        "paying customers"
    );
    // The foreign key works: it was created after the data, on the new tables.
    p.dst("DELETE FROM customers WHERE id = 1").await;
    assert_eq!(
        one(
            &p.dst,
            "SELECT count(*)::text FROM orders WHERE customer_id = 1"
        )
        .await,
        "0"
    );
}

#[tokio::test]
async fn schema_only_creates_empty_tables() {
    let p = Pair::start().await;
    p.src(SHOP).await;
    p.dst("CREATE TYPE mood AS ENUM ('ok', 'sad')").await;
    let mut task = p.task(&["shop.public.customers"], ConflictMode::Error);
    task.spec.types.data = false;
    let out = migrate(&task, &Default::default()).await;
    assert!(out.report().verification.is_empty());
    assert_eq!(
        one(&p.dst, "SELECT count(*)::text FROM customers").await,
        "0"
    );
    assert_eq!(
        one(
            &p.dst,
            "SELECT count(*)::text FROM pg_constraint WHERE conrelid = 'customers'::regclass"
        )
        .await,
        "3"
    );
}

#[tokio::test]
async fn injected_names_are_only_names() {
    let p = Pair::start().await;
    p.both("CREATE TABLE y (id int); INSERT INTO y VALUES (1);")
        .await;
    p.src(
        "CREATE TABLE \"x\"\"; DROP TABLE y; --\" (
             \"a\"\"b\" int PRIMARY KEY,
             \"'; DROP TABLE y; --\" text DEFAULT ''';DROP TABLE y;--');
         CREATE INDEX \"i\"\"; DROP TABLE y; --\" ON \"x\"\"; DROP TABLE y; --\" (\"'; DROP TABLE y; --\");
         COMMENT ON TABLE \"x\"\"; DROP TABLE y; --\" IS 'it''s''; DROP TABLE y; --';
         INSERT INTO \"x\"\"; DROP TABLE y; --\" SELECT i, 'v' || i FROM generate_series(1, 20) i;",
    )
    .await;
    let object = "shop.public.\"x\"\"; DROP TABLE y; --\"=\"z\"\"); DROP TABLE y; --\"";
    let task = p.task(&[object], ConflictMode::Error);
    let out = migrate(&task, &Default::default()).await;
    assert!(out.report().verified());
    let copied = "public.\"z\"\"); DROP TABLE y; --\"";
    assert_eq!(
        one(&p.dst, &format!("SELECT count(*)::text FROM {copied}")).await,
        "20"
    );
    assert_eq!(
        one(
            &p.dst,
            &format!(
                "SELECT obj_description('{}'::regclass, 'pg_class')",
                copied.replace('\'', "''")
            )
        )
        .await,
        "it's'; DROP TABLE y; --"
    );
    // And the same table merged again, through the staging path.
    let mut again = p.task(&[object], ConflictMode::SkipExisting);
    again.spec.task_id = "mt-test2".into();
    p.dst(&format!("DELETE FROM {copied} WHERE \"a\"\"b\" > 10"))
        .await;
    let out = migrate(&again, &Default::default()).await;
    assert_eq!(out.report().tables[0].rows_inserted, 10);
    for c in [&p.src, &p.dst] {
        assert_eq!(one(c, "SELECT count(*)::text FROM y").await, "1");
    }
}

/// A column that owns two sequences: a serial's, whose default was dropped, and an
/// identity's added after. The identity column is recreated with the identity's
/// sequence, the serial's sequence beside it, both at the source's values.
#[tokio::test]
async fn a_column_owning_a_serial_and_an_identity_sequence_is_recreated() {
    let p = Pair::start().await;
    p.src(
        "CREATE TABLE t (id serial, v text);
         INSERT INTO t (v) SELECT 'old' || i FROM generate_series(1, 5) i;
         ALTER TABLE t ALTER COLUMN id DROP DEFAULT;
         ALTER TABLE t ALTER COLUMN id ADD GENERATED BY DEFAULT AS IDENTITY (START WITH 100);
         INSERT INTO t (v) SELECT 'new' || i FROM generate_series(1, 7) i;",
    )
    .await;
    let task = p.task(&["shop.public.t=t_back"], ConflictMode::Error);
    let out = migrate(&task, &Default::default()).await;
    assert_eq!(out.report().tables[0].action, TableAction::Create);
    assert!(out.report().verified(), "{:?}", out.report());
    assert_eq!(
        fingerprint(&p.dst, "t_back").await,
        fingerprint(&p.src, "t").await
    );
    assert_eq!(
        one(
            &p.dst,
            "SELECT attidentity::text || coalesce(pg_get_expr(d.adbin, d.adrelid), '') \
             FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
             WHERE a.attrelid = 't_back'::regclass AND a.attname = 'id'"
        )
        .await,
        "d",
        "an identity column, without the serial's default"
    );
    // The identity goes on from the source's value.
    assert_eq!(
        one(
            &p.dst,
            "INSERT INTO t_back (v) VALUES ('next') RETURNING id::text"
        )
        .await,
        "107"
    );
    assert_eq!(
        column(
            &p.dst,
            "SELECT c.relname::text FROM pg_depend d JOIN pg_class c ON c.oid = d.objid \
             WHERE d.refobjid = 't_back'::regclass AND c.relkind = 'S' ORDER BY 1"
        )
        .await
        .len(),
        2,
        "both sequences, owned by the column"
    );
}
