//! Reading table definitions from the catalog: columns, keys, constraints, indexes,
//! owned sequences, foreign keys and comments, for many tables at once (one query per
//! kind of object, not per table, so a database with thousands of tables is read in a
//! few round trips).
//!
//! The session runs with `search_path = pg_catalog`, so `format_type`,
//! `pg_get_expr`, `pg_get_constraintdef` and `pg_get_indexdef` print every user object
//! schema-qualified: the text can be replayed in another database unchanged.

use std::collections::HashMap;

use crate::migration::MigrationError;
use crate::migration::conn::Session;

/// One column, as the target must create it.
#[derive(Debug, Clone)]
pub(crate) struct ColumnDef {
    pub name: String,
    /// `format_type` text, e.g. `character varying(20)` or `public.mood[]`.
    pub type_sql: String,
    /// True when the type (or its element type) is not built in: binary COPY then
    /// cannot be used, because array and composite values carry type OIDs that
    /// differ between clusters.
    pub user_type: bool,
    pub not_null: bool,
    pub default: Option<String>,
    /// `a` (ALWAYS) or `d` (BY DEFAULT) for identity columns.
    pub identity: Option<char>,
    /// The expression of a stored generated column; such columns are not copied.
    pub generated: Option<String>,
    /// A non-default collation, qualified and quoted.
    pub collation: Option<String>,
    pub comment: Option<String>,
}

/// A unique, primary key, check or exclusion constraint.
#[derive(Debug, Clone)]
pub(crate) struct ConstraintDef {
    pub name: String,
    /// `p`, `u`, `c` or `x`.
    pub kind: char,
    pub definition: String,
    pub comment: Option<String>,
    /// For a check constraint inherited from an ancestor (an inheritance parent,
    /// grandparent...): the table that defines it. A child must carry it under the
    /// name its ancestor's copy has in the target, or `ALTER TABLE ... INHERIT`
    /// refuses the child ([`ConstraintDef::target_name`]).
    pub origin: Option<u32>,
    /// The name in the target when it does not follow this table's rename: an
    /// inherited constraint named after its origin's new name.
    pub target_name: Option<String>,
}

impl ConstraintDef {
    /// Constraints backed by an index share the schema-wide namespace of relations.
    pub fn has_index(&self) -> bool {
        matches!(self.kind, 'p' | 'u' | 'x')
    }
}

/// An index that does not back a constraint.
#[derive(Debug, Clone)]
pub(crate) struct IndexDef {
    pub name: String,
    pub unique: bool,
    /// What follows `ON table` in `CREATE INDEX`: `USING btree (a) WHERE ...`.
    pub tail: String,
    pub comment: Option<String>,
}

/// A sequence owned by a column: `serial` (`a`uto dependency) or identity (`i`).
#[derive(Debug, Clone)]
pub(crate) struct SequenceDef {
    pub name: String,
    pub schema: String,
    pub column: String,
    pub identity: bool,
    /// `format_type` of the sequence (`integer`, `bigint`...).
    pub data_type: String,
    /// `INCREMENT BY ... CYCLE`, as CREATE SEQUENCE and identity columns take them.
    pub options: String,
}

/// A foreign key of a table, by names so that it can be mapped.
#[derive(Debug, Clone)]
pub(crate) struct ForeignKeyDef {
    pub name: String,
    pub columns: Vec<String>,
    pub ref_schema: String,
    pub ref_table: String,
    pub ref_columns: Vec<String>,
    /// `ON UPDATE ... ON DELETE ... MATCH ... DEFERRABLE ...` as SQL.
    pub actions: String,
    pub comment: Option<String>,
}

/// Everything needed to recreate and copy one table.
#[derive(Debug, Clone, Default)]
pub(crate) struct TableDef {
    pub unlogged: bool,
    /// `pg_get_partkeydef` of a partitioned table (`RANGE (at)`); `None` otherwise.
    pub partition_key: Option<String>,
    pub columns: Vec<ColumnDef>,
    pub constraints: Vec<ConstraintDef>,
    pub indexes: Vec<IndexDef>,
    pub sequences: Vec<SequenceDef>,
    pub foreign_keys: Vec<ForeignKeyDef>,
    /// The primary key's columns, else those of the first unique index on NOT NULL
    /// columns; empty when the table has neither.
    pub key: Vec<String>,
    pub comment: Option<String>,
}

impl TableDef {
    /// The columns COPY reads and writes: all but generated ones.
    pub fn copied_columns(&self) -> Vec<String> {
        self.columns
            .iter()
            .filter(|c| c.generated.is_none())
            .map(|c| c.name.clone())
            .collect()
    }

