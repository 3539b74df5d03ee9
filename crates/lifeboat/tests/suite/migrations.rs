//! Migration tasks through the server: pre-check, conflicts, whitelist authorization,
//! secrets, restart, and the README's walk-through script.

use super::harness::*;

/// Two masters: `source` with the data, `target` to copy into.
async fn two_masters(
    server: &TestServer,
) -> (
    String,
    String,
    tokio_postgres::Client,
    tokio_postgres::Client,
) {
    let a = server.create_master("source");
    let b = server.create_master("target");
    let ca = connect(port_of(&a), "admin", PASSWORD).await.unwrap();
    let cb = connect(port_of(&b), "admin", PASSWORD).await.unwrap();
    (id_of(&a), id_of(&b), ca, cb)
}

#[tokio::test]
async fn a_conflict_fails_the_precheck_until_it_is_fixed() {
    let server = TestServer::start();
    let (src, dst, ca, cb) = two_masters(&server).await;
    ca.batch_execute("CREATE TABLE orders (id int PRIMARY KEY, item text); INSERT INTO orders SELECT g, 'x' || g FROM generate_series(1, 300) g;").await.unwrap();
    cb.batch_execute("CREATE TABLE orders (id int PRIMARY KEY, item text); INSERT INTO orders VALUES (1, 'kept');").await.unwrap();
    let task = create_task(
        &server,
        &src,
        &dst,
        &[
            "--name",
            "restore-orders",
            "--object",
            "postgres.public.orders",
        ],
    );
    let id = task["id"].as_str().unwrap().to_string();
    assert_eq!(task["state"], "not_started");
    assert_eq!(task["conflict"], "error");
    assert!(task["source"].get("password_sealed").is_none(), "{task}");

    // Start is refused before a passing pre-check.
    let err = server.fails(&["migration", "start", &id]);
    assert!(
        err.contains("starts only after its pre-check passed"),
        "{err}"
    );
    // The pre-check fails, names the conflicting table, and exits non-zero.
    let out = server.cli(&["migration", "precheck", &id, "--output", "json"]);
    assert!(!out.status.success());
    let checked: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(checked["state"], "precheck_failed");
    let failed: Vec<&serde_json::Value> = checked["precheck"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["status"] == "failed")
        .collect();
    assert_eq!(failed.len(), 1, "{checked}");
    assert!(
        failed[0]["detail"].as_str().unwrap().contains("orders"),
        "{}",
        failed[0]
    );
    assert!(!failed[0]["advice"].as_str().unwrap().is_empty());
    let listed = server.json(&["migration", "list"]);
    assert_eq!(listed[0]["state"], "precheck_failed");

    // Fix it in the target, pre-check again, start.
    cb.batch_execute("ALTER TABLE orders RENAME TO orders_old")
        .await
        .unwrap();
    let checked = server.json(&["migration", "precheck", &id]);
    assert_eq!(checked["state"], "precheck_passed", "{checked}");
    let done = server.json(&["migration", "start", "restore-orders", "--wait"]);
    assert_eq!(done["state"], "completed", "{done}");
    assert_eq!(done["tables"][0]["rows"], 300);
    assert_eq!(done["tables"][0]["percent"], 100.0);
    assert_eq!(done["report"]["verification"][0]["passed"], true, "{done}");
    let n = count_rows(&cb, "orders").await;
    let kept: i64 = cb
        .query_one("SELECT count(*) FROM orders_old", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!((n, kept), (300, 1));
    // The passwords are stored sealed, never in clear.
    let db = std::fs::read(server.data_dir.join("lifeboat.db")).unwrap();
    assert!(!db.windows(PASSWORD.len()).any(|w| w == PASSWORD.as_bytes()));
    let err = server.fails(&["migration", "precheck", &id]);
    assert!(err.contains("has completed"), "{err}");
}

#[tokio::test]
async fn a_task_created_without_objects_is_completed_by_update_before_it_starts() {
    let server = TestServer::start();
    let (src, dst, ca, cb) = two_masters(&server).await;
    ca.batch_execute("CREATE TABLE orders (id int PRIMARY KEY, item text); INSERT INTO orders SELECT g, 'x' || g FROM generate_series(1, 20) g;").await.unwrap();
    cb.batch_execute("CREATE TABLE orders (id int PRIMARY KEY, item text); INSERT INTO orders VALUES (1, 'kept');").await.unwrap();
    // The API takes a task without objects (the console's first step does this) and
    // authorizes it; its pre-check fails until it selects something.
    let token = server.token();
    let endpoint =
        |id: &str| serde_json::json!({ "instance": id, "account": "admin", "password": PASSWORD });
    let (code, task) = server.http(
        "POST",
        "/api/v1/migrations",
        Some(&token),
        Some(serde_json::json!({ "name": "draft", "source": endpoint(&src), "target": endpoint(&dst) })),
    );
    assert_eq!(code, 201, "{task}");
    assert_eq!(task["objects"], serde_json::json!([]));
    let id = task["id"].as_str().unwrap().to_string();
    assert_eq!(
        server.json(&["migration", "authorize", &id])["authorized"],
        true
    );
    let out = server.cli(&["migration", "precheck", &id, "--output", "json"]);
    assert!(!out.status.success());
    let checked: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        checked.to_string().contains("selects no object"),
        "{checked}"
    );

    // `update` fills it in; the conflict with the target's orders fails the pre-check,
    // a second update to skip the existing keys passes it.
    let err = server.fails(&["migration", "update", &id]);
    assert!(err.contains("nothing to change"), "{err}");
    let err = server.fails(&[
        "migration",
        "update",
        &id,
        "--object",
        "postgres.public.orders=a.b.c.d",
    ]);
    assert!(err.contains("a.b.c.d"), "{err}");
    let updated = server.json(&[
        "migration",
        "update",
        &id,
        "--object",
        "postgres.public.orders",
    ]);
    assert_eq!(
        updated["objects"],
        serde_json::json!(["postgres.public.orders"])
    );
    assert_eq!(updated["state"], "not_started");
    assert_eq!(updated["precheck"], serde_json::json!([]));
    assert_eq!(
        server.json(&["migration", "show", &id])["objects"],
        serde_json::json!(["postgres.public.orders"])
    );
    let out = server.cli(&["migration", "precheck", &id]);
    assert!(!out.status.success());
    server.json(&[
        "migration",
        "update",
        &id,
        "--conflict",
        "skip-existing",
        "--types",
        "data",
    ]);
    let checked = server.json(&["migration", "precheck", &id]);
    assert_eq!(checked["state"], "precheck_passed", "{checked}");
    // A change after a passed pre-check needs a new one.
    server.json(&["migration", "update", &id, "--conflict", "skip-existing"]);
    let err = server.fails(&["migration", "start", &id]);
    assert!(
        err.contains("starts only after its pre-check passed"),
        "{err}"
    );
    server.json(&["migration", "precheck", &id]);
    let done = server.json(&["migration", "start", &id, "--wait"]);
    assert_eq!(done["state"], "completed", "{done}");
    let (n, kept): (i64, String) = {
        let r = cb
            .query_one(
                "SELECT count(*), (SELECT item FROM orders WHERE id = 1) FROM orders",
                &[],
            )
            .await
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!((n, kept.as_str()), (20, "kept"));
    // A task that has run cannot change.
    let (code, body) = server.http(
        "PATCH",
        &format!("/api/v1/migrations/{id}"),
        Some(&token),
        Some(serde_json::json!({ "conflict": "overwrite" })),
    );
    assert_eq!(code, 409, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("completed"),
        "{body}"
    );
}

#[tokio::test]
async fn authorization_adds_the_worker_to_the_whitelists_until_the_task_ends() {
    let server = TestServer::start();
    let (src, dst, ca, _cb) = two_masters(&server).await;
    ca.batch_execute(
        "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 10);",
    )
    .await
    .unwrap();
    // The target no longer lets 127.0.0.1 in.
    server.json(&["whitelist", "remove", &dst, "127.0.0.1/32"]);
    let task = create_task(
        &server,
        &src,
        &dst,
        &["--object", "postgres.public.t=t_copy"],
    );
    let id = task["id"].as_str().unwrap().to_string();
    let out = server.cli(&["migration", "precheck", &id, "--output", "json"]);
    assert!(!out.status.success());
    let checked: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let whitelist = checked["precheck"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == "whitelist")
        .unwrap()
        .clone();
    assert_eq!(whitelist["status"], "failed", "{checked}");
    assert!(
        whitelist["advice"]
            .as_str()
            .unwrap()
            .contains("lifeboat migration authorize")
    );

    let authorized = server.json(&["migration", "authorize", &id]);
    assert_eq!(authorized["authorized"], true);
    let entries = server.json(&["whitelist", "list", &dst]);
    assert!(
        entries
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["added_by"] == format!("migration:{id}")),
        "{entries}"
    );
    assert_eq!(
        server.json(&["migration", "precheck", &id])["state"],
        "precheck_passed"
    );
    let done = server.json(&["migration", "start", &id, "--wait"]);
    assert_eq!(done["state"], "completed", "{done}");
    // The entry the task added is gone again.
    let entries = server.json(&["whitelist", "list", &dst]);
    assert!(entries.as_array().unwrap().is_empty(), "{entries}");
}

