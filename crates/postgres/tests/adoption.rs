//! The adoption check against real clusters: a cluster ready to be adopted passes
//! every item and is left as it was; each missing requirement fails (or warns) its
//! own item with the server's words and what to do.

// Tests may panic on what they set up themselves.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use lifeboat_domain::task::PrecheckStatus::{self, Failed, Passed, Warning};
use lifeboat_postgres::adoption::{AdoptTarget, AdoptionItem, ITEMS, adoptable, check, slot_name};
use lifeboat_postgres::testing::TestCluster;
use lifeboat_postgres::{Installations, StopMode};

/// `pg_hba.conf` letting `adm` and `plain` in over TCP, for replication too.
const HBA: &str = "local all lifeboat trust
local all all scram-sha-256
host all all 127.0.0.1/32 scram-sha-256
host replication all 127.0.0.1/32 scram-sha-256
";

/// The Lifeboat server the checks run for.
const SERVER: &str = "lb-0a1b2c3d4e5f";

fn target(tc: &TestCluster, account: &str, password: &str) -> AdoptTarget {
    AdoptTarget {
        host: "127.0.0.1".into(),
        port: tc.cluster.port,
        account: account.into(),
        password: password.into(),
    }
}

/// A cluster with the accounts `adm` (REPLICATION, pg_read_all_data) and `plain`,
/// both with password `pw`; `hba` as given.
async fn cluster(hba: &str) -> TestCluster {
    let tc = TestCluster::start();
    let c = tc.connect("postgres").await;
    c.batch_execute(
        "CREATE ROLE adm LOGIN REPLICATION PASSWORD 'pw';
         GRANT pg_read_all_data TO adm;
         CREATE ROLE plain LOGIN PASSWORD 'pw';",
    )
    .await
    .unwrap();
    tc.cluster.write_hba(hba).unwrap();
    tc.cluster.reload().unwrap();
    tc
}

fn status_of(items: &[AdoptionItem], id: &str) -> PrecheckStatus {
    items
        .iter()
        .find(|i| i.id == id)
        .unwrap_or_else(|| panic!("no item {id}: {items:#?}"))
        .status
}

fn item<'a>(items: &'a [AdoptionItem], id: &str) -> &'a AdoptionItem {
    items.iter().find(|i| i.id == id).unwrap()
}

#[tokio::test]
async fn a_ready_cluster_passes_every_item_and_is_left_as_it_was() {
    let tc = cluster(HBA).await;
    let c = tc.connect("postgres").await;
    for sql in [
        "ALTER SYSTEM SET max_slot_wal_keep_size = '1GB'",
        "SELECT pg_reload_conf()",
    ] {
        c.batch_execute(sql).await.unwrap();
    }
    // The reload reaches backends started afterwards; wait until one sees it.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let fresh = tc.connect("postgres").await;
        let v: String = fresh
            .query_one("SHOW max_slot_wal_keep_size", &[])
            .await
            .unwrap()
            .get(0);
        if v == "1GB" {
            break;
        }
        assert!(Instant::now() < deadline, "the reload did not take: {v}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let items = check(
        &target(&tc, "adm", "pw"),
        &Installations::discover(&[]),
        SERVER,
    )
    .await;
    let ids: Vec<&str> = items.iter().map(|i| i.id).collect();
    let all: Vec<&str> = ITEMS.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, all);
    for i in &items {
        assert_eq!(i.status, Passed, "{i:#?}");
        assert_eq!(i.advice, "none needed");
    }
    assert!(adoptable(&items));
    assert!(
        item(&items, "slot_wal_limit")
            .detail
            .starts_with("max_slot_wal_keep_size = 1024 MB"),
        "{items:#?}"
    );
    let system: String = c
        .query_one(
            "SELECT system_identifier::text FROM pg_control_system()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        item(&items, "replication_connection")
            .detail
            .contains(&system),
        "{items:#?}"
    );
    // The temporary slot went with the check's connection.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let n: i64 = c
            .query_one("SELECT count(*) FROM pg_replication_slots", &[])
            .await
            .unwrap()
            .get(0);
        if n == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "a slot was left: {n}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_wrong_password_stops_at_the_connection() {
    let tc = cluster(HBA).await;
    let items = check(
        &target(&tc, "adm", "nope"),
        &Installations::discover(&[]),
        SERVER,
    )
    .await;
    assert_eq!(items.len(), 1, "{items:#?}");
    assert_eq!(items[0].id, "connection");
    assert_eq!(items[0].status, Failed);
    assert!(
        items[0]
            .detail
            .contains("password authentication failed for user \"adm\""),
        "{items:#?}"
    );
    assert!(!adoptable(&items));
}