    pub fn binary_copy(&self) -> bool {
        !self.columns.iter().any(|c| c.user_type)
    }
}

/// Loads the definitions of `oids` (tables of the session's database).
pub(crate) async fn load(
    s: &Session,
    oids: &[u32],
) -> Result<HashMap<u32, TableDef>, MigrationError> {
    let mut defs: HashMap<u32, TableDef> =
        oids.iter().map(|&oid| (oid, TableDef::default())).collect();
    let ctx = "reading table definitions";
    for row in s
        .query(
            ctx,
            "SELECT oid, relpersistence = 'u', obj_description(oid, 'pg_class'), \
                    pg_get_partkeydef(oid) \
             FROM pg_class WHERE oid = ANY($1)",
            &[&oids],
        )
        .await?
    {
        if let Some(d) = defs.get_mut(&row.get::<_, u32>(0)) {
            d.unlogged = row.get(1);
            d.comment = row.get(2);
            d.partition_key = row.get(3);
        }
    }
    for (oid, column) in columns(s, oids).await? {
        if let Some(d) = defs.get_mut(&oid) {
            d.columns.push(column);
        }
    }
    for (oid, key) in keys(s, oids).await? {
        if let Some(d) = defs.get_mut(&oid) {
            d.key = key;
        }
    }
    load_constraints(s, oids, &mut defs).await?;
    load_indexes(s, oids, &mut defs).await?;
    load_sequences(s, oids, &mut defs).await?;
    load_foreign_keys(s, oids, &mut defs).await?;
    Ok(defs)
}

/// The columns of `oids`, in order, as `(table oid, column)`.
pub(crate) async fn columns(
    s: &Session,
    oids: &[u32],
) -> Result<Vec<(u32, ColumnDef)>, MigrationError> {
    let rows = s
        .query(
            "reading columns",
            "SELECT a.attrelid, a.attname, format_type(a.atttypid, a.atttypmod), \
                    (a.atttypid >= 16384 OR t.typelem >= 16384 OR t.typtype IN ('c', 'd')), \
                    a.attnotnull, \
                    CASE WHEN a.attgenerated = '' THEN pg_get_expr(d.adbin, d.adrelid) END, \
                    a.attidentity::text, \
                    CASE WHEN a.attgenerated <> '' THEN pg_get_expr(d.adbin, d.adrelid) END, \
                    CASE WHEN a.attcollation <> 0 AND a.attcollation <> t.typcollation \
                         THEN quote_ident(cn.nspname) || '.' || quote_ident(co.collname) END, \
                    col_description(a.attrelid, a.attnum) \
             FROM pg_attribute a \
             JOIN pg_type t ON t.oid = a.atttypid \
             LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
             LEFT JOIN pg_collation co ON co.oid = a.attcollation \
             LEFT JOIN pg_namespace cn ON cn.oid = co.collnamespace \
             WHERE a.attrelid = ANY($1) AND a.attnum > 0 AND NOT a.attisdropped \
             ORDER BY a.attrelid, a.attnum",
            &[&oids],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let identity: String = r.get(6);
            (
                r.get(0),
                ColumnDef {
                    name: r.get(1),
                    type_sql: r.get(2),
                    user_type: r.get(3),
                    not_null: r.get(4),
                    default: r.get(5),
                    identity: identity.chars().next(),
                    generated: r.get(7),
                    collation: r.get(8),
                    comment: r.get(9),
                },
            )
        })
        .collect())
}

/// The key of each table that has one: the primary key, else the first (fewest
/// columns) valid unique index without predicate or expression on NOT NULL columns.
pub(crate) async fn keys(
    s: &Session,
    oids: &[u32],
) -> Result<HashMap<u32, Vec<String>>, MigrationError> {
    let rows = s
        .query(
            "reading keys",
            "SELECT i.indrelid, \
                    ARRAY(SELECT a.attname FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(n, o) \
                          JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n \
                          WHERE k.o <= i.indnkeyatts ORDER BY k.o) \
             FROM pg_index i \
             WHERE i.indrelid = ANY($1) AND i.indisunique AND i.indisvalid \
               AND i.indpred IS NULL AND NOT (0 = ANY (i.indkey::int2[])) \
               AND NOT EXISTS (SELECT 1 FROM unnest(i.indkey::int2[]) k(n) \
                               JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n \
                               WHERE NOT a.attnotnull) \
             ORDER BY i.indrelid, i.indisprimary DESC, i.indnkeyatts, i.indexrelid",
            &[&oids],
        )
        .await?;
    let mut keys = HashMap::new();
    for r in rows {
        keys.entry(r.get::<_, u32>(0)).or_insert_with(|| r.get(1));
    }
    Ok(keys)
}

