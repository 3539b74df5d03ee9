//! Masters made from backups: `instance clone` at a time, from a master this server
//! manages or one it deleted (known then only from the repository), `temp keep`, and
//! repository entries that belong to another server.

use lifeboat_backup::InstanceDescription;

use super::harness::*;

/// The view of an instance after `--wait`: a running master restored from `source`,
/// with its own first backup and a window of its own.
async fn assert_backed_up_clone(server: &TestServer, clone: &serde_json::Value, source: &str) {
    assert_eq!(clone["kind"], "master", "{clone}");
    assert_eq!(clone["status"], "running", "{clone}");
    assert_eq!(clone["restored_from"], source, "{clone}");
    assert!(
        clone["expires_at"].is_null(),
        "a clone does not expire: {clone}"
    );
    let id = id_of(clone);
    let backups = server.json(&["backup", "list", &id]);
    assert!(
        !backups["backups"].as_array().unwrap().is_empty(),
        "its first base backup is taken before it is running: {backups}"
    );
    // Its own continuous backup: a commit on it reaches its own window.
    let admin = connect(port_of(clone), "admin", PASSWORD).await.unwrap();
    admin
        .batch_execute("CREATE TABLE after_clone AS SELECT 1 AS x")
        .await
        .unwrap();
    let t = now_and_switch(&admin).await;
    server.wait_window_reaches(&id, t).await;
}

#[tokio::test]
async fn a_master_is_cloned_at_a_time_and_a_temporary_instance_is_kept() {
    let server = TestServer::start_archiving("");
    let (id, _, admin) = server.backed_up_master("shop").await;
    create_orders(&admin, 1000).await;
    let t = now_and_switch(&admin).await;
    admin.batch_execute("DELETE FROM orders").await.unwrap();
    switch_wal(&admin).await;
    server.wait_window_reaches(&id, t).await;

    // Refusals first: nothing is created by any of them.
    let err = server.fails(&["instance", "clone", &id, "--name", "shop-back"]);
    assert!(err.contains("no recovery target"), "{err}");
    let shown = server.json(&["instance", "show", &id]);
    let major = shown["engine_version"]
        .as_str()
        .and_then(|v| v.split('.').next())
        .unwrap()
        .to_string();
    let other = if major == "15" { "16" } else { "15" };
    let err = server.fails(&[
        "instance",
        "clone",
        &id,
        "--at",
        &t.to_rfc3339(),
        "--name",
        "shop-back",
        "--engine-version",
        other,
    ]);
    assert!(
        err.contains(&format!("engine version {other}"))
            && err.contains(&format!("PostgreSQL {major}")),
        "{err}"
    );
    let err = server.fails(&[
        "instance",
        "clone",
        &id,
        "--at",
        &t.to_rfc3339(),
        "--name",
        "shop",
    ]);
    assert!(err.contains("shop"), "the name is taken: {err}");
    let err = server.fails(&[
        "instance",
        "clone",
        &id,
        "--at",
        "2001-01-01T00:00:00Z",
        "--name",
        "shop-back",
    ]);
    assert!(err.contains("window"), "{err}");
    let instances = server.json(&["instance", "list"]);
    assert_eq!(instances.as_array().unwrap().len(), 1, "{instances}");

    let clone = server.json(&[
        "instance",
        "clone",
        &id,
        "--at",
        &t.to_rfc3339(),
        "--name",
        "shop-back",
        "--wait",
    ]);
    assert_eq!(clone["name"], "shop-back");
    let back = connect(port_of(&clone), "admin", PASSWORD).await.unwrap();
    assert_eq!(count_rows(&back, "orders").await, 1000);
    assert_backed_up_clone(&server, &clone, &id).await;
    // The master is as it was.
    assert_eq!(count_rows(&admin, "orders").await, 0);

    // Both are this server's, described in the repository.
    let listed = server.json(&["repository", "list"]);
    let this = listed["server_id"].as_str().unwrap().to_string();
    for (entry_id, name) in [
        (id.as_str(), "shop"),
        (clone["id"].as_str().unwrap(), "shop-back"),
    ] {
        let e = repository_entry(&listed, entry_id);
        assert_eq!(e["relation"], "managed", "{e}");
        assert_eq!(e["name"], name, "{e}");
        assert_eq!(e["owner"], this.as_str(), "{e}");
        assert_eq!(e["window"]["available"], true, "{e}");
    }

    // A temporary instance kept as a master.
    let temp = server.json(&["temp", "create", &id, "--at", &t.to_rfc3339(), "--wait"]);
    let temp_id = id_of(&temp);
    let err = server.fails(&["temp", "keep", &temp_id, "--name", "shop-back"]);
    assert!(err.contains("shop-back"), "the name is taken: {err}");
    let err = server.fails(&["temp", "keep", &id, "--name", "other"]);
    assert!(err.contains("master already"), "{err}");
    let kept = server.json(&["temp", "keep", &temp_id, "--name", "shop-kept"]);
    assert_eq!(kept["id"], temp_id.as_str());
    assert_eq!(kept["name"], "shop-kept");
    assert!(kept["master_id"].is_null(), "{kept}");
    let copy = connect(port_of(&kept), "admin", PASSWORD).await.unwrap();
    assert_eq!(count_rows(&copy, "orders").await, 1000);
    assert_backed_up_clone(&server, &kept, &id).await;
    // It no longer counts as the master's temporary instance.
    let err = server.fails(&["temp", "show", &id]);
    assert!(err.contains("has no temporary instance"), "{err}");
    let listed = server.json(&["instance", "list"]);
    assert_eq!(listed.as_array().unwrap().len(), 3, "{listed}");
}

