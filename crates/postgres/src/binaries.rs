//! Finding PostgreSQL's server binaries: every installed major version Lifeboat can
//! run, one directory each.
//!
//! Looked for under `/usr/lib/postgresql/*/bin` (Debian's packages),
//! `/opt/lifeboat/postgresql/*/bin` (where `scripts/install-deps` puts other majors),
//! in the configured directories, and at `pg_config --bindir`. A directory is used only
//! when every program Lifeboat runs is there ([`REQUIRED`]) and its major is supported
//! ([`SUPPORTED_MAJORS`]); the others are remembered with the reason, for the error a
//! user sees when nothing usable was found.

use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::PgError;

/// Where versioned server binaries are installed, one `<major>/bin` each.
const SEARCH_ROOTS: &[&str] = &["/usr/lib/postgresql", "/opt/lifeboat/postgresql"];

/// The programs Lifeboat runs.
pub const REQUIRED: &[&str] = &["initdb", "pg_ctl", "postgres", "pg_waldump"];

/// The major versions Lifeboat runs (`pg_backup_start` and `initdb
/// --no-instructions` exist from 15).
pub const SUPPORTED_MAJORS: RangeInclusive<u32> = 15..=18;

/// A directory holding the programs of one major version.
#[derive(Debug, Clone)]
pub struct PgBinaries {
    pub bin_dir: PathBuf,
    /// Major version, e.g. 15.
    pub major: u32,
    /// The full version string, e.g. "15.18".
    pub version: String,
}

impl PgBinaries {
    /// The newest usable installation (see [`Installations::discover`]).
    pub fn discover(configured: Option<&Path>) -> Result<Self, PgError> {
        let dirs: Vec<PathBuf> = configured.map(Path::to_path_buf).into_iter().collect();
        Installations::discover(&dirs).newest().cloned()
    }

    /// The installation in `dir`, or why it cannot be used.
    pub fn at(dir: &Path) -> Result<Self, String> {
        let missing: Vec<&str> = REQUIRED
            .iter()
            .filter(|p| !dir.join(p).is_file())
            .copied()
            .collect();
        if missing.len() == REQUIRED.len() {
            return Err(format!(
                "{} holds no PostgreSQL server binaries",
                dir.display()
            ));
        }
        if !missing.is_empty() {
            return Err(format!("{} lacks {}", dir.display(), missing.join(", ")));
        }
        let out = Command::new(dir.join("postgres"))
            .arg("--version")
            .output()
            .map_err(|e| format!("{}/postgres does not run: {e}", dir.display()))?;
        // "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"
        let text = String::from_utf8_lossy(&out.stdout);
        let version = text
            .split_whitespace()
            .nth(2)
            .ok_or_else(|| {
                format!(
                    "{}/postgres --version said '{}'",
                    dir.display(),
                    text.trim()
                )
            })?
            .to_string();
        let major = major_of(&version)
            .ok_or_else(|| format!("{}/postgres is version '{version}'", dir.display()))?;
        Ok(Self {
            bin_dir: dir.to_path_buf(),
            major,
            version,
        })
    }

    pub fn path(&self, program: &str) -> PathBuf {
        self.bin_dir.join(program)
    }
}

