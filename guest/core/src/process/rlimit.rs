//! Resource limits (Linux `signal->rlim`), shared by the threads of a
//! process and inherited across fork; and the system-wide task limit
//! `max_threads` (`kernel.threads-max`).

use core::sync::atomic::{AtomicU64, Ordering};

/// Number of limits (`RLIM_NLIMITS`).
pub const RLIM_NLIMITS: usize = 16;
pub const RLIMIT_STACK: usize = 3;
pub const RLIMIT_NPROC: usize = 6;
pub const RLIMIT_NOFILE: usize = 7;
/// No limit.
pub const RLIM_INFINITY: u64 = u64::MAX;

/// Fewest tasks the system allows (`MIN_THREADS`).
pub const MIN_THREADS: u64 = 20;
/// Most tasks (`MAX_THREADS` = `FUTEX_TID_MASK`).
pub const MAX_THREADS: u64 = 0x3fff_ffff;

/// One limit: soft (`cur`) and hard (`max`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rlimit {
    pub cur: u64,
    pub max: u64,
}

/// All limits of a process.
#[derive(Clone, Copy, Debug)]
pub struct Rlimits(pub [Rlimit; RLIM_NLIMITS]);

impl Rlimits {
    /// Init's limits (Linux `INIT_RLIMITS`, with RLIMIT_NPROC set from
    /// `max_threads` as `fork_init` does).
    pub fn for_init(max_threads: u64) -> Rlimits {
        let unlimited = Rlimit {
            cur: RLIM_INFINITY,
            max: RLIM_INFINITY,
        };
        let mut limits = [unlimited; RLIM_NLIMITS];
        limits[RLIMIT_STACK] = Rlimit {
            cur: 8 << 20,
            max: RLIM_INFINITY,
        };
        limits[RLIMIT_NOFILE] = Rlimit {
            cur: 1024,
            max: 4096,
        };
        limits[RLIMIT_NPROC] = Rlimit {
            cur: max_threads / 2,
            max: max_threads / 2,
        };
        limits[8] = Rlimit {
            cur: 8 << 20,
            max: 8 << 20,
        }; // RLIMIT_MEMLOCK
        limits[10] = Rlimit {
            cur: RLIM_INFINITY,
            max: RLIM_INFINITY,
        }; // RLIMIT_LOCKS
        limits[11] = Rlimit {
            cur: max_threads / 2,
            max: max_threads / 2,
        }; // RLIMIT_SIGPENDING
        limits[12] = Rlimit {
            cur: 819_200,
            max: 819_200,
        }; // RLIMIT_MSGQUEUE
        limits[13] = Rlimit { cur: 0, max: 0 }; // RLIMIT_NICE
        limits[14] = Rlimit { cur: 0, max: 0 }; // RLIMIT_RTPRIO
        limits[4] = Rlimit {
            cur: 0,
            max: RLIM_INFINITY,
        }; // RLIMIT_CORE
        Rlimits(limits)
    }
}

/// `max_threads`: the most tasks the system runs at once.
static MAX_THREADS_NOW: AtomicU64 = AtomicU64::new(MIN_THREADS);

/// Linux `set_max_threads`: kernel stacks may use at most an eighth of
/// RAM, clamped to `MIN_THREADS..=MAX_THREADS`; here also no more tasks
/// than three quarters of the kernel heap hold at `task_heap_bytes` each
/// (Linux's task structs come from RAM, ours from a fixed heap).
pub fn compute_max_threads(
    ram_bytes: u64,
    kernel_stack_size: u64,
    heap_bytes: u64,
    task_heap_bytes: u64,
) -> u64 {
    let by_ram = ram_bytes / (kernel_stack_size * 8);
    let by_heap = heap_bytes / 4 * 3 / task_heap_bytes;
    by_ram.min(by_heap).clamp(MIN_THREADS, MAX_THREADS)
}

pub fn max_threads() -> u64 {
    MAX_THREADS_NOW.load(Ordering::Relaxed)
}

/// Sets `max_threads` (boot, and `kernel.threads-max`: 1..=MAX_THREADS).
pub fn set_max_threads(threads: u64) -> Result<(), i32> {
    if !(1..=MAX_THREADS).contains(&threads) {
        return Err(crate::errno::EINVAL);
    }
    MAX_THREADS_NOW.store(threads, Ordering::Relaxed);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_threads_like_linux() {
        // 256 MiB with 16 KiB stacks: 256 MiB / 128 KiB = 2048.
        const HEAP: u64 = 1 << 40;
        assert_eq!(compute_max_threads(256 << 20, 16 << 10, HEAP, 6144), 2048);
        assert_eq!(
            compute_max_threads(1 << 20, 16 << 10, HEAP, 6144),
            MIN_THREADS
        );
        assert_eq!(compute_max_threads(u64::MAX, 1, u64::MAX, 1), MAX_THREADS);
        // A small heap bounds it: 3/4 of 64 MiB at 6 KiB a task.
        assert_eq!(compute_max_threads(4 << 30, 16 << 10, 64 << 20, 6144), 8192);
        // The 256 MiB guest's 16 MiB heap holds Linux's 2048.
        assert_eq!(
            compute_max_threads(256 << 20, 16 << 10, 16 << 20, 6144),
            2048
        );
        let init = Rlimits::for_init(2048);
        assert_eq!(
            init.0[RLIMIT_NPROC],
            Rlimit {
                cur: 1024,
                max: 1024
            }
        );
    }
}
