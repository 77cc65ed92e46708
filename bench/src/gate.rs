//! The regression gate: whether a run is slower than a baseline report
//! (`--baseline FILE`) or than the recent runs kept in a directory
//! (`--history DIR`), in a way that noise does not explain.
//!
//! Against a baseline an entry regresses only when both hold:
//! - its median grew by more than the threshold (percent), and
//! - the confidence intervals of the two medians do not overlap (the
//!   current lower bound is above the baseline's upper bound).
//!
//! A baseline older than schema version 4 has no intervals; its interval
//! is its median alone, so only the current run's spread counts.
//!
//! Against a history the test is a z-score of the new median over the
//! medians of the last runs (their mean and sample standard deviation), not
//! a Welch t-test of samples: the samples of one run are not independent of
//! the run (the VM's placement, the host's load and the boot move every
//! sample of a run together), so a t-test of 1000 samples against 1000
//! samples calls nearly every run-to-run difference significant. The spread
//! of whole runs' medians is the noise a new run has to beat.
//!
//! Numbers are comparable only from the same kind of machine: a baseline
//! or history run with another fingerprint (CPU model, host kernel,
//! platform, guest vCPUs and memory) is refused unless the user allows it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::report::{self, human_ns, Metadata, Report};

/// Fewest earlier runs a history test needs: below it the spread of the
/// runs says nothing yet, and the run is only recorded.
pub const MIN_HISTORY: usize = 5;

/// The z-score beyond which a median is a regression against a history:
/// one-sided, a false alarm in about 0.1% of tests of a normal spread.
pub const Z_LIMIT: f64 = 3.0;

/// Runs `--history` keeps by default.
pub const DEFAULT_HISTORY_KEEP: usize = 20;

/// What makes numbers comparable between two runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fingerprint {
    pub cpu_model: Option<String>,
    pub host_kernel: Option<String>,
    pub platform: String,
    pub guest_vcpus: Option<u64>,
    pub guest_memory_mib: Option<u64>,
}

impl Fingerprint {
    pub fn of(metadata: &Metadata) -> Fingerprint {
        Fingerprint {
            cpu_model: metadata.cpu_model.clone(),
            host_kernel: metadata.host_kernel.clone(),
            platform: metadata.platform_mode.clone(),
            guest_vcpus: metadata.guest_vcpus,
            guest_memory_mib: metadata.guest_memory_mib,
        }
    }

    /// How `other` differs from `self`, one `field: ours vs theirs` each.
    /// The guest fields count only where both runs had a guest (a host-only
    /// run has none); a report older than schema 4 has no vCPU count,
    /// which is then not compared.
    pub fn differences(&self, other: &Fingerprint) -> Vec<String> {
        let mut out = Vec::new();
        let show = |v: &Option<String>| v.as_deref().unwrap_or("unknown").to_string();
        if self.cpu_model != other.cpu_model {
            out.push(format!(
                "CPU {} vs {}",
                show(&self.cpu_model),
                show(&other.cpu_model)
            ));
        }
        if self.host_kernel != other.host_kernel {
            out.push(format!(
                "host kernel {} vs {}",
                show(&self.host_kernel),
                show(&other.host_kernel)
            ));
        }
        if self.platform != other.platform {
            out.push(format!("platform {} vs {}", self.platform, other.platform));
        }
        if let (Some(a), Some(b)) = (self.guest_vcpus, other.guest_vcpus) {
            if a != b {
                out.push(format!("guest vCPUs {a} vs {b}"));
            }
        }
        if let (Some(a), Some(b)) = (self.guest_memory_mib, other.guest_memory_mib) {
            if a != b {
                out.push(format!("guest memory {a} MiB vs {b} MiB"));
            }
        }
        out
    }
}

/// A median that grew beyond the threshold by more than noise explains.
#[derive(Clone, Debug, PartialEq)]
pub struct Regression {
    pub name: String,
    /// The baseline's median, or the history's mean median.
    pub baseline_ns: u64,
    pub current_ns: u64,
    /// Growth in percent.
    pub percent: f64,
    /// Why it is not noise: the two intervals, or the z-score.
    pub evidence: String,
}

