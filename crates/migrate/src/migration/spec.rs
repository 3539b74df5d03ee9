//! What a migration task is asked to do: the objects and the names they get in the
//! target ([`ObjectMapping`]), the migration types, the conflict mode; and the task as
//! the server hands it over ([`MigrationTask`]): that description plus a connection
//! configuration for each instance.
//!
//! [`MigrationSpec`] is plain data (serde) so the server can persist it with the task;
//! the connection configurations carry passwords and are built by the server from its
//! encrypted store each time, never persisted by this crate.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::migration::MigrationError;
use crate::migration::names::{display_path, parse_path};

/// One `--object SRC[=DST]`: a database, schema or table of the source, and optionally
/// the name it gets in the target.
///
/// `SRC` is `db`, `db.schema` or `db.schema.table`. `DST` may name the whole path
/// (`shop.public.orders=shop.archive.orders_old`) or only its last parts, the rest
/// following the enclosing mapping: with `shop=shop_restored`, the object
/// `shop.public.orders=orders_old` puts that one table at
/// `shop_restored.public.orders_old` while the rest of `shop` keeps its names. The most
/// specific object wins for each table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectMapping {
    /// 1 to 3 exact identifiers: database, schema, table.
    pub source: Vec<String>,
    /// The last 1 to `source.len()` parts of the target path; `None` keeps the name.
    pub target: Option<Vec<String>>,
}

impl ObjectMapping {
    /// Parses the CLI form. Unquoted parts fold to lower case; quote a part to keep its
    /// case or to use dots, `=` or spaces in it (`shop."my.schema"."a=b"`).
    pub fn parse(text: &str) -> Result<Self, MigrationError> {
        let invalid = |reason: String| MigrationError::InvalidObject {
            object: text.to_string(),
            reason,
        };
        let (src, dst) = match split_unquoted_equals(text) {
            Some(i) => (&text[..i], Some(&text[i + 1..])),
            None => (text, None),
        };
        let source = parse_path(src).map_err(invalid)?;
        if source.len() > 3 {
            return Err(invalid(format!(
                "'{src}' has {} parts; write db, db.schema or db.schema.table",
                source.len()
            )));
        }
        let target = match dst {
            None => None,
            Some(d) => {
                let target = parse_path(d).map_err(invalid)?;
                if target.len() > source.len() {
                    return Err(invalid(format!(
                        "the new name '{d}' has more parts than '{src}'; give as many parts as the source or fewer (only the last ones change)"
                    )));
                }
                Some(target)
            }
        };
        Ok(Self { source, target })
    }

    /// The database this object belongs to.
    pub fn database(&self) -> &str {
        &self.source[0]
    }
}

impl fmt::Display for ObjectMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&display_path(&self.source))?;
        if let Some(t) = &self.target {
            write!(f, "={}", display_path(t))?;
        }
        Ok(())
    }
}

/// The byte offset of the first `=` outside double quotes.
fn split_unquoted_equals(text: &str) -> Option<usize> {
    let mut quoted = false;
    for (i, c) in text.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '=' if !quoted => return Some(i),
            _ => {}
        }
    }
    None
}

/// What happens when a mapped table already exists in the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConflictMode {
    /// The pre-check fails and names each existing table (with `data` only: each
    /// target table that is not empty).
    #[default]
    Error,
    /// Insert only source rows whose key is absent from the target; keep every target
    /// row as it is. Undoes a `DELETE`.
    SkipExisting,
    /// Source rows replace target rows with the same key; the replaced target rows are
    /// first saved into a new table whose name the report gives.
    Overwrite,
    /// The whole target table is swapped for the source's; the old one is kept under
    /// a name the report gives.
    Replace,
    /// Only the rows that differ change: rows only in the source are inserted, rows
    /// whose columns differ take the source's values (saved first into a new table),
    /// rows only in the target are kept unless
    /// [`MigrationSpec::delete_rows_only_in_target`] says otherwise. Undoes a bad
    /// `UPDATE` or `DELETE` at the cost of the differences, not of the table.
    Repair,
}

impl ConflictMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::SkipExisting => "skip-existing",
            Self::Overwrite => "overwrite",
            Self::Replace => "replace",
            Self::Repair => "repair",
        }
    }

    /// True for the modes that merge source rows into an existing table by key.
    pub fn merges(self) -> bool {
        matches!(self, Self::SkipExisting | Self::Overwrite | Self::Repair)
    }
}

