//! The repair conflict mode: only the rows that differ change, every changed or
//! deleted row is saved first, the pre-check shows what will change, and a repair
//! interrupted before its commit leaves the table as it was.

use std::collections::HashSet;

use lifeboat_migrate::migration::{
    ConflictMode, Expectation, PrecheckStatus, ProgressEvent, TableAction,
};

use crate::support::{Pair, assert_status, fingerprint, item, migrate, migrate_until, one};

/// 20,000 rows with values whose text must survive exactly: numerics of high
/// precision, negative zero, time zones, bytea, arrays.
const ORDERS: &str = "CREATE TABLE orders (
        id int PRIMARY KEY,
        customer text NOT NULL,
        total numeric(30,10),
        ratio float8,
        placed timestamptz,
        payload bytea,
        tags text[]);
    INSERT INTO orders
    SELECT i, 'customer ' || (i % 97), i / 7.0, CASE WHEN i % 2 = 0 THEN '-0'::float8 ELSE i / 3.0 END,
           '2026-11-24 08:21:52.123456+01'::timestamptz + i * interval '1 minute',
           decode(md5(i::text), 'hex'), ARRAY['a' || i, NULL, 'x,y']
    FROM generate_series(1, 20000) i;";

/// The damage: a bad UPDATE of 66 rows, a DELETE of 10, and 3 rows written since.
const DAMAGE: &str = "UPDATE orders SET total = 0, customer = 'wrong' WHERE id % 300 = 0;
    DELETE FROM orders WHERE id BETWEEN 5001 AND 5010;
    INSERT INTO orders (id, customer) VALUES (30001, 'new 1'), (30002, 'new 2'), (30003, 'new 3');";

/// The rows no repair should touch, with the transaction that wrote each: a row
/// rewritten by the repair gets a new `xmin`.
const UNTOUCHED: &str = "(SELECT id, xmin::text AS written_by FROM orders \
    WHERE id % 300 <> 0 AND id NOT BETWEEN 5001 AND 5010 AND id <= 20000)";

#[tokio::test]
async fn repair_changes_only_the_rows_that_differ_and_saves_the_ones_it_changes() {
    let p = Pair::start().await;
    p.both(ORDERS).await;
    p.dst(DAMAGE).await;
    let damaged = fingerprint(&p.dst, "(SELECT * FROM orders WHERE id % 300 = 0)").await;
    let untouched = fingerprint(&p.dst, UNTOUCHED).await;

    let task = p.task(&["shop.public.orders"], ConflictMode::Repair);
    let items = crate::support::check(&task).await;
    assert_status(&items, "repair_preview", PrecheckStatus::Passed);
    let preview = &item(&items, "repair_preview").detail;
    assert!(
        preview.starts_with(
            "shop.public.orders: 10 rows to insert (id=5001; id=5002; id=5003, ...), 66 to update (saved first) (id=300: "
        ),
        "{preview}"
    );
    assert!(
        preview
            .contains("customer \"wrong\" -> \"customer 9\", total 0.0000000000 -> 42.8571428571"),
        "{preview}"
    );
    assert!(
        preview.contains(
            "3 only in the target, kept (--delete-rows-only-in-target deletes them) (id=30001; id=30002; id=30003)"
        ),
        "{preview}"
    );

    let out = migrate(&task, &HashSet::new()).await;
    let t = &out.report().tables[0];
    assert_eq!(t.action, TableAction::Repair);
    assert_eq!(
        (
            t.rows_copied,
            t.rows_inserted,
            t.rows_updated,
            t.rows_deleted,
            t.rows_only_in_target,
            t.rows_untouched
        ),
        (76, 10, 66, 0, 3, 19_927),
        "{t:#?}"
    );
    let saved = t.kept_table.clone().expect("saved rows table");
    assert_eq!(saved, "public.orders_repaired_mt_test1");
    // Exactly the rows the repair changed, as they were.
    assert_eq!(fingerprint(&p.dst, &saved).await, damaged);
    // Every source row is back, exactly; the rows written since are kept.
    assert_eq!(
        fingerprint(&p.dst, "(SELECT * FROM orders WHERE id <= 20000)").await,
        fingerprint(&p.src, "orders").await
    );
    assert_eq!(
        one(
            &p.dst,
            "SELECT string_agg(customer, ',' ORDER BY id) FROM orders WHERE id > 20000"
        )
        .await,
        "new 1,new 2,new 3"
    );
    // Nothing else was written.
    assert_eq!(fingerprint(&p.dst, UNTOUCHED).await, untouched);
    let v = &out.report().verification[0];
    assert_eq!(v.expectation, Expectation::SourceRowsPresent);
    assert!(v.passed, "{v:#?}");
}