impl std::fmt::Display for Regression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "REGRESSION {}: median {} vs baseline {} (+{:.1}%; {})",
            self.name,
            human_ns(self.current_ns),
            human_ns(self.baseline_ns),
            self.percent,
            self.evidence
        )
    }
}

/// `a` grew over `b` by this many percent (`None` for `b == 0`).
fn growth(now: f64, before: f64) -> Option<f64> {
    (before > 0.0).then(|| (now - before) * 100.0 / before)
}

/// Entries of `current` whose median exceeds the same entry of `baseline`
/// by more than `threshold_percent` with separate confidence intervals.
/// Entries missing from either side or without numbers are not compared.
pub fn regressions(baseline: &Report, current: &Report, threshold_percent: f64) -> Vec<Regression> {
    let base: BTreeMap<String, &report::Stats> = baseline
        .entries
        .iter()
        .filter_map(|e| Some((e.name(), e.stats()?)))
        .collect();
    current
        .entries
        .iter()
        .filter_map(|e| {
            let name = e.name();
            let now = e.stats()?;
            let before = base.get(&name)?;
            let percent = growth(now.median as f64, before.median as f64)?;
            let (now_low, now_high) = now.interval();
            let (base_low, base_high) = before.interval();
            (percent > threshold_percent && now_low > base_high).then(|| Regression {
                name,
                baseline_ns: before.median,
                current_ns: now.median,
                percent,
                evidence: format!(
                    "intervals {}..{} vs {}..{} ns",
                    now_low, now_high, base_low, base_high
                ),
            })
        })
        .collect()
}

/// The mean and sample standard deviation of `values` (at least two).
fn mean_and_sd(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

/// Entries of `current` whose median is more than [`Z_LIMIT`] standard
/// deviations above the mean of the medians in `history` (at least
/// [`MIN_HISTORY`] runs with that entry) and more than `threshold_percent`
/// above that mean. A history without spread (every median equal) counts
/// any growth beyond the threshold.
pub fn history_regressions(
    history: &[Report],
    current: &Report,
    threshold_percent: f64,
) -> Vec<Regression> {
    let mut medians: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for run in history {
        for e in &run.entries {
            if let Some(s) = e.stats() {
                medians.entry(e.name()).or_default().push(s.median as f64);
            }
        }
    }
    current
        .entries
        .iter()
        .filter_map(|e| {
            let name = e.name();
            let now = e.stats()?.median as f64;
            let past = medians.get(&name).filter(|m| m.len() >= MIN_HISTORY)?;
            let (mean, sd) = mean_and_sd(past);
            let percent = growth(now, mean)?;
            let z = if sd > 0.0 {
                (now - mean) / sd
            } else {
                f64::INFINITY
            };
            (percent > threshold_percent && z > Z_LIMIT).then(|| Regression {
                name,
                baseline_ns: mean.round() as u64,
                current_ns: now as u64,
                percent,
                evidence: format!(
                    "z = {z:.1} over {} runs, sd {}",
                    past.len(),
                    human_ns(sd.round() as u64)
                ),
            })
        })
        .collect()
}

/// The reports of a `--history` directory (`*.json`), oldest first by
/// file name (which [`record`] makes sortable).
pub fn load_history(dir: &Path) -> Result<Vec<(PathBuf, Report)>, String> {
    let mut paths: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(format!("history {}: {e}", dir.display())),
    };
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("history {}: {e}", path.display()))?;
            let report = report::parse_report(&text)
                .map_err(|e| format!("history {}: {e}", path.display()))?;
            Ok((path, report))
        })
        .collect()
}

