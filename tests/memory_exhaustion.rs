//! Memory exhaustion from user mode (issue 10, defects 3-5): the OOM
//! killer takes the biggest process (never init, always a whole thread
//! group) and says so; init alone out of memory panics as Linux does; a
//! failed mmap leaves nothing mapped; kernel-heap exhaustion fails the
//! system call instead of panicking. Every scenario ends with the memory
//! counters back at their baseline. The `memstress` program
//! (guest/user/src/bin/memstress.rs) does the exhausting.

mod common;

use std::process::{Command, Stdio};

use common::{code, field, stderr, stdout, FORKVM};

/// Runs a script that must power off with `expected` status, stopped
/// after 300 s (a hang guard: faulting in RAM's worth of pages takes ~10-40
/// s on a loaded PVM host); returns stdout.
fn run_expect(script: &str, expected: i32, extra: &[&str]) -> String {
    common::run_expect_within(script, expected, 300, extra)
}

/// `meminfo` -> (frames in use outside the kernel's caches, heap bytes in
/// use). The caches, named: freed kernel stacks (4 frames each) and
/// pooled page-table pages, kept for reuse.
fn usage(meminfo_line: &str) -> (u64, u64) {
    let cached = 4 * field(meminfo_line, "cached kernel stacks: ")
        + field(meminfo_line, "pooled page tables: ");
    (
        field(meminfo_line, "used=") - cached,
        field(meminfo_line, "heap: used="),
    )
}

fn meminfo_lines(text: &str) -> Vec<&str> {
    text.lines().filter(|l| l.starts_with("frames:")).collect()
}

/// Init and the shell are the only processes left.
fn assert_only_init_and_the_shell(text: &str) {
    let ps = text.split("  PID").last().expect("ps output");
    let tasks = ps
        .lines()
        .skip(1)
        .take_while(|l| l.trim_start().starts_with(|c: char| c.is_ascii_digit()));
    assert_eq!(
        tasks.count(),
        2,
        "only init and the shell are left: {ps}\n{text}"
    );
}

/// The pids `memstress` processes of `text` were OOM-killed as.
fn oom_killed_pids(text: &str) -> Vec<u64> {
    text.lines()
        .filter(|l| l.starts_with("Out of memory: Killed process "))
        .map(|l| field(l, "Killed process "))
        .collect()
}

#[test]
fn oom_killer_takes_the_biggest_process_and_its_threads_never_init() {
    require_kvm!();
    // 1: one process touches more than RAM (in mappings RAM-sized or less:
    //    the overcommit heuristic allows each): it is the victim.
    // 2: a second thread runs out of memory while the process's first
    //    thread sleeps: the whole process dies (a thread dying alone
    //    leaves the first asleep, and the script hangs).
    // 3: an orphaned holder keeps 150 MiB, then the shell faults in
    //    150 MiB: the holder dies, not the shell.
    // Twice: the second round must end where the first did.
    let round = "run memstress touch 300; run memstress thread 250; \
                 run memstress hold 150; bench fork --iters 1 --mem 150; echo alive; meminfo; ";
    let text = run_expect(&format!("{round}{round}ps; stat"), 0, &[]);
    // Init is pid 1 and the shell pid 2. Round 1: touch is pid 3, thread
    // pid 4 (its second thread tid 5), hold pid 6 and its holder pid 7,
    // bench's children 8 and 9; round 2 from 10.
    assert_eq!(oom_killed_pids(&text), [3, 4, 7, 10, 11, 14], "{text}");
    for pid in [3, 4, 10, 11] {
        assert!(
            text.contains(&format!("\n[{pid}] killed by signal 9\n")),
            "{text}"
        );
    }
    assert!(
        text.contains("Out of memory: Killed process 3 (memstress) total-vm:"),
        "{text}"
    );
    assert_eq!(text.matches("holding 150 MiB").count(), 2, "{text}");
    assert_eq!(text.matches("bench fork iters=1").count(), 2, "{text}");
    assert_eq!(text.matches("alive").count(), 2, "{text}");
    let line = text.lines().find(|l| l.contains("anon-rss:")).unwrap();
    assert!(field(line, "anon-rss:") > 200 * 1024, "{line}");
    let stat = text.lines().find(|l| l.starts_with("syscalls=")).unwrap();
    assert_eq!(field(stat, "oom_kill="), 6, "{stat}");
    let meminfo = meminfo_lines(&text);
    assert_eq!(usage(meminfo[0]), usage(meminfo[1]), "{text}");
    assert_only_init_and_the_shell(&text);
}

