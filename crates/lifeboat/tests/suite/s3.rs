//! The whole recovery path with the region's repository on S3 (moto's S3 API server on
//! loopback): archive_command pushes to S3, base backups go there, and a temporary
//! instance is restored from there.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::harness::*;

/// moto's S3 server in its own process group, stopped when dropped.
struct Moto {
    child: Child,
    port: u16,
}

impl Moto {
    fn start() -> Option<Self> {
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
