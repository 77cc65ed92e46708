//! `lat_proc fork|vfork|thread|clone-vm [--iters N] [--mem MIB]`: the cost
//! of one create + exit + reap cycle, timed in user mode with the TSC.
//!
//! - `fork`: `fork`, the child `exit(0)`s at once, the parent `wait4`s it.
//! - `vfork`: the same with `vfork` (the parent sleeps until the child exits).
//! - `thread`: `clone` with glibc's `pthread_create` flags on a separate
//!   stack; the thread `exit(0)`s (the thread only, not the group) and is
//!   joined by futex-waiting on its `CLONE_CHILD_CLEARTID` word.
//! - `clone-vm`: `clone(CLONE_VM | SIGCHLD)` on a separate stack (shared
//!   memory, otherwise a process of its own); the child `exit(0)`s, the
//!   parent `wait4`s it.
//!
//! `--mem MIB` first maps and touches MIB MiB (one write per 4 KiB page) so
//! the parent has that much resident memory for `fork` to copy the page
//! tables of. Warm-up: max(1, N/10) extra cycles first, not recorded.
//! Prints `bench <op> iters=N min_cycles=.. median_cycles=.. p90_cycles=..
//! max_cycles=..`: TSC cycles, since user space does not know the TSC rate.
//! A failing system call prints `lat_proc: <what>: <ERRNAME> <n>` and exits 1.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU32, Ordering};

use forkvm_user::clone::{clone_raw, vfork, wait_tid_cleared, CLONE_VM, SIGCHLD, THREAD_FLAGS};
use forkvm_user::io::Bytes;
use forkvm_user::stats::summarize;
use forkvm_user::syscall::{exit, fork, mmap_anonymous, wait4, Pid, PROT_READ, PROT_WRITE};
use forkvm_user::time::rdtsc_serialized;
use forkvm_user::{entry, eprintln, println, Errno};

entry!(main);

const USAGE: &str = "usage: lat_proc fork|vfork|thread|clone-vm [--iters N] [--mem MIB]";
const DEFAULT_ITERS: usize = 1000;
/// Stack of the `thread` and `clone-vm` children (they only call `exit`).
const CHILD_STACK: usize = 64 * 1024;
const PAGE: usize = 4096;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Fork,
    Vfork,
    Thread,
    CloneVm,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Fork => "fork",
            Op::Vfork => "vfork",
            Op::Thread => "thread",
            Op::CloneVm => "clone-vm",
        }
    }
}

/// The memory a `thread`/`clone-vm` child uses: its stack, with a small TLS
/// block (`CLONE_SETTLS`) at the bottom, and the thread's tid word.
struct ChildArea {
    stack_top: *mut u8,
    tls: *mut u64,
    tid: AtomicU32,
}

fn fail(what: &str, e: Errno) -> ! {
    eprintln!("lat_proc: {what}: {e}");
    forkvm_user::syscall::exit_group(1)
}

fn usage(what: &str) -> ! {
    eprintln!("lat_proc: {what}\n{USAGE}");
    forkvm_user::syscall::exit_group(2)
}

fn parse_number(flag: &str, value: Option<&&[u8]>) -> usize {
    let Some(value) = value else { usage(flag) };
    match core::str::from_utf8(value)
        .ok()
        .and_then(|s| s.parse().ok())
    {
        Some(n) => n,
        None => {
            eprintln!("lat_proc: {flag}: not a number: {}", Bytes(value));
            usage(flag)
        }
    }
}

/// The child of `thread` and `clone-vm`: ends itself (only this thread).
extern "C" fn child_exit(_arg: usize) -> ! {
    exit(0)
}

/// Reaps `pid` and checks that it exited with status 0.
fn reap(pid: Pid) {
    match wait4(pid as i32, 0) {
        Ok((got, status)) if got == pid && status.exited() && status.exit_status() == 0 => {}
        Ok((_, status)) => {
            eprintln!("lat_proc: wait4: child ended with status {:#x}", status.0);
            forkvm_user::syscall::exit_group(1)
        }
        Err(e) => fail("wait4", e),
    }
}

