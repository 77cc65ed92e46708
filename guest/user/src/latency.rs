//! Process-creation latency: the cost of one create + exit + reap cycle,
//! timed in user mode with the TSC (used by `lat_proc` and the shell's
//! `bench`), and within it the cost of the creating call alone: from just
//! before it until it returns in the parent (for `vfork` that is once the
//! child has exited; for the failing operations, the refused call is the
//! whole cycle).
//!
//! - `fork`: `fork`, the child `exit(0)`s at once, the parent `wait4`s it.
//! - `vfork`: the same with `vfork` (the parent sleeps until the child exits).
//! - `thread`: `clone` with glibc's `pthread_create` flags on a separate
//!   stack; the thread `exit(0)`s (the thread only, not the group) and is
//!   joined by futex-waiting on its `CLONE_CHILD_CLEARTID` word.
//! - `clone-vm`: `clone(CLONE_VM | SIGCHLD)` on a separate stack (shared
//!   memory, otherwise a process of its own); the child `exit(0)`s, the
//!   parent `wait4`s it.
//! - `fork-exec`: `fork`, the child `execve`s `exit_with 0` (found by name,
//!   as the forkvm kernel finds its embedded programs), the parent `wait4`s
//!   it (forkvm's kernel only: Linux finds no `exit_with` in the current
//!   directory).
//!
//! - `fork-threaded`: `fork` as above while the parent has
//!   [`FORK_THREADED_THREADS`] other threads busy on their own stacks
//!   ([`crate::spinners`]): on several CPUs its address space is live
//!   elsewhere when fork write-protects it (Linux's TLB-shootdown case).
//!   The threads are started before the warm-up and joined after the last
//!   cycle.
//!
//! - `exec-static`: `fork`, the child `execve`s `/bin/true` from the
//!   initramfs (`forkvm --initrd`; busybox's applet), the parent `wait4`s
//!   it. `shell`: lmbench `lat_proc`'s "shell", the same with
//!   `/bin/sh -c exit`. Without the program both fail with ENOENT.
//!
//! - `yield-pingpong`, `pipe-pingpong`: no creation per cycle: one round
//!   trip between two processes (context-switch latency, see
//!   [`crate::pingpong`]); `--mem` is ignored.
//!
//! `mem_mib` first maps and touches that many MiB (one write per 4 KiB page)
//! so the parent has that much resident memory for `fork` to copy the page
//! tables of. Warm-up: max(1, N/10) extra cycles first, not recorded.
//! Everything [`measure`] and [`sample`] map is unmapped before they return,
//! so a long-lived caller (the shell, `harnessd`) can measure again and
//! again. [`sample`] hands back the raw per-iteration samples of both
//! metrics (for the harness protocol); [`measure`] summarises the
//! create+exit+reap ones.

use core::ffi::CStr;
use core::fmt;
use core::ptr::null;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use crate::clone::{clone_raw, vfork, wait_tid_cleared, CLONE_VM, SIGCHLD, THREAD_FLAGS};
use crate::errno::Errno;
use crate::io::Bytes;
use crate::pingpong::PingPong;
use crate::stats::{summarize, Summary};
use crate::syscall::{exit, fork, mmap_anonymous, munmap, wait4, Pid, WaitStatus};
use crate::syscall::{PROT_READ, PROT_WRITE};
use crate::time::rdtsc_serialized;
use forkvm_protocol::FORK_THREADED_THREADS;

/// The operations and options, as `lat_proc` and `bench` take them.
pub const USAGE_ARGS: &str =
    "fork|vfork|thread|clone-vm|fork-exec|clone-einval|rlimit-eagain|max-threads-eagain|yield-pingpong|pipe-pingpong|fork-threaded|exec-static|shell [--iters N] [--mem MIB]";
/// Iterations when `--iters` is not given.
pub const DEFAULT_ITERS: usize = 1000;
/// Stack of the `thread` and `clone-vm` children (they only call `exit`).
pub(crate) const CHILD_STACK: usize = 64 * 1024;
const PAGE: usize = 4096;

