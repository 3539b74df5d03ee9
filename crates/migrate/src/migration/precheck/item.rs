//! Pre-check items: each has a stable id, a name, a status, the detail of what was
//! found (naming the objects) and advice on what to do. Items are listed in a fixed
//! order ([`ITEMS`]) so that the console and CLI show them the same way every time.

use serde::{Deserialize, Serialize};

/// The outcome of one pre-check item (Lifeboat's vocabulary, shared with the API).
pub use lifeboat_domain::task::PrecheckStatus;

/// One named check of the pre-check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrecheckItem {
    pub id: String,
    pub name: String,
    pub status: PrecheckStatus,
    /// What was found, naming each object concerned.
    pub detail: String,
    /// What to do about it ("none needed" for a passed item).
    pub advice: String,
}

/// Every item id and its name, in display order. Items that do not apply to a task
/// (the time left of a source that is not temporary) are left out of its list.
pub const ITEMS: &[(&str, &str)] = &[
    (
        "source_connection",
        "Source connectivity and authentication",
    ),
    (
        "target_connection",
        "Target connectivity and authentication",
    ),
    (
        "whitelist",
        "Migration worker authorized on both whitelists",
    ),
    ("engine_version", "Engine versions compatible"),
    ("source_objects", "Selected objects exist on the source"),
    ("unsupported_objects", "Tables that cannot be migrated"),
    ("partitions", "Partitioned tables migrated whole"),
    ("object_names", "Mapped names valid"),
    (
        "source_privileges",
        "Source account can read every selected object",
    ),
    (
        "target_privileges",
        "Target account can create and write what the task needs",
    ),
    ("name_conflicts", "Name conflicts in the target"),
    ("table_keys", "Keys for merging and verification"),
    (
        "column_compatibility",
        "Columns and types match for merging",
    ),
    ("repair_preview", "What the repair will change"),
    ("target_types", "Types and collations exist in the target"),
    ("extensions", "Extensions the objects need"),
    (
        "schema_objects",
        "Views, functions, triggers, rules, policies and grants",
    ),
    ("foreign_keys", "Foreign keys to tables left out"),
    (
        "replaced_table_dependents",
        "Objects depending on replaced tables",
    ),
    ("target_disk_space", "Enough free disk on the target"),
    (
        "source_time_left",
        "Time left before the temporary source is released",
    ),
];

const NONE_NEEDED: &str = "none needed";

/// How many objects a detail names before it says "and N more".
pub(crate) const MAX_LISTED: usize = 20;

impl PrecheckItem {
    fn new(id: &str, status: PrecheckStatus, detail: String, advice: String) -> Self {
        let name = ITEMS
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, n)| n.to_string())
            .unwrap_or_else(|| id.to_string());
        Self {
            id: id.to_string(),
            name,
            status,
            detail,
            advice,
        }
    }

    pub fn passed(id: &str, detail: impl Into<String>) -> Self {
        Self::new(
            id,
            PrecheckStatus::Passed,
            detail.into(),
            NONE_NEEDED.into(),
        )
    }

    pub fn warning(id: &str, detail: impl Into<String>, advice: impl Into<String>) -> Self {
        Self::new(id, PrecheckStatus::Warning, detail.into(), advice.into())
    }

    pub fn failed(id: &str, detail: impl Into<String>, advice: impl Into<String>) -> Self {
        Self::new(id, PrecheckStatus::Failed, detail.into(), advice.into())
    }

    /// The whitelist item, which the server adds (this crate cannot see whitelists):
    /// `authorized` when the migration worker's address is on both instances'
    /// whitelists. Pass it in [`crate::migration::PrecheckContext::whitelist`].
    pub fn whitelist(authorized: bool, worker_address: &str, instances: &[&str]) -> Self {
        let list = instances.join(" and ");
        if authorized {
            Self::passed(
                "whitelist",
                format!("{worker_address} is on the whitelists of {list}"),
            )
        } else {
            Self::failed(
                "whitelist",
                format!(
                    "the migration worker's address {worker_address} is not on the whitelists of {list}"
                ),
                "authorize the task (lifeboat migration authorize TASK), then run the pre-check again",
            )
        }
    }

    /// An item that fails (or warns, when `fail` is false) listing `problems`, or
    /// passes with `ok` when there are none.
    pub(crate) fn from_problems(
        id: &str,
        problems: &[String],
        fail: bool,
        ok: impl Into<String>,
        advice: impl Into<String>,
    ) -> Self {
        if problems.is_empty() {
            return Self::passed(id, ok);
        }
        let detail = list(problems);
        if fail {
            Self::failed(id, detail, advice)
        } else {
            Self::warning(id, detail, advice)
        }
    }
}

/// `a; b; c` with at most [`MAX_LISTED`] entries.
pub(crate) fn list(entries: &[String]) -> String {
    let mut text = entries
        .iter()
        .take(MAX_LISTED)
        .cloned()
        .collect::<Vec<_>>()
        .join("; ");
    if entries.len() > MAX_LISTED {
        text.push_str(&format!("; and {} more", entries.len() - MAX_LISTED));
    }
    text
}

/// Orders items as [`ITEMS`] lists them (unknown ids, added by a caller, last).
pub(crate) fn sort(items: &mut [PrecheckItem]) {
    items.sort_by_key(|item| {
        ITEMS
            .iter()
            .position(|(id, _)| *id == item.id)
            .unwrap_or(ITEMS.len())
    });
}

/// True when no item failed: the task may start.
pub fn precheck_passed(items: &[PrecheckItem]) -> bool {
    items.iter().all(|i| i.status != PrecheckStatus::Failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lists_are_cut() {
        let entries: Vec<String> = (0..25).map(|i| format!("t{i}")).collect();
        let text = list(&entries);
        assert!(text.ends_with("t19; and 5 more"));
    }

    #[test]
    fn items_sort_in_display_order() {
        let mut items = vec![
            PrecheckItem::passed("target_disk_space", "x"),
            PrecheckItem::whitelist(false, "10.0.0.5", &["pg-1", "pg-2"]),
            PrecheckItem::passed("source_connection", "x"),
        ];
        sort(&mut items);
        let ids: Vec<&str> = items.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids, ["source_connection", "whitelist", "target_disk_space"]);
        assert!(!precheck_passed(&items));
        assert_eq!(
            items[1].name,
            "Migration worker authorized on both whitelists"
        );
    }
}
