//! `stress TEST [ARGS]`: kernel stress tests a hostile or buggy program
//! could run; each prints one summary line and exits 0 if the kernel
//! behaved (1 if not, 2 on a usage error):
//!
//! - `stress orphans N`: N children each leave an orphan (a grandchild that
//!   exits 50 ms later), then, while this program still runs, waits until
//!   pid 1 has reaped them all: `stress orphans: N orphans, 0 zombies left`.
//!   (An init that reaps only between shell commands leaves N zombies.)
//! - `stress exit-signals N [--ns]`: the same with grandchildren whose exit
//!   signal is not SIGCHLD (SIGSEGV, SIGILL, SIGUSR1, SIGTERM, SIGKILL, none),
//!   orphaned to pid 1, or with `--ns` to the init of a new pid namespace
//!   (this program, which has no handlers): the init must survive and reap.
//! - `stress storm MS [THREADS PROCS]`: for MS milliseconds, THREADS threads
//!   (default 4) in each of PROCS processes (default 3) signal each other
//!   (tgkill within a process, kill between them; handlers without
//!   SA_RESTART) and wait and wake on futexes (private ones within a
//!   process, shared ones between them); then all stop and are joined.
//! - `stress nproc UID LIMIT ROUNDS`: as UID with RLIMIT_NPROC = LIMIT (UID
//!   0: as root, with `kernel.threads-max` = LIMIT, restored), ROUNDS times:
//!   fork and create threads in turn until both fail with EAGAIN, then let
//!   them all go and reap them; each round must reach the same counts.
//! - `stress tick-probe N` (root): N times, a child with a SIGUSR1 handler
//!   runs the kernel's tick probe (`forkvm_diag(DIAG_TICKS, 20)`, whose
//!   last part is kernel code at ring 3) while this process, runnable all
//!   along, sends it SIGUSR1 in a loop: the probe must be neither preempted
//!   nor given a signal frame (the kernel crashed with a #GP); the signals
//!   are handled once the call returns, and the child exits 0.
//! - `stress forks CYCLES THREADS`: two parent processes at once each make
//!   CYCLES/2 fork/exit/wait cycles while THREADS threads of their own
//!   write a 16-page private region in a loop, a page and a `sched_yield`
//!   at a time (each fork write-protects it, so they fault on it while
//!   their parent forks, on any CPU; with `vm.fork_copy_max_pages` 0 on
//!   PVM, which copies a small process's pages at fork otherwise); each
//!   child checks that it sees the word its parent wrote just before the
//!   fork, writes the region once and exits: `stress forks: CYCLES
//!   cycles by 2 parents with THREADS threads each, F failed`.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use forkvm_user::syscall::nr;

use forkvm_user::clone::{clone_raw, wait_tid_cleared, THREAD_FLAGS};
use forkvm_user::cred::{setgid, setrlimit, setuid, Rlimit, RLIMIT_NPROC};
use forkvm_user::forkvm::{self, TaskInfo};
use forkvm_user::shell_parse::parse_u64;
use forkvm_user::signal::{sigaction, tgkill, SigInfo};
use forkvm_user::syscall::{
    check, close, exit, exit_group, fork, futex, getpid, kill, mmap, mmap_anonymous, nanosleep,
    pipe2, read, syscall2, wait4, Pid, Timespec, FUTEX_PRIVATE_FLAG, FUTEX_WAIT, FUTEX_WAKE,
    MAP_ANONYMOUS, MAP_SHARED, PROT_READ, PROT_WRITE, WALL, WNOHANG,
};
use forkvm_user::time::monotonic_ns;
use forkvm_user::{entry, eprintln, println, Errno};

entry!(main);

const USAGE: &str = "usage: stress orphans N | exit-signals N [--ns] | storm MS [THREADS PROCS] \
                     | nproc UID LIMIT ROUNDS | tick-probe N | forks CYCLES THREADS";
