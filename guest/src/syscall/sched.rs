//! Scheduling policy and priority calls (Linux kernel/sched/syscalls.c and
//! kernel/sys.c): `sched_setscheduler` 144, `sched_getscheduler` 145,
//! `sched_setparam` 142, `sched_getparam` 143, `sched_setattr` 314,
//! `sched_getattr` 315, `sched_get_priority_max` 146 / `_min` 147,
//! `sched_rr_get_interval` 148, `setpriority` 141, `getpriority` 140, with
//! Linux's checks in Linux's order. The attributes live in
//! `sched::attr`; a pid names a thread (Linux `find_task_by_vpid`), 0 the
//! caller.
//!
//! Not supported: SCHED_DEADLINE (valid parameters are refused with EPERM,
//! as Linux refuses them when the root domain has no deadline bandwidth;
//! invalid ones are EINVAL and an unprivileged caller's EPERM, as in
//! Linux) and utilization clamping (SCHED_FLAG_UTIL_CLAMP_*: EOPNOTSUPP,
//! Linux's answer without CONFIG_UCLAMP_TASK).

use alloc::sync::Arc;
use alloc::vec::Vec;

use super::{current_mm, Args, SysResult};
use crate::errno::{E2BIG, EACCES, EINVAL, EOPNOTSUPP, EPERM, ESRCH};
use crate::process::cred::{Cred, CAP_SYS_NICE};
use crate::process::pgrp;
use crate::process::task::Task;
use crate::sched;
use crate::sched::attr::{
    fair_policy, nice_to_rlimit, rt_policy, valid_policy, SchedAttr, MAX_NICE, MAX_RT_PRIO,
    MAX_SLICE_NS, MIN_NICE, MIN_SLICE_NS, SCHED_BATCH, SCHED_DEADLINE, SCHED_EXT, SCHED_FIFO,
    SCHED_IDLE, SCHED_NORMAL, SCHED_RESET_ON_FORK, SCHED_RR,
};

const RLIMIT_NICE: usize = 13;
const RLIMIT_RTPRIO: usize = 14;

const PRIO_PROCESS: i32 = 0;
const PRIO_PGRP: i32 = 1;
const PRIO_USER: i32 = 2;

/// `struct sched_attr` sizes: the first published one and today's.
const SCHED_ATTR_SIZE_VER0: u32 = 48;
const SCHED_ATTR_SIZE_VER1: u32 = 56;
const PAGE_SIZE: u32 = 4096;

const SCHED_FLAG_RESET_ON_FORK: u64 = 0x01;
const SCHED_FLAG_KEEP_POLICY: u64 = 0x08;
const SCHED_FLAG_KEEP_PARAMS: u64 = 0x10;
const SCHED_FLAG_UTIL_CLAMP: u64 = 0x20 | 0x40;
/// Every flag `sched_setattr` knows (`SCHED_FLAG_ALL`).
const SCHED_FLAG_ALL: u64 = 0x7f;
/// The kernel-internal schedutil flag, refused from user space.
const SCHED_FLAG_SUGOV: u64 = 0x1000_0000;

/// `sched_setparam`'s "keep the policy" (Linux `SETPARAM_POLICY`).
const SETPARAM_POLICY: i32 = -1;

/// Nanoseconds per jiffy (HZ 250, as the host's).
const JIFFY_NS: u64 = 1_000_000_000 / crate::time::TICK_HZ;

/// Linux `struct sched_attr` (x86-64 layout, 56 bytes).
#[derive(Clone, Copy, Default)]
struct UserSchedAttr {
    size: u32,
    policy: u32,
    flags: u64,
    nice: i32,
    priority: u32,
    runtime: u64,
    deadline: u64,
    period: u64,
    util_min: u32,
    util_max: u32,
}

impl UserSchedAttr {
    fn from_bytes(b: &[u8; 56]) -> UserSchedAttr {
        let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes"));
        let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"));
        UserSchedAttr {
            size: u32_at(0),
            policy: u32_at(4),
            flags: u64_at(8),
            nice: u32_at(16) as i32,
            priority: u32_at(20),
            runtime: u64_at(24),
            deadline: u64_at(32),
            period: u64_at(40),
            util_min: u32_at(48),
            util_max: u32_at(52),
        }
    }

