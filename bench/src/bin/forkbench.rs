//! `forkbench`: process-creation benchmarks for regression dashboards.
//!
//! `forkbench run OP|all` measures on the host's Linux (the reference
//! side; the guest side arrives with the virtio-console harness) and prints
//! a table, the JSON report, Bencher Metric Format or github-action-benchmark
//! JSON; `--baseline FILE` compares medians with an earlier JSON report and
//! exits 1 naming every regression beyond `--threshold` percent.

use std::path::PathBuf;
use std::process::ExitCode;

use bench::host_linux::{self, op_name, BenchOp, HostError, Params, Summary};
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
    /// Measure one operation, or `all`, on the host's Linux.
    Run {
        /// The operation, or `all`.
        #[arg(value_parser = clap::builder::PossibleValuesParser::new(op_names()))]
        op: String,
        /// Measured iterations.
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
        iters: u64,
        /// Iterations run first and not measured.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
        warmup: u64,
        /// MiB the parent touches before `fork_mem`.
        #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(0..=65_536))]
        mem: u64,
        #[command(flatten)]
        output: OutputArgs,
    },
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
    match cli.command {
        Command::Run {
            op,
            iters,
            warmup,
            mem,
            output,
        } => match run(&op, iters, warmup, mem, &output) {
            Ok(code) => code,
            Err(message) => {
                eprintln!("forkbench: {message}");
                ExitCode::FAILURE
            }
        },
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
    iters: u64,
    warmup: u64,
    mem: u64,
    output: &OutputArgs,
) -> Result<ExitCode, String> {
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
    let tsc_khz = host_linux::tsc_khz();
    let mut entries = Vec::new();
    for (i, &op) in ops.iter().enumerate() {
        eprintln!(
            "forkbench: [{}/{}] {} on the host",
            i + 1,
            ops.len(),
            op_name(op)
        );
        entries.extend(host_entries(op, params, tsc_khz));
    }
    let report = Report {
        schema_version: report::SCHEMA_VERSION,
        metadata: Metadata::collect(iters, warmup, tsc_khz),
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

/// Runs `op` on the host and turns the samples (or the reason there are
/// none) into report entries, one per metric.
fn host_entries(op: BenchOp, params: Params, tsc_khz: Option<u64>) -> Vec<Entry> {
    let mem_mib = (op == BenchOp::ForkMem).then_some(params.mem_mib as u64);
    let entry = |metric: &str, outcome: Outcome, note: Option<String>| Entry {
        op: op_name(op).to_string(),
        metric: metric.to_string(),
        target: Target::Host,
        mem_mib,
        iters: params.iters as u64,
        outcome,
        note,
    };
    let metrics = host_linux::metrics(op);
    match host_linux::run(op, params) {
        Ok(result) => metrics
            .iter()
            .map(|&metric| {
                let outcome = match (result.samples(metric).and_then(Summary::of), tsc_khz) {
                    (Some(s), Some(khz)) => {
                        let ns = |c| host_linux::cycles_to_duration(c, khz).as_nanos() as u64;
                        Outcome::Ok {
                            ns: Stats {
                                min: ns(s.min),
                                median: ns(s.median),
                                p90: ns(s.p90),
                                max: ns(s.max),
                            },
                        }
                    }
                    (None, _) => Outcome::Error {
                        error: "no samples".to_string(),
                    },
                    (_, None) => Outcome::NotApplicable {
                        reason: "the host TSC is not invariant or its rate is unknown".to_string(),
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
