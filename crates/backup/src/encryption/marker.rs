//! The marker of an encrypted repository: `lifeboat-encryption.json` at its root, the
//! one object stored in clear. It names the cipher and holds a key check value (an
//! HMAC of a constant under a key derived from the repository key), nothing secret:
//!
//! ```json
//! {"format":1,"cipher":"aes-256-gcm","key_check":"5be1...","note":"..."}
//! ```
//!
//! With it a wrong key, a missing key or a key given to a repository written in clear
//! is told before anything is read or written, naming the repository, rather than as
//! an authentication failure of the first object read. The server checks it at start
//! and writes it on an encrypted repository's first use; a backup, a restore and
//! `verify` check it again. Someone who can write to the repository can change or
//! remove the marker, but gains nothing by it: every other object is authenticated on
//! its own.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::BackupError;
use crate::repository::{Durability, Repository};

/// The key of the marker, at the root of the repository.
pub const MARKER_KEY: &str = "lifeboat-encryption.json";

#[derive(Debug, Serialize, Deserialize)]
struct Marker {
    format: u32,
    cipher: String,
    key_check: String,
    #[serde(default)]
    note: String,
}

impl Repository {
    /// Checks the repository's marker against this repository's key: a marker with
    /// another cipher or key check value, or a marker and no key, is refused. Returns
    /// whether a marker is there (a repository in clear has none).
    pub async fn check_encryption(&self) -> Result<bool, BackupError> {
        let stored = match self.get(MARKER_KEY).await {
            Ok(b) => b,
            Err(e) if e.is_not_found() => return Ok(false),
            Err(e) => return Err(e),
        };
        let marker: Marker = serde_json::from_slice(&stored).map_err(|e| {
            BackupError::corrupt(
                format!("{}/{MARKER_KEY}", self.description()),
                format!("not an encryption marker: {e}"),
            )
        })?;
        let mismatch = |reason: String| BackupError::KeyMismatch {
            object: format!("repository {}", self.description()),
            reason,
        };
        match self.codec().encryption() {
            None => Err(mismatch(format!(
                "the repository is encrypted with {} (its {MARKER_KEY} says so), and the region has no repository_cipher and repository_key_file",
                marker.cipher
            ))),
            Some(e) if e.cipher().name() != marker.cipher => Err(mismatch(format!(
                "the repository is encrypted with {}, the region's repository_cipher is {}",
                marker.cipher,
                e.cipher()
            ))),
            Some(e) if e.key_check() != marker.key_check => Err(mismatch(
                "the region's repository_key_file does not hold the key this repository was encrypted with (the key check value in its lifeboat-encryption.json differs)".into(),
            )),
            Some(_) => Ok(true),
        }
    }

