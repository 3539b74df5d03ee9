//! The masters known only from the backup repository: ones this server deleted (their
//! backups stay) and ones another Lifeboat server wrote (a host that was lost, a
//! repository shared between servers). Their backups are all that is left of them,
//! so each one's page offers the way back: clone it into a new master at a point of
//! its restorable window.
//!
//! The list reads every region's repository ([`entries::list`]); the clone is
//! [`clones::clone`], which returns at once with the new master in status
//! `creating`; its own page follows the build.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect};
use chrono::{DateTime, Utc};
use lifeboat_api::backups::{RepositoryEntryView, WindowView};
use lifeboat_api::temporary::CloneInstance;
use maud::{Markup, html};
use serde::Deserialize;

use super::form::Fields;
use super::layout::{self, PageResult, Section, csrf, error_box, time, with_status_of};
use super::picker;
use super::session::Ctx;
use crate::control::backups::entries;
use crate::control::{Error, Shared, clones};

#[derive(Deserialize)]
pub struct RegionQuery {
    region: Option<String>,
}

/// What an entry is to this server, in words.
fn relation_words(e: &RepositoryEntryView, this_server: &str) -> String {
    match e.relation.as_str() {
        "managed" => "an instance of this server".into(),
        "deleted" => "deleted on this server; its backups remain".into(),
        "other_server" => match &e.owner {
            Some(o) if o != this_server => format!("written by another Lifeboat server ({o})"),
            _ => "written by another Lifeboat server".into(),
        },
        "undescribed" => {
            "no description of it (written by an older Lifeboat); it cannot be restored here yet"
                .into()
        }
        other => other.replace('_', " "),
    }
}

/// A time as the console shows it, with the exact instant for a machine to read.
fn exact(t: DateTime<Utc>) -> Markup {
    html! {
        time datetime=(t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)) { (time(t)) }
    }
}

/// The window as a sentence: its ends, or why there is none.
fn window_text(w: &WindowView) -> Markup {
    html! {
        @match (w.earliest, w.latest) {
            (Some(a), Some(b)) => {
                span.window { "From " strong data-earliest { (exact(a)) } " to " strong data-latest { (exact(b)) } }
                @if let (Some(la), Some(lb)) = (&w.earliest_lsn, &w.latest_lsn) {
                    br; span.muted.mono { "LSN " (la) " – " (lb) }
                }
                @let earlier = &w.windows[..w.windows.len().saturating_sub(1)];
                @if !earlier.is_empty() {
                    br; span.muted.earlier-windows { "Before a WAL gap, also from "
                        @for (i, e) in earlier.iter().enumerate() {
                            @if i > 0 { ", and from " }
                            (exact(e.earliest)) " to " (exact(e.latest))
                        }
                    }
                }
            }
            _ => { span.muted { "No restorable window: " (w.note) } }
        }
    }
}

