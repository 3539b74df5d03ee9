//! The instance list with its region selector, and an instance's pages: basic
//! information, accounts, whitelist. Backup and recovery is in [`super::recovery`].

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Json};
use lifeboat_api::instances::{InstanceView, Managed};
use lifeboat_domain::{InstanceKind, InstanceStatus, WhitelistEntry};
use lifeboat_store::InstanceRecord;
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::json;

use super::form::Fields;
use super::layout::{self, PageResult, Section, badge, csrf, error_box, time, with_status_of};
use super::session::Ctx;
use crate::control::instances;
use crate::control::registry::instance;
use crate::control::{Error, Shared};

/// The pages of an instance's left-side navigation.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    Basic,
    Accounts,
    Whitelist,
    Recovery,
}

#[derive(Deserialize)]
pub struct RegionQuery {
    region: Option<String>,
}

pub async fn list(
    State(state): State<Shared>,
    Extension(ctx): Extension<Ctx>,
    Query(q): Query<RegionQuery>,
) -> PageResult {
    let region = q
        .region
        .filter(|r| state.config.regions.iter().any(|c| &c.name == r))
        .unwrap_or_else(|| state.config.regions[0].name.clone());
    let all = state.store.list_instances(false)?;
    let shown: Vec<&InstanceRecord> = all.iter().filter(|r| r.region == region).collect();
    let body = html! {
        main {
            div.titlebar {
                h1 { "Instances" }
                form.right method="get" action="/console/instances" {
                    label.inline for="region" { "Region " }
                    select #region name="region" onchange="this.form.submit()" {
                        @for r in &state.config.regions {
                            option value=(r.name) selected[r.name == region] { (r.name) }
                        }
                    }
                    noscript { button type="submit" { "Show" } }
                }
            }
            @if shown.is_empty() {
                p.muted { "No instance in region " (region) ". Create one with "
                    code { "lifeboat instance create --name NAME --account USER --password-file FILE" } "." }
            } @else {
                table #instances {
                    thead { tr { th { "ID" } th { "Name" } th { "Kind" } th { "Status" } th { "Region" } th { "Created" } th { "Time left" } } }
                    tbody {
                        @for r in &shown {
                            tr data-instance=(r.id) {
                                td { a.mono href={ "/console/instances/" (r.id) } { (r.id) } }
                                td { (r.name) }
                                td { (r.kind)
                                    @if let Some(m) = &r.master_id { " of " a.mono href={ "/console/instances/" (m) } { (m) } } }
                                td { (badge(&r.status.to_string())) }
                                td { (r.region) }
                                td { (time(r.created_at)) }
                                td { (time_left(r)) }
                            }
                        }
                    }
                }
            }
            p #adopt-link { a href="/console/instances/adopt" { button type="button" { "Adopt a cluster" } }
                " " span.muted { "Protect a PostgreSQL that Lifeboat did not create, on this host or another." } }
            p.muted #repository-link { "Masters this server deleted, or whose backups another Lifeboat server wrote, are known only from the "
                a href="/console/repository" { "backup repository" } ", where they can be cloned into a new master." }
        }
    };
    Ok(layout::page(&ctx, "Instances", Section::Instances, body))
}

/// What the adopt form holds (never the password: it is typed again).
#[derive(Default)]
struct AdoptFields {
    name: String,
    host: String,
    port: String,
    account: String,
    region: String,
}

/// The form that adopts a cluster Lifeboat did not create.
pub async fn adopt_page(State(state): State<Shared>, Extension(ctx): Extension<Ctx>) -> PageResult {
    let fields = AdoptFields {
        port: "5432".into(),
        region: state.config.regions[0].name.clone(),
        ..AdoptFields::default()
    };
    Ok(adopt_form(&state, &ctx, &fields, None, None))
}

