//! `forkbench`: process-creation benchmarks for regression dashboards.
//!
//! `forkbench run OP|all` measures in forkvm's guest and on the host's own
//! Linux and prints a table with guest/host ratios, the JSON report, Bencher
//! Metric Format, github-action-benchmark JSON or a Markdown summary;
//! `compare` is `run all` on both. `--baseline FILE` (an earlier JSON report
//! from the same kind of machine) and `--history DIR` (the last runs) exit 1
//! naming every regression beyond `--threshold` percent that noise does not
//! explain (see `bench::gate`).
//!
//! This file is the command line only; what the commands do is
//! `bench::forkbench`. Exit status: 0 passed, 1 a failure or regression, 2 a
//! usage or setup error (found before anything is measured).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use bench::forkbench::{
    self, BootOptions, OutputOptions, ProbeOptions, RunOptions, ScaleOptions, Sizes, SweepOptions,
    Targets, Verdict,
};
use bench::report::Format;
use clap::{Parser, Subcommand, ValueEnum};
use forkvm_protocol::ScaleMode;

#[derive(Parser)]
#[command(
    name = "forkbench",
    version,
    about = "Process-creation benchmarks (fork, vfork, clone) with dashboard output",
    after_help = "Example: forkbench compare --iters 200   (every operation in the guest and on \
                  the host, with ratios). Guide: docs/BENCHMARKING.md"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Measure one operation, or `all`, in the guest and/or on the host.
    #[command(after_help = "Example: forkbench run fork --target guest --iters 500")]
    Run {
        /// The operation, or `all`.
        #[arg(value_parser = clap::builder::PossibleValuesParser::new(forkbench::op_names()))]
        op: String,
        /// Where to run it.
        #[arg(long, value_enum, default_value_t = TargetArg::Both)]
        target: TargetArg,
        #[command(flatten)]
        initrd: InitrdArg,
        #[command(flatten)]
        sizes: SizeArgs,
        #[command(flatten)]
        timeout: TimeoutArg,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Every operation in the guest and on the host, with ratios.
    #[command(
        after_help = "Example: forkbench compare --iters 200 --format json --output base.json"
    )]
    Compare {
        /// Also measure in a reference kernel booted by the same VMM with the
        /// same memory and vCPUs (ratios then against it): `linux-vm`.
        #[arg(long, value_enum)]
        reference: Option<ReferenceArg>,
        /// The reference's Linux bzImage (default: the Debian kernel that
        /// tests/hvm_nested/provision.sh caches in the target directory).
        #[arg(long, value_name = "PATH", requires = "reference")]
        linux_kernel: Option<PathBuf>,
        /// More of the reference Linux's command line (e.g. loglevel=7: its
        /// log then ends error messages).
        #[arg(long, value_name = "CMDLINE", requires = "reference")]
        linux_append: Option<String>,
        #[command(flatten)]
        initrd: InitrdArg,
        #[command(flatten)]
        sizes: SizeArgs,
        #[command(flatten)]
        timeout: TimeoutArg,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// `fork_mem` latency against the MiB the parent touched.
    #[command(
        after_help = "Example: forkbench sweep --mem-list 0,16,64 --iters 100 --csv sweep.csv --svg sweep.svg"
    )]
    Sweep(SweepArgs),
    /// Throughput with K concurrent workers (will-it-scale style), K = 1..=N,
    /// with scaling efficiency, in the guest and on the host.
    #[command(
        after_help = "Example: forkbench scale --op fork --workers-max 2 --duration-ms 200   \
                      (fork+exit+wait by 1 and 2 processes and threads, guest and host)\n\n\
                      A guest with fewer vCPUs than K runs its K \
                      workers in turn: its curve then shows what concurrency costs the kernel, \
                      not parallel speed-up. More: docs/BENCHMARKING.md"
    )]
    Scale(ScaleArgs),
    /// Boot latency: whole boots of the guest to its poweroff, with statistics.
    #[command(after_help = "Example: forkbench boot --iters 20 --format bmf --output boot.json")]
    Boot(BootArgs),
    /// One clone/clone3 call: its pid or errno in the guest and on the host.
    #[command(
        after_help = "Example: forkbench probe --flags 0x800   (CLONE_SIGHAND without CLONE_VM: EINVAL)"
    )]
    Probe(ProbeArgsCli),
}

