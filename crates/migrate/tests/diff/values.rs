//! What counts as equal, type by type.
