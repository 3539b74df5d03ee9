//! What the target already holds under a mapped name, and what the task will do to
//! each table given its migration types and conflict mode. The pre-check and the run
//! decide with the same function ([`decide`]), so the run never does something the
//! pre-check did not announce.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::migration::MigrationError;
use crate::migration::catalog::{self, ColumnDef, TableDef};
use crate::migration::conn::Session;
use crate::migration::mapping::SourceTable;
use crate::migration::spec::{ConflictMode, MigrationTypes};

/// A relation that exists in the target under a mapped name.
#[derive(Debug, Clone)]
pub(crate) struct TargetTable {
    pub oid: u32,
    /// `r` for an ordinary table, `p` for a partitioned one (rows sent to it go to
    /// their partitions); anything else (view, sequence...) cannot receive rows from
    /// the migration.
    pub relkind: char,
    pub columns: Vec<ColumnDef>,
    pub key: Vec<String>,
    pub is_owner: bool,
    pub can_select: bool,
    pub can_insert: bool,
    pub can_update: bool,
    pub can_delete: bool,
}

impl TargetTable {
    /// True for a table rows can be written to.
    pub fn holds_rows(&self) -> bool {
        matches!(self.relkind, 'r' | 'p')
    }
}

/// Names of every relation in `schema` of the target, as the session sees them now.
pub(crate) async fn relation_names(
    s: &Session,
    schema: &str,
) -> Result<HashSet<String>, MigrationError> {
    let rows = s
        .query(
            "listing the target schema",
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1",
            &[&schema],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Every relation of the target table `oid`: itself, then its partitions at every
/// level, the indexes of all of them, and the sequences they own, as (kind, schema,
/// name).
pub(crate) async fn tree_relations(
    tgt: &Session,
    oid: u32,
) -> Result<Vec<(&'static str, String, String)>, MigrationError> {
    let rows = tgt
        .query(
            "listing a table's partitions, indexes and sequences",
            "WITH tree AS (SELECT $1::oid AS relid, 0 AS level \
                           UNION SELECT relid, level FROM pg_partition_tree($1::oid::regclass)) \
             SELECT x.kind, n.nspname::text, c.relname::text FROM ( \
                 SELECT 0 AS ord, t.level, 't' AS kind, t.relid AS oid FROM tree t \
                 UNION SELECT 1, 0, 'i', i.indexrelid FROM pg_index i JOIN tree t ON t.relid = i.indrelid \
                 UNION SELECT 2, 0, 's', d.objid FROM pg_depend d JOIN tree t ON t.relid = d.refobjid \
                     WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass \
                       AND d.deptype IN ('a', 'i') \
                       AND EXISTS (SELECT 1 FROM pg_class q WHERE q.oid = d.objid AND q.relkind = 'S') \
             ) x JOIN pg_class c ON c.oid = x.oid JOIN pg_namespace n ON n.oid = c.relnamespace \
             ORDER BY x.ord, x.level, 3",
            &[&oid],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let kind = match r.get::<_, &str>(0) {
                "t" => "TABLE",
                "i" => "INDEX",
                _ => "SEQUENCE",
            };
            (kind, r.get(1), r.get(2))
        })
        .collect())
}

