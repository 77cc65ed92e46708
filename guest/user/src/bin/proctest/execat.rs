//! `execveat`: a program named relative to a directory descriptor, by an
//! absolute path or from the cwd (AT_FDCWD), or a descriptor's own file
//! (AT_EMPTY_PATH, an O_PATH descriptor too); AT_SYMLINK_NOFOLLOW; the
//! errno of bad flags and descriptors; and the name a script gets for a
//! program run through a descriptor (`/dev/fd/N`, ENOENT when that
//! descriptor is close-on-exec).
//!
//! The program run is this one (`/proc/self/exe`) with the `exit-42`
//! helper, or [`EXEC_REPORT`], which tells the scenario its arguments and
//! name. Every exec happens in a child, whose exit status is 42 (or the
//! report's 0) on success and the errno otherwise. Scripts and links live
//! in `/tmp/proctest-execat-PID`, removed at the end.

use forkvm_user::syscall::{execveat, syscall1, AT_FDCWD};

use super::*;

pub const SCENARIOS: &[(&str, Scenario)] = &[
    ("execveat-dirfd-paths", dirfd_paths),
    ("execveat-empty-path", empty_path),
    ("execveat-errors", errors),
    ("execveat-symlink-nofollow", symlink_nofollow),
    ("execveat-script-dev-fd", script_dev_fd),
];

/// The helper that writes to descriptor 9 the arguments after its own
/// name, each ending in a NUL, then `comm=` and its name from
/// `/proc/self/status`; exits 0.
pub const EXEC_REPORT: &CStr = c"exec-report-fd9";

const OPENAT: usize = 257;
const READLINK: usize = 89;
const SYMLINK: usize = 88;
const MKDIR: usize = 83;
const RMDIR: usize = 84;
const UNLINK: usize = 87;
const FCHMOD: usize = 91;
const FCHDIR: usize = 81;
const O_RDONLY: usize = 0;
const O_WRONLY: usize = 1;
const O_CREAT: usize = 0o100;
const O_TRUNC: usize = 0o1000;
const O_DIRECTORY: usize = 0o200000;
const O_NOFOLLOW: usize = 0o400000;
const O_CLOEXEC: usize = 0o2000000;
const O_PATH: usize = 0o10000000;
const AT_SYMLINK_NOFOLLOW: usize = 0x100;
const AT_EMPTY_PATH: usize = 0x1000;
const F_DUPFD: usize = 0;
const F_DUPFD_CLOEXEC: usize = 1030;

/// What [`EXEC_REPORT`] does (called from `main` with the whole argv).
pub fn exec_report(args: &[&[u8]]) -> i32 {
    let mut out = [0u8; 512];
    let mut len = 0;
    let mut put = |bytes: &[u8]| {
        let n = bytes.len().min(out.len() - len);
        out[len..len + n].copy_from_slice(&bytes[..n]);
        len += n;
    };
    for arg in args.iter().skip(2) {
        put(arg);
        put(b"\0");
    }
    put(b"comm=");
    let mut status = [0u8; 256];
    let Ok(fd) = open_at(AT_FDCWD, c"/proc/self/status", O_RDONLY) else {
        return 3;
    };
    let n = read_full(fd.raw(), &mut status).unwrap_or(0);
    let name = status[..n]
        .strip_prefix(b"Name:\t")
        .and_then(|rest| rest.split(|&b| b == b'\n').next())
        .unwrap_or(b"?");
    put(name);
    i32::from(write_all(9, &out[..len]).is_err())
}

/// A NUL-terminated string of up to 255 bytes.
struct CPath {
    len: usize,
    buf: [u8; 256],
}

impl CPath {
    fn new(args: fmt::Arguments) -> CPath {
        let mut path = CPath {
            len: 0,
            buf: [0; 256],
        };
        let _ = path.write_fmt(args);
        path
    }

    fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    fn c(&self) -> &CStr {
        CStr::from_bytes_until_nul(&self.buf).unwrap_or(c"")
    }
}

