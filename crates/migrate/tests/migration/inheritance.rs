//! Inheritance (issue 14, "inheritance children with their parents"): a parent comes
//! back with its children, each inheriting again, like `pg_dump` dumps them; a child
//! whose parent stays behind is a plain table, and the task says so.

use lifeboat_migrate::migration::{ConflictMode, ObjectKind};

use crate::support::{Pair, column, migrate, one};

/// A parent renamed: its children (a grandchild, and a child in another schema) come
/// with it under names derived from the new one (each from its own parent's), each with its own rows, and inherit
/// again, so `SELECT * FROM parent_back` shows what `SELECT * FROM parent` showed.
#[tokio::test]
async fn a_parent_comes_back_with_its_children_inheriting_again() {
    let p = Pair::start().await;
    p.src(
        "CREATE TABLE parent (id int PRIMARY KEY, v text NOT NULL, CHECK (id > 0));
         CREATE TABLE child (extra int) INHERITS (parent);
         CREATE TABLE grandchild (note text) INHERITS (child);
         CREATE SCHEMA arch;
         CREATE TABLE arch.old () INHERITS (parent);
         INSERT INTO parent SELECT i, 'p' || i FROM generate_series(1, 3) i;
         INSERT INTO child SELECT i, 'c' || i, i FROM generate_series(10, 59) i;
         INSERT INTO grandchild SELECT i, 'g' || i, i, 'n' FROM generate_series(100, 106) i;
         INSERT INTO arch.old SELECT i, 'o' || i FROM generate_series(200, 201) i;",
    )
    .await;
    let task = p.task(&["shop.public.parent=parent_back"], ConflictMode::Error);
    let out = migrate(&task, &Default::default()).await;
    let report = out.report();
    assert!(report.verified(), "{report:#?}");
    let mut targets: Vec<&str> = report.tables.iter().map(|t| t.target.as_str()).collect();
    targets.sort();
    assert_eq!(
        targets,
        [
            "shop.public.parent_back",
            "shop.public.parent_back_child",
            "shop.public.parent_back_child_grandchild",
            "shop.public.parent_back_old",
        ]
    );
    let counts = [
        ("ONLY parent_back", "3"),
        ("ONLY parent_back_child", "50"),
        ("parent_back_child_grandchild", "7"),
        ("parent_back_old", "2"),
        ("parent_back_child", "57"),
        ("parent_back", "62"),
    ];
    for (from, n) in counts {
        assert_eq!(
            one(&p.dst, &format!("SELECT count(*)::text FROM {from}")).await,
            n,
            "{from}"
        );
    }
    assert_eq!(
        column(
            &p.dst,
            "SELECT inhrelid::regclass || ' < ' || inhparent::regclass FROM pg_inherits ORDER BY 1"
        )
        .await,
        [
            "parent_back_child < parent_back",
            "parent_back_child_grandchild < parent_back_child",
            "parent_back_old < parent_back",
        ]
    );
    let made: Vec<&str> = report
        .objects
        .iter()
        .filter(|o| o.kind == ObjectKind::Inheritance && o.created)
        .map(|o| o.name.as_str())
        .collect();
    assert_eq!(made.len(), 3, "{:#?}", report.objects);
    assert!(
        made.contains(
            &"shop.public.parent_back_child_grandchild inherits from shop.public.parent_back_child"
        ),
        "{made:?}"
    );
    // The parent's constraints hold in the children again, as inherited ones.
    assert_eq!(
        one(
            &p.dst,
            "SELECT string_agg(conrelid::regclass || ':' || coninhcount, ',' ORDER BY 1) \
             FROM pg_constraint WHERE contype = 'c' AND conrelid NOT IN (0, 'parent_back'::regclass)"
        )
        .await,
        "parent_back_child:1,parent_back_child_grandchild:1,parent_back_old:1"
    );
    assert!(
        !report.warnings.iter().any(|w| w.contains("inherit")),
        "{:?}",
        report.warnings
    );
    // The source is as it was.
    assert_eq!(one(&p.src, "SELECT count(*)::text FROM parent").await, "62");
}

