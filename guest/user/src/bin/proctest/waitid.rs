//! `waitid` and `pidfd_open`: the argument checks in Linux's order, the
//! `siginfo_t` a report fills (and the fields it zeroes when there is
//! none), WNOWAIT, WNOHANG, P_PGID, P_PIDFD with blocking and non-blocking
//! pidfds, EFAULT after the reap, and `wait4` refusing `waitid`'s options.

use forkvm_user::cred::setuid;
use forkvm_user::syscall::{
    getuid, pidfd_open, pidfd_send_signal, setpgid, waitid, waitid_into, waitid_raw, WaitidInfo,
    CLD_EXITED, CLD_KILLED, PIDFD_NONBLOCK, P_ALL, P_PGID, P_PID, P_PIDFD, WALL, WCONTINUED,
    WEXITED, WNOWAIT, WSTOPPED, WUNTRACED,
};

use super::*;

pub const SCENARIOS: &[(&str, Scenario)] = &[
    ("waitid-checks", waitid_checks),
    ("waitid-exited-siginfo", waitid_exited_siginfo),
    ("waitid-killed-siginfo", waitid_killed_siginfo),
    ("waitid-wnohang-zeroes", waitid_wnohang_zeroes),
    ("waitid-wnowait", waitid_wnowait),
    ("waitid-pgid", waitid_pgid),
    ("waitid-efault", waitid_efault),
    ("waitid-wait4-options", waitid_wait4_options),
    ("pidfd-open-checks", pidfd_open_checks),
    ("pidfd-open-waitid", pidfd_open_waitid),
    ("pidfd-open-like-clone-pidfd", pidfd_open_like_clone_pidfd),
    ("wait-sibling-thread-child", wait_sibling_thread_child),
];

use forkvm_user::signal::sig::SIGCHLD;
/// What the buffers are filled with before a call, to see what it wrote.
const FILL: u8 = 0xab;
/// `siginfo_t` bytes `waitid` does not own: between si_code and the union,
/// and after si_status.
const NOT_OURS: [core::ops::Range<usize>; 2] = [12..16, 28..128];

/// A fresh `siginfo_t` buffer full of [`FILL`].
fn filled() -> [u8; 128] {
    [FILL; 128]
}

/// The bytes `waitid` must leave alone are still [`FILL`].
fn untouched(info: &[u8; 128], what: &str) -> Outcome {
    for range in NOT_OURS {
        let at = range.clone().find(|&i| info[i] != FILL);
        ensure!(
            at.is_none(),
            "{what}: waitid wrote byte {} of siginfo_t, outside its fields",
            at.unwrap_or(0)
        );
    }
    Ok(())
}

/// `waitid` into a filled buffer: what it returned and stored.
fn call(idtype: u32, id: i32, options: u32) -> (Result<(), Errno>, WaitidInfo, [u8; 128]) {
    let mut info = filled();
    let result = waitid_into(idtype, id, &mut info, options);
    (result, WaitidInfo::from_bytes(&info), info)
}

/// A failing `waitid` returns `errno` and still zeroes its fields (Linux
/// writes `infop` whatever the outcome), leaving the rest alone.
fn expect_error(idtype: u32, id: i32, options: u32, errno: Errno, what: &str) -> Outcome {
    let (result, info, bytes) = call(idtype, id, options);
    ensure!(result == Err(errno), "{what}: {result:?}, want {errno}");
    ensure!(
        info == WaitidInfo::default(),
        "{what}: the failing waitid left {info:?} in siginfo_t, want its fields zeroed"
    );
    untouched(&bytes, what)
}

/// A `waitid` that finds nothing ready (WNOHANG) returns 0 with
/// si_signo, si_code, si_pid, si_uid and si_status zeroed.
fn expect_none_ready(idtype: u32, id: i32, options: u32, what: &str) -> Outcome {
    let (result, info, bytes) = call(idtype, id, options);
    ensure!(result == Ok(()), "{what}: {result:?}, want 0");
    ensure!(
        info == WaitidInfo::default(),
        "{what}: nothing ready but siginfo_t holds {info:?}, want zeroes"
    );
    untouched(&bytes, what)
}