/// What one measured cycle creates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `fork` + `exit` + `wait4`.
    Fork,
    /// `vfork` + `exit` + `wait4`.
    Vfork,
    /// `clone` of a thread + `exit` + futex join.
    Thread,
    /// `clone(CLONE_VM | SIGCHLD)` + `exit` + `wait4`.
    CloneVm,
    /// `fork` + `execve("exit_with", ["exit_with", "0"])` + `wait4`.
    ForkExec,
    /// A clone that must fail with EINVAL (CLONE_SIGHAND without
    /// CLONE_VM): the cost of the flag checks.
    CloneEinval,
    /// A fork that must fail with EAGAIN because `kernel.threads-max` is
    /// reached (set for the run through forkvm's sysctl, then restored).
    MaxThreadsEagain,
    /// A fork that must fail with EAGAIN because a non-root user is at its
    /// RLIMIT_NPROC (measured in a child that becomes uid 65534).
    RlimitEagain,
    /// Two processes hand the CPU back and forth with `sched_yield`.
    YieldPingPong,
    /// Two processes pass a byte back and forth through two pipes.
    PipePingPong,
    /// `fork` + `exit` + `wait4` while [`FORK_THREADED_THREADS`] other
    /// threads of the parent run ([`crate::spinners`]).
    ForkThreaded,
    /// `fork` + `execve("/bin/true", ["true"])` + `wait4`: a static
    /// program from the initramfs.
    ExecStatic,
    /// `fork` + `execve("/bin/sh", ["sh", "-c", "exit"])` + `wait4`
    /// (lmbench `lat_proc shell`).
    Shell,
}

impl Op {
    /// Every operation.
    pub const ALL: [Op; 13] = [
        Op::Fork,
        Op::Vfork,
        Op::Thread,
        Op::CloneVm,
        Op::ForkExec,
        Op::CloneEinval,
        Op::MaxThreadsEagain,
        Op::RlimitEagain,
        Op::YieldPingPong,
        Op::PipePingPong,
        Op::ForkThreaded,
        Op::ExecStatic,
        Op::Shell,
    ];

    /// The name on the command line and in the report.
    pub fn name(self) -> &'static str {
        match self {
            Op::Fork => "fork",
            Op::Vfork => "vfork",
            Op::Thread => "thread",
            Op::CloneVm => "clone-vm",
            Op::ForkExec => "fork-exec",
            Op::CloneEinval => "clone-einval",
            Op::MaxThreadsEagain => "max-threads-eagain",
            Op::RlimitEagain => "rlimit-eagain",
            Op::YieldPingPong => "yield-pingpong",
            Op::PipePingPong => "pipe-pingpong",
            Op::ForkThreaded => "fork-threaded",
            Op::ExecStatic => "exec-static",
            Op::Shell => "shell",
        }
    }

    /// The operation named `name`.
    pub fn from_name(name: &[u8]) -> Option<Op> {
        Op::ALL.into_iter().find(|op| op.name().as_bytes() == name)
    }

    /// The program and arguments the exec operations run from the
    /// initramfs.
    fn archive_program(self) -> Option<(&'static CStr, &'static [&'static CStr])> {
        match self {
            Op::ExecStatic => Some((c"/bin/true", &[c"true"])),
            Op::Shell => Some((c"/bin/sh", &[c"sh", c"-c", c"exit"])),
            _ => None,
        }
    }
}

/// A parsed `OP [--iters N] [--mem MIB]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// What to measure.
    pub op: Op,
    /// Measured cycles (at least 1).
    pub iters: usize,
    /// MiB to map and touch first.
    pub mem_mib: usize,
}

/// Why `OP [--iters N] [--mem MIB]` could not be parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgError<'a> {
    /// No operation given.
    MissingOp,
    /// Not one of [`Op::ALL`].
    UnknownOp(&'a [u8]),
    /// `--iters` or `--mem` without a value.
    MissingValue(&'static str),
    /// A value that is not a decimal number.
    NotANumber(&'static str, &'a [u8]),
    /// `--iters 0`.
    ZeroIters,
    /// `--iters` or `--mem` too large to map.
    TooLarge(&'static str),
    /// Anything else.
    UnknownOption(&'a [u8]),
}

impl fmt::Display for ArgError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ArgError::MissingOp => write!(f, "missing operation"),
            ArgError::UnknownOp(op) => write!(f, "unknown operation: {}", Bytes(op)),
            ArgError::MissingValue(flag) => write!(f, "{flag}: missing value"),
            ArgError::NotANumber(flag, value) => {
                write!(f, "{flag}: not a number: {}", Bytes(value))
            }
            ArgError::ZeroIters => write!(f, "--iters must be at least 1"),
            ArgError::TooLarge(flag) => write!(f, "{flag} too large"),
            ArgError::UnknownOption(option) => write!(f, "unknown option: {}", Bytes(option)),
        }
    }
}

