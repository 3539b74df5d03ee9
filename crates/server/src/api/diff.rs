//! The table diff route: which rows differ between two instances.
//!
//! Reads only. Without credentials the server reads both instances through its private
//! management connection; with an account and password for a side it connects to that
//! instance over TCP like any client, so the diff sees what that account may see.
//! `?format=ndjson` streams every differing row as it is found (one JSON object a line,
//! then each table's summary, then the whole report), holding no more than a bounded
//! buffer of rows in memory whatever the number of differences.

use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use lifeboat_domain::InstanceStatus;
use lifeboat_migrate::diff::{
    DiffError, DiffReport, DiffRequest, DiffRow, SchemaPair, TableDiff, TablePair,
};
use serde::Deserialize;
use tokio_postgres::Client;
use utoipa::{IntoParams, ToSchema};

use super::ApiJson;
use crate::error::{ApiError, ErrorBody};
use crate::instances::{self, cluster_of, region_of};
use crate::state::SharedState;

/// Rows waiting for the client when it reads slower than the diff finds them.
const STREAM_BUFFER: usize = 256;

/// One side of a diff, with optional credentials.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DiffSide {
    pub instance: String,
    /// Connect as this account over TCP instead of the management connection.
    pub account: Option<String>,
    pub password: Option<String>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DiffBody {
    /// Usually the temporary instance.
    pub source: DiffSide,
    /// Usually its master.
    pub target: DiffSide,
    /// Default `postgres`.
    pub database: Option<String>,
    /// `SCHEMA.TABLE` or `SCHEMA.TABLE=SCHEMA.TABLE`.
    #[serde(default)]
    pub tables: Vec<String>,
    /// `SCHEMA` or `SCHEMA=SCHEMA`: every table of the schema.
    #[serde(default)]
    pub schemas: Vec<String>,
    /// Rows kept per table in the report (default 100).
    pub limit: Option<usize>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct DiffQuery {
    /// `json` (default): one report. `ndjson`: every differing row, streamed.
    pub format: Option<String>,
}

impl From<DiffError> for ApiError {
    fn from(e: DiffError) -> Self {
        let hint = e.hint();
        match &e {
            DiffError::InvalidRequest(_) => ApiError::bad_request(e.to_string(), hint),
            DiffError::TableNotFound { .. } => ApiError::not_found(e.to_string(), hint),
            DiffError::PermissionDenied { .. } => ApiError::new(
                StatusCode::FORBIDDEN,
                "permission_denied",
                e.to_string(),
                hint,
            ),
            _ => ApiError::new(StatusCode::BAD_GATEWAY, "diff_failed", e.to_string(), hint),
        }
    }
}

fn parse_request(body: &DiffBody) -> Result<DiffRequest, ApiError> {
    let mut request = DiffRequest::tables(
        body.tables
            .iter()
            .map(|t| TablePair::parse(t))
            .collect::<Result<Vec<_>, _>>()?,
    );
    for s in &body.schemas {
        let (a, b) = s.split_once('=').unwrap_or((s, s));
        request.schemas.push(SchemaPair {
            source: a.trim().to_string(),
            target: b.trim().to_string(),
        });
    }
    if let Some(limit) = body.limit {
        request.limit = limit;
    }
    if request.tables.is_empty() && request.schemas.is_empty() {
        return Err(ApiError::bad_request(
            "no table to compare",
            "name tables with --table SCHEMA.TABLE[=SCHEMA.TABLE] or whole schemas with --schema SCHEMA",
        ));
    }
    Ok(request)
}

/// Connects to one side, as the management role or as the given account.
async fn connect(
    state: &SharedState,
    side: &DiffSide,
    database: &str,
    which: &str,
) -> Result<Client, ApiError> {
    let rec = instances::get(state, &side.instance).map_err(|e| e.on(which))?;
    if rec.status != InstanceStatus::Running {
        return Err(ApiError::conflict(
            "instance_not_running",
            format!("{which} instance {} is {}, not running", rec.id, rec.status),
            format!("start it first: lifeboat instance start {}", rec.id),
        ));
    }
    let Some(account) = &side.account else {
        return Ok(cluster_of(state, &rec)?.connect(database).await?);
    };
    let address = region_of(state, &rec.region)?.address.clone();
    let mut config = tokio_postgres::Config::new();
    config
        .host(&address)
        .port(rec.port)
        .user(account)
        .password(side.password.clone().unwrap_or_default())
        .dbname(database)
        .application_name("lifeboat diff")
        .connect_timeout(Duration::from_secs(10));
    let (client, conn) = config.connect(tokio_postgres::NoTls).await.map_err(|e| {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            "connection_failed",
            format!(
                "cannot connect to the {which} instance {} as {account}: {}",
                rec.id,
                lifeboat_postgres::describe(&e)
            ),
            "check the account, its password and the instance's whitelist",
        )
    })?;
    tokio::spawn(conn);
    Ok(client)
}

