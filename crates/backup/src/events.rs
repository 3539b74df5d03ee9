//! Events: the committed transactions that destroyed data, folded from the facts of
//! archived WAL segments ([`crate::walscan`]) in WAL order.
//!
//! | event | what the WAL shows |
//! | --- | --- |
//! | `drop_database` | a `Database/DROP` record, and `dropped stats: 1/<db>/0` |
//! | `drop_table` | a commit dropping the statistics of user relations (`2/<db>/<oid>`); a `DROP SCHEMA ... CASCADE` names every table |
//! | `truncate` | a lock on the table, a new relation file left empty, the old one dropped by the commit |
//! | `delete`, `update` | at least `min_rows` heap deletes or updates by one transaction on one user table |
//! | `alter_table` | a rewrite that changed a column (`ALTER COLUMN TYPE`): a transient table created, filled and dropped, the old file dropped, a `pg_attribute` row updated; or, without a rewrite, `DROP COLUMN` of a table with statistics: a `pg_attribute` row updated and `pg_statistic` rows deleted under a lock on the table |
//!
//! A rewrite (VACUUM FULL, CLUSTER, ALTER TABLE) works in a transient table the
//! transaction creates and drops again, and fills the new file: neither the transient
//! table's drop is a DROP TABLE nor the new file a TRUNCATE; a VACUUM FULL or CLUSTER,
//! which changes no column, is no event. `DROP COLUMN` of a table that was never
//! analyzed writes the same WAL as `RENAME COLUMN` and is not listed. Aborted
//! transactions are no events. The fold keeps only the transactions still open, so its memory follows
//! the concurrency of the master, not the volume of WAL.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::lsn::Lsn;
use crate::walscan::{
    FIRST_USER_OID, RelFile, STATS_DATABASE, STATS_RELATION, SegmentFacts, XactEnd, XactFacts,
};

/// Rows one transaction must change in one table to be an event, unless asked
/// otherwise.
pub const DEFAULT_MIN_ROWS: u64 = 1000;

/// What an event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    DropDatabase,
    DropTable,
    Truncate,
    Delete,
    Update,
    AlterTable,
}

/// A relation an event touched, as the WAL names it: by OID (drops, locks) or by
/// relation file (row changes); the caller names it from its catalog snapshots.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRelation {
    pub oid: Option<u32>,
    pub relfilenode: Option<u32>,
    pub rows_deleted: u64,
    pub rows_updated: u64,
}

/// A committed transaction that destroyed data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub kind: EventKind,
    pub xid: u32,
    /// The database, by OID.
    pub db: u32,
    pub commit_lsn: Lsn,
    pub commit_time: DateTime<Utc>,
    pub relations: Vec<EventRelation>,
}

impl Event {
    /// The id users type: the transaction and where it committed, so a restore to
    /// just before it needs no search (`ev-<xid>-<commit LSN in hex>`).
    pub fn id(&self) -> String {
        event_id(self.xid, self.commit_lsn)
    }

    /// Rows deleted or updated in all.
    pub fn rows(&self) -> u64 {
        self.relations
            .iter()
            .map(|r| r.rows_deleted + r.rows_updated)
            .sum()
    }
}

/// `ev-<xid>-<commit LSN in hex>`.
pub fn event_id(xid: u32, lsn: Lsn) -> String {
    format!("ev-{xid}-{:X}", lsn.0)
}

/// The transaction and commit LSN an event id names, or `None` when it is not one.
pub fn parse_event_id(id: &str) -> Option<(u32, Lsn)> {
    let rest = id.trim().strip_prefix("ev-")?;
    let (xid, lsn) = rest.split_once('-')?;
    Some((xid.parse().ok()?, Lsn(u64::from_str_radix(lsn, 16).ok()?)))
}

/// A commit of any transaction: what a restore to just before a transaction needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commit {
    pub xid: u32,
    pub lsn: Lsn,
    pub time: DateTime<Utc>,
}

