//! `badptr`: hands bad user pointers to every system call of the forkvm
//! guest kernel that dereferences one, and prints one line per call:
//!
//! `<call> <kind> <result>[ <side effect>]`
//!
//! `kind` is the pointer: `unmapped` (a page just unmapped), `readonly` (a
//! zero-filled read-only page), `kernel` (the kernel half), `noncanonical`
//! (bit 63 alone) or `straddle` (3 bytes before a page followed by an
//! unmapped one, the mapped bytes non-zero, so strings run into the hole);
//! a few calls also get `null` where Linux does not allow it. `result` is
//! `ok`, `ok=N` where the value means the same on any kernel, or the errno
//! name. Side effects are printed where a failed call must leave things as
//! they were: the bytes still in a pipe, descriptors left open, whether a
//! child was reaped, whether a signal is still pending.
//!
//! The output is compared line by line between the host's Linux and the
//! forkvm guest (`tests/badptr.rs`); calls the guest does not implement are
//! not made. `mmap`, `mprotect`, `munmap` and `brk` take addresses they
//! never dereference: not here either. Run it as root from any directory
//! (it moves to `/`): calls that change the process (limits,
//! capabilities, host name, segment bases) run in a child, the host name
//! one in its own UTS namespace; calls that would not return on success
//! (execve) run in a child too. Exit status 0 unless the set-up failed
//! (1). Started with any argument (or an empty argv) it exits 100 at once:
//! that is the program a successful `execve` case starts. On the host,
//! start it by absolute path (execve cases run it again by `argv[0]` after
//! the move to `/`).
#![no_std]
#![no_main]

use core::fmt::{self, Write};

use forkvm_user::io::{BufWriter, STDOUT};
use forkvm_user::syscall::{
    check, close, exit_group, fork, getpid, gettid, mmap_anonymous, mprotect, munmap, pipe2, read,
    syscall0, syscall1, syscall2, syscall3, syscall4, syscall5, syscall6, wait4, write, PROT_READ,
    PROT_WRITE,
};
use forkvm_user::{entry, println, Errno};

entry!(main);

const PAGE: usize = 4096;

use forkvm_abi::linux::fcntl::F_GETFD;
use forkvm_user::signal::SIG_BLOCK;
use forkvm_user::syscall::nr;

const AT_FDCWD: usize = -100isize as usize;
const SIGCHLD: usize = forkvm_abi::linux::signal::SIGCHLD as usize;
const SIGUSR1: usize = forkvm_abi::linux::signal::SIGUSR1 as usize;
const SIGUSR2: usize = forkvm_abi::linux::signal::SIGUSR2 as usize;
const SIGSET: usize = 8;
const CLONE_PIDFD: usize = forkvm_abi::linux::clone::CLONE_PIDFD as usize;
const CLONE_SETTLS: usize = forkvm_abi::linux::clone::CLONE_SETTLS as usize;
const CLONE_PARENT_SETTID: usize = forkvm_abi::linux::clone::CLONE_PARENT_SETTID as usize;
const CLONE_CHILD_SETTID: usize = forkvm_abi::linux::clone::CLONE_CHILD_SETTID as usize;
const CLONE_NEWUTS: usize = forkvm_abi::linux::clone::CLONE_NEWUTS as usize;
const WNOHANG: usize = forkvm_abi::linux::wait::WNOHANG as usize;
const WEXITED: usize = forkvm_abi::linux::wait::WEXITED as usize;
const P_PID: usize = forkvm_abi::linux::wait::P_PID as usize;
const FUTEX_WAIT: usize = 0;
const FUTEX_WAKE: usize = 1;
const FUTEX_PRIVATE_FLAG: usize = 128;
const ARCH_SET_GS: usize = 0x1001;
const ARCH_SET_FS: usize = 0x1002;
const ARCH_GET_FS: usize = 0x1003;
const ARCH_GET_GS: usize = 0x1004;
const RLIMIT_CORE: usize = 4;
const RLIMIT_NOFILE: usize = 7;
const CLOCK_MONOTONIC: usize = 1;
const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
const IPC_PRIVATE: usize = 0;
const IPC_RMID: usize = 0;
const IPC_STAT: usize = 2;
const GETALL: usize = 13;
const SETALL: usize = 17;

/// The bad pointers, by kind.
struct Pointers {
    unmapped: usize,
    readonly: usize,
    straddle: usize,
}

const KERNEL: usize = 0xffff_ffff_8100_0000;
const NONCANONICAL: usize = 0x8000_0000_0000_0000;