async fn load_constraints(
    s: &Session,
    oids: &[u32],
    defs: &mut HashMap<u32, TableDef>,
) -> Result<(), MigrationError> {
    let rows = s
        .query(
            "reading constraints",
            "SELECT k.conrelid, k.conname, k.contype::text, pg_get_constraintdef(k.oid), \
                    obj_description(k.oid, 'pg_constraint'), \
                    CASE WHEN k.contype = 'c' AND k.coninhcount > 0 AND NOT c.relispartition THEN \
                      (WITH RECURSIVE up(rel, depth) AS ( \
                          SELECT k.conrelid, 0 \
                          UNION ALL SELECT i.inhparent, up.depth + 1 \
                          FROM up JOIN pg_inherits i ON i.inhrelid = up.rel WHERE up.depth < 100) \
                       SELECT up.rel FROM up JOIN pg_constraint o ON o.conrelid = up.rel \
                         AND o.conname = k.conname AND o.contype = 'c' AND o.conislocal \
                       WHERE up.rel <> k.conrelid ORDER BY up.depth DESC LIMIT 1) \
                    END \
             FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid \
             WHERE k.conrelid = ANY($1) AND k.contype IN ('p', 'u', 'c', 'x') \
               AND NOT (c.relispartition AND (k.conparentid <> 0 OR k.coninhcount > 0)) \
             ORDER BY k.conrelid, k.contype <> 'p', k.conname",
            &[&oids],
        )
        .await?;
    for r in rows {
        let kind: String = r.get(2);
        if let Some(d) = defs.get_mut(&r.get::<_, u32>(0)) {
            d.constraints.push(ConstraintDef {
                name: r.get(1),
                kind: kind.chars().next().unwrap_or('c'),
                definition: r.get(3),
                comment: r.get(4),
                origin: r.get(5),
                target_name: None,
            });
        }
    }
    Ok(())
}

async fn load_indexes(
    s: &Session,
    oids: &[u32],
    defs: &mut HashMap<u32, TableDef>,
) -> Result<(), MigrationError> {
    // The prefix pg_get_indexdef writes before the part we keep, built with the same
    // quoting the server uses, so the split cannot be fooled by odd names (`ON ONLY`
    // for a partitioned table's index). A partition's indexes that come from its
    // partitioned table's (listed in pg_inherits) are left out: creating the
    // partitioned table's index creates them.
    let rows = s
        .query(
            "reading indexes",
            "SELECT i.indrelid, ic.relname, i.indisunique, pg_get_indexdef(i.indexrelid), \
                    'CREATE ' || CASE WHEN i.indisunique THEN 'UNIQUE ' ELSE '' END || 'INDEX ' \
                      || quote_ident(ic.relname) || ' ON ' \
                      || CASE WHEN c.relkind = 'p' THEN 'ONLY ' ELSE '' END \
                      || quote_ident(n.nspname) || '.' \
                      || quote_ident(c.relname) || ' ', \
                    obj_description(i.indexrelid, 'pg_class') \
             FROM pg_index i \
             JOIN pg_class ic ON ic.oid = i.indexrelid \
             JOIN pg_class c ON c.oid = i.indrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE i.indrelid = ANY($1) \
               AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conrelid = i.indrelid \
                               AND k.conindid = i.indexrelid AND k.contype IN ('p', 'u', 'x')) \
               AND NOT EXISTS (SELECT 1 FROM pg_inherits h WHERE h.inhrelid = i.indexrelid) \
             ORDER BY i.indrelid, ic.relname",
            &[&oids],
        )
        .await?;
    for r in rows {
        let name: String = r.get(1);
        let def: String = r.get(3);
        let prefix: String = r.get(4);
        let Some(tail) = def.strip_prefix(&prefix) else {
            return Err(MigrationError::Mapping(format!(
                "cannot read the definition of index {name}: {def}"
            )));
        };
        if let Some(d) = defs.get_mut(&r.get::<_, u32>(0)) {
            d.indexes.push(IndexDef {
                name,
                unique: r.get(2),
                tail: tail.to_string(),
                comment: r.get(5),
            });
        }
    }
    Ok(())
}

