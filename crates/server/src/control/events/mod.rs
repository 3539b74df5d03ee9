//! Events: the committed transactions that destroyed data (DROP, TRUNCATE, large
//! DELETEs and UPDATEs), found in a master's archived WAL from the repository alone
//! (they are listed while the master is down, on any repository), named with the
//! names the tables had then ([`names`]), each with the command that restores to
//! just before it.
//!
//! The WAL is read with the master's own `pg_waldump` ([`lifeboat_backup::walscan`]);
//! what each segment says is kept under `<data dir>/cache/wal-facts/`, so listing the
//! same range again reads no WAL.

pub mod names;

use chrono::{DateTime, FixedOffset, Utc};
use lifeboat_api::events::{EventKind, EventList, EventTable, EventView, EventsQuery, ScanView};
use lifeboat_backup::events::{self, Event, Fold, ScanReport};
use lifeboat_backup::walscan::FactCache;
use lifeboat_backup::{Lsn, RestorableWindow};
use lifeboat_domain::target::parse_time;
use lifeboat_domain::{InstanceStatus, TransactionCommit};
use lifeboat_store::{InstanceRecord, RelationKey};

use std::time::Duration;

use super::backups::inventory::restorable_windows;
use super::backups::present::{can_reach_present, reach_present};
use super::backups::repository_of;
use super::{Error, Result, Shared};

/// How long a listing waits for the master's newest WAL to be archived.
const LISTING_WAIT: Duration = Duration::from_secs(15);

/// Segments fetched and read at once.
const PARALLEL: usize = 2;

/// Where the facts of scanned segments are kept.
fn cache(state: &Shared) -> FactCache {
    FactCache::new(state.data_dir.join("cache").join("wal-facts"))
}

/// What the WAL of a master's restorable window holds, folded by `fold`.
async fn scan_window(
    state: &Shared,
    master: &InstanceRecord,
    window: &RestorableWindow,
    fold: &mut Fold,
    only: Option<Lsn>,
) -> Result<ScanReport> {
    let repo = repository_of(state, master)?;
    let manifests = lifeboat_backup::list_backups(&repo, master.id.as_str()).await?;
    let Some(base) = window
        .backups
        .first()
        .and_then(|id| manifests.iter().find(|m| &m.id == id))
    else {
        return Ok(ScanReport::default());
    };
    let size = base.wal_segment_size;
    let last = window
        .last_segment
        .as_deref()
        .and_then(|s| lifeboat_backup::wal::parse_segment(s, size))
        .map_or(0, |(_, seg)| seg);
    let range = match only {
        // Just the segment holding this record.
        Some(lsn) => {
            let seg = lifeboat_backup::wal::segment_of(lsn.0, size);
            (seg, seg)
        }
        None => (
            lifeboat_backup::wal::segment_of(base.start_lsn.0, size),
            last,
        ),
    };
    let waldump = state.pg_of(master)?.bins.path("pg_waldump");
    Ok(events::scan(
        &repo,
        master.id.as_str(),
        &waldump,
        &cache(state),
        window.timeline,
        range,
        size,
        PARALLEL,
        fold,
    )
    .await?)
}

