//! Process-creation benchmarks: one criterion group per operation (`fork`,
//! `vfork`, `clone_thread`, ...) with a `guest` member (forkvm's kernel,
//! booted once and driven over the virtio-console protocol) and a `host`
//! member (this machine's Linux, same operation, same process), parameter
//! the metric, so criterion's report puts them side by side.
//!
//! Both sides are timed in TSC cycles (the guest's in its user mode, the
//! host's here) and converted at the rate each side reports; each batch
//! starts with a few untimed iterations. Creating
//! operations have two metrics on each side: `create` (until the call
//! returns in the parent) and `create_exit_reap` (the whole cycle); failing
//! ones have `create`, the refused call. Operations a side cannot run say why
//! instead of producing a number; without /dev/kvm the guest members are
//! skipped with a loud note.
//!
//! `FORKVM_BENCH_CPUS=N` (N > 1) runs `fork_threaded`'s guest member on a
//! second guest booted with N vCPUs (member `guest_Ncpus`), where the
//! parent's busy threads run on other CPUs while it forks; every other
//! member stays on the one-vCPU guest.

use std::time::Duration;

use bench::guest_harness::{GuestHarness, HarnessOptions};
use bench::host_linux::{self, BenchOp, HostError, Params};
use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, BenchmarkId, Criterion};

/// Memory the parent holds for `fork_mem`.
const FORK_MEM_MIB: usize = 16;
/// Environment variable: vCPUs of the guest `fork_threaded` runs on.
const CPUS_VAR: &str = "FORKVM_BENCH_CPUS";
/// Untimed iterations before each batch's timed ones, on both sides. Every
/// `iter_custom` call is a fresh request (for `fork_mem`, freshly touched
/// memory, whose first fork alone write-protects all of it), so without
/// them a batch's mean would depend on its size: the same warm-up
/// exclusion as forkbench's.
const WARMUP_PER_BATCH: usize = 5;

fn process_creation(c: &mut Criterion) {
    let host_clock = host_linux::host_clock();
    if host_clock == host_linux::HostClock::Monotonic {
        eprintln!("host members timed with CLOCK_MONOTONIC: this host has no invariant TSC");
    }
    let mut guest = if bench::boot::kvm_available() {
        Some(
            GuestHarness::start(HarnessOptions::default()).unwrap_or_else(|e| panic!("guest: {e}")),
        )
    } else {
        eprintln!("guest members SKIPPED: no /dev/kvm on this machine");
        None
    };
    let smp_cpus = smp_cpus();
    // Booted only for `fork_threaded`, and only if KVM is there.
    let mut smp_guest = match (guest.is_some(), smp_cpus) {
        (true, Some(cpus)) => Some(
            GuestHarness::start(HarnessOptions {
                cpus,
                ..HarnessOptions::default()
            })
            .unwrap_or_else(|e| panic!("guest with {cpus} vCPUs: {e}")),
        ),
        _ => None,
    };
    // `exec_static` and `shell` need an initramfs: `forkbench run --initrd`.
    for op in BenchOp::ALL.into_iter().filter(|op| !op.needs_archive()) {
        let mut group = c.benchmark_group(host_linux::op_name(op));
        group
            .sample_size(10)
            .warm_up_time(Duration::from_millis(200))
            .measurement_time(Duration::from_secs(1));
        match (op, smp_guest.as_mut(), smp_cpus) {
            (BenchOp::ForkThreaded, Some(harness), Some(cpus)) => {
                guest_members(&mut group, harness, op, &format!("guest_{cpus}cpus"));
            }
            _ => {
                if let Some(harness) = guest.as_mut() {
                    guest_members(&mut group, harness, op, "guest");
                }
            }
        }
        host_members(&mut group, op, host_clock.khz());
        group.finish();
    }
    for harness in [guest, smp_guest].into_iter().flatten() {
        harness
            .shutdown()
            .unwrap_or_else(|e| panic!("guest shutdown: {e}"));
    }
}

/// The vCPU count [`CPUS_VAR`] asks for, if more than one (it must be a
/// count the VMM accepts).
fn smp_cpus() -> Option<u32> {
    let value = std::env::var(CPUS_VAR).ok()?;
    let cpus: u32 = value
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{CPUS_VAR}={value:?}: not a number"));
    vmm::config::check_cpus(cpus).unwrap_or_else(|e| panic!("{CPUS_VAR}={value:?}: {e}"));
    (cpus > 1).then_some(cpus)
}

/// The guest's members of `op`'s group (named `member`), one per metric:
/// `iters` cycles in one RunBench each.
fn guest_members(
    group: &mut BenchmarkGroup<'_, WallTime>,
    harness: &mut GuestHarness,
    op: BenchOp,
    member: &str,
) {
    let khz = harness.hello_info().tsc_khz;
    let mem = params(op, 0).mem_mib as u32;
    for &metric in op.metrics() {
        group.bench_function(BenchmarkId::new(member, metric.name()), |b| {
            b.iter_custom(|iters| {
                let iters = u32::try_from(iters).unwrap_or(u32::MAX);
                let run = harness
                    .run_bench(op, iters, WARMUP_PER_BATCH as u32, mem)
                    .unwrap_or_else(|e| panic!("guest {}: {e}", host_linux::op_name(op)));
                let cycles = run.samples(metric).map_or(0, |s| s.iter().sum());
                host_linux::cycles_to_duration(cycles, khz)
            })
        });
    }
}

/// The host's members of `op`'s group, one per metric.
fn host_members(group: &mut BenchmarkGroup<'_, WallTime>, op: BenchOp, khz: u64) {
    // One iteration first, to report N/A (or fail) before criterion starts.
    match host_linux::run(op, params(op, 1)) {
        Ok(_) => {}
        Err(e @ HostError::NotApplicable { .. }) => {
            eprintln!("{e}");
            return;
        }
        Err(e) => panic!("{e}"),
    }
    for &metric in host_linux::metrics(op) {
        group.bench_function(BenchmarkId::new("host", metric.name()), |b| {
            b.iter_custom(|iters| {
                let iters = usize::try_from(iters).unwrap_or(usize::MAX);
                let result =
                    host_linux::run(op, params(op, iters)).unwrap_or_else(|e| panic!("{e}"));
                let cycles = result.samples(metric).map_or(0, |s| s.iter().sum());
                host_linux::cycles_to_duration(cycles, khz)
            })
        });
    }
}

fn params(op: BenchOp, iters: usize) -> Params {
    Params {
        iters,
        warmup: WARMUP_PER_BATCH,
        mem_mib: if op == BenchOp::ForkMem {
            FORK_MEM_MIB
        } else {
            0
        },
    }
}

criterion_group!(benches, process_creation);
criterion_main!(benches);
