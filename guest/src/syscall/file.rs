//! System calls on files of the tree (`fs::file`, `fs::inode`), with
//! Linux's checks in Linux's order: `open`/`openat`, the read and write
//! paths of `read`/`write` for such files (called from `io`), `pread64`,
//! `pwrite64`, `lseek`, `stat`/`fstat`/`lstat`/`newfstatat`, `getdents64`,
//! `unlink`, `readlink(at)`, `symlink(at)`, `link(at)`, `rename(at)(2)`,
//! `ftruncate`/`truncate`, `access`/`faccessat(2)`, `fchdir`,
//! `chmod`/`fchmod`/`fchmodat`, `chown`/`fchown`/`lchown`/`fchownat`,
//! `utimensat`, `readv`/`writev`, `statx`,
//! `fsync`/`fdatasync`.

use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;

use super::fs::{current_access, current_fs, getname, may_delete};
use super::{current_mm, Args, SysResult};
use crate::errno::{EBADF, EEXIST, EINVAL, EISDIR, ELOOP, ENOENT, ENOTDIR, ENXIO, EPERM, ESPIPE};
use crate::fs::dentry::{Dentry, Node};
use crate::fs::file::{
    OpenFile, O_ACCMODE, O_APPEND, O_CLOEXEC, O_CREAT, O_DIRECTORY, O_EXCL, O_NOFOLLOW, O_PATH,
    O_RDONLY, O_TMPFILE, O_TRUNC, O_WRONLY,
};
use crate::fs::inode::{DevNum, Inode, InodeKind, S_IFCHR, S_IFDIR, S_IFIFO};
use crate::fs::namei::{Last, Walk};
use crate::fs::page_cache::FileData;
use crate::fs::permission::{Access, MAY_EXEC, MAY_READ, MAY_WRITE};
use crate::fs::{File, FileKind};
use crate::mm::file_map::truncate_file;
use crate::sched;

/// `AT_FDCWD`: relative paths start at the cwd.
const AT_FDCWD: i32 = -100;
const AT_SYMLINK_NOFOLLOW: u64 = 0x100;
const AT_EACCESS: u64 = 0x200;
const AT_SYMLINK_FOLLOW: u64 = 0x400;
const AT_EMPTY_PATH: u64 = 0x1000;
/// Most symbolic links followed in one lookup (Linux `MAXSYMLINKS`).
const MAX_SYMLINKS: u32 = 40;
/// Largest chunk moved between user memory and a file at a time.
const CHUNK: usize = 16 * 4096;

fn file(fd: u64) -> Result<Arc<File>, i32> {
    sched::current().files().ok_or(EBADF)?.lock().get(fd)
}

/// The directory a relative path of an `*at` call starts from (Linux
/// `path_init`): the cwd for AT_FDCWD, else `dirfd`'s directory (EBADF
/// if not open, ENOTDIR if not a directory); an absolute path ignores it.
/// Returns (root, start).
fn base(dirfd: u64, path: &[u8]) -> Result<(Arc<Dentry>, Arc<Dentry>), i32> {
    let (root, pwd) = {
        let fs = current_fs();
        let fs = fs.lock();
        (fs.root.clone(), fs.pwd.clone())
    };
    if path.first() == Some(&b'/') || dirfd as i32 == AT_FDCWD {
        return Ok((root, pwd));
    }
    match &file(u64::from(dirfd as u32))?.kind {
        FileKind::Vfs(OpenFile {
            node: Node::Dir(dir),
            ..
        }) => Ok((root, dir.clone())),
        _ => Err(ENOTDIR),
    }
}

/// Runs `f` with a walk from `dirfd` for `path`.
pub(super) fn with_walk<R>(
    dirfd: u64,
    path: &[u8],
    access: &Access,
    f: impl FnOnce(&Walk) -> Result<R, i32>,
) -> Result<R, i32> {
    let (root, pwd) = base(dirfd, path)?;
    f(&Walk {
        root: &root,
        pwd: &pwd,
        access,
    })
}

/// A path argument that may be empty (with AT_EMPTY_PATH).
pub(super) fn getname_maybe_empty(address: u64, flags: u64) -> Result<Vec<u8>, i32> {
    match getname(address) {
        Err(ENOENT) if flags & AT_EMPTY_PATH != 0 => Ok(Vec::new()),
        other => other,
    }
}

/// The program of `execveat(dirfd, path, ..., flags)`, opened as Linux's
/// `alloc_bprm` opens it: flags other than AT_EMPTY_PATH and
/// AT_SYMLINK_NOFOLLOW are EINVAL; an absolute path or AT_FDCWD is
/// `execve`'s lookup; otherwise `dirfd` must be open (EBADF), and a
/// relative path is looked up in its directory (ENOTDIR if it is none),
/// an empty one (AT_EMPTY_PATH) executes the descriptor's own file (an
/// O_PATH one too). Such a program is named `/dev/fd/N` or
/// `/dev/fd/N/PATH`, a name the new program cannot open when the
/// descriptor is close-on-exec.
pub(super) fn open_execat(
    dirfd: u64,
    path: &[u8],
    flags: u64,
) -> Result<crate::fs::exec::ExecStart, i32> {
    use crate::fs::exec::{open_node, ExecStart};
    if flags & !(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH) != 0 {
        return Err(EINVAL);
    }
    let follow = flags & AT_SYMLINK_NOFOLLOW == 0;
    let fd = dirfd as i32;
    if fd == AT_FDCWD || path.first() == Some(&b'/') {
        if path.is_empty() {
            // The cwd itself: a directory.
            return Err(crate::errno::EACCES);
        }
        return ExecStart::open_path(path, follow);
    }
    let fd = u64::from(fd as u32);
    let (image, exe_path) = if path.is_empty() {
        match &file(fd)?.kind {
            FileKind::Vfs(open) => (
                open_node(&open.node)?,
                open.path.as_deref().map(<[u8]>::to_vec),
            ),
            _ => return Err(crate::errno::EACCES),
        }
    } else {
        let access = current_access();
        with_walk(dirfd, path, &access, |walk| {
            let node = walk.lookup_node(path, follow)?;
            Ok((open_node(&node)?, walk.canonical_path(path)))
        })?
    };
    let mut filename = alloc::format!("/dev/fd/{fd}").into_bytes();
    if !path.is_empty() {
        filename.push(b'/');
        filename.extend_from_slice(path);
    }
    let path_inaccessible = sched::current()
        .files()
        .ok_or(EBADF)?
        .lock()
        .close_on_exec(fd)?;
    Ok(ExecStart {
        image,
        filename,
        exe_path,
        comm_from_file: path.is_empty(),
        path_inaccessible,
    })
}

fn now() -> u64 {
    crate::time::uptime_ns() / 1_000_000_000
}

/// `openat(dirfd, path, flags, mode)` (and `open`): the `/proc` id-map
/// files by absolute path as before, anything else in the tree.
pub fn openat(a: Args) -> SysResult {
    let [dirfd, path_address, flags, mode, ..] = a.0;
    let flags = flags as u32;
    let path = getname(path_address)?;
    if path == b"/proc" || path.starts_with(b"/proc/") {
        if let Some(file) = reopen_proc_fd(&path, flags)? {
            return install(file, flags);
        }
        let proc_file = crate::fs::proc::open(&path, u64::from(flags))?;
        if flags & O_DIRECTORY != 0 && !proc_file.is_dir() {
            return Err(ENOTDIR);
        }
        return install(File::new(FileKind::Proc(proc_file)), flags);
    }
    let file = do_open(dirfd, &path, flags, mode as u32)?;
    install(file, flags)
}

