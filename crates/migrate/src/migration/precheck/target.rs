//! The target side of the pre-check: what exists under each mapped name and what the
//! task will do to it, then conflicts, privileges, keys, columns, types, foreign keys
//! and dependents of replaced tables.

use std::collections::{HashMap, HashSet};

use crate::migration::catalog::TableDef;
use crate::migration::conn::{Session, connect};
use crate::migration::mapping::{QualifiedTable, SourceTable};
use crate::migration::names::display_ident;
use crate::migration::partition;
use crate::migration::precheck::item::MAX_LISTED;
use crate::migration::precheck::{PrecheckItem, SourceFacts};
use crate::migration::target::{self, TableAction, TargetTable};
use crate::migration::{ConflictMode, MigrationError, MigrationTask, Side};

/// What the task will need, for the capacity checks, and what it will do to
/// partitioned tables, for the partitions item.
pub(crate) struct Needs {
    /// Estimated bytes the target must find on disk.
    pub disk_bytes: u64,
    /// Bytes the copy moves.
    pub copy_bytes: u64,
    /// One line per partitioned table: its partitions and the names they get.
    pub partitions: Vec<String>,
}

/// Findings across all target databases, turned into items at the end.
#[derive(Default)]
struct Findings {
    conflicts: Vec<String>,
    privileges: Vec<String>,
    keys_missing: Vec<String>,
    keys_for_verify: Vec<String>,
    columns: Vec<String>,
    types: Vec<String>,
    /// Types the task will create (`schema.name`).
    types_created: Vec<String>,
    fks: Vec<String>,
    dependents: Vec<String>,
    actions: HashMap<TableAction, usize>,
    /// See [`Needs::partitions`].
    partitions: Vec<String>,
    /// See [`crate::migration::mapping::reserved_names`].
    reserved: HashSet<QualifiedTable>,
}

pub(crate) async fn check(
    task: &MigrationTask,
    source: &SourceFacts,
    admin: &Session,
    items: &mut Vec<PrecheckItem>,
) -> Needs {
    let spec = &task.spec;
    let account = task.target.get_user().unwrap_or("(no account)").to_string();
    let all: Vec<&SourceTable> = source.tables.iter().collect();
    let mut f = Findings {
        reserved: crate::migration::mapping::reserved_names(&all),
        ..Findings::default()
    };
    let mut needs = Needs {
        disk_bytes: 0,
        copy_bytes: 0,
        partitions: Vec::new(),
    };
    let mut repairs: Vec<&SourceTable> = Vec::new();
    let mut databases: Vec<&str> = Vec::new();
    for t in &source.tables {
        if !databases.contains(&t.mapping.target.database.as_str()) {
            databases.push(&t.mapping.target.database);
        }
    }
    // Databases that receive only views or functions are checked the same way.
    for o in source.objects.values().flat_map(|p| &p.objects) {
        if !databases.contains(&o.target_db.as_str()) {
            databases.push(&o.target_db);
        }
    }
    for db in databases {
        let tables: Vec<&SourceTable> = source
            .tables
            .iter()
            .filter(|t| t.mapping.target.database == db)
            .collect();
        let actions = match connect(&task.target, Side::Target, db).await {
            Ok(s) => match database(task, &s, &tables, source, &mut f).await {
                Ok(a) if task.spec.types.schema => {
                    for t in needed_types(source, &tables) {
                        match crate::migration::types::exists(&s, &t).await {
                            Ok(true) => {}
                            Ok(false) => type_needed(&t, db, &mut f),
                            Err(e) => f.privileges.push(e.to_string()),
                        }
                    }
                    a
                }
                Ok(a) => a,
                Err(e) => {
                    f.privileges
                        .push(format!("database {}: {e}", display_ident(db)));
                    continue;
                }
            },
            Err(e) if e.code() == Some("3D000") => {
                missing_database(task, admin, db, &account, &mut f).await;
                // A new database has none of the types: each is created, or named.
                for t in needed_types(source, &tables) {
                    type_needed(&t, db, &mut f);
                }
                for t in tables.iter().filter(|t| t.partitioned) {
                    let taken = reserved_in(&f.reserved, t);
                    f.partitions.push(tree_names(t, taken));
                }
                tables.iter().map(|t| (*t, TableAction::Create)).collect()
            }
            Err(e) => {
                f.privileges.push(e.to_string());
                continue;
            }
        };
        for (t, action) in actions {
            *f.actions.entry(action).or_default() += 1;
            if action == TableAction::Repair {
                repairs.push(t);
            }
            needs.copy_bytes += if spec.types.data { t.table_bytes } else { 0 };
            needs.disk_bytes += disk_need(action, t, spec.types.data);
            if let Some(def) = source.defs.get(&t.mapping.key) {
                if action.builds_table() {
                    left_out_foreign_keys(t, def, &source.tables, &mut f.fks);
                }
                if spec.verify
                    && spec.types.data
                    && def.key.is_empty()
                    && action != TableAction::Unchanged
                {
                    f.keys_for_verify.push(format!(
                        "{} has no primary key or unique NOT NULL key",
                        t.mapping.source
                    ));
                }
            }
        }
    }
    needs.partitions = std::mem::take(&mut f.partitions);
    push_items(task, &account, f, items);
    if !repairs.is_empty() {
        items.push(crate::migration::repair::preview(task, &repairs).await);
    }
    needs
}

