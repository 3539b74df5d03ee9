//! Backup routes: run a base backup, list backups, the restorable window, verify.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use lifeboat_store::BackupRun;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::backups::{self, backup_error};
use crate::error::{ApiError, ErrorBody};
use crate::instances::{self, region_of};
use crate::state::SharedState;

/// A base backup attempt.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BackupRunView {
    pub id: i64,
    /// `create`, `schedule` or `manual`.
    pub trigger: String,
    /// `running`, `completed` or `failed`.
    pub state: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// The backup it produced.
    pub backup_id: Option<String>,
    pub bytes_done: i64,
    pub bytes_total: i64,
    pub error: Option<String>,
}

/// A complete base backup in the repository.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BackupView {
    pub id: String,
    pub start_time: DateTime<Utc>,
    pub stop_time: DateTime<Utc>,
    pub start_lsn: String,
    pub stop_lsn: String,
    pub timeline: u32,
    /// Bytes of the data directory it holds.
    pub logical_size: u64,
    /// Bytes it added to the repository (unchanged content is shared).
    pub stored_size: u64,
}

/// The backups of an instance and the recent attempts.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BackupList {
    pub backups: Vec<BackupView>,
    pub runs: Vec<BackupRunView>,
}

/// The times and LSNs a temporary instance can be restored to.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WindowView {
    pub instance_id: String,
    /// False until a first base backup and its WAL are in the repository.
    pub available: bool,
    pub earliest: Option<DateTime<Utc>>,
    pub latest: Option<DateTime<Utc>>,
    pub earliest_lsn: Option<String>,
    pub latest_lsn: Option<String>,
    pub timeline: Option<u32>,
    /// The first missing WAL segment when later ones exist: the window ends before it.
    pub gap: Option<String>,
    /// A sentence saying what limits the window.
    pub note: String,
}

/// What verify found.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct VerifyView {
    pub instance_id: String,
    pub ok: bool,
    pub backups: usize,
    pub objects_checked: u64,
    pub bytes_checked: u64,
    pub problems: Vec<VerifyProblemView>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct VerifyProblemView {
    /// The repository object.
    pub object: String,
    /// The backup files that depend on it.
    pub files: Vec<String>,
    pub detail: String,
}

pub fn run_view(r: BackupRun) -> BackupRunView {
    BackupRunView {
        id: r.id,
        trigger: r.trigger,
        state: r.state,
        started_at: r.started_at,
        finished_at: r.finished_at,
        backup_id: r.backup_id,
        bytes_done: r.bytes_done,
        bytes_total: r.bytes_total,
        error: r.error,
    }
}

#[utoipa::path(post, path = "/api/v1/instances/{id}/backups", params(("id" = String, Path)),
    responses(
        (status = 202, body = BackupRunView, description = "The backup started"),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "Not a running master, or a backup is running"),
    ))]
pub async fn run_backup(
    State(state): State<SharedState>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<BackupRunView>), ApiError> {
    let rec = instances::get(&state, &id)?;
    let run = backups::start_backup(&state, &rec.id, "manual").await?;
    Ok((StatusCode::ACCEPTED, Json(run_view(run))))
}

#[utoipa::path(get, path = "/api/v1/instances/{id}/backups", params(("id" = String, Path)),
    responses((status = 200, body = BackupList), (status = 404, body = ErrorBody)))]
pub async fn list_backups(
    State(state): State<SharedState>,
    Path(id): Path<String>,
) -> Result<Json<BackupList>, ApiError> {
    let rec = instances::get(&state, &id)?;
    let repo = backups::repository(&state, region_of(&state, &rec.region)?)?;
    let manifests = lifeboat_backup::list_backups(&repo, rec.id.as_str())
        .await
        .map_err(backup_error)?;
    let backups = manifests
        .into_iter()
        .map(|m| BackupView {
            id: m.id,
            start_time: m.start_time,
            stop_time: m.stop_time,
            start_lsn: m.start_lsn.to_string(),
            stop_lsn: m.stop_lsn.to_string(),
            timeline: m.timeline,
            logical_size: m.logical_size,
            stored_size: m.stored_size,
        })
        .collect();
    let runs = state
        .store
        .backup_runs(&rec.id, 20)?
        .into_iter()
        .map(run_view)
        .collect();
    Ok(Json(BackupList { backups, runs }))
}

#[utoipa::path(get, path = "/api/v1/instances/{id}/window", params(("id" = String, Path)),
    responses((status = 200, body = WindowView), (status = 404, body = ErrorBody)))]
pub async fn window(
    State(state): State<SharedState>,
    Path(id): Path<String>,
) -> Result<Json<WindowView>, ApiError> {
    let rec = instances::get(&state, &id)?;
    let repo = backups::repository(&state, region_of(&state, &rec.region)?)?;
    let waldump = state.pg_env()?.bins.path("pg_waldump");
    let found = lifeboat_backup::restorable_window(&repo, rec.id.as_str(), &waldump)
        .await
        .map_err(backup_error)?;
    let id = rec.id.to_string();
    Ok(Json(match found {
        None => WindowView {
            instance_id: id.clone(),
            available: false,
            earliest: None,
            latest: None,
            earliest_lsn: None,
            latest_lsn: None,
            timeline: None,
            gap: None,
            note: format!(
                "no complete base backup of {id} with its WAL is in the repository yet; see `lifeboat backup list {id}`"
            ),
        },
        Some(w) => WindowView {
            instance_id: id,
            available: true,
            earliest: Some(w.earliest),
            latest: Some(w.latest),
            earliest_lsn: Some(w.earliest_lsn.to_string()),
            latest_lsn: Some(w.latest_lsn.to_string()),
            timeline: Some(w.timeline),
            note: match &w.gap {
                Some(seg) => format!(
                    "the WAL segment {seg} is missing from the repository: the window ends before it"
                ),
                None => "the window ends at the last commit in the archived WAL".into(),
            },
            gap: w.gap,
        },
    }))
}

#[utoipa::path(post, path = "/api/v1/instances/{id}/backups/verify", params(("id" = String, Path)),
    responses((status = 200, body = VerifyView), (status = 404, body = ErrorBody)))]
pub async fn verify(
    State(state): State<SharedState>,
    Path(id): Path<String>,
) -> Result<Json<VerifyView>, ApiError> {
    let rec = instances::get(&state, &id)?;
    let repo = backups::repository(&state, region_of(&state, &rec.region)?)?;
    let parallelism = std::thread::available_parallelism().map_or(2, |n| n.get()) * 2;
    let report = lifeboat_backup::verify(&repo, rec.id.as_str(), parallelism)
        .await
        .map_err(backup_error)?;
    Ok(Json(VerifyView {
        instance_id: rec.id.to_string(),
        ok: report.is_ok(),
        backups: report.backups,
        objects_checked: report.objects_checked,
        bytes_checked: report.bytes_checked,
        problems: report
            .problems
            .into_iter()
            .map(|p| VerifyProblemView {
                object: p.object,
                files: p.files,
                detail: p.detail,
            })
            .collect(),
    }))
}
