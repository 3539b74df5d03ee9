//! Data migration: the task list (pre-check again, start, cancel, view) and a task's
//! page (pre-check items with their detail and advice, per-table progress, the
//! verification report). The creation wizard is in [`super::wizard`].

use axum::Extension;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use lifeboat_api::migrations::{PrecheckItemView, PrecheckStatus, TableProgress, TaskView};
use lifeboat_domain::TaskState;
use maud::{Markup, html};
use serde_json::{Value, json};

use super::form::Fields;
use super::layout::{
    self, Failure, PageResult, Section, badge, csrf, error_box, time, with_status_of,
};
use super::session::Ctx;
use crate::control::{Error, Shared, migrations};

/// Rows copied, and of how many when PostgreSQL's statistics gave an estimate.
fn rows_text(t: &TableProgress) -> String {
    match t.estimated_rows {
        0 => t.rows.to_string(),
        est => format!("{} / ~{est}", t.rows),
    }
}

/// Overall progress of a task, in percent.
fn progress(doc: &TaskView) -> u64 {
    if doc.state == TaskState::Completed {
        return 100;
    }
    if doc.tables.is_empty() {
        return 0;
    }
    let sum: f64 = doc
        .tables
        .iter()
        .map(|t| if t.state.finished() { 100.0 } else { t.percent })
        .sum();
    (sum / doc.tables.len() as f64).round() as u64
}

fn busy(doc: &TaskView) -> bool {
    doc.state.busy()
}

fn version(doc: &TaskView) -> String {
    format!("{}:{}", doc.state, doc.tables.len())
}

/// The action buttons of a task, as forms; `back` says which page to return to.
fn actions(ctx: &Ctx, doc: &TaskView, back: &str) -> Markup {
    let form = |action: &str, label: &str, class: &str| {
        html! {
            form.inline method="post" action={ "/console/migrations/" (doc.id) "/" (action) } {
                (csrf(ctx)) input type="hidden" name="back" value=(back);
                button class=(class) data-action=(action) type="submit" { (label) }
            }
        }
    };
    html! {
        @if doc.state.editable() { a.button data-action="edit" href={ "/console/migrations/" (doc.id) "/objects" } { "Edit" } " " }
        @if !busy(doc) && doc.state != TaskState::Completed { (form("precheck", "Pre-check again", "")) " " }
        @if doc.state == TaskState::PrecheckPassed {
            button.primary data-action="start" type="button" data-open={ "start-" (doc.id) } { "Start" } " "
            dialog id={ "start-" (doc.id) } {
                p { "The pre-check of " strong { (doc.name) } " passed. Start copying into " (doc.target.instance) " now? The target stays online." }
                form method="post" action={ "/console/migrations/" (doc.id) "/start" } {
                    (csrf(ctx)) input type="hidden" name="back" value=(back);
                    button.primary #start-ok type="submit" { "OK" } " " button type="button" data-close { "Cancel" }
                }
            }
        }
        @if doc.state == TaskState::Migrating { (form("cancel", "Cancel", "danger")) " " }
        @if back == "list" { a.button data-action="view" href={ "/console/migrations/" (doc.id) } { "View" } }
        @else if !busy(doc) {
            button.danger data-action="delete" type="button" data-open={ "delete-" (doc.id) } { "Delete task" }
            dialog id={ "delete-" (doc.id) } {
                p { "Delete the task " strong { (doc.name) } " (" (doc.id) ")? The rows it copied stay in " (doc.target.instance)
                    "; its record and the whitelist entries it added are removed." }
                form method="post" action={ "/console/migrations/" (doc.id) "/delete" } {
                    (csrf(ctx)) input type="hidden" name="back" value=(back);
                    button.danger #delete-ok type="submit" { "Delete" } " " button type="button" data-close { "Cancel" }
                }
            }
        }
    }
}

/// `?deleted=NAME`: the task just deleted, for the notice on the list.
#[derive(serde::Deserialize, Default)]
pub struct ListQuery {
    deleted: Option<String>,
}

