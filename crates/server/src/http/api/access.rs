//! Who may connect to an instance: its accounts and its whitelist.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use lifeboat_api::ErrorBody;
use lifeboat_api::instances::{AccountView, CreateAccountRequest, WhitelistRequest, WhitelistView};
use lifeboat_domain::WhitelistEntry;
use lifeboat_store::InstanceRecord;

use crate::control::instances;
use crate::control::registry::instance;
use crate::control::views::{account_view, whitelist_view};
use crate::control::{Error, Shared};
use crate::http::error::ApiJson;

fn accounts(state: &Shared, rec: &InstanceRecord) -> Result<Vec<AccountView>, Error> {
    Ok(state
        .store
        .accounts(&rec.id)?
        .into_iter()
        .map(account_view)
        .collect())
}

fn whitelist(state: &Shared, rec: &InstanceRecord) -> Result<Vec<WhitelistView>, Error> {
    Ok(state
        .store
        .whitelist(&rec.id)?
        .into_iter()
        .map(whitelist_view)
        .collect())
}

#[utoipa::path(get, path = "/api/v1/instances/{id}/accounts", params(("id" = String, Path)),
    responses((status = 200, body = [AccountView]), (status = 404, body = ErrorBody)))]
pub async fn list_accounts(
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> Result<Json<Vec<AccountView>>, Error> {
    let rec = instance(&state, &id)?;
    Ok(Json(accounts(&state, &rec)?))
}

#[utoipa::path(post, path = "/api/v1/instances/{id}/accounts", params(("id" = String, Path)),
    request_body = CreateAccountRequest,
    responses(
        (status = 201, body = [AccountView], description = "The instance's accounts"),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "The account exists or the instance is not running"),
    ))]
pub async fn create_account(
    State(state): State<Shared>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<CreateAccountRequest>,
) -> Result<(StatusCode, Json<Vec<AccountView>>), Error> {
    let rec = instance(&state, &id)?;
    instances::add_account(state.clone(), rec.id.clone(), req.account, req.password).await?;
    Ok((StatusCode::CREATED, Json(accounts(&state, &rec)?)))
}

#[utoipa::path(get, path = "/api/v1/instances/{id}/whitelist", params(("id" = String, Path)),
    responses((status = 200, body = [WhitelistView]), (status = 404, body = ErrorBody)))]
pub async fn list_whitelist(
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> Result<Json<Vec<WhitelistView>>, Error> {
    let rec = instance(&state, &id)?;
    Ok(Json(whitelist(&state, &rec)?))
}

#[utoipa::path(post, path = "/api/v1/instances/{id}/whitelist", params(("id" = String, Path)),
    request_body = WhitelistRequest,
    responses(
        (status = 201, body = [WhitelistView], description = "The whitelist after the change, in effect"),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
    ))]
pub async fn add_whitelist(
    State(state): State<Shared>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<WhitelistRequest>,
) -> Result<(StatusCode, Json<Vec<WhitelistView>>), Error> {
    let rec = instance(&state, &id)?;
    let entry = WhitelistEntry::parse(&req.cidr)?;
    instances::change_whitelist(state.clone(), rec.id.clone(), entry, true, "user").await?;
    Ok((StatusCode::CREATED, Json(whitelist(&state, &rec)?)))
}

#[utoipa::path(delete, path = "/api/v1/instances/{id}/whitelist", params(("id" = String, Path), WhitelistRequest),
    responses(
        (status = 200, body = [WhitelistView], description = "The whitelist after the change, in effect"),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
    ))]
pub async fn remove_whitelist(
    State(state): State<Shared>,
    Path(id): Path<String>,
    query: Result<Query<WhitelistRequest>, QueryRejection>,
) -> Result<Json<Vec<WhitelistView>>, Error> {
    let Query(req) = query?;
    let rec = instance(&state, &id)?;
    let entry = WhitelistEntry::parse(&req.cidr)?;
    instances::change_whitelist(state.clone(), rec.id.clone(), entry, false, "user").await?;
    Ok(Json(whitelist(&state, &rec)?))
}