#[tokio::test]
async fn a_task_interrupted_by_a_restart_resumes_and_completes() {
    let mut server = TestServer::start();
    let (src, dst, ca, cb) = two_masters(&server).await;
    ca.batch_execute(
        "CREATE TABLE a (id int PRIMARY KEY, pad text); INSERT INTO a SELECT g, repeat('x', 100) FROM generate_series(1, 400000) g;
         CREATE TABLE b (id int PRIMARY KEY, pad text); INSERT INTO b SELECT g, repeat('y', 100) FROM generate_series(1, 400000) g;",
    )
    .await
    .unwrap();
    let task = create_task(&server, &src, &dst, &["--object", "postgres.public"]);
    let id = task["id"].as_str().unwrap().to_string();
    assert_eq!(
        server.json(&["migration", "precheck", &id])["state"],
        "precheck_passed"
    );
    server.json(&["migration", "start", &id]);
    // A running task keeps its instances from being deleted.
    let err = server.fails(&["instance", "delete", &dst]);
    assert!(
        err.contains(&format!("running migration task {id}")),
        "{err}"
    );
    server
        .wait_for("copying", || {
            let t = server.json(&["migration", "show", &id]);
            (t["tables"]
                .as_array()
                .is_some_and(|ts| ts.iter().any(|x| x["state"] != "pending"))
                || t["state"] != "migrating")
                .then_some(())
        })
        .await;
    server.kill();
    server.spawn();
    let done = server
        .wait_for("the resumed task", || {
            let t = server.json(&["migration", "show", &id]);
            (t["state"] != "migrating").then_some(t)
        })
        .await;
    assert_eq!(done["state"], "completed", "{done}");
    for table in ["a", "b"] {
        let n: i64 = cb
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 400000, "table {table}");
    }
}

