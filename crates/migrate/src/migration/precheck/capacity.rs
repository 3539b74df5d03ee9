//! Capacity checks: free disk on the target for the estimated size, and time left
//! before a temporary source is released.
//!
//! Lifeboat runs on the same machine as the instances it manages, so free space is
//! measured with `statvfs` on the target's data directory. Sizes come from
//! `pg_total_relation_size` on the source (tables with their indexes and TOAST).

use std::path::PathBuf;
use std::time::Duration;

use lifeboat_postgres::disk::free_bytes;

use crate::migration::conn::Session;
use crate::migration::precheck::{PrecheckContext, PrecheckItem};

/// Margin kept free beyond the estimate: WAL written by the copy until the next
/// checkpoint recycles it, and room for the target's own work meanwhile.
const MARGIN_BYTES: u64 = 1 << 30;

/// A deliberately low copy rate for the duration estimate (COPY plus index builds on
/// modest hardware); the point is to warn early, not to predict.
const ESTIMATE_BYTES_PER_SEC: u64 = 30 * 1024 * 1024;

pub(crate) async fn disk_item(ctx: &PrecheckContext, admin: &Session, need: u64) -> PrecheckItem {
    let id = "target_disk_space";
    let dir: Option<PathBuf> = match &ctx.target_data_directory {
        Some(d) => Some(d.clone()),
        None => admin
            .query(
                "reading the data directory",
                "SELECT setting FROM pg_settings WHERE name = 'data_directory'",
                &[],
            )
            .await
            .ok()
            .and_then(|rows| rows.first().map(|r| PathBuf::from(r.get::<_, String>(0)))),
    };
    let Some(dir) = dir else {
        return PrecheckItem::warning(
            id,
            format!(
                "the task needs about {} in the target; its free space could not be measured (the data directory is not known)",
                bytes(need)
            ),
            "check the target's free disk space by hand before starting",
        );
    };
    let free = match free_bytes(&dir) {
        Ok(f) => f,
        Err(e) => {
            return PrecheckItem::warning(
                id,
                format!(
                    "the task needs about {}; cannot measure free space at {}: {e}",
                    bytes(need),
                    dir.display()
                ),
                "check the target's free disk space by hand before starting",
            );
        }
    };
    let detail = format!(
        "the task needs about {} (source tables and indexes, plus staging for merges); {} free at {}",
        bytes(need),
        bytes(free),
        dir.display()
    );
    if free < need {
        PrecheckItem::failed(
            id,
            detail,
            "free disk space on the target (or grow its volume), or migrate fewer tables per task",
        )
    } else if free < need + MARGIN_BYTES {
        PrecheckItem::warning(
            id,
            detail,
            "little room is left for WAL and the target's own writes; free some disk space first",
        )
    } else {
        PrecheckItem::passed(id, detail)
    }
}

pub(crate) fn time_item(left: Duration, copy_bytes: u64) -> PrecheckItem {
    let id = "source_time_left";
    let estimate = Duration::from_secs(60 + copy_bytes / ESTIMATE_BYTES_PER_SEC);
    let detail = format!(
        "the temporary source is released in {}; copying about {} may take up to {}",
        human(left),
        bytes(copy_bytes),
        human(estimate)
    );
    if left.is_zero() {
        PrecheckItem::failed(
            id,
            detail,
            "the source is being released; create a new temporary instance",
        )
    } else if left < estimate * 2 || left < Duration::from_secs(3600) {
        PrecheckItem::warning(
            id,
            detail,
            "start the task now, or create a new temporary instance if it may not finish in time",
        )
    } else {
        PrecheckItem::passed(id, detail)
    }
}

fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_left_warns_when_short() {
        use crate::migration::PrecheckStatus::*;
        assert_eq!(
            time_item(Duration::from_secs(48 * 3600), 1 << 30).status,
            Passed
        );
        assert_eq!(time_item(Duration::from_secs(600), 1 << 30).status, Warning);
        assert_eq!(time_item(Duration::ZERO, 0).status, Failed);
        assert!(free_bytes(std::path::Path::new("/")).unwrap() > 0);
        assert_eq!(bytes(1536), "1.5 KiB");
    }
}
