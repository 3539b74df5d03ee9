//! Temporary instances: the misoperation is undone on a copy restored to the second
//! before it, without touching the master.

use serde_json::json;

use super::harness::*;

#[tokio::test]
async fn undo_a_delete_through_a_temporary_instance() {
    let server = TestServer::start_archiving("");
    let (id, port, admin) = server.backed_up_master("shop").await;
    admin
        .batch_execute(
            "CREATE TABLE orders (id int PRIMARY KEY, item text, price numeric);
             INSERT INTO orders SELECT g, 'item ' || g, g * 1.5 FROM generate_series(1, 1000) g;
             CREATE UNLOGGED TABLE sessions AS SELECT generate_series(1, 10) AS id;",
        )
        .await
        .unwrap();
    let before = checksum(&admin).await;
    let target = now_and_switch(&admin).await;
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    // The mistake, then a password change the copy must not know about.
    admin
        .batch_execute("DELETE FROM orders; ALTER ROLE admin PASSWORD 'changed-after-target';")
        .await
        .unwrap();
    switch_wal(&admin).await;
    server.wait_window_reaches(&id, target).await;

    let at = target.to_rfc3339();
    let out = server.cli(&[
        "temp", "create", &id, "--at", &at, "--wait", "--output", "json",
    ]);
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.log()
    );
    let temp: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let (temp_id, temp_port) = (id_of(&temp), port_of(&temp));
    assert_eq!(temp["kind"], "temporary");
    assert_eq!(temp["status"], "running");
    assert_eq!(temp["network_type"], "classic");
    assert_eq!(temp["master_id"], id.as_str());
    assert_ne!(temp_port, port);
    assert_eq!(temp["progress"]["phase"], "ready");
    assert_eq!(temp["restore_target"]["kind"], "time");
    // Unlogged tables come back empty, and the user is told which.
    assert_eq!(
        temp["progress"]["unlogged_tables"],
        serde_json::json!(["postgres.public.sessions"])
    );
    let shown = String::from_utf8_lossy(&server.cli(&["temp", "show", &id]).stdout).to_string();
    assert!(
        shown.contains("note: 1 unlogged table(s) came back empty")
            && shown.contains("postgres.public.sessions"),
        "{shown}"
    );
    let left = temp["time_left_seconds"].as_i64().unwrap();
    assert!((47 * 3600..=48 * 3600).contains(&left), "time left {left}");

    // The copy has the rows exactly as they were, the old password, no archiving.
    let copy = connect(temp_port, "admin", PASSWORD)
        .await
        .expect("the password at the target works");
    assert_eq!(checksum(&copy).await, before);
    assert_eq!(count_rows(&copy, "sessions").await, 0);
    let row = copy
        .query_one(
            "SELECT current_setting('archive_mode'), pg_is_in_recovery(), current_setting('shared_buffers'), current_setting('restore_command')",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "off");
    assert!(!row.get::<_, bool>(1));
    // Its own shared_buffers (the server's default), and WAL fetched ahead into the
    // prefetch directory, which is gone once recovery ended.
    assert_eq!(row.get::<_, String>(2), "512MB");
    assert!(row.get::<_, String>(3).contains("wal-prefetch"));
    assert!(!server.instance_dir(&temp_id).join("wal-prefetch").exists());
    let err = connect(temp_port, "admin", "changed-after-target")
        .await
        .expect_err("a later password must not work");
    assert!(err.contains("password authentication failed"), "{err}");
    // The master is untouched: its rows are still gone and its new password works.
    let master_now = connect(port, "admin", "changed-after-target")
        .await
        .unwrap();
    assert_eq!(checksum(&master_now).await.0, 0);

    // One temporary instance per master.
    let err = server.fails(&["temp", "create", &id, "--at", &at]);
    assert!(
        err.contains(&format!("already has the temporary instance {temp_id}")),
        "{err}"
    );
    assert!(
        err.contains(&format!("lifeboat temp delete {temp_id}")),
        "{err}"
    );
    let err = server.fails(&["instance", "delete", &id]);
    assert!(
        err.contains(&format!("has the temporary instance {temp_id}")),
        "{err}"
    );
    let shown = server.json(&["temp", "show", &id]);
    assert_eq!(shown["id"], temp_id.as_str());

    // Released at once on delete: process, directory and port are gone.
    server.json(&["temp", "delete", &temp_id]);
    assert!(!server.instance_dir(&temp_id).exists());
    assert!(connect(temp_port, "admin", PASSWORD).await.is_err());
    assert_eq!(server.json(&["temp", "show", &id])["status"], "released");
    assert!(
        server
            .json(&["instance", "list"])
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["id"] != temp_id.as_str())
    );
}

