//! Instance ids: `pg-` followed by six lowercase letters or digits, like a managed cloud's.

use std::fmt;

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::InvalidInput;

const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
const PREFIX: &str = "pg-";
const RANDOM_LEN: usize = 6;

/// The id of an instance, stable for its whole life and never reused while it exists.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct InstanceId(String);

impl InstanceId {
    /// A new random id. Uniqueness is enforced by the metadata store, which retries.
    pub fn generate() -> Self {
        let mut rng = rand::thread_rng();
        let tail: String = (0..RANDOM_LEN)
            .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
            .collect();
        Self(format!("{PREFIX}{tail}"))
    }

    /// Accepts only ids of the shape Lifeboat generates, so an id can safely name a
    /// directory.
    pub fn parse(s: &str) -> Result<Self, InvalidInput> {
        let ok = s.len() == PREFIX.len() + RANDOM_LEN
            && s.starts_with(PREFIX)
            && s[PREFIX.len()..].bytes().all(|b| ALPHABET.contains(&b));
        if ok {
            Ok(Self(s.to_string()))
        } else {
            Err(InvalidInput::new(
                format!("'{s}' is not an instance id"),
                "instance ids look like pg-3kq9x2; run `lifeboat instance list` to see them",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_parse_back() {
        for _ in 0..100 {
            let id = InstanceId::generate();
            assert_eq!(InstanceId::parse(id.as_str()).unwrap(), id);
        }
    }

    #[test]
    fn rejects_paths_and_other_shapes() {
        for bad in [
            "",
            "pg-",
            "pg-ABCDEF",
            "pg-abc/ef",
            "../etc",
            "pg-abcdefg",
            "xx-abcdef",
        ] {
            assert!(InstanceId::parse(bad).is_err(), "{bad} accepted");
        }
    }
}
