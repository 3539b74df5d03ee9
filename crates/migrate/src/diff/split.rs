//! Key ranges and how a range is split into buckets, identically on both sides.
//!
//! A bucket is a key range; both sides compute the same bucket number for the same key
//! because the split is fixed before either side is queried: for an integer key by
//! arithmetic (`(key - lo) / width`), for any other key by boundary keys taken from one
//! side and sent to both, compared in byte order (`width_bucket` over the boundaries
//! for a fixed-width key, a running count of the boundaries sorted in with the rows
//! otherwise; see [`crate::diff::sql`]).

/// A key as the text form of each key column: sent back to PostgreSQL cast to the
/// column's type, and used in Rust to match rows of the two sides.
pub(crate) type Key = Vec<String>;

/// A range of keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Range {
    /// An integer key from `lo` to `hi`, both included (so that `i64::MAX` fits).
    Int { lo: i64, hi: i64 },
    /// Any key from `lo` (included) to `hi` (excluded) in byte order; `None` is
    /// unbounded.
    Keys { lo: Option<Key>, hi: Option<Key> },
}

/// A range cut into numbered buckets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Split {
    /// Bucket `b` is `[lo + b * width, lo + (b + 1) * width - 1]`, cut at `hi`.
    /// `hi - lo` always fits an `i64`, so `key - lo` cannot overflow in SQL.
    Int { lo: i64, hi: i64, width: i64 },
    /// `width_bucket` numbering: bucket 0 is `[lo, bounds[0])`, bucket `b` is
    /// `[bounds[b - 1], bounds[b])`, and the last bucket ends at `hi`.
    Bounds {
        lo: Option<Key>,
        hi: Option<Key>,
        bounds: Vec<Key>,
    },
}

impl Split {
    /// Integer buckets of about `rows_per_bucket` rows for a range thought to hold
    /// `rows` rows.
    #[cfg(test)]
    pub fn int(lo: i64, hi: i64, rows: f64, rows_per_bucket: u64) -> Self {
        let width = int_width(lo, hi, rows, rows_per_bucket);
        Split::Int { lo, hi, width }
    }

    pub fn range(&self) -> Range {
        match self {
            Split::Int { lo, hi, .. } => Range::Int { lo: *lo, hi: *hi },
            Split::Bounds { lo, hi, .. } => Range::Keys {
                lo: lo.clone(),
                hi: hi.clone(),
            },
        }
    }

    /// The key range of bucket `b` (as numbered by the bucket expression).
    pub fn bucket_range(&self, b: i64) -> Range {
        match self {
            Split::Int { lo, hi, width } => {
                let start = i128::from(*lo) + i128::from(b) * i128::from(*width);
                let end = (start + i128::from(*width) - 1).min(i128::from(*hi));
                Range::Int {
                    lo: clamp_i64(start),
                    hi: clamp_i64(end),
                }
            }
            Split::Bounds { lo, hi, bounds } => {
                let b = usize::try_from(b).unwrap_or(0).min(bounds.len());
                let start = if b == 0 {
                    lo.clone()
                } else {
                    Some(bounds[b - 1].clone())
                };
                let end = bounds.get(b).cloned().or_else(|| hi.clone());
                Range::Keys { lo: start, hi: end }
            }
        }
    }
}

/// Cuts the integer range `[min, max]` (thought to hold `rows` rows) into slices of at
/// most `buckets_per_query` buckets, each a [`Split`] queried on its own. With
/// `buckets_per_query == u64::MAX` the whole range is one slice, unless its span does
/// not fit an `i64`.
pub(crate) fn int_slices(
    min: i64,
    max: i64,
    rows: f64,
    rows_per_bucket: u64,
    buckets_per_query: u64,
) -> impl Iterator<Item = Split> {
    let width = int_width(min, max, rows, rows_per_bucket);
    let slice =
        (i128::from(width) * i128::from(buckets_per_query.max(1))).min(i128::from(i64::MAX));
    let mut start = Some(i128::from(min));
    std::iter::from_fn(move || {
        let lo = start?;
        let hi = (lo + slice - 1).min(i128::from(max));
        start = (hi < i128::from(max)).then_some(hi + 1);
        Some(Split::Int {
            lo: clamp_i64(lo),
            hi: clamp_i64(hi),
            width,
        })
    })
}

