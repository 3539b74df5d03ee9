//! A minimal `archive_command`/`restore_command` program with the same arguments as
//! `lifeboat wal-push` / `lifeboat wal-fetch`. The integration tests and the benchmark
//! use it; Lifeboat itself runs the `lifeboat` binary, which calls the same functions.
//!
//! ```text
//! lifeboat-wal wal-push  --repo-config FILE --instance ID PATH
//! lifeboat-wal wal-fetch --repo-config FILE --instance ID NAME DEST
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
        message: "usage: lifeboat-wal wal-push|wal-fetch --repo-config FILE --instance ID ARGS"
            .into(),
    }
}
