//! Regular files, links and devices: open flags, reads and writes,
//! positions and holes, O_APPEND from two processes, unlink and rename of
//! open files, hard and symbolic links, truncation, directory listings.
//!
//! Every scenario works in its own directory, `/tmp/proctest-files-PID`,
//! and removes everything it made (the [`Scratch`] guard), so the host
//! stays clean. Only what Linux guarantees on any file system is checked
//! (no block counts, no listing order).

use forkvm_user::signal::{sig, sigaction, SigInfo};
use forkvm_abi::linux::fcntl::{
    AT_EMPTY_PATH, AT_FDCWD, AT_SYMLINK_FOLLOW, AT_SYMLINK_NOFOLLOW, F_GETFD, O_APPEND, O_CLOEXEC, O_CREAT, O_DIRECTORY,
    O_EXCL, O_NOFOLLOW, O_PATH, O_RDONLY, O_RDWR, O_TRUNC, O_WRONLY,
};
use forkvm_user::syscall::{
    fcntl, mmap, open, syscall1, MAP_ANONYMOUS, MAP_FIXED, MAP_NORESERVE, MAP_PRIVATE, MAP_SHARED,
};

use super::*;

pub const SCENARIOS: &[(&str, Scenario)] = &[
    ("files-create-read-write", create_read_write),
    ("files-sparse-lseek", sparse_lseek),
    ("files-append-two-processes", append_two_processes),
    ("files-unlink-open", unlink_open),
    ("files-rename-over-open", rename_over_open),
    ("files-links", links),
    ("files-open-errors", open_errors),
    ("files-truncate", truncate),
    ("files-getdents", getdents),
    ("files-dev-null-zero", dev_null_zero),
    ("files-chmod-utimes-iov", chmod_utimes_iov),
    ("files-statx", statx),
    ("files-rename-directories", rename_directories),
    ("files-at-dirfd", at_dirfd),
    ("files-permissions", permissions),
    ("files-chown-root", chown_root),
    ("files-chown-unprivileged", chown_unprivileged),
    ("files-mmap-shared", mmap_shared),
    ("files-mmap-private", mmap_private),
    ("files-mmap-errors", mmap_errors),
    ("files-mmap-lazy-sparse", mmap_lazy_sparse),
    ("files-mmap-past-eof-sigbus", mmap_past_eof_sigbus),
    ("files-truncate-unmaps", truncate_unmaps),
    ("files-exec-interpreter", exec_interpreter),
    ("files-proc-stat-status-meminfo", proc_files),
    ("files-proc-fd", proc_fd),
    ("files-proc-cpuinfo-sysctl", proc_cpuinfo_sysctl),
    ("files-proc-dirs", proc_dirs),
    ("files-proc-sys-dirs", proc_sys_dirs),
    ("files-creat-through-symlink", creat_through_symlink),
    ("files-times", file_times),
    ("files-utimensat-permissions", utimensat_permissions),
    ("files-faccessat2-eaccess", faccessat2_eaccess),
];

const SEEK_SET: usize = 0;
const SEEK_CUR: usize = 1;
const SEEK_END: usize = 2;
const RENAME_NOREPLACE: usize = 1;
const S_IFMT: u32 = 0o170000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const S_IFCHR: u32 = 0o020000;

/// A NUL-terminated path of up to 255 bytes.
struct Path {
    len: usize,
    buf: [u8; 256],
}

impl Path {
    fn new(args: fmt::Arguments) -> Path {
        let mut path = Path {
            len: 0,
            buf: [0; 256],
        };
        let _ = path.write_fmt(args);
        path
    }

    fn ptr(&self) -> usize {
        self.buf.as_ptr() as usize
    }

    fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    fn c_str(&self) -> &CStr {
        CStr::from_bytes_until_nul(&self.buf).expect("a NUL-terminated path")
    }
}

