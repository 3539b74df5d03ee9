//! Adopted instances: PostgreSQL clusters Lifeboat did not create, on this host or
//! another, protected over the replication protocol.
//!
//! Lifeboat never starts, stops, restarts or reconfigures an adopted cluster and never
//! edits its `pg_hba.conf`; it writes to it only through migration tasks and its own
//! physical replication slot, named for this server and the instance
//! ([`slot_name`]), so a second server finds the first one's and is refused.
//!
//! An adoption is recorded in status `creating` before its slot is made, and the
//! reconciler finishes it after a crash ([`finish_adopt`]); a failed adoption drops
//! its slot and forgets the record.

use lifeboat_domain::names::validate_instance_name;
use lifeboat_domain::task::PrecheckStatus;
use lifeboat_domain::{InstanceId, InstanceKind, InstanceStatus};
use lifeboat_postgres::adoption::{self, AdoptTarget, AdoptionItem, slot_name, slot_owner};
use lifeboat_store::{External, InstanceRecord, NewInstance};

use super::backups::entries::server_id;
use super::registry::{insert_with_fresh_id, region_of};
use super::{Error, ErrorCode, Result, Shared};

/// A request to adopt a cluster.
pub struct AdoptMaster {
    pub name: String,
    pub host: String,
    pub port: u16,
    pub account: String,
    pub password: String,
    pub region: Option<String>,
}

impl AdoptMaster {
    fn target(&self) -> AdoptTarget {
        AdoptTarget {
            host: self.host.clone(),
            port: self.port,
            account: self.account.clone(),
            password: self.password.clone(),
        }
    }
}

fn invalid(message: String, hint: &str) -> Error {
    Error::new(ErrorCode::InvalidArgument, message, hint)
}

/// The request's own problems, before anything is reached.
fn validate(req: &AdoptMaster) -> Result<()> {
    validate_instance_name(&req.name)?;
    let host_ok = !req.host.is_empty()
        && req.host.len() <= 253
        && req
            .host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
        && !req.host.starts_with(['.', '-']);
    if !host_ok {
        return Err(invalid(
            format!("host '{}' is not a host name or IP address", req.host),
            "give the host the cluster listens on, e.g. --host db1.example.com or --host 10.0.0.5",
        ));
    }
    if req.port == 0 {
        return Err(invalid(
            "port 0 is not a port".into(),
            "give the port the cluster listens on (PostgreSQL's default is 5432)",
        ));
    }
    if req.account.is_empty() || req.account.len() > 63 || req.account.contains('\0') {
        return Err(invalid(
            format!(
                "account '{}' is not a PostgreSQL role name",
                req.account.escape_debug()
            ),
            "give an existing role of 1 to 63 bytes that has REPLICATION",
        ));
    }
    if req.password.is_empty()
        || req.password.chars().count() > 1024
        || req.password.contains(['\n', '\r', '\0'])
    {
        return Err(invalid(
            "the password must be 1 to 1024 characters on one line".into(),
            "put the account's password on the first line of the password file",
        ));
    }
    Ok(())
}

/// Runs the adoption check for `req`: every requirement, passed or not.
pub async fn check(state: &Shared, req: &AdoptMaster) -> Result<Vec<AdoptionItem>> {
    validate(req)?;
    if let Some(r) = &req.region {
        region_of(state, r)?;
    }
    let installed = state.installations(|f| !f.is_empty());
    Ok(adoption::check(&req.target(), &installed, &server_id(state)?).await)
}

