//! Measuring one operation on one target into report [`Entry`]s, one per
//! metric: in the guest over the harness protocol (with the VM exits of
//! the request) and on the host's Linux. What `forkbench` and its
//! subcommands assemble into a [`crate::report::Report`].

use crate::guest_harness::{GuestHarness, GuestRun};
use crate::host_linux::{self, op_name, BenchOp, HostError, Params, Summary};
use crate::overhead::{self, RequestExits, RunBenchTotals};
use crate::report::{Entry, Outcome, Stats, Target};

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
pub fn guest_entries(
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
    if let Err(error) = &result {
        eprintln!("forkbench: {} in the guest: {error}", op_name(op));
    }
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
    let err = |e: crate::guest_harness::HarnessError| e.to_string();
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
pub fn host_entries(op: BenchOp, params: Params) -> Vec<Entry> {
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
