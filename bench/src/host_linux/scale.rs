//! The host side of `forkbench scale`: K workers, processes or threads of
//! this process, each repeating one creating operation with the same
//! system calls as the latency measurement ([`super::fork_once`],
//! [`super::clone_vm_once`], [`super::clone_thread_once`]), counted over a
//! fixed time once all K exist, as the guest's `harnessd` does
//! (`forkvm_user::scale`).
//!
//! Process workers count into a shared mapping and are forked with a raw
//! `clone(SIGCHLD)`: in the child only system calls run (no allocation;
//! only a failing call would format its error, and the child then exits
//! at once).

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use forkvm_protocol::ScaleMode;

use super::{
    clone_thread_once, clone_vm_once, fork_once, raw_clone, reap, HostError, Mapping, Tls,
};
use super::{op_name, BenchOp};

/// What a run counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Operations completed by all workers in the timed interval.
    pub ops: u64,
    /// The interval.
    pub elapsed_ns: u64,
    /// The fewest operations one worker completed in it.
    pub min_worker_ops: u64,
    /// The most operations one worker completed in it.
    pub max_worker_ops: u64,
}

/// Whether `op` can be repeated by scale workers.
pub fn scalable(op: BenchOp) -> bool {
    matches!(
        op,
        BenchOp::Fork | BenchOp::ForkMem | BenchOp::Vfork | BenchOp::CloneVm | BenchOp::CloneThread
    )
}

/// One worker's state: the child stack and TLS block its operation needs.
struct Repeater {
    op: BenchOp,
    stack: Mapping,
    tls: Box<Tls>,
}

impl Repeater {
    fn new(op: BenchOp) -> Result<Repeater, HostError> {
        Ok(Repeater {
            op,
            stack: Mapping::stack(op)?,
            tls: Tls::new(),
        })
    }

    /// One untimed operation.
    fn once(&mut self) -> Result<(), HostError> {
        let op = self.op;
        match op {
            BenchOp::Fork | BenchOp::ForkMem => fork_once(op, None),
            BenchOp::Vfork => clone_vm_once(
                op,
                &self.stack,
                libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            ),
            BenchOp::CloneVm => clone_vm_once(op, &self.stack, libc::CLONE_VM | libc::SIGCHLD),
            _ => clone_thread_once(op, &self.stack, &mut self.tls),
        }
        .map(drop)
    }

    /// Repeats until `stop`, storing the count in `done` after each.
    fn repeat(&mut self, stop: &AtomicBool, done: &AtomicU64) -> Result<(), HostError> {
        let mut count = 0;
        while !stop.load(Ordering::Relaxed) {
            self.once()?;
            count += 1;
            done.store(count, Ordering::Relaxed);
        }
        Ok(())
    }
}

/// A process worker's words in the shared mapping.
#[repr(C, align(64))]
struct Slot {
    done: AtomicU64,
    /// 0, or the errno of the call that failed (-1: not a system call).
    errno: AtomicI32,
}

/// The sum, least and most of the per-worker differences `after - before`.
pub fn tally(before: &[u64], after: &[u64]) -> (u64, u64, u64) {
    let diffs = before.iter().zip(after).map(|(b, a)| a.saturating_sub(*b));
    diffs.fold((0, u64::MAX, 0), |(sum, min, max), d| {
        (sum + d, min.min(d), max.max(d))
    })
}

/// Counts the workers' operations over `duration` once each has completed
/// one (as the guest's `scale` does; waiting at most ~10 s, in case one
/// failed); `done` gives their counts now.
fn count_over(duration: Duration, done: impl Fn() -> Vec<u64>) -> Counts {
    let warm_up = Instant::now();
    while done().contains(&0) && warm_up.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(1));
    }
    let start = Instant::now();
    let before = done();
    std::thread::sleep(duration);
    let after = done();
    let elapsed_ns = start.elapsed().as_nanos() as u64;
    let (ops, min, max) = tally(&before, &after);
    Counts {
        ops,
        elapsed_ns,
        min_worker_ops: min,
        max_worker_ops: max,
    }
}

/// Runs `workers` workers of `op` as `mode` says for `duration` once all
/// exist (`mem_mib` MiB touched first for `ForkMem`, shared copy-on-write
/// by process workers) and returns what they counted.
pub fn run(
    op: BenchOp,
    mode: ScaleMode,
    workers: usize,
    duration: Duration,
    mem_mib: usize,
) -> Result<Counts, String> {
    if !scalable(op) {
        return Err(format!("{} cannot be run by scale workers", op_name(op)));
    }
    if workers == 0 {
        return Err("no workers".to_string());
    }
    // The operations read the host clock, which calibrates itself on
    // first use (a sleep): not inside the timed interval.
    super::host_clock();
    let _touched = match op {
        BenchOp::ForkMem if mem_mib > 0 => {
            Some(Mapping::touched(op, mem_mib << 20).map_err(|e| e.to_string())?)
        }
        _ => None,
    };
    match mode {
        ScaleMode::Threads => run_threads(op, workers, duration),
        ScaleMode::Processes => run_processes(op, workers, duration),
    }
}

