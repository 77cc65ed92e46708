//! `clonecheck`: runs a fixed table of `clone`(56) flag combinations, then
//! of `clone3`(435) argument structs, and prints one line per case:
//!
//! - `<flags hex> <exit signal>[ <variant>] ok|err ENAME|FAIL <detail>` for
//!   legacy `clone(flags | exit_signal, stack, &parent_tid, &child_tid, tls)`;
//! - `clone3 <case> ok|err ENAME|FAIL <detail>`.
//!
//! `ok`: the call succeeded, the child (which exits 0 at once, see
//! `forkvm_user::clone_probe`) ended normally and what the flags promise
//! could be seen from here held (`parent_tid` holds the tid, a `CLONE_VM`
//! child's writes are visible, `CLONE_CHILD_SETTID`/`CLEARTID` words of a
//! `CLONE_VM` child, a `CLONE_VFORK` parent resumed only after its child
//! ran, a pidfd was stored and closes, a `CLONE_PARENT` child is its
//! caller's parent's child). `err ENAME`: the call failed. `FAIL`: it
//! succeeded but something above did not hold.
//!
//! The output is meant to be diffed between Linux and the forkvm kernel
//! (`guest/user/tests/clonecheck_host.rs` holds Linux's table). Exit
//! status 0 unless a case printed `FAIL` (1). Run it as root: a few cases
//! need privilege (`set_tid`) and one drops it in a child (`setgid`/`setuid`
//! 65534).
//!
//! Every child is reaped (`wait4(pid, __WALL)`) or, for threads, joined
//! through its `CLONE_CHILD_CLEARTID` word with a timeout; a thread without
//! one is waited for through the word it writes before it exits.
//!
//! System calls: clone, clone3, wait4, exit, exit_group, mmap, munmap,
//! futex, clock_gettime, nanosleep, close, fork, getpid, setgid, setuid,
//! rt_sigaction (`SIG_IGN` for `SIGRTMAX`, an exit signal of some cases),
//! write.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::sync::atomic::{AtomicU32, Ordering};

use forkvm_user::clone::{
    CLONE_CHILD_CLEARTID, CLONE_CHILD_SETTID, CLONE_DETACHED, CLONE_FILES, CLONE_FS, CLONE_NEWNS,
    CLONE_PARENT, CLONE_PARENT_SETTID, CLONE_PIDFD, CLONE_PTRACE, CLONE_SETTLS, CLONE_SIGHAND,
    CLONE_SYSVSEM, CLONE_THREAD, CLONE_UNTRACED, CLONE_VFORK, CLONE_VM, SIGCHLD, THREAD_FLAGS,
};
use forkvm_user::clone_probe::{
    clone3_exit0, clone_exit0, reap, CloneArea, CloneArgs, Reaped, CLONE_ARGS_SIZE_VER0,
    CLONE_ARGS_SIZE_VER2, CLONE_CLEAR_SIGHAND, CLONE_INTO_CGROUP, CLONE_IO, CLONE_NEWIPC,
    CLONE_NEWPID, CLONE_NEWUSER, CLONE_NEWUTS, JOIN_TIMEOUT_NS, UNWRITTEN,
};
use forkvm_user::cred::{setgid, setuid};
use forkvm_user::syscall::{
    check, close, exit_group, fork, getpid, mmap, munmap, nanosleep, nr, syscall4, wait4, Pid,
    Timespec, WaitStatus, MAP_ANONYMOUS, MAP_SHARED, PROT_READ, PROT_WRITE, WALL,
};
use forkvm_user::time::monotonic_ns;
use forkvm_user::{entry, println, Errno};

entry!(main);

/// What a case printed.
enum Outcome {
    Ok,
    Err(Errno),
    Fail(String),
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Ok => f.write_str("ok"),
            Outcome::Err(e) => f.write_str(e.name().unwrap_or("UNKNOWN")),
            Outcome::Fail(why) => write!(f, "FAIL {why}"),
        }
    }
}

