//! The harness client against the real guest (`harnessd` under KVM).
//! Runs whenever /dev/kvm exists; skips (with a note) only without it.

use std::time::{Duration, Instant};

use bench::boot::kvm_available;
use bench::guest_harness::{GuestHarness, HarnessOptions};
use forkvm_protocol::{BenchMetric, BenchOp};

fn median(samples: &[u64]) -> u64 {
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    sorted[sorted.len() / 2]
}

#[test]
fn hello_stats_bench_shutdown() {
    if !kvm_available() {
        bench::boot::announce_missing_kvm(module_path!());
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

/// The ping-pongs report `iters` round trips and nothing else: each a
/// positive number of TSC ticks.
#[test]
fn ping_pongs_report_round_trips() {
    if !kvm_available() {
        bench::boot::announce_missing_kvm(module_path!());
        return;
    }
    const ITERS: u32 = 50;
    let mut guest = GuestHarness::start(HarnessOptions::default()).unwrap();
    for op in [BenchOp::YieldPingPong, BenchOp::PipePingPong] {
        let run = guest.run_bench(op, ITERS, 2, 0).unwrap();
        let trips = run.samples(BenchMetric::RoundTrip).expect("round_trip");
        assert_eq!(trips.len(), ITERS as usize, "{op:?}");
        assert!(trips.iter().all(|&t| t > 0), "{op:?}: {trips:?}");
        assert_eq!(run.samples(BenchMetric::Create), None, "{op:?}");
        assert_eq!(run.create_exit_reap, None, "{op:?}");
    }
}

/// Every operation that creates a task reports `iters` samples of both
/// metrics, and creating is part of the whole cycle: on average `create`
/// stays below `create_exit_reap` (per iteration it always ends first; the
/// average also survives a timer tick landing in one of them).
#[test]
fn success_ops_report_create_and_create_exit_reap() {
    if !kvm_available() {
        bench::boot::announce_missing_kvm(module_path!());
        return;
    }
    const ITERS: u32 = 50;
    let mut guest = GuestHarness::start(HarnessOptions::default()).unwrap();
    let success = BenchOp::ALL
        .into_iter()
        .filter(|op| !op.must_fail() && !op.is_ping_pong() && !op.needs_archive());
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

/// What requests cost in vCPU exits to the VMM (`GuestHarness::vm_exits`).
///
/// The virtio console's `QueueNotify` is an ioeventfd that KVM handles in the
/// kernel, and the timer and `hlt` stay in the in-kernel irqchip, so the only
/// exits to the VMM a request could cause are the guest driver's register
/// accesses in its interrupt handler. The driver reads `InterruptStatus`
/// (and writes `InterruptACK`) only for an interrupt that brought no used
/// buffer, so a Hello round trip (the request arriving: one interrupt with
/// receive buffers; the reply's transmit buffer polled, not interrupted)
/// normally costs none: measured 0 in 50. The bound of one per 10 Hellos
/// leaves room for the odd interrupt whose buffers an earlier run took,
/// and fails at once if the handler touched the registers on every
/// interrupt again (2 per Hello before), if a frame cost an exit per byte
/// (the Hello request and its reply are 17 + 61 bytes) or touched the UART.
///
/// A `RunBench` reply goes out a page per transmit chain; a writer that
/// waits for the page takes a transmit interrupt, which brings the used
/// page: no register access either (measured 0 for 10 000 samples, 80 000
/// bytes in 11 frames; 60 before). The bound allows one exit per two
/// chains plus a fixed 4.
#[test]
fn vm_exits_per_request() {
    if !kvm_available() {
        bench::boot::announce_missing_kvm(module_path!());
        return;
    }
    let mut guest = GuestHarness::start(HarnessOptions::default()).unwrap();
    // Warm up: the first requests may fault pages in.
    guest.hello().unwrap();
    guest.stats().unwrap();

    const HELLOS: u64 = 50;
    let kvm_before = guest.kvm_vcpu_stats();
    let before = guest.vm_exits();
    for _ in 0..HELLOS {
        guest.hello().unwrap();
    }
    let hellos = guest.vm_exits() - before;
    eprintln!(
        "{HELLOS} Hello round trips: {hellos}; {:.2} per Hello",
        hellos.total() as f64 / HELLOS as f64
    );
    // KVM's own count includes the exits it handles in the kernel (notify
    // ioeventfds, timer, hlt, page faults): informative only, as it depends
    // on timing, but it can never be below the MMIO exits we served.
    if let (Some(kvm_before), Some(kvm_after)) = (kvm_before, guest.kvm_vcpu_stats()) {
        let kvm = |name: &str| kvm_after[name] - kvm_before[name];
        eprintln!(
            "KVM: {} exits in all, {:.1} per Hello (mmio {}, halt {}, irq {})",
            kvm("exits"),
            kvm("exits") as f64 / HELLOS as f64,
            kvm("mmio_exits"),
            kvm("halt_exits"),
            kvm("irq_exits")
        );
        assert!(kvm("exits") >= hellos.mmio_read + hellos.mmio_write);
    }
    // Normally none; an interrupt that finds its data already taken by the
    // idle loop's busy polling reads and acknowledges InterruptStatus (two
    // exits), which a loaded host makes more likely. The driver that read
    // it for every interrupt made 2 per Hello.
    assert!(hellos.total() <= HELLOS / 2, "{hellos}");
    assert_eq!(
        hellos.io_in + hellos.io_out,
        0,
        "the UART was used: {hellos}"
    );
    assert_eq!(hellos.other + hellos.shutdown + hellos.hlt, 0, "{hellos}");

    for iters in [10u32, 1000, 10_000] {
        let before = guest.vm_exits();
        let run = guest.run_bench(BenchOp::CloneEinval, iters, 0, 0).unwrap();
        let delta = guest.vm_exits() - before;
        assert_eq!(run.create.len(), iters as usize);
        let bytes = u64::from(iters) * 8;
        let frames = u64::from(iters).div_ceil(forkvm_protocol::MAX_SAMPLES_PER_FRAME as u64) + 1;
        // A frame spans at most (its bytes / 4 KiB) + 2 pages.
        let chains = bytes / 4096 + 2 * frames;
        eprintln!(
            "RunBench CloneEinval x{iters} ({bytes} sample bytes, {frames} frames): {delta}; \
             {:.5} exits per byte",
            delta.total() as f64 / bytes as f64
        );
        assert!(delta.total() <= 4 + chains / 2, "x{iters}: {delta}");
        assert_eq!(delta.io_in + delta.io_out, 0, "the UART was used: {delta}");
    }
    let total = guest.vm_exits();
    guest.shutdown().unwrap();
    eprintln!("whole run (boot included): {total}");
}

/// Busy polling (`dev.console.busy_poll_ns`): with a window far longer than
/// the host takes to send the next request, the idle vCPU waits for a
/// stream of Hellos by polling the receive ring instead of halting; with
/// polling off, it halts before many of them. Counts KVM's `halt_exits`
/// (a count, not a time: both settings run the same 50 Hellos).
#[test]
fn busy_polling_keeps_the_idle_vcpu_out_of_hlt() {
    if !kvm_available() {
        bench::boot::announce_missing_kvm(module_path!());
        return;
    }
    const HELLOS: u64 = 50;
    let mut harness = GuestHarness::start(HarnessOptions::default()).expect("guest boots");
    let halts = |harness: &mut GuestHarness| {
        harness
            .kvm_vcpu_stats()
            .and_then(|stats| stats.get("halt_exits").copied())
    };
    if halts(&mut harness).is_none() {
        eprintln!("this host's KVM has no binary statistics (halt_exits): polling not checked");
        harness.shutdown().unwrap();
        return;
    }
    let mut halts_during_hellos = |poll_ns: u64| {
        harness
            .sysctl("dev.console.busy_poll_ns", Some(poll_ns))
            .unwrap();
        let now = harness.sysctl("dev.console.busy_poll_ns", None).unwrap();
        assert_eq!(now, Some(poll_ns));
        // The first one may find the CPU halted (no recent input yet).
        harness.hello().unwrap();
        let before = halts(&mut harness).unwrap();
        for _ in 0..HELLOS {
            harness.hello().unwrap();
        }
        halts(&mut harness).unwrap() - before
    };
    let polled = halts_during_hellos(10_000_000);
    let halted = halts_during_hellos(0);
    // Without polling, how many Hellos find the vCPU halted depends on
    // whether the next one comes before the guest gets to `hlt` (~20-50
    // of 50 here); with it, nearly none.
    assert!(
        polled <= HELLOS / 5 && polled * 2 <= halted,
        "{polled} halts in {HELLOS} Hellos with busy polling, {halted} without"
    );
    harness.shutdown().unwrap();
}

/// Guest RAM is not inherited by a child the VMM's process forks (the
/// host-Linux reference forks from this very process): its mapping carries
/// MADV_DONTFORK (`dc`, "do not copy on fork", in /proc/self/smaps).
#[test]
fn guest_ram_is_not_inherited_by_fork() {
    if !kvm_available() {
        bench::boot::announce_missing_kvm(module_path!());
        return;
    }
    let options = HarnessOptions::default();
    let ram_kib = options.memory / 1024;
    let harness = GuestHarness::start(options).expect("guest boots");
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
    // Mappings as (size in KiB, VmFlags), in file order.
    let mut mappings: Vec<(u64, String)> = Vec::new();
    for line in smaps.lines() {
        if let Some(size) = line.strip_prefix("Size:") {
            let kib = size.trim().trim_end_matches("kB").trim().parse().unwrap();
            mappings.push((kib, String::new()));
        } else if let Some(flags) = line.strip_prefix("VmFlags:") {
            if let Some(last) = mappings.last_mut() {
                last.1 = flags.to_string();
            }
        }
    }
    // However the kernel split or merged it, all of guest RAM is marked.
    let do_not_copy_kib: u64 = mappings
        .iter()
        .filter(|(_, flags)| flags.split_whitespace().any(|f| f == "dc"))
        .map(|(kib, _)| kib)
        .sum();
    assert!(
        do_not_copy_kib >= ram_kib,
        "only {do_not_copy_kib} KiB are MADV_DONTFORK, guest RAM is {ram_kib} KiB: {mappings:?}"
    );
    harness.shutdown().unwrap();
}

/// `fork_threaded`'s busy threads are stopped and joined after the run:
/// the guest's task count is back where it was, and a second run works.
#[test]
fn fork_threaded_leaves_no_task_behind() {
    if !kvm_available() {
        bench::boot::announce_missing_kvm(module_path!());
        return;
    }
    let mut guest = GuestHarness::start(HarnessOptions::default()).unwrap();
    let before = guest.stats().unwrap().tasks;
    for _ in 0..2 {
        let run = guest.run_bench(BenchOp::ForkThreaded, 20, 2, 0).unwrap();
        assert_eq!(run.create.len(), 20);
        assert_eq!(run.create_exit_reap.as_ref().map(Vec::len), Some(20));
        assert_eq!(guest.stats().unwrap().tasks, before);
    }
    guest.shutdown().unwrap();
}
