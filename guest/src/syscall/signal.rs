//! `kill`, `pidfd_send_signal`, `rt_sigaction`, `rt_sigprocmask`. Sending
//! is `process::signal::send_signal`; delivery to handlers happens on the
//! way back to user mode (`arch::signal`). Default actions: terminate (the
//! wait status shows the signal) or ignore (SIGCHLD, SIGCONT, SIGURG,
//! SIGWINCH); stop signals are ignored until job control exists. SIGKILL
//! always kills.

use alloc::vec::Vec;

use alloc::sync::Arc;

use super::{Args, SysResult};
use crate::errno::{EINVAL, EPERM, ERESTARTNOHAND, ESRCH};
use crate::process::cred::CAP_KILL;
use crate::process::task::Task;
use crate::process::thread_group::ThreadGroup;
use crate::sched;

use forkvm_abi::linux::signal::{self as linux_signal, NSIG, SIGCONT, SIGKILL, SIGSTOP};

/// Whether the caller may signal `target` (Linux `check_kill_permission`):
/// its own thread group; a task whose real or saved uid is the caller's
/// real or effective uid; CAP_KILL over the target's user namespace; and
/// SIGCONT within the caller's session.
pub(super) fn may_signal(current: &Task, target: &Task, signal: u64) -> bool {
    if current.tgid == target.tgid {
        return true;
    }
    let cred = current.cred();
    let tcred = target.cred();
    if cred.euid == tcred.suid
        || cred.euid == tcred.uid
        || cred.uid == tcred.suid
        || cred.uid == tcred.uid
        || cred.ns_capable(&tcred.user_ns, CAP_KILL)
    {
        return true;
    }
    use crate::process::pgrp;
    signal == u64::from(SIGCONT)
        && match (pgrp::task_session(target), pgrp::task_session(current)) {
            (None, _) => true,
            (Some(theirs), Some(ours)) => pgrp::same(&theirs, &ours),
            (Some(_), None) => false,
        }
}

/// `kill(pid, sig)`: a process (pid > 0), every process but init and
/// the caller (pid == -1), the caller's process group (pid == 0) or
/// group -pid. A process the caller may not signal is EPERM; `kill(-1)`
/// skips those silently, as Linux's `kill_something_info` does.
pub fn kill(a: Args) -> SysResult {
    let pid = a.0[0] as i32;
    let signal = a.0[1];
    if signal > u64::from(NSIG) {
        return Err(EINVAL);
    }
    if pid == 0 || pid < -1 {
        return kill_pgrp(pid, signal);
    }
    let current = sched::current();
    let ns = current.active_pid_ns();
    if pid > 0 {
        // The process with this id in the caller's namespace (a zombie is
        // still found: the signal to it succeeds and does nothing).
        let group = ns
            .find_pid(pid as u32)
            .and_then(|p| p.thread_group())
            .ok_or(ESRCH)?;
        let representative = group.find_thread(|_| true).ok_or(ESRCH)?;
        if !may_signal(&current, &representative, signal) {
            return Err(EPERM);
        }
        if signal != 0 {
            signal_process(&group, signal as u32);
        }
        return Ok(0);
    }
    // kill(-1): every process the caller's namespace can name.
    let mut found = false;
    for pid in ns.pids() {
        let Some(group) = pid.thread_group() else {
            continue;
        };
        if pid.nr_in(&ns) == Some(1) || Arc::ptr_eq(&group, current.thread_group()) {
            continue;
        }
        let Some(representative) = group.find_thread(|_| true) else {
            continue;
        };
        found = true;
        if signal != 0 && may_signal(&current, &representative, signal) {
            signal_process(&group, signal as u32);
        }
    }
    if found {
        Ok(0)
    } else {
        Err(ESRCH)
    }
}

pub(super) fn is_zombie(task: &Task) -> bool {
    task.state() == crate::process::task::TaskState::Zombie
}

