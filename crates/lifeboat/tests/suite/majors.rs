//! Every supported PostgreSQL major (15 to 18) through the core workflow: create,
//! first backup, the mistake listed as an event, a temporary instance restored to a
//! time, diff, and a migration task that brings the deleted rows back. A major below
//! 15 is refused.

use super::harness::*;

/// Whether PostgreSQL `major` is installed where Lifeboat looks for it.
fn installed(major: u32) -> bool {
    lifeboat_postgres::Installations::discover(&[])
        .majors()
        .contains(&major)
}

async fn core_workflow(major: u32) {
    if !installed(major) {
        skip(&format!(
            "PostgreSQL {major} is not installed (scripts/install-deps installs 16 to 18 under /opt/lifeboat/postgresql)"
        ));
        return;
    }
    let server = TestServer::start_archiving("");
    let master = server.create_master_on("shop", Some(major));
    let (id, port) = (id_of(&master), port_of(&master));
    let version = master["engine_version"].as_str().unwrap().to_string();
    assert!(version.starts_with(&format!("{major}.")), "{master}");
    server.wait_first_backup(&id).await;
    let admin = connect(port, "admin", PASSWORD).await.unwrap();
    let server_version: String = admin
        .query_one("SHOW server_version", &[])
        .await
        .unwrap()
        .get(0);
    assert!(
        server_version.starts_with(&format!("{major}.")),
        "{server_version}"
    );
    admin
        .batch_execute(
            "CREATE TABLE orders (id int PRIMARY KEY, total numeric);
             INSERT INTO orders SELECT g, g / 7.0 FROM generate_series(1, 300) g;",
        )
        .await
        .unwrap();
    let target = now_and_switch(&admin).await;
    admin
        .batch_execute("DELETE FROM orders WHERE id > 100")
        .await
        .unwrap();
    switch_wal(&admin).await;
    server.wait_window_reaches(&id, target).await;

    // The mistake, found in this major's WAL with its own pg_waldump.
    let list = server.json(&["backup", "events", &id, "--min-rows", "100"]);
    let deletes: Vec<_> = list["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "delete")
        .map(|e| (e["tables"][0]["name"].clone(), e["rows"].clone()))
        .collect();
    assert_eq!(
        deletes,
        vec![(serde_json::json!("orders"), serde_json::json!(200))],
        "{list}"
    );

    let temp = server.json(&[
        "temp",
        "create",
        &id,
        "--at",
        &target.to_rfc3339(),
        "--wait",
    ]);
    assert_eq!(temp["status"], "running", "{temp}");
    assert_eq!(
        temp["engine_version"],
        version.as_str(),
        "a temporary instance runs its master's major"
    );
    let temp_id = id_of(&temp);
    let copy = connect(port_of(&temp), "admin", PASSWORD).await.unwrap();
    assert_eq!(count_rows(&copy, "orders").await, 300);

    let (status, diff) = server.http(
        "POST",
        "/api/v1/diff",
        Some(&server.token()),
        Some(serde_json::json!({
            "source": {"instance": temp_id}, "target": {"instance": id}, "tables": ["orders"],
        })),
    );
    assert_eq!(status, 200, "{diff}");
    assert_eq!(diff["tables"][0]["only_in_source"], 200, "{diff}");

    let task = create_task(
        &server,
        &temp_id,
        &id,
        &[
            "--object",
            "postgres.public.orders",
            "--conflict",
            "skip-existing",
        ],
    );
    let task_id = id_of(&task);
    server.json(&["migration", "authorize", &task_id]);
    let checked = server.json(&["migration", "precheck", &task_id]);
    assert_eq!(checked["state"], "precheck_passed", "{checked}");
    let done = server.json(&["migration", "start", &task_id, "--wait"]);
    assert_eq!(done["state"], "completed", "{done}");
    assert_eq!(count_rows(&admin, "orders").await, 300);
}

#[tokio::test]
async fn the_core_workflow_on_postgresql_15() {
    core_workflow(15).await;
}

#[tokio::test]
async fn the_core_workflow_on_postgresql_16() {
    core_workflow(16).await;
}

#[tokio::test]
async fn the_core_workflow_on_postgresql_17() {
    core_workflow(17).await;
}

#[tokio::test]
async fn the_core_workflow_on_postgresql_18() {
    core_workflow(18).await;
}

#[tokio::test]
async fn a_major_lifeboat_does_not_run_is_refused() {
    let server = TestServer::start();
    let pw = server.password_file();
    let pw = pw.to_str().unwrap();
    let create = |major: &str| {
        server.fails(&[
            "instance",
            "create",
            "--name",
            "old",
            "--account",
            "admin",
            "--password-file",
            pw,
            "--engine-version",
            major,
        ])
    };
    let err = create("14");
    assert!(
        err.contains("PostgreSQL 14 is not supported: Lifeboat runs PostgreSQL 15 to 18"),
        "{err}"
    );
    let err = create("19");
    assert!(err.contains("PostgreSQL 19 is not supported"), "{err}");
    assert!(server.instance_dirs().is_empty());
}

#[tokio::test]
async fn a_migration_task_carries_tables_from_15_to_18_and_says_what_stays_behind() {
    if !(installed(15) && installed(18)) {
        skip("PostgreSQL 15 and 18 are both needed (scripts/install-deps installs them)");
        return;
    }
    let server = TestServer::start();
    let old = server.create_master_on("old", Some(15));
    let new = server.create_master_on("new", Some(18));
    let (old_id, new_id) = (id_of(&old), id_of(&new));
    let source = connect(port_of(&old), "admin", PASSWORD).await.unwrap();
    source
        .batch_execute(
            "CREATE TABLE orders (id int GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
                                  total numeric(12,4) NOT NULL CHECK (total >= 0),
                                  placed timestamptz DEFAULT now(), tags text[]);
             CREATE INDEX orders_placed ON orders (placed);
             INSERT INTO orders (total, tags)
                 SELECT g / 7.0, ARRAY['a', g::text] FROM generate_series(1, 500) g;",
        )
        .await
        .unwrap();
    let task = create_task(
        &server,
        &old_id,
        &new_id,
        &["--object", "postgres.public.orders"],
    );
    let task_id = id_of(&task);
    server.json(&["migration", "authorize", &task_id]);
    let checked = server.json(&["migration", "precheck", &task_id]);
    assert_eq!(checked["state"], "precheck_passed", "{checked}");
    let version = checked["precheck"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == "engine_version")
        .unwrap()
        .clone();
    assert_eq!(version["status"], "warning", "{version}");
    let detail = version["detail"].as_str().unwrap();
    assert!(
        detail.contains("PostgreSQL 15.") && detail.contains("PostgreSQL 18."),
        "{detail}"
    );
    assert!(detail.contains("roles and their passwords"), "{detail}");
    let done = server.json(&["migration", "start", &task_id, "--wait"]);
    assert_eq!(done["state"], "completed", "{done}");

    let target = connect(port_of(&new), "admin", PASSWORD).await.unwrap();
    let sum = "SELECT count(*)::int8, sum(total)::text, md5(string_agg(tags::text, ',' ORDER BY id)) FROM orders";
    let a = source.query_one(sum, &[]).await.unwrap();
    let b = target.query_one(sum, &[]).await.unwrap();
    assert_eq!(
        (
            a.get::<_, i64>(0),
            a.get::<_, String>(1),
            a.get::<_, String>(2)
        ),
        (
            b.get::<_, i64>(0),
            b.get::<_, String>(1),
            b.get::<_, String>(2)
        )
    );
    // The identity column goes on from where the source was.
    let next: i32 = target
        .query_one("INSERT INTO orders (total) VALUES (1) RETURNING id", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(next, 501);
}
