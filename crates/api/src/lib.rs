//! Lifeboat's wire types: what the HTTP API takes and answers, shared by the server
//! (which serves them and documents them in its OpenAPI document) and the CLI (which
//! sends and reads them). Plain data with serde and utoipa; no HTTP framework.
//!
//! # Layout
//! - [`error`]: the error body and the one list of error codes ([`ErrorCode`]).
//! - [`instances`]: instances, accounts, whitelist entries, regions.
//! - [`backups`]: base backups and their runs, the restorable window, verification,
//!   archiving health.
//! - [`events`]: the transactions that destroyed data, found in the WAL.
//! - [`temporary`]: the request for a temporary instance and its progress.
//! - [`migrations`]: migration task requests and the task as shown.
//! - [`diff`]: the diff request.

pub mod backups;
pub mod diff;
pub mod error;
pub mod events;
pub mod instances;
pub mod migrations;
pub mod temporary;
mod whole;

pub use error::{ErrorBody, ErrorCode};
