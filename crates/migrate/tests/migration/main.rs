//! The migration engine against two real clusters (source and target). One test
//! binary with modules, to save link time.

// Tests and benchmarks may panic on what they set up themselves.
#![allow(clippy::unwrap_used)]

mod support;

mod conflict_modes;
mod inheritance;
mod objects;
mod partitions;
mod precheck;
mod rename;
mod repair;
mod resume;
mod schema;
mod undo_delete;
mod verification;
