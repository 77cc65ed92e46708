//! `forkbench`: process-creation benchmarks for regression dashboards.
//!
//! `forkbench run OP|all` measures in forkvm's guest (booted once, driven
//! over the virtio-console protocol by `bench::guest_harness`) and on the
//! host's own Linux (`bench::host_linux`), and prints a table with
//! guest/host ratios, the JSON report, Bencher Metric Format or
//! github-action-benchmark JSON; `compare` is `run all` on both.
//! `--baseline FILE` compares medians with an earlier JSON report and exits
//! 1 naming every regression beyond `--threshold` percent.

use std::path::PathBuf;
use std::process::ExitCode;

use bench::guest_harness::{GuestHarness, GuestRun, HarnessOptions};
use bench::host_linux::{self, op_name, BenchOp, HostError, Params, Summary};
use bench::overhead::{self, RequestExits, RunBenchTotals};
use bench::probe::ProbeOutcome;
use bench::progress::Progress;
use bench::report::{self, Entry, Format, Metadata, Outcome, Report, Stats, Target};
use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "forkbench",
    version,
    about = "Process-creation benchmarks (fork, vfork, clone) with dashboard output"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Measure one operation, or `all`, in the guest and/or on the host.
    Run {
        /// The operation, or `all`.
        #[arg(value_parser = clap::builder::PossibleValuesParser::new(op_names()))]
        op: String,
        /// Where to run it.
        #[arg(long, value_enum, default_value_t = TargetArg::Both)]
        target: TargetArg,
        #[command(flatten)]
        sizes: SizeArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Every operation in the guest and on the host, with ratios.
    Compare {
        #[command(flatten)]
        sizes: SizeArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// `fork_mem` latency against the MiB the parent touched.
    Sweep(SweepArgs),
    /// One clone/clone3 call: its pid or errno in the guest and on the host.
    Probe(ProbeArgsCli),
}

#[derive(clap::Args)]
struct SweepArgs {
    /// MiB touched before forking, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "0,1,16,64,256",
          value_parser = clap::value_parser!(u64).range(0..=4_096))]
    mem_list: Vec<u64>,
    /// Measured iterations per point.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    iters: u64,
    /// Iterations run first and not measured.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    warmup: u64,
    /// Where to run it.
    #[arg(long, value_enum, default_value_t = TargetArg::Both)]
    target: TargetArg,
    /// Write `target,metric,mem_mib,min_ns,median_ns,p90_ns,max_ns` rows to FILE.
    #[arg(long, value_name = "FILE")]
    csv: Option<PathBuf>,
    /// Write an SVG plot of the medians to FILE.
    #[arg(long, value_name = "FILE")]
    svg: Option<PathBuf>,
}

#[derive(clap::Args)]
struct ProbeArgsCli {
    /// Clone flags in hex (`0x800` or `800`), without the exit signal.
    #[arg(long, value_parser = parse_hex)]
    flags: u64,
    /// The child's exit signal (17 is SIGCHLD).
    #[arg(long, default_value_t = 17, value_parser = clap::value_parser!(u32).range(0..=64))]
    exit_signal: u32,
    /// Use clone3 instead of clone.
    #[arg(long)]
    clone3: bool,
    /// Make the call as this uid (0 stays root).
    #[arg(long, default_value_t = 0)]
    uid: u32,
    /// RLIMIT_NPROC for the call (default: unchanged).
    #[arg(long)]
    nproc: Option<u64>,
    /// Guest kernel.threads-max for the call (default: unchanged; N/A on the host).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    threads_max: Option<u64>,
    /// Where to make the call.
    #[arg(long, value_enum, default_value_t = TargetArg::Both)]
    target: TargetArg,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ProbeFormat::Text)]
    format: ProbeFormat,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ProbeFormat {
    Text,
    Json,
}

fn parse_hex(s: &str) -> Result<u64, String> {
    let digits = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    u64::from_str_radix(digits, 16).map_err(|e| format!("{s:?} is not hex: {e}"))
}

#[derive(clap::Args)]
struct SizeArgs {
    /// Measured iterations.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    iters: u64,
    /// Iterations run first and not measured.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    warmup: u64,
    /// MiB the parent touches before `fork_mem`.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(0..=4_096))]
    mem: u64,
    /// Guest RAM in MiB.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(64..=16_384))]
    guest_memory: u64,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum TargetArg {
    Guest,
    Host,
    Both,
}

#[derive(clap::Args)]
struct OutputArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = FormatArg::Table)]
    format: FormatArg,
    /// Write the output to FILE instead of standard output.
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// A JSON report (`--format json`) to compare medians with.
    #[arg(long, value_name = "FILE")]
    baseline: Option<PathBuf>,
    /// Percent a median may grow over the baseline before it is a regression.
    #[arg(
        long,
        value_name = "PCT",
        default_value_t = 10.0,
        requires = "baseline"
    )]
    threshold: f64,
}

