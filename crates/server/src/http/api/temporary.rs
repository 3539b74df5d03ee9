//! Temporary instance routes: create one for a master, show the latest one.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use lifeboat_api::ErrorBody;
use lifeboat_api::instances::InstanceView;
use lifeboat_api::temporary::CreateTemporary;

use crate::control::registry::instance;
use crate::control::temporary;
use crate::control::views::instance_view;
use crate::control::{Error, Shared};
use crate::http::error::ApiJson;

#[utoipa::path(post, path = "/api/v1/instances/{id}/temporary", params(("id" = String, Path, description = "The master")),
    request_body = CreateTemporary,
    responses(
        (status = 202, body = InstanceView, description = "Accepted; the instance is being created (see progress)"),
        (status = 400, body = ErrorBody, description = "Bad time, future time, outside the restorable window"),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "The master already has a temporary instance, or no backup yet"),
    ))]
pub async fn create_temporary(
    State(state): State<Shared>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<CreateTemporary>,
) -> Result<(StatusCode, Json<InstanceView>), Error> {
    let master = instance(&state, &id)?;
    let rec = temporary::create(&state, &master.id, req).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(instance_view(&state, &rec).await?),
    ))
}

#[utoipa::path(get, path = "/api/v1/instances/{id}/temporary", params(("id" = String, Path, description = "The master")),
    responses(
        (status = 200, body = InstanceView, description = "The master's latest temporary instance, with its progress"),
        (status = 404, body = ErrorBody),
    ))]
pub async fn show_temporary(
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> Result<Json<InstanceView>, Error> {
    let master = instance(&state, &id)?;
    match state.store.latest_temporary(&master.id)? {
        Some(rec) => Ok(Json(instance_view(&state, &rec).await?)),
        None => Err(Error::not_found(
            format!("instance {} has no temporary instance", master.id),
            format!("create one: lifeboat temp create {} --at TIME", master.id),
        )),
    }
}
