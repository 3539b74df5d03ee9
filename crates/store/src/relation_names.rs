//! The names a master's databases and relations had, from snapshots of its catalogs:
//! what events found in WAL (which names relations by OID and relation file only)
//! are named with. Rows are only added, so a table dropped long ago keeps its name.

use chrono::{DateTime, Utc};
use lifeboat_domain::InstanceId;
use rusqlite::{OptionalExtension, params};

use crate::{Store, StoreError};

/// One relation as a catalog snapshot saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelationName {
    pub db_oid: u32,
    pub oid: u32,
    pub relfilenode: u32,
    /// `pg_class.relkind`: `r` table, `p` partitioned table, `m` materialized view,
    /// `i` index, `t` TOAST table, `S` sequence...
    pub relkind: String,
    pub schema: String,
    pub name: String,
}

/// How a relation is looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelationKey {
    Oid(u32),
    File(u32),
}

impl Store {
    /// Records what a snapshot of the catalogs of `instance` saw at `at`; rows already
    /// known are left as they are. Returns how many were new.
    pub fn record_relation_names(
        &self,
        instance: &InstanceId,
        databases: &[(u32, String)],
        relations: &[RelationName],
        at: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let mut added = 0;
        {
            let mut db = tx.prepare_cached(
                "INSERT OR IGNORE INTO database_names (instance_id, db_oid, datname, first_seen) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for (oid, name) in databases {
                added += db.execute(params![instance.as_str(), oid, name, at.to_rfc3339()])?;
            }
            let mut rel = tx.prepare_cached(
                "INSERT OR IGNORE INTO relation_names \
                 (instance_id, db_oid, oid, relfilenode, relkind, schema_name, rel_name, first_seen) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            for r in relations {
                added += rel.execute(params![
                    instance.as_str(),
                    r.db_oid,
                    r.oid,
                    r.relfilenode,
                    r.relkind,
                    r.schema,
                    r.name,
                    at.to_rfc3339()
                ])?;
            }
        }
        tx.commit()?;
        Ok(added)
    }

    /// The name a relation had at `at`: the newest row seen by then, else the oldest
    /// seen after (a relation created and named after the last snapshot before `at`).
    pub fn relation_name(
        &self,
        instance: &InstanceId,
        db_oid: u32,
        key: RelationKey,
        at: DateTime<Utc>,
    ) -> Result<Option<RelationName>, StoreError> {
        let (column, value) = match key {
            RelationKey::Oid(v) => ("oid", v),
            RelationKey::File(v) => ("relfilenode", v),
        };
        let conn = self.conn();
        let found = conn
            .query_row(
                &format!(
                    "SELECT db_oid, oid, relfilenode, relkind, schema_name, rel_name FROM relation_names \
                     WHERE instance_id = ?1 AND db_oid = ?2 AND {column} = ?3 \
                     ORDER BY (first_seen <= ?4) DESC, \
                              CASE WHEN first_seen <= ?4 THEN first_seen END DESC, first_seen ASC \
                     LIMIT 1"
                ),
                params![instance.as_str(), db_oid, value, at.to_rfc3339()],
                |r| {
                    Ok(RelationName {
                        db_oid: r.get(0)?,
                        oid: r.get(1)?,
                        relfilenode: r.get(2)?,
                        relkind: r.get(3)?,
                        schema: r.get(4)?,
                        name: r.get(5)?,
                    })
                },
            )
            .optional()?;
        Ok(found)
    }

    /// Whether a relation `schema.name` was ever seen on `instance` (in `db_oid`, when
    /// given).
    pub fn relation_seen(
        &self,
        instance: &InstanceId,
        db_oid: Option<u32>,
        schema: &str,
        name: &str,
    ) -> Result<bool, StoreError> {
        let conn = self.conn();
        let n: i64 = conn.query_row(
            "SELECT count(*) FROM relation_names WHERE instance_id = ?1 \
             AND (?2 IS NULL OR db_oid = ?2) AND schema_name = ?3 AND rel_name = ?4",
            params![instance.as_str(), db_oid, schema, name],
            |r| r.get(0),
        )?;
        Ok(n > 0)
    }