impl Outcome {
    fn line(&self) -> String {
        match self {
            Outcome::Err(_) => format!("err {self}"),
            _ => format!("{self}"),
        }
    }
}

/// `FAIL` unless `cond`.
macro_rules! check {
    ($cond:expr, $($why:tt)*) => {
        if !$cond {
            return Outcome::Fail(format!($($why)*));
        }
    };
}

/// The `tls` a legacy case passes.
#[derive(Clone, Copy)]
enum Tls {
    /// 0.
    Null,
    /// The area's TLS block.
    Valid,
    /// A raw value.
    Raw(u64),
}

/// A legacy `clone` case.
struct Legacy {
    flags: u64,
    signal: u64,
    tls: Tls,
    /// Printed after the exit signal when the flags alone do not tell the
    /// case apart.
    variant: &'static str,
}

const fn case(flags: u64, signal: u64) -> Legacy {
    Legacy {
        flags,
        signal,
        tls: Tls::Null,
        variant: "",
    }
}

/// Linux's `clone` flag checks, one case each (the brief's list), then
/// extras.
const LEGACY: &[Legacy] = &[
    case(0, SIGCHLD),
    case(CLONE_VM, SIGCHLD),
    case(CLONE_FS, SIGCHLD),
    case(CLONE_FILES, SIGCHLD),
    // CLONE_SIGHAND needs CLONE_VM: EINVAL.
    case(CLONE_SIGHAND, SIGCHLD),
    case(CLONE_SIGHAND | CLONE_VM, SIGCHLD),
    // CLONE_THREAD needs CLONE_SIGHAND: EINVAL.
    case(CLONE_THREAD, SIGCHLD),
    case(CLONE_THREAD | CLONE_SIGHAND | CLONE_VM, 0),
    // A new mount namespace cannot share the fs struct: EINVAL.
    case(CLONE_NEWNS | CLONE_FS, SIGCHLD),
    // Neither can a new user namespace: EINVAL.
    case(CLONE_NEWUSER | CLONE_FS, SIGCHLD),
    // A thread cannot be in a new pid namespace: EINVAL.
    case(
        CLONE_THREAD | CLONE_SIGHAND | CLONE_VM | CLONE_NEWPID,
        SIGCHLD,
    ),
    // CLONE_DETACHED is reserved next to CLONE_PIDFD: EINVAL.
    case(CLONE_PIDFD | CLONE_DETACHED, SIGCHLD),
    // The child is made our parent's (checked from a helper process).
    case(CLONE_PARENT, SIGCHLD),
    case(CLONE_SYSVSEM, SIGCHLD),
    case(CLONE_IO, SIGCHLD),
    case(CLONE_UNTRACED, SIGCHLD),
    case(CLONE_VFORK | CLONE_VM, SIGCHLD),
    Legacy {
        tls: Tls::Valid,
        ..case(CLONE_SETTLS, SIGCHLD)
    },
    case(CLONE_PARENT_SETTID, SIGCHLD),
    case(CLONE_CHILD_SETTID, SIGCHLD),
    case(CLONE_CHILD_CLEARTID, SIGCHLD),
    // The pidfd is stored in the parent_tid word.
    case(CLONE_PIDFD, SIGCHLD),
    // Legacy clone has one pointer for both: EINVAL.
    case(CLONE_PIDFD | CLONE_PARENT_SETTID, SIGCHLD),
    // Bit 32 (CLONE_CLEAR_SIGHAND for clone3): legacy clone only looks at
    // the low 32 bits of its flags.
    case(1 << 32, SIGCHLD),
    // --- extras ---
    // No exit signal: only wait4(__WALL/__WCLONE) sees the child.
    case(0, 0),
    // SIGRTMAX, the highest valid exit signal (ignored here: it is sent).
    case(0, SIGRTMAX),
    // Legacy clone does not validate the exit signal (clone3 does): 128 is
    // accepted and never sent.
    case(0, 128),
    // Legacy clone ignores CLONE_DETACHED alone.
    case(CLONE_DETACHED, SIGCHLD),
    // Ignored when the caller is not traced.
    case(CLONE_PTRACE, SIGCHLD),
    // The highest bit: ignored like bit 32.
    case(1 << 63, SIGCHLD),
    // vfork without a shared address space: the parent still waits.
    case(CLONE_VFORK, SIGCHLD),
    // A thread's exit signal is ignored.
    case(CLONE_THREAD | CLONE_SIGHAND | CLONE_VM, SIGCHLD),
    // CLONE_THREAD|CLONE_SIGHAND without CLONE_VM: EINVAL.
    case(CLONE_THREAD | CLONE_SIGHAND, SIGCHLD),
    // pthread_create's flags, joined through CLONE_CHILD_CLEARTID.
    Legacy {
        tls: Tls::Valid,
        ..case(THREAD_FLAGS, 0)
    },
    // With CLONE_VM the child's tid words are visible here.
    case(CLONE_CHILD_SETTID | CLONE_VM, SIGCHLD),
    case(CLONE_CHILD_CLEARTID | CLONE_VM, SIGCHLD),
    case(CLONE_PARENT_SETTID | CLONE_VM, SIGCHLD),
    // A new user namespace needs no privilege...
    case(CLONE_NEWUSER, SIGCHLD),
    // ...and owns the namespaces made with it.
    case(
        CLONE_NEWUSER | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWPID,
        SIGCHLD,
    ),
    // A thread cannot be in a new user namespace: EINVAL.
    case(
        CLONE_THREAD | CLONE_SIGHAND | CLONE_VM | CLONE_NEWUSER,
        SIGCHLD,
    ),
    // A new IPC namespace cannot share the semaphore undo list: EINVAL.
    case(CLONE_NEWIPC | CLONE_SYSVSEM, SIGCHLD),
    // A non-canonical FS base: refused (arch_prctl(ARCH_SET_FS) rules).
    Legacy {
        tls: Tls::Raw(1 << 63),
        variant: " tls=noncanonical",
        ..case(CLONE_SETTLS, SIGCHLD)
    },
];

