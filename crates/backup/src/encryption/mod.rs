//! Encryption at rest: the ciphers, the keys derived from a region's key file, and the
//! marker object that says how a repository is encrypted.
//!
//! A region with `repository_cipher` and `repository_key_file` encrypts and
//! authenticates every object it stores ([`crate::object`] does the sealing). From the
//! 32 bytes of the key file ([`RepositoryKey`]) HKDF-SHA256 derives one key per
//! purpose, so no key is used for two things:
//!
//! | subkey | used for |
//! | --- | --- |
//! | object key | the AEAD cipher (AES-256-GCM or ChaCha20-Poly1305) of every object |
//! | digest key | HMAC-SHA256 of content: what names content objects and what object headers carry, so that the repository shows no sha256 of anyone's data while equal content still has equal names (deduplication) |
//! | check key | the key check value in the [`marker`], which tells a wrong key at once |
//!
//! Each object gets a fresh random 96-bit nonce, stored with it. With random nonces one
//! key may seal about 2^32 objects before a repeated nonce becomes a risk worth naming;
//! at 8 MiB a chunk that is 32 PiB of content, far beyond a region's life.
//!
//! # Layout
//! - this module: [`Cipher`] and [`Encryption`] (the derived keys and the primitives).
//! - [`key_file`]: reading and checking a key file.
//! - [`marker`]: the clear-text object that records the cipher and the key check value.

pub mod key_file;
pub mod marker;

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{self, AeadInPlace, KeyInit};
use chacha20poly1305::ChaCha20Poly1305;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::Zeroizing;

pub use key_file::RepositoryKey;

/// Bytes of a nonce.
pub const NONCE_LEN: usize = 12;
/// Bytes of an authentication tag.
pub const TAG_LEN: usize = 16;

/// The AEAD cipher a repository is encrypted with (`repository_cipher`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Cipher {
    /// AES-256 in Galois/Counter Mode: fastest where the CPU has AES instructions
    /// (AES-NI and PCLMULQDQ on x86-64, found at run time).
    #[serde(rename = "aes-256-gcm")]
    Aes256Gcm,
    /// ChaCha20-Poly1305: as safe, and faster on CPUs without AES instructions.
    #[serde(rename = "chacha20-poly1305")]
    ChaCha20Poly1305,
}

impl Cipher {
    /// Every cipher, for messages.
    pub const ALL: [Cipher; 2] = [Cipher::Aes256Gcm, Cipher::ChaCha20Poly1305];

    /// The name written in configuration files and in the marker.
    pub fn name(self) -> &'static str {
        match self {
            Self::Aes256Gcm => "aes-256-gcm",
            Self::ChaCha20Poly1305 => "chacha20-poly1305",
        }
    }

    /// The byte that names the cipher in an encrypted object's header.
    pub(crate) fn id(self) -> u8 {
        match self {
            Self::Aes256Gcm => 1,
            Self::ChaCha20Poly1305 => 2,
        }
    }

    pub(crate) fn from_id(id: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.id() == id)
    }
}

impl std::fmt::Display for Cipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Cipher {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|c| c.name() == s.trim())
            .ok_or_else(|| {
                format!(
                    "unknown repository_cipher '{s}'; use \"aes-256-gcm\" or \"chacha20-poly1305\""
                )
            })
    }
}

/// The AEAD of one repository, keyed.
enum Sealer {
    // Boxed: the expanded AES key schedule is large and this is moved around.
    Aes(Box<Aes256Gcm>),
    ChaCha(Box<ChaCha20Poly1305>),
}

/// The keys derived from a repository key for one cipher. Cheap to share (`Arc`).
pub struct Encryption {
    cipher: Cipher,
    sealer: Sealer,
    digest_mac: Hmac<Sha256>,
    key_check: [u8; 32],
}

impl std::fmt::Debug for Encryption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the keys.
        f.debug_struct("Encryption")
            .field("cipher", &self.cipher)
            .finish_non_exhaustive()
    }
}

/// Salt of the key derivation: fixed, since the input is already a uniformly random
/// key; it separates these subkeys from any other use of the same bytes.
const HKDF_SALT: &[u8] = b"lifeboat repository key v1";

/// What the key check value is an HMAC of.
const KEY_CHECK_INPUT: &[u8] = b"lifeboat repository key check";

impl Encryption {
    /// Derives the object, digest and check keys of `cipher` from `key`.
    pub fn new(cipher: Cipher, key: &RepositoryKey) -> Self {
        let hk = hkdf::Hkdf::<Sha256>::new(Some(HKDF_SALT), key.bytes());
        let derive = |purpose: &str| {
            let mut out = Zeroizing::new([0u8; 32]);
            // The info names the cipher too, so one key file used with both ciphers
            // never gives either the other's key. 32 bytes is far below HKDF's limit.
            let info = format!("lifeboat {purpose} {}", cipher.name());
            hk.expand(info.as_bytes(), out.as_mut())
                .unwrap_or_else(|_| unreachable!("32 bytes is a valid HKDF-SHA256 length"));
            out
        };
        let object_key = derive("object encryption");
        let sealer = match cipher {
            Cipher::Aes256Gcm => Sealer::Aes(Box::new(Aes256Gcm::new(object_key.as_ref().into()))),
            Cipher::ChaCha20Poly1305 => {
                Sealer::ChaCha(Box::new(ChaCha20Poly1305::new(object_key.as_ref().into())))
            }
        };
        let digest_mac = hmac_with(&derive("content digest"));
        let key_check = hmac_with(&derive("key check"))
            .chain_update(KEY_CHECK_INPUT)
            .finalize()
            .into_bytes()
            .into();
        Self {
            cipher,
            sealer,
            digest_mac,
            key_check,
        }
    }

