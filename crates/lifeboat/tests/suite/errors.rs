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
async fn exhausted_and_taken_ports() {
    let (a, _) = port_range(2);
    // The first port of the range is taken by another program: it is skipped.
    let _squatter = std::net::TcpListener::bind(("127.0.0.1", a)).expect("bind");
    let server = TestServer::with_config(&format!(
        "[[region]]\nname = \"local\"\nports = \"{a}-{}\"\n",
        a + 1
    ));
    let inst = server.create_master("one");
    assert_eq!(port_of(&inst), a + 1);
    let err = server.fails(&[
        "instance",
        "create",
        "--name",
        "two",
        "--account",
        "admin",
        "--password-file",
        server.password_file().to_str().unwrap(),
    ]);
    assert!(err.contains("no free port left in region 'local'"), "{err}");
    assert!(err.contains("widen the region's `ports` range"), "{err}");
    assert_eq!(server.instance_dirs().len(), 1);

    // A stopped instance whose port was taken meanwhile says so when started.
    let id = id_of(&inst);
    server.json(&["instance", "stop", &id]);
    let _thief = std::net::TcpListener::bind(("127.0.0.1", a + 1)).expect("bind");
    let err = server.fails(&["instance", "start", &id]);
    assert!(
        err.contains(&format!(
            "port {} on 127.0.0.1 is already in use by another process",
            a + 1
        )),
        "{err}"
    );
}

#[test]
fn unusable_data_directory_and_config_stop_the_server_with_a_message() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("a-file");
    write_file(&file, b"x");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lifeboat"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(file.join("data"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot create the data directory") && err.contains("--data-dir"),
        "{err}"
    );

    let config = tmp.path().join("bad.toml");
    write_file(&config, b"[[region]]\nname = \"local\"\nports = \"99-1\"\n");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lifeboat"))
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(tmp.path().join("d"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invalid port range '99-1'"), "{err}");
}

#[test]
fn client_without_a_server_says_how_to_start_one() {
    let tmp = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lifeboat"))
        .args(["instance", "list", "--data-dir"])
        .arg(tmp.path())
        .env_remove("LIFEBOAT_SERVER")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no server address") && err.contains("lifeboat serve"),
        "{err}"
    );
}

#[tokio::test]
async fn a_data_directory_the_os_user_cannot_reach_is_named() {
    let server = TestServer::start();
    // Lock the OS user of the clusters out of the test's directory.
    std::fs::set_permissions(
        server.tmp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let err = server.fails(&[
        "instance",
        "create",
        "--name",
        "shop",
        "--account",
        "admin",
        "--password-file",
        server.password_file().to_str().unwrap(),
    ]);
    assert!(err.contains("OS user 'postgres' cannot write to"), "{err}");
    assert!(
        err.contains("every parent directory must be traversable"),
        "{err}"
    );
    std::fs::set_permissions(
        server.tmp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    assert!(
        server.instance_dirs().is_empty(),
        "the failed create left a directory"
    );
    assert!(
        server
            .json(&["instance", "list"])
            .as_array()
            .unwrap()
            .is_empty()
    );
}
