//! The table diff against real PostgreSQL clusters. One test binary with modules, to
//! save link time.

// Tests and benchmarks may panic on what they set up themselves.
#![allow(clippy::unwrap_used)]

mod support;

mod errors;
mod keyed;
mod multiset;
mod values;
