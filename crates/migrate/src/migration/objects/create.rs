//! Creating the objects in the target: the extensions before the tables, the rest in
//! one transaction per target database after them, recorded in the journal.

use std::collections::{HashMap, HashSet};

use crate::migration::conn::{Session, connect};
use crate::migration::mapping::TableKey;
use crate::migration::names::{display_ident, quote_ident};
use crate::migration::objects::{
    Decision, ExtensionNeed, ObjectKind, ObjectOutcome, ObjectPlan, SEQUENCE, decide,
};
use crate::migration::{MigrationError, MigrationTask, Side, TableOutcome, journal};

/// Creates in the database of `s` the extensions of `needs` it lacks, each in the
/// schema it has on the source (`CREATE EXTENSION` would otherwise pick the first
/// schema of the session's `search_path`, which is `pg_catalog`).
pub(crate) async fn create_extensions(
    s: &Session,
    needs: &[ExtensionNeed],
) -> Result<Vec<ObjectOutcome>, MigrationError> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for e in needs.iter().filter(|e| seen.insert(e.name.clone())) {
        let installed: bool = s
            .query_one(
                "looking for an extension",
                "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = $1)",
                &[&e.name],
            )
            .await?
            .get(0);
        // One the target has is not news (plpgsql, which every function in it
        // needs, is in every database).
        if installed {
            continue;
        }
        let sql = format!(
            "CREATE SCHEMA IF NOT EXISTS {schema}; CREATE EXTENSION IF NOT EXISTS {} SCHEMA {schema}",
            quote_ident(&e.name),
            schema = quote_ident(&e.schema),
        );
        s.execute(&format!("creating the extension {}", e.name), &sql)
            .await?;
        out.push(ObjectOutcome {
            kind: ObjectKind::Extension,
            name: format!(
                "{} in {}",
                display_ident(&e.name),
                display_ident(&s.database)
            ),
            created: true,
            note: format!("needed by {}", e.needed_by),
            resumed: false,
        });
    }
    Ok(out)
}

/// The tables of `tables` the run will build (for deciding about their objects
/// before it starts): those the target lacks, or all under `replace`, besides those
/// `done` says were built.
pub(crate) async fn predicted_built(
    s: Option<&Session>,
    tables: &[&crate::migration::mapping::SourceTable],
    conflict: crate::migration::ConflictMode,
    done: &HashMap<TableKey, TableOutcome>,
) -> Result<HashSet<TableKey>, MigrationError> {
    let mut out = HashSet::new();
    for t in tables {
        let key = &t.mapping.key;
        let built = match (done.get(key), s) {
            (Some(o), _) => o.action.builds_table(),
            _ if conflict == crate::migration::ConflictMode::Replace => true,
            (None, None) => true,
            (None, Some(s)) => {
                let name = crate::migration::names::qualified(
                    &t.mapping.target.schema,
                    &t.mapping.target.table,
                );
                !s.query_one(
                    "looking for a table",
                    crate::migration::objects::RELATION_EXISTS,
                    &[&name],
                )
                .await?
                .get::<_, bool>(0)
            }
        };
        if built {
            out.insert(key.clone());
        }
    }
    Ok(out)
}

/// The failures among the objects of `plans` going into `db` (`s` when it exists,
/// `cluster` for roles), for refusing a task before anything is written.
pub(crate) async fn failures(
    s: Option<&Session>,
    cluster: &Session,
    db: &str,
    plans: &[&ObjectPlan],
    conflict: crate::migration::ConflictMode,
    built: &HashSet<TableKey>,
) -> Result<Vec<String>, MigrationError> {
    let mut out = Vec::new();
    for plan in plans {
        let decisions = decide(s, cluster, &plan.objects, db, conflict, built).await?;
        out.extend(decisions.into_iter().filter_map(|d| match d {
            Decision::Fail(why) => Some(why),
            _ => None,
        }));
    }
    Ok(out)
}

/// Creates the objects of `plans` in every target database they go to, once the
/// tables are done (`outcomes`, finished by this run or an earlier one). A database
/// whose objects an earlier run committed is not touched again; its outcomes are
/// reported as resumed.
pub(crate) async fn create_all(
    task: &MigrationTask,
    plans: &[&ObjectPlan],
    outcomes: &[TableOutcome],
) -> Result<Vec<ObjectOutcome>, MigrationError> {
    let built: HashSet<TableKey> = outcomes
        .iter()
        .filter(|o| o.action.builds_table())
        .map(|o| o.key.clone())
        .collect();
    let mut databases: Vec<&str> = Vec::new();
    for o in plans.iter().flat_map(|p| &p.objects) {
        if !databases.contains(&o.target_db.as_str()) {
            databases.push(&o.target_db);
        }
    }
    let mut out = Vec::new();
    for db in databases {
        let s = connect(&task.target, Side::Target, db).await?;
        journal::ensure(&s).await?;
        if let Some(done) = journal::objects_finished(&s, &task.spec.task_id).await? {
            out.extend(
                done.into_iter()
                    .map(|o| ObjectOutcome { resumed: true, ..o }),
            );
            continue;
        }
        // Functions are checked when called, not when created: a function may use
        // a view created after it (pg_dump restores the same way).
        s.execute(
            "starting the objects' transaction",
            "BEGIN; SET LOCAL check_function_bodies = off",
        )
        .await?;
        let mut created = Vec::new();
        for plan in plans {
            let decisions =
                decide(Some(&s), &s, &plan.objects, db, task.spec.conflict, &built).await?;
            for (o, d) in plan.objects.iter().zip(decisions) {
                let (made, note) = match d {
                    Decision::Create => {
                        let mut statements = o.statements.clone();
                        if let Some((table, column)) = &o.sequence_of {
                            let name: Option<String> = s
                                .query_one(
                                    "looking up a table's sequence",
                                    "SELECT pg_get_serial_sequence($1, $2)",
                                    &[table, column],
                                )
                                .await?
                                .get(0);
                            let Some(name) = name else {
                                created.push(ObjectOutcome {
                                    kind: o.kind,
                                    name: o.name.clone(),
                                    created: false,
                                    note: "the target table has no sequence for that column".into(),
                                    resumed: false,
                                });
                                continue;
                            };
                            for sql in &mut statements {
                                *sql = sql.replacen(SEQUENCE, &name, 1);
                            }
                        }
                        for sql in &statements {
                            s.client.batch_execute(sql).await.map_err(|e| {
                                MigrationError::Object {
                                    object: format!("{} {}", o.kind.describe(), o.name),
                                    reason: format!(
                                        "could not be created: {}",
                                        lifeboat_postgres::describe(&e)
                                    ),
                                }
                            })?;
                        }
                        (true, String::new())
                    }
                    Decision::Keep(note) | Decision::Skip(note) => (false, note),
                    Decision::Fail(why) => return Err(MigrationError::Conflicts(vec![why])),
                    Decision::NotBuilt | Decision::Elsewhere => continue,
                };
                created.push(ObjectOutcome {
                    kind: o.kind,
                    name: o.name.clone(),
                    created: made,
                    note,
                    resumed: false,
                });
            }
        }
        journal::record_objects(&s, &task.spec.task_id, &created).await?;
        s.execute("committing the objects", "COMMIT").await?;
        out.extend(created);
    }
    Ok(out)
}
