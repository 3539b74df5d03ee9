//! Continuous backup as a user sees it: the first backup, the window moving with
//! commits, incremental backups, archiving failures in `show`, gaps in the WAL.

use super::harness::*;

#[tokio::test]
async fn a_new_master_is_backed_up_and_its_window_follows_commits() {
    let server = TestServer::start_archiving("");
    let master = server.create_master("shop");
    let (id, port) = (id_of(&master), port_of(&master));
    server.wait_first_backup(&id).await;
    let list = server.json(&["backup", "list", &id]);
    assert_eq!(list["runs"][0]["trigger"], "create");
    assert_eq!(list["runs"][0]["state"], "completed");
    let first = &list["backups"][0];
    assert!(first["logical_size"].as_u64().unwrap() > 1_000_000);

    let admin = connect(port, "admin", PASSWORD).await.unwrap();
    admin
        .batch_execute("CREATE TABLE t AS SELECT generate_series(1, 50000) g")
        .await
        .unwrap();
    let t = now_and_switch(&admin).await;
    let window = server.wait_window_reaches(&id, t).await;
    assert_eq!(window["available"], true);
    assert_eq!(window["gap"], serde_json::Value::Null);
    assert_eq!(window["earliest_lsn"], first["stop_lsn"]);
    let human = String::from_utf8_lossy(
        &server
            .cli(&["backup", "window", &id, "--tz", "Asia/Tokyo"])
            .stdout,
    )
    .to_string();
    assert!(human.contains("+09:00"), "{human}");

    // A second backup of an almost unchanged cluster stores little: content is shared.
    let done = server.json(&["backup", "run", &id, "--wait"]);
    assert_eq!(done["state"], "completed", "{done}");
    let list = server.json(&["backup", "list", &id]);
    let second = &list["backups"][1];
    let (logical, stored) = (
        second["logical_size"].as_u64().unwrap(),
        second["stored_size"].as_u64().unwrap(),
    );
    assert!(
        stored * 5 < logical,
        "the second backup stored {stored} of {logical} bytes"
    );

    let verify = server.json(&["backup", "verify", &id]);
    assert_eq!(verify["ok"], true, "{verify}");
    assert_eq!(verify["backups"], 2);

    // Archiving is healthy and shown.
    let shown = server.json(&["instance", "show", &id]);
    assert!(
        shown["archiving"]["archived_count"].as_i64().unwrap() > 0,
        "{shown}"
    );
    assert_eq!(shown["archiving"]["failing"], false);
}

#[tokio::test]
async fn a_new_master_is_reported_running_once_its_first_backup_is_complete() {
    let server = TestServer::start_archiving("");
    let master = server.create_master("shop");
    assert_eq!(master["status"], "running");
    let id = id_of(&master);
    // No waiting: the create answered once the first backup was in the repository.
    let list = server.json(&["backup", "list", &id]);
    assert_eq!(list["runs"][0]["trigger"], "create", "{list}");
    assert_eq!(list["runs"][0]["state"], "completed", "{list}");
    assert_eq!(list["backups"].as_array().unwrap().len(), 1, "{list}");
    let created: chrono::DateTime<chrono::Utc> =
        master["created_at"].as_str().unwrap().parse().unwrap();
    let stop: chrono::DateTime<chrono::Utc> = list["backups"][0]["stop_time"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        stop > created,
        "the backup ended after the record was written"
    );
    let window = server.json(&["backup", "window", &id]);
    assert_eq!(window["available"], true, "{window}");

    // A backup that cannot finish yet: pg_backup_stop waits for its WAL to be archived,
    // and the repository refuses the clusters' OS user for now.
    let wal_dir = server
        .data_dir
        .join("regions/local/repository")
        .join(&id)
        .join("wal");
    let owner = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&wal_dir).unwrap());
    std::os::unix::fs::chown(&wal_dir, Some(0), None).unwrap();
    std::fs::set_permissions(
        &wal_dir,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let started = server.json(&["backup", "run", &id]);
    // Without --wait, a running backup is a conflict.
    let err = server.fails(&["backup", "run", &id]);
    assert!(err.contains("is already running"), "{err}");
    // With --wait, the CLI waits for the running one instead of failing.
    let mut waiting = std::process::Command::new(env!("CARGO_BIN_EXE_lifeboat"))
        .args(["backup", "run", &id, "--wait"])
        .env("LIFEBOAT_DATA_DIR", &server.data_dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(waiting.stdout.as_mut().unwrap()),
        &mut first,
    )
    .unwrap();
    assert!(
        first.contains(&format!("is already running (run {},", started["id"])),
        "{first}"
    );
    std::os::unix::fs::chown(&wal_dir, Some(owner), None).unwrap();
    let out = waiting.wait_with_output().unwrap();
    let rest = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(rest.contains("completed"), "{first}{rest}");
}