/// `--initrd FILE`.
#[derive(clap::Args)]
struct InitrdArg {
    /// Boot the guest with this initramfs (newc cpio, maybe gzip), and run
    /// `exec_static` (its /bin/true) and `shell` (its /bin/sh -c exit),
    /// which need it, in the guest and, the same files, on the host. With
    /// `all` (and `compare`) it adds those two operations.
    #[arg(long, value_name = "FILE")]
    initrd: Option<PathBuf>,
}

/// `compare --reference`: the kernel to compare with.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum ReferenceArg {
    /// Linux (a bzImage) booted by forkvm's VMM.
    LinuxVm,
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
    /// Write one CSV row per series and size (statistics, KVM exits) to FILE.
    #[arg(long, value_name = "FILE")]
    csv: Option<PathBuf>,
    /// Write an SVG plot of the medians to FILE.
    #[arg(long, value_name = "FILE")]
    svg: Option<PathBuf>,
    /// Guest RAM in MiB. Default: 256, or what the largest point needs.
    #[arg(long, value_parser = clap::value_parser!(u64).range(64..=16_384))]
    guest_memory: Option<u64>,
    /// Output format of the report.
    #[arg(long, value_enum, default_value_t = FormatArg::Table)]
    format: FormatArg,
    /// Write the report to FILE instead of standard output.
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Write every sample as CSV (name,op,metric,target,mem_mib,iteration,ns) to FILE.
    #[arg(long, value_name = "FILE")]
    samples: Option<PathBuf>,
    #[command(flatten)]
    timeout: TimeoutArg,
}

#[derive(clap::Args)]
struct BootArgs {
    /// Measured boots.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    iters: u64,
    /// Boots run first and not measured (the first reads the kernel from disk).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(0..=100_000))]
    warmup: u64,
    /// Guest RAM in MiB.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(64..=16_384))]
    mem: u64,
    /// Output format of the report.
    #[arg(long, value_enum, default_value_t = FormatArg::Table)]
    format: FormatArg,
    /// Write the report to FILE instead of standard output.
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Write every sample as CSV (name,op,metric,target,mem_mib,iteration,ns) to FILE.
    #[arg(long, value_name = "FILE")]
    samples: Option<PathBuf>,
    /// Write one CSV row of statistics per metric to FILE.
    #[arg(long, value_name = "FILE")]
    csv: Option<PathBuf>,
}