/// Folds segment facts, in WAL order, into events.
#[derive(Debug)]
pub struct Fold {
    min_rows: u64,
    /// What each transaction still open did so far.
    open: HashMap<u32, XactFacts>,
    events: Vec<Event>,
    /// When set, the commit of this transaction, once seen.
    wanted: Option<u32>,
    found: Option<Commit>,
}

impl Fold {
    pub fn new(min_rows: u64) -> Self {
        Self {
            min_rows: min_rows.max(1),
            open: HashMap::new(),
            events: Vec::new(),
            wanted: None,
            found: None,
        }
    }

    /// Also looks for the commit of `xid` (see [`Fold::commit_of_wanted`]).
    pub fn looking_for(mut self, xid: u32) -> Self {
        self.wanted = Some(xid);
        self
    }

    /// Adds the next segment's facts.
    pub fn segment(&mut self, facts: SegmentFacts) {
        for (xid, f) in facts.xacts {
            self.open.entry(xid).or_default().merge(f);
        }
        for end in facts.ends {
            self.end(end);
        }
    }

    fn end(&mut self, end: XactEnd) {
        let mut facts = self.open.remove(&end.xid).unwrap_or_default();
        for sub in &end.subxacts {
            if let Some(f) = self.open.remove(sub) {
                facts.merge(f);
            }
        }
        if !end.committed {
            return;
        }
        let Some(time) = end.time else { return };
        if self.wanted == Some(end.xid) {
            self.found = Some(Commit {
                xid: end.xid,
                lsn: end.lsn,
                time,
            });
        }
        self.events
            .extend(classify(&end, time, &facts, self.min_rows));
    }

    /// The commit of the transaction [`Fold::looking_for`] named, if it was seen.
    pub fn commit_of_wanted(&self) -> Option<Commit> {
        self.found
    }

    /// The events found, in WAL order.
    pub fn events(self) -> Vec<Event> {
        self.events
    }
}

