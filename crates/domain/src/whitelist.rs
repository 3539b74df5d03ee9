//! Whitelist entries: the networks allowed to connect to an instance.

use std::fmt;
use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::InvalidInput;

/// One allowed network. A bare address means that host alone (`/32` or `/128`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct WhitelistEntry(IpNet);

impl WhitelistEntry {
    /// The entry every new instance gets: the local host only.
    pub fn localhost() -> Self {
        Self(IpNet::from_str("127.0.0.1/32").expect("constant CIDR"))
    }

    /// Parses `a.b.c.d/n`, an IPv6 CIDR, or a bare address. Host bits set below the
    /// prefix are refused rather than silently cleared, since the user likely mistyped.
    pub fn parse(s: &str) -> Result<Self, InvalidInput> {
        let s = s.trim();
        let net = match IpNet::from_str(s) {
            Ok(net) => net,
            Err(_) => match s.parse::<std::net::IpAddr>() {
                Ok(addr) => IpNet::from(addr),
                Err(_) => {
                    return Err(InvalidInput::new(
                        format!("'{}' is not an IP address or CIDR", s.escape_debug()),
                        "give an address such as 10.0.0.5 or a network such as 10.0.0.0/24",
                    ));
                }
            },
        };
        if net.trunc() != net {
            return Err(InvalidInput::new(
                format!(
                    "'{s}' has host bits set below its /{} prefix",
                    net.prefix_len()
                ),
                format!("did you mean {}?", net.trunc()),
            ));
        }
        Ok(Self(net))
    }

    pub fn net(&self) -> IpNet {
        self.0
    }
}

impl fmt::Display for WhitelistEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl TryFrom<String> for WhitelistEntry {
    type Error = InvalidInput;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<WhitelistEntry> for String {
    fn from(e: WhitelistEntry) -> Self {
        e.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_normalizes() {
        assert_eq!(
            WhitelistEntry::parse("10.0.0.5").unwrap().to_string(),
            "10.0.0.5/32"
        );
        assert_eq!(
            WhitelistEntry::parse("10.0.0.0/8").unwrap().to_string(),
            "10.0.0.0/8"
        );
        assert_eq!(WhitelistEntry::parse("::1").unwrap().to_string(), "::1/128");
        assert_eq!(WhitelistEntry::localhost().to_string(), "127.0.0.1/32");
    }

    #[test]
    fn refuses_garbage_and_host_bits() {
        assert!(WhitelistEntry::parse("10.0.0.300").is_err());
        assert!(WhitelistEntry::parse("all").is_err());
        assert!(WhitelistEntry::parse("10.0.0.0/33").is_err());
        let err = WhitelistEntry::parse("10.0.0.5/8").unwrap_err();
        assert!(err.hint.contains("10.0.0.0/8"), "{err:?}");
    }
}
