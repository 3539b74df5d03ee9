//! The web console: server-rendered pages at `/console/...` over the same service
//! modules the JSON API uses (never over HTTP), for people who live in a browser.
//!
//! Pages are [maud] templates, checked when the server compiles; the only style sheet
//! and script are embedded ([`assets`]). Every route but signing in needs a session,
//! and every POST the session's CSRF token ([`session::guard`]). A failure a form
//! caused re-renders that form with the API's message beside it; other failures become
//! a page that says what failed and what to do ([`layout::Failure`]), never a bare 500.
//! A form's answer reaches the browser through a redirect to the form's page
//! ([`flash`]), so reloading never submits a form twice.
//! Long operations (temporary instance creation, base backups, pre-checks, migrations)
//! show progress through small `fetch` polling of `*.json` routes.
//!
//! # Layout
//! - [`session`] and [`flash`]: sign-in, sessions, the guard (session + CSRF), and
//!   redirect after POST.
//! - [`layout`], [`assets`], [`form`]: the page shell, CSS and JS, form fields.
//! - [`instances`]: the region selector, the instance list, basic information,
//!   accounts and whitelist.
//! - [`recovery`], [`timeline`] and [`events`]: backups, the temporary instance tab,
//!   the picture of the restorable window and the events with "Restore to just before
//!   this".
//! - [`picker`]: the point-in-time field of the forms that restore from backups.
//! - [`repository`]: the masters known only from the backup repository (deleted
//!   here, or written by another server), each with its window and a clone form.
//! - [`diff`]: compare tables of two instances.
//! - [`migrations`], [`wizard`] and [`selection`]: the task list, a task's page, and
//!   the creation wizard (endpoints, then types, objects and conflict mode).

mod assets;
mod diff;
mod events;
mod flash;
mod form;
mod instances;
mod layout;
mod migrations;
mod picker;
mod recovery;
mod repository;
mod selection;
mod session;
mod timeline;
mod wizard;

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Router, middleware};

use crate::control::Shared;

/// The console's routes, to merge into the application.
pub fn router(state: &Shared) -> Router<Shared> {
    let sessions = Arc::new(session::Sessions::new(state.clone()));
    let home = || async { Redirect::to("/console/instances") };
    Router::new()
        .route("/", get(home))
        .route("/console", get(home))
        .route("/console/", get(home))
        .route(
            "/console/sign-in",
            get(session::sign_in_page).post(session::sign_in),
        )
        .route("/console/sign-out", post(session::sign_out))
        .route("/console/assets/console.css", get(assets::css))
        .route("/console/assets/console.js", get(assets::js))
        .route("/console/instances", get(instances::list))
        .route(
            "/console/instances/adopt",
            get(instances::adopt_page).post(instances::adopt),
        )
        .route("/console/instances/{id}", get(instances::basic))
        .route(
            "/console/instances/{id}/progress.json",
            get(instances::progress_json),
        )
        .route(
            "/console/instances/{id}/accounts",
            get(instances::accounts).post(instances::create_account),
        )
        .route(
            "/console/instances/{id}/whitelist",
            get(instances::whitelist).post(instances::change_whitelist),
        )
        .route(
            "/console/instances/{id}/backups",
            get(recovery::backups).post(recovery::back_up_now),
        )
        .route(
            "/console/instances/{id}/backups.json",
            get(recovery::backups_json),
        )
        .route(
            "/console/instances/{id}/temporary",
            get(recovery::temporary).post(recovery::create_temporary),
        )
        .route(
            "/console/instances/{id}/temporary.json",
            get(recovery::temporary_json),
        )
        .route(
            "/console/instances/{id}/temporary/delete",
            post(recovery::delete_temporary),
        )
        .route("/console/repository", get(repository::list))
        .route("/console/repository/{id}", get(repository::show))
        .route("/console/repository/{id}/clone", post(repository::clone))
        .route("/console/diff", get(diff::page).post(diff::run))
        .route("/console/migrations", get(migrations::list))
        .route("/console/migrations.json", get(migrations::list_json))
        .route(
            "/console/migrations/new",
            get(wizard::step_one).post(wizard::submit_one),
        )
        .route("/console/migrations/{task}", get(migrations::show))
        .route(
            "/console/migrations/{task}/objects",
            get(selection::step_two).post(selection::submit_two),
        )
        .route(
            "/console/migrations/{task}/progress.json",
            get(migrations::task_json),
        )
        .route(
            "/console/migrations/{task}/{action}",
            post(migrations::action),
        )
        .route("/console/{*rest}", get(not_found))
        .route_layer(middleware::from_fn_with_state(
            sessions.clone(),
            session::guard,
        ))
        .layer(Extension(sessions))
}

/// An unknown console address: a page that says so, with a way back.
async fn not_found() -> Response {
    layout::message_page(
        StatusCode::NOT_FOUND,
        "Page not found",
        "There is no console page at this address.",
    )
}
