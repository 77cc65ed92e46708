//! Thread-directed and synchronous signals: `tkill`/`tgkill` (checks, the
//! SI_TKILL siginfo, the signal staying with the thread it names),
//! `rt_sigpending`, `rt_sigtimedwait` (checks, the order it takes signals
//! in, waiting, EINTR) and `rt_sigqueueinfo`/`rt_tgsigqueueinfo` (checks,
//! the forging rule, si_value reaching a handler or a waiter).
//!
//! Every scenario restores the signal mask and actions it changed and
//! takes the signals it left pending, so it leaves the process as it found
//! it.

use forkvm_user::signal::{
    sigaction, sigaction_raw, sigmask, sigpending, sigpending_raw, sigprocmask, sigqueueinfo,
    sigqueueinfo_raw, sigtimedwait, sigtimedwait_raw, tgkill, tgsigqueueinfo, tkill, SigAction,
    SigInfo, SA_RESTART, SIG_BLOCK, SIG_SETMASK, SIG_UNBLOCK, SI_QUEUE, SI_TKILL, SI_USER,
};
use forkvm_user::syscall::getuid;

use super::*;

pub const SCENARIOS: &[(&str, Scenario)] = &[
    ("tgkill-checks", tgkill_checks),
    ("tgkill-siginfo", tgkill_siginfo),
    ("tgkill-right-thread", tgkill_right_thread),
    ("sigpending-checks", sigpending_checks),
    ("sigpending-per-thread", sigpending_per_thread),
    ("sigpending-shared", sigpending_shared),
    ("sigtimedwait-checks", sigtimedwait_checks),
    ("sigtimedwait-order", sigtimedwait_order),
    ("sigtimedwait-waits", sigtimedwait_waits),
    ("sigtimedwait-eintr", sigtimedwait_eintr),
    ("sigqueueinfo-checks", sigqueueinfo_checks),
    ("sigqueueinfo-handler", sigqueueinfo_handler),
    ("sigqueueinfo-waiter", sigqueueinfo_waiter),
    ("sigqueueinfo-thread", sigqueueinfo_thread),
    ("sigqueueinfo-standard-once", sigqueueinfo_standard_once),
    ("sigqueueinfo-rt-queued", sigqueueinfo_rt_queued),
    ("sigqueueinfo-rt-limit", sigqueueinfo_rt_limit),
    ("pidfd-send-signal-info", pidfd_send_signal_info),
];

use forkvm_user::signal::sig::SIGUSR1;
use forkvm_user::signal::sig::SIGUSR2;
/// Real-time signals, in the upper half of the 64-bit set.
const SIG40: i32 = 40;
const SIG41: i32 = 41;
const SIG42: i32 = 42;
/// A thread id no task has (above the default `pid_max`).
const NO_SUCH_TID: i32 = 0x3fff_0000;
const NOBODY: u32 = 65534;
const POLL: Timespec = Timespec { sec: 0, nsec: 0 };

/// The signal mask the scenario started with, and signals to take before
/// putting it back (so none is left pending).
struct MaskGuard {
    mask: u64,
    drain: u64,
}

impl MaskGuard {
    /// Blocks `set` (on top of the current mask) until dropped.
    fn block(set: u64) -> Result<MaskGuard, Msg> {
        let mask = sigprocmask(SIG_BLOCK, Some(set)).ctx("rt_sigprocmask")?;
        Ok(MaskGuard { mask, drain: set })
    }
}

impl Drop for MaskGuard {
    fn drop(&mut self) {
        while sigtimedwait(self.drain, Some(&POLL)).is_ok() {}
        let _ = sigprocmask(SIG_SETMASK, Some(self.mask));
    }
}

/// An action replaced for one scenario.
struct ActionGuard {
    signal: i32,
    old: SigAction,
}

impl ActionGuard {
    fn install(
        signal: i32,
        handler: forkvm_user::signal::Handler,
        flags: u64,
    ) -> Result<Self, Msg> {
        let old = sigaction(signal, handler, flags, 0).ctx("rt_sigaction")?;
        Ok(ActionGuard { signal, old })
    }
}

impl Drop for ActionGuard {
    fn drop(&mut self) {
        let _ = sigaction_raw(self.signal, Some(&self.old));
    }
}

/// What the handler saw last, and how many calls there were.
static CALLS: AtomicU32 = AtomicU32::new(0);
static SEEN_SIGNO: AtomicI32 = AtomicI32::new(0);
static SEEN_CODE: AtomicI32 = AtomicI32::new(0);
static SEEN_PID: AtomicU32 = AtomicU32::new(0);
static SEEN_UID: AtomicU32 = AtomicU32::new(0);
static SEEN_VALUE: AtomicU64 = AtomicU64::new(0);

fn reset_seen() {
    CALLS.store(0, Ordering::SeqCst);
    SEEN_SIGNO.store(0, Ordering::SeqCst);
    SEEN_CODE.store(0, Ordering::SeqCst);
    SEEN_PID.store(0, Ordering::SeqCst);
    SEEN_UID.store(0, Ordering::SeqCst);
    SEEN_VALUE.store(0, Ordering::SeqCst);
}

extern "C" fn record(signo: i32, info: *mut SigInfo, _uc: *mut u8) {
    // SAFETY: the kernel passes a valid siginfo for the call.
    let info = unsafe { *info };
    SEEN_SIGNO.store(signo, Ordering::SeqCst);
    SEEN_CODE.store(info.code, Ordering::SeqCst);
    SEEN_PID.store(info.pid(), Ordering::SeqCst);
    SEEN_UID.store(info.uid(), Ordering::SeqCst);
    SEEN_VALUE.store(info.value(), Ordering::SeqCst);
    CALLS.fetch_add(1, Ordering::SeqCst);
}

/// `result` must be the error `want`.
fn expect_errno<T: fmt::Debug>(what: &str, result: Result<T, Errno>, want: Errno) -> Outcome {
    match result {
        Err(e) if e == want => Ok(()),
        other => Err(msg!("{what}: {other:?}, expected {want}")),
    }
}

/// The signal and siginfo a wait or handler saw.
fn expect_info(what: &str, signal: i32, info: &SigInfo, want: (i32, i32, u32, u32)) -> Outcome {
    let got = (signal, info.code, info.pid(), info.uid());
    ensure!(
        got == want && info.signo == signal,
        "{what}: (signo, si_code, si_pid, si_uid) {got:?} with si_signo {}, expected {want:?}",
        info.signo
    );
    Ok(())
}

