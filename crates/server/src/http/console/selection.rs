//! The migration wizard's second step, on a task the first step created and
//! authorized: migration types, the two-pane object picker with "Edit" to rename, the
//! conflict mode, and "Save and run the pre-check", which saves them in the task and starts
//! its pre-check. The task list's "Edit" comes back here while the task has not started.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect};
use maud::{Markup, html};

use lifeboat_api::migrations::{EndpointChange, TaskView, UpdateTask};

use super::form::Fields;
use super::layout::{self, PageResult, Section, csrf, error_box, with_status_of};
use super::session::Ctx;
use crate::control::catalog::objects_of;
use crate::control::registry::instance;
use crate::control::{Error, Shared, migrations};

/// The source's objects for the left pane: each database, schema and table.
async fn source_objects(state: &Shared, id: &str) -> Result<Vec<(usize, String)>, Error> {
    objects_of(state, &instance(state, id)?).await
}

/// One object in the selected pane (the script builds the same markup).
fn selected_item(object: &str, rename: &str) -> Markup {
    html! {
        li data-object=(object) {
            span.mono.obj { (object) }
            input type="hidden" name="object" value=(object);
            input.rename type="text" name="rename" value=(rename) placeholder="new name: table, or schema.table" hidden[rename.is_empty()];
            button.edit type="button" { "Edit" }
            button.remove type="button" title="Remove" { "×" }
        }
    }
}

struct Step2 {
    types: Vec<String>,
    objects: Vec<(String, String)>,
    conflict: String,
    /// Under repair: delete the target rows whose key the source lacks.
    delete_rows_only_in_target: bool,
    /// The accounts as shown or typed (passwords are never shown back).
    source_account: String,
    target_account: String,
}

/// A task's objects as the picker shows them: (source object, new name or "").
fn picked(doc: &TaskView) -> Vec<(String, String)> {
    doc.objects
        .iter()
        .map(|o| match o.split_once('=') {
            Some((src, dst)) => (src.to_string(), dst.to_string()),
            None => (o.clone(), String::new()),
        })
        .collect()
}

pub async fn step_two(
    State(state): State<Shared>,
    Extension(ctx): Extension<Ctx>,
    Path(task): Path<String>,
) -> PageResult {
    let doc = migrations::show(&state, &task)?;
    let s = Step2 {
        types: doc.types.clone(),
        objects: picked(&doc),
        conflict: doc.conflict.clone(),
        delete_rows_only_in_target: doc.delete_rows_only_in_target,
        source_account: doc.source.account.clone(),
        target_account: doc.target.account.clone(),
    };
    render_two(&state, &ctx, &doc, &s, not_editable(&doc)).await
}

/// The refusal shown when a task can no longer change.
fn not_editable(doc: &TaskView) -> Option<Error> {
    (!doc.state.editable()).then(|| migrations::task::not_editable(&doc.id, doc.state))
}

