//! The request for a temporary instance. Its progress is
//! [`lifeboat_domain::TemporaryProgress`], shown in the instance's view.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use lifeboat_domain::{TemporaryPhase, TemporaryProgress};

/// What the user asked for: exactly one of `at`, `lsn`, `restore_point`, `before`
/// and `before_xid`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTemporary {
    /// RFC 3339, `YYYY-MM-DD HH:MM:SS[.ffffff]` read in `tz`, or `now`: a time after the
    /// archived window of a running master is reached by a WAL switch on it.
    pub at: Option<String>,
    /// IANA zone for `at` without an offset; default the server's zone.
    pub tz: Option<String>,
    /// A WAL position such as `0/3000028`.
    #[schema(pattern = "^\\s*[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}\\s*$")]
    pub lsn: Option<String>,
    /// A restore point created on the master with `pg_create_restore_point`: 1 to 63
    /// bytes, no control character.
    #[schema(pattern = "^[^\\u0000-\\u001f\\u007f]{1,63}$")]
    pub restore_point: Option<String>,
    /// Just before an event (`ev-<xid>-<commit LSN>`, from `backup events`).
    #[serde(default)]
    #[schema(pattern = "^ev-[0-9]+-[0-9A-Fa-f]+$")]
    pub before: Option<String>,
    /// Just before the transaction with this id committed.
    #[serde(default, deserialize_with = "crate::whole::optional")]
    pub before_xid: Option<u32>,
}

/// What `instance clone` sends: a new, permanent master restored from the source's
/// backups at one point: exactly one of `at`, `lsn`, `restore_point`, `before` and
/// `before_xid`, as for a temporary instance.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CloneInstance {
    /// The new master's name: 1 to 64 letters, digits, `-` or `_`, starting with a
    /// letter.
    #[schema(pattern = "^[A-Za-z][A-Za-z0-9_-]{0,63}$")]
    pub name: String,
    /// RFC 3339, `YYYY-MM-DD HH:MM:SS[.ffffff]` read in `tz`, or `now`.
    pub at: Option<String>,
    /// IANA zone for `at` without an offset; default the server's zone.
    pub tz: Option<String>,
    /// A WAL position such as `0/3000028`.
    #[schema(pattern = "^\\s*[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}\\s*$")]
    pub lsn: Option<String>,
    /// A restore point created on the master with `pg_create_restore_point`.
    #[schema(pattern = "^[^\\u0000-\\u001f\\u007f]{1,63}$")]
    pub restore_point: Option<String>,
    /// Just before an event (`ev-<xid>-<commit LSN>`, from `backup events`).
    #[serde(default)]
    #[schema(pattern = "^ev-[0-9]+-[0-9A-Fa-f]+$")]
    pub before: Option<String>,
    /// Just before the transaction with this id committed.
    #[serde(default, deserialize_with = "crate::whole::optional")]
    pub before_xid: Option<u32>,
    /// The PostgreSQL major; a clone runs the major of the backups it is restored
    /// from, so only that one is accepted.
    #[serde(default, deserialize_with = "crate::whole::optional")]
    #[schema(minimum = 15, maximum = 18)]
    pub engine_version: Option<u32>,
}

impl CloneInstance {
    /// The recovery target, in the form a temporary instance takes it.
    pub fn target(&self) -> CreateTemporary {
        CreateTemporary {
            at: self.at.clone(),
            tz: self.tz.clone(),
            lsn: self.lsn.clone(),
            restore_point: self.restore_point.clone(),
            before: self.before.clone(),
            before_xid: self.before_xid,
        }
    }
}

/// What `temp keep` sends: the name the temporary instance keeps as a master.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeepTemporary {
    /// 1 to 64 letters, digits, `-` or `_`, starting with a letter.
    #[schema(pattern = "^[A-Za-z][A-Za-z0-9_-]{0,63}$")]
    pub name: String,
}
