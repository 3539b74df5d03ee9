//! WAL push and fetch: idempotent pushes, refused conflicts, quiet "not found", and the
//! exit codes `archive_command`/`restore_command` see.

use lifeboat_backup::wal::FETCH_FAILED_EXIT;
use lifeboat_backup::{
    BackupError, FetchOutcome, PushOutcome, wal_fetch, wal_fetch_command, wal_push,
    wal_push_command,
};

use crate::util::{INSTANCE, TestRepo};

const SEGMENT: &str = "000000010000000000000007";

fn segment_bytes(seed: u8) -> Vec<u8> {
    (0..16u32 << 20)
        .map(|i| ((i / 8192) as u8).wrapping_add(seed))
        .collect()
}

#[tokio::test]
async fn push_is_idempotent_and_refuses_other_content() {
    let repo = TestRepo::new();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(SEGMENT);
    std::fs::write(&path, segment_bytes(0)).unwrap();
    assert_eq!(
        wal_push(&repo.repo, INSTANCE, &path).await.unwrap(),
        PushOutcome::Stored
    );
    assert_eq!(
        wal_push(&repo.repo, INSTANCE, &path).await.unwrap(),
        PushOutcome::AlreadyArchived
    );
    let stored = repo.local_root().join(INSTANCE).join("wal").join(SEGMENT);
    assert!(
        std::fs::metadata(&stored).unwrap().len() < 1 << 20,
        "not compressed"
    );

    std::fs::write(&path, segment_bytes(1)).unwrap();
    let err = wal_push(&repo.repo, INSTANCE, &path).await.unwrap_err();
    assert!(matches!(err, BackupError::WalConflict { .. }), "{err}");
    assert!(err.to_string().contains(SEGMENT));
    let (cfg, p) = (repo.config_path.clone(), path.clone());
    let status = dir.path().join("archive-status.json");
    let st = status.clone();
    let out = tokio::task::spawn_blocking(move || wal_push_command(&cfg, INSTANCE, &p, Some(&st)))
        .await
        .unwrap();
    assert_eq!(out.code, 1);
    assert!(out.message.contains("different content"), "{}", out.message);
    // The failure and its reason are visible to the server.
    let recorded = lifeboat_backup::archive_status::ArchiveStatus::load(&status);
    let failure = recorded.last_failure.unwrap();
    assert_eq!(failure.file, SEGMENT);
    assert!(failure.reason.unwrap().contains("different content"));

    // The stored segment is still the first one.
    let dest = dir.path().join("RECOVERYXLOG");
    assert_eq!(
        wal_fetch(&repo.repo, INSTANCE, SEGMENT, &dest)
            .await
            .unwrap(),
        FetchOutcome::Restored
    );
    assert_eq!(std::fs::read(&dest).unwrap(), segment_bytes(0));
}

#[test]
fn fetch_of_a_missing_file_is_quiet_and_a_broken_one_is_fatal() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let repo = TestRepo::new();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("RECOVERYXLOG");
    let out = wal_fetch_command(&repo.config_path, INSTANCE, "00000002.history", &dest, None);
    assert_eq!((out.code, out.message.as_str()), (1, ""));
    assert!(!dest.exists());

    let path = dir.path().join(SEGMENT);
    std::fs::write(&path, segment_bytes(3)).unwrap();
    assert_eq!(
        wal_push_command(&repo.config_path, INSTANCE, &path, None).code,
        0
    );
    let stored = repo.local_root().join(INSTANCE).join("wal").join(SEGMENT);
    let mut bytes = std::fs::read(&stored).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&stored, &bytes).unwrap();
    let out = wal_fetch_command(&repo.config_path, INSTANCE, SEGMENT, &dest, None);
    assert_eq!(out.code, FETCH_FAILED_EXIT);
    assert!(
        out.message.contains(SEGMENT) && out.message.contains("corrupt"),
        "{}",
        out.message
    );
    assert!(
        !dest.exists(),
        "a corrupt segment must not be handed to PostgreSQL"
    );

    // An incomplete object (left by a crash before the push was reported) is replaced.
    std::fs::write(&stored, b"LBK1").unwrap();
    assert_eq!(
        rt.block_on(wal_push(&repo.repo, INSTANCE, &path)).unwrap(),
        PushOutcome::Stored
    );
    assert_eq!(
        rt.block_on(wal_fetch(&repo.repo, INSTANCE, SEGMENT, &dest))
            .unwrap(),
        FetchOutcome::Restored
    );

    // Timeline history files go through the same path.
    let history = dir.path().join("00000002.history");
    std::fs::write(&history, "1\t0/3000000\tbefore 2026-11-24 08:00:00+00\n").unwrap();
    assert_eq!(
        wal_push_command(&repo.config_path, INSTANCE, &history, None).code,
        0
    );
    let out = wal_fetch_command(&repo.config_path, INSTANCE, "00000002.history", &dest, None);
    assert_eq!(out.code, 0, "{}", out.message);
    assert_eq!(
        std::fs::read(&dest).unwrap(),
        std::fs::read(&history).unwrap()
    );

    let bad = wal_push_command(
        &repo.config_path,
        INSTANCE,
        &dir.path().join("not-wal"),
        None,
    );
    assert_eq!(bad.code, 1);
}