async fn render_two(
    state: &Shared,
    ctx: &Ctx,
    doc: &TaskView,
    s: &Step2,
    error: Option<Error>,
) -> PageResult {
    let (objects, list_error) = match source_objects(state, &doc.source.instance).await {
        Ok(o) => (o, None),
        Err(e) => (Vec::new(), Some(e)),
    };
    let modes = [
        (
            "error",
            "Stop: the pre-check fails when a mapped table exists in the target",
        ),
        (
            "skip-existing",
            "Insert only rows whose key is absent from the target (undo a DELETE)",
        ),
        (
            "overwrite",
            "Source rows replace target rows with the same key (replaced rows are saved)",
        ),
        (
            "replace",
            "Replace the whole table (the old one is kept under a reported name)",
        ),
        (
            "repair",
            "Change only the rows that differ (changed rows are saved; the pre-check shows what will change)",
        ),
    ];
    // A task that already selects objects is being edited, not created.
    let editing = !doc.objects.is_empty();
    let title = if editing {
        "Edit migration task"
    } else {
        "Create migration task"
    };
    let body = html! {
        main {
            p.muted { a href="/console/migrations" { "Migration tasks" } " / "
                @if editing { a href={ "/console/migrations/" (doc.id) } { (doc.name) } " / edit" } @else { "new" } }
            h1 { (title) ": " (doc.name) " " span.mono.muted { (doc.id) } }
            p.muted { "Step 2 of 2. From " span.mono { (doc.source.instance) } " (" (doc.source.account) ") to "
                span.mono { (doc.target.instance) } " (" (doc.target.account) "). "
                @if doc.authorized { "The worker's address " span.mono { (doc.worker_address) } " is authorized on both whitelists. " }
                a href={ "/console/migrations/" (doc.id) } { "Task page" } }
            form #wizard-two method="post" action={ "/console/migrations/" (doc.id) "/objects" } {
                (csrf(ctx))
                h2 { "Accounts" }
                p.muted { "The accounts the task logs in with. Leave a password empty to keep the one given before." }
                div.grid2 {
                    @for (which, title, account) in [("source", "Source", &s.source_account), ("target", "Target", &s.target_account)] {
                        fieldset.card {
                            legend { strong { (title) " " span.mono { @if which == "source" { (doc.source.instance) } @else { (doc.target.instance) } } } }
                            label for={ (which) "_account" } { "Database account" }
                            input id={ (which) "_account" } type="text" name={ (which) "_account" } value=(account) required;
                            label for={ (which) "_password" } { "New password (optional)" }
                            input id={ (which) "_password" } type="password" name={ (which) "_password" } autocomplete="off";
                        }
                    }
                }
                h2 { "Migration types" }
                label.check { input #type-schema type="checkbox" name="type" value="schema" checked[s.types.iter().any(|t| t == "schema")]; " Schema migration" }
                label.check { input #type-data type="checkbox" name="type" value="data" checked[s.types.iter().any(|t| t == "data")]; " Full data migration" }
                h2 { "Objects" }
                p.muted { "Select objects on the left and click > to add them. Hover an object on the right and click Edit to give it another name in the target." }
                @if let Some(e) = &list_error { (error_box(e)) }
                div.picker {
                    div { strong { "Available" } br;
                        select #available multiple {
                            @for (depth, o) in &objects { option value=(o) { (maud::PreEscaped("&nbsp;&nbsp;&nbsp;".repeat(*depth))) (o.rsplit('.').next().unwrap_or(o)) } }
                        }
                    }
                    div.moves { button #add type="button" title="Add the selected objects" { ">" } }
                    div { strong { "Selected" } br;
                        ul #selected { @for (o, r) in &s.objects { (selected_item(o, r)) } }
                    }
                }
                @if let Some(e) = &error { div.picker-error { (error_box(e)) } }
                h2 { "Conflict mode" }
                select #conflict name="conflict" {
                    @for (m, text) in modes { option value=(m) selected[s.conflict == m] { (m) ": " (text) } }
                }
                label.check { input #delete-only-in-target type="checkbox" name="delete_rows_only_in_target" value="true" checked[s.delete_rows_only_in_target];
                    " Repair: also delete the rows only in the target (saved first; usually rows written after the chosen time)" }
                p { button.primary #precheck-start type="submit" { "Save and run the pre-check" } }
            }
        }
    };
    Ok(with_status_of(
        layout::page(ctx, title, Section::Migrations, body),
        error.as_ref(),
    ))
}

pub async fn submit_two(
    State(state): State<Shared>,
    Extension(ctx): Extension<Ctx>,
    Path(task): Path<String>,
    body: Bytes,
) -> PageResult {
    let doc = migrations::show(&state, &task)?;
    let f = Fields::parse(&body);
    let renames = f.all("rename");
    let s = Step2 {
        types: f.all("type"),
        objects: f
            .all("object")
            .into_iter()
            .enumerate()
            .map(|(i, o)| {
                (
                    o,
                    renames
                        .get(i)
                        .map(|r| r.trim().to_string())
                        .unwrap_or_default(),
                )
            })
            .collect(),
        conflict: f.text("conflict"),
        delete_rows_only_in_target: f.text("delete_rows_only_in_target") == "true",
        source_account: f.text("source_account"),
        target_account: f.text("target_account"),
    };
    // An account changed or a password typed replaces the task's (sealed as before);
    // an empty password field keeps the one given earlier.
    let change = |which: &str, account: &str, current: &str| {
        let password = f
            .get(&format!("{which}_password"))
            .filter(|p| !p.is_empty())
            .map(str::to_string);
        let account = (!account.is_empty() && account != current).then(|| account.to_string());
        (account.is_some() || password.is_some()).then_some(EndpointChange { account, password })
    };
    let source = change("source", &s.source_account, &doc.source.account);
    let target = change("target", &s.target_account, &doc.target.account);
    if s.types.is_empty() {
        let e = Error::invalid(
            "no migration type chosen",
            "tick schema migration, full data migration, or both",
        );
        return render_two(&state, &ctx, &doc, &s, Some(e)).await;
    }
    if s.objects.is_empty() {
        let e = Error::invalid(
            "no object selected",
            "select a database, schema or table on the left and click >",
        );
        return render_two(&state, &ctx, &doc, &s, Some(e)).await;
    }
    let req = UpdateTask {
        objects: Some(
            s.objects
                .iter()
                .map(|(o, r)| {
                    if r.is_empty() {
                        o.clone()
                    } else {
                        format!("{o}={r}")
                    }
                })
                .collect(),
        ),
        source,
        target,
        types: Some(s.types.join(",")),
        conflict: Some(s.conflict.clone()),
        delete_rows_only_in_target: Some(s.delete_rows_only_in_target),
    };
    if let Err(e) = migrations::update(&state, &doc.id, req) {
        return render_two(&state, &ctx, &doc, &s, Some(e)).await;
    }
    match super::migrations::run_precheck(&state, &doc.id).await {
        Ok(()) => Ok(Redirect::to(&format!("/console/migrations/{}", doc.id)).into_response()),
        Err(e) => super::migrations::task_page(&state, &ctx, &doc.id, Some(e)).await,
    }
}
