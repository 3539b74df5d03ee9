//! The format of every stored object, in clear or encrypted: a fixed header, then one
//! zstd frame (sealed with the repository's cipher when it has one).
//!
//! In clear (a repository without `repository_cipher`):
//!
//! ```text
//! offset 0   4 bytes   magic "LBK1"
//! offset 4  32 bytes   sha256 of the uncompressed content
//! offset 36  8 bytes   uncompressed length, little endian
//! offset 44  4 bytes   CRC-32 of the zstd frame, little endian
//! offset 48  ...       zstd frame of the content
//! ```
//!
//! Encrypted ([`crate::encryption`]):
//!
//! ```text
//! offset 0   4 bytes   magic "LBE1"
//! offset 4   1 byte    cipher: 1 aes-256-gcm, 2 chacha20-poly1305
//! offset 5  12 bytes   nonce, random for each object
//! offset 17 32 bytes   HMAC-SHA256 of the uncompressed content under the digest key
//! offset 49  8 bytes   uncompressed length, little endian
//! offset 57  ...       the zstd frame of the content, encrypted
//! last      16 bytes   authentication tag over the header, the object's key and the
//!                      encrypted frame
//! ```
//!
//! Keeping the checksum inside the object (not in object metadata) works the same on
//! every backend, lets a WAL push compare an existing object by reading the header, and
//! makes every object verifiable on its own. The CRC covers the compressed bytes, so
//! that a flipped bit the decompressor would not notice (in an optional field of the
//! zstd frame header) is still reported: any damaged, truncated or half-written object
//! fails [`Codec::decode`], and is never accepted. An encrypted object needs no CRC:
//! its tag authenticates every byte, and it is computed over the object's key (its
//! path in the repository) too, so an object copied or moved to another name (one
//! chunk put in the place of another, one instance's WAL in another's) fails as
//! surely as a damaged one. Its digest is keyed, so neither headers nor content
//! object names (which are the digest) reveal the sha256 of anyone's data.
//!
//! A repository is read with the [`Codec`] its configuration gives
//! ([`crate::Repository::codec`]); an object of the other kind (a clear object in an
//! encrypted repository, which anyone who can write to the repository could have put
//! there, or an encrypted one without the key) is refused, naming it.

use std::sync::Arc;

use sha2::{Digest as _, Sha256};

use crate::BackupError;
use crate::encryption::{self, Cipher, Encryption, NONCE_LEN, TAG_LEN};

const MAGIC: &[u8; 4] = b"LBK1";
const MAGIC_ENCRYPTED: &[u8; 4] = b"LBE1";
/// Bytes before the zstd frame of an object in clear.
pub const HEADER_LEN: usize = 48;
/// Bytes before the encrypted zstd frame of an encrypted object.
pub const ENCRYPTED_HEADER_LEN: usize = 4 + 1 + NONCE_LEN + 32 + 8;
/// Enough bytes of any object to read its header ([`Codec::header`]).
pub const MAX_HEADER_LEN: usize = ENCRYPTED_HEADER_LEN;

/// A content digest: sha256 in clear, HMAC-SHA256 in an encrypted repository.
pub type Digest = [u8; 32];

/// The header of a stored object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The digest of the content ([`Codec::digest`]).
    pub digest: Digest,
    pub len: u64,
}

/// The sha256 of `data` (what a clear repository's digests are).
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// How one repository's objects are written and read: in clear, or encrypted and
/// authenticated. Cheap to clone.
#[derive(Clone, Default)]
pub struct Codec {
    encryption: Option<Arc<Encryption>>,
}

impl std::fmt::Debug for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.cipher() {
            Some(c) => write!(f, "Codec({c})"),
            None => f.write_str("Codec(clear)"),
        }
    }
}

impl Codec {
    /// Objects in clear, checksummed.
    pub fn clear() -> Self {
        Self::default()
    }

    /// Objects encrypted and authenticated with `encryption`.
    pub fn encrypted(encryption: Encryption) -> Self {
        Self {
            encryption: Some(Arc::new(encryption)),
        }
    }

    pub fn encryption(&self) -> Option<&Encryption> {
        self.encryption.as_deref()
    }

    pub fn cipher(&self) -> Option<Cipher> {
        self.encryption.as_ref().map(|e| e.cipher())
    }

    /// The digest that names content and that headers carry: the sha256 in clear, an
    /// HMAC under the repository's digest key when encrypted (equal content still has
    /// equal digests, so deduplication works within the repository).
    pub fn digest(&self, raw: &[u8]) -> Digest {
        match &self.encryption {
            None => sha256(raw),
            Some(e) => e.digest(raw),
        }
    }

