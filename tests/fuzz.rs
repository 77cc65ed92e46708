//! The system-call fuzzer's smoke run (`fuzz`, guest/user/src/bin/fuzz.rs):
//! two seeds of 20,000 random calls each by unprivileged workers in pid
//! namespaces. The kernel must neither panic nor crash nor hang (the guest
//! has a time limit), every call must be made, and the kernel's counters
//! must be back at their baseline afterwards (see `counters`).
//!
//! A longer run, by hand: `forkvm --timeout 3600 -c 'stat; meminfo; run fuzz
//! --seed N --calls 1000000 --workers 4; stat; meminfo'` (docs/TESTING.md, "Fuzzing the system calls").

mod common;
mod counters;

use common::{code, run_script_with_timeout, stderr, stdout};

/// Seeds and calls per seed of the smoke run (~7 s per seed on the PVM CI
/// machine, a few on HVM).
const SEEDS: [u64; 2] = [1, 2];
const CALLS: u64 = 20_000;

/// Runs `warm_up_run` (whose growth of the kernel's caches and tables is
/// not counted), takes the baseline, then `runs`; asserts that the kernel
/// lived (status 0 within `timeout_secs`), that its counters are back at
/// the baseline and that only init and the shell are left. Returns the
/// output.
fn run_fuzz_and_check(warm_up_run: &str, runs: &[String], timeout_secs: u32) -> String {
    let mut script = format!("{}; {warm_up_run}; stat; meminfo", counters::WARM_UP);
    for run in runs {
        script.push_str("; ");
        script.push_str(run);
    }
    script.push_str("; stat; meminfo; ps");
    let out = run_script_with_timeout(&script, timeout_secs);
    let text = stdout(&out);
    assert_eq!(
        code(&out),
        0,
        "the kernel died or hung\nstdout:\n{text}\nstderr:\n{}",
        stderr(&out)
    );
    let counters = counters::all(&text);
    assert_eq!(counters.len(), 2, "{text}");
    counters::assert_back(&counters[0], &counters[1], &text);
    let ps = text.split("  PID").nth(1).expect("ps output");
    assert_eq!(ps.lines().count(), 3, "init and the shell only: {ps}");
    text
}

#[test]
fn fuzz_smoke_leaves_the_kernel_as_it_found_it() {
    require_kvm!();
    let runs: Vec<String> = SEEDS
        .iter()
        .map(|seed| format!("run fuzz --seed {seed} --calls {CALLS} --workers 2"))
        .collect();
    let text = run_fuzz_and_check("run fuzz --seed 1000 --calls 3000", &runs, 240);
    for seed in SEEDS {
        let summary = format!("fuzz: seed={seed} calls={CALLS} workers=2 ");
        assert!(
            text.contains(&summary),
            "no full run of seed {seed}:\n{text}"
        );
    }
    assert_eq!(text.matches("fuzz: done\n").count(), 3, "{text}");
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

/// Seeds of the longer check, each run as uid 1000 and as root.
const MORE_SEEDS: [u64; 3] = [11, 12, 13];
/// What root's workers may not call: `reboot` (CAP_SYS_BOOT powers the
/// machine off), `forkvm_diag` (its panic and fault stop the kernel on
/// purpose) and `forkvm_sysctl` (machine-wide settings, which the counters
/// compare). Everything else they may, in their own namespaces.
const ROOT_EXCLUDES: &str = "--exclude 169 --exclude 1025 --exclude 1026";

/// Three seeds of 20,000 calls as uid 1000 and as root: the kernel never
/// panics, crashes or hangs, every run completes, and the counters come
/// back. Root's workers used to kill the shell and the manager (`kill(0)`
/// reaches the whole process group across pid namespaces, and the runs
/// shared the shell's: forkvm ended with 134, SIGABRT, in seed 11's run);
/// each namespace init now makes its own session.
#[test]
fn fuzz_three_seeds_as_user_and_as_root() {
    require_kvm!();
    let runs: Vec<String> = MORE_SEEDS
        .iter()
        .flat_map(|seed| {
            [
                format!("run fuzz --seed {seed} --calls {CALLS}"),
                format!("run fuzz --seed {seed} --calls {CALLS} --uid 0 {ROOT_EXCLUDES}"),
            ]
        })
        .collect();
    let warm_up = format!("run fuzz --seed 1000 --calls 3000 --uid 0 {ROOT_EXCLUDES}");
    let text = run_fuzz_and_check(&warm_up, &runs, 900);
    for seed in MORE_SEEDS {
        let summary = format!("fuzz: seed={seed} calls={CALLS} workers=2 ");
        assert_eq!(
            text.matches(&summary).count(),
            2,
            "no full run of seed {seed} as uid 1000 and as root:\n{text}"
        );
    }
    assert_eq!(text.matches("fuzz: done\n").count(), 7, "{text}");
}

/// A run names its seed before its first call (without `--seed` it comes
/// from the clock: two runs differ), and replaying a run of that seed
/// makes the same calls again.
#[test]
fn fuzz_prints_its_seed_first_and_a_replay_repeats_the_calls() {
    require_kvm!();
    let out = run_script_with_timeout("run fuzz --calls 200; run fuzz --calls 200", 120);
    let text = stdout(&out);
    assert_eq!(code(&out), 0, "{text}\n{}", stderr(&out));
    let seeds: Vec<u64> = text
        .lines()
        .filter(|l| l.starts_with("fuzz: start seed="))
        .map(|l| common::field(l, "seed="))
        .collect();
    assert_eq!(seeds.len(), 2, "{text}");
    assert_ne!(seeds[0], seeds[1], "clock seeds\n{text}");
    let first = text.find("fuzz: start seed=").unwrap();
    assert!(
        text[..first].lines().all(|l| !l.starts_with("fuzz:")),
        "the seed is the first thing printed\n{text}"
    );

    let seed = seeds[0];
    let replay = format!("run fuzz --seed {seed} --run 1 --run-calls 50 --log");
    let out = run_script_with_timeout(&format!("{replay}; {replay}"), 120);
    let text = stdout(&out);
    assert_eq!(code(&out), 0, "{text}\n{}", stderr(&out));
    let replays: Vec<Vec<&str>> = text
        .split("fuzz: start ")
        .skip(1)
        .map(|part| part.lines().filter(|l| l.starts_with("call 1.")).collect())
        .collect();
    assert_eq!(replays.len(), 2, "{text}");
    // A run may end early (a call can kill its own process); the calls
    // both replays made must be the same.
    let common = replays[0].len().min(replays[1].len());
    assert!(common >= 5, "too few calls replayed\n{text}");
    assert_eq!(replays[0][..common], replays[1][..common], "{text}");
}