/// `SIGRTMAX`: an exit signal some cases use, whose default action would
/// end this program.
const SIGRTMAX: u64 = forkvm_abi::linux::signal::SIGRTMAX as u64;

/// `rt_sigaction(signal, {SIG_IGN}, NULL, 8)`.
fn ignore_signal(signal: u64) -> Result<(), Errno> {
    // struct sigaction: handler (SIG_IGN = 1), flags, restorer, mask.
    let action: [u64; 4] = [1, 0, 0, 0];
    // SAFETY: the kernel reads the live struct; nothing is written.
    check(unsafe {
        syscall4(
            nr::RT_SIGACTION,
            signal as usize,
            action.as_ptr() as usize,
            0,
            8,
        )
    })
    .map(drop)
}

fn main(_args: &[&[u8]], _env: &[&[u8]]) -> i32 {
    if let Err(e) = ignore_signal(SIGRTMAX) {
        println!("clonecheck: rt_sigaction({SIGRTMAX}, SIG_IGN): {e}");
        return 1;
    }
    let mut failed = false;
    for case in LEGACY {
        let outcome = if case.flags & CLONE_PARENT != 0 {
            legacy_parent(case.flags | case.signal)
        } else {
            legacy(case)
        };
        failed |= matches!(outcome, Outcome::Fail(_));
        println!(
            "{:#x} {}{} {}",
            case.flags,
            case.signal,
            case.variant,
            outcome.line()
        );
    }
    for (name, run) in CLONE3 {
        let outcome = run();
        failed |= matches!(outcome, Outcome::Fail(_));
        println!("clone3 {name} {}", outcome.line());
    }
    i32::from(failed)
}