    fn to_bytes(self) -> [u8; 56] {
        let mut b = [0u8; 56];
        b[0..4].copy_from_slice(&self.size.to_le_bytes());
        b[4..8].copy_from_slice(&self.policy.to_le_bytes());
        b[8..16].copy_from_slice(&self.flags.to_le_bytes());
        b[16..20].copy_from_slice(&self.nice.to_le_bytes());
        b[20..24].copy_from_slice(&self.priority.to_le_bytes());
        b[24..32].copy_from_slice(&self.runtime.to_le_bytes());
        b[32..40].copy_from_slice(&self.deadline.to_le_bytes());
        b[40..48].copy_from_slice(&self.period.to_le_bytes());
        b[48..52].copy_from_slice(&self.util_min.to_le_bytes());
        b[52..56].copy_from_slice(&self.util_max.to_le_bytes());
        b
    }
}

/// A request to change a task's policy: the policy (`SETPARAM_POLICY` to
/// keep it) and the fields of `struct sched_attr` that matter here.
struct Request {
    policy: i32,
    flags: u64,
    nice: i32,
    priority: u32,
    runtime: u64,
    deadline: u64,
    period: u64,
}

/// Linux `find_process_by_pid`: 0 is the caller, else the thread with
/// that id in the caller's pid namespace.
fn find_process_by_pid(pid: i32) -> Result<Arc<Task>, i32> {
    let current = sched::current();
    if pid == 0 {
        return Ok(current);
    }
    pgrp::find_task_by_vpid(&current.active_pid_ns(), pid as u32).ok_or(ESRCH)
}

fn caller_cred() -> Cred {
    sched::current().cred()
}

/// The soft limit `resource` of `task`'s process (Linux `task_rlimit`).
fn task_rlimit(task: &Task, resource: usize) -> u64 {
    task.thread_group().rlimits().0[resource].cur
}

/// Linux `is_nice_reduction`: RLIMIT_NICE allows `nice` for `task`.
fn is_nice_reduction(task: &Task, nice: i32) -> bool {
    nice_to_rlimit(nice) <= task_rlimit(task, RLIMIT_NICE)
}

/// Linux `can_nice`.
fn can_nice(task: &Task, nice: i32, caller: &Cred) -> bool {
    is_nice_reduction(task, nice) || caller.capable(CAP_SYS_NICE)
}

/// Linux `check_same_owner`: the caller's effective uid is the task's real
/// or effective uid.
fn check_same_owner(task: &Task, caller: &Cred) -> bool {
    let target = task.cred();
    caller.euid == target.euid || caller.euid == target.uid
}

/// Linux `__checkparam_dl`: runtime <= deadline <= period, each within
/// the limits (`sched_deadline_period_min_us` 100, `_max_us` 2^22).
fn checkparam_dl(req: &Request) -> bool {
    if req.deadline == 0 || req.runtime < 1 << 10 {
        return false;
    }
    if req.deadline & 1 << 63 != 0 || req.period & 1 << 63 != 0 {
        return false;
    }
    let period = if req.period == 0 {
        req.deadline
    } else {
        req.period
    };
    if period < req.deadline || req.deadline < req.runtime {
        return false;
    }
    (100_000..=(1u64 << 22) * 1000).contains(&period)
}

