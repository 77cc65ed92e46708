//! The host-Linux reference: the guest's benchmark operations
//! ([`BenchOp`]) run natively on the host, in this process, with raw
//! `clone` system calls, so that every guest result has a host ratio.
//!
//! Each iteration is timed with the [`HostClock`] (fenced `rdtsc` where the
//! TSC is invariant, else `CLOCK_MONOTONIC`) for up to two metrics
//! ([`Metric`]): until the creating call returns in the parent, and
//! until the child has also exited and been reaped (lmbench `lat_proc`
//! style: the child exits at once). Where the host cannot or must not run
//! an operation the result is [`HostError::NotApplicable`] with the reason;
//! no number is ever made up.

use std::ffi::{c_int, c_void, CStr};
use std::fmt;
use std::io;
use std::path::Path;
use std::ptr;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

pub use forkvm_protocol::BenchOp;

pub mod archive;
mod pingpong;
pub mod scale;
mod spinners;

/// The unprivileged uid/gid (`nobody`) the RLIMIT_NPROC child switches to.
const NOBODY: libc::c_long = 65534;

/// Size of the stacks of `CLONE_VM` children; they only return from a
/// trivial function, so this is generous.
const CHILD_STACK_LEN: usize = 64 << 10;

/// Programs `fork_exec` may run, in order of preference: they exit 0.
const TRUE_PATHS: [&CStr; 2] = [c"/bin/true", c"/usr/bin/true"];

/// The operation's name as used in reports (`fork`, `clone_thread`, ...).
pub fn op_name(op: BenchOp) -> &'static str {
    match op {
        BenchOp::Fork => "fork",
        BenchOp::Vfork => "vfork",
        BenchOp::CloneThread => "clone_thread",
        BenchOp::CloneVm => "clone_vm",
        BenchOp::ForkExec => "fork_exec",
        BenchOp::ForkMem => "fork_mem",
        BenchOp::RlimitEagain => "rlimit_eagain",
        BenchOp::MaxThreadsEagain => "max_threads_eagain",
        BenchOp::CloneEinval => "clone_einval",
        BenchOp::YieldPingPong => "yield_pingpong",
        BenchOp::PipePingPong => "pipe_pingpong",
        BenchOp::ForkThreaded => "fork_threaded",
        BenchOp::ExecStatic => "exec_static",
        BenchOp::Shell => "shell",
    }
}

/// What one sample measures: the same metrics the guest reports
/// (`create`: until the call returns in the parent, for the failure
/// operations until the failing call returns; `create_exit_reap`: until
/// the child has exited and been reaped or joined).
pub use forkvm_protocol::BenchMetric as Metric;

/// The metrics `op` yields on the host (empty if it is never run there).
pub fn metrics(op: BenchOp) -> &'static [Metric] {
    match op {
        BenchOp::Fork
        | BenchOp::Vfork
        | BenchOp::CloneThread
        | BenchOp::CloneVm
        | BenchOp::ForkExec
        | BenchOp::ForkMem
        | BenchOp::ForkThreaded
        | BenchOp::ExecStatic
        | BenchOp::Shell => &[Metric::Create, Metric::CreateExitReap],
        BenchOp::RlimitEagain | BenchOp::CloneEinval => &[Metric::Create],
        BenchOp::MaxThreadsEagain => &[],
        BenchOp::YieldPingPong | BenchOp::PipePingPong => &[Metric::RoundTrip],
    }
}

/// How much to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    /// Measured iterations: each metric gets exactly this many samples.
    pub iters: usize,
    /// Iterations run first and thrown away.
    pub warmup: usize,
    /// For [`BenchOp::ForkMem`]: MiB of anonymous memory the parent has
    /// touched before forking (ignored by the other operations).
    pub mem_mib: usize,
}

/// The samples of one [`run`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostResult {
    pub op: BenchOp,
    /// [`Metric::Create`] samples in [`HostClock`] ticks, one per iteration.
    pub create: Option<Vec<u64>>,
    /// [`Metric::CreateExitReap`] samples in ticks, one per iteration.
    pub create_exit_reap: Option<Vec<u64>>,
    /// [`Metric::RoundTrip`] samples in ticks (the ping-pong operations).
    pub round_trip: Option<Vec<u64>>,
    /// The clock the samples were taken with, to convert ticks to time.
    pub clock: HostClock,
    /// How the operation was run where that varies (e.g. the program
    /// `fork_exec` executed, how RLIMIT_NPROC was made to bite).
    pub note: Option<String>,
}