#[tokio::test]
async fn the_readme_walkthrough_runs_end_to_end() {
    let server = TestServer::start_archiving("");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/walkthrough");
    let out = std::process::Command::new("bash")
        .arg(&script)
        .env("LIFEBOAT", env!("CARGO_BIN_EXE_lifeboat"))
        .env("LIFEBOAT_DATA_DIR", &server.data_dir)
        .env_remove("LIFEBOAT_SERVER")
        .env_remove("LIFEBOAT_TOKEN")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "walkthrough failed:\n{stdout}\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.log()
    );
    assert!(stdout.contains("orders: 1001 rows"), "{stdout}");
    assert!(stdout.contains("walkthrough passed"));
}

/// A task that fails partway says in its report what it did: the tables it finished
/// (whole, not verified), and the failure in words, in the CLI too. Two tables run at
/// a time: the third, which fails, starts only once one of the first two is done.
#[tokio::test]
async fn a_task_that_fails_partway_reports_the_tables_it_finished() {
    let server = TestServer::start();
    let (src, dst, ca, cb) = two_masters(&server).await;
    ca.batch_execute(
        "CREATE TABLE a_first (id int PRIMARY KEY); INSERT INTO a_first SELECT generate_series(1, 40);
         CREATE TABLE b_second (id int PRIMARY KEY); INSERT INTO b_second SELECT generate_series(1, 30);
         CREATE TABLE z_third (id int PRIMARY KEY); INSERT INTO z_third SELECT generate_series(1, 7);",
    )
    .await
    .unwrap();
    let task = create_task(
        &server,
        &src,
        &dst,
        &[
            "--object",
            "postgres.public.a_first",
            "--object",
            "postgres.public.b_second",
            "--object",
            "postgres.public.z_third",
        ],
    );
    let id = task["id"].as_str().unwrap().to_string();
    server.json(&["migration", "authorize", &id]);
    let checked = server.json(&["migration", "precheck", &id]);
    assert_eq!(checked["state"], "precheck_passed", "{checked}");
    // After the pre-check, the third table gains a column whose default calls a
    // function the target lacks.
    ca.batch_execute(
        "CREATE FUNCTION seven() RETURNS int LANGUAGE sql AS 'SELECT 7';
         ALTER TABLE z_third ADD COLUMN d int DEFAULT seven();",
    )
    .await
    .unwrap();
    let out = server.cli(&["migration", "start", &id, "--wait"]);
    assert!(!out.status.success());
    let done = server.json(&["migration", "show", &id]);
    assert_eq!(done["state"], "failed", "{done}");
    assert!(
        done["error"].as_str().unwrap().contains("z_third"),
        "{done}"
    );
    let reported: Vec<(String, u64)> = done["report"]["tables"]
        .as_array()
        .unwrap_or_else(|| panic!("no report: {done}"))
        .iter()
        .map(|t| {
            (
                t["target"].as_str().unwrap().to_string(),
                t["rows_copied"].as_u64().unwrap(),
            )
        })
        .collect();
    assert!(!reported.is_empty(), "{done}");
    for (table, rows) in &reported {
        let (name, want) = match table.as_str() {
            "postgres.public.a_first" => ("a_first", 40),
            "postgres.public.b_second" => ("b_second", 30),
            other => panic!("{other} reported: {done}"),
        };
        assert_eq!(*rows, want);
        assert_eq!(count_rows(&cb, name).await, want as i64, "{name} is whole");
    }
    let shown = server.cli(&["migration", "show", &id]);
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(text.contains("ended early"), "{text}");
}

