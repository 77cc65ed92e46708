//! The harness client against the real guest (`harnessd` under KVM).
//! Runs whenever /dev/kvm exists; skips (with a note) only without it.

use std::time::{Duration, Instant};

use bench::boot::kvm_available;
use bench::guest_harness::{GuestHarness, HarnessOptions};
use forkvm_protocol::BenchOp;

fn median(samples: &[u64]) -> u64 {
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    sorted[sorted.len() / 2]
}

#[test]
fn hello_stats_bench_shutdown() {
    if !kvm_available() {
        eprintln!("skipped: /dev/kvm does not exist");
        return;
    }
    let boot_start = Instant::now();
    let mut guest = GuestHarness::start(HarnessOptions::default()).unwrap();
    let booted = boot_start.elapsed();
    let info = guest.hello_info().clone();
    assert_eq!(info.protocol_version, forkvm_protocol::PROTOCOL_VERSION);
    assert!(info.tsc_khz > 0, "{info:?}");
    // The memory the guest kernel manages: most of the VM's RAM.
    assert!(
        info.memory_bytes > vmm::config::DEFAULT_MEMORY / 2
            && info.memory_bytes <= vmm::config::DEFAULT_MEMORY,
        "{info:?}"
    );

    // Hello round trips.
    const ROUND_TRIPS: u32 = 50;
    let mut round_trips = Vec::new();
    for _ in 0..ROUND_TRIPS {
        let start = Instant::now();
        assert_eq!(guest.hello().unwrap(), info);
        round_trips.push(start.elapsed().as_nanos() as u64);
    }

    let stats = guest.stats().unwrap();
    assert!(stats.total_frames > 0, "{stats:?}");
    assert!(stats.free_frames <= stats.total_frames, "{stats:?}");
    assert!(stats.tasks >= 1, "{stats:?}");

    let ticks_per_us = info.tsc_khz as f64 / 1e3;
    for op in [BenchOp::CloneEinval, BenchOp::Fork] {
        let run = guest.run_bench(op, 20, 2, 0).unwrap();
        for &metric in op.metrics() {
            let samples = run.samples(metric).unwrap();
            assert_eq!(samples.len(), 20, "{op:?}");
            assert!(samples.iter().all(|&s| s > 0), "{op:?}: {samples:?}");
            eprintln!(
                "{op:?} {}: guest median {} TSC ticks = {:.2} us",
                metric.name(),
                median(samples),
                median(samples) as f64 / ticks_per_us
            );
        }
    }

    let timings = guest.shutdown().unwrap();
    eprintln!(
        "boot to Hello {:.1} ms; Hello round trip median {:.1} us (min {:.1} us); \
         kernel '{}', TSC {} kHz; VM setup {:?}, guest {:?}, teardown {:?}",
        booted.as_secs_f64() * 1e3,
        median(&round_trips) as f64 / 1e3,
        *round_trips.iter().min().unwrap() as f64 / 1e3,
        info.kernel_version,
        info.tsc_khz,
        timings.setup,
        timings.guest,
        timings.teardown
    );
    assert!(timings.guest < Duration::from_secs(60));
}

/// Every operation that creates a task reports `iters` samples of both
/// metrics, and creating is part of the whole cycle: on average `create`
/// stays below `create_exit_reap` (per iteration it always ends first; the
/// average also survives a timer tick landing in one of them).
#[test]
fn success_ops_report_create_and_create_exit_reap() {
    if !kvm_available() {
        eprintln!("skipped: /dev/kvm does not exist");
        return;
    }
    const ITERS: u32 = 50;
    let mut guest = GuestHarness::start(HarnessOptions::default()).unwrap();
    let success = BenchOp::ALL.into_iter().filter(|op| !op.must_fail());
    for op in success {
        let mem = if op == BenchOp::ForkMem { 4 } else { 0 };
        let run = guest.run_bench(op, ITERS, 2, mem).unwrap();
        assert_eq!(run.op, op);
        let create = &run.create;
        let whole = run.create_exit_reap.as_ref().expect("create_exit_reap");
        assert_eq!(create.len(), ITERS as usize, "{op:?}");
        assert_eq!(whole.len(), ITERS as usize, "{op:?}");
        assert!(create.iter().all(|&c| c > 0), "{op:?}: {create:?}");
        let mean = |s: &[u64]| s.iter().sum::<u64>() / s.len() as u64;
        assert!(
            mean(create) <= mean(whole),
            "{op:?}: create {} > create+exit+reap {}",
            mean(create),
            mean(whole)
        );
        eprintln!(
            "{op:?}: median create {} / create+exit+reap {} TSC ticks",
            median(create),
            median(whole)
        );
    }
    // A failing operation has the refused call only.
    let run = guest.run_bench(BenchOp::CloneEinval, ITERS, 2, 0).unwrap();
    assert_eq!(run.create.len(), ITERS as usize);
    assert_eq!(run.create_exit_reap, None);
    guest.shutdown().unwrap();
}

#[test]
fn vmm_failure_is_reported() {
    let opts = HarnessOptions {
        kernel: "/nonexistent/forkvm-kernel".into(),
        ..HarnessOptions::default()
    };
    match GuestHarness::start(opts) {
        Err(bench::guest_harness::HarnessError::Vmm(why)) => assert!(!why.is_empty()),
        Err(other) => panic!("expected a VMM error, got {other}"),
        Ok(_) => panic!("booted a kernel that does not exist"),
    }
}
