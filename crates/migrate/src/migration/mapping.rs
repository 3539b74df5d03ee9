//! Object mapping: turns the task's objects (databases, schemas, tables, each maybe
//! renamed) into the list of tables to migrate, each with its source and target name,
//! by reading the source catalog.
//!
//! For each source table the least specific object applies first and the most specific
//! last: with `shop=shop2` and `shop.public.orders=orders_old`, table
//! `shop.public.orders` goes to `shop2.public.orders_old`, and every other table of
//! `shop` to `shop2` under its own name.

use std::collections::{HashMap, HashSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::migration::conn::Session;
use crate::migration::names::{display_path, identifier_problem, quote_ident};
use crate::migration::partition::{self, SourcePartition};
use crate::migration::{MigrationError, ObjectMapping};

/// Schemas never migrated as part of a database or schema object: the catalogs, and
/// the schema where Lifeboat keeps its journal in a target.
pub(crate) const SKIPPED_SCHEMAS: &str = "n.nspname NOT IN ('pg_catalog', 'information_schema', 'lifeboat_migration') \
     AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'";

/// A table by database, schema and name (exact identifiers).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct QualifiedTable {
    pub database: String,
    pub schema: String,
    pub table: String,
}

impl fmt::Display for QualifiedTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&display_path(&[&self.database, &self.schema, &self.table]))
    }
}

/// The stable name of one table of a task, used to report it finished and to skip it
/// after a restart: the source path with every part quoted (`"shop"."public"."t"`),
/// so no two tables share a key whatever their names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TableKey(pub String);

impl TableKey {
    pub fn of(t: &QualifiedTable) -> Self {
        Self(format!(
            "{}.{}.{}",
            quote_ident(&t.database),
            quote_ident(&t.schema),
            quote_ident(&t.table)
        ))
    }
}

impl fmt::Display for TableKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One table of the task: where it comes from and where it goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableMapping {
    pub key: TableKey,
    pub source: QualifiedTable,
    pub target: QualifiedTable,
}

impl TableMapping {
    /// `source` or `source=target` when the name changes.
    pub fn label(&self) -> String {
        if self.source == self.target {
            self.source.to_string()
        } else {
            format!("{}={}", self.source, self.target)
        }
    }
}

/// A source table selected by the task, with what the catalog says about its size.
#[derive(Debug, Clone)]
pub(crate) struct SourceTable {
    pub mapping: TableMapping,
    pub oid: u32,
    /// The planner's estimate (`reltuples`), 0 when never analyzed.
    pub estimated_rows: u64,
    /// Heap and TOAST: about what COPY moves.
    pub table_bytes: u64,
    /// With indexes: about what the target needs on disk.
    pub total_bytes: u64,
    /// For a partitioned table, its whole tree (each partition after the one it belongs
    /// to); the sizes above are then the sums over the leaves. Empty otherwise.
    pub partitions: Vec<SourcePartition>,
    /// True for a partitioned table (even one without partitions yet).
    pub partitioned: bool,
}

/// What the source catalog says about the task's objects in one database.
#[derive(Debug, Default)]
pub(crate) struct Resolution {
    pub tables: Vec<SourceTable>,
    /// Objects that name nothing on the source.
    pub missing: Vec<String>,
    /// Selected tables that cannot be migrated, with the reason.
    pub unsupported: Vec<(String, String)>,
    /// Selected tables that inherit from a table the task does not migrate: they
    /// become plain tables with their own rows.
    pub inheritance: Vec<String>,
    /// Partitions named by an object of their own, as "what it is": they are
    /// migrated with their partitioned table, never alone.
    pub lone_partitions: Vec<String>,
    /// The partitioned tables those partitions belong to, for the advice.
    pub partition_roots: Vec<String>,
}