impl Write for Path {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let n = s.len().min(self.buf.len() - 1 - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

fn ret(r: isize) -> Result<usize, Errno> {
    if r < 0 {
        Err(Errno(-r as i32))
    } else {
        Ok(r as usize)
    }
}

fn unlink(path: &Path) -> Result<usize, Errno> {
    // SAFETY: as above.
    ret(unsafe { syscall3(nr::UNLINKAT, AT_FDCWD as usize, path.ptr(), 0) })
}

fn lseek(fd: &Fd, offset: i64, whence: usize) -> Result<usize, Errno> {
    // SAFETY: no memory is passed.
    ret(unsafe { syscall3(nr::LSEEK, fd.raw() as usize, offset as usize, whence) })
}

fn pread(fd: &Fd, buf: &mut [u8], offset: usize) -> Result<usize, Errno> {
    // SAFETY: the kernel writes at most buf.len() bytes into buf.
    ret(unsafe {
        syscall4(
            nr::PREAD64,
            fd.raw() as usize,
            buf.as_mut_ptr() as usize,
            buf.len(),
            offset,
        )
    })
}

fn pwrite(fd: &Fd, buf: &[u8], offset: usize) -> Result<usize, Errno> {
    // SAFETY: the kernel reads buf.
    ret(unsafe {
        syscall4(
            nr::PWRITE64,
            fd.raw() as usize,
            buf.as_ptr() as usize,
            buf.len(),
            offset,
        )
    })
}

fn ftruncate(fd: &Fd, len: i64) -> Result<usize, Errno> {
    // SAFETY: no memory is passed.
    ret(unsafe { syscall2(nr::FTRUNCATE, fd.raw() as usize, len as usize) })
}

/// The parts of `struct stat` checked here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stat {
    ino: u64,
    nlink: u64,
    mode: u32,
    size: u64,
    rdev: u64,
    mtime: u64,
    uid: u32,
    gid: u32,
}

fn parse_stat(raw: &[u8; 144]) -> Stat {
    let u64_at = |at: usize| u64::from_le_bytes(raw[at..at + 8].try_into().unwrap_or([0; 8]));
    Stat {
        ino: u64_at(8),
        nlink: u64_at(16),
        mode: u64_at(24) as u32,
        size: u64_at(48),
        rdev: u64_at(40),
        mtime: u64_at(88),
        uid: u64_at(28) as u32,
        gid: u64_at(32) as u32,
    }
}

fn fstat(fd: &Fd) -> Result<Stat, Errno> {
    let mut raw = [0u8; 144];
    // SAFETY: the kernel writes one struct stat (144 bytes) into raw.
    ret(unsafe { syscall2(nr::FSTAT, fd.raw() as usize, raw.as_mut_ptr() as usize) })?;
    Ok(parse_stat(&raw))
}

fn stat_at(path: &Path, flags: u32) -> Result<Stat, Errno> {
    let mut raw = [0u8; 144];
    // SAFETY: as for fstat; the path is NUL-terminated.
    ret(unsafe {
        syscall4(
            nr::NEWFSTATAT,
            AT_FDCWD as usize,
            path.ptr(),
            raw.as_mut_ptr() as usize,
            flags as usize,
        )
    })?;
    Ok(parse_stat(&raw))
}

fn umask(mask: usize) -> usize {
    // SAFETY: no memory is passed.
    unsafe { syscall1(nr::UMASK, mask) as usize }
}

/// This scenario's directory; it and the names in `files` are removed
/// when dropped (errors ignored: a check may have removed them already).
struct Scratch {
    dir: Path,
    files: [&'static str; 8],
}

impl Scratch {
    fn new(what: &str, files: [&'static str; 8]) -> Result<Scratch, Msg> {
        let dir = Path::new(format_args!("/tmp/proctest-files-{}-{what}", getpid()));
        // SAFETY: the path is NUL-terminated.
        ret(unsafe { syscall2(nr::MKDIR, dir.ptr(), 0o755) }).ctx("mkdir scratch")?;
        Ok(Scratch { dir, files })
    }

    fn path(&self, name: &str) -> Path {
        Path::new(format_args!("{}/{name}", Bytes(self.dir.bytes())))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        for name in self.files.iter().filter(|n| !n.is_empty()) {
            let path = self.path(name);
            if unlink(&path) == Err(Errno::EISDIR) {
                // SAFETY: NUL-terminated path.
                unsafe { syscall1(nr::RMDIR, path.ptr()) };
            }
        }
        // SAFETY: NUL-terminated path.
        unsafe { syscall1(nr::RMDIR, self.dir.ptr()) };
    }
}

fn expect_err<T>(what: &str, got: Result<T, Errno>, want: Errno) -> Outcome {
    match got {
        Err(e) if e == want => Ok(()),
        Err(e) => Err(msg!("{what}: expected {want}, got {e}")),
        Ok(_) => Err(msg!("{what}: expected {want}, it succeeded")),
    }
}

fn create_read_write(_: &Ctx) -> Outcome {
    let s = Scratch::new("rw", ["f", "", "", "", "", "", "", ""])?;
    let f = s.path("f");
    let old = umask(0o022);
    let fd = open(f.c_str(), O_CREAT | O_EXCL | O_RDWR, 0o666).map(Fd);
    umask(old);
    let fd = fd.ctx("open O_CREAT|O_EXCL")?;
    let st = fstat(&fd).ctx("fstat")?;
    ensure!(
        st.mode == S_IFREG | 0o644,
        "mode {:o}, want 100644 (0666 less umask 022)",
        st.mode
    );
    ensure!(st.size == 0 && st.nlink == 1, "new file: {st:?}");
    ensure!(write(fd.raw(), b"hello, world") == Ok(12), "write");
    ensure!(fstat(&fd).ctx("fstat")?.size == 12, "size after write");
    let mut buf = [0u8; 32];
    ensure!(read(fd.raw(), &mut buf) == Ok(0), "read at the end is 0");
    ensure!(lseek(&fd, 0, SEEK_SET) == Ok(0), "lseek 0");
    ensure!(
        read(fd.raw(), &mut buf[..5]) == Ok(5) && &buf[..5] == b"hello",
        "read back"
    );
    ensure!(lseek(&fd, 0, SEEK_CUR) == Ok(5), "position after read");
    ensure!(pwrite(&fd, b"W", 7) == Ok(1), "pwrite");
    ensure!(
        lseek(&fd, 0, SEEK_CUR) == Ok(5),
        "pwrite leaves the position"
    );
    ensure!(
        pread(&fd, &mut buf, 0) == Ok(12) && &buf[..12] == b"hello, World",
        "pread: {}",
        Bytes(&buf[..12])
    );
    expect_err(
        "O_EXCL on an existing file",
        open(f.c_str(), O_CREAT | O_EXCL | O_RDWR, 0o644).map(Fd),
        Errno::EEXIST,
    )?;
    // O_CREAT without O_EXCL opens it; O_TRUNC empties it.
    let again = open(f.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0o600).map(Fd).ctx("O_CREAT|O_TRUNC")?;
    ensure!(
        fstat(&again).ctx("fstat")?.mode == S_IFREG | 0o644,
        "an existing file keeps its mode"
    );
    ensure!(fstat(&fd).ctx("fstat")?.size == 0, "O_TRUNC truncated");
    expect_err(
        "read on O_WRONLY",
        read(again.raw(), &mut buf),
        Errno::EBADF,
    )?;
    ensure!(write(again.raw(), b"xyz") == Ok(3), "write");
    // SAFETY (the fsync calls): no memory is passed.
    ensure!(
        ret(unsafe { syscall1(nr::FSYNC, again.raw() as usize) }) == Ok(0),
        "fsync"
    );
    ensure!(
        ret(unsafe { syscall1(nr::FDATASYNC, again.raw() as usize) }) == Ok(0),
        "fdatasync"
    );
    let (r, _w) = pipe()?;
    expect_err(
        "fsync of a pipe",
        ret(unsafe { syscall1(nr::FSYNC, r.raw() as usize) }),
        Errno::EINVAL,
    )?;
    expect_err(
        "fsync of a closed fd",
        ret(unsafe { syscall1(nr::FSYNC, 999) }),
        Errno::EBADF,
    )?;
    // O_TRUNC truncates even a read-only open, as Linux does.
    drop(open(f.c_str(), O_RDONLY | O_TRUNC, 0).map(Fd).ctx("O_RDONLY|O_TRUNC")?);
    ensure!(
        fstat(&fd).ctx("fstat")?.size == 0,
        "O_RDONLY|O_TRUNC truncated"
    );
    let ro = open(f.c_str(), O_RDONLY | O_CLOEXEC, 0).map(Fd).ctx("open O_RDONLY")?;
    expect_err("write on O_RDONLY", write(ro.raw(), b"x"), Errno::EBADF)?;
    unlink(&f).ctx("unlink")?;
    expect_err("open after unlink", open(f.c_str(), O_RDONLY, 0).map(Fd), Errno::ENOENT)?;
    expect_err("unlink twice", unlink(&f), Errno::ENOENT)?;
    Ok(())
}

fn sparse_lseek(_: &Ctx) -> Outcome {
    let s = Scratch::new("sparse", ["f", "", "", "", "", "", "", ""])?;
    let fd = open(s.path("f").c_str(), O_CREAT | O_RDWR, 0o600).map(Fd).ctx("open")?;
    ensure!(
        lseek(&fd, 10_000, SEEK_SET) == Ok(10_000),
        "lseek past the end"
    );
    ensure!(
        fstat(&fd).ctx("fstat")?.size == 0,
        "seeking does not grow the file"
    );
    ensure!(write(fd.raw(), b"end") == Ok(3), "write after the hole");
    ensure!(fstat(&fd).ctx("fstat")?.size == 10_003, "size");
    let mut buf = [9u8; 10_003];
    ensure!(pread(&fd, &mut buf, 0) == Ok(10_003), "pread all");
    ensure!(
        buf[..10_000].iter().all(|&b| b == 0),
        "the hole reads as zeros"
    );
    ensure!(&buf[10_000..] == b"end", "data after the hole");
    ensure!(lseek(&fd, -3, SEEK_END) == Ok(10_000), "SEEK_END -3");
    ensure!(lseek(&fd, 2, SEEK_CUR) == Ok(10_002), "SEEK_CUR");
    expect_err("negative position", lseek(&fd, -1, SEEK_SET), Errno::EINVAL)?;
    expect_err(
        "before the start",
        lseek(&fd, -20_000, SEEK_END),
        Errno::EINVAL,
    )?;
    expect_err("bad whence", lseek(&fd, 0, 99), Errno::EINVAL)?;
    ensure!(
        lseek(&fd, 0, SEEK_CUR) == Ok(10_002),
        "failed seeks do not move"
    );
    expect_err(
        "pread at a negative offset",
        pread(&fd, &mut buf[..1], usize::MAX),
        Errno::EINVAL,
    )?;
    let (r, w) = pipe()?;
    let _ = w;
    expect_err("lseek on a pipe", lseek(&r, 0, SEEK_CUR), Errno::ESPIPE)?;
    expect_err(
        "pread on a pipe",
        pread(&r, &mut buf[..1], 0),
        Errno::ESPIPE,
    )?;
    expect_err(
        "lseek on a closed fd",
        lseek(&Fd(999), 0, SEEK_SET),
        Errno::EBADF,
    )?;
    Ok(())
}

fn append_two_processes(_: &Ctx) -> Outcome {
    const ROUNDS: usize = 200;
    let s = Scratch::new("append", ["log", "", "", "", "", "", "", ""])?;
    let log = s.path("log");
    let log = &log;
    let writer = |byte: u8| {
        move || -> i32 {
            let Ok(fd) = open(log.c_str(), O_WRONLY | O_APPEND, 0).map(Fd) else {
                return 1;
            };
            for _ in 0..ROUNDS {
                if write(fd.raw(), &[byte; 8]) != Ok(8) {
                    return 2;
                }
            }
            0
        }
    };
    drop(open(log.c_str(), O_CREAT | O_WRONLY, 0o600).map(Fd).ctx("create")?);
    let a = Child::spawn(writer(b'a'))?;
    let b = Child::spawn(writer(b'b'))?;
    expect_exit("writer a", a.wait()?, 0)?;
    expect_exit("writer b", b.wait()?, 0)?;
    let fd = open(log.c_str(), O_RDONLY, 0).map(Fd).ctx("open")?;
    let mut all = [0u8; 2 * ROUNDS * 8 + 1];
    let n = read_full(fd.raw(), &mut all)?;
    ensure!(
        n == 2 * ROUNDS * 8,
        "{n} bytes, want {}: appends overwrote each other",
        2 * ROUNDS * 8
    );
    for (i, record) in all[..n].chunks(8).enumerate() {
        ensure!(
            record == [record[0]; 8],
            "record {i} is mixed: {}",
            Bytes(record)
        );
    }
    // O_APPEND puts pwrite at the end too (Linux's documented bug).
    let fd = open(log.c_str(), O_WRONLY | O_APPEND, 0).map(Fd).ctx("open O_APPEND")?;
    ensure!(pwrite(&fd, b"zz", 0) == Ok(2), "pwrite");
    ensure!(
        fstat(&fd).ctx("fstat")?.size == (n + 2) as u64,
        "pwrite with O_APPEND appends"
    );
    Ok(())
}

fn unlink_open(_: &Ctx) -> Outcome {
    let s = Scratch::new("unlink", ["f", "", "", "", "", "", "", ""])?;
    let f = s.path("f");
    let fd = open(f.c_str(), O_CREAT | O_RDWR, 0o600).map(Fd).ctx("open")?;
    ensure!(write(fd.raw(), &[7u8; 6000]) == Ok(6000), "write");
    unlink(&f).ctx("unlink")?;
    expect_err("stat after unlink", stat_at(&f, 0), Errno::ENOENT)?;
    let st = fstat(&fd).ctx("fstat")?;
    ensure!(
        st.nlink == 0 && st.size == 6000,
        "an unlinked open file: {st:?}"
    );
    let mut buf = [0u8; 6000];
    ensure!(
        pread(&fd, &mut buf, 0) == Ok(6000) && buf.iter().all(|&b| b == 7),
        "still readable"
    );
    ensure!(pwrite(&fd, b"x", 6000) == Ok(1), "still writable");
    // The name is free again, for a different file.
    let other = open(f.c_str(), O_CREAT | O_EXCL | O_RDWR, 0o600).map(Fd).ctx("create the name again")?;
    ensure!(fstat(&other).ctx("fstat")?.ino != st.ino, "a new inode");
    Ok(())
}

fn rename_over_open(_: &Ctx) -> Outcome {
    let s = Scratch::new("rename", ["a", "b", "c", "", "", "", "", ""])?;
    let (a, b, c) = (s.path("a"), s.path("b"), s.path("c"));
    let fa = open(a.c_str(), O_CREAT | O_RDWR, 0o600).map(Fd).ctx("create a")?;
    write(fa.raw(), b"AAAA").ctx("write a")?;
    let fb = open(b.c_str(), O_CREAT | O_RDWR, 0o600).map(Fd).ctx("create b")?;
    write(fb.raw(), b"BB").ctx("write b")?;
    // SAFETY: NUL-terminated paths.
    let rename2 = |from: &Path, to: &Path, flags: usize| {
        ret(unsafe {
            syscall5(
                nr::RENAMEAT2,
                AT_FDCWD as usize,
                from.ptr(),
                AT_FDCWD as usize,
                to.ptr(),
                flags,
            )
        })
    };
    expect_err(
        "RENAME_NOREPLACE over b",
        rename2(&a, &b, RENAME_NOREPLACE),
        Errno::EEXIST,
    )?;
    rename2(&a, &b, 0).ctx("rename a over b")?;
    expect_err("a is gone", stat_at(&a, 0), Errno::ENOENT)?;
    let mut buf = [0u8; 8];
    ensure!(
        pread(&fb, &mut buf, 0) == Ok(2) && &buf[..2] == b"BB",
        "the replaced file stays open and intact"
    );
    ensure!(
        fstat(&fb).ctx("fstat")?.nlink == 0,
        "the replaced file has no name"
    );
    let nb = open(b.c_str(), O_RDONLY, 0).map(Fd).ctx("open b")?;
    ensure!(
        read(nb.raw(), &mut buf) == Ok(4) && &buf[..4] == b"AAAA",
        "b is a's file now"
    );
    ensure!(
        fstat(&nb).ctx("fstat")?.ino == fstat(&fa).ctx("fstat")?.ino,
        "same inode"
    );
    rename2(&b, &c, RENAME_NOREPLACE).ctx("rename to a new name")?;
    expect_err(
        "rename of a missing file",
        rename2(&a, &c, 0),
        Errno::ENOENT,
    )?;
    Ok(())
}

fn links(_: &Ctx) -> Outcome {
    let s = Scratch::new(
        "links",
        ["f", "hard", "sym", "loop", "dangling", "d", "", ""],
    )?;
    let (f, hard, sym) = (s.path("f"), s.path("hard"), s.path("sym"));
    let fd = open(f.c_str(), O_CREAT | O_RDWR, 0o640).map(Fd).ctx("create")?;
    write(fd.raw(), b"data").ctx("write")?;
    // SAFETY (each call below): NUL-terminated paths, a buffer of its length.
    ret(unsafe { syscall2(nr::LINK, f.ptr(), hard.ptr()) }).ctx("link")?;
    ensure!(fstat(&fd).ctx("fstat")?.nlink == 2, "two names");
    ensure!(
        stat_at(&hard, 0).ctx("stat hard")?.ino == fstat(&fd).ctx("fstat")?.ino,
        "one inode"
    );
    expect_err(
        "link to an existing name",
        ret(unsafe { syscall2(nr::LINK, f.ptr(), hard.ptr()) }),
        Errno::EEXIST,
    )?;
    let target = Path::new(format_args!("f"));
    ret(unsafe { syscall2(nr::SYMLINK, target.ptr(), sym.ptr()) }).ctx("symlink")?;
    let lst = stat_at(&sym, AT_SYMLINK_NOFOLLOW).ctx("lstat")?;
    ensure!(
        lst.mode & S_IFMT == S_IFLNK && lst.size == 1,
        "lstat of a symlink: {lst:?}"
    );
    ensure!(
        stat_at(&sym, 0).ctx("stat sym")?.size == 4,
        "stat follows the link"
    );
    let mut buf = [0u8; 16];
    let n = ret(unsafe {
        syscall3(
            nr::READLINK,
            sym.ptr(),
            buf.as_mut_ptr() as usize,
            buf.len(),
        )
    })
    .ctx("readlink")?;
    ensure!(&buf[..n] == b"f", "readlink: {}", Bytes(&buf[..n]));
    expect_err(
        "readlink of a file",
        ret(unsafe { syscall3(nr::READLINK, f.ptr(), buf.as_mut_ptr() as usize, 16) }),
        Errno::EINVAL,
    )?;
    let via = open(sym.c_str(), O_RDONLY, 0).map(Fd).ctx("open through the link")?;
    ensure!(read(via.raw(), &mut buf) == Ok(4), "read through the link");
    expect_err(
        "O_NOFOLLOW on a link",
        open(sym.c_str(), O_RDONLY | O_NOFOLLOW, 0).map(Fd),
        Errno::ELOOP,
    )?;
    let lp = s.path("loop");
    ret(unsafe { syscall2(nr::SYMLINK, Path::new(format_args!("loop")).ptr(), lp.ptr()) })
        .ctx("symlink loop")?;
    expect_err("a link to itself", open(lp.c_str(), O_RDONLY, 0).map(Fd), Errno::ELOOP)?;
    let dangling = s.path("dangling");
    ret(unsafe {
        syscall2(
            nr::SYMLINK,
            Path::new(format_args!("nowhere")).ptr(),
            dangling.ptr(),
        )
    })
    .ctx("symlink")?;
    expect_err("a dangling link", stat_at(&dangling, 0), Errno::ENOENT)?;
    let d = s.path("d");
    ret(unsafe { syscall2(nr::MKDIR, d.ptr(), 0o755) }).ctx("mkdir")?;
    let d2 = s.path("d2");
    expect_err(
        "hard link to a directory",
        ret(unsafe { syscall2(nr::LINK, d.ptr(), d2.ptr()) }),
        Errno::EPERM,
    )?;
    unlink(&f).ctx("unlink f")?;
    ensure!(fstat(&fd).ctx("fstat")?.nlink == 1, "one name left");
    expect_err("the symlink now dangles", stat_at(&sym, 0), Errno::ENOENT)?;
    Ok(())
}

fn open_errors(_: &Ctx) -> Outcome {
    let s = Scratch::new("errors", ["f", "d", "", "", "", "", "", ""])?;
    let (f, d) = (s.path("f"), s.path("d"));
    drop(open(f.c_str(), O_CREAT | O_WRONLY, 0o600).map(Fd).ctx("create")?);
    // SAFETY: NUL-terminated path.
    ret(unsafe { syscall2(nr::MKDIR, d.ptr(), 0o755) }).ctx("mkdir")?;
    expect_err(
        "O_DIRECTORY on a file",
        open(f.c_str(), O_RDONLY | O_DIRECTORY, 0).map(Fd),
        Errno::ENOTDIR,
    )?;
    expect_err(
        "a directory for writing",
        open(d.c_str(), O_WRONLY, 0).map(Fd),
        Errno::EISDIR,
    )?;
    expect_err(
        "O_CREAT of a directory",
        open(d.c_str(), O_CREAT | O_RDONLY, 0o600).map(Fd),
        Errno::EISDIR,
    )?;
    expect_err(
        "a file with a slash",
        open(s.path("f/").c_str(), O_RDONLY, 0).map(Fd),
        Errno::ENOTDIR,
    )?;
    expect_err(
        "O_CREAT with a slash",
        open(s.path("new/").c_str(), O_CREAT | O_RDWR, 0o600).map(Fd),
        Errno::EISDIR,
    )?;
    expect_err(
        "through a file",
        open(s.path("f/x").c_str(), O_RDONLY, 0).map(Fd),
        Errno::ENOTDIR,
    )?;
    expect_err("missing", open(s.path("nope").c_str(), O_RDONLY, 0).map(Fd), Errno::ENOENT)?;
    expect_err(
        "missing parent",
        open(s.path("nope/x").c_str(), O_CREAT | O_RDWR, 0o600).map(Fd),
        Errno::ENOENT,
    )?;
    let dir = open(d.c_str(), O_RDONLY | O_DIRECTORY, 0).map(Fd).ctx("open a directory")?;
    let mut buf = [0u8; 4];
    expect_err(
        "read of a directory",
        read(dir.raw(), &mut buf),
        Errno::EISDIR,
    )?;
    let st = fstat(&dir).ctx("fstat dir")?;
    ensure!(st.mode == 0o40755, "directory mode {:o}", st.mode);
    expect_err("unlink of a directory", unlink(&d), Errno::EISDIR)?;
    // SAFETY: NUL-terminated path.
    expect_err(
        "rmdir of a file",
        ret(unsafe { syscall1(nr::RMDIR, f.ptr()) }),
        Errno::ENOTDIR,
    )?;
    expect_err("unlink with a slash", unlink(&s.path("f/")), Errno::ENOTDIR)?;
    Ok(())
}

fn truncate(_: &Ctx) -> Outcome {
    let s = Scratch::new("truncate", ["f", "", "", "", "", "", "", ""])?;
    let f = s.path("f");
    let fd = open(f.c_str(), O_CREAT | O_RDWR, 0o600).map(Fd).ctx("open")?;
    write(fd.raw(), &[1u8; 5000]).ctx("write")?;
    ftruncate(&fd, 100).ctx("shrink")?;
    ensure!(fstat(&fd).ctx("fstat")?.size == 100, "shrunk");
    ftruncate(&fd, 8192).ctx("grow")?;
    let mut buf = [9u8; 200];
    ensure!(pread(&fd, &mut buf, 0) == Ok(200), "pread");
    ensure!(
        buf[..100].iter().all(|&b| b == 1) && buf[100..].iter().all(|&b| b == 0),
        "grown with zeros"
    );
    expect_err("negative length", ftruncate(&fd, -1), Errno::EINVAL)?;
    let ro = open(f.c_str(), O_RDONLY, 0).map(Fd).ctx("open O_RDONLY")?;
    expect_err("ftruncate read-only", ftruncate(&ro, 0), Errno::EINVAL)?;
    // SAFETY: NUL-terminated path.
    ret(unsafe { syscall2(nr::TRUNCATE, f.ptr(), 3) }).ctx("truncate")?;
    ensure!(fstat(&fd).ctx("fstat")?.size == 3, "truncate by path");
    Ok(())
}

fn getdents(_: &Ctx) -> Outcome {
    let s = Scratch::new("dents", ["one", "two", "sub", "", "", "", "", ""])?;
    drop(open(s.path("one").c_str(), O_CREAT | O_WRONLY, 0o600).map(Fd).ctx("one")?);
    drop(open(s.path("two").c_str(), O_CREAT | O_WRONLY, 0o600).map(Fd).ctx("two")?);
    // SAFETY: NUL-terminated path.
    ret(unsafe { syscall2(nr::MKDIR, s.path("sub").ptr(), 0o755) }).ctx("mkdir")?;
    let dir = open(s.dir.c_str(), O_RDONLY | O_DIRECTORY, 0).map(Fd).ctx("open dir")?;
    let mut buf = [0u8; 4096];
    let mut seen = [false; 5];
    loop {
        // SAFETY: the kernel writes at most buf.len() bytes.
        let n = ret(unsafe {
            syscall3(
                nr::GETDENTS64,
                dir.raw() as usize,
                buf.as_mut_ptr() as usize,
                buf.len(),
            )
        })
        .ctx("getdents64")?;
        if n == 0 {
            break;
        }
        let mut at = 0;
        while at < n {
            let reclen = u16::from_le_bytes([buf[at + 16], buf[at + 17]]) as usize;
            let kind = buf[at + 18];
            let name = c_field(&buf[at + 19..at + reclen]);
            let index = match name {
                b"." => 0,
                b".." => 1,
                b"one" => 2,
                b"two" => 3,
                b"sub" => 4,
                other => return Err(msg!("unexpected entry {}", Bytes(other))),
            };
            let want_kind = if index == 2 || index == 3 { 8 } else { 4 };
            ensure!(kind == want_kind, "d_type of {}: {kind}", Bytes(name));
            ensure!(!seen[index], "{} twice", Bytes(name));
            seen[index] = true;
            ensure!(reclen.is_multiple_of(8), "reclen {reclen} not 8-aligned");
            at += reclen;
        }
    }
    ensure!(seen.iter().all(|&s| s), "entries seen: {seen:?}");
    ensure!(lseek(&dir, 0, SEEK_SET) == Ok(0), "rewind the directory");
    expect_err(
        "a buffer too small",
        ret(unsafe {
            syscall3(
                nr::GETDENTS64,
                dir.raw() as usize,
                buf.as_mut_ptr() as usize,
                8,
            )
        }),
        Errno::EINVAL,
    )?;
    let file = open(s.path("one").c_str(), O_RDONLY, 0).map(Fd).ctx("open file")?;
    expect_err(
        "getdents64 of a file",
        ret(unsafe {
            syscall3(
                nr::GETDENTS64,
                file.raw() as usize,
                buf.as_mut_ptr() as usize,
                buf.len(),
            )
        }),
        Errno::ENOTDIR,
    )?;
    Ok(())
}

fn dev_null_zero(_: &Ctx) -> Outcome {
    let null = open(Path::new(format_args!("/dev/null")).c_str(), O_RDWR, 0).map(Fd).ctx("open /dev/null")?;
    let mut buf = [7u8; 100];
    ensure!(
        read(null.raw(), &mut buf) == Ok(0),
        "/dev/null reads nothing"
    );
    ensure!(
        write(null.raw(), &buf) == Ok(100),
        "/dev/null takes everything"
    );
    let st = fstat(&null).ctx("fstat")?;
    ensure!(
        st.mode & S_IFMT == S_IFCHR && st.rdev == (1 << 8 | 3),
        "/dev/null is char 1,3: {st:?}"
    );
    let zero = open(Path::new(format_args!("/dev/zero")).c_str(), O_RDONLY, 0).map(Fd).ctx("open /dev/zero")?;
    ensure!(
        read(zero.raw(), &mut buf) == Ok(100) && buf.iter().all(|&b| b == 0),
        "/dev/zero reads zeros"
    );
    ensure!(
        stat_at(&Path::new(format_args!("/dev/zero")), 0)
            .ctx("stat")?
            .rdev
            == (1 << 8 | 5),
        "/dev/zero is 1,5"
    );
    Ok(())
}

fn chmod_utimes_iov(_: &Ctx) -> Outcome {
    let s = Scratch::new("chmod", ["f", "", "", "", "", "", "", ""])?;
    let f = s.path("f");
    let fd = open(f.c_str(), O_CREAT | O_RDWR, 0o600).map(Fd).ctx("create")?;
    // SAFETY (each call below): NUL-terminated paths, buffers of their length.
    ret(unsafe { syscall2(nr::CHMOD, f.ptr(), 0o751) }).ctx("chmod")?;
    ensure!(
        fstat(&fd).ctx("fstat")?.mode == S_IFREG | 0o751,
        "chmod shows in fstat"
    );
    ret(unsafe { syscall2(nr::FCHMOD, fd.raw() as usize, 0o4640) }).ctx("fchmod")?;
    ensure!(
        stat_at(&f, 0).ctx("stat")?.mode == S_IFREG | 0o4640,
        "fchmod with set-user-id"
    );
    expect_err(
        "chmod of a missing file",
        ret(unsafe { syscall2(nr::CHMOD, s.path("nope").ptr(), 0o600) }),
        Errno::ENOENT,
    )?;
    // utimensat with explicit times; the access time left alone.
    let times: [i64; 4] = [0, (1 << 30) - 2, 1_000_000_000, 0];
    ret(unsafe { syscall4(nr::UTIMENSAT, AT_FDCWD as usize, f.ptr(), times.as_ptr() as usize, 0) })
        .ctx("utimensat")?;
    ensure!(fstat(&fd).ctx("fstat")?.mtime == 1_000_000_000, "mtime set");
    let bad: [i64; 4] = [0, 1_000_000_000, 0, 0];
    expect_err(
        "a bad nanosecond count",
        ret(unsafe { syscall4(nr::UTIMENSAT, AT_FDCWD as usize, f.ptr(), bad.as_ptr() as usize, 0) }),
        Errno::EINVAL,
    )?;
    expect_err(
        "utimensat of a missing file",
        ret(unsafe { syscall4(nr::UTIMENSAT, AT_FDCWD as usize, s.path("nope").ptr(), 0, 0) }),
        Errno::ENOENT,
    )?;
    // writev then readv, across buffers.
    let (a, b) = (*b"abc", *b"defgh");
    let out: [usize; 4] = [a.as_ptr() as usize, 3, b.as_ptr() as usize, 5];
    ensure!(
        ret(unsafe { syscall3(nr::WRITEV, fd.raw() as usize, out.as_ptr() as usize, 2) }) == Ok(8),
        "writev"
    );
    lseek(&fd, 0, SEEK_SET).ctx("rewind")?;
    let (mut x, mut y) = ([0u8; 2], [0u8; 10]);
    let into: [usize; 4] = [x.as_mut_ptr() as usize, 2, y.as_mut_ptr() as usize, 10];
    ensure!(
        ret(unsafe { syscall3(nr::READV, fd.raw() as usize, into.as_ptr() as usize, 2) }) == Ok(8),
        "readv"
    );
    ensure!(&x == b"ab" && &y[..6] == b"cdefgh", "readv contents");
    expect_err(
        "too many buffers",
        ret(unsafe { syscall3(nr::WRITEV, fd.raw() as usize, out.as_ptr() as usize, 1025) }),
        Errno::EINVAL,
    )?;
    Ok(())
}

/// The fields of `struct statx` compared with `struct stat`.
fn statx_at(path: &Path, flags: u32, mask: usize) -> Result<(u32, Stat), Errno> {
    let mut raw = [0u8; 256];
    // SAFETY: the kernel writes one struct statx (256 bytes) into raw.
    ret(unsafe {
        syscall5(
            nr::STATX,
            AT_FDCWD as usize,
            path.ptr(),
            flags as usize,
            mask,
            raw.as_mut_ptr() as usize,
        )
    })?;
    let u32_at = |at: usize| u32::from_le_bytes(raw[at..at + 4].try_into().unwrap_or([0; 4]));
    let u64_at = |at: usize| u64::from_le_bytes(raw[at..at + 8].try_into().unwrap_or([0; 8]));
    let rdev = (u64::from(u32_at(128)) << 8) | u64::from(u32_at(132));
    let stat = Stat {
        ino: u64_at(32),
        nlink: u64::from(u32_at(16)),
        mode: u32::from(u16::from_le_bytes([raw[28], raw[29]])),
        size: u64_at(40),
        rdev,
        mtime: u64_at(112),
        uid: u32_at(20),
        gid: u32_at(24),
    };
    Ok((u32_at(0), stat))
}

fn statx(_: &Ctx) -> Outcome {
    const STATX_BASIC_STATS: usize = 0x7ff;
    let s = Scratch::new("statx", ["f", "l", "", "", "", "", "", ""])?;
    let (f, l) = (s.path("f"), s.path("l"));
    let fd = open(f.c_str(), O_CREAT | O_RDWR, 0o640).map(Fd).ctx("create")?;
    write(fd.raw(), &[5u8; 5000]).ctx("write")?;
    // SAFETY: NUL-terminated paths.
    ret(unsafe { syscall2(nr::SYMLINK, Path::new(format_args!("f")).ptr(), l.ptr()) })
        .ctx("symlink")?;
    let (mask, x) = statx_at(&f, 0, STATX_BASIC_STATS).ctx("statx")?;
    ensure!(
        mask as usize & STATX_BASIC_STATS == STATX_BASIC_STATS,
        "stx_mask {mask:#x}"
    );
    let st = fstat(&fd).ctx("fstat")?;
    ensure!(
        (x.ino, x.nlink, x.mode, x.size, x.mtime) == (st.ino, st.nlink, st.mode, st.size, st.mtime),
        "statx {x:?} vs stat {st:?}"
    );
    let (_, link) = statx_at(&l, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS).ctx("statx nofollow")?;
    ensure!(
        link.mode & S_IFMT == S_IFLNK && link.size == 1,
        "the link itself: {link:?}"
    );
    ensure!(
        statx_at(&l, 0, STATX_BASIC_STATS)
            .ctx("statx follow")?
            .1
            .ino
            == st.ino,
        "followed"
    );
    let (_, null) = statx_at(&Path::new(format_args!("/dev/null")), 0, STATX_BASIC_STATS)
        .ctx("statx /dev/null")?;
    ensure!(null.rdev == (1 << 8 | 3), "rdev of /dev/null: {null:?}");
    expect_err(
        "the reserved mask bit",
        statx_at(&f, 0, 0x8000_0000),
        Errno::EINVAL,
    )?;
    expect_err(
        "a bad flag",
        statx_at(&f, 0x1, STATX_BASIC_STATS),
        Errno::EINVAL,
    )?;
    expect_err(
        "a missing file",
        statx_at(&s.path("nope"), 0, STATX_BASIC_STATS),
        Errno::ENOENT,
    )?;
    Ok(())
}

fn rename_directories(_: &Ctx) -> Outcome {
    let s = Scratch::new(
        "mvdir",
        ["d/b/f", "d/b", "d", "a/b/f", "a/b", "a", "full/x", "full"],
    )?;
    let (a, ab, d) = (s.path("a"), s.path("a/b"), s.path("d"));
    // SAFETY (each call below): NUL-terminated paths, buffers of their length.
    let mkdir = |p: &Path| ret(unsafe { syscall2(nr::MKDIR, p.ptr(), 0o755) });
    let rename = |from: &Path, to: &Path| {
        ret(unsafe { syscall5(nr::RENAMEAT2, AT_FDCWD as usize, from.ptr(), AT_FDCWD as usize, to.ptr(), 0) })
    };
    mkdir(&a).ctx("mkdir a")?;
    mkdir(&ab).ctx("mkdir a/b")?;
    drop(open(s.path("a/b/f").c_str(), O_CREAT | O_WRONLY, 0o600).map(Fd).ctx("create a/b/f")?);
    let ino = stat_at(&ab, 0).ctx("stat a/b")?.ino;
    // The working directory moves with its directory.
    let mut saved = [0u8; 512];
    let saved_len = ret(unsafe { syscall2(nr::GETCWD, saved.as_mut_ptr() as usize, saved.len()) })
        .ctx("getcwd")?;
    ret(unsafe { syscall1(nr::CHDIR, ab.ptr()) }).ctx("chdir a/b")?;
    let moved = rename(&a, &d);
    let mut cwd = [0u8; 512];
    let cwd_len = ret(unsafe { syscall2(nr::GETCWD, cwd.as_mut_ptr() as usize, cwd.len()) });
    unsafe { syscall1(nr::CHDIR, saved.as_ptr() as usize) };
    let _ = saved_len;
    moved.ctx("rename a d")?;
    let want = Path::new(format_args!("{}/d/b", Bytes(s.dir.bytes())));
    let cwd_len = cwd_len.ctx("getcwd after the move")?;
    ensure!(
        &cwd[..cwd_len - 1] == want.bytes(),
        "cwd {} after the move",
        Bytes(&cwd[..cwd_len - 1])
    );
    expect_err("the old name", stat_at(&a, 0), Errno::ENOENT)?;
    ensure!(
        stat_at(&s.path("d/b"), 0).ctx("stat d/b")?.ino == ino,
        "same directory"
    );
    ensure!(
        stat_at(&s.path("d/b/f"), 0).is_ok(),
        "its contents came along"
    );
    expect_err("into itself", rename(&d, &s.path("d/b/x")), Errno::EINVAL)?;
    let full = s.path("full");
    mkdir(&full).ctx("mkdir full")?;
    mkdir(&s.path("full/x")).ctx("mkdir full/x")?;
    expect_err(
        "over a non-empty directory",
        rename(&d, &full),
        Errno::ENOTEMPTY,
    )?;
    expect_err(
        "over a file",
        rename(&s.path("d/b"), &s.path("d/b/f")),
        Errno::EINVAL,
    )?;
    expect_err(
        "a directory over a file",
        rename(&s.path("full/x"), &s.path("d/b/f")),
        Errno::ENOTDIR,
    )?;
    expect_err(
        "a file over a directory",
        rename(&s.path("d/b/f"), &s.path("full/x")),
        Errno::EISDIR,
    )?;
    // Over an empty directory: replaced.
    rename(&s.path("full/x"), &s.path("d/b/e")).ctx("move full/x")?;
    rename(&d, &full).ctx("over an empty directory")?;
    ensure!(
        stat_at(&s.path("full/b/f"), 0).is_ok(),
        "moved over the empty one"
    );
    // Clean up what the guard does not know by name.
    unsafe { syscall1(nr::RMDIR, s.path("full/b/e").ptr()) };
    unlink(&s.path("full/b/f")).ctx("unlink")?;
    unsafe { syscall1(nr::RMDIR, s.path("full/b").ptr()) };
    Ok(())
}

/// The `*at` calls relative to a directory descriptor, and `fchdir`.
fn at_dirfd(_: &Ctx) -> Outcome {
    let s = Scratch::new("at", ["sub/f", "sub/l", "sub", "", "", "", "", ""])?;
    let dir = open(s.dir.c_str(), O_RDONLY | O_DIRECTORY, 0).map(Fd).ctx("open dir")?;
    let dfd = dir.raw() as usize;
    let name = |text: &str| Path::new(format_args!("{text}"));
    // SAFETY (each call below): NUL-terminated paths, buffers of their length.
    ret(unsafe { syscall3(nr::MKDIRAT, dfd, name("sub").ptr(), 0o755) }).ctx("mkdirat")?;
    let f = ret(unsafe {
        syscall4(
            nr::OPENAT,
            dfd,
            name("sub/f").ptr(),
            (O_CREAT | O_WRONLY) as usize,
            0o600,
        )
    })
    .ctx("openat relative to the directory")?;
    drop(Fd(f as i32));
    ensure!(
        stat_at(&s.path("sub/f"), 0).is_ok(),
        "created where the descriptor points"
    );
    ret(unsafe { syscall3(nr::SYMLINKAT, name("f").ptr(), dfd, name("sub/l").ptr()) })
        .ctx("symlinkat")?;
    let mut buf = [0u8; 8];
    let n = ret(unsafe {
        syscall4(
            nr::READLINKAT,
            dfd,
            name("sub/l").ptr(),
            buf.as_mut_ptr() as usize,
            8,
        )
    })
    .ctx("readlinkat")?;
    ensure!(&buf[..n] == b"f", "readlinkat");
    // A file descriptor is no directory for a relative path; absolute
    // paths ignore it.
    let file = open(s.path("sub/f").c_str(), O_RDONLY, 0).map(Fd).ctx("open file")?;
    expect_err(
        "openat relative to a file",
        ret(unsafe {
            syscall4(
                nr::OPENAT,
                file.raw() as usize,
                name("x").ptr(),
                O_RDONLY as usize,
                0,
            )
        }),
        Errno::ENOTDIR,
    )?;
    ensure!(
        ret(unsafe {
            syscall4(
                nr::OPENAT,
                file.raw() as usize,
                s.path("sub/f").ptr(),
                O_RDONLY as usize,
                0,
            )
        })
        .map(|fd| drop(Fd(fd as i32)))
        .is_ok(),
        "an absolute path ignores the descriptor"
    );
    expect_err(
        "a closed descriptor",
        ret(unsafe { syscall4(nr::OPENAT, 999, name("x").ptr(), O_RDONLY as usize, 0) }),
        Errno::EBADF,
    )?;
    expect_err(
        "fchdir to a file",
        ret(unsafe { syscall1(nr::FCHDIR, file.raw() as usize) }),
        Errno::ENOTDIR,
    )?;
    // fchdir, then a relative path; the old cwd comes back.
    let mut saved = [0u8; 512];
    ret(unsafe { syscall2(nr::GETCWD, saved.as_mut_ptr() as usize, saved.len()) }).ctx("getcwd")?;
    ret(unsafe { syscall1(nr::FCHDIR, dfd) }).ctx("fchdir")?;
    let found = stat_at(&name("sub/f"), 0);
    unsafe { syscall1(nr::CHDIR, saved.as_ptr() as usize) };
    found.ctx("relative to the new cwd")?;
    ret(unsafe { syscall3(nr::UNLINKAT, dfd, name("sub/l").ptr(), 0) }).ctx("unlinkat")?;
    ret(unsafe { syscall3(nr::UNLINKAT, dfd, name("sub/f").ptr(), 0) }).ctx("unlinkat")?;
    ret(unsafe { syscall3(nr::UNLINKAT, dfd, name("sub").ptr(), 0x200) })
        .ctx("unlinkat AT_REMOVEDIR")?;
    Ok(())
}

/// What a user without capabilities may do to root's files.
fn permissions(_: &Ctx) -> Outcome {
    let s = Scratch::new(
        "perm",
        ["private", "public", "script", "open", "", "", "", ""],
    )?;
    let old = umask(0);
    let made = [
        ("private", 0o600),
        ("public", 0o644),
        ("script", 0o644),
        ("open", 0o666),
    ]
    .iter()
    .try_for_each(|(name, mode)| open(s.path(name).c_str(), O_CREAT | O_WRONLY, *mode).map(Fd).map(drop));
    umask(old);
    made.ctx("create")?;
    let (private, public, script, open_file) = (
        s.path("private"),
        s.path("public"),
        s.path("script"),
        s.path("open"),
    );
    let new = s.path("new");
    let names = [
        "setgid+setuid(1000)",
        "reading a 0600 root file is EACCES",
        "reading a 0644 root file",
        "writing a 0644 root file is EACCES",
        "O_TRUNC of a 0644 root file is EACCES",
        "writing a 0666 file",
        "creating in a 0755 root directory is EACCES",
        "O_CREAT of an existing file needs no directory write permission",
        "executing a 0644 file is EACCES",
        "access(R_OK) of a 0600 root file is EACCES",
        "access(F_OK) of it",
        "chmod of root's file is EPERM",
        "unlink in a 0755 root directory is EACCES",
    ];
    let child = Child::spawn(|| {
        let user =
            forkvm_user::cred::setgid(1000).is_ok() && forkvm_user::cred::setuid(1000).is_ok();
        let argv = [script.buf.as_ptr(), core::ptr::null()];
        let envp = [core::ptr::null()];
        let script_c = CStr::from_bytes_until_nul(&script.buf).unwrap_or(c"");
        // SAFETY (each call below): NUL-terminated paths.
        let checks = [
            user,
            open(private.c_str(), O_RDONLY, 0).map(Fd).err() == Some(Errno::EACCES),
            open(public.c_str(), O_RDONLY, 0).map(Fd).is_ok(),
            open(public.c_str(), O_WRONLY, 0).map(Fd).err() == Some(Errno::EACCES),
            open(public.c_str(), O_RDONLY | O_TRUNC, 0).map(Fd).err() == Some(Errno::EACCES),
            open(open_file.c_str(), O_RDWR, 0).map(Fd).is_ok(),
            open(new.c_str(), O_CREAT | O_WRONLY, 0o644).map(Fd).err() == Some(Errno::EACCES),
            open(open_file.c_str(), O_CREAT | O_WRONLY, 0o644).map(Fd).is_ok(),
            execve(script_c, &argv, &envp) == Errno::EACCES,
            ret(unsafe { syscall2(nr::ACCESS, private.ptr(), 4) }) == Err(Errno::EACCES),
            ret(unsafe { syscall2(nr::ACCESS, private.ptr(), 0) }).is_ok(),
            ret(unsafe { syscall2(nr::CHMOD, private.ptr(), 0o777) }) == Err(Errno::EPERM),
            unlink(&public) == Err(Errno::EACCES),
        ];
        first_failure(&checks)
    })?;
    expect_checks("uid 1000", child, &names)?;
    Ok(())
}

/// `chown(path, user, group)`; -1 (`NO_CHANGE`) leaves an id.
fn chown(path: &Path, user: u32, group: u32) -> Result<usize, Errno> {
    // SAFETY: the kernel reads the NUL-terminated path.
    ret(unsafe { syscall3(nr::CHOWN, path.ptr(), user as usize, group as usize) })
}

/// The id that `chown` leaves as it is.
const NO_CHANGE: u32 = u32::MAX;
const CLONE_NEWUSER: u64 = 0x1000_0000;

fn owner_and_mode(path: &Path, flags: u32) -> Result<(u32, u32, u32), Msg> {
    let st = stat_at(path, flags).ctx("stat")?;
    Ok((st.uid, st.gid, st.mode & 0o7777))
}

/// chown as root (CAP_CHOWN): every form (`chown`, `fchown`, `lchown`,
/// `fchownat` with its flags), what `stat` shows, the set-id bits a chown
/// clears, and the errors of the walk and the flags, in Linux's order.
fn chown_root(_: &Ctx) -> Outcome {
    let s = Scratch::new("chown", ["f", "l", "d", "loop", "", "", "", ""])?;
    let (f, l, d, looped) = (s.path("f"), s.path("l"), s.path("d"), s.path("loop"));
    let fd = open(f.c_str(), O_CREAT | O_RDWR, 0o600).map(Fd).ctx("create")?;
    let chmod = |path: &Path, mode: usize| {
        // SAFETY: NUL-terminated path.
        ret(unsafe { syscall2(nr::CHMOD, path.ptr(), mode) }).ctx("chmod")
    };
    chmod(&f, 0o6755)?;
    chown(&f, 1000, 2000).ctx("chown")?;
    let got = owner_and_mode(&f, 0)?;
    ensure!(got == (1000, 2000, 0o755), "after chown 1000:2000 of a 6755 file: {got:?}");
    // Without group execution S_ISGID stays for CAP_FSETID; S_ISUID
    // goes even when no id changes.
    chmod(&f, 0o6745)?;
    chown(&f, NO_CHANGE, NO_CHANGE).ctx("chown -1 -1")?;
    let got = owner_and_mode(&f, 0)?;
    ensure!(got == (1000, 2000, 0o2745), "after chown -1 -1 of a 6745 file: {got:?}");
    // SAFETY (each call below): NUL-terminated paths, no buffers.
    ret(unsafe { syscall3(nr::FCHOWN, fd.raw() as usize, 0, NO_CHANGE as usize) }).ctx("fchown")?;
    let got = owner_and_mode(&f, 0)?;
    ensure!(got == (0, 2000, 0o2745), "after fchown 0:-1: {got:?}");
    // lchown changes the link, chown follows it.
    // SAFETY: NUL-terminated paths.
    ret(unsafe { syscall2(nr::SYMLINK, c"f".as_ptr() as usize, l.ptr()) }).ctx("symlink")?;
    ret(unsafe { syscall3(nr::LCHOWN, l.ptr(), 1000, 1000) }).ctx("lchown")?;
    let (link, file) = (stat_at(&l, AT_SYMLINK_NOFOLLOW).ctx("lstat")?, stat_at(&f, 0).ctx("stat")?);
    ensure!(
        (link.uid, link.gid, file.uid, file.gid) == (1000, 1000, 0, 2000),
        "lchown: link {}:{}, file {}:{}",
        link.uid,
        link.gid,
        file.uid,
        file.gid
    );
    ret(unsafe { syscall5(nr::FCHOWNAT, AT_FDCWD as usize, l.ptr(), 7, 8, 0) }).ctx("fchownat")?;
    ensure!(owner_and_mode(&f, 0)?.0 == 7, "fchownat follows the link");
    ret(unsafe {
        syscall5(nr::FCHOWNAT, AT_FDCWD as usize, l.ptr(), 9, 9, AT_SYMLINK_NOFOLLOW as usize)
    })
    .ctx("fchownat AT_SYMLINK_NOFOLLOW")?;
    ensure!(
        owner_and_mode(&l, AT_SYMLINK_NOFOLLOW)?.0 == 9 && owner_and_mode(&f, 0)?.0 == 7,
        "fchownat AT_SYMLINK_NOFOLLOW changes the link only"
    );
    let path_fd = open(f.c_str(), O_PATH, 0).map(Fd).ctx("open O_PATH")?;
    ret(unsafe {
        syscall5(nr::FCHOWNAT, path_fd.raw() as usize, c"".as_ptr() as usize, 5, 6, AT_EMPTY_PATH as usize)
    })
    .ctx("fchownat AT_EMPTY_PATH")?;
    ensure!(owner_and_mode(&f, 0)?.0 == 5, "fchownat AT_EMPTY_PATH of an O_PATH fd");
    expect_err(
        "fchown of an O_PATH fd",
        ret(unsafe { syscall3(nr::FCHOWN, path_fd.raw() as usize, 0, 0) }),
        Errno::EBADF,
    )?;
    expect_err(
        "fchownat with AT_SYMLINK_FOLLOW",
        ret(unsafe { syscall5(nr::FCHOWNAT, AT_FDCWD as usize, f.ptr(), 0, 0, AT_SYMLINK_FOLLOW as usize) }),
        Errno::EINVAL,
    )?;
    expect_err(
        "fchownat of an empty path without AT_EMPTY_PATH",
        ret(unsafe { syscall5(nr::FCHOWNAT, fd.raw() as usize, c"".as_ptr() as usize, 0, 0, 0) }),
        Errno::ENOENT,
    )?;
    expect_err("chown of a missing file", chown(&s.path("nope"), 0, 0), Errno::ENOENT)?;
    expect_err("chown through a file", chown(&s.path("f/x"), 0, 0), Errno::ENOTDIR)?;
    ret(unsafe { syscall2(nr::SYMLINK, c"loop".as_ptr() as usize, looped.ptr()) }).ctx("symlink")?;
    expect_err("chown of a symlink loop", chown(&looped, 0, 0), Errno::ELOOP)?;
    expect_err(
        "chown of a bad pointer",
        ret(unsafe { syscall3(nr::CHOWN, 8, 0, 0) }),
        Errno::EFAULT,
    )?;
    // A directory keeps its set-group-id bit.
    ret(unsafe { syscall2(nr::MKDIR, d.ptr(), 0o755) }).ctx("mkdir")?;
    chmod(&d, 0o2775)?;
    chown(&d, 1000, 1000).ctx("chown of a directory")?;
    let got = owner_and_mode(&d, 0)?;
    ensure!(got == (1000, 1000, 0o2775), "directory after chown: {got:?}");
    // In a user namespace with no id maps, no id is mapped: EINVAL before
    // any permission check; -1 needs no mapping.
    let child = Child::spawn_with_flags(CLONE_NEWUSER, || {
        let checks = [
            chown(&f, 0, NO_CHANGE) == Err(Errno::EINVAL),
            chown(&f, NO_CHANGE, 0) == Err(Errno::EINVAL),
        ];
        checks.iter().position(|ok| !ok).map_or(0, |i| i as i32 + 1)
    })?;
    let status = child.wait_bounded("chown in a new user namespace")?;
    expect_exit("chown of ids a new user namespace does not map", status, 0)?;
    Ok(())
}

/// chown without CAP_CHOWN (a child that became uid and gid 1000): the
/// owner may keep its uid and pick one of its groups, nothing else; a
/// chown that clears S_ISUID needs ownership; permission checks use the
/// new owner.
fn chown_unprivileged(_: &Ctx) -> Outcome {
    let s = Scratch::new(
        "chown-user",
        ["mine", "theirs", "suid", "private", "", "", "", ""],
    )?;
    let (mine, theirs, suid, private) = (
        s.path("mine"),
        s.path("theirs"),
        s.path("suid"),
        s.path("private"),
    );
    for (path, mode) in [(&mine, 0o4755), (&theirs, 0o644), (&suid, 0o4755), (&private, 0o600)] {
        open(path.c_str(), O_CREAT | O_WRONLY, 0o600).map(Fd).ctx("create")?;
        // SAFETY: NUL-terminated path.
        ret(unsafe { syscall2(nr::CHMOD, path.ptr(), mode) }).ctx("chmod")?;
    }
    chown(&mine, 1000, 1000).ctx("chown mine")?;
    chown(&private, 1000, 1000).ctx("chown private")?;
    let names = [
        "setgid+setuid(1000)",
        "chown of root's file to itself is EPERM",
        "giving its own file away is EPERM",
        "chown of its own file to its own uid",
        "chgrp to a group it is not in is EPERM",
        "chgrp to its own group",
        "chown -1 -1 of its set-user-id file clears S_ISUID",
        "chown -1 -1 of root's set-user-id file is EPERM",
        "chown -1 -1 of root's plain file",
        "reading the 0600 file chowned to it",
    ];
    let child = Child::spawn(|| {
        let user =
            forkvm_user::cred::setgid(1000).is_ok() && forkvm_user::cred::setuid(1000).is_ok();
        let checks = [
            user,
            chown(&theirs, 1000, NO_CHANGE) == Err(Errno::EPERM),
            chown(&mine, 1001, NO_CHANGE) == Err(Errno::EPERM),
            chown(&mine, 1000, NO_CHANGE).is_ok(),
            chown(&mine, NO_CHANGE, 1001) == Err(Errno::EPERM),
            chown(&mine, NO_CHANGE, 1000).is_ok(),
            chown(&mine, NO_CHANGE, NO_CHANGE).is_ok()
                && owner_and_mode(&mine, 0).ok() == Some((1000, 1000, 0o755)),
            chown(&suid, NO_CHANGE, NO_CHANGE) == Err(Errno::EPERM),
            chown(&theirs, NO_CHANGE, NO_CHANGE).is_ok(),
            open(private.c_str(), O_RDONLY, 0).map(Fd).is_ok(),
        ];
        first_failure(&checks)
    })?;
    expect_checks("uid 1000", child, &names)?;
    ensure!(
        owner_and_mode(&suid, 0)? == (0, 0, 0o4755),
        "root's set-user-id file is untouched"
    );
    Ok(())
}

/// A file mapping, unmapped when dropped.
struct FileMap {
    addr: usize,
    len: usize,
}

impl FileMap {
    fn new(len: usize, prot: u32, flags: u32, fd: i32, offset: usize) -> Result<FileMap, Errno> {
        // SAFETY: without MAP_FIXED the kernel picks an unused range.
        unsafe { mmap(0, len, prot, flags, fd, offset) }.map(|p| FileMap {
            addr: p as usize,
            len,
        })
    }