impl Pointers {
    /// Three pages: the first unmapped again, the second read-only zeros;
    /// then a page of `A`s followed by an unmapped one.
    fn new() -> Result<Pointers, Errno> {
        let area = mmap_anonymous(5 * PAGE, PROT_READ | PROT_WRITE)? as usize;
        // SAFETY: the pages are ours and nothing else uses them; the
        // unmapped ones are never touched by this program again.
        unsafe {
            core::ptr::write_bytes((area + 3 * PAGE) as *mut u8, b'A', PAGE);
            munmap(area as *mut u8, PAGE)?;
            mprotect((area + PAGE) as *mut u8, PAGE, PROT_READ)?;
            munmap((area + 4 * PAGE) as *mut u8, PAGE)?;
        }
        STRADDLE.store(area + 4 * PAGE - 3, core::sync::atomic::Ordering::Relaxed);
        Ok(Pointers {
            unmapped: area,
            readonly: area + PAGE,
            straddle: area + 4 * PAGE - 3,
        })
    }

    fn each(&self) -> [(&'static str, usize); 5] {
        [
            ("unmapped", self.unmapped),
            ("readonly", self.readonly),
            ("kernel", KERNEL),
            ("noncanonical", NONCANONICAL),
            ("straddle", self.straddle),
        ]
    }
}

/// The start of the straddling pointer's mapped bytes (0: not set up).
static STRADDLE: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

/// Puts back the `A`s a successful call may have overwritten (`getcwd`
/// stores "/" there), so the next string still runs into the hole.
fn refill_straddle() {
    let at = STRADDLE.load(core::sync::atomic::Ordering::Relaxed);
    if at != 0 {
        // SAFETY: the 3 bytes before the hole are our own writable page.
        unsafe { core::ptr::write_bytes(at as *mut u8, b'A', 3) };
    }
}

/// How a call's result is printed.
fn outcome(ret: isize, show_value: bool) -> Outcome {
    Outcome { ret, show_value }
}

struct Outcome {
    ret: isize,
    show_value: bool,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match check(self.ret) {
            Err(e) => match e.name() {
                Some(name) => f.write_str(name),
                None => write!(f, "errno{}", e.0),
            },
            Ok(value) if self.show_value => write!(f, "ok={value}"),
            Ok(_) => f.write_str("ok"),
        }
    }
}

/// Prints `call kind result` and any side effect.
fn report(call: &str, kind: &str, result: Outcome, extra: fmt::Arguments<'_>) {
    refill_straddle();
    let mut out = BufWriter::<256>::new(STDOUT);
    let _ = write!(out, "{call} {kind} {result}");
    let _ = out.write_fmt(extra);
    let _ = out.write_str("\n");
    let _ = out.flush();
}

macro_rules! line {
    ($call:expr, $kind:expr, $ret:expr) => {
        report($call, $kind, outcome($ret, false), format_args!(""))
    };
    ($call:expr, $kind:expr, $ret:expr, value) => {
        report($call, $kind, outcome($ret, true), format_args!(""))
    };
    ($call:expr, $kind:expr, $ret:expr, $($extra:tt)+) => {
        report($call, $kind, outcome($ret, false), format_args!($($extra)+))
    };
}

/// Runs `body` in a forked child (which exits 0 after it) and waits for it:
/// for calls that change the process or may not return.
fn in_child(body: impl FnOnce()) {
    match fork() {
        Ok(0) => {
            body();
            exit_group(0);
        }
        Ok(pid) => {
            let _ = wait4(pid as i32, 0);
        }
        Err(e) => println!("fork failed: {e}"),
    }
}

/// Whether descriptor `fd` is open.
fn is_open(fd: usize) -> bool {
    // SAFETY: F_GETFD touches no memory.
    check(unsafe { syscall2(nr::FCNTL, fd, F_GETFD as usize) }).is_ok()
}

/// The open descriptors among the first 64, as a bit set.
fn open_fds() -> u64 {
    (0..64)
        .filter(|&fd| is_open(fd))
        .fold(0, |set, fd| set | 1 << fd)
}

/// Closes the descriptors opened since `before` and says how many.
fn leaked_since(before: u64) -> u32 {
    let new = open_fds() & !before;
    for fd in 0..64 {
        if new & (1 << fd) != 0 {
            let _ = close(fd);
        }
    }
    new.count_ones()
}

/// Bytes left in a pipe whose write end is already closed (read to EOF).
fn drain(read_end: i32) -> usize {
    let mut total = 0;
    let mut buf = [0u8; 256];
    while let Ok(n) = read(read_end, &mut buf) {
        if n == 0 {
            break;
        }
        total += n;
    }
    total
}

/// A signal set holding SIGUSR1.
const USR1_SET: u64 = 1 << (SIGUSR1 - 1);
const ZERO_TIMESPEC: [u64; 2] = [0, 0];

/// Whether SIGUSR1 (kept blocked) is pending; takes it if so.
fn take_usr1() -> bool {
    // SAFETY: the kernel reads the live set and timeout, writes nothing.
    let ret = unsafe {
        syscall4(
            nr::RT_SIGTIMEDWAIT,
            &USR1_SET as *const u64 as usize,
            0,
            ZERO_TIMESPEC.as_ptr() as usize,
            SIGSET,
        )
    };
    ret == SIGUSR1 as isize
}

