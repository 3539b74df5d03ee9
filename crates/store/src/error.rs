//! Errors of the metadata store.

/// What went wrong in the metadata store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Another live instance already has this name.
    #[error("an instance named '{0}' already exists")]
    DuplicateName(String),
    /// The record exists already (account, whitelist entry).
    #[error("{0} already exists")]
    Duplicate(String),
    #[error("{0} not found")]
    NotFound(String),
    /// A stored value could not be read back; the store was edited by hand or is damaged.
    #[error("corrupt metadata: {0}")]
    Corrupt(String),
    /// The record's state does not allow the change.
    #[error(transparent)]
    InvalidTransition(#[from] lifeboat_domain::InvalidTransition),
    #[error("metadata store: {0}")]
    Sqlite(#[from] rusqlite::Error),
}