#[tokio::test]
async fn an_archiving_failure_is_shown_and_nothing_is_lost() {
    let server = TestServer::start_archiving("");
    let (id, _, admin) = server.backed_up_master("shop").await;

    // The repository becomes unwritable for the clusters' OS user.
    let wal_dir = server
        .data_dir
        .join("regions/local/repository")
        .join(&id)
        .join("wal");
    let set_mode = |m: u32| {
        std::fs::set_permissions(&wal_dir, std::os::unix::fs::PermissionsExt::from_mode(m)).unwrap()
    };
    let owner = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&wal_dir).unwrap());
    std::os::unix::fs::chown(&wal_dir, Some(0), None).unwrap();
    set_mode(0o755);
    admin
        .batch_execute("CREATE TABLE kept AS SELECT generate_series(1, 1000) g")
        .await
        .unwrap();
    let t = now_and_switch(&admin).await;
    let shown = server
        .wait_for("archiving to report its failure", || {
            let v = server.json(&["instance", "show", &id]);
            (v["archiving"]["failing"] == true).then_some(v)
        })
        .await;
    let reason = shown["archiving"]["last_failure_reason"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(reason.contains("Permission denied"), "{shown}");
    let human = String::from_utf8_lossy(&server.cli(&["instance", "show", &id]).stdout).to_string();
    assert!(human.contains("FAILING"), "{human}");
    server
        .wait_for("the failure in the server log", || {
            server
                .log()
                .contains("WAL archiving is failing")
                .then_some(())
        })
        .await;

    // Once the repository is writable again, PostgreSQL's retries archive everything.
    std::os::unix::fs::chown(&wal_dir, Some(owner), None).unwrap();
    let window = server.wait_window_reaches(&id, t).await;
    assert_eq!(window["gap"], serde_json::Value::Null);
    server
        .wait_for("archiving to recover", || {
            (server.json(&["instance", "show", &id])["archiving"]["failing"] == false).then_some(())
        })
        .await;
}

#[tokio::test]
async fn a_gap_in_the_archived_wal_ends_the_window_and_says_so() {
    let server = TestServer::start_archiving("");
    let (id, _, admin) = server.backed_up_master("shop").await;
    let mut last = chrono::Utc::now();
    for i in 0..3 {
        admin
            .batch_execute(&format!("CREATE TABLE t{i} AS SELECT 1 AS x"))
            .await
            .unwrap();
        last = now_and_switch(&admin).await;
    }
    server.wait_window_reaches(&id, last).await;
    // Remove a segment in the middle of the archive.
    let wal_dir = server
        .data_dir
        .join("regions/local/repository")
        .join(&id)
        .join("wal");
    let mut segments: Vec<String> = std::fs::read_dir(&wal_dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.len() == 24 && n.chars().all(|c| c.is_ascii_hexdigit()))
        .collect();
    segments.sort();
    assert!(segments.len() >= 3, "{segments:?}");
    let missing = segments[segments.len() - 2].clone();
    std::fs::remove_file(wal_dir.join(&missing)).unwrap();
    let window = server.json(&["backup", "window", &id]);
    assert_eq!(window["gap"], missing.as_str(), "{window}");
    assert!(window["note"].as_str().unwrap().contains(&missing));
    let latest = chrono::DateTime::parse_from_rfc3339(window["latest"].as_str().unwrap()).unwrap();
    assert!(latest < last, "the window must end before the gap");
    let verify = server.cli(&["backup", "verify", &id]);
    assert!(!verify.status.success());
}