impl fmt::Display for ConflictMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ConflictMode {
    type Err = MigrationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "error" => Ok(Self::Error),
            "skip-existing" => Ok(Self::SkipExisting),
            "overwrite" => Ok(Self::Overwrite),
            "replace" => Ok(Self::Replace),
            "repair" => Ok(Self::Repair),
            other => Err(MigrationError::InvalidSpec(format!(
                "unknown conflict mode '{other}'; use error, skip-existing, overwrite, replace or repair"
            ))),
        }
    }
}

/// Which parts of the objects are migrated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrationTypes {
    /// Create the tables (columns, defaults, identity columns and owned sequences,
    /// keys, unique and check constraints, indexes, comments, foreign keys).
    pub schema: bool,
    /// Copy the rows.
    pub data: bool,
}

impl Default for MigrationTypes {
    fn default() -> Self {
        Self {
            schema: true,
            data: true,
        }
    }
}

impl FromStr for MigrationTypes {
    type Err = MigrationError;
    /// `schema`, `data` or `schema,data`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut types = Self {
            schema: false,
            data: false,
        };
        for part in s.split(',').map(str::trim) {
            match part {
                "schema" => types.schema = true,
                "data" => types.data = true,
                other => {
                    return Err(MigrationError::InvalidSpec(format!(
                        "unknown migration type '{other}'; use schema, data or schema,data"
                    )));
                }
            }
        }
        Ok(types)
    }
}

/// Everything a task is asked to do, without credentials: what the server persists.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MigrationSpec {
    /// The task's id. It names the journal entries in the target and the tables a
    /// task keeps (`orders_replaced_<id>`), so it must stay the same across restarts.
    pub task_id: String,
    pub objects: Vec<ObjectMapping>,
    #[serde(default)]
    pub types: MigrationTypes,
    #[serde(default)]
    pub conflict: ConflictMode,
    /// Under `repair`: delete the target rows whose key the source lacks (saved
    /// first). Off by default: they are usually rows written after the chosen time.
    #[serde(default)]
    pub delete_rows_only_in_target: bool,
    /// Compare every copied table with the source after the copy.
    #[serde(default = "yes")]
    pub verify: bool,
    /// Tables copied at the same time (each uses one connection on each side).
    #[serde(default = "default_parallelism")]
    pub parallelism: usize,
}

fn yes() -> bool {
    true
}

fn default_parallelism() -> usize {
    4
}

impl MigrationSpec {
    /// A spec with the default types (schema and data), conflict mode (`error`),
    /// verification and parallelism.
    pub fn new(task_id: impl Into<String>, objects: Vec<ObjectMapping>) -> Self {
        Self {
            task_id: task_id.into(),
            objects,
            types: MigrationTypes::default(),
            conflict: ConflictMode::default(),
            delete_rows_only_in_target: false,
            verify: true,
            parallelism: default_parallelism(),
        }
    }
}

/// A task as the server hands it to [`crate::migration::precheck`] and
/// [`crate::migration::run`]: the spec and how to reach each instance, with the account
/// and password the user gave. The database named in each config is ignored: every
/// database of the mapping is reached with the same host, port, user and password.
#[derive(Clone)]
pub struct MigrationTask {
    pub spec: MigrationSpec,
    pub source: tokio_postgres::Config,
    pub target: tokio_postgres::Config,
}

impl fmt::Debug for MigrationTask {
    // tokio_postgres::Config's Debug already redacts the password; the spec is the
    // interesting part.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MigrationTask")
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_parse_with_quotes_and_partial_targets() {
        let o = ObjectMapping::parse("shop.\"my.schema\".orders").unwrap();
        assert_eq!(o.source, vec!["shop", "my.schema", "orders"]);
        assert_eq!(o.target, None);
        let o = ObjectMapping::parse("shop.public.\"a=b\"=orders_old").unwrap();
        assert_eq!(o.source, vec!["shop", "public", "a=b"]);
        assert_eq!(o.target, Some(vec!["orders_old".to_string()]));
        assert_eq!(o.to_string(), "shop.public.\"a=b\"=orders_old");
        assert!(ObjectMapping::parse("a.b.c.d").is_err());
        assert!(ObjectMapping::parse("shop=a.b").is_err());
        assert!(ObjectMapping::parse("shop.x\"; DROP TABLE y; --").is_err());
    }

    #[test]
    fn types_and_modes_parse() {
        let t: MigrationTypes = "data".parse().unwrap();
        assert!(t.data && !t.schema);
        assert!("schema,bogus".parse::<MigrationTypes>().is_err());
        assert_eq!(
            "skip-existing".parse::<ConflictMode>().unwrap(),
            ConflictMode::SkipExisting
        );
        assert!("merge".parse::<ConflictMode>().is_err());
    }
}