#[tokio::test]
async fn a_repair_through_the_cli_changes_only_the_rows_that_differ() {
    let server = TestServer::start();
    let (src, dst, ca, cb) = two_masters(&server).await;
    let table = "CREATE TABLE orders (id int PRIMARY KEY, total numeric(20,6), note text); \
        INSERT INTO orders SELECT g, g / 3.0, 'order ' || g FROM generate_series(1, 5000) g;";
    ca.batch_execute(table).await.unwrap();
    cb.batch_execute(table).await.unwrap();
    // The mistake on the target, and a row written since.
    cb.batch_execute(
        "UPDATE orders SET total = 0 WHERE id % 100 = 0; DELETE FROM orders WHERE id > 4990; \
         INSERT INTO orders VALUES (9001, 1, 'written since');",
    )
    .await
    .unwrap();

    // The delete option belongs to repair only.
    let args = task_args(
        &server,
        &src,
        &dst,
        &server.password_file(),
        &[
            "--object",
            "postgres.public.orders",
            "--conflict",
            "overwrite",
            "--delete-rows-only-in-target",
        ],
    );
    let err = server.fails(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        err.contains(
            "deleting rows only in the target applies to conflict mode repair, not overwrite"
        ),
        "{err}"
    );

    let task = create_task(
        &server,
        &src,
        &dst,
        &["--object", "postgres.public.orders", "--conflict", "repair"],
    );
    let id = task["id"].as_str().unwrap().to_string();
    assert_eq!(task["conflict"], "repair");
    assert_eq!(task["delete_rows_only_in_target"], false);
    server.json(&["migration", "authorize", &id]);
    let checked = server.json(&["migration", "precheck", &id]);
    assert_eq!(checked["state"], "precheck_passed", "{checked}");
    let preview = checked["precheck"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == "repair_preview")
        .unwrap_or_else(|| panic!("no repair preview in {checked}"));
    assert!(
        preview["detail"].as_str().unwrap().starts_with(
            "postgres.public.orders: 10 rows to insert (id=4991; id=4992; id=4993, ...), 49 to update (saved first) (id=100: total 0.000000 -> 33.333333;"
        ),
        "{preview}"
    );
    // The table print of the pre-check shows it too.
    let shown = server.cli(&["migration", "show", &id]);
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.contains("What the repair will change"), "{shown}");

    let done = server.json(&["migration", "start", &id, "--wait"]);
    assert_eq!(done["state"], "completed", "{done}");
    let t = &done["report"]["tables"][0];
    assert_eq!(t["action"], "repair");
    assert_eq!(
        (
            &t["rows_inserted"],
            &t["rows_updated"],
            &t["rows_deleted"],
            &t["rows_untouched"]
        ),
        (
            &serde_json::json!(10),
            &serde_json::json!(49),
            &serde_json::json!(0),
            &serde_json::json!(4942)
        ),
        "{t}"
    );
    let saved = t["kept_table"].as_str().unwrap();
    let row = cb
        .query_one(
            &format!("SELECT count(*), sum(total)::text FROM {saved}"),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        (row.get::<_, i64>(0), row.get::<_, String>(1)),
        (49, "0.000000".to_string())
    );
    let row = cb
        .query_one(
            "SELECT count(*), sum(total)::text FROM orders WHERE id <= 5000",
            &[],
        )
        .await
        .unwrap();
    let expected = ca
        .query_one("SELECT count(*), sum(total)::text FROM orders", &[])
        .await
        .unwrap();
    assert_eq!(
        (row.get::<_, i64>(0), row.get::<_, String>(1)),
        (expected.get::<_, i64>(0), expected.get::<_, String>(1))
    );
    let note: String = cb
        .query_one("SELECT note FROM orders WHERE id = 9001", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(note, "written since");
    let shown = server.cli(&["migration", "show", &id]);
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(
        shown.contains("repaired: 10 rows inserted, 49 updated, 0 deleted, 4942 untouched (1 only in the target)"),
        "{shown}"
    );
}

