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

pub(crate) use lifeboat_postgres::ident::quote_ident;

/// How rows are hashed to 64 bits. Both sides must hash alike: PostgreSQL's hash
/// functions may differ between CPU architectures, so the diff probes both servers
/// first and falls back to md5 of the row's text form when they disagree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RowHash {
    /// PostgreSQL's own hash functions (11 and later), column by column: no row is
    /// ever written as text for hashing, which would cost more than the scan itself.
    /// `v14`: both servers have `hash_record_extended` and `bit_xor` (14 and later).
    Native { v14: bool },
    /// md5 of the row's text form.
    Md5,
}

impl RowHash {
    /// A 64-bit hash of the text expression `text`; `seed` picks independent hashes.
    pub fn text(self, text: &str, seed: u8) -> String {
        match self {
            RowHash::Native { .. } => format!("hashtextextended({text}, {seed})"),
            RowHash::Md5 => format!(
                "('x' || substr(md5({text}), {}, 16))::bit(64)::int8",
                1 + 16 * u32::from(seed % 2)
            ),
        }
    }

    /// The aggregate combining the row hashes of a bucket (with `count(*)` beside it).
    /// XOR is cheapest and, keys being unique, no two rows of a bucket cancel out;
    /// PostgreSQL before 14 has no `bit_xor`, so the exact `sum` serves there.
    pub fn combine(self, h: &str) -> String {
        match self {
            RowHash::Native { v14: true } => format!("bit_xor({h})::text"),
            _ => format!("sum({h})::text"),
        }
    }
}