    fn get(&self, at: usize) -> u8 {
        assert!(at < self.len);
        // SAFETY: inside the mapping, which is readable in every use here.
        unsafe { core::ptr::read_volatile((self.addr + at) as *const u8) }
    }

    fn set(&self, at: usize, value: u8) {
        assert!(at < self.len);
        // SAFETY: inside the mapping; callers only write writable ones.
        unsafe { core::ptr::write_volatile((self.addr + at) as *mut u8, value) }
    }
}

impl Drop for FileMap {
    fn drop(&mut self) {
        // SAFETY: nothing uses the mapping after its guard is gone.
        let _ = unsafe { munmap(self.addr as *mut u8, self.len) };
    }
}

fn byte_at(fd: &Fd, offset: usize) -> Result<u8, Msg> {
    let mut b = [0u8; 1];
    pread(fd, &mut b, offset).ctx("pread")?;
    Ok(b[0])
}

/// MAP_SHARED: stores are the file's bytes (read sees them), writes to
/// the file show in the mapping, two mappings and a forked child share
/// the pages.
fn mmap_shared(_: &Ctx) -> Outcome {
    let s = Scratch::new("mmap-shared", ["f", "", "", "", "", "", "", ""])?;
    let fd = open(s.path("f").c_str(), O_CREAT | O_RDWR, 0o600).map(Fd).ctx("open")?;
    pwrite(&fd, b"hello", 0).ctx("pwrite")?;
    ftruncate(&fd, 8192).ctx("ftruncate")?;
    let rw = PROT_READ | PROT_WRITE;
    let map = FileMap::new(8192, rw, MAP_SHARED, fd.raw(), 0).ctx("mmap shared")?;
    ensure!(map.get(0) == b'h' && map.get(4) == b'o', "the file's bytes");
    ensure!(map.get(5) == 0 && map.get(8191) == 0, "zeros to the size");
    map.set(4096, b'x');
    ensure!(byte_at(&fd, 4096)? == b'x', "pread sees a store");
    pwrite(&fd, b"Y", 1).ctx("pwrite")?;
    ensure!(map.get(1) == b'Y', "the mapping sees pwrite");
    let second = FileMap::new(4096, rw, MAP_SHARED, fd.raw(), 4096).ctx("mmap at 4096")?;
    ensure!(second.get(0) == b'x', "a second mapping at an offset");
    second.set(1, b'z');
    ensure!(map.get(4097) == b'z', "stores of one mapping in the other");
    let child = Child::spawn(|| {
        map.set(2, b'C');
        0
    })?;
    expect_exit("child", child.wait()?, 0)?;
    ensure!(map.get(2) == b'C', "a forked child's store");
    ensure!(byte_at(&fd, 2)? == b'C', "a forked child's store in the file");
    drop(second);
    drop(map);
    ensure!(byte_at(&fd, 4097)? == b'z', "the file keeps the stores");
    Ok(())
}

/// MAP_PRIVATE: stores stay in the process (copy on write), pages not
/// yet stored to show later writes to the file, fork copies, mprotect
/// keeps a copied page; a read-only descriptor may be mapped writable.
fn mmap_private(_: &Ctx) -> Outcome {
    let s = Scratch::new("mmap-private", ["f", "", "", "", "", "", "", ""])?;
    let fd = open(s.path("f").c_str(), O_CREAT | O_RDWR, 0o600).map(Fd).ctx("open")?;
    pwrite(&fd, b"abc", 0).ctx("pwrite")?;
    ftruncate(&fd, 8192).ctx("ftruncate")?;
    let rw = PROT_READ | PROT_WRITE;
    let map = FileMap::new(8192, rw, MAP_PRIVATE, fd.raw(), 0).ctx("mmap private")?;
    ensure!(map.get(0) == b'a', "the file's bytes");
    map.set(0, b'Z');
    ensure!(map.get(0) == b'Z', "the store");
    ensure!(byte_at(&fd, 0)? == b'a', "the file does not see a private store");
    pwrite(&fd, b"Q", 4096).ctx("pwrite")?;
    ensure!(map.get(4096) == b'Q', "an untouched page shows the file");
    pwrite(&fd, b"R", 2).ctx("pwrite")?;
    ensure!(map.get(2) == b'c', "a copied page does not");
    let child = Child::spawn(|| {
        map.set(1, b'K');
        i32::from(map.get(1) != b'K')
    })?;
    expect_exit("child", child.wait()?, 0)?;
    ensure!(map.get(1) == b'b', "a child's store stays in the child");
    // SAFETY: the mapping stays readable; no writes while read-only.
    unsafe { mprotect(map.addr as *mut u8, 8192, PROT_READ) }.ctx("mprotect r")?;
    // SAFETY: as above.
    unsafe { mprotect(map.addr as *mut u8, 8192, rw) }.ctx("mprotect rw")?;
    ensure!(map.get(0) == b'Z', "mprotect keeps the copy");
    map.set(4096, b'W');
    ensure!(byte_at(&fd, 4096)? == b'Q', "after mprotect, still private");
    let ro = open(s.path("f").c_str(), O_RDONLY, 0).map(Fd).ctx("open O_RDONLY")?;
    let copy = FileMap::new(4096, rw, MAP_PRIVATE, ro.raw(), 0).ctx("private rw of O_RDONLY")?;
    copy.set(0, b'!');
    ensure!(byte_at(&fd, 0)? == b'a', "unchanged file");
    // A fixed mapping replaces what was there.
    // SAFETY: `map`'s second page is replaced; `map` only reads it after.
    let fixed = unsafe {
        mmap(
            map.addr + 4096,
            4096,
            PROT_READ,
            MAP_PRIVATE | MAP_FIXED,
            fd.raw(),
            0,
        )
    }
    .ctx("MAP_FIXED")?;
    ensure!(fixed as usize == map.addr + 4096, "MAP_FIXED address");
    ensure!(map.get(4096) == b'a', "the file's first page at the second");
    Ok(())
}

/// A file mapping takes no memory until touched: a 1 GiB sparse file
/// (more than the guest's RAM) maps whole, shared and private; the pages
/// touched are the file's (pread sees a store, a forked child's store
/// shows in the parent), and the file is emptied again.
fn mmap_lazy_sparse(_: &Ctx) -> Outcome {
    const SIZE: usize = 1 << 30;
    let s = Scratch::new("mmap-lazy", ["f", "", "", "", "", "", "", ""])?;
    let fd = open(s.path("f").c_str(), O_CREAT | O_RDWR, 0o600).map(Fd).ctx("open")?;
    ftruncate(&fd, SIZE as i64).ctx("ftruncate 1 GiB")?;
    let rw = PROT_READ | PROT_WRITE;
    let map = FileMap::new(SIZE, rw, MAP_SHARED, fd.raw(), 0).ctx("mmap 1 GiB shared")?;
    // MAP_NORESERVE: a private writable mapping larger than RAM would not
    // pass the overcommit heuristic of a small machine (or of the guest).
    let flags = MAP_PRIVATE | MAP_NORESERVE;
    let private = FileMap::new(SIZE, rw, flags, fd.raw(), 0).ctx("mmap 1 GiB private")?;
    let (middle, last) = (SIZE / 2 + 123, SIZE - 1);
    ensure!(map.get(middle) == 0 && private.get(last) == 0, "holes read zeros");
    map.set(middle, b'm');
    map.set(last, b'l');
    ensure!(byte_at(&fd, middle)? == b'm', "pread sees a store in the middle");
    ensure!(byte_at(&fd, last)? == b'l', "pread sees a store at the end");
    ensure!(private.get(middle) == b'm', "a private mapping sees the file");
    private.set(middle, b'p');
    ensure!(map.get(middle) == b'm', "a private store stays private");
    let child = Child::spawn(|| {
        map.set(SIZE / 4, b'c');
        i32::from(map.get(middle) != b'm' || private.get(middle) != b'p')
    })?;
    expect_exit("child", child.wait()?, 0)?;
    ensure!(map.get(SIZE / 4) == b'c', "a forked child's store");
    drop(private);
    drop(map);
    ftruncate(&fd, 0).ctx("ftruncate 0")?;
    Ok(())
}

/// Exits with 10 * si_code + (si_addr is `FAULT_ADDR`): a SIGBUS handler.
extern "C" fn exit_with_bus_code(_signo: i32, info: *mut SigInfo, _uc: *mut u8) {
    // SAFETY: the kernel passes a valid siginfo.
    let info = unsafe { *info };
    let expected = FAULT_ADDR.load(Ordering::SeqCst);
    exit_group(info.code * 10 + i32::from(info.addr() == expected));
}

/// The address a fault in a child is expected at.
static FAULT_ADDR: AtomicUsize = AtomicUsize::new(0);

/// BUS_ADRERR, the si_code of an access past the end of a file.
const BUS_ADRERR: i32 = 2;

/// A page of a file mapping wholly past the end of the file raises SIGBUS
/// (BUS_ADRERR, at the address), for reads and writes, shared or private;
/// the rest of the last partial page reads zeros; a read into such a page
/// is EFAULT; once the file grows, the page is the file's.
fn mmap_past_eof_sigbus(_: &Ctx) -> Outcome {
    let s = Scratch::new("mmap-sigbus", ["f", "", "", "", "", "", "", ""])?;
    let fd = open(s.path("f").c_str(), O_CREAT | O_RDWR, 0o600).map(Fd).ctx("open")?;
    pwrite(&fd, &[b'a'; 5000], 0).ctx("pwrite")?;
    let rw = PROT_READ | PROT_WRITE;
    let map = FileMap::new(3 * 4096, rw, MAP_SHARED, fd.raw(), 0).ctx("mmap shared")?;
    let private = FileMap::new(3 * 4096, rw, MAP_PRIVATE, fd.raw(), 0).ctx("mmap private")?;
    ensure!(map.get(4999) == b'a', "the last byte of the file");
    ensure!(map.get(5000) == 0 && map.get(8191) == 0, "the tail of the last page is zeros");
    ensure!(private.get(8191) == 0, "the tail through a private mapping");
    let faults: [(&str, &FileMap, bool); 3] = [
        ("read of a shared page past EOF", &map, false),
        ("write to a shared page past EOF", &map, true),
        ("read of a private page past EOF", &private, false),
    ];
    for (what, mapping, write) in faults {
        let at = mapping.addr + 8192 + 8;
        let child = Child::spawn(|| {
            FAULT_ADDR.store(at, Ordering::SeqCst);
            if sigaction(sig::SIGBUS, exit_with_bus_code, 0, 0).is_err() {
                return 1;
            }
            if write {
                mapping.set(8192 + 8, 1);
            } else {
                mapping.get(8192 + 8);
            }
            2
        })?;
        let status = child.wait_bounded(what)?;
        expect_exit(what, status, BUS_ADRERR * 10 + 1)?;
    }
    // SAFETY: the kernel writes into our mapping or fails.
    let into_past_eof = ret(unsafe {
        syscall4(nr::PREAD64, fd.raw() as usize, map.addr + 8192, 16, 0)
    });
    expect_err("pread into a page past EOF", into_past_eof, Errno::EFAULT)?;
    ftruncate(&fd, 3 * 4096).ctx("ftruncate")?;
    pwrite(&fd, b"G", 8200).ctx("pwrite")?;
    ensure!(map.get(8200) == b'G', "after growing, the page is the file's");
    ensure!(private.get(8200) == b'G', "through a private mapping too");
    Ok(())
}

/// A truncate takes the pages wholly past the new end out of every
/// mapping of the file (Linux `truncate_pagecache`): shared pages and
/// private copy-on-write copies alike fault again and get SIGBUS, in this
/// process and in one that mapped them before; the partial last page stays
/// mapped with its tail zeroed, and a private copy of a page before the
/// end keeps its bytes.
fn truncate_unmaps(_: &Ctx) -> Outcome {
    let s = Scratch::new("truncate-unmaps", ["f", "", "", "", "", "", "", ""])?;
    let fd = open(s.path("f").c_str(), O_CREAT | O_RDWR, 0o600).map(Fd).ctx("open")?;
    pwrite(&fd, &[b'a'; 3 * 4096], 0).ctx("pwrite")?;
    let rw = PROT_READ | PROT_WRITE;
    let shared = FileMap::new(3 * 4096, rw, MAP_SHARED, fd.raw(), 0).ctx("mmap shared")?;
    let private = FileMap::new(3 * 4096, rw, MAP_PRIVATE, fd.raw(), 0).ctx("mmap private")?;
    for page in 0..3 {
        ensure!(shared.get(page * 4096) == b'a', "shared page {page} before");
        ensure!(private.get(page * 4096) == b'a', "private page {page} before");
    }
    // Private copies of page 0 (stays) and page 2 (goes).
    private.set(0, b'p');
    private.set(2 * 4096, b'p');
    // A process that has the last page mapped, and touches it again once
    // the file has shrunk.
    let (go_r, go_w) = pipe()?;
    let (ready_r, ready_w) = pipe()?;
    let at = shared.addr + 2 * 4096 + 8;
    let mapped_before = Child::spawn(|| {
        FAULT_ADDR.store(at, Ordering::SeqCst);
        if sigaction(sig::SIGBUS, exit_with_bus_code, 0, 0).is_err() || shared.get(2 * 4096) != b'a'
        {
            return 1;
        }
        if write(ready_w.raw(), b"r") != Ok(1) {
            return 3;
        }
        wait_byte(go_r.raw());
        shared.get(2 * 4096 + 8);
        2
    })?;
    drop(ready_w);
    wait_byte(ready_r.raw());
    ftruncate(&fd, 5000).ctx("ftruncate")?;
    write(go_w.raw(), b"g").ctx("write")?;
    let status = mapped_before.wait_bounded("a process that mapped the page before")?;
    expect_exit(
        "a page past the new end, mapped before the truncate",
        status,
        BUS_ADRERR * 10 + 1,
    )?;
    ensure!(shared.get(4999) == b'a', "the last byte stays");
    ensure!(shared.get(5000) == 0 && shared.get(8191) == 0, "the tail of the last page is zeroed");
    ensure!(private.get(0) == b'p', "a private copy before the end stays");
    ensure!(private.get(5000) == 0, "a private page not copied shows the zeroed tail");
    let faults: [(&str, &FileMap); 2] = [
        ("a shared page past the new end", &shared),
        ("a private copy past the new end", &private),
    ];
    for (what, mapping) in faults {
        let at = mapping.addr + 2 * 4096 + 8;
        let child = Child::spawn(|| {
            FAULT_ADDR.store(at, Ordering::SeqCst);
            if sigaction(sig::SIGBUS, exit_with_bus_code, 0, 0).is_err() {
                return 1;
            }
            mapping.get(2 * 4096 + 8);
            2
        })?;
        let status = child.wait_bounded(what)?;
        expect_exit(what, status, BUS_ADRERR * 10 + 1)?;
    }
    Ok(())
}

/// What cannot be mapped, with Linux's errno in Linux's order.
fn mmap_errors(_: &Ctx) -> Outcome {
    let s = Scratch::new("mmap-errors", ["f", "", "", "", "", "", "", ""])?;
    let fd = open(s.path("f").c_str(), O_CREAT | O_RDWR, 0o600).map(Fd).ctx("open")?;
    ftruncate(&fd, 4096).ctx("ftruncate")?;
    let (r, rw) = (PROT_READ, PROT_READ | PROT_WRITE);
    expect_err("bad fd", FileMap::new(4096, r, MAP_PRIVATE, 999, 0), Errno::EBADF)?;
    expect_err(
        "bad fd before a zero length",
        FileMap::new(0, r, MAP_PRIVATE, 999, 0),
        Errno::EBADF,
    )?;
    expect_err(
        "unaligned offset before a bad fd",
        FileMap::new(4096, r, MAP_PRIVATE, 999, 100),
        Errno::EINVAL,
    )?;
    expect_err(
        "zero length",
        FileMap::new(0, r, MAP_PRIVATE, fd.raw(), 0),
        Errno::EINVAL,
    )?;
    let wo = open(s.path("f").c_str(), O_WRONLY, 0).map(Fd).ctx("open O_WRONLY")?;
    expect_err(
        "write-only fd",
        FileMap::new(4096, r, MAP_PRIVATE, wo.raw(), 0),
        Errno::EACCES,
    )?;
    let ro = open(s.path("f").c_str(), O_RDONLY, 0).map(Fd).ctx("open O_RDONLY")?;
    expect_err(
        "shared writable of a read-only fd",
        FileMap::new(4096, rw, MAP_SHARED, ro.raw(), 0),
        Errno::EACCES,
    )?;
    FileMap::new(4096, r, MAP_SHARED, ro.raw(), 0).ctx("shared read-only")?;
    let path_fd = open(s.path("f").c_str(), O_PATH, 0).map(Fd).ctx("open O_PATH")?;
    expect_err(
        "O_PATH fd",
        FileMap::new(4096, r, MAP_PRIVATE, path_fd.raw(), 0),
        Errno::EBADF,
    )?;
    let (pr, pw) = pipe()?;
    expect_err(
        "pipe",
        FileMap::new(4096, r, MAP_PRIVATE, pr.raw(), 0),
        Errno::ENODEV,
    )?;
    expect_err(
        "pipe's write end",
        FileMap::new(4096, r, MAP_PRIVATE, pw.raw(), 0),
        Errno::EACCES,
    )?;
    let dir = Path::new(format_args!("{}", Bytes(s.dir.bytes())));
    let dir = open(dir.c_str(), O_RDONLY | O_DIRECTORY, 0).map(Fd).ctx("open dir")?;
    expect_err(
        "directory",
        FileMap::new(4096, r, MAP_PRIVATE, dir.raw(), 0),
        Errno::ENODEV,
    )?;
    let zero = open(Path::new(format_args!("/dev/zero")).c_str(), O_RDWR, 0).map(Fd).ctx("open /dev/zero")?;
    let z = FileMap::new(8192, rw, MAP_PRIVATE, zero.raw(), 0).ctx("mmap /dev/zero")?;
    ensure!(z.get(5000) == 0, "/dev/zero maps zeros");
    z.set(5000, 7);
    ensure!(z.get(5000) == 7, "/dev/zero private pages are writable");
    // MAP_ANONYMOUS ignores the descriptor.
    FileMap::new(4096, r, MAP_PRIVATE | MAP_ANONYMOUS, 999, 0).ctx("anonymous, fd 999")?;
    Ok(())
}

/// An x86-64 ELF executable whose PT_INTERP names `interpreter` (which
/// never runs: every case here fails before).
fn elf_with_interpreter(interpreter: &[u8]) -> [u8; 512] {
    let mut elf = [0u8; 512];
    let mut put = |at: usize, bytes: &[u8]| elf[at..at + bytes.len()].copy_from_slice(bytes);
    put(0, b"\x7fELF\x02\x01\x01");
    put(16, &2u16.to_le_bytes()); // ET_EXEC
    put(18, &62u16.to_le_bytes()); // EM_X86_64
    put(20, &1u32.to_le_bytes());
    put(24, &0x40_0100u64.to_le_bytes()); // entry
    put(32, &64u64.to_le_bytes()); // phoff
    put(52, &64u16.to_le_bytes());
    put(54, &56u16.to_le_bytes());
    put(56, &2u16.to_le_bytes());
    // PT_INTERP at 0x180.
    put(64, &3u32.to_le_bytes());
    put(68, &4u32.to_le_bytes());
    put(72, &0x180u64.to_le_bytes());
    put(80, &0x40_0180u64.to_le_bytes());
    put(88, &0x40_0180u64.to_le_bytes());
    let size = interpreter.len() as u64 + 1;
    put(96, &size.to_le_bytes());
    put(104, &size.to_le_bytes());
    put(112, &1u64.to_le_bytes());
    // PT_LOAD of the whole file at 0x400000, read + execute.
    put(120, &1u32.to_le_bytes());
    put(124, &5u32.to_le_bytes());
    put(136, &0x40_0000u64.to_le_bytes());
    put(144, &0x40_0000u64.to_le_bytes());
    put(152, &512u64.to_le_bytes());
    put(160, &512u64.to_le_bytes());
    put(168, &0x1000u64.to_le_bytes());
    put(0x100, &[0x0f, 0x0b]); // ud2
    put(0x180, interpreter);
    elf
}

/// execve of a dynamically linked program whose interpreter is missing
/// (ENOENT), not executable (EACCES), a directory (EACCES) or no ELF file
/// (ELIBBAD), or shorter than an ELF header (EIO: Linux's read of the
/// interpreter's header comes up short); a non-ELF file with the x bit
/// is ENOEXEC.
fn exec_interpreter(_: &Ctx) -> Outcome {
    let s = Scratch::new(
        "exec-interp",
        ["prog", "text", "noexec", "short", "", "", "", ""],
    )?;
    let make = |name: &str, bytes: &[u8], mode: usize| -> Outcome {
        let fd = open(s.path(name).c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0o600).map(Fd).ctx("create")?;
        write_all(fd.raw(), bytes).ctx("write")?;
        // SAFETY: no memory is passed.
        ret(unsafe { syscall2(nr::FCHMOD, fd.raw() as usize, mode) }).ctx("fchmod")?;
        Ok(())
    };
    make("text", &[b'x'; 100], 0o755)?;
    make("short", b"not an ELF file\n", 0o755)?;
    make("noexec", b"\x7fELF", 0o644)?;
    let try_exec = |name: &str| -> Result<i32, Msg> {
        let path = s.path(name);
        let child = Child::spawn(|| {
            let argv = [path.ptr() as *const u8, core::ptr::null()];
            let envp = [core::ptr::null()];
            let cpath = CStr::from_bytes_until_nul(&path.buf).unwrap_or(c"/");
            execve(cpath, &argv, &envp).0
        })?;
        let status = child.wait()?;
        if !status.exited() {
            return Err(msg!("exec {name}: child ended with status {:#x}", status.0));
        }
        Ok(status.exit_status())
    };
    let (noexec, text, short) = (s.path("noexec"), s.path("text"), s.path("short"));
    let cases: [(&[u8], i32, &str); 5] = [
        (b"/nonexistent/ld.so", Errno::ENOENT.0, "missing interpreter"),
        (noexec.bytes(), Errno::EACCES.0, "interpreter without x"),
        (s.dir.bytes(), Errno::EACCES.0, "directory interpreter"),
        (text.bytes(), Errno::ELIBBAD.0, "text interpreter"),
        (short.bytes(), Errno::EIO.0, "interpreter shorter than a header"),
    ];
    for (interpreter, want, what) in cases {
        make("prog", &elf_with_interpreter(interpreter), 0o755)?;
        let got = try_exec("prog")?;
        ensure!(got == want, "{what}: expected errno {want}, got {got}");
    }
    let got = try_exec("text")?;
    ensure!(got == Errno::ENOEXEC.0, "text with x: expected ENOEXEC, got {got}");
    Ok(())
}

/// Reads the whole (small) file at `path` into `buf`.
pub(super) fn read_file<'a>(path: &str, buf: &'a mut [u8]) -> Result<&'a str, Msg> {
    let fd = open(Path::new(format_args!("{path}")).c_str(), O_RDONLY, 0).map(Fd).ctx(path)?;
    let n = read_full(fd.raw(), buf)?;
    core::str::from_utf8(&buf[..n]).map_err(|_| msg!("{path}: not UTF-8"))
}

/// `/proc/self/stat` and `status` name this process, its state, parent
/// and exit signal in Linux's format (52 stat fields); `cmdline` holds
/// the arguments, each ending in a NUL; `exe` links to this program;
/// `/proc/meminfo` starts with the memory totals.
fn proc_files(ctx: &Ctx) -> Outcome {
    let (pid, ppid) = (getpid(), getppid());
    let mut buf = [0u8; 4096];
    let stat = read_file("/proc/self/stat", &mut buf)?;
    let head = Path::new(format_args!("{pid} (proctest) R {ppid} "));
    let head = core::str::from_utf8(head.bytes()).unwrap_or("");
    ensure!(stat.starts_with(head), "stat starts {stat:?}, expected {head:?}");
    let after_comm = stat.rsplit_once(") ").map_or("", |(_, rest)| rest);
    let fields = after_comm.split_whitespace().count() + 2;
    ensure!(fields == 52, "stat has {fields} fields: {stat:?}");
    let exit_signal = after_comm.split_whitespace().nth(35);
    ensure!(exit_signal == Some("17"), "exit_signal {exit_signal:?} in {stat:?}");
    let mut buf = [0u8; 4096];
    let status = read_file("/proc/self/status", &mut buf)?;
    ensure!(status.starts_with("Name:\tproctest\n"), "status {status:?}");
    for line in [
        Path::new(format_args!("\nPid:\t{pid}\n")),
        Path::new(format_args!("\nPPid:\t{ppid}\n")),
        Path::new(format_args!("\nState:\tR (running)\n")),
    ] {
        let line = core::str::from_utf8(line.bytes()).unwrap_or("");
        ensure!(status.contains(line), "no {line:?} in status {status:?}");
    }
    let fd = open(Path::new(format_args!("/proc/self/cmdline")).c_str(), O_RDONLY, 0).map(Fd).ctx("cmdline")?;
    let mut buf = [0u8; 4096];
    let n = read_full(fd.raw(), &mut buf)?;
    let cmdline = &buf[..n];
    if let Some(argv0) = ctx.argv0 {
        ensure!(
            cmdline.starts_with(argv0) && cmdline.get(argv0.len()) == Some(&0),
            "cmdline {} does not start with argv[0] {}",
            Bytes(cmdline),
            Bytes(argv0)
        );
    }
    ensure!(cmdline.last() == Some(&0), "cmdline ends in a NUL");
    let readlink = |path: &str, buf: &mut [u8]| {
        let path = Path::new(format_args!("{path}"));
        // SAFETY: the kernel writes at most buf.len() bytes into buf.
        ret(unsafe {
            syscall3(
                nr::READLINK,
                path.ptr(),
                buf.as_mut_ptr() as usize,
                buf.len(),
            )
        })
    };
    let mut exe = [0u8; 256];
    let n = readlink("/proc/self/exe", &mut exe).ctx("readlink /proc/self/exe")?;
    let exe = &exe[..n];
    if let Some(argv0) = ctx.argv0 {
        // The absolute path of this program: argv[0] if that is one,
        // else it ends in /argv[0] (the shell found it in a directory).
        let named = if argv0.first() == Some(&b'/') {
            exe == argv0
        } else {
            exe.ends_with(argv0) && exe.get(exe.len() - argv0.len() - 1) == Some(&b'/')
        };
        ensure!(
            exe.first() == Some(&b'/') && named,
            "/proc/self/exe is {}, argv[0] {}",
            Bytes(exe),
            Bytes(argv0)
        );
    }
    expect_err(
        "readlink /proc/self/stat",
        readlink("/proc/self/stat", &mut [0u8; 16]),
        Errno::EINVAL,
    )?;
    expect_err(
        "readlink /proc/self/nonexistent",
        readlink("/proc/self/nonexistent", &mut [0u8; 16]),
        Errno::ENOENT,
    )?;
    let mut buf = [0u8; 4096];
    let meminfo = read_file("/proc/meminfo", &mut buf)?;
    ensure!(
        meminfo.starts_with("MemTotal:") && meminfo.contains("\nMemFree:"),
        "meminfo {meminfo:?}"
    );
    expect_err(
        "/proc/self/nonexistent",
        open(Path::new(format_args!("/proc/self/nonexistent")).c_str(), O_RDONLY, 0).map(Fd),
        Errno::ENOENT,
    )?;
    Ok(())
}

/// `readlink(path)` into `buf`: the target's bytes.
fn readlink_into<'a>(path: &Path, buf: &'a mut [u8]) -> Result<&'a [u8], Errno> {
    // SAFETY: the kernel writes at most buf.len() bytes into buf.
    let n = ret(unsafe {
        syscall3(
            nr::READLINK,
            path.ptr(),
            buf.as_mut_ptr() as usize,
            buf.len(),
        )
    })?;
    Ok(&buf[..n])
}