fn adopt_form(
    state: &Shared,
    ctx: &Ctx,
    f: &AdoptFields,
    items: Option<&[lifeboat_postgres::adoption::AdoptionItem]>,
    error: Option<&Error>,
) -> Response {
    let body = html! {
        main {
            p.muted { a href="/console/instances" { "Instances" } " / Adopt a cluster" }
            h1 { "Adopt a cluster" }
            p.muted { "Lifeboat checks the cluster first, then backs it up over the replication protocol through a replication slot of its own and streams its WAL. It never starts, stops or reconfigures it. The account needs REPLICATION (and pg_read_all_data for diff and pre-checks)." }
            form.card method="post" action="/console/instances/adopt" {
                (csrf(ctx))
                label for="name" { "Name" }
                input #name type="text" name="name" value=(f.name) required;
                label for="host" { "Host (name or IP address the cluster listens on)" }
                input #host type="text" name="host" value=(f.host) required;
                label for="port" { "Port" }
                input #port type="text" name="port" value=(f.port) required;
                label for="account" { "Account" }
                input #account type="text" name="account" value=(f.account) required;
                label for="password" { "Password" }
                input #password type="password" name="password" autocomplete="off" required;
                label for="region" { "Region (whose repository keeps the backups)" }
                select #region name="region" {
                    @for r in &state.config.regions {
                        option value=(r.name) selected[r.name == f.region] { (r.name) }
                    }
                }
                @if let Some(e) = error { (error_box(e)) }
                p {
                    button #adopt-check type="submit" name="op" value="check" { "Run the adoption check" }
                    " "
                    button.primary #adopt type="submit" name="op" value="adopt" { "Adopt" }
                }
            }
            @if let Some(items) = items {
                h2 { "Adoption check" }
                table #adoption-items {
                    thead { tr { th { "Item" } th { "Status" } th { "Detail" } th { "Advice" } } }
                    tbody {
                        @for i in items {
                            tr data-item=(i.id) {
                                td { (i.name) } td { (badge(i.status.as_str())) } td { (i.detail) } td { (i.advice) }
                            }
                        }
                    }
                }
                @if lifeboat_postgres::adoption::adoptable(items) {
                    p #adoptable { "The cluster can be adopted: type the password again and press Adopt." }
                } @else {
                    p #not-adoptable { "The cluster cannot be adopted yet: fix the failed items, then run the check again." }
                }
            }
        }
    };
    with_status_of(
        layout::page(ctx, "Adopt a cluster", Section::Instances, body),
        error,
    )
}

/// Runs the check (`op=check`) or adopts (`op=adopt`, then the new instance's page).
pub async fn adopt(
    State(state): State<Shared>,
    Extension(ctx): Extension<Ctx>,
    body: Bytes,
) -> PageResult {
    let f = Fields::parse(&body);
    let fields = AdoptFields {
        name: f.text("name"),
        host: f.text("host").trim().to_string(),
        port: f.text("port").trim().to_string(),
        account: f.text("account"),
        region: f.text("region"),
    };
    let Some(port) = fields.port.parse::<u16>().ok().filter(|p| *p > 0) else {
        let e = Error::invalid(
            format!("port '{}' is not a port", fields.port),
            "give the port the cluster listens on (PostgreSQL's default is 5432)",
        );
        return Ok(adopt_form(&state, &ctx, &fields, None, Some(&e)));
    };
    let req = crate::control::adoption::AdoptMaster {
        name: fields.name.clone(),
        host: fields.host.clone(),
        port,
        account: fields.account.clone(),
        password: f.text("password"),
        region: (!fields.region.is_empty()).then(|| fields.region.clone()),
    };
    if f.get("op") == Some("check") {
        return Ok(match crate::control::adoption::check(&state, &req).await {
            Ok(items) => adopt_form(&state, &ctx, &fields, Some(&items), None),
            Err(e) => adopt_form(&state, &ctx, &fields, None, Some(&e)),
        });
    }
    match crate::control::adoption::adopt(state.clone(), req).await {
        Ok(rec) => Ok(Redirect::to(&format!("/console/instances/{}", rec.id)).into_response()),
        Err(e) => Ok(adopt_form(&state, &ctx, &fields, None, Some(&e))),
    }
}

fn time_left(r: &InstanceRecord) -> String {
    match (r.kind, r.expires_at) {
        (InstanceKind::Temporary, Some(at)) => {
            let secs = (at - chrono::Utc::now()).num_seconds();
            format!("{} (released {})", layout::duration(secs), time(at))
        }
        _ => "—".into(),
    }
}