pub async fn list(
    State(state): State<Shared>,
    Extension(ctx): Extension<Ctx>,
    Query(q): Query<ListQuery>,
) -> PageResult {
    list_page(&state, &ctx, None, q.deleted.as_deref()).await
}

fn load_all(state: &Shared) -> Result<Vec<TaskView>, Error> {
    migrations::list(state)
}

fn list_version(docs: &[TaskView]) -> String {
    docs.iter()
        .map(|d| format!("{}={}", d.id, version(d)))
        .collect::<Vec<_>>()
        .join(",")
}

async fn list_page(
    state: &Shared,
    ctx: &Ctx,
    error: Option<(String, Error)>,
    deleted: Option<&str>,
) -> PageResult {
    let docs = load_all(state)?;
    let body = html! {
        main {
            div.titlebar {
                h1 { "Migration tasks" }
                a.right href="/console/migrations/new" { button.primary #new-task type="button" { "Create migration task" } }
            }
            @if let Some(name) = deleted {
                div #deleted { (layout::notice(&format!("Deleted the task {name}; the whitelist entries it added were removed."))) }
            }
            @if docs.is_empty() { p.muted { "No migration task yet." } }
            @else {
                div data-poll="/console/migrations.json" data-version=(list_version(&docs)) {
                    table #tasks {
                        thead { tr { th { "Name" } th { "Source" } th { "Target" } th { "State" } th { "Progress" } th { "Actions" } } }
                        tbody { @for d in docs.iter().rev() {
                            tr data-task=(d.id) {
                                td { a href={ "/console/migrations/" (d.id) } { (d.name) } br; span.mono.muted { (d.id) } }
                                td.mono { (d.source.instance) } td.mono { (d.target.instance) }
                                td { (badge(d.state.as_str())) }
                                td { span.bar { span data-bar={ (d.id) "_progress" } style={ "width:" (progress(d)) "%" } {} }
                                     " " span data-bind={ (d.id) "_percent" } { (progress(d)) "%" } }
                                td.actions { (actions(ctx, d, "list"))
                                    @if let Some((id, e)) = &error { @if id == &d.id { (error_box(e)) } } }
                            }
                        } }
                    }
                }
            }
        }
    };
    Ok(with_status_of(
        layout::page(ctx, "Migration tasks", Section::Migrations, body),
        error.as_ref().map(|(_, e)| e),
    ))
}

pub async fn list_json(State(state): State<Shared>) -> Result<Response, Failure> {
    let docs = load_all(&state)?;
    let mut fields = serde_json::Map::new();
    for d in &docs {
        fields.insert(format!("{}_progress", d.id), json!(progress(d)));
        fields.insert(
            format!("{}_percent", d.id),
            json!(format!("{}%", progress(d))),
        );
    }
    let done = !docs.iter().any(busy);
    Ok(
        Json(json!({ "version": list_version(&docs), "done": done, "fields": fields }))
            .into_response(),
    )
}

pub async fn show(
    State(state): State<Shared>,
    Extension(ctx): Extension<Ctx>,
    Path(task): Path<String>,
) -> PageResult {
    task_page(&state, &ctx, &task, None).await
}

fn item_markup(i: usize, item: &PrecheckItemView) -> Markup {
    let status = item.status.as_str();
    html! {
        tr data-item=(item.id) data-item-status=(status) {
            td { (item.name) }
            td { (badge(status)) " "
                @if item.status != PrecheckStatus::Passed {
                    button.bang type="button" data-open={ "item-" (i) } title="Show the detail and advice" aria-label={ "Why " (item.name) " " (status) } { "!" }
                    dialog.item-detail id={ "item-" (i) } {
                        h2 { (item.name) ": " (status) }
                        h3 { "What was found" } p.detail { (layout::console_words(&item.detail)) }
                        h3 { "What to do" } p.advice { (layout::console_words(&item.advice)) }
                        p { button type="button" data-close { "Close" } }
                    }
                }
                // What a repair will change is the point of its pre-check: shown, not
                // behind a button.
                @if item.id == "repair_preview" && item.status == PrecheckStatus::Passed {
                    ul.repair-preview { @for line in item.detail.lines() { li.mono { (layout::console_words(line)) } } }
                }
            }
        }
    }
}

