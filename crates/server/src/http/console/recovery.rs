//! Backup and recovery: the backups tab ("Back up now") and the temporary instance
//! tab (the restorable window as a picture, a time picker, the confirmation dialog,
//! then the temporary instance with its progress, connection and time left).

use axum::Extension;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{Local, Utc};
use lifeboat_api::backups::{BackupList, WindowView};
use lifeboat_api::instances::InstanceView;
use lifeboat_api::temporary::CreateTemporary;
use lifeboat_domain::{
    BackupRunState, BackupTrigger, InstanceKind, InstanceStatus, RestoreTarget, TemporaryPhase,
};
use lifeboat_store::InstanceRecord;
use maud::{Markup, html};
use serde_json::json;

use super::events::{self as event_list, TabQuery};
use super::form::Fields;
use super::instances::{Tab, load, shell};
use super::layout::{PageResult, badge, csrf, duration, error_box, time, with_status_of};
use super::picker;
use super::session::Ctx;
use super::timeline::Timeline;
use crate::control::backups::{inventory, start_backup};
use crate::control::registry::instance;
use crate::control::views::instance_view;
use crate::control::{Error, Shared, instances, temporary};

fn tabs(id: &str, backups: bool) -> Markup {
    html! {
        div.tabs {
            a href={ "/console/instances/" (id) "/backups" } class=[backups.then_some("active")] { "Backups" }
            a #tab-temporary href={ "/console/instances/" (id) "/temporary" } class=[(!backups).then_some("active")] { "Temporary instance" }
        }
    }
}

fn not_a_master(view: &InstanceView) -> Markup {
    html! {
        p.notice { "This is a temporary instance: it is not backed up. It was restored from "
            @if let Some(m) = &view.master_id { a.mono href={ "/console/instances/" (m) "/temporary" } { (m) } } "." }
    }
}

async fn backup_list(state: &Shared, id: &str) -> Result<BackupList, Error> {
    inventory::list(state, &instance(state, id)?).await
}

pub async fn backups(
    State(state): State<Shared>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
) -> PageResult {
    backups_page(&state, &ctx, &id, None).await
}

async fn backups_page(state: &Shared, ctx: &Ctx, id: &str, error: Option<Error>) -> PageResult {
    let (rec, view) = load(state, id).await?;
    if rec.kind == InstanceKind::Temporary {
        return Ok(shell(ctx, &view, Tab::Recovery, not_a_master(&view)));
    }
    let list = backup_list(state, id).await?;
    let version = runs_version(&list);
    let body = html! {
        (tabs(id, true))
        div.titlebar {
            h2 { "Base backups" }
            form.right method="post" action={ "/console/instances/" (id) "/backups" } {
                (csrf(ctx))
                button.primary #back-up-now type="submit" { "Back up now" }
            }
        }
        @if let Some(e) = &error { (error_box(e)) }
        p.muted { a #clone-master href={ "/console/repository/" (id) "#clone" } { "Clone into a new master" }
            ": a permanent copy restored from these backups at a point of the restorable window." }
        @if list.backups.is_empty() { p.muted { "No complete base backup yet." } }
        @else {
            table #backups {
                thead { tr { th { "Backup" } th { "Started" } th { "Finished" } th { "LSN" } th { "Size" } th { "Stored" } } }
                tbody { @for b in list.backups.iter().rev() { tr {
                    td.mono { (b.id) } td { (time(b.start_time)) } td { (time(b.stop_time)) }
                    td.mono { (b.start_lsn) " – " (b.stop_lsn) }
                    td { (b.logical_size / 1024 / 1024) " MiB" } td { (b.stored_size / 1024) " KiB" }
                } } }
            }
        }
        h2 { "Recent attempts" }
        div data-poll={ "/console/instances/" (id) "/backups.json" } data-version=(version) {
            table #backup-runs {
                thead { tr { th { "#" } th { "Trigger" } th { "State" } th { "Started" } th { "Progress" } th { "Error" } } }
                tbody { @for r in &list.runs { tr {
                    td { (r.id) } td { (r.trigger) } td { (badge(r.state.as_str())) } td { (time(r.started_at)) }
                    td { @if r.state == BackupRunState::Running {
                        span.bar { span data-bar={ "run" (r.id) } style={ "width:" (pct(r.bytes_done, r.bytes_total)) "%" } {} }
                        " " span data-bind={ "run" (r.id) "_bytes" } { (r.bytes_done / 1024 / 1024) " MiB" }
                    } @else { (r.bytes_done / 1024 / 1024) " MiB" } }
                    td { (r.error.clone().unwrap_or_default()) }
                } } }
            }
        }
    };
    Ok(with_status_of(
        shell(ctx, &view, Tab::Recovery, body),
        error.as_ref(),
    ))
}