/// `open("/proc/PID/fd/N")`: the file descriptor N refers to, opened again
/// (Linux follows the link to the file itself, so this works for an
/// unlinked file too): a file of the tree gets a new open file
/// description with the new flags, after the usual permission checks;
/// a pipe, the console or a pidfd is shared as it is. None for any
/// other `/proc` path.
fn reopen_proc_fd(path: &[u8], flags: u32) -> Result<Option<Arc<File>>, i32> {
    let parts: Vec<&[u8]> = path[b"/proc".len()..]
        .split(|&b| b == b'/')
        .filter(|p| !p.is_empty())
        .collect();
    let [who, b"fd", fd] = parts[..] else {
        return Ok(None);
    };
    let file = crate::fs::proc::fd_file(who, fd)?;
    let FileKind::Vfs(open) = &file.kind else {
        return Ok(Some(file));
    };
    let accmode = flags & O_ACCMODE;
    let wants_write = matches!(accmode, O_WRONLY | 2) || flags & O_TRUNC != 0;
    if matches!(open.node, Node::Dir(_)) && (wants_write || flags & O_CREAT != 0) {
        return Err(EISDIR);
    }
    if flags & O_DIRECTORY != 0 && !matches!(open.node, Node::Dir(_)) {
        return Err(ENOTDIR);
    }
    let mut mask = 0;
    if accmode != O_WRONLY {
        mask |= MAY_READ;
    }
    if wants_write {
        mask |= MAY_WRITE;
    }
    current_access().permission_node(&open.node, mask)?;
    if let Node::Inode(inode) = &open.node {
        match &inode.kind {
            InodeKind::CharDevice(dev @ (DevNum::CONSOLE | DevNum::TTY)) => {
                return open_terminal(*dev, flags).map(Some)
            }
            InodeKind::Regular(_) if flags & O_TRUNC != 0 => truncate_file(inode, 0)?,
            _ => {}
        }
    }
    let reopened = OpenFile::new(open.node.clone(), flags).with_path(open.path.clone());
    Ok(Some(File::with_flags(FileKind::Vfs(reopened), flags)))
}

/// Opens the console, as `/dev/console` or as `/dev/tty`, which is the
/// caller's controlling terminal: ENXIO when its session has none (Linux
/// `tty_open_current_tty`; the console is the only terminal).
fn open_terminal(dev: DevNum, flags: u32) -> Result<Arc<File>, i32> {
    if dev == DevNum::TTY {
        let session = sched::current().thread_group().session();
        if !session.is_some_and(|s| crate::fs::tty::is_controlling(&s)) {
            return Err(ENXIO);
        }
    }
    Ok(File::with_flags(FileKind::Console, flags))
}

fn install(file: Arc<File>, flags: u32) -> SysResult {
    sched::current()
        .files()
        .ok_or(EBADF)?
        .lock()
        .install_flagged(file, flags & O_CLOEXEC != 0)
}

/// Linux `do_filp_open` for the tree (`open_last_lookups`, `do_open`,
/// `may_open`).
fn do_open(dirfd: u64, path: &[u8], mut flags: u32, mode: u32) -> Result<Arc<File>, i32> {
    // Linux build_open_flags: O_PATH keeps only a few flags; O_TMPFILE
    // is not supported by this file system.
    if flags & O_TMPFILE == O_TMPFILE {
        return Err(crate::errno::EOPNOTSUPP);
    }
    if flags & O_PATH != 0 {
        flags &= O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
    }
    let access = current_access();
    let umask = current_fs().lock().umask;
    let mut created = false;
    let node = with_walk(dirfd, path, &access, |walk| {
        if flags & O_CREAT == 0 {
            let node = walk.lookup_node(path, flags & O_NOFOLLOW == 0)?;
            if node.symlink_target().is_some() && flags & O_PATH == 0 {
                return Err(ELOOP);
            }
            return Ok(node);
        }
        let (mut dir, last) = walk.parent(path)?;
        let Last::Norm(name) = last else {
            return Err(EISDIR);
        };
        if path.ends_with(b"/") {
            return Err(EISDIR);
        }
        let mut name = name.to_vec();
        let mut links = 0;
        // A symbolic link at the end is followed (O_NOFOLLOW: ELOOP), and
        // its target's last component, if missing, is created in the
        // directory the link leads to (Linux `open_last_lookups` on the
        // link's body).
        let found = loop {
            match dir.lookup_node(&name) {
                Ok(_) if flags & O_EXCL != 0 => return Err(EEXIST),
                Ok(Node::Dir(_)) => return Err(EISDIR),
                Ok(node) => {
                    let Some(target) = node.symlink_target() else {
                        break Ok(node);
                    };
                    if flags & O_NOFOLLOW != 0 {
                        return Err(ELOOP);
                    }
                    links += 1;
                    if links > MAX_SYMLINKS {
                        return Err(ELOOP);
                    }
                    let target = target.to_vec();
                    let from_link = Walk {
                        root: walk.root,
                        pwd: &dir,
                        access: walk.access,
                    };
                    let (next_dir, last) = from_link.parent(&target)?;
                    let Last::Norm(next_name) = last else {
                        return Err(EISDIR);
                    };
                    if target.ends_with(b"/") {
                        return Err(EISDIR);
                    }
                    name = next_name.to_vec();
                    dir = next_dir;
                }
                Err(e) => break Err(e),
            }
        };
        let name = &name[..];
        match found {
            Ok(node) => Ok(node),
            Err(ENOENT) => {
                let inode = Arc::new(Inode::new(
                    InodeKind::Regular(spin::Mutex::new(FileData::default())),
                    mode & 0o7777 & !umask,
                    access.fsuid,
                    if dir.mode() & crate::fs::permission::S_ISGID != 0 {
                        dir.gid()
                    } else {
                        access.fsgid
                    },
                ));
                inode.meta.lock().mtime = now();
                dir.link_checked(name, &inode, |parent| {
                    access.permission(parent, MAY_WRITE | MAY_EXEC)
                })?;
                created = true;
                Ok(Node::Inode(inode))
            }
            Err(e) => Err(e),
        }
    })?;
    let is_dir = matches!(node, Node::Dir(_));
    if flags & O_DIRECTORY != 0 && !is_dir {
        return Err(ENOTDIR);
    }
    // A directory's dentry knows its path; a file's is recorded now.
    let opened_path = if is_dir {
        None
    } else {
        with_walk(dirfd, path, &access, |walk| Ok(walk.canonical_path(path)))
            .ok()
            .flatten()
            .map(Arc::from)
    };
    if flags & O_PATH != 0 {
        return Ok(File::with_flags(
            FileKind::Vfs(OpenFile::new(node, flags).with_path(opened_path)),
            flags,
        ));
    }
    let accmode = flags & O_ACCMODE;
    let wants_write = matches!(accmode, O_WRONLY | 2) || flags & O_TRUNC != 0;
    if is_dir && (wants_write || flags & O_CREAT != 0) {
        return Err(EISDIR);
    }
    if !created {
        let mut mask = 0;
        if accmode != O_WRONLY {
            mask |= MAY_READ;
        }
        if wants_write {
            mask |= MAY_WRITE;
        }
        access.permission_node(&node, mask)?;
    }
    if let Node::Inode(inode) = &node {
        match &inode.kind {
            InodeKind::CharDevice(dev @ (DevNum::CONSOLE | DevNum::TTY)) => {
                return open_terminal(*dev, flags)
            }
            InodeKind::CharDevice(DevNum::NULL | DevNum::ZERO) => {}
            InodeKind::CharDevice(_) | InodeKind::Special => return Err(ENXIO),
            InodeKind::Regular(_) => {
                // Linux truncates even with O_RDONLY (write permission was
                // checked above).
                if flags & O_TRUNC != 0 && !created {
                    truncate_file(inode, 0)?;
                }
            }
            InodeKind::Symlink(_) => return Err(ELOOP),
        }
    }
    Ok(File::with_flags(
        FileKind::Vfs(OpenFile::new(node, flags).with_path(opened_path)),
        flags,
    ))
}

