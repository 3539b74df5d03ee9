//! What to compare: table pairs (source and target names may differ) or whole schemas,
//! how many rows to keep in the report, and the tuning knobs of the range checksums.

use serde::{Deserialize, Serialize};

use lifeboat_postgres::ident::{display_ident, parse_path};

use crate::diff::DiffError;

/// A table, by its exact (case-sensitive, unquoted) schema and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TableName {
    pub schema: String,
    pub name: String,
}

impl TableName {
    pub fn new(schema: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            schema: schema.into(),
            name: name.into(),
        }
    }

    /// Parses `[SCHEMA.]TABLE` the way psql reads it: unquoted parts fold to lower case,
    /// `"Quoted"` parts are taken as written (`""` inside is one `"`), and a missing
    /// schema means `public`.
    pub fn parse(text: &str) -> Result<Self, DiffError> {
        let parts = parse_path(text).map_err(|why| {
            DiffError::InvalidRequest(format!("cannot parse table name '{text}': {why}"))
        })?;
        match parts.as_slice() {
            [name] => Ok(Self::new("public", name.clone())),
            [schema, name] => Ok(Self::new(schema.clone(), name.clone())),
            _ => Err(DiffError::InvalidRequest(format!(
                "'{text}' is not a table name of the form SCHEMA.TABLE"
            ))),
        }
    }
}

impl std::fmt::Display for TableName {
    /// `schema.table`, quoting a part only when psql would need it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}.{}",
            display_ident(&self.schema),
            display_ident(&self.name)
        )
    }
}

/// A source table and the target table it is compared with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TablePair {
    pub source: TableName,
    pub target: TableName,
}

impl TablePair {
    /// The same name on both sides.
    pub fn same(name: TableName) -> Self {
        Self {
            source: name.clone(),
            target: name,
        }
    }

    /// Parses the CLI form `SCHEMA.TABLE` or `SCHEMA.TABLE=SCHEMA.TABLE`.
    pub fn parse(text: &str) -> Result<Self, DiffError> {
        // An '=' inside a quoted name is part of the name, so split on the first '='
        // that is outside quotes.
        let mut quoted = false;
        for (i, c) in text.char_indices() {
            match c {
                '"' => quoted = !quoted,
                '=' if !quoted => {
                    return Ok(Self {
                        source: TableName::parse(&text[..i])?,
                        target: TableName::parse(&text[i + 1..])?,
                    });
                }
                _ => {}
            }
        }
        Ok(Self::same(TableName::parse(text)?))
    }
}

/// Every ordinary or partitioned table of a source schema, compared with the table of
/// the same name in the target schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaPair {
    pub source: String,
    pub target: String,
}

/// Rows kept per table in the report when the request does not say.
pub const DEFAULT_LIMIT: usize = 100;

/// What to compare.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DiffRequest {
    #[serde(default)]
    pub tables: Vec<TablePair>,
    #[serde(default)]
    pub schemas: Vec<SchemaPair>,
    /// Differing rows kept per table in the report; the sink still receives all.
    #[serde(default = "default_limit")]
    pub limit: usize,
    #[serde(default, skip)]
    pub tuning: Tuning,
}

fn default_limit() -> usize {
    DEFAULT_LIMIT
}

impl Default for DiffRequest {
    fn default() -> Self {
        Self {
            tables: Vec::new(),
            schemas: Vec::new(),
            limit: DEFAULT_LIMIT,
            tuning: Tuning::default(),
        }
    }
}

impl DiffRequest {
    /// Compares the given table pairs, keeping the default number of rows.
    pub fn tables(tables: impl IntoIterator<Item = TablePair>) -> Self {
        Self {
            tables: tables.into_iter().collect(),
            ..Self::default()
        }
    }
}

/// Sizes of the range checksum search. The defaults suit tables of any size; tests
/// shrink them to exercise every path on small tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tuning {
    /// Rows per checksummed range on the first pass. Small ranges mean few rows are
    /// read again around each difference; large ones mean fewer checksums to send.
    pub rows_per_bucket: u64,
    /// Ranges per checksum query when the key can be read in byte order through an
    /// index. A table of up to `rows_per_bucket * buckets_per_query` rows is
    /// checksummed in one query (a sequential scan, cheaper per row than an index
    /// scan); a larger one in slices of that many rows, which bounds the memory each
    /// query's grouping needs (about 100 bytes per range).
    pub buckets_per_query: u64,
    /// Ranges per checksum query when the table must be scanned whole (no index in
    /// byte order on the key): one scan, so the ranges grow with the table beyond this.
    pub max_buckets_per_scan: u64,
    /// A differing range with at most this many rows on either side is compared key
    /// by key; a larger one is split again.
    pub max_rows_compared_by_key: u64,
    /// Differing keys whose full rows are fetched in one round trip.
    pub rows_per_fetch: usize,
    /// Hash rows as md5 of their text form even when both servers' own hash
    /// functions agree (slower; what the diff does between servers of different CPU
    /// architectures).
    pub portable_hash: bool,
}

impl Default for Tuning {
    fn default() -> Self {
        Self {
            rows_per_bucket: 32,
            buckets_per_query: 1 << 19,
            max_buckets_per_scan: 1 << 20,
            max_rows_compared_by_key: 4096,
            rows_per_fetch: 1000,
            portable_hash: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_like_psql() {
        assert_eq!(
            TableName::parse("Public.Accounts").unwrap(),
            TableName::new("public", "accounts")
        );
        assert_eq!(
            TableName::parse("\"My Schema\".\"a.\"\"b\"").unwrap(),
            TableName::new("My Schema", "a.\"b")
        );
        assert_eq!(
            TableName::parse("t").unwrap(),
            TableName::new("public", "t")
        );
        assert!(TableName::parse("a.b.c").is_err());
        assert!(TableName::parse("\"open").is_err());
        assert!(TableName::parse("").is_err());
    }

    #[test]
    fn pairs_split_on_the_first_unquoted_equals_sign() {
        let p = TablePair::parse("s.\"a=b\"=t.c").unwrap();
        assert_eq!(p.source, TableName::new("s", "a=b"));
        assert_eq!(p.target, TableName::new("t", "c"));
        let same = TablePair::parse("s.x").unwrap();
        assert_eq!(same.source, same.target);
    }

    #[test]
    fn display_quotes_only_when_needed() {
        assert_eq!(TableName::new("public", "t_1").to_string(), "public.t_1");
        assert_eq!(TableName::new("public", "T").to_string(), "public.\"T\"");
    }
}
