//! A window that reaches the present: with `archive_timeout` at an hour, a mistake
//! made a second ago is restorable, listed and undone at once, because the running
//! master switches WAL into the archive when a target lies beyond it.

use super::harness::*;

fn server_with_slow_archiving() -> TestServer {
    let (a, b) = port_range(8);
    TestServer::with_config(&format!(
        "[backup]\narchive_timeout = \"1h\"\n[[region]]\nname = \"local\"\nports = \"{a}-{b}\"\n"
    ))
}

#[tokio::test]
async fn a_mistake_made_a_second_ago_is_restorable_without_waiting_for_archive_timeout() {
    let server = server_with_slow_archiving();
    let (id, _port, admin) = server.backed_up_master("shop").await;

    let window = server.json(&["backup", "window", &id]);
    assert_eq!(window["reaches_present"], true, "{window}");
    assert!(
        window["note"]
            .as_str()
            .unwrap()
            .contains("up to the present"),
        "{window}"
    );

    // The present, on a master that wrote little since its backup.
    let temp = server.json(&["temp", "create", &id, "--at", "now", "--wait"]);
    assert_eq!(temp["status"], "running", "{temp}");
    server.json(&["temp", "delete", &id_of(&temp)]);

    admin
        .batch_execute("CREATE TABLE orders AS SELECT generate_series(1, 100) AS id")
        .await
        .unwrap();
    let t: chrono::DateTime<chrono::Utc> =
        admin.query_one("SELECT now()", &[]).await.unwrap().get(0);
    admin.batch_execute("DELETE FROM orders").await.unwrap();

    // Nothing after the backup reached the archive on its own.
    let window = server.json(&["backup", "window", &id]);
    let latest = chrono::DateTime::parse_from_rfc3339(window["latest"].as_str().unwrap()).unwrap();
    assert!(
        latest < t,
        "the archived window ends before the target: {window}"
    );

    let at = t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let temp = server.json(&["temp", "create", &id, "--at", &at, "--wait"]);
    assert_eq!(temp["status"], "running", "{temp}");
    let copy = connect(port_of(&temp), "admin", PASSWORD).await.unwrap();
    assert_eq!(count_rows(&copy, "orders").await, 100);
    drop(copy);
    server.json(&["temp", "delete", &id_of(&temp)]);

    // The listing reaches the present too.
    admin
        .batch_execute("INSERT INTO orders SELECT generate_series(1, 1500)")
        .await
        .unwrap();
    admin
        .batch_execute("DELETE FROM orders WHERE id <= 1200")
        .await
        .unwrap();
    let list = server.json(&["backup", "events", &id]);
    let newest = &list["events"][0];
    assert_eq!(
        (newest["kind"].as_str(), newest["rows"].as_u64()),
        (Some("delete"), Some(1200)),
        "{list}"
    );
    assert!(list["scanned"]["switched_at"].is_string(), "{list}");

    // A transaction that committed a moment ago, by its id.
    let xid: String = {
        admin.batch_execute("BEGIN").await.unwrap();
        admin.batch_execute("DELETE FROM orders").await.unwrap();
        let x: String = admin
            .query_one("SELECT pg_current_xact_id()::text", &[])
            .await
            .unwrap()
            .get(0);
        admin.batch_execute("COMMIT").await.unwrap();
        x
    };
    let temp = server.json(&["temp", "create", &id, "--before-xid", &xid, "--wait"]);
    assert_eq!(temp["status"], "running", "{temp}");
    let copy = connect(port_of(&temp), "admin", PASSWORD).await.unwrap();
    assert_eq!(count_rows(&copy, "orders").await, 300);
}
