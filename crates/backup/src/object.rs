//! The format of every stored object: a fixed header, then one zstd frame.
//!
//! ```text
//! offset 0   4 bytes   magic "LBK1"
//! offset 4  32 bytes   sha256 of the uncompressed content
//! offset 36  8 bytes   uncompressed length, little endian
//! offset 44  4 bytes   CRC-32 of the zstd frame, little endian
//! offset 48  ...       zstd frame of the content
//! ```
//!
//! Keeping the checksum inside the object (not in object metadata) works the same on
//! every backend, lets a WAL push compare an existing object by reading the header, and
//! makes every object verifiable on its own. The CRC covers the compressed bytes, so
//! that a flipped bit the decompressor would not notice (in an optional field of the
//! zstd frame header) is still reported: any damaged, truncated or half-written object
//! fails [`decode`], and is never accepted.

use sha2::{Digest, Sha256};

use crate::BackupError;

const MAGIC: &[u8; 4] = b"LBK1";
/// Bytes before the zstd frame.
pub const HEADER_LEN: usize = 48;

/// A sha256 digest.
pub type Sha256Sum = [u8; 32];

/// The header of a stored object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub sha256: Sha256Sum,
    pub len: u64,
}

pub fn sha256(data: &[u8]) -> Sha256Sum {
    Sha256::digest(data).into()
}

/// Compresses `raw` into a stored object whose header carries `digest` (the caller
/// has usually computed it already, e.g. to name a content object).
pub fn encode_with(raw: &[u8], digest: &Sha256Sum, level: i32) -> Result<Vec<u8>, BackupError> {
    let mut out = Vec::with_capacity(HEADER_LEN + raw.len() / 3);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(digest);
    out.extend_from_slice(&(raw.len() as u64).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    let mut enc = zstd::stream::Encoder::new(out, level)
        .map_err(BackupError::io("cannot start zstd compression"))?;
    std::io::Write::write_all(&mut enc, raw).map_err(BackupError::io("zstd compression failed"))?;
    let mut out = enc
        .finish()
        .map_err(BackupError::io("zstd compression failed"))?;
    let crc = crc32fast::hash(&out[HEADER_LEN..]);
    out[44..48].copy_from_slice(&crc.to_le_bytes());
    Ok(out)
}

/// Compresses `raw`, returning the object and the content's sha256.
pub fn encode(raw: &[u8], level: i32) -> Result<(Vec<u8>, Sha256Sum), BackupError> {
    let digest = sha256(raw);
    Ok((encode_with(raw, &digest, level)?, digest))
}

/// Parses the header of a stored object named `object` (for messages).
pub fn header(object: &str, stored: &[u8]) -> Result<Header, BackupError> {
    if stored.len() < HEADER_LEN || &stored[..4] != MAGIC {
        return Err(BackupError::corrupt(
            object,
            "no Lifeboat object header (truncated or not written by Lifeboat)",
        ));
    }
    let mut sha = [0u8; 32];
    sha.copy_from_slice(&stored[4..36]);
    let mut len = [0u8; 8];
    len.copy_from_slice(&stored[36..44]);
    Ok(Header {
        sha256: sha,
        len: u64::from_le_bytes(len),
    })
}

/// Decompresses a stored object and checks its CRC, its length and the sha256 of its
/// content.
pub fn decode(object: &str, stored: &[u8]) -> Result<(Header, Vec<u8>), BackupError> {
    let (h, raw) = decompress(object, stored)?;
    let actual = sha256(&raw);
    if actual != h.sha256 {
        return Err(BackupError::corrupt(
            object,
            format!(
                "sha256 mismatch: content has {}, header says {}",
                hex::encode(actual),
                hex::encode(h.sha256)
            ),
        ));
    }
    Ok((h, raw))
}

/// Decompresses a stored object and checks its CRC and length, not the sha256 of its
/// content: for restores, which read every byte of a backup or of the WAL once and
/// must be fast. The CRC covers every stored byte of the zstd frame, so the content
/// is that of the object as written; `lifeboat backup verify` checks the sha256 too.
pub fn decode_restoring(object: &str, stored: &[u8]) -> Result<(Header, Vec<u8>), BackupError> {
    decompress(object, stored)
}

fn decompress(object: &str, stored: &[u8]) -> Result<(Header, Vec<u8>), BackupError> {
    let h = header(object, stored)?;
    let mut crc = [0u8; 4];
    crc.copy_from_slice(&stored[44..48]);
    if crc32fast::hash(&stored[HEADER_LEN..]) != u32::from_le_bytes(crc) {
        return Err(BackupError::corrupt(
            object,
            "CRC mismatch: the stored bytes are damaged or truncated",
        ));
    }
    // The declared length bounds the allocation; a corrupt length fails below anyway.
    let cap = usize::try_from(h.len).unwrap_or(0).min(1 << 30);
    let mut raw = Vec::with_capacity(cap);
    let mut dec = zstd::stream::Decoder::new(&stored[HEADER_LEN..])
        .map_err(|e| BackupError::corrupt(object, format!("cannot decompress: {e}")))?;
    std::io::copy(&mut dec, &mut raw)
        .map_err(|e| BackupError::corrupt(object, format!("cannot decompress: {e}")))?;
    if raw.len() as u64 != h.len {
        return Err(BackupError::corrupt(
            object,
            format!("decompressed to {} bytes, header says {}", raw.len(), h.len),
        ));
    }
    Ok((h, raw))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_every_flipped_byte_is_caught() {
        let raw: Vec<u8> = (0..5000u32).flat_map(|i| (i % 251).to_le_bytes()).collect();
        let (stored, digest) = encode(&raw, 3).unwrap();
        let (h, back) = decode("x", &stored).unwrap();
        assert_eq!(back, raw);
        assert_eq!(h.sha256, digest);
        for i in 0..stored.len() {
            let mut bad = stored.clone();
            bad[i] ^= 0x01;
            assert!(decode("x", &bad).is_err(), "flip at {i} not caught");
        }
        assert!(decode("x", &stored[..stored.len() - 1]).is_err());
        assert!(decode("x", &stored[..10]).is_err());
    }

    #[test]
    fn a_restore_catches_every_flipped_byte_of_length_crc_and_frame() {
        let raw: Vec<u8> = (0..5000u32).flat_map(|i| (i % 251).to_le_bytes()).collect();
        let (stored, _) = encode(&raw, 3).unwrap();
        assert_eq!(decode_restoring("x", &stored).unwrap().1, raw);
        for i in (0..4).chain(36..stored.len()) {
            let mut bad = stored.clone();
            bad[i] ^= 0x01;
            assert!(
                decode_restoring("x", &bad).is_err(),
                "flip at {i} not caught"
            );
        }
    }
}
