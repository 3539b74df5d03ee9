//! The adoption check: what a PostgreSQL cluster Lifeboat did not create must offer
//! before Lifeboat protects it over the replication protocol. Each requirement is an
//! item with a status, what was found and what to do, like a migration pre-check;
//! nothing on the cluster changes (the replication slot it tries is temporary and
//! goes with the check's connection).
//!
//! Items, in order: `connection` (reachable and authenticated; when it fails nothing
//! else is checked), `server_version` (a major Lifeboat runs, installed here for the
//! tools and temporary instances), `wal_level`, `wal_senders` (a free WAL sender and a
//! free replication slot), `replication_privilege`, `read_privilege`,
//! `replication_connection` (`pg_hba.conf` lets this host in for replication),
//! `replication_slot` (a physical slot can be created), `slot_wal_limit`
//! (`max_slot_wal_keep_size`), `data_checksums`.

use std::process::Stdio;
use std::time::Duration;

use lifeboat_domain::task::PrecheckStatus;
use tokio_postgres::{Client, NoTls};

use crate::binaries::{Installations, unsupported};
use crate::describe;

/// Where the cluster is and how to log in.
#[derive(Debug, Clone)]
pub struct AdoptTarget {
    pub host: String,
    pub port: u16,
    pub account: String,
    pub password: String,
}

/// One requirement of the adoption check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdoptionItem {
    pub id: &'static str,
    pub name: &'static str,
    pub status: PrecheckStatus,
    /// What was found.
    pub detail: String,
    /// What to do ("none needed" when it passed).
    pub advice: String,
}

impl AdoptionItem {
    fn new(id: &'static str, status: PrecheckStatus, detail: String, advice: &str) -> Self {
        let name = ITEMS
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, n)| *n)
            .unwrap_or(id);
        let advice = if status == PrecheckStatus::Passed {
            "none needed".into()
        } else {
            advice.to_string()
        };
        Self {
            id,
            name,
            status,
            detail,
            advice,
        }
    }
}

/// Every item id and its name, in display order.
pub const ITEMS: &[(&str, &str)] = &[
    ("connection", "Reachable and authenticated"),
    ("server_version", "Server major supported"),
    ("wal_level", "WAL level at least replica"),
    ("wal_senders", "A free WAL sender and replication slot"),
    ("replication_privilege", "Account may replicate"),
    ("read_privilege", "Account can read the databases"),
    (
        "replication_connection",
        "pg_hba.conf allows replication from Lifeboat",
    ),
    (
        "replication_slot",
        "A physical replication slot can be created",
    ),
    (
        "lifeboat_slot",
        "No other Lifeboat server protects the cluster",
    ),
    ("slot_wal_limit", "WAL kept for a slot is limited"),
    ("data_checksums", "Data checksums"),
];

/// True when no item failed: the cluster can be adopted.
pub fn adoptable(items: &[AdoptionItem]) -> bool {
    !items.is_empty() && items.iter().all(|i| i.status != PrecheckStatus::Failed)
}

/// How long a connection attempt may take before the cluster counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The physical replication slot through which Lifeboat server `server` (an id such as
/// `lb-0a1b2c3d4e5f`) streams the WAL of its adopted instance `instance`: the name says
/// whose slot it is, so a second server finds the first one's.
pub fn slot_name(server: &str, instance: &str) -> String {
    format!("{SLOT_PREFIX}{server}_{instance}")
        .replace('-', "_")
        .to_lowercase()
}

/// The server id and instance id a slot of [`slot_name`] names, with `-` where the
/// ids have it (`lb-…`, `pg-…`).
pub fn slot_owner(slot: &str) -> Option<(String, String)> {
    let rest = slot.strip_prefix(SLOT_PREFIX)?;
    let (server, instance) = rest.split_once("_pg_")?;
    let server = server.strip_prefix("lb_")?;
    Some((format!("lb-{server}"), format!("pg-{instance}")))
}

/// What every slot Lifeboat creates starts with.
pub const SLOT_PREFIX: &str = "lifeboat_";