/// The event a commit is, if it destroyed data.
fn classify(end: &XactEnd, time: DateTime<Utc>, facts: &XactFacts, min_rows: u64) -> Vec<Event> {
    let event = |kind, db, relations| Event {
        kind,
        xid: end.xid,
        db,
        commit_lsn: end.lsn,
        commit_time: time,
        relations,
    };
    // DROP DATABASE: one event per database.
    let mut dbs: Vec<u32> = facts.dropped_databases.clone();
    dbs.extend(
        end.dropped_stats
            .iter()
            .filter(|(kind, _, _)| *kind == STATS_DATABASE)
            .map(|(_, db, _)| *db),
    );
    dbs.sort_unstable();
    dbs.dedup();
    if !dbs.is_empty() {
        return dbs
            .into_iter()
            .map(|db| event(EventKind::DropDatabase, db, Vec::new()))
            .collect();
    }
    if let Some(e) = alter_table(end, facts) {
        return vec![event(EventKind::AlterTable, e.0, e.1)];
    }
    // DROP TABLE (and DROP SCHEMA ... CASCADE): the user relations whose statistics
    // the commit drops, per database, but for those the transaction created itself.
    // Indexes and TOAST tables are among them; the caller keeps those its catalog
    // knows to be tables.
    let mut dropped: BTreeMap<u32, Vec<EventRelation>> = BTreeMap::new();
    for (kind, db, oid) in &end.dropped_stats {
        if *kind == STATS_RELATION && *oid >= FIRST_USER_OID && !created_here(facts, *db, *oid) {
            dropped.entry(*db).or_default().push(EventRelation {
                oid: Some(*oid),
                ..EventRelation::default()
            });
        }
    }
    if !dropped.is_empty() {
        return dropped
            .into_iter()
            .map(|(db, rels)| event(EventKind::DropTable, db, rels))
            .collect();
    }
    // TRUNCATE: old files dropped, new ones created and left empty, the table locked.
    // An empty index is not an empty file: its metapage (and a few more pages for some
    // access methods) is written as the new file is created.
    let user = |r: &RelFile| r.relfilenode >= FIRST_USER_OID;
    let written = |r: &RelFile| facts.rows.get(r).map_or(0, |c| c.written);
    let rewrite = end
        .dropped_stats
        .iter()
        .any(|(k, db, oid)| *k == STATS_RELATION && created_here(facts, *db, *oid));
    let created: Vec<&RelFile> = facts.created.iter().filter(|r| user(r)).collect();
    let emptied = !rewrite
        && end.dropped_files.iter().any(user)
        && created.iter().any(|r| written(r) == 0)
        && created.iter().all(|r| written(r) <= EMPTY_INDEX_PAGES);
    if emptied {
        let mut by_db: BTreeMap<u32, Vec<EventRelation>> = BTreeMap::new();
        for (db, oid) in &facts.locked {
            if *oid >= FIRST_USER_OID {
                let rels = by_db.entry(*db).or_default();
                if !rels.iter().any(|r| r.oid == Some(*oid)) {
                    rels.push(EventRelation {
                        oid: Some(*oid),
                        ..EventRelation::default()
                    });
                }
            }
        }
        if !by_db.is_empty() {
            return by_db
                .into_iter()
                .map(|(db, rels)| event(EventKind::Truncate, db, rels))
                .collect();
        }
    }
    // Large DELETEs and UPDATEs.
    let mut by_db: BTreeMap<u32, Vec<EventRelation>> = BTreeMap::new();
    for (rel, c) in &facts.rows {
        if user(rel) && (c.deleted >= min_rows || c.updated >= min_rows) {
            by_db.entry(rel.db).or_default().push(EventRelation {
                oid: None,
                relfilenode: Some(rel.relfilenode),
                rows_deleted: c.deleted,
                rows_updated: c.updated,
            });
        }
    }
    by_db
        .into_iter()
        .map(|(db, rels)| {
            let deleted: u64 = rels.iter().map(|r| r.rows_deleted).sum();
            let updated: u64 = rels.iter().map(|r| r.rows_updated).sum();
            let kind = if deleted >= updated {
                EventKind::Delete
            } else {
                EventKind::Update
            };
            event(kind, db, rels)
        })
        .collect()
}

/// The most pages PostgreSQL writes into a new, empty index (a hash index: its
/// metapage, bitmap page and first buckets).
const EMPTY_INDEX_PAGES: u64 = 8;

/// `pg_attribute` and `pg_statistic`, whose files keep their OIDs unless the
/// catalogs themselves are rewritten.
const PG_ATTRIBUTE: u32 = 1249;
const PG_STATISTIC: u32 = 2619;

/// Whether the transaction created the relation `oid` itself: a new relation's first
/// file is numbered as its OID.
fn created_here(facts: &XactFacts, db: u32, oid: u32) -> bool {
    facts
        .created
        .iter()
        .any(|r| r.db == db && r.relfilenode == oid)
}

