//! Takes one base backup of a running cluster over the replication protocol, as
//! Lifeboat backs up an adopted instance, and prints its figures as JSON; used by
//! `bench/adoption/run.sh`.
//!
//! ```text
//! bench_replication_backup --host HOST --port PORT --account ROLE --password-file FILE
//!     --server-version-num N --repo-config FILE --instance ID [--pg-basebackup PATH]
//!     [--parallelism N] [--level L]
//! ```
//! `ROLE` has REPLICATION and logs in over TCP with the password on the first line of
//! `FILE`; `N` is the cluster's `server_version_num`. Without `--pg-basebackup` the
//! newest installed PostgreSQL's is used.

// Tests and benchmarks may panic on what they set up themselves.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::time::Instant;

use lifeboat_backup::{
    BackupOptions, ReplicationSource, Repository, RepositoryConfig, run_replication_backup,
};
use lifeboat_postgres::PgBinaries;

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("bench_replication_backup: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (mut host, mut port, mut account, mut password_file) = (None, None, None, None);
    let (mut version, mut config, mut instance, mut pg_basebackup) = (None, None, None, None);
    let mut options = BackupOptions::default();
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--host" => host = Some(value),
            "--port" => port = Some(value.parse::<u16>()?),
            "--account" => account = Some(value),
            "--password-file" => password_file = Some(PathBuf::from(value)),
            "--server-version-num" => version = Some(value.parse::<i32>()?),
            "--repo-config" => config = Some(PathBuf::from(value)),
            "--instance" => instance = Some(value),
            "--pg-basebackup" => pg_basebackup = Some(PathBuf::from(value)),
            "--parallelism" => options.parallelism = value.parse()?,
            "--level" => options.compression_level = value.parse()?,
            other => return Err(format!("unknown flag {other}").into()),
        }
    }
    let (
        Some(host),
        Some(port),
        Some(account),
        Some(password_file),
        Some(version),
        Some(config),
        Some(instance),
    ) = (
        host,
        port,
        account,
        password_file,
        version,
        config,
        instance,
    )
    else {
        return Err(
            "--host, --port, --account, --password-file, --server-version-num, \
                    --repo-config and --instance are required"
                .into(),
        );
    };
    let password = std::fs::read_to_string(&password_file)?
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    let pg_basebackup = match pg_basebackup {
        Some(p) => p,
        None => PgBinaries::discover(None)?.path("pg_basebackup"),
    };
    let source = ReplicationSource {
        pg_basebackup,
        host,
        port,
        account,
        password,
        server_version_num: version,
        wal_owner: None,
    };
    let repo = Repository::open(&RepositoryConfig::load(&config)?)?;
    let started = Instant::now();
    let m = run_replication_backup(&repo, &instance, &source, &options, &|_| {}).await?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({
            "id": m.id,
            "seconds": secs,
            "logical_size": m.logical_size,
            "stored_size": m.stored_size,
            "stored_objects": m.stored_objects,
            "files": m.files.len(),
        })
    );
    Ok(())
}
