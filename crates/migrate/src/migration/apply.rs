//! Migrating one table, atomically: everything the target sees of it happens in one
//! transaction on the target, committed together with the table's journal entry, so
//! a crash, a cancel or an error at any point leaves the target table fully migrated
//! or exactly as it was.
//!
//! Per action ([`TableAction`]):
//! - create: `CREATE TABLE` under the mapped name, `COPY ... FREEZE` into it, then keys,
//!   constraints, indexes and comments (one sort per index instead of one insertion per
//!   row), and the owned sequences set to the source's values.
//! - append: `COPY` straight into the existing empty table.
//! - skip-existing / overwrite: `COPY` into a temporary staging table, then one
//!   `INSERT ... ON CONFLICT (key) DO NOTHING` / `DO UPDATE`; overwrite first saves the
//!   target rows it is about to replace with `CREATE TABLE ... AS`, under a lock that
//!   keeps writers out between the save and the update (readers are not blocked).
//! - replace: build the new table beside the old one under temporary names (the old
//!   one stays readable and writable meanwhile), then take the old one's lock only for
//!   the renames that swap them.
//!
//! A partitioned table is one table here: created with its whole tree, its rows
//! copied leaf by leaf (into the target's leaves, or into the staging or existing
//! table, which routes them), all in the same transaction (see
//! [`crate::migration::partition`]).

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use crate::migration::catalog::TableDef;
use crate::migration::conn::{Session, connect};
use crate::migration::copy::{self, CopiedTable, Dest, ReadBack, copy_rows, routed};
use crate::migration::ddl::{self, Names};
use crate::migration::mapping::{QualifiedTable, SourceTable};
use crate::migration::names::{
    choose_free, column_list, display_path, qualified, quote_ident, quote_literal,
    renamed_dependent, with_suffix,
};
use crate::migration::partition;
use crate::migration::target::{self, TableAction, TargetTable, relation_names};
use crate::migration::{
    CommitCheck, MigrationError, MigrationTask, PartitionOutcome, ProgressEvent, Side,
    TableOutcome, journal,
};

/// Memory for building keys and indexes in the target: enough to sort a
/// multi-million-row key in memory instead of in temporary files.
const MAINTENANCE_WORK_MEM: &str = "256MB";

/// What one table's migration needs.
pub(crate) struct TableWork<'a> {
    pub table: &'a SourceTable,
    pub def: &'a TableDef,
    /// The definitions of the source database's selected tables and partitions, by
    /// oid: what each partition has of its own.
    pub defs: &'a HashMap<u32, TableDef>,
    /// Every target name the task maps a table or a kept-name partition to: derived
    /// partition names avoid them, so that no two tables of the task meet.
    pub reserved: &'a HashSet<QualifiedTable>,
    /// The snapshot exported by the source database's snapshot session.
    pub snapshot: &'a str,
    pub task: &'a MigrationTask,
    /// [`crate::migration::names::task_tag`] of the task id.
    pub tag: &'a str,
    pub progress: &'a (dyn Fn(ProgressEvent) + Send + Sync),
}

