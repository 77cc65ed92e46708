//! `nanosleep`, `clock_nanosleep`, `clock_gettime`, `gettimeofday` and
//! `time`, on the TSC.

use super::{current_mm, Args, SysResult};
use crate::errno::{EINTR, EINVAL, EOPNOTSUPP};
use crate::{sched, time};

const CLOCK_REALTIME: u64 = 0;
const CLOCK_MONOTONIC: u64 = 1;
const CLOCK_PROCESS_CPUTIME_ID: u64 = 2;
const CLOCK_THREAD_CPUTIME_ID: u64 = 3;
const CLOCK_MONOTONIC_RAW: u64 = 4;
const CLOCK_REALTIME_COARSE: u64 = 5;
const CLOCK_MONOTONIC_COARSE: u64 = 6;
const CLOCK_BOOTTIME: u64 = 7;

/// A `struct timespec` from user memory as (seconds, nanoseconds), not
/// validated (EFAULT for a bad pointer).
pub(super) fn read_raw_timespec(address: u64) -> Result<(i64, i64), i32> {
    let mut bytes = [0u8; 16];
    current_mm()?
        .copy_from_user(address, &mut bytes)
        .map_err(|_| crate::errno::EFAULT)?;
    let seconds = i64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
    let nanoseconds = i64::from_le_bytes(bytes[8..].try_into().expect("8 bytes"));
    Ok((seconds, nanoseconds))
}

fn read_timespec(address: u64) -> Result<(u64, u64), i32> {
    let (seconds, nanoseconds) = read_raw_timespec(address)?;
    if seconds < 0 || !(0..1_000_000_000).contains(&nanoseconds) {
        return Err(EINVAL);
    }
    Ok((seconds as u64, nanoseconds as u64))
}

/// `nanosleep(req, rem)`. A signal ends it with EINTR and the time left
/// in `rem` (if not NULL). Linux returns ERESTART_RESTARTBLOCK, which
/// becomes EINTR whenever a handler runs; without a handler it would
/// resume the sleep through `restart_syscall`, which this kernel lacks:
/// here any interruption is EINTR.
pub fn nanosleep(a: Args) -> SysResult {
    let [request, remaining, ..] = a.0;
    let (seconds, nanoseconds) = read_timespec(request)?;
    let ns = seconds
        .saturating_mul(1_000_000_000)
        .saturating_add(nanoseconds);
    let left = sched::sleep_for_ns(ns);
    if left == 0 {
        return Ok(0);
    }
    if remaining != 0 {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&(left / 1_000_000_000).to_le_bytes());
        bytes[8..].copy_from_slice(&(left % 1_000_000_000).to_le_bytes());
        current_mm()?.copy_to_user(remaining, &bytes)?;
    }
    Err(EINTR)
}

/// `clock_nanosleep(clock, flags, req, rem)`: `nanosleep` on a chosen
/// clock, relative or (`TIMER_ABSTIME`) until the clock reads `req`. As on
/// Linux: the clocks that can time a sleep are REALTIME, MONOTONIC and
/// BOOTTIME (all count from boot here: no wall clock); the raw, coarse
/// and thread CPU-time clocks have no sleep (EOPNOTSUPP); other ids are
/// EINVAL. Sleeping until the process's CPU time reaches a value
/// (Linux's `posix_cpu_nsleep`) is not built: EOPNOTSUPP. `rem` is
/// written only for an interrupted relative sleep. Unknown flag bits are
/// ignored, as Linux does.
pub fn clock_nanosleep(a: Args) -> SysResult {
    const TIMER_ABSTIME: u64 = 1;
    let [clock, flags, request, remaining, ..] = a.0;
    match clock {
        CLOCK_REALTIME | CLOCK_MONOTONIC | CLOCK_BOOTTIME => {}
        CLOCK_MONOTONIC_RAW
        | CLOCK_REALTIME_COARSE
        | CLOCK_MONOTONIC_COARSE
        | CLOCK_THREAD_CPUTIME_ID => return Err(EOPNOTSUPP),
        CLOCK_PROCESS_CPUTIME_ID => return Err(EOPNOTSUPP),
        _ => return Err(EINVAL),
    }
    let (seconds, nanoseconds) = read_timespec(request)?;
    let requested = seconds
        .saturating_mul(1_000_000_000)
        .saturating_add(nanoseconds);
    let absolute = flags & TIMER_ABSTIME != 0;
    let ns = if absolute {
        requested.saturating_sub(time::uptime_ns())
    } else {
        requested
    };
    let left = sched::sleep_for_ns(ns);
    if left == 0 {
        return Ok(0);
    }
    if remaining != 0 && !absolute {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&(left / 1_000_000_000).to_le_bytes());
        bytes[8..].copy_from_slice(&(left % 1_000_000_000).to_le_bytes());
        current_mm()?.copy_to_user(remaining, &bytes)?;
    }
    Err(EINTR)
}

pub fn clock_gettime(a: Args) -> SysResult {
    let [clock, address, ..] = a.0;
    match clock {
        CLOCK_REALTIME
        | CLOCK_MONOTONIC
        | CLOCK_PROCESS_CPUTIME_ID
        | CLOCK_THREAD_CPUTIME_ID
        | CLOCK_MONOTONIC_RAW
        | CLOCK_REALTIME_COARSE
        | CLOCK_MONOTONIC_COARSE
        | CLOCK_BOOTTIME => {}
        _ => return Err(EINVAL),
    }
    // The CPU-time clocks are the caller's process's and thread's
    // `sum_exec_runtime`; every other clock counts from boot (the guest
    // has no wall clock).
    let task = sched::current();
    let ns = match clock {
        CLOCK_PROCESS_CPUTIME_ID => {
            sched::cputime::group_totals(task.thread_group(), Some(&task)).runtime_ns()
        }
        CLOCK_THREAD_CPUTIME_ID => sched::cputime::thread_totals(&task).runtime_ns(),
        _ => time::uptime_ns(),
    };
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&(ns / 1_000_000_000).to_le_bytes());
    bytes[8..].copy_from_slice(&(ns % 1_000_000_000).to_le_bytes());
    current_mm()?.copy_to_user(address, &bytes)?;
    Ok(0)
}

/// `gettimeofday(tv, tz)`: CLOCK_REALTIME (which counts from boot here, as
/// `clock_gettime` says) in seconds and microseconds; either pointer may be
/// NULL. The time zone is Linux's default `sys_tz`, all zero (no
/// `settimeofday` here). EFAULT for a bad pointer.
pub fn gettimeofday(a: Args) -> SysResult {
    let [tv, tz, ..] = a.0;
    if tv != 0 {
        let ns = time::uptime_ns();
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&(ns / 1_000_000_000).to_le_bytes());
        bytes[8..].copy_from_slice(&(ns % 1_000_000_000 / 1_000).to_le_bytes());
        current_mm()?.copy_to_user(tv, &bytes)?;
    }
    if tz != 0 {
        // `struct timezone`: tz_minuteswest, tz_dsttime.
        current_mm()?.copy_to_user(tz, &[0u8; 8])?;
    }
    Ok(0)
}

/// `time(tloc)`: CLOCK_REALTIME's seconds, also stored at `tloc` unless
/// NULL (EFAULT for a bad pointer).
pub fn time(a: Args) -> SysResult {
    let seconds = time::uptime_ns() / 1_000_000_000;
    let tloc = a.0[0];
    if tloc != 0 {
        current_mm()?.copy_to_user(tloc, &seconds.to_le_bytes())?;
    }
    Ok(seconds)
}
