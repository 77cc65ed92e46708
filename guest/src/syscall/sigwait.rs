//! Thread-directed and synchronous signals (Linux `kernel/signal.c`):
//! `tkill` and `tgkill` (SI_TKILL to one thread), `rt_sigqueueinfo` and
//! `rt_tgsigqueueinfo` (a siginfo of the caller's making), `rt_sigpending`,
//! and `rt_sigtimedwait`, which takes a pending signal instead of running
//! its handler.
//!
//! A thread-directed signal is pending in the thread's own set
//! (`TaskInner::pending`), a process-directed one in the set its thread
//! group shares (`shared_pending`); a thread takes its own first. A
//! standard signal is pending once per set, a real-time one queues every
//! instance up to RLIMIT_SIGPENDING (`process::sigqueue`).

use alloc::sync::Arc;

use super::signal::{is_zombie, may_signal, receiving_thread, send_info, sender_info, user_signal};
use super::{current_mm, Args, SysResult};
use crate::errno::{E2BIG, EAGAIN, EFAULT, EINTR, EINVAL, EPERM, ESRCH};
use crate::process::signal::{
    bit, SigFields, SigInfo, Signal, SI_KERNEL, SI_SIGIO, SI_TIMER, SI_TKILL, SI_USER,
};
use crate::process::task::Task;
use crate::sched;

/// `sizeof(sigset_t)` on x86-64.
const SIGSET_SIZE: u64 = 8;
/// `sizeof(siginfo_t)` and of the part the kernel keeps (`kernel_siginfo`).
const SIGINFO_SIZE: usize = 128;
const KERNEL_SIGINFO_SIZE: usize = 48;

/// The task with thread id `tid` in the caller's pid namespace (Linux
/// `find_task_by_vpid`); a zombie is found, a kernel thread is not.
fn find_task_by_vpid(tid: i32) -> Option<Arc<Task>> {
    let tid = u32::try_from(tid).ok().filter(|&tid| tid > 0)?;
    let ns = sched::current().active_pid_ns();
    ns.find_task(tid)
        .filter(|task| task.mm().is_some() || is_zombie(task))
}

/// Linux `do_send_specific`: the siginfo `info` makes for the checked
/// signal (with si_code `code`) to thread `tid`, of thread group `tgid`
/// if that is positive. ESRCH for no such thread; then
/// `check_kill_permission` (EINVAL for a bad signal, EPERM); signal 0
/// only checks.
fn do_send_specific(
    tgid: i32,
    tid: i32,
    signal: u64,
    code: i32,
    info: impl FnOnce(&Task, Signal) -> SigInfo,
) -> SysResult {
    let current = sched::current();
    let task = find_task_by_vpid(tid).ok_or(ESRCH)?;
    if tgid > 0 && task.tgid_in(&current.active_pid_ns()) != tgid as u32 {
        return Err(ESRCH);
    }
    let signal = check_kill_permission(&current, &task, signal, code)?;
    if let Some(signal) = signal.filter(|_| !is_zombie(&task)) {
        send_info(&task, info(&task, signal), false)?;
    }
    Ok(0)
}

/// Linux `check_kill_permission`: a valid signal (EINVAL; `None` for 0,
/// which only checks), and (for a signal from user space, si_code `code`
/// <= 0) the right to signal `task` (EPERM).
fn check_kill_permission(
    current: &Task,
    task: &Task,
    signal: u64,
    code: i32,
) -> Result<Option<Signal>, i32> {
    let signal = user_signal(signal)?;
    if code <= 0 && !may_signal(current, task, signal) {
        return Err(EPERM);
    }
    Ok(signal)
}

/// A signal number argument: a C `int`, so the register's upper half is
/// ignored and a negative one is out of range (as `valid_signal` sees it).
fn signal_arg(register: u64) -> u64 {
    register as i32 as i64 as u64
}

/// `tkill(tid, sig)`: `tgkill` without the thread-group check.
pub fn tkill(a: Args) -> SysResult {
    let [tid, signal, ..] = a.0;
    let (tid, signal) = (tid as i32, signal_arg(signal));
    if tid <= 0 {
        return Err(EINVAL);
    }
    do_tkill(0, tid, signal)
}

/// `tgkill(tgid, tid, sig)`: `signal` to thread `tid` of process `tgid`,
/// pending for that thread only (SI_TKILL with the sender's pid and uid).
pub fn tgkill(a: Args) -> SysResult {
    let [tgid, tid, signal, ..] = a.0;
    let (tgid, tid, signal) = (tgid as i32, tid as i32, signal_arg(signal));
    if tid <= 0 || tgid <= 0 {
        return Err(EINVAL);
    }
    do_tkill(tgid, tid, signal)
}

/// Linux `do_tkill`: SI_TKILL with the sender's pid and uid.
fn do_tkill(tgid: i32, tid: i32, signal: u64) -> SysResult {
    do_send_specific(tgid, tid, signal, SI_TKILL, |task, signal| {
        sender_info(task, signal, SI_TKILL)
    })
}