#[test]
fn init_alone_out_of_memory_panics_as_linux_does() {
    require_kvm!();
    // Pid 1 itself (`--init`) touches more than RAM, in mappings the
    // overcommit heuristic allows one by one, and nothing else can be
    // killed.
    let out = Command::new(FORKVM)
        .args(["--timeout", "300", "--init", "/sbin/forkvm/memstress", "--"])
        .args(["touch", "300"])
        .stdin(Stdio::null())
        .output()
        .expect("forkvm runs");
    assert_eq!(code(&out), 101, "{}\n{}", stdout(&out), stderr(&out));
    assert!(
        stderr(&out).contains("Out of memory and no killable processes"),
        "{}",
        stderr(&out)
    );
    // A shell that does the same is killable: init lives on and reports
    // its death.
    let text = run_expect(
        "sysctl vm.overcommit_memory=1; bench fork --iters 3 --mem 300; echo alive",
        128 + 9,
        &[],
    );
    assert!(
        text.contains("Out of memory: Killed process 2 (sh)"),
        "{text}"
    );
    // In the heuristic mode (the default) the same mapping is refused.
    let text = run_expect("bench fork --iters 3 --mem 300; echo alive", 0, &[]);
    assert!(text.contains("bench: mmap(--mem): ENOMEM"), "{text}");
    assert!(text.contains("alive"), "{text}");
}

#[test]
fn failed_mmap_leaves_nothing_mapped() {
    require_kvm!();
    // 100 GiB populated or shared is more than RAM: ENOMEM with nothing
    // left behind. With overcommit allowed, filling them runs out of
    // frames: the OOM killer takes the mapper itself, and the half-filled
    // area goes with it.
    // Twice: the second round must end where the first did.
    let round = "run memstress populate 102400; run memstress shared 102400; \
                 run memstress shared 300; sysctl vm.overcommit_memory=1; \
                 run memstress populate 102400; run memstress shared 102400; \
                 run memstress hold 150; run memstress populate 150; \
                 sysctl vm.overcommit_memory=0; meminfo; ";
    let text = run_expect(&format!("{round}{round}ps"), 0, &[]);
    assert!(!text.contains("LEAKED"), "{text}");
    for what in ["102400 MiB", "300 MiB"] {
        assert!(
            text.contains(&format!("mmap {what}: ENOMEM 12, vsz unchanged")),
            "{what}\n{text}"
        );
    }
    // Init is pid 1 and the shell pid 2. Round 1: the mappers are pids
    // 3-7, hold is 8 and its holder 9, the last populate 10; round 2 from
    // 11.
    assert_eq!(oom_killed_pids(&text), [6, 7, 9, 14, 15, 17], "{text}");
    for pid in [6, 7, 14, 15] {
        assert!(
            text.contains(&format!("\n[{pid}] killed by signal 9\n")),
            "{text}"
        );
    }
    // A populate that needs the holder's memory gets it.
    assert_eq!(text.matches("mmap 150 MiB: ok").count(), 2, "{text}");
    let meminfo = meminfo_lines(&text);
    assert_eq!(usage(meminfo[0]), usage(meminfo[1]), "{text}");
    assert_only_init_and_the_shell(&text);
}

#[test]
fn kernel_heap_exhaustion_fails_the_call() {
    require_kvm!();
    // A 64 MiB guest has a 4 MiB kernel heap: an unprivileged user's
    // semaphore sets fill it, big ones or many small ones (ENOMEM, as
    // Linux's failed `newary`), before SEMMNS/SEMMNI; areas stop at
    // `vm.max_map_count` (ENOMEM).
    let text = run_expect(
        "su 1000 run memstress semsets 32000; meminfo; \
         su 1000 run memstress semsets 32000; su 1000 run memstress semsets 1; \
         sysctl vm.max_map_count; sysctl vm.max_map_count=1000; run memstress areas; \
         meminfo; ps",
        0,
        &["--mem", "64M"],
    );
    let sets: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("semsets: ") && l.contains("of 32000"))
        .collect();
    assert_eq!(sets.len(), 2, "{text}");
    for line in &sets {
        assert!(line.ends_with("then ENOMEM 12"), "{text}");
        assert!(field(line, "semsets: ") >= 2, "{text}");
    }
    // Both runs got as far: the first gave everything back.
    assert_eq!(sets[0], sets[1], "{text}");
    let small = text
        .lines()
        .find(|l| l.starts_with("semsets: ") && l.contains("of 1,"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(small.ends_with("then ENOMEM 12"), "{small}");
    assert!(field(small, "semsets: ") > 1000, "{small}");
    assert!(text.contains("vm.max_map_count = 65530"), "{text}");
    let areas = text.lines().find(|l| l.starts_with("areas: ")).unwrap();
    assert!(areas.ends_with("then ENOMEM 12"), "{areas}");
    // The program's own areas count too; Linux checks `map_count >
    // max_map_count` before adding one.
    let mapped = field(areas, "areas: ");
    assert!((990..=1000).contains(&mapped), "{areas}");
    let meminfo = meminfo_lines(&text);
    assert_eq!(usage(meminfo[0]), usage(meminfo[1]), "{text}");
    assert_only_init_and_the_shell(&text);
}