/// The descriptor numbers `/proc/self/fd` lists (below 64), as a bit set.
fn listed_fds(dir: &Fd) -> Result<u64, Msg> {
    let mut buf = [0u8; 4096];
    let mut fds = 0u64;
    let mut dots = 0;
    loop {
        // SAFETY: the kernel writes at most buf.len() bytes.
        let n = ret(unsafe {
            syscall3(
                nr::GETDENTS64,
                dir.raw() as usize,
                buf.as_mut_ptr() as usize,
                buf.len(),
            )
        })
        .ctx("getdents64 /proc/self/fd")?;
        if n == 0 {
            break;
        }
        let mut at = 0;
        while at < n {
            let reclen = u16::from_le_bytes([buf[at + 16], buf[at + 17]]) as usize;
            let kind = buf[at + 18];
            let name = c_field(&buf[at + 19..at + reclen]);
            at += reclen;
            if name == b"." || name == b".." {
                ensure!(kind == 4, "d_type of {}: {kind}", Bytes(name));
                dots += 1;
                continue;
            }
            ensure!(kind == 10, "d_type of fd {}: {kind}, expected DT_LNK", Bytes(name));
            let fd: u64 = core::str::from_utf8(name)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| msg!("entry {} is no number", Bytes(name)))?;
            if fd < 64 {
                fds |= 1 << fd;
            }
        }
    }
    ensure!(dots == 2, "{dots} dot entries");
    Ok(fds)
}

