//! `forkbench scale`: throughput with K concurrent workers, will-it-scale
//! style, in the guest and on the host in one run, and its report.
//!
//! For each operation, mode (processes, or threads of one process) and
//! K = 1..=N, K workers repeat the operation for a fixed time once all
//! exist; a point is the operations they completed together, as
//! operations per second, and its scaling efficiency
//! `ops/s(K) / (K * ops/s(1))` against the K = 1 point of the same
//! operation, mode and target: 1.0 is perfect scaling, 1/K no gain at
//! all. The guest side is the protocol's `RunScale` (served by `harnessd`,
//! `forkvm_user::scale`), the host side [`crate::host_linux::scale`].
//!
//! A guest with fewer vCPUs than K runs the K workers on its vCPUs in
//! turn: its curve is then what
//! concurrency costs the kernel (scheduling, contention), not parallel
//! speed-up, and its efficiency is at most vCPUs/K.
//!
//! The report is its own JSON document ([`ScaleReport`], schema
//! `forkbench-scale` [`SCHEMA_VERSION`]) with the same metadata as the
//! latency report; [`check_json`] is strict deserialisation plus
//! [`ScaleReport::validate`], as for that report.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::host_linux::op_name;
use crate::report::{Format, Metadata, Target, VmExitCount};
use forkvm_protocol::{BenchOp, ScaleMode};

/// The `schema` field of a scale report.
pub const SCHEMA: &str = "forkbench-scale";
/// Version of the scale report's layout; bump on incompatible changes.
pub const SCHEMA_VERSION: u32 = 1;

/// The operations scale workers can repeat.
pub const OPS: [BenchOp; 5] = [
    BenchOp::Fork,
    BenchOp::Vfork,
    BenchOp::CloneThread,
    BenchOp::CloneVm,
    BenchOp::ForkMem,
];

/// What the workers of one point counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Counts {
    /// Operations completed by all workers in the timed interval.
    pub ops: u64,
    /// The interval, from when all workers existed.
    pub elapsed_ns: u64,
    /// The fewest operations one worker completed.
    pub min_worker_ops: u64,
    /// The most operations one worker completed.
    pub max_worker_ops: u64,
}

/// One point of a curve: K workers of one operation on one target.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Point {
    /// The operation (`fork`, `vfork`, `clone_thread`, `clone_vm`,
    /// `fork_mem`).
    pub op: String,
    /// MiB touched before the workers start (`fork_mem` only).
    pub mem_mib: Option<u64>,
    /// `processes` or `threads`.
    pub mode: String,
    pub target: Target,
    /// K.
    pub workers: u64,
    /// What they counted; `None` when the point failed.
    pub counts: Option<Counts>,
    /// Why the point failed; `None` when it was measured.
    pub error: Option<String>,
    /// `counts.ops` per second of `counts.elapsed_ns`.
    pub ops_per_sec: Option<f64>,
    /// `ops_per_sec / (workers * ops_per_sec of K = 1)` of the same
    /// operation, mode and target; `None` without a measured K = 1 point.
    pub efficiency: Option<f64>,
    /// The guest's VM exits during the request (the workers' start and
    /// stop included), per completed operation; `None` on the host.
    pub vm_exits: Option<VmExitCount>,
}

impl Point {
    /// The name dashboards track it under:
    /// `scale/OP[/NMiB]/MODE/K/TARGET`, e.g. `scale/fork/processes/2/guest`.
    pub fn name(&self) -> String {
        let mut name = format!("scale/{}", self.op);
        if let Some(mib) = self.mem_mib {
            let _ = write!(name, "/{mib}MiB");
        }
        format!(
            "{name}/{}/{}/{}",
            self.mode,
            self.workers,
            self.target.name()
        )
    }

    /// The curve it belongs to: everything but K.
    fn curve(&self) -> (&str, Option<u64>, &str, Target) {
        (&self.op, self.mem_mib, &self.mode, self.target)
    }

