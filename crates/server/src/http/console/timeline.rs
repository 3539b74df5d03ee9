//! The restorable window as a picture: an inline SVG timeline with the base backups,
//! the archived WAL, the window's two ends, the events (each a link that restores to
//! just before it) and the point the user chose. The script
//! moves the chosen point as the picker changes (see `assets.rs`).

use chrono::{DateTime, Local, Utc};
use maud::{Markup, html};

use super::layout::time;

const WIDTH: f64 = 920.0;
const X0: f64 = 30.0;
const SPAN: f64 = 860.0;

/// What the picture shows.
pub struct Timeline {
    /// Base backups: when each started and stopped.
    pub backups: Vec<(DateTime<Utc>, DateTime<Utc>)>,
    /// The restorable windows, oldest first: more than one after WAL went missing.
    pub windows: Vec<(DateTime<Utc>, DateTime<Utc>)>,
    pub chosen: Option<DateTime<Utc>>,
    /// Events: when each committed, its id and what it did.
    pub events: Vec<(DateTime<Utc>, String, String)>,
    /// Where an event's marker leads, followed by the event's id.
    pub link: String,
}

impl Timeline {
    pub fn render(&self) -> Markup {
        let mut points: Vec<DateTime<Utc>> =
            self.backups.iter().flat_map(|(a, b)| [*a, *b]).collect();
        points.extend(self.windows.iter().flat_map(|(a, b)| [*a, *b]));
        points.extend(self.events.iter().map(|e| e.0));
        let (Some(first), Some(last)) =
            (points.iter().min().copied(), points.iter().max().copied())
        else {
            return html! { p.muted #timeline-empty { "No base backup yet: nothing can be restored." } };
        };
        let pad = ((last - first).num_milliseconds() / 20).max(1000);
        let t0 = first.timestamp_millis() - pad;
        let t1 = last.timestamp_millis() + pad;
        let x =
            |t: DateTime<Utc>| X0 + (t.timestamp_millis() - t0) as f64 / (t1 - t0) as f64 * SPAN;
        let wal_start = self.backups.iter().map(|b| b.0).min();
        let current = self.windows.last().copied();
        let first_start = self.windows.first().map(|w| w.0);
        let lost: Vec<(DateTime<Utc>, DateTime<Utc>)> =
            self.windows.windows(2).map(|p| (p[0].1, p[1].0)).collect();
        let offset = Local::now().format("%:z").to_string();
        html! {
            svg.timeline xmlns="http://www.w3.org/2000/svg" width=(WIDTH) height="150" viewBox={ "0 0 " (WIDTH) " 150" }
                role="img" aria-label="Restorable window"
                data-t0=(t0) data-t1=(t1) data-x0=(X0) data-w=(SPAN) data-offset=(offset) {
                line x1=(X0) x2=(X0 + SPAN) y1="92" y2="92" stroke="#8896a5" {}
                @if let (Some(ws), Some((_, latest))) = (wal_start, current) {
                    rect #wal-span x=(x(ws)) y="64" width=((x(latest) - x(ws)).max(2.0)) height="10" fill="#9cc3ea" {
                        title { "archived WAL: " (time(ws)) " to " (time(latest)) }
                    }
                    text x=(x(ws)) y="60" font-size="11" fill="#36597d" { "archived WAL" }
                }
                @for (from, to) in &lost {
                    rect.gap-span x=(x(*from)) y="60" width=((x(*to) - x(*from)).max(2.0)) height="30" fill="#f6d5c8" {
                        title { "WAL missing: nothing from " (time(*from)) " to " (time(*to)) " can be restored" }
                    }
                    text x=(x(*from)) y="56" font-size="11" fill="#9a3412" { "WAL missing" }
                }
                @for (i, (earliest, latest)) in self.windows.iter().enumerate() {
                    @let id = (i + 1 == self.windows.len()).then_some("window-span");
                    rect.window-span id=[id] x=(x(*earliest)) y="78" width=((x(*latest) - x(*earliest)).max(2.0)) height="10" fill="#3aa35c" {
                        title { "restorable window: " (time(*earliest)) " to " (time(*latest)) }
                    }
                    line x1=(x(*earliest)) x2=(x(*earliest)) y1="74" y2="104" stroke="#1b7f3b" {}
                    line x1=(x(*latest)) x2=(x(*latest)) y1="74" y2="104" stroke="#1b7f3b" {}
                }
                @if let (Some(earliest), Some((_, latest))) = (first_start, current) {
                    text x=(x(earliest)) y="118" font-size="11" fill="#1b7f3b" { "earliest " (time(earliest)) }
                    text x=(x(latest)) y="134" font-size="11" fill="#1b7f3b" text-anchor="end" { "latest " (time(latest)) }
                }
                @for (i, (start, stop)) in self.backups.iter().enumerate() {
                    rect.backup x=(x(*start)) y="36" width=((x(*stop) - x(*start)).max(4.0)) height="14" fill="#14212e" {
                        title { "base backup " (i + 1) ": " (time(*start)) " to " (time(*stop)) }
                    }
                }
                @if !self.backups.is_empty() {
                    text x=(X0) y="31" font-size="11" fill="#14212e" { "base backups (" (self.backups.len()) ")" }
                }
                @for (at, id, what) in &self.events {
                    a.event-marker href={ (self.link) (id) "#create-temporary" } data-event=(id) {
                        path d={ "M" (x(*at)) " 92 l-6 -12 h12 z" } fill="#d4622a" stroke="#7a2e0e" {}
                        title { (what) " — restore to just before it" }
                    }
                }
                @if let Some(c) = self.chosen {
                    line.chosen x1=(x(c)) x2=(x(c)) y1="20" y2="108" stroke="#b42318" stroke-width="2" {}
                    text.chosen-label x=(x(c)) y="12" font-size="11" fill="#b42318" text-anchor=(anchor(x(c))) { "chosen " (time(c)) }
                }
            }
        }
    }
}