#[derive(clap::Args)]
struct ScaleArgs {
    /// Operations, comma-separated: fork, vfork, clone_thread, clone_vm,
    /// fork_mem, or all.
    #[arg(long, value_delimiter = ',', default_value = "fork")]
    op: Vec<String>,
    /// Workers as processes, as threads of one process, or both.
    #[arg(long, value_enum, default_value_t = ModeArg::Both)]
    mode: ModeArg,
    /// The largest K (1..=256). Default: the guest's --cpus in the guest,
    /// the host's CPU count on the host.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=256))]
    workers_max: Option<u64>,
    /// How long each point's workers run, in milliseconds.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    duration_ms: u64,
    /// The guest's vCPUs.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    cpus: u32,
    /// MiB touched before `fork_mem`'s workers start.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(0..=4_096))]
    mem: u64,
    /// Where to run it.
    #[arg(long, value_enum, default_value_t = TargetArg::Both)]
    target: TargetArg,
    /// Guest RAM in MiB. Default: 256, or what fork_mem needs.
    #[arg(long, value_parser = clap::value_parser!(u64).range(64..=16_384))]
    guest_memory: Option<u64>,
    /// Output format of the report.
    #[arg(long, value_enum, default_value_t = FormatArg::Table)]
    format: FormatArg,
    /// Write the report to FILE instead of standard output.
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Write one CSV row per point to FILE.
    #[arg(long, value_name = "FILE")]
    csv: Option<PathBuf>,
    /// Write an SVG plot of ops/s against K to FILE.
    #[arg(long, value_name = "FILE")]
    svg: Option<PathBuf>,
    #[command(flatten)]
    timeout: TimeoutArg,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ModeArg {
    Processes,
    Threads,
    Both,
}

impl ScaleArgs {
    fn options(self) -> Result<ScaleOptions, forkbench::Error> {
        let ops = forkbench::select_scale_ops(&self.op)?;
        let modes = match self.mode {
            ModeArg::Processes => vec![ScaleMode::Processes],
            ModeArg::Threads => vec![ScaleMode::Threads],
            ModeArg::Both => ScaleMode::ALL.to_vec(),
        };
        Ok(ScaleOptions {
            ops,
            modes,
            targets: self.target.into(),
            workers_max: self.workers_max,
            duration_ms: self.duration_ms,
            cpus: self.cpus,
            mem_mib: self.mem,
            guest_memory_mib: self.guest_memory,
            timeout: self.timeout.timeout,
            csv: self.csv,
            svg: self.svg,
            output: OutputOptions {
                output: self.output,
                ..OutputOptions::stdout(self.format.into())
            },
        })
    }
}

#[derive(clap::Args)]
struct TimeoutArg {
    /// Seconds to wait for each guest request. Default: 30 s, plus for a
    /// measurement what its iterations and touched MiB may take.
    #[arg(long, value_name = "SECS", value_parser = parse_seconds)]
    timeout: Option<Duration>,
}

fn parse_seconds(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|e| format!("{s:?} is not seconds: {e}"))?;
    if !(secs > 0.0 && secs <= 86_400.0) {
        return Err(format!("{s}: not between 0 and 86400 seconds"));
    }
    Ok(Duration::from_secs_f64(secs))
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
    /// Guest RAM in MiB. Default: 256, or what the largest point needs.
    #[arg(long, value_parser = clap::value_parser!(u64).range(64..=16_384))]
    guest_memory: Option<u64>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum TargetArg {
    Guest,
    Host,
    Both,
}

impl From<TargetArg> for Targets {
    fn from(t: TargetArg) -> Targets {
        match t {
            TargetArg::Guest => Targets::Guest,
            TargetArg::Host => Targets::Host,
            TargetArg::Both => Targets::Both,
        }
    }
}

#[derive(clap::Args)]
#[group(id = "gate_args")]
#[command(group(clap::ArgGroup::new("gate").args(["baseline", "history"]).multiple(true)))]
struct OutputArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = FormatArg::Table)]
    format: FormatArg,
    /// Write the output to FILE instead of standard output.
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// A JSON report (`--format json`) to compare medians with: a regression
    /// needs growth beyond --threshold and separate confidence intervals.
    #[arg(long, value_name = "FILE")]
    baseline: Option<PathBuf>,
    /// Percent a median may grow over the baseline (or the history's mean)
    /// before it is a regression.
    #[arg(long, value_name = "PCT", default_value_t = 10.0, requires = "gate")]
    threshold: f64,
    /// Compare with a baseline or history from another machine (CPU model,
    /// host kernel, platform, guest vCPUs or memory) instead of refusing.
    #[arg(long, requires = "gate")]
    allow_foreign_baseline: bool,
    /// A directory of earlier JSON reports: test this run against the spread
    /// of their medians (z-score), then record it there.
    #[arg(long, value_name = "DIR")]
    history: Option<PathBuf>,
    /// Runs --history keeps (the oldest are deleted).
    #[arg(long, value_name = "N", default_value_t = bench::gate::DEFAULT_HISTORY_KEEP,
          requires = "history",
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=10_000))]
    history_keep: usize,
    /// Write every sample as CSV (name,op,metric,target,mem_mib,iteration,ns) to FILE.
    #[arg(long, value_name = "FILE")]
    samples: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum FormatArg {
    Table,
    Json,
    Bmf,
    Github,
    Markdown,
}

