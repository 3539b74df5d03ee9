//! The CPU cost of encryption at rest, without the disk, the cluster or other load's
//! noise: real files cut into chunks as a base backup cuts them, each encoded (digest,
//! zstd, and for the encrypted codec the AEAD seal) and decoded (as a restore does, and
//! as `verify` does), in clear and encrypted, on one thread, alternating. Prints JSON;
//! used by `bench/backup/run.sh`.
//!
//! ```text
//! bench_codec --files DIR | --random-mib N [--limit-mib N] [--level L] [--rounds R] [--cipher C]
//! ```
//! `--random-mib` uses random bytes instead of files: content zstd cannot shrink, so
//! the cipher works on every byte (the worst case for its share of the cost).

// Tests and benchmarks may panic on what they set up themselves.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::Instant;

use lifeboat_backup::CHUNK_SIZE;
use lifeboat_backup::encryption::{Cipher, Encryption, RepositoryKey};
use lifeboat_backup::object::Codec;

fn main() {
    if let Err(e) = run() {
        eprintln!("bench_codec: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (mut files, mut limit, mut level, mut rounds) = (None, 512u64 << 20, 3, 5);
    let mut random = None;
    let mut cipher = Cipher::Aes256Gcm;
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--files" => files = Some(PathBuf::from(value)),
            "--random-mib" => random = Some(value.parse::<u64>()? << 20),
            "--limit-mib" => limit = value.parse::<u64>()? << 20,
            "--level" => level = value.parse()?,
            "--rounds" => rounds = value.parse()?,
            "--cipher" => cipher = value.parse()?,
            other => return Err(format!("unknown flag {other}").into()),
        }
    }
    let chunks = match (files, random) {
        (Some(dir), None) => read_chunks(&dir, limit)?,
        (None, Some(n)) => random_chunks(n)?,
        _ => return Err("give --files or --random-mib".into()),
    };
    let bytes: u64 = chunks.iter().map(|c| c.len() as u64).sum();
    let mut key = [0u8; 32];
    fill_random(&mut key)?;
    let codecs = [
        ("clear", Codec::clear()),
        (
            "encrypted",
            Codec::encrypted(Encryption::new(cipher, &RepositoryKey::from_bytes(key))),
        ),
    ];
    // [codec][encode, restore, verify, digest] -> seconds of each round
    let mut times = vec![vec![Vec::new(); 4]; 2];
    for round in 0..rounds {
        // Alternate which goes first, so neither always pays for warming up.
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for i in order {
            let codec = &codecs[i].1;
            let t = Instant::now();
            for raw in &chunks {
                std::hint::black_box(codec.digest(raw));
            }
            times[i][3].push(t.elapsed().as_secs_f64());
            let t = Instant::now();
            let stored: Vec<(String, Vec<u8>)> = chunks
                .iter()
                .enumerate()
                .map(|(n, raw)| {
                    let key = format!("pg-bench1/data/{n:08}");
                    let digest = codec.digest(raw);
                    let object = codec.encode_with(&key, raw, &digest, level).unwrap();
                    (key, object)
                })
                .collect();
            times[i][0].push(t.elapsed().as_secs_f64());
            let t = Instant::now();
            for (key, object) in &stored {
                codec.decode_restoring(key, object).unwrap();
            }
            times[i][1].push(t.elapsed().as_secs_f64());
            let t = Instant::now();
            for (key, object) in &stored {
                codec.decode(key, object).unwrap();
            }
            times[i][2].push(t.elapsed().as_secs_f64());
        }
    }
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let mut out = serde_json::Map::new();
    out.insert("cipher".into(), cipher.name().into());
    out.insert("bytes".into(), bytes.into());
    out.insert("chunks".into(), chunks.len().into());
    for (j, what) in ["encode", "restore_decode", "verify_decode", "digest"]
        .iter()
        .enumerate()
    {
        let c = median(&times[0][j]);
        let e = median(&times[1][j]);
        out.insert(
            (*what).into(),
            serde_json::json!({
                "clear_mib_per_s": bytes as f64 / c / 1048576.0,
                "encrypted_mib_per_s": bytes as f64 / e / 1048576.0,
                "encrypted_over_clear": e / c,
            }),
        );
    }
    out.insert(
        "cipher_alone_mib_per_s".into(),
        cipher_alone(cipher, &chunks).into(),
    );
    println!("{}", serde_json::Value::Object(out));
    Ok(())
}

/// The AEAD by itself over the uncompressed chunks (an upper bound of its share).
fn cipher_alone(cipher: Cipher, chunks: &[Vec<u8>]) -> f64 {
    use aes_gcm::aead::{AeadInPlace, KeyInit};
    let key = [7u8; 32];
    let nonce = [1u8; 12];
    let mut buf = chunks.to_vec();
    let t = Instant::now();
    let mut bytes = 0u64;
    for b in &mut buf {
        bytes += b.len() as u64;
        match cipher {
            Cipher::Aes256Gcm => aes_gcm::Aes256Gcm::new(&key.into())
                .encrypt_in_place_detached(&nonce.into(), b"", b)
                .map(|_| ()),
            Cipher::ChaCha20Poly1305 => chacha20poly1305::ChaCha20Poly1305::new(&key.into())
                .encrypt_in_place_detached(&nonce.into(), b"", b)
                .map(|_| ()),
        }
        .unwrap();
    }
    bytes as f64 / t.elapsed().as_secs_f64() / 1048576.0
}

fn fill_random(buf: &mut [u8]) -> std::io::Result<()> {
    std::fs::File::open("/dev/urandom").and_then(|mut f| std::io::Read::read_exact(&mut f, buf))
}

fn random_chunks(total: u64) -> std::io::Result<Vec<Vec<u8>>> {
    let mut chunks = Vec::new();
    let mut left = total;
    while left > 0 {
        let mut c = vec![0u8; left.min(CHUNK_SIZE) as usize];
        fill_random(&mut c)?;
        left -= c.len() as u64;
        chunks.push(c);
    }
    Ok(chunks)
}

/// Chunks of up to [`CHUNK_SIZE`] of the files under `dir`, largest files first, up
/// to `limit` bytes in all.
fn read_chunks(dir: &Path, limit: u64) -> std::io::Result<Vec<Vec<u8>>> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)?.flatten() {
            let meta = e.metadata()?;
            if meta.is_dir() {
                stack.push(e.path());
            } else if meta.is_file() {
                files.push((meta.len(), e.path()));
            }
        }
    }
    files.sort_by_key(|f| std::cmp::Reverse(f.0));
    let mut chunks = Vec::new();
    let mut total = 0u64;
    for (_, path) in files {
        let data = std::fs::read(&path)?;
        for c in data.chunks(CHUNK_SIZE as usize) {
            if total >= limit {
                return Ok(chunks);
            }
            total += c.len() as u64;
            chunks.push(c.to_vec());
        }
    }
    Ok(chunks)
}