/// What verification checked, in words.
fn expectation_words(expectation: &str) -> &'static str {
    match expectation {
        "identical" => "the same rows on both sides",
        "source_keys_present" => "every source row's key is in the target",
        "source_rows_present" => "every source row is in the target as it is",
        _ => "compared with the source",
    }
}

fn report_markup(report: &Value) -> Markup {
    let empty = Vec::new();
    html! {
        h2 { "Verification report" }
        table #verification {
            thead { tr { th { "Table" } th { "Expectation" } th { "Source rows" } th { "Target rows" } th { "Result" } th { "Detail" } } }
            tbody { @for v in report["verification"].as_array().unwrap_or(&empty) { tr {
                td.mono { (v["table"].as_str().unwrap_or_default()) }
                td { (expectation_words(v["expectation"].as_str().unwrap_or_default())) }
                td { (v["source_rows"]) } td { (v["target_rows"]) }
                td { @if v["passed"].as_bool() == Some(true) { (badge("passed")) } @else { (badge("failed")) } }
                td { (v["detail"].as_str().unwrap_or_default()) }
            } } }
        }
        h2 { "Tables" }
        table #outcomes {
            thead { tr { th { "Source" } th { "Target" } th { "Action" } th { "Rows read" } th { "Inserted" } th { "Skipped" } th { "Replaced" } th { "Updated" } th { "Deleted" } th { "Kept as" } } }
            tbody { @for t in report["tables"].as_array().unwrap_or(&empty) { tr {
                td.mono { (t["source"].as_str().unwrap_or_default()) } td.mono { (t["target"].as_str().unwrap_or_default()) }
                td { (t["action"].as_str().map(|a| a.replace('_', "-")).unwrap_or_else(|| t["action"].to_string())) }
                td { (t["rows_copied"]) } td { (t["rows_inserted"]) } td { (t["rows_skipped"]) } td { (t["rows_replaced"]) }
                td { (t["rows_updated"].as_u64().unwrap_or(0)) } td { (t["rows_deleted"].as_u64().unwrap_or(0)) }
                td.mono { (t["kept_table"].as_str().unwrap_or("")) }
            }
            // A partitioned table's partitions, with the names they got.
            @for p in t["partitions"].as_array().unwrap_or(&empty) { tr.muted {
                td.mono { "partition " (p["source"].as_str().unwrap_or_default()) } td.mono { (p["target"].as_str().unwrap_or_default()) }
                td {} td { (p["rows_copied"]) } td {} td {} td {} td {}
            } } } }
        }
        // Views, functions, triggers and the rest; reports stored before these were
        // migrated have none.
        @if let Some(objects) = report["objects"].as_array().filter(|o| !o.is_empty()) {
            h2 { "Other objects" }
            table #objects {
                thead { tr { th { "Kind" } th { "Name" } th { "Result" } th { "Note" } } }
                tbody { @for o in objects { tr {
                    td { (o["kind"].as_str().unwrap_or_default().replace('_', " ")) }
                    td.mono { (o["name"].as_str().unwrap_or_default()) }
                    td { @if o["created"].as_bool() == Some(true) { "created" } @else { "not created" } }
                    td { (o["note"].as_str().unwrap_or_default()) }
                } } }
            }
        }
        @for w in report["warnings"].as_array().unwrap_or(&empty) { p.hint { (w.as_str().unwrap_or_default()) } }
    }
}

