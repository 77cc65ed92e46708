//! `poll`, `ppoll`, `select` and `pselect6`: the events of a pipe's ends
//! in every state (data, empty, full, writers or readers gone), files that
//! are always ready (`/dev/null`, a regular file), bad descriptors
//! (POLLNVAL in poll, EBADF in select), zero timeouts, a wait a writer
//! ends, EINTR by a signal (never restarted, even with SA_RESTART), the
//! signal mask of `ppoll`/`pselect6`, and the errors in Linux's order.
//!
//! Nothing here is timed: a timeout is only checked to end the call.

use forkvm_user::signal::{sigmask, sigprocmask, SA_RESTART, SIG_BLOCK, SIG_SETMASK};
use forkvm_abi::linux::fcntl::{AT_FDCWD, O_CREAT, O_NONBLOCK, O_RDONLY, O_RDWR, O_WRONLY};
use forkvm_user::syscall::{check, openat, syscall5, syscall6};

use super::itimers::{count_signals, fired, setitimer, Itimerval, Timeval};
use super::*;

use forkvm_user::syscall::nr::{POLL, PPOLL, PSELECT6, SELECT};
const ITIMER_REAL: usize = 0;
/// An address nothing is mapped at.
const BAD_ADDR: usize = 8;

const POLLIN: i16 = 0x1;
const POLLPRI: i16 = 0x2;
const POLLOUT: i16 = 0x4;
const POLLERR: i16 = 0x8;
const POLLHUP: i16 = 0x10;
const POLLNVAL: i16 = 0x20;
const POLLRDNORM: i16 = 0x40;
const POLLWRNORM: i16 = 0x100;
/// Everything a pipe or a plain file can report.
const ALL: i16 = POLLIN | POLLPRI | POLLOUT | POLLRDNORM | POLLWRNORM;

use forkvm_user::signal::sig::{SIGALRM, SIGUSR1};

pub const SCENARIOS: &[(&str, Scenario)] = &[
    ("poll-pipe-states", poll_pipe_states),
    ("poll-always-ready-files", poll_always_ready_files),
    ("poll-bad-fds-and-errors", poll_bad_fds_and_errors),
    ("poll-wait-woken-by-writer", poll_wait_woken_by_writer),
    ("poll-ping-pong", poll_ping_pong),
    ("select-pipe-states", select_pipe_states),
    ("select-errors", select_errors),
    ("poll-select-eintr", poll_select_eintr),
    ("ppoll-pselect-sigmask", ppoll_pselect_sigmask),
];

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct PollFd {
    fd: i32,
    events: i16,
    revents: i16,
}

fn poll_raw(fds: usize, nfds: usize, timeout_ms: i32) -> Result<usize, Errno> {
    // SAFETY: the callers pass live pollfd arrays, NULL or unmapped addresses.
    check(unsafe { syscall3(POLL, fds, nfds, timeout_ms as usize) })
}

fn poll(fds: &mut [PollFd], timeout_ms: i32) -> Result<usize, Errno> {
    poll_raw(fds.as_mut_ptr() as usize, fds.len(), timeout_ms)
}

/// The events `fd` reports now (timeout 0), asking for [`ALL`].
fn events(fd: i32) -> Result<i16, Msg> {
    let mut fds = [PollFd {
        fd,
        events: ALL,
        revents: 0,
    }];
    let n = poll(&mut fds, 0).ctx("poll")?;
    ensure!(
        n == usize::from(fds[0].revents != 0),
        "poll returned {n} with revents {:#x}",
        fds[0].revents
    );
    Ok(fds[0].revents)
}

fn expect_events(what: &str, fd: i32, want: i16) -> Outcome {
    let got = events(fd)?;
    ensure!(got == want, "{what}: revents {got:#x}, expected {want:#x}");
    Ok(())
}

