//! Benchmark results as a report: the data model (also the JSON format,
//! versioned by [`SCHEMA_VERSION`]), the run's metadata, the output
//! formats (`table`, `json`, `bmf`, `github`) and the regression gate
//! against a baseline report.
//!
//! The serde types here are the JSON schema: every one refuses fields it
//! does not know, and [`check_json`] is deserialisation into them plus
//! [`Report::validate`]'s invariants, so the checker cannot drift from what
//! forkbench writes.

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
/// - 3: when a guest ran, the metadata has `harness` (the harness's own
///   cost, [`HarnessCost`]) and every measured guest entry `vm_exits`
///   ([`VmExitCount`]). Fields were only added, and the gate compares
///   medians, which v2 has for every entry: v2 reports still serve as
///   baselines.
/// - 4: every `Stats` has the sample count, mean, standard deviation, p99,
///   p99.9 and `median_ci` (a bootstrap interval of the median, which the
///   gate compares); the metadata has `guest_vcpus` and, on PVM,
///   `trap_cost` (the null-syscall probe), and each guest entry's
///   `vm_exits` the trap-time estimate `trap_ns_per_iter`. Fields were
///   only added: v2 and v3 reports still serve as baselines, their
///   intervals taken as their medians alone.
/// - 5: `forkbench compare --reference linux-vm` adds `linux_guest`
///   entries (Linux booted by the same VMM) and `metadata.reference`
///   ([`ReferenceInfo`]). Fields and a target were only added: v2..v4
///   reports still serve as baselines.
/// - 6: `forkbench boot` writes `boot` entries with the metrics
///   `to_poweroff` and `total` ([`BOOT_METRICS`]), timed by the VMM: they
///   have no `vm_exits`, and a report of only those has no `harness`.
///   Metrics were only added: v2..v5 reports still serve as baselines.
pub const SCHEMA_VERSION: u32 = 6;

/// The oldest schema version `--baseline` accepts (see [`SCHEMA_VERSION`]).
pub const OLDEST_BASELINE_VERSION: u32 = 2;

/// The metrics of `forkbench boot`'s entries: boots timed by the VMM, not
/// requests to a guest (no VM exits are counted for them).
pub const BOOT_METRICS: [&str; 2] = ["to_poweroff", "total"];

/// The metrics an entry can have, in table order, with what they mean.
pub const METRICS: [(&str, &str); 5] = [
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
    (
        "round_trip",
        "one round trip between two processes on one CPU (sched_yield or a \
         byte through two pipes), lmbench lat_ctx/lat_pipe style",
    ),
    (
        "to_poweroff",
        "a whole boot: from the VMM's start (VM creation, kernel load, guest boot to its \
         shell) until the guest's poweroff request",
    ),
    (
        "total",
        "a whole boot as to_poweroff, plus the VM's teardown by the host kernel",
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
    /// Linux booted as the guest of the same VMM (`--reference linux-vm`).
    #[serde(rename = "linux_guest")]
    LinuxGuest,
}

impl Target {
    pub fn name(self) -> &'static str {
        match self {
            Target::Host => "host",
            Target::Guest => "guest",
            Target::LinuxGuest => "linux_guest",
        }
    }

    /// Whether this target runs in a VM (its entries carry VM exits).
    pub fn in_vm(self) -> bool {
        self != Target::Host
    }
}

/// The reference kernel of a `--reference` run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReferenceInfo {
    /// `linux-vm`: Linux booted by forkvm's VMM with the guest's memory
    /// and vCPUs.
    pub kind: String,
    /// The bzImage.
    pub kernel_path: String,
    /// The guest's `uname` sysname and release (its Hello).
    pub kernel_version: String,
    /// The kernel's `.config`, if known.
    pub config_path: Option<String>,
    /// Options of that config that shape the numbers (HZ, preemption, ...).
    pub config_options: BTreeMap<String, String>,
    /// Modules its `/init` loaded, in order.
    pub modules: Vec<String>,
    /// The kernel command line the VMM gave it.
    pub command_line: String,
}

/// The statistics of one series, in nanoseconds (computed by
/// [`crate::stats::summarize`]). The fields after `max` are new in schema
/// version 4 and `None` only in older reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stats {
    pub min: u64,
    pub median: u64,
    pub p90: u64,
    pub max: u64,
    /// How many samples.
    #[serde(default)]
    pub samples: Option<u64>,
    #[serde(default)]
    pub mean: Option<f64>,
    /// The sample standard deviation.
    #[serde(default)]
    pub stddev: Option<f64>,
    #[serde(default)]
    pub p99: Option<u64>,
    #[serde(default)]
    pub p99_9: Option<u64>,
    /// The bootstrap confidence interval of the median.
    #[serde(default)]
    pub median_ci: Option<Interval>,
}

/// A confidence interval, in nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Interval {
    pub lower: u64,
    pub upper: u64,
    /// 0.95 for a 95% interval.
    pub confidence: f64,
    /// Bootstrap resamples it came from.
    pub resamples: u32,
}

impl Stats {
    /// The median's interval; a report older than schema version 4 has
    /// none, and its interval is the median alone.
    pub fn interval(&self) -> (u64, u64) {
        self.median_ci
            .map_or((self.median, self.median), |ci| (ci.lower, ci.upper))
    }
}

/// Whether an entry has numbers. In JSON its fields are the entry's:
/// `status` and `ns`, `reason` or `error` (see [`EntryJson`]).
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Measured.
    Ok { ns: Stats },
    /// Not run here, with the reason (never a number).
    NotApplicable { reason: String },
    /// The run failed (e.g. a wrong errno), with the error.
    Error { error: String },
}

/// VM exits of the guest `RunBench` request an entry's samples came from
/// (the same for each metric of the operation). The request includes the
/// warm-up and the streaming of the samples; per-iteration numbers divide
/// by the measured iterations.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmExitCount {
    /// Exits that reached the VMM (returns from `KVM_RUN`).
    pub total: u64,
    /// `total` per measured iteration.
    pub per_iter: f64,
    /// The non-zero parts of `total` by exit reason (`mmio_read`,
    /// `mmio_write`, `io_in`, `io_out`, `hlt`, `shutdown`, `interrupted`,
    /// `other`).
    pub by_reason: BTreeMap<String, u64>,
    /// KVM's count of every VM exit, also those it handles in the host
    /// kernel (page faults, timer, hlt): it grows with the operation's own
    /// work. `None` where the host kernel has no KVM binary statistics.
    #[serde(default)]
    pub kvm_total: Option<u64>,
    /// `kvm_total` per measured iteration.
    #[serde(default)]
    pub kvm_per_iter: Option<f64>,
    /// The time these exits cost per iteration, estimated from the run's
    /// null-syscall probe ([`TrapCost`]): KVM's exits of the request less
    /// one Hello's, per iteration (warm-up included), times
    /// [`TrapCost::ns_per_exit`]. Only on PVM, where a system call traps,
    /// and not for a `fork_mem` point that touched memory (see
    /// [`crate::traps::priced`]).
    #[serde(default)]
    pub trap_ns_per_iter: Option<f64>,
}

/// What a trap to the hypervisor costs in this run, from a null-syscall
/// probe: `clone_einval`'s refused call (a `clone` that fails its first
/// flag check, so the kernel does almost nothing) timed in the guest, with
/// KVM's exits of that request. On PVM every guest system call is two
/// exits; the probe's time per exit prices each exit of the other
/// operations, so a reader can tell hypervisor time from kernel work.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrapCost {
    /// The probe operation (`clone_einval`).
    pub probe: String,
    /// Timed calls.
    pub calls: u64,
    /// The median time of one call.
    pub ns_per_call: u64,
    /// KVM's exits per call (the request's less one Hello's, over every
    /// call including the warm-up).
    pub exits_per_call: f64,
    /// `ns_per_call / exits_per_call`: the calibrated cost of one exit.
    pub ns_per_exit: f64,
}

