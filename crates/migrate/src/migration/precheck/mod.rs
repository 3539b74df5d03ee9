//! The pre-check: every problem the task would meet, found before it starts, each as
//! a [`PrecheckItem`] that names the objects concerned and says what to do.
//!
//! It reads only; it never writes to either instance. It decides what the run will do
//! to each table with the same function the run uses, so a task that passed does not
//! meet a conflict the pre-check did not show (short of someone changing the target in
//! between, which the run then reports for the table concerned).
//!
//! # Layout
//! - [`item`]: the item type, ids and display order.
//! - this file: connectivity, versions and the source side.
//! - [`target`]: conflicts, privileges, keys and columns in the target.
//! - [`objects`]: views, functions, triggers, policies, grants and extensions.
//! - [`capacity`]: disk space and the temporary source's time left.

mod capacity;
mod item;
mod objects;
mod target;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

pub use item::{PrecheckItem, PrecheckStatus, precheck_passed};

use crate::migration::catalog::{self, TableDef};
use crate::migration::conn::{Session, connect};
use crate::migration::mapping::{self, Resolution, SourceTable, TableKey};
use crate::migration::names::identifier_problem;
use crate::migration::{MigrationTask, Side};

/// What the caller knows that the databases cannot tell.
#[derive(Debug, Clone, Default)]
pub struct PrecheckContext {
    /// The target instance's data directory, when Lifeboat manages the target (it
    /// runs on the same machine, so free space is measured there). Without it the
    /// pre-check asks the server (`data_directory` is visible to superusers only).
    pub target_data_directory: Option<PathBuf>,
    /// How long until the temporary source instance is released; `None` when the
    /// source is not a temporary instance.
    pub source_time_left: Option<Duration>,
    /// The whitelist item the server computed ([`PrecheckItem::whitelist`]).
    pub whitelist: Option<PrecheckItem>,
}

/// What the source side found, for the target checks.
pub(crate) struct SourceFacts {
    pub tables: Vec<SourceTable>,
    pub defs: HashMap<TableKey, TableDef>,
    /// Per source database, the user-defined types its selected tables use.
    pub types: HashMap<String, Vec<crate::migration::types::TypeDef>>,
    /// Per source database, the objects around its tables.
    pub objects: HashMap<String, crate::migration::objects::ObjectPlan>,
    pub version: i32,
    /// Partitions named alone, and the partitioned tables to name instead.
    pub lone_partitions: Resolution,
}

/// Runs every check and returns the items in display order. Never fails: a problem
/// reaching an instance is itself an item, and checks that depend on it are left out
/// (its advice says to run the pre-check again once it is fixed).
pub async fn precheck(task: &MigrationTask, ctx: &PrecheckContext) -> Vec<PrecheckItem> {
    let mut items: Vec<PrecheckItem> = ctx.whitelist.iter().cloned().collect();
    let mut names = mapping::object_problems(&task.spec.objects);
    if task.spec.objects.is_empty() {
        names.push("the task selects no object".into());
    }
    let source = check_source(task, &mut items).await;
    let mut trees = Vec::new();
    let admin = match crate::migration::run::connect_any(&task.target).await {
        Ok(s) => {
            items.push(PrecheckItem::passed(
                "target_connection",
                format!("logged in to the target as {}", user(&task.target)),
            ));
            Some(s)
        }
        Err(e) => {
            items.push(PrecheckItem::failed(
                "target_connection",
                format!("cannot log in to the target as {}: {e}", user(&task.target)),
                format!(
                    "{}; then run the pre-check again to run the remaining checks",
                    e.hint()
                ),
            ));
            None
        }
    };
    if let (Some(source), Some(admin)) = (&source, &admin) {
        let version = server_version(admin).await.unwrap_or(0);
        items.push(version_item(
            source.version,
            version,
            task.spec.types.schema,
        ));
        let all: Vec<&SourceTable> = source.tables.iter().collect();
        let kept = mapping::kept_partition_mappings(&all);
        let mappings: Vec<_> = source.tables.iter().map(|t| &t.mapping).collect();
        let with_kept: Vec<_> = mappings.iter().copied().chain(&kept).collect();
        names.extend(mapping::target_collisions(&with_kept));
        for m in &mappings {
            for part in [&m.target.database, &m.target.schema, &m.target.table] {
                if let Some(p) = identifier_problem(part) {
                    names.push(format!(
                        "{} cannot be mapped to {}: {p}",
                        m.source, m.target
                    ));
                }
            }
        }
        let needs = target::check(task, source, admin, &mut items).await;
        items.extend(objects::check(task, source, admin).await);
        items.push(capacity::disk_item(ctx, admin, needs.disk_bytes).await);
        if let Some(left) = ctx.source_time_left {
            items.push(capacity::time_item(left, needs.copy_bytes));
        }
        trees = needs.partitions;
    }
    if let Some(source) = &source {
        items.extend(partitions_item(&source.lone_partitions, &trees));
    }
    items.push(PrecheckItem::from_problems(
        "object_names",
        &names,
        true,
        "every mapped name is a valid PostgreSQL identifier of at most 63 bytes, and no two sources share a target",
        "change the objects or their new names (quote names with capitals or dots), then run the pre-check again",
    ));
    item::sort(&mut items);
    items
}

