//! `lifeboat temp ...`: temporary instances restored to a point in time.

use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;
use lifeboat_api::instances::InstanceView;
use lifeboat_api::temporary::{CreateTemporary, TemporaryPhase, TemporaryProgress};
use lifeboat_domain::{InstanceStatus, RestoreTarget};
use serde_json::json;

use super::Output;
use super::client::Client;
use super::instance::{enc, show};
use super::output;

#[derive(Debug, Subcommand)]
pub enum TempCommand {
    /// Restore a master's backups into a new temporary instance, at a point in time.
    Create {
        /// The master to restore.
        master_id: String,
        /// RFC 3339, 'YYYY-MM-DD HH:MM:SS[.ffffff]' read in --tz, or 'now' (a running
        /// master's window reaches the present).
        #[arg(long, conflicts_with_all = ["lsn", "restore_point"])]
        at: Option<String>,
        /// Time zone of --at when it has no offset (IANA name); default the server's.
        #[arg(long)]
        tz: Option<String>,
        /// Restore to a WAL position instead, e.g. 0/3000028.
        #[arg(long, conflicts_with = "restore_point")]
        lsn: Option<String>,
        /// Restore to a restore point made with pg_create_restore_point.
        #[arg(long, conflicts_with_all = ["before", "before_xid"])]
        restore_point: Option<String>,
        /// Restore to just before an event (ev-..., from `lifeboat backup events`).
        #[arg(long, conflicts_with_all = ["at", "lsn", "before_xid"])]
        before: Option<String>,
        /// Restore to just before the transaction with this id committed.
        #[arg(long, conflicts_with_all = ["at", "lsn"])]
        before_xid: Option<u32>,
        /// Wait until the instance is ready, showing progress.
        #[arg(long)]
        wait: bool,
    },
    /// Show a master's temporary instance: progress, then how to connect.
    Show { master_id: String },
    /// Release a temporary instance now.
    Delete { temp_id: String },
    /// Keep a temporary instance as a master: it no longer expires, and is backed up
    /// from now on. Its master may then have another temporary instance.
    Keep {
        temp_id: String,
        /// The name it keeps as a master.
        #[arg(long)]
        name: String,
    },
}

