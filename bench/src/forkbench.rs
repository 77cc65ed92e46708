//! `forkbench`'s commands: what `run`/`compare`, `sweep` and `probe` do
//! once the binary (`bench/src/bin/forkbench.rs`) has parsed the command
//! line.
//!
//! `run` measures in forkvm's guest (booted once, with memory for its
//! largest point, driven over the virtio-console protocol by
//! [`crate::guest_harness`]) and on the host's own Linux
//! ([`crate::host_linux`]), writes a [`Report`] in the chosen format, and
//! with a baseline report or a history directory fails naming every
//! regression [`crate::gate`] finds. Everything that can be checked before
//! a run is checked first (the baseline is read, must come from the same
//! kind of machine and share entries with the run, every point must fit in
//! the guest, the output files must be writable), so a mistake costs no
//! measuring; those are setup errors, exit status 2.

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::entries::{guest_entries, guest_need_mib, host_entries};
use crate::gate::{self, Fingerprint};
use crate::guest_harness::{
    GuestHarness, HarnessOptions, LinuxGuestBoot, ProbeArgs, ReplyTimeout, DEFAULT_BOOT_TIMEOUT,
    DEFAULT_REQUEST_TIMEOUT, DEFAULT_VM_TIMEOUT,
};
use crate::host_linux::{op_name, BenchOp, Params};
use crate::linux_reference::LinuxReference;
use crate::overhead::{self, RunBenchTotals};
use crate::probe::ProbeOutcome;
use crate::progress::Progress;
use crate::report::{self, Format, Metadata, Outcome, Report};
use forkvm_protocol::ScaleMode;

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
    /// Guest RAM in MiB; `None` sizes it for the largest point
    /// ([`guest_memory_for`]).
    pub guest_memory_mib: Option<u64>,
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
    /// Compare with a baseline or history from another machine fingerprint.
    pub allow_foreign_baseline: bool,
    /// A directory of earlier runs to test against, and record this one in.
    pub history: Option<PathBuf>,
    /// Runs the history keeps.
    pub history_keep: usize,
    /// Write every sample as CSV here.
    pub samples: Option<PathBuf>,
}

impl OutputOptions {
    /// Table on standard output, no gate, no files.
    pub fn stdout(format: Format) -> OutputOptions {
        OutputOptions {
            format,
            output: None,
            baseline: None,
            threshold: 10.0,
            allow_foreign_baseline: false,
            history: None,
            history_keep: gate::DEFAULT_HISTORY_KEEP,
            samples: None,
        }
    }
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
    /// Also measure in Linux booted by the same VMM (`--reference
    /// linux-vm`), with this kernel (`None`: the cached Debian one).
    pub reference: Option<Reference>,
    /// The initramfs forkvm's guest boots with (`--initrd`), whose
    /// programs `exec_static` and `shell` run (on the host too).
    pub initrd: Option<PathBuf>,
}

impl RunOptions {
    /// The same run with the guest booted with `initrd` (`--initrd`).
    pub fn with_initrd(self, initrd: Option<PathBuf>) -> RunOptions {
        RunOptions { initrd, ..self }
    }
}

/// `--reference linux-vm [--linux-kernel PATH]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    pub kernel: Option<PathBuf>,
    /// More of its command line (`--linux-append`).
    pub append: Option<String>,
}

/// How long a Linux guest may take to boot and answer its first Hello
/// (a distribution kernel probes more than forkvm's, and the nested test
/// runs it under QEMU's emulation).
const LINUX_BOOT_TIMEOUT: Duration = Duration::from_secs(420);

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
    /// Guest RAM in MiB; `None` sizes it for the largest point.
    pub guest_memory_mib: Option<u64>,
    /// The report's format and files (no gate: a sweep has no baseline).
    pub output: OutputOptions,
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

