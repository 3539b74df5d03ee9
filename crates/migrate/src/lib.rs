//! Lifeboat's migration crate: everything that reads or copies table data between two
//! instances (pre-check, schema and data copy, verification, table diff).
//!
//! # Layout
//! - [`diff`]: compares tables of two instances and reports exactly which rows differ,
//!   pushing almost all work into PostgreSQL (checksums of key ranges) so that few rows
//!   cross the network when little differs.
//! - [`migration`]: migration tasks: object mapping, pre-check, an atomic copy of each
//!   table with conflict modes, and verification.

pub mod diff;
pub mod migration;
