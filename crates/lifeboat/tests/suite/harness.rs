//! A `lifeboat serve` process of a test, and the CLI pointed at it.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub use lifeboat_postgres::testing::skip;
use lifeboat_postgres::{Cluster, OsUser, PgBinaries, StopMode};
use serde_json::Value;

pub const PASSWORD: &str = "correct-horse-battery";

/// A running server with its own temp directory. Dropping it kills the server and
/// stops every cluster under its data directory.
pub struct TestServer {
    pub tmp: tempfile::TempDir,
    pub data_dir: PathBuf,
    pub config: PathBuf,
    child: Option<Child>,
    pub url: String,
}

/// A range of ports few other tests will pick, below the kernel's ephemeral range
/// (32768 and up), where the client side of any connection on the machine could take
/// a port between the draw and its use. The first draw of the process is random; the
/// next ones take the following slots, so no two servers of one test run share a range.
pub fn port_range(len: u16) -> (u16, u16) {
    static BASE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let base = *BASE.get_or_init(|| {
        std::process::id() as u64 * 7919
            + std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos() as u64)
                .unwrap_or(0)
    });
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let slot = ((base + n) % 1170) as u16;
    let first = 21000 + slot * 10;
    (first, first + len - 1)
}

impl TestServer {
    /// A server with the default region on a port range of its own.
    pub fn start() -> Self {
        let (a, b) = port_range(8);
        Self::with_config(&format!(
            "[[region]]\nname = \"local\"\nports = \"{a}-{b}\"\n"
        ))
    }

    pub fn with_config(config_text: &str) -> Self {
        let tmp = tempfile::Builder::new()
            .prefix("lb-it-")
            .tempdir()
            .expect("temp dir");
        // Clusters run as another OS user, who must pass through this directory.
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        let data_dir = tmp.path().join("data");
        let config = tmp.path().join("lifeboat.toml");
        std::fs::write(&config, config_text).expect("config");
        std::fs::write(tmp.path().join("pw"), format!("{PASSWORD}\n")).expect("password file");
        let mut server = Self {
            tmp,
            data_dir,
            config,
            child: None,
            url: String::new(),
        };
        server.spawn();
        server
    }

    pub fn password_file(&self) -> PathBuf {
        self.tmp.path().join("pw")
    }

    pub fn log_path(&self) -> PathBuf {
        self.tmp.path().join("server.log")
    }

