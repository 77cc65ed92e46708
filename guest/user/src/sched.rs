//! Scheduling policy and nice: the Linux x86-64 system calls behind the
//! shell's `nice`, `chrt` and `renice` and proctest's `sched` scenarios.
//!
//! - `sched_setscheduler`(144) / `sched_getscheduler`(145),
//!   `sched_setparam`(142) / `sched_getparam`(143): policy and
//!   `struct sched_param { int sched_priority; }`.
//! - `sched_setattr`(314) / `sched_getattr`(315): `struct sched_attr`
//!   (56 bytes today, 48 in its first version).
//! - `sched_get_priority_max`(146) / `_min`(147), `sched_rr_get_interval`(148).
//! - `setpriority`(141) / `getpriority`(140): nice values; `getpriority`
//!   returns `20 - nice` (1..40) so that no result is negative.

use crate::errno::Errno;
use crate::syscall::{check, syscall1, syscall2, syscall3, syscall4};

use crate::syscall::nr;

/// `sched_setaffinity(pid, len, mask)` with a raw mask pointer (which may
/// be bad: the kernel reads `len` bytes, at most its mask's size).
pub fn sched_setaffinity_raw(pid: i32, len: usize, mask: usize) -> Result<(), Errno> {
    // SAFETY: the kernel only reads user memory and checks the pointer.
    check(unsafe { syscall3(nr::SCHED_SETAFFINITY, pid as usize, len, mask) }).map(|_| ())
}

/// `sched_setaffinity(pid, 8, &mask)`: CPUs 0..63.
pub fn sched_setaffinity(pid: i32, mask: u64) -> Result<(), Errno> {
    sched_setaffinity_raw(pid, 8, &mask as *const u64 as usize)
}

/// `sched_getaffinity(pid, len, mask)` with a raw buffer; returns the
/// bytes the kernel stored (its mask's size, at most `len`).
pub fn sched_getaffinity_raw(pid: i32, len: usize, mask: usize) -> Result<usize, Errno> {
    // SAFETY: the kernel writes at most `len` bytes and checks the pointer.
    check(unsafe { syscall3(nr::SCHED_GETAFFINITY, pid as usize, len, mask) })
}

/// `sched_getaffinity` of CPUs 0..63 (a 128-byte buffer, the first word).
pub fn sched_getaffinity(pid: i32) -> Result<u64, Errno> {
    let mut mask = [0u64; 16];
    sched_getaffinity_raw(pid, 128, mask.as_mut_ptr() as usize)?;
    Ok(mask[0])
}

/// `getcpu(&cpu, &node, NULL)`: the CPU and NUMA node the caller runs on.
pub fn getcpu() -> Result<(u32, u32), Errno> {
    let (mut cpu, mut node) = (0u32, 0u32);
    // SAFETY: the kernel writes one u32 into each live local.
    check(unsafe {
        syscall3(
            nr::GETCPU,
            &mut cpu as *mut u32 as usize,
            &mut node as *mut u32 as usize,
            0,
        )
    })?;
    Ok((cpu, node))
}

/// `SCHED_OTHER`: the default, fair policy.
pub const SCHED_NORMAL: i32 = 0;
/// First in, first out real-time policy.
pub const SCHED_FIFO: i32 = 1;
/// Round-robin real-time policy.
pub const SCHED_RR: i32 = 2;
/// Fair policy for batch work.
pub const SCHED_BATCH: i32 = 3;
/// Fair policy below nice 19.
pub const SCHED_IDLE: i32 = 5;
/// Earliest-deadline-first policy.
pub const SCHED_DEADLINE: i32 = 6;
/// Or'ed into `sched_setscheduler`'s policy: children do not inherit a
/// real-time policy or a negative nice.
pub const SCHED_RESET_ON_FORK: i32 = 0x4000_0000;
/// `sched_attr.sched_flags`: the same as [`SCHED_RESET_ON_FORK`].
pub const SCHED_FLAG_RESET_ON_FORK: u64 = 0x01;
/// `sched_attr.sched_flags`: keep the policy, change the parameters.
pub const SCHED_FLAG_KEEP_POLICY: u64 = 0x08;
/// `sched_attr.sched_flags`: keep the parameters, change the policy.
pub const SCHED_FLAG_KEEP_PARAMS: u64 = 0x10;
/// `sched_attr.sched_flags`: utilization clamping (minimum).
pub const SCHED_FLAG_UTIL_CLAMP_MIN: u64 = 0x20;

/// `setpriority`'s `which`: one thread (0: the caller).
pub const PRIO_PROCESS: i32 = 0;
/// `setpriority`'s `which`: a process group (0: the caller's).
pub const PRIO_PGRP: i32 = 1;
/// `setpriority`'s `which`: a real user id (0: the caller's).
pub const PRIO_USER: i32 = 2;

/// `RLIMIT_NICE`: the lowest nice value allowed, as `20 - nice`.
pub const RLIMIT_NICE: u32 = 13;
/// `RLIMIT_RTPRIO`: the highest real-time priority allowed.
pub const RLIMIT_RTPRIO: u32 = 14;

