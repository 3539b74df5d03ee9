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

    // A missing content object is named the same way.
    std::fs::remove_file(&path).unwrap();
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