fn user(config: &tokio_postgres::Config) -> String {
    config.get_user().unwrap_or("(no account)").to_string()
}

async fn server_version(s: &Session) -> Option<i32> {
    let row = s
        .query_one(
            "reading the server version",
            "SELECT current_setting('server_version_num')::int4",
            &[],
        )
        .await
        .ok()?;
    Some(row.get(0))
}

fn version_item(source: i32, target: i32, schema: bool) -> PrecheckItem {
    let show = |v: i32| format!("PostgreSQL {}.{}", v / 10000, v % 10000);
    let detail = format!("source {}, target {}", show(source), show(target));
    if source < 100000 || target < 100000 {
        PrecheckItem::failed(
            "engine_version",
            format!("{detail}: migration needs PostgreSQL 10 or later on both"),
            "upgrade the older instance",
        )
    } else if target / 10000 < source / 10000 && schema {
        PrecheckItem::failed(
            "engine_version",
            format!(
                "{detail}: table definitions of a newer version may not be accepted by an older one"
            ),
            "migrate into a target of the same or a later major version, or migrate data only into tables created beforehand",
        )
    } else if target / 10000 < source / 10000 {
        PrecheckItem::warning(
            "engine_version",
            format!("{detail}: the target is older than the source"),
            "check that every column type exists in the target version",
        )
    } else if target / 10000 > source / 10000 {
        PrecheckItem::warning(
            "engine_version",
            format!(
                "{detail}: a major upgrade; the selected tables (columns, defaults, identity columns and sequences, keys, constraints, indexes, comments) and their rows carry over, with their views, functions, triggers, rules, policies, grants and extensions when the schema is migrated, but what a migration task does not copy stays behind: roles and their passwords, aggregates, column privileges, and what the schema objects item lists as not created"
            ),
            format!(
                "create those in the target too (pg_dumpall --roles-only for the roles), and check the application against PostgreSQL {}",
                target / 10000
            ),
        )
    } else {
        PrecheckItem::passed("engine_version", detail)
    }
}

