//! The user-defined types migrated tables use (enums, domains, composite types,
//! ranges, and the types these are made of), read from the source with the statements
//! that create them, and created in a target database that lacks them before any
//! table is: a table restored into a new database or schema finds its types there.
//!
//! PostgreSQL has no deparser for a type: the statements are assembled from the
//! catalogs with `format()` (`%I` quoting), `format_type` and `pg_get_constraintdef`.
//! Types Lifeboat cannot create (those of an extension, base types written in C, the
//! row type of a table) come with the reason, which the pre-check reports.

use crate::migration::MigrationError;
use crate::migration::conn::Session;
use crate::migration::names::{display_ident, quote_ident};

/// A user-defined type, in the order types must be created (what a type is made of
/// first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TypeDef {
    pub schema: String,
    pub name: String,
    /// The statements that create it (and its comment); empty when `problem` is set.
    pub statements: Vec<String>,
    /// Why Lifeboat cannot create it.
    pub problem: Option<String>,
    /// The extension it belongs to: the task creates the extension instead (see
    /// [`crate::migration::objects`]).
    pub extension: Option<String>,
}

impl TypeDef {
    /// `schema.name`, as a user writes it.
    pub fn label(&self) -> String {
        format!(
            "{}.{}",
            display_ident(&self.schema),
            display_ident(&self.name)
        )
    }
}

/// The user-defined types the columns of tables `oids` use, directly or through
/// arrays, domains, composite types and ranges, dependencies first.
pub(crate) async fn load(s: &Session, oids: &[u32]) -> Result<Vec<TypeDef>, MigrationError> {
    if oids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = s
        .query(
            "reading the user-defined types the tables use",
            "WITH RECURSIVE used(oid, depth) AS ( \
                 SELECT DISTINCT a.atttypid, 0 FROM pg_attribute a \
                 WHERE a.attrelid = ANY($1) AND a.attnum > 0 AND NOT a.attisdropped \
               UNION \
                 SELECT x.oid, u.depth + 1 FROM used u JOIN pg_type t ON t.oid = u.oid \
                 CROSS JOIN LATERAL ( \
                     SELECT t.typelem WHERE t.typelem <> 0 \
                     UNION ALL SELECT t.typbasetype WHERE t.typbasetype <> 0 \
                     UNION ALL SELECT r.rngsubtype FROM pg_range r WHERE r.rngtypid = t.oid \
                     UNION ALL SELECT ca.atttypid FROM pg_attribute ca \
                         JOIN pg_class cc ON cc.oid = ca.attrelid \
                         WHERE cc.oid = t.typrelid AND cc.relkind = 'c' \
                           AND ca.attnum > 0 AND NOT ca.attisdropped \
                 ) x(oid) \
                 WHERE u.depth < 16 \
             ) \
             SELECT t.oid, n.nspname::text, t.typname::text, t.typtype::text, \
                    (SELECT e.extname::text FROM pg_depend d \
                     JOIN pg_extension e ON e.oid = d.refobjid \
                     WHERE d.classid = 'pg_type'::regclass AND d.objid = t.oid \
                       AND d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e' LIMIT 1), \
                    coalesce((SELECT c.relkind::text FROM pg_class c WHERE c.oid = t.typrelid), ''), \
                    (SELECT format('%I.%I', cn.nspname, c.relname) FROM pg_class c \
                     JOIN pg_namespace cn ON cn.oid = c.relnamespace WHERE c.oid = t.typrelid) \
             FROM (SELECT oid, max(depth) AS depth FROM used GROUP BY oid) u \
             JOIN pg_type t ON t.oid = u.oid \
             JOIN pg_namespace n ON n.oid = t.typnamespace \
             WHERE t.oid >= 16384 AND t.typcategory <> 'A' AND t.typtype <> 'm' \
             ORDER BY u.depth DESC, t.oid",
            &[&oids],
        )
        .await?;
    let mut out = Vec::new();
    for r in rows {
        let (oid, schema, name, kind): (u32, String, String, String) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        let extension: Option<String> = r.get(4);
        let relkind: String = r.get(5);
        let problem = if let Some(ext) = &extension {
            Some(format!(
                "belongs to the extension {ext}: create the extension in the target database first"
            ))
        } else {
            match (kind.as_str(), relkind.as_str()) {
                ("e" | "d" | "r", _) | ("c", "c") => None,
                ("c", _) => Some(format!(
                    "is the row type of the table {}, which the task would have to create first",
                    r.get::<_, Option<String>>(6).unwrap_or_default()
                )),
                _ => Some(
                    "is a base type defined in C: create it (or its extension) in the target database first"
                        .into(),
                ),
            }
        };
        let statements = match problem {
            Some(_) => Vec::new(),
            None => statements(s, oid, &kind).await?,
        };
        out.push(TypeDef {
            schema,
            name,
            statements,
            problem,
            extension,
        });
    }
    Ok(out)
}

