//! Commit times in archived WAL, read with PostgreSQL's own `pg_waldump`.
//!
//! Recovery to a time stops at the first commit (or abort) record whose timestamp
//! passes the target; if the archive ends before such a record PostgreSQL 13+ refuses
//! to finish ("recovery ended before configured recovery target was reached"). So the
//! latest time that can be recovered is the timestamp of the last commit record in the
//! archive. `pg_waldump --rmgr=Transaction` prints it as `desc: COMMIT <timestamp>`;
//! running it with `TZ=UTC` makes the timestamp UTC. Reading WAL with the server's own
//! tool, rather than decoding records here, keeps us right across WAL format changes.

use std::path::Path;
use std::process::Command;

use chrono::{DateTime, NaiveDateTime, Utc};

use crate::BackupError;
use crate::lsn::Lsn;

/// A commit record found in WAL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitRecord {
    pub time: DateTime<Utc>,
    /// Where the record starts.
    pub lsn: Lsn,
}

/// The commit records of one segment file in `dir`, in WAL order.
pub fn commits_in_segment(
    waldump: &Path,
    dir: &Path,
    segment: &str,
) -> Result<Vec<CommitRecord>, BackupError> {
    let out = Command::new(waldump)
        .env_clear()
        .env("TZ", "UTC")
        .env("LC_ALL", "C")
        .arg("--rmgr=Transaction")
        .arg("--path")
        .arg(dir)
        .arg(segment)
        .output()
        .map_err(BackupError::io(format!("cannot run {}", waldump.display())))?;
    // pg_waldump exits non-zero at the end of the WAL it was given ("invalid record
    // length" or "could not find a valid record"), which is normal for the last segment;
    // only output-less failures are errors.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let commits = parse_commits(&stdout);
    if !out.status.success() && stdout.trim().is_empty() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !benign_end(&stderr) {
            return Err(BackupError::Command {
                program: "pg_waldump".into(),
                message: stderr.trim().to_string(),
            });
        }
    }
    Ok(commits)
}

/// Whether `pg_waldump`'s complaint only says the WAL it was given ends there (the
/// last segment, or one still being filled), which is no error.
pub(crate) fn benign_end(stderr: &str) -> bool {
    stderr.contains("invalid record length")
        || stderr.contains("could not find a valid record")
        || stderr.contains("invalid magic number 0000")
        || stderr.contains("record with incorrect prev-link")
        || stderr.contains("contrecord")
}

/// Parses `pg_waldump` output lines such as
/// `rmgr: Transaction len (rec/tot): 34/34, tx: 735, lsn: 0/0301B0E8, prev 0/0301B0A8, desc: COMMIT 2026-11-24 07:55:01.123456 UTC`.
pub fn parse_commits(output: &str) -> Vec<CommitRecord> {
    output
        .lines()
        .filter_map(|line| {
            let (_, lsn) = line.split_once("lsn: ")?;
            let lsn: Lsn = lsn.split(',').next()?.trim().parse().ok()?;
            let (_, desc) = line.split_once("desc: COMMIT ")?;
            let mut parts = desc.split_whitespace();
            let date = parts.next()?;
            let time = parts.next()?.trim_end_matches(';');
            let zone = parts.next().map(|z| z.trim_end_matches(';'));
            if zone != Some("UTC") {
                return None;
            }
            let naive =
                NaiveDateTime::parse_from_str(&format!("{date} {time}"), "%Y-%m-%d %H:%M:%S%.f")
                    .ok()?;
            Some(CommitRecord {
                time: naive.and_utc(),
                lsn,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_commit_lines_only() {
        let out = "rmgr: Transaction len (rec/tot):     34/    34, tx:        735, lsn: 0/0301B0E8, prev 0/0301B0A8, desc: COMMIT 2026-11-24 07:55:01.123456 UTC\n\
                   rmgr: Transaction len (rec/tot):     34/    34, tx:        736, lsn: 0/0301B200, prev 0/0301B0E8, desc: ABORT 2026-11-24 07:55:02.000001 UTC\n\
                   rmgr: Transaction len (rec/tot):    130/   130, tx:        737, lsn: 1/00000100, prev 0/0301B200, desc: COMMIT 2026-11-24 07:55:03.5 UTC; inval msgs: catcache 7\n";
        let c = parse_commits(out);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].lsn, Lsn(0x301_B0E8));
        assert_eq!(c[0].time.to_rfc3339(), "2026-11-24T07:55:01.123456+00:00");
        assert_eq!(c[1].lsn, Lsn(0x1_0000_0100));
        assert_eq!(c[1].time.to_rfc3339(), "2026-11-24T07:55:03.500+00:00");
    }
}
