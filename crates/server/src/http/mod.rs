//! The HTTP side of the control plane: the JSON API under `/api/v1` ([`api`]), the web
//! console under `/console` ([`console`]) and `/healthz`. Both are thin: they extract
//! what a request says, call [`crate::control`], and render what it returns; errors
//! become answers in one place ([`error`]).

pub mod api;
pub mod auth;
pub mod console;
pub mod error;

use axum::Router;
use axum::routing::get;
use lifeboat_api::ErrorCode;

use crate::control::{Error, Shared};

/// The whole HTTP application. Tests call it without a socket
/// (`tower::ServiceExt::oneshot`).
pub fn app(state: Shared) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .nest("/api/v1", api::router(&state))
        .merge(console::router(&state))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// An address no route has.
pub async fn not_found() -> Error {
    Error::not_found(
        "no such API route",
        "see /api/v1/openapi.json for the routes",
    )
}

async fn method_not_allowed() -> Error {
    Error::new(
        ErrorCode::MethodNotAllowed,
        "this route does not take that method",
        "see /api/v1/openapi.json for the routes",
    )
}