/// Runs `body` in a child that has dropped to uid `NOBODY`; the child's
/// exit status is `body`'s result (100 if setuid failed).
fn as_nobody(body: impl FnOnce() -> i32) -> Result<WaitStatus, Msg> {
    let child = Child::spawn(|| {
        if forkvm_user::cred::setuid(NOBODY).is_err() {
            return 100;
        }
        body()
    })?;
    child.wait_bounded("unprivileged child")
}

/// `tkill` and `tgkill` check in Linux's order: EINVAL for a tid (or tgid)
/// <= 0, then ESRCH for no such thread (before the signal is looked at)
/// or a thread of another group, then EINVAL for a bad signal, then EPERM;
/// signal 0 only checks.
fn tgkill_checks(_: &Ctx) -> Outcome {
    let (pid, tid) = (getpid() as i32, gettid() as i32);
    expect_errno("tkill(0, 0)", tkill(0, 0), Errno::EINVAL)?;
    expect_errno("tkill(-1, 0)", tkill(-1, 0), Errno::EINVAL)?;
    expect_errno("tgkill(0, tid, 0)", tgkill(0, tid, 0), Errno::EINVAL)?;
    expect_errno("tgkill(pid, 0, 0)", tgkill(pid, 0, 0), Errno::EINVAL)?;
    expect_errno("tgkill(-1, tid, 0)", tgkill(-1, tid, 0), Errno::EINVAL)?;
    expect_errno(
        "tkill(no such tid, 65)",
        tkill(NO_SUCH_TID, 65),
        Errno::ESRCH,
    )?;
    expect_errno(
        "tgkill(parent's pid, own tid, 0)",
        tgkill(getppid() as i32, tid, 0),
        Errno::ESRCH,
    )?;
    expect_errno("tkill(self, 65)", tkill(tid, 65), Errno::EINVAL)?;
    expect_errno("tgkill(self, 65)", tgkill(pid, tid, 65), Errno::EINVAL)?;
    tkill(tid, 0).ctx("tkill(self, 0)")?;
    tgkill(pid, tid, 0).ctx("tgkill(self, 0)")?;
    // Ids and signals are C ints: the upper half of the register is not
    // looked at, a negative signal is invalid.
    let high = 1usize << 32;
    // SAFETY: signal 0 only checks; no memory is involved.
    let wide = unsafe { syscall2(200, high | tid as usize, high) };
    ensure!(wide == 0, "tkill(2^32 | tid, 2^32): {}", Ret(wide));
    expect_errno("tkill(self, -1)", tkill(tid, -1), Errno::EINVAL)?;
    // Another user's process: EPERM, for signal 0 too.
    let status = as_nobody(|| match (tkill(pid, 0), tgkill(pid, pid, SIGUSR1)) {
        (Err(Errno::EPERM), Err(Errno::EPERM)) => 0,
        _ => 1,
    })?;
    ensure!(
        status.exited() && status.exit_status() == 0,
        "an unprivileged tkill/tgkill of root's process was not EPERM ({})",
        Status(status)
    );
    Ok(())
}

/// The siginfo of `tgkill` and `tkill`: SI_TKILL with the sender's pid
/// and uid, to a waiter and to a handler (which runs before the call
/// returns).
fn tgkill_siginfo(_: &Ctx) -> Outcome {
    let (pid, tid, uid) = (getpid() as i32, gettid() as i32, getuid());
    {
        let _mask = MaskGuard::block(sigmask(SIGUSR1))?;
        tgkill(pid, tid, SIGUSR1).ctx("tgkill(self, SIGUSR1)")?;
        let (signal, info) = sigtimedwait(sigmask(SIGUSR1), Some(&POLL)).ctx("sigtimedwait")?;
        expect_info(
            "tgkill",
            signal,
            &info,
            (SIGUSR1, SI_TKILL, pid as u32, uid),
        )?;
    }
    reset_seen();
    let _action = ActionGuard::install(SIGUSR2, record, 0)?;
    tkill(tid, SIGUSR2).ctx("tkill(self, SIGUSR2)")?;
    let got = (
        CALLS.load(Ordering::SeqCst),
        SEEN_SIGNO.load(Ordering::SeqCst),
        SEEN_CODE.load(Ordering::SeqCst),
        SEEN_PID.load(Ordering::SeqCst),
        SEEN_UID.load(Ordering::SeqCst),
    );
    let want = (1, SIGUSR2, SI_TKILL, pid as u32, uid);
    ensure!(
        got == want,
        "tkill's handler (calls, signo, si_code, si_pid, si_uid): {got:?}, expected {want:?}"
    );
    Ok(())
}

/// What a scenario's thread reports.
#[derive(Default)]
struct ThreadWait {
    /// The thread's id, once it runs.
    tid: AtomicU32,
    /// Set by the creator when it has sent what the thread waits for.
    sent: AtomicU32,
    /// What the thread saw: up to two signals with their siginfo.
    signals: [AtomicI32; 2],
    codes: [AtomicI32; 2],
    pids: [AtomicU32; 2],
    values: [AtomicU64; 2],
    /// The thread's `rt_sigpending` after `sent` (`u64::MAX`: failed).
    pending: AtomicU64,
}

/// Takes two signals of {SIGUSR1, SIGUSR2} with `rt_sigtimedwait` (at most
/// a few seconds each) and reports them.
extern "C" fn thread_waits_twice(arg: usize) -> ! {
    // SAFETY: the creator joins us before its report goes away.
    let report: &ThreadWait = unsafe { shared(arg) };
    report.tid.store(gettid(), Ordering::SeqCst);
    let limit = Timespec::from_nanos(TIMEOUT_NS);
    for i in 0..2 {
        match sigtimedwait(sigmask(SIGUSR1) | sigmask(SIGUSR2), Some(&limit)) {
            Ok((signal, info)) => {
                report.signals[i].store(signal, Ordering::SeqCst);
                report.codes[i].store(info.code, Ordering::SeqCst);
                report.pids[i].store(info.pid(), Ordering::SeqCst);
                report.values[i].store(info.value(), Ordering::SeqCst);
            }
            Err(e) => report.signals[i].store(-e.0, Ordering::SeqCst),
        }
    }
    exit(0)
}

