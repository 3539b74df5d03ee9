//! A stand-in for `lifeboat wal-push` / `lifeboat wal-fetch`, used by the integration
//! tests as PostgreSQL's `archive_command` and `restore_command`:
//!
//! ```text
//! wal_command wal-push  --repo-config FILE --instance ID PATH
//! wal_command wal-fetch --repo-config FILE --instance ID NAME DEST
//! ```

use std::path::Path;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome = match args.as_slice() {
        [cmd, flag_c, config, flag_i, instance, rest @ ..]
            if flag_c == "--repo-config" && flag_i == "--instance" =>
        {
            match (cmd.as_str(), rest) {
                ("wal-push", [path]) => {
                    lifeboat_backup::wal_push_command(Path::new(config), instance, Path::new(path))
                }
                ("wal-fetch", [name, dest]) => lifeboat_backup::wal_fetch_command(
                    Path::new(config),
                    instance,
                    name,
                    Path::new(dest),
                ),
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

fn usage() -> lifeboat_backup::CommandOutcome {
    lifeboat_backup::CommandOutcome {
        code: 2,
        message: "usage: wal_command wal-push|wal-fetch --repo-config FILE --instance ID ARGS"
            .into(),
    }
}
