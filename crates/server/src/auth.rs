//! The API token: created on first start, required on every `/api/v1` route.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rand::RngCore;

use crate::error::ApiError;
use crate::state::SharedState;

pub const TOKEN_FILE: &str = "api-token";

/// Reads the token from `<data dir>/api-token`, creating it (mode 0600) on first start.
/// Returns the token and whether it was created now.
pub fn load_or_create_token(data_dir: &Path) -> anyhow::Result<(String, bool)> {
    let path = data_dir.join(TOKEN_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => {
            // Tighten a token file someone loosened.
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
            return Ok((text.trim().to_string(), false));
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => anyhow::bail!("cannot read the API token {}: {e}", path.display()),
    }
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| anyhow::anyhow!("cannot write the API token {}: {e}", path.display()))?;
    f.write_all(token.as_bytes())?;
    f.sync_all()?;
    Ok((token, true))
}

/// Refuses requests without `Authorization: Bearer <token>`.
pub async fn require_token(State(state): State<SharedState>, req: Request, next: Next) -> Response {
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
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        message,
        "send `Authorization: Bearer <token>` with the token from <data dir>/api-token (the CLI reads it with --data-dir or LIFEBOAT_TOKEN)",
    )
    .into_response()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
