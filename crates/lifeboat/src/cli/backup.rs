//! `lifeboat backup ...`: base backups, the restorable window, verification.

use std::process::ExitCode;
use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::Subcommand;
use lifeboat_api::backups::{BackupList, BackupRunView, VerifyView, WindowView};
use lifeboat_api::events::{EventList, EventTable};
use lifeboat_domain::BackupRunState;

use super::Output;
use super::client::Client;
use super::instance::enc;
use super::output;
use super::zone::Zone;

#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Take a base backup now.
    Run {
        id: String,
        /// Wait until it ends, showing progress.
        #[arg(long)]
        wait: bool,
    },
    /// List the base backups in the repository and the recent attempts.
    List { id: String },
    /// Show the restorable window: the earliest and latest recoverable times and LSNs.
    Window {
        id: String,
        /// Time zone to show times in (e.g. Europe/Paris); default: this machine's.
        #[arg(long)]
        tz: Option<String>,
    },
    /// Re-read every stored object and check checksums and WAL continuity.
    Verify { id: String },
    /// List, newest first, the committed transactions that destroyed data (DROP,
    /// TRUNCATE, large DELETEs and UPDATEs), found in the archived WAL, each with the
    /// command that restores to just before it.
    Events {
        /// The master.
        id: String,
        /// Events that committed at or after this time.
        #[arg(long)]
        since: Option<String>,
        /// Events that committed at or before this time.
        #[arg(long)]
        until: Option<String>,
        /// In this database only.
        #[arg(long)]
        database: Option<String>,
        /// On this table only (SCHEMA.TABLE, as it was named then).
        #[arg(long)]
        table: Option<String>,
        /// Of this kind only: drop_database, drop_table, truncate, delete, update,
        /// alter_table.
        #[arg(long)]
        kind: Option<String>,
        /// Rows a DELETE or UPDATE must touch in one table (default 1000).
        #[arg(long)]
        min_rows: Option<u64>,
        /// Time zone of --since, --until and the times shown (IANA name).
        #[arg(long)]
        tz: Option<String>,
    },
}

