//! `lifeboat`: the server (`lifeboat serve`) and the client commands that talk to it.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    lifeboat_server::bound_allocator_memory();
    let args = cli::Args::parse();
    if let Some(code) = cli::run_wal_command(&args) {
        return code;
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let output = args.output;
    match runtime.block_on(cli::run(args)) {
        Ok(code) => code,
        Err(e) => {
            cli::report_error(output, &e);
            ExitCode::FAILURE
        }
    }
}
