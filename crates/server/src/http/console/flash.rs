//! Redirect after POST: a console form's answer (an error beside the typed values, or
//! a diff's report) is kept for a while under a random id, and the browser is sent
//! back with `303 See Other` to the page the form was on, with `?flash=ID`. Reloading
//! that page shows the same answer again and never submits the form a second time.
//!
//! The page to go back to is the form's own page, from the browser's same-origin
//! `Referer`; a POST without one (a script, a browser told not to send it) gets the
//! answer directly, as before. Answers are kept in memory, for their session only,
//! for [`KEEP`], at most [`PER_SESSION`] per session and [`TOTAL_BYTES`] in all: a
//! restart or an expired id sends the browser to the page without it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};

use crate::credentials::random_hex;

/// How long an answer can be shown again.
const KEEP: Duration = Duration::from_secs(30 * 60);
/// Answers kept for one session; the oldest goes first.
const PER_SESSION: usize = 16;
/// Bytes of answers kept for all sessions together; the oldest go first.
const TOTAL_BYTES: usize = 32 << 20;
/// The largest answer kept; a larger one is sent directly.
const LARGEST: usize = 4 << 20;
/// The query parameter that names a kept answer.
pub const PARAM: &str = "flash";

struct Kept {
    /// The session's cookie digest: only the session that posted sees it.
    session: String,
    /// The path it is shown at.
    path: String,
    status: StatusCode,
    content_type: HeaderValue,
    body: Bytes,
    at: Instant,
}

/// The kept answers.
#[derive(Default)]
pub struct Flashes {
    kept: Mutex<HashMap<String, Kept>>,
}

/// The path and query of a same-origin `Referer`, without a `flash` parameter: the
/// page a form was posted from.
pub fn form_page(headers: &HeaderMap) -> Option<String> {
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let referer: Uri = headers.get(header::REFERER)?.to_str().ok()?.parse().ok()?;
    if referer.authority()?.as_str() != host {
        return None;
    }
    let path = referer.path();
    if !path.starts_with("/console/") || path == "/console/sign-in" {
        return None;
    }
    Some(with_query(path, &without_flash(referer.query())))
}

fn with_query(path: &str, query: &str) -> String {
    if query.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{query}")
    }
}

/// A query string without its `flash` parameter.
fn without_flash(query: Option<&str>) -> String {
    query
        .unwrap_or("")
        .split('&')
        .filter(|kv| !kv.is_empty() && kv.split('=').next() != Some(PARAM))
        .collect::<Vec<_>>()
        .join("&")
}

/// The `flash` parameter of a query, if any.
pub fn flash_id(uri: &Uri) -> Option<String> {
    uri.query()?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == PARAM)
        .map(|(_, v)| v.to_string())
}

/// Whether a response is a page to keep (not a redirect, not JSON).
fn is_page(response: &Response) -> bool {
    !response.status().is_redirection()
        && response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.starts_with("text/html"))
}

impl Flashes {
    /// Keeps a POST's page for `session` and answers with a redirect to `page`; any
    /// other response (a redirect already, a page too large to keep) passes as it is.
    pub async fn keep(&self, session: &str, page: &str, response: Response) -> Response {
        if !is_page(&response) {
            return response;
        }
        let (parts, body) = response.into_parts();
        let body = match axum::body::to_bytes(body, LARGEST).await {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "console: a page could not be read to keep it");
                return StatusCode::INTERNAL_SERVER_ERROR.into_response();
            }
        };
        let Some(content_type) = parts.headers.get(header::CONTENT_TYPE).cloned() else {
            return Response::from_parts(parts, Body::from(body));
        };
        let id = random_hex();
        let (path, query) = page.split_once('?').unwrap_or((page, ""));
        let location = with_query(
            path,
            &[query, &format!("{PARAM}={id}")]
                .iter()
                .filter(|q| !q.is_empty())
                .copied()
                .collect::<Vec<_>>()
                .join("&"),
        );
        let kept = Kept {
            session: session.to_string(),
            path: path.to_string(),
            status: parts.status,
            content_type,
            body,
            at: Instant::now(),
        };
        let mut all = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        all.retain(|_, k| k.at.elapsed() < KEEP);
        all.insert(id, kept);
        bound(&mut all, session);
        Redirect::to(&location).into_response()
    }

    /// The kept page `id` for a GET of `uri` by `session`; a page that is gone (an
    /// expired id, a restart, another session's) redirects to the address without it.
    pub fn show(&self, session: &str, id: &str, uri: &Uri) -> Response {
        let all = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        match all.get(id) {
            Some(k) if k.session == session && k.path == uri.path() && k.at.elapsed() < KEEP => (
                k.status,
                [
                    (header::CONTENT_TYPE, k.content_type.clone()),
                    (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
                ],
                k.body.clone(),
            )
                .into_response(),
            _ => Redirect::to(&with_query(uri.path(), &without_flash(uri.query()))).into_response(),
        }
    }
}

