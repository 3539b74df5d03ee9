//! The HTTP API under `/api/v1`, its OpenAPI document, and `/healthz`.

mod access;
pub mod backups;
mod diff;
pub mod instances;
mod migrations;
mod temporary;
pub mod views;

use axum::extract::FromRequest;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router, middleware};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::error::{ApiError, ErrorBody};
use crate::state::SharedState;

/// A JSON body whose rejection is an [`ApiError`], so a malformed body gets the same
/// `{code, message, hint}` answer as every other error.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        ApiError::bad_request(
            format!("invalid request body: {}", r.body_text()),
            "send a JSON object with the fields the OpenAPI document (/api/v1/openapi.json) lists",
        )
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::bad_request(
            format!("invalid query: {}", r.body_text()),
            "see /api/v1/openapi.json",
        )
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Lifeboat API", description = "Backups, temporary instances and data migration for PostgreSQL."),
    paths(
        instances::list_instances,
        instances::create_instance,
        instances::show_instance,
        instances::delete_instance,
        instances::stop_instance,
        instances::start_instance,
        instances::list_regions,
        access::list_accounts,
        access::create_account,
        access::list_whitelist,
        access::add_whitelist,
        access::remove_whitelist,
        backups::run_backup,
        backups::list_backups,
        backups::window,
        backups::verify,
        temporary::create_temporary,
        temporary::show_temporary,
        diff::diff,
        migrations::create,
        migrations::list,
        migrations::show,
        migrations::update,
        migrations::authorize,
        migrations::precheck,
        migrations::start,
        migrations::cancel,
        migrations::delete,
    ),
    components(schemas(ErrorBody)),
    modifiers(&TokenAuth),
    security(("token" = []))
)]
pub struct ApiDoc;

struct TokenAuth;

impl Modify for TokenAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The whole HTTP application; tests call it without a socket.
pub fn app(state: SharedState) -> Router {
    let api = Router::new()
        .route("/openapi.json", get(openapi))
        .route("/regions", get(instances::list_regions))
        .route(
            "/instances",
            get(instances::list_instances).post(instances::create_instance),
        )
        .route(
            "/instances/{id}",
            get(instances::show_instance).delete(instances::delete_instance),
        )
        .route("/instances/{id}/stop", post(instances::stop_instance))
        .route("/instances/{id}/start", post(instances::start_instance))
        .route(
            "/instances/{id}/accounts",
            get(access::list_accounts).post(access::create_account),
        )
        .route(
            "/instances/{id}/whitelist",
            get(access::list_whitelist)
                .post(access::add_whitelist)
                .delete(access::remove_whitelist),
        )
        .route(
            "/instances/{id}/backups",
            get(backups::list_backups).post(backups::run_backup),
        )
        .route("/instances/{id}/backups/verify", post(backups::verify))
        .route("/instances/{id}/window", get(backups::window))
        .route("/diff", post(diff::diff))
        .route(
            "/migrations",
            get(migrations::list).post(migrations::create),
        )
        .route(
            "/migrations/{task}",
            get(migrations::show)
                .patch(migrations::update)
                .delete(migrations::delete),
        )
        .route("/migrations/{task}/authorize", post(migrations::authorize))
        .route("/migrations/{task}/precheck", post(migrations::precheck))
        .route("/migrations/{task}/start", post(migrations::start))
        .route("/migrations/{task}/cancel", post(migrations::cancel))
        .route(
            "/instances/{id}/temporary",
            get(temporary::show_temporary).post(temporary::create_temporary),
        )
        .fallback(not_found)
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            crate::auth::require_token,
        ));
    Router::new()
        .route("/healthz", get(healthz))
        .nest("/api/v1", api)
        .merge(crate::console::router(&state))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

async fn not_found() -> ApiError {
    ApiError::not_found(
        "no such API route",
        "see /api/v1/openapi.json for the routes",
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not take that method",
        "see /api/v1/openapi.json for the routes",
    )
}