impl HostResult {
    /// The samples of `metric`, if this operation has it.
    pub fn samples(&self, metric: Metric) -> Option<&[u64]> {
        match metric {
            Metric::Create => self.create.as_deref(),
            Metric::CreateExitReap => self.create_exit_reap.as_deref(),
            Metric::RoundTrip => self.round_trip.as_deref(),
        }
    }

    /// `ticks` of [`Self::clock`] as time.
    pub fn to_duration(&self, ticks: u64) -> Duration {
        cycles_to_duration(ticks, self.clock.khz())
    }
}

/// Why an operation produced no samples.
#[derive(Debug)]
pub enum HostError {
    /// The host cannot or must not run the operation (not a failure).
    NotApplicable { op: BenchOp, reason: String },
    /// A system call failed where it had to succeed.
    Syscall {
        op: BenchOp,
        syscall: &'static str,
        error: io::Error,
    },
    /// A system call or child did something other than what the operation
    /// requires (an expected failure succeeded, a wrong errno, a child
    /// exiting with a non-zero status).
    Unexpected {
        op: BenchOp,
        syscall: &'static str,
        detail: String,
    },
}

impl HostError {
    /// True for [`HostError::NotApplicable`].
    pub fn is_not_applicable(&self) -> bool {
        matches!(self, HostError::NotApplicable { .. })
    }

    fn syscall(op: BenchOp, syscall: &'static str, errno: c_int) -> Self {
        HostError::Syscall {
            op,
            syscall,
            error: io::Error::from_raw_os_error(errno),
        }
    }

    fn last(op: BenchOp, syscall: &'static str) -> Self {
        HostError::Syscall {
            op,
            syscall,
            error: io::Error::last_os_error(),
        }
    }
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostError::NotApplicable { op, reason } => {
                write!(f, "{}: N/A on the host: {reason}", op_name(*op))
            }
            HostError::Syscall { op, syscall, error } => {
                write!(f, "{}: {syscall} failed: {error}", op_name(*op))
            }
            HostError::Unexpected {
                op,
                syscall,
                detail,
            } => {
                write!(f, "{}: {syscall}: {detail}", op_name(*op))
            }
        }
    }
}

impl std::error::Error for HostError {}

/// Runs `op` natively `params.warmup + params.iters` times and returns the
/// samples of the last `params.iters` iterations.
pub fn run(op: BenchOp, params: Params) -> Result<HostResult, HostError> {
    let total = params
        .iters
        .checked_add(params.warmup)
        .ok_or_else(|| HostError::Unexpected {
            op,
            syscall: "none",
            detail: "iters + warmup overflows".to_owned(),
        })?;
    let mut result = HostResult {
        op,
        create: None,
        create_exit_reap: None,
        round_trip: None,
        clock: host_clock(),
        note: None,
    };
    match op {
        BenchOp::Fork => two_metrics(&mut result, params, || fork_once(op, None))?,
        BenchOp::ExecStatic | BenchOp::Shell => {
            let Some(programs) = archive::programs() else {
                return Err(HostError::NotApplicable {
                    op,
                    reason: "it runs programs from an initramfs: give forkbench --initrd"
                        .to_owned(),
                });
            };
            let (path, argv): (&CStr, &[&CStr]) = match op {
                BenchOp::ExecStatic => (&programs.true_program, &[c"true"]),
                _ => (&programs.shell, &[c"sh", c"-c", c"exit"]),
            };
            result.note = Some(format!(
                "execs the archive's {} (as {})",
                if op == BenchOp::Shell {
                    "/bin/sh"
                } else {
                    "/bin/true"
                },
                path.to_string_lossy()
            ));
            two_metrics(&mut result, params, || fork_once(op, Some((path, argv))))?;
        }
        BenchOp::ForkThreaded => {
            let ((), note) = spinners::with_spinners(op, || {
                two_metrics(&mut result, params, || fork_once(op, None))
            })?;
            result.note = Some(note);
        }
        BenchOp::ForkMem => {
            let bytes =
                params
                    .mem_mib
                    .checked_mul(1 << 20)
                    .ok_or_else(|| HostError::Unexpected {
                        op,
                        syscall: "mmap",
                        detail: format!("{} MiB does not fit the address space", params.mem_mib),
                    })?;
            // Allocated and touched once, outside the timing: each fork
            // then copies the page tables of `bytes` of resident memory.
            let _memory = Mapping::touched(op, bytes)?;
            result.note = Some(format!("{} MiB touched", params.mem_mib));
            two_metrics(&mut result, params, || fork_once(op, None))?;
        }
        BenchOp::ForkExec => {
            let Some(path) = TRUE_PATHS
                .into_iter()
                .find(|p| p.to_str().is_ok_and(|p| Path::new(p).is_file()))
            else {
                return Err(HostError::NotApplicable {
                    op,
                    reason: "neither /bin/true nor /usr/bin/true exists".to_owned(),
                });
            };
            result.note = Some(format!("execs {}", path.to_string_lossy()));
            two_metrics(&mut result, params, || fork_once(op, Some((path, &[path]))))?;
        }
        BenchOp::Vfork | BenchOp::CloneVm => {
            let stack = Mapping::stack(op)?;
            let flags = match op {
                BenchOp::Vfork => libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
                _ => libc::CLONE_VM | libc::SIGCHLD,
            };
            two_metrics(&mut result, params, || clone_vm_once(op, &stack, flags))?;
        }
        BenchOp::CloneThread => {
            let stack = Mapping::stack(op)?;
            let mut tls = Tls::new();
            result.note = Some("CLONE_SETTLS with a zeroed TLS block".to_owned());
            two_metrics(&mut result, params, || {
                clone_thread_once(op, &stack, &mut tls)
            })?;
        }
        BenchOp::CloneEinval => {
            let mut samples = Vec::with_capacity(params.iters);
            for i in 0..total {
                let cycles = clone_einval_once(op)?;
                if i >= params.warmup {
                    samples.push(cycles);
                }
            }
            result.create = Some(samples);
        }
        BenchOp::RlimitEagain => {
            let (samples, note) = rlimit_eagain(op, params)?;
            result.create = Some(samples);
            result.note = Some(note);
        }
        BenchOp::YieldPingPong | BenchOp::PipePingPong => {
            let (samples, note) = pingpong::run(op, params)?;
            result.round_trip = Some(samples);
            result.note = Some(note);
        }
        BenchOp::MaxThreadsEagain => {
            return Err(HostError::NotApplicable {
                op,
                reason: "lowering kernel.threads-max would affect the whole host".to_owned(),
            })
        }
    }
    Ok(result)
}

