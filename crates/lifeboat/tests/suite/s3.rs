//! The whole recovery path with the region's repository on S3 (moto's S3 API server on
//! loopback): archive_command pushes to S3, base backups go there, and a temporary
//! instance is restored from there.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::harness::*;

/// moto's S3 server in its own process group, stopped when dropped.
pub(super) struct Moto {
    child: Child,
    port: u16,
}

impl Moto {
    pub(super) fn start() -> Option<Self> {
        use std::os::unix::process::CommandExt;
        let (port, _) = port_range(1);
        let script =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../backup/tests/start-moto.sh");
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
                    "moto could not be started ({status}); scripts/install-deps installs it"
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
}

impl Drop for Moto {
    fn drop(&mut self) {
        // The script execs moto_server, which may have children: stop the whole group.
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["--", &group]).status();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn recovery_through_an_s3_repository() {
    let Some(moto) = Moto::start() else { return };
    let endpoint = format!("http://127.0.0.1:{}", moto.port);
    let created = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-X",
            "PUT",
            &format!("{endpoint}/lifeboat-it"),
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&created.stdout), "200");
    let (a, b) = port_range(6);
    let server = TestServer::with_config(&format!(
        "[backup]\narchive_timeout = \"1s\"\n[[region]]\nname = \"local\"\nports = \"{a}-{b}\"\n\
         repository = \"s3://lifeboat-it/prod\"\n[region.s3]\nendpoint = \"{endpoint}\"\nregion = \"us-east-1\"\n\
         access_key_id = \"testing\"\nsecret_access_key = \"testing\"\nallow_http = true\n"
    ));
    let (id, _, admin) = server.backed_up_master("shop").await;
    create_orders(&admin, 4321).await;
    let t = now_and_switch(&admin).await;
    admin.batch_execute("DELETE FROM orders").await.unwrap();
    switch_wal(&admin).await;
    server.wait_window_reaches(&id, t).await;
    // Nothing went to the local directory: the repository is the bucket.
    assert!(
        !server
            .data_dir
            .join("regions/local/repository")
            .join(&id)
            .join("wal")
            .exists()
    );

    let temp = server.json(&["temp", "create", &id, "--at", &t.to_rfc3339(), "--wait"]);
    let copy = connect(port_of(&temp), "admin", PASSWORD).await.unwrap();
    let n = count_rows(&copy, "orders").await;
    assert_eq!(n, 4321);
    let verify = server.json(&["backup", "verify", &id]);
    assert_eq!(verify["ok"], true, "{verify}");
}