/// Checks a report of `pid` ending with `code`/`status` by a child of real
/// uid `uid`.
fn expect_report(
    info: &WaitidInfo,
    pid: Pid,
    uid: u32,
    code: i32,
    status: i32,
    what: &str,
) -> Outcome {
    let want = WaitidInfo {
        signo: SIGCHLD,
        errno: 0,
        code,
        pid: pid as i32,
        uid,
        status,
    };
    ensure!(*info == want, "{what}: siginfo_t {info:?}, want {want:?}");
    Ok(())
}

/// Polls `waitid(idtype, id, WEXITED | WNOHANG | extra)` until it reports
/// a child, for at most [`TIMEOUT_NS`] (for children whose end depends on
/// a signal).
fn waitid_bounded(idtype: u32, id: i32, extra: u32, what: &str) -> Result<WaitidInfo, Msg> {
    let deadline = monotonic_ns() + TIMEOUT_NS;
    loop {
        let info = waitid(idtype, id, WEXITED | WNOHANG | extra).ctx(what)?;
        if info.pid != 0 {
            return Ok(info);
        }
        ensure!(
            monotonic_ns() < deadline,
            "{what}: no child ended within {} ms",
            TIMEOUT_NS / MS
        );
        sleep_ns(200_000);
    }
}

/// The checks of Linux's `kernel_waitid`, in order: unknown option bits,
/// then none of WEXITED/WSTOPPED/WCONTINUED (EINVAL), then the id type
/// and id (EINVAL for a bad type or a negative id, also P_PID 0; EBADF for
/// a descriptor that is not a pidfd), then ECHILD for no such child.
fn waitid_checks(_: &Ctx) -> Outcome {
    expect_error(P_ALL, 0, 0, Errno::EINVAL, "options 0")?;
    expect_error(P_ALL, 0, WNOHANG, Errno::EINVAL, "WNOHANG alone")?;
    expect_error(P_ALL, 0, WNOWAIT, Errno::EINVAL, "WNOWAIT alone")?;
    expect_error(P_ALL, 0, WEXITED | 0x10, Errno::EINVAL, "unknown bit 0x10")?;
    expect_error(
        P_ALL,
        0,
        WEXITED | 0x100,
        Errno::EINVAL,
        "unknown bit 0x100",
    )?;
    expect_error(4, 0, WEXITED, Errno::EINVAL, "id type 4")?;
    expect_error(P_PID, 0, WEXITED, Errno::EINVAL, "P_PID 0")?;
    expect_error(P_PID, -1, WEXITED, Errno::EINVAL, "P_PID -1")?;
    expect_error(P_PGID, -1, WEXITED, Errno::EINVAL, "P_PGID -1")?;
    expect_error(P_PIDFD, -1, WEXITED, Errno::EINVAL, "P_PIDFD -1")?;
    expect_error(
        P_PIDFD,
        900,
        WEXITED,
        Errno::EBADF,
        "P_PIDFD of a closed fd",
    )?;
    let (read_end, _write_end) = pipe()?;
    expect_error(
        P_PIDFD,
        read_end.raw(),
        WEXITED,
        Errno::EBADF,
        "P_PIDFD of a pipe",
    )?;
    // Options are checked before the descriptor.
    expect_error(
        P_PIDFD,
        900,
        0,
        Errno::EINVAL,
        "P_PIDFD of a closed fd, options 0",
    )?;
    // A pid that is no child of ours (any more): ECHILD, WNOHANG or not.
    let gone = {
        let child = Child::spawn(|| 0)?;
        let pid = child.pid();
        child.wait()?;
        pid
    };
    expect_error(
        P_PID,
        gone as i32,
        WEXITED,
        Errno::ECHILD,
        "P_PID of a reaped child",
    )?;
    expect_error(
        P_PID,
        gone as i32,
        WEXITED | WNOHANG,
        Errno::ECHILD,
        "the same, WNOHANG",
    )?;
    expect_error(
        P_PID,
        getpid() as i32,
        WEXITED,
        Errno::ECHILD,
        "P_PID of itself",
    )?;
    // A NULL infop is allowed: only the result.
    // SAFETY: NULL: the kernel writes nothing.
    let result = unsafe { waitid_raw(P_ALL, 0, 0, 0) };
    ensure!(
        result == Err(Errno::EINVAL),
        "options 0, NULL infop: {result:?}, want EINVAL"
    );
    Ok(())
}