/// Runs `once` (which returns `(create, create_exit_reap)` cycles) for the
/// warm-up and the measured iterations and stores the measured samples.
fn two_metrics(
    result: &mut HostResult,
    params: Params,
    mut once: impl FnMut() -> Result<(u64, u64), HostError>,
) -> Result<(), HostError> {
    for _ in 0..params.warmup {
        once()?;
    }
    let mut create = Vec::with_capacity(params.iters);
    let mut reap = Vec::with_capacity(params.iters);
    for _ in 0..params.iters {
        let (c, r) = once()?;
        create.push(c);
        reap.push(r);
    }
    result.create = Some(create);
    result.create_exit_reap = Some(reap);
    Ok(())
}

// --- Timing -----------------------------------------------------------------

/// The clock the host side is timed with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostClock {
    /// The invariant TSC at `khz` (fenced `rdtsc`/`rdtscp`): the finest.
    Tsc { khz: u64 },
    /// `CLOCK_MONOTONIC` in nanoseconds (a 1 GHz counter), where the TSC
    /// cannot be trusted as time: many VMs hide the invariant-TSC flag.
    /// Reading it costs tens of ns (vDSO), small next to any clone.
    Monotonic,
}

impl HostClock {
    /// Ticks per millisecond.
    pub fn khz(self) -> u64 {
        match self {
            HostClock::Tsc { khz } => khz,
            HostClock::Monotonic => 1_000_000,
        }
    }

    /// `tsc` or `clock_monotonic`, as reports name it.
    pub fn name(self) -> &'static str {
        match self {
            HostClock::Tsc { .. } => "tsc",
            HostClock::Monotonic => "clock_monotonic",
        }
    }
}

/// This host's clock: the TSC if it is invariant ([`tsc_khz`]), else
/// `CLOCK_MONOTONIC`. Decided once per process.
pub fn host_clock() -> HostClock {
    static CLOCK: OnceLock<HostClock> = OnceLock::new();
    *CLOCK.get_or_init(|| tsc_khz().map_or(HostClock::Monotonic, |khz| HostClock::Tsc { khz }))
}

/// The [`host_clock`] at the start of a timed region.
#[inline(always)]
fn clock_start() -> u64 {
    match host_clock() {
        HostClock::Tsc { .. } => tsc_start(),
        HostClock::Monotonic => monotonic_ns(),
    }
}

/// The [`host_clock`] at the end of a timed region.
#[inline(always)]
fn clock_end() -> u64 {
    match host_clock() {
        HostClock::Tsc { .. } => tsc_end(),
        HostClock::Monotonic => monotonic_ns(),
    }
}

