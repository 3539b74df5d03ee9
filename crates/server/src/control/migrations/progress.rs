//! Folding the migration's progress events into the task's tables: states, rows and
//! bytes, percent and time left.

use chrono::{DateTime, Utc};
use lifeboat_api::migrations::TableProgress;
use lifeboat_domain::{StateMachine, TableState};
use lifeboat_migrate::migration::{ProgressEvent, TableKey};

use super::task::TaskRecord;

/// Folds one progress event into the task; true when it must be saved at once (a table
/// changed state), false for the frequent row counts.
pub fn apply_event(doc: &mut TaskRecord, event: &ProgressEvent, now: DateTime<Utc>) -> bool {
    let table = |doc: &mut TaskRecord, key: &TableKey| -> Option<usize> {
        doc.tables.iter().position(|t| t.key == key.0)
    };
    match event {
        ProgressEvent::Planned { tables } => {
            doc.tables = tables
                .iter()
                .map(|p| TableProgress {
                    key: TableKey::of(&p.mapping.source).0,
                    source: p.mapping.source.to_string(),
                    target: p.mapping.target.to_string(),
                    state: if p.already_finished {
                        TableState::Skipped
                    } else {
                        TableState::Pending
                    },
                    estimated_rows: p.estimated_rows,
                    estimated_bytes: p.estimated_bytes,
                    percent: if p.already_finished { 100.0 } else { 0.0 },
                    ..Default::default()
                })
                .collect();
            true
        }
        ProgressEvent::TableStarted { key, .. } => {
            if let Some(i) = table(doc, key) {
                move_to(&mut doc.tables[i], TableState::Copying);
                doc.tables[i].started = Some(now);
            }
            true
        }
        ProgressEvent::TableCopying {
            key,
            rows,
            bytes,
            estimated_rows,
            estimated_bytes,
        } => {
            if let Some(i) = table(doc, key) {
                let t = &mut doc.tables[i];
                t.rows = *rows;
                t.bytes = *bytes;
                t.estimated_rows = (*estimated_rows).max(*rows);
                t.estimated_bytes = (*estimated_bytes).max(*bytes);
                t.percent = if t.estimated_bytes > 0 {
                    (t.bytes as f64 * 100.0 / t.estimated_bytes as f64).min(99.0)
                } else {
                    0.0
                };
                if let Some(started) = t.started {
                    let elapsed = (now - started).num_milliseconds().max(1) as f64 / 1000.0;
                    let speed = t.bytes as f64 / elapsed;
                    if speed > 0.0 {
                        t.eta_seconds =
                            Some((t.estimated_bytes.saturating_sub(t.bytes) as f64 / speed) as u64);
                    }
                }
            }
            false
        }
        ProgressEvent::TableBuilding { key } => {
            if let Some(i) = table(doc, key) {
                move_to(&mut doc.tables[i], TableState::Building);
            }
            true
        }
        ProgressEvent::TableFinished { outcome } => {
            if let Some(i) = table(doc, &outcome.key) {
                let t = &mut doc.tables[i];
                move_to(t, TableState::Done);
                t.rows = outcome.rows_copied;
                t.bytes = outcome.bytes_copied;
                t.percent = 100.0;
                t.eta_seconds = Some(0);
            }
            if !doc.finished_tables.contains(&outcome.key.0) {
                doc.finished_tables.push(outcome.key.0.clone());
            }
            true
        }
        _ => false,
    }
}

/// Moves a table to `next` when its state allows it; an event that comes late (a
/// table already done) changes nothing.
fn move_to(t: &mut TableProgress, next: TableState) {
    if let Ok(s) = t.state.transition(next) {
        t.state = s;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::migrations::task::sample;
    use lifeboat_domain::TaskState;

    fn doc_with_table() -> TaskRecord {
        let mut doc = sample(TaskState::Migrating);
        doc.tables = vec![TableProgress {
            key: "shop.public.orders".into(),
            estimated_bytes: 1000,
            ..Default::default()
        }];
        doc
    }

    fn key() -> TableKey {
        TableKey("shop.public.orders".into())
    }

    #[test]
    fn copying_computes_percent_and_time_left() {
        let mut doc = doc_with_table();
        let t0 = Utc::now();
        assert!(apply_event(
            &mut doc,
            &ProgressEvent::TableStarted {
                key: key(),
                action: lifeboat_migrate::migration::TableAction::Create,
            },
            t0
        ));
        assert_eq!(doc.tables[0].state, TableState::Copying);
        let copying = ProgressEvent::TableCopying {
            key: key(),
            rows: 50,
            bytes: 250,
            estimated_rows: 10,
            estimated_bytes: 1000,
        };
        assert!(!apply_event(
            &mut doc,
            &copying,
            t0 + chrono::Duration::seconds(1)
        ));
        let t = &doc.tables[0];
        assert_eq!((t.rows, t.bytes, t.estimated_rows), (50, 250, 50));
        assert_eq!(t.percent, 25.0);
        // 250 bytes a second, 750 left.
        assert_eq!(t.eta_seconds, Some(3));
        // Never 100% before the table is done.
        let past = ProgressEvent::TableCopying {
            key: key(),
            rows: 99,
            bytes: 5000,
            estimated_rows: 10,
            estimated_bytes: 1000,
        };
        apply_event(&mut doc, &past, t0 + chrono::Duration::seconds(2));
        assert_eq!(doc.tables[0].percent, 99.0);
    }

    #[test]
    fn events_for_unknown_tables_or_out_of_order_change_nothing() {
        let mut doc = doc_with_table();
        doc.tables[0].state = TableState::Done;
        apply_event(
            &mut doc,
            &ProgressEvent::TableBuilding { key: key() },
            Utc::now(),
        );
        assert_eq!(doc.tables[0].state, TableState::Done);
        apply_event(
            &mut doc,
            &ProgressEvent::TableBuilding {
                key: TableKey("shop.public.other".into()),
            },
            Utc::now(),
        );
        assert_eq!(doc.tables.len(), 1);
    }
}
