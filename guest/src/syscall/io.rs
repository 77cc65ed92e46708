//! File descriptors: `read`, `write`, `close`, `dup`, `dup2`, `dup3`,
//! `pipe2`, `fcntl` (FD_CLOEXEC, F_DUPFD) on the console and pipes (files
//! of the tree: `file`); `forkvm_vconsole_open` for the virtio console.

use alloc::sync::Arc;
use alloc::vec;
use forkvm_abi::linux::fcntl;

use spin::Mutex;

use super::{current_mm, Args, SysResult};
use crate::drivers::uart::{INPUT, INPUT_WAIT};
use crate::errno::{EAGAIN, EBADF, EFAULT, EINVAL, EPIPE, ERESTARTSYS};
use crate::fs::pipe::{Pipe, PipeIo, PipeRead};
use crate::fs::{File, FileKind};
use crate::process::files::FdTable;
use crate::sched;

/// Largest chunk moved between user memory and a file at a time.
const CHUNK: usize = 4096;
// As the registers hold them.
const O_CLOEXEC: u64 = fcntl::O_CLOEXEC as u64;
const O_NONBLOCK: u64 = fcntl::O_NONBLOCK as u64;

fn files() -> Result<Arc<Mutex<FdTable>>, i32> {
    sched::current().files().ok_or(EBADF)
}

fn file(fd: u64) -> Result<Arc<File>, i32> {
    files()?.lock().get(fd)
}

pub fn write(a: Args) -> SysResult {
    let [fd, buf, count, ..] = a.0;
    let file = file(fd)?;
    match &file.kind {
        FileKind::Vfs(open) => return super::file::write(open, buf, count),
        FileKind::PipeRead(_) => return Err(EBADF),
        FileKind::Pidfd(_) => return Err(EINVAL),
        FileKind::Proc(proc) => {
            // One write of the whole text (less than a page).
            if count >= 4096 {
                return Err(EINVAL);
            }
            let mut text = vec![0u8; count as usize];
            current_mm()?.copy_from_user(buf, &mut text)?;
            return proc.write(&text).map(|n| n as u64);
        }
        _ => {}
    }
    let mm = current_mm()?;
    let mut done = 0;
    let mut chunk = vec![0u8; CHUNK.min(count as usize)];
    while done < count {
        let n = (count - done).min(CHUNK as u64) as usize;
        if let Err(e) = mm.copy_from_user(buf + done, &mut chunk[..n]) {
            // Linux returns what it wrote before the bad byte, else EFAULT.
            return if done > 0 { Ok(done) } else { Err(e) };
        }
        let written = match &file.kind {
            FileKind::Console => {
                crate::console::write_text(&chunk[..n]);
                n
            }
            FileKind::VirtioConsole => {
                match crate::drivers::virtio_console::write_bytes(&chunk[..n]) {
                    Ok(written) => written,
                    Err(e) if done == 0 => return Err(e),
                    Err(_) => return Ok(done),
                }
            }
            FileKind::PipeWrite(pipe) => match pipe.write(&chunk[..n], file.nonblocking()) {
                PipeIo::Done(written) => written,
                PipeIo::Broken => {
                    // Linux `pipe_write`: SIGPIPE to the writing thread, then
                    // EPIPE (or the bytes written before the readers went).
                    let current = sched::current();
                    let info = super::signal::sender_info(
                        &current,
                        forkvm_abi::linux::signal::SIGPIPE,
                        crate::process::signal::SI_USER,
                    );
                    crate::process::signal::send_signal(&current, info);
                    return if done == 0 { Err(EPIPE) } else { Ok(done) };
                }
                PipeIo::Interrupted if done == 0 => return Err(ERESTARTSYS),
                PipeIo::Interrupted => return Ok(done),
                PipeIo::WouldBlock if done == 0 => return Err(EAGAIN),
                PipeIo::WouldBlock => return Ok(done),
            },
            FileKind::PipeRead(_) | FileKind::Pidfd(_) | FileKind::Proc(_) | FileKind::Vfs(_) => {
                unreachable!("handled above")
            }
        };
        done += written as u64;
        if written < n {
            break;
        }
    }
    Ok(done)
}

pub fn read(a: Args) -> SysResult {
    let [fd, buf, count, ..] = a.0;
    let file = file(fd)?;
    if let FileKind::Vfs(open) = &file.kind {
        return super::file::read(open, buf, count);
    }
    if count == 0 {
        return Ok(0);
    }
    let mm = current_mm()?;
    let mut bytes = vec![0u8; CHUNK.min(count as usize)];
    if let FileKind::PipeRead(pipe) = &file.kind {
        // The bytes leave the pipe only if they reach the buffer.
        return match pipe.read(&mut bytes, file.nonblocking(), |data| {
            mm.copy_to_user(buf, data)
        }) {
            PipeRead::Done(n) => Ok(n as u64),
            PipeRead::Failed(errno) => Err(errno),
            PipeRead::WouldBlock => Err(EAGAIN),
            // Interrupted: restarted if the handler has SA_RESTART.
            PipeRead::Interrupted => Err(ERESTARTSYS),
        };
    }
    let n = match &file.kind {
        FileKind::Console => {
            // Block for the first byte, then take what is there.
            if !INPUT_WAIT.wait_until(|| !INPUT.is_empty()) {
                return Err(ERESTARTSYS);
            }
            let mut n = 0;
            while n < bytes.len() {
                match INPUT.pop() {
                    Some(byte) => {
                        bytes[n] = byte;
                        n += 1;
                    }
                    None => break,
                }
            }
            n
        }
        FileKind::VirtioConsole => crate::drivers::virtio_console::read_bytes(&mut bytes)?,
        FileKind::PipeRead(_) => unreachable!("handled above"),
        FileKind::PipeWrite(_) => return Err(EBADF),
        FileKind::Pidfd(_) => return Err(EINVAL),
        FileKind::Proc(proc) => proc.read(&mut bytes)?,
        FileKind::Vfs(_) => unreachable!("handled above"),
    };
    mm.copy_to_user(buf, &bytes[..n])?;
    Ok(n as u64)
}

