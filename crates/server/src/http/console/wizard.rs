//! The migration task creation wizard, after the reference workflow: task name
//! (prefilled), source and target (instance type, region, instance, account, password),
//! "Authorize whitelist and go to next step"; then (in [`super::selection`]) migration
//! types, objects (a two-pane picker with "Edit" to rename), conflict mode, and
//! "Save and run the pre-check".
//!
//! "Authorize whitelist and go to next step" does what it says: it creates the task
//! (without objects yet, its passwords sealed) and adds the worker's address to both
//! instances' whitelists. The second step then fills in the task's objects, types and
//! conflict mode ([`migrations::update`]) and runs its pre-check. A task whose wizard was
//! abandoned stays in the task list, not started, where "Edit" finishes it and "Delete
//! task" removes it with its whitelist entries.

use std::collections::HashMap;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect};
use maud::html;
use serde::Deserialize;

use lifeboat_api::ErrorCode;
use lifeboat_api::migrations::{CreateTask, EndpointInput};

use super::form::Fields;
use super::layout::{self, PageResult, Section, csrf, error_box, with_status_of};
use super::session::Ctx;
use crate::control::registry::instance;
use crate::control::{Error, Shared, migrations};

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

type Errors = HashMap<String, Error>;

pub async fn step_one(
    State(state): State<Shared>,
    Extension(ctx): Extension<Ctx>,
    Query(q): Query<Prefill>,
) -> PageResult {
    let side = |id: Option<String>| {
        let rec = id.and_then(|i| instance(&state, &i).ok());
        Side {
            region: rec.as_ref().map(|r| r.region.clone()).unwrap_or_default(),
            instance: rec.as_ref().map(|r| r.id.to_string()).unwrap_or_default(),
            account: rec.map(|r| r.privileged_account).unwrap_or_default(),
            password: String::new(),
        }
    };
    // From a master's page the usual source is its temporary instance.
    let source = q.source.or_else(|| {
        let master = instance(&state, q.target.as_deref()?).ok()?;
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

fn render_one(state: &Shared, ctx: &Ctx, d: &Draft, errors: &Errors) -> PageResult {
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
                    ": the button below creates the task and adds this address to both instances' whitelists; they are removed when the task ends or is deleted." }
                p { button.primary #authorize-next type="submit" { "Authorize whitelist and go to next step" } }
            }
        }
    };
    Ok(with_status_of(
        layout::page(ctx, "Create migration task", Section::Migrations, body),
        errors.values().next(),
    ))
}

fn read_side(state: &Shared, f: &Fields, which: &str, errors: &mut Errors) -> Side {
    let side = Side {
        region: f.text(&format!("{which}_region")),
        instance: f.text(&format!("{which}_instance")),
        account: f.text(&format!("{which}_account")),
        password: f
            .get(&format!("{which}_password"))
            .unwrap_or_default()
            .to_string(),
    };
    let mut fail = |k: &str, e: Error| {
        errors.insert(format!("{which}_{k}"), e);
    };
    match instance(state, &side.instance) {
        Err(e) => fail("instance", e.on(which)),
        Ok(rec) => {
            if rec.region != side.region {
                fail(
                    "region",
                    Error::invalid(
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
                    Error::invalid(
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
    State(state): State<Shared>,
    Extension(ctx): Extension<Ctx>,
    body: Bytes,
) -> PageResult {
    let f = Fields::parse(&body);
    let mut errors = Errors::new();
    let name = f.text("name");
    if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
        errors.insert(
            "name".into(),
            Error::invalid(
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
            Error::invalid(
                "the source and the target are the same instance",
                "copy from the temporary instance into its master, or between two instances",
            ),
        );
    }
    if !errors.is_empty() {
        return render_one(&state, &ctx, &draft, &errors);
    }
    let req = CreateTask {
        name: Some(draft.name.clone()),
        source: endpoint(&draft.source),
        target: endpoint(&draft.target),
        objects: Vec::new(),
        types: None,
        conflict: None,
        delete_rows_only_in_target: None,
    };
    let doc = match migrations::create(&state, req).await {
        Ok(doc) => doc,
        Err(e) => {
            let at = if e.code == ErrorCode::DuplicateName {
                "name"
            } else {
                "task"
            };
            errors.insert(at.into(), e);
            return render_one(&state, &ctx, &draft, &errors);
        }
    };
    if let Err(e) = migrations::authorize(&state, &doc.id).await {
        // Nothing of the failed step stays behind: no task, no whitelist entry.
        if let Err(del) = migrations::delete(&state, &doc.id).await {
            tracing::warn!(task = %doc.id, error = %del.message, "cannot remove the task after a failed authorization");
        }
        errors.insert("task".into(), e);
        return render_one(&state, &ctx, &draft, &errors);
    }
    // A wrong account or password is said here, beside its field, not later by the
    // pre-check.
    if let Err((which, e)) = migrations::check_logins(&state, &doc.id).await {
        if let Err(del) = migrations::delete(&state, &doc.id).await {
            tracing::warn!(task = %doc.id, error = %del.message, "cannot remove the task after a refused login");
        }
        let at = if which == "task" {
            "task".to_string()
        } else {
            format!("{which}_password")
        };
        errors.insert(at, e);
        return render_one(&state, &ctx, &draft, &errors);
    }
    Ok(Redirect::to(&format!("/console/migrations/{}/objects", doc.id)).into_response())
}

fn endpoint(side: &Side) -> EndpointInput {
    EndpointInput {
        instance: side.instance.clone(),
        region: Some(side.region.clone()),
        account: side.account.clone(),
        password: side.password.clone(),
    }
}
