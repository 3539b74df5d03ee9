//! The SQL of a diff, built from a [`TablePlan`] for one side.
//!
//! Every identifier is quoted and every value (key bounds, bucket numbers) is a bind
//! parameter, so no table or column name and no data can change the statements.
//! Keys are compared as `key COLLATE "C"` (byte order) for collatable types, so both
//! servers order text the same way whatever their collations or C library versions.
//! Key values travel as text and are cast back to the column's type.

use tokio_postgres::types::ToSql;

use crate::diff::catalog::{SideTable, TablePlan};
use crate::diff::split::{Key, Range, Split};

pub(crate) use lifeboat_postgres::accounts::quote_ident;

/// How a row's text form is hashed to 64 bits. Both sides must hash alike:
/// `hashtextextended` is fast but, like all of PostgreSQL's hash functions, may differ
/// between CPU architectures, so the diff checks first and falls back to md5.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RowHash {
    Native,
    Md5,
}

impl RowHash {
    /// A 64-bit hash of the text expression `text`; `seed` picks independent hashes.
    pub fn apply(self, text: &str, seed: u8) -> String {
        match self {
            RowHash::Native => format!("hashtextextended({text}, {seed})"),
            RowHash::Md5 => format!(
                "('x' || substr(md5({text}), {}, 16))::bit(64)::int8",
                1 + 16 * u32::from(seed % 2)
            ),
        }
    }
}

/// A bind parameter.
pub(crate) enum Param {
    Int(i64),
    Ints(Vec<i64>),
    Text(String),
    Texts(Vec<String>),
}

/// A statement and its parameters.
#[derive(Default)]
pub(crate) struct Query {
    pub sql: String,
    params: Vec<Param>,
}

impl Query {
    /// Adds a parameter and returns its placeholder, typed so that PostgreSQL does not
    /// have to infer it.
    pub fn bind(&mut self, p: Param) -> String {
        let cast = match p {
            Param::Int(_) => "int8",
            Param::Ints(_) => "int8[]",
            Param::Text(_) => "text",
            Param::Texts(_) => "text[]",
        };
        self.params.push(p);
        format!("${}::{cast}", self.params.len())
    }

    pub fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.params
            .iter()
            .map(|p| -> &(dyn ToSql + Sync) {
                match p {
                    Param::Int(v) => v,
                    Param::Ints(v) => v,
                    Param::Text(v) => v,
                    Param::Texts(v) => v,
                }
            })
            .collect()
    }
}

/// SQL fragments for one side's table.
pub(crate) struct TableSql<'p> {
    pub plan: &'p TablePlan,
    pub table: &'p SideTable,
    pub hash: RowHash,
}

impl<'p> TableSql<'p> {
    pub fn new(plan: &'p TablePlan, table: &'p SideTable, hash: RowHash) -> Self {
        Self { plan, table, hash }
    }

    pub fn from(&self, alias: &str) -> String {
        format!("{} AS {alias}", self.table.from)
    }

    fn col(&self, alias: &str, i: usize) -> String {
        format!("{alias}.{}", quote_ident(&self.plan.columns[i].name))
    }

    /// The row's text form over the compared columns in a fixed order: NULL and ''
    /// differ, and every value is written as PostgreSQL writes it to a client.
    pub fn row_text(&self, alias: &str) -> String {
        let cols: Vec<String> = (0..self.plan.columns.len())
            .map(|i| self.col(alias, i))
            .collect();
        format!("ROW({})::text", cols.join(", "))
    }

    pub fn row_hash(&self, alias: &str) -> String {
        self.hash.apply(&self.row_text(alias), 0)
    }

    /// Each compared column's text form, as a `text[]`.
    pub fn value_texts(&self, alias: &str) -> String {
        let cols: Vec<String> = (0..self.plan.columns.len())
            .map(|i| format!("{}::text", self.col(alias, i)))
            .collect();
        format!("ARRAY[{}]::text[]", cols.join(", "))
    }

    /// Each compared column as JSON text, as a `text[]`.
    pub fn value_json(&self, alias: &str) -> String {
        let cols: Vec<String> = (0..self.plan.columns.len())
            .map(|i| format!("to_json({})::text", self.col(alias, i)))
            .collect();
        format!("ARRAY[{}]::text[]", cols.join(", "))
    }

    /// The compared columns as `c0, c1...`, for a subquery whose other outputs must
    /// not collide with a user's column names.
    pub fn positional_select(&self, alias: &str) -> String {
        let cols: Vec<String> = (0..self.plan.columns.len())
            .map(|i| format!("{} AS c{i}", self.col(alias, i)))
            .collect();
        cols.join(", ")
    }

    /// [`Self::value_json`] over a subquery that used [`Self::positional_select`].
    pub fn positional_json(&self, alias: &str) -> String {
        let cols: Vec<String> = (0..self.plan.columns.len())
            .map(|i| format!("to_json({alias}.c{i})::text"))
            .collect();
        format!("ARRAY[{}]::text[]", cols.join(", "))
    }

    /// The key columns (`alias.k AS k0, ...`), for subqueries.
    pub fn key_select(&self, alias: &str) -> String {
        self.key_parts(|n, i| format!("{} AS k{n}", self.col(alias, i)))
    }

    /// The key columns of a subquery that used [`Self::key_select`], as text.
    pub fn key_texts(&self, alias: &str) -> String {
        self.key_parts(|n, _| format!("{alias}.k{n}::text"))
    }

