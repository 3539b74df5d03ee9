//! The HTTP application called in process (`tower::ServiceExt::oneshot` on
//! `http::app`), without a socket and without PostgreSQL: every answer these requests
//! get is decided before a cluster would be touched. Instances are staged in the
//! metadata store as records only.

// Tests may panic on what they set up themselves.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use lifeboat_domain::{InstanceId, InstanceKind, InstanceStatus, WhitelistEntry};
use lifeboat_server::Config;
use lifeboat_server::control::{Control, Shared};
use lifeboat_server::credentials::SecretBox;
use lifeboat_store::{NewInstance, Store};
use serde_json::{Value, json};
use tower::ServiceExt;

const TOKEN: &str = "test-token";
const PASSWORD: &str = "correct horse battery";
const FAILURE: &str = "recovery ended before the recovery target was reached";

struct App {
    state: Shared,
    _dir: tempfile::TempDir,
}

impl App {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let state = Arc::new(Control::new(
            Config::load(None).unwrap(),
            dir.path().to_path_buf(),
            Store::in_memory().unwrap(),
            TOKEN.into(),
            SecretBox::load_or_create(dir.path()).unwrap(),
        ));
        Self { state, _dir: dir }
    }

    /// Sends one request; returns the status and the body (JSON, or a string).
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.call_as(Some(TOKEN), method, path, body).await
    }

    async fn call_as(
        &self,
        token: Option<&str>,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = match body {
            Some(b) => req
                .header("content-type", "application/json")
                .body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        }
        .unwrap();
        let resp = lifeboat_server::http::app(self.state.clone())
            .oneshot(req)
            .await
            .unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (status, value)
    }

    /// A record of a temporary instance whose build failed, with no cluster behind it.
    fn stage_failed_temporary(&self, master: &InstanceId) -> InstanceId {
        let id = self.record("shop-temp", InstanceKind::Temporary, 15510, Some(master));
        self.state
            .store
            .set_status(&id, InstanceStatus::Failed, Some(FAILURE))
            .unwrap();
        id
    }

    /// A record of a running instance, with no cluster behind it.
    fn stage(&self, name: &str, kind: InstanceKind, port: u16) -> InstanceId {
        let id = self.record(name, kind, port, None);
        self.state
            .store
            .set_status(&id, InstanceStatus::Running, None)
            .unwrap();
        id
    }

    /// A new record (`creating`).
    fn record(
        &self,
        name: &str,
        kind: InstanceKind,
        port: u16,
        master: Option<&InstanceId>,
    ) -> InstanceId {
        self.state
            .store
            .insert_instance(&NewInstance {
                id: InstanceId::generate(),
                name: name.into(),
                kind,
                region: "local".into(),
                port,
                engine_version: "15".into(),
                master_id: master.cloned(),
                expires_at: None,
                privileged_account: "admin".into(),
                pending_verifier: None,
                restore_target: None,
                restored_from: None,
                upgrade_to: None,
                management_role: None,
                external: None,
                whitelist: vec![WhitelistEntry::localhost()],
            })
            .unwrap()
            .id
    }
}

fn assert_error(got: &(StatusCode, Value), status: StatusCode, code: &str, message: &str) {
    assert_eq!(got.0, status, "{}", got.1);
    assert_eq!(got.1["code"], code, "{}", got.1);
    assert!(
        got.1["message"].as_str().unwrap().contains(message),
        "{} does not say '{message}'",
        got.1
    );
    assert!(!got.1["hint"].as_str().unwrap().is_empty(), "{}", got.1);
}

#[tokio::test]
async fn the_token_is_required_on_the_api_and_nowhere_else() {
    let app = App::new();
    let (s, b) = app.call_as(None, "GET", "/healthz", None).await;
    assert_eq!((s, b), (StatusCode::OK, Value::String("ok\n".into())));
    let got = app.call_as(None, "GET", "/api/v1/instances", None).await;
    assert_error(
        &got,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "carries no API token",
    );
    let got = app
        .call_as(Some("wrong"), "GET", "/api/v1/regions", None)
        .await;
    assert_error(
        &got,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "the API token is wrong",
    );
    let (s, b) = app.call("GET", "/api/v1/regions", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        b,
        json!([{"name": "local", "address": "127.0.0.1", "ports": "15432-15999"}])
    );
}

#[tokio::test]
async fn unknown_routes_ids_and_methods_are_told_apart() {
    let app = App::new();
    let got = app.call("GET", "/api/v1/nothing-here", None).await;
    assert_error(
        &got,
        StatusCode::NOT_FOUND,
        "not_found",
        "no such API route",
    );
    let got = app.call("GET", "/api/v1/instances/pg-zzzzzz", None).await;
    assert_error(
        &got,
        StatusCode::NOT_FOUND,
        "not_found",
        "instance pg-zzzzzz not found",
    );
    let got = app.call("GET", "/api/v1/instances/bogus", None).await;
    assert_error(
        &got,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        "'bogus' is not an instance id",
    );
    let got = app.call("PUT", "/api/v1/instances", None).await;
    assert_error(
        &got,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "does not take that method",
    );
    let got = app.call("GET", "/api/v1/migrations/mt-nope00", None).await;
    assert_error(
        &got,
        StatusCode::NOT_FOUND,
        "not_found",
        "migration task mt-nope00 not found",
    );
}