/// A connection to `database` of the cluster, as the target's account.
pub async fn connect_to(
    t: &AdoptTarget,
    database: &str,
    application: &str,
) -> Result<Client, tokio_postgres::Error> {
    let mut config = tokio_postgres::Config::new();
    config
        .host(&t.host)
        .port(t.port)
        .user(&t.account)
        .password(&t.password)
        .dbname(database)
        .application_name(application)
        .connect_timeout(CONNECT_TIMEOUT);
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// Runs the adoption check of `target`, with the PostgreSQL programs of `installed`,
/// for Lifeboat server `server` (see [`slot_name`]).
pub async fn check(
    target: &AdoptTarget,
    installed: &Installations,
    server: &str,
) -> Vec<AdoptionItem> {
    use PrecheckStatus::{Failed, Passed, Warning};
    let mut items = Vec::new();
    let who = format!("{}@{}:{}", target.account, target.host, target.port);
    let client = match connect(target).await {
        Ok(c) => c,
        Err(e) => {
            items.push(AdoptionItem::new(
                "connection",
                Failed,
                format!("could not log in as {who}: {e}"),
                "check the host, port, account and password, and that the server accepts connections from this host (listen_addresses, pg_hba.conf); then run the check again",
            ));
            return items;
        }
    };
    items.push(AdoptionItem::new(
        "connection",
        Passed,
        format!("logged in as {who}"),
        "",
    ));
    // The version first: the settings read below exist from PostgreSQL 15 on.
    let version_num: i32 = match client
        .query_one("SELECT current_setting('server_version_num')::int", &[])
        .await
    {
        Ok(r) => r.get(0),
        Err(e) => {
            items.push(AdoptionItem::new(
                "server_version",
                Failed,
                format!("could not read the server's version: {}", describe(&e)),
                "log in with an account that can read the server's settings",
            ));
            return items;
        }
    };
    if let Some(why) = unsupported((version_num / 10_000) as u32) {
        items.push(AdoptionItem::new(
            "server_version",
            Failed,
            format!("server_version_num = {version_num}: {why}"),
            "adopt a cluster of a supported major",
        ));
        return items;
    }
    let facts = match Facts::read(&client).await {
        Ok(f) => f,
        Err(e) => {
            items.push(AdoptionItem::new(
                "server_version",
                Failed,
                format!("could not read the server's settings: {e}"),
                "log in with an account that can read pg_settings and pg_roles",
            ));
            return items;
        }
    };
    let major = (version_num / 10_000) as u32;
    let bins = match installed.major(major) {
        Ok(b) => {
            items.push(AdoptionItem::new(
                "server_version",
                Passed,
                format!(
                    "PostgreSQL {}; its programs are installed here ({})",
                    facts.version,
                    b.bin_dir.display()
                ),
                "",
            ));
            Some(b)
        }
        Err(e) => {
            items.push(AdoptionItem::new(
                    "server_version",
                    Failed,
                    format!("the server runs PostgreSQL {}, but {e}", facts.version),
                    &format!(
                        "install PostgreSQL {major}'s server binaries on Lifeboat's host: backups and temporary instances of this cluster need them"
                    ),
                ));
            None
        }
    };
    let wal_ok = facts.wal_level != "minimal";
    items.push(AdoptionItem::new(
        "wal_level",
        if wal_ok { Passed } else { Failed },
        format!("wal_level = {}", facts.wal_level),
        "set wal_level = replica (or logical) in postgresql.conf and restart the server",
    ));
    let senders_free = facts.max_wal_senders - facts.wal_senders_used;
    let slots_free = facts.max_replication_slots - facts.slots_used;
    items.push(AdoptionItem::new(
        "wal_senders",
        if senders_free > 0 && slots_free > 0 {
            Passed
        } else {
            Failed
        },
        format!(
            "{senders_free} of max_wal_senders = {} free, {slots_free} of max_replication_slots = {} free",
            facts.max_wal_senders, facts.max_replication_slots
        ),
        "raise max_wal_senders and max_replication_slots by one (each takes a restart), or stop a client that holds one",
    ));
    items.push(AdoptionItem::new(
        "replication_privilege",
        if facts.replication || facts.superuser {
            Passed
        } else {
            Failed
        },
        if facts.superuser {
            format!("{} is a superuser", target.account)
        } else if facts.replication {
            format!("{} has REPLICATION", target.account)
        } else {
            format!(
                "{} has neither REPLICATION nor superuser rights",
                target.account
            )
        },
        &format!(
            "ALTER ROLE {} REPLICATION (as a superuser), then run the check again",
            crate::ident::quote_ident(&target.account)
        ),
    ));
    items.push(AdoptionItem::new(
        "read_privilege",
        if facts.superuser || facts.read_all {
            Passed
        } else {
            Warning
        },
        if facts.superuser || facts.read_all {
            format!(
                "{} can read every table (superuser or pg_read_all_data)",
                target.account
            )
        } else {
            format!(
                "{} is not a member of pg_read_all_data: backups do not need it, but lifeboat diff and migration pre-checks run with the accounts given to them",
                target.account
            )
        },
        &format!(
            "GRANT pg_read_all_data TO {} if Lifeboat should verify and diff with this account",
            crate::ident::quote_ident(&target.account)
        ),
    ));
    match bins {
        Some(b) => {
            let psql = b.path("psql");
            replication_items(target, &psql, &mut items).await;
        }
        None => {
            for id in ["replication_connection", "replication_slot"] {
                items.push(AdoptionItem::new(
                    id,
                    Failed,
                    "not checked: no PostgreSQL programs of the server's major here".into(),
                    "see the server version item",
                ));
            }
        }
    }
    items.push(lifeboat_slot_item(&facts.lifeboat_slots, server));
    let limited = facts.max_slot_wal_keep_size_mb >= 0;
    items.push(AdoptionItem::new(
        "slot_wal_limit",
        if limited { Passed } else { Warning },
        if limited {
            format!(
                "max_slot_wal_keep_size = {} MB: a slot left behind keeps no more WAL than that",
                facts.max_slot_wal_keep_size_mb
            )
        } else {
            "max_slot_wal_keep_size = -1 (unlimited): while Lifeboat is down or cut off, its slot keeps WAL on the server without bound".into()
        },
        "set max_slot_wal_keep_size (e.g. to 10GB, within the free disk space of pg_wal) and reload the server",
    ));
    items.push(AdoptionItem::new(
        "data_checksums",
        if facts.data_checksums { Passed } else { Warning },
        format!(
            "data_checksums = {}",
            if facts.data_checksums { "on" } else { "off" }
        ),
        "without data checksums a damaged page is backed up as it is; pg_checksums --enable (server stopped) turns them on",
    ));
    items
}

/// The settings and rights the items look at.
struct Facts {
    version: String,
    wal_level: String,
    max_wal_senders: i32,
    wal_senders_used: i32,
    max_replication_slots: i32,
    slots_used: i32,
    max_slot_wal_keep_size_mb: i32,
    data_checksums: bool,
    superuser: bool,
    replication: bool,
    read_all: bool,
    /// Slots named by [`slot_name`], of this server or another.
    lifeboat_slots: Vec<String>,
}

/// Fails when a slot of another Lifeboat server exists: one server protects a cluster
/// at a time. This server's own slots pass, named in the detail (the server refuses to
/// adopt a cluster one of its instances already protects).
fn lifeboat_slot_item(slots: &[String], server: &str) -> AdoptionItem {
    use PrecheckStatus::{Failed, Passed};
    let others: Vec<(&String, String)> = slots
        .iter()
        .filter_map(|s| Some((s, slot_owner(s)?.0)))
        .filter(|(_, owner)| owner != server)
        .collect();
    if let Some((slot, owner)) = others.first() {
        return AdoptionItem::new(
            "lifeboat_slot",
            Failed,
            format!(
                "the cluster has the replication slot {slot} of Lifeboat server {owner}: that server protects it"
            ),
            &format!(
                "delete the instance on the Lifeboat server that adopted it (lifeboat instance delete); if that server is gone for good, drop its slot with SELECT pg_drop_replication_slot('{slot}'), then run the check again"
            ),
        );
    }
    let own: Vec<&str> = slots
        .iter()
        .filter(|s| slot_owner(s).is_some())
        .map(String::as_str)
        .collect();
    AdoptionItem::new(
        "lifeboat_slot",
        Passed,
        if own.is_empty() {
            "no Lifeboat replication slot on the cluster".into()
        } else {
            format!("this server's slots: {}", own.join(", "))
        },
        "",
    )
}

impl Facts {
    async fn read(c: &Client) -> Result<Self, String> {
        let r = c
            .query_one(
                "SELECT current_setting('server_version'), current_setting('wal_level'), current_setting('max_wal_senders')::int, \
                        (SELECT count(*)::int FROM pg_stat_activity WHERE backend_type = 'walsender'), \
                        current_setting('max_replication_slots')::int, \
                        (SELECT count(*)::int FROM pg_replication_slots), \
                        current_setting('max_slot_wal_keep_size')::text, \
                        current_setting('data_checksums') = 'on', \
                        r.rolsuper, r.rolreplication, \
                        pg_has_role(current_user, 'pg_read_all_data', 'USAGE') \
                 FROM pg_roles r WHERE r.rolname = current_user",
                &[],
            )
            .await
            .map_err(|e| describe(&e))?;
        Ok(Self {
            version: r.get(0),
            wal_level: r.get(1),
            max_wal_senders: r.get(2),
            wal_senders_used: r.get(3),
            max_replication_slots: r.get(4),
            slots_used: r.get(5),
            max_slot_wal_keep_size_mb: megabytes(r.get(6)),
            data_checksums: r.get(7),
            superuser: r.get(8),
            replication: r.get(9),
            read_all: r.get(10),
            lifeboat_slots: c
                .query(
                    "SELECT slot_name::text FROM pg_replication_slots \
                     WHERE slot_name LIKE 'lifeboat\\_%' ORDER BY 1",
                    &[],
                )
                .await
                .map_err(|e| describe(&e))?
                .iter()
                .map(|r| r.get(0))
                .collect(),
        })
    }
}

/// `max_slot_wal_keep_size` as `current_setting` prints it ("-1", "1024MB", "10GB")
/// in MB; -1 for unlimited or unreadable.
fn megabytes(setting: &str) -> i32 {
    let digits: String = setting
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '-')
        .collect();
    let Ok(n) = digits.parse::<i32>() else {
        return -1;
    };
    if n < 0 {
        return -1;
    }
    match setting[digits.len()..].trim() {
        "kB" => n / 1024,
        "GB" => n.saturating_mul(1024),
        "TB" => n.saturating_mul(1024 * 1024),
        _ => n,
    }
}

