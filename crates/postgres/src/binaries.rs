//! Finding PostgreSQL's server binaries.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::PgError;

/// Where Debian and most distributions install versioned server binaries.
const SEARCH_GLOB_PARENT: &str = "/usr/lib/postgresql";

/// A directory holding `initdb`, `pg_ctl` and `postgres` of one major version.
#[derive(Debug, Clone)]
pub struct PgBinaries {
    pub bin_dir: PathBuf,
    /// Major version, e.g. 15.
    pub major: u32,
    /// The full version string, e.g. "15.18".
    pub version: String,
}

impl PgBinaries {
    /// Uses `configured` when given; otherwise the newest version under
    /// `/usr/lib/postgresql/*/bin`, then `pg_config --bindir`.
    pub fn discover(configured: Option<&Path>) -> Result<Self, PgError> {
        if let Some(dir) = configured {
            return Self::at(dir).ok_or_else(|| PgError::BinariesMissing {
                searched: dir.display().to_string(),
            });
        }
        let mut candidates: Vec<(u32, PathBuf)> = std::fs::read_dir(SEARCH_GLOB_PARENT)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let major = e.file_name().to_str()?.parse::<u32>().ok()?;
                Some((major, e.path().join("bin")))
            })
            .collect();
        candidates.sort();
        for (_, dir) in candidates.iter().rev() {
            if let Some(found) = Self::at(dir) {
                return Ok(found);
            }
        }
        if let Some(found) = pg_config_bindir().and_then(|dir| Self::at(&dir)) {
            return Ok(found);
        }
        Err(PgError::BinariesMissing {
            searched: format!("{SEARCH_GLOB_PARENT}/*/bin and pg_config --bindir"),
        })
    }

    fn at(dir: &Path) -> Option<Self> {
        let all_there = ["initdb", "pg_ctl", "postgres"]
            .iter()
            .all(|p| dir.join(p).is_file());
        if !all_there {
            return None;
        }
        let out = Command::new(dir.join("postgres"))
            .arg("--version")
            .output()
            .ok()?;
        // "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"
        let text = String::from_utf8_lossy(&out.stdout);
        let version = text.split_whitespace().nth(2)?.to_string();
        let major = version.split('.').next()?.parse().ok()?;
        Some(Self {
            bin_dir: dir.to_path_buf(),
            major,
            version,
        })
    }

    pub fn path(&self, program: &str) -> PathBuf {
        self.bin_dir.join(program)
    }
}

fn pg_config_bindir() -> Option<PathBuf> {
    let out = Command::new("pg_config").arg("--bindir").output().ok()?;
    out.status
        .success()
        .then(|| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_without_binaries_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let err = PgBinaries::discover(Some(dir.path())).unwrap_err();
        assert!(err.is_unavailable());
        assert!(err.to_string().contains(&dir.path().display().to_string()));
        assert!(err.hint().contains("apt-get install"));
    }
}