const SIGUSR1: i32 = 10;
const SIGUSR2: i32 = 12;
const CLONE_NEWPID: usize = 0x2000_0000;
const SIGCHLD: usize = 17;
/// How long an orphan lives after its parent is gone.
const ORPHAN_LIFE_NS: u64 = 50_000_000;
/// How long pid 1 gets to reap the orphans once they have all ended.
const REAP_DEADLINE_NS: u64 = 3_000_000_000;
/// Thread stacks.
const STACK_SIZE: usize = 64 * 1024;

fn main(args: &[&[u8]], _env: &[&[u8]]) -> i32 {
    let numbers: Vec<Option<u64>> = args.iter().skip(2).map(|a| parse_u64(a)).collect();
    let result = match (args.get(1).copied(), numbers.as_slice()) {
        (Some(b"orphans"), [Some(n)]) => orphans(*n, &[SIGCHLD as u64]),
        (Some(b"exit-signals"), [Some(n)]) => orphans(*n, &EXIT_SIGNALS),
        (Some(b"exit-signals"), [Some(n), None]) if args[3] == b"--ns" => in_namespace(*n),
        (Some(b"storm"), [Some(ms)]) => storm(*ms, 4, 3),
        (Some(b"storm"), [Some(ms), Some(threads), Some(procs)]) => storm(*ms, *threads, *procs),
        (Some(b"nproc"), [Some(uid), Some(limit), Some(rounds)]) => nproc(*uid, *limit, *rounds),
        (Some(b"tick-probe"), [Some(rounds)]) => tick_probe(*rounds),
        (Some(b"forks"), [Some(cycles), Some(threads)]) => forks(*cycles, *threads),
        _ => {
            eprintln!("{USAGE}");
            return 2;
        }
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            println!("stress: {e}");
            1
        }
    }
}

/// Exit signals of the orphans of `exit-signals` (0: none).
const EXIT_SIGNALS: [u64; 6] = [11, 4, 10, 15, 9, 0];

fn sleep_ns(ns: u64) {
    let _ = nanosleep(Timespec::from_nanos(ns));
}

/// A fork whose child's exit signal is `signal` (clone without a stack).
fn fork_with_exit_signal(signal: u64) -> Result<Pid, Errno> {
    // SAFETY: no stack: the child runs on a copy of ours, as after fork.
    check(unsafe { syscall2(nr::CLONE, signal as usize, 0) }).map(|pid| pid as Pid)
}

/// Makes `n` orphans, cycling through `signals` for their exit signals:
/// each from a child that exits at once (reaped here). Returns when they
/// have all been created.
fn make_orphans(n: u64, signals: &[u64]) -> Result<(), &'static str> {
    for i in 0..n {
        let signal = signals[i as usize % signals.len()];
        match fork() {
            Ok(0) => {
                if fork_with_exit_signal(signal) == Ok(0) {
                    sleep_ns(ORPHAN_LIFE_NS);
                    exit_group(0)
                }
                exit_group(0)
            }
            Ok(child) => while let Err(Errno::EINTR) = wait4(child as i32, 0) {},
            Err(_) => return Err("fork failed"),
        }
    }
    Ok(())
}

/// Zombies whose parent is pid 1.
fn zombies_of_init() -> Result<usize, Errno> {
    let mut tasks = alloc::vec![TaskInfo::default(); 4096];
    let n = forkvm::tasks(&mut tasks)?;
    Ok(tasks[..n.min(tasks.len())]
        .iter()
        .filter(|t| t.ppid == 1 && t.state == b'Z')
        .count())
}

/// `orphans` and `exit-signals` (orphaned to pid 1).
fn orphans(n: u64, signals: &[u64]) -> Result<(), &'static str> {
    make_orphans(n, signals)?;
    sleep_ns(ORPHAN_LIFE_NS * 2);
    let deadline = monotonic_ns() + REAP_DEADLINE_NS;
    let left = loop {
        let left = zombies_of_init().map_err(|_| "forkvm_info failed")?;
        if left == 0 || monotonic_ns() > deadline {
            break left;
        }
        sleep_ns(10_000_000);
    };
    let name = if signals.len() > 1 {
        "exit-signals"
    } else {
        "orphans"
    };
    println!("stress {name}: {n} orphans, {left} zombies left");
    if left == 0 {
        Ok(())
    } else {
        Err("pid 1 did not reap its orphans")
    }
}

