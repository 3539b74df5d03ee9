//! Lifeboat's PostgreSQL driver: everything that touches a cluster's processes and files.
//!
//! Every cluster Lifeboat runs lives in a directory of its own:
//!
//! ```text
//! <instance dir>/                 owned by the OS user, mode 0700
//!   data/                         PGDATA (initdb --data-checksums)
//!     lifeboat.conf               settings Lifeboat owns, included from postgresql.conf
//!     pg_hba.conf                 rendered from the whitelist
//!   postgres.log                  the server's log (pg_ctl -l)
//!   .s.PGSQL.<port>               the private Unix socket Lifeboat manages it through
//! ```
//!
//! PostgreSQL refuses to run as root, so when Lifeboat runs as root every PostgreSQL
//! program is started as an ordinary OS user (default `postgres`), with a cleared
//! environment and pinned locale so that a cluster behaves the same whoever starts it.
//! Lifeboat manages a cluster through the role `lifeboat`, which may log in only through
//! the private socket (the socket's directory is readable by the OS user and root alone).
//!
//! # Layout
//! - [`binaries`]: finding `initdb`, `pg_ctl` and `postgres`, and their version.
//! - [`os_user`]: the OS user clusters run as, and commands run as that user.
//! - [`cluster`]: init, start, stop, reload, status and connections.
//! - [`settings`]: `lifeboat.conf` and `pg_hba.conf` rendering.
//! - [`accounts`]: login roles created from SCRAM verifiers.
//! - [`ident`]: quoting names and literals, and reading names as psql does.
//! - [`recovery`]: recovering a restored copy to a target, and promoting it.
//! - [`archiver`]: how WAL archiving goes (`pg_stat_archiver`).
//! - [`adoption`]: what a cluster Lifeboat did not create must offer to be adopted.

pub mod accounts;
pub mod adoption;
pub mod archiver;
pub mod binaries;
pub mod cluster;
pub mod disk;
mod error;
pub mod ident;
pub mod os_user;
pub mod recovery;
pub mod settings;
#[cfg(feature = "testing")]
pub mod testing;
pub mod upgrade;

pub use binaries::{Installations, PgBinaries, SUPPORTED_MAJORS};
pub use cluster::{Cluster, ClusterStatus, StopMode};
pub use error::{PgError, describe};
pub use os_user::OsUser;
pub use settings::{ClusterSettings, render_hba, render_hba_for};

/// The role Lifeboat manages clusters through, over the private Unix socket only.
pub const MANAGEMENT_ROLE: &str = "lifeboat";
