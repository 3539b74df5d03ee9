//! A repository key file: 32 random bytes written as 64 hexadecimal digits (whitespace
//! around them, such as the newline `openssl` ends with, is ignored). Make one with
//!
//! ```sh
//! (umask 077; openssl rand -hex 32 > /etc/lifeboat/repository.key)
//! ```
//!
//! Like ssh with a private key, a key file that other users can read (or anyone but
//! its owner and group can write) is refused rather than used: the key is everything
//! an attacker needs to read the repository. Group read is allowed, for a
//! `root:lifeboat 0640` file.

use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::BackupError;

/// Bytes of a repository key.
pub const KEY_LEN: usize = 32;

/// The command the messages suggest to make a key.
pub fn make_key_command(path: &Path) -> String {
    format!("(umask 077; openssl rand -hex 32 > {})", path.display())
}

/// A region's repository key, as read from its key file. Zeroed when dropped.
#[derive(Clone)]
pub struct RepositoryKey(Zeroizing<[u8; KEY_LEN]>);

impl std::fmt::Debug for RepositoryKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RepositoryKey(<hidden>)")
    }
}

impl RepositoryKey {
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    pub(crate) fn bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// Reads and checks a key file: a regular file, not readable by others, holding
    /// 64 hex digits.
    pub fn load(path: &Path) -> Result<Self, BackupError> {
        let bad = |reason: String| BackupError::KeyFile {
            path: path.to_path_buf(),
            reason,
        };
        let meta = std::fs::metadata(path).map_err(|e| bad(format!("cannot read it: {e}")))?;
        if !meta.is_file() {
            return Err(bad("it is not a regular file".into()));
        }
        let mode = meta.mode() & 0o7777;
        if mode & 0o027 != 0 {
            return Err(bad(format!(
                "other users can {} it (mode {mode:04o}); make it private: chmod 600 {}",
                if mode & 0o004 != 0 { "read" } else { "write" },
                path.display()
            )));
        }
        let text = Zeroizing::new(
            std::fs::read_to_string(path).map_err(|e| bad(format!("cannot read it: {e}")))?,
        );
        Self::parse(text.trim()).map_err(bad)
    }

    /// Parses 64 hex digits.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        if text.len() != 2 * KEY_LEN || hex::decode_to_slice(text, key.as_mut()).is_err() {
            return Err(format!(
                "it holds {} characters, not a key of {} hexadecimal digits ({KEY_LEN} bytes)",
                text.chars().count(),
                2 * KEY_LEN
            ));
        }
        Ok(Self(key))
    }

    /// Writes the key to `path` (mode 0600, replacing it atomically), for a program
    /// running as another OS user (`archive_command`) that cannot read the original.
    pub fn save(&self, path: &Path) -> Result<(), BackupError> {
        use std::io::Write;
        let ctx = || format!("cannot write {}", path.display());
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let _ = std::fs::remove_file(&tmp);
        let text = Zeroizing::new(format!("{}\n", hex::encode(self.0.as_ref())));
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            BackupError::io(ctx())(e)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    const HEX: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    fn write(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    fn reason(e: BackupError) -> String {
        match e {
            BackupError::KeyFile { reason, .. } => reason,
            other => panic!("not a key file error: {other}"),
        }
    }

    #[test]
    fn reads_hex_with_a_newline_and_saves_it_back() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "k", &format!("{HEX}\n"), 0o600);
        let k = RepositoryKey::load(&p).unwrap();
        assert_eq!(k.bytes()[1], 0x11);
        assert!(!format!("{k:?}").contains("11"));
        // Group read is allowed.
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        RepositoryKey::load(&p).unwrap();
        let copy = dir.path().join("copy");
        k.save(&copy).unwrap();
        let mode = std::fs::metadata(&copy).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(RepositoryKey::load(&copy).unwrap().bytes(), k.bytes());
    }

    #[test]
    fn refuses_missing_short_malformed_and_readable_key_files() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none");
        let e = RepositoryKey::load(&missing).unwrap_err();
        assert!(
            e.to_string().contains(&missing.display().to_string()),
            "{e}"
        );
        assert!(reason(e).contains("No such file"));
        assert!(e_hint_names_openssl(
            &RepositoryKey::load(&missing).unwrap_err()
        ));

        let short = write(dir.path(), "short", &HEX[..32], 0o600);
        assert!(reason(RepositoryKey::load(&short).unwrap_err()).contains("32 characters"));
        let not_hex = write(dir.path(), "nothex", &"zz".repeat(32), 0o600);
        assert!(reason(RepositoryKey::load(&not_hex).unwrap_err()).contains("hexadecimal"));
        let binary = dir.path().join("binary");
        std::fs::write(&binary, [7u8; 32]).unwrap();
        std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(RepositoryKey::load(&binary).is_err());

        let open = write(dir.path(), "open", HEX, 0o644);
        let r = reason(RepositoryKey::load(&open).unwrap_err());
        assert!(r.contains("mode 0644") && r.contains("chmod 600"), "{r}");
        let writable = write(dir.path(), "gw", HEX, 0o620);
        assert!(reason(RepositoryKey::load(&writable).unwrap_err()).contains("write"));
        assert!(reason(RepositoryKey::load(dir.path()).unwrap_err()).contains("regular file"));
    }

    fn e_hint_names_openssl(e: &BackupError) -> bool {
        e.hint().contains("openssl rand -hex 32")
    }
}