    /// [`Repository::check_encryption`], and on an encrypted repository's first use,
    /// writes its marker. A repository that already holds objects gets one only when
    /// they were written with this key (WAL archived before the first backup): objects
    /// written in clear, or with another key, are refused, naming one of them.
    pub async fn mark_encryption(&self) -> Result<(), BackupError> {
        if self.check_encryption().await? {
            return Ok(());
        }
        let Some(e) = self.codec().encryption() else {
            return Ok(());
        };
        if let Some(found) = self.any_object(MARKER_KEY).await? {
            let stored = self.get(&found).await?;
            let refuse = |reason: String| BackupError::KeyMismatch {
                object: format!("repository {}", self.description()),
                reason,
            };
            match self.codec().decode(&found, &stored) {
                Ok(_) => {}
                Err(BackupError::KeyMismatch { .. }) => {
                    return Err(refuse(format!(
                        "the repository holds objects written without encryption ({found}, and no {MARKER_KEY}); an encrypted region needs a repository of its own: point it at an empty directory or bucket prefix, or remove repository_cipher and repository_key_file"
                    )));
                }
                Err(BackupError::Corrupt { .. }) => {
                    return Err(refuse(format!(
                        "the repository holds {found}, which the region's repository_key_file cannot authenticate: it was written with another key, or is damaged"
                    )));
                }
                Err(other) => return Err(other),
            }
        }
        let marker = Marker {
            format: 1,
            cipher: e.cipher().name().into(),
            key_check: e.key_check(),
            note: format!(
                "Every other object of this repository is encrypted with {} under keys derived from the region's repository_key_file; without that key its backups cannot be read.",
                e.cipher()
            ),
        };
        let json = serde_json::to_vec_pretty(&marker)
            .map_err(|e| BackupError::Config(format!("cannot serialize the marker: {e}")))?;
        self.put_if_absent(MARKER_KEY, Bytes::from(json), Durability::Durable)
            .await?;
        // Another server may have written its own meanwhile: it must be this key's.
        self.check_encryption().await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encryption::{Cipher, Encryption, RepositoryKey};
    use crate::object::Codec;

    fn codec(cipher: Cipher, b: u8) -> Codec {
        Codec::encrypted(Encryption::new(cipher, &RepositoryKey::from_bytes([b; 32])))
    }

    #[tokio::test]
    async fn the_marker_tells_a_missing_or_wrong_key_and_a_clear_repository() {
        let tmp = tempfile::tempdir().unwrap();
        let clear = Repository::local(tmp.path()).unwrap();
        let aes = clear.clone().with_codec(codec(Cipher::Aes256Gcm, 1));
        // An encrypted repository's first use writes the marker (after WAL pushed
        // with the same key, which is accepted).
        let (wal, _) = aes.codec().encode("pg-a/wal/1", b"wal", 1).unwrap();
        aes.put("pg-a/wal/1", wal.into(), Durability::Durable)
            .await
            .unwrap();
        aes.mark_encryption().await.unwrap();
        assert!(aes.check_encryption().await.unwrap());
        let text = std::fs::read_to_string(tmp.path().join(MARKER_KEY)).unwrap();
        assert!(text.contains("aes-256-gcm"), "{text}");
        aes.mark_encryption().await.unwrap();

        let no_key = clear.check_encryption().await.unwrap_err();
        assert!(matches!(no_key, BackupError::KeyMismatch { .. }));
        let m = no_key.to_string();
        assert!(m.contains(&tmp.path().display().to_string()), "{m}");
        assert!(m.contains("no repository_cipher"), "{m}");
        let wrong = clear.clone().with_codec(codec(Cipher::Aes256Gcm, 2));
        let m = wrong.mark_encryption().await.unwrap_err().to_string();
        assert!(m.contains("does not hold the key"), "{m}");
        let chacha = clear.clone().with_codec(codec(Cipher::ChaCha20Poly1305, 1));
        let m = chacha.check_encryption().await.unwrap_err().to_string();
        assert!(m.contains("chacha20-poly1305"), "{m}");

        // Without the marker, objects written with another key or in clear are
        // refused: a key is never given to a repository it did not write.
        std::fs::remove_file(tmp.path().join(MARKER_KEY)).unwrap();
        let m = wrong.mark_encryption().await.unwrap_err().to_string();
        assert!(m.contains("cannot authenticate"), "{m}");
        let tmp2 = tempfile::tempdir().unwrap();
        let old = Repository::local(tmp2.path()).unwrap();
        let (obj, _) = old.codec().encode("pg-b/wal/1", b"wal", 1).unwrap();
        old.put("pg-b/wal/1", obj.into(), Durability::Durable)
            .await
            .unwrap();
        old.mark_encryption().await.unwrap();
        assert!(!old.check_encryption().await.unwrap());
        let keyed = old.clone().with_codec(codec(Cipher::Aes256Gcm, 1));
        let m = keyed.mark_encryption().await.unwrap_err().to_string();
        assert!(m.contains("written without encryption"), "{m}");
        assert!(!tmp2.path().join(MARKER_KEY).exists());
    }
}