/// The harness's own cost in a guest run, measured once per report (see
/// `bench::overhead`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HarnessCost {
    /// Hello round trips timed.
    pub hellos: u64,
    /// Host wall clock from sending a Hello until its reply is decoded.
    pub hello_round_trip_ns: Option<Stats>,
    /// Exits that reached the VMM per Hello round trip.
    pub exits_per_hello: f64,
    /// KVM's count of every VM exit per Hello (`None` without KVM binary
    /// statistics).
    pub kvm_exits_per_hello: Option<f64>,
    /// Measured `RunBench` requests of the run.
    pub run_bench_requests: u64,
    /// Exits to the VMM of all of them per 1000 measured iterations
    /// (`None` when none succeeded).
    pub run_bench_exits_per_1000_iters: Option<f64>,
}

/// One measured metric of one operation on one target.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(into = "EntryJson", try_from = "EntryJson")]
pub struct Entry {
    /// Operation (`fork`, `clone_thread`, ...).
    pub op: String,
    /// `create` or `create_exit_reap` (see [`METRICS`]); empty for an
    /// operation that was not run.
    pub metric: String,
    pub target: Target,
    /// MiB the parent had touched (`fork_mem` only).
    pub mem_mib: Option<u64>,
    /// Measured iterations (warm-up excluded).
    pub iters: u64,
    pub outcome: Outcome,
    /// How the operation was run where that varies.
    pub note: Option<String>,
    /// The VM exits of the guest request (measured guest entries only).
    pub vm_exits: Option<VmExitCount>,
    /// Every sample (ns) the statistics came from, in iteration order; not
    /// in the JSON report (`--samples FILE` writes them as CSV), empty in
    /// a parsed report.
    pub samples: Vec<u64>,
}

/// An [`Entry`] as JSON: its [`Outcome`] spread into `status` and the one
/// field that status has. (serde's `flatten` would say the same but cannot
/// refuse unknown fields.)
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryJson {
    op: String,
    metric: String,
    target: Target,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    mem_mib: Option<u64>,
    iters: u64,
    status: Status,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    ns: Option<Stats>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    note: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    vm_exits: Option<VmExitCount>,
}

/// An entry's `status`: which of `ns`, `reason` and `error` it has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Status {
    Ok,
    NotApplicable,
    Error,
}

impl From<Entry> for EntryJson {
    fn from(entry: Entry) -> EntryJson {
        let (status, ns, reason, error) = match entry.outcome {
            Outcome::Ok { ns } => (Status::Ok, Some(ns), None, None),
            Outcome::NotApplicable { reason } => (Status::NotApplicable, None, Some(reason), None),
            Outcome::Error { error } => (Status::Error, None, None, Some(error)),
        };
        EntryJson {
            op: entry.op,
            metric: entry.metric,
            target: entry.target,
            mem_mib: entry.mem_mib,
            iters: entry.iters,
            status,
            ns,
            reason,
            error,
            note: entry.note,
            vm_exits: entry.vm_exits,
        }
    }
}

impl TryFrom<EntryJson> for Entry {
    type Error = String;

    fn try_from(json: EntryJson) -> Result<Entry, String> {
        let outcome = match (json.status, json.ns, json.reason, json.error) {
            (Status::Ok, Some(ns), None, None) => Outcome::Ok { ns },
            (Status::NotApplicable, None, Some(reason), None) => Outcome::NotApplicable { reason },
            (Status::Error, None, None, Some(error)) => Outcome::Error { error },
            (status, ..) => {
                let wants = match status {
                    Status::Ok => "ns",
                    Status::NotApplicable => "reason",
                    Status::Error => "error",
                };
                return Err(format!(
                    "status {status:?} needs `{wants}` and none of the other of ns, reason, error"
                ));
            }
        };
        Ok(Entry {
            op: json.op,
            metric: json.metric,
            target: json.target,
            mem_mib: json.mem_mib,
            iters: json.iters,
            outcome,
            note: json.note,
            vm_exits: json.vm_exits,
            samples: Vec::new(),
        })
    }
}

/// The name of the entry of `metric` of `op` (with `mem_mib` touched) on
/// `target`: `op[/NMiB]/metric/target` (no metric: `op[/NMiB]/target`).
pub fn entry_name(op: &str, mem_mib: Option<u64>, metric: &str, target: Target) -> String {
    let mut name = op.to_string();
    if let Some(mib) = mem_mib {
        let _ = write!(name, "/{mib}MiB");
    }
    if !metric.is_empty() {
        name.push('/');
        name.push_str(metric);
    }
    name.push('/');
    name.push_str(target.name());
    name
}

impl Entry {
    /// The name dashboards key on: `op[/NMiB]/metric/target`.
    pub fn name(&self) -> String {
        entry_name(&self.op, self.mem_mib, &self.metric, self.target)
    }

    pub fn stats(&self) -> Option<&Stats> {
        match &self.outcome {
            Outcome::Ok { ns } => Some(ns),
            _ => None,
        }
    }
}

/// Facts about the run that make a number comparable (or not).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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
    /// The guest's vCPUs (when a guest ran; absent before schema 4).
    #[serde(default)]
    pub guest_vcpus: Option<u64>,
    /// Measured iterations per operation and warm-up iterations.
    pub iterations: u64,
    pub warmup: u64,
    /// How the host side was timed: `tsc` (invariant TSC, at
    /// `host_tsc_khz`) or `clock_monotonic` (no invariant TSC). Absent in
    /// reports older than this field: those were timed with the TSC.
    #[serde(default)]
    pub host_clock: Option<String>,
    /// Host TSC frequency used to convert host cycles (when the TSC is the
    /// host clock).
    pub host_tsc_khz: Option<u64>,
    /// Guest TSC frequency (from its Hello reply) used for guest cycles.
    #[serde(default)]
    pub guest_tsc_khz: Option<u64>,
    /// forkbench's version.
    pub tool_version: String,
    /// The harness's own cost (when a guest ran).
    #[serde(default)]
    pub harness: Option<HarnessCost>,
    /// The calibrated trap cost (when a guest ran on PVM).
    #[serde(default)]
    pub trap_cost: Option<TrapCost>,
    /// The reference kernel (`--reference linux-vm`), absent otherwise.
    #[serde(default)]
    pub reference: Option<ReferenceInfo>,
}

impl Metadata {
    /// Gathers the metadata of this machine and run.
    pub fn collect(iterations: u64, warmup: u64) -> Metadata {
        let host_clock = crate::host_linux::host_clock();
        let host_tsc_khz = match host_clock {
            crate::host_linux::HostClock::Tsc { khz } => Some(khz),
            crate::host_linux::HostClock::Monotonic => None,
        };
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
            guest_vcpus: None,
            iterations,
            warmup,
            host_clock: Some(host_clock.name().to_string()),
            host_tsc_khz,
            guest_tsc_khz: None,
            tool_version: env!("CARGO_PKG_VERSION").to_string(),
            harness: None,
            trap_cost: None,
            reference: None,
        }
    }

    /// Whether the guest would run on PVM, where system calls trap.
    pub fn on_pvm(&self) -> bool {
        self.platform_mode.starts_with("pvm")
    }
}

/// A whole run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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
    /// Bencher Metric Format: `{name: {"latency": {value, lower_value,
    /// upper_value}, "latency_p99": {value}, "kvm_exits": {value}}}`, the
    /// bounds the median's confidence interval.
    Bmf,
    /// github-action-benchmark `customSmallerIsBetter`: `[{name, unit,
    /// value, range, extra}]`, the range the median's confidence interval,
    /// and a `NAME/p99` item per entry.
    Github,
    /// A Markdown summary for pull-request comments: the comparison and
    /// the statistics as Markdown tables.
    Markdown,
}

