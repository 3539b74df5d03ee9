//! Finding the mistake: the transactions that destroyed data, listed from the archived
//! WAL with the names their tables had, and a temporary instance restored to just
//! before one of them.

use serde_json::Value;

use super::harness::*;

/// Waits until Lifeboat's look at the catalogs has seen `schema.table`.
async fn wait_named(server: &TestServer, id: &str, schema: &str, table: &str) {
    let store = lifeboat_store::Store::open(&server.data_dir.join("lifeboat.db")).unwrap();
    let instance = lifeboat_domain::InstanceId::parse(id).unwrap();
    server
        .wait_for("the table to be seen in the catalogs", || {
            store
                .relation_seen(&instance, None, schema, table)
                .unwrap()
                .then_some(())
        })
        .await;
}

fn tables(e: &Value) -> Vec<String> {
    e["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            format!(
                "{}.{}",
                t["schema"].as_str().unwrap_or("?"),
                t["name"].as_str().unwrap_or("?")
            )
        })
        .collect()
}

#[tokio::test]
async fn the_mistakes_are_listed_and_a_restore_goes_to_just_before_one() {
    let server = TestServer::start_archiving("");
    let (id, port, admin) = server.backed_up_master("shop").await;
    admin
        .batch_execute(
            "CREATE TABLE orders (id int PRIMARY KEY, total numeric);
             INSERT INTO orders SELECT g, g FROM generate_series(1, 3000) g;
             -- A primary key and a TOAST table: their new files are not all empty.
             CREATE TABLE carts (id int PRIMARY KEY, item text);
             INSERT INTO carts SELECT g, md5(g::text) FROM generate_series(1, 50) g;
             CREATE SCHEMA archive;
             CREATE TABLE archive.a (i int); CREATE TABLE archive.b (i int); CREATE TABLE archive.c (i int);",
        )
        .await
        .unwrap();
    // Not in a transaction block: a statement of its own.
    admin.batch_execute("CREATE DATABASE other").await.unwrap();
    let other = connect_db(port, "admin", PASSWORD, "other").await.unwrap();
    other
        .batch_execute("CREATE TABLE logs AS SELECT generate_series(1, 2500) AS id")
        .await
        .unwrap();
    // A table created after the last base backup, then dropped.
    admin
        .batch_execute("CREATE TABLE scratch AS SELECT generate_series(1, 10) AS id")
        .await
        .unwrap();
    wait_named(&server, &id, "archive", "c").await;
    wait_named(&server, &id, "public", "scratch").await;

    // The good commit, then the mistake, back to back (in the same second, mostly).
    admin
        .batch_execute("INSERT INTO orders VALUES (5000, 1)")
        .await
        .unwrap();
    admin
        .batch_execute("DELETE FROM orders WHERE id <= 3000")
        .await
        .unwrap();
    admin.batch_execute("TRUNCATE carts").await.unwrap();
    admin
        .batch_execute("DROP SCHEMA archive CASCADE")
        .await
        .unwrap();
    admin.batch_execute("DROP TABLE scratch").await.unwrap();
    other.batch_execute("DELETE FROM logs").await.unwrap();
    drop(other);
    admin.batch_execute("DROP DATABASE other").await.unwrap();
    let t = now_and_switch(&admin).await;
    server.wait_window_reaches(&id, t).await;

    let list = server.json(&["backup", "events", &id]);
    let events = list["events"].as_array().unwrap().clone();
    let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    // Newest first.
    assert_eq!(
        kinds,
        vec![
            "drop_database",
            "delete",
            "drop_table",
            "drop_table",
            "truncate",
            "delete"
        ],
        "{list}"
    );
    let delete = events.last().unwrap().clone();
    assert_eq!(tables(&delete), vec!["public.orders"], "{delete}");
    assert_eq!(delete["rows"], 3000);
    assert_eq!(delete["database"], "postgres");
    assert_eq!(
        delete["restore_command"],
        format!(
            "lifeboat temp create {id} --before {}",
            delete["id"].as_str().unwrap()
        )
    );
    assert_eq!(tables(&events[4]), vec!["public.carts"], "{}", events[4]);
    assert_eq!(
        tables(&events[3]),
        vec!["archive.a", "archive.b", "archive.c"],
        "{}",
        events[3]
    );
    assert_eq!(tables(&events[2]), vec!["public.scratch"], "{}", events[2]);
    assert_eq!(
        (events[1]["database"].as_str(), events[1]["rows"].as_u64()),
        (Some("other"), Some(2500))
    );
    assert_eq!(events[0]["database"], "other");

    // Filters.
    let only = server.json(&["backup", "events", &id, "--table", "public.orders"]);
    assert_eq!(only["events"].as_array().unwrap().len(), 1, "{only}");
    let only = server.json(&["backup", "events", &id, "--database", "other"]);
    assert_eq!(only["events"].as_array().unwrap().len(), 2, "{only}");
    let big = server.json(&["backup", "events", &id, "--min-rows", "2600"]);
    assert!(
        big["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["kind"] != "delete" || e["rows"].as_u64() >= Some(2600)),
        "{big}"
    );
    assert_eq!(
        big["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "delete")
            .count(),
        1
    );
    // A second listing reads no WAL again but the newest: the segment the master's
    // WAL switch closed since the listings before, and the one before it, whose facts
    // are kept only once the segment its last record may run into is archived.
    assert_eq!(list["scanned"]["cached"], 0);
    let again = server.json(&["backup", "events", &id]);
    let (read, cached) = (
        again["scanned"]["segments"].as_u64().unwrap(),
        again["scanned"]["cached"].as_u64().unwrap(),
    );
    assert!(
        cached + 1 >= list["scanned"]["segments"].as_u64().unwrap(),
        "{again}"
    );
    assert!(read - cached <= 2, "{again}");
    let err = server.fails(&["backup", "events", &id, "--table", "public.never"]);
    assert!(err.contains("table public.never was never seen"), "{err}");
    let err = server.fails(&["temp", "create", &id, "--before", "ev-nope"]);
    assert!(err.contains("'ev-nope' is not an event id"), "{err}");
    let err = server.fails(&["temp", "create", &id, "--before", "ev-1-1"]);
    assert!(err.contains("no event ev-1-1"), "{err}");
    let err = server.fails(&["temp", "create", &id, "--before-xid", "3"]);
    assert!(
        err.contains("transaction 3 did not commit inside the restorable window"),
        "{err}"
    );

    // Just before the mistake: the good insert is there, the delete is not.
    let temp = server.json(&[
        "temp",
        "create",
        &id,
        "--before",
        delete["id"].as_str().unwrap(),
        "--wait",
    ]);
    assert_eq!(temp["status"], "running", "{temp}");
    assert_eq!(
        temp["restore_target"]["kind"], "before_transaction",
        "{temp}"
    );
    assert_eq!(temp["restore_target"]["value"]["xid"], delete["xid"]);
    let copy = connect(port_of(&temp), "admin", PASSWORD).await.unwrap();
    assert_eq!(count_rows(&copy, "orders").await, 3001);
    let good: i64 = copy
        .query_one("SELECT count(*) FROM orders WHERE id = 5000", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(good, 1, "the commit just before the mistake is kept");
    drop(copy);
    server.json(&["temp", "delete", &id_of(&temp)]);

    // The same, by transaction id.
    let xid = delete["xid"].to_string();
    let temp = server.json(&["temp", "create", &id, "--before-xid", &xid, "--wait"]);
    let copy = connect(port_of(&temp), "admin", PASSWORD).await.unwrap();
    assert_eq!(count_rows(&copy, "orders").await, 3001);
}

#[tokio::test]
async fn a_column_dropped_or_retyped_is_an_event_and_a_vacuum_full_is_not() {
    let server = TestServer::start_archiving("");
    let (id, _port, admin) = server.backed_up_master("shop").await;
    admin
        .batch_execute(
            "CREATE TABLE retyped (a int, b text);
             INSERT INTO retyped SELECT g, repeat('x', g) FROM generate_series(1, 400) g;
             CREATE TABLE narrowed (a int, b text, c int);
             INSERT INTO narrowed SELECT g, g::text, g FROM generate_series(1, 50) g;
             CREATE TABLE vacuumed AS SELECT generate_series(1, 300) AS a;
             CREATE TABLE empty_vacuumed (a int);
             CREATE TABLE renamed (a int, b int);
             INSERT INTO renamed SELECT g, g FROM generate_series(1, 20) g;
             ANALYZE",
        )
        .await
        .unwrap();
    wait_named(&server, &id, "public", "renamed").await;
    for statement in [
        "VACUUM FULL vacuumed",
        "VACUUM FULL empty_vacuumed",
        "CLUSTER vacuumed USING vacuumed_pkey",
        "ALTER TABLE retyped ALTER COLUMN a TYPE bigint",
        "ALTER TABLE renamed RENAME COLUMN b TO c",
        "ALTER TABLE narrowed DROP COLUMN b",
    ] {
        // CLUSTER needs an index: made on the way, and not an event either.
        if statement.starts_with("CLUSTER") {
            admin
                .batch_execute("ALTER TABLE vacuumed ADD CONSTRAINT vacuumed_pkey PRIMARY KEY (a)")
                .await
                .unwrap();
        }
        admin.batch_execute(statement).await.unwrap();
    }
    let list = server.json(&["backup", "events", &id]);
    let found: Vec<(String, Vec<String>, u64)> = list["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_string(),
                tables(e),
                e["rows"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        found,
        vec![
            (
                "alter_table".to_string(),
                vec!["public.narrowed".to_string()],
                0
            ),
            (
                "alter_table".to_string(),
                vec!["public.retyped".to_string()],
                400
            ),
        ],
        "{list}"
    );
    let only = server.json(&["backup", "events", &id, "--kind", "truncate"]);
    assert_eq!(only["events"].as_array().unwrap().len(), 0, "{only}");
    let err = server.fails(&["backup", "events", &id, "--kind", "vacuum"]);
    assert!(err.contains("kind"), "{err}");
}

/// While pgbench writes from four clients, a DELETE commits; a restore to just
/// before it has every transaction that committed before it and none after. The
/// ledger's writers take the next number from one counter row, which they hold until
/// they commit: the numbers are the commit order, so the copy must hold exactly the
/// numbers below the DELETE's.
#[tokio::test(flavor = "multi_thread")]
async fn under_pgbench_load_a_restore_before_the_mistake_has_every_earlier_commit() {
    let server = TestServer::start_archiving("");
    let (id, port, admin) = server.backed_up_master("shop").await;
    let bins = binaries_for(&server.instance_dir(&id)).expect("the master's binaries");
    admin
        .batch_execute(
            "CREATE TABLE counter (n bigint NOT NULL); INSERT INTO counter VALUES (0);
             CREATE TABLE ledger (n bigint PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp());
             CREATE TABLE orders AS SELECT generate_series(1, 2000) AS id;",
        )
        .await
        .unwrap();
    let pgbench = |args: &[&str]| {
        std::process::Command::new(bins.path("pgbench"))
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "admin"])
            .args(args)
            .arg("postgres")
            .env("PGPASSWORD", PASSWORD)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("pgbench")
    };
    let init = pgbench(&["-i", "-s", "1", "-q"])
        .wait_with_output()
        .unwrap();
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let script = server.data_dir.parent().unwrap().join("ledger.sql");
    std::fs::write(
        &script,
        "BEGIN;\nUPDATE counter SET n = n + 1 RETURNING n \\gset\nINSERT INTO ledger (n) VALUES (:n);\nCOMMIT;\n",
    )
    .unwrap();
    let script = script.to_str().unwrap().to_string();
    let load = pgbench(&[
        "-c",
        "4",
        "-j",
        "2",
        "-T",
        "10",
        "-n",
        "-b",
        "tpcb-like@1",
        "-f",
        &format!("{script}@2"),
    ]);

    // The mistake, in the middle of the load, numbered like the ledger's writers.
    let bad: i64 = {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let n: i64 = admin
                .query_one("SELECT count(*) FROM ledger", &[])
                .await
                .unwrap()
                .get(0);
            if n >= 50 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "pgbench wrote {n} ledger rows in 60 s"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        admin.batch_execute("BEGIN").await.unwrap();
        let n: i64 = admin
            .query_one("UPDATE counter SET n = n + 1 RETURNING n", &[])
            .await
            .unwrap()
            .get(0);
        admin.batch_execute("DELETE FROM orders").await.unwrap();
        admin.batch_execute("COMMIT").await.unwrap();
        n
    };
    let out = load.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after: i64 = admin
        .query_one("SELECT count(*) FROM ledger WHERE n > $1", &[&bad])
        .await
        .unwrap()
        .get(0);
    assert!(after > 0, "pgbench committed after the mistake too");

    let list = server.json(&["backup", "events", &id, "--table", "public.orders"]);
    let event = list["events"][0].clone();
    assert_eq!(
        (event["kind"].as_str(), event["rows"].as_u64()),
        (Some("delete"), Some(2000)),
        "{list}"
    );
    let temp = server.json(&[
        "temp",
        "create",
        &id,
        "--before",
        event["id"].as_str().unwrap(),
        "--wait",
    ]);
    assert_eq!(temp["status"], "running", "{temp}");
    let copy = connect(port_of(&temp), "admin", PASSWORD).await.unwrap();
    let row = copy
        .query_one(
            "SELECT count(*), coalesce(max(n), 0), (SELECT n FROM counter) FROM ledger",
            &[],
        )
        .await
        .unwrap();
    let (count, max, counter): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    assert_eq!(
        (count, max, counter),
        (bad - 1, bad - 1, bad - 1),
        "every commit before the mistake, none after"
    );
    assert_eq!(count_rows(&copy, "orders").await, 2000);
    // pgbench's own transactions are whole: the balances add up to the history.
    let row = copy
        .query_one(
            "SELECT (SELECT coalesce(sum(abalance), 0) FROM pgbench_accounts)::bigint, (SELECT coalesce(sum(delta), 0) FROM pgbench_history)::bigint",
            &[],
        )
        .await
        .unwrap();
    let (balances, history): (i64, i64) = (row.get(0), row.get(1));
    assert_eq!(balances, history);
}

/// A DELETE whose records fill more than a segment: the record that begins at the end
/// of one segment and ends in the next is counted once, so the event has exactly the
/// rows deleted, on a first listing and on a cached one.
#[tokio::test]
async fn a_delete_across_segment_boundaries_counts_every_row() {
    let server = TestServer::start_archiving("");
    let (id, _port, admin) = server.backed_up_master("shop").await;
    admin
        .batch_execute(
            "CREATE TABLE big (id int); INSERT INTO big SELECT generate_series(1, 400000);",
        )
        .await
        .unwrap();
    wait_named(&server, &id, "public", "big").await;
    async fn segment(admin: &tokio_postgres::Client) -> String {
        admin
            .query_one("SELECT pg_walfile_name(pg_current_wal_lsn())", &[])
            .await
            .unwrap()
            .get(0)
    }
    let before = segment(&admin).await;
    admin.batch_execute("DELETE FROM big").await.unwrap();
    let after = segment(&admin).await;
    assert!(after > before, "the DELETE filled {before}..{after}");

    for listing in ["first", "cached"] {
        let list = server.json(&["backup", "events", &id, "--table", "public.big"]);
        let events = list["events"].as_array().unwrap();
        assert_eq!(events.len(), 1, "{listing}: {list}");
        assert_eq!(
            (events[0]["kind"].as_str(), events[0]["rows"].as_u64()),
            (Some("delete"), Some(400000)),
            "{listing}: {list}"
        );
    }
}

/// A segment missing from the repository: the listing says which one, lists the
/// events before it, and none after it.
#[tokio::test]
async fn a_gap_in_the_archived_wal_is_reported_and_ends_the_listing() {
    let server = TestServer::start_archiving("");
    let (id, _port, admin) = server.backed_up_master("shop").await;
    admin
        .batch_execute(
            "CREATE TABLE early AS SELECT generate_series(1, 1500) AS id;
             CREATE TABLE late AS SELECT generate_series(1, 1700) AS id;",
        )
        .await
        .unwrap();
    wait_named(&server, &id, "public", "late").await;
    admin.batch_execute("DELETE FROM early").await.unwrap();
    let mut last = now_and_switch(&admin).await;
    for i in 0..2 {
        admin
            .batch_execute(&format!("CREATE TABLE t{i} AS SELECT 1 AS x"))
            .await
            .unwrap();
        last = now_and_switch(&admin).await;
    }
    admin.batch_execute("DELETE FROM late").await.unwrap();
    last = last.max(now_and_switch(&admin).await);
    server.wait_window_reaches(&id, last).await;
    let before = server.json(&["backup", "events", &id]);
    let kinds: Vec<(String, u64)> = before["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (tables(e).join(","), e["rows"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("public.late".to_string(), 1700),
            ("public.early".to_string(), 1500)
        ],
        "{before}"
    );
    assert_eq!(before["scanned"]["gap"], Value::Null, "{before}");

    // The segment after the first DELETE's goes missing.
    let early_lsn = before["events"][1]["commit_lsn"]
        .as_str()
        .unwrap()
        .to_string();
    let wal_dir = server
        .data_dir
        .join("regions/local/repository")
        .join(&id)
        .join("wal");
    let early_segment: String = admin
        .query_one("SELECT pg_walfile_name($1::text::pg_lsn)", &[&early_lsn])
        .await
        .unwrap()
        .get(0);
    let hex = |r: std::ops::Range<usize>| u64::from_str_radix(&early_segment[r], 16).unwrap();
    let next = hex(8..16) * 256 + hex(16..24) + 1;
    let missing = format!(
        "{}{:08X}{:08X}",
        &early_segment[..8],
        next / 256,
        next % 256
    );
    std::fs::remove_file(wal_dir.join(&missing)).unwrap();

    let after = server.json(&["backup", "events", &id]);
    assert_eq!(after["scanned"]["gap"], missing.as_str(), "{after}");
    assert!(
        after["note"].as_str().unwrap().contains(&missing),
        "{after}"
    );
    let events = after["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{after}");
    assert_eq!(tables(&events[0]), ["public.early"], "{after}");
}

/// A table created a moment ago is known by its name at once: the catalogs are looked
/// at before the names asked for are looked up, not only every few seconds.
#[tokio::test]
async fn a_table_created_a_moment_ago_is_asked_for_by_name() {
    let server = TestServer::start_archiving("");
    let (id, _port, admin) = server.backed_up_master("shop").await;
    admin
        .batch_execute(
            "CREATE TABLE just_made (id int PRIMARY KEY);
             INSERT INTO just_made SELECT generate_series(1, 300);
             DELETE FROM just_made;",
        )
        .await
        .unwrap();
    let list = server.json(&["backup", "events", &id, "--table", "public.just_made"]);
    assert!(list["events"].is_array(), "{list:#}");
    let t = now_and_switch(&admin).await;
    server.wait_window_reaches(&id, t).await;
    let list = server.json(&[
        "backup",
        "events",
        &id,
        "--table",
        "public.just_made",
        "--min-rows",
        "100",
    ]);
    let kinds: Vec<_> = list["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["kind"].clone(), e["rows"].clone()))
        .collect();
    assert_eq!(
        kinds,
        vec![(serde_json::json!("delete"), serde_json::json!(300))],
        "{list:#}"
    );
}
