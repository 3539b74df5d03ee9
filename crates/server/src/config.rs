//! The server's configuration: one TOML file, every key optional, defaults embedded.
//!
//! ```toml
//! [server]
//! listen = "127.0.0.1:8080"
//! [postgres]
//! bin_dir = "/usr/lib/postgresql/15/bin"   # default for new instances: the newest found
//! bin_dirs = ["/opt/pg/16/bin"]            # more places to look for majors 15 to 18
//! os_user = "postgres"                      # default: postgres when run as root
//! [temporary_instance]
//! ttl = "48h"
//! shared_buffers = "512MB"   # PostgreSQL's setting for temporary instances
//! [backup]
//! schedule = "24h"
//! retention = "7d"
//! archive_timeout = "60s"
//! max_wal_between_backups = "1GiB"
//! wal = "archive"   # or "stream": masters Lifeboat creates stream their WAL too
//! [console]
//! # admin_password_hash = "$argon2id$..."   # from `lifeboat hash-password`; token only when absent
//! [[region]]
//! name = "local"
//! data_root = "regions/local"   # relative to the data directory
//! address = "127.0.0.1"
//! ports = "15432-15999"
//! repository = "file"
//! # repository_cipher = "aes-256-gcm"                    # or "chacha20-poly1305"; off by default
//! # repository_key_file = "/etc/lifeboat/repository.key" # 64 hex digits: openssl rand -hex 32
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// The whole configuration after defaults are applied.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub postgres: PostgresConfig,
    pub temporary_instance: TemporaryInstanceConfig,
    pub backup: BackupConfig,
    pub console: ConsoleConfig,
    #[serde(rename = "region")]
    pub regions: Vec<RegionConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub listen: SocketAddr,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PostgresConfig {
    /// The installation new instances use when `instance create` names no engine
    /// version; it is searched first. Default: the newest found.
    pub bin_dir: Option<PathBuf>,
    /// More directories to look for installations in, besides
    /// `/usr/lib/postgresql/*/bin` and `/opt/lifeboat/postgresql/*/bin`.
    pub bin_dirs: Vec<PathBuf>,
    /// The OS user clusters run as.
    pub os_user: Option<String>,
}

impl PostgresConfig {
    /// Where installations are looked for, in order.
    pub fn search_dirs(&self) -> Vec<PathBuf> {
        self.bin_dir.iter().chain(&self.bin_dirs).cloned().collect()
    }
}

/// The web console.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    /// An Argon2id hash (from `lifeboat hash-password`) of a password that signs in to
    /// the console as well as the API token does.
    pub admin_password_hash: Option<String>,
}

impl std::fmt::Debug for ConsoleConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleConfig")
            .field(
                "admin_password_hash",
                &self.admin_password_hash.as_ref().map(|_| "<hidden>"),
            )
            .finish()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TemporaryInstanceConfig {
    #[serde(with = "humantime_serde_compat")]
    pub ttl: Duration,
    /// `shared_buffers` of temporary instances, whatever the master's: enough to
    /// replay WAL without evicting pages at every record, and a bound on what a
    /// temporary instance takes from the master's machine.
    pub shared_buffers: String,
    /// Keep each master's newest base backup restored ahead of need, so a temporary
    /// instance starts from it without restoring files (costs one copy of the data
    /// directory's size per master on the region's disk).
    pub prepared_copies: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackupConfig {
    #[serde(with = "humantime_serde_compat")]
    pub schedule: Duration,
    #[serde(with = "humantime_serde_compat")]
    pub retention: Duration,
    #[serde(with = "humantime_serde_compat")]
    pub archive_timeout: Duration,
    /// Take a base backup once this much WAL was written since the last one, so a
    /// restore never replays more (e.g. "1GiB"). Backups are incremental by content,
    /// so frequent ones store little.
    #[serde(deserialize_with = "byte_size")]
    pub max_wal_between_backups: u64,
    /// How the WAL of masters Lifeboat creates reaches the repository. Adopted
    /// clusters always stream.
    pub wal: WalMode,
}

/// `archive`: `archive_command` stores each finished segment; the window ends up to
/// `archive_timeout` behind, and a restore to a later point has the master switch WAL
/// first. `stream`: WAL is also received continuously through a replication slot, so
/// the window ends seconds behind the last commit without any switch (archiving stays
/// on as a backstop).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WalMode {
    #[default]
    Archive,
    Stream,
}

