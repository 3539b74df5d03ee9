//! Instance routes: create, list, show, delete, stop, start; and the regions.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use lifeboat_domain::{InstanceId, InstanceStatus};
use lifeboat_store::InstanceRecord;
use serde::Deserialize;
use utoipa::ToSchema;

use super::ApiJson;
use super::views::{InstanceView, RegionView};
use crate::error::{ApiError, ErrorBody};
use crate::instances::{self, CreateMaster};
use crate::state::SharedState;

/// How long `show` waits for an instance to report its data size.
const SIZE_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateInstanceRequest {
    pub name: String,
    /// The privileged account.
    pub account: String,
    /// Its password; turned into a SCRAM verifier at once and never stored.
    pub password: String,
    /// Default: the first configured region.
    pub region: Option<String>,
}

/// The view of a record, with live data size when the instance runs.
pub async fn view(state: &SharedState, rec: &InstanceRecord) -> Result<InstanceView, ApiError> {
    let address = instances::region_of(state, &rec.region)
        .map(|r| r.address.clone())
        .unwrap_or_default();
    let mut size = None;
    let mut archiving = None;
    if rec.status == InstanceStatus::Running
        && let Ok(cluster) = instances::cluster_of(state, rec)
    {
        size = tokio::time::timeout(SIZE_TIMEOUT, cluster.data_size())
            .await
            .ok()
            .and_then(Result::ok);
        if rec.kind == lifeboat_domain::InstanceKind::Master {
            archiving =
                tokio::time::timeout(SIZE_TIMEOUT, crate::backups::archiving_health(&cluster))
                    .await
                    .ok()
                    .flatten();
        }
    }
    let mut view = InstanceView::build(
        rec,
        &address,
        state.store.accounts(&rec.id)?,
        state.store.whitelist(&rec.id)?,
        size,
    );
    view.archiving = archiving;
    Ok(view)
}

#[utoipa::path(get, path = "/api/v1/instances", responses((status = 200, body = [InstanceView])))]
pub async fn list_instances(
    State(state): State<SharedState>,
) -> Result<Json<Vec<InstanceView>>, ApiError> {
    let mut out = Vec::new();
    for rec in state.store.list_instances(false)? {
        let address = instances::region_of(&state, &rec.region)
            .map(|r| r.address.clone())
            .unwrap_or_default();
        out.push(InstanceView::build(
            &rec,
            &address,
            state.store.accounts(&rec.id)?,
            state.store.whitelist(&rec.id)?,
            None,
        ));
    }
    Ok(Json(out))
}

#[utoipa::path(post, path = "/api/v1/instances", request_body = CreateInstanceRequest,
    responses(
        (status = 201, body = InstanceView, description = "The instance, running"),
        (status = 400, body = ErrorBody, description = "Invalid name, account or password"),
        (status = 409, body = ErrorBody, description = "Duplicate name or no free port"),
        (status = 503, body = ErrorBody, description = "PostgreSQL binaries or OS user missing"),
    ))]
pub async fn create_instance(
    State(state): State<SharedState>,
    ApiJson(req): ApiJson<CreateInstanceRequest>,
) -> Result<(StatusCode, Json<InstanceView>), ApiError> {
    let rec = instances::create_master(
        state.clone(),
        CreateMaster {
            name: req.name,
            account: req.account,
            password: req.password,
            region: req.region,
        },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(view(&state, &rec).await?)))
}

#[utoipa::path(get, path = "/api/v1/instances/{id}", params(("id" = String, Path)),
    responses((status = 200, body = InstanceView), (status = 404, body = ErrorBody)))]
pub async fn show_instance(
    State(state): State<SharedState>,
    Path(id): Path<String>,
) -> Result<Json<InstanceView>, ApiError> {
    let rec = instances::get(&state, &id)?;
    Ok(Json(view(&state, &rec).await?))
}

#[utoipa::path(delete, path = "/api/v1/instances/{id}", params(("id" = String, Path)),
    responses(
        (status = 204, description = "Stopped and removed"),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "It has a temporary instance or a running migration task"),
    ))]
pub async fn delete_instance(
    State(state): State<SharedState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let rec = instances::get(&state, &id)?;
    instances::delete(state, rec.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/instances/{id}/stop", params(("id" = String, Path)),
    responses((status = 200, body = InstanceView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn stop_instance(
    State(state): State<SharedState>,
    Path(id): Path<String>,
) -> Result<Json<InstanceView>, ApiError> {
    let id = InstanceId::parse(&id)?;
    instances::get(&state, id.as_str())?;
    let rec = instances::stop(state.clone(), id).await?;
    Ok(Json(view(&state, &rec).await?))
}

#[utoipa::path(post, path = "/api/v1/instances/{id}/start", params(("id" = String, Path)),
    responses((status = 200, body = InstanceView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn start_instance(
    State(state): State<SharedState>,
    Path(id): Path<String>,
) -> Result<Json<InstanceView>, ApiError> {
    let id = InstanceId::parse(&id)?;
    instances::get(&state, id.as_str())?;
    let rec = instances::start(state.clone(), id).await?;
    Ok(Json(view(&state, &rec).await?))
}

#[utoipa::path(get, path = "/api/v1/regions", responses((status = 200, body = [RegionView])))]
pub async fn list_regions(State(state): State<SharedState>) -> Json<Vec<RegionView>> {
    Json(
        state
            .config
            .regions
            .iter()
            .map(|r| RegionView {
                name: r.name.clone(),
                address: r.address.clone(),
                ports: r.ports.to_string(),
            })
            .collect(),
    )
}