/// `read` on a file of the tree.
pub fn read(open: &OpenFile, buf: u64, count: u64) -> SysResult {
    // EBADF (not open for reading), EISDIR before anything else.
    open.read_at(0, &mut [])?;
    let mm = current_mm()?;
    let mut bytes = vec![0u8; CHUNK.min(count as usize)];
    let mut done = 0u64;
    while done < count {
        let n = (count - done).min(bytes.len() as u64) as usize;
        let got = open.read(&mut bytes[..n])?;
        if got == 0 {
            break;
        }
        if let Err(e) = mm.copy_to_user(buf + done, &bytes[..got]) {
            // The position moved past bytes the caller never saw; Linux
            // would have stopped at the fault. Put it back.
            *open.pos.lock() -= got as u64;
            return if done > 0 { Ok(done) } else { Err(e) };
        }
        done += got as u64;
        if got < n {
            break;
        }
    }
    Ok(done)
}

/// `write` on a file of the tree.
pub fn write(open: &OpenFile, buf: u64, count: u64) -> SysResult {
    open.write_at(0, &[], false)?;
    let mm = current_mm()?;
    let mut bytes = vec![0u8; CHUNK.min(count as usize)];
    let mut done = 0u64;
    while done < count {
        let n = (count - done).min(bytes.len() as u64) as usize;
        if let Err(e) = mm.copy_from_user(buf + done, &mut bytes[..n]) {
            return if done > 0 { Ok(done) } else { Err(e) };
        }
        match open.write(&bytes[..n]) {
            Ok(written) => {
                done += written as u64;
                if written < n {
                    break;
                }
            }
            Err(e) if done == 0 => return Err(e),
            Err(_) => break,
        }
    }
    touch(open);
    Ok(done)
}

fn touch(open: &OpenFile) {
    if let Node::Inode(inode) = &open.node {
        inode.meta.lock().mtime = now();
    }
}

/// The open file of the tree on `fd`: EBADF if not open, ESPIPE for a
/// pipe or the console (positionless), for `pread64`/`pwrite64`/`lseek`.
fn seekable_file(fd: u64) -> Result<Arc<File>, i32> {
    let file = file(fd)?;
    match &file.kind {
        FileKind::Vfs(open) if open.seekable() => Ok(file),
        FileKind::Vfs(open) if open.flags() & O_PATH != 0 => Err(EBADF),
        FileKind::Pidfd(_) | FileKind::Proc(_) => Err(EINVAL),
        _ => Err(ESPIPE),
    }
}

fn vfs(file: &File) -> &OpenFile {
    match &file.kind {
        FileKind::Vfs(open) => open,
        _ => unreachable!("checked by seekable_file"),
    }
}

/// `pread64(fd, buf, count, offset)`.
pub fn pread64(a: Args) -> SysResult {
    let [fd, buf, count, offset, ..] = a.0;
    let file = file(fd)?;
    if let FileKind::Vfs(open) = &file.kind {
        if !open.readable() {
            return Err(EBADF);
        }
    }
    let file = seekable_file(fd)?;
    if (offset as i64) < 0 {
        return Err(EINVAL);
    }
    let open = vfs(&file);
    let mut bytes = vec![0u8; CHUNK.min(count as usize)];
    let mut done = 0u64;
    while done < count {
        let n = (count - done).min(bytes.len() as u64) as usize;
        let got = open.read_at(offset + done, &mut bytes[..n])?;
        if got == 0 {
            break;
        }
        if let Err(e) = current_mm()?.copy_to_user(buf + done, &bytes[..got]) {
            return if done > 0 { Ok(done) } else { Err(e) };
        }
        done += got as u64;
        if got < n {
            break;
        }
    }
    Ok(done)
}

/// `pwrite64(fd, buf, count, offset)`: at `offset`, except that with
/// O_APPEND Linux appends anyway.
pub fn pwrite64(a: Args) -> SysResult {
    let [fd, buf, count, offset, ..] = a.0;
    let file = file(fd)?;
    if let FileKind::Vfs(open) = &file.kind {
        if !open.writable() {
            return Err(EBADF);
        }
    }
    let file = seekable_file(fd)?;
    if (offset as i64) < 0 {
        return Err(EINVAL);
    }
    let open = vfs(&file);
    let append = open.flags() & O_APPEND != 0;
    let mut bytes = vec![0u8; CHUNK.min(count as usize)];
    let mut done = 0u64;
    while done < count {
        let n = (count - done).min(bytes.len() as u64) as usize;
        if let Err(e) = current_mm()?.copy_from_user(buf + done, &mut bytes[..n]) {
            return if done > 0 { Ok(done) } else { Err(e) };
        }
        match open.write_at(offset + done, &bytes[..n], append) {
            Ok(written) => {
                done += written as u64;
                if written < n {
                    break;
                }
            }
            Err(e) if done == 0 => return Err(e),
            Err(_) => break,
        }
    }
    touch(open);
    Ok(done)
}

const SEEK_SET: u64 = 0;
const SEEK_CUR: u64 = 1;
const SEEK_END: u64 = 2;
const SEEK_DATA: u64 = 3;
const SEEK_HOLE: u64 = 4;

/// `lseek(fd, offset, whence)`: EINVAL for a bad whence or a negative
/// result; SEEK_DATA/SEEK_HOLE treat the whole file as data (as Linux's
/// generic code does), ENXIO at or past the end.
pub fn lseek(a: Args) -> SysResult {
    let [fd, offset, whence, ..] = a.0;
    let file = seekable_file(fd)?;
    let open = vfs(&file);
    let offset = offset as i64;
    let size = match &open.node {
        Node::Inode(inode) => inode.data().map_or(0, |d| d.lock().size()),
        Node::Dir(_) => 0,
    } as i64;
    let mut pos = open.pos.lock();
    let new = match whence {
        SEEK_SET => Some(offset),
        SEEK_CUR => (*pos as i64).checked_add(offset),
        SEEK_END => size.checked_add(offset),
        SEEK_DATA | SEEK_HOLE => {
            if offset < 0 || offset >= size {
                return Err(ENXIO);
            }
            Some(if whence == SEEK_DATA { offset } else { size })
        }
        _ => return Err(EINVAL),
    };
    let new = new.filter(|&p| p >= 0).ok_or(EINVAL)?;
    *pos = new as u64;
    Ok(new as u64)
}

/// What the stat calls report of a file.
struct Attrs {
    ino: u64,
    nlink: u64,
    mode: u32,
    uid: u32,
    gid: u32,
    rdev: DevNum,
    size: u64,
    /// 512-byte blocks (the frames held).
    blocks: u64,
    mtime: u64,
}