/// The operations `name` (an operation or `all`) selects. `all` leaves
/// out those that need an initramfs (`exec_static`, `shell`): a run with
/// `--initrd` adds them ([`select_with_archive`]).
pub fn select(name: &str) -> Result<Vec<BenchOp>, String> {
    if name == "all" {
        return Ok(BenchOp::ALL
            .into_iter()
            .filter(|op| !op.needs_archive())
            .collect());
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

/// The operations `name` selects for a run with or without an initramfs
/// (`--initrd`): with one, `all` includes `exec_static` and `shell`.
pub fn select_with_archive(name: &str, initrd: bool) -> Result<Vec<BenchOp>, String> {
    let mut ops = select(name)?;
    if name == "all" && initrd {
        ops.extend(BenchOp::ALL.into_iter().filter(|op| op.needs_archive()));
    }
    Ok(ops)
}

/// The operations `forkbench scale --op` selects: each name (repeatable)
/// is one of [`scale::OPS`](crate::scale::OPS) or `all`; each operation
/// is taken once, in the order first named. A setup error names the
/// choices for an unknown name.
pub fn select_scale_ops(names: &[String]) -> Result<Vec<BenchOp>, Error> {
    let mut ops = Vec::new();
    for name in names {
        let selected = if name == "all" {
            crate::scale::OPS.to_vec()
        } else {
            let op = crate::scale::OPS
                .into_iter()
                .find(|&op| op_name(op) == name)
                .ok_or_else(|| {
                    let names: Vec<_> = crate::scale::OPS.iter().map(|&op| op_name(op)).collect();
                    Error::setup(format!("--op {name:?}: one of {}, all", names.join(", ")))
                })?;
            vec![op]
        };
        for op in selected {
            if !ops.contains(&op) {
                ops.push(op);
            }
        }
    }
    Ok(ops)
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
    initrd: Option<&Path>,
    timeout: ReplyTimeout,
    work: &[(BenchOp, Params)],
    progress: &mut Progress,
    describe: impl Fn(BenchOp, Params) -> String,
    metadata: &mut Metadata,
) -> Result<GuestPart, Error> {
    let lifetime = vm_lifetime(timeout, work);
    let mut harness = boot_guest_with(memory_mib, GUEST_VCPUS as u32, timeout, lifetime, initrd)?;
    metadata.guest_memory_mib = Some(memory_mib);
    metadata.guest_vcpus = Some(GUEST_VCPUS);
    metadata.guest_tsc_khz = Some(harness.hello_info().tsc_khz);
    let hellos = overhead::measure_hellos(&mut harness, overhead::HELLOS)
        .map_err(|e| Error::run(format!("guest Hello round trips: {e}")))?;
    // KVM's exits per Hello: a request's own cost, which the trap
    // accounting leaves out of each request's count.
    let hello_kvm = overhead::harness_cost(&hellos, &RunBenchTotals::default()).kvm_exits_per_hello;
    metadata.trap_cost = crate::traps::probe_if_pvm(
        &mut harness,
        metadata.on_pvm(),
        metadata.iterations,
        hello_kvm,
    );
    let mut totals = RunBenchTotals::default();
    let mut entries = Vec::new();
    for &(op, params) in work {
        progress.step(&format!("{} in the guest", describe(op, params)));
        entries.extend(guest_entries(&mut harness, op, params, &mut totals));
    }
    metadata.harness = Some(overhead::harness_cost(&hellos, &totals));
    if let (Some(trap), Some(hello_kvm)) = (&metadata.trap_cost, hello_kvm) {
        crate::traps::annotate(&mut entries, trap, hello_kvm, metadata.warmup);
    }
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

/// A Linux reference guest ready to boot: its kernel and the archive
/// written for it.
struct PreparedLinux {
    reference: LinuxReference,
    archive: PathBuf,
    append: Option<String>,
}

/// Checks that Linux can run here and writes its initramfs, before
/// anything is measured.
fn prepare_linux_guest(reference: &Reference) -> Result<PreparedLinux, Error> {
    vmm::linux_boot::refuse_on_pvm(vmm::config::PlatformChoice::Auto)
        .map_err(|e| Error::run(format!("--reference linux-vm: {e}")))?;
    let located = LinuxReference::locate(reference.kernel.as_deref())
        .map_err(|e| Error::setup(format!("--reference linux-vm: {e}")))?;
    let archive = located
        .archive()
        .map_err(|e| Error::run(format!("--reference linux-vm: {e}")))?;
    let path = std::env::temp_dir().join(format!("forkbench-linux-{}.cpio", std::process::id()));
    std::fs::write(&path, archive).map_err(|e| Error::run(format!("{}: {e}", path.display())))?;
    Ok(PreparedLinux {
        reference: located,
        archive: path,
        append: reference.append.clone(),
    })
}

/// The Linux part of a `--reference linux-vm` run: the same requests in
/// Linux booted by the same VMM with the same memory; fills
/// `metadata.reference`.
fn measure_linux_guest(
    linux: &PreparedLinux,
    memory_mib: u64,
    timeout: ReplyTimeout,
    work: &[(BenchOp, Params)],
    progress: &mut Progress,
    metadata: &mut Metadata,
) -> Result<GuestPart, Error> {
    eprintln!(
        "forkbench: booting Linux ({}, {memory_mib} MiB)",
        linux.reference.kernel.display()
    );
    let mut harness = GuestHarness::start(HarnessOptions {
        memory: memory_mib << 20,
        cpus: GUEST_VCPUS as u32,
        kernel: linux.reference.kernel.clone(),
        boot_timeout: LINUX_BOOT_TIMEOUT,
        request_timeout: timeout,
        vm_timeout: LINUX_BOOT_TIMEOUT + vm_lifetime(timeout, work),
        linux: Some(LinuxGuestBoot {
            initrd: linux.archive.clone(),
            append: linux.append.clone(),
        }),
        initrd: None,
    })
    .map_err(|e| Error::run(format!("Linux guest: {e}")))?;
    let command_line = vmm::linux_boot::command_line(linux.append.as_deref(), 2048, false)
        .map(|c| vmm::linux_boot::cmdline_text(&c))
        .unwrap_or_default();
    metadata.reference = Some(
        linux
            .reference
            .info(&harness.hello_info().kernel_version, &command_line),
    );
    let mut totals = RunBenchTotals::default();
    let mut entries = Vec::new();
    for &(op, params) in work {
        progress.step(&format!("{} in the Linux guest", op_name(op)));
        entries.extend(crate::entries::linux_guest_entries(
            &mut harness,
            op,
            params,
            &mut totals,
        ));
    }
    let powered_off = match harness.shutdown() {
        Ok(_) => true,
        Err(e) => {
            eprintln!("forkbench: Linux guest shutdown: {e}");
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

/// The vCPUs forkvm gives its guest (the VMM creates one).
pub const GUEST_VCPUS: u64 = 1;

/// Reads the baseline report of `--baseline`.
fn read_baseline(path: &Path) -> Result<Report, Error> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::run(format!("baseline {}: {e}", path.display())))?;
    report::parse_report(&text).map_err(|e| Error::run(format!("baseline {}: {e}", path.display())))
}

/// The largest guest memory forkvm can give (MiB): RAM above the 3 GiB
/// hole moves up by 1 GiB, within what the boot page tables map.
const MAX_GUEST_MEMORY_MIB: u64 = (forkvm_abi::MAX_GUEST_MEMORY >> 20) - 1024;

/// The guest memory (MiB) for `work`: `asked` when given, else the
/// default 256 MiB or, when more, what the largest point needs
/// ([`guest_need_mib`]) plus the kernel's own share (about 1/16 of RAM
/// and a few MiB: frame metadata and the kernel image). A point that
/// cannot fit (in `asked`, in the largest guest, or in the host's
/// available memory) is a setup error naming it, before anything runs.
pub fn guest_memory_for(work: &[(BenchOp, Params)], asked: Option<u64>) -> Result<u64, Error> {
    let largest = work.iter().copied().max_by_key(|&(_, p)| guest_need_mib(p));
    let Some((op, params)) = largest else {
        return Ok(asked.unwrap_or(DEFAULT_GUEST_MEMORY_MIB));
    };
    let need = guest_need_mib(params);
    let required = ((need + 4) * 16).div_ceil(15);
    let point = match op {
        BenchOp::ForkMem => format!("{} at {} MiB touched", op_name(op), params.mem_mib),
        _ => op_name(op).to_string(),
    };
    if required > MAX_GUEST_MEMORY_MIB {
        return Err(Error::setup(format!(
            "{point} needs a guest of {required} MiB; forkvm gives at most \
             {MAX_GUEST_MEMORY_MIB} MiB"
        )));
    }
    if let Some(available) = host_available_mib() {
        if need > available {
            return Err(Error::setup(format!(
                "{point} needs about {need} MiB of memory; the host has {available} MiB available"
            )));
        }
    }
    match asked {
        Some(asked) if asked < required => Err(Error::setup(format!(
            "{point} needs a guest of at least {required} MiB; --guest-memory is {asked} \
             (leave it out to size the guest for the largest point)"
        ))),
        Some(asked) => Ok(asked),
        None => Ok(required.max(DEFAULT_GUEST_MEMORY_MIB)),
    }
}

/// The guest memory when nothing larger is needed.
pub const DEFAULT_GUEST_MEMORY_MIB: u64 = 256;

/// `MemAvailable` of /proc/meminfo in MiB.
fn host_available_mib() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib >> 10)
}

/// The fingerprint the run of `targets` with `guest_memory` will have.
fn planned_fingerprint(metadata: &Metadata, targets: Targets, guest_memory: u64) -> Fingerprint {
    let mut fingerprint = Fingerprint::of(metadata);
    if targets.guest() {
        fingerprint.guest_vcpus = Some(GUEST_VCPUS);
        fingerprint.guest_memory_mib = Some(guest_memory);
    }
    fingerprint
}

/// Refuses (setup error) `other` from another kind of machine than `ours`
/// unless `allowed`, which prints the differences as a warning instead.
fn check_fingerprint(
    ours: &Fingerprint,
    other: &Report,
    what: &str,
    allowed: bool,
) -> Result<(), Error> {
    let differences = ours.differences(&Fingerprint::of(&other.metadata));
    if differences.is_empty() {
        return Ok(());
    }
    let list = differences.join("; ");
    if allowed {
        eprintln!("forkbench: warning: {what} is from another machine ({list})");
        return Ok(());
    }
    Err(Error::setup(format!(
        "{what} is from another machine ({list}): its numbers are not comparable; \
         pass --allow-foreign-baseline to compare anyway"
    )))
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
    let params = Params {
        iters: iters as usize,
        warmup: warmup as usize,
        mem_mib: mem_mib as usize,
    };
    let work: Vec<(BenchOp, Params)> = opts.ops.iter().map(|&op| (op, params)).collect();
    // Everything that can be wrong with what was asked, before measuring.
    let memory = if opts.targets.guest() {
        guest_memory_for(&work, guest_memory_mib)?
    } else {
        guest_memory_mib.unwrap_or(DEFAULT_GUEST_MEMORY_MIB)
    };
    match (&opts.initrd, opts.ops.iter().find(|op| op.needs_archive())) {
        (Some(path), _) => {
            crate::host_linux::archive::use_archive(path)
                .map_err(|e| Error::setup(format!("--initrd {e}")))?;
        }
        (None, Some(&op)) => {
            return Err(Error::setup(format!(
                "{} runs programs from an initramfs: give --initrd FILE (e.g. a cpio of \
                 Debian's busybox-static with /bin/true and /bin/sh)",
                op_name(op)
            )))
        }
        (None, None) => {}
    }
    let mut metadata = Metadata::collect(iters, warmup);
    let fingerprint = planned_fingerprint(&metadata, opts.targets, memory);
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
            check_fingerprint(
                &fingerprint,
                &baseline,
                &format!("baseline {}", path.display()),
                output.allow_foreign_baseline,
            )?;
            Some(baseline)
        }
        None => None,
    };
    let history = match &output.history {
        Some(dir) => Some(read_history(dir, &fingerprint, output)?),
        None => None,
    };
    let linux = match &opts.reference {
        Some(reference) => Some(prepare_linux_guest(reference)?),
        None => None,
    };
    let files = OutputFiles::create(output)?;
    let steps = opts.targets.count() + usize::from(linux.is_some());
    let mut progress = Progress::new(work.len() * steps);
    let mut entries = Vec::new();
    let mut failed = false;
    // Linux first: its boot is the slow, uncertain part.
    let mut linux_entries = Vec::new();
    if let Some(linux) = &linux {
        // Its archive is harnessd's own: no busybox for the exec operations.
        let linux_work: Vec<(BenchOp, Params)> = work
            .iter()
            .copied()
            .filter(|(op, _)| !op.needs_archive())
            .collect();
        let part = measure_linux_guest(
            linux,
            memory,
            reply_timeout(opts.timeout),
            &linux_work,
            &mut progress,
            &mut metadata,
        );
        let _ = std::fs::remove_file(&linux.archive);
        let part = part?;
        linux_entries = part.entries;
        failed |= !part.powered_off;
    }
    if opts.targets.guest() {
        let guest = measure_guest(
            memory,
            opts.initrd.as_deref(),
            reply_timeout(opts.timeout),
            &work,
            &mut progress,
            |op, _| op_name(op).to_string(),
            &mut metadata,
        )?;
        entries = guest.entries;
        failed |= !guest.powered_off;
    }
    entries.extend(linux_entries);
    if opts.targets.host() {
        for &(op, params) in &work {
            progress.step(&format!("{} on the host", op_name(op)));
            entries.extend(host_entries(op, params));
        }
    }
    crate::host_linux::archive::remove_extracted();
    progress.finish();
    let report = Report {
        schema_version: report::SCHEMA_VERSION,
        metadata,
        entries,
    };
    // The gate first, so the Markdown summary can carry its verdicts.
    let mut verdicts = String::new();
    let mut found = Vec::new();
    if let Some(baseline) = &baseline {
        let regressions = gate::regressions(baseline, &report, output.threshold);
        verdicts += &gate::markdown(
            "Against the baseline",
            &regressions,
            compared(baseline, &report),
        );
        found.extend(regressions);
    }
    if let Some(history) = &history {
        let regressions = gate::history_regressions(history, &report, output.threshold);
        if history.len() < gate::MIN_HISTORY {
            eprintln!(
                "forkbench: history has {} comparable runs, {} needed to test: recorded only",
                history.len(),
                gate::MIN_HISTORY
            );
        }
        let title = format!("Against the last {} runs", history.len());
        let compared = history.last().map_or(0, |last| compared(last, &report));
        verdicts += &gate::markdown(&title, &regressions, compared);
        found.extend(regressions);
    }
    let mut text = report::render(&report, output.format);
    if output.format == Format::Markdown {
        text += &verdicts;
    }
    files.write(&report, &text)?;
    failed |= has_errors(&report);
    for regression in &found {
        eprintln!("forkbench: {regression} > {}%", output.threshold);
    }
    failed |= !found.is_empty();
    if let Some(dir) = &output.history {
        let path = gate::record(dir, &report, output.history_keep).map_err(Error::run)?;
        eprintln!("forkbench: recorded {}", path.display());
    }
    Ok(verdict(failed))
}

