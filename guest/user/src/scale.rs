//! Throughput with K concurrent workers, will-it-scale style: K workers
//! (processes, or threads of this process) each repeat one creating
//! operation ([`latency::repeat_until`]) as fast as they can; the count of
//! completed operations over a fixed time, with all K running, is the
//! result. `harnessd` serves it as the protocol's `RunScale`.
//!
//! The workers count into a shared mapping (one word each, written only by
//! its worker) and stop when the stop word is set. The time starts once
//! every worker has completed its first operation (or failed, or ten
//! seconds passed): the counts are read then and again at the end, so the
//! start-up of the workers is not in the figure, and every worker is
//! running when it starts, however slowly the first ones got going. A worker that fails
//! stops with its errno in its slot; the run then reports the first one.

use core::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering};

use crate::clone::{clone_raw, wait_tid_cleared, THREAD_FLAGS};
use crate::errno::Errno;
use crate::latency::{self, Op};
use crate::syscall::{self, exit, fork, munmap, nanosleep, wait4, Pid, Timespec};
use crate::syscall::{MAP_ANONYMOUS, MAP_SHARED, PROT_READ, PROT_WRITE};
use crate::time::rdtsc_serialized;

/// Most workers one run may start (the protocol's limit).
pub const MAX_WORKERS: usize = forkvm_protocol::MAX_SCALE_WORKERS as usize;
/// Stack of a worker thread (it runs the operation loop and creates its
/// own children on a stack of its own).
const WORKER_STACK: usize = 64 * 1024;
const PAGE: usize = 4096;

/// How the workers run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Each worker is a forked process.
    Processes,
    /// Each worker is a thread of this process.
    Threads,
}

/// What a run counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Operations completed by all workers in the timed interval.
    pub ops: u64,
    /// The interval in TSC cycles.
    pub elapsed_tsc: u64,
    /// The fewest operations one worker completed in it.
    pub min_worker_ops: u64,
    /// The most operations one worker completed in it.
    pub max_worker_ops: u64,
}

/// One worker's words in the shared mapping, each on its own cache line
/// so that counting does not bounce lines between CPUs.
#[repr(C, align(64))]
struct Slot {
    /// Operations completed so far.
    done: AtomicU64,
    /// 0 while running or after a clean stop, else the errno it failed with.
    errno: AtomicI32,
    /// A thread worker's tid word (`CLONE_CHILD_CLEARTID`).
    tid: AtomicU32,
    /// What the worker repeats and where it stops (read-only to it).
    op: Op,
    stop: *const AtomicU32,
}

/// A shared anonymous mapping, unmapped on drop.
struct Shared {
    ptr: *mut u8,
    len: usize,
}

impl Shared {
    fn new(len: usize) -> Result<Shared, Errno> {
        // SAFETY: a fresh anonymous mapping; nothing else is affected.
        let ptr = unsafe {
            syscall::mmap(
                0,
                len,
                PROT_READ | PROT_WRITE,
                MAP_SHARED | MAP_ANONYMOUS,
                -1,
                0,
            )
        }?;
        Ok(Shared { ptr, len })
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // SAFETY: ours; every worker that used it has been reaped or joined.
        let _ = unsafe { munmap(self.ptr, self.len) };
    }
}

/// A private anonymous mapping (touched memory, thread stacks), unmapped
/// on drop.
struct Private {
    ptr: *mut u8,
    len: usize,
}

impl Private {
    fn new(len: usize) -> Result<Private, Errno> {
        let ptr = syscall::mmap_anonymous(len, PROT_READ | PROT_WRITE)?;
        Ok(Private { ptr, len })
    }
}

impl Drop for Private {
    fn drop(&mut self) {
        // SAFETY: ours; the workers that used it are gone.
        let _ = unsafe { munmap(self.ptr, self.len) };
    }
}

/// The body of a worker thread: repeats the slot's operation, then ends
/// this thread only.
extern "C" fn worker_thread(slot: usize) -> ! {
    // SAFETY: `run` passes a slot of its shared mapping, which it keeps
    // mapped until this thread's tid word has been cleared (it has exited).
    let slot = unsafe { &*(slot as *const Slot) };
    work(slot);
    exit(0)
}

