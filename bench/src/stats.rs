//! The statistics of one series of samples (nanoseconds): mean, standard
//! deviation, percentiles and a confidence interval of the median.
//!
//! Percentiles come from an HdrHistogram (`hdrhistogram`, three significant
//! digits: a percentile is within 0.1% of the sample it stands for, clamped
//! into `[min, max]`). Mean and standard deviation are computed exactly from
//! the samples. The median's interval is a percentile bootstrap: the samples
//! are resampled with replacement [`BOOTSTRAP_RESAMPLES`] times by a PRNG
//! with a fixed seed ([`BOOTSTRAP_SEED`], the portable Xoshiro256++), so the
//! same samples always give the same interval on every machine.

use hdrhistogram::Histogram;
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt as _, SeedableRng as _};

use crate::report::{Interval, Stats};

/// The confidence of [`Stats::median_ci`].
pub const CONFIDENCE: f64 = 0.95;

/// Bootstrap resamples of a series (fewer for very long series, see
/// [`resamples_for`]).
pub const BOOTSTRAP_RESAMPLES: u32 = 1000;

/// The bootstrap's PRNG seed: fixed, so an interval is reproducible.
pub const BOOTSTRAP_SEED: u64 = 0xF0_4B_E4_C4;

/// The work a bootstrap may do (resamples x samples), so a million-sample
/// series costs a fraction of a second, not minutes.
const BOOTSTRAP_BUDGET: u64 = 20_000_000;

/// Resamples for a series of `n` samples: [`BOOTSTRAP_RESAMPLES`], fewer
/// (but at least 200) when that would exceed the budget.
pub fn resamples_for(n: usize) -> u32 {
    let budget = (BOOTSTRAP_BUDGET / (n.max(1) as u64)) as u32;
    BOOTSTRAP_RESAMPLES.min(budget.max(200))
}

/// The statistics of `samples` (ns); `None` when there are none.
pub fn summarize(samples: &[u64]) -> Option<Stats> {
    let min = *samples.iter().min()?;
    let max = *samples.iter().max()?;
    let n = samples.len();
    let mean = samples.iter().map(|&s| s as f64).sum::<f64>() / n as f64;
    // The sample standard deviation (n - 1); 0 for a single sample.
    let stddev = if n > 1 {
        let squares: f64 = samples.iter().map(|&s| (s as f64 - mean).powi(2)).sum();
        (squares / (n - 1) as f64).sqrt()
    } else {
        0.0
    };
    let histogram = histogram(samples, max);
    let at = |q: f64| histogram.value_at_quantile(q).clamp(min, max);
    let median = at(0.5);
    let (lower, upper) = bootstrap_median(samples, resamples_for(n), BOOTSTRAP_SEED);
    Some(Stats {
        min,
        median,
        p90: at(0.90),
        max,
        samples: Some(n as u64),
        mean: Some(mean),
        stddev: Some(stddev),
        p99: Some(at(0.99)),
        p99_9: Some(at(0.999)),
        // The interval's ends are exact sample medians, the median a
        // histogram value within 0.1% of one: widen to contain it.
        median_ci: Some(Interval {
            lower: lower.min(median),
            upper: upper.max(median),
            confidence: CONFIDENCE,
            resamples: resamples_for(n),
        }),
    })
}

/// An HdrHistogram of `samples` (none above `max`) with three significant
/// digits.
fn histogram(samples: &[u64], max: u64) -> Histogram<u64> {
    let mut histogram =
        Histogram::<u64>::new_with_max(max.max(2), 3).expect("valid histogram bounds");
    for &sample in samples {
        histogram
            .record(sample)
            .expect("the histogram covers every sample");
    }
    histogram
}

/// The lower median of `values` (reordered).
fn median_of(values: &mut [u64]) -> u64 {
    let mid = (values.len() - 1) / 2;
    *values.select_nth_unstable(mid).1
}