#[tokio::test]
async fn prefetch_serves_the_next_segments_from_its_directory() {
    use lifeboat_backup::prefetch::{Prefetch, wal_fetch_ahead};
    let repo = TestRepo::new();
    let dir = tempfile::tempdir().unwrap();
    let names: Vec<String> = (1..=5)
        .map(|i| format!("0000000100000000000000{i:02X}"))
        .collect();
    for (i, n) in names.iter().enumerate() {
        let p = dir.path().join(n);
        std::fs::write(&p, segment_bytes(i as u8)).unwrap();
        wal_push(&repo.repo, INSTANCE, &p).await.unwrap();
    }
    let prefetch = Prefetch {
        dir: dir.path().join("spool"),
        ahead: 3,
    };
    let dest = dir.path().join("RECOVERYXLOG");
    let out = wal_fetch_ahead(&repo.repo, INSTANCE, &names[0], &dest, &prefetch)
        .await
        .unwrap();
    assert_eq!(out, FetchOutcome::Restored);
    assert_eq!(std::fs::read(&dest).unwrap(), segment_bytes(0));
    assert!(prefetch.dir.join(&names[1]).exists() && prefetch.dir.join(&names[2]).exists());
    assert!(!prefetch.dir.join(&names[3]).exists());

    // The next one comes from the spool, even with the repository copy gone.
    repo.repo
        .delete(&lifeboat_backup::wal::wal_key(INSTANCE, &names[1]))
        .await
        .unwrap();
    wal_fetch_ahead(&repo.repo, INSTANCE, &names[1], &dest, &prefetch)
        .await
        .unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), segment_bytes(1));
    assert!(!prefetch.dir.join(&names[1]).exists());
    // Past the end of the archive: a quiet "not found", nothing spooled.
    for n in &names[2..] {
        wal_fetch_ahead(&repo.repo, INSTANCE, n, &dest, &prefetch)
            .await
            .unwrap();
    }
    let missing = "000000010000000000000006";
    assert_eq!(
        wal_fetch_ahead(&repo.repo, INSTANCE, missing, &dest, &prefetch)
            .await
            .unwrap(),
        FetchOutcome::NotFound
    );
    assert_eq!(std::fs::read_dir(&prefetch.dir).unwrap().count(), 0);
}