#[tokio::test]
async fn a_temporary_instance_needs_only_the_repository() {
    let server = TestServer::start_archiving("");
    let (id, _, admin) = server.backed_up_master("shop").await;
    admin
        .batch_execute("CREATE TABLE t AS SELECT generate_series(1, 300) g")
        .await
        .unwrap();
    let lsn: String = admin
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .await
        .unwrap()
        .get(0);
    admin
        .batch_execute("INSERT INTO t SELECT generate_series(301, 600)")
        .await
        .unwrap();
    let t = now_and_switch(&admin).await;
    server.wait_window_reaches(&id, t).await;
    drop(admin);
    // Restore by LSN while the master is stopped.
    server.json(&["instance", "stop", &id]);
    let temp = server.json(&["temp", "create", &id, "--lsn", &lsn, "--wait"]);
    let copy = connect(port_of(&temp), "admin", PASSWORD).await.unwrap();
    let n: i64 = copy
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 300);
    assert_eq!(temp["restore_target"]["value"], lsn.as_str());
    assert_eq!(server.json(&["instance", "show", &id])["status"], "stopped");
}

#[tokio::test]
async fn bad_targets_are_refused_with_the_window() {
    let server = TestServer::start_archiving("");
    let master = server.create_master("shop");
    let id = id_of(&master);
    let err = server.fails(&["temp", "create", "pg-zzzzzz", "--at", "2026-01-01 00:00:00"]);
    assert!(err.contains("instance pg-zzzzzz not found"), "{err}");
    server.wait_first_backup(&id).await;
    let cases: &[(&[&str], &str)] = &[
        (&["--at", "last tuesday"], "'last tuesday' is not a time"),
        (
            &["--at", "2999-01-01 00:00:00", "--tz", "Asia/Tokyo"],
            "2999-01-01T00:00:00+09:00 is in the future",
        ),
        (
            &["--at", "2020-01-01 00:00:00", "--tz", "Europe/Paris"],
            "2020-01-01T00:00:00+01:00 is outside the restorable window of",
        ),
        (
            &["--at", "2020-01-01 00:00:00", "--tz", "Mars/Base"],
            "unknown time zone 'Mars/Base'",
        ),
        (&["--lsn", "not-an-lsn"], "'not-an-lsn' is not an LSN"),
        (&[], "no recovery target"),
    ];
    for (target, expected) in cases {
        let mut args = vec!["temp", "create", id.as_str()];
        args.extend_from_slice(target);
        let err = server.fails(&args);
        assert!(err.contains(expected), "{target:?}: {err}");
    }
    // Nothing was left behind by any of these.
    assert_eq!(server.instance_dirs(), vec![id.clone()]);
    let err = server.fails(&["temp", "show", &id]);
    assert!(err.contains("has no temporary instance"), "{err}");
}

#[tokio::test]
async fn concurrent_creates_give_exactly_one_instance() {
    let server = TestServer::start_archiving("");
    let (id, _, admin) = server.backed_up_master("shop").await;
    let t = now_and_switch(&admin).await;
    server.wait_window_reaches(&id, t).await;
    let token = server.token();
    let body = json!({ "at": t.to_rfc3339() });
    let path = format!("/api/v1/instances/{id}/temporary");
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| server.http("POST", &path, Some(&token), Some(body.clone())));
        let b = s.spawn(|| server.http("POST", &path, Some(&token), Some(body.clone())));
        (a.join().unwrap(), b.join().unwrap())
    });
    let mut codes = [a.0, b.0];
    codes.sort();
    assert_eq!(codes, [202, 409], "{a:?} {b:?}");
    let refused = if a.0 == 409 { &a.1 } else { &b.1 };
    assert_eq!(refused["code"], "temporary_instance_exists");
    let temp = server
        .wait_for("the temporary instance", || {
            let v = server.json(&["temp", "show", &id]);
            (v["status"] != "creating").then_some(v)
        })
        .await;
    assert_eq!(temp["status"], "running", "{temp}");
}