/// A child that exits 0 at once; returns its pid.
fn exited_child() -> i32 {
    match fork() {
        Ok(0) => exit_group(0),
        Ok(pid) => {
            // Until it has exited (WNOWAIT would be waitid's; a zombie is
            // what the calls below expect, so just give it time to die).
            for _ in 0..1000 {
                let mut info = [0u8; 128];
                // SAFETY: waitid writes a siginfo into the local buffer.
                let ret = unsafe {
                    syscall5(
                        nr::WAITID,
                        P_PID,
                        pid as usize,
                        info.as_mut_ptr() as usize,
                        WEXITED | WNOHANG | 0x0100_0000, /* WNOWAIT */
                        0,
                    )
                };
                if ret == 0 && info[0] != 0 {
                    break;
                }
                forkvm_user::syscall::sched_yield();
            }
            pid as i32
        }
        Err(e) => {
            println!("fork failed: {e}");
            exit_group(1);
        }
    }
}

/// Whether `pid` is gone (reaped) rather than still waitable.
fn reaped(pid: i32) -> &'static str {
    // SAFETY: no status pointer, no rusage.
    let ret = unsafe { syscall4(nr::WAIT4, pid as usize, 0, WNOHANG, 0) };
    if ret == -(Errno::ECHILD.0 as isize) {
        "reaped"
    } else {
        "waitable"
    }
}

fn main(args: &[&[u8]], _env: &[&[u8]]) -> i32 {
    // Started by one of the execve cases (with arguments, or with none at
    // all: Linux then gives an empty argv[0]).
    if args.len() != 1 || args[0].is_empty() {
        return 100;
    }
    let pointers = match Pointers::new() {
        Ok(p) => p,
        Err(e) => {
            println!("set-up failed: {e}");
            return 1;
        }
    };
    // Known state: SIGUSR1 blocked (queued by some calls), cwd `/`, one
    // supplementary group.
    let set_up = || -> Result<(), Errno> {
        // SAFETY: the kernel reads the live set.
        check(unsafe {
            syscall4(
                nr::RT_SIGPROCMASK,
                SIG_BLOCK,
                &USR1_SET as *const u64 as usize,
                0,
                SIGSET,
            )
        })?;
        // SAFETY: a static NUL-terminated path.
        check(unsafe { syscall1(nr::CHDIR, c"/".as_ptr() as usize) })?;
        let groups = [0u32];
        // SAFETY: the kernel reads one gid from the live array.
        check(unsafe { syscall2(nr::SETGROUPS, 1, groups.as_ptr() as usize) })?;
        Ok(())
    };
    if let Err(e) = set_up() {
        println!("set-up failed: {e} (run as root)");
        return 1;
    }
    let program = args.first().copied().unwrap_or(b"badptr");
    for (kind, p) in pointers.each() {
        files(kind, p);
        credentials(kind, p);
        signals(kind, p);
        processes(kind, p, program);
        misc(kind, p);
    }
    nulls();
    syscall_number_upper_half();
    0
}

/// read, write, pipe, pipe2, open, openat, getcwd, chdir, mkdir, rmdir,
/// chroot, mkdirat, unlinkat.
fn files(kind: &str, p: usize) {
    // read: the 16 bytes must stay in the pipe if they cannot be stored.
    if let Ok([r, w]) = pipe2(0) {
        let _ = write(w, &[7u8; 16]);
        // SAFETY: the kernel writes at most 16 bytes at `p`, a bad pointer.
        let ret = unsafe { syscall3(nr::READ, r as usize, p, 16) };
        let _ = close(w);
        line!("read", kind, ret, " pipe-left={}", drain(r));
        let _ = close(r);
    }
    if let Ok([r, w]) = pipe2(0) {
        // SAFETY: the kernel reads at most 16 bytes at `p`.
        let ret = unsafe { syscall3(nr::WRITE, w as usize, p, 16) };
        let _ = close(w);
        line!("write", kind, ret, " pipe-has={}", drain(r));
        let _ = close(r);
    }
    let before = open_fds();
    // SAFETY: the kernel writes two ints at `p`.
    let ret = unsafe { syscall2(nr::PIPE2, p, 0) };
    line!("pipe2", kind, ret, " fds-left={}", leaked_since(before));
    let before = open_fds();
    // SAFETY: as pipe2.
    let ret = unsafe { syscall1(nr::PIPE, p) };
    line!("pipe", kind, ret, " fds-left={}", leaked_since(before));

    let before = open_fds();
    // SAFETY: the kernel reads a path at `p`.
    let ret = unsafe { syscall3(nr::OPEN, p, 0, 0) };
    line!("open", kind, ret, " fds-left={}", leaked_since(before));
    let before = open_fds();
    // SAFETY: as open.
    let ret = unsafe { syscall4(nr::OPENAT, AT_FDCWD, p, 0, 0) };
    line!("openat", kind, ret, " fds-left={}", leaked_since(before));

    // SAFETY: the kernel writes at most 4096 bytes at `p` (the cwd is `/`).
    let ret = unsafe { syscall2(nr::GETCWD, p, 4096) };
    line!("getcwd", kind, ret, value);
    // Paths: read from `p` (never a name that exists or can be made: a bad
    // pointer, an empty string or one running into an unmapped page).
    for (call, number) in [
        ("chdir", nr::CHDIR),
        ("rmdir", nr::RMDIR),
        ("mkdir", nr::MKDIR),
    ] {
        // SAFETY: the kernel reads a path at `p`.
        let ret = unsafe { syscall2(number, p, 0o700) };
        line!(call, kind, ret);
    }
    // SAFETY: as mkdir.
    let ret = unsafe { syscall3(nr::MKDIRAT, AT_FDCWD, p, 0o700) };
    line!("mkdirat", kind, ret);
    // SAFETY: as rmdir.
    let ret = unsafe { syscall3(nr::UNLINKAT, AT_FDCWD, p, 0) };
    line!("unlinkat", kind, ret);
    in_child(|| {
        // SAFETY: the kernel reads a path at `p`; a child of our own.
        let ret = unsafe { syscall1(nr::CHROOT, p) };
        line!("chroot", kind, ret);
    });
}

