//! The JSON API under `/api/v1`, and its OpenAPI document. Each handler extracts the
//! request, calls the control plane, and answers with a view from `lifeboat_api`.

mod access;
mod backups;
mod clones;
mod diff;
mod instances;
mod migrations;
mod temporary;

use axum::routing::{get, post};
use axum::{Json, Router, middleware};
use lifeboat_api::ErrorBody;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::control::Shared;

#[derive(OpenApi)]
#[openapi(
    info(title = "Lifeboat API", description = "Backups, temporary instances and data migration for PostgreSQL."),
    paths(
        instances::list_instances,
        instances::create_instance,
        instances::adopt_instance,
        instances::update_instance,
        instances::check_adoption,
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
        backups::events,
        backups::repository,
        temporary::create_temporary,
        temporary::show_temporary,
        clones::clone_instance,
        clones::keep_temporary,
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
    modifiers(&TokenAuth, &CommonAnswers),
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

/// The API's routes, every one behind the token.
pub fn router(state: &Shared) -> Router<Shared> {
    Router::new()
        .route("/openapi.json", get(openapi))
        .route("/regions", get(instances::list_regions))
        .route(
            "/instances",
            get(instances::list_instances).post(instances::create_instance),
        )
        .route("/instances/adopt", post(instances::adopt_instance))
        .route("/instances/adopt/check", post(instances::check_adoption))
        .route(
            "/instances/{id}",
            get(instances::show_instance)
                .patch(instances::update_instance)
                .delete(instances::delete_instance),
        )
        .route("/instances/{id}/stop", post(instances::stop_instance))
        .route("/instances/{id}/clone", post(clones::clone_instance))
        .route("/instances/{id}/keep", post(clones::keep_temporary))
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
        .route("/instances/{id}/events", get(backups::events))
        .route("/repository", get(backups::repository))
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
        .fallback(super::not_found)
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            super::auth::require_token,
        ))
}

/// What every operation may answer besides its own results: 401 without the token;
/// 400 for a malformed id, body or query; 404 for an id that names nothing. The
/// instance ids in paths have their shape.
struct CommonAnswers;

impl Modify for CommonAnswers {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::path::{Operation, ParameterIn};
        use utoipa::openapi::{ObjectBuilder, Ref, RefOr, ResponseBuilder, Type};
        let error = |what: &str| {
            ResponseBuilder::new()
                .description(what)
                .content(
                    "application/json",
                    utoipa::openapi::ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build()
        };
        let add = |op: &mut Operation| {
            let takes_input =
                op.request_body.is_some() || op.parameters.as_ref().is_some_and(|p| !p.is_empty());
            let has_path = op
                .parameters
                .iter()
                .flatten()
                .any(|p| p.parameter_in == ParameterIn::Path);
            let responses = &mut op.responses.responses;
            responses
                .entry("401".into())
                .or_insert_with(|| RefOr::T(error("No API token, or a wrong one")));
            if takes_input {
                responses.entry("400".into()).or_insert_with(|| {
                    RefOr::T(error(
                        "A malformed id, body or query; the message says which",
                    ))
                });
            }
            if has_path {
                responses
                    .entry("404".into())
                    .or_insert_with(|| RefOr::T(error("Nothing has that id")));
            }
            for p in op.parameters.iter_mut().flatten() {
                if p.parameter_in == ParameterIn::Path && p.name == "id" {
                    p.schema = Some(RefOr::T(
                        ObjectBuilder::new()
                            .schema_type(Type::String)
                            .pattern(Some("^pg-[a-z0-9]{6}$"))
                            .into(),
                    ));
                }
            }
        };
        for item in openapi.paths.paths.values_mut() {
            for op in [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ]
            .into_iter()
            .flatten()
            {
                add(op);
            }
        }
    }
}

/// The OpenAPI document as this server answers: with the rules between fields that
/// the derived schemas cannot state, and the regions of this server's configuration.
pub fn document(state: &Shared) -> serde_json::Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    let schemas = &mut doc["components"]["schemas"];
    // Exactly one recovery target, given as a string.
    let one_of = |field: &str| serde_json::json!({ "required": [field], "properties": { field: { "type": "string" } } });
    schemas["CreateTemporary"]["oneOf"] =
        serde_json::json!([one_of("at"), one_of("lsn"), one_of("restore_point"),]);
    // At least one table or schema to compare.
    let some = |field: &str| serde_json::json!({ "required": [field], "properties": { field: { "type": "array", "minItems": 1 } } });
    schemas["DiffBody"]["anyOf"] = serde_json::json!([some("tables"), some("schemas")]);
    // A region is one of this server's.
    let regions: Vec<&str> = state
        .config
        .regions
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    for body in ["CreateInstanceRequest", "EndpointInput"] {
        schemas[body]["properties"]["region"]["enum"] = serde_json::json!(
            regions
                .iter()
                .map(|r| serde_json::json!(r))
                .chain([serde_json::Value::Null])
                .collect::<Vec<_>>()
        );
    }
    doc
}

async fn openapi(
    axum::extract::State(state): axum::extract::State<Shared>,
) -> Json<serde_json::Value> {
    Json(document(&state))
}
