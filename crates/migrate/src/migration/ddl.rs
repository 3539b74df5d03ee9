//! The statements that recreate a source table in the target under its mapped name:
//! owned sequences, the table with its columns, defaults and identity columns, then
//! (after the rows are in) keys, unique, check and exclusion constraints, indexes and
//! comments, and at the very end the foreign keys between migrated tables.
//!
//! Relations that share the schema-wide namespace with tables (indexes, sequences,
//! index-backed constraints) follow the table's new name (`orders_pkey` becomes
//! `orders_old_pkey` for a table restored as `orders_old`) and get a number when that
//! name is taken, so a table restored next to its original never collides with it.

use std::collections::HashSet;

use crate::migration::catalog::{ForeignKeyDef, TableDef};
use crate::migration::names::{
    choose_free, column_list, qualified, quote_ident, quote_literal, renamed_dependent,
};

/// The names one table's relations get in the target.
#[derive(Debug, Clone)]
pub(crate) struct Names {
    pub table: String,
    /// One per [`TableDef::sequences`].
    pub sequences: Vec<String>,
    /// One per [`TableDef::constraints`].
    pub constraints: Vec<String>,
    /// One per [`TableDef::indexes`].
    pub indexes: Vec<String>,
}

impl Names {
    /// The final names: each relation follows the table from `source_table` to
    /// `target_table`, avoiding the names in `taken` (which receives the new ones).
    pub fn derive(
        def: &TableDef,
        source_table: &str,
        target_table: &str,
        taken: &mut HashSet<String>,
    ) -> Self {
        let mut follow = |name: &str, schema_wide: bool| {
            let wanted = renamed_dependent(name, source_table, target_table);
            if schema_wide {
                choose_free(&wanted, taken)
            } else {
                wanted
            }
        };
        Self {
            table: target_table.to_string(),
            sequences: def
                .sequences
                .iter()
                .map(|s| follow(&s.name, true))
                .collect(),
            constraints: def
                .constraints
                .iter()
                .map(|c| match &c.target_name {
                    Some(name) => name.clone(),
                    None => follow(&c.name, c.has_index()),
                })
                .collect(),
            indexes: def.indexes.iter().map(|i| follow(&i.name, true)).collect(),
        }
    }

    /// Short temporary names (`lb_<tag>_<n>`) for a table built beside the one it
    /// will replace: its final names are still held by the old table's relations
    /// until the swap.
    /// Constraints without an index belong to the table alone: they get their final
    /// names (those of [`Names::derive`] for `source_table` to `target_table`) at once.
    pub fn temporary(
        def: &TableDef,
        tag: &str,
        (source_table, target_table): (&str, &str),
        taken: &mut HashSet<String>,
    ) -> Self {
        let mut n = 0;
        let mut next = |schema_wide: bool, name: &str| {
            if !schema_wide {
                return renamed_dependent(name, source_table, target_table);
            }
            n += 1;
            choose_free(&format!("lb_{tag}_{n}"), taken)
        };
        Self {
            table: next(true, ""),
            sequences: def.sequences.iter().map(|_| next(true, "")).collect(),
            constraints: def
                .constraints
                .iter()
                .map(|c| match &c.target_name {
                    Some(name) if !c.has_index() => name.clone(),
                    _ => next(c.has_index(), &c.name),
                })
                .collect(),
            indexes: def.indexes.iter().map(|_| next(true, "")).collect(),
        }
    }
}

