//! Reading both sides' catalogs to plan the comparison of one table pair: which columns
//! are compared (present on both sides with the same base type), how the schemas
//! differ, which key matches rows (primary key, else a unique index on NOT NULL
//! columns), and whether each side can read that key in byte order through an index.

use crate::diff::report::SchemaDifference;
use crate::diff::session::Conn;
use crate::diff::sql::quote_ident;
use crate::diff::{DiffError, TableName};

/// A column compared on both sides.
#[derive(Debug, Clone)]
pub(crate) struct Column {
    pub name: String,
    /// The type without modifier, schema-qualified (`"pg_catalog"."bpchar"`): what
    /// key values sent as text are cast to. Without the modifier so that a cast never
    /// truncates (`::character` alone would mean `character(1)`).
    pub cast_type: String,
    /// True for types compared under a collation (text and the like): the diff then
    /// orders them with `COLLATE "C"`, i.e. by bytes, identically on both servers.
    pub collatable: bool,
    /// Equal values of this type always have the same text form, so its binary form
    /// can be hashed instead (see [`crate::diff::sql`]).
    pub hashed_as_is: bool,
    /// `character(n)`: its text form is padded to n, while equality (and its hash,
    /// and its cast to text) ignore trailing spaces.
    pub padded: bool,
    pub type_oid: u32,
    /// Values of the type have a fixed length (int, uuid, timestamp...), unlike text,
    /// numeric or records: `width_bucket` searches an array of them in log time.
    pub fixed_width: bool,
}

/// Types whose equality (under `COLLATE "C"` for text) is identity of the text form:
/// bool, bytea, "char", name, int8, int2, int4, text, oid, bpchar, varchar, date, time,
/// timestamp, timestamptz, uuid. (For bpchar both ignore trailing spaces: its text
/// form here is `value::text`, which drops them.) Not floats (-0 = 0), numeric
/// (1.0 = 1.00), interval, jsonb...
const HASHED_AS_IS: [u32; 16] = [
    16, 17, 18, 19, 20, 21, 23, 25, 26, 1042, 1043, 1082, 1083, 1114, 1184, 2950,
];

/// One side's table, as the queries need it.
#[derive(Debug, Clone)]
pub(crate) struct SideTable {
    pub name: TableName,
    /// `ONLY "schema"."table"` for ordinary tables (their inheritance children are
    /// tables of their own), the plain name for partitioned tables and views.
    pub from: String,
    /// True when an index returns the key in byte order, so key ranges are index
    /// range scans; otherwise ranges are found by scanning the table.
    pub ordered_key_index: bool,
    /// The planner's row estimate; only sizes the first split.
    pub estimated_rows: f64,
}

/// Everything needed to compare one table pair.
#[derive(Debug, Clone)]
pub(crate) struct TablePlan {
    pub source: SideTable,
    pub target: SideTable,
    /// Compared columns in the source's order.
    pub columns: Vec<Column>,
    /// Indexes into `columns` of the key, in index order; empty means no usable key.
    pub key: Vec<usize>,
    /// The key is one integer column: ranges are then computed arithmetically.
    pub integer_key: bool,
    pub schema_differences: Vec<SchemaDifference>,
    pub warnings: Vec<String>,
}

struct CatalogColumn {
    name: String,
    display_type: String,
    cast_type: String,
    not_null: bool,
    collatable: bool,
    type_oid: u32,
    fixed_width: bool,
}

struct Index {
    primary: bool,
    unique: bool,
    columns: Vec<String>,
    /// Plain columns (no expression), byte-order collations, default operator classes.
    ordered: bool,
}

/// The oid and FROM clause of a table, or `TableNotFound`/`PermissionDenied`.
async fn resolve(conn: &Conn<'_>, name: &TableName) -> Result<(u32, String), DiffError> {
    let rows = conn
        .query(
            &format!("looking up table {name}"),
            "SELECT c.oid, c.relkind::text, has_table_privilege(c.oid, 'SELECT'), \
                    current_user::text \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r','p','v','m','f')",
            &[&name.schema, &name.name],
        )
        .await?;
    let Some(row) = rows.first() else {
        return Err(DiffError::TableNotFound {
            side: conn.side,
            table: name.to_string(),
        });
    };
    if !row.get::<_, bool>(2) {
        return Err(DiffError::PermissionDenied {
            side: conn.side,
            table: name.to_string(),
            role: row.get(3),
        });
    }
    let qualified = format!("{}.{}", quote_ident(&name.schema), quote_ident(&name.name));
    let kind: String = row.get(1);
    let from = if kind == "r" {
        format!("ONLY {qualified}")
    } else {
        qualified
    };
    Ok((row.get(0), from))
}