/// Adopts the cluster of `req`: checks it, records it, creates Lifeboat's slot on it
/// and describes it in the repository. Refused with every failed item named when the
/// check does not pass; nothing on the cluster changes then.
pub async fn adopt(state: Shared, req: AdoptMaster) -> Result<InstanceRecord> {
    let items = check(&state, &req).await?;
    let region_name = req
        .region
        .clone()
        .unwrap_or_else(|| state.config.regions[0].name.clone());
    let region = region_of(&state, &region_name)?.clone();
    let at = format!("{}:{}", req.host, req.port);
    if !adoption::adoptable(&items) {
        let failed: Vec<&AdoptionItem> = items
            .iter()
            .filter(|i| i.status == PrecheckStatus::Failed)
            .collect();
        let message = failed
            .iter()
            .map(|i| format!("{}: {}", i.name, i.detail))
            .collect::<Vec<_>>()
            .join("; ");
        let advice = failed
            .first()
            .map(|i| i.advice.trim_end_matches('.').to_string())
            .unwrap_or_default();
        let again = if advice.contains("check again") {
            ""
        } else {
            "; then run lifeboat instance adopt again"
        };
        return Err(Error::new(
            ErrorCode::AdoptionCheckFailed,
            format!("the cluster at {at} cannot be adopted: {message}"),
            format!("{advice}{again} (with --check it lists every item)"),
        ));
    }
    let target = req.target();
    let client = adoption::connect_to(&target, "postgres", "lifeboat")
        .await
        .map_err(|e| unreachable(&at, &e))?;
    let me = server_id(&state)?;
    // A cluster this server protects already is not adopted twice; a slot of an
    // instance this server no longer has was left by an adoption that did not finish.
    for row in client
        .query(
            "SELECT slot_name::text FROM pg_replication_slots WHERE slot_name LIKE 'lifeboat\\_%'",
            &[],
        )
        .await
        .map_err(|e| unreachable(&at, &e))?
    {
        let slot: String = row.get(0);
        let Some((owner, instance)) = slot_owner(&slot) else {
            continue;
        };
        if owner != me {
            continue;
        }
        let live = InstanceId::parse(&instance)
            .ok()
            .map(|id| state.store.find_instance(&id))
            .transpose()?
            .flatten();
        match live {
            Some(rec) => {
                return Err(Error::new(
                    ErrorCode::AlreadyExists,
                    format!(
                        "the cluster at {at} is already adopted as instance {} ({})",
                        rec.id, rec.name
                    ),
                    format!("use instance {}; lifeboat instance show {}", rec.id, rec.id),
                ));
            }
            None => drop_slot(&client, &slot).await,
        }
    }
    let version_num: i32 = client
        .query_one("SELECT current_setting('server_version_num')::int", &[])
        .await
        .map_err(|e| unreachable(&at, &e))?
        .get(0);
    let engine_version = format!("{}.{}", version_num / 10_000, version_num % 10_000);
    // Its bootstrap superuser: restored copies of the cluster, which Lifeboat runs,
    // have no other role Lifeboat can manage them as.
    let bootstrap: String = client
        .query_one("SELECT rolname::text FROM pg_roles WHERE oid = 10", &[])
        .await
        .map_err(|e| unreachable(&at, &e))?
        .get(0);
    let sealed_password = state.secrets.seal(&req.password);
    let rec = {
        let _guard = state.create_lock.lock().await;
        insert_with_fresh_id(&state, |id| NewInstance {
            id,
            name: req.name.clone(),
            kind: InstanceKind::Master,
            region: region.name.clone(),
            port: req.port,
            engine_version: engine_version.clone(),
            master_id: None,
            expires_at: None,
            privileged_account: req.account.clone(),
            pending_verifier: None,
            restore_target: None,
            restored_from: None,
            upgrade_to: None,
            management_role: Some(bootstrap.clone()),
            external: Some(External {
                host: req.host.clone(),
                sealed_password: sealed_password.clone(),
            }),
            // pg_hba.conf of an adopted cluster is managed where it runs.
            whitelist: Vec::new(),
        })?
    };
    tracing::info!(instance = %rec.id, name = %rec.name, at = %at, "adopting a cluster");
    let id = rec.id.clone();
    let task_state = state.clone();
    tokio::spawn(async move { finish_adopt(task_state, id).await }).await??;
    Ok(state.store.instance(&rec.id)?)
}

/// Where an adopted cluster is now and how Lifeboat logs in to it (`None` keeps it).
#[derive(Default)]
pub struct UpdateAdopted {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub account: Option<String>,
    pub password: Option<String>,
}