/// getresuid, getresgid, getgroups, setgroups, capget, capset, getrlimit,
/// setrlimit, prlimit64, uname, sethostname, setdomainname.
fn credentials(kind: &str, p: usize) {
    let mut ids = [0u32; 2];
    let id0 = &mut ids[0] as *mut u32 as usize;
    let id1 = &mut ids[1] as *mut u32 as usize;
    for (call, number) in [("getresuid", nr::GETRESUID), ("getresgid", nr::GETRESGID)] {
        // SAFETY: the kernel writes one id at each pointer.
        let first = unsafe { syscall3(number, p, id0, id1) };
        line!(call, &alloc_free_concat(kind, "@0"), first);
        // SAFETY: as above.
        let last = unsafe { syscall3(number, id0, id1, p) };
        line!(call, &alloc_free_concat(kind, "@2"), last);
    }
    // SAFETY: the kernel writes up to 8 gids at `p`.
    let ret = unsafe { syscall2(nr::GETGROUPS, 8, p) };
    line!("getgroups", kind, ret, value);
    // SAFETY: with size 0 nothing is written.
    let ret = unsafe { syscall2(nr::GETGROUPS, 0, p) };
    line!("getgroups-count", kind, ret, value);
    in_child(|| {
        // SAFETY: the kernel reads one gid at `p`; a child of our own.
        let ret = unsafe { syscall2(nr::SETGROUPS, 1, p) };
        line!("setgroups", kind, ret);
    });

    let header = [LINUX_CAPABILITY_VERSION_3, 0];
    let mut data = [0u32; 6];
    // SAFETY: the kernel reads and may write the header at `p`.
    let ret = unsafe { syscall2(nr::CAPGET, p, data.as_mut_ptr() as usize) };
    line!("capget-header", kind, ret);
    // SAFETY: the kernel writes two cap data structures at `p`.
    let ret = unsafe { syscall2(nr::CAPGET, header.as_ptr() as usize, p) };
    line!("capget-data", kind, ret);
    in_child(|| {
        // SAFETY: the kernel reads the header at `p`.
        let ret = unsafe { syscall2(nr::CAPSET, p, data.as_ptr() as usize) };
        line!("capset-header", kind, ret);
        // SAFETY: the kernel reads two cap data structures at `p`; if it
        // succeeds only this child loses its capabilities.
        let ret = unsafe { syscall2(nr::CAPSET, header.as_ptr() as usize, p) };
        line!("capset-data", kind, ret);
    });

    // SAFETY: the kernel writes a struct rlimit at `p`.
    let ret = unsafe { syscall2(nr::GETRLIMIT, RLIMIT_NOFILE, p) };
    line!("getrlimit", kind, ret);
    // SAFETY: the kernel writes a struct rlimit at `p`.
    let ret = unsafe { syscall4(nr::PRLIMIT64, 0, RLIMIT_NOFILE, 0, p) };
    line!("prlimit64-old", kind, ret);
    in_child(|| {
        // SAFETY: the kernel reads a struct rlimit at `p`; zeros lower only
        // this child's core limit.
        let ret = unsafe { syscall2(nr::SETRLIMIT, RLIMIT_CORE, p) };
        line!("setrlimit", kind, ret);
        // SAFETY: as above.
        let ret = unsafe { syscall4(nr::PRLIMIT64, 0, RLIMIT_CORE, p, 0) };
        line!("prlimit64-new", kind, ret);
    });

    // SAFETY: the kernel writes a struct utsname at `p`.
    let ret = unsafe { syscall1(nr::UNAME, p) };
    line!("uname", kind, ret);
    in_child(|| {
        // A UTS namespace of its own: a name that did get set changes
        // nothing outside.
        // SAFETY: touches no memory.
        if check(unsafe { syscall1(nr::UNSHARE, CLONE_NEWUTS) }).is_err() {
            println!("unshare(CLONE_NEWUTS) failed");
            return;
        }
        for (call, number) in [
            ("sethostname", nr::SETHOSTNAME),
            ("setdomainname", nr::SETDOMAINNAME),
        ] {
            // SAFETY: the kernel reads 5 bytes at `p`.
            let ret = unsafe { syscall2(number, p, 5) };
            line!(call, kind, ret);
        }
    });
}