fn pct(done: i64, total: i64) -> i64 {
    if total <= 0 {
        0
    } else {
        (done * 100 / total).clamp(0, 100)
    }
}

fn runs_version(list: &BackupList) -> String {
    list.runs
        .iter()
        .map(|r| format!("{}:{}", r.id, r.state))
        .collect::<Vec<_>>()
        .join(",")
}

pub async fn backups_json(
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> Result<Response, super::layout::Failure> {
    let list = backup_list(&state, &id).await?;
    let mut fields = serde_json::Map::new();
    for r in &list.runs {
        fields.insert(
            format!("run{}", r.id),
            json!(pct(r.bytes_done, r.bytes_total)),
        );
        fields.insert(
            format!("run{}_bytes", r.id),
            json!(format!("{} MiB", r.bytes_done / 1024 / 1024)),
        );
    }
    let done = list.runs.iter().all(|r| r.state != BackupRunState::Running);
    Ok(
        Json(json!({ "version": runs_version(&list), "done": done, "fields": fields }))
            .into_response(),
    )
}

pub async fn back_up_now(
    State(state): State<Shared>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
) -> PageResult {
    let rec = instance(&state, &id)?;
    match start_backup(&state, &rec.id, BackupTrigger::Manual).await {
        Ok(_) => Ok(Redirect::to(&format!("/console/instances/{id}/backups")).into_response()),
        Err(e) => backups_page(&state, &ctx, &id, Some(e)).await,
    }
}

pub async fn temporary(
    State(state): State<Shared>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
    Query(q): Query<TabQuery>,
) -> PageResult {
    temporary_page(&state, &ctx, &id, None, None, None, &q).await
}

async fn temporary_page(
    state: &Shared,
    ctx: &Ctx,
    id: &str,
    error: Option<Error>,
    chosen: Option<String>,
    chosen_tz: Option<String>,
    q: &TabQuery,
) -> PageResult {
    let (rec, view) = load(state, id).await?;
    if rec.kind == InstanceKind::Temporary {
        return Ok(shell(ctx, &view, Tab::Recovery, not_a_master(&view)));
    }
    // Events first: listing them brings a running master's archived WAL to the
    // present, which the window then shows.
    let found = event_list::load(state, &rec, q).await;
    let win: WindowView = inventory::window(state, &rec).await?;
    let list = backup_list(state, id).await?;
    let live = state.store.live_temporaries(&rec.id)?.into_iter().next();
    let latest = state.store.latest_temporary(&rec.id)?;
    let window = win.earliest.zip(win.latest);
    let windows = win.windows.iter().map(|w| (w.earliest, w.latest)).collect();
    // The picker starts at the live temporary instance's point, else at the latest.
    let live_target = live
        .as_ref()
        .and_then(|t| t.restore_target.clone())
        .and_then(|t| match t {
            RestoreTarget::Time(at) => Some(picker::value_of(at.with_timezone(&Utc))),
            _ => None,
        });
    let value = chosen
        .clone()
        .or(live_target)
        .or_else(|| win.latest.map(picker::value_of))
        .unwrap_or_default();
    let before = q.before();
    let before_event = before
        .as_ref()
        .and_then(|b| found.as_ref().ok()?.iter().find(|e| &e.id == b).cloned());
    let chosen_tz = chosen_tz.unwrap_or_default();
    let chosen_time = picker::instant_of(&value, &chosen_tz);
    let picture = Timeline {
        backups: list
            .backups
            .iter()
            .map(|b| (b.start_time, b.stop_time))
            .collect(),
        windows,
        chosen: if before.is_some() {
            before_event.as_ref().map(|e| e.commit_time)
        } else {
            chosen_time
        },
        events: found
            .as_ref()
            .map(|list| {
                list.iter()
                    .map(|e| (e.commit_time, e.id.clone(), event_list::summary(e)))
                    .collect()
            })
            .unwrap_or_default(),
        link: format!("/console/instances/{id}/temporary?before="),
    };
    let error = error.map(|e| picker::in_page_words(e, chosen_time, &value, &win));
    let body = html! {
        (tabs(id, false))
        // The temporary instance's card is at the bottom: say at the top that it is there.
        @if let Some(t) = &live {
            p.notice #temporary-note { "Temporary instance " span.mono { (t.id) } " is " (t.status) ". "
                a href="#temporary-instance" { "See its progress and connection details below." } }
        }
        h2 { "Restorable window" }
        (picture.render())
        p.muted #window-note {
            @if let Some((a, b)) = window { "From " strong { (time(a)) } " to " strong { (time(b)) } ": " }
            (win.note)
        }
        (event_list::section(&rec, q, &found))
        h2 { "Create a temporary instance" }
        form.card #create-temporary method="post" action={ "/console/instances/" (id) "/temporary" } {
            (csrf(ctx))
            @if let Some(b) = &before {
                input type="hidden" name="before" value=(b);
                p #before-chosen { "Restore to just before event " span.mono { (b) } ": "
                    @match &before_event { Some(e) => { (event_list::summary(e)) ". " }, None => { "an event not in the list above. " } }
                    "Every transaction that committed before it is there, even in the same second; it and everything after are not." }
                p { a #choose-time href={ "/console/instances/" (id) "/temporary" } { "Choose a point in time instead" } }
            } @else {
                (picker::field("Point in time to restore to", &value, &chosen_tz, picker::latest_ms(&win)))
            }
            @if let Some(e) = &error { (error_box(e)) }
            p {
                button.primary #create-temporary-button type="button" data-open="confirm-temporary"
                    disabled[live.is_some() || window.is_none()] { "Create temporary instance" }
                @if let Some(t) = &live {
                    " " span.hint #create-disabled { "Disabled: this master already has the temporary instance " (t.id)
                        ". A master has one temporary instance at a time; delete it first." }
                } @else if window.is_none() {
                    " " span.hint #create-disabled { "Disabled: no base backup with its WAL is in the repository yet." }
                }
            }
            dialog #confirm-temporary {
                h2 { "Create temporary instance?" }
                @if let Some(b) = &before {
                    p { "Restore " strong { (view.name) } " (" (id) ") to just before event " strong.mono { (b) } "?" }
                } @else {
                    p { "Restore " strong { (view.name) } " (" (id) ") to " strong data-echo="at" {} "." }
                }
                p.muted { "The master is not affected: the temporary instance is built from the backup repository alone. It has the accounts and passwords the master had then, network type classic, and is released automatically "
                    (duration(state.config.temporary_instance.ttl.as_secs() as i64)) " after creation." }
                p { button.primary #confirm-ok type="submit" { "OK" } " " button type="button" data-close { "Cancel" } }
            }
        }
        @if let Some(t) = latest.filter(|t| t.status != InstanceStatus::Released) {
            (temporary_card(state, ctx, &t).await?)
        }
    };
    Ok(with_status_of(
        shell(ctx, &view, Tab::Recovery, body),
        error.as_ref(),
    ))
}