/// An instance page: title with the "Create data migration task" button at the upper
/// right, the left-side navigation, then `body`.
pub fn shell(ctx: &Ctx, view: &InstanceView, tab: Tab, body: Markup) -> Response {
    let id = &view.id;
    let nav = |t: Tab, path: &str, label: &str| {
        html! { a href={ "/console/instances/" (id) (path) } class=[(t == tab).then_some("active")] { (label) } }
    };
    let migrate_href = match &view.master_id {
        Some(master) => format!("/console/migrations/new?source={id}&target={master}"),
        None => format!("/console/migrations/new?target={id}"),
    };
    let page = html! {
        main {
            p.muted { a href={ "/console/instances?region=" (view.region) } { "Instances" } " / " (id) }
            div.titlebar {
                h1 { (view.name) " " span.mono.muted { (id) } " " (badge(view.status.as_str())) }
                a.right href=(migrate_href) { button.primary #create-migration type="button" { "Create data migration task" } }
            }
            div.layout {
                nav.sidenav {
                    (nav(Tab::Basic, "", "Basic information"))
                    (nav(Tab::Accounts, "/accounts", "Accounts"))
                    (nav(Tab::Whitelist, "/whitelist", "Whitelist"))
                    (nav(Tab::Recovery, "/backups", "Backup and recovery"))
                }
                div.content { (body) }
            }
        }
    };
    layout::page(ctx, &view.name, Section::Instances, page)
}

pub async fn load(state: &Shared, id: &str) -> Result<(InstanceRecord, InstanceView), Error> {
    let rec = instance(state, id)?;
    let view = crate::control::views::instance_view(state, &rec).await?;
    Ok((rec, view))
}

pub async fn basic(
    State(state): State<Shared>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
) -> PageResult {
    let (rec, view) = load(&state, &id).await?;
    let temporary = match rec.kind {
        InstanceKind::Master => state.store.live_temporaries(&rec.id)?.into_iter().next(),
        InstanceKind::Temporary => None,
    };
    // A master cloned from backups: where it came from, and while it is built, the
    // build's progress, followed without a reload until it runs or fails.
    let source = match &view.restored_from {
        Some(s) if view.kind == InstanceKind::Master => {
            let here = instance(&state, s).is_ok_and(|r| r.status != InstanceStatus::Released);
            let href = if here {
                format!("/console/instances/{s}")
            } else {
                format!("/console/repository/{s}")
            };
            Some((s.clone(), href))
        }
        _ => None,
    };
    let building = (source.is_some() && rec.status == InstanceStatus::Creating).then(|| {
        let mut v = view.clone();
        v.progress = Some(rec.progress.clone().unwrap_or_default());
        super::recovery::restore_fields(&v)
    });
    let external = view.managed == Managed::External;
    let body = html! {
        h2 { "Basic information" }
        dl.info {
            dt { "Instance ID" } dd.mono { (view.id) }
            dt { "Name" } dd { (view.name) }
            dt { "Kind" } dd { (view.kind) }
            dt { "Status" } dd { (badge(view.status.as_str())) @if let Some(d) = &view.status_detail { " " span.muted { (d) } } }
            dt { "Region" } dd { (view.region) }
            dt { "Engine version" } dd #engine-version { "PostgreSQL " (view.engine_version) }
            dt { "Network type" } dd #network-type { (view.network_type) }
            dt { "Managed" } dd #managed {
                @if external { "externally: an adopted cluster, backed up over the replication protocol; Lifeboat never starts, stops or reconfigures it" }
                @else { "by Lifeboat" }
            }
            dt { "Address" } dd.mono { (view.address) ":" (view.port) }
            dt { "Connection string" } dd.mono #connection-string { (view.connection_string) }
            dt { "psql" } dd.mono { (view.psql) }
            @if let Some(bytes) = view.data_size_bytes { dt { "Data size" } dd { (bytes / 1024 / 1024) " MiB" } }
            dt { "Created" } dd { (time(view.created_at)) }
            @if let Some(m) = &view.master_id { dt { "Master" } dd { a.mono href={ "/console/instances/" (m) } { (m) } } }
            @if let Some((s, href)) = &source {
                dt { "Restored from" } dd { "the backups of " a.mono #restored-from href=(href) { (s) } }
                @if let Some(t) = &view.restore_target { dt { "Restored to" } dd #restored-to { (super::recovery::target_text(t)) } }
            }
            @if let Some((version, _, f)) = &building {
                dt { "Progress" } dd #build-progress data-poll={ "/console/instances/" (view.id) "/progress.json" } data-version=(version) {
                    span data-bind="phase" { (f["phase"].as_str().unwrap_or_default()) } " "
                    span.bar { span data-bar="percent" style={ "width:" (f["percent"]) "%" } {} }
                    " " span data-bind="bytes" { (f["bytes"].as_str().unwrap_or_default()) }
                    ", " span data-bind="wal" { (f["wal"].as_str().unwrap_or_default()) }
                }
            }
            @if let (Some(at), Some(left)) = (view.expires_at, view.time_left_seconds) {
                dt { "Released" } dd { (time(at)) " (in " (layout::duration(left)) ")" }
            }
            @if let Some(t) = &temporary {
                dt { "Temporary instance" } dd { a.mono href={ "/console/instances/" (t.id) } { (t.id) } " " (badge(&t.status.to_string())) }
            }
            @if let Some(a) = &view.archiving {
                dt { "WAL archiving" } dd {
                    @if a.failing { span.badge.bad { "FAILING" } " " (a.last_failure_reason.clone().unwrap_or_default()) }
                    @else { span.badge.ok { "OK" } " " (a.archived_count) " segments archived" }
                }
            }
        }
        @if external {
            h2 { "Accounts and whitelist" }
            p #managed-outside { "Managed where the cluster runs (its roles and its pg_hba.conf). Lifeboat logs in as " span.mono { (rec.privileged_account) } "." }
        } @else {
            h2 { "Accounts" }
            (accounts_table(&view))
            h2 { "Whitelist" }
            (whitelist_table(ctx.clone(), &view, false))
        }
    };
    Ok(shell(&ctx, &view, Tab::Basic, body))
}

/// The state and build progress of an instance restored from backups, for the
/// polling of its basic information page.
pub async fn progress_json(
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> Result<Response, layout::Failure> {
    let (rec, mut view) = load(&state, &id).await?;
    view.progress = Some(rec.progress.clone().unwrap_or_default());
    let (version, done, fields) = super::recovery::restore_fields(&view);
    Ok(Json(json!({ "version": version, "done": done, "fields": fields })).into_response())
}

/// The accounts or whitelist tab of an adopted instance: managed where it runs.
fn managed_outside(account: &str, what: &str) -> Markup {
    html! {
        h2 { "Managed where the cluster runs" }
        p #managed-outside {
            "This cluster was adopted: " (what) ", not by Lifeboat. "
            "Lifeboat logs in as " span.mono { (account) } " for backups; a migration task into it logs in with the account you give it, and its authorize step says what the cluster must allow."
        }
    }
}

fn accounts_table(view: &InstanceView) -> Markup {
    html! {
        table #accounts {
            thead { tr { th { "Account" } th { "Privileged" } th { "Created" } } }
            tbody { @for a in &view.accounts { tr { td.mono { (a.name) } td { @if a.privileged { "yes" } @else { "no" } } td { (time(a.created_at)) } } } }
        }
    }
}