/// The Lifeboat host is lost with its master: a new server with an empty data
/// directory and the same S3 region finds the master in the repository and clones it
/// at a time before the loss, with exactly the rows of that time.
#[tokio::test]
async fn a_new_server_restores_from_the_repository_when_the_host_is_lost() {
    let Some(moto) = Moto::start() else { return };
    let endpoint = format!("http://127.0.0.1:{}", moto.port);
    let created = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-X",
            "PUT",
            &format!("{endpoint}/lifeboat-loss"),
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&created.stdout), "200");
    let config = || {
        let (a, b) = port_range(6);
        format!(
            "[backup]\narchive_timeout = \"1s\"\n[[region]]\nname = \"local\"\nports = \"{a}-{b}\"\n\
             repository = \"s3://lifeboat-loss/prod\"\n[region.s3]\nendpoint = \"{endpoint}\"\nregion = \"us-east-1\"\n\
             access_key_id = \"testing\"\nsecret_access_key = \"testing\"\nallow_http = true\n"
        )
    };
    let mut lost = TestServer::with_config(&config());
    let (id, _, admin) = lost.backed_up_master("shop").await;
    create_orders(&admin, 2500).await;
    admin
        .batch_execute("CREATE ROLE reader LOGIN PASSWORD 'reader-secret-1'")
        .await
        .unwrap();
    let t = now_and_switch(&admin).await;
    admin
        .batch_execute("DELETE FROM orders WHERE id > 100")
        .await
        .unwrap();
    switch_wal(&admin).await;
    lost.wait_window_reaches(&id, t).await;
    let lost_server_id = lost.json(&["repository", "list"])["server_id"]
        .as_str()
        .unwrap()
        .to_string();

    // The host is gone: the server, its master, its whole data directory.
    drop(admin);
    lost.kill();
    stop_clusters_under(&lost.data_dir);
    std::fs::remove_dir_all(&lost.data_dir).unwrap();
    drop(lost);

    let fresh = TestServer::with_config(&config());
    assert!(
        fresh
            .json(&["instance", "list"])
            .as_array()
            .unwrap()
            .is_empty()
    );
    let listed = fresh.json(&["repository", "list", "--region", "local"]);
    let entry = repository_entry(&listed, id.as_str());
    assert_eq!(entry["relation"], "other_server", "{entry}");
    assert_eq!(entry["owner"], lost_server_id.as_str(), "{entry}");
    assert_eq!(entry["name"], "shop", "{entry}");
    assert_eq!(entry["window"]["available"], true, "{entry}");
    let window = fresh.json(&["backup", "window", &id]);
    let latest = chrono::DateTime::parse_from_rfc3339(window["latest"].as_str().unwrap()).unwrap();
    assert!(latest >= t, "the window reaches the target: {window}");
    let verify = fresh.json(&["backup", "verify", &id]);
    assert_eq!(verify["ok"], true, "{verify}");
    // The mistake is found in its WAL by the new server too, and a clone can stop
    // just before it.
    let events = fresh.json(&["backup", "events", &id, "--min-rows", "1000"]);
    let delete = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "delete")
        .cloned()
        .unwrap_or_else(|| panic!("the DELETE is listed: {events}"));
    assert_eq!(delete["rows"], 2400, "{delete}");
    let before = fresh.json(&[
        "instance",
        "clone",
        &id,
        "--before",
        delete["id"].as_str().unwrap(),
        "--name",
        "shop-before",
        "--wait",
    ]);
    let just_before = connect(port_of(&before), "admin", PASSWORD).await.unwrap();
    assert_eq!(count_rows(&just_before, "orders").await, 2500);
    drop(just_before);
    fresh.json(&["instance", "delete", &id_of(&before)]);

    let clone = fresh.json(&[
        "instance",
        "clone",
        &id,
        "--at",
        &t.to_rfc3339(),
        "--name",
        "shop-back",
        "--wait",
    ]);
    assert_eq!(clone["status"], "running", "{clone}");
    assert_eq!(clone["restored_from"], id.as_str());
    // The accounts and passwords of that time, and exactly its rows.
    let back = connect(port_of(&clone), "admin", PASSWORD).await.unwrap();
    assert_eq!(count_rows(&back, "orders").await, 2500);
    let sum: i64 = back
        .query_one("SELECT sum(id)::bigint FROM orders", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(sum, 2500 * 2501 / 2);
    connect(port_of(&clone), "reader", "reader-secret-1")
        .await
        .expect("an account of that time logs in with its password");
    // The clone's own window starts, in the same bucket, owned by the new server.
    let clone_id = id_of(&clone);
    back.batch_execute("CREATE TABLE after_loss AS SELECT 1 AS x")
        .await
        .unwrap();
    let t2 = now_and_switch(&back).await;
    fresh.wait_window_reaches(&clone_id, t2).await;
    let listed = fresh.json(&["repository", "list"]);
    let mine = repository_entry(&listed, clone_id.as_str());
    assert_eq!(mine["relation"], "managed", "{mine}");
    assert_eq!(mine["owner"], listed["server_id"], "{mine}");
    assert_eq!(mine["restored_from"], id.as_str(), "{mine}");
}

