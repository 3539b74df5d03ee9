//! The S3 backend against a real S3 API server (moto) on loopback: WAL push/fetch and a
//! point-in-time restore with the archive and the base backup in a bucket.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use lifeboat_backup::repository::Durability;
use lifeboat_backup::{
    BackupError, BackupOptions, PushOutcome, RepositoryConfig, manifest, restorable_window,
    run_backup, verify, wal_push,
};
use lifeboat_postgres::testing::{TestCluster, free_port, skip};

use crate::util::{
    INSTANCE, RestoredCluster, TestRepo, enable_archiving, no_progress, switch_and_wait_archived,
};

/// A moto server in its own process group, stopped when dropped.
pub struct Moto {
    child: Child,
    port: u16,
}

impl Moto {
    /// Starts moto (installing it if needed); `None` with the reason printed when it
    /// cannot be had on this machine.
    pub fn start() -> Option<Self> {
        use std::os::unix::process::CommandExt;
        let port = free_port();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/start-moto.sh");
        let child = Command::new("sh")
            .arg(&script)
            .arg(port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn();
        let child = match child {
            Ok(c) => c,
            Err(e) => {
                skip(&format!("cannot run {}: {e}", script.display()));
                return None;
            }
        };
        let mut moto = Self { child, port };
        let deadline = Instant::now() + Duration::from_secs(180);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = moto.child.try_wait() {
                skip(&format!(
                    "moto could not be installed or started ({status})"
                ));
                return None;
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(moto);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        skip("moto did not listen within 180 s");
        None
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates a bucket (moto accepts unsigned requests).
    fn create_bucket(&self, bucket: &str) {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            s,
            "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        )
        .unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        // The process group this test started, and nothing else.
        if let Ok(pid) = i32::try_from(self.child.id()) {
            unsafe { libc::kill(-pid, libc::SIGTERM) };
        }
        let _ = self.child.wait();
    }
}

fn s3_repo(moto: &Moto, bucket: &str) -> TestRepo {
    let (tmp, config) = s3_config(moto, bucket);
    TestRepo::with_config(tmp, config)
}

/// A new bucket's repository config, and a temp dir for its config file.
pub fn s3_config(moto: &Moto, bucket: &str) -> (tempfile::TempDir, RepositoryConfig) {
    moto.create_bucket(bucket);
    let tmp = tempfile::Builder::new().prefix("lb-s3-").tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = RepositoryConfig {
        repository: format!("s3://{bucket}/region-local"),
        path: None,
        endpoint: Some(moto.endpoint()),
        region: Some("us-east-1".into()),
        access_key_id: Some("testing".into()),
        secret_access_key: Some("testing".into()),
        secret_access_key_file: None,
        allow_http: true,
        repository_cipher: None,
        repository_key_file: None,
    };
    (tmp, config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_repository_archives_backs_up_and_restores() {
    let Some(moto) = tokio::task::spawn_blocking(Moto::start).await.unwrap() else {
        return;
    };
    let repo = s3_repo(&moto, "lifeboat-test");

    // WAL push semantics hold on S3 too.
    let dir = tempfile::tempdir().unwrap();
    let seg = dir.path().join("0000000100000000000000A0");
    std::fs::write(&seg, vec![7u8; 16 << 20]).unwrap();
    assert_eq!(
        wal_push(&repo.repo, INSTANCE, &seg).await.unwrap(),
        PushOutcome::Stored
    );
    assert_eq!(
        wal_push(&repo.repo, INSTANCE, &seg).await.unwrap(),
        PushOutcome::AlreadyArchived
    );
    std::fs::write(&seg, vec![8u8; 16 << 20]).unwrap();
    let err = wal_push(&repo.repo, INSTANCE, &seg).await.unwrap_err();
    assert!(matches!(err, BackupError::WalConflict { .. }), "{err}");
    repo.repo
        .delete(&lifeboat_backup::wal::wal_key(
            INSTANCE,
            "0000000100000000000000A0",
        ))
        .await
        .unwrap();

    // A cluster archiving into the bucket, a base backup there, a restore from it.
    let tc = TestCluster::start();
    enable_archiving(&tc, &repo);
    let client = tc.connect("postgres").await;
    client
        .batch_execute("CREATE TABLE t (id int PRIMARY KEY)")
        .await
        .unwrap();
    client
        .batch_execute("INSERT INTO t SELECT generate_series(1, 1000)")
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
    client
        .batch_execute("INSERT INTO t SELECT generate_series(1001, 1500)")
        .await
        .unwrap();
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
    client.batch_execute("DELETE FROM t").await.unwrap();
    switch_and_wait_archived(&client).await;

    let waldump = tc.cluster.bins.path("pg_waldump");
    let window = restorable_window(&repo.repo, INSTANCE, &waldump)
        .await
        .unwrap()
        .unwrap();
    assert!(
        window.earliest < target && target < window.latest,
        "{window:?}"
    );

    let restored = RestoredCluster::restored_to(&repo, &backup.id, target, false).await;
    let rc = restored.cluster.connect("postgres").await.unwrap();
    let n: i64 = rc
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1500);
    drop(rc);
    drop(restored);

    // A damaged object in the bucket is reported by verify with its file.
    assert!(verify(&repo.repo, INSTANCE, 4).await.unwrap().is_ok());
    let control = backup
        .files
        .iter()
        .find(|f| f.path == "global/pg_control")
        .unwrap();
    let key = manifest::content_key(INSTANCE, &control.chunks[0]);
    let mut bytes = repo.repo.get(&key).await.unwrap().to_vec();
    let i = bytes.len() / 2;
    bytes[i] ^= 0x10;
    repo.repo
        .put(&key, Bytes::from(bytes), Durability::Durable)
        .await
        .unwrap();
    let report = verify(&repo.repo, INSTANCE, 4).await.unwrap();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert_eq!(
        report.problems[0].files,
        vec![format!("{}:global/pg_control", backup.id)]
    );
}