    pub fn cipher(&self) -> Cipher {
        self.cipher
    }

    /// HMAC-SHA256 of `data` under the digest key: the keyed digest that names content.
    pub fn digest(&self, data: &[u8]) -> [u8; 32] {
        self.digest_mac
            .clone()
            .chain_update(data)
            .finalize()
            .into_bytes()
            .into()
    }

    /// The key check value recorded in the marker: an HMAC of a constant under the
    /// check key, which tells whether a key is the repository's without revealing it.
    pub fn key_check(&self) -> String {
        hex::encode(self.key_check)
    }

    /// Encrypts `buf` in place and returns the tag; `aad` is authenticated, not
    /// encrypted.
    pub(crate) fn seal(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
    ) -> Result<[u8; TAG_LEN], aead::Error> {
        let nonce = nonce.into();
        let tag = match &self.sealer {
            Sealer::Aes(c) => c.encrypt_in_place_detached(nonce, aad, buf),
            Sealer::ChaCha(c) => c.encrypt_in_place_detached(nonce, aad, buf),
        }?;
        Ok(tag.into())
    }

    /// Authenticates and decrypts `buf` in place; on failure `buf` holds nothing usable.
    pub(crate) fn open(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), aead::Error> {
        let nonce = nonce.into();
        let tag = tag.into();
        match &self.sealer {
            Sealer::Aes(c) => c.decrypt_in_place_detached(nonce, aad, buf, tag),
            Sealer::ChaCha(c) => c.decrypt_in_place_detached(nonce, aad, buf, tag),
        }
    }
}

fn hmac_with(key: &[u8; 32]) -> Hmac<Sha256> {
    <Hmac<Sha256> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"))
}

/// A fresh random nonce from the operating system's generator.
pub(crate) fn random_nonce() -> [u8; NONCE_LEN] {
    use rand::RngCore;
    let mut n = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut n);
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> RepositoryKey {
        RepositoryKey::from_bytes([b; 32])
    }

    #[test]
    fn subkeys_differ_by_purpose_cipher_and_key() {
        let a = Encryption::new(Cipher::Aes256Gcm, &key(1));
        let c = Encryption::new(Cipher::ChaCha20Poly1305, &key(1));
        let other = Encryption::new(Cipher::Aes256Gcm, &key(2));
        assert_ne!(a.key_check(), c.key_check());
        assert_ne!(a.key_check(), other.key_check());
        assert_eq!(
            a.key_check(),
            Encryption::new(Cipher::Aes256Gcm, &key(1)).key_check()
        );
        // The digest is keyed: not the sha256 of the content, not another key's.
        let data = b"some content";
        let sha: [u8; 32] = <Sha256 as sha2::Digest>::digest(data).into();
        assert_ne!(a.digest(data), sha);
        assert_ne!(a.digest(data), other.digest(data));
        assert_eq!(a.digest(data), a.digest(data));
    }

    #[test]
    fn seal_and_open_bind_the_associated_data() {
        for cipher in Cipher::ALL {
            let e = Encryption::new(cipher, &key(7));
            let nonce = random_nonce();
            let mut buf = b"secret rows".to_vec();
            let tag = e.seal(&nonce, b"pg-a/wal/1", &mut buf).unwrap();
            assert_ne!(&buf[..], b"secret rows");
            let mut wrong_name = buf.clone();
            assert!(
                e.open(&nonce, b"pg-a/wal/2", &mut wrong_name, &tag)
                    .is_err()
            );
            let wrong_key = Encryption::new(cipher, &key(8));
            let mut copy = buf.clone();
            assert!(
                wrong_key
                    .open(&nonce, b"pg-a/wal/1", &mut copy, &tag)
                    .is_err()
            );
            e.open(&nonce, b"pg-a/wal/1", &mut buf, &tag).unwrap();
            assert_eq!(&buf[..], b"secret rows");
        }
    }

    #[test]
    fn cipher_names_parse() {
        assert_eq!("aes-256-gcm".parse::<Cipher>().unwrap(), Cipher::Aes256Gcm);
        assert_eq!(
            "chacha20-poly1305".parse::<Cipher>().unwrap(),
            Cipher::ChaCha20Poly1305
        );
        assert!("aes-128-cbc".parse::<Cipher>().is_err());
        for c in Cipher::ALL {
            assert_eq!(Cipher::from_id(c.id()), Some(c));
        }
    }
}