/// `/proc/self/fd` lists exactly the open descriptors (its own included)
/// as links: to the file's absolute path (" (deleted)" once unlinked),
/// `pipe:[INO]` with the pipe's inode number; `lstat` sees a link, `stat`
/// the file; opening one opens the file anew (its own offset); a closed
/// descriptor is ENOENT.
fn proc_fd(_: &Ctx) -> Outcome {
    let s = Scratch::new("proc-fd", ["f", "", "", "", "", "", "", ""])?;
    let file = open(s.path("f").c_str(), O_CREAT | O_RDWR, 0o600).map(Fd).ctx("open")?;
    pwrite(&file, b"proc fd", 0).ctx("pwrite")?;
    lseek(&file, 5, SEEK_SET).ctx("lseek")?;
    let (pipe_r, pipe_w) = pipe()?;
    let dir_path = Path::new(format_args!("/proc/self/fd"));
    let dir = open(dir_path.c_str(), O_RDONLY | O_DIRECTORY, 0).map(Fd).ctx("open /proc/self/fd")?;
    ensure!(fstat(&dir).ctx("fstat")?.mode & S_IFMT == 0o040000, "the fd directory's mode");
    let listed = listed_fds(&dir)?;
    let open_fds = (0..64u64).filter(|&fd| fcntl(fd as i32, F_GETFD, 0).is_ok());
    let expected = open_fds.fold(0u64, |set, fd| set | 1 << fd);
    ensure!(listed == expected, "listed fds {listed:#b}, open {expected:#b}");
    for fd in [file.raw(), pipe_r.raw(), pipe_w.raw(), dir.raw()] {
        ensure!(listed & 1 << fd != 0, "fd {fd} not listed");
    }
    let link = |fd: i32| Path::new(format_args!("/proc/self/fd/{fd}"));
    let mut buf = [0u8; 256];
    let target = readlink_into(&link(file.raw()), &mut buf).ctx("readlink file")?;
    let want = s.path("f");
    ensure!(target == want.bytes(), "file link {}, expected {}", Bytes(target), Bytes(want.bytes()));
    let pipe_ino = fstat(&pipe_r).ctx("fstat pipe")?.ino;
    let target = readlink_into(&link(pipe_w.raw()), &mut buf).ctx("readlink pipe")?;
    let want = Path::new(format_args!("pipe:[{pipe_ino}]"));
    ensure!(target == want.bytes(), "pipe link {}, expected {}", Bytes(target), Bytes(want.bytes()));
    let lstat = stat_at(&link(file.raw()), AT_SYMLINK_NOFOLLOW).ctx("lstat")?;
    ensure!(lstat.mode & S_IFMT == S_IFLNK, "lstat mode {:o}", lstat.mode);
    ensure!(lstat.mode & 0o777 == 0o700, "an O_RDWR link's mode {:o}", lstat.mode);
    let followed = stat_at(&link(file.raw()), 0).ctx("stat")?;
    let direct = fstat(&file).ctx("fstat")?;
    ensure!(
        followed.mode & S_IFMT == S_IFREG && followed.ino == direct.ino,
        "stat follows to the file"
    );
    let again = open(link(file.raw()).c_str(), O_RDONLY, 0).map(Fd).ctx("open the link")?;
    let mut head = [0u8; 4];
    ensure!(read_full(again.raw(), &mut head)? == 4 && &head == b"proc", "a new offset");
    ensure!(
        lseek(&file, 0, SEEK_CUR) == Ok(5),
        "the first description's offset moved"
    );
    unlink(&s.path("f")).ctx("unlink")?;
    let target = readlink_into(&link(file.raw()), &mut buf).ctx("readlink deleted")?;
    ensure!(target.ends_with(b"/f (deleted)"), "unlinked file link {}", Bytes(target));
    drop(again);
    let closed = again_closed_fd(&file)?;
    expect_err("readlink of a closed fd", readlink_into(&link(closed), &mut buf), Errno::ENOENT)?;
    Ok(())
}

