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
        let bins = PgBinaries::discover(None).expect("PostgreSQL server binaries");
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
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}
