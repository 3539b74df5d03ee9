//! `lifeboat migration ...`: copy chosen objects from one instance into another.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;
use lifeboat_api::migrations::{
    CreateTask, EndpointChange, EndpointInput, PrecheckStatus, TaskView as TaskDoc, UpdateTask,
};
use lifeboat_domain::TaskState;
use serde_json::json;

use super::Output;
use super::client::Client;
use super::instance::{enc, local};
use super::output;
use super::read_password_file;

#[derive(Debug, Subcommand)]
pub enum MigrationCommand {
    /// Create a migration task (it does nothing until pre-checked and started).
    Create(Box<CreateArgs>),
    /// Change the objects, types or conflict mode of a task that has not started
    /// (its pre-check must then pass again).
    Update {
        task: String,
        /// Replaces the task's objects: DB, DB.SCHEMA or DB.SCHEMA.TABLE, optionally
        /// =NEW_NAME. Repeat for more.
        #[arg(long = "object")]
        objects: Vec<String>,
        /// schema, data, or schema,data.
        #[arg(long)]
        types: Option<String>,
        #[arg(long, value_parser = ["error", "skip-existing", "overwrite", "replace", "repair"])]
        conflict: Option<String>,
        /// Under --conflict repair: also delete the target rows whose key the source
        /// lacks (saved first). `--delete-rows-only-in-target false` turns it off.
        #[arg(long, num_args = 0..=1, default_missing_value = "true")]
        delete_rows_only_in_target: Option<bool>,
        /// A new source account.
        #[arg(long)]
        source_account: Option<String>,
        /// File with a new password for the source account.
        #[arg(long)]
        source_password_file: Option<PathBuf>,
        /// A new target account.
        #[arg(long)]
        target_account: Option<String>,
        /// File with a new password for the target account.
        #[arg(long)]
        target_password_file: Option<PathBuf>,
    },
    /// Add the migration worker's address to both instances' whitelists.
    Authorize { task: String },
    /// Run the pre-check; exits non-zero when an item failed.
    Precheck { task: String },
    /// Start a task whose pre-check passed.
    Start {
        task: String,
        /// Wait until it ends, showing progress.
        #[arg(long)]
        wait: bool,
    },
    /// Cancel a running task: each table is left fully migrated or as it was.
    Cancel { task: String },
    /// Show a task: state, pre-check items, per-table progress, report.
    Show { task: String },
    /// List tasks.
    List,
    /// Delete a task that is not running (removes its whitelist entries).
    Delete { task: String },
}

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// Where the data comes from (usually the temporary instance).
    #[arg(long)]
    source: String,
    /// Where it goes (usually the master).
    #[arg(long)]
    target: String,
    /// Default: a generated name.
    #[arg(long)]
    name: Option<String>,
    /// DB, DB.SCHEMA or DB.SCHEMA.TABLE, optionally =NEW_NAME. Repeat for more.
    #[arg(long = "object", required = true)]
    objects: Vec<String>,
    #[arg(long)]
    source_account: String,
    /// File with the source account's password (else LIFEBOAT_SOURCE_PASSWORD).
    #[arg(long)]
    source_password_file: Option<PathBuf>,
    #[arg(long)]
    source_region: Option<String>,
    #[arg(long)]
    target_account: String,
    /// File with the target account's password (else LIFEBOAT_TARGET_PASSWORD).
    #[arg(long)]
    target_password_file: Option<PathBuf>,
    #[arg(long)]
    target_region: Option<String>,
    /// schema, data, or schema,data.
    #[arg(long, default_value = "schema,data")]
    types: String,
    /// What to do when a mapped table exists in the target: error, skip-existing
    /// (insert the missing rows), overwrite (rows with the same key take the source's
    /// values), replace (swap the whole table) or repair (change only the rows that
    /// differ).
    #[arg(long, default_value = "error", value_parser = ["error", "skip-existing", "overwrite", "replace", "repair"])]
    conflict: String,
    /// Under --conflict repair: also delete the target rows whose key the source
    /// lacks (saved first). Without it they are kept: they are usually rows written
    /// after the chosen time.
    #[arg(long)]
    delete_rows_only_in_target: bool,
}