fn whitelist_table(ctx: Ctx, view: &InstanceView, actions: bool) -> Markup {
    html! {
        table #whitelist {
            thead { tr { th { "Address or network" } th { "Added by" } th { "Added" } @if actions { th {} } } }
            tbody {
                @for w in &view.whitelist {
                    tr {
                        td.mono { (w.cidr) } td { (w.added_by) } td { (time(w.created_at)) }
                        @if actions {
                            td { form.inline method="post" action={ "/console/instances/" (view.id) "/whitelist" } {
                                (csrf(&ctx))
                                input type="hidden" name="op" value="remove";
                                input type="hidden" name="cidr" value=(w.cidr);
                                button.danger type="submit" { "Remove" }
                            } }
                        }
                    }
                }
            }
        }
    }
}

pub async fn accounts(
    State(state): State<Shared>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
) -> PageResult {
    accounts_page(&state, &ctx, &id, None, "").await
}

async fn accounts_page(
    state: &Shared,
    ctx: &Ctx,
    id: &str,
    error: Option<Error>,
    account: &str,
) -> PageResult {
    let (rec, view) = load(state, id).await?;
    if view.managed == Managed::External {
        return Ok(shell(
            ctx,
            &view,
            Tab::Accounts,
            managed_outside(
                &rec.privileged_account,
                "its roles are created and changed where it runs (CREATE ROLE, ALTER ROLE)",
            ),
        ));
    }
    let body = html! {
        h2 { "Accounts" }
        (accounts_table(&view))
        h2 { "Create account" }
        form.card method="post" action={ "/console/instances/" (view.id) "/accounts" } {
            (csrf(ctx))
            label for="account" { "Account name" }
            input #account type="text" name="account" value=(account) required;
            label for="password" { "Password (8 to 128 characters)" }
            input #password type="password" name="password" autocomplete="new-password" required;
            @if let Some(e) = &error { (error_box(e)) }
            p { button.primary type="submit" { "Create account" } }
        }
    };
    Ok(with_status_of(
        shell(ctx, &view, Tab::Accounts, body),
        error.as_ref(),
    ))
}

