//! Runs the table diff between two PostgreSQL servers given by connection strings and
//! prints a one-line JSON summary; used by `bench/diff/run.sh`.
//!
//! ```text
//! diff_bench --source 'host=... dbname=...' --target '...' --table public.t[=public.u]...
//!            [--limit N] [--output FILE] [--rows-per-bucket N]
//! ```
//! Every differing row goes through the sink (and is counted) as it would for
//! `--output json`, so the measured memory includes streaming them.

// Tests and benchmarks may panic on what they set up themselves.
#![allow(clippy::unwrap_used)]

use std::time::Instant;

use lifeboat_migrate::diff::{DiffRequest, DiffRow, TablePair, diff_tables};

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("diff_bench: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut source = None;
    let mut target = None;
    let mut request = DiffRequest::default();
    let mut output = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--source" => source = Some(value()?),
            "--target" => target = Some(value()?),
            "--table" => request.tables.push(TablePair::parse(&value()?)?),
            "--limit" => request.limit = value()?.parse()?,
            "--output" => output = Some(value()?),
            "--rows-per-bucket" => request.tuning.rows_per_bucket = value()?.parse()?,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let connect = |conn: Option<String>, what: &'static str| async move {
        let conn = conn.ok_or(format!("--{what} is required"))?;
        let (client, connection) = tokio_postgres::connect(&conn, tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        Ok::<_, Box<dyn std::error::Error>>(client)
    };
    let (src, dst) = (
        connect(source, "source").await?,
        connect(target, "target").await?,
    );

    let started = Instant::now();
    let mut streamed = 0u64;
    let mut sink = |_: &str, _: &DiffRow| {
        streamed += 1;
        Ok(())
    };
    let report = diff_tables(&src, &dst, &request, &mut sink).await?;
    let seconds = started.elapsed().as_secs_f64();
    let tables: Vec<_> = report
        .tables
        .iter()
        .map(|t| {
            serde_json::json!({
                "table": t.table,
                "only_in_source": t.only_in_source,
                "only_in_target": t.only_in_target,
                "changed": t.changed,
            })
        })
        .collect();
    let summary =
        serde_json::json!({"seconds": seconds, "streamed_rows": streamed, "tables": tables});
    match output {
        Some(path) => std::fs::write(path, summary.to_string())?,
        None => println!("{summary}"),
    }
    Ok(())
}