/// Connectivity, objects, definitions and privileges on the source.
async fn check_source(task: &MigrationTask, items: &mut Vec<PrecheckItem>) -> Option<SourceFacts> {
    let account = user(&task.source);
    let mut sessions = Vec::new();
    let mut missing = Vec::new();
    let mut failures = Vec::new();
    let mut hint = String::new();
    for db in mapping::source_databases(&task.spec.objects) {
        match connect(&task.source, Side::Source, &db).await {
            Ok(s) => sessions.push(s),
            Err(e) if e.code() == Some("3D000") => missing.push(format!("database {db}")),
            Err(e) => {
                hint = e.hint();
                failures.push(e.to_string());
            }
        }
    }
    if !failures.is_empty() {
        items.push(PrecheckItem::failed(
            "source_connection",
            format!("as {account}: {}", item::list(&failures)),
            format!("{hint}; then run the pre-check again to run the remaining checks"),
        ));
        return None;
    }
    items.push(PrecheckItem::passed(
        "source_connection",
        format!("logged in to the source as {account}"),
    ));
    let version = match sessions.first() {
        Some(s) => server_version(s).await.unwrap_or(0),
        None => 0,
    };
    let mut facts = SourceFacts {
        tables: Vec::new(),
        defs: HashMap::new(),
        types: HashMap::new(),
        objects: HashMap::new(),
        version,
        lone_partitions: Resolution::default(),
    };
    let (mut unsupported, mut denied) = (Vec::new(), Vec::new());
    for s in &sessions {
        let objects: Vec<_> = task
            .spec
            .objects
            .iter()
            .filter(|o| o.database() == s.database)
            .collect();
        let loaded = async {
            let r = mapping::resolve_database(s, &objects).await?;
            let oids: Vec<u32> = r.tables.iter().map(|t| t.oid).collect();
            let mut defs = catalog::load(s, &oids).await?;
            if task.spec.types.schema {
                let types = crate::migration::types::load(s, &oids).await?;
                facts.types.insert(s.database.clone(), types);
                let plan = crate::migration::objects::load::load(
                    s,
                    &r.tables,
                    &objects,
                    task.target.get_user(),
                )
                .await?;
                facts.objects.insert(s.database.clone(), plan);
            }
            // COPY reads the leaves themselves: SELECT on the partitioned table does
            // not grant it.
            let read: Vec<u32> = r
                .tables
                .iter()
                .flat_map(|t| {
                    let leaves = t.partitions.iter().filter(|p| p.is_leaf());
                    std::iter::once(t.oid).chain(leaves.map(|p| p.oid))
                })
                .collect();
            let denied = source_privileges(s, &read, task.spec.types.data).await?;
            for t in &r.tables {
                if let Some(d) = defs.remove(&t.oid) {
                    facts.defs.insert(t.mapping.key.clone(), d);
                }
            }
            Ok::<_, crate::migration::MigrationError>((r, denied))
        };
        match loaded.await {
            Ok((mut r, d)) => {
                let lone = &mut facts.lone_partitions;
                lone.lone_partitions.append(&mut r.lone_partitions);
                lone.partition_roots.append(&mut r.partition_roots);
                missing.extend(r.missing);
                unsupported.extend(r.unsupported);
                unsupported.extend(r.inheritance.into_iter().map(|t| {
                    (
                        t,
                        "inherit from a table the task does not migrate; that inheritance is not recreated (their own rows are migrated)".into(),
                    )
                }));
                denied.extend(d);
                facts.tables.extend(r.tables);
            }
            Err(e) => denied.push(format!("database {}: {e}", s.database)),
        }
    }
    let selected: Vec<String> = facts.tables.iter().map(|t| t.mapping.label()).collect();
    // Views, materialized views, functions and procedures a task may select alone.
    let others: Vec<String> = facts
        .objects
        .values()
        .flat_map(|p| &p.objects)
        .filter(|o| {
            use crate::migration::objects::ObjectKind as K;
            matches!(
                o.kind,
                K::View | K::MaterializedView | K::Function | K::Procedure
            )
        })
        .map(|o| format!("{} {}", o.kind.describe(), o.name))
        .collect();
    let ok = if selected.is_empty() && !others.is_empty() {
        format!(
            "no table selected; {} other objects: {}",
            others.len(),
            item::list(&others)
        )
    } else {
        format!(
            "{} tables selected: {}",
            selected.len(),
            item::list(&selected)
        )
    };
    let mut problems: Vec<String> = missing
        .iter()
        .map(|m| format!("{m} does not exist on the source"))
        .collect();
    // A task that would migrate nothing is no success waiting to happen.
    if selected.is_empty() && others.is_empty() && missing.is_empty() {
        problems.push(format!(
            "the objects exist but select no table that can be migrated{}",
            if !facts.lone_partitions.lone_partitions.is_empty() {
                " (see the partitions named alone)"
            } else if !unsupported.is_empty() {
                " (see the tables that cannot be migrated)"
            } else {
                ""
            }
        ));
    }
    items.push(PrecheckItem::from_problems(
        "source_objects",
        &problems,
        true,
        ok,
        "check the object names (unquoted names fold to lower case; quote names with capitals), name tables or schemas that hold tables, or remove them from the task",
    ));
    if !unsupported.is_empty() {
        items.push(PrecheckItem::from_problems(
            "unsupported_objects",
            &by_reason(&unsupported),
            false,
            "",
            "these tables are skipped or simplified; select their partitioned tables (a partition comes with its table), or recreate them in the target by hand",
        ));
    }
    items.push(PrecheckItem::from_problems(
        "source_privileges",
        &denied,
        true,
        format!("{account} can read every selected table and its sequences"),
        format!("grant {account} USAGE on the schemas and SELECT on the tables and sequences listed, or use the instance's privileged account"),
    ));
    Some(facts)
}