/// `CLOCK_MONOTONIC` in nanoseconds.
fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always
    // exists, so the call cannot fail.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

/// The TSC at the start of a timed region: the fences keep earlier and
/// later instructions from moving across the read.
#[inline(always)]
fn tsc_start() -> u64 {
    use std::arch::x86_64::{_mm_lfence, _rdtsc};
    // SAFETY: lfence and rdtsc are available on every x86_64 CPU and only
    // read the time-stamp counter.
    unsafe {
        _mm_lfence();
        let t = _rdtsc();
        _mm_lfence();
        t
    }
}

/// The TSC at the end of a timed region: rdtscp waits for the timed
/// instructions to finish, the lfence keeps later ones from starting early.
#[inline(always)]
fn tsc_end() -> u64 {
    use std::arch::x86_64::{__rdtscp, _mm_lfence};
    let mut aux = 0u32;
    // SAFETY: rdtscp writes only `aux`, a valid local; the x86_64 hosts
    // this harness targets (KVM, invariant TSC) all have it.
    unsafe {
        let t = __rdtscp(&mut aux);
        _mm_lfence();
        t
    }
}

/// `cycles` at `khz` as a [`Duration`].
pub fn cycles_to_duration(cycles: u64, khz: u64) -> Duration {
    if khz == 0 {
        return Duration::ZERO;
    }
    let nanos = u128::from(cycles) * 1_000_000 / u128::from(khz);
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// The host TSC frequency in kHz: from
/// `/sys/devices/system/cpu/cpu0/tsc_freq_khz` if the kernel exports it,
/// else calibrated once against `CLOCK_MONOTONIC` over ~20 ms. `None` if
/// the CPU does not advertise an invariant TSC (`constant_tsc` and
/// `nonstop_tsc`), in which case cycles cannot be trusted as time.
pub fn tsc_khz() -> Option<u64> {
    static KHZ: OnceLock<Option<u64>> = OnceLock::new();
    *KHZ.get_or_init(|| {
        if let Some(khz) = std::fs::read_to_string("/sys/devices/system/cpu/cpu0/tsc_freq_khz")
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .filter(|&khz| khz > 0)
        {
            return Some(khz);
        }
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").ok()?;
        let flags = cpuinfo.lines().find(|l| l.starts_with("flags"))?;
        let invariant = ["constant_tsc", "nonstop_tsc"]
            .iter()
            .all(|f| flags.split_whitespace().any(|w| w == *f));
        if !invariant {
            return None;
        }
        // Median of three 20 ms calibrations, to shrug off one preemption.
        let mut runs = [calibrate()?, calibrate()?, calibrate()?];
        runs.sort_unstable();
        Some(runs[1])
    })
}

/// One calibration: TSC cycles per `CLOCK_MONOTONIC` millisecond over ~20 ms.
fn calibrate() -> Option<u64> {
    let (t0, c0) = mono_and_tsc()?;
    std::thread::sleep(Duration::from_millis(20));
    let (t1, c1) = mono_and_tsc()?;
    let nanos = t1.checked_sub(t0).filter(|&n| n > 0)?;
    let cycles = c1.checked_sub(c0)?;
    u64::try_from(u128::from(cycles) * 1_000_000 / u128::from(nanos)).ok()
}

/// `CLOCK_MONOTONIC` in ns with the TSC read at the same moment (the
/// midpoint of reads taken just before and after the clock).
fn mono_and_tsc() -> Option<(u64, u64)> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    let before = tsc_start();
    // SAFETY: `ts` is a valid, writable timespec.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    let after = tsc_end();
    if rc != 0 {
        return None;
    }
    let nanos = u64::try_from(ts.tv_sec).ok()? * 1_000_000_000 + u64::try_from(ts.tv_nsec).ok()?;
    Some((nanos, before + (after - before) / 2))
}

// --- Memory -----------------------------------------------------------------

/// An anonymous mapping, unmapped on drop.
struct Mapping {
    addr: *mut c_void,
    len: usize,
}

