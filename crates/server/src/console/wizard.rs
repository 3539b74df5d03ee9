//! The migration task creation wizard, after the reference workflow: task name
//! (prefilled), source and target (instance type, region, instance, account, password),
//! "Authorize whitelist and go to next step", then migration types, objects (a
//! two-pane picker with "Edit" to rename), conflict mode, and "Pre-check and start".
//!
//! Until the last step the wizard is a draft kept in the browser's session, in memory
//! only (passwords included): the task, sealed passwords and whitelist entries come
//! into being together when the user clicks "Pre-check and start", which creates the
//! task, adds the worker's address to both whitelists, and runs the pre-check. An
//! abandoned wizard therefore leaves no task and no whitelist entry behind.

use std::collections::HashMap;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect};
use maud::{Markup, html};
use serde::Deserialize;

use super::diff::tables_of;
use super::form::Fields;
use super::layout::{self, PageResult, Section, csrf, error_box};
use super::session::{Ctx, random_hex};
use crate::error::ApiError;
use crate::instances;
use crate::migrations::{self, CreateTask, EndpointInput};
use crate::state::SharedState;

/// One side of a draft task.
#[derive(Clone, Default)]
pub struct Side {
    pub region: String,
    pub instance: String,
    pub account: String,
    pub password: String,
}

/// What the first step gathered.
#[derive(Clone, Default)]
pub struct Draft {
    pub name: String,
    pub source: Side,
    pub target: Side,
}

#[derive(Deserialize)]
pub struct Prefill {
    source: Option<String>,
    target: Option<String>,
}

type Errors = HashMap<String, ApiError>;

pub async fn step_one(
    State(state): State<SharedState>,
    Extension(ctx): Extension<Ctx>,
    Query(q): Query<Prefill>,
) -> PageResult {
    let side = |id: Option<String>| {
        let rec = id.and_then(|i| instances::get(&state, &i).ok());
        Side {
            region: rec.as_ref().map(|r| r.region.clone()).unwrap_or_default(),
            instance: rec.as_ref().map(|r| r.id.to_string()).unwrap_or_default(),
            account: rec.map(|r| r.privileged_account).unwrap_or_default(),
            password: String::new(),
        }
    };
    // From a master's page the usual source is its temporary instance.
    let source = q.source.or_else(|| {
        let master = instances::get(&state, q.target.as_deref()?).ok()?;
        let temporaries = state.store.live_temporaries(&master.id).ok()?;
        temporaries.first().map(|t| t.id.to_string())
    });
    let draft = Draft {
        name: migrations::default_name(),
        source: side(source),
        target: side(q.target),
    };
    render_one(&state, &ctx, &draft, &Errors::new())
}

fn render_one(state: &SharedState, ctx: &Ctx, d: &Draft, errors: &Errors) -> PageResult {
    let all = state.store.list_instances(false)?;
    let err = |k: &str| html! { @if let Some(e) = errors.get(k) { (error_box(e)) } };
    let side = |which: &str, title: &str, s: &Side| {
        html! {
            fieldset.card {
                legend { strong { (title) } }
                label for={ (which) "_type" } { "Instance type" }
                select id={ (which) "_type" } name={ (which) "_type" } { option value="lifeboat" { "Lifeboat instance (PostgreSQL)" } }
                label for={ (which) "_region" } { "Instance region" }
                select id={ (which) "_region" } name={ (which) "_region" } {
                    @for r in &state.config.regions { option value=(r.name) selected[r.name == s.region] { (r.name) } }
                }
                (err(&format!("{which}_region")))
                label for={ (which) "_instance" } { "Instance ID" }
                select id={ (which) "_instance" } name={ (which) "_instance" } required {
                    option value="" { "choose an instance" }
                    @for r in &all { option value=(r.id) selected[r.id.as_str() == s.instance] { (r.id) " · " (r.name) " (" (r.kind) ", " (r.status) ")" } }
                }
                (err(&format!("{which}_instance")))
                label for={ (which) "_account" } { "Database account" }
                input id={ (which) "_account" } type="text" name={ (which) "_account" } value=(s.account) required;
                (err(&format!("{which}_account")))
                label for={ (which) "_password" } { "Database password" }
                input id={ (which) "_password" } type="password" name={ (which) "_password" } autocomplete="off" required;
                (err(&format!("{which}_password")))
            }
        }
    };
    let body = html! {
        main {
            p.muted { a href="/console/migrations" { "Migration tasks" } " / new" }
            h1 { "Create migration task" }
            p.muted { "Step 1 of 2: the task and the two instances." }
            form #wizard-one method="post" action="/console/migrations/new" {
                (csrf(ctx))
                label for="name" { "Task name" }
                input #name type="text" name="name" value=(d.name) required maxlength="64";
                (err("name"))
                div.grid2 {
                    (side("source", "Source database", &d.source))
                    (side("target", "Target database", &d.target))
                }
                (err("task"))
                p.muted { "The migration worker connects from " span.mono { (state.config.regions[0].address) }
                    ": its address is added to both instances' whitelists when the task is created (at \"Pre-check and start\"), and removed when the task ends or is deleted." }
                p { button.primary #authorize-next type="submit" { "Authorize whitelist and go to next step" } }
            }
        }
    };
    let mut resp = layout::page(ctx, "Create migration task", Section::Migrations, body);
    if let Some(e) = errors.values().next() {
        *resp.status_mut() = e.status;
    }
    Ok(resp)
}

