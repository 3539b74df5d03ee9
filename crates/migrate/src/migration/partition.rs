//! Partitioned tables: one selectable object that brings its whole tree (every
//! partition, at every level, the default partitions included), migrated as one table:
//! one journal entry, one target transaction, one source snapshot.
//!
//! The tree is read with `pg_partition_tree`, each partition's bound with
//! `pg_get_expr(relpartbound)` and each partition key with `pg_get_partkeydef`, so the
//! target gets PostgreSQL's own text back. In the target the tree is built top down
//! (`CREATE TABLE ... PARTITION OF ... FOR VALUES ...`), the rows are copied leaf by
//! leaf, and then the keys, constraints and indexes are created on the partitioned
//! table, from where PostgreSQL propagates them to every partition. What a partition
//! has of its own (an index or check constraint created on it alone, a comment) is
//! added after.
//!
//! # Names
//! Without a rename, partitions keep their names (and their schema, unless a schema
//! object maps it). When the partitioned table is renamed, its partitions take names
//! derived from the new one ([`renamed_partition`]: `m_2024` of `m` becomes
//! `m_old_2024`) in the table's target schema, made free with [`choose_free`], so a
//! tree restored next to its original never meets the original's partitions.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};

use crate::migration::MigrationError;
use crate::migration::catalog::TableDef;
use crate::migration::conn::Session;
use crate::migration::ddl::{self, Names};
use crate::migration::mapping::{QualifiedTable, Resolution};
use crate::migration::names::{choose_free, qualified, renamed_partition};
use crate::migration::target::relation_names;

/// One partition of a selected partitioned table.
#[derive(Debug, Clone)]
pub(crate) struct SourcePartition {
    pub oid: u32,
    pub source: QualifiedTable,
    /// Where it goes; when `derived`, `target.table` is the name wished for, and
    /// [`choose_names`] picks the free one the run uses.
    pub target: QualifiedTable,
    /// True when the name follows the partitioned table's new name; false when the
    /// partition keeps its own.
    pub derived: bool,
    /// Index (in the tree's list) of the partition it belongs to; `None` for a
    /// partition of the partitioned table itself.
    pub parent: Option<usize>,
    /// `FOR VALUES ...` or `DEFAULT`, as `pg_get_expr(relpartbound)` prints it.
    pub bound: String,
    /// `pg_get_partkeydef` of a partition that is partitioned itself; `None` for a leaf.
    pub partition_key: Option<String>,
    /// `pg_class.relkind`: `r` for a leaf, `p` for a sub-partitioned one, `f` for a
    /// foreign table (which a migration cannot write to).
    pub relkind: char,
    /// The planner's row estimate (leaves only; 0 otherwise or when never analyzed).
    pub estimated_rows: u64,
    /// Heap and TOAST (leaves hold all of it).
    pub table_bytes: u64,
    /// With indexes.
    pub total_bytes: u64,
}

impl SourcePartition {
    /// True for a partition that holds rows itself.
    pub fn is_leaf(&self) -> bool {
        self.partition_key.is_none()
    }
}

/// The partitions of each partitioned table `roots` (of the session's database),
/// every level, each after the partition it belongs to. Targets are left as the
/// sources: [`map_targets`] sets them.
pub(crate) async fn trees(
    s: &Session,
    roots: &[u32],
) -> Result<HashMap<u32, Vec<SourcePartition>>, MigrationError> {
    let mut out: HashMap<u32, Vec<SourcePartition>> = HashMap::new();
    if roots.is_empty() {
        return Ok(out);
    }
    let rows = s
        .query(
            "listing partitions",
            "SELECT r.root, t.relid::oid, t.parentrelid::oid, n.nspname, c.relname, c.relkind::text, \
                    pg_get_expr(c.relpartbound, c.oid), pg_get_partkeydef(c.oid), \
                    CASE WHEN t.isleaf THEN greatest(c.reltuples, 0) ELSE 0 END::int8, \
                    pg_table_size(c.oid), pg_total_relation_size(c.oid) \
             FROM unnest($1::oid[]) AS r(root) \
             CROSS JOIN LATERAL pg_partition_tree(r.root) t \
             JOIN pg_class c ON c.oid = t.relid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE t.level > 0 \
             ORDER BY r.root, t.level, n.nspname, c.relname",
            &[&roots],
        )
        .await?;
    let mut index: HashMap<u32, usize> = HashMap::new();
    for r in rows {
        let root: u32 = r.get(0);
        let oid: u32 = r.get(1);
        let parent_oid: Option<u32> = r.get(2);
        let kind: String = r.get(5);
        let tree = out.entry(root).or_default();
        let parent = parent_oid
            .filter(|p| *p != root)
            .and_then(|p| index.get(&p).copied());
        let source = QualifiedTable {
            database: s.database.clone(),
            schema: r.get(3),
            table: r.get(4),
        };
        index.insert(oid, tree.len());
        tree.push(SourcePartition {
            oid,
            target: source.clone(),
            source,
            derived: false,
            parent,
            bound: r.get::<_, Option<String>>(6).unwrap_or_default(),
            partition_key: r.get(7),
            relkind: kind.chars().next().unwrap_or('?'),
            estimated_rows: r.get::<_, i64>(8).max(0) as u64,
            table_bytes: r.get::<_, i64>(9).max(0) as u64,
            total_bytes: r.get::<_, i64>(10).max(0) as u64,
        });
    }
    Ok(out)
}