    /// Starts `lifeboat serve` and waits until it wrote its address.
    pub fn spawn(&mut self) {
        let _ = std::fs::remove_file(self.data_dir.join("server-address"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("log");
        let child = Command::new(env!("CARGO_BIN_EXE_lifeboat"))
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(&self.config)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .env("LIFEBOAT_LOG", "info")
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn lifeboat serve");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        let address = self.data_dir.join("server-address");
        while !address.exists() {
            assert!(
                Instant::now() < deadline,
                "server did not start: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        self.url = std::fs::read_to_string(&address)
            .expect("address")
            .trim()
            .to_string();
    }

    /// Kills the server at once, as a crash would; clusters keep running.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Runs the CLI against this server.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_lifeboat"))
            .args(args)
            .env("LIFEBOAT_DATA_DIR", &self.data_dir)
            .env_remove("LIFEBOAT_SERVER")
            .env_remove("LIFEBOAT_TOKEN")
            .stdin(Stdio::null())
            .output()
            .expect("run lifeboat")
    }

    /// Runs the CLI with `--output json`, expects success, and parses stdout.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["--output", "json"]);
        let out = self.cli(&all);
        assert!(
            out.status.success(),
            "lifeboat {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("JSON output")
    }

    /// Runs the CLI, expects failure, and returns its one-line error.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            !out.status.success(),
            "lifeboat {args:?} succeeded: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
        assert_eq!(err.lines().count(), 1, "error is not one line: {err}");
        err
    }

    /// Creates a master named `name` with account `admin` and returns its JSON view.
    pub fn create_master(&self, name: &str) -> Value {
        self.create_master_on(name, None)
    }

    /// Creates a master of PostgreSQL `major` (the server's default when `None`).
    pub fn create_master_on(&self, name: &str, major: Option<u32>) -> Value {
        let pw = self.password_file();
        let major = major.map(|m| m.to_string());
        let mut args = vec![
            "instance",
            "create",
            "--name",
            name,
            "--account",
            "admin",
            "--password-file",
            pw.to_str().expect("utf-8 path"),
        ];
        if let Some(m) = &major {
            args.extend(["--engine-version", m.as_str()]);
        }
        self.json(&args)
    }

    pub fn token(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("api-token"))
            .expect("token")
            .trim()
            .to_string()
    }

    /// A raw HTTP request: (status, JSON body or Null).
    pub fn http(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let (status, body) = self.http_text(method, path, token, body);
        (status, serde_json::from_str(&body).unwrap_or(Value::Null))
    }

    /// Like [`Self::http`], with the body as the server sent it.
    pub fn http_text(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, String) {
        let mut args = vec![
            "-s".to_string(),
            "-o".into(),
            "-".into(),
            "-w".into(),
            "\n%{http_code}".into(),
            "-X".into(),
            method.into(),
        ];
        if let Some(t) = token {
            args.extend(["-H".into(), format!("Authorization: Bearer {t}")]);
        }
        if let Some(b) = body {
            args.extend([
                "-H".into(),
                "Content-Type: application/json".into(),
                "-d".into(),
                b.to_string(),
            ]);
        }
        args.push(format!("{}{path}", self.url));
        let out = Command::new("curl").args(&args).output().expect("curl");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let (body, code) = text.rsplit_once('\n').expect("status line");
        (code.parse().expect("status"), body.to_string())
    }

    pub fn instance_dirs(&self) -> Vec<String> {
        names_in(&self.data_dir.join("regions/local/instances"))
    }

    pub fn instance_dir(&self, id: &str) -> PathBuf {
        self.data_dir.join("regions/local/instances").join(id)
    }

    /// The cluster of an instance directory, for checks and cleanup.
    pub fn cluster(&self, id: &str, port: u16) -> Cluster {
        let dir = self.instance_dir(id);
        Cluster::new(
            &dir,
            port,
            binaries_for(&dir).expect("PostgreSQL"),
            OsUser::for_clusters(None).expect("OS user"),
        )
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // A failed test shows what the server said, whatever step failed.
        if std::thread::panicking() {
            eprintln!("server log of the failed test:\n{}", self.log());
        }
        self.kill();
        stop_clusters_under(&self.data_dir);
    }
}

/// Stops every cluster found below `dir` (a pid file marks a running one), whatever
/// region data root it lives in.
pub fn stop_clusters_under(dir: &Path) {
    let Ok(user) = OsUser::for_clusters(None) else {
        return;
    };
    let mut pending = vec![(dir.to_path_buf(), 0)];
    while let Some((dir, depth)) = pending.pop() {
        if dir.join("data/postmaster.pid").exists() {
            if let Some(bins) = binaries_for(&dir) {
                let _ = Cluster::new(&dir, 0, bins, user.clone()).stop(StopMode::Immediate);
            }
            continue;
        }
        if depth < 5
            && let Ok(entries) = std::fs::read_dir(&dir)
        {
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    pending.push((e.path(), depth + 1));
                }
            }
        }
    }
}

/// The binaries of the major an instance directory's cluster was made with (its
/// `PG_VERSION`), else the newest installed.
pub fn binaries_for(instance_dir: &Path) -> Option<PgBinaries> {
    let major = std::fs::read_to_string(instance_dir.join("data/PG_VERSION"))
        .ok()
        .and_then(|v| v.trim().parse::<u32>().ok());
    let all = lifeboat_postgres::Installations::discover(&[]);
    match major {
        Some(m) => all.major(m).ok().cloned(),
        None => all.newest().ok().cloned(),
    }
}

