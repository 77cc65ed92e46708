//! `tlbcheck ROUNDS`: checks that a fork and its copy-on-write breaks make
//! the other CPUs forget translations (TLB shootdown), seen from user mode.
//! Needs two CPUs; runs unchanged on host Linux.
//!
//! The process has two threads: the main one pinned to CPU 0, a reader
//! pinned to CPU 1 that, without ever entering the kernel, reads page R
//! and writes page W in a loop (so CPU 1's TLB holds both translations).
//! Each round the main thread forks (write-protecting R and W: CPU 1 must
//! flush), then writes R (its copy-on-write break gives the parent a new
//! frame: CPU 1 must flush again); the child, which now alone owns R's old
//! frame, writes a mark into it (reused in place). Then:
//! - the reader must never read the child's mark (it would through a
//!   stale translation of R to the old frame);
//! - the child must never see W change after the fork (it would if the
//!   reader kept writing W's old frame through a stale writable entry).
//!
//! In the guest (root) it sets `vm.fork_copy_max_pages` to 0 for the run
//! (restored after): a fork of a process this small would otherwise copy
//! its writable pages at once instead of sharing them (on PVM).
//!
//! Prints `tlbcheck: N rounds, reader saw the child's write in A rounds,
//! child saw parent writes in B rounds` and exits 0 if A and B are 0, 1
//! if not, 2 on a usage error or when something else fails.
#![no_std]
#![no_main]

use core::ptr::{read_volatile, write_volatile};
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use forkvm_user::clone::{clone_raw, wait_tid_cleared, THREAD_FLAGS};
use forkvm_user::sched::sched_setaffinity;
use forkvm_user::shell_parse::parse_u64;
use forkvm_user::syscall::{
    exit, exit_group, fork, mmap, mmap_anonymous, sched_yield, wait4, MAP_ANONYMOUS, MAP_SHARED,
    PROT_READ, PROT_WRITE,
};
use forkvm_user::{entry, forkvm, println, Errno};

entry!(main);

const PAGE: usize = 4096;
/// Private pages of the test region: R and W.
const REGION_PAGES: usize = 2;
const R_PAGE: usize = 0;
const W_PAGE: usize = 1;
/// What the child writes into R's old frame.
const CHILD_MARK: u64 = 0xc41d_c41d_c41d_c41d;
/// Reader iterations the parent lets pass after the child's write.
const READS_AFTER_CHILD_WRITE: u64 = 20_000;
const STACK_SIZE: usize = 64 * 1024;

/// Shared by the threads and every child (a MAP_SHARED page: fork never
/// write-protects it, so it is no part of what is checked).
#[repr(C)]
struct Control {
    stop: AtomicU32,
    /// The reader's loop iterations.
    reads: AtomicU64,
    /// Rounds in which the reader read the child's mark.
    stale_reads: AtomicU64,
    /// The round the parent has broken R's sharing in.
    parent_broke: AtomicU64,
    /// The round the child has written its mark in.
    child_wrote: AtomicU64,
    /// The round the parent has finished watching the reader in.
    parent_done: AtomicU64,
    /// The round whose stale read the reader counted last.
    round: AtomicU64,
    last_stale_round: AtomicU64,
    /// The test region's address.
    region: AtomicU64,
}

fn main(args: &[&[u8]], _env: &[&[u8]]) -> i32 {
    let rounds = match args.get(1..) {
        Some([rounds]) => parse_u64(rounds),
        _ => None,
    };
    let Some(rounds) = rounds.filter(|&r| r > 0) else {
        println!("usage: tlbcheck ROUNDS");
        return 2;
    };
    // Absent on Linux (ENOENT from the guest's own call, ENOSYS there).
    let mut old = [0u8; 32];
    let saved = forkvm::sysctl(COPY_MAX, None, &mut old).ok();
    if saved.is_some() && forkvm::sysctl(COPY_MAX, Some(b"0"), &mut [0u8; 32]).is_err() {
        println!("tlbcheck: cannot set vm.fork_copy_max_pages (needs root)");
        return 2;
    }
    let result = run(rounds);
    if let Some(n) = saved {
        let _ = forkvm::sysctl(COPY_MAX, Some(&old[..n.min(old.len())]), &mut [0u8; 32]);
    }
    match result {
        Ok((stale, child_saw)) => {
            println!(
                "tlbcheck: {rounds} rounds, reader saw the child's write in {stale} rounds, \
                 child saw parent writes in {child_saw} rounds"
            );
            i32::from(stale != 0 || child_saw != 0)
        }
        Err(what) => {
            println!("tlbcheck: {what}");
            2
        }
    }
}

const COPY_MAX: &[u8] = b"vm.fork_copy_max_pages";

fn control() -> &'static Control {
    // SAFETY: set to the live, never-unmapped shared page before use.
    unsafe { &*(CONTROL.load(Ordering::Acquire) as *const Control) }
}

static CONTROL: AtomicU64 = AtomicU64::new(0);

fn word(region: u64, page: usize) -> *mut u64 {
    (region as usize + page * PAGE) as *mut u64
}

