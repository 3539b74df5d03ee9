//! How WAL archiving of a cluster goes, from PostgreSQL's `pg_stat_archiver`.

use chrono::{DateTime, Utc};
use tokio_postgres::Client;

use crate::PgError;

/// One row of `pg_stat_archiver`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiverStats {
    pub archived_count: i64,
    pub last_archived_wal: Option<String>,
    pub last_archived_at: Option<DateTime<Utc>>,
    pub failed_count: i64,
    pub last_failed_wal: Option<String>,
    pub last_failed_at: Option<DateTime<Utc>>,
}

impl ArchiverStats {
    /// True when the last attempt failed and nothing was archived since.
    pub fn failing(&self) -> bool {
        match (self.last_failed_at, self.last_archived_at) {
            (Some(f), Some(a)) => f > a,
            (Some(_), None) => true,
            _ => false,
        }
    }
}

/// Reads `pg_stat_archiver`.
pub async fn archiver_stats(client: &Client) -> Result<ArchiverStats, PgError> {
    let row = client
        .query_one(
            "SELECT archived_count, last_archived_wal, last_archived_time, failed_count, last_failed_wal, last_failed_time FROM pg_stat_archiver",
            &[],
        )
        .await
        .map_err(PgError::sql("cannot read pg_stat_archiver"))?;
    Ok(ArchiverStats {
        archived_count: row.get(0),
        last_archived_wal: row.get(1),
        last_archived_at: row.get(2),
        failed_count: row.get(3),
        last_failed_wal: row.get(4),
        last_failed_at: row.get(5),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failing_means_the_last_attempt_failed() {
        let t = |s: i64| Some(DateTime::<Utc>::from_timestamp(s, 0).unwrap());
        let mut s = ArchiverStats {
            archived_count: 3,
            last_archived_wal: None,
            last_archived_at: t(100),
            failed_count: 1,
            last_failed_wal: None,
            last_failed_at: t(50),
        };
        assert!(!s.failing());
        s.last_failed_at = t(150);
        assert!(s.failing());
        s.last_archived_at = None;
        assert!(s.failing());
        s.last_failed_at = None;
        assert!(!s.failing());
    }
}