/// Migrates one table in one target transaction; reports it finished once committed.
pub(crate) async fn migrate_table(
    w: &TableWork<'_>,
    cancel: &CancellationToken,
) -> Result<TableOutcome, MigrationError> {
    if cancel.is_cancelled() {
        return Err(MigrationError::Cancelled);
    }
    let m = &w.table.mapping;
    let started = Instant::now();
    let wrap = |e: MigrationError| match e {
        MigrationError::Cancelled | MigrationError::Table { .. } => e,
        other => MigrationError::Table {
            table: m.label(),
            reason: other.to_string(),
            hint: other.hint(),
        },
    };
    let tgt = connect(&w.task.target, Side::Target, &m.target.database)
        .await
        .map_err(wrap)?;
    let src = connect(&w.task.source, Side::Source, &m.source.database)
        .await
        .map_err(wrap)?;
    let begin = format!(
        "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT {}",
        quote_literal(w.snapshot)
    );
    src.execute("importing the task's snapshot", &begin)
        .await
        .map_err(wrap)?;
    let begin = format!(
        "BEGIN; SET LOCAL maintenance_work_mem = '{MAINTENANCE_WORK_MEM}'; SET LOCAL lock_timeout = '60s'"
    );
    tgt.execute("starting the table's transaction", &begin)
        .await
        .map_err(wrap)?;
    let mut outcome = tokio::select! {
        biased;
        _ = cancel.cancelled() => {
            // The connections close when this returns, which rolls the target back;
            // the cancel requests stop a long index build at once.
            tgt.cancel_running().await;
            src.cancel_running().await;
            return Err(MigrationError::Cancelled);
        }
        r = apply(w, &src, &tgt) => r.map_err(wrap)?,
    };
    outcome.seconds = started.elapsed().as_secs_f64();
    journal::record(&tgt, &w.task.spec.task_id, &outcome)
        .await
        .map_err(wrap)?;
    tgt.execute("committing the table", "COMMIT")
        .await
        .map_err(wrap)?;
    let _ = src.execute("ending the snapshot", "ROLLBACK").await;
    (w.progress)(ProgressEvent::TableFinished {
        outcome: Box::new(outcome.clone()),
    });
    Ok(outcome)
}

async fn apply(
    w: &TableWork<'_>,
    src: &Session,
    tgt: &Session,
) -> Result<TableOutcome, MigrationError> {
    let m = &w.table.mapping;
    let spec = &w.task.spec;
    let name = (m.target.schema.clone(), m.target.table.clone());
    let existing = target::inspect(tgt, std::slice::from_ref(&name))
        .await?
        .remove(&name);
    let has_rows = match &existing {
        Some(_) if !spec.types.schema && spec.conflict == crate::migration::ConflictMode::Error => {
            target::has_rows(tgt, &name.0, &name.1).await?
        }
        _ => false,
    };
    let action = target::decide(spec.types, spec.conflict, existing.as_ref(), || has_rows)
        .map_err(|reason| MigrationError::Table {
            table: m.label(),
            reason: format!("{} {reason}", m.target),
            hint:
                "run the pre-check: it lists every conflict; choose another name or conflict mode"
                    .into(),
        })?;
    (w.progress)(ProgressEvent::TableStarted {
        key: m.key.clone(),
        action,
    });
    let mut out = TableOutcome {
        key: m.key.clone(),
        source: m.source.to_string(),
        target: m.target.to_string(),
        action,
        rows_copied: 0,
        bytes_copied: 0,
        rows_inserted: 0,
        rows_skipped: 0,
        rows_replaced: 0,
        rows_updated: 0,
        rows_deleted: 0,
        rows_only_in_target: 0,
        rows_untouched: 0,
        checked: None,
        kept_table: None,
        sequences_set: Vec::new(),
        seconds: 0.0,
        resumed: false,
        partitions: Vec::new(),
    };
    if let Some(t) = &existing {
        let problems = match action {
            TableAction::Append
            | TableAction::SkipExisting
            | TableAction::Overwrite
            | TableAction::Repair => target::incompatibilities(w.def, t, action),
            _ => Vec::new(),
        };
        if !problems.is_empty() {
            return Err(MigrationError::Table {
                table: m.label(),
                reason: problems.join("; "),
                hint: "make the target table's columns and key match the source's, or use --conflict replace".into(),
            });
        }
    }
    match (action, existing) {
        (TableAction::Create, _) => create(w, src, tgt, &mut out).await?,
        (TableAction::Append, Some(t)) => append(w, src, tgt, &t, &mut out).await?,
        (TableAction::SkipExisting | TableAction::Overwrite, Some(t)) => {
            merge(w, src, tgt, &t, &mut out).await?
        }
        (TableAction::Replace, Some(t)) => replace(w, src, tgt, &t, &mut out).await?,
        (TableAction::Repair, Some(t)) => {
            crate::migration::repair::repair(w, src, tgt, &t, &mut out).await?;
            out.sequences_set = set_sequences(w, src, tgt, None).await?;
        }
        _ => {}
    }
    Ok(out)
}

