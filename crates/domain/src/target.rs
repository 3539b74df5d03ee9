//! Recovery targets: the point a temporary instance is restored to.
//!
//! A time is RFC 3339 (`2026-11-24T08:21:52+09:00`), or `YYYY-MM-DD HH:MM:SS[.ffffff]`
//! read in a named zone. It is always turned into a time with an explicit UTC offset:
//! PostgreSQL reads `recovery_target_time` in the server's zone otherwise, and tools that
//! let it do so recovered to the wrong second.

use chrono::{DateTime, FixedOffset, LocalResult, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::{InvalidInput, Lsn};

/// Where recovery stops: the one target type of restores, from the user's request to
/// PostgreSQL's `recovery_target_*` settings. Stored and shown as
/// `{"kind": "time", "value": "2026-11-24T08:21:52+01:00"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "value")]
pub enum RestoreTarget {
    /// A time with its UTC offset; recovery stops after the last commit at or before it.
    Time(DateTime<FixedOffset>),
    /// A WAL position, `X/Y`.
    Lsn(Lsn),
    /// A restore point created with `pg_create_restore_point`.
    RestorePoint(String),
    /// Just before a transaction committed: every transaction that committed before it
    /// is there, in the same second too; it and everything after are not.
    BeforeTransaction(TransactionCommit),
}

/// A committed transaction, where and when it committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransactionCommit {
    pub xid: u32,
    /// Where its commit record starts.
    pub commit_lsn: Lsn,
    /// With its UTC offset.
    pub commit_time: DateTime<FixedOffset>,
    /// The event it is, when it was named by one (`ev-...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
}

impl RestoreTarget {
    /// Whether a restore to this target may start from a base backup that ended at
    /// `stop_time` and `stop_lsn`. A restore point's position is unknown until replay
    /// reaches it, so any backup may do (the caller starts from the oldest).
    pub fn reachable_from(&self, stop_time: DateTime<Utc>, stop_lsn: Lsn) -> bool {
        match self {
            Self::Time(t) => stop_time <= t.with_timezone(&Utc),
            Self::Lsn(l) => stop_lsn <= *l,
            Self::RestorePoint(_) => true,
            // Replay must meet the commit record to stop before it.
            Self::BeforeTransaction(c) => stop_lsn <= c.commit_lsn,
        }
    }
}

/// `t` in the offset `zone` has then (`None`: the server's, `local`).
pub fn in_zone(
    t: DateTime<Utc>,
    zone: Option<&str>,
    local: FixedOffset,
) -> Result<DateTime<FixedOffset>, InvalidInput> {
    match zone {
        None => Ok(t.with_timezone(&local)),
        Some(name) => {
            let tz = zone_named(name)?;
            Ok(t.with_timezone(&tz).fixed_offset())
        }
    }
}

/// The IANA zone `name`, or an error naming it.
fn zone_named(name: &str) -> Result<Tz, InvalidInput> {
    name.parse().map_err(|_| {
        InvalidInput::new(
            format!("unknown time zone '{}'", name.escape_debug()),
            "use an IANA name such as UTC, Europe/Paris or Asia/Shanghai",
        )
    })
}

/// Reads a time as the user wrote it. `zone` is used for times without an offset;
/// `None` means the server's zone (`local`).
pub fn parse_time(
    text: &str,
    zone: Option<&str>,
    local: FixedOffset,
) -> Result<DateTime<FixedOffset>, InvalidInput> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t);
    }
    // PostgreSQL's own output (`SELECT now()`): `2026-11-24 08:30:41.84586+00`.
    for f in ["%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%d %H:%M:%S%#z"] {
        if let Ok(t) = DateTime::parse_from_str(text, f) {
            return Ok(t);
        }
    }
    let naive = ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S%.f"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
        .ok_or_else(|| {
            InvalidInput::new(
                format!("'{}' is not a time", text.escape_debug()),
                "write it as RFC 3339 (2026-11-24T08:21:52+01:00) or as 'YYYY-MM-DD HH:MM:SS[.ffffff]' with --tz ZONE",
            )
        })?;
    match zone {
        None => from_local(local.from_local_datetime(&naive), text, "the server's zone"),
        Some(name) => {
            let tz = zone_named(name)?;
            from_local(
                tz.from_local_datetime(&naive).map(|t| t.fixed_offset()),
                text,
                name,
            )
        }
    }
}

