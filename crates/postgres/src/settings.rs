//! The configuration Lifeboat owns in a cluster: `lifeboat.conf` and `pg_hba.conf`.
//!
//! `postgresql.conf` keeps initdb's defaults plus one `include 'lifeboat.conf'` line at
//! its end, so Lifeboat's settings win over the defaults and can be rewritten whole.

use std::fmt::Write as _;
use std::path::PathBuf;

use lifeboat_domain::WhitelistEntry;

use crate::MANAGEMENT_ROLE;

/// Continuous archiving of a cluster's WAL.
#[derive(Debug, Clone)]
pub struct ArchiveSettings {
    /// The `archive_command`, already quoted for the shell.
    pub command: String,
    /// `archive_timeout` in seconds.
    pub timeout_secs: u64,
}

/// Everything rendered into `lifeboat.conf`.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    pub port: u16,
    pub listen_address: String,
    pub socket_dir: PathBuf,
    /// `None` sets `archive_mode = off`, as a restored copy must have.
    pub archive: Option<ArchiveSettings>,
    /// Further settings, rendered last.
    pub extra: Vec<(String, String)>,
}

impl ClusterSettings {
    pub fn render(&self) -> String {
        let mut out = String::from("# Written by Lifeboat; edits are overwritten.\n");
        let mut set = |k: &str, v: &str| {
            let _ = writeln!(out, "{k} = {}", quote(v));
        };
        set("port", &self.port.to_string());
        set("listen_addresses", &self.listen_address);
        set(
            "unix_socket_directories",
            &self.socket_dir.display().to_string(),
        );
        set("unix_socket_permissions", "0700");
        set("password_encryption", "scram-sha-256");
        set("wal_level", "replica");
        set("logging_collector", "off");
        set("log_timezone", "UTC");
        set("timezone", "UTC");
        match &self.archive {
            Some(a) => {
                set("archive_mode", "on");
                set("archive_command", &a.command);
                set("archive_timeout", &format!("{}s", a.timeout_secs));
            }
            None => set("archive_mode", "off"),
        }
        for (k, v) in &self.extra {
            set(k, v);
        }
        out
    }
}

/// A `postgresql.conf` string literal.
fn quote(v: &str) -> String {
    format!("'{}'", v.replace('\\', "\\\\").replace('\'', "''"))
}

/// Renders `pg_hba.conf`: Lifeboat's role over the private socket, then one line per
/// whitelist entry, all accounts authenticated with SCRAM-SHA-256.
pub fn render_hba(whitelist: &[WhitelistEntry]) -> String {
    render_hba_for(MANAGEMENT_ROLE, whitelist)
}

/// [`render_hba`] for a cluster Lifeboat manages as `role` (the bootstrap superuser
/// of a restored copy of a cluster it did not create).
pub fn render_hba_for(role: &str, whitelist: &[WhitelistEntry]) -> String {
    let mut out = String::from(
        "# Written by Lifeboat from the instance's whitelist; edits are overwritten.\n\
         # TYPE  DATABASE  USER  ADDRESS  METHOD\n",
    );
    // The socket directory is mode 0700, so only the OS user and root reach this line.
    let role = crate::ident::quote_ident(role);
    let _ = writeln!(out, "local all {role} trust");
    // WAL streaming (`[backup] wal = "stream"`) over the same socket.
    let _ = writeln!(out, "local replication {role} trust");
    let _ = writeln!(out, "local all all scram-sha-256");
    for entry in whitelist {
        let _ = writeln!(out, "host all all {entry} scram-sha-256");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hba_lists_each_entry_with_scram() {
        let hba = render_hba(&[
            WhitelistEntry::localhost(),
            WhitelistEntry::parse("10.1.0.0/16").unwrap(),
        ]);
        assert!(hba.contains("host all all 127.0.0.1/32 scram-sha-256\n"));
        assert!(hba.contains("host all all 10.1.0.0/16 scram-sha-256\n"));
        assert!(!hba.contains("host all all 0.0.0.0/0"));
    }

    #[test]
    fn settings_quote_values() {
        let s = ClusterSettings {
            port: 15432,
            listen_address: "127.0.0.1".into(),
            socket_dir: "/x/it's".into(),
            archive: None,
            extra: vec![],
        };
        let text = s.render();
        assert!(text.contains("port = '15432'"));
        assert!(text.contains("unix_socket_directories = '/x/it''s'"));
        assert!(text.contains("archive_mode = 'off'"));
    }
}
