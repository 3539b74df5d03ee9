//! Streaming one table's rows from the source to the target: `COPY ... TO STDOUT` on
//! a source session that reads the task's snapshot, piped into `COPY ... FROM STDIN`
//! on the target session, in binary format when every column type is built in. A
//! partitioned table is streamed leaf after leaf, each through the same stream.
//!
//! Memory stays bounded whatever the table's size: rows are forwarded as they arrive,
//! gathered into chunks of [`CHUNK`] bytes (PostgreSQL sends one message per row;
//! forwarding each alone would cost a message header and a channel hop per row), and
//! both tokio-postgres channels hold at most one chunk, so a slow target makes the
//! source wait instead of filling memory.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt, pin_mut};
use sha2::{Digest, Sha256};

use crate::migration::apply::TableWork;
use crate::migration::conn::Session;
use crate::migration::mapping::QualifiedTable;
use crate::migration::{MigrationError, PartitionOutcome, ProgressEvent, ddl};

/// Bytes gathered before they are sent to the target.
const CHUNK: usize = 256 * 1024;

/// How often progress is reported per table.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);

/// What a finished copy moved.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Copied {
    pub rows: u64,
    pub bytes: u64,
}

/// Where copied rows go.
pub(crate) enum Dest<'a> {
    /// Every row into one table (schema, name): a staging table, an existing table
    /// (which routes them to its partitions when it is partitioned), a new ordinary one.
    One(&'a str, &'a str),
    /// Each source leaf into its own new leaf: the names of
    /// [`crate::migration::partition::choose_names`].
    Leaves(&'a [QualifiedTable]),
}

/// What a table's copy moved: in all, and from each leaf (by index in the tree).
pub(crate) struct CopiedTable {
    pub total: Copied,
    pub leaves: Vec<(usize, u64)>,
    /// With a digest asked for: the SHA-256 of the COPY stream read from the source,
    /// piece after piece, and the statements that read each piece back from the
    /// target in the same format ([`read_back`]).
    pub digest: Option<([u8; 32], Vec<String>)>,
}

/// Streams the table's rows (leaf after leaf for a partitioned table, each through
/// the same bounded stream) into `dest`, reporting progress summed over the leaves.
pub(crate) async fn copy_rows(
    w: &TableWork<'_>,
    src: &Session,
    tgt: &Session,
    dest: Dest<'_>,
    freeze: bool,
    digest: bool,
) -> Result<CopiedTable, MigrationError> {
    let m = &w.table.mapping;
    let columns = w.def.copied_columns();
    let binary = w.def.binary_copy();
    let sql = |from: (&str, &str), into: (&str, &str)| {
        (
            ddl::copy_out(from.0, from.1, &columns, binary),
            ddl::copy_in(into.0, into.1, &columns, binary, freeze),
            ddl::copy_out(into.0, into.1, &columns, binary),
        )
    };
    // (leaf index, (COPY out, COPY in, COPY out of the target))
    let mut pieces: Vec<(Option<usize>, (String, String, String))> = Vec::new();
    if w.table.partitioned {
        for (i, p) in w.table.partitions.iter().enumerate() {
            if !p.is_leaf() {
                continue;
            }
            let into = match &dest {
                Dest::One(s, t) => (*s, *t),
                Dest::Leaves(names) => match names.get(i) {
                    Some(n) => (n.schema.as_str(), n.table.as_str()),
                    None => continue,
                },
            };
            pieces.push((Some(i), sql((&p.source.schema, &p.source.table), into)));
        }
    } else if let Dest::One(s, t) = dest {
        pieces.push((None, sql((&m.source.schema, &m.source.table), (s, t))));
    }
    let (estimated_rows, estimated_bytes) = (w.table.estimated_rows, w.table.table_bytes);
    let mut done = CopiedTable {
        total: Copied::default(),
        leaves: Vec::new(),
        digest: None,
    };
    let mut hasher = digest.then(Sha256::new);
    let mut read_back_sql = Vec::new();
    for (leaf, (out_sql, in_sql, back_sql)) in pieces {
        let before = done.total;
        let mut report = |c: Copied| {
            (w.progress)(ProgressEvent::TableCopying {
                key: m.key.clone(),
                rows: before.rows + c.rows,
                bytes: before.bytes + c.bytes,
                estimated_rows,
                estimated_bytes,
            })
        };
        let c = stream(
            src,
            tgt,
            &out_sql,
            &in_sql,
            binary,
            hasher.as_mut(),
            &mut report,
        )
        .await?;
        read_back_sql.push(back_sql);
        done.total.rows += c.rows;
        done.total.bytes += c.bytes;
        if let Some(i) = leaf {
            done.leaves.push((i, c.rows));
        }
    }
    done.digest = hasher.map(|h| (h.finalize().into(), read_back_sql));
    Ok(done)
}

/// What [`read_back`] found.
pub(crate) struct ReadBack {
    pub digest: [u8; 32],
    pub rows: u64,
}

