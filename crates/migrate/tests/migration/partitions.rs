//! Partitioned tables migrate whole: the tree (a sub-partitioned partition and the
//! default partitions included), its key, bounds, keys, indexes and identity, each
//! leaf's rows; renamed trees get free derived partition names; a partition named
//! alone and a conflict are refused by the pre-check.

use lifeboat_migrate::migration::{
    ConflictMode, MigrationError, PrecheckStatus, ProgressEvent, TableAction, TableOutcome,
};
use tokio_postgres::Client;

use crate::support::{Pair, assert_status, check, column, fingerprint, item, migrate, one};

/// A range-partitioned table: three yearly partitions (2024 sub-partitioned by
/// list) and a default partition, 3000 rows over all five leaves.
const MEASUREMENTS: &str = "
    CREATE TABLE measurements (
        id int GENERATED ALWAYS AS IDENTITY,
        at date NOT NULL,
        region text NOT NULL,
        v numeric,
        note text,
        PRIMARY KEY (id, at, region)
    ) PARTITION BY RANGE (at);
    CREATE INDEX measurements_v_idx ON measurements (v);
    ALTER TABLE measurements ADD CONSTRAINT measurements_v_check CHECK (v >= 0);
    COMMENT ON TABLE measurements IS 'sensor readings';
    CREATE TABLE measurements_2023 PARTITION OF measurements
        FOR VALUES FROM ('2023-01-01') TO ('2024-01-01');
    CREATE TABLE measurements_2024 PARTITION OF measurements
        FOR VALUES FROM ('2024-01-01') TO ('2025-01-01') PARTITION BY LIST (region);
    CREATE TABLE measurements_2024_eu PARTITION OF measurements_2024 FOR VALUES IN ('eu');
    CREATE TABLE measurements_2024_other PARTITION OF measurements_2024 DEFAULT;
    CREATE TABLE measurements_2025 PARTITION OF measurements
        FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
    CREATE TABLE measurements_default PARTITION OF measurements DEFAULT;
    CREATE INDEX measurements_2023_note_idx ON measurements_2023 (note);
    COMMENT ON TABLE measurements_2025 IS 'this year';
    INSERT INTO measurements (at, region, v)
        SELECT date '2023-01-01' + i % 1200, CASE WHEN i % 3 = 0 THEN 'eu' ELSE 'us' END, i
        FROM generate_series(1, 3000) i;
    ANALYZE measurements;";

/// `leaf:rows` for every leaf of `table` holding rows, by name without schema.
async fn leaf_counts(c: &Client, table: &str) -> Vec<String> {
    column(
        c,
        &format!(
            "SELECT c.relname || ':' || count(*) FROM {table} t JOIN pg_class c ON c.oid = t.tableoid \
             GROUP BY c.relname ORDER BY 1"
        ),
    )
    .await
}

/// `partition:bound` for every partition of `table`, every level.
async fn bounds(c: &Client, table: &str) -> Vec<String> {
    column(
        c,
        &format!(
            "SELECT c.relname || ':' || pg_get_expr(c.relpartbound, c.oid) \
             FROM pg_partition_tree('{table}') t JOIN pg_class c ON c.oid = t.relid \
             WHERE t.level > 0 ORDER BY 1"
        ),
    )
    .await
}

/// `list`'s entries with `from` replaced by `to` at the start.
fn renamed(list: &[String], from: &str, to: &str) -> Vec<String> {
    let mut out: Vec<String> = list
        .iter()
        .map(|s| match s.strip_prefix(from) {
            Some(rest) => format!("{to}{rest}"),
            None => s.clone(),
        })
        .collect();
    out.sort();
    out
}

/// The one table of a run's report.
fn only_table(tables: &[TableOutcome]) -> &TableOutcome {
    assert_eq!(tables.len(), 1, "{tables:#?}");
    &tables[0]
}

