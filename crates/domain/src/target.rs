//! Recovery targets: the point a temporary instance is restored to.
//!
//! A time is RFC 3339 (`2026-11-24T08:21:52+09:00`), or `YYYY-MM-DD HH:MM:SS[.ffffff]`
//! read in a named zone. It is always turned into a time with an explicit UTC offset:
//! PostgreSQL reads `recovery_target_time` in the server's zone otherwise, and tools that
//! let it do so recovered to the wrong second.

use chrono::{DateTime, FixedOffset, LocalResult, NaiveDateTime, TimeZone};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::InvalidInput;

/// Where recovery stops.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "value")]
pub enum RestoreTarget {
    /// A time with its UTC offset.
    Time(DateTime<FixedOffset>),
    /// A WAL position, `X/Y`.
    Lsn(String),
    /// A restore point created with `pg_create_restore_point`.
    RestorePoint(String),
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
            let tz: Tz = name.parse().map_err(|_| {
                InvalidInput::new(
                    format!("unknown time zone '{}'", name.escape_debug()),
                    "use an IANA name such as UTC, Europe/Paris or Asia/Shanghai",
                )
            })?;
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
