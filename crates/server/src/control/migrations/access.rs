//! How a task reaches its two instances: the worker's address on both whitelists
//! (added when the user authorizes the task, removed when it ends or is deleted), and
//! the connections as the task's accounts, with the passwords opened from their seal.

use std::time::Duration;

use lifeboat_domain::{InstanceId, WhitelistEntry};
use lifeboat_migrate::migration::MigrationTask;
use lifeboat_store::InstanceRecord;

use super::task::{Endpoint, TaskRecord, endpoint_instance, load, save};
use crate::control::instances::change_whitelist;
use crate::control::registry::host_of;
use crate::control::{Error, ErrorCode, Result, Shared};

/// The worker's address as a whitelist entry.
fn worker_entry(doc: &TaskRecord) -> Result<WhitelistEntry> {
    Ok(WhitelistEntry::parse(&doc.worker_address)?)
}

/// Adds the worker's address to both whitelists (recording which entries it added).
pub async fn authorize(state: &Shared, task: &str) -> Result<TaskRecord> {
    let mut doc = load(state, task)?;
    let entry = worker_entry(&doc)?;
    for (which, inst) in [
        ("source", doc.source.instance.clone()),
        ("target", doc.target.instance.clone()),
    ] {
        let id = InstanceId::parse(&inst)?;
        // An adopted cluster's pg_hba.conf is managed where it runs: the login is
        // tried, and its error says what to allow there.
        if state.store.instance(&id)?.external.is_some() {
            check_login(state, &doc, which).await?;
            continue;
        }
        let present = state
            .store
            .whitelist(&id)?
            .iter()
            .any(|w| w.entry.net().contains(&entry.net()));
        if !present {
            change_whitelist(
                state.clone(),
                id,
                entry,
                true,
                &format!("migration:{}", doc.id),
            )
            .await?;
            if !doc.whitelist_added.contains(&inst) {
                doc.whitelist_added.push(inst);
            }
        }
    }
    doc.authorized = true;
    save(state, &doc)?;
    Ok(doc)
}

/// Removes the whitelist entries the task added.
pub async fn deauthorize(state: &Shared, doc: &mut TaskRecord) {
    let Ok(entry) = worker_entry(doc) else { return };
    for inst in std::mem::take(&mut doc.whitelist_added) {
        if let Ok(id) = InstanceId::parse(&inst)
            && state.store.find_instance(&id).ok().flatten().is_some()
            && let Err(e) = change_whitelist(state.clone(), id, entry, false, "").await
        {
            tracing::warn!(task = %doc.id, instance = %inst, error = %e.message, "cannot remove the task's whitelist entry");
        }
    }
    doc.authorized = false;
}

/// Whether the worker's address is on both instances' whitelists now.
pub fn whitelisted(state: &Shared, doc: &TaskRecord) -> bool {
    let Ok(entry) = worker_entry(doc) else {
        return false;
    };
    [&doc.source.instance, &doc.target.instance]
        .iter()
        .all(|inst| {
            let Ok(id) = InstanceId::parse(inst) else {
                return false;
            };
            if matches!(state.store.find_instance(&id), Ok(Some(r)) if r.external.is_some()) {
                return true;
            }
            state
                .store
                .whitelist(&id)
                .is_ok_and(|list| list.iter().any(|w| w.entry.net().contains(&entry.net())))
        })
}

/// The connection to one side, as the task's account, over TCP like any client.
fn config_of(state: &Shared, e: &Endpoint, rec: &InstanceRecord) -> Result<tokio_postgres::Config> {
    let password = state.secrets.open(&e.password_sealed).map_err(|why| {
        Error::internal(format!(
            "the stored password of {} cannot be opened ({why}); create the task again",
            e.instance
        ))
    })?;
    let address = host_of(state, rec)?;
    let mut c = tokio_postgres::Config::new();
    c.host(&address)
        .port(rec.port)
        .user(&e.account)
        .password(password)
        .dbname("postgres")
        .application_name("lifeboat migration")
        .connect_timeout(Duration::from_secs(10));
    Ok(c)
}

/// Logs in to the `which` ("source" or "target") instance as the task's account (the
/// worker's address must be on its whitelist: call after [`authorize`]). A refused account or password is a
/// 400 naming the side, so the user can correct it before anything else is asked.
pub async fn check_login(state: &Shared, doc: &TaskRecord, which: &str) -> Result<()> {
    {
        let e = if which == "source" {
            &doc.source
        } else {
            &doc.target
        };
        let rec = endpoint_instance(state, e, which)?;
        let config = config_of(state, e, &rec)?;
        match config.connect(tokio_postgres::NoTls).await {
            Ok((client, conn)) => {
                drop(client);
                drop(conn);
            }
            Err(err) => {
                let why = lifeboat_postgres::describe(&err);
                if let Some(x) = &rec.external {
                    return Err(Error::new(
                        match err.code().map(|c| c.code()) {
                            Some("28P01") => ErrorCode::AuthenticationFailed,
                            _ => ErrorCode::ConnectionFailed,
                        },
                        format!(
                            "cannot log in to the adopted {which} instance {} at {}:{} as {}: {why}",
                            rec.id, x.host, rec.port, e.account
                        ),
                        format!(
                            "its pg_hba.conf is managed where the cluster runs: allow {} from Lifeboat's host there (e.g. `host all {} <Lifeboat's address>/32 scram-sha-256`) and reload it, check the password, then authorize the task again",
                            e.account, e.account
                        ),
                    ));
                }
                return Err(match err.code().map(|c| c.code()) {
                    Some("28P01" | "28000") => Error::new(
                        ErrorCode::AuthenticationFailed,
                        format!(
                            "the {which} instance {} refused the account {}: {why}",
                            rec.id, e.account
                        ),
                        format!("correct the {which} account or its password"),
                    ),
                    _ => Error::new(
                        ErrorCode::ConnectionFailed,
                        format!(
                            "cannot connect to the {which} instance {} as {}: {why}",
                            rec.id, e.account
                        ),
                        format!("check that the {which} instance is running"),
                    ),
                });
            }
        }
    }
    Ok(())
}

/// The task as the migration library takes it: its spec and both connections.
pub fn task_of(state: &Shared, doc: &TaskRecord) -> Result<MigrationTask> {
    let src = endpoint_instance(state, &doc.source, "source")?;
    let dst = endpoint_instance(state, &doc.target, "target")?;
    Ok(MigrationTask {
        spec: doc.spec()?,
        source: config_of(state, &doc.source, &src)?,
        target: config_of(state, &doc.target, &dst)?,
    })
}