/// The reader thread, on CPU 1: reads R, writes W, counts; no system
/// call in the loop.
extern "C" fn reader(_: usize) -> ! {
    if sched_setaffinity(0, 0b10).is_err() {
        exit_group(3);
    }
    let c = control();
    let region = c.region.load(Ordering::Acquire);
    let (r, w) = (word(region, R_PAGE), word(region, W_PAGE));
    let mut n = 0u64;
    while c.stop.load(Ordering::Relaxed) == 0 {
        // SAFETY: R and W are live pages of the region, never unmapped;
        // other threads touch them only with volatile accesses too.
        let seen = unsafe { read_volatile(r) };
        if seen == CHILD_MARK {
            let round = c.round.load(Ordering::Relaxed);
            if c.last_stale_round.swap(round, Ordering::Relaxed) != round {
                c.stale_reads.fetch_add(1, Ordering::Relaxed);
            }
        }
        n += 1;
        // SAFETY: as above.
        unsafe { write_volatile(w, n) };
        c.reads.store(n, Ordering::Release);
    }
    exit(0)
}

/// Yields until `counter` reaches `round`.
fn wait_for(counter: &AtomicU64, round: u64) {
    while counter.load(Ordering::Acquire) < round {
        sched_yield();
    }
}

/// The child of round `round`: see the module comment. Exits 0, or 1 if
/// W changed after the fork.
fn child(round: u64) -> ! {
    let c = control();
    let region = c.region.load(Ordering::Acquire);
    // SAFETY: the region is ours (copied at fork); volatile like the reader.
    let before = unsafe { read_volatile(word(region, W_PAGE)) };
    wait_for(&c.parent_broke, round);
    // SAFETY: as above; R's frame is now this child's alone.
    unsafe { write_volatile(word(region, R_PAGE), CHILD_MARK) };
    c.child_wrote.store(round, Ordering::Release);
    wait_for(&c.parent_done, round);
    // SAFETY: as above.
    let after = unsafe { read_volatile(word(region, W_PAGE)) };
    exit_group(i32::from(after != before))
}

/// Runs the rounds; returns (rounds with stale reads, rounds whose child
/// saw W change).
fn run(rounds: u64) -> Result<(u64, u64), &'static str> {
    sched_setaffinity(0, 0b01).map_err(|_| "needs CPU 0 and CPU 1 (sched_setaffinity)")?;
    // SAFETY: without MAP_FIXED no mapping is replaced.
    let page = unsafe {
        mmap(
            0,
            PAGE,
            PROT_READ | PROT_WRITE,
            MAP_SHARED | MAP_ANONYMOUS,
            -1,
            0,
        )
    }
    .map_err(|_| "mmap failed")?;
    CONTROL.store(page as u64, Ordering::Release);
    let c = control();
    let region = mmap_anonymous(REGION_PAGES * PAGE, PROT_READ | PROT_WRITE)
        .map_err(|_| "mmap failed")? as u64;
    for page in 0..REGION_PAGES {
        // SAFETY: a page of the fresh region.
        unsafe { write_volatile(word(region, page), 1) };
    }
    c.region.store(region, Ordering::Release);
    let stack = mmap_anonymous(STACK_SIZE, PROT_READ | PROT_WRITE).map_err(|_| "mmap failed")?;
    // SAFETY: the tid word is at the bottom of the fresh stack (the
    // thread uses the top); never unmapped; any bits are a valid AtomicU32.
    let tid = unsafe { &*stack.cast::<AtomicU32>() };
    // SAFETY: the stack is the reader's alone; it touches only the region
    // (volatile) and the control page (atomics).
    unsafe {
        clone_raw(
            THREAD_FLAGS & !forkvm_user::clone::CLONE_SETTLS,
            stack.add(STACK_SIZE),
            tid.as_ptr(),
            tid.as_ptr(),
            0,
            reader,
            0,
        )
    }
    .map_err(|_| "clone failed")?;
    while c.reads.load(Ordering::Acquire) < 1000 {
        if tid.load(Ordering::Acquire) == 0 {
            return Err("the reader could not run on CPU 1");
        }
        sched_yield();
    }
    let result = rounds_with_reader(c, region, rounds);
    c.stop.store(1, Ordering::Release);
    wait_tid_cleared(tid);
    let child_saw = result?;
    Ok((c.stale_reads.load(Ordering::Relaxed), child_saw))
}

fn rounds_with_reader(c: &Control, region: u64, rounds: u64) -> Result<u64, &'static str> {
    let r = word(region, R_PAGE);
    let mut child_saw = 0;
    for round in 1..=rounds {
        c.round.store(round, Ordering::Release);
        // SAFETY: the region's R page; volatile like the reader.
        unsafe { write_volatile(r, round) };
        let pid = match fork() {
            Ok(0) => child(round),
            Ok(pid) => pid,
            Err(_) => return Err("fork failed"),
        };
        // The copy-on-write break: R gets a new frame here, the child keeps
        // the old one.
        // SAFETY: as above.
        unsafe { write_volatile(r, round) };
        c.parent_broke.store(round, Ordering::Release);
        wait_for(&c.child_wrote, round);
        let from = c.reads.load(Ordering::Acquire);
        while c.reads.load(Ordering::Acquire) < from + READS_AFTER_CHILD_WRITE {
            sched_yield();
        }
        c.parent_done.store(round, Ordering::Release);
        let status = loop {
            match wait4(pid as i32, 0) {
                Err(Errno::EINTR) => {}
                Ok((_, status)) => break status,
                Err(_) => return Err("wait4 failed"),
            }
        };
        if !status.exited() || status.exit_status() > 1 {
            return Err("a child failed");
        }
        child_saw += u64::from(status.exit_status() == 1);
    }
    Ok(child_saw)
}