async fn columns(conn: &Conn<'_>, oid: u32) -> Result<Vec<CatalogColumn>, DiffError> {
    let rows = conn
        .query(
            "reading the table's columns",
            "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), \
                    format('%I.%I', tn.nspname, t.typname), a.attnotnull, \
                    t.typcollation <> 0, a.atttypid, t.typlen > 0 \
             FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid \
             JOIN pg_namespace tn ON tn.oid = t.typnamespace \
             WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped \
             ORDER BY a.attnum",
            &[&oid],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| CatalogColumn {
            name: r.get(0),
            display_type: r.get(1),
            cast_type: r.get(2),
            not_null: r.get(3),
            collatable: r.get(4),
            type_oid: r.get(5),
            fixed_width: r.get(6),
        })
        .collect())
}

async fn indexes(conn: &Conn<'_>, oid: u32) -> Result<Vec<Index>, DiffError> {
    let rows = conn
        .query(
            "reading the table's indexes",
            "SELECT i.indisprimary, i.indisunique, \
               ARRAY(SELECT a.attname::text FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(n, o) \
                     JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n \
                     WHERE k.o <= i.indnkeyatts ORDER BY k.o), \
               (SELECT bool_and(k.n > 0) FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(n, o) \
                     WHERE k.o <= i.indnkeyatts) \
               AND (SELECT coalesce(bool_and(c.coll = 0 OR co.collname IN ('C', 'POSIX')), true) \
                     FROM unnest(i.indcollation::oid[]) c(coll) \
                     LEFT JOIN pg_collation co ON co.oid = c.coll) \
               AND (SELECT coalesce(bool_and(oc.opcdefault), true) \
                     FROM unnest(i.indclass::oid[]) c(opc) JOIN pg_opclass oc ON oc.oid = c.opc) \
               AND am.amname = 'btree' \
             FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid \
             JOIN pg_am am ON am.oid = ic.relam \
             WHERE i.indrelid = $1 AND i.indisvalid AND i.indpred IS NULL \
             ORDER BY i.indisprimary DESC, i.indnkeyatts, i.indexrelid",
            &[&oid],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Index {
            primary: r.get(0),
            unique: r.get(1),
            columns: r.get(2),
            ordered: r.get::<_, Option<bool>>(3).unwrap_or(false),
        })
        .collect())
}

async fn estimated_rows(conn: &Conn<'_>, oid: u32) -> Result<f64, DiffError> {
    // reltuples is -1 for a table never vacuumed or analyzed; the size then gives a
    // rough figure. Partitioned tables count their partitions (pg_partition_tree lists
    // nothing for an ordinary table).
    let row = conn
        .query(
            "estimating the table's size",
            "SELECT coalesce(sum(greatest(c.reltuples, 0)), 0)::float8, \
                    coalesce(sum(pg_relation_size(c.oid)), 0)::int8, \
                    coalesce(bool_or(c.reltuples < 0), false) \
             FROM pg_class c WHERE c.oid = $1 \
                OR c.oid IN (SELECT relid FROM pg_partition_tree($1::oid))",
            &[&oid],
        )
        .await?;
    let Some(row) = row.first() else {
        return Ok(1.0);
    };
    let (tuples, bytes, unknown): (f64, i64, bool) = (row.get(0), row.get(1), row.get(2));
    let guess = if unknown { bytes as f64 / 100.0 } else { 0.0 };
    Ok(tuples.max(guess).max(1.0))
}