/// Creates the table under its mapped name and fills it.
async fn create(
    w: &TableWork<'_>,
    src: &Session,
    tgt: &Session,
    out: &mut TableOutcome,
) -> Result<(), MigrationError> {
    let m = &w.table.mapping;
    let schema = &m.target.schema;
    let mut taken = relation_names(tgt, schema).await?;
    taken.remove(&m.target.table);
    // The task's other target names (this table's own included: no partition may
    // take it).
    taken.extend(
        w.reserved
            .iter()
            .filter(|r| r.database == m.target.database && r.schema == *schema)
            .map(|r| r.table.clone()),
    );
    // Partitions first: the table's index and sequence names then avoid theirs.
    let partitions = partition::choose_names(&w.table.partitions, &mut taken);
    let names = Names::derive(w.def, &m.source.table, &m.target.table, &mut taken);
    build(w, src, tgt, &names, &partitions, out).await?;
    out.sequences_set = set_sequences(w, src, tgt, Some(&names)).await?;
    Ok(())
}

/// Creates the table (and its partitions, named `partitions`) as `names` says, copies
/// the rows, then builds the rest.
async fn build(
    w: &TableWork<'_>,
    src: &Session,
    tgt: &Session,
    names: &Names,
    partitions: &[QualifiedTable],
    out: &mut TableOutcome,
) -> Result<(), MigrationError> {
    let schema = &w.table.mapping.target.schema;
    for sql in ddl::create_table(w.def, schema, names) {
        tgt.execute("creating the table", &sql).await?;
    }
    let parts = &w.table.partitions;
    for sql in partition::create_partitions(parts, partitions, (schema, &names.table)) {
        tgt.execute("creating a partition", &sql).await?;
    }
    out.partitions = parts
        .iter()
        .zip(partitions)
        .map(|(p, n)| PartitionOutcome {
            source: p.source.to_string(),
            target: n.to_string(),
            rows_copied: 0,
        })
        .collect();
    if w.task.spec.types.data {
        let dest = if w.table.partitioned {
            Dest::Leaves(partitions)
        } else {
            Dest::One(schema, &names.table)
        };
        let copied = copy_rows(w, src, tgt, dest, true, w.task.spec.verify).await?;
        out.rows_copied = copied.total.rows;
        out.bytes_copied = copied.total.bytes;
        out.rows_inserted = copied.total.rows;
        for (i, rows) in &copied.leaves {
            if let Some(p) = out.partitions.get_mut(*i) {
                p.rows_copied = *rows;
            }
        }
        if let Some((digest, statements)) = &copied.digest {
            (w.progress)(ProgressEvent::TableChecking {
                key: w.table.mapping.key.clone(),
            });
            let back = copy::read_back(tgt, statements, w.def.binary_copy()).await?;
            out.checked = Some(read_back_check(w, &copied, *digest, &back));
        }
    }
    (w.progress)(ProgressEvent::TableBuilding {
        key: w.table.mapping.key.clone(),
    });
    // On a partitioned table these propagate to every partition.
    for sql in ddl::finish_table(w.def, schema, names) {
        tgt.execute("building keys, constraints and indexes", &sql)
            .await?;
    }
    partition::finish_partitions(tgt, parts, partitions, w.defs).await?;
    Ok(())
}