/// Reads sizes written like "1GiB", "512MiB", "64MB" or a plain number of bytes.
fn byte_size<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let s = String::deserialize(d)?;
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" | "kib" | "k" => 1 << 10,
        "mb" | "mib" | "m" => 1 << 20,
        "gb" | "gib" | "g" => 1 << 30,
        "tb" | "tib" | "t" => 1 << 40,
        _ => u64::MAX,
    };
    match num.parse::<u64>() {
        Ok(n) if factor != u64::MAX && n > 0 => Ok(n.saturating_mul(factor)),
        _ => Err(serde::de::Error::custom(format!(
            "invalid size '{s}'; write it like \"1GiB\", \"512MiB\" or a number of bytes"
        ))),
    }
}

/// A named location with its own data root, address, port range and repository.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionConfig {
    pub name: String,
    /// Relative paths are under the data directory.
    #[serde(default)]
    pub data_root: Option<PathBuf>,
    #[serde(default = "default_address")]
    pub address: String,
    #[serde(default = "default_ports")]
    pub ports: PortRange,
    /// `"file"` (a directory under the region's data root) or `"s3://bucket/prefix"`.
    #[serde(default = "default_repository")]
    pub repository: String,
    /// Endpoint and credentials of an S3 repository.
    #[serde(default)]
    pub s3: Option<S3Options>,
    /// Encrypts every object of the repository with this cipher (off when absent).
    #[serde(default)]
    pub repository_cipher: Option<lifeboat_backup::encryption::Cipher>,
    /// The key of an encrypted repository: an absolute path to a file of 64 hex digits
    /// that other users cannot read. Only with `repository_cipher`.
    #[serde(default)]
    pub repository_key_file: Option<PathBuf>,
}

/// How to reach an S3-compatible repository.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Options {
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub secret_access_key_file: Option<PathBuf>,
    #[serde(default)]
    pub allow_http: bool,
}

/// An inclusive range of TCP ports, written `"15432-15999"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl TryFrom<String> for PortRange {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let bad =
            || format!("invalid port range '{s}': write it as FIRST-LAST, e.g. \"15432-15999\"");
        let (a, b) = s.split_once('-').ok_or_else(bad)?;
        let first: u16 = a.trim().parse().map_err(|_| bad())?;
        let last: u16 = b.trim().parse().map_err(|_| bad())?;
        if first == 0 || first > last {
            return Err(bad());
        }
        Ok(Self { first, last })
    }
}

impl PortRange {
    pub fn iter(self) -> impl Iterator<Item = u16> {
        self.first..=self.last
    }
}

impl std::fmt::Display for PortRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

fn default_address() -> String {
    "127.0.0.1".into()
}

fn default_ports() -> PortRange {
    PortRange {
        first: 15432,
        last: 15999,
    }
}

fn default_repository() -> String {
    "file".into()
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
        }
    }
}

impl Default for TemporaryInstanceConfig {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(48 * 3600),
            shared_buffers: "512MB".into(),
            prepared_copies: true,
        }
    }
}

impl Default for BackupConfig {
    fn default() -> Self {
        Self {
            schedule: Duration::from_secs(24 * 3600),
            retention: Duration::from_secs(7 * 24 * 3600),
            archive_timeout: Duration::from_secs(60),
            max_wal_between_backups: 1 << 30,
            wal: WalMode::Archive,
        }
    }
}