/// Resolves the objects of `session`'s database.
pub(crate) async fn resolve_database(
    s: &Session,
    objects: &[&ObjectMapping],
) -> Result<Resolution, MigrationError> {
    // For a partition: the partitioned table it belongs to (`inhparent`) and the one
    // at the top of its tree (`pg_partition_root`), which is what a task migrates.
    let sql = format!(
        "SELECT n.nspname, c.relname, c.oid, c.relkind::text, c.relispartition, \
                greatest(c.reltuples, 0)::int8, pg_table_size(c.oid), pg_total_relation_size(c.oid), \
                pn.nspname, p.relname, rn.nspname, r.relname \
         FROM pg_namespace n LEFT JOIN pg_class c ON c.relnamespace = n.oid AND c.relkind IN ('r', 'p', 'v', 'm') \
         LEFT JOIN pg_inherits pi ON c.relispartition AND pi.inhrelid = c.oid \
         LEFT JOIN pg_class p ON p.oid = pi.inhparent \
         LEFT JOIN pg_namespace pn ON pn.oid = p.relnamespace \
         LEFT JOIN pg_class r ON c.relispartition AND r.oid = pg_partition_root(c.oid) \
         LEFT JOIN pg_namespace rn ON rn.oid = r.relnamespace \
         WHERE {SKIPPED_SCHEMAS} \
         ORDER BY n.nspname, c.relname"
    );
    let rows = s.query("listing tables", &sql, &[]).await?;
    let by_path: HashMap<Vec<&str>, &ObjectMapping> = objects
        .iter()
        .map(|o| (o.source.iter().map(String::as_str).collect(), *o))
        .collect();
    let mut schemas = HashSet::new();
    let mut tables = HashSet::new();
    let mut out = Resolution::default();
    for r in &rows {
        let schema: &str = r.get(0);
        schemas.insert(schema.to_string());
        let Some(table) = r.get::<_, Option<&str>>(1) else {
            continue;
        };
        tables.insert((schema.to_string(), table.to_string()));
        // A view named alone is found here and migrated with the objects
        // (crate::migration::objects).
        if matches!(r.get::<_, &str>(3), "v" | "m") {
            continue;
        }
        let path = [s.database.as_str(), schema, table];
        let Some(target) = map_path(&path, &by_path) else {
            continue;
        };
        let source = QualifiedTable {
            database: s.database.clone(),
            schema: schema.to_string(),
            table: table.to_string(),
        };
        let kind: &str = r.get(3);
        if r.get::<_, bool>(4) {
            let name = |schema: usize, table: usize| QualifiedTable {
                database: s.database.clone(),
                schema: r.get::<_, Option<String>>(schema).unwrap_or_default(),
                table: r.get::<_, Option<String>>(table).unwrap_or_default(),
            };
            let (parent, root) = (name(8, 9), name(10, 11));
            let root_path = [s.database.as_str(), &root.schema, &root.table];
            if by_path.contains_key(&path[..]) {
                let of = if parent == root {
                    format!("the partitioned table {root}")
                } else {
                    format!("{parent}, in the tree of the partitioned table {root}")
                };
                out.lone_partitions
                    .push(format!("{source} is a partition of {of}"));
                if !out.partition_roots.contains(&root.to_string()) {
                    out.partition_roots.push(root.to_string());
                }
            } else if map_path(&root_path, &by_path).is_none() {
                out.unsupported.push((
                    source.to_string(),
                    "partitions of a partitioned table the task does not select (a partition is migrated with its partitioned table, never alone)".into(),
                ));
            }
            continue;
        }
        out.tables.push(SourceTable {
            mapping: TableMapping {
                key: TableKey::of(&source),
                source,
                target,
            },
            oid: r.get(2),
            estimated_rows: r.get::<_, i64>(5).max(0) as u64,
            table_bytes: r.get::<_, i64>(6).max(0) as u64,
            total_bytes: r.get::<_, i64>(7).max(0) as u64,
            partitions: Vec::new(),
            partitioned: kind == "p",
        });
    }
    add_inheritance_children(s, &by_path, &mut out).await?;
    add_partitions(s, &by_path, &mut out).await?;
    for o in objects {
        let found = match o.source.as_slice() {
            [_] => true,
            [_, schema] => schemas.contains(schema),
            [_, schema, table] => tables.contains(&(schema.clone(), table.clone())),
            _ => false,
        };
        if !found {
            let what = ["database", "schema", "table"][o.source.len().clamp(1, 3) - 1];
            out.missing
                .push(format!("{what} {}", display_path(&o.source)));
        }
    }
    Ok(out)
}

