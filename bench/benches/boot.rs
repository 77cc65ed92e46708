//! Boot latency benchmarks: VMM start -> guest kernel boot -> guest shell
//! ready -> `poweroff`, in this process and as a `forkvm` child process.
//!
//! Needs `/dev/kvm`. The process-level variant needs a built `forkvm`
//! binary (`cargo build --release`).

use std::time::Duration;

use bench::boot;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

/// (label, bytes) for the in-process variants.
const IN_PROCESS_MEMORY: [(&str, u64); 2] = [("256M", 256 << 20), ("64M", 64 << 20)];
/// Memory for the process-level variant, as given to `forkvm --mem`.
const PROCESS_MEMORY: &str = "256M";

fn boot_benches(c: &mut Criterion) {
    if !boot::kvm_available() {
        eprintln!(
            "\n\
             ************************************************************\n\
             *** KVM NOT AVAILABLE: boot benchmarks did not run       ***\n\
             *** /dev/kvm does not exist on this host; these numbers  ***\n\
             *** need a KVM host (or a VM with nested virtualisation) ***\n\
             ************************************************************\n"
        );
        return;
    }

    let mut group = c.benchmark_group("boot");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));

    let boot = |memory| boot::boot_to_poweroff(memory).unwrap_or_else(|e| panic!("{e}"));
    for (label, memory) in IN_PROCESS_MEMORY {
        // The headline: VMM start to the guest's poweroff from its shell.
        group.bench_function(BenchmarkId::new("to_poweroff", label), |b| {
            b.iter_custom(|iters| (0..iters).map(|_| boot(memory).to_poweroff).sum())
        });
        // The same runs with the host kernel's VM teardown included.
        group.bench_function(BenchmarkId::new("in_process_total", label), |b| {
            b.iter_custom(|iters| (0..iters).map(|_| boot(memory).total).sum())
        });
    }

    match boot::forkvm_binary() {
        Ok(binary) => {
            group.bench_function(BenchmarkId::new("process", PROCESS_MEMORY), |b| {
                b.iter_custom(|iters| {
                    (0..iters)
                        .map(|_| {
                            boot::spawn_to_poweroff(&binary, PROCESS_MEMORY)
                                .unwrap_or_else(|e| panic!("{e}"))
                        })
                        .sum()
                })
            });
        }
        Err(reason) => eprintln!("boot/process/{PROCESS_MEMORY} skipped: {reason}"),
    }

    group.finish();
}

criterion_group!(benches, boot_benches);
criterion_main!(benches);