/// Waits until `word` is non-zero (a thread without `CLONE_CHILD_CLEARTID`
/// marks `ran` before it exits); false after [`JOIN_TIMEOUT_NS`].
fn wait_nonzero(word: &AtomicU32) -> bool {
    let deadline = monotonic_ns() + JOIN_TIMEOUT_NS;
    while word.load(Ordering::Acquire) == 0 {
        if monotonic_ns() >= deadline {
            return false;
        }
        let _ = nanosleep(Timespec::from_nanos(100_000));
    }
    true
}

/// Checks how the child of a successful clone with `flags` ended, and what
/// `CLONE_VM` lets us see of it; leaks the area if it may still be in use.
/// A thread is joined through the area's `child_tid` word if `own_ctid`.
fn finish(flags: u64, pid: Pid, area: CloneArea, own_ctid: bool) -> Outcome {
    let reaped = reap(flags, pid, own_ctid.then(|| area.ctid()));
    let outcome = check_reaped(flags, pid, &area, reaped);
    if reaped.area_free(flags) {
        drop(area);
    } else {
        area.leak();
    }
    outcome
}

fn check_reaped(flags: u64, pid: Pid, area: &CloneArea, reaped: Reaped) -> Outcome {
    match reaped {
        Reaped::Exited(WaitStatus(0)) | Reaped::Joined => {}
        Reaped::Unjoinable => {
            check!(
                wait_nonzero(area.ran()),
                "thread {pid} did not run within {} ms",
                JOIN_TIMEOUT_NS / 1_000_000
            );
        }
        other => return Outcome::Fail(format!("child {pid}: {other}")),
    }
    if flags & CLONE_VM != 0 {
        check!(
            area.ran().load(Ordering::Acquire) == 1,
            "CLONE_VM child {pid}: its write is not visible"
        );
        let ctid = area.ctid().load(Ordering::Acquire);
        if flags & CLONE_CHILD_CLEARTID != 0 && !matches!(reaped, Reaped::Unjoinable) {
            check!(
                ctid == 0,
                "child_tid {ctid:#x} after the child ended, expected 0"
            );
        } else if flags & CLONE_CHILD_SETTID != 0 {
            check!(ctid == pid, "child_tid {ctid:#x}, expected the tid {pid}");
        }
    }
    Outcome::Ok
}

/// Checks the pidfd the kernel stored in `word` and closes it.
fn check_pidfd(word: &AtomicU32) -> Outcome {
    let fd = word.load(Ordering::Acquire);
    check!(fd != UNWRITTEN, "CLONE_PIDFD: no pidfd stored");
    check!(
        close(fd as i32).is_ok(),
        "CLONE_PIDFD: stored {} is not a descriptor",
        fd as i32
    );
    Outcome::Ok
}

fn legacy(case: &Legacy) -> Outcome {
    let flags = case.flags | case.signal;
    let area = match CloneArea::new() {
        Ok(area) => area,
        Err(e) => return Outcome::Fail(format!("mmap: {e}")),
    };
    let tls = match case.tls {
        Tls::Null => 0,
        Tls::Valid => area.tls(),
        Tls::Raw(tls) => tls,
    };
    let pid = match clone_exit0(flags, &area, tls) {
        Ok(pid) => pid,
        Err(e) => return Outcome::Err(e),
    };
    // Seen as clone returned: a vfork parent resumes only after its child
    // has released the memory, i.e. after it ran.
    let ran_early = area.ran().load(Ordering::Acquire);
    let ptid = area.ptid().load(Ordering::Acquire);
    let pidfd = if flags & CLONE_PIDFD != 0 {
        check_pidfd(area.ptid())
    } else {
        Outcome::Ok
    };
    let ended = finish(flags, pid, area, true);
    if !matches!(ended, Outcome::Ok) {
        return ended;
    }
    if !matches!(pidfd, Outcome::Ok) {
        return pidfd;
    }
    if flags & CLONE_PARENT_SETTID != 0 {
        check!(ptid == pid, "parent_tid {ptid:#x}, expected the tid {pid}");
    }
    if flags & (CLONE_VFORK | CLONE_VM) == CLONE_VFORK | CLONE_VM {
        check!(
            ran_early == 1,
            "CLONE_VFORK: clone returned before the child ran"
        );
    }
    Outcome::Ok
}