/// What reading a created table back found.
fn read_back_check(
    w: &TableWork<'_>,
    copied: &CopiedTable,
    digest: [u8; 32],
    back: &ReadBack,
) -> CommitCheck {
    let m = &w.table.mapping;
    let rows = copied.total.rows;
    let generated = if w.def.copied_columns().len() < w.def.columns.len() {
        " (generated columns are computed by the target from them)"
    } else {
        ""
    };
    let passed = back.digest == digest && back.rows == rows;
    let detail = if passed {
        format!(
            "{rows} rows in source {}, {rows} in target {}: read back before the commit, the target's rows are the rows read from the source's snapshot, every copied column byte for byte{generated} (SHA-256 of both COPY streams)",
            m.source, m.target
        )
    } else {
        format!(
            "read back before the commit, the target's rows ({} rows) are not byte for byte the {rows} rows read from the source's snapshot, in the same order; compared row by row after the commit",
            back.rows
        )
    };
    CommitCheck {
        source_rows: rows,
        target_rows: back.rows,
        passed,
        detail,
    }
}

/// Copies the rows straight into an existing empty table.
async fn append(
    w: &TableWork<'_>,
    src: &Session,
    tgt: &Session,
    _existing: &TargetTable,
    out: &mut TableOutcome,
) -> Result<(), MigrationError> {
    let m = &w.table.mapping;
    let copied = copy_rows(
        w,
        src,
        tgt,
        Dest::One(&m.target.schema, &m.target.table),
        false,
        false,
    )
    .await?;
    out.rows_copied = copied.total.rows;
    out.bytes_copied = copied.total.bytes;
    out.rows_inserted = copied.total.rows;
    out.partitions = routed(w, &copied);
    out.sequences_set = set_sequences(w, src, tgt, None).await?;
    Ok(())
}

/// skip-existing and overwrite: stage the rows, then merge them by the target's key.
async fn merge(
    w: &TableWork<'_>,
    src: &Session,
    tgt: &Session,
    existing: &TargetTable,
    out: &mut TableOutcome,
) -> Result<(), MigrationError> {
    let m = &w.table.mapping;
    let table = qualified(&m.target.schema, &m.target.table);
    let columns = w.def.copied_columns();
    let cols = column_list(&columns);
    create_staging(tgt, &table, &cols).await?;
    let copied = copy_rows(w, src, tgt, Dest::One("pg_temp", "lb_stage"), true, false).await?;
    out.rows_copied = copied.total.rows;
    out.bytes_copied = copied.total.bytes;
    out.partitions = routed(w, &copied);
    let copied = copied.total;
    tgt.execute("analyzing the staging table", "ANALYZE pg_temp.lb_stage")
        .await?;
    (w.progress)(ProgressEvent::TableBuilding { key: m.key.clone() });
    let key = column_list(&existing.key);
    let overriding = overriding(existing, &columns);
    let insert = format!(
        "INSERT INTO {table} ({cols}){overriding} SELECT {cols} FROM pg_temp.lb_stage ON CONFLICT ({key})"
    );
    if out.action == TableAction::SkipExisting {
        out.rows_inserted = tgt
            .count(
                "inserting the missing rows",
                &format!("{insert} DO NOTHING"),
                &[],
            )
            .await?;
        out.rows_skipped = copied.rows.saturating_sub(out.rows_inserted);
    } else {
        // Writers wait from here to the commit, so the saved rows are exactly the
        // ones the update replaces.
        tgt.execute(
            "locking the target table against writes",
            &format!("LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE"),
        )
        .await?;
        // The table's own rows: an inheritance parent's children keep theirs.
        let only = if existing.relkind == 'p' { "" } else { "ONLY " };
        let (saved, replaced) = save_staged_matches(
            w,
            tgt,
            &format!("{only}{table}"),
            &existing.key,
            "_overwritten_",
            "replaced by the source's (conflict mode overwrite)",
        )
        .await?;
        out.rows_replaced = replaced;
        let updates: Vec<String> = columns
            .iter()
            .filter(|c| !existing.key.contains(c))
            .map(|c| format!("{0} = EXCLUDED.{0}", quote_ident(c)))
            .collect();
        let sql = if updates.is_empty() {
            format!("{insert} DO NOTHING")
        } else {
            format!("{insert} DO UPDATE SET {}", updates.join(", "))
        };
        let written = tgt.count("overwriting the rows", &sql, &[]).await?;
        out.rows_inserted = written.saturating_sub(out.rows_replaced);
        out.kept_table = Some(display_path(&[&m.target.schema, &saved]));
    }
    out.sequences_set = set_sequences(w, src, tgt, None).await?;
    Ok(())
}

