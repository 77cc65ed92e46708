//! The system-call fuzzer's smoke run (`fuzz`, guest/user/src/bin/fuzz.rs):
//! two seeds of 20,000 random calls each by unprivileged workers in pid
//! namespaces. The kernel must neither panic nor crash nor hang (the guest
//! has a time limit), every call must be made, and the kernel's counters
//! must be back at their baseline afterwards (see `counters`).
//!
//! A longer run, by hand: `forkvm --timeout 3600 -c 'stat; meminfo; run fuzz
//! --seed N --calls 1000000 --workers 4; stat; meminfo'` (README, "Fuzzing").

mod common;
mod counters;

use common::{code, run_script_with_timeout, stderr, stdout};

/// Seeds and calls per seed of the smoke run (~7 s per seed on the PVM CI
/// machine, a few on HVM).
const SEEDS: [u64; 2] = [1, 2];
const CALLS: u64 = 20_000;

#[test]
fn fuzz_smoke_leaves_the_kernel_as_it_found_it() {
    require_kvm!();
    // A short warm-up run first grows the kernel's caches and tables to
    // their working size; the baseline follows it.
    let mut script = format!(
        "{}; run fuzz --seed 1000 --calls 3000; stat; meminfo",
        counters::WARM_UP
    );
    for seed in SEEDS {
        script.push_str(&format!(
            "; run fuzz --seed {seed} --calls {CALLS} --workers 2"
        ));
    }
    script.push_str("; stat; meminfo; ps");
    let out = run_script_with_timeout(&script, 240);
    let text = stdout(&out);
    assert_eq!(
        code(&out),
        0,
        "the kernel died or hung\nstdout:\n{text}\nstderr:\n{}",
        stderr(&out)
    );
    for seed in SEEDS {
        let summary = format!("fuzz: seed={seed} calls={CALLS} workers=2 ");
        assert!(
            text.contains(&summary),
            "no full run of seed {seed}:\n{text}"
        );
    }
    assert_eq!(text.matches("fuzz: done\n").count(), 3, "{text}");
    let counters = counters::all(&text);
    assert_eq!(counters.len(), 2, "{text}");
    counters::assert_back(&counters[0], &counters[1], &text);
    let ps = text.split("  PID").nth(1).expect("ps output");
    assert_eq!(ps.lines().count(), 3, "init and the shell only: {ps}");
}