/// What every migrated copy of [`MEASUREMENTS`] must hold, under `name` in `dst`:
/// the source's rows leaf by leaf, its bounds, key, indexes and comments.
async fn assert_same_tree(src: &Client, dst: &Client, name: &str) {
    let source_leaves = leaf_counts(src, "measurements").await;
    assert_eq!(
        source_leaves.len(),
        5,
        "rows in every leaf: {source_leaves:?}"
    );
    assert_eq!(
        leaf_counts(dst, name).await,
        renamed(&source_leaves, "measurements", name)
    );
    assert_eq!(
        bounds(dst, name).await,
        renamed(&bounds(src, "measurements").await, "measurements", name)
    );
    assert_eq!(
        fingerprint(dst, name).await,
        fingerprint(src, "measurements").await
    );
    assert_eq!(
        one(
            dst,
            &format!("SELECT pg_get_partkeydef('{name}'::regclass)")
        )
        .await,
        "RANGE (at)"
    );
    assert_eq!(
        one(
            dst,
            &format!(
                "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = '{name}'::regclass AND contype = 'p'"
            )
        )
        .await,
        "PRIMARY KEY (id, at, region)"
    );
    // The partitioned table's index and check reached every leaf; the partition's own
    // index came along.
    assert_eq!(
        one(
            dst,
            &format!(
                "SELECT count(*)::text FROM pg_partition_tree('{name}') t JOIN pg_index i ON i.indrelid = t.relid \
                 WHERE t.isleaf AND pg_get_indexdef(i.indexrelid) LIKE '%(v)'"
            )
        )
        .await,
        "5"
    );
    assert_eq!(
        one(
            dst,
            &format!(
                "SELECT count(*)::text FROM pg_partition_tree('{name}') t JOIN pg_constraint k ON k.conrelid = t.relid \
                 WHERE t.isleaf AND k.contype = 'c'"
            )
        )
        .await,
        "5"
    );
    assert_eq!(
        one(
            dst,
            &format!(
                "SELECT count(*)::text FROM pg_index WHERE indrelid = '{name}_2023'::regclass \
                 AND pg_get_indexdef(indexrelid) LIKE '%(note)'"
            )
        )
        .await,
        "1"
    );
    assert_eq!(
        one(
            dst,
            &format!("SELECT obj_description('{name}'::regclass, 'pg_class')")
        )
        .await,
        "sensor readings"
    );
    assert_eq!(
        one(
            dst,
            &format!("SELECT obj_description('{name}_2025'::regclass, 'pg_class')")
        )
        .await,
        "this year"
    );
    // The identity continues after the source's last value, and a row sent to the
    // partitioned table lands in its leaf.
    assert_eq!(
        one(
            dst,
            &format!(
                "INSERT INTO {name} (at, region, v) VALUES ('2024-06-01', 'eu', 1) \
                 RETURNING tableoid::regclass::text || ':' || id"
            )
        )
        .await,
        format!("{name}_2024_eu:3001")
    );
}