/// A pipe's ends in each state (Linux `pipe_poll`).
fn poll_pipe_states(_: &Ctx) -> Outcome {
    let (r, w) = pipe()?;
    expect_events("empty pipe, read end", r.raw(), 0)?;
    expect_events("empty pipe, write end", w.raw(), POLLOUT | POLLWRNORM)?;
    write(w.raw(), b"x").ctx("write")?;
    expect_events("pipe with data, read end", r.raw(), POLLIN | POLLRDNORM)?;
    w.close()?;
    expect_events(
        "data, no writer",
        r.raw(),
        POLLIN | POLLRDNORM | POLLHUP,
    )?;
    let mut byte = [0u8];
    read(r.raw(), &mut byte).ctx("read")?;
    expect_events("empty, no writer", r.raw(), POLLHUP)?;
    drop(r);

    let (r, w) = pipe()?;
    r.close()?;
    expect_events(
        "write end, no reader",
        w.raw(),
        POLLOUT | POLLWRNORM | POLLERR,
    )?;
    drop(w);

    // Full: no POLLOUT until a page's worth is read.
    let fds = pipe2(O_NONBLOCK).ctx("pipe2")?;
    let (r, w) = (Fd(fds[0]), Fd(fds[1]));
    let chunk = [7u8; 4096];
    let mut filled = 0;
    while write(w.raw(), &chunk) == Ok(chunk.len()) {
        filled += 1;
        ensure!(filled <= 64, "the pipe never filled");
    }
    expect_events("full pipe, write end", w.raw(), 0)?;
    expect_events("full pipe, read end", r.raw(), POLLIN | POLLRDNORM)?;
    let mut page = [0u8; 4096];
    read_full(r.raw(), &mut page)?;
    expect_events("a page read, write end", w.raw(), POLLOUT | POLLWRNORM)?;
    // Unrequested events are masked out, POLLHUP/POLLERR never are.
    let mut fds = [PollFd {
        fd: w.raw(),
        events: POLLIN,
        revents: 0,
    }];
    let n = poll(&mut fds, 0).ctx("poll")?;
    ensure!(n == 0 && fds[0].revents == 0, "POLLIN on a write end: {n}, {:#x}", fds[0].revents);
    drop(r);
    let n = poll(&mut fds, 0).ctx("poll")?;
    ensure!(
        n == 1 && fds[0].revents == POLLERR,
        "POLLIN on a write end without reader: {n}, {:#x}",
        fds[0].revents
    );
    Ok(())
}

fn open(path: &CStr, flags: u32) -> Result<Fd, Msg> {
    openat(AT_FDCWD, path, flags, 0o600).map(Fd).ctx("openat")
}

/// Files with no `->poll` of their own are always readable and writable
/// (Linux `DEFAULT_POLLMASK`), whatever they were opened for.
fn poll_always_ready_files(_: &Ctx) -> Outcome {
    let ready = POLLIN | POLLOUT | POLLRDNORM | POLLWRNORM;
    let null = open(c"/dev/null", O_WRONLY)?;
    expect_events("/dev/null", null.raw(), ready)?;
    let zero = open(c"/dev/zero", O_RDONLY)?;
    expect_events("/dev/zero", zero.raw(), ready)?;
    let path = c"/tmp/proctest-poll-file";
    let file = open(path, O_RDWR | O_CREAT)?;
    let _ = forkvm_user::syscall::unlinkat(forkvm_user::syscall::AT_FDCWD, path, 0);
    expect_events("a regular file", file.raw(), ready)?;
    Ok(())
}

/// A negative descriptor is skipped (revents 0, not counted), a closed one
/// is POLLNVAL (counted); more entries than RLIMIT_NOFILE is EINVAL before
/// the array is read; EFAULT reading the array and writing `revents`.
fn poll_bad_fds_and_errors(_: &Ctx) -> Outcome {
    let (r, _w) = pipe()?;
    let closed = {
        let (a, _b) = pipe()?;
        a.raw()
    };
    let mut fds = [
        PollFd {
            fd: -1,
            events: ALL,
            revents: 0x55,
        },
        PollFd {
            fd: closed,
            events: POLLIN,
            revents: 0,
        },
        PollFd {
            fd: r.raw(),
            events: POLLIN,
            revents: 0x55,
        },
    ];
    let n = poll(&mut fds, 0).ctx("poll")?;
    let revents = [fds[0].revents, fds[1].revents, fds[2].revents];
    ensure!(
        n == 1 && revents == [0, POLLNVAL, 0],
        "poll(-1, closed, empty pipe): {n}, revents {revents:?}"
    );
    let n = poll(&mut [], 0).ctx("poll with no entries")?;
    ensure!(n == 0, "poll(NULL, 0, 0): {n}");
    let limit = forkvm_user::cred::getrlimit(forkvm_user::cred::RLIMIT_NOFILE)
        .ctx("getrlimit")?
        .cur;
    if limit < u64::from(u32::MAX) {
        let got = poll_raw(BAD_ADDR, limit as usize + 1, 0);
        ensure!(got == Err(Errno::EINVAL), "nfds over RLIMIT_NOFILE: {got:?}, expected EINVAL");
    }
    let got = poll_raw(BAD_ADDR, 1, 0);
    ensure!(got == Err(Errno::EFAULT), "unreadable pollfd: {got:?}, expected EFAULT");
    // A read-only array: read, polled, then revents cannot be stored.
    let page = Mapping::new(PAGE)?;
    let entry = PollFd {
        fd: r.raw(),
        events: POLLIN,
        revents: 0,
    };
    // SAFETY: the page is mapped, writable and ours.
    unsafe { (page.addr() as *mut PollFd).write(entry) };
    // SAFETY: nothing writes the page from now on.
    unsafe { mprotect(page.addr() as *mut u8, PAGE, PROT_READ) }.ctx("mprotect")?;
    let got = poll_raw(page.addr(), 1, 0);
    ensure!(got == Err(Errno::EFAULT), "read-only pollfd: {got:?}, expected EFAULT");
    Ok(())
}

