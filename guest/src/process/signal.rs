//! Signal dispositions (Linux `sighand_struct`), masks, and the generic
//! half of delivery (Linux `kernel/signal.c`): sending (`send_signal`,
//! `force_sig_fault`), `signal_pending`, and `get_signal`, which picks the
//! next signal on the way back to user mode and applies default actions.
//! The architecture builds the handler's frame (`arch::signal`).

use alloc::sync::Arc;

use spin::Mutex;

pub use super::sigqueue::SigPending;
pub use forkvm_core::process::sigqueue::{bit, SigFields, SigInfo, SI_USER};

pub use forkvm_abi::linux::signal::{
    Signal, CLD_DUMPED, CLD_EXITED, CLD_KILLED, NSIG, SIGCHLD, SIGCONT, SIGKILL, SIGSEGV, SIGSTOP,
    SIGTSTP, SIGTTIN, SIGTTOU, SIGURG, SIGWINCH,
};

pub use forkvm_abi::linux::signal::{
    SA_NOCLDWAIT, SA_NODEFER, SA_ONSTACK, SA_RESETHAND, SA_RESTART, SA_RESTORER, SIG_DFL, SIG_IGN,
};

/// `si_code` values (SI_USER is the queue's, above).
pub const SI_KERNEL: i32 = 0x80;
pub const SI_TIMER: i32 = -2;
pub const SI_SIGIO: i32 = -5;
/// `tkill`, `tgkill`.
pub const SI_TKILL: i32 = -6;
pub const SEGV_MAPERR: i32 = 1;
pub const SEGV_ACCERR: i32 = 2;

/// The kernel's `struct sigaction` on x86-64 (what `rt_sigaction` copies).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SigAction {
    pub handler: u64,
    pub flags: u64,
    pub restorer: u64,
    pub mask: u64,
}

impl SigAction {
    pub fn to_bytes(self) -> [u8; 32] {
        let mut bytes = [0u8; 32];
        for (i, word) in [self.handler, self.flags, self.restorer, self.mask]
            .iter()
            .enumerate()
        {
            bytes[i * 8..i * 8 + 8].copy_from_slice(&word.to_le_bytes());
        }
        bytes
    }

