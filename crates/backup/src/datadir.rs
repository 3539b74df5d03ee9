//! Which parts of a data directory a base backup copies.
//!
//! The rules are PostgreSQL's own ("Making a Base Backup Using the Low Level API"): the
//! contents of directories PostgreSQL rebuilds or that hold only transient state are
//! left out, but the directories themselves are kept, since the server expects them.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::BackupError;

/// Directories (relative to the data directory) copied empty.
const EMPTY_DIRS: &[&str] = &[
    "pg_wal",
    "pg_dynshmem",
    "pg_notify",
    "pg_serial",
    "pg_snapshots",
    "pg_stat_tmp",
    "pg_subtrans",
    "pg_replslot",
];

/// Top-level files never copied: process state of the running server, and files that
/// would make the copy start as something other than a restored backup.
const SKIP_TOP_FILES: &[&str] = &[
    "postmaster.pid",
    "postmaster.opts",
    "backup_label",
    "backup_label.old",
    "tablespace_map",
    "recovery.signal",
    "standby.signal",
];

/// A file or directory found in the data directory.
#[derive(Debug, Clone)]
pub struct Found {
    /// Relative, `/`-separated.
    pub rel: String,
    pub abs: PathBuf,
    pub is_dir: bool,
    pub mode: u32,
    pub size: u64,
}

/// Lists what a base backup copies, directories before their contents.
pub fn scan(data_dir: &Path) -> Result<Vec<Found>, BackupError> {
    let mut out = Vec::new();
    walk(data_dir, "", &mut out)?;
    Ok(out)
}

fn walk(dir: &Path, rel_dir: &str, out: &mut Vec<Found>) -> Result<(), BackupError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        // A directory dropped while the backup runs (a database being dropped): WAL
        // replay removes it anyway.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !rel_dir.is_empty() => return Ok(()),
        Err(e) => return Err(BackupError::io(format!("cannot list {}", dir.display()))(e)),
    };
    let mut names: Vec<_> = entries.filter_map(Result::ok).collect();
    names.sort_by_key(|e| e.file_name());
    for entry in names {
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        let rel = if rel_dir.is_empty() {
            name.clone()
        } else {
            format!("{rel_dir}/{name}")
        };
        let abs = entry.path();
        if skipped_file(rel_dir, &name) {
            continue;
        }
        let meta = match std::fs::symlink_metadata(&abs) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(BackupError::io(format!("cannot stat {}", abs.display()))(e)),
        };
        let mode = meta.permissions().mode() & 0o7777;
        let ft = meta.file_type();
        if ft.is_symlink() {
            // pg_wal may be a symlink (initdb --waldir): it is copied empty anyway.
            if rel == "pg_wal" {
                out.push(dir_entry(rel, abs, 0o700));
                continue;
            }
            return Err(BackupError::Unsupported {
                path: abs,
                reason: "symbolic links (tablespaces outside the data directory) are not supported"
                    .into(),
            });
        }
        if ft.is_dir() {
            out.push(dir_entry(rel.clone(), abs.clone(), mode));
            if !EMPTY_DIRS.contains(&rel.as_str()) && !name.starts_with("pgsql_tmp") {
                walk(&abs, &rel, out)?;
            }
        } else if ft.is_file() {
            out.push(Found {
                rel,
                abs,
                is_dir: false,
                mode,
                size: meta.len(),
            });
        }
        // Sockets, fifos and devices have no place in a data directory: skipped.
    }
    Ok(())
}

fn dir_entry(rel: String, abs: PathBuf, mode: u32) -> Found {
    Found {
        rel,
        abs,
        is_dir: true,
        mode,
        size: 0,
    }
}

fn skipped_file(rel_dir: &str, name: &str) -> bool {
    (rel_dir.is_empty() && SKIP_TOP_FILES.contains(&name))
        || name == "pg_internal.init"
        || name.starts_with("pgsql_tmp")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaves_out_transient_files_but_keeps_their_directories() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        for dir in [
            "base/1",
            "pg_wal/archive_status",
            "pg_stat_tmp",
            "base/pgsql_tmp",
        ] {
            std::fs::create_dir_all(d.join(dir)).unwrap();
        }
        for f in [
            "PG_VERSION",
            "postmaster.pid",
            "base/1/1259",
            "base/1/pg_internal.init",
            "pg_wal/000000010000000000000001",
            "pg_stat_tmp/global.stat",
            "base/pgsql_tmp/pgsql_tmp1.0",
        ] {
            std::fs::write(d.join(f), b"x").unwrap();
        }
        let rels: Vec<_> = scan(d).unwrap().into_iter().map(|f| f.rel).collect();
        assert_eq!(
            rels,
            [
                "PG_VERSION",
                "base",
                "base/1",
                "base/1/1259",
                "pg_stat_tmp",
                "pg_wal"
            ]
        );
    }
}