/// The inheritance children of a table (`schema.table`, as a user writes them).
async fn children(conn: &Conn<'_>, oid: u32) -> Result<Vec<String>, DiffError> {
    let rows = conn
        .query(
            "reading the table's inheritance children",
            "SELECT format('%I.%I', n.nspname, c.relname) \
             FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             JOIN pg_class p ON p.oid = i.inhparent \
             WHERE i.inhparent = $1 AND p.relkind = 'r' ORDER BY 1",
            &[&oid],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Does `indexes` hold one whose leading columns are `key` in byte order?
fn has_ordered_index(indexes: &[Index], key: &[String]) -> bool {
    indexes
        .iter()
        .any(|i| i.ordered && i.columns.len() >= key.len() && i.columns[..key.len()] == *key)
}

/// Plans the comparison of `source` with `target`.
pub(crate) async fn plan(
    src: &Conn<'_>,
    dst: &Conn<'_>,
    source: &TableName,
    target: &TableName,
) -> Result<TablePlan, DiffError> {
    let ((s_oid, s_from), (t_oid, t_from)) =
        tokio::try_join!(resolve(src, source), resolve(dst, target))?;
    let ((s_cols, s_idx, s_rows), (t_cols, t_idx, t_rows)) = tokio::try_join!(
        async {
            tokio::try_join!(
                columns(src, s_oid),
                indexes(src, s_oid),
                estimated_rows(src, s_oid)
            )
        },
        async {
            tokio::try_join!(
                columns(dst, t_oid),
                indexes(dst, t_oid),
                estimated_rows(dst, t_oid)
            )
        },
    )?;

    let mut differences = Vec::new();
    let mut columns = Vec::new();
    for sc in &s_cols {
        match t_cols.iter().find(|tc| tc.name == sc.name) {
            None => differences.push(SchemaDifference::ColumnOnlyInSource {
                column: sc.name.clone(),
                data_type: sc.display_type.clone(),
            }),
            Some(tc) => {
                let same_base = tc.cast_type == sc.cast_type;
                if tc.display_type != sc.display_type {
                    differences.push(SchemaDifference::TypeDiffers {
                        column: sc.name.clone(),
                        source_type: sc.display_type.clone(),
                        target_type: tc.display_type.clone(),
                        compared: same_base,
                    });
                }
                if same_base {
                    columns.push(Column {
                        name: sc.name.clone(),
                        cast_type: sc.cast_type.clone(),
                        collatable: sc.collatable,
                        hashed_as_is: HASHED_AS_IS.contains(&sc.type_oid),
                        padded: sc.type_oid == 1042,
                        type_oid: sc.type_oid,
                        fixed_width: sc.fixed_width,
                    });
                }
            }
        }
    }
    for tc in &t_cols {
        if !s_cols.iter().any(|sc| sc.name == tc.name) {
            differences.push(SchemaDifference::ColumnOnlyInTarget {
                column: tc.name.clone(),
                data_type: tc.display_type.clone(),
            });
        }
    }

    let mut warnings = Vec::new();
    let (s_children, t_children) = tokio::try_join!(children(src, s_oid), children(dst, t_oid))?;
    for (side, name, kids) in [
        ("source", source, &s_children),
        ("target", target, &t_children),
    ] {
        if !kids.is_empty() {
            warnings.push(format!(
                "{name} has inheritance children on the {side} ({}): only its own rows were \
                 compared, not the children's rows that SELECT * FROM {name} also shows; \
                 compare the children by name too (--table {})",
                kids.join(", "),
                kids[0]
            ));
        }
    }
    if differences
        .iter()
        .any(|d| !matches!(d, SchemaDifference::TypeDiffers { compared: true, .. }))
    {
        warnings.push(
            "the table definitions differ: only columns present on both sides with the same \
             type were compared"
                .to_string(),
        );
    }

    let key = choose_key(&s_cols, &s_idx, &t_cols, &t_idx, &columns);
    let key_names: Vec<String> = key.iter().map(|&i| columns[i].name.clone()).collect();
    if key.is_empty() {
        warnings.push(
            "no primary key or unique index on NOT NULL columns common to both sides: rows \
             were compared as a multiset of whole rows, so a changed row shows as one row \
             only in the source and one only in the target"
                .to_string(),
        );
    }
    let integer_key = key.len() == 1 && {
        let name = &columns[key[0]].name;
        let int = |cols: &[CatalogColumn]| {
            cols.iter()
                .any(|c| &c.name == name && [20, 21, 23].contains(&c.type_oid))
        };
        int(&s_cols) && int(&t_cols)
    };
    let side = |name: &TableName, from: String, idx: &[Index], rows: f64| SideTable {
        name: name.clone(),
        from,
        ordered_key_index: !key.is_empty() && has_ordered_index(idx, &key_names),
        estimated_rows: rows,
    };
    Ok(TablePlan {
        source: side(source, s_from, &s_idx, s_rows),
        target: side(target, t_from, &t_idx, t_rows),
        integer_key,
        key,
        columns,
        schema_differences: differences,
        warnings,
    })
}

/// The source's primary key, else its first unique index on NOT NULL columns, else the
/// same from the target; only keys whose columns are all compared and NOT NULL on both
/// sides qualify (a NULL could repeat, and a key must identify one row on each side).
fn choose_key(
    s_cols: &[CatalogColumn],
    s_idx: &[Index],
    t_cols: &[CatalogColumn],
    t_idx: &[Index],
    compared: &[Column],
) -> Vec<usize> {
    let not_null =
        |cols: &[CatalogColumn], name: &str| cols.iter().any(|c| c.name == name && c.not_null);
    let candidates = s_idx.iter().chain(t_idx.iter()).filter(|i| {
        (i.primary || i.unique)
            && !i.columns.is_empty()
            && i.columns
                .iter()
                .all(|c| not_null(s_cols, c) && not_null(t_cols, c))
    });
    for index in candidates {
        let positions: Option<Vec<usize>> = index
            .columns
            .iter()
            .map(|c| compared.iter().position(|col| &col.name == c))
            .collect();
        if let Some(positions) = positions {
            return positions;
        }
    }
    Vec::new()
}

/// The ordinary and partitioned tables of `schema` (partitions are compared through
/// their parent), or `None` when the schema does not exist.
pub(crate) async fn schema_tables(
    conn: &Conn<'_>,
    schema: &str,
) -> Result<Option<Vec<String>>, DiffError> {
    let exists = conn
        .query(
            &format!("looking up schema {schema}"),
            "SELECT 1 FROM pg_namespace WHERE nspname = $1",
            &[&schema],
        )
        .await?;
    if exists.is_empty() {
        return Ok(None);
    }
    let rows = conn
        .query(
            &format!("listing the tables of schema {schema}"),
            "SELECT c.relname::text FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition \
             ORDER BY 1",
            &[&schema],
        )
        .await?;
    Ok(Some(rows.iter().map(|r| r.get(0)).collect()))
}