/// A child that exits: SIGCHLD, si_errno 0, CLD_EXITED, its pid, its real
/// uid (changed by the child when we are root, so the caller's own uid
/// would not pass), its exit code; reaped (then ECHILD).
fn waitid_exited_siginfo(_: &Ctx) -> Outcome {
    let uid = if getuid() == 0 { 4321 } else { getuid() };
    let child = Child::spawn(move || match setuid(uid) {
        Ok(()) => 7,
        Err(_) => 99,
    })?;
    let pid = child.pid();
    let (result, info, bytes) = call(P_PID, pid as i32, WEXITED);
    ensure!(result == Ok(()), "waitid(P_PID {pid}, WEXITED): {result:?}");
    child.reaped();
    expect_report(&info, pid, uid, CLD_EXITED, 7, "exit 7")?;
    untouched(&bytes, "exit 7")?;
    expect_error(P_PID, pid as i32, WEXITED, Errno::ECHILD, "after the reap")?;
    // Only the low 8 bits of the exit code.
    let child = Child::spawn(|| 0x1ff)?;
    let pid = child.pid();
    let info = waitid(P_ALL, 0, WEXITED).ctx("waitid(P_ALL)")?;
    child.reaped();
    expect_report(&info, pid, getuid(), CLD_EXITED, 0xff, "exit 0x1ff")
}

/// A child killed by SIGKILL: CLD_KILLED with the signal as si_status.
fn waitid_killed_siginfo(_: &Ctx) -> Outcome {
    let gate = Gate::new()?;
    let child = Child::spawn(gate.hold(0))?;
    let pid = child.pid();
    kill(pid as i32, SIGKILL).ctx("kill")?;
    let info = waitid_bounded(P_PID, pid as i32, 0, "waitid of the killed child")?;
    child.reaped();
    expect_report(&info, pid, getuid(), CLD_KILLED, SIGKILL, "SIGKILL")?;
    gate.open()
}

/// WNOHANG with a running child: 0, fields zeroed; the child counts for
/// WSTOPPED and WCONTINUED too (no ECHILD). Once it is a zombie, a wait for
/// WSTOPPED alone gives ECHILD (Linux: only WEXITED sees zombies).
fn waitid_wnohang_zeroes(_: &Ctx) -> Outcome {
    let gate = Gate::new()?;
    let child = Child::spawn(gate.hold(4))?;
    let pid = child.pid() as i32;
    expect_none_ready(P_PID, pid, WEXITED | WNOHANG, "WEXITED|WNOHANG, running")?;
    expect_none_ready(P_ALL, 0, WEXITED | WNOHANG, "P_ALL WNOHANG, running")?;
    expect_none_ready(P_PID, pid, WSTOPPED | WNOHANG, "WSTOPPED|WNOHANG, running")?;
    expect_none_ready(
        P_PID,
        pid,
        WCONTINUED | WNOHANG,
        "WCONTINUED|WNOHANG, running",
    )?;
    gate.open()?;
    // Blocks until it has exited; leaves it a zombie.
    let info = waitid(P_PID, pid, WEXITED | WNOWAIT).ctx("waitid(WNOWAIT)")?;
    expect_report(&info, pid as Pid, getuid(), CLD_EXITED, 4, "WNOWAIT")?;
    expect_error(
        P_PID,
        pid,
        WSTOPPED | WNOHANG,
        Errno::ECHILD,
        "WSTOPPED, zombie",
    )?;
    expect_error(
        P_PID,
        pid,
        WCONTINUED | WNOHANG,
        Errno::ECHILD,
        "WCONTINUED, zombie",
    )?;
    let info = waitid(P_PID, pid, WEXITED | WSTOPPED).ctx("waitid(WEXITED|WSTOPPED)")?;
    child.reaped();
    expect_report(&info, pid as Pid, getuid(), CLD_EXITED, 4, "reap")
}

