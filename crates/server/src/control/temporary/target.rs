//! The point a temporary instance is restored to: read from the request, checked
//! against the clock and the restorable window, and the base backup it starts from.

use chrono::{DateTime, FixedOffset, Offset, Utc};
use lifeboat_api::temporary::CreateTemporary;
use lifeboat_backup::{Manifest, RestorableWindow};
use lifeboat_domain::target::{in_zone, parse_time};
use lifeboat_domain::{InstanceId, Lsn, RestoreTarget};

use crate::control::{Error, ErrorCode, Result};

/// A target as asked for: ready, or just before a transaction the WAL must name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requested {
    Target(RestoreTarget),
    /// Just before an event (`ev-...`).
    BeforeEvent(String),
    /// Just before a transaction, by its id.
    BeforeXid(u32),
}

/// Reads the request into one target, checked against the clock (`now`, and the
/// server's UTC offset `local` for times without one).
pub fn parse_target(
    req: &CreateTemporary,
    local: FixedOffset,
    now: DateTime<Utc>,
) -> Result<Requested> {
    let given = [
        req.at.is_some(),
        req.lsn.is_some(),
        req.restore_point.is_some(),
        req.before.is_some(),
        req.before_xid.is_some(),
    ];
    if given.iter().filter(|g| **g).count() != 1 {
        return Err(Error::invalid(
            "give exactly one recovery target",
            "use --at TIME, --lsn LSN, --restore-point NAME, --before EVENT or --before-xid XID",
        ));
    }
    if let Some(event) = &req.before {
        return Ok(Requested::BeforeEvent(event.trim().to_string()));
    }
    if let Some(xid) = req.before_xid {
        return Ok(Requested::BeforeXid(xid));
    }
    parse_ready(req, local, now).map(Requested::Target)
}

/// A target given by time, LSN or restore point.
fn parse_ready(
    req: &CreateTemporary,
    local: FixedOffset,
    now: DateTime<Utc>,
) -> Result<RestoreTarget> {
    if let Some(at) = &req.at {
        // `now`: the present, which a running master's window reaches.
        if at.trim().eq_ignore_ascii_case("now") {
            return Ok(RestoreTarget::Time(in_zone(now, req.tz.as_deref(), local)?));
        }
        let t = parse_time(at, req.tz.as_deref(), local)?;
        if t.with_timezone(&Utc) > now {
            return Err(Error::invalid(
                format!("{} is in the future", t.to_rfc3339()),
                "choose a time in the past, inside the restorable window (lifeboat backup window ID)",
            ));
        }
        return Ok(RestoreTarget::Time(t));
    }
    if let Some(lsn) = &req.lsn {
        let parsed: Lsn = lsn.parse()?;
        return Ok(RestoreTarget::Lsn(parsed));
    }
    let name = req.restore_point.clone().unwrap_or_default();
    if name.is_empty() || name.len() > 63 {
        return Err(Error::invalid(
            "a restore point name has 1 to 63 characters",
            "give the name passed to pg_create_restore_point on the master",
        ));
    }
    // The name goes into the copy's configuration file, where a line break or another
    // control character would break it.
    if name.chars().any(char::is_control) {
        return Err(Error::invalid(
            format!(
                "the restore point name '{}' holds a control character (a line break, a tab...)",
                name.escape_debug()
            ),
            "give the name exactly as passed to pg_create_restore_point on the master",
        ));
    }
    Ok(RestoreTarget::RestorePoint(name))
}

/// Whether `target` may lie beyond the archived WAL, in WAL the master wrote but has
/// not archived yet. A restore point's position is unknown until replay reaches it.
pub fn beyond_window(window: &RestorableWindow, target: &RestoreTarget) -> bool {
    match target {
        RestoreTarget::Time(t) => t.with_timezone(&Utc) > window.latest,
        RestoreTarget::Lsn(l) => *l > window.latest_lsn,
        RestoreTarget::BeforeTransaction(c) => c.commit_lsn > window.latest_lsn,
        RestoreTarget::RestorePoint(_) => true,
    }
}