/// A poll with no timeout sleeps until a child writes; a timeout on an
/// empty pipe ends it with 0.
fn poll_wait_woken_by_writer(_: &Ctx) -> Outcome {
    let (r, w) = pipe()?;
    let mut fds = [PollFd {
        fd: r.raw(),
        events: POLLIN,
        revents: 0,
    }];
    let n = poll(&mut fds, 10).ctx("poll with a 10 ms timeout")?;
    ensure!(n == 0 && fds[0].revents == 0, "timed out poll: {n}, {:#x}", fds[0].revents);
    let writer = w.raw();
    let child = Child::spawn(move || {
        sleep_ns(30 * MS);
        i32::from(write(writer, b"x") != Ok(1))
    })?;
    let n = poll(&mut fds, -1).ctx("poll without timeout")?;
    ensure!(n == 1 && fds[0].revents == POLLIN, "woken poll: {n}, {:#x}", fds[0].revents);
    expect_exit("writer", child.wait()?, 0)?;
    // select sees the last writer go as readable (POLLHUP is in its read
    // set): the child holds the only write end left, until it exits.
    let mut byte = [0u8];
    read(r.raw(), &mut byte).ctx("read")?;
    let reader = r.raw();
    let closer = Child::spawn(move || {
        sleep_ns(30 * MS);
        0
    })?;
    drop(w);
    let mut set = [1u64 << reader];
    let n = select(reader as usize + 1, set.as_mut_ptr() as usize, 0, 0, 0)?;
    ensure!(n == 1 && set[0] == 1 << reader, "select after the writer left: {n}, {set:?}");
    expect_exit("child", closer.wait()?, 0)?;
    Ok(())
}

/// The address of a one-long `fd_set`.
fn addr(set: &mut [u64; 1]) -> usize {
    set.as_mut_ptr() as usize
}

/// Two processes hand a byte back and forth 100 times through two pipes,
/// each waiting in `poll` before it reads: every wait must be ended by the
/// other's write (a lost wake-up shows as a 2 s timeout, reported as 0).
fn poll_ping_pong(_: &Ctx) -> Outcome {
    const ROUNDS: usize = 100;
    let (to_child, from_parent) = {
        let (r, w) = pipe()?;
        (w, r)
    };
    let (to_parent, from_child) = {
        let (r, w) = pipe()?;
        (w, r)
    };
    let wait_read = |fd: i32| -> Result<(), i32> {
        let mut fds = [PollFd {
            fd,
            events: POLLIN,
            revents: 0,
        }];
        match poll(&mut fds, 2_000) {
            Ok(1) if fds[0].revents == POLLIN => {}
            Ok(0) => return Err(1),
            _ => return Err(2),
        }
        let mut byte = [0u8];
        match read(fd, &mut byte) {
            Ok(1) => Ok(()),
            _ => Err(3),
        }
    };
    let (child_in, child_out) = (from_parent.raw(), to_parent.raw());
    let child = Child::spawn(move || {
        for _ in 0..ROUNDS {
            if let Err(code) = wait_read(child_in) {
                return code;
            }
            if write(child_out, b"c") != Ok(1) {
                return 4;
            }
        }
        0
    })?;
    for round in 0..ROUNDS {
        write(to_child.raw(), b"p").ctx("write")?;
        if let Err(code) = wait_read(from_child.raw()) {
            let _ = kill(child.pid() as i32, SIGKILL);
            let _ = child.wait();
            return Err(msg!("round {round}: parent's poll/read failed ({code})"));
        }
    }
    let status = child.wait_bounded("ping-pong child")?;
    let what = match status.exited().then(|| status.exit_status()) {
        Some(1) => "the child's poll timed out: a lost wake-up",
        Some(2) | Some(3) => "the child's poll or read failed",
        _ => "",
    };
    ensure!(what.is_empty(), "{what}");
    expect_exit("ping-pong child", status, 0)
}