pub async fn run(client: &Client, out: Output, cmd: BackupCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        BackupCommand::Run { id, wait } => {
            let started = client
                .action::<BackupRunView>(&format!("/instances/{}/backups", enc(&id)))
                .await;
            let run = match started {
                Ok(run) => run,
                // With --wait, a backup already running (the first one of a new
                // master, a scheduled one) is as good: wait for it.
                Err(e) if wait && is_code(&e, "backup_running") => {
                    let list: BackupList = client
                        .get(&format!("/instances/{}/backups", enc(&id)))
                        .await?;
                    // The newest attempt, when it ended between the two requests.
                    let running = list
                        .runs
                        .iter()
                        .find(|r| r.state == BackupRunState::Running)
                        .or(list.runs.first())
                        .cloned();
                    let Some(running) = running else {
                        return Err(e);
                    };
                    if out == Output::Table {
                        println!(
                            "A base backup of {id} is already running (run {}, {}); waiting for it.",
                            running.id, running.trigger
                        );
                    }
                    running
                }
                Err(e) => return Err(e),
            };
            if !wait {
                output::print(out, &run, |r| {
                    println!(
                        "Base backup of {id} started (run {}); follow it with `lifeboat backup list {id}`.",
                        r.id
                    )
                })?;
                return Ok(ExitCode::SUCCESS);
            }
            let done = wait_for_run(client, &id, run.id, out).await?;
            output::print(out, &done, |r| match (r.state, &r.backup_id) {
                (BackupRunState::Completed, Some(b)) => println!(
                    "Base backup {b} of {id} completed ({}).",
                    output::bytes(r.bytes_total)
                ),
                _ => println!(
                    "Base backup of {id} failed: {}",
                    r.error.clone().unwrap_or_default()
                ),
            })?;
            Ok(if done.state == BackupRunState::Completed {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        BackupCommand::List { id } => {
            let list: BackupList = client
                .get(&format!("/instances/{}/backups", enc(&id)))
                .await?;
            let zone = Zone::parse(None)?;
            output::print(out, &list, |l| {
                println!("Backups in the repository:");
                output::table(
                    &[
                        "BACKUP",
                        "STARTED",
                        "CONSISTENT FROM",
                        "STOP LSN",
                        "SIZE",
                        "STORED",
                    ],
                    l.backups
                        .iter()
                        .map(|b| {
                            vec![
                                b.id.clone(),
                                zone.format(b.start_time),
                                zone.format(b.stop_time),
                                b.stop_lsn.clone(),
                                output::bytes(b.logical_size as i64),
                                output::bytes(b.stored_size as i64),
                            ]
                        })
                        .collect(),
                );
                println!("Recent attempts:");
                output::table(
                    &[
                        "RUN",
                        "TRIGGER",
                        "STATE",
                        "STARTED",
                        "PROGRESS",
                        "BACKUP / ERROR",
                    ],
                    l.runs
                        .iter()
                        .map(|r| {
                            vec![
                                r.id.to_string(),
                                r.trigger.to_string(),
                                r.state.to_string(),
                                zone.format(r.started_at),
                                progress_text(r),
                                r.backup_id
                                    .clone()
                                    .or_else(|| r.error.clone())
                                    .unwrap_or_default(),
                            ]
                        })
                        .collect(),
                );
            })?;
            Ok(ExitCode::SUCCESS)
        }
        BackupCommand::Events {
            id,
            since,
            until,
            database,
            table,
            kind,
            min_rows,
            tz,
        } => {
            let zone = Zone::parse(tz.as_deref())?;
            let mut query = Vec::new();
            for (k, v) in [
                ("since", since),
                ("until", until),
                ("database", database),
                ("table", table),
                ("kind", kind),
                ("min_rows", min_rows.map(|n| n.to_string())),
                ("tz", tz),
            ] {
                if let Some(v) = v {
                    query.push(format!("{k}={}", enc(&v)));
                }
            }
            let path = format!("/instances/{}/events?{}", enc(&id), query.join("&"));
            let list: EventList = client.get(&path).await?;
            output::print(out, &list, |l| print_events(l, &zone))?;
            Ok(ExitCode::SUCCESS)
        }
        BackupCommand::Window { id, tz } => {
            let zone = Zone::parse(tz.as_deref())?;
            let w: WindowView = client
                .get(&format!("/instances/{}/window", enc(&id)))
                .await?;
            output::print(out, &w, |w| {
                if !w.available {
                    println!("{}", w.note);
                    return;
                }
                let t = |v: Option<DateTime<Utc>>| v.map(|v| zone.format(v)).unwrap_or_default();
                let mut fields = vec![("instance", w.instance_id.clone())];
                // Windows before a WAL gap, oldest first.
                for e in &w.windows[..w.windows.len().saturating_sub(1)] {
                    fields.push((
                        "earlier window",
                        format!(
                            "{} to {}  (LSN {} to {}; WAL {} missing after it)",
                            zone.format(e.earliest),
                            zone.format(e.latest),
                            e.earliest_lsn,
                            e.latest_lsn,
                            e.gap.as_deref().unwrap_or("?")
                        ),
                    ));
                }
                fields.extend([
                    (
                        "earliest",
                        format!(
                            "{}  (LSN {})",
                            t(w.earliest),
                            w.earliest_lsn.clone().unwrap_or_default()
                        ),
                    ),
                    (
                        "latest",
                        format!(
                            "{}  (LSN {})",
                            t(w.latest),
                            w.latest_lsn.clone().unwrap_or_default()
                        ),
                    ),
                    ("time zone", zone.name()),
                    ("note", w.note.clone()),
                ]);
                output::fields(&fields);
            })?;
            Ok(ExitCode::SUCCESS)
        }
        BackupCommand::Verify { id } => {
            let v: VerifyView = client
                .action(&format!("/instances/{}/backups/verify", enc(&id)))
                .await?;
            output::print(out, &v, |v| {
                println!(
                    "Checked {} objects ({}) of {} backups of {}: {}.",
                    v.objects_checked,
                    output::bytes(v.bytes_checked as i64),
                    v.backups,
                    v.instance_id,
                    if v.ok {
                        "no problem found".to_string()
                    } else {
                        format!("{} problems", v.problems.len())
                    }
                );
                for p in &v.problems {
                    let files = if p.files.is_empty() {
                        String::new()
                    } else {
                        format!(" (needed by {})", p.files.join(", "))
                    };
                    println!("  {}: {}{files}", p.object, p.detail);
                }
            })?;
            Ok(if v.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

fn progress_text(r: &BackupRunView) -> String {
    if r.bytes_total <= 0 {
        return "-".into();
    }
    format!("{}%", r.bytes_done * 100 / r.bytes_total)
}

/// Polls the run until it ends, with a progress bar on a terminal.
async fn wait_for_run(
    client: &Client,
    id: &str,
    run: i64,
    out: Output,
) -> anyhow::Result<BackupRunView> {
    let bar = indicatif::ProgressBar::new(0);
    if out == Output::Table {
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg} [{bar:40}] {bytes}/{total_bytes} ({eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar.set_message(format!("backing up {id}"));
    } else {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    loop {
        let list: BackupList = client
            .get(&format!("/instances/{}/backups", enc(id)))
            .await?;
        let Some(r) = list.runs.into_iter().find(|r| r.id == run) else {
            anyhow::bail!("backup run {run} of {id} disappeared from the server's list");
        };
        bar.set_length(r.bytes_total.max(0) as u64);
        bar.set_position(r.bytes_done.max(0) as u64);
        if r.state != BackupRunState::Running {
            bar.finish_and_clear();
            return Ok(r);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Whether `e` is the API's error with `code`.
fn is_code(e: &anyhow::Error, code: &str) -> bool {
    e.downcast_ref::<super::client::ApiFailure>()
        .is_some_and(|f| f.code == code)
}

fn table_name(t: &EventTable) -> String {
    match (&t.schema, &t.name, t.oid) {
        (Some(s), Some(n), _) => format!("{s}.{n}"),
        (_, _, Some(oid)) => format!("(OID {oid}, name not known)"),
        _ => "?".into(),
    }
}

fn print_events(list: &EventList, zone: &Zone) {
    if list.events.is_empty() {
        println!(
            "No event: no transaction destroyed data in the archived WAL of {}.",
            list.instance_id
        );
    } else {
        output::table(
            &[
                "EVENT",
                "KIND",
                "DATABASE",
                "TABLES",
                "ROWS",
                "XID",
                "COMMITTED",
                "LSN",
            ],
            list.events
                .iter()
                .map(|e| {
                    vec![
                        e.id.clone(),
                        e.kind.as_str().replace('_', " "),
                        e.database.clone(),
                        e.tables
                            .iter()
                            .map(table_name)
                            .collect::<Vec<_>>()
                            .join(", "),
                        e.rows.to_string(),
                        e.xid.to_string(),
                        zone.format_precise(e.commit_time),
                        e.commit_lsn.clone(),
                    ]
                })
                .collect(),
        );
        println!(
            "Restore to just before one: lifeboat temp create {} --before EVENT",
            list.instance_id
        );
    }
    println!("{}", list.note);
}
