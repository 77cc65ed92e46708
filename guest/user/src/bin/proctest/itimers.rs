//! Interval timers and the clock calls trinity makes at start-up: `alarm`
//! (what it returns, rounding included, and that 0 cancels), SIGALRM from
//! ITIMER_REAL interrupting `pause` and `nanosleep`, a periodic timer
//! firing again and again, timers not inherited by a fork child,
//! ITIMER_VIRTUAL and ITIMER_PROF firing for a process that spins, the
//! errors in Linux's order; `gettimeofday`, `time` and `sysinfo`.
//!
//! Nothing here is timed: the checks are on results, counts and order.

use forkvm_user::signal::{pause, sigaction, SigInfo, SIG_DFL};
use forkvm_user::syscall::{check, syscall1, syscall2, syscall3};

use super::*;

use forkvm_user::syscall::nr::{ALARM, GETITIMER, GETTIMEOFDAY, SETITIMER, SYSINFO, TIME};
const ITIMER_REAL: usize = 0;
const ITIMER_VIRTUAL: usize = 1;
const ITIMER_PROF: usize = 2;
/// The si_code of a signal the kernel sends (Linux `SEND_SIG_PRIV`).
const SI_KERNEL: i32 = 0x80;
/// An address nothing is mapped at.
const BAD_ADDR: usize = 8;

use forkvm_user::signal::sig::{SIGALRM, SIGPROF, SIGVTALRM};

pub const SCENARIOS: &[(&str, Scenario)] = &[
    ("alarm-returns-remaining", alarm_returns_remaining),
    ("alarm-interrupts-pause", alarm_interrupts_pause),
    ("alarm-interrupts-nanosleep", alarm_interrupts_nanosleep),
    ("setitimer-interval-rearms", setitimer_interval_rearms),
    ("itimer-not-inherited-by-fork", itimer_not_inherited_by_fork),
    ("itimer-virtual-and-prof-fire", itimer_virtual_and_prof_fire),
    ("itimer-errors", itimer_errors),
    ("gettimeofday-time-sysinfo", gettimeofday_time_sysinfo),
];

/// `struct timeval`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timeval {
    pub sec: i64,
    pub usec: i64,
}

/// `struct itimerval`: the interval, then the value.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Itimerval {
    pub interval: Timeval,
    pub value: Timeval,
}

impl Itimerval {
    pub fn once_us(us: i64) -> Itimerval {
        Itimerval {
            interval: Timeval::default(),
            value: Timeval {
                sec: us / 1_000_000,
                usec: us % 1_000_000,
            },
        }
    }
}

pub fn alarm(seconds: usize) -> usize {
    // SAFETY: no memory is passed.
    unsafe { syscall1(ALARM, seconds) as usize }
}

pub fn setitimer_raw(which: usize, new: usize, old: usize) -> Result<usize, Errno> {
    // SAFETY: the callers pass live itimervals, NULL or unmapped addresses.
    check(unsafe { syscall3(SETITIMER, which, new, old) })
}

pub fn setitimer(which: usize, new: &Itimerval) -> Result<Itimerval, Errno> {
    let mut old = Itimerval::default();
    setitimer_raw(
        which,
        new as *const Itimerval as usize,
        &mut old as *mut Itimerval as usize,
    )?;
    Ok(old)
}

pub fn getitimer_raw(which: usize, value: usize) -> Result<usize, Errno> {
    // SAFETY: as above.
    check(unsafe { syscall2(GETITIMER, which, value) })
}

pub fn getitimer(which: usize) -> Result<Itimerval, Errno> {
    let mut value = Itimerval::default();
    getitimer_raw(which, &mut value as *mut Itimerval as usize)?;
    Ok(value)
}

/// Disarms every timer and restores SIGALRM, SIGVTALRM and SIGPROF to
/// their defaults when dropped.
pub struct TimersOff;

impl Drop for TimersOff {
    fn drop(&mut self) {
        for which in [ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF] {
            let _ = setitimer(which, &Itimerval::default());
        }
        for signal in [SIGALRM, SIGVTALRM, SIGPROF] {
            let dfl = forkvm_user::signal::SigAction {
                handler: SIG_DFL,
                ..Default::default()
            };
            let _ = forkvm_user::signal::sigaction_raw(signal, Some(&dfl));
        }
    }
}

static FIRED: AtomicU32 = AtomicU32::new(0);
static FIRED_SIGNO: AtomicI32 = AtomicI32::new(0);
static FIRED_CODE: AtomicI32 = AtomicI32::new(0);