/// `exit-signals N --ns`: the orphans' reaper is the init of a new pid
/// namespace, a child of ours that makes them and then reaps everything.
fn in_namespace(n: u64) -> Result<(), &'static str> {
    // SAFETY: no stack: the child runs on a copy of ours, as after fork.
    let ret = unsafe { syscall2(nr::CLONE, CLONE_NEWPID | SIGCHLD, 0) };
    match check(ret) {
        Ok(0) => {
            // The namespace's init: every orphan comes back to it.
            if make_orphans(n, &EXIT_SIGNALS).is_err() {
                exit_group(3)
            }
            let mut reaped = 0;
            let deadline = monotonic_ns() + REAP_DEADLINE_NS;
            while reaped < n && monotonic_ns() < deadline {
                match wait4(-1, WALL | WNOHANG) {
                    Ok((0, _)) => sleep_ns(5_000_000),
                    Ok(_) => reaped += 1,
                    Err(Errno::EINTR) => {}
                    Err(_) => break,
                }
            }
            exit_group(if reaped == n { 0 } else { 4 })
        }
        Ok(init) => {
            let status = loop {
                match wait4(init as i32, 0) {
                    Err(Errno::EINTR) => {}
                    Ok((_, status)) => break status,
                    Err(_) => return Err("wait4 for the namespace init failed"),
                }
            };
            println!(
                "stress exit-signals: {n} orphans in a pid namespace, its init {}",
                if status.signaled() {
                    "was killed"
                } else if status.exit_status() == 0 {
                    "reaped them all"
                } else {
                    "did not reap them all"
                }
            );
            if status.exited() && status.exit_status() == 0 {
                Ok(())
            } else {
                Err("the namespace init did not survive and reap")
            }
        }
        Err(_) => Err("clone(CLONE_NEWPID) failed"),
    }
}

// ---------------------------------------------------------------------------
// Threads.

/// A thread running `body(arg)` on a fresh stack; joined with [`join`].
fn spawn(body: extern "C" fn(usize) -> !, arg: usize) -> Result<&'static AtomicU32, Errno> {
    let stack = mmap_anonymous(STACK_SIZE, PROT_READ | PROT_WRITE)?;
    // The tid word at the bottom of the stack (the thread uses the top).
    // SAFETY: the mapping is fresh, writable, never unmapped, and an
    // AtomicU32 is valid for any bits.
    let tid = unsafe { &*stack.cast::<AtomicU32>() };
    // SAFETY: the stack is ours alone; the tid words are live forever;
    // the thread shares our memory and touches only atomics.
    unsafe {
        clone_raw(
            THREAD_FLAGS & !forkvm_user::clone::CLONE_SETTLS,
            stack.add(STACK_SIZE),
            tid.as_ptr(),
            tid.as_ptr(),
            0,
            body,
            arg,
        )?;
    }
    Ok(tid)
}

fn join(tid: &AtomicU32) {
    wait_tid_cleared(tid);
}

// ---------------------------------------------------------------------------
// storm

/// State shared by every process of the storm (one MAP_SHARED page).
#[repr(C)]
struct Storm {
    stop: AtomicBool,
    /// Futex words shared between the processes.
    shared_words: [AtomicU32; 8],
    pids: [AtomicU32; 16],
    procs: AtomicU32,
    signals_sent: AtomicU64,
    wakes: AtomicU64,
    handled: AtomicU64,
}

/// This process's futex words (private futexes).
static PRIVATE_WORDS: [AtomicU32; 8] = [const { AtomicU32::new(0) }; 8];
/// This process's thread ids.
static TIDS: [AtomicU32; 16] = [const { AtomicU32::new(0) }; 16];
static THREADS: AtomicU32 = AtomicU32::new(0);
/// The storm page, set before any thread starts.
static STORM: AtomicU64 = AtomicU64::new(0);