#[derive(Clone, Copy, ValueEnum)]
enum FormatArg {
    Table,
    Json,
    Bmf,
    Github,
}

impl From<FormatArg> for Format {
    fn from(f: FormatArg) -> Format {
        match f {
            FormatArg::Table => Format::Table,
            FormatArg::Json => Format::Json,
            FormatArg::Bmf => Format::Bmf,
            FormatArg::Github => Format::Github,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run {
            op,
            target,
            sizes,
            output,
        } => run(&op, target, &sizes, &output),
        Command::Compare { sizes, output } => run("all", TargetArg::Both, &sizes, &output),
        Command::Sweep(args) => sweep(&args),
        Command::Probe(args) => probe(&args),
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("forkbench: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Every operation's name, and `all`.
fn op_names() -> Vec<&'static str> {
    let mut names: Vec<_> = BenchOp::ALL.iter().map(|&op| op_name(op)).collect();
    names.push("all");
    names
}

/// The operations `name` selects.
fn select(name: &str) -> Result<Vec<BenchOp>, String> {
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

fn run(
    name: &str,
    target: TargetArg,
    sizes: &SizeArgs,
    output: &OutputArgs,
) -> Result<ExitCode, String> {
    let SizeArgs {
        iters,
        warmup,
        mem,
        guest_memory,
    } = *sizes;
    let ops = select(name)?;
    // Read the baseline first: a bad file should not cost a whole run.
    let baseline = match &output.baseline {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("baseline {}: {e}", path.display()))?;
            Some(
                report::parse_report(&text)
                    .map_err(|e| format!("baseline {}: {e}", path.display()))?,
            )
        }
        None => None,
    };
    let params = Params {
        iters: iters as usize,
        warmup: warmup as usize,
        mem_mib: mem as usize,
    };
    let mut entries = Vec::new();
    let mut metadata = Metadata::collect(iters, warmup);
    let steps = ops.len() * (1 + usize::from(target == TargetArg::Both));
    let mut progress = Progress::new(steps);
    if target != TargetArg::Host {
        let mut harness = boot_guest(guest_memory)?;
        metadata.guest_memory_mib = Some(guest_memory);
        metadata.guest_tsc_khz = Some(harness.hello_info().tsc_khz);
        let hellos = measure_hellos(&mut harness)?;
        let mut totals = RunBenchTotals::default();
        for &op in &ops {
            progress.step(&format!("{} in the guest", op_name(op)));
            entries.extend(guest_entries(&mut harness, op, params, &mut totals));
        }
        metadata.harness = Some(overhead::harness_cost(&hellos, &totals));
        harness
            .shutdown()
            .map_err(|e| format!("guest shutdown: {e}"))?;
    }
    if target != TargetArg::Guest {
        for &op in &ops {
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
    let text = report::render(&report, output.format.into());
    match &output.output {
        Some(path) => {
            std::fs::write(path, &text).map_err(|e| format!("{}: {e}", path.display()))?
        }
        None => print!("{text}"),
    }
    let mut failed = report
        .entries
        .iter()
        .any(|e| matches!(e.outcome, Outcome::Error { .. }));
    if let Some(baseline) = baseline {
        let found = report::regressions(&baseline, &report, output.threshold);
        for regression in &found {
            eprintln!("forkbench: {regression} > {}%", output.threshold);
        }
        failed |= !found.is_empty();
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// `summary` (TSC cycles at `khz`) in nanoseconds.
fn stats_ns(summary: Summary, khz: u64) -> Stats {
    let ns = |cycles| host_linux::cycles_to_duration(cycles, khz).as_nanos() as u64;
    Stats {
        min: ns(summary.min),
        median: ns(summary.median),
        p90: ns(summary.p90),
        max: ns(summary.max),
    }
}

/// The harness's Hello cost, measured once per guest run (before the
/// operations, so a broken harness fails the run early).
fn measure_hellos(harness: &mut GuestHarness) -> Result<overhead::HelloCost, String> {
    overhead::measure_hellos(harness, overhead::HELLOS)
        .map_err(|e| format!("guest Hello round trips: {e}"))
}

/// The measured `RunBench` of `op` and the VM exits it caused.
fn measured_run(
    harness: &mut GuestHarness,
    op: BenchOp,
    params: Params,
) -> Result<(GuestRun, RequestExits), String> {
    let (result, exits) = overhead::exits_of(harness, |harness| {
        harness.run_bench(
            op,
            params.iters as u32,
            params.warmup as u32,
            params.mem_mib as u32,
        )
    });
    result.map(|run| (run, exits)).map_err(|e| e.to_string())
}

/// Runs `op` in the guest and summarises its samples (guest TSC cycles):
/// one entry per metric the guest reports for it (`create` and
/// `create_exit_reap` for the creating operations, `create`, the refused
/// call, for the failing ones), each with the request's VM exits, which
/// are also added to `totals`.
fn guest_entries(
    harness: &mut GuestHarness,
    op: BenchOp,
    params: Params,
    totals: &mut RunBenchTotals,
) -> Vec<Entry> {
    let khz = harness.hello_info().tsc_khz;
    let result = if op.must_fail() {
        run_leaving_no_trace(harness, op, params)
    } else {
        measured_run(harness, op, params)
    };
    let iters = params.iters as u64;
    let vm_exits = result.as_ref().ok().map(|(_, exits)| {
        totals.add(iters, exits);
        exits.per_iters(iters)
    });
    let result = result.map(|(run, _)| run);
    op.metrics()
        .iter()
        .map(|&metric| {
            let outcome = match &result {
                Ok(run) => match run.samples(metric).and_then(Summary::of) {
                    Some(s) if khz > 0 => Outcome::Ok {
                        ns: stats_ns(s, khz),
                    },
                    Some(_) => Outcome::Error {
                        error: "the guest reported no TSC rate".to_string(),
                    },
                    None => Outcome::Error {
                        error: "no samples".to_string(),
                    },
                },
                Err(error) => Outcome::Error {
                    error: error.clone(),
                },
            };
            Entry {
                op: op_name(op).to_string(),
                metric: metric.name().to_string(),
                target: Target::Guest,
                mem_mib: (op == BenchOp::ForkMem).then_some(params.mem_mib as u64),
                iters: params.iters as u64,
                outcome,
                note: None,
                vm_exits: vm_exits.clone(),
            }
        })
        .collect()
}

/// Runs a failure operation and checks it left nothing behind: the guest's
/// Stats (free frames, tasks, threads, per-user counts) must be the same
/// before and after. One untimed call first lets the kernel's caches (kernel
/// stacks, page-table pages) reach their working size, so a difference is a
/// leak, not a cache filling up. The exits are the measured request's only.
fn run_leaving_no_trace(
    harness: &mut GuestHarness,
    op: BenchOp,
    params: Params,
) -> Result<(GuestRun, RequestExits), String> {
    let err = |e: bench::guest_harness::HarnessError| e.to_string();
    harness.run_bench(op, 1, 0, 0).map_err(err)?;
    let before = harness.stats().map_err(err)?;
    let measured = measured_run(
        harness,
        op,
        Params {
            mem_mib: 0,
            ..params
        },
    )?;
    let after = harness.stats().map_err(err)?;
    if before != after {
        return Err(format!(
            "the guest's Stats changed across the refused calls: before {before:?}, after {after:?}"
        ));
    }
    Ok(measured)
}

/// Runs `op` on the host and turns the samples (or the reason there are
/// none) into report entries, one per metric.
fn host_entries(op: BenchOp, params: Params) -> Vec<Entry> {
    let mem_mib = (op == BenchOp::ForkMem).then_some(params.mem_mib as u64);
    let entry = |metric: &str, outcome: Outcome, note: Option<String>| Entry {
        op: op_name(op).to_string(),
        metric: metric.to_string(),
        target: Target::Host,
        mem_mib,
        iters: params.iters as u64,
        outcome,
        note,
        vm_exits: None,
    };
    let metrics = host_linux::metrics(op);
    match host_linux::run(op, params) {
        Ok(result) => metrics
            .iter()
            .map(|&metric| {
                let outcome = match result.samples(metric).and_then(Summary::of) {
                    Some(s) => Outcome::Ok {
                        ns: stats_ns(s, result.clock.khz()),
                    },
                    None => Outcome::Error {
                        error: "no samples".to_string(),
                    },
                };
                entry(metric.name(), outcome, result.note.clone())
            })
            .collect(),
        Err(HostError::NotApplicable { reason, .. }) => {
            vec![entry("", Outcome::NotApplicable { reason }, None)]
        }
        Err(error) => {
            let metrics: Vec<&str> = if metrics.is_empty() {
                vec![""]
            } else {
                metrics.iter().map(|m| m.name()).collect()
            };
            metrics
                .into_iter()
                .map(|m| {
                    entry(
                        m,
                        Outcome::Error {
                            error: error.to_string(),
                        },
                        None,
                    )
                })
                .collect()
        }
    }
}

/// Boots the guest with `memory_mib` MiB, or says why it cannot.
fn boot_guest(memory_mib: u64) -> Result<GuestHarness, String> {
    if !bench::boot::kvm_available() {
        return Err(format!(
            "no KVM device ({}): the guest cannot run here; use --target host",
            vmm::config::DEFAULT_KVM_DEVICE
        ));
    }
    eprintln!("forkbench: booting the guest ({memory_mib} MiB)");
    GuestHarness::start(HarnessOptions {
        memory: memory_mib << 20,
        ..HarnessOptions::default()
    })
    .map_err(|e| format!("guest: {e}"))
}

fn sweep(args: &SweepArgs) -> Result<ExitCode, String> {
    let mems = &args.mem_list;
    let params = |mem: u64| Params {
        iters: args.iters as usize,
        warmup: args.warmup as usize,
        mem_mib: mem as usize,
    };
    let mut metadata = Metadata::collect(args.iters, args.warmup);
    let mut entries = Vec::new();
    let steps = mems.len() * (1 + usize::from(args.target == TargetArg::Both));
    let mut progress = Progress::new(steps);
    if args.target != TargetArg::Host {
        // Room for the touched memory plus the kernel, harnessd and the child.
        let memory = mems.iter().max().copied().unwrap_or(0) + 256;
        let mut harness = boot_guest(memory)?;
        metadata.guest_memory_mib = Some(memory);
        metadata.guest_tsc_khz = Some(harness.hello_info().tsc_khz);
        let hellos = measure_hellos(&mut harness)?;
        let mut totals = RunBenchTotals::default();
        for &mem in mems {
            progress.step(&format!("fork_mem {mem} MiB in the guest"));
            entries.extend(guest_entries(
                &mut harness,
                BenchOp::ForkMem,
                params(mem),
                &mut totals,
            ));
        }
        metadata.harness = Some(overhead::harness_cost(&hellos, &totals));
        harness
            .shutdown()
            .map_err(|e| format!("guest shutdown: {e}"))?;
    }
    if args.target != TargetArg::Guest {
        for &mem in mems {
            progress.step(&format!("fork_mem {mem} MiB on the host"));
            entries.extend(host_entries(BenchOp::ForkMem, params(mem)));
        }
    }
    progress.finish();
    let report = Report {
        schema_version: report::SCHEMA_VERSION,
        metadata,
        entries,
    };
    print!("{}", report::render(&report, Format::Table));
    let write = |path: &PathBuf, text: String| {
        std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
    };
    if let Some(path) = &args.csv {
        write(path, bench::sweep::to_csv(&report.entries))?;
    }
    if let Some(path) = &args.svg {
        write(path, bench::sweep::to_svg(&report.entries)?)?;
    }
    let failed = report
        .entries
        .iter()
        .any(|e| matches!(e.outcome, Outcome::Error { .. }));
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn probe(args: &ProbeArgsCli) -> Result<ExitCode, String> {
    let probe_args = bench::guest_harness::ProbeArgs {
        flags: args.flags,
        exit_signal: args.exit_signal,
        use_clone3: args.clone3,
        uid: args.uid,
        nproc_limit: args.nproc.unwrap_or(u64::MAX),
        threads_max: args.threads_max.unwrap_or(0),
    };
    let mut results: Vec<(&str, ProbeOutcome)> = Vec::new();
    if args.target != TargetArg::Host {
        let mut harness = boot_guest(256)?;
        let result = harness
            .probe(probe_args)
            .map_err(|e| format!("guest probe: {e}"))?;
        harness
            .shutdown()
            .map_err(|e| format!("guest shutdown: {e}"))?;
        results.push(("guest", ProbeOutcome::from_result(result)));
    }
    if args.target != TargetArg::Guest {
        let outcome =
            bench::probe::host_probe(probe_args).map_err(|e| format!("host probe: {e}"))?;
        results.push(("host", outcome));
    }
    match args.format {
        ProbeFormat::Text => {
            for (target, outcome) in &results {
                println!("{target}: {outcome}");
            }
        }
        ProbeFormat::Json => {
            let map: serde_json::Map<String, serde_json::Value> = results
                .into_iter()
                .map(|(t, o)| (t.to_string(), serde_json::to_value(o).expect("json")))
                .collect();
            println!("{}", serde_json::to_string_pretty(&map).expect("json"));
        }
    }
    Ok(ExitCode::SUCCESS)
}