/// A descriptor number that is not open (the lowest above `fd`).
fn again_closed_fd(fd: &Fd) -> Result<i32, Msg> {
    (fd.raw() + 1..1024)
        .find(|&n| fcntl(n, F_GETFD, 0).is_err())
        .ok_or_else(|| msg!("no free descriptor"))
}

/// `/proc/cpuinfo` has a `processor : 0` block; the sysctl files read
/// back a number and lie where Linux has them.
fn proc_cpuinfo_sysctl(_: &Ctx) -> Outcome {
    let mut buf = [0u8; 4096];
    let cpuinfo = read_file("/proc/cpuinfo", &mut buf)?;
    ensure!(cpuinfo.starts_with("processor\t: 0\n"), "cpuinfo starts {:?}", &cpuinfo[..cpuinfo.len().min(40)]);
    ensure!(cpuinfo.contains("\nvendor_id\t: "), "no vendor_id in cpuinfo");
    let mut buf = [0u8; 64];
    let threads = read_file("/proc/sys/kernel/threads-max", &mut buf)?;
    let value = threads.strip_suffix('\n').and_then(|t| t.parse::<u64>().ok());
    ensure!(value.is_some_and(|v| v > 0), "threads-max {threads:?}");
    let st = stat_at(&Path::new(format_args!("/proc/sys/kernel/threads-max")), 0).ctx("stat")?;
    ensure!(st.mode & S_IFMT == S_IFREG, "threads-max mode {:o}", st.mode);
    Ok(())
}

