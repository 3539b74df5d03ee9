//! Integration tests of the `lifeboat` binary against real PostgreSQL clusters.
//!
//! One test binary (to link once); each test starts its own server with its own data
//! directory, port range and clusters, and stops them all when it ends.

// Tests and benchmarks may panic on what they set up themselves.
#![allow(clippy::unwrap_used)]

mod suite;
