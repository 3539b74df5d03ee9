//! Who may connect to an instance: its accounts and its whitelist.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use lifeboat_domain::WhitelistEntry;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::ApiJson;
use super::views::{AccountView, WhitelistView};
use crate::error::{ApiError, ErrorBody};
use crate::instances;
use crate::state::SharedState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAccountRequest {
    pub account: String,
    /// Turned into a SCRAM verifier at once and never stored.
    pub password: String,
}

#[derive(Debug, Deserialize, ToSchema, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct WhitelistRequest {
    /// An address (`10.0.0.5`) or network (`10.0.0.0/24`).
    pub cidr: String,
}

#[utoipa::path(get, path = "/api/v1/instances/{id}/accounts", params(("id" = String, Path)),
    responses((status = 200, body = [AccountView]), (status = 404, body = ErrorBody)))]
pub async fn list_accounts(
    State(state): State<SharedState>,
    Path(id): Path<String>,
) -> Result<Json<Vec<AccountView>>, ApiError> {
    let rec = instances::get(&state, &id)?;
    Ok(Json(
        state
            .store
            .accounts(&rec.id)?
            .into_iter()
            .map(|a| AccountView {
                name: a.name,
                privileged: a.privileged,
                created_at: a.created_at,
            })
            .collect(),
    ))
}

#[utoipa::path(post, path = "/api/v1/instances/{id}/accounts", params(("id" = String, Path)),
    request_body = CreateAccountRequest,
    responses(
        (status = 201, body = [AccountView], description = "The instance's accounts"),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "The account exists or the instance is not running"),
    ))]
pub async fn create_account(
    State(state): State<SharedState>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<CreateAccountRequest>,
) -> Result<(StatusCode, Json<Vec<AccountView>>), ApiError> {
    let rec = instances::get(&state, &id)?;
    instances::add_account(state.clone(), rec.id.clone(), req.account, req.password).await?;
    let Json(accounts) = list_accounts(State(state), Path(id)).await?;
    Ok((StatusCode::CREATED, Json(accounts)))
}

#[utoipa::path(get, path = "/api/v1/instances/{id}/whitelist", params(("id" = String, Path)),
    responses((status = 200, body = [WhitelistView]), (status = 404, body = ErrorBody)))]
pub async fn list_whitelist(
    State(state): State<SharedState>,
    Path(id): Path<String>,
) -> Result<Json<Vec<WhitelistView>>, ApiError> {
    let rec = instances::get(&state, &id)?;
    Ok(Json(
        state
            .store
            .whitelist(&rec.id)?
            .into_iter()
            .map(|w| WhitelistView {
                cidr: w.entry.to_string(),
                added_by: w.added_by,
                created_at: w.created_at,
            })
            .collect(),
    ))
}

#[utoipa::path(post, path = "/api/v1/instances/{id}/whitelist", params(("id" = String, Path)),
    request_body = WhitelistRequest,
    responses(
        (status = 201, body = [WhitelistView], description = "The whitelist after the change, in effect"),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
    ))]
pub async fn add_whitelist(
    State(state): State<SharedState>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<WhitelistRequest>,
) -> Result<(StatusCode, Json<Vec<WhitelistView>>), ApiError> {
    let rec = instances::get(&state, &id)?;
    let entry = WhitelistEntry::parse(&req.cidr)?;
    instances::change_whitelist(state.clone(), rec.id, entry, true, "user").await?;
    let Json(list) = list_whitelist(State(state), Path(id)).await?;
    Ok((StatusCode::CREATED, Json(list)))
}

#[utoipa::path(delete, path = "/api/v1/instances/{id}/whitelist", params(("id" = String, Path), WhitelistRequest),
    responses(
        (status = 200, body = [WhitelistView], description = "The whitelist after the change, in effect"),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
    ))]
pub async fn remove_whitelist(
    State(state): State<SharedState>,
    Path(id): Path<String>,
    query: Result<Query<WhitelistRequest>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<WhitelistView>>, ApiError> {
    let Query(req) = query?;
    let rec = instances::get(&state, &id)?;
    let entry = WhitelistEntry::parse(&req.cidr)?;
    instances::change_whitelist(state.clone(), rec.id, entry, false, "user").await?;
    list_whitelist(State(state), Path(id)).await
}
