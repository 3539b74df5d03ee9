//! One PostgreSQL cluster on disk: init, start, stop, reload, status, connect.

use std::io::{Read, Seek, SeekFrom};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Output;

use tokio_postgres::{Client, NoTls};

use crate::settings::ClusterSettings;
use crate::{MANAGEMENT_ROLE, OsUser, PgBinaries, PgError};

/// Unix socket paths longer than this do not fit in `sockaddr_un`.
const MAX_SOCKET_PATH: usize = 107;
/// How long [`Cluster::discard`] waits for a process it cannot stop to end.
const DISCARD_WAIT: std::time::Duration = std::time::Duration::from_secs(30);
/// How long pg_ctl waits for a start or stop.
const PG_CTL_TIMEOUT_SECS: &str = "120";

/// A cluster's files and the means to run it. Cheap to build; holds no process.
#[derive(Debug, Clone)]
pub struct Cluster {
    /// The instance directory (socket and log live here, PGDATA below it).
    pub dir: PathBuf,
    pub port: u16,
    pub bins: PgBinaries,
    pub user: OsUser,
    /// The superuser Lifeboat connects as over the private socket: its own role, or
    /// the bootstrap superuser of a restored copy of a cluster it did not create.
    pub role: String,
}

/// Whether a cluster's postmaster is running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterStatus {
    Running,
    Stopped,
    /// There is no data directory.
    Missing,
}

/// How to stop: `Fast` rolls back sessions and checkpoints; `Immediate` is a crash stop.
#[derive(Debug, Clone, Copy)]
pub enum StopMode {
    Fast,
    Immediate,
}

impl Cluster {
    pub fn new(dir: impl Into<PathBuf>, port: u16, bins: PgBinaries, user: OsUser) -> Self {
        Self {
            dir: dir.into(),
            port,
            bins,
            user,
            role: MANAGEMENT_ROLE.to_string(),
        }
    }

    /// This cluster, managed as `role` (see [`Cluster::role`]).
    pub fn with_role(mut self, role: &str) -> Self {
        self.role = role.to_string();
        self
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    pub fn log_file(&self) -> PathBuf {
        self.dir.join("postgres.log")
    }

    pub fn socket_dir(&self) -> &Path {
        &self.dir
    }

    /// Creates the instance directory (mode 0700, owned by the OS user) and runs
    /// `initdb` with data checksums, UTF-8 and SCRAM. Lifeboat's own role is the
    /// bootstrap superuser.
    pub fn init(&self) -> Result<(), PgError> {
        self.create_dir()?;
        self.initdb(&self.bins, &self.data_dir())
    }

    /// Runs `bins`' initdb into `data_dir` with the options every Lifeboat cluster
    /// has (the ones `pg_upgrade` needs to match too), and has its `postgresql.conf`
    /// include `lifeboat.conf`.
    pub(crate) fn initdb(&self, bins: &PgBinaries, data_dir: &Path) -> Result<(), PgError> {
        self.initdb_with(bins, data_dir, true)
    }

    /// [`Cluster::initdb`] with data checksums on or off (a cluster upgraded with
    /// pg_upgrade keeps the setting it had).
    pub(crate) fn initdb_with(
        &self,
        bins: &PgBinaries,
        data_dir: &Path,
        checksums: bool,
    ) -> Result<(), PgError> {
        let mut initdb = self.user.command(&bins.path("initdb"), &self.dir);
        // initdb must not outlive a crashed server: a restarted server builds the
        // instance again from scratch and would race an orphaned initdb in the same
        // directory. (Runs after the uid change, which would clear it otherwise.)
        // SAFETY: prctl is async-signal-safe.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut initdb, || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let out = initdb
            .arg("--pgdata")
            .arg(data_dir)
            .args(["--username", &self.role])
            .args([
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
                "--no-instructions",
            ])
            // Off is the default before PostgreSQL 18, on from 18.
            .args(match (checksums, bins.major >= 18) {
                (true, _) => &["--data-checksums"][..],
                (false, true) => &["--no-data-checksums"][..],
                (false, false) => &[][..],
            })
            .output()
            .map_err(PgError::io("cannot run initdb"))?;
        check("initdb", out)?;
        let conf = data_dir.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf)
            .map_err(PgError::io(format!("cannot read {}", conf.display())))?;
        text.push_str("\ninclude 'lifeboat.conf'\n");
        self.write_owned(&conf, &text)
    }