    /// A measured point (efficiency filled in by [`with_efficiency`]).
    pub fn measured(
        op: BenchOp,
        mem_mib: u64,
        mode: ScaleMode,
        target: Target,
        workers: u64,
        counts: Counts,
        vm_exits: Option<VmExitCount>,
    ) -> Point {
        Point {
            ops_per_sec: Some(rate(&counts)),
            counts: Some(counts),
            error: None,
            vm_exits,
            ..Point::failed(op, mem_mib, mode, target, workers, String::new())
        }
    }

    /// A point that could not be measured, and why.
    pub fn failed(
        op: BenchOp,
        mem_mib: u64,
        mode: ScaleMode,
        target: Target,
        workers: u64,
        error: String,
    ) -> Point {
        Point {
            op: op_name(op).to_string(),
            mem_mib: (op == BenchOp::ForkMem).then_some(mem_mib),
            mode: mode.name().to_string(),
            target,
            workers,
            counts: None,
            error: Some(error),
            ops_per_sec: None,
            efficiency: None,
            vm_exits: None,
        }
    }
}

/// Operations per second of `counts`.
pub fn rate(counts: &Counts) -> f64 {
    counts.ops as f64 * 1e9 / counts.elapsed_ns.max(1) as f64
}

/// Scaling efficiency of `rate_k` at `k` workers against `rate_1` at one.
pub fn efficiency(rate_k: f64, k: u64, rate_1: f64) -> Option<f64> {
    (rate_1 > 0.0 && k > 0).then(|| rate_k / (k as f64 * rate_1))
}

/// `points` with each measured point's efficiency against the K = 1 point
/// of its curve.
pub fn with_efficiency(mut points: Vec<Point>) -> Vec<Point> {
    let ones: Vec<(_, f64)> = points
        .iter()
        .filter(|p| p.workers == 1)
        .filter_map(|p| {
            let curve = p.curve();
            Some((
                (curve.0.to_string(), curve.1, curve.2.to_string(), curve.3),
                p.ops_per_sec?,
            ))
        })
        .collect();
    for point in &mut points {
        let curve = point.curve();
        let one = ones.iter().find(|((op, mem, mode, target), _)| {
            (op.as_str(), *mem, mode.as_str(), *target) == curve
        });
        point.efficiency = match (point.ops_per_sec, one) {
            (Some(rate_k), Some((_, rate_1))) => efficiency(rate_k, point.workers, *rate_1),
            _ => None,
        };
    }
    points
}

/// A whole `forkbench scale` run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScaleReport {
    /// Always [`SCHEMA`]: tells this document from a latency report.
    pub schema: String,
    pub schema_version: u32,
    /// The machine and run (its `iterations` and `warmup` are 0: a point
    /// runs for `duration_ms` instead).
    pub metadata: Metadata,
    /// How long each point's workers ran.
    pub duration_ms: u64,
    /// The host's CPUs (its workers run on them).
    pub host_cpus: u64,
    pub points: Vec<Point>,
}

/// Checks that `value` is a scale report exactly as forkbench writes it:
/// it deserialises into [`ScaleReport`] (every type refuses unknown
/// fields), serialising that gives `value` back, and
/// [`ScaleReport::validate`] holds.
pub fn check_json(value: &serde_json::Value) -> Result<(), String> {
    let report: ScaleReport = serde_path_to_error::deserialize(value)
        .map_err(|e| format!("{}: {}", e.path(), e.inner()))?;
    let written = serde_json::to_value(&report).expect("a scale report serializes");
    if let Some(at) = crate::report::first_difference(value, &written, String::new()) {
        return Err(format!(
            "{at}: missing or not as forkbench writes it (forkbench writes {})",
            crate::report::at_path(&written, &at).map_or("nothing".to_string(), |v| v.to_string())
        ));
    }
    report.validate()
}

