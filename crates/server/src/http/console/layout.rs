//! The page shell every console page shares, and the small pieces pages repeat: the
//! CSRF field, status badges, times in the server's zone, error messages.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, Local, Utc};
use maud::{DOCTYPE, Markup, html};

use super::session::Ctx;
use crate::control::Error;
use crate::http::error::status_of;

/// The top-level sections, for the header's highlight.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Instances,
    Repository,
    Diff,
    Migrations,
}

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · Lifeboat" }
            link rel="stylesheet" href="/console/assets/console.css";
            script src="/console/assets/console.js" defer {}
        }
    }
}

/// A full page: header with the sections and sign-out, then `body`.
pub fn page(ctx: &Ctx, title: &str, section: Section, body: Markup) -> Response {
    let link = |s: Section, href: &str, label: &str| {
        html! { a href=(href) class=[(s == section).then_some("active")] { (label) } }
    };
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                header.top {
                    a.brand href="/console/instances" { "Lifeboat" }
                    nav {
                        (link(Section::Instances, "/console/instances", "Instances"))
                        (link(Section::Repository, "/console/repository", "Backup repository"))
                        (link(Section::Diff, "/console/diff", "Diff"))
                        (link(Section::Migrations, "/console/migrations", "Data migration"))
                    }
                    form.signout method="post" action="/console/sign-out" {
                        (csrf(ctx))
                        button.link type="submit" { "Sign out" }
                    }
                }
                (body)
            }
        }
    };
    Html(markup.into_string()).into_response()
}

/// A page without the header, for signing in and for messages.
pub fn bare(title: &str, body: Markup) -> Html<String> {
    Html(
        html! {
            (DOCTYPE)
            html lang="en" { (head(title)) body { (body) } }
        }
        .into_string(),
    )
}

/// A page that only says what happened.
pub fn message_page(status: StatusCode, title: &str, text: &str) -> Response {
    let body = html! {
        main.signin {
            h1 { (title) }
            p.error { (text) }
            p { a href="/console/instances" { "Back to the console" } }
        }
    };
    (status, bare(title, body)).into_response()
}

/// An error shown as a page of its own, for a failure no form caused (an unknown id in
/// the address, a store that cannot be read). Never a bare 500 body.
pub struct Failure(pub Error);

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Self(e)
    }
}

impl From<lifeboat_store::StoreError> for Failure {
    fn from(e: lifeboat_store::StoreError) -> Self {
        Self(e.into())
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let status = status_of(self.0.code);
        if status.is_server_error() {
            tracing::error!(code = %self.0.code, message = %self.0.message, "console request failed");
        }
        let text = format!("{} ({})", self.0.message, self.0.hint);
        message_page(status, "Something went wrong", &text)
    }
}

pub type PageResult = Result<Response, Failure>;

/// A page that answers with the status of the error it shows beside a form (none when
/// it shows no error).
pub fn with_status_of(mut page: Response, error: Option<&Error>) -> Response {
    if let Some(e) = error {
        *page.status_mut() = status_of(e.code);
    }
    page
}

/// The hidden field every POST form carries.
pub fn csrf(ctx: &Ctx) -> Markup {
    html! { input type="hidden" name="csrf" value=(ctx.csrf); }
}

/// An API error next to what caused it: the message and what to do.
pub fn error_box(e: &Error) -> Markup {
    html! {
        div.error role="alert" {
            strong { (console_words(&e.message)) }
            @if !e.hint.is_empty() { br; span.hint { "What to do: " (console_words(&e.hint)) } }
        }
    }
}

pub fn notice(text: &str) -> Markup {
    html! { div.notice role="status" { (text) } }
}

pub fn badge(status: &str) -> Markup {
    let class = match status {
        "running" | "completed" | "precheck_passed" | "passed" | "ready" | "done" => "ok",
        "failed" | "precheck_failed" | "released" | "cancelled" => "bad",
        "warning" | "stopped" => "warn",
        _ => "busy",
    };
    html! { span class={ "badge " (class) } data-status=(status) { (status.replace('_', " ")) } }
}

/// A time in the server's zone, to the second, with its offset.
pub fn time(t: DateTime<Utc>) -> String {
    t.with_timezone(&Local)
        .format("%Y-%m-%d %H:%M:%S %:z")
        .to_string()
}

/// A size in the largest binary unit that keeps it at least 1 (`812.4 MiB`, `3.0 GiB`).
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// `47 h 59 min`, `3 min 20 s`.
pub fn duration(seconds: i64) -> String {
    let s = seconds.max(0);
    let (h, m, sec) = (s / 3600, (s % 3600) / 60, s % 60);
    if h > 0 {
        format!("{h} h {m} min")
    } else if m > 0 {
        format!("{m} min {sec} s")
    } else {
        format!("{sec} s")
    }
}

