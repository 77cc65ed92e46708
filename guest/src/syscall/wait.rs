//! `wait4` and `waitid` (Linux `kernel_wait4`, `kernel_waitid`): each
//! checks its own arguments, then both select and reap children through
//! `process::wait::do_wait`.

use super::{current_mm, Args, SysResult};
use crate::errno::{EAGAIN, ECHILD, EFAULT, EINVAL, ESRCH};
use crate::process::pgrp;
use crate::process::wait::{
    do_wait, ChildReport, WaitFor, __WALL, __WCLONE, __WNOTHREAD, WCONTINUED, WEXITED, WNOHANG,
    WNOWAIT, WSTOPPED,
};
use crate::sched;
use forkvm_abi::linux::signal::SIGCHLD;
use forkvm_abi::linux::wait::{P_ALL, P_PGID, P_PID, P_PIDFD};

/// Stores the reported child's `struct rusage`: its times with its own
/// reaped children's (Linux does so after the child is reaped, so a bad
/// pointer is EFAULT with the child gone).
fn put_rusage(address: u64, report: &ChildReport) -> Result<(), i32> {
    if address == 0 {
        return Ok(());
    }
    current_mm()?
        .copy_to_user(address, &report.usage.to_rusage())
        .map_err(|_| EFAULT)
}

/// `wait4(pid, status, options, rusage)`: `pid` > 0 that child, -1 any,
/// 0 the caller's process group, < -1 group `-pid`. `rusage` is written
/// when a child is reported.
pub fn wait4(a: Args) -> SysResult {
    let [pid, status_address, options, rusage, ..] = a.0;
    let pid = pid as i64 as i32;
    let options = options as u32;
    // WEXITED is implied, not accepted (Linux: EINVAL).
    if options & !(WNOHANG | WSTOPPED | WCONTINUED | __WNOTHREAD | __WCLONE | __WALL) != 0 {
        return Err(EINVAL);
    }
    let which = match pid {
        -1 => WaitFor::Any,
        p if p > 0 => WaitFor::Pid(p as u32),
        // -INT_MIN does not exist.
        i32::MIN => return Err(ESRCH),
        // The caller's process group, or group -pid: no such group, no
        // such child.
        p => {
            let current = sched::current();
            let group = if p == 0 {
                pgrp::task_pgrp(&current)
            } else {
                pgrp::find_pgrp(&current.active_pid_ns(), p.unsigned_abs())
            };
            WaitFor::Pgrp(group.ok_or(ECHILD)?)
        }
    };
    let mm = current_mm()?;
    // As in Linux, the child is reaped first and the status copied after:
    // a bad status pointer gives EFAULT with the child already gone.
    match do_wait(which, options | WEXITED)? {
        None => Ok(0),
        Some(report) => {
            if status_address != 0 {
                mm.copy_to_user(status_address, &report.status.0.to_le_bytes())?;
            }
            put_rusage(rusage, &report)?;
            Ok(u64::from(report.pid))
        }
    }
}

/// `waitid(idtype, id, infop, options, rusage)`: returns 0 and describes
/// the child in the `siginfo_t` at `infop`. As in Linux, `infop` (if not
/// NULL) is written whatever the outcome: on an error or with WNOHANG and
/// no child ready, si_signo, si_code, si_pid, si_uid and si_status are 0;
/// a bad `infop` is then EFAULT (a reaped child stays reaped). `rusage` is
/// written first when a child is reported, as with `wait4`.
pub fn waitid(a: Args) -> SysResult {
    let [which, id, infop, options, rusage, ..] = a.0;
    let result = kernel_waitid(which as u32, id as i32, options as u32);
    if let Ok(Some(report)) = &result {
        put_rusage(rusage, report)?;
    }
    if infop == 0 {
        return result.map(|_| 0);
    }
    let (signo, code, pid, uid, status) = match &result {
        Ok(Some(report)) => {
            let (code, status) = report.cause();
            (SIGCHLD, code, report.pid, report.uid, status)
        }
        _ => (0, 0, 0, 0, 0),
    };
    // si_signo, si_errno, si_code; then si_pid, si_uid, si_status at the
    // union (offset 16). The other bytes are left alone.
    let mut head = [0u8; 12];
    head[0..4].copy_from_slice(&signo.to_le_bytes());
    head[8..12].copy_from_slice(&code.to_le_bytes());
    let mut child = [0u8; 12];
    child[0..4].copy_from_slice(&pid.to_le_bytes());
    child[4..8].copy_from_slice(&uid.to_le_bytes());
    child[8..12].copy_from_slice(&status.to_le_bytes());
    let mm = current_mm()?;
    mm.copy_to_user(infop, &head).map_err(|_| EFAULT)?;
    mm.copy_to_user(infop + 16, &child).map_err(|_| EFAULT)?;
    result.map(|_| 0)
}

/// Linux `kernel_waitid`: the checks in its order, then the wait.
/// `Ok(None)`: WNOHANG (or a non-blocking pidfd) and no child ready.
fn kernel_waitid(which: u32, id: i32, options: u32) -> Result<Option<ChildReport>, i32> {
    let known =
        WNOHANG | WNOWAIT | WEXITED | WSTOPPED | WCONTINUED | __WNOTHREAD | __WCLONE | __WALL;
    if options & !known != 0 {
        return Err(EINVAL);
    }
    if options & (WEXITED | WSTOPPED | WCONTINUED) == 0 {
        return Err(EINVAL);
    }
    let current = sched::current();
    let mut nonblock = false;
    let which = match which {
        P_ALL => WaitFor::Any,
        P_PID if id <= 0 => return Err(EINVAL),
        P_PID => WaitFor::Pid(id as u32),
        P_PGID if id < 0 => return Err(EINVAL),
        P_PGID => {
            // Id 0: the caller's own group. No such group: no such child.
            let group = if id == 0 {
                pgrp::task_pgrp(&current)
            } else {
                pgrp::find_pgrp(&current.active_pid_ns(), id as u32)
            };
            WaitFor::Pgrp(group.ok_or(ECHILD)?)
        }
        P_PIDFD if id < 0 => return Err(EINVAL),
        P_PIDFD => {
            let (task, f_flags) = super::pidfd::pidfd_get_task(id)?;
            nonblock = f_flags & super::pidfd::O_NONBLOCK != 0;
            WaitFor::Task(task)
        }
        _ => return Err(EINVAL),
    };
    drop(current);
    // A non-blocking pidfd never sleeps: EAGAIN where WNOHANG would give 0.
    let report = do_wait(which, if nonblock { options | WNOHANG } else { options })?;
    if report.is_none() && nonblock && options & WNOHANG == 0 {
        return Err(EAGAIN);
    }
    Ok(report)
}
