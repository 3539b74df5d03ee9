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
    // A refused password is the user's mistake, named with the account (403).
    assert!(
        err.contains(&format!(
            "the source instance {ia} refused the account admin"
        )) && err.contains("password authentication failed"),
        "{err}"
    );
}

/// One column type and the values of its rows, as SQL literals.
const CASES: &[(&str, &[&str])] = &[
    (
        "numeric",
        &[
            "1000/7.0",
            "'0.00000000000000000001'",
            "'123456789012345678901234567890.123456789'",
            "'1.00'",
            "'-0.5'",
            "'NaN'",
            "'Infinity'",
            "'-Infinity'",
        ],
    ),
    (
        "float8",
        &[
            "'-0'",
            "0.1",
            "1e-300",
            "'NaN'",
            "'Infinity'",
            "'-Infinity'",
        ],
    ),
    ("real", &["'-0'", "3.4e38", "0.1"]),
    (
        "bigint",
        &[
            "9223372036854775807",
            "-9223372036854775808",
            "9007199254740993",
        ],
    ),
    (
        "timestamptz",
        &["'2026-11-24 09:41:59.123456+09'", "'infinity'"],
    ),
    ("timestamp", &["'2026-11-24 09:41:59.5'"]),
    ("bytea", &["'\\x00ff10'", "''"]),
    ("int[]", &["'{1,NULL,3}'", "'{}'"]),
    ("numeric[]", &["'{142.8571428571428571,NaN}'"]),
    ("text", &["E'tab\\there \"quoted\" ☃'"]),
];

/// `"v":<what to_json wrote>` for every row of every case table, asked of PostgreSQL.
async fn expected_values(client: &tokio_postgres::Client) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (i, _) in CASES.iter().enumerate() {
        for row in client
            .query(
                &format!("SELECT id, to_json(v)::text FROM v{i} ORDER BY id"),
                &[],
            )
            .await
            .unwrap()
        {
            let (id, v): (i32, String) = (row.get(0), row.get(1));
            out.push((format!("v{i} row {id}"), format!("\"v\":{v}")));
        }
    }
    out
}

#[tokio::test]
async fn values_reach_every_surface_exactly_as_postgres_wrote_them() {
    let server = TestServer::start();
    let a = server.create_master("source");
    let b = server.create_master("target");
    let source = connect(port_of(&a), "admin", PASSWORD).await.unwrap();
    let target = connect(port_of(&b), "admin", PASSWORD).await.unwrap();
    let mut tables = Vec::new();
    for (i, (ty, values)) in CASES.iter().enumerate() {
        let create = format!("CREATE TABLE v{i} (id int PRIMARY KEY, v {ty});");
        source.batch_execute(&create).await.unwrap();
        target.batch_execute(&create).await.unwrap();
        for (id, v) in values.iter().enumerate() {
            source
                .batch_execute(&format!("INSERT INTO v{i} VALUES ({id}, {v})"))
                .await
                .unwrap();
        }
        tables.push(format!("v{i}"));
    }
    let expected = expected_values(&source).await;
    // What PostgreSQL writes, which a double would not hold.
    for exact in [
        "\"v\":142.8571428571428571",
        "\"v\":0.00000000000000000001",
        "\"v\":123456789012345678901234567890.123456789",
        "\"v\":1.00",
        "\"v\":\"NaN\"",
        "\"v\":\"-Infinity\"",
        "\"v\":-0",
        "\"v\":9223372036854775807",
        "\"v\":9007199254740993",
        "\"v\":\"2026-11-24T00:41:59.123456+00:00\"",
        "\"v\":\"\\\\x00ff10\"",
        "\"v\":[1,null,3]",
    ] {
        assert!(
            expected.iter().any(|(_, e)| e == exact),
            "PostgreSQL did not write {exact}: {expected:?}"
        );
    }
    let (ia, ib) = (id_of(&a), id_of(&b));
    let check = |surface: &str, text: &str| {
        for (what, value) in &expected {
            assert!(
                text.contains(value.as_str()),
                "{surface}: {what} is not {value} in:\n{text}"
            );
        }
    };

    // The API's JSON report.
    let body = serde_json::json!({
        "source": {"instance": ia}, "target": {"instance": ib}, "tables": tables,
    });
    let (status, report) = server.http_text(
        "POST",
        "/api/v1/diff",
        Some(&server.token()),
        Some(body.clone()),
    );
    assert_eq!(status, 200, "{report}");
    check("the API's report", &report);
    // The API's stream, and `lifeboat diff --output json`, which passes it on.
    let (status, stream) = server.http_text(
        "POST",
        "/api/v1/diff?format=ndjson",
        Some(&server.token()),
        Some(body),
    );
    assert_eq!(status, 200, "{stream}");
    check("the API's stream", &stream);
    let mut args = vec!["diff", "--source", &ia, "--target", &ib];
    for t in &tables {
        args.extend(["--table", t.as_str()]);
    }
    let out = server.cli(&[args.as_slice(), &["--output", "json"]].concat());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    check(
        "lifeboat diff --output json",
        &String::from_utf8_lossy(&out.stdout),
    );
    // The CLI's table.
    let out = server.cli(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    check("lifeboat diff", &String::from_utf8_lossy(&out.stdout));

    // The console's diff page, where each value shows as column=value.
    let jar = server.tmp.path().join("cookies");
    let csrf = console_session(&server, &jar);
    let mut form = vec![
        format!("csrf={csrf}"),
        format!("source={ia}"),
        format!("target={ib}"),
        "database=postgres".to_string(),
    ];
    form.extend(tables.iter().map(|t| format!("table={t}")));
    let (status, page) = curl(&server, &jar, &["-d", &form.join("&"), "URL/console/diff"]);
    assert_eq!(status, 200, "{page}");
    for (what, value) in &expected {
        let shown = value
            .replacen("\"v\":", "v=", 1)
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;");
        assert!(page.contains(&shown), "the console: {what} is not {shown}");
    }
}

#[tokio::test]
async fn a_database_that_does_not_exist_or_a_wrong_password_is_the_users_mistake() {
    let server = TestServer::start();
    let a = server.create_master("shop");
    let id = id_of(&a);
    let token = server.token();
    let diff = |body: Value| server.http("POST", "/api/v1/diff", Some(&token), Some(body));

    let (status, b) = diff(serde_json::json!({
        "source": {"instance": id}, "target": {"instance": id},
        "database": "nosuch", "tables": ["orders"],
    }));
    assert_eq!(
        (status, b["code"].as_str()),
        (404, Some("not_found")),
        "{b}"
    );
    assert_eq!(
        b["message"],
        format!("database 'nosuch' does not exist on the source instance {id}")
    );

    for (account, password) in [("admin", "wrong password"), ("nobody", PASSWORD)] {
        let (status, b) = diff(serde_json::json!({
            "source": {"instance": id, "account": account, "password": password},
            "target": {"instance": id}, "tables": ["orders"],
        }));
        assert_eq!(
            (status, b["code"].as_str()),
            (403, Some("authentication_failed")),
            "{b}"
        );
        assert!(
            b["message"].as_str().unwrap().starts_with(&format!(
                "the source instance {id} refused the account {account}"
            )),
            "{b}"
        );
        assert!(
            b["hint"]
                .as_str()
                .unwrap()
                .contains("--source-password-file"),
            "{b}"
        );
    }
}