    /// Compresses (and seals) `raw` into the object stored under `key`, returning it
    /// and the content's digest.
    pub fn encode(
        &self,
        key: &str,
        raw: &[u8],
        level: i32,
    ) -> Result<(Vec<u8>, Digest), BackupError> {
        let digest = self.digest(raw);
        Ok((self.encode_with(key, raw, &digest, level)?, digest))
    }

    /// Like [`Codec::encode`] with the digest the caller has computed already (with
    /// [`Codec::digest`], e.g. to name a content object).
    pub fn encode_with(
        &self,
        key: &str,
        raw: &[u8],
        digest: &Digest,
        level: i32,
    ) -> Result<Vec<u8>, BackupError> {
        let Some(e) = &self.encryption else {
            let mut out = compress(clear_header(raw.len(), digest), raw, level)?;
            let crc = crc32fast::hash(&out[HEADER_LEN..]);
            out[44..48].copy_from_slice(&crc.to_le_bytes());
            return Ok(out);
        };
        let nonce = encryption::random_nonce();
        let mut head = Vec::with_capacity(ENCRYPTED_HEADER_LEN + raw.len() / 3 + TAG_LEN);
        head.extend_from_slice(MAGIC_ENCRYPTED);
        head.push(e.cipher().id());
        head.extend_from_slice(&nonce);
        head.extend_from_slice(digest);
        head.extend_from_slice(&(raw.len() as u64).to_le_bytes());
        let mut out = compress(head, raw, level)?;
        let (header, frame) = out.split_at_mut(ENCRYPTED_HEADER_LEN);
        let tag = e
            .seal(&nonce, &associated_data(header, key), frame)
            .map_err(|_| BackupError::corrupt(key, "cannot encrypt the object"))?;
        out.extend_from_slice(&tag);
        Ok(out)
    }

    /// Parses the header of the object stored under `key` (enough of it:
    /// [`MAX_HEADER_LEN`] bytes). Only [`Codec::decode`] proves the header genuine.
    pub fn header(&self, key: &str, stored: &[u8]) -> Result<Header, BackupError> {
        match (&self.encryption, stored.get(..4)) {
            (None, Some(m)) if m == MAGIC => clear_header_of(key, stored),
            (Some(e), Some(m)) if m == MAGIC_ENCRYPTED => {
                encrypted_header_of(e, key, stored).map(|(h, _)| h)
            }
            (None, Some(m)) if m == MAGIC_ENCRYPTED => Err(BackupError::KeyMismatch {
                object: key.to_string(),
                reason: format!(
                    "the object is encrypted ({}), and the region has no repository_cipher and repository_key_file",
                    stored
                        .get(4)
                        .and_then(|&id| Cipher::from_id(id))
                        .map_or("an unknown cipher", Cipher::name)
                ),
            }),
            (Some(e), Some(m)) if m == MAGIC => Err(BackupError::KeyMismatch {
                object: key.to_string(),
                reason: format!(
                    "the object is not encrypted, but the region's repository is ({}): it was written without the key, or put there by someone else, and is not trusted",
                    e.cipher()
                ),
            }),
            _ => Err(BackupError::corrupt(
                key,
                "no Lifeboat object header (truncated or not written by Lifeboat)",
            )),
        }
    }

    /// Authenticates (or checks the CRC of) and decompresses the object stored under
    /// `key`, and checks its length and the digest of its content.
    pub fn decode(&self, key: &str, stored: &[u8]) -> Result<(Header, Vec<u8>), BackupError> {
        let (h, raw) = self.decode_restoring(key, stored)?;
        let actual = self.digest(&raw);
        if actual != h.digest {
            return Err(BackupError::corrupt(
                key,
                format!(
                    "digest mismatch: content has {}, header says {}",
                    hex::encode(actual),
                    hex::encode(h.digest)
                ),
            ));
        }
        Ok((h, raw))
    }

    /// Like [`Codec::decode`] without recomputing the content's digest: for restores,
    /// which read every byte of a backup or of the WAL once and must be fast. The CRC
    /// (or the tag) covers every stored byte of the zstd frame, so the content is that
    /// of the object as written; `lifeboat backup verify` checks the digest too.
    pub fn decode_restoring(
        &self,
        key: &str,
        stored: &[u8],
    ) -> Result<(Header, Vec<u8>), BackupError> {
        let h = self.header(key, stored)?;
        let Some(e) = &self.encryption else {
            let mut crc = [0u8; 4];
            crc.copy_from_slice(&stored[44..48]);
            if crc32fast::hash(&stored[HEADER_LEN..]) != u32::from_le_bytes(crc) {
                return Err(BackupError::corrupt(
                    key,
                    "CRC mismatch: the stored bytes are damaged or truncated",
                ));
            }
            return Ok((h, decompress(key, &h, &stored[HEADER_LEN..])?));
        };
        let (_, nonce) = encrypted_header_of(e, key, stored)?;
        let body = &stored[ENCRYPTED_HEADER_LEN..];
        if body.len() < TAG_LEN {
            return Err(BackupError::corrupt(key, "the object is truncated"));
        }
        let (frame, tag) = body.split_at(body.len() - TAG_LEN);
        let mut tag_bytes = [0u8; TAG_LEN];
        tag_bytes.copy_from_slice(tag);
        let mut frame = frame.to_vec();
        let aad = associated_data(&stored[..ENCRYPTED_HEADER_LEN], key);
        e.open(&nonce, &aad, &mut frame, &tag_bytes).map_err(|_| {
            BackupError::corrupt(
                key,
                format!(
                    "the object fails authentication ({}): its bytes are damaged or truncated, it was moved here from another name, or the region's key is not the one it was written with",
                    e.cipher()
                ),
            )
        })?;
        Ok((h, decompress(key, &h, &frame)?))
    }
}