#[tokio::test]
async fn a_partitioned_table_into_a_new_database_under_a_new_name() {
    let p = Pair::start().await;
    p.src(MEASUREMENTS).await;
    let task = p.task(
        &["shop.public.measurements=shop_new.public.m_restored"],
        ConflictMode::Error,
    );
    let items = check(&task).await;
    let i = item(&items, "partitions");
    assert_eq!(i.status, PrecheckStatus::Passed, "{i:#?}");
    assert!(
        i.detail.contains("brings 6 partitions (5 holding rows)")
            && i.detail
                .contains("measurements_2024_eu=shop_new.public.m_restored_2024_eu"),
        "{i:#?}"
    );
    assert!(
        !items.iter().any(|i| i.id == "unsupported_objects"),
        "{items:#?}"
    );

    let out = migrate(&task, &Default::default()).await;
    let report = out.report();
    let t = only_table(&report.tables);
    assert_eq!(t.action, TableAction::Create);
    assert_eq!(t.rows_copied, 3000);
    assert_eq!(t.target, "shop_new.public.m_restored");
    let named: Vec<String> = t
        .partitions
        .iter()
        .map(|p| format!("{}={}:{}", p.source, p.target, p.rows_copied))
        .collect();
    assert!(
        named.contains(&"shop.public.measurements_2024=shop_new.public.m_restored_2024:0".into()),
        "{named:?}"
    );
    assert_eq!(
        t.partitions.iter().map(|p| p.rows_copied).sum::<u64>(),
        3000
    );
    let v = only_table_verification(report);
    assert!(
        v.passed && v.source_rows == 3000 && v.target_rows == 3000,
        "{v:#?}"
    );
    // Progress is summed over the leaves, against the leaves' estimates.
    let last = out.events.iter().rev().find_map(|e| match e {
        ProgressEvent::TableCopying {
            rows,
            estimated_rows,
            ..
        } => Some((*rows, *estimated_rows)),
        _ => None,
    });
    assert_eq!(last, Some((3000, 3000)));
    let planned = out.events.iter().find_map(|e| match e {
        ProgressEvent::Planned { tables } => Some(tables[0].estimated_bytes.to_string()),
        _ => None,
    });
    assert_eq!(
        planned.as_deref(),
        Some(
            one(
                &p.src,
                "SELECT sum(pg_table_size(relid))::text FROM pg_partition_tree('measurements') WHERE isleaf"
            )
            .await
            .as_str()
        ),
        "the size is the leaves' sum"
    );

    let new = p.target.connect("shop_new").await;
    assert_same_tree(&p.src, &new, "m_restored").await;
    assert_eq!(
        one(
            &new,
            "SELECT count(*)::text FROM lifeboat_migration.journal"
        )
        .await,
        "1",
        "the whole tree is one table of the journal"
    );

    // Without a rename the partitions keep their names.
    let mut task = p.task(
        &["shop.public.measurements=shop_same.public.measurements"],
        ConflictMode::Error,
    );
    task.spec.task_id = "mt-test2".into();
    assert!(
        migrate(&task, &Default::default())
            .await
            .report()
            .verified()
    );
    let same = p.target.connect("shop_same").await;
    assert_same_tree(&p.src, &same, "measurements").await;
}

fn only_table_verification(
    r: &lifeboat_migrate::migration::MigrationReport,
) -> &lifeboat_migrate::migration::TableVerification {
    assert_eq!(r.verification.len(), 1, "{:#?}", r.verification);
    &r.verification[0]
}

/// Restored next to the original in the same database: the partitions take names
/// derived from the new one, chosen free (one is taken already), and the original
/// tree is untouched.
#[tokio::test]
async fn a_partitioned_table_restored_next_to_the_original() {
    let p = Pair::start().await;
    p.both(MEASUREMENTS).await;
    p.dst("DELETE FROM measurements WHERE region = 'eu'; CREATE TABLE restored_2025 (x int);")
        .await;
    p.src(
        "CREATE TABLE sensors (v numeric PRIMARY KEY);
         INSERT INTO sensors SELECT v FROM measurements_2025;
         ALTER TABLE measurements_2025 ADD CONSTRAINT m25_sensor FOREIGN KEY (v) REFERENCES sensors;",
    )
    .await;
    let before = fingerprint(&p.dst, "measurements").await;
    let task = p.task(&["shop.public.measurements=restored"], ConflictMode::Error);
    let items = check(&task).await;
    let i = item(&items, "partitions");
    assert!(
        i.detail
            .contains("measurements_2025=shop.public.restored_20251"),
        "{i:#?}"
    );
    assert_status(&items, "name_conflicts", PrecheckStatus::Passed);

    let out = migrate(&task, &Default::default()).await;
    let t = only_table(&out.report().tables);
    assert!(
        t.partitions
            .iter()
            .any(|p| p.source == "shop.public.measurements_2025"
                && p.target == "shop.public.restored_20251"
                && p.rows_copied > 0),
        "{t:#?}"
    );
    assert!(out.report().verified(), "{:#?}", out.report().verification);
    assert!(
        out.report().warnings.iter().any(|w| w.starts_with(
            "foreign key m25_sensor of partition shop.public.measurements_2025 was not created"
        )),
        "{:#?}",
        out.report().warnings
    );
    assert_eq!(fingerprint(&p.dst, "measurements").await, before);
    assert_eq!(
        fingerprint(&p.dst, "restored").await,
        fingerprint(&p.src, "measurements").await
    );
    let mut expected = renamed(
        &leaf_counts(&p.src, "measurements").await,
        "measurements",
        "restored",
    );
    for e in &mut expected {
        *e = e.replace("restored_2025:", "restored_20251:");
    }
    expected.sort();
    assert_eq!(leaf_counts(&p.dst, "restored").await, expected);
    assert_eq!(
        one(
            &p.dst,
            "SELECT pg_get_expr(relpartbound, oid) FROM pg_class WHERE relname = 'restored_20251'"
        )
        .await,
        "FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')"
    );
    assert_eq!(
        one(
            &p.dst,
            "SELECT string_agg(conname, ',' ORDER BY conname) FROM pg_constraint WHERE conrelid = 'restored'::regclass"
        )
        .await,
        "restored_pkey,restored_v_check"
    );
}