extern "C" fn count_signal(signo: i32, info: *mut SigInfo, _uc: *mut u8) {
    // SAFETY: the kernel passes a valid siginfo for the call.
    let code = unsafe { (*info).code };
    FIRED_SIGNO.store(signo, Ordering::SeqCst);
    FIRED_CODE.store(code, Ordering::SeqCst);
    FIRED.fetch_add(1, Ordering::SeqCst);
}

/// Counts `signal` in [`FIRED`] from now on (no SA_RESTART).
pub fn count_signals(signal: i32) -> Result<TimersOff, Msg> {
    FIRED.store(0, Ordering::SeqCst);
    FIRED_SIGNO.store(0, Ordering::SeqCst);
    FIRED_CODE.store(0, Ordering::SeqCst);
    sigaction(signal, count_signal, 0, 0).ctx("rt_sigaction")?;
    Ok(TimersOff)
}

pub fn fired() -> u32 {
    FIRED.load(Ordering::SeqCst)
}

/// `alarm` returns what the previous alarm had left, in seconds rounded
/// to the nearest (a pending alarm is never 0), and 0 cancels.
fn alarm_returns_remaining(_: &Ctx) -> Outcome {
    let _off = TimersOff;
    alarm(0);
    let first = alarm(100);
    ensure!(first == 0, "alarm(100) with none pending: {first}");
    let second = alarm(50);
    ensure!(second == 100, "alarm(50) after alarm(100): {second}, expected 100");
    let value = getitimer(ITIMER_REAL).ctx("getitimer")?;
    ensure!(
        value.interval == Timeval::default() && value.value.sec == 49 && value.value.usec > 0,
        "getitimer after alarm(50): {value:?}"
    );
    let cancel = alarm(0);
    ensure!(cancel == 50, "alarm(0) after alarm(50): {cancel}, expected 50");
    let again = alarm(0);
    ensure!(again == 0, "alarm(0) with none pending: {again}");
    let value = getitimer(ITIMER_REAL).ctx("getitimer")?;
    ensure!(value == Itimerval::default(), "after alarm(0): {value:?}");
    // An alarm with less than half a second left still counts as 1.
    setitimer(ITIMER_REAL, &Itimerval::once_us(300_000)).ctx("setitimer")?;
    let left = alarm(0);
    ensure!(left == 1, "alarm(0) with 0.3 s left: {left}, expected 1");
    Ok(())
}

/// SIGALRM (si_code SI_KERNEL) ends `pause` with EINTR after its handler.
fn alarm_interrupts_pause(_: &Ctx) -> Outcome {
    let _off = count_signals(SIGALRM)?;
    setitimer(ITIMER_REAL, &Itimerval::once_us(20_000)).ctx("setitimer")?;
    let e = pause();
    ensure!(e == Errno::EINTR, "pause: {e}, expected EINTR");
    ensure!(fired() == 1, "SIGALRM handler ran {} times", fired());
    let (signo, code) = (
        FIRED_SIGNO.load(Ordering::SeqCst),
        FIRED_CODE.load(Ordering::SeqCst),
    );
    ensure!(
        signo == SIGALRM && code == SI_KERNEL,
        "handler saw signal {signo} code {code:#x}, expected SIGALRM SI_KERNEL"
    );
    let value = getitimer(ITIMER_REAL).ctx("getitimer")?;
    ensure!(value == Itimerval::default(), "a one-shot timer after firing: {value:?}");
    Ok(())
}

/// A 2 s `nanosleep` is cut short by a 20 ms timer: EINTR.
fn alarm_interrupts_nanosleep(_: &Ctx) -> Outcome {
    let _off = count_signals(SIGALRM)?;
    setitimer(ITIMER_REAL, &Itimerval::once_us(20_000)).ctx("setitimer")?;
    let result = nanosleep(Timespec::from_nanos(2_000 * MS));
    ensure!(
        matches!(result, Err((Errno::EINTR, _))),
        "nanosleep: {:?}, expected EINTR",
        result.map_err(|(e, _)| e)
    );
    ensure!(fired() == 1, "SIGALRM handler ran {} times", fired());
    Ok(())
}