/// Renders `report` in `format`.
pub fn render(report: &Report, format: Format) -> String {
    match format {
        Format::Table => text(report, Style::Text),
        Format::Markdown => text(report, Style::Markdown),
        Format::Json => serde_json::to_string_pretty(report).expect("a report serializes") + "\n",
        Format::Bmf => bmf(report),
        Format::Github => github(report),
    }
}

/// Bencher Metric Format (see [`Format::Bmf`]).
fn bmf(report: &Report) -> String {
    let mut out = serde_json::Map::new();
    for entry in &report.entries {
        let Some(s) = entry.stats() else { continue };
        let (lower, upper) = s.interval();
        let mut measures = serde_json::Map::new();
        measures.insert(
            "latency".to_string(),
            serde_json::json!({
                "value": s.median as f64,
                "lower_value": lower as f64,
                "upper_value": upper as f64,
            }),
        );
        if let Some(p99) = s.p99 {
            measures.insert(
                "latency_p99".to_string(),
                serde_json::json!({ "value": p99 as f64 }),
            );
        }
        if let Some(kvm) = entry.vm_exits.as_ref().and_then(|e| e.kvm_per_iter) {
            measures.insert("kvm_exits".to_string(), serde_json::json!({ "value": kvm }));
        }
        out.insert(entry.name(), serde_json::Value::Object(measures));
    }
    serde_json::to_string_pretty(&out).expect("json") + "\n"
}

/// github-action-benchmark JSON (see [`Format::Github`]).
fn github(report: &Report) -> String {
    let mut items = Vec::new();
    for entry in &report.entries {
        let Some(s) = entry.stats() else { continue };
        let (lower, upper) = s.interval();
        let mut extra = format!(
            "median of {} iterations, {} CI {lower}..{upper} ns; p90 {} ns, max {} ns",
            entry.iters,
            confidence(s),
            s.p90,
            s.max
        );
        if let (Some(mean), Some(sd)) = (s.mean, s.stddev) {
            let _ = write!(extra, ", mean {mean:.0} +- {sd:.0} ns");
        }
        if let Some(exits) = exits_text(entry) {
            let _ = write!(extra, "; {exits}");
        }
        let _ = write!(extra, "; {}", metric_meaning(&entry.metric));
        items.push(serde_json::json!({
            "name": entry.name(),
            "unit": "ns",
            "value": s.median,
            "range": format!("{lower}..{upper}"),
            "extra": extra,
        }));
        if let Some(p99) = s.p99 {
            items.push(serde_json::json!({
                "name": format!("{}/p99", entry.name()),
                "unit": "ns",
                "value": p99,
                "extra": format!("99th percentile of {} iterations", entry.iters),
            }));
        }
    }
    serde_json::to_string_pretty(&items).expect("json") + "\n"
}

/// `95%` for a 95% interval, `-` without one.
fn confidence(s: &Stats) -> String {
    s.median_ci.map_or("no".to_string(), |ci| {
        format!("{:.0}%", ci.confidence * 100.0)
    })
}

/// `KVM exits/iter 12.3, ~trap time/iter 180.0 us` for a guest entry.
fn exits_text(entry: &Entry) -> Option<String> {
    let exits = entry.vm_exits.as_ref()?;
    let mut text = format!("VMM exits/iter {:.4}", exits.per_iter);
    if let Some(kvm) = exits.kvm_per_iter {
        let _ = write!(text, ", KVM exits/iter {kvm:.1}");
    }
    if let Some(trap) = exits.trap_ns_per_iter {
        let _ = write!(text, ", ~trap time/iter {}", human_ns(trap as u64));
    }
    Some(text)
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

/// Plain text or Markdown: the same tables, drawn differently.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Style {
    Text,
    Markdown,
}

impl Style {
    /// An empty table in this style, numbers right-aligned by the caller.
    fn table(self, header: Vec<String>) -> comfy_table::Table {
        let mut table = comfy_table::Table::new();
        table.load_preset(match self {
            Style::Text => comfy_table::presets::NOTHING,
            Style::Markdown => comfy_table::presets::ASCII_MARKDOWN,
        });
        table.set_header(header);
        table
    }

    /// `text` as a cell: Markdown cannot hold a `|` in a cell.
    fn cell(self, text: &str) -> String {
        match self {
            Style::Text => text.to_string(),
            Style::Markdown => text.replace('|', "\\|"),
        }
    }
}