impl Mapping {
    fn new(op: BenchOp, len: usize, flags: c_int) -> Result<Self, HostError> {
        if len == 0 {
            return Ok(Mapping {
                addr: ptr::null_mut(),
                len: 0,
            });
        }
        // SAFETY: a fresh anonymous mapping at an address the kernel
        // chooses; it aliases nothing.
        let addr = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                flags | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(HostError::last(op, "mmap"));
        }
        Ok(Mapping { addr, len })
    }

    /// A child stack for `CLONE_VM` children.
    fn stack(op: BenchOp) -> Result<Self, HostError> {
        Self::new(op, CHILD_STACK_LEN, libc::MAP_PRIVATE | libc::MAP_STACK)
    }

    /// `len` bytes of private memory with every page written.
    fn touched(op: BenchOp, len: usize) -> Result<Self, HostError> {
        let map = Self::new(op, len, libc::MAP_PRIVATE | libc::MAP_POPULATE)?;
        let base = map.addr.cast::<u8>();
        for offset in (0..len).step_by(4096) {
            // SAFETY: `offset < len`, inside the writable mapping we own.
            unsafe { base.add(offset).write_volatile(1) };
        }
        Ok(map)
    }

    /// The 16-byte-aligned top of the mapping (stacks grow down).
    fn top(&self) -> *mut c_void {
        // SAFETY: one past the end of the mapping is a valid pointer to
        // form; mmap returns page-aligned memory and `len` is a multiple of
        // 16, so the result is 16-byte aligned as the ABI wants.
        unsafe { self.addr.cast::<u8>().add(self.len).cast() }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        if self.len != 0 {
            // SAFETY: unmaps exactly the mapping this value owns; no child
            // still runs on it (all are reaped before drop).
            unsafe { libc::munmap(self.addr, self.len) };
        }
    }
}

/// A thread's TLS block for `CLONE_SETTLS`. The child never touches TLS;
/// this only gives %fs a valid, zeroed target whose first word points to
/// itself, as the x86_64 TLS ABI expects.
#[repr(C, align(64))]
struct Tls([usize; 32]);

impl Tls {
    fn new() -> Box<Tls> {
        let mut tls = Box::new(Tls([0; 32]));
        tls.0[0] = ptr::addr_of!(*tls) as usize;
        tls
    }
}

// --- Children ---------------------------------------------------------------

/// Raw `clone(flags)` without a new stack: fork semantics (no pthread_atfork
/// handlers, unlike glibc's `fork`). Returns the raw result; errno is set
/// when it is -1.
///
/// # Safety
///
/// `flags` must not include `CLONE_VM`: the child returns into this very
/// stack frame, which is only sound in its own copy of the address space.
/// In the child only async-signal-safe calls may follow (the process may be
/// multi-threaded).
unsafe fn raw_clone(flags: c_int) -> libc::c_long {
    // SAFETY: the caller upholds the contract above.
    unsafe {
        libc::syscall(
            libc::SYS_clone,
            libc::c_long::from(flags),
            0 as libc::c_long,
            0 as libc::c_long,
            0 as libc::c_long,
            0 as libc::c_long,
        )
    }
}

/// The calling thread's errno.
fn errno() -> c_int {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Waits for child `pid` and checks that it exited with status 0.
fn reap(op: BenchOp, pid: libc::pid_t) -> Result<(), HostError> {
    let mut status = 0;
    loop {
        // SAFETY: `status` is a valid, writable int.
        let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
        if rc == pid {
            break;
        }
        if rc == -1 && errno() != libc::EINTR {
            return Err(HostError::last(op, "waitpid"));
        }
    }
    if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
        Ok(())
    } else {
        Err(HostError::Unexpected {
            op,
            syscall: "waitpid",
            detail: format!("the child ended with wait status {status:#x}, expected exit 0"),
        })
    }
}