/// WNOWAIT reports the child and leaves it waitable: a second `waitid`
/// reports it again, `wait4` then reaps it, after which it is gone.
fn waitid_wnowait(_: &Ctx) -> Outcome {
    let child = Child::spawn(|| 5)?;
    let pid = child.pid();
    for round in ["first", "second"] {
        let info = waitid(P_ALL, 0, WEXITED | WNOWAIT).ctx("waitid(WNOWAIT)")?;
        expect_report(&info, pid, getuid(), CLD_EXITED, 5, round)?;
    }
    let status = child.wait()?;
    expect_exit("wait4 after two WNOWAIT reports", status, 5)?;
    expect_error(P_ALL, 0, WEXITED | WNOHANG, Errno::ECHILD, "after wait4")
}

/// P_PGID: id 0 is the caller's group, id N group N; a child in another
/// group is not taken; a group with no child of ours gives ECHILD.
fn waitid_pgid(_: &Ctx) -> Outcome {
    let gate = Gate::new()?;
    let ours = Child::spawn(gate.hold(1))?;
    let other = Child::spawn(gate.hold(2))?;
    setpgid(other.pid() as i32, other.pid() as i32).ctx("setpgid(other, other)")?;
    gate.open()?;
    let info = waitid(P_PGID, 0, WEXITED).ctx("waitid(P_PGID 0)")?;
    expect_report(&info, ours.pid(), getuid(), CLD_EXITED, 1, "P_PGID 0")?;
    ours.reaped();
    // The other child is the only one left, in a group of its own.
    expect_error(P_PGID, 0, WEXITED, Errno::ECHILD, "P_PGID 0 again")?;
    let info = waitid(P_PGID, other.pid() as i32, WEXITED).ctx("waitid(P_PGID other)")?;
    expect_report(&info, other.pid(), getuid(), CLD_EXITED, 2, "P_PGID other")?;
    let gone = other.reaped();
    expect_error(
        P_PGID,
        gone as i32,
        WEXITED,
        Errno::ECHILD,
        "P_PGID of a group gone",
    )
}

/// A bad `infop` is EFAULT after the wait: the child is reaped (or, with
/// WNOWAIT, still there). A NULL `infop` reaps and returns 0.
fn waitid_efault(_: &Ctx) -> Outcome {
    let hole = Mapping::new(PAGE)?.unmap()?;
    let child = Child::spawn(|| 3)?;
    let pid = child.pid() as i32;
    // SAFETY: nothing is mapped at `hole`: the kernel cannot write there.
    let result = unsafe { waitid_raw(P_PID, pid, hole, WEXITED | WNOWAIT) };
    ensure!(
        result == Err(Errno::EFAULT),
        "WNOWAIT, unmapped infop: {result:?}, want EFAULT"
    );
    let info = waitid(P_PID, pid, WEXITED | WNOWAIT).ctx("waitid(WNOWAIT) after the EFAULT")?;
    expect_report(&info, pid as Pid, getuid(), CLD_EXITED, 3, "still waitable")?;
    // SAFETY: as above.
    let result = unsafe { waitid_raw(P_PID, pid, hole, WEXITED) };
    ensure!(
        result == Err(Errno::EFAULT),
        "unmapped infop: {result:?}, want EFAULT"
    );
    let again = wait4(pid, WNOHANG);
    ensure!(
        again == Err(Errno::ECHILD),
        "wait4 after the EFAULT: {again:?}, want ECHILD (reaped before the copy)"
    );
    child.reaped();
    // SAFETY: as above.
    let result = unsafe { waitid_raw(P_ALL, 0, hole, WEXITED) };
    ensure!(
        result == Err(Errno::EFAULT),
        "no child, unmapped infop: {result:?}, want EFAULT"
    );
    let child = Child::spawn(|| 6)?;
    // SAFETY: NULL: the kernel writes nothing.
    let result = unsafe { waitid_raw(P_PID, child.pid() as i32, 0, WEXITED) };
    ensure!(result == Ok(()), "NULL infop: {result:?}, want 0");
    let again = wait4(child.pid() as i32, WNOHANG);
    child.reaped();
    ensure!(
        again == Err(Errno::ECHILD),
        "wait4 after waitid(NULL): {again:?}, want ECHILD"
    );
    Ok(())
}

