//! `ioctl`: the commands of every descriptor (FIOCLEX, FIONCLEX,
//! FIONREAD), ENOTTY from files that are no terminal, and the console's
//! termios and job-control commands with Linux's errno and order.

use forkvm_user::signal::{sigaction_raw, SigAction, SIG_IGN};
use forkvm_abi::linux::fcntl::{AT_FDCWD, F_GETFD, O_CREAT, O_DIRECTORY, O_PATH, O_RDONLY, O_RDWR};
use forkvm_user::syscall::{fcntl, openat, setsid, syscall1};

use super::*;

pub const SCENARIOS: &[(&str, Scenario)] = &[
    ("ioctl-files-and-pipes", ioctl_files_and_pipes),
    ("ioctl-console", ioctl_console),
    ("dev-tty-no-ctty", dev_tty_no_ctty),
];

use forkvm_user::syscall::nr::{IOCTL, LSEEK, UNLINK};
const TCGETS: usize = 0x5401;
const TCSETS: usize = 0x5402;
const TIOCSCTTY: usize = 0x540e;
const TIOCGPGRP: usize = 0x540f;
const TIOCSPGRP: usize = 0x5410;
const TIOCGWINSZ: usize = 0x5413;
const FIONREAD: usize = 0x541b;
const TIOCNOTTY: usize = 0x5422;
const TIOCGSID: usize = 0x5429;
const FIONCLEX: usize = 0x5450;
const FIOCLEX: usize = 0x5451;
const SIGHUP: i32 = 1;

fn ioctl(fd: i32, cmd: usize, arg: usize) -> Result<usize, Errno> {
    // SAFETY: the commands used here read or write at most 60 bytes at
    // `arg`, which callers point at buffers that large, or at nothing.
    forkvm_user::syscall::check(unsafe { syscall3(IOCTL, fd as usize, cmd, arg) })
}

fn open_path(path: &CStr, flags: u32) -> Result<Fd, Errno> {
    openat(AT_FDCWD, path, flags, 0o600).map(Fd)
}

fn expect_errno(what: &str, got: Result<usize, Errno>, want: Errno) -> Outcome {
    ensure!(got == Err(want), "{what}: {got:?}, expected {want}");
    Ok(())
}

/// The int an ioctl stores.
fn ioctl_int(fd: i32, cmd: usize) -> Result<i32, Errno> {
    let mut value = -7i32;
    ioctl(fd, cmd, &mut value as *mut i32 as usize)?;
    Ok(value)
}

/// Regular files, directories, `/dev/null` and pipes are no terminals
/// (ENOTTY); FIONREAD counts what is left to read; FIOCLEX and FIONCLEX
/// set the descriptor flag; a closed descriptor is EBADF.
fn ioctl_files_and_pipes(_: &Ctx) -> Outcome {
    let path = c"/tmp/proctest-ioctl-file";
    let file = open_path(path, O_CREAT | O_RDWR).ctx("create")?;
    // SAFETY: NUL-terminated path.
    unsafe { syscall1(UNLINK, path.as_ptr() as usize) };
    ensure!(write(file.raw(), b"0123456789") == Ok(10), "write");
    // SAFETY: touches no memory.
    unsafe { syscall3(LSEEK, file.raw() as usize, 4, 0) };
    ensure!(ioctl_int(file.raw(), FIONREAD) == Ok(6), "FIONREAD of a file at 4 of 10");
    let mut termios = [0u8; 60];
    let at = termios.as_mut_ptr() as usize;
    expect_errno("TCGETS of a file", ioctl(file.raw(), TCGETS, at), Errno::ENOTTY)?;
    expect_errno("TIOCGPGRP of a file", ioctl(file.raw(), TIOCGPGRP, at), Errno::ENOTTY)?;
    expect_errno("an unknown command", ioctl(file.raw(), 0x1234_5678, at), Errno::ENOTTY)?;
    ioctl(file.raw(), FIOCLEX, 0).ctx("FIOCLEX")?;
    ensure!(fcntl(file.raw(), F_GETFD, 0) == Ok(1), "FD_CLOEXEC after FIOCLEX");
    ioctl(file.raw(), FIONCLEX, 0).ctx("FIONCLEX")?;
    ensure!(fcntl(file.raw(), F_GETFD, 0) == Ok(0), "FD_CLOEXEC after FIONCLEX");
    let dir = open_path(c"/tmp", O_RDONLY | O_DIRECTORY).ctx("open /tmp")?;
    expect_errno("FIONREAD of a directory", ioctl(dir.raw(), FIONREAD, at), Errno::ENOTTY)?;
    let null = open_path(c"/dev/null", O_RDWR).ctx("open /dev/null")?;
    expect_errno("TCGETS of /dev/null", ioctl(null.raw(), TCGETS, at), Errno::ENOTTY)?;
    let (r, w) = pipe()?;
    ensure!(write(w.raw(), b"abc") == Ok(3), "pipe write");
    ensure!(ioctl_int(r.raw(), FIONREAD) == Ok(3), "FIONREAD of a pipe");
    expect_errno("TCGETS of a pipe", ioctl(w.raw(), TCGETS, at), Errno::ENOTTY)?;
    let closed = w.raw();
    drop(w);
    expect_errno("a closed descriptor", ioctl(closed, TCGETS, at), Errno::EBADF)?;
    Ok(())
}

