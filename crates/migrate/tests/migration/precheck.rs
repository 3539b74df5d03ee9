//! Pre-check items against real clusters: each problem is found, named and given
//! advice; a sound task passes.

use std::time::Duration;

use lifeboat_migrate::migration::{
    ConflictMode, PrecheckContext, PrecheckItem, PrecheckStatus, precheck, precheck_passed,
};

use crate::support::{Pair, assert_status, check, item};

#[tokio::test]
async fn a_sound_task_passes_every_item() {
    let p = Pair::start().await;
    p.src("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 10);")
        .await;
    let task = p.task(&["shop.public.t=t_restored"], ConflictMode::Error);
    let ctx = PrecheckContext {
        target_data_directory: Some(p.target.cluster.data_dir()),
        source_time_left: Some(Duration::from_secs(47 * 3600)),
        whitelist: Some(PrecheckItem::whitelist(
            true,
            "127.0.0.1",
            &["pg-src", "pg-dst"],
        )),
    };
    let items = precheck(&task, &ctx).await;
    assert!(precheck_passed(&items), "{items:#?}");
    assert!(
        items.iter().all(|i| i.status == PrecheckStatus::Passed),
        "{items:#?}"
    );
    for id in [
        "source_connection",
        "target_connection",
        "whitelist",
        "engine_version",
        "source_objects",
        "object_names",
        "source_privileges",
        "target_privileges",
        "name_conflicts",
        "table_keys",
        "column_compatibility",
        "foreign_keys",
        "target_disk_space",
        "source_time_left",
    ] {
        let i = item(&items, id);
        assert!(!i.detail.is_empty() && !i.name.is_empty(), "{i:#?}");
    }
    assert!(
        item(&items, "source_objects")
            .detail
            .contains("shop.public.t=shop.public.t_restored")
    );
}

#[tokio::test]
async fn a_wrong_password_fails_connectivity_with_advice() {
    let p = Pair::start().await;
    p.src("CREATE ROLE alice LOGIN PASSWORD 'right horse'")
        .await;
    let mut task = p.task(&["shop.public.t"], ConflictMode::Error);
    task.source.user("alice").password("wrong horse");
    let items = check(&task).await;
    let i = item(&items, "source_connection");
    assert_eq!(i.status, PrecheckStatus::Failed, "{i:#?}");
    assert!(
        i.detail.contains("password authentication failed"),
        "{i:#?}"
    );
    assert!(i.detail.contains("alice"), "{i:#?}");
    assert!(i.advice.contains("password"), "{i:#?}");
    assert!(!i.detail.contains("wrong horse") && !i.advice.contains("wrong horse"));
    assert!(!precheck_passed(&items));
}

#[tokio::test]
async fn missing_objects_are_named() {
    let p = Pair::start().await;
    p.src("CREATE TABLE t (id int PRIMARY KEY)").await;
    let task = p.task(
        &[
            "shop.public.nope",
            "shop.\"Sales\"",
            "shop.public.t",
            "nodb",
        ],
        ConflictMode::Error,
    );
    let items = check(&task).await;
    let i = item(&items, "source_objects");
    assert_eq!(i.status, PrecheckStatus::Failed);
    for missing in [
        "table shop.public.nope",
        "schema shop.\"Sales\"",
        "database nodb",
    ] {
        assert!(i.detail.contains(missing), "{missing} in {i:#?}");
    }
}

/// Objects that exist but hold no table a task can migrate (an empty schema, a schema
/// holding only a partition of a table elsewhere): the pre-check fails instead of a
/// task that completes having migrated nothing.
#[tokio::test]
async fn objects_that_select_no_table_fail_the_precheck() {
    let p = Pair::start().await;
    p.src(
        "CREATE SCHEMA empty;
         CREATE SCHEMA parts;
         CREATE TABLE m (id int, at date) PARTITION BY RANGE (at);
         CREATE TABLE parts.m_1 PARTITION OF m FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');",
    )
    .await;
    for objects in [&["shop.empty"][..], &["shop.parts"][..]] {
        let items = check(&p.task(objects, ConflictMode::Error)).await;
        let i = item(&items, "source_objects");
        assert_eq!(i.status, PrecheckStatus::Failed, "{objects:?}: {i:#?}");
        assert!(
            i.detail.contains("select no table that can be migrated"),
            "{objects:?}: {i:#?}"
        );
        assert!(!precheck_passed(&items));
    }
}