/// Starts `body` as a thread with `set` blocked in it (and, afterwards,
/// unblocked again in the caller), and waits until it runs; returns its
/// stack (to join) and its tid.
fn start_thread(
    set: u64,
    body: extern "C" fn(usize) -> !,
    report: &ThreadWait,
) -> Result<(ThreadStack, i32), Msg> {
    let stack = ThreadStack::new()?;
    // The thread inherits the mask at clone.
    let before = sigprocmask(SIG_BLOCK, Some(set)).ctx("rt_sigprocmask")?;
    // SAFETY: `report` and `stack` outlive the thread: the callers join it.
    let created = unsafe { stack.clone(THREAD_FLAGS, body, report as *const ThreadWait as usize) };
    let _ = sigprocmask(SIG_SETMASK, Some(before));
    created.ctx("clone(thread)")?;
    let deadline = monotonic_ns() + TIMEOUT_NS;
    while report.tid.load(Ordering::SeqCst) == 0 {
        ensure!(monotonic_ns() < deadline, "the thread did not start");
        sleep_ns(MS);
    }
    Ok((stack, report.tid.load(Ordering::SeqCst) as i32))
}

/// Two threads blocking differently: this one has a handler for SIGUSR1
/// and does not block it, the other blocks it and waits in
/// `rt_sigtimedwait`. `tgkill` to the other one is taken there (a
/// process-directed `kill` could go to this thread); this thread's
/// handler never runs.
fn tgkill_right_thread(_: &Ctx) -> Outcome {
    reset_seen();
    let _action = ActionGuard::install(SIGUSR1, record, 0)?;
    let _mask = MaskGuard::block(0)?;
    sigprocmask(SIG_UNBLOCK, Some(sigmask(SIGUSR1) | sigmask(SIGUSR2))).ctx("unblock")?;
    let report = ThreadWait::default();
    let (stack, tid) = start_thread(
        sigmask(SIGUSR1) | sigmask(SIGUSR2),
        thread_waits_twice,
        &report,
    )?;
    let pid = getpid() as i32;
    let sent = tgkill(pid, tid, SIGUSR1).ctx("tgkill(thread, SIGUSR1)");
    let sent = sent.and_then(|()| tgkill(pid, tid, SIGUSR2).ctx("tgkill(thread, SIGUSR2)"));
    stack.join()?;
    sent?;
    let calls = CALLS.load(Ordering::SeqCst);
    ensure!(
        calls == 0,
        "this thread's handler ran {calls} times for signals sent to the other thread"
    );
    for (i, want) in [SIGUSR1, SIGUSR2].into_iter().enumerate() {
        let (signal, code, from) = (
            report.signals[i].load(Ordering::SeqCst),
            report.codes[i].load(Ordering::SeqCst),
            report.pids[i].load(Ordering::SeqCst),
        );
        ensure!(
            (signal, code, from) == (want, SI_TKILL, pid as u32),
            "the thread's wait {i}: signal {signal} (negative: errno), si_code {code}, \
             si_pid {from}; expected {want}, SI_TKILL, {pid}"
        );
    }
    Ok(())
}

/// `rt_sigpending`: EINVAL for a size over 8, EFAULT for a bad pointer;
/// the blocked pending signals, of which only `sigsetsize` bytes are
/// written (a real-time signal in the upper half is left out with 4).
fn sigpending_checks(_: &Ctx) -> Outcome {
    let mut set = 0u64;
    let at = &mut set as *mut u64 as usize;
    expect_errno("rt_sigpending(16)", sigpending_raw(at, 16), Errno::EINVAL)?;
    expect_errno("rt_sigpending(bad)", sigpending_raw(8, 8), Errno::EFAULT)?;
    let _mask = MaskGuard::block(sigmask(SIGUSR1) | sigmask(SIG40))?;
    ensure!(sigpending().ctx("rt_sigpending")? == 0, "pending at start");
    let (pid, tid) = (getpid() as i32, gettid() as i32);
    kill(pid, SIGUSR1).ctx("kill(self, SIGUSR1)")?;
    tgkill(pid, tid, SIG40).ctx("tgkill(self, 40)")?;
    let both = sigmask(SIGUSR1) | sigmask(SIG40);
    let got = sigpending().ctx("rt_sigpending")?;
    ensure!(got == both, "rt_sigpending {got:#x}, expected {both:#x}");
    set = 0xaaaa_aaaa_aaaa_aaaa;
    sigpending_raw(at, 4).ctx("rt_sigpending(4)")?;
    let want = 0xaaaa_aaaa_0000_0000 | sigmask(SIGUSR1);
    ensure!(
        set == want,
        "rt_sigpending with size 4 wrote {set:#x}, expected {want:#x}"
    );
    set = 7;
    sigpending_raw(at, 0).ctx("rt_sigpending(0)")?;
    ensure!(set == 7, "rt_sigpending with size 0 wrote {set:#x}");
    sigpending_raw(0, 0).ctx("rt_sigpending(NULL, 0)")?;
    // Ignoring a signal discards it while pending (POSIX; Linux
    // `do_sigaction`), blocked or not.
    let old = sigaction_raw(
        SIG40,
        Some(&SigAction {
            handler: forkvm_user::signal::SIG_IGN,
            ..SigAction::default()
        }),
    )
    .ctx("rt_sigaction(40, SIG_IGN)")?;
    let after = sigpending();
    let _ = sigaction_raw(SIG40, Some(&old));
    let after = after.ctx("rt_sigpending")?;
    ensure!(
        after == sigmask(SIGUSR1),
        "rt_sigpending after ignoring pending signal 40: {after:#x}, expected {:#x}",
        sigmask(SIGUSR1)
    );
    Ok(())
}

/// Reports its `rt_sigpending` once the creator has sent its signal, then
/// takes the signal.
extern "C" fn thread_reports_pending(arg: usize) -> ! {
    // SAFETY: the creator joins us before its report goes away.
    let report: &ThreadWait = unsafe { shared(arg) };
    report.tid.store(gettid(), Ordering::SeqCst);
    let deadline = monotonic_ns() + TIMEOUT_NS;
    while report.sent.load(Ordering::SeqCst) == 0 && monotonic_ns() < deadline {
        sleep_ns(MS);
    }
    report
        .pending
        .store(sigpending().unwrap_or(u64::MAX), Ordering::SeqCst);
    let taken = match sigtimedwait(sigmask(SIGUSR2), Some(&POLL)) {
        Ok((signal, _)) => signal,
        Err(e) => -e.0,
    };
    report.signals[0].store(taken, Ordering::SeqCst);
    exit(0)
}