/// An ALTER TABLE that dropped a column or changed its type: the database and the
/// tables, with the rows a rewrite wrote again.
fn alter_table(end: &XactEnd, facts: &XactFacts) -> Option<(u32, Vec<EventRelation>)> {
    let catalog = |db: u32, oid: u32| {
        facts
            .rows
            .get(&RelFile {
                db,
                relfilenode: oid,
            })
            .copied()
            .unwrap_or_default()
    };
    let (db, table) = facts
        .locked
        .iter()
        .copied()
        .find(|(db, oid)| *oid >= FIRST_USER_OID && !created_here(facts, *db, *oid))?;
    if catalog(db, PG_ATTRIBUTE).updated == 0 {
        return None;
    }
    let transient = end
        .dropped_stats
        .iter()
        .any(|(k, d, oid)| *k == STATS_RELATION && *d == db && created_here(facts, *d, *oid));
    let rewritten = transient
        && end
            .dropped_files
            .iter()
            .any(|r| r.db == db && r.relfilenode >= FIRST_USER_OID);
    // The rows went into the transient table's own file, swapped into the table.
    let rows: u64 = end
        .dropped_stats
        .iter()
        .filter(|(k, d, oid)| *k == STATS_RELATION && *d == db && created_here(facts, *d, *oid))
        .filter_map(|(_, d, oid)| {
            facts.rows.get(&RelFile {
                db: *d,
                relfilenode: *oid,
            })
        })
        .map(|c| c.written)
        .sum();
    let dropped_column = facts.created.is_empty()
        && end.dropped_files.is_empty()
        && catalog(db, PG_ATTRIBUTE).written == 0
        && catalog(db, PG_STATISTIC).deleted > 0;
    (rewritten || dropped_column).then(|| {
        (
            db,
            vec![EventRelation {
                oid: Some(table),
                rows_updated: if rewritten { rows } else { 0 },
                ..EventRelation::default()
            }],
        )
    })
}

/// How a scan of archived WAL went.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanReport {
    /// The first and last segment read.
    pub first_segment: Option<String>,
    pub last_segment: Option<String>,
    pub segments: u64,
    /// Of those, read from the cache of earlier scans.
    pub cached: u64,
    /// The first segment missing before the end: events after it are not known.
    pub gap: Option<String>,
}