fn clear_header(len: usize, digest: &Digest) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + len / 3);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(digest);
    out.extend_from_slice(&(len as u64).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out
}

/// Appends the zstd frame of `raw` to `out`.
fn compress(out: Vec<u8>, raw: &[u8], level: i32) -> Result<Vec<u8>, BackupError> {
    let mut enc = zstd::stream::Encoder::new(out, level)
        .map_err(BackupError::io("cannot start zstd compression"))?;
    std::io::Write::write_all(&mut enc, raw).map_err(BackupError::io("zstd compression failed"))?;
    enc.finish()
        .map_err(BackupError::io("zstd compression failed"))
}

fn clear_header_of(key: &str, stored: &[u8]) -> Result<Header, BackupError> {
    if stored.len() < HEADER_LEN {
        return Err(BackupError::corrupt(key, "the object header is truncated"));
    }
    let mut digest = [0u8; 32];
    digest.copy_from_slice(&stored[4..36]);
    let mut len = [0u8; 8];
    len.copy_from_slice(&stored[36..44]);
    Ok(Header {
        digest,
        len: u64::from_le_bytes(len),
    })
}

fn encrypted_header_of(
    e: &Encryption,
    key: &str,
    stored: &[u8],
) -> Result<(Header, [u8; NONCE_LEN]), BackupError> {
    if stored.len() < ENCRYPTED_HEADER_LEN {
        return Err(BackupError::corrupt(key, "the object header is truncated"));
    }
    if stored[4] != e.cipher().id() {
        // A flipped byte could do this too, but the tag check would then fail anyway:
        // naming the cipher is the more useful message.
        return Err(BackupError::KeyMismatch {
            object: key.to_string(),
            reason: format!(
                "the object is encrypted with {}, the region's repository_cipher is {}",
                Cipher::from_id(stored[4]).map_or("an unknown cipher", Cipher::name),
                e.cipher()
            ),
        });
    }
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&stored[5..5 + NONCE_LEN]);
    let mut digest = [0u8; 32];
    digest.copy_from_slice(&stored[17..49]);
    let mut len = [0u8; 8];
    len.copy_from_slice(&stored[49..57]);
    Ok((
        Header {
            digest,
            len: u64::from_le_bytes(len),
        },
        nonce,
    ))
}

/// What the tag authenticates besides the encrypted frame: the header and the
/// object's key, so that an object is only ever accepted under the name it was
/// written under.
fn associated_data(header: &[u8], key: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(header.len() + key.len());
    aad.extend_from_slice(header);
    aad.extend_from_slice(key.as_bytes());
    aad
}