fn select(n: usize, inp: usize, outp: usize, exp: usize, tvp: usize) -> Result<usize, Msg> {
    select_raw(n, inp, outp, exp, tvp).ctx("select")
}

fn select_raw(n: usize, inp: usize, outp: usize, exp: usize, tvp: usize) -> Result<usize, Errno> {
    // SAFETY: the callers pass live sets and timevals, NULL or unmapped addresses.
    check(unsafe { syscall5(SELECT, n, inp, outp, exp, tvp) })
}

/// `select` on a pipe: the read set keeps only readable descriptors, the
/// write set writable ones, the count adds both; a zero timeval looks
/// once and is not written back; the time left of a longer one is.
fn select_pipe_states(_: &Ctx) -> Outcome {
    let (r, w) = pipe()?;
    let (rf, wf) = (r.raw() as usize, w.raw() as usize);
    let n = rf.max(wf) + 1;
    let both = (1u64 << rf) | (1u64 << wf);
    let mut zero = Timeval::default();
    let zero_ptr = &mut zero as *mut Timeval as usize;
    let (mut rs, mut ws, mut es) = ([both], [both], [both]);
    let got = select(n, addr(&mut rs), addr(&mut ws), addr(&mut es), zero_ptr)?;
    ensure!(
        got == 1 && rs[0] == 0 && ws[0] == 1 << wf && es[0] == 0,
        "empty pipe: {got}, read {:#x} write {:#x} except {:#x}",
        rs[0],
        ws[0],
        es[0]
    );
    write(w.raw(), b"x").ctx("write")?;
    let (mut rs, mut ws) = ([both], [both]);
    let mut tv = Timeval {
        sec: 5,
        usec: 1_500_000,
    };
    let tv_ptr = &mut tv as *mut Timeval as usize;
    let got = select(n, addr(&mut rs), addr(&mut ws), 0, tv_ptr)?;
    ensure!(
        got == 2 && rs[0] == 1 << rf && ws[0] == 1 << wf,
        "pipe with data: {got}, read {:#x} write {:#x}",
        rs[0],
        ws[0]
    );
    ensure!(
        (tv.sec == 6 || tv.sec == 5) && (0..1_000_000).contains(&tv.usec),
        "time left of 6.5 s: {tv:?}"
    );
    ensure!(zero == Timeval::default(), "a zero timeout written: {zero:?}");
    // Timeout: 10 ms, nothing ready, the sets cleared, time left 0.
    let mut buf = [0u8];
    read(r.raw(), &mut buf).ctx("read")?;
    let mut rs = [1u64 << rf];
    let mut tv = Timeval {
        sec: 0,
        usec: 10_000,
    };
    let got = select(n, rs.as_mut_ptr() as usize, 0, 0, &mut tv as *mut Timeval as usize)?;
    ensure!(got == 0 && rs[0] == 0, "timed out select: {got}, read {:#x}", rs[0]);
    ensure!(tv == Timeval::default(), "time left after the timeout: {tv:?}");
    Ok(())
}