impl Write for CPath {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let n = s.len().min(self.buf.len() - 1 - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

fn ret(r: isize) -> Result<usize, Errno> {
    forkvm_user::syscall::check(r)
}

fn open_at(dirfd: i32, path: &CStr, flags: usize) -> Result<Fd, Errno> {
    // SAFETY: the kernel reads the NUL-terminated path.
    ret(unsafe {
        syscall4(
            OPENAT,
            dirfd as isize as usize,
            path.as_ptr() as usize,
            flags,
            0o600,
        )
    })
    .map(|fd| Fd(fd as i32))
}

/// This program's absolute path (`/proc/self/exe`).
fn own_path() -> Result<CPath, Msg> {
    let mut path = CPath::new(format_args!(""));
    // SAFETY: the kernel writes at most 255 bytes into the buffer.
    let n = ret(unsafe {
        syscall3(
            READLINK,
            c"/proc/self/exe".as_ptr() as usize,
            path.buf.as_mut_ptr() as usize,
            path.buf.len() - 1,
        )
    })
    .ctx("readlink /proc/self/exe")?;
    path.len = n;
    ensure!(path.bytes().first() == Some(&b'/'), "/proc/self/exe is {}", Bytes(path.bytes()));
    Ok(path)
}

/// `path` split at its last slash: (directory, name).
fn split(path: &CPath) -> (CPath, CPath) {
    let bytes = path.bytes();
    let at = bytes.iter().rposition(|&b| b == b'/').unwrap_or(0);
    let dir = if at == 0 { &b"/"[..] } else { &bytes[..at] };
    (
        CPath::new(format_args!("{}", Bytes(dir))),
        CPath::new(format_args!("{}", Bytes(&bytes[at + 1..]))),
    )
}

/// Runs `execveat(dirfd, path, [path, helper], [], flags)` in a child;
/// its exit status: 42 from `exit-42`, else the errno.
fn try_exec(dirfd: i32, path: &CStr, flags: usize) -> Result<i32, Msg> {
    let child = Child::spawn(|| {
        let argv = [path.as_ptr().cast(), c"exit-42".as_ptr().cast(), core::ptr::null()];
        let envp = [core::ptr::null()];
        execveat(dirfd, path, &argv, &envp, flags).0
    })?;
    let status = child.wait()?;
    ensure!(status.exited(), "execveat child: {}", Status(status));
    Ok(status.exit_status())
}

/// Checks that `execveat(dirfd, path, flags)` ran the program (`None`) or
/// failed with the errno given.
fn expect(what: &str, dirfd: i32, path: &CStr, flags: usize, want: Option<Errno>) -> Outcome {
    let got = try_exec(dirfd, path, flags)?;
    let want_code = want.map_or(42, |e| e.0);
    ensure!(
        got == want_code,
        "{what}: expected {}, got {}",
        Ret(if want_code == 42 { 0 } else { -want_code as isize }),
        if got == 42 { Ret(0) } else { Ret(-got as isize) }
    );
    Ok(())
}

/// A directory descriptor and a name in it, AT_FDCWD with an absolute
/// path or a path relative to the cwd; an absolute path ignores the
/// descriptor, even a closed one.
fn dirfd_paths(_: &Ctx) -> Outcome {
    let exe = own_path()?;
    let (dir, name) = split(&exe);
    let dirfd = open_at(AT_FDCWD, dir.c(), O_RDONLY | O_DIRECTORY).ctx("open the directory")?;
    expect("dirfd + name", dirfd.raw(), name.c(), 0, None)?;
    let opath = open_at(AT_FDCWD, dir.c(), O_PATH | O_DIRECTORY).ctx("open O_PATH")?;
    expect("O_PATH dirfd + name", opath.raw(), name.c(), 0, None)?;
    expect("AT_FDCWD + absolute path", AT_FDCWD, exe.c(), 0, None)?;
    let closed = again_closed(&opath)?;
    expect("closed dirfd + absolute path", closed, exe.c(), 0, None)?;
    let file = open_at(AT_FDCWD, exe.c(), O_RDONLY).ctx("open the program")?;
    expect("file dirfd + absolute path", file.raw(), exe.c(), 0, None)?;
    // Relative to the cwd: the child moves there first.
    let child = Child::spawn(|| {
        // SAFETY: no memory is passed.
        if ret(unsafe { syscall1(FCHDIR, dirfd.raw() as usize) }).is_err() {
            return 90;
        }
        let argv = [name.buf.as_ptr(), c"exit-42".as_ptr().cast(), core::ptr::null()];
        execveat(AT_FDCWD, name.c(), &argv, &[core::ptr::null()], 0).0
    })?;
    expect_exit("AT_FDCWD + a name in the cwd", child.wait()?, 42)
}

/// A descriptor number that is not open (the lowest above `fd`).
fn again_closed(fd: &Fd) -> Result<i32, Msg> {
    const F_GETFD: usize = 1;
    (fd.raw() + 1..1024)
        .find(|&n| fcntl(n, F_GETFD, 0).is_err())
        .ok_or_else(|| msg!("no free descriptor"))
}

/// AT_EMPTY_PATH runs the descriptor's own file, opened for reading,
/// O_PATH, or close-on-exec (an ELF program does not need its name
/// again); the new program is named after the file.
fn empty_path(_: &Ctx) -> Outcome {
    let exe = own_path()?;
    for (what, flags) in [
        ("O_RDONLY", O_RDONLY),
        ("O_PATH", O_PATH),
        ("O_RDONLY | O_CLOEXEC", O_RDONLY | O_CLOEXEC),
        ("O_PATH | O_CLOEXEC", O_PATH | O_CLOEXEC),
    ] {
        let fd = open_at(AT_FDCWD, exe.c(), flags).ctx(what)?;
        expect(what, fd.raw(), c"", AT_EMPTY_PATH, None)?;
    }
    // What the program sees: its arguments and its name.
    let fd = open_at(AT_FDCWD, exe.c(), O_RDONLY).ctx("open")?;
    let report = run_report(fd.raw(), c"", AT_EMPTY_PATH, false)?;
    ensure!(
        report.bytes() == b"arg\0comm=proctest",
        "the program reports [{}]",
        Bytes(report.bytes())
    );
    Ok(())
}

/// Runs `execveat(dirfd, path, [path, EXEC_REPORT, "arg"], [], flags)` in
/// a child with a pipe as descriptor 9 (for a `script` that names the
/// helper itself, `[path, "arg"]`); returns what the report wrote (or
/// `errno=N` if the exec failed).
fn run_report(dirfd: i32, path: &CStr, flags: usize, script: bool) -> Result<CPath, Msg> {
    let (r, w) = pipe()?;
    let child = Child::spawn(|| {
        if dup2(w.raw(), 9).is_err() {
            return 91;
        }
        let arg: *const u8 = c"arg".as_ptr().cast();
        let argv = if script {
            [path.as_ptr().cast(), arg, core::ptr::null(), core::ptr::null()]
        } else {
            [path.as_ptr().cast(), EXEC_REPORT.as_ptr().cast(), arg, core::ptr::null()]
        };
        let argv = if script { &argv[..3] } else { &argv[..] };
        execveat(dirfd, path, argv, &[core::ptr::null()], flags).0
    })?;
    drop(w);
    let mut out = CPath::new(format_args!(""));
    let n = read_full(r.raw(), &mut out.buf[..255])?;
    out.len = n;
    let status = child.wait()?;
    ensure!(status.exited(), "report child: {}", Status(status));
    match status.exit_status() {
        0 => Ok(out),
        code => Ok(CPath::new(format_args!("errno={code}"))),
    }
}

/// Linux's errno: flags other than AT_EMPTY_PATH and AT_SYMLINK_NOFOLLOW
/// (EINVAL), an empty path without AT_EMPTY_PATH (ENOENT), a closed
/// descriptor with a relative path (EBADF), one that is no directory
/// (ENOTDIR), and AT_EMPTY_PATH on a directory, the cwd or a pipe
/// (EACCES).
fn errors(_: &Ctx) -> Outcome {
    let exe = own_path()?;
    let (dir, name) = split(&exe);
    let dirfd = open_at(AT_FDCWD, dir.c(), O_RDONLY | O_DIRECTORY).ctx("open the directory")?;
    let file = open_at(AT_FDCWD, exe.c(), O_RDONLY).ctx("open the program")?;
    let (r, w) = pipe()?;
    let closed = again_closed(&w)?;
    expect("flags 1", dirfd.raw(), name.c(), 1, Some(Errno::EINVAL))?;
    expect("AT_EACCESS", AT_FDCWD, exe.c(), 0x200, Some(Errno::EINVAL))?;
    expect("AT_SYMLINK_FOLLOW", AT_FDCWD, exe.c(), 0x400, Some(Errno::EINVAL))?;
    expect("empty path", file.raw(), c"", 0, Some(Errno::ENOENT))?;
    expect("closed dirfd", closed, name.c(), 0, Some(Errno::EBADF))?;
    expect("closed fd, AT_EMPTY_PATH", closed, c"", AT_EMPTY_PATH, Some(Errno::EBADF))?;
    expect("file as dirfd", file.raw(), name.c(), 0, Some(Errno::ENOTDIR))?;
    expect("pipe as dirfd", r.raw(), name.c(), 0, Some(Errno::ENOTDIR))?;
    expect("directory fd, AT_EMPTY_PATH", dirfd.raw(), c"", AT_EMPTY_PATH, Some(Errno::EACCES))?;
    expect("AT_FDCWD, AT_EMPTY_PATH", AT_FDCWD, c"", AT_EMPTY_PATH, Some(Errno::EACCES))?;
    expect("pipe, AT_EMPTY_PATH", r.raw(), c"", AT_EMPTY_PATH, Some(Errno::EACCES))?;
    expect("dirfd + a missing name", dirfd.raw(), c"no-such-program", 0, Some(Errno::ENOENT))?;
    Ok(())
}

/// This scenario's directory and the names in it, removed when dropped.
struct Scratch {
    dir: CPath,
    names: [&'static str; 3],
}

impl Scratch {
    fn new(names: [&'static str; 3]) -> Result<Scratch, Msg> {
        let dir = CPath::new(format_args!("/tmp/proctest-execat-{}", getpid()));
        // SAFETY: NUL-terminated path.
        ret(unsafe { syscall2(MKDIR, dir.buf.as_ptr() as usize, 0o755) }).ctx("mkdir")?;
        Ok(Scratch { dir, names })
    }

    fn path(&self, name: &str) -> CPath {
        CPath::new(format_args!("{}/{name}", Bytes(self.dir.bytes())))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        for name in self.names {
            // SAFETY: NUL-terminated path.
            unsafe { syscall1(UNLINK, self.path(name).buf.as_ptr() as usize) };
        }
        // SAFETY: NUL-terminated path.
        unsafe { syscall1(RMDIR, self.dir.buf.as_ptr() as usize) };
    }
}

/// A symbolic link to this program runs it, but not with
/// AT_SYMLINK_NOFOLLOW (ELOOP), by path or relative to a directory, nor
/// as an O_PATH | O_NOFOLLOW descriptor of the link itself.
fn symlink_nofollow(_: &Ctx) -> Outcome {
    let exe = own_path()?;
    let s = Scratch::new(["link", "", ""])?;
    let link = s.path("link");
    // SAFETY: NUL-terminated paths.
    ret(unsafe { syscall2(SYMLINK, exe.buf.as_ptr() as usize, link.buf.as_ptr() as usize) })
        .ctx("symlink")?;
    let dirfd = open_at(AT_FDCWD, s.dir.c(), O_RDONLY | O_DIRECTORY).ctx("open the directory")?;
    expect("the link", AT_FDCWD, link.c(), 0, None)?;
    expect("the link in dirfd", dirfd.raw(), c"link", 0, None)?;
    let nofollow = AT_SYMLINK_NOFOLLOW;
    expect("the link, NOFOLLOW", AT_FDCWD, link.c(), nofollow, Some(Errno::ELOOP))?;
    expect("dirfd link, NOFOLLOW", dirfd.raw(), c"link", nofollow, Some(Errno::ELOOP))?;
    expect("NOFOLLOW of no link", AT_FDCWD, exe.c(), nofollow, None)?;
    let fd = open_at(AT_FDCWD, link.c(), O_PATH | O_NOFOLLOW).ctx("open the link O_PATH")?;
    expect("the link's O_PATH fd", fd.raw(), c"", AT_EMPTY_PATH, Some(Errno::ELOOP))?;
    Ok(())
}

/// A `#!` script run through a descriptor gets `/dev/fd/N` (or
/// `/dev/fd/N/NAME` relative to a directory descriptor) as its name,
/// after the interpreter's argument; if that descriptor is close-on-exec
/// the exec fails with ENOENT (the interpreter could not open the name).
/// The new program's name is the interpreter's file (AT_EMPTY_PATH) or
/// the script's name.
fn script_dev_fd(_: &Ctx) -> Outcome {
    let exe = own_path()?;
    let s = Scratch::new(["script", "", ""])?;
    let script = s.path("script");
    {
        let fd = open_at(AT_FDCWD, script.c(), O_CREAT | O_WRONLY | O_TRUNC).ctx("create")?;
        let line = CPath::new(format_args!("#!{} {}\n", Bytes(exe.bytes()), Bytes(EXEC_REPORT.to_bytes())));
        write_all(fd.raw(), line.bytes()).ctx("write")?;
        // SAFETY: no memory is passed.
        ret(unsafe { syscall2(FCHMOD, fd.raw() as usize, 0o755) }).ctx("fchmod")?;
    }
    // Descriptors above 9, which the child makes its report pipe.
    let dup = |fd: Fd, cmd: usize| -> Result<Fd, Msg> {
        Ok(Fd(fcntl(fd.raw(), cmd, 10).ctx("F_DUPFD")? as i32))
    };
    let opened = open_at(AT_FDCWD, script.c(), O_RDONLY).ctx("open the script")?;
    let fd = dup(opened, F_DUPFD)?;
    let dir = open_at(AT_FDCWD, s.dir.c(), O_RDONLY | O_DIRECTORY).ctx("open the directory")?;
    let dirfd = dup(dir, F_DUPFD)?;
    let cases = [
        (fd.raw(), c"", AT_EMPTY_PATH, CPath::new(format_args!("/dev/fd/{}\0arg\0comm=proctest", fd.raw()))),
        (dirfd.raw(), c"script", 0, CPath::new(format_args!("/dev/fd/{}/script\0arg\0comm=script", dirfd.raw()))),
        (AT_FDCWD, script.c(), 0, CPath::new(format_args!("{}\0arg\0comm=script", Bytes(script.bytes())))),
    ];
    for (dirfd, path, flags, want) in &cases {
        let got = run_report(*dirfd, path, *flags, true)?;
        ensure!(
            got.bytes() == want.bytes(),
            "script via fd {dirfd}: reports [{}], expected [{}]",
            Bytes(got.bytes()),
            Bytes(want.bytes())
        );
    }
    let opened = open_at(AT_FDCWD, script.c(), O_RDONLY).ctx("open the script")?;
    let cloexec = dup(opened, F_DUPFD_CLOEXEC)?;
    let got = run_report(cloexec.raw(), c"", AT_EMPTY_PATH, true)?;
    ensure!(got.bytes() == b"errno=2", "close-on-exec script fd: [{}]", Bytes(got.bytes()));
    let dir = open_at(AT_FDCWD, s.dir.c(), O_RDONLY | O_DIRECTORY).ctx("open the directory")?;
    let cloexec_dir = dup(dir, F_DUPFD_CLOEXEC)?;
    let got = run_report(cloexec_dir.raw(), c"script", 0, true)?;
    ensure!(got.bytes() == b"errno=2", "close-on-exec dirfd: [{}]", Bytes(got.bytes()));
    Ok(())
}