/// A periodic ITIMER_REAL fires again and again (each SIGALRM taken
/// re-arms it); setting it to zero returns the interval it had and
/// disarms it.
fn setitimer_interval_rearms(_: &Ctx) -> Outcome {
    let _off = count_signals(SIGALRM)?;
    let periodic = Itimerval {
        interval: Timeval {
            sec: 0,
            usec: 5_000,
        },
        value: Timeval {
            sec: 0,
            usec: 5_000,
        },
    };
    let old = setitimer(ITIMER_REAL, &periodic).ctx("setitimer")?;
    ensure!(old == Itimerval::default(), "old value of a new timer: {old:?}");
    let deadline = monotonic_ns() + TIMEOUT_NS;
    while fired() < 5 && monotonic_ns() < deadline {
        let e = pause();
        ensure!(e == Errno::EINTR, "pause: {e}");
    }
    let old = setitimer(ITIMER_REAL, &Itimerval::default()).ctx("setitimer(0)")?;
    ensure!(fired() >= 5, "only {} SIGALRMs from a 5 ms periodic timer", fired());
    ensure!(
        old.interval == periodic.interval,
        "the interval read back: {:?}",
        old.interval
    );
    let value = getitimer(ITIMER_REAL).ctx("getitimer")?;
    ensure!(value == Itimerval::default(), "after disarming: {value:?}");
    Ok(())
}

/// A fork child starts with every timer disarmed (Linux `copy_signal`);
/// the parent's keep running.
fn itimer_not_inherited_by_fork(_: &Ctx) -> Outcome {
    let _off = TimersOff;
    let long = Itimerval {
        interval: Timeval { sec: 7, usec: 0 },
        value: Timeval { sec: 100, usec: 0 },
    };
    for which in [ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF] {
        setitimer(which, &long).ctx("setitimer")?;
    }
    let child = Child::spawn(|| {
        for which in [ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF] {
            match getitimer(which) {
                Ok(v) if v == Itimerval::default() => {}
                _ => return 1 + which as i32,
            }
        }
        0
    })?;
    let status = child.wait()?;
    expect_exit("child reading its timers", status, 0)?;
    for which in [ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF] {
        let value = getitimer(which).ctx("getitimer")?;
        ensure!(
            value.interval == long.interval && value.value.sec >= 99 && value.value.sec <= 100,
            "the parent's timer {which} after the fork: {value:?}"
        );
    }
    Ok(())
}

/// ITIMER_VIRTUAL (user time) and ITIMER_PROF (user + system time) fire
/// for a process that spins in user mode: SIGVTALRM, then SIGPROF, each
/// once for a one-shot timer.
fn itimer_virtual_and_prof_fire(_: &Ctx) -> Outcome {
    for (which, signal) in [(ITIMER_VIRTUAL, SIGVTALRM), (ITIMER_PROF, SIGPROF)] {
        let child = Child::spawn(move || {
            let Ok(_off) = count_signals(signal) else {
                return 10;
            };
            if setitimer(which, &Itimerval::once_us(10_000)).is_err() {
                return 11;
            }
            let deadline = monotonic_ns() + TIMEOUT_NS;
            let mut spins = 0u64;
            while fired() == 0 && monotonic_ns() < deadline {
                for _ in 0..10_000 {
                    spins = core::hint::black_box(spins + 1);
                }
            }
            if fired() != 1 || FIRED_SIGNO.load(Ordering::SeqCst) != signal {
                return 12;
            }
            // A one-shot timer is disarmed once it fired.
            match getitimer(which) {
                Ok(v) if v == Itimerval::default() => 0,
                _ => 13,
            }
        })?;
        let status = child.wait_bounded("spinning child")?;
        let what = match status.exited().then(|| status.exit_status()) {
            Some(12) => "the timer's signal did not come exactly once while spinning",
            Some(13) => "the one-shot timer is still armed after firing",
            Some(10) | Some(11) => "rt_sigaction or setitimer failed",
            _ => "",
        };
        ensure!(what.is_empty(), "timer {which}: {what}");
        expect_exit("spinning child", status, 0)?;
    }
    Ok(())
}