/// EINVAL for a negative `n` or timeout, EFAULT for a set or timeval
/// that cannot be read, EBADF for a closed descriptor in a set.
fn select_errors(_: &Ctx) -> Outcome {
    let (r, _w) = pipe()?;
    let closed = {
        let (a, _b) = pipe()?;
        a.raw() as usize
    };
    let mut set = [1u64 << closed];
    let got = select_raw(closed + 1, set.as_mut_ptr() as usize, 0, 0, 0);
    ensure!(got == Err(Errno::EBADF), "a closed descriptor: {got:?}, expected EBADF");
    let got = select_raw(-1i32 as u32 as usize, 0, 0, 0, 0);
    ensure!(got == Err(Errno::EINVAL), "n = -1: {got:?}, expected EINVAL");
    let got = select_raw(r.raw() as usize + 1, BAD_ADDR, 0, 0, 0);
    ensure!(got == Err(Errno::EFAULT), "unreadable set: {got:?}, expected EFAULT");
    let got = select_raw(0, 0, 0, 0, BAD_ADDR);
    ensure!(got == Err(Errno::EFAULT), "unreadable timeval: {got:?}, expected EFAULT");
    for bad in [
        Timeval { sec: -1, usec: 0 },
        Timeval { sec: 0, usec: -1 },
    ] {
        let mut tv = bad;
        let got = select_raw(0, 0, 0, 0, &mut tv as *mut Timeval as usize);
        ensure!(got == Err(Errno::EINVAL), "timeval {bad:?}: {got:?}, expected EINVAL");
    }
    Ok(())
}

/// A signal with a handler ends a waiting `poll` or `select` with EINTR,
/// SA_RESTART or not (Linux's ERESTARTNOHAND): here SIGALRM from a 20 ms
/// ITIMER_REAL.
fn poll_select_eintr(_: &Ctx) -> Outcome {
    let (r, _w) = pipe()?;
    for restart in [0, SA_RESTART] {
        let _off = count_signals(SIGALRM)?;
        if restart != 0 {
            forkvm_user::signal::sigaction(SIGALRM, count_alarm, SA_RESTART, 0)
                .ctx("rt_sigaction")?;
        }
        setitimer(ITIMER_REAL, &Itimerval::once_us(20_000)).ctx("setitimer")?;
        let mut fds = [PollFd {
            fd: r.raw(),
            events: POLLIN,
            revents: 0,
        }];
        let got = poll(&mut fds, -1);
        ensure!(got == Err(Errno::EINTR), "poll (flags {restart:#x}): {got:?}, expected EINTR");
        ensure!(fired() + alarms() >= 1, "no SIGALRM handler ran");
        setitimer(ITIMER_REAL, &Itimerval::once_us(20_000)).ctx("setitimer")?;
        let mut set = [1u64 << r.raw()];
        let got = select_raw(r.raw() as usize + 1, set.as_mut_ptr() as usize, 0, 0, 0);
        ensure!(got == Err(Errno::EINTR), "select (flags {restart:#x}): {got:?}, expected EINTR");
        ensure!(set[0] == 1 << r.raw(), "select's set changed by EINTR: {set:?}");
    }
    Ok(())
}

static ALARMS: AtomicU32 = AtomicU32::new(0);

extern "C" fn count_alarm(_: i32, _: *mut forkvm_user::signal::SigInfo, _: *mut u8) {
    ALARMS.fetch_add(1, Ordering::SeqCst);
}

fn alarms() -> u32 {
    ALARMS.load(Ordering::SeqCst)
}

/// `struct timespec` for ppoll and pselect6.
fn ts(ms: u64) -> Timespec {
    Timespec::from_nanos(ms * MS)
}

/// `ppoll`/`pselect6` block their mask for the call only: a pending
/// SIGUSR1 the mask unblocks runs its handler and ends the call (EINTR),
/// with the old mask back afterwards; one the mask keeps blocked does
/// not, and the call times out. A size other than 8 is EINVAL; the
/// timeout is read first (EFAULT, EINVAL).
fn ppoll_pselect_sigmask(_: &Ctx) -> Outcome {
    let (r, _w) = pipe()?;
    let _usr1 = count_signals(SIGUSR1)?;
    let old = sigprocmask(SIG_BLOCK, Some(sigmask(SIGUSR1))).ctx("sigprocmask")?;
    let result = ppoll_sigmask(&r).and_then(|()| pselect_sigmask(&r));
    sigprocmask(SIG_SETMASK, Some(old)).ctx("sigprocmask")?;
    let dfl = forkvm_user::signal::SigAction::default();
    let _ = forkvm_user::signal::sigaction_raw(SIGUSR1, Some(&dfl));
    result
}

const KEEP_BLOCKED: u64 = 1 << (SIGUSR1 - 1);
const UNBLOCK: u64 = 0;

