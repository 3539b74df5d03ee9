//! Shared test set-up: a repository PostgreSQL can archive into, archiving turned on in
//! a test cluster, and a restored cluster that is stopped when dropped.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lifeboat_backup::{Repository, RepositoryConfig};
use lifeboat_postgres::settings::ArchiveSettings;
use lifeboat_postgres::testing::{TestCluster, free_port};
use lifeboat_postgres::{Cluster, ClusterSettings, OsUser, StopMode};

pub const INSTANCE: &str = "pg-test01";

/// A local repository under a temp dir that the clusters' OS user can reach, with its
/// config file for the WAL commands.
pub struct TestRepo {
    // Kept for its Drop.
    _tmp: tempfile::TempDir,
    pub repo: Repository,
    pub config_path: PathBuf,
}

impl TestRepo {
    pub fn new() -> Self {
        let tmp = tempfile::Builder::new()
            .prefix("lb-repo-")
            .tempdir()
            .unwrap();
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let dir = tmp.path().join("repository");
        let config = RepositoryConfig::local(&dir);
        Self::with_config(tmp, config)
    }

    pub fn with_config(tmp: tempfile::TempDir, config: RepositoryConfig) -> Self {
        let user = OsUser::for_clusters(None).unwrap();
        let repo = Repository::open(&config).unwrap();
        repo.prepare_instance(INSTANCE, Some(&user)).unwrap();
        let config_path = tmp.path().join("repository.toml");
        config.save(&config_path).unwrap();
        // archive_command runs as the clusters' OS user: it must read the config.
        user.chown(&config_path).unwrap();
        Self {
            _tmp: tmp,
            repo,
            config_path,
        }
    }

    pub fn local_root(&self) -> &Path {
        self.repo.local_root().unwrap()
    }

    /// The `archive_command` calling this crate's example binary.
    pub fn archive_command(&self) -> String {
        lifeboat_backup::wal::archive_command(&wal_command_bin(), &self.config_path, INSTANCE)
    }

    /// The `restore_command`, fetching 4 segments ahead into `prefetch_dir` when given.
    pub fn restore_command(&self, prefetch_dir: Option<&Path>) -> String {
        let prefetch = prefetch_dir.map(|d| lifeboat_backup::prefetch::Prefetch {
            dir: d.to_path_buf(),
            ahead: 4,
        });
        lifeboat_backup::restore::restore_command(
            &wal_command_bin(),
            &self.config_path,
            INSTANCE,
            prefetch.as_ref(),
        )
    }
}

/// Writes a repository key (64 hex digits, every byte `byte`) to `dir/name`, mode 0600
/// and owned by the clusters' OS user, which runs `archive_command` and must read it.
pub fn key_file(dir: &Path, name: &str, byte: u8) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("{}\n", hex::encode([byte; 32]))).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    OsUser::for_clusters(None).unwrap().chown(&path).unwrap();
    path
}

/// `config` encrypted with `cipher`, under a key written in `dir`.
pub fn encrypted(
    mut config: RepositoryConfig,
    dir: &Path,
    cipher: lifeboat_backup::encryption::Cipher,
) -> RepositoryConfig {
    config.repository_cipher = Some(cipher);
    config.repository_key_file = Some(key_file(dir, "repository.key", 0x5a));
    config
}

/// This crate's `lifeboat-wal` binary, standing in for `lifeboat wal-push`/`wal-fetch`.
pub fn wal_command_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_lifeboat-wal"))
}

fn settings_for(
    cluster: &Cluster,
    archive: Option<ArchiveSettings>,
    extra: Vec<(String, String)>,
) -> ClusterSettings {
    let mut all = vec![("fsync".to_string(), "off".to_string())];
    all.extend(extra);
    ClusterSettings {
        port: cluster.port,
        listen_address: "127.0.0.1".into(),
        socket_dir: cluster.socket_dir().to_path_buf(),
        archive,
        extra: all,
    }
}

/// Turns on archiving into `repo` and restarts the cluster.
pub fn enable_archiving(tc: &TestCluster, repo: &TestRepo) {
    let archive = ArchiveSettings {
        command: repo.archive_command(),
        timeout_secs: 60,
    };
    tc.cluster
        .write_settings(&settings_for(&tc.cluster, Some(archive), vec![]))
        .unwrap();
    tc.cluster.stop(StopMode::Fast).unwrap();
    tc.cluster.start("127.0.0.1").unwrap();
}

