//! Tables without a key, compared as multisets of whole rows.
