//! Adopting a cluster Lifeboat did not create (issue 16): the adoption check through
//! the CLI and the API, the adopted instance as users see it, what Lifeboat refuses to
//! do to it, a second adoption of the same cluster by this server or another, and
//! delete, which leaves the cluster running.

use std::path::{Path, PathBuf};
use std::process::Command;

use lifeboat_postgres::{OsUser, PgBinaries};

use super::harness::*;

/// `pg_hba.conf` of the adopted cluster: its superuser `postgres` over the socket,
/// `adm` and `dba` in over TCP, for replication too.
const HBA: &str = "local all postgres trust
host all all 127.0.0.1/32 scram-sha-256
host replication all 127.0.0.1/32 scram-sha-256
";

/// A PostgreSQL cluster made the way a distribution's package makes one, not by
/// Lifeboat: its own `initdb` (bootstrap superuser `postgres`), configuration,
/// socket directory, `pg_hba.conf` and `pg_ctl`, as the clusters' OS user.
pub struct ForeignCluster {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    bins: PgBinaries,
    user: OsUser,
    pub port: u16,
}

impl ForeignCluster {
    pub(super) fn start() -> Self {
        Self::start_on(None, "127.0.0.1", HBA)
    }

    /// A cluster listening on `listen`, its postmaster started inside network
    /// namespace `netns` when given (a host of its own), with `hba`.
    fn start_on(netns: Option<&NetNs>, listen: &str, hba: &str) -> Self {
        Self::start_with(
            lifeboat_postgres::testing::test_binaries(),
            netns,
            listen,
            hba,
        )
    }