/// Brings the inheritance children of every selected table (and theirs, down the
/// hierarchy) as tables of the task, as `pg_dump` dumps a parent with its children:
/// a child the task does not select by itself goes where its parent goes, renamed
/// like a partition when the parent is ([`partition::map_targets`]). The objects phase
/// then makes each child inherit from its parent again
/// ([`crate::migration::objects::load`]). A selected child whose parent the task does
/// not migrate stays a plain table: listed in `inheritance`.
async fn add_inheritance_children(
    s: &Session,
    by_path: &HashMap<Vec<&str>, &ObjectMapping>,
    out: &mut Resolution,
) -> Result<(), MigrationError> {
    let edges = s
        .query(
            "listing inheritance children",
            &format!(
                "SELECT i.inhrelid, i.inhparent, n.nspname, c.relname, \
                        greatest(c.reltuples, 0)::int8, pg_table_size(c.oid), pg_total_relation_size(c.oid), \
                        c.relkind = 'f' \
                 FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 JOIN pg_class p ON p.oid = i.inhparent \
                 WHERE c.relkind IN ('r', 'f') AND NOT c.relispartition AND p.relkind = 'r' \
                   AND c.relpersistence <> 't' AND {SKIPPED_SCHEMAS} \
                 ORDER BY i.inhrelid, i.inhseqno"
            ),
            &[],
        )
        .await?;
    let mut index: HashMap<u32, usize> = out
        .tables
        .iter()
        .enumerate()
        .map(|(i, t)| (t.oid, i))
        .collect();
    // Down the hierarchy: a grandchild's edge may come before its parent's.
    loop {
        let mut added = false;
        for r in &edges {
            let (child, parent): (u32, u32) = (r.get(0), r.get(1));
            let Some(&pi) = index.get(&parent) else {
                continue;
            };
            if index.contains_key(&child) {
                continue;
            }
            let source = QualifiedTable {
                database: s.database.clone(),
                schema: r.get(2),
                table: r.get(3),
            };
            if r.get::<_, bool>(7) {
                let name = source.to_string();
                if !out.unsupported.iter().any(|(t, _)| *t == name) {
                    out.unsupported.push((
                        name,
                        "foreign tables that inherit from a selected table (Lifeboat cannot write their rows; the parent comes without them)".into(),
                    ));
                }
                continue;
            }
            let p = &out.tables[pi].mapping;
            let mapped =
                |q: &QualifiedTable| map_path(&[q.database.as_str(), &q.schema, &q.table], by_path);
            let (target, _) = partition::member_target(&source, &p.source, &p.target, mapped);
            index.insert(child, out.tables.len());
            out.tables.push(SourceTable {
                mapping: TableMapping {
                    key: TableKey::of(&source),
                    source,
                    target,
                },
                oid: child,
                estimated_rows: r.get::<_, i64>(4).max(0) as u64,
                table_bytes: r.get::<_, i64>(5).max(0) as u64,
                total_bytes: r.get::<_, i64>(6).max(0) as u64,
                partitions: Vec::new(),
                partitioned: false,
            });
            added = true;
        }
        if !added {
            break;
        }
    }
    for r in &edges {
        let (child, parent): (u32, u32) = (r.get(0), r.get(1));
        if let Some(&ci) = index.get(&child)
            && !index.contains_key(&parent)
        {
            let name = out.tables[ci].mapping.source.to_string();
            if !out.inheritance.contains(&name) {
                out.inheritance.push(name);
            }
        }
    }
    Ok(())
}

