//! Takes one base backup of a running cluster and prints its figures as JSON; used by
//! `bench/backup/run.sh`.
//!
//! ```text
//! bench_backup --dir INSTANCE_DIR --port PORT --repo-config FILE --instance ID [--parallelism N] [--level L]
//! ```
//! `INSTANCE_DIR` holds `data/` and the cluster's Unix socket, as Lifeboat lays it out.

// Tests and benchmarks may panic on what they set up themselves.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::time::Instant;

use lifeboat_backup::{BackupOptions, Repository, RepositoryConfig, run_backup};
use lifeboat_postgres::{Cluster, OsUser, PgBinaries};

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("bench_backup: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (mut dir, mut port, mut config, mut instance) = (None, None, None, None);
    let mut options = BackupOptions::default();
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--dir" => dir = Some(PathBuf::from(value)),
            "--port" => port = Some(value.parse::<u16>()?),
            "--repo-config" => config = Some(PathBuf::from(value)),
            "--instance" => instance = Some(value),
            "--parallelism" => options.parallelism = value.parse()?,
            "--level" => options.compression_level = value.parse()?,
            other => return Err(format!("unknown flag {other}").into()),
        }
    }
    let (Some(dir), Some(port), Some(config), Some(instance)) = (dir, port, config, instance)
    else {
        return Err("--dir, --port, --repo-config and --instance are required".into());
    };
    let cluster = Cluster::new(
        dir,
        port,
        PgBinaries::discover(None)?,
        OsUser::for_clusters(None)?,
    );
    let repo = Repository::open(&RepositoryConfig::load(&config)?)?;
    let started = Instant::now();
    let m = run_backup(&repo, &instance, &cluster, &options, &|_| {}).await?;
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
