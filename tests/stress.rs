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

/// The tick probe (`ticks`: kernel code run at ring 3 inside
/// `forkvm_diag`) while another process, runnable all along, signals the
/// probing task: the probe was preempted and resumed in the task's own
/// address space with a signal frame on its stack (the child died of
/// SIGSEGV, or the kernel of a #GP); now neither happens before the call
/// returns, and the child handles the signals after it.
#[test]
fn tick_probe_is_neither_preempted_nor_signalled() {
    require_kvm!();
    let text = run_and_check("run stress tick-probe 1", "run stress tick-probe 10");
    assert!(text.contains("stress tick-probe: 10 probes, "), "{text}");
}

/// A root fork bomb (`forkbomb`: children blocked on a pipe) run twice in a
/// guest of `mem`, with `stat` + `meminfo` before, between and after: each
/// bomb must stop at `kernel.threads-max` (EAGAIN) or at ENOMEM, never
/// panic, and both must make as many tasks. Everything is released: the
/// state counters come back to the first reading, and the frames and heap
/// after the second bomb to where the first left them (it warmed up the
/// caches: kernel stacks, the stack region's page tables, table capacity).
fn fork_bomb_twice(mem: &str, timeout_secs: u32) -> String {
    let script = "stat; meminfo; forkbomb 1000000; stat; meminfo; \
                  forkbomb 1000000; stat; meminfo; echo alive";
    let text = common::run_expect_within(script, 0, timeout_secs, &["--mem", mem]);
    let bombs: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("forkbomb: "))
        .collect();
    assert_eq!(bombs.len(), 2, "{text}");
    assert!(
        bombs[0].ends_with(" forks, stopped by EAGAIN 11")
            || bombs[0].ends_with(" forks, stopped by ENOMEM 12"),
        "{text}"
    );
    assert_eq!(bombs[0], bombs[1], "both bombs make as many tasks\n{text}");
    let max_threads = common::field(&text, "max_threads=");
    let forks = common::field(bombs[0], "forkbomb: ");
    // init and the shell are the other tasks.
    assert!(
        forks + 2 >= max_threads * 9 / 10,
        "{forks} forks, threads-max {max_threads}\n{text}"
    );
    let counters = counters::all(&text);
    assert_eq!(counters.len(), 3, "{text}");
    assert_eq!(
        counters[0].stat, counters[2].stat,
        "stat counters differ\n{text}"
    );
    counters::assert_back(&counters[1], &counters[2], &text);
    assert!(text.ends_with("alive\n"), "{text}");
    text
}

/// A fork bomb in the default guest (256 MiB: threads-max ~1.9k).
#[test]
fn root_fork_bomb_stops_at_threads_max_and_everything_is_released() {
    require_kvm!();
    fork_bomb_twice("256M", 300);
}

/// The same in a 1 GiB guest (threads-max ~7.6k, from the heap sized by
/// RAM). Slow on the PVM host (minutes: KVM exits per task stay flat, but
/// the host's shadow-MMU time per exit grows with the number of live
/// address spaces sharing the bomb's pages), so the bound is generous.
#[test]
fn root_fork_bomb_in_a_big_guest_ends_cleanly_in_bounded_time() {
    require_kvm!();
    fork_bomb_twice("1G", 900);
}
