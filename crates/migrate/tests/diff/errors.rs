//! Bad input: missing tables, differing schemas, permissions, hostile names.
