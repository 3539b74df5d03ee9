//! The API token, required on every `/api/v1` route.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use lifeboat_api::ErrorCode;

use crate::control::{Error, Shared};
use crate::credentials::constant_time_eq;

/// Refuses requests without `Authorization: Bearer <token>`.
pub async fn require_token(State(state): State<Shared>, req: Request, next: Next) -> Response {
    let given = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(t) if constant_time_eq(t.trim().as_bytes(), state.token.as_bytes()) => {
            next.run(req).await
        }
        Some(_) => unauthorized("the API token is wrong"),
        None => unauthorized("this request carries no API token"),
    }
}

fn unauthorized(message: &str) -> Response {
    Error::new(
        ErrorCode::Unauthorized,
        message,
        "send `Authorization: Bearer <token>` with the token from <data dir>/api-token (the CLI reads it with --data-dir or LIFEBOAT_TOKEN)",
    )
    .into_response()
}