/// Writes `current` (JSON) into the history directory under a name that
/// sorts by time, and deletes the oldest reports beyond `keep`.
pub fn record(dir: &Path, current: &Report, keep: usize) -> Result<PathBuf, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("history {}: {e}", dir.display()))?;
    let existing = load_history(dir)?;
    // The date to the second, then a sequence number one past the
    // directory's highest, for runs within the same second.
    let stamp: String = current
        .metadata
        .date
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    let seq = existing
        .iter()
        .filter_map(|(p, _)| {
            let stem = p.file_stem()?.to_str()?;
            stem.rsplit('-').next()?.parse::<u64>().ok()
        })
        .max()
        .map_or(0, |n| n + 1);
    let path = dir.join(format!("forkbench-{stamp}-{seq:06}.json"));
    std::fs::write(&path, report::render(current, report::Format::Json))
        .map_err(|e| format!("history {}: {e}", path.display()))?;
    let mut all: Vec<PathBuf> = existing.into_iter().map(|(p, _)| p).collect();
    all.push(path.clone());
    all.sort();
    let excess = all.len().saturating_sub(keep.max(1));
    for old in &all[..excess] {
        std::fs::remove_file(old).map_err(|e| format!("history {}: {e}", old.display()))?;
    }
    Ok(path)
}

