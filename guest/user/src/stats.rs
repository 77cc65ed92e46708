//! Summaries of benchmark samples.
//!
//! Percentiles use the nearest-rank method (the smallest sample with at
//! least p% of the samples at or below it), so every reported number is a
//! sample that was actually measured; the median is the 50th percentile in
//! that sense (the lower of the two middle samples for an even count).

/// Minimum, median, 90th percentile and maximum of a set of samples.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Summary {
    /// Smallest sample.
    pub min: u64,
    /// 50th percentile (nearest rank).
    pub median: u64,
    /// 90th percentile (nearest rank).
    pub p90: u64,
    /// Largest sample.
    pub max: u64,
}

/// The nearest-rank `p`th percentile (0 < p <= 100) of sorted, non-empty
/// `sorted`.
pub fn percentile(sorted: &[u64], p: usize) -> u64 {
    debug_assert!(!sorted.is_empty() && p > 0 && p <= 100);
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted[rank - 1]
}

/// Sorts `samples` in place and summarises them; `None` if there are none.
pub fn summarize(samples: &mut [u64]) -> Option<Summary> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_unstable();
    Some(Summary {
        min: samples[0],
        median: percentile(samples, 50),
        p90: percentile(samples, 90),
        max: samples[samples.len() - 1],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_is_none() {
        assert_eq!(summarize(&mut []), None);
    }

    #[test]
    fn single_sample() {
        let s = summarize(&mut [7]).unwrap();
        assert_eq!(
            s,
            Summary {
                min: 7,
                median: 7,
                p90: 7,
                max: 7
            }
        );
    }

    #[test]
    fn one_to_ten_unsorted() {
        let mut v = [10, 3, 1, 7, 2, 9, 4, 8, 6, 5];
        let s = summarize(&mut v).unwrap();
        assert_eq!(
            s,
            Summary {
                min: 1,
                median: 5,
                p90: 9,
                max: 10
            }
        );
        assert_eq!(v, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    }

    #[test]
    fn nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50), 50);
        assert_eq!(percentile(&v, 90), 90);
        assert_eq!(percentile(&v, 100), 100);
        let v: Vec<u64> = (1..=11).collect();
        assert_eq!(percentile(&v, 50), 6); // ceil(5.5) = 6th
        assert_eq!(percentile(&v, 90), 10); // ceil(9.9) = 10th
        assert_eq!(percentile(&[1, 2], 50), 1);
        assert_eq!(percentile(&[1, 2, 3], 90), 3);
    }

    #[test]
    fn ordered_with_duplicates() {
        let mut v = [5, 5, 1, 5, 100, 5, 5];
        let s = summarize(&mut v).unwrap();
        assert!(s.min <= s.median && s.median <= s.p90 && s.p90 <= s.max);
        assert_eq!((s.min, s.median, s.max), (1, 5, 100));
    }
}
