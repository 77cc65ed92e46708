//! `fuzz [--seed N] [--calls M] [--workers K] [--uid U] [--run-calls C]
//! [--limit-ms T] [--run R] [--log] [--exclude NR]...`: a trinity-like
//! system-call fuzzer.
//!
//! A **manager** (the process started, normally root) keeps K workers going
//! until M calls were made, then prints a summary and exits 0:
//!
//! ```text
//! fuzz: seed=N calls=M workers=K runs=R elapsed_ms=..
//! fuzz: results ok=.. EFAULT=.. EINVAL=.. ENOSYS=.. ...
//! fuzz: deaths sig11=.. stalled=.. [init_sigN=..]
//! fuzz: done
//! ```
//!
//! `deaths` counts fuzzing processes killed by each signal (`sigN`), the
//! runs whose worker made no progress for a second once it started its
//! calls, or did not start them within a minute (`stalled`, killed), and
//! namespace inits killed (`init_sigN`: by the manager's time limit, 9, or
//! by a kernel bug).
//!
//! Each worker **run** makes up to C calls (`--run-calls`, default 1000) in
//! a sandbox: the manager clones a namespace init (new pid, IPC and UTS
//! namespaces: whatever the run leaves, processes and semaphore sets, dies
//! with it); that init forks the fuzzing process, which drops to uid/gid U
//! (default 1000; no capabilities, `RLIMIT_NPROC` 64), closes its standard
//! descriptors and makes the calls. So a worker cannot signal the manager
//! (another uid and pid namespace; `kill(-1)` reaches its own namespace only,
//! `kill(0)` its own session's process group: the namespace init's),
//! power off (`reboot` needs CAP_SYS_BOOT) or stop the kernel
//! (`forkvm_diag` panic needs CAP_SYS_ADMIN). The namespace init reaps
//! everything, interrupts a call that makes no progress with SIGALRM (the
//! worker has an empty handler) and kills the worker once a run has made no
//! progress for a while; the manager kills a namespace init whose run passed
//! `--limit-ms` (default 5000). A worker that dies is replaced.
//!
//! Calls are a pure function of (seed, run number, call number): the run
//! numbers are given out in order, and `fuzz --seed N --run R --log`
//! replays run R alone, printing each call (`call NR ARGS...`) before it is
//! made — how to name the call that crashed or hung the kernel. Without
//! `--seed` the seed comes from the clock. Either way the manager prints
//! it before the first call (`fuzz: start seed=N ...`) and each run as it
//! starts (`fuzz: run R`), so the log of a run that never reached its
//! summary (the kernel died) still says what to replay.
//! `--exclude NR` (repeatable, like trinity's `-x`) never makes call NR
//! (compared on the low 32 bits), e.g. to get past a known kernel bug.
//!
//! What a call looks like (see [`Generator`]): a number from the kernel's
//! table (most often), any number up to 450, forkvm's own (1024..), or a
//! huge one (bits above 31 set); six arguments each of a random kind: small
//! or huge integers, pointers into the worker's scratch buffer (sometimes
//! straddling its end), into a read-only page, an unmapped hole, the kernel
//! half (forkvm's and Linux's), non-canonical addresses, plausible fds,
//! pids and signals, and flag words with random bits. `exit` and
//! `exit_group` are never made (they would only end the run); a child of
//! `fork`, `vfork`, `clone` or `clone3` exits at once without touching its
//! (possibly bogus) stack.
#![no_std]
#![no_main]

extern crate alloc;

use core::sync::atomic::{AtomicU64, Ordering};
use forkvm_user::syscall::nr;

use forkvm_user::cred::{setgid, setrlimit, setuid, Rlimit, RLIMIT_NPROC};
use forkvm_user::io::BufWriter;
use forkvm_user::shell_parse::parse_u64;
use forkvm_user::signal::{sigaction, SigInfo};
use forkvm_user::syscall::{
    close, exit_group, fork, getpid, kill, mmap, mprotect, munmap, nanosleep, syscall2, wait4, Pid,
    Timespec, WaitStatus, MAP_ANONYMOUS, MAP_PRIVATE, MAP_SHARED, PROT_NONE, PROT_READ, PROT_WRITE,
    WALL, WNOHANG,
};
use forkvm_user::time::monotonic_ns;
use forkvm_user::{entry, eprintln, println, Errno};