pub async fn run(client: &Client, out: Output, cmd: TempCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        TempCommand::Create {
            master_id,
            at,
            tz,
            lsn,
            restore_point,
            before,
            before_xid,
            wait,
        } => {
            if at.is_none()
                && lsn.is_none()
                && restore_point.is_none()
                && before.is_none()
                && before_xid.is_none()
            {
                anyhow::bail!(
                    "no recovery target; hint: give --at TIME, --lsn LSN, --restore-point NAME, --before EVENT or --before-xid XID"
                );
            }
            let body = CreateTemporary {
                at,
                tz,
                lsn,
                restore_point,
                before,
                before_xid,
            };
            let created: InstanceView = client
                .post(&format!("/instances/{}/temporary", enc(&master_id)), &body)
                .await?;
            if out == Output::Table {
                println!(
                    "Creating temporary instance {} of {master_id}, restored to {}.",
                    created.id,
                    target_text(&created)
                );
            }
            if !wait {
                output::print(out, &created, |_| {
                    println!("Follow it with `lifeboat temp show {master_id}`.")
                })?;
                return Ok(ExitCode::SUCCESS);
            }
            let done = wait_ready(client, &master_id, &created.id, out).await?;
            output::print(out, &done, |v| {
                show(v);
                unlogged_note(v);
            })?;
            Ok(if done.status == InstanceStatus::Running {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        TempCommand::Show { master_id } => {
            let v: InstanceView = client
                .get(&format!("/instances/{}/temporary", enc(&master_id)))
                .await?;
            output::print(out, &v, |v| {
                show(v);
                if let Some(p) = &v.progress {
                    println!("{:<14}  {}", "phase", phase_text(p));
                }
                unlogged_note(v);
            })?;
            Ok(ExitCode::SUCCESS)
        }
        TempCommand::Keep { temp_id, name } => {
            let v: InstanceView = client
                .post(
                    &format!("/instances/{}/keep", enc(&temp_id)),
                    &lifeboat_api::temporary::KeepTemporary { name },
                )
                .await?;
            output::print(out, &v, |v| {
                println!(
                    "{} is now the master {}, backed up from now on; it is no longer released automatically.",
                    v.id, v.name
                );
            })?;
            Ok(ExitCode::SUCCESS)
        }
        TempCommand::Delete { temp_id } => {
            let _: serde_json::Value = client
                .delete(&format!("/instances/{}", enc(&temp_id)))
                .await?;
            output::print(out, &json!({ "id": temp_id, "released": true }), |_| {
                println!("Released temporary instance {temp_id}.")
            })?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Says which of the master's tables came back empty because they are unlogged.
fn unlogged_note(v: &InstanceView) {
    let Some(tables) = v.progress.as_ref().map(|p| &p.unlogged_tables) else {
        return;
    };
    if !tables.is_empty() {
        println!(
            "note: {} unlogged table(s) came back empty (PostgreSQL writes no WAL for their rows, so no restore has them): {}",
            tables.len(),
            tables.join(", ")
        );
    }
}

pub fn target_text(v: &InstanceView) -> String {
    match &v.restore_target {
        Some(RestoreTarget::Time(t)) => t.to_rfc3339(),
        Some(RestoreTarget::Lsn(l)) => format!("LSN {l}"),
        Some(RestoreTarget::RestorePoint(n)) => format!("restore point '{n}'"),
        Some(RestoreTarget::BeforeTransaction(c)) => format!(
            "just before transaction {} (committed {} at LSN {}{})",
            c.xid,
            c.commit_time.to_rfc3339(),
            c.commit_lsn,
            c.event
                .as_ref()
                .map(|e| format!(", event {e}"))
                .unwrap_or_default()
        ),
        None => "?".into(),
    }
}

pub fn phase_text(p: &TemporaryProgress) -> String {
    match p.phase {
        TemporaryPhase::RestoringFiles => format!(
            "restoring files of backup {}: {} of {}",
            p.backup_id.clone().unwrap_or_default(),
            output::bytes(p.bytes_done as i64),
            output::bytes(p.bytes_total as i64)
        ),
        TemporaryPhase::ReplayingWal => format!(
            "replaying WAL: {} replayed, at {}",
            output::bytes(p.wal_replayed_bytes as i64),
            p.replay_lsn.map(|l| l.to_string()).unwrap_or_default()
        ),
        TemporaryPhase::WaitingForWal => {
            "waiting for the master's newest WAL to be archived (it switched WAL to reach the target)".into()
        }
        other => other.as_str().replace('_', " "),
    }
}

/// Polls the master's temporary instance until it is ready or failed.
async fn wait_ready(
    client: &Client,
    master_id: &str,
    temp_id: &str,
    out: Output,
) -> anyhow::Result<InstanceView> {
    let spinner = indicatif::ProgressBar::new_spinner();
    if out != Output::Table {
        spinner.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    loop {
        let v: InstanceView = client
            .get(&format!("/instances/{}/temporary", enc(master_id)))
            .await?;
        if v.id != temp_id {
            anyhow::bail!("temporary instance {temp_id} was replaced by {}", v.id);
        }
        if let Some(p) = &v.progress {
            spinner.set_message(phase_text(p));
            spinner.tick();
        }
        if v.status != InstanceStatus::Creating {
            spinner.finish_and_clear();
            if v.status == InstanceStatus::Failed {
                anyhow::bail!(
                    "temporary instance {temp_id} failed: {}",
                    v.status_detail.clone().unwrap_or_default()
                );
            }
            return Ok(v);
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}