/// The names the task maps other tables to in `t`'s target schema.
fn reserved_in(reserved: &HashSet<QualifiedTable>, t: &SourceTable) -> HashSet<String> {
    let target = &t.mapping.target;
    reserved
        .iter()
        .filter(|r| r.database == target.database && r.schema == target.schema)
        .map(|r| r.table.clone())
        .collect()
}

/// The tree of a partitioned table the task creates, with the names its partitions
/// get (chosen as the run chooses them, against `taken`).
fn tree_names(t: &SourceTable, mut taken: HashSet<String>) -> String {
    let names = partition::choose_names(&t.partitions, &mut taken);
    let parts = &t.partitions;
    let leaves = parts.iter().filter(|p| p.is_leaf()).count();
    let mut listed: Vec<String> = parts
        .iter()
        .zip(&names)
        .take(MAX_LISTED)
        .map(|(p, n)| {
            if p.source.schema == n.schema && p.source.table == n.table {
                n.table.clone()
            } else {
                format!("{}={n}", p.source.table)
            }
        })
        .collect();
    if parts.len() > MAX_LISTED {
        listed.push(format!("and {} more", parts.len() - MAX_LISTED));
    }
    format!(
        "{} brings {} partitions ({leaves} holding rows): {}",
        t.mapping.label(),
        parts.len(),
        listed.join(", ")
    )
}

/// Bytes the target may need for one table (worst case for merges: every row new).
fn disk_need(action: TableAction, t: &SourceTable, data: bool) -> u64 {
    if !data {
        return 0;
    }
    match action {
        TableAction::Create | TableAction::Append | TableAction::Replace => t.total_bytes,
        // The staging table, then the rows in the table and its indexes.
        TableAction::SkipExisting => t.table_bytes + t.total_bytes,
        // Staging, new row versions, and the saved rows.
        TableAction::Overwrite => 2 * t.table_bytes + t.total_bytes,
        // At worst every row differs: staging, new row versions, the saved rows.
        TableAction::Repair => 2 * t.table_bytes + t.total_bytes,
        TableAction::Unchanged => 0,
    }
}

/// A target database that does not exist yet.
async fn missing_database(
    task: &MigrationTask,
    admin: &Session,
    db: &str,
    account: &str,
    f: &mut Findings,
) {
    if !task.spec.types.schema {
        f.conflicts.push(format!(
            "database {} does not exist in the target and only data is migrated",
            display_ident(db)
        ));
        return;
    }
    let can_create = admin
        .query_one(
            "checking CREATEDB",
            "SELECT rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user",
            &[],
        )
        .await
        .map(|r| r.get::<_, bool>(0))
        .unwrap_or(false);
    if !can_create {
        f.privileges.push(format!(
            "database {} does not exist in the target and {account} may not create databases",
            display_ident(db)
        ));
    }
}

