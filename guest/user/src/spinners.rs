//! Busy threads that keep a process's address space live on other CPUs
//! while it forks (`fork-threaded`, [`crate::latency`]): with threads of
//! the parent running elsewhere, Linux must flush their TLBs (IPIs) when
//! fork write-protects the parent's pages.
//!
//! Each spinner writes to its own stack page in a loop, so its CPU really
//! uses the address space. When the spinners and the parent fit on the
//! CPUs they may use (one each), they spin without a system call: no
//! traps, no VM exits of their own. When they must share CPUs they call
//! `sched_yield` after every burst, so the parent and its child wait at
//! most a burst for a CPU instead of whole time slices (the measurement is
//! then of fork, not of the scheduler's slice length).
//!
//! [`with_spinners`] starts them, runs the measurement, then stops and
//! joins every thread (also on errors): none is left behind.

use core::sync::atomic::{AtomicU32, Ordering};

use crate::clone::{clone_raw, wait_tid_cleared, THREAD_FLAGS};
use crate::latency::{ChildArea, Error, Mapping, CHILD_STACK};
use crate::syscall::{exit, sched_yield};

/// At most this many spinners (their stacks are fixed slots).
pub const MAX_SPINNERS: usize = 8;
/// Writes between two `sched_yield`s when spinners share CPUs.
const SPIN_BURST: usize = 1 << 14;

/// What the parent and its spinners share (lives on the parent's stack
/// for the whole [`with_spinners`] call).
struct Shared {
    /// Set by the parent to make every spinner exit.
    stop: AtomicU32,
    /// Spinners that have entered their loop.
    running: AtomicU32,
    /// 1: yield after every burst (the spinners share CPUs).
    yield_between_bursts: AtomicU32,
}

/// Starts `count` spinners (at most [`MAX_SPINNERS`]), waits until all
/// run, calls `body`, then stops and joins them and returns `body`'s
/// result (or the error that prevented starting them).
pub fn with_spinners<R>(count: usize, body: impl FnOnce() -> Result<R, Error>) -> Result<R, Error> {
    use crate::errno::Errno;
    if count > MAX_SPINNERS {
        return Err(Error::Sys("spinners", Errno::EINVAL));
    }
    // The parent needs a CPU too; without an affinity mask assume one CPU.
    let cpus = crate::sched::sched_getaffinity(0)
        .map(|mask| mask.count_ones() as usize)
        .unwrap_or(1);
    let shared = Shared {
        stop: AtomicU32::new(0),
        running: AtomicU32::new(0),
        yield_between_bursts: AtomicU32::new(u32::from(count + 1 > cpus)),
    };
    let mut stacks: [Option<Mapping>; MAX_SPINNERS] = core::array::from_fn(|_| None);
    let mut areas: [Option<ChildArea>; MAX_SPINNERS] = core::array::from_fn(|_| None);
    let mut started = 0;
    let result = (|| {
        for i in 0..count {
            let stack = stacks[i].insert(Mapping::new(CHILD_STACK, "mmap(spinner stack)")?);
            let area = areas[i].insert(ChildArea::on(stack));
            area.tid.store(u32::MAX, Ordering::Relaxed);
            let tid = area.tid.as_ptr();
            // SAFETY: the stack, TLS block and tid word are this spinner's
            // alone and outlive it (it is joined below before they drop);
            // `shared` outlives every spinner for the same reason.
            unsafe {
                clone_raw(
                    THREAD_FLAGS,
                    area.stack_top,
                    tid,
                    tid,
                    area.tls as u64,
                    spin,
                    &shared as *const Shared as usize,
                )
            }
            .map_err(|e| Error::Sys("clone(spinner)", e))?;
            started += 1;
        }
        while (shared.running.load(Ordering::Acquire) as usize) < count {
            sched_yield();
        }
        body()
    })();
    shared.stop.store(1, Ordering::Release);
    for area in areas.iter().take(started).flatten() {
        wait_tid_cleared(&area.tid);
    }
    result
}

/// A spinner's body: writes its stack page until told to stop, then ends
/// itself (only this thread).
extern "C" fn spin(shared: usize) -> ! {
    // SAFETY: `with_spinners` passes a `Shared` that outlives this thread.
    let shared = unsafe { &*(shared as *const Shared) };
    shared.running.fetch_add(1, Ordering::Release);
    let yields = shared.yield_between_bursts.load(Ordering::Relaxed) != 0;
    let mut page = [0u64; 512];
    let mut i = 0usize;
    while shared.stop.load(Ordering::Acquire) == 0 {
        for _ in 0..SPIN_BURST {
            // SAFETY: the index is in bounds; volatile so the writes (the
            // use of the address space) are not optimised away.
            unsafe {
                page.as_mut_ptr()
                    .add(i % page.len())
                    .write_volatile(i as u64)
            };
            i = i.wrapping_add(1);
        }
        if yields {
            sched_yield();
        }
    }
    exit(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::errno::Errno;

    // The spinners run on the host too (raw clones inside the test binary).
    // Were one left running after its stack was unmapped, it would fault
    // and kill the whole test process.
    #[test]
    fn runs_the_body_and_joins_the_spinners() {
        for count in [0, 1, 2, MAX_SPINNERS] {
            assert_eq!(with_spinners(count, || Ok(count * 10)), Ok(count * 10));
        }
        let failed: Result<(), Error> = with_spinners(2, || Err(Error::Sys("body", Errno::EBADF)));
        assert_eq!(failed, Err(Error::Sys("body", Errno::EBADF)));
    }

    #[test]
    fn refuses_more_than_the_slots() {
        assert_eq!(
            with_spinners(MAX_SPINNERS + 1, || Ok(())),
            Err(Error::Sys("spinners", Errno::EINVAL))
        );
    }
}
