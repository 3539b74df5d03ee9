//! Conflict modes on an existing target table: overwrite saves what it replaces,
//! replace keeps the old table, error refuses before anything is written.

use lifeboat_migrate::migration::{ConflictMode, Expectation, PrecheckStatus, TableAction};

use crate::support::{Pair, assert_status, check, column, fingerprint, item, migrate, one};

const ITEMS: &str = "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, qty int);
    INSERT INTO items SELECT i, 'item ' || i, i FROM generate_series(1, 100) i;";

#[tokio::test]
async fn overwrite_replaces_rows_by_key_and_saves_the_old_ones() {
    let p = Pair::start().await;
    p.both(ITEMS).await;
    // A bad UPDATE on the master, and rows it gained since.
    p.dst(
        "UPDATE items SET qty = 0 WHERE id <= 40;
           DELETE FROM items WHERE id > 90;
           INSERT INTO items VALUES (500, 'new', 5);",
    )
    .await;
    let damaged = fingerprint(&p.dst, "(SELECT * FROM items WHERE id <= 90)").await;

    let task = p.task(&["shop.public.items"], ConflictMode::Overwrite);
    let out = migrate(&task, &Default::default()).await;
    let t = &out.report().tables[0];
    assert_eq!(t.action, TableAction::Overwrite);
    assert_eq!((t.rows_replaced, t.rows_inserted), (90, 10));
    let saved = t.kept_table.clone().expect("saved rows table");
    assert_eq!(saved, "public.items_overwritten_mt_test1");

    assert_eq!(
        fingerprint(&p.dst, "(SELECT * FROM items WHERE id <= 100)").await,
        fingerprint(&p.src, "items").await
    );
    assert_eq!(
        one(&p.dst, "SELECT name FROM items WHERE id = 500").await,
        "new"
    );
    // Exactly the rows that were replaced, as they were.
    assert_eq!(fingerprint(&p.dst, &saved).await, damaged);
    let v = &out.report().verification[0];
    assert_eq!(v.expectation, Expectation::SourceRowsPresent);
    assert!(v.passed, "{v:#?}");
}

#[tokio::test]
async fn replace_swaps_the_table_and_keeps_the_old_one() {
    let p = Pair::start().await;
    p.both(ITEMS).await;
    p.both("CREATE INDEX items_name_idx ON items (name)").await;
    p.dst("TRUNCATE items; INSERT INTO items VALUES (1, 'wrong', -1)")
        .await;

    let task = p.task(&["shop.public.items"], ConflictMode::Replace);
    let items = check(&task).await;
    assert_status(&items, "name_conflicts", PrecheckStatus::Passed);
    let out = migrate(&task, &Default::default()).await;
    let t = &out.report().tables[0];
    assert_eq!(t.action, TableAction::Replace);
    assert_eq!(
        t.kept_table.as_deref(),
        Some("public.items_replaced_mt_test1")
    );
    assert_eq!(
        fingerprint(&p.dst, "items").await,
        fingerprint(&p.src, "items").await
    );
    assert_eq!(
        one(&p.dst, "SELECT name FROM items_replaced_mt_test1").await,
        "wrong"
    );
    // The new table has the original names; the old one's were moved aside.
    let names = column(
        &p.dst,
        "SELECT tablename || ':' || indexname FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1",
    )
    .await;
    assert_eq!(
        names,
        [
            "items:items_name_idx",
            "items:items_pkey",
            "items_replaced_mt_test1:items_name_idx_replaced_mt_test1",
            "items_replaced_mt_test1:items_pkey_replaced_mt_test1",
        ]
    );
    assert!(out.report().verified());
}