#[utoipa::path(post, path = "/api/v1/diff", request_body = DiffBody, params(DiffQuery),
    responses(
        (status = 200, description = "The report (JSON), or every differing row (NDJSON)"),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody, description = "Unknown instance or table"),
        (status = 409, body = ErrorBody, description = "An instance is not running"),
        (status = 502, body = ErrorBody, description = "Cannot connect, or a query failed"),
    ))]
pub async fn diff(
    State(state): State<SharedState>,
    query: Result<Query<DiffQuery>, axum::extract::rejection::QueryRejection>,
    ApiJson(body): ApiJson<DiffBody>,
) -> Result<Response, ApiError> {
    let Query(query) = query?;
    let request = parse_request(&body)?;
    let database = body.database.clone().unwrap_or_else(|| "postgres".into());
    let source = connect(&state, &body.source, &database, "source").await?;
    let target = connect(&state, &body.target, &database, "target").await?;
    match query.format.as_deref() {
        None | Some("json") => {
            let (tx, rx) = tokio::sync::oneshot::channel();
            on_diff_thread(move |runtime| {
                let mut sink = lifeboat_migrate::diff::NoSink;
                let result = runtime.block_on(lifeboat_migrate::diff::diff_tables(
                    &source, &target, &request, &mut sink,
                ));
                let _ = tx.send(result);
            });
            let report: DiffReport = rx
                .await
                .map_err(|_| ApiError::internal("the diff thread ended abnormally"))??;
            Ok(Json(report).into_response())
        }
        Some("ndjson") => Ok(stream(source, target, request)),
        Some(other) => Err(ApiError::bad_request(
            format!("unknown format '{other}'"),
            "use format=json or format=ndjson",
        )),
    }
}

/// Runs the diff on a thread of its own and streams its rows as NDJSON. The sink
/// blocks that thread when the bounded buffer is full, so a slow reader pauses the diff
/// instead of growing memory; a reader that hangs up stops it.
fn stream(source: Client, target: Client, request: DiffRequest) -> Response {
    let (rows_tx, rows_rx) = std::sync::mpsc::sync_channel::<bytes::Bytes>(STREAM_BUFFER);
    on_diff_thread(move |runtime| {
        let mut sink = NdjsonSink {
            out: rows_tx.clone(),
        };
        let result = runtime.block_on(lifeboat_migrate::diff::diff_tables(
            &source, &target, &request, &mut sink,
        ));
        let last = match result {
            Ok(report) => serde_json::json!({ "report": strip_rows(report) }),
            Err(e) => serde_json::json!({ "error": ApiError::from(e).body }),
        };
        let _ = rows_tx.send(line(&last));
    });
    let (tx, mut rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(STREAM_BUFFER);
    tokio::task::spawn_blocking(move || {
        while let Ok(l) = rows_rx.recv() {
            if tx.blocking_send(l).is_err() {
                break;
            }
        }
    });
    let stream = futures_util::stream::poll_fn(move |cx| {
        rx.poll_recv(cx).map(|o| o.map(Ok::<_, std::io::Error>))
    });
    (
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(stream),
    )
        .into_response()
}

/// Runs `work` on a thread of its own with a single-threaded runtime. The diff is not a
/// `Send` future, and a streaming diff must be able to block while its reader catches
/// up; neither may happen on the server's runtime. The clients' connections stay on
/// the server's runtime and are reached through channels.
fn on_diff_thread(work: impl FnOnce(&tokio::runtime::Runtime) + Send + 'static) {
    std::thread::spawn(move || {
        match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => work(&runtime),
            Err(e) => tracing::error!(error = %e, "cannot start a runtime for a diff"),
        }
    });
}

fn strip_rows(mut report: DiffReport) -> DiffReport {
    for t in &mut report.tables {
        t.rows.clear();
    }
    report
}

fn line(v: &impl serde::Serialize) -> bytes::Bytes {
    let mut s = serde_json::to_vec(v).unwrap_or_default();
    s.push(b'\n');
    bytes::Bytes::from(s)
}

struct NdjsonSink {
    out: std::sync::mpsc::SyncSender<bytes::Bytes>,
}

impl lifeboat_migrate::diff::DiffSink for NdjsonSink {
    fn row(&mut self, table: &str, row: &DiffRow) -> std::io::Result<()> {
        self.out
            .send(line(&serde_json::json!({ "table": table, "row": row })))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client hung up"))
    }

    fn table_done(&mut self, table: &TableDiff) -> std::io::Result<()> {
        let mut summary = table.clone();
        summary.rows.clear();
        self.out
            .send(line(&serde_json::json!({ "table_done": summary })))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client hung up"))
    }
}