/// The one file system's device number (`st_dev`): an anonymous one, as
/// Linux gives ramfs (major 0).
const FS_DEV: DevNum = DevNum {
    major: 0,
    minor: 16,
};
const NO_DEV: DevNum = DevNum { major: 0, minor: 0 };

fn attrs(node: &Node) -> Attrs {
    let (nlink, size, rdev, mtime, blocks) = match node {
        Node::Dir(dir) => (2 + dir.subdirectories() as u64, 0, NO_DEV, 0, 0),
        Node::Inode(inode) => {
            let meta = inode.meta();
            let (size, blocks) = match &inode.kind {
                InodeKind::Regular(data) => {
                    let data = data.lock();
                    (data.size(), data.pages() as u64 * 8)
                }
                InodeKind::Symlink(target) => (target.len() as u64, 0),
                _ => (0, 0),
            };
            let rdev = match &inode.kind {
                InodeKind::CharDevice(number) => *number,
                _ => NO_DEV,
            };
            (u64::from(meta.nlink), size, rdev, meta.mtime, blocks)
        }
    };
    Attrs {
        ino: node.ino(),
        nlink,
        mode: node.mode(),
        uid: node.uid(),
        gid: node.gid(),
        rdev,
        size,
        blocks,
        mtime,
    }
}

/// What the stat calls report for descriptors outside the tree.
fn attrs_other(kind: &FileKind) -> Attrs {
    let (mode, rdev) = match kind {
        FileKind::Console | FileKind::VirtioConsole => (S_IFCHR | 0o620, DevNum::CONSOLE),
        FileKind::PipeRead(_) | FileKind::PipeWrite(_) => (S_IFIFO | 0o600, NO_DEV),
        FileKind::Proc(proc) if proc.is_dir() => (S_IFDIR | 0o500, NO_DEV),
        _ => (0o600, NO_DEV),
    };
    let ino = match kind {
        FileKind::PipeRead(pipe) | FileKind::PipeWrite(pipe) => pipe.ino,
        _ => 0,
    };
    Attrs {
        ino,
        nlink: 1,
        mode,
        uid: 0,
        gid: 0,
        rdev,
        size: 0,
        blocks: 0,
        mtime: 0,
    }
}

/// `struct stat` of x86-64 Linux (144 bytes).
fn stat_bytes(a: &Attrs) -> [u8; 144] {
    let mut st = [0u8; 144];
    let mut put = |at: usize, value: u64, len: usize| {
        st[at..at + len].copy_from_slice(&value.to_le_bytes()[..len]);
    };
    put(0, FS_DEV.encode(), 8);
    put(8, a.ino, 8);
    put(16, a.nlink, 8);
    put(24, u64::from(a.mode), 4);
    put(28, u64::from(a.uid), 4);
    put(32, u64::from(a.gid), 4);
    put(40, a.rdev.encode(), 8);
    put(48, a.size, 8);
    put(56, 4096, 8); // st_blksize
    put(64, a.blocks, 8);
    put(72, a.mtime, 8); // atime
    put(88, a.mtime, 8); // mtime
    put(104, a.mtime, 8); // ctime
    st
}

/// `statx`'s STATX_BASIC_STATS: type, mode, nlink, uid, gid, atime,
/// mtime, ctime, ino, size, blocks.
const STATX_BASIC_STATS: u32 = 0x7ff;

/// `struct statx` (256 bytes); every basic field is filled whatever was
/// asked, as Linux may do.
fn statx_bytes(a: &Attrs) -> [u8; 256] {
    let mut st = [0u8; 256];
    let mut put = |at: usize, value: u64, len: usize| {
        st[at..at + len].copy_from_slice(&value.to_le_bytes()[..len]);
    };
    put(0, u64::from(STATX_BASIC_STATS), 4);
    put(4, 4096, 4); // stx_blksize
    put(16, a.nlink, 4);
    put(20, u64::from(a.uid), 4);
    put(24, u64::from(a.gid), 4);
    put(28, u64::from(a.mode), 2);
    put(32, a.ino, 8);
    put(40, a.size, 8);
    put(48, a.blocks, 8);
    for at in [64, 96, 112] {
        put(at, a.mtime, 8); // atime, ctime, mtime (no birth time)
    }
    put(128, u64::from(a.rdev.major), 4);
    put(132, u64::from(a.rdev.minor), 4);
    put(136, u64::from(FS_DEV.major), 4);
    put(140, u64::from(FS_DEV.minor), 4);
    st
}

fn fd_attrs(fd: u64) -> Result<Attrs, i32> {
    Ok(file_attrs(&*file(fd)?))
}

fn file_attrs(file: &File) -> Attrs {
    match &file.kind {
        FileKind::Vfs(open) => attrs(&open.node),
        other => attrs_other(other),
    }
}

/// The attributes of a `/proc` path (`/proc` is no directory of the tree):
/// `/proc/PID/fd/N` is a link (mode `rwx` by the file's access mode, as
/// Linux's `tid_fd_update_inode` sets it), followed to the file itself;
/// the rest are the directories and files `fs::proc` has.
fn proc_attrs(path: &[u8], follow: bool) -> Result<Attrs, i32> {
    const S_IFLNK: u32 = 0o120000;
    let parts: Vec<&[u8]> = path[b"/proc".len()..]
        .split(|&b| b == b'/')
        .filter(|p| !p.is_empty())
        .collect();
    let (mode, nlink) = match parts[..] {
        [who, b"fd", fd] => {
            let file = crate::fs::proc::fd_file(who, fd)?;
            if follow {
                return Ok(file_attrs(&file));
            }
            let (read, write) = match &file.kind {
                FileKind::Vfs(open) => (open.readable(), open.writable()),
                FileKind::PipeRead(_) => (true, false),
                FileKind::PipeWrite(_) => (false, true),
                _ => (true, true),
            };
            let mut mode = S_IFLNK;
            if read {
                mode |= 0o500;
            }
            if write {
                mode |= 0o300;
            }
            (mode, 1)
        }
        // `/proc/self` links to the caller's pid, `exe` to the program.
        [b"self"] if !follow => (S_IFLNK | 0o777, 1),
        [_, b"exe"] => {
            let target = crate::fs::proc::readlink(path)?;
            if follow {
                return at_attrs(AT_FDCWD as u32 as u64, &target, 0);
            }
            (S_IFLNK | 0o777, 1)
        }
        _ => crate::fs::proc::mode_of(path)?,
    };
    Ok(Attrs {
        ino: 0,
        nlink,
        mode,
        uid: 0,
        gid: 0,
        rdev: NO_DEV,
        size: if mode & S_IFLNK == S_IFLNK { 64 } else { 0 },
        blocks: 0,
        mtime: 0,
    })
}

/// The attributes an `*at` stat call names: `path` from `dirfd`, or with
/// an empty path (AT_EMPTY_PATH) `dirfd` itself.
fn at_attrs(dirfd: u64, path: &[u8], flags: u64) -> Result<Attrs, i32> {
    if path.is_empty() {
        return if dirfd as i32 == AT_FDCWD {
            Ok(attrs(&Node::Dir(current_fs().lock().pwd.clone())))
        } else {
            fd_attrs(u64::from(dirfd as u32))
        };
    }
    if path.starts_with(b"/proc") && matches!(path.get(5), None | Some(b'/')) {
        return proc_attrs(path, flags & AT_SYMLINK_NOFOLLOW == 0);
    }
    let access = current_access();
    let node = with_walk(dirfd, path, &access, |walk| {
        walk.lookup_node(path, flags & AT_SYMLINK_NOFOLLOW == 0)
    })?;
    Ok(attrs(&node))
}

