//! Migration task routes.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use lifeboat_api::ErrorBody;
use lifeboat_api::migrations::{CreateTask, TaskView, UpdateTask};

use crate::control::migrations;
use crate::control::{Error, Shared};
use crate::http::error::ApiJson;

#[utoipa::path(post, path = "/api/v1/migrations", request_body = CreateTask,
    responses(
        (status = 201, body = TaskView, description = "The task, not started; authorize it, then pre-check"),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
    ))]
pub async fn create(
    State(state): State<Shared>,
    ApiJson(req): ApiJson<CreateTask>,
) -> Result<(StatusCode, Json<TaskView>), Error> {
    Ok((
        StatusCode::CREATED,
        Json(migrations::create(&state, req).await?),
    ))
}

#[utoipa::path(get, path = "/api/v1/migrations", responses((status = 200, body = [TaskView])))]
pub async fn list(State(state): State<Shared>) -> Result<Json<Vec<TaskView>>, Error> {
    Ok(Json(migrations::list(&state)?))
}

#[utoipa::path(get, path = "/api/v1/migrations/{task}", params(("task" = String, Path, description = "Task id or name")),
    responses((status = 200, body = TaskView), (status = 404, body = ErrorBody)))]
pub async fn show(
    State(state): State<Shared>,
    Path(task): Path<String>,
) -> Result<Json<TaskView>, Error> {
    Ok(Json(migrations::show(&state, &task)?))
}

#[utoipa::path(patch, path = "/api/v1/migrations/{task}", params(("task" = String, Path)), request_body = UpdateTask,
    responses((status = 200, body = TaskView, description = "Changed; the pre-check must pass again"), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "The task has started")))]
pub async fn update(
    State(state): State<Shared>,
    Path(task): Path<String>,
    ApiJson(req): ApiJson<UpdateTask>,
) -> Result<Json<TaskView>, Error> {
    Ok(Json(migrations::update(&state, &task, req)?))
}

#[utoipa::path(post, path = "/api/v1/migrations/{task}/authorize", params(("task" = String, Path)),
    responses((status = 200, body = TaskView, description = "The worker's address is on both whitelists"), (status = 404, body = ErrorBody)))]
pub async fn authorize(
    State(state): State<Shared>,
    Path(task): Path<String>,
) -> Result<Json<TaskView>, Error> {
    Ok(Json(migrations::authorize(&state, &task).await?))
}

#[utoipa::path(post, path = "/api/v1/migrations/{task}/precheck", params(("task" = String, Path)),
    responses((status = 200, body = TaskView, description = "The pre-check items; state tells passed or failed"), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn precheck(
    State(state): State<Shared>,
    Path(task): Path<String>,
) -> Result<Json<TaskView>, Error> {
    Ok(Json(migrations::precheck(&state, &task).await?))
}

#[utoipa::path(post, path = "/api/v1/migrations/{task}/start", params(("task" = String, Path)),
    responses((status = 202, body = TaskView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "The pre-check has not passed on the task as it is now")))]
pub async fn start(
    State(state): State<Shared>,
    Path(task): Path<String>,
) -> Result<(StatusCode, Json<TaskView>), Error> {
    Ok((
        StatusCode::ACCEPTED,
        Json(migrations::start(&state, &task).await?),
    ))
}

#[utoipa::path(post, path = "/api/v1/migrations/{task}/cancel", params(("task" = String, Path)),
    responses((status = 202, body = TaskView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn cancel(
    State(state): State<Shared>,
    Path(task): Path<String>,
) -> Result<(StatusCode, Json<TaskView>), Error> {
    Ok((
        StatusCode::ACCEPTED,
        Json(migrations::cancel(&state, &task)?),
    ))
}

#[utoipa::path(delete, path = "/api/v1/migrations/{task}", params(("task" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete(
    State(state): State<Shared>,
    Path(task): Path<String>,
) -> Result<StatusCode, Error> {
    migrations::delete(&state, &task).await?;
    Ok(StatusCode::NO_CONTENT)
}
