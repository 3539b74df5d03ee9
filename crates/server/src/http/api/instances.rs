//! Instance routes: create, adopt, list, show, delete, stop, start; and the regions.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use lifeboat_api::ErrorBody;
use lifeboat_api::instances::{
    AdoptInstanceRequest, AdoptionCheckView, CreateInstanceRequest, InstanceView, RegionView,
    UpdateInstanceRequest,
};
use lifeboat_api::migrations::PrecheckItemView;

use crate::control::adoption::{self, AdoptMaster};
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

fn adopt_request(req: AdoptInstanceRequest) -> AdoptMaster {
    AdoptMaster {
        name: req.name,
        host: req.host,
        port: req.port,
        account: req.account,
        password: req.password,
        region: req.region,
    }
}

#[utoipa::path(post, path = "/api/v1/instances/adopt/check", request_body = AdoptInstanceRequest,
    responses(
        (status = 200, body = AdoptionCheckView, description = "Every requirement of adoption, passed, warning or failed; nothing changes on the cluster"),
        (status = 400, body = ErrorBody, description = "Invalid name, host, port, account or password"),
    ))]
pub async fn check_adoption(
    State(state): State<Shared>,
    ApiJson(req): ApiJson<AdoptInstanceRequest>,
) -> Result<Json<AdoptionCheckView>, Error> {
    let items = adoption::check(&state, &adopt_request(req)).await?;
    Ok(Json(AdoptionCheckView {
        adoptable: lifeboat_postgres::adoption::adoptable(&items),
        items: items
            .into_iter()
            .map(|i| PrecheckItemView {
                id: i.id.to_string(),
                name: i.name.to_string(),
                status: i.status,
                detail: i.detail,
                advice: i.advice,
            })
            .collect(),
    }))
}

#[utoipa::path(post, path = "/api/v1/instances/adopt", request_body = AdoptInstanceRequest,
    responses(
        (status = 201, body = InstanceView, description = "The adopted master, protected by Lifeboat"),
        (status = 400, body = ErrorBody, description = "Invalid name, host, port, account or password"),
        (status = 409, body = ErrorBody, description = "Duplicate name, or the cluster is adopted already"),
        (status = 422, body = ErrorBody, description = "The adoption check failed; the message names each failed item"),
    ))]
pub async fn adopt_instance(
    State(state): State<Shared>,
    ApiJson(req): ApiJson<AdoptInstanceRequest>,
) -> Result<(StatusCode, Json<InstanceView>), Error> {
    let rec = adoption::adopt(state.clone(), adopt_request(req)).await?;
    Ok((
        StatusCode::CREATED,
        Json(instance_view(&state, &rec).await?),
    ))
}

#[utoipa::path(patch, path = "/api/v1/instances/{id}", params(("id" = String, Path)),
    request_body = UpdateInstanceRequest,
    responses(
        (status = 200, body = InstanceView, description = "The adopted instance, with its new host, port, account or password"),
        (status = 400, body = ErrorBody, description = "Invalid host, port, account or password"),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "Not an adopted instance"),
        (status = 422, body = ErrorBody, description = "The new values do not log in, or reach another cluster"),
    ))]
pub async fn update_instance(
    State(state): State<Shared>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<UpdateInstanceRequest>,
) -> Result<Json<InstanceView>, Error> {
    let rec = instance(&state, &id)?;
    let rec = adoption::update(
        state.clone(),
        rec.id,
        adoption::UpdateAdopted {
            host: req.host,
            port: req.port,
            account: req.account,
            password: req.password,
        },
    )
    .await?;
    Ok(Json(instance_view(&state, &rec).await?))
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