/// Parses `OP [--iters N] [--mem MIB]` (the words after the program or
/// command name).
pub fn parse_args<'a>(args: &[&'a [u8]]) -> Result<Options, ArgError<'a>> {
    let (&name, rest) = args.split_first().ok_or(ArgError::MissingOp)?;
    let op = Op::from_name(name).ok_or(ArgError::UnknownOp(name))?;
    let mut options = Options {
        op,
        iters: DEFAULT_ITERS,
        mem_mib: 0,
    };
    let mut rest = rest.iter();
    while let Some(&flag) = rest.next() {
        let (flag, slot) = match flag {
            b"--iters" => ("--iters", &mut options.iters),
            b"--mem" => ("--mem", &mut options.mem_mib),
            other => return Err(ArgError::UnknownOption(other)),
        };
        let value = rest.next().ok_or(ArgError::MissingValue(flag))?;
        *slot = core::str::from_utf8(value)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or(ArgError::NotANumber(flag, value))?;
    }
    if options.iters == 0 {
        return Err(ArgError::ZeroIters);
    }
    if options.iters.checked_mul(8).is_none() {
        return Err(ArgError::TooLarge("--iters"));
    }
    if options.mem_mib.checked_mul(1 << 20).is_none() {
        return Err(ArgError::TooLarge("--mem"));
    }
    Ok(options)
}

/// Why a measurement stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// A system call failed: what it was for, and its errno.
    Sys(&'static str, Errno),
    /// A child did not exit with status 0.
    Child(WaitStatus),
    /// A call that must fail succeeded, or failed with another errno.
    Unexpected(&'static str, Option<Errno>),
}

/// `fork: EAGAIN 11`, `wait4: child ended with status 0x9`.
impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Sys(what, e) => write!(f, "{what}: {e}"),
            Error::Child(status) => write!(f, "wait4: child ended with status {:#x}", status.0),
            Error::Unexpected(what, None) => write!(f, "{what}: succeeded but must fail"),
            Error::Unexpected(what, Some(e)) => {
                write!(f, "{what}: failed with {e}, another errno than expected")
            }
        }
    }
}

impl Error {
    /// The errno a protocol reply carries for this error: the failed
    /// call's, -1 for a call that succeeded but must fail, `ECHILD` for a
    /// child that did not exit with status 0.
    pub fn errno(self) -> i32 {
        match self {
            Error::Sys(_, e) | Error::Unexpected(_, Some(e)) => e.0,
            Error::Unexpected(_, None) => -1,
            Error::Child(_) => Errno::ECHILD.0,
        }
    }
}

/// An anonymous read-write mapping, unmapped on drop.
pub(crate) struct Mapping {
    ptr: *mut u8,
    len: usize,
}

impl Mapping {
    pub(crate) fn new(len: usize, what: &'static str) -> Result<Mapping, Error> {
        let ptr = mmap_anonymous(len, PROT_READ | PROT_WRITE).map_err(|e| Error::Sys(what, e))?;
        Ok(Mapping { ptr, len })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the mapping is ours and every user of it (slices, child
        // stacks of reaped children) is gone by the time it drops.
        let _ = unsafe { munmap(self.ptr, self.len) };
    }
}

/// The memory a `thread`/`clone-vm` child uses: its stack, with a small TLS
/// block (`CLONE_SETTLS`) at the bottom, and the thread's tid word.
pub(crate) struct ChildArea {
    pub(crate) stack_top: *mut u8,
    pub(crate) tls: *mut u64,
    pub(crate) tid: AtomicU32,
}

impl ChildArea {
    /// The area on `stack` (a [`CHILD_STACK`] mapping, which must outlive
    /// it): the TLS block at its bottom, the stack's top.
    pub(crate) fn on(stack: &Mapping) -> ChildArea {
        let tls = stack.ptr.cast::<u64>();
        // SAFETY: the TLS block is the first 64 bytes of the stack mapping;
        // by x86-64 convention its first word points to itself.
        unsafe { tls.write(tls as u64) };
        ChildArea {
            // SAFETY: one past the end of the mapping: the top of the stack.
            stack_top: unsafe { stack.ptr.add(CHILD_STACK) },
            tls,
            tid: AtomicU32::new(0),
        }
    }
}

/// Repeats untimed cycles of `op` (one of the creating operations) until
/// `stop` is non-zero, storing the number completed in `done` after each:
/// one worker of a throughput run ([`crate::scale`]). Its child stack is
/// its own, so workers that share memory (threads) do not collide.
pub fn repeat_until(op: Op, stop: &AtomicU32, done: &AtomicU64) -> Result<(), Error> {
    if !matches!(op, Op::Fork | Op::Vfork | Op::Thread | Op::CloneVm) {
        return Err(Error::Sys("repeat_until", Errno::EINVAL));
    }
    let stack = Mapping::new(CHILD_STACK, "mmap(stack)")?;
    let area = ChildArea::on(&stack);
    let mut count = 0;
    while stop.load(Ordering::Relaxed) == 0 {
        cycle(op, &area)?;
        count += 1;
        done.store(count, Ordering::Relaxed);
    }
    Ok(())
}

/// The child of `thread` and `clone-vm`: ends itself (only this thread).
extern "C" fn child_exit(_arg: usize) -> ! {
    exit(0)
}

/// Reaps `pid` and checks that it exited with status 0.
fn reap(pid: Pid) -> Result<(), Error> {
    match wait4(pid as i32, 0) {
        Ok((got, status)) if got == pid && status.exited() && status.exit_status() == 0 => Ok(()),
        Ok((_, status)) => Err(Error::Child(status)),
        Err(e) => Err(Error::Sys("wait4", e)),
    }
}

/// A fork that must fail with `expected`; a child that was created anyway
/// is reaped and reported.
fn failing_fork(what: &'static str, expected: Errno) -> Result<(), Error> {
    match fork() {
        Ok(0) => exit(0),
        Ok(pid) => {
            let _ = reap(pid);
            Err(Error::Unexpected(what, None))
        }
        Err(e) if e == expected => Ok(()),
        Err(e) => Err(Error::Unexpected(what, Some(e))),
    }
}

/// One measured cycle in TSC cycles, both counted from just before the
/// creating call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Timing {
    /// Until the call returned in the parent.
    create: u64,
    /// Until the child was reaped (joined); `create` for a failing call.
    total: u64,
}