#[tokio::test]
async fn the_feeder_stays_ahead_of_replay_and_stops_at_the_end_of_the_archive() {
    use lifeboat_backup::prefetch::{FeedControl, Prefetch, feed};
    use std::sync::atomic::Ordering;
    let repo = TestRepo::new();
    let dir = tempfile::tempdir().unwrap();
    let names: Vec<String> = (1..=8)
        .map(|i| format!("0000000100000000000000{i:02X}"))
        .collect();
    for (i, n) in names.iter().enumerate() {
        let p = dir.path().join(n);
        std::fs::write(&p, segment_bytes(i as u8)).unwrap();
        wal_push(&repo.repo, INSTANCE, &p).await.unwrap();
    }
    let prefetch = Prefetch {
        dir: dir.path().join("spool"),
        ahead: 3,
    };
    let spooled = |dir: &std::path::Path| {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    };
    let control = FeedControl::default();
    control.replay_segno.store(2, Ordering::Relaxed);
    let size = 16u64 << 20;
    let feeding = feed(
        &repo.repo,
        INSTANCE,
        &prefetch,
        (1, 1),
        size,
        None,
        &control,
    );
    tokio::pin!(feeding);
    // Replay is at segment 2: the feeder fetches 2 to 5 and waits there.
    let settled = tokio::time::timeout(std::time::Duration::from_secs(2), &mut feeding).await;
    assert!(
        settled.is_err(),
        "the feeder must wait for replay to move on"
    );
    assert_eq!(spooled(&prefetch.dir), names[1..5].to_vec());
    assert_eq!(
        std::fs::read(prefetch.dir.join(&names[3])).unwrap(),
        segment_bytes(3)
    );
    // Replay moves to segment 6 (its restore_command took 2 to 5): the feeder follows,
    // fetches 6 to 8, finds no segment 9 in the archive and returns.
    for n in &names[1..5] {
        std::fs::remove_file(prefetch.dir.join(n)).unwrap();
    }
    control.replay_segno.store(6, Ordering::Relaxed);
    tokio::time::timeout(std::time::Duration::from_secs(10), &mut feeding)
        .await
        .expect("the feeder ends at the end of the archive");
    assert_eq!(spooled(&prefetch.dir), names[5..8].to_vec());
    assert_eq!(
        std::fs::read(prefetch.dir.join(&names[7])).unwrap(),
        segment_bytes(7)
    );

    // Stopped, it returns at once whatever is left.
    let control = FeedControl::default();
    control.stop.store(true, Ordering::Relaxed);
    let other = Prefetch {
        dir: dir.path().join("spool2"),
        ahead: 3,
    };
    tokio::time::timeout(
        std::time::Duration::from_secs(1),
        feed(&repo.repo, INSTANCE, &other, (1, 1), size, None, &control),
    )
    .await
    .expect("a stopped feeder returns");
    assert!(spooled(&other.dir).is_empty());
}

/// What a stream has received of a segment is fetched until the segment is archived;
/// a copy torn by a crash of the host reads as nothing received, not as an error.
#[tokio::test]
async fn the_streams_copy_is_fetched_until_archived_and_a_torn_one_is_not_there() {
    let repo = TestRepo::new();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("RECOVERYXLOG");
    let received = segment_bytes(3);
    lifeboat_backup::wal::stream_push(&repo.repo, INSTANCE, SEGMENT, received.clone())
        .await
        .unwrap();
    assert_eq!(
        wal_fetch(&repo.repo, INSTANCE, SEGMENT, &dest)
            .await
            .unwrap(),
        FetchOutcome::Restored
    );
    assert_eq!(std::fs::read(&dest).unwrap(), received);

    let copy = repo
        .local_root()
        .join(INSTANCE)
        .join("stream")
        .join(SEGMENT);
    let stored = std::fs::read(&copy).unwrap();
    std::fs::write(&copy, &stored[..stored.len() / 2]).unwrap();
    std::fs::remove_file(&dest).unwrap();
    assert_eq!(
        wal_fetch(&repo.repo, INSTANCE, SEGMENT, &dest)
            .await
            .unwrap(),
        FetchOutcome::NotFound
    );
    assert!(!dest.exists());

    // An archived segment that does not read is an error: it was complete once.
    let archived = dir.path().join(SEGMENT);
    std::fs::write(&archived, segment_bytes(4)).unwrap();
    wal_push(&repo.repo, INSTANCE, &archived).await.unwrap();
    let object = repo.local_root().join(INSTANCE).join("wal").join(SEGMENT);
    let stored = std::fs::read(&object).unwrap();
    std::fs::write(&object, &stored[..stored.len() / 2]).unwrap();
    let err = wal_fetch(&repo.repo, INSTANCE, SEGMENT, &dest)
        .await
        .unwrap_err();
    assert!(matches!(err, BackupError::Corrupt { .. }), "{err}");
}