    fn key_parts(&self, f: impl Fn(usize, usize) -> String) -> String {
        let parts: Vec<String> = self
            .plan
            .key
            .iter()
            .enumerate()
            .map(|(n, &i)| f(n, i))
            .collect();
        parts.join(", ")
    }

    fn collate(&self, expr: String, i: usize) -> String {
        if self.plan.columns[i].collatable {
            format!("{expr} COLLATE \"C\"")
        } else {
            expr
        }
    }

    /// The key in byte order: a scalar for one column, a row for several.
    pub fn key_ordered(&self, alias: &str) -> String {
        let parts: Vec<String> = self
            .plan
            .key
            .iter()
            .map(|&i| self.collate(self.col(alias, i), i))
            .collect();
        wrap_row(parts)
    }

    /// The key columns in byte order, as an `ORDER BY` list (usable by an index).
    pub fn key_order_list(&self, alias: &str) -> String {
        let parts: Vec<String> = self
            .plan
            .key
            .iter()
            .map(|&i| self.collate(self.col(alias, i), i))
            .collect();
        parts.join(", ")
    }

    /// `alias`'s key equals the key given as text expressions. Plain equality, without
    /// `COLLATE "C"`, so that the key's index serves it whatever its collation.
    pub fn key_equals(&self, alias: &str, texts: &[String]) -> String {
        let parts: Vec<String> = self
            .plan
            .key
            .iter()
            .zip(texts)
            .map(|(&i, t)| {
                format!(
                    "{} = ({t})::{}",
                    self.col(alias, i),
                    self.plan.columns[i].cast_type
                )
            })
            .collect();
        parts.join(" AND ")
    }

    /// A key value from text expressions (one per key column), cast to the key's types.
    pub fn key_value(&self, texts: &[String]) -> String {
        let parts: Vec<String> = self
            .plan
            .key
            .iter()
            .zip(texts)
            .map(|(&i, t)| self.collate(format!("({t})::{}", self.plan.columns[i].cast_type), i))
            .collect();
        wrap_row(parts)
    }

    /// `ORDER BY` terms sorting text key values (one expression per column) in byte
    /// order.
    pub fn key_value_order(&self, texts: &[String]) -> String {
        let parts: Vec<String> = self
            .plan
            .key
            .iter()
            .zip(texts)
            .map(|(&i, t)| self.collate(format!("({t})::{}", self.plan.columns[i].cast_type), i))
            .collect();
        parts.join(", ")
    }

    /// A key value bound as parameters.
    fn bind_key(&self, q: &mut Query, key: &Key) -> String {
        let texts: Vec<String> = key.iter().map(|v| q.bind(Param::Text(v.clone()))).collect();
        self.key_value(&texts)
    }

    /// The condition selecting `range` of the key.
    pub fn range_cond(&self, q: &mut Query, alias: &str, range: &Range) -> String {
        let key = self.key_ordered(alias);
        let mut conds = Vec::new();
        match range {
            Range::Int { lo, hi } => {
                conds.push(format!("{key} >= {}", q.bind(Param::Int(*lo))));
                conds.push(format!("{key} <= {}", q.bind(Param::Int(*hi))));
            }
            Range::Keys { lo, hi } => {
                if let Some(lo) = lo {
                    conds.push(format!("{key} >= {}", self.bind_key(q, lo)));
                }
                if let Some(hi) = hi {
                    conds.push(format!("{key} < {}", self.bind_key(q, hi)));
                }
            }
        }
        if conds.is_empty() {
            "TRUE".to_string()
        } else {
            conds.join(" AND ")
        }
    }

    /// The bucket number (`int8`) of the row `alias` under `split`.
    pub fn bucket(&self, q: &mut Query, alias: &str, split: &Split) -> String {
        match split {
            Split::Int { lo, width, .. } => {
                let col = self.col(alias, self.plan.key[0]);
                format!(
                    "(({col})::int8 - {}) / {}",
                    q.bind(Param::Int(*lo)),
                    q.bind(Param::Int(*width))
                )
            }
            Split::Bounds { bounds, .. } if bounds.is_empty() => "0::int8".to_string(),
            Split::Bounds { bounds, .. } => {
                // The boundaries travel as one text[] per key column and are turned
                // into an array of key values once (an InitPlan), then width_bucket
                // finds each row's bucket by binary search under the same byte order.
                let n = self.plan.key.len();
                let arrays: Vec<String> = (0..n)
                    .map(|c| q.bind(Param::Texts(bounds.iter().map(|k| k[c].clone()).collect())))
                    .collect();
                let names: Vec<String> = (0..n).map(|c| format!("u.x{c}")).collect();
                let aliases: Vec<String> = (0..n).map(|c| format!("x{c}")).collect();
                format!(
                    "width_bucket({}, (SELECT array_agg({} ORDER BY u.o) \
                     FROM unnest({}) WITH ORDINALITY AS u({}, o)))::int8",
                    self.key_ordered(alias),
                    self.key_value(&names),
                    arrays.join(", "),
                    aliases.join(", ")
                )
            }
        }
    }
}

fn wrap_row(parts: Vec<String>) -> String {
    if parts.len() == 1 {
        parts.into_iter().collect()
    } else {
        format!("ROW({})", parts.join(", "))
    }
}