    pub fn from_bytes(bytes: &[u8; 32]) -> SigAction {
        let word =
            |i: usize| u64::from_le_bytes(bytes[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
        SigAction {
            handler: word(0),
            flags: word(1),
            restorer: word(2),
            mask: word(3),
        }
    }
}

/// The actions of every signal, shared by tasks created with `CLONE_SIGHAND`.
#[derive(Clone)]
pub struct SigHand {
    actions: [SigAction; NSIG as usize],
}

impl Default for SigHand {
    fn default() -> Self {
        SigHand {
            actions: [SigAction::default(); NSIG as usize],
        }
    }
}

impl SigHand {
    pub fn new_shared() -> Arc<Mutex<SigHand>> {
        Arc::new(Mutex::new(SigHand::default()))
    }

    /// The action of `signal` (1..=64).
    pub fn action(&self, signal: u32) -> SigAction {
        self.actions[signal as usize - 1]
    }

    pub fn set_action(&mut self, signal: u32, action: SigAction) {
        self.actions[signal as usize - 1] = action;
    }

    /// At exec, caught signals go back to their default action; ignored
    /// ones stay ignored (Linux `flush_signal_handlers`).
    pub fn reset_for_exec(&mut self) {
        for action in &mut self.actions {
            if action.handler != SIG_IGN {
                *action = SigAction::default();
            }
        }
    }

    /// Whether exiting children are reaped at once (SIGCHLD ignored or
    /// SA_NOCLDWAIT), so they never become zombies.
    pub fn children_autoreap(&self) -> bool {
        let action = self.action(SIGCHLD);
        action.handler == SIG_IGN || action.flags & SA_NOCLDWAIT != 0
    }
}

/// Signals that can be neither caught, ignored nor blocked.
pub fn is_unblockable(signal: u32) -> bool {
    signal == SIGKILL || signal == SIGSTOP
}

/// Whether the default action of `signal` is to ignore it (stop signals
/// too: there is no job control yet).
pub fn default_ignores(signal: u32) -> bool {
    matches!(
        signal,
        SIGCHLD | SIGCONT | SIGURG | SIGWINCH | SIGSTOP | SIGTSTP | SIGTTIN | SIGTTOU
    )
}

/// Whether `handler` drops `signal` at once (Linux `sig_handler_ignored`):
/// SIG_IGN, or SIG_DFL for a signal whose default is to ignore (SIGCONT,
/// SIGCHLD, SIGWINCH, SIGURG: Linux's list, not the stop signals, which
/// are ignored here only for want of job control).
pub fn handler_ignores(handler: u64, signal: u32) -> bool {
    handler == SIG_IGN
        || (handler == SIG_DFL && matches!(signal, SIGCONT | SIGCHLD | SIGWINCH | SIGURG))
}

/// Whether `task` has a signal to act on: a fatal one, or an unblocked
/// pending one, its own or its process's (Linux `signal_pending`).
/// Interruptible waits end on it.
pub fn signal_pending(task: &super::task::Task) -> bool {
    task.fatal_status().is_some() || {
        let inner = task.inner.lock();
        let shared = task.thread_group().shared_pending().signal;
        (inner.pending.signal | shared) & !inner.blocked != 0
    }
}

/// The signals pending for `task` (whose locked state is `inner`): its
/// own and its process's.
pub fn pending_signals(task: &super::task::Task, inner: &super::task::TaskInner) -> u64 {
    inner.pending.signal | task.thread_group().shared_pending().signal
}

/// Sends `info` to thread `task` (Linux `send_signal` with PIDTYPE_PID):
/// only that thread takes it (a pipe writer's SIGPIPE). For the kernel's
/// signals, which cannot fail.
pub fn send_signal(task: &Arc<super::task::Task>, info: SigInfo) {
    let _ = send(task, info, false);
}

/// Sends `info` to the process of `task` (PIDTYPE_TGID: SIGCHLD): pending
/// for the thread group, taken by whichever thread does not block it
/// first. For the kernel's signals, which cannot fail.
pub fn group_send_signal(task: &Arc<super::task::Task>, info: SigInfo) {
    let _ = send(task, info, true);
}

/// Where `task`'s queued signals are counted (`sigqueue::Receiver`).
fn receiver(task: &super::task::Task, inner: &super::task::TaskInner) -> super::sigqueue::Receiver {
    super::sigqueue::Receiver {
        ns: inner.cred.user_ns.clone(),
        uid: inner.cred.uid,
        limit: task.thread_group().rlimits().0[super::sigqueue::RLIMIT_SIGPENDING].cur,
    }
}

/// Linux `send_signal` + `complete_signal`, to thread `task` or (`group`)
/// its process: an ignored signal is dropped unless blocked (its action
/// may change before it is unblocked); otherwise it is queued in the
/// thread's or the process's set (`SigPending::send`: EAGAIN for a
/// real-time signal over RLIMIT_SIGPENDING). Then a thread that does not
/// block it (`task` itself first) is chosen: a fatal default action kills
/// the thread group at once, anything else wakes that thread from an
/// interruptible sleep. If every thread blocks it, it waits.
pub fn send(task: &Arc<super::task::Task>, info: SigInfo, group: bool) -> Result<(), i32> {
    let signal = info.signo;
    // Signal 0 only probes (`kill(pid, 0)`); nothing is sent.
    if Signal::new(signal).is_none() {
        return Ok(());
    }
    let (action, blocked, waited) = {
        let inner = task.inner.lock();
        let action = inner.sighand.lock().action(signal);
        let waited = inner.real_blocked & bit(signal) != 0;
        (action, inner.blocked & bit(signal) != 0, waited)
    };
    if unkillable_ignores(task, signal, action.handler) {
        return Ok(());
    }
    let ignored =
        action.handler == SIG_IGN || (action.handler == SIG_DFL && default_ignores(signal));
    // A signal `rt_sigtimedwait` waits for is in `real_blocked`: neither
    // ignored nor fatal, the waiter takes it.
    if ignored && !blocked && !waited && signal != SIGKILL {
        return Ok(());
    }
    if signal != SIGKILL {
        let mut inner = task.inner.lock();
        let receiver = receiver(task, &inner);
        if group {
            task.thread_group().shared_pending().send(info, &receiver)?;
        } else {
            inner.pending.send(info, &receiver)?;
        }
    }
    let wants = |t: &super::task::Task| {
        signal == SIGKILL
            || (t.inner.lock().blocked & bit(signal) == 0
                && t.fatal_status().is_none()
                && t.state() != super::task::TaskState::Zombie)
    };
    // `task` itself first, then (for the process) its other threads
    // (Linux `complete_signal`).
    let chosen = if wants(task) {
        Some(task.clone())
    } else if group {
        // A thread on its way out (its memory gone) takes nothing more.
        task.thread_group().find_thread(|t| {
            t.state() != super::task::TaskState::Dead && t.mm().is_some() && wants(t)
        })
    } else {
        None
    };
    let Some(chosen) = chosen else {
        return Ok(());
    };
    let waited = chosen.inner.lock().real_blocked & bit(signal) != 0;
    // A blocked signal that init refuses stays pending, never fatal.
    let unkillable = task.thread_group().is_unkillable() && signal != SIGKILL;
    if signal == SIGKILL || (action.handler == SIG_DFL && !ignored && !waited && !unkillable) {
        sigkill_thread_group_with(task.thread_group(), signal);
        return Ok(());
    }
    crate::sched::wake_up(&chosen);
    Ok(())
}

/// Whether init refuses `signal` (Linux `sig_task_ignored` for a
/// SIGNAL_UNKILLABLE task): pid 1 of the machine or of a pid namespace gets
/// no signal it has no handler for, whoever sends it (a user, or the kernel
/// for a child's exit), blocked or not. Only SIGKILL and SIGSTOP from an
/// ancestor pid namespace (a sender that has no pid in init's namespace)
/// reach a namespace's init; the machine's init never gets them.
fn unkillable_ignores(task: &super::task::Task, signal: u32, handler: u64) -> bool {
    if !task.thread_group().is_unkillable() {
        return false;
    }
    let kernel_only = is_unblockable(signal);
    if kernel_only && task.tgid == super::exit::REAPER_PID {
        return true;
    }
    let from_ancestor = crate::sched::current().tgid_in(&task.active_pid_ns()) == 0;
    handler == SIG_DFL && !(from_ancestor && kernel_only)
}

/// A thread is exiting (Linux `exit_signals` + `retarget_shared_pending`):
/// the process's pending signals it does not block may have woken only
/// it, so the other threads that do not block them are woken to take
/// them. Nothing to do when the whole group is exiting.
pub fn retarget_shared_pending(task: &super::task::Task) {
    if task.thread_group().is_group_exiting() || task.fatal_status().is_some() {
        return;
    }
    let mut retarget = {
        let inner = task.inner.lock();
        let shared = task.thread_group().shared_pending().signal;
        shared & !inner.blocked
    };
    if retarget == 0 {
        return;
    }
    for thread in task.thread_group().threads().into_iter().filter(|t| {
        !core::ptr::eq(t.as_ref(), task)
            && t.fatal_status().is_none()
            && t.state() != super::task::TaskState::Zombie
    }) {
        let blocked = thread.inner.lock().blocked;
        if retarget & !blocked == 0 {
            continue;
        }
        retarget &= blocked;
        crate::sched::wake_up(&thread);
        if retarget == 0 {
            break;
        }
    }
}

/// Kills every thread of `task`'s process (a SIGKILL to the whole thread
/// group, Linux `do_send_sig_info(SIGKILL, SEND_SIG_PRIV, task,
/// PIDTYPE_TGID)`): each exits at its next return to user mode or
/// wake-up, and the process's wait status says SIGKILL. Even a pid
/// namespace's init: the kernel's own decision (the OOM killer's).
pub fn sigkill_thread_group(task: &super::task::Task) {
    sigkill_thread_group_with(task.thread_group(), SIGKILL);
}

/// A fatal signal ends the whole thread group (Linux `complete_signal`'s
/// group exit): SIGNAL_GROUP_EXIT with the signal's status, then every
/// thread.
fn sigkill_thread_group_with(group: &super::thread_group::ThreadGroup, signal: u32) {
    let status = group.start_group_exit(super::exit::signal_status(signal));
    for thread in group.threads() {
        thread.set_fatal(status);
    }
}

/// Sends a signal the current task cannot refuse, for a fault or a frame
/// it cannot use (Linux `force_sig_info_to_task`): if the signal is
/// blocked or ignored, it is unblocked and its action reset to SIG_DFL,
/// so it kills.
pub fn force_sig(info: SigInfo) {
    let task = crate::sched::current();
    let signal = info.signo;
    {
        let mut inner = task.inner.lock();
        let blocked = inner.blocked & bit(signal) != 0;
        let sighand = inner.sighand.clone();
        let mut sighand = sighand.lock();
        if blocked || sighand.action(signal).handler == SIG_IGN {
            let mut action = sighand.action(signal);
            action.handler = SIG_DFL;
            sighand.set_action(signal, action);
        }
        // A fault that kills kills even init (Linux clears
        // SIGNAL_UNKILLABLE here).
        if sighand.action(signal).handler == SIG_DFL {
            task.thread_group().clear_unkillable();
        }
        inner.blocked &= !bit(signal);
        // A forced signal replaces a queued instance: its info is the fault's.
        let receiver = receiver(&task, &inner);
        inner.pending.flush(bit(signal));
        let _ = inner.pending.send(info, &receiver); // si_code > 0: never refused
        drop(sighand);
    }
}

/// Linux `unhandled_signal`: whether `signal`, raised by a fault of the
/// current task, will end it rather than run a handler (init counts as
/// unhandled: its faults are always worth a log line).
pub fn unhandled_signal(signal: u32) -> bool {
    let task = crate::sched::current();
    if task.pid == 1 {
        return true;
    }
    let sighand = task.inner.lock().sighand.clone();
    let handler = sighand.lock().action(signal).handler;
    handler == SIG_DFL || handler == SIG_IGN
}

/// Linux `force_sigsegv`: a signal's frame could not be built. A SIGSEGV
/// handler that cannot run is reset first, so the next SIGSEGV kills.
pub fn force_sigsegv(signal: u32) {
    if signal == SIGSEGV {
        let sighand = crate::sched::current().inner.lock().sighand.clone();
        let mut sighand = sighand.lock();
        let mut action = sighand.action(SIGSEGV);
        action.handler = SIG_DFL;
        sighand.set_action(SIGSEGV, action);
    }
    force_sig(SigInfo {
        signo: SIGSEGV,
        code: SI_KERNEL,
        fields: SigFields::None,
    });
}

/// Signals a fault raises, taken before the others (Linux
/// `SYNCHRONOUS_MASK`): SIGSEGV, SIGBUS, SIGILL, SIGTRAP, SIGFPE, SIGSYS.
const SYNCHRONOUS_MASK: u64 = (1 << (11 - 1))
    | (1 << (7 - 1))
    | (1 << (4 - 1))
    | (1 << (5 - 1))
    | (1 << (8 - 1))
    | (1 << (31 - 1));

/// Takes the pending signal of `mask` to act on first, synchronous ones
/// before the others, then the lowest number (Linux `dequeue_signal` and
/// `next_signal`); `get_signal` and `rt_sigtimedwait` share it.
pub fn dequeue_signal(
    task: &super::task::Task,
    inner: &mut super::task::TaskInner,
    mask: u64,
) -> Option<SigInfo> {
    // The thread's own signals first, then the process's.
    if let Some(signal) = next_signal(inner.pending.signal & mask) {
        return Some(inner.pending.collect(signal));
    }
    let info = {
        let mut shared = task.thread_group().shared_pending();
        let signal = next_signal(shared.signal & mask)?;
        shared.collect(signal)
    };
    // A periodic ITIMER_REAL is queued again as its signal is taken.
    if info.signo == forkvm_abi::linux::signal::SIGALRM {
        crate::time::itimer::rearm_real(task.thread_group());
    }
    Some(info)
}

/// Of the signals `ready`, the one to take first (Linux `next_signal`).
fn next_signal(ready: u64) -> Option<u32> {
    if ready == 0 {
        return None;
    }
    let first = if ready & SYNCHRONOUS_MASK != 0 {
        ready & SYNCHRONOUS_MASK
    } else {
        ready
    };
    Some(first.trailing_zeros() + 1)
}

/// Takes the next unblocked pending signal of the current task, applies
/// SIG_IGN and default actions (ignore, or kill the thread group: this
/// does not return), and returns one that has a handler with its action
/// (Linux `get_signal`). `None` when nothing is left to deliver; then a
/// mask `rt_sigsuspend` replaced is put back (Linux
/// `restore_saved_sigmask`), as no handler's frame will carry it.
pub fn get_signal() -> Option<(SigInfo, SigAction)> {
    let task = crate::sched::current();
    loop {
        let (info, action) = {
            let mut inner = task.inner.lock();
            let mask = !inner.blocked;
            let Some(info) = dequeue_signal(&task, &mut inner, mask) else {
                if let Some(mask) = inner.saved_sigmask.take() {
                    inner.blocked = mask;
                }
                return None;
            };
            let action = inner.sighand.lock().action(info.signo);
            (info, action)
        };
        match action.handler {
            SIG_IGN => continue,
            SIG_DFL if default_ignores(info.signo) => continue,
            // Init takes no signal it has no handler for, but the kernel's
            // SIGKILL (Linux `get_signal` with SIGNAL_UNKILLABLE).
            SIG_DFL if task.thread_group().is_unkillable() && !is_unblockable(info.signo) => {
                continue
            }
            SIG_DFL => {
                drop(task);
                super::exit::do_group_exit(super::exit::signal_status(info.signo));
            }
            _ => return Some((info, action)),
        }
    }
}

/// After a handler's frame is built (Linux `signal_delivered`): block the
/// action's mask and (without SA_NODEFER) the signal itself during the
/// handler; SA_RESETHAND makes the action one-shot.
pub fn signal_delivered(signal: u32, action: &SigAction) {
    let task = crate::sched::current();
    let mut inner = task.inner.lock();
    let mut block = action.mask;
    if action.flags & SA_NODEFER == 0 {
        block |= bit(signal);
    }
    inner.blocked = (inner.blocked | block) & !(bit(SIGKILL) | bit(SIGSTOP));
    // The handler's frame holds the stack; rt_sigreturn re-arms it.
    if inner.sas.flags & super::sigaltstack::SS_AUTODISARM != 0 {
        inner.sas = super::sigaltstack::SigAltStack::RESET;
    }
    if action.flags & SA_RESETHAND != 0 {
        // Only the handler is reset; flags and mask stay (as in Linux).
        let mut sighand = inner.sighand.lock();
        let mut reset = sighand.action(signal);
        reset.handler = SIG_DFL;
        sighand.set_action(signal, reset);
    }
}

/// A thread's signal mask, alternate stack and own pending signals, for
/// the signal system calls and the arch code that builds and unwinds
/// handler frames. Each method takes the task's lock once.
impl super::task::Task {
    /// Its blocked signals.
    pub fn blocked(&self) -> u64 {
        self.inner.lock().blocked
    }

    /// Replaces its blocked set (Linux `set_current_blocked`): SIGKILL
    /// and SIGSTOP cannot be blocked, whatever `mask` says.
    pub fn set_blocked(&self, mask: u64) {
        self.inner.lock().blocked = mask & !(bit(SIGKILL) | bit(SIGSTOP));
    }

    /// The signals pending for it, its own and its process's, that it
    /// blocks (`rt_sigpending`).
    pub fn blocked_pending(&self) -> u64 {
        let inner = self.inner.lock();
        pending_signals(self, &inner) & inner.blocked
    }

    /// Discards its own pending signals of `mask` (not its process's).
    pub fn flush_pending(&self, mask: u64) {
        self.inner.lock().pending.flush(mask);
    }

    /// `rt_sigsuspend`'s swap: `mask` becomes the blocked set and the old
    /// one is kept to restore on the way back to user mode (Linux
    /// `saved_sigmask` with `set_restore_sigmask`).
    pub fn set_sigsuspend_mask(&self, mask: u64) {
        let mut inner = self.inner.lock();
        inner.saved_sigmask = Some(inner.blocked);
        inner.blocked = mask & !(bit(SIGKILL) | bit(SIGSTOP));
    }

    /// The mask a handler frame saves (Linux `sigmask_to_save`): the one
    /// `rt_sigsuspend` replaced, if it did, else the blocked set.
    pub fn sigmask_to_save(&self) -> u64 {
        let inner = self.inner.lock();
        inner.saved_sigmask.unwrap_or(inner.blocked)
    }

    /// Puts back the mask `set_sigsuspend_mask` saved, if any (Linux
    /// `restore_saved_sigmask`).
    pub fn restore_saved_sigmask(&self) {
        let mut inner = self.inner.lock();
        if let Some(mask) = inner.saved_sigmask.take() {
            inner.blocked = mask;
        }
    }

    /// Forgets the mask `rt_sigsuspend` saved, once a handler frame holds
    /// it (Linux `clear_restore_sigmask`).
    pub fn clear_restore_sigmask(&self) {
        self.inner.lock().saved_sigmask = None;
    }

    /// Its alternate signal stack.
    pub fn sigaltstack(&self) -> super::sigaltstack::SigAltStack {
        self.inner.lock().sas
    }

    /// `sigaltstack`'s change for a caller at stack pointer `sp`: returns
    /// the old stack as a user `stack_t`, and installs `new` if given
    /// (EPERM while running on the stack, EINVAL/ENOMEM for a bad one).
    pub fn swap_sigaltstack(
        &self,
        sp: u64,
        new: Option<&[u8; super::sigaltstack::STACK_T_SIZE]>,
    ) -> Result<[u8; super::sigaltstack::STACK_T_SIZE], i32> {
        let mut inner = self.inner.lock();
        let old = inner.sas.to_user(sp);
        if let Some(new) = new {
            inner.sas.set(sp, new)?;
        }
        Ok(old)
    }

    /// Takes its first pending signal of `set`, its own or its process's
    /// (`rt_sigtimedwait` with nothing to wait for).
    pub fn dequeue_signal(&self, set: u64) -> Option<SigInfo> {
        let mut inner = self.inner.lock();
        dequeue_signal(self, &mut inner, set)
    }

    /// `rt_sigtimedwait`'s first half (Linux `do_sigtimedwait`): takes a
    /// pending signal of `set`, or else unblocks `set` for the wait, so
    /// that its signals wake the task and `send` finds them wanted (the
    /// old mask goes to `real_blocked`). One lock: no signal slips between
    /// the look and the unblocking.
    pub fn dequeue_or_unblock_for_wait(&self, set: u64) -> Option<SigInfo> {
        let mut inner = self.inner.lock();
        if let Some(info) = dequeue_signal(self, &mut inner, set) {
            return Some(info);
        }
        inner.real_blocked = inner.blocked;
        inner.blocked &= !set;
        None
    }

    /// `rt_sigtimedwait`'s second half: restores the mask the wait lifted
    /// and takes a signal of `set` if one came.
    pub fn restore_mask_and_dequeue(&self, set: u64) -> Option<SigInfo> {
        let mut inner = self.inner.lock();
        inner.blocked = inner.real_blocked;
        inner.real_blocked = 0;
        dequeue_signal(self, &mut inner, set)
    }
}
