//! `ioctl(fd, cmd, arg)` (Linux `fs/ioctl.c`): the commands every
//! descriptor has (`FIOCLEX`, `FIONCLEX`, `FIONBIO`, `FIONREAD` of a
//! regular file),
//! then the file's own: a pipe's `FIONREAD`, and the console's terminal
//! commands (`fs::tty`). Any other command, and every command on a file
//! without ioctls (regular files, directories, `/dev/null`), is ENOTTY,
//! as Linux's `vfs_ioctl` answers.

use alloc::sync::Arc;

use super::{current_mm, Args, SysResult};
use crate::errno::{EBADF, EINVAL, ENOTTY, EPERM, ESRCH};
use crate::fs::{tty, FileKind};
use crate::sched;

const TCGETS: u32 = 0x5401;
const TCSETS: u32 = 0x5402;
const TCSETSW: u32 = 0x5403;
const TCSETSF: u32 = 0x5404;
const TIOCSCTTY: u32 = 0x540e;
const TIOCGPGRP: u32 = 0x540f;
const TIOCSPGRP: u32 = 0x5410;
const TIOCGWINSZ: u32 = 0x5413;
const TIOCSWINSZ: u32 = 0x5414;
const FIONREAD: u32 = 0x541b;
const FIONBIO: u32 = 0x5421;
const TIOCNOTTY: u32 = 0x5422;
const TIOCGSID: u32 = 0x5429;
const FIONCLEX: u32 = 0x5450;
const FIOCLEX: u32 = 0x5451;
/// CAP_SYS_ADMIN: `TIOCSCTTY` with arg 1 takes a terminal from another
/// session.
const CAP_SYS_ADMIN: u32 = 21;

pub fn ioctl(a: Args) -> SysResult {
    let [fd, cmd, arg, ..] = a.0;
    let cmd = cmd as u32;
    let table = sched::current().files().ok_or(EBADF)?;
    let file = table.lock().get(fd)?;
    match cmd {
        FIOCLEX | FIONCLEX => {
            table.lock().set_close_on_exec(fd, cmd == FIOCLEX)?;
            return Ok(0);
        }
        // Linux `ioctl_fionbio`: the int at `arg` turns O_NONBLOCK on or
        // off, as `fcntl(F_SETFL)` would.
        FIONBIO => {
            let on = get_int(arg)? != 0;
            let others = file.status() & !crate::fs::file::O_NONBLOCK;
            let nonblock = if on { crate::fs::file::O_NONBLOCK } else { 0 };
            file.set_status(others | nonblock);
            return Ok(0);
        }
        FIONREAD => {
            if let FileKind::Vfs(open) = &file.kind {
                if let crate::fs::dentry::Node::Inode(inode) = &open.node {
                    if let Some(data) = inode.data() {
                        let size = data.lock().size();
                        let left = size.saturating_sub(*open.pos.lock());
                        return put_int(arg, left.min(i32::MAX as u64) as i32);
                    }
                }
            }
        }
        _ => {}
    }
    match &file.kind {
        FileKind::Console => tty_ioctl(cmd, arg),
        FileKind::PipeRead(pipe) | FileKind::PipeWrite(pipe) if cmd == FIONREAD => {
            put_int(arg, pipe.available() as i32)
        }
        _ => Err(ENOTTY),
    }
}

fn put_int(arg: u64, value: i32) -> SysResult {
    current_mm()?.copy_to_user(arg, &value.to_le_bytes())?;
    Ok(0)
}

fn get_int(arg: u64) -> Result<i32, i32> {
    let mut bytes = [0u8; 4];
    current_mm()?.copy_from_user(arg, &mut bytes)?;
    Ok(i32::from_le_bytes(bytes))
}

/// The console's commands (Linux `tty_ioctl`, `tty_mode_ioctl`,
/// `tiocsctty`, `tiocgpgrp`, `tiocspgrp`, `tiocgsid`): ENOTTY for an
/// unknown one, and for the job-control ones when the console is not the
/// caller's controlling terminal.
fn tty_ioctl(cmd: u32, arg: u64) -> SysResult {
    let current = sched::current();
    let group = current.thread_group().clone();
    let session = group.session().ok_or(ENOTTY)?;
    let controlling = tty::is_controlling(&session);
    let ns = current.active_pid_ns();
    match cmd {
        TCGETS => {
            current_mm()?.copy_to_user(arg, &tty::termios())?;
            Ok(0)
        }
        TCSETS | TCSETSW | TCSETSF => {
            let mut termios = [0u8; 36];
            current_mm()?.copy_from_user(arg, &mut termios)?;
            // TCSETSW waits for the output to drain: the UART's writes
            // are synchronous, nothing is pending. TCSETSF also drops
            // the input not read yet.
            if cmd == TCSETSF {
                while crate::drivers::uart::INPUT.pop().is_some() {}
            }
            tty::set_termios(termios);
            Ok(0)
        }
        TIOCGWINSZ => {
            current_mm()?.copy_to_user(arg, &tty::winsize())?;
            Ok(0)
        }
        TIOCSWINSZ => {
            let mut winsize = [0u8; 8];
            current_mm()?.copy_from_user(arg, &mut winsize)?;
            tty::set_winsize(winsize);
            Ok(0)
        }
        TIOCSCTTY => {
            let leader = group.ids().as_ref().is_some_and(|ids| ids.leader);
            if leader && controlling {
                return Ok(0);
            }
            if !leader {
                return Err(EPERM);
            }
            if tty::session().is_some() {
                let admin = current.capable(CAP_SYS_ADMIN);
                if arg != 1 || !admin {
                    return Err(EPERM);
                }
            }
            let pgrp = group.pgrp().ok_or(EPERM)?;
            tty::set_controlling(&session, &pgrp);
            Ok(0)
        }
        TIOCGPGRP | TIOCGSID if !controlling => Err(ENOTTY),
        TIOCGPGRP => {
            let pgrp = tty::foreground().and_then(|p| p.nr_in(&ns)).unwrap_or(0);
            put_int(arg, pgrp as i32)
        }
        TIOCGSID => put_int(arg, session.nr_in(&ns).unwrap_or(0) as i32),
        TIOCSPGRP => {
            // Linux `tiocspgrp`'s order: the argument, then whether this is
            // the caller's terminal, then the group (any pid: ESRCH; one
            // that is no group of the caller's session: EPERM).
            let pgid = get_int(arg)?;
            if pgid < 0 {
                return Err(EINVAL);
            }
            if !controlling {
                return Err(ENOTTY);
            }
            let pid = ns.find_pid(pgid as u32).ok_or(ESRCH)?;
            let same_session = pid
                .pgrp_members()
                .first()
                .and_then(|member| member.session())
                .is_some_and(|s| Arc::ptr_eq(&s, &session));
            if !same_session {
                return Err(EPERM);
            }
            tty::set_foreground(&pid);
            Ok(0)
        }
        TIOCNOTTY => {
            if !controlling {
                return Err(ENOTTY);
            }
            if group.ids().as_ref().is_some_and(|ids| ids.leader) {
                tty::clear_controlling();
            }
            Ok(0)
        }
        _ => Err(ENOTTY),
    }
}