/// A page shared with a forked helper: its results.
struct SharedPage(*mut u8);

impl SharedPage {
    fn new() -> Result<Self, Errno> {
        // SAFETY: without MAP_FIXED no existing mapping is touched.
        let ptr = unsafe {
            mmap(
                0,
                4096,
                PROT_READ | PROT_WRITE,
                MAP_SHARED | MAP_ANONYMOUS,
                -1,
                0,
            )
        }?;
        Ok(Self(ptr))
    }

    fn word(&self, i: usize) -> &AtomicU32 {
        assert!(i < 1024);
        // SAFETY: in our live, 4-aligned page, only accessed atomically.
        unsafe { AtomicU32::from_ptr(self.0.cast::<u32>().add(i)) }
    }
}

impl Drop for SharedPage {
    fn drop(&mut self) {
        // SAFETY: ours; the helper that shared it has been reaped.
        let _ = unsafe { munmap(self.0, 4096) };
    }
}

/// Outcome codes in word 0 of a [`SharedPage`]: ok, err (errno in word 1),
/// or a failure with a message (length in word 2, bytes from word 4).
const CODE_OK: u32 = 1;
const CODE_ERR: u32 = 2;
const CODE_FAIL: u32 = 3;

fn put(page: &SharedPage, outcome: &Outcome) {
    match outcome {
        Outcome::Ok => page.word(0).store(CODE_OK, Ordering::Release),
        Outcome::Err(e) => {
            page.word(1).store(e.0 as u32, Ordering::Relaxed);
            page.word(0).store(CODE_ERR, Ordering::Release);
        }
        Outcome::Fail(why) => {
            let bytes = &why.as_bytes()[..why.len().min(1024)];
            for (i, chunk) in bytes.chunks(4).enumerate() {
                let mut word = [0u8; 4];
                word[..chunk.len()].copy_from_slice(chunk);
                page.word(4 + i)
                    .store(u32::from_ne_bytes(word), Ordering::Relaxed);
            }
            page.word(2).store(bytes.len() as u32, Ordering::Relaxed);
            page.word(0).store(CODE_FAIL, Ordering::Release);
        }
    }
}

fn take(page: &SharedPage) -> Outcome {
    match page.word(0).load(Ordering::Acquire) {
        CODE_OK => Outcome::Ok,
        CODE_ERR => Outcome::Err(Errno(page.word(1).load(Ordering::Relaxed) as i32)),
        CODE_FAIL => {
            let len = page.word(2).load(Ordering::Relaxed) as usize;
            let mut bytes = Vec::new();
            for i in 0..len.div_ceil(4) {
                bytes.extend_from_slice(&page.word(4 + i).load(Ordering::Relaxed).to_ne_bytes());
            }
            bytes.truncate(len);
            Outcome::Fail(String::from_utf8_lossy(&bytes).into())
        }
        code => Outcome::Fail(format!("helper left no result (code {code})")),
    }
}

/// Runs `body` in a forked helper process that reports through `page`, and
/// returns its outcome.
fn in_helper(page: &SharedPage, body: impl FnOnce(&SharedPage) -> Outcome) -> Outcome {
    let helper = match fork() {
        Ok(0) => {
            let outcome = body(page);
            put(page, &outcome);
            exit_group(0)
        }
        Ok(pid) => pid,
        Err(e) => return Outcome::Fail(format!("fork: {e}")),
    };
    match wait4(helper as i32, 0) {
        Ok((_, WaitStatus(0))) => take(page),
        Ok((_, status)) => Outcome::Fail(format!("helper ended with wait status {:#x}", status.0)),
        Err(e) => Outcome::Fail(format!("wait4(helper): {e}")),
    }
}

