//! Unpacking the initramfs into the directory tree at boot (Linux
//! `init/initramfs.c`): directories, regular files (their bytes copied
//! into page frames), symbolic links, hard links (members with the same
//! inode number and `nlink` > 1 share one inode, as `maybe_link` does) and
//! device nodes, with the archive's modes and owners. Like Linux, a member
//! whose parent directory is missing is skipped, and a member replaces a
//! non-directory of the same name. A corrupt archive stops the boot with
//! the byte offset and what was wrong (`cpio::ArchiveError`).
//!
//! At boot the kernel also adds what every forkvm system has: the
//! built-in programs under `/sbin/forkvm/` and the device nodes
//! `/dev/null`, `/dev/zero`, `/dev/console` and `/dev/tty`.

use alloc::collections::BTreeMap;
use alloc::sync::Arc;

use super::cpio::{ArchiveError, Entry, Reader};
use super::dentry::{Dentry, Node, Owner};
use super::inode::{
    DevNum, Inode, InodeKind, Times, Timespec, S_IFCHR, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG,
};
use super::page_cache::FileData;
use crate::errno::{EEXIST, ENOMEM};

/// Why unpacking stopped.
#[derive(Debug, PartialEq, Eq)]
pub enum UnpackError {
    Corrupt(ArchiveError),
    /// No frame was left for a file's data; the member's offset.
    OutOfMemory {
        offset: usize,
    },
}

impl core::fmt::Display for UnpackError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            UnpackError::Corrupt(e) => write!(f, "{e}"),
            UnpackError::OutOfMemory { offset } => {
                write!(
                    f,
                    "out of memory unpacking the initramfs member at byte {offset}"
                )
            }
        }
    }
}

/// What an archive held.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Unpacked {
    pub entries: usize,
    /// Members skipped: no parent directory, or a name taken by a
    /// directory.
    pub skipped: usize,
}

/// Unpacks `archive` below `root`.
pub fn unpack(root: &Arc<Dentry>, archive: &[u8]) -> Result<Unpacked, UnpackError> {
    let mut result = Unpacked::default();
    // (dev, ino) -> the inode of a member with nlink > 1.
    let mut links: BTreeMap<(u32, u32, u32), Arc<Inode>> = BTreeMap::new();
    for entry in Reader::new(archive) {
        let entry = entry.map_err(UnpackError::Corrupt)?;
        result.entries += 1;
        if !add(root, &entry, &mut links)? {
            result.skipped += 1;
        }
    }
    Ok(result)
}

/// The member's parent directory and last name, if its parent exists.
fn place<'n>(root: &Arc<Dentry>, name: &'n [u8]) -> Option<(Arc<Dentry>, &'n [u8])> {
    let mut parts = name
        .split(|&b| b == b'/')
        .filter(|part| !part.is_empty() && *part != b".");
    let last = parts.next_back()?;
    let mut dir = root.clone();
    for part in parts {
        dir = match part {
            b".." => dir.parent().unwrap_or(dir),
            _ => dir.lookup(part).ok()?,
        };
    }
    (last != b"..").then_some((dir, last))
}