#[tokio::test]
async fn a_partition_named_alone_is_refused_with_its_table_named() {
    let p = Pair::start().await;
    p.src(MEASUREMENTS).await;
    let task = p.task(&["shop.public.measurements_2024_eu"], ConflictMode::Error);
    let items = check(&task).await;
    let i = item(&items, "partitions");
    assert_eq!(i.status, PrecheckStatus::Failed, "{i:#?}");
    assert!(
        i.detail.contains(
            "shop.public.measurements_2024_eu is a partition of shop.public.measurements_2024, in the tree of the partitioned table shop.public.measurements"
        ),
        "{i:#?}"
    );
    assert!(
        i.advice
            .contains("migrate the partitioned table shop.public.measurements"),
        "{i:#?}"
    );
    assert_status(&items, "source_objects", PrecheckStatus::Failed);

    let out = migrate(&task, &Default::default()).await;
    match &out.result {
        Err(MigrationError::Mapping(m)) => {
            assert!(
                m.contains("shop.public.measurements_2024_eu is a partition"),
                "{m}"
            )
        }
        other => panic!("expected a mapping error, got {other:?}"),
    }
    assert!(out.finished().is_empty());

    // Selected through its schema, the tree is one table and nothing is unsupported.
    let items = check(&p.task(&["shop.public"], ConflictMode::Error)).await;
    let i = item(&items, "source_objects");
    assert!(
        i.detail
            .starts_with("1 tables selected: shop.public.measurements"),
        "{i:#?}"
    );
    assert!(
        !items.iter().any(|i| i.id == "unsupported_objects"),
        "{items:#?}"
    );
}

#[tokio::test]
async fn an_existing_partitioned_table_conflicts_under_error() {
    let p = Pair::start().await;
    p.both(MEASUREMENTS).await;
    let items = check(&p.task(&["shop.public.measurements"], ConflictMode::Error)).await;
    let i = item(&items, "name_conflicts");
    assert_eq!(i.status, PrecheckStatus::Failed, "{i:#?}");
    assert!(
        i.detail
            .contains("shop.public.measurements already exists in the target"),
        "{i:#?}"
    );

    // Only a partition's name is taken: the tree cannot keep its names.
    p.dst("DROP TABLE measurements; CREATE TABLE measurements_2023 (x int)")
        .await;
    let task = p.task(&["shop.public.measurements"], ConflictMode::Error);
    let items = check(&task).await;
    let i = item(&items, "name_conflicts");
    assert_eq!(i.status, PrecheckStatus::Failed, "{i:#?}");
    assert!(
        i.detail.contains(
            "shop.public.measurements_2023 (where partition shop.public.measurements_2023 of shop.public.measurements goes, under its own name) already exists"
        ),
        "{i:#?}"
    );
    let out = migrate(&task, &Default::default()).await;
    assert!(
        matches!(&out.result, Err(MigrationError::Conflicts(c)) if c.len() == 1),
        "{:?}",
        out.result.as_ref().err()
    );
    assert_eq!(
        one(
            &p.dst,
            "SELECT count(*)::text FROM pg_class WHERE relname = 'measurements'"
        )
        .await,
        "0"
    );
}

