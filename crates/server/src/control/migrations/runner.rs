//! Running a task: start (only after a pre-check that still holds), the runner thread
//! and its progress, the end (report, whitelist entries removed), cancel, delete, and
//! resume after a restart.

use std::collections::HashSet;
use std::time::Duration;

use chrono::Utc;
use lifeboat_domain::TaskState;
use lifeboat_migrate::migration::{
    self, CancellationToken, MigrationReport, ProgressEvent, TableKey,
};

use super::access::{deauthorize, task_of};
use super::precheck::current_fingerprint;
use super::progress::apply_event;
use super::task::{TaskRecord, load, save};
use crate::control::workers::{self, Priority};
use crate::control::{Error, ErrorCode, Result, Shared};

/// How a run ended, before it is recorded.
enum Outcome {
    Report(Box<MigrationReport>),
    Cancelled,
    Failed(String),
}

/// Starts a task whose pre-check passed on the task as it is now.
pub async fn start(state: &Shared, task: &str) -> Result<TaskRecord> {
    let mut doc = load(state, task)?;
    if doc.state != TaskState::PrecheckPassed {
        return Err(Error::new(
            ErrorCode::PrecheckRequired,
            format!(
                "task {} is {}: it starts only after its pre-check passed",
                doc.id, doc.state
            ),
            format!(
                "run `lifeboat migration precheck {}`, fix what it reports, then start",
                doc.id
            ),
        ));
    }
    if doc.precheck_fingerprint.as_deref() != Some(current_fingerprint(state, &doc).as_str()) {
        doc.state = TaskState::NotStarted;
        save(state, &doc)?;
        return Err(Error::new(
            ErrorCode::PrecheckStale,
            format!(
                "task {} changed since its pre-check passed (whitelist or authorization)",
                doc.id
            ),
            format!("run `lifeboat migration precheck {}` again", doc.id),
        ));
    }
    doc.state = TaskState::Migrating;
    doc.started_at = Some(Utc::now());
    doc.error = None;
    save(state, &doc)?;
    spawn_runner(state, doc.id.clone());
    Ok(doc)
}

/// Runs (or resumes) a task in the background, on a thread of its own.
pub fn spawn_runner(state: &Shared, id: String) {
    let cancel = CancellationToken::new();
    state
        .migration_cancels
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(id.clone(), cancel.clone());
    let worker = state.clone();
    let task = id.clone();
    let spawned = workers::spawn_thread("migration", Priority::Normal, move || async move {
        run_task(&worker, &task, &cancel).await;
        worker
            .migration_cancels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&task);
    });
    if let Err(e) = spawned {
        tracing::error!(task = %id, error = %e.message, "cannot run a migration task");
    }
}

async fn run_task(state: &Shared, id: &str, cancel: &CancellationToken) {
    let Ok(doc) = load(state, id) else { return };
    let task = match task_of(state, &doc) {
        Ok(t) => t,
        Err(e) => {
            let nothing = MigrationReport::ended_early(id, Vec::new(), 0.0);
            return finish(state, id, Outcome::Failed(e.message), nothing).await;
        }
    };
    let finished: HashSet<TableKey> = doc
        .finished_tables
        .iter()
        .map(|k| TableKey(k.clone()))
        .collect();
    let progress_state = state.clone();
    let progress_id = id.to_string();
    let last_saved = std::sync::Mutex::new(std::time::Instant::now() - Duration::from_secs(10));
    // What each finished table did, for the report of a task that ends early.
    let done = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let done_here = done.clone();
    let started = std::time::Instant::now();
    let on_event = move |event: ProgressEvent| {
        if let ProgressEvent::TableFinished { outcome } = &event {
            done_here
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(outcome.as_ref().clone());
        }
        let Ok(mut doc) = load(&progress_state, &progress_id) else {
            return;
        };
        let important = apply_event(&mut doc, &event, Utc::now());
        let mut last = last_saved.lock().unwrap_or_else(|p| p.into_inner());
        if important || last.elapsed() >= Duration::from_millis(500) {
            *last = std::time::Instant::now();
            let _ = save(&progress_state, &doc);
        }
    };
    let outcome = match migration::run(&task, &finished, &on_event, cancel).await {
        Ok(report) => Outcome::Report(Box::new(report)),
        Err(_) if cancel.is_cancelled() => Outcome::Cancelled,
        Err(e) => Outcome::Failed(format!("{e}; hint: {}", e.hint())),
    };
    let partial = MigrationReport::ended_early(
        id,
        std::mem::take(&mut *done.lock().unwrap_or_else(|p| p.into_inner())),
        started.elapsed().as_secs_f64(),
    );
    finish(state, id, outcome, partial).await;
}

