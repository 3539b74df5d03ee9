//! The table diff against real PostgreSQL clusters. One test binary with modules, to
//! save link time.

mod support;

mod errors;
mod keyed;
mod multiset;
mod values;