#[tokio::test]
async fn a_deleted_master_is_listed_from_the_repository_and_cloned() {
    let server = TestServer::start_archiving("");
    let (id, _, admin) = server.backed_up_master("gone").await;
    create_orders(&admin, 777).await;
    let t = now_and_switch(&admin).await;
    server.wait_window_reaches(&id, t).await;
    drop(admin);
    server.json(&["instance", "delete", &id]);
    let err = server.fails(&["instance", "show", &id]);
    assert!(err.contains("not found"), "{err}");

    let listed = server.json(&["repository", "list", "--region", "local"]);
    let entry = repository_entry(&listed, id.as_str());
    assert_eq!(entry["relation"], "deleted", "{entry}");
    assert_eq!(entry["name"], "gone");
    assert_eq!(entry["privileged_account"], "admin");
    assert!(
        entry["engine_version"].as_str().is_some_and(|v| v
            .split('.')
            .next()
            .is_some_and(|m| m.parse::<u32>().is_ok())),
        "{entry}"
    );
    assert_eq!(entry["settings"]["wal_level"], "replica", "{entry}");
    // Window and verify answer for it as for a master of this server.
    let window = server.json(&["backup", "window", &id]);
    assert_eq!(window["available"], true, "{window}");
    assert_eq!(window["reaches_present"], false, "{window}");
    assert_eq!(entry["window"]["latest"], window["latest"], "{entry}");
    let verify = server.json(&["backup", "verify", &id]);
    assert_eq!(verify["ok"], true, "{verify}");
    let err = server.fails(&["repository", "list", "--region", "nowhere"]);
    assert!(err.contains("unknown region 'nowhere'"), "{err}");

    let clone = server.json(&[
        "instance",
        "clone",
        &id,
        "--at",
        &t.to_rfc3339(),
        "--name",
        "gone-back",
        "--wait",
    ]);
    let back = connect(port_of(&clone), "admin", PASSWORD).await.unwrap();
    assert_eq!(count_rows(&back, "orders").await, 777);
    assert_backed_up_clone(&server, &clone, &id).await;
}

