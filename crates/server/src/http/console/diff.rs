//! The diff page: pick a source and a target instance and tables, see for each table
//! the counts of rows only in the source, only in the target and changed, and the rows.
//! Reads only, through the server's management connection to each instance.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Query, State};
use lifeboat_api::diff::{DiffBody, DiffSide};
use lifeboat_api::diff::{DiffReport, RowDiffKind, RowValues};
use maud::{Markup, html};
use serde::Deserialize;

use super::form::Fields;
use super::layout::{self, PageResult, Section, csrf, error_box, with_status_of};
use super::session::Ctx;
use crate::control::catalog::tables_of;
use crate::control::{Error, Shared, diff as control};

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
    State(state): State<Shared>,
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
    state: &Shared,
    ctx: &Ctx,
    c: &Choice,
    error: Option<Error>,
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
    Ok(with_status_of(
        layout::page(ctx, "Diff", Section::Diff, body),
        error.as_ref(),
    ))
}

pub async fn run(
    State(state): State<Shared>,
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

async fn diff(state: &Shared, c: &Choice) -> Result<DiffReport, Error> {
    let mut names: Vec<String> = c.tables.clone();
    names.extend(
        c.other
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty()),
    );
    if names.is_empty() {
        return Err(Error::invalid(
            "no table to compare",
            "tick at least one table, or name one under Other tables",
        ));
    }
    for (id, which) in [(&c.source, "source"), (&c.target, "target")] {
        if id.is_empty() {
            return Err(Error::invalid(
                format!("no {which} instance chosen"),
                format!("choose the {which} instance"),
            ));
        }
    }
    let side = |instance: &str| DiffSide {
        instance: instance.to_string(),
        account: None,
        password: None,
    };
    let body = DiffBody {
        source: side(&c.source),
        target: side(&c.target),
        database: Some(c.database.clone()),
        tables: names,
        schemas: Vec::new(),
        limit: Some(100),
    };
    control::report(control::prepare(state, &body).await?).await
}

/// `column=value, ...`, each value as the JSON PostgreSQL wrote for it.
fn values(v: Option<&RowValues>) -> String {
    v.map(|v| {
        v.0.iter()
            .map(|(k, raw)| format!("{k}={}", raw.as_deref().map_or("null", |r| r.get())))
            .collect::<Vec<_>>()
            .join(", ")
    })
    .unwrap_or_default()
}

fn kind_text(kind: RowDiffKind) -> &'static str {
    match kind {
        RowDiffKind::OnlyInSource => "only in source",
        RowDiffKind::OnlyInTarget => "only in target",
        RowDiffKind::Changed => "changed",
    }
}

fn report_markup(r: &DiffReport) -> Markup {
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
        @for (i, t) in r.tables.iter().enumerate() {
            @if !t.rows.is_empty() {
                h2 { "Differing rows of " span.mono { (t.table) } }
                @for w in &t.warnings { p.hint { (w) } }
                table.diff-rows id={ "diff-rows-" (i) } {
                    thead { tr { th { "Kind" } th { "Key" } th { "Source" } th { "Target" } } }
                    tbody { @for row in &t.rows { tr {
                        td { (kind_text(row.kind)) }
                        td.mono { (values(row.key.as_ref())) } td.mono { (values(row.source.as_ref())) } td.mono { (values(row.target.as_ref())) }
                    } } }
                }
                @if t.rows_truncated { p.hint { "Only the first 100 rows are shown; the CLI's --output json streams every row." } }
            }
        }
    }
}