#[tokio::test]
async fn temporary_instances_are_released_when_their_time_is_up() {
    let mut server = TestServer::start_archiving("[temporary_instance]\nttl = \"15s\"");
    let (id, _, admin) = server.backed_up_master("shop").await;
    let t = now_and_switch(&admin).await;
    server.wait_window_reaches(&id, t).await;

    // Released by the running server.
    let temp = server.json(&["temp", "create", &id, "--at", &t.to_rfc3339(), "--wait"]);
    let temp_id = id_of(&temp);
    server
        .wait_for("the release", || {
            (server.json(&["temp", "show", &id])["status"] == "released").then_some(())
        })
        .await;
    assert!(!server.instance_dir(&temp_id).exists());

    // Released at start by a server that was down when the time came.
    let temp = server.json(&["temp", "create", &id, "--at", &t.to_rfc3339(), "--wait"]);
    let temp_id = id_of(&temp);
    server.kill();
    assert!(server.instance_dir(&temp_id).exists());
    tokio::time::sleep(std::time::Duration::from_secs(16)).await;
    server.spawn();
    server
        .wait_for("the release at start", || {
            (!server.instance_dir(&temp_id).exists()).then_some(())
        })
        .await;
    assert_eq!(server.json(&["temp", "show", &id])["status"], "released");
    assert!(connect(port_of(&temp), "admin", PASSWORD).await.is_err());
}

