//! The connection to each side of a diff: a read-only REPEATABLE READ transaction (one
//! consistent snapshot for the whole diff, and PostgreSQL itself refuses any write), with
//! the settings that fix how values are written as text, and server-side cursors so
//! that results stream in bounded batches while other queries run on the same
//! connection.

use std::sync::atomic::{AtomicU32, Ordering};

use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Row};

use crate::diff::{DiffError, Side};

/// Settings that make both sides write the same value as the same text: row
/// checksums hash the text form, so a different `TimeZone` would make every
/// `timestamptz` differ. `search_path` is pinned so that the functions the diff calls
/// (`hashtextextended`, `width_bucket`, `to_json`...) cannot be shadowed by a user's
/// objects, and so that `format_type` qualifies user types. Cursors are read to the
/// end, so they are planned for the whole result; JIT compilation costs more than it
/// saves on these queries. Checksum queries group a slice of about a million rows:
/// with the default 4MB of `work_mem` they spill to disk and run five times slower.
const SETTINGS: &str = "SET LOCAL search_path = pg_catalog; \
    SET LOCAL TimeZone = 'UTC'; \
    SET LOCAL DateStyle = 'ISO, YMD'; \
    SET LOCAL IntervalStyle = 'postgres'; \
    SET LOCAL extra_float_digits = 1; \
    SET LOCAL bytea_output = 'hex'; \
    SET LOCAL lc_monetary = 'C'; \
    SET LOCAL jit = off; \
    SET LOCAL cursor_tuple_fraction = 1; \
    SET LOCAL work_mem = '64MB'";

/// One side of the comparison.
pub(crate) struct Conn<'a> {
    pub client: &'a Client,
    pub side: Side,
    /// Cursor names must be unique within the transaction.
    next_cursor: AtomicU32,
}

impl<'a> Conn<'a> {
    pub fn new(client: &'a Client, side: Side) -> Self {
        Self {
            client,
            side,
            next_cursor: AtomicU32::new(0),
        }
    }

    /// Starts the read-only snapshot, a fresh one or the one `snapshot` names (as
    /// `pg_export_snapshot()` returned it). Statements run in it can only read.
    pub async fn begin(&self, snapshot: Option<&str>) -> Result<(), DiffError> {
        let import = snapshot
            .map(|s| format!("SET TRANSACTION SNAPSHOT '{}'; ", s.replace('\'', "''")))
            .unwrap_or_default();
        let sql = format!("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; {import}{SETTINGS}");
        self.client
            .batch_execute(&sql)
            .await
            .map_err(DiffError::query(
                self.side,
                "starting a read-only transaction",
            ))
    }

    /// Ends the transaction. It never wrote anything, so a rollback loses nothing; it
    /// is used on every path so that an aborted transaction is also cleared.
    pub async fn end(&self) -> Result<(), DiffError> {
        self.client
            .batch_execute("ROLLBACK")
            .await
            .map_err(DiffError::query(
                self.side,
                "ending the read-only transaction",
            ))
    }

    pub async fn query(
        &self,
        context: &str,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, DiffError> {
        tracing::trace!(side = %self.side, %sql, "query");
        self.client
            .query(sql, params)
            .await
            .map_err(DiffError::query(self.side, context))
    }

    /// Opens a cursor over `sql`; rows are then read in batches with
    /// [`Cursor::next`].
    pub async fn cursor(
        &self,
        context: &str,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Cursor<'_>, DiffError> {
        let name = format!(
            "lifeboat_diff_{}",
            self.next_cursor.fetch_add(1, Ordering::Relaxed)
        );
        let declare = format!("DECLARE {name} NO SCROLL CURSOR FOR {sql}");
        tracing::trace!(side = %self.side, sql = %declare, "cursor");
        self.client
            .execute(&declare, params)
            .await
            .map_err(DiffError::query(self.side, context))?;
        Ok(Cursor {
            conn: self,
            name,
            context: context.to_string(),
            buffer: Vec::new().into_iter(),
            exhausted: false,
        })
    }
}

/// Rows fetched per round trip: large enough that round trips do not dominate, small
/// enough that memory stays bounded whatever the table size.
const CURSOR_BATCH: usize = 10_000;

/// A server-side cursor read row by row, fetching in batches.
pub(crate) struct Cursor<'c> {
    conn: &'c Conn<'c>,
    name: String,
    context: String,
    buffer: std::vec::IntoIter<Row>,
    exhausted: bool,
}

impl Cursor<'_> {
    pub async fn next(&mut self) -> Result<Option<Row>, DiffError> {
        if let Some(row) = self.buffer.next() {
            return Ok(Some(row));
        }
        if self.exhausted {
            return Ok(None);
        }
        let fetch = format!("FETCH {CURSOR_BATCH} FROM {}", self.name);
        let rows = self.conn.query(&self.context, &fetch, &[]).await?;
        if rows.len() < CURSOR_BATCH {
            self.exhausted = true;
            // Frees the cursor's sort memory now rather than at the end of the diff.
            self.conn
                .query(&self.context, &format!("CLOSE {}", self.name), &[])
                .await?;
        }
        self.buffer = rows.into_iter();
        Ok(self.buffer.next())
    }
}

/// Runs the same kind of work on both sides at once.
pub(crate) async fn both<T, F1, F2>(source: F1, target: F2) -> Result<(T, T), DiffError>
where
    F1: Future<Output = Result<T, DiffError>>,
    F2: Future<Output = Result<T, DiffError>>,
{
    tokio::try_join!(source, target)
}
