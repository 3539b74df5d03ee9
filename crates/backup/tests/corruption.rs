//! A flipped byte in any stored content object is found by verify and by restore, and
//! both name the file of the data directory it belongs to.

use lifeboat_backup::restore::RestoreOptions;
use lifeboat_backup::{BackupOptions, manifest, restore, run_backup, verify};
use lifeboat_postgres::testing::TestCluster;

use crate::util::{INSTANCE, TestRepo, enable_archiving, no_progress};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flipped_byte_is_named_by_verify_and_restore() {
    let tc = TestCluster::start();
    let repo = TestRepo::new();
    enable_archiving(&tc, &repo);
    let backup = run_backup(
        &repo.repo,
        INSTANCE,
        &tc.cluster,
        &BackupOptions::default(),
        &no_progress,
    )
    .await
    .unwrap();
    assert!(verify(&repo.repo, INSTANCE, 4).await.unwrap().is_ok());

    let control = backup
        .files
        .iter()
        .find(|f| f.path == "global/pg_control")
        .unwrap();
    let key = manifest::content_key(INSTANCE, &control.chunks[0]);
    let path = repo.local_root().join(&key);
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 3;
    bytes[last] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();

    let report = verify(&repo.repo, INSTANCE, 4).await.unwrap();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    let problem = &report.problems[0];
    assert_eq!(problem.object, key);
    assert_eq!(
        problem.files,
        vec![format!("{}:global/pg_control", backup.id)]
    );

    let dest = tempfile::tempdir().unwrap();
    let err = restore(
        &repo.repo,
        INSTANCE,
        &backup.id,
        &dest.path().join("data"),
        &RestoreOptions::default(),
        &no_progress,
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("global/pg_control"), "{err}");
    assert!(matches!(err, lifeboat_backup::BackupError::Corrupt { .. }));

    // Removing the damaged object makes the next backup store that content again
    // rather than reuse the damaged copy; the missing object is named like a damaged one.
    let removed = verify::remove_damaged(&repo.repo, INSTANCE, &report)
        .await
        .unwrap();
    assert_eq!(removed, vec![key.clone()]);
    assert!(!path.exists());
    // Content that does not change between backups (PG_VERSION) is stored again too.
    let version = backup
        .files
        .iter()
        .find(|f| f.path == "PG_VERSION")
        .unwrap();
    let version_key = manifest::content_key(INSTANCE, &version.chunks[0]);
    repo.repo.delete(&version_key).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let next = run_backup(
        &repo.repo,
        INSTANCE,
        &tc.cluster,
        &BackupOptions::default(),
        &no_progress,
    )
    .await
    .unwrap();
    assert!(repo.repo.head(&version_key).await.unwrap().is_some());
    let restored = tempfile::tempdir().unwrap();
    restore(
        &repo.repo,
        INSTANCE,
        &next.id,
        &restored.path().join("data"),
        &RestoreOptions::default(),
        &no_progress,
    )
    .await
    .unwrap();
    let report = verify(&repo.repo, INSTANCE, 4).await.unwrap();
    assert_eq!(
        report.problems[0].files,
        vec![format!("{}:global/pg_control", backup.id)]
    );
    let err = restore(
        &repo.repo,
        INSTANCE,
        &backup.id,
        &dest.path().join("data2"),
        &RestoreOptions::default(),
        &no_progress,
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("global/pg_control"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_backup_does_not_exist_and_the_next_one_succeeds() {
    let tc = TestCluster::start();
    let repo = TestRepo::new();
    enable_archiving(&tc, &repo);
    let client = tc.connect("postgres").await;
    client
        .batch_execute("CREATE TABLE big AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 300000) g")
        .await
        .unwrap();

    // Stop the backup at its first progress report, as a killed server would.
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let tx = std::sync::Mutex::new(Some(tx));
    let on_progress = |_: lifeboat_backup::Progress| {
        if let Some(tx) = tx.lock().unwrap().take() {
            let _ = tx.send(());
        }
    };
    let options = BackupOptions {
        parallelism: 1,
        ..BackupOptions::default()
    };
    tokio::select! {
        r = run_backup(&repo.repo, INSTANCE, &tc.cluster, &options, &on_progress) => {
            panic!("the backup finished before it was interrupted: {r:?}");
        }
        _ = rx => {}
    }
    // Content objects were written, but without a manifest there is no backup.
    assert!(
        !repo
            .repo
            .list(&format!("{INSTANCE}/data/"))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        lifeboat_backup::list_backups(&repo.repo, INSTANCE)
            .await
            .unwrap()
            .is_empty()
    );
    let waldump = tc.cluster.bins.path("pg_waldump");
    assert!(
        lifeboat_backup::restorable_window(&repo.repo, INSTANCE, &waldump)
            .await
            .unwrap()
            .is_none()
    );

    // Closing the session aborted the backup on the server, so the next one can start;
    // it stores its content again rather than trusting the interrupted backup's objects.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let backup = run_backup(
        &repo.repo,
        INSTANCE,
        &tc.cluster,
        &BackupOptions::default(),
        &no_progress,
    )
    .await
    .unwrap();
    assert!(backup.stored_objects > 0);
    let report = verify(&repo.repo, INSTANCE, 4).await.unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
}
