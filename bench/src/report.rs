//! Benchmark results as a report: the data model (also the JSON format,
//! versioned by [`SCHEMA_VERSION`]), the run's metadata, the output
//! formats (`table`, `json`, `bmf`, `github`) and the regression gate
//! against a baseline report.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Version of the JSON report layout; bump on incompatible changes.
///
/// - 1: guest entries had one metric per operation (`create_exit_reap` for
///   the creating operations).
/// - 2: guest creating operations have a `create` entry too, like the
///   host's; a v1 baseline would silently leave those unchecked.
pub const SCHEMA_VERSION: u32 = 2;

/// The metrics an entry can have, in table order, with what they mean.
pub const METRICS: [(&str, &str); 2] = [
    (
        "create",
        "from just before the creating call until it returns in the parent \
         (vfork: once the child has exited; failing operations: the refused call)",
    ),
    (
        "create_exit_reap",
        "from just before the call until the child has exited and been reaped \
         (a thread: joined), lmbench lat_proc style",
    ),
];

/// Where an operation ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// The host's own Linux kernel, in the harness process.
    Host,
    /// forkvm's guest kernel.
    Guest,
}

impl Target {
    pub fn name(self) -> &'static str {
        match self {
            Target::Host => "host",
            Target::Guest => "guest",
        }
    }
}

/// Order statistics of one metric, in nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    pub min: u64,
    pub median: u64,
    pub p90: u64,
    pub max: u64,
}

/// Whether an entry has numbers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    /// Measured.
    Ok { ns: Stats },
    /// Not run here, with the reason (never a number).
    NotApplicable { reason: String },
    /// The run failed (e.g. a wrong errno), with the error.
    Error { error: String },
}

/// One measured metric of one operation on one target.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Operation (`fork`, `clone_thread`, ...).
    pub op: String,
    /// `create` or `create_exit_reap` (see [`METRICS`]); empty for an
    /// operation that was not run.
    pub metric: String,
    pub target: Target,
    /// MiB the parent had touched (`fork_mem` only).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub mem_mib: Option<u64>,
    /// Measured iterations (warm-up excluded).
    pub iters: u64,
    #[serde(flatten)]
    pub outcome: Outcome,
    /// How the operation was run where that varies.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub note: Option<String>,
}

impl Entry {
    /// The name dashboards key on: `op[/NMiB]/metric/target`.
    pub fn name(&self) -> String {
        let mut name = self.op.clone();
        if let Some(mib) = self.mem_mib {
            let _ = write!(name, "/{mib}MiB");
        }
        if !self.metric.is_empty() {
            name.push('/');
            name.push_str(&self.metric);
        }
        name.push('/');
        name.push_str(self.target.name());
        name
    }

    pub fn stats(&self) -> Option<&Stats> {
        match &self.outcome {
            Outcome::Ok { ns } => Some(ns),
            _ => None,
        }
    }
}

/// Facts about the run that make a number comparable (or not).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    /// `git rev-parse HEAD` where the harness ran, if in a repository.
    pub git_commit: Option<String>,
    /// UTC, RFC 3339.
    pub date: String,
    /// `model name` of /proc/cpuinfo.
    pub cpu_model: Option<String>,
    /// The host kernel release.
    pub host_kernel: Option<String>,
    /// The KVM platform the guest would use here (`pvm-native`, `hvm`).
    pub platform_mode: String,
    /// Guest memory in MiB (when a guest ran).
    pub guest_memory_mib: Option<u64>,
    /// Measured iterations per operation and warm-up iterations.
    pub iterations: u64,
    pub warmup: u64,
    /// Host TSC frequency used to convert host cycles.
    pub host_tsc_khz: Option<u64>,
    /// Guest TSC frequency (from its Hello reply) used for guest cycles.
    #[serde(default)]
    pub guest_tsc_khz: Option<u64>,
    /// forkbench's version.
    pub tool_version: String,
}