/// Connects over TCP with a password; returns the error text on failure.
pub async fn connect(
    port: u16,
    user: &str,
    password: &str,
) -> Result<tokio_postgres::Client, String> {
    connect_db(port, user, password, "postgres").await
}

/// Connects to `database` over TCP with a password.
pub async fn connect_db(
    port: u16,
    user: &str,
    password: &str,
    database: &str,
) -> Result<tokio_postgres::Client, String> {
    let conn = format!(
        "host=127.0.0.1 port={port} user={user} password={password} dbname={database} connect_timeout=5"
    );
    match tokio_postgres::connect(&conn, tokio_postgres::NoTls).await {
        Ok((client, connection)) => {
            tokio::spawn(connection);
            Ok(client)
        }
        Err(e) => Err(lifeboat_postgres::describe(&e)),
    }
}

pub fn port_of(v: &Value) -> u16 {
    v["port"].as_u64().expect("port") as u16
}

pub fn id_of(v: &Value) -> String {
    v["id"].as_str().expect("id").to_string()
}

/// The names in a directory, sorted; none when it does not exist.
pub fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|e| {
            e.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Every file below `dir`.
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

pub fn write_file(path: &Path, content: &[u8]) {
    let mut f = std::fs::File::create(path).expect("create");
    f.write_all(content).expect("write");
}

impl TestServer {
    /// A server whose masters archive every second, so tests need not wait a minute for
    /// the restorable window to move.
    pub fn start_archiving(extra: &str) -> Self {
        let (a, b) = port_range(8);
        Self::with_config(&format!(
            "[backup]\narchive_timeout = \"1s\"\n{extra}\n[[region]]\nname = \"local\"\nports = \"{a}-{b}\"\n"
        ))
    }

    /// Waits until `f` returns `Some`, polling the CLI or the store, for up to 90 s.
    pub async fn wait_for<T>(&self, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Some(v) = f() {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; server log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Waits for the first base backup of a new master to complete.
    pub async fn wait_first_backup(&self, id: &str) {
        self.wait_for("the first base backup", || {
            let list = self.json(&["backup", "list", id]);
            let done = list["backups"].as_array().is_some_and(|b| !b.is_empty());
            done.then_some(())
        })
        .await;
    }

    /// A master named `name` whose first base backup is complete, with a connection as
    /// its privileged account: the start of most backup and recovery tests.
    pub async fn backed_up_master(&self, name: &str) -> (String, u16, tokio_postgres::Client) {
        let master = self.create_master(name);
        let (id, port) = (id_of(&master), port_of(&master));
        self.wait_first_backup(&id).await;
        let admin = connect(port, "admin", PASSWORD)
            .await
            .expect("the privileged account connects");
        (id, port, admin)
    }

    /// Waits until the restorable window reaches `t` (RFC 3339).
    pub async fn wait_window_reaches(&self, id: &str, t: chrono::DateTime<chrono::Utc>) -> Value {
        self.wait_for("the restorable window to reach the target", || {
            let w = self.json(&["backup", "window", id]);
            let latest = w["latest"]
                .as_str()
                .and_then(|l| chrono::DateTime::parse_from_rfc3339(l).ok())?;
            (latest >= t).then_some(w)
        })
        .await
    }
}

/// Commits, then returns the commit's time as the server sees it, and forces the WAL
/// holding it into the archive.
pub async fn now_and_switch(client: &tokio_postgres::Client) -> chrono::DateTime<chrono::Utc> {
    let t: chrono::DateTime<chrono::Utc> = client
        .query_one("SELECT now()", &[])
        .await
        .expect("now")
        .get(0);
    switch_wal(client).await;
    t
}

pub async fn switch_wal(client: &tokio_postgres::Client) {
    // A transaction after the point, so that a commit record lies beyond it.
    client.batch_execute("CREATE TABLE IF NOT EXISTS lb_tick (t timestamptz); INSERT INTO lb_tick VALUES (now())").await.expect("tick");
    client
        .query_one("SELECT pg_switch_wal()", &[])
        .await
        .expect("switch wal");
}

/// Creates the table `orders` with the ids 1 to `n`.
pub async fn create_orders(client: &tokio_postgres::Client, n: i32) {
    client
        .batch_execute(&format!(
            "CREATE TABLE orders AS SELECT generate_series(1, {n}) AS id"
        ))
        .await
        .expect("create orders");
}

/// The number of rows of `table`.
pub async fn count_rows(client: &tokio_postgres::Client, table: &str) -> i64 {
    client
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .unwrap_or_else(|e| panic!("count {table}: {e}"))
        .get(0)
}

// The console over plain HTTP, with a cookie jar, for tests that need no browser.

pub const COOKIE: &str = "lifeboat_session";

/// The CSRF token in a console page's forms.
pub fn csrf_of(page: &str) -> String {
    page.split("name=\"csrf\" value=\"")
        .nth(1)
        .expect("a form with a CSRF token")
        .split('"')
        .next()
        .unwrap()
        .to_string()
}

/// `curl` with a cookie jar: (status, headers and body).
pub fn curl(server: &TestServer, jar: &Path, args: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "-i", "-b"])
        .arg(jar)
        .arg("-c")
        .arg(jar)
        .args(["-w", "\n%{http_code}"])
        .args(args.iter().map(|a| a.replace("URL", &server.url)))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.parse().unwrap(), body.to_string())
}

