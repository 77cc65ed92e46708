//! An open file of the directory tree (the part of Linux's `struct file`
//! that is not the descriptor): what it refers to, the file position and
//! the status flags given to `open`. Reads and writes of regular files go
//! to their pages; `/dev/null` and `/dev/zero` are served here.

use core::sync::atomic::{AtomicU32, Ordering};

use spin::Mutex;

use super::dentry::Node;
use super::inode::{DevNum, InodeKind};
use crate::errno::{EBADF, EINVAL, EISDIR, ENXIO};

pub use forkvm_abi::linux::fcntl::{
    O_ACCMODE, O_APPEND, O_CLOEXEC, O_CREAT, O_DIRECTORY, O_EXCL, O_NOFOLLOW, O_NONBLOCK, O_PATH,
    O_RDONLY, O_RDWR, O_TMPFILE, O_TRUNC, O_WRONLY,
};
/// Flags `open` keeps in `f_flags` (the rest act at open only).
const KEPT_FLAGS: u32 = O_ACCMODE | O_APPEND | O_NONBLOCK | O_PATH | O_DIRECTORY | O_NOFOLLOW;
/// The status flags `fcntl(F_SETFL)` changes. Linux's mask also has
/// FASYNC, O_DIRECT and O_NOATIME, which act on nothing here: they are
/// ignored, as Linux ignores every other bit.
pub const SETFL_MASK: u32 = O_APPEND | O_NONBLOCK;

pub struct OpenFile {
    pub node: Node,
    /// The file position (Linux `f_pos`), under its own lock so a read
    /// and a seek of one description do not interleave.
    pub pos: Mutex<u64>,
    /// The status flags (`fcntl(F_GETFL)`); F_SETFL changes the
    /// [`SETFL_MASK`] bits.
    flags: AtomicU32,
    /// The absolute path a file (not a directory, whose dentry knows its
    /// path) was opened by, links resolved (Linux's `f_path`): what
    /// `/proc/PID/fd/N` links to.
    pub path: Option<alloc::sync::Arc<[u8]>>,
}

impl OpenFile {
    pub fn new(node: Node, flags: u32) -> OpenFile {
        OpenFile {
            node,
            pos: Mutex::new(0),
            flags: AtomicU32::new(flags & KEPT_FLAGS),
            path: None,
        }
    }

    /// The same, recording the path it was opened by.
    pub fn with_path(self, path: Option<alloc::sync::Arc<[u8]>>) -> OpenFile {
        OpenFile { path, ..self }
    }

    /// The status flags (`fcntl(F_GETFL)`).
    pub fn flags(&self) -> u32 {
        self.flags.load(Ordering::Relaxed)
    }

    /// `fcntl(F_SETFL)`: the [`SETFL_MASK`] bits from `flags`, the others
    /// kept.
    pub fn set_status(&self, flags: u32) {
        let _ = self
            .flags
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
                Some((old & !SETFL_MASK) | (flags & SETFL_MASK))
            });
    }

    pub fn readable(&self) -> bool {
        let flags = self.flags();
        flags & O_PATH == 0 && flags & O_ACCMODE != O_WRONLY
    }

    pub fn writable(&self) -> bool {
        let flags = self.flags();
        flags & O_PATH == 0 && matches!(flags & O_ACCMODE, O_WRONLY | O_RDWR)
    }

    /// Reads at `offset` without moving the position (pread).
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize, i32> {
        if !self.readable() {
            return Err(EBADF);
        }
        match &self.node {
            Node::Dir(_) => Err(EISDIR),
            Node::Inode(inode) => match &inode.kind {
                InodeKind::Regular(data) => Ok(data.lock().read_at(offset, buf)),
                InodeKind::CharDevice(DevNum::NULL) => Ok(0),
                InodeKind::CharDevice(DevNum::ZERO) => {
                    buf.fill(0);
                    Ok(buf.len())
                }
                InodeKind::CharDevice(_) | InodeKind::Special => Err(ENXIO),
                InodeKind::Symlink(_) => Err(EINVAL),
            },
        }
    }

    /// Writes at `offset` (or at the end with `append`, decided under the
    /// file's lock so appends from several processes never overlap).
    pub fn write_at(&self, offset: u64, buf: &[u8], append: bool) -> Result<usize, i32> {
        if !self.writable() {
            return Err(EBADF);
        }
        match &self.node {
            Node::Dir(_) => Err(EISDIR),
            Node::Inode(inode) => match &inode.kind {
                InodeKind::Regular(data) => {
                    let mut data = data.lock();
                    let at = if append { data.size() } else { offset };
                    data.write_at(at, buf)
                }
                InodeKind::CharDevice(DevNum::NULL | DevNum::ZERO) => Ok(buf.len()),
                InodeKind::CharDevice(_) | InodeKind::Special => Err(ENXIO),
                InodeKind::Symlink(_) => Err(EINVAL),
            },
        }
    }

    /// `read` at the position, which moves past what was read.
    pub fn read(&self, buf: &mut [u8]) -> Result<usize, i32> {
        let mut pos = self.pos.lock();
        let n = self.read_at(*pos, buf)?;
        *pos += n as u64;
        Ok(n)
    }

    /// `write` at the position (the end with O_APPEND); the position
    /// ends after what was written.
    pub fn write(&self, buf: &[u8]) -> Result<usize, i32> {
        let mut pos = self.pos.lock();
        let append = self.flags() & O_APPEND != 0;
        if append {
            if let Node::Inode(inode) = &self.node {
                if let Some(data) = inode.data() {
                    let mut data = data.lock();
                    if !self.writable() {
                        return Err(EBADF);
                    }
                    let at = data.size();
                    let n = data.write_at(at, buf)?;
                    *pos = at + n as u64;
                    return Ok(n);
                }
            }
        }
        let n = self.write_at(*pos, buf, false)?;
        *pos += n as u64;
        Ok(n)
    }

    /// Whether positions mean anything (ESPIPE otherwise).
    pub fn seekable(&self) -> bool {
        match &self.node {
            Node::Dir(_) => true,
            Node::Inode(inode) => {
                matches!(inode.kind, InodeKind::Regular(_) | InodeKind::CharDevice(_))
            }
        }
    }
}