fn run_threads(op: BenchOp, workers: usize, duration: Duration) -> Result<Counts, String> {
    let stop = AtomicBool::new(false);
    let done: Vec<AtomicU64> = (0..workers).map(|_| AtomicU64::new(0)).collect();
    let started = AtomicU64::new(0);
    std::thread::scope(|scope| {
        let handles: Vec<_> = done
            .iter()
            .map(|done| {
                let (stop, started) = (&stop, &started);
                scope.spawn(move || {
                    let result = Repeater::new(op);
                    started.fetch_add(1, Ordering::Release);
                    result?.repeat(stop, done)
                })
            })
            .collect();
        while started.load(Ordering::Acquire) < workers as u64 {
            std::thread::yield_now();
        }
        let counts = count_over(duration, || {
            done.iter().map(|d| d.load(Ordering::Relaxed)).collect()
        });
        stop.store(true, Ordering::Relaxed);
        let mut failure = None;
        for handle in handles {
            match handle.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    failure.get_or_insert(e.to_string());
                }
                Err(_) => {
                    failure.get_or_insert("a worker thread panicked".to_string());
                }
            }
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(counts),
        }
    })
}

fn run_processes(op: BenchOp, workers: usize, duration: Duration) -> Result<Counts, String> {
    let len = std::mem::size_of::<Slot>() * (workers + 1);
    let shared = Mapping::new(op, len, libc::MAP_SHARED).map_err(|e| e.to_string())?;
    let stop = shared.addr.cast::<AtomicBool>();
    // SAFETY: the zero-filled, page-aligned mapping holds a stop flag and
    // then `workers` slots (all zero bits: valid atomics), each 64-byte
    // aligned; it outlives every worker (all are reaped below).
    let (stop, slots) = unsafe {
        let first = shared.addr.cast::<Slot>().add(1);
        (&*stop, std::slice::from_raw_parts(first, workers))
    };
    let mut repeater = Repeater::new(op).map_err(|e| e.to_string())?;
    let mut pids = Vec::with_capacity(workers);
    let mut failure = None;
    for slot in slots {
        // SAFETY: no CLONE_VM; the child runs the worker loop (system
        // calls and its own copy of the repeater) and _exits.
        let pid = unsafe { raw_clone(libc::SIGCHLD) };
        if pid == 0 {
            let status = match repeater.repeat(stop, &slot.done) {
                Ok(()) => 0,
                Err(HostError::Syscall { error, .. }) => {
                    slot.errno
                        .store(error.raw_os_error().unwrap_or(-1), Ordering::Relaxed);
                    1
                }
                Err(_) => {
                    slot.errno.store(-1, Ordering::Relaxed);
                    1
                }
            };
            // SAFETY: leaving the worker without running the parent's
            // destructors or exit handlers.
            unsafe { libc::_exit(status) };
        }
        if pid < 0 {
            failure = Some(format!(
                "{}: forking a worker: {}",
                op_name(op),
                std::io::Error::last_os_error()
            ));
            break;
        }
        pids.push(pid as libc::pid_t);
    }
    let counts = match failure {
        None => count_over(duration, || {
            slots
                .iter()
                .map(|s| s.done.load(Ordering::Relaxed))
                .collect()
        }),
        Some(_) => Counts::default(),
    };
    stop.store(true, Ordering::Relaxed);
    for (pid, slot) in pids.into_iter().zip(slots) {
        let reaped = reap(op, pid);
        let errno = slot.errno.load(Ordering::Relaxed);
        if errno != 0 {
            failure.get_or_insert(format!(
                "{}: a worker failed: {}",
                op_name(op),
                std::io::Error::from_raw_os_error(errno)
            ));
        }
        if let Err(e) = reaped {
            failure.get_or_insert(e.to_string());
        }
    }
    drop(repeater);
    match failure {
        Some(e) => Err(e),
        None => Ok(counts),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tally_sums_the_differences() {
        assert_eq!(tally(&[1, 10, 5], &[4, 30, 5]), (23, 0, 20));
    }

    #[test]
    fn every_worker_counts() {
        for mode in ScaleMode::ALL {
            for op in [
                BenchOp::Fork,
                BenchOp::Vfork,
                BenchOp::CloneThread,
                BenchOp::CloneVm,
            ] {
                let counts = run(op, mode, 2, Duration::from_millis(50), 0).unwrap();
                assert!(counts.min_worker_ops > 0, "{op:?} {mode:?} {counts:?}");
                assert!(counts.ops >= 2 * counts.min_worker_ops);
                assert!(counts.elapsed_ns >= 50_000_000);
            }
        }
        let counts = run(
            BenchOp::ForkMem,
            ScaleMode::Processes,
            1,
            Duration::from_millis(20),
            1,
        );
        assert!(counts.unwrap().ops > 0);
        assert!(run(
            BenchOp::CloneEinval,
            ScaleMode::Threads,
            1,
            Duration::ZERO,
            0
        )
        .is_err());
    }
}