/// `wait4` shares the selection but not the options: WEXITED (implied)
/// and WNOWAIT are EINVAL; WUNTRACED, WCONTINUED, __WALL are accepted.
fn waitid_wait4_options(_: &Ctx) -> Outcome {
    let child = Child::spawn(|| 8)?;
    let pid = child.pid() as i32;
    for (options, name) in [(WEXITED, "WEXITED"), (WNOWAIT, "WNOWAIT"), (0x10, "0x10")] {
        let got = wait4(pid, options | WNOHANG);
        ensure!(
            got == Err(Errno::EINVAL),
            "wait4({name}): {got:?}, want EINVAL"
        );
    }
    let options = WUNTRACED | WCONTINUED | WALL;
    let (got, status) = wait4(pid, options).ctx("wait4(WUNTRACED|WCONTINUED|__WALL)")?;
    child.reaped();
    ensure!(got == pid as Pid, "wait4 returned {got}, want {pid}");
    expect_exit("wait4", status, 8)
}

/// `fcntl(fd, F_GETFD)`: 1 if the descriptor is close-on-exec.
fn close_on_exec(fd: &Fd) -> Result<usize, Errno> {
    forkvm_user::syscall::fcntl(fd.raw(), forkvm_abi::linux::fcntl::F_GETFD, 0)
}

/// `pidfd_open`'s checks in Linux's order: flags (EINVAL, also for
/// PIDFD_NONBLOCK's neighbours), pid <= 0 (EINVAL), no such process
/// (ESRCH), a thread that is not its group's leader (ENOENT: the host's
/// Linux 6.18 answers so; 5.x kernels answered EINVAL). A pidfd is
/// close-on-exec; a zombie still has one.
fn pidfd_open_checks(_: &Ctx) -> Outcome {
    let me = getpid() as i32;
    for flags in [1, 0x40, 0o2000000] {
        let got = pidfd_open(me, flags);
        ensure!(
            got == Err(Errno::EINVAL),
            "pidfd_open(self, {flags:#x}): {got:?}, want EINVAL"
        );
    }
    for pid in [0, -1, i32::MIN] {
        let got = pidfd_open(pid, 0);
        ensure!(
            got == Err(Errno::EINVAL),
            "pidfd_open({pid}): {got:?}, want EINVAL"
        );
    }
    let gone = {
        let child = Child::spawn(|| 0)?;
        let pid = child.pid();
        child.wait()?;
        pid as i32
    };
    let got = pidfd_open(gone, 0);
    ensure!(
        got == Err(Errno::ESRCH),
        "pidfd_open(reaped child): {got:?}, want ESRCH"
    );
    // Flags are checked before the pid.
    let got = pidfd_open(gone, 1);
    ensure!(
        got == Err(Errno::EINVAL),
        "pidfd_open(reaped child, 1): {got:?}, want EINVAL"
    );

    for flags in [0, PIDFD_NONBLOCK] {
        let fd = Fd(pidfd_open(me, flags).ctx("pidfd_open(self)")?);
        let got = close_on_exec(&fd);
        ensure!(
            got == Ok(1),
            "F_GETFD of a pidfd (flags {flags:#x}): {got:?}, want FD_CLOEXEC"
        );
    }

    // A thread of ours: its tid names no process.
    let (read_end, write_end) = pipe()?;
    let stack = ThreadStack::new()?;
    // SAFETY: the thread only reads the pipe and exits; it is joined
    // before `stack` and the pipe go.
    let tid = unsafe { stack.clone(THREAD_FLAGS, thread_waits, read_end.raw() as usize) }
        .ctx("clone(thread)")?;
    let got = pidfd_open(tid as i32, 0);
    write_end.close()?;
    stack.join()?;
    ensure!(
        got == Err(Errno::ENOENT),
        "pidfd_open(thread {tid}): {got:?}, want ENOENT"
    );

    let child = Child::spawn(|| 0)?;
    let info = waitid(P_PID, child.pid() as i32, WEXITED | WNOWAIT).ctx("waitid(WNOWAIT)")?;
    ensure!(
        info.pid == child.pid() as i32,
        "waitid(WNOWAIT) reported {info:?}"
    );
    let fd = pidfd_open(child.pid() as i32, 0).map(Fd);
    ensure!(
        fd.is_ok(),
        "pidfd_open(zombie): {:?}, want a descriptor",
        fd.as_ref().err()
    );
    Ok(())
}