/// The state and progress of an instance restored from backups (a temporary instance,
/// or a master cloned from backups while it is built), for the page's polling:
/// (version, done, fields).
pub(super) fn restore_fields(v: &InstanceView) -> (String, bool, serde_json::Value) {
    let p = v.progress.clone().unwrap_or_default();
    let percent = (p.bytes_done * 100).checked_div(p.bytes_total).unwrap_or(
        if p.phase == TemporaryPhase::Ready {
            100
        } else {
            0
        },
    );
    let fields = json!({
        "status": v.status,
        "phase": p.phase.as_str().replace('_', " "),
        "percent": percent,
        "bytes": format!("{} of {}", super::layout::size(p.bytes_done), super::layout::size(p.bytes_total)),
        "wal": format!("{} of WAL replayed", super::layout::size(p.wal_replayed_bytes)),
        "time_left": v.time_left_seconds.map(duration).unwrap_or_default(),
    });
    (
        v.status.to_string(),
        v.status != InstanceStatus::Creating,
        fields,
    )
}

pub(super) fn target_text(t: &RestoreTarget) -> String {
    match t {
        RestoreTarget::Time(at) => {
            let given = at.format("%Y-%m-%d %H:%M:%S%.f %:z").to_string();
            // In the server's zone too, when the target was given in another.
            let local = at.with_timezone(&Local);
            if chrono::Offset::fix(local.offset()) == *at.offset() {
                given
            } else {
                format!("{given} ({})", time(at.with_timezone(&Utc)))
            }
        }
        RestoreTarget::Lsn(l) => format!("LSN {l}"),
        RestoreTarget::RestorePoint(n) => format!("restore point {n}"),
        RestoreTarget::BeforeTransaction(c) => format!(
            "just before transaction {} (committed {} at LSN {}){}",
            c.xid,
            time(c.commit_time.with_timezone(&Utc)),
            c.commit_lsn,
            c.event
                .as_ref()
                .map(|e| format!(", event {e}"))
                .unwrap_or_default()
        ),
    }
}

