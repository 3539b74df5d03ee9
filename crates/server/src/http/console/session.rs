//! Signing in to the console, sessions, and the guard every console route passes.
//!
//! Signing in takes the server's API token once, or the admin password when
//! `[console] admin_password_hash` is set; the browser then holds only a random
//! session id in an `HttpOnly`, `SameSite=Strict` cookie, so the token never sits in
//! the browser. Sessions are kept in the metadata store, as the SHA-256 of their id,
//! so a restart of the server keeps browsers signed in until their session ends.
//! Every POST must carry the session's CSRF token (a form field `csrf` or the
//! `X-CSRF-Token` header); `SameSite=Strict` alone would leave older browsers and
//! same-site attackers unchecked. The sign-in form, which has no session
//! yet, carries a nonce that must match a cookie set with the form (double submit).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use lifeboat_store::StoreError;
use maud::html;
use sha2::{Digest, Sha256};

use super::flash::{self, Flashes};
use super::form::Fields;
use super::layout;
use crate::control::Shared;
use crate::credentials::{constant_time_eq, random_hex};

pub const COOKIE: &str = "lifeboat_session";
/// Ties the sign-in form to the browser that loaded it (double-submit), so another
/// site cannot sign a browser in to this console with a token of its choosing.
const SIGN_IN_COOKIE: &str = "lifeboat_sign_in";
/// A session ends this long after sign-in.
const LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// The largest form the console accepts.
const MAX_FORM: usize = 1 << 20;

/// The console's sessions, kept in the metadata store.
pub struct Sessions {
    state: Shared,
    /// Pages answering a POST, shown again after the redirect.
    flashes: Flashes,
}

/// The store's key for a session id: its SHA-256, so the store holds no usable cookie.
fn digest(id: &str) -> String {
    hex::encode(Sha256::digest(id.as_bytes()))
}

fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl Sessions {
    pub fn new(state: Shared) -> Self {
        Self {
            state,
            flashes: Flashes::default(),
        }
    }

    /// A new session: (its id, for the cookie; its CSRF token).
    fn create(&self) -> Result<(String, String), StoreError> {
        let id = random_hex();
        let csrf = random_hex();
        let now = unix_now();
        let lifetime = i64::try_from(LIFETIME.as_secs()).unwrap_or(i64::MAX);
        self.state.store.create_console_session(
            &digest(&id),
            &csrf,
            now,
            now.saturating_add(lifetime),
        )?;
        Ok((id, csrf))
    }

    fn csrf_of(&self, id: &str) -> Result<Option<String>, StoreError> {
        self.state
            .store
            .console_session_csrf(&digest(id), unix_now())
    }

    fn remove(&self, id: &str) -> Result<(), StoreError> {
        self.state.store.delete_console_session(&digest(id))
    }
}

/// The page shown when the store cannot be read or written.
fn store_failure(e: &StoreError) -> Response {
    tracing::error!(error = %e, "console sessions: the metadata store failed");
    layout::message_page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Sessions unavailable",
        "The server cannot read or write its metadata store (lifeboat.db in the data directory), where console sessions live. Check that disk's free space and the server's log, then reload.",
    )
}

/// What a handler knows about the signed-in user; put in the request by [`guard`].
#[derive(Clone)]
pub struct Ctx {
    pub session: String,
    pub csrf: String,
    pub sessions: Arc<Sessions>,
}

fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// Paths reachable without a session.
fn is_public(path: &str) -> bool {
    matches!(
        path,
        "/console/sign-in" | "/console/assets/console.css" | "/console/assets/console.js"
    )
}