#[tokio::test]
async fn backups_follow_the_schedule_and_old_ones_expire() {
    let server = TestServer::start_archiving("schedule = \"3s\"\nretention = \"2s\"");
    let master = server.create_master("shop");
    let id = id_of(&master);
    server.wait_first_backup(&id).await;
    // The scheduler takes more backups; retention keeps only the newest ones.
    // The scheduler takes more backups; retention (run after each) expires the first.
    let runs = server
        .wait_for("scheduled backups and the first one expired", || {
            let list = server.json(&["backup", "list", &id]);
            let runs = list["runs"].as_array().cloned().unwrap_or_default();
            let scheduled = runs
                .iter()
                .filter(|r| r["trigger"] == "schedule" && r["state"] == "completed")
                .count();
            let first = runs.iter().find(|r| r["trigger"] == "create")?["backup_id"]
                .as_str()?
                .to_string();
            let kept: Vec<&str> = list["backups"]
                .as_array()?
                .iter()
                .filter_map(|b| b["id"].as_str())
                .collect();
            (scheduled >= 2 && !kept.contains(&first.as_str())).then_some(list)
        })
        .await;
    let kept: Vec<String> = runs["backups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap().to_string())
        .collect();
    assert!(!kept.is_empty());
    let verify = server.json(&["backup", "verify", &id]);
    assert_eq!(
        verify["ok"], true,
        "retention must keep everything the kept backups need: {verify}"
    );
}

#[tokio::test]
async fn a_backup_follows_enough_wal_so_restores_replay_little() {
    let server = TestServer::start_archiving("max_wal_between_backups = \"32MiB\"");
    let (id, _, admin) = server.backed_up_master("shop").await;
    // About 60 MiB of WAL, well past the threshold, with no schedule due.
    admin
        .batch_execute("CREATE TABLE big AS SELECT g, repeat('x', 200) AS pad FROM generate_series(1, 250000) g")
        .await
        .unwrap();
    let runs = server
        .wait_for("a backup triggered by WAL volume", || {
            let list = server.json(&["backup", "list", &id]);
            let found = list["runs"].as_array().is_some_and(|r| {
                r.iter()
                    .any(|r| r["trigger"] == "wal" && r["state"] == "completed")
            });
            found.then_some(list)
        })
        .await;
    assert!(runs["backups"].as_array().unwrap().len() >= 2, "{runs}");
}

/// Every file of the data directory (metadata store with its WAL, token, secret key,
/// repository chunks, manifests and WAL, instance directories) is private: another
/// local user (`nobody`) can read none of them nor list a directory, while the
/// master keeps archiving. A data directory left readable is tightened at start.
#[tokio::test]
async fn another_local_user_can_read_nothing_lifeboat_keeps() {
    let mut server = TestServer::start_archiving("");
    let (id, _port, admin) = server.backed_up_master("shop").await;
    admin
        .batch_execute("CREATE TABLE secret AS SELECT 'marker' AS v")
        .await
        .unwrap();
    let last = now_and_switch(&admin).await;
    server.wait_window_reaches(&id, last).await;
    let binary = server.data_dir.join("bin/lifeboat");
    let readable = |server: &TestServer| -> Vec<String> {
        let mut files = Vec::new();
        let mut dirs = Vec::new();
        let mut stack = vec![server.data_dir.clone()];
        while let Some(d) = stack.pop() {
            dirs.push(d.clone());
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                let t = e.file_type().unwrap();
                if t.is_dir() {
                    stack.push(e.path());
                } else if t.is_file() && e.path() != binary {
                    files.push(e.path());
                }
            }
        }
        assert!(files.len() > 50, "{} files", files.len());
        let bin_dir = server.data_dir.join("bin");
        let out = std::process::Command::new("runuser")
            .args(["-u", "nobody", "--", "sh", "-c"])
            .arg(
                "for f in \"$@\"; do \
                   if [ -d \"$f\" ]; then ls \"$f\" >/dev/null 2>&1 && echo \"listable $f\"; \
                   else head -c 1 \"$f\" >/dev/null 2>&1 && echo \"readable $f\"; fi; \
                 done",
            )
            .arg("sh")
            .args(files.iter().chain(dirs.iter().filter(|d| **d != bin_dir)))
            .output()
            .expect("runuser");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    };
    assert_eq!(readable(&server), Vec::<String>::new());
    // Not even the way down is open to others: the directories the clusters' OS user
    // passes through are shared with its group only.
    use std::os::unix::fs::MetadataExt;
    let postgres_gid = String::from_utf8(
        std::process::Command::new("id")
            .args(["-g", "postgres"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .parse::<u32>()
    .unwrap();
    for d in [
        server.data_dir.clone(),
        server.data_dir.join("regions"),
        server.data_dir.join("regions/local"),
        server.data_dir.join("regions/local/instances"),
        server.data_dir.join("bin"),
    ] {
        let meta = std::fs::metadata(&d).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o710, "{}", d.display());
        assert_eq!(meta.gid(), postgres_gid, "{}", d.display());
        let entered = std::process::Command::new("runuser")
            .args(["-u", "nobody", "--", "sh", "-c", "cd \"$1\"", "sh"])
            .arg(&d)
            .status()
            .unwrap();
        assert!(
            !entered.success(),
            "nobody can pass through {}",
            d.display()
        );
    }

    // Files an older server left open to others are tightened at the next start.
    let store_wal = server.data_dir.join("lifeboat.db-wal");
    let chunk_dir = server
        .data_dir
        .join("regions/local/repository")
        .join(&id)
        .join("data");
    use std::os::unix::fs::PermissionsExt;
    for p in [&store_wal, &chunk_dir] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    server.kill();
    server.spawn();
    assert_eq!(readable(&server), Vec::<String>::new());
    // The master still archives.
    let last = now_and_switch(&admin).await;
    server.wait_window_reaches(&id, last).await;
}
