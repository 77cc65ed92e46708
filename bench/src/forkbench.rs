//! `forkbench`'s commands: what `run`/`compare`, `sweep` and `probe` do
//! once the binary (`bench/src/bin/forkbench.rs`) has parsed the command
//! line.
//!
//! `run` measures in forkvm's guest (booted once, driven over the
//! virtio-console protocol by [`crate::guest_harness`]) and on the host's
//! own Linux ([`crate::host_linux`]), writes a [`Report`] in the chosen
//! format, and with a baseline report compares medians and fails naming
//! every regression beyond the threshold. Everything that can be checked
//! before a run is checked first (the baseline is read and must share
//! entries with the run, the output files must be writable), so a mistake
//! costs no measuring; those are setup errors, exit status 2.

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::entries::{guest_entries, host_entries};
use crate::guest_harness::{
    GuestHarness, HarnessOptions, ProbeArgs, ReplyTimeout, DEFAULT_BOOT_TIMEOUT,
    DEFAULT_REQUEST_TIMEOUT, DEFAULT_VM_TIMEOUT,
};
use crate::host_linux::{op_name, BenchOp, Params};
use crate::overhead::{self, RunBenchTotals};
use crate::probe::ProbeOutcome;
use crate::progress::Progress;
use crate::report::{self, Format, Metadata, Outcome, Report};

/// Where to measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Targets {
    Guest,
    Host,
    Both,
}

impl Targets {
    fn guest(self) -> bool {
        self != Targets::Host
    }

    fn host(self) -> bool {
        self != Targets::Guest
    }

    fn count(self) -> usize {
        1 + usize::from(self == Targets::Both)
    }
}

/// How much to measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sizes {
    /// Measured iterations.
    pub iters: u64,
    /// Iterations run first and not measured.
    pub warmup: u64,
    /// MiB the parent touches before `fork_mem`.
    pub mem_mib: u64,
    /// Guest RAM in MiB.
    pub guest_memory_mib: u64,
}

/// Where and how a `run` reports.
#[derive(Clone, Debug, PartialEq)]
pub struct OutputOptions {
    pub format: Format,
    /// Write the report here instead of standard output.
    pub output: Option<PathBuf>,
    /// A JSON report to compare medians with.
    pub baseline: Option<PathBuf>,
    /// Percent a median may grow over the baseline's.
    pub threshold: f64,
}

/// `forkbench run` (and `compare`, which is `run` of every operation on
/// both targets).
#[derive(Clone, Debug, PartialEq)]
pub struct RunOptions {
    pub ops: Vec<BenchOp>,
    pub targets: Targets,
    pub sizes: Sizes,
    /// The limit on each guest request; `None` scales it with the request's
    /// work ([`crate::guest_harness::run_bench_allowance`]).
    pub timeout: Option<Duration>,
    pub output: OutputOptions,
}

/// `forkbench sweep`: `fork_mem` at each of `mem_list` MiB.
#[derive(Clone, Debug, PartialEq)]
pub struct SweepOptions {
    pub mem_list: Vec<u64>,
    pub iters: u64,
    pub warmup: u64,
    pub targets: Targets,
    /// See [`RunOptions::timeout`].
    pub timeout: Option<Duration>,
    /// Write CSV rows here.
    pub csv: Option<PathBuf>,
    /// Write an SVG plot of the medians here.
    pub svg: Option<PathBuf>,
}

/// `forkbench probe`: one `clone`/`clone3` call.
#[derive(Clone, Debug, PartialEq)]
pub struct ProbeOptions {
    pub args: ProbeArgs,
    pub targets: Targets,
    /// JSON instead of one line per target.
    pub json: bool,
}

/// How a command that ran to the end came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every entry measured, no regression: exit status 0.
    Passed,
    /// An entry failed or a median regressed: exit status 1.
    Failed,
}

/// Why a command stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub message: String,
    /// 2 for a mistake in what was asked, found before measuring (as for
    /// usage errors); 1 for a failure while running.
    pub exit_status: u8,
}

impl Error {
    /// A mistake in what was asked, found before measuring.
    fn setup(message: String) -> Error {
        Error {
            message,
            exit_status: 2,
        }
    }