/// The major of a version string: 15 for "15.18", "15" or "15beta1".
pub fn major_of(version: &str) -> Option<u32> {
    let digits: String = version.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Why a major version cannot be used, or `None` when Lifeboat runs it.
pub fn unsupported(major: u32) -> Option<String> {
    (!SUPPORTED_MAJORS.contains(&major)).then(|| {
        format!(
            "PostgreSQL {major} is not supported: Lifeboat runs PostgreSQL {} to {}",
            SUPPORTED_MAJORS.start(),
            SUPPORTED_MAJORS.end()
        )
    })
}

/// Every usable installation found, one per major, newest first.
#[derive(Debug, Clone, Default)]
pub struct Installations {
    found: Vec<PgBinaries>,
    /// Directories looked at and not used, with the reason.
    refused: Vec<String>,
    /// Where it looked, for errors.
    searched: String,
}

impl Installations {
    /// Looks in `configured` first, then under the search roots, then at
    /// `pg_config --bindir`. When two directories hold the same major, the first wins.
    pub fn discover(configured: &[PathBuf]) -> Self {
        let mut dirs: Vec<PathBuf> = configured.to_vec();
        for root in SEARCH_ROOTS {
            let mut under: Vec<(u32, PathBuf)> = std::fs::read_dir(root)
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|e| {
                    let major = e.file_name().to_str()?.parse::<u32>().ok()?;
                    Some((major, e.path().join("bin")))
                })
                .collect();
            under.sort();
            dirs.extend(under.into_iter().rev().map(|(_, d)| d));
        }
        dirs.extend(pg_config_bindir());
        let mut all = Self {
            searched: configured
                .iter()
                .map(|d| d.display().to_string())
                .chain(SEARCH_ROOTS.iter().map(|r| format!("{r}/*/bin")))
                .chain(["pg_config --bindir".to_string()])
                .collect::<Vec<_>>()
                .join(", "),
            ..Self::default()
        };
        for dir in dirs {
            if all.found.iter().any(|f| f.bin_dir == dir) {
                continue;
            }
            match PgBinaries::at(&dir) {
                Ok(b) => match unsupported(b.major) {
                    Some(why) => all.refused.push(format!("{}: {why}", dir.display())),
                    None if all.found.iter().any(|f| f.major == b.major) => {}
                    None => all.found.push(b),
                },
                // A configured directory that cannot be used is worth saying; an empty
                // search root is not.
                Err(why) if configured.contains(&dir) || dir.exists() => all.refused.push(why),
                Err(_) => {}
            }
        }
        all.found.sort_by_key(|b| std::cmp::Reverse(b.major));
        all
    }

    /// The majors found, newest first.
    pub fn majors(&self) -> Vec<u32> {
        self.found.iter().map(|b| b.major).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.found.is_empty()
    }

    /// Directories that were not used, and why.
    pub fn refused(&self) -> &[String] {
        &self.refused
    }

    /// The newest installation.
    pub fn newest(&self) -> Result<&PgBinaries, PgError> {
        self.found.first().ok_or_else(|| self.missing())
    }

    /// The installation of `major`.
    pub fn major(&self, major: u32) -> Result<&PgBinaries, PgError> {
        if let Some(why) = unsupported(major) {
            return Err(PgError::UnsupportedMajor(why));
        }
        if self.found.is_empty() {
            return Err(self.missing());
        }
        self.found
            .iter()
            .find(|b| b.major == major)
            .ok_or_else(|| PgError::MajorNotInstalled {
                major,
                installed: self.majors(),
            })
    }

    fn missing(&self) -> PgError {
        let mut searched = self.searched.clone();
        if !self.refused.is_empty() {
            searched.push_str("; not used: ");
            searched.push_str(&self.refused.join("; "));
        }
        PgError::BinariesMissing { searched }
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
        let all = Installations::discover(&[dir.path().to_path_buf()]);
        assert!(
            all.refused()
                .iter()
                .any(|r| r.contains(&dir.path().display().to_string())),
            "{:?}",
            all.refused()
        );
        let err = PgError::BinariesMissing {
            searched: all.refused().join("; "),
        };
        assert!(err.is_unavailable());
        assert!(err.hint().contains("apt-get install"));
    }

    #[test]
    fn a_directory_missing_one_program_says_which() {
        let dir = tempfile::tempdir().unwrap();
        for p in ["initdb", "pg_ctl", "postgres"] {
            std::fs::write(dir.path().join(p), "").unwrap();
        }
        let why = PgBinaries::at(dir.path()).unwrap_err();
        assert!(why.ends_with("lacks pg_waldump"), "{why}");
    }

    #[test]
    fn majors_are_read_and_bounded() {
        assert_eq!(major_of("15.18"), Some(15));
        assert_eq!(major_of("18beta1"), Some(18));
        assert_eq!(major_of("x"), None);
        assert!(unsupported(14).unwrap().contains("15 to 18"));
        assert!(unsupported(15).is_none() && unsupported(18).is_none());
        let none = Installations::default();
        assert!(matches!(none.major(14), Err(PgError::UnsupportedMajor(_))));
        assert!(matches!(
            none.major(16),
            Err(PgError::BinariesMissing { .. })
        ));
    }
}
