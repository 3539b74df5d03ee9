//! The whole cycle against real clusters: archive, base backup, window, point-in-time
//! restore into a new cluster, incremental second backup, retention.

use std::time::Duration;

use chrono::{DateTime, Utc};
use lifeboat_backup::{
    BackupOptions, expire, list_backups, restorable_window, restorable_windows, run_backup, verify,
};
use lifeboat_postgres::testing::TestCluster;

use crate::util::{
    INSTANCE, RestoredCluster, TestRepo, enable_archiving, no_progress, switch_and_wait_archived,
};

async fn insert(client: &tokio_postgres::Client, from: i32, to: i32) {
    client
        .execute(
            "INSERT INTO t SELECT g, 'row ' || g FROM generate_series($1::int, $2::int) g",
            &[&from, &to],
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restores_to_a_point_in_time_in_a_new_cluster() {
    let tc = TestCluster::start();
    let repo = TestRepo::new();
    enable_archiving(&tc, &repo);
    let client = tc.connect("postgres").await;
    client
        .batch_execute("CREATE TABLE t (id int PRIMARY KEY, note text)")
        .await
        .unwrap();
    insert(&client, 1, 100).await;

    let seen = std::sync::Mutex::new(Vec::new());
    let record = |p: lifeboat_backup::Progress| seen.lock().unwrap().push(p);
    let first = run_backup(
        &repo.repo,
        INSTANCE,
        &tc.cluster,
        &BackupOptions::default(),
        &record,
    )
    .await
    .unwrap();
    let seen = seen.into_inner().unwrap();
    let last = seen.last().copied().unwrap();
    assert_eq!(last.bytes_done, last.bytes_total);
    assert_eq!(last.bytes_total, first.logical_size);
    assert!(first.stop_lsn > first.start_lsn);
    assert!(first.backup_label.contains("START WAL LOCATION"));
    assert!(first.files.iter().any(|f| f.path == "global/pg_control"));
    assert!(!first.files.iter().any(|f| f.path.starts_with("pg_wal/")));

    insert(&client, 101, 200).await;
    let micros: i64 = client
        .query_one(
            "SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let target: DateTime<Utc> = DateTime::from_timestamp_micros(micros).unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    insert(&client, 201, 300).await;
    client
        .execute("DELETE FROM t WHERE id <= 50", &[])
        .await
        .unwrap();
    switch_and_wait_archived(&client).await;

    let waldump = tc.cluster.bins.path("pg_waldump");
    let window = restorable_window(&repo.repo, INSTANCE, &waldump)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(window.earliest, first.stop_time);
    assert_eq!(window.earliest_lsn, first.stop_lsn);
    assert!(
        window.earliest < target && target < window.latest,
        "{window:?} vs {target}"
    );
    assert!(window.latest > window.earliest);
    assert_eq!(window.gap, None);
    assert_eq!(window.backups, vec![first.id.clone()]);

    // Restore to the noted time in a new cluster: rows 1..=200 exactly.
    let restored = RestoredCluster::restored_to(&repo, &first.id, target, true).await;
    let rc = restored.cluster.connect("postgres").await.unwrap();
    let row = rc
        .query_one("SELECT count(*), min(id), max(id), sum(id) FROM t", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 200);
    assert_eq!(row.get::<_, Option<i32>>(1), Some(1));
    assert_eq!(row.get::<_, Option<i32>>(2), Some(200));
    assert_eq!(row.get::<_, Option<i64>>(3), Some(200 * 201 / 2));
    let archive_mode: String = rc.query_one("SHOW archive_mode", &[]).await.unwrap().get(0);
    assert_eq!(archive_mode, "off");
    drop(rc);
    drop(restored);

    // A second backup of an unchanged cluster stores almost nothing.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let second = run_backup(
        &repo.repo,
        INSTANCE,
        &tc.cluster,
        &BackupOptions::default(),
        &no_progress,
    )
    .await
    .unwrap();
    assert!(
        second.stored_size * 20 < first.stored_size,
        "second backup stored {} bytes, first {}",
        second.stored_size,
        first.stored_size
    );
    switch_and_wait_archived(&client).await;
    let report = verify(&repo.repo, INSTANCE, 4).await.unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
    assert_eq!(report.backups, 2);

    // Retention ten days later with a one-day policy keeps only the newest backup and
    // the WAL from its start on; what is left still verifies and gives a window.
    let later = Utc::now() + chrono::Duration::days(10);
    let expired = expire(&repo.repo, INSTANCE, chrono::Duration::days(1), later)
        .await
        .unwrap();
    assert_eq!(expired.expired_backups, vec![first.id.clone()]);
    assert_eq!(expired.kept_backups, vec![second.id.clone()]);
    assert!(expired.deleted_wal > 0);
    let left = list_backups(&repo.repo, INSTANCE).await.unwrap();
    assert_eq!(left.len(), 1);
    let report = verify(&repo.repo, INSTANCE, 4).await.unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
    let window = restorable_window(&repo.repo, INSTANCE, &waldump)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(window.earliest, second.stop_time);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_segment_ends_the_window_and_verify_names_it() {
    let tc = TestCluster::start();
    let repo = TestRepo::new();
    enable_archiving(&tc, &repo);
    let client = tc.connect("postgres").await;
    client
        .batch_execute("CREATE TABLE t (id int PRIMARY KEY, note text)")
        .await
        .unwrap();
    let backup = run_backup(
        &repo.repo,
        INSTANCE,
        &tc.cluster,
        &BackupOptions::default(),
        &no_progress,
    )
    .await
    .unwrap();
    let mut segments = Vec::new();
    for i in 0..3 {
        insert(&client, i * 10 + 1, i * 10 + 10).await;
        segments.push(switch_and_wait_archived(&client).await);
    }
    let lost = &segments[1];
    repo.repo
        .delete(&lifeboat_backup::wal::wal_key(INSTANCE, lost))
        .await
        .unwrap();

    let waldump = tc.cluster.bins.path("pg_waldump");
    let window = restorable_window(&repo.repo, INSTANCE, &waldump)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(window.gap.as_deref(), Some(lost.as_str()));
    assert_eq!(window.last_segment.as_deref(), Some(segments[0].as_str()));
    let (tli, segno) = lifeboat_backup::wal::parse_segment(lost, backup.wal_segment_size).unwrap();
    assert_eq!(tli, 1);
    assert!(window.latest_lsn.0 < segno * backup.wal_segment_size);
    assert!(
        window.latest > window.earliest,
        "the first batch's commit is inside"
    );

    let report = verify(&repo.repo, INSTANCE, 4).await.unwrap();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert_eq!(
        report.problems[0].object,
        lifeboat_backup::wal::wal_key(INSTANCE, lost)
    );
    assert!(report.problems[0].detail.contains("gap"));

    // A backup taken after the gap starts a second window; the first one stays.
    let after = run_backup(
        &repo.repo,
        INSTANCE,
        &tc.cluster,
        &BackupOptions::default(),
        &no_progress,
    )
    .await
    .unwrap();
    insert(&client, 101, 110).await;
    let last = switch_and_wait_archived(&client).await;
    let windows = restorable_windows(&repo.repo, INSTANCE, &waldump)
        .await
        .unwrap();
    assert_eq!(windows.len(), 2, "{windows:#?}");
    assert_eq!(windows[0], window, "the window before the gap is unchanged");
    assert_eq!(windows[0].backups, vec![backup.id.clone()]);
    let second = &windows[1];
    assert_eq!(second.gap, None);
    assert_eq!(second.earliest, after.stop_time);
    assert_eq!(second.earliest_lsn, after.stop_lsn);
    assert!(
        second.latest > second.earliest,
        "the last batch's commit is inside"
    );
    assert_eq!(second.last_segment.as_deref(), Some(last.as_str()));
    assert_eq!(second.backups, vec![after.id.clone()]);
    assert_eq!(
        restorable_window(&repo.repo, INSTANCE, &waldump)
            .await
            .unwrap()
            .as_ref(),
        Some(second),
        "the window that reaches furthest"
    );
}

/// The window reads what a WAL stream received of the segment in progress; when that
/// copy is torn (a crash of the host while it was replaced), the window ends with the
/// last commit of the archived WAL before it, not with the base backup.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_copy_of_the_segment_in_progress_ends_the_window_with_the_archived_wal() {
    let tc = TestCluster::start();
    let repo = TestRepo::new();
    enable_archiving(&tc, &repo);
    let client = tc.connect("postgres").await;
    client
        .batch_execute("CREATE TABLE t (id int PRIMARY KEY, note text)")
        .await
        .unwrap();
    insert(&client, 1, 100).await;
    let first = run_backup(
        &repo.repo,
        INSTANCE,
        &tc.cluster,
        &BackupOptions::default(),
        &no_progress,
    )
    .await
    .unwrap();
    insert(&client, 101, 200).await;
    switch_and_wait_archived(&client).await;
    let waldump = tc.cluster.bins.path("pg_waldump");
    let archived = restorable_window(&repo.repo, INSTANCE, &waldump)
        .await
        .unwrap()
        .unwrap();
    assert!(archived.latest > first.stop_time, "{archived:?}");

    // A commit in the segment in progress, as a stream stores it.
    insert(&client, 201, 300).await;
    let segment: String = client
        .query_one("SELECT pg_walfile_name(pg_current_wal_flush_lsn())", &[])
        .await
        .unwrap()
        .get(0);
    let received = std::fs::read(tc.cluster.data_dir().join("pg_wal").join(&segment)).unwrap();
    lifeboat_backup::wal::stream_push(&repo.repo, INSTANCE, &segment, received)
        .await
        .unwrap();
    let streamed = restorable_window(&repo.repo, INSTANCE, &waldump)
        .await
        .unwrap()
        .unwrap();
    assert!(
        streamed.latest > archived.latest,
        "{streamed:?} vs {archived:?}"
    );

    let copy = repo
        .local_root()
        .join(INSTANCE)
        .join("stream")
        .join(&segment);
    let stored = std::fs::read(&copy).unwrap();
    std::fs::write(&copy, &stored[..stored.len() / 2]).unwrap();
    let torn = restorable_window(&repo.repo, INSTANCE, &waldump)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (torn.latest, torn.latest_lsn),
        (archived.latest, archived.latest_lsn),
        "{torn:?}"
    );
}
