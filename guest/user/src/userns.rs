//! User namespaces from user space: the `/proc/PID/uid_map`, `gid_map` and
//! `setgroups` files that set one up (the same calls on the forkvm guest
//! and on Linux).

use crate::syscall::{check, close, nr, read, syscall4, write, AT_FDCWD};
use crate::Errno;
use forkvm_abi::linux::fcntl::{O_RDONLY, O_WRONLY};

/// Which per-process file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdFile {
    /// `uid_map`: "first lower count" lines.
    UidMap,
    /// `gid_map`.
    GidMap,
    /// `setgroups`: "allow" or "deny".
    Setgroups,
}

impl IdFile {
    fn name(self) -> &'static str {
        match self {
            IdFile::UidMap => "uid_map",
            IdFile::GidMap => "gid_map",
            IdFile::Setgroups => "setgroups",
        }
    }
}

/// An open descriptor, closed when dropped.
pub struct ProcFd(i32);

impl ProcFd {
    /// Opens `/proc/PID/FILE` (`pid` 0: `self`) with `flags`.
    pub fn open(pid: u32, file: IdFile, flags: u32) -> Result<ProcFd, Errno> {
        // "/proc/" + "self" or up to 10 digits + "/" + name + NUL.
        let mut path = [0u8; 32];
        let mut len = 0;
        let mut push = |bytes: &[u8]| {
            path[len..len + bytes.len()].copy_from_slice(bytes);
            len += bytes.len();
        };
        push(b"/proc/");
        if pid == 0 {
            push(b"self");
        } else {
            let mut digits = [0u8; 10];
            let mut at = digits.len();
            let mut rest = pid;
            loop {
                at -= 1;
                digits[at] = b'0' + (rest % 10) as u8;
                rest /= 10;
                if rest == 0 {
                    break;
                }
            }
            push(&digits[at..]);
        }
        push(b"/");
        push(file.name().as_bytes());
        // SAFETY: `path` is NUL-terminated (at most 30 bytes are written)
        // and outlives the call.
        let fd = check(unsafe {
            syscall4(
                nr::OPENAT,
                AT_FDCWD as usize,
                path.as_ptr() as usize,
                flags as usize,
                0,
            )
        })?;
        Ok(ProcFd(fd as i32))
    }

    /// One `write` of `text`; returns the bytes written.
    pub fn write(&self, text: &[u8]) -> Result<usize, Errno> {
        write(self.0, text)
    }

    /// Reads up to `buf.len()` bytes.
    pub fn read(&self, buf: &mut [u8]) -> Result<usize, Errno> {
        read(self.0, buf)
    }
}

impl Drop for ProcFd {
    fn drop(&mut self) {
        let _ = close(self.0);
    }
}

/// Writes `text` to `/proc/PID/FILE` in one call, as a fresh open file
/// (each map may be written once).
pub fn write_file(pid: u32, file: IdFile, text: &[u8]) -> Result<(), Errno> {
    let fd = ProcFd::open(pid, file, O_WRONLY)?;
    fd.write(text).map(drop)
}

/// Reads `/proc/PID/FILE` into `buf`; returns the length.
pub fn read_file(pid: u32, file: IdFile, buf: &mut [u8]) -> Result<usize, Errno> {
    let fd = ProcFd::open(pid, file, O_RDONLY)?;
    let mut n = 0;
    while n < buf.len() {
        match fd.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}