/// An adopted cluster's WAL streams into a bucket, and the segment it is writing is
/// there too: when Lifeboat's host is lost, a new server with the same region finds
/// the cluster in the bucket, its window reaches the last commit although the cluster
/// never switched its WAL (the segment in progress is in the bucket), and a clone at
/// the window's end has that commit's rows and the cluster's accounts.
#[tokio::test]
async fn an_adopted_cluster_streams_into_a_bucket_that_outlives_lifeboats_host() {
    let Some(moto) = Moto::start() else { return };
    let endpoint = format!("http://127.0.0.1:{}", moto.port);
    let created = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT"])
        .arg(format!("{endpoint}/lifeboat-adopted"))
        .output()
        .expect("curl");
    assert_eq!(String::from_utf8_lossy(&created.stdout), "200");
    let config = || {
        let (a, b) = port_range(6);
        format!(
            "[[region]]\nname = \"local\"\nports = \"{a}-{b}\"\n\
             repository = \"s3://lifeboat-adopted/prod\"\n[region.s3]\nendpoint = \"{endpoint}\"\nregion = \"us-east-1\"\n\
             access_key_id = \"testing\"\nsecret_access_key = \"testing\"\nallow_http = true\n"
        )
    };
    let mut lost = TestServer::with_config(&config());
    let tc = super::adoption::outside_cluster().await;
    let id = super::adoption::adopted(&lost, &tc, "elsewhere").await;
    let slot = super::adoption::slots(&tc)
        .await
        .pop()
        .expect("Lifeboat's slot");
    let master = tc.connect("postgres").await;
    let t: chrono::DateTime<chrono::Utc> = master
        .query_one(
            "WITH i AS (INSERT INTO kept SELECT generate_series(11, 160) RETURNING 1) \
             SELECT now() FROM i LIMIT 1",
            &[],
        )
        .await
        .expect("rows")
        .get(0);
    lost.wait_window_reaches(&id, t).await;
    // Nothing went to the local directory: the repository is the bucket.
    assert!(
        !lost
            .data_dir
            .join("regions/local/repository")
            .join(&id)
            .exists()
    );

    // Lifeboat's host is gone; the cluster runs on, its slot left behind.
    lost.kill();
    stop_clusters_under(&lost.data_dir);
    std::fs::remove_dir_all(&lost.data_dir).expect("the lost data directory");
    drop(lost);

    let fresh = TestServer::with_config(&config());
    let listed = fresh.json(&["repository", "list", "--region", "local"]);
    let entry = repository_entry(&listed, id.as_str());
    assert_eq!(entry["relation"], "other_server", "{entry}");
    assert_eq!(entry["name"], "elsewhere", "{entry}");
    let window = fresh.json(&["backup", "window", &id]);
    let at = window["latest"]
        .as_str()
        .unwrap_or_else(|| panic!("a window: {window:#}"))
        .to_string();
    let latest = chrono::DateTime::parse_from_rfc3339(&at).expect("a time");
    assert!(
        latest >= t,
        "the window reaches the last commit: {window:#}"
    );
    let verify = fresh.json(&["backup", "verify", &id]);
    assert_eq!(verify["ok"], true, "{verify:#}");
    let clone = fresh.json(&[
        "instance",
        "clone",
        &id,
        "--at",
        &at,
        "--name",
        "elsewhere-back",
        "--wait",
    ]);
    assert_eq!(clone["status"], "running", "{clone:#}");
    let back = connect(port_of(&clone), "adm", "adm-pw")
        .await
        .expect("the cluster's account logs in to the clone with its password");
    assert_eq!(count_rows(&back, "kept").await, 160);
    let sum: i64 = back
        .query_one("SELECT sum(id)::bigint FROM kept", &[])
        .await
        .expect("sum")
        .get(0);
    assert_eq!(sum, 160 * 161 / 2);
    // The slot the lost server left names it; the cluster itself was never touched.
    assert_eq!(super::adoption::slots(&tc).await, vec![slot]);
}
