//! An encrypted repository, on a local directory and on S3 (moto): a table holding a
//! known marker string is archived and backed up; no stored object shows the marker,
//! raw or decompressed, and no object name is the sha256 of a chunk; the point-in-time
//! restore with the key gives exactly the rows of that time and verify passes; a
//! flipped byte in a chunk or a WAL object, a wrong key and a missing key fail,
//! naming the object or the repository.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use lifeboat_backup::encryption::Cipher;
use lifeboat_backup::encryption::marker::MARKER_KEY;
use lifeboat_backup::repository::Durability;
use lifeboat_backup::restore::RestoreOptions;
use lifeboat_backup::wal::{self, WalFileKind};
use lifeboat_backup::{
    BackupError, BackupOptions, Repository, RepositoryConfig, manifest, restore, run_backup, verify,
};
use lifeboat_postgres::testing::TestCluster;

use crate::s3::{Moto, s3_config};
use crate::util::{
    INSTANCE, RestoredCluster, TestRepo, enable_archiving, encrypted, key_file, no_progress,
    switch_and_wait_archived,
};

const MARKER: &str = "lifeboat-secret-marker-8f3a";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encrypted_file_repository_hides_the_rows_and_restores_them() {
    let tmp = tempfile::Builder::new()
        .prefix("lb-repo-")
        .tempdir()
        .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = encrypted(
        RepositoryConfig::local(tmp.path().join("repository")),
        tmp.path(),
        Cipher::Aes256Gcm,
    );
    let repo = TestRepo::with_config(tmp, config.clone());
    let root = repo.local_root().to_path_buf();
    round_trip(&repo, &config).await;
    // Every file under the directory too, staging files included.
    for path in walk(&root) {
        let bytes = std::fs::read(&path).unwrap();
        if let Some(how) = leak(&bytes) {
            panic!("{} shows the marker {how}", path.display());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encrypted_s3_repository_hides_the_rows_and_restores_them() {
    let Some(moto) = tokio::task::spawn_blocking(Moto::start).await.unwrap() else {
        return;
    };
    let (tmp, config) = s3_config(&moto, "lifeboat-encrypted");
    // The other cipher here, so both are tested end to end.
    let config = encrypted(config, tmp.path(), Cipher::ChaCha20Poly1305);
    let repo = TestRepo::with_config(tmp, config.clone());
    round_trip(&repo, &config).await;
}

/// Archives, backs up and restores a table of marker rows through `repo`, then
/// checks the repository for leaks and damaged objects, a wrong key and no key.
async fn round_trip(repo: &TestRepo, config: &RepositoryConfig) {
    let tc = TestCluster::start();
    enable_archiving(&tc, repo);
    let client = tc.connect("postgres").await;
    client
        .batch_execute(&format!(
            "CREATE TABLE secrets (id int PRIMARY KEY, note text);
             INSERT INTO secrets SELECT g, '{MARKER} row ' || g FROM generate_series(1, 20000) g"
        ))
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
    // Rows after the backup are only in the WAL.
    client
        .batch_execute(&format!(
            "INSERT INTO secrets SELECT g, '{MARKER} later ' || g FROM generate_series(20001, 30000) g"
        ))
        .await
        .unwrap();
    let expected = checksum(&client).await;
    assert_eq!(expected.0, 30000);
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
    client
        .batch_execute("DELETE FROM secrets WHERE id % 2 = 0")
        .await
        .unwrap();
    switch_and_wait_archived(&client).await;
    let table_file: String = client
        .query_one("SELECT pg_relation_filepath('secrets')", &[])
        .await
        .unwrap()
        .get(0);

    // The marker says how the repository is encrypted, in clear, and nothing else.
    let marker = repo.repo.get(MARKER_KEY).await.unwrap();
    let text = String::from_utf8(marker.to_vec()).unwrap();
    assert!(
        text.contains(config.repository_cipher.unwrap().name()),
        "{text}"
    );

    // No object shows the marker string, raw or decompressed; no object name is the
    // sha256 of the content it holds.
    let objects = repo.repo.list("").await.unwrap();
    let wal_objects = objects.iter().filter(|o| o.key.contains("/wal/")).count();
    assert!(wal_objects >= 2, "{objects:?}");
    let names: std::collections::HashSet<String> = objects
        .iter()
        .filter_map(|o| o.key.rsplit('/').next().map(str::to_string))
        .collect();
    for o in &objects {
        let bytes = repo.repo.get(&o.key).await.unwrap();
        if let Some(how) = leak(&bytes) {
            panic!("{} shows the marker {how}", o.key);
        }
    }
    for file in backup.files.iter().filter(|f| !f.chunks.is_empty()) {
        for c in &file.chunks {
            let key = manifest::content_key(INSTANCE, c);
            let (_, raw) = repo
                .repo
                .codec()
                .decode(&key, &repo.repo.get(&key).await.unwrap())
                .unwrap();
            let sha = hex::encode(lifeboat_backup::object::sha256(&raw));
            assert!(!names.contains(&sha), "{key} is named by its sha256");
        }
    }
    // The detector finds the marker where it is in clear: the test can fail.
    let sample = format!("{MARKER} ").repeat(1000);
    let clear = lifeboat_backup::object::Codec::clear()
        .encode("k", sample.as_bytes(), 3)
        .unwrap()
        .0;
    assert!(leak(&clear).is_some());

    // With the key: verify passes and the point-in-time restore has exactly the rows.
    let report = verify(&repo.repo, INSTANCE, 4).await.unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
    assert!(report.objects_checked as usize >= wal_objects);
    let restored = RestoredCluster::restored_to(repo, &backup.id, target, false).await;
    let rc = restored.cluster.connect("postgres").await.unwrap();
    assert_eq!(checksum(&rc).await, expected);
    drop(rc);
    drop(restored);

    flipped_bytes_are_named(repo, &backup, &table_file).await;
    wrong_and_missing_keys_are_refused(repo, config, &backup.id).await;
}

/// A flipped byte in the table's chunk and in a WAL segment: verify names each object,
/// and restore and WAL fetch fail naming it.
async fn flipped_bytes_are_named(repo: &TestRepo, backup: &manifest::Manifest, table_file: &str) {
    let entry = backup.files.iter().find(|f| f.path == table_file).unwrap();
    let chunk = manifest::content_key(INSTANCE, &entry.chunks[0]);
    let original = flip(repo, &chunk).await;
    let report = verify(&repo.repo, INSTANCE, 4).await.unwrap();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert_eq!(report.problems[0].object, chunk);
    assert_eq!(
        report.problems[0].files,
        vec![format!("{}:{table_file}", backup.id)]
    );
    assert!(
        report.problems[0].detail.contains("fails authentication"),
        "{}",
        report.problems[0].detail
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
    assert!(matches!(err, BackupError::Corrupt { .. }), "{err}");
    let m = err.to_string();
    assert!(m.contains(table_file) && m.contains(&chunk), "{m}");
    put(repo, &chunk, original).await;

    let segment = repo
        .repo
        .list(&format!("{INSTANCE}/wal/"))
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .filter(|k| {
            matches!(
                wal::wal_file_kind(k.rsplit('/').next().unwrap()),
                Ok(WalFileKind::Segment)
            )
        })
        .max()
        .unwrap();
    let original = flip(repo, &segment).await;
    let report = verify(&repo.repo, INSTANCE, 4).await.unwrap();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert_eq!(report.problems[0].object, segment);
    let name = segment.rsplit('/').next().unwrap();
    let out = dest.path().join(name);
    let err = wal::wal_fetch(&repo.repo, INSTANCE, name, &out)
        .await
        .unwrap_err();
    assert!(err.to_string().contains(&segment), "{err}");
    assert!(!out.exists(), "a damaged segment was written out");
    put(repo, &segment, original).await;
    assert!(verify(&repo.repo, INSTANCE, 4).await.unwrap().is_ok());
}

/// Another key, or none, is refused before anything is restored, naming the
/// repository; `wal-fetch` with another key names the segment.
async fn wrong_and_missing_keys_are_refused(
    repo: &TestRepo,
    config: &RepositoryConfig,
    backup_id: &str,
) {
    let keys = tempfile::tempdir().unwrap();
    let wrong = RepositoryConfig {
        repository_key_file: Some(key_file(keys.path(), "wrong.key", 0x3c)),
        ..config.clone()
    };
    let without = RepositoryConfig {
        repository_cipher: None,
        repository_key_file: None,
        ..config.clone()
    };
    let description = repo.repo.description().to_string();
    for (bad, says) in [
        (&wrong, "does not hold the key"),
        (&without, "no repository_cipher"),
    ] {
        let other = Repository::open(bad).unwrap();
        let dest = tempfile::tempdir().unwrap();
        let err = restore(
            &other,
            INSTANCE,
            backup_id,
            &dest.path().join("data"),
            &RestoreOptions::default(),
            &no_progress,
        )
        .await
        .unwrap_err();
        assert!(matches!(err, BackupError::KeyMismatch { .. }), "{err}");
        let m = err.to_string();
        assert!(m.contains(&description) && m.contains(says), "{m}");
        assert!(!dest.path().join("data").exists(), "restore wrote files");
        let err = verify(&other, INSTANCE, 4).await.unwrap_err();
        assert!(matches!(err, BackupError::KeyMismatch { .. }), "{err}");
        assert!(other.mark_encryption().await.is_err());
    }
    // restore_command with the wrong key: exit 126 (recovery stops) naming the segment.
    let wrong_path = keys.path().join("wrong.toml");
    wrong.save(&wrong_path).unwrap();
    let segment = repo
        .repo
        .list(&format!("{INSTANCE}/wal/"))
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .max()
        .unwrap();
    let name = segment.rsplit('/').next().unwrap().to_string();
    let dest = keys.path().join("segment");
    let (p, d, n) = (wrong_path.clone(), dest.clone(), name.clone());
    let outcome = tokio::task::spawn_blocking(move || {
        lifeboat_backup::wal_fetch_command(&p, INSTANCE, &n, &d, None)
    })
    .await
    .unwrap();
    assert_eq!(outcome.code, wal::FETCH_FAILED_EXIT, "{}", outcome.message);
    assert!(
        outcome.message.contains(&segment) && outcome.message.contains("key"),
        "{}",
        outcome.message
    );
    assert!(!dest.exists());
}

/// Flips one byte in the middle of an object; returns the original bytes.
async fn flip(repo: &TestRepo, key: &str) -> Bytes {
    let original = repo.repo.get(key).await.unwrap();
    let mut bytes = original.to_vec();
    let i = bytes.len() / 2;
    bytes[i] ^= 0x10;
    put(repo, key, Bytes::from(bytes)).await;
    original
}

async fn put(repo: &TestRepo, key: &str, bytes: Bytes) {
    repo.repo
        .put(key, bytes, Durability::Durable)
        .await
        .unwrap();
}

async fn checksum(c: &tokio_postgres::Client) -> (i64, String) {
    let r = c
        .query_one(
            "SELECT count(*), md5(string_agg(id || ':' || note, ',' ORDER BY id)) FROM secrets",
            &[],
        )
        .await
        .unwrap();
    (r.get(0), r.get(1))
}

/// How the marker string shows in `bytes`: raw, or in the output of a zstd frame that
/// starts anywhere in them (the only compression the repository uses), read as far as
/// it decodes. `None` when it does not.
fn leak(bytes: &[u8]) -> Option<String> {
    let marker = MARKER.as_bytes();
    let has = |b: &[u8]| b.windows(marker.len()).any(|w| w == marker);
    if has(bytes) {
        return Some("in its raw bytes".into());
    }
    const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
    for start in 0..bytes.len().saturating_sub(4) {
        if bytes[start..start + 4] != ZSTD_MAGIC {
            continue;
        }
        let Ok(mut dec) = zstd::stream::read::Decoder::new(&bytes[start..]) else {
            continue;
        };
        let mut out = Vec::new();
        let mut buf = vec![0u8; 1 << 16];
        // Up to the point the frame stops decoding (a damaged or foreign one).
        while out.len() < 64 << 20 {
            match std::io::Read::read(&mut dec, &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
        if has(&out) {
            return Some(format!("in a zstd frame at offset {start}"));
        }
    }
    None
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