/// Drops the oldest answers past the per-session and total bounds.
fn bound(all: &mut HashMap<String, Kept>, session: &str) {
    loop {
        let mine = all.values().filter(|k| k.session == session).count();
        let bytes: usize = all.values().map(|k| k.body.len()).sum();
        if mine <= PER_SESSION && bytes <= TOTAL_BYTES {
            return;
        }
        let oldest = all
            .iter()
            .filter(|(_, k)| mine <= PER_SESSION || k.session == session)
            .min_by_key(|(_, k)| k.at)
            .map(|(id, _)| id.clone());
        match oldest {
            Some(id) => {
                all.remove(&id);
            }
            None => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(host: &str, referer: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, host.parse().unwrap());
        h.insert(header::REFERER, referer.parse().unwrap());
        h
    }

    fn page(status: StatusCode, text: &'static str) -> Response {
        (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            text,
        )
            .into_response()
    }

    #[test]
    fn the_form_page_is_a_same_origin_console_referer_without_its_old_flash() {
        let h = headers(
            "127.0.0.1:8080",
            "http://127.0.0.1:8080/console/instances/pg-1/temporary?before=e1&flash=abc",
        );
        assert_eq!(
            form_page(&h).as_deref(),
            Some("/console/instances/pg-1/temporary?before=e1")
        );
        let other = headers("127.0.0.1:8080", "http://evil.example/console/diff");
        assert_eq!(form_page(&other), None);
        let outside = headers("127.0.0.1:8080", "http://127.0.0.1:8080/api/v1/instances");
        assert_eq!(form_page(&outside), None);
        assert_eq!(form_page(&HeaderMap::new()), None);
    }

    #[tokio::test]
    async fn a_kept_page_is_shown_again_to_its_session_only_at_its_path() {
        let f = Flashes::default();
        let r = f
            .keep(
                "s1",
                "/console/diff",
                page(StatusCode::BAD_REQUEST, "<p>the error</p>"),
            )
            .await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let location = r.headers()[header::LOCATION].to_str().unwrap().to_string();
        let uri: Uri = location.parse().unwrap();
        assert_eq!(uri.path(), "/console/diff");
        let id = flash_id(&uri).unwrap();

        for _ in 0..2 {
            let shown = f.show("s1", &id, &uri);
            assert_eq!(shown.status(), StatusCode::BAD_REQUEST);
            let body = axum::body::to_bytes(shown.into_body(), 1 << 20)
                .await
                .unwrap();
            assert_eq!(&body[..], b"<p>the error</p>");
        }
        // Another session, or the id at another path: the page without it.
        let gone = f.show("s2", &id, &uri);
        assert_eq!(gone.status(), StatusCode::SEE_OTHER);
        assert_eq!(gone.headers()[header::LOCATION], "/console/diff");
        let elsewhere: Uri = format!("/console/migrations?flash={id}").parse().unwrap();
        assert_eq!(
            f.show("s1", &id, &elsewhere).headers()[header::LOCATION],
            "/console/migrations"
        );
    }

    #[tokio::test]
    async fn redirects_pass_and_a_session_keeps_at_most_its_share() {
        let f = Flashes::default();
        let r = f
            .keep("s1", "/console/diff", Redirect::to("/x").into_response())
            .await;
        assert_eq!(r.headers()[header::LOCATION], "/x");
        let mut ids = Vec::new();
        for _ in 0..PER_SESSION + 3 {
            let r = f
                .keep("s1", "/console/diff", page(StatusCode::OK, "report"))
                .await;
            let uri: Uri = r.headers()[header::LOCATION]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            ids.push((flash_id(&uri).unwrap(), uri));
        }
        let kept = ids
            .iter()
            .filter(|(id, uri)| f.show("s1", id, uri).status() == StatusCode::OK)
            .count();
        assert_eq!(kept, PER_SESSION);
        // The newest is among them.
        let (id, uri) = ids.last().unwrap();
        assert_eq!(f.show("s1", id, uri).status(), StatusCode::OK);
    }
}