/// One create + exit + reap cycle (or one failing call).
fn cycle(op: Op, area: &ChildArea) -> Result<Timing, Error> {
    let start = rdtsc_serialized();
    // Set where the creating call has returned in the parent; a failing
    // call leaves it unset and its whole cycle is the call.
    let mut created = None;
    match op {
        Op::CloneEinval => {
            use forkvm_abi::linux::clone::CLONE_SIGHAND;
            // SAFETY: the flags are refused before any child exists.
            let ret = unsafe {
                crate::syscall::syscall5(
                    crate::syscall::nr::CLONE,
                    (CLONE_SIGHAND | SIGCHLD) as usize,
                    0,
                    0,
                    0,
                    0,
                )
            };
            match crate::syscall::check(ret) {
                Err(e) if e == Errno::EINVAL => {}
                Err(e) => return Err(Error::Unexpected("clone(CLONE_SIGHAND)", Some(e))),
                Ok(0) => exit(0),
                Ok(pid) => {
                    let _ = reap(pid as Pid);
                    return Err(Error::Unexpected("clone(CLONE_SIGHAND)", None));
                }
            }
        }
        Op::MaxThreadsEagain => failing_fork("fork at threads-max", Errno::EAGAIN)?,
        Op::RlimitEagain => failing_fork("fork at RLIMIT_NPROC", Errno::EAGAIN)?,
        // Sampled by `pingpong`, never as a creation cycle.
        Op::YieldPingPong | Op::PipePingPong => {
            return Err(Error::Sys("ping-pong cycle", Errno::EINVAL))
        }
        // The spinners run around the whole sampling (`sample`).
        Op::Fork | Op::ForkThreaded => match fork() {
            Ok(0) => exit(0),
            Ok(pid) => {
                created = Some(rdtsc_serialized());
                reap(pid)?
            }
            Err(e) => return Err(Error::Sys("fork", e)),
        },
        Op::ExecStatic | Op::Shell => {
            let (path, args) = op.archive_program().unwrap_or((c"/bin/true", &[]));
            let mut argv = [null(); 4];
            for (slot, arg) in argv.iter_mut().zip(args) {
                *slot = arg.as_ptr().cast::<u8>();
            }
            match fork() {
                Ok(0) => {
                    crate::syscall::execve(path, &argv, &[null()]);
                    exit(127)
                }
                Ok(pid) => {
                    created = Some(rdtsc_serialized());
                    reap(pid)?
                }
                Err(e) => return Err(Error::Sys("fork", e)),
            }
        }
        Op::ForkExec => match fork() {
            Ok(0) => {
                let path = if FORK_EXEC_BY_PATH.load(Ordering::Relaxed) {
                    c"/sbin/forkvm/exit_with"
                } else {
                    c"exit_with"
                };
                let argv = [path.as_ptr().cast::<u8>(), c"0".as_ptr().cast(), null()];
                let envp = [null()];
                crate::syscall::execve(path, &argv, &envp);
                exit(127)
            }
            Ok(pid) => {
                created = Some(rdtsc_serialized());
                reap(pid)?
            }
            Err(e) => return Err(Error::Sys("fork", e)),
        },
        Op::Vfork => {
            // SAFETY: the child only makes the (inlined) exit system call.
            match unsafe { vfork() } {
                Ok(0) => exit(0),
                Ok(pid) => {
                    created = Some(rdtsc_serialized());
                    reap(pid)?
                }
                Err(e) => return Err(Error::Sys("vfork", e)),
            }
        }
        Op::Thread => {
            area.tid.store(u32::MAX, Ordering::Relaxed);
            let tid = area.tid.as_ptr();
            // SAFETY: the stack and TLS block are ours and idle (the last
            // thread is joined); the tid word lives as long as `area`, and
            // the thread only calls exit.
            let ret = unsafe {
                clone_raw(
                    THREAD_FLAGS,
                    area.stack_top,
                    tid,
                    tid,
                    area.tls as u64,
                    child_exit,
                    0,
                )
            };
            if let Err(e) = ret {
                return Err(Error::Sys("clone(thread)", e));
            }
            created = Some(rdtsc_serialized());
            wait_tid_cleared(&area.tid);
        }
        Op::CloneVm => {
            let null = core::ptr::null_mut();
            // SAFETY: the stack is ours and idle (the last child was reaped);
            // the child only calls exit.
            let ret = unsafe {
                clone_raw(
                    CLONE_VM | SIGCHLD,
                    area.stack_top,
                    null,
                    null,
                    0,
                    child_exit,
                    0,
                )
            };
            match ret {
                Ok(pid) => {
                    created = Some(rdtsc_serialized());
                    reap(pid)?
                }
                Err(e) => return Err(Error::Sys("clone(CLONE_VM)", e)),
            }
        }
    }
    let end = rdtsc_serialized();
    Ok(Timing {
        create: created.unwrap_or(end) - start,
        total: end - start,
    })
}

