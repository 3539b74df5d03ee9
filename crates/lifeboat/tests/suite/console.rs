//! The web console, in a real browser (Debian's chromium driven through chromedriver
//! with fantoccini): the whole recovery from sign-in to the rows back in the master;
//! and, without a browser, the session and CSRF checks.
//!
//! Set `LIFEBOAT_CONSOLE_SCREENSHOTS=DIR` to save a PNG of each main page in DIR (the
//! README's screenshots in `docs/console/` come from there).

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{Local, SubsecRound};
use fantoccini::elements::Element;
use fantoccini::{Client, Locator};
use serde_json::json;

use super::harness::*;

/// chromedriver and a headless chromium with a fresh profile; both end on drop.
struct Browser {
    client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        // chromedriver leads a process group of its own, chromium with it: the whole
        // group goes, so no browser outlives its test.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.driver.id())])
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn found(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Installs chromium when it is missing and this user may; `None` (with the reason
/// printed) only when it cannot be had.
fn ensure_chromium() -> bool {
    if found("chromium") && found("chromedriver") {
        return true;
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0"));
    if root {
        let _ = Command::new("apt-get")
            .args(["install", "-y", "-qq", "chromium", "chromium-driver"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status();
    }
    if found("chromium") && found("chromedriver") {
        return true;
    }
    skip(
        "chromium and chromium-driver are not installed and cannot be (run scripts/install-deps as root)",
    );
    false
}

impl Browser {
    async fn start() -> Option<Self> {
        if !ensure_chromium() {
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new("chromedriver")
            .process_group(0)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let profile = tempfile::Builder::new()
            .prefix("lb-chromium-")
            .tempdir()
            .unwrap();
        let caps = json!({
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--no-first-run", "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--window-size=1280,1000",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }
        });
        let caps = caps.as_object().unwrap().clone();
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match Client::with_capabilities_and_connector(&url, &caps, connector).await {
                Ok(c) => break c,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("cannot start a chromium session: {e}"),
            }
        };
        Some(Self {
            client,
            driver,
            _profile: profile,
        })
    }

    /// The element `css`, waiting for it while a submitted form's answer loads.
    async fn find(&self, css: &str) -> Element {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match self.client.find(Locator::Css(css)).await {
                Ok(e) => return e,
                Err(e) if Instant::now() > deadline => panic!("no element {css}: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.unwrap()
    }

    async fn click(&self, css: &str) {
        self.find(css)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("cannot click {css}: {e}"));
    }

    async fn fill(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        e.clear().await.unwrap();
        e.send_keys(text).await.unwrap();
    }

    /// Waits until the text of `css` satisfies `ok`; the page may reload meanwhile.
    async fn wait_text(&self, css: &str, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(150);
        let mut last = String::new();
        loop {
            if let Ok(e) = self.client.find(Locator::Css(css)).await
                && let Ok(t) = e.text().await
            {
                if ok(&t) {
                    return t;
                }
                last = t;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; {css} says {last:?}"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// Waits until the page's path satisfies `ok` (a submitted form may take seconds to
    /// answer); on timeout, fails with the errors the page shows.
    async fn wait_path(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Ok(url) = self.client.current_url().await
                && ok(url.path())
            {
                return url.path().to_string();
            }
            if Instant::now() > deadline {
                let mut errors = Vec::new();
                for e in self
                    .client
                    .find_all(Locator::Css(".error"))
                    .await
                    .unwrap_or_default()
                {
                    errors.push(e.text().await.unwrap_or_default());
                }
                let url = self.client.current_url().await.map(|u| u.to_string());
                panic!("timed out waiting for {what}; at {url:?}, the page says {errors:?}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn screenshot(&self, name: &str) {
        if let Ok(dir) = std::env::var("LIFEBOAT_CONSOLE_SCREENSHOTS") {
            let png = self.client.screenshot().await.unwrap();
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(std::path::Path::new(&dir).join(format!("{name}.png")), png).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn console_walks_the_whole_recovery_in_a_browser() {
    let Some(b) = Browser::start().await else {
        return;
    };
    let server = TestServer::start_archiving("");
    let master = server.create_master("shop");
    let (id, port) = (id_of(&master), port_of(&master));
    let c = connect(port, "admin", PASSWORD).await.unwrap();
    c.batch_execute("CREATE TABLE orders (id int PRIMARY KEY, item text); INSERT INTO orders SELECT g, 'item ' || g FROM generate_series(1, 50) g;").await.unwrap();
    server.wait_first_backup(&id).await;
    // The picker has whole seconds: leave a second on each side of the chosen point.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let t = now_and_switch(&c).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    c.batch_execute("DELETE FROM orders WHERE id > 10; CREATE TABLE orders_restored (id int PRIMARY KEY, item text); INSERT INTO orders_restored VALUES (1, 'in the way');").await.unwrap();
    switch_wal(&c).await;
    server.wait_window_reaches(&id, t).await;

    // Sign in: a wrong token is refused on the form, the right one opens the console.
    b.client
        .goto(&format!("{}/console/instances", server.url))
        .await
        .unwrap();
    assert!(
        b.client
            .current_url()
            .await
            .unwrap()
            .path()
            .ends_with("/console/sign-in")
    );
    b.screenshot("sign-in").await;
    b.fill("#token", "not-the-token").await;
    b.click("button[type=submit]").await;
    assert!(b.text("#token-error").await.contains("token is wrong"));
    b.fill("#token", &server.token()).await;
    b.click("button[type=submit]").await;
    let row = b.text(&format!("tr[data-instance='{id}']")).await;
    assert!(row.contains("shop") && row.contains("master"), "{row}");
    b.screenshot("instances").await;

    // Basic information.
    b.click(&format!("a[href='/console/instances/{id}']")).await;
    assert!(
        b.text("#connection-string")
            .await
            .contains(&format!("port={port}"))
    );
    assert_eq!(b.text("#network-type").await, "classic");
    b.screenshot("instance").await;

    // Accounts: a new one is listed; a short password is refused beside the form.
    b.click("a[href$='/accounts']").await;
    b.fill("#account", "reader").await;
    b.fill("#password", "short").await;
    b.click("form.card button[type=submit]").await;
    assert!(!b.text("form.card .error").await.is_empty());
    b.fill("#account", "reader").await;
    b.fill("#password", PASSWORD).await;
    b.click("form.card button[type=submit]").await;
    b.wait_text("#accounts", "the new account", |t| t.contains("reader"))
        .await;
    connect(port, "reader", PASSWORD).await.unwrap();

    // Bad input re-renders the form with the API's message beside the field.
    b.click("a[href$='/whitelist']").await;
    b.fill("#cidr", "10.0.0.300").await;
    b.click("form.card button[type=submit]").await;
    let error = b.text("form.card .error").await;
    assert!(error.contains("10.0.0.300"), "{error}");
    b.fill("#cidr", "10.1.2.0/24").await;
    b.click("form.card button[type=submit]").await;
    b.wait_text("#whitelist", "the new whitelist entry", |t| {
        t.contains("10.1.2.0/24")
    })
    .await;

    // Back up now: the attempt's state follows without a reload.
    b.click("a[href$='/backups']").await;
    b.click("#back-up-now").await;
    b.wait_text(
        "#backup-runs tbody tr:first-child .badge",
        "the manual backup to complete",
        |s| s == "completed",
    )
    .await;
    assert!(
        b.text("#backup-runs tbody tr:first-child")
            .await
            .contains("manual")
    );
    b.screenshot("backups").await;

    // A time outside the window (sent past the browser's own check, as after the
    // window moved): the console says where the window is in its own words and
    // times, and "Latest restorable time" puts a valid time in the picker.
    b.client
        .goto(&format!("{}/console/instances/{id}/temporary", server.url))
        .await
        .unwrap();
    b.client
        .execute(
            "document.getElementById('at').value = '2020-01-01T00:00:00'; document.getElementById('create-temporary').submit()",
            vec![],
        )
        .await
        .unwrap();
    let error = b
        .wait_text("#create-temporary .error", "the window error", |t| {
            t.contains("outside the restorable window")
        })
        .await;
    assert!(error.contains("2020-01-01 00:00:00"), "{error}");
    assert!(error.contains("pick a time between"), "{error}");
    for api_words in ["lifeboat ", "LSN", "+00:00]", ".000"] {
        assert!(!error.contains(api_words), "{error}");
    }
    b.screenshot("temporary-outside-window").await;
    // The answer came through a redirect, and the chosen point is still drawn where
    // the user put it.
    let url = b.client.current_url().await.unwrap();
    assert!(
        url.path().ends_with("/temporary") && url.query().is_some_and(|q| q.contains("flash=")),
        "{url}"
    );
    let label = || async {
        b.client
            .execute(
                "return document.querySelector('svg.timeline .chosen-label').textContent",
                vec![],
            )
            .await
            .unwrap()
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let drawn = label().await;
    assert!(drawn.starts_with("chosen 2020-01-01 00:00:00"), "{drawn}");
    // A reload shows the same answer and sends nothing again.
    b.client.refresh().await.unwrap();
    let again = b
        .wait_text("#create-temporary .error", "the window error again", |t| {
            t.contains("outside the restorable window")
        })
        .await;
    assert_eq!(again, error);
    assert_eq!(b.client.current_url().await.unwrap(), url);
    assert_eq!(label().await, drawn);
    let instances = server.json(&["instance", "list"]);
    assert_eq!(
        instances
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["kind"] == "temporary")
            .count(),
        0,
        "no temporary instance was asked for: {instances}"
    );
    b.click("#latest").await;
    let latest: i64 = b
        .find("#latest")
        .await
        .attr("data-set-ms")
        .await
        .unwrap()
        .unwrap()
        .parse()
        .unwrap();
    let shown = b.find("#at").await.prop("value").await.unwrap().unwrap();
    let shown_at = chrono::NaiveDateTime::parse_from_str(&shown, "%Y-%m-%d %H:%M:%S")
        .unwrap_or_else(|e| panic!("{shown}: {e}"))
        .and_local_timezone(Local)
        .unwrap();
    assert_eq!(
        shown_at.timestamp(),
        latest / 1000,
        "the field holds the latest restorable time: {shown}"
    );
    // The zones offered: the server's, UTC and the browser's own.
    let zones = b.text("#tz").await;
    assert!(
        zones.contains("Server time") && zones.contains("UTC") && zones.contains("Your browser"),
        "{zones}"
    );

    // A temporary instance at the chosen second, through the confirmation dialog.
    b.client
        .goto(&format!("{}/console/instances/{id}/temporary", server.url))
        .await
        .unwrap();
    let at = t
        .with_timezone(&Local)
        .trunc_subsecs(0)
        .format("%Y-%m-%d %H:%M:%S")
        .to_string();
    b.client
        .execute(
            "document.getElementById('at').value = arguments[0]",
            vec![json!(at)],
        )
        .await
        .unwrap();
    let zone = b.text("#tz option[data-zone=server]").await;
    assert!(zone.contains("(UTC"), "{zone}");
    b.click("#create-temporary-button").await;
    assert!(
        b.find("#confirm-temporary")
            .await
            .is_displayed()
            .await
            .unwrap()
    );
    b.click("#confirm-ok").await;
    b.wait_text("#temporary-status", "the temporary instance to run", |s| {
        s == "running"
    })
    .await;
    let temp = b.text("#temporary-id").await;
    // Its card is below the fold; the top of the page says it is there.
    let note = b.text("#temporary-note").await;
    assert!(note.contains(&temp), "{note}");
    assert!(
        b.find("#create-temporary-button")
            .await
            .attr("disabled")
            .await
            .unwrap()
            .is_some()
    );
    assert!(b.text("#create-disabled").await.contains(&temp));
    let restored_to = b.text("#restored-to").await;
    assert!(
        restored_to.contains(&at.replace('T', " ")),
        "{restored_to} vs {at}"
    );
    assert!(b.text("#time-left").await.contains(" h "));
    b.screenshot("temporary-instance").await;
    b.click("header nav a[href='/console/instances']").await;
    let row = b.text(&format!("tr[data-instance='{temp}']")).await;
    assert!(row.contains("temporary") && row.contains(" h "), "{row}");

    // Diff: 40 rows only in the temporary instance.
    b.client
        .goto(&format!(
            "{}/console/diff?source={temp}&target={id}",
            server.url
        ))
        .await
        .unwrap();
    b.click("input[name=table][value='public.orders']").await;
    b.click("#run-diff").await;
    assert_eq!(
        b.text("tr[data-table='public.orders'] td.only-in-source")
            .await,
        "40"
    );
    assert!(b.text("#diff-rows-0").await.contains("item 11"));
    b.screenshot("diff").await;

    // A migration task from the master's page, orders renamed to orders_restored,
    // which is in the way: the pre-check fails and says why.
    b.client
        .goto(&format!("{}/console/instances/{id}", server.url))
        .await
        .unwrap();
    // The master no longer lets the worker's address in: authorizing the task must.
    server.json(&["whitelist", "remove", &id, "127.0.0.1/32"]);
    b.click("#create-migration").await;
    assert_eq!(
        b.find("#source_instance")
            .await
            .prop("value")
            .await
            .unwrap()
            .as_deref(),
        Some(temp.as_str())
    );
    b.fill("#source_password", PASSWORD).await;
    b.fill("#target_password", PASSWORD).await;
    b.screenshot("migration-wizard-1").await;
    b.click("#authorize-next").await;
    // The first step created the task and put the worker on both whitelists.
    let path = b
        .wait_path("the second step", |p| p.ends_with("/objects"))
        .await;
    let task = path
        .strip_prefix("/console/migrations/")
        .and_then(|p| p.strip_suffix("/objects"))
        .unwrap_or_else(|| panic!("the second step is at {path}"))
        .to_string();
    let entries = server.json(&["whitelist", "list", &id]);
    assert!(
        entries
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["added_by"] == format!("migration:{task}")),
        "{entries}"
    );
    assert_eq!(
        server.json(&["migration", "show", &task])["authorized"],
        true
    );
    b.click("#available option[value='postgres.public.orders']")
        .await;
    b.click("#add").await;
    b.click("#selected li .edit").await;
    b.fill("#selected li .rename", "orders_restored").await;
    b.screenshot("migration-wizard-2").await;
    b.click("#precheck-start").await;
    b.wait_text("#task-state", "the pre-check to fail", |s| {
        s.contains("precheck failed")
    })
    .await;
    assert!(
        b.client
            .current_url()
            .await
            .unwrap()
            .path()
            .ends_with(&format!("/console/migrations/{task}"))
    );
    b.click("tr[data-item-status=failed] button.bang").await;
    let detail = b.text("dialog[open] .detail").await;
    assert!(detail.contains("orders_restored"), "{detail}");
    let advice = b.text("dialog[open] .advice").await;
    assert!(!advice.is_empty());
    // The console speaks its own words, never a CLI command or flag.
    assert!(
        !advice.contains("--") && !advice.contains("lifeboat "),
        "{advice}"
    );
    b.screenshot("precheck-failed").await;

    // Fix it, pre-check again from the task list, start, and watch it complete.
    c.batch_execute("DROP TABLE orders_restored").await.unwrap();
    b.client
        .goto(&format!("{}/console/migrations", server.url))
        .await
        .unwrap();
    b.click(&format!(
        "tr[data-task='{task}'] button[data-action=precheck]"
    ))
    .await;
    b.wait_text(
        &format!("tr[data-task='{task}'] .badge"),
        "the pre-check to pass",
        |s| s == "precheck passed",
    )
    .await;
    b.click(&format!("tr[data-task='{task}'] button[data-action=start]"))
        .await;
    b.click(&format!("dialog#start-{task} button[type=submit]"))
        .await;
    b.wait_text(
        &format!("tr[data-task='{task}'] .badge"),
        "the migration to complete",
        |s| s == "completed",
    )
    .await;
    b.screenshot("migration-tasks").await;
    b.client
        .goto(&format!("{}/console/migrations/{task}", server.url))
        .await
        .unwrap();
    assert!(b.text("#verification").await.contains("passed"));
    b.client
        .execute(
            "document.getElementById('verification').scrollIntoView()",
            vec![],
        )
        .await
        .unwrap();
    b.screenshot("migration-task").await;

    let restored: i64 = c
        .query_one("SELECT count(*) FROM orders_restored", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(restored, 50);
    let item: String = c
        .query_one("SELECT item FROM orders_restored WHERE id = 42", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(item, "item 42");

    // A second task, from the API, cancelled from the task list while it copies: the
    // test holds a lock on the source table so the copy waits until it is cancelled.
    let token = server.token();
    let side = |inst: &str| serde_json::json!({ "instance": inst, "account": "admin", "password": PASSWORD });
    let (code, second) = server.http(
        "POST",
        "/api/v1/migrations",
        Some(&token),
        Some(
            serde_json::json!({ "name": "to cancel", "source": side(&temp), "target": side(&id),
                                 "objects": ["postgres.public.orders=orders_again"] }),
        ),
    );
    assert_eq!(code, 201, "{second}");
    let second = second["id"].as_str().unwrap().to_string();
    server.json(&["migration", "authorize", &second]);
    b.client
        .goto(&format!("{}/console/migrations", server.url))
        .await
        .unwrap();
    b.click(&format!(
        "tr[data-task='{second}'] button[data-action=precheck]"
    ))
    .await;
    b.wait_text(
        &format!("tr[data-task='{second}'] .badge"),
        "the second pre-check to pass",
        |s| s == "precheck passed",
    )
    .await;
    let temp_port = port_of(&server.json(&["instance", "show", &temp]));
    let holder = connect(temp_port, "admin", PASSWORD).await.unwrap();
    holder
        .batch_execute("BEGIN; LOCK TABLE orders IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    b.click(&format!(
        "tr[data-task='{second}'] button[data-action=start]"
    ))
    .await;
    b.click(&format!("dialog#start-{second} button[type=submit]"))
        .await;
    b.wait_text(
        &format!("tr[data-task='{second}'] .badge"),
        "the second task to run",
        |s| s == "migrating",
    )
    .await;
    b.click(&format!(
        "tr[data-task='{second}'] button[data-action=cancel]"
    ))
    .await;
    b.wait_text(
        &format!("tr[data-task='{second}'] .badge"),
        "the second task to be cancelled",
        |s| s == "cancelled",
    )
    .await;
    holder.batch_execute("ROLLBACK").await.unwrap();
    let again: Option<String> = c
        .query_one("SELECT to_regclass('orders_again')::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(again, None, "a cancelled task leaves no table behind");
    let entries = server.json(&["whitelist", "list", &id]);
    assert!(
        !entries.to_string().contains(&second),
        "the cancelled task's whitelist entry is removed: {entries}"
    );

    // Delete the temporary instance: the create button is enabled again.
    b.client
        .goto(&format!("{}/console/instances/{id}/temporary", server.url))
        .await
        .unwrap();
    b.click("#delete-temporary").await;
    b.click("#confirm-delete button[type=submit]").await;
    b.wait_text(
        "form#create-temporary",
        "the temporary instance to go",
        |t| !t.contains("Disabled"),
    )
    .await;
    assert!(b.client.find(Locator::Css("#temporary-id")).await.is_err());
    let create = b.find("#create-temporary-button").await;
    assert!(create.attr("disabled").await.unwrap().is_none());
    let _ = b.client.clone().close().await;
}

#[tokio::test]
async fn console_refuses_a_wrong_token_and_a_post_without_its_csrf_token() {
    let mut server = TestServer::start();
    let jar = server.tmp.path().join("cookies");
    let (status, page) = curl(&server, &jar, &["URL/console/instances"]);
    assert_eq!(status, 303);
    assert!(page.contains("location: /console/sign-in"), "{page}");

    // The sign-in form itself carries a token tied to the browser that loaded it.
    let token = format!("token={}", server.token());
    let (status, page) = curl(&server, &jar, &["-d", &token, "URL/console/sign-in"]);
    assert_eq!(status, 403, "{page}");
    assert!(!page.contains(&format!("{COOKIE}=")), "{page}");

    let (_, page) = curl(&server, &jar, &["URL/console/sign-in"]);
    let (status, page) = curl(
        &server,
        &jar,
        &[
            "-d",
            &format!("token=wrong&csrf={}", csrf_of(&page)),
            "URL/console/sign-in",
        ],
    );
    assert_eq!(status, 401);
    assert!(page.contains("That token is wrong"), "{page}");
    assert!(!page.contains(&format!("{COOKIE}=")), "{page}");

    let (status, page) = curl(
        &server,
        &jar,
        &[
            "-d",
            &format!("{token}&csrf={}", csrf_of(&page)),
            "URL/console/sign-in",
        ],
    );
    assert_eq!(status, 303, "{page}");
    let cookie = page
        .lines()
        .find(|l| l.contains(&format!("{COOKIE}=")))
        .unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(
        !cookie.contains(&server.token()),
        "the token itself must not be the cookie"
    );

    let (status, page) = curl(&server, &jar, &["URL/console/instances"]);
    assert_eq!(status, 200, "{page}");
    let csrf = csrf_of(&page);
    let (status, page) = curl(&server, &jar, &["URL/console/no-such-page"]);
    assert_eq!(status, 404);
    assert!(page.contains("Page not found"), "{page}");
    let (status, page) = curl(&server, &jar, &["URL/console/instances/pg-nosuch"]);
    assert_eq!(status, 404);
    assert!(page.contains("pg-nosuch"), "{page}");

    // A POST without the token, or with another, is refused and changes nothing.
    for body in ["", "csrf=0000"] {
        let (status, page) = curl(
            &server,
            &jar,
            &["-X", "POST", "-d", body, "URL/console/sign-out"],
        );
        assert_eq!(status, 403, "{page}");
        assert!(page.contains("CSRF token"), "{page}");
    }
    let (status, _) = curl(&server, &jar, &["URL/console/instances"]);
    assert_eq!(status, 200, "the session survived the refused POSTs");

    // The session outlives a restart of the server; the store keeps only a digest of
    // the id the browser holds.
    let id = cookie
        .split(&format!("{COOKIE}="))
        .nth(1)
        .and_then(|v| v.split(';').next())
        .unwrap()
        .to_string();
    assert_eq!(id.len(), 64, "{cookie}");
    server.kill();
    for file in ["lifeboat.db", "lifeboat.db-wal"] {
        let bytes = std::fs::read(server.data_dir.join(file)).unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(&id),
            "{file} holds the session id"
        );
    }
    server.spawn();
    let (status, page) = curl(&server, &jar, &["URL/console/instances"]);
    assert_eq!(status, 200, "signed out by a restart: {page}");
    assert_eq!(csrf_of(&page), csrf);

    // With it, the POST goes through: signing out ends the session.
    let (status, _) = curl(
        &server,
        &jar,
        &["-d", &format!("csrf={csrf}"), "URL/console/sign-out"],
    );
    assert_eq!(status, 303);
    let (status, _) = curl(&server, &jar, &["URL/console/instances"]);
    assert_eq!(status, 303);
}

/// A browser (which sends a `Referer`) gets every form's answer through a redirect to
/// the form's page: reloading it shows the same answer and sends nothing again.
#[tokio::test]
async fn console_answers_a_form_with_a_redirect_so_a_reload_sends_nothing_twice() {
    let mut server = TestServer::start();
    let jar = server.tmp.path().join("cookies");
    let (_, page) = curl(&server, &jar, &["URL/console/sign-in"]);
    let form_page = "URL/console/sign-in";
    let (status, answer) = curl(
        &server,
        &jar,
        &[
            "-e",
            form_page,
            "-d",
            &format!("token=wrong&csrf={}", csrf_of(&page)),
            "URL/console/sign-in",
        ],
    );
    assert_eq!(status, 303, "{answer}");
    assert!(
        answer.contains("location: /console/sign-in?error=wrong"),
        "{answer}"
    );
    let (status, page) = curl(&server, &jar, &["URL/console/sign-in?error=wrong"]);
    assert_eq!(status, 200);
    assert!(page.contains("That token is wrong"), "{page}");
    assert!(!page.contains("wrong&amp;csrf"), "{page}");
    let (status, _) = sign_in_with(&server, &jar, &server.token());
    assert_eq!(status, 303);

    // A diff of an instance that does not exist: the error comes back after a redirect
    // to the diff page, and stays there on every reload.
    let (_, page) = curl(&server, &jar, &["URL/console/diff"]);
    let csrf = csrf_of(&page);
    let (status, answer) = curl(
        &server,
        &jar,
        &[
            "-e",
            "URL/console/diff?source=",
            "-d",
            &format!("csrf={csrf}&source=pg-nosuch&target=pg-nosuch2&database=shop&other=public.t"),
            "URL/console/diff",
        ],
    );
    assert_eq!(status, 303, "{answer}");
    let location = answer
        .lines()
        .find_map(|l| l.strip_prefix("location: "))
        .unwrap_or_else(|| panic!("no location: {answer}"))
        .trim()
        .to_string();
    assert!(
        location.starts_with("/console/diff?source=&flash="),
        "{location}"
    );
    let shown = format!("URL{location}");
    for _ in 0..2 {
        let (status, page) = curl(&server, &jar, &[&shown]);
        assert_eq!(status, 404, "{page}");
        assert!(page.contains("pg-nosuch"), "{page}");
        assert!(
            page.contains(r#"value="shop""#),
            "the typed database is kept: {page}"
        );
    }
    // Another session never sees it; after a restart it is gone.
    let other = server.tmp.path().join("other-cookies");
    let (status, _) = sign_in_with(&server, &other, &server.token());
    assert_eq!(status, 303);
    let (status, page) = curl(&server, &other, &[&shown]);
    assert_eq!(status, 303);
    assert!(
        page.lines()
            .any(|l| l.trim() == "location: /console/diff?source="),
        "{page}"
    );
    server.kill();
    server.spawn();
    let (status, page) = curl(&server, &jar, &[&shown]);
    assert_eq!(status, 303);
    assert!(
        page.lines()
            .any(|l| l.trim() == "location: /console/diff?source="),
        "{page}"
    );
    // Without a Referer (a script), the answer comes at once.
    let (status, page) = curl(
        &server,
        &jar,
        &[
            "-d",
            &format!("csrf={csrf}&source=pg-nosuch&target=pg-nosuch2&other=public.t"),
            "URL/console/diff",
        ],
    );
    assert_eq!(status, 404, "{page}");
    assert!(page.contains("pg-nosuch"), "{page}");
}

#[tokio::test]
async fn console_signs_in_with_the_admin_password_from_the_config() {
    let mut server = TestServer::start();
    let short = server.tmp.path().join("short");
    std::fs::write(&short, "abc\n").unwrap();
    let err = server.fails(&["hash-password", "--password-file", short.to_str().unwrap()]);
    assert!(err.contains("shorter than 8 characters"), "{err}");

    let pw = server.password_file();
    let out = server.cli(&["hash-password", "--password-file", pw.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hash = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(!hash.contains(PASSWORD));

    // Without the key the console takes the token only.
    let jar = server.tmp.path().join("cookies");
    let (_, page) = curl(&server, &jar, &["URL/console/sign-in"]);
    assert!(!page.contains("Admin password"), "{page}");
    let (status, page) = sign_in_with(&server, &jar, PASSWORD);
    assert_eq!(status, 401, "{page}");

    let config = std::fs::read_to_string(&server.config).unwrap();
    std::fs::write(
        &server.config,
        format!("{config}\n[console]\nadmin_password_hash = \"{hash}\"\n"),
    )
    .unwrap();
    server.kill();
    server.spawn();
    let (_, page) = curl(&server, &jar, &["URL/console/sign-in"]);
    assert!(page.contains("Admin password or API token"), "{page}");

    let started = Instant::now();
    let (status, page) = sign_in_with(&server, &jar, &format!("{PASSWORD}x"));
    assert_eq!(status, 401, "{page}");
    assert!(
        page.contains("neither the admin password nor the API token"),
        "{page}"
    );
    assert!(!page.contains(&format!("{COOKIE}=")), "{page}");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "a failed sign-in answers after a delay"
    );
    let (status, _) = curl(&server, &jar, &["URL/console/instances"]);
    assert_eq!(status, 303, "no session after a wrong password");

    let (status, page) = sign_in_with(&server, &jar, PASSWORD);
    assert_eq!(status, 303, "{page}");
    let (status, page) = curl(&server, &jar, &["URL/console/instances"]);
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Instances"), "{page}");
    assert!(
        !server.log().contains(PASSWORD),
        "the password is never logged"
    );

    // The token still signs in too.
    let jar2 = server.tmp.path().join("cookies2");
    let (status, page) = sign_in_with(&server, &jar2, &server.token());
    assert_eq!(status, 303, "{page}");

    // A hash that is not one refuses to start, saying how to make one.
    let bad = server.tmp.path().join("bad.toml");
    std::fs::write(&bad, "[console]\nadmin_password_hash = \"hunter22\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_lifeboat"))
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&bad)
        .arg("--data-dir")
        .arg(server.tmp.path().join("other-data"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("lifeboat hash-password"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn console_finds_the_mistake_and_restores_to_just_before_it() {
    let Some(b) = Browser::start().await else {
        return;
    };
    let server = TestServer::start_archiving("");
    let (id, _port, c) = server.backed_up_master("shop").await;
    c.batch_execute(
        "CREATE TABLE orders (id int PRIMARY KEY); INSERT INTO orders SELECT generate_series(1, 3000);
         CREATE TABLE carts AS SELECT generate_series(1, 10) AS id;",
    )
    .await
    .unwrap();
    // The good commit, then the mistake, in the same second mostly; then another one.
    c.batch_execute("INSERT INTO orders VALUES (5000)")
        .await
        .unwrap();
    c.batch_execute("DELETE FROM orders WHERE id <= 3000")
        .await
        .unwrap();
    c.batch_execute("TRUNCATE carts").await.unwrap();

    b.client
        .goto(&format!("{}/console/sign-in", server.url))
        .await
        .unwrap();
    b.fill("#token", &server.token()).await;
    b.click("button[type=submit]").await;
    b.wait_path("the console to open", |p| p.ends_with("/console/instances"))
        .await;
    b.client
        .goto(&format!("{}/console/instances/{id}/temporary", server.url))
        .await
        .unwrap();
    // Newest first, named, each drawn on the timeline.
    let rows = b.text("#events tbody").await;
    let lines: Vec<&str> = rows.lines().collect();
    assert_eq!(lines.len(), 2, "{rows}");
    assert!(
        lines[0].contains("TRUNCATE") && lines[0].contains("public.carts"),
        "{rows}"
    );
    assert!(
        lines[1].contains("DELETE")
            && lines[1].contains("public.orders")
            && lines[1].contains("3000"),
        "{rows}"
    );
    let markers = b
        .client
        .find_all(Locator::Css("svg.timeline a.event-marker"))
        .await
        .unwrap();
    assert_eq!(markers.len(), 2);
    b.screenshot("events").await;

    // Filters: by kind, and a table that never existed says so.
    b.client
        .execute(
            "document.getElementById('event-kind').value = 'truncate'",
            vec![],
        )
        .await
        .unwrap();
    b.click("#event-filter button[type=submit]").await;
    b.wait_text("#events tbody", "the list filtered by kind", |t| {
        t.lines().count() == 1 && t.contains("TRUNCATE")
    })
    .await;
    b.click("#event-filter-clear").await;
    b.fill("#event-table", "public.nope").await;
    b.click("#event-filter button[type=submit]").await;
    let error = b.text("#events-error").await;
    assert!(
        error.contains("table public.nope was never seen"),
        "{error}"
    );
    b.fill("#event-table", "public.orders").await;
    b.click("#event-filter button[type=submit]").await;
    b.wait_text("#events tbody", "the list filtered by table", |t| {
        t.lines().count() == 1 && t.contains("DELETE")
    })
    .await;

    // "Restore to just before this" fills in the form; the copy has the good commit.
    let event = b
        .find("#events tbody tr")
        .await
        .attr("data-event")
        .await
        .unwrap()
        .unwrap();
    b.click("#events tbody tr a.restore-before").await;
    let chosen = b.text("#before-chosen").await;
    assert!(
        chosen.contains(&event) && chosen.contains("DELETE on public.orders"),
        "{chosen}"
    );
    assert!(
        b.client.find(Locator::Css("#at")).await.is_err(),
        "no time to pick"
    );
    b.click("#create-temporary-button").await;
    assert!(b.text("#confirm-temporary").await.contains(&event));
    b.click("#confirm-ok").await;
    b.wait_text("#temporary-status", "the temporary instance to run", |s| {
        s == "running"
    })
    .await;
    let restored_to = b.text("#restored-to").await;
    assert!(
        restored_to.contains("just before transaction") && restored_to.contains(&event),
        "{restored_to}"
    );
    let temp = server.json(&["temp", "show", &id]);
    let copy = connect(port_of(&temp), "admin", PASSWORD).await.unwrap();
    assert_eq!(count_rows(&copy, "orders").await, 3001);
    b.screenshot("restored-before-event").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn console_lets_a_user_fix_a_wrong_password() {
    let Some(b) = Browser::start().await else {
        return;
    };
    let server = TestServer::start();
    let src = server.create_master("source");
    let dst = server.create_master("target");
    let (src, dst) = (id_of(&src), id_of(&dst));
    let c = connect(
        port_of(&server.json(&["instance", "show", &src])),
        "admin",
        PASSWORD,
    )
    .await
    .unwrap();
    c.batch_execute("CREATE TABLE orders (id int PRIMARY KEY); INSERT INTO orders SELECT generate_series(1, 700);")
        .await
        .unwrap();
    b.client
        .goto(&format!("{}/console/sign-in", server.url))
        .await
        .unwrap();
    b.fill("#token", &server.token()).await;
    b.click("button[type=submit]").await;
    b.wait_path("the console", |p| !p.ends_with("/sign-in"))
        .await;

    // A wrong target password is said at the first step, beside its field; no task
    // is left behind.
    b.client
        .goto(&format!(
            "{}/console/migrations/new?source={src}&target={dst}",
            server.url
        ))
        .await
        .unwrap();
    b.fill("#source_password", PASSWORD).await;
    b.fill("#target_password", "not the password").await;
    b.click("#authorize-next").await;
    let error = b
        .wait_text("#target_password + .error", "the refused login", |t| {
            t.contains("refused the account admin")
        })
        .await;
    assert!(error.contains(&dst), "{error}");
    assert!(
        !error.contains("--"),
        "the console names no CLI flag: {error}"
    );
    assert_eq!(server.json(&["migration", "list"]), serde_json::json!([]));
    b.screenshot("migration-wizard-wrong-password").await;

    // A task whose password went wrong later (here: created so through the CLI) is
    // fixed by Edit: a new password, the pre-check passes, the task completes.
    let wrong = server.tmp.path().join("wrong-password");
    std::fs::write(&wrong, "not the password\n").unwrap();
    let args = task_args(
        &server,
        &src,
        &dst,
        &wrong,
        &["--object", "postgres.public.orders=orders_restored"],
    );
    let task = server.json(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let task = task["id"].as_str().unwrap().to_string();
    server.json(&["migration", "authorize", &task]);
    b.client
        .goto(&format!("{}/console/migrations/{task}/objects", server.url))
        .await
        .unwrap();
    assert!(b.text("h1").await.starts_with("Edit migration task"));
    // An empty selection is refused; the error goes once an object is added again,
    // and a picked object leaves the Available list.
    b.click("#selected li .remove").await;
    b.click("#precheck-start").await;
    let error = b
        .wait_text(".picker-error", "the selection error", |t| {
            t.contains("no object selected")
        })
        .await;
    assert!(!error.contains("--"), "{error}");
    let option = "#available option[value='postgres.public.orders']";
    let hidden = async |css: &str| b.find(css).await.prop("hidden").await.unwrap();
    assert_eq!(hidden(option).await.as_deref(), Some("false"));
    b.click(option).await;
    b.click("#add").await;
    assert!(b.client.find(Locator::Css(".picker-error")).await.is_err());
    assert_eq!(hidden(option).await.as_deref(), Some("true"));
    b.click("#selected li .edit").await;
    b.fill("#selected li .rename", "orders_restored").await;
    b.fill("#target_password", PASSWORD).await;
    b.click("#precheck-start").await;
    b.wait_text("#task-state", "the pre-check to pass", |s| {
        s.contains("precheck passed")
    })
    .await;
    let done = server.json(&["migration", "start", &task, "--wait"]);
    assert_eq!(done["state"], "completed", "{done}");
    let t = connect(
        port_of(&server.json(&["instance", "show", &dst])),
        "admin",
        PASSWORD,
    )
    .await
    .unwrap();
    let n: i64 = t
        .query_one("SELECT count(*) FROM orders_restored", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 700);

    // Deleting the task asks first, then says what happened.
    let name = done["name"].as_str().unwrap().to_string();
    b.client
        .goto(&format!("{}/console/migrations/{task}", server.url))
        .await
        .unwrap();
    b.click("button[data-action=delete]").await;
    assert!(
        b.find(&format!("dialog#delete-{task}"))
            .await
            .is_displayed()
            .await
            .unwrap()
    );
    b.click("#delete-ok").await;
    let notice = b
        .wait_text("#deleted", "the deletion notice", |t| t.contains("Deleted"))
        .await;
    assert!(notice.contains(&name), "{notice}");
    assert_eq!(server.json(&["migration", "list"]), serde_json::json!([]));
}

#[tokio::test(flavor = "multi_thread")]
async fn console_shows_what_a_repair_will_change_before_it_starts() {
    let Some(b) = Browser::start().await else {
        return;
    };
    let server = TestServer::start();
    let (src, dst) = (
        id_of(&server.create_master("source")),
        id_of(&server.create_master("target")),
    );
    let table = "CREATE TABLE orders (id int PRIMARY KEY, total numeric(12,2)); \
        INSERT INTO orders SELECT g, g FROM generate_series(1, 2000) g;";
    for id in [&src, &dst] {
        let c = connect(
            port_of(&server.json(&["instance", "show", id])),
            "admin",
            PASSWORD,
        )
        .await
        .unwrap();
        c.batch_execute(table).await.unwrap();
        if id == &dst {
            c.batch_execute(
                "UPDATE orders SET total = 0 WHERE id <= 4; DELETE FROM orders WHERE id > 1998;",
            )
            .await
            .unwrap();
        }
    }
    let task = create_task(
        &server,
        &src,
        &dst,
        &["--object", "postgres.public.orders", "--conflict", "repair"],
    );
    let task = task["id"].as_str().unwrap().to_string();
    server.json(&["migration", "authorize", &task]);
    b.client
        .goto(&format!("{}/console/sign-in", server.url))
        .await
        .unwrap();
    b.fill("#token", &server.token()).await;
    b.click("button[type=submit]").await;
    b.wait_path("the console", |p| !p.ends_with("/sign-in"))
        .await;
    b.client
        .goto(&format!("{}/console/migrations/{task}/objects", server.url))
        .await
        .unwrap();
    let mode = b.find("#conflict").await.prop("value").await.unwrap();
    assert_eq!(mode.as_deref(), Some("repair"));
    b.click("#precheck-start").await;
    b.wait_text("#task-state", "the pre-check to pass", |s| {
        s.contains("precheck passed")
    })
    .await;
    let preview = b.text("tr[data-item=repair_preview] .repair-preview").await;
    assert!(
        preview.starts_with(
            "postgres.public.orders: 2 rows to insert (id=1999; id=2000), 4 to update (saved first) (id=1: total 0.00 -> 1.00; id=2: total 0.00 -> 2.00; id=3: total 0.00 -> 3.00, ...), 0 only in the target"
        ),
        "{preview}"
    );
    assert!(!preview.contains("--"), "{preview}");
    b.screenshot("repair-preview").await;
}

/// The `location` header of a console answer.
fn location_of(answer: &str) -> String {
    answer
        .lines()
        .find_map(|l| l.strip_prefix("location: "))
        .unwrap_or_else(|| panic!("no location: {answer}"))
        .trim()
        .to_string()
}

/// A time as the console shows it: the server's zone, to the second, with its offset.
fn console_time(rfc3339: &serde_json::Value) -> String {
    let t =
        chrono::DateTime::parse_from_rfc3339(rfc3339.as_str().expect("a time")).expect("RFC 3339");
    t.with_timezone(&Local)
        .format("%Y-%m-%d %H:%M:%S %:z")
        .to_string()
}

#[tokio::test]
async fn console_lists_a_deleted_master_from_the_repository_and_clones_it_at_a_time() {
    let server = TestServer::start_archiving("");
    let (id, _, admin) = server.backed_up_master("shop").await;
    create_orders(&admin, 30).await;
    // The field has whole seconds: leave a second on each side of the chosen point.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let t = now_and_switch(&admin).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    admin
        .batch_execute("INSERT INTO orders SELECT generate_series(31, 50)")
        .await
        .unwrap();
    let after = now_and_switch(&admin).await;
    server.wait_window_reaches(&id, after).await;
    drop(admin);
    // Deleting the master leaves its backups in the repository.
    server.json(&["instance", "delete", &id]);
    let repo = server.json(&["repository", "list"]);
    let entry = repo["entries"]
        .as_array()
        .and_then(|all| all.iter().find(|e| e["id"] == id.as_str()))
        .unwrap_or_else(|| panic!("{id} in the repository: {repo}"))
        .clone();
    assert_eq!(entry["relation"], "deleted", "{entry}");

    // The repository page lists it, in words, with its window to the second.
    let jar = server.tmp.path().join("cookies");
    console_session(&server, &jar);
    let (status, page) = curl(&server, &jar, &["URL/console/repository"]);
    assert_eq!(status, 200, "{page}");
    let row = page
        .split(&format!("data-entry=\"{id}\""))
        .nth(1)
        .and_then(|r| r.split("</tr>").next())
        .unwrap_or_else(|| panic!("a row for {id}: {page}"));
    for shown in [
        "shop",
        "local",
        "deleted on this server",
        &format!("PostgreSQL {}", entry["engine_version"].as_str().unwrap()),
        &console_time(&entry["window"]["earliest"]),
        &console_time(&entry["window"]["latest"]),
        &format!("<td>{}</td>", entry["backups"]),
    ] {
        assert!(row.contains(shown), "{shown} in {row}");
    }

    // A time outside the window: the error beside the typed values, after a redirect
    // to the form's page; nothing is created.
    let entry_page = format!("URL/console/repository/{id}");
    let (status, page) = curl(&server, &jar, &[&entry_page]);
    assert_eq!(status, 200, "{page}");
    let csrf = csrf_of(&page);
    let post = |name: &str, at: &str| {
        curl(
            &server,
            &jar,
            &[
                "-e",
                &entry_page,
                "--data-urlencode",
                &format!("csrf={csrf}"),
                "--data-urlencode",
                &format!("name={name}"),
                "--data-urlencode",
                &format!("at={at}"),
                "--data-urlencode",
                "tz=",
                &format!("URL/console/repository/{id}/clone"),
            ],
        )
    };
    let before = server.json(&["instance", "list"]);
    let (status, answer) = post("shop-old", "2020-01-01 00:00:00");
    assert_eq!(status, 303, "{answer}");
    let shown = location_of(&answer);
    assert!(
        shown.starts_with(&format!("/console/repository/{id}?flash=")),
        "{shown}"
    );
    let (status, page) = curl(&server, &jar, &[&format!("URL{shown}")]);
    assert_eq!(status, 400, "{page}");
    let error = page
        .split("role=\"alert\"")
        .nth(1)
        .unwrap_or_else(|| panic!("an error: {page}"));
    assert!(
        error.contains("2020-01-01 00:00:00") && error.contains("is outside the restorable window"),
        "{error}"
    );
    assert!(
        error.contains(&format!(
            "pick a time between {} and {}",
            console_time(&entry["window"]["earliest"]),
            console_time(&entry["window"]["latest"])
        )),
        "{error}"
    );
    assert!(page.contains(r#"value="shop-old""#), "{page}");
    assert!(page.contains(r#"value="2020-01-01 00:00:00""#), "{page}");
    // A name the server refuses is said as plainly.
    let (_, answer) = post("9-shop", &t.format("%Y-%m-%d %H:%M:%S").to_string());
    let (status, page) = curl(&server, &jar, &[&format!("URL{}", location_of(&answer))]);
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("invalid instance name"), "{page}");
    assert_eq!(server.json(&["instance", "list"]), before);

    // A time inside the window: the new master's page, which follows its build.
    let at = t
        .trunc_subsecs(0)
        .with_timezone(&Local)
        .format("%Y-%m-%d %H:%M:%S")
        .to_string();
    let (status, answer) = post("shop-back", &at);
    assert_eq!(status, 303, "{answer}");
    let location = location_of(&answer);
    let clone_id = location
        .strip_prefix("/console/instances/")
        .unwrap_or_else(|| panic!("the new master's page: {location}"))
        .to_string();
    assert_ne!(clone_id, id);
    let (status, page) = curl(&server, &jar, &[&format!("URL{location}")]);
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("shop-back"), "{page}");
    assert!(
        page.contains(&format!("href=\"/console/repository/{id}\"")),
        "restored from the repository's {id}: {page}"
    );
    let shown = server
        .wait_for("the clone to run", || {
            let v = server.json(&["instance", "show", &clone_id]);
            assert_ne!(v["status"], "failed", "{v}");
            (v["status"] == "running").then_some(v)
        })
        .await;
    assert_eq!(shown["kind"], "master", "{shown}");
    let c = connect(port_of(&shown), "admin", PASSWORD)
        .await
        .expect("the account the master had then");
    assert_eq!(count_rows(&c, "orders").await, 30);
    let max: i32 = c
        .query_one("SELECT max(id) FROM orders", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(max, 30);
    let (_, page) = curl(&server, &jar, &[&format!("URL{location}")]);
    assert!(!page.contains("build-progress"), "built: {page}");
}

/// Adopting a cluster Lifeboat did not create, from the console: the check lists every
/// item; a wrong password is said on the form (422, nothing recorded); the right one
/// adopts it, and its page says it is managed externally.
#[tokio::test(flavor = "multi_thread")]
async fn console_adopts_a_cluster_lifeboat_did_not_create() {
    let Some(b) = Browser::start().await else {
        return;
    };
    let tc = super::adoption::ForeignCluster::start();
    super::adoption::set_up(&tc).await;
    let server = TestServer::start();
    b.client
        .goto(&format!("{}/console/sign-in", server.url))
        .await
        .unwrap();
    b.fill("#token", &server.token()).await;
    b.click("button[type=submit]").await;
    b.wait_path("the console", |p| !p.ends_with("/sign-in"))
        .await;
    b.client
        .goto(&format!("{}/console/instances", server.url))
        .await
        .unwrap();
    b.click("#adopt-link button").await;
    b.wait_path("the adopt form", |p| p.ends_with("/instances/adopt"))
        .await;
    let fill_all = |password: &'static str| {
        let b = &b;
        let port = tc.port.to_string();
        async move {
            b.fill("#name", "legacy").await;
            b.fill("#host", "127.0.0.1").await;
            b.fill("#port", &port).await;
            b.fill("#account", "adm").await;
            b.fill("#password", password).await;
        }
    };
    fill_all("adm-pw").await;
    b.click("#adopt-check").await;
    let table = b
        .wait_text("#adoption-items", "the adoption check", |t| {
            t.contains("Reachable and authenticated")
        })
        .await;
    for (_, name) in lifeboat_postgres::adoption::ITEMS {
        assert!(table.contains(name), "{name} missing: {table}");
    }
    b.find("#adoptable").await;
    b.screenshot("adopt-check").await;

    fill_all("not-it").await;
    b.click("#adopt").await;
    let error = b
        .wait_text(".error", "the refused adoption", |t| {
            t.contains("cannot be adopted")
        })
        .await;
    assert!(error.contains("password authentication failed"), "{error}");
    assert_eq!(server.json(&["instance", "list"]), serde_json::json!([]));

    fill_all("adm-pw").await;
    b.click("#adopt").await;
    let path = b
        .wait_path("the adopted instance's page", |p| {
            p.starts_with("/console/instances/pg-")
        })
        .await;
    let managed = b.text("#managed").await;
    assert!(managed.starts_with("externally"), "{managed}");
    let id = path.trim_start_matches("/console/instances/").to_string();
    let shown = server.json(&["instance", "show", &id]);
    assert_eq!(shown["managed"], "external", "{shown:#}");
    b.screenshot("adopted-instance").await;
}