async fn load_sequences(
    s: &Session,
    oids: &[u32],
    defs: &mut HashMap<u32, TableDef>,
) -> Result<(), MigrationError> {
    let rows = s
        .query(
            "reading owned sequences",
            "SELECT d.refobjid, a.attname, sc.relname, sn.nspname, d.deptype = 'i', \
                    format_type(q.seqtypid, NULL), \
                    format('INCREMENT BY %s MINVALUE %s MAXVALUE %s START WITH %s CACHE %s %s', \
                           q.seqincrement, q.seqmin, q.seqmax, \
                           q.seqstart, q.seqcache, CASE WHEN q.seqcycle THEN 'CYCLE' ELSE 'NO CYCLE' END) \
             FROM pg_depend d \
             JOIN pg_class sc ON sc.oid = d.objid AND sc.relkind = 'S' \
             JOIN pg_namespace sn ON sn.oid = sc.relnamespace \
             JOIN pg_sequence q ON q.seqrelid = sc.oid \
             JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid \
             WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass \
               AND d.refobjid = ANY($1) AND d.deptype IN ('a', 'i') \
             ORDER BY d.refobjid, a.attnum, sc.oid",
            &[&oids],
        )
        .await?;
    for r in rows {
        if let Some(d) = defs.get_mut(&r.get::<_, u32>(0)) {
            d.sequences.push(SequenceDef {
                column: r.get(1),
                name: r.get(2),
                schema: r.get(3),
                identity: r.get(4),
                data_type: r.get(5),
                options: r.get(6),
            });
        }
    }
    Ok(())
}

async fn load_foreign_keys(
    s: &Session,
    oids: &[u32],
    defs: &mut HashMap<u32, TableDef>,
) -> Result<(), MigrationError> {
    let rows = s
        .query(
            "reading foreign keys",
            "SELECT c.conrelid, c.conname, rn.nspname, r.relname, \
                    ARRAY(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY k(n, o) \
                          JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.o), \
                    ARRAY(SELECT a.attname FROM unnest(c.confkey) WITH ORDINALITY k(n, o) \
                          JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.o), \
                    CASE c.confmatchtype WHEN 'f' THEN 'MATCH FULL ' ELSE '' END \
                      || 'ON UPDATE ' || CASE c.confupdtype WHEN 'a' THEN 'NO ACTION' WHEN 'r' THEN 'RESTRICT' \
                           WHEN 'c' THEN 'CASCADE' WHEN 'n' THEN 'SET NULL' ELSE 'SET DEFAULT' END \
                      || ' ON DELETE ' || CASE c.confdeltype WHEN 'a' THEN 'NO ACTION' WHEN 'r' THEN 'RESTRICT' \
                           WHEN 'c' THEN 'CASCADE' WHEN 'n' THEN 'SET NULL' ELSE 'SET DEFAULT' END \
                      || CASE WHEN c.condeferrable THEN ' DEFERRABLE' ELSE '' END \
                      || CASE WHEN c.condeferred THEN ' INITIALLY DEFERRED' ELSE '' END \
                      || CASE WHEN NOT c.convalidated THEN ' NOT VALID' ELSE '' END, \
                    obj_description(c.oid, 'pg_constraint') \
             FROM pg_constraint c \
             JOIN pg_class r ON r.oid = c.confrelid \
             JOIN pg_namespace rn ON rn.oid = r.relnamespace \
             WHERE c.conrelid = ANY($1) AND c.contype = 'f' AND c.conparentid = 0 \
             ORDER BY c.conrelid, c.conname",
            &[&oids],
        )
        .await?;
    for r in rows {
        if let Some(d) = defs.get_mut(&r.get::<_, u32>(0)) {
            d.foreign_keys.push(ForeignKeyDef {
                name: r.get(1),
                ref_schema: r.get(2),
                ref_table: r.get(3),
                columns: r.get(4),
                ref_columns: r.get(5),
                actions: r.get(6),
                comment: r.get(7),
            });
        }
    }
    Ok(())
}

/// Names each check constraint a migrated table inherits from another migrated table
/// as that table's copy is named in the target (it follows the origin's rename, not
/// the child's), so that `ALTER TABLE child INHERIT parent` finds it.
pub(crate) fn name_inherited_constraints(
    defs: &mut HashMap<u32, TableDef>,
    tables: &[crate::migration::mapping::SourceTable],
) {
    let renames: HashMap<u32, (&str, &str)> = tables
        .iter()
        .map(|t| {
            (
                t.oid,
                (
                    t.mapping.source.table.as_str(),
                    t.mapping.target.table.as_str(),
                ),
            )
        })
        .collect();
    for t in tables {
        let Some(def) = defs.get_mut(&t.oid) else {
            continue;
        };
        for c in &mut def.constraints {
            if let Some((source, target)) = c.origin.and_then(|o| renames.get(&o)) {
                c.target_name = Some(crate::migration::names::renamed_dependent(
                    &c.name, source, target,
                ));
            }
        }
    }
}