fn storm_page() -> &'static Storm {
    // SAFETY: set to the live, never-unmapped shared page before use.
    unsafe { &*(STORM.load(Ordering::Acquire) as *const Storm) }
}

extern "C" fn on_signal(_signo: i32, _info: *mut SigInfo, _ucontext: *mut u8) {
    storm_page().handled.fetch_add(1, Ordering::Relaxed);
}

/// A small per-thread generator (xorshift).
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// One storm thread (or a process's main thread): signals, wakes and waits
/// until told to stop.
extern "C" fn storm_thread(seed: usize) -> ! {
    storm_loop(seed as u64);
    exit(0)
}

fn storm_loop(seed: u64) {
    let s = storm_page();
    let mut r = seed | 1;
    let tgid = getpid() as i32;
    let short = Timespec::from_nanos(1_000_000);
    while !s.stop.load(Ordering::Relaxed) {
        let x = next(&mut r);
        match x % 6 {
            0 => {
                let threads = THREADS.load(Ordering::Acquire).max(1);
                let tid = TIDS[(x >> 8) as usize % threads as usize].load(Ordering::Relaxed);
                if tid != 0 && tgkill(tgid, tid as i32, SIGUSR1).is_ok() {
                    s.signals_sent.fetch_add(1, Ordering::Relaxed);
                }
            }
            1 => {
                let procs = s.procs.load(Ordering::Acquire).max(1);
                let pid = s.pids[(x >> 8) as usize % procs as usize].load(Ordering::Relaxed);
                if pid != 0 && kill(pid as i32, SIGUSR2).is_ok() {
                    s.signals_sent.fetch_add(1, Ordering::Relaxed);
                }
            }
            2 | 3 => {
                let (word, op) = if (x >> 4) & 1 == 0 {
                    (&PRIVATE_WORDS[(x >> 8) as usize % 8], FUTEX_PRIVATE_FLAG)
                } else {
                    (&s.shared_words[(x >> 8) as usize % 8], 0)
                };
                let value = word.load(Ordering::Acquire);
                // EAGAIN (it changed), EINTR (a signal), ETIMEDOUT: all fine.
                let _ = futex(word, FUTEX_WAIT | op, value, Some(&short));
            }
            _ => {
                let (word, op) = if (x >> 4) & 1 == 0 {
                    (&PRIVATE_WORDS[(x >> 8) as usize % 8], FUTEX_PRIVATE_FLAG)
                } else {
                    (&s.shared_words[(x >> 8) as usize % 8], 0)
                };
                word.fetch_add(1, Ordering::Release);
                if let Ok(n) = futex(word, FUTEX_WAKE | op, u32::MAX >> 1, None) {
                    s.wakes.fetch_add(n as u64, Ordering::Relaxed);
                }
            }
        }
    }
}

/// Runs the storm in this process: `threads` more threads, then the loop.
fn storm_process(threads: u64, seed: u64) -> Result<(), Errno> {
    let mut joined = Vec::new();
    TIDS[0].store(forkvm_user::syscall::gettid(), Ordering::Relaxed);
    THREADS.store(1, Ordering::Release);
    for i in 0..threads.min(15) {
        let tid_word = spawn(storm_thread, (seed + i + 1) as usize)?;
        // The thread's tid, from the parent_tid word (set before clone returns).
        TIDS[i as usize + 1].store(tid_word.load(Ordering::Acquire), Ordering::Relaxed);
        THREADS.store(i as u32 + 2, Ordering::Release);
        joined.push(tid_word);
    }
    storm_loop(seed);
    for word in joined {
        join(word);
    }
    Ok(())
}