/// Checks the tables mapped into one existing target database; returns each table's
/// action (tables that cannot be migrated are reported and left out).
async fn database<'a>(
    task: &MigrationTask,
    s: &Session,
    tables: &[&'a SourceTable],
    source: &SourceFacts,
    f: &mut Findings,
) -> Result<Vec<(&'a SourceTable, TableAction)>, MigrationError> {
    let spec = &task.spec;
    let names: Vec<(String, String)> = tables
        .iter()
        .map(|t| {
            (
                t.mapping.target.schema.clone(),
                t.mapping.target.table.clone(),
            )
        })
        .collect();
    let existing = target::inspect(s, &names).await?;
    let db_rights = s
        .query_one(
            "checking database privileges",
            "SELECT has_database_privilege(current_database(), 'CREATE'), \
                    has_database_privilege(current_database(), 'TEMP'), \
                    coalesce(has_table_privilege(to_regclass('lifeboat_migration.journal'), 'INSERT'), \
                             has_database_privilege(current_database(), 'CREATE'))",
            &[],
        )
        .await?;
    let (db_create, db_temp, journal): (bool, bool, bool) =
        (db_rights.get(0), db_rights.get(1), db_rights.get(2));
    let dbname = display_ident(&s.database);
    if !journal {
        f.privileges.push(format!("no CREATE on database {dbname} (needed once, for the schema lifeboat_migration that records finished tables)"));
    }
    let schemas = schema_rights(s, &names).await?;
    let mut out = Vec::new();
    for (t, name) in tables.iter().zip(&names) {
        let existing = existing.get(name);
        let has_rows = match existing {
            Some(e)
                if e.holds_rows() && !spec.types.schema && spec.conflict == ConflictMode::Error =>
            {
                target::has_rows(s, &name.0, &name.1).await?
            }
            _ => false,
        };
        let target = &t.mapping.target;
        let decided = target::decide(spec.types, spec.conflict, existing, || has_rows);
        let action = match decided {
            Ok(a) => a,
            Err(reason) => {
                f.conflicts.push(format!("{target} {reason}"));
                continue;
            }
        };
        if t.partitioned {
            if matches!(action, TableAction::Create | TableAction::Replace) {
                // A replaced table's relations are moved aside first, freeing their
                // names.
                let replaced = existing.filter(|_| action == TableAction::Replace);
                let replaced = replaced.map(|e| e.oid);
                f.conflicts
                    .extend(target::partition_conflicts(s, t, replaced).await?);
                let mut taken = target::relation_names(s, &target.schema).await?;
                if let Some(oid) = replaced {
                    for (_, schema, name) in target::tree_relations(s, oid).await? {
                        if schema == target.schema {
                            taken.remove(&name);
                        }
                    }
                }
                taken.extend(reserved_in(&f.reserved, t));
                f.partitions.push(tree_names(t, taken));
            } else if action != TableAction::Unchanged {
                f.partitions.push(format!(
                    "{}: the rows of its {} partitions go into the existing {target}",
                    t.mapping.source,
                    t.partitions.len()
                ));
            }
        }
        let schema_create = match schemas.get(&name.0) {
            Some(&create) => create,
            None => db_create && spec.types.schema,
        };
        let rights = Rights {
            schema_create,
            db_temp,
            delete: spec.delete_rows_only_in_target,
        };
        privileges(action, target, existing, rights, f);
        if let (Some(e), Some(def)) = (existing, source.defs.get(&t.mapping.key)) {
            if matches!(
                action,
                TableAction::SkipExisting | TableAction::Overwrite | TableAction::Repair
            ) && e.key.is_empty()
            {
                f.keys_missing.push(format!(
                    "{target} has no primary key or unique NOT NULL key to match rows by"
                ));
            }
            if matches!(
                action,
                TableAction::Append | TableAction::SkipExisting | TableAction::Overwrite
            ) {
                for p in target::incompatibilities(def, e, action) {
                    if !p.contains("no primary key") {
                        f.columns.push(format!("{target}: {p}"));
                    }
                }
            }
        }
        if action.builds_table()
            && let Some(def) = source.defs.get(&t.mapping.key)
        {
            missing_types(s, target, def, &mut f.types).await?;
        }
        if let (TableAction::Replace, Some(e)) = (action, existing) {
            dependents(s, target, e, &mut f.dependents).await?;
        }
        out.push((*t, action));
    }
    Ok(out)
}