const AT_NO_AUTOMOUNT: u64 = 0x800;
const AT_STATX_SYNC_TYPE: u64 = 0x6000;
const STATX_RESERVED: u64 = 0x8000_0000;

/// `statx(dirfd, path, flags, mask, buf)`: EINVAL for unknown flags, a
/// bad sync type or the reserved mask bit.
pub fn statx(a: Args) -> SysResult {
    let [dirfd, path, flags, mask, buf, ..] = a.0;
    let flags = u64::from(flags as u32);
    if flags & !(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | AT_NO_AUTOMOUNT | AT_STATX_SYNC_TYPE) != 0
        || flags & AT_STATX_SYNC_TYPE == AT_STATX_SYNC_TYPE
        || u64::from(mask as u32) & STATX_RESERVED != 0
    {
        return Err(EINVAL);
    }
    let path = getname_maybe_empty(path, flags)?;
    let attrs = at_attrs(dirfd, &path, flags)?;
    current_mm()?.copy_to_user(buf, &statx_bytes(&attrs))?;
    Ok(0)
}

/// `fstat(fd, statbuf)`.
pub fn fstat(a: Args) -> SysResult {
    let [fd, statbuf, ..] = a.0;
    let st = stat_bytes(&fd_attrs(fd)?);
    current_mm()?.copy_to_user(statbuf, &st)?;
    Ok(0)
}

/// `newfstatat(dirfd, path, statbuf, flags)` (and `stat`, `lstat`).
pub fn newfstatat(a: Args) -> SysResult {
    let [dirfd, path, statbuf, flags, ..] = a.0;
    if flags & !(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | 0x800) != 0 {
        return Err(EINVAL);
    }
    let path = getname_maybe_empty(path, flags)?;
    let st = stat_bytes(&at_attrs(dirfd, &path, flags)?);
    current_mm()?.copy_to_user(statbuf, &st)?;
    Ok(0)
}

/// `getdents64(fd, dirp, count)`: `.`, `..`, then the entries in name
/// order; the position counts entries. EINVAL if not even one fits.
pub fn getdents64(a: Args) -> SysResult {
    let [fd, dirp, count, ..] = a.0;
    let file = file(fd)?;
    if let FileKind::Proc(proc) = &file.kind {
        if !proc.is_dir() {
            return Err(ENOTDIR);
        }
        let mut all: Vec<crate::fs::proc::DirEntry> =
            vec![((*b".").into(), 1, S_IFDIR), ((*b"..").into(), 1, S_IFDIR)];
        all.extend(proc.dir_entries());
        let mut pos = proc.pos().lock();
        let (out, index) = fill_dirents(&all, *pos, count)?;
        current_mm()?.copy_to_user(dirp, &out)?;
        *pos = index;
        return Ok(out.len() as u64);
    }
    let FileKind::Vfs(open) = &file.kind else {
        return Err(ENOTDIR);
    };
    if open.flags() & O_PATH != 0 {
        return Err(EBADF);
    }
    let Node::Dir(dir) = &open.node else {
        return Err(ENOTDIR);
    };
    let mut pos = open.pos.lock();
    if dir.is_dead() {
        return Ok(0);
    }
    let parent_ino = dir.parent().map_or(dir.ino, |p| p.ino);
    let mut all: Vec<(alloc::boxed::Box<[u8]>, u64, u32)> = vec![
        ((*b".").into(), dir.ino, S_IFDIR),
        ((*b"..").into(), parent_ino, S_IFDIR),
    ];
    all.extend(dir.entries());
    let (out, index) = fill_dirents(&all, *pos as usize, count)?;
    current_mm()?.copy_to_user(dirp, &out)?;
    *pos = index as u64;
    Ok(out.len() as u64)
}

/// The `linux_dirent64` records of `all[from..]` that fit in `count`
/// bytes, and the index after the last one; EINVAL if not even one fits.
fn fill_dirents(
    all: &[(alloc::boxed::Box<[u8]>, u64, u32)],
    from: usize,
    count: u64,
) -> Result<(Vec<u8>, usize), i32> {
    let mut out = Vec::new();
    let mut index = from;
    while let Some((name, ino, kind)) = all.get(index) {
        let reclen = (19 + name.len() + 1).next_multiple_of(8);
        if out.len() + reclen > count as usize {
            break;
        }
        let start = out.len();
        out.resize(start + reclen, 0);
        out[start..start + 8].copy_from_slice(&ino.to_le_bytes());
        out[start + 8..start + 16].copy_from_slice(&(index as u64 + 1).to_le_bytes());
        out[start + 16..start + 18].copy_from_slice(&(reclen as u16).to_le_bytes());
        out[start + 18] = (kind >> 12) as u8; // DT_* is S_IFMT >> 12
        out[start + 19..start + 19 + name.len()].copy_from_slice(name);
        index += 1;
    }
    if out.is_empty() && index < all.len() {
        return Err(EINVAL);
    }
    Ok((out, index))
}

/// `unlinkat` without AT_REMOVEDIR (and `unlink`): a non-directory; `/`,
/// `.`, `..` are EISDIR; a trailing slash on a non-directory ENOTDIR.
pub fn do_unlink(dirfd: u64, path: &[u8]) -> SysResult {
    let access = current_access();
    with_walk(dirfd, path, &access, |walk| {
        let (dir, last) = walk.parent(path)?;
        let Last::Norm(name) = last else {
            return Err(EISDIR);
        };
        if path.ends_with(b"/") {
            // Linux: a trailing slash makes the name a directory's.
            return match dir.lookup_node(name)? {
                Node::Dir(_) => Err(EISDIR),
                Node::Inode(_) => Err(ENOTDIR),
            };
        }
        dir.unlink_checked(name, |parent, victim| may_delete(&access, parent, victim))?;
        Ok(0)
    })
}

/// `unlink(path)`.
pub fn unlink(a: Args) -> SysResult {
    let path = getname(a.0[0])?;
    do_unlink(u64::from(AT_FDCWD as u32), &path)
}

/// `readlinkat(dirfd, path, buf, size)` (and `readlink`): EINVAL for a
/// size <= 0 or a path that is no symbolic link; the target, truncated
/// to `size`, without a NUL.
pub fn readlinkat(a: Args) -> SysResult {
    let [dirfd, path, buf, size, ..] = a.0;
    let path = getname_maybe_empty(path, AT_EMPTY_PATH)?;
    if size as i32 <= 0 {
        return Err(EINVAL);
    }
    if path.starts_with(b"/proc/") {
        let target = crate::fs::proc::readlink(&path)?;
        let n = target.len().min(size as i32 as usize);
        current_mm()?.copy_to_user(buf, &target[..n])?;
        return Ok(n as u64);
    }
    let node = if path.is_empty() {
        match &file(u64::from(dirfd as u32))?.kind {
            FileKind::Vfs(open) => open.node.clone(),
            _ => return Err(EINVAL),
        }
    } else {
        let access = current_access();
        with_walk(dirfd, &path, &access, |walk| walk.lookup_node(&path, false))?
    };
    let target = node.symlink_target().ok_or(EINVAL)?;
    let n = target.len().min(size as i32 as usize);
    current_mm()?.copy_to_user(buf, &target[..n])?;
    Ok(n as u64)
}

