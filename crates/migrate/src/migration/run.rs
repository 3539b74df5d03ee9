//! Running a migration task: resolve the mapping inside one snapshot per source
//! database, prepare the target (databases, schemas, journal), migrate the tables a
//! few at a time (each atomically, see [`crate::migration::apply`]), then add the
//! foreign keys between migrated tables and verify the result.
//!
//! # Snapshot
//! For each source database one session opens `REPEATABLE READ READ ONLY`, exports its
//! snapshot and stays open until every table of that database has started copying;
//! each table's session imports it with `SET TRANSACTION SNAPSHOT`, so all tables are
//! read as of one instant even though they are copied in parallel. A run resumed
//! after a restart takes a new snapshot for the tables it still has to copy (the source
//! is normally a temporary instance nobody writes to, so both are the same data).

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::migration::apply::{TableWork, migrate_table};
use crate::migration::catalog::{self, TableDef};
use crate::migration::conn::{Session, connect};
use crate::migration::mapping::{self, QualifiedTable, SourceTable, TableKey};
use crate::migration::names::{
    display_ident, display_path, identifier_problem, qualified, quote_ident, renamed_dependent,
    task_tag,
};
use crate::migration::objects::{self, ObjectPlan};
use crate::migration::report::{ForeignKeyOutcome, PlannedTable};
use crate::migration::types::{self, TypeDef};
use crate::migration::{
    MigrationError, MigrationReport, MigrationTask, ProgressEvent, Side, TableOutcome, journal,
    target, verify,
};

/// One source database: its exported snapshot, selected tables and their definitions.
pub(crate) struct SourceDatabase {
    pub snapshot: String,
    pub tables: Vec<SourceTable>,
    pub defs: HashMap<u32, TableDef>,
    /// The user-defined types the tables use, dependencies first.
    pub types: Vec<TypeDef>,
    /// The views, functions, triggers and the rest (empty unless the schema is
    /// migrated).
    pub objects: ObjectPlan,
}