fn add(
    root: &Arc<Dentry>,
    entry: &Entry,
    links: &mut BTreeMap<(u32, u32, u32), Arc<Inode>>,
) -> Result<bool, UnpackError> {
    let Some((dir, name)) = place(root, entry.name) else {
        // "." (the root itself) or a path whose parent is missing.
        return Ok(entry
            .name
            .split(|&b| b == b'/')
            .all(|p| p.is_empty() || p == b"."));
    };
    let owner = Owner {
        uid: entry.uid,
        gid: entry.gid,
    };
    let perm = entry.mode & 0o7777;
    let oom = UnpackError::OutOfMemory {
        offset: entry.offset,
    };
    let created = |_: &Dentry| Ok(());
    // A later member replaces an earlier non-directory (Linux clean_path).
    if entry.mode & S_IFMT != S_IFDIR {
        if let Ok(Node::Inode(_)) = dir.lookup_node(name) {
            let _ = dir.unlink_checked(name, |_, _| Ok(()));
        }
    }
    // Linux's initramfs sets the access and modification times to the
    // member's (`init_utimes`, `dir_utime`); the change time stays the
    // unpacking's, boot (0 of the guest's CLOCK_REALTIME). Adding entries
    // here touches no directory's times.
    let stamp = |times: &mut Times| {
        times.atime = Timespec::from_secs(i64::from(entry.mtime));
        times.mtime = times.atime;
    };
    let inode = match entry.mode & S_IFMT {
        S_IFDIR => {
            let made = match dir.mkdir(name, perm, owner) {
                Ok(made) => Some(made),
                Err(EEXIST) => dir.lookup(name).ok(),
                Err(_) => None,
            };
            if let Some(made) = &made {
                made.update_times(stamp);
            }
            return Ok(made.is_some());
        }
        S_IFREG => {
            let key = (entry.dev_major, entry.dev_minor, entry.ino);
            if entry.nlink > 1 {
                if let Some(existing) = links.get(&key) {
                    return Ok(dir.link_checked(name, existing, created).is_ok());
                }
            }
            let mut data = FileData::default();
            match data.write_at(0, entry.data) {
                Ok(n) if n == entry.data.len() => {}
                Ok(_) | Err(ENOMEM) => return Err(oom),
                Err(_) => return Ok(false),
            }
            let inode = Arc::new(Inode::new(
                InodeKind::Regular(spin::Mutex::new(data)),
                perm,
                owner.uid,
                owner.gid,
            ));
            if entry.nlink > 1 {
                links.insert(key, inode.clone());
            }
            inode
        }
        S_IFLNK if !entry.data.is_empty() => Arc::new(Inode::new(
            InodeKind::Symlink(entry.data.into()),
            0o777,
            owner.uid,
            owner.gid,
        )),
        S_IFCHR => Arc::new(Inode::new(
            InodeKind::CharDevice(DevNum {
                major: entry.rdev_major,
                minor: entry.rdev_minor,
            }),
            perm,
            owner.uid,
            owner.gid,
        )),
        _ => Arc::new(Inode::new(
            InodeKind::Special,
            entry.mode,
            owner.uid,
            owner.gid,
        )),
    };
    inode.update_times(stamp);
    Ok(dir.link_checked(name, &inode, created).is_ok())
}

/// Adds the device nodes and the built-in programs (`images`: name and
/// ELF image) to the tree, where an archive did not already put them.
pub fn add_system_files<'a>(
    root: &Arc<Dentry>,
    images: impl Iterator<Item = (&'a str, &'static [u8])>,
) {
    let root_owner = Owner { uid: 0, gid: 0 };
    let dev = root
        .mkdir(b"dev", 0o755, root_owner)
        .or_else(|_| root.lookup(b"dev"));
    if let Ok(dev) = dev {
        for (name, number, mode) in [
            (&b"null"[..], DevNum::NULL, 0o666),
            (b"zero", DevNum::ZERO, 0o666),
            (b"console", DevNum::CONSOLE, 0o600),
            (b"tty", DevNum::TTY, 0o666),
        ] {
            let node = Arc::new(Inode::new(InodeKind::CharDevice(number), mode, 0, 0));
            let _ = dev.link_checked(name, &node, |_| Ok(()));
        }
    }
    let sbin = root
        .mkdir(b"sbin", 0o755, root_owner)
        .or_else(|_| root.lookup(b"sbin"));
    let Ok(builtin) = sbin.and_then(|sbin| {
        sbin.mkdir(b"forkvm", 0o755, root_owner)
            .or_else(|_| sbin.lookup(b"forkvm"))
    }) else {
        return;
    };
    for (name, image) in images {
        let file = Arc::new(Inode::new(
            InodeKind::Regular(spin::Mutex::new(FileData::from_image(image))),
            0o755,
            0,
            0,
        ));
        let _ = builtin.link_checked(name.as_bytes(), &file, |_| Ok(()));
    }
}

#[cfg(test)]
mod tests {
    use alloc::vec::Vec;