/// Creates `pg_temp.lb_stage` for rows on their way into `table`: only the copied
/// columns `cols`, with the target's types; no constraints, so rows are checked once,
/// when they reach the real table. Dropped at commit.
pub(crate) async fn create_staging(
    tgt: &Session,
    table: &str,
    cols: &str,
) -> Result<(), MigrationError> {
    tgt.execute(
        "creating the staging table",
        &format!(
            "CREATE TEMP TABLE lb_stage ON COMMIT DROP AS SELECT {cols} FROM {table} WITH NO DATA"
        ),
    )
    .await
}

/// ` OVERRIDING SYSTEM VALUE` when one of `columns` is an identity column of the
/// target that is always generated, so that the source's values go in as they are.
pub(crate) fn overriding(existing: &TargetTable, columns: &[String]) -> &'static str {
    if existing
        .columns
        .iter()
        .any(|c| c.identity == Some('a') && columns.contains(&c.name))
    {
        " OVERRIDING SYSTEM VALUE"
    } else {
        ""
    }
}

/// `s.k1 = t.k1 AND s.k2 = t.k2`: a staged row `s` and a target row `t` with the same key.
pub(crate) fn key_matches(key: &[String]) -> String {
    key.iter()
        .map(|k| format!("s.{0} = t.{0}", quote_ident(k)))
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// Saves the rows of `from` (the target table, `ONLY` or not) whose key is staged in
/// `pg_temp.lb_stage` into a new table of the target schema named after the table,
/// `suffix` and the task (a free name), with a comment saying the rows were `why`.
/// Returns the new table's name and the rows saved.
pub(crate) async fn save_staged_matches(
    w: &TableWork<'_>,
    tgt: &Session,
    from: &str,
    key: &[String],
    suffix: &str,
    why: &str,
) -> Result<(String, u64), MigrationError> {
    let m = &w.table.mapping;
    let mut taken = relation_names(tgt, &m.target.schema).await?;
    let saved = choose_free(
        &with_suffix(&m.target.table, &format!("{suffix}{}", w.tag)),
        &mut taken,
    );
    let saved_sql = qualified(&m.target.schema, &saved);
    let rows = tgt
        .count(
            "saving the rows about to change",
            &format!(
                "CREATE TABLE {saved_sql} AS SELECT t.* FROM {from} t WHERE EXISTS (SELECT 1 FROM pg_temp.lb_stage s WHERE {})",
                key_matches(key)
            ),
            &[],
        )
        .await?;
    let note = format!(
        "Lifeboat migration task {}: rows of {} {why}",
        w.task.spec.task_id, m.target
    );
    tgt.execute(
        "commenting the saved rows' table",
        &format!("COMMENT ON TABLE {saved_sql} IS {}", quote_literal(&note)),
    )
    .await?;
    Ok((saved, rows))
}

/// Builds the source's table beside the one in the target under temporary names
/// (its partitions too), then, under an `ACCESS EXCLUSIVE` lock on the old table,
/// moves every relation of the old one aside (the table, its partitions at every
/// level, their indexes, its sequences: `_replaced_<tag>` added) and gives the new
/// ones their final names. Either side may be partitioned.
async fn replace(
    w: &TableWork<'_>,
    src: &Session,
    tgt: &Session,
    existing: &TargetTable,
    out: &mut TableOutcome,
) -> Result<(), MigrationError> {
    let m = &w.table.mapping;
    let schema = &m.target.schema;
    let mut taken: HashMap<String, HashSet<String>> = HashMap::new();
    taken.insert(schema.clone(), relation_names(tgt, schema).await?);
    let temporary = Names::temporary(
        w.def,
        w.tag,
        (&m.source.table, &m.target.table),
        in_schema(tgt, &mut taken, schema).await?,
    );
    let mut temporary_parts = Vec::new();
    for (i, p) in w.table.partitions.iter().enumerate() {
        let free = in_schema(tgt, &mut taken, &p.target.schema).await?;
        temporary_parts.push(QualifiedTable {
            table: choose_free(&format!("lb_{}_p{}", w.tag, i + 1), free),
            ..p.target.clone()
        });
    }
    build(w, src, tgt, &temporary, &temporary_parts, out).await?;
    let old = qualified(schema, &m.target.table);
    tgt.execute(
        "locking the table being replaced",
        &format!("LOCK TABLE {old} IN ACCESS EXCLUSIVE MODE"),
    )
    .await?;
    // Names as they are now, the new table's included.
    let mut taken: HashMap<String, HashSet<String>> = HashMap::new();
    let suffix = format!("_replaced_{}", w.tag);
    let rename = |kind: &str, schema: &str, from: &str, to: &str| {
        format!(
            "ALTER {kind} {} RENAME TO {}",
            qualified(schema, from),
            quote_ident(to)
        )
    };
    let mut renames = Vec::new();
    let mut kept = None;
    // The old table comes first: its new name is the one the report gives.
    for (kind, s, name) in target::tree_relations(tgt, existing.oid).await? {
        let free = in_schema(tgt, &mut taken, &s).await?;
        let new = choose_free(&with_suffix(&name, &suffix), free);
        free.remove(&name);
        kept.get_or_insert_with(|| display_path(&[&s, &new]));
        renames.push(rename(kind, &s, &name, &new));
    }
    // The task's other target names, as when a table is created: no partition may
    // take them.
    in_schema(tgt, &mut taken, schema).await?.extend(
        w.reserved
            .iter()
            .filter(|r| r.database == m.target.database && r.schema == *schema)
            .map(|r| r.table.clone()),
    );
    // Partitions first: the table's index and sequence names then avoid theirs.
    let finals_parts = partition::choose_names(
        &w.table.partitions,
        in_schema(tgt, &mut taken, schema).await?,
    );
    let finals = Names::derive(
        w.def,
        &m.source.table,
        &m.target.table,
        in_schema(tgt, &mut taken, schema).await?,
    );
    renames.push(rename("TABLE", schema, &temporary.table, &finals.table));
    for (a, b) in temporary.sequences.iter().zip(&finals.sequences) {
        renames.push(rename("SEQUENCE", schema, a, b));
    }
    for ((a, b), c) in temporary
        .constraints
        .iter()
        .zip(&finals.constraints)
        .zip(&w.def.constraints)
    {
        if c.has_index() {
            renames.push(rename("INDEX", schema, a, b));
        }
    }
    for (a, b) in temporary.indexes.iter().zip(&finals.indexes) {
        renames.push(rename("INDEX", schema, a, b));
    }
    for (a, b) in temporary_parts.iter().zip(&finals_parts) {
        renames.push(rename("TABLE", &a.schema, &a.table, &b.table));
    }
    for sql in renames {
        tgt.execute("swapping the new table in", &sql).await?;
    }
    // The indexes and constraints named after the temporary names (by PostgreSQL,
    // or from a partition's own) follow the final ones; renaming the table's own
    // constraints renames the copies its partitions inherited.
    let root = (
        QualifiedTable {
            table: temporary.table.clone(),
            ..m.target.clone()
        },
        QualifiedTable {
            table: finals.table.clone(),
            ..m.target.clone()
        },
    );
    let pairs =
        std::iter::once((&root.0, &root.1)).chain(temporary_parts.iter().zip(&finals_parts));
    for (a, b) in pairs {
        let table = qualified(&b.schema, &b.table);
        // (is an index, name); the table's own indexes have their final names already.
        let rows = tgt
            .query(
                "listing a table's constraints and indexes",
                "SELECT false, conname::text FROM pg_constraint \
                 WHERE conrelid = $1::text::regclass AND contype IN ('c', 'n') AND coninhcount = 0 \
                 UNION ALL SELECT true, c.relname::text FROM pg_index i \
                 JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = $1::text::regclass \
                 ORDER BY 1, 2",
                &[&table],
            )
            .await?;
        for r in rows {
            let (index, name): (bool, String) = (r.get(0), r.get(1));
            if !name.starts_with(&a.table) {
                continue;
            }
            let wanted = renamed_dependent(&name, &a.table, &b.table);
            let sql = if index {
                let new = choose_free(&wanted, in_schema(tgt, &mut taken, &b.schema).await?);
                rename("INDEX", &b.schema, &name, &new)
            } else {
                format!(
                    "ALTER TABLE {table} RENAME CONSTRAINT {} TO {}",
                    quote_ident(&name),
                    quote_ident(&wanted)
                )
            };
            tgt.execute("naming what follows the temporary names", &sql)
                .await?;
        }
    }
    for (p, name) in out.partitions.iter_mut().zip(&finals_parts) {
        p.target = name.to_string();
    }
    out.kept_table = kept;
    out.sequences_set = set_sequences(w, src, tgt, Some(&finals)).await?;
    Ok(())
}

/// The relation names of `schema` in `taken`, read from the target the first time.
async fn in_schema<'a>(
    tgt: &Session,
    taken: &'a mut HashMap<String, HashSet<String>>,
    schema: &str,
) -> Result<&'a mut HashSet<String>, MigrationError> {
    if !taken.contains_key(schema) {
        let names = relation_names(tgt, schema).await?;
        taken.insert(schema.to_string(), names);
    }
    taken
        .get_mut(schema)
        .ok_or_else(|| MigrationError::InvalidSpec(format!("schema {schema} vanished")))
}

