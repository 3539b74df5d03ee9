//! Secrets the server must keep to act later (the passwords of a migration task), stored
//! encrypted with a key of this server.
//!
//! The key is 32 random bytes in `<data dir>/secret-key` (mode 0600), made on first
//! start. Each secret is sealed with ChaCha20-Poly1305 under a fresh random nonce and
//! stored as base64 of `nonce || ciphertext`; a tampered or foreign value fails to open.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::RngCore;

const KEY_FILE: &str = "secret-key";
const NONCE_LEN: usize = 12;

/// Seals and opens the server's stored secrets.
pub struct SecretBox {
    cipher: ChaCha20Poly1305,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox")
    }
}

impl SecretBox {
    /// Loads the key from the data directory, creating it on first use.
    pub fn load_or_create(data_dir: &Path) -> anyhow::Result<Self> {
        let path = data_dir.join(KEY_FILE);
        let key = match std::fs::read(&path) {
            Ok(bytes) if bytes.len() == 32 => bytes,
            Ok(_) => anyhow::bail!(
                "{} is not a 32-byte key; restore it from a backup of the data directory (stored task passwords cannot be read without it)",
                path.display()
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = vec![0u8; 32];
                rand::thread_rng().fill_bytes(&mut key);
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)
                    .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", path.display()))?;
                f.write_all(&key)?;
                f.sync_all()?;
                key
            }
            Err(e) => anyhow::bail!("cannot read {}: {e}", path.display()),
        };
        Ok(Self {
            cipher: ChaCha20Poly1305::new(Key::from_slice(&key)),
        })
    }

    pub fn seal(&self, secret: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        rand::thread_rng().fill_bytes(&mut nonce);
        // Encryption with a valid key and nonce cannot fail for in-memory data.
        let sealed = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), secret.as_bytes())
            .unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        STANDARD.encode(out)
    }

    pub fn open(&self, sealed: &str) -> Result<String, String> {
        let bytes = STANDARD
            .decode(sealed)
            .map_err(|_| "not base64".to_string())?;
        if bytes.len() <= NONCE_LEN {
            return Err("too short".into());
        }
        let (nonce, data) = bytes.split_at(NONCE_LEN);
        let plain = self
            .cipher
            .decrypt(Nonce::from_slice(nonce), data)
            .map_err(|_| "sealed with another key, or damaged".to_string())?;
        String::from_utf8(plain).map_err(|_| "not UTF-8".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_and_open() {
        let dir = tempfile::tempdir().unwrap();
        let b = SecretBox::load_or_create(dir.path()).unwrap();
        let sealed = b.seal("s3cret-password");
        assert!(!sealed.contains("s3cret"));
        assert_ne!(sealed, b.seal("s3cret-password"), "nonces must differ");
        assert_eq!(b.open(&sealed).unwrap(), "s3cret-password");
        // The same key is read back after a restart; another key cannot open it.
        let again = SecretBox::load_or_create(dir.path()).unwrap();
        assert_eq!(again.open(&sealed).unwrap(), "s3cret-password");
        let other = SecretBox::load_or_create(tempfile::tempdir().unwrap().path()).unwrap();
        assert!(other.open(&sealed).is_err());
        let mut tampered = STANDARD.decode(&sealed).unwrap();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(b.open(&STANDARD.encode(tampered)).is_err());
    }
}
