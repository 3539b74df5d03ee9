//! Lifeboat's control plane: `lifeboat serve`.
//!
//! The server owns the metadata store and every cluster of every region, answers the
//! HTTP API, and runs the background work. On start it reconciles the clusters on disk
//! with the store (see [`reconcile`]), so a crash at any point is finished or undone.
//!
//! ```text
//! <data dir>/                 mode 0711: the OS user of the clusters may pass, not list
//!   lifeboat.db               metadata store (SQLite, mode 0600)
//!   api-token                 the API token (mode 0600)
//!   secret-key                seals the passwords migration tasks keep (mode 0600)
//!   server-address            the URL the server listens on, for the CLI
//!   bin/lifeboat              the binary archive_command and restore_command run
//!   regions/<region>/repository.toml   the region's repository, for those commands
//!   regions/<region>/repository/       a local backup repository (lifeboat-backup)
//!   regions/<region>/instances/<instance id>/   one cluster (see lifeboat-postgres)
//! ```
//!
//! # Layout
//!
//! ```text
//! http ──▶ control ──▶ lifeboat_store (persistence), lifeboat_postgres, lifeboat_backup,
//!  │         │         lifeboat_migrate (the work)
//!  │         └──▶ lifeboat_domain (states, targets, names)
//!  └──▶ lifeboat_api (wire types, error codes)
//! ```
//!
//! - [`http`]: the JSON API ([`http::api`], with its OpenAPI document), the web console
//!   ([`http::console`]), the token check, and the one mapping of errors to statuses.
//!   Thin: extract, call [`control`], render.
//! - [`control`]: the orchestration, without HTTP: instances, backups, temporary
//!   instances, migration tasks, diff, the start-up repair, the worker threads.
//! - [`credentials`]: the API token, the console's admin password, the key that seals
//!   stored passwords.
//! - [`config`]: the TOML configuration and its defaults.

pub mod config;
pub mod control;
pub mod credentials;
pub mod http;

use std::future::Future;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use lifeboat_store::Store;

pub use config::Config;
use control::{Control, backups, reconcile, temporary};

/// Keeps the process's memory near what it uses. Backups, restores and WAL fetches
/// allocate and free 8 MiB chunks and 16 MiB segments on many threads. After such a
/// buffer is freed, glibc raises its mmap threshold, and later buffers come from
/// per-thread arenas that keep the memory: the server's RSS grew past 300 MB over a
/// base backup and a few temporary instances. With a fixed threshold every buffer of
/// 1 MiB or more is its own mapping, returned to the system when freed (measured: peak
/// 72 MB, 25 MB after). Call it first thing, before any thread starts.
pub fn bound_allocator_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes a setting of the allocator; it is called before any
    // other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

/// The file where the server writes the URL it listens on.
pub const ADDRESS_FILE: &str = "server-address";

/// What `lifeboat serve` was given.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub config_path: Option<PathBuf>,
    pub data_dir: PathBuf,
    /// Overrides `[server] listen`.
    pub listen: Option<SocketAddr>,
}