/// `struct sched_attr` (`SCHED_ATTR_SIZE_VER1`, 56 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchedAttr {
    /// Size of the structure the caller passes (0: the first version, 48).
    pub size: u32,
    /// The policy.
    pub sched_policy: u32,
    /// `SCHED_FLAG_*`.
    pub sched_flags: u64,
    /// Nice value (fair policies).
    pub sched_nice: i32,
    /// Real-time priority (SCHED_FIFO, SCHED_RR).
    pub sched_priority: u32,
    /// SCHED_DEADLINE runtime, or a fair task's slice, in ns.
    pub sched_runtime: u64,
    /// SCHED_DEADLINE relative deadline, ns.
    pub sched_deadline: u64,
    /// SCHED_DEADLINE period, ns.
    pub sched_period: u64,
    /// Utilization clamp, minimum.
    pub sched_util_min: u32,
    /// Utilization clamp, maximum.
    pub sched_util_max: u32,
}

/// `sched_setscheduler(pid, policy, &{priority})`.
pub fn sched_setscheduler(pid: i32, policy: i32, priority: i32) -> Result<(), Errno> {
    // SAFETY: the kernel reads one int from the live local.
    check(unsafe {
        syscall3(
            nr::SCHED_SETSCHEDULER,
            pid as usize,
            policy as usize,
            &priority as *const i32 as usize,
        )
    })
    .map(drop)
}

/// `sched_getscheduler(pid)`: the policy, with [`SCHED_RESET_ON_FORK`].
pub fn sched_getscheduler(pid: i32) -> Result<i32, Errno> {
    // SAFETY: touches no memory.
    check(unsafe { syscall1(nr::SCHED_GETSCHEDULER, pid as usize) }).map(|v| v as i32)
}

/// `sched_setparam(pid, &{priority})`.
pub fn sched_setparam(pid: i32, priority: i32) -> Result<(), Errno> {
    // SAFETY: the kernel reads one int from the live local.
    check(unsafe {
        syscall2(
            nr::SCHED_SETPARAM,
            pid as usize,
            &priority as *const i32 as usize,
        )
    })
    .map(drop)
}

/// `sched_getparam(pid, &priority)`.
pub fn sched_getparam(pid: i32) -> Result<i32, Errno> {
    let mut priority = -1i32;
    // SAFETY: the kernel writes one int into the live local.
    check(unsafe {
        syscall2(
            nr::SCHED_GETPARAM,
            pid as usize,
            &mut priority as *mut i32 as usize,
        )
    })?;
    Ok(priority)
}

/// `sched_setattr(pid, attr, 0)`.
pub fn sched_setattr(pid: i32, attr: &SchedAttr) -> Result<(), Errno> {
    // SAFETY: the kernel reads at most `attr.size` (at most 56: the
    // structure's own size, or it reads 56 and finds nothing beyond) bytes.
    check(unsafe {
        syscall3(
            nr::SCHED_SETATTR,
            pid as usize,
            attr as *const SchedAttr as usize,
            0,
        )
    })
    .map(drop)
}

/// `sched_getattr(pid, attr, size_of::<SchedAttr>(), 0)`.
pub fn sched_getattr(pid: i32) -> Result<SchedAttr, Errno> {
    let mut attr = SchedAttr::default();
    // SAFETY: the kernel writes at most 56 bytes into the live local.
    check(unsafe {
        syscall4(
            nr::SCHED_GETATTR,
            pid as usize,
            &mut attr as *mut SchedAttr as usize,
            core::mem::size_of::<SchedAttr>(),
            0,
        )
    })?;
    Ok(attr)
}

/// `sched_get_priority_max(policy)`.
pub fn sched_get_priority_max(policy: i32) -> Result<i32, Errno> {
    // SAFETY: touches no memory.
    check(unsafe { syscall1(nr::SCHED_GET_PRIORITY_MAX, policy as usize) }).map(|v| v as i32)
}

/// `sched_get_priority_min(policy)`.
pub fn sched_get_priority_min(policy: i32) -> Result<i32, Errno> {
    // SAFETY: touches no memory.
    check(unsafe { syscall1(nr::SCHED_GET_PRIORITY_MIN, policy as usize) }).map(|v| v as i32)
}

/// `sched_rr_get_interval(pid, &ts)` in nanoseconds.
pub fn sched_rr_get_interval(pid: i32) -> Result<u64, Errno> {
    let mut ts = [0u64; 2];
    // SAFETY: the kernel writes one struct timespec into the live local.
    check(unsafe {
        syscall2(
            nr::SCHED_RR_GET_INTERVAL,
            pid as usize,
            ts.as_mut_ptr() as usize,
        )
    })?;
    Ok(ts[0] * 1_000_000_000 + ts[1])
}

/// `setpriority(which, who, nice)`.
pub fn setpriority(which: i32, who: i32, nice: i32) -> Result<(), Errno> {
    // SAFETY: touches no memory.
    check(unsafe { syscall3(nr::SETPRIORITY, which as usize, who as usize, nice as usize) })
        .map(drop)
}

/// `getpriority(which, who)`, raw: `20 - nice` of the highest priority.
pub fn getpriority(which: i32, who: i32) -> Result<i32, Errno> {
    // SAFETY: touches no memory.
    check(unsafe { syscall2(nr::GETPRIORITY, which as usize, who as usize) }).map(|v| v as i32)
}

/// The nice value of thread `pid` (0: the caller), `20 - getpriority`.
pub fn nice_of(pid: i32) -> Result<i32, Errno> {
    getpriority(PRIO_PROCESS, pid).map(|v| 20 - v)
}