/// Tables that cannot be migrated as they are, grouped by reason with counts: the
/// partition of a table left out is not hidden behind a long list of inheritance
/// children whose parent stays behind. Partitioned tables are not among them: they migrate whole.
#[tokio::test]
async fn tables_that_cannot_be_migrated_are_grouped_by_reason() {
    let p = Pair::start().await;
    let mut sql = String::from(
        "CREATE SCHEMA base;
         CREATE TABLE base.parent (id int PRIMARY KEY);
         CREATE SCHEMA other;
         CREATE TABLE other.m (id int, n int) PARTITION BY RANGE (n);
         CREATE TABLE m_1 PARTITION OF other.m FOR VALUES FROM (0) TO (10);
         CREATE TABLE whole (id int, n int) PARTITION BY RANGE (n);
         CREATE TABLE whole_1 PARTITION OF whole FOR VALUES FROM (0) TO (10);",
    );
    for i in 0..25 {
        sql.push_str(&format!("CREATE TABLE child{i} () INHERITS (base.parent);"));
    }
    p.src(&sql).await;
    let items = check(&p.task(&["shop.public"], ConflictMode::Error)).await;
    let i = item(&items, "unsupported_objects");
    assert_eq!(i.status, PrecheckStatus::Warning, "{i:#?}");
    assert!(
        i.detail
            .contains("25 tables: inherit from a table the task does not migrate; that inheritance is not recreated (their own rows are migrated): "),
        "{i:#?}"
    );
    assert!(i.detail.contains(" and 5 more"), "{i:#?}");
    assert!(
        i.detail.contains(
            "1 table: partitions of a partitioned table the task does not select (a partition is migrated with its partitioned table, never alone): shop.public.m_1"
        ),
        "{i:#?}"
    );
    assert!(!i.detail.contains("whole"), "{i:#?}");
    assert!(!i.advice.contains("by name"), "{i:#?}");
}

/// A new target database has none of the source's types: the task creates those it
/// can (an enum here), and the pre-check names those it cannot (a table's row type),
/// so that the task cannot start to fail halfway with the database half filled.
#[tokio::test]
async fn a_new_database_gets_its_types_or_the_precheck_says_why_not() {
    let p = Pair::start().await;
    p.src(
        "CREATE TYPE mood AS ENUM ('ok', 'sad');
         CREATE TABLE plain (id int PRIMARY KEY);
         CREATE TABLE moods (id int PRIMARY KEY, m mood);",
    )
    .await;
    let items = check(&p.task(&["shop=shop_new"], ConflictMode::Error)).await;
    let i = item(&items, "target_types");
    assert_eq!(i.status, PrecheckStatus::Passed, "{i:#?}");
    assert!(i.detail.contains("public.mood (in shop_new)"), "{i:#?}");

    p.src(
        "CREATE TABLE row_kind (a int); CREATE TABLE uses_rows (id int PRIMARY KEY, r row_kind);",
    )
    .await;
    let items = check(&p.task(
        &["shop.public.uses_rows=shop_new.public.uses_rows"],
        ConflictMode::Error,
    ))
    .await;
    let i = item(&items, "target_types");
    assert_eq!(i.status, PrecheckStatus::Failed, "{i:#?}");
    assert!(
        i.detail.contains(
            "type public.row_kind does not exist in the target database shop_new and is the row type of the table public.row_kind"
        ),
        "{i:#?}"
    );
    assert!(!precheck_passed(&items));
}

