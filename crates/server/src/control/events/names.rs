//! What a master's databases and relations are called, kept as it changes: a look at
//! its catalogs every few seconds (and right after it is created), recorded in the
//! metadata store. Events found in WAL, which names relations by OID and relation
//! file only, are named from these records, so a table dropped an hour ago, or
//! created after the last base backup, is still named.

use std::time::Duration;

use chrono::Utc;
use lifeboat_domain::{InstanceKind, InstanceStatus};
use lifeboat_store::{InstanceRecord, RelationName};

use crate::control::registry::connect_db;
use crate::control::{Error, ErrorCode, Result, Shared};

/// How often the catalogs of running masters are looked at. A relation created and
/// dropped between two looks is named by its OID only.
const WATCH_TICK: Duration = Duration::from_secs(5);

/// The relations named (user relations: OIDs from 16384).
const RELATIONS: &str = "SELECT c.oid::int8, coalesce(pg_relation_filenode(c.oid), 0)::int8, c.relkind::text, \
     n.nspname::text, c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
     WHERE c.oid >= 16384 AND c.relkind IN ('r', 'p', 'm', 't', 'i', 'S')";

/// Looks at the catalogs of `rec` and records the names not seen before.
pub async fn snapshot(state: &Shared, rec: &InstanceRecord) -> Result<usize> {
    let client = connect_db(state, rec, "postgres", None).await?;
    let failed = |e: tokio_postgres::Error| {
        Error::new(
            ErrorCode::QueryFailed,
            format!(
                "cannot read the catalogs of {}: {}",
                rec.id,
                lifeboat_postgres::describe(&e)
            ),
            "check that the instance is running",
        )
    };
    let dbs: Vec<(u32, String)> = client
        .query(
            "SELECT oid::int8, datname::text FROM pg_database WHERE datallowconn AND NOT datistemplate",
            &[],
        )
        .await
        .map_err(failed)?
        .iter()
        .map(|r| (r.get::<_, i64>(0) as u32, r.get(1)))
        .collect();
    let at = Utc::now();
    let mut relations = Vec::new();
    for (oid, name) in &dbs {
        let Ok(db) = connect_db(state, rec, name, None).await else {
            continue;
        };
        for r in db.query(RELATIONS, &[]).await.map_err(failed)? {
            relations.push(RelationName {
                db_oid: *oid,
                oid: r.get::<_, i64>(0) as u32,
                relfilenode: r.get::<_, i64>(1) as u32,
                relkind: r.get(2),
                schema: r.get(3),
                name: r.get(4),
            });
        }
    }
    Ok(state
        .store
        .record_relation_names(&rec.id, &dbs, &relations, at)?)
}

/// Looks at every running master's catalogs every [`WATCH_TICK`], until the server
/// stops.
pub async fn watcher(state: Shared) {
    let mut tick = tokio::time::interval(WATCH_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Ok(all) = state.store.list_instances(false) else {
            continue;
        };
        for rec in all
            .iter()
            .filter(|r| r.kind == InstanceKind::Master && r.status == InstanceStatus::Running)
        {
            if let Err(e) = snapshot(&state, rec).await {
                tracing::debug!(instance = %rec.id, error = %e.message, "cannot look at the catalogs");
            }
        }
    }
}
