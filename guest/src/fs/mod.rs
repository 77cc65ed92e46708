//! Open files and the file system. A file is the console, the virtio
//! console, one end of a pipe, a pidfd, one of the few `/proc` files, or
//! a file of the tree (`file::OpenFile`). The tree is a ramfs: `dentry`
//! (directories), `inode` (files, symlinks, devices), `page_cache` (a
//! file's pages), walked by `namei`, checked by `permission`, filled at
//! boot by `initramfs` from the archive `cpio` parses. `exec` finds what
//! `execve` runs. The pure parts are `forkvm_core::fs` (host unit tests),
//! re-exported here.

pub mod current;
pub mod exec;
pub mod file;
pub mod pipe;
pub mod poll;
pub mod proc;
pub mod tty;

pub use forkvm_core::fs::{dentry, initramfs, inode, namei, page_cache, permission};

use alloc::sync::Arc;
use core::sync::atomic::{AtomicU32, Ordering};

use self::pipe::Pipe;

/// What an open file description refers to (Linux `struct file`).
pub enum FileKind {
    /// The serial console (read: keyboard input; write: output).
    Console,
    PipeRead(Arc<Pipe>),
    PipeWrite(Arc<Pipe>),
    /// The virtio console (`forkvm_vconsole_open`): read blocks for host
    /// input, write transmits.
    VirtioConsole,
    /// A process, as returned by CLONE_PIDFD or `pidfd_open`.
    Pidfd(alloc::sync::Weak<crate::process::task::Task>),
    /// `/proc/PID/uid_map` and friends.
    Proc(proc::ProcFile),
    /// A file, directory or device of the tree.
    Vfs(file::OpenFile),
}

/// An open file description, shared by every descriptor `dup`ed from it
/// and across `fork`. Dropping the last reference closes it.
pub struct File {
    pub kind: FileKind,
    /// Status flags of the files that are not `Vfs` (those keep theirs in
    /// their `OpenFile`): O_NONBLOCK, set at open (`pipe2`,
    /// `pidfd_open(PIDFD_NONBLOCK)`) or by `fcntl(F_SETFL)`, and read by
    /// pipe reads and writes and `waitid(P_PIDFD)`.
    f_flags: AtomicU32,
}

impl File {
    pub fn new(kind: FileKind) -> Arc<File> {
        File::with_flags(kind, 0)
    }

    pub fn with_flags(kind: FileKind, f_flags: u32) -> Arc<File> {
        Arc::new(File {
            kind,
            f_flags: AtomicU32::new(f_flags & file::SETFL_MASK),
        })
    }

    /// The status flags `fcntl(F_SETFL)` can change (O_APPEND,
    /// O_NONBLOCK), wherever this kind of file keeps them.
    pub fn status(&self) -> u32 {
        match &self.kind {
            FileKind::Vfs(open) => open.flags() & file::SETFL_MASK,
            _ => self.f_flags.load(Ordering::Relaxed),
        }
    }

    /// `fcntl(F_SETFL)`: replaces the changeable status flags.
    pub fn set_status(&self, flags: u32) {
        match &self.kind {
            FileKind::Vfs(open) => open.set_status(flags),
            _ => self
                .f_flags
                .store(flags & file::SETFL_MASK, Ordering::Relaxed),
        }
    }

    /// Whether reads and writes that would wait fail with EAGAIN instead.
    pub fn nonblocking(&self) -> bool {
        self.status() & file::O_NONBLOCK != 0
    }
}

impl Drop for File {
    fn drop(&mut self) {
        match &self.kind {
            FileKind::PipeRead(pipe) => pipe.close_end(true),
            FileKind::PipeWrite(pipe) => pipe.close_end(false),
            FileKind::Console
            | FileKind::VirtioConsole
            | FileKind::Pidfd(_)
            | FileKind::Proc(_)
            | FileKind::Vfs(_) => {}
        }
    }
}