/// A child selected without its parent (another schema) is migrated as a plain table
/// with its own rows, and both the pre-check and the report say so.
#[tokio::test]
async fn a_child_whose_parent_stays_behind_is_a_plain_table_with_a_warning() {
    let p = Pair::start().await;
    p.src(
        "CREATE SCHEMA base;
         CREATE TABLE base.parent (id int PRIMARY KEY);
         CREATE TABLE child () INHERITS (base.parent);
         INSERT INTO base.parent VALUES (1);
         INSERT INTO child VALUES (2), (3);",
    )
    .await;
    let task = p.task(&["shop.public"], ConflictMode::Error);
    let items = crate::support::check(&task).await;
    let i = crate::support::item(&items, "unsupported_objects");
    assert!(
        i.detail.contains(
            "1 table: inherit from a table the task does not migrate; that inheritance is not recreated (their own rows are migrated): shop.public.child"
        ),
        "{i:#?}"
    );
    let out = migrate(&task, &Default::default()).await;
    let report = out.report();
    assert!(report.verified(), "{report:#?}");
    assert!(
        report.warnings.iter().any(|w| w
            == "shop.public.child inherits from a table this task does not migrate; that inheritance is not recreated (its own rows are migrated)"),
        "{:?}",
        report.warnings
    );
    assert_eq!(one(&p.dst, "SELECT count(*)::text FROM child").await, "2");
    assert_eq!(
        one(&p.dst, "SELECT count(*)::text FROM pg_inherits").await,
        "0"
    );
}

/// A dropped child comes back next to the parent the target still has: Lifeboat
/// does not attach it to a table it did not create, and the report says how to.
#[tokio::test]
async fn a_child_is_not_attached_to_a_parent_the_target_had() {
    let p = Pair::start().await;
    p.both(
        "CREATE TABLE parent (id int PRIMARY KEY);
         CREATE TABLE child (n int) INHERITS (parent);
         INSERT INTO parent VALUES (1);
         INSERT INTO child VALUES (2, 20), (3, 30);",
    )
    .await;
    p.dst("DROP TABLE child").await;
    let task = p.task(&["shop.public.parent"], ConflictMode::Repair);
    let out = migrate(&task, &Default::default()).await;
    let report = out.report();
    assert!(report.verified(), "{report:#?}");
    assert_eq!(one(&p.dst, "SELECT count(*)::text FROM child").await, "2");
    assert_eq!(
        one(&p.dst, "SELECT count(*)::text FROM parent").await,
        "1",
        "the target's parent is as it was"
    );
    let o = report
        .objects
        .iter()
        .find(|o| o.kind == ObjectKind::Inheritance)
        .expect("the inheritance is in the report");
    assert!(!o.created, "{o:#?}");
    assert!(
        o.note.ends_with(
            "the task does not build shop.public.parent (the target had it), and Lifeboat does not change a table it did not create; to make it anyway, run: ALTER TABLE \"public\".\"child\" INHERIT \"public\".\"parent\""
        ),
        "{o:#?}"
    );
}

/// `replace` of a renamed parent: the new parent's check constraints take their final
/// names at once, so its children, created with it, inherit from it again.
#[tokio::test]
async fn a_replaced_parent_takes_its_children_again() {
    let p = Pair::start().await;
    p.src(
        "CREATE TABLE orders (id int PRIMARY KEY, amount int CHECK (amount > 0));
         CREATE TABLE orders_2020 () INHERITS (orders);
         INSERT INTO orders VALUES (1, 10);
         INSERT INTO orders_2020 VALUES (2, 20), (3, 30);",
    )
    .await;
    p.dst("CREATE TABLE orders_restored (id int PRIMARY KEY, amount int); INSERT INTO orders_restored VALUES (9, 9)")
        .await;
    let task = p.task(
        &["shop.public.orders=orders_restored"],
        ConflictMode::Replace,
    );
    let out = migrate(&task, &Default::default()).await;
    let report = out.report();
    assert!(report.verified(), "{report:#?}");
    assert_eq!(
        column(
            &p.dst,
            "SELECT conrelid::regclass || ':' || conname FROM pg_constraint \
             WHERE contype = 'c' AND conrelid <> 0 ORDER BY 1"
        )
        .await,
        [
            "orders_restored:orders_restored_amount_check",
            "orders_restored_2020:orders_restored_amount_check",
        ]
    );
    assert_eq!(
        one(
            &p.dst,
            "SELECT string_agg(id::text, ',' ORDER BY id) FROM orders_restored"
        )
        .await,
        "1,2,3"
    );
    assert_eq!(
        one(
            &p.dst,
            "SELECT string_agg(id::text, ',') FROM orders_restored_replaced_mt_test1"
        )
        .await,
        "9"
    );
}
