//! Migration task routes.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;

use super::ApiJson;
use crate::error::{ApiError, ErrorBody};
use crate::migrations::{self, CreateTask, TaskDoc, UpdateTask};
use crate::state::SharedState;

#[utoipa::path(post, path = "/api/v1/migrations", request_body = CreateTask,
    responses((status = 201, body = TaskDoc), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create(
    State(state): State<SharedState>,
    ApiJson(req): ApiJson<CreateTask>,
) -> Result<(StatusCode, Json<TaskDoc>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(migrations::create(&state, req).await?.public()),
    ))
}

#[utoipa::path(get, path = "/api/v1/migrations", responses((status = 200, body = [TaskDoc])))]
pub async fn list(State(state): State<SharedState>) -> Result<Json<Vec<TaskDoc>>, ApiError> {
    let mut out = Vec::new();
    for t in state.store.list_tasks()? {
        out.push(migrations::load(&state, &t.id)?.public());
    }
    Ok(Json(out))
}

#[utoipa::path(get, path = "/api/v1/migrations/{task}", params(("task" = String, Path, description = "Task id or name")),
    responses((status = 200, body = TaskDoc), (status = 404, body = ErrorBody)))]
pub async fn show(
    State(state): State<SharedState>,
    Path(task): Path<String>,
) -> Result<Json<TaskDoc>, ApiError> {
    Ok(Json(migrations::load(&state, &task)?.public()))
}

#[utoipa::path(patch, path = "/api/v1/migrations/{task}", params(("task" = String, Path)), request_body = UpdateTask,
    responses((status = 200, body = TaskDoc, description = "Changed; the pre-check must pass again"), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "The task has started")))]
pub async fn update(
    State(state): State<SharedState>,
    Path(task): Path<String>,
    ApiJson(req): ApiJson<UpdateTask>,
) -> Result<Json<TaskDoc>, ApiError> {
    Ok(Json(migrations::update(&state, &task, req)?.public()))
}

#[utoipa::path(post, path = "/api/v1/migrations/{task}/authorize", params(("task" = String, Path)),
    responses((status = 200, body = TaskDoc, description = "The worker's address is on both whitelists"), (status = 404, body = ErrorBody)))]
pub async fn authorize(
    State(state): State<SharedState>,
    Path(task): Path<String>,
) -> Result<Json<TaskDoc>, ApiError> {
    Ok(Json(migrations::authorize(&state, &task).await?.public()))
}

#[utoipa::path(post, path = "/api/v1/migrations/{task}/precheck", params(("task" = String, Path)),
    responses((status = 200, body = TaskDoc, description = "The pre-check items; state tells passed or failed"), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn precheck(
    State(state): State<SharedState>,
    Path(task): Path<String>,
) -> Result<Json<TaskDoc>, ApiError> {
    // The pre-check holds borrows that are not Send across its awaits: run it on a
    // thread of its own, like the migration itself.
    let (tx, rx) = tokio::sync::oneshot::channel();
    let worker = state.clone();
    std::thread::spawn(move || {
        let result = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| ApiError::internal(e.to_string()))
            .and_then(|rt| rt.block_on(migrations::precheck(&worker, &task)));
        let _ = tx.send(result);
    });
    let doc = rx
        .await
        .map_err(|_| ApiError::internal("the pre-check ended abnormally"))??;
    Ok(Json(doc.public()))
}

#[utoipa::path(post, path = "/api/v1/migrations/{task}/start", params(("task" = String, Path)),
    responses((status = 202, body = TaskDoc), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "The pre-check has not passed on the task as it is now")))]
pub async fn start(
    State(state): State<SharedState>,
    Path(task): Path<String>,
) -> Result<(StatusCode, Json<TaskDoc>), ApiError> {
    Ok((
        StatusCode::ACCEPTED,
        Json(migrations::start(&state, &task).await?.public()),
    ))
}

#[utoipa::path(post, path = "/api/v1/migrations/{task}/cancel", params(("task" = String, Path)),
    responses((status = 202, body = TaskDoc), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn cancel(
    State(state): State<SharedState>,
    Path(task): Path<String>,
) -> Result<(StatusCode, Json<TaskDoc>), ApiError> {
    Ok((
        StatusCode::ACCEPTED,
        Json(migrations::cancel(&state, &task)?.public()),
    ))
}

#[utoipa::path(delete, path = "/api/v1/migrations/{task}", params(("task" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete(
    State(state): State<SharedState>,
    Path(task): Path<String>,
) -> Result<StatusCode, ApiError> {
    migrations::delete(&state, &task).await?;
    Ok(StatusCode::NO_CONTENT)
}
