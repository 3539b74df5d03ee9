//! The pre-check of a task: the library's items plus the server's own (the whitelist,
//! both instances running), and the fingerprint that lets `start` tell whether a passed
//! pre-check still holds.

use chrono::Utc;
use lifeboat_domain::{InstanceKind, InstanceStatus, TaskState};
use lifeboat_migrate::migration::{self, PrecheckContext, PrecheckItem, PrecheckStatus};

use super::access::{task_of, whitelisted};
use super::task::{TaskRecord, endpoint_instance, load, save, types_names};
use crate::control::registry::cluster_of;
use crate::control::{Error, Result, Shared};

/// Everything the pre-check looked at, so `start` can tell whether it still holds.
pub fn fingerprint(doc: &TaskRecord, whitelisted: bool) -> String {
    format!(
        "{}|{}|{}|{}|{}|{:?}|{}|{}|{}",
        doc.source.instance,
        doc.source.account,
        doc.target.instance,
        doc.target.account,
        doc.conflict,
        doc.objects,
        types_names(doc.types).join(","),
        doc.authorized,
        whitelisted
    )
}

/// The fingerprint of the task as it is now.
pub fn current_fingerprint(state: &Shared, doc: &TaskRecord) -> String {
    fingerprint(doc, whitelisted(state, doc))
}

/// Runs the pre-check and records its items; the task passes when none failed.
pub async fn precheck(state: &Shared, task: &str) -> Result<TaskRecord> {
    let mut doc = load(state, task)?;
    if doc.state.busy() {
        return Err(Error::invalid_state(
            format!("task {} is {}", doc.id, doc.state),
            "wait for it to end",
        ));
    }
    if doc.state == TaskState::Completed {
        return Err(Error::invalid_state(
            format!("task {} has completed", doc.id),
            "create a new task to migrate again",
        ));
    }
    doc.state = TaskState::Prechecking;
    save(state, &doc)?;
    let items = run_items(state, &doc).await;
    let passed = items.iter().all(|i| i.status != PrecheckStatus::Failed);
    doc.precheck = items;
    doc.state = if passed {
        TaskState::PrecheckPassed
    } else {
        TaskState::PrecheckFailed
    };
    doc.precheck_fingerprint = passed.then(|| current_fingerprint(state, &doc));
    save(state, &doc)?;
    Ok(doc)
}

async fn run_items(state: &Shared, doc: &TaskRecord) -> Vec<PrecheckItem> {
    let whitelist = PrecheckItem::whitelist(
        whitelisted(state, doc),
        &doc.worker_address,
        &[&doc.source.instance, &doc.target.instance],
    );
    let task = match task_of(state, doc) {
        Ok(t) => t,
        Err(e) => {
            return vec![whitelist, PrecheckItem::failed("task", e.message, e.hint)];
        }
    };
    let src = endpoint_instance(state, &doc.source, "source").ok();
    let dst = endpoint_instance(state, &doc.target, "target").ok();
    let mut items = Vec::new();
    for (rec, which) in [(&src, "source"), (&dst, "target")] {
        if let Some(r) = rec
            && r.status != InstanceStatus::Running
        {
            items.push(PrecheckItem::failed(
                &format!("{which}_running"),
                format!("the {which} instance {} is {}", r.id, r.status),
                format!(
                    "start it (lifeboat instance start {}) and run the pre-check again",
                    r.id
                ),
            ));
        }
    }
    let ctx = PrecheckContext {
        target_data_directory: dst
            .as_ref()
            .and_then(|r| cluster_of(state, r).ok())
            .map(|c| c.data_dir()),
        source_time_left: src
            .as_ref()
            .filter(|r| r.kind == InstanceKind::Temporary)
            .and_then(|r| r.expires_at)
            .map(|at| (at - Utc::now()).to_std().unwrap_or_default()),
        whitelist: Some(whitelist),
    };
    let mut found = migration::precheck(&task, &ctx).await;
    found.extend(items);
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::migrations::task::sample;

    #[test]
    fn the_fingerprint_changes_with_what_the_precheck_looked_at() {
        let base = sample(TaskState::NotStarted);
        let f = fingerprint(&base, true);
        assert_eq!(f, fingerprint(&base.clone(), true), "stable");
        assert_ne!(f, fingerprint(&base, false), "whitelist entry removed");
        let changes: [fn(&mut TaskRecord); 6] = [
            |d| d.objects.push("shop.public.items".into()),
            |d| d.conflict = migration::ConflictMode::Overwrite,
            |d| d.types.schema = false,
            |d| d.authorized = false,
            |d| d.source.account = "other".into(),
            |d| d.target.instance = "pg-cccccc".into(),
        ];
        for change in changes {
            let mut d = base.clone();
            change(&mut d);
            assert_ne!(fingerprint(&d, true), f);
        }
        // What the pre-check does not look at leaves it alone.
        let mut d = base.clone();
        d.name = "renamed".into();
        d.error = Some("x".into());
        assert_eq!(fingerprint(&d, true), f);
    }
}