    /// A failure while running.
    fn run(message: String) -> Error {
        Error {
            message,
            exit_status: 1,
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Every operation's name, and `all`.
pub fn op_names() -> Vec<&'static str> {
    let mut names: Vec<_> = BenchOp::ALL.iter().map(|&op| op_name(op)).collect();
    names.push("all");
    names
}

/// The operations `name` (an operation or `all`) selects.
pub fn select(name: &str) -> Result<Vec<BenchOp>, String> {
    if name == "all" {
        return Ok(BenchOp::ALL.to_vec());
    }
    BenchOp::ALL
        .into_iter()
        .find(|&op| op_name(op) == name)
        .map(|op| vec![op])
        .ok_or_else(|| {
            let names: Vec<_> = BenchOp::ALL.iter().map(|&op| op_name(op)).collect();
            format!(
                "unknown operation {name:?}; one of: {}, all",
                names.join(", ")
            )
        })
}

/// A file named on the command line, created (or truncated) before
/// anything runs, so that a path that cannot be written is an error at
/// once and not after the whole run.
struct OutputFile {
    path: PathBuf,
    file: File,
}

impl OutputFile {
    fn create(path: &Path, what: &str) -> Result<OutputFile, Error> {
        File::create(path)
            .map(|file| OutputFile {
                path: path.to_path_buf(),
                file,
            })
            .map_err(|e| Error::setup(format!("cannot write {what} {}: {e}", path.display())))
    }

    fn write(mut self, text: &str) -> Result<(), Error> {
        self.file
            .write_all(text.as_bytes())
            .map_err(|e| Error::run(format!("{}: {e}", self.path.display())))
    }
}

/// The guest-request limits of `timeout` (see [`RunOptions::timeout`]).
fn reply_timeout(timeout: Option<Duration>) -> ReplyTimeout {
    match timeout {
        Some(limit) => ReplyTimeout::Fixed(limit),
        None => ReplyTimeout::Scaled {
            floor: DEFAULT_REQUEST_TIMEOUT,
        },
    }
}

/// How long the VM may live to serve the `RunBench`es of `work` (op and
/// parameters) under `timeout`: the boot, each request's limit and a few
/// short requests around each (Stats, the untimed call of a failing op),
/// and never less than the default.
fn vm_lifetime(timeout: ReplyTimeout, work: &[(BenchOp, Params)]) -> Duration {
    let requests: Duration = work
        .iter()
        .map(|&(op, p)| {
            timeout.run_bench(op, p.iters as u32, p.warmup as u32, p.mem_mib as u32)
                + 4 * timeout.base()
        })
        .sum();
    DEFAULT_VM_TIMEOUT.max(DEFAULT_BOOT_TIMEOUT + requests + 4 * timeout.base())
}

/// The guest part of a run: boots a guest of `memory_mib` MiB, measures
/// the harness's own cost, then each `(op, params)` of `work`; fills the
/// guest fields of `metadata`.
fn measure_guest(
    memory_mib: u64,
    timeout: ReplyTimeout,
    work: &[(BenchOp, Params)],
    progress: &mut Progress,
    describe: impl Fn(BenchOp, Params) -> String,
    metadata: &mut Metadata,
) -> Result<GuestPart, Error> {
    let mut harness = boot_guest(memory_mib, timeout, vm_lifetime(timeout, work))?;
    metadata.guest_memory_mib = Some(memory_mib);
    metadata.guest_tsc_khz = Some(harness.hello_info().tsc_khz);
    let hellos = overhead::measure_hellos(&mut harness, overhead::HELLOS)
        .map_err(|e| Error::run(format!("guest Hello round trips: {e}")))?;
    let mut totals = RunBenchTotals::default();
    let mut entries = Vec::new();
    for &(op, params) in work {
        progress.step(&format!("{} in the guest", describe(op, params)));
        entries.extend(guest_entries(&mut harness, op, params, &mut totals));
    }
    metadata.harness = Some(overhead::harness_cost(&hellos, &totals));
    // A guest still busy with a request that timed out may not power off
    // in time: that fails the run, but what was measured is still reported.
    let powered_off = match harness.shutdown() {
        Ok(_) => true,
        Err(e) => {
            eprintln!("forkbench: guest shutdown: {e}");
            false
        }
    };
    Ok(GuestPart {
        entries,
        powered_off,
    })
}

/// What [`measure_guest`] measured.
struct GuestPart {
    entries: Vec<report::Entry>,
    /// Whether the guest powered off cleanly at the end.
    powered_off: bool,
}

/// Reads the baseline report of `--baseline`.
fn read_baseline(path: &Path) -> Result<Report, Error> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::run(format!("baseline {}: {e}", path.display())))?;
    report::parse_report(&text).map_err(|e| Error::run(format!("baseline {}: {e}", path.display())))
}

/// The names (`op[/NMiB]/metric/target`) a run of `opts` can produce
/// entries under.
fn planned_names(opts: &RunOptions) -> Vec<String> {
    let mut names = Vec::new();
    for &op in &opts.ops {
        let mem = (op == BenchOp::ForkMem).then_some(opts.sizes.mem_mib);
        let mut targets = Vec::new();
        if opts.targets.guest() {
            targets.push((report::Target::Guest, op.metrics().to_vec()));
        }
        if opts.targets.host() {
            targets.push((
                report::Target::Host,
                crate::host_linux::metrics(op).to_vec(),
            ));
        }
        for (target, metrics) in targets {
            for metric in metrics {
                names.push(report::entry_name(op_name(op), mem, metric.name(), target));
            }
        }
    }
    names
}

