//! Where a region's backup repository lives: [`RepositoryConfig`], as written in
//! Lifeboat's configuration file and in the small file `archive_command` reads.
//!
//! ```toml
//! repository = "file"                 # a local directory, given by `path`
//! path = "/var/lib/lifeboat/regions/local/repository"
//! ```
//! ```toml
//! repository = "s3://lifeboat-backups/prod"   # bucket and optional prefix
//! endpoint = "http://127.0.0.1:9000"
//! region = "us-east-1"
//! access_key_id = "..."
//! secret_access_key_file = "/etc/lifeboat/s3-secret"   # or secret_access_key
//! allow_http = true
//! ```
//! Either may be encrypted ([`crate::encryption`]):
//! ```toml
//! repository_cipher = "aes-256-gcm"   # or "chacha20-poly1305"
//! repository_key_file = "/etc/lifeboat/repository.key"
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::BackupError;
use crate::encryption::{Cipher, Encryption, RepositoryKey};
use crate::object::Codec;

/// The settings of one region's backup repository.
/// Unknown fields are ignored so the server can `#[serde(flatten)]` this into its
/// `[[region]]` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepositoryConfig {
    /// `"file"` (with `path`), `"file:///absolute/dir"`, or `"s3://bucket[/prefix]"`.
    pub repository: String,
    /// The directory of a `"file"` repository. The server fills in its default (under
    /// the data directory) before opening it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// S3 endpoint URL, for S3-compatible servers other than AWS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    /// Prefer `secret_access_key_file`, so the secret is not in the main config file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_access_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_access_key_file: Option<PathBuf>,
    /// Allows an `http://` endpoint (loopback test servers, private networks).
    #[serde(default)]
    pub allow_http: bool,
    /// Encrypts every object with this cipher, under the key in `repository_key_file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository_cipher: Option<Cipher>,
    /// 64 hex digits (32 random bytes); an absolute path. Only with `repository_cipher`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository_key_file: Option<PathBuf>,
}

/// A parsed [`RepositoryConfig::repository`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepositoryLocation {
    Local { dir: PathBuf },
    S3 { bucket: String, prefix: String },
}

impl RepositoryConfig {
    /// A local-directory repository at `dir`.
    pub fn local(dir: impl Into<PathBuf>) -> Self {
        Self {
            repository: "file".into(),
            path: Some(dir.into()),
            endpoint: None,
            region: None,
            access_key_id: None,
            secret_access_key: None,
            secret_access_key_file: None,
            allow_http: false,
            repository_cipher: None,
            repository_key_file: None,
        }
    }

    /// Reads a config file: JSON when it ends in `.json`, TOML otherwise.
    pub fn load(path: &Path) -> Result<Self, BackupError> {
        let text = std::fs::read_to_string(path)
            .map_err(BackupError::io(format!("cannot read {}", path.display())))?;
        let parsed = if path.extension().is_some_and(|e| e == "json") {
            serde_json::from_str(&text).map_err(|e| e.to_string())
        } else {
            toml::from_str(&text).map_err(|e| e.to_string())
        };
        parsed.map_err(|e| BackupError::Config(format!("{}: {e}", path.display())))
    }

    /// Writes the config as TOML, mode 0600 since it may hold a secret.
    pub fn save(&self, path: &Path) -> Result<(), BackupError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let text = toml::to_string(self).map_err(|e| BackupError::Config(e.to_string()))?;
        let ctx = || format!("cannot write {}", path.display());
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)
            .map_err(BackupError::io(ctx()))?;
        f.write_all(text.as_bytes()).map_err(BackupError::io(ctx()))
    }

    /// Where the repository is, checked for shape.
    pub fn location(&self) -> Result<RepositoryLocation, BackupError> {
        let repo = self.repository.trim();
        if repo == "file" {
            let dir = self
                .path
                .clone()
                .ok_or_else(|| BackupError::Config("repository = \"file\" needs a path".into()))?;
            return local_dir(dir);
        }
        if let Some(rest) = repo.strip_prefix("file://") {
            return local_dir(PathBuf::from(rest));
        }
        if let Some(rest) = repo.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(BackupError::Config(format!("'{repo}' names no bucket")));
            }
            return Ok(RepositoryLocation::S3 {
                bucket: bucket.to_string(),
                prefix: prefix.trim_matches('/').to_string(),
            });
        }
        Err(BackupError::Config(format!(
            "repository '{repo}' is neither \"file\", file:///dir nor s3://bucket/prefix"
        )))
    }

    /// The key of an encrypted repository, read and checked; `None` in clear. A cipher
    /// without a key file, or a key file without a cipher, is refused.
    pub fn key(&self) -> Result<Option<(Cipher, RepositoryKey)>, BackupError> {
        match (self.repository_cipher, &self.repository_key_file) {
            (None, None) => Ok(None),
            (Some(c), None) => Err(BackupError::Config(format!(
                "repository_cipher = \"{c}\" needs repository_key_file, the file holding the key; make one with `{}` and keep a copy away from this host",
                crate::encryption::key_file::make_key_command(Path::new("FILE"))
            ))),
            (None, Some(path)) => Err(BackupError::Config(format!(
                "repository_key_file = \"{}\" is set without repository_cipher; add repository_cipher = \"aes-256-gcm\" (or \"chacha20-poly1305\") to encrypt the repository, or remove the key file line",
                path.display()
            ))),
            (Some(c), Some(path)) if !path.is_absolute() => Err(BackupError::Config(format!(
                "repository_key_file \"{}\" must be an absolute path (repository_cipher = \"{c}\")",
                path.display()
            ))),
            (Some(c), Some(path)) => Ok(Some((c, RepositoryKey::load(path)?))),
        }
    }

    /// How objects of this repository are written and read.
    pub fn codec(&self) -> Result<Codec, BackupError> {
        Ok(match self.key()? {
            None => Codec::clear(),
            Some((cipher, key)) => Codec::encrypted(Encryption::new(cipher, &key)),
        })
    }

    /// The secret key, from the file when one is named.
    pub(crate) fn secret(&self) -> Result<Option<String>, BackupError> {
        match &self.secret_access_key_file {
            Some(path) => std::fs::read_to_string(path)
                .map(|s| Some(s.trim().to_string()))
                .map_err(BackupError::io(format!("cannot read {}", path.display()))),
            None => Ok(self.secret_access_key.clone()),
        }
    }
}

