//! The file-system context's calls: `getcwd`, `chdir`, `chroot`, `mkdir`,
//! `rmdir`, `mkdirat` and `unlinkat` (files: `file`), over the directory tree
//! (`fs::dentry`, `fs::namei`), with Linux's permission checks on
//! directories (`fs::permission`).

use alloc::vec::Vec;

use super::file::with_walk;
use super::{current_mm, Args, SysResult};
use crate::errno::{EBUSY, EEXIST, EINVAL, ENAMETOOLONG, ENOENT, ENOTEMPTY, EPERM, ERANGE};
pub(super) use crate::fs::current::{current_access, current_fs};
use crate::fs::dentry::{Dentry, Owner};
use crate::fs::namei::{path_from, Last, PATH_MAX};
use crate::fs::permission::{Access, MAY_EXEC, MAY_WRITE};
use crate::process::cred::CAP_SYS_CHROOT;

/// Copies a path from user memory (Linux `getname`): EFAULT, ENAMETOOLONG
/// if no NUL within PATH_MAX bytes, ENOENT if empty. Reads a page at a
/// time, never past the NUL's page or PATH_MAX.
pub(super) fn getname(address: u64) -> Result<Vec<u8>, i32> {
    let mm = current_mm()?;
    let mut name = Vec::new();
    let mut at = address;
    while name.len() < PATH_MAX {
        let to_page_end = (4096 - (at % 4096)) as usize;
        let mut chunk = alloc::vec![0u8; to_page_end.min(PATH_MAX - name.len())];
        mm.copy_from_user(at, &mut chunk)?;
        if let Some(end) = chunk.iter().position(|&b| b == 0) {
            name.extend_from_slice(&chunk[..end]);
            return if name.is_empty() {
                Err(ENOENT)
            } else {
                Ok(name)
            };
        }
        name.extend_from_slice(&chunk);
        at += chunk.len() as u64;
    }
    Err(ENAMETOOLONG)
}

/// `getcwd(buf, size)`: the length written, NUL included. ENOENT if the
/// cwd was removed; a cwd outside the root is `(unreachable)/path from the
/// tree's root`, as in Linux; ERANGE if `size` is too small.
pub fn getcwd(a: Args) -> SysResult {
    let [buf, size, ..] = a.0;
    let fs = current_fs();
    let (mut text, reachable) = {
        let fs = fs.lock();
        if fs.pwd.is_dead() {
            return Err(ENOENT);
        }
        path_from(&fs.pwd, &fs.root)
    };
    if !reachable {
        text.splice(0..0, b"(unreachable)".iter().copied());
    }
    text.push(0);
    if text.len() > PATH_MAX {
        return Err(ENAMETOOLONG);
    }
    if text.len() as u64 > size {
        return Err(ERANGE);
    }
    current_mm()?.copy_to_user(buf, &text)?;
    Ok(text.len() as u64)
}

/// `chdir(path)`: search permission on the directory itself too.
pub fn chdir(a: Args) -> SysResult {
    let path = getname(a.0[0])?;
    let access = current_access();
    let fs = current_fs();
    let dir = fs.lock().walk(&access).lookup(&path)?;
    access.permission(&dir, MAY_EXEC)?;
    fs.lock().pwd = dir;
    Ok(0)
}

/// `chroot(path)`: the lookup's and search permission's errors first, then
/// EPERM without CAP_SYS_CHROOT; the cwd stays where it is (possibly
/// outside the new root).
pub fn chroot(a: Args) -> SysResult {
    let path = getname(a.0[0])?;
    let access = current_access();
    let fs = current_fs();
    let dir = fs.lock().walk(&access).lookup(&path)?;
    access.permission(&dir, MAY_EXEC)?;
    if access.caps & (1 << CAP_SYS_CHROOT) == 0 {
        return Err(EPERM);
    }
    fs.lock().root = dir;
    Ok(0)
}

/// `mkdir(path, mode)`: owned by the caller, mode less the umask. `/`,
/// `.` and `..` as the last component: EEXIST; then ENOENT, ENAMETOOLONG,
/// EEXIST, and EACCES without write permission on the parent.
pub fn mkdir(a: Args) -> SysResult {
    let [path, mode, ..] = a.0;
    do_mkdir(AT_FDCWD as u32 as u64, &getname(path)?, mode)
}

fn do_mkdir(dirfd: u64, path: &[u8], mode: u64) -> SysResult {
    let access = current_access();
    let umask = current_fs().lock().umask;
    let (dir, last) = with_walk(dirfd, path, &access, |walk| walk.parent(path))?;
    let Last::Norm(name) = last else {
        return Err(EEXIST);
    };
    let owner = Owner {
        uid: access.fsuid,
        gid: access.fsgid,
    };
    dir.mkdir_checked(name, mode as u32 & 0o1777 & !umask, owner, |parent| {
        access.permission(parent, MAY_WRITE | MAY_EXEC)
    })?;
    Ok(0)
}

/// `rmdir(path)`: an empty directory. Last component `..`: ENOTEMPTY,
/// `.`: EINVAL, `/`: EBUSY, as Linux checks before looking it up; then
/// ENOENT, EACCES without write permission on the parent, EPERM in a
/// sticky parent for someone else's directory, ENOTEMPTY.
pub fn rmdir(a: Args) -> SysResult {
    do_rmdir(AT_FDCWD as u32 as u64, &getname(a.0[0])?)
}

fn do_rmdir(dirfd: u64, path: &[u8]) -> SysResult {
    let access = current_access();
    let (dir, last) = with_walk(dirfd, path, &access, |walk| walk.parent(path))?;
    match last {
        Last::Norm(name) => {
            dir.rmdir_checked(name, |parent, victim| may_delete(&access, parent, victim))?
        }
        Last::DotDot => return Err(ENOTEMPTY),
        Last::Dot => return Err(EINVAL),
        Last::Root => return Err(EBUSY),
    }
    Ok(0)
}

/// Linux `may_delete`'s permission part: write and search on the parent,
/// then the sticky bit.
pub(super) fn may_delete(
    access: &Access,
    parent: &Dentry,
    victim: &crate::fs::dentry::Node,
) -> Result<(), i32> {
    access.permission(parent, MAY_WRITE | MAY_EXEC)?;
    if access.sticky_refuses(parent, victim) {
        return Err(EPERM);
    }
    Ok(())
}

use forkvm_abi::linux::fcntl::AT_FDCWD;
/// `unlinkat` flag: remove a directory, as `rmdir`.
const AT_REMOVEDIR: u64 = 0x200;

/// `mkdirat(dirfd, path, mode)`: `mkdir` relative to `dirfd`.
pub fn mkdirat(a: Args) -> SysResult {
    let [dirfd, path, mode, ..] = a.0;
    let path = getname(path)?;
    do_mkdir(dirfd, &path, mode)
}

/// `unlinkat(dirfd, path, flags)`: with AT_REMOVEDIR `rmdir`, without
/// `unlink` (`file::do_unlink`). Other flags: EINVAL.
pub fn unlinkat(a: Args) -> SysResult {
    let [dirfd, path, flags, ..] = a.0;
    let flags = u64::from(flags as u32); // an `int`
    if flags & !AT_REMOVEDIR != 0 {
        return Err(EINVAL);
    }
    let path = getname(path)?;
    if flags & AT_REMOVEDIR != 0 {
        return do_rmdir(dirfd, &path);
    }
    super::file::do_unlink(dirfd, &path)
}
