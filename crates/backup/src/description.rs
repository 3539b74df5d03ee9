//! The repository's own description of each instance whose backups it holds, so that a
//! new Lifeboat server with nothing but the region's settings (and key) can tell what
//! the repository holds and restore from it when the host that wrote it is gone.
//!
//! `<instance id>/instance.json` is an object like any other (checksummed, compressed,
//! encrypted in an encrypted repository). It names the instance, its engine version,
//! its privileged account, the settings it ran with, the master it was restored from,
//! and its **owner**: the id of the Lifeboat server that writes its backups. A server
//! writes into an entry only when the entry is its own ([`claim`]); the backups, the
//! WAL and the accounts at any time (PostgreSQL's own `pg_authid`, in every base backup
//! and replayed from the WAL) are already in the repository.

use std::collections::BTreeMap;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::BackupError;
use crate::repository::{Durability, Repository};

pub const DESCRIPTION_FORMAT: u32 = 1;

/// The key of an instance's description.
pub fn description_key(instance: &str) -> String {
    format!("{instance}/instance.json")
}

/// What the repository says about one instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceDescription {
    pub format: u32,
    pub id: String,
    pub name: String,
    /// The PostgreSQL major it runs, e.g. `15`.
    pub engine_version: String,
    pub privileged_account: String,
    pub region: String,
    pub created_at: DateTime<Utc>,
    /// The id of the Lifeboat server that writes this entry.
    pub owner: String,
    /// The master whose backups it was restored from (a clone, a kept temporary
    /// instance).
    #[serde(default)]
    pub restored_from: Option<String>,
    /// The settings it ran with that are not PostgreSQL's defaults, by name.
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
    /// When its server deleted it (its backups stay until retention removes them).
    #[serde(default)]
    pub deleted_at: Option<DateTime<Utc>>,
    /// The superuser its restored copies are managed as, when it is not Lifeboat's own
    /// role: an adopted cluster's bootstrap superuser.
    #[serde(default)]
    pub management_role: Option<String>,
    pub updated_at: DateTime<Utc>,
}

impl InstanceDescription {
    /// Writes the description durably, replacing the one before.
    pub async fn store(&self, repo: &Repository) -> Result<(), BackupError> {
        let json = serde_json::to_vec_pretty(self)
            .map_err(|e| BackupError::Config(format!("cannot serialize a description: {e}")))?;
        let key = description_key(&self.id);
        let (stored, _) = repo.codec().encode(&key, &json, 3)?;
        repo.put(&key, Bytes::from(stored), Durability::Durable)
            .await
    }

