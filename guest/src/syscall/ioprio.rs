//! `ioprio_set` and `ioprio_get` (Linux block/ioprio.c): the I/O priority
//! kept in a task's I/O context (see `process::io_context`), the state
//! `CLONE_IO` shares. `IOPRIO_WHO_PGRP` addresses every thread of a
//! process group (who 0: the caller's).

use alloc::sync::Arc;
use alloc::vec::Vec;

use super::{Args, SysResult};
use crate::errno::{EINVAL, EPERM, ESRCH};
use crate::process::cred::{CAP_SYS_ADMIN, CAP_SYS_NICE};
use crate::process::io_context::{
    ioprio_best, ioprio_check, ioprio_effective, IoContext, IoprioError, IOPRIO_DEFAULT,
};
use crate::process::task::Task;
use crate::sched;

/// `IOPRIO_WHO_*`: what `which` addresses.
const IOPRIO_WHO_PROCESS: u64 = 1;
const IOPRIO_WHO_PGRP: u64 = 2;
const IOPRIO_WHO_USER: u64 = 3;

/// The tasks `which`/`who` name, as the caller sees pids.
fn targets(which: u64, who: u32) -> Result<Vec<Arc<Task>>, i32> {
    let current = sched::current();
    let ns = current.active_pid_ns();
    let tasks = match which {
        IOPRIO_WHO_PROCESS if who == 0 => alloc::vec![current],
        IOPRIO_WHO_PROCESS => crate::process::pgrp::find_task_by_vpid(&ns, who)
            .into_iter()
            .collect(),
        IOPRIO_WHO_PGRP => {
            use crate::process::pgrp;
            let group = if who == 0 {
                pgrp::task_pgrp(&current)
            } else {
                pgrp::find_pgrp(&ns, who)
            };
            // Every thread of every member process, zombies included.
            group.map_or_else(Vec::new, |g| {
                g.pgrp_members()
                    .iter()
                    .flat_map(|member| member.threads())
                    .collect()
            })
        }
        // Every thread of that user that the caller's namespace can see.
        IOPRIO_WHO_USER => ns
            .pids()
            .iter()
            .filter_map(|pid| pid.task())
            .filter(|task| task.real_uid() == who)
            .collect(),
        _ => return Err(EINVAL),
    };
    Ok(tasks)
}

/// Linux `set_task_ioprio`: the caller must own the task (its real uid is
/// the caller's real or effective uid) or hold CAP_SYS_NICE.
fn set_task_ioprio(task: &Task, ioprio: u16) -> Result<(), i32> {
    let caller = sched::current().cred();
    let owner = task.real_uid();
    if owner != caller.euid && owner != caller.uid && !caller.capable(CAP_SYS_NICE) {
        return Err(EPERM);
    }
    match task.io_context() {
        Some(ioc) => ioc.set_ioprio(ioprio),
        None => {
            // Another caller may have given it one meanwhile: set that.
            task.io_context_or_insert(IoContext::new(ioprio))
                .set_ioprio(ioprio)
        }
    }
    Ok(())
}

/// Linux `get_task_ioprio`.
fn get_task_ioprio(task: &Task) -> u16 {
    task.io_context().map_or(IOPRIO_DEFAULT, |ioc| ioc.ioprio())
}

pub fn ioprio_set(a: Args) -> SysResult {
    let [which, who, ioprio, ..] = a.0;
    let ioprio = ioprio as u32;
    let caller = sched::current().cred();
    let privileged = caller.capable(CAP_SYS_NICE) || caller.capable(CAP_SYS_ADMIN);
    ioprio_check(ioprio, privileged).map_err(|e| match e {
        IoprioError::NeedsPrivilege => EPERM,
        IoprioError::Invalid => EINVAL,
    })?;
    let tasks = targets(which, who as u32)?;
    if tasks.is_empty() {
        return Err(ESRCH);
    }
    // Linux keeps an unsigned short.
    for task in &tasks {
        set_task_ioprio(task, ioprio as u16)?;
    }
    Ok(0)
}

pub fn ioprio_get(a: Args) -> SysResult {
    let [which, who, ..] = a.0;
    let tasks = targets(which, who as u32)?;
    let mut best: Option<u16> = None;
    for task in &tasks {
        let ioprio = get_task_ioprio(task);
        best = Some(match best {
            // One process: its own value, unconverted, so that user space
            // tells an unset priority from a chosen one.
            None if which == IOPRIO_WHO_PROCESS => ioprio,
            // A group or a user: the best of what their I/O gets.
            None => ioprio_effective(ioprio),
            Some(so_far) => ioprio_best(so_far, ioprio),
        });
    }
    best.map(u64::from).ok_or(ESRCH)
}
