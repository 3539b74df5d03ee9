//! Files written before the server kept everything private (mode 0644 chunks and
//! metadata files, 0755 directories) are tightened at start: no file under the data
//! directory or a local repository is readable or writable by group or others, and
//! directories keep only the search bit others may need to pass through to a
//! cluster's directory. A PostgreSQL data directory is left as PostgreSQL keeps it, and
//! the copy of the binary the clusters run stays executable.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Tightens the modes under `root`, but for the file `keep` (the binary the clusters
/// run); a file that cannot be changed is logged, not fatal.
pub fn tighten(root: &Path, keep: &Path) {
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        if dir.join("PG_VERSION").is_file() {
            continue;
        }
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = entry.metadata() else { continue };
            let mode = meta.permissions().mode() & 0o7777;
            let (wanted, descend) = if meta.is_dir() {
                (mode & !0o066, true)
            } else if meta.is_file() && path != keep {
                (mode & !0o077, false)
            } else {
                // The binary, symbolic links, sockets.
                continue;
            };
            if wanted != mode
                && let Err(e) =
                    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(wanted))
            {
                tracing::warn!(path = %path.display(), error = %e, "cannot make a file private");
            }
            if descend {
                stack.push(path);
            }
        }
    }
}