impl Config {
    /// Reads a config file; `None` gives the embedded defaults.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        let mut config: Config = match path {
            None => Config::default(),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    anyhow::anyhow!("cannot read config file {}: {e}", path.display())
                })?;
                toml::from_str(&text)
                    .map_err(|e| anyhow::anyhow!("invalid config file {}: {e}", path.display()))?
            }
        };
        config.finish()?;
        Ok(config)
    }

    /// Applies the defaults that depend on other keys and checks what serde cannot.
    fn finish(&mut self) -> anyhow::Result<()> {
        if self.regions.is_empty() {
            self.regions.push(RegionConfig {
                name: "local".into(),
                data_root: None,
                address: default_address(),
                ports: default_ports(),
                repository: default_repository(),
                s3: None,
                repository_cipher: None,
                repository_key_file: None,
            });
        }
        let mut seen = std::collections::HashSet::new();
        for region in &self.regions {
            if !seen.insert(region.name.as_str()) {
                anyhow::bail!(
                    "region '{}' is configured twice; give each region a distinct name",
                    region.name
                );
            }
            lifeboat_domain::names::validate_instance_name(&region.name)
                .map_err(|e| anyhow::anyhow!("invalid region name: {e}; {}", e.hint))?;
            // A cipher without its key (or a key that cannot be used) is told now, not
            // at the first backup: the key is read and checked here.
            region
                .repository_config(Path::new("/"))
                .key()
                .map_err(|e| {
                    anyhow::anyhow!("region '{}': {e}; hint: {}", region.name, e.hint())
                })?;
        }
        // A bin_dir that holds nothing yet is told at start and answered with 503 until
        // it does; one that holds a major Lifeboat does not run is a mistake to fix now.
        if let Some(dir) = &self.postgres.bin_dir
            && let Ok(found) = lifeboat_postgres::PgBinaries::at(dir)
            && let Some(why) = lifeboat_postgres::binaries::unsupported(found.major)
        {
            anyhow::bail!(
                "[postgres] bin_dir {}: {why}; point it at a supported installation, or leave it out to use the newest found",
                dir.display()
            );
        }
        if let Some(h) = &self.console.admin_password_hash {
            crate::credentials::admin_password::check(h.trim())?;
        }
        Ok(())
    }

    pub fn region(&self, name: &str) -> Option<&RegionConfig> {
        self.regions.iter().find(|r| r.name == name)
    }
}

impl RegionConfig {
    /// Where this region's instances live.
    pub fn data_root(&self, data_dir: &Path) -> PathBuf {
        match &self.data_root {
            Some(p) if p.is_absolute() => p.clone(),
            Some(p) => data_dir.join(p),
            None => data_dir.join("regions").join(&self.name),
        }
    }

    pub fn instances_dir(&self, data_dir: &Path) -> PathBuf {
        self.data_root(data_dir).join("instances")
    }

    /// The repository settings of this region; a `file` repository lives under the
    /// region's data root.
    pub fn repository_config(&self, data_dir: &Path) -> lifeboat_backup::RepositoryConfig {
        let mut c =
            lifeboat_backup::RepositoryConfig::local(self.data_root(data_dir).join("repository"));
        c.repository = self.repository.clone();
        if let Some(s3) = &self.s3 {
            c.endpoint = s3.endpoint.clone();
            c.region = s3.region.clone();
            c.access_key_id = s3.access_key_id.clone();
            c.secret_access_key = s3.secret_access_key.clone();
            c.secret_access_key_file = s3.secret_access_key_file.clone();
            c.allow_http = s3.allow_http;
        }
        c.repository_cipher = self.repository_cipher;
        c.repository_key_file = self.repository_key_file.clone();
        c
    }
}