async fn connect(t: &AdoptTarget) -> Result<Client, String> {
    connect_to(t, "postgres", "lifeboat adoption check")
        .await
        .map_err(|e| describe(&e))
}

/// The two items that need a replication connection, made with the server major's
/// `psql` (`replication=true`): `IDENTIFY_SYSTEM`, then a temporary physical slot,
/// which the server drops when the connection ends.
async fn replication_items(t: &AdoptTarget, psql: &std::path::Path, items: &mut Vec<AdoptionItem>) {
    use PrecheckStatus::{Failed, Passed};
    let hba_advice = format!(
        "add a line such as `host replication {} <Lifeboat's address>/32 scram-sha-256` to the server's pg_hba.conf and reload it (SELECT pg_reload_conf()); then run the check again",
        t.account
    );
    match replication_command(t, psql, "IDENTIFY_SYSTEM").await {
        Ok(out) => items.push(AdoptionItem::new(
            "replication_connection",
            Passed,
            format!(
                "a replication connection as {} works (system identifier {})",
                t.account,
                out.split('|').next().unwrap_or("").trim()
            ),
            "",
        )),
        Err(e) => {
            // PostgreSQL 15: "must be superuser or replication role to start walsender";
            // 16 and later: "permission denied to start WAL sender".
            let advice = if e.contains("superuser or replication role")
                || e.contains("permission denied to start WAL sender")
            {
                "give the account REPLICATION (see the item about it), then run the check again"
            } else {
                &hba_advice
            };
            items.push(AdoptionItem::new(
                "replication_connection",
                Failed,
                format!("a replication connection as {} failed: {e}", t.account),
                advice,
            ));
            items.push(AdoptionItem::new(
                "replication_slot",
                Failed,
                "not checked: no replication connection".into(),
                "see the replication connection item",
            ));
            return;
        }
    }
    // Unique among the checks of this process and of others.
    static CHECKS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = CHECKS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let slot = format!("lifeboat_check_{}_{n}", std::process::id());
    let sql = format!("CREATE_REPLICATION_SLOT {slot} TEMPORARY PHYSICAL");
    items.push(match replication_command(t, psql, &sql).await {
        Ok(_) => AdoptionItem::new(
            "replication_slot",
            Passed,
            "a temporary physical slot was created and dropped".into(),
            "",
        ),
        Err(e) => AdoptionItem::new(
            "replication_slot",
            Failed,
            format!("creating a physical replication slot failed: {e}"),
            "raise max_replication_slots (takes a restart), or drop a slot nobody uses",
        ),
    });
}

