//! Masters made from backups: clone a master (known here or only in a repository) to
//! a point in time, keep a temporary instance as a master.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use lifeboat_api::ErrorBody;
use lifeboat_api::instances::InstanceView;
use lifeboat_api::temporary::{CloneInstance, KeepTemporary};

use crate::control::clones;
use crate::control::views::instance_view;
use crate::control::{Error, Shared};
use crate::http::error::ApiJson;

#[utoipa::path(post, path = "/api/v1/instances/{id}/clone", params(("id" = String, Path, description = "The master whose backups are restored: an instance of this server or one listed by GET /repository")),
    request_body = CloneInstance,
    responses(
        (status = 202, body = InstanceView, description = "Accepted; the new master is being restored (see progress)"),
        (status = 400, body = ErrorBody, description = "Bad name, time or engine version; a target outside the restorable window"),
        (status = 404, body = ErrorBody, description = "No such master here or in any repository"),
        (status = 409, body = ErrorBody, description = "The name is taken, or no backup yet"),
    ))]
pub async fn clone_instance(
    State(state): State<Shared>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<CloneInstance>,
) -> Result<(StatusCode, Json<InstanceView>), Error> {
    let rec = clones::clone(&state, &id, req).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(instance_view(&state, &rec).await?),
    ))
}

#[utoipa::path(post, path = "/api/v1/instances/{id}/keep", params(("id" = String, Path, description = "The temporary instance")),
    request_body = KeepTemporary,
    responses(
        (status = 200, body = InstanceView, description = "It is now a master, with its first base backup"),
        (status = 400, body = ErrorBody, description = "Bad name"),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "Not a ready temporary instance, the name is taken, or a migration task uses it"),
    ))]
pub async fn keep_temporary(
    State(state): State<Shared>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<KeepTemporary>,
) -> Result<Json<InstanceView>, Error> {
    let s = state.clone();
    // Spawned: a client that hangs up does not cut the change halfway.
    let rec = tokio::spawn(async move { clones::keep(&s, &id, req.name).await }).await??;
    Ok(Json(instance_view(&state, &rec).await?))
}