fn ppoll_raw(fds: &mut [PollFd], tsp: usize, mask: usize, size: usize) -> Result<usize, Errno> {
    let (ptr, n) = (fds.as_mut_ptr() as usize, fds.len());
    // SAFETY: live pollfds, timespec and mask, or BAD_ADDR.
    check(unsafe { syscall5(PPOLL, ptr, n, tsp, mask, size) })
}

/// The `ppoll` half, with SIGUSR1 blocked and not yet pending.
fn ppoll_sigmask(r: &Fd) -> Outcome {
    kill(getpid() as i32, SIGUSR1).ctx("kill(self)")?;
    ensure!(fired() == 0, "a blocked SIGUSR1 ran its handler");
    let mut fds = [PollFd {
        fd: r.raw(),
        events: POLLIN,
        revents: 0,
    }];
    let keep = &KEEP_BLOCKED as *const u64 as usize;
    let unblock = &UNBLOCK as *const u64 as usize;
    let mut t = ts(10);
    let got = ppoll_raw(&mut fds, &mut t as *mut Timespec as usize, keep, 8);
    let runs = fired();
    ensure!(got == Ok(0) && runs == 0, "ppoll, SIGUSR1 blocked: {got:?}, {runs} runs");
    ensure!(t.sec == 0 && t.nsec == 0, "time left after ppoll's timeout: {t:?}");
    let got = ppoll_raw(&mut fds, 0, unblock, 4);
    ensure!(got == Err(Errno::EINVAL), "ppoll sigsetsize 4: {got:?}");
    // The timeout is read before the mask's size is checked.
    let got = ppoll_raw(&mut fds, BAD_ADDR, unblock, 4);
    ensure!(got == Err(Errno::EFAULT), "ppoll bad timespec: {got:?}");
    let mut bad = Timespec {
        sec: 0,
        nsec: 1_000_000_000,
    };
    let got = ppoll_raw(&mut fds, &mut bad as *mut Timespec as usize, BAD_ADDR, 8);
    ensure!(got == Err(Errno::EINVAL), "ppoll nsec 1e9: {got:?}");
    let got = ppoll_raw(&mut fds, 0, unblock, 8);
    let runs = fired();
    ensure!(
        got == Err(Errno::EINTR) && runs == 1,
        "ppoll unblocking the pending SIGUSR1: {got:?}, {runs} handler runs"
    );
    let mask = forkvm_user::signal::blocked();
    ensure!(mask & KEEP_BLOCKED != 0, "the mask after ppoll: {mask:#x}");
    Ok(())
}

/// The `pselect6` half: the same with a select on the empty pipe.
fn pselect_sigmask(r: &Fd) -> Outcome {
    kill(getpid() as i32, SIGUSR1).ctx("kill(self)")?;
    let n = r.raw() as usize + 1;
    let pselect = |set: &mut [u64; 1], tsp: usize, mask: &u64| {
        let pack = [mask as *const u64 as usize, 8];
        let (set, pack) = (addr(set), pack.as_ptr() as usize);
        // SAFETY: live set, timespec, mask and argument pack.
        check(unsafe { syscall6(PSELECT6, n, set, 0, 0, tsp, pack) })
    };
    let mut set = [1u64 << r.raw()];
    let mut t = ts(10);
    let got = pselect(&mut set, &mut t as *mut Timespec as usize, &KEEP_BLOCKED);
    let runs = fired();
    ensure!(
        got == Ok(0) && runs == 1 && set[0] == 0,
        "pselect6, SIGUSR1 blocked: {got:?}, {set:?}, {runs} runs"
    );
    let mut set = [1u64 << r.raw()];
    let got = pselect(&mut set, 0, &UNBLOCK);
    let runs = fired();
    ensure!(
        got == Err(Errno::EINTR) && runs == 2,
        "pselect6 unblocking SIGUSR1: {got:?}, {runs} runs"
    );
    let mask = forkvm_user::signal::blocked();
    ensure!(mask & KEEP_BLOCKED != 0, "the mask after pselect6: {mask:#x}");
    // SAFETY: BAD_ADDR is unmapped.
    let got = check(unsafe { syscall6(PSELECT6, 0, 0, 0, 0, 0, BAD_ADDR) });
    ensure!(got == Err(Errno::EFAULT), "pselect6 with a bad argument pack: {got:?}");
    Ok(())
}