impl ScaleReport {
    /// The invariants beyond the types: the schema, a point is measured
    /// or failed (never both), its rate and efficiency follow from the
    /// counts, VM exits exactly on measured guest points.
    pub fn validate(&self) -> Result<(), String> {
        if self.schema != SCHEMA || self.schema_version != SCHEMA_VERSION {
            return Err(format!(
                "schema {:?} version {}, not {SCHEMA:?} {SCHEMA_VERSION}",
                self.schema, self.schema_version
            ));
        }
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * b.abs().max(1.0);
        for (i, p) in self.points.iter().enumerate() {
            let at = format!("points[{i}]");
            if !OPS.iter().any(|&op| op_name(op) == p.op) {
                return Err(format!("{at}: unknown operation {:?}", p.op));
            }
            if !ScaleMode::ALL.iter().any(|m| m.name() == p.mode) {
                return Err(format!("{at}: unknown mode {:?}", p.mode));
            }
            if p.workers == 0 {
                return Err(format!("{at}: no workers"));
            }
            match (&p.counts, &p.error) {
                (Some(c), None) => {
                    let expected = rate(c);
                    if !p.ops_per_sec.is_some_and(|r| close(r, expected)) {
                        return Err(format!("{at}: ops_per_sec is not ops / elapsed"));
                    }
                    if c.min_worker_ops > c.max_worker_ops
                        || c.max_worker_ops > c.ops
                        || c.min_worker_ops.saturating_mul(p.workers) > c.ops
                    {
                        return Err(format!("{at}: per-worker counts do not fit ops"));
                    }
                }
                (None, Some(_)) => {
                    if p.ops_per_sec.is_some() || p.efficiency.is_some() || p.vm_exits.is_some() {
                        return Err(format!("{at}: a failed point with numbers"));
                    }
                }
                _ => return Err(format!("{at}: exactly one of counts and error")),
            }
            let one = self
                .points
                .iter()
                .find(|q| q.workers == 1 && q.curve() == p.curve());
            let expected = match (p.ops_per_sec, one.and_then(|q| q.ops_per_sec)) {
                (Some(rate_k), Some(rate_1)) => efficiency(rate_k, p.workers, rate_1),
                _ => None,
            };
            match (p.efficiency, expected) {
                (None, None) => {}
                (Some(e), Some(x)) if close(e, x) => {}
                _ => return Err(format!("{at}: efficiency is not ops/s over K x ops/s(1)")),
            }
            match (&p.vm_exits, p.target, &p.counts) {
                (Some(exits), Target::Guest, Some(c)) => {
                    exits.check(c.ops, &format!("{at}.vm_exits"))?;
                }
                (None, Target::Guest, Some(_)) => {
                    return Err(format!("{at}: a measured guest point without vm_exits"));
                }
                (Some(_), Target::Host | Target::LinuxGuest, _) => {
                    return Err(format!("{at}: vm_exits on a point not in forkvm's guest"));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The curves (op, MiB, mode) in first-seen order, each with its Ks.
    fn rows(&self) -> Vec<(String, Option<u64>, String, u64)> {
        let mut rows = Vec::new();
        for p in &self.points {
            let row = (p.op.clone(), p.mem_mib, p.mode.clone(), p.workers);
            if !rows.contains(&row) {
                rows.push(row);
            }
        }
        rows
    }

    fn point(&self, row: &(String, Option<u64>, String, u64), target: Target) -> Option<&Point> {
        self.points.iter().find(|p| {
            (&p.op, p.mem_mib, &p.mode, p.workers, p.target)
                == (&row.0, row.1, &row.2, row.3, target)
        })
    }
}

/// Renders `report` in `format` (`table` and `markdown` draw the same
/// table).
pub fn render(report: &ScaleReport, format: Format) -> String {
    match format {
        Format::Table => table(report, false),
        Format::Markdown => table(report, true),
        Format::Json => {
            serde_json::to_string_pretty(report).expect("a scale report serializes") + "\n"
        }
        Format::Bmf => bmf(report),
        Format::Github => github(report),
    }
}

/// `1234.5` as `1235`, small rates with a decimal.
fn human_rate(rate: f64) -> String {
    if rate >= 100.0 {
        format!("{rate:.0}")
    } else {
        format!("{rate:.1}")
    }
}

/// What the guest's vCPU count means for its curve, for the table's head.
pub fn guest_note(vcpus: u64, max_workers: u64) -> Option<String> {
    (max_workers > vcpus).then(|| {
        format!(
            "the guest has {vcpus} vCPU(s): up to {max_workers} workers share them, so its \
             curve measures what concurrency costs the kernel, not parallel speed-up \
             (efficiency at most {vcpus}/K)"
        )
    })
}

fn table(report: &ScaleReport, markdown: bool) -> String {
    let m = &report.metadata;
    let mut out = String::new();
    let title = format!(
        "forkbench {} scale on {} ({}, kernel {}): {} ms per point, host {} CPUs, guest {}",
        m.tool_version,
        m.cpu_model.as_deref().unwrap_or("unknown CPU"),
        m.platform_mode,
        m.host_kernel.as_deref().unwrap_or("?"),
        report.duration_ms,
        report.host_cpus,
        m.guest_vcpus
            .map_or("not run".to_string(), |n| format!("{n} vCPU(s)")),
    );
    if markdown {
        let _ = writeln!(out, "### {title}\n");
    } else {
        let _ = writeln!(out, "{title}");
    }
    let max_workers = report.points.iter().map(|p| p.workers).max().unwrap_or(0);
    if let Some(vcpus) = m.guest_vcpus {
        if let Some(note) = guest_note(vcpus, max_workers) {
            let _ = writeln!(out, "note: {note}");
        }
    }
    if markdown {
        out.push('\n');
    }
    let mut table = comfy_table::Table::new();
    table.load_preset(if markdown {
        comfy_table::presets::ASCII_MARKDOWN
    } else {
        comfy_table::presets::NOTHING
    });
    table.set_header(vec![
        "operation",
        "mode",
        "K",
        "guest ops/s",
        "guest eff",
        "guest min..max/worker",
        "guest kvm/op",
        "host ops/s",
        "host eff",
        "host min..max/worker",
        "guest/host",
    ]);
    for row in report.rows() {
        let guest = report.point(&row, Target::Guest);
        let host = report.point(&row, Target::Host);
        let rate = |p: Option<&Point>| match p {
            None => "-".to_string(),
            Some(p) => p.ops_per_sec.map_or("ERROR".to_string(), human_rate),
        };
        let eff = |p: Option<&Point>| {
            p.and_then(|p| p.efficiency)
                .map_or("-".to_string(), |e| format!("{e:.2}"))
        };
        let spread = |p: Option<&Point>| {
            p.and_then(|p| p.counts).map_or("-".to_string(), |c| {
                format!("{}..{}", c.min_worker_ops, c.max_worker_ops)
            })
        };
        let kvm = guest
            .and_then(|p| p.vm_exits.as_ref())
            .and_then(|x| x.kvm_per_iter)
            .map_or("-".to_string(), |k| format!("{k:.1}"));
        let ratio = match (
            guest.and_then(|p| p.ops_per_sec),
            host.and_then(|p| p.ops_per_sec),
        ) {
            (Some(g), Some(h)) if h > 0.0 => format!("{:.2}", g / h),
            _ => "-".to_string(),
        };
        let op = match row.1 {
            Some(mib) => format!("{}/{mib}MiB", row.0),
            None => row.0.clone(),
        };
        table.add_row(vec![
            op,
            row.2.clone(),
            row.3.to_string(),
            rate(guest),
            eff(guest),
            spread(guest),
            kvm,
            rate(host),
            eff(host),
            spread(host),
            ratio,
        ]);
    }
    for i in 2..table.column_count() {
        if let Some(column) = table.column_mut(i) {
            column.set_cell_alignment(comfy_table::CellAlignment::Right);
        }
    }
    for line in table.to_string().lines() {
        let line = line.strip_prefix(' ').unwrap_or(line);
        out.push_str(line.trim_end());
        out.push('\n');
    }
    for p in &report.points {
        if let Some(error) = &p.error {
            let _ = writeln!(out, "{}: ERROR: {error}", p.name());
        }
    }
    out
}

/// Bencher Metric Format: per point `throughput` (Bencher's built-in
/// measure, operations per second), `efficiency` (K > 1) and, in the
/// guest, `kvm_exits` per operation.
fn bmf(report: &ScaleReport) -> String {
    let mut out = serde_json::Map::new();
    for p in &report.points {
        let Some(rate) = p.ops_per_sec else { continue };
        let mut measures = serde_json::Map::new();
        measures.insert(
            "throughput".to_string(),
            serde_json::json!({ "value": rate }),
        );
        if let (Some(e), true) = (p.efficiency, p.workers > 1) {
            measures.insert("efficiency".to_string(), serde_json::json!({ "value": e }));
        }
        if let Some(kvm) = p.vm_exits.as_ref().and_then(|x| x.kvm_per_iter) {
            measures.insert("kvm_exits".to_string(), serde_json::json!({ "value": kvm }));
        }
        out.insert(p.name(), serde_json::Value::Object(measures));
    }
    serde_json::to_string_pretty(&out).expect("json") + "\n"
}

/// github-action-benchmark's `customBiggerIsBetter` input: per point its
/// ops/s and, for K > 1, a `NAME/efficiency` item.
fn github(report: &ScaleReport) -> String {
    let mut items = Vec::new();
    for p in &report.points {
        let (Some(rate), Some(c)) = (p.ops_per_sec, p.counts) else {
            continue;
        };
        let mut extra = format!(
            "{} {} for {} ms: {} operations, {}..{} per worker",
            p.workers, p.mode, report.duration_ms, c.ops, c.min_worker_ops, c.max_worker_ops
        );
        if let Some(kvm) = p.vm_exits.as_ref().and_then(|x| x.kvm_per_iter) {
            let _ = write!(extra, "; KVM exits/op {kvm:.1}");
        }
        items.push(serde_json::json!({
            "name": p.name(),
            "unit": "ops/s",
            "value": rate,
            "extra": extra,
        }));
        if let (Some(e), true) = (p.efficiency, p.workers > 1) {
            items.push(serde_json::json!({
                "name": format!("{}/efficiency", p.name()),
                "unit": "ratio",
                "value": e,
                "extra": format!("ops/s at {} workers over {} x ops/s at 1", p.workers, p.workers),
            }));
        }
    }
    serde_json::to_string_pretty(&items).expect("json") + "\n"
}

/// The CSV columns of [`to_csv`].
pub const CSV_HEADER: [&str; 13] = [
    "target",
    "op",
    "mem_mib",
    "mode",
    "workers",
    "ops",
    "elapsed_ns",
    "ops_per_sec",
    "efficiency",
    "min_worker_ops",
    "max_worker_ops",
    "kvm_exits_per_op",
    "error",
];

/// Every point as a CSV row under [`CSV_HEADER`]; a field a point lacks is
/// empty.
pub fn to_csv(report: &ScaleReport) -> String {
    let mut csv = csv::Writer::from_writer(Vec::new());
    csv.write_record(CSV_HEADER).expect("CSV into memory");
    let num = |n: Option<u64>| n.map_or(String::new(), |n| n.to_string());
    let float = |n: Option<f64>| n.map_or(String::new(), |n| format!("{n:.6}"));
    for p in &report.points {
        let c = p.counts;
        csv.write_record([
            p.target.name().to_string(),
            p.op.clone(),
            num(p.mem_mib),
            p.mode.clone(),
            p.workers.to_string(),
            num(c.map(|c| c.ops)),
            num(c.map(|c| c.elapsed_ns)),
            float(p.ops_per_sec),
            float(p.efficiency),
            num(c.map(|c| c.min_worker_ops)),
            num(c.map(|c| c.max_worker_ops)),
            float(p.vm_exits.as_ref().and_then(|x| x.kvm_per_iter)),
            p.error.clone().unwrap_or_default(),
        ])
        .expect("CSV into memory");
    }
    String::from_utf8(csv.into_inner().expect("CSV into memory")).expect("CSV is UTF-8")
}

/// An SVG plot of ops/s against K, one line per operation, mode and
/// target (drawn by the sweep's [`crate::sweep::line_plot`]).
pub fn to_svg(report: &ScaleReport) -> Result<String, String> {
    let mut lines: Vec<crate::sweep::Line> = Vec::new();
    for p in &report.points {
        let Some(rate) = p.ops_per_sec else { continue };
        let mut name = p.op.clone();
        if let Some(mib) = p.mem_mib {
            let _ = write!(name, "/{mib}MiB");
        }
        let name = format!("{name} {} {}", p.mode, p.target.name());
        let point = (p.workers as f64, rate);
        match lines.iter_mut().find(|l| l.name == name) {
            Some(line) => line.points.push(point),
            None => lines.push(crate::sweep::Line {
                name,
                points: vec![point],
            }),
        }
    }
    let axes = crate::sweep::Axes {
        x_desc: "workers (K)",
        y_desc: "operations per second (all workers)",
        x_label: &|x: &f64| format!("{x:.0}"),
    };
    crate::sweep::line_plot(&lines, &axes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn counts(ops: u64, elapsed_ns: u64, k: u64) -> Counts {
        Counts {
            ops,
            elapsed_ns,
            min_worker_ops: ops / k,
            max_worker_ops: ops - (k - 1) * (ops / k),
        }
    }

    fn exits(ops: u64, kvm: u64) -> VmExitCount {
        VmExitCount {
            total: 0,
            per_iter: 0.0,
            by_reason: BTreeMap::new(),
            kvm_total: Some(kvm),
            kvm_per_iter: Some(kvm as f64 / ops as f64),
            trap_ns_per_iter: None,
        }
    }

    fn sample_report() -> ScaleReport {
        let fork = BenchOp::Fork;
        let procs = ScaleMode::Processes;
        let points = vec![
            Point::measured(
                fork,
                0,
                procs,
                Target::Guest,
                1,
                counts(1000, 1_000_000_000, 1),
                Some(exits(1000, 40_000)),
            ),
            Point::measured(
                fork,
                0,
                procs,
                Target::Guest,
                2,
                counts(1500, 1_000_000_000, 2),
                Some(exits(1500, 63_000)),
            ),
            Point::measured(
                fork,
                0,
                procs,
                Target::Host,
                1,
                counts(4000, 1_000_000_000, 1),
                None,
            ),
            Point::measured(
                fork,
                0,
                procs,
                Target::Host,
                2,
                counts(6000, 500_000_000, 2),
                None,
            ),
            Point::failed(
                BenchOp::ForkMem,
                16,
                ScaleMode::Threads,
                Target::Host,
                1,
                "no memory".to_string(),
            ),
        ];
        let mut metadata = Metadata::collect(0, 0);
        metadata.guest_memory_mib = Some(256);
        metadata.guest_vcpus = Some(1);
        ScaleReport {
            schema: SCHEMA.to_string(),
            schema_version: SCHEMA_VERSION,
            metadata,
            duration_ms: 1000,
            host_cpus: 2,
            points: with_efficiency(points),
        }
    }

    #[test]
    fn efficiency_is_the_rate_over_k_times_the_rate_of_one() {
        assert_eq!(efficiency(150.0, 2, 100.0), Some(0.75));
        assert_eq!(efficiency(100.0, 1, 100.0), Some(1.0));
        assert_eq!(efficiency(100.0, 2, 0.0), None);
        let report = sample_report();
        let eff: Vec<Option<f64>> = report.points.iter().map(|p| p.efficiency).collect();
        // Guest: 1500/s at K=2 against 1000/s; host: 12000/s (6000 in
        // half a second) against 4000/s; the failed point has none.
        assert_eq!(eff, [Some(1.0), Some(0.75), Some(1.0), Some(1.5), None]);
        assert_eq!(report.points[3].ops_per_sec, Some(12_000.0));
        assert_eq!(report.points[1].name(), "scale/fork/processes/2/guest");
        assert_eq!(
            report.points[4].name(),
            "scale/fork_mem/16MiB/threads/1/host"
        );
    }

    #[test]
    fn json_round_trips_through_the_checker_and_catches_wrong_numbers() {
        let report = sample_report();
        let json: serde_json::Value = serde_json::from_str(&render(&report, Format::Json)).unwrap();
        check_json(&json).unwrap();
        let mut wrong = json.clone();
        wrong["points"][1]["efficiency"] = serde_json::json!(0.9);
        assert!(check_json(&wrong).unwrap_err().contains("efficiency"));
        let mut wrong = json.clone();
        wrong["points"][0]["ops_per_sec"] = serde_json::json!(999.0);
        assert!(check_json(&wrong).unwrap_err().contains("ops_per_sec"));
        let mut wrong = json.clone();
        wrong["points"][0]["surprise"] = serde_json::json!(1);
        assert!(check_json(&wrong).is_err());
        let mut wrong = json.clone();
        wrong["points"][0]
            .as_object_mut()
            .unwrap()
            .remove("efficiency");
        let err = check_json(&wrong).unwrap_err();
        assert!(err.starts_with("points[0].efficiency: missing"), "{err}");
        let mut wrong = json;
        wrong["points"][2]["vm_exits"] = serde_json::to_value(exits(1, 1)).unwrap();
        assert!(check_json(&wrong).unwrap_err().contains("vm_exits"));
    }

    #[test]
    fn dashboard_formats() {
        let report = sample_report();
        let bmf: serde_json::Value = serde_json::from_str(&render(&report, Format::Bmf)).unwrap();
        let guest2 = &bmf["scale/fork/processes/2/guest"];
        assert_eq!(guest2["throughput"]["value"], 1500.0);
        assert_eq!(guest2["efficiency"]["value"], 0.75);
        assert_eq!(guest2["kvm_exits"]["value"], 42.0);
        assert!(bmf["scale/fork/processes/1/host"]
            .get("efficiency")
            .is_none());
        assert!(bmf.get("scale/fork_mem/16MiB/threads/1/host").is_none());
        let github: serde_json::Value =
            serde_json::from_str(&render(&report, Format::Github)).unwrap();
        let items = github.as_array().unwrap();
        // Four measured points and two efficiencies (K = 2).
        assert_eq!(items.len(), 6);
        for item in items {
            assert!(
                item["name"].is_string() && item["value"].is_number() && item["unit"].is_string()
            );
        }
        assert!(items
            .iter()
            .any(|i| i["name"] == "scale/fork/processes/2/host/efficiency"));
        let table = render(&report, Format::Table);
        assert!(table.contains("note: the guest has 1 vCPU(s)"), "{table}");
        let row = table
            .lines()
            .find(|l| l.starts_with("fork ") && l.contains(" 2 "))
            .unwrap();
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(
            cells[..5],
            ["fork", "processes", "2", "1500", "0.75"],
            "{table}"
        );
        assert!(table.contains("ERROR: no memory"), "{table}");
        assert!(render(&report, Format::Markdown).contains("|"));
        let csv = to_csv(&report);
        let mut reader = csv::Reader::from_reader(csv.as_bytes());
        assert_eq!(reader.headers().unwrap(), CSV_HEADER.as_slice());
        let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        assert_eq!(rows.len(), 5);
        assert_eq!(&rows[1][7], "1500.000000");
        assert_eq!(&rows[1][8], "0.750000");
        assert_eq!(&rows[1][11], "42.000000");
        assert_eq!(&rows[4][12], "no memory");
        let svg = to_svg(&report).unwrap();
        let lines = svg
            .lines()
            .filter(|l| l.contains("<polyline") && l.contains("stroke-width=\"2\""))
            .count();
        assert_eq!(lines, 2, "{svg}");
    }
}