/// `symlinkat(target, newdirfd, linkpath)` (and `symlink`).
pub fn symlinkat(a: Args) -> SysResult {
    let [target, dirfd, path, ..] = a.0;
    let target = getname(target)?;
    let path = getname(path)?;
    let access = current_access();
    with_walk(dirfd, &path, &access, |walk| {
        let (dir, last) = walk.parent(&path)?;
        let Last::Norm(name) = last else {
            return Err(EEXIST);
        };
        if path.ends_with(b"/") {
            // Linux: ENOENT for a new name with a trailing slash, EEXIST
            // if it exists.
            return match dir.lookup_node(name) {
                Ok(_) => Err(EEXIST),
                Err(ENOENT) => Err(ENOENT),
                Err(e) => Err(e),
            };
        }
        let inode = Arc::new(Inode::new(
            InodeKind::Symlink(target.as_slice().into()),
            0o777,
            access.fsuid,
            access.fsgid,
        ));
        inode.meta.lock().mtime = now();
        dir.link_checked(name, &inode, |parent| {
            access.permission(parent, MAY_WRITE | MAY_EXEC)
        })?;
        Ok(0)
    })
}

/// `linkat(olddirfd, oldpath, newdirfd, newpath, flags)` (and `link`):
/// a new name for a non-directory (EPERM for a directory); the old path's
/// final symbolic link is followed only with AT_SYMLINK_FOLLOW.
pub fn linkat(a: Args) -> SysResult {
    let [old_dirfd, old_path, new_dirfd, new_path, flags, ..] = a.0;
    if flags & !(AT_SYMLINK_FOLLOW | AT_EMPTY_PATH) != 0 {
        return Err(EINVAL);
    }
    let old_path = getname_maybe_empty(old_path, flags)?;
    let new_path = getname(new_path)?;
    let access = current_access();
    let node = if old_path.is_empty() {
        match &file(u64::from(old_dirfd as u32))?.kind {
            FileKind::Vfs(open) => open.node.clone(),
            _ => return Err(ENOENT),
        }
    } else {
        with_walk(old_dirfd, &old_path, &access, |walk| {
            walk.lookup_node(&old_path, flags & AT_SYMLINK_FOLLOW != 0)
        })?
    };
    with_walk(new_dirfd, &new_path, &access, |walk| {
        let (dir, last) = walk.parent(&new_path)?;
        let Last::Norm(name) = last else {
            return Err(EEXIST);
        };
        let Node::Inode(inode) = &node else {
            // Linux checks the new name first (EEXIST), then EPERM.
            return match dir.lookup_node(name) {
                Ok(_) => Err(EEXIST),
                Err(_) => Err(EPERM),
            };
        };
        if new_path.ends_with(b"/") {
            return Err(ENOENT);
        }
        dir.link_checked(name, inode, |parent| {
            access.permission(parent, MAY_WRITE | MAY_EXEC)
        })?;
        Ok(0)
    })
}

const RENAME_NOREPLACE: u64 = 1;
const RENAME_EXCHANGE: u64 = 2;
const RENAME_WHITEOUT: u64 = 4;

/// `renameat2(olddirfd, oldpath, newdirfd, newpath, flags)` (and
/// `rename`, `renameat`): a non-directory replaces a non-directory (EISDIR
/// over a directory), a directory an empty directory (ENOTEMPTY, ENOTDIR
/// over a file, EINVAL into itself); RENAME_NOREPLACE: EEXIST. Not built:
/// RENAME_EXCHANGE and RENAME_WHITEOUT (EINVAL).
pub fn renameat2(a: Args) -> SysResult {
    let [old_dirfd, old_path, new_dirfd, new_path, flags, ..] = a.0;
    if flags & !(RENAME_NOREPLACE | RENAME_EXCHANGE | RENAME_WHITEOUT) != 0
        || flags & RENAME_NOREPLACE != 0 && flags & RENAME_EXCHANGE != 0
    {
        return Err(EINVAL);
    }
    if flags & (RENAME_EXCHANGE | RENAME_WHITEOUT) != 0 {
        return Err(EINVAL);
    }
    let old_path = getname(old_path)?;
    let new_path = getname(new_path)?;
    let access = current_access();
    let (old_dir, old_name) = with_walk(old_dirfd, &old_path, &access, |walk| {
        let (dir, last) = walk.parent(&old_path)?;
        match last {
            Last::Norm(name) => Ok((dir, name.to_vec())),
            _ => Err(crate::errno::EBUSY),
        }
    })?;
    let (new_dir, new_name) = with_walk(new_dirfd, &new_path, &access, |walk| {
        let (dir, last) = walk.parent(&new_path)?;
        match last {
            Last::Norm(name) => Ok((dir, name.to_vec())),
            _ => Err(crate::errno::EBUSY),
        }
    })?;
    let source = old_dir.lookup_node(&old_name)?;
    let target = new_dir.lookup_node(&new_name);
    if flags & RENAME_NOREPLACE != 0 && target.is_ok() {
        return Err(EEXIST);
    }
    if let Ok(target) = &target {
        if target.ino() == source.ino() {
            return Ok(0); // the same file: nothing to do
        }
    }
    may_delete(&access, &old_dir, &source)?;
    match &target {
        Ok(target) => may_delete(&access, &new_dir, target)?,
        Err(ENOENT) => access.permission(&new_dir, MAY_WRITE | MAY_EXEC)?,
        Err(e) => return Err(*e),
    }
    let Node::Inode(inode) = source else {
        // A directory moving to another parent needs write permission on
        // itself too (its `..` changes), as in Linux's `vfs_rename`.
        if let Node::Dir(dir) = &source {
            if !Arc::ptr_eq(&old_dir, &new_dir) {
                access.permission(dir, MAY_WRITE)?;
            }
        }
        old_dir.rename_dir(&old_name, &new_dir, &new_name, |_| Ok(()))?;
        return Ok(0);
    };
    if let Ok(Node::Dir(_)) = target {
        return Err(EISDIR);
    }
    if (old_path.ends_with(b"/") || new_path.ends_with(b"/")) && inode.file_type() != S_IFDIR {
        return Err(ENOTDIR);
    }
    let replaced = new_dir.replace_entry(&new_name, &inode)?;
    old_dir.unlink_checked(&old_name, |_, _| Ok(()))?;
    drop(replaced);
    Ok(0)
}

fn truncate_node(node: &Node, length: u64) -> SysResult {
    if (length as i64) < 0 {
        return Err(EINVAL);
    }
    match node {
        Node::Dir(_) => Err(EISDIR),
        Node::Inode(inode) => {
            truncate_file(inode, length)?;
            inode.meta.lock().mtime = now();
            Ok(0)
        }
    }
}

/// `ftruncate(fd, length)`: EINVAL unless a regular file open for writing.
pub fn ftruncate(a: Args) -> SysResult {
    let [fd, length, ..] = a.0;
    if (length as i64) < 0 {
        return Err(EINVAL);
    }
    let file = file(fd)?;
    match &file.kind {
        FileKind::Vfs(open) if open.flags() & O_PATH != 0 => Err(EBADF),
        FileKind::Vfs(open) if open.writable() => match &open.node {
            Node::Inode(inode) if inode.data().is_some() => truncate_node(&open.node, length),
            _ => Err(EINVAL),
        },
        _ => Err(EINVAL),
    }
}