impl From<FormatArg> for Format {
    fn from(f: FormatArg) -> Format {
        match f {
            FormatArg::Table => Format::Table,
            FormatArg::Json => Format::Json,
            FormatArg::Bmf => Format::Bmf,
            FormatArg::Github => Format::Github,
            FormatArg::Markdown => Format::Markdown,
        }
    }
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Run {
            op,
            target,
            initrd,
            sizes,
            timeout,
            output,
        } => forkbench::select_with_archive(&op, initrd.initrd.is_some())
            .map_err(|message| forkbench::Error {
                message,
                exit_status: 2,
            })
            .and_then(|ops| {
                forkbench::run(&RunOptions {
                    initrd: initrd.initrd,
                    ..run_options(ops, target, &sizes, &timeout, &output)
                })
            }),
        Command::Compare {
            reference,
            linux_kernel,
            linux_append,
            initrd,
            sizes,
            timeout,
            output,
        } => forkbench::run(
            &RunOptions {
                reference: reference.map(|ReferenceArg::LinuxVm| forkbench::Reference {
                    kernel: linux_kernel,
                    append: linux_append,
                }),
                ..run_options(
                    forkbench::select_with_archive("all", initrd.initrd.is_some())
                        .expect("all is an operation set"),
                    TargetArg::Both,
                    &sizes,
                    &timeout,
                    &output,
                )
            }
            .with_initrd(initrd.initrd),
        ),
        Command::Sweep(args) => forkbench::sweep(&SweepOptions {
            mem_list: args.mem_list,
            iters: args.iters,
            warmup: args.warmup,
            targets: args.target.into(),
            timeout: args.timeout.timeout,
            csv: args.csv,
            svg: args.svg,
            guest_memory_mib: args.guest_memory,
            output: OutputOptions {
                output: args.output,
                samples: args.samples,
                ..OutputOptions::stdout(args.format.into())
            },
        }),
        Command::Boot(args) => forkbench::boot(&BootOptions {
            iters: args.iters,
            warmup: args.warmup,
            memory_mib: args.mem,
            csv: args.csv,
            output: OutputOptions {
                output: args.output,
                samples: args.samples,
                ..OutputOptions::stdout(args.format.into())
            },
        }),
        Command::Scale(args) => args.options().and_then(|opts| forkbench::scale(&opts)),
        Command::Probe(args) => forkbench::probe(&ProbeOptions {
            args: bench::guest_harness::ProbeArgs {
                flags: args.flags,
                exit_signal: args.exit_signal,
                use_clone3: args.clone3,
                uid: args.uid,
                nproc_limit: args.nproc.unwrap_or(u64::MAX),
                threads_max: args.threads_max.unwrap_or(0),
            },
            targets: args.target.into(),
            json: args.format == ProbeFormat::Json,
        }),
    };
    match result {
        Ok(Verdict::Passed) => ExitCode::SUCCESS,
        Ok(Verdict::Failed) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("forkbench: {error}");
            ExitCode::from(error.exit_status)
        }
    }
}

fn run_options(
    ops: Vec<bench::host_linux::BenchOp>,
    target: TargetArg,
    sizes: &SizeArgs,
    timeout: &TimeoutArg,
    output: &OutputArgs,
) -> RunOptions {
    RunOptions {
        ops,
        targets: target.into(),
        sizes: Sizes {
            iters: sizes.iters,
            warmup: sizes.warmup,
            mem_mib: sizes.mem,
            guest_memory_mib: sizes.guest_memory,
        },
        timeout: timeout.timeout,
        output: OutputOptions {
            format: output.format.into(),
            output: output.output.clone(),
            baseline: output.baseline.clone(),
            threshold: output.threshold,
            allow_foreign_baseline: output.allow_foreign_baseline,
            history: output.history.clone(),
            history_keep: output.history_keep,
            samples: output.samples.clone(),
        },
        reference: None,
        initrd: None,
    }
}