/// The warm-up [`measure`] uses for `iters` measured cycles: max(1, N/10).
pub fn default_warmup(iters: usize) -> usize {
    (iters / 10).max(1)
}

/// Runs `options.iters` measured cycles (after the default warm-up) and
/// summarises them in TSC cycles. The EAGAIN operations set up their limit
/// first and undo it afterwards.
pub fn measure(options: &Options) -> Result<Summary, Error> {
    let iters = options.iters.max(1);
    let samples_len = iters
        .checked_mul(core::mem::size_of::<u64>())
        .ok_or(Error::Sys("mmap(samples)", Errno::ENOMEM))?;
    let samples_map = Mapping::new(samples_len, "mmap(samples)")?;
    // SAFETY: a fresh zeroed mapping of `iters` u64s, used only through this
    // slice, which ends before the mapping drops.
    let samples = unsafe { core::slice::from_raw_parts_mut(samples_map.ptr.cast::<u64>(), iters) };
    let mut out = Samples {
        create: None,
        total: samples,
    };
    sample(options, default_warmup(iters), &mut out)?;
    Ok(summarize(out.total).expect("iters >= 1"))
}

/// Where [`sample`] stores each measured cycle, in TSC cycles: one element
/// per cycle (`total.len()` cycles are run), element `i` of both from
/// cycle `i`.
pub struct Samples<'a> {
    /// Until the creating call returned in the parent (`None`: not kept).
    /// Must be as long as `total`.
    pub create: Option<&'a mut [u64]>,
    /// The whole create + exit + reap cycle (the refused call for the
    /// failing operations).
    pub total: &'a mut [u64],
}

impl Samples<'_> {
    fn store(&mut self, i: usize, timing: Timing) {
        self.total[i] = timing.total;
        if let Some(create) = self.create.as_deref_mut() {
            create[i] = timing.create;
        }
    }
}

/// Runs `warmup` unrecorded cycles of `options.op`, then one measured cycle
/// per element of `out.total` (`options.iters` is ignored), storing each
/// cycle's TSC cycles. The EAGAIN operations set up their limit first and
/// undo it afterwards. On an error the samples are meaningless.
pub fn sample(options: &Options, warmup: usize, out: &mut Samples<'_>) -> Result<(), Error> {
    if out
        .create
        .as_ref()
        .is_some_and(|c| c.len() != out.total.len())
    {
        return Err(Error::Sys("sample", Errno::EINVAL));
    }
    if options.op == Op::ForkExec {
        FORK_EXEC_BY_PATH.store(access_x(c"exit_with").is_err(), Ordering::Relaxed);
    }
    if let Some((path, _)) = options.op.archive_program() {
        // Without an initramfs there is no such program: say so, rather
        // than time children that exit 127.
        access_x(path).map_err(|e| Error::Sys("access (needs forkvm --initrd)", e))?;
    }
    match options.op {
        Op::MaxThreadsEagain => sample_at_threads_max(options, warmup, out),
        Op::RlimitEagain => sample_at_rlimit_nproc(options, warmup, out),
        Op::YieldPingPong => crate::pingpong::sample(PingPong::Yield, warmup, out.total),
        Op::PipePingPong => crate::pingpong::sample(PingPong::Pipe, warmup, out.total),
        Op::ForkThreaded => crate::spinners::with_spinners(FORK_THREADED_THREADS, || {
            sample_cycles(options, warmup, out)
        }),
        _ => sample_cycles(options, warmup, out),
    }
}