/// One fork (`clone(SIGCHLD)`) whose child exits at once, or execs
/// `exec`'s program with its arguments (at most 3) if given; returns
/// (create, create_exit_reap) cycles.
fn fork_once(op: BenchOp, exec: Option<(&CStr, &[&CStr])>) -> Result<(u64, u64), HostError> {
    // Prepared before timing: the child must not allocate.
    let mut argv: [*const libc::c_char; 4] = [ptr::null(); 4];
    for (slot, arg) in argv.iter_mut().zip(exec.map_or(&[][..], |(_, args)| args)) {
        *slot = arg.as_ptr();
    }
    let exec = exec.map(|(path, _)| path);
    let envp: [*const libc::c_char; 1] = [ptr::null()];

    let t0 = clock_start();
    // SAFETY: no CLONE_VM; the child only calls execve and _exit.
    let pid = unsafe { raw_clone(libc::SIGCHLD) };
    let t1 = clock_end();
    if pid == 0 {
        if let Some(path) = exec {
            // SAFETY: path, argv and envp are NUL-terminated and live (this
            // is the child's copy of the parent's frame).
            unsafe { libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
            // SAFETY: leaving the child at once, without running any
            // destructors or exit handlers of the parent's copy.
            unsafe { libc::_exit(127) };
        }
        // SAFETY: as above.
        unsafe { libc::_exit(0) };
    }
    if pid < 0 {
        return Err(HostError::last(op, "clone"));
    }
    reap(op, pid as libc::pid_t)?;
    let t2 = clock_end();
    Ok((t1 - t0, t2 - t0))
}

/// The body of `CLONE_VM` children: return at once, so glibc's clone
/// trampoline calls `exit`. It must not touch TLS, the heap or errno.
extern "C" fn child_exit(_: *mut c_void) -> c_int {
    0
}

/// One `clone(flags)` (with `CLONE_VM`) on `stack` whose child exits at
/// once; the parent reaps it. Returns (create, create_exit_reap) cycles.
fn clone_vm_once(op: BenchOp, stack: &Mapping, flags: c_int) -> Result<(u64, u64), HostError> {
    let t0 = clock_start();
    // SAFETY: glibc's clone switches the child to `stack`, which nothing
    // else uses (the previous child has been reaped); the child runs only
    // `child_exit`, which touches no shared state.
    let pid = unsafe { libc::clone(child_exit, stack.top(), flags, ptr::null_mut()) };
    let t1 = clock_end();
    if pid < 0 {
        return Err(HostError::last(op, "clone"));
    }
    reap(op, pid)?;
    let t2 = clock_end();
    Ok((t1 - t0, t2 - t0))
}

/// One thread as pthread_create would make it, minus glibc's bookkeeping;
/// the parent joins it by futex-waiting on the CHILD_CLEARTID word.
/// Returns (create, create_exit_reap) cycles.
fn clone_thread_once(op: BenchOp, stack: &Mapping, tls: &mut Tls) -> Result<(u64, u64), HostError> {
    let flags = libc::CLONE_VM
        | libc::CLONE_FS
        | libc::CLONE_FILES
        | libc::CLONE_SIGHAND
        | libc::CLONE_THREAD
        | libc::CLONE_SYSVSEM
        | libc::CLONE_SETTLS
        | libc::CLONE_PARENT_SETTID
        | libc::CLONE_CHILD_CLEARTID;
    // The kernel writes the tid here before clone returns and clears it
    // (with a futex wake) when the thread has exited.
    let tid_word = AtomicI32::new(0);
    let tid_ptr = tid_word.as_ptr();

    let t0 = clock_start();
    // SAFETY: as in `clone_vm_once`; `tid_word` and `tls` outlive the
    // thread because we wait below until the kernel has cleared the word,
    // which it does as the thread exits.
    let tid = unsafe {
        libc::clone(
            child_exit,
            stack.top(),
            flags,
            ptr::null_mut(),
            tid_ptr,
            ptr::from_mut(tls).cast::<c_void>(),
            tid_ptr,
        )
    };
    let t1 = clock_end();
    if tid < 0 {
        return Err(HostError::last(op, "clone"));
    }
    loop {
        let seen = tid_word.load(Ordering::Acquire);
        if seen == 0 {
            break;
        }
        // Not FUTEX_PRIVATE: the kernel's CHILD_CLEARTID wake is shared.
        // SAFETY: `tid_ptr` points to a live, aligned i32.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_futex,
                tid_ptr,
                libc::FUTEX_WAIT,
                seen,
                ptr::null::<libc::timespec>(),
            )
        };
        if rc == -1 && !matches!(errno(), libc::EAGAIN | libc::EINTR) {
            return Err(HostError::last(op, "futex"));
        }
    }
    let t2 = clock_end();
    Ok((t1 - t0, t2 - t0))
}

/// One `clone(CLONE_SIGHAND)` without `CLONE_VM`, which must fail with
/// EINVAL; returns the cycles until it does.
fn clone_einval_once(op: BenchOp) -> Result<u64, HostError> {
    let t0 = clock_start();
    // SAFETY: no CLONE_VM; should it succeed, the child only calls _exit.
    let rc = unsafe { raw_clone(libc::CLONE_SIGHAND | libc::SIGCHLD) };
    let t1 = clock_end();
    let err = errno();
    if rc == 0 {
        // SAFETY: leaving the mistakenly created child at once.
        unsafe { libc::_exit(0) };
    }
    if rc > 0 {
        reap(op, rc as libc::pid_t)?;
        return Err(HostError::Unexpected {
            op,
            syscall: "clone",
            detail: "clone(CLONE_SIGHAND) without CLONE_VM succeeded, expected EINVAL".to_owned(),
        });
    }
    if err != libc::EINVAL {
        return Err(HostError::Unexpected {
            op,
            syscall: "clone",
            detail: format!(
                "failed with {}, expected EINVAL",
                io::Error::from_raw_os_error(err)
            ),
        });
    }
    Ok(t1 - t0)
}