/// For each target schema that exists: may the account create in it?
async fn schema_rights(
    s: &Session,
    names: &[(String, String)],
) -> Result<HashMap<String, bool>, MigrationError> {
    let schemas: Vec<&str> = names
        .iter()
        .map(|n| n.0.as_str())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let rows = s
        .query(
            "checking schema privileges",
            "SELECT nspname, has_schema_privilege(oid, 'CREATE') AND has_schema_privilege(oid, 'USAGE') \
             FROM pg_namespace WHERE nspname = ANY($1)",
            &[&schemas],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// What the account may do around one table, besides the table's own privileges.
#[derive(Clone, Copy)]
struct Rights {
    schema_create: bool,
    db_temp: bool,
    /// The task deletes rows (`repair` with `delete_rows_only_in_target`).
    delete: bool,
}

fn privileges(
    action: TableAction,
    target: &QualifiedTable,
    existing: Option<&TargetTable>,
    rights: Rights,
    f: &mut Findings,
) {
    let Rights {
        schema_create,
        db_temp,
        delete,
    } = rights;
    let mut need = |ok: bool, what: &str| {
        if !ok {
            f.privileges.push(format!("{target}: {what}"));
        }
    };
    let e = existing;
    match action {
        TableAction::Create => need(
            schema_create,
            "no CREATE on the target schema (or on the database, to create the schema)",
        ),
        TableAction::Append => need(e.is_some_and(|e| e.can_insert), "no INSERT on the table"),
        TableAction::SkipExisting | TableAction::Overwrite => {
            need(
                e.is_some_and(|e| e.can_insert && e.can_select),
                "no INSERT and SELECT on the table",
            );
            need(
                db_temp,
                "no TEMP on the database (rows are staged in a temporary table)",
            );
            if action == TableAction::Overwrite {
                need(e.is_some_and(|e| e.can_update), "no UPDATE on the table");
                need(
                    schema_create,
                    "no CREATE on the schema (for the table that saves the replaced rows)",
                );
            }
        }
        TableAction::Repair => {
            need(
                e.is_some_and(|e| e.can_insert && e.can_select && e.can_update),
                "no INSERT, SELECT and UPDATE on the table",
            );
            if delete {
                need(
                    e.is_some_and(|e| e.can_delete),
                    "no DELETE on the table (--delete-rows-only-in-target)",
                );
            }
            need(
                db_temp,
                "no TEMP on the database (rows are staged in a temporary table)",
            );
            need(
                schema_create,
                "no CREATE on the schema (for the table that saves the changed rows)",
            );
        }
        TableAction::Replace => {
            need(
                e.is_some_and(|e| e.is_owner),
                "the account does not own the table (needed to rename it)",
            );
            need(schema_create, "no CREATE on the schema");
        }
        TableAction::Unchanged => {}
    }
}

/// The user-defined types the source tables of `tables` use, without repeats.
fn needed_types(
    source: &SourceFacts,
    tables: &[&SourceTable],
) -> Vec<crate::migration::types::TypeDef> {
    let mut dbs: Vec<&str> = Vec::new();
    for t in tables {
        if !dbs.contains(&t.mapping.source.database.as_str()) {
            dbs.push(&t.mapping.source.database);
        }
    }
    crate::migration::types::distinct(
        dbs.into_iter()
            .filter_map(|db| source.types.get(db))
            .flatten()
            .cloned(),
    )
}

/// A type the target database `db` lacks: created by the task, or a problem.
fn type_needed(t: &crate::migration::types::TypeDef, db: &str, f: &mut Findings) {
    if t.extension.is_some() {
        return; // Created with its extension: the extensions item tells.
    }
    match &t.problem {
        Some(why) => f.types.push(format!(
            "type {} does not exist in the target database {} and {why}",
            t.label(),
            display_ident(db)
        )),
        None => f
            .types_created
            .push(format!("{} (in {})", t.label(), display_ident(db))),
    }
}

/// Collations the new table needs that the target lacks (its user-defined types are
/// created by the task: see [`needed_types`]).
async fn missing_types(
    s: &Session,
    target: &QualifiedTable,
    def: &TableDef,
    out: &mut Vec<String>,
) -> Result<(), MigrationError> {
    for c in &def.columns {
        if let Some(coll) = &c.collation {
            let ok: bool = s
                .query_one(
                    "looking up a collation",
                    "SELECT to_regcollation($1) IS NOT NULL",
                    &[coll],
                )
                .await?
                .get(0);
            if !ok {
                out.push(format!(
                    "{target}: collation {coll} of column {} does not exist",
                    c.name
                ));
            }
        }
    }
    Ok(())
}

/// Views and foreign keys that will keep pointing at the old table after a replace.
async fn dependents(
    s: &Session,
    target: &QualifiedTable,
    e: &TargetTable,
    out: &mut Vec<String>,
) -> Result<(), MigrationError> {
    let rows = s
        .query(
            "looking for objects depending on the table",
            "SELECT DISTINCT 'view ' || v.oid::regclass::text FROM pg_depend d \
               JOIN pg_rewrite r ON r.oid = d.objid JOIN pg_class v ON v.oid = r.ev_class \
               WHERE d.refobjid = $1 AND d.classid = 'pg_rewrite'::regclass AND v.oid <> $1 \
             UNION ALL \
             SELECT 'foreign key ' || quote_ident(conname) || ' of ' || conrelid::regclass::text \
               FROM pg_constraint WHERE confrelid = $1 AND contype = 'f' AND conrelid <> $1",
            &[&e.oid],
        )
        .await?;
    for r in rows {
        out.push(format!(
            "{target}: {} will keep pointing at the old table",
            r.get::<_, String>(0)
        ));
    }
    Ok(())
}

/// Foreign keys of `t` whose referenced table the task does not migrate.
fn left_out_foreign_keys(
    t: &SourceTable,
    def: &TableDef,
    all: &[SourceTable],
    out: &mut Vec<String>,
) {
    for fk in &def.foreign_keys {
        let migrated = all.iter().any(|o| {
            o.mapping.source.database == t.mapping.source.database
                && o.mapping.source.schema == fk.ref_schema
                && o.mapping.source.table == fk.ref_table
                && o.mapping.target.database == t.mapping.target.database
        });
        if !migrated {
            out.push(format!(
                "foreign key {} of {} references {}.{}, which is not migrated",
                display_ident(&fk.name),
                t.mapping.source,
                display_ident(&fk.ref_schema),
                display_ident(&fk.ref_table)
            ));
        }
    }
}

fn push_items(task: &MigrationTask, account: &str, f: Findings, items: &mut Vec<PrecheckItem>) {
    let spec = &task.spec;
    let mut summary: Vec<String> = f
        .actions
        .iter()
        .map(|(a, n)| {
            let tables = if *n == 1 { "table" } else { "tables" };
            format!("{n} {tables} to {}", a.describe())
        })
        .collect();
    summary.sort();
    let conflict_advice = match spec.conflict {
        ConflictMode::Error => {
            "map these objects to new names, drop or rename them in the target, or choose --conflict skip-existing, overwrite or replace"
        }
        _ => {
            "map these objects to other names, or add the schema migration type so missing tables are created"
        }
    };
    items.push(PrecheckItem::from_problems(
        "name_conflicts",
        &f.conflicts,
        true,
        format!(
            "no conflict under conflict mode {}: {}",
            spec.conflict,
            summary.join(", ")
        ),
        conflict_advice,
    ));
    items.push(PrecheckItem::from_problems(
        "target_privileges",
        &f.privileges,
        true,
        format!("{account} can create and write every object the task needs"),
        format!("grant {account} the privileges listed, or use the instance's privileged account"),
    ));
    let mut keys = f.keys_missing.clone();
    let fail = !keys.is_empty();
    keys.extend(
        f.keys_for_verify
            .iter()
            .map(|k| format!("{k}: verification compares it as a multiset of whole rows")),
    );
    items.push(PrecheckItem::from_problems(
        "table_keys",
        &keys,
        fail,
        "every table merged or verified has a primary key or unique NOT NULL key",
        if fail {
            "add a primary key to the target tables listed, or use --conflict replace"
        } else {
            "add a primary key to the tables listed for a faster, exact verification"
        },
    ));
    items.push(PrecheckItem::from_problems(
        "column_compatibility",
        &f.columns,
        true,
        "the columns of every existing target table receiving rows match the source's",
        "make the target tables' columns match the source's (same names and types), or use --conflict replace",
    ));
    let types_ok = if f.types_created.is_empty() {
        "every type and collation the new tables use exists in the target".to_string()
    } else {
        format!(
            "the task creates the types the new tables use that the target lacks: {}; every collation exists",
            super::item::list(&f.types_created)
        )
    };
    items.push(PrecheckItem::from_problems(
        "target_types",
        &f.types,
        true,
        types_ok,
        "create the types (CREATE TYPE / CREATE EXTENSION) or collations in the target database first (for a new database: create the database and its types, then run the pre-check again)",
    ));
    items.push(PrecheckItem::from_problems(
        "foreign_keys",
        &f.fks,
        false,
        "every foreign key of the migrated tables references a migrated table",
        "add the referenced tables to the task, or recreate these foreign keys by hand after the migration",
    ));
    if spec.conflict == ConflictMode::Replace {
        items.push(PrecheckItem::from_problems(
            "replaced_table_dependents",
            &f.dependents,
            false,
            "no view or foreign key depends on the tables being replaced",
            "after the migration, recreate these views and foreign keys on the new tables",
        ));
    }
}
