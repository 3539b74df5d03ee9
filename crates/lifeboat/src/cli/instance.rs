//! `lifeboat instance ...`

use std::path::PathBuf;

use chrono::{DateTime, Local, Utc};
use clap::Subcommand;
use lifeboat_api::instances::{CreateInstanceRequest, InstanceView};
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
}

pub async fn run(client: &Client, out: Output, cmd: InstanceCommand) -> anyhow::Result<()> {
    match cmd {
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
            v.whitelist
                .iter()
                .map(|w| w.cidr.clone())
                .collect::<Vec<_>>()
                .join(", "),
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
    if let Some(m) = &v.master_id {
        rows.push(("master", m.clone()));
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