pub async fn create_account(
    State(state): State<Shared>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
    body: Bytes,
) -> PageResult {
    let f = Fields::parse(&body);
    let rec = instance(&state, &id)?;
    let account = f.text("account");
    match instances::add_account(
        state.clone(),
        rec.id.clone(),
        account.clone(),
        f.text("password"),
    )
    .await
    {
        Ok(_) => Ok(Redirect::to(&format!("/console/instances/{id}/accounts")).into_response()),
        Err(e) => accounts_page(&state, &ctx, &id, Some(e), &account).await,
    }
}

pub async fn whitelist(
    State(state): State<Shared>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
) -> PageResult {
    whitelist_page(&state, &ctx, &id, None, "").await
}

async fn whitelist_page(
    state: &Shared,
    ctx: &Ctx,
    id: &str,
    error: Option<Error>,
    cidr: &str,
) -> PageResult {
    let (rec, view) = load(state, id).await?;
    if view.managed == Managed::External {
        return Ok(shell(
            ctx,
            &view,
            Tab::Whitelist,
            managed_outside(
                &rec.privileged_account,
                "who may connect is set in its own pg_hba.conf",
            ),
        ));
    }
    let body = html! {
        h2 { "Whitelist" }
        p.muted { "Only these addresses may connect to the instance (rendered into pg_hba.conf)." }
        (whitelist_table(ctx.clone(), &view, true))
        h2 { "Add an address" }
        form.card method="post" action={ "/console/instances/" (view.id) "/whitelist" } {
            (csrf(ctx))
            input type="hidden" name="op" value="add";
            label for="cidr" { "Address or network (10.0.0.5, 10.0.0.0/24)" }
            input #cidr type="text" name="cidr" value=(cidr) required;
            @if let Some(e) = &error { (error_box(e)) }
            p { button.primary type="submit" { "Add to whitelist" } }
        }
    };
    Ok(with_status_of(
        shell(ctx, &view, Tab::Whitelist, body),
        error.as_ref(),
    ))
}

pub async fn change_whitelist(
    State(state): State<Shared>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
    body: Bytes,
) -> PageResult {
    let f = Fields::parse(&body);
    let rec = instance(&state, &id)?;
    let cidr = f.text("cidr");
    let add = f.get("op") != Some("remove");
    let result = match WhitelistEntry::parse(&cidr) {
        Ok(entry) => instances::change_whitelist(state.clone(), rec.id, entry, add, "user").await,
        Err(e) => Err(e.into()),
    };
    match result {
        Ok(()) => Ok(Redirect::to(&format!("/console/instances/{id}/whitelist")).into_response()),
        Err(e) => whitelist_page(&state, &ctx, &id, Some(e), &cidr).await,
    }
}