/// Switches to a new WAL segment and waits until the one just finished is archived.
pub async fn switch_and_wait_archived(client: &tokio_postgres::Client) -> String {
    let seg: String = client
        // The byte before the switch's end: pg_walfile_name of a segment boundary names
        // the segment before it up to PostgreSQL 17, the one after it from 18.
        .query_one("SELECT pg_walfile_name(pg_switch_wal() - 1)", &[])
        .await
        .unwrap()
        .get(0);
    for _ in 0..300 {
        let row = client
            .query_one("SELECT coalesce(last_archived_wal, ''), coalesce(last_failed_wal, '') FROM pg_stat_archiver", &[])
            .await
            .unwrap();
        let archived: String = row.get(0);
        if archived.len() >= 24 && archived[..24] >= seg[..] {
            return seg;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let failed: String = client
        .query_one(
            "SELECT coalesce(last_failed_wal, '') FROM pg_stat_archiver",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    panic!("segment {seg} not archived in 30 s (last failed: {failed})");
}

/// A cluster restored from the repository, stopped and removed when dropped.
pub struct RestoredCluster {
    pub cluster: Cluster,
    _tmp: tempfile::TempDir,
}

impl RestoredCluster {
    /// An empty instance directory for a restore; `data_dir()` is the restore target.
    pub fn prepare() -> Self {
        let tmp = tempfile::Builder::new()
            .prefix("lb-restore-")
            .tempdir()
            .unwrap();
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let bins = lifeboat_postgres::testing::test_binaries();
        let user = OsUser::for_clusters(None).unwrap();
        let cluster = Cluster::new(tmp.path().join("pg"), free_port(), bins, user);
        std::fs::create_dir(&cluster.dir).unwrap();
        std::fs::set_permissions(&cluster.dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        cluster.user.chown(&cluster.dir).unwrap();
        Self { cluster, _tmp: tmp }
    }

    /// A new cluster restored from `backup_id` of [`INSTANCE`] in `repo` and recovered to
    /// `target`, promoted; with `prefetch`, its `restore_command` fetches WAL ahead into
    /// the instance directory, as temporary instances do.
    pub async fn restored_to(
        repo: &TestRepo,
        backup_id: &str,
        target: chrono::DateTime<chrono::Utc>,
        prefetch: bool,
    ) -> Self {
        let restored = Self::prepare();
        let options = lifeboat_backup::RestoreOptions {
            owner: Some(restored.cluster.user.clone()),
            ..lifeboat_backup::RestoreOptions::default()
        };
        lifeboat_backup::restore(
            &repo.repo,
            INSTANCE,
            backup_id,
            &restored.cluster.data_dir(),
            &options,
            &no_progress,
        )
        .await
        .unwrap();
        let spool = restored.cluster.dir.join("wal-prefetch");
        restored
            .recover(&lifeboat_postgres::recovery::RecoverySettings {
                restore_command: repo.restore_command(prefetch.then_some(spool.as_path())),
                target: lifeboat_domain::RestoreTarget::Time(target.fixed_offset()),
                pause_at_target: false,
            })
            .await;
        restored
    }

    /// Writes the recovery settings, starts, and waits until promoted.
    pub async fn recover(&self, recovery: &lifeboat_postgres::recovery::RecoverySettings) {
        let settings = settings_for(&self.cluster, None, recovery.settings());
        self.cluster.write_settings(&settings).unwrap();
        lifeboat_postgres::recovery::write_recovery_signal(
            &self.cluster.data_dir(),
            Some(&self.cluster.user),
        )
        .unwrap();
        self.cluster.start("127.0.0.1").unwrap();
        let client = self.cluster.connect("postgres").await.unwrap();
        for _ in 0..600 {
            let in_recovery: bool = client
                .query_one("SELECT pg_is_in_recovery()", &[])
                .await
                .unwrap()
                .get(0);
            if !in_recovery {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("restored cluster did not promote in 60 s");
    }
}

impl Drop for RestoredCluster {
    fn drop(&mut self) {
        let _ = self.cluster.stop(StopMode::Immediate);
    }
}

pub fn no_progress(_: lifeboat_backup::Progress) {}