/// Changes where an adopted instance is or how Lifeboat logs in (its host moved, its
/// password changed). The new values must log in and find this instance's slot, so an
/// instance is never pointed at another cluster; then the stream starts again with
/// them.
pub async fn update(state: Shared, id: InstanceId, req: UpdateAdopted) -> Result<InstanceRecord> {
    let lock = state.instance_lock(&id);
    let _guard = lock.lock().await;
    let rec = state.store.instance(&id)?;
    if rec.external.is_none() {
        return Err(Error::invalid_state(
            format!(
                "instance {id} is not adopted: Lifeboat runs its cluster and knows where it is"
            ),
            "only an adopted instance's host, port, account and password can change",
        ));
    }
    let mut target = target_of(&state, &rec)?;
    if let Some(h) = req.host {
        target.host = h;
    }
    if let Some(p) = req.port {
        target.port = p;
    }
    if let Some(a) = req.account {
        target.account = a;
    }
    if let Some(p) = req.password {
        target.password = p;
    }
    validate(&AdoptMaster {
        name: rec.name.clone(),
        host: target.host.clone(),
        port: target.port,
        account: target.account.clone(),
        password: target.password.clone(),
        region: None,
    })?;
    let at = format!("{}:{}", target.host, target.port);
    let refused = |message: String| {
        Error::new(
            ErrorCode::AdoptionCheckFailed,
            message,
            "give the host, port, account and password the cluster has now (lifeboat instance adopt --check with them lists what it lacks)",
        )
    };
    let client = adoption::connect_to(&target, "postgres", "lifeboat")
        .await
        .map_err(|e| {
            refused(format!(
                "cannot log in to the cluster at {at} as {}: {}",
                target.account,
                lifeboat_postgres::describe(&e)
            ))
        })?;
    let slot = slot_name(&server_id(&state)?, rec.id.as_str());
    let ours = client
        .query_opt(
            "SELECT 1 FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .map_err(|e| {
            refused(format!(
                "cannot read the slots of {at}: {}",
                lifeboat_postgres::describe(&e)
            ))
        })?
        .is_some();
    if !ours {
        return Err(Error::new(
            ErrorCode::AdoptionCheckFailed,
            format!(
                "the cluster at {at} has no replication slot {slot}: it is not the cluster adopted as {id}, or the slot was dropped"
            ),
            format!(
                "give the address of the cluster instance {id} protects; to protect another cluster, adopt it as a new instance"
            ),
        ));
    }
    state.store.set_external(
        &id,
        &External {
            host: target.host.clone(),
            sealed_password: state.secrets.seal(&target.password),
        },
        target.port,
        &target.account,
    )?;
    tracing::info!(instance = %id, at = %at, "adopted instance updated; its stream starts again");
    super::backups::stream::restart(&state, &id);
    Ok(state.store.instance(&id)?)
}

/// Finishes an adoption in status `creating`: Lifeboat's slot on the cluster (made if
/// missing), the repository entry, then `running`. On failure the slot is dropped and
/// the record forgotten, so the adoption can be run again.
pub async fn finish_adopt(state: Shared, id: InstanceId) -> Result<()> {
    let lock = state.instance_lock(&id);
    let _guard = lock.lock().await;
    let rec = match state.store.find_instance(&id)? {
        Some(r) if r.status == InstanceStatus::Creating && r.external.is_some() => r,
        _ => return Ok(()),
    };
    let result = async {
        let client = connect(&state, &rec, "postgres").await?;
        let slot = slot_name(&server_id(&state)?, rec.id.as_str());
        let exists = client
            .query_opt(
                "SELECT 1 FROM pg_replication_slots WHERE slot_name = $1",
                &[&slot],
            )
            .await
            .map_err(|e| unreachable(&address(&rec), &e))?
            .is_some();
        if !exists {
            // Reserved at once: the WAL from here on stays until Lifeboat has it.
            client
                .query_one(
                    "SELECT slot_name::text FROM pg_create_physical_replication_slot($1, true)",
                    &[&slot],
                )
                .await
                .map_err(|e| {
                    Error::new(
                        ErrorCode::QueryFailed,
                        format!(
                            "cannot create the replication slot {slot} on {}: {}",
                            address(&rec),
                            lifeboat_postgres::describe(&e)
                        ),
                        "run the adoption check again (lifeboat instance adopt --check) and fix what it names",
                    )
                })?;
        }
        // Temporary instances restore from it as the clusters' OS user.
        super::backups::prepare_instance(&state, &rec)?;
        super::backups::entries::describe(&state, &rec).await?;
        // Its names from the first minute, for the events found in its WAL.
        if let Err(e) = super::events::names::snapshot(&state, &rec).await {
            tracing::warn!(instance = %id, error = %e.message, "cannot look at the catalogs");
        }
        state.store.set_status(&id, InstanceStatus::Running, None)?;
        tracing::info!(instance = %id, slot = %slot, "cluster adopted");
        Ok::<_, Error>(())
    }
    .await;
    if result.is_ok() {
        super::backups::stream::start(&state, &id);
        // The first base backup starts at once, in the background: an adopted
        // cluster may be large. The restorable window starts when it ends.
        if let Err(e) =
            super::backups::start_backup(&state, &id, lifeboat_domain::BackupTrigger::Create).await
        {
            tracing::warn!(instance = %id, error = %e.message, "cannot start the first base backup; the schedule takes it");
        }
    }
    if let Err(err) = &result {
        tracing::warn!(instance = %id, error = %err.message, "adoption failed; cleaning up");
        forget(&state, &rec).await;
        let _ = state.store.delete_instance(&id);
    }
    result
}