/// Sets the target's sequences of the table's columns to the source's values. With
/// `names` (a table the task built) each takes the source's value exactly; otherwise
/// (rows merged into an existing table) a sequence only moves forward, because the
/// target may have handed out higher values to its own new rows since.
async fn set_sequences(
    w: &TableWork<'_>,
    src: &Session,
    tgt: &Session,
    names: Option<&Names>,
) -> Result<Vec<String>, MigrationError> {
    let m = &w.table.mapping;
    let mut set = Vec::new();
    for (i, seq) in w.def.sequences.iter().enumerate() {
        let value: Option<i64> = src
            .query_one(
                "reading a sequence",
                "SELECT pg_sequence_last_value($1::text::regclass)",
                &[&qualified(&seq.schema, &seq.name)],
            )
            .await?
            .get(0);
        let Some(value) = value else { continue };
        let target_seq: Option<String> = match names {
            Some(n) => n.sequences.get(i).map(|s| qualified(&m.target.schema, s)),
            None => tgt
                .query_one(
                    "finding the column's sequence",
                    "SELECT pg_get_serial_sequence($1, $2)",
                    &[&qualified(&m.target.schema, &m.target.table), &seq.column],
                )
                .await?
                .get(0),
        };
        let Some(target_seq) = target_seq else {
            continue;
        };
        let sql = if names.is_some() {
            "SELECT setval($1::text::regclass, $2, true)"
        } else {
            "SELECT setval($1::text::regclass, $2, true) \
             WHERE coalesce(pg_sequence_last_value($1::text::regclass) < $2, true)"
        };
        let changed = tgt
            .query("setting a sequence", sql, &[&target_seq, &value])
            .await?;
        if !changed.is_empty() {
            set.push(target_seq);
        }
    }
    Ok(set)
}