/// Records how a task ended; `partial` is the report of one that ended early (the
/// tables it finished).
async fn finish(state: &Shared, id: &str, outcome: Outcome, partial: MigrationReport) {
    let Ok(mut doc) = load(state, id) else { return };
    match outcome {
        Outcome::Report(report) => {
            doc.state = if report.verified() {
                TaskState::Completed
            } else {
                TaskState::Failed
            };
            if !report.verified() {
                doc.error = Some(
                    "the copied data does not match the source; see the verification in the report"
                        .into(),
                );
            }
            doc.report = serde_json::to_value(&report).ok();
        }
        Outcome::Cancelled => {
            doc.state = TaskState::Cancelled;
            doc.error = Some(
                "cancelled by the user; each table is either fully migrated or as it was".into(),
            );
            doc.report = serde_json::to_value(&partial).ok();
        }
        Outcome::Failed(e) => {
            doc.state = TaskState::Failed;
            doc.error = Some(e);
            doc.report = serde_json::to_value(&partial).ok();
        }
    }
    doc.finished_at = Some(Utc::now());
    deauthorize(state, &mut doc).await;
    if let Err(e) = save(state, &doc) {
        tracing::error!(task = id, error = %e.message, "cannot record the end of a migration task");
    }
    tracing::info!(task = id, state = %doc.state, "migration task ended");
}

/// Asks a running task to stop; it ends `cancelled`, each table whole or untouched.
pub fn cancel(state: &Shared, task: &str) -> Result<TaskRecord> {
    let doc = load(state, task)?;
    if doc.state != TaskState::Migrating {
        return Err(Error::invalid_state(
            format!("task {} is {}, not migrating", doc.id, doc.state),
            "only a running task can be cancelled",
        ));
    }
    if let Some(token) = state
        .migration_cancels
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&doc.id)
    {
        token.cancel();
    }
    Ok(doc)
}

/// Deletes a task that is not running, removing its whitelist entries.
pub async fn delete(state: &Shared, task: &str) -> Result<()> {
    let mut doc = load(state, task)?;
    if doc.state == TaskState::Migrating {
        return Err(Error::invalid_state(
            format!("task {} is migrating", doc.id),
            format!("cancel it first: lifeboat migration cancel {}", doc.id),
        ));
    }
    deauthorize(state, &mut doc).await;
    // Forget the task's journal entries in the target's databases; a target that is
    // gone or unreachable has nothing to forget or keeps a few harmless rows.
    if let Ok(task) = task_of(state, &doc) {
        let databases: Vec<String> = task
            .spec
            .objects
            .iter()
            .map(|o| o.database().to_string())
            .collect();
        let target = task.target.clone();
        let id = doc.id.clone();
        let forgotten = workers::on_thread("forget", Priority::Normal, move || async move {
            Ok(migration::forget(&target, &databases, &id).await)
        })
        .await;
        if !matches!(forgotten, Ok(Ok(()))) {
            tracing::warn!(task = %doc.id, "cannot remove the task's journal entries from the target");
        }
    }
    state.store.delete_task(&doc.id)?;
    Ok(())
}

/// At start: resume tasks that were migrating; a pre-check cut short starts over.
pub async fn resume(state: &Shared) {
    let Ok(tasks) = state.store.list_tasks() else {
        return;
    };
    for t in tasks {
        match t.state {
            TaskState::Migrating => {
                tracing::info!(task = %t.id, "resuming a migration task");
                spawn_runner(state, t.id.clone());
            }
            TaskState::Prechecking => {
                if let Ok(mut doc) = load(state, &t.id) {
                    doc.state = TaskState::NotStarted;
                    let _ = save(state, &doc);
                }
            }
            _ => {}
        }
    }
}
