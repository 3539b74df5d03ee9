//! Cancelling and resuming: a table in progress is rolled back whole, finished
//! tables are skipped after a restart (known from the caller or from the target's
//! journal).

use std::collections::HashSet;

use lifeboat_migrate::migration::{
    ConflictMode, MigrationError, ProgressEvent, TableAction, TableKey,
};

use crate::support::{Pair, column, fingerprint, migrate, migrate_until, one};

#[tokio::test]
async fn cancel_midway_leaves_the_target_table_as_it_was() {
    let p = Pair::start().await;
    p.both("CREATE TABLE big (id int PRIMARY KEY, pad text)")
        .await;
    p.src("INSERT INTO big SELECT i, repeat('x', 200) FROM generate_series(1, 400000) i")
        .await;
    p.dst("INSERT INTO big SELECT i, 'old' FROM generate_series(1, 1000) i")
        .await;
    let before = fingerprint(&p.dst, "big").await;

    let task = p.task(&["shop.public.big"], ConflictMode::Replace);
    let out = migrate_until(
        &task,
        &HashSet::new(),
        |e| matches!(e, ProgressEvent::TableCopying { rows, .. } if *rows > 0),
    )
    .await;
    assert!(
        out.events
            .iter()
            .any(|e| matches!(e, ProgressEvent::TableCopying { .. })),
        "the copy was under way"
    );
    assert!(
        matches!(out.result, Err(MigrationError::Cancelled)),
        "{:?}",
        out.result.err()
    );
    assert!(out.finished().is_empty());
    assert_eq!(fingerprint(&p.dst, "big").await, before);
    // Nothing half-built is left behind.
    assert_eq!(
        column(&p.dst, "SELECT relname::text FROM pg_class WHERE relname LIKE 'lb\\_%' OR relname LIKE '%replaced%'").await,
        Vec::<String>::new()
    );
    assert_eq!(
        one(
            &p.dst,
            "SELECT count(*)::text FROM lifeboat_migration.journal"
        )
        .await,
        "0"
    );

    // Started again, it completes.
    let out = migrate(&task, &HashSet::new()).await;
    assert_eq!(out.report().tables[0].rows_copied, 400000);
    assert_eq!(
        fingerprint(&p.dst, "big").await,
        fingerprint(&p.src, "big").await
    );
}

#[tokio::test]
async fn resume_skips_tables_already_finished() {
    let p = Pair::start().await;
    p.src(
        "CREATE TABLE a (id int PRIMARY KEY); INSERT INTO a SELECT generate_series(1, 100);
         CREATE TABLE b (id int PRIMARY KEY); INSERT INTO b SELECT generate_series(1, 200);
         CREATE TABLE c (id int PRIMARY KEY); INSERT INTO c SELECT generate_series(1, 300);",
    )
    .await;
    let mut task = p.task(&["shop.public"], ConflictMode::Error);
    task.spec.parallelism = 1;
    let first = migrate_until(&task, &HashSet::new(), |e| {
        matches!(e, ProgressEvent::TableFinished { .. })
    })
    .await;
    assert!(matches!(first.result, Err(MigrationError::Cancelled)));
    let done = first.finished();
    assert_eq!(done.len(), 1);
    let done_key: &TableKey = done.iter().next().expect("one table");
    assert_eq!(done_key.0, "\"shop\".\"public\".\"a\"");

    // The caller passes what it persisted: only the other tables are copied.
    let second = migrate(&task, &done).await;
    let started: Vec<&TableKey> = second
        .events
        .iter()
        .filter_map(|e| match e {
            ProgressEvent::TableStarted { key, .. } => Some(key),
            _ => None,
        })
        .collect();
    assert_eq!(started.len(), 2);
    assert!(!started.contains(&done_key));
    for (t, n) in [("a", "100"), ("b", "200"), ("c", "300")] {
        assert_eq!(
            one(&p.dst, &format!("SELECT count(*)::text FROM {t}")).await,
            n
        );
    }
    let a = &second.report().tables[0];
    assert!(a.resumed && a.action == TableAction::Create, "{a:#?}");
}

#[tokio::test]
async fn the_journal_knows_finished_tables_the_caller_lost() {
    let p = Pair::start().await;
    p.both("CREATE TABLE items (id int PRIMARY KEY, v int); INSERT INTO items SELECT i, i FROM generate_series(1, 50) i;")
        .await;
    p.dst("UPDATE items SET v = 0").await;
    let task = p.task(&["shop.public.items"], ConflictMode::Overwrite);
    let first = migrate(&task, &HashSet::new()).await;
    let saved = first.report().tables[0].kept_table.clone().expect("saved");
    // The server crashed before persisting the finished table: running again must
    // not overwrite a second time (that would save the source's rows as "replaced").
    let second = migrate(&task, &HashSet::new()).await;
    let t = &second.report().tables[0];
    assert!(t.resumed, "{t:#?}");
    assert_eq!(t.kept_table.as_deref(), Some(saved.as_str()));
    assert_eq!(
        one(&p.dst, &format!("SELECT sum(v)::text FROM {saved}")).await,
        "0"
    );
    assert!(
        !second
            .events
            .iter()
            .any(|e| matches!(e, ProgressEvent::TableStarted { .. })),
        "nothing is migrated twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawn_runs_the_task_on_its_own_thread() {
    let p = Pair::start().await;
    p.src("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 1000);")
        .await;
    let task = p.task(&["shop.public.t"], ConflictMode::Error);
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let events = seen.clone();
    let progress = move |e: ProgressEvent| {
        if let Ok(mut v) = events.lock() {
            v.push(e);
        }
    };
    let report = lifeboat_migrate::migration::spawn(
        task,
        HashSet::new(),
        std::sync::Arc::new(progress),
        lifeboat_migrate::migration::CancellationToken::new(),
    )
    .await
    .expect("migration");
    assert_eq!(report.tables[0].rows_copied, 1000);
    assert!(report.verified());
    let finished = seen
        .lock()
        .expect("events")
        .iter()
        .filter(|e| matches!(e, ProgressEvent::TableFinished { .. }))
        .count();
    assert_eq!(finished, 1);
    assert_eq!(one(&p.dst, "SELECT count(*)::text FROM t").await, "1000");
}