/// How many measured entries `a` and `b` share.
fn compared(a: &Report, b: &Report) -> usize {
    let names: Vec<String> = a
        .entries
        .iter()
        .filter(|e| e.stats().is_some())
        .map(report::Entry::name)
        .collect();
    b.entries
        .iter()
        .filter(|e| e.stats().is_some() && names.contains(&e.name()))
        .count()
}

/// The comparable runs of a `--history` directory, oldest first: runs
/// from another machine are refused (setup error) unless
/// `--allow-foreign-baseline`.
fn read_history(
    dir: &Path,
    fingerprint: &Fingerprint,
    output: &OutputOptions,
) -> Result<Vec<Report>, Error> {
    let runs = gate::load_history(dir).map_err(Error::setup)?;
    let mut kept = Vec::new();
    for (path, run) in runs {
        check_fingerprint(
            fingerprint,
            &run,
            &format!("history run {}", path.display()),
            output.allow_foreign_baseline,
        )?;
        kept.push(run);
    }
    let skip = kept.len().saturating_sub(output.history_keep);
    Ok(kept.split_off(skip))
}

/// The files a run writes, created before it measures.
struct OutputFiles {
    output: Option<OutputFile>,
    samples: Option<OutputFile>,
}

impl OutputFiles {
    fn create(output: &OutputOptions) -> Result<OutputFiles, Error> {
        let create = |path: &Option<PathBuf>, what| match path {
            Some(path) => OutputFile::create(path, what).map(Some),
            None => Ok(None),
        };
        Ok(OutputFiles {
            output: create(&output.output, "--output")?,
            samples: create(&output.samples, "--samples")?,
        })
    }

