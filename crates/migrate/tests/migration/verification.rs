//! Verification inside the table's transaction: a created table is read back before
//! the commit and compared with the stream read from the source, a repair checks the
//! rows it wrote; when that finds a difference the table is compared row by row after
//! the commit, and the report gives both findings.

use std::collections::HashSet;

use lifeboat_migrate::migration::{ConflictMode, Expectation, ProgressEvent, TableAction};

use crate::support::{Pair, fingerprint, migrate};

/// Rows whose values must survive exactly, some TOASTed.
const ITEMS: &str = "CREATE TABLE items (
        id int PRIMARY KEY,
        name text NOT NULL,
        price numeric(30,10),
        body text,
        doubled int GENERATED ALWAYS AS (id * 2) STORED);
    INSERT INTO items (id, name, price, body)
    SELECT i, 'item ' || i, i / 7.0,
           CASE WHEN i % 100 = 0 THEN repeat(md5(i::text), 400) END
    FROM generate_series(1, 5000) i;";

fn checked(events: &[ProgressEvent]) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, ProgressEvent::TableChecking { .. }))
        .count()
}

#[tokio::test]
async fn a_created_table_is_verified_by_reading_it_back_before_the_commit() {
    let p = Pair::start().await;
    p.src(ITEMS).await;
    p.src(
        "CREATE TABLE events (id int, at date NOT NULL, what text) PARTITION BY RANGE (at);
         CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
         CREATE TABLE events_rest PARTITION OF events DEFAULT;
         INSERT INTO events SELECT i, date '2025-06-01' + i, 'e' || i FROM generate_series(1, 900) i;",
    )
    .await;
    let task = p.task(
        &["shop.public.items=items_back", "shop.public.events"],
        ConflictMode::Error,
    );
    let out = migrate(&task, &HashSet::new()).await;
    let report = out.report();
    assert_eq!(checked(&out.events), 2, "{:#?}", out.events);
    let by_table = |name: &str| {
        report
            .verification
            .iter()
            .find(|v| v.table.contains(name))
            .unwrap_or_else(|| panic!("no verification of {name}: {report:#?}"))
    };
    let items = by_table("items");
    assert_eq!(items.expectation, Expectation::Identical);
    assert!(items.passed, "{items:#?}");
    assert_eq!((items.source_rows, items.target_rows), (5000, 5000));
    assert_eq!(
        items.detail,
        "5000 rows in source shop.public.items, 5000 in target shop.public.items_back: read back \
         before the commit, the target's rows are the rows read from the source's snapshot, every \
         copied column byte for byte (generated columns are computed by the target from them) \
         (SHA-256 of both COPY streams)"
    );
    let events = by_table("events");
    assert!(events.passed, "{events:#?}");
    assert_eq!((events.source_rows, events.target_rows), (900, 900));
    assert!(
        events.detail.contains("read back before the commit"),
        "{events:#?}"
    );
    assert_eq!(
        fingerprint(&p.dst, "items_back").await,
        fingerprint(&p.src, "items").await
    );
    assert_eq!(
        fingerprint(&p.dst, "events").await,
        fingerprint(&p.src, "events").await
    );
}

#[tokio::test]
async fn a_created_table_that_reads_back_different_is_compared_row_by_row_and_fails() {
    let p = Pair::start().await;
    p.src(ITEMS).await;
    // Whatever the target does to rows as they arrive (here a trigger that every new
    // table gets) is what verification is for.
    p.dst(
        "CREATE FUNCTION shout() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN IF NEW.id % 1000 = 0 THEN NEW.name := upper(NEW.name); END IF; RETURN NEW; END $$;
         CREATE FUNCTION add_shout() RETURNS event_trigger LANGUAGE plpgsql AS $$
         DECLARE r record;
         BEGIN
           FOR r IN SELECT * FROM pg_event_trigger_ddl_commands() WHERE command_tag = 'CREATE TABLE' AND schema_name = 'public' LOOP
             EXECUTE format('CREATE TRIGGER shout BEFORE INSERT ON %s FOR EACH ROW EXECUTE FUNCTION public.shout()', r.object_identity);
           END LOOP;
         END $$;
         CREATE EVENT TRIGGER add_shout ON ddl_command_end WHEN TAG IN ('CREATE TABLE') EXECUTE FUNCTION public.add_shout();",
    )
    .await;
    let task = p.task(&["shop.public.items"], ConflictMode::Error);
    let out = migrate(&task, &HashSet::new()).await;
    let v = &out.report().verification[0];
    assert!(!v.passed, "{v:#?}");
    assert_eq!((v.only_in_source, v.only_in_target, v.changed), (0, 0, 5));
    assert!(
        v.detail.starts_with(
            "read back before the commit, the target's rows (5000 rows) are not byte for byte the \
             5000 rows read from the source's snapshot, in the same order; compared row by row \
             after the commit; 5000 rows in source"
        ),
        "{v:#?}"
    );
    assert!(
        v.detail.contains("5 rows with the same key that differ"),
        "{v:#?}"
    );
}

#[tokio::test]
async fn a_repair_checks_the_rows_it_wrote_and_a_wrong_one_fails_verification() {
    let p = Pair::start().await;
    p.src(ITEMS).await;
    p.dst(ITEMS).await;
    p.dst("UPDATE items SET price = 0 WHERE id % 500 = 0; DELETE FROM items WHERE id > 4990;")
        .await;
    let task = p.data_only(&["shop.public.items"], ConflictMode::Repair);
    let out = migrate(&task, &HashSet::new()).await;
    let t = &out.report().tables[0];
    assert_eq!(t.action, TableAction::Repair);
    assert_eq!((t.rows_updated, t.rows_inserted), (9, 10), "{t:#?}");
    assert_eq!(checked(&out.events), 1);
    let v = &out.report().verification[0];
    assert!(v.passed, "{v:#?}");
    assert_eq!((v.source_rows, v.target_rows), (5000, 5000));
    assert_eq!(
        v.detail,
        "5000 rows in source shop.public.items, 5000 in target shop.public.items: the comparison \
         that chose what to repair found every other row equal to the source's, under a lock kept \
         to the commit; checked before the commit, the 19 rows the repair wrote hold the source's \
         values; 0 rows only in the target were kept"
    );
    assert_eq!(
        fingerprint(&p.dst, "items").await,
        fingerprint(&p.src, "items").await
    );

    // A target that changes what the repair writes fails verification, with both
    // findings in the report.
    p.dst(
        "UPDATE items SET price = 0 WHERE id % 500 = 0;
         CREATE FUNCTION skew() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN NEW.price := NEW.price + 1; RETURN NEW; END $$;
         CREATE TRIGGER skew BEFORE UPDATE ON items FOR EACH ROW EXECUTE FUNCTION skew();",
    )
    .await;
    let mut task = p.data_only(&["shop.public.items"], ConflictMode::Repair);
    task.spec.task_id = "mt-test2".into();
    let out = migrate(&task, &HashSet::new()).await;
    let v = &out.report().verification[0];
    assert!(!v.passed, "{v:#?}");
    assert_eq!(v.expectation, Expectation::SourceRowsPresent);
    assert_eq!(v.changed, 10, "{v:#?}");
    assert!(
        v.detail.starts_with(
            "checked before the commit, 10 of the 10 staged source rows are not in the target as \
             the source holds them"
        ),
        "{v:#?}"
    );
}
