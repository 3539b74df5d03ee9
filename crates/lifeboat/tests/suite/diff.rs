//! `lifeboat diff` between two running instances, through the server.

use serde_json::Value;

use super::harness::*;

#[tokio::test]
async fn diff_reports_rows_only_on_one_side_and_changed_rows() {
    let server = TestServer::start();
    let a = server.create_master("source");
    let b = server.create_master("target");
    let (ca, cb) = (
        connect(port_of(&a), "admin", PASSWORD).await.unwrap(),
        connect(port_of(&b), "admin", PASSWORD).await.unwrap(),
    );
    let setup = "CREATE TABLE orders (id int PRIMARY KEY, item text, price numeric);
                 INSERT INTO orders SELECT g, 'item ' || g, g FROM generate_series(1, 2000) g;";
    ca.batch_execute(setup).await.unwrap();
    cb.batch_execute(setup).await.unwrap();
    // The target lost 5 rows, changed 2, and got 1 new.
    cb.batch_execute(
        "DELETE FROM orders WHERE id IN (3, 500, 999, 1500, 2000);
         UPDATE orders SET price = -1 WHERE id IN (10, 20);
         INSERT INTO orders VALUES (5000, 'new', 1);",
    )
    .await
    .unwrap();
    let (ia, ib) = (id_of(&a), id_of(&b));

    // The API's report keeps up to `limit` rows per table.
    let body = serde_json::json!({
        "source": {"instance": ia}, "target": {"instance": ib},
        "tables": ["public.orders"], "limit": 4,
    });
    let (status, report) = server.http("POST", "/api/v1/diff", Some(&server.token()), Some(body));
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["tables"][0]["rows"].as_array().unwrap().len(), 4);
    assert_eq!(report["tables"][0]["rows_truncated"], true);
    assert_eq!(report["tables"][0]["only_in_source"], 5);
    // --output json streams: one line per row, then the table, then the report.
    let out = server.cli(&[
        "diff",
        "--source",
        &ia,
        "--target",
        &ib,
        "--table",
        "public.orders",
        "--output",
        "json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let rows: Vec<&Value> = lines.iter().filter_map(|l| l.get("row")).collect();
    assert_eq!(rows.len(), 8);
    let kinds = |k: &str| rows.iter().filter(|r| r["kind"] == k).count();
    assert_eq!(
        (
            kinds("only_in_source"),
            kinds("only_in_target"),
            kinds("changed")
        ),
        (5, 1, 2)
    );
    let changed = rows.iter().find(|r| r["kind"] == "changed").unwrap();
    assert_eq!(changed["changed_columns"], serde_json::json!(["price"]));
    let last = lines.last().unwrap();
    let t = &last["report"]["tables"][0];
    assert_eq!(
        (
            t["only_in_source"].as_u64(),
            t["only_in_target"].as_u64(),
            t["changed"].as_u64()
        ),
        (Some(5), Some(1), Some(2))
    );
    assert_eq!(t["identical"], false);

    // Human output: a summary line and the rows.
    let human = server.cli(&[
        "diff", "--source", &ia, "--target", &ib, "--table", "orders", "--limit", "3",
    ]);
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(
        text.contains("public.orders: 5 rows only in source, 1 only in target, 2 changed"),
        "{text}"
    );
    assert!(text.contains("more rows differ"), "{text}");

    // Identical tables say so; the diff wrote nothing anywhere.
    let same = server.cli(&[
        "diff",
        "--source",
        &ia,
        "--target",
        &ia,
        "--table",
        "public.orders",
    ]);
    assert!(String::from_utf8_lossy(&same.stdout).contains("public.orders: identical"));
    let n = count_rows(&cb, "orders").await;
    assert_eq!(n, 1996);
}

#[tokio::test]
async fn diff_errors_name_what_is_wrong() {
    let server = TestServer::start();
    let a = server.create_master("source");
    let ia = id_of(&a);
    let err = server.fails(&[
        "diff",
        "--source",
        &ia,
        "--target",
        "pg-zzzzzz",
        "--table",
        "public.t",
    ]);
    assert!(
        err.contains("target") && err.contains("pg-zzzzzz not found"),
        "{err}"
    );
    let err = server.fails(&[
        "diff",
        "--source",
        &ia,
        "--target",
        &ia,
        "--table",
        "public.nope",
    ]);
    assert!(
        err.contains("nope") && err.contains("does not exist"),
        "{err}"
    );
    let err = server.fails(&["diff", "--source", &ia, "--target", &ia]);
    assert!(err.contains("no table to compare"), "{err}");
    let bad = server.tmp.path().join("bad-pw");
    write_file(&bad, b"wrong-password\n");
    let err = server.fails(&[
        "diff",
        "--source",
        &ia,
        "--target",
        &ia,
        "--table",
        "public.t",
        "--source-account",
        "admin",
        "--source-password-file",
        bad.to_str().unwrap(),
    ]);
    assert!(
        err.contains("cannot connect to the source instance")
            && err.contains("password authentication failed"),
        "{err}"
    );
}