    /// A cluster of the major `bins` runs, as [`ForeignCluster::start_on`].
    fn start_with(bins: PgBinaries, netns: Option<&NetNs>, listen: &str, hba: &str) -> Self {
        use std::os::unix::fs::PermissionsExt;
        let user = OsUser::for_clusters(None).expect("OS user for clusters");
        let tmp = tempfile::Builder::new()
            .prefix("lb-foreign-")
            .tempdir()
            .expect("temp dir");
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        let dir = tmp.path().join("main");
        std::fs::create_dir(&dir).expect("mkdir");
        user.chown(&dir).expect("chown");
        let port = lifeboat_postgres::testing::free_port();
        let run = |program: &str, args: &[&str]| {
            let out = user
                .command(&bins.path(program), &dir)
                .args(args)
                .output()
                .unwrap_or_else(|e| panic!("{program}: {e}"));
            assert!(
                out.status.success(),
                "{program} {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let data = dir.join("data");
        let data_s = data.to_str().expect("utf-8 path");
        run(
            "initdb",
            &[
                "-D",
                data_s,
                "-U",
                "postgres",
                "--auth-local=trust",
                "--no-instructions",
            ],
        );
        let conf = format!(
            "port = {port}\nlisten_addresses = '{listen}'\nunix_socket_directories = '{}'\n\
             max_slot_wal_keep_size = '1GB'\nfsync = off\n",
            dir.display()
        );
        let mut text = std::fs::read_to_string(data.join("postgresql.conf")).expect("conf");
        text.push_str(&conf);
        std::fs::write(data.join("postgresql.conf"), text).expect("conf");
        std::fs::write(data.join("pg_hba.conf"), hba).expect("hba");
        let log = dir.join("server.log");
        let log_s = log.to_str().expect("utf-8 path");
        match netns {
            None => run("pg_ctl", &["-D", data_s, "-l", log_s, "-w", "start"]),
            Some(ns) => {
                let pg_ctl = bins.path("pg_ctl");
                let out = Command::new("ip")
                    .env_clear()
                    .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
                    .env("LC_ALL", "C.UTF-8")
                    .current_dir(&dir)
                    .args(["netns", "exec", &ns.name, "runuser", "-u", &user.name, "--"])
                    .arg(&pg_ctl)
                    .args(["-D", data_s, "-l", log_s, "-w", "start"])
                    .output()
                    .expect("ip netns exec");
                assert!(
                    out.status.success(),
                    "pg_ctl start in {}: {}{}",
                    ns.name,
                    String::from_utf8_lossy(&out.stderr),
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
        }
        Self {
            _tmp: tmp,
            dir,
            bins,
            user,
            port,
        }
    }

    /// The cluster's superuser over its socket.
    pub(super) async fn connect(&self, database: &str) -> tokio_postgres::Client {
        let mut c = tokio_postgres::Config::new();
        c.host_path(&self.dir)
            .port(self.port)
            .user("postgres")
            .dbname(database);
        let (client, conn) = c.connect(tokio_postgres::NoTls).await.expect("connect");
        tokio::spawn(conn);
        client
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }
}

impl Drop for ForeignCluster {
    fn drop(&mut self) {
        let data = self.data();
        let _ = self
            .user
            .command(&self.bins.path("pg_ctl"), Path::new("/"))
            .args([
                "-D",
                data.to_str().unwrap_or_default(),
                "-m",
                "immediate",
                "stop",
            ])
            .output();
    }
}

/// A cluster started outside Lifeboat, with the accounts `adm` (REPLICATION,
/// pg_read_all_data, password `adm-pw`) and `dba` (a superuser, password
/// `dba-password`), and a table with 10 rows.
pub(super) async fn outside_cluster() -> ForeignCluster {
    let tc = ForeignCluster::start();
    set_up(&tc).await;
    tc
}

pub(super) async fn set_up(tc: &ForeignCluster) {
    let c = tc.connect("postgres").await;
    for sql in [
        "CREATE ROLE adm LOGIN REPLICATION PASSWORD 'adm-pw'",
        "GRANT pg_read_all_data TO adm",
        "CREATE ROLE dba LOGIN SUPERUSER PASSWORD 'dba-password'",
        "CREATE TABLE kept (id int PRIMARY KEY)",
        "INSERT INTO kept SELECT generate_series(1, 10)",
    ] {
        c.batch_execute(sql).await.expect("set up the cluster");
    }
}
/// A network namespace joined to this one by a veth pair: a host of its own at
/// `inner`, reached from here at `outer`. Removed on drop (the pair with it).
pub struct NetNs {
    name: String,
    host_side: String,
    inner: String,
    outer: String,
}

impl NetNs {
    fn create() -> Self {
        let pid = std::process::id();
        let n = pid % 200 + 20;
        let name = format!("lbt{pid}");
        let host_side = format!("lbh{}", pid % 100_000);
        let ns_side = format!("lbn{}", pid % 100_000);
        let (outer, inner) = (format!("10.231.{n}.1"), format!("10.231.{n}.2"));
        let ip = |args: &[&str]| {
            let out = Command::new("ip")
                .args(args)
                .output()
                .expect("ip (iproute2) is needed for the tests of a cluster on another host");
            assert!(
                out.status.success(),
                "ip {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        let _ = Command::new("ip")
            .args(["link", "del", &host_side])
            .output();
        ip(&["netns", "add", &name]);
        ip(&[
            "link", "add", &host_side, "type", "veth", "peer", "name", &ns_side,
        ]);
        ip(&["link", "set", &ns_side, "netns", &name]);
        ip(&["addr", "add", &format!("{outer}/30"), "dev", &host_side]);
        ip(&["link", "set", &host_side, "up"]);
        for args in [
            vec!["addr", "add", &format!("{inner}/30"), "dev", &ns_side],
            vec!["link", "set", &ns_side, "up"],
            vec!["link", "set", "lo", "up"],
        ] {
            let mut all = vec!["netns", "exec", name.as_str(), "ip"];
            all.extend(args.iter().copied());
            ip(&all);
        }
        Self {
            name,
            host_side,
            inner,
            outer,
        }
    }

    /// Takes the link down (`false`) or up again: no reset reaches either side.
    fn link(&self, up: bool) {
        let out = Command::new("ip")
            .args([
                "link",
                "set",
                &self.host_side,
                if up { "up" } else { "down" },
            ])
            .output()
            .expect("ip");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_side])
            .output();
    }
}

fn adopt_args<'a>(name: &'a str, port: &'a str, password_file: &'a str) -> Vec<&'a str> {
    vec![
        "instance",
        "adopt",
        "--name",
        name,
        "--host",
        "127.0.0.1",
        "--port",
        port,
        "--account",
        "adm",
        "--password-file",
        password_file,
    ]
}

/// Lifeboat's slots on the cluster.
pub(super) async fn slots(tc: &ForeignCluster) -> Vec<String> {
    tc.connect("postgres")
        .await
        .query(
            "SELECT slot_name::text FROM pg_replication_slots WHERE slot_name LIKE 'lifeboat\\_%' ORDER BY 1",
            &[],
        )
        .await
        .expect("slots")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test]
async fn adopt_a_cluster_lifeboat_did_not_create() {
    let server = TestServer::start();
    let tc = outside_cluster().await;
    let port = tc.port.to_string();
    let pw = server.tmp.path().join("adm-password");
    write_file(&pw, b"adm-pw\n");
    let pw = pw.to_str().expect("utf-8 path");
    let wrong = server.tmp.path().join("wrong-password");
    write_file(&wrong, b"not-it\n");
    let wrong = wrong.to_str().expect("utf-8 path");

    // The check alone: every item, nothing failed, nothing created on the cluster.
    let mut args = adopt_args("legacy", &port, pw);
    args.push("--check");
    let checked = server.json(&args);
    assert_eq!(checked["adoptable"], true, "{checked:#}");
    let items = checked["items"].as_array().expect("items");
    let ids: Vec<&str> = items.iter().filter_map(|i| i["id"].as_str()).collect();
    let all: Vec<&str> = lifeboat_postgres::adoption::ITEMS
        .iter()
        .map(|(id, _)| *id)
        .collect();
    assert_eq!(ids, all);
    assert!(items.iter().all(|i| i["status"] != "failed"), "{checked:#}");
    assert_eq!(slots(&tc).await, Vec::<String>::new());

    // A wrong password: the check says so, exit status 1; adopt is a 422 naming the
    // item, and nothing is recorded.
    let mut args = adopt_args("legacy", &port, wrong);
    args.push("--check");
    let out = server.cli(&args);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("password authentication failed"), "{text}");
    let err = server.fails(&adopt_args("legacy", &port, wrong));
    assert!(
        err.contains(&format!(
            "the cluster at 127.0.0.1:{port} cannot be adopted: Reachable and authenticated: could not log in as adm@127.0.0.1:{port}"
        )),
        "{err}"
    );
    let (status, body) = server.http(
        "POST",
        "/api/v1/instances/adopt",
        Some(&server.token()),
        Some(serde_json::json!({
            "name": "legacy", "host": "127.0.0.1", "port": tc.port,
            "account": "adm", "password": "not-it"
        })),
    );
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["code"], "adoption_check_failed");
    let listed = server.json(&["instance", "list"]);
    assert_eq!(listed.as_array().map(Vec::len), Some(0), "{listed}");