#[tokio::test]
async fn a_server_never_writes_into_an_entry_another_server_owns() {
    let repo = tempfile::tempdir().unwrap();
    let user = lifeboat_postgres::OsUser::for_clusters(None).unwrap();
    user.chown(repo.path()).unwrap();
    let config = |extra: &str| {
        let (a, b) = port_range(6);
        format!(
            "[backup]\narchive_timeout = \"1s\"\n{extra}[[region]]\nname = \"local\"\nports = \"{a}-{b}\"\nrepository = \"file://{}\"\n",
            repo.path().display()
        )
    };
    let first = TestServer::with_config(&config(""));
    let second = TestServer::with_config(&config(""));
    let (id, _, admin) = first.backed_up_master("shop").await;
    create_orders(&admin, 50).await;
    let t = now_and_switch(&admin).await;
    first.wait_window_reaches(&id, t).await;
    let first_id = first.json(&["repository", "list"])["server_id"]
        .as_str()
        .unwrap()
        .to_string();

    // The second server sees the first one's master, written by another server.
    let listed = second.json(&["repository", "list"]);
    assert_ne!(listed["server_id"], first_id.as_str());
    let entry = repository_entry(&listed, id.as_str());
    assert_eq!(entry["relation"], "other_server", "{entry}");
    assert_eq!(entry["owner"], first_id.as_str(), "{entry}");
    let err = second.fails(&["backup", "run", &id]);
    assert!(err.contains("not found"), "{err}");

    // It restores from them into a master of its own, and leaves the entry as it was.
    let clone = second.json(&[
        "instance",
        "clone",
        &id,
        "--at",
        &t.to_rfc3339(),
        "--name",
        "shop-copy",
        "--wait",
    ]);
    let copy = connect(port_of(&clone), "admin", PASSWORD).await.unwrap();
    assert_eq!(count_rows(&copy, "orders").await, 50);
    let store = lifeboat_backup::Repository::local(repo.path()).unwrap();
    let described = InstanceDescription::load(&store, &id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(described.owner, first_id);
    assert!(described.deleted_at.is_none());

    // An entry of the second server claimed by the first one: the second one writes
    // no more backups into it, and says whose it is.
    let clone_id = id_of(&clone);
    let mut theirs = InstanceDescription::load(&store, &clone_id)
        .await
        .unwrap()
        .unwrap();
    let backups_before = second.json(&["backup", "list", &clone_id])["backups"]
        .as_array()
        .unwrap()
        .len();
    theirs.owner = first_id.clone();
    theirs.store(&store).await.unwrap();
    let run = second.json(&["backup", "run", &clone_id]);
    let run_id = run["id"].as_i64().unwrap();
    let failed = second
        .wait_for("the refused backup run", || {
            let list = second.json(&["backup", "list", &clone_id]);
            list["runs"]
                .as_array()?
                .iter()
                .find(|r| r["id"].as_i64() == Some(run_id) && r["state"] == "failed")
                .cloned()
        })
        .await;
    let why = failed["error"].as_str().unwrap();
    assert!(
        why.contains(&first_id) && why.contains("not by this one"),
        "{why}"
    );
    let after = second.json(&["backup", "list", &clone_id]);
    assert_eq!(after["backups"].as_array().unwrap().len(), backups_before);
}

/// A crash during a clone's first base backup leaves its record `creating` and WAL of
/// its new timeline in its entry; the build starts again and must begin with an
/// empty entry, or its archiving meets segments of the same names with other content.
#[tokio::test]
async fn a_clone_interrupted_after_it_archived_is_built_again_from_an_empty_entry() {
    use lifeboat_domain::{InstanceId, InstanceKind, RestoreTarget, WhitelistEntry};

    let mut server = TestServer::start_archiving("");
    let (id, _, admin) = server.backed_up_master("shop").await;
    create_orders(&admin, 300).await;
    let t = now_and_switch(&admin).await;
    server.wait_window_reaches(&id, t).await;
    let first = server.json(&[
        "instance",
        "clone",
        &id,
        "--at",
        &t.to_rfc3339(),
        "--name",
        "first",
        "--wait",
    ]);
    let first_id = id_of(&first);
    server.kill();

    let repo = server.data_dir.join("regions/local/repository");
    let again = InstanceId::generate();
    let (port, _) = port_range(1);
    let store = lifeboat_store::Store::open(&server.data_dir.join("lifeboat.db")).unwrap();
    store
        .insert_instance(&lifeboat_store::NewInstance {
            id: again.clone(),
            name: "again".into(),
            kind: InstanceKind::Master,
            region: "local".into(),
            port,
            engine_version: first["engine_version"].as_str().unwrap().to_string(),
            master_id: None,
            expires_at: None,
            privileged_account: "admin".into(),
            pending_verifier: None,
            restore_target: Some(RestoreTarget::Time(t.fixed_offset())),
            restored_from: Some(InstanceId::parse(&id).unwrap()),
            upgrade_to: None,
            management_role: None,
            external: None,
            whitelist: vec![WhitelistEntry::localhost()],
        })
        .unwrap();
    drop(store);
    // What the interrupted attempt archived: the first clone's timeline, same names.
    let from = repo.join(&first_id).join("wal");
    let to = repo.join(again.as_str()).join("wal");
    std::fs::create_dir_all(&to).unwrap();
    let mut copied = 0;
    for e in std::fs::read_dir(&from).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if name.starts_with("00000002") {
            std::fs::copy(e.path(), to.join(&name)).unwrap();
            copied += 1;
        }
    }
    assert!(
        copied >= 2,
        "the first clone archived its timeline: {copied} files"
    );

    server.spawn();
    let built = server
        .wait_for("the interrupted clone to be built again", || {
            let v = server.json(&["instance", "show", again.as_str()]);
            assert_ne!(v["status"], "failed", "{v}");
            (v["status"] == "running").then_some(v)
        })
        .await;
    let back = connect(port_of(&built), "admin", PASSWORD).await.unwrap();
    assert_eq!(count_rows(&back, "orders").await, 300);
    let t2 = now_and_switch(&back).await;
    server.wait_window_reaches(again.as_str(), t2).await;
    let verify = server.json(&["backup", "verify", again.as_str()]);
    assert_eq!(verify["ok"], true, "{verify}");
}