/// Looks up `(schema, table)` names in the session's database.
pub(crate) async fn inspect(
    s: &Session,
    names: &[(String, String)],
) -> Result<HashMap<(String, String), TargetTable>, MigrationError> {
    let schemas: Vec<&str> = names.iter().map(|n| n.0.as_str()).collect();
    let tables: Vec<&str> = names.iter().map(|n| n.1.as_str()).collect();
    let rows = s
        .query(
            "looking up target tables",
            "SELECT w.s, w.t, c.oid, c.relkind::text, pg_has_role(c.relowner, 'USAGE'), \
                    has_table_privilege(c.oid, 'SELECT'), has_table_privilege(c.oid, 'INSERT'), \
                    has_table_privilege(c.oid, 'UPDATE'), has_table_privilege(c.oid, 'DELETE') \
             FROM unnest($1::text[], $2::text[]) AS w(s, t) \
             JOIN pg_namespace n ON n.nspname = w.s \
             JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = w.t",
            &[&schemas, &tables],
        )
        .await?;
    let mut found = HashMap::new();
    for r in &rows {
        let kind: String = r.get(3);
        found.insert(
            (r.get::<_, String>(0), r.get::<_, String>(1)),
            TargetTable {
                oid: r.get(2),
                relkind: kind.chars().next().unwrap_or('?'),
                columns: Vec::new(),
                key: Vec::new(),
                is_owner: r.get(4),
                can_select: r.get(5),
                can_insert: r.get(6),
                can_update: r.get(7),
                can_delete: r.get(8),
            },
        );
    }
    let oids: Vec<u32> = found.values().map(|t| t.oid).collect();
    if oids.is_empty() {
        return Ok(found);
    }
    let mut columns: HashMap<u32, Vec<ColumnDef>> = HashMap::new();
    for (oid, c) in catalog::columns(s, &oids).await? {
        columns.entry(oid).or_default().push(c);
    }
    let mut keys = catalog::keys(s, &oids).await?;
    for t in found.values_mut() {
        t.columns = columns.remove(&t.oid).unwrap_or_default();
        t.key = keys.remove(&t.oid).unwrap_or_default();
    }
    Ok(found)
}

/// True when the table has at least one row (read without scanning it).
pub(crate) async fn has_rows(
    s: &Session,
    schema: &str,
    table: &str,
) -> Result<bool, MigrationError> {
    // The table's own rows (an inheritance parent's children have theirs); a
    // partitioned table's are its partitions'.
    let t = crate::migration::names::qualified(schema, table);
    let sql = format!(
        "SELECT CASE WHEN (SELECT relkind FROM pg_class WHERE oid = {lit}::regclass) = 'p' \
                THEN EXISTS (SELECT 1 FROM {t}) ELSE EXISTS (SELECT 1 FROM ONLY {t}) END",
        lit = crate::migration::names::quote_literal(&t)
    );
    Ok(
        s.query_one("checking whether the target table is empty", &sql, &[])
            .await?
            .get(0),
    )
}

/// Every reason the tables of one target database cannot be migrated as asked:
/// conflicts under the conflict mode, missing tables for `data` only, columns that do
/// not match for merges. Each names the target table.
pub(crate) async fn conflicts(
    s: &Session,
    tables: &[&SourceTable],
    defs: &HashMap<&crate::migration::TableKey, &TableDef>,
    types: MigrationTypes,
    conflict: ConflictMode,
) -> Result<Vec<String>, MigrationError> {
    let names: Vec<(String, String)> = tables
        .iter()
        .map(|t| {
            (
                t.mapping.target.schema.clone(),
                t.mapping.target.table.clone(),
            )
        })
        .collect();
    let existing = inspect(s, &names).await?;
    let mut problems = Vec::new();
    for (t, name) in tables.iter().zip(&names) {
        let e = existing.get(name);
        let has_rows = match e {
            Some(e) if e.holds_rows() && !types.schema && conflict == ConflictMode::Error => {
                has_rows(s, &name.0, &name.1).await?
            }
            _ => false,
        };
        let target = &t.mapping.target;
        match decide(types, conflict, e, || has_rows) {
            Err(reason) => problems.push(format!("{target} {reason}")),
            Ok(TableAction::Create) => problems.extend(partition_conflicts(s, t, None).await?),
            // The old tree's own names are moved aside first.
            Ok(TableAction::Replace) => {
                problems.extend(partition_conflicts(s, t, e.map(|e| e.oid)).await?)
            }
            Ok(action) => {
                if let (Some(e), Some(def)) = (e, defs.get(&t.mapping.key))
                    && matches!(
                        action,
                        TableAction::Append
                            | TableAction::SkipExisting
                            | TableAction::Overwrite
                            | TableAction::Repair
                    )
                {
                    problems.extend(
                        incompatibilities(def, e, action)
                            .into_iter()
                            .map(|p| format!("{target}: {p}")),
                    );
                }
            }
        }
    }
    Ok(problems)
}

