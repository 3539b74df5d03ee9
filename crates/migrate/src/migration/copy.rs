//! Streaming one table's rows from the source to the target: `COPY ... TO STDOUT` on
//! a source session that reads the task's snapshot, piped into `COPY ... FROM STDIN`
//! on the target session, in binary format when every column type is built in.
//!
//! Memory stays bounded whatever the table's size: rows are forwarded as they arrive,
//! gathered into chunks of [`CHUNK`] bytes (PostgreSQL sends one message per row;
//! forwarding each alone would cost a message header and a channel hop per row), and
//! both tokio-postgres channels hold at most one chunk, so a slow target makes the
//! source wait instead of filling memory.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt, pin_mut};

use crate::migration::MigrationError;
use crate::migration::conn::Session;

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

/// Runs `copy_out` on `source` and `copy_in` on `target`, calling `progress` with the
/// rows and bytes moved so far every [`PROGRESS_EVERY`]. The row count returned is the
/// one the target's COPY reports.
pub(crate) async fn stream(
    source: &Session,
    target: &Session,
    copy_out: &str,
    copy_in: &str,
    binary: bool,
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
    let copied = Copied { rows, bytes };
    progress(copied);
    Ok(copied)
}

/// Rows in `messages` COPY data messages: one per row, plus, in binary format, the
/// trailer PostgreSQL sends as a message of its own (the header rides with the first
/// row). Only for progress; the final count comes from the target.
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