/// `truncate(path, length)`: write permission on the file.
pub fn truncate(a: Args) -> SysResult {
    let [path, length, ..] = a.0;
    let path = getname(path)?;
    if (length as i64) < 0 {
        return Err(EINVAL);
    }
    let access = current_access();
    let node = with_walk(u64::from(AT_FDCWD as u32), &path, &access, |walk| {
        walk.lookup_node(&path, true)
    })?;
    if let Node::Dir(_) = node {
        return Err(EISDIR);
    }
    access.permission_node(&node, MAY_WRITE)?;
    truncate_node(&node, length)
}

/// `faccessat2(dirfd, path, mode, flags)` (and `access`, `faccessat`):
/// with the real ids unless AT_EACCESS.
pub fn faccessat2(a: Args) -> SysResult {
    let [dirfd, path, mode, flags, ..] = a.0;
    if mode & !7 != 0 || flags & !(AT_EACCESS | AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH) != 0 {
        return Err(EINVAL);
    }
    let path = getname_maybe_empty(path, flags)?;
    let access = if flags & AT_EACCESS != 0 {
        current_access()
    } else {
        crate::fs::current::current_real_access()
    };
    let node = if path.is_empty() {
        match &file(u64::from(dirfd as u32))?.kind {
            FileKind::Vfs(open) => open.node.clone(),
            _ => return Ok(0),
        }
    } else {
        with_walk(dirfd, &path, &access, |walk| {
            walk.lookup_node(&path, flags & AT_SYMLINK_NOFOLLOW == 0)
        })?
    };
    // F_OK (0): existence is enough. The bits: R 4, W 2, X 1.
    let mask = (mode as u32 & 4) | (mode as u32 & 2) | (mode as u32 & 1);
    if mask != 0 {
        access.permission_node(&node, mask)?;
    }
    Ok(0)
}

/// `fchdir(fd)`: to a directory descriptor (ENOTDIR otherwise), search
/// permission needed.
pub fn fchdir(a: Args) -> SysResult {
    let file = file(a.0[0])?;
    let FileKind::Vfs(OpenFile {
        node: Node::Dir(dir),
        ..
    }) = &file.kind
    else {
        return Err(ENOTDIR);
    };
    current_access().permission(dir, MAY_EXEC)?;
    current_fs().lock().pwd = dir.clone();
    Ok(0)
}

/// `fcntl(F_GETFL)`: the status flags as opened (access mode, O_APPEND,
/// O_NONBLOCK, O_PATH...); for the other kinds of file the access mode
/// their ends have.
pub fn status_flags(file: &File) -> u32 {
    match &file.kind {
        FileKind::Vfs(open) => open.flags(),
        FileKind::PipeRead(_) => O_RDONLY | file.status(),
        FileKind::PipeWrite(_) => O_WRONLY | file.status(),
        _ => 2 | file.status(), // O_RDWR
    }
}

/// Linux `chmod_common`: the owner or CAP_FOWNER (EPERM otherwise);
/// S_ISGID is dropped unless the caller is in the file's group or has
/// CAP_FSETID.
fn chmod_node(access: &Access, node: &Node, mode: u64) -> SysResult {
    if !access.owner_or_capable(node) {
        return Err(EPERM);
    }
    let mut mode = mode as u32 & 0o7777;
    if !access.may_keep_setgid(node) {
        mode &= !crate::fs::permission::S_ISGID;
    }
    node.set_mode(mode);
    Ok(0)
}

/// `fchmodat(dirfd, path, mode)` (and `chmod`): follows symbolic links.
pub fn fchmodat(a: Args) -> SysResult {
    let [dirfd, path, mode, ..] = a.0;
    let path = getname(path)?;
    let access = current_access();
    let node = with_walk(dirfd, &path, &access, |walk| walk.lookup_node(&path, true))?;
    chmod_node(&access, &node, mode)
}

/// `fchmod(fd, mode)`: EBADF for an O_PATH descriptor.
pub fn fchmod(a: Args) -> SysResult {
    let [fd, mode, ..] = a.0;
    let file = file(fd)?;
    match &file.kind {
        FileKind::Vfs(open) if open.flags() & O_PATH == 0 => {
            chmod_node(&current_access(), &open.node, mode)
        }
        FileKind::Vfs(_) => Err(EBADF),
        // Pipes and consoles have no inode here to change.
        _ => Err(EPERM),
    }
}

/// Linux `chown_common` and `setattr_prepare`'s ownership checks: the ids
/// are mapped first (EINVAL), then the new owner needs `chown_ok` and
/// the new group `chgrp_ok` (EPERM); a non-directory loses S_ISUID (and
/// S_ISGID as [`Access::chown_kill_bits`] says) even when the ids stay,
/// and as that changes the mode, only its owner or CAP_FOWNER may do it
/// (EPERM; `setattr_prepare`'s ATTR_MODE check). The ramfs keeps no
/// ctime to touch.
fn chown_node(access: &Access, node: &Node, user: u64, group: u64) -> SysResult {
    let (uid, gid) = crate::fs::current::chown_ids(user as u32, group as u32)?;
    if uid.is_some_and(|uid| !access.may_chown(node, uid))
        || gid.is_some_and(|gid| !access.may_chgrp(node, gid))
    {
        return Err(EPERM);
    }
    let kill_bits = access.chown_kill_bits(node) & node.mode();
    if kill_bits != 0 && !access.owner_or_capable(node) {
        return Err(EPERM);
    }
    node.set_owner(uid, gid, kill_bits);
    Ok(0)
}

/// `fchownat(dirfd, path, user, group, flags)` (and `chown`, `lchown`):
/// AT_SYMLINK_NOFOLLOW changes a symbolic link itself, AT_EMPTY_PATH
/// `dirfd`'s file (an O_PATH descriptor too); other flags are EINVAL.
pub fn fchownat(a: Args) -> SysResult {
    let [dirfd, path, user, group, flags, ..] = a.0;
    if flags & !(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH) != 0 {
        return Err(EINVAL);
    }
    let path = getname_maybe_empty(path, flags)?;
    let access = current_access();
    let node = if path.is_empty() {
        if dirfd as i32 == AT_FDCWD {
            Node::Dir(current_fs().lock().pwd.clone())
        } else {
            match &file(u64::from(dirfd as u32))?.kind {
                FileKind::Vfs(open) => open.node.clone(),
                // Pipes and consoles have no inode here to change.
                _ => return Err(EPERM),
            }
        }
    } else {
        with_walk(dirfd, &path, &access, |walk| {
            walk.lookup_node(&path, flags & AT_SYMLINK_NOFOLLOW == 0)
        })?
    };
    chown_node(&access, &node, user, group)
}

/// `fchown(fd, user, group)`: EBADF for an O_PATH descriptor.
pub fn fchown(a: Args) -> SysResult {
    let [fd, user, group, ..] = a.0;
    let file = file(fd)?;
    match &file.kind {
        FileKind::Vfs(open) if open.flags() & O_PATH == 0 => {
            chown_node(&current_access(), &open.node, user, group)
        }
        FileKind::Vfs(_) => Err(EBADF),
        // Pipes and consoles have no inode here to change.
        _ => Err(EPERM),
    }
}

const UTIME_NOW: i64 = (1 << 30) - 1;
const UTIME_OMIT: i64 = (1 << 30) - 2;

