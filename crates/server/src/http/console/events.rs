//! The events on the temporary instance tab: the transactions that destroyed data,
//! filterable by table and kind, each with "Restore to just before this", which
//! fills in the temporary-instance form (`?before=EVENT`).

use lifeboat_api::events::{EventKind, EventView, EventsQuery};
use lifeboat_store::InstanceRecord;
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::{error_box, time};
use crate::control::{Error, Shared, events};

/// What the tab's address may carry: the event the form restores to just before,
/// and the filters of the events list. Kept as text: a bad value is said on the page.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TabQuery {
    pub before: Option<String>,
    pub table: Option<String>,
    pub kind: Option<String>,
}

impl TabQuery {
    fn filled(v: &Option<String>) -> Option<String> {
        v.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    }

    pub fn before(&self) -> Option<String> {
        Self::filled(&self.before)
    }
}

const KINDS: [EventKind; 6] = [
    EventKind::Delete,
    EventKind::Update,
    EventKind::Truncate,
    EventKind::DropTable,
    EventKind::DropDatabase,
    EventKind::AlterTable,
];

fn kind_label(k: EventKind) -> &'static str {
    match k {
        EventKind::Delete => "DELETE",
        EventKind::Update => "UPDATE",
        EventKind::Truncate => "TRUNCATE",
        EventKind::DropTable => "DROP TABLE",
        EventKind::DropDatabase => "DROP DATABASE",
        EventKind::AlterTable => "ALTER TABLE",
    }
}

/// `schema.table` for each table, or its OID when its name was never seen.
pub fn tables_text(e: &EventView) -> String {
    if e.kind == EventKind::DropDatabase {
        return format!("database {}", e.database);
    }
    e.tables
        .iter()
        .map(|t| match (&t.schema, &t.name) {
            (Some(s), Some(n)) => format!("{s}.{n}"),
            _ => format!("table with OID {}", t.oid.unwrap_or_default()),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// One line saying what an event did.
pub fn summary(e: &EventView) -> String {
    let rows = if e.rows > 0 {
        format!(" ({} rows)", e.rows)
    } else {
        String::new()
    };
    format!(
        "{} on {}{rows}, committed {} by transaction {}",
        kind_label(e.kind),
        tables_text(e),
        time(e.commit_time),
        e.xid
    )
}

/// The master's events as filtered, or why they cannot be listed.
pub async fn load(
    state: &Shared,
    master: &InstanceRecord,
    q: &TabQuery,
) -> Result<Vec<EventView>, Error> {
    let kind = match TabQuery::filled(&q.kind) {
        None => None,
        Some(k) => Some(KINDS.into_iter().find(|x| x.as_str() == k).ok_or_else(|| {
            Error::invalid(
                format!("'{k}' is not a kind of event"),
                "choose one from the list",
            )
        })?),
    };
    let query = EventsQuery {
        table: TabQuery::filled(&q.table),
        kind,
        ..EventsQuery::default()
    };
    Ok(events::list(state, master, &query).await?.events)
}

/// The events section: the filters, then the list or why it is empty.
pub fn section(
    master: &InstanceRecord,
    q: &TabQuery,
    found: &Result<Vec<EventView>, Error>,
) -> Markup {
    let id = master.id.as_str();
    let table = TabQuery::filled(&q.table).unwrap_or_default();
    let kind = TabQuery::filled(&q.kind).unwrap_or_default();
    html! {
        h2 #events-title { "Events" }
        p.muted { "Committed transactions that destroyed data, found in the archived WAL: DELETEs and UPDATEs of 1,000 rows or more, TRUNCATE, DROP TABLE, DROP DATABASE, ALTER TABLE that dropped a column or changed its type. Tables are named as they were then." }
        form.filters #event-filter method="get" action={ "/console/instances/" (id) "/temporary" } {
            label for="event-table" { "Table" } " "
            input #event-table name="table" placeholder="schema.table" value=(table);
            " " label for="event-kind" { "Kind" } " "
            select #event-kind name="kind" {
                option value="" selected[kind.is_empty()] { "any" }
                @for k in KINDS { option value=(k.as_str()) selected[kind == k.as_str()] { (kind_label(k)) } }
            }
            " " button type="submit" { "Filter" }
            @if !table.is_empty() || !kind.is_empty() {
                " " a #event-filter-clear href={ "/console/instances/" (id) "/temporary" } { "Clear" }
            }
        }
        @match found {
            Err(e) => { div #events-error { (error_box(e)) } }
            Ok(list) if list.is_empty() => { p.muted #events-empty { "No event in the restorable window" @if !table.is_empty() || !kind.is_empty() { " matches these filters" } "." } }
            Ok(list) => {
                table #events {
                    thead { tr { th { "Committed" } th { "Kind" } th { "Database" } th { "Tables" } th { "Rows" } th { "Transaction" } th {} } }
                    tbody { @for e in list { tr data-event=(e.id) {
                        td title=(e.commit_time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)) { (time(e.commit_time)) }
                        td { (kind_label(e.kind)) }
                        td { (e.database) }
                        td.mono { (tables_text(e)) }
                        td { @if e.rows > 0 { (e.rows) } }
                        td.mono { (e.xid) }
                        td { a.button.restore-before href={ "/console/instances/" (id) "/temporary?before=" (e.id) "#create-temporary" } { "Restore to just before this" } }
                    } } }
                }
            }
        }
    }
}
