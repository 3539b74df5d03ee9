//! Comparing tables of two instances: the one diff path of the API and the console.
//!
//! Reads only. Without credentials a side is read through the server's private
//! management connection; with an account and password it is reached over TCP like
//! any client, so the diff sees what that account may see. [`report`] gathers one
//! report; [`stream`] sends every differing row as it is found (one JSON object a
//! line, then each table's summary, then the report), holding no more than a bounded
//! buffer of rows in memory whatever the number of differences.

use std::time::Duration;

use lifeboat_api::diff::{DiffBody, DiffLine, DiffSide};
use lifeboat_domain::InstanceStatus;
use lifeboat_migrate::diff::{DiffReport, DiffRequest, DiffRow, SchemaPair, TableDiff, TablePair};
use tokio_postgres::Client;

use super::registry::{NO_SUCH_DATABASE, connect_db, instance, no_such_database, region_of};
use super::workers::{self, Priority};
use super::{Error, ErrorCode, Result, Shared};

/// Rows waiting for the reader when it reads slower than the diff finds them.
const STREAM_BUFFER: usize = 256;

/// A diff ready to run: the request and a connection to each side.
pub struct Prepared {
    source: Client,
    target: Client,
    request: DiffRequest,
}

/// Reads the request and connects to both sides.
pub async fn prepare(state: &Shared, body: &DiffBody) -> Result<Prepared> {
    let request = parse_request(body)?;
    let database = body.database.clone().unwrap_or_else(|| "postgres".into());
    let source = connect(state, &body.source, &database, "source").await?;
    let target = connect(state, &body.target, &database, "target").await?;
    Ok(Prepared {
        source,
        target,
        request,
    })
}

fn parse_request(body: &DiffBody) -> Result<DiffRequest> {
    let mut request = DiffRequest::tables(
        body.tables
            .iter()
            .map(|t| TablePair::parse(t))
            .collect::<Result<Vec<_>, _>>()?,
    );
    for s in &body.schemas {
        let (a, b) = s.split_once('=').unwrap_or((s, s));
        request.schemas.push(SchemaPair {
            source: a.trim().to_string(),
            target: b.trim().to_string(),
        });
    }
    if let Some(limit) = body.limit {
        request.limit = limit;
    }
    if request.tables.is_empty() && request.schemas.is_empty() {
        return Err(Error::invalid(
            "no table to compare",
            "name tables with --table SCHEMA.TABLE[=SCHEMA.TABLE] or whole schemas with --schema SCHEMA",
        ));
    }
    Ok(request)
}

/// Connects to one side, as the management role or as the given account.
async fn connect(state: &Shared, side: &DiffSide, database: &str, which: &str) -> Result<Client> {
    let rec = instance(state, &side.instance).map_err(|e| e.on(which))?;
    if rec.status != InstanceStatus::Running {
        return Err(Error::new(
            ErrorCode::InstanceNotRunning,
            format!("{which} instance {} is {}, not running", rec.id, rec.status),
            format!("start it first: lifeboat instance start {}", rec.id),
        ));
    }
    let Some(account) = &side.account else {
        return connect_db(state, &rec, database, Some(which)).await;
    };
    let address = region_of(state, &rec.region)?.address.clone();
    let mut config = tokio_postgres::Config::new();
    config
        .host(&address)
        .port(rec.port)
        .user(account)
        .password(side.password.clone().unwrap_or_default())
        .dbname(database)
        .application_name("lifeboat diff")
        .connect_timeout(Duration::from_secs(10));
    let (client, conn) = config.connect(tokio_postgres::NoTls).await.map_err(|e| {
        let why = lifeboat_postgres::describe(&e);
        match e.code().map(|c| c.code()) {
            Some(NO_SUCH_DATABASE) => no_such_database(&rec, database, Some(which)),
            // invalid_password, invalid_authorization_specification (no such role, or
            // no pg_hba.conf line for the address).
            Some("28P01" | "28000") => Error::new(
                ErrorCode::AuthenticationFailed,
                format!(
                    "the {which} instance {} refused the account {account}: {why}",
                    rec.id
                ),
                format!(
                    "check the account and its password (--{which}-account, --{which}-password-file), and that the instance's whitelist allows this server's address"
                ),
            ),
            _ => Error::new(
                ErrorCode::ConnectionFailed,
                format!(
                    "cannot connect to the {which} instance {} as {account}: {why}",
                    rec.id
                ),
                "check the account, its password and the instance's whitelist",
            ),
        }
    })?;
    tokio::spawn(conn);
    Ok(client)
}

