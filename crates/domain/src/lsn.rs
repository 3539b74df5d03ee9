//! PostgreSQL's log sequence numbers, written like `0/3000028`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::InvalidInput;

/// A position in the WAL. Serialized in PostgreSQL's `X/Y` form so that manifests and
/// API answers read the same as `pg_current_wal_lsn()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Lsn(pub u64);

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

impl FromStr for Lsn {
    type Err = InvalidInput;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || InvalidInput::new(format!("'{s}' is not an LSN"), "write it like 0/3000028");
        let (hi, lo) = s.trim().split_once('/').ok_or_else(bad)?;
        let hi = u64::from_str_radix(hi, 16).map_err(|_| bad())?;
        let lo = u64::from_str_radix(lo, 16).map_err(|_| bad())?;
        if hi > 0xFFFF_FFFF || lo > 0xFFFF_FFFF {
            return Err(bad());
        }
        Ok(Lsn((hi << 32) | lo))
    }
}

impl Serialize for Lsn {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Lsn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_like_postgres() {
        let l: Lsn = "1/A0000028".parse().unwrap();
        assert_eq!(l.0, 0x1_A000_0028);
        assert_eq!(l.to_string(), "1/A0000028");
        assert_eq!(Lsn(0x300_0028).to_string(), "0/3000028");
        assert!("x/1".parse::<Lsn>().is_err());
        assert!("12".parse::<Lsn>().is_err());
        assert!("1/100000000".parse::<Lsn>().is_err());
    }
}
