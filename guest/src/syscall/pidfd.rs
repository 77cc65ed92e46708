//! `pidfd_open`, `pidfd_send_signal` and the pidfd lookup
//! `waitid(P_PIDFD)` uses (Linux `kernel/pid.c`, `kernel/signal.c`). A pidfd refers to a process; it is a file of its own
//! kind ([`FileKind::Pidfd`]), made here or by CLONE_PIDFD.

use alloc::sync::Weak;

use super::{Args, SysResult};
use crate::errno::{EBADF, EINVAL, ENOENT, EPERM, ESRCH};
use crate::fs::{File, FileKind};
use crate::process::pgrp::find_task_by_vpid;
use crate::process::task::Task;
use crate::sched;

/// `open` flag: do not block (`waitid(P_PIDFD)` on the pidfd then acts as
/// with WNOHANG).
pub use forkvm_abi::linux::fcntl::O_NONBLOCK;
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
        FileKind::Pidfd(task) => Ok((task.clone(), file.status())),
        _ => Err(EBADF),
    }
}

/// `pidfd_send_signal` scopes (Linux 6.9): at most one.
const PIDFD_SIGNAL_THREAD: u32 = 1 << 0;
const PIDFD_SIGNAL_THREAD_GROUP: u32 = 1 << 1;
const PIDFD_SIGNAL_PROCESS_GROUP: u32 = 1 << 2;

/// `pidfd_send_signal(pidfd, sig, info, flags)`: a signal to the thread,
/// the process (the default: pidfds here are process pidfds) or the
/// process group (`pgid` = the process's pid) of `pidfd`, with Linux's
/// checks in its order: `flags` (unknown bits or two scopes: EINVAL), the
/// descriptor (EBADF), then `info` if given: read (EFAULT), its
/// `si_signo` equal to `sig` (EINVAL), and a code claiming the kernel or
/// `kill` (`si_code >= 0` or SI_TKILL) only to the caller itself, never
/// to a group (EPERM); then the target (ESRCH once exited or for an empty
/// group), `sig` (EINVAL), the permission (EPERM). Without `info` the
/// signal is SI_USER from the caller, as `kill` sends.
pub fn pidfd_send_signal(a: Args) -> SysResult {
    use crate::process::signal::{SI_TKILL, SI_USER};
    let [pidfd, signal, info_address, flags, ..] = a.0;
    let flags = flags as u32;
    let scopes = PIDFD_SIGNAL_THREAD | PIDFD_SIGNAL_THREAD_GROUP | PIDFD_SIGNAL_PROCESS_GROUP;
    if flags & !scopes != 0 || flags.count_ones() > 1 {
        return Err(EINVAL);
    }
    let (target, _) = pidfd_get_task(pidfd as i32)?;
    // A C `int`: a negative one is out of range, as `valid_signal` sees it.
    let signal = signal as i32 as i64 as u64;
    let current = sched::current();
    let info = if info_address != 0 {
        let info = super::sigwait::copy_siginfo_from_user(signal, info_address)?;
        let mut signo = [0u8; 4];
        super::current_mm()?.copy_from_user(info_address, &mut signo)?;
        if u64::from(u32::from_le_bytes(signo)) != signal {
            return Err(EINVAL);
        }
        let to_self = target
            .upgrade()
            .is_some_and(|t| alloc::sync::Arc::ptr_eq(&t, &current));
        let forged = info.code >= 0 || info.code == SI_TKILL;
        if forged && (!to_self || flags == PIDFD_SIGNAL_PROCESS_GROUP) {
            return Err(EPERM);
        }
        Some(info)
    } else {
        None
    };
    let targets = if flags == PIDFD_SIGNAL_PROCESS_GROUP {
        process_group_of(&target, &current)?
    } else {
        let live = target.upgrade().filter(|t| {
            !matches!(
                t.state(),
                crate::process::task::TaskState::Zombie | crate::process::task::TaskState::Dead
            )
        });
        alloc::vec![live.ok_or(ESRCH)?]
    };
    if signal > u64::from(crate::process::signal::NSIG) {
        return Err(EINVAL);
    }
    // As `kill` of a group: success if any member could be signalled.
    let code = info.as_ref().map_or(SI_USER, |info| info.code);
    let permitted: alloc::vec::Vec<_> = targets
        .into_iter()
        .filter(|task| code > 0 || super::signal::may_signal(&current, task, signal))
        .collect();
    if permitted.is_empty() {
        return Err(EPERM);
    }
    if signal == 0 {
        return Ok(0);
    }
    let group = flags != PIDFD_SIGNAL_THREAD;
    for task in &permitted {
        match info {
            Some(info) => {
                let info = super::sigwait::fix_sender_ids(task, info);
                super::signal::send_info(task, info, group)?;
            }
            // SI_USER is never refused for RLIMIT_SIGPENDING.
            None => {
                let info = super::signal::sender_info(task, signal as u32, SI_USER);
                let _ = super::signal::send_info(task, info, group);
            }
        }
    }
    Ok(0)
}

/// One task per process of the group whose id is `target`'s pid (as the
/// caller's pid namespace numbers it); ESRCH if it has none.
fn process_group_of(
    target: &Weak<Task>,
    current: &Task,
) -> Result<alloc::vec::Vec<alloc::sync::Arc<Task>>, i32> {
    use crate::process::pgrp;
    let ns = current.active_pid_ns();
    let pgid = target.upgrade().map_or(0, |t| t.tgid_in(&ns));
    let group = pgrp::find_pgrp(&ns, pgid).ok_or(ESRCH)?;
    // One thread (the first on its list) stands for each process.
    let members: alloc::vec::Vec<_> = group
        .pgrp_members()
        .into_iter()
        .filter_map(|member| member.find_thread(|_| true))
        .collect();
    if members.is_empty() {
        return Err(ESRCH);
    }
    Ok(members)
}
