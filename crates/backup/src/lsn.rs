//! PostgreSQL's log sequence numbers: [`lifeboat_domain::Lsn`], written like `0/3000028`.

pub use lifeboat_domain::Lsn;