/// Statements creating the table (and its serial sequences) without keys or indexes,
/// which are built after the rows are in: one sort per index instead of one insertion
/// per row.
pub(crate) fn create_table(def: &TableDef, schema: &str, names: &Names) -> Vec<String> {
    let mut out = Vec::new();
    for (seq, name) in def.sequences.iter().zip(&names.sequences) {
        if !seq.identity {
            out.push(format!(
                "CREATE SEQUENCE {} AS {} {}",
                qualified(schema, name),
                seq.data_type,
                seq.options
            ));
        }
    }
    let columns: Vec<String> = def
        .columns
        .iter()
        .map(|c| {
            let mut sql = format!("{} {}", quote_ident(&c.name), c.type_sql);
            if let Some(coll) = &c.collation {
                sql.push_str(&format!(" COLLATE {coll}"));
            }
            // A column may own two sequences: a serial's, left when its default was
            // dropped, and an identity's added after.
            let owned = |identity: bool| {
                def.sequences
                    .iter()
                    .zip(&names.sequences)
                    .find(|(s, _)| s.column == c.name && s.identity == identity)
            };
            let serial_default = c.identity.is_none()
                && c.default.as_deref().is_some_and(|d| d.contains("nextval("));
            if let Some(expr) = &c.generated {
                sql.push_str(&format!(" GENERATED ALWAYS AS ({expr}) STORED"));
            } else if let (Some(kind), Some((seq, seq_name))) = (c.identity, owned(true)) {
                let when = if kind == 'a' { "ALWAYS" } else { "BY DEFAULT" };
                sql.push_str(&format!(
                    " GENERATED {when} AS IDENTITY (SEQUENCE NAME {} {})",
                    qualified(schema, seq_name),
                    seq.options
                ));
            } else if let Some((_, seq_name)) = owned(false).filter(|_| serial_default) {
                // A serial column: its default must name the new sequence, not the
                // source's (the source default's text names the source schema).
                let regclass = quote_literal(&qualified(schema, seq_name));
                sql.push_str(&format!(" DEFAULT nextval({regclass}::regclass)"));
            } else if let Some(default) = &c.default {
                sql.push_str(&format!(" DEFAULT {default}"));
            }
            if c.not_null {
                sql.push_str(" NOT NULL");
            }
            sql
        })
        .collect();
    let unlogged = if def.unlogged { "UNLOGGED " } else { "" };
    let partition_by = match &def.partition_key {
        Some(key) => format!(" PARTITION BY {key}"),
        None => String::new(),
    };
    out.push(format!(
        "CREATE {unlogged}TABLE {} ({}){partition_by}",
        qualified(schema, &names.table),
        columns.join(", ")
    ));
    for (seq, name) in def.sequences.iter().zip(&names.sequences) {
        if !seq.identity {
            out.push(format!(
                "ALTER SEQUENCE {} OWNED BY {}.{}",
                qualified(schema, name),
                qualified(schema, &names.table),
                quote_ident(&seq.column)
            ));
        }
    }
    out
}

/// Keys, constraints, indexes and comments, for after the rows are in.
pub(crate) fn finish_table(def: &TableDef, schema: &str, names: &Names) -> Vec<String> {
    let table = qualified(schema, &names.table);
    let mut out = Vec::new();
    for (c, name) in def.constraints.iter().zip(&names.constraints) {
        out.push(format!(
            "ALTER TABLE {table} ADD CONSTRAINT {} {}",
            quote_ident(name),
            c.definition
        ));
    }
    for (i, name) in def.indexes.iter().zip(&names.indexes) {
        let unique = if i.unique { "UNIQUE " } else { "" };
        out.push(format!(
            "CREATE {unique}INDEX {} ON {table} {}",
            quote_ident(name),
            i.tail
        ));
    }
    if let Some(text) = &def.comment {
        out.push(format!(
            "COMMENT ON TABLE {table} IS {}",
            quote_literal(text)
        ));
    }
    for c in &def.columns {
        if let Some(text) = &c.comment {
            out.push(format!(
                "COMMENT ON COLUMN {table}.{} IS {}",
                quote_ident(&c.name),
                quote_literal(text)
            ));
        }
    }
    for (c, name) in def.constraints.iter().zip(&names.constraints) {
        if let Some(text) = &c.comment {
            out.push(format!(
                "COMMENT ON CONSTRAINT {} ON {table} IS {}",
                quote_ident(name),
                quote_literal(text)
            ));
        }
    }
    for (i, name) in def.indexes.iter().zip(&names.indexes) {
        if let Some(text) = &i.comment {
            out.push(format!(
                "COMMENT ON INDEX {} IS {}",
                qualified(schema, name),
                quote_literal(text)
            ));
        }
    }
    out
}

