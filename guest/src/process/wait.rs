//! Waiting for children (Linux `do_wait` with its `wait_opts`): the one
//! child selection `wait4` and `waitid` share.
//!
//! Stopped and continued children do not exist in this kernel (no job
//! control, stop signals are ignored): WSTOPPED (WUNTRACED) and WCONTINUED
//! are accepted and never report anything; a running child keeps such a
//! wait going (0 with WNOHANG), a zombie counts for WEXITED only.
//! The children are the process's (its `ThreadGroup`'s list, which holds
//! group leaders only): any thread waits for those of every thread of its
//! group, only for the ones it created itself with __WNOTHREAD (Linux
//! `do_wait` over `while_each_thread`). __WCLONE and __WALL are accepted
//! and change nothing: a child is waited for whatever its exit signal.

use alloc::sync::{Arc, Weak};

use super::task::{Pid, Task, TaskState};
use crate::errno::{ECHILD, ERESTARTSYS};
use crate::sched;

pub use forkvm_abi::linux::wait::{
    WaitStatus, __WALL, __WCLONE, __WNOTHREAD, WCONTINUED, WEXITED, WNOHANG, WNOWAIT, WSTOPPED,
};

/// Which children a wait accepts.
#[derive(Clone)]
pub enum WaitFor {
    Any,
    Pid(Pid),
    /// Members of this process group (compared when each child is
    /// looked at: a child that changed groups counts in its new one).
    Pgrp(Arc<super::pid_ns::PidNumbers>),
    /// The process a pidfd refers to (`waitid(P_PIDFD)`).
    Task(Weak<Task>),
}

/// What a wait reports about a child: pid and uid as the waiter sees
/// them, and the wait status (`wait4`'s `*wstatus`).
#[derive(Clone, Copy, Debug)]
pub struct ChildReport {
    pub pid: Pid,
    pub uid: u32,
    pub status: WaitStatus,
    /// Its CPU time with its reaped children's (`wait4`'s `rusage`).
    pub usage: sched::cputime::Totals,
}

impl ChildReport {
    /// `si_code` and `si_status` of `waitid`'s `siginfo_t`: CLD_EXITED and
    /// the exit code, or CLD_KILLED/CLD_DUMPED and the signal.
    pub fn cause(&self) -> (i32, i32) {
        use super::signal::{CLD_DUMPED, CLD_EXITED, CLD_KILLED};
        let status = self.status;
        if status.exited() {
            (CLD_EXITED, status.exit_status())
        } else if status.core_dumped() {
            (CLD_DUMPED, status.term_signal())
        } else {
            (CLD_KILLED, status.term_signal())
        }
    }
}

/// Waits for a child matching `which` to exit and reaps it (reports it
/// only, with WNOWAIT): `Ok(Some(report))`, or `Ok(None)` with WNOHANG
/// when a matching child exists but none is ready. ECHILD when none
/// matches; `options` must already have passed the caller's checks.
pub fn do_wait(which: WaitFor, options: u32) -> Result<Option<ChildReport>, i32> {
    let waiter = sched::current();
    let group = waiter.thread_group().clone();
    let mut result = Err(ECHILD);
    let completed = group.wait_chldexit().wait_until(|| {
        result = try_wait(&waiter, &which, options);
        match result {
            Ok(Some(_)) | Err(_) => true,
            Ok(None) => options & WNOHANG != 0,
        }
    });
    if !completed {
        // Interrupted: restarted if the handler has SA_RESTART.
        return Err(ERESTARTSYS);
    }
    result
}

/// One pass over the children (Linux `do_wait_thread` and
/// `wait_consider_task`): report a matching zombie if there is one.
fn try_wait(waiter: &Arc<Task>, which: &WaitFor, options: u32) -> Result<Option<ChildReport>, i32> {
    // Pids are the waiter's view (its pid namespace).
    let ns = waiter.active_pid_ns();
    let matches = |child: &Arc<Task>| {
        let selected = match which {
            WaitFor::Any => true,
            WaitFor::Pid(pid) => child.tid_in(&ns) == *pid,
            WaitFor::Pgrp(group) => {
                super::pgrp::task_pgrp(child).is_some_and(|g| super::pgrp::same(&g, group))
            }
            WaitFor::Task(task) => core::ptr::eq(Arc::as_ptr(child), task.as_ptr()),
        };
        selected
            && (options & __WNOTHREAD == 0
                || child
                    .parent()
                    .is_some_and(|parent| Arc::ptr_eq(&parent, waiter)))
    };
    // A running child keeps the wait going; a zombie only if the caller
    // waits for exits (Linux: with WSTOPPED alone, zombies give ECHILD).
    let waitable = |child: &Arc<Task>| {
        matches(child) && (options & WEXITED != 0 || child.state() != TaskState::Zombie)
    };
    let child = waiter.thread_group().with_children(|children| {
        if !children.iter().any(waitable) {
            return Err(ECHILD);
        }
        let Some(index) = children
            .iter()
            .position(|c| matches(c) && c.state() == TaskState::Zombie && options & WEXITED != 0)
        else {
            return Ok(None);
        };
        // Taken off in place: the others keep their order (oldest first).
        Ok(Some(if options & WNOWAIT != 0 {
            children[index].clone()
        } else {
            children.remove(index).expect("index from position")
        }))
    })?;
    let Some(child) = child else {
        return Ok(None);
    };
    let (status, kuid) = {
        let child = child.inner.lock();
        (child.exit_status, child.cred.uid)
    };
    let uid = waiter.inner.lock().cred.uid_seen(kuid);
    let reap = options & WNOWAIT == 0;
    let report = ChildReport {
        pid: child.tid_in(&ns),
        uid,
        status,
        usage: sched::cputime::report_child(waiter.thread_group(), &child, reap),
    };
    if reap {
        super::exit::release_task(&child);
    }
    Ok(Some(report))
}