/// Reads the tree of every selected partitioned table, maps its partitions and sums
/// the leaves' sizes; a tree that cannot be migrated moves to `unsupported`.
async fn add_partitions(
    s: &Session,
    by_path: &HashMap<Vec<&str>, &ObjectMapping>,
    out: &mut Resolution,
) -> Result<(), MigrationError> {
    let roots: Vec<u32> = out
        .tables
        .iter()
        .filter(|t| t.partitioned)
        .map(|t| t.oid)
        .collect();
    let mut trees = partition::trees(s, &roots).await?;
    let mut kept = Vec::new();
    for mut t in std::mem::take(&mut out.tables) {
        if t.partitioned {
            t.partitions = trees.remove(&t.oid).unwrap_or_default();
            if let Some(why) = partition::unsupported(&t.partitions) {
                out.unsupported.push((t.mapping.source.to_string(), why));
                continue;
            }
            let mapped =
                |p: &QualifiedTable| map_path(&[p.database.as_str(), &p.schema, &p.table], by_path);
            partition::map_targets(
                &mut t.partitions,
                &t.mapping.source,
                &t.mapping.target,
                mapped,
            );
            let leaves = t.partitions.iter().filter(|p| p.is_leaf());
            (t.estimated_rows, t.table_bytes, t.total_bytes) =
                leaves.fold((0, 0, t.total_bytes), |(rows, bytes, total), p| {
                    (
                        rows + p.estimated_rows,
                        bytes + p.table_bytes,
                        total + p.total_bytes,
                    )
                });
        }
        kept.push(t);
    }
    out.tables = kept;
    Ok(())
}

/// The target path of a source table, or `None` when no object selects it.
pub(crate) fn map_path(
    path: &[&str; 3],
    objects: &HashMap<Vec<&str>, &ObjectMapping>,
) -> Option<QualifiedTable> {
    let mut target: Vec<String> = path.iter().map(|s| s.to_string()).collect();
    let mut selected = false;
    for level in 1..=3 {
        let Some(object) = objects.get(&path[..level].to_vec()) else {
            continue;
        };
        selected = true;
        if let Some(names) = &object.target {
            let start = level - names.len();
            target[start..level].clone_from_slice(names);
        }
    }
    let [database, schema, table] = <[String; 3]>::try_from(target).ok()?;
    selected.then_some(QualifiedTable {
        database,
        schema,
        table,
    })
}

/// Problems with the objects themselves, found before any catalog is read: the same
/// source named twice, or a name PostgreSQL cannot hold (possible when a spec comes
/// from JSON rather than [`ObjectMapping::parse`]).
pub(crate) fn object_problems(objects: &[ObjectMapping]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut seen = HashSet::new();
    for o in objects {
        if o.source.is_empty() || o.source.len() > 3 {
            problems.push(format!(
                "object {o} must be db, db.schema or db.schema.table"
            ));
            continue;
        }
        if !seen.insert(&o.source) {
            problems.push(format!("{} is selected twice", display_path(&o.source)));
        }
        if let Some(t) = &o.target
            && (t.is_empty() || t.len() > o.source.len())
        {
            problems.push(format!("object {o}: the new name has too many parts"));
        }
        for part in o.source.iter().chain(o.target.iter().flatten()) {
            if let Some(p) = identifier_problem(part) {
                problems.push(format!("object {o}: {p}"));
            }
        }
    }
    problems
}

/// Two source tables mapped to one target table, each as one message naming both.
pub(crate) fn target_collisions(tables: &[&TableMapping]) -> Vec<String> {
    let mut first: HashMap<&QualifiedTable, &QualifiedTable> = HashMap::new();
    let mut problems = Vec::new();
    for t in tables {
        if let Some(other) = first.insert(&t.target, &t.source) {
            problems.push(format!(
                "{other} and {} are both mapped to {}",
                t.source, t.target
            ));
        }
    }
    problems
}

/// The partitions of `tables` that keep their names, as mappings, so that collisions
/// with other tables of the task are found like any other.
pub(crate) fn kept_partition_mappings(tables: &[&SourceTable]) -> Vec<TableMapping> {
    tables
        .iter()
        .flat_map(|t| t.partitions.iter().filter(|p| !p.derived))
        .map(|p| TableMapping {
            key: TableKey::of(&p.source),
            source: p.source.clone(),
            target: p.target.clone(),
        })
        .collect()
}