/// Linux `user_check_sched_setscheduler`: what an unprivileged caller may
/// not do without CAP_SYS_NICE (over the whole machine).
fn user_check(
    task: &Task,
    cur: &SchedAttr,
    req: &Request,
    policy: u32,
    reset: bool,
) -> Result<(), i32> {
    let caller = caller_cred();
    let needs_privilege = (fair_policy(policy) && req.nice < cur.nice && !is_nice_reduction(task, req.nice))
        || (rt_policy(policy) && {
            let rlim_rtprio = task_rlimit(task, RLIMIT_RTPRIO);
            (policy != cur.policy && rlim_rtprio == 0)
                || (u64::from(req.priority) > u64::from(cur.rt_priority)
                    && u64::from(req.priority) > rlim_rtprio)
        })
        || policy == SCHED_DEADLINE
        // SCHED_IDLE counts as nice 20: leaving it needs RLIMIT_NICE to
        // allow the nice value the task has.
        || (cur.policy == SCHED_IDLE && policy != SCHED_IDLE && !is_nice_reduction(task, cur.nice))
        || !check_same_owner(task, &caller)
        || (cur.reset_on_fork && !reset);
    if needs_privilege && !caller.capable(CAP_SYS_NICE) {
        return Err(EPERM);
    }
    Ok(())
}

/// Linux `__sched_setscheduler` for a user request, in its order.
fn sched_setscheduler_checked(task: &Arc<Task>, req: &Request) -> Result<(), i32> {
    let cur = task.sched().get();
    let (policy, reset) = if req.policy < 0 {
        (cur.policy, cur.reset_on_fork)
    } else {
        let policy = req.policy as u32;
        if !valid_policy(policy) {
            return Err(EINVAL);
        }
        (policy, req.flags & SCHED_FLAG_RESET_ON_FORK != 0)
    };
    if req.flags & !(SCHED_FLAG_ALL | SCHED_FLAG_SUGOV) != 0 {
        return Err(EINVAL);
    }
    if req.priority > MAX_RT_PRIO - 1 {
        return Err(EINVAL);
    }
    if (policy == SCHED_DEADLINE && !checkparam_dl(req)) || rt_policy(policy) != (req.priority != 0)
    {
        return Err(EINVAL);
    }
    user_check(task, &cur, req, policy, reset)?;
    if req.flags & SCHED_FLAG_SUGOV != 0 {
        return Err(EINVAL);
    }
    if req.flags & SCHED_FLAG_UTIL_CLAMP != 0 {
        return Err(EOPNOTSUPP);
    }
    // Nothing changes but perhaps the reset-on-fork flag.
    if policy == cur.policy {
        let changes = (fair_policy(policy) && (req.nice != cur.nice || req.runtime != cur.slice()))
            || (rt_policy(policy) && req.priority != cur.rt_priority);
        if !changes {
            task.sched().set(SchedAttr {
                reset_on_fork: reset,
                ..cur
            });
            return Ok(());
        }
    }
    if policy == SCHED_DEADLINE {
        // No deadline bandwidth to admit anything (see the module comment).
        return Err(EPERM);
    }
    // With KEEP_PARAMS Linux changes neither the parameters nor the
    // policy (`__setscheduler_params` is skipped): only the flag.
    if req.flags & SCHED_FLAG_KEEP_PARAMS != 0 {
        task.sched().set(SchedAttr {
            reset_on_fork: reset,
            ..cur
        });
        return Ok(());
    }
    let mut new = SchedAttr {
        policy,
        rt_priority: req.priority,
        reset_on_fork: reset,
        ..cur
    };
    if fair_policy(policy) {
        // Linux `__setparam_fair`.
        new.nice = req.nice;
        new.custom_slice = req.runtime != 0;
        new.slice_ns = if req.runtime != 0 {
            req.runtime.clamp(MIN_SLICE_NS, MAX_SLICE_NS)
        } else {
            0
        };
    }
    sched::set_sched_attr(task, new);
    Ok(())
}

/// Linux `do_sched_setscheduler` (`sched_setscheduler`, `sched_setparam`).
fn do_sched_setscheduler(pid: i32, policy: i32, param: u64) -> SysResult {
    if param == 0 || pid < 0 {
        return Err(EINVAL);
    }
    let mut bytes = [0u8; 4];
    current_mm()?.copy_from_user(param, &mut bytes)?;
    let priority = i32::from_le_bytes(bytes) as u32;
    let task = find_process_by_pid(pid)?;
    let cur = task.sched().get();
    let (policy, flags) = if policy != SETPARAM_POLICY && policy as u32 & SCHED_RESET_ON_FORK != 0 {
        (
            (policy as u32 & !SCHED_RESET_ON_FORK) as i32,
            SCHED_FLAG_RESET_ON_FORK,
        )
    } else {
        (policy, 0)
    };
    let req = Request {
        policy,
        flags,
        nice: cur.nice,
        priority,
        runtime: if cur.custom_slice { cur.slice_ns } else { 0 },
        deadline: 0,
        period: 0,
    };
    sched_setscheduler_checked(&task, &req).map(|()| 0)
}

