//! Moving a stopped cluster to a newer major with PostgreSQL's own `pg_upgrade`, for a
//! clone asked for with a newer engine version than its backups'.
//!
//! The new data directory is made beside the old one (`data-upgraded`, by initdb with
//! the options every Lifeboat cluster has, which `pg_upgrade` needs to match), the
//! files are hard-linked (`--link`: seconds, whatever the size), and only once
//! `pg_upgrade` succeeded does the new directory replace the old. Both clusters run
//! on the instance's own port and socket directory while `pg_upgrade` checks and
//! copies them, so nothing else is disturbed. A failure leaves the old data directory
//! as it was and says what `pg_upgrade` reported.

use std::path::PathBuf;

use crate::cluster::check;
use crate::{Cluster, PgBinaries, PgError};

/// Where the upgraded data directory is made.
fn upgraded_dir(cluster: &Cluster) -> PathBuf {
    cluster.dir.join("data-upgraded")
}

/// Whether the stopped `cluster` has data checksums (`pg_controldata`).
fn checksums_on(cluster: &Cluster) -> Result<bool, PgError> {
    let out = cluster
        .user
        .command(&cluster.bins.path("pg_controldata"), &cluster.dir)
        .arg("-D")
        .arg(cluster.data_dir())
        .output()
        .map_err(PgError::io("cannot run pg_controldata"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text
        .lines()
        .find_map(|l| l.strip_prefix("Data page checksum version:"))
        .map(str::trim);
    match version {
        Some(v) => Ok(v != "0"),
        None => Err(PgError::io("cannot read pg_controldata's output")(
            std::io::Error::other(String::from_utf8_lossy(&out.stderr).to_string()),
        )),
    }
}

/// Upgrades the stopped (cleanly shut down) `cluster` to `new`'s major in place:
/// afterwards its data directory is of that major and must be run with `new`.
pub fn upgrade(cluster: &Cluster, new: &PgBinaries) -> Result<(), PgError> {
    if new.major <= cluster.bins.major {
        return Err(PgError::UnsupportedMajor(format!(
            "PostgreSQL {} cannot be upgraded to {}: only to a newer major",
            cluster.bins.major, new.major
        )));
    }
    let target = upgraded_dir(cluster);
    let work = cluster.dir.join("upgrade-work");
    for dir in [&target, &work] {
        if dir.exists() {
            std::fs::remove_dir_all(dir)
                .map_err(PgError::io(format!("cannot remove {}", dir.display())))?;
        }
    }
    // The new cluster has the old one's install user and data checksum setting, as
    // pg_upgrade requires (a copy of a cluster Lifeboat did not create may differ).
    cluster.initdb_with(new, &target, checksums_on(cluster)?)?;
    // pg_upgrade gives each server what it needs on its command line; the settings
    // Lifeboat writes are written again for the upgraded cluster once it is done.
    cluster.write_owned(&target.join("lifeboat.conf"), "")?;
    std::fs::create_dir_all(&work)
        .map_err(PgError::io(format!("cannot create {}", work.display())))?;
    cluster.user.chown(&work)?;
    let port = cluster.port.to_string();
    let mut command = cluster.user.command(&new.path("pg_upgrade"), &work);
    // Like initdb, pg_upgrade must not outlive a crashed server, which builds the
    // instance again from scratch in the same directory.
    // SAFETY: prctl is async-signal-safe.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut command, || {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let out = command
        .arg("--old-datadir")
        .arg(cluster.data_dir())
        .arg("--new-datadir")
        .arg(&target)
        .arg("--old-bindir")
        .arg(&cluster.bins.bin_dir)
        .arg("--new-bindir")
        .arg(&new.bin_dir)
        .args(["--old-port", &port, "--new-port", &port])
        .arg("--socketdir")
        .arg(cluster.socket_dir())
        .args(["--username", &cluster.role, "--link"])
        .output()
        .map_err(PgError::io("cannot run pg_upgrade"))?;
    if let Err(e) = check("pg_upgrade", out) {
        let _ = std::fs::remove_dir_all(&target);
        return Err(e);
    }
    // The new directory holds links to every file now: the old one can go.
    let old = cluster.dir.join("data-before-upgrade");
    std::fs::rename(cluster.data_dir(), &old).map_err(PgError::io(format!(
        "cannot move {}",
        cluster.data_dir().display()
    )))?;
    std::fs::rename(&target, cluster.data_dir())
        .map_err(PgError::io(format!("cannot move {}", target.display())))?;
    let _ = std::fs::remove_dir_all(&old);
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}
