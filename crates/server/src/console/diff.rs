//! The diff page: pick a source and a target instance and tables, see for each table
//! the counts of rows only in the source, only in the target and changed, and the rows.
//! Reads only, through the server's management connection to each instance.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Query, State};
use lifeboat_domain::InstanceStatus;
use lifeboat_migrate::diff::{DiffReport, DiffRequest, TablePair};
use lifeboat_store::InstanceRecord;
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value;

use super::form::Fields;
use super::layout::{self, PageResult, Section, csrf, error_box};
use super::session::Ctx;
use crate::error::ApiError;
use crate::instances::{self, cluster_of};
use crate::state::SharedState;

/// Schemas that are PostgreSQL's own.
const SYSTEM_SCHEMAS: &str = "('pg_catalog', 'information_schema', 'pg_toast')";

/// The user tables of one database of a running instance, as `schema.table`.
pub async fn tables_of(
    state: &SharedState,
    rec: &InstanceRecord,
    database: &str,
) -> Result<Vec<String>, ApiError> {
    if rec.status != InstanceStatus::Running {
        return Err(ApiError::conflict(
            "instance_not_running",
            format!("instance {} is {}, not running", rec.id, rec.status),
            format!("start it first: lifeboat instance start {}", rec.id),
        ));
    }
    let client = cluster_of(state, rec)?.connect(database).await?;
    let sql = format!(
        "SELECT schemaname || '.' || tablename FROM pg_tables WHERE schemaname NOT IN {SYSTEM_SCHEMAS} ORDER BY 1"
    );
    let rows = client.query(&sql, &[]).await.map_err(|e| {
        ApiError::new(
            axum::http::StatusCode::BAD_GATEWAY,
            "query_failed",
            format!(
                "cannot list the tables of {}: {}",
                rec.id,
                lifeboat_postgres::describe(&e)
            ),
            "check that the instance is running",
        )
    })?;
    Ok(rows.iter().map(|r| r.get::<_, String>(0)).collect())
}

#[derive(Deserialize, Default)]
pub struct Picked {
    source: Option<String>,
    target: Option<String>,
}

/// What the form was given, to render it again.
#[derive(Default)]
struct Choice {
    source: String,
    target: String,
    database: String,
    tables: Vec<String>,
    other: String,
}

pub async fn page(
    State(state): State<SharedState>,
    Extension(ctx): Extension<Ctx>,
    Query(q): Query<Picked>,
) -> PageResult {
    let choice = Choice {
        source: q.source.unwrap_or_default(),
        target: q.target.unwrap_or_default(),
        database: "postgres".into(),
        ..Default::default()
    };
    render(&state, &ctx, &choice, None, None).await
}

async fn render(
    state: &SharedState,
    ctx: &Ctx,
    c: &Choice,
    error: Option<ApiError>,
    report: Option<&DiffReport>,
) -> PageResult {
    let all = state.store.list_instances(false)?;
    let source = all.iter().find(|r| r.id.as_str() == c.source);
    let (tables, list_error) = match source {
        Some(rec) => match tables_of(state, rec, &c.database).await {
            Ok(t) => (t, None),
            Err(e) => (Vec::new(), Some(e)),
        },
        None => (Vec::new(), None),
    };
    let select = |name: &str, chosen: &str| {
        html! {
            select id=(name) name=(name) required onchange="this.form.method='get'; this.form.submit()" {
                option value="" { "choose an instance" }
                @for r in &all { option value=(r.id) selected[r.id.as_str() == chosen] { (r.id) " · " (r.name) " (" (r.kind) ", " (r.status) ")" } }
            }
        }
    };
    let body = html! {
        main {
            h1 { "Diff" }
            p.muted { "Compare tables of two instances (usually a temporary instance and its master) without changing either." }
            form.card #diff-form method="post" action="/console/diff" {
                (csrf(ctx))
                div.grid2 {
                    div { label for="source" { "Source instance" } (select("source", &c.source)) }
                    div { label for="target" { "Target instance" } (select("target", &c.target)) }
                }
                label for="database" { "Database" }
                input #database type="text" name="database" value=(c.database);
                label { "Tables of the source" }
                @if let Some(e) = &list_error { (error_box(e)) }
                @if source.is_none() { p.muted { "Choose a source instance to list its tables." } }
                @for t in &tables {
                    div { label.check { input type="checkbox" name="table" value=(t) checked[c.tables.contains(t)]; " " span.mono { (t) } } }
                }
                label for="other" { "Other tables (SCHEMA.TABLE or SCHEMA.TABLE=SCHEMA.TABLE, comma-separated)" }
                input #other type="text" name="other" value=(c.other);
                @if let Some(e) = &error { (error_box(e)) }
                p { button.primary #run-diff type="submit" { "Compare" } }
            }
            @if let Some(r) = report { (report_markup(r)) }
        }
    };
    let mut resp = layout::page(ctx, "Diff", Section::Diff, body);
    if let Some(e) = &error {
        *resp.status_mut() = e.status;
    }
    Ok(resp)
}