impl Metadata {
    /// Gathers the metadata of this machine and run.
    pub fn collect(iterations: u64, warmup: u64, host_tsc_khz: Option<u64>) -> Metadata {
        let read = |path: &str| std::fs::read_to_string(path).ok();
        let cpu_model = read("/proc/cpuinfo").and_then(|text| {
            text.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split_once(':'))
                .map(|(_, model)| model.trim().to_string())
        });
        let git_commit = std::process::Command::new("git")
            .args(["rev-parse", "HEAD"])
            .output()
            .ok()
            .filter(|out| out.status.success())
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .map(|s| s.trim().to_string());
        let platform = vmm::platform::resolve(vmm::config::PlatformChoice::Auto);
        Metadata {
            git_commit,
            date: rfc3339_utc(SystemTime::now()),
            cpu_model,
            host_kernel: read("/proc/sys/kernel/osrelease").map(|s| s.trim().to_string()),
            platform_mode: platform.name().to_string(),
            guest_memory_mib: None,
            iterations,
            warmup,
            host_tsc_khz,
            guest_tsc_khz: None,
            tool_version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }
}

/// A whole run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub schema_version: u32,
    pub metadata: Metadata,
    pub entries: Vec<Entry>,
}

/// `time` as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn rfc3339_utc(time: SystemTime) -> String {
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Aligned text for people: medians of both metrics side by side with
    /// their guest/host ratios, then every entry's statistics.
    Table,
    /// The [`Report`] itself.
    Json,
    /// Bencher Metric Format: `{name: {"latency": {value, lower_value, upper_value}}}`.
    Bmf,
    /// github-action-benchmark `customSmallerIsBetter`: `[{name, unit, value, range, extra}]`.
    Github,
}

/// Renders `report` in `format`.
pub fn render(report: &Report, format: Format) -> String {
    match format {
        Format::Table => table(report),
        Format::Json => serde_json::to_string_pretty(report).expect("a report serializes") + "\n",
        Format::Bmf => {
            let mut out = serde_json::Map::new();
            for entry in &report.entries {
                if let Some(s) = entry.stats() {
                    out.insert(
                        entry.name(),
                        serde_json::json!({ "latency": {
                            "value": s.median as f64,
                            "lower_value": s.min as f64,
                            "upper_value": s.p90 as f64,
                        }}),
                    );
                }
            }
            serde_json::to_string_pretty(&out).expect("json") + "\n"
        }
        Format::Github => {
            let items: Vec<_> = report
                .entries
                .iter()
                .filter_map(|entry| {
                    let s = entry.stats()?;
                    Some(serde_json::json!({
                        "name": entry.name(),
                        "unit": "ns",
                        "value": s.median,
                        "range": format!("{}..{}", s.min, s.p90),
                        "extra": format!(
                            "median of {} iterations; p90 {} ns, max {} ns; {}",
                            entry.iters, s.p90, s.max, metric_meaning(&entry.metric)
                        ),
                    }))
                })
                .collect();
            serde_json::to_string_pretty(&items).expect("json") + "\n"
        }
    }
}

/// `ns` for people: ns, us or ms with three significant digits.
pub fn human_ns(ns: u64) -> String {
    match ns {
        0..=9_999 => format!("{ns} ns"),
        10_000..=9_999_999 => format!("{:.1} us", ns as f64 / 1e3),
        _ => format!("{:.2} ms", ns as f64 / 1e6),
    }
}

/// What `metric` measures, for people.
pub fn metric_meaning(metric: &str) -> &'static str {
    METRICS
        .iter()
        .find(|(name, _)| *name == metric)
        .map_or("not measured", |(_, meaning)| meaning)
}

fn table(report: &Report) -> String {
    let mut out = String::new();
    let m = &report.metadata;
    let _ = writeln!(
        out,
        "forkbench {} on {} ({}, kernel {}), {} iterations + {} warm-up",
        m.tool_version,
        m.cpu_model.as_deref().unwrap_or("unknown CPU"),
        m.platform_mode,
        m.host_kernel.as_deref().unwrap_or("?"),
        m.iterations,
        m.warmup
    );
    comparison(report, &mut out);
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<38} {:>10} {:>10} {:>10} {:>10}",
        "benchmark", "median", "p90", "min", "max",
    );
    for entry in &report.entries {
        let name = entry.name();
        match &entry.outcome {
            Outcome::Ok { ns } => {
                let _ = writeln!(
                    out,
                    "{:<38} {:>10} {:>10} {:>10} {:>10}",
                    name,
                    human_ns(ns.median),
                    human_ns(ns.p90),
                    human_ns(ns.min),
                    human_ns(ns.max),
                );
            }
            Outcome::NotApplicable { reason } => {
                let _ = writeln!(out, "{name:<38} N/A: {reason}");
            }
            Outcome::Error { error } => {
                let _ = writeln!(out, "{name:<38} ERROR: {error}");
            }
        }
    }
    out
}