/// The statements creating type `oid` of kind `kind` (`e`, `d`, `c` or `r`), then its
/// comment.
async fn statements(s: &Session, oid: u32, kind: &str) -> Result<Vec<String>, MigrationError> {
    const COLLATE: &str = "(SELECT format(' COLLATE %I.%I', cn.nspname, co.collname) \
         FROM pg_collation co JOIN pg_namespace cn ON cn.oid = co.collnamespace WHERE co.oid = ";
    let sql = match kind {
        "e" => "SELECT format('CREATE TYPE %I.%I AS ENUM (%s)', n.nspname, t.typname, \
                    coalesce((SELECT string_agg(quote_literal(e.enumlabel), ', ' ORDER BY e.enumsortorder) \
                              FROM pg_enum e WHERE e.enumtypid = t.oid), '')) \
                FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE t.oid = $1"
            .to_string(),
        "d" => format!(
            "SELECT format('CREATE DOMAIN %I.%I AS %s', n.nspname, t.typname, \
                        format_type(t.typbasetype, t.typtypmod)) \
                 || CASE WHEN t.typcollation <> 0 AND t.typcollation <> b.typcollation \
                         THEN {COLLATE} t.typcollation) ELSE '' END \
                 || CASE WHEN t.typdefault IS NOT NULL THEN ' DEFAULT ' || t.typdefault ELSE '' END \
                 || CASE WHEN t.typnotnull THEN ' NOT NULL' ELSE '' END \
                 || coalesce((SELECT string_agg(format(' CONSTRAINT %I ', c.conname) \
                                                || pg_get_constraintdef(c.oid), '' ORDER BY c.conname) \
                              FROM pg_constraint c WHERE c.contypid = t.oid AND c.contype = 'c'), '') \
             FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace \
             JOIN pg_type b ON b.oid = t.typbasetype WHERE t.oid = $1"
        ),
        "c" => format!(
            "SELECT format('CREATE TYPE %I.%I AS (%s)', n.nspname, t.typname, \
                    coalesce((SELECT string_agg(format('%I %s', a.attname, format_type(a.atttypid, a.atttypmod)) \
                                  || CASE WHEN a.attcollation <> 0 AND a.attcollation <> at.typcollation \
                                          THEN {COLLATE} a.attcollation) ELSE '' END, \
                                  ', ' ORDER BY a.attnum) \
                              FROM pg_attribute a JOIN pg_type at ON at.oid = a.atttypid \
                              WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped), '')) \
             FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE t.oid = $1"
        ),
        _ => format!(
            "SELECT format('CREATE TYPE %I.%I AS RANGE (SUBTYPE = %s, SUBTYPE_OPCLASS = %I.%I', \
                        n.nspname, t.typname, format_type(r.rngsubtype, NULL), opn.nspname, opc.opcname) \
                 || CASE WHEN r.rngcollation <> 0 \
                         THEN replace({COLLATE} r.rngcollation), ' COLLATE ', ', COLLATION = ') ELSE '' END \
                 || CASE WHEN r.rngcanonical <> 0 THEN ', CANONICAL = ' || r.rngcanonical::regproc::text ELSE '' END \
                 || CASE WHEN r.rngsubdiff <> 0 THEN ', SUBTYPE_DIFF = ' || r.rngsubdiff::regproc::text ELSE '' END \
                 || coalesce((SELECT format(', MULTIRANGE_TYPE_NAME = %I.%I', mn.nspname, m.typname) \
                              FROM pg_type m JOIN pg_namespace mn ON mn.oid = m.typnamespace \
                              WHERE m.oid = r.rngmultitypid), '') \
                 || ')' \
             FROM pg_range r JOIN pg_type t ON t.oid = r.rngtypid \
             JOIN pg_namespace n ON n.oid = t.typnamespace \
             JOIN pg_opclass opc ON opc.oid = r.rngsubopc \
             JOIN pg_namespace opn ON opn.oid = opc.opcnamespace WHERE t.oid = $1"
        ),
    };
    let create: String = s
        .query_one("reading a type's definition", &sql, &[&oid])
        .await?
        .get(0);
    let mut out = vec![create];
    let comment: Option<String> = s
        .query(
            "reading a type's comment",
            "SELECT format('COMMENT ON %s %I.%I IS %L', \
                    CASE WHEN t.typtype = 'd' THEN 'DOMAIN' ELSE 'TYPE' END, \
                    n.nspname, t.typname, obj_description(t.oid, 'pg_type')) \
             FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace \
             WHERE t.oid = $1 AND obj_description(t.oid, 'pg_type') IS NOT NULL",
            &[&oid],
        )
        .await?
        .first()
        .map(|r| r.get(0));
    out.extend(comment);
    Ok(out)
}

/// Whether the target database of `s` has a type of that schema and name.
pub(crate) async fn exists(s: &Session, t: &TypeDef) -> Result<bool, MigrationError> {
    Ok(s.query_one(
        "looking up a type",
        "SELECT to_regtype(format('%I.%I', $1::text, $2::text)) IS NOT NULL",
        &[&t.schema, &t.name],
    )
    .await?
    .get(0))
}

/// Creates in the target database of `s` the types of `types` it lacks, in order, each
/// with its schema; a type Lifeboat cannot create fails, naming it.
pub(crate) async fn create_missing(s: &Session, types: &[TypeDef]) -> Result<(), MigrationError> {
    for t in types {
        if exists(s, t).await? {
            continue;
        }
        if let Some(why) = &t.problem {
            return Err(MigrationError::Conflicts(vec![format!(
                "type {} does not exist in the target and {why}",
                t.label()
            )]));
        }
        s.execute(
            "creating the type's schema",
            &format!("CREATE SCHEMA IF NOT EXISTS {}", quote_ident(&t.schema)),
        )
        .await?;
        for sql in &t.statements {
            s.execute("creating a type the tables use", sql).await?;
        }
    }
    Ok(())
}

/// `types` without repeats (the same type used by tables of several source databases
/// mapped into one target database), in their order.
pub(crate) fn distinct(types: impl IntoIterator<Item = TypeDef>) -> Vec<TypeDef> {
    let mut out: Vec<TypeDef> = Vec::new();
    for t in types {
        if !out.iter().any(|o| o.schema == t.schema && o.name == t.name) {
            out.push(t);
        }
    }
    out
}