/// Which of `wanted` (name, `d_type`) the directory at `path` lists, as
/// a bit set (bit i: `wanted[i]`).
fn dir_lists(path: &Path, wanted: &[(&[u8], u8)]) -> Result<u64, Msg> {
    let dir = open(path.c_str(), O_RDONLY | O_DIRECTORY, 0).map(Fd).ctx("open the directory")?;
    let mut found = 0u64;
    let mut buf = [0u8; 4096];
    loop {
        // SAFETY: the kernel writes at most buf.len() bytes.
        let n = ret(unsafe {
            syscall3(
                nr::GETDENTS64,
                dir.raw() as usize,
                buf.as_mut_ptr() as usize,
                buf.len(),
            )
        })
        .ctx("getdents64")?;
        if n == 0 {
            break;
        }
        let mut at = 0;
        while at < n {
            let reclen = u16::from_le_bytes([buf[at + 16], buf[at + 17]]) as usize;
            let name = c_field(&buf[at + 19..at + reclen]);
            for (i, &(want, kind)) in wanted.iter().enumerate() {
                if name == want && buf[at + 18] == kind {
                    found |= 1 << i;
                }
            }
            at += reclen;
        }
    }
    Ok(found)
}

/// `/proc` lists `self`, `meminfo`, `cpuinfo` and this process's
/// directory; `/proc/self` is a link to the pid (`lstat`), a directory
/// (`stat`) listing `stat`, `status`, `cmdline`, `exe` and `fd`.
fn proc_dirs(_: &Ctx) -> Outcome {
    let pid = getpid();
    let own = Path::new(format_args!("{pid}"));
    let wanted: [(&[u8], u8); 4] = [
        (own.bytes(), 4),
        (b"self", 10),
        (b"meminfo", 8),
        (b"cpuinfo", 8),
    ];
    let found = dir_lists(&Path::new(format_args!("/proc")), &wanted)?;
    ensure!(found == 0b1111, "/proc lists {found:#b} of (own pid, self, meminfo, cpuinfo)");
    let mut buf = [0u8; 32];
    let link = readlink_into(&Path::new(format_args!("/proc/self")), &mut buf).ctx("readlink")?;
    ensure!(link == own.bytes(), "/proc/self links to {}", Bytes(link));
    let self_path = Path::new(format_args!("/proc/self"));
    let lstat = stat_at(&self_path, AT_SYMLINK_NOFOLLOW).ctx("lstat /proc/self")?;
    ensure!(lstat.mode & S_IFMT == S_IFLNK, "lstat /proc/self: mode {:o}", lstat.mode);
    let stat = stat_at(&self_path, 0).ctx("stat /proc/self")?;
    ensure!(stat.mode & S_IFMT == 0o040000, "stat /proc/self: mode {:o}", stat.mode);
    let wanted: [(&[u8], u8); 5] = [
        (b"stat", 8),
        (b"status", 8),
        (b"cmdline", 8),
        (b"exe", 10),
        (b"fd", 4),
    ];
    let found = dir_lists(&Path::new(format_args!("/proc/{pid}")), &wanted)?;
    ensure!(found == 0b11111, "/proc/{pid} lists {found:#b} of (stat, status, cmdline, exe, fd)");
    Ok(())
}

/// `/proc` lists `sys`, a directory listing `kernel`, a directory listing
/// the `threads-max` file; a name under `/proc/sys` that is no sysctl or
/// directory of them does not exist.
fn proc_sys_dirs(_: &Ctx) -> Outcome {
    let found = dir_lists(&Path::new(format_args!("/proc")), &[(b"sys", 4)])?;
    ensure!(found == 1, "/proc does not list the directory sys");
    let found = dir_lists(&Path::new(format_args!("/proc/sys")), &[(b"kernel", 4)])?;
    ensure!(found == 1, "/proc/sys does not list the directory kernel");
    let kernel = Path::new(format_args!("/proc/sys/kernel"));
    let found = dir_lists(&kernel, &[(b"threads-max", 8)])?;
    ensure!(found == 1, "/proc/sys/kernel does not list the file threads-max");
    for path in ["/proc/sys", "/proc/sys/kernel"] {
        let st = stat_at(&Path::new(format_args!("{path}")), 0).ctx(path)?;
        ensure!(st.mode & S_IFMT == 0o040000, "{path}: mode {:o}", st.mode);
    }
    expect_err(
        "threads-max with O_DIRECTORY",
        open(Path::new(format_args!("/proc/sys/kernel/threads-max")).c_str(), O_RDONLY | O_DIRECTORY, 0).map(Fd),
        Errno::ENOTDIR,
    )?;
    for path in ["/proc/sys/no-such-dir", "/proc/sys/kernel/no-such-sysctl"] {
        expect_err(path, open(Path::new(format_args!("{path}")).c_str(), O_RDONLY, 0).map(Fd), Errno::ENOENT)?;
    }
    Ok(())
}

/// `open(O_CREAT)` of a dangling symbolic link creates its target (also
/// through a chain of links), with O_EXCL it is EEXIST (nothing made),
/// with O_NOFOLLOW ELOOP; a target in a missing directory is ENOENT, one
/// ending in a slash EISDIR. An existing target is opened.
fn creat_through_symlink(_: &Ctx) -> Outcome {
    let s = Scratch::new(
        "creat-link",
        ["link", "target", "chain", "chain2", "target2", "excl", "nofollow", "exists"],
    )?;
    let t = Scratch::new("creat-link-errors", ["nodir", "slash", "", "", "", "", "", ""])?;
    let symlink = |target: &str, at: &Path| -> Outcome {
        let target = Path::new(format_args!("{target}"));
        // SAFETY: NUL-terminated paths.
        ret(unsafe { syscall2(nr::SYMLINK, target.ptr(), at.ptr()) }).ctx("symlink")?;
        Ok(())
    };
    symlink("target", &s.path("link"))?;
    let fd = open(s.path("link").c_str(), O_CREAT | O_WRONLY, 0o600).map(Fd).ctx("O_CREAT through the link")?;
    write_all(fd.raw(), b"made").ctx("write")?;
    drop(fd);
    let made = stat_at(&s.path("target"), AT_SYMLINK_NOFOLLOW).ctx("stat the target")?;
    ensure!(made.mode & S_IFMT == S_IFREG && made.size == 4, "the target: {made:?}");
    let link = stat_at(&s.path("link"), AT_SYMLINK_NOFOLLOW).ctx("lstat the link")?;
    ensure!(link.mode & S_IFMT == S_IFLNK, "the link is no longer one: {link:?}");
    // A chain: chain -> chain2 -> target2 (absolute).
    let target2 = s.path("target2");
    symlink(core::str::from_utf8(target2.bytes()).unwrap_or("/"), &s.path("chain2"))?;
    symlink("chain2", &s.path("chain"))?;
    open(s.path("chain").c_str(), O_CREAT | O_RDWR, 0o600).map(Fd).ctx("O_CREAT through a chain")?;
    stat_at(&target2, AT_SYMLINK_NOFOLLOW).ctx("stat the chain's target")?;
    // O_EXCL: the link itself exists.
    symlink("excl-target", &s.path("excl"))?;
    expect_err(
        "O_CREAT | O_EXCL of a dangling link",
        open(s.path("excl").c_str(), O_CREAT | O_EXCL | O_WRONLY, 0o600).map(Fd),
        Errno::EEXIST,
    )?;
    expect_err(
        "the O_EXCL link's target",
        stat_at(&s.path("excl-target"), AT_SYMLINK_NOFOLLOW),
        Errno::ENOENT,
    )?;
    symlink("nofollow-target", &s.path("nofollow"))?;
    expect_err(
        "O_CREAT | O_NOFOLLOW of a dangling link",
        open(s.path("nofollow").c_str(), O_CREAT | O_NOFOLLOW | O_WRONLY, 0o600).map(Fd),
        Errno::ELOOP,
    )?;
    // An existing target is opened, not truncated.
    symlink("target", &s.path("exists"))?;
    let fd = open(s.path("exists").c_str(), O_CREAT | O_RDONLY, 0o600).map(Fd).ctx("O_CREAT of a live link")?;
    ensure!(fstat(&fd).ctx("fstat")?.size == 4, "the live link's target changed");
    symlink("missing-dir/file", &t.path("nodir"))?;
    expect_err(
        "a target in a missing directory",
        open(t.path("nodir").c_str(), O_CREAT | O_WRONLY, 0o600).map(Fd),
        Errno::ENOENT,
    )?;
    symlink("newdir/", &t.path("slash"))?;
    expect_err(
        "a target ending in a slash",
        open(t.path("slash").c_str(), O_CREAT | O_WRONLY, 0o600).map(Fd),
        Errno::EISDIR,
    )?;
    Ok(())
}

/// A time as `stat` reports it: seconds and nanoseconds.
type Ts = (i64, u64);

/// The three times of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FileTimes {
    atime: Ts,
    mtime: Ts,
    ctime: Ts,
}

/// The times `stat` (lstat) gives.
fn times_at(path: &Path) -> Result<FileTimes, Msg> {
    let mut raw = [0u8; 144];
    // SAFETY: the kernel writes one struct stat (144 bytes) into raw; the
    // path is NUL-terminated.
    ret(unsafe {
        syscall4(
            nr::NEWFSTATAT,
            AT_FDCWD as usize,
            path.ptr(),
            raw.as_mut_ptr() as usize,
            AT_SYMLINK_NOFOLLOW as usize,
        )
    })
    .ctx("stat")?;
    let ts = |at: usize| {
        let sec = i64::from_le_bytes(raw[at..at + 8].try_into().unwrap_or([0; 8]));
        let nsec = u64::from_le_bytes(raw[at + 8..at + 16].try_into().unwrap_or([0; 8]));
        (sec, nsec)
    };
    Ok(FileTimes {
        atime: ts(72),
        mtime: ts(88),
        ctime: ts(104),
    })
}

