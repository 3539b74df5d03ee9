//! The migration wizard's second step: migration types, the two-pane object picker
//! with "Edit" to rename, the conflict mode, and "Pre-check and start", which creates
//! the task, authorizes the worker on both whitelists and starts the pre-check.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect};
use maud::{Markup, html};

use super::diff::tables_of;
use super::form::Fields;
use super::layout::{self, PageResult, Section, csrf, error_box};
use super::session::Ctx;
use super::wizard::{Draft, Side, draft_of, expired};
use crate::error::ApiError;
use crate::instances;
use crate::migrations::{self, CreateTask, EndpointInput};
use crate::state::SharedState;

/// The source's objects for the left pane: each database, schema and table.
async fn source_objects(
    state: &SharedState,
    instance: &str,
) -> Result<Vec<(usize, String)>, ApiError> {
    let rec = instances::get(state, instance)?;
    let client = crate::instances::cluster_of(state, &rec)?
        .connect("postgres")
        .await?;
    let rows = client
        .query(
            "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY 1",
            &[],
        )
        .await
        .map_err(|e| ApiError::internal(lifeboat_postgres::describe(&e)))?;
    let mut out = Vec::new();
    for db in rows.iter().map(|r| r.get::<_, String>(0)) {
        out.push((0, db.clone()));
        let mut last_schema = String::new();
        for t in tables_of(state, &rec, &db).await? {
            let (schema, _) = t.split_once('.').unwrap_or((&t, ""));
            if schema != last_schema {
                out.push((1, format!("{db}.{schema}")));
                last_schema = schema.to_string();
            }
            out.push((2, format!("{db}.{t}")));
        }
    }
    Ok(out)
}

/// One object in the selected pane (the script builds the same markup).
fn selected_item(object: &str, rename: &str) -> Markup {
    html! {
        li data-object=(object) {
            span.mono.obj { (object) }
            input type="hidden" name="object" value=(object);
            input.rename type="text" name="rename" value=(rename) placeholder="new name" hidden[rename.is_empty()];
            button.edit type="button" { "Edit" }
            button.remove type="button" title="Remove" { "×" }
        }
    }
}

struct Step2 {
    types: Vec<String>,
    objects: Vec<(String, String)>,
    conflict: String,
}

pub async fn step_two(
    State(state): State<SharedState>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
) -> PageResult {
    let Some(d) = draft_of(&ctx, &id) else {
        return expired();
    };
    let s = Step2 {
        types: vec!["schema".into(), "data".into()],
        objects: Vec::new(),
        conflict: "error".into(),
    };
    render_two(&state, &ctx, &id, &d, &s, None).await
}

async fn render_two(
    state: &SharedState,
    ctx: &Ctx,
    id: &str,
    d: &Draft,
    s: &Step2,
    error: Option<ApiError>,
) -> PageResult {
    let (objects, list_error) = match source_objects(state, &d.source.instance).await {
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
    ];
    let body = html! {
        main {
            p.muted { a href="/console/migrations" { "Migration tasks" } " / new" }
            h1 { "Create migration task: " (d.name) }
            p.muted { "Step 2 of 2. From " span.mono { (d.source.instance) } " (" (d.source.account) ") to "
                span.mono { (d.target.instance) } " (" (d.target.account) "). " a href="/console/migrations/new" { "Start over" } }
            form #wizard-two method="post" action={ "/console/migrations/new/" (id) } {
                (csrf(ctx))
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
                @if let Some(e) = &error { (error_box(e)) }
                h2 { "Conflict mode" }
                select #conflict name="conflict" {
                    @for (m, text) in modes { option value=(m) selected[s.conflict == m] { (m) ": " (text) } }
                }
                p { button.primary #precheck-start type="submit" { "Pre-check and start" } }
            }
        }
    };
    let mut resp = layout::page(ctx, "Create migration task", Section::Migrations, body);
    if let Some(e) = &error {
        *resp.status_mut() = e.status;
    }
    Ok(resp)
}

pub async fn submit_two(
    State(state): State<SharedState>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
    body: Bytes,
) -> PageResult {
    let Some(d) = draft_of(&ctx, &id) else {
        return expired();
    };
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
    };
    if s.types.is_empty() {
        let e = ApiError::bad_request(
            "no migration type chosen",
            "tick schema migration, full data migration, or both",
        );
        return render_two(&state, &ctx, &id, &d, &s, Some(e)).await;
    }
    let endpoint = |side: &Side| EndpointInput {
        instance: side.instance.clone(),
        region: Some(side.region.clone()),
        account: side.account.clone(),
        password: side.password.clone(),
    };
    let req = CreateTask {
        name: Some(d.name.clone()),
        source: endpoint(&d.source),
        target: endpoint(&d.target),
        objects: s
            .objects
            .iter()
            .map(|(o, r)| {
                if r.is_empty() {
                    o.clone()
                } else {
                    format!("{o}={r}")
                }
            })
            .collect(),
        types: Some(s.types.join(",")),
        conflict: Some(s.conflict.clone()),
    };
    let doc = match migrations::create(&state, req).await {
        Ok(doc) => doc,
        Err(e) => return render_two(&state, &ctx, &id, &d, &s, Some(e)).await,
    };
    ctx.sessions.with(&ctx.session, |s| s.drafts.remove(&id));
    let next = match migrations::authorize(&state, &doc.id).await {
        Ok(_) => super::migrations::run_precheck(&state, &doc.id).await,
        Err(e) => Err(e),
    };
    match next {
        Ok(()) => Ok(Redirect::to(&format!("/console/migrations/{}", doc.id)).into_response()),
        Err(e) => super::migrations::task_page(&state, &ctx, &doc.id, Some(e)).await,
    }
}