/// rt_sigaction, rt_sigprocmask, rt_sigsuspend, sigaltstack, rt_sigpending,
/// rt_sigtimedwait, rt_sigqueueinfo, rt_tgsigqueueinfo, pidfd_send_signal.
fn signals(kind: &str, p: usize) {
    // SAFETY: the kernel reads a struct sigaction at `p` (zeros: SIG_DFL
    // for SIGUSR2, which is what it is).
    let ret = unsafe { syscall4(nr::RT_SIGACTION, SIGUSR2, p, 0, SIGSET) };
    line!("rt_sigaction-act", kind, ret);
    // SAFETY: the kernel writes a struct sigaction at `p`.
    let ret = unsafe { syscall4(nr::RT_SIGACTION, SIGUSR2, 0, p, SIGSET) };
    line!("rt_sigaction-oldact", kind, ret);
    // SAFETY: the kernel reads a set at `p` (zeros block nothing more).
    let ret = unsafe { syscall4(nr::RT_SIGPROCMASK, SIG_BLOCK, p, 0, SIGSET) };
    line!("rt_sigprocmask-set", kind, ret);
    // SAFETY: the kernel writes a set at `p`.
    let ret = unsafe { syscall4(nr::RT_SIGPROCMASK, SIG_BLOCK, 0, p, SIGSET) };
    line!("rt_sigprocmask-oldset", kind, ret);
    if kind != "readonly" {
        // Zeros would be a valid mask: the call would wait for a signal.
        // SAFETY: the kernel reads a set at `p`.
        let ret = unsafe { syscall2(nr::RT_SIGSUSPEND, p, SIGSET) };
        line!("rt_sigsuspend", kind, ret);
    }
    // SAFETY: the kernel reads a stack_t at `p` (zeros: too small).
    let ret = unsafe { syscall2(nr::SIGALTSTACK, p, 0) };
    line!("sigaltstack-ss", kind, ret);
    // SAFETY: the kernel writes a stack_t at `p`.
    let ret = unsafe { syscall2(nr::SIGALTSTACK, 0, p) };
    line!("sigaltstack-oss", kind, ret);
    // SAFETY: the kernel writes a set at `p`.
    let ret = unsafe { syscall2(nr::RT_SIGPENDING, p, SIGSET) };
    line!("rt_sigpending", kind, ret);

    let zero = ZERO_TIMESPEC.as_ptr() as usize;
    let usr1 = &USR1_SET as *const u64 as usize;
    // SAFETY: the kernel reads a set at `p`.
    let ret = unsafe { syscall4(nr::RT_SIGTIMEDWAIT, p, 0, zero, SIGSET) };
    line!("rt_sigtimedwait-set", kind, ret);
    // SAFETY: the kernel reads a timespec at `p`.
    let ret = unsafe { syscall4(nr::RT_SIGTIMEDWAIT, usr1, 0, p, SIGSET) };
    line!("rt_sigtimedwait-timeout", kind, ret);
    // With SIGUSR1 pending: Linux takes it, then fails to store the info.
    // SAFETY: touches no memory.
    unsafe { syscall2(nr::KILL, getpid() as usize, SIGUSR1) };
    // SAFETY: the kernel writes a siginfo at `p`.
    let ret = unsafe { syscall4(nr::RT_SIGTIMEDWAIT, usr1, p, zero, SIGSET) };
    line!(
        "rt_sigtimedwait-info",
        kind,
        ret,
        " still-pending={}",
        take_usr1()
    );

    // SAFETY: the kernel reads a siginfo at `p` (zeros: SI_USER to self).
    let ret = unsafe { syscall3(nr::RT_SIGQUEUEINFO, getpid() as usize, SIGUSR1, p) };
    line!("rt_sigqueueinfo", kind, ret, " queued={}", take_usr1());
    // SAFETY: as above.
    let ret = unsafe {
        syscall4(
            nr::RT_TGSIGQUEUEINFO,
            getpid() as usize,
            gettid() as usize,
            SIGUSR1,
            p,
        )
    };
    line!("rt_tgsigqueueinfo", kind, ret, " queued={}", take_usr1());
    // SAFETY: touches no memory.
    if let Ok(pidfd) = check(unsafe { syscall2(nr::PIDFD_OPEN, getpid() as usize, 0) }) {
        // SAFETY: the kernel reads a siginfo at `p`.
        let ret = unsafe { syscall4(nr::PIDFD_SEND_SIGNAL, pidfd, SIGUSR1, p, 0) };
        line!("pidfd_send_signal", kind, ret, " queued={}", take_usr1());
        let _ = close(pidfd as i32);
    }
}