/// The events of a master, newest first, filtered as asked.
pub async fn list(state: &Shared, master: &InstanceRecord, q: &EventsQuery) -> Result<EventList> {
    // An empty filter, as a form or a query string sends it, is no filter.
    let given = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let q = &EventsQuery {
        since: given(&q.since),
        until: given(&q.until),
        tz: given(&q.tz),
        database: given(&q.database),
        table: given(&q.table),
        ..q.clone()
    };
    let local = *chrono::Local::now().offset();
    let time = |t: &Option<String>| -> Result<Option<DateTime<Utc>>> {
        t.as_deref()
            .map(|t| Ok(parse_time(t, q.tz.as_deref(), local)?.with_timezone(&Utc)))
            .transpose()
    };
    let (since, until) = (time(&q.since)?, time(&q.until)?);
    let min_rows = q.min_rows.unwrap_or(events::DEFAULT_MIN_ROWS);
    if min_rows == 0 || min_rows > i64::MAX as u64 {
        return Err(Error::invalid(
            format!("min_rows {min_rows} is out of range"),
            "give a number of rows from 1 (every DELETE and UPDATE) up; the default is 1000",
        ));
    }
    // Name what was created since the last look, before the names asked for are
    // looked up.
    if master.status == InstanceStatus::Running
        && let Err(e) = names::snapshot(state, master).await
    {
        tracing::debug!(instance = %master.id, error = %e.message, "cannot look at the catalogs");
    }
    let db_filter = match &q.database {
        Some(name) => Some(state.store.database_oid(&master.id, name)?.ok_or_else(|| {
            Error::not_found(
                format!("database '{name}' was never seen on {}", master.id),
                format!(
                    "list the events of every database: lifeboat backup events {}",
                    master.id
                ),
            )
        })?),
        None => None,
    };
    let table_filter = match &q.table {
        Some(t) => {
            let parts = lifeboat_postgres::ident::parse_path(t).map_err(|why| {
                Error::invalid(
                    format!("'{t}' is not a table name: {why}"),
                    "write it as SCHEMA.TABLE",
                )
            })?;
            let (schema, name) = match parts.as_slice() {
                [name] => ("public".to_string(), name.clone()),
                [schema, name] => (schema.clone(), name.clone()),
                _ => {
                    return Err(Error::invalid(
                        format!("'{t}' is not a table name"),
                        "write it as SCHEMA.TABLE",
                    ));
                }
            };
            if !state
                .store
                .relation_seen(&master.id, db_filter, &schema, &name)?
            {
                return Err(Error::not_found(
                    format!("table {schema}.{name} was never seen on {}", master.id),
                    "give the table's name as it was when the mistake was made",
                ));
            }
            Some((schema, name))
        }
        None => None,
    };
    let mut windows = restorable_windows(state, master).await?;
    let Some(last) = windows.last() else {
        return Ok(EventList {
            instance_id: master.id.to_string(),
            events: Vec::new(),
            scanned: ScanView::default(),
            note: format!(
                "no complete base backup of {} with its WAL is in the repository yet",
                master.id
            ),
        });
    };
    // Up to the present: the running master's newest WAL is stored first.
    let mut switched_at = None;
    let mut late = None;
    if last.gap.is_none() && can_reach_present(master) && until.is_none_or(|u| u > last.latest) {
        match reach_present(state, master, LISTING_WAIT).await {
            Ok(Some(reached)) => {
                switched_at = Some(reached.at);
                windows.pop();
                windows.push(reached.window);
            }
            Ok(None) => {}
            Err(e) => late = Some(e.message),
        }
    }
    // Each window is read on its own: no transaction spans a gap.
    let mut found = Vec::new();
    let mut report = ScanReport::default();
    let mut gaps = Vec::new();
    for window in &windows {
        let mut fold = Fold::new(min_rows);
        let scanned = scan_window(state, master, window, &mut fold, None).await?;
        found.extend(fold.events());
        report.first_segment = report.first_segment.or(scanned.first_segment);
        report.last_segment = scanned.last_segment.or(report.last_segment);
        report.segments += scanned.segments;
        report.cached += scanned.cached;
        // The window ends before a missing segment; so does its scan.
        if let Some(seg) = scanned.gap.or_else(|| window.gap.clone())
            && !gaps.contains(&seg)
        {
            gaps.push(seg);
        }
    }
    report.gap = gaps.first().cloned();
    let mut out = Vec::new();
    for event in found.into_iter().rev() {
        if since.is_some_and(|s| event.commit_time < s)
            || until.is_some_and(|u| event.commit_time > u)
        {
            continue;
        }
        if db_filter.is_some_and(|db| event.db != db) {
            continue;
        }
        let Some(view) = view(state, master, &event)? else {
            continue;
        };
        if q.kind.is_some_and(|k| k != view.kind) {
            continue;
        }
        if let Some((schema, name)) = &table_filter
            && !view
                .tables
                .iter()
                .any(|t| t.schema.as_deref() == Some(schema) && t.name.as_deref() == Some(name))
        {
            continue;
        }
        out.push(view);
    }
    let note = match &report.gap {
        Some(_) if windows.len() > 1 => format!(
            "WAL is missing from the repository ({}): transactions between a missing segment and the next base backup are not known; events are listed from the {} restorable windows around {} ({} segments read, up to {})",
            gaps.join(", "),
            windows.len(),
            if gaps.len() > 1 { "them" } else { "it" },
            report.segments,
            report.last_segment.as_deref().unwrap_or("none")
        ),
        Some(seg) => format!(
            "the WAL segment {seg} is missing from the repository: events after it are not known, nor transactions that committed after it ({} segments read, up to {})",
            report.segments,
            report.last_segment.as_deref().unwrap_or("none")
        ),
        None => format!(
            "from the start of the oldest base backup to the end of the archived WAL{} ({} segments read, {} of them from earlier listings){}",
            match switched_at {
                Some(t) => format!(
                    ", which the master's WAL switch at {} brought to the present",
                    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                ),
                None => String::new(),
            },
            report.segments,
            report.cached,
            late.map(|why| format!("; newer events are not listed yet: {why}"))
                .unwrap_or_default()
        ),
    };
    Ok(EventList {
        instance_id: master.id.to_string(),
        events: out,
        scanned: ScanView {
            first_segment: report.first_segment,
            last_segment: report.last_segment,
            segments: report.segments,
            cached: report.cached,
            gap: report.gap,
            gaps,
            switched_at,
        },
        note,
    })
}