/// A fresh [`SharedPage`] for [`in_helper`].
fn with_page(f: impl FnOnce(&SharedPage) -> Outcome) -> Outcome {
    match SharedPage::new() {
        Ok(page) => f(&page),
        Err(e) => Outcome::Fail(format!("mmap(MAP_SHARED): {e}")),
    }
}

/// `CLONE_PARENT`: a helper clones; the child must be ours (the helper's
/// parent's), not the helper's.
fn legacy_parent(flags: u64) -> Outcome {
    with_page(|page| legacy_parent_in(page, flags))
}

fn legacy_parent_in(page: &SharedPage, flags: u64) -> Outcome {
    let outcome = in_helper(page, |page| {
        let area = match CloneArea::new() {
            Ok(area) => area,
            Err(e) => return Outcome::Fail(format!("mmap: {e}")),
        };
        let pid = match clone_exit0(flags, &area, 0) {
            Ok(pid) => pid,
            Err(e) => return Outcome::Err(e),
        };
        page.word(3).store(pid, Ordering::Release);
        let waited = wait4(pid as i32, WALL);
        if flags & CLONE_VM != 0 {
            area.leak();
        }
        match waited {
            Err(Errno::ECHILD) => Outcome::Ok,
            other => Outcome::Fail(format!(
                "CLONE_PARENT child {pid}: its creator's wait4 gave {other:?}, expected ECHILD"
            )),
        }
    });
    // The helper stored the child's pid (if it made one) before its checks:
    // the child is ours to reap, whatever the helper saw.
    let pid = page.word(3).load(Ordering::Acquire);
    if pid == 0 {
        return outcome;
    }
    let reaped = reap_sibling(pid);
    if !matches!(outcome, Outcome::Ok) {
        return outcome;
    }
    reaped
}

/// Reaps the child a `CLONE_PARENT` helper made, which must be ours.
fn reap_sibling(pid: Pid) -> Outcome {
    match wait4(pid as i32, WALL) {
        Ok((_, WaitStatus(0))) => Outcome::Ok,
        Ok((_, status)) => Outcome::Fail(format!(
            "CLONE_PARENT child {pid}: wait status {:#x}",
            status.0
        )),
        Err(e) => Outcome::Fail(format!(
            "CLONE_PARENT child {pid} is not its creator's parent's child: wait4: {e}"
        )),
    }
}

// ---------------------------------------------------------------------------
// clone3

