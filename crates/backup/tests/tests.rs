//! Integration tests of lifeboat-backup against real PostgreSQL clusters (and a real S3
//! API server, moto, on loopback).

// Tests and benchmarks may panic on what they set up themselves.
#![allow(clippy::unwrap_used)]

mod util;

mod backup_restore;
mod corruption;
mod encryption;
mod s3;
mod wal_archive;
