//! PostgreSQL names as the migration handles them: parsing the dotted paths users type
//! (`shop."my.schema".orders`), checking that a name can exist in PostgreSQL, quoting
//! every identifier that goes into SQL, and deriving the names of the relations a
//! migration creates next to a table (renamed indexes and sequences, the table that
//! keeps replaced rows).
//!
//! Every identifier is quoted when written into SQL, whatever it looks like: a table
//! named `x"; DROP TABLE y; --` is one identifier and nothing else.

use std::collections::HashSet;

pub use lifeboat_postgres::ident::{
    MAX_IDENTIFIER_BYTES, display_ident, display_path, identifier_problem, parse_path, quote_ident,
    quote_literal,
};

/// `"schema"."name"`.
pub fn qualified(schema: &str, name: &str) -> String {
    format!("{}.{}", quote_ident(schema), quote_ident(name))
}

/// A comma-separated list of quoted column names.
pub fn column_list<S: AsRef<str>>(columns: &[S]) -> String {
    columns
        .iter()
        .map(|c| quote_ident(c.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Cuts `base` so that `base + suffix` fits in an identifier, at a character boundary.
pub fn with_suffix(base: &str, suffix: &str) -> String {
    let room = MAX_IDENTIFIER_BYTES.saturating_sub(suffix.len());
    let mut end = base.len().min(room);
    while !base.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{suffix}", &base[..end])
}

/// The name a relation that belongs to a table (index, sequence, constraint) gets when
/// the table is renamed: `orders_pkey` of `orders` becomes `orders_old_pkey` for
/// `orders_old`, so that a table restored under a new name next to the original does not
/// collide with the original's indexes. Names that do not start with the table's name
/// are kept.
pub fn renamed_dependent(name: &str, source_table: &str, target_table: &str) -> String {
    match name.strip_prefix(source_table) {
        Some(rest) if source_table != target_table => fit(target_table, rest),
        _ => name.to_string(),
    }
}

/// The name a partition wishes for when its partitioned table is renamed: like
/// [`renamed_dependent`] when it starts with the table's name (`m_2024` of `m` becomes
/// `m_old_2024` for `m_old`), else the new table's name, `_` and its own (`p1` becomes
/// `m_old_p1`), so that the partitions of a tree restored next to the original never
/// take the original partitions' names.
pub fn renamed_partition(name: &str, source_table: &str, target_table: &str) -> String {
    match name.strip_prefix(source_table) {
        Some(rest) if !rest.is_empty() => fit(target_table, rest),
        _ => fit(target_table, &format!("_{name}")),
    }
}

/// `head + tail`, shortening `head` so the result fits in an identifier.
fn fit(head: &str, tail: &str) -> String {
    if tail.len() >= MAX_IDENTIFIER_BYTES {
        return with_suffix(tail, "");
    }
    with_suffix(head, tail)
}

/// A name from `wanted` that is not in `taken`, adding `1`, `2`... (shortened to fit)
/// like PostgreSQL does for implicit index names. The chosen name is added to `taken`.
pub fn choose_free(wanted: &str, taken: &mut HashSet<String>) -> String {
    let mut candidate = with_suffix(wanted, "");
    let mut n = 0u32;
    while taken.contains(&candidate) {
        n += 1;
        candidate = with_suffix(wanted, &n.to_string());
    }
    taken.insert(candidate.clone());
    candidate
}

/// A short tag made of the task id, usable inside identifiers (`mt-3kq9x2` gives
/// `mt_3kq9x2`): it names what a task keeps, so a user can tell which task made it.
pub fn task_tag(task_id: &str) -> String {
    let tag: String = task_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .take(20)
        .collect();
    if tag.is_empty() { "task".into() } else { tag }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse_like_psql() {
        assert_eq!(
            parse_path("shop.\"my.schema\".Orders").unwrap(),
            vec!["shop", "my.schema", "orders"]
        );
        assert_eq!(
            parse_path("\"x\"\"; DROP TABLE y; --\"").unwrap(),
            vec!["x\"; DROP TABLE y; --"]
        );
        assert!(parse_path("x\"; DROP TABLE y; --").is_err());
        assert!(parse_path("a..b").is_err());
        assert!(parse_path("\"open").is_err());
        assert!(parse_path("1abc").is_err());
        assert!(parse_path(&"a".repeat(64)).is_err());
        assert!(parse_path(&format!("\"{}\"", "é".repeat(32))).is_err());
        assert_eq!(parse_path("café").unwrap(), vec!["café"]);
    }

    #[test]
    fn dependents_follow_the_table_name() {
        assert_eq!(
            renamed_dependent("orders_pkey", "orders", "orders_old"),
            "orders_old_pkey"
        );
        assert_eq!(renamed_dependent("idx_x", "orders", "o2"), "idx_x");
        let long = "t".repeat(60);
        let renamed = renamed_dependent("orders_customer_id_idx", "orders", &long);
        assert!(renamed.len() <= MAX_IDENTIFIER_BYTES);
        assert!(renamed.ends_with("_customer_id_idx"));
    }

    #[test]
    fn partitions_follow_their_table_name() {
        assert_eq!(renamed_partition("m_2024", "m", "m_old"), "m_old_2024");
        assert_eq!(renamed_partition("p1", "m", "m_old"), "m_old_p1");
        assert_eq!(renamed_partition("m", "m", "m_old"), "m_old_m");
        let long = renamed_partition(&"p".repeat(63), "m", "m_old");
        assert!(long.len() <= MAX_IDENTIFIER_BYTES);
    }

    #[test]
    fn free_names_get_a_number() {
        let mut taken: HashSet<String> = ["a_pkey".to_string()].into();
        assert_eq!(choose_free("a_pkey", &mut taken), "a_pkey1");
        assert_eq!(choose_free("a_pkey", &mut taken), "a_pkey2");
        assert_eq!(choose_free("b", &mut taken), "b");
    }

    #[test]
    fn suffixes_cut_at_character_boundaries() {
        let name = with_suffix(&"é".repeat(40), "_old");
        assert!(name.len() <= MAX_IDENTIFIER_BYTES);
        assert!(name.ends_with("_old"));
        assert_eq!(task_tag("mt-3KQ9x2"), "mt_3kq9x2");
    }
}