#[tokio::test]
async fn a_wrong_password_is_fixed_by_update_before_the_task_starts() {
    let server = TestServer::start();
    let (src, dst, ca, _cb) = two_masters(&server).await;
    ca.batch_execute("CREATE TABLE orders (id int PRIMARY KEY); INSERT INTO orders SELECT generate_series(1, 40);")
        .await
        .unwrap();
    let wrong = server.tmp.path().join("wrong-password");
    std::fs::write(&wrong, "not the password\n").unwrap();
    let pw = server.password_file();
    let mut args = task_args(
        &server,
        &src,
        &dst,
        &wrong,
        &["--object", "postgres.public.orders"],
    );
    // A target account that does not exist, with a wrong password.
    let at = args.iter().position(|a| a == "--target-account").unwrap();
    args[at + 1] = "nobody".into();
    let task = server.json(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let id = task["id"].as_str().unwrap().to_string();
    server.json(&["migration", "authorize", &id]);
    let out = server.cli(&["migration", "precheck", &id, "--output", "json"]);
    assert!(!out.status.success());
    let checked: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let login = checked["precheck"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == "target_connection")
        .unwrap();
    assert_eq!(login["status"], "failed", "{login}");

    // A bad password file is refused and changes nothing.
    let short = server.tmp.path().join("short-password");
    std::fs::write(&short, "short\n").unwrap();
    let err = server.fails(&[
        "migration",
        "update",
        &id,
        "--target-password-file",
        short.to_str().unwrap(),
    ]);
    assert!(err.contains("password"), "{err}");

    let updated = server.json(&[
        "migration",
        "update",
        &id,
        "--target-account",
        "admin",
        "--target-password-file",
        pw.to_str().unwrap(),
    ]);
    assert_eq!(updated["target"]["account"], "admin");
    assert!(updated["precheck"].as_array().unwrap().is_empty());
    let checked = server.json(&["migration", "precheck", &id]);
    assert_eq!(checked["state"], "precheck_passed", "{checked}");
    let done = server.json(&["migration", "start", &id, "--wait"]);
    assert_eq!(done["state"], "completed", "{done}");
    assert_eq!(done["tables"][0]["rows"], 40);
}