/// `table` as lines without trailing blanks, columns from `first_number`
/// on right-aligned.
fn draw(mut table: comfy_table::Table, first_number: usize) -> String {
    let columns = table.column_count();
    for i in first_number..columns {
        if let Some(column) = table.column_mut(i) {
            column.set_cell_alignment(comfy_table::CellAlignment::Right);
        }
    }
    let mut out = String::new();
    for line in table.to_string().lines() {
        // The borderless style pads the first column too: rows start at
        // the margin, as names are looked up by their start.
        let line = line.strip_prefix(' ').unwrap_or(line);
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn text(report: &Report, style: Style) -> String {
    let mut out = String::new();
    let m = &report.metadata;
    let title = format!(
        "forkbench {} on {} ({}, kernel {}), {} iterations + {} warm-up",
        m.tool_version,
        m.cpu_model.as_deref().unwrap_or("unknown CPU"),
        m.platform_mode,
        m.host_kernel.as_deref().unwrap_or("?"),
        m.iterations,
        m.warmup
    );
    let blank = |out: &mut String| {
        if style == Style::Markdown {
            out.push('\n');
        }
    };
    match style {
        Style::Text => {
            let _ = writeln!(out, "{title}");
        }
        Style::Markdown => {
            let _ = writeln!(out, "### {title}\n");
        }
    }
    if let Some(harness) = &m.harness {
        let _ = writeln!(out, "{}", harness_line(harness));
        blank(&mut out);
    }
    if let Some(trap) = &m.trap_cost {
        let _ = writeln!(out, "{}", trap_line(trap));
        blank(&mut out);
    }
    out.push_str(&comparison(report, style));
    out.push('\n');
    out.push_str(&statistics(report, style));
    out
}

/// Every entry's statistics, one row each, with the VM exits of the guest
/// entries and, on PVM, their estimated trap time.
fn statistics(report: &Report, style: Style) -> String {
    // The exit columns only where a guest ran, the trap column only where
    // it was calibrated.
    let exits = report.entries.iter().any(|e| e.vm_exits.is_some());
    let traps = report.metadata.trap_cost.is_some();
    let mut header: Vec<String> = [
        "benchmark",
        "median",
        "95% CI",
        "p90",
        "p99",
        "p99.9",
        "mean",
        "stddev",
        "min",
        "max",
    ]
    .map(String::from)
    .to_vec();
    if exits {
        header.extend(["exits/iter", "kvm/iter"].map(String::from));
    }
    if traps {
        header.push("~traps/iter".to_string());
    }
    let columns = header.len();
    let mut table = style.table(header);
    let opt = |n: Option<u64>| n.map_or("-".to_string(), human_ns);
    let optf = |n: Option<f64>| n.map_or("-".to_string(), |n| human_ns(n.round() as u64));
    let mut unmeasured: Vec<(String, String)> = Vec::new();
    for entry in &report.entries {
        let name = entry.name();
        let mut row = vec![name];
        match &entry.outcome {
            Outcome::Ok { ns } => {
                let ci = ns.median_ci.map_or("-".to_string(), |ci| {
                    format!("{}..{}", human_ns(ci.lower), human_ns(ci.upper))
                });
                row.extend([
                    human_ns(ns.median),
                    ci,
                    human_ns(ns.p90),
                    opt(ns.p99),
                    opt(ns.p99_9),
                    optf(ns.mean),
                    optf(ns.stddev),
                    human_ns(ns.min),
                    human_ns(ns.max),
                ]);
                if let Some(e) = &entry.vm_exits {
                    row.push(format!("{:.4}", e.per_iter));
                    row.push(
                        e.kvm_per_iter
                            .map_or("-".to_string(), |n| format!("{n:.1}")),
                    );
                    // The estimate is for the whole iteration: shown next
                    // to the metric that times the whole iteration only.
                    if traps && times_the_whole_iteration(report, entry) {
                        row.push(optf(e.trap_ns_per_iter));
                    } else if traps {
                        row.push("-".to_string());
                    }
                }
            }
            Outcome::NotApplicable { reason } => {
                unmeasured.push((row.remove(0), format!("N/A: {reason}")));
                continue;
            }
            Outcome::Error { error } => {
                unmeasured.push((row.remove(0), format!("ERROR: {error}")));
                continue;
            }
        }
        table.add_row(row);
    }
    // Entries without numbers say why: in Markdown as rows of the table
    // (every cell present), in text after it, so a long reason does not
    // widen a column of numbers.
    if style == Style::Markdown {
        for (name, why) in &unmeasured {
            let mut row = vec![name.clone(), style.cell(why)];
            row.resize(columns, String::new());
            table.add_row(row);
        }
        return draw(table, 1);
    }
    let mut out = draw(table, 1);
    let width = report
        .entries
        .iter()
        .map(|e| e.name().len())
        .max()
        .unwrap_or(0);
    for (name, why) in unmeasured {
        let _ = writeln!(out, "{name:<width$}  {why}");
    }
    out
}

/// Whether `entry`'s metric spans its whole iteration: `create_exit_reap`,
/// or the only metric of its operation there (a refused call's `create`).
fn times_the_whole_iteration(report: &Report, entry: &Entry) -> bool {
    entry.metric == "create_exit_reap"
        || !report.entries.iter().any(|e| {
            e.metric == "create_exit_reap"
                && e.op == entry.op
                && e.mem_mib == entry.mem_mib
                && e.target == entry.target
        })
}

/// `harness: Hello round trip X, Y exits; RunBench ~Z exits per 1000
/// iterations`, with KVM's counts where known.
fn harness_line(h: &HarnessCost) -> String {
    let mut line = String::from("harness: Hello round trip ");
    match h.hello_round_trip_ns {
        Some(ns) => {
            let _ = write!(line, "{} (median of {})", human_ns(ns.median), h.hellos);
        }
        None => line.push_str("not measured"),
    }
    let _ = write!(line, ", {:.1} exits", h.exits_per_hello);
    if let Some(kvm) = h.kvm_exits_per_hello {
        let _ = write!(line, " ({kvm:.1} counted by KVM)");
    }
    match h.run_bench_exits_per_1000_iters {
        Some(n) => {
            let _ = write!(line, "; RunBench ~{n:.1} exits per 1000 iterations");
        }
        None => line.push_str("; no RunBench measured"),
    }
    line
}

/// `traps: a null syscall (clone_einval's refused call) takes X = Y KVM
/// exits: ~Z per exit`.
fn trap_line(t: &TrapCost) -> String {
    format!(
        "traps: a null syscall ({}'s refused call, median of {}) takes {} = {:.2} KVM exits: \
         ~{} per exit (~traps/iter: the whole iteration's KVM exits at that price)",
        t.probe,
        t.calls,
        human_ns(t.ns_per_call),
        t.exits_per_call,
        human_ns(t.ns_per_exit.round() as u64)
    )
}

/// One row per operation (`op[/NMiB]`): for each metric of [`METRICS`]
/// that an entry has (all of them if none has one) the guest and host
/// medians and their ratio. A cell without a number says
/// why in a word (`N/A`, `ERROR`, `-` when not run); the statistics below
/// it have the reasons.
fn comparison(report: &Report, style: Style) -> String {
    // (operation, metric, target) -> the cell's text; operations in report
    // order.
    let mut ops: Vec<String> = Vec::new();
    let mut shown: Vec<&str> = METRICS
        .iter()
        .map(|(metric, _)| *metric)
        .filter(|metric| report.entries.iter().any(|e| e.metric == *metric))
        .collect();
    if shown.is_empty() {
        shown = METRICS.iter().map(|(metric, _)| *metric).collect();
    }
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
        for &metric in &shown {
            if entry.metric.is_empty() || entry.metric == metric {
                cells.insert((op.clone(), metric, entry.target.name()), cell.clone());
            }
        }
    }
    // With a Linux guest the ratios are against it (the same VM, another
    // kernel); without, guest against host.
    let reference = report
        .entries
        .iter()
        .any(|e| e.target == Target::LinuxGuest);
    let mut header = vec!["operation".to_string()];
    for &metric in &shown {
        let metric = match metric {
            "round_trip" => "round-trip".to_string(),
            "to_poweroff" => "boot to poweroff".to_string(),
            "total" => "boot total".to_string(),
            other => other.replace('_', "+"),
        };
        if reference {
            header.extend([
                format!("{metric} guest"),
                format!("{metric} linux guest"),
                format!("{metric} host"),
                "guest/linux".to_string(),
                "host/linux".to_string(),
            ]);
        } else {
            header.extend([
                format!("{metric} guest"),
                format!("{metric} host"),
                "guest/host".to_string(),
            ]);
        }
    }
    let mut table = style.table(header);
    for op in &ops {
        let mut row = vec![op.clone()];
        for &metric in &shown {
            let cell = |target: Target| cells.get(&(op.clone(), metric, target.name()));
            let text = |target| cell(target).map_or("-".to_string(), |c| c.0.clone());
            let ratio = |over: Target, under: Target| match (cell(over), cell(under)) {
                (Some((_, Some(a))), Some((_, Some(b)))) if *b > 0 => {
                    format!("{:.2}", *a as f64 / *b as f64)
                }
                _ => "-".to_string(),
            };
            if reference {
                row.extend([
                    text(Target::Guest),
                    text(Target::LinuxGuest),
                    text(Target::Host),
                    ratio(Target::Guest, Target::LinuxGuest),
                    ratio(Target::Host, Target::LinuxGuest),
                ]);
            } else {
                row.extend([
                    text(Target::Guest),
                    text(Target::Host),
                    ratio(Target::Guest, Target::Host),
                ]);
            }
        }
        table.add_row(row);
    }
    draw(table, 1)
}

/// The columns of [`samples_csv`].
pub const SAMPLES_CSV_HEADER: [&str; 7] = [
    "name",
    "op",
    "metric",
    "target",
    "mem_mib",
    "iteration",
    "ns",
];

/// Every sample of every entry as CSV (`--samples FILE`), one row per
/// sample under [`SAMPLES_CSV_HEADER`], in iteration order.
pub fn samples_csv(entries: &[Entry]) -> String {
    let mut csv = csv::Writer::from_writer(Vec::new());
    csv.write_record(SAMPLES_CSV_HEADER)
        .expect("CSV into memory");
    for entry in entries {
        let name = entry.name();
        let mem = entry.mem_mib.map_or(String::new(), |m| m.to_string());
        for (i, ns) in entry.samples.iter().enumerate() {
            csv.write_record([
                name.as_str(),
                &entry.op,
                &entry.metric,
                entry.target.name(),
                &mem,
                &i.to_string(),
                &ns.to_string(),
            ])
            .expect("CSV into memory");
        }
    }
    String::from_utf8(csv.into_inner().expect("CSV into memory")).expect("CSV is UTF-8")
}

/// Parses a JSON report (for `--baseline`), checking its schema version.
pub fn parse_report(text: &str) -> Result<Report, String> {
    let report: Report =
        serde_json::from_str(text).map_err(|e| format!("not a forkbench report: {e}"))?;
    if !(OLDEST_BASELINE_VERSION..=SCHEMA_VERSION).contains(&report.schema_version) {
        return Err(format!(
            "report schema version {} (this forkbench reads {OLDEST_BASELINE_VERSION} to \
             {SCHEMA_VERSION})",
            report.schema_version
        ));
    }
    Ok(report)
}

/// Checks that `value` is a JSON report of this [`SCHEMA_VERSION`] exactly
/// as forkbench writes it: it deserialises into [`Report`] (every type
/// refuses unknown fields), serialising that gives `value` back (so no
/// field is missing), and [`Report::validate`] holds. What a dashboard or
/// script reading the JSON may rely on; the first violation is the error,
/// with where it is.
pub fn check_json(value: &serde_json::Value) -> Result<(), String> {
    let report: Report = serde_path_to_error::deserialize(value)
        .map_err(|e| format!("{}: {}", e.path(), e.inner()))?;
    if report.schema_version != SCHEMA_VERSION {
        return Err(format!(
            "schema_version {}, not {SCHEMA_VERSION}",
            report.schema_version
        ));
    }
    let written = serde_json::to_value(&report).expect("a report serializes");
    if let Some(at) = first_difference(value, &written, String::new()) {
        return Err(format!(
            "{at}: missing or not as forkbench writes it (forkbench writes {})",
            at_path(&written, &at).map_or("nothing".to_string(), |v| v.to_string())
        ));
    }
    report.validate()
}

/// Where `a` and `b` first differ (`metadata.harness`, `entries[0].ns`),
/// if anywhere.
pub(crate) fn first_difference(
    a: &serde_json::Value,
    b: &serde_json::Value,
    at: String,
) -> Option<String> {
    use serde_json::Value;
    let key = |at: &str, k: &str| {
        if at.is_empty() {
            k.to_string()
        } else {
            format!("{at}.{k}")
        }
    };
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            x.keys()
                .chain(y.keys())
                .find_map(|k| match (x.get(k), y.get(k)) {
                    (Some(u), Some(v)) => first_difference(u, v, key(&at, k)),
                    _ => Some(key(&at, k)),
                })
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (u, v))| first_difference(u, v, format!("{at}[{i}]"))),
        _ => (a != b).then_some(at),
    }
}

