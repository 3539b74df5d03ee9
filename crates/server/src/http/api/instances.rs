//! Instance routes: create, list, show, delete, stop, start; and the regions.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use lifeboat_api::ErrorBody;
use lifeboat_api::instances::{CreateInstanceRequest, InstanceView, RegionView};

use crate::control::instances::{self, CreateMaster};
use crate::control::registry::instance;
use crate::control::views::{instance_summary, instance_view, regions};
use crate::control::{Error, Shared};
use crate::http::error::ApiJson;

#[utoipa::path(get, path = "/api/v1/instances", responses((status = 200, body = [InstanceView])))]
pub async fn list_instances(State(state): State<Shared>) -> Result<Json<Vec<InstanceView>>, Error> {
    let views = state
        .store
        .list_instances(false)?
        .iter()
        .map(|rec| instance_summary(&state, rec))
        .collect::<Result<_, _>>()?;
    Ok(Json(views))
}

#[utoipa::path(post, path = "/api/v1/instances", request_body = CreateInstanceRequest,
    responses(
        (status = 201, body = InstanceView, description = "The instance, running"),
        (status = 400, body = ErrorBody, description = "Invalid name, account or password"),
        (status = 409, body = ErrorBody, description = "Duplicate name or no free port"),
        (status = 503, body = ErrorBody, description = "PostgreSQL binaries or OS user missing"),
    ))]
pub async fn create_instance(
    State(state): State<Shared>,
    ApiJson(req): ApiJson<CreateInstanceRequest>,
) -> Result<(StatusCode, Json<InstanceView>), Error> {
    let rec = instances::create_master(
        state.clone(),
        CreateMaster {
            name: req.name,
            account: req.account,
            password: req.password,
            region: req.region,
            engine_version: req.engine_version,
        },
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(instance_view(&state, &rec).await?),
    ))
}

#[utoipa::path(get, path = "/api/v1/instances/{id}", params(("id" = String, Path)),
    responses((status = 200, body = InstanceView), (status = 404, body = ErrorBody)))]
pub async fn show_instance(
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> Result<Json<InstanceView>, Error> {
    let rec = instance(&state, &id)?;
    Ok(Json(instance_view(&state, &rec).await?))
}

#[utoipa::path(delete, path = "/api/v1/instances/{id}", params(("id" = String, Path)),
    responses(
        (status = 204, description = "Stopped and removed"),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "It has a temporary instance or a running migration task"),
    ))]
pub async fn delete_instance(
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> Result<StatusCode, Error> {
    let rec = instance(&state, &id)?;
    instances::delete(state, rec.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/instances/{id}/stop", params(("id" = String, Path)),
    responses((status = 200, body = InstanceView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn stop_instance(
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> Result<Json<InstanceView>, Error> {
    let rec = instance(&state, &id)?;
    let rec = instances::stop(state.clone(), rec.id).await?;
    Ok(Json(instance_view(&state, &rec).await?))
}

#[utoipa::path(post, path = "/api/v1/instances/{id}/start", params(("id" = String, Path)),
    responses((status = 200, body = InstanceView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn start_instance(
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> Result<Json<InstanceView>, Error> {
    let rec = instance(&state, &id)?;
    let rec = instances::start(state.clone(), rec.id).await?;
    Ok(Json(instance_view(&state, &rec).await?))
}

#[utoipa::path(get, path = "/api/v1/regions", responses((status = 200, body = [RegionView])))]
pub async fn list_regions(State(state): State<Shared>) -> Json<Vec<RegionView>> {
    Json(regions(&state))
}