/// Merges into an existing partitioned table: the staged rows are inserted through
/// the partitioned table, which routes them to its leaves.
#[tokio::test]
async fn merges_into_an_existing_partitioned_table() {
    let p = Pair::start().await;
    p.both(MEASUREMENTS).await;
    p.dst(
        "DELETE FROM measurements WHERE id % 10 = 0;
         UPDATE measurements SET note = 'damaged' WHERE id <= 100;",
    )
    .await;
    let task = p.task(&["shop.public.measurements"], ConflictMode::SkipExisting);
    let items = check(&task).await;
    assert_status(&items, "name_conflicts", PrecheckStatus::Passed);
    let out = migrate(&task, &Default::default()).await;
    let t = only_table(&out.report().tables);
    assert_eq!(t.action, TableAction::SkipExisting);
    assert_eq!((t.rows_inserted, t.rows_skipped), (300, 2700));
    assert!(out.report().verified(), "{:#?}", out.report().verification);
    assert_eq!(
        leaf_counts(&p.dst, "measurements").await,
        leaf_counts(&p.src, "measurements").await
    );
    assert_eq!(
        one(
            &p.dst,
            "SELECT count(*)::text FROM measurements WHERE note = 'damaged'"
        )
        .await,
        "90",
        "skip-existing keeps the target's rows"
    );

    let mut task = p.task(&["shop.public.measurements"], ConflictMode::Overwrite);
    task.spec.task_id = "mt-test2".into();
    let out = migrate(&task, &Default::default()).await;
    let t = only_table(&out.report().tables);
    assert_eq!(t.action, TableAction::Overwrite);
    assert_eq!(t.rows_replaced, 3000);
    assert!(out.report().verified(), "{:#?}", out.report().verification);
    assert_eq!(
        fingerprint(&p.dst, "measurements").await,
        fingerprint(&p.src, "measurements").await
    );
    let saved = t.kept_table.clone().expect("saved rows");
    assert_eq!(
        one(
            &p.dst,
            &format!("SELECT count(*)::text FROM {saved} WHERE note = 'damaged'")
        )
        .await,
        "90"
    );
}