/// Sets where each partition of the table `source` (mapped to `target`) goes. A
/// renamed table's partitions follow its new name in its target schema; otherwise
/// each keeps its name, in the schema its own path maps to (`mapped`, for a schema
/// object), else in the table's target schema when it shares the table's source
/// schema, else in its own.
pub(crate) fn map_targets(
    parts: &mut [SourcePartition],
    source: &QualifiedTable,
    target: &QualifiedTable,
    mapped: impl Fn(&QualifiedTable) -> Option<QualifiedTable>,
) {
    for p in parts {
        (p.target, p.derived) = member_target(&p.source, source, target, &mapped);
    }
}

/// Where a member of `source`'s tree (a partition, or an inheritance child the task
/// brings with its parent) goes when `source` goes to `target`, and whether its name
/// is derived from the new table name (see [`map_targets`]).
pub(crate) fn member_target(
    member: &QualifiedTable,
    source: &QualifiedTable,
    target: &QualifiedTable,
    mapped: impl Fn(&QualifiedTable) -> Option<QualifiedTable>,
) -> (QualifiedTable, bool) {
    if source.table != target.table {
        let table = renamed_partition(&member.table, &source.table, &target.table);
        return (
            QualifiedTable {
                database: target.database.clone(),
                schema: target.schema.clone(),
                table,
            },
            true,
        );
    }
    let schema = match mapped(member) {
        Some(m) => m.schema,
        None if member.schema == source.schema => target.schema.clone(),
        None => member.schema.clone(),
    };
    (
        QualifiedTable {
            database: target.database.clone(),
            schema,
            table: member.table.clone(),
        },
        false,
    )
}

/// The names the partitions get in the target: kept names as they are, derived ones
/// made free against `taken` (the relations of the table's target schema and every
/// other name the task maps there), which receives all of them.
pub(crate) fn choose_names(
    parts: &[SourcePartition],
    taken: &mut HashSet<String>,
) -> Vec<QualifiedTable> {
    parts
        .iter()
        .map(|p| {
            let table = if p.derived {
                choose_free(&p.target.table, taken)
            } else {
                taken.insert(p.target.table.clone());
                p.target.table.clone()
            };
            QualifiedTable {
                table,
                ..p.target.clone()
            }
        })
        .collect()
}

/// `CREATE TABLE ... PARTITION OF ...` for every partition, each after the one it
/// belongs to; `root` is the partitioned table's target, `names` from
/// [`choose_names`].
pub(crate) fn create_partitions(
    parts: &[SourcePartition],
    names: &[QualifiedTable],
    root: (&str, &str),
) -> Vec<String> {
    parts
        .iter()
        .zip(names)
        .map(|(p, name)| {
            let parent = match p.parent.and_then(|i| names.get(i)) {
                Some(n) => qualified(&n.schema, &n.table),
                None => qualified(root.0, root.1),
            };
            let mut sql = format!(
                "CREATE TABLE {} PARTITION OF {parent} {}",
                qualified(&name.schema, &name.table),
                p.bound
            );
            if let Some(key) = &p.partition_key {
                sql.push_str(&format!(" PARTITION BY {key}"));
            }
            sql
        })
        .collect()
}