/// The partitions item, when the task concerns partitioned tables: failed when an
/// object names a partition alone, else the trees and the names their partitions get.
fn partitions_item(lone: &Resolution, trees: &[String]) -> Option<PrecheckItem> {
    if !lone.lone_partitions.is_empty() {
        return Some(PrecheckItem::failed(
            "partitions",
            format!(
                "{}: a partition is migrated with its partitioned table, never alone",
                item::list(&lone.lone_partitions)
            ),
            format!(
                "remove the partitions named alone from the task and {}",
                crate::migration::partition::lone_advice(lone)
            ),
        ));
    }
    (!trees.is_empty()).then(|| PrecheckItem::passed("partitions", item::list(trees)))
}

/// Tables (and, when data is copied, their sequences) the account may not read.
async fn source_privileges(
    s: &Session,
    oids: &[u32],
    data: bool,
) -> Result<Vec<String>, crate::migration::MigrationError> {
    let mut denied = Vec::new();
    let rows = s
        .query(
            "checking read privileges",
            "SELECT n.nspname, c.relname, has_schema_privilege(n.oid, 'USAGE') \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.oid = ANY($1) \
               AND NOT (has_schema_privilege(n.oid, 'USAGE') AND has_table_privilege(c.oid, 'SELECT'))",
            &[&oids],
        )
        .await?;
    for r in rows {
        let what = if r.get(2) {
            "SELECT on table"
        } else {
            "USAGE on the schema of table"
        };
        denied.push(format!(
            "no {what} {}.{}.{}",
            crate::migration::names::display_ident(&s.database),
            crate::migration::names::display_ident(r.get(0)),
            crate::migration::names::display_ident(r.get(1)),
        ));
    }
    if data {
        let rows = s
            .query(
                "checking sequence privileges",
                "SELECT sc.relname FROM pg_depend d JOIN pg_class sc ON sc.oid = d.objid AND sc.relkind = 'S' \
                 WHERE d.refobjid = ANY($1) AND d.classid = 'pg_class'::regclass AND d.deptype IN ('a', 'i') \
                   AND CASE WHEN sc.relkind = 'S' \
                            THEN NOT has_sequence_privilege(sc.oid, 'SELECT') AND NOT has_sequence_privilege(sc.oid, 'USAGE') \
                       END",
                &[&oids],
            )
            .await?;
        for r in rows {
            denied.push(format!(
                "no SELECT on sequence {}",
                crate::migration::names::display_ident(r.get(0))
            ));
        }
    }
    Ok(denied)
}

/// `(table, why)` pairs as one entry per reason, in the order reasons first appear:
/// "N tables: why: a, b, ... and M more", so that no reason hides behind another's
/// long list.
fn by_reason(unsupported: &[(String, String)]) -> Vec<String> {
    let mut reasons: Vec<(&str, Vec<String>)> = Vec::new();
    for (table, why) in unsupported {
        match reasons.iter_mut().find(|(w, _)| w == why) {
            Some((_, tables)) => tables.push(table.clone()),
            None => reasons.push((why, vec![table.clone()])),
        }
    }
    reasons
        .into_iter()
        .map(|(why, tables)| {
            let shown = tables
                .iter()
                .take(item::MAX_LISTED)
                .cloned()
                .collect::<Vec<_>>();
            let more = tables.len().saturating_sub(item::MAX_LISTED);
            format!(
                "{} {}: {why}: {}{}",
                tables.len(),
                if tables.len() == 1 { "table" } else { "tables" },
                shown.join(", "),
                if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                }
            )
        })
        .collect()
}

#[cfg(test)]
mod version_tests {
    use super::*;

    #[test]
    fn the_versions_decide_what_carries_over() {
        let same = version_item(150018, 150010, true);
        assert_eq!(same.status, PrecheckStatus::Passed);
        let up = version_item(150018, 180006, true);
        assert_eq!(up.status, PrecheckStatus::Warning);
        assert!(up.detail.contains("a major upgrade"), "{}", up.detail);
        assert!(
            up.detail.contains("roles and their passwords"),
            "{}",
            up.detail
        );
        assert!(up.advice.contains("PostgreSQL 18"), "{}", up.advice);
        assert_eq!(
            version_item(180006, 150018, true).status,
            PrecheckStatus::Failed
        );
        assert_eq!(
            version_item(180006, 150018, false).status,
            PrecheckStatus::Warning
        );
        assert_eq!(
            version_item(90600, 150018, false).status,
            PrecheckStatus::Failed
        );
    }
}