/// Requires a session on every console route, and a matching CSRF token on every POST.
pub async fn guard(
    State(sessions): State<Arc<Sessions>>,
    mut req: Request,
    next: Next,
) -> Response {
    let path = req.uri().path().to_string();
    if is_public(&path) || !path.starts_with("/console") {
        return next.run(req).await;
    }
    let session = cookie_value(req.headers(), COOKIE);
    let csrf = match session.as_deref().map(|s| sessions.csrf_of(s)) {
        Some(Ok(csrf)) => csrf,
        Some(Err(e)) => return store_failure(&e),
        None => None,
    };
    let (Some(session), Some(csrf)) = (session, csrf) else {
        if req.method() == Method::GET && !path.ends_with(".json") {
            return Redirect::to("/console/sign-in").into_response();
        }
        return layout::message_page(
            StatusCode::UNAUTHORIZED,
            "Sign in first",
            "This page needs a console session; it has ended or was never started.",
        );
    };
    let key = digest(&session);
    if req.method() == Method::GET
        && let Some(id) = flash::flash_id(req.uri())
    {
        return sessions.flashes.show(&key, &id, req.uri());
    }
    let mut back_to = None;
    if req.method() == Method::POST {
        let (parts, body) = req.into_parts();
        back_to = flash::form_page(&parts.headers);
        let Ok(bytes) = axum::body::to_bytes(body, MAX_FORM).await else {
            return layout::message_page(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Form too large",
                "The console accepts forms of up to 1 MiB.",
            );
        };
        let given = parts
            .headers
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .or_else(|| Fields::parse(&bytes).get("csrf").map(str::to_string));
        if !given.is_some_and(|g| constant_time_eq(g.as_bytes(), csrf.as_bytes())) {
            return layout::message_page(
                StatusCode::FORBIDDEN,
                "Form refused",
                "This form did not carry this session's CSRF token, so it may not come from the console. Go back, reload the page and submit it again.",
            );
        }
        req = Request::from_parts(parts, Body::from(bytes));
    }
    req.extensions_mut().insert(Ctx {
        session,
        csrf,
        sessions: sessions.clone(),
    });
    let response = next.run(req).await;
    match back_to {
        Some(page) => sessions.flashes.keep(&key, &page, response).await,
        None => response,
    }
}

/// A failed sign-in answers no sooner than this, which slows guessing.
const FAILED_SIGN_IN_DELAY: Duration = Duration::from_secs(1);

/// Why a sign-in was refused; a browser is sent back to the form with it
/// (`?error=...`), so a reload does not send the secret again.
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Refusal {
    /// The form's nonce did not match its cookie.
    Stale,
    /// Nothing was typed.
    Empty,
    /// Neither the admin password nor the token.
    Wrong,
}

impl Refusal {
    fn status(self) -> StatusCode {
        match self {
            Refusal::Stale => StatusCode::FORBIDDEN,
            Refusal::Empty => StatusCode::BAD_REQUEST,
            Refusal::Wrong => StatusCode::UNAUTHORIZED,
        }
    }

    fn code(self) -> &'static str {
        match self {
            Refusal::Stale => "stale",
            Refusal::Empty => "empty",
            Refusal::Wrong => "wrong",
        }
    }

    fn parse(code: &str) -> Option<Self> {
        [Refusal::Stale, Refusal::Empty, Refusal::Wrong]
            .into_iter()
            .find(|r| r.code() == code)
    }

    fn message(self, admin: bool) -> &'static str {
        match (self, admin) {
            (Refusal::Stale, _) => {
                "This sign-in form is out of date or did not come from this console; enter the token again."
            }
            (Refusal::Empty, true) => "Enter the admin password or the API token.",
            (Refusal::Empty, false) => "Enter the API token.",
            (Refusal::Wrong, true) => {
                "That is neither the admin password nor the API token. Check the password, or copy the token again from <data dir>/api-token."
            }
            (Refusal::Wrong, false) => {
                "That token is wrong. Copy it again from <data dir>/api-token."
            }
        }
    }
}

#[derive(serde::Deserialize)]
pub struct SignInQuery {
    error: Option<String>,
}

pub async fn sign_in_page(
    State(state): State<Shared>,
    axum::extract::Query(q): axum::extract::Query<SignInQuery>,
) -> Response {
    let admin = state.config.console.admin_password_hash.is_some();
    let message = q
        .error
        .as_deref()
        .and_then(Refusal::parse)
        .map(|r| r.message(admin));
    sign_in_form(&state, message, StatusCode::OK)
}