fn storm(ms: u64, threads: u64, procs: u64) -> Result<(), &'static str> {
    // SAFETY: without MAP_FIXED no mapping is replaced.
    let page = unsafe {
        mmap(
            0,
            4096,
            PROT_READ | PROT_WRITE,
            MAP_SHARED | MAP_ANONYMOUS,
            -1,
            0,
        )
    }
    .map_err(|_| "mmap failed")?;
    STORM.store(page as u64, Ordering::Release);
    let s = storm_page();
    // The handlers before the first fork: a process may be signalled by a
    // sibling the moment it exists.
    for signal in [SIGUSR1, SIGUSR2] {
        sigaction(signal, on_signal, 0, 0).map_err(|_| "sigaction failed")?;
    }
    let procs = procs.clamp(1, 16);
    let mut children = Vec::new();
    for i in 0..procs {
        match fork() {
            Ok(0) => {
                let ok = storm_process(threads, 1000 * (i + 1)).is_ok();
                exit_group(if ok { 0 } else { 1 })
            }
            Ok(pid) => {
                s.pids[i as usize].store(pid, Ordering::Relaxed);
                s.procs.store(i as u32 + 1, Ordering::Release);
                children.push(pid);
            }
            Err(_) => break,
        }
    }
    sleep_ns(ms.saturating_mul(1_000_000));
    s.stop.store(true, Ordering::SeqCst);
    let mut failed = 0;
    for pid in children.iter() {
        let status = loop {
            match wait4(*pid as i32, 0) {
                Err(Errno::EINTR) => {}
                Ok((_, status)) => break Some(status),
                Err(_) => break None,
            }
        };
        if !status.is_some_and(|s| s.exited() && s.exit_status() == 0) {
            eprintln!("stress storm: process {pid} ended with {status:?}");
            failed += 1;
        }
    }
    println!(
        "stress storm: {} processes x {} threads, {} signals sent, {} handled, {} futex wakes, {failed} failed",
        children.len(),
        threads + 1,
        s.signals_sent.load(Ordering::Relaxed),
        s.handled.load(Ordering::Relaxed),
        s.wakes.load(Ordering::Relaxed),
    );
    if failed == 0 && children.len() as u64 == procs {
        Ok(())
    } else {
        Err("a storm process failed")
    }
}

// ---------------------------------------------------------------------------
// nproc

/// What nproc's threads wait on: 0 until released.
static RELEASE: AtomicU32 = AtomicU32::new(0);

extern "C" fn waiting_thread(_: usize) -> ! {
    while RELEASE.load(Ordering::Acquire) == 0 {
        let _ = futex(&RELEASE, FUTEX_WAIT | FUTEX_PRIVATE_FLAG, 0, None);
    }
    exit(0)
}

/// One round: (processes, threads) created before EAGAIN.
fn nproc_round() -> Result<(u64, u64), &'static str> {
    let [reader, writer] = pipe2(0).map_err(|_| "pipe2 failed")?;
    RELEASE.store(0, Ordering::Release);
    let mut children = Vec::new();
    let mut threads = Vec::new();
    // Processes and threads in turn, until both are refused.
    let (mut stopped, mut thread_stop) = (None, None);
    while stopped.is_none() || thread_stop.is_none() {
        if stopped.is_none() {
            match fork() {
                Ok(0) => {
                    let _ = close(writer);
                    let mut byte = [0u8];
                    while let Err(Errno::EINTR) | Ok(1) = read(reader, &mut byte) {}
                    exit_group(0)
                }
                Ok(pid) => children.push(pid),
                Err(e) => stopped = Some(e),
            }
        }
        if thread_stop.is_none() {
            match spawn(waiting_thread, 0) {
                Ok(tid) => threads.push(tid),
                Err(e) => thread_stop = Some(e),
            }
        }
    }
    let counts = (children.len() as u64, threads.len() as u64);
    let _ = close(writer);
    let _ = close(reader);
    RELEASE.store(1, Ordering::Release);
    let _ = futex(
        &RELEASE,
        FUTEX_WAKE | FUTEX_PRIVATE_FLAG,
        u32::MAX >> 1,
        None,
    );
    for tid in threads {
        join(tid);
    }
    for pid in children {
        while let Err(Errno::EINTR) = wait4(pid as i32, 0) {}
    }
    if stopped != Some(Errno::EAGAIN) || thread_stop != Some(Errno::EAGAIN) {
        eprintln!("stress nproc: stopped by {stopped:?} / {thread_stop:?}");
        return Err("creation stopped by something other than EAGAIN");
    }
    Ok(counts)
}

