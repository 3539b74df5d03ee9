//! Instance records, their accounts and whitelist entries.

use chrono::{DateTime, Utc};
use lifeboat_domain::{
    InstanceId, InstanceKind, InstanceStatus, NetworkType, RestoreTarget, StateMachine,
    TemporaryProgress, WhitelistEntry,
};
use rusqlite::{OptionalExtension, Row, params};

use crate::{Store, StoreError};

/// One instance as the store knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceRecord {
    pub id: InstanceId,
    pub name: String,
    pub kind: InstanceKind,
    pub status: InstanceStatus,
    pub region: String,
    pub port: u16,
    pub engine_version: String,
    pub network_type: NetworkType,
    /// The master a temporary instance was restored from.
    pub master_id: Option<InstanceId>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    /// Why the instance is in its status, e.g. the error that failed its creation.
    pub status_detail: Option<String>,
    pub privileged_account: String,
    /// Set while a create is unfinished; see the schema.
    pub pending_verifier: Option<String>,
    /// The recovery target of a temporary instance.
    pub restore_target: Option<RestoreTarget>,
    /// How far the creation of a temporary instance got.
    pub progress: Option<TemporaryProgress>,
    /// The master whose backups a clone or a kept temporary instance was restored
    /// from (it may be known only from the backup repository).
    pub restored_from: Option<InstanceId>,
    /// The major a clone is upgraded to once restored.
    pub upgrade_to: Option<u32>,
    /// Set for an adopted instance: a cluster Lifeboat did not create and does not
    /// run.
    pub external: Option<External>,
    /// The superuser Lifeboat manages the cluster (or, for an adopted one, its
    /// restored copies) as; Lifeboat's own role when `None`.
    pub management_role: Option<String>,
}

/// Where an adopted instance's cluster is and how Lifeboat logs in to it (as
/// `privileged_account`).
#[derive(Debug, Clone, PartialEq)]
pub struct External {
    pub host: String,
    /// The account's password, sealed by the server (never stored in clear).
    pub sealed_password: String,
}