entry!(main);

const SIGKILL: i32 = 9;
const SIGALRM: i32 = 14;
const CLONE_NEWUTS: usize = 0x0400_0000;
const CLONE_NEWIPC: usize = 0x0800_0000;
const CLONE_NEWPID: usize = 0x2000_0000;
const SIGCHLD: usize = 17;

const USAGE: &str = "usage: fuzz [--seed N] [--calls M] [--workers K] [--uid U] \
                     [--run-calls C] [--limit-ms T] [--run R] [--log] [--exclude NR]...";
/// Most `--exclude` numbers.
const MAX_EXCLUDED: usize = 16;

/// Errno slots in the result histogram (Linux's errnos end at 133).
const ERRNOS: usize = 134;
/// Most workers at once.
const MAX_WORKERS: usize = 16;
/// Bytes of the worker's scratch buffer (its "valid" pointers).
const SCRATCH: usize = 64 * 1024;
const PAGE: usize = 4096;
/// A worker whose call count has not moved for this long gets SIGALRM...
const KICK_NS: u64 = 20_000_000;
/// ...and is killed after this long.
const STALL_NS: u64 = 1_000_000_000;
/// How long the fuzzing process may take to set itself up (drop its
/// privileges, map its arena) before its first call: no random call runs
/// yet, so only a slow machine (a nested VM under emulation takes seconds
/// to fault in a fresh process) makes it long.
const SETUP_NS: u64 = 60_000_000_000;
/// The fuzzing process's `RLIMIT_NPROC`.
const WORKER_NPROC: u64 = 64;
/// Runs in a row without a call after which the manager gives up.
const FRUITLESS_MAX: u64 = 20;
/// Descriptor kept for `--log` output (the standard ones are closed).
const LOG_FD: i32 = 900;

#[derive(Clone, Copy)]
struct Options {
    seed: u64,
    calls: u64,
    workers: usize,
    uid: u32,
    run_calls: u64,
    limit_ms: u64,
    run: Option<u64>,
    log: bool,
    excluded: [Option<u32>; MAX_EXCLUDED],
}

fn parse(args: &[&[u8]]) -> Option<Options> {
    let mut o = Options {
        seed: clock_seed(),
        calls: 10_000,
        workers: 2,
        uid: 1000,
        run_calls: 1000,
        limit_ms: 5000,
        run: None,
        log: false,
        excluded: [None; MAX_EXCLUDED],
    };
    let mut it = args.iter();
    while let Some(&flag) = it.next() {
        if flag == b"--log" {
            o.log = true;
            continue;
        }
        let value = parse_u64(it.next()?)?;
        match flag {
            b"--seed" => o.seed = value,
            b"--calls" => o.calls = value,
            b"--workers" => o.workers = usize::try_from(value).ok()?,
            b"--uid" => o.uid = u32::try_from(value).ok()?,
            b"--run-calls" => o.run_calls = value,
            b"--limit-ms" => o.limit_ms = value,
            b"--run" => o.run = Some(value),
            b"--exclude" => *o.excluded.iter_mut().find(|x| x.is_none())? = Some(value as u32),
            _ => return None,
        }
    }
    let ok = (1..=MAX_WORKERS).contains(&o.workers) && o.run_calls > 0 && o.limit_ms > 0;
    ok.then_some(o)
}