/// `serde(with)` for durations written like "48h" or "90s".
mod humantime_serde_compat {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map_err(|e| {
            serde::de::Error::custom(format!(
                "invalid duration '{s}' ({e}); write it like \"48h\", \"90s\" or \"7d\""
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> anyhow::Result<Config> {
        let mut c: Config = toml::from_str(text)?;
        c.finish()?;
        Ok(c)
    }

    #[test]
    fn embedded_defaults() {
        let c = parse("").unwrap();
        assert_eq!(c.regions.len(), 1);
        assert_eq!(c.regions[0].name, "local");
        assert_eq!(
            c.regions[0].ports,
            PortRange {
                first: 15432,
                last: 15999
            }
        );
        assert_eq!(c.temporary_instance.ttl, Duration::from_secs(172800));
        assert_eq!(c.backup.retention, Duration::from_secs(7 * 86400));
        assert_eq!(c.server.listen.to_string(), "127.0.0.1:8080");
    }

    #[test]
    fn the_console_admin_password_hash_is_checked_and_never_printed() {
        let e = parse("[console]\nadmin_password_hash = \"secret-password\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("lifeboat hash-password"), "{e}");
        let h = crate::credentials::admin_password::hash("a long password").unwrap();
        let c = parse(&format!("[console]\nadmin_password_hash = \"{h}\"\n")).unwrap();
        assert_eq!(c.console.admin_password_hash.as_deref(), Some(h.as_str()));
        assert!(!format!("{c:?}").contains(&h));
        assert!(parse("").unwrap().console.admin_password_hash.is_none());
    }

    #[test]
    fn regions_and_durations() {
        let c = parse(
            "[temporary_instance]\nttl = \"90s\"\n[[region]]\nname = \"east\"\nports = \"20000-20009\"\naddress = \"127.0.0.2\"\n",
        )
        .unwrap();
        assert_eq!(c.temporary_instance.ttl, Duration::from_secs(90));
        assert_eq!(c.regions[0].ports.iter().count(), 10);
        assert_eq!(
            c.regions[0].data_root(Path::new("/d")),
            Path::new("/d/regions/east")
        );
    }

    #[test]
    fn bad_values_name_the_key() {
        let e = parse("[[region]]\nname = \"x\"\nports = \"9-1\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("invalid port range '9-1'"), "{e}");
        let e = parse("[temporary_instance]\nttl = \"soon\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("invalid duration 'soon'"), "{e}");
        let e = parse("[server]\nlisten_on = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field"), "{e}");
    }

    /// A region's key file, mode 0600, in a temp dir.
    fn key_file(dir: &Path, text: &str, mode: u32) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = dir.join("repository.key");
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    fn region_with(lines: &str) -> anyhow::Result<Config> {
        parse(&format!("[[region]]\nname = \"east\"\n{lines}"))
    }

    #[test]
    fn an_encrypted_region_reads_its_key_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let key = key_file(dir.path(), &format!("{}\n", "5a".repeat(32)), 0o600);
        let c = region_with(&format!(
            "repository_cipher = \"aes-256-gcm\"\nrepository_key_file = \"{}\"\n",
            key.display()
        ))
        .unwrap();
        let repo = c.regions[0].repository_config(Path::new("/d"));
        assert_eq!(
            repo.repository_cipher,
            Some(lifeboat_backup::encryption::Cipher::Aes256Gcm)
        );
        assert_eq!(repo.repository_key_file.as_deref(), Some(key.as_path()));
        let c = region_with(&format!(
            "repository_cipher = \"chacha20-poly1305\"\nrepository_key_file = \"{}\"\n",
            key.display()
        ))
        .unwrap();
        assert!(c.regions[0].repository_cipher.is_some());
        // Off by default.
        assert!(parse("").unwrap().regions[0].repository_cipher.is_none());
    }

    #[test]
    fn every_bad_encryption_setting_is_refused_naming_the_region_and_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let good = key_file(dir.path(), &"5a".repeat(32), 0o600);
        let err = |lines: String| region_with(&lines).unwrap_err().to_string();

        let e = err("repository_cipher = \"aes-256-gcm\"\n".into());
        assert!(
            e.contains("region 'east'") && e.contains("needs repository_key_file"),
            "{e}"
        );
        assert!(e.contains("openssl rand -hex 32"), "{e}");

        let e = err(format!("repository_key_file = \"{}\"\n", good.display()));
        assert!(
            e.contains("region 'east'") && e.contains("without repository_cipher"),
            "{e}"
        );

        let e = err(format!(
            "repository_cipher = \"aes-128-cbc\"\nrepository_key_file = \"{}\"\n",
            good.display()
        ));
        assert!(
            e.contains("aes-256-gcm") && e.contains("chacha20-poly1305"),
            "{e}"
        );

        let with_key = |path: &Path| {
            err(format!(
                "repository_cipher = \"aes-256-gcm\"\nrepository_key_file = \"{}\"\n",
                path.display()
            ))
        };
        let missing = dir.path().join("missing.key");
        let e = with_key(&missing);
        assert!(e.contains("region 'east'"), "{e}");
        assert!(e.contains(&missing.display().to_string()), "{e}");
        assert!(
            e.contains("cannot read it") && e.contains("openssl rand -hex 32"),
            "{e}"
        );

        let sub = tempfile::tempdir().unwrap();
        let short = key_file(sub.path(), &"5a".repeat(16), 0o600);
        let e = with_key(&short);
        assert!(
            e.contains(&short.display().to_string()) && e.contains("32 characters"),
            "{e}"
        );

        let sub = tempfile::tempdir().unwrap();
        let readable = key_file(sub.path(), &"5a".repeat(32), 0o644);
        let e = with_key(&readable);
        assert!(e.contains("mode 0644") && e.contains("chmod 600"), "{e}");

        let e = with_key(Path::new("relative.key"));
        assert!(e.contains("absolute"), "{e}");
    }
}