fn password(file: &Option<PathBuf>, env: &str) -> anyhow::Result<String> {
    match file {
        Some(f) => read_password_file(f),
        None => std::env::var(env).map_err(|_| {
            anyhow::anyhow!(
                "no password: give --{}-password-file FILE or set {env}",
                if env.contains("SOURCE") {
                    "source"
                } else {
                    "target"
                }
            )
        }),
    }
}

pub async fn run(client: &Client, out: Output, cmd: MigrationCommand) -> anyhow::Result<ExitCode> {
    let path = |task: &str, action: &str| format!("/migrations/{}{action}", enc(task));
    let doc: TaskDoc = match cmd {
        MigrationCommand::Create(args) => {
            let CreateArgs {
                source,
                target,
                name,
                objects,
                source_account,
                source_password_file,
                source_region,
                target_account,
                target_password_file,
                target_region,
                types,
                conflict,
                delete_rows_only_in_target,
            } = *args;
            let body = CreateTask {
                name,
                source: EndpointInput {
                    instance: source,
                    region: source_region,
                    account: source_account,
                    password: password(&source_password_file, "LIFEBOAT_SOURCE_PASSWORD")?,
                },
                target: EndpointInput {
                    instance: target,
                    region: target_region,
                    account: target_account,
                    password: password(&target_password_file, "LIFEBOAT_TARGET_PASSWORD")?,
                },
                objects,
                types: Some(types),
                conflict: Some(conflict),
                delete_rows_only_in_target: Some(delete_rows_only_in_target),
            };
            let doc: TaskDoc = client.post("/migrations", &body).await?;
            if out == Output::Table {
                println!("Created migration task {} ({}).", doc.id, doc.name);
                println!(
                    "Next: lifeboat migration authorize {0}; lifeboat migration precheck {0}; lifeboat migration start {0}",
                    doc.id
                );
            }
            doc
        }
        MigrationCommand::Update {
            task,
            objects,
            types,
            conflict,
            delete_rows_only_in_target,
            source_account,
            source_password_file,
            target_account,
            target_password_file,
        } => {
            let change = |account: Option<String>,
                          file: Option<PathBuf>|
             -> anyhow::Result<Option<EndpointChange>> {
                let password = file.map(|f| read_password_file(&f)).transpose()?;
                Ok((account.is_some() || password.is_some())
                    .then_some(EndpointChange { account, password }))
            };
            let source = change(source_account, source_password_file)?;
            let target = change(target_account, target_password_file)?;
            if objects.is_empty()
                && types.is_none()
                && conflict.is_none()
                && delete_rows_only_in_target.is_none()
                && source.is_none()
                && target.is_none()
            {
                anyhow::bail!(
                    "nothing to change in {task}: give --object, --types, --conflict, --delete-rows-only-in-target, or an account or password file of either side"
                );
            }
            let body = UpdateTask {
                objects: (!objects.is_empty()).then_some(objects),
                source,
                target,
                types,
                conflict,
                delete_rows_only_in_target,
            };
            let doc: TaskDoc = client.patch(&path(&task, ""), &body).await?;
            if out == Output::Table {
                println!(
                    "Updated {}: {} ({}; conflict mode {}). Run `lifeboat migration precheck {}` again.",
                    doc.id,
                    doc.objects.join(", "),
                    doc.types.join(","),
                    doc.conflict,
                    doc.id
                );
            }
            doc
        }
        MigrationCommand::Authorize { task } => {
            let doc: TaskDoc = client.action(&path(&task, "/authorize")).await?;
            if out == Output::Table {
                println!(
                    "Authorized {}: {} may connect to {} and {}.",
                    doc.id, doc.worker_address, doc.source.instance, doc.target.instance
                );
            }
            doc
        }
        MigrationCommand::Precheck { task } => {
            let doc: TaskDoc = client.action(&path(&task, "/precheck")).await?;
            output::print(out, &doc, show)?;
            return Ok(if doc.state == TaskState::PrecheckPassed {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }
        MigrationCommand::Start { task, wait } => {
            let doc: TaskDoc = client.action(&path(&task, "/start")).await?;
            if !wait {
                output::print(out, &doc, |d| {
                    println!(
                        "Started {}; follow it with `lifeboat migration show {}`.",
                        d.id, d.id
                    )
                })?;
                return Ok(ExitCode::SUCCESS);
            }
            let done = wait_end(client, &doc.id, out).await?;
            output::print(out, &done, show)?;
            return Ok(if done.state == TaskState::Completed {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }
        MigrationCommand::Cancel { task } => client.action(&path(&task, "/cancel")).await?,
        MigrationCommand::Show { task } => client.get(&path(&task, "")).await?,
        MigrationCommand::Delete { task } => {
            let _: serde_json::Value = client.delete(&path(&task, "")).await?;
            output::print(out, &json!({ "id": task, "deleted": true }), |_| {
                println!("Deleted migration task {task}.")
            })?;
            return Ok(ExitCode::SUCCESS);
        }
        MigrationCommand::List => {
            let list: Vec<TaskDoc> = client.get("/migrations").await?;
            output::print(out, &list, |list| {
                output::table(
                    &[
                        "TASK", "NAME", "SOURCE", "TARGET", "STATE", "PROGRESS", "CREATED",
                    ],
                    list.iter()
                        .map(|d| {
                            vec![
                                d.id.clone(),
                                d.name.clone(),
                                d.source.instance.clone(),
                                d.target.instance.clone(),
                                d.state.to_string(),
                                overall(d),
                                local(d.created_at),
                            ]
                        })
                        .collect(),
                )
            })?;
            return Ok(ExitCode::SUCCESS);
        }
    };
    output::print(out, &doc, show)?;
    Ok(ExitCode::SUCCESS)
}

fn overall(d: &TaskDoc) -> String {
    if d.tables.is_empty() {
        return "-".into();
    }
    let (done, total): (u64, u64) = d.tables.iter().fold((0, 0), |(a, b), t| {
        (
            a + t.bytes.min(t.estimated_bytes.max(t.bytes)),
            b + t.estimated_bytes.max(t.bytes),
        )
    });
    let finished = d.tables.iter().filter(|t| t.state.finished()).count();
    let pct = (done * 100).checked_div(total).unwrap_or(0);
    format!("{finished}/{} tables, {pct}%", d.tables.len())
}

fn show(d: &TaskDoc) {
    output::fields(&[
        ("task", format!("{} ({})", d.id, d.name)),
        ("state", d.state.to_string()),
        (
            "source",
            format!(
                "{} as {} ({})",
                d.source.instance, d.source.account, d.source.region
            ),
        ),
        (
            "target",
            format!(
                "{} as {} ({})",
                d.target.instance, d.target.account, d.target.region
            ),
        ),
        ("objects", d.objects.join(", ")),
        ("types", d.types.join(",")),
        (
            "conflict mode",
            if d.delete_rows_only_in_target {
                format!("{} (deleting rows only in the target)", d.conflict)
            } else {
                d.conflict.clone()
            },
        ),
        (
            "whitelist",
            if d.authorized {
                format!("{} authorized", d.worker_address)
            } else {
                "not authorized".into()
            },
        ),
    ]);
    if let Some(e) = &d.error {
        println!("error           {e}");
    }
    if !d.precheck.is_empty() {
        println!("Pre-check:");
        output::table(
            &["", "ITEM", "STATUS", "DETAIL", "ADVICE"],
            d.precheck
                .iter()
                .map(|i| {
                    let mark = match i.status {
                        PrecheckStatus::Failed => "!",
                        PrecheckStatus::Warning => "?",
                        PrecheckStatus::Passed => "",
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
    }
    if !d.tables.is_empty() {
        println!("Tables:");
        output::table(
            &["SOURCE", "TARGET", "STATE", "ROWS", "BYTES", "DONE", "ETA"],
            d.tables
                .iter()
                .map(|t| {
                    vec![
                        t.source.clone(),
                        t.target.clone(),
                        t.state.to_string(),
                        t.rows.to_string(),
                        output::bytes(t.bytes as i64),
                        format!("{:.0}%", t.percent),
                        t.eta_seconds
                            .map(|s| format!("{s}s"))
                            .unwrap_or_else(|| "-".into()),
                    ]
                })
                .collect(),
        );
    }
    if let Some(r) = &d.report {
        println!("Report:");
        for t in r["tables"].as_array().into_iter().flatten() {
            if t["action"] == "repair" {
                let kept = t["kept_table"]
                    .as_str()
                    .map(|k| format!("; the rows as they were are kept in {k}"))
                    .unwrap_or_default();
                println!(
                    "  {} -> {}: repaired: {} rows inserted, {} updated, {} deleted, {} untouched ({} only in the target){kept}",
                    t["source"].as_str().unwrap_or("?"),
                    t["target"].as_str().unwrap_or("?"),
                    t["rows_inserted"],
                    t["rows_updated"],
                    t["rows_deleted"],
                    t["rows_untouched"],
                    t["rows_only_in_target"]
                );
                continue;
            }
            let kept = t["kept_table"]
                .as_str()
                .map(|k| format!(", replaced rows kept in {k}"))
                .unwrap_or_default();
            println!(
                "  {} -> {}: {} rows copied, {} inserted, {} skipped, {} replaced{kept}",
                t["source"].as_str().unwrap_or("?"),
                t["target"].as_str().unwrap_or("?"),
                t["rows_copied"],
                t["rows_inserted"],
                t["rows_skipped"],
                t["rows_replaced"]
            );
            for p in t["partitions"].as_array().into_iter().flatten() {
                println!(
                    "    partition {} -> {}: {} rows copied",
                    p["source"].as_str().unwrap_or("?"),
                    p["target"].as_str().unwrap_or("?"),
                    p["rows_copied"]
                );
            }
        }
        // Views, functions, triggers and the rest (reports stored before they were
        // migrated have none).
        for o in r["objects"].as_array().into_iter().flatten() {
            let what = if o["created"] == true {
                "created"
            } else {
                "not created"
            };
            let note = o["note"]
                .as_str()
                .filter(|n| !n.is_empty())
                .map(|n| format!(": {n}"))
                .unwrap_or_default();
            println!(
                "  {} {}: {what}{note}",
                o["kind"].as_str().unwrap_or("object").replace('_', " "),
                o["name"].as_str().unwrap_or("?"),
            );
        }
        for v in r["verification"].as_array().into_iter().flatten() {
            let table = v["target"].as_str().or(v["table"].as_str()).unwrap_or("?");
            if v["passed"] == true {
                println!("  verified {table}: ok");
            } else {
                println!(
                    "  verified {table}: FAILED: {} ({} rows in the source, {} in the target; {} only in the source, {} only in the target, {} changed)",
                    v["detail"].as_str().unwrap_or(""),
                    v["source_rows"],
                    v["target_rows"],
                    v["only_in_source"],
                    v["only_in_target"],
                    v["changed"]
                );
            }
        }
        for w in r["warnings"].as_array().into_iter().flatten() {
            println!("  warning: {}", w.as_str().unwrap_or(""));
        }
    }
}

async fn wait_end(client: &Client, id: &str, out: Output) -> anyhow::Result<TaskDoc> {
    let spinner = indicatif::ProgressBar::new_spinner();
    if out != Output::Table {
        spinner.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    loop {
        let d: TaskDoc = client.get(&format!("/migrations/{}", enc(id))).await?;
        spinner.set_message(format!("{}: {}", d.state, overall(&d)));
        spinner.tick();
        if d.state != TaskState::Migrating {
            spinner.finish_and_clear();
            return Ok(d);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
