//! `pidfd_open` and the pidfd lookup `waitid(P_PIDFD)` uses (Linux
//! `kernel/pid.c`). A pidfd refers to a process; it is a file of its own
//! kind ([`FileKind::Pidfd`]), made here or by CLONE_PIDFD.

use alloc::sync::Weak;

use super::{Args, SysResult};
use crate::errno::{EBADF, EINVAL, ENOENT, ESRCH};
use crate::fs::{File, FileKind};
use crate::process::pgrp::find_task_by_vpid;
use crate::process::task::Task;
use crate::sched;

/// `open` flag: do not block (`waitid(P_PIDFD)` on the pidfd then acts as
/// with WNOHANG).
pub const O_NONBLOCK: u32 = 0o4000;
/// `pidfd_open` flag: a non-blocking pidfd.
pub const PIDFD_NONBLOCK: u32 = O_NONBLOCK;

/// `pidfd_open(pid, flags)`: a close-on-exec pidfd for process `pid` of
/// the caller's pid namespace, zombies included. Checks in Linux's order:
/// EINVAL for unknown flags, EINVAL for `pid <= 0`, ESRCH if no task has
/// that id, ENOENT if it is a thread other than its group's leader (what
/// the host's Linux 6.18 answers; 5.x kernels said EINVAL). PIDFD_THREAD
/// (Linux 6.9, a pidfd for one thread) is not supported: EINVAL, as
/// before 6.9.
pub fn pidfd_open(a: Args) -> SysResult {
    let [pid, flags, ..] = a.0;
    let (pid, flags) = (pid as i32, flags as u32);
    if flags & !PIDFD_NONBLOCK != 0 {
        return Err(EINVAL);
    }
    if pid <= 0 {
        return Err(EINVAL);
    }
    let current = sched::current();
    let task = find_task_by_vpid(&current.active_pid_ns(), pid as u32).ok_or(ESRCH)?;
    if !task.is_group_leader() {
        return Err(ENOENT);
    }
    let file = File::with_flags(FileKind::Pidfd(alloc::sync::Arc::downgrade(&task)), flags);
    let table = current.files().ok_or(EBADF)?;
    let fd = table.lock().install_flagged(file, true)?;
    Ok(fd)
}

/// The process descriptor `fd` refers to and the file's status flags
/// (Linux `pidfd_get_pid`): EBADF if `fd` is not open or not a pidfd.
pub fn pidfd_get_task(fd: i32) -> Result<(Weak<Task>, u32), i32> {
    let file = sched::current()
        .files()
        .ok_or(EBADF)?
        .lock()
        .get(fd as u64)?;
    match &file.kind {
        FileKind::Pidfd(task) => Ok((task.clone(), file.f_flags)),
        _ => Err(EBADF),
    }
}