/// Runs one replication command through `psql`, returning its unaligned output.
async fn replication_command(
    t: &AdoptTarget,
    psql: &std::path::Path,
    command: &str,
) -> Result<String, String> {
    let conninfo = format!(
        "host='{}' port={} user='{}' dbname=replication replication=true connect_timeout={} application_name='lifeboat adoption check'",
        crate::ident::conninfo_quote(&t.host),
        t.port,
        crate::ident::conninfo_quote(&t.account),
        CONNECT_TIMEOUT.as_secs()
    );
    let output = tokio::process::Command::new(psql)
        .env_clear()
        .env("PGPASSWORD", &t.password)
        .env("LC_ALL", "C")
        .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d"])
        .arg(&conninfo)
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| format!("could not run {}: {e}", psql.display()))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
    } else {
        let err = String::from_utf8_lossy(&output.stderr);
        // "psql: error: connection to server at ... failed: FATAL:  <the reason>"
        Err(err
            .lines()
            .map(|l| match l.split_once("FATAL:") {
                Some((_, why)) => why.trim(),
                None => l
                    .trim_start_matches("psql: ")
                    .trim_start_matches("error: ")
                    .trim(),
            })
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_limits_read_as_megabytes() {
        assert_eq!(megabytes("-1"), -1);
        assert_eq!(megabytes("1024MB"), 1024);
        assert_eq!(megabytes("10GB"), 10240);
        assert_eq!(megabytes("2048kB"), 2);
        assert_eq!(megabytes("junk"), -1);
    }

    #[test]
    fn slot_names_say_whose_they_are() {
        let slot = slot_name("lb-0a1b2c3d4e5f", "pg-3kq9x2");
        assert_eq!(slot, "lifeboat_lb_0a1b2c3d4e5f_pg_3kq9x2");
        assert_eq!(
            slot_owner(&slot),
            Some(("lb-0a1b2c3d4e5f".into(), "pg-3kq9x2".into()))
        );
        assert_eq!(slot_owner("lifeboat_check_12_0"), None);
        let own = lifeboat_slot_item(std::slice::from_ref(&slot), "lb-0a1b2c3d4e5f");
        assert_eq!(own.status, PrecheckStatus::Passed);
        let other = lifeboat_slot_item(&[slot], "lb-zzzzzzzzzzzz");
        assert_eq!(other.status, PrecheckStatus::Failed);
        assert!(other.detail.contains("lb-0a1b2c3d4e5f"), "{}", other.detail);
    }

    #[test]
    fn every_item_has_a_name() {
        for (id, _) in ITEMS {
            let i = AdoptionItem::new(id, PrecheckStatus::Warning, String::new(), "x");
            assert_ne!(i.name, *id);
        }
    }
}
