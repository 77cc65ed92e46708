//! Inodes of everything that is not a directory (Linux `struct inode` of
//! a ramfs): regular files (their pages in `page_cache`), symbolic links
//! and character devices. Directories are `Dentry`s, inode folded in, as
//! they cannot be hard-linked; a non-directory inode can sit under several
//! names (hard links, `nlink` counts them) and lives while a name or an
//! open file holds it, so an unlinked file stays readable until closed.

use alloc::boxed::Box;
use core::sync::atomic::{AtomicU64, Ordering};

use spin::Mutex;

use super::page_cache::FileData;

/// File type bits of `st_mode` (Linux `S_IFMT` and friends).
pub const S_IFMT: u32 = 0o170000;
pub const S_IFREG: u32 = 0o100000;
pub const S_IFDIR: u32 = 0o040000;
pub const S_IFLNK: u32 = 0o120000;
pub const S_IFCHR: u32 = 0o020000;
pub const S_IFIFO: u32 = 0o010000;

/// Inode numbers, shared by directories and the rest (`st_ino`).
pub fn next_ino() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A character device's number (`st_rdev`): Linux's `makedev`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DevNum {
    pub major: u32,
    pub minor: u32,
}

impl DevNum {
    /// `/dev/null` (1, 3).
    pub const NULL: DevNum = DevNum { major: 1, minor: 3 };
    /// `/dev/zero` (1, 5).
    pub const ZERO: DevNum = DevNum { major: 1, minor: 5 };
    /// `/dev/tty` (5, 0).
    pub const TTY: DevNum = DevNum { major: 5, minor: 0 };
    /// `/dev/console` (5, 1).
    pub const CONSOLE: DevNum = DevNum { major: 5, minor: 1 };

    /// glibc's `gnu_dev_makedev`, as `stat` reports it.
    pub fn encode(self) -> u64 {
        let (major, minor) = (u64::from(self.major), u64::from(self.minor));
        (major & 0xfff) << 8 | (major & !0xfff) << 32 | (minor & 0xff) | (minor & !0xff) << 12
    }
}

/// What an inode is.
pub enum InodeKind {
    Regular(Mutex<FileData>),
    /// The target, as written (never empty).
    Symlink(Box<[u8]>),
    CharDevice(DevNum),
    /// A FIFO, socket or block device from an archive: it has a name and
    /// attributes, but opening it is not supported (ENXIO).
    Special,
}

/// The attributes `stat` reports and permission checks read.
#[derive(Clone, Copy, Debug)]
pub struct Meta {
    /// Type and permission bits.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Names referring to it.
    pub nlink: u32,
    /// Modification time, seconds.
    pub mtime: u64,
}

pub struct Inode {
    pub ino: u64,
    pub meta: Mutex<Meta>,
    pub kind: InodeKind,
}

impl Inode {
    /// A new inode, linked nowhere yet (`nlink` 0; the directory that
    /// takes it counts the link).
    pub fn new(kind: InodeKind, mode: u32, uid: u32, gid: u32) -> Inode {
        let kind_bits = match &kind {
            InodeKind::Regular(_) => S_IFREG,
            InodeKind::Symlink(_) => S_IFLNK,
            InodeKind::CharDevice(_) => S_IFCHR,
            InodeKind::Special => mode & S_IFMT,
        };
        Inode {
            ino: next_ino(),
            meta: Mutex::new(Meta {
                mode: kind_bits | (mode & 0o7777),
                uid,
                gid,
                nlink: 0,
                mtime: 0,
            }),
            kind,
        }
    }

    pub fn meta(&self) -> Meta {
        *self.meta.lock()
    }

    pub fn file_type(&self) -> u32 {
        self.meta.lock().mode & S_IFMT
    }

    /// The regular file's contents, if it is one.
    pub fn data(&self) -> Option<&Mutex<FileData>> {
        match &self.kind {
            InodeKind::Regular(data) => Some(data),
            _ => None,
        }
    }
}