// --- RLIMIT_NPROC -----------------------------------------------------------

/// What the RLIMIT_NPROC child reports back through shared memory.
#[repr(C)]
struct RlimitReport {
    /// One of the `RL_*` codes.
    status: u32,
    /// Index into [`RL_SYSCALLS`] of the call that failed.
    syscall: u32,
    /// The errno, if a call failed.
    errno: i32,
    /// Set by the child once it is done, so a child that dies is noticed.
    done: u32,
}

const RL_OK: u32 = 0;
/// A setup call failed (`errno` says why).
const RL_SYSCALL: u32 = 1;
/// A fork succeeded despite the limit.
const RL_FORKED: u32 = 2;
/// A fork failed, but not with EAGAIN.
const RL_WRONG_ERRNO: u32 = 3;
const RL_SYSCALLS: [&str; 4] = ["prlimit64", "setgroups", "setgid", "setuid"];

/// Runs the RLIMIT_NPROC scenario in a child process so the limit and uid
/// change do not touch this process; returns the samples and a note on how
/// the limit was made to bite.
fn rlimit_eagain(op: BenchOp, params: Params) -> Result<(Vec<u64>, String), HostError> {
    let total = params.iters + params.warmup;
    // SAFETY: geteuid cannot fail and has no side effects.
    let root = unsafe { libc::geteuid() } == 0;
    let note = if root {
        "child switched to uid/gid 65534 with RLIMIT_NPROC 1".to_owned()
    } else {
        "non-root: child lowered RLIMIT_NPROC to 1 for its own uid".to_owned()
    };

    let header = std::mem::size_of::<RlimitReport>().next_multiple_of(8);
    let len = header + params.iters * 8;
    let shared = Mapping::new(op, len, libc::MAP_SHARED)?;
    let report = shared.addr.cast::<RlimitReport>();
    // SAFETY: the mapping is at least `header` bytes, page-aligned, and
    // zero-filled, so past `header` lie `params.iters` aligned u64s.
    let samples = unsafe { shared.addr.cast::<u8>().add(header).cast::<u64>() };

    // SAFETY: no CLONE_VM. The child uses only raw system calls and writes
    // to the shared mapping (no allocation, no locks), then _exits.
    let pid = unsafe { raw_clone(libc::SIGCHLD) };
    if pid == 0 {
        // SAFETY: child side; see `rlimit_child`.
        unsafe { rlimit_child(report, samples, params.warmup, total, root) };
    }
    if pid < 0 {
        return Err(HostError::last(op, "clone"));
    }
    reap(op, pid as libc::pid_t)?;

    // SAFETY: the child has exited; the report is ours to read.
    let rep = unsafe { report.read_volatile() };
    if rep.done != 1 {
        return Err(HostError::Unexpected {
            op,
            syscall: "clone",
            detail: "the RLIMIT_NPROC child exited without reporting".to_owned(),
        });
    }
    let syscall = RL_SYSCALLS
        .get(rep.syscall as usize)
        .copied()
        .unwrap_or("?");
    match rep.status {
        RL_OK => {}
        RL_SYSCALL if root && rep.errno == libc::EPERM => {
            return Err(HostError::NotApplicable {
                op,
                reason: format!(
                    "{syscall} failed with EPERM: cannot switch to an unprivileged uid (no CAP_SETUID/CAP_SETGID)"
                ),
            })
        }
        RL_SYSCALL => return Err(HostError::syscall(op, syscall, rep.errno)),
        RL_FORKED if !root => {
            return Err(HostError::NotApplicable {
                op,
                reason: "fork succeeded despite RLIMIT_NPROC 1: this uid is exempt \
                         (CAP_SYS_RESOURCE/CAP_SYS_ADMIN); switching to an unprivileged uid needs root"
                    .to_owned(),
            })
        }
        RL_FORKED => {
            return Err(HostError::Unexpected {
                op,
                syscall: "clone",
                detail: "succeeded despite RLIMIT_NPROC, expected EAGAIN".to_owned(),
            })
        }
        _ => {
            return Err(HostError::Unexpected {
                op,
                syscall: "clone",
                detail: format!(
                    "failed with {}, expected EAGAIN",
                    io::Error::from_raw_os_error(rep.errno)
                ),
            })
        }
    }
    let mut out = Vec::with_capacity(params.iters);
    for i in 0..params.iters {
        // SAFETY: `i < params.iters`, inside the shared mapping.
        out.push(unsafe { samples.add(i).read_volatile() });
    }
    Ok((out, note))
}