/// A refused sign-in: a browser (which sends a `Referer`) goes back to the form with
/// the reason; anything else gets the form with it at once.
fn refuse(state: &Shared, headers: &HeaderMap, why: Refusal) -> Response {
    if headers.contains_key(header::REFERER) {
        return Redirect::to(&format!("/console/sign-in?error={}", why.code())).into_response();
    }
    let admin = state.config.console.admin_password_hash.is_some();
    sign_in_form(state, Some(why.message(admin)), why.status())
}

fn sign_in_form(state: &Shared, error: Option<&str>, status: StatusCode) -> Response {
    let nonce = random_hex();
    let admin = state.config.console.admin_password_hash.is_some();
    let body = html! {
        main.signin {
            h1 { "Lifeboat console" }
            @if admin {
                p.muted { "Sign in with the admin password, or with the server's API token found in " code { "<data dir>/api-token" } "." }
            } @else {
                p.muted { "Sign in with the server's API token, found in " code { "<data dir>/api-token" } "." }
            }
            form method="post" action="/console/sign-in" {
                input type="hidden" name="csrf" value=(nonce);
                label for="token" { @if admin { "Admin password or API token" } @else { "API token" } }
                input #token type="password" name="token" autocomplete="current-password" required autofocus;
                @if let Some(e) = error { p.error #token-error { (e) } }
                button.primary type="submit" { "Sign in" }
            }
        }
    };
    let cookie = format!(
        "{SIGN_IN_COOKIE}={nonce}; Path=/console/sign-in; HttpOnly; SameSite=Strict; Max-Age=3600"
    );
    (
        status,
        [(header::SET_COOKIE, cookie)],
        layout::bare("Sign in", body),
    )
        .into_response()
}

pub async fn sign_in(
    State(state): State<Shared>,
    axum::Extension(sessions): axum::Extension<Arc<Sessions>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fields = Fields::parse(&body);
    let expected = cookie_value(&headers, SIGN_IN_COOKIE).unwrap_or_default();
    let given = fields.get("csrf").unwrap_or_default();
    if expected.is_empty() || !constant_time_eq(given.as_bytes(), expected.as_bytes()) {
        return refuse(&state, &headers, Refusal::Stale);
    }
    let admin_hash = state.config.console.admin_password_hash.clone();
    let given = fields.get("token").unwrap_or_default();
    if given.trim().is_empty() {
        return refuse(&state, &headers, Refusal::Empty);
    }
    let started = Instant::now();
    let mut accepted = constant_time_eq(given.trim().as_bytes(), state.token.as_bytes());
    if !accepted && let Some(phc) = admin_hash.clone() {
        // The password as typed: spaces may be part of it.
        let password = given.to_string();
        accepted = tokio::task::spawn_blocking(move || {
            crate::credentials::admin_password::verify(phc.trim(), &password)
        })
        .await
        .unwrap_or(false);
    }
    if !accepted {
        tracing::warn!("console sign-in refused: wrong token or password");
        tokio::time::sleep(FAILED_SIGN_IN_DELAY.saturating_sub(started.elapsed())).await;
        return refuse(&state, &headers, Refusal::Wrong);
    }
    let id = match sessions.create() {
        Ok((id, _)) => id,
        Err(e) => return store_failure(&e),
    };
    let cookie = format!(
        "{COOKIE}={id}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={}",
        LIFETIME.as_secs()
    );
    (
        [(header::SET_COOKIE, cookie)],
        Redirect::to("/console/instances"),
    )
        .into_response()
}

pub async fn sign_out(axum::Extension(ctx): axum::Extension<Ctx>) -> Response {
    if let Err(e) = ctx.sessions.remove(&ctx.session) {
        return store_failure(&e);
    }
    let cookie = format!("{COOKIE}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0");
    (
        [(header::SET_COOKIE, cookie)],
        Redirect::to("/console/sign-in"),
    )
        .into_response()
}
