//! Restores the newest base backup of an instance into a directory (files only, no
//! recovery) and prints the time as JSON; used by `bench/backup/run.sh`.
//!
//! ```text
//! bench_restore --repo-config FILE --instance ID --dest DIR [--parallelism N]
//! ```

// Tests and benchmarks may panic on what they set up themselves.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::time::Instant;

use lifeboat_backup::restore::RestoreOptions;
use lifeboat_backup::{Repository, RepositoryConfig, list_backups, restore};

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("bench_restore: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (mut config, mut instance, mut dest) = (None, None, None);
    let mut options = RestoreOptions::default();
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--repo-config" => config = Some(PathBuf::from(value)),
            "--instance" => instance = Some(value),
            "--dest" => dest = Some(PathBuf::from(value)),
            "--parallelism" => options.parallelism = value.parse()?,
            other => return Err(format!("unknown flag {other}").into()),
        }
    }
    let (Some(config), Some(instance), Some(dest)) = (config, instance, dest) else {
        return Err("--repo-config, --instance and --dest are required".into());
    };
    let repo = Repository::open(&RepositoryConfig::load(&config)?)?;
    let newest = list_backups(&repo, &instance)
        .await?
        .pop()
        .ok_or("the instance has no backup")?;
    let started = Instant::now();
    let m = restore(&repo, &instance, &newest.id, &dest, &options, &|_| {}).await?;
    println!(
        "{}",
        serde_json::json!({
            "id": m.id,
            "seconds": started.elapsed().as_secs_f64(),
            "logical_size": m.logical_size,
        })
    );
    Ok(())
}