/// The partitions of a partitioned table the task creates that keep their names and
/// find them taken in the target (derived names are chosen free instead).
pub(crate) async fn partition_conflicts(
    s: &Session,
    t: &SourceTable,
    replaced: Option<u32>,
) -> Result<Vec<String>, MigrationError> {
    let fixed: Vec<_> = t.partitions.iter().filter(|p| !p.derived).collect();
    if fixed.is_empty() {
        return Ok(Vec::new());
    }
    let schemas: Vec<&str> = fixed.iter().map(|p| p.target.schema.as_str()).collect();
    let tables: Vec<&str> = fixed.iter().map(|p| p.target.table.as_str()).collect();
    let rows = s
        .query(
            "looking up target partitions",
            "SELECT w.s, w.t FROM unnest($1::text[], $2::text[]) AS w(s, t) \
             JOIN pg_namespace n ON n.nspname = w.s \
             JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = w.t \
             WHERE $3::oid IS NULL OR (c.oid <> $3 AND c.oid NOT IN \
                 (SELECT relid FROM pg_partition_tree($3::oid::regclass)))",
            &[&schemas, &tables, &replaced],
        )
        .await?;
    let taken: HashSet<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    Ok(fixed
        .iter()
        .filter(|p| taken.contains(&(p.target.schema.clone(), p.target.table.clone())))
        .map(|p| {
            format!(
                "{} (where partition {} of {} goes, under its own name) already exists in the target",
                p.target, p.source, t.mapping.source
            )
        })
        .collect())
}

/// What the task does to one table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TableAction {
    /// The table did not exist: created (with its rows when `data` is migrated).
    Create,
    /// `data` only into an existing empty table: rows copied straight in.
    Append,
    /// Source rows whose key the target lacks were inserted; target rows kept.
    SkipExisting,
    /// Source rows replaced target rows with the same key (after saving them) and the
    /// rest were inserted.
    Overwrite,
    /// The table was swapped for a copy of the source's; the old one kept.
    Replace,
    /// Only the rows that differ from the source's were inserted, updated (saved
    /// first) or, when asked, deleted (saved first).
    Repair,
    /// `schema` only into an existing table under a merge mode: nothing to do.
    Unchanged,
}

impl TableAction {
    /// True when the migration built the table, so its foreign keys are added too.
    pub fn builds_table(self) -> bool {
        matches!(self, Self::Create | Self::Replace)
    }

    /// What happens to a table, for messages: "3 tables to {describe}".
    pub fn describe(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Append => "fill (they exist and are empty)",
            Self::SkipExisting => "merge, inserting the rows whose key they lack",
            Self::Overwrite => "merge, overwriting rows with the same key (saved first)",
            Self::Replace => "replace (the old tables are kept)",
            Self::Repair => "repair, changing only the rows that differ (saved first)",
            Self::Unchanged => "leave as they are (they exist; schema only)",
        }
    }
}

/// What the task will do to a table, or why it cannot (a conflict under `error`, a
/// missing table for `data` only, a view in the way...). `target_has_rows` is only
/// asked for under `error` with `data` only.
pub(crate) fn decide(
    types: MigrationTypes,
    conflict: ConflictMode,
    existing: Option<&TargetTable>,
    target_has_rows: impl FnOnce() -> bool,
) -> Result<TableAction, String> {
    let Some(t) = existing else {
        return if types.schema {
            Ok(TableAction::Create)
        } else {
            Err("does not exist in the target and only data is migrated".into())
        };
    };
    if !t.holds_rows() {
        let what = match t.relkind {
            'v' => "a view",
            'm' => "a materialized view",
            'S' => "a sequence",
            'f' => "a foreign table",
            'i' | 'I' => "an index",
            _ => "another kind of relation",
        };
        return Err(format!("exists in the target as {what}"));
    }
    match conflict {
        ConflictMode::Error if types.schema => Err("already exists in the target".into()),
        ConflictMode::Error if target_has_rows() => Err("already has rows in the target".into()),
        ConflictMode::Error => Ok(TableAction::Append),
        ConflictMode::SkipExisting | ConflictMode::Overwrite | ConflictMode::Repair
            if !types.data =>
        {
            Ok(TableAction::Unchanged)
        }
        ConflictMode::Repair => Ok(TableAction::Repair),
        ConflictMode::SkipExisting => Ok(TableAction::SkipExisting),
        ConflictMode::Overwrite => Ok(TableAction::Overwrite),
        ConflictMode::Replace => Ok(TableAction::Replace),
    }
}