/// Stops protecting an adopted cluster: drops Lifeboat's slot on it, so the cluster
/// keeps no WAL for Lifeboat. The cluster itself is left as it is. A cluster that
/// cannot be reached keeps the slot; the log says how to drop it.
pub async fn forget(state: &Shared, rec: &InstanceRecord) {
    let Ok(me) = server_id(state) else {
        return;
    };
    let slot = slot_name(&me, rec.id.as_str());
    match connect(state, rec, "postgres").await {
        Ok(client) => drop_slot(&client, &slot).await,
        Err(e) => tracing::warn!(
            instance = %rec.id,
            error = %e.message,
            "cannot reach the adopted cluster to drop Lifeboat's slot; drop it there with SELECT pg_drop_replication_slot('{slot}')"
        ),
    }
}

/// Drops `slot` once no receiver holds it (waiting up to 10 s for one that just
/// stopped); a failure is logged.
pub(crate) async fn drop_slot(client: &tokio_postgres::Client, slot: &str) {
    // A receiver just stopped may still hold it for a moment.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let active = client
            .query_opt(
                "SELECT 1 FROM pg_replication_slots WHERE slot_name = $1 AND active",
                &[&slot],
            )
            .await
            .map(|r| r.is_some())
            .unwrap_or(false);
        if !active || std::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let dropped = client
        .execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots \
             WHERE slot_name = $1 AND NOT active",
            &[&slot],
        )
        .await;
    match dropped {
        Ok(n) if n > 0 => tracing::info!(slot, "replication slot dropped"),
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(slot, error = %lifeboat_postgres::describe(&e), "cannot drop the replication slot")
        }
    }
}

/// `host:port` of an adopted instance.
pub fn address(rec: &InstanceRecord) -> String {
    match &rec.external {
        Some(e) => format!("{}:{}", e.host, rec.port),
        None => format!("port {}", rec.port),
    }
}

/// Where an adopted instance is and how Lifeboat logs in to it.
pub fn target_of(state: &Shared, rec: &InstanceRecord) -> Result<AdoptTarget> {
    let Some(e) = &rec.external else {
        return Err(Error::internal(format!(
            "instance {} is not adopted",
            rec.id
        )));
    };
    let password = state.secrets.open(&e.sealed_password).map_err(|why| {
        Error::internal(format!(
            "the stored password of instance {} cannot be opened ({why}); adopt the cluster again",
            rec.id
        ))
    })?;
    Ok(AdoptTarget {
        host: e.host.clone(),
        port: rec.port,
        account: rec.privileged_account.clone(),
        password,
    })
}

/// Lifeboat's connection to `database` of an adopted instance.
pub async fn connect(
    state: &Shared,
    rec: &InstanceRecord,
    database: &str,
) -> Result<tokio_postgres::Client> {
    let target = target_of(state, rec)?;
    adoption::connect_to(&target, database, "lifeboat")
        .await
        .map_err(|e| {
            if e.code().map(|c| c.code()) == Some(super::registry::NO_SUCH_DATABASE) {
                super::registry::no_such_database(rec, database, None)
            } else {
                unreachable(&address(rec), &e)
            }
        })
}

/// The error for a cluster that cannot be reached or refused the login.
fn unreachable(at: &str, e: &tokio_postgres::Error) -> Error {
    Error::new(
        ErrorCode::InstanceUnreachable,
        format!(
            "cannot reach the cluster at {at}: {}",
            lifeboat_postgres::describe(e)
        ),
        "check that it runs and accepts Lifeboat's account from this host; if its password or host changed, adopt it again",
    )
}