/// Feeds `fold` the facts of segments `first..=last` of `timeline`, in order,
/// fetching and scanning `parallel` segments at a time. Stops at the first segment
/// missing from the repository (reported as the gap when later ones exist).
#[allow(clippy::too_many_arguments)]
pub async fn scan(
    repo: &crate::Repository,
    instance: &str,
    waldump: &std::path::Path,
    cache: &crate::walscan::FactCache,
    timeline: u32,
    (first, last): (u64, u64),
    segment_size: u64,
    parallel: usize,
    fold: &mut Fold,
) -> Result<ScanReport, crate::BackupError> {
    use futures::StreamExt;
    let mut report = ScanReport::default();
    let staging = crate::walscan::Staging::new()?;
    let staging = &staging;
    let name = |seg: u64| crate::wal::segment_name(timeline, seg, segment_size);
    let mut facts = futures::stream::iter(first..=last)
        .map(|seg| async move {
            let (this, next) = (name(seg), name(seg + 1));
            if let Some(f) = cache.get(instance, &this) {
                return (this, true, Ok(Some(f)));
            }
            let end = Lsn((seg + 1) * segment_size);
            let f = crate::walscan::segment_facts(
                repo, instance, waldump, cache, staging, &this, &next, end,
            )
            .await;
            (this, false, f)
        })
        .buffered(parallel.max(1));
    while let Some((name, cached, f)) = facts.next().await {
        // The scans before this one are done: none needs this segment any more.
        staging.release(&name);
        let Some(f) = f? else {
            report.gap = Some(name);
            break;
        };
        report.first_segment.get_or_insert_with(|| name.clone());
        report.last_segment = Some(name);
        report.segments += 1;
        report.cached += u64::from(cached);
        fold.segment(f);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::walscan::RowCounts;

    fn t(s: u32) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp(1_764_600_000 + i64::from(s), 0)
    }

    fn end(xid: u32, lsn: u64) -> XactEnd {
        XactEnd {
            xid,
            lsn: Lsn(lsn),
            committed: true,
            time: t(xid),
            subxacts: Vec::new(),
            dropped_files: Vec::new(),
            dropped_stats: Vec::new(),
        }
    }

    fn rel(relfilenode: u32) -> RelFile {
        RelFile { db: 5, relfilenode }
    }

    fn rows(deleted: u64, updated: u64, written: u64) -> RowCounts {
        RowCounts {
            deleted,
            updated,
            written,
        }
    }

    #[test]
    fn a_large_delete_spanning_segments_is_one_event_and_an_abort_none() {
        let mut first = SegmentFacts::default();
        first
            .xacts
            .entry(700)
            .or_default()
            .rows
            .insert(rel(16404), rows(800, 0, 0));
        first
            .xacts
            .entry(701)
            .or_default()
            .rows
            .insert(rel(16404), rows(5000, 0, 0));
        let mut second = SegmentFacts::default();
        second
            .xacts
            .entry(700)
            .or_default()
            .rows
            .insert(rel(16404), rows(700, 0, 0));
        second.ends.push(end(700, 0x300_0028));
        second.ends.push(XactEnd {
            committed: false,
            ..end(701, 0x300_0100)
        });
        let mut fold = Fold::new(DEFAULT_MIN_ROWS).looking_for(700);
        fold.segment(first);
        fold.segment(second);
        assert_eq!(
            fold.commit_of_wanted().map(|c| c.lsn),
            Some(Lsn(0x300_0028))
        );
        let events = fold.events();
        assert_eq!(events.len(), 1);
        let e = &events[0];
        assert_eq!(
            (e.kind, e.xid, e.db, e.rows()),
            (EventKind::Delete, 700, 5, 1500)
        );
        assert_eq!(e.id(), "ev-700-3000028");
        assert_eq!(parse_event_id(&e.id()), Some((700, Lsn(0x300_0028))));
    }

    #[test]
    fn small_changes_and_catalog_rows_are_no_events() {
        let mut f = SegmentFacts::default();
        let x = f.xacts.entry(702).or_default();
        x.rows.insert(rel(16404), rows(999, 10, 0));
        x.rows.insert(rel(1259), rows(5000, 0, 0));
        f.ends.push(end(702, 0x400_0000));
        let mut fold = Fold::new(DEFAULT_MIN_ROWS);
        fold.segment(f);
        assert!(fold.events().is_empty());
        // With --min-rows 10 the same transaction is an update and delete of orders.
        let mut f = SegmentFacts::default();
        f.xacts
            .entry(703)
            .or_default()
            .rows
            .insert(rel(16404), rows(3, 20, 0));
        f.ends.push(end(703, 0x400_0100));
        let mut fold = Fold::new(10);
        fold.segment(f);
        let events = fold.events();
        assert_eq!(events[0].kind, EventKind::Update);
        assert_eq!(events[0].relations[0].rows_updated, 20);
    }

    #[test]
    fn drops_truncates_and_rewrites_are_told_apart() {
        let mut f = SegmentFacts::default();
        // DROP SCHEMA s CASCADE of three tables, work done in a subtransaction.
        f.xacts.entry(711).or_default().locked.push((5, 16415));
        f.ends.push(XactEnd {
            subxacts: vec![711],
            dropped_stats: vec![(2, 5, 16415), (2, 5, 16418), (2, 5, 16421), (2, 5, 1259)],
            dropped_files: vec![rel(16415), rel(16418), rel(16421)],
            ..end(710, 0x500_0000)
        });
        // TRUNCATE t2: a new, empty file.
        let x = f.xacts.entry(720).or_default();
        x.locked.push((5, 16411));
        x.created.push(rel(16425));
        f.ends.push(XactEnd {
            dropped_files: vec![rel(16411)],
            ..end(720, 0x500_0100)
        });
        // TRUNCATE t5, which has a TOAST table and a primary key: new files for the
        // table, its TOAST table and both indexes, whose metapages are written.
        let x = f.xacts.entry(725).or_default();
        for oid in [16450, 16453, 16454, 16455] {
            x.locked.push((5, oid));
        }
        for (file, pages) in [(16460, 0), (16461, 0), (16462, 1), (16463, 1)] {
            x.created.push(rel(file));
            if pages > 0 {
                x.rows.insert(rel(file), rows(0, 0, pages));
            }
        }
        f.ends.push(XactEnd {
            dropped_files: vec![rel(16450), rel(16453), rel(16454), rel(16455)],
            ..end(725, 0x500_0180)
        });
        // VACUUM FULL t3 (as PostgreSQL 15 writes it): a transient table 16431
        // created and filled; its file swapped into t3; the old file dropped with
        // the transient table's statistics.
        let x = f.xacts.entry(721).or_default();
        x.locked.push((5, 16430));
        x.created.push(rel(16431));
        x.rows.insert(rel(16431), rows(0, 0, 12));
        x.rows.insert(rel(1249), rows(9, 0, 2));
        x.rows.insert(rel(1259), rows(1, 2, 1));
        f.ends.push(XactEnd {
            dropped_files: vec![rel(16430)],
            dropped_stats: vec![(2, 5, 16431)],
            ..end(721, 0x500_0200)
        });
        // ALTER TABLE t4 ALTER COLUMN a TYPE bigint: the same, and the column's
        // pg_attribute row updated; the old TOAST table and index dropped.
        let x = f.xacts.entry(722).or_default();
        x.locked.push((5, 16384));
        x.created.push(rel(16389));
        x.rows.insert(rel(16389), rows(0, 0, 100));
        x.rows.insert(rel(1249), rows(20, 1, 3));
        x.rows.insert(rel(2619), rows(1, 0, 0));
        f.ends.push(XactEnd {
            dropped_files: vec![rel(16384), rel(16387), rel(16388)],
            dropped_stats: vec![(2, 5, 16388), (2, 5, 16387), (2, 5, 16389)],
            ..end(722, 0x500_0280)
        });
        // ALTER TABLE t4 DROP COLUMN b: its row in pg_attribute updated, its
        // statistics deleted.
        let x = f.xacts.entry(723).or_default();
        x.locked.push((5, 16384));
        x.rows.insert(rel(1249), rows(0, 1, 0));
        x.rows.insert(rel(2619), rows(1, 0, 0));
        f.ends.push(end(723, 0x500_02C0));
        // ALTER TABLE t4 RENAME COLUMN c TO d: no statistics deleted.
        let x = f.xacts.entry(724).or_default();
        x.locked.push((5, 16384));
        x.rows.insert(rel(1249), rows(0, 1, 0));
        f.ends.push(end(724, 0x500_02E0));
        // DROP DATABASE other.
        f.xacts
            .entry(730)
            .or_default()
            .dropped_databases
            .push(16424);
        f.ends.push(XactEnd {
            dropped_stats: vec![(1, 16424, 0)],
            ..end(730, 0x500_0300)
        });
        let mut fold = Fold::new(DEFAULT_MIN_ROWS);
        fold.segment(f);
        let events = fold.events();
        let kinds: Vec<(EventKind, u32)> = events.iter().map(|e| (e.kind, e.xid)).collect();
        assert_eq!(
            kinds,
            vec![
                (EventKind::DropTable, 710),
                (EventKind::Truncate, 720),
                (EventKind::Truncate, 725),
                (EventKind::AlterTable, 722),
                (EventKind::AlterTable, 723),
                (EventKind::DropDatabase, 730)
            ]
        );
        let oids: Vec<Option<u32>> = events[0].relations.iter().map(|r| r.oid).collect();
        assert_eq!(oids, vec![Some(16415), Some(16418), Some(16421)]);
        assert_eq!(events[1].relations[0].oid, Some(16411));
        assert_eq!(events[2].relations[0].oid, Some(16450));
        assert_eq!(events[3].relations[0].oid, Some(16384));
        assert_eq!(events[3].rows(), 100, "the rows the rewrite wrote again");
        assert_eq!(events[4].rows(), 0);
        assert_eq!(events[5].db, 16424);
    }

    #[test]
    fn event_ids_that_are_not_are_refused() {
        for bad in ["", "ev-", "ev-12", "ev-x-1", "ev-1-zz", "xx-1-1"] {
            assert_eq!(parse_event_id(bad), None, "{bad}");
        }
    }
}