/// The value at a path of [`first_difference`] (`entries[0].ns`).
pub(crate) fn at_path<'a>(
    value: &'a serde_json::Value,
    path: &str,
) -> Option<&'a serde_json::Value> {
    path.split('.').try_fold(value, |v, part| {
        let (name, index) = match part.split_once('[') {
            Some((name, rest)) => (name, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (part, None),
        };
        let v = v.get(name)?;
        match index {
            Some(i) => v.get(i),
            None => Some(v),
        }
    })
}

impl Stats {
    /// Every field of this schema version is there, for `samples` samples,
    /// and in order: `min <= median <= p90 <= p99 <= p99_9 <= max`, the
    /// interval around the median, the mean within `[min, max]`.
    fn check(&self, samples: u64, at: &str) -> Result<(), String> {
        let (Some(n), Some(mean), Some(stddev), Some(p99), Some(p99_9), Some(ci)) = (
            self.samples,
            self.mean,
            self.stddev,
            self.p99,
            self.p99_9,
            self.median_ci,
        ) else {
            return Err(format!(
                "{at}: samples, mean, stddev, p99, p99_9 and median_ci are required"
            ));
        };
        if n != samples {
            return Err(format!("{at}: {n} samples, expected {samples}"));
        }
        let Stats {
            min,
            median,
            p90,
            max,
            ..
        } = *self;
        let ordered = [min, median, p90, p99, p99_9, max]
            .windows(2)
            .all(|w| w[0] <= w[1]);
        if !ordered {
            return Err(format!("{at}: statistics out of order: {self:?}"));
        }
        if !(ci.lower <= median && median <= ci.upper && min <= ci.lower && ci.upper <= max) {
            return Err(format!(
                "{at}.median_ci: {}..{} does not hold the median {median} within [{min}, {max}]",
                ci.lower, ci.upper
            ));
        }
        if !(ci.confidence > 0.0 && ci.confidence < 1.0) || ci.resamples == 0 {
            return Err(format!(
                "{at}.median_ci: confidence or resamples out of range"
            ));
        }
        check_rate(stddev, &format!("{at}.stddev"))?;
        if !(mean.is_finite() && min as f64 <= mean && mean <= max as f64) {
            return Err(format!("{at}.mean: {mean} is not within [{min}, {max}]"));
        }
        Ok(())
    }
}

/// A count or rate that must be a finite number >= 0.
fn check_rate(n: f64, at: &str) -> Result<(), String> {
    if n.is_finite() && n >= 0.0 {
        Ok(())
    } else {
        Err(format!("{at}: {n} is not a number >= 0"))
    }
}

impl VmExitCount {
    /// The per-iteration numbers are the totals over `iters`, and the
    /// reasons add up to the total.
    pub(crate) fn check(&self, iters: u64, at: &str) -> Result<(), String> {
        let per = |total: u64| total as f64 / iters.max(1) as f64;
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * b.max(1.0);
        check_rate(self.per_iter, &format!("{at}.per_iter"))?;
        if !close(self.per_iter, per(self.total)) {
            return Err(format!(
                "{at}: per_iter {} is not {}/{iters}",
                self.per_iter, self.total
            ));
        }
        let sum: u64 = self.by_reason.values().sum();
        if sum != self.total {
            return Err(format!(
                "{at}: by_reason adds up to {sum}, total is {}",
                self.total
            ));
        }
        match (self.kvm_total, self.kvm_per_iter) {
            (None, None) => Ok(()),
            (Some(total), Some(per_iter)) => {
                check_rate(per_iter, &format!("{at}.kvm_per_iter"))?;
                if close(per_iter, per(total)) {
                    Ok(())
                } else {
                    Err(format!(
                        "{at}: kvm_per_iter {per_iter} is not {total}/{iters}"
                    ))
                }
            }
            _ => Err(format!("{at}: kvm_total and kvm_per_iter disagree")),
        }
    }
}

