//! Data migration tasks: the persisted state machine (`lifeboat_domain::TaskState`) around
//! `lifeboat_migrate::migration`.
//!
//! A task is one JSON document in the metadata store ([`task::TaskRecord`]), its
//! passwords sealed with the server's key; what leaves the control plane is its view
//! ([`TaskView`]), which has no field a secret could go in. `start` refuses unless the
//! last pre-check passed on the task as it is now (a fingerprint of everything the
//! pre-check looked at). While migrating, each finished table is recorded, so a server
//! restart resumes the task and skips them (the target's own journal guarantees each
//! table is whole or untouched). The whitelist entries a task adds for its worker are
//! removed when it ends or is deleted.
//!
//! # Layout
//! - [`task`]: the stored task, create and update, its view.
//! - [`access`]: authorizing the worker on both whitelists; the connections.
//! - [`mod@precheck`]: the pre-check and its fingerprint.
//! - [`runner`]: start, run, end, cancel, delete, resume.
//! - [`progress`]: progress events folded into the task's tables.

pub mod access;
pub mod precheck;
pub mod progress;
pub mod runner;
pub mod task;

use lifeboat_api::migrations::{CreateTask, TaskView, UpdateTask};

use super::workers::{self, Priority};
use super::{Result, Shared};

pub use runner::resume;
pub use task::default_name;

/// Records a new task (see [`task::create`]).
pub async fn create(state: &Shared, req: CreateTask) -> Result<TaskView> {
    Ok(task::create(state, req).await?.view())
}

/// The task named by id or name.
pub fn show(state: &Shared, task: &str) -> Result<TaskView> {
    Ok(task::load(state, task)?.view())
}

/// Every task, oldest first.
pub fn list(state: &Shared) -> Result<Vec<TaskView>> {
    Ok(task::list(state)?
        .iter()
        .map(task::TaskRecord::view)
        .collect())
}

/// Changes a task that has not started (see [`task::update`]).
pub fn update(state: &Shared, task: &str, req: UpdateTask) -> Result<TaskView> {
    Ok(task::update(state, task, req)?.view())
}

/// Adds the worker's address to both whitelists.
pub async fn authorize(state: &Shared, task: &str) -> Result<TaskView> {
    Ok(access::authorize(state, task).await?.view())
}

/// Logs in to both sides as the task's accounts; the error names the side that
/// refused (`"source"` or `"target"`).
pub async fn check_logins(
    state: &Shared,
    task: &str,
) -> std::result::Result<(), (&'static str, super::Error)> {
    let doc = task::load(state, task).map_err(|e| ("task", e))?;
    for which in ["source", "target"] {
        access::check_login(state, &doc, which)
            .await
            .map_err(|e| (which, e))?;
    }
    Ok(())
}

/// Runs the pre-check and waits for it. The pre-check's future is not `Send` (it holds
/// borrows across awaits), so it runs on a thread of its own.
pub async fn precheck(state: &Shared, task: &str) -> Result<TaskView> {
    let (worker, task) = (state.clone(), task.to_string());
    let doc = workers::on_thread("precheck", Priority::Normal, move || async move {
        precheck::precheck(&worker, &task).await
    })
    .await?;
    Ok(doc.view())
}

/// Starts a task whose pre-check passed.
pub async fn start(state: &Shared, task: &str) -> Result<TaskView> {
    Ok(runner::start(state, task).await?.view())
}

/// Asks a running task to stop.
pub fn cancel(state: &Shared, task: &str) -> Result<TaskView> {
    Ok(runner::cancel(state, task)?.view())
}

/// Deletes a task that is not running, with its whitelist entries.
pub async fn delete(state: &Shared, task: &str) -> Result<()> {
    runner::delete(state, task).await
}
