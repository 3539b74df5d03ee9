//! The incident the product exists for: a `DELETE` without enough `WHERE` on the
//! master, then rows written after it; the temporary instance still has the deleted
//! rows, and `skip-existing` puts them back without touching anything else.

use lifeboat_migrate::migration::{ConflictMode, Expectation, TableAction};

use crate::support::{Pair, fingerprint, migrate, one};

const ORDERS: &str = "CREATE TABLE orders (
        id bigserial PRIMARY KEY,
        customer text NOT NULL,
        amount numeric(10,2),
        note jsonb,
        created timestamptz NOT NULL DEFAULT now());
    INSERT INTO orders (customer, amount, note, created)
    SELECT 'c' || i, i * 1.25, jsonb_build_object('i', i),
           timestamptz '2024-01-01 00:00:00+00' + i * interval '1 minute'
    FROM generate_series(1, 1000) i;";

#[tokio::test]
async fn skip_existing_brings_deleted_rows_back_and_keeps_new_ones() {
    let p = Pair::start().await;
    p.both(ORDERS).await;
    // The incident on the master, then the application carrying on.
    p.dst(
        "DELETE FROM orders WHERE id <= 300;
           INSERT INTO orders (customer, amount) SELECT 'new' || i, 1 FROM generate_series(1, 10) i;
           UPDATE orders SET amount = 999 WHERE id = 500;",
    )
    .await;
    let before_new = fingerprint(&p.dst, "(SELECT * FROM orders WHERE id > 1000)").await;

    let task = p.task(&["shop.public.orders"], ConflictMode::SkipExisting);
    let out = migrate(&task, &Default::default()).await;
    let report = out.report();

    let t = &report.tables[0];
    assert_eq!(t.action, TableAction::SkipExisting);
    assert_eq!(
        (t.rows_copied, t.rows_inserted, t.rows_skipped),
        (1000, 300, 700)
    );
    assert_eq!(
        one(&p.dst, "SELECT count(*)::text FROM orders").await,
        "1010"
    );
    // The deleted rows are back exactly as the source has them.
    assert_eq!(
        fingerprint(&p.dst, "(SELECT * FROM orders WHERE id <= 300)").await,
        fingerprint(&p.src, "(SELECT * FROM orders WHERE id <= 300)").await
    );
    // What the master did after the incident is untouched.
    assert_eq!(
        fingerprint(&p.dst, "(SELECT * FROM orders WHERE id > 1000)").await,
        before_new
    );
    assert_eq!(
        one(&p.dst, "SELECT amount::text FROM orders WHERE id = 500").await,
        "999.00"
    );
    // The sequence never moves back below values the master handed out since.
    assert_eq!(
        one(&p.dst, "SELECT last_value::text FROM orders_id_seq").await,
        "1010"
    );

    let v = &report.verification[0];
    assert_eq!(v.expectation, Expectation::SourceKeysPresent);
    assert!(v.passed, "{v:#?}");
    assert_eq!((v.only_in_source, v.only_in_target, v.changed), (0, 10, 1));
    assert_eq!((v.source_rows, v.target_rows), (1000, 1010));
}

#[tokio::test]
async fn running_skip_existing_twice_changes_nothing_more() {
    let p = Pair::start().await;
    p.both(ORDERS).await;
    p.dst("DELETE FROM orders WHERE id % 2 = 0").await;
    let mut task = p.task(&["shop.public.orders"], ConflictMode::SkipExisting);
    migrate(&task, &Default::default()).await.report();
    let after_first = fingerprint(&p.dst, "orders").await;
    assert_eq!(after_first, fingerprint(&p.src, "orders").await);
    // A new task (new id): every key is present, nothing is inserted.
    task.spec.task_id = "mt-test2".into();
    let out = migrate(&task, &Default::default()).await;
    assert_eq!(out.report().tables[0].rows_inserted, 0);
    assert_eq!(fingerprint(&p.dst, "orders").await, after_first);
}