/// A signal `tgkill` sent to another thread that blocks it is pending for
/// that thread only: its `rt_sigpending` shows it, this thread's does not.
fn sigpending_per_thread(_: &Ctx) -> Outcome {
    let _mask = MaskGuard::block(sigmask(SIGUSR2))?;
    let report = ThreadWait::default();
    let (stack, tid) = start_thread(0, thread_reports_pending, &report)?;
    let sent = tgkill(getpid() as i32, tid, SIGUSR2).ctx("tgkill(thread, SIGUSR2)");
    let mine = sigpending();
    report.sent.store(1, Ordering::SeqCst);
    stack.join()?;
    sent?;
    let mine = mine.ctx("rt_sigpending")?;
    ensure!(
        mine == 0,
        "this thread's rt_sigpending {mine:#x}: the other thread's signal shows"
    );
    let theirs = report.pending.load(Ordering::SeqCst);
    ensure!(
        theirs == sigmask(SIGUSR2),
        "the thread's rt_sigpending {theirs:#x}, expected {:#x}",
        sigmask(SIGUSR2)
    );
    Ok(())
}

/// A signal `kill` sent to the process while every thread blocks it is
/// the process's: both threads' `rt_sigpending` show it, and once the
/// other thread has taken it, it is gone for this one too.
fn sigpending_shared(_: &Ctx) -> Outcome {
    let _mask = MaskGuard::block(sigmask(SIGUSR2))?;
    let report = ThreadWait::default();
    let (stack, _) = start_thread(0, thread_reports_pending, &report)?;
    let sent = kill(getpid() as i32, SIGUSR2).ctx("kill(self, SIGUSR2)");
    let mine = sigpending();
    report.sent.store(1, Ordering::SeqCst);
    stack.join()?;
    sent?;
    let after = sigpending().ctx("rt_sigpending")?;
    let mine = mine.ctx("rt_sigpending")?;
    let theirs = report.pending.load(Ordering::SeqCst);
    let taken = report.signals[0].load(Ordering::SeqCst);
    let want = sigmask(SIGUSR2);
    ensure!(
        (mine, theirs) == (want, want),
        "rt_sigpending here {mine:#x}, in the other thread {theirs:#x}; both expected {want:#x}"
    );
    ensure!(
        taken == SIGUSR2,
        "the other thread's rt_sigtimedwait got {taken} (negative: errno), expected {SIGUSR2}"
    );
    ensure!(
        after == 0,
        "rt_sigpending {after:#x} here after the other thread took the signal"
    );
    Ok(())
}

/// `rt_sigtimedwait`'s checks in Linux's order: EINVAL for a size other
/// than 8 (before the set is read), EFAULT for the set, then for the
/// timeout, EINVAL for a bad timespec; EAGAIN when nothing comes, at once
/// for {0, 0} and when a short timeout passes.
fn sigtimedwait_checks(_: &Ctx) -> Outcome {
    let set = sigmask(SIGUSR1);
    let set_at = &set as *const u64 as usize;
    let ts = |t: &Timespec| t as *const Timespec as usize;
    let bad_nsec = Timespec {
        sec: 0,
        nsec: 1_000_000_000,
    };
    let negative = Timespec { sec: -1, nsec: 0 };
    let _mask = MaskGuard::block(set)?;
    let cases: [(&str, usize, usize, usize, Errno); 7] = [
        ("size 4", set_at, ts(&POLL), 4, Errno::EINVAL),
        ("size 16, bad set", 8, ts(&POLL), 16, Errno::EINVAL),
        ("bad set", 8, ts(&POLL), 8, Errno::EFAULT),
        ("bad set, bad timespec", 8, ts(&bad_nsec), 8, Errno::EFAULT),
        ("bad timeout pointer", set_at, 8, 8, Errno::EFAULT),
        ("tv_nsec 1e9", set_at, ts(&bad_nsec), 8, Errno::EINVAL),
        ("tv_sec -1", set_at, ts(&negative), 8, Errno::EINVAL),
    ];
    for (what, set, timeout, size, want) in cases {
        expect_errno(what, sigtimedwait_raw(set, 0, timeout, size), want)?;
    }
    expect_errno(
        "poll, nothing pending",
        sigtimedwait(set, Some(&POLL)),
        Errno::EAGAIN,
    )?;
    expect_errno(
        "10 ms, nothing sent",
        sigtimedwait(set, Some(&Timespec::from_nanos(10 * MS))),
        Errno::EAGAIN,
    )?;
    // SIGKILL and SIGSTOP are taken out of the set: nothing to wait for.
    expect_errno(
        "poll for SIGKILL",
        sigtimedwait(sigmask(SIGKILL), Some(&POLL)),
        Errno::EAGAIN,
    )?;
    Ok(())
}

/// Pending signals are taken synchronous ones first (SIGSEGV before
/// SIGUSR1), then the lowest number; one outside the set stays pending; a
/// bad `info` pointer is EFAULT with the signal taken all the same.
fn sigtimedwait_order(_: &Ctx) -> Outcome {
    let all = sigmask(SIGUSR1) | sigmask(SIGUSR2) | sigmask(SIGSEGV) | sigmask(SIG40);
    let _mask = MaskGuard::block(all)?;
    let (pid, uid) = (getpid() as i32, getuid());
    for signal in [SIG40, SIGUSR2, SIGUSR1, SIGSEGV] {
        kill(pid, signal).ctx("kill(self)")?;
    }
    let wanted = sigmask(SIGUSR1) | sigmask(SIGUSR2) | sigmask(SIGSEGV);
    for want in [SIGSEGV, SIGUSR1] {
        let (signal, info) = sigtimedwait(wanted, Some(&POLL)).ctx("sigtimedwait")?;
        expect_info("kill", signal, &info, (want, SI_USER, pid as u32, uid))?;
    }
    let mask = wanted;
    let taken = sigtimedwait_raw(&mask as *const u64 as usize, 8, 0, 8);
    expect_errno("sigtimedwait with info at 8", taken, Errno::EFAULT)?;
    let left = sigpending().ctx("rt_sigpending")?;
    ensure!(
        left == sigmask(SIG40),
        "pending after taking SIGSEGV, SIGUSR1 and SIGUSR2 (EFAULT): {left:#x}, expected only \
         signal 40 {:#x}",
        sigmask(SIG40)
    );
    Ok(())
}