impl Report {
    /// The invariants a report as forkbench writes it keeps beyond its
    /// types: statistics ordered (min <= median <= p90 <= max), known
    /// metrics and host clocks, rates finite and >= 0, `harness` exactly
    /// when a guest ran, `vm_exits` on every measured guest entry and on
    /// no host entry, its parts adding up.
    pub fn validate(&self) -> Result<(), String> {
        let meta = &self.metadata;
        if let Some(clock) = &meta.host_clock {
            if clock != "tsc" && clock != "clock_monotonic" {
                return Err(format!(
                    "metadata.host_clock {clock:?}: not tsc or clock_monotonic"
                ));
            }
        }
        let guest_ran = meta.guest_memory_mib.is_some();
        if meta.guest_vcpus.is_some() != guest_ran {
            return Err("metadata.guest_vcpus is set exactly when a guest ran".to_string());
        }
        // A guest that only booted (`forkbench boot`) served no request.
        let guest_served = guest_ran
            && (self.entries.is_empty()
                || self
                    .entries
                    .iter()
                    .any(|e| !BOOT_METRICS.contains(&e.metric.as_str())));
        if let Some(trap) = &meta.trap_cost {
            if !guest_ran {
                return Err("metadata.trap_cost is set but no guest ran".to_string());
            }
            let at = "metadata.trap_cost";
            check_rate(trap.exits_per_call, &format!("{at}.exits_per_call"))?;
            check_rate(trap.ns_per_exit, &format!("{at}.ns_per_exit"))?;
        }
        match &meta.harness {
            None if guest_served => {
                return Err("metadata.harness is null but a guest ran".to_string());
            }
            Some(_) if !guest_served => {
                return Err("metadata.harness is set but no guest served requests".to_string());
            }
            None => {}
            Some(harness) => {
                let at = "metadata.harness";
                if let Some(ns) = &harness.hello_round_trip_ns {
                    ns.check(harness.hellos, &format!("{at}.hello_round_trip_ns"))?;
                }
                check_rate(harness.exits_per_hello, &format!("{at}.exits_per_hello"))?;
                for (name, rate) in [
                    ("kvm_exits_per_hello", harness.kvm_exits_per_hello),
                    (
                        "run_bench_exits_per_1000_iters",
                        harness.run_bench_exits_per_1000_iters,
                    ),
                ] {
                    if let Some(rate) = rate {
                        check_rate(rate, &format!("{at}.{name}"))?;
                    }
                }
            }
        }
        for (i, entry) in self.entries.iter().enumerate() {
            let at = format!("entries[{i}]");
            let metric = &entry.metric;
            if !metric.is_empty() && !METRICS.iter().any(|(name, _)| name == metric) {
                return Err(format!("{at}: unknown metric {metric:?}"));
            }
            if let Some(ns) = entry.stats() {
                ns.check(entry.iters, &format!("{at}.ns"))?;
            }
            if entry.target == Target::LinuxGuest && meta.reference.is_none() {
                return Err(format!(
                    "{at}: a linux_guest entry without metadata.reference"
                ));
            }
            match (&entry.vm_exits, entry.target) {
                (Some(_), Target::Host) => {
                    return Err(format!("{at}: vm_exits on a host entry"));
                }
                (None, Target::Guest | Target::LinuxGuest)
                    if entry.stats().is_some() && !BOOT_METRICS.contains(&metric.as_str()) =>
                {
                    return Err(format!("{at}: a measured guest entry without vm_exits"));
                }
                (Some(exits), Target::LinuxGuest) => {
                    exits.check(entry.iters, &format!("{at}.vm_exits"))?;
                    if exits.trap_ns_per_iter.is_some() {
                        return Err(format!("{at}.vm_exits.trap_ns_per_iter on Linux's guest"));
                    }
                }
                (Some(exits), Target::Guest) => {
                    let at = format!("{at}.vm_exits");
                    exits.check(entry.iters, &at)?;
                    let calibrated = meta.trap_cost.is_some()
                        && exits.kvm_total.is_some()
                        && crate::traps::priced(entry);
                    match exits.trap_ns_per_iter {
                        Some(_) if !calibrated => {
                            return Err(format!(
                                "{at}.trap_ns_per_iter without metadata.trap_cost and kvm_total"
                            ));
                        }
                        None if calibrated => {
                            return Err(format!("{at}.trap_ns_per_iter is missing"));
                        }
                        Some(ns) => check_rate(ns, &format!("{at}.trap_ns_per_iter"))?,
                        None => {}
                    }
                }
                (None, _) => {}
            }
        }
        Ok(())
    }
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
                ns: stats(median, 10),
            },
            note: None,
            vm_exits: None,
            samples: Vec::new(),
        }
    }

    /// Statistics of `samples` samples around `median`, its interval +-5%.
    fn stats(median: u64, samples: u64) -> Stats {
        Stats {
            min: median / 2,
            median,
            p90: median * 2,
            max: median * 3,
            samples: Some(samples),
            mean: Some(median as f64 * 1.2),
            stddev: Some(median as f64 / 4.0),
            p99: Some(median * 2),
            p99_9: Some(median * 3),
            median_ci: Some(Interval {
                lower: median * 95 / 100,
                upper: median * 105 / 100,
                confidence: 0.95,
                resamples: 1000,
            }),
        }
    }

    fn report(entries: Vec<Entry>) -> Report {
        Report {
            schema_version: SCHEMA_VERSION,
            metadata: Metadata::collect(10, 1),
            entries,
        }
    }

    /// A guest entry with the exits of its request, in a report whose
    /// metadata says a guest ran.
    fn guest_report(entries: Vec<Entry>) -> Report {
        let mut r = report(entries);
        r.metadata.guest_memory_mib = Some(256);
        r.metadata.guest_vcpus = Some(1);
        r.metadata.guest_tsc_khz = Some(2_000_000);
        r.metadata.harness = Some(HarnessCost {
            hellos: 50,
            hello_round_trip_ns: Some(stats(250_000, 50)),
            exits_per_hello: 2.5,
            kvm_exits_per_hello: Some(23.0),
            run_bench_requests: 1,
            run_bench_exits_per_1000_iters: Some(8.0),
        });
        for entry in &mut r.entries {
            if entry.target.in_vm() {
                entry.vm_exits = Some(VmExitCount {
                    total: 80,
                    per_iter: 80.0 / entry.iters as f64,
                    by_reason: [
                        ("mmio_read".to_string(), 40),
                        ("mmio_write".to_string(), 40),
                    ]
                    .into(),
                    kvm_total: Some(12_345),
                    kvm_per_iter: Some(12_345.0 / entry.iters as f64),
                    trap_ns_per_iter: None,
                });
            }
        }
        r
    }

    // `forkbench boot`'s report: boot entries are timed by the VMM, so
    // they carry no exits and need no harness cost; a request's entry
    // still needs both.
    #[test]
    fn boot_entries_validate_without_exits_or_harness() {
        let boot = |metric: &str| Entry {
            mem_mib: Some(256),
            ..entry("boot", metric, Target::Guest, 2_000_000)
        };
        let mut r = report(vec![boot("to_poweroff"), boot("total")]);
        r.metadata.guest_memory_mib = Some(256);
        r.metadata.guest_vcpus = Some(1);
        let value: serde_json::Value = serde_json::from_str(&render(&r, Format::Json)).unwrap();
        check_json(&value).unwrap();
        assert_eq!(r.entries[0].name(), "boot/256MiB/to_poweroff/guest");
        let table = render(&r, Format::Table);
        assert!(table.contains("boot to poweroff guest"), "{table}");
        let bmf: serde_json::Value = serde_json::from_str(&render(&r, Format::Bmf)).unwrap();
        assert_eq!(
            bmf["boot/256MiB/total/guest"]["latency"]["value"],
            2_000_000.0
        );
        r.entries.push(entry("fork", "create", Target::Guest, 1000));
        let err = r.validate().unwrap_err();
        assert!(err.contains("harness"), "{err}");
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
        check_json(&value).unwrap();
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
        assert_eq!(value["entries"][0]["ns"]["p99_9"], 3000);
        assert_eq!(value["entries"][0]["ns"]["median_ci"]["lower"], 950);
        assert_eq!(value["schema_version"], 6);
        // No guest: no harness cost, no exits, no trap cost.
        assert!(value["metadata"]["harness"].is_null());
        assert!(value["metadata"]["trap_cost"].is_null());
        assert!(value["entries"][0].get("vm_exits").is_none());
        // Version 4 lacks only the reference: still a baseline as it is.
        let mut v4: serde_json::Value = serde_json::from_str(&text).unwrap();
        v4["schema_version"] = 4.into();
        v4["metadata"].as_object_mut().unwrap().remove("reference");
        assert_eq!(parse_report(&v4.to_string()).unwrap().entries, r.entries);
        // Version 3 lacks the new statistics and metadata: still a
        // baseline, its interval its median; version 2 also lacks harness.
        for version in [3, 2] {
            let mut old: serde_json::Value = serde_json::from_str(&text).unwrap();
            old["schema_version"] = version.into();
            let ns = old["entries"][0]["ns"].as_object_mut().unwrap();
            for field in ["samples", "mean", "stddev", "p99", "p99_9", "median_ci"] {
                ns.remove(field);
            }
            let meta = old["metadata"].as_object_mut().unwrap();
            meta.remove("guest_vcpus");
            meta.remove("trap_cost");
            if version == 2 {
                meta.remove("harness");
            }
            let old = parse_report(&old.to_string()).unwrap();
            let ns = old.entries[0].stats().unwrap();
            assert_eq!((ns.median, ns.interval()), (1000, (1000, 1000)));
            assert!(check_json(&serde_json::to_value(&old).unwrap()).is_err());
        }
        // Version 1 reports lack the guest's create entries: refused.
        let old = text.replace("\"schema_version\": 6", "\"schema_version\": 1");
        assert!(parse_report(&old).unwrap_err().contains("schema version 1"));
        assert!(parse_report("{}").is_err());
    }

    /// `--reference linux-vm`: `linux_guest` entries need the reference's
    /// metadata, and the table's ratios are against the Linux guest.
    #[test]
    fn a_linux_reference_has_its_metadata_and_the_ratios_against_it() {
        let mut r = guest_report(vec![
            entry("fork", "create", Target::Guest, 30_000),
            entry("fork", "create", Target::LinuxGuest, 20_000),
            entry("fork", "create", Target::Host, 10_000),
        ]);
        assert!(r
            .validate()
            .unwrap_err()
            .contains("without metadata.reference"));
        r.metadata.reference = Some(ReferenceInfo {
            kind: "linux-vm".to_string(),
            kernel_path: "/k/vmlinuz".to_string(),
            kernel_version: "Linux 6.1.0-48-amd64".to_string(),
            config_path: None,
            config_options: [("CONFIG_HZ".to_string(), "250".to_string())].into(),
            modules: vec!["virtio".to_string()],
            command_line: "console=ttyS0".to_string(),
        });
        r.validate().unwrap();
        let text = render(&r, Format::Json);
        assert_eq!(parse_report(&text).unwrap(), r);
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        check_json(&value).unwrap();
        assert_eq!(value["entries"][1]["target"], "linux_guest");
        assert_eq!(
            value["metadata"]["reference"]["kernel_version"],
            "Linux 6.1.0-48-amd64"
        );
        let table = render(&r, Format::Table);
        let header = table.lines().find(|l| l.starts_with("operation")).unwrap();
        assert!(
            header.contains("create linux guest") && header.contains("guest/linux"),
            "{header}"
        );
        let row = table.lines().find(|l| l.starts_with("fork ")).unwrap();
        // guest/linux 1.50, host/linux 0.50.
        assert!(row.contains("1.50") && row.contains("0.50"), "{row}");
    }

    #[test]
    fn json_has_the_harness_cost_and_each_guest_requests_exits() {
        let r = guest_report(vec![
            entry("fork", "create", Target::Guest, 25_000),
            entry("fork", "create", Target::Host, 20_000),
        ]);
        let text = render(&r, Format::Json);
        assert_eq!(parse_report(&text).unwrap(), r);
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        check_json(&value).unwrap();
        let harness = &value["metadata"]["harness"];
        assert_eq!(harness["hellos"], 50);
        assert_eq!(harness["hello_round_trip_ns"]["median"], 250_000);
        assert_eq!(harness["exits_per_hello"], 2.5);
        assert_eq!(harness["kvm_exits_per_hello"], 23.0);
        assert_eq!(harness["run_bench_exits_per_1000_iters"], 8.0);
        let exits = &value["entries"][0]["vm_exits"];
        assert_eq!(exits["total"], 80);
        assert_eq!(exits["per_iter"], 8.0);
        assert_eq!(exits["by_reason"]["mmio_read"], 40);
        assert_eq!(exits["kvm_total"], 12_345);
        assert!(value["entries"][1].get("vm_exits").is_none());

        // What the checker refuses: each a single change to a valid report.
        let broken = |change: &dyn Fn(&mut serde_json::Value)| {
            let mut v = value.clone();
            change(&mut v);
            check_json(&v).unwrap_err()
        };
        let err = broken(&|v| v["entries"][0]["vm_exits"]["total"] = 81.into());
        assert!(err.contains("per_iter"), "{err}");
        let err = broken(&|v| v["entries"][0]["vm_exits"]["by_reason"]["hlt"] = 1.into());
        assert!(err.contains("adds up"), "{err}");
        let err = broken(&|v| {
            v["entries"][0].as_object_mut().unwrap().remove("vm_exits");
        });
        assert!(err.contains("without vm_exits"), "{err}");
        let err = broken(&|v| v["entries"][1]["vm_exits"] = v["entries"][0]["vm_exits"].clone());
        assert!(err.contains("host entry"), "{err}");
        let err = broken(&|v| v["metadata"]["harness"] = serde_json::Value::Null);
        assert!(err.contains("harness"), "{err}");
        let err =
            broken(&|v| v["metadata"]["harness"]["hello_round_trip_ns"]["min"] = 1_000_000.into());
        assert!(err.contains("out of order"), "{err}");
        let err =
            broken(&|v| v["metadata"]["harness"]["hello_round_trip_ns"]["samples"] = 7.into());
        assert!(err.contains("7 samples, expected 50"), "{err}");
        let err = broken(&|v| v["entries"][0]["ns"]["median_ci"]["lower"] = 25_001.into());
        assert!(err.contains("does not hold the median"), "{err}");
        let err = broken(&|v| v["entries"][0]["ns"]["p99"] = 1.into());
        assert!(err.contains("out of order"), "{err}");
        let err = broken(&|v| v["entries"][0]["ns"]["mean"] = 1.0e9.into());
        assert!(err.contains("mean"), "{err}");
        let err = broken(&|v| v["entries"][0]["ns"]["median_ci"] = serde_json::Value::Null);
        assert!(err.contains("required"), "{err}");
        let err = broken(&|v| v["metadata"]["guest_vcpus"] = serde_json::Value::Null);
        assert!(err.contains("guest_vcpus"), "{err}");
        let err = broken(&|v| v["entries"][0]["vm_exits"]["trap_ns_per_iter"] = 5.0.into());
        assert!(err.contains("without metadata.trap_cost"), "{err}");
        let err = broken(&|v| v["entries"][0]["ns"]["median"] = (-1).into());
        assert!(err.contains("median"), "{err}");
        let err = broken(&|v| v["schema_version"] = 3.into());
        assert!(err.contains("schema_version 3"), "{err}");
        // The types are the schema: no field they do not know, none
        // missing, an outcome's field matching its status.
        let err = broken(&|v| v["entries"][0]["ns"]["average"] = 1.into());
        assert!(
            err.starts_with("entries[0].ns.average: unknown field `average`"),
            "{err}"
        );
        let err = broken(&|v| v["metadata"]["hostname"] = "x".into());
        assert!(err.starts_with("metadata.hostname: unknown field"), "{err}");
        let err = broken(&|v| {
            v["metadata"].as_object_mut().unwrap().remove("cpu_model");
        });
        assert!(err.starts_with("metadata.cpu_model: missing"), "{err}");
        let err = broken(&|v| v["entries"][1]["status"] = "error".into());
        assert!(err.contains("needs `error`"), "{err}");
        let err = broken(&|v| v["entries"][1]["target"] = "vm".into());
        assert!(
            err.starts_with("entries[1].target: unknown variant `vm`"),
            "{err}"
        );
        let err = broken(&|v| v["entries"][1]["metric"] = "exit".into());
        assert!(err.contains("unknown metric"), "{err}");
        let err = broken(&|v| v["entries"][0]["vm_exits"]["kvm_total"] = 1.into());
        assert!(err.contains("kvm_per_iter"), "{err}");
    }

    #[test]
    fn a_guest_on_pvm_has_its_trap_cost() {
        let mut r = guest_report(vec![entry("fork", "create", Target::Guest, 25_000)]);
        r.metadata.trap_cost = Some(TrapCost {
            probe: "clone_einval".to_string(),
            calls: 10,
            ns_per_call: 30_000,
            exits_per_call: 2.0,
            ns_per_exit: 15_000.0,
        });
        let value = serde_json::to_value(&r).unwrap();
        let err = check_json(&value).unwrap_err();
        assert!(err.contains("trap_ns_per_iter is missing"), "{err}");
        r.entries[0].vm_exits.as_mut().unwrap().trap_ns_per_iter = Some(18_000_000.0);
        let value = serde_json::to_value(&r).unwrap();
        check_json(&value).unwrap();
        assert_eq!(value["metadata"]["trap_cost"]["ns_per_exit"], 15_000.0);
        let text = render(&r, Format::Table);
        assert!(
            text.contains(
                "traps: a null syscall (clone_einval's refused call, median of 10) \
                 takes 30.0 us = 2.00 KVM exits: ~15.0 us per exit"
            ),
            "{text}"
        );
        let row = text
            .lines()
            .find(|l| l.trim_start().starts_with("fork/create/guest"))
            .unwrap();
        assert!(row.trim_end().ends_with("18.00 ms"), "{row}");
    }

    #[test]
    fn bmf_and_github_formats() {
        let mut na = entry("max_threads_eagain", "", Target::Host, 1);
        na.outcome = Outcome::NotApplicable {
            reason: "no".into(),
        };
        let r = guest_report(vec![
            entry("fork", "create", Target::Host, 1000),
            na,
            entry("fork", "create_exit_reap", Target::Guest, 4000),
        ]);
        let bmf: serde_json::Value = serde_json::from_str(&render(&r, Format::Bmf)).unwrap();
        let host = &bmf["fork/create/host"];
        // The bounds are the median's interval; p99 is its own measure.
        assert_eq!(host["latency"]["value"], 1000.0);
        assert_eq!(host["latency"]["lower_value"], 950.0);
        assert_eq!(host["latency"]["upper_value"], 1050.0);
        assert_eq!(host["latency_p99"]["value"], 2000.0);
        assert!(host.get("kvm_exits").is_none());
        let guest = &bmf["fork/create_exit_reap/guest"];
        assert_eq!(guest["latency"]["value"], 4000.0);
        assert_eq!(guest["kvm_exits"]["value"], 1234.5);
        assert_eq!(
            bmf.as_object().unwrap().len(),
            2,
            "N/A entries have no number"
        );
        let gh: serde_json::Value = serde_json::from_str(&render(&r, Format::Github)).unwrap();
        let items = gh.as_array().unwrap();
        let names: Vec<&str> = items.iter().map(|i| i["name"].as_str().unwrap()).collect();
        assert_eq!(
            names,
            [
                "fork/create/host",
                "fork/create/host/p99",
                "fork/create_exit_reap/guest",
                "fork/create_exit_reap/guest/p99"
            ]
        );
        assert_eq!(items[0]["unit"], "ns");
        assert_eq!(items[0]["value"], 1000);
        assert_eq!(items[0]["range"], "950..1050");
        let extra = items[0]["extra"].as_str().unwrap();
        assert!(extra.contains("95% CI 950..1050 ns"), "{extra}");
        assert!(extra.contains("returns in the parent"), "{extra}");
        assert_eq!(items[1]["value"], 2000);
        let extra = items[2]["extra"].as_str().unwrap();
        assert!(extra.contains("KVM exits/iter 1234.5"), "{extra}");
        assert!(extra.contains("reaped"), "{extra}");
    }

    #[test]
    fn markdown_summary_has_tables_with_every_cell() {
        let mut na = entry("max_threads_eagain", "", Target::Host, 1);
        na.outcome = Outcome::NotApplicable {
            reason: "a | b".into(),
        };
        let r = guest_report(vec![
            entry("fork", "create", Target::Guest, 25_000),
            entry("fork", "create", Target::Host, 20_000),
            na,
        ]);
        let md = render(&r, Format::Markdown);
        assert!(md.starts_with("### forkbench "), "{md}");
        let rows: Vec<&str> = md.lines().filter(|l| l.starts_with('|')).collect();
        // Each table's rows have as many cells as its header.
        let cells = |line: &str| line.replace("\\|", "").matches('|').count();
        let header = rows.iter().position(|l| l.contains("benchmark")).unwrap();
        for row in &rows[header..] {
            assert_eq!(cells(row), cells(rows[header]), "{row}\n{md}");
        }
        assert!(rows[header + 1].starts_with("|-"), "{md}");
        assert!(md.contains("N/A: a \\| b"), "{md}");
        assert!(md.contains("| fork/create/guest "), "{md}");
        assert!(md.contains(" 1.25 |"), "{md}");
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
        assert!(text.contains(" create+exit+reap guest "), "{text}");
        assert!(text.contains("guest/host"), "{text}");
        // One row per operation: guest, host, ratio for each metric.
        let fork: Vec<&str> = text
            .lines()
            .find(|l| l.trim_start().starts_with("fork "))
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
            .find(|l| l.trim_start().starts_with("max_threads_eagain "))
            .unwrap();
        assert!(na_row.contains("N/A"), "{na_row}");
        // The statistics follow, with the reasons.
        let guest: Vec<&str> = text
            .lines()
            .find(|l| l.trim_start().starts_with("fork/create_exit_reap/guest"))
            .unwrap()
            .split_whitespace()
            .collect();
        // name, median, CI (lower..upper), p90, p99, p99.9, mean, stddev, min, max.
        assert_eq!(
            guest,
            [
                "fork/create_exit_reap/guest",
                "300.0",
                "us",
                "285.0",
                "us..315.0",
                "us",
                "600.0",
                "us",
                "600.0",
                "us",
                "900.0",
                "us",
                "360.0",
                "us",
                "75.0",
                "us",
                "150.0",
                "us",
                "900.0",
                "us"
            ],
            "{text}"
        );
        assert!(text.contains("N/A: would affect the host"), "{text}");
        // Host numbers only: no harness line, no exit columns.
        assert!(!text.contains("harness:"), "{text}");
        assert!(!text.contains("exits/iter"), "{text}");
    }

    #[test]
    fn table_shows_the_harness_cost_and_exits_per_iteration() {
        let r = guest_report(vec![
            entry("fork", "create", Target::Guest, 25_000),
            entry("fork", "create", Target::Host, 20_000),
        ]);
        let text = render(&r, Format::Table);
        let line = text.lines().nth(1).unwrap();
        assert_eq!(
            line,
            "harness: Hello round trip 250.0 us (median of 50), 2.5 exits (23.0 counted by KVM); \
             RunBench ~8.0 exits per 1000 iterations",
            "{text}"
        );
        assert!(text.contains("exits/iter"), "{text}");
        assert!(!text.contains("~traps/iter"), "no trap cost: {text}");
        let guest: Vec<&str> = text
            .lines()
            .find(|l| l.trim_start().starts_with("fork/create/guest"))
            .unwrap()
            .split_whitespace()
            .collect();
        // name, 10 numbers with units (the CI one word plus a unit), exits
        // per iteration, KVM's per iteration.
        assert_eq!(guest[20..], ["8.0000", "1234.5"], "{text}");
        let host = text
            .lines()
            .find(|l| l.trim_start().starts_with("fork/create/host"))
            .unwrap();
        assert_eq!(host.split_whitespace().count(), 20, "{host}");
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
        let found = crate::gate::regressions(&base, &now, 10.0);
        let names: Vec<&str> = found.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["fork/create/guest"], "{found:?}");
        assert!((found[0].percent - 50.0).abs() < 1e-9);
        // And the other way round.
        let now = report(vec![
            entry("fork", "create", Target::Guest, 30_000),
            entry("fork", "create_exit_reap", Target::Guest, 260_000),
        ]);
        let found = crate::gate::regressions(&base, &now, 10.0);
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
        let found = crate::gate::regressions(&base, &now, 10.0);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].name, "fork/create/host");
        assert!((found[0].percent - 20.0).abs() < 1e-9);
        assert!(found[0]
            .to_string()
            .starts_with("REGRESSION fork/create/host"));
        assert!(crate::gate::regressions(&base, &now, 25.0).is_empty());
    }

    #[test]
    fn samples_as_csv() {
        let mut e = entry("fork_mem", "create", Target::Guest, 1);
        e.mem_mib = Some(16);
        e.samples = vec![30, 10];
        let csv = samples_csv(&[e, entry("fork", "create", Target::Host, 1)]);
        assert_eq!(
            csv,
            "name,op,metric,target,mem_mib,iteration,ns\n\
             fork_mem/16MiB/create/guest,fork_mem,create,guest,16,0,30\n\
             fork_mem/16MiB/create/guest,fork_mem,create,guest,16,1,10\n"
        );
    }
}
