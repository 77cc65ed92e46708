//! The fs_struct: cwd, root and umask, shared by CLONE_FS and copied otherwise.
//!
//! Every scenario works in its own directory, `/tmp/proctest-fs-PID`, and
//! removes all it made (the [`Dir`] guards), so the host stays clean.
//! Whatever changes the root runs in a forked child; the working directory
//! of this process is put back by a [`CwdGuard`].

use forkvm_user::cred::{self, Capabilities};
use forkvm_user::syscall::{
    chdir, chroot, getcwd, mkdir, mkdirat, rmdir, syscall1, syscall2, unlinkat, AT_FDCWD,
    AT_REMOVEDIR,
};

use super::*;

pub const SCENARIOS: &[(&str, Scenario)] = &[
    ("fs-clone-fs-chdir", clone_fs_chdir),
    ("fs-chroot-needs-cap", chroot_needs_cap),
    ("fs-chroot-jail", chroot_jail),
    ("fs-mkdir-rmdir-errors", mkdir_rmdir_errors),
    ("fs-getcwd-errors", getcwd_errors),
    ("fs-dir-permissions", dir_permissions),
    ("fs-mkdirat-unlinkat", mkdirat_unlinkat),
    ("fs-unshare-newns-root", unshare_newns_root),
];

use forkvm_abi::linux::clone::CLONE_FS;
const CAP_SYS_CHROOT: u64 = 1 << 18;
const CAP_DAC_OVERRIDE: u64 = 1 << 1;
const CAP_DAC_READ_SEARCH: u64 = 1 << 2;
const CAP_FOWNER: u64 = 1 << 3;
/// An address nothing is mapped at, for EFAULT.
const BAD_ADDRESS: usize = 8;
/// Linux `PATH_MAX`, the NUL included.
const PATH_MAX: usize = 4096;

// main.rs defines its `msg!` and `ensure!` after declaring this module,
// so they are not in scope here: the same two, for this module.

/// Formats a [`Msg`].
macro_rules! msg {
    ($($arg:tt)*) => {{
        let mut m = Msg::new();
        let _ = m.write_fmt(format_args!($($arg)*));
        m
    }};
}

/// Fails the scenario with a formatted message unless `cond` holds.
macro_rules! ensure {
    ($cond:expr, $($arg:tt)*) => {
        if !$cond {
            return Err(msg!($($arg)*));
        }
    };
}

/// A NUL-terminated path of up to 511 bytes.
struct PathBuf {
    len: usize,
    buf: [u8; 512],
}