pub fn sched_setscheduler(a: Args) -> SysResult {
    let policy = a.0[1] as i32;
    if policy < 0 {
        return Err(EINVAL);
    }
    do_sched_setscheduler(a.0[0] as i32, policy, a.0[2])
}

pub fn sched_setparam(a: Args) -> SysResult {
    do_sched_setscheduler(a.0[0] as i32, SETPARAM_POLICY, a.0[1])
}

/// Linux `sched_copy_attr`: the size field first (0 means the first
/// version), E2BIG with today's size written back for a size out of
/// range or a larger structure whose tail is not zero.
fn sched_copy_attr(uattr: u64) -> Result<UserSchedAttr, i32> {
    let mm = current_mm()?;
    let mut size_bytes = [0u8; 4];
    mm.copy_from_user(uattr, &mut size_bytes)?;
    let mut size = u32::from_le_bytes(size_bytes);
    if size == 0 {
        size = SCHED_ATTR_SIZE_VER0;
    }
    let too_big = || {
        let _ = mm.copy_to_user(uattr, &SCHED_ATTR_SIZE_VER1.to_le_bytes());
        Err(E2BIG)
    };
    if !(SCHED_ATTR_SIZE_VER0..=PAGE_SIZE).contains(&size) {
        return too_big();
    }
    // Linux `copy_struct_from_user`: a tail beyond what we know must be
    // zero.
    if size > SCHED_ATTR_SIZE_VER1 {
        let mut tail: Vec<u8> = alloc::vec![0; (size - SCHED_ATTR_SIZE_VER1) as usize];
        mm.copy_from_user(uattr + u64::from(SCHED_ATTR_SIZE_VER1), &mut tail)?;
        if tail.iter().any(|&b| b != 0) {
            return too_big();
        }
    }
    let mut bytes = [0u8; 56];
    let known = size.min(SCHED_ATTR_SIZE_VER1) as usize;
    mm.copy_from_user(uattr, &mut bytes[..known])?;
    let mut attr = UserSchedAttr::from_bytes(&bytes);
    if attr.flags & SCHED_FLAG_UTIL_CLAMP != 0 && size < SCHED_ATTR_SIZE_VER1 {
        return Err(EINVAL);
    }
    attr.nice = attr.nice.clamp(MIN_NICE, MAX_NICE);
    Ok(attr)
}

pub fn sched_setattr(a: Args) -> SysResult {
    let [pid, uattr, flags, ..] = a.0;
    let (pid, flags) = (pid as i32, flags as u32);
    if uattr == 0 || pid < 0 || flags != 0 {
        return Err(EINVAL);
    }
    let attr = sched_copy_attr(uattr)?;
    if (attr.policy as i32) < 0 {
        return Err(EINVAL);
    }
    let mut req = Request {
        policy: if attr.flags & SCHED_FLAG_KEEP_POLICY != 0 {
            SETPARAM_POLICY
        } else {
            attr.policy as i32
        },
        flags: attr.flags,
        nice: attr.nice,
        priority: attr.priority,
        runtime: attr.runtime,
        deadline: attr.deadline,
        period: attr.period,
    };
    let task = find_process_by_pid(pid)?;
    if attr.flags & SCHED_FLAG_KEEP_PARAMS != 0 {
        // Linux `get_params`.
        let cur = task.sched().get();
        if rt_policy(cur.policy) {
            req.priority = cur.rt_priority;
        } else {
            req.nice = cur.nice;
            req.runtime = cur.slice();
        }
    }
    sched_setscheduler_checked(&task, &req).map(|()| 0)
}

