//! The host side of the ping-pong operations (context-switch latency,
//! lmbench `lat_ctx`/`lat_pipe` style), as the guest runs them
//! (`forkvm_user::pingpong`): a forked child and this process hand control
//! back and forth, and one round trip is one sample.
//!
//! Both processes are pinned to the CPU this thread is on, so that a
//! `sched_yield` hands the CPU to the other process (on two CPUs each
//! would spin on its own and no switch would be measured); the previous
//! affinity is put back afterwards. The forked child only makes system
//! calls (it must not allocate: the parent may have other threads).

use std::sync::atomic::{AtomicU32, Ordering};

use super::{clock_end, clock_start, reap, BenchOp, HostError, Mapping, Params};

const IDLE: u32 = 0;
const PING: u32 = 1;
const PONG: u32 = 2;
const STOP: u32 = 3;

/// Runs `params.warmup + params.iters` round trips of `op` (one of the
/// ping-pongs); returns the measured ones and a note on how they ran.
pub(super) fn run(op: BenchOp, params: Params) -> Result<(Vec<u64>, String), HostError> {
    let pinned = PinnedToThisCpu::new(op)?;
    let samples = match op {
        BenchOp::YieldPingPong => yield_ping_pong(op, params)?,
        _ => pipe_ping_pong(op, params)?,
    };
    Ok((samples, format!("both processes on CPU {}", pinned.cpu)))
}

/// Times each round trip of `round`, keeping the ones after the warm-up.
fn timed(
    params: Params,
    mut round: impl FnMut() -> Result<(), HostError>,
) -> Result<Vec<u64>, HostError> {
    let mut samples = Vec::with_capacity(params.iters);
    for i in 0..params.warmup + params.iters {
        let start = clock_start();
        round()?;
        let end = clock_end();
        if i >= params.warmup {
            samples.push(end - start);
        }
    }
    Ok(samples)
}

fn yield_ping_pong(op: BenchOp, params: Params) -> Result<Vec<u64>, HostError> {
    let page = Mapping::new(op, 4096, libc::MAP_SHARED)?;
    // SAFETY: the page is zeroed, aligned, shared with the child, lives
    // until after the child is reaped, and is only accessed atomically.
    let turn = unsafe { AtomicU32::from_ptr(page.addr.cast()) };
    // SAFETY: the child only loads and stores the shared word, yields and
    // exits.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        loop {
            match turn.load(Ordering::Acquire) {
                PING => turn.store(PONG, Ordering::Release),
                // SAFETY: leaving the child without running the parent's
                // exit handlers.
                STOP => unsafe { libc::_exit(0) },
                // SAFETY: no arguments.
                _ => unsafe {
                    libc::sched_yield();
                },
            }
        }
    }
    if pid < 0 {
        return Err(HostError::last(op, "fork"));
    }
    turn.store(IDLE, Ordering::Release);
    let samples = timed(params, || {
        turn.store(PING, Ordering::Release);
        while turn.load(Ordering::Acquire) != PONG {
            // SAFETY: no arguments.
            unsafe { libc::sched_yield() };
        }
        Ok(())
    });
    turn.store(STOP, Ordering::Release);
    reap(op, pid)?;
    samples
}

/// A pipe's two ends, closed on drop.
struct Pipe([libc::c_int; 2]);

impl Pipe {
    fn new(op: BenchOp) -> Result<Pipe, HostError> {
        let mut fds = [-1; 2];
        // SAFETY: `fds` is two writable ints.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(HostError::last(op, "pipe2"));
        }
        Ok(Pipe(fds))
    }

    fn close_end(&mut self, end: usize) {
        if self.0[end] >= 0 {
            // SAFETY: our descriptor, closed once.
            unsafe { libc::close(self.0[end]) };
            self.0[end] = -1;
        }
    }
}

impl Drop for Pipe {
    fn drop(&mut self) {
        self.close_end(0);
        self.close_end(1);
    }
}

fn pipe_ping_pong(op: BenchOp, params: Params) -> Result<Vec<u64>, HostError> {
    let mut ping = Pipe::new(op)?;
    let pong = Pipe::new(op)?;
    // SAFETY: the child only reads, writes and exits.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let mut byte = 0u8;
        // SAFETY: the child's own copies of the descriptors and `byte`.
        unsafe {
            libc::close(ping.0[1]);
            while libc::read(ping.0[0], (&raw mut byte).cast(), 1) == 1 {
                if libc::write(pong.0[1], (&raw const byte).cast(), 1) != 1 {
                    libc::_exit(1);
                }
            }
            libc::_exit(0)
        }
    }
    if pid < 0 {
        return Err(HostError::last(op, "fork"));
    }
    let mut byte = 0u8;
    let samples = timed(params, || {
        // SAFETY: our descriptors and a live byte.
        let (wrote, read) = unsafe {
            (
                libc::write(ping.0[1], (&raw const byte).cast(), 1),
                libc::read(pong.0[0], (&raw mut byte).cast(), 1),
            )
        };
        match (wrote, read) {
            (1, 1) => Ok(()),
            (1, _) => Err(HostError::last(op, "read(pipe)")),
            _ => Err(HostError::last(op, "write(pipe)")),
        }
    });
    // The child reads end of file and exits.
    ping.close_end(1);
    reap(op, pid)?;
    samples
}

/// This thread pinned to the CPU it runs on, until dropped.
struct PinnedToThisCpu {
    cpu: usize,
    previous: libc::cpu_set_t,
}

impl PinnedToThisCpu {
    fn new(op: BenchOp) -> Result<PinnedToThisCpu, HostError> {
        // SAFETY: an all-zero cpu_set_t is an empty set.
        let mut previous: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        let size = std::mem::size_of::<libc::cpu_set_t>();
        // SAFETY: `previous` is a writable set of `size` bytes.
        if unsafe { libc::sched_getaffinity(0, size, &mut previous) } != 0 {
            return Err(HostError::last(op, "sched_getaffinity"));
        }
        // SAFETY: no arguments.
        let cpu = unsafe { libc::sched_getcpu() };
        if cpu < 0 {
            return Err(HostError::last(op, "sched_getcpu"));
        }
        // SAFETY: as above.
        let mut one: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: `cpu` is a CPU number the kernel gave, inside the set.
        unsafe { libc::CPU_SET(cpu as usize, &mut one) };
        // SAFETY: `one` is a valid set of `size` bytes.
        if unsafe { libc::sched_setaffinity(0, size, &one) } != 0 {
            return Err(HostError::last(op, "sched_setaffinity"));
        }
        Ok(PinnedToThisCpu {
            cpu: cpu as usize,
            previous,
        })
    }
}

impl Drop for PinnedToThisCpu {
    fn drop(&mut self) {
        let size = std::mem::size_of::<libc::cpu_set_t>();
        // SAFETY: `previous` is the valid set read in `new`.
        unsafe { libc::sched_setaffinity(0, size, &self.previous) };
    }
}
