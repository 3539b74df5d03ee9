//! `lifeboat diff`: which rows differ between two instances.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args as ClapArgs;
use lifeboat_api::diff::{DiffBody, DiffLine, DiffReport, DiffSide, RowDiffKind, RowValues};

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
) -> anyhow::Result<DiffSide> {
    let password = match (account, password_file) {
        (Some(_), Some(f)) => Some(read_password_file(f)?),
        _ => None,
    };
    Ok(DiffSide {
        instance: instance.to_string(),
        account: account.clone(),
        password,
    })
}

pub async fn run(client: &Client, out: Output, a: DiffArgs) -> anyhow::Result<ExitCode> {
    if a.tables.is_empty() && a.schemas.is_empty() {
        anyhow::bail!(
            "no table to compare; hint: name tables with --table SCHEMA.TABLE or a schema with --schema SCHEMA"
        );
    }
    let body = DiffBody {
        source: side(&a.source, &a.source_account, &a.source_password_file)?,
        target: side(&a.target, &a.target_account, &a.target_password_file)?,
        database: Some(a.database.clone()),
        tables: a.tables.clone(),
        schemas: a.schemas.clone(),
        limit: Some(a.limit),
    };
    if out == Output::Json {
        // Every differing row, as the server finds them: one JSON object a line, passed
        // on as the server wrote it (values keep every digit PostgreSQL wrote).
        let mut failed = None;
        client
            .post_stream("/diff?format=ndjson", &body, |line| {
                if let Ok(DiffLine {
                    error: Some(error), ..
                }) = serde_json::from_slice(line)
                {
                    failed = Some(error);
                }
                let mut stdout = std::io::stdout().lock();
                stdout.write_all(line)?;
                stdout.write_all(b"\n")
            })
            .await?;
        if let Some(e) = failed {
            anyhow::bail!("{}; hint: {}", e.message, e.hint);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let report: DiffReport = client.post("/diff", &body).await?;
    print_report(&report);
    Ok(ExitCode::SUCCESS)
}

fn print_report(report: &DiffReport) {
    for missing in &report.missing_tables {
        println!("{}: missing on the {}", missing.table, missing.missing_on);
    }
    for t in &report.tables {
        let name = &t.table;
        let differences = t.schema_differences.len();
        if t.identical {
            println!("{name}: identical");
        } else if differences > 0 {
            let listed: Vec<String> = t.schema_differences.iter().map(|d| d.to_string()).collect();
            println!(
                "{name}: the tables' columns differ ({differences} differences): {}",
                listed.join("; ")
            );
        } else {
            println!(
                "{name}: {} rows only in source, {} only in target, {} changed",
                t.only_in_source, t.only_in_target, t.changed
            );
        }
        for w in &t.warnings {
            println!("  warning: {w}");
        }
        let rows: Vec<Vec<String>> = t
            .rows
            .iter()
            .map(|r| {
                vec![
                    kind_text(r.kind),
                    compact(r.key.as_ref()),
                    r.changed_columns.join(", "),
                    compact(r.source.as_ref()),
                    compact(r.target.as_ref()),
                ]
            })
            .collect();
        if !rows.is_empty() {
            super::output::table(
                &["DIFFERENCE", "KEY", "CHANGED COLUMNS", "SOURCE", "TARGET"],
                rows,
            );
            if t.rows_truncated {
                println!(
                    "  (more rows differ: raise --limit, or use --output json for all of them)"
                );
            }
        }
    }
}

fn kind_text(kind: RowDiffKind) -> String {
    match kind {
        RowDiffKind::OnlyInSource => "only in source",
        RowDiffKind::OnlyInTarget => "only in target",
        RowDiffKind::Changed => "changed",
    }
    .to_string()
}

/// Column values on one line as JSON, each value exactly as PostgreSQL wrote it,
/// shortened for a table cell.
fn compact(values: Option<&RowValues>) -> String {
    let Some(values) = values else {
        return "-".into();
    };
    let s = serde_json::to_string(values).unwrap_or_default();
    if s.chars().count() > 80 {
        format!("{}…", s.chars().take(79).collect::<String>())
    } else {
        s
    }
}
