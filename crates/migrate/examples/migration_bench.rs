//! Runs one migration task between two clusters for `bench/migration/run.sh` and prints
//! a JSON summary (seconds, rows, bytes, verification).
//!
//! ```text
//! migration_bench --source HOST:PORT --target HOST:PORT --user USER \
//!     --object DB.SCHEMA.TABLE[=NEW] [--conflict MODE] [--verify] [--task-id ID]
//! ```
//!
//! HOST may be a socket directory (an absolute path), as for libpq.

// Tests and benchmarks may panic on what they set up themselves.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
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
    let copy_done = Arc::new(Mutex::new(None));
    let done = copy_done.clone();
    let progress = move |e: ProgressEvent| {
        if let ProgressEvent::TableFinished { .. } = e
            && let Ok(mut t) = done.lock()
        {
            *t = Some(started.elapsed().as_secs_f64());
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
            let summary = serde_json::json!({
                "seconds": started.elapsed().as_secs_f64(),
                "tables_done_at": copy_done.lock().ok().and_then(|t| *t),
                "rows": report.tables.iter().map(|t| t.rows_copied).sum::<u64>(),
                "bytes": report.tables.iter().map(|t| t.bytes_copied).sum::<u64>(),
                "verified": report.verification.iter().all(|v| v.passed),
                "verification": report.verification.len(),
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
