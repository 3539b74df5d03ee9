//! `lifeboat instance ...`

use std::path::PathBuf;

use chrono::{DateTime, Local, Utc};
use clap::Subcommand;
use lifeboat_api::instances::{
    AdoptInstanceRequest, AdoptionCheckView, CreateInstanceRequest, InstanceView, Managed,
    UpdateInstanceRequest,
};
use lifeboat_api::temporary::CloneInstance;
use lifeboat_domain::InstanceStatus;
use serde_json::json;

use super::Output;
use super::client::Client;
use super::output;
use super::read_password_file;

#[derive(Debug, Subcommand)]
pub enum InstanceCommand {
    /// Create a master instance: a new PostgreSQL cluster, backed up from its first minute.
    Create {
        #[arg(long)]
        name: String,
        /// The privileged account to create.
        #[arg(long)]
        account: String,
        /// A file whose first line is the account's password.
        #[arg(long)]
        password_file: PathBuf,
        /// Default: the first configured region.
        #[arg(long)]
        region: Option<String>,
        /// The PostgreSQL major version, 15 to 18 (default: the server's, the newest
        /// installed unless [postgres] bin_dir says otherwise).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..100))]
        engine_version: Option<u32>,
    },
    /// Protect a PostgreSQL cluster Lifeboat did not create, on this host or another:
    /// after an adoption check, Lifeboat backs it up over the replication protocol
    /// through its own replication slot. It never starts, stops or reconfigures it.
    Adopt {
        #[arg(long)]
        name: String,
        /// The host name or IP address the cluster listens on.
        #[arg(long)]
        host: String,
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
        port: u16,
        /// An existing role of the cluster with REPLICATION (pg_read_all_data too, for
        /// diff and pre-checks).
        #[arg(long)]
        account: String,
        /// A file whose first line is the account's password.
        #[arg(long)]
        password_file: PathBuf,
        /// The region whose repository keeps the backups; default the first one.
        #[arg(long)]
        region: Option<String>,
        /// Only run the adoption check and list every item; change nothing.
        #[arg(long)]
        check: bool,
    },
    /// Change where an adopted cluster is or how Lifeboat logs in to it (its host
    /// moved, its password changed); the new values must reach the same cluster.
    Update {
        id: String,
        #[arg(long)]
        host: Option<String>,
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
        port: Option<u16>,
        #[arg(long)]
        account: Option<String>,
        /// A file whose first line is the account's password.
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// List instances.
    List,
    /// Show one instance, with a ready-to-paste psql command.
    Show { id: String },
    /// Stop an instance's cluster and remove its files.
    Delete { id: String },
    /// Stop an instance.
    Stop { id: String },
    /// Start a stopped instance.
    Start { id: String },
    /// Create a permanent master from a master's backups at one point: the accounts
    /// and passwords it had then, backed up from its first second. The source is an
    /// instance of this server or a master listed by `lifeboat repository list` (one
    /// this server deleted, or one written by a server whose host is gone).
    Clone {
        /// The master whose backups are restored.
        source_id: String,
        /// The new master's name.
        #[arg(long)]
        name: String,
        /// RFC 3339, 'YYYY-MM-DD HH:MM:SS[.ffffff]' read in --tz, or 'now'.
        #[arg(long, conflicts_with_all = ["lsn", "restore_point", "before", "before_xid"])]
        at: Option<String>,
        /// Time zone of --at when it has no offset (IANA name); default the server's.
        #[arg(long)]
        tz: Option<String>,
        /// Restore to a WAL position instead, e.g. 0/3000028.
        #[arg(long, conflicts_with_all = ["restore_point", "before", "before_xid"])]
        lsn: Option<String>,
        /// Restore to a restore point made with pg_create_restore_point.
        #[arg(long, conflicts_with_all = ["before", "before_xid"])]
        restore_point: Option<String>,
        /// Restore to just before an event (ev-..., from `lifeboat backup events`).
        #[arg(long, conflicts_with = "before_xid")]
        before: Option<String>,
        /// Restore to just before the transaction with this id committed.
        #[arg(long)]
        before_xid: Option<u32>,
        /// The PostgreSQL major: a clone runs its backups' major, so only that one.
        #[arg(long)]
        engine_version: Option<u32>,
        /// Wait until the new master is running, showing progress.
        #[arg(long)]
        wait: bool,
    },
}

pub async fn run(
    client: &Client,
    out: Output,
    cmd: InstanceCommand,
) -> anyhow::Result<std::process::ExitCode> {
    if let InstanceCommand::Adopt {
        name,
        host,
        port,
        account,
        password_file,
        region,
        check,
    } = cmd
    {
        let password = existing_password(&password_file)?;
        let body = AdoptInstanceRequest {
            name,
            host,
            port,
            account,
            password,
            region,
        };
        if check {
            let view: AdoptionCheckView = client.post("/instances/adopt/check", &body).await?;
            output::print(out, &view, show_check)?;
            return Ok(if view.adoptable {
                std::process::ExitCode::SUCCESS
            } else {
                std::process::ExitCode::FAILURE
            });
        }
        let view: InstanceView = client.post("/instances/adopt", &body).await?;
        output::print(out, &view, show)?;
        return Ok(std::process::ExitCode::SUCCESS);
    }
    run_other(client, out, cmd).await?;
    Ok(std::process::ExitCode::SUCCESS)
}

/// The first line of a password file, as it is: an adopted cluster's account has the
/// password its owners gave it, which Lifeboat's rules for new accounts do not bound.
fn existing_password(path: &std::path::Path) -> anyhow::Result<String> {
    let bytes = std::fs::read(path).map_err(|e| {
        anyhow::anyhow!("cannot read the password file {}: {e}; hint: give a readable file with the password on its first line", path.display())
    })?;
    let text = String::from_utf8(bytes).map_err(|_| {
        anyhow::anyhow!(
            "the password file {} is not UTF-8 text; hint: write the password on its first line",
            path.display()
        )
    })?;
    let line = text.lines().next().unwrap_or_default().to_string();
    if line.is_empty() {
        anyhow::bail!(
            "the password file {} is empty; hint: write the account's password on its first line",
            path.display()
        );
    }
    Ok(line)
}

fn show_check(v: &AdoptionCheckView) {
    output::table(
        &["", "ITEM", "STATUS", "DETAIL", "ADVICE"],
        v.items
            .iter()
            .map(|i| {
                let mark = match i.status {
                    lifeboat_domain::task::PrecheckStatus::Failed => "!",
                    lifeboat_domain::task::PrecheckStatus::Warning => "?",
                    lifeboat_domain::task::PrecheckStatus::Passed => "",
                };
                vec![
                    mark.to_string(),
                    i.name.clone(),
                    i.status.to_string(),
                    i.detail.clone(),
                    i.advice.clone(),
                ]
            })
            .collect(),
    );
    if v.adoptable {
        println!("The cluster can be adopted: run the same command without --check.");
    } else {
        println!("The cluster cannot be adopted yet: fix the items marked !, then check again.");
    }
}

async fn run_other(client: &Client, out: Output, cmd: InstanceCommand) -> anyhow::Result<()> {
    match cmd {
        InstanceCommand::Adopt { .. } => Ok(()),
        InstanceCommand::Update {
            id,
            host,
            port,
            account,
            password_file,
        } => {
            let password = password_file
                .as_deref()
                .map(existing_password)
                .transpose()?;
            let body = UpdateInstanceRequest {
                host,
                port,
                account,
                password,
            };
            let view: InstanceView = client
                .patch(&format!("/instances/{}", enc(&id)), &body)
                .await?;
            output::print(out, &view, show)
        }
        InstanceCommand::Create {
            name,
            account,
            password_file,
            region,
            engine_version,
        } => {
            let password = read_password_file(&password_file)?;
            let body = CreateInstanceRequest {
                name,
                account,
                password,
                region,
                engine_version,
            };
            let view: InstanceView = client.post("/instances", &body).await?;
            output::print(out, &view, show)
        }
        InstanceCommand::List => {
            let list: Vec<InstanceView> = client.get("/instances").await?;
            output::print(out, &list, |list| {
                output::table(
                    &[
                        "ID",
                        "NAME",
                        "KIND",
                        "STATUS",
                        "REGION",
                        "PORT",
                        "CREATED",
                        "TIME LEFT",
                    ],
                    list.iter()
                        .map(|i| {
                            vec![
                                i.id.clone(),
                                i.name.clone(),
                                i.kind.to_string(),
                                i.status.to_string(),
                                i.region.clone(),
                                i.port.to_string(),
                                local(i.created_at),
                                i.time_left_seconds
                                    .map(duration)
                                    .unwrap_or_else(|| "-".into()),
                            ]
                        })
                        .collect(),
                )
            })
        }
        InstanceCommand::Show { id } => {
            let view: InstanceView = client.get(&format!("/instances/{}", enc(&id))).await?;
            output::print(out, &view, show)
        }
        InstanceCommand::Delete { id } => {
            let _: serde_json::Value = client.delete(&format!("/instances/{}", enc(&id))).await?;
            output::print(out, &json!({ "id": id, "deleted": true }), |_| {
                println!("Deleted instance {id}.")
            })
        }
        InstanceCommand::Stop { id } => {
            let view: InstanceView = client
                .action(&format!("/instances/{}/stop", enc(&id)))
                .await?;
            output::print(out, &view, |v| {
                println!("Instance {} is {}.", v.id, v.status)
            })
        }
        InstanceCommand::Clone {
            source_id,
            name,
            at,
            tz,
            lsn,
            restore_point,
            before,
            before_xid,
            engine_version,
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
            let body = CloneInstance {
                name,
                at,
                tz,
                lsn,
                restore_point,
                before,
                before_xid,
                engine_version,
            };
            let created: InstanceView = client
                .post(&format!("/instances/{}/clone", enc(&source_id)), &body)
                .await?;
            if out == Output::Table {
                println!(
                    "Creating master {} ({}) from the backups of {source_id}, restored to {}.",
                    created.id,
                    created.name,
                    super::temp::target_text(&created)
                );
            }
            if !wait {
                return output::print(out, &created, |v| {
                    println!("Follow it with `lifeboat instance show {}`.", v.id)
                });
            }
            let done = wait_created(client, &created.id, out).await?;
            output::print(out, &done, show)
        }
        InstanceCommand::Start { id } => {
            let view: InstanceView = client
                .action(&format!("/instances/{}/start", enc(&id)))
                .await?;
            output::print(out, &view, |v| {
                println!("Instance {} is {}.", v.id, v.status)
            })
        }
    }
}

/// Polls a new instance until it is no longer being created; an error when it failed.
async fn wait_created(client: &Client, id: &str, out: Output) -> anyhow::Result<InstanceView> {
    let spinner = indicatif::ProgressBar::new_spinner();
    if out != Output::Table {
        spinner.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    loop {
        let v: InstanceView = client.get(&format!("/instances/{}", enc(id))).await?;
        if let Some(p) = &v.progress {
            spinner.set_message(super::temp::phase_text(p));
            spinner.tick();
        }
        if v.status != InstanceStatus::Creating {
            spinner.finish_and_clear();
            if v.status == InstanceStatus::Failed {
                anyhow::bail!(
                    "instance {id} failed: {}",
                    v.status_detail.clone().unwrap_or_default()
                );
            }
            return Ok(v);
        }
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    }
}

/// Percent-encodes a path segment typed by the user.
pub fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub fn show(v: &InstanceView) {
    let mut rows = vec![
        ("id", v.id.clone()),
        ("name", v.name.clone()),
        ("kind", v.kind.to_string()),
        ("status", v.status.to_string()),
    ];
    if v.managed == Managed::External {
        rows.push((
            "managed",
            "external: adopted; Lifeboat backs it up and never starts, stops or reconfigures it"
                .to_string(),
        ));
    }
    if let Some(d) = &v.status_detail {
        rows.push(("status detail", d.clone()));
    }
    rows.extend([
        ("region", v.region.clone()),
        ("engine version", format!("PostgreSQL {}", v.engine_version)),
        ("address", format!("{}:{}", v.address, v.port)),
        ("network type", v.network_type.to_string()),
        (
            "whitelist",
            if v.managed == Managed::External {
                "managed where the cluster runs (its pg_hba.conf)".to_string()
            } else {
                v.whitelist
                    .iter()
                    .map(|w| w.cidr.clone())
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        ),
        (
            "accounts",
            v.accounts
                .iter()
                .map(|a| {
                    if a.privileged {
                        format!("{} (privileged)", a.name)
                    } else {
                        a.name.clone()
                    }
                })
                .collect::<Vec<_>>()
                .join(", "),
        ),
        (
            "data size",
            v.data_size_bytes
                .map(output::bytes)
                .unwrap_or_else(|| "-".into()),
        ),
        ("created", local(v.created_at)),
    ]);
    if let Some(a) = &v.archiving {
        let last = match (&a.last_archived_wal, a.last_archived_at) {
            (Some(w), Some(t)) => format!("{w} at {}", local(t)),
            _ => "nothing yet".into(),
        };
        rows.push((
            "WAL archiving",
            if a.failing {
                "FAILING".to_string()
            } else {
                "ok".to_string()
            },
        ));
        rows.push(("last archived", last));
        if let (Some(w), Some(t)) = (&a.last_failed_wal, a.last_failed_at) {
            let why = a
                .last_failure_reason
                .clone()
                .unwrap_or_else(|| "see the instance's postgres.log".into());
            rows.push(("last failure", format!("{w} at {}: {why}", local(t))));
        }
    }
    if let Some(st) = &v.streaming {
        let last = match (&st.last_stored_wal, st.last_stored_at) {
            (Some(w), Some(t)) => format!("{w} at {}", local(t)),
            _ => "nothing yet".into(),
        };
        rows.push((
            "WAL streaming",
            match (st.failing_since, &st.failure) {
                (Some(t), Some(why)) => format!("FAILING since {}: {why}", local(t)),
                _ => "ok".into(),
            },
        ));
        rows.push(("last streamed", last));
    }
    if let Some(m) = &v.master_id {
        rows.push(("master", m.clone()));
    }
    if let Some(m) = &v.restored_from {
        rows.push(("restored from", m.clone()));
    }
    if let Some(at) = v.expires_at {
        let left = v.time_left_seconds.map(duration).unwrap_or_default();
        rows.push(("released at", format!("{} ({left} left)", local(at))));
    }
    rows.push(("connect", v.psql.clone()));
    output::fields(&rows);
}

pub fn local(t: DateTime<Utc>) -> String {
    t.with_timezone(&Local)
        .format("%Y-%m-%d %H:%M:%S %:z")
        .to_string()
}

pub fn duration(secs: i64) -> String {
    let (h, m) = (secs / 3600, (secs % 3600) / 60);
    if h > 0 {
        format!("{h}h{m:02}m")
    } else {
        format!("{m}m{:02}s", secs % 60)
    }
}