impl PathBuf {
    fn new(args: fmt::Arguments) -> PathBuf {
        let mut path = PathBuf {
            len: 0,
            buf: [0; 512],
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

    /// `self/rel`.
    fn join(&self, rel: &str) -> PathBuf {
        PathBuf::new(format_args!("{}/{rel}", Bytes(self.bytes())))
    }
}

impl Write for PathBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // Keep the last byte for the NUL.
        let n = s.len().min(self.buf.len() - 1 - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// A directory this scenario made, removed when dropped (errors ignored:
/// a check may have removed it already). Children never drop one: they
/// end with `exit_group`, and their closures borrow the guards.
struct Dir(PathBuf);

impl Dir {
    fn make(path: PathBuf) -> Result<Dir, Msg> {
        Dir::make_mode(path, 0o755)
    }

    /// Made with exactly `mode` (the umask is 0 meanwhile).
    fn make_mode(path: PathBuf, mode: u32) -> Result<Dir, Msg> {
        let old = umask(0);
        let made = mkdir(path.c(), mode);
        umask(old);
        made.map_err(|e| msg!("mkdir({}): {e}", Bytes(path.bytes())))?;
        Ok(Dir(path))
    }

    /// This scenario's directory, `/tmp/proctest-fs-PID`.
    fn scratch() -> Result<Dir, Msg> {
        Dir::make(PathBuf::new(format_args!("/tmp/proctest-fs-{}", getpid())))
    }

    fn path(&self) -> &PathBuf {
        &self.0
    }

    fn join(&self, rel: &str) -> PathBuf {
        self.0.join(rel)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = rmdir(self.0.c());
    }
}

/// The working directory as `getcwd` returns it (without the NUL).
struct Cwd {
    len: usize,
    buf: [u8; PATH_MAX],
}

impl Cwd {
    fn get() -> Result<Cwd, Errno> {
        let mut cwd = Cwd {
            len: 0,
            buf: [0; PATH_MAX],
        };
        let n = getcwd(&mut cwd.buf)?;
        cwd.len = n.saturating_sub(1);
        Ok(cwd)
    }

    fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// Whether the working directory is `want`.
fn cwd_is(want: &[u8]) -> bool {
    Cwd::get().is_ok_and(|cwd| cwd.bytes() == want)
}

/// Puts this process's working directory back when dropped.
struct CwdGuard(Cwd);

impl CwdGuard {
    fn save() -> Result<CwdGuard, Msg> {
        Ok(CwdGuard(Cwd::get().ctx("getcwd")?))
    }
}

impl Drop for CwdGuard {
    fn drop(&mut self) {
        let mut path = [0u8; PATH_MAX + 1];
        path[..self.0.len].copy_from_slice(self.0.bytes());
        if let Ok(path) = CStr::from_bytes_until_nul(&path) {
            let _ = chdir(path);
        }
    }
}

fn has_cap_sys_chroot() -> Result<bool, Msg> {
    Ok(cred::capget(0).ctx("capget")?.effective & CAP_SYS_CHROOT != 0)
}

/// A CLONE_FS child's chdir moves its parent too (and the parent's moves
/// the child: one shared fs_struct); a forked child's does not.
fn clone_fs_chdir(_: &Ctx) -> Outcome {
    let scratch = Dir::scratch()?;
    let _a = Dir::make(scratch.join("a"))?;
    let _b = Dir::make(scratch.join("b"))?;
    let _back = CwdGuard::save()?;
    let base = scratch.path();
    chdir(base.c()).ctx("chdir(scratch)")?;

    let child = Child::spawn(|| first_failure(&[chdir(c"a").is_ok()]))?;
    expect_checks("a forked child's chdir(\"a\")", child, &["chdir"])?;
    let after_fork = Cwd::get().ctx("getcwd")?;
    ensure!(
        after_fork.bytes() == base.bytes(),
        "a forked child's chdir moved its parent to {}",
        Bytes(after_fork.bytes())
    );

    let child = Child::spawn_with_flags(CLONE_FS, || first_failure(&[chdir(c"b").is_ok()]))?;
    expect_checks("a CLONE_FS child's chdir(\"b\")", child, &["chdir"])?;
    let b = scratch.join("b");
    let after_clone_fs = Cwd::get().ctx("getcwd")?;
    ensure!(
        after_clone_fs.bytes() == b.bytes(),
        "a CLONE_FS child's chdir did not move its parent: cwd {}",
        Bytes(after_clone_fs.bytes())
    );

    // The other way round: the parent moves, the sharing child sees it.
    let (r, w) = pipe()?;
    let a = scratch.join("a");
    let child = Child::spawn_with_flags(CLONE_FS, || {
        let mut go = [0u8; 1];
        let woken = read(r.raw(), &mut go) == Ok(1);
        first_failure(&[woken, cwd_is(a.bytes())])
    })?;
    chdir(c"../a").ctx("chdir(\"../a\")")?;
    write_all(w.raw(), b"g").ctx("write(pipe)")?;
    expect_checks(
        "a CLONE_FS child after its parent's chdir",
        child,
        &["read(pipe)", "getcwd is the parent's new cwd"],
    )
}

/// chroot needs CAP_SYS_CHROOT: EPERM for a user that setuid(1000)s and
/// for root without the capability in its effective set; the path is
/// looked up first (ENOENT wins over EPERM).
fn chroot_needs_cap(_: &Ctx) -> Outcome {
    let scratch = Dir::scratch()?;
    let jail = Dir::make(scratch.join("jail"))?;
    let child = Child::spawn(|| {
        let user = cred::setgid(1000).is_ok() && cred::setuid(1000).is_ok();
        first_failure(&[
            user,
            chroot(jail.path().c()) == Err(Errno::EPERM),
            chroot(c"/") == Err(Errno::EPERM),
            chroot(c"/proctest-fs-nonexistent") == Err(Errno::ENOENT),
        ])
    })?;
    expect_checks(
        "chroot as uid 1000",
        child,
        &[
            "setgid+setuid(1000)",
            "chroot(jail) is EPERM",
            "chroot(\"/\") is EPERM",
            "chroot of a missing path is ENOENT",
        ],
    )?;
    if !has_cap_sys_chroot()? {
        return Ok(()); // nothing more to show where root lacks it
    }
    let child = Child::spawn(|| {
        let Ok(caps) = cred::capget(0) else { return 99 };
        let without = Capabilities {
            effective: caps.effective & !CAP_SYS_CHROOT,
            ..caps
        };
        let dropped = cred::capset(without).is_ok();
        let refused = chroot(jail.path().c()) == Err(Errno::EPERM);
        let restored = cred::capset(caps).is_ok();
        first_failure(&[dropped, refused, restored, chroot(jail.path().c()).is_ok()])
    })?;
    expect_checks(
        "chroot as root with and without CAP_SYS_CHROOT",
        child,
        &[
            "capset without CAP_SYS_CHROOT",
            "chroot without CAP_SYS_CHROOT is EPERM",
            "capset with CAP_SYS_CHROOT again",
            "chroot with CAP_SYS_CHROOT works",
        ],
    )
}

/// In a forked child: chroot into a directory, with the cwd outside it.
/// getcwd reports the cwd as `(unreachable)/...`; `/`, `..` and absolute
/// paths stay inside the new root; the cwd does not move by itself.
fn chroot_jail(_: &Ctx) -> Outcome {
    if !has_cap_sys_chroot()? {
        return Ok(()); // nothing to show where root lacks it
    }
    let scratch = Dir::scratch()?;
    let _jail = Dir::make(scratch.join("jail"))?;
    let _sub = Dir::make(scratch.join("jail/sub"))?;
    let made = scratch.join("jail/made");
    let base = scratch.path();
    let unreachable = PathBuf::new(format_args!("(unreachable){}", Bytes(base.bytes())));
    let child = Child::spawn(|| {
        first_failure(&[
            chdir(base.c()).is_ok(),
            chroot(c"jail").is_ok(),
            cwd_is(unreachable.bytes()),
            chdir(c"/").is_ok() && cwd_is(b"/"),
            chdir(c"..").is_ok() && cwd_is(b"/"),
            chdir(c"/sub/../..").is_ok() && cwd_is(b"/"),
            chdir(c"sub").is_ok() && cwd_is(b"/sub"),
            chdir(c"../../..").is_ok() && cwd_is(b"/"),
            chdir(base.c()) == Err(Errno::ENOENT),
            mkdir(c"/made", 0o755).is_ok(),
            rmdir(c"/") == Err(Errno::EBUSY),
            rmdir(c"/sub/..") == Err(Errno::ENOTEMPTY),
            mkdir(c"/..", 0o755) == Err(Errno::EEXIST),
        ])
    })?;
    let result = expect_checks(
        "chroot into jail",
        child,
        &[
            "chdir(scratch)",
            "chroot(\"jail\")",
            "getcwd is (unreachable)/scratch",
            "chdir(\"/\"): cwd /",
            "chdir(\"..\") at the root: cwd /",
            "chdir(\"/sub/../..\"): cwd /",
            "chdir(\"sub\"): cwd /sub",
            "chdir(\"../../..\"): cwd /",
            "the old absolute path is ENOENT inside",
            "mkdir(\"/made\")",
            "rmdir(\"/\") is EBUSY",
            "rmdir(\"/sub/..\") is ENOTEMPTY",
            "mkdir(\"/..\") is EEXIST",
        ],
    );
    // The child's "/made" is the parent's jail/made.
    let removed = rmdir(made.c());
    result?;
    removed.ctx("rmdir(jail/made): the child's mkdir(\"/made\") was not there")
}

/// A named call's result and the one Linux gives.
type Check = (&'static str, Result<(), Errno>, Result<(), Errno>);

/// `mkdir`/`rmdir` results as Linux gives them.
fn mkdir_rmdir_errors(_: &Ctx) -> Outcome {
    let scratch = Dir::scratch()?;
    let a = Dir::make(scratch.join("a"))?;
    let long = [b'n'; 256];
    let long_name = |n: usize| core::str::from_utf8(&long[..n]).unwrap_or_default();
    // Every path below is absolute, so the cwd does not matter.
    let checks: &[Check] = &[
        (
            "mkdir(existing)",
            mkdir(a.path().c(), 0o755),
            Err(Errno::EEXIST),
        ),
        ("mkdir(\"/\")", mkdir(c"/", 0o755), Err(Errno::EEXIST)),
        ("mkdir(\".\")", mkdir(c".", 0o755), Err(Errno::EEXIST)),
        ("mkdir(\"..\")", mkdir(c"..", 0o755), Err(Errno::EEXIST)),
        ("mkdir(\"\")", mkdir(c"", 0o755), Err(Errno::ENOENT)),
        (
            "mkdir(missing/x)",
            mkdir(scratch.join("missing/x").c(), 0o755),
            Err(Errno::ENOENT),
        ),
        ("mkdir(dir/)", mkdir(scratch.join("b/").c(), 0o755), Ok(())),
        (
            "mkdir(dir//) again",
            mkdir(scratch.join("/b//").c(), 0o755),
            Err(Errno::EEXIST),
        ),
        (
            "mkdir(255-byte name)",
            mkdir(scratch.join(long_name(255)).c(), 0o755),
            Ok(()),
        ),
        (
            "rmdir(255-byte name)",
            rmdir(scratch.join(long_name(255)).c()),
            Ok(()),
        ),
        (
            "mkdir(256-byte name)",
            mkdir(scratch.join(long_name(256)).c(), 0o755),
            Err(Errno::ENAMETOOLONG),
        ),
        (
            "rmdir(256-byte name)",
            rmdir(scratch.join(long_name(256)).c()),
            Err(Errno::ENAMETOOLONG),
        ),
        ("mkdir(a/c)", mkdir(scratch.join("a/c").c(), 0o755), Ok(())),
        ("rmdir(a)", rmdir(a.path().c()), Err(Errno::ENOTEMPTY)),
        ("rmdir(a/c/)", rmdir(scratch.join("a/c/").c()), Ok(())),
        (
            "rmdir(a//c)",
            rmdir(scratch.join("a//c").c()),
            Err(Errno::ENOENT),
        ),
        ("rmdir(\"/\")", rmdir(c"/"), Err(Errno::EBUSY)),
        ("rmdir(\"//\")", rmdir(c"//"), Err(Errno::EBUSY)),
        ("rmdir(\".\")", rmdir(c"."), Err(Errno::EINVAL)),
        (
            "rmdir(a/.)",
            rmdir(scratch.join("a/.").c()),
            Err(Errno::EINVAL),
        ),
        ("rmdir(\"..\")", rmdir(c".."), Err(Errno::ENOTEMPTY)),
        (
            "rmdir(a/..)",
            rmdir(scratch.join("a/..").c()),
            Err(Errno::ENOTEMPTY),
        ),
        ("rmdir(\"\")", rmdir(c""), Err(Errno::ENOENT)),
        ("rmdir(b)", rmdir(scratch.join("b").c()), Ok(())),
        (
            "rmdir(b) again",
            rmdir(scratch.join("b").c()),
            Err(Errno::ENOENT),
        ),
    ];
    for (what, got, want) in checks {
        ensure!(got == want, "{what}: got {got:?}, want {want:?}");
    }
    // PATH_MAX counts the NUL: 4095 slashes are "/", 4096 are too long.
    let mut slashes = [b'/'; PATH_MAX + 1];
    slashes[PATH_MAX - 1] = 0;
    let path_4095 = CStr::from_bytes_until_nul(&slashes).unwrap_or(c"");
    let got = mkdir(path_4095, 0o755);
    ensure!(
        got == Err(Errno::EEXIST),
        "mkdir(4095 slashes): got {got:?}, want EEXIST"
    );
    slashes[PATH_MAX - 1] = b'/';
    slashes[PATH_MAX] = 0;
    let path_4096 = CStr::from_bytes_until_nul(&slashes).unwrap_or(c"");
    let got = (
        mkdir(path_4096, 0o755),
        rmdir(path_4096),
        chdir(path_4096),
        chroot(path_4096),
    );
    let too_long = Err(Errno::ENAMETOOLONG);
    ensure!(
        got == (too_long, too_long, too_long, too_long),
        "mkdir, rmdir, chdir, chroot of 4096 slashes: got {got:?}, want ENAMETOOLONG"
    );
    // Bad pointers.
    // SAFETY: the kernel only reads at the bad address, and must refuse.
    let got = unsafe {
        [
            syscall2(nr::MKDIR, BAD_ADDRESS, 0o755),
            syscall1(nr::RMDIR, BAD_ADDRESS),
            syscall1(nr::CHDIR, BAD_ADDRESS),
            syscall1(nr::CHROOT, BAD_ADDRESS),
        ]
    };
    let efault = -(Errno::EFAULT.0 as isize);
    ensure!(
        got == [efault; 4],
        "mkdir, rmdir, chdir, chroot of a bad pointer: got {got:?}, want EFAULT"
    );
    Ok(())
}

/// `getcwd`: the length with the NUL; ERANGE if the buffer is too small;
/// EFAULT for a bad buffer; ENOENT once the cwd is removed (checked
/// before the size), while `.` and `..` still work from there.
fn getcwd_errors(_: &Ctx) -> Outcome {
    let scratch = Dir::scratch()?;
    let _back = CwdGuard::save()?;
    let base = scratch.path();
    chdir(base.c()).ctx("chdir(scratch)")?;
    let len = base.bytes().len() + 1;
    let mut buf = [0u8; 256];
    let exact = getcwd(&mut buf[..len]);
    ensure!(
        exact == Ok(len) && &buf[..len - 1] == base.bytes() && buf[len - 1] == 0,
        "getcwd with room for exactly the path: {exact:?}"
    );
    let short = getcwd(&mut buf[..len - 1]);
    ensure!(
        short == Err(Errno::ERANGE),
        "getcwd one byte short: {short:?}"
    );
    // SAFETY: a null buffer of size 0, and a bad one the kernel must refuse.
    let (null, bad) = unsafe {
        (
            syscall2(nr::GETCWD, 0, 0),
            syscall2(nr::GETCWD, BAD_ADDRESS, PATH_MAX),
        )
    };
    ensure!(
        (null, bad) == (-(Errno::ERANGE.0 as isize), -(Errno::EFAULT.0 as isize)),
        "getcwd(NULL, 0): {}, getcwd(bad, 4096): {} (want ERANGE, EFAULT)",
        Ret(null),
        Ret(bad)
    );
    let gone = scratch.join("gone");
    let _gone = Dir::make(scratch.join("gone"))?;
    let child = Child::spawn(|| {
        let mut tiny = [0u8; 1];
        first_failure(&[
            chdir(c"gone").is_ok(),
            rmdir(gone.c()).is_ok(),
            getcwd(&mut tiny) == Err(Errno::ENOENT),
            Cwd::get().err() == Some(Errno::ENOENT),
            mkdir(c"x", 0o755) == Err(Errno::ENOENT),
            chdir(c".").is_ok(),
            chdir(c"..").is_ok() && cwd_is(base.bytes()),
        ])
    })?;
    expect_checks(
        "getcwd in a removed directory",
        child,
        &[
            "chdir(\"gone\")",
            "rmdir of the cwd",
            "getcwd(buf, 1) is ENOENT",
            "getcwd is ENOENT",
            "mkdir in the removed cwd is ENOENT",
            "chdir(\".\") in it",
            "chdir(\"..\") from it: the scratch directory",
        ],
    )
}

/// Directory permissions as Linux checks them: search permission on every
/// directory walked through (and on the target of chdir/chroot, before
/// chroot's EPERM), write permission to add or remove entries (after
/// EEXIST), the sticky bit, and the capabilities that override them.
fn dir_permissions(_: &Ctx) -> Outcome {
    let scratch = Dir::scratch()?;
    let _closed = Dir::make_mode(scratch.join("closed"), 0o700)?;
    let _inner = Dir::make(scratch.join("closed/in"))?;
    let _sticky = Dir::make_mode(scratch.join("sticky"), 0o1777)?;
    let _roots = Dir::make(scratch.join("sticky/roots"))?;
    let _none = Dir::make_mode(scratch.join("none"), 0)?;
    let mine = scratch.join("sticky/mine");
    let _mine = Dir(scratch.join("sticky/mine")); // the child makes it
    let base = scratch.path();
    let closed = scratch.join("closed");
    let closed_in = scratch.join("closed/in");
    let roots = scratch.join("sticky/roots");
    let child = Child::spawn(|| {
        let user = cred::setgid(1000).is_ok() && cred::setuid(1000).is_ok();
        first_failure(&[
            user,
            chdir(closed.c()) == Err(Errno::EACCES),
            chdir(closed_in.c()) == Err(Errno::EACCES),
            mkdir(scratch.join("closed/x").c(), 0o755) == Err(Errno::EACCES),
            mkdir(scratch.join("new").c(), 0o755) == Err(Errno::EACCES),
            mkdir(closed.c(), 0o755) == Err(Errno::EEXIST),
            rmdir(closed.c()) == Err(Errno::EACCES),
            rmdir(scratch.join("nope").c()) == Err(Errno::ENOENT),
            chroot(closed.c()) == Err(Errno::EACCES),
            chroot(base.c()) == Err(Errno::EPERM),
            mkdir(mine.c(), 0o755).is_ok(),
            rmdir(roots.c()) == Err(Errno::EPERM),
            rmdir(mine.c()).is_ok(),
        ])
    })?;
    expect_checks(
        "uid 1000",
        child,
        &[
            "setgid+setuid(1000)",
            "chdir into a 0700 root directory is EACCES",
            "a walk through it is EACCES",
            "mkdir in it is EACCES",
            "mkdir in a 0755 root directory is EACCES",
            "mkdir of an existing name is EEXIST before EACCES",
            "rmdir in a 0755 root directory is EACCES",
            "rmdir of a missing name is ENOENT before EACCES",
            "chroot into a 0700 directory is EACCES before EPERM",
            "chroot into a searchable directory is EPERM",
            "mkdir in a sticky 1777 directory",
            "rmdir of root's directory in it is EPERM",
            "rmdir of its own directory in it",
        ],
    )?;
    let caps = cred::capget(0).ctx("capget")?;
    let needed = CAP_DAC_OVERRIDE | CAP_DAC_READ_SEARCH | CAP_FOWNER;
    if caps.effective & needed != needed {
        return Ok(()); // nothing more to show where root lacks them
    }
    let none = scratch.join("none");
    let none_x = scratch.join("none/x");
    let child = Child::spawn(|| {
        let with = |effective: u64| {
            cred::capset(Capabilities {
                effective: caps.effective & !needed | effective,
                ..caps
            })
            .is_ok()
        };
        first_failure(&[
            with(0),
            chdir(none.c()) == Err(Errno::EACCES),
            with(CAP_DAC_READ_SEARCH),
            chdir(none.c()).is_ok(),
            mkdir(none_x.c(), 0o755) == Err(Errno::EACCES),
            with(CAP_DAC_OVERRIDE),
            mkdir(none_x.c(), 0o755).is_ok(),
            rmdir(none_x.c()).is_ok(),
        ])
    })?;
    expect_checks(
        "root and a mode 0 directory",
        child,
        &[
            "capset without the DAC capabilities",
            "chdir without them is EACCES",
            "capset with CAP_DAC_READ_SEARCH",
            "chdir with CAP_DAC_READ_SEARCH",
            "mkdir with CAP_DAC_READ_SEARCH only is EACCES",
            "capset with CAP_DAC_OVERRIDE",
            "mkdir with CAP_DAC_OVERRIDE",
            "rmdir with CAP_DAC_OVERRIDE",
        ],
    )
}

/// `mkdirat` and `unlinkat` with AT_FDCWD (relative to the cwd) or an
/// absolute path (the descriptor ignored); a relative path from a
/// descriptor that is no directory is ENOTDIR, from a closed one EBADF.
/// Without AT_REMOVEDIR, unlinking a directory is EISDIR.
fn mkdirat_unlinkat(_: &Ctx) -> Outcome {
    let scratch = Dir::scratch()?;
    let _back = CwdGuard::save()?;
    chdir(scratch.path().c()).ctx("chdir(scratch)")?;
    let _a = Dir(scratch.join("a")); // made below
    let _abs = Dir(scratch.join("abs"));
    let (pipe_read, _pipe_write) = pipe()?;
    let closed = 999;
    let abs = scratch.join("abs");
    let checks: &[Check] = &[
        (
            "mkdirat(AT_FDCWD, a)",
            mkdirat(AT_FDCWD, c"a", 0o755),
            Ok(()),
        ),
        (
            "mkdirat(AT_FDCWD, a) again",
            mkdirat(AT_FDCWD, c"a", 0o755),
            Err(Errno::EEXIST),
        ),
        (
            "mkdirat(closed fd, b)",
            mkdirat(closed, c"b", 0o755),
            Err(Errno::EBADF),
        ),
        (
            "mkdirat(pipe, b)",
            mkdirat(pipe_read.raw(), c"b", 0o755),
            Err(Errno::ENOTDIR),
        ),
        (
            "mkdirat(closed fd, absolute)",
            mkdirat(closed, abs.c(), 0o755),
            Ok(()),
        ),
        (
            "unlinkat(AT_FDCWD, a, 0)",
            unlinkat(AT_FDCWD, c"a", 0),
            Err(Errno::EISDIR),
        ),
        (
            "unlinkat(AT_FDCWD, a/, 0)",
            unlinkat(AT_FDCWD, c"a/", 0),
            Err(Errno::EISDIR),
        ),
        (
            "unlinkat(AT_FDCWD, \"/\", 0)",
            unlinkat(AT_FDCWD, c"/", 0),
            Err(Errno::EISDIR),
        ),
        (
            "unlinkat(AT_FDCWD, missing, 0)",
            unlinkat(AT_FDCWD, c"missing", 0),
            Err(Errno::ENOENT),
        ),
        (
            "unlinkat(AT_FDCWD, a, 1)",
            unlinkat(AT_FDCWD, c"a", 1),
            Err(Errno::EINVAL),
        ),
        (
            "unlinkat(pipe, a, AT_REMOVEDIR)",
            unlinkat(pipe_read.raw(), c"a", AT_REMOVEDIR),
            Err(Errno::ENOTDIR),
        ),
        (
            "unlinkat(AT_FDCWD, a, AT_REMOVEDIR)",
            unlinkat(AT_FDCWD, c"a", AT_REMOVEDIR),
            Ok(()),
        ),
        (
            "unlinkat(AT_FDCWD, a, AT_REMOVEDIR) again",
            unlinkat(AT_FDCWD, c"a", AT_REMOVEDIR),
            Err(Errno::ENOENT),
        ),
        (
            "unlinkat(AT_FDCWD, \".\", AT_REMOVEDIR)",
            unlinkat(AT_FDCWD, c".", AT_REMOVEDIR),
            Err(Errno::EINVAL),
        ),
        (
            "unlinkat(closed fd, absolute, AT_REMOVEDIR)",
            unlinkat(closed, abs.c(), AT_REMOVEDIR),
            Ok(()),
        ),
    ];
    for (what, got, want) in checks {
        ensure!(got == want, "{what}: got {got:?}, want {want:?}");
    }
    Ok(())
}

/// unshare(CLONE_NEWNS) as root (Linux `copy_mnt_ns`): the new mount
/// namespace's tree is a copy of the old one, and the task's root and cwd
/// move to the same places in it: the cwd is where it was, the tree's
/// files are there by relative and absolute paths, and what is made in it
/// is in the one file system. Its root is the namespace's own root (a new
/// user namespace, refused to a chrooted task, is allowed), while a
/// chroot inside it still counts as one (EPERM).
fn unshare_newns_root(_: &Ctx) -> Outcome {
    use forkvm_abi::linux::clone::{CLONE_NEWNS, CLONE_NEWUSER};
    use forkvm_user::syscall::unshare;
    let scratch = Dir::scratch()?;
    let sub = Dir::make(scratch.join("sub"))?;
    let _inner = Dir::make(scratch.join("sub/inner"))?;
    let made = scratch.join("sub/made");
    let base = scratch.path();
    // A grandchild's `unshare(CLONE_NEWUSER)`, after `chroot(".")` if
    // `jail`: its errno, or 0.
    let new_user_ns = |jail: bool| {
        Child::spawn(|| {
            if jail && chroot(c".").is_err() {
                return 100;
            }
            match unshare(CLONE_NEWUSER) {
                Ok(()) => 0,
                Err(e) => e.0,
            }
        })
        .ok()
        .and_then(|child| child.wait_bounded("unshare(CLONE_NEWUSER)").ok())
        .filter(|status| status.exited())
        .map(|status| status.exit_status())
    };
    let child = Child::spawn(|| {
        first_failure(&[
            chdir(sub.path().c()).is_ok(),
            unshare(CLONE_NEWNS).is_ok(),
            cwd_is(sub.path().bytes()),
            chdir(c"inner").is_ok() && chdir(c"..").is_ok() && cwd_is(sub.path().bytes()),
            chdir(c"..").is_ok() && cwd_is(base.bytes()),
            chdir(c"/").is_ok() && cwd_is(b"/") && chdir(sub.path().c()).is_ok(),
            mkdir(c"made", 0o755).is_ok(),
            new_user_ns(false) == Some(0),
            new_user_ns(true) == Some(Errno::EPERM.0),
        ])
    })?;
    let result = expect_checks(
        "unshare(CLONE_NEWNS)",
        child,
        &[
            "chdir(scratch/sub)",
            "unshare(CLONE_NEWNS)",
            "the cwd is where it was",
            "relative paths from it",
            "its parent by \"..\"",
            "the root and absolute paths",
            "mkdir(\"made\") in the new namespace",
            "a new user namespace: the root is the namespace's own",
            "after chroot(\".\"), a new user namespace is EPERM",
        ],
    );
    // What the child made is in the parent's namespace too.
    let removed = rmdir(made.c());
    result?;
    removed.ctx("rmdir(sub/made): the child's mkdir was not there")
}