#[tokio::test]
async fn a_corrupted_backup_fails_the_restore_naming_the_file_and_leaves_nothing() {
    // The restore itself is under test: no prepared copy made before the damage.
    let server = TestServer::start_archiving("[temporary_instance]\nprepared_copies = false");
    let (id, _, admin) = server.backed_up_master("shop").await;
    let t = now_and_switch(&admin).await;
    server.wait_window_reaches(&id, t).await;

    // Flip one byte in the largest content object of the backup.
    let content = server
        .data_dir
        .join("regions/local/repository")
        .join(&id)
        .join("data");
    let mut objects: Vec<(u64, std::path::PathBuf)> = walk(&content)
        .into_iter()
        .map(|p| (std::fs::metadata(&p).unwrap().len(), p))
        .collect();
    objects.sort();
    let (_, victim) = objects.last().cloned().expect("content objects");
    let mut bytes = std::fs::read(&victim).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&victim, &bytes).unwrap();
    let name = victim.file_name().unwrap().to_string_lossy().to_string();

    let out = server.cli(&["backup", "verify", &id]);
    assert!(
        !out.status.success(),
        "verify must fail on a corrupted object"
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&name), "verify does not name {name}: {text}");

    let out = server.cli(&["temp", "create", &id, "--at", &t.to_rfc3339(), "--wait"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("failed") && err.contains(&name), "{err}");
    let temp = server.json(&["temp", "show", &id]);
    assert_eq!(temp["status"], "failed");
    assert!(
        !server.instance_dir(&id_of(&temp)).exists(),
        "the failed restore left its directory"
    );
    // A failed attempt does not block the next one.
    let out = server.cli(&["temp", "create", &id, "--at", &t.to_rfc3339()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("already has the temporary instance"), "{err}");
}

async fn checksum(c: &tokio_postgres::Client) -> (i64, i64) {
    c.query_one(
        "SELECT count(*), coalesce(sum(hashtext(o::text)), 0) FROM orders o",
        &[],
    )
    .await
    .map(|r| (r.get::<_, i64>(0), r.get::<_, i64>(1)))
    .unwrap()
}

#[tokio::test]
async fn a_creation_interrupted_by_a_crash_is_built_again_at_start() {
    let mut server = TestServer::start_archiving("");
    let (id, _, admin) = server.backed_up_master("shop").await;
    create_orders(&admin, 777).await;
    let t = now_and_switch(&admin).await;
    server.wait_window_reaches(&id, t).await;
    let temp = server.json(&["temp", "create", &id, "--at", &t.to_rfc3339()]);
    let temp_id = id_of(&temp);
    // Crash right away, in the middle of restoring files or replaying WAL.
    server.kill();
    // Make sure the interrupted state is what the restart sees.
    let st = lifeboat_store::Store::open(&server.data_dir.join("lifeboat.db")).unwrap();
    let tid = lifeboat_domain::InstanceId::parse(&temp_id).unwrap();
    st.force_status(&tid, lifeboat_domain::InstanceStatus::Creating, None)
        .unwrap();
    drop(st);
    server.spawn();
    let done = server
        .wait_for("the rebuilt temporary instance", || {
            let v = server.json(&["temp", "show", &id]);
            (v["status"] != "creating").then_some(v)
        })
        .await;
    assert_eq!(done["status"], "running", "{done}");
    assert_eq!(done["id"], temp_id.as_str());
    let copy = connect(port_of(&done), "admin", PASSWORD).await.unwrap();
    let n = count_rows(&copy, "orders").await;
    assert_eq!(n, 777);
}

#[tokio::test]
async fn restore_points_are_reached_and_a_missing_one_fails_clearly() {
    let server = TestServer::start_archiving("");
    let (id, _, admin) = server.backed_up_master("shop").await;
    create_orders(&admin, 250).await;
    // In a transaction of its own: a restore point inside the CREATE's transaction
    // would come before its commit.
    admin
        .batch_execute("SELECT pg_create_restore_point('before_delete')")
        .await
        .unwrap();
    admin.batch_execute("DELETE FROM orders").await.unwrap();
    let t = now_and_switch(&admin).await;
    server.wait_window_reaches(&id, t).await;

    // A restore point that was never made: replay runs out of WAL before it.
    let out = server.cli(&[
        "temp",
        "create",
        &id,
        "--restore-point",
        "no_such_point",
        "--wait",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("recovery ended before the recovery target was reached"),
        "{err}"
    );
    let failed = server.json(&["temp", "show", &id]);
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["progress"]["phase"], "failed");
    assert!(!server.instance_dir(&id_of(&failed)).exists());

    let temp = server.json(&[
        "temp",
        "create",
        &id,
        "--restore-point",
        "before_delete",
        "--wait",
    ]);
    assert_eq!(temp["restore_target"]["kind"], "restore_point");
    let copy = connect(port_of(&temp), "admin", PASSWORD).await.unwrap();
    let n = count_rows(&copy, "orders").await;
    assert_eq!(n, 250);
}

/// A small tmpfs of its own, unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    /// `None` when this user may not mount (the test then says so and stops).
    fn mount(size: &str) -> Option<Self> {
        let dir = tempfile::Builder::new()
            .prefix("lb-small-disk-")
            .tempdir()
            .unwrap();
        let status = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status();
        match status {
            Ok(s) if s.success() => Some(Self { dir }),
            _ => {
                let root = std::process::Command::new("id")
                    .arg("-u")
                    .output()
                    .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
                assert!(!root, "root could not mount a tmpfs at {:?}", dir.path());
                skip("mounting a tmpfs needs root");
                None
            }
        }
    }

    /// Fills the disk but `leave` bytes with one file, and returns its path.
    fn fill(&self, leave: u64) -> std::path::PathBuf {
        let out = std::process::Command::new("df")
            .args(["-B1", "--output=avail"])
            .arg(self.dir.path())
            .output()
            .unwrap();
        let avail: u64 = String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .and_then(|l| l.trim().parse().ok())
            .expect("df's free bytes");
        let filler = self.dir.path().join("filler");
        let status = std::process::Command::new("fallocate")
            .args(["-l", &avail.saturating_sub(leave).to_string()])
            .arg(&filler)
            .status()
            .unwrap();
        assert!(status.success(), "fallocate");
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        stop_clusters_under(self.dir.path());
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

#[tokio::test]
async fn a_full_disk_fails_the_restore_clearly_and_the_next_try_works() {
    let Some(disk) = SmallDisk::mount("256m") else {
        return;
    };
    let (a, b) = port_range(8);
    let server = TestServer::with_config(&format!(
        "[backup]\narchive_timeout = \"1s\"\n[temporary_instance]\nprepared_copies = false\n[[region]]\nname = \"local\"\nports = \"{a}-{b}\"\ndata_root = \"{}\"\n",
        disk.dir.path().display()
    ));
    let (id, _, admin) = server.backed_up_master("shop").await;
    create_orders(&admin, 5000).await;
    let t = now_and_switch(&admin).await;
    server.wait_window_reaches(&id, t).await;

    // Less room than a restored cluster needs.
    let filler = disk.fill(8 << 20);
    let out = server.cli(&["temp", "create", &id, "--at", &t.to_rfc3339(), "--wait"]);
    assert!(
        !out.status.success(),
        "a restore onto a full disk succeeded"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("No space left on device") && err.contains("free space"),
        "{err}"
    );
    let temp = server.json(&["temp", "show", &id]);
    assert_eq!(temp["status"], "failed", "{temp}");
    assert!(
        !disk
            .dir
            .path()
            .join("instances")
            .join(id_of(&temp))
            .exists(),
        "the failed restore left its directory"
    );

    // Once there is room again, the next try works and has the rows.
    std::fs::remove_file(&filler).unwrap();
    let temp = server.json(&["temp", "create", &id, "--at", &t.to_rfc3339(), "--wait"]);
    assert_eq!(temp["status"], "running", "{temp}");
    let copy = connect(port_of(&temp), "admin", PASSWORD).await.unwrap();
    let n = count_rows(&copy, "orders").await;
    assert_eq!(n, 5000);
    drop(copy);
    drop(server);
    drop(disk);
}

/// The prepared copies of a master's newest base backup, by backup id.
fn prepared_copies(server: &TestServer, master: &str) -> Vec<String> {
    names_in(&server.data_dir.join("regions/local/prepared").join(master))
}

fn newest_backup(server: &TestServer, master: &str) -> String {
    let list = server.json(&["backup", "list", master]);
    list["backups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap().to_string())
        .max()
        .unwrap()
}

#[tokio::test]
async fn a_temporary_instance_takes_the_prepared_copy_and_a_new_one_is_made() {
    let mut server = TestServer::start_archiving("");
    let (id, _, admin) = server.backed_up_master("shop").await;
    create_orders(&admin, 3000).await;
    server.json(&["backup", "run", &id, "--wait"]);
    let backup = newest_backup(&server, &id);
    // Made from the repository after the backup, under the backup's id.
    server
        .wait_for("the prepared copy of the newest backup", || {
            (prepared_copies(&server, &id) == [backup.clone()]).then_some(())
        })
        .await;
    let copy = server
        .data_dir
        .join("regions/local/prepared")
        .join(&id)
        .join(&backup);
    assert!(copy.join("PG_VERSION").is_file());
    assert!(copy.join("backup_label").is_file());
    admin
        .batch_execute("DELETE FROM orders WHERE id > 1000")
        .await
        .unwrap();
    let t = now_and_switch(&admin).await;
    server.wait_window_reaches(&id, t).await;

    server.json(&["temp", "create", &id, "--at", &t.to_rfc3339(), "--wait"]);
    let temp = server.json(&["temp", "show", &id]);
    assert_eq!(temp["status"], "running", "{temp}");
    assert_eq!(temp["progress"]["files_from_prepared_copy"], true, "{temp}");
    assert_eq!(temp["progress"]["backup_id"], backup.as_str(), "{temp}");
    let copy_client = connect(port_of(&temp), "admin", PASSWORD).await.unwrap();
    assert_eq!(count_rows(&copy_client, "orders").await, 1000);
    // Taken, not copied: a new one for the next temporary instance is made.
    server
        .wait_for("a new prepared copy", || {
            (prepared_copies(&server, &id) == [backup.clone()]).then_some(())
        })
        .await;
    drop(copy_client);
    server.json(&["temp", "delete", &id_of(&temp)]);

    // A copy left half-written by a crash goes at the next start; the complete one
    // stays.
    let partial = server
        .data_dir
        .join("regions/local/prepared")
        .join(&id)
        .join("20200101T000000Z.partial");
    std::fs::create_dir_all(partial.join("base")).unwrap();
    server.kill();
    server.spawn();
    server
        .wait_for("the partial copy removed", || {
            (!partial.exists()).then_some(())
        })
        .await;
    assert_eq!(prepared_copies(&server, &id), std::slice::from_ref(&backup));

    // A temporary instance from an older backup restores the files, exactly.
    let before_backup = server.json(&["backup", "window", &id]);
    let earliest = before_backup["earliest"].as_str().unwrap().to_string();
    server.json(&["temp", "create", &id, "--at", &earliest, "--wait"]);
    let old = server.json(&["temp", "show", &id]);
    assert_eq!(old["progress"]["files_from_prepared_copy"], false, "{old}");
    assert_ne!(old["progress"]["backup_id"], backup.as_str(), "{old}");
    server.json(&["temp", "delete", &id_of(&old)]);
    assert_eq!(prepared_copies(&server, &id), std::slice::from_ref(&backup));

    // Deleting the master removes its copy.
    server.json(&["instance", "delete", &id]);
    assert!(
        !server
            .data_dir
            .join("regions/local/prepared")
            .join(&id)
            .exists(),
        "the deleted master's prepared copy is left"
    );
}

#[tokio::test]
async fn without_prepared_copies_a_temporary_instance_restores_the_files() {
    let server = TestServer::start_archiving("[temporary_instance]\nprepared_copies = false");
    let (id, _, admin) = server.backed_up_master("shop").await;
    create_orders(&admin, 500).await;
    let t = now_and_switch(&admin).await;
    server.wait_window_reaches(&id, t).await;
    server.json(&["temp", "create", &id, "--at", &t.to_rfc3339(), "--wait"]);
    let temp = server.json(&["temp", "show", &id]);
    assert_eq!(
        temp["progress"]["files_from_prepared_copy"], false,
        "{temp}"
    );
    let copy_client = connect(port_of(&temp), "admin", PASSWORD).await.unwrap();
    assert_eq!(count_rows(&copy_client, "orders").await, 500);
    assert!(prepared_copies(&server, &id).is_empty());
}