/// A child blocks SIGUSR1 (default action: terminate) and waits for it
/// with no timeout; the parent's `kill` ends the wait with SI_USER and the
/// parent's pid, and does not kill the child (the waited signal is
/// neither ignored nor fatal: Linux's `real_blocked`). Exit codes: 0 ok,
/// 1 wrong signal, 2 wrong siginfo, 3 error.
fn sigtimedwait_waits(_: &Ctx) -> Outcome {
    let (parent, uid) = (getpid(), getuid());
    let (r, w) = pipe()?;
    let child = Child::spawn(|| {
        if sigprocmask(SIG_BLOCK, Some(sigmask(SIGUSR1))).is_err() || write(w.raw(), b"r") != Ok(1)
        {
            return 3;
        }
        match sigtimedwait(sigmask(SIGUSR1), None) {
            Ok((SIGUSR1, info))
                if (info.code, info.pid(), info.uid()) == (SI_USER, parent, uid) =>
            {
                0
            }
            Ok((SIGUSR1, _)) => 2,
            Ok(_) => 1,
            Err(_) => 3,
        }
    })?;
    let mut ready = [0u8];
    ensure!(
        read_full(r.raw(), &mut ready)? == 1,
        "the child did not get ready"
    );
    // Most likely asleep in the wait by now (if not, it finds the signal
    // pending: the result is the same).
    sleep_ns(20 * MS);
    kill(child.pid() as i32, SIGUSR1).ctx("kill(child)")?;
    let status = child.wait_bounded("waiting child")?;
    expect_exit("child in rt_sigtimedwait(SIGUSR1)", status, 0)
}

/// A signal outside the set that has a handler ends the wait with EINTR,
/// even with SA_RESTART, with or without a timeout. Exit codes: 0 ok,
/// 1 not EINTR, 2 no handler call, 100 setup.
fn sigtimedwait_eintr(_: &Ctx) -> Outcome {
    for timeout in [None, Some(Timespec::from_nanos(10 * TIMEOUT_NS))] {
        let (r, w) = pipe()?;
        let child = Child::spawn(|| {
            reset_seen();
            if sigaction(SIGUSR2, record, SA_RESTART, 0).is_err()
                || sigprocmask(SIG_BLOCK, Some(sigmask(SIGUSR1))).is_err()
                || write(w.raw(), b"r") != Ok(1)
            {
                return 100;
            }
            // A signal that came before the wait ran its handler already;
            // the next one interrupts the wait.
            match sigtimedwait(sigmask(SIGUSR1), timeout.as_ref()) {
                Err(Errno::EINTR) if CALLS.load(Ordering::SeqCst) > 0 => 0,
                Err(Errno::EINTR) => 2,
                _ => 1,
            }
        })?;
        let status = signal_until_exit(child, r.raw(), SIGUSR2, "rt_sigtimedwait")?;
        expect_exit(
            if timeout.is_some() {
                "rt_sigtimedwait(10 s) interrupted"
            } else {
                "rt_sigtimedwait(forever) interrupted"
            },
            status,
            0,
        )?;
    }
    Ok(())
}

/// Results of the `sigqueueinfo-checks` thread (errno, 0 for success).
static THREAD_FORGE_ERRNO: AtomicI32 = AtomicI32::new(-1);
static THREAD_OWN_ERRNO: AtomicI32 = AtomicI32::new(-1);

fn errno_of(result: Result<(), Errno>) -> i32 {
    result.err().map_or(0, |e| e.0)
}

/// A non-leader thread: SI_USER to its process's pid is forging (the
/// rule compares the caller's *thread* id), to its own tid it is not.
extern "C" fn thread_tries_forging(arg: usize) -> ! {
    // SAFETY: the creator joins us before its report goes away.
    let report: &ThreadWait = unsafe { shared(arg) };
    let tid = gettid();
    let user = SigInfo::queued(SI_USER, getpid(), getuid(), 0);
    THREAD_FORGE_ERRNO.store(
        errno_of(sigqueueinfo(getpid() as i32, 0, &user)),
        Ordering::SeqCst,
    );
    THREAD_OWN_ERRNO.store(
        errno_of(tgsigqueueinfo(getpid() as i32, tid as i32, 0, &user)),
        Ordering::SeqCst,
    );
    report.tid.store(tid, Ordering::SeqCst);
    exit(0)
}