/// Runs `task`, skipping the tables in `finished` and those the target's journal
/// records as finished by this task. Reports progress through `progress`; stops
/// (rolling back the tables in progress) when `cancel` fires.
///
/// Returns an error naming the table when one fails: the target keeps that table as
/// it was, tables reported finished stay migrated, and running the task again resumes.
/// A verification mismatch is not an error: see [`MigrationReport::verified`].
pub async fn run(
    task: &MigrationTask,
    finished: &HashSet<TableKey>,
    progress: &(dyn Fn(ProgressEvent) + Send + Sync),
    cancel: &CancellationToken,
) -> Result<MigrationReport, MigrationError> {
    let started = Instant::now();
    let spec = &task.spec;
    check_spec(task)?;
    let mut warnings = Vec::new();
    // The snapshot sessions hold the exported snapshots open until every table has
    // been copied; they are closed then, so the source can vacuum again while foreign
    // keys are added and the copy is verified.
    // Resolving the tables waits for a lock another session holds on one of them;
    // nothing is written yet, so a cancel simply drops the sessions.
    let (sources, snapshot_sessions) = tokio::select! {
        biased;
        _ = cancel.cancelled() => return Err(MigrationError::Cancelled),
        opened = open_sources(task, &mut warnings) => opened?,
    };
    let all: Vec<&SourceTable> = sources.iter().flat_map(|s| &s.tables).collect();
    check_targets(&all)?;

    let defs: HashMap<&TableKey, &TableDef> = sources
        .iter()
        .flat_map(|db| {
            db.tables
                .iter()
                .filter_map(|t| Some((&t.mapping.key, db.defs.get(&t.oid)?)))
        })
        .collect();
    // A task may select views or functions alone: their databases count too.
    let target_dbs = distinct(
        all.iter().map(|t| t.mapping.target.database.clone()).chain(
            sources
                .iter()
                .flat_map(|s| &s.objects.objects)
                .map(|o| o.target_db.clone()),
        ),
    );
    // Every conflict is found before anything is written, so a task that cannot
    // complete leaves the target as it was.
    let mut done: HashMap<TableKey, TableOutcome> = HashMap::new();
    let mut conflicts = Vec::new();
    let plans: Vec<&ObjectPlan> = sources.iter().map(|s| &s.objects).collect();
    for db in &target_dbs {
        let in_db: Vec<&SourceTable> = all
            .iter()
            .filter(|t| &t.mapping.target.database == db)
            .copied()
            .collect();
        let s = match connect(&task.target, Side::Target, db).await {
            Ok(s) => s,
            Err(e) if e.code() == Some("3D000") && spec.types.schema => {
                let cluster = connect_any(&task.target).await?;
                let built =
                    objects::create::predicted_built(None, &in_db, spec.conflict, &done).await?;
                conflicts.extend(
                    objects::create::failures(None, &cluster, db, &plans, spec.conflict, &built)
                        .await?,
                );
                continue;
            }
            Err(e) => return Err(e),
        };
        done.extend(journal::finished(&s, &spec.task_id).await?);
        let pending: Vec<&SourceTable> = in_db
            .iter()
            .filter(|t| !done.contains_key(&t.mapping.key) && !finished.contains(&t.mapping.key))
            .copied()
            .collect();
        conflicts.extend(target::conflicts(&s, &pending, &defs, spec.types, spec.conflict).await?);
        if spec.types.schema
            && journal::objects_finished(&s, &spec.task_id)
                .await?
                .is_none()
        {
            let built =
                objects::create::predicted_built(Some(&s), &in_db, spec.conflict, &done).await?;
            conflicts.extend(
                objects::create::failures(Some(&s), &s, db, &plans, spec.conflict, &built).await?,
            );
        }
    }
    if !conflicts.is_empty() {
        return Err(MigrationError::Conflicts(conflicts));
    }
    let mut created_extensions = Vec::new();
    for db in &target_dbs {
        let schemas = distinct(
            all.iter()
                .filter(|t| &t.mapping.target.database == db)
                .flat_map(|t| {
                    std::iter::once(&t.mapping.target)
                        .chain(t.partitions.iter().map(|p| &p.target))
                        .map(|q| q.schema.clone())
                })
                .chain(
                    sources
                        .iter()
                        .flat_map(|src| &src.objects.schemas)
                        .filter(|(d, _)| d == db)
                        .map(|(_, schema)| schema.clone()),
                ),
        );
        let needed = types::distinct(
            sources
                .iter()
                .filter(|src| src.tables.iter().any(|t| &t.mapping.target.database == db))
                .flat_map(|src| src.types.iter().cloned()),
        );
        let extensions: Vec<_> = sources
            .iter()
            .filter(|src| {
                src.objects.objects.iter().any(|o| &o.target_db == db)
                    || src.tables.iter().any(|t| &t.mapping.target.database == db)
            })
            .flat_map(|src| src.objects.extensions.iter().cloned())
            .collect();
        let owners: HashMap<String, String> = sources
            .iter()
            .flat_map(|src| &src.objects.schema_owners)
            .filter(|(d, _, _)| d == db)
            .map(|(_, schema, role)| (schema.clone(), role.clone()))
            .collect();
        created_extensions
            .extend(prepare_target(task, db, &schemas, &owners, &needed, &extensions).await?);
    }
    progress(ProgressEvent::Planned {
        tables: all
            .iter()
            .map(|t| PlannedTable {
                mapping: t.mapping.clone(),
                estimated_rows: t.estimated_rows,
                estimated_bytes: t.table_bytes,
                already_finished: done.contains_key(&t.mapping.key)
                    || finished.contains(&t.mapping.key),
            })
            .collect(),
    });

    let tag = task_tag(&spec.task_id);
    let reserved = mapping::reserved_names(&all);
    let stop = cancel.child_token();
    let mut work = Vec::new();
    for db in &sources {
        for t in &db.tables {
            if done.contains_key(&t.mapping.key) || finished.contains(&t.mapping.key) {
                continue;
            }
            let Some(def) = db.defs.get(&t.oid) else {
                continue;
            };
            work.push(TableWork {
                table: t,
                def,
                defs: &db.defs,
                reserved: &reserved,
                snapshot: &db.snapshot,
                task,
                tag: &tag,
                progress,
            });
        }
    }
    let mut outcomes = Vec::new();
    let mut failure = None;
    // The futures are built before they go into the stream: a closure inside the
    // stream's type would make this whole future lose `Send` (rustc cannot prove the
    // closure general over the borrow's lifetime).
    let tables: Vec<_> = work.iter().map(|w| migrate_table(w, &stop)).collect();
    let mut jobs = futures_util::stream::iter(tables).buffer_unordered(spec.parallelism.max(1));
    while let Some(result) = jobs.next().await {
        match result {
            Ok(outcome) => outcomes.push(outcome),
            // The first failure stops the rest; their own errors are just "cancelled".
            Err(e) if failure.is_none() && !matches!(e, MigrationError::Cancelled) => {
                failure = Some(e);
                stop.cancel();
            }
            Err(_) => {}
        }
    }
    drop(jobs);
    drop(work);
    drop(snapshot_sessions);
    if let Some(e) = failure {
        return Err(e);
    }
    if cancel.is_cancelled() {
        return Err(MigrationError::Cancelled);
    }
    for t in &all {
        if let Some(mut o) = done.remove(&t.mapping.key) {
            o.resumed = true;
            outcomes.push(o);
        }
    }
    let order: HashMap<&TableKey, usize> = all
        .iter()
        .enumerate()
        .map(|(i, t)| (&t.mapping.key, i))
        .collect();
    outcomes.sort_by_key(|o| order.get(&o.key).copied().unwrap_or(usize::MAX));

    let foreign_keys = if spec.types.schema {
        add_foreign_keys(task, &sources, &outcomes, progress, cancel, &mut warnings).await?
    } else {
        Vec::new()
    };
    let mut objects = created_extensions;
    if spec.types.schema {
        if cancel.is_cancelled() {
            return Err(MigrationError::Cancelled);
        }
        objects.extend(objects::create::create_all(task, &plans, &outcomes).await?);
    }
    let verification = if spec.verify && spec.types.data {
        verify::verify(task, &all, &outcomes, progress, cancel).await?
    } else {
        Vec::new()
    };
    Ok(MigrationReport {
        task_id: spec.task_id.clone(),
        tables: outcomes,
        foreign_keys,
        objects,
        verification,
        warnings,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Runs [`run`] on a thread of its own, driven by a current-thread runtime, and
/// returns a future for its result that any runtime can await.
///
/// A table's copy is one stream relayed between two connections; keeping both
/// connections and the relay on one thread avoids the cross-thread wake-ups of a
/// work-stealing runtime, which halves the CPU the relay costs (measured in
/// `bench/migration`). Cancel through `cancel` as with [`run`].
pub fn spawn(
    task: MigrationTask,
    finished: HashSet<TableKey>,
    progress: std::sync::Arc<dyn Fn(ProgressEvent) + Send + Sync>,
    cancel: CancellationToken,
) -> impl Future<Output = Result<MigrationReport, MigrationError>> + Send + 'static {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let thread = std::thread::Builder::new()
        .name("lifeboat-migration".into())
        .spawn(move || {
            let result = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt.block_on(run(&task, &finished, &*progress, &cancel)),
                Err(e) => Err(MigrationError::Worker(format!(
                    "cannot start a runtime: {e}"
                ))),
            };
            let _ = tx.send(result);
        });
    async move {
        if let Err(e) = thread {
            return Err(MigrationError::Worker(format!(
                "cannot start a thread: {e}"
            )));
        }
        rx.await.unwrap_or_else(|_| {
            Err(MigrationError::Worker(
                "the migration thread panicked".into(),
            ))
        })
    }
}

fn check_spec(task: &MigrationTask) -> Result<(), MigrationError> {
    let spec = &task.spec;
    if spec.objects.is_empty() {
        return Err(MigrationError::InvalidSpec(
            "name at least one object to migrate".into(),
        ));
    }
    if !spec.types.schema && !spec.types.data {
        return Err(MigrationError::InvalidSpec(
            "choose the migration types: schema, data or both".into(),
        ));
    }
    if spec.task_id.is_empty() {
        return Err(MigrationError::InvalidSpec("the task needs an id".into()));
    }
    let problems = mapping::object_problems(&spec.objects);
    if !problems.is_empty() {
        return Err(MigrationError::Mapping(problems.join("; ")));
    }
    Ok(())
}

/// Opens the snapshot session of every source database and resolves its tables.
async fn open_sources(
    task: &MigrationTask,
    warnings: &mut Vec<String>,
) -> Result<(Vec<SourceDatabase>, Vec<Session>), MigrationError> {
    let mut sources = Vec::new();
    let mut sessions = Vec::new();
    for db in mapping::source_databases(&task.spec.objects) {
        let s = connect(&task.source, Side::Source, &db).await?;
        s.execute(
            "opening the source snapshot",
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        )
        .await?;
        let snapshot: String = s
            .query_one(
                "exporting the source snapshot",
                "SELECT pg_export_snapshot()",
                &[],
            )
            .await?
            .get(0);
        let objects: Vec<_> = task
            .spec
            .objects
            .iter()
            .filter(|o| o.database() == db)
            .collect();
        let resolved = mapping::resolve_database(&s, &objects).await?;
        if let Some(e) = crate::migration::partition::lone_error(&resolved) {
            return Err(e);
        }
        if !resolved.missing.is_empty() {
            return Err(MigrationError::Mapping(format!(
                "{} not found on the source",
                resolved.missing.join(", ")
            )));
        }
        for (table, reason) in &resolved.unsupported {
            warnings.push(format!("{table} was skipped: {reason}"));
        }
        for table in &resolved.inheritance {
            warnings.push(format!("{table} inherits from a table this task does not migrate; that inheritance is not recreated (its own rows are migrated)"));
        }
        let oids: Vec<u32> = resolved.tables.iter().map(|t| t.oid).collect();
        // Partitions too, for what each has of its own.
        let with_partitions: Vec<u32> = resolved
            .tables
            .iter()
            .flat_map(|t| std::iter::once(t.oid).chain(t.partitions.iter().map(|p| p.oid)))
            .collect();
        let mut defs = catalog::load(&s, &with_partitions).await?;
        catalog::name_inherited_constraints(&mut defs, &resolved.tables);
        for p in resolved.tables.iter().flat_map(|t| &t.partitions) {
            for fk in defs.get(&p.oid).map(|d| &d.foreign_keys[..]).unwrap_or(&[]) {
                warnings.push(format!(
                    "foreign key {} of partition {} was not created: only the foreign keys of a partitioned table itself are",
                    fk.name, p.source
                ));
            }
        }
        let (types, objects) = if task.spec.types.schema {
            let plan =
                objects::load::load(&s, &resolved.tables, &objects, task.target.get_user()).await?;
            warnings.extend(plan.skipped.iter().cloned());
            (types::load(&s, &oids).await?, plan)
        } else {
            (Vec::new(), ObjectPlan::default())
        };
        sessions.push(s);
        sources.push(SourceDatabase {
            snapshot,
            tables: resolved.tables,
            defs,
            types,
            objects,
        });
    }
    Ok((sources, sessions))
}

/// Mapped names must be valid and distinct (partitions that keep their names
/// included).
fn check_targets(all: &[&SourceTable]) -> Result<(), MigrationError> {
    let kept = mapping::kept_partition_mappings(all);
    let mappings: Vec<_> = all.iter().map(|t| &t.mapping).collect();
    let mut problems =
        mapping::target_collisions(&mappings.iter().copied().chain(&kept).collect::<Vec<_>>());
    for m in &mappings {
        for part in [&m.target.database, &m.target.schema, &m.target.table] {
            if let Some(p) = identifier_problem(part) {
                problems.push(format!(
                    "{} cannot be mapped to {}: {p}",
                    m.source, m.target
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(MigrationError::Mapping(problems.join("; ")))
    }
}

/// Connects to a target database (creating it when only the schema of a whole
/// database is new), creates missing schemas, the user-defined types the tables use
/// that it lacks (after the extensions they may come from), and the journal.
async fn prepare_target(
    task: &MigrationTask,
    db: &str,
    schemas: &[String],
    owners: &HashMap<String, String>,
    needed: &[TypeDef],
    extensions: &[objects::ExtensionNeed],
) -> Result<Vec<objects::ObjectOutcome>, MigrationError> {
    let s = match connect(&task.target, Side::Target, db).await {
        Err(e) if e.code() == Some("3D000") && task.spec.types.schema => {
            let admin = connect_any(&task.target).await?;
            admin
                .execute(
                    "creating the target database",
                    &format!("CREATE DATABASE {}", quote_ident(db)),
                )
                .await?;
            connect(&task.target, Side::Target, db).await?
        }
        other => other?,
    };
    let mut created = Vec::new();
    if task.spec.types.schema {
        created = objects::create::create_extensions(&s, extensions).await?;
        for schema in schemas {
            // Before any table's transaction: two tables creating the same schema at
            // once would make one of them fail.
            let exists: bool = s
                .query_one(
                    "looking for the target schema",
                    "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)",
                    &[schema],
                )
                .await?
                .get(0);
            if exists {
                continue;
            }
            let mut sql = format!("CREATE SCHEMA IF NOT EXISTS {}", quote_ident(schema));
            // A schema the task creates belongs to the source schema's owner, as
            // pg_dump restores it, when the target has the role and the account may
            // give it objects.
            if let Some(role) = owners.get(schema) {
                let mut may = true;
                for sql in [objects::ROLE_EXISTS, objects::MAY_GIVE_TO] {
                    may = may
                        && s.query_one("looking for the schema's owner", sql, &[role])
                            .await?
                            .get::<_, bool>(0);
                }
                let name = format!(
                    "owner of schema {}: {}",
                    display_path(&[db, schema]),
                    display_ident(role)
                );
                if may {
                    sql.push_str(&format!(" AUTHORIZATION {}", quote_ident(role)));
                }
                created.push(objects::ObjectOutcome {
                    kind: objects::ObjectKind::Owner,
                    name,
                    created: may,
                    note: if may {
                        String::new()
                    } else {
                        "the role does not exist in the target, or the account Lifeboat connects to the target with is not a superuser; the schema is owned by that account".into()
                    },
                    resumed: false,
                });
            }
            s.execute("creating the target schema", &sql).await?;
        }
        types::create_missing(&s, needed).await?;
    }
    journal::ensure(&s).await?;
    Ok(created)
}

/// A session on whichever maintenance database the target account may use.
pub(crate) async fn connect_any(
    config: &tokio_postgres::Config,
) -> Result<Session, MigrationError> {
    let mut last = None;
    let named = config.get_dbname().map(str::to_string);
    for db in named
        .iter()
        .map(String::as_str)
        .chain(["postgres", "template1"])
    {
        match connect(config, Side::Target, db).await {
            Ok(s) => return Ok(s),
            Err(e) if e.code() == Some("3D000") => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last
        .unwrap_or_else(|| MigrationError::InvalidSpec("no target database to connect to".into())))
}

/// Adds the source's foreign keys to every table the task built, when the referenced
/// table is migrated too (into the same target database); others become warnings.
async fn add_foreign_keys(
    task: &MigrationTask,
    sources: &[SourceDatabase],
    outcomes: &[TableOutcome],
    progress: &(dyn Fn(ProgressEvent) + Send + Sync),
    cancel: &CancellationToken,
    warnings: &mut Vec<String>,
) -> Result<Vec<ForeignKeyOutcome>, MigrationError> {
    let built: HashSet<&TableKey> = outcomes
        .iter()
        .filter(|o| o.action.builds_table())
        .map(|o| &o.key)
        .collect();
    let mut by_source: HashMap<QualifiedTable, &QualifiedTable> = HashMap::new();
    for t in sources.iter().flat_map(|s| &s.tables) {
        by_source.insert(t.mapping.source.clone(), &t.mapping.target);
    }
    let mut planned = Vec::new();
    for db in sources {
        for t in db.tables.iter().filter(|t| built.contains(&t.mapping.key)) {
            let Some(def) = db.defs.get(&t.oid) else {
                continue;
            };
            for fk in &def.foreign_keys {
                let referenced = QualifiedTable {
                    database: t.mapping.source.database.clone(),
                    schema: fk.ref_schema.clone(),
                    table: fk.ref_table.clone(),
                };
                match by_source.get(&referenced) {
                    Some(parent) if parent.database == t.mapping.target.database => {
                        planned.push((t, fk, *parent))
                    }
                    _ => warnings.push(format!(
                        "foreign key {} of {} was not created: it references {referenced}, which this task does not migrate into the same database",
                        fk.name, t.mapping.target
                    )),
                }
            }
        }
    }
    if planned.is_empty() {
        return Ok(Vec::new());
    }
    progress(ProgressEvent::ForeignKeys {
        count: planned.len(),
    });
    let mut sessions: HashMap<String, Session> = HashMap::new();
    let mut out = Vec::new();
    for (t, fk, parent) in planned {
        if cancel.is_cancelled() {
            return Err(MigrationError::Cancelled);
        }
        let target = &t.mapping.target;
        if !sessions.contains_key(&target.database) {
            let s = connect(&task.target, Side::Target, &target.database).await?;
            sessions.insert(target.database.clone(), s);
        }
        let Some(s) = sessions.get(&target.database) else {
            continue;
        };
        let name = renamed_dependent(&fk.name, &t.mapping.source.table, &target.table);
        let exists: bool = s
            .query_one(
                "looking for the foreign key",
                "SELECT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = $1::text::regclass AND conname = $2)",
                &[&qualified(&target.schema, &target.table), &name],
            )
            .await?
            .get(0);
        if !exists {
            let sql = crate::migration::ddl::foreign_key(
                fk,
                &name,
                (&target.schema, &target.table),
                (&parent.schema, &parent.table),
            );
            s.execute("adding a foreign key", &format!("BEGIN; {}; COMMIT", sql.join("; ")))
                .await
                .map_err(|e| MigrationError::Table {
                    table: target.to_string(),
                    reason: format!("foreign key {name} could not be added: {e}"),
                    hint: "the referencing rows lack their referenced rows in the target; fix the data (lifeboat diff shows which rows) and start the task again: finished tables are skipped".into(),
                })?;
        }
        out.push(ForeignKeyOutcome {
            table: target.to_string(),
            name,
            references: parent.to_string(),
            created: !exists,
        });
    }
    Ok(out)
}

/// The distinct values of `items`, in first-seen order.
fn distinct(items: impl Iterator<Item = String>) -> Vec<String> {
    let mut seen = HashSet::new();
    items.filter(|i| seen.insert(i.clone())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The server spawns runs on its runtime: the future must be Send.
    #[allow(dead_code)]
    fn run_is_send(
        task: &MigrationTask,
        finished: &HashSet<TableKey>,
        progress: &(dyn Fn(ProgressEvent) + Send + Sync),
        cancel: &CancellationToken,
    ) {
        fn send<T: Send>(_: T) {}
        send(run(task, finished, progress, cancel));
        send(crate::migration::precheck(task, &Default::default()));
    }
}