#[tokio::test]
async fn malformed_bodies_and_queries_are_bad_requests() {
    let app = App::new();
    let got = app
        .call("POST", "/api/v1/instances", Some(json!({"name": "shop"})))
        .await;
    assert_error(
        &got,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        "invalid request body",
    );
    let got = app
        .call(
            "POST",
            "/api/v1/instances",
            Some(json!({"name": "2bad", "account": "admin", "password": PASSWORD})),
        )
        .await;
    assert_error(
        &got,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        "invalid instance name '2bad'",
    );
    let id = app.stage("shop", InstanceKind::Master, 15500);
    let got = app
        .call("DELETE", &format!("/api/v1/instances/{id}/whitelist"), None)
        .await;
    assert_error(
        &got,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        "invalid query",
    );
    let got = app
        .call(
            "POST",
            "/api/v1/diff",
            Some(json!({"source": {"instance": id.to_string()}, "target": {"instance": id.to_string()}})),
        )
        .await;
    assert_error(
        &got,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        "no table to compare",
    );
}

#[tokio::test]
async fn a_temporary_instance_needs_exactly_one_target_in_the_past() {
    let app = App::new();
    let id = app.stage("shop", InstanceKind::Master, 15500);
    let path = format!("/api/v1/instances/{id}/temporary");
    let got = app.call("POST", &path, Some(json!({}))).await;
    assert_error(
        &got,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        "give exactly one recovery target",
    );
    let got = app
        .call("POST", &path, Some(json!({"at": "2999-01-01T00:00:00Z"})))
        .await;
    assert_error(
        &got,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        "is in the future",
    );
    let got = app.call("POST", &path, Some(json!({"lsn": "nope"}))).await;
    assert_error(
        &got,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        "'nope' is not an LSN",
    );
    let got = app.call("GET", &path, None).await;
    assert_error(
        &got,
        StatusCode::NOT_FOUND,
        "not_found",
        "has no temporary instance",
    );
    let got = app
        .call(
            "POST",
            &path,
            Some(json!({"restore_point": "before\ndelete"})),
        )
        .await;
    assert_error(
        &got,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        "holds a control character",
    );
}

#[tokio::test]
async fn an_instance_of_a_major_lifeboat_does_not_run_is_refused_at_start() {
    let app = App::new();
    let id = app.record("old", InstanceKind::Master, 15520, None);
    app.state.store.set_engine_version(&id, "14.10").unwrap();
    app.state
        .store
        .set_status(&id, InstanceStatus::Running, None)
        .unwrap();
    app.state
        .store
        .set_status(&id, InstanceStatus::Stopped, None)
        .unwrap();
    let got = app
        .call("POST", &format!("/api/v1/instances/{id}/start"), None)
        .await;
    assert_error(
        &got,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        "PostgreSQL 14 is not supported: Lifeboat runs PostgreSQL 15 to 18",
    );
}