/// Whether Linux knows how much of a siginfo with this code is used
/// (`known_siginfo_layout`); for an unknown one the bytes past
/// `kernel_siginfo` must be zero, so none is lost.
fn known_siginfo_layout(signal: u64, code: i32) -> bool {
    use forkvm_abi::linux::signal::{
        SIGBUS, SIGCHLD, SIGFPE, SIGILL, SIGIO, SIGSEGV, SIGSYS, SIGTRAP,
    };
    // The last si_code of each signal that has its own (uapi `NSIG*`).
    let limit = match u32::try_from(signal) {
        Ok(SIGILL) => Some(11),
        Ok(SIGFPE) => Some(15),
        Ok(SIGSEGV) => Some(10),
        Ok(SIGBUS) => Some(5),
        Ok(SIGTRAP) => Some(6),
        Ok(SIGCHLD) => Some(6),
        Ok(SIGIO) => Some(6), // SIGPOLL
        Ok(SIGSYS) => Some(2),
        _ => None,
    };
    const SI_DETHREAD: i32 = -7;
    const SI_ASYNCNL: i32 = -60;
    const NSIGPOLL: i32 = 6;
    if code == SI_KERNEL {
        true
    } else if code > SI_USER {
        code <= limit.unwrap_or(NSIGPOLL)
    } else {
        code >= SI_DETHREAD || code == SI_ASYNCNL
    }
}

/// A siginfo from user space before its signal is checked: what
/// `rt_sigqueueinfo` and `pidfd_send_signal` send, with the signal
/// number of the call.
#[derive(Clone, Copy)]
pub(super) struct UserSigInfo {
    pub code: i32,
    fields: SigFields,
}

impl UserSigInfo {
    /// The siginfo of `signal`, once the call's number proved valid.
    pub fn with_signo(self, signo: Signal) -> SigInfo {
        SigInfo {
            signo,
            code: self.code,
            fields: self.fields,
        }
    }
}

/// Linux `__copy_siginfo_from_user`: the caller's siginfo, whose
/// `si_signo` will be `signal` (EFAULT; E2BIG for an unknown layout with
/// bytes past what the kernel keeps).
pub(super) fn copy_siginfo_from_user(signal: u64, address: u64) -> Result<UserSigInfo, i32> {
    let mm = current_mm()?;
    let mut bytes = [0u8; KERNEL_SIGINFO_SIZE];
    mm.copy_from_user(address, &mut bytes).map_err(|_| EFAULT)?;
    let code = i32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if !known_siginfo_layout(signal, code) {
        let mut expansion = [0u8; SIGINFO_SIZE - KERNEL_SIGINFO_SIZE];
        mm.copy_from_user(address + KERNEL_SIGINFO_SIZE as u64, &mut expansion)
            .map_err(|_| EFAULT)?;
        if expansion.iter().any(|&b| b != 0) {
            return Err(E2BIG);
        }
    }
    Ok(UserSigInfo {
        code,
        fields: SigFields::Raw(bytes[16..].try_into().expect("32 bytes")),
    })
}

/// Linux `send_signal_locked`'s fix-up of a siginfo with a sender (the
/// `SIL_RT` layout of negative codes): `si_uid` as the receiver's user
/// namespace sees the sender's, and `si_pid` 0 when the sender is outside
/// the receiver's pid namespace. Codes >= 0 come only from the receiver
/// itself and need none.
pub(super) fn fix_sender_ids(task: &Task, mut info: SigInfo) -> SigInfo {
    let SigFields::Raw(ref mut union) = info.fields else {
        return info;
    };
    if info.code >= 0 || info.code == SI_TIMER || info.code == SI_SIGIO {
        return info;
    }
    let sender = sched::current();
    let uid = u32::from_le_bytes(union[4..8].try_into().expect("4 bytes"));
    // One lock at a time: the receiver may be the sender.
    let sender_cred = sender.cred();
    let receiver_cred = task.cred();
    if !Arc::ptr_eq(&sender_cred.user_ns, &receiver_cred.user_ns) {
        // An id with no mapping is the overflow uid (`from_kuid_munged`).
        let seen = sender_cred
            .make_kuid(uid)
            .map_or(crate::process::user_ns::OVERFLOW_ID, |kuid| {
                receiver_cred.uid_seen(kuid)
            });
        union[4..8].copy_from_slice(&seen.to_le_bytes());
    }
    if sender.tgid_in(&task.active_pid_ns()) == 0 {
        union[0..4].copy_from_slice(&0u32.to_le_bytes());
    }
    info
}

/// Linux's check in `do_rt_sigqueueinfo`/`do_rt_tgsigqueueinfo`: "Not even
/// root can pretend to send signals from the kernel. Nor can they
/// impersonate a kill()/tgkill(), which adds source info." Only a thread
/// signalling itself (its own tid) may use a code >= 0 or SI_TKILL.
fn may_forge(info: &UserSigInfo, target: i32) -> SysResult {
    let current = sched::current();
    let own = current.tid_in(&current.active_pid_ns());
    if (info.code >= 0 || info.code == SI_TKILL) && own != target as u32 {
        return Err(EPERM);
    }
    Ok(0)
}

