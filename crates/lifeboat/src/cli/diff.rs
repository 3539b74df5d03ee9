//! `lifeboat diff`: which rows differ between two instances.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args as ClapArgs;
use serde_json::{Value, json};

use super::Output;
use super::client::Client;
use super::read_password_file;

#[derive(Debug, ClapArgs)]
pub struct DiffArgs {
    /// The instance holding the data you trust (usually the temporary instance).
    #[arg(long)]
    source: String,
    /// The instance to compare with (usually its master).
    #[arg(long)]
    target: String,
    /// SCHEMA.TABLE, or SCHEMA.TABLE=SCHEMA.TABLE when the target's table has another
    /// name. Repeat for several tables.
    #[arg(long = "table")]
    tables: Vec<String>,
    /// Every table of SCHEMA (SCHEMA=SCHEMA for another target schema).
    #[arg(long = "schema")]
    schemas: Vec<String>,
    /// The database on both instances.
    #[arg(long, default_value = "postgres")]
    database: String,
    /// Differing rows shown per table (--output json lists them all).
    #[arg(long, default_value_t = 100)]
    limit: usize,
    /// Read the source as this account instead of Lifeboat's management connection.
    #[arg(long, requires = "source_password_file")]
    source_account: Option<String>,
    #[arg(long)]
    source_password_file: Option<PathBuf>,
    /// Read the target as this account.
    #[arg(long, requires = "target_password_file")]
    target_account: Option<String>,
    #[arg(long)]
    target_password_file: Option<PathBuf>,
}

fn side(
    instance: &str,
    account: &Option<String>,
    password_file: &Option<PathBuf>,
) -> anyhow::Result<Value> {
    let password = match (account, password_file) {
        (Some(_), Some(f)) => Some(read_password_file(f)?),
        _ => None,
    };
    Ok(json!({ "instance": instance, "account": account, "password": password }))
}

pub async fn run(client: &Client, out: Output, a: DiffArgs) -> anyhow::Result<ExitCode> {
    if a.tables.is_empty() && a.schemas.is_empty() {
        anyhow::bail!(
            "no table to compare; hint: name tables with --table SCHEMA.TABLE or a schema with --schema SCHEMA"
        );
    }
    let body = json!({
        "source": side(&a.source, &a.source_account, &a.source_password_file)?,
        "target": side(&a.target, &a.target_account, &a.target_password_file)?,
        "database": a.database,
        "tables": a.tables,
        "schemas": a.schemas,
        "limit": a.limit,
    });
    if out == Output::Json {
        // Every differing row, as the server finds them: one JSON object a line.
        let mut failed = None;
        client
            .post_stream("/diff?format=ndjson", &body, |line| {
                if let Ok(v) = serde_json::from_slice::<Value>(line)
                    && let Some(e) = v.get("error")
                {
                    failed = Some(e.clone());
                }
                let mut stdout = std::io::stdout().lock();
                stdout.write_all(line)?;
                stdout.write_all(b"\n")
            })
            .await?;
        if let Some(e) = failed {
            anyhow::bail!(
                "{}; hint: {}",
                e["message"].as_str().unwrap_or("the diff failed"),
                e["hint"].as_str().unwrap_or("")
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let report: Value = client.post("/diff", &body).await?;
    print_report(&report);
    Ok(ExitCode::SUCCESS)
}

fn print_report(report: &Value) {
    for missing in report["missing_tables"].as_array().into_iter().flatten() {
        println!(
            "{}: missing on the {}",
            missing["table"].as_str().unwrap_or("?"),
            missing["missing_on"].as_str().unwrap_or("?")
        );
    }
    for t in report["tables"].as_array().into_iter().flatten() {
        let name = t["table"].as_str().unwrap_or("?");
        let (s, g, c) = (
            t["only_in_source"].as_u64().unwrap_or(0),
            t["only_in_target"].as_u64().unwrap_or(0),
            t["changed"].as_u64().unwrap_or(0),
        );
        let differences = t["schema_differences"]
            .as_array()
            .map(|d| d.len())
            .unwrap_or(0);
        if t["identical"] == true {
            println!("{name}: identical");
        } else if differences > 0 {
            println!(
                "{name}: the tables' columns differ ({differences} differences): {}",
                t["schema_differences"]
            );
        } else {
            println!("{name}: {s} rows only in source, {g} only in target, {c} changed");
        }
        for w in t["warnings"].as_array().into_iter().flatten() {
            println!("  warning: {}", w.as_str().unwrap_or(""));
        }
        let rows: Vec<Vec<String>> = t["rows"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                let key = if r["key"].is_null() {
                    "-".to_string()
                } else {
                    compact(&r["key"])
                };
                let changed = r["changed_columns"]
                    .as_array()
                    .map(|c| {
                        c.iter()
                            .filter_map(|x| x.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .unwrap_or_default();
                vec![
                    r["kind"].as_str().unwrap_or("").replace('_', " "),
                    key,
                    changed,
                    compact(&r["source"]),
                    compact(&r["target"]),
                ]
            })
            .collect();
        if !rows.is_empty() {
            super::output::table(
                &["DIFFERENCE", "KEY", "CHANGED COLUMNS", "SOURCE", "TARGET"],
                rows,
            );
            if t["rows_truncated"] == true {
                println!(
                    "  (more rows differ: raise --limit, or use --output json for all of them)"
                );
            }
        }
    }
}

/// A JSON value on one line, shortened for a table cell.
fn compact(v: &Value) -> String {
    if v.is_null() {
        return "-".into();
    }
    let s = v.to_string();
    if s.chars().count() > 80 {
        format!("{}…", s.chars().take(79).collect::<String>())
    } else {
        s
    }
}
