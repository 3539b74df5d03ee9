//! The command line: `lifeboat serve` and the client commands.
//!
//! Client commands find the server and its token from `--server`/`LIFEBOAT_SERVER` and
//! `--token`/`LIFEBOAT_TOKEN`, or else from the data directory (`--data-dir`,
//! `LIFEBOAT_DATA_DIR`, default `./.lifeboat`), where the server writes both.

mod access;
mod backup;
mod client;
mod diff;
mod instance;
mod migration;
mod output;
mod repository;
mod temp;
mod zone;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use client::{ApiFailure, Client};

/// Prints an error as one line (`error: what failed; hint: what to do`), or as the
/// API's `{code, message, hint}` object on stderr with `--output json`.
pub fn report_error(output: Output, e: &anyhow::Error) {
    if output == Output::Json {
        let body = match e.downcast_ref::<ApiFailure>() {
            Some(f) => serde_json::json!({ "code": f.code, "message": f.message, "hint": f.hint }),
            None => {
                serde_json::json!({ "code": "client_error", "message": client::one_line(e), "hint": "" })
            }
        };
        eprintln!("{body}");
    } else {
        eprintln!("error: {}", client::one_line(e));
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "lifeboat",
    version,
    about = "Backups, temporary instances and data migration for PostgreSQL"
)]
pub struct Args {
    /// The data directory: the server keeps its state here; clients read the server's
    /// address and token from it.
    #[arg(
        long,
        global = true,
        env = "LIFEBOAT_DATA_DIR",
        default_value = ".lifeboat"
    )]
    data_dir: PathBuf,
    /// The server's URL (default: read from <data dir>/server-address).
    #[arg(long, global = true, env = "LIFEBOAT_SERVER")]
    server: Option<String>,
    /// The API token (default: read from <data dir>/api-token).
    #[arg(long, global = true, env = "LIFEBOAT_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Output format of client commands.
    #[arg(long, global = true, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the control plane: API, console and background workers.
    Serve {
        /// A TOML configuration file (see the README); embedded defaults otherwise.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Address to listen on, overriding [server] listen.
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Manage instances.
    #[command(subcommand)]
    Instance(instance::InstanceCommand),
    /// Manage the accounts of an instance.
    #[command(subcommand)]
    Account(access::AccountCommand),
    /// Manage which addresses may connect to an instance.
    #[command(subcommand)]
    Whitelist(access::WhitelistCommand),
    /// Base backups and the restorable window of a master.
    #[command(subcommand)]
    Backup(backup::BackupCommand),
    /// What the regions' backup repositories hold, including masters this server does
    /// not know.
    #[command(subcommand)]
    Repository(repository::RepositoryCommand),
    /// Data migration tasks: copy chosen objects between instances.
    #[command(subcommand)]
    Migration(migration::MigrationCommand),
    /// Compare tables of two instances and show the rows that differ.
    Diff(diff::DiffArgs),
    /// Temporary instances: a master restored to a point in time.
    #[command(subcommand)]
    Temp(temp::TempCommand),
    /// Print the hash of a console admin password, for `[console] admin_password_hash`.
    HashPassword {
        /// A file with the password on its first line (8 to 128 characters).
        #[arg(long)]
        password_file: PathBuf,
    },
    /// Archive one WAL file into the backup repository (PostgreSQL's archive_command).
    WalPush {
        #[arg(long)]
        repo_config: PathBuf,
        #[arg(long)]
        instance: String,
        /// Where to record the outcome of the last push.
        #[arg(long)]
        status_file: Option<PathBuf>,
        /// The WAL file (%p).
        path: PathBuf,
    },
    /// Fetch one WAL file from the backup repository (PostgreSQL's restore_command).
    WalFetch {
        #[arg(long)]
        repo_config: PathBuf,
        #[arg(long)]
        instance: String,
        /// Fetch this many segments at once into --prefetch-dir on a miss.
        #[arg(long, requires = "prefetch_dir")]
        prefetch: Option<usize>,
        /// Where segments fetched ahead of replay wait.
        #[arg(long)]
        prefetch_dir: Option<PathBuf>,
        /// The WAL file name (%f).
        name: String,
        /// Where to write it (%p).
        dest: PathBuf,
    },
}

/// Runs `wal-push` and `wal-fetch`, which PostgreSQL calls for every WAL file, without
/// the full runtime; `None` for every other command.
pub fn run_wal_command(args: &Args) -> Option<ExitCode> {
    let outcome = match &args.command {
        Command::WalPush {
            repo_config,
            instance,
            path,
            status_file,
        } => lifeboat_backup::wal_push_command(repo_config, instance, path, status_file.as_deref()),
        Command::WalFetch {
            repo_config,
            instance,
            name,
            dest,
            prefetch,
            prefetch_dir,
        } => {
            let ahead = prefetch_dir
                .as_ref()
                .map(|dir| lifeboat_backup::prefetch::Prefetch {
                    dir: dir.clone(),
                    ahead: prefetch.unwrap_or(8),
                });
            lifeboat_backup::wal_fetch_command(repo_config, instance, name, dest, ahead.as_ref())
        }
        _ => return None,
    };
    if !outcome.message.is_empty() {
        eprintln!("{}", outcome.message);
    }
    Some(ExitCode::from(u8::try_from(outcome.code).unwrap_or(1)))
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        Command::Serve { config, listen } => {
            serve(config, args.data_dir, listen).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::HashPassword { password_file } => {
            let password = read_password_file(&password_file)?;
            let hash = lifeboat_server::credentials::admin_password::hash(&password)?;
            if args.output == Output::Json {
                println!("{}", serde_json::json!({ "admin_password_hash": hash }));
            } else {
                println!("{hash}");
            }
            Ok(ExitCode::SUCCESS)
        }
        command => {
            let client = Client::new(&args.data_dir, args.server, args.token)?;
            match command {
                Command::Instance(c) => return instance::run(&client, args.output, c).await,
                Command::Account(c) => access::run_account(&client, args.output, c).await?,
                Command::Whitelist(c) => access::run_whitelist(&client, args.output, c).await?,
                Command::Backup(c) => return backup::run(&client, args.output, c).await,
                Command::Repository(c) => {
                    return repository::run(&client, args.output, c).await;
                }
                Command::Temp(c) => return temp::run(&client, args.output, c).await,
                Command::Diff(a) => return diff::run(&client, args.output, a).await,
                Command::Migration(c) => return migration::run(&client, args.output, c).await,
                Command::Serve { .. }
                | Command::HashPassword { .. }
                | Command::WalPush { .. }
                | Command::WalFetch { .. } => {
                    unreachable!("handled before the client is built")
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn serve(
    config: Option<PathBuf>,
    data_dir: PathBuf,
    listen: Option<SocketAddr>,
) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LIFEBOAT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let opts = lifeboat_server::ServeOptions {
        config_path: config,
        data_dir,
        listen,
    };
    lifeboat_server::serve(opts, shutdown_signal()).await
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

/// Reads a password file for the API; the password goes to the server, never to output.
fn read_password_file(path: &std::path::Path) -> anyhow::Result<String> {
    let bytes = std::fs::read(path).map_err(|e| {
        anyhow::anyhow!("cannot read the password file {}: {e}; hint: give a readable file with the password on its first line", path.display())
    })?;
    lifeboat_domain::names::password_from_file_content(&bytes).map_err(|e| {
        anyhow::anyhow!(
            "password file {}: {}; hint: {}",
            path.display(),
            e.message,
            e.hint
        )
    })
}