    /// Creates the instance directory, mode 0700, owned by the OS user, and checks that
    /// the user can reach it (every parent must be traversable).
    pub fn create_dir(&self) -> Result<(), PgError> {
        let socket = self.dir.join(format!(".s.PGSQL.{}", self.port));
        if socket.as_os_str().len() > MAX_SOCKET_PATH {
            return Err(PgError::SocketPathTooLong(socket));
        }
        std::fs::create_dir_all(&self.dir)
            .map_err(PgError::io(format!("cannot create {}", self.dir.display())))?;
        set_mode(&self.dir, 0o700)?;
        self.user.chown(&self.dir)?;
        self.user.check_writable(&self.dir)
    }

    /// Rewrites `lifeboat.conf`; takes effect at the next start (port, archive mode) or
    /// reload (most other settings).
    pub fn write_settings(&self, settings: &ClusterSettings) -> Result<(), PgError> {
        let data = self.data_dir();
        // A data directory copied from a cluster Lifeboat did not create may name
        // another data directory, configuration files or a pid file of that cluster:
        // its own, here, are the ones used.
        let mut text = settings.render();
        for (k, v) in [
            ("data_directory", data.display().to_string()),
            ("hba_file", data.join("pg_hba.conf").display().to_string()),
            (
                "ident_file",
                data.join("pg_ident.conf").display().to_string(),
            ),
            ("external_pid_file", String::new()),
        ] {
            let _ = std::fmt::Write::write_fmt(
                &mut text,
                format_args!("{k} = '{}'\n", v.replace('\'', "''")),
            );
        }
        self.write_owned(&data.join("lifeboat.conf"), &text)?;
        let ident = data.join("pg_ident.conf");
        if !ident.exists() {
            self.write_owned(&ident, "")?;
        }
        // lifeboat.conf is read last, whatever postgresql.conf says (a distribution
        // keeps it outside the data directory, so a copy may have none).
        let conf = data.join("postgresql.conf");
        let current = match std::fs::read_to_string(&conf) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(PgError::io(format!("cannot read {}", conf.display()))(e)),
        };
        let last = current
            .lines()
            .map(str::trim)
            .rfind(|l| !l.is_empty() && !l.starts_with('#'));
        if last != Some("include 'lifeboat.conf'") {
            self.write_owned(
                &conf,
                &format!("{current}\n# Added by Lifeboat: its settings are read last.\ninclude 'lifeboat.conf'\n"),
            )?;
        }
        Ok(())
    }

    /// Rewrites `pg_hba.conf`; call [`Cluster::reload`] for a running cluster.
    pub fn write_hba(&self, hba: &str) -> Result<(), PgError> {
        self.write_owned(&self.data_dir().join("pg_hba.conf"), hba)
    }

    /// Writes a file atomically (temp file, fsync, rename) and gives it to the OS user.
    pub fn write_owned(&self, path: &Path, content: &str) -> Result<(), PgError> {
        let tmp = path.with_extension("lifeboat-tmp");
        let ctx = || format!("cannot write {}", path.display());
        {
            let mut f = std::fs::File::create(&tmp).map_err(PgError::io(ctx()))?;
            std::io::Write::write_all(&mut f, content.as_bytes()).map_err(PgError::io(ctx()))?;
            f.sync_all().map_err(PgError::io(ctx()))?;
        }
        set_mode(&tmp, 0o600)?;
        self.user.chown(&tmp)?;
        std::fs::rename(&tmp, path).map_err(PgError::io(ctx()))
    }

    /// Starts the postmaster and waits until it accepts connections. The port is checked
    /// first so that a taken port gives a clear error instead of a log line.
    pub fn start(&self, listen_address: &str) -> Result<(), PgError> {
        if self.status()? == ClusterStatus::Running {
            return Ok(());
        }
        if TcpListener::bind((listen_address, self.port)).is_err() {
            return Err(PgError::PortInUse {
                address: listen_address.to_string(),
                port: self.port,
            });
        }
        let log = self.log_file();
        let out = self
            .user
            .command(&self.bins.path("pg_ctl"), &self.dir)
            .arg("start")
            .arg("--pgdata")
            .arg(self.data_dir())
            .arg("--log")
            .arg(&log)
            .args(["--wait", "--timeout", PG_CTL_TIMEOUT_SECS, "--silent"])
            .output()
            .map_err(PgError::io("cannot run pg_ctl start"))?;
        check("pg_ctl start", out).map_err(|e| with_log_tail(e, &log))
    }

    /// Starts a restored copy for recovery without waiting (recovery may take long; the
    /// caller follows it), at low CPU and I/O priority so that it does not slow down the
    /// masters on the same machine. The postmaster and every backend inherit the
    /// priority from pg_ctl.
    pub fn start_recovery(&self, listen_address: &str) -> Result<(), PgError> {
        if TcpListener::bind((listen_address, self.port)).is_err() {
            return Err(PgError::PortInUse {
                address: listen_address.to_string(),
                port: self.port,
            });
        }
        let log = self.log_file();
        let mut cmd = self.user.command(&self.bins.path("pg_ctl"), &self.dir);
        cmd.arg("start")
            .arg("--pgdata")
            .arg(self.data_dir())
            .arg("--log")
            .arg(&log)
            .args(["--no-wait", "--silent"]);
        // SAFETY: only async-signal-safe system calls between fork and exec.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
                libc::setpriority(libc::PRIO_PROCESS, 0, 10);
                // ioprio_set(IOPRIO_WHO_PROCESS, self, IOPRIO_CLASS_IDLE): disk time
                // only when no one else wants it.
                libc::syscall(libc::SYS_ioprio_set, 1, 0, 3 << 13);
                Ok(())
            });
        }
        let out = cmd
            .output()
            .map_err(PgError::io("cannot run pg_ctl start"))?;
        check("pg_ctl start", out).map_err(|e| with_log_tail(e, &log))
    }

    /// The last `max` bytes of the server log.
    pub fn log_tail(&self, max: u64) -> String {
        read_tail(&self.log_file(), max).unwrap_or_default()
    }

    /// Stops the postmaster if it runs. Stopping a stopped or missing cluster succeeds.
    pub fn stop(&self, mode: StopMode) -> Result<(), PgError> {
        if self.status()? != ClusterStatus::Running {
            return Ok(());
        }
        let mode = match mode {
            StopMode::Fast => "fast",
            StopMode::Immediate => "immediate",
        };
        let out = self
            .user
            .command(&self.bins.path("pg_ctl"), &self.dir)
            .arg("stop")
            .arg("--pgdata")
            .arg(self.data_dir())
            .args([
                "--mode",
                mode,
                "--wait",
                "--timeout",
                PG_CTL_TIMEOUT_SECS,
                "--silent",
            ])
            .output()
            .map_err(PgError::io("cannot run pg_ctl stop"))?;
        check("pg_ctl stop", out)
    }

    /// Makes a running cluster re-read its configuration files.
    pub fn reload(&self) -> Result<(), PgError> {
        let out = self
            .user
            .command(&self.bins.path("pg_ctl"), &self.dir)
            .arg("reload")
            .arg("--pgdata")
            .arg(self.data_dir())
            .arg("--silent")
            .output()
            .map_err(PgError::io("cannot run pg_ctl reload"))?;
        check("pg_ctl reload", out)
    }

    pub fn status(&self) -> Result<ClusterStatus, PgError> {
        if !self.data_dir().join("PG_VERSION").exists() {
            return Ok(ClusterStatus::Missing);
        }
        let out = self
            .user
            .command(&self.bins.path("pg_ctl"), &self.dir)
            .arg("status")
            .arg("--pgdata")
            .arg(self.data_dir())
            .output()
            .map_err(PgError::io("cannot run pg_ctl status"))?;
        // pg_ctl status: 0 running, 3 not running, 4 no accessible data directory.
        match out.status.code() {
            Some(0) => Ok(ClusterStatus::Running),
            Some(3) => Ok(ClusterStatus::Stopped),
            _ => Err(command_error("pg_ctl status", out)),
        }
    }

    /// A management connection over the private socket, as Lifeboat's role.
    pub async fn connect(&self, database: &str) -> Result<Client, PgError> {
        let mut config = tokio_postgres::Config::new();
        config
            .host_path(&self.dir)
            .port(self.port)
            .user(&self.role)
            .dbname(database)
            .application_name("lifeboat");
        let (client, connection) = config.connect(NoTls).await.map_err(|e| PgError::Connect {
            socket_dir: self.dir.clone(),
            message: crate::error::describe(&e),
            code: e.code().map(|c| c.code().to_string()),
        })?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "management connection closed");
            }
        });
        Ok(client)
    }

    /// The size of the data directory in bytes, as the server reports it.
    pub async fn data_size(&self) -> Result<i64, PgError> {
        let client = self.connect("postgres").await?;
        let row = client
            .query_one(
                "SELECT sum(pg_database_size(oid))::bigint FROM pg_database",
                &[],
            )
            .await
            .map_err(PgError::sql("cannot read database sizes"))?;
        Ok(row.get::<_, Option<i64>>(0).unwrap_or(0))
    }

    /// Stops the cluster at once (a crash stop: nothing in it is worth a checkpoint)
    /// if it runs, then removes its whole directory. What an abandoned create, a
    /// released temporary instance or an orphaned directory needs.
    ///
    /// `pg_ctl` cannot stop a single-user backend: the one `initdb` runs outlives an
    /// `initdb` killed with the server until it reads the end of its input, a moment
    /// later. So when the stop fails, this waits for whatever runs to end before it
    /// removes anything, and gives up with the stop's error after `DISCARD_WAIT` (30 s).
    pub fn discard(&self) -> Result<(), PgError> {
        if let Err(e) = self.stop(StopMode::Immediate) {
            let deadline = std::time::Instant::now() + DISCARD_WAIT;
            while self.status()? == ClusterStatus::Running {
                if std::time::Instant::now() >= deadline {
                    return Err(e);
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        }
        self.remove_files()
    }

    /// The text after `marker` on the last log line (of the log's last 256 kB) that
    /// holds it, e.g. what a program that PostgreSQL runs last wrote to the log.
    pub fn last_log_line_after(&self, marker: &str) -> Option<String> {
        let text = read_tail(&self.log_file(), 256 * 1024)?;
        text.lines().rev().find_map(|l| {
            l.find(marker)
                .map(|i| l[i + marker.len()..].trim().to_string())
        })
    }

    /// Removes the whole instance directory. The cluster must be stopped.
    pub fn remove_files(&self) -> Result<(), PgError> {
        match std::fs::remove_dir_all(&self.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(PgError::io(format!("cannot remove {}", self.dir.display()))(e)),
        }
    }
}

fn set_mode(path: &Path, mode: u32) -> Result<(), PgError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(PgError::io(
        format!("cannot set the mode of {}", path.display()),
    ))
}

pub(crate) fn check(program: &str, out: Output) -> Result<(), PgError> {
    if out.status.success() {
        Ok(())
    } else {
        Err(command_error(program, out))
    }
}

fn command_error(program: &str, out: Output) -> PgError {
    let mut output = String::from_utf8_lossy(&out.stderr).trim().to_string();
    let stdout = String::from_utf8_lossy(&out.stdout);
    if output.is_empty() {
        output = stdout.trim().to_string();
    }
    PgError::Command {
        program: program.to_string(),
        status: out.status.to_string(),
        output,
    }
}

/// Appends the end of the server log to a failed start, where PostgreSQL says why.
fn with_log_tail(err: PgError, log: &Path) -> PgError {
    let PgError::Command {
        program,
        status,
        mut output,
    } = err
    else {
        return err;
    };
    if let Some(tail) = read_tail(log, 2048) {
        output.push_str("; server log ends with: ");
        output.push_str(tail.trim());
    }
    PgError::Command {
        program,
        status,
        output,
    }
}

fn read_tail(path: &Path, max: u64) -> Option<String> {
    let mut f = std::fs::File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(max))).ok()?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf).into_owned())
}