type Case3 = (&'static str, fn() -> Outcome);

/// The cases, in output order.
const CLONE3: &[Case3] = &[
    ("size-64", || run3(|_| {}, CLONE_ARGS_SIZE_VER0, None)),
    ("size-88", || run3(|_| {}, CLONE_ARGS_SIZE_VER2, None)),
    // Smaller than CLONE_ARGS_SIZE_VER0: EINVAL.
    ("size-56", || run3(|_| {}, 56, None)),
    ("size-8", || run3(|_| {}, 8, None)),
    // Larger than a page: E2BIG before anything is read.
    ("size-4097", || run3(|_| {}, 4097, None)),
    // Larger than the kernel's struct: the tail must be zero.
    ("size-96-tail", || run3(|_| {}, 96, Some(1))),
    ("size-96-zero", || run3(|_| {}, 96, None)),
    ("size-4096-zero", || run3(|_| {}, 4096, None)),
    ("exit-signal-64", || {
        run3(|a| a.exit_signal = SIGRTMAX, 88, None)
    }),
    ("exit-signal-65", || run3(|a| a.exit_signal = 65, 88, None)),
    ("exit-signal-0", || run3(|a| a.exit_signal = 0, 88, None)),
    // The exit signal has its own field: CSIGNAL bits in flags are EINVAL.
    ("flags-csignal", || run3(|a| a.flags = SIGCHLD, 88, None)),
    ("stack-no-size", || run3(|a| a.stack_size = 0, 88, None)),
    ("size-no-stack", || run3(|a| a.stack = 0, 88, None)),
    ("no-stack", || {
        run3(
            |a| {
                a.stack = 0;
                a.stack_size = 0;
            },
            88,
            None,
        )
    }),
    ("vm", || run3(|a| a.flags = CLONE_VM, 88, None)),
    ("vfork-vm", || {
        run3(|a| a.flags = CLONE_VFORK | CLONE_VM, 88, None)
    }),
    ("thread", || {
        run3(
            |a| {
                a.flags = CLONE_THREAD | CLONE_SIGHAND | CLONE_VM | CLONE_CHILD_CLEARTID;
                a.exit_signal = 0;
            },
            88,
            None,
        )
    }),
    // Threads and CLONE_PARENT children take their exit signal from the
    // caller: clone3 refuses one (legacy clone ignores it).
    ("thread-exit-signal", || {
        run3(
            |a| a.flags = CLONE_THREAD | CLONE_SIGHAND | CLONE_VM | CLONE_CHILD_CLEARTID,
            88,
            None,
        )
    }),
    ("parent-exit-signal", || {
        run3(|a| a.flags = CLONE_PARENT, 88, None)
    }),
    ("settls", || run3(|a| a.flags = CLONE_SETTLS, 88, None)),
    ("parent-settid", || {
        run3(|a| a.flags = CLONE_PARENT_SETTID, 88, None)
    }),
    ("pidfd", || run3(|a| a.flags = CLONE_PIDFD, 88, None)),
    // Separate pointers: allowed in clone3.
    ("pidfd-parent-settid", || {
        run3(|a| a.flags = CLONE_PIDFD | CLONE_PARENT_SETTID, 88, None)
    }),
    ("pidfd-null", || {
        run3(
            |a| {
                a.flags = CLONE_PIDFD;
                a.pidfd = 0;
            },
            88,
            None,
        )
    }),
    ("detached", || run3(|a| a.flags = CLONE_DETACHED, 88, None)),
    ("clear-sighand", || {
        run3(|a| a.flags = CLONE_CLEAR_SIGHAND, 88, None)
    }),
    ("clear-sighand-sighand", || {
        run3(
            |a| a.flags = CLONE_CLEAR_SIGHAND | CLONE_SIGHAND | CLONE_VM,
            88,
            None,
        )
    }),
    // CLONE_INTO_CGROUP needs the VER2 struct (its cgroup field).
    ("into-cgroup-size-64", || {
        run3(|a| a.flags = CLONE_INTO_CGROUP, CLONE_ARGS_SIZE_VER0, None)
    }),
    ("flag-bit-40", || run3(|a| a.flags = 1 << 40, 88, None)),
    ("bad-args-pointer", run3_null_args),
    ("set-tid-self", || run3_set_tid(1, 1, false)),
    ("set-tid-null", || run3_set_tid(1, 1, true)),
    ("set-tid-no-size", || run3_set_tid(1, 0, false)),
    // More levels than the caller's pid namespace has (1).
    ("set-tid-size-2", || run3_set_tid(2, 2, false)),
    // More than MAX_PID_NS_LEVEL (32).
    ("set-tid-size-33", || run3_set_tid(33, 33, false)),
    ("set-tid-unprivileged", || {
        with_page(|page| {
            in_helper(page, |_| {
                if let Err(e) = setgid(65534) {
                    return Outcome::Fail(format!("setgid(65534): {e}"));
                }
                if let Err(e) = setuid(65534) {
                    return Outcome::Fail(format!("setuid(65534): {e}"));
                }
                run3_set_tid(1, 1, false)
            })
        })
    }),
];

/// `clone3` with the default arguments (no flags, `SIGCHLD`, a valid
/// stack and size, `pidfd`/`child_tid`/`parent_tid`/`tls` pointing at the
/// area's words and TLS block) changed by `edit`, in a zeroed buffer whose
/// bytes 88..96 hold `tail` if given, passed with `size`.
fn run3(edit: fn(&mut CloneArgs), size: usize, tail: Option<u64>) -> Outcome {
    let area = match CloneArea::new() {
        Ok(area) => area,
        Err(e) => return Outcome::Fail(format!("mmap: {e}")),
    };
    let mut args = CloneArgs {
        flags: 0,
        pidfd: area.pidfd().as_ptr() as u64,
        child_tid: area.ctid().as_ptr() as u64,
        parent_tid: area.ptid().as_ptr() as u64,
        exit_signal: SIGCHLD,
        stack: area.stack_base(),
        stack_size: area.stack_size(),
        tls: area.tls(),
        ..CloneArgs::default()
    };
    edit(&mut args);
    let mut buffer = alloc::vec![0u8; 8192];
    buffer[..CLONE_ARGS_SIZE_VER2].copy_from_slice(&args.to_bytes());
    if let Some(tail) = tail {
        buffer[88..96].copy_from_slice(&tail.to_ne_bytes());
    }
    // SAFETY: the pointers are the area's; the child writes only `ran`.
    let result = unsafe { clone3_exit0(buffer.as_ptr(), size, area.ran().as_ptr()) };
    finish3(&args, result, area)
}

/// Checks a `clone3` result as [`legacy`] does.
fn finish3(args: &CloneArgs, result: Result<Pid, Errno>, area: CloneArea) -> Outcome {
    let pid = match result {
        Ok(pid) => pid,
        Err(e) => return Outcome::Err(e),
    };
    let flags = args.flags;
    let ran_early = area.ran().load(Ordering::Acquire);
    let ptid = area.ptid().load(Ordering::Acquire);
    let pidfd = if flags & CLONE_PIDFD != 0 && args.pidfd == area.pidfd().as_ptr() as u64 {
        check_pidfd(area.pidfd())
    } else {
        Outcome::Ok
    };
    let own_ctid = args.child_tid == area.ctid().as_ptr() as u64;
    let ended = finish(flags, pid, area, own_ctid);
    if !matches!(ended, Outcome::Ok) {
        return ended;
    }
    if !matches!(pidfd, Outcome::Ok) {
        return pidfd;
    }
    if flags & CLONE_PARENT_SETTID != 0 {
        check!(ptid == pid, "parent_tid {ptid:#x}, expected the tid {pid}");
    }
    if flags & (CLONE_VFORK | CLONE_VM) == CLONE_VFORK | CLONE_VM {
        check!(
            ran_early == 1,
            "CLONE_VFORK: clone3 returned before the child ran"
        );
    }
    Outcome::Ok
}

/// `clone3(NULL, 88)`: EFAULT.
fn run3_null_args() -> Outcome {
    // SAFETY: the kernel cannot read the struct; nothing is created.
    let result = unsafe { clone3_exit0(core::ptr::null(), 88, core::ptr::null_mut()) };
    match result {
        Ok(pid) => Outcome::Fail(format!("clone3(NULL) created {pid}")),
        Err(e) => Outcome::Err(e),
    }
}

/// `set_tid` of `entries` pids, all our own pid (in use: `EEXIST` if the
/// caller may choose pids), passed with `set_tid_size` = `size` (the
/// pointer NULL if `null`).
fn run3_set_tid(entries: usize, size: u64, null: bool) -> Outcome {
    let area = match CloneArea::new() {
        Ok(area) => area,
        Err(e) => return Outcome::Fail(format!("mmap: {e}")),
    };
    let pids: Vec<i32> = (0..entries).map(|_| getpid() as i32).collect();
    let args = CloneArgs {
        exit_signal: SIGCHLD,
        stack: area.stack_base(),
        stack_size: area.stack_size(),
        set_tid: if null { 0 } else { pids.as_ptr() as u64 },
        set_tid_size: size,
        ..CloneArgs::default()
    };
    let bytes = args.to_bytes();
    // SAFETY: the kernel only reads the args and the pid array.
    let result = unsafe { clone3_exit0(bytes.as_ptr(), bytes.len(), area.ran().as_ptr()) };
    finish3(&args, result, area)
}