    /// The OID of the database `name` (the newest known).
    pub fn database_oid(
        &self,
        instance: &InstanceId,
        name: &str,
    ) -> Result<Option<u32>, StoreError> {
        let conn = self.conn();
        Ok(conn
            .query_row(
                "SELECT db_oid FROM database_names WHERE instance_id = ?1 AND datname = ?2 \
                 ORDER BY first_seen DESC LIMIT 1",
                params![instance.as_str(), name],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// The name a database had (the newest known).
    pub fn database_name(
        &self,
        instance: &InstanceId,
        db_oid: u32,
    ) -> Result<Option<String>, StoreError> {
        let conn = self.conn();
        Ok(conn
            .query_row(
                "SELECT datname FROM database_names WHERE instance_id = ?1 AND db_oid = ?2 \
                 ORDER BY first_seen DESC LIMIT 1",
                params![instance.as_str(), db_oid],
                |r| r.get(0),
            )
            .optional()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(oid: u32, relfilenode: u32, name: &str) -> RelationName {
        RelationName {
            db_oid: 5,
            oid,
            relfilenode,
            relkind: "r".into(),
            schema: "public".into(),
            name: name.into(),
        }
    }

    #[test]
    fn names_are_those_a_relation_had_at_the_time() {
        let store = Store::in_memory().unwrap();
        let id = InstanceId::generate();
        let t = |s: i64| DateTime::from_timestamp(1_764_600_000 + s, 0).unwrap();
        let dbs = vec![(5, "postgres".to_string())];
        assert_eq!(
            store
                .record_relation_names(&id, &dbs, &[rel(16404, 16404, "orders")], t(0))
                .unwrap(),
            2
        );
        // The same snapshot again adds nothing.
        assert_eq!(
            store
                .record_relation_names(&id, &dbs, &[rel(16404, 16404, "orders")], t(10))
                .unwrap(),
            0
        );
        // Renamed at 20 s, then truncated (a new relfilenode) at 30 s.
        store
            .record_relation_names(&id, &dbs, &[rel(16404, 16404, "orders_old")], t(20))
            .unwrap();
        store
            .record_relation_names(&id, &dbs, &[rel(16404, 16430, "orders_old")], t(30))
            .unwrap();
        let name_at = |key, s| {
            store
                .relation_name(&id, 5, key, t(s))
                .unwrap()
                .map(|r| r.name)
        };
        assert_eq!(
            name_at(RelationKey::Oid(16404), 15).as_deref(),
            Some("orders")
        );
        assert_eq!(
            name_at(RelationKey::Oid(16404), 25).as_deref(),
            Some("orders_old")
        );
        assert_eq!(
            name_at(RelationKey::File(16404), 5).as_deref(),
            Some("orders")
        );
        assert_eq!(
            name_at(RelationKey::File(16430), 35).as_deref(),
            Some("orders_old")
        );
        // Before the first snapshot: the first name seen.
        assert_eq!(
            name_at(RelationKey::Oid(16404), -100).as_deref(),
            Some("orders")
        );
        assert_eq!(name_at(RelationKey::Oid(99999), 15), None);
        assert_eq!(
            store.database_name(&id, 5).unwrap().as_deref(),
            Some("postgres")
        );
        assert_eq!(store.database_name(&id, 6).unwrap(), None);
        assert_eq!(store.database_oid(&id, "postgres").unwrap(), Some(5));
        assert!(
            store
                .relation_seen(&id, Some(5), "public", "orders")
                .unwrap()
        );
        assert!(
            store
                .relation_seen(&id, None, "public", "orders_old")
                .unwrap()
        );
        assert!(
            !store
                .relation_seen(&id, Some(6), "public", "orders")
                .unwrap()
        );
        assert!(!store.relation_seen(&id, None, "public", "nope").unwrap());
    }
}