/// The percentile bootstrap's [`CONFIDENCE`] interval of the median of
/// `samples` (non-empty): `resamples` medians of resamples drawn with
/// replacement by a PRNG seeded with `seed`, and their 2.5th and 97.5th
/// percentiles.
pub fn bootstrap_median(samples: &[u64], resamples: u32, seed: u64) -> (u64, u64) {
    let n = samples.len();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut resample = vec![0u64; n];
    let mut medians: Vec<u64> = (0..resamples.max(1))
        .map(|_| {
            for slot in resample.iter_mut() {
                *slot = samples[rng.random_range(0..n)];
            }
            median_of(&mut resample)
        })
        .collect();
    medians.sort_unstable();
    let tail = (1.0 - CONFIDENCE) / 2.0;
    let last = medians.len() - 1;
    let rank = |q: f64| medians[((last as f64) * q).round() as usize];
    (rank(tail), rank(1.0 - tail))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` samples of `f(uniform in [0, 1))` from a seeded PRNG.
    fn draw(n: usize, seed: u64, f: impl Fn(f64) -> f64) -> Vec<u64> {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        (0..n)
            .map(|_| f(rng.random::<f64>()).round() as u64)
            .collect()
    }

    fn close(a: f64, b: f64, tolerance: f64) -> bool {
        (a - b).abs() <= tolerance * b.abs()
    }

    #[test]
    fn nothing_to_summarize() {
        assert_eq!(summarize(&[]), None);
    }

    #[test]
    fn one_sample() {
        let s = summarize(&[1234]).unwrap();
        assert_eq!((s.min, s.median, s.p90, s.max), (1234, 1234, 1234, 1234));
        assert_eq!((s.p99, s.p99_9), (Some(1234), Some(1234)));
        assert_eq!((s.mean, s.stddev), (Some(1234.0), Some(0.0)));
        let ci = s.median_ci.unwrap();
        assert_eq!((ci.lower, ci.upper), (1234, 1234));
    }

    // 1..=1000: every percentile is known exactly (values under 2048 are
    // exact in a 3-digit histogram), the mean is 500.5 and the standard
    // deviation sqrt(1000 * 1001 / 12).
    #[test]
    fn uniform_integers() {
        let mut samples: Vec<u64> = (1..=1000).collect();
        samples.reverse();
        let s = summarize(&samples).unwrap();
        assert_eq!((s.min, s.median, s.p90, s.max), (1, 500, 900, 1000));
        assert_eq!(
            (s.p99, s.p99_9, s.samples),
            (Some(990), Some(999), Some(1000))
        );
        assert!(close(s.mean.unwrap(), 500.5, 1e-12));
        let sd = (1000.0f64 * 1001.0 / 12.0).sqrt();
        assert!(close(s.stddev.unwrap(), sd, 1e-12), "{:?}", s.stddev);
        // The median of 1000 uniform values has a standard error of about
        // 1000 / (2 sqrt(1000) * 1) ~ 15.8: a 95% interval about +-31.
        let ci = s.median_ci.unwrap();
        assert!(ci.lower < 500 && ci.upper > 500, "{ci:?}");
        assert!((15..=50).contains(&(500 - ci.lower)), "{ci:?}");
        assert!((15..=50).contains(&(ci.upper - 500)), "{ci:?}");
    }

    // Exponential with mean 10 us: median 10 ln 2, p99 10 ln 100, p99.9
    // 10 ln 1000, standard deviation = mean.
    #[test]
    fn exponential_distribution() {
        let mean = 10_000.0;
        let samples = draw(100_000, 7, |u| -mean * (1.0 - u).ln());
        let s = summarize(&samples).unwrap();
        assert!(close(s.mean.unwrap(), mean, 0.01), "{s:?}");
        assert!(close(s.stddev.unwrap(), mean, 0.02), "{s:?}");
        assert!(close(s.median as f64, mean * 2f64.ln(), 0.01), "{s:?}");
        assert!(close(s.p90 as f64, mean * 10f64.ln(), 0.01), "{s:?}");
        assert!(
            close(s.p99.unwrap() as f64, mean * 100f64.ln(), 0.02),
            "{s:?}"
        );
        assert!(
            close(s.p99_9.unwrap() as f64, mean * 1000f64.ln(), 0.05),
            "{s:?}"
        );
        let ci = s.median_ci.unwrap();
        let true_median = (mean * 2f64.ln()) as u64;
        assert!(ci.lower <= true_median && true_median <= ci.upper, "{ci:?}");
        assert_eq!(ci.resamples, resamples_for(100_000));
    }

    // The interval covers the true median in about 95% of samples: 200
    // seeded draws of 500 normal samples (Box-Muller pairs folded into one
    // uniform stream: the inverse-CDF is not needed, a sum of 12 uniforms
    // is normal enough).
    #[test]
    fn the_interval_covers_the_true_median_about_95_percent_of_the_time() {
        let covered = (0..200)
            .filter(|&seed| {
                let mut rng = Xoshiro256PlusPlus::seed_from_u64(1000 + seed);
                let samples: Vec<u64> = (0..500)
                    .map(|_| {
                        let z: f64 = (0..12).map(|_| rng.random::<f64>()).sum::<f64>() - 6.0;
                        (50_000.0 + 1_000.0 * z).round() as u64
                    })
                    .collect();
                let ci = summarize(&samples).unwrap().median_ci.unwrap();
                ci.lower <= 50_000 && 50_000 <= ci.upper
            })
            .count();
        assert!((178..=200).contains(&covered), "covered {covered} of 200");
    }

    #[test]
    fn the_bootstrap_is_deterministic() {
        let samples = draw(5_000, 3, |u| 1_000.0 + 9_000.0 * u * u);
        let a = bootstrap_median(&samples, 300, BOOTSTRAP_SEED);
        assert_eq!(a, bootstrap_median(&samples, 300, BOOTSTRAP_SEED));
        assert_eq!(summarize(&samples), summarize(&samples));
        assert_ne!(a, bootstrap_median(&samples, 300, BOOTSTRAP_SEED + 1));
    }

    #[test]
    fn long_series_use_fewer_resamples() {
        assert_eq!(resamples_for(1_000), BOOTSTRAP_RESAMPLES);
        assert_eq!(resamples_for(1_000_000), 200);
        assert!(resamples_for(50_000) < BOOTSTRAP_RESAMPLES);
    }

    #[test]
    fn percentiles_stay_within_the_samples() {
        // Far above the histogram's initial range.
        let s = summarize(&[10_000_000, 20_000_000, 30_000_000]).unwrap();
        assert_eq!((s.min, s.max), (10_000_000, 30_000_000));
        assert!(close(s.median as f64, 20_000_000.0, 1e-3), "{s:?}");
        // A 3-digit histogram rounds 100_003 up to its bucket's top; the
        // reported percentiles stay within [min, max].
        let s = summarize(&[100_003, 100_003, 100_003]).unwrap();
        assert_eq!((s.median, s.p99, s.max), (100_003, Some(100_003), 100_003));
    }
}
