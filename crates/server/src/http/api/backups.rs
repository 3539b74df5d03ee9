//! Backup routes: run a base backup, list backups, the restorable window, verify.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use lifeboat_api::ErrorBody;
use lifeboat_api::backups::{
    BackupList, BackupRunView, RepositoryList, RepositoryQuery, VerifyView, WindowView,
};
use lifeboat_api::events::{EventList, EventsQuery};
use lifeboat_domain::BackupTrigger;

use crate::control::backups;
use crate::control::backups::entries::backup_source;
use crate::control::backups::inventory::{self, run_view};
use crate::control::registry::instance;
use crate::control::{Error, Shared};

#[utoipa::path(post, path = "/api/v1/instances/{id}/backups", params(("id" = String, Path)),
    responses(
        (status = 202, body = BackupRunView, description = "The backup started"),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "Not a running master, or a backup is running"),
    ))]
pub async fn run_backup(
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<BackupRunView>), Error> {
    let rec = instance(&state, &id)?;
    let run = backups::start_backup(&state, &rec.id, BackupTrigger::Manual).await?;
    Ok((StatusCode::ACCEPTED, Json(run_view(run))))
}

#[utoipa::path(get, path = "/api/v1/instances/{id}/backups", params(("id" = String, Path)),
    responses((status = 200, body = BackupList), (status = 404, body = ErrorBody)))]
pub async fn list_backups(
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> Result<Json<BackupList>, Error> {
    let rec = backup_source(&state, &id).await?;
    Ok(Json(inventory::list(&state, &rec).await?))
}

#[utoipa::path(get, path = "/api/v1/instances/{id}/window", params(("id" = String, Path)),
    responses((status = 200, body = WindowView), (status = 404, body = ErrorBody)))]
pub async fn window(
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> Result<Json<WindowView>, Error> {
    let rec = backup_source(&state, &id).await?;
    Ok(Json(inventory::window(&state, &rec).await?))
}

#[utoipa::path(get, path = "/api/v1/instances/{id}/events", params(("id" = String, Path, description = "The master"), EventsQuery),
    responses(
        (status = 200, body = EventList, description = "The transactions that destroyed data, newest first"),
        (status = 404, body = ErrorBody, description = "Unknown instance, or a database or table never seen on it"),
    ))]
pub async fn events(
    State(state): State<Shared>,
    Path(id): Path<String>,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Json<EventList>, Error> {
    let Query(q) = query?;
    let rec = backup_source(&state, &id).await?;
    Ok(Json(crate::control::events::list(&state, &rec, &q).await?))
}

#[utoipa::path(post, path = "/api/v1/instances/{id}/backups/verify", params(("id" = String, Path)),
    responses((status = 200, body = VerifyView), (status = 404, body = ErrorBody)))]
pub async fn verify(
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> Result<Json<VerifyView>, Error> {
    let rec = backup_source(&state, &id).await?;
    Ok(Json(inventory::verify(&state, &rec).await?))
}

#[utoipa::path(get, path = "/api/v1/repository", params(RepositoryQuery),
    responses(
        (status = 200, body = RepositoryList, description = "The masters whose backups the regions' repositories hold, with their windows"),
        (status = 400, body = ErrorBody, description = "An unknown region"),
    ))]
pub async fn repository(
    State(state): State<Shared>,
    query: Result<Query<RepositoryQuery>, QueryRejection>,
) -> Result<Json<RepositoryList>, Error> {
    let Query(q) = query?;
    Ok(Json(
        backups::entries::list(&state, q.region.as_deref()).await?,
    ))
}
