//! The one mapping from errors to HTTP answers: `{code, message, hint}` with the right
//! status. Internal details go to the server log, never to the client.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use lifeboat_domain::InvalidInput;
use lifeboat_postgres::PgError;
use lifeboat_store::StoreError;
use serde::Serialize;
use utoipa::ToSchema;

/// The body of every error answer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorBody {
    /// A stable, machine-readable code such as `not_found`.
    pub code: String,
    /// What failed, naming the object.
    pub message: String,
    /// What to do next.
    pub hint: String,
}

/// An error on its way to the client.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: ErrorBody,
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        code: &str,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        Self {
            status,
            body: ErrorBody {
                code: code.into(),
                message: message.into(),
                hint: hint.into(),
            },
        }
    }

    pub fn bad_request(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_argument", message, hint)
    }

    pub fn not_found(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message, hint)
    }

    pub fn conflict(code: &str, message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message, hint)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            message,
            "see the server log; this is a bug or a problem with the machine",
        )
    }

    /// Says which instance failed in front of the message.
    pub fn on(mut self, object: &str) -> Self {
        self.body.message = format!("{object}: {}", self.body.message);
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(code = %self.body.code, message = %self.body.message, "request failed");
        }
        (self.status, Json(self.body)).into_response()
    }
}

impl From<InvalidInput> for ApiError {
    fn from(e: InvalidInput) -> Self {
        Self::bad_request(e.message, e.hint)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::DuplicateName(name) => Self::conflict(
                "duplicate_name",
                format!("an instance named '{name}' already exists"),
                "choose another name, or delete the existing instance first",
            ),
            StoreError::Duplicate(what) => Self::conflict(
                "already_exists",
                format!("{what} already exists"),
                "nothing to do; list them to see what is there",
            ),
            StoreError::NotFound(what) => Self::not_found(
                format!("{what} not found"),
                "run `lifeboat instance list` to see the instances and their ids",
            ),
            other => Self::internal(other.to_string()),
        }
    }
}

impl From<PgError> for ApiError {
    fn from(e: PgError) -> Self {
        let hint = e.hint();
        match &e {
            PgError::BinariesMissing { .. } => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "postgres_binaries_missing",
                e.to_string(),
                hint,
            ),
            PgError::NoSuchOsUser(_) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "os_user_missing",
                e.to_string(),
                hint,
            ),
            PgError::PortInUse { .. } => Self::conflict("port_in_use", e.to_string(), hint),
            PgError::NotAccessible { .. } | PgError::SocketPathTooLong(_) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "data_dir_unusable",
                e.to_string(),
                hint,
            ),
            PgError::Connect { .. } => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "instance_unreachable",
                e.to_string(),
                hint,
            ),
            _ => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "postgres_failed",
                e.to_string(),
                hint,
            ),
        }
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(e: tokio::task::JoinError) -> Self {
        Self::internal(format!("a background task ended abnormally: {e}"))
    }
}