/// The thread of `group` a process-directed signal is handed to (Linux
/// `complete_signal` then picks among them): one not blocking `signal` if
/// there is one; none once every thread has exited.
pub(super) fn receiving_thread(group: &ThreadGroup, signal: u32) -> Option<Arc<Task>> {
    use crate::process::task::TaskState;
    let alive = |t: &Arc<Task>| {
        !matches!(t.state(), TaskState::Zombie | TaskState::Dead) && t.mm().is_some()
    };
    group
        .find_thread(|t| alive(t) && t.blocked() & crate::process::signal::bit(signal) == 0)
        .or_else(|| group.find_thread(alive))
}

/// `signal` from the current task to process `group` (SI_USER).
fn signal_process(group: &ThreadGroup, signal: u32) {
    if let Some(task) = receiving_thread(group, signal) {
        send_signal(&task, signal);
    }
}

/// `kill(0, sig)` and `kill(-pgid, sig)`: every process of the group,
/// zombies counted as found (Linux `__kill_pgrp_info`); ESRCH if the group
/// has none.
fn kill_pgrp(pid: i32, signal: u64) -> SysResult {
    use crate::process::pgrp;
    // -INT_MIN does not exist.
    if pid == i32::MIN {
        return Err(ESRCH);
    }
    let current = sched::current();
    let group = if pid == 0 {
        pgrp::task_pgrp(&current)
    } else {
        pgrp::find_pgrp(&current.active_pid_ns(), pid.unsigned_abs())
    };
    let group = group.ok_or(ESRCH)?;
    let members: Vec<(Arc<ThreadGroup>, Arc<Task>)> = group
        .pgrp_members()
        .into_iter()
        .filter_map(|member| {
            let representative = member.find_thread(|_| true)?;
            Some((member, representative))
        })
        .collect();
    if members.is_empty() {
        return Err(ESRCH);
    }
    // Linux `__kill_pgrp_info`: success if any member could be signalled.
    let permitted: Vec<_> = members
        .into_iter()
        .filter(|(_, representative)| may_signal(&current, representative, signal))
        .collect();
    if permitted.is_empty() {
        return Err(EPERM);
    }
    if signal == 0 {
        return Ok(0);
    }
    for (member, _) in permitted {
        signal_process(&member, signal as u32);
    }
    Ok(0)
}

/// Sends `signal` from the current task to `task` (SI_USER, with the
/// sender's pid and uid as the receiver sees them).
fn send_signal(task: &Arc<Task>, signal: u32) {
    use crate::process::signal::SI_USER;
    // SI_USER is never refused for RLIMIT_SIGPENDING.
    let _ = send_info(task, sender_info(task, signal, SI_USER), true);
}

/// What `kill` and `tkill` send: `code` with the current task's pid and
/// uid as `task`'s pid and user namespaces see them.
pub(super) fn sender_info(task: &Task, signal: u32, code: i32) -> crate::process::signal::SigInfo {
    use crate::process::signal::{SigFields, SigInfo};
    let sender = sched::current();
    let pid = sender.tgid_in(&task.active_pid_ns());
    let uid = {
        let kuid = sender.real_uid();
        task.cred().uid_seen(kuid)
    };
    SigInfo {
        signo: signal,
        code,
        fields: SigFields::Kill { pid, uid },
    }
}

/// Sends `info` from the current task to `task` (to its process if
/// `group`); a namespace init drops what it has no handler for
/// (`process::signal::send`). EAGAIN for a real-time signal that cannot be
/// queued.
pub(super) fn send_info(
    task: &Arc<Task>,
    info: crate::process::signal::SigInfo,
    group: bool,
) -> Result<(), i32> {
    crate::process::signal::send(task, info, group)
}

/// Size of a signal set for rt_sigaction/rt_sigprocmask on x86-64.
const SIGSET_SIZE: u64 = 8;