/// The gate's verdicts as a Markdown section for `--format markdown`.
pub fn markdown(title: &str, found: &[Regression], compared: usize) -> String {
    let mut out = format!("\n#### {title}\n\n");
    if found.is_empty() {
        let _ = writeln!(
            out,
            "No regression among {compared} compared entries (threshold and separate \
             intervals or z > {Z_LIMIT})."
        );
        return out;
    }
    let _ = writeln!(out, "| entry | now | before | change | evidence |");
    let _ = writeln!(out, "|---|---|---|---|---|");
    for r in found {
        let _ = writeln!(
            out,
            "| {} | {} | {} | +{:.1}% | {} |",
            r.name,
            human_ns(r.current_ns),
            human_ns(r.baseline_ns),
            r.percent,
            r.evidence
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Entry, Outcome, Target, SCHEMA_VERSION};
    use rand::rngs::Xoshiro256PlusPlus;
    use rand::{RngExt as _, SeedableRng as _};

    /// A host report of one `fork/create` entry from `samples`.
    fn report_of(samples: Vec<u64>) -> Report {
        let ns = crate::stats::summarize(&samples).unwrap();
        Report {
            schema_version: SCHEMA_VERSION,
            metadata: Metadata::collect(samples.len() as u64, 0),
            entries: vec![Entry {
                op: "fork".to_string(),
                metric: "create".to_string(),
                target: Target::Host,
                mem_mib: None,
                iters: samples.len() as u64,
                outcome: Outcome::Ok { ns },
                note: None,
                vm_exits: None,
                samples,
            }],
        }
    }

    /// `n` samples of a skewed latency distribution (a floor plus an
    /// exponential tail) scaled by `scale`, from `seed`.
    fn latencies(n: usize, scale: f64, seed: u64) -> Vec<u64> {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        (0..n)
            .map(|_| {
                let tail = -5_000.0 * (1.0 - rng.random::<f64>()).ln();
                ((20_000.0 + tail) * scale).round() as u64
            })
            .collect()
    }

    // 100 seeded trials of two runs from one distribution: the gate may
    // fire in at most the 5% a 95% interval allows (separate intervals are
    // rarer still), even with a threshold of 0%.
    #[test]
    fn the_same_distribution_raises_no_alarm_beyond_the_false_positive_rate() {
        for threshold in [0.0, 5.0] {
            let alarms = (0..100)
                .filter(|&trial| {
                    let base = report_of(latencies(400, 1.0, 2 * trial));
                    let now = report_of(latencies(400, 1.0, 2 * trial + 1));
                    !regressions(&base, &now, threshold).is_empty()
                })
                .count();
            assert!(alarms <= 5, "{alarms} alarms at {threshold}%");
        }
    }

    #[test]
    fn a_shifted_distribution_raises_the_alarm() {
        let alarms = (0..100)
            .filter(|&trial| {
                let base = report_of(latencies(400, 1.0, 2 * trial));
                let now = report_of(latencies(400, 1.2, 2 * trial + 1));
                let found = regressions(&base, &now, 10.0);
                found.len() == 1 && found[0].name == "fork/create/host"
            })
            .count();
        assert_eq!(alarms, 100);
        // The same shift under a higher threshold is no regression.
        let base = report_of(latencies(1000, 1.0, 1));
        let now = report_of(latencies(1000, 1.2, 2));
        assert!(regressions(&base, &now, 30.0).is_empty());
    }

    // Growth beyond the threshold inside the noise: wide intervals overlap.
    #[test]
    fn growth_within_overlapping_intervals_is_no_regression() {
        let base: Vec<u64> = (1..=9).map(|i| i * 1000).collect();
        let now: Vec<u64> = base.iter().map(|ns| ns * 115 / 100).collect();
        let (base, now) = (report_of(base), report_of(now));
        let (b, n) = (
            base.entries[0].stats().unwrap(),
            now.entries[0].stats().unwrap(),
        );
        assert!(n.median_ci.unwrap().lower <= b.median_ci.unwrap().upper);
        assert!(regressions(&base, &now, 1.0).is_empty());
    }

    // A v3 baseline (no intervals) is its median alone.
    #[test]
    fn an_old_baseline_is_its_median() {
        let mut base = report_of(latencies(1000, 1.0, 1));
        let now = report_of(latencies(1000, 1.3, 2));
        if let Outcome::Ok { ns } = &mut base.entries[0].outcome {
            ns.median_ci = None;
        }
        let found = regressions(&base, &now, 10.0);
        assert_eq!(found.len(), 1);
        assert!(found[0].to_string().contains("intervals"), "{}", found[0]);
    }

    #[test]
    fn history_tests_against_the_spread_of_past_runs() {
        let history: Vec<Report> = (0..8)
            .map(|i| report_of(latencies(500, 1.0 + 0.01 * (i % 3) as f64, 100 + i)))
            .collect();
        // Too few runs: nothing to say yet.
        let slow = report_of(latencies(500, 1.5, 999));
        assert!(history_regressions(&history[..MIN_HISTORY - 1], &slow, 5.0).is_empty());
        let found = history_regressions(&history, &slow, 5.0);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].evidence.starts_with("z = "), "{}", found[0]);
        // Another run like the past ones passes, in every one of 50 trials.
        let alarms = (0..50)
            .filter(|&t| {
                let like = report_of(latencies(500, 1.01, 2000 + t));
                !history_regressions(&history, &like, 0.0).is_empty()
            })
            .count();
        assert!(alarms <= 1, "{alarms}");
    }

    #[test]
    fn history_records_and_keeps_the_last_runs() {
        let dir = std::env::temp_dir().join(format!("forkbench-history-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        assert!(load_history(&dir).unwrap().is_empty());
        for i in 0..5 {
            record(&dir, &report_of(latencies(20, 1.0, i)), 3).unwrap();
        }
        let kept = load_history(&dir).unwrap();
        assert_eq!(kept.len(), 3);
        let names: Vec<String> = kept
            .iter()
            .map(|(p, _)| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        for (name, seq) in names.iter().zip(2..) {
            assert!(name.ends_with(&format!("-{seq:06}.json")), "{names:?}");
        }
        std::fs::write(dir.join("bad.json"), "{}").unwrap();
        assert!(load_history(&dir).unwrap_err().contains("bad.json"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn fingerprints_name_what_differs() {
        let mut a = Metadata::collect(1, 0);
        a.cpu_model = Some("CPU A".into());
        a.guest_memory_mib = Some(256);
        a.guest_vcpus = Some(1);
        let mut b = a.clone();
        assert!(Fingerprint::of(&a)
            .differences(&Fingerprint::of(&b))
            .is_empty());
        b.cpu_model = Some("CPU B".into());
        b.guest_memory_mib = Some(512);
        b.platform_mode = "other".into();
        let diff = Fingerprint::of(&a).differences(&Fingerprint::of(&b));
        assert_eq!(diff.len(), 3, "{diff:?}");
        assert_eq!(diff[0], "CPU CPU A vs CPU B");
        assert!(diff[2].contains("256 MiB vs 512 MiB"), "{diff:?}");
        // A host-only run has no guest to compare.
        b = a.clone();
        b.guest_memory_mib = None;
        b.guest_vcpus = None;
        assert!(Fingerprint::of(&a)
            .differences(&Fingerprint::of(&b))
            .is_empty());
    }
}