fn decompress(key: &str, h: &Header, frame: &[u8]) -> Result<Vec<u8>, BackupError> {
    // The declared length bounds the allocation; a corrupt length fails below anyway.
    let cap = usize::try_from(h.len).unwrap_or(0).min(1 << 30);
    let mut raw = Vec::with_capacity(cap);
    let mut dec = zstd::stream::Decoder::new(frame)
        .map_err(|e| BackupError::corrupt(key, format!("cannot decompress: {e}")))?;
    std::io::copy(&mut dec, &mut raw)
        .map_err(|e| BackupError::corrupt(key, format!("cannot decompress: {e}")))?;
    if raw.len() as u64 != h.len {
        return Err(BackupError::corrupt(
            key,
            format!("decompressed to {} bytes, header says {}", raw.len(), h.len),
        ));
    }
    Ok(raw)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encryption::RepositoryKey;

    fn sample() -> Vec<u8> {
        (0..5000u32).flat_map(|i| (i % 251).to_le_bytes()).collect()
    }

    fn encrypted(cipher: Cipher, key_byte: u8) -> Codec {
        Codec::encrypted(Encryption::new(
            cipher,
            &RepositoryKey::from_bytes([key_byte; 32]),
        ))
    }

    #[test]
    fn round_trip_and_every_flipped_byte_is_caught() {
        let raw = sample();
        let clear = Codec::clear();
        let (stored, digest) = clear.encode("x", &raw, 3).unwrap();
        assert_eq!(digest, sha256(&raw));
        let (h, back) = clear.decode("x", &stored).unwrap();
        assert_eq!(back, raw);
        assert_eq!(h.digest, digest);
        for i in 0..stored.len() {
            let mut bad = stored.clone();
            bad[i] ^= 0x01;
            assert!(clear.decode("x", &bad).is_err(), "flip at {i} not caught");
        }
        assert!(clear.decode("x", &stored[..stored.len() - 1]).is_err());
        assert!(clear.decode("x", &stored[..10]).is_err());
    }

    #[test]
    fn a_restore_catches_every_flipped_byte_of_length_crc_and_frame() {
        let raw = sample();
        let clear = Codec::clear();
        let (stored, _) = clear.encode("x", &raw, 3).unwrap();
        assert_eq!(clear.decode_restoring("x", &stored).unwrap().1, raw);
        for i in (0..4).chain(36..stored.len()) {
            let mut bad = stored.clone();
            bad[i] ^= 0x01;
            assert!(
                clear.decode_restoring("x", &bad).is_err(),
                "flip at {i} not caught"
            );
        }
    }

    #[test]
    fn encrypted_objects_round_trip_and_every_flipped_byte_fails_a_restore() {
        for cipher in Cipher::ALL {
            let codec = encrypted(cipher, 1);
            let raw = sample();
            let (stored, digest) = codec.encode("pg-a/data/00/x", &raw, 3).unwrap();
            assert_ne!(digest, sha256(&raw), "the digest must be keyed");
            assert_eq!(
                codec.header("pg-a/data/00/x", &stored).unwrap().digest,
                digest
            );
            assert_eq!(codec.decode("pg-a/data/00/x", &stored).unwrap().1, raw);
            // Neither the sha256 nor the compressed content is in the object.
            let (clear, _) = Codec::clear().encode("x", &raw, 3).unwrap();
            let sha = sha256(&raw);
            assert!(!stored.windows(32).any(|w| w == sha));
            assert!(
                !stored
                    .windows(16)
                    .any(|w| w == &clear[HEADER_LEN + 8..HEADER_LEN + 24])
            );
            for i in 0..stored.len() {
                let mut bad = stored.clone();
                bad[i] ^= 0x01;
                let e = codec.decode_restoring("pg-a/data/00/x", &bad).unwrap_err();
                assert!(e.to_string().contains("pg-a/data/00/x"), "flip at {i}: {e}");
            }
            assert!(
                codec
                    .decode_restoring("pg-a/data/00/x", &stored[..stored.len() - 1])
                    .is_err()
            );
            // Encrypting twice gives different objects (a fresh nonce each time).
            assert_ne!(codec.encode("pg-a/data/00/x", &raw, 3).unwrap().0, stored);
        }
    }

    #[test]
    fn an_object_is_refused_under_another_name_key_or_kind() {
        let codec = encrypted(Cipher::Aes256Gcm, 1);
        let raw = sample();
        let (stored, _) = codec
            .encode("pg-a/wal/000000010000000000000001", &raw, 1)
            .unwrap();
        let moved = codec
            .decode_restoring("pg-a/wal/000000010000000000000002", &stored)
            .unwrap_err();
        assert!(matches!(moved, BackupError::Corrupt { .. }), "{moved}");
        assert!(
            moved.to_string().contains("fails authentication"),
            "{moved}"
        );
        let wrong_key = encrypted(Cipher::Aes256Gcm, 2)
            .decode_restoring("pg-a/wal/000000010000000000000001", &stored)
            .unwrap_err();
        assert!(wrong_key.to_string().contains("fails authentication"));
        let other_cipher = encrypted(Cipher::ChaCha20Poly1305, 1)
            .decode("pg-a/wal/000000010000000000000001", &stored)
            .unwrap_err();
        assert!(matches!(other_cipher, BackupError::KeyMismatch { .. }));
        let no_key = Codec::clear()
            .decode("pg-a/wal/000000010000000000000001", &stored)
            .unwrap_err();
        assert!(
            matches!(no_key, BackupError::KeyMismatch { .. }),
            "{no_key}"
        );
        assert!(no_key.to_string().contains("aes-256-gcm"), "{no_key}");
        let (clear, _) = Codec::clear().encode("k", &raw, 1).unwrap();
        let planted = codec.decode("k", &clear).unwrap_err();
        assert!(
            matches!(planted, BackupError::KeyMismatch { .. }),
            "{planted}"
        );
    }
}
