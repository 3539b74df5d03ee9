//! A throwaway cluster for tests: own temp directory, own port, run as the OS user,
//! stopped and removed when dropped (also when the test panics).

use std::net::TcpListener;

use tokio_postgres::Client;

use crate::cluster::{Cluster, StopMode};
use crate::settings::ClusterSettings;
use crate::{OsUser, PgBinaries, render_hba};

/// A running cluster that lives as long as this value.
pub struct TestCluster {
    pub cluster: Cluster,
    // Kept for its Drop, which removes the directory after the cluster stopped.
    _tmp: tempfile::TempDir,
}

impl TestCluster {
    /// Initializes and starts a cluster on a free loopback port. Panics with the reason
    /// when PostgreSQL is not installed: tests need it.
    pub fn start() -> Self {
        let bins = test_binaries();
        let user = OsUser::for_clusters(None).expect("OS user for clusters");
        let tmp = tempfile::Builder::new()
            .prefix("lb-test-")
            .tempdir()
            .expect("temp dir");
        // The OS user must traverse the temp dir to reach its instance dir.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        let port = free_port();
        let cluster = Cluster::new(tmp.path().join("pg"), port, bins, user);
        cluster.init().expect("initdb");
        cluster
            .write_settings(&ClusterSettings {
                port,
                listen_address: "127.0.0.1".into(),
                socket_dir: cluster.socket_dir().to_path_buf(),
                archive: None,
                extra: vec![("fsync".into(), "off".into())],
            })
            .expect("settings");
        cluster
            .write_hba(&render_hba(&[lifeboat_domain::WhitelistEntry::localhost()]))
            .expect("hba");
        cluster.start("127.0.0.1").expect("start");
        Self { cluster, _tmp: tmp }
    }

    /// A superuser connection to `database`.
    pub async fn connect(&self, database: &str) -> Client {
        self.cluster.connect(database).await.expect("connect")
    }

    /// A tokio-postgres config reaching this cluster as its management role.
    pub fn config(&self, database: &str) -> tokio_postgres::Config {
        let mut c = tokio_postgres::Config::new();
        c.host_path(self.cluster.socket_dir())
            .port(self.cluster.port)
            .user(crate::MANAGEMENT_ROLE)
            .dbname(database);
        c
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        let _ = self.cluster.stop(StopMode::Immediate);
    }
}

/// A port that was free a moment ago; good enough for tests.
/// The installation library tests run against: `LIFEBOAT_TEST_PG_BIN` when set, else
/// the oldest supported major installed. Their expectations of PostgreSQL's catalogs
/// (constraints listed, collations available) are those of that major; every major
/// runs the whole workflow in the `lifeboat` crate's tests.
pub fn test_binaries() -> PgBinaries {
    if let Ok(dir) = std::env::var("LIFEBOAT_TEST_PG_BIN") {
        return PgBinaries::at(std::path::Path::new(&dir)).expect("LIFEBOAT_TEST_PG_BIN");
    }
    let all = crate::Installations::discover(&[]);
    let oldest = all
        .majors()
        .into_iter()
        .min()
        .expect("PostgreSQL server binaries");
    all.major(oldest)
        .expect("PostgreSQL server binaries")
        .clone()
}

/// A port nothing listens on now, below the kernel's ephemeral range (32768 and up),
/// where the client side of any connection could take it before the test uses it.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let seed = u64::from(std::process::id()) * 7919
        + NEXT.fetch_add(1, Ordering::Relaxed) * 131
        + std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| u64::from(d.subsec_nanos()))
            .unwrap_or(0);
    (0..10_000u64)
        .map(|i| 10_000 + ((seed + i * 7) % 10_000) as u16)
        .find(|p| TcpListener::bind(("127.0.0.1", *p)).is_ok())
        .expect("a free port between 10000 and 19999")
}

/// Says why a test cannot run on this machine (an outside tool that is missing and
/// cannot be installed) and lets it return early, except under `CI=true`, where a
/// test never passes by skipping: there the missing tool fails the test.
pub fn skip(reason: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "{reason}; under CI=true a test may not skip: install what it needs (scripts/install-deps)"
        );
    }
    println!("SKIPPED: {reason}");
}