/// One row per operation (`op[/NMiB]`): for each metric of [`METRICS`] the
/// guest and host medians and their ratio. A cell without a number says
/// why in a word (`N/A`, `ERROR`, `-` when not run); the statistics below
/// it have the reasons.
fn comparison(report: &Report, out: &mut String) {
    // (operation, metric, target) -> the cell's text; operations in report
    // order.
    let mut ops: Vec<String> = Vec::new();
    let mut cells: BTreeMap<(String, &str, &str), (String, Option<u64>)> = BTreeMap::new();
    for entry in &report.entries {
        let mut op = entry.op.clone();
        if let Some(mib) = entry.mem_mib {
            let _ = write!(op, "/{mib}MiB");
        }
        if !ops.contains(&op) {
            ops.push(op.clone());
        }
        let cell = match &entry.outcome {
            Outcome::Ok { ns } => (human_ns(ns.median), Some(ns.median)),
            Outcome::NotApplicable { .. } => ("N/A".to_string(), None),
            Outcome::Error { .. } => ("ERROR".to_string(), None),
        };
        // An entry without a metric (not run at all) fills every metric.
        for (metric, _) in METRICS {
            if entry.metric.is_empty() || entry.metric == metric {
                cells.insert((op.clone(), metric, entry.target.name()), cell.clone());
            }
        }
    }
    let _ = write!(out, "{:<24}", "");
    for (metric, _) in METRICS {
        let _ = write!(out, "  {:-^34}", format!(" {} ", metric.replace('_', "+")));
    }
    let _ = writeln!(out);
    let _ = write!(out, "{:<24}", "operation");
    for _ in METRICS {
        let _ = write!(out, "  {:>10} {:>10} {:>12}", "guest", "host", "guest/host");
    }
    let _ = writeln!(out);
    for op in &ops {
        let _ = write!(out, "{op:<24}");
        for (metric, _) in METRICS {
            let cell = |target: Target| cells.get(&(op.clone(), metric, target.name()));
            let text = |target| cell(target).map_or("-".to_string(), |c| c.0.clone());
            let ratio = match (cell(Target::Guest), cell(Target::Host)) {
                (Some((_, Some(g))), Some((_, Some(h)))) if *h > 0 => {
                    format!("{:.2}", *g as f64 / *h as f64)
                }
                _ => "-".to_string(),
            };
            let _ = write!(
                out,
                "  {:>10} {:>10} {:>12}",
                text(Target::Guest),
                text(Target::Host),
                ratio
            );
        }
        let _ = writeln!(out);
    }
}

/// A median that grew beyond the threshold.
#[derive(Clone, Debug, PartialEq)]
pub struct Regression {
    pub name: String,
    pub baseline_ns: u64,
    pub current_ns: u64,
    /// Growth in percent.
    pub percent: f64,
}

impl std::fmt::Display for Regression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "REGRESSION {}: median {} vs baseline {} (+{:.1}%)",
            self.name,
            human_ns(self.current_ns),
            human_ns(self.baseline_ns),
            self.percent
        )
    }
}

/// Entries of `current` whose median exceeds the same entry of `baseline`
/// by more than `threshold_percent`. Entries missing from either side or
/// without numbers are not compared.
pub fn regressions(baseline: &Report, current: &Report, threshold_percent: f64) -> Vec<Regression> {
    let base: BTreeMap<String, u64> = baseline
        .entries
        .iter()
        .filter_map(|e| Some((e.name(), e.stats()?.median)))
        .collect();
    current
        .entries
        .iter()
        .filter_map(|e| {
            let name = e.name();
            let now = e.stats()?.median;
            let before = *base.get(&name)?;
            let percent = if before == 0 {
                return None;
            } else {
                (now as f64 - before as f64) * 100.0 / before as f64
            };
            (percent > threshold_percent).then_some(Regression {
                name,
                baseline_ns: before,
                current_ns: now,
                percent,
            })
        })
        .collect()
}