/// Reads the copied pieces back from the target, in the transaction that wrote them,
/// hashing the stream as [`copy_rows`] hashed the source's. A table created and filled
/// by one `COPY` in this transaction is read back in the order its rows were written
/// (a plain heap scan; no other session can see the table, and synchronized scans are
/// turned off), so equal digests mean the target holds exactly the rows read from the
/// source's snapshot, column by column as PostgreSQL sends them.
pub(crate) async fn read_back(
    tgt: &Session,
    statements: &[String],
    binary: bool,
) -> Result<ReadBack, MigrationError> {
    tgt.execute(
        "preparing to read the copy back",
        "SET LOCAL synchronize_seqscans = off",
    )
    .await?;
    let mut hasher = Sha256::new();
    let mut rows = 0u64;
    for sql in statements {
        let stream = tgt
            .client
            .copy_out(sql.as_str())
            .await
            .map_err(tgt.err("starting to read the copy back"))?;
        pin_mut!(stream);
        let (mut messages, mut bytes) = (0u64, 0u64);
        while let Some(message) = stream.next().await {
            let message = message.map_err(tgt.err("reading the copy back"))?;
            messages += 1;
            bytes += message.len() as u64;
            hasher.update(&message);
        }
        hasher.update(bytes.to_le_bytes());
        rows += row_count(messages, binary);
    }
    Ok(ReadBack {
        digest: hasher.finalize().into(),
        rows,
    })
}

/// The leaves of a partitioned source whose rows went into one existing table.
pub(crate) fn routed(w: &TableWork<'_>, copied: &CopiedTable) -> Vec<PartitionOutcome> {
    copied
        .leaves
        .iter()
        .filter_map(|&(i, rows)| {
            Some(PartitionOutcome {
                source: w.table.partitions.get(i)?.source.to_string(),
                target: w.table.mapping.target.to_string(),
                rows_copied: rows,
            })
        })
        .collect()
}

/// Runs `copy_out` on `source` and `copy_in` on `target`, calling `progress` with the
/// rows and bytes moved so far every [`PROGRESS_EVERY`]. The row count returned is the
/// one the target's COPY reports.
pub(crate) async fn stream(
    source: &Session,
    target: &Session,
    copy_out: &str,
    copy_in: &str,
    binary: bool,
    mut digest: Option<&mut Sha256>,
    progress: &mut (dyn FnMut(Copied) + Send),
) -> Result<Copied, MigrationError> {
    let rows_in = source
        .client
        .copy_out(copy_out)
        .await
        .map_err(source.err("starting to read the table"))?;
    let sink = target
        .client
        .copy_in::<_, Bytes>(copy_in)
        .await
        .map_err(target.err("starting to write the table"))?;
    pin_mut!(rows_in);
    pin_mut!(sink);
    let mut buf = BytesMut::with_capacity(CHUNK + 64 * 1024);
    let mut messages = 0u64;
    let mut bytes = 0u64;
    let mut last_report = Instant::now();
    while let Some(message) = rows_in.next().await {
        let message = message.map_err(source.err("reading the table"))?;
        messages += 1;
        bytes += message.len() as u64;
        if let Some(h) = digest.as_mut() {
            h.update(&message);
        }
        buf.extend_from_slice(&message);
        if buf.len() >= CHUNK {
            if let Err(e) = sink.as_mut().feed(buf.split().freeze()).await {
                return Err(target_failure(sink, e, target).await);
            }
            if last_report.elapsed() >= PROGRESS_EVERY {
                last_report = Instant::now();
                progress(Copied {
                    rows: row_count(messages, binary),
                    bytes,
                });
            }
        }
    }
    if !buf.is_empty()
        && let Err(e) = sink.as_mut().feed(buf.split().freeze()).await
    {
        return Err(target_failure(sink, e, target).await);
    }
    let rows = sink
        .as_mut()
        .finish()
        .await
        .map_err(target.err("writing the table"))?;
    if let Some(h) = digest {
        // The piece's length closes it, so no two ways of cutting the same bytes into
        // pieces hash alike.
        h.update(bytes.to_le_bytes());
    }
    let copied = Copied { rows, bytes };
    progress(copied);
    Ok(copied)
}

/// Rows in `messages` COPY data messages: one per row, plus, in binary format, the
/// trailer PostgreSQL sends as a message of its own (the header rides with the first
/// row, or with the trailer of an empty table). The copy's final count comes from the
/// target.
fn row_count(messages: u64, binary: bool) -> u64 {
    if binary {
        messages.saturating_sub(1)
    } else {
        messages
    }
}

/// The real reason a send failed: when the server rejects a row the sink only sees a
/// closed channel, while `finish` returns PostgreSQL's error.
async fn target_failure(
    sink: std::pin::Pin<&mut tokio_postgres::CopyInSink<Bytes>>,
    send_error: tokio_postgres::Error,
    target: &Session,
) -> MigrationError {
    match sink.finish().await {
        Err(e) => target.err("writing the table")(e),
        Ok(_) => target.err("writing the table")(send_error),
    }
}