/// A worker's loop; a failure is left in its slot.
fn work(slot: &Slot) {
    // SAFETY: the stop word lives in the same shared mapping as the slot.
    let stop = unsafe { &*slot.stop };
    if let Err(e) = latency::repeat_until(slot.op, stop, &slot.done) {
        slot.errno.store(e.errno(), Ordering::Release);
    }
}

/// Waits (sleeping 1 ms at a time, at most ~10 s) until every worker has
/// completed an operation or one has failed.
fn wait_for_first_operations(slots: &[Slot]) {
    for _ in 0..10_000 {
        let ready = slots.iter().all(|slot| {
            slot.done.load(Ordering::Relaxed) > 0 || slot.errno.load(Ordering::Acquire) != 0
        });
        if ready {
            return;
        }
        let _ = nanosleep(Timespec::from_nanos(1_000_000));
    }
}

/// The sum, least and most of the per-worker differences `after - before`.
pub fn tally(before: &[u64], after: &[u64]) -> (u64, u64, u64) {
    let diffs = before.iter().zip(after).map(|(b, a)| a.saturating_sub(*b));
    diffs.fold((0, u64::MAX, 0), |(sum, min, max), d| {
        (sum + d, min.min(d), max.max(d))
    })
}

/// Runs `workers` workers of `op` (a creating operation; `mem_mib` MiB
/// touched first, shared copy-on-write by process workers) as `mode` says
/// for `duration_ns` once each has completed an operation, and returns what they counted. `Err`
/// is the errno of the first failure (a worker's, or of setting up).
pub fn run(
    op: Op,
    mem_mib: usize,
    mode: Mode,
    workers: usize,
    duration_ns: u64,
) -> Result<Counts, Errno> {
    if workers == 0 || workers > MAX_WORKERS {
        return Err(Errno::EINVAL);
    }
    let _touched = match mem_mib {
        0 => None,
        mib => {
            let len = mib.checked_mul(1 << 20).ok_or(Errno::ENOMEM)?;
            let mem = Private::new(len)?;
            for off in (0..len).step_by(PAGE) {
                // SAFETY: off < len, inside the fresh mapping.
                unsafe { mem.ptr.add(off).write_volatile(1) };
            }
            Some(mem)
        }
    };
    // The stop word, then one slot per worker.
    let slot_size = core::mem::size_of::<Slot>();
    let shared = Shared::new(slot_size * (workers + 1))?;
    let stop = shared.ptr.cast::<AtomicU32>();
    // SAFETY: the mapping holds `workers + 1` slot-sized, 64-byte aligned
    // (page-aligned base) places, zero-filled: a valid AtomicU32, and the
    // slots are written whole before any worker reads them.
    let slots: &[Slot] = unsafe {
        let first = shared.ptr.add(slot_size).cast::<Slot>();
        for i in 0..workers {
            first.add(i).write(Slot {
                done: AtomicU64::new(0),
                errno: AtomicI32::new(0),
                tid: AtomicU32::new(0),
                op,
                stop,
            });
        }
        core::slice::from_raw_parts(first, workers)
    };
    let mut stacks: [Option<Private>; MAX_WORKERS] = [const { None }; MAX_WORKERS];
    let mut pids: [Pid; MAX_WORKERS] = [0; MAX_WORKERS];
    let mut started = 0;
    let mut failure = None;
    for (i, slot) in slots.iter().enumerate() {
        let result = match mode {
            Mode::Processes => start_process(slot),
            Mode::Threads => start_thread(slot, &mut stacks[i]),
        };
        match result {
            Ok(pid) => {
                pids[i] = pid;
                started += 1;
            }
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    let mut counts = Counts::default();
    if failure.is_none() {
        let mut before = [0u64; MAX_WORKERS];
        let mut after = [0u64; MAX_WORKERS];
        let snapshot = |into: &mut [u64]| {
            for (n, slot) in into.iter_mut().zip(slots) {
                *n = slot.done.load(Ordering::Relaxed);
            }
        };
        wait_for_first_operations(slots);
        let start = rdtsc_serialized();
        snapshot(&mut before[..workers]);
        let mut left = Timespec::from_nanos(duration_ns);
        while let Err((Errno::EINTR, rest)) = nanosleep(left) {
            left = rest;
        }
        snapshot(&mut after[..workers]);
        let end = rdtsc_serialized();
        let (ops, min, max) = tally(&before[..workers], &after[..workers]);
        counts = Counts {
            ops,
            elapsed_tsc: end - start,
            min_worker_ops: min,
            max_worker_ops: max,
        };
    }
    // SAFETY: the stop word is a valid AtomicU32 in the shared mapping.
    unsafe { &*stop }.store(1, Ordering::Relaxed);
    for (slot, &pid) in slots.iter().zip(&pids).take(started) {
        let ended = match mode {
            Mode::Processes => match wait4(pid as i32, 0) {
                Ok((_, status)) if status.exited() && status.exit_status() == 0 => Ok(()),
                Ok(_) => Err(Errno::ECHILD),
                Err(e) => Err(e),
            },
            Mode::Threads => {
                wait_tid_cleared(&slot.tid);
                Ok(())
            }
        };
        if let Err(e) = ended {
            failure.get_or_insert(e);
        }
        let errno = slot.errno.load(Ordering::Acquire);
        if errno != 0 {
            failure.get_or_insert(Errno(errno));
        }
    }
    drop(stacks);
    match failure {
        Some(e) => Err(e),
        None => Ok(counts),
    }
}

/// Forks a worker process that runs `slot`'s loop and exits.
fn start_process(slot: &Slot) -> Result<Pid, Errno> {
    match fork()? {
        0 => {
            work(slot);
            exit(0)
        }
        pid => Ok(pid),
    }
}

/// Starts a worker thread on a stack of its own (kept in `stack` until it
/// has been joined) that runs `slot`'s loop.
fn start_thread(slot: &Slot, stack: &mut Option<Private>) -> Result<Pid, Errno> {
    let mapping = stack.insert(Private::new(WORKER_STACK)?);
    let tls = mapping.ptr.cast::<u64>();
    // SAFETY: the TLS block is the first 64 bytes of the fresh stack
    // mapping; by x86-64 convention its first word points to itself.
    unsafe { tls.write(tls as u64) };
    slot.tid.store(u32::MAX, Ordering::Relaxed);
    let tid = slot.tid.as_ptr();
    // SAFETY: the stack is fresh and used by this thread only; the tid
    // word and the slot live in the shared mapping, which `run` keeps
    // until the thread has been joined through the tid word.
    unsafe {
        clone_raw(
            THREAD_FLAGS,
            mapping.ptr.add(mapping.len),
            tid,
            tid,
            tls as u64,
            worker_thread,
            slot as *const Slot as usize,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tally_sums_the_differences() {
        assert_eq!(tally(&[1, 10, 5], &[4, 30, 5]), (23, 0, 20));
        assert_eq!(tally(&[7], &[7 + 100]), (100, 100, 100));
    }

    // On the host's Linux: every worker counts, both ways.
    #[test]
    fn workers_count_as_processes_and_threads() {
        for mode in [Mode::Processes, Mode::Threads] {
            for op in [Op::Fork, Op::Vfork, Op::Thread, Op::CloneVm] {
                let counts = run(op, 0, mode, 2, 50_000_000).unwrap();
                assert!(counts.min_worker_ops > 0, "{op:?} {mode:?}: {counts:?}");
                assert!(counts.ops >= 2 * counts.min_worker_ops, "{counts:?}");
                assert!(counts.elapsed_tsc > 0);
            }
        }
        let counts = run(Op::Fork, 1, Mode::Processes, 1, 10_000_000).unwrap();
        assert!(counts.ops > 0);
    }

    #[test]
    fn refuses_what_is_not_a_creation_or_no_worker() {
        assert_eq!(run(Op::Fork, 0, Mode::Threads, 0, 1), Err(Errno::EINVAL));
        assert_eq!(
            run(Op::Fork, 0, Mode::Threads, MAX_WORKERS + 1, 1),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            run(Op::CloneEinval, 0, Mode::Processes, 1, 1_000_000),
            Err(Errno::EINVAL)
        );
    }
}