/// An event as the API shows it, named; `None` for a drop that dropped no table
/// (an index, a sequence).
fn view(state: &Shared, master: &InstanceRecord, e: &Event) -> Result<Option<EventView>> {
    let mut tables = Vec::new();
    for r in &e.relations {
        let key = match (r.oid, r.relfilenode) {
            (Some(oid), _) => RelationKey::Oid(oid),
            (None, Some(file)) => RelationKey::File(file),
            (None, None) => continue,
        };
        let known = state
            .store
            .relation_name(&master.id, e.db, key, e.commit_time)?;
        if let Some(k) = &known
            && !matches!(k.relkind.as_str(), "r" | "p" | "m")
        {
            // An index, a TOAST table or a sequence dropped with its table.
            continue;
        }
        tables.push(EventTable {
            schema: known.as_ref().map(|k| k.schema.clone()),
            name: known.as_ref().map(|k| k.name.clone()),
            oid: r.oid.or(known.as_ref().map(|k| k.oid)),
            rows_deleted: r.rows_deleted,
            rows_updated: r.rows_updated,
        });
    }
    let kind = match e.kind {
        events::EventKind::DropDatabase => EventKind::DropDatabase,
        events::EventKind::DropTable => EventKind::DropTable,
        events::EventKind::Truncate => EventKind::Truncate,
        events::EventKind::Delete => EventKind::Delete,
        events::EventKind::Update => EventKind::Update,
        events::EventKind::AlterTable => EventKind::AlterTable,
    };
    tables.sort_by(|a, b| (&a.schema, &a.name, a.oid).cmp(&(&b.schema, &b.name, b.oid)));
    if kind != EventKind::DropDatabase && tables.is_empty() {
        return Ok(None);
    }
    let database = state
        .store
        .database_name(&master.id, e.db)?
        .unwrap_or_else(|| format!("database with OID {}", e.db));
    let id = e.id();
    Ok(Some(EventView {
        restore_command: format!("lifeboat temp create {} --before {id}", master.id),
        id,
        kind,
        database,
        tables,
        rows: e.rows(),
        xid: e.xid,
        commit_time: e.commit_time,
        commit_lsn: e.commit_lsn.to_string(),
    }))
}

fn utc(t: DateTime<Utc>) -> DateTime<FixedOffset> {
    t.fixed_offset()
}

/// The commit an event id names, checked against the WAL of the window.
pub async fn event_commit(
    state: &Shared,
    master: &InstanceRecord,
    window: &RestorableWindow,
    id: &str,
) -> Result<TransactionCommit> {
    let (xid, lsn) = events::parse_event_id(id).ok_or_else(|| {
        Error::invalid(
            format!("'{id}' is not an event id"),
            format!(
                "event ids look like ev-745-3000028; list them: lifeboat backup events {}",
                master.id
            ),
        )
    })?;
    let missing = || {
        Error::not_found(
            format!("no event {id} in the restorable window of {}", master.id),
            format!("list the events: lifeboat backup events {}", master.id),
        )
    };
    if !window.contains_lsn(lsn) {
        return Err(missing());
    }
    let mut fold = Fold::new(u64::MAX).looking_for(xid);
    scan_window(state, master, window, &mut fold, Some(lsn)).await?;
    match fold.commit_of_wanted() {
        Some(c) if c.lsn == lsn => Ok(TransactionCommit {
            xid,
            commit_lsn: c.lsn,
            commit_time: utc(c.time),
            event: Some(id.to_string()),
        }),
        _ => Err(missing()),
    }
}

/// The commit of transaction `xid` in the WAL of the window.
pub async fn transaction_commit(
    state: &Shared,
    master: &InstanceRecord,
    window: &RestorableWindow,
    xid: u32,
) -> Result<TransactionCommit> {
    let mut fold = Fold::new(u64::MAX).looking_for(xid);
    scan_window(state, master, window, &mut fold, None).await?;
    let c = fold.commit_of_wanted().ok_or_else(|| {
        Error::not_found(
            format!(
                "transaction {xid} did not commit inside the restorable window of {}",
                master.id
            ),
            format!(
                "find the transaction to undo: lifeboat backup events {}",
                master.id
            ),
        )
    })?;
    Ok(TransactionCommit {
        xid,
        commit_lsn: c.lsn,
        commit_time: utc(c.time),
        event: None,
    })
}