/// A `clone` thread that waits for end of file on the pipe `fd`, then
/// exits (itself only).
extern "C" fn thread_waits(fd: usize) -> ! {
    let mut byte = [0u8; 1];
    while let Err(Errno::EINTR) = read(fd as i32, &mut byte) {}
    exit(0)
}

/// A pidfd from `pidfd_open` works with `waitid(P_PIDFD)` (WNOHANG: 0 while
/// the child runs; a PIDFD_NONBLOCK pidfd: EAGAIN without WNOHANG) and
/// `pidfd_send_signal`; once reaped, ECHILD; a pidfd of a process that is
/// not our child: ECHILD.
fn pidfd_open_waitid(_: &Ctx) -> Outcome {
    let gate = Gate::new()?;
    let child = Child::spawn(gate.hold(0))?;
    let pid = child.pid();
    let fd = Fd(pidfd_open(pid as i32, 0).ctx("pidfd_open(child)")?);
    let nonblocking = Fd(pidfd_open(pid as i32, PIDFD_NONBLOCK).ctx("pidfd_open(NONBLOCK)")?);
    expect_none_ready(P_PIDFD, fd.raw(), WEXITED | WNOHANG, "P_PIDFD WNOHANG")?;
    expect_error(
        P_PIDFD,
        nonblocking.raw(),
        WEXITED,
        Errno::EAGAIN,
        "non-blocking pidfd",
    )?;
    expect_none_ready(
        P_PIDFD,
        nonblocking.raw(),
        WEXITED | WNOHANG,
        "non-blocking pidfd, WNOHANG",
    )?;
    pidfd_send_signal(fd.raw(), SIGKILL).ctx("pidfd_send_signal(SIGKILL)")?;
    let info = waitid_bounded(P_PIDFD, fd.raw(), WNOWAIT, "P_PIDFD of the killed child")?;
    expect_report(&info, pid, getuid(), CLD_KILLED, SIGKILL, "P_PIDFD WNOWAIT")?;
    let info = waitid(P_PIDFD, nonblocking.raw(), WEXITED).ctx("waitid(P_PIDFD, NONBLOCK)")?;
    child.reaped();
    expect_report(&info, pid, getuid(), CLD_KILLED, SIGKILL, "P_PIDFD")?;
    expect_error(
        P_PIDFD,
        fd.raw(),
        WEXITED,
        Errno::ECHILD,
        "P_PIDFD after the reap",
    )?;
    let me = Fd(pidfd_open(getpid() as i32, 0).ctx("pidfd_open(self)")?);
    expect_error(
        P_PIDFD,
        me.raw(),
        WEXITED | WNOHANG,
        Errno::ECHILD,
        "P_PIDFD of self",
    )?;
    gate.open()
}