pub async fn list(
    State(state): State<Shared>,
    Extension(ctx): Extension<Ctx>,
    Query(q): Query<RegionQuery>,
) -> PageResult {
    let region = q
        .region
        .filter(|r| state.config.regions.iter().any(|c| &c.name == r));
    let all = entries::list(&state, region.as_deref()).await?;
    let shown: Vec<&RepositoryEntryView> = all
        .entries
        .iter()
        .filter(|e| e.relation != "managed")
        .collect();
    let body = html! {
        main {
            div.titlebar {
                h1 { "Backup repository" }
                form.right method="get" action="/console/repository" {
                    label.inline for="region" { "Region " }
                    select #region name="region" onchange="this.form.submit()" {
                        option value="" selected[region.is_none()] { "All regions" }
                        @for r in &state.config.regions {
                            option value=(r.name) selected[region.as_deref() == Some(r.name.as_str())] { (r.name) }
                        }
                    }
                    noscript { button type="submit" { "Show" } }
                }
            }
            p.muted { "Masters known only from the backup repository: this server deleted them, or another Lifeboat server wrote their backups. Clone one to restore it into a new master." }
            @if shown.is_empty() {
                p.notice #repository-empty { "The backup repository of "
                    @match &region { Some(r) => { "region " (r) }, None => { "every region" } }
                    " holds no master but the instances of this server." }
            } @else {
                table #repository {
                    thead { tr { th { "ID" } th { "Name" } th { "Region" } th { "Engine version" } th { "Known as" } th { "Owner" } th { "Backups" } th { "Restorable window" } th {} } }
                    tbody {
                        @for e in &shown {
                            tr data-entry=(e.id) data-relation=(e.relation) {
                                td { a.mono href={ "/console/repository/" (e.id) } { (e.id) } }
                                td { (e.name.clone().unwrap_or_else(|| "—".into())) }
                                td { (e.region) }
                                td { @match &e.engine_version { Some(v) => { "PostgreSQL " (v) }, None => { "unknown" } } }
                                td { (relation_words(e, &all.server_id)) }
                                td.mono { (e.owner.clone().unwrap_or_else(|| "—".into())) }
                                td { (e.backups) }
                                td { (window_text(&e.window)) }
                                td { @if e.window.earliest.is_some() {
                                    a href={ "/console/repository/" (e.id) "#clone" } { button type="button" { "Clone" } }
                                } }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(layout::page(
        &ctx,
        "Backup repository",
        Section::Repository,
        body,
    ))
}

/// What the clone form was sent with, to show again beside an error.
#[derive(Default)]
struct Typed {
    name: String,
    at: Option<String>,
    tz: String,
}

pub async fn show(
    State(state): State<Shared>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
) -> PageResult {
    entry_page(&state, &ctx, &id, None, Typed::default()).await
}

async fn find(state: &Shared, id: &str) -> Result<(RepositoryEntryView, String), Error> {
    let all = entries::list(state, None).await?;
    let this = all.server_id;
    all.entries
        .into_iter()
        .find(|e| e.id == id)
        .map(|e| (e, this))
        .ok_or_else(|| {
            Error::not_found(
                format!("no backup repository holds backups of {id}"),
                "choose a master on the Backup repository page",
            )
        })
}

async fn entry_page(
    state: &Shared,
    ctx: &Ctx,
    id: &str,
    error: Option<Error>,
    typed: Typed,
) -> PageResult {
    let (e, this) = find(state, id).await?;
    let win = &e.window;
    let value = typed
        .at
        .clone()
        .or_else(|| win.latest.map(picker::value_of))
        .unwrap_or_default();
    let chosen = picker::instant_of(&value, &typed.tz);
    let error = error.map(|err| picker::in_page_words(err, chosen, &value, win));
    let restorable = win.earliest.is_some() && win.latest.is_some();
    let title = e.name.clone().unwrap_or_else(|| e.id.clone());
    let body = html! {
        main {
            p.muted { a href="/console/repository" { "Backup repository" } " / " (e.id) }
            div.titlebar { h1 { (title) " " span.mono.muted { (e.id) } } }
            dl.info #entry {
                dt { "Instance ID" } dd.mono { (e.id) }
                dt { "Name" } dd { (e.name.clone().unwrap_or_else(|| "—".into())) }
                dt { "Region" } dd { (e.region) }
                dt { "Engine version" } dd { @match &e.engine_version { Some(v) => { "PostgreSQL " (v) }, None => { "unknown" } } }
                dt { "Known as" } dd #relation { (relation_words(&e, &this)) }
                dt { "Owner" } dd.mono { (e.owner.clone().unwrap_or_else(|| "—".into())) @if e.owner.as_deref() == Some(this.as_str()) { " (this server)" } }
                @if let Some(a) = &e.privileged_account { dt { "Privileged account" } dd.mono { (a) } }
                @if let Some(c) = e.created_at { dt { "Created" } dd { (time(c)) } }
                @if let Some(r) = &e.restored_from { dt { "Restored from" } dd.mono { (r) } }
                dt { "Base backups" } dd { (e.backups) }
                dt { "Restorable window" } dd #window { (window_text(win)) }
            }
            @if e.relation == "managed" {
                p.notice { "This master is an instance of this server: see "
                    a href={ "/console/instances/" (e.id) "/backups" } { "its Backup and recovery tab" } "." }
            }
            h2 #clone { "Clone into a new master" }
            p.muted { "A new, permanent master restored from these backups at the chosen time. It has the accounts and passwords this master had then and is backed up from its first second; the backups it is restored from are not changed." }
            form.card #clone-form method="post" action={ "/console/repository/" (e.id) "/clone" } {
                (csrf(ctx))
                label for="name" { "Name of the new master" }
                input #name type="text" name="name" value=(typed.name) required maxlength="64"
                    pattern="[A-Za-z][A-Za-z0-9_-]{0,63}" title="1 to 64 letters, digits, - or _, starting with a letter";
                (picker::field("Point in time to restore to", &value, &typed.tz, picker::latest_ms(win)))
                @if let Some(err) = &error { (error_box(err)) }
                p {
                    button.primary #clone-button type="submit" disabled[!restorable] { "Clone" }
                    @if !restorable {
                        " " span.hint #clone-disabled { "Disabled: the repository holds no base backup of it with its WAL that this server can restore." }
                    }
                }
            }
        }
    };
    Ok(with_status_of(
        layout::page(ctx, &title, Section::Repository, body),
        error.as_ref(),
    ))
}

pub async fn clone(
    State(state): State<Shared>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
    body: Bytes,
) -> PageResult {
    let f = Fields::parse(&body);
    let typed = Typed {
        name: f.text("name"),
        at: Some(f.text("at")),
        tz: f.text("tz"),
    };
    let req = CloneInstance {
        name: typed.name.clone(),
        at: typed.at.as_deref().and_then(picker::target_at),
        tz: Some(typed.tz.clone()).filter(|z| !z.is_empty()),
        ..Default::default()
    };
    let result = if req.at.is_none() {
        Err(Error::invalid(
            "choose a point in time",
            "pick a time inside the restorable window",
        ))
    } else {
        clones::clone(&state, &id, req).await
    };
    match result {
        Ok(rec) => Ok(Redirect::to(&format!("/console/instances/{}", rec.id)).into_response()),
        Err(e) => entry_page(&state, &ctx, &id, Some(e), typed).await,
    }
}