#[tokio::test]
async fn a_failed_temporary_instance_keeps_why_and_refuses_changes_with_409() {
    let app = App::new();
    let master = app.stage("shop", InstanceKind::Master, 15500);
    let temp = app.stage_failed_temporary(&master);
    let base = format!("/api/v1/instances/{temp}");
    let got = app
        .call(
            "POST",
            &format!("{base}/whitelist"),
            Some(json!({"cidr": "10.0.0.5"})),
        )
        .await;
    assert_error(
        &got,
        StatusCode::CONFLICT,
        "invalid_state",
        &format!("instance {temp} is failed: its whitelist cannot change"),
    );
    let got = app
        .call("DELETE", &format!("{base}/whitelist?cidr=127.0.0.1"), None)
        .await;
    assert_error(
        &got,
        StatusCode::CONFLICT,
        "invalid_state",
        "its whitelist cannot change",
    );
    let got = app.call("POST", &format!("{base}/stop"), None).await;
    assert_error(&got, StatusCode::CONFLICT, "invalid_state", FAILURE);
    let got = app.call("POST", &format!("{base}/start"), None).await;
    assert_error(&got, StatusCode::CONFLICT, "invalid_state", FAILURE);
    // Nothing changed: still failed, for the same reason, with its one entry.
    let (s, shown) = app.call("GET", &base, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(shown["status"], "failed");
    assert_eq!(shown["status_detail"], FAILURE);
    assert_eq!(shown["whitelist"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_migration_task_through_its_states_never_shows_a_password() {
    let app = App::new();
    let temp = app.stage("shop-temp", InstanceKind::Temporary, 15501);
    let master = app.stage("shop", InstanceKind::Master, 15500);
    let side = |id: &InstanceId| json!({"instance": id.to_string(), "account": "admin", "password": PASSWORD});
    let (s, task) = app
        .call(
            "POST",
            "/api/v1/migrations",
            Some(json!({
                "name": "restore-orders",
                "source": side(&temp),
                "target": side(&master),
                "objects": ["shop.public.orders"],
                "conflict": "skip-existing",
            })),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{task}");
    assert_eq!(task["state"], "not_started");
    assert_eq!(task["types"], json!(["schema", "data"]));
    assert_eq!(task["conflict"], "skip-existing");
    let id = task["id"].as_str().unwrap().to_string();

    let got = app
        .call(
            "POST",
            "/api/v1/migrations",
            Some(json!({"name": "restore-orders", "source": side(&temp), "target": side(&master)})),
        )
        .await;
    assert_error(
        &got,
        StatusCode::CONFLICT,
        "duplicate_name",
        "a migration task named 'restore-orders'",
    );

    let got = app
        .call(
            "PATCH",
            &format!("/api/v1/migrations/{id}"),
            Some(json!({"conflict": "merge"})),
        )
        .await;
    assert_error(
        &got,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        "unknown conflict mode 'merge'",
    );
    let (s, changed) = app
        .call(
            "PATCH",
            &format!("/api/v1/migrations/{id}"),
            Some(json!({"types": "data", "conflict": "overwrite"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{changed}");
    assert_eq!(
        (changed["types"].clone(), changed["conflict"].clone()),
        (json!(["data"]), json!("overwrite"))
    );

    let got = app
        .call("POST", &format!("/api/v1/migrations/{id}/start"), None)
        .await;
    assert_error(
        &got,
        StatusCode::CONFLICT,
        "precheck_required",
        "it starts only after its pre-check passed",
    );
    let got = app
        .call("POST", &format!("/api/v1/migrations/{id}/cancel"), None)
        .await;
    assert_error(&got, StatusCode::CONFLICT, "invalid_state", "not migrating");

    // Every answer about the task, and the store's listing, lack the password.
    let (_, shown) = app
        .call("GET", &format!("/api/v1/migrations/{id}"), None)
        .await;
    let (_, list) = app.call("GET", "/api/v1/migrations", None).await;
    for answer in [&task, &changed, &shown, &list] {
        let text = answer.to_string();
        assert!(
            !text.contains(PASSWORD) && !text.contains("sealed"),
            "{text}"
        );
    }
    let stored = app.state.store.find_task(&id).unwrap().unwrap();
    assert!(
        !stored.doc.contains(PASSWORD),
        "the stored task holds the password in clear"
    );

    let (s, _) = app
        .call("DELETE", &format!("/api/v1/migrations/{id}"), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, list) = app.call("GET", "/api/v1/migrations", None).await;
    assert_eq!(list, json!([]));
}

#[tokio::test]
async fn the_openapi_document_lists_every_route() {
    let app = App::new();
    let (s, doc) = app.call("GET", "/api/v1/openapi.json", None).await;
    assert_eq!(s, StatusCode::OK);
    let paths: Vec<&String> = doc["paths"].as_object().unwrap().keys().collect();
    for p in [
        "/api/v1/instances",
        "/api/v1/instances/{id}",
        "/api/v1/instances/{id}/whitelist",
        "/api/v1/instances/{id}/temporary",
        "/api/v1/instances/{id}/window",
        "/api/v1/diff",
        "/api/v1/migrations/{task}/precheck",
    ] {
        assert!(
            paths.iter().any(|k| k.as_str() == p),
            "{p} missing from {paths:?}"
        );
    }
    // States are written as the API writes them.
    let statuses = &doc["components"]["schemas"]["InstanceStatus"]["enum"];
    assert_eq!(
        statuses,
        &json!([
            "creating", "running", "stopped", "failed", "deleting", "released"
        ])
    );
    let codes = &doc["components"]["schemas"]["ErrorCode"]["enum"];
    assert!(
        codes
            .as_array()
            .unwrap()
            .contains(&json!("temporary_instance_exists")),
        "{codes}"
    );
}

#[tokio::test]
async fn the_console_asks_for_a_session() {
    let app = App::new();
    let req = Request::builder()
        .uri("/console/instances")
        .body(Body::empty())
        .unwrap();
    let resp = lifeboat_server::http::app(app.state.clone())
        .oneshot(req)
        .await
        .unwrap();
    assert!(resp.status().is_redirection(), "{}", resp.status());
    assert_eq!(resp.headers()["location"], "/console/sign-in");
}