/// The target PostgreSQL recovers to. A time after the window's last commit, which a
/// master's WAL switch at `reached` put inside the window, is the state after that
/// commit: PostgreSQL stops a time target only at a later commit, which the archived
/// WAL does not hold, so the copy recovers to the commit itself.
pub fn recovery_target(window: &RestorableWindow, target: &RestoreTarget) -> RestoreTarget {
    match target {
        RestoreTarget::Time(t) if t.with_timezone(&Utc) >= window.latest => {
            RestoreTarget::Lsn(window.latest_lsn)
        }
        other => other.clone(),
    }
}

/// Whether `window` holds `target`. `reached` is when the master last switched WAL
/// into the repository: a time before it is inside the window even after the window's
/// last commit. A restore point's position is known only once replay reaches it.
pub fn holds(
    window: &RestorableWindow,
    reached: Option<DateTime<Utc>>,
    target: &RestoreTarget,
) -> bool {
    match target {
        RestoreTarget::Time(t) => {
            let t = t.with_timezone(&Utc);
            window.contains_time(t) || reached.is_some_and(|r| window.earliest <= t && t <= r)
        }
        RestoreTarget::Lsn(l) => window.contains_lsn(*l),
        RestoreTarget::BeforeTransaction(c) => window.contains_lsn(c.commit_lsn),
        RestoreTarget::RestorePoint(_) => true,
    }
}

/// The window among `windows` (oldest first) that holds `target`, or an error that
/// says where the windows are (in the target's own offset). `reached` (see [`holds`])
/// applies to the last window, the one a WAL switch extends.
pub fn check_in_windows(
    master: &InstanceId,
    windows: &[RestorableWindow],
    reached: Option<DateTime<Utc>>,
    target: &RestoreTarget,
) -> Result<RestorableWindow> {
    let last = windows.len().saturating_sub(1);
    // A restore point's position is not known before replay: it is looked for in the
    // newest window (restore points are made before risky work, so most often
    // recently); one made before a gap cannot be told apart here.
    if matches!(target, RestoreTarget::RestorePoint(_))
        && let Some(w) = windows.last()
    {
        return Ok(w.clone());
    }
    if let Some(w) = windows
        .iter()
        .enumerate()
        .find(|(i, w)| holds(w, reached.filter(|_| *i == last), target))
        .map(|(_, w)| w)
    {
        return Ok(w.clone());
    }
    let what = match target {
        RestoreTarget::Time(t) => t.to_rfc3339(),
        RestoreTarget::Lsn(l) => format!("LSN {l}"),
        RestoreTarget::BeforeTransaction(c) => {
            format!("the commit of transaction {} (LSN {})", c.xid, c.commit_lsn)
        }
        RestoreTarget::RestorePoint(p) => format!("restore point '{p}'"),
    };
    let offset = match target {
        RestoreTarget::Time(t) => *t.offset(),
        _ => Utc.fix(),
    };
    let at = |t: DateTime<Utc>| {
        t.with_timezone(&offset)
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, false)
    };
    let spans: Vec<String> = windows
        .iter()
        .map(|w| {
            format!(
                "[{}, {}] (LSN [{}, {}])",
                at(w.earliest),
                at(w.latest),
                w.earliest_lsn,
                w.latest_lsn
            )
        })
        .collect();
    let gaps: Vec<&str> = windows.iter().filter_map(|w| w.gap.as_deref()).collect();
    Err(Error::new(
        ErrorCode::OutsideWindow,
        match spans.as_slice() {
            [one] => format!("{what} is outside the restorable window of {master}: {one}"),
            _ => format!(
                "{what} is outside the restorable windows of {master}: {}",
                spans.join(", ")
            ),
        },
        match (windows.len(), gaps.as_slice()) {
            (_, []) => "choose a point inside the window (lifeboat backup window ID)".into(),
            (1, [seg]) => format!(
                "choose a point inside the window; it ends early because WAL segment {seg} is missing"
            ),
            (_, gaps) => format!(
                "choose a point inside one of the windows; the points between them are lost with the missing WAL segment{} {}",
                if gaps.len() > 1 { "s" } else { "" },
                gaps.join(", ")
            ),
        },
    ))
}

