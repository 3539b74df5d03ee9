//! Runs one migration task between two clusters for `bench/migration/run.sh` and prints
//! a JSON summary: seconds, rows, bytes, the first table's outcome, verification, and
//! `phases`, the seconds since the start at which each kind of progress event first
//! arrived, so the script can say where the time went.
//!
//! ```text
//! migration_bench --source HOST:PORT --target HOST:PORT --user USER \
//!     --object DB.SCHEMA.TABLE[=NEW] [--conflict MODE] [--verify] [--task-id ID] \
//!     [--delete-rows-only-in-target]
//! ```
//!
//! HOST may be a socket directory (an absolute path), as for libpq.
//!
//! The phases of one table, by conflict mode. Creating it: `started` (its transaction
//! began), `copying` (the first rows arrived), `building` (the rows are in, the primary
//! key is being built), `finished` (committed), `verifying` (the diff against the
//! source began). Under `repair` the diff that finds the differing rows runs between
//! `started` and `building`; from `building` to `finished` the differing source rows
//! are staged, the target's saved, and the UPDATE and INSERT run.

// Tests and benchmarks may panic on what they set up themselves.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashSet};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use lifeboat_migrate::migration::{
    CancellationToken, MigrationSpec, MigrationTask, ObjectMapping, ProgressEvent, spawn,
};

struct Args {
    source: tokio_postgres::Config,
    target: tokio_postgres::Config,
    spec: MigrationSpec,
}

fn config(endpoint: &str, user: &str) -> Result<tokio_postgres::Config, String> {
    let (host, port) = endpoint
        .rsplit_once(':')
        .ok_or_else(|| format!("'{endpoint}' is not HOST:PORT"))?;
    let port: u16 = port
        .parse()
        .map_err(|e| format!("port of '{endpoint}': {e}"))?;
    let mut c = tokio_postgres::Config::new();
    if host.starts_with('/') {
        c.host_path(host);
    } else {
        c.host(host);
    }
    c.port(port).user(user).dbname("postgres");
    Ok(c)
}

fn parse() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let (mut source, mut target, mut user) = (None, None, "postgres".to_string());
    let mut spec = MigrationSpec::new("bench", Vec::new());
    spec.verify = false;
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--source" => source = Some(value()?),
            "--target" => target = Some(value()?),
            "--user" => user = value()?,
            "--object" => spec
                .objects
                .push(ObjectMapping::parse(&value()?).map_err(|e| e.to_string())?),
            "--conflict" => {
                spec.conflict = value()?
                    .parse()
                    .map_err(|e: lifeboat_migrate::migration::MigrationError| e.to_string())?
            }
            "--task-id" => spec.task_id = value()?,
            "--parallelism" => spec.parallelism = value()?.parse().map_err(|e| format!("{e}"))?,
            "--verify" => spec.verify = true,
            "--delete-rows-only-in-target" => spec.delete_rows_only_in_target = true,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let source = config(&source.ok_or("--source is required")?, &user)?;
    let target = config(&target.ok_or("--target is required")?, &user)?;
    Ok(Args {
        source,
        target,
        spec,
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    migrate().await
}

async fn migrate() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("migration_bench: {e}");
            return ExitCode::from(2);
        }
    };
    let task = MigrationTask {
        spec: args.spec,
        source: args.source,
        target: args.target,
    };
    let started = Instant::now();
    // Seconds since the start at which each kind of event first arrived.
    let phases = Arc::new(Mutex::new(BTreeMap::<&'static str, f64>::new()));
    let seen = phases.clone();
    let progress = move |e: ProgressEvent| {
        let phase = match e {
            ProgressEvent::Planned { .. } => "planned",
            ProgressEvent::TableStarted { .. } => "started",
            ProgressEvent::TableCopying { .. } => "copying",
            ProgressEvent::TableChecking { .. } => "checking",
            ProgressEvent::TableBuilding { .. } => "building",
            ProgressEvent::TableFinished { .. } => "finished",
            ProgressEvent::ForeignKeys { .. } => "foreign_keys",
            ProgressEvent::Verifying { .. } => "verifying",
        };
        if let Ok(mut p) = seen.lock() {
            p.entry(phase)
                .or_insert_with(|| started.elapsed().as_secs_f64());
        }
    };
    // As the server runs it: on a thread of its own (see `spawn`).
    let result = spawn(
        task,
        HashSet::new(),
        Arc::new(progress),
        CancellationToken::new(),
    )
    .await;
    match result {
        Ok(report) => {
            let phases = phases.lock().map(|p| p.clone()).unwrap_or_default();
            let table = report.tables.first().map(|t| {
                serde_json::json!({
                    "rows_inserted": t.rows_inserted,
                    "rows_updated": t.rows_updated,
                    "rows_replaced": t.rows_replaced,
                    "rows_deleted": t.rows_deleted,
                    "rows_only_in_target": t.rows_only_in_target,
                    "rows_untouched": t.rows_untouched,
                    "kept_table": t.kept_table,
                })
            });
            let details: Vec<&str> = report
                .verification
                .iter()
                .map(|v| v.detail.as_str())
                .collect();
            let summary = serde_json::json!({
                "seconds": started.elapsed().as_secs_f64(),
                "tables_done_at": phases.get("finished"),
                "phases": phases,
                "rows": report.tables.iter().map(|t| t.rows_copied).sum::<u64>(),
                "bytes": report.tables.iter().map(|t| t.bytes_copied).sum::<u64>(),
                "table": table,
                "verified": report.verification.iter().all(|v| v.passed),
                "verification": report.verification.len(),
                "verification_detail": details,
            });
            println!("{summary}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("migration failed: {e}\nhint: {}", e.hint());
            ExitCode::FAILURE
        }
    }
}