/// Whether `fork-exec` runs `exit_with` by its built-in file's path:
/// forkvm booted with an initramfs looks names up as Linux does, so the
/// bare name (which finds the built-in program otherwise, and the Linux
/// reference's `/exit_with` from its working directory) finds nothing.
static FORK_EXEC_BY_PATH: AtomicBool = AtomicBool::new(false);

/// `access(path, X_OK)`.
fn access_x(path: &CStr) -> Result<usize, Errno> {
    const ACCESS: usize = 21;
    const X_OK: usize = 1;
    // SAFETY: the kernel reads the NUL-terminated path.
    crate::syscall::check(unsafe { crate::syscall::syscall2(ACCESS, path.as_ptr() as usize, X_OK) })
}

/// Lowers `kernel.threads-max` to the number of tasks that exist (so the
/// next fork fails), measures, and restores it (forkvm's kernel only).
fn sample_at_threads_max(
    options: &Options,
    warmup: usize,
    samples: &mut Samples<'_>,
) -> Result<(), Error> {
    const NAME: &[u8] = b"kernel.threads-max";
    let mut text = [0u8; 32];
    let n = crate::forkvm::sysctl(NAME, None, &mut text)
        .map_err(|e| Error::Sys("forkvm_sysctl(kernel.threads-max)", e))?;
    let original = core::str::from_utf8(&text[..n])
        .ok()
        .and_then(|t| t.trim().parse::<u64>().ok());
    let original = original.ok_or(Error::Sys(
        "forkvm_sysctl(kernel.threads-max)",
        Errno::EINVAL,
    ))?;
    let tasks = crate::forkvm::system_info()
        .map_err(|e| Error::Sys("forkvm_info", e))?
        .tasks;
    let mut limit = [0u8; 24];
    let len = format_u64(tasks, &mut limit);
    let mut out = [0u8; 32];
    crate::forkvm::sysctl(NAME, Some(&limit[..len]), &mut out)
        .map_err(|e| Error::Sys("forkvm_sysctl(set)", e))?;
    let result = sample_cycles(options, warmup, samples);
    let len = format_u64(original, &mut limit);
    let restored = crate::forkvm::sysctl(NAME, Some(&limit[..len]), &mut out);
    result?;
    restored.map_err(|e| Error::Sys("forkvm_sysctl(restore)", e))?;
    Ok(())
}