#[tokio::test]
async fn merges_need_a_key_and_matching_columns() {
    let p = Pair::start().await;
    p.src(
        "CREATE TABLE nokey (id int, v text);
         CREATE TABLE shaped (id int PRIMARY KEY, qty int, note text);",
    )
    .await;
    p.dst(
        "CREATE TABLE nokey (id int, v text);
         CREATE TABLE shaped (id int PRIMARY KEY, qty bigint, extra text NOT NULL);",
    )
    .await;
    let task = p.task(
        &["shop.public.nokey", "shop.public.shaped"],
        ConflictMode::SkipExisting,
    );
    let items = check(&task).await;
    let keys = item(&items, "table_keys");
    assert_eq!(keys.status, PrecheckStatus::Failed);
    assert!(
        keys.detail.contains("shop.public.nokey has no primary key"),
        "{keys:#?}"
    );
    let cols = item(&items, "column_compatibility");
    assert_eq!(cols.status, PrecheckStatus::Failed);
    for problem in [
        "shop.public.shaped: column qty is integer in the source and bigint in the target",
        "shop.public.shaped: column note is missing in the target",
        "shop.public.shaped: target column extra is NOT NULL without a default",
    ] {
        assert!(cols.detail.contains(problem), "{problem} in {cols:#?}");
    }
    assert_status(&items, "name_conflicts", PrecheckStatus::Passed);
}

#[tokio::test]
async fn names_foreign_keys_types_and_time_left() {
    let p = Pair::start().await;
    p.src(
        "CREATE TYPE mood AS ENUM ('ok');
         CREATE TABLE parent (id int PRIMARY KEY);
         CREATE TABLE child (id int PRIMARY KEY, parent_id int REFERENCES parent, m mood);
         CREATE TABLE other (id int PRIMARY KEY);",
    )
    .await;
    let task = p.task(
        &["shop.public.child=same", "shop.public.other=same"],
        ConflictMode::Error,
    );
    let ctx = PrecheckContext {
        source_time_left: Some(Duration::from_secs(600)),
        ..PrecheckContext::default()
    };
    let items = precheck(&task, &ctx).await;
    let names = item(&items, "object_names");
    assert_eq!(names.status, PrecheckStatus::Failed);
    assert!(
        names.detail.contains(
            "shop.public.child and shop.public.other are both mapped to shop.public.same"
        ),
        "{names:#?}"
    );
    let fks = item(&items, "foreign_keys");
    assert_eq!(fks.status, PrecheckStatus::Warning);
    assert!(
        fks.detail
            .contains("child_parent_id_fkey of shop.public.child references public.parent"),
        "{fks:#?}"
    );
    // The target lacks the enum: the task creates it.
    let types = item(&items, "target_types");
    assert_eq!(types.status, PrecheckStatus::Passed, "{types:#?}");
    assert!(
        types.detail.contains("creates the types")
            && types.detail.contains("public.mood (in shop)"),
        "{types:#?}"
    );
    assert_status(&items, "source_time_left", PrecheckStatus::Warning);
}

#[tokio::test]
async fn an_unprivileged_target_account_is_told_what_to_grant() {
    let p = Pair::start().await;
    p.src("CREATE TABLE t (id int PRIMARY KEY)").await;
    p.dst(
        "CREATE ROLE bob LOGIN PASSWORD 'pw';
         REVOKE CREATE ON SCHEMA public FROM PUBLIC;
         REVOKE CREATE ON DATABASE shop FROM PUBLIC;",
    )
    .await;
    let mut task = p.task(&["shop.public.t"], ConflictMode::Error);
    task.target.user("bob").password("pw");
    let items = check(&task).await;
    let i = item(&items, "target_privileges");
    assert_eq!(i.status, PrecheckStatus::Failed, "{items:#?}");
    assert!(
        i.detail
            .contains("shop.public.t: no CREATE on the target schema"),
        "{i:#?}"
    );
    assert!(i.advice.contains("grant bob"), "{i:#?}");
}