/// Why the source rows cannot go into the existing target table as they are: a
/// column missing or of another type, a required target column the source lacks, a
/// merge without a key. Empty when they can.
pub(crate) fn incompatibilities(
    source: &TableDef,
    target: &TargetTable,
    action: TableAction,
) -> Vec<String> {
    let mut problems = Vec::new();
    let by_name: HashMap<&str, &ColumnDef> = target
        .columns
        .iter()
        .map(|c| (c.name.as_str(), c))
        .collect();
    for c in source.columns.iter().filter(|c| c.generated.is_none()) {
        match by_name.get(c.name.as_str()) {
            None => problems.push(format!("column {} is missing in the target", c.name)),
            Some(t) if t.generated.is_some() => {
                problems.push(format!("column {} is generated in the target", c.name))
            }
            Some(t) if t.type_sql != c.type_sql => problems.push(format!(
                "column {} is {} in the source and {} in the target",
                c.name, c.type_sql, t.type_sql
            )),
            Some(_) => {}
        }
    }
    for t in &target.columns {
        let in_source = source
            .columns
            .iter()
            .any(|c| c.name == t.name && c.generated.is_none());
        let fills_itself = t.default.is_some() || t.identity.is_some() || t.generated.is_some();
        if !in_source && t.not_null && !fills_itself {
            problems.push(format!(
                "target column {} is NOT NULL without a default and the source has no such column",
                t.name
            ));
        }
    }
    if action == TableAction::Repair {
        for c in target.columns.iter().filter(|c| {
            c.identity == Some('a') && !target.key.contains(&c.name) && c.generated.is_none()
        }) {
            problems.push(format!(
                "column {} is GENERATED ALWAYS AS IDENTITY and not part of the key: a repair cannot update it",
                c.name
            ));
        }
    }
    if matches!(
        action,
        TableAction::SkipExisting | TableAction::Overwrite | TableAction::Repair
    ) {
        if target.key.is_empty() {
            problems.push(
                "the target table has no primary key or unique NOT NULL key to match rows by"
                    .into(),
            );
        } else if let Some(k) = target
            .key
            .iter()
            .find(|k| !source.columns.iter().any(|c| &c.name == *k))
        {
            problems.push(format!(
                "key column {k} of the target is missing in the source"
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn existing(kind: char) -> TargetTable {
        TargetTable {
            oid: 1,
            relkind: kind,
            columns: vec![],
            key: vec![],
            is_owner: true,
            can_select: true,
            can_insert: true,
            can_update: true,
            can_delete: true,
        }
    }

    #[test]
    fn actions_follow_types_and_modes() {
        let both = MigrationTypes::default();
        let data = MigrationTypes {
            schema: false,
            data: true,
        };
        let t = existing('r');
        assert_eq!(
            decide(both, ConflictMode::Error, None, || false),
            Ok(TableAction::Create)
        );
        assert!(decide(data, ConflictMode::Error, None, || false).is_err());
        assert!(decide(both, ConflictMode::Error, Some(&t), || false).is_err());
        assert_eq!(
            decide(data, ConflictMode::Error, Some(&t), || false),
            Ok(TableAction::Append)
        );
        assert!(decide(data, ConflictMode::Error, Some(&t), || true).is_err());
        assert_eq!(
            decide(both, ConflictMode::SkipExisting, Some(&t), || true),
            Ok(TableAction::SkipExisting)
        );
        assert_eq!(
            decide(
                MigrationTypes {
                    schema: true,
                    data: false
                },
                ConflictMode::Overwrite,
                Some(&t),
                || true
            ),
            Ok(TableAction::Unchanged)
        );
        assert!(decide(both, ConflictMode::Replace, Some(&existing('v')), || true).is_err());
        let p = existing('p');
        assert_eq!(
            decide(both, ConflictMode::SkipExisting, Some(&p), || true),
            Ok(TableAction::SkipExisting)
        );
        assert!(decide(both, ConflictMode::Error, Some(&p), || false).is_err());
        assert_eq!(
            decide(both, ConflictMode::Replace, Some(&p), || true),
            Ok(TableAction::Replace)
        );
    }
}