#[tokio::test]
async fn error_mode_fails_the_precheck_naming_each_conflict_and_run_writes_nothing() {
    let p = Pair::start().await;
    p.both(ITEMS).await;
    p.both("CREATE TABLE other (id int PRIMARY KEY)").await;
    p.src("CREATE TABLE fresh (id int)").await;
    let before = fingerprint(&p.dst, "items").await;

    let task = p.task(&["shop.public"], ConflictMode::Error);
    let items = check(&task).await;
    let conflicts = item(&items, "name_conflicts");
    assert_eq!(conflicts.status, PrecheckStatus::Failed);
    assert!(
        conflicts
            .detail
            .contains("shop.public.items already exists in the target"),
        "{conflicts:#?}"
    );
    assert!(
        conflicts
            .detail
            .contains("shop.public.other already exists in the target"),
        "{conflicts:#?}"
    );
    assert!(!conflicts.detail.contains("fresh"), "{conflicts:#?}");
    assert!(conflicts.advice.contains("--conflict"));

    let out = migrate(&task, &Default::default()).await;
    let err = out.result.expect_err("conflicts must fail the run");
    assert!(
        err.to_string().contains("already exists in the target"),
        "{err}"
    );
    assert_eq!(fingerprint(&p.dst, "items").await, before);
    assert_eq!(
        one(
            &p.dst,
            "SELECT count(*)::text FROM pg_tables WHERE tablename = 'fresh'"
        )
        .await,
        "0",
        "no table is migrated while another conflicts"
    );
}

#[tokio::test]
async fn data_only_into_an_existing_empty_table() {
    let p = Pair::start().await;
    p.both(ITEMS).await;
    p.dst("TRUNCATE items").await;
    let task = p.data_only(&["shop.public.items"], ConflictMode::Error);
    let out = migrate(&task, &Default::default()).await;
    assert_eq!(out.report().tables[0].action, TableAction::Append);
    assert_eq!(
        fingerprint(&p.dst, "items").await,
        fingerprint(&p.src, "items").await
    );
}

#[tokio::test]
async fn a_failing_table_is_named_with_the_reason_and_left_as_it_was() {
    let p = Pair::start().await;
    p.both("CREATE TABLE users (id int PRIMARY KEY, email text NOT NULL UNIQUE)")
        .await;
    p.src("INSERT INTO users SELECT i, 'u' || i || '@x' FROM generate_series(1, 100) i")
        .await;
    // The master reused an address for a new user: the source's row 5 cannot come back.
    p.dst(
        "INSERT INTO users SELECT i, 'u' || i || '@x' FROM generate_series(1, 100) i WHERE i <> 5;
           INSERT INTO users VALUES (1000, 'u5@x');",
    )
    .await;
    let before = fingerprint(&p.dst, "users").await;
    let task = p.task(&["shop.public.users"], ConflictMode::SkipExisting);
    let out = migrate(&task, &Default::default()).await;
    assert!(out.finished().is_empty());
    let err = out
        .result
        .expect_err("the unique email must stop the table");
    let text = err.to_string();
    assert!(text.starts_with("table shop.public.users: "), "{text}");
    assert!(text.contains("users_email_key"), "{text}");
    assert!(!err.hint().is_empty());
    assert_eq!(fingerprint(&p.dst, "users").await, before);
}

#[tokio::test]
async fn merges_write_identity_always_and_skip_generated_columns() {
    let p = Pair::start().await;
    p.both(
        "CREATE TABLE tickets (
             id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
             price numeric NOT NULL,
             with_tax numeric GENERATED ALWAYS AS (price * 1.2) STORED);
         INSERT INTO tickets (price) SELECT i FROM generate_series(1, 30) i;",
    )
    .await;
    p.dst("DELETE FROM tickets WHERE id <= 10; UPDATE tickets SET price = 0 WHERE id = 20;")
        .await;
    let task = p.task(&["shop.public.tickets"], ConflictMode::Overwrite);
    let out = migrate(&task, &Default::default()).await;
    let t = &out.report().tables[0];
    assert_eq!((t.rows_inserted, t.rows_replaced), (10, 20));
    assert_eq!(
        fingerprint(&p.dst, "tickets").await,
        fingerprint(&p.src, "tickets").await
    );
    assert_eq!(
        one(&p.dst, "SELECT with_tax::text FROM tickets WHERE id = 20").await,
        "24.0"
    );
}