fn nproc(uid: u64, limit: u64, rounds: u64) -> Result<(), &'static str> {
    let uid = u32::try_from(uid).map_err(|_| "bad uid")?;
    if uid == 0 {
        let mut old = [0u8; 32];
        let n = forkvm::sysctl(THREADS_MAX, None, &mut old).map_err(|_| "sysctl failed")?;
        let old = &old[..n.min(old.len())];
        let text = alloc::format!("{limit}");
        forkvm::sysctl(THREADS_MAX, Some(text.as_bytes()), &mut [0u8; 32])
            .map_err(|_| "sysctl failed")?;
        let result = nproc_rounds(rounds);
        forkvm::sysctl(THREADS_MAX, Some(old), &mut [0u8; 32])
            .map_err(|_| "sysctl restore failed")?;
        return result;
    }
    {
        let limit = Rlimit {
            cur: limit,
            max: limit,
        };
        setrlimit(RLIMIT_NPROC, limit).map_err(|_| "setrlimit failed")?;
        setgid(uid).map_err(|_| "setgid failed")?;
        setuid(uid).map_err(|_| "setuid failed")?;
    }
    nproc_rounds(rounds)
}

const THREADS_MAX: &[u8] = b"kernel.threads-max";

fn nproc_rounds(rounds: u64) -> Result<(), &'static str> {
    let mut first = None;
    for round in 0..rounds {
        let (procs, threads) = nproc_round()?;
        println!("stress nproc: round {round}: {procs} processes, {threads} threads, then EAGAIN");
        if *first.get_or_insert((procs, threads)) != (procs, threads) {
            return Err("a round created a different number of tasks");
        }
    }
    Ok(())
}

/// SIGUSR1s the `tick-probe` child handled.
static PROBE_SIGNALS: AtomicU64 = AtomicU64::new(0);

extern "C" fn on_probe_signal(_signo: i32, _info: *mut SigInfo, _ucontext: *mut u8) {
    PROBE_SIGNALS.fetch_add(1, Ordering::Relaxed);
}

/// The `tick-probe` child: 0 if the probe ran (ticks arrived in its user
/// part) and the signals sent meanwhile were handled after it.
fn tick_probe_child() -> i32 {
    match forkvm::diag_ticks(20) {
        Ok(report) if report.user == 0 => 11,
        Ok(_) if PROBE_SIGNALS.load(Ordering::Relaxed) == 0 => 12,
        Ok(_) => 0,
        Err(_) => 13,
    }
}

/// `stress tick-probe ROUNDS` (see the module comment).
fn tick_probe(rounds: u64) -> Result<(), &'static str> {
    // Inherited by each child, which may be signalled the moment it exists.
    sigaction(SIGUSR1, on_probe_signal, 0, 0).map_err(|_| "sigaction failed")?;
    let mut sent = 0u64;
    for _ in 0..rounds {
        let pid = match fork() {
            Ok(0) => exit_group(tick_probe_child()),
            Ok(pid) => pid,
            Err(_) => return Err("fork failed"),
        };
        let status = loop {
            match wait4(pid as i32, WNOHANG) {
                Ok((0, _)) => {
                    if kill(pid as i32, SIGUSR1).is_ok() {
                        sent += 1;
                    }
                }
                Ok((_, status)) => break status,
                Err(Errno::EINTR) => {}
                Err(_) => return Err("wait4 failed"),
            }
        };
        if !status.exited() {
            println!(
                "stress tick-probe: child killed by signal {}",
                status.term_signal()
            );
            return Err("the probing child was killed");
        }
        match status.exit_status() {
            0 => {}
            11 => return Err("no tick arrived in the user part of the probe"),
            12 => return Err("the child handled none of the signals"),
            13 => return Err("forkvm_diag(DIAG_TICKS) failed"),
            _ => return Err("the probing child failed"),
        }
    }
    println!("stress tick-probe: {rounds} probes, {sent} signals sent, kernel alive");
    Ok(())
}

// ---------------------------------------------------------------------------
// forks