/// Decimal text of `value` into `buf`; returns its length.
pub fn format_u64(mut value: u64, buf: &mut [u8; 24]) -> usize {
    let mut digits = [0u8; 24];
    let mut n = 0;
    loop {
        digits[n] = b'0' + (value % 10) as u8;
        n += 1;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    for i in 0..n {
        buf[i] = digits[n - 1 - i];
    }
    n
}

/// Measures in a child that sets RLIMIT_NPROC to 1 and becomes uid/gid
/// 65534 without capabilities: it is then at its limit (it counts itself).
/// The samples come back through a shared mapping (the create samples,
/// then the totals), followed by the kind of error (0: none, 1: setup, 2:
/// unexpected success, 3: wrong errno, 4: other) and its errno.
fn sample_at_rlimit_nproc(
    options: &Options,
    warmup: usize,
    samples: &mut Samples<'_>,
) -> Result<(), Error> {
    const NOBODY: u32 = 65534;
    const WHAT: &str = "fork at RLIMIT_NPROC";
    let count = samples.total.len();
    let len = count
        .checked_mul(2 * core::mem::size_of::<u64>())
        .and_then(|n| n.checked_add(PAGE))
        .ok_or(Error::Sys("mmap(MAP_SHARED)", Errno::ENOMEM))?;
    let shared = SharedMapping::new(len)?;
    let create_ptr = shared.ptr.cast::<u64>();
    // SAFETY: the totals follow the `count` create samples, and two u64s
    // follow them, inside the extra page.
    let (total_ptr, kind_ptr, errno_ptr) = unsafe {
        (
            create_ptr.add(count),
            create_ptr.add(2 * count),
            create_ptr.add(2 * count + 1),
        )
    };
    let pid = match fork() {
        Ok(0) => {
            let one = crate::cred::Rlimit { cur: 1, max: 1 };
            let setup = crate::cred::prlimit64(0, crate::cred::RLIMIT_NPROC, Some(one))
                .and_then(|_| crate::cred::setgid(NOBODY))
                .and_then(|_| crate::cred::setuid(NOBODY));
            // SAFETY: the shared mapping holds 2 * `count` samples and two
            // more words; the parent reads them only after reaping us.
            let mut out = unsafe {
                Samples {
                    create: Some(core::slice::from_raw_parts_mut(create_ptr, count)),
                    total: core::slice::from_raw_parts_mut(total_ptr, count),
                }
            };
            let (kind, errno) = match setup {
                Err(e) => (1, e.0),
                Ok(_) => match sample_cycles(options, warmup, &mut out) {
                    Ok(()) => (0, 0),
                    Err(Error::Unexpected(_, None)) => (2, 0),
                    Err(Error::Unexpected(_, Some(e))) => (3, e.0),
                    Err(Error::Sys(_, e)) => (4, e.0),
                    Err(Error::Child(_)) => (4, Errno::ECHILD.0),
                },
            };
            // SAFETY: see above.
            unsafe {
                kind_ptr.write(kind);
                errno_ptr.write(errno as u64);
            }
            exit(0)
        }
        Ok(pid) => pid,
        Err(e) => return Err(Error::Sys("fork", e)),
    };
    reap(pid)?;
    // SAFETY: the child wrote the samples and the two words before exiting.
    let (kind, errno) = unsafe {
        if let Some(create) = samples.create.as_deref_mut() {
            create.copy_from_slice(core::slice::from_raw_parts(create_ptr, count));
        }
        let total = core::slice::from_raw_parts(total_ptr, count);
        samples.total.copy_from_slice(total);
        (kind_ptr.read(), Errno(errno_ptr.read() as i32))
    };
    match kind {
        0 => Ok(()),
        1 => Err(Error::Sys("setup as uid 65534 with RLIMIT_NPROC 1", errno)),
        2 => Err(Error::Unexpected(WHAT, None)),
        3 => Err(Error::Unexpected(WHAT, Some(errno))),
        _ => Err(Error::Sys(WHAT, errno)),
    }
}

/// An anonymous shared mapping (parent and child see the same memory).
struct SharedMapping {
    ptr: *mut u8,
    len: usize,
}

impl SharedMapping {
    fn new(len: usize) -> Result<SharedMapping, Error> {
        // SAFETY: a fresh anonymous mapping; no existing memory is affected.
        let ptr = unsafe {
            crate::syscall::mmap(
                0,
                len,
                PROT_READ | PROT_WRITE,
                crate::syscall::MAP_SHARED | crate::syscall::MAP_ANONYMOUS,
                -1,
                0,
            )
        }
        .map_err(|e| Error::Sys("mmap(MAP_SHARED)", e))?;
        Ok(SharedMapping { ptr, len })
    }
}

impl Drop for SharedMapping {
    fn drop(&mut self) {
        // SAFETY: ours, and the child that shared it has been reaped.
        let _ = unsafe { munmap(self.ptr, self.len) };
    }
}

/// The measurement loop itself.
fn sample_cycles(options: &Options, warmup: usize, out: &mut Samples<'_>) -> Result<(), Error> {
    let _resident = match options.mem_mib {
        0 => None,
        mib => {
            let len = mib
                .checked_mul(1 << 20)
                .ok_or(Error::Sys("mmap(--mem)", Errno::ENOMEM))?;
            let mem = Mapping::new(len, "mmap(--mem)")?;
            for off in (0..len).step_by(PAGE) {
                // SAFETY: off < len, inside the fresh mapping.
                unsafe { mem.ptr.add(off).write_volatile(1) };
            }
            Some(mem)
        }
    };

    let stack = Mapping::new(CHILD_STACK, "mmap(stack)")?;
    let area = ChildArea::on(&stack);

    for _ in 0..warmup {
        cycle(options.op, &area)?;
    }
    for i in 0..out.total.len() {
        let timing = cycle(options.op, &area)?;
        out.store(i, timing);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&'static str]) -> Result<Options, ArgError<'static>> {
        let args: Vec<&'static [u8]> = args.iter().map(|a| a.as_bytes()).collect();
        parse_args(&args)
    }

    #[test]
    fn op_names_round_trip() {
        for op in Op::ALL {
            assert_eq!(Op::from_name(op.name().as_bytes()), Some(op));
        }
        assert_eq!(Op::from_name(b"spawn"), None);
        assert_eq!(Op::from_name(b""), None);
    }

    #[test]
    fn usage_names_every_op() {
        let (ops, _) = USAGE_ARGS.split_once(' ').unwrap();
        let mut named: Vec<&str> = ops.split('|').collect();
        let mut all: Vec<&str> = Op::ALL.iter().map(|op| op.name()).collect();
        named.sort_unstable();
        all.sort_unstable();
        assert_eq!(named, all);
    }

    #[test]
    fn parses_options() {
        assert_eq!(
            parse(&["fork"]),
            Ok(Options {
                op: Op::Fork,
                iters: DEFAULT_ITERS,
                mem_mib: 0
            })
        );
        assert_eq!(
            parse(&["clone-vm", "--mem", "16", "--iters", "20"]),
            Ok(Options {
                op: Op::CloneVm,
                iters: 20,
                mem_mib: 16
            })
        );
        // The last of a repeated option wins.
        assert_eq!(
            parse(&["thread", "--iters", "5", "--iters", "7"])
                .unwrap()
                .iters,
            7
        );
    }

    #[test]
    fn rejects_bad_arguments() {
        assert_eq!(parse(&[]), Err(ArgError::MissingOp));
        assert_eq!(parse(&["spawn"]), Err(ArgError::UnknownOp(b"spawn")));
        assert_eq!(
            parse(&["fork", "--iters"]),
            Err(ArgError::MissingValue("--iters"))
        );
        assert_eq!(
            parse(&["fork", "--mem", "x"]),
            Err(ArgError::NotANumber("--mem", b"x"))
        );
        assert_eq!(
            parse(&["fork", "--iters", "-1"]),
            Err(ArgError::NotANumber("--iters", b"-1"))
        );
        assert_eq!(parse(&["fork", "--iters", "0"]), Err(ArgError::ZeroIters));
        assert_eq!(
            parse(&["fork", "--bogus"]),
            Err(ArgError::UnknownOption(b"--bogus"))
        );
        let huge = format!("{}", usize::MAX);
        let huge: &'static str = Box::leak(huge.into_boxed_str());
        assert_eq!(
            parse(&["fork", "--mem", huge]),
            Err(ArgError::TooLarge("--mem"))
        );
        assert_eq!(
            parse(&["fork", "--iters", huge]),
            Err(ArgError::TooLarge("--iters"))
        );
    }

    #[test]
    fn error_messages() {
        assert_eq!(
            ArgError::UnknownOp(b"spawn").to_string(),
            "unknown operation: spawn"
        );
        assert_eq!(
            ArgError::NotANumber("--iters", b"x").to_string(),
            "--iters: not a number: x"
        );
        assert_eq!(
            Error::Sys("fork", Errno::EAGAIN).to_string(),
            "fork: EAGAIN 11"
        );
        assert_eq!(
            Error::Child(WaitStatus(9)).to_string(),
            "wait4: child ended with status 0x9"
        );
    }

    // Measuring forks a copy of the (multi-threaded) test binary: the child
    // only calls exit, which is safe. Threads and clone-vm are exercised by
    // the host tests of `lat_proc` and `sh`.
    #[test]
    fn measures_forks_on_the_host() {
        let options = Options {
            op: Op::Fork,
            iters: 5,
            mem_mib: 1,
        };
        let s = measure(&options).unwrap();
        assert!(0 < s.min && s.min <= s.median && s.median <= s.p90 && s.p90 <= s.max);
    }

    // fork-threaded: both metrics of every fork, taken while the spinners
    // run (they are joined before `sample` returns).
    #[test]
    fn samples_forks_of_a_threaded_parent() {
        let options = Options {
            op: Op::ForkThreaded,
            iters: 5,
            mem_mib: 0,
        };
        let (mut create, mut total) = ([0u64; 5], [0u64; 5]);
        let mut out = Samples {
            create: Some(&mut create),
            total: &mut total,
        };
        sample(&options, 1, &mut out).unwrap();
        for (c, t) in create.iter().zip(&total) {
            assert!(0 < *c && c < t, "create {c} total {t}");
        }
        assert_eq!(Op::from_name(b"fork-threaded"), Some(Op::ForkThreaded));
    }

    // Both metrics of every cycle: the fork returns in the parent before
    // the child has been reaped.
    #[test]
    fn samples_create_and_total_of_each_cycle() {
        let options = Options {
            op: Op::Fork,
            iters: 5,
            mem_mib: 0,
        };
        let (mut create, mut total) = ([0u64; 5], [0u64; 5]);
        let mut out = Samples {
            create: Some(&mut create),
            total: &mut total,
        };
        sample(&options, 1, &mut out).unwrap();
        for (c, t) in create.iter().zip(&total) {
            assert!(0 < *c && c < t, "create {c} total {t}");
        }
        let mut short = [0u64; 4];
        let mut out = Samples {
            create: Some(&mut short),
            total: &mut total,
        };
        assert_eq!(
            sample(&options, 0, &mut out),
            Err(Error::Sys("sample", Errno::EINVAL))
        );
    }
}
