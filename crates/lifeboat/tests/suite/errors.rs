//! Bad input and a hostile environment: each gets a clear error with the right status,
//! and nothing is left behind.

use serde_json::json;

use super::harness::*;

#[tokio::test]
async fn api_requires_the_token_but_healthz_does_not() {
    let server = TestServer::start();
    let (status, body) = server.http("GET", "/healthz", None, None);
    assert_eq!((status, body), (200, serde_json::Value::Null));
    let (status, body) = server.http("GET", "/api/v1/instances", None, None);
    assert_eq!(status, 401);
    assert_eq!(body["code"], "unauthorized");
    let (status, body) = server.http("GET", "/api/v1/instances", Some("wrong"), None);
    assert_eq!(status, 401);
    assert_eq!(body["message"], "the API token is wrong");
    let (status, _) = server.http("GET", "/api/v1/openapi.json", None, None);
    assert_eq!(status, 401);
    let (status, _) = server.http("GET", "/api/v1/instances", Some(&server.token()), None);
    assert_eq!(status, 200);

    let out = server.cli(&["--token", "wrong", "instance", "list"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).starts_with("error: the API token is wrong; hint:")
    );
}

#[tokio::test]
async fn bad_requests_get_json_errors_with_hints() {
    let server = TestServer::start();
    let token = server.token();
    let t = Some(token.as_str());
    let create = |body| server.http("POST", "/api/v1/instances", t, Some(body));

    let (s, b) = create(json!({"name": "2bad", "account": "admin", "password": PASSWORD}));
    assert_eq!((s, b["code"].as_str()), (400, Some("invalid_argument")));
    assert!(
        b["message"]
            .as_str()
            .unwrap()
            .contains("invalid instance name '2bad'")
    );
    assert!(!b["hint"].as_str().unwrap().is_empty());
    let (s, b) =
        create(json!({"name": "shop", "account": "x\"; DROP ROLE y; --", "password": PASSWORD}));
    assert_eq!(s, 400, "{b}");
    let (s, b) = create(json!({"name": "shop", "account": "admin", "password": "short"}));
    assert_eq!(s, 400, "{b}");
    assert!(b["message"].as_str().unwrap().contains("shorter than 8"));
    let (s, b) =
        create(json!({"name": "shop", "account": "admin", "password": PASSWORD, "region": "mars"}));
    assert_eq!(s, 400, "{b}");
    assert!(
        b["message"]
            .as_str()
            .unwrap()
            .contains("unknown region 'mars'")
    );
    let (s, b) = create(json!({"name": "shop"}));
    assert_eq!(
        (s, b["code"].as_str()),
        (400, Some("invalid_argument")),
        "{b}"
    );
    let (s, b) = server.http("GET", "/api/v1/instances/pg-zzzzzz", t, None);
    assert_eq!((s, b["code"].as_str()), (404, Some("not_found")));
    assert_eq!(b["message"], "instance pg-zzzzzz not found");
    let (s, _) = server.http("GET", "/api/v1/nothing-here", t, None);
    assert_eq!(s, 404);
    // Nothing was created by any of these.
    assert!(server.instance_dirs().is_empty());

    let inst = server.create_master("shop");
    let (s, b) = create(json!({"name": "shop", "account": "admin", "password": PASSWORD}));
    assert_eq!(
        (s, b["code"].as_str()),
        (409, Some("duplicate_name")),
        "{b}"
    );
    let path = format!("/api/v1/instances/{}/whitelist", id_of(&inst));
    let (s, b) = server.http("POST", &path, t, Some(json!({"cidr": "300.1.1.1"})));
    assert_eq!(s, 400);
    assert!(
        b["message"]
            .as_str()
            .unwrap()
            .contains("'300.1.1.1' is not an IP address or CIDR")
    );
    assert_eq!(server.instance_dirs().len(), 1);
}

#[tokio::test]
async fn password_files_are_checked_before_anything_is_sent() {
    let server = TestServer::start();
    let empty = server.tmp.path().join("empty");
    write_file(&empty, b"");
    let err = server.fails(&[
        "instance",
        "create",
        "--name",
        "shop",
        "--account",
        "admin",
        "--password-file",
        empty.to_str().unwrap(),
    ]);
    assert!(err.contains("the password is empty"), "{err}");
    let err = server.fails(&[
        "instance",
        "create",
        "--name",
        "shop",
        "--account",
        "admin",
        "--password-file",
        "/nonexistent/pw",
    ]);
    assert!(
        err.contains("cannot read the password file /nonexistent/pw"),
        "{err}"
    );
    assert!(
        server
            .json(&["instance", "list"])
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn missing_postgres_binaries_answer_503_with_the_install_command() {
    let (a, b) = port_range(4);
    let server = TestServer::with_config(&format!(
        "[postgres]\nbin_dir = \"/nonexistent/bin\"\n[[region]]\nname = \"local\"\nports = \"{a}-{b}\"\n"
    ));
    let (s, body) = server.http(
        "POST",
        "/api/v1/instances",
        Some(&server.token()),
        Some(json!({"name": "shop", "account": "admin", "password": PASSWORD})),
    );
    assert_eq!(s, 503, "{body}");
    assert_eq!(body["code"], "postgres_binaries_missing");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("/nonexistent/bin")
    );
    assert!(
        body["hint"]
            .as_str()
            .unwrap()
            .contains("apt-get install -y postgresql")
    );
    assert!(server.instance_dirs().is_empty());
    assert!(
        server
            .json(&["instance", "list"])
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_missing_pg_waldump_is_named_before_it_is_needed() {
    // An installation with everything but pg_waldump, which the window needs.
    let (a, b) = port_range(4);
    let bins = lifeboat_postgres::testing::test_binaries();
    let dir = tempfile::Builder::new()
        .prefix("lb-bins-")
        .tempdir()
        .unwrap();
    for p in ["initdb", "pg_ctl", "postgres"] {
        std::os::unix::fs::symlink(bins.path(p), dir.path().join(p)).unwrap();
    }
    let server = TestServer::with_config(&format!(
        "[postgres]\nbin_dir = \"{}\"\n[[region]]\nname = \"local\"\nports = \"{a}-{b}\"\n",
        dir.path().display()
    ));
    let (s, body) = server.http(
        "POST",
        "/api/v1/instances",
        Some(&server.token()),
        Some(json!({"name": "shop", "account": "admin", "password": PASSWORD})),
    );
    assert_eq!(
        (s, body["code"].as_str()),
        (503, Some("postgres_binaries_missing")),
        "{body}"
    );
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("{} lacks pg_waldump", dir.path().display())),
        "{message}"
    );
    assert!(
        body["hint"]
            .as_str()
            .unwrap()
            .contains("apt-get install -y postgresql"),
        "{body}"
    );
    // Said at start too, in the server's log.
    assert!(
        server.log().contains("lacks pg_waldump"),
        "{}",
        server.log()
    );
    assert!(server.instance_dirs().is_empty());
}