    /// Reads and checks the description of `instance`; `None` when there is none
    /// (an entry written before descriptions existed, or no entry at all).
    pub async fn load(repo: &Repository, instance: &str) -> Result<Option<Self>, BackupError> {
        let key = description_key(instance);
        let stored = match repo.get(&key).await {
            Ok(b) => b,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        let (_, json) = repo.codec().decode(&key, &stored)?;
        serde_json::from_slice(&json)
            .map(Some)
            .map_err(|e| BackupError::corrupt(&key, format!("bad description: {e}")))
    }
}

/// Writes `desc` as the description of its instance, unless the entry belongs to
/// another server: then nothing is written and the error names the owner. The fields
/// a user cannot change (creation time, origin) are kept from the stored description.
pub async fn claim(repo: &Repository, desc: &InstanceDescription) -> Result<(), BackupError> {
    let mut new = desc.clone();
    if let Some(old) = InstanceDescription::load(repo, &desc.id).await? {
        if old.owner != desc.owner {
            return Err(BackupError::NotOwner {
                instance: desc.id.clone(),
                owner: old.owner,
                this: desc.owner.clone(),
            });
        }
        new.created_at = old.created_at;
        new.restored_from = old.restored_from.clone().or(new.restored_from);
        let unchanged = InstanceDescription {
            updated_at: old.updated_at,
            ..new.clone()
        };
        if unchanged == old {
            return Ok(());
        }
    }
    new.store(repo).await
}

/// Fails unless the entry of `instance` is `owner`'s or has no description yet.
pub async fn check_owner(
    repo: &Repository,
    instance: &str,
    owner: &str,
) -> Result<(), BackupError> {
    match InstanceDescription::load(repo, instance).await? {
        Some(d) if d.owner != owner => Err(BackupError::NotOwner {
            instance: instance.to_string(),
            owner: d.owner,
            this: owner.to_string(),
        }),
        _ => Ok(()),
    }
}

/// The instance ids the repository holds an entry for (a directory at its root that
/// holds a description, a backup or WAL), sorted.
pub async fn entries(repo: &Repository) -> Result<Vec<String>, BackupError> {
    let mut ids = Vec::new();
    for dir in repo.list_dirs("").await? {
        let kinds = repo.list_dirs(&dir).await?;
        let described = repo.head(&description_key(&dir)).await?.is_some();
        if described || kinds.iter().any(|k| k == "backups" || k == "wal") {
            ids.push(dir);
        }
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn described(id: &str, owner: &str) -> InstanceDescription {
        InstanceDescription {
            format: DESCRIPTION_FORMAT,
            id: id.into(),
            name: "shop".into(),
            engine_version: "15".into(),
            privileged_account: "admin".into(),
            region: "local".into(),
            created_at: Utc::now(),
            owner: owner.into(),
            restored_from: None,
            settings: BTreeMap::from([("max_connections".into(), "100".into())]),
            deleted_at: None,
            management_role: None,
            updated_at: Utc::now(),
        }
    }

    #[tokio::test]
    async fn an_entry_is_written_by_its_owner_only_and_listed() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::local(dir.path()).unwrap();
        let mine = described("pg-aaaaaa", "srv-one");
        claim(&repo, &mine).await.unwrap();
        let mut renamed = mine.clone();
        renamed.name = "shop2".into();
        renamed.created_at = Utc::now() + chrono::Duration::hours(1);
        claim(&repo, &renamed).await.unwrap();
        let stored = InstanceDescription::load(&repo, "pg-aaaaaa")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.name, "shop2");
        assert_eq!(stored.created_at, mine.created_at, "creation time is kept");

        let theirs = described("pg-aaaaaa", "srv-two");
        let err = claim(&repo, &theirs).await.unwrap_err();
        assert!(
            matches!(&err, BackupError::NotOwner { owner, .. } if owner == "srv-one"),
            "{err}"
        );
        assert!(check_owner(&repo, "pg-aaaaaa", "srv-two").await.is_err());
        check_owner(&repo, "pg-aaaaaa", "srv-one").await.unwrap();
        check_owner(&repo, "pg-bbbbbb", "srv-two").await.unwrap();
        assert_eq!(
            InstanceDescription::load(&repo, "pg-aaaaaa")
                .await
                .unwrap()
                .unwrap()
                .name,
            "shop2",
            "a refused claim writes nothing"
        );

        // An entry of an earlier version: WAL only, no description.
        repo.put(
            "pg-cccccc/wal/000000010000000000000001",
            Bytes::from_static(b"x"),
            Durability::Durable,
        )
        .await
        .unwrap();
        repo.put(
            "pg-dddddd/other",
            Bytes::from_static(b"x"),
            Durability::Durable,
        )
        .await
        .unwrap();
        assert_eq!(
            entries(&repo).await.unwrap(),
            vec!["pg-aaaaaa".to_string(), "pg-cccccc".to_string()]
        );
    }

    #[tokio::test]
    async fn verify_names_a_damaged_description() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::local(dir.path()).unwrap();
        claim(&repo, &described("pg-eeeeee", "srv-one"))
            .await
            .unwrap();
        let clean = crate::verify(&repo, "pg-eeeeee", 2).await.unwrap();
        assert!(clean.is_ok(), "{clean:?}");
        assert_eq!(clean.objects_checked, 1);
        let path = dir.path().join(description_key("pg-eeeeee"));
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x40;
        std::fs::write(&path, bytes).unwrap();
        let report = crate::verify(&repo, "pg-eeeeee", 2).await.unwrap();
        assert_eq!(report.problems.len(), 1, "{report:?}");
        assert_eq!(report.problems[0].object, "pg-eeeeee/instance.json");
        assert!(InstanceDescription::load(&repo, "pg-eeeeee").await.is_err());
    }
}