/// What a new instance starts with.
#[derive(Debug, Clone)]
pub struct NewInstance {
    pub id: InstanceId,
    pub name: String,
    pub kind: InstanceKind,
    pub region: String,
    pub port: u16,
    pub engine_version: String,
    pub master_id: Option<InstanceId>,
    pub expires_at: Option<DateTime<Utc>>,
    pub privileged_account: String,
    pub pending_verifier: Option<String>,
    pub restore_target: Option<RestoreTarget>,
    /// See [`InstanceRecord::restored_from`].
    pub restored_from: Option<InstanceId>,
    /// See [`InstanceRecord::upgrade_to`].
    pub upgrade_to: Option<u32>,
    /// See [`InstanceRecord::external`].
    pub external: Option<External>,
    /// See [`InstanceRecord::management_role`].
    pub management_role: Option<String>,
    pub whitelist: Vec<WhitelistEntry>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AccountRecord {
    pub name: String,
    pub privileged: bool,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WhitelistRecord {
    pub entry: WhitelistEntry,
    pub added_by: String,
    pub created_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, name, kind, status, region, port, engine_version, network_type, \
     master_id, created_at, expires_at, status_detail, privileged_account, pending_verifier, \
     restore_target, progress, restored_from, upgrade_to, host, sealed_password, management_role";

fn now() -> String {
    Utc::now().to_rfc3339()
}

fn parse_time(s: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| StoreError::Corrupt(format!("bad timestamp '{s}'")))
}

fn json(value: &impl serde::Serialize) -> String {
    // Plain data types (enums, strings, numbers) always serialize.
    serde_json::to_string(value).unwrap_or_default()
}

fn corrupt(what: &str, value: &str) -> StoreError {
    StoreError::Corrupt(format!("bad {what} '{value}'"))
}

fn read_instance(row: &Row<'_>) -> rusqlite::Result<Result<InstanceRecord, StoreError>> {
    let id: String = row.get(0)?;
    let kind: String = row.get(2)?;
    let status: String = row.get(3)?;
    let network: String = row.get(7)?;
    let master: Option<String> = row.get(8)?;
    let created: String = row.get(9)?;
    let expires: Option<String> = row.get(10)?;
    let port: i64 = row.get(5)?;
    let (name, region, engine_version) = (row.get(1)?, row.get(4)?, row.get(6)?);
    let (status_detail, privileged_account, pending_verifier) =
        (row.get(11)?, row.get(12)?, row.get(13)?);
    let (restore_target, progress): (Option<String>, Option<String>) = (row.get(14)?, row.get(15)?);
    let restored_from: Option<String> = row.get(16)?;
    let upgrade_to: Option<u32> = row.get(17)?;
    let (host, sealed_password): (Option<String>, Option<String>) = (row.get(18)?, row.get(19)?);
    let management_role: Option<String> = row.get(20)?;
    Ok((|| {
        Ok(InstanceRecord {
            id: InstanceId::parse(&id).map_err(|_| corrupt("id", &id))?,
            name,
            kind: InstanceKind::from_db(&kind).ok_or_else(|| corrupt("kind", &kind))?,
            status: InstanceStatus::from_db(&status).ok_or_else(|| corrupt("status", &status))?,
            region,
            port: u16::try_from(port).map_err(|_| corrupt("port", &port.to_string()))?,
            engine_version,
            network_type: NetworkType::from_db(&network)
                .ok_or_else(|| corrupt("network type", &network))?,
            master_id: master
                .map(|m| InstanceId::parse(&m).map_err(|_| corrupt("master id", &m)))
                .transpose()?,
            created_at: parse_time(&created)?,
            expires_at: expires.as_deref().map(parse_time).transpose()?,
            status_detail,
            privileged_account,
            pending_verifier,
            restore_target: restore_target
                .map(|t| serde_json::from_str(&t).map_err(|_| corrupt("recovery target", &t)))
                .transpose()?,
            progress: progress
                .map(|p| serde_json::from_str(&p).map_err(|_| corrupt("progress", &p)))
                .transpose()?,
            restored_from: restored_from
                .map(|m| InstanceId::parse(&m).map_err(|_| corrupt("restored-from id", &m)))
                .transpose()?,
            upgrade_to,
            external: match (host, sealed_password) {
                (Some(host), Some(sealed_password)) => Some(External {
                    host,
                    sealed_password,
                }),
                (None, None) => None,
                _ => return Err(corrupt("adopted instance", &id)),
            },
            management_role,
        })
    })())
}

impl Store {
    /// Records a new instance in status `creating`, with its first whitelist entries.
    pub fn insert_instance(&self, new: &NewInstance) -> Result<InstanceRecord, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let inserted = tx.execute(
            &format!("INSERT INTO instances ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, NULL, ?12, ?13, ?14, NULL, ?15, ?16, ?17, ?18, ?19)"),
            params![
                new.id.as_str(),
                new.name,
                new.kind.as_str(),
                InstanceStatus::Creating.as_str(),
                new.region,
                new.port,
                new.engine_version,
                NetworkType::Classic.as_str(),
                new.master_id.as_ref().map(|m| m.as_str()),
                now(),
                new.expires_at.map(|t| t.to_rfc3339()),
                new.privileged_account,
                new.pending_verifier,
                new.restore_target.as_ref().map(json),
                new.restored_from.as_ref().map(|m| m.as_str()),
                new.upgrade_to,
                new.external.as_ref().map(|e| e.host.as_str()),
                new.external.as_ref().map(|e| e.sealed_password.as_str()),
                new.management_role,
            ],
        );
        if let Err(rusqlite::Error::SqliteFailure(e, Some(msg))) = &inserted
            && e.code == rusqlite::ErrorCode::ConstraintViolation
            && msg.contains("instances.name")
        {
            return Err(StoreError::DuplicateName(new.name.clone()));
        }
        inserted?;
        for entry in &new.whitelist {
            tx.execute(
                "INSERT INTO whitelist (instance_id, cidr, added_by, created_at) VALUES (?1, ?2, 'user', ?3)",
                params![new.id.as_str(), entry.to_string(), now()],
            )?;
        }
        tx.commit()?;
        drop(conn);
        self.instance(&new.id)
    }

    pub fn find_instance(&self, id: &InstanceId) -> Result<Option<InstanceRecord>, StoreError> {
        let conn = self.conn();
        let found = conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM instances WHERE id = ?1"),
                [id.as_str()],
                read_instance,
            )
            .optional()?;
        found.transpose()
    }

