//! `alarm`, `getitimer` and `setitimer` (Linux `kernel/time/itimer.c`):
//! the checks, their order and the `struct itimerval` conversions; the
//! timers themselves are `time::itimer`.

use super::{current_mm, Args, SysResult};
use crate::errno::{EFAULT, EINVAL};
use crate::sched;
use crate::time::itimer::{self, ITimerSpec, ITIMER_REAL};

const NSEC_PER_SEC: u64 = 1_000_000_000;
const NSEC_PER_USEC: u64 = 1_000;
const USEC_PER_SEC: u64 = 1_000_000;

/// `struct itimerval` (x86-64): it_interval then it_value, each a
/// `struct timeval` of two longs.
const ITIMERVAL_SIZE: usize = 32;

/// A `struct timeval` as nanoseconds, if canonical (Linux `timeval_valid`:
/// seconds not negative, microseconds in 0..1e6 as an unsigned compare).
fn timeval_to_ns(seconds: i64, micros: i64) -> Option<u64> {
    if seconds < 0 || micros as u64 >= USEC_PER_SEC {
        return None;
    }
    // Saturated at Linux's KTIME_MAX, as `timespec64_to_ns` does.
    let ns = (seconds as u64)
        .saturating_mul(NSEC_PER_SEC)
        .saturating_add(micros as u64 * NSEC_PER_USEC);
    Some(ns.min(i64::MAX as u64))
}

/// Linux `ns_to_timespec64` then the timeval: the nanoseconds are a
/// signed 64-bit count, so a CPU timer's sum past KTIME_MAX reads back
/// negative, as on Linux.
fn timeval_bytes(ns: u64) -> [u8; 16] {
    let ns = ns as i64;
    let per_sec = NSEC_PER_SEC as i64;
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&ns.div_euclid(per_sec).to_le_bytes());
    let micros = ns.rem_euclid(per_sec) / NSEC_PER_USEC as i64;
    bytes[8..].copy_from_slice(&micros.to_le_bytes());
    bytes
}

/// Linux `put_itimerval`: nanoseconds truncated to microseconds.
fn put_itimerval(address: u64, spec: ITimerSpec) -> Result<(), i32> {
    let mut bytes = [0u8; ITIMERVAL_SIZE];
    bytes[..16].copy_from_slice(&timeval_bytes(spec.interval_ns));
    bytes[16..].copy_from_slice(&timeval_bytes(spec.value_ns));
    current_mm()?
        .copy_to_user(address, &bytes)
        .map_err(|_| EFAULT)
}

/// Linux `get_itimerval`: EFAULT, then EINVAL for a value or interval
/// that is not a canonical timeval.
fn get_itimerval(address: u64) -> Result<ITimerSpec, i32> {
    let mut bytes = [0u8; ITIMERVAL_SIZE];
    current_mm()?
        .copy_from_user(address, &mut bytes)
        .map_err(|_| EFAULT)?;
    let word = |i: usize| i64::from_le_bytes(bytes[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
    let interval_ns = timeval_to_ns(word(0), word(1)).ok_or(EINVAL)?;
    let value_ns = timeval_to_ns(word(2), word(3)).ok_or(EINVAL)?;
    Ok(ITimerSpec {
        value_ns,
        interval_ns,
    })
}

/// `which` is an `int`: the upper half of the register is ignored.
fn which(arg: u64) -> u64 {
    u64::from(arg as u32)
}

/// `getitimer(which, value)`: EINVAL for an unknown timer first, then
/// EFAULT (also for NULL).
pub fn getitimer(a: Args) -> SysResult {
    let [which_arg, value, ..] = a.0;
    let task = sched::current();
    let spec = itimer::get(task.thread_group(), which(which_arg))?;
    put_itimerval(value, spec)?;
    Ok(0)
}

/// `setitimer(which, value, ovalue)`: the new setting is read and checked
/// first (EFAULT, EINVAL; NULL means disarm, a misfeature Linux keeps),
/// then the timer (EINVAL); the old setting is written last, so a bad
/// `ovalue` is EFAULT with the timer set.
pub fn setitimer(a: Args) -> SysResult {
    let [which_arg, value, old_value, ..] = a.0;
    let new = if value != 0 {
        get_itimerval(value)?
    } else {
        ITimerSpec::default()
    };
    let task = sched::current();
    let old = itimer::set(task.thread_group(), which(which_arg), new)?;
    if old_value != 0 {
        put_itimerval(old_value, old)?;
    }
    Ok(0)
}

/// `alarm(seconds)`: ITIMER_REAL set to `seconds` (an `unsigned int`; 0
/// disarms), no interval. Returns the seconds the previous alarm had
/// left, rounded to the nearest second, but never 0 for an alarm still
/// pending (Linux `alarm_setitimer`).
pub fn alarm(a: Args) -> SysResult {
    let seconds = u64::from(a.0[0] as u32);
    let task = sched::current();
    let old = itimer::set(
        task.thread_group(),
        ITIMER_REAL,
        ITimerSpec {
            value_ns: seconds * NSEC_PER_SEC,
            interval_ns: 0,
        },
    )?;
    let mut left = old.value_ns / NSEC_PER_SEC;
    let nanos = old.value_ns % NSEC_PER_SEC;
    if (left == 0 && nanos != 0) || nanos >= NSEC_PER_SEC / 2 {
        left += 1;
    }
    Ok(left)
}