fn local_dir(dir: PathBuf) -> Result<RepositoryLocation, BackupError> {
    if !dir.is_absolute() {
        return Err(BackupError::Config(format!(
            "repository path {} must be absolute",
            dir.display()
        )));
    }
    Ok(RepositoryLocation::Local { dir })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_file_and_s3_locations() {
        let c: RepositoryConfig = toml::from_str("repository = \"file\"\npath = \"/r\"").unwrap();
        assert_eq!(
            c.location().unwrap(),
            RepositoryLocation::Local { dir: "/r".into() }
        );
        let c: RepositoryConfig =
            toml::from_str("repository = \"s3://b/some/prefix/\"\nallow_http = true").unwrap();
        assert_eq!(
            c.location().unwrap(),
            RepositoryLocation::S3 {
                bucket: "b".into(),
                prefix: "some/prefix".into()
            }
        );
        assert!(c.allow_http);
    }

    #[test]
    fn refuses_bad_locations() {
        for bad in ["ftp://x", "s3://", "file://relative"] {
            let c = RepositoryConfig {
                repository: bad.into(),
                ..RepositoryConfig::local("/x")
            };
            assert!(c.location().is_err(), "{bad} accepted");
        }
        let c = RepositoryConfig {
            path: None,
            ..RepositoryConfig::local("/x")
        };
        assert!(c.location().is_err());
    }

    #[test]
    fn a_cipher_and_a_key_file_go_together() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("k");
        std::fs::write(&key, "ab".repeat(32)).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let with = |cipher: Option<&str>, file: Option<&Path>| -> Result<Codec, BackupError> {
            let mut text = "repository = \"file\"\npath = \"/r\"\n".to_string();
            if let Some(c) = cipher {
                text.push_str(&format!("repository_cipher = \"{c}\"\n"));
            }
            if let Some(f) = file {
                text.push_str(&format!("repository_key_file = \"{}\"\n", f.display()));
            }
            let c: RepositoryConfig =
                toml::from_str(&text).map_err(|e| BackupError::Config(e.to_string()))?;
            c.codec()
        };
        assert!(with(None, None).unwrap().cipher().is_none());
        assert_eq!(
            with(Some("chacha20-poly1305"), Some(&key))
                .unwrap()
                .cipher(),
            Some(Cipher::ChaCha20Poly1305)
        );
        let e = with(Some("aes-256-gcm"), None).unwrap_err().to_string();
        assert!(
            e.contains("needs repository_key_file") && e.contains("openssl rand"),
            "{e}"
        );
        let e = with(None, Some(&key)).unwrap_err().to_string();
        assert!(e.contains("without repository_cipher"), "{e}");
        let e = with(Some("aes-256-gcm"), Some(Path::new("k")))
            .unwrap_err()
            .to_string();
        assert!(e.contains("absolute"), "{e}");
        let e = with(Some("aes-128-ecb"), Some(&key))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("aes-256-gcm") && e.contains("chacha20-poly1305"),
            "{e}"
        );
        let missing = dir.path().join("missing");
        let e = with(Some("aes-256-gcm"), Some(&missing)).unwrap_err();
        assert!(matches!(e, BackupError::KeyFile { .. }), "{e}");
        // The config written for archive_command keeps both.
        let mut c = RepositoryConfig::local("/r");
        c.repository_cipher = Some(Cipher::Aes256Gcm);
        c.repository_key_file = Some(key.clone());
        let saved = dir.path().join("repository.toml");
        c.save(&saved).unwrap();
        assert_eq!(RepositoryConfig::load(&saved).unwrap(), c);
    }
}