    /// `text` to `--output` or standard output, the samples to `--samples`.
    fn write(self, report: &Report, text: &str) -> Result<(), Error> {
        match self.output {
            Some(file) => file.write(text)?,
            None => print!("{text}"),
        }
        if let Some(file) = self.samples {
            file.write(&report::samples_csv(&report.entries))?;
        }
        Ok(())
    }
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
    boot_guest_on(memory_mib, GUEST_VCPUS as u32, timeout, lifetime)
}

/// [`boot_guest`] with `cpus` vCPUs.
fn boot_guest_on(
    memory_mib: u64,
    cpus: u32,
    timeout: ReplyTimeout,
    lifetime: Duration,
) -> Result<GuestHarness, Error> {
    boot_guest_with(memory_mib, cpus, timeout, lifetime, None)
}

/// [`boot_guest_on`] with an initramfs (`--initrd`).
fn boot_guest_with(
    memory_mib: u64,
    cpus: u32,
    timeout: ReplyTimeout,
    lifetime: Duration,
    initrd: Option<&Path>,
) -> Result<GuestHarness, Error> {
    if !crate::boot::kvm_available() {
        return Err(Error::run(format!(
            "no KVM device ({}): the guest cannot run here; use --target host",
            vmm::config::DEFAULT_KVM_DEVICE
        )));
    }
    eprintln!("forkbench: booting the guest ({memory_mib} MiB, {cpus} vCPU(s))");
    GuestHarness::start(HarnessOptions {
        memory: memory_mib << 20,
        cpus,
        request_timeout: timeout,
        vm_timeout: lifetime,
        initrd: initrd.map(Path::to_path_buf),
        ..HarnessOptions::default()
    })
    .map_err(|e| Error::run(format!("guest: {e}")))
}