/// One create + exit + reap cycle, in TSC cycles.
fn cycle(op: Op, area: &ChildArea) -> u64 {
    let start = rdtsc_serialized();
    match op {
        Op::Fork => match fork() {
            Ok(0) => exit(0),
            Ok(pid) => reap(pid),
            Err(e) => fail("fork", e),
        },
        Op::Vfork => {
            // SAFETY: the child only makes the (inlined) exit system call.
            match unsafe { vfork() } {
                Ok(0) => exit(0),
                Ok(pid) => reap(pid),
                Err(e) => fail("vfork", e),
            }
        }
        Op::Thread => {
            area.tid.store(u32::MAX, Ordering::Relaxed);
            let tid = area.tid.as_ptr();
            // SAFETY: the stack and TLS block are ours and idle (the last
            // thread is joined); the tid word lives as long as `area`, and
            // the thread only calls exit.
            let ret = unsafe {
                clone_raw(
                    THREAD_FLAGS,
                    area.stack_top,
                    tid,
                    tid,
                    area.tls as u64,
                    child_exit,
                    0,
                )
            };
            if let Err(e) = ret {
                fail("clone(thread)", e);
            }
            wait_tid_cleared(&area.tid);
        }
        Op::CloneVm => {
            let null = core::ptr::null_mut();
            // SAFETY: the stack is ours and idle (the last child was reaped);
            // the child only calls exit.
            let ret = unsafe {
                clone_raw(
                    CLONE_VM | SIGCHLD,
                    area.stack_top,
                    null,
                    null,
                    0,
                    child_exit,
                    0,
                )
            };
            match ret {
                Ok(pid) => reap(pid),
                Err(e) => fail("clone(CLONE_VM)", e),
            }
        }
    }
    rdtsc_serialized() - start
}

fn main(args: &[&[u8]], _env: &[&[u8]]) -> i32 {
    let op = match args.get(1).copied() {
        Some(b"fork") => Op::Fork,
        Some(b"vfork") => Op::Vfork,
        Some(b"thread") => Op::Thread,
        Some(b"clone-vm") => Op::CloneVm,
        Some(other) => {
            eprintln!("lat_proc: unknown operation: {}", Bytes(other));
            usage("no such operation")
        }
        None => usage("missing operation"),
    };
    let mut iters = DEFAULT_ITERS;
    let mut mem_mib = 0;
    let mut rest = args.get(2..).unwrap_or(&[]).iter();
    while let Some(&flag) = rest.next() {
        match flag {
            b"--iters" => iters = parse_number("--iters", rest.next()),
            b"--mem" => mem_mib = parse_number("--mem", rest.next()),
            other => {
                eprintln!("lat_proc: unknown option: {}", Bytes(other));
                usage("bad option")
            }
        }
    }
    if iters == 0 {
        usage("--iters must be at least 1");
    }

    if mem_mib > 0 {
        let len = mem_mib
            .checked_mul(1 << 20)
            .unwrap_or_else(|| usage("--mem too large"));
        let mem =
            mmap_anonymous(len, PROT_READ | PROT_WRITE).unwrap_or_else(|e| fail("mmap(--mem)", e));
        for off in (0..len).step_by(PAGE) {
            // SAFETY: off < len, inside the fresh mapping (kept until exit).
            unsafe { mem.add(off).write_volatile(1) };
        }
    }

    let samples_len = iters * core::mem::size_of::<u64>();
    let samples = mmap_anonymous(samples_len, PROT_READ | PROT_WRITE)
        .unwrap_or_else(|e| fail("mmap(samples)", e));
    // SAFETY: a fresh zeroed mapping of `iters` u64s, used only through this slice.
    let samples = unsafe { core::slice::from_raw_parts_mut(samples.cast::<u64>(), iters) };

    let stack = mmap_anonymous(CHILD_STACK, PROT_READ | PROT_WRITE)
        .unwrap_or_else(|e| fail("mmap(stack)", e));
    let tls = stack.cast::<u64>();
    // SAFETY: the TLS block is the first 64 bytes of the stack mapping; by
    // x86-64 convention its first word points to itself.
    unsafe { tls.write(tls as u64) };
    let area = ChildArea {
        // SAFETY: one past the end of the mapping: the top of the stack.
        stack_top: unsafe { stack.add(CHILD_STACK) },
        tls,
        tid: AtomicU32::new(0),
    };

    let warmup = (iters / 10).max(1);
    for _ in 0..warmup {
        cycle(op, &area);
    }
    for sample in samples.iter_mut() {
        *sample = cycle(op, &area);
    }
    let s = summarize(samples).expect("iters >= 1");
    println!(
        "bench {} iters={} min_cycles={} median_cycles={} p90_cycles={} max_cycles={}",
        op.name(),
        iters,
        s.min,
        s.median,
        s.p90,
        s.max
    );
    0
}