/// The hash function of a type whose equal values always have the same text form,
/// callable on a column of that type, or `None`.
fn column_hash_function(type_oid: u32) -> Option<&'static str> {
    Some(match type_oid {
        20 => "hashint8extended",
        21 => "hashint2extended",
        23 => "hashint4extended",
        25 | 1043 => "hashtextextended",
        1042 => "hashbpcharextended",
        1114 => "timestamp_hash_extended",
        2950 => "uuid_hash_extended",
        _ => return None,
    })
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

    /// A compared column as it enters a hash: as it is when equal values of its type
    /// always have the same text form, else as that text form, so that hashes follow
    /// the text-form rule of [`crate::diff`]. Text is taken under `COLLATE "C"`, byte
    /// for byte, whatever the column's collation.
    fn hash_item(&self, alias: &str, i: usize) -> String {
        let c = &self.plan.columns[i];
        // Written as text, char(n) keeps its padding; cast to text, hashed or compared
        // it does not: the text-form hash must cast it.
        let as_is = c.hashed_as_is && !(c.padded && self.hash == RowHash::Md5);
        match (as_is, c.collatable) {
            (true, false) => self.col(alias, i),
            (true, true) => format!("{} COLLATE \"C\"", self.col(alias, i)),
            (false, _) => format!("{}::text COLLATE \"C\"", self.col(alias, i)),
        }
    }

    /// The row's text form over the compared columns in a fixed order: NULL and ''
    /// differ, and every value is written as PostgreSQL writes it to a client.
    pub fn row_text(&self, alias: &str) -> String {
        let items: Vec<String> = (0..self.plan.columns.len())
            .map(|i| self.hash_item(alias, i))
            .collect();
        format!("ROW({})::text", items.join(", "))
    }

    /// A 64-bit hash of the row. Natively: each column of a common type is hashed by
    /// its type's own function with a seed of its position (NULL gets a constant of its
    /// own), the others together as one record (or as text before 14); the terms are
    /// XORed and the result hashed once more, so that values swapped between rows of
    /// a bucket still change the bucket's XOR.
    pub fn row_hash(&self, alias: &str) -> String {
        let RowHash::Native { v14 } = self.hash else {
            return self.hash.text(&self.row_text(alias), 0);
        };
        let mut terms = Vec::new();
        let mut rest = Vec::new();
        for (i, c) in self.plan.columns.iter().enumerate() {
            match column_hash_function(c.type_oid) {
                Some(f) => terms.push(format!(
                    "coalesce({f}({}, {i}), {})",
                    self.hash_item(alias, i),
                    -1 - i as i64
                )),
                None => rest.push(self.hash_item(alias, i)),
            }
        }
        if !rest.is_empty() {
            let seed = self.plan.columns.len();
            terms.push(if v14 {
                format!("hash_record_extended(ROW({}), {seed})", rest.join(", "))
            } else {
                format!("hashtextextended(ROW({})::text, {seed})", rest.join(", "))
            });
        }
        if terms.is_empty() {
            terms.push("0::int8".into());
        }
        format!("hashint8extended({}, 0)", terms.join(" # "))
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

    /// The rows of `split`'s range as a subquery `s` with columns `b` (the bucket),
    /// `k0...` (the key) and `h` (the row hash). With `fence`, the hash is computed in
    /// the scan (before grouping by bucket: the planner then hashes narrow pairs
    /// instead of sorting whole rows); without, a filter on `s.b` can reach the scan.
    pub fn bucketed(&self, q: &mut Query, split: &Split, fence: bool) -> String {
        let cond = self.range_cond(q, "t", &split.range());
        let cols = format!("{}, {} AS h", self.key_select("t"), self.row_hash("t"));
        let from = self.from("t");
        let fence = if fence { " OFFSET 0" } else { "" };
        let bucket = match split {
            Split::Int { lo, width, .. } => {
                let col = self.col("t", self.plan.key[0]);
                let (lo, width) = (q.bind(Param::Int(*lo)), q.bind(Param::Int(*width)));
                format!("(({col})::int8 - {lo}) / {width}")
            }
            Split::Bounds { bounds, .. } if bounds.is_empty() => "0::int8".to_string(),
            Split::Bounds { bounds, .. } => {
                let arrays = self.bind_bounds(q, bounds);
                if self.width_bucket_is_fast() {
                    let key = &self.plan.columns[self.plan.key[0]];
                    // The boundaries become an array of key values once (an
                    // InitPlan); width_bucket then binary-searches it per row.
                    format!(
                        "width_bucket({}, (SELECT array_agg({} ORDER BY u.o) \
                         FROM unnest({}) WITH ORDINALITY AS u(x0, o)))::int8",
                        self.key_ordered("t"),
                        self.collate(format!("(u.x0)::{}", key.cast_type), self.plan.key[0]),
                        arrays[0],
                    )
                } else {
                    return self.bucketed_by_merge(&cols, &from, &cond, &arrays);
                }
            }
        };
        format!("(SELECT {bucket} AS b, {cols} FROM {from} WHERE {cond}{fence}) AS s")
    }

    /// `width_bucket` finds its place in log time only in an array of fixed-length
    /// values; over text or records it walks the array element by element, which for
    /// thousands of boundaries costs minutes per million rows.
    fn width_bucket_is_fast(&self) -> bool {
        self.plan.key.len() == 1 && self.plan.columns[self.plan.key[0]].fixed_width
    }

    /// One `text[]` parameter per key column holding that column of every boundary.
    fn bind_bounds(&self, q: &mut Query, bounds: &[Key]) -> Vec<String> {
        (0..self.plan.key.len())
            .map(|c| q.bind(Param::Texts(bounds.iter().map(|k| k[c].clone()).collect())))
            .collect()
    }

    /// [`Self::bucketed`] for any key: the rows and the boundaries are sorted together
    /// in byte order (a boundary before an equal key) and each row's bucket is the
    /// number of boundaries before it, a running count. One sort instead of a search
    /// per row.
    fn bucketed_by_merge(&self, cols: &str, from: &str, cond: &str, arrays: &[String]) -> String {
        let n = self.plan.key.len();
        let ks: Vec<String> = (0..n).map(|c| format!("k{c}")).collect();
        let xs: Vec<String> = (0..n).map(|c| format!("x{c}")).collect();
        let bound_values: Vec<String> = self
            .plan
            .key
            .iter()
            .enumerate()
            .map(|(c, &i)| format!("(u.x{c})::{}", self.plan.columns[i].cast_type))
            .collect();
        let order: Vec<String> = self
            .plan
            .key
            .iter()
            .enumerate()
            .map(|(c, &i)| self.collate(format!("m.k{c}"), i))
            .collect();
        format!(
            "(SELECT w.b, {ks}, w.h FROM (SELECT m.bound, {mks}, m.h, \
               count(*) FILTER (WHERE m.bound) OVER (ORDER BY {order}, m.bound DESC \
                 ROWS UNBOUNDED PRECEDING) AS b \
             FROM (SELECT false AS bound, {cols} FROM {from} WHERE {cond} \
                   UNION ALL SELECT true, {bound_values}, NULL::int8 \
                   FROM unnest({arrays}) AS u({xs})) AS m) AS w \
             WHERE NOT w.bound) AS s",
            ks = ks
                .iter()
                .map(|k| format!("w.{k}"))
                .collect::<Vec<_>>()
                .join(", "),
            mks = ks
                .iter()
                .map(|k| format!("m.{k}"))
                .collect::<Vec<_>>()
                .join(", "),
            order = order.join(", "),
            bound_values = bound_values.join(", "),
            arrays = arrays.join(", "),
            xs = xs.join(", "),
        )
    }
}

fn wrap_row(parts: Vec<String>) -> String {
    if parts.len() == 1 {
        parts.into_iter().collect()
    } else {
        format!("ROW({})", parts.join(", "))
    }
}