/// clone, clone3, execve, wait4, waitid, set_tid_address.
fn processes(kind: &str, p: usize, program: &[u8]) {
    // Legacy clone, like fork: the child exits at once.
    for (call, flags, parent_tid, child_tid, tls) in [
        ("clone-parent_tid", CLONE_PARENT_SETTID, p, 0, 0),
        ("clone-pidfd", CLONE_PIDFD, p, 0, 0),
        ("clone-child_tid", CLONE_CHILD_SETTID, 0, p, 0),
        ("clone-tls", CLONE_SETTLS, 0, 0, p),
    ] {
        let before = open_fds();
        // SAFETY: a fork-like clone (no CLONE_VM): the child has its own
        // copy of memory and exits at once.
        let ret = unsafe { syscall5(nr::CLONE, flags | SIGCHLD, 0, parent_tid, child_tid, tls) };
        if ret == 0 {
            exit_group(0);
        }
        let status = match check(ret) {
            Ok(pid) => match wait4(pid as i32, 0) {
                Ok((_, status)) if status.exited() => "exited",
                Ok(_) => "killed",
                Err(_) => "lost",
            },
            Err(_) => "none",
        };
        line!(
            call,
            kind,
            ret,
            " child={status} fds-left={}",
            leaked_since(before)
        );
    }
    // SAFETY: the kernel reads struct clone_args (size 64) at `p`.
    let ret = unsafe { syscall2(nr::CLONE3, p, 64) };
    if ret == 0 {
        exit_group(0);
    }
    if ret > 0 {
        let _ = wait4(ret as i32, 0);
    }
    line!("clone3-args", kind, ret);
    // clone_args { flags = CLONE_PIDFD, pidfd = p, exit_signal = SIGCHLD }.
    let mut args = [0u64; 8];
    args[0] = CLONE_PIDFD as u64;
    args[1] = p as u64;
    args[4] = SIGCHLD as u64;
    let before = open_fds();
    // SAFETY: the kernel reads the live struct and stores the pidfd at `p`.
    let ret = unsafe { syscall2(nr::CLONE3, args.as_ptr() as usize, 64) };
    if ret == 0 {
        exit_group(0);
    }
    if ret > 0 {
        let _ = wait4(ret as i32, 0);
    }
    line!(
        "clone3-pidfd",
        kind,
        ret,
        " fds-left={}",
        leaked_since(before)
    );

    // execve in a child: it returns the errno as its status, or runs
    // `badptr exec-probe` (status 100).
    let mut path = [0u8; 256];
    let len = program.len().min(255);
    path[..len].copy_from_slice(&program[..len]);
    let path = path.as_ptr() as usize;
    let probe_args = [path, c"exec-probe".as_ptr() as usize, 0];
    let bad_arg = [path, p, 0];
    let env = [0usize];
    let nonexistent = c"/nonexistent".as_ptr() as usize;
    for (call, file, argv, envp) in [
        (
            "execve-path",
            p,
            probe_args.as_ptr() as usize,
            env.as_ptr() as usize,
        ),
        (
            "execve-argv-missing-file",
            nonexistent,
            p,
            env.as_ptr() as usize,
        ),
        ("execve-argv", path, p, env.as_ptr() as usize),
        (
            "execve-arg",
            path,
            bad_arg.as_ptr() as usize,
            env.as_ptr() as usize,
        ),
        ("execve-envp", path, probe_args.as_ptr() as usize, p),
    ] {
        let result = match fork() {
            Ok(0) => {
                // SAFETY: replaces this child, or fails.
                let ret = unsafe { syscall3(nr::EXECVE, file, argv, envp) };
                exit_group(-ret as i32);
            }
            Ok(pid) => match wait4(pid as i32, 0) {
                Ok((_, status)) if status.exited() && status.exit_status() == 100 => -0,
                Ok((_, status)) if status.exited() => -(status.exit_status() as isize),
                _ => -(Errno::EIO.0 as isize),
            },
            Err(e) => -(e.0 as isize),
        };
        line!(call, kind, result);
    }

    // wait4 and waitid reap the child, then fail to store what they report.
    let child = exited_child();
    // SAFETY: the kernel writes an int at `p`.
    let ret = unsafe { syscall4(nr::WAIT4, child as usize, p, 0, 0) };
    line!("wait4-status", kind, ret, " child={}", reaped(child));
    let child = exited_child();
    // SAFETY: the kernel writes a struct rusage at `p`.
    let ret = unsafe { syscall4(nr::WAIT4, child as usize, 0, 0, p) };
    line!("wait4-rusage", kind, ret, " child={}", reaped(child));
    let child = exited_child();
    // SAFETY: the kernel writes a siginfo at `p`.
    let ret = unsafe { syscall5(nr::WAITID, P_PID, child as usize, p, WEXITED, 0) };
    line!("waitid-infop", kind, ret, " child={}", reaped(child));
    let child = exited_child();
    let mut info = [0u8; 128];
    // SAFETY: the kernel writes a siginfo into the live buffer and a
    // struct rusage at `p`.
    let ret = unsafe {
        syscall5(
            nr::WAITID,
            P_PID,
            child as usize,
            info.as_mut_ptr() as usize,
            WEXITED,
            p,
        )
    };
    line!("waitid-rusage", kind, ret, " child={}", reaped(child));

    in_child(|| {
        // Stored only; the kernel clears the word when the child exits.
        // SAFETY: touches no memory now.
        let ret = unsafe { syscall1(nr::SET_TID_ADDRESS, p) };
        line!("set_tid_address", kind, ret);
    });
}