#[tokio::test]
async fn an_account_without_replication_and_a_closed_hba_fail_their_items() {
    // The account may not replicate: the server refuses the walsender.
    let tc = cluster(HBA).await;
    let items = check(
        &target(&tc, "plain", "pw"),
        &Installations::discover(&[]),
        SERVER,
    )
    .await;
    assert_eq!(status_of(&items, "replication_privilege"), Failed);
    assert!(
        item(&items, "replication_privilege")
            .advice
            .starts_with("ALTER ROLE \"plain\" REPLICATION"),
        "{items:#?}"
    );
    assert_eq!(status_of(&items, "read_privilege"), Warning);
    // PostgreSQL 15's words, or those of 16 and later.
    let detail = &item(&items, "replication_connection").detail;
    assert!(
        [
            "a replication connection as plain failed: must be superuser or replication role to start walsender",
            "a replication connection as plain failed: permission denied to start WAL sender",
        ]
        .iter()
        .any(|d| detail.starts_with(d)),
        "{items:#?}"
    );
    assert!(
        item(&items, "replication_connection")
            .advice
            .starts_with("give the account REPLICATION"),
        "{items:#?}"
    );
    assert_eq!(status_of(&items, "slot_wal_limit"), Warning);
    assert_eq!(status_of(&items, "connection"), Passed);
    assert!(!adoptable(&items));

    // pg_hba.conf has no replication line for this host.
    tc.cluster
        .write_hba(&HBA.replace("host replication all 127.0.0.1/32 scram-sha-256\n", ""))
        .unwrap();
    tc.cluster.reload().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let items = loop {
        let items = check(
            &target(&tc, "adm", "pw"),
            &Installations::discover(&[]),
            SERVER,
        )
        .await;
        if status_of(&items, "replication_connection") == Failed || Instant::now() > deadline {
            break items;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let i = item(&items, "replication_connection");
    assert_eq!(i.status, Failed, "{items:#?}");
    assert!(
        i.detail
            .contains("no pg_hba.conf entry for replication connection"),
        "{i:#?}"
    );
    assert!(i.advice.contains("host replication adm"), "{i:#?}");
    assert_eq!(status_of(&items, "replication_slot"), Failed);
    assert_eq!(status_of(&items, "replication_privilege"), Passed);
}

#[tokio::test]
async fn a_minimal_wal_level_fails_the_check() {
    let tc = cluster(HBA).await;
    let c = tc.connect("postgres").await;
    for sql in [
        "ALTER SYSTEM SET wal_level = minimal",
        "ALTER SYSTEM SET max_wal_senders = 0",
    ] {
        c.batch_execute(sql).await.unwrap();
    }
    drop(c);
    tc.cluster.stop(StopMode::Fast).unwrap();
    tc.cluster.start("127.0.0.1").unwrap();
    let items = check(
        &target(&tc, "adm", "pw"),
        &Installations::discover(&[]),
        SERVER,
    )
    .await;
    let i = item(&items, "wal_level");
    assert_eq!(i.status, Failed, "{items:#?}");
    assert_eq!(i.detail, "wal_level = minimal");
    assert_eq!(status_of(&items, "wal_senders"), Failed);
    assert_eq!(
        item(&items, "wal_senders").detail,
        "0 of max_wal_senders = 0 free, 10 of max_replication_slots = 10 free"
    );
    assert!(!adoptable(&items));
}

/// A cluster another Lifeboat server protects (its slot is there) is refused, naming
/// that server; a slot of this server passes, named.
#[tokio::test]
async fn a_cluster_another_lifeboat_protects_is_refused() {
    let tc = cluster(HBA).await;
    let c = tc.connect("postgres").await;
    let theirs = slot_name("lb-zzzzzzzzzzzz", "pg-abcdef");
    c.query_one(
        "SELECT pg_create_physical_replication_slot($1)::text",
        &[&theirs],
    )
    .await
    .unwrap();
    let items = check(
        &target(&tc, "adm", "pw"),
        &Installations::discover(&[]),
        SERVER,
    )
    .await;
    let i = item(&items, "lifeboat_slot");
    assert_eq!(i.status, Failed, "{items:#?}");
    assert_eq!(
        i.detail,
        "the cluster has the replication slot lifeboat_lb_zzzzzzzzzzzz_pg_abcdef of Lifeboat server lb-zzzzzzzzzzzz: that server protects it"
    );
    assert!(
        i.advice
            .contains("pg_drop_replication_slot('lifeboat_lb_zzzzzzzzzzzz_pg_abcdef')")
    );
    assert!(!adoptable(&items));
    c.execute("SELECT pg_drop_replication_slot($1)", &[&theirs])
        .await
        .unwrap();
    let ours = slot_name(SERVER, "pg-abcdef");
    c.query_one(
        "SELECT pg_create_physical_replication_slot($1)::text",
        &[&ours],
    )
    .await
    .unwrap();
    let items = check(
        &target(&tc, "adm", "pw"),
        &Installations::discover(&[]),
        SERVER,
    )
    .await;
    let i = item(&items, "lifeboat_slot");
    assert_eq!(i.status, Passed, "{items:#?}");
    assert_eq!(i.detail, format!("this server's slots: {ours}"));
}

/// A server major whose programs are not installed on Lifeboat's host fails its item
/// (backups and temporary instances need them) and the two replication items say they
/// were not checked; a cluster without data checksums is a warning only.
#[tokio::test]
async fn missing_programs_fail_and_missing_checksums_warn() {
    let tc = cluster(HBA).await;
    let items = check(&target(&tc, "adm", "pw"), &Installations::default(), SERVER).await;
    let i = item(&items, "server_version");
    assert_eq!(i.status, Failed, "{items:#?}");
    assert!(
        i.advice
            .starts_with("install PostgreSQL 15's server binaries"),
        "{i:#?}"
    );
    for id in ["replication_connection", "replication_slot"] {
        let i = item(&items, id);
        assert_eq!(i.status, Failed, "{i:#?}");
        assert!(i.detail.starts_with("not checked"), "{i:#?}");
    }
    assert!(!adoptable(&items));

    // initdb without --data-checksums, as a distribution's package does by default
    // before PostgreSQL 18.
    let bins = lifeboat_postgres::testing::test_binaries();
    let user = lifeboat_postgres::OsUser::for_clusters(None).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let data = tmp.path().join("data");
    let run = |program: &str, args: &[&str]| {
        let out = user
            .command(&bins.path(program), tmp.path())
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    user.chown(tmp.path()).unwrap();
    let data_s = data.to_str().unwrap();
    let mut initdb = vec!["-D", data_s, "-U", "postgres", "--auth-local=trust"];
    if bins.major >= 18 {
        initdb.push("--no-data-checksums");
    }
    run("initdb", &initdb);
    let port = lifeboat_postgres::testing::free_port();
    let mut conf = std::fs::read_to_string(data.join("postgresql.conf")).unwrap();
    conf.push_str(&format!(
        "port = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n",
        tmp.path().display()
    ));
    std::fs::write(data.join("postgresql.conf"), conf).unwrap();
    std::fs::write(
        data.join("pg_hba.conf"),
        "local all postgres trust\nhost all all 127.0.0.1/32 scram-sha-256\nhost replication all 127.0.0.1/32 scram-sha-256\n",
    )
    .unwrap();
    let log = tmp.path().join("log");
    run(
        "pg_ctl",
        &["-D", data_s, "-l", log.to_str().unwrap(), "-w", "start"],
    );
    /// Stops the cluster however the test ends.
    struct Stop<'a>(&'a dyn Fn());
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            (self.0)();
        }
    }
    let stop = || {
        let _ = user
            .command(&bins.path("pg_ctl"), tmp.path())
            .args(["-D", data_s, "-m", "immediate", "stop"])
            .output();
    };
    let _stop = Stop(&stop);
    let mut c = tokio_postgres::Config::new();
    c.host_path(tmp.path())
        .port(port)
        .user("postgres")
        .dbname("postgres");
    let (client, conn) = c.connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    client
        .batch_execute("CREATE ROLE adm LOGIN REPLICATION PASSWORD 'pw'")
        .await
        .unwrap();
    let items = check(
        &AdoptTarget {
            host: "127.0.0.1".into(),
            port,
            account: "adm".into(),
            password: "pw".into(),
        },
        &Installations::discover(&[]),
        SERVER,
    )
    .await;
    let i = item(&items, "data_checksums");
    assert_eq!(i.status, Warning, "{items:#?}");
    assert_eq!(i.detail, "data_checksums = off");
    assert!(i.advice.contains("pg_checksums --enable"), "{i:#?}");
    assert!(adoptable(&items), "{items:#?}");
}