/// A finer split of an integer bucket found to hold `rows` rows on the fuller side;
/// always makes progress (at least two buckets) while the range holds several keys.
pub(crate) fn refine_int(lo: i64, hi: i64, rows: u64, rows_per_bucket: u64) -> Split {
    let span = i128::from(hi) - i128::from(lo) + 1;
    let buckets = ceil_div(i128::from(rows), i128::from(rows_per_bucket.max(1))).max(2);
    let width = ceil_div(span, buckets).clamp(1, i128::from(i64::MAX));
    Split::Int {
        lo,
        hi,
        width: width as i64,
    }
}

/// The bucket width giving about `rows_per_bucket` rows per bucket when `rows` rows
/// are spread over `[lo, hi]`.
fn int_width(lo: i64, hi: i64, rows: f64, rows_per_bucket: u64) -> i64 {
    let span = i128::from(hi) - i128::from(lo) + 1;
    let buckets = (rows / rows_per_bucket.max(1) as f64).ceil().max(1.0) as i128;
    ceil_div(span, buckets).clamp(1, i128::from(i64::MAX)) as i64
}

fn ceil_div(a: i128, b: i128) -> i128 {
    (a + b - 1) / b.max(1)
}

fn clamp_i64(v: i128) -> i64 {
    v.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int_buckets_cover_the_range_without_overlap() {
        let split = Split::int(1, 100, 100.0, 16);
        let Split::Int { width, .. } = split else {
            panic!()
        };
        // 100 rows in buckets of 16 need 7 buckets, 15 keys wide.
        assert_eq!(width, 15);
        assert_eq!(split.bucket_range(0), Range::Int { lo: 1, hi: 15 });
        assert_eq!(split.bucket_range(6), Range::Int { lo: 91, hi: 100 });
    }

    #[test]
    fn slices_cover_extreme_ranges_and_stop() {
        let slices: Vec<_> = int_slices(i64::MIN, i64::MAX, 10.0, 1, 4).collect();
        assert!(slices.len() >= 2, "{slices:?}");
        let Split::Int { lo, .. } = slices[0] else {
            panic!()
        };
        let Split::Int { hi, .. } = slices[slices.len() - 1] else {
            panic!()
        };
        assert_eq!((lo, hi), (i64::MIN, i64::MAX));
        for w in slices.windows(2) {
            let (Split::Int { hi: a, .. }, Split::Int { lo: b, .. }) = (&w[0], &w[1]) else {
                panic!()
            };
            assert_eq!(*a as i128 + 1, *b as i128);
        }
        let one: Vec<_> = int_slices(5, 5, 1.0, 16, 65536).collect();
        assert_eq!(one.len(), 1);
    }

    #[test]
    fn refining_always_narrows() {
        let Split::Int { width, .. } = refine_int(10, 11, 2, 16) else {
            panic!()
        };
        assert_eq!(width, 1);
        let Split::Int { width, .. } = refine_int(0, 999, 5000, 16) else {
            panic!()
        };
        assert_eq!(width, 4);
    }

    #[test]
    fn bound_buckets_follow_width_bucket_numbering() {
        let k = |s: &str| vec![s.to_string()];
        let split = Split::Bounds {
            lo: None,
            hi: Some(k("z")),
            bounds: vec![k("b"), k("m")],
        };
        assert_eq!(
            split.bucket_range(0),
            Range::Keys {
                lo: None,
                hi: Some(k("b"))
            }
        );
        assert_eq!(
            split.bucket_range(2),
            Range::Keys {
                lo: Some(k("m")),
                hi: Some(k("z"))
            }
        );
    }
}