/// The errors in Linux's order: `getitimer` checks `which` before the
/// pointer; `setitimer` reads and checks the new value (EFAULT, EINVAL)
/// before `which`, and writes the old one last (EFAULT with the timer
/// set); NULL as the new value disarms.
fn itimer_errors(_: &Ctx) -> Outcome {
    let _off = TimersOff;
    let mut value = Itimerval::default();
    let out = &mut value as *mut Itimerval as usize;
    for (which, ptr, want, what) in [
        (3, out, Errno::EINVAL, "getitimer(3)"),
        (usize::MAX, out, Errno::EINVAL, "getitimer(-1)"),
        (ITIMER_REAL, 0, Errno::EFAULT, "getitimer(REAL, NULL)"),
        (ITIMER_PROF, BAD_ADDR, Errno::EFAULT, "getitimer(PROF, bad)"),
        (7, 0, Errno::EINVAL, "getitimer(7, NULL)"),
    ] {
        let got = getitimer_raw(which, ptr);
        ensure!(got == Err(want), "{what}: {got:?}, expected {want}");
    }
    let valid = Itimerval::once_us(100_000_000);
    let bad_values = [
        Timeval {
            sec: 0,
            usec: 1_000_000,
        },
        Timeval { sec: 0, usec: -1 },
        Timeval { sec: -1, usec: 0 },
    ];
    for bad in bad_values {
        for new in [
            Itimerval {
                interval: Timeval::default(),
                value: bad,
            },
            Itimerval {
                interval: bad,
                value: Timeval { sec: 1, usec: 0 },
            },
        ] {
            let got = setitimer_raw(9, &new as *const Itimerval as usize, 0);
            ensure!(
                got == Err(Errno::EINVAL),
                "setitimer(9, {new:?}): {got:?}, expected EINVAL"
            );
        }
    }
    let got = setitimer_raw(9, BAD_ADDR, 0);
    ensure!(got == Err(Errno::EFAULT), "setitimer(9, bad): {got:?}, expected EFAULT");
    let got = setitimer_raw(9, &valid as *const Itimerval as usize, 0);
    ensure!(got == Err(Errno::EINVAL), "setitimer(9, valid): {got:?}, expected EINVAL");
    let got = setitimer_raw(ITIMER_REAL, &valid as *const Itimerval as usize, BAD_ADDR);
    ensure!(got == Err(Errno::EFAULT), "setitimer with a bad old pointer: {got:?}");
    let armed = getitimer(ITIMER_REAL).ctx("getitimer")?;
    ensure!(
        armed.value.sec >= 99,
        "the timer set by a call that failed on its old pointer: {armed:?}"
    );
    let mut old = Itimerval::default();
    let got = setitimer_raw(ITIMER_REAL, 0, &mut old as *mut Itimerval as usize);
    ensure!(got == Ok(0), "setitimer(REAL, NULL): {got:?}");
    ensure!(old.value.sec >= 99, "old value given back: {old:?}");
    let now = getitimer(ITIMER_REAL).ctx("getitimer")?;
    ensure!(now == Itimerval::default(), "after setitimer(NULL): {now:?}");
    // Times past Linux's KTIME_MAX (about 292 years) saturate there; a
    // huge real timer does not fire early.
    let huge = Itimerval {
        interval: Timeval {
            sec: i64::MAX,
            usec: 999_999,
        },
        value: Timeval {
            sec: i64::MAX,
            usec: 0,
        },
    };
    let ktime_max = Timeval {
        sec: 9_223_372_036,
        usec: 854_775,
    };
    setitimer(ITIMER_REAL, &huge).ctx("setitimer(huge)")?;
    let value = getitimer(ITIMER_REAL).ctx("getitimer")?;
    ensure!(
        value.interval == ktime_max && value.value.sec > 1_000_000_000,
        "ITIMER_REAL set to {huge:?} reads {value:?}"
    );
    // A CPU timer adds a tick and the process's CPU time to KTIME_MAX:
    // Linux reads that back as a signed count, negative.
    setitimer(ITIMER_VIRTUAL, &huge).ctx("setitimer(huge)")?;
    let value = getitimer(ITIMER_VIRTUAL).ctx("getitimer")?;
    ensure!(
        value.interval == ktime_max && value.value.sec < 0,
        "ITIMER_VIRTUAL set to {huge:?} reads {value:?}"
    );
    for which in [ITIMER_REAL, ITIMER_VIRTUAL] {
        setitimer(which, &Itimerval::default()).ctx("setitimer(0)")?;
    }
    // `alarm` takes an unsigned int: the upper half is ignored.
    let none = alarm(1 << 32);
    ensure!(none == 0, "alarm(1 << 32): {none}");
    let value = getitimer(ITIMER_REAL).ctx("getitimer")?;
    ensure!(value == Itimerval::default(), "alarm(1 << 32) armed {value:?}");
    Ok(())
}

/// `struct sysinfo` (x86-64).
#[repr(C)]
#[derive(Default)]
struct Sysinfo {
    uptime: i64,
    loads: [u64; 3],
    totalram: u64,
    freeram: u64,
    sharedram: u64,
    bufferram: u64,
    totalswap: u64,
    freeswap: u64,
    procs: u16,
    pad: u16,
    totalhigh: u64,
    freehigh: u64,
    mem_unit: u32,
}

