//! The file-system context's calls: `getcwd`, `chdir`, `chroot`, `mkdir`,
//! `rmdir`, over the directory tree (`fs::dentry`, `fs::namei`). There is
//! no permission check on directories (no owners yet): every directory is
//! searchable and writable; `chroot` needs CAP_SYS_CHROOT.

use alloc::sync::Arc;
use alloc::vec::Vec;

use spin::Mutex;

use super::{current_mm, Args, SysResult};
use crate::errno::{EBUSY, EEXIST, EINVAL, ENAMETOOLONG, ENOENT, ENOTEMPTY, EPERM, ERANGE};
use crate::fs::namei::{path_from, Last, PATH_MAX};
use crate::process::cred::CAP_SYS_CHROOT;
use crate::process::fs_struct::FsStruct;
use crate::sched;

/// The current task's file-system context.
fn current_fs() -> Arc<Mutex<FsStruct>> {
    sched::current().inner.lock().fs.clone()
}

/// Copies a path from user memory (Linux `getname`): EFAULT, ENAMETOOLONG
/// if no NUL within PATH_MAX bytes, ENOENT if empty. Reads a page at a
/// time, never past the NUL's page or PATH_MAX.
fn getname(address: u64) -> Result<Vec<u8>, i32> {
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

/// `chdir(path)`.
pub fn chdir(a: Args) -> SysResult {
    let path = getname(a.0[0])?;
    let fs = current_fs();
    let dir = fs.lock().walk().lookup(&path)?;
    fs.lock().pwd = dir;
    Ok(0)
}

/// `chroot(path)`: the lookup's errors first, then EPERM without
/// CAP_SYS_CHROOT; the cwd stays where it is (possibly outside).
pub fn chroot(a: Args) -> SysResult {
    let path = getname(a.0[0])?;
    let task = sched::current();
    let fs = current_fs();
    let dir = fs.lock().walk().lookup(&path)?;
    if !task.inner.lock().cred.capable(CAP_SYS_CHROOT) {
        return Err(EPERM);
    }
    fs.lock().root = dir;
    Ok(0)
}

/// `mkdir(path, mode)`: the mode less the umask is stored (nothing
/// reports it yet). `/`, `.` and `..` as the last component: EEXIST.
pub fn mkdir(a: Args) -> SysResult {
    let [path, mode, ..] = a.0;
    let path = getname(path)?;
    let fs = current_fs();
    let (dir, last, umask) = {
        let fs = fs.lock();
        let (dir, last) = fs.walk().parent(&path)?;
        (dir, last, fs.umask)
    };
    let Last::Norm(name) = last else {
        return Err(EEXIST);
    };
    dir.mkdir(name, mode as u32 & 0o1777 & !umask)?;
    Ok(0)
}

/// `rmdir(path)`: an empty directory. Last component `..`: ENOTEMPTY,
/// `.`: EINVAL, `/`: EBUSY, as Linux checks before looking it up.
pub fn rmdir(a: Args) -> SysResult {
    let path = getname(a.0[0])?;
    let fs = current_fs();
    let (dir, last) = fs.lock().walk().parent(&path)?;
    match last {
        Last::Norm(name) => dir.rmdir(name)?,
        Last::DotDot => return Err(ENOTEMPTY),
        Last::Dot => return Err(EINVAL),
        Last::Root => return Err(EBUSY),
    }
    Ok(0)
}
