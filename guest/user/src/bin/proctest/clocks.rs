//! `clock_nanosleep` (which clocks can time a sleep, relative and
//! absolute sleeps, the errors in Linux's order) and `creat`, the legacy
//! open that glibc-era programs (trinity among them) still call.
//!
//! Sleeps are short and only checked for their result, never timed.

use forkvm_user::syscall::{check, syscall2, syscall3, syscall4, unlinkat, AT_FDCWD};

use super::*;

use forkvm_user::syscall::nr::{CLOCK_GETTIME, CLOCK_NANOSLEEP, CREAT, LSEEK};
const SEEK_END: usize = 2;
const TIMER_ABSTIME: usize = 1;
const CLOCK_REALTIME: usize = 0;
const CLOCK_MONOTONIC: usize = 1;
const CLOCK_THREAD_CPUTIME_ID: usize = 3;
const CLOCK_MONOTONIC_RAW: usize = 4;
const CLOCK_MONOTONIC_COARSE: usize = 6;
const CLOCK_BOOTTIME: usize = 7;
/// An address nothing is mapped at.
const BAD_ADDR: usize = 8;

pub const SCENARIOS: &[(&str, Scenario)] = &[
    ("clock-nanosleep-clocks", clock_nanosleep_clocks),
    ("clock-nanosleep-absolute", clock_nanosleep_absolute),
    ("clock-nanosleep-errors", clock_nanosleep_errors),
    ("creat-truncates-write-only", creat_truncates_write_only),
];

fn sleep_on(clock: usize, flags: usize, request: &Timespec) -> Result<usize, Errno> {
    let mut left = Timespec::default();
    // SAFETY: the kernel reads one live timespec and may write another.
    check(unsafe {
        syscall4(
            CLOCK_NANOSLEEP,
            clock,
            flags,
            request as *const Timespec as usize,
            &mut left as *mut Timespec as usize,
        )
    })
}

const ONE_MS: Timespec = Timespec {
    sec: 0,
    nsec: 1_000_000,
};

/// REALTIME, MONOTONIC and BOOTTIME time a sleep; the raw, coarse and
/// thread CPU-time clocks cannot (EOPNOTSUPP); an id no clock has is
/// EINVAL.
fn clock_nanosleep_clocks(_: &Ctx) -> Outcome {
    for clock in [CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_BOOTTIME] {
        let got = sleep_on(clock, 0, &ONE_MS);
        ensure!(got == Ok(0), "clock_nanosleep({clock}, 1 ms): {got:?}");
    }
    for clock in [
        CLOCK_MONOTONIC_RAW,
        CLOCK_MONOTONIC_COARSE,
        CLOCK_THREAD_CPUTIME_ID,
    ] {
        let got = sleep_on(clock, 0, &ONE_MS);
        ensure!(
            got == Err(Errno::EOPNOTSUPP),
            "clock_nanosleep({clock}): {got:?}, expected EOPNOTSUPP"
        );
    }
    for clock in [16, usize::MAX >> 33] {
        let got = sleep_on(clock, 0, &ONE_MS);
        ensure!(
            got == Err(Errno::EINVAL),
            "clock_nanosleep({clock}): {got:?}, expected EINVAL"
        );
    }
    Ok(())
}

/// With TIMER_ABSTIME the request is a time on the clock: one already
/// past returns at once, one 1 ms ahead after a short sleep.
fn clock_nanosleep_absolute(_: &Ctx) -> Outcome {
    let mut now = Timespec::default();
    // SAFETY: the kernel writes one timespec into the live local.
    let ret = unsafe {
        syscall2(
            CLOCK_GETTIME,
            CLOCK_MONOTONIC,
            &mut now as *mut Timespec as usize,
        )
    };
    ensure!(ret == 0, "clock_gettime: {}", Ret(ret));
    let past = Timespec { sec: 0, nsec: 1 };
    let got = sleep_on(CLOCK_MONOTONIC, TIMER_ABSTIME, &past);
    ensure!(got == Ok(0), "absolute sleep until the past: {got:?}");
    let mut soon = now;
    soon.nsec += 1_000_000;
    if soon.nsec >= 1_000_000_000 {
        soon.sec += 1;
        soon.nsec -= 1_000_000_000;
    }
    let got = sleep_on(CLOCK_MONOTONIC, TIMER_ABSTIME, &soon);
    ensure!(got == Ok(0), "absolute sleep 1 ms ahead: {got:?}");
    Ok(())
}

/// The clock is checked before the request is read; a bad request pointer
/// is EFAULT; a negative or too large nanosecond count EINVAL.
fn clock_nanosleep_errors(_: &Ctx) -> Outcome {
    // SAFETY: BAD_ADDR is unmapped: the kernel must fail before using it.
    let got = check(unsafe { syscall4(CLOCK_NANOSLEEP, 16, 0, BAD_ADDR, 0) });
    ensure!(
        got == Err(Errno::EINVAL),
        "bad clock, bad pointer: {got:?}, expected EINVAL"
    );
    // SAFETY: as above.
    let got = check(unsafe { syscall4(CLOCK_NANOSLEEP, CLOCK_MONOTONIC, 0, BAD_ADDR, 0) });
    ensure!(
        got == Err(Errno::EFAULT),
        "bad request pointer: {got:?}, expected EFAULT"
    );
    for bad in [
        Timespec { sec: 0, nsec: -1 },
        Timespec {
            sec: 0,
            nsec: 1_000_000_000,
        },
        Timespec { sec: -1, nsec: 0 },
    ] {
        let got = sleep_on(CLOCK_MONOTONIC, 0, &bad);
        ensure!(
            got == Err(Errno::EINVAL),
            "request {}.{}: {got:?}, expected EINVAL",
            bad.sec,
            bad.nsec
        );
    }
    Ok(())
}

/// `creat(path, mode)` is `open(path, O_CREAT | O_WRONLY | O_TRUNC,
/// mode)`: it makes a missing file, truncates an existing one, and the
/// descriptor cannot be read.
fn creat_truncates_write_only(_: &Ctx) -> Outcome {
    let mut name = [0u8; 64];
    let text = {
        let mut m = Msg::new();
        let _ = write!(m, "/tmp/proctest-creat-{}", getpid());
        m
    };
    let bytes = text.as_str().as_bytes();
    name[..bytes.len()].copy_from_slice(bytes);
    let path = CStr::from_bytes_until_nul(&name).expect("NUL-terminated");
    let creat = |mode: usize| {
        // SAFETY: the kernel reads one NUL-terminated path.
        check(unsafe { syscall2(CREAT, path.as_ptr() as usize, mode) })
    };
    let fd = creat(0o600).map_err(|e| msg!("creat (new): {e}"))? as i32;
    let written = write(fd, b"hello");
    let mut buf = [0u8; 4];
    let read_back = read(fd, &mut buf);
    close(fd).ok();
    ensure!(written == Ok(5), "write: {written:?}");
    ensure!(
        read_back == Err(Errno::EBADF),
        "read of a creat descriptor: {read_back:?}, expected EBADF"
    );
    let fd = creat(0o600).map_err(|e| msg!("creat (existing): {e}"))? as i32;
    // SAFETY: lseek takes no pointer.
    let size = check(unsafe { syscall3(LSEEK, fd as usize, 0, SEEK_END) });
    close(fd).ok();
    unlinkat(AT_FDCWD, path, 0).ok();
    ensure!(
        size == Ok(0),
        "creat of an existing file: size {size:?}, expected 0"
    );
    Ok(())
}