/// `ALTER TABLE child ADD CONSTRAINT ... FOREIGN KEY ... REFERENCES parent ...`.
pub(crate) fn foreign_key(
    fk: &ForeignKeyDef,
    name: &str,
    child: (&str, &str),
    parent: (&str, &str),
) -> Vec<String> {
    let table = qualified(child.0, child.1);
    let mut out = vec![format!(
        "ALTER TABLE {table} ADD CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {} ({}) {}",
        quote_ident(name),
        column_list(&fk.columns),
        qualified(parent.0, parent.1),
        column_list(&fk.ref_columns),
        fk.actions
    )];
    if let Some(text) = &fk.comment {
        out.push(format!(
            "COMMENT ON CONSTRAINT {} ON {table} IS {}",
            quote_ident(name),
            quote_literal(text)
        ));
    }
    out
}

/// `COPY table (columns) TO STDOUT` on the source.
pub(crate) fn copy_out(schema: &str, table: &str, columns: &[String], binary: bool) -> String {
    format!(
        "COPY {}{} TO STDOUT (FORMAT {})",
        qualified(schema, table),
        columns_clause(columns),
        if binary { "binary" } else { "text" }
    )
}

/// ` (a, b)`, or nothing for a table without columns (`()` is a syntax error).
fn columns_clause(columns: &[String]) -> String {
    if columns.is_empty() {
        String::new()
    } else {
        format!(" ({})", column_list(columns))
    }
}

/// `COPY table (columns) FROM STDIN` on the target. `freeze` writes the rows already
/// frozen, which saves the later rewrite of every page by VACUUM; PostgreSQL allows it
/// only for a table created in the same transaction.
pub(crate) fn copy_in(
    schema: &str,
    table: &str,
    columns: &[String],
    binary: bool,
    freeze: bool,
) -> String {
    format!(
        "COPY {}{} FROM STDIN (FORMAT {}{})",
        qualified(schema, table),
        columns_clause(columns),
        if binary { "binary" } else { "text" },
        if freeze { ", FREEZE" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migration::catalog::{ColumnDef, ConstraintDef, SequenceDef};

    fn table() -> TableDef {
        let col = |name: &str, ty: &str| ColumnDef {
            name: name.into(),
            type_sql: ty.into(),
            user_type: false,
            not_null: true,
            default: None,
            identity: None,
            generated: None,
            collation: None,
            comment: None,
        };
        let serial = ColumnDef {
            default: Some("nextval('public.orders_id_seq'::regclass)".into()),
            ..col("id", "integer")
        };
        TableDef {
            columns: vec![serial, col("x\"; DROP TABLE y; --", "text")],
            constraints: vec![ConstraintDef {
                name: "orders_pkey".into(),
                kind: 'p',
                definition: "PRIMARY KEY (id)".into(),
                comment: None,
                origin: None,
                target_name: None,
            }],
            sequences: vec![SequenceDef {
                name: "orders_id_seq".into(),
                schema: "public".into(),
                column: "id".into(),
                identity: false,
                data_type: "integer".into(),
                options: "INCREMENT BY 1".into(),
            }],
            ..TableDef::default()
        }
    }

    #[test]
    fn renamed_tables_get_renamed_relations() {
        let def = table();
        let mut taken: HashSet<String> = ["orders_old_pkey".to_string()].into();
        let names = Names::derive(&def, "orders", "orders_old", &mut taken);
        assert_eq!(names.sequences, vec!["orders_old_id_seq"]);
        assert_eq!(names.constraints, vec!["orders_old_pkey1"]);
        let sql = create_table(&def, "s", &names).join(";\n");
        assert!(sql.contains("CREATE SEQUENCE \"s\".\"orders_old_id_seq\" AS integer"));
        assert!(sql.contains("DEFAULT nextval('\"s\".\"orders_old_id_seq\"'::regclass)"));
        assert!(sql.contains("\"x\"\"; DROP TABLE y; --\" text NOT NULL"));
        let finish = finish_table(&def, "s", &names);
        assert_eq!(
            finish[0],
            "ALTER TABLE \"s\".\"orders_old\" ADD CONSTRAINT \"orders_old_pkey1\" PRIMARY KEY (id)"
        );
    }
}