/// `replace` swaps a whole tree: the damaged tree in the target moves aside with every
/// partition and index (`_replaced_<tag>`), the source's takes the names, and its
/// partitions' indexes are named after the final partition names.
#[tokio::test]
async fn replace_swaps_a_partitioned_table_whole() {
    let p = Pair::start().await;
    p.both(MEASUREMENTS).await;
    p.both("ALTER TABLE measurements_2023 ADD CONSTRAINT measurements_2023_note_check CHECK (note <> 'x')")
        .await;
    p.dst("DELETE FROM measurements WHERE id % 10 = 0; UPDATE measurements SET v = -0 WHERE id % 7 = 0")
        .await;
    let damaged = leaf_counts(&p.dst, "measurements").await;
    let task = p.task(&["shop.public.measurements"], ConflictMode::Replace);
    let items = check(&task).await;
    assert_status(&items, "name_conflicts", PrecheckStatus::Passed);
    let out = migrate(&task, &Default::default()).await;
    let report = out.report();
    assert!(report.verified(), "{report:#?}");
    let t = only_table(&report.tables);
    assert_eq!(t.action, TableAction::Replace);
    let kept = "measurements_replaced_mt_test1";
    assert_eq!(t.kept_table.as_deref(), Some(&*format!("public.{kept}")));
    // The partition's own check constraint has its final name; it is dropped on
    // both sides before the tree is compared.
    assert_eq!(
        column(
            &p.dst,
            "SELECT conname::text FROM pg_constraint WHERE conrelid = 'measurements_2023'::regclass \
             AND contype = 'c' AND coninhcount = 0"
        )
        .await,
        ["measurements_2023_note_check"]
    );
    p.both("ALTER TABLE measurements_2023 DROP CONSTRAINT measurements_2023_note_check")
        .await;
    assert_same_tree(&p.src, &p.dst, "measurements").await;
    // The old tree, whole, under the kept names.
    let mut old: Vec<String> = damaged
        .iter()
        .map(|l| {
            let (name, rows) = l.split_once(':').expect("leaf:rows");
            format!("{name}_replaced_mt_test1:{rows}")
        })
        .collect();
    old.sort();
    assert_eq!(leaf_counts(&p.dst, kept).await, old);
    // No temporary name is left, and every index of the new tree is named after its
    // table.
    assert_eq!(
        one(
            &p.dst,
            "SELECT count(*)::text FROM pg_class WHERE relname LIKE 'lb\\_%'"
        )
        .await,
        "0"
    );
    assert_eq!(
        one(
            &p.dst,
            "SELECT count(*)::text FROM pg_constraint WHERE conname LIKE 'lb\\_%'"
        )
        .await,
        "0"
    );
    let strays = column(
        &p.dst,
        "SELECT c.relname || ' on ' || t.relid::regclass FROM pg_partition_tree('measurements') t \
         JOIN pg_index i ON i.indrelid = t.relid JOIN pg_class c ON c.oid = i.indexrelid \
         JOIN pg_class r ON r.oid = t.relid WHERE left(c.relname, length(r.relname)) <> r.relname",
    )
    .await;
    assert!(strays.is_empty(), "{strays:?}");
    let mut parts: Vec<&str> = t.partitions.iter().map(|p| p.target.as_str()).collect();
    parts.sort();
    assert_eq!(
        parts,
        [
            "shop.public.measurements_2023",
            "shop.public.measurements_2024",
            "shop.public.measurements_2024_eu",
            "shop.public.measurements_2024_other",
            "shop.public.measurements_2025",
            "shop.public.measurements_default",
        ]
    );
}

/// `replace` of a plain target table by a partitioned source table, and back.
#[tokio::test]
async fn replace_swaps_a_plain_table_for_a_tree_and_back() {
    let p = Pair::start().await;
    p.src(MEASUREMENTS).await;
    p.dst("CREATE TABLE measurements (id int PRIMARY KEY, x text); INSERT INTO measurements VALUES (1, 'a'), (2, 'b')")
        .await;
    let out = migrate(
        &p.task(&["shop.public.measurements"], ConflictMode::Replace),
        &Default::default(),
    )
    .await;
    assert!(out.report().verified(), "{:#?}", out.report());
    assert_same_tree(&p.src, &p.dst, "measurements").await;
    assert_eq!(
        column(
            &p.dst,
            "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
             WHERE i.indrelid = 'measurements_replaced_mt_test1'::regclass"
        )
        .await,
        ["measurements_pkey_replaced_mt_test1"]
    );
    assert_eq!(
        one(
            &p.dst,
            "SELECT string_agg(x, ',' ORDER BY id) FROM measurements_replaced_mt_test1"
        )
        .await,
        "a,b"
    );

    // The other way: a plain source table replaces the tree just made.
    let before = leaf_counts(&p.dst, "measurements").await;
    p.src("CREATE TABLE plain_src (id int PRIMARY KEY, x text); INSERT INTO plain_src VALUES (7, 'z')")
        .await;
    let mut task = p.task(
        &["shop.public.plain_src=measurements"],
        ConflictMode::Replace,
    );
    task.spec.task_id = "mt-test2".into();
    let out = migrate(&task, &Default::default()).await;
    assert!(out.report().verified(), "{:#?}", out.report());
    assert_eq!(
        one(&p.dst, "SELECT string_agg(id || x, ',') FROM measurements").await,
        "7z"
    );
    let kept: Vec<String> = before
        .iter()
        .map(|l| {
            let (name, rows) = l.split_once(':').expect("leaf:rows");
            format!("{name}_replaced_mt_test2:{rows}")
        })
        .collect();
    assert_eq!(
        leaf_counts(&p.dst, "measurements_replaced_mt_test2").await,
        kept
    );
}
