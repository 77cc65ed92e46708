//! The host side of `fork_threaded`, as the guest runs it
//! (`forkvm_user::spinners`): [`FORK_THREADED_THREADS`] threads of this
//! process write to their own stack page in a loop while the measuring
//! thread forks, so the address space is live on other CPUs (Linux then
//! flushes their TLBs with IPIs when fork write-protects it). When the
//! threads and the forking thread fit on the allowed CPUs they spin
//! without system calls; when they must share CPUs they `sched_yield`
//! after every burst, so fork and its child wait at most a burst for a
//! CPU rather than whole time slices. Every thread is stopped and joined
//! before [`with_spinners`] returns.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;

use forkvm_protocol::FORK_THREADED_THREADS;

use super::{BenchOp, HostError};

/// Writes between two `sched_yield`s when the threads share CPUs (as in
/// the guest).
const SPIN_BURST: usize = 1 << 14;

/// Runs `body` while [`FORK_THREADED_THREADS`] spinners run; returns its
/// result and a note on how they ran.
pub(super) fn with_spinners<R>(
    op: BenchOp,
    body: impl FnOnce() -> Result<R, HostError>,
) -> Result<(R, String), HostError> {
    let cpus = thread::available_parallelism().map_or(1, |n| n.get());
    let yields = FORK_THREADED_THREADS + 1 > cpus;
    let stop = Arc::new(AtomicBool::new(false));
    let running = Arc::new(AtomicUsize::new(0));
    let mut threads = Vec::with_capacity(FORK_THREADED_THREADS);
    let mut spawn_error = None;
    for _ in 0..FORK_THREADED_THREADS {
        let (stop, running) = (Arc::clone(&stop), Arc::clone(&running));
        match thread::Builder::new()
            .name("fork_threaded spinner".to_owned())
            .spawn(move || spin(&stop, &running, yields))
        {
            Ok(handle) => threads.push(handle),
            Err(e) => {
                spawn_error = Some(HostError::Unexpected {
                    op,
                    syscall: "clone",
                    detail: format!("starting a spinner thread: {e}"),
                });
                break;
            }
        }
    }
    let result = match spawn_error {
        Some(e) => Err(e),
        None => {
            while running.load(Ordering::Acquire) < FORK_THREADED_THREADS {
                thread::yield_now();
            }
            body()
        }
    };
    stop.store(true, Ordering::Release);
    for handle in threads {
        // A spinner cannot panic (it only writes its own array).
        let _ = handle.join();
    }
    let how = if yields {
        "yielding after each burst (they share CPUs)"
    } else {
        "spinning on CPUs of their own"
    };
    let note = format!("{FORK_THREADED_THREADS} busy threads on {cpus} CPU(s), {how}");
    result.map(|r| (r, note))
}

/// A spinner: writes its stack page until `stop`.
fn spin(stop: &AtomicBool, running: &AtomicUsize, yields: bool) {
    running.fetch_add(1, Ordering::Release);
    let mut page = [0u64; 512];
    let mut i = 0usize;
    while !stop.load(Ordering::Acquire) {
        for _ in 0..SPIN_BURST {
            let slot = &mut page[i % 512];
            // SAFETY: `slot` is a valid, aligned element of `page`; volatile
            // so the writes (the use of the address space) stay.
            unsafe { std::ptr::write_volatile(slot, i as u64) };
            i = i.wrapping_add(1);
        }
        if yields {
            thread::yield_now();
        }
    }
}
