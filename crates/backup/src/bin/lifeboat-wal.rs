//! A minimal `archive_command`/`restore_command` program with the same arguments as
//! `lifeboat wal-push` / `lifeboat wal-fetch`. The integration tests and the benchmark
//! use it; Lifeboat itself runs the `lifeboat` binary, which calls the same functions.
//!
//! ```text
//! lifeboat-wal wal-push  --repo-config FILE --instance ID [--status-file FILE] PATH
//! lifeboat-wal wal-fetch --repo-config FILE --instance ID [--prefetch-dir DIR --prefetch N] NAME DEST
//! ```

use std::path::{Path, PathBuf};

use lifeboat_backup::CommandOutcome;
use lifeboat_backup::prefetch::Prefetch;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome = match args.as_slice() {
        [cmd, flag_c, config, flag_i, instance, rest @ ..]
            if flag_c == "--repo-config" && flag_i == "--instance" =>
        {
            let config = Path::new(config);
            match (cmd.as_str(), rest) {
                ("wal-push", [path]) => {
                    lifeboat_backup::wal_push_command(config, instance, Path::new(path), None)
                }
                ("wal-push", [flag_s, status, path]) if flag_s == "--status-file" => {
                    lifeboat_backup::wal_push_command(
                        config,
                        instance,
                        Path::new(path),
                        Some(Path::new(status)),
                    )
                }
                ("wal-fetch", [name, dest]) => lifeboat_backup::wal_fetch_command(
                    config,
                    instance,
                    name,
                    Path::new(dest),
                    None,
                ),
                ("wal-fetch", [flag_d, dir, flag_n, ahead, name, dest])
                    if flag_d == "--prefetch-dir" && flag_n == "--prefetch" =>
                {
                    match ahead.parse() {
                        Ok(ahead) => {
                            let prefetch = Prefetch {
                                dir: PathBuf::from(dir),
                                ahead,
                            };
                            lifeboat_backup::wal_fetch_command(
                                config,
                                instance,
                                name,
                                Path::new(dest),
                                Some(&prefetch),
                            )
                        }
                        Err(_) => usage(),
                    }
                }
                _ => usage(),
            }
        }
        _ => usage(),
    };
    if !outcome.message.is_empty() {
        eprintln!("{}", outcome.message);
    }
    std::process::exit(outcome.code);
}

fn usage() -> CommandOutcome {
    CommandOutcome {
        code: 2,
        message: "usage: lifeboat-wal wal-push|wal-fetch --repo-config FILE --instance ID [--prefetch-dir DIR --prefetch N] ARGS".into(),
    }
}
