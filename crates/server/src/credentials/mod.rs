//! The secrets the server keeps or checks: the API token, the console's admin password
//! hash, and the key that seals the passwords migration tasks keep. No HTTP here: the
//! HTTP layer checks requests against them.
//!
//! ```text
//! <data dir>/api-token     the API token (mode 0600), made on first start
//! <data dir>/secret-key    32 random bytes that seal stored passwords (mode 0600)
//! ```

pub mod admin_password;
mod secret_box;

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use rand::RngCore;

pub use secret_box::SecretBox;

pub const TOKEN_FILE: &str = "api-token";

/// Reads the token from `<data dir>/api-token`, creating it (mode 0600) on first start.
/// Returns the token and whether it was created now.
pub fn load_or_create_token(data_dir: &Path) -> anyhow::Result<(String, bool)> {
    let path = data_dir.join(TOKEN_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => {
            // Tighten a token file someone loosened.
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
            return Ok((text.trim().to_string(), false));
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => anyhow::bail!("cannot read the API token {}: {e}", path.display()),
    }
    let token = random_hex();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| anyhow::anyhow!("cannot write the API token {}: {e}", path.display()))?;
    f.write_all(token.as_bytes())?;
    f.sync_all()?;
    Ok((token, true))
}

/// 32 random bytes, hex-encoded: tokens, session ids, nonces.
pub fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Compares two secrets in time that does not depend on where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_made_once_and_kept_private() {
        let dir = tempfile::tempdir().unwrap();
        let (token, created) = load_or_create_token(dir.path()).unwrap();
        assert!(created);
        assert_eq!(token.len(), 64);
        let path = dir.path().join(TOKEN_FILE);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let (again, created) = load_or_create_token(dir.path()).unwrap();
        assert_eq!((again.as_str(), created), (token.as_str(), false));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "a loosened token file is tightened");
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