async fn temporary_card(state: &Shared, ctx: &Ctx, t: &InstanceRecord) -> Result<Markup, Error> {
    let v = instance_view(state, t).await?;
    let (version, _, f) = restore_fields(&v);
    let s = |k: &str| {
        f[k].as_str()
            .map(str::to_string)
            .unwrap_or_else(|| f[k].to_string())
    };
    Ok(html! {
        h2 #temporary-instance { "Temporary instance" }
        div.card #temporary data-poll={ "/console/instances/" (v.master_id.clone().unwrap_or_default()) "/temporary.json" } data-version=(version) {
            dl.info {
                dt { "Instance ID" } dd { a.mono #temporary-id href={ "/console/instances/" (v.id) } { (v.id) } }
                dt { "Status" } dd { span #temporary-status data-bind="status" { (v.status) } @if let Some(d) = &v.status_detail { " " span.error { (d) } } }
                dt { "Restored to" } dd #restored-to { (v.restore_target.as_ref().map(target_text).unwrap_or_default()) }
                dt { "Progress" } dd {
                    span data-bind="phase" { (s("phase")) } " "
                    span.bar { span data-bar="percent" style={ "width:" (s("percent")) "%" } {} }
                    " " span data-bind="bytes" { (s("bytes")) } ", " span data-bind="wal" { (s("wal")) }
                }
                dt { "Connection string" } dd.mono #temporary-connection { (v.connection_string) }
                dt { "psql" } dd.mono { (v.psql) }
                dt { "Accounts" } dd { "the master's accounts and passwords at the chosen time" }
                @if let Some(p) = v.progress.as_ref().filter(|p| !p.unlogged_tables.is_empty()) {
                    dt { "Unlogged tables" } dd #unlogged-tables {
                        (p.unlogged_tables.len()) " came back empty: PostgreSQL writes no WAL for their rows, so no restore has them ("
                        span.mono { (p.unlogged_tables.join(", ")) } ")"
                    }
                }
                dt { "Network type" } dd { (v.network_type) }
                dt { "Time left" } dd { span #time-left data-bind="time_left" { (s("time_left")) } @if let Some(at) = v.expires_at { " (released " (time(at)) ")" } }
            }
            form method="post" action={ "/console/instances/" (v.master_id.clone().unwrap_or_default()) "/temporary/delete" } {
                (csrf(ctx))
                input type="hidden" name="temporary" value=(v.id);
                button.danger #delete-temporary type="button" data-open="confirm-delete" { "Delete temporary instance" }
                dialog #confirm-delete {
                    p { "Delete the temporary instance " (v.id) " now? Its data is lost; the master is not affected." }
                    p { button.danger type="submit" { "Delete" } " " button type="button" data-close { "Cancel" } }
                }
            }
        }
    })
}