/// A seed for a run without `--seed`: the clock, mixed (splitmix64's
/// finalizer) so that runs started close together differ in every bit.
fn clock_seed() -> u64 {
    let mut z = monotonic_ns().wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn main(args: &[&[u8]], _env: &[&[u8]]) -> i32 {
    let Some(options) = parse(args.get(1..).unwrap_or(&[])) else {
        eprintln!("{USAGE}");
        return 2;
    };
    // Before any call: a kernel that dies mid-run leaves this in the log.
    println!(
        "fuzz: start seed={} calls={} workers={} uid={} run_calls={} \
         (replay run R: fuzz --seed {} --run R --log)",
        options.seed, options.calls, options.workers, options.uid, options.run_calls, options.seed
    );
    let slots = match Slots::new() {
        Ok(slots) => slots,
        Err(e) => {
            eprintln!("fuzz: mmap: {e}");
            return 1;
        }
    };
    let mut manager = Manager::new(options, slots);
    match options.run {
        Some(run) => manager.replay(run),
        None => manager.run_all(),
    }
    manager.report();
    0
}

// ---------------------------------------------------------------------------
// Shared state between the manager and its workers.

/// What one worker run reports, in memory shared with the manager.
#[repr(C)]
struct Slot {
    /// Calls made so far in this run.
    calls: AtomicU64,
    /// Results: index 0 success, else the errno.
    results: [AtomicU64; ERRNOS],
    /// The fuzzing process's wait status (+1; 0 = none yet), set by the
    /// namespace init.
    status: AtomicU64,
    /// Set by the namespace init when it killed a stalled worker.
    stalled: AtomicU64,
    /// Set by the fuzzing process when it is set up and starts its calls:
    /// the stall clock runs from then.
    started: AtomicU64,
    /// The call in progress: number and arguments.
    current: [AtomicU64; 7],
}

/// [`MAX_WORKERS`] slots in one shared anonymous mapping.
struct Slots(&'static [Slot]);

impl Slots {
    fn new() -> Result<Slots, Errno> {
        let len = core::mem::size_of::<Slot>() * MAX_WORKERS;
        // SAFETY: without MAP_FIXED no mapping is replaced.
        let p = unsafe {
            mmap(
                0,
                len,
                PROT_READ | PROT_WRITE,
                MAP_SHARED | MAP_ANONYMOUS,
                -1,
                0,
            )?
        };
        // SAFETY: a fresh zeroed mapping of MAX_WORKERS slots, never
        // unmapped by the manager; a Slot is atomics only (all-zero valid).
        Ok(Slots(unsafe {
            core::slice::from_raw_parts(p.cast::<Slot>(), MAX_WORKERS)
        }))
    }
}

impl Slot {
    fn reset(&self) {
        self.calls.store(0, Ordering::SeqCst);
        for r in &self.results {
            r.store(0, Ordering::Relaxed);
        }
        self.status.store(0, Ordering::SeqCst);
        self.stalled.store(0, Ordering::SeqCst);
        self.started.store(0, Ordering::SeqCst);
    }
}

// ---------------------------------------------------------------------------
// The manager.

/// A worker run in progress: its namespace init and when it started.
#[derive(Clone, Copy)]
struct Running {
    init: Pid,
    run: u64,
    /// Calls the run was given.
    calls: u64,
    started_ns: u64,
}

struct Manager {
    options: Options,
    slots: Slots,
    running: [Option<Running>; MAX_WORKERS],
    next_run: u64,
    /// Calls given out to runs (started).
    planned: u64,
    calls: u64,
    results: [u64; ERRNOS],
    /// Worker deaths by signal number.
    deaths: [u64; 65],
    stalled: u64,
    /// Runs whose namespace init did not end normally, by signal.
    init_deaths: [u64; 65],
    /// Runs whose result histogram was overwritten (not counted).
    scribbled: u64,
    /// Runs in a row that made no call (a worker that cannot start).
    fruitless: u64,
    started_ns: u64,
}

impl Manager {
    fn new(options: Options, slots: Slots) -> Manager {
        Manager {
            options,
            slots,
            running: [None; MAX_WORKERS],
            next_run: 0,
            planned: 0,
            calls: 0,
            results: [0; ERRNOS],
            deaths: [0; 65],
            stalled: 0,
            init_deaths: [0; 65],
            fruitless: 0,
            scribbled: 0,
            started_ns: monotonic_ns(),
        }
    }

    fn run_all(&mut self) {
        loop {
            for i in 0..self.options.workers {
                if self.running[i].is_none() && self.planned < self.options.calls {
                    let run = self.next_run;
                    let calls = self
                        .options
                        .run_calls
                        .min(self.options.calls - self.planned);
                    if self.start(i, run, calls) {
                        self.next_run += 1;
                        self.planned += calls;
                    }
                }
            }
            if self.running.iter().all(Option::is_none) {
                return;
            }
            self.poll();
        }
    }

    fn replay(&mut self, run: u64) {
        let calls = self.options.run_calls.min(self.options.calls);
        if self.start(0, run, calls) {
            self.next_run = run + 1;
            self.planned = calls;
            while self.running[0].is_some() {
                self.poll();
            }
        }
    }

    /// Starts run `run` of `calls` calls in slot `i`; false if it could not.
    fn start(&mut self, i: usize, run: u64, calls: u64) -> bool {
        // The runs in flight when a kernel died are the last ones named.
        println!("fuzz: run {run}");
        let slot = &self.slots.0[i];
        slot.reset();
        let worker = Worker {
            slot,
            seed: self.options.seed,
            run,
            calls,
            uid: self.options.uid,
            log: self.options.log,
            excluded: self.options.excluded,
        };
        // A fork with new pid, IPC and UTS namespaces: the child is the
        // namespace's init.
        // SAFETY: no stack is given, so the child runs on a copy of ours,
        // like fork.
        let ret = unsafe {
            syscall2(
                nr::CLONE,
                CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | SIGCHLD,
                0,
            )
        };
        match forkvm_user::syscall::check(ret) {
            Ok(0) => worker.namespace_init(),
            Ok(pid) => {
                self.running[i] = Some(Running {
                    init: pid as Pid,
                    run,
                    calls,
                    started_ns: monotonic_ns(),
                });
                true
            }
            Err(e) => {
                eprintln!("fuzz: clone(CLONE_NEWPID): {e}");
                // Give up on new runs (ENOMEM/EAGAIN would only repeat).
                self.planned = self.options.calls;
                false
            }
        }
    }

    /// Reaps ended runs and kills overdue ones; sleeps a little if nothing
    /// happened.
    fn poll(&mut self) {
        match wait4(-1, WNOHANG | WALL) {
            Ok((0, _)) | Err(Errno::EINTR) => {}
            Ok((pid, status)) => {
                self.finished(pid, status);
                return;
            }
            Err(e) => {
                eprintln!("fuzz: wait4: {e}");
                exit_group(1)
            }
        }
        let now = monotonic_ns();
        let limit = self.options.limit_ms.saturating_mul(1_000_000);
        for running in self.running.iter().flatten() {
            if now - running.started_ns > limit {
                eprintln!(
                    "fuzz: run {} (seed {}) over {} ms: killed",
                    running.run, self.options.seed, self.options.limit_ms
                );
                let _ = kill(running.init as i32, SIGKILL);
            }
        }
        let _ = nanosleep(Timespec::from_nanos(1_000_000));
    }

    /// Accounts for the namespace init `pid` that ended with `status`.
    fn finished(&mut self, pid: Pid, status: WaitStatus) {
        let Some((i, running)) = self
            .running
            .iter()
            .enumerate()
            .find_map(|(i, r)| r.filter(|r| r.init == pid).map(|r| (i, r)))
        else {
            return;
        };
        let slot = &self.slots.0[i];
        let made = slot.calls.load(Ordering::SeqCst).min(running.calls);
        self.calls += made;
        // A worker may scribble on its slot through a bad pointer: a
        // histogram that does not add up to its calls is dropped.
        let counted = slot
            .results
            .iter()
            .fold(0u64, |sum, r| sum.wrapping_add(r.load(Ordering::Relaxed)));
        if counted == made {
            for (total, r) in self.results.iter_mut().zip(&slot.results) {
                *total += r.load(Ordering::Relaxed);
            }
        } else {
            self.scribbled += 1;
        }
        // The calls a run did not make (it died) go to the next one.
        self.planned -= running.calls - made;
        if made == 0 {
            self.fruitless += 1;
            if self.fruitless == FRUITLESS_MAX {
                eprintln!("fuzz: {FRUITLESS_MAX} runs in a row made no call: stopping");
                self.planned = self.options.calls;
            }
        } else {
            self.fruitless = 0;
        }
        if slot.stalled.load(Ordering::SeqCst) != 0 {
            self.stalled += 1;
        }
        let worker = slot.status.load(Ordering::SeqCst);
        if worker != 0 {
            let worker = WaitStatus((worker - 1) as i32);
            if worker.signaled() {
                self.deaths[(worker.term_signal() as usize).min(64)] += 1;
            }
        }
        if status.signaled() {
            self.init_deaths[(status.term_signal() as usize).min(64)] += 1;
        }
        self.running[i] = None;
    }

    fn report(&self) {
        let elapsed_ms = (monotonic_ns() - self.started_ns) / 1_000_000;
        println!(
            "fuzz: seed={} calls={} workers={} runs={} elapsed_ms={elapsed_ms}",
            self.options.seed, self.calls, self.options.workers, self.next_run
        );
        let mut out = BufWriter::<1024>::new(1);
        let _ = out.write_bytes(b"fuzz: results");
        for (errno, &n) in self.results.iter().enumerate() {
            if n == 0 {
                continue;
            }
            let _ = match errno {
                0 => core::fmt::write(&mut out, format_args!(" ok={n}")),
                e => match Errno(e as i32).name() {
                    Some(name) => core::fmt::write(&mut out, format_args!(" {name}={n}")),
                    None => core::fmt::write(&mut out, format_args!(" errno{e}={n}")),
                },
            };
        }
        let _ = out.write_bytes(b"\nfuzz: deaths");
        for (signal, &n) in self.deaths.iter().enumerate() {
            if n > 0 {
                let _ = core::fmt::write(&mut out, format_args!(" sig{signal}={n}"));
            }
        }
        let _ = core::fmt::write(&mut out, format_args!(" stalled={}", self.stalled));
        if self.scribbled > 0 {
            let _ = core::fmt::write(
                &mut out,
                format_args!(" (results of {} runs overwritten)", self.scribbled),
            );
        }
        for (signal, &n) in self.init_deaths.iter().enumerate() {
            if n > 0 {
                let _ = core::fmt::write(&mut out, format_args!(" init_sig{signal}={n}"));
            }
        }
        let _ = out.write_bytes(b"\nfuzz: done\n");
        let _ = out.flush();
    }
}

// ---------------------------------------------------------------------------
// A worker run.

struct Worker {
    slot: &'static Slot,
    seed: u64,
    run: u64,
    calls: u64,
    uid: u32,
    log: bool,
    excluded: [Option<u32>; MAX_EXCLUDED],
}

impl Worker {
    /// The namespace init: forks the fuzzing process, reaps everything,
    /// watches for stalls; exits (ending the namespace and whatever is
    /// left in it) when the fuzzing process has ended.
    fn namespace_init(&self) -> ! {
        // A session and process group of its own: `kill(0)` and
        // `kill(-pgrp)` reach every member of a process group whatever its
        // pid namespace, so a root worker left in the shell's group could
        // kill the shell and the manager (it did: SIGABRT, status 134).
        if forkvm_user::syscall::setsid().is_err() {
            exit_group(1);
        }
        if self.log {
            let _ = forkvm_user::syscall::dup2(1, LOG_FD);
        }
        let child = match fork() {
            Ok(0) => self.fuzz(),
            Ok(pid) => pid,
            Err(_) => exit_group(1),
        };
        let mut seen = 0;
        let mut started = false;
        let mut moved_ns = monotonic_ns();
        let mut kicked_ns = moved_ns;
        loop {
            match wait4(-1, WNOHANG | WALL) {
                Ok((0, _)) | Err(Errno::EINTR) => {}
                Ok((pid, status)) => {
                    if pid == child {
                        self.slot
                            .status
                            .store(status.0 as u64 + 1, Ordering::SeqCst);
                        exit_group(0)
                    }
                    continue;
                }
                Err(_) => exit_group(1),
            }
            let now = monotonic_ns();
            let calls = self.slot.calls.load(Ordering::SeqCst);
            if !started {
                if self.slot.started.load(Ordering::SeqCst) != 0 {
                    started = true;
                    moved_ns = now;
                } else if now - moved_ns > SETUP_NS {
                    self.slot.stalled.store(1, Ordering::SeqCst);
                    let _ = kill(child as i32, SIGKILL);
                }
            } else if calls != seen {
                seen = calls;
                moved_ns = now;
            } else if now - moved_ns > STALL_NS {
                self.slot.stalled.store(1, Ordering::SeqCst);
                let _ = kill(child as i32, SIGKILL);
            } else if now - moved_ns > KICK_NS && now - kicked_ns > KICK_NS {
                // Interrupts a blocking call (EINTR) if the worker still
                // has its handler and has not blocked the signal.
                kicked_ns = now;
                let _ = kill(child as i32, SIGALRM);
            }
            let _ = nanosleep(Timespec::from_nanos(2_000_000));
        }
    }

    /// The fuzzing process: drops privileges, then makes the calls.
    fn fuzz(&self) -> ! {
        let limit = Rlimit {
            cur: WORKER_NPROC,
            max: WORKER_NPROC,
        };
        // SAFETY: setgroups(0, NULL) reads nothing.
        let groups = unsafe { syscall2(nr::SETGROUPS, 0, 0) };
        if setrlimit(RLIMIT_NPROC, limit).is_err()
            || forkvm_user::syscall::check(groups).is_err()
            || setgid(self.uid).is_err()
            || setuid(self.uid).is_err()
        {
            exit_group(120)
        }
        let _ = sigaction(SIGALRM, on_alarm, 0, 0);
        let log = self.log.then_some(LOG_FD);
        for fd in 0..3 {
            let _ = close(fd);
        }
        let Some(arena) = Arena::new() else {
            exit_group(121)
        };
        let mut generator = Generator::new(self.seed, self.run, arena, self.excluded);
        self.slot.started.store(1, Ordering::SeqCst);
        for call in 0..self.calls {
            let (nr, args) = generator.next_call();
            for (word, value) in self
                .slot
                .current
                .iter()
                .zip(core::iter::once(nr).chain(args.iter().copied()))
            {
                word.store(value, Ordering::Relaxed);
            }
            if let Some(fd) = log {
                let mut out = BufWriter::<256>::new(fd);
                let _ = core::fmt::write(
                    &mut out,
                    format_args!(
                        "call {}.{call} {nr:#x} {:#x} {:#x} {:#x} {:#x} {:#x} {:#x}\n",
                        self.run, args[0], args[1], args[2], args[3], args[4], args[5]
                    ),
                );
                let _ = out.flush();
            }
            let ret = make_call(nr, args);
            let index = match forkvm_user::syscall::check(ret) {
                Ok(_) => 0,
                Err(e) => (e.0 as usize).min(ERRNOS - 1),
            };
            self.slot.results[index].fetch_add(1, Ordering::Relaxed);
            self.slot.calls.fetch_add(1, Ordering::SeqCst);
            if call % 16 == 15 {
                // Reap children the calls made (they exit at once).
                while let Ok((pid, _)) = wait4(-1, WNOHANG | WALL) {
                    if pid == 0 {
                        break;
                    }
                }
            }
        }
        exit_group(0)
    }
}

/// SIGALRM from the namespace init: only interrupts the call in progress.
extern "C" fn on_alarm(_signo: i32, _info: *mut SigInfo, _ucontext: *mut u8) {}

// ---------------------------------------------------------------------------
// Making a call.

/// System-call numbers whose child returns to the caller's code: the
/// child must not run Rust code (its stack may be bogus, or shared).
fn creates_child(nr: u64) -> bool {
    matches!(nr as u32, 56 | 57 | 58 | 435)
}

/// Numbers never made: they end the caller (nothing to learn, a lost run).
fn is_avoided(nr: u64) -> bool {
    matches!(nr as u32, 60 | 231)
}

/// Makes system call `nr` with `args`. A child created by the call (its
/// result 0) exits at once with `exit(0)`, in assembly that touches no
/// memory.
fn make_call(nr: u64, args: [u64; 6]) -> isize {
    let ret: isize;
    if creates_child(nr) {
        // SAFETY: the call may create a child sharing our memory or with
        // any stack; the child runs only the three instructions after the
        // `syscall`, which use registers alone, and exits. For the caller
        // this is an ordinary system call (whatever it does to our memory
        // through bad pointers is what the fuzzer is for; the scratch
        // buffer is the only valid memory handed out).
        unsafe {
            core::arch::asm!(
                "syscall",
                "test rax, rax",
                "jnz 2f",
                "mov eax, 60",
                "xor edi, edi",
                "syscall",
                "ud2",
                "2:",
                inlateout("rax") nr as isize => ret,
                inlateout("rdi") args[0] => _,
                in("rsi") args[1], in("rdx") args[2], in("r10") args[3],
                in("r8") args[4], in("r9") args[5],
                lateout("rcx") _, lateout("r11") _, options(nostack),
            );
        }
    } else {
        // SAFETY: as above: a raw system call with arbitrary arguments is
        // the point; valid pointers only reach the scratch buffer.
        unsafe {
            core::arch::asm!(
                "syscall",
                inlateout("rax") nr as isize => ret,
                in("rdi") args[0], in("rsi") args[1], in("rdx") args[2],
                in("r10") args[3], in("r8") args[4], in("r9") args[5],
                lateout("rcx") _, lateout("r11") _, options(nostack),
            );
        }
    }
    ret
}

// ---------------------------------------------------------------------------
// What to call with.

/// The worker's memory for pointer arguments: a writable scratch buffer, a
/// read-only page, and an address with nothing mapped.
struct Arena {
    scratch: usize,
    read_only: usize,
    hole: usize,
}

impl Arena {
    fn new() -> Option<Arena> {
        // SAFETY: fresh mappings (no MAP_FIXED); the hole page is unmapped
        // again before anything refers to it, the guard page made
        // inaccessible before anything refers to it.
        unsafe {
            // A guard page after the scratch buffer: an access straddling
            // its end faults there instead of landing in whatever was
            // mapped above (the manager's shared slots, say).
            let scratch = mmap(
                0,
                SCRATCH + PAGE,
                PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS,
                -1,
                0,
            )
            .ok()?;
            mprotect(scratch.add(SCRATCH), PAGE, PROT_NONE).ok()?;
            let read_only = mmap(0, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0).ok()?;
            let hole = mmap(0, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0).ok()?;
            munmap(hole, PAGE).ok()?;
            Some(Arena {
                scratch: scratch as usize,
                read_only: read_only as usize,
                hole: hole as usize,
            })
        }
    }
}

/// The system calls forkvm implements (Linux numbers): most calls pick one.
const TABLE: &[u16] = &[
    0, 1, 2, 3, 9, 10, 11, 12, 13, 14, 15, 22, 24, 32, 33, 34, 35, 39, 56, 57, 58, 59, 61, 62, 63,
    64, 65, 66, 72, 79, 80, 83, 84, 95, 97, 102, 104, 105, 106, 107, 108, 109, 110, 111, 112, 115,
    116, 118, 120, 121, 124, 125, 126, 127, 128, 129, 130, 131, 157, 158, 160, 161, 169, 170, 171,
    186, 200, 202, 218, 220, 228, 234, 247, 251, 252, 257, 258, 263, 272, 292, 293, 297, 302, 424,
    434, 435,
];

/// forkvm's own calls (`forkvm_abi::sys`, from 1024).
const FORKVM_FIRST: u64 = 1024;
const FORKVM_COUNT: u64 = 6;

/// Integers that often sit on a boundary.
const INTERESTING: &[u64] = &[
    0,
    1,
    2,
    0x7f,
    0x80,
    0xff,
    0x100,
    0xfff,
    0x1000,
    0x1001,
    0xffff,
    0x10000,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    0x1_0000_0000,
    0x7fff_ffff_ffff_ffff,
    0x8000_0000_0000_0000,
    u64::MAX,
    u64::MAX - 1,
    u64::MAX - 4095,
    u64::MAX - 4096,
];

/// Linux's reboot magic numbers and POWER_OFF, so `reboot` gets past them.
const REBOOT_WORDS: [u64; 4] = [0xfee1_dead, 672_274_793, 0x4321_fedc, 0x0123_4567];

/// forkvm's kernel runs in the lower half from here (`PAGE_OFFSET`).
const FORKVM_KERNEL: u64 = 0x4000_0000_0000;
/// Linux's direct map and kernel text.
const LINUX_KERNEL: [u64; 2] = [0xffff_8880_0000_0000, 0xffff_ffff_8100_0000];

/// Seeded pseudo-random numbers (splitmix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// Produces the calls of one run.
struct Generator {
    rng: Rng,
    arena: Arena,
    pid: u64,
    excluded: [Option<u32>; MAX_EXCLUDED],
}

impl Generator {
    fn new(seed: u64, run: u64, arena: Arena, excluded: [Option<u32>; MAX_EXCLUDED]) -> Generator {
        let mut rng = Rng(seed ^ run.wrapping_mul(0x2545_f491_4f6c_dd1d));
        // The scratch buffer starts with random bytes, some of its words
        // pointing back into it (argv-like arrays, pointer fields).
        // SAFETY: the scratch buffer is ours, SCRATCH bytes, writable.
        let words =
            unsafe { core::slice::from_raw_parts_mut(arena.scratch as *mut u64, SCRATCH / 8) };
        for word in words.iter_mut() {
            *word = match rng.below(4) {
                0 => arena.scratch as u64 + rng.below(SCRATCH as u64),
                1 => rng.below(256),
                _ => rng.next(),
            };
        }
        Generator {
            rng,
            arena,
            pid: u64::from(getpid()),
            excluded,
        }
    }

    fn next_call(&mut self) -> (u64, [u64; 6]) {
        let nr = loop {
            let nr = self.number();
            if !is_avoided(nr) && !self.excluded.contains(&Some(nr as u32)) {
                break nr;
            }
        };
        let mut args = [0u64; 6];
        for arg in &mut args {
            *arg = self.argument();
        }
        if nr == 169 && self.rng.chance(50) {
            args[..4].copy_from_slice(&REBOOT_WORDS);
        }
        (nr, args)
    }

    fn number(&mut self) -> u64 {
        let r = &mut self.rng;
        match r.below(100) {
            0..=69 => u64::from(TABLE[r.below(TABLE.len() as u64) as usize]),
            70..=84 => r.below(451),
            85..=89 => FORKVM_FIRST + r.below(FORKVM_COUNT),
            90..=94 => {
                // A real number with junk above bit 31 (Linux ignores it).
                let low = u64::from(TABLE[r.below(TABLE.len() as u64) as usize]);
                (r.next() << 32) | low
            }
            _ => r.next(),
        }
    }

    fn argument(&mut self) -> u64 {
        let a = &self.arena;
        let r = &mut self.rng;
        match r.below(16) {
            0 | 1 => r.below(16),
            2 => INTERESTING[r.below(INTERESTING.len() as u64) as usize],
            3 => r.next(),
            4 => r.next() as u32 as u64,
            // Into the scratch buffer; sometimes its last bytes, so that
            // a longer access runs off its end.
            5 | 6 => {
                let offset = if r.chance(20) {
                    SCRATCH as u64 - 1 - r.below(64)
                } else {
                    r.below(SCRATCH as u64) & !r.below(8)
                };
                a.scratch as u64 + offset
            }
            7 => a.read_only as u64 + r.below(PAGE as u64),
            8 => a.hole as u64 + r.below(PAGE as u64),
            9 => match r.below(3) {
                0 => FORKVM_KERNEL + r.below(1 << 40),
                1 => LINUX_KERNEL[r.below(2) as usize] + r.below(1 << 30),
                _ => FORKVM_KERNEL - 1 - r.below(64),
            },
            // Non-canonical: bits 47..63 not all equal.
            10 => (0x8000_0000_0000 + r.below(0x7fff_0000_0000_0000)) & !(1 << 63),
            // Descriptors.
            11 => match r.below(4) {
                0 => u64::MAX,
                1 => (-100i64) as u64, // AT_FDCWD
                _ => r.below(12),
            },
            // Process ids (ours, our parent's, init's, groups, nonsense).
            12 => match r.below(6) {
                0 => self.pid,
                1 => 1,
                2 => 0,
                3 => u64::MAX,
                4 => (-(self.pid as i64)) as u64,
                _ => r.below(64),
            },
            // Signals.
            13 => r.below(66),
            // Flag words: a few random bits.
            14 => {
                let mut flags = 0;
                for _ in 0..=r.below(4) {
                    flags |= 1 << r.below(64);
                }
                flags
            }
            // Sizes.
            _ => {
                PAGE as u64 * r.below(64)
                    + if r.chance(20) {
                        r.below(PAGE as u64)
                    } else {
                        0
                    }
            }
        }
    }
}
