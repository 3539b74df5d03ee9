//! The only mapping from control errors to HTTP: each [`ErrorCode`] has one status,
//! and an answer is `{code, message, hint}`. Internal details go to the server log.

use axum::Json;
use axum::extract::FromRequest;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use lifeboat_api::ErrorCode;

use crate::control::Error;

/// The HTTP status of an error code.
pub fn status_of(code: ErrorCode) -> StatusCode {
    use ErrorCode::*;
    match code {
        InvalidArgument | OutsideWindow => StatusCode::BAD_REQUEST,
        Unauthorized => StatusCode::UNAUTHORIZED,
        PermissionDenied | AuthenticationFailed => StatusCode::FORBIDDEN,
        NotFound => StatusCode::NOT_FOUND,
        MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        DuplicateName
        | AlreadyExists
        | InvalidState
        | InstanceNotRunning
        | InstanceBusy
        | HasTemporaryInstance
        | TemporaryInstanceExists
        | MigrationRunning
        | BackupRunning
        | NoBackup
        | DataMissing
        | PortInUse
        | PortRangeExhausted
        | PrecheckRequired
        | PrecheckStale
        | RecoveryShortOfTarget
        | NotOwner
        | ManagedExternally => StatusCode::CONFLICT,
        AdoptionCheckFailed => StatusCode::UNPROCESSABLE_ENTITY,
        PostgresBinariesMissing | OsUserMissing | DataDirUnusable | InstanceUnreachable => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        ConnectionFailed | QueryFailed | DiffFailed => StatusCode::BAD_GATEWAY,
        BackupTimeout | WalNotArchived => StatusCode::GATEWAY_TIMEOUT,
        PostgresFailed | BackupFailed | RecoveryFailed | Internal => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = status_of(self.code);
        if status.is_server_error() {
            tracing::error!(code = %self.code, message = %self.message, "request failed");
        }
        (status, Json(self.body())).into_response()
    }
}

/// A JSON body whose rejection is an [`Error`], so a malformed body gets the same
/// `{code, message, hint}` answer as every other error.
#[derive(FromRequest)]
#[from_request(via(Json), rejection(Error))]
pub struct ApiJson<T>(pub T);

impl From<JsonRejection> for Error {
    fn from(r: JsonRejection) -> Self {
        Error::invalid(
            format!("invalid request body: {}", r.body_text()),
            "send a JSON object with the fields the OpenAPI document (/api/v1/openapi.json) lists",
        )
    }
}

impl From<QueryRejection> for Error {
    fn from(r: QueryRejection) -> Self {
        Error::invalid(
            format!("invalid query: {}", r.body_text()),
            "see /api/v1/openapi.json",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_of_the_codes_users_meet_most() {
        assert_eq!(
            status_of(ErrorCode::InvalidArgument),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(status_of(ErrorCode::NotFound), StatusCode::NOT_FOUND);
        assert_eq!(
            status_of(ErrorCode::TemporaryInstanceExists),
            StatusCode::CONFLICT
        );
        assert_eq!(
            status_of(ErrorCode::PostgresBinariesMissing),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            status_of(ErrorCode::Internal),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
}