fn read_side(state: &SharedState, f: &Fields, which: &str, errors: &mut Errors) -> Side {
    let side = Side {
        region: f.text(&format!("{which}_region")),
        instance: f.text(&format!("{which}_instance")),
        account: f.text(&format!("{which}_account")),
        password: f
            .get(&format!("{which}_password"))
            .unwrap_or_default()
            .to_string(),
    };
    let mut fail = |k: &str, e: ApiError| {
        errors.insert(format!("{which}_{k}"), e);
    };
    match instances::get(state, &side.instance) {
        Err(e) => fail("instance", e.on(which)),
        Ok(rec) => {
            if rec.region != side.region {
                fail(
                    "region",
                    ApiError::bad_request(
                        format!(
                            "{which} instance {} is in region '{}', not '{}'",
                            rec.id, rec.region, side.region
                        ),
                        "choose the instance's own region",
                    ),
                );
            }
            match state.store.accounts(&rec.id) {
                Ok(accounts) if !accounts.iter().any(|a| a.name == side.account) => fail(
                    "account",
                    ApiError::bad_request(
                        format!("instance {} has no account '{}'", rec.id, side.account),
                        format!(
                            "use one of: {}",
                            accounts
                                .iter()
                                .map(|a| a.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ),
                ),
                Ok(_) => {}
                Err(e) => fail("account", e.into()),
            }
        }
    }
    if let Err(e) = lifeboat_domain::names::validate_password(&side.password) {
        fail("password", e.into());
    }
    side
}

pub async fn submit_one(
    State(state): State<SharedState>,
    Extension(ctx): Extension<Ctx>,
    body: Bytes,
) -> PageResult {
    let f = Fields::parse(&body);
    let mut errors = Errors::new();
    let name = f.text("name");
    if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
        errors.insert(
            "name".into(),
            ApiError::bad_request(
                format!("invalid task name '{}'", name.escape_debug()),
                "use 1 to 64 printable characters",
            ),
        );
    }
    let draft = Draft {
        name,
        source: read_side(&state, &f, "source", &mut errors),
        target: read_side(&state, &f, "target", &mut errors),
    };
    if errors.is_empty() && draft.source.instance == draft.target.instance {
        errors.insert(
            "task".into(),
            ApiError::bad_request(
                "the source and the target are the same instance",
                "copy from the temporary instance into its master, or between two instances",
            ),
        );
    }
    if !errors.is_empty() {
        return render_one(&state, &ctx, &draft, &errors);
    }
    let id = random_hex()[..12].to_string();
    ctx.sessions
        .with(&ctx.session, |s| s.drafts.insert(id.clone(), draft));
    Ok(Redirect::to(&format!("/console/migrations/new/{id}")).into_response())
}

fn draft_of(ctx: &Ctx, id: &str) -> Option<Draft> {
    ctx.sessions
        .with(&ctx.session, |s| s.drafts.get(id).cloned())
        .flatten()
}

fn expired() -> PageResult {
    Ok(Redirect::to("/console/migrations/new").into_response())
}

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
