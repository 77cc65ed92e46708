//! `setpgid`, `getpgid`, `getpgrp`, `setsid`, `getsid` (Linux
//! kernel/sys.c), with Linux's checks in Linux's order. Ids are the
//! caller's view: numbers in its pid namespace, 0 for a leader outside it.

use alloc::sync::Arc;

use super::{Args, SysResult};
use crate::errno::{EACCES, EINVAL, EPERM, ESRCH};
use crate::process::pgrp::{self, find_task_by_vpid, same};
use crate::process::pid_ns::{PidNamespace, PidNumbers};
use crate::process::task::Task;
use crate::sched;

/// `id` as the caller sees it (Linux `pid_vnr`).
fn vnr(id: &PidNumbers) -> u64 {
    let ns = sched::current().active_pid_ns();
    u64::from(id.nr_in(&ns).unwrap_or(0))
}

/// `setpgid(pid, pgid)`: moves process `pid` (0: the caller) into group
/// `pgid` of the caller's session (0: a new group led by `pid`).
pub fn setpgid(a: Args) -> SysResult {
    let current = sched::current();
    let ns = current.active_pid_ns();
    let session = pgrp::task_session(&current).ok_or(ESRCH)?;
    let mut pid = a.0[0] as i32;
    let mut pgid = a.0[1] as i32;
    if pid == 0 {
        pid = current.tgid_in(&ns) as i32;
    }
    if pgid == 0 {
        pgid = pid;
    }
    if pgid < 0 {
        return Err(EINVAL);
    }
    let _changing = pgrp::CHANGE_LOCK.lock();

    let target = find_task(&ns, pid)?;
    if !target.is_group_leader() {
        return Err(EINVAL);
    }
    let target_group = target.thread_group().clone();
    let (target_session, target_leads_session) = match target_group.ids().as_ref() {
        Some(ids) => (ids.session.clone(), ids.leader),
        None => return Err(ESRCH),
    };
    let parent_tgid = target.parent().map(|p| p.tgid);
    if parent_tgid == Some(current.tgid) {
        // One of the caller's children: only in the caller's session, and
        // only until it execs.
        if !same(&target_session, &session) {
            return Err(EPERM);
        }
        if !target.forked_without_exec() {
            return Err(EACCES);
        }
    } else if target.tgid != current.tgid {
        return Err(ESRCH);
    }
    if target_leads_session {
        return Err(EPERM);
    }

    let group: Arc<PidNumbers> = if pgid == pid {
        // A group led by the target itself.
        target_group.pids().cloned().ok_or(ESRCH)?
    } else {
        // An existing group, in the caller's session.
        let existing = pgrp::find_pgrp(&ns, pgid as u32).ok_or(EPERM)?;
        let in_session = existing
            .pgrp_members()
            .iter()
            .any(|member| member.session().is_some_and(|s| same(&s, &session)));
        if !in_session {
            return Err(EPERM);
        }
        existing
    };
    target_group.change_pgrp(&group, None);
    Ok(0)
}

/// The thread or process `pid` names in `ns`, zombies included; ESRCH
/// for none (negative pids name nobody).
fn find_task(ns: &PidNamespace, pid: i32) -> Result<Arc<Task>, i32> {
    u32::try_from(pid)
        .ok()
        .and_then(|pid| find_task_by_vpid(ns, pid))
        .ok_or(ESRCH)
}

/// The task getpgid/getsid ask about: the caller for 0.
fn target(pid: u64) -> Result<Arc<Task>, i32> {
    let current = sched::current();
    match pid as i32 {
        0 => Ok(current),
        pid => find_task(&current.active_pid_ns(), pid),
    }
}

/// `getpgid(pid)`: the process group of `pid` (0: the caller).
pub fn getpgid(a: Args) -> SysResult {
    let task = target(a.0[0])?;
    pgrp::task_pgrp(&task).map(|g| vnr(&g)).ok_or(ESRCH)
}

/// `getpgrp()`: the caller's process group.
pub fn getpgrp() -> SysResult {
    getpgid(Args([0; 6]))
}

/// `getsid(pid)`: the session of `pid` (0: the caller).
pub fn getsid(a: Args) -> SysResult {
    let task = target(a.0[0])?;
    pgrp::task_session(&task).map(|s| vnr(&s)).ok_or(ESRCH)
}

/// `setsid()`: the caller's process starts a new session and a new group,
/// both led by it, and returns the session id. EPERM if it already leads a
/// session or a group with its id exists (its own or one it left).
pub fn setsid() -> SysResult {
    let current = sched::current();
    let group = current.thread_group().clone();
    let pid = group.pids().cloned().ok_or(EPERM)?;
    let _changing = pgrp::CHANGE_LOCK.lock();
    match group.ids().as_ref() {
        Some(ids) if !ids.leader => {}
        _ => return Err(EPERM),
    }
    if pid.has_pgrp_members() {
        return Err(EPERM);
    }
    // The record is the thread group's: every thread moves with it.
    group.change_pgrp(&pid, Some(&pid));
    Ok(vnr(&pid))
}