    pub fn instance(&self, id: &InstanceId) -> Result<InstanceRecord, StoreError> {
        self.find_instance(id)?
            .ok_or_else(|| StoreError::NotFound(format!("instance {id}")))
    }

    /// Instances, oldest first; released ones only when asked for.
    pub fn list_instances(
        &self,
        include_released: bool,
    ) -> Result<Vec<InstanceRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM instances WHERE ?1 OR status <> 'released' ORDER BY created_at, id"
        ))?;
        let rows = stmt.query_map([include_released], read_instance)?;
        rows.map(|r| r?).collect()
    }

    /// Moves an instance to `status`, when its current status allows it (see
    /// [`InstanceStatus`]'s transitions); the check and the write are one step.
    /// Makes the temporary instance `id` a master named `name`: it no longer expires
    /// and no longer counts as its master's temporary instance; it remembers the master
    /// it was restored from.
    pub fn keep_temporary(&self, id: &InstanceId, name: &str) -> Result<(), StoreError> {
        let changed = self.conn().execute(
            "UPDATE instances SET kind = ?2, name = ?3, restored_from = master_id, master_id = NULL, expires_at = NULL \
             WHERE id = ?1 AND kind = ?4",
            params![
                id.as_str(),
                InstanceKind::Master.as_str(),
                name,
                InstanceKind::Temporary.as_str()
            ],
        );
        match changed {
            Err(rusqlite::Error::SqliteFailure(e, Some(msg)))
                if e.code == rusqlite::ErrorCode::ConstraintViolation
                    && msg.contains("instances.name") =>
            {
                Err(StoreError::DuplicateName(name.to_string()))
            }
            Err(e) => Err(e.into()),
            Ok(0) => Err(StoreError::NotFound(format!("temporary instance {id}"))),
            Ok(_) => Ok(()),
        }
    }

    pub fn set_status(
        &self,
        id: &InstanceId,
        status: InstanceStatus,
        detail: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let current: Option<String> = tx
            .query_row(
                "SELECT status FROM instances WHERE id = ?1",
                [id.as_str()],
                |r| r.get(0),
            )
            .optional()?;
        let current = current.ok_or_else(|| StoreError::NotFound(format!("instance {id}")))?;
        let current =
            InstanceStatus::from_db(&current).ok_or_else(|| corrupt("status", &current))?;
        current.transition(status)?;
        tx.execute(
            "UPDATE instances SET status = ?2, status_detail = ?3 WHERE id = ?1",
            params![id.as_str(), status.as_str(), detail],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Sets a status whatever the current one is. Only for tests that stage the state
    /// a crash leaves behind; the server moves instances with [`Store::set_status`].
    pub fn force_status(
        &self,
        id: &InstanceId,
        status: InstanceStatus,
        detail: Option<&str>,
    ) -> Result<(), StoreError> {
        let n = self.conn().execute(
            "UPDATE instances SET status = ?2, status_detail = ?3 WHERE id = ?1",
            params![id.as_str(), status.as_str(), detail],
        )?;
        expect_one(n, id)
    }

    /// Changes where an adopted instance is and how Lifeboat logs in to it.
    pub fn set_external(
        &self,
        id: &InstanceId,
        external: &External,
        port: u16,
        account: &str,
    ) -> Result<(), StoreError> {
        let n = self.conn().execute(
            "UPDATE instances SET host = ?2, sealed_password = ?3, port = ?4, privileged_account = ?5 \
             WHERE id = ?1 AND host IS NOT NULL",
            params![
                id.as_str(),
                external.host,
                external.sealed_password,
                port,
                account
            ],
        )?;
        expect_one(n, id)
    }

    pub fn set_port(&self, id: &InstanceId, port: u16) -> Result<(), StoreError> {
        let n = self.conn().execute(
            "UPDATE instances SET port = ?2 WHERE id = ?1",
            params![id.as_str(), port],
        )?;
        expect_one(n, id)
    }

    pub fn set_engine_version(&self, id: &InstanceId, version: &str) -> Result<(), StoreError> {
        let n = self.conn().execute(
            "UPDATE instances SET engine_version = ?2 WHERE id = ?1",
            params![id.as_str(), version],
        )?;
        expect_one(n, id)
    }

    /// The newest temporary instance of `master`, whatever its status.
    pub fn latest_temporary(
        &self,
        master: &InstanceId,
    ) -> Result<Option<InstanceRecord>, StoreError> {
        let conn = self.conn();
        let found = conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM instances WHERE master_id = ?1 ORDER BY created_at DESC, rowid DESC LIMIT 1"),
                [master.as_str()],
                read_instance,
            )
            .optional()?;
        found.transpose()
    }

    /// Records how far the creation of a temporary instance got.
    pub fn set_progress(
        &self,
        id: &InstanceId,
        progress: &TemporaryProgress,
    ) -> Result<(), StoreError> {
        let n = self.conn().execute(
            "UPDATE instances SET progress = ?2 WHERE id = ?1",
            params![id.as_str(), json(progress)],
        )?;
        expect_one(n, id)
    }

    /// Forgets the SCRAM verifier kept for an unfinished create.
    pub fn clear_pending_verifier(&self, id: &InstanceId) -> Result<(), StoreError> {
        let n = self.conn().execute(
            "UPDATE instances SET pending_verifier = NULL WHERE id = ?1",
            [id.as_str()],
        )?;
        expect_one(n, id)
    }

    /// Removes the record with its accounts and whitelist entries, and the records of
    /// its released or failed temporary instances (kept until now as history).
    pub fn delete_instance(&self, id: &InstanceId) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "DELETE FROM instances WHERE master_id = ?1 AND status IN ('released', 'failed')",
            [id.as_str()],
        )?;
        let n = tx.execute("DELETE FROM instances WHERE id = ?1", [id.as_str()])?;
        tx.commit()?;
        expect_one(n, id)
    }

    /// Ports held by instances of `region` that still exist (a failed temporary
    /// instance has no cluster left and holds no port).
    pub fn used_ports(&self, region: &str) -> Result<Vec<u16>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT port FROM instances WHERE region = ?1 AND status <> 'released' \
             AND NOT (kind = 'temporary' AND status = 'failed') AND host IS NULL",
        )?;
        let ports = stmt.query_map([region], |r| r.get::<_, i64>(0))?;
        Ok(ports
            .filter_map(|p| p.ok().and_then(|p| u16::try_from(p).ok()))
            .collect())
    }

    /// Temporary instances of `master` that exist: not released, and not failed (a
    /// failed one has nothing left but its record, kept to say why it failed).
    pub fn live_temporaries(&self, master: &InstanceId) -> Result<Vec<InstanceRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM instances WHERE master_id = ?1 AND status NOT IN ('released', 'failed') ORDER BY created_at"
        ))?;
        let rows = stmt.query_map([master.as_str()], read_instance)?;
        rows.map(|r| r?).collect()
    }

    pub fn add_account(
        &self,
        id: &InstanceId,
        name: &str,
        privileged: bool,
    ) -> Result<(), StoreError> {
        let result = self.conn().execute(
            "INSERT INTO accounts (instance_id, name, privileged, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![id.as_str(), name, privileged, now()],
        );
        match result {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Err(StoreError::Duplicate(format!("account '{name}' on {id}")))
            }
            other => other.map(|_| ()).map_err(Into::into),
        }
    }

    pub fn accounts(&self, id: &InstanceId) -> Result<Vec<AccountRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT name, privileged, created_at FROM accounts WHERE instance_id = ?1 ORDER BY privileged DESC, name",
        )?;
        let rows = stmt.query_map([id.as_str()], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, bool>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?;
        rows.map(|r| {
            let (name, privileged, created) = r?;
            Ok(AccountRecord {
                name,
                privileged,
                created_at: parse_time(&created)?,
            })
        })
        .collect()
    }

    pub fn add_whitelist(
        &self,
        id: &InstanceId,
        entry: &WhitelistEntry,
        added_by: &str,
    ) -> Result<(), StoreError> {
        let result = self.conn().execute(
            "INSERT INTO whitelist (instance_id, cidr, added_by, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![id.as_str(), entry.to_string(), added_by, now()],
        );
        match result {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Err(StoreError::Duplicate(format!(
                    "whitelist entry {entry} on {id}"
                )))
            }
            other => other.map(|_| ()).map_err(Into::into),
        }
    }

    pub fn remove_whitelist(
        &self,
        id: &InstanceId,
        entry: &WhitelistEntry,
    ) -> Result<(), StoreError> {
        let n = self.conn().execute(
            "DELETE FROM whitelist WHERE instance_id = ?1 AND cidr = ?2",
            params![id.as_str(), entry.to_string()],
        )?;
        if n == 0 {
            return Err(StoreError::NotFound(format!(
                "whitelist entry {entry} on {id}"
            )));
        }
        Ok(())
    }

    pub fn whitelist(&self, id: &InstanceId) -> Result<Vec<WhitelistRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT cidr, added_by, created_at FROM whitelist WHERE instance_id = ?1 ORDER BY created_at, cidr",
        )?;
        let rows = stmt.query_map([id.as_str()], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?;
        rows.map(|r| {
            let (cidr, added_by, created) = r?;
            Ok(WhitelistRecord {
                entry: WhitelistEntry::parse(&cidr)
                    .map_err(|_| corrupt("whitelist entry", &cidr))?,
                added_by,
                created_at: parse_time(&created)?,
            })
        })
        .collect()
    }
}