/// Signs in through the sign-in form with `secret`: (status, headers and body).
pub fn sign_in_with(server: &TestServer, jar: &Path, secret: &str) -> (u16, String) {
    let (_, page) = curl(server, jar, &["URL/console/sign-in"]);
    curl(
        server,
        jar,
        &[
            "--data-urlencode",
            &format!("token={secret}"),
            "--data-urlencode",
            &format!("csrf={}", csrf_of(&page)),
            "URL/console/sign-in",
        ],
    )
}

/// Signs in to the console with the API token; returns the CSRF token of its forms.
pub fn console_session(server: &TestServer, jar: &Path) -> String {
    let (status, page) = sign_in_with(server, jar, &server.token());
    assert_eq!(status, 303, "{page}");
    let (status, page) = curl(server, jar, &["URL/console/instances"]);
    assert_eq!(status, 200, "{page}");
    csrf_of(&page)
}

/// Creates a migration task from `source` to `target` as `admin` on both sides.
pub fn create_task(server: &TestServer, source: &str, target: &str, extra: &[&str]) -> Value {
    let pw = server.password_file();
    let args = task_args(server, source, target, &pw, extra);
    server.json(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// `migration create` between `source` and `target` as `admin`, the target's
/// password read from `target_password`, then `extra`.
pub fn task_args(
    server: &TestServer,
    source: &str,
    target: &str,
    target_password: &Path,
    extra: &[&str],
) -> Vec<String> {
    let pw = server.password_file();
    let mut args: Vec<String> = [
        "migration",
        "create",
        "--source",
        source,
        "--target",
        target,
        "--source-account",
        "admin",
        "--source-password-file",
        pw.to_str().unwrap(),
        "--target-account",
        "admin",
        "--target-password-file",
        target_password.to_str().unwrap(),
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    args.extend(extra.iter().map(|a| a.to_string()));
    args
}

/// The entry for `id` in the output of `lifeboat repository list`; fails the test,
/// showing the list, when it is not there.
pub fn repository_entry(listed: &Value, id: &str) -> Value {
    listed["entries"]
        .as_array()
        .and_then(|all| all.iter().find(|e| e["id"] == id))
        .cloned()
        .unwrap_or_else(|| panic!("{id} is not in the repository list: {listed}"))
}
