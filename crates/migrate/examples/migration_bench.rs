//! Runs one migration task between two clusters for `bench/migration/run.sh` and prints
//! a JSON summary (seconds, rows, bytes, verification).
//!
//! ```text
//! migration_bench --source HOST:PORT --target HOST:PORT --user USER \
//!     --object DB.SCHEMA.TABLE[=NEW] [--conflict MODE] [--verify] [--task-id ID]
//! ```
//!
//! HOST may be a socket directory (an absolute path), as for libpq.

use std::collections::HashSet;
use std::process::ExitCode;
use std::time::Instant;

use lifeboat_migrate::migration::{
    CancellationToken, MigrationSpec, MigrationTask, ObjectMapping, ProgressEvent, run,
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

/// A current-thread runtime: the copy is one stream per table, and keeping the two
/// connections and the forwarding loop on one thread saves the cross-thread wake-ups
/// of a work-stealing runtime (measurable CPU on a busy machine).
fn main() -> ExitCode {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(migrate()),
        Err(e) => {
            eprintln!("migration_bench: cannot start the runtime: {e}");
            ExitCode::FAILURE
        }
    }
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
    let copy_done = std::sync::Mutex::new(None);
    let progress = |e: ProgressEvent| {
        if let ProgressEvent::TableFinished { .. } = e
            && let Ok(mut t) = copy_done.lock()
        {
            *t = Some(started.elapsed().as_secs_f64());
        }
    };
    let result = run(&task, &HashSet::new(), &progress, &CancellationToken::new()).await;
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
