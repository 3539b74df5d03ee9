//! The point-in-time field that the forms restoring from backups share (a temporary
//! instance, a clone): one format, `YYYY-MM-DD HH:MM:SS`, in a zone chosen beside it
//! (the server's, UTC, or the browser's, which the page's script adds), and a
//! "Latest restorable time" button. The page's script finds the field by its ids
//! (`at`, `tz`), so a page holds one such field.

use chrono::{DateTime, Local, Utc};
use lifeboat_api::backups::WindowView;
use maud::{Markup, html};

use super::layout::{server_zone, time};
use crate::control::{Error, ErrorCode};

/// The time field's form of a time, in the server's zone (`T` between date and time,
/// shown as a space).
pub fn value_of(t: DateTime<Utc>) -> String {
    t.with_timezone(&Local)
        .format("%Y-%m-%dT%H:%M:%S")
        .to_string()
}

/// The `at` of a request from the field's `YYYY-MM-DD[T ]HH:MM[:SS]`.
pub fn target_at(value: &str) -> Option<String> {
    let v = value.trim().replace('T', " ");
    match v.len() {
        0 => None,
        16 => Some(format!("{v}:00")),
        _ => Some(v),
    }
}

/// The instant a field's value and zone (empty: the server's) name, if they name one.
pub fn instant_of(value: &str, tz: &str) -> Option<DateTime<Utc>> {
    let at = target_at(value)?;
    let zone = Some(tz).filter(|z| !z.is_empty());
    lifeboat_domain::target::parse_time(&at, zone, *Local::now().offset())
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The latest point of a window, in milliseconds, for the "Latest restorable time"
/// button: a running master's window reaches the present, so its latest point is now.
pub fn latest_ms(win: &WindowView) -> Option<i64> {
    if win.reaches_present {
        Some(Utc::now().timestamp_millis())
    } else {
        win.latest.map(|t| t.timestamp_millis())
    }
}

/// The field, its zone selector and the "Latest restorable time" button, showing
/// `value` (the field's form, see [`value_of`]) in the zone `tz`.
pub fn field(label: &str, value: &str, tz: &str, latest_ms: Option<i64>) -> Markup {
    html! {
        label for="at" { (label) }
        input #at type="text" name="at" required value=(value.replace('T', " ")) size="19"
            placeholder="YYYY-MM-DD HH:MM:SS" pattern="[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}"
            title="YYYY-MM-DD HH:MM:SS, in the zone chosen beside"
            data-offset=(Local::now().format("%:z").to_string());
        " "
        // The browser's own zone is added by the page's script.
        select #tz name="tz" aria-label="Time zone" data-chosen=(tz) {
            option value="" data-zone="server" selected[tz.is_empty()] { "Server time: " (server_zone()) }
            option value="UTC" data-zone="utc" selected[tz == "UTC"] { "UTC" }
        }
        @if let Some(latest) = latest_ms {
            " " button #latest type="button" data-set-ms=(latest) { "Latest restorable time" }
        }
        p.muted #zone { "Times are written YYYY-MM-DD HH:MM:SS in the zone chosen beside the field." }
    }
}

/// A time outside the window in the page's own words: the server says where the
/// window is in API terms (RFC 3339 to the microsecond, LSNs, a CLI command); the
/// console says it with the times it shows and the button beside the field. Other
/// errors pass as they are.
pub fn in_page_words(
    e: Error,
    chosen: Option<DateTime<Utc>>,
    value: &str,
    win: &WindowView,
) -> Error {
    if e.code != ErrorCode::OutsideWindow {
        return e;
    }
    let chosen = chosen.map(time).unwrap_or_else(|| value.replace('T', " "));
    let end = if win.reaches_present {
        "now".to_string()
    } else {
        win.latest.map(time).unwrap_or_default()
    };
    let start = win.earliest.map(time).unwrap_or_default();
    // Windows before a WAL gap, then the last one.
    let mut between: Vec<String> = win
        .windows
        .iter()
        .rev()
        .skip(1)
        .rev()
        .map(|w| format!("{} and {}", time(w.earliest), time(w.latest)))
        .collect();
    between.push(format!("{start} and {end}"));
    Error::new(
        e.code,
        format!(
            "{chosen} is outside the restorable window{}",
            if between.len() > 1 { "s" } else { "" }
        ),
        format!(
            "pick a time between {}, or click Latest restorable time",
            between.join(", or between ")
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outside_two_windows_the_console_names_both() {
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let span = |a: &str, b: &str| lifeboat_api::backups::WindowSpan {
            earliest: t(a),
            latest: t(b),
            earliest_lsn: "0/2000000".into(),
            latest_lsn: "0/5000000".into(),
            timeline: 1,
            gap: None,
            backups: Vec::new(),
        };
        let win = WindowView {
            instance_id: "pg-abc123".into(),
            available: true,
            earliest: Some(t("2026-12-01T10:01:00Z")),
            latest: Some(t("2026-12-01T10:30:00Z")),
            earliest_lsn: None,
            latest_lsn: None,
            timeline: Some(1),
            gap: None,
            reaches_present: true,
            note: String::new(),
            windows: vec![
                span("2026-12-01T09:01:00Z", "2026-12-01T09:30:00Z"),
                span("2026-12-01T10:01:00Z", "2026-12-01T10:30:00Z"),
            ],
        };
        let chosen = t("2026-12-01T09:45:00Z");
        let e = in_page_words(
            Error::new(ErrorCode::OutsideWindow, "outside", "inside"),
            Some(chosen),
            "",
            &win,
        );
        assert_eq!(
            e.message,
            format!("{} is outside the restorable windows", time(chosen))
        );
        assert_eq!(
            e.hint,
            format!(
                "pick a time between {} and {}, or between {} and now, or click Latest restorable time",
                time(t("2026-12-01T09:01:00Z")),
                time(t("2026-12-01T09:30:00Z")),
                time(t("2026-12-01T10:01:00Z"))
            )
        );
    }

    #[test]
    fn the_field_takes_minutes_or_seconds_with_a_space_or_a_t() {
        assert_eq!(
            target_at("2026-12-01T18:02").as_deref(),
            Some("2026-12-01 18:02:00")
        );
        assert_eq!(
            target_at(" 2026-12-01 18:02:14 ").as_deref(),
            Some("2026-12-01 18:02:14")
        );
        assert_eq!(target_at("  "), None);
        let t = DateTime::parse_from_rfc3339("2026-12-01T18:02:14Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(instant_of(&value_of(t), ""), Some(t));
        assert_eq!(instant_of("2026-12-01 18:02:14", "UTC"), Some(t));
        assert_eq!(instant_of("yesterday", ""), None);
    }
}