pub async fn temporary_json(
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> Result<Response, super::layout::Failure> {
    let master = instance(&state, &id)?;
    let Some(t) = state.store.latest_temporary(&master.id)? else {
        return Ok(Json(json!({ "version": "", "done": true, "fields": {} })).into_response());
    };
    let v = instance_view(&state, &t).await?;
    let (version, done, fields) = restore_fields(&v);
    Ok(Json(json!({ "version": version, "done": done, "fields": fields })).into_response())
}

pub async fn create_temporary(
    State(state): State<Shared>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
    body: Bytes,
) -> PageResult {
    let f = Fields::parse(&body);
    let master = instance(&state, &id)?;
    let value = f.text("at");
    let tz = Some(f.text("tz")).filter(|z| !z.is_empty());
    let before = Some(f.text("before")).filter(|b| !b.trim().is_empty());
    let q = TabQuery {
        before: before.clone(),
        ..TabQuery::default()
    };
    let req = CreateTemporary {
        at: if before.is_some() {
            None
        } else {
            picker::target_at(&value)
        },
        tz: tz.clone(),
        before,
        ..Default::default()
    };
    let result = if req.at.is_none() && req.before.is_none() {
        Err(Error::invalid(
            "choose a point in time",
            "pick a time inside the restorable window",
        ))
    } else {
        temporary::create(&state, &master.id, req).await
    };
    match result {
        Ok(_) => Ok(Redirect::to(&format!("/console/instances/{id}/temporary")).into_response()),
        Err(e) => temporary_page(&state, &ctx, &id, Some(e), Some(value), tz, &q).await,
    }
}

pub async fn delete_temporary(
    State(state): State<Shared>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
    body: Bytes,
) -> PageResult {
    let f = Fields::parse(&body);
    let t = instance(&state, &f.text("temporary"))?;
    if t.kind != InstanceKind::Temporary
        || t.master_id.as_ref().map(|m| m.as_str()) != Some(id.as_str())
    {
        let e = Error::invalid(
            format!("{} is not a temporary instance of {id}", t.id),
            "delete it from its own master's page",
        );
        return temporary_page(&state, &ctx, &id, Some(e), None, None, &TabQuery::default()).await;
    }
    match instances::delete(state.clone(), t.id).await {
        Ok(()) => Ok(Redirect::to(&format!("/console/instances/{id}/temporary")).into_response()),
        Err(e) => {
            temporary_page(&state, &ctx, &id, Some(e), None, None, &TabQuery::default()).await
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Local, Offset};

    use super::*;

    #[test]
    fn a_restored_time_is_shown_once_in_the_servers_zone_and_twice_in_another() {
        let t = DateTime::parse_from_rfc3339("2026-12-01T18:02:14Z").unwrap();
        let local_offset = t.with_timezone(&Local).offset().fix();
        let here = t.with_timezone(&local_offset);
        let shown = target_text(&RestoreTarget::Time(here));
        assert_eq!(shown, here.format("%Y-%m-%d %H:%M:%S %:z").to_string());
        // Another zone: the server's follows in parentheses.
        let other =
            chrono::FixedOffset::east_opt(local_offset.local_minus_utc() + 5 * 3600).unwrap();
        let shown = target_text(&RestoreTarget::Time(t.with_timezone(&other)));
        assert!(
            shown.ends_with(&format!("({})", time(t.with_timezone(&Utc)))),
            "{shown}"
        );
    }

    #[test]
    fn sizes_use_one_unit() {
        use crate::http::console::layout::size;
        assert_eq!(size(0), "0 B");
        assert_eq!(size(1023), "1023 B");
        assert_eq!(size(23_068_672), "22.0 MiB");
        assert_eq!(size(33_834_008), "32.3 MiB");
        assert_eq!(size(3 << 30), "3.0 GiB");
    }
}