/// The server's time zone, as the pickers show it: an IANA name when the machine
/// says one, and the current UTC offset.
pub fn server_zone() -> String {
    let offset = Local::now().format("%:z").to_string();
    let name = std::env::var("TZ")
        .ok()
        .filter(|z| !z.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/timezone")
                .ok()
                .map(|s| s.trim().to_string())
        })
        .or_else(|| {
            std::fs::read_link("/etc/localtime").ok().and_then(|p| {
                p.to_string_lossy()
                    .split_once("zoneinfo/")
                    .map(|(_, z)| z.to_string())
            })
        })
        .filter(|z| !z.is_empty())
        .unwrap_or_else(|| "server time".into());
    format!("{name} (UTC{offset})")
}

/// Where the console does what a CLI command does, for hints written for the CLI.
const CONSOLE_PLACES: &[(&str, &str)] = &[
    (
        "lifeboat backup window",
        "the restorable window on the Backup and recovery tab",
    ),
    (
        "lifeboat backup events",
        "the events on the Backup and recovery tab",
    ),
    ("lifeboat backup run", "Back up now on the Backups tab"),
    ("lifeboat backup list", "the Backups tab"),
    (
        "lifeboat temp delete",
        "Delete temporary instance on the Backup and recovery tab",
    ),
    (
        "lifeboat temp create",
        "Create temporary instance on the Backup and recovery tab",
    ),
    ("lifeboat repository list", "the Backup repository page"),
    (
        "lifeboat instance clone",
        "Clone on the master's page in Backup repository",
    ),
    ("lifeboat instance start", "Start on the instance's page"),
    ("lifeboat instance show", "the instance's page"),
    ("lifeboat instance list", "the Instances page"),
    (
        "lifeboat migration authorize",
        "Authorize whitelist in the task's wizard",
    ),
    (
        "lifeboat migration precheck",
        "Pre-check again on the task's page",
    ),
    ("lifeboat migration cancel", "Cancel on the task's page"),
    ("lifeboat migration list", "the Migration tasks page"),
    ("lifeboat diff", "Compare tables"),
];

/// CLI flags, in the console's words.
const CONSOLE_OPTIONS: &[(&str, &str)] = &[
    (
        "--delete-rows-only-in-target",
        "the option to delete the rows only in the target",
    ),
    (
        "--at TIME, --lsn LSN, --restore-point NAME, --before EVENT or --before-xid XID",
        "a point in time or an event",
    ),
    ("--table SCHEMA.TABLE[=SCHEMA.TABLE]", "tables"),
    ("--schema SCHEMA", "schemas"),
    ("--database DB", "a database"),
    ("--conflict", "conflict mode"),
    ("--name", "a name"),
];

/// A message or hint written for the command line, in the console's words: each
/// `lifeboat ...` command becomes the place in the console that does the same, and
/// each `--flag` the field or option it sets.
pub fn console_words(text: &str) -> String {
    let mut out = text.to_string();
    for (flag, words) in CONSOLE_OPTIONS {
        out = out.replace(flag, words);
    }
    for (command, place) in CONSOLE_PLACES {
        while let Some(start) = out.find(command) {
            // The command with its arguments: up to the closing quote or bracket, or
            // the end of the clause.
            let quoted = out[..start].ends_with('`');
            let from = if quoted { start - 1 } else { start };
            let rest = &out[start..];
            let end = if quoted {
                rest.find('`').map(|i| start + i + 1)
            } else {
                rest.find([')', ';', ',']).map(|i| start + i)
            }
            .unwrap_or(out.len());
            out.replace_range(from..end, place);
        }
    }
    // Any flag left: its name without the dashes.
    while let Some(i) = out.find(" --") {
        out.replace_range(i + 1..i + 3, "");
    }
    out
}

#[cfg(test)]
mod words_tests {
    use super::console_words;

    #[test]
    fn cli_commands_and_flags_become_console_words() {
        assert_eq!(
            console_words("choose a point inside the window (lifeboat backup window ID)"),
            "choose a point inside the window (the restorable window on the Backup and recovery tab)"
        );
        assert_eq!(
            console_words(
                "map these objects to new names, drop or rename them in the target, or choose --conflict skip-existing, overwrite or replace"
            ),
            "map these objects to new names, drop or rename them in the target, or choose conflict mode skip-existing, overwrite or replace"
        );
        assert_eq!(
            console_words("run `lifeboat migration precheck mt-abc123` again"),
            "run Pre-check again on the task's page again"
        );
        assert_eq!(
            console_words("take one: lifeboat backup run pg-abc123 --wait"),
            "take one: Back up now on the Backups tab"
        );
        assert_eq!(
            console_words("delete it (lifeboat temp delete pg-x) and create another"),
            "delete it (Delete temporary instance on the Backup and recovery tab) and create another"
        );
        let all = [
            "use --conflict repair, or leave --delete-rows-only-in-target out",
            "check that the source instance is running and that the migration worker's address is on its whitelist (lifeboat migration authorize TASK)",
            "start it first (lifeboat instance start pg-a); `lifeboat instance show pg-a` says why it failed",
            "choose another --name",
        ];
        for text in all {
            let words = console_words(text);
            assert!(
                !words.contains("lifeboat ") && !words.contains("--"),
                "{words}"
            );
        }
    }
}
