//! The table diff route: which rows differ between two instances (see
//! [`crate::control::diff`]). `?format=ndjson` streams every differing row.

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use lifeboat_api::ErrorBody;
use lifeboat_api::diff::{DiffBody, DiffQuery};

use crate::control::{Error, Shared, diff as control};
use crate::http::error::ApiJson;

#[utoipa::path(post, path = "/api/v1/diff", request_body = DiffBody, params(DiffQuery),
    responses(
        (status = 200, description = "The report (JSON), or every differing row (NDJSON)"),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody, description = "Unknown instance or table"),
        (status = 409, body = ErrorBody, description = "An instance is not running"),
        (status = 502, body = ErrorBody, description = "Cannot connect, or a query failed"),
    ))]
pub async fn diff(
    State(state): State<Shared>,
    query: Result<Query<DiffQuery>, QueryRejection>,
    ApiJson(body): ApiJson<DiffBody>,
) -> Result<Response, Error> {
    let Query(query) = query?;
    let prepared = control::prepare(&state, &body).await?;
    match query.format.as_deref() {
        None | Some("json") => Ok(Json(control::report(prepared).await?).into_response()),
        Some("ndjson") => {
            let mut rx = control::stream(prepared)?;
            let stream = futures_util::stream::poll_fn(move |cx| {
                rx.poll_recv(cx).map(|o| o.map(Ok::<_, std::io::Error>))
            });
            Ok((
                [(header::CONTENT_TYPE, "application/x-ndjson")],
                Body::from_stream(stream),
            )
                .into_response())
        }
        Some(other) => Err(Error::invalid(
            format!("unknown format '{other}'"),
            "use format=json or format=ndjson",
        )),
    }
}