#[tokio::test]
async fn repair_deletes_rows_only_in_the_target_when_asked_and_saves_them() {
    let p = Pair::start().await;
    p.both(ORDERS).await;
    p.dst(DAMAGE).await;
    let changed_or_new = fingerprint(
        &p.dst,
        "(SELECT * FROM orders WHERE id % 300 = 0 OR id > 20000)",
    )
    .await;

    let mut task = p.task(&["shop.public.orders"], ConflictMode::Repair);
    task.spec.delete_rows_only_in_target = true;
    let items = crate::support::check(&task).await;
    assert!(
        item(&items, "repair_preview")
            .detail
            .contains("3 to delete (saved first) (id=30001; id=30002; id=30003)"),
        "{items:#?}"
    );
    let out = migrate(&task, &HashSet::new()).await;
    let t = &out.report().tables[0];
    assert_eq!(
        (
            t.rows_inserted,
            t.rows_updated,
            t.rows_deleted,
            t.rows_untouched
        ),
        (10, 66, 3, 19_924),
        "{t:#?}"
    );
    let saved = t.kept_table.clone().expect("saved rows table");
    assert_eq!(fingerprint(&p.dst, &saved).await, changed_or_new);
    assert_eq!(
        fingerprint(&p.dst, "orders").await,
        fingerprint(&p.src, "orders").await
    );
    let v = &out.report().verification[0];
    assert_eq!(v.expectation, Expectation::Identical);
    assert!(v.passed, "{v:#?}");
}

#[tokio::test]
async fn a_repair_interrupted_before_its_commit_leaves_the_table_as_it_was_and_runs_again() {
    let p = Pair::start().await;
    p.both(ORDERS).await;
    p.dst(DAMAGE).await;
    let before = fingerprint(&p.dst, "orders").await;
    let task = p.task(&["shop.public.orders"], ConflictMode::Repair);

    // Stopped once the differences are known and the rows are being written.
    let first = migrate_until(&task, &HashSet::new(), |e| {
        matches!(e, ProgressEvent::TableBuilding { .. })
    })
    .await;
    assert!(first.result.is_err(), "the run was cancelled");
    assert_eq!(fingerprint(&p.dst, "orders").await, before);
    assert_eq!(
        one(
            &p.dst,
            "SELECT count(*)::text FROM pg_class WHERE relname LIKE 'orders_repaired%'"
        )
        .await,
        "0"
    );

    let second = migrate(&task, &first.finished()).await;
    let t = &second.report().tables[0];
    assert_eq!((t.rows_inserted, t.rows_updated), (10, 66), "{t:#?}");
    assert_eq!(
        fingerprint(&p.dst, "(SELECT * FROM orders WHERE id <= 20000)").await,
        fingerprint(&p.src, "orders").await
    );
    // Run again after the commit (the caller lost the finished table): the journal
    // knows, and nothing is repaired twice.
    let third = migrate(&task, &HashSet::new()).await;
    assert!(third.report().tables[0].resumed);
}

#[tokio::test]
async fn an_identical_table_is_left_alone() {
    let p = Pair::start().await;
    p.both(ORDERS).await;
    let untouched = fingerprint(&p.dst, UNTOUCHED).await;
    let task = p.task(&["shop.public.orders"], ConflictMode::Repair);
    let items = crate::support::check(&task).await;
    assert_eq!(
        item(&items, "repair_preview").detail,
        "shop.public.orders: no row differs; nothing will change"
    );
    let out = migrate(&task, &HashSet::new()).await;
    let t = &out.report().tables[0];
    assert_eq!(
        (
            t.rows_copied,
            t.rows_inserted,
            t.rows_updated,
            t.rows_untouched
        ),
        (0, 0, 0, 20_000)
    );
    assert_eq!(t.kept_table, None);
    assert_eq!(fingerprint(&p.dst, UNTOUCHED).await, untouched);
}

#[tokio::test]
async fn a_partitioned_table_is_repaired_through_its_partitions() {
    let p = Pair::start().await;
    p.both(
        "CREATE TABLE events (id int, day date, what text, PRIMARY KEY (id, day)) PARTITION BY RANGE (day);
         CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
         CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
         INSERT INTO events SELECT i, date '2025-06-01' + (i % 400), 'event ' || i FROM generate_series(1, 4000) i;",
    )
    .await;
    p.dst("UPDATE events SET what = 'wrong' WHERE id % 100 = 0; DELETE FROM events WHERE id <= 5;")
        .await;
    let task = p.task(&["shop.public.events"], ConflictMode::Repair);
    let out = migrate(&task, &HashSet::new()).await;
    let t = &out.report().tables[0];
    assert_eq!(
        (t.rows_inserted, t.rows_updated, t.rows_untouched),
        (5, 40, 3955),
        "{t:#?}"
    );
    for leaf in ["events_2025", "events_2026"] {
        assert_eq!(
            fingerprint(&p.dst, leaf).await,
            fingerprint(&p.src, leaf).await,
            "{leaf}"
        );
    }
    assert!(out.report().verification[0].passed);
}
