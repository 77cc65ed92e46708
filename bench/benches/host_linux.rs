//! Host-Linux reference benchmarks: the guest's process-creation operations
//! run natively on this host, one group per operation, member `host` (the
//! guest side can join the same groups), parameter the metric.
//!
//! Timed in TSC cycles and converted at the host TSC frequency; operations
//! the host cannot run say N/A with the reason instead of a number.

use std::time::Duration;

use bench::host_linux::{self, BenchOp, HostError, Params};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

/// Memory the parent holds for `fork_mem`.
const FORK_MEM_MIB: usize = 16;

fn host_benches(c: &mut Criterion) {
    let Some(khz) = host_linux::tsc_khz() else {
        eprintln!("host_linux benchmarks skipped: no invariant TSC, cycles cannot be timed");
        return;
    };
    for op in BenchOp::ALL {
        let name = host_linux::op_name(op);
        // One iteration first, to report N/A (or fail) before criterion starts.
        match host_linux::run(op, params(op, 1)) {
            Ok(_) => {}
            Err(e @ HostError::NotApplicable { .. }) => {
                eprintln!("{e}");
                continue;
            }
            Err(e) => panic!("{e}"),
        }
        let mut group = c.benchmark_group(name);
        group
            .sample_size(10)
            .warm_up_time(Duration::from_millis(200))
            .measurement_time(Duration::from_secs(1));
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
        group.finish();
    }
}

fn params(op: BenchOp, iters: usize) -> Params {
    Params {
        iters,
        warmup: 0,
        mem_mib: if op == BenchOp::ForkMem {
            FORK_MEM_MIB
        } else {
            0
        },
    }
}

criterion_group!(benches, host_benches);
criterion_main!(benches);
