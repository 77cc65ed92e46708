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

/// What the fuzzer's workers must not be able to do as an unprivileged
/// user: power off (reboot needs CAP_SYS_BOOT), stop the kernel or take
/// the CPU (`forkvm_diag` panic, fault and ticks need CAP_SYS_ADMIN) or
/// change machine-wide settings (sysctl writes are root's; a user
/// namespace's own `user.*` limits are its root's).
#[test]
fn an_unprivileged_user_cannot_power_off_or_stop_the_kernel() {
    require_kvm!();
    let out = run_script_with_timeout(
        "su 1000 poweroff 3; su 1000 panic boom; su 1000 fault; su 1000 ticks 5; \
         su 1000 sysctl kernel.threads-max=5; sysctl kernel.threads-max=77; \
         su 1000 unshare 0x10000000 sysctl user.max_user_namespaces=5; echo alive",
        60,
    );
    let text = stdout(&out);
    assert_eq!(code(&out), 0, "{text}\n{}", stderr(&out));
    for line in [
        "poweroff: reboot: EPERM",
        "panic: forkvm_diag: EPERM",
        "fault: forkvm_diag: EPERM",
        "ticks: forkvm_diag: EPERM",
        "sysctl: forkvm_sysctl: EACCES",
        "kernel.threads-max = 77",
        "user.max_user_namespaces = 5",
        "alive",
    ] {
        assert!(
            text.contains(&format!("{line}\n")),
            "no {line:?} in\n{text}"
        );
    }
}