pub fn sched_getscheduler(a: Args) -> SysResult {
    let pid = a.0[0] as i32;
    if pid < 0 {
        return Err(EINVAL);
    }
    let attr = find_process_by_pid(pid)?.sched().get();
    let reset = if attr.reset_on_fork {
        SCHED_RESET_ON_FORK
    } else {
        0
    };
    Ok(u64::from(attr.policy | reset))
}

pub fn sched_getparam(a: Args) -> SysResult {
    let [pid, param, ..] = a.0;
    let pid = pid as i32;
    if param == 0 || pid < 0 {
        return Err(EINVAL);
    }
    let attr = find_process_by_pid(pid)?.sched().get();
    let priority = if rt_policy(attr.policy) {
        attr.rt_priority
    } else {
        0
    };
    current_mm()?.copy_to_user(param, &priority.to_le_bytes())?;
    Ok(0)
}

pub fn sched_getattr(a: Args) -> SysResult {
    let [pid, uattr, usize, flags, ..] = a.0;
    let (pid, usize, flags) = (pid as i32, usize as u32, flags as u32);
    let size_ok = (SCHED_ATTR_SIZE_VER0..=PAGE_SIZE).contains(&usize);
    if uattr == 0 || pid < 0 || !size_ok || flags != 0 {
        return Err(EINVAL);
    }
    let attr = find_process_by_pid(pid)?.sched().get();
    let mut out = UserSchedAttr {
        size: usize.min(SCHED_ATTR_SIZE_VER1),
        policy: attr.policy,
        flags: if attr.reset_on_fork {
            SCHED_FLAG_RESET_ON_FORK
        } else {
            0
        },
        ..Default::default()
    };
    if rt_policy(attr.policy) {
        out.priority = attr.rt_priority;
    } else {
        out.nice = attr.nice;
        out.runtime = attr.slice();
    }
    // Linux `copy_struct_to_user`: zero what the caller has beyond our
    // structure, then copy as much of it as the caller has room for.
    let mm = current_mm()?;
    if usize > SCHED_ATTR_SIZE_VER1 {
        let zeros: Vec<u8> = alloc::vec![0; (usize - SCHED_ATTR_SIZE_VER1) as usize];
        mm.copy_to_user(uattr + u64::from(SCHED_ATTR_SIZE_VER1), &zeros)?;
    }
    let bytes = out.to_bytes();
    mm.copy_to_user(uattr, &bytes[..usize.min(SCHED_ATTR_SIZE_VER1) as usize])?;
    Ok(0)
}

pub fn sched_get_priority_max(a: Args) -> SysResult {
    match a.0[0] as i32 as u32 {
        SCHED_FIFO | SCHED_RR => Ok(u64::from(MAX_RT_PRIO - 1)),
        SCHED_DEADLINE | SCHED_NORMAL | SCHED_BATCH | SCHED_IDLE | SCHED_EXT => Ok(0),
        _ => Err(EINVAL),
    }
}

pub fn sched_get_priority_min(a: Args) -> SysResult {
    match a.0[0] as i32 as u32 {
        SCHED_FIFO | SCHED_RR => Ok(1),
        SCHED_DEADLINE | SCHED_NORMAL | SCHED_BATCH | SCHED_IDLE | SCHED_EXT => Ok(0),
        _ => Err(EINVAL),
    }
}

/// The slice in whole jiffies: SCHED_RR's (`kernel.sched_rr_timeslice_ms`,
/// 100 ms by default), none (0: infinite) for SCHED_FIFO, the fair slice
/// rounded down to jiffies (0 for the default, `attr::base_slice_ns`: at
/// most 2.8 ms, less than a 4 ms jiffy, as on Linux with HZ 250).
pub fn sched_rr_get_interval(a: Args) -> SysResult {
    let [pid, interval, ..] = a.0;
    let pid = pid as i32;
    if pid < 0 {
        return Err(EINVAL);
    }
    let attr = find_process_by_pid(pid)?.sched().get();
    let jiffies = match attr.policy {
        SCHED_RR => sched::rr_timeslice(),
        SCHED_FIFO => 0,
        _ => attr.slice() / JIFFY_NS,
    };
    let ns = jiffies * JIFFY_NS;
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&(ns / 1_000_000_000).to_le_bytes());
    bytes[8..].copy_from_slice(&(ns % 1_000_000_000).to_le_bytes());
    current_mm()?.copy_to_user(interval, &bytes)?;
    Ok(0)
}