/// futex, nanosleep, clock_gettime, arch_prctl, semop, semtimedop, semctl.
fn misc(kind: &str, p: usize) {
    for (call, op) in [
        ("futex-wake", FUTEX_WAKE),
        ("futex-wake-private", FUTEX_WAKE | FUTEX_PRIVATE_FLAG),
    ] {
        // SAFETY: the kernel looks at the word at `p` and wakes no one.
        let ret = unsafe { syscall3(nr::FUTEX, p, op, 1) };
        line!(call, kind, ret, value);
    }
    // Value 1: zeros do not match, so the call never sleeps.
    // SAFETY: the kernel reads the word at `p`.
    let ret = unsafe { syscall4(nr::FUTEX, p, FUTEX_WAIT, 1, 0) };
    line!("futex-wait", kind, ret);
    let word = 0u32;
    // SAFETY: the kernel reads the live word and a timespec at `p`.
    let ret = unsafe { syscall4(nr::FUTEX, &word as *const u32 as usize, FUTEX_WAIT, 0, p) };
    line!("futex-wait-timeout", kind, ret);

    // SAFETY: the kernel reads a timespec at `p` (zeros: no sleep).
    let ret = unsafe { syscall2(nr::NANOSLEEP, p, 0) };
    line!("nanosleep-req", kind, ret);
    // SAFETY: `rem` is written only if a signal interrupts the sleep.
    let ret = unsafe { syscall2(nr::NANOSLEEP, ZERO_TIMESPEC.as_ptr() as usize, p) };
    line!("nanosleep-rem", kind, ret);
    // SAFETY: the kernel writes a timespec at `p`.
    let ret = unsafe { syscall2(nr::CLOCK_GETTIME, CLOCK_MONOTONIC, p) };
    line!("clock_gettime", kind, ret);

    timers_and_poll(kind, p);

    // SAFETY: the kernel writes the FS base at `p`.
    let ret = unsafe { syscall2(nr::ARCH_PRCTL, ARCH_GET_FS, p) };
    line!("arch_prctl-get_fs", kind, ret);
    // SAFETY: the kernel writes the GS base at `p`.
    let ret = unsafe { syscall2(nr::ARCH_PRCTL, ARCH_GET_GS, p) };
    line!("arch_prctl-get_gs", kind, ret);
    in_child(|| {
        // The address is the new base itself (never dereferenced by the
        // kernel); this child uses neither segment before it exits.
        for (call, code) in [
            ("arch_prctl-set_fs", ARCH_SET_FS),
            ("arch_prctl-set_gs", ARCH_SET_GS),
        ] {
            // SAFETY: changes only this child's segment base.
            let ret = unsafe { syscall2(nr::ARCH_PRCTL, code, p) };
            line!(call, kind, ret);
        }
    });

    // SAFETY: touches no memory.
    let Ok(id) = check(unsafe { syscall3(nr::SEMGET, IPC_PRIVATE, 1, 0o600) }) else {
        println!("semget failed");
        return;
    };
    // SAFETY: the kernel reads one struct sembuf at `p` (zeros: wait for
    // zero on semaphore 0, which is 0: no sleep).
    let ret = unsafe { syscall3(nr::SEMOP, id, p, 1) };
    line!("semop", kind, ret);
    let sembuf = [0u16, 0, 0x800 /* IPC_NOWAIT */];
    // SAFETY: the kernel reads the live sembuf and a timespec at `p`.
    let ret = unsafe { syscall4(nr::SEMTIMEDOP, id, sembuf.as_ptr() as usize, 1, p) };
    line!("semtimedop", kind, ret);
    for (call, command) in [
        ("semctl-ipc_stat", IPC_STAT),
        ("semctl-getall", GETALL),
        ("semctl-setall", SETALL),
    ] {
        // SAFETY: the kernel reads or writes at `p`.
        let ret = unsafe { syscall4(nr::SEMCTL, id, 0, command, p) };
        line!(call, kind, ret);
    }
    // SAFETY: touches no memory.
    unsafe { syscall3(nr::SEMCTL, id, 0, IPC_RMID) };
}