/// `rt_sigqueueinfo(tgid, sig, info)`: `info` to the process of thread
/// `tgid` (Linux `kill_proc_info`: any thread's id names its process).
pub fn rt_sigqueueinfo(a: Args) -> SysResult {
    let [pid, signal, uinfo, ..] = a.0;
    let (pid, signal) = (pid as i32, signal_arg(signal));
    let info = copy_siginfo_from_user(signal, uinfo)?;
    may_forge(&info, pid)?;
    let current = sched::current();
    let found = find_task_by_vpid(pid).ok_or(ESRCH)?;
    let Some(signal) = check_kill_permission(&current, &found, signal, info.code)? else {
        return Ok(0);
    };
    // One live thread of the process, one not blocking the signal if
    // there is one (as `kill`).
    if let Some(task) = receiving_thread(found.thread_group(), signal) {
        send_info(&task, fix_sender_ids(&task, info.with_signo(signal)), true)?;
    }
    Ok(0)
}

/// `rt_tgsigqueueinfo(tgid, tid, sig, info)`: `info` to thread `tid` of
/// process `tgid`, pending for that thread only.
pub fn rt_tgsigqueueinfo(a: Args) -> SysResult {
    let [tgid, tid, signal, uinfo, ..] = a.0;
    let (tgid, tid, signal) = (tgid as i32, tid as i32, signal_arg(signal));
    let info = copy_siginfo_from_user(signal, uinfo)?;
    if tid <= 0 || tgid <= 0 {
        return Err(EINVAL);
    }
    may_forge(&info, tid)?;
    do_send_specific(tgid, tid, signal, info.code, |task, signal| {
        fix_sender_ids(task, info.with_signo(signal))
    })
}

/// `rt_sigpending(set, sigsetsize)`: the pending signals the caller
/// blocks (Linux `do_sigpending`); `sigsetsize` bytes of them are
/// written, so a size up to 8 is accepted.
pub fn rt_sigpending(a: Args) -> SysResult {
    let [set, sigsetsize, ..] = a.0;
    if sigsetsize > SIGSET_SIZE {
        return Err(EINVAL);
    }
    let pending = sched::current().blocked_pending();
    if sigsetsize > 0 {
        current_mm()?.copy_to_user(set, &pending.to_le_bytes()[..sigsetsize as usize])?;
    }
    Ok(0)
}

/// `rt_sigtimedwait(set, info, timeout, sigsetsize)` (Linux
/// `do_sigtimedwait`): takes a pending signal of `set` (never SIGKILL or
/// SIGSTOP) and returns its number, writing its siginfo to `info` if not
/// NULL. With none pending it waits with `set` unblocked: EAGAIN when the
/// timeout passes (at once for {0, 0}), EINTR when another signal or
/// anything else wakes it first. NULL `timeout` waits forever.
pub fn rt_sigtimedwait(a: Args) -> SysResult {
    let [set, uinfo, timeout, sigsetsize, ..] = a.0;
    if sigsetsize != SIGSET_SIZE {
        return Err(EINVAL);
    }
    let mut bytes = [0u8; 8];
    current_mm()?
        .copy_from_user(set, &mut bytes)
        .map_err(|_| EFAULT)?;
    let timeout = if timeout != 0 {
        Some(super::time::read_raw_timespec(timeout)?)
    } else {
        None
    };
    let info = do_sigtimedwait(u64::from_le_bytes(bytes), timeout)?;
    if uinfo != 0 {
        // The signal is taken even if it cannot be reported (as in Linux).
        current_mm()?
            .copy_to_user(uinfo, &info.to_bytes())
            .map_err(|_| EFAULT)?;
    }
    Ok(u64::from(info.signo.number()))
}

fn do_sigtimedwait(set: u64, timeout: Option<(i64, i64)>) -> Result<SigInfo, i32> {
    let wait_ns = match timeout {
        Some((seconds, nanoseconds)) => {
            if seconds < 0 || !(0..1_000_000_000).contains(&nanoseconds) {
                return Err(EINVAL);
            }
            let ns = (seconds as u64)
                .saturating_mul(1_000_000_000)
                .saturating_add(nanoseconds as u64);
            Some(ns)
        }
        None => None,
    };
    let set = set & !(bit(Signal::SIGKILL) | bit(Signal::SIGSTOP));
    let task = sched::current();
    if timeout == Some((0, 0)) {
        return task.dequeue_signal(set).ok_or(EAGAIN);
    }
    if let Some(info) = task.dequeue_or_unblock_for_wait(set) {
        return Ok(info);
    }
    let woken_early = match wait_ns {
        // The time left: 0 once the timeout has passed.
        Some(ns) => sched::sleep_for_ns(ns) != 0,
        None => {
            sched::wait::sleep_until_signal();
            true
        }
    };
    match task.restore_mask_and_dequeue(set) {
        Some(info) => Ok(info),
        None if woken_early => Err(EINTR),
        None => Err(EAGAIN),
    }
}
