//! Measuring one operation on one target into report [`Entry`]s, one per
//! metric: in the guest over the harness protocol (with the VM exits of
//! the request) and on the host's Linux. What `forkbench` and its
//! subcommands assemble into a [`crate::report::Report`].

use crate::guest_harness::{GuestHarness, GuestRun};
use crate::host_linux::{self, op_name, BenchOp, HostError, Params};
use crate::overhead::{self, RequestExits, RunBenchTotals};
use crate::report::{Entry, Outcome, Target};

/// `samples` (TSC cycles at `khz`) in nanoseconds.
fn samples_ns(samples: &[u64], khz: u64) -> Vec<u64> {
    samples
        .iter()
        .map(|&cycles| host_linux::cycles_to_duration(cycles, khz).as_nanos() as u64)
        .collect()
}

/// The outcome and samples (ns) of one metric's `samples` (cycles at
/// `khz`), if there are any.
fn measured(samples: Option<&[u64]>, khz: u64) -> (Outcome, Vec<u64>) {
    let ns = samples_ns(samples.unwrap_or_default(), khz);
    match crate::stats::summarize(&ns) {
        Some(stats) => (Outcome::Ok { ns: stats }, ns),
        None => (
            Outcome::Error {
                error: "no samples".to_string(),
            },
            Vec::new(),
        ),
    }
}

/// Guest memory a `RunBench` of `params` needs besides the kernel's own
/// (MiB): the touched memory with its page tables (the parent's and the
/// child's copy, 1/256 of it, rounded up generously to 1/64), the sample
/// buffers (16 bytes per iteration, twice over while they are streamed)
/// and room for `harnessd` and the child.
pub fn guest_need_mib(params: Params) -> u64 {
    let mem = params.mem_mib as u64;
    let samples = (params.iters as u64 * 32).div_ceil(1 << 20);
    mem + mem.div_ceil(64) + samples + 32
}

/// The error a `RunBench` of `params` gets instead of running when the
/// guest's free memory (its Stats) cannot hold it; `None` when it fits or
/// the guest cannot tell.
fn does_not_fit(harness: &mut GuestHarness, params: Params) -> Option<String> {
    let need = guest_need_mib(params);
    let stats = harness.stats().ok()?;
    let free = (stats.free_frames * 4096) >> 20;
    (need > free).then(|| {
        format!(
            "needs about {need} MiB of guest memory ({} MiB touched), the guest has {free} MiB              free of {} MiB: not run (raise --guest-memory)",
            params.mem_mib,
            (stats.total_frames * 4096) >> 20
        )
    })
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
    vm_entries(harness, Target::Guest, op, params, totals)
}

/// [`guest_entries`] for the Linux reference guest: the same requests,
/// without forkvm's Stats (Linux's `harnessd` has none, so no leak check
/// and no memory check), and `max_threads_eagain`, which needs forkvm's
/// sysctl, not applicable.
pub fn linux_guest_entries(
    harness: &mut GuestHarness,
    op: BenchOp,
    params: Params,
    totals: &mut RunBenchTotals,
) -> Vec<Entry> {
    if op == BenchOp::MaxThreadsEagain {
        return vec![Entry {
            op: op_name(op).to_string(),
            metric: String::new(),
            target: Target::LinuxGuest,
            mem_mib: None,
            iters: params.iters as u64,
            outcome: Outcome::NotApplicable {
                reason: "harnessd lowers kernel.threads-max through forkvm's sysctl only"
                    .to_string(),
            },
            note: None,
            vm_exits: None,
            samples: Vec::new(),
        }];
    }
    vm_entries(harness, Target::LinuxGuest, op, params, totals)
}

fn vm_entries(
    harness: &mut GuestHarness,
    target: Target,
    op: BenchOp,
    params: Params,
    totals: &mut RunBenchTotals,
) -> Vec<Entry> {
    let forkvm = target == Target::Guest;
    let khz = harness.hello_info().tsc_khz;
    let fits = if forkvm {
        does_not_fit(harness, params)
    } else {
        None
    };
    let result = if let Some(error) = fits {
        Err(error)
    } else if op.must_fail() && forkvm {
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
        eprintln!(
            "forkbench: {} in the {}: {error}",
            op_name(op),
            target.name()
        );
    }
    op.metrics()
        .iter()
        .map(|&metric| {
            let (outcome, samples) = match &result {
                Ok(_) if khz == 0 => (
                    Outcome::Error {
                        error: "the guest reported no TSC rate".to_string(),
                    },
                    Vec::new(),
                ),
                Ok(run) => measured(run.samples(metric), khz),
                Err(error) => (
                    Outcome::Error {
                        error: error.clone(),
                    },
                    Vec::new(),
                ),
            };
            Entry {
                op: op_name(op).to_string(),
                metric: metric.name().to_string(),
                target,
                mem_mib: (op == BenchOp::ForkMem).then_some(params.mem_mib as u64),
                iters: params.iters as u64,
                outcome,
                note: None,
                vm_exits: vm_exits.clone(),
                samples,
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
    let entry =
        |metric: &str, (outcome, samples): (Outcome, Vec<u64>), note: Option<String>| Entry {
            op: op_name(op).to_string(),
            metric: metric.to_string(),
            target: Target::Host,
            mem_mib,
            iters: params.iters as u64,
            outcome,
            note,
            vm_exits: None,
            samples,
        };
    let metrics = host_linux::metrics(op);
    match host_linux::run(op, params) {
        Ok(result) => metrics
            .iter()
            .map(|&metric| {
                let outcome = measured(result.samples(metric), result.clock.khz());
                entry(metric.name(), outcome, result.note.clone())
            })
            .collect(),
        Err(HostError::NotApplicable { reason, .. }) => {
            vec![entry(
                "",
                (Outcome::NotApplicable { reason }, Vec::new()),
                None,
            )]
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
                        (
                            Outcome::Error {
                                error: error.to_string(),
                            },
                            Vec::new(),
                        ),
                        None,
                    )
                })
                .collect()
        }
    }
}