/// `forkbench run`: measures `opts.ops`, writes the report, and compares
/// it with the baseline.
pub fn run(opts: &RunOptions) -> Result<Verdict, Error> {
    let Sizes {
        iters,
        warmup,
        mem_mib,
        guest_memory_mib,
    } = opts.sizes;
    let output = &opts.output;
    // Everything that can be wrong with what was asked, before measuring.
    let baseline = match &output.baseline {
        Some(path) => {
            let baseline = read_baseline(path)?;
            let measured: Vec<String> = baseline
                .entries
                .iter()
                .filter(|e| e.stats().is_some())
                .map(report::Entry::name)
                .collect();
            if !planned_names(opts).iter().any(|n| measured.contains(n)) {
                return Err(Error::setup(format!(
                    "baseline {}: none of its {} measured entries is one this run makes \
                     (it has e.g. {}): nothing would be compared",
                    path.display(),
                    measured.len(),
                    measured.first().map_or("nothing", String::as_str)
                )));
            }
            Some(baseline)
        }
        None => None,
    };
    let out_file = match &output.output {
        Some(path) => Some(OutputFile::create(path, "--output")?),
        None => None,
    };
    let params = Params {
        iters: iters as usize,
        warmup: warmup as usize,
        mem_mib: mem_mib as usize,
    };
    let work: Vec<(BenchOp, Params)> = opts.ops.iter().map(|&op| (op, params)).collect();
    let mut metadata = Metadata::collect(iters, warmup);
    let mut progress = Progress::new(work.len() * opts.targets.count());
    let mut entries = Vec::new();
    let mut failed = false;
    if opts.targets.guest() {
        let guest = measure_guest(
            guest_memory_mib,
            reply_timeout(opts.timeout),
            &work,
            &mut progress,
            |op, _| op_name(op).to_string(),
            &mut metadata,
        )?;
        entries = guest.entries;
        failed = !guest.powered_off;
    }
    if opts.targets.host() {
        for &(op, params) in &work {
            progress.step(&format!("{} on the host", op_name(op)));
            entries.extend(host_entries(op, params));
        }
    }
    progress.finish();
    let report = Report {
        schema_version: report::SCHEMA_VERSION,
        metadata,
        entries,
    };
    let text = report::render(&report, output.format);
    match out_file {
        Some(file) => file.write(&text)?,
        None => print!("{text}"),
    }
    failed |= has_errors(&report);
    if let Some(baseline) = baseline {
        let found = report::regressions(&baseline, &report, output.threshold);
        for regression in &found {
            eprintln!("forkbench: {regression} > {}%", output.threshold);
        }
        failed |= !found.is_empty();
    }
    Ok(verdict(failed))
}

fn has_errors(report: &Report) -> bool {
    report
        .entries
        .iter()
        .any(|e| matches!(e.outcome, Outcome::Error { .. }))
}

fn verdict(failed: bool) -> Verdict {
    if failed {
        Verdict::Failed
    } else {
        Verdict::Passed
    }
}

/// Boots the guest with `memory_mib` MiB, or says why it cannot.
fn boot_guest(
    memory_mib: u64,
    timeout: ReplyTimeout,
    lifetime: Duration,
) -> Result<GuestHarness, Error> {
    if !crate::boot::kvm_available() {
        return Err(Error::run(format!(
            "no KVM device ({}): the guest cannot run here; use --target host",
            vmm::config::DEFAULT_KVM_DEVICE
        )));
    }
    eprintln!("forkbench: booting the guest ({memory_mib} MiB)");
    GuestHarness::start(HarnessOptions {
        memory: memory_mib << 20,
        request_timeout: timeout,
        vm_timeout: lifetime,
        ..HarnessOptions::default()
    })
    .map_err(|e| Error::run(format!("guest: {e}")))
}