/// `MemTotal` of /proc/meminfo, in kB.
fn meminfo_total_kb() -> Result<u64, Msg> {
    use forkvm_user::syscall::nr::OPENAT;
    // SAFETY: the kernel reads the NUL-terminated path.
    let fd = check(unsafe {
        syscall4(
            OPENAT,
            forkvm_user::syscall::AT_FDCWD as usize,
            c"/proc/meminfo".as_ptr() as usize,
            0,
            0,
        )
    })
    .ctx("open /proc/meminfo")?;
    let fd = Fd(fd as i32);
    let mut text = [0u8; 256];
    let n = read(fd.raw(), &mut text).ctx("read /proc/meminfo")?;
    let line = text[..n]
        .split(|&b| b == b'\n')
        .find(|l| l.starts_with(b"MemTotal:"))
        .ok_or_else(|| msg!("no MemTotal line"))?;
    let digits: u64 = line
        .iter()
        .filter(|b| b.is_ascii_digit())
        .fold(0, |n, &b| n * 10 + u64::from(b - b'0'));
    Ok(digits)
}

/// `gettimeofday` (either pointer may be NULL), `time` (NULL allowed)
/// agree with CLOCK_REALTIME; `sysinfo` reports memory in bytes
/// (mem_unit 1 on a 64-bit kernel) matching /proc/meminfo's MemTotal.
fn gettimeofday_time_sysinfo(_: &Ctx) -> Outcome {
    let mut tv = Timeval::default();
    let tv_ptr = &mut tv as *mut Timeval as usize;
    let mut tz = [0u32; 2];
    let tz_ptr = tz.as_mut_ptr() as usize;
    // SAFETY: the kernel writes into the live locals or fails on BAD_ADDR.
    let call = |tv: usize, tz: usize| check(unsafe { syscall2(GETTIMEOFDAY, tv, tz) });
    // SAFETY: as above.
    let time = |at: usize| check(unsafe { syscall1(TIME, at) });
    let before = time(0).ctx("time(NULL)")? as i64;
    ensure!(call(tv_ptr, 0) == Ok(0), "gettimeofday(tv, NULL)");
    let mut stored = 0i64;
    let after = time(&mut stored as *mut i64 as usize).ctx("time(&t)")? as i64;
    ensure!(stored == after, "time stored {stored}, returned {after}");
    ensure!(
        before <= tv.sec && tv.sec <= after && (0..1_000_000).contains(&tv.usec),
        "time {before}, then gettimeofday {tv:?}, then time {after}"
    );
    let realtime = forkvm_user::syscall::clock_gettime(forkvm_user::syscall::CLOCK_REALTIME)
        .ctx("clock_gettime")?;
    ensure!(realtime.sec >= tv.sec, "CLOCK_REALTIME {realtime:?} before {tv:?}");
    ensure!(call(0, 0) == Ok(0), "gettimeofday(NULL, NULL)");
    ensure!(call(0, tz_ptr) == Ok(0), "gettimeofday(NULL, tz)");
    for (tv, tz, what) in [
        (BAD_ADDR, 0, "bad tv"),
        (0, BAD_ADDR, "bad tz"),
        (tv_ptr, BAD_ADDR, "good tv, bad tz"),
    ] {
        let got = call(tv, tz);
        ensure!(got == Err(Errno::EFAULT), "gettimeofday({what}): {got:?}");
    }
    ensure!(time(BAD_ADDR) == Err(Errno::EFAULT), "time(bad) is not EFAULT");

    let mut info = Sysinfo::default();
    // SAFETY: the kernel writes one struct sysinfo into the live local.
    let got = check(unsafe { syscall1(SYSINFO, &mut info as *mut Sysinfo as usize) });
    ensure!(got == Ok(0), "sysinfo: {got:?}");
    let total_kb = meminfo_total_kb()?;
    ensure!(
        info.mem_unit == 1 && info.totalram == total_kb * 1024,
        "sysinfo totalram {} (unit {}), /proc/meminfo MemTotal {total_kb} kB",
        info.totalram,
        info.mem_unit
    );
    ensure!(
        info.freeram <= info.totalram && info.freeram > 0,
        "sysinfo freeram {} of {}",
        info.freeram,
        info.totalram
    );
    ensure!(
        info.uptime >= 1 && info.procs >= 1,
        "sysinfo uptime {} procs {}",
        info.uptime,
        info.procs
    );
    // SAFETY: BAD_ADDR is unmapped.
    let got = check(unsafe { syscall1(SYSINFO, BAD_ADDR) });
    ensure!(got == Err(Errno::EFAULT), "sysinfo(bad): {got:?}");
    Ok(())
}