fn from_local(
    result: LocalResult<DateTime<FixedOffset>>,
    text: &str,
    zone: &str,
) -> Result<DateTime<FixedOffset>, InvalidInput> {
    match result {
        LocalResult::Single(t) => Ok(t),
        LocalResult::Ambiguous(a, b) => Err(InvalidInput::new(
            format!("'{text}' happens twice in {zone} (clocks were set back)"),
            format!(
                "give the offset explicitly: {} or {}",
                a.to_rfc3339(),
                b.to_rfc3339()
            ),
        )),
        LocalResult::None => Err(InvalidInput::new(
            format!("'{text}' does not exist in {zone} (clocks were set forward)"),
            "choose a time outside the skipped hour, or give an RFC 3339 time with its offset",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc() -> FixedOffset {
        FixedOffset::east_opt(0).unwrap()
    }

    #[test]
    fn a_target_is_reachable_from_backups_that_end_before_it() {
        let t = DateTime::parse_from_rfc3339("2026-11-24T10:00:00+01:00").unwrap();
        let at_nine_utc = DateTime::parse_from_rfc3339("2026-11-24T09:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let time = RestoreTarget::Time(t);
        assert!(time.reachable_from(at_nine_utc, Lsn(0)));
        assert!(!time.reachable_from(at_nine_utc + chrono::Duration::seconds(1), Lsn(0)));
        let lsn = RestoreTarget::Lsn(Lsn(100));
        assert!(lsn.reachable_from(at_nine_utc, Lsn(100)));
        assert!(!lsn.reachable_from(at_nine_utc, Lsn(101)));
        assert!(RestoreTarget::RestorePoint("x".into()).reachable_from(at_nine_utc, Lsn(1 << 40)));
    }

    #[test]
    fn targets_are_stored_with_their_kind() {
        let t = RestoreTarget::Lsn("0/3000028".parse().unwrap());
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            r#"{"kind":"lsn","value":"0/3000028"}"#
        );
        let back: RestoreTarget =
            serde_json::from_str(r#"{"kind":"lsn","value":"0/3000028"}"#).unwrap();
        assert_eq!(back, t);
    }

    #[test]
    fn rfc3339_keeps_its_offset() {
        let t = parse_time(
            "2026-11-24T08:21:52.123456+09:00",
            Some("Europe/Paris"),
            utc(),
        )
        .unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-24T08:21:52.123456+09:00");
    }

    #[test]
    fn postgres_output_is_accepted() {
        let t = parse_time("2026-11-24 08:30:41.84586+00", None, utc()).unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-24T08:30:41.845860+00:00");
        let t = parse_time("2026-11-24 08:30:41+05:30", None, utc()).unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-24T08:30:41+05:30");
    }

    #[test]
    fn plain_times_are_read_in_the_zone() {
        let t = parse_time("2026-07-01 12:00:00.5", Some("Europe/Paris"), utc()).unwrap();
        assert_eq!(t.to_rfc3339(), "2026-07-01T12:00:00.500+02:00");
        let t = parse_time("2026-01-01 12:00:00", Some("Europe/Paris"), utc()).unwrap();
        assert_eq!(t.offset().local_minus_utc(), 3600);
        let server = FixedOffset::east_opt(-5 * 3600).unwrap();
        let t = parse_time("2026-01-01 12:00:00", None, server).unwrap();
        assert_eq!(t.to_rfc3339(), "2026-01-01T12:00:00-05:00");
    }

    #[test]
    fn garbage_and_impossible_times_are_refused() {
        assert!(parse_time("yesterday", None, utc()).is_err());
        assert!(parse_time("2026-13-01 00:00:00", None, utc()).is_err());
        assert!(parse_time("2026-01-01 12:00:00", Some("Mars/Olympus"), utc()).is_err());
        // 02:30 does not exist in Paris on the spring change; 02:30 happens twice in autumn.
        let e = parse_time("2026-03-29 02:30:00", Some("Europe/Paris"), utc()).unwrap_err();
        assert!(e.message.contains("does not exist"), "{e:?}");
        let e = parse_time("2026-10-25 02:30:00", Some("Europe/Paris"), utc()).unwrap_err();
        assert!(e.message.contains("happens twice"), "{e:?}");
    }
}