/// What each partition has of its own (constraints and indexes created on it alone,
/// comments), after the partitioned table's keys, constraints and indexes reached it.
/// Their names follow the partition's new name and avoid what the target holds now,
/// the names PostgreSQL gave the propagated indexes included.
pub(crate) async fn finish_partitions(
    tgt: &Session,
    parts: &[SourcePartition],
    names: &[QualifiedTable],
    defs: &HashMap<u32, TableDef>,
) -> Result<(), MigrationError> {
    let mut taken: HashMap<&str, HashSet<String>> = HashMap::new();
    for (p, name) in parts.iter().zip(names) {
        let Some(def) = defs.get(&p.oid) else {
            continue;
        };
        if def.constraints.is_empty() && def.indexes.is_empty() && !has_comments(def) {
            continue;
        }
        let in_schema = match taken.entry(&name.schema) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => e.insert(relation_names(tgt, &name.schema).await?),
        };
        // Only constraints, indexes and comments: the columns, their sequences and
        // the rest came with the partitioned table.
        let own = TableDef {
            constraints: def.constraints.clone(),
            indexes: def.indexes.clone(),
            comment: def.comment.clone(),
            columns: def.columns.clone(),
            ..TableDef::default()
        };
        let derived = Names::derive(&own, &p.source.table, &name.table, in_schema);
        for sql in ddl::finish_table(&own, &name.schema, &derived) {
            tgt.execute("building a partition's own constraints and indexes", &sql)
                .await?;
        }
    }
    Ok(())
}

fn has_comments(def: &TableDef) -> bool {
    def.comment.is_some() || def.columns.iter().any(|c| c.comment.is_some())
}

/// Why a tree cannot be migrated, if it cannot: a foreign table among its partitions
/// cannot receive rows.
pub(crate) fn unsupported(parts: &[SourcePartition]) -> Option<String> {
    let foreign: Vec<String> = parts
        .iter()
        .filter(|p| p.relkind == 'f')
        .map(|p| p.source.to_string())
        .collect();
    (!foreign.is_empty()).then(|| {
        format!(
            "partitioned tables with foreign tables as partitions ({}) cannot be migrated",
            foreign.join(", ")
        )
    })
}

/// The error of a run (or a resolve) whose objects name partitions alone.
pub(crate) fn lone_error(r: &Resolution) -> Option<MigrationError> {
    if r.lone_partitions.is_empty() {
        return None;
    }
    Some(MigrationError::Mapping(format!(
        "{}: a partition is migrated with its partitioned table, never alone; {}",
        r.lone_partitions.join("; "),
        lone_advice(r)
    )))
}

/// "migrate the partitioned table X instead (it brings every partition)".
pub(crate) fn lone_advice(r: &Resolution) -> String {
    let (what, it) = if r.partition_roots.len() == 1 {
        ("table", "it brings")
    } else {
        ("tables", "each brings")
    };
    format!(
        "migrate the partitioned {what} {} instead ({it} every partition), optionally under a new name",
        r.partition_roots.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(schema: &str, name: &str) -> QualifiedTable {
        QualifiedTable {
            database: "shop".into(),
            schema: schema.into(),
            table: name.into(),
        }
    }

    fn part(name: &str, parent: Option<usize>, key: Option<&str>) -> SourcePartition {
        SourcePartition {
            oid: 1,
            source: table("public", name),
            target: table("public", name),
            derived: false,
            parent,
            bound: "DEFAULT".into(),
            partition_key: key.map(str::to_string),
            relkind: if key.is_some() { 'p' } else { 'r' },
            estimated_rows: 0,
            table_bytes: 0,
            total_bytes: 0,
        }
    }

    #[test]
    fn renamed_trees_get_free_derived_names() {
        let mut parts = vec![
            part("m_2024", None, Some("LIST (region)")),
            part("eu", Some(0), None),
        ];
        let (source, target) = (table("public", "m"), table("public", "m_old"));
        map_targets(&mut parts, &source, &target, |_| None);
        let mut taken: HashSet<String> = ["m_old_2024".to_string(), "m_old".into()].into();
        let names = choose_names(&parts, &mut taken);
        assert_eq!(names[0].to_string(), "shop.public.m_old_20241");
        assert_eq!(names[1].to_string(), "shop.public.m_old_eu");
        let sql = create_partitions(&parts, &names, ("public", "m_old"));
        assert_eq!(
            sql[0],
            "CREATE TABLE \"public\".\"m_old_20241\" PARTITION OF \"public\".\"m_old\" DEFAULT PARTITION BY LIST (region)"
        );
        assert_eq!(
            sql[1],
            "CREATE TABLE \"public\".\"m_old_eu\" PARTITION OF \"public\".\"m_old_20241\" DEFAULT"
        );
        assert_eq!(parts.iter().filter(|p| p.is_leaf()).count(), 1);
    }

    #[test]
    fn kept_names_follow_the_schema_mapping() {
        let mut parts = vec![part("m_1", None, None), part("m_2", None, None)];
        parts[1].source.schema = "parts".into();
        let (source, target) = (table("public", "m"), table("archive", "m"));
        map_targets(&mut parts, &source, &target, |_| None);
        assert_eq!(parts[0].target.to_string(), "shop.archive.m_1");
        assert_eq!(parts[1].target.to_string(), "shop.parts.m_2");
        assert!(!parts[0].derived);
    }
}