/// The target names the task maps tables and kept-name partitions to: derived
/// partition names avoid them.
pub(crate) fn reserved_names(tables: &[&SourceTable]) -> HashSet<QualifiedTable> {
    tables
        .iter()
        .flat_map(|t| {
            std::iter::once(&t.mapping.target).chain(
                t.partitions
                    .iter()
                    .filter(|p| !p.derived)
                    .map(|p| &p.target),
            )
        })
        .cloned()
        .collect()
}

/// The databases of `objects`, in the order they first appear.
pub(crate) fn source_databases(objects: &[ObjectMapping]) -> Vec<String> {
    let mut seen = HashSet::new();
    objects
        .iter()
        .filter(|o| !o.source.is_empty())
        .map(|o| o.source[0].clone())
        .filter(|d| seen.insert(d.clone()))
        .collect()
}

/// Resolves every database of the task, connecting to each with `connect`. A database
/// that cannot be reached is returned apart with its error.
pub(crate) async fn resolve_all(
    source: &tokio_postgres::Config,
    objects: &[ObjectMapping],
) -> (Resolution, Vec<MigrationError>) {
    let mut all = Resolution::default();
    let mut errors = Vec::new();
    for db in source_databases(objects) {
        let in_db: Vec<&ObjectMapping> = objects
            .iter()
            .filter(|o| o.source.first() == Some(&db))
            .collect();
        let resolved = match crate::migration::conn::connect(
            source,
            crate::migration::Side::Source,
            &db,
        )
        .await
        {
            Ok(s) => resolve_database(&s, &in_db).await,
            Err(e) => Err(e),
        };
        match resolved {
            Ok(r) => {
                all.tables.extend(r.tables);
                all.missing.extend(r.missing);
                all.unsupported.extend(r.unsupported);
                all.inheritance.extend(r.inheritance);
                all.lone_partitions.extend(r.lone_partitions);
                all.partition_roots.extend(r.partition_roots);
            }
            Err(e) => errors.push(e),
        }
    }
    (all, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn objects(list: &[&str]) -> Vec<ObjectMapping> {
        list.iter()
            .map(|o| ObjectMapping::parse(o).unwrap())
            .collect()
    }

    fn map(list: &[&str], path: [&str; 3]) -> Option<String> {
        let objects = objects(list);
        let by_path = objects
            .iter()
            .map(|o| (o.source.iter().map(String::as_str).collect(), o))
            .collect();
        map_path(&path, &by_path).map(|t| t.to_string())
    }

    #[test]
    fn the_most_specific_object_wins() {
        let list = ["shop=shop2", "shop.public.orders=orders_old"];
        assert_eq!(
            map(&list, ["shop", "public", "orders"]).as_deref(),
            Some("shop2.public.orders_old")
        );
        assert_eq!(
            map(&list, ["shop", "public", "items"]).as_deref(),
            Some("shop2.public.items")
        );
        let list = ["shop.sales=archive", "shop.sales.orders=old.o"];
        assert_eq!(
            map(&list, ["shop", "sales", "orders"]).as_deref(),
            Some("shop.old.o")
        );
        assert_eq!(
            map(&list, ["shop", "sales", "x"]).as_deref(),
            Some("shop.archive.x")
        );
        assert_eq!(map(&list, ["shop", "public", "x"]), None);
    }

    #[test]
    fn collisions_and_duplicates_are_named() {
        let problems = object_problems(&objects(&["a.s.t", "a.s.t=u"]));
        assert_eq!(problems, vec!["a.s.t is selected twice"]);
        let t = |s: &str, d: &str| TableMapping {
            key: TableKey(s.into()),
            source: QualifiedTable {
                database: "a".into(),
                schema: "s".into(),
                table: s.into(),
            },
            target: QualifiedTable {
                database: "a".into(),
                schema: "s".into(),
                table: d.into(),
            },
        };
        let (x, y) = (t("x", "z"), t("y", "z"));
        assert_eq!(
            target_collisions(&[&x, &y]),
            vec!["a.s.x and a.s.y are both mapped to a.s.z"]
        );
    }
}
