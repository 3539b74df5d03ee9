//! What an instance is: its kind, the states of its life, how it is reached.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A master is created by a user; a temporary instance is restored from a master's backups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstanceKind {
    Master,
    Temporary,
}

/// The states of an instance. `creating` and `deleting` are persisted before the work
/// starts so that a server restart can finish or undo it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstanceStatus {
    Creating,
    Running,
    Stopped,
    Failed,
    Deleting,
    Released,
}

/// How an instance is reached. Every instance listens on its region's address today,
/// which is what `classic` means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NetworkType {
    Classic,
}

macro_rules! text_enum {
    ($ty:ty { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $ty {
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }

            /// Reads the form written by [`Self::as_str`], as stored in the metadata store.
            pub fn from_db(s: &str) -> Option<Self> {
                match s { $($text => Some(Self::$variant),)+ _ => None }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum!(InstanceKind { Master => "master", Temporary => "temporary" });
text_enum!(InstanceStatus {
    Creating => "creating",
    Running => "running",
    Stopped => "stopped",
    Failed => "failed",
    Deleting => "deleting",
    Released => "released",
});
text_enum!(NetworkType { Classic => "classic" });