/// `forkbench sweep`: `fork_mem` at each size, a table on standard output
/// and optionally CSV and SVG files.
pub fn sweep(opts: &SweepOptions) -> Result<Verdict, Error> {
    let csv = match &opts.csv {
        Some(path) => Some(OutputFile::create(path, "--csv")?),
        None => None,
    };
    let svg = match &opts.svg {
        Some(path) => Some(OutputFile::create(path, "--svg")?),
        None => None,
    };
    let work: Vec<(BenchOp, Params)> = opts
        .mem_list
        .iter()
        .map(|&mem| {
            let params = Params {
                iters: opts.iters as usize,
                warmup: opts.warmup as usize,
                mem_mib: mem as usize,
            };
            (BenchOp::ForkMem, params)
        })
        .collect();
    let describe = |_, params: Params| format!("fork_mem {} MiB", params.mem_mib);
    let mut metadata = Metadata::collect(opts.iters, opts.warmup);
    let mut progress = Progress::new(work.len() * opts.targets.count());
    let mut entries = Vec::new();
    let mut failed = false;
    if opts.targets.guest() {
        // Room for the touched memory plus the kernel, harnessd and the child.
        let memory = opts.mem_list.iter().max().copied().unwrap_or(0) + 256;
        let guest = measure_guest(
            memory,
            reply_timeout(opts.timeout),
            &work,
            &mut progress,
            describe,
            &mut metadata,
        )?;
        entries = guest.entries;
        failed = !guest.powered_off;
    }
    if opts.targets.host() {
        for &(op, params) in &work {
            progress.step(&format!("{} on the host", describe(op, params)));
            entries.extend(host_entries(op, params));
        }
    }
    progress.finish();
    let report = Report {
        schema_version: report::SCHEMA_VERSION,
        metadata,
        entries,
    };
    print!("{}", report::render(&report, Format::Table));
    if let Some(file) = csv {
        file.write(&crate::sweep::to_csv(&report.entries))?;
    }
    if let Some(file) = svg {
        file.write(&crate::sweep::to_svg(&report.entries).map_err(Error::run)?)?;
    }
    Ok(verdict(failed || has_errors(&report)))
}

/// `forkbench probe`: the call's pid or errno on each target, printed.
pub fn probe(opts: &ProbeOptions) -> Result<Verdict, Error> {
    let mut results: Vec<(&str, ProbeOutcome)> = Vec::new();
    if opts.targets.guest() {
        let timeout = reply_timeout(None);
        let mut harness = boot_guest(256, timeout, DEFAULT_VM_TIMEOUT)?;
        let result = harness
            .probe(opts.args)
            .map_err(|e| Error::run(format!("guest probe: {e}")))?;
        harness
            .shutdown()
            .map_err(|e| Error::run(format!("guest shutdown: {e}")))?;
        results.push(("guest", ProbeOutcome::from_result(result)));
    }
    if opts.targets.host() {
        let outcome = crate::probe::host_probe(opts.args)
            .map_err(|e| Error::run(format!("host probe: {e}")))?;
        results.push(("host", outcome));
    }
    if opts.json {
        let map: serde_json::Map<String, serde_json::Value> = results
            .into_iter()
            .map(|(t, o)| (t.to_string(), serde_json::to_value(o).expect("json")))
            .collect();
        println!("{}", serde_json::to_string_pretty(&map).expect("json"));
    } else {
        for (target, outcome) in &results {
            println!("{target}: {outcome}");
        }
    }
    Ok(Verdict::Passed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vm_lives_as_long_as_its_requests_may_take() {
        let big = Params {
            iters: 1000,
            warmup: 100,
            mem_mib: 1024,
        };
        let scaled = reply_timeout(None);
        let limit = scaled.run_bench(BenchOp::ForkMem, 1000, 100, 1024);
        let life = vm_lifetime(scaled, &[(BenchOp::ForkMem, big), (BenchOp::ForkMem, big)]);
        assert!(life >= 2 * limit, "{life:?} for two requests of {limit:?}");
        let small = Params {
            iters: 10,
            warmup: 1,
            mem_mib: 0,
        };
        assert_eq!(
            vm_lifetime(scaled, &[(BenchOp::Fork, small)]),
            DEFAULT_VM_TIMEOUT
        );
        let fixed = ReplyTimeout::Fixed(Duration::from_secs(1000));
        assert!(vm_lifetime(fixed, &[(BenchOp::Fork, small)]) >= Duration::from_secs(1000));
    }

    #[test]
    fn planned_names_are_the_report_names() {
        let opts = RunOptions {
            ops: vec![BenchOp::ForkMem, BenchOp::CloneEinval],
            targets: Targets::Both,
            sizes: Sizes {
                iters: 1,
                warmup: 0,
                mem_mib: 64,
                guest_memory_mib: 256,
            },
            timeout: None,
            output: OutputOptions {
                format: Format::Table,
                output: None,
                baseline: None,
                threshold: 10.0,
            },
        };
        let names = planned_names(&opts);
        for name in [
            "fork_mem/64MiB/create/guest",
            "fork_mem/64MiB/create_exit_reap/host",
            "clone_einval/create/guest",
            "clone_einval/create/host",
        ] {
            assert!(names.iter().any(|n| n == name), "{name}: {names:?}");
        }
    }
}
