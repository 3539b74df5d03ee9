//! The OS user that clusters run as, and commands started as that user.

use std::ffi::{CStr, CString};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use crate::PgError;

/// An OS account: PostgreSQL's programs run as this user, and the cluster's files
/// belong to it.
#[derive(Debug, Clone)]
pub struct OsUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

impl OsUser {
    /// The user clusters run as: `configured`, else `postgres` when Lifeboat runs as root,
    /// else the current user (PostgreSQL runs fine as any ordinary user).
    pub fn for_clusters(configured: Option<&str>) -> Result<Self, PgError> {
        match configured {
            Some(name) => Self::lookup(name),
            None if is_root() => Self::lookup("postgres"),
            None => Ok(Self::current()),
        }
    }

    pub fn lookup(name: &str) -> Result<Self, PgError> {
        let missing = || PgError::NoSuchOsUser(name.to_string());
        let c_name = CString::new(name).map_err(|_| missing())?;
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut buf = vec![0 as libc::c_char; 16 * 1024];
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer refers to live, correctly sized storage owned here.
        let rc = unsafe {
            libc::getpwnam_r(
                c_name.as_ptr(),
                &mut pwd,
                buf.as_mut_ptr(),
                buf.len(),
                &mut result,
            )
        };
        if rc != 0 || result.is_null() {
            return Err(missing());
        }
        Ok(Self {
            name: name.to_string(),
            uid: pwd.pw_uid,
            gid: pwd.pw_gid,
        })
    }

    pub fn current() -> Self {
        // SAFETY: getuid/getgid cannot fail; getpwuid's result is copied out at once.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        let name = unsafe {
            let pw = libc::getpwuid(uid);
            if pw.is_null() {
                uid.to_string()
            } else {
                CStr::from_ptr((*pw).pw_name).to_string_lossy().into_owned()
            }
        };
        Self { name, uid, gid }
    }

    /// A command that runs as this user, with a clean environment and C.UTF-8 locale,
    /// in `cwd` (which the user must be able to enter).
    pub fn command(&self, program: &Path, cwd: &Path) -> Command {
        let mut cmd = Command::new(program);
        cmd.env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("LC_ALL", "C.UTF-8")
            .env("TZ", "UTC")
            .current_dir(cwd);
        if is_root() && self.uid != 0 {
            // std drops root's supplementary groups when it changes the uid.
            cmd.uid(self.uid).gid(self.gid);
        }
        cmd
    }

    /// Gives `path` to this user (when Lifeboat runs as root).
    pub fn chown(&self, path: &Path) -> Result<(), PgError> {
        if !is_root() {
            return Ok(());
        }
        std::os::unix::fs::chown(path, Some(self.uid), Some(self.gid)).map_err(PgError::io(
            format!("cannot give {} to OS user {}", path.display(), self.name),
        ))
    }

    /// Lets this user pass through `dir` (to the directories of its own below it) and
    /// nobody else: group = this user's group, mode 0710. When Lifeboat runs as this
    /// user, 0700. Where the group cannot be given (Lifeboat neither root nor in it),
    /// others may pass too (0711), but never list or read.
    pub fn share_dir(&self, dir: &Path) -> Result<(), PgError> {
        use std::os::unix::fs::PermissionsExt;
        let set = |mode: u32| {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)).map_err(
                PgError::io(format!("cannot set the mode of {}", dir.display())),
            )
        };
        // SAFETY: geteuid cannot fail.
        if self.uid == unsafe { libc::geteuid() } {
            return set(0o700);
        }
        match std::os::unix::fs::chown(dir, None, Some(self.gid)) {
            Ok(()) => set(0o710),
            Err(_) => set(0o711),
        }
    }

    /// Checks, as this user, that `dir` can be entered and written: every parent must be
    /// traversable, which a root-owned data directory under /root is not.
    pub fn check_writable(&self, dir: &Path) -> Result<(), PgError> {
        let status = self
            .command(Path::new("/bin/sh"), Path::new("/"))
            .args(["-c", "cd \"$1\" && test -w .", "sh"])
            .arg(dir)
            .output()
            .map_err(PgError::io("cannot run /bin/sh"))?
            .status;
        if status.success() {
            Ok(())
        } else {
            Err(PgError::NotAccessible {
                user: self.name.clone(),
                path: dir.to_path_buf(),
            })
        }
    }
}

pub fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}
