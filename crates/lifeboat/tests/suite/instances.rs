//! The instance workflow a user walks through: create, connect, show, accounts,
//! whitelist, stop/start, delete.

use super::harness::*;

#[tokio::test]
async fn create_show_connect_and_delete_a_master() {
    let server = TestServer::start();
    let inst = server.create_master("shop");
    let id = id_of(&inst);
    let port = port_of(&inst);
    assert_eq!(inst["status"], "running");
    assert_eq!(inst["kind"], "master");
    assert_eq!(inst["region"], "local");
    assert_eq!(inst["network_type"], "classic");
    // The newest major installed, when the create names none.
    let newest = lifeboat_postgres::Installations::discover(&[])
        .newest()
        .unwrap()
        .version
        .clone();
    assert_eq!(inst["engine_version"], newest.as_str(), "{inst}");
    assert_eq!(inst["whitelist"][0]["cidr"], "127.0.0.1/32");
    assert_eq!(inst["accounts"][0]["name"], "admin");
    assert_eq!(inst["accounts"][0]["privileged"], true);
    assert_eq!(
        inst["connection_string"],
        format!("host=127.0.0.1 port={port} user=admin dbname=postgres")
    );
    assert!(inst["data_size_bytes"].as_i64().unwrap() > 1_000_000);

    // The privileged account works with its password, over TCP, and the cluster has
    // data checksums and SCRAM.
    let client = connect(port, "admin", PASSWORD)
        .await
        .expect("admin connects");
    let row = client.query_one("SELECT current_setting('data_checksums'), current_setting('password_encryption'), rolsuper FROM pg_roles WHERE rolname = current_user", &[]).await.unwrap();
    assert_eq!(row.get::<_, String>(0), "on");
    assert_eq!(row.get::<_, String>(1), "scram-sha-256");
    assert!(row.get::<_, bool>(2));
    let err = connect(port, "admin", "not-the-password")
        .await
        .expect_err("wrong password refused");
    assert!(err.contains("password authentication failed"), "{err}");
    // The cluster runs as an ordinary OS user, not root.
    let owner: String = client
        .query_one("SELECT current_setting('data_directory')", &[])
        .await
        .map(|r| r.get(0))
        .unwrap();
    let uid = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&owner).unwrap());
    assert_ne!(uid, 0, "the data directory belongs to root");
    drop(client);

    // show and list, human and JSON.
    let shown = server.json(&["instance", "show", &id]);
    assert_eq!(shown["id"], id.as_str());
    let human = server.cli(&["instance", "show", &id]);
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(
        text.contains(&format!(
            "psql \"host=127.0.0.1 port={port} user=admin dbname=postgres\""
        )),
        "{text}"
    );
    assert!(!text.contains(PASSWORD));
    let list = server.json(&["instance", "list"]);
    assert_eq!(list.as_array().unwrap().len(), 1);

    // The password appears nowhere Lifeboat or PostgreSQL wrote.
    for file in [
        server.log_path(),
        server.data_dir.join("lifeboat.db"),
        server.instance_dir(&id).join("postgres.log"),
    ] {
        let bytes = std::fs::read(&file).unwrap_or_default();
        assert!(
            !bytes
                .windows(PASSWORD.len())
                .any(|w| w == PASSWORD.as_bytes()),
            "password found in {}",
            file.display()
        );
    }
    let token_mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(server.data_dir.join("api-token"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(token_mode & 0o777, 0o600);

    // delete: the cluster stops, its directory goes, its port is free again.
    let out = server.cli(&["instance", "delete", &id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!server.instance_dir(&id).exists());
    assert!(connect(port, "admin", PASSWORD).await.is_err());
    assert!(
        server
            .json(&["instance", "list"])
            .as_array()
            .unwrap()
            .is_empty()
    );
    let again = server.create_master("shop");
    assert_eq!(port_of(&again), port, "the port was not given back");
}

#[tokio::test]
async fn accounts_are_created_with_their_passwords() {
    let server = TestServer::start();
    let inst = server.create_master("shop");
    let (id, port) = (id_of(&inst), port_of(&inst));
    let pw2 = server.tmp.path().join("pw2");
    write_file(&pw2, b"another-password-2\n");
    let accounts = server.json(&[
        "account",
        "create",
        &id,
        "--account",
        "app",
        "--password-file",
        pw2.to_str().unwrap(),
    ]);
    let names: Vec<&str> = accounts
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["admin", "app"]);
    let app = connect(port, "app", "another-password-2")
        .await
        .expect("app connects");
    let is_super: bool = app
        .query_one("SELECT rolsuper FROM pg_roles WHERE rolname = 'app'", &[])
        .await
        .unwrap()
        .get(0);
    assert!(!is_super, "an additional account must not be a superuser");

    let err = server.fails(&[
        "account",
        "create",
        &id,
        "--account",
        "app",
        "--password-file",
        pw2.to_str().unwrap(),
    ]);
    assert!(
        err.contains("account 'app' already exists on instance"),
        "{err}"
    );
    let err = server.fails(&[
        "account",
        "create",
        &id,
        "--account",
        "Bad-Name",
        "--password-file",
        pw2.to_str().unwrap(),
    ]);
    assert!(err.contains("invalid account name 'Bad-Name'"), "{err}");
    let listed = server.json(&["account", "list", &id]);
    assert_eq!(listed.as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn whitelist_is_rendered_and_reloaded() {
    let server = TestServer::start();
    let inst = server.create_master("shop");
    let (id, port) = (id_of(&inst), port_of(&inst));
    let hba =
        || std::fs::read_to_string(server.instance_dir(&id).join("data/pg_hba.conf")).unwrap();

    let list = server.json(&["whitelist", "add", &id, "10.20.0.0/16"]);
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert!(hba().contains("host all all 10.20.0.0/16 scram-sha-256"));
    let err = server.fails(&["whitelist", "add", &id, "10.20.0.0/16"]);
    assert!(err.contains("already exists"), "{err}");

    // Removing 127.0.0.1/32 takes effect at once: the next TCP login is refused.
    server.json(&["whitelist", "remove", &id, "127.0.0.1"]);
    assert!(!hba().contains("127.0.0.1/32"));
    let err = connect(port, "admin", PASSWORD)
        .await
        .expect_err("refused without a whitelist entry");
    assert!(err.contains("no pg_hba.conf entry"), "{err}");
    server.json(&["whitelist", "add", &id, "127.0.0.1/32"]);
    connect(port, "admin", PASSWORD)
        .await
        .expect("allowed again");

    let shown: Vec<String> = server
        .json(&["whitelist", "list", &id])
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["cidr"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(shown, ["10.20.0.0/16", "127.0.0.1/32"]);
    let err = server.fails(&["whitelist", "remove", &id, "192.168.1.0/24"]);
    assert!(
        err.contains("whitelist entry 192.168.1.0/24") && err.contains("not found"),
        "{err}"
    );
}

#[tokio::test]
async fn stop_and_start() {
    let server = TestServer::start();
    let inst = server.create_master("shop");
    let (id, port) = (id_of(&inst), port_of(&inst));
    let client = connect(port, "admin", PASSWORD).await.unwrap();
    client.batch_execute("CREATE TABLE orders (id int primary key); INSERT INTO orders SELECT generate_series(1, 500)").await.unwrap();
    drop(client);

    let stopped = server.json(&["instance", "stop", &id]);
    assert_eq!(stopped["status"], "stopped");
    assert!(connect(port, "admin", PASSWORD).await.is_err());
    let started = server.json(&["instance", "start", &id]);
    assert_eq!(started["status"], "running");
    let client = connect(port, "admin", PASSWORD).await.unwrap();
    let n = count_rows(&client, "orders").await;
    assert_eq!(n, 500);
}

#[tokio::test]
async fn openapi_document_lists_the_routes() {
    let server = TestServer::start();
    let (status, doc) = server.http("GET", "/api/v1/openapi.json", Some(&server.token()), None);
    assert_eq!(status, 200);
    let paths = doc["paths"].as_object().expect("paths");
    for p in [
        "/api/v1/instances",
        "/api/v1/instances/{id}",
        "/api/v1/instances/{id}/stop",
        "/api/v1/instances/{id}/start",
        "/api/v1/instances/{id}/accounts",
        "/api/v1/instances/{id}/whitelist",
        "/api/v1/regions",
    ] {
        assert!(
            paths.contains_key(p),
            "{p} missing from the OpenAPI document"
        );
    }
    assert!(doc["components"]["securitySchemes"]["token"].is_object());
}

#[tokio::test]
async fn instances_belong_to_the_region_they_were_created_in() {
    let (a, b) = port_range(4);
    let (c, d) = port_range(4);
    let server = TestServer::with_config(&format!(
        "[[region]]\nname = \"local\"\nports = \"{a}-{b}\"\n[[region]]\nname = \"east\"\naddress = \"127.0.0.1\"\nports = \"{c}-{d}\"\ndata_root = \"east-root\"\n"
    ));
    let pw = server.password_file();
    let inst = server.json(&[
        "instance",
        "create",
        "--name",
        "shop-east",
        "--account",
        "admin",
        "--password-file",
        pw.to_str().unwrap(),
        "--region",
        "east",
    ]);
    assert_eq!(inst["region"], "east");
    let port = port_of(&inst);
    assert!(
        (c..=d).contains(&port),
        "port {port} is outside east's range {c}-{d}"
    );
    assert!(
        server
            .data_dir
            .join("east-root/instances")
            .join(id_of(&inst))
            .join("data/PG_VERSION")
            .exists()
    );
    connect(port, "admin", PASSWORD)
        .await
        .expect("east instance runs");
    let err = server.fails(&[
        "instance",
        "create",
        "--name",
        "x",
        "--account",
        "admin",
        "--password-file",
        pw.to_str().unwrap(),
        "--region",
        "west",
    ]);
    assert!(
        err.contains("unknown region 'west'") && err.contains("local, east"),
        "{err}"
    );
}