/// `rt_sigaction(sig, act, oldact, sigsetsize)`.
pub fn rt_sigaction(a: Args) -> SysResult {
    use crate::process::signal::{is_unblockable, SigAction};
    let [signal, act, oldact, sigsetsize, ..] = a.0;
    if sigsetsize != SIGSET_SIZE || signal == 0 || signal > u64::from(NSIG) {
        return Err(EINVAL);
    }
    let signal = signal as u32;
    if act != 0 && is_unblockable(signal) {
        return Err(EINVAL);
    }
    let mm = super::current_mm()?;
    let new = if act != 0 {
        let mut bytes = [0u8; 32];
        mm.copy_from_user(act, &mut bytes)?;
        Some(SigAction::from_bytes(&bytes))
    } else {
        None
    };
    let sighand = sched::current().sighand();
    let old = sighand.lock().action(signal);
    if oldact != 0 {
        mm.copy_to_user(oldact, &old.to_bytes())?;
    }
    if let Some(mut new) = new {
        new.mask &= !(crate::process::signal::bit(SIGKILL) | crate::process::signal::bit(SIGSTOP));
        sighand.lock().set_action(signal, new);
        if crate::process::signal::handler_ignores(new.handler, signal) {
            // POSIX: ignoring a pending signal discards it, in every
            // thread (Linux `do_sigaction`).
            let current = sched::current();
            let discard = !crate::process::signal::bit(signal);
            current.thread_group().shared_pending().flush(!discard);
            for task in current.thread_group().threads() {
                task.flush_pending(!discard);
            }
        }
    }
    Ok(0)
}

// `how` as the register holds it.
const SIG_BLOCK: u64 = linux_signal::SIG_BLOCK as u64;
const SIG_UNBLOCK: u64 = linux_signal::SIG_UNBLOCK as u64;
const SIG_SETMASK: u64 = linux_signal::SIG_SETMASK as u64;

/// `rt_sigprocmask(how, set, oldset, sigsetsize)`.
pub fn rt_sigprocmask(a: Args) -> SysResult {
    let [how, set, oldset, sigsetsize, ..] = a.0;
    if sigsetsize != SIGSET_SIZE {
        return Err(EINVAL);
    }
    let mm = super::current_mm()?;
    let new = if set != 0 {
        let mut bytes = [0u8; 8];
        mm.copy_from_user(set, &mut bytes)?;
        Some(u64::from_le_bytes(bytes))
    } else {
        None
    };
    let task = sched::current();
    let old = task.blocked();
    if let Some(set) = new {
        let blocked = match how {
            SIG_BLOCK => old | set,
            SIG_UNBLOCK => old & !set,
            SIG_SETMASK => set,
            _ => return Err(EINVAL),
        };
        task.set_blocked(blocked);
    }
    if oldset != 0 {
        mm.copy_to_user(oldset, &old.to_le_bytes())?;
    }
    Ok(0)
}

/// `sigaltstack(ss, old_ss)` for a caller whose stack pointer is `sp`
/// (Linux's order: read `ss` (EFAULT), change (EPERM/EINVAL/ENOMEM), then
/// write the old stack, so a bad `old_ss` still leaves the change made).
pub fn sigaltstack(a: Args, sp: u64) -> SysResult {
    use crate::process::sigaltstack::STACK_T_SIZE;
    let [ss, old_ss, ..] = a.0;
    let mm = super::current_mm()?;
    let new = if ss != 0 {
        let mut bytes = [0u8; STACK_T_SIZE];
        mm.copy_from_user(ss, &mut bytes)?;
        Some(bytes)
    } else {
        None
    };
    let task = sched::current();
    let old = task.swap_sigaltstack(sp, new.as_ref())?;
    if old_ss != 0 {
        mm.copy_to_user(old_ss, &old)?;
    }
    Ok(0)
}

/// `pause()`: sleeps until a signal is delivered; EINTR after a handler,
/// never restarted by SA_RESTART (ERESTARTNOHAND).
pub fn pause(_a: Args) -> SysResult {
    sched::wait::sleep_until_signal();
    Err(ERESTARTNOHAND)
}

/// `rt_sigsuspend(mask, sigsetsize)`: waits for a signal with `mask` as
/// the blocked set; the old mask comes back when the call returns (saved
/// in the handler's frame if one runs). Always EINTR after a handler.
pub fn rt_sigsuspend(a: Args) -> SysResult {
    let [mask, sigsetsize, ..] = a.0;
    if sigsetsize != SIGSET_SIZE {
        return Err(EINVAL);
    }
    let mut bytes = [0u8; 8];
    super::current_mm()?.copy_from_user(mask, &mut bytes)?;
    sched::current().set_sigsuspend_mask(u64::from_le_bytes(bytes));
    sched::wait::sleep_until_signal();
    Err(ERESTARTNOHAND)
}