/// `forkbench sweep`: `fork_mem` at each size, a table on standard output
/// and optionally CSV and SVG files.
pub fn sweep(opts: &SweepOptions) -> Result<Verdict, Error> {
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
    let memory = if opts.targets.guest() {
        guest_memory_for(&work, opts.guest_memory_mib)?
    } else {
        0
    };
    let csv = match &opts.csv {
        Some(path) => Some(OutputFile::create(path, "--csv")?),
        None => None,
    };
    let svg = match &opts.svg {
        Some(path) => Some(OutputFile::create(path, "--svg")?),
        None => None,
    };
    let files = OutputFiles::create(&opts.output)?;
    let describe = |_, params: Params| format!("fork_mem {} MiB", params.mem_mib);
    let mut metadata = Metadata::collect(opts.iters, opts.warmup);
    let mut progress = Progress::new(work.len() * opts.targets.count());
    let mut entries = Vec::new();
    let mut failed = false;
    if opts.targets.guest() {
        let guest = measure_guest(
            memory,
            None,
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
    files.write(&report, &report::render(&report, opts.output.format))?;
    if let Some(file) = csv {
        file.write(&crate::sweep::to_csv(&report.entries))?;
    }
    if let Some(file) = svg {
        file.write(&crate::sweep::to_svg(&report.entries).map_err(Error::run)?)?;
    }
    Ok(verdict(failed || has_errors(&report)))
}

/// `forkbench scale`: K concurrent workers of each operation, K = 1..=N.
#[derive(Clone, Debug, PartialEq)]
pub struct ScaleOptions {
    /// Operations (of [`crate::scale::OPS`]).
    pub ops: Vec<BenchOp>,
    /// Processes, threads, or both.
    pub modes: Vec<ScaleMode>,
    pub targets: Targets,
    /// The largest K on both targets; `None`: the guest's vCPUs in the
    /// guest, the host's CPUs on the host.
    pub workers_max: Option<u64>,
    /// How long each point's workers run.
    pub duration_ms: u64,
    /// The guest's vCPUs.
    pub cpus: u32,
    /// MiB touched before `fork_mem`'s workers start.
    pub mem_mib: u64,
    /// Guest RAM in MiB; `None` sizes it for `fork_mem`.
    pub guest_memory_mib: Option<u64>,
    /// See [`RunOptions::timeout`].
    pub timeout: Option<Duration>,
    /// Write CSV rows here.
    pub csv: Option<PathBuf>,
    /// Write an SVG plot of ops/s against K here.
    pub svg: Option<PathBuf>,
    /// The report's format and file (no gate, no samples).
    pub output: OutputOptions,
}

/// The host's CPUs.
fn host_cpus() -> u64 {
    std::thread::available_parallelism().map_or(1, |n| n.get() as u64)
}

/// `forkbench scale`: every operation, mode and K on the chosen targets,
/// the report on standard output (or `--output`), CSV and SVG if asked.
pub fn scale(opts: &ScaleOptions) -> Result<Verdict, Error> {
    use crate::scale::{Counts, Point, ScaleReport};

    if let Some(&op) = opts.ops.iter().find(|op| !crate::scale::OPS.contains(op)) {
        return Err(Error::setup(format!(
            "{} cannot be run by scale workers",
            op_name(op)
        )));
    }
    let host_cpus = host_cpus();
    let guest_k = opts.workers_max.unwrap_or(u64::from(opts.cpus));
    let host_k = opts.workers_max.unwrap_or(host_cpus);
    let most = u64::from(forkvm_protocol::MAX_SCALE_WORKERS);
    if guest_k.max(host_k) > most {
        return Err(Error::setup(format!(
            "--workers-max {}: at most {most}",
            guest_k.max(host_k)
        )));
    }
    let memory = if opts.targets.guest() {
        vmm::config::check_cpus(opts.cpus).map_err(|e| Error::setup(format!("--cpus: {e}")))?;
        let touched = Params {
            iters: 1,
            warmup: 0,
            mem_mib: opts.mem_mib as usize,
        };
        let work: Vec<(BenchOp, Params)> = opts
            .ops
            .iter()
            .map(|&op| (op, touched))
            .filter(|&(op, _)| op == BenchOp::ForkMem)
            .collect();
        guest_memory_for(&work, opts.guest_memory_mib)?
    } else {
        0
    };
    let create = |path: &Option<PathBuf>, what| match path {
        Some(path) => OutputFile::create(path, what).map(Some),
        None => Ok(None),
    };
    let output = create(&opts.output.output, "--output")?;
    let csv = create(&opts.csv, "--csv")?;
    let svg = create(&opts.svg, "--svg")?;
    let mem_mib = |op| {
        if op == BenchOp::ForkMem {
            opts.mem_mib
        } else {
            0
        }
    };
    let curves: Vec<(BenchOp, ScaleMode)> = opts
        .ops
        .iter()
        .flat_map(|&op| opts.modes.iter().map(move |&mode| (op, mode)))
        .collect();
    let mut metadata = Metadata::collect(0, 0);
    let steps = curves.len() as u64
        * (u64::from(opts.targets.guest()) * guest_k + u64::from(opts.targets.host()) * host_k);
    let mut progress = Progress::new(steps as usize);
    let mut points = Vec::new();
    let mut failed = false;
    let duration_ms = opts.duration_ms as u32;
    if opts.targets.guest() {
        let timeout = reply_timeout(opts.timeout);
        let requests: Duration = curves
            .iter()
            .map(|&(op, _)| {
                (1..=guest_k)
                    .map(|k| timeout.run_scale(op, k as u16, duration_ms, mem_mib(op) as u32))
                    .sum::<Duration>()
            })
            .sum();
        let lifetime = DEFAULT_VM_TIMEOUT.max(DEFAULT_BOOT_TIMEOUT + requests);
        let mut harness = boot_guest_on(memory, opts.cpus, timeout, lifetime)?;
        metadata.guest_memory_mib = Some(memory);
        metadata.guest_vcpus = Some(u64::from(opts.cpus));
        let khz = harness.hello_info().tsc_khz;
        metadata.guest_tsc_khz = Some(khz);
        for &(op, mode) in &curves {
            for k in 1..=guest_k {
                progress.step(&format!(
                    "{} {} x{k} in the guest",
                    op_name(op),
                    mode.name()
                ));
                let (result, exits) = overhead::exits_of(&mut harness, |h| {
                    h.run_scale(op, mode, k as u16, duration_ms, mem_mib(op) as u32)
                });
                points.push(match result {
                    Ok(c) => {
                        let elapsed = crate::host_linux::cycles_to_duration(c.elapsed_tsc, khz);
                        let counts = Counts {
                            ops: c.ops,
                            elapsed_ns: elapsed.as_nanos() as u64,
                            min_worker_ops: c.min_worker_ops,
                            max_worker_ops: c.max_worker_ops,
                        };
                        let exits = exits.per_iters(c.ops);
                        let target = report::Target::Guest;
                        Point::measured(op, mem_mib(op), mode, target, k, counts, Some(exits))
                    }
                    Err(e) => {
                        let target = report::Target::Guest;
                        Point::failed(op, mem_mib(op), mode, target, k, e.to_string())
                    }
                });
            }
        }
        if let Err(e) = harness.shutdown() {
            eprintln!("forkbench: guest shutdown: {e}");
            failed = true;
        }
    }
    if opts.targets.host() {
        for &(op, mode) in &curves {
            for k in 1..=host_k {
                progress.step(&format!("{} {} x{k} on the host", op_name(op), mode.name()));
                let duration = Duration::from_millis(opts.duration_ms);
                let result = crate::host_linux::scale::run(
                    op,
                    mode,
                    k as usize,
                    duration,
                    mem_mib(op) as usize,
                );
                let target = report::Target::Host;
                points.push(match result {
                    Ok(c) => {
                        let counts = Counts {
                            ops: c.ops,
                            elapsed_ns: c.elapsed_ns,
                            min_worker_ops: c.min_worker_ops,
                            max_worker_ops: c.max_worker_ops,
                        };
                        Point::measured(op, mem_mib(op), mode, target, k, counts, None)
                    }
                    Err(e) => Point::failed(op, mem_mib(op), mode, target, k, e),
                });
            }
        }
    }
    progress.finish();
    let report = ScaleReport {
        schema: crate::scale::SCHEMA.to_string(),
        schema_version: crate::scale::SCHEMA_VERSION,
        metadata,
        duration_ms: opts.duration_ms,
        host_cpus,
        points: crate::scale::with_efficiency(points),
    };
    let text = crate::scale::render(&report, opts.output.format);
    match output {
        Some(file) => file.write(&text)?,
        None => print!("{text}"),
    }
    if let Some(file) = csv {
        file.write(&crate::scale::to_csv(&report))?;
    }
    if let Some(file) = svg {
        file.write(&crate::scale::to_svg(&report).map_err(Error::run)?)?;
    }
    failed |= report.points.iter().any(|p| p.error.is_some());
    Ok(verdict(failed))
}

/// `forkbench boot`: whole boots of the guest, timed.
#[derive(Clone, Debug, PartialEq)]
pub struct BootOptions {
    /// Measured boots.
    pub iters: u64,
    /// Boots run first and not measured.
    pub warmup: u64,
    /// Guest RAM in MiB.
    pub memory_mib: u64,
    /// Write CSV rows (the sweep's columns) here.
    pub csv: Option<PathBuf>,
    /// The report's format and files (`--output`, `--samples`; no gate).
    pub output: OutputOptions,
}

/// `forkbench boot`: `iters` boots (after `warmup`) of the guest in this
/// process to its `poweroff` ([`crate::boot::boot_to_poweroff`]), reported
/// as the `boot/NMiB/to_poweroff/guest` and `boot/NMiB/total/guest`
/// entries of a latency report, in any format.
pub fn boot(opts: &BootOptions) -> Result<Verdict, Error> {
    if !crate::boot::kvm_available() {
        return Err(Error::run(format!(
            "no KVM device ({}): the guest cannot boot here",
            vmm::config::DEFAULT_KVM_DEVICE
        )));
    }
    let files = OutputFiles::create(&opts.output)?;
    let csv = match &opts.csv {
        Some(path) => Some(OutputFile::create(path, "--csv")?),
        None => None,
    };
    let mut metadata = Metadata::collect(opts.iters, opts.warmup);
    metadata.guest_memory_mib = Some(opts.memory_mib);
    metadata.guest_vcpus = Some(GUEST_VCPUS);
    let total = opts.warmup + opts.iters;
    let mut progress = Progress::new(total as usize);
    let mut to_poweroff = Vec::with_capacity(opts.iters as usize);
    let mut whole = Vec::with_capacity(opts.iters as usize);
    let mut error = None;
    for i in 0..total {
        progress.step(&format!("boot {} of {total}", i + 1));
        match crate::boot::boot_to_poweroff(opts.memory_mib << 20) {
            Ok(times) if i >= opts.warmup => {
                to_poweroff.push(times.to_poweroff.as_nanos() as u64);
                whole.push(times.total.as_nanos() as u64);
            }
            Ok(_) => {}
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    progress.finish();
    let entry = |metric: &str, samples: Vec<u64>| {
        let outcome = match (&error, crate::stats::summarize(&samples)) {
            (None, Some(ns)) => Outcome::Ok { ns },
            (Some(e), _) => Outcome::Error { error: e.clone() },
            (None, None) => Outcome::Error {
                error: "no samples".to_string(),
            },
        };
        report::Entry {
            op: "boot".to_string(),
            metric: metric.to_string(),
            target: report::Target::Guest,
            mem_mib: Some(opts.memory_mib),
            iters: opts.iters,
            outcome,
            note: None,
            vm_exits: None,
            samples,
        }
    };
    let report = Report {
        schema_version: report::SCHEMA_VERSION,
        metadata,
        entries: vec![entry("to_poweroff", to_poweroff), entry("total", whole)],
    };
    files.write(&report, &report::render(&report, opts.output.format))?;
    if let Some(file) = csv {
        file.write(&crate::sweep::to_csv(&report.entries))?;
    }
    Ok(verdict(has_errors(&report)))
}

/// `forkbench probe`: the call's pid or errno on each target, printed.
pub fn probe(opts: &ProbeOptions) -> Result<Verdict, Error> {
    let mut results: Vec<(&str, ProbeOutcome)> = Vec::new();
    if opts.targets.guest() {
        let timeout = reply_timeout(None);
        let mut harness = boot_guest(DEFAULT_GUEST_MEMORY_MIB, timeout, DEFAULT_VM_TIMEOUT)?;
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
    fn scale_ops_are_selected_once_each_in_the_order_named() {
        let names = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            select_scale_ops(&names(&["vfork", "fork", "vfork"])).unwrap(),
            [BenchOp::Vfork, BenchOp::Fork]
        );
        assert_eq!(
            select_scale_ops(&names(&["fork_mem", "all"])).unwrap(),
            [
                BenchOp::ForkMem,
                BenchOp::Fork,
                BenchOp::Vfork,
                BenchOp::CloneThread,
                BenchOp::CloneVm
            ]
        );
        // Not a scaling operation, though a benchmark one.
        let err = select_scale_ops(&names(&["fork", "fork_exec"])).unwrap_err();
        assert_eq!(err.exit_status, 2);
        assert_eq!(
            err.message,
            "--op \"fork_exec\": one of fork, vfork, clone_thread, clone_vm, fork_mem, all"
        );
    }

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
    fn the_guest_is_sized_for_its_largest_point() {
        let point = |op, mem_mib, iters| {
            (
                op,
                Params {
                    iters,
                    warmup: 0,
                    mem_mib,
                },
            )
        };
        // Small points: the default.
        let small = [
            point(BenchOp::Fork, 0, 1000),
            point(BenchOp::ForkMem, 16, 1000),
        ];
        assert_eq!(guest_memory_for(&small, None).unwrap(), 256);
        assert_eq!(guest_memory_for(&small, Some(128)).unwrap(), 128);
        // `sweep --mem-list 0,1024` (the point that used to die in 256 MiB):
        // room for the touched GiB, its page tables and the kernel's share.
        let sweep = [
            point(BenchOp::ForkMem, 0, 1000),
            point(BenchOp::ForkMem, 1024, 1000),
        ];
        let memory = guest_memory_for(&sweep, None).unwrap();
        assert!((1024 + 64..=1400).contains(&memory), "{memory}");
        let err = guest_memory_for(&sweep, Some(1024)).unwrap_err();
        assert_eq!(err.exit_status, 2);
        assert!(
            err.message.starts_with(&format!(
                "fork_mem at 1024 MiB touched needs a guest of at least {memory} MiB; \
                 --guest-memory is 1024"
            )),
            "{err}"
        );
        // A million iterations' samples need room too.
        let long = [point(BenchOp::Fork, 0, 10_000_000)];
        assert!(guest_memory_for(&long, None).unwrap() > 305 + 32);
        // Beyond what forkvm can give.
        let huge = [point(BenchOp::ForkMem, 80 << 10, 10)];
        let err = guest_memory_for(&huge, None).unwrap_err();
        assert!(err.message.contains("at most"), "{err}");
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
                guest_memory_mib: None,
            },
            timeout: None,
            output: OutputOptions::stdout(Format::Table),
            reference: None,
            initrd: None,
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