/// The times `statx` gives (`struct statx_timestamp`: a 64-bit second
/// and a 32-bit nanosecond count).
fn statx_times(path: &Path) -> Result<FileTimes, Msg> {
    const STATX_BASIC_STATS: usize = 0x7ff;
    let mut raw = [0u8; 256];
    // SAFETY: the kernel writes one struct statx (256 bytes) into raw.
    ret(unsafe {
        syscall5(
            nr::STATX,
            AT_FDCWD as usize,
            path.ptr(),
            AT_SYMLINK_NOFOLLOW as usize,
            STATX_BASIC_STATS,
            raw.as_mut_ptr() as usize,
        )
    })
    .ctx("statx")?;
    let ts = |at: usize| {
        let sec = i64::from_le_bytes(raw[at..at + 8].try_into().unwrap_or([0; 8]));
        let nsec = u32::from_le_bytes(raw[at + 8..at + 12].try_into().unwrap_or([0; 4]));
        (sec, u64::from(nsec))
    };
    Ok(FileTimes {
        atime: ts(64),
        ctime: ts(96),
        mtime: ts(112),
    })
}

const UTIME_NOW: i64 = (1 << 30) - 1;
const UTIME_OMIT: i64 = (1 << 30) - 2;

/// `utimensat(AT_FDCWD, path, times, 0)`; `None` passes no times.
fn utimensat(path: &Path, times: Option<&[i64; 4]>) -> Result<usize, Errno> {
    let times = times.map_or(0, |t| t.as_ptr() as usize);
    // SAFETY: a NUL-terminated path and two timespecs, or none.
    ret(unsafe { syscall4(nr::UTIMENSAT, AT_FDCWD as usize, path.ptr(), times, 0) })
}

/// Longer than the step of the clock file times take (Linux's coarse
/// clock moves a tick at a time: 10 ms at HZ=100), so a later change
/// gets a later time.
const TICK_NS: u64 = 25_000_000;

/// File times with Linux's rules, compared with each other, never with
/// the clock: a new file's three times agree; creating, renaming, linking,
/// unlinking and removing move the directory's mtime and ctime together;
/// a write and a truncation the file's; chmod, rename, link and unlink
/// only its ctime; `stat` and `statx` agree; explicit `utimensat` times
/// read back exactly, UTIME_OMIT keeps one, no times set all three to now.
fn file_times(_: &Ctx) -> Outcome {
    let s = Scratch::new("times", ["f", "g", "h", "d", "", "", "", ""])?;
    let (f, g, h, d) = (s.path("f"), s.path("g"), s.path("h"), s.path("d"));
    let dir = &s.dir;
    let step = || sleep_ns(TICK_NS);
    // Checks that the directory's mtime moved on, with its ctime.
    let dir_moved = |before: FileTimes, what: &str| -> Result<FileTimes, Msg> {
        let after = times_at(dir)?;
        ensure!(
            after.mtime > before.mtime && after.ctime == after.mtime,
            "{what} changes the directory's mtime and ctime: {before:?} -> {after:?}"
        );
        Ok(after)
    };
    let d0 = times_at(dir)?;
    step();
    let fd = open(f.c_str(), O_CREAT | O_RDWR, 0o644).map(Fd).ctx("create")?;
    let f0 = times_at(&f)?;
    ensure!(
        f0.atime == f0.mtime && f0.mtime == f0.ctime,
        "a new file's times agree: {f0:?}"
    );
    let d1 = dir_moved(d0, "creating a file")?;
    ensure!(statx_times(&f)? == f0, "statx gives what stat gives");
    step();
    write(fd.raw(), b"data").ctx("write")?;
    let f1 = times_at(&f)?;
    ensure!(
        f1.mtime > f0.mtime && f1.ctime == f1.mtime && f1.atime == f0.atime,
        "a write changes mtime and ctime only: {f0:?} -> {f1:?}"
    );
    ensure!(times_at(dir)? == d1, "a write leaves the directory alone");
    step();
    // SAFETY: NUL-terminated path.
    ret(unsafe { syscall2(nr::CHMOD, f.ptr(), 0o600) }).ctx("chmod")?;
    let f2 = times_at(&f)?;
    ensure!(
        f2.ctime > f1.ctime && (f2.atime, f2.mtime) == (f1.atime, f1.mtime),
        "chmod changes ctime only: {f1:?} -> {f2:?}"
    );
    step();
    ftruncate(&fd, 2).ctx("ftruncate")?;
    let f3 = times_at(&f)?;
    ensure!(
        f3.mtime > f2.mtime && f3.ctime == f3.mtime,
        "a truncation changes mtime and ctime: {f2:?} -> {f3:?}"
    );
    step();
    utimensat(&f, Some(&[1000, 123_456_789, 2000, 987_654_321])).ctx("utimensat")?;
    let f4 = times_at(&f)?;
    ensure!(
        f4.atime == (1000, 123_456_789) && f4.mtime == (2000, 987_654_321) && f4.ctime > f3.ctime,
        "explicit times read back, ctime moves on: {f3:?} -> {f4:?}"
    );
    ensure!(statx_times(&f)? == f4, "statx gives what stat gives");
    utimensat(&f, Some(&[0, UTIME_OMIT, 3000, 5])).ctx("utimensat, atime omitted")?;
    let f5 = times_at(&f)?;
    ensure!(
        f5.atime == f4.atime && f5.mtime == (3000, 5),
        "UTIME_OMIT keeps the access time: {f4:?} -> {f5:?}"
    );
    utimensat(&f, Some(&[4000, 6, 0, UTIME_OMIT])).ctx("utimensat, mtime omitted")?;
    let f6 = times_at(&f)?;
    ensure!(
        f6.atime == (4000, 6) && f6.mtime == f5.mtime,
        "UTIME_OMIT keeps the modification time: {f5:?} -> {f6:?}"
    );
    step();
    utimensat(&f, None).ctx("utimensat(NULL)")?;
    let f7 = times_at(&f)?;
    ensure!(
        f7.atime == f7.mtime && f7.mtime == f7.ctime && f7.ctime > f6.ctime,
        "no times set all three to now: {f6:?} -> {f7:?}"
    );
    step();
    utimensat(&f, Some(&[0, UTIME_NOW, 0, UTIME_OMIT])).ctx("utimensat(NOW, OMIT)")?;
    let f8 = times_at(&f)?;
    ensure!(
        f8.atime > f7.atime && f8.mtime == f7.mtime && f8.ctime == f8.atime,
        "UTIME_NOW for the access time only: {f7:?} -> {f8:?}"
    );
    // The directory: rename, link, unlink, mkdir, rmdir.
    step();
    // SAFETY (each call below): NUL-terminated paths.
    ret(unsafe { syscall5(nr::RENAMEAT2, AT_FDCWD as usize, f.ptr(), AT_FDCWD as usize, g.ptr(), 0) })
        .ctx("rename")?;
    let d2 = dir_moved(d1, "a rename")?;
    let g0 = times_at(&g)?;
    ensure!(
        g0.ctime > f8.ctime && g0.mtime == f8.mtime,
        "a rename changes the file's ctime only: {f8:?} -> {g0:?}"
    );
    step();
    ret(unsafe { syscall2(nr::LINK, g.ptr(), h.ptr()) }).ctx("link")?;
    let d3 = dir_moved(d2, "a link")?;
    let g1 = times_at(&g)?;
    ensure!(
        g1.ctime > g0.ctime && g1.mtime == g0.mtime,
        "a link changes the file's ctime only: {g0:?} -> {g1:?}"
    );
    step();
    unlink(&h).ctx("unlink")?;
    let d4 = dir_moved(d3, "an unlink")?;
    let g2 = times_at(&g)?;
    ensure!(
        g2.ctime > g1.ctime && g2.mtime == g1.mtime,
        "an unlink changes the remaining link's ctime: {g1:?} -> {g2:?}"
    );
    step();
    ret(unsafe { syscall2(nr::MKDIR, d.ptr(), 0o755) }).ctx("mkdir")?;
    let d5 = dir_moved(d4, "a mkdir")?;
    let sub = times_at(&d)?;
    ensure!(
        sub.atime == sub.mtime && sub.mtime == sub.ctime,
        "a new directory's times agree: {sub:?}"
    );
    step();
    ret(unsafe { syscall1(nr::RMDIR, d.ptr()) }).ctx("rmdir")?;
    dir_moved(d5, "an rmdir")?;
    Ok(())
}

/// Who may set which times (Linux `may_setattr`, `setattr_prepare`): to
/// now (no times, or both UTIME_NOW), the owner, CAP_FOWNER or anyone
/// with write permission (else EACCES); anything else (an explicit time,
/// or UTIME_NOW beside UTIME_OMIT) only the owner or CAP_FOWNER (EPERM).
/// Both UTIME_OMIT succeed without even looking the path up.
fn utimensat_permissions(_: &Ctx) -> Outcome {
    let s = Scratch::new("utimes-perm", ["open", "closed", "own", "", "", "", "", ""])?;
    let (open_to_all, closed, own) = (s.path("open"), s.path("closed"), s.path("own"));
    for (path, mode) in [(&open_to_all, 0o666), (&closed, 0o644), (&own, 0o000)] {
        open(path.c_str(), O_CREAT | O_WRONLY, 0o600).map(Fd).ctx("create")?;
        // SAFETY: NUL-terminated path.
        ret(unsafe { syscall2(nr::CHMOD, path.ptr(), mode) }).ctx("chmod")?;
    }
    chown(&own, 1000, 1000).ctx("chown")?;
    let missing = s.path("missing");
    let explicit = [10, 0, 20, 0];
    let names = [
        "setgid+setuid(1000)",
        "no times on a file it may write",
        "both UTIME_NOW on a file it may write",
        "UTIME_NOW with UTIME_OMIT on a file it may write is EPERM",
        "explicit times on a file it may write are EPERM",
        "no times on a file it may not write are EACCES",
        "explicit times on a file it may not write are EPERM",
        "both UTIME_OMIT on a missing file succeed",
        "explicit times on its own file, mode 0",
        "its own file's times read back",
    ];
    let child = Child::spawn(|| {
        let user =
            forkvm_user::cred::setgid(1000).is_ok() && forkvm_user::cred::setuid(1000).is_ok();
        let checks = [
            user,
            utimensat(&open_to_all, None).is_ok(),
            utimensat(&open_to_all, Some(&[0, UTIME_NOW, 0, UTIME_NOW])).is_ok(),
            utimensat(&open_to_all, Some(&[0, UTIME_NOW, 0, UTIME_OMIT])) == Err(Errno::EPERM),
            utimensat(&open_to_all, Some(&explicit)) == Err(Errno::EPERM),
            utimensat(&closed, None) == Err(Errno::EACCES),
            utimensat(&closed, Some(&explicit)) == Err(Errno::EPERM),
            utimensat(&missing, Some(&[0, UTIME_OMIT, 0, UTIME_OMIT])).is_ok(),
            utimensat(&own, Some(&explicit)).is_ok(),
            times_at(&own).is_ok_and(|t| t.atime == (10, 0) && t.mtime == (20, 0)),
        ];
        first_failure(&checks)
    })?;
    expect_checks("uid 1000", child, &names)?;
    Ok(())
}

/// `faccessat2(AT_FDCWD, path, mode, flags)`.
fn faccessat2(path: &Path, mode: usize, flags: usize) -> Result<usize, Errno> {
    // SAFETY: the kernel reads the NUL-terminated path.
    ret(unsafe { syscall4(nr::FACCESSAT2, AT_FDCWD as usize, path.ptr(), mode, flags) })
}

/// `setresuid(ruid, euid, suid)`.
fn setresuid(ruid: u32, euid: u32, suid: u32) -> Result<usize, Errno> {
    // SAFETY: no memory is passed.
    ret(unsafe { syscall3(nr::SETRESUID, ruid as usize, euid as usize, suid as usize) })
}

/// `faccessat2` checks with the real ids, or with AT_EACCESS the
/// effective ones (Linux `access_override_creds`): a real root keeps its
/// permitted capabilities for the check even while its effective uid (and
/// so its effective capabilities) is another user's, and a real user has
/// none even while its effective uid is root's.
fn faccessat2_eaccess(_: &Ctx) -> Outcome {
    const R_OK: usize = 4;
    const W_OK: usize = 2;
    const AT_EACCESS: usize = 0x200;
    let s = Scratch::new("eaccess", ["theirs", "mine", "", "", "", "", "", ""])?;
    let (theirs, mine) = (s.path("theirs"), s.path("mine"));
    for (path, owner, mode) in [(&theirs, 2000, 0o600), (&mine, 1000, 0o400)] {
        open(path.c_str(), O_CREAT | O_WRONLY, 0o600).map(Fd).ctx("create")?;
        chown(path, owner, owner).ctx("chown")?;
        // SAFETY: NUL-terminated path.
        ret(unsafe { syscall2(nr::CHMOD, path.ptr(), mode) }).ctx("chmod")?;
    }
    let run = |what: &str,
               ids: (u32, u32),
               checks: &dyn Fn() -> [bool; 4],
               names: [&str; 4]|
     -> Outcome {
        let child = Child::spawn(|| {
            if setresuid(ids.0, ids.1, 0).is_err() {
                return 1;
            }
            match first_failure(&checks()) {
                0 => 0,
                n => n + 1,
            }
        })?;
        let [a, b, c, d] = names;
        expect_checks(what, child, &["setresuid", a, b, c, d])?;
        Ok(())
    };
    run(
        "real root, effective uid 1000",
        (0, 1000),
        &|| {
            [
                faccessat2(&theirs, R_OK, 0).is_ok(),
                faccessat2(&theirs, R_OK, AT_EACCESS) == Err(Errno::EACCES),
                faccessat2(&mine, W_OK, 0).is_ok(),
                faccessat2(&mine, W_OK, AT_EACCESS) == Err(Errno::EACCES),
            ]
        },
        [
            "the real root may read another user's 0600 file",
            "uid 1000 may not read it (AT_EACCESS)",
            "the real root may write a 0400 file",
            "its owner may not write it (AT_EACCESS)",
        ],
    )?;
    run(
        "real uid 1000, effective root",
        (1000, 0),
        &|| {
            [
                faccessat2(&theirs, R_OK, 0) == Err(Errno::EACCES),
                faccessat2(&theirs, R_OK, AT_EACCESS).is_ok(),
                faccessat2(&mine, R_OK, 0).is_ok() && faccessat2(&mine, W_OK, 0) == Err(Errno::EACCES),
                faccessat2(&mine, W_OK, AT_EACCESS).is_ok(),
            ]
        },
        [
            "the real uid 1000 may not read another user's 0600 file",
            "the effective root may (AT_EACCESS)",
            "the real owner may read, not write, its 0400 file",
            "the effective root may write it (AT_EACCESS)",
        ],
    )
}