pub async fn task_page(state: &Shared, ctx: &Ctx, task: &str, error: Option<Error>) -> PageResult {
    let doc = migrations::show(state, task)?;
    let body = html! {
        main data-poll={ "/console/migrations/" (doc.id) "/progress.json" } data-version=(version(&doc)) {
            p.muted { a href="/console/migrations" { "Migration tasks" } " / " (doc.id) }
            div.titlebar {
                h1 { (doc.name) " " span.mono.muted { (doc.id) } " " span #task-state { (badge(doc.state.as_str())) } }
                div.right #task-actions { (actions(ctx, &doc, "task")) }
            }
            @if let Some(e) = &error { (error_box(e)) }
            @if let Some(e) = &doc.error { div.error { strong { "The task failed: " } (e) } }
            @if doc.state == TaskState::Prechecking { (layout::notice("The pre-check is running; this page shows its items when it ends.")) }
            @if doc.state == TaskState::PrecheckPassed { (layout::notice("The pre-check passed. Click Start, then OK, to start the migration.")) }
            dl.info {
                dt { "Source" } dd { span.mono { (doc.source.instance) } " in " (doc.source.region) " as " span.mono { (doc.source.account) } }
                dt { "Target" } dd { span.mono { (doc.target.instance) } " in " (doc.target.region) " as " span.mono { (doc.target.account) } }
                dt { "Objects" } dd.mono #task-objects { (doc.objects.join(", ")) }
                dt { "Migration types" } dd { (doc.types.join(", ")) }
                dt { "Conflict mode" } dd { (doc.conflict) }
                dt { "Whitelist" } dd { @if doc.authorized { "the worker's address " span.mono { (doc.worker_address) } " is authorized on both instances" } @else if doc.finished_at.is_some() { "the worker's entries were removed when the task ended" } @else { "not authorized" } }
                dt { "Created" } dd { (time(doc.created_at)) }
                @if let Some(t) = doc.started_at { dt { "Started" } dd { (time(t)) } }
                @if let Some(t) = doc.finished_at { dt { "Finished" } dd { (time(t)) } }
                dt { "Progress" } dd { span.bar { span data-bar="progress" style={ "width:" (progress(&doc)) "%" } {} } " " span #task-progress data-bind="percent" { (progress(&doc)) "%" } }
            }
            h2 { "Pre-check" }
            @if doc.precheck.is_empty() { p.muted { "Not run yet." } }
            @else { table #precheck { thead { tr { th { "Check item" } th { "Result" } } } tbody { @for (i, item) in doc.precheck.iter().enumerate() { (item_markup(i, item)) } } } }
            @if !doc.tables.is_empty() {
                h2 { "Progress by table" }
                table #table-progress {
                    thead { tr { th { "Source" } th { "Target" } th { "State" } th { "Progress" } th { "Rows read" } th { "Time left" } } }
                    tbody { @for (i, t) in doc.tables.iter().enumerate() { tr {
                        td.mono { (t.source) } td.mono { (t.target) }
                        td { span data-bind={ "t" (i) "_state" } { (t.state) } }
                        td { span.bar { span data-bar={ "t" (i) "_percent" } style={ "width:" (t.percent.round()) "%" } {} } }
                        td { span data-bind={ "t" (i) "_rows" } { (rows_text(t)) } }
                        td { span data-bind={ "t" (i) "_eta" } { (t.eta_seconds.map(|s| layout::duration(s as i64)).unwrap_or_default()) } }
                    } } }
                }
            }
            @if let Some(r) = &doc.report { (report_markup(r)) }
        }
    };
    Ok(with_status_of(
        layout::page(ctx, &doc.name, Section::Migrations, body),
        error.as_ref(),
    ))
}

pub async fn task_json(
    State(state): State<Shared>,
    Path(task): Path<String>,
) -> Result<Response, Failure> {
    let doc = migrations::show(&state, &task)?;
    let mut fields = serde_json::Map::new();
    fields.insert("progress".into(), json!(progress(&doc)));
    fields.insert("percent".into(), json!(format!("{}%", progress(&doc))));
    for (i, t) in doc.tables.iter().enumerate() {
        fields.insert(format!("t{i}_state"), json!(t.state));
        fields.insert(format!("t{i}_percent"), json!(t.percent.round()));
        fields.insert(format!("t{i}_rows"), json!(rows_text(t)));
        fields.insert(
            format!("t{i}_eta"),
            json!(
                t.eta_seconds
                    .map(|s| layout::duration(s as i64))
                    .unwrap_or_default()
            ),
        );
    }
    Ok(
        Json(json!({ "version": version(&doc), "done": !busy(&doc), "fields": fields }))
            .into_response(),
    )
}

/// How long a request waits for a pre-check before answering with the task's page,
/// which then follows the pre-check by polling. A refusal (wrong state) comes back at
/// once, so it still shows beside the button that caused it.
const PRECHECK_WAIT: std::time::Duration = std::time::Duration::from_millis(200);

/// Starts the pre-check in the background and waits a moment for it.
pub async fn run_precheck(state: &Shared, task: &str) -> Result<(), Error> {
    let worker = state.clone();
    let task = task.to_string();
    let running = tokio::spawn(async move {
        let result = migrations::precheck(&worker, &task).await;
        if let Err(e) = &result {
            tracing::warn!(task, error = %e.message, "console pre-check refused or failed");
        }
        result
    });
    match tokio::time::timeout(PRECHECK_WAIT, running).await {
        Ok(result) => result?.map(|_| ()),
        Err(_) => Ok(()),
    }
}

pub async fn action(
    State(state): State<Shared>,
    Extension(ctx): Extension<Ctx>,
    Path((task, action)): Path<(String, String)>,
    body: Bytes,
) -> PageResult {
    let back_to_list = Fields::parse(&body).get("back") == Some("list");
    let result = match action.as_str() {
        "precheck" => run_precheck(&state, &task).await,
        "start" => migrations::start(&state, &task).await.map(|_| ()),
        "cancel" => migrations::cancel(&state, &task).map(|_| ()),
        "delete" => {
            let name = migrations::show(&state, &task)
                .map(|d| d.name)
                .unwrap_or(task.clone());
            return match migrations::delete(&state, &task).await {
                Ok(()) => {
                    let query =
                        serde_urlencoded::to_string([("deleted", &name)]).unwrap_or_default();
                    Ok(Redirect::to(&format!("/console/migrations?{query}")).into_response())
                }
                Err(e) => task_page(&state, &ctx, &task, Some(e)).await,
            };
        }
        other => Err(Error::not_found(
            format!("no task action '{other}'"),
            "use the buttons on the task's page",
        )),
    };
    match (result, back_to_list) {
        (Ok(()), true) => Ok(Redirect::to("/console/migrations").into_response()),
        (Ok(()), false) => Ok(Redirect::to(&format!("/console/migrations/{task}")).into_response()),
        (Err(e), true) => list_page(&state, &ctx, Some((task, e)), None).await,
        (Err(e), false) => task_page(&state, &ctx, &task, Some(e)).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_shows_the_objects_and_old_reports_still_render() {
        let report = json!({
            "tables": [], "verification": [], "warnings": [],
            "objects": [
                {"kind": "materialized_view", "name": "shop.app.totals", "created": true},
                {"kind": "view", "name": "shop.public.v", "created": false, "note": "the target has it already; kept as it is"},
            ],
        });
        let html = report_markup(&report).into_string();
        assert!(html.contains("<h2>Other objects</h2>"), "{html}");
        assert!(html.contains("materialized view"), "{html}");
        assert!(html.contains("shop.app.totals</td><td>created"), "{html}");
        assert!(
            html.contains("not created</td><td>the target has it already; kept as it is"),
            "{html}"
        );
        let old = json!({"tables": [], "verification": [], "warnings": []});
        assert!(!report_markup(&old).into_string().contains("Other objects"));
    }
}