/// `rt_sigqueueinfo` and `rt_tgsigqueueinfo` check in Linux's order: the
/// siginfo is read first (EFAULT; E2BIG for an unknown si_code with bytes
/// past the kernel's siginfo), then EINVAL for ids <= 0 (tg), EPERM for a
/// code >= 0 or SI_TKILL to another thread, ESRCH, EINVAL for a bad
/// signal, and EPERM for another user's process.
fn sigqueueinfo_checks(_: &Ctx) -> Outcome {
    let (pid, tid, uid) = (getpid() as i32, gettid() as i32, getuid());
    let queue = SigInfo::queued(SI_QUEUE, pid as u32, uid, 0);
    expect_errno(
        "rt_sigqueueinfo(info at 8)",
        sigqueueinfo_raw(pid, SIGUSR1, 8),
        Errno::EFAULT,
    )?;
    let mut unknown = SigInfo::queued(-8, 0, 0, 0);
    unknown.set_byte(60, 1);
    expect_errno(
        "rt_sigqueueinfo(si_code -8, byte 60 set)",
        sigqueueinfo(pid, SIGUSR1, &unknown),
        Errno::E2BIG,
    )?;
    // SAFETY: the kernel fails to read at 8 (EFAULT); nothing is written.
    let ret = unsafe { syscall4(297, 0, 0, SIGUSR1 as usize, 8) };
    expect_errno(
        "rt_tgsigqueueinfo(0, 0, info at 8)",
        forkvm_user::syscall::check(ret),
        Errno::EFAULT,
    )?;
    expect_errno(
        "rt_tgsigqueueinfo(0, tid)",
        tgsigqueueinfo(0, tid, SIGUSR1, &queue),
        Errno::EINVAL,
    )?;
    expect_errno(
        "rt_tgsigqueueinfo(pid, 0)",
        tgsigqueueinfo(pid, 0, SIGUSR1, &queue),
        Errno::EINVAL,
    )?;
    expect_errno(
        "rt_sigqueueinfo(0)",
        sigqueueinfo(0, SIGUSR1, &queue),
        Errno::ESRCH,
    )?;
    expect_errno(
        "rt_sigqueueinfo(no such pid, 65)",
        sigqueueinfo(NO_SUCH_TID, 65, &queue),
        Errno::ESRCH,
    )?;
    expect_errno(
        "rt_sigqueueinfo(self, 65)",
        sigqueueinfo(pid, 65, &queue),
        Errno::EINVAL,
    )?;
    expect_errno(
        "rt_tgsigqueueinfo(parent, own tid)",
        tgsigqueueinfo(getppid() as i32, tid, 0, &queue),
        Errno::ESRCH,
    )?;
    // Codes >= 0 and SI_TKILL: only to oneself.
    for code in [SI_USER, SI_TKILL, 0x80] {
        let forged = SigInfo::queued(code, pid as u32, uid, 0);
        expect_errno(
            "rt_sigqueueinfo(parent, kernel or kill code)",
            sigqueueinfo(getppid() as i32, 0, &forged),
            Errno::EPERM,
        )?;
        sigqueueinfo(pid, 0, &forged).ctx("rt_sigqueueinfo(self, code >= 0, signal 0)")?;
        tgsigqueueinfo(pid, tid, 0, &forged).ctx("rt_tgsigqueueinfo(self, code >= 0)")?;
    }
    sigqueueinfo(pid, 0, &queue).ctx("rt_sigqueueinfo(self, 0)")?;
    tgsigqueueinfo(pid, tid, 0, &queue).ctx("rt_tgsigqueueinfo(self, 0)")?;
    let report = ThreadWait::default();
    THREAD_FORGE_ERRNO.store(-1, Ordering::SeqCst);
    THREAD_OWN_ERRNO.store(-1, Ordering::SeqCst);
    let (stack, _) = start_thread(0, thread_tries_forging, &report)?;
    stack.join()?;
    let (forge, own) = (
        THREAD_FORGE_ERRNO.load(Ordering::SeqCst),
        THREAD_OWN_ERRNO.load(Ordering::SeqCst),
    );
    ensure!(
        forge == Errno::EPERM.0 && own == 0,
        "a thread's SI_USER to its process {forge}, to itself {own} (errno); expected EPERM, 0"
    );
    let status = as_nobody(|| {
        let info = SigInfo::queued(SI_QUEUE, getpid(), NOBODY, 0);
        match (
            sigqueueinfo(pid, SIGUSR1, &info),
            tgsigqueueinfo(pid, pid, 0, &info),
        ) {
            (Err(Errno::EPERM), Err(Errno::EPERM)) => 0,
            _ => 1,
        }
    })?;
    ensure!(
        status.exited() && status.exit_status() == 0,
        "an unprivileged rt_sigqueueinfo to root's process was not EPERM ({})",
        Status(status)
    );
    Ok(())
}

const VALUE: u64 = 0x1234_5678_9abc_def0;

/// A handler with SA_SIGINFO gets the queued siginfo as it was sent:
/// si_signo set to the signal, si_code SI_QUEUE, and si_pid, si_uid and
/// si_value as the sender wrote them (a process may name any pid).
fn sigqueueinfo_handler(_: &Ctx) -> Outcome {
    reset_seen();
    let _action = ActionGuard::install(SIGUSR2, record, 0)?;
    let _mask = MaskGuard::block(0)?;
    sigprocmask(SIG_UNBLOCK, Some(sigmask(SIGUSR2))).ctx("unblock")?;
    let mut info = SigInfo::queued(SI_QUEUE, 4242, 77, VALUE);
    info.signo = SIGUSR1; // replaced by the signal sent
    sigqueueinfo(getpid() as i32, SIGUSR2, &info).ctx("rt_sigqueueinfo(self)")?;
    let got = (
        CALLS.load(Ordering::SeqCst),
        SEEN_SIGNO.load(Ordering::SeqCst),
        SEEN_CODE.load(Ordering::SeqCst),
        SEEN_PID.load(Ordering::SeqCst),
        SEEN_UID.load(Ordering::SeqCst),
        SEEN_VALUE.load(Ordering::SeqCst),
    );
    let want = (1, SIGUSR2, SI_QUEUE, 4242, 77, VALUE);
    ensure!(
        got == want,
        "handler (calls, signo, si_code, si_pid, si_uid, si_value): {got:x?}, expected {want:x?}"
    );
    Ok(())
}

/// From another process: a parent waiting in `rt_sigtimedwait` gets the
/// child's SI_QUEUE siginfo with its value.
fn sigqueueinfo_waiter(_: &Ctx) -> Outcome {
    let _mask = MaskGuard::block(sigmask(SIGUSR1))?;
    let (parent, uid) = (getpid() as i32, getuid());
    let child = Child::spawn(|| {
        let info = SigInfo::queued(SI_QUEUE, getpid(), getuid(), VALUE);
        i32::from(sigqueueinfo(parent, SIGUSR1, &info).is_err())
    })?;
    let sender = child.pid();
    let waited = sigtimedwait(sigmask(SIGUSR1), Some(&Timespec::from_nanos(TIMEOUT_NS)));
    expect_exit("queueing child", child.wait_bounded("queueing child")?, 0)?;
    let (signal, info) = waited.ctx("rt_sigtimedwait")?;
    expect_info(
        "rt_sigqueueinfo",
        signal,
        &info,
        (SIGUSR1, SI_QUEUE, sender, uid),
    )?;
    ensure!(
        info.value() == VALUE,
        "si_value {:#x}, expected {VALUE:#x}",
        info.value()
    );
    Ok(())
}