pub async fn run(
    State(state): State<SharedState>,
    Extension(ctx): Extension<Ctx>,
    body: Bytes,
) -> PageResult {
    let f = Fields::parse(&body);
    let mut c = Choice {
        source: f.text("source"),
        target: f.text("target"),
        database: Some(f.text("database"))
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| "postgres".into()),
        tables: f.all("table"),
        other: f.text("other"),
    };
    c.tables.retain(|t| !t.trim().is_empty());
    match diff(&state, &c).await {
        Ok(report) => render(&state, &ctx, &c, None, Some(&report)).await,
        Err(e) => render(&state, &ctx, &c, Some(e), None).await,
    }
}

async fn diff(state: &SharedState, c: &Choice) -> Result<DiffReport, ApiError> {
    let mut names: Vec<String> = c.tables.clone();
    names.extend(
        c.other
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty()),
    );
    if names.is_empty() {
        return Err(ApiError::bad_request(
            "no table to compare",
            "tick at least one table, or name one under Other tables",
        ));
    }
    let pairs = names
        .iter()
        .map(|t| TablePair::parse(t).map_err(ApiError::from))
        .collect::<Result<Vec<_>, _>>()?;
    let mut request = DiffRequest::tables(pairs);
    request.limit = 100;
    let mut clients = Vec::new();
    for (id, which) in [(&c.source, "source"), (&c.target, "target")] {
        if id.is_empty() {
            return Err(ApiError::bad_request(
                format!("no {which} instance chosen"),
                format!("choose the {which} instance"),
            ));
        }
        let rec = instances::get(state, id).map_err(|e| e.on(which))?;
        if rec.status != InstanceStatus::Running {
            return Err(ApiError::conflict(
                "instance_not_running",
                format!("{which} instance {} is {}, not running", rec.id, rec.status),
                format!("start it first: lifeboat instance start {}", rec.id),
            ));
        }
        clients.push(cluster_of(state, &rec)?.connect(&c.database).await?);
    }
    let mut sink = lifeboat_migrate::diff::NoSink;
    Ok(lifeboat_migrate::diff::diff_tables(&clients[0], &clients[1], &request, &mut sink).await?)
}

fn values(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    }
}

fn report_markup(r: &DiffReport) -> Markup {
    let json = serde_json::to_value(r).unwrap_or(Value::Null);
    let empty = Vec::new();
    html! {
        h2 { "Result" }
        @if r.identical() { p.notice #diff-identical { "Every compared table is identical." } }
        table #diff-summary {
            thead { tr { th { "Table" } th { "Identical" } th { "Only in source" } th { "Only in target" } th { "Changed" } th { "Matched by" } } }
            tbody { @for t in &r.tables { tr data-table=(t.table) {
                td.mono { (t.table) } td { @if t.identical { "yes" } @else { strong { "no" } } }
                td.only-in-source { (t.only_in_source) } td.only-in-target { (t.only_in_target) } td.changed { (t.changed) }
                td { @if t.keyed { (t.key.join(", ")) } @else { "whole rows (no key)" } }
            } } }
        }
        @for (i, t) in json["tables"].as_array().unwrap_or(&empty).iter().enumerate() {
            @let rows = t["rows"].as_array().cloned().unwrap_or_default();
            @if !rows.is_empty() {
                h2 { "Differing rows of " span.mono { (t["table"].as_str().unwrap_or_default()) } }
                @for w in t["warnings"].as_array().unwrap_or(&empty) { p.hint { (w.as_str().unwrap_or_default()) } }
                table.diff-rows id={ "diff-rows-" (i) } {
                    thead { tr { th { "Kind" } th { "Key" } th { "Source" } th { "Target" } } }
                    tbody { @for row in &rows { tr {
                        td { (row["kind"].as_str().unwrap_or_default().replace('_', " ")) }
                        td.mono { (values(&row["key"])) } td.mono { (values(&row["source"])) } td.mono { (values(&row["target"])) }
                    } } }
                }
                @if t["rows_truncated"].as_bool() == Some(true) { p.hint { "Only the first 100 rows are shown; the CLI's --output json streams every row." } }
            }
        }
    }
}