/// The clock, interval-timer and poll calls. Every call here returns at
/// once: zero timeouts, a disarmed timer.
fn timers_and_poll(kind: &str, p: usize) {
    use forkvm_user::syscall::nr::{
        GETITIMER, GETTIMEOFDAY, POLL, PPOLL, PSELECT6, SELECT, SETITIMER, SYSINFO, TIME,
    };
    let zero_timeval = [0u64; 2];
    let zero = zero_timeval.as_ptr() as usize;
    let itimerval = [0u64; 4];
    let disarm = itimerval.as_ptr() as usize;
    // Each call reads or writes at `p`, or at the live locals; one line
    // each (the straddle bytes are refilled in between).
    macro_rules! call {
        ($name:expr, $ret:expr) => {
            // SAFETY: as said above.
            let ret = unsafe { $ret };
            line!($name, kind, ret);
        };
    }
    call!("gettimeofday-tv", syscall2(GETTIMEOFDAY, p, 0));
    call!("gettimeofday-tz", syscall2(GETTIMEOFDAY, 0, p));
    call!("time", syscall1(TIME, p));
    call!("sysinfo", syscall1(SYSINFO, p));
    call!("getitimer", syscall2(GETITIMER, 0, p));
    call!("setitimer-new", syscall3(SETITIMER, 0, p, 0));
    call!("setitimer-old", syscall3(SETITIMER, 0, disarm, p));
    call!("poll", syscall3(POLL, p, 1, 0));
    call!("select-set", syscall5(SELECT, 1, p, 0, 0, zero));
    call!("ppoll-timeout", syscall5(PPOLL, 0, 0, p, 0, 8));
    let timespec = ZERO_TIMESPEC.as_ptr() as usize;
    call!(
        "pselect6-sigpack",
        syscall6(PSELECT6, 0, 0, 0, 0, timespec, p)
    );
}

/// NULL where Linux requires a pointer.
fn nulls() {
    // SAFETY: NULL pointers: nothing is read or written.
    let ret = unsafe { syscall2(nr::GETRLIMIT, RLIMIT_NOFILE, 0) };
    line!("getrlimit", "null", ret);
    in_child(|| {
        // SAFETY: as above.
        let ret = unsafe { syscall2(nr::SETRLIMIT, RLIMIT_CORE, 0) };
        line!("setrlimit", "null", ret);
    });
    // SAFETY: as above.
    let ret = unsafe { syscall1(nr::UNAME, 0) };
    line!("uname", "null", ret);
    // SAFETY: as above.
    let ret = unsafe { syscall3(nr::FUTEX, 0, FUTEX_WAKE, 1) };
    line!("futex-wake", "null", ret);
    let before = open_fds();
    // SAFETY: as above.
    let ret = unsafe { syscall2(nr::PIPE2, 0, 0) };
    line!("pipe2", "null", ret, " fds-left={}", leaked_since(before));
    // SAFETY: as above.
    let ret = unsafe { syscall2(nr::CLOCK_GETTIME, CLOCK_MONOTONIC, 0) };
    line!("clock_gettime", "null", ret);
}

/// Linux reads the system call number as an `int`: the upper half of rax
/// is ignored (`0x1_0000_0027` is getpid).
fn syscall_number_upper_half() {
    for (name, number) in [
        ("getpid+bit32", (1usize << 32) | nr::GETPID),
        ("getpid+upper-ones", 0xffff_ffff_0000_0000 | nr::GETPID),
    ] {
        // SAFETY: getpid touches no memory, whatever the kernel runs.
        let ret = unsafe { syscall0(number) };
        let same = ret == getpid() as isize;
        line!(
            "syscall-number",
            name,
            if same { 0 } else { ret },
            " is-getpid={same}"
        );
    }
}

/// `kind@suffix` without an allocator.
fn alloc_free_concat(kind: &str, suffix: &str) -> Concat {
    let mut c = Concat {
        bytes: [0; 32],
        len: 0,
    };
    for &b in kind.as_bytes().iter().chain(suffix.as_bytes()) {
        if c.len < c.bytes.len() {
            c.bytes[c.len] = b;
            c.len += 1;
        }
    }
    c
}

struct Concat {
    bytes: [u8; 32],
    len: usize,
}

impl core::ops::Deref for Concat {
    type Target = str;
    fn deref(&self) -> &str {
        core::str::from_utf8(&self.bytes[..self.len]).unwrap_or("?")
    }
}