/// The base backup a restore to `target` starts from (see
/// [`lifeboat_backup::backup_for`]), or why there is none.
pub fn backup_for(
    master: &InstanceId,
    backups: Vec<Manifest>,
    target: &RestoreTarget,
) -> Result<Manifest> {
    lifeboat_backup::backup_for(backups, target).ok_or_else(|| {
        Error::new(
            ErrorCode::NoBackup,
            format!("no base backup of {master} ends before the target"),
            format!("choose a later point; see lifeboat backup window {master}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc() -> FixedOffset {
        FixedOffset::east_opt(0).unwrap()
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn req(at: Option<&str>, lsn: Option<&str>, point: Option<&str>) -> CreateTemporary {
        CreateTemporary {
            at: at.map(Into::into),
            lsn: lsn.map(Into::into),
            restore_point: point.map(Into::into),
            ..CreateTemporary::default()
        }
    }

    #[test]
    fn before_an_event_or_a_transaction_is_a_target_too() {
        let now = Utc::now();
        let r = CreateTemporary {
            before: Some(" ev-745-3000028 ".into()),
            ..CreateTemporary::default()
        };
        assert_eq!(
            parse_target(&r, utc(), now).unwrap(),
            Requested::BeforeEvent("ev-745-3000028".into())
        );
        let r = CreateTemporary {
            before_xid: Some(745),
            ..CreateTemporary::default()
        };
        assert_eq!(
            parse_target(&r, utc(), now).unwrap(),
            Requested::BeforeXid(745)
        );
        let both = CreateTemporary {
            before_xid: Some(745),
            at: Some("2026-01-01 00:00:00".into()),
            ..CreateTemporary::default()
        };
        assert!(parse_target(&both, utc(), now).is_err());
    }

    #[test]
    fn exactly_one_target() {
        let now = Utc::now();
        for r in [
            req(None, None, None),
            req(Some("2026-01-01 00:00:00"), Some("0/1"), None),
        ] {
            let e = parse_target(&r, utc(), now).unwrap_err();
            assert_eq!(e.message, "give exactly one recovery target");
        }
    }

    #[test]
    fn targets_are_read_and_checked() {
        let now = at("2026-11-24T10:00:00Z");
        let t = parse_target(&req(Some("2026-11-24 09:59:59"), None, None), utc(), now).unwrap();
        assert_eq!(
            t,
            Requested::Target(RestoreTarget::Time(
                DateTime::parse_from_rfc3339("2026-11-24T09:59:59+00:00").unwrap()
            ))
        );
        let e =
            parse_target(&req(Some("2026-11-24T10:00:01Z"), None, None), utc(), now).unwrap_err();
        assert!(e.message.ends_with("is in the future"), "{}", e.message);
        let t = parse_target(&req(None, Some("0/3000028"), None), utc(), now).unwrap();
        assert_eq!(t, Requested::Target(RestoreTarget::Lsn(Lsn(0x300_0028))));
        let e = parse_target(&req(None, Some("not-an-lsn"), None), utc(), now).unwrap_err();
        assert_eq!(e.message, "'not-an-lsn' is not an LSN");
        let long = "x".repeat(64);
        assert!(parse_target(&req(None, None, Some(&long)), utc(), now).is_err());
        assert!(parse_target(&req(None, None, Some("")), utc(), now).is_err());
        let e = parse_target(&req(None, None, Some("before\ndelete")), utc(), now).unwrap_err();
        assert!(
            e.message.contains("holds a control character"),
            "{}",
            e.message
        );
        let t = parse_target(&req(None, None, Some("before delete")), utc(), now).unwrap();
        assert_eq!(
            t,
            Requested::Target(RestoreTarget::RestorePoint("before delete".into()))
        );
    }

    fn window() -> RestorableWindow {
        RestorableWindow {
            earliest: at("2026-11-24T09:00:00Z"),
            earliest_lsn: Lsn(0x200_0000),
            latest: at("2026-11-24T09:30:00Z"),
            latest_lsn: Lsn(0x500_0000),
            timeline: 1,
            gap: None,
            last_segment: None,
            backups: Vec::new(),
        }
    }

    #[test]
    fn the_window_bounds_times_and_lsns() {
        let id = InstanceId::parse("pg-abc123").unwrap();
        let w = window();
        let inside =
            RestoreTarget::Time(DateTime::parse_from_rfc3339("2026-11-24T10:15:00+01:00").unwrap());
        let one = [w.clone()];
        assert_eq!(check_in_windows(&id, &one, None, &inside).unwrap(), w);
        let after =
            RestoreTarget::Time(DateTime::parse_from_rfc3339("2026-11-24T10:31:00+01:00").unwrap());
        let e = check_in_windows(&id, &one, None, &after).unwrap_err();
        assert_eq!(
            e.message,
            "2026-11-24T10:31:00+01:00 is outside the restorable window of pg-abc123: [2026-11-24T10:00:00.000000+01:00, 2026-11-24T10:30:00.000000+01:00] (LSN [0/2000000, 0/5000000])"
        );
        // A WAL switch after it brings a time after the last commit inside.
        check_in_windows(&id, &one, Some(at("2026-11-24T09:30:30Z")), &after).unwrap_err();
        check_in_windows(&id, &one, Some(at("2026-11-24T09:40:00Z")), &after).unwrap();
        assert!(check_in_windows(&id, &one, None, &RestoreTarget::Lsn(Lsn(0x100_0000))).is_err());
        check_in_windows(&id, &one, None, &RestoreTarget::Lsn(Lsn(0x500_0000))).unwrap();
        check_in_windows(&id, &one, None, &RestoreTarget::RestorePoint("p".into())).unwrap();
    }

    #[test]
    fn after_a_gap_a_target_is_looked_for_in_every_window() {
        let id = InstanceId::parse("pg-abc123").unwrap();
        let first = RestorableWindow {
            gap: Some("000000010000000000000006".into()),
            backups: vec!["b1".into()],
            ..window()
        };
        let second = RestorableWindow {
            earliest: at("2026-11-24T10:00:00Z"),
            earliest_lsn: Lsn(0x900_0000),
            latest: at("2026-11-24T10:30:00Z"),
            latest_lsn: Lsn(0xA00_0000),
            backups: vec!["b2".into()],
            ..window()
        };
        let both = [first.clone(), second.clone()];
        let time = |s: &str| RestoreTarget::Time(DateTime::parse_from_rfc3339(s).unwrap());
        assert_eq!(
            check_in_windows(&id, &both, None, &time("2026-11-24T09:10:00Z")).unwrap(),
            first
        );
        assert_eq!(
            check_in_windows(&id, &both, None, &time("2026-11-24T10:10:00Z")).unwrap(),
            second
        );
        assert_eq!(
            check_in_windows(&id, &both, None, &RestoreTarget::Lsn(Lsn(0x980_0000))).unwrap(),
            second
        );
        // Between the two: lost with the gap.
        let e = check_in_windows(&id, &both, None, &time("2026-11-24T09:45:00Z")).unwrap_err();
        assert_eq!(e.code, ErrorCode::OutsideWindow);
        assert_eq!(
            e.message,
            "2026-11-24T09:45:00+00:00 is outside the restorable windows of pg-abc123: [2026-11-24T09:00:00.000000+00:00, 2026-11-24T09:30:00.000000+00:00] (LSN [0/2000000, 0/5000000]), [2026-11-24T10:00:00.000000+00:00, 2026-11-24T10:30:00.000000+00:00] (LSN [0/9000000, 0/A000000])"
        );
        assert_eq!(
            e.hint,
            "choose a point inside one of the windows; the points between them are lost with the missing WAL segment 000000010000000000000006"
        );
        // A WAL switch extends only the last window.
        let late = time("2026-11-24T10:35:00Z");
        assert!(check_in_windows(&id, &both, Some(at("2026-11-24T10:40:00Z")), &late).is_ok());
        let early = time("2026-11-24T09:35:00Z");
        assert!(check_in_windows(&id, &both, Some(at("2026-11-24T10:40:00Z")), &early).is_err());
        // A restore point is looked for in the newest window.
        assert_eq!(
            check_in_windows(&id, &both, None, &RestoreTarget::RestorePoint("p".into())).unwrap(),
            second
        );
    }
}