/// `/dev/tty` is the caller's controlling terminal: a process in a new
/// session has none, and opening it is ENXIO (O_PATH still finds the
/// device node, and reopening that through `/proc/self/fd` is ENXIO
/// too).
fn dev_tty_no_ctty(_: &Ctx) -> Outcome {
    let child = Child::spawn(|| {
        if setsid().is_err() {
            return 1;
        }
        if open_path(c"/dev/tty", O_RDWR).err() != Some(Errno::ENXIO) {
            return 2;
        }
        if open_path(c"/dev/tty", O_RDONLY).err() != Some(Errno::ENXIO) {
            return 3;
        }
        let Ok(node) = open_path(c"/dev/tty", O_PATH) else {
            return 4;
        };
        let mut again = [0u8; 32];
        let mut at = 0;
        for &b in b"/proc/self/fd/" {
            again[at] = b;
            at += 1;
        }
        let fd = node.raw();
        if fd >= 10 {
            again[at] = b'0' + (fd / 10) as u8;
            at += 1;
        }
        again[at] = b'0' + (fd % 10) as u8;
        let again = CStr::from_bytes_until_nul(&again).unwrap_or(c"/");
        if open_path(again, O_RDWR).err() != Some(Errno::ENXIO) {
            return 5;
        }
        0
    })?;
    expect_exit("the new session's child (exit: the check that failed)", child.wait()?, 0)
}

/// The console: TCGETS and TCSETS round-trip; TIOCGWINSZ answers; in a
/// new session (no controlling terminal) the job-control commands are
/// ENOTTY, after the argument checks Linux makes first. If the console
/// can become the session's controlling terminal (TIOCSCTTY; on a host
/// whose console another session holds it is EPERM, and the rest is
/// left out), the session's group is in the foreground, TIOCSPGRP moves
/// only to groups of the session, `/dev/tty` opens it, and TIOCNOTTY
/// gives it up (`/dev/tty` is then ENXIO).
fn ioctl_console(_: &Ctx) -> Outcome {
    let console = match open_path(c"/dev/console", O_RDWR) {
        Ok(fd) => fd,
        // Not root on the host: nothing to check.
        Err(Errno::EACCES | Errno::EPERM) => return Ok(()),
        Err(e) => return Err(msg!("open /dev/console: {e}")),
    };
    let child = Child::spawn(|| match console_checks(console.raw()) {
        Ok(()) => 0,
        Err(step) => step,
    })?;
    expect_exit("console checks (exit: the step that failed)", child.wait()?, 0)
}

/// The steps of [`ioctl_console`] in the child; `Err(n)`: step n failed.
fn console_checks(console: i32) -> Result<(), i32> {
    let check = |step: i32, ok: bool| if ok { Ok(()) } else { Err(step) };
    let mut termios = [0u8; 60];
    let at = termios.as_mut_ptr() as usize;
    check(1, ioctl(console, TCGETS, at).is_ok())?;
    check(2, ioctl(console, TCSETS, at).is_ok())?;
    let mut again = [0u8; 60];
    check(3, ioctl(console, TCGETS, again.as_mut_ptr() as usize).is_ok())?;
    check(4, termios[..36] == again[..36])?;
    let mut winsize = [0u8; 8];
    check(5, ioctl(console, TIOCGWINSZ, winsize.as_mut_ptr() as usize).is_ok())?;
    let sid = setsid().map_err(|_| 6)? as i32;
    check(7, ioctl(console, TIOCGPGRP, at) == Err(Errno::ENOTTY))?;
    check(8, ioctl(console, TIOCGSID, at) == Err(Errno::ENOTTY))?;
    check(9, ioctl(console, TIOCSPGRP, 8) == Err(Errno::EFAULT))?;
    let minus_one = -1i32;
    let at_minus_one = &minus_one as *const i32 as usize;
    check(10, ioctl(console, TIOCSPGRP, at_minus_one) == Err(Errno::EINVAL))?;
    let own = sid;
    let at_own = &own as *const i32 as usize;
    check(11, ioctl(console, TIOCSPGRP, at_own) == Err(Errno::ENOTTY))?;
    check(12, ioctl(console, TIOCNOTTY, 0) == Err(Errno::ENOTTY))?;
    match ioctl(console, TIOCSCTTY, 0) {
        Ok(_) => {}
        Err(Errno::EPERM) => return Ok(()),
        Err(_) => return Err(13),
    }
    // TIOCNOTTY by the leader sends the foreground group SIGHUP.
    let ignore = SigAction {
        handler: SIG_IGN,
        ..SigAction::default()
    };
    check(14, sigaction_raw(SIGHUP, Some(&ignore)).is_ok())?;
    check(15, ioctl_int(console, TIOCGPGRP) == Ok(sid))?;
    check(16, ioctl_int(console, TIOCGSID) == Ok(sid))?;
    check(17, ioctl(console, TIOCSPGRP, at_own).is_ok())?;
    check(18, ioctl(console, TIOCSCTTY, 0).is_ok())?;
    check(23, open_path(c"/dev/tty", O_RDWR).is_ok())?;
    let init = 1i32;
    let at_init = &init as *const i32 as usize;
    check(19, ioctl(console, TIOCSPGRP, at_init) == Err(Errno::EPERM))?;
    let none = 0x3fff_fff0i32;
    let at_none = &none as *const i32 as usize;
    check(20, ioctl(console, TIOCSPGRP, at_none) == Err(Errno::ESRCH))?;
    check(21, ioctl(console, TIOCNOTTY, 0).is_ok())?;
    check(22, ioctl(console, TIOCGPGRP, at) == Err(Errno::ENOTTY))?;
    check(24, open_path(c"/dev/tty", O_RDWR).err() == Some(Errno::ENXIO))?;
    Ok(())
}