/// A clone asked for with a newer engine version: restored with its backups' major,
/// then moved with pg_upgrade, with the rows and accounts of the target, and backed
/// up (its window starts) on the new major. An older major is refused.
#[tokio::test]
async fn a_clone_is_upgraded_to_a_newer_major() {
    let installed = lifeboat_postgres::Installations::discover(&[]).majors();
    let (old, new) = (15, 18);
    if !installed.contains(&old) || !installed.contains(&new) {
        skip(&format!(
            "PostgreSQL {old} and {new} must be installed (scripts/install-deps installs 16 to 18 under /opt/lifeboat/postgresql)"
        ));
        return;
    }
    let server = TestServer::start_archiving("");
    let master = server.create_master_on("legacy", Some(old));
    let id = id_of(&master);
    server.wait_first_backup(&id).await;
    let admin = connect(port_of(&master), "admin", PASSWORD).await.unwrap();
    admin
        .batch_execute(
            "CREATE TABLE orders (id int PRIMARY KEY, total numeric(12,2), note text);
             INSERT INTO orders SELECT g, g * 1.25, 'n' || g FROM generate_series(1, 400) g;
             CREATE INDEX ON orders (note);
             CREATE ROLE clerk LOGIN PASSWORD 'clerk-secret-1';",
        )
        .await
        .unwrap();
    let t = now_and_switch(&admin).await;
    admin.batch_execute("DROP TABLE orders").await.unwrap();
    switch_wal(&admin).await;
    server.wait_window_reaches(&id, t).await;

    let err = server.fails(&[
        "instance",
        "clone",
        &id,
        "--at",
        &t.to_rfc3339(),
        "--name",
        "legacy-up",
        "--engine-version",
        "14",
    ]);
    assert!(err.contains("engine version 14"), "{err}");

    let clone = server.json(&[
        "instance",
        "clone",
        &id,
        "--at",
        &t.to_rfc3339(),
        "--name",
        "legacy-up",
        "--engine-version",
        &new.to_string(),
        "--wait",
    ]);
    assert!(
        clone["engine_version"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{new}.")),
        "{clone}"
    );
    let up = connect(port_of(&clone), "admin", PASSWORD).await.unwrap();
    let version: i32 = up
        .query_one("SELECT current_setting('server_version_num')::int", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(version / 10000, new as i32);
    let row = up
        .query_one(
            "SELECT count(*), sum(total)::text, count(DISTINCT note) FROM orders",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 400);
    assert_eq!(row.get::<_, String>(1), "100250.00");
    assert_eq!(row.get::<_, i64>(2), 400);
    // The index came across and is used.
    up.batch_execute("SET enable_seqscan = off").await.unwrap();
    let plan: Vec<String> = up
        .query("EXPLAIN SELECT * FROM orders WHERE note = 'n7'", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        plan.iter().any(|l| l.contains("orders_note_idx")),
        "{plan:?}"
    );
    connect(port_of(&clone), "clerk", "clerk-secret-1")
        .await
        .expect("an account of that time logs in after the upgrade");
    assert_backed_up_clone(&server, &clone, &id).await;
    let list = server.json(&["repository", "list"]);
    let entry = repository_entry(&list, clone["id"].as_str().unwrap());
    assert!(
        entry["engine_version"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{new}.")),
        "{entry}"
    );
}