    // Bad input is a 400 naming the field.
    let (status, body) = server.http(
        "POST",
        "/api/v1/instances/adopt",
        Some(&server.token()),
        Some(serde_json::json!({
            "name": "legacy", "host": "bad/host", "port": tc.port,
            "account": "adm", "password": "adm-pw"
        })),
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("host 'bad/host'")),
        "{body}"
    );

    // Adopted: a master managed outside Lifeboat, at the cluster's host and port,
    // with Lifeboat's slot on the cluster, named for this server and the instance.
    let inst = server.json(&adopt_args("legacy", &port, pw));
    let id = id_of(&inst);
    assert_eq!(inst["kind"], "master");
    assert_eq!(inst["managed"], "external");
    assert_eq!(inst["status"], "running", "{inst:#}");
    assert_eq!(inst["address"], "127.0.0.1");
    assert_eq!(inst["port"].as_u64(), Some(u64::from(tc.port)));
    assert_eq!(inst["whitelist"].as_array().map(Vec::len), Some(0));
    let version: String = tc
        .connect("postgres")
        .await
        .query_one(
            "SELECT (current_setting('server_version_num')::int / 10000)::text || '.' || \
                    (current_setting('server_version_num')::int % 10000)::text",
            &[],
        )
        .await
        .expect("version")
        .get(0);
    assert_eq!(inst["engine_version"], version.as_str());
    let ours = slots(&tc).await;
    assert_eq!(ours.len(), 1, "{ours:?}");
    assert!(
        ours[0].starts_with("lifeboat_lb_") && ours[0].ends_with(&id.replace('-', "_")),
        "{ours:?}"
    );
    let shown = String::from_utf8_lossy(&server.cli(&["instance", "show", &id]).stdout).to_string();
    assert!(
        shown.contains("managed") && shown.contains("external"),
        "{shown}"
    );

    // The console says who manages it, and offers no whitelist or account forms.
    let jar = server.tmp.path().join("cookies");
    console_session(&server, &jar);
    let (status, page) = curl(&server, &jar, &[&format!("URL/console/instances/{id}")]);
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("externally: an adopted cluster"), "{page}");
    for (tab, says) in [
        ("whitelist", "who may connect is set in its own pg_hba.conf"),
        (
            "accounts",
            "its roles are created and changed where it runs",
        ),
    ] {
        let (status, page) = curl(
            &server,
            &jar,
            &[&format!("URL/console/instances/{id}/{tab}")],
        );
        assert_eq!(status, 200, "{page}");
        assert!(page.contains(says), "{tab}: {page}");
        assert!(!page.contains("<form class=\"card\""), "{tab}: {page}");
    }

    // Lifeboat does not run it: start, stop, whitelist and accounts are refused, and
    // the cluster keeps running.
    for args in [
        vec!["instance", "stop", id.as_str()],
        vec!["instance", "start", id.as_str()],
        vec!["whitelist", "add", id.as_str(), "10.0.0.5"],
    ] {
        let err = server.fails(&args);
        assert!(
            err.contains(&format!(
                "instance {id} is adopted: its cluster at 127.0.0.1:{port} runs outside Lifeboat"
            )),
            "{args:?}: {err}"
        );
    }
    let (status, body) = server.http(
        "POST",
        &format!("/api/v1/instances/{id}/accounts"),
        Some(&server.token()),
        Some(serde_json::json!({"account": "reader", "password": "long-enough-pw"})),
    );
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["code"], "managed_externally");
    assert_eq!(count_rows(&tc.connect("postgres").await, "kept").await, 10);

    // The same cluster again, under another name: refused, naming the instance.
    let err = server.fails(&adopt_args("again", &port, pw));
    assert!(
        err.contains(&format!("is already adopted as instance {id} (legacy)")),
        "{err}"
    );

    // Another Lifeboat server: its check fails on this server's slot, and so does
    // its adoption.
    let other = TestServer::start();
    let pw2 = other.tmp.path().join("adm-password");
    write_file(&pw2, b"adm-pw\n");
    let pw2 = pw2.to_str().expect("utf-8 path");
    let mut args = adopt_args("legacy", &port, pw2);
    args.push("--check");
    let out = other.cli(&[args.as_slice(), &["--output", "json"]].concat());
    assert_eq!(out.status.code(), Some(1));
    let checked: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let item = checked["items"]
        .as_array()
        .and_then(|a| a.iter().find(|i| i["id"] == "lifeboat_slot"))
        .cloned()
        .expect("lifeboat_slot item");
    assert_eq!(item["status"], "failed", "{item:#}");
    assert!(
        item["detail"]
            .as_str()
            .is_some_and(|d| d.contains(&ours[0])),
        "{item:#}"
    );
    let err = other.fails(&adopt_args("legacy", &port, pw2));
    assert!(
        err.contains("No other Lifeboat server protects the cluster"),
        "{err}"
    );

    // A restart leaves it adopted and its cluster alone.
    let mut server = server;
    server.kill();
    server.spawn();
    let shown = server.json(&["instance", "show", &id]);
    assert_eq!(shown["status"], "running", "{shown:#}");
    assert_eq!(shown["managed"], "external");
    assert_eq!(count_rows(&tc.connect("postgres").await, "kept").await, 10);

    // The first base backup, taken over the replication protocol with the WAL it
    // needs, is restorable: a temporary instance at the end of the window has the
    // cluster's rows and its accounts.
    server.wait_first_backup(&id).await;
    let list = server.json(&["backup", "list", &id]);
    let backup = &list["backups"][0];
    assert!(
        backup["logical_size"]
            .as_u64()
            .is_some_and(|n| n > 1_000_000),
        "{list:#}"
    );
    let window = server.json(&["backup", "window", &id]);
    let latest = window["latest"].as_str().expect("a window").to_string();
    // The mistake, after the backup: streamed, found in the WAL as an event, and a
    // temporary instance restored to just before it.
    let master = tc.connect("postgres").await;
    let mistake: chrono::DateTime<chrono::Utc> = master
        .query_one(
            "WITH d AS (DELETE FROM kept WHERE id > 5 RETURNING 1) SELECT now() FROM d LIMIT 1",
            &[],
        )
        .await
        .expect("the mistake")
        .get(0);
    let window = server.wait_window_reaches(&id, mistake).await;
    let time = |v: &serde_json::Value| {
        chrono::DateTime::parse_from_rfc3339(v.as_str().expect("a time")).expect("RFC 3339")
    };
    assert!(
        time(&window["latest"]) >= time(&serde_json::Value::String(latest.clone())),
        "{window:#}"
    );
    let list = server.json(&[
        "backup",
        "events",
        &id,
        "--table",
        "public.kept",
        "--min-rows",
        "1",
    ]);
    let event = list["events"][0].clone();
    assert_eq!(
        (event["kind"].as_str(), event["rows"].as_u64()),
        (Some("delete"), Some(5)),
        "{list:#}"
    );
    let before = event["id"].as_str().expect("event id").to_string();
    let temp = server.json(&["temp", "create", &id, "--before", &before, "--wait"]);
    let temp_id = id_of(&temp);
    assert_eq!(temp["status"], "running", "{temp:#}");
    assert_eq!(
        temp["restore_target"]["kind"], "before_transaction",
        "{temp:#}"
    );
    assert_eq!(temp["managed"], "lifeboat");
    let copy = connect(port_of(&temp), "adm", "adm-pw")
        .await
        .expect("the adopted cluster's account logs in to the temporary instance");
    assert_eq!(count_rows(&copy, "kept").await, 10);
    drop(copy);

    // Diff against the adopted master: the 5 deleted rows.
    let out = server.cli(&[
        "diff",
        "--source",
        &temp_id,
        "--target",
        &id,
        "--table",
        "public.kept",
        "--output",
        "json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let missing: Vec<i64> = lines
        .iter()
        .filter_map(|l| l.get("row"))
        .filter(|r| r["kind"] == "only_in_source")
        .filter_map(|r| r["key"]["id"].as_i64())
        .collect();
    assert_eq!(missing, [6, 7, 8, 9, 10], "{lines:#?}");

    // A migration task back into the adopted master: authorize tries the login (no
    // whitelist to change), then the rows come back under a new name.
    let dba = server.tmp.path().join("dba-password");
    write_file(&dba, b"dba-password\n");
    let dba = dba.to_str().expect("utf-8 path");
    server.json(&[
        "migration",
        "create",
        "--source",
        &temp_id,
        "--target",
        &id,
        "--name",
        "back",
        "--object",
        "postgres.public.kept=kept_restored",
        "--source-account",
        "dba",
        "--source-password-file",
        dba,
        "--target-account",
        "dba",
        "--target-password-file",
        dba,
    ]);
    // A target login the cluster refuses: authorize says so, and what to allow
    // where the cluster runs; nothing is added to any whitelist.
    let wrong_dba = server.tmp.path().join("wrong-dba-password");
    write_file(&wrong_dba, b"not-the-password\n");
    server.json(&[
        "migration",
        "update",
        "back",
        "--target-password-file",
        wrong_dba.to_str().expect("utf-8 path"),
    ]);
    let err = server.fails(&["migration", "authorize", "back"]);
    assert!(
        err.contains(&format!(
            "cannot log in to the adopted target instance {id} at 127.0.0.1:{port} as dba"
        )) && err.contains("its pg_hba.conf is managed where the cluster runs"),
        "{err}"
    );
    server.json(&["migration", "update", "back", "--target-password-file", dba]);
    server.json(&["migration", "authorize", "back"]);
    let checked = server.json(&["migration", "precheck", "back"]);
    assert_eq!(checked["state"], "precheck_passed", "{checked:#}");
    let done = server.json(&["migration", "start", "back", "--wait"]);
    assert_eq!(done["state"], "completed", "{done:#}");
    assert_eq!(count_rows(&master, "kept_restored").await, 10);
    assert_eq!(count_rows(&master, "kept").await, 5);
    server.json(&["temp", "delete", &temp_id]);

    // Delete stops protecting it: the slot goes, the cluster runs on.
    server.json(&["instance", "delete", &id]);
    assert_eq!(slots(&tc).await, Vec::<String>::new());
    assert_eq!(count_rows(&tc.connect("postgres").await, "kept").await, 5);
    let listed = server.json(&["instance", "list"]);
    assert_eq!(listed.as_array().map(Vec::len), Some(0), "{listed}");
}

/// Adopts `tc` into `server` as `name`; returns its id once its first backup is done.
pub(super) async fn adopted(server: &TestServer, tc: &ForeignCluster, name: &str) -> String {
    let pw = server.tmp.path().join("adm-password");
    write_file(&pw, b"adm-pw\n");
    let port = tc.port.to_string();
    let inst = server.json(&adopt_args(name, &port, pw.to_str().expect("utf-8 path")));
    let id = id_of(&inst);
    server.wait_first_backup(&id).await;
    id
}

/// The WAL an adopted cluster writes reaches the repository through Lifeboat's slot,
/// with no WAL switch by Lifeboat (the cluster's own user switches segments here);
/// a killed Lifeboat resumes from the slot with no gap, and a temporary instance at
/// the last commit has every row.
#[tokio::test]
async fn wal_streams_through_the_slot_and_resumes_after_a_kill() {
    let mut server = TestServer::start();
    let tc = outside_cluster().await;
    let id = adopted(&server, &tc, "streamed").await;
    let master = tc.connect("postgres").await;
    master
        .batch_execute("CREATE TABLE orders (id int PRIMARY KEY); INSERT INTO orders SELECT generate_series(1, 100)")
        .await
        .expect("rows");
    let t1 = now_and_switch(&master).await;
    server.wait_window_reaches(&id, t1).await;
    let shown = server.json(&["instance", "show", &id]);
    assert!(shown["streaming"]["failing_since"].is_null(), "{shown:#}");
    assert!(
        shown["streaming"]["last_stored_wal"].is_string(),
        "{shown:#}"
    );

    // Killed: its receiver dies with it, and what the cluster writes meanwhile waits
    // in the slot.
    server.kill();
    let spool = server.data_dir.join("streams").join(&id);
    server
        .wait_for("the receiver to end with the server", || {
            let out = Command::new("pgrep")
                .args(["-f", spool.to_str().expect("utf-8 path")])
                .output()
                .expect("pgrep");
            out.stdout.is_empty().then_some(())
        })
        .await;
    master
        .batch_execute("INSERT INTO orders SELECT generate_series(101, 250)")
        .await
        .expect("rows");
    let t2 = now_and_switch(&master).await;
    server.spawn();
    server.wait_window_reaches(&id, t2).await;
    let verify = server.json(&["backup", "verify", &id]);
    assert_eq!(verify["ok"], true, "{verify:#}");

    // No WAL switch at all: what the stream has received of the segment in progress
    // is stored, so the window reaches the last commit.
    let tx = master
        .query_one(
            "WITH i AS (INSERT INTO orders SELECT generate_series(251, 300) RETURNING 1) \
             SELECT now() FROM i LIMIT 1",
            &[],
        )
        .await
        .expect("rows");
    let t3: chrono::DateTime<chrono::Utc> = tx.get(0);
    let window = server.wait_window_reaches(&id, t3).await;
    let at = window["latest"].as_str().expect("latest").to_string();
    let temp = server.json(&["temp", "create", &id, "--at", &at, "--wait"]);
    let copy = connect(port_of(&temp), "adm", "adm-pw")
        .await
        .expect("adm logs in to the temporary instance");
    assert_eq!(count_rows(&copy, "orders").await, 300);
    drop(copy);
    server.json(&["temp", "delete", &id_of(&temp)]);

    // The cluster's owners change the account's password: once the receiver logs in
    // again, streaming fails with the cluster's words, until `instance update` gives
    // Lifeboat the new one (a wrong one is refused, and nothing changes).
    master
        .batch_execute("ALTER ROLE adm PASSWORD 'adm-pw-2'")
        .await
        .expect("new password");
    master
        .execute(
            "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots \
             WHERE slot_name LIKE 'lifeboat\\_%' AND active",
            &[],
        )
        .await
        .expect("end the receiver's connection");
    let shown = server
        .wait_for("streaming to fail on the old password", || {
            let v = server.json(&["instance", "show", &id]);
            v["streaming"]["failure"]
                .as_str()
                .is_some_and(|f| f.contains("password authentication failed"))
                .then_some(v)
        })
        .await;
    assert!(shown["streaming"]["failing_since"].is_string(), "{shown:#}");
    let wrong = server.tmp.path().join("wrong-password");
    write_file(&wrong, b"not-it\n");
    let err = server.fails(&[
        "instance",
        "update",
        &id,
        "--password-file",
        wrong.to_str().expect("utf-8 path"),
    ]);
    assert!(
        err.contains(&format!(
            "cannot log in to the cluster at 127.0.0.1:{} as adm",
            tc.port
        )),
        "{err}"
    );
    let new_pw = server.tmp.path().join("adm-password-2");
    write_file(&new_pw, b"adm-pw-2\n");
    server.json(&[
        "instance",
        "update",
        &id,
        "--password-file",
        new_pw.to_str().expect("utf-8 path"),
    ]);
    let t4: chrono::DateTime<chrono::Utc> = master
        .query_one(
            "WITH i AS (INSERT INTO orders SELECT generate_series(1001, 1010) RETURNING 1) \
             SELECT now() FROM i LIMIT 1",
            &[],
        )
        .await
        .expect("rows")
        .get(0);
    server.wait_window_reaches(&id, t4).await;
    server
        .wait_for("streaming to be healthy with the new password", || {
            let v = server.json(&["instance", "show", &id]);
            v["streaming"]["failing_since"].is_null().then_some(())
        })
        .await;

    // While Lifeboat is down, someone drops its slot, and the cluster removes the WAL
    // it no longer keeps for anyone: that WAL is lost to Lifeboat. At start the slot
    // is made again, the window names the gap, and a new base backup starts
    // protection again.
    let slot = slots(&tc).await.pop().expect("Lifeboat's slot");
    server.kill();
    let dropped = async {
        loop {
            if master
                .execute("SELECT pg_drop_replication_slot($1)", &[&slot])
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(60), dropped)
        .await
        .expect("the slot is dropped once its receiver is gone");
    master
        .batch_execute("INSERT INTO orders SELECT generate_series(301, 400)")
        .await
        .expect("rows");
    for _ in 0..3 {
        switch_wal(&master).await;
    }
    master
        .batch_execute("CHECKPOINT")
        .await
        .expect("checkpoint");
    server.spawn();
    server
        .wait_for("a new base backup after the slot was dropped", || {
            let list = server.json(&["backup", "list", &id]);
            (list["backups"].as_array().map(Vec::len) >= Some(2)).then_some(())
        })
        .await;
    assert_eq!(slots(&tc).await, vec![slot.clone()]);
    // The new base backup starts a second window; the first one ends before the gap.
    // Rows written after it stream into the second one, with no WAL switch.
    let t5: chrono::DateTime<chrono::Utc> = master
        .query_one(
            "WITH i AS (INSERT INTO orders SELECT generate_series(401, 500) RETURNING 1) \
             SELECT now() FROM i LIMIT 1",
            &[],
        )
        .await
        .expect("rows")
        .get(0);
    let window = server.wait_window_reaches(&id, t5).await;
    let windows = window["windows"].as_array().expect("windows").clone();
    assert_eq!(windows.len(), 2, "{window:#}");
    let time = |v: &serde_json::Value| {
        chrono::DateTime::parse_from_rfc3339(v.as_str().expect("a time")).expect("time")
    };
    assert!(time(&windows[0]["latest"]) >= t4, "{window:#}");
    assert!(window["gap"].is_null(), "{window:#}");
    assert_eq!(window["earliest"], windows[1]["earliest"], "{window:#}");
    assert!(time(&windows[1]["earliest"]) > time(&windows[0]["latest"]));
    let backups = server.json(&["backup", "list", &id]);
    assert_eq!(
        windows[1]["backups"][0], backups["backups"][1]["id"],
        "the new backup starts the second window: {backups:#}"
    );
    // The gap is for good: the cluster no longer has that segment.
    let gap = windows[0]["gap"].as_str().expect("gap").to_string();
    assert!(
        window["note"]
            .as_str()
            .is_some_and(|n| n.contains(&format!("WAL segment {gap} is missing"))),
        "{window:#}"
    );
    let still: i64 = master
        .query_one(
            "SELECT count(*) FROM pg_ls_waldir() WHERE name = $1",
            &[&gap],
        )
        .await
        .expect("pg_wal")
        .get(0);
    assert_eq!(still, 0, "{gap} is still on the cluster");

    // Both windows restore; a point between them is refused, naming both.
    let lost = time(&windows[0]["latest"])
        + (time(&windows[1]["earliest"]) - time(&windows[0]["latest"])) / 2;
    let err = server.fails(&["temp", "create", &id, "--at", &lost.to_rfc3339()]);
    assert!(
        err.contains("is outside the restorable windows of") && err.contains(&gap),
        "{err}"
    );
    for (at, rows) in [(&windows[0]["latest"], 310), (&window["latest"], 510)] {
        let at = at.as_str().expect("a time");
        let temp = server.json(&["temp", "create", &id, "--at", at, "--wait"]);
        let copy = connect(port_of(&temp), "adm", "adm-pw-2")
            .await
            .expect("adm logs in to the temporary instance");
        assert_eq!(count_rows(&copy, "orders").await, rows, "at {at}");
        drop(copy);
        server.json(&["temp", "delete", &id_of(&temp)]);
    }
    let events = server.json(&["backup", "events", &id]);
    assert_eq!(
        events["scanned"]["gaps"],
        serde_json::json!([gap]),
        "{events:#}"
    );
    assert!(
        server.log().contains(&format!(
            "Lifeboat's slot {slot} was dropped on the cluster"
        )),
        "{}",
        server.log()
    );

    server.json(&["instance", "delete", &id]);
    assert_eq!(slots(&tc).await, Vec::<String>::new());
}

/// While Lifeboat is down, the cluster writes more WAL than `max_slot_wal_keep_size`
/// lets the slot keep, and removes it: the slot is lost. At start Lifeboat makes the
/// slot again and takes a new base backup; the window before the loss stays
/// restorable and a second one starts after it.
#[tokio::test]
async fn wal_removed_before_it_was_streamed_ends_a_window_and_a_new_one_starts() {
    let mut server = TestServer::start();
    let tc = outside_cluster().await;
    let id = adopted(&server, &tc, "lossy").await;
    let master = tc.connect("postgres").await;
    master
        .batch_execute("ALTER SYSTEM SET max_slot_wal_keep_size = '16MB'")
        .await
        .expect("a small max_slot_wal_keep_size");
    master
        .batch_execute(
            "SELECT pg_reload_conf(); CREATE TABLE orders (id int PRIMARY KEY); \
             INSERT INTO orders SELECT generate_series(1, 100)",
        )
        .await
        .expect("rows");
    let t1 = now_and_switch(&master).await;
    server.wait_window_reaches(&id, t1).await;
    let slot = slots(&tc).await.pop().expect("Lifeboat's slot");

    server.kill();
    master
        .batch_execute("INSERT INTO orders SELECT generate_series(101, 200)")
        .await
        .expect("rows");
    // Checkpoints remove the WAL the slot is behind by more than 16 MB.
    let lost = async {
        loop {
            switch_wal(&master).await;
            master
                .batch_execute("CHECKPOINT")
                .await
                .expect("checkpoint");
            let status: Option<String> = master
                .query_one(
                    "SELECT wal_status FROM pg_replication_slots WHERE slot_name = $1",
                    &[&slot],
                )
                .await
                .expect("slot")
                .get(0);
            if status.as_deref() == Some("lost") {
                return;
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(120), lost)
        .await
        .expect("the slot is lost");

    server.spawn();
    server
        .wait_for("a new base backup after the slot lost its WAL", || {
            let list = server.json(&["backup", "list", &id]);
            (list["backups"].as_array().map(Vec::len) >= Some(2)).then_some(())
        })
        .await;
    assert!(
        server.log().contains(&format!(
            "Lifeboat's slot {slot} lost WAL the cluster removed"
        )),
        "{}",
        server.log()
    );
    let status: Option<String> = master
        .query_one(
            "SELECT wal_status FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .expect("slot")
        .get(0);
    assert_ne!(status.as_deref(), Some("lost"), "the slot is made again");

    let t2: chrono::DateTime<chrono::Utc> = master
        .query_one(
            "WITH i AS (INSERT INTO orders SELECT generate_series(201, 300) RETURNING 1) \
             SELECT now() FROM i LIMIT 1",
            &[],
        )
        .await
        .expect("rows")
        .get(0);
    let window = server.wait_window_reaches(&id, t2).await;
    let windows = window["windows"].as_array().expect("windows");
    assert_eq!(windows.len(), 2, "{window:#}");
    assert!(windows[0]["gap"].is_string(), "{window:#}");
    assert!(window["gap"].is_null(), "{window:#}");
    for (at, rows) in [(&windows[0]["latest"], 100), (&window["latest"], 300)] {
        let at = at.as_str().expect("a time");
        let temp = server.json(&["temp", "create", &id, "--at", at, "--wait"]);
        let copy = connect(port_of(&temp), "adm", "adm-pw")
            .await
            .expect("adm logs in to the temporary instance");
        assert_eq!(count_rows(&copy, "orders").await, rows, "at {at}");
        drop(copy);
        server.json(&["temp", "delete", &id_of(&temp)]);
    }
}

/// A cluster on another host (a network namespace of its own): while the link is cut,
/// streaming fails and `instance show` says since when; the cluster goes on writing;
/// once the link is back, streaming resumes from the slot and the window reaches the
/// commits made meanwhile, with no WAL switch and no gap.
#[tokio::test]
async fn a_cluster_on_another_host_cut_off_and_back_loses_nothing() {
    let ns = NetNs::create();
    let hba = format!(
        "local all postgres trust\nhost all all {0}/32 scram-sha-256\nhost replication all {0}/32 scram-sha-256\n",
        ns.outer
    );
    // Declared after `ns`, so the cluster stops before the namespace goes.
    let tc = ForeignCluster::start_on(Some(&ns), &ns.inner, &hba);
    set_up(&tc).await;
    let server = TestServer::start();
    let pw = server.tmp.path().join("adm-password");
    write_file(&pw, b"adm-pw\n");
    let port = tc.port.to_string();
    let mut args = adopt_args("remote", &port, pw.to_str().expect("utf-8 path"));
    args[5] = ns.inner.as_str();
    let inst = server.json(&args);
    let id = id_of(&inst);
    assert_eq!(inst["address"], ns.inner.as_str());
    server.wait_first_backup(&id).await;

    let master = tc.connect("postgres").await;
    master
        .batch_execute("CREATE TABLE orders (id int PRIMARY KEY)")
        .await
        .expect("table");
    // The transaction's start: its commit, after it, is what the window must reach.
    let insert = |from: i32, to: i32| {
        let master = &master;
        async move {
            master
                .query_one(
                    "WITH i AS (INSERT INTO orders SELECT generate_series($1::int, $2::int) RETURNING 1) \
                     SELECT now() FROM i LIMIT 1",
                    &[&from, &to],
                )
                .await
                .expect("rows")
                .get::<_, chrono::DateTime<chrono::Utc>>(0)
        }
    };
    let t1 = insert(1, 100).await;
    server.wait_window_reaches(&id, t1).await;

    ns.link(false);
    let shown = server
        .wait_for("instance show to say streaming fails", || {
            let v = server.json(&["instance", "show", &id]);
            v["streaming"]["failing_since"].is_string().then_some(v)
        })
        .await;
    assert!(shown["streaming"]["failure"].is_string(), "{shown:#}");
    let t2 = insert(101, 200).await;

    ns.link(true);
    let window = server.wait_window_reaches(&id, t2).await;
    assert!(window["gap"].is_null(), "{window:#}");
    server
        .wait_for("streaming to be healthy again", || {
            let v = server.json(&["instance", "show", &id]);
            v["streaming"]["failing_since"].is_null().then_some(())
        })
        .await;
    let at = window["latest"].as_str().expect("latest").to_string();
    let temp = server.json(&["temp", "create", &id, "--at", &at, "--wait"]);
    let copy = connect(port_of(&temp), "adm", "adm-pw")
        .await
        .expect("adm logs in to the temporary instance");
    assert_eq!(count_rows(&copy, "orders").await, 200);
}

/// `[backup] wal = "stream"`: a master Lifeboat creates streams its WAL through a slot
/// too, so a commit reaches the window within seconds with no WAL switch, although
/// `archive_timeout` is an hour; a temporary instance at the window's end has it.
#[tokio::test]
async fn a_master_lifeboat_creates_can_stream_its_wal() {
    let (a, b) = port_range(8);
    let server = TestServer::with_config(&format!(
        "[backup]\nwal = \"stream\"\narchive_timeout = \"1h\"\n[[region]]\nname = \"local\"\nports = \"{a}-{b}\"\n"
    ));
    let (id, _, admin) = server.backed_up_master("streamed").await;
    admin
        .batch_execute("CREATE TABLE orders (id int PRIMARY KEY)")
        .await
        .expect("table");
    let t: chrono::DateTime<chrono::Utc> = admin
        .query_one(
            "WITH i AS (INSERT INTO orders SELECT generate_series(1, 70) RETURNING 1) \
             SELECT now() FROM i LIMIT 1",
            &[],
        )
        .await
        .expect("rows")
        .get(0);
    let window = server.wait_window_reaches(&id, t).await;
    let shown = server.json(&["instance", "show", &id]);
    assert!(shown["streaming"]["failing_since"].is_null(), "{shown:#}");
    assert_eq!(shown["managed"], "lifeboat");
    let at = window["latest"].as_str().expect("latest").to_string();
    let temp = server.json(&["temp", "create", &id, "--at", &at, "--wait"]);
    let copy = connect(port_of(&temp), "admin", PASSWORD)
        .await
        .expect("admin logs in to the temporary instance");
    assert_eq!(count_rows(&copy, "orders").await, 70);
}

/// A cluster of every supported major (16 to 18 here; 15 is every other test's) is
/// adopted: backed up with its own `pg_basebackup`, streamed with its own
/// `pg_receivewal`, the mistake found in its WAL with its own `pg_waldump`, and
/// temporary instances of its major restored before the mistake and at the window's end.
async fn adopted_major(major: u32) {
    let Ok(bins) = lifeboat_postgres::Installations::discover(&[])
        .major(major)
        .cloned()
    else {
        skip(&format!(
            "PostgreSQL {major} is not installed (scripts/install-deps installs 16 to 18 under /opt/lifeboat/postgresql)"
        ));
        return;
    };
    let server = TestServer::start();
    let tc = ForeignCluster::start_with(bins, None, "127.0.0.1", HBA);
    set_up(&tc).await;
    let id = adopted(&server, &tc, &format!("pg{major}")).await;
    let shown = server.json(&["instance", "show", &id]);
    assert!(
        shown["engine_version"]
            .as_str()
            .is_some_and(|v| v.starts_with(&format!("{major}."))),
        "{shown:#}"
    );
    let master = tc.connect("postgres").await;
    master
        .batch_execute("INSERT INTO kept SELECT generate_series(11, 160)")
        .await
        .expect("rows");
    let mistake: chrono::DateTime<chrono::Utc> = master
        .query_one(
            "WITH d AS (DELETE FROM kept WHERE id > 100 RETURNING 1) SELECT now() FROM d LIMIT 1",
            &[],
        )
        .await
        .expect("the mistake")
        .get(0);
    let window = server.wait_window_reaches(&id, mistake).await;
    let list = server.json(&[
        "backup",
        "events",
        &id,
        "--table",
        "public.kept",
        "--min-rows",
        "50",
    ]);
    let event = list["events"][0].clone();
    assert_eq!(
        (event["kind"].as_str(), event["rows"].as_u64()),
        (Some("delete"), Some(60)),
        "{list:#}"
    );
    let before = event["id"].as_str().expect("event id").to_string();
    let at = window["latest"].as_str().expect("latest").to_string();
    for (target, rows) in [(["--before", &before], 160), (["--at", &at], 100)] {
        let mut args = vec!["temp", "create", &id];
        args.extend(target);
        args.push("--wait");
        let temp = server.json(&args);
        assert!(
            temp["engine_version"]
                .as_str()
                .is_some_and(|v| v.starts_with(&format!("{major}."))),
            "{temp:#}"
        );
        let copy = connect(port_of(&temp), "adm", "adm-pw")
            .await
            .expect("the cluster's account logs in to the temporary instance");
        assert_eq!(count_rows(&copy, "kept").await, rows, "{target:?}");
        drop(copy);
        server.json(&["temp", "delete", &id_of(&temp)]);
    }
    server.json(&["instance", "delete", &id]);
    assert_eq!(slots(&tc).await, Vec::<String>::new());
}

#[tokio::test]
async fn a_postgresql_16_cluster_is_adopted() {
    adopted_major(16).await;
}

#[tokio::test]
async fn a_postgresql_17_cluster_is_adopted() {
    adopted_major(17).await;
}

#[tokio::test]
async fn a_postgresql_18_cluster_is_adopted() {
    adopted_major(18).await;
}

/// An adoption cut short by a crash (recorded, its slot not made yet) is finished when
/// the server starts again: the slot is made, the instance runs and streams.
#[tokio::test]
async fn an_adoption_cut_short_by_a_crash_is_finished_at_start() {
    let mut server = TestServer::start();
    let tc = outside_cluster().await;
    let pw = server.tmp.path().join("adm-password");
    write_file(&pw, b"adm-pw\n");
    let port = tc.port.to_string();
    let inst = server.json(&adopt_args(
        "legacy",
        &port,
        pw.to_str().expect("utf-8 path"),
    ));
    let id = id_of(&inst);
    server.wait_first_backup(&id).await;
    server.kill();
    // What a crash between the record and the slot leaves.
    let slot = slots(&tc).await.pop().expect("Lifeboat's slot");
    let master = tc.connect("postgres").await;
    let dropped = async {
        while master
            .execute("SELECT pg_drop_replication_slot($1)", &[&slot])
            .await
            .is_err()
        {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(60), dropped)
        .await
        .expect("the slot is dropped once its receiver is gone");
    let st = lifeboat_store::Store::open(&server.data_dir.join("lifeboat.db")).expect("store");
    st.force_status(
        &lifeboat_domain::InstanceId::parse(&id).expect("id"),
        lifeboat_domain::InstanceStatus::Creating,
        None,
    )
    .expect("status");
    drop(st);

    server.spawn();
    let shown = server
        .wait_for("the adoption to be finished", || {
            let v = server.json(&["instance", "show", &id]);
            (v["status"] == "running").then_some(v)
        })
        .await;
    assert_eq!(shown["managed"], "external");
    assert_eq!(slots(&tc).await, vec![slot]);
    let t: chrono::DateTime<chrono::Utc> = master
        .query_one(
            "WITH i AS (INSERT INTO kept VALUES (11) RETURNING 1) SELECT now() FROM i",
            &[],
        )
        .await
        .expect("row")
        .get(0);
    server.wait_window_reaches(&id, t).await;
}

/// A clone of an adopted cluster's backups upgraded to a newer major: pg_upgrade gets
/// a new cluster with the copy's own install user (`postgres`) and data checksum
/// setting (off, as the cluster was made), and the clone has its rows and accounts.
#[tokio::test]
async fn a_clone_of_an_adopted_cluster_is_upgraded_to_a_newer_major() {
    let server = TestServer::start();
    let tc = outside_cluster().await;
    let id = adopted(&server, &tc, "legacy").await;
    let master = tc.connect("postgres").await;
    let old: u32 = master
        .query_one(
            "SELECT current_setting('server_version_num')::int / 10000",
            &[],
        )
        .await
        .expect("version")
        .get::<_, i32>(0) as u32;
    let new = old + 1;
    let t: chrono::DateTime<chrono::Utc> = master
        .query_one(
            "WITH i AS (INSERT INTO kept VALUES (11) RETURNING 1) SELECT now() FROM i",
            &[],
        )
        .await
        .expect("row")
        .get(0);
    let window = server.wait_window_reaches(&id, t).await;
    let at = window["latest"].as_str().expect("latest").to_string();
    let clone = server.json(&[
        "instance",
        "clone",
        &id,
        "--at",
        &at,
        "--name",
        "legacy-up",
        "--engine-version",
        &new.to_string(),
        "--wait",
    ]);
    assert_eq!(clone["status"], "running", "{clone:#}");
    assert_eq!(clone["managed"], "lifeboat");
    assert!(
        clone["engine_version"]
            .as_str()
            .is_some_and(|v| v.starts_with(&format!("{new}."))),
        "{clone:#}"
    );
    let up = connect(port_of(&clone), "adm", "adm-pw")
        .await
        .expect("the adopted cluster's account logs in to the clone");
    assert_eq!(count_rows(&up, "kept").await, 11);
    let version: i32 = up
        .query_one("SELECT current_setting('server_version_num')::int", &[])
        .await
        .expect("version")
        .get(0);
    assert_eq!(version / 10_000, new as i32);
}
