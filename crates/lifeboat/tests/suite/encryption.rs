//! A region with an encrypted repository, through the server: `archive_command` and
//! `restore_command` (run as the clusters' OS user) read the key; a temporary instance
//! has exactly the rows of its time; every stored object is encrypted; a flipped byte
//! fails verify and the restore naming the object and leaves nothing; the server
//! refuses to start with a wrong key, without the key, and with a key for a repository
//! written in clear, naming the region and the key file.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::harness::*;

const MARKER: &str = "lifeboat-secret-marker-8f3a";

/// A key file of 64 hex digits of `byte`, mode 0600 (owned by the server's user: the
/// server gives the clusters' OS user its own copy).
fn write_key(dir: &Path, name: &str, byte: u8) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    let hex: String = std::iter::repeat_n(format!("{byte:02x}"), 32).collect();
    std::fs::write(&path, format!("{hex}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

/// Restores read the repository itself: no prepared copy made before a byte is flipped.
fn config(ports: (u16, u16), encryption: &str) -> String {
    format!(
        "[backup]\narchive_timeout = \"1s\"\n[temporary_instance]\nprepared_copies = false\n[[region]]\nname = \"local\"\nports = \"{}-{}\"\n{encryption}",
        ports.0, ports.1
    )
}

fn aes(key: &Path) -> String {
    format!(
        "repository_cipher = \"aes-256-gcm\"\nrepository_key_file = \"{}\"\n",
        key.display()
    )
}

/// Runs `lifeboat serve` on the server's config and data directory, expects it to
/// exit with an error within 30 s, and returns what it printed.
fn serve_fails(server: &TestServer) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_lifeboat"))
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&server.config)
        .arg("--data-dir")
        .arg(&server.data_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(!status.success(), "serve succeeded: {text}");
            return text;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("lifeboat serve did not refuse to start");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test]
async fn an_encrypted_region_restores_with_its_key_and_refuses_another() {
    let keys = tempfile::tempdir().unwrap();
    let key = write_key(keys.path(), "repository.key", 0x5a);
    let ports = port_range(8);
    let mut server = TestServer::with_config(&config(ports, &aes(&key)));
    let (id, _, admin) = server.backed_up_master("shop").await;
    admin
        .batch_execute(&format!(
            "CREATE TABLE secrets AS SELECT g AS id, '{MARKER} ' || g AS note FROM generate_series(1, 5000) g"
        ))
        .await
        .unwrap();
    let expected = checksum(&admin).await;
    let t = now_and_switch(&admin).await;
    admin.batch_execute("DELETE FROM secrets").await.unwrap();
    switch_wal(&admin).await;
    server.wait_window_reaches(&id, t).await;

    let temp = server.json(&["temp", "create", &id, "--at", &t.to_rfc3339(), "--wait"]);
    let copy = connect(port_of(&temp), "admin", PASSWORD).await.unwrap();
    assert_eq!(checksum(&copy).await, expected);
    drop(copy);
    server.json(&["temp", "delete", &id_of(&temp)]);
    let verify = server.json(&["backup", "verify", &id]);
    assert_eq!(verify["ok"], true, "{verify}");

    // Every object but the marker is encrypted; none shows the rows.
    let repository = server.data_dir.join("regions/local/repository");
    let files = walk(&repository);
    assert!(files.iter().any(|p| p.to_string_lossy().contains("/wal/")));
    for path in &files {
        let bytes = std::fs::read(path).unwrap();
        let marker = MARKER.as_bytes();
        assert!(
            !bytes.windows(marker.len()).any(|w| w == marker),
            "{} holds the marker",
            path.display()
        );
        if path.file_name().unwrap() == "lifeboat-encryption.json" {
            assert!(String::from_utf8_lossy(&bytes).contains("aes-256-gcm"));
        } else {
            assert_eq!(&bytes[..4], b"LBE1", "{} is not encrypted", path.display());
        }
    }

    // A flipped byte in the largest content object: verify and the restore name it,
    // and the failed restore leaves no directory.
    let mut content: Vec<(u64, PathBuf)> = walk(&repository.join(&id).join("data"))
        .into_iter()
        .map(|p| (std::fs::metadata(&p).unwrap().len(), p))
        .collect();
    content.sort();
    let (_, victim) = content.last().cloned().unwrap();
    let original = std::fs::read(&victim).unwrap();
    let mut bytes = original.clone();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&victim, &bytes).unwrap();
    let name = victim.file_name().unwrap().to_string_lossy().to_string();
    let out = server.cli(&["backup", "verify", &id]);
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&name) && text.contains("fails authentication"),
        "{text}"
    );
    let out = server.cli(&["temp", "create", &id, "--at", &t.to_rfc3339(), "--wait"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&name), "{err}");
    let failed = server.json(&["temp", "show", &id]);
    assert_eq!(failed["status"], "failed");
    assert!(!server.instance_dir(&id_of(&failed)).exists());
    std::fs::write(&victim, &original).unwrap();

    // Another key, or none: the server does not start, and says why.
    server.kill();
    write_key(keys.path(), "repository.key", 0x3c);
    let e = serve_fails(&server);
    assert!(
        e.contains("region 'local'")
            && e.contains(&key.display().to_string())
            && e.contains("does not hold the key"),
        "{e}"
    );
    std::fs::write(&server.config, config(ports, "")).unwrap();
    let e = serve_fails(&server);
    assert!(
        e.contains("region 'local'") && e.contains("encrypted with aes-256-gcm"),
        "{e}"
    );
    // The copy archive_command reads was left as it was: the master still archives.
    write_key(keys.path(), "repository.key", 0x5a);
    std::fs::write(&server.config, config(ports, &aes(&key))).unwrap();
    server.spawn();
    let t = now_and_switch(&admin).await;
    server.wait_window_reaches(&id, t).await;
    let verify = server.json(&["backup", "verify", &id]);
    assert_eq!(verify["ok"], true, "{verify}");
}

#[tokio::test]
async fn a_key_is_refused_for_a_repository_written_in_clear() {
    let ports = port_range(8);
    let mut server = TestServer::with_config(&config(ports, ""));
    let master = server.create_master("plain");
    server.wait_first_backup(&id_of(&master)).await;
    server.kill();

    let keys = tempfile::tempdir().unwrap();
    let key = write_key(keys.path(), "repository.key", 0x5a);
    std::fs::write(&server.config, config(ports, &aes(&key))).unwrap();
    let e = serve_fails(&server);
    assert!(
        e.contains("region 'local'") && e.contains("written without encryption"),
        "{e}"
    );
    // A key file others can read, and a cipher without a key, are refused too.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = serve_fails(&server);
    assert!(
        e.contains(&key.display().to_string()) && e.contains("chmod 600"),
        "{e}"
    );
    std::fs::write(
        &server.config,
        config(ports, "repository_cipher = \"aes-256-gcm\"\n"),
    )
    .unwrap();
    let e = serve_fails(&server);
    assert!(e.contains("needs repository_key_file"), "{e}");
    std::fs::write(&server.config, config(ports, "")).unwrap();
    server.spawn();
    assert_eq!(
        server.json(&["instance", "list"]).as_array().map(Vec::len),
        Some(1)
    );
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