/// The threads `which`/`who` name (Linux's loops in `setpriority` and
/// `getpriority`): one thread, every thread of a process group's members,
/// or every thread of a real uid the caller's pid namespace sees.
fn prio_targets(which: i32, who: i32) -> Result<Vec<Arc<Task>>, i32> {
    let current = sched::current();
    let ns = current.active_pid_ns();
    Ok(match which {
        PRIO_PROCESS if who == 0 => alloc::vec![current],
        PRIO_PROCESS => pgrp::find_task_by_vpid(&ns, who as u32)
            .into_iter()
            .collect(),
        PRIO_PGRP => {
            let group = if who == 0 {
                pgrp::task_pgrp(&current)
            } else {
                pgrp::find_pgrp(&ns, who as u32)
            };
            group.map_or_else(Vec::new, |g| {
                g.pgrp_members()
                    .iter()
                    .flat_map(|member| member.threads())
                    .collect()
            })
        }
        PRIO_USER => {
            let cred = current.cred();
            let uid = if who == 0 {
                Some(cred.uid)
            } else {
                cred.make_kuid(who as u32)
            };
            let Some(uid) = uid else {
                return Ok(Vec::new());
            };
            ns.pids()
                .iter()
                .filter_map(|pid| pid.task())
                .filter(|task| task.real_uid() == uid)
                .collect()
        }
        _ => return Err(EINVAL),
    })
}

/// Linux `set_one_prio`: the caller must own the task (its real or
/// effective uid is the caller's effective uid) or hold CAP_SYS_NICE over
/// the task's user namespace (EPERM); lowering the nice value needs
/// RLIMIT_NICE or CAP_SYS_NICE (EACCES).
fn set_one_prio(task: &Arc<Task>, nice: i32, caller: &Cred) -> Result<(), i32> {
    let Cred {
        uid, euid, user_ns, ..
    } = task.cred();
    if uid != caller.euid && euid != caller.euid && !caller.ns_capable(&user_ns, CAP_SYS_NICE) {
        return Err(EPERM);
    }
    let cur = task.sched().get();
    if nice < cur.nice && !can_nice(task, nice, caller) {
        return Err(EACCES);
    }
    // Linux `set_user_nice`: also kept under a real-time policy; a fair
    // task is re-weighted where it runs or waits.
    sched::set_sched_attr(task, SchedAttr { nice, ..cur });
    Ok(())
}

pub fn setpriority(a: Args) -> SysResult {
    let [which, who, nice, ..] = a.0;
    let (which, who, nice) = (which as i32, who as i32, nice as i32);
    if !(PRIO_PROCESS..=PRIO_USER).contains(&which) {
        return Err(EINVAL);
    }
    let nice = nice.clamp(MIN_NICE, MAX_NICE);
    let tasks = prio_targets(which, who)?;
    let caller = caller_cred();
    // Linux's result: the last failure, else 0, else ESRCH for no task.
    let mut result = Err(ESRCH);
    for task in &tasks {
        match set_one_prio(task, nice, &caller) {
            Err(e) => result = Err(e),
            Ok(()) if result == Err(ESRCH) => result = Ok(0),
            Ok(()) => {}
        }
    }
    result
}

/// The highest priority (lowest nice) among the tasks, as 40..1 (20 -
/// nice), so that no valid result is negative.
pub fn getpriority(a: Args) -> SysResult {
    let [which, who, ..] = a.0;
    let (which, who) = (which as i32, who as i32);
    if !(PRIO_PROCESS..=PRIO_USER).contains(&which) {
        return Err(EINVAL);
    }
    prio_targets(which, who)?
        .iter()
        .map(|task| nice_to_rlimit(task.sched().get().nice))
        .max()
        .ok_or(ESRCH)
}
