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

/// A point in time of CLOCK_REALTIME: seconds and nanoseconds (Linux
/// `struct timespec64`), as file times keep it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timespec {
    pub sec: i64,
    /// 0..1_000_000_000.
    pub nsec: u32,
}

impl Timespec {
    /// `ns` nanoseconds after the epoch.
    pub fn from_ns(ns: u64) -> Timespec {
        Timespec {
            sec: (ns / 1_000_000_000) as i64,
            nsec: (ns % 1_000_000_000) as u32,
        }
    }

    /// Whole seconds after the epoch (cpio's times).
    pub fn from_secs(sec: i64) -> Timespec {
        Timespec { sec, nsec: 0 }
    }
}

/// A day in seconds: relatime updates an access time older than that.
const RELATIME_INTERVAL: i64 = 24 * 60 * 60;

/// The three times of a file (Linux `i_atime`, `i_mtime`, `i_ctime`):
/// last access, last change of the contents (for a directory: of its
/// entries), last change of the inode (contents, link count, owner,
/// mode, times).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Times {
    pub atime: Timespec,
    pub mtime: Timespec,
    pub ctime: Timespec,
}

impl Times {
    /// All three at `t` (a new file).
    pub fn at(t: Timespec) -> Times {
        Times {
            atime: t,
            mtime: t,
            ctime: t,
        }
    }

    /// The contents changed at `now` (a write, a truncation, an entry
    /// added to or removed from a directory): mtime and ctime.
    pub fn modified(&mut self, now: Timespec) {
        self.mtime = now;
        self.ctime = now;
    }

    /// Whether a read at `now` updates the access time under Linux's
    /// default `relatime` (`relatime_need_update`): when the access time
    /// is not after the modification or change time, or is a day old.
    pub fn relatime_needs_update(&self, now: Timespec) -> bool {
        self.atime <= self.mtime
            || self.atime <= self.ctime
            || now.sec - self.atime.sec >= RELATIME_INTERVAL
    }

    /// A read at `now` (Linux `touch_atime` with relatime).
    pub fn accessed(&mut self, now: Timespec) {
        if self.relatime_needs_update(now) {
            self.atime = now;
        }
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
    pub times: Times,
}

pub struct Inode {
    pub ino: u64,
    pub meta: Mutex<Meta>,
    pub kind: InodeKind,
}

impl Inode {
    /// A new inode, linked nowhere yet (`nlink` 0; the directory that
    /// takes it counts the link). Its times are 0 until the caller sets
    /// them (this crate has no clock).
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
                times: Times::default(),
            }),
            kind,
        }
    }

    pub fn meta(&self) -> Meta {
        *self.meta.lock()
    }

    /// Changes the times with `f`.
    pub fn update_times(&self, f: impl FnOnce(&mut Times)) {
        f(&mut self.meta.lock().times);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn t(sec: i64) -> Timespec {
        Timespec::from_secs(sec)
    }

    #[test]
    fn relatime() {
        // Accessed after the last change: not again within a day.
        let mut times = Times {
            atime: t(100),
            mtime: t(50),
            ctime: t(50),
        };
        times.accessed(t(200));
        assert_eq!(times.atime, t(100));
        times.accessed(t(100 + RELATIME_INTERVAL));
        assert_eq!(times.atime, t(100 + RELATIME_INTERVAL));
        // Modified since: the next read updates.
        times.modified(t(100 + RELATIME_INTERVAL + 5));
        times.accessed(t(100 + RELATIME_INTERVAL + 6));
        assert_eq!(times.atime, t(100 + RELATIME_INTERVAL + 6));
        assert_eq!(times.mtime, times.ctime);
        // An access time equal to the change time updates too.
        let mut same = Times::at(t(7));
        same.accessed(t(8));
        assert_eq!(same.atime, t(8));
    }

    #[test]
    fn timespec_from_ns() {
        assert_eq!(
            Timespec::from_ns(3_000_000_007),
            Timespec { sec: 3, nsec: 7 }
        );
        assert!(Timespec { sec: 1, nsec: 5 } < Timespec { sec: 2, nsec: 0 });
    }
}
