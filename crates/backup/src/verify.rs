//! Verify: re-reads every stored object of an instance and checks it.
//!
//! - every manifest decodes, and the instance's description;
//! - every content object a backup references exists, decodes (is authenticated, in
//!   an encrypted repository), and holds the content its name (digest) says; a problem names each backup file that uses the object;
//! - every WAL object decodes and its checksum matches;
//! - the WAL of each backup (start to stop segment) is present, and the WAL from the
//!   oldest backup's start to the last archived segment has no missing segment.

use std::collections::{BTreeMap, BTreeSet};

use futures::StreamExt;
use serde::Serialize;

use crate::BackupError;
use crate::manifest;
use crate::repository::Repository;
use crate::wal::{self, WalFileKind};

/// Removes the damaged content objects a [`verify`] report names, so the next base
/// backup stores that content again instead of reusing the damaged copy. Backups that
/// referenced them stay unrestorable (as they already were); WAL objects and manifests
/// are left alone, since nothing can rewrite them. Returns the keys removed.
pub async fn remove_damaged(
    repo: &Repository,
    instance: &str,
    report: &VerifyReport,
) -> Result<Vec<String>, BackupError> {
    let prefix = format!("{instance}/data/");
    let mut removed = Vec::new();
    for p in &report.problems {
        if p.object.starts_with(&prefix) {
            repo.delete(&p.object).await?;
            removed.push(p.object.clone());
        }
    }
    Ok(removed)
}

/// One problem found by [`verify`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyProblem {
    /// The repository key of the object (or of the missing object).
    pub object: String,
    /// The backup files that depend on it, as `<backup id>:<path>`.
    pub files: Vec<String>,
    pub detail: String,
}

/// What [`verify`] checked and found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    pub backups: usize,
    pub objects_checked: u64,
    pub bytes_checked: u64,
    pub problems: Vec<VerifyProblem>,
}

impl VerifyReport {
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Verifies everything stored for `instance`, reading `parallelism` objects at once.
pub async fn verify(
    repo: &Repository,
    instance: &str,
    parallelism: usize,
) -> Result<VerifyReport, BackupError> {
    // A wrong or missing key fails the whole verify, naming the repository, rather
    // than reporting every object as damaged (which remove_damaged would act on).
    repo.check_encryption().await?;
    let mut report = VerifyReport::default();
    let (backups, unreadable) = manifest::load_backups(repo, instance).await?;
    for (id, e) in unreadable {
        report.problems.push(VerifyProblem {
            object: manifest::manifest_key(instance, &id),
            files: vec![],
            detail: e.to_string(),
        });
    }
    report.backups = backups.len();
    // The description a new server restores from when this host is gone.
    match crate::description::InstanceDescription::load(repo, instance).await {
        Ok(Some(_)) => report.objects_checked += 1,
        Ok(None) => {}
        Err(e @ (BackupError::Corrupt { .. } | BackupError::KeyMismatch { .. })) => {
            report.problems.push(VerifyProblem {
                object: crate::description::description_key(instance),
                files: vec![],
                detail: e.to_string(),
            })
        }
        Err(e) => return Err(e),
    }

    // Each content object once, with every file that uses it.
    let mut users: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for m in &backups {
        for f in &m.files {
            for c in &f.chunks {
                users
                    .entry(c.clone())
                    .or_default()
                    .push(format!("{}:{}", m.id, f.path));
            }
        }
    }
    let mut checks: Vec<(String, Option<String>, Vec<String>)> = users
        .into_iter()
        .map(|(digest, files)| {
            (
                manifest::content_key(instance, &digest),
                Some(digest),
                files,
            )
        })
        .collect();

    let wal_prefix = format!("{instance}/wal/");
    let wal_objects = repo.list(&wal_prefix).await?;
    let mut segment_names = BTreeSet::new();
    for o in &wal_objects {
        if let Some(name) = o.key.strip_prefix(&wal_prefix) {
            if matches!(wal::wal_file_kind(name), Ok(WalFileKind::Segment)) {
                segment_names.insert(name.to_string());
            }
            checks.push((o.key.clone(), None, vec![]));
        }
    }

    let mut results = futures::stream::iter(checks)
        .map(|(key, digest, files)| async move {
            let outcome = match repo.get(&key).await {
                Ok(stored) => {
                    let k = key.clone();
                    let n = stored.len() as u64;
                    let codec = repo.codec().clone();
                    tokio::task::spawn_blocking(move || {
                        let (h, _) = codec.decode(&k, &stored)?;
                        match digest {
                            Some(d) if hex::encode(h.digest) != d => Err(BackupError::corrupt(
                                &k,
                                "the object holds other content than its name says",
                            )),
                            _ => Ok(n),
                        }
                    })
                    .await
                    .unwrap_or_else(|e| {
                        Err(BackupError::io("verify task failed")(
                            std::io::Error::other(e),
                        ))
                    })
                }
                Err(e) => Err(e),
            };
            (key, files, outcome)
        })
        .buffer_unordered(parallelism.max(1));
    while let Some((key, files, outcome)) = results.next().await {
        report.objects_checked += 1;
        match outcome {
            Ok(n) => report.bytes_checked += n,
            Err(e) if e.is_retryable() && !matches!(e, BackupError::Io { .. }) => return Err(e),
            Err(e) => report.problems.push(VerifyProblem {
                object: key,
                files,
                detail: match e {
                    BackupError::Corrupt { reason, .. } => reason,
                    other => other.to_string(),
                },
            }),
        }
    }
    drop(results);

    // WAL continuity on each backup's timeline, from the oldest backup's start on.
    if let Some(first) = backups.first() {
        let seg_size = first.wal_segment_size;
        let present: BTreeSet<(u32, u64)> = segment_names
            .iter()
            .filter_map(|n| wal::parse_segment(n, seg_size))
            .collect();
        let mut missing = BTreeSet::new();
        for m in &backups {
            let start = wal::segment_of(m.start_lsn.0, seg_size);
            let stop = wal::segment_of(m.stop_lsn.0.saturating_sub(1), seg_size);
            for s in start..=stop {
                if !present.contains(&(m.timeline, s)) {
                    missing.insert((m.timeline, s, Some(m.id.clone())));
                }
            }
        }
        let tli = first.timeline;
        let from = wal::segment_of(first.start_lsn.0, seg_size);
        if let Some(&(_, last)) = present.iter().rfind(|(t, _)| *t == tli) {
            for s in from..last {
                if !present.contains(&(tli, s))
                    && !missing.iter().any(|(t, x, _)| *t == tli && *x == s)
                {
                    missing.insert((tli, s, None));
                }
            }
        }
        for (t, s, backup) in missing {
            report.problems.push(VerifyProblem {
                object: wal::wal_key(instance, &wal::segment_name(t, s, seg_size)),
                files: vec![],
                detail: match backup {
                    Some(id) => {
                        format!("WAL segment missing: backup {id} cannot be restored without it")
                    }
                    None => {
                        "WAL segment missing: the WAL after it cannot be replayed (a gap)".into()
                    }
                },
            });
        }
    }
    Ok(report)
}