fn expect_one(n: usize, id: &InstanceId) -> Result<(), StoreError> {
    if n == 0 {
        Err(StoreError::NotFound(format!("instance {id}")))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(name: &str, port: u16) -> NewInstance {
        NewInstance {
            id: InstanceId::generate(),
            name: name.into(),
            kind: InstanceKind::Master,
            region: "local".into(),
            port,
            engine_version: "15.18".into(),
            master_id: None,
            expires_at: None,
            privileged_account: "admin".into(),
            pending_verifier: Some("SCRAM-SHA-256$x".into()),
            restore_target: None,
            restored_from: None,
            upgrade_to: None,
            management_role: None,
            external: None,
            whitelist: vec![WhitelistEntry::localhost()],
        }
    }

    #[test]
    fn instance_lifecycle() {
        let store = Store::in_memory().unwrap();
        let rec = store.insert_instance(&new("shop", 15432)).unwrap();
        assert_eq!(rec.status, InstanceStatus::Creating);
        assert_eq!(store.used_ports("local").unwrap(), vec![15432]);
        assert_eq!(
            store.whitelist(&rec.id).unwrap()[0].entry,
            WhitelistEntry::localhost()
        );

        store
            .set_status(&rec.id, InstanceStatus::Running, None)
            .unwrap();
        store.clear_pending_verifier(&rec.id).unwrap();
        store.add_account(&rec.id, "admin", true).unwrap();
        assert!(matches!(
            store.add_account(&rec.id, "admin", true),
            Err(StoreError::Duplicate(_))
        ));
        let got = store.instance(&rec.id).unwrap();
        assert_eq!(got.status, InstanceStatus::Running);
        assert_eq!(got.pending_verifier, None);

        store.delete_instance(&rec.id).unwrap();
        assert!(store.find_instance(&rec.id).unwrap().is_none());
        assert!(store.accounts(&rec.id).unwrap().is_empty());
    }

    #[test]
    fn status_changes_follow_the_instance_state_machine() {
        let store = Store::in_memory().unwrap();
        let rec = store.insert_instance(&new("shop", 15432)).unwrap();
        // A create still under way cannot be stopped or deleted.
        for next in [InstanceStatus::Stopped, InstanceStatus::Deleting] {
            assert!(matches!(
                store.set_status(&rec.id, next, None),
                Err(StoreError::InvalidTransition(_))
            ));
        }
        store
            .set_status(&rec.id, InstanceStatus::Running, None)
            .unwrap();
        store
            .set_status(&rec.id, InstanceStatus::Released, Some("done"))
            .unwrap();
        let e = store
            .set_status(&rec.id, InstanceStatus::Running, None)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "an instance cannot go from released to running"
        );
        assert_eq!(
            store.instance(&rec.id).unwrap().status_detail.as_deref(),
            Some("done")
        );
    }

    #[test]
    fn recovery_targets_and_progress_are_read_back_typed() {
        let store = Store::in_memory().unwrap();
        let mut n = new("shop-temp", 15433);
        let at = DateTime::parse_from_rfc3339("2026-11-24T09:41:59.5+01:00").unwrap();
        n.restore_target = Some(RestoreTarget::Time(at));
        let rec = store.insert_instance(&n).unwrap();
        assert_eq!(rec.restore_target, Some(RestoreTarget::Time(at)));
        let p = TemporaryProgress {
            phase: lifeboat_domain::TemporaryPhase::ReplayingWal,
            replay_lsn: Some(lifeboat_domain::Lsn(0x300_0028)),
            ..Default::default()
        };
        store.set_progress(&rec.id, &p).unwrap();
        assert_eq!(store.instance(&rec.id).unwrap().progress, Some(p));
    }

    #[test]
    fn names_are_unique_among_live_instances() {
        let store = Store::in_memory().unwrap();
        let first = store.insert_instance(&new("shop", 15432)).unwrap();
        assert!(matches!(
            store.insert_instance(&new("shop", 15433)),
            Err(StoreError::DuplicateName(n)) if n == "shop"
        ));
        store
            .set_status(&first.id, InstanceStatus::Released, None)
            .unwrap();
        store.insert_instance(&new("shop", 15433)).unwrap();
    }

    #[test]
    fn whitelist_add_remove() {
        let store = Store::in_memory().unwrap();
        let rec = store.insert_instance(&new("shop", 15432)).unwrap();
        let net = WhitelistEntry::parse("10.0.0.0/8").unwrap();
        store.add_whitelist(&rec.id, &net, "user").unwrap();
        assert!(matches!(
            store.add_whitelist(&rec.id, &net, "user"),
            Err(StoreError::Duplicate(_))
        ));
        assert_eq!(store.whitelist(&rec.id).unwrap().len(), 2);
        store.remove_whitelist(&rec.id, &net).unwrap();
        assert!(matches!(
            store.remove_whitelist(&rec.id, &net),
            Err(StoreError::NotFound(_))
        ));
    }

    #[test]
    fn reopening_keeps_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lifeboat.db");
        let id = {
            let store = Store::open(&path).unwrap();
            store.insert_instance(&new("shop", 15432)).unwrap().id
        };
        let store = Store::open(&path).unwrap();
        assert_eq!(store.instance(&id).unwrap().name, "shop");
    }
}