/// The pidfd `clone(CLONE_PIDFD)` returns is like `pidfd_open`'s: close-on-
/// exec, and `waitid(P_PIDFD)` waits for the child through it.
fn pidfd_open_like_clone_pidfd(_: &Ctx) -> Outcome {
    const CLONE_PIDFD: usize = forkvm_abi::linux::clone::CLONE_PIDFD as usize;
    const SIGCHLD: usize = forkvm_abi::linux::signal::SIGCHLD as usize;
    let mut pidfd = -1i32;
    // SAFETY: without CLONE_VM the child has its own copy of memory and
    // continues here like a forked child; the kernel stores the pidfd in
    // our live local (legacy clone: through the parent_tid argument).
    let ret = unsafe {
        syscall5(
            nr::CLONE,
            CLONE_PIDFD | SIGCHLD,
            0,
            &mut pidfd as *mut i32 as usize,
            0,
            0,
        )
    };
    let child = match forkvm_user::syscall::check(ret) {
        Ok(0) => exit_group(9),
        Ok(pid) => Child { pid: pid as Pid },
        Err(e) => return Err(msg!("clone(CLONE_PIDFD): {e}")),
    };
    let fd = Fd(pidfd);
    let got = close_on_exec(&fd);
    ensure!(
        got == Ok(1),
        "F_GETFD of a CLONE_PIDFD pidfd: {got:?}, want FD_CLOEXEC"
    );
    let info = waitid(P_PIDFD, fd.raw(), WEXITED).ctx("waitid(P_PIDFD)")?;
    let pid = child.reaped();
    expect_report(&info, pid, getuid(), CLD_EXITED, 9, "CLONE_PIDFD child")
}

/// `__WNOTHREAD`: wait only for the calling thread's own children.
const WNOTHREAD: u32 = 0x2000_0000;
/// The child [`forking_thread`] forked (0: not yet, `u32::MAX`: fork failed).
static SIBLINGS_CHILD: AtomicU32 = AtomicU32::new(0);
/// Set when [`forking_thread`] may exit.
static SIBLING_MAY_EXIT: AtomicU32 = AtomicU32::new(0);

/// A thread that forks a child exiting with 9, publishes its pid and stays
/// alive until released (so that the child stays its own).
extern "C" fn forking_thread(_arg: usize) -> ! {
    match fork() {
        Ok(0) => exit_group(9),
        Ok(pid) => SIBLINGS_CHILD.store(pid, Ordering::Release),
        Err(_) => SIBLINGS_CHILD.store(u32::MAX, Ordering::Release),
    }
    while SIBLING_MAY_EXIT.load(Ordering::Acquire) == 0 {
        sleep_ns(MS);
    }
    exit(0)
}

/// A process's children are the process's, not one thread's (Linux
/// `do_wait` looks at every thread's unless __WNOTHREAD): the main thread
/// reaps a child its sibling thread forked, which a __WNOTHREAD wait does
/// not see (ECHILD).
fn wait_sibling_thread_child(_: &Ctx) -> Outcome {
    SIBLINGS_CHILD.store(0, Ordering::Relaxed);
    SIBLING_MAY_EXIT.store(0, Ordering::Relaxed);
    let stack = ThreadStack::new()?;
    // SAFETY: the thread uses only its stack and statics; joined below.
    unsafe { stack.clone(THREAD_FLAGS, forking_thread, 0) }.ctx("clone(thread)")?;
    let deadline = monotonic_ns() + TIMEOUT_NS;
    let mut child = 0;
    while child == 0 && monotonic_ns() < deadline {
        sleep_ns(MS);
        child = SIBLINGS_CHILD.load(Ordering::Acquire);
    }
    let own_only = wait4(-1, WNOHANG | WNOTHREAD);
    let reaped = if child != 0 && child != u32::MAX {
        Some(wait4(child as i32, 0))
    } else {
        None
    };
    SIBLING_MAY_EXIT.store(1, Ordering::Release);
    stack.join()?;
    ensure!(child != 0, "the thread did not fork in time");
    ensure!(child != u32::MAX, "fork in the thread failed");
    ensure!(
        matches!(own_only, Err(Errno::ECHILD)),
        "wait4(-1, WNOHANG|__WNOTHREAD) in the main thread: {own_only:?}, expected ECHILD (the child is the other thread's)"
    );
    let (pid, status) = reaped
        .expect("a child was forked")
        .ctx("wait4(sibling thread's child) from the main thread")?;
    ensure!(pid == child as Pid, "wait4 reaped {pid}, expected {child}");
    expect_exit("the sibling thread's child", status, 9)
}