/// `forkvm_vconsole_open()`: a new descriptor for the virtio console
/// (ENODEV without a usable device).
pub fn vconsole_open(_: Args) -> SysResult {
    if !crate::drivers::virtio_console::available() {
        return Err(crate::errno::ENODEV);
    }
    files()?.lock().install(File::new(FileKind::VirtioConsole))
}

pub fn close(a: Args) -> SysResult {
    let file = files()?.lock().close(a.0[0])?;
    drop(file);
    Ok(0)
}

pub fn dup(a: Args) -> SysResult {
    let table = files()?;
    let mut table = table.lock();
    let file = table.get(a.0[0])?;
    table.install(file)
}

pub fn dup2(a: Args) -> SysResult {
    let [old, new, ..] = a.0;
    let table = files()?;
    let mut table = table.lock();
    let file = table.get(old)?;
    if old == new {
        return Ok(new);
    }
    let replaced = table.install_at(new, file)?;
    drop(table);
    drop(replaced);
    Ok(new)
}

pub fn dup3(a: Args) -> SysResult {
    let [old, new, flags, ..] = a.0;
    if old == new || flags & !O_CLOEXEC != 0 {
        return Err(EINVAL);
    }
    let fd = dup2(a)?;
    files()?
        .lock()
        .set_close_on_exec(fd, flags & O_CLOEXEC != 0)?;
    Ok(fd)
}

const F_DUPFD: u64 = fcntl::F_DUPFD as u64;
const F_GETFD: u64 = fcntl::F_GETFD as u64;
const F_SETFD: u64 = fcntl::F_SETFD as u64;
const F_GETFL: u64 = fcntl::F_GETFL as u64;
const F_SETFL: u64 = fcntl::F_SETFL as u64;
const F_DUPFD_CLOEXEC: u64 = fcntl::F_DUPFD_CLOEXEC as u64;
const FD_CLOEXEC: u64 = fcntl::FD_CLOEXEC as u64;

/// `fcntl(fd, cmd, arg)`: the descriptor flags (F_GETFD, F_SETFD with
/// FD_CLOEXEC), the status flags (F_GETFL; F_SETFL changes O_APPEND and
/// O_NONBLOCK, EBADF on an O_PATH file as Linux's `check_fcntl_cmd`) and
/// duplication at or above `arg` (F_DUPFD, F_DUPFD_CLOEXEC); other
/// commands are EINVAL.
pub fn fcntl(a: Args) -> SysResult {
    let [fd, cmd, arg, ..] = a.0;
    let table = files()?;
    let mut table = table.lock();
    match cmd {
        F_GETFD => Ok(u64::from(table.close_on_exec(fd)?)),
        F_SETFD => table
            .set_close_on_exec(fd, arg & FD_CLOEXEC != 0)
            .map(|()| 0),
        F_GETFL => Ok(u64::from(super::file::status_flags(&*table.get(fd)?))),
        F_SETFL => {
            let file = table.get(fd)?;
            if matches!(&file.kind, FileKind::Vfs(open) if open.flags() & crate::fs::file::O_PATH != 0)
            {
                return Err(EBADF);
            }
            file.set_status(arg as u32);
            Ok(0)
        }
        F_DUPFD | F_DUPFD_CLOEXEC => {
            let file = table.get(fd)?;
            table.install_from(file, arg, cmd == F_DUPFD_CLOEXEC)
        }
        _ => {
            table.get(fd)?;
            Err(EINVAL)
        }
    }
}

/// `pipe2(fds, flags)`: O_CLOEXEC sets FD_CLOEXEC on both ends,
/// O_NONBLOCK makes both non-blocking. Linux's packet mode (O_DIRECT) is
/// not built: EINVAL, like any other flag. If the two descriptors cannot
/// be stored at `fds`, the call fails with EFAULT and leaves no
/// descriptor open.
pub fn pipe2(a: Args) -> SysResult {
    let [fds_address, flags, ..] = a.0;
    if flags & !(O_CLOEXEC | O_NONBLOCK) != 0 {
        return Err(EINVAL);
    }
    let mm = current_mm()?;
    let pipe = Arc::new(Pipe::new());
    let status = (flags & O_NONBLOCK) as u32;
    let read_end = File::with_flags(FileKind::PipeRead(pipe.clone()), status);
    let write_end = File::with_flags(FileKind::PipeWrite(pipe), status);
    let table = files()?;
    let mut table = table.lock();
    let cloexec = flags & O_CLOEXEC != 0;
    let read_fd = table.install_flagged(read_end, cloexec)?;
    let write_fd = match table.install_flagged(write_end, cloexec) {
        Ok(fd) => fd,
        Err(e) => {
            let _ = table.close(read_fd);
            return Err(e);
        }
    };
    drop(table);
    let mut fds = [0u8; 8];
    fds[..4].copy_from_slice(&(read_fd as u32).to_le_bytes());
    fds[4..].copy_from_slice(&(write_fd as u32).to_le_bytes());
    if mm.copy_to_user(fds_address, &fds).is_err() {
        // Linux installs the descriptors only after the store: none is
        // left behind (a read-only `fds` is EFAULT like an unmapped one).
        let table = files()?;
        let mut table = table.lock();
        let ends = (table.close(read_fd), table.close(write_fd));
        drop(table);
        drop(ends);
        return Err(EFAULT);
    }
    Ok(0)
}
