//! Integration tests of lifeboat-backup against real PostgreSQL clusters (and a real S3
//! API server, moto, on loopback).

mod util;

mod backup_restore;
mod corruption;
mod s3;
mod wal_archive;