/// The RLIMIT_NPROC child: limits itself, then forks `total` times, each of
/// which must fail with EAGAIN, storing the cycles of the last
/// `total - warmup` in `samples`. Never returns.
///
/// # Safety
///
/// Only in a freshly forked child: raw system calls only (glibc's setuid
/// would try to reach the parent's other threads, which do not exist here),
/// `report` and `samples` point into a shared mapping large enough for
/// `total - warmup` samples.
unsafe fn rlimit_child(
    report: *mut RlimitReport,
    samples: *mut u64,
    warmup: usize,
    total: usize,
    root: bool,
) -> ! {
    // SAFETY: the caller upholds the contract above; every call here is a
    // raw system call or a write into the shared mapping within bounds.
    unsafe {
        let finish = |status: u32, syscall: u32, errno: c_int| -> ! {
            report.write_volatile(RlimitReport {
                status,
                syscall,
                errno,
                done: 1,
            });
            libc::_exit(0)
        };
        let limit = libc::rlimit {
            rlim_cur: 1,
            rlim_max: 1,
        };
        let no_limit: *const libc::rlimit = ptr::null();
        if libc::syscall(
            libc::SYS_prlimit64,
            0 as libc::c_long,
            libc::c_long::from(libc::RLIMIT_NPROC),
            &limit,
            no_limit,
        ) != 0
        {
            finish(RL_SYSCALL, 0, errno());
        }
        if root {
            let steps: [(libc::c_long, libc::c_long, libc::c_long); 3] = [
                (libc::SYS_setgroups, 0, 0),
                (libc::SYS_setgid, NOBODY, 0),
                (libc::SYS_setuid, NOBODY, 0),
            ];
            for (i, (nr, a, b)) in steps.into_iter().enumerate() {
                if libc::syscall(nr, a, b) != 0 {
                    finish(RL_SYSCALL, i as u32 + 1, errno());
                }
            }
        }
        for i in 0..total {
            let t0 = clock_start();
            let rc = raw_clone(libc::SIGCHLD);
            let t1 = clock_end();
            let err = errno();
            if rc == 0 {
                libc::_exit(0);
            }
            if rc > 0 {
                let mut status = 0;
                libc::waitpid(rc as libc::pid_t, &mut status, 0);
                finish(RL_FORKED, 0, 0);
            }
            if err != libc::EAGAIN {
                finish(RL_WRONG_ERRNO, 0, err);
            }
            if i >= warmup {
                samples.add(i - warmup).write_volatile(t1 - t0);
            }
        }
        finish(RL_OK, 0, 0)
    }
}

// --- Summaries --------------------------------------------------------------

/// Order statistics of a set of samples (nearest rank).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Summary {
    pub min: u64,
    pub median: u64,
    pub p90: u64,
    pub max: u64,
}

impl Summary {
    /// The summary of `samples`, `None` if there are none.
    pub fn of(samples: &[u64]) -> Option<Summary> {
        let mut sorted = samples.to_vec();
        sorted.sort_unstable();
        let last = sorted.len().checked_sub(1)?;
        let rank = |percent: usize| sorted[(last * percent).div_ceil(100)];
        Some(Summary {
            min: sorted[0],
            median: rank(50),
            p90: rank(90),
            max: sorted[last],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_ranks() {
        assert_eq!(Summary::of(&[]), None);
        let s = Summary::of(&[5]).unwrap();
        assert_eq!((s.min, s.median, s.p90, s.max), (5, 5, 5, 5));
        let v: Vec<u64> = (1..=11).rev().collect();
        let s = Summary::of(&v).unwrap();
        assert_eq!((s.min, s.median, s.p90, s.max), (1, 6, 10, 11));
    }

    #[test]
    fn monotonic_ticks_are_nanoseconds() {
        let clock = HostClock::Monotonic;
        assert_eq!(
            cycles_to_duration(1_234, clock.khz()),
            Duration::from_nanos(1_234)
        );
        let (a, b) = (monotonic_ns(), monotonic_ns());
        assert!(b >= a);
    }

    #[test]
    fn cycles_convert() {
        assert_eq!(
            cycles_to_duration(3_000, 3_000_000),
            Duration::from_nanos(1_000)
        );
        assert_eq!(cycles_to_duration(5, 0), Duration::ZERO);
    }

    #[test]
    fn names_are_distinct() {
        let mut names: Vec<_> = BenchOp::ALL.iter().map(|&op| op_name(op)).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), BenchOp::ALL.len());
    }
}