/// Where a label at `x` is anchored so that it stays inside the picture: by its start
/// near the left edge, by its end near the right one.
fn anchor(x: f64) -> &'static str {
    if x < X0 + SPAN * 0.25 {
        "start"
    } else if x > X0 + SPAN * 0.75 {
        "end"
    } else {
        "middle"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn windows_after_a_gap_are_drawn_apart_with_the_lost_stretch_between() {
        let picture = Timeline {
            backups: vec![
                (at("2026-12-01T09:00:00Z"), at("2026-12-01T09:01:00Z")),
                (at("2026-12-01T10:00:00Z"), at("2026-12-01T10:01:00Z")),
            ],
            windows: vec![
                (at("2026-12-01T09:01:00Z"), at("2026-12-01T09:30:00Z")),
                (at("2026-12-01T10:01:00Z"), at("2026-12-01T10:30:00Z")),
            ],
            chosen: None,
            events: Vec::new(),
            link: String::new(),
        }
        .render()
        .into_string();
        assert_eq!(
            picture.matches("class=\"window-span\"").count(),
            2,
            "{picture}"
        );
        assert_eq!(
            picture.matches("id=\"window-span\"").count(),
            1,
            "{picture}"
        );
        assert_eq!(
            picture.matches("class=\"gap-span\"").count(),
            1,
            "{picture}"
        );
        assert!(picture.contains(&format!(
            "WAL missing: nothing from {} to {} can be restored",
            time(at("2026-12-01T09:30:00Z")),
            time(at("2026-12-01T10:01:00Z"))
        )));
        assert!(picture.contains(&format!("earliest {}", time(at("2026-12-01T09:01:00Z")))));
        assert!(picture.contains(&format!("latest {}", time(at("2026-12-01T10:30:00Z")))));
    }
}