/// Pages of each forking parent's private region.
const FORK_REGION_PAGES: usize = 16;
/// Set by a forking parent to stop its writer threads.
static WRITERS_STOP: AtomicU32 = AtomicU32::new(0);
/// The forking parent's region.
static FORK_REGION: AtomicU64 = AtomicU64::new(0);

/// The word `word` of page `page` of the region.
fn region_word(page: usize, word: usize) -> *mut u64 {
    (FORK_REGION.load(Ordering::Acquire) as usize + page * 4096 + word * 8) as *mut u64
}

/// A writer thread: writes its word of the next page of the region,
/// yields, again, until told to stop.
extern "C" fn region_writer(word: usize) -> ! {
    let mut n = 0u64;
    while WRITERS_STOP.load(Ordering::Acquire) == 0 {
        n += 1;
        // SAFETY: a live page of the region (never unmapped); this word
        // is this thread's alone.
        unsafe { core::ptr::write_volatile(region_word(n as usize % FORK_REGION_PAGES, word), n) };
        forkvm_user::syscall::sched_yield();
    }
    exit(0)
}

/// One forking parent: `cycles` fork/exit/wait cycles beside `threads`
/// writers. Returns the cycles whose child failed.
fn forking_parent(cycles: u64, threads: u64) -> Result<u64, &'static str> {
    let region = mmap_anonymous(FORK_REGION_PAGES * 4096, PROT_READ | PROT_WRITE)
        .map_err(|_| "mmap failed")?;
    FORK_REGION.store(region as u64, Ordering::Release);
    let mut writers = Vec::new();
    for t in 0..threads.min(8) {
        writers.push(spawn(region_writer, 1 + t as usize).map_err(|_| "clone failed")?);
    }
    let mut failed = 0;
    for i in 0..cycles {
        // SAFETY: word 0 of page 0 is this thread's alone.
        unsafe { core::ptr::write_volatile(region_word(0, 0), i) };
        match fork() {
            Ok(0) => {
                // SAFETY: our copy of the region; word 0 is ours.
                let seen = unsafe { core::ptr::read_volatile(region_word(0, 0)) };
                // SAFETY: as above (a write: a copy-on-write fault).
                unsafe { core::ptr::write_volatile(region_word(1, 0), seen) };
                exit_group(i32::from(seen != i))
            }
            Ok(pid) => {
                let status = loop {
                    match wait4(pid as i32, 0) {
                        Err(Errno::EINTR) => {}
                        Ok((_, status)) => break status,
                        Err(_) => return Err("wait4 failed"),
                    }
                };
                if !(status.exited() && status.exit_status() == 0) {
                    failed += 1;
                }
            }
            Err(_) => return Err("fork failed"),
        }
    }
    WRITERS_STOP.store(1, Ordering::Release);
    for word in writers {
        join(word);
    }
    Ok(failed)
}

fn forks(cycles: u64, threads: u64) -> Result<(), &'static str> {
    let mut parents = Vec::new();
    for n in 0..2 {
        let share = cycles / 2 + if n == 0 { cycles % 2 } else { 0 };
        match fork() {
            Ok(0) => exit_group(match forking_parent(share, threads) {
                Ok(failed) => failed.min(100) as i32,
                Err(e) => {
                    println!("stress forks: {e}");
                    101
                }
            }),
            Ok(pid) => parents.push(pid),
            Err(_) => return Err("fork failed"),
        }
    }
    let mut failed = 0;
    for pid in parents {
        let status = loop {
            match wait4(pid as i32, 0) {
                Err(Errno::EINTR) => {}
                Ok((_, status)) => break status,
                Err(_) => return Err("wait4 failed"),
            }
        };
        if !status.exited() || status.exit_status() > 100 {
            return Err("a forking parent failed");
        }
        failed += status.exit_status() as u64;
    }
    println!(
        "stress forks: {cycles} cycles by 2 parents with {threads} threads each, {failed} failed"
    );
    if failed == 0 {
        Ok(())
    } else {
        Err("a child did not see its parent's last write")
    }
}
