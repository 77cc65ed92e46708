//! Non-blocking pipes: `pipe2(O_NONBLOCK)` and `fcntl(F_SETFL)`, what a
//! read of an empty pipe and a write to a full one return, and which
//! status flags F_SETFL changes. Amounts are whole pages, where Linux's
//! page-buffered pipe and any byte-exact one agree.

use forkvm_abi::linux::fcntl::{F_GETFL, F_SETFL, O_APPEND, O_CLOEXEC, O_NONBLOCK, O_WRONLY};
use forkvm_user::syscall::{check, fcntl, syscall3};

use super::*;

use forkvm_user::syscall::nr::IOCTL;
const FIONBIO: usize = 0x5421;
/// A pipe's default capacity (16 pages).
const CAPACITY: usize = 16 * 4096;

pub const SCENARIOS: &[(&str, Scenario)] = &[
    ("pipe-nonblock-empty-and-full", nonblock_empty_and_full),
    ("pipe-setfl-nonblock", setfl_nonblock),
    ("pipe-nonblock-eof", nonblock_eof),
    ("pipe2-bad-flags", pipe2_bad_flags),
    ("pipe-fionbio", fionbio),
];

fn nonblocking_pipe() -> Result<(Fd, Fd), Msg> {
    let [r, w] = pipe2(O_NONBLOCK | O_CLOEXEC).ctx("pipe2(O_NONBLOCK)")?;
    Ok((Fd(r), Fd(w)))
}

/// An empty pipe reads EAGAIN; a full one takes nothing (EAGAIN), a
/// write larger than the room left takes what fits, in whole pages.
fn nonblock_empty_and_full(_: &Ctx) -> Outcome {
    let (r, w) = nonblocking_pipe()?;
    let flags = fcntl(r.raw(), F_GETFL, 0);
    ensure!(
        flags == Ok(O_NONBLOCK as usize),
        "F_GETFL of the read end: {flags:?}, expected O_RDONLY | O_NONBLOCK"
    );
    let mut buf = [0u8; 64];
    let got = read(r.raw(), &mut buf);
    ensure!(got == Err(Errno::EAGAIN), "read of an empty pipe: {got:?}");
    let page = [7u8; 4096];
    for i in 0..CAPACITY / 4096 {
        let got = write(w.raw(), &page);
        ensure!(got == Ok(4096), "write of page {i}: {got:?}");
    }
    let got = write(w.raw(), &[1]);
    ensure!(got == Err(Errno::EAGAIN), "1 byte into a full pipe: {got:?}");
    let big = [9u8; 3 * 4096];
    let got = write(w.raw(), &big);
    ensure!(got == Err(Errno::EAGAIN), "3 pages into a full pipe: {got:?}");
    let mut out = [0u8; 4096];
    let got = read(r.raw(), &mut out);
    ensure!(got == Ok(4096), "read of a page: {got:?}");
    let got = write(w.raw(), &big);
    ensure!(
        got == Ok(4096),
        "3 pages with one page of room: {got:?}, expected the page that fits"
    );
    Ok(())
}

/// F_SETFL turns O_NONBLOCK on and off on one description (both
/// descriptors of a `dup` see it) and ignores the access mode and the
/// open-only flags; F_GETFL shows the result.
fn setfl_nonblock(_: &Ctx) -> Outcome {
    let (r, w) = pipe()?;
    let mut buf = [0u8; 8];
    let got = fcntl(r.raw(), F_SETFL, (O_NONBLOCK | O_WRONLY) as usize);
    ensure!(got == Ok(0), "F_SETFL O_NONBLOCK|O_WRONLY: {got:?}");
    let flags = fcntl(r.raw(), F_GETFL, 0);
    ensure!(
        flags == Ok(O_NONBLOCK as usize),
        "F_GETFL after F_SETFL: {flags:?}, expected O_RDONLY | O_NONBLOCK"
    );
    let got = read(r.raw(), &mut buf);
    ensure!(
        got == Err(Errno::EAGAIN),
        "read after F_SETFL O_NONBLOCK: {got:?}"
    );
    let got = fcntl(w.raw(), F_SETFL, O_APPEND as usize);
    ensure!(got == Ok(0), "F_SETFL O_APPEND on a pipe: {got:?}");
    let flags = fcntl(w.raw(), F_GETFL, 0);
    ensure!(
        flags == Ok((O_WRONLY | O_APPEND) as usize),
        "F_GETFL of the write end: {flags:?}, expected O_WRONLY | O_APPEND"
    );
    let got = fcntl(r.raw(), F_SETFL, 0);
    ensure!(got == Ok(0), "F_SETFL 0: {got:?}");
    let flags = fcntl(r.raw(), F_GETFL, 0);
    ensure!(flags == Ok(0), "F_GETFL after clearing: {flags:?}");
    Ok(())
}

/// With no writer left, a non-blocking read is end of file (0), not
/// EAGAIN; a write with no reader is EPIPE either way (SIGPIPE ignored).
fn nonblock_eof(_: &Ctx) -> Outcome {
    let (r, w) = nonblocking_pipe()?;
    drop(w);
    let mut buf = [0u8; 8];
    let got = read(r.raw(), &mut buf);
    ensure!(got == Ok(0), "read with no writer: {got:?}, expected 0");
    Ok(())
}

/// pipe2 takes O_CLOEXEC, O_NONBLOCK and (on Linux) O_DIRECT; anything
/// else is EINVAL.
fn pipe2_bad_flags(_: &Ctx) -> Outcome {
    for flags in [0o1u32, 0o100, 0o200000, 0x8000_0000] {
        let got = pipe2(flags);
        ensure!(
            got == Err(Errno::EINVAL),
            "pipe2({flags:#o}): {got:?}, expected EINVAL"
        );
    }
    Ok(())
}

/// `ioctl(FIONBIO, &int)` is F_SETFL's O_NONBLOCK by another name: a
/// non-zero int sets it, zero clears it, the other flags stay.
fn fionbio(_: &Ctx) -> Outcome {
    let (r, _w) = pipe()?;
    let set = |on: i32| {
        // SAFETY: the kernel reads one int from the live local.
        check(unsafe { syscall3(IOCTL, r.raw() as usize, FIONBIO, &on as *const i32 as usize) })
    };
    let got = set(5);
    ensure!(got == Ok(0), "FIONBIO 5: {got:?}");
    let flags = fcntl(r.raw(), F_GETFL, 0);
    ensure!(
        flags == Ok(O_NONBLOCK as usize),
        "F_GETFL after FIONBIO 5: {flags:?}"
    );
    let mut buf = [0u8; 8];
    let got = read(r.raw(), &mut buf);
    ensure!(got == Err(Errno::EAGAIN), "read after FIONBIO: {got:?}");
    let got = set(0);
    ensure!(got == Ok(0), "FIONBIO 0: {got:?}");
    let flags = fcntl(r.raw(), F_GETFL, 0);
    ensure!(flags == Ok(0), "F_GETFL after FIONBIO 0: {flags:?}");
    Ok(())
}