/// `utimensat(dirfd, path, times, flags)`: sets the modification time
/// (the access time is not kept apart). A null `path` means `dirfd`
/// itself (`futimens`). Times of "now" need ownership or write
/// permission (EACCES), explicit times ownership (EPERM).
pub fn utimensat(a: Args) -> SysResult {
    let [dirfd, path, times, flags, ..] = a.0;
    if flags & !(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH) != 0 {
        return Err(EINVAL);
    }
    let mut stamps = [(0i64, UTIME_NOW); 2];
    if times != 0 {
        let mut raw = [0u8; 32];
        current_mm()?.copy_from_user(times, &mut raw)?;
        for (i, stamp) in stamps.iter_mut().enumerate() {
            let field =
                |at: usize| i64::from_le_bytes(raw[at..at + 8].try_into().unwrap_or([0; 8]));
            *stamp = (field(i * 16), field(i * 16 + 8));
            let nsec = stamp.1;
            if nsec != UTIME_NOW && nsec != UTIME_OMIT && !(0..1_000_000_000).contains(&nsec) {
                return Err(EINVAL);
            }
        }
    }
    let access = current_access();
    let node = if path == 0 {
        match &file(u64::from(dirfd as u32))?.kind {
            FileKind::Vfs(open) => open.node.clone(),
            _ => return Err(EINVAL),
        }
    } else {
        let path = getname_maybe_empty(path, flags)?;
        if path.is_empty() {
            match &file(u64::from(dirfd as u32))?.kind {
                FileKind::Vfs(open) => open.node.clone(),
                _ => return Err(EINVAL),
            }
        } else {
            with_walk(dirfd, &path, &access, |walk| {
                walk.lookup_node(&path, flags & AT_SYMLINK_NOFOLLOW == 0)
            })?
        }
    };
    if stamps.iter().all(|s| s.1 == UTIME_OMIT) {
        return Ok(0);
    }
    let only_now = stamps.iter().all(|s| s.1 == UTIME_NOW || s.1 == UTIME_OMIT);
    if !access.owner_or_capable(&node) {
        if !only_now {
            return Err(EPERM);
        }
        access.permission_node(&node, MAY_WRITE)?;
    }
    let (sec, nsec) = stamps[1];
    let mtime = match nsec {
        UTIME_OMIT => return Ok(0),
        UTIME_NOW => now(),
        _ => sec.max(0) as u64,
    };
    if let Node::Inode(inode) = &node {
        inode.meta.lock().mtime = mtime;
    }
    Ok(0)
}

/// Most iovecs per call (Linux `UIO_MAXIOV`).
const UIO_MAXIOV: u64 = 1024;

/// `readv`/`writev(fd, iov, iovcnt)`: one `read`/`write` per buffer,
/// stopping at the first short one; an error after some bytes moved
/// returns the bytes. EINVAL for more than 1024 buffers or a total past
/// `isize::MAX`.
pub fn readv_writev(a: Args, write: bool) -> SysResult {
    let [fd, iov, count, ..] = a.0;
    if count > UIO_MAXIOV {
        return Err(EINVAL);
    }
    let mut raw = vec![0u8; count as usize * 16];
    current_mm()?.copy_from_user(iov, &mut raw)?;
    let buffers: Vec<(u64, u64)> = raw
        .chunks(16)
        .map(|c| {
            let word = |at: usize| u64::from_le_bytes(c[at..at + 8].try_into().unwrap_or([0; 8]));
            (word(0), word(8))
        })
        .collect();
    let mut total: u64 = 0;
    for &(_, len) in &buffers {
        total = total
            .checked_add(len)
            .filter(|&t| t <= isize::MAX as u64)
            .ok_or(EINVAL)?;
    }
    // The descriptor's errors (EBADF) come first even for no buffers.
    file(fd)?;
    let mut done = 0;
    for (base, len) in buffers {
        if len == 0 {
            continue;
        }
        let args = Args([fd, base, len, 0, 0, 0]);
        let result = if write {
            super::io::write(args)
        } else {
            super::io::read(args)
        };
        match result {
            Ok(n) => {
                done += n;
                if n < len {
                    break;
                }
            }
            Err(e) if done == 0 => return Err(e),
            Err(_) => break,
        }
    }
    Ok(done)
}

/// `fsync(fd)`/`fdatasync(fd)`: nothing to write back in a RAM file
/// system (Linux `noop_fsync`): 0 for files and directories, EBADF for
/// O_PATH, EINVAL for what has no fsync (pipes, the console, devices).
pub fn fsync(a: Args) -> SysResult {
    let file = file(a.0[0])?;
    match &file.kind {
        FileKind::Vfs(open) if open.flags() & O_PATH != 0 => Err(EBADF),
        FileKind::Vfs(OpenFile {
            node: Node::Dir(_), ..
        }) => Ok(0),
        FileKind::Vfs(OpenFile {
            node: Node::Inode(inode),
            ..
        }) if inode.data().is_some() => Ok(0),
        _ => Err(EINVAL),
    }
}

/// Longest extended attribute name (Linux `XATTR_NAME_MAX`).
const XATTR_NAME_MAX: usize = 255;

/// Looks up what an xattr call names: a path (following a final symbolic
/// link unless `lgetxattr`/`llistxattr`) or, `by_fd`, an open file.
/// Returns whether it is a file of the tree (pipes and the console are
/// files of no file system with xattr support: EOPNOTSUPP).
fn xattr_lookup(target: u64, follow: bool, by_fd: bool) -> Result<bool, i32> {
    if by_fd {
        return match &file(target)?.kind {
            FileKind::Vfs(open) if open.flags() & O_PATH != 0 => Err(EBADF),
            FileKind::Vfs(_) => Ok(true),
            _ => Ok(false),
        };
    }
    let path = getname(target)?;
    let access = current_access();
    with_walk(u64::from(AT_FDCWD as u32), &path, &access, |walk| {
        walk.lookup_node(&path, follow)
    })?;
    Ok(true)
}

/// `getxattr`/`lgetxattr`/`fgetxattr(target, name, value, size)`: the RAM
/// file system stores no extended attributes, so a well-formed name is
/// ENODATA, as on a Linux tmpfs without them (ls asks for ACLs and
/// security labels this way); an empty or over-long name is ERANGE, a name
/// outside the known namespaces EOPNOTSUPP. The file is looked up first.
pub fn getxattr(a: Args, follow: bool, by_fd: bool) -> SysResult {
    let [target, name, ..] = a.0;
    let in_tree = xattr_lookup(target, follow, by_fd)?;
    let name = super::process::read_c_string(name).map_err(|e| match e {
        crate::errno::E2BIG => crate::errno::ERANGE,
        other => other,
    })?;
    if name.is_empty() || name.len() > XATTR_NAME_MAX {
        return Err(crate::errno::ERANGE);
    }
    let known = [&b"security."[..], b"system.", b"trusted.", b"user."];
    if !in_tree || !known.iter().any(|prefix| name.starts_with(prefix)) {
        return Err(crate::errno::EOPNOTSUPP);
    }
    Err(crate::errno::ENODATA)
}

/// `listxattr`/`llistxattr`/`flistxattr(target, list, size)`: no names,
/// length 0 (after the lookup).
pub fn listxattr(a: Args, follow: bool, by_fd: bool) -> SysResult {
    xattr_lookup(a.0[0], follow, by_fd)?;
    Ok(0)
}
