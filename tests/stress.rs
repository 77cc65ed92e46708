//! Stress programs (`stress`, guest/user/src/bin/stress.rs) a hostile or
//! buggy user can run: orphans (with and without strange exit signals),
//! signal and futex storms between threads and processes, and fork/thread
//! creation against RLIMIT_NPROC and `kernel.threads-max`. The kernel must
//! live (the guest powers off with status 0, the programs report success)
//! and its counters must come back to their baseline (see `counters`).

mod common;
mod counters;

use common::{code, run_script_with_timeout, stderr, stdout};

/// Runs `script` after a warm-up and between two counter readings;
/// asserts it powers off with 0 and the counters are back; returns stdout.
fn run_and_check(warm_up: &str, script: &str) -> String {
    let full = format!(
        "{}; {warm_up}; stat; meminfo; {script}; stat; meminfo; ps",
        counters::WARM_UP
    );
    let out = run_script_with_timeout(&full, 120);
    let text = stdout(&out);
    assert_eq!(
        code(&out),
        0,
        "script {full:?}\nstdout:\n{text}\nstderr:\n{}",
        stderr(&out)
    );
    let counters = counters::all(&text);
    assert_eq!(counters.len(), 2, "{text}");
    counters::assert_back(&counters[0], &counters[1], &text);
    let ps = text.rsplit("  PID").next().expect("ps output");
    assert_eq!(ps.lines().count(), 3, "init and the shell only: {ps}");
    text
}

/// Defect 6: pid 1 reaps orphans while a long command still runs (it used
/// to be the shell, which reaped only between commands).
#[test]
fn init_reaps_orphans_while_a_command_runs() {
    require_kvm!();
    let text = run_and_check("run stress orphans 5", "run stress orphans 200");
    assert!(
        text.contains("stress orphans: 200 orphans, 0 zombies left\n"),
        "{text}"
    );
}

/// Orphans whose exit signal is not SIGCHLD neither kill nor escape init,
/// in the initial pid namespace and in a new one.
#[test]
fn orphans_with_any_exit_signal_are_reaped() {
    require_kvm!();
    let text = run_and_check(
        "run stress orphans 5",
        "run stress exit-signals 60; run stress exit-signals 60 --ns",
    );
    assert!(
        text.contains("stress exit-signals: 60 orphans, 0 zombies left\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "stress exit-signals: 60 orphans in a pid namespace, its init reaped them all\n"
        ),
        "{text}"
    );
}

#[test]
fn signal_and_futex_storms_end_cleanly() {
    require_kvm!();
    let text = run_and_check(
        "run stress storm 100 2 2",
        "run stress storm 3000; run stress storm 2000 15 8",
    );
    assert_eq!(text.matches(" 0 failed\n").count(), 3, "{text}");
}

#[test]
fn creation_stops_at_the_limits_and_everything_is_released() {
    require_kvm!();
    // As a user at RLIMIT_NPROC 40, then as root at threads-max 150 (set
    // and restored by the program; the counters compare the restored value).
    let text = run_and_check(
        "run stress nproc 1000 10 1",
        "run stress nproc 1000 40 3; run stress nproc 0 150 3",
    );
    let rounds: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("stress nproc: round"))
        .collect();
    assert_eq!(rounds.len(), 8, "warm-ups 1 + 1, then 3 + 3: {text}");
    assert!(text.contains("[") && !text.contains("stress: "), "{text}");
}