/// Parses a JSON report (for `--baseline`), checking its schema version.
pub fn parse_report(text: &str) -> Result<Report, String> {
    let report: Report =
        serde_json::from_str(text).map_err(|e| format!("not a forkbench report: {e}"))?;
    if report.schema_version != SCHEMA_VERSION {
        return Err(format!(
            "report schema version {} (this forkbench reads {SCHEMA_VERSION})",
            report.schema_version
        ));
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(op: &str, metric: &str, target: Target, median: u64) -> Entry {
        Entry {
            op: op.to_string(),
            metric: metric.to_string(),
            target,
            mem_mib: None,
            iters: 10,
            outcome: Outcome::Ok {
                ns: Stats {
                    min: median / 2,
                    median,
                    p90: median * 2,
                    max: median * 3,
                },
            },
            note: None,
        }
    }

    fn report(entries: Vec<Entry>) -> Report {
        Report {
            schema_version: SCHEMA_VERSION,
            metadata: Metadata::collect(10, 1, Some(1_000_000)),
            entries,
        }
    }

    #[test]
    fn dates_are_rfc3339() {
        assert_eq!(rfc3339_utc(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        // 2026-11-22T16:00:00Z plus 1:01:01.
        let t = UNIX_EPOCH + std::time::Duration::from_secs(1_795_363_200 + 3_661);
        assert_eq!(rfc3339_utc(t), "2026-11-22T17:01:01Z");
        let leap = UNIX_EPOCH + std::time::Duration::from_secs(951_782_400);
        assert_eq!(rfc3339_utc(leap), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn names_include_memory_metric_and_target() {
        let mut e = entry("fork_mem", "create", Target::Guest, 1);
        e.mem_mib = Some(64);
        assert_eq!(e.name(), "fork_mem/64MiB/create/guest");
        let na = Entry {
            metric: String::new(),
            outcome: Outcome::NotApplicable { reason: "x".into() },
            ..entry("max_threads_eagain", "", Target::Host, 1)
        };
        assert_eq!(na.name(), "max_threads_eagain/host");
    }

    #[test]
    fn json_round_trips_and_checks_the_schema() {
        let r = report(vec![entry("fork", "create", Target::Host, 1000)]);
        let text = render(&r, Format::Json);
        assert_eq!(parse_report(&text).unwrap(), r);
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        for key in [
            "git_commit",
            "date",
            "cpu_model",
            "host_kernel",
            "platform_mode",
            "iterations",
        ] {
            assert!(value["metadata"].get(key).is_some(), "metadata.{key}");
        }
        assert_eq!(value["entries"][0]["status"], "ok");
        assert_eq!(value["entries"][0]["ns"]["median"], 1000);
        assert_eq!(value["schema_version"], 2);
        // Version 1 reports lack the guest's create entries: refused.
        let old = text.replace("\"schema_version\": 2", "\"schema_version\": 1");
        assert!(parse_report(&old).unwrap_err().contains("schema version 1"));
        assert!(parse_report("{}").is_err());
    }

    #[test]
    fn bmf_and_github_formats() {
        let mut na = entry("max_threads_eagain", "", Target::Host, 1);
        na.outcome = Outcome::NotApplicable {
            reason: "no".into(),
        };
        let r = report(vec![
            entry("fork", "create", Target::Host, 1000),
            na,
            entry("fork", "create_exit_reap", Target::Guest, 4000),
        ]);
        let bmf: serde_json::Value = serde_json::from_str(&render(&r, Format::Bmf)).unwrap();
        let latency = &bmf["fork/create/host"]["latency"];
        assert_eq!(latency["value"], 1000.0);
        assert_eq!(latency["lower_value"], 500.0);
        assert_eq!(latency["upper_value"], 2000.0);
        assert_eq!(
            bmf["fork/create_exit_reap/guest"]["latency"]["value"],
            4000.0
        );
        assert_eq!(
            bmf.as_object().unwrap().len(),
            2,
            "N/A entries have no number"
        );
        let gh: serde_json::Value = serde_json::from_str(&render(&r, Format::Github)).unwrap();
        let items = gh.as_array().unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[1]["name"], "fork/create_exit_reap/guest");
        let extra = items[1]["extra"].as_str().unwrap();
        assert!(extra.contains("reaped"), "{extra}");
        assert_eq!(items[0]["name"], "fork/create/host");
        assert_eq!(items[0]["unit"], "ns");
        assert_eq!(items[0]["value"], 1000);
        let extra = items[0]["extra"].as_str().unwrap();
        assert!(extra.contains("returns in the parent"), "{extra}");
    }

    #[test]
    fn table_shows_both_metrics_with_ratios_and_reasons() {
        let mut na = entry("max_threads_eagain", "", Target::Host, 1);
        na.outcome = Outcome::NotApplicable {
            reason: "would affect the host".into(),
        };
        let guest_na = entry("max_threads_eagain", "create", Target::Guest, 5_000);
        let r = report(vec![
            entry("fork", "create", Target::Guest, 25_000),
            entry("fork", "create_exit_reap", Target::Guest, 300_000),
            entry("fork", "create", Target::Host, 100_000),
            entry("fork", "create_exit_reap", Target::Host, 100_000),
            guest_na,
            na,
        ]);
        let text = render(&r, Format::Table);
        assert!(text.contains(" create+exit+reap "), "{text}");
        assert!(text.contains("guest/host"), "{text}");
        // One row per operation: guest, host, ratio for each metric.
        let fork: Vec<&str> = text
            .lines()
            .find(|l| l.starts_with("fork "))
            .unwrap()
            .split_whitespace()
            .collect();
        assert_eq!(
            fork,
            ["fork", "25.0", "us", "100.0", "us", "0.25", "300.0", "us", "100.0", "us", "3.00"],
            "{text}"
        );
        let na_row = text
            .lines()
            .find(|l| l.starts_with("max_threads_eagain "))
            .unwrap();
        assert!(na_row.contains("N/A"), "{na_row}");
        // The statistics follow, with the reasons.
        assert!(text
            .lines()
            .any(|l| l.starts_with("fork/create_exit_reap/guest")));
        assert!(text.contains("N/A: would affect the host"), "{text}");
    }

    // The gate looks at each metric of each target on its own: a guest
    // `create` that regressed is caught even when the whole cycle did not.
    #[test]
    fn regression_gate_covers_the_guest_create_metric() {
        let base = report(vec![
            entry("fork", "create", Target::Guest, 30_000),
            entry("fork", "create_exit_reap", Target::Guest, 200_000),
            entry("fork", "create", Target::Host, 20_000),
        ]);
        let now = report(vec![
            entry("fork", "create", Target::Guest, 45_000),
            entry("fork", "create_exit_reap", Target::Guest, 201_000),
            entry("fork", "create", Target::Host, 20_000),
        ]);
        let found = regressions(&base, &now, 10.0);
        let names: Vec<&str> = found.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["fork/create/guest"], "{found:?}");
        assert!((found[0].percent - 50.0).abs() < 1e-9);
        // And the other way round.
        let now = report(vec![
            entry("fork", "create", Target::Guest, 30_000),
            entry("fork", "create_exit_reap", Target::Guest, 260_000),
        ]);
        let found = regressions(&base, &now, 10.0);
        let names: Vec<&str> = found.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["fork/create_exit_reap/guest"], "{found:?}");
    }

    #[test]
    fn regression_gate() {
        let base = report(vec![
            entry("fork", "create", Target::Host, 1000),
            entry("vfork", "create", Target::Host, 1000),
            entry("gone", "create", Target::Host, 1000),
        ]);
        let now = report(vec![
            entry("fork", "create", Target::Host, 1200),
            entry("vfork", "create", Target::Host, 1050),
            entry("new", "create", Target::Host, 9000),
        ]);
        let found = regressions(&base, &now, 10.0);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].name, "fork/create/host");
        assert!((found[0].percent - 20.0).abs() < 1e-9);
        assert!(found[0]
            .to_string()
            .starts_with("REGRESSION fork/create/host"));
        assert!(regressions(&base, &now, 25.0).is_empty());
    }
}
