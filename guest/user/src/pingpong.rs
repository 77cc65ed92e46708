//! Context-switch latency, lmbench `lat_ctx`/`lat_pipe` style: two
//! processes hand control back and forth and one round trip is timed in
//! user mode with the TSC.
//!
//! - `yield-pingpong`: the parent sets a shared word to PING and calls
//!   `sched_yield` until the child has answered PONG; the child yields
//!   until it sees PING. On one CPU a round trip is two yields, each a
//!   switch to the other process (its address space included).
//! - `pipe-pingpong`: the parent writes one byte into a pipe and reads the
//!   child's answer from a second pipe; the child reads and writes back.
//!   A round trip is two writes, two reads, two sleeps and two wake-ups.
//!
//! Both need the two processes on one CPU to measure switches (on several
//! CPUs the yielding version measures two spinning processes instead): the
//! guest has one, the host reference pins itself first.

use core::sync::atomic::{AtomicU32, Ordering};

use crate::latency::Error;
use crate::syscall::{
    close, exit, fork, mmap, munmap, pipe2, read, sched_yield, wait4, write, Pid, MAP_ANONYMOUS,
    MAP_SHARED, PROT_READ, PROT_WRITE,
};
use crate::time::rdtsc_serialized;

/// Which ping-pong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PingPong {
    /// `sched_yield` on a shared word.
    Yield,
    /// One byte each way through two pipes.
    Pipe,
}

/// Runs `warmup` unrecorded round trips, then one per element of `out`,
/// storing each one's TSC cycles. The child is reaped before returning.
pub fn sample(kind: PingPong, warmup: usize, out: &mut [u64]) -> Result<(), Error> {
    match kind {
        PingPong::Yield => yield_ping_pong(warmup, out),
        PingPong::Pipe => pipe_ping_pong(warmup, out),
    }
}

/// Times `rounds` round trips of `round`, keeping the ones after `warmup`.
fn timed(
    warmup: usize,
    out: &mut [u64],
    mut round: impl FnMut() -> Result<(), Error>,
) -> Result<(), Error> {
    for i in 0..warmup + out.len() {
        let start = rdtsc_serialized();
        round()?;
        let end = rdtsc_serialized();
        if let Some(slot) = i.checked_sub(warmup).and_then(|i| out.get_mut(i)) {
            *slot = end - start;
        }
    }
    Ok(())
}

/// Reaps `pid`, which must have exited with status 0.
fn reap(pid: Pid) -> Result<(), Error> {
    match wait4(pid as i32, 0) {
        Ok((_, status)) if status.exited() && status.exit_status() == 0 => Ok(()),
        Ok((_, status)) => Err(Error::Child(status)),
        Err(e) => Err(Error::Sys("wait4", e)),
    }
}

const PAGE: usize = 4096;
const IDLE: u32 = 0;
const PING: u32 = 1;
const PONG: u32 = 2;
const STOP: u32 = 3;

fn yield_ping_pong(warmup: usize, out: &mut [u64]) -> Result<(), Error> {
    // SAFETY: a fresh anonymous mapping; no existing memory is affected.
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
    .map_err(|e| Error::Sys("mmap(MAP_SHARED)", e))?;
    // SAFETY: the zeroed, aligned page lives until the munmap below, after
    // the child is reaped; it is only accessed atomically.
    let turn = unsafe { AtomicU32::from_ptr(page.cast()) };
    turn.store(IDLE, Ordering::Relaxed);
    let result = match fork() {
        Ok(0) => loop {
            match turn.load(Ordering::Acquire) {
                PING => turn.store(PONG, Ordering::Release),
                STOP => exit(0),
                _ => sched_yield(),
            }
        },
        Ok(pid) => {
            let timing = timed(warmup, out, || {
                turn.store(PING, Ordering::Release);
                while turn.load(Ordering::Acquire) != PONG {
                    sched_yield();
                }
                Ok(())
            });
            turn.store(STOP, Ordering::Release);
            reap(pid).and(timing)
        }
        Err(e) => Err(Error::Sys("fork", e)),
    };
    // SAFETY: ours; the child that shared it is gone.
    let _ = unsafe { munmap(page, PAGE) };
    result
}

fn pipe_ping_pong(warmup: usize, out: &mut [u64]) -> Result<(), Error> {
    let ping = pipe2(0).map_err(|e| Error::Sys("pipe2", e))?;
    let pong = match pipe2(0) {
        Ok(fds) => fds,
        Err(e) => {
            let _ = close(ping[0]);
            let _ = close(ping[1]);
            return Err(Error::Sys("pipe2", e));
        }
    };
    let result = match fork() {
        Ok(0) => {
            let _ = close(ping[1]);
            let _ = close(pong[0]);
            let mut byte = [0u8];
            // The parent closing its end ends the loop (read returns 0).
            while read(ping[0], &mut byte) == Ok(1) {
                if write(pong[1], &byte) != Ok(1) {
                    exit(1);
                }
            }
            exit(0)
        }
        Ok(pid) => {
            let mut byte = [0u8];
            let timing = timed(warmup, out, || {
                write(ping[1], b"p").map_err(|e| Error::Sys("write(pipe)", e))?;
                match read(pong[0], &mut byte) {
                    Ok(1) => Ok(()),
                    Ok(_) => Err(Error::Unexpected("read(pipe): end of file", None)),
                    Err(e) => Err(Error::Sys("read(pipe)", e)),
                }
            });
            let _ = close(ping[1]);
            reap(pid).and(timing)
        }
        Err(e) => {
            let _ = close(ping[1]);
            Err(Error::Sys("fork", e))
        }
    };
    for fd in [ping[0], pong[0], pong[1]] {
        let _ = close(fd);
    }
    result
}