/// Runs the diff and returns the whole report. The diff is not a `Send` future: it
/// runs on a thread of its own, while the clients' connections stay on the server's
/// runtime, reached through channels.
pub async fn report(p: Prepared) -> Result<DiffReport> {
    workers::on_thread("diff", Priority::Normal, move || async move {
        let mut sink = lifeboat_migrate::diff::NoSink;
        Ok(
            lifeboat_migrate::diff::diff_tables(&p.source, &p.target, &p.request, &mut sink)
                .await?,
        )
    })
    .await
}

/// Runs the diff on a thread of its own and sends its NDJSON lines. The sink blocks
/// that thread when the bounded buffer is full, so a slow reader pauses the diff
/// instead of growing memory; a reader that hangs up (drops the receiver) stops it.
pub fn stream(p: Prepared) -> Result<tokio::sync::mpsc::Receiver<bytes::Bytes>> {
    let (rows_tx, rows_rx) = std::sync::mpsc::sync_channel::<bytes::Bytes>(STREAM_BUFFER);
    workers::spawn_thread("diff", Priority::Normal, move || async move {
        let mut sink = NdjsonSink {
            out: rows_tx.clone(),
        };
        let result =
            lifeboat_migrate::diff::diff_tables(&p.source, &p.target, &p.request, &mut sink).await;
        let last = match result {
            Ok(report) => DiffLine {
                report: Some(strip_rows(report)),
                ..Default::default()
            },
            Err(e) => DiffLine {
                error: Some(Error::from(e).body()),
                ..Default::default()
            },
        };
        let _ = rows_tx.send(line(&last));
    })?;
    let (tx, rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(STREAM_BUFFER);
    tokio::task::spawn_blocking(move || {
        while let Ok(l) = rows_rx.recv() {
            if tx.blocking_send(l).is_err() {
                break;
            }
        }
    });
    Ok(rx)
}

fn strip_rows(mut report: DiffReport) -> DiffReport {
    for t in &mut report.tables {
        t.rows.clear();
    }
    report
}

/// A row line of the stream ([`DiffLine`]'s shape), borrowing the row: serialized
/// straight from the diff's values, which keeps each one as PostgreSQL wrote it (a
/// detour through `serde_json::Value` would turn numerics into doubles).
#[derive(serde::Serialize)]
struct RowLine<'a> {
    table: &'a str,
    row: &'a DiffRow,
}

/// A table's summary line ([`DiffLine`]'s shape).
#[derive(serde::Serialize)]
struct TableDoneLine<'a> {
    table_done: &'a TableDiff,
}

fn line(v: &impl serde::Serialize) -> bytes::Bytes {
    let mut s = serde_json::to_vec(v).unwrap_or_default();
    s.push(b'\n');
    bytes::Bytes::from(s)
}

struct NdjsonSink {
    out: std::sync::mpsc::SyncSender<bytes::Bytes>,
}

impl lifeboat_migrate::diff::DiffSink for NdjsonSink {
    fn row(&mut self, table: &str, row: &DiffRow) -> std::io::Result<()> {
        self.out
            .send(line(&RowLine { table, row }))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client hung up"))
    }

    fn table_done(&mut self, table: &TableDiff) -> std::io::Result<()> {
        let mut summary = table.clone();
        summary.rows.clear();
        self.out
            .send(line(&TableDoneLine {
                table_done: &summary,
            }))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client hung up"))
    }
}