/// `rt_tgsigqueueinfo` to another thread: that thread's wait takes both
/// signals with their values; this thread, which has a handler and blocks
/// neither, sees nothing.
fn sigqueueinfo_thread(_: &Ctx) -> Outcome {
    reset_seen();
    let _action = ActionGuard::install(SIGUSR1, record, 0)?;
    let _mask = MaskGuard::block(0)?;
    sigprocmask(SIG_UNBLOCK, Some(sigmask(SIGUSR1) | sigmask(SIGUSR2))).ctx("unblock")?;
    let report = ThreadWait::default();
    let (stack, tid) = start_thread(
        sigmask(SIGUSR1) | sigmask(SIGUSR2),
        thread_waits_twice,
        &report,
    )?;
    let (pid, uid) = (getpid(), getuid());
    let mut sent = Ok(());
    for (signal, value) in [(SIGUSR2, VALUE), (SIGUSR1, !VALUE)] {
        let info = SigInfo::queued(SI_QUEUE, pid, uid, value);
        sent = sent.and_then(|()| {
            tgsigqueueinfo(pid as i32, tid, signal, &info).ctx("rt_tgsigqueueinfo(thread)")
        });
    }
    stack.join()?;
    sent?;
    let calls = CALLS.load(Ordering::SeqCst);
    ensure!(
        calls == 0,
        "this thread's handler ran {calls} times for signals queued to the other thread"
    );
    // The thread takes the lowest pending number first if both are there
    // by then, else in the order sent.
    let mut got: [(i32, i32, u64); 2] = core::array::from_fn(|i| {
        (
            report.signals[i].load(Ordering::SeqCst),
            report.codes[i].load(Ordering::SeqCst),
            report.values[i].load(Ordering::SeqCst),
        )
    });
    got.sort();
    let want = [(SIGUSR1, SI_QUEUE, !VALUE), (SIGUSR2, SI_QUEUE, VALUE)];
    ensure!(
        got == want,
        "the thread took (signal, si_code, si_value) {got:x?}, expected {want:x?}"
    );
    Ok(())
}

/// A standard signal is pending once: a second `rt_sigqueueinfo` while the
/// first is pending is dropped (its value is lost), as in Linux.
fn sigqueueinfo_standard_once(_: &Ctx) -> Outcome {
    let _mask = MaskGuard::block(sigmask(SIGUSR1))?;
    let (pid, uid) = (getpid(), getuid());
    for value in [1, 2] {
        let info = SigInfo::queued(SI_QUEUE, pid, uid, value);
        sigqueueinfo(pid as i32, SIGUSR1, &info).ctx("rt_sigqueueinfo(self)")?;
    }
    let (signal, info) = sigtimedwait(sigmask(SIGUSR1), Some(&POLL)).ctx("sigtimedwait")?;
    ensure!(
        (signal, info.value()) == (SIGUSR1, 1),
        "took signal {signal} with si_value {}, expected {SIGUSR1} with 1",
        info.value()
    );
    expect_errno(
        "second rt_sigtimedwait",
        sigtimedwait(sigmask(SIGUSR1), Some(&POLL)),
        Errno::EAGAIN,
    )
}

/// Real-time signals queue every instance, taken in the order sent (and
/// the lowest number first); the signal stays pending until the last.
fn sigqueueinfo_rt_queued(_: &Ctx) -> Outcome {
    let _mask = MaskGuard::block(sigmask(SIG40) | sigmask(SIG41))?;
    let (pid, uid) = (getpid(), getuid());
    let queue = |signal: i32, value: u64| {
        let info = SigInfo::queued(SI_QUEUE, pid, uid, value);
        sigqueueinfo(pid as i32, signal, &info).ctx("rt_sigqueueinfo(self)")
    };
    queue(SIG41, 9)?;
    for value in [1, 2, 3] {
        queue(SIG40, value)?;
    }
    kill(pid as i32, SIG40).ctx("kill(self, 40)")?;
    let both = sigmask(SIG40) | sigmask(SIG41);
    let want = [
        (SIG40, SI_QUEUE, 1, both),
        (SIG40, SI_QUEUE, 2, both),
        (SIG40, SI_QUEUE, 3, both),
        (SIG40, SI_USER, 0, sigmask(SIG41)),
        (SIG41, SI_QUEUE, 9, 0),
    ];
    for (i, (signal, code, value, left)) in want.into_iter().enumerate() {
        let (got, info) = sigtimedwait(both, Some(&POLL)).ctx("sigtimedwait")?;
        let pending = sigpending().ctx("rt_sigpending")?;
        let seen = (got, info.code, info.value(), pending);
        ensure!(
            seen == (signal, code, value, left),
            "wait {i}: (signal, si_code, si_value, pending after) {seen:x?}, expected \
             {:x?}",
            (signal, code, value, left)
        );
    }
    expect_errno(
        "sigtimedwait, all taken",
        sigtimedwait(both, Some(&POLL)),
        Errno::EAGAIN,
    )
}

/// RLIMIT_SIGPENDING counts the queued siginfo of the receiver's user:
/// with a limit of 3, a fourth real-time `rt_sigqueueinfo` (and a `tkill`)
/// is EAGAIN; `kill` and a standard signal still get through without
/// their siginfo (SI_USER from pid 0). In a child running as nobody, so
/// no other process's signals count. Exit codes: the step that failed.
fn sigqueueinfo_rt_limit(_: &Ctx) -> Outcome {
    const RLIMIT_SIGPENDING: u32 = 11;
    let status = as_nobody(|| {
        let limit = forkvm_user::cred::Rlimit { cur: 3, max: 3 };
        let all = sigmask(SIG40) | sigmask(SIG41) | sigmask(SIG42) | sigmask(SIGUSR1);
        if forkvm_user::cred::setrlimit(RLIMIT_SIGPENDING, limit).is_err()
            || sigprocmask(SIG_BLOCK, Some(all)).is_err()
        {
            return 1;
        }
        let (pid, uid) = (getpid(), getuid());
        let queue = |signal: i32, value: u64| {
            sigqueueinfo(
                pid as i32,
                signal,
                &SigInfo::queued(SI_QUEUE, pid, uid, value),
            )
        };
        if [0, 1, 2].into_iter().any(|v| queue(SIG40, v).is_err()) {
            return 2;
        }
        if queue(SIG40, 3) != Err(Errno::EAGAIN) {
            return 3;
        }
        if tkill(gettid() as i32, SIG42) != Err(Errno::EAGAIN) {
            return 4;
        }
        if kill(pid as i32, SIG41).is_err() || queue(SIGUSR1, 7).is_err() {
            return 5;
        }
        let want = [
            (SIGUSR1, SI_USER, 0, 0),
            (SIG40, SI_QUEUE, pid, 0),
            (SIG40, SI_QUEUE, pid, 1),
            (SIG40, SI_QUEUE, pid, 2),
            (SIG41, SI_USER, 0, 0),
        ];
        for (i, want) in want.into_iter().enumerate() {
            match sigtimedwait(all, Some(&POLL)) {
                Ok((signal, info)) if (signal, info.code, info.pid(), info.value()) == want => {}
                _ => return 10 + i as i32,
            }
        }
        match sigtimedwait(all, Some(&POLL)) {
            Err(Errno::EAGAIN) => 0,
            _ => 20,
        }
    })?;
    let what = match status.exited().then(|| status.exit_status()) {
        Some(0) => return Ok(()),
        Some(1) => "setrlimit or rt_sigprocmask failed",
        Some(2) => "three rt_sigqueueinfo under the limit did not all succeed",
        Some(3) => "the fourth real-time rt_sigqueueinfo was not EAGAIN",
        Some(4) => "tkill of a real-time signal over the limit was not EAGAIN",
        Some(5) => "kill or a standard rt_sigqueueinfo over the limit failed",
        Some(10..=14) => "a signal was taken out of order or with the wrong siginfo",
        Some(20) => "more signals pending than sent",
        _ => "",
    };
    Err(msg!("{what} ({})", Status(status)))
}