/// Runs the server until `shutdown` completes. Clusters keep running when the server
/// stops: the control plane can be restarted without an outage of the databases.
pub async fn serve(
    opts: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // Nothing the server writes is for other users: files 0600, directories 0700
    // unless made passable below for the clusters' OS user.
    // SAFETY: umask only changes the process's file mode creation mask.
    unsafe {
        libc::umask(0o077);
    }
    let config = Config::load(opts.config_path.as_deref())?;
    // Clusters run as this user; the directories down to theirs are shared with its
    // group only. Unknown (no such user), nothing is shared: the binaries check at
    // start says what to do.
    let clusters_user =
        lifeboat_postgres::OsUser::for_clusters(config.postgres.os_user.as_deref()).ok();
    let data_dir = prepare_data_dir(&opts.data_dir, clusters_user.as_ref())?;
    let store = Store::open(&data_dir.join("lifeboat.db"))
        .with_context(|| format!("cannot open the metadata store in {}", data_dir.display()))?;
    restrict(&data_dir.join("lifeboat.db"), 0o600)?;
    let (token, created) = credentials::load_or_create_token(&data_dir)?;
    for region in &config.regions {
        let dir = region.instances_dir(&data_dir);
        std::fs::create_dir_all(&dir).with_context(|| {
            format!(
                "cannot create the data root of region '{}' ({}); check the region's data_root",
                region.name,
                dir.display()
            )
        })?;
        // The clusters' OS user passes through to its instances' directories and to
        // the repository (archive_command), without listing or reading anything.
        let root = region.data_root(&data_dir);
        let top = if root.starts_with(&data_dir) {
            data_dir.as_path()
        } else {
            root.as_path()
        };
        for d in dir
            .ancestors()
            .take_while(|d| d.starts_with(top) && *d != data_dir)
        {
            share(d, clusters_user.as_ref())?;
        }
        privacy::tighten(&root, &backups::lifeboat_binary(&data_dir));
    }
    privacy::tighten(&data_dir, &backups::lifeboat_binary(&data_dir));

    let listen = opts.listen.unwrap_or(config.server.listen);
    let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| {
        format!("cannot listen on {listen}; another program (or another Lifeboat) uses it: pass --listen ADDR or set [server] listen")
    })?;
    let bound = listener.local_addr()?;
    let url = format!("http://{bound}");
    write_address(&data_dir, &url)?;

    let secrets = credentials::SecretBox::load_or_create(&data_dir)?;
    let state = Arc::new(Control::new(
        config,
        data_dir.clone(),
        store,
        token,
        secrets,
    ));
    reconcile::before_serving(&state)?;
    backups::prepare(&state).await?;
    let found = state.installations(|_| false);
    for why in found.refused() {
        tracing::warn!(reason = %why, "a PostgreSQL installation is not used");
    }
    match state.pg_env() {
        Ok(env) => {
            tracing::info!(majors = ?found.majors(), default = %env.bins.version, bin_dir = %env.bins.bin_dir.display(), os_user = %env.user.name, "PostgreSQL found")
        }
        Err(e) => {
            tracing::warn!(error = %e, hint = %e.hint(), "PostgreSQL is not usable yet; instance commands will fail until it is")
        }
    }
    tracing::info!(%url, data_dir = %data_dir.display(), "Lifeboat is listening");
    let token_path = data_dir.join(credentials::TOKEN_FILE);
    if created {
        eprintln!(
            "Created the API token in {} (mode 0600).",
            token_path.display()
        );
    }
    eprintln!(
        "Lifeboat listens on {url}. Open the console at {url}/console/ and sign in with the token in {token}.\nUse the CLI from another shell with:\n  export LIFEBOAT_DATA_DIR={}\n  lifeboat instance list\nor send `Authorization: Bearer $(cat {token})` to {url}/api/v1/...",
        data_dir.display(),
        token = token_path.display()
    );

    let workers = state.clone();
    tokio::spawn(async move {
        reconcile::after_start(workers.clone()).await;
        backups::stream::start_all(&workers);
        tokio::spawn(temporary::reaper(workers.clone()));
        tokio::spawn(control::events::names::watcher(workers.clone()));
        backups::schedule::scheduler(workers).await;
    });
    axum::serve(listener, http::app(state))
        .with_graceful_shutdown(shutdown)
        .await
        .context("the HTTP server failed")?;
    tracing::info!("Lifeboat stopped; instances keep running");
    Ok(())
}

/// Creates the data directory if needed and checks that it is usable; returns it as an
/// absolute path (clusters and their archive command are given absolute paths).
fn prepare_data_dir(
    dir: &Path,
    clusters_user: Option<&lifeboat_postgres::OsUser>,
) -> anyhow::Result<PathBuf> {
    let hint = "choose a writable directory with --data-dir or LIFEBOAT_DATA_DIR";
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the data directory {}; {hint}", dir.display()))?;
    let dir = dir
        .canonicalize()
        .with_context(|| format!("cannot resolve the data directory {}", dir.display()))?;
    let probe = dir.join(".write-test");
    std::fs::write(&probe, b"").with_context(|| {
        format!(
            "the data directory {} is not writable; {hint}",
            dir.display()
        )
    })?;
    let _ = std::fs::remove_file(&probe);
    // Clusters run as another OS user and must pass through to their own directories.
    share(&dir, clusters_user)?;
    Ok(dir)
}

mod privacy;

/// Lets the clusters' OS user pass through `dir`, and nobody else.
fn share(dir: &Path, clusters_user: Option<&lifeboat_postgres::OsUser>) -> anyhow::Result<()> {
    match clusters_user {
        Some(u) => u
            .share_dir(dir)
            .with_context(|| format!("cannot share {} with OS user {}", dir.display(), u.name)),
        None => restrict(dir, 0o700),
    }
}

fn restrict(path: &Path, mode: u32) -> anyhow::Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot set the mode of {}", path.display()))
}

fn write_address(data_dir: &Path, url: &str) -> anyhow::Result<()> {
    let path = data_dir.join(ADDRESS_FILE);
    let tmp = data_dir.join(".server-address.tmp");
    std::fs::write(&tmp, format!("{url}\n"))
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))
}