    use super::*;
    use crate::fs::cpio::tests::{member, trailer};
    use crate::fs::page_cache::backend;
    use crate::fs::permission::Access;

    const ROOT: Access = Access {
        fsuid: 0,
        fsgid: 0,
        caps: u64::MAX,
        owner_mapped: None,
        groups: None,
    };

    fn read_all(node: &Node) -> Vec<u8> {
        let Node::Inode(inode) = node else {
            panic!("a file")
        };
        let data = inode.data().unwrap().lock();
        let mut buf = alloc::vec![0; data.size() as usize];
        data.read_at(0, &mut buf);
        buf
    }

    #[test]
    fn unpacks_files_directories_links_and_devices() {
        backend::install();
        let before = backend::live();
        let mut a = Vec::new();
        member(&mut a, b".", 0o40755, 1, 2, b"");
        member(&mut a, b"./bin", 0o40755, 2, 2, b"");
        member(&mut a, b"bin/busybox", 0o100755, 3, 2, &[7; 5000]);
        member(&mut a, b"bin/ls", 0o100755, 3, 2, b"");
        member(&mut a, b"bin/sh", 0o120777, 4, 1, b"busybox");
        member(&mut a, b"missing/file", 0o100644, 5, 1, b"x");
        member(&mut a, b"dev", 0o40755, 6, 2, b"");
        member(&mut a, b"dev/null", 0o20666, 7, 1, b"");
        trailer(&mut a);
        let root = Dentry::new_tree();
        let result = unpack(&root, &a).unwrap();
        assert_eq!(
            result,
            Unpacked {
                entries: 8,
                skipped: 1
            }
        );
        let walk = crate::fs::namei::Walk {
            root: &root,
            pwd: &root,
            access: &ROOT,
        };
        let busybox = walk.lookup_node(b"/bin/sh", true).unwrap();
        assert_eq!(read_all(&busybox), [7; 5000]);
        let ls = walk.lookup_node(b"/bin/ls", true).unwrap();
        assert_eq!(ls.ino(), busybox.ino(), "a hard link");
        let Node::Inode(inode) = ls.clone() else {
            panic!()
        };
        assert_eq!(inode.meta().nlink, 2);
        assert_eq!(inode.meta().mode, 0o100755);
        let null = walk.lookup_node(b"/dev/null", true).unwrap();
        assert_eq!(null.mode(), 0o20666);
        assert_eq!(backend::live(), before + 2);
        // The frames come back with the last name and reference.
        let bin = walk.lookup(b"/bin").unwrap();
        bin.unlink_checked(b"busybox", |_, _| Ok(())).unwrap();
        drop((busybox, ls, null));
        assert_eq!(backend::live(), before + 2, "still linked as ls");
        bin.unlink_checked(b"ls", |_, _| Ok(())).unwrap();
        assert_eq!(inode.meta().nlink, 0);
        assert_eq!(
            backend::live(),
            before + 2,
            "still referenced (an open file)"
        );
        drop(inode);
        assert_eq!(backend::live(), before);
    }

    #[test]
    fn corrupt_archives_stop_with_the_offset() {
        backend::install();
        let mut a = Vec::new();
        member(&mut a, b"bin", 0o40755, 2, 2, b"");
        let cut = a.len();
        member(&mut a, b"bin/x", 0o100755, 3, 1, b"abc");
        a.truncate(cut + 40);
        let root = Dentry::new_tree();
        let err = unpack(&root, &a).unwrap_err();
        assert_eq!(
            alloc::format!("{err}"),
            alloc::format!("corrupt initramfs at byte {cut}: truncated header")
        );
    }

    #[test]
    fn running_out_of_frames_is_reported() {
        backend::install();
        let mut a = Vec::new();
        member(&mut a, b"big", 0o100644, 3, 1, &[1; 10000]);
        trailer(&mut a);
        let root = Dentry::new_tree();
        backend::set_limit(backend::live() + 1);
        let err = unpack(&root, &a).unwrap_err();
        backend::set_limit(usize::MAX);
        assert_eq!(err, UnpackError::OutOfMemory { offset: 0 });
    }
}