/// `pidfd_send_signal(pidfd, sig, info, flags)` with a siginfo: Linux's
/// checks in order (flags: one scope at most, the descriptor, the siginfo
/// read, its si_signo equal to `sig`, kernel and `kill` codes only to
/// oneself), and a queued one reaching a waiter with its value.
fn pidfd_send_signal_info(_: &Ctx) -> Outcome {
    use forkvm_user::syscall::{pidfd_open, syscall4};
    use forkvm_user::syscall::nr::PIDFD_SEND_SIGNAL;
    let send = |fd: i32, signal: i32, info: usize, flags: usize| {
        // SAFETY: the kernel reads at most a siginfo at `info`.
        let ret = unsafe { syscall4(PIDFD_SEND_SIGNAL, fd as usize, signal as usize, info, flags) };
        forkvm_user::syscall::check(ret).map(drop)
    };
    let _mask = MaskGuard::block(sigmask(SIGUSR1))?;
    let (pid, uid) = (getpid(), getuid());
    let own = pidfd_open(pid as i32, 0).ctx("pidfd_open(self)")?;
    let mut info = SigInfo::queued(SI_QUEUE, pid, uid, VALUE);
    info.signo = SIGUSR1;
    let at = |info: &SigInfo| info as *const SigInfo as usize;
    let mut mismatched = info;
    mismatched.signo = SIGUSR2;
    let (r, _w) = pipe()?;
    let checks: [(&str, i32, i32, usize, usize, Errno); 7] = [
        ("flags 8", own, SIGUSR1, at(&info), 8, Errno::EINVAL),
        ("two scopes", own, SIGUSR1, at(&info), 3, Errno::EINVAL),
        ("bad fd, bad info", 1000, SIGUSR1, 8, 0, Errno::EBADF),
        ("pipe fd", r.raw(), SIGUSR1, at(&info), 0, Errno::EBADF),
        ("info at 8", own, SIGUSR1, 8, 0, Errno::EFAULT),
        (
            "si_signo SIGUSR2",
            own,
            SIGUSR1,
            at(&mismatched),
            0,
            Errno::EINVAL,
        ),
        ("signal 65", own, 65, at(&info), 0, Errno::EINVAL),
    ];
    for (what, fd, signal, info, flags, want) in checks {
        expect_errno(what, send(fd, signal, info, flags), want)?;
    }
    // A queued siginfo to oneself reaches rt_sigtimedwait as sent, with
    // the default scope, the thread's (PIDFD_SIGNAL_THREAD) and the
    // process's (PIDFD_SIGNAL_THREAD_GROUP).
    for flags in [0, 1, 2] {
        send(own, SIGUSR1, at(&info), flags).ctx("pidfd_send_signal(self, SI_QUEUE)")?;
        let (signal, got) = sigtimedwait(sigmask(SIGUSR1), Some(&POLL)).ctx("rt_sigtimedwait")?;
        expect_info(
            "pidfd_send_signal",
            signal,
            &got,
            (SIGUSR1, SI_QUEUE, pid, uid),
        )?;
        ensure!(
            got.value() == VALUE,
            "si_value {:#x}, expected {VALUE:#x}",
            got.value()
        );
    }
    // Kernel and kill codes: to oneself only; the parent refuses them.
    let parent = pidfd_open(getppid() as i32, 0).ctx("pidfd_open(parent)")?;
    for code in [SI_USER, SI_TKILL, 0x80] {
        let mut forged = SigInfo::queued(code, pid, uid, 0);
        forged.signo = SIGUSR1;
        expect_errno(
            "pidfd_send_signal(parent, kernel or kill code)",
            send(parent, SIGUSR1, at(&forged), 0),
            Errno::EPERM,
        )?;
        send(own, SIGUSR1, at(&forged), 0).ctx("pidfd_send_signal(self, code >= 0)")?;
        let (signal, got) = sigtimedwait(sigmask(SIGUSR1), Some(&POLL)).ctx("rt_sigtimedwait")?;
        ensure!(
            signal == SIGUSR1 && got.code == code,
            "took signal {signal} code {}, expected SIGUSR1 code {code}",
            got.code
        );
    }
    let _ = close(parent);
    // PIDFD_SIGNAL_PROCESS_GROUP: the group whose id is the pidfd's pid
    // (a child leading its own group here); no forged code even to it.
    let (r, w) = pipe()?;
    let child = Child::spawn(|| {
        let ready = forkvm_user::syscall::setpgid(0, 0).is_ok() && write(w.raw(), b"r") == Ok(1);
        let waited = sigtimedwait(sigmask(SIGUSR1), Some(&Timespec::from_nanos(TIMEOUT_NS)));
        i32::from(!ready) | i32::from(!matches!(waited, Ok((SIGUSR1, _)))) << 1
    })?;
    let mut byte = [0u8; 1];
    read_full(r.raw(), &mut byte)?;
    let group = pidfd_open(child.pid() as i32, 0).ctx("pidfd_open(child)")?;
    let mut forged = SigInfo::queued(SI_USER, pid, uid, 0);
    forged.signo = SIGUSR1;
    expect_errno(
        "pidfd_send_signal(own group scope, SI_USER info)",
        send(own, SIGUSR1, at(&forged), 4),
        Errno::EPERM,
    )?;
    send(group, SIGUSR1, 0, 4).ctx("pidfd_send_signal(child, PIDFD_SIGNAL_PROCESS_GROUP)")?;
    expect_exit(
        "group leader child (1: setpgid, 2: no SIGUSR1)",
        child.wait_bounded("group leader child")?,
        0,
    )?;
    let _ = close(group);
    let _ = close(own);
    Ok(())
}
