//! `proctest list | all | SCENARIO...`: checks the semantics of process
//! creation (copy-on-write `fork`, `vfork`, `clone` of processes and
//! threads), exit and `wait4` statuses, faults, pipes and descriptors, and a
//! few memory and time calls: what the forkvm kernel must do exactly as Linux
//! does.
//!
//! Each scenario prints exactly one line, `ok <scenario>` or
//! `FAIL <scenario>: <expected vs seen>`. The exit status is 0 if every
//! requested scenario passed, 1 otherwise, and 2 (with a usage message on
//! stderr, before anything runs) for an unknown scenario. `list` prints the
//! names of the scenarios, one per line; `all` runs them all in that order.
//!
//! `exit-42` is a helper, not a scenario: it makes the program exit with
//! status 42 at once, printing nothing (`vfork-exec` executes this program
//! with it). `list` and `all` leave it out.
//!
//! Every scenario is fast (well under a second on Linux), cleans up the
//! children it creates (a child still around on an early return is killed
//! and reaped) and never waits unboundedly in a loop. Children that must end
//! on their own (exit, `execve`) are reaped with a blocking `wait4`, which is
//! part of what is tested; children whose end depends on a signal or fault
//! the kernel might fail to deliver (`SIGKILL` of a spinner, `SIGSEGV`,
//! `exit_group` of a process with a spinning thread) are polled with a
//! deadline and killed if they outlive it. Threads are joined with timed
//! futex waits. The one process left to someone else is the orphaned
//! grandchild of `orphan-reparented`: it has exited before the scenario
//! returns and is reaped by its new parent (by this program if it is pid 1).
//!
//! System calls: read, write, close, dup2, pipe2, mmap, munmap, mprotect,
//! brk, sched_yield, nanosleep, getpid, getppid, gettid, clone, fork, vfork,
//! execve, exit, exit_group, wait4, kill, uname, futex, clock_gettime.
#![no_std]
#![no_main]
// Failure messages are formatted into a 240-byte buffer returned by value
// (no heap needed); they only travel on the failure path, once per scenario.
#![allow(clippy::result_large_err)]

use core::arch::asm;
use core::ffi::CStr;
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use forkvm_user::clone::{
    clone_raw, vfork, CLONE_FILES, CLONE_PARENT_SETTID, CLONE_VM, SIGCHLD, THREAD_FLAGS,
};
use forkvm_user::io::Bytes;
use forkvm_user::syscall::{
    brk, c_field, close, dup2, execve, exit, exit_group, fork, futex, getpid, getppid, gettid,
    kill, mmap_anonymous, mprotect, munmap, nanosleep, nr, pipe2, read, syscall0, syscall2,
    syscall3, syscall4, syscall5, uname, wait4, write, write_all, Pid, Timespec, WaitStatus,
    FUTEX_WAIT, PROT_EXEC, PROT_READ, PROT_WRITE, WNOHANG,
};
use forkvm_user::time::monotonic_ns;
use forkvm_user::{entry, eprintln, println, Errno};

entry!(main);

const USAGE: &str = "usage: proctest list | all | SCENARIO...\n\
    (`list` names the scenarios, `all` runs them; helper `exit-42` exits 42 at once)";

const PAGE: usize = 4096;
const MS: u64 = 1_000_000;
/// How long a child or thread may take to end before the scenario fails
/// (and kills it): far more than any needs on Linux.
const TIMEOUT_NS: u64 = 2_000 * MS;
/// Stack (with a TLS block and tid words at the bottom) of `clone` children.
const STACK_SIZE: usize = 64 * 1024;
const SIGKILL: i32 = 9;
const SIGSEGV: i32 = 11;

// ---------------------------------------------------------------------------
// Failure messages

/// A failure message, formatted into a fixed buffer (no heap needed);
/// longer messages are cut short.
struct Msg {
    len: usize,
    buf: [u8; 240],
}

impl Msg {
    const fn new() -> Self {
        Self {
            len: 0,
            buf: [0; 240],
        }
    }

    fn as_str(&self) -> &str {
        let bytes = &self.buf[..self.len];
        match core::str::from_utf8(bytes) {
            Ok(s) => s,
            // Cut inside a multi-byte character: drop its head.
            Err(e) => core::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or_default(),
        }
    }
}

impl Write for Msg {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

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

type Outcome = Result<(), Msg>;

/// Names a failed system call in a scenario's message.
trait Context<T> {
    fn ctx(self, what: &str) -> Result<T, Msg>;
}

impl<T> Context<T> for Result<T, Errno> {
    fn ctx(self, what: &str) -> Result<T, Msg> {
        self.map_err(|e| msg!("{what}: {e}"))
    }
}

/// Shows a wait status as `exit N`, `killed by signal N` or the raw word.
struct Status(WaitStatus);

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        if s.exited() {
            write!(f, "exit {}", s.exit_status())
        } else if s.signaled() {
            write!(f, "killed by signal {}", s.term_signal())
        } else {
            write!(f, "status {:#x}", s.0)
        }
    }
}

/// Shows a raw system-call result as a number or an errno name.
struct Ret(isize);

impl fmt::Display for Ret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match forkvm_user::syscall::check(self.0) {
            Ok(v) => write!(f, "{v}"),
            Err(e) => write!(f, "-{e}"),
        }
    }
}

fn expect_exit(what: &str, status: WaitStatus, code: i32) -> Outcome {
    ensure!(
        status.exited() && status.exit_status() == code,
        "{what}: expected exit {code}, got {}",
        Status(status)
    );
    Ok(())
}

fn expect_signal(what: &str, status: WaitStatus, signal: i32) -> Outcome {
    ensure!(
        status.signaled() && status.term_signal() == signal,
        "{what}: expected death by signal {signal}, got {}",
        Status(status)
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// Resources that clean up after themselves

/// A file descriptor, closed when dropped.
struct Fd(i32);

impl Fd {
    fn raw(&self) -> i32 {
        self.0
    }

    /// Gives up ownership without closing (someone else closed it).
    fn into_raw(self) -> i32 {
        let fd = self.0;
        core::mem::forget(self);
        fd
    }

    fn close(self) -> Outcome {
        let fd = self.into_raw();
        close(fd).ctx("close")
    }
}

impl Drop for Fd {
    fn drop(&mut self) {
        let _ = close(self.0);
    }
}

/// `pipe2(0)` as `(read end, write end)`.
fn pipe() -> Result<(Fd, Fd), Msg> {
    let [r, w] = pipe2(0).ctx("pipe2")?;
    Ok((Fd(r), Fd(w)))
}

/// Reads until `buf` is full or end of file; returns the bytes read.
fn read_full(fd: i32, buf: &mut [u8]) -> Result<usize, Msg> {
    let mut n = 0;
    while n < buf.len() {
        match read(fd, &mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(Errno::EINTR) => {}
            Err(e) => return Err(msg!("read: {e}")),
        }
    }
    Ok(n)
}

/// An anonymous private read-write mapping, unmapped when dropped.
struct Mapping {
    ptr: *mut u8,
    len: usize,
}

impl Mapping {
    fn new(len: usize) -> Result<Self, Msg> {
        let ptr = mmap_anonymous(len, PROT_READ | PROT_WRITE).ctx("mmap")?;
        Ok(Self { ptr, len })
    }

    fn addr(&self) -> usize {
        self.ptr as usize
    }

    fn get(&self, off: usize) -> u8 {
        assert!(off < self.len);
        // SAFETY: off is inside our readable mapping.
        unsafe { self.ptr.add(off).read_volatile() }
    }

    fn set(&self, off: usize, value: u8) {
        assert!(off < self.len);
        // SAFETY: off is inside our mapping, which is writable wherever this
        // is called (plain bytes: no Rust reference to them exists).
        unsafe { self.ptr.add(off).write_volatile(value) }
    }

    /// Unmaps now, returning the address that is no longer mapped.
    fn unmap(self) -> Result<usize, Msg> {
        let (ptr, len) = (self.ptr, self.len);
        core::mem::forget(self);
        // SAFETY: the mapping is ours and nothing refers to it any more.
        unsafe { munmap(ptr, len) }.ctx("munmap")?;
        Ok(ptr as usize)
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the mapping is ours; its users are gone with `self`.
        let _ = unsafe { munmap(self.ptr, self.len) };
    }
}

/// Executes this program (`argv0`) with the helper argument `helper`; in
/// a child, whose exit status is then the helper's. Returns only if
/// `execve` failed, with 94 (an exit status no helper uses).
fn exec_self_helper(argv0: &[u8], helper: &CStr) -> i32 {
    // SAFETY: argv[0] is a slice of the NUL-terminated string the kernel put
    // on the initial stack (see forkvm_user::start); its NUL follows it.
    let path = unsafe { CStr::from_ptr(argv0.as_ptr().cast()) };
    let argv = [argv0.as_ptr(), helper.as_ptr().cast(), core::ptr::null()];
    let envp = [core::ptr::null()];
    let _ = execve(path, &argv, &envp);
    94
}

/// Waits for `child`'s ready byte on `ready`, then sends it `signal` every
/// 20 ms until it exits: one signal may come before the call it must
/// interrupt has started, so one is not enough. `what` names that call for
/// the timeout message.
fn signal_until_exit(child: Child, ready: i32, signal: i32, what: &str) -> Result<WaitStatus, Msg> {
    let mut byte = [0u8];
    ensure!(
        read_full(ready, &mut byte)? == 1,
        "the child did not get ready"
    );
    let pid = child.pid();
    let deadline = monotonic_ns() + TIMEOUT_NS;
    loop {
        match wait4(pid as i32, WNOHANG) {
            Ok((0, _)) => {}
            Ok((got, status)) if got == pid => {
                child.reaped();
                return Ok(status);
            }
            other => return Err(msg!("wait4({pid}, WNOHANG): {other:?}")),
        }
        ensure!(
            monotonic_ns() < deadline,
            "{what} did not return after repeated signals"
        );
        let _ = kill(pid as i32, signal);
        sleep_ns(20 * MS);
    }
}

/// A pipe that holds children back: each held child waits for one byte
/// of it, or for its end of file.
struct Gate {
    read: Fd,
    write: Fd,
}

impl Gate {
    fn new() -> Result<Gate, Msg> {
        let (read, write) = pipe()?;
        Ok(Gate { read, write })
    }

    /// A child body that waits for one byte (or end of file: the child
    /// closes its copy of the write end), then exits with `code`.
    fn hold(&self, code: i32) -> impl FnOnce() -> i32 {
        let (read_fd, write_fd) = (self.read.raw(), self.write.raw());
        move || {
            let _ = close(write_fd);
            wait_byte(read_fd);
            code
        }
    }

    /// Lets `n` held children go.
    fn release(&self, n: usize) -> Outcome {
        write_all(self.write.raw(), &[0u8; 8][..n]).ctx("write to the gate")
    }

    /// Lets every held child go.
    fn open(self) -> Outcome {
        self.write.close()
    }
}

/// Blocks until one byte or end of file arrives on `fd`.
fn wait_byte(fd: i32) {
    let mut byte = [0u8; 1];
    while let Err(Errno::EINTR) = read(fd, &mut byte) {}
}

/// A child process not yet reaped. Dropping it (an early return) kills it
/// with `SIGKILL` and reaps it, so no scenario leaves one behind.
struct Child {
    pid: Pid,
}

impl Child {
    /// Like [`spawn`](Self::spawn) but with `clone(flags | SIGCHLD)`; the
    /// flags must not include CLONE_VM (the child runs on a copy of this
    /// stack, as after fork).
    fn spawn_with_flags(flags: u64, body: impl FnOnce() -> i32) -> Result<Child, Msg> {
        const SIGCHLD: u64 = 17;
        // SAFETY: without CLONE_VM the child has its own copy of memory and
        // continues here like a forked child; no pointers are passed.
        let ret = unsafe {
            forkvm_user::syscall::syscall5(nr::CLONE, (flags | SIGCHLD) as usize, 0, 0, 0, 0)
        };
        match forkvm_user::syscall::check(ret) {
            Ok(0) => exit_group(body()),
            Ok(pid) => Ok(Child { pid: pid as Pid }),
            Err(e) => Err(msg!("clone({flags:#x}): {e}")),
        }
    }

    /// Forks a child that runs `body` and exits with its result. The child
    /// never returns into the scenario (or the program's main loop).
    fn spawn(body: impl FnOnce() -> i32) -> Result<Child, Msg> {
        match fork() {
            Ok(0) => exit_group(body()),
            Ok(pid) => Ok(Child { pid }),
            Err(e) => Err(msg!("fork: {e}")),
        }
    }

    fn pid(&self) -> Pid {
        self.pid
    }

    /// Forgets the child: it has been reaped some other way.
    fn reaped(self) -> Pid {
        let pid = self.pid;
        core::mem::forget(self);
        pid
    }

    /// Reaps the child with a blocking `wait4(pid, &status, 0, NULL)`.
    fn wait(self) -> Result<WaitStatus, Msg> {
        let pid = self.pid;
        match wait4(pid as i32, 0) {
            Ok((got, status)) if got == pid => {
                self.reaped();
                Ok(status)
            }
            Ok((got, _)) => Err(msg!("wait4({pid}) returned pid {got}")),
            Err(e) => Err(msg!("wait4({pid}): {e}")),
        }
    }

    /// Reaps the child, polling with `WNOHANG` for at most [`TIMEOUT_NS`];
    /// a child still running then is killed and the scenario fails.
    fn wait_bounded(self, what: &str) -> Result<WaitStatus, Msg> {
        let pid = self.pid;
        let deadline = monotonic_ns() + TIMEOUT_NS;
        loop {
            match wait4(pid as i32, WNOHANG) {
                Ok((0, _)) => {}
                Ok((got, status)) if got == pid => {
                    self.reaped();
                    return Ok(status);
                }
                Ok((got, _)) => return Err(msg!("wait4({pid}, WNOHANG) returned pid {got}")),
                Err(e) => return Err(msg!("wait4({pid}, WNOHANG): {e}")),
            }
            if monotonic_ns() > deadline {
                drop(self); // kills and reaps
                return Err(msg!(
                    "{what}: child {pid} still running after {} ms (killed)",
                    TIMEOUT_NS / MS
                ));
            }
            sleep_ns(200_000);
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = kill(self.pid as i32, SIGKILL);
        let _ = wait4(self.pid as i32, 0);
    }
}

fn sleep_ns(ns: u64) {
    let _ = nanosleep(Timespec::from_nanos(ns));
}

/// The memory of a `clone` child: its stack, with a TLS block (a word
/// pointing to itself, the x86-64 convention) and the parent/child tid words
/// at the bottom, where they stay put while the child runs. Unmapped when
/// dropped, so it must outlive the child.
struct ThreadStack {
    map: Mapping,
}

const PTID_OFFSET: usize = 64;
const CTID_OFFSET: usize = 68;

impl ThreadStack {
    fn new() -> Result<Self, Msg> {
        let map = Mapping::new(STACK_SIZE)?;
        // SAFETY: the first 8 bytes of the fresh, aligned mapping: the TLS block.
        unsafe { map.ptr.cast::<u64>().write(map.ptr as u64) };
        Ok(Self { map })
    }

    fn word(&self, offset: usize) -> &AtomicU32 {
        // SAFETY: offset + 4 <= STACK_SIZE and 4-aligned in our mapping, which
        // lives as long as `self`; the word is only ever accessed atomically
        // (by us and by the kernel).
        unsafe { AtomicU32::from_ptr(self.map.ptr.add(offset).cast()) }
    }

    /// The `CLONE_PARENT_SETTID` word.
    fn ptid(&self) -> &AtomicU32 {
        self.word(PTID_OFFSET)
    }

    /// The `CLONE_CHILD_CLEARTID` word: `u32::MAX` until the thread exits.
    fn ctid(&self) -> &AtomicU32 {
        self.word(CTID_OFFSET)
    }

    /// `clone(flags, top of stack, ptid, ctid, tls)`, the child running
    /// `child(arg)`; returns what `clone` returned.
    ///
    /// # Safety
    /// The child must be gone before `self` is dropped, and whatever `arg`
    /// points to must outlive it (see [`clone_raw`]).
    unsafe fn clone(
        &self,
        flags: u64,
        child: extern "C" fn(usize) -> !,
        arg: usize,
    ) -> Result<Pid, Errno> {
        self.ptid().store(0, Ordering::Relaxed);
        self.ctid().store(u32::MAX, Ordering::Relaxed);
        // SAFETY: the stack is ours and unused; the tid words and TLS block
        // live in it; the caller guarantees lifetimes.
        unsafe {
            clone_raw(
                flags,
                self.map.ptr.add(self.map.len),
                self.ptid().as_ptr(),
                self.ctid().as_ptr(),
                self.map.ptr as u64,
                child,
                arg,
            )
        }
    }

    /// Joins a `CLONE_CHILD_CLEARTID` thread: waits (timed futex waits, at
    /// most [`TIMEOUT_NS`] in all) until the kernel has cleared the word. A
    /// thread that does not end in time is left running with its stack
    /// (leaked, never unmapped under it).
    fn join(self) -> Outcome {
        let deadline = monotonic_ns() + TIMEOUT_NS;
        loop {
            let word = self.ctid().load(Ordering::Acquire);
            if word == 0 {
                return Ok(());
            }
            let now = monotonic_ns();
            if now >= deadline {
                core::mem::forget(self);
                return Err(msg!(
                    "thread not joined after {} ms: CHILD_CLEARTID word still {word:#x}",
                    TIMEOUT_NS / MS
                ));
            }
            let left = Timespec::from_nanos(deadline - now);
            match futex(self.ctid(), FUTEX_WAIT, word, Some(&left)) {
                Ok(_) | Err(Errno::EAGAIN | Errno::EINTR | Errno::ETIMEDOUT) => {}
                Err(e) => return Err(msg!("futex(FUTEX_WAIT): {e}")),
            }
        }
    }
}

/// `&T` from the argument a `clone` child got.
///
/// # Safety
/// `arg` must be the address of a `T` that outlives the child.
unsafe fn shared<'a, T>(arg: usize) -> &'a T {
    // SAFETY: guaranteed by the caller.
    unsafe { &*(arg as *const T) }
}

/// Loads the byte at `addr` with an instruction the compiler knows nothing
/// about, so that touching an address that is not (or no longer) mapped is
/// a fault in the process and not a question of Rust semantics.
fn peek(addr: usize) -> u8 {
    let value: u8;
    // SAFETY: a load changes no memory; if `addr` is not readable, the
    // process dies with SIGSEGV, which is what the callers test for.
    unsafe {
        asm!("mov {v}, byte ptr [{a}]", a = in(reg) addr, v = out(reg_byte) value,
             options(nostack, readonly, preserves_flags));
    }
    value
}

/// Stores `value` at `addr` with an instruction the compiler knows nothing
/// about (see [`peek`]).
///
/// # Safety
/// `addr` must not be memory the program uses (the callers aim at addresses
/// that fault, in a child that is about to die).
unsafe fn poke(addr: usize, value: u8) {
    // SAFETY: the caller guarantees no Rust object lives at `addr`.
    unsafe {
        asm!("mov byte ptr [{a}], {v}", a = in(reg) addr, v = in(reg_byte) value,
             options(nostack, preserves_flags));
    }
}

// ---------------------------------------------------------------------------
// Copy-on-write

/// A word in `.data`: private file-backed memory in the ELF image, which
/// `fork` must copy on write just like anonymous memory.
static DATA_WORD: AtomicU64 = AtomicU64::new(0x0123_4567_89ab_cdef);
const DATA_OLD: u64 = 0x0123_4567_89ab_cdef;
const DATA_NEW: u64 = 0xfeed_face_dead_beef;

/// The parent changes a `.data` word and an anonymous page after `fork`;
/// the child, told by a pipe once that is done, must still see the old ones.
fn cow_parent_write(_: &Ctx) -> Outcome {
    DATA_WORD.store(DATA_OLD, Ordering::Relaxed);
    let page = Mapping::new(PAGE)?;
    page.set(100, 0x11);
    let (r, w) = pipe()?;
    let child = Child::spawn(|| {
        let mut go = [0u8; 1];
        if read(r.raw(), &mut go) != Ok(1) {
            return 3;
        }
        if DATA_WORD.load(Ordering::Relaxed) != DATA_OLD {
            return 1;
        }
        if page.get(100) != 0x11 {
            return 2;
        }
        0
    })?;
    DATA_WORD.store(DATA_NEW, Ordering::Relaxed);
    page.set(100, 0x22);
    write_all(w.raw(), b"g").ctx("write(pipe)")?;
    let status = child.wait()?;
    ensure!(
        status != WaitStatus(1 << 8),
        "child saw the parent's write to a .data word after fork"
    );
    ensure!(
        status != WaitStatus(2 << 8),
        "child saw the parent's write to an anonymous page after fork"
    );
    expect_exit("child", status, 0)?;
    ensure!(
        DATA_WORD.load(Ordering::Relaxed) == DATA_NEW && page.get(100) == 0x22,
        "parent lost its own writes"
    );
    Ok(())
}

/// The child changes a `.data` word and an anonymous page; after reaping
/// it, the parent must still see its own values.
fn cow_child_write(_: &Ctx) -> Outcome {
    DATA_WORD.store(DATA_OLD, Ordering::Relaxed);
    let page = Mapping::new(PAGE)?;
    page.set(200, 0x33);
    let child = Child::spawn(|| {
        DATA_WORD.store(DATA_NEW, Ordering::Relaxed);
        page.set(200, 0x44);
        let seen = DATA_WORD.load(Ordering::Relaxed) == DATA_NEW && page.get(200) == 0x44;
        if seen {
            0
        } else {
            1
        }
    })?;
    let status = child.wait()?;
    ensure!(
        status != WaitStatus(1 << 8),
        "child did not see its own writes"
    );
    expect_exit("child", status, 0)?;
    let word = DATA_WORD.load(Ordering::Relaxed);
    ensure!(
        word == DATA_OLD,
        ".data word: expected {DATA_OLD:#x} after the child wrote, got {word:#x}"
    );
    let byte = page.get(200);
    ensure!(
        byte == 0x33,
        "anonymous page: expected 0x33 after the child wrote, got {byte:#x}"
    );
    Ok(())
}

const COW_PAGES: usize = 64;

fn cow_pattern(seed: u8, page: usize, offset: usize) -> u8 {
    (seed as usize + page * 131 + offset * 7 + offset / 251) as u8
}

/// The status the `cow-many-pages` child exits with when all is well:
/// 1..=250, from the sum of every byte of pattern `seed`.
fn cow_checksum_status(seed: u8) -> i32 {
    let mut sum = 0u64;
    for page in 0..COW_PAGES {
        for offset in 0..PAGE {
            sum += u64::from(cow_pattern(seed, page, offset));
        }
    }
    1 + (sum % 250) as i32
}

/// The child of `cow-many-pages`: checks the parent's pattern on every page,
/// rewrites every page, and exits with the checksum of what it reads back
/// (255: the parent's pattern was wrong; 254: its own writes did not stick).
fn cow_many_child(map: &Mapping) -> i32 {
    for page in 0..COW_PAGES {
        for offset in 0..PAGE {
            if map.get(page * PAGE + offset) != cow_pattern(1, page, offset) {
                return 255;
            }
        }
    }
    for page in 0..COW_PAGES {
        for offset in 0..PAGE {
            map.set(page * PAGE + offset, cow_pattern(2, page, offset));
        }
    }
    let mut sum = 0u64;
    for page in 0..COW_PAGES {
        for offset in 0..PAGE {
            let byte = map.get(page * PAGE + offset);
            if byte != cow_pattern(2, page, offset) {
                return 254;
            }
            sum += u64::from(byte);
        }
    }
    1 + (sum % 250) as i32
}

/// A 64-page buffer: the child rewrites every page; the parent's pages keep
/// their contents, and then the parent can rewrite all of them.
fn cow_many_pages(_: &Ctx) -> Outcome {
    let map = Mapping::new(COW_PAGES * PAGE)?;
    for page in 0..COW_PAGES {
        for offset in 0..PAGE {
            map.set(page * PAGE + offset, cow_pattern(1, page, offset));
        }
    }
    let child = Child::spawn(|| cow_many_child(&map))?;
    let status = child.wait()?;
    ensure!(
        status != WaitStatus(255 << 8),
        "child did not see the parent's contents"
    );
    ensure!(
        status != WaitStatus(254 << 8),
        "child's writes did not stick"
    );
    expect_exit("child's checksum", status, cow_checksum_status(2))?;
    for page in 0..COW_PAGES {
        for offset in 0..PAGE {
            let byte = map.get(page * PAGE + offset);
            let want = cow_pattern(1, page, offset);
            ensure!(
                byte == want,
                "parent's page {page} offset {offset}: expected {want:#x}, got {byte:#x} after the child wrote"
            );
        }
    }
    for page in 0..COW_PAGES {
        for offset in 0..PAGE {
            map.set(page * PAGE + offset, cow_pattern(3, page, offset));
        }
    }
    for page in 0..COW_PAGES {
        for offset in 0..PAGE {
            let byte = map.get(page * PAGE + offset);
            let want = cow_pattern(3, page, offset);
            ensure!(
                byte == want,
                "parent's rewrite of page {page} offset {offset}: expected {want:#x}, got {byte:#x}"
            );
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// clone: shared memory, threads

const CLONE_VM_MAGIC: u64 = 0xc10e_5eed_0000_0001;

/// The `clone-vm-shares` child: stores the magic in the parent's word.
extern "C" fn clone_vm_child(arg: usize) -> ! {
    // SAFETY: the parent passes its word and reaps us before it goes away.
    let word: &AtomicU64 = unsafe { shared(arg) };
    word.store(CLONE_VM_MAGIC, Ordering::Release);
    exit(0)
}

/// A `clone(CLONE_VM | SIGCHLD)` child writes a word of the parent's stack;
/// the parent sees it after `wait4`.
fn clone_vm_shares(_: &Ctx) -> Outcome {
    let stack = ThreadStack::new()?;
    let word = AtomicU64::new(0);
    // SAFETY: `word` and `stack` outlive the child: it is reaped (by `wait`,
    // or by the guard's drop, which comes first) before they are dropped.
    let pid = unsafe {
        stack.clone(
            CLONE_VM | SIGCHLD,
            clone_vm_child,
            &word as *const AtomicU64 as usize,
        )
    }
    .ctx("clone(CLONE_VM|SIGCHLD)")?;
    let status = Child { pid }.wait()?;
    expect_exit("child", status, 0)?;
    let got = word.load(Ordering::Acquire);
    ensure!(
        got == CLONE_VM_MAGIC,
        "expected the child's {CLONE_VM_MAGIC:#x} in the shared word, got {got:#x}"
    );
    Ok(())
}

/// What a thread reports to its creator.
#[derive(Default)]
struct ThreadReport {
    word: AtomicU64,
    page: AtomicUsize,
    pid: AtomicU32,
    tid: AtomicU32,
    ppid: AtomicU32,
    result: AtomicI32,
}

const THREAD_MAGIC: u64 = 0x7407_ead5_0000_0002;
const THREAD_PAGE_BYTE: u8 = 0x5a;

/// The `thread-shares-mm` thread: writes a word, maps a page, fills it and
/// publishes its address.
extern "C" fn thread_maps_page(arg: usize) -> ! {
    // SAFETY: the creator joins us before its report goes away.
    let report: &ThreadReport = unsafe { shared(arg) };
    report.word.store(THREAD_MAGIC, Ordering::Relaxed);
    if let Ok(p) = mmap_anonymous(PAGE, PROT_READ | PROT_WRITE) {
        for i in 0..PAGE {
            // SAFETY: i < PAGE inside the fresh mapping, handed to the creator.
            unsafe { p.add(i).write_volatile(THREAD_PAGE_BYTE) };
        }
        report.page.store(p as usize, Ordering::Release);
    }
    exit(0)
}

/// A thread (`lat_proc thread`'s flags) writes memory and maps a page; after
/// the join, the creator reads the page at the address the thread published.
fn thread_shares_mm(_: &Ctx) -> Outcome {
    let stack = ThreadStack::new()?;
    let report = ThreadReport::default();
    // SAFETY: `report` and `stack` outlive the thread, which is joined below
    // (a thread that cannot be joined keeps its stack, see `join`).
    unsafe {
        stack.clone(
            THREAD_FLAGS,
            thread_maps_page,
            &report as *const ThreadReport as usize,
        )
    }
    .ctx("clone(thread)")?;
    stack.join()?;
    let word = report.word.load(Ordering::Relaxed);
    ensure!(
        word == THREAD_MAGIC,
        "expected the thread's {THREAD_MAGIC:#x} in the shared word, got {word:#x}"
    );
    let addr = report.page.load(Ordering::Acquire);
    ensure!(addr != 0, "the thread's mmap failed");
    let page = Mapping {
        ptr: addr as *mut u8,
        len: PAGE,
    };
    for i in 0..PAGE {
        let byte = page.get(i);
        ensure!(
            byte == THREAD_PAGE_BYTE,
            "thread's page at {addr:#x}+{i}: expected {THREAD_PAGE_BYTE:#x}, got {byte:#x}"
        );
    }
    page.unmap()?;
    Ok(())
}

/// The `thread-getpid` thread: reports its pid, tid and ppid.
extern "C" fn thread_reports_ids(arg: usize) -> ! {
    // SAFETY: the creator joins us before its report goes away.
    let report: &ThreadReport = unsafe { shared(arg) };
    report.pid.store(getpid(), Ordering::Relaxed);
    report.tid.store(gettid(), Ordering::Relaxed);
    report.ppid.store(getppid(), Ordering::Relaxed);
    exit(0)
}

/// The action of `signal` (its handler word) via `rt_sigaction`; with
/// `set`, installs SIG_IGN first.
fn sigaction_handler(signal: usize, set_ignore: bool) -> Result<u64, Msg> {
    const SIG_IGN: u64 = 1;
    let new = [if set_ignore { SIG_IGN } else { 0 }, 0, 0, 0];
    let mut old = [0u64; 4];
    let new_ptr = if set_ignore { new.as_ptr() as usize } else { 0 };
    // SAFETY: both structs are live 32-byte kernel `struct sigaction`s.
    let ret = unsafe {
        forkvm_user::syscall::syscall4(13, signal, new_ptr, old.as_mut_ptr() as usize, 8)
    };
    forkvm_user::syscall::check(ret).map_err(|e| msg!("rt_sigaction({signal}): {e}"))?;
    Ok(old[0])
}

/// The signal whose action the sighand scenario changes.
const SIGUSR2: usize = 12;

extern "C" fn thread_ignores_sigusr2(_: usize) -> ! {
    let _ = sigaction_handler(SIGUSR2, true);
    exit(0)
}

/// Signal actions are shared with CLONE_SIGHAND (a thread's change is the
/// process's) and copied without it (a forked child's change is its own).
fn sighand_shared(_: &Ctx) -> Outcome {
    const SIG_DFL: u64 = 0;
    const SIG_IGN: u64 = 1;
    ensure!(
        sigaction_handler(SIGUSR2, false)? == SIG_DFL,
        "SIGUSR2 is not at its default action to start with"
    );
    let child = Child::spawn(|| match sigaction_handler(SIGUSR2, true) {
        Ok(_) => 0,
        Err(_) => 1,
    })?;
    expect_exit(
        "a forked child ignoring SIGUSR2",
        child.wait_bounded("sigaction child")?,
        0,
    )?;
    ensure!(
        sigaction_handler(SIGUSR2, false)? == SIG_DFL,
        "a forked child's signal action leaked into the parent"
    );
    let stack = ThreadStack::new()?;
    // SAFETY: as in thread_shares_mm.
    unsafe { stack.clone(THREAD_FLAGS, thread_ignores_sigusr2, 0) }.ctx("clone(thread)")?;
    stack.join()?;
    let after = sigaction_handler(SIGUSR2, false)?;
    // Put the default back before judging, so a failure leaves no trace.
    let restore = [SIG_DFL, 0, 0, 0];
    // SAFETY: a live 32-byte kernel `struct sigaction`.
    unsafe { forkvm_user::syscall::syscall4(13, SIGUSR2, restore.as_ptr() as usize, 0, 8) };
    ensure!(
        after == SIG_IGN,
        "a CLONE_SIGHAND thread's signal action was not shared"
    );
    Ok(())
}

/// A thread's `getpid()` is its creator's, its `gettid()` differs and is
/// what `clone` returned (and wrote to the `CLONE_PARENT_SETTID` word); its
/// `getppid()` is the process's parent.
fn thread_getpid(_: &Ctx) -> Outcome {
    let stack = ThreadStack::new()?;
    let report = ThreadReport::default();
    // SAFETY: as in thread_shares_mm.
    let tid = unsafe {
        stack.clone(
            THREAD_FLAGS,
            thread_reports_ids,
            &report as *const ThreadReport as usize,
        )
    }
    .ctx("clone(thread)")?;
    let ptid = stack.ptid().load(Ordering::Relaxed);
    stack.join()?;
    let (pid, my_tid, ppid) = (getpid(), gettid(), getppid());
    let t_pid = report.pid.load(Ordering::Relaxed);
    let t_tid = report.tid.load(Ordering::Relaxed);
    let t_ppid = report.ppid.load(Ordering::Relaxed);
    ensure!(
        t_pid == pid,
        "thread's getpid() {t_pid}, expected the process's {pid}"
    );
    ensure!(
        t_tid != my_tid,
        "thread's gettid() {t_tid} equals the creator's"
    );
    ensure!(
        t_tid == tid,
        "thread's gettid() {t_tid}, but clone returned {tid}"
    );
    ensure!(
        ptid == tid,
        "CLONE_PARENT_SETTID word {ptid}, but clone returned {tid}"
    );
    ensure!(
        t_ppid == ppid,
        "thread's getppid() {t_ppid}, expected the process's parent {ppid}"
    );
    Ok(())
}

const ARCH_SET_FS: usize = 0x1002;
const ARCH_GET_FS: usize = 0x1003;

/// `arch_prctl(ARCH_GET_FS)`: the caller's FS base.
fn fs_base() -> Result<u64, Errno> {
    let mut base = 0u64;
    // SAFETY: the kernel writes one u64 to `base`.
    let ret = unsafe { syscall2(nr::ARCH_PRCTL, ARCH_GET_FS, &mut base as *mut u64 as usize) };
    forkvm_user::syscall::check(ret).map(|_| base)
}

/// `arch_prctl(ARCH_SET_FS, base)`.
fn set_fs_base(base: u64) -> Result<(), Errno> {
    // SAFETY: only fs-relative accesses, which this program makes only
    // through `fs_word`, depend on it.
    let ret = unsafe { syscall2(nr::ARCH_PRCTL, ARCH_SET_FS, base as usize) };
    forkvm_user::syscall::check(ret).map(|_| ())
}

/// The word at FS:0. Every TLS block here starts with its own address
/// (like glibc's TCB self pointer), so it names the block FS points at.
fn fs_word() -> u64 {
    let word: u64;
    // SAFETY: callers have pointed FS at a live block of at least 8 bytes.
    unsafe { asm!("mov {}, qword ptr fs:[0]", out(reg) word, options(nostack, readonly)) };
    word
}

/// Yields this many times per thread in `thread-tls`.
const TLS_ROUNDS: u32 = 200;

/// What a `thread-tls` thread checks and reports.
#[derive(Default)]
struct TlsReport {
    /// Its TLS block (the `CLONE_SETTLS` value).
    block: AtomicU64,
    /// A second block it moves its FS base to halfway (0: none).
    moved_to: AtomicU64,
    /// Moves with the `wrfsbase` instruction rather than `arch_prctl`.
    with_wrfsbase: AtomicU32,
    /// Set at the first wrong FS base or FS:0 word, with both values.
    failed: AtomicU32,
    seen_base: AtomicU64,
    seen_word: AtomicU64,
    done: AtomicU32,
}

/// A `thread-tls` thread: checks its FS base and the word at FS:0
/// between yields (the other threads run in between), optionally moving
/// its base with `arch_prctl` halfway.
extern "C" fn thread_checks_tls(arg: usize) -> ! {
    // SAFETY: the creator joins us before its report goes away.
    let report: &TlsReport = unsafe { shared(arg) };
    let mut expected = report.block.load(Ordering::Relaxed);
    for round in 0..TLS_ROUNDS {
        let moved_to = report.moved_to.load(Ordering::Relaxed);
        if round == TLS_ROUNDS / 2 && moved_to != 0 {
            if report.with_wrfsbase.load(Ordering::Relaxed) != 0 {
                // SAFETY: the kernel offers the instruction (AT_HWCAP2);
                // FS:0 at `moved_to` is the block's own address.
                unsafe { asm!("wrfsbase {}", in(reg) moved_to, options(nostack)) };
            } else if set_fs_base(moved_to).is_err() {
                report.failed.store(1, Ordering::Relaxed);
                break;
            }
            expected = moved_to;
        }
        let (base, word) = (fs_base().unwrap_or(0), fs_word());
        if base != expected || word != expected {
            report.seen_base.store(base, Ordering::Relaxed);
            report.seen_word.store(word, Ordering::Relaxed);
            report.failed.store(1, Ordering::Relaxed);
            break;
        }
        forkvm_user::syscall::sched_yield();
    }
    report.done.store(1, Ordering::Release);
    exit(0)
}

/// AT_HWCAP2's HWCAP2_FSGSBASE: user code may use `wrfsbase` (Linux 5.9+
/// on a CPU with FSGSBASE; the guest kernel likewise).
fn user_fsgsbase() -> bool {
    const AT_HWCAP2: u64 = 26;
    const HWCAP2_FSGSBASE: u64 = 1 << 1;
    forkvm_user::start::getauxval(AT_HWCAP2).is_some_and(|caps| caps & HWCAP2_FSGSBASE != 0)
}

/// Each thread keeps its own FS base (`CLONE_SETTLS`, `arch_prctl`, or
/// `wrfsbase` where the kernel offers it) across context switches between
/// threads of one address space, the creator's is untouched by theirs,
/// and a forked child inherits the creator's.
fn thread_tls(_: &Ctx) -> Outcome {
    let old = fs_base().ctx("arch_prctl(ARCH_GET_FS)")?;
    // The creator's own block: a word holding its own address.
    let own = AtomicU64::new(0);
    let own_addr = &own as *const AtomicU64 as u64;
    own.store(own_addr, Ordering::Relaxed);
    set_fs_base(own_addr).ctx("arch_prctl(ARCH_SET_FS)")?;
    let result = thread_tls_with_own_block(own_addr);
    // Put the program's FS base back before judging (nothing else here
    // uses FS).
    set_fs_base(old).ctx("arch_prctl(ARCH_SET_FS) back")?;
    result
}

fn thread_tls_with_own_block(own: u64) -> Outcome {
    // A keeps its block; B moves to a second one with arch_prctl, C with
    // wrfsbase (if offered, else with arch_prctl too).
    let stacks = [
        ThreadStack::new()?,
        ThreadStack::new()?,
        ThreadStack::new()?,
    ];
    let reports = [
        TlsReport::default(),
        TlsReport::default(),
        TlsReport::default(),
    ];
    for (stack, report) in stacks.iter().zip(&reports) {
        report.block.store(stack.map.ptr as u64, Ordering::Relaxed);
    }
    for (stack, report) in stacks.iter().zip(&reports).skip(1) {
        // The second block inside the thread's area, its own address first.
        let second = stack.map.ptr as u64 + 128;
        // SAFETY: 8 aligned bytes inside the mapping, clear of the TLS word
        // and the tid words (at 64 and 68), written before the thread exists.
        unsafe { (second as *mut u64).write(second) };
        report.moved_to.store(second, Ordering::Relaxed);
    }
    reports[2]
        .with_wrfsbase
        .store(u32::from(user_fsgsbase()), Ordering::Relaxed);
    for (stack, report) in stacks.iter().zip(&reports) {
        // SAFETY: `report` and `stack` outlive the thread, which is joined
        // below (a thread that cannot be joined keeps its stack).
        unsafe {
            stack.clone(
                THREAD_FLAGS,
                thread_checks_tls,
                report as *const TlsReport as usize,
            )
        }
        .ctx("clone(thread)")?;
    }
    // Meanwhile the creator checks its own, yielding to them.
    let deadline = monotonic_ns() + TIMEOUT_NS;
    let mut creator_bad = None;
    while reports.iter().any(|r| r.done.load(Ordering::Acquire) == 0) && monotonic_ns() < deadline {
        let (base, word) = (fs_base().unwrap_or(0), fs_word());
        if creator_bad.is_none() && (base != own || word != own) {
            creator_bad = Some((base, word));
        }
        forkvm_user::syscall::sched_yield();
    }
    // Join them all before judging (an early return would unmap the stack
    // of a thread still running).
    let mut joined = Ok(());
    for stack in stacks {
        let result = stack.join();
        joined = joined.and(result);
    }
    joined?;
    if let Some((base, word)) = creator_bad {
        return Err(msg!(
            "creator's FS base {base:#x} / FS:0 {word:#x} while its threads ran, expected {own:#x}"
        ));
    }
    let names = ["A", "B (arch_prctl)", "C (wrfsbase)"];
    for (name, report) in names.into_iter().zip(&reports) {
        ensure!(
            report.failed.load(Ordering::Relaxed) == 0,
            "thread {name} saw FS base {:#x} / FS:0 {:#x}, expected {:#x} (then {:#x})",
            report.seen_base.load(Ordering::Relaxed),
            report.seen_word.load(Ordering::Relaxed),
            report.block.load(Ordering::Relaxed),
            report.moved_to.load(Ordering::Relaxed)
        );
    }
    // fork: the child starts with the creator's FS base.
    let child = Child::spawn(move || i32::from(fs_base() != Ok(own) || fs_word() != own))?;
    expect_exit(
        "a forked child checking its inherited FS base",
        child.wait_bounded("fork child")?,
        0,
    )
}

/// The `child-cleartid-wakes` thread: sleeps 20 ms (so the creator is
/// asleep in `FUTEX_WAIT` by then), then exits.
extern "C" fn thread_sleeps(_arg: usize) -> ! {
    sleep_ns(20 * MS);
    exit(0)
}

/// When a `CLONE_CHILD_CLEARTID` thread exits, the kernel stores 0 in the
/// word and wakes a `FUTEX_WAIT`er on it.
fn child_cleartid_wakes(_: &Ctx) -> Outcome {
    let stack = ThreadStack::new()?;
    // SAFETY: the thread uses only its stack, which is kept until joined.
    unsafe { stack.clone(THREAD_FLAGS, thread_sleeps, 0) }.ctx("clone(thread)")?;
    let timeout = Timespec::from_nanos(TIMEOUT_NS);
    let start = monotonic_ns();
    let woken = futex(stack.ctid(), FUTEX_WAIT, u32::MAX, Some(&timeout));
    let waited_ms = (monotonic_ns() - start) / MS;
    let word = stack.ctid().load(Ordering::Acquire);
    // A wait for the old value of a cleared word returns at once.
    let again = futex(stack.ctid(), FUTEX_WAIT, u32::MAX, Some(&timeout));
    // Joined (or left running with its stack) before any verdict.
    let joined = stack.join();
    match woken {
        // EAGAIN: the word was already cleared when we got to wait.
        Ok(_) | Err(Errno::EAGAIN) => {}
        Err(Errno::ETIMEDOUT) => {
            return Err(msg!(
                "FUTEX_WAIT on the CHILD_CLEARTID word timed out after {waited_ms} ms (word {word:#x}): no wake at thread exit"
            ))
        }
        Err(e) => return Err(msg!("FUTEX_WAIT on the CHILD_CLEARTID word: {e}")),
    }
    ensure!(
        word == 0,
        "CHILD_CLEARTID word {word:#x} when FUTEX_WAIT returned (after {waited_ms} ms), expected 0"
    );
    ensure!(
        again == Err(Errno::EAGAIN),
        "FUTEX_WAIT on the cleared word, expecting {:#x}: expected EAGAIN, got {again:?}",
        u32::MAX
    );
    joined
}

// ---------------------------------------------------------------------------
// vfork, execve

/// How far the `vfork-order` child counted.
static VFORK_PROGRESS: AtomicU32 = AtomicU32::new(0);
/// Set by the parent as soon as `vfork` returns to it.
static VFORK_PARENT_RAN: AtomicU32 = AtomicU32::new(0);
/// What the child saw of `VFORK_PARENT_RAN` just before its `_exit`.
static VFORK_CHILD_SAW_PARENT: AtomicU32 = AtomicU32::new(u32::MAX);
const VFORK_COUNT: u32 = 200_000;

/// `vfork`, then the child counts to [`VFORK_COUNT`] in shared memory and
/// `_exit`s. Not inlined: the child never returns from this frame, the
/// parent does once the child has exited.
#[inline(never)]
fn vfork_counting_child() -> Result<Pid, Errno> {
    // SAFETY: the child only stores to statics and makes the inlined exit
    // system call; it never returns from this function.
    match unsafe { vfork() } {
        Ok(0) => {
            for i in 1..=VFORK_COUNT {
                VFORK_PROGRESS.store(core::hint::black_box(i), Ordering::Relaxed);
            }
            VFORK_CHILD_SAW_PARENT
                .store(VFORK_PARENT_RAN.load(Ordering::Relaxed), Ordering::Relaxed);
            exit(0)
        }
        other => other,
    }
}

/// The `vfork` child runs first, in the parent's memory, while the parent
/// is suspended: once the parent resumes, the child has finished writing.
fn vfork_order(_: &Ctx) -> Outcome {
    VFORK_PROGRESS.store(0, Ordering::Relaxed);
    VFORK_PARENT_RAN.store(0, Ordering::Relaxed);
    VFORK_CHILD_SAW_PARENT.store(u32::MAX, Ordering::Relaxed);
    let pid = vfork_counting_child().ctx("vfork")?;
    VFORK_PARENT_RAN.store(1, Ordering::Relaxed);
    let progress = VFORK_PROGRESS.load(Ordering::Relaxed);
    let saw = VFORK_CHILD_SAW_PARENT.load(Ordering::Relaxed);
    let status = Child { pid }.wait()?;
    ensure!(
        progress == VFORK_COUNT,
        "parent resumed with the child's counter at {progress}, expected {VFORK_COUNT} (parent not suspended until the child's exit, or memory not shared)"
    );
    ensure!(
        saw == 0,
        "child saw the parent running before it exited (flag {saw})"
    );
    expect_exit("vfork child", status, 0)
}

/// The errno of a failed `execve` in the `vfork-exec` child (0: none).
static EXEC_ERRNO: AtomicI32 = AtomicI32::new(0);

/// `vfork`, then the child `execve`s `path` (or `_exit`s 127). Not inlined,
/// as [`vfork_counting_child`].
#[inline(never)]
fn vfork_exec_child(path: &CStr, argv: &[*const u8], envp: &[*const u8]) -> Result<Pid, Errno> {
    // SAFETY: the child only calls execve (its frame goes below ours, which
    // the suspended parent does not use), stores to a static and makes the
    // inlined exit system call; it never returns from this function.
    match unsafe { vfork() } {
        Ok(0) => {
            let e = execve(path, argv, envp);
            EXEC_ERRNO.store(e.0, Ordering::Relaxed);
            exit(127)
        }
        other => other,
    }
}

/// `vfork` + `execve` of this very program (`argv[0]`) with the helper
/// `exit-42`: the parent sees exit status 42.
fn vfork_exec(ctx: &Ctx) -> Outcome {
    let Some(argv0) = ctx.argv0 else {
        return Err(msg!("no argv[0] to execute"));
    };
    // SAFETY: argv[0] is a slice of the NUL-terminated string the kernel put
    // on the initial stack (see forkvm_user::start); its NUL follows it.
    let path = unsafe { CStr::from_ptr(argv0.as_ptr().cast()) };
    let argv = [
        argv0.as_ptr(),
        c"exit-42".as_ptr().cast(),
        core::ptr::null(),
    ];
    let envp = [core::ptr::null()];
    EXEC_ERRNO.store(0, Ordering::Relaxed);
    let pid = vfork_exec_child(path, &argv, &envp).ctx("vfork")?;
    let status = Child { pid }.wait()?;
    let errno = EXEC_ERRNO.load(Ordering::Relaxed);
    ensure!(
        errno == 0,
        "child's execve({}) failed: {}",
        Bytes(argv0),
        Errno(errno)
    );
    expect_exit("exec'd `proctest exit-42`", status, 42)
}

// ---------------------------------------------------------------------------
// exit and wait4

/// Children exiting 0, 1 and 255, each reaped by pid in creation order.
fn wait_status_exit(_: &Ctx) -> Outcome {
    let codes = [0, 1, 255];
    let c0 = Child::spawn(|| codes[0])?;
    let c1 = Child::spawn(|| codes[1])?;
    let c2 = Child::spawn(|| codes[2])?;
    for (child, code) in [c0, c1, c2].into_iter().zip(codes) {
        let pid = child.pid();
        let status = child.wait()?;
        expect_exit(msg!("child {pid}").as_str(), status, code)?;
    }
    Ok(())
}

/// A child busy in user mode (no system calls) is killed by `SIGKILL`.
fn wait_status_sigkill(_: &Ctx) -> Outcome {
    let (r, w) = pipe()?;
    let child = Child::spawn(|| {
        let _ = write(w.raw(), b"s");
        loop {
            core::hint::spin_loop();
        }
    })?;
    drop(w);
    let mut started = [0u8; 1];
    ensure!(
        read_full(r.raw(), &mut started)? == 1,
        "child died before spinning"
    );
    kill(child.pid() as i32, SIGKILL).ctx("kill(child, SIGKILL)")?;
    let status = child.wait_bounded("SIGKILL of a spinning child")?;
    expect_signal("spinning child after SIGKILL", status, SIGKILL)
}

/// A child writing to address 0 dies of `SIGSEGV`; the parent goes on.
fn wait_status_sigsegv(_: &Ctx) -> Outcome {
    let canary = core::hint::black_box(0x5e9f_u32);
    let child = Child::spawn(|| {
        // SAFETY: nothing lives at address 0; the write faults.
        unsafe { poke(0, 1) };
        0
    })?;
    let status = child.wait_bounded("write to address 0")?;
    expect_signal("child writing address 0", status, SIGSEGV)?;
    ensure!(
        core::hint::black_box(canary) == 0x5e9f && getpid() > 0,
        "parent damaged"
    );
    Ok(())
}

/// `wait4(-1, WNOHANG)` with a running child returns 0; once it exits,
/// `wait4(-1)` returns its pid; then `wait4(-1)` fails with `ECHILD`.
fn wait_any_and_wnohang(_: &Ctx) -> Outcome {
    let (r, w) = pipe()?;
    let child = Child::spawn(|| {
        let mut go = [0u8; 1];
        match read(r.raw(), &mut go) {
            Ok(1) => 0,
            _ => 1,
        }
    })?;
    drop(r);
    let pid = child.pid();
    match wait4(-1, WNOHANG) {
        Ok((0, _)) => {}
        Ok((got, status)) => {
            if got == pid {
                child.reaped();
            }
            return Err(msg!(
                "wait4(-1, WNOHANG) with a running child: expected 0, got pid {got} ({})",
                Status(status)
            ));
        }
        Err(e) => return Err(msg!("wait4(-1, WNOHANG) with a running child: {e}")),
    }
    write_all(w.raw(), b"g").ctx("write(pipe)")?;
    match wait4(-1, 0) {
        Ok((got, status)) if got == pid => {
            child.reaped();
            expect_exit("child", status, 0)?;
        }
        Ok((got, _)) => return Err(msg!("wait4(-1): expected pid {pid}, got {got}")),
        Err(e) => return Err(msg!("wait4(-1) with an exiting child: {e}")),
    }
    let last = wait4(-1, 0);
    ensure!(
        last.is_err_and(|e| e == Errno::ECHILD),
        "wait4(-1) with no children: expected ECHILD, got {:?}",
        last.map(|(p, s)| (p, s.0))
    );
    Ok(())
}

/// `wait4` for a pid that is not a child: `ECHILD`.
fn wait_echild(_: &Ctx) -> Outcome {
    let reaped = Child::spawn(|| 0)?;
    let old = reaped.pid();
    reaped.wait()?;
    for (what, pid) in [
        ("the parent", getppid()),
        ("itself", getpid()),
        ("an already reaped child", old),
    ] {
        let got = wait4(pid as i32, WNOHANG);
        ensure!(
            got.is_err_and(|e| e == Errno::ECHILD),
            "wait4({pid}) for {what}: expected ECHILD, got {:?}",
            got.map(|(p, s)| (p, s.0))
        );
    }
    Ok(())
}

/// The middle process of `orphan-reparented`: forks the grandchild, waits
/// until it has seen us as its parent, and exits without reaping it.
fn orphan_middle(report_w: i32) -> i32 {
    let me = getpid();
    let Ok([ack_r, ack_w]) = pipe2(0) else {
        return 10;
    };
    match fork() {
        Ok(0) => exit_group(orphan_grandchild(me, ack_w, report_w)),
        Ok(_) => {}
        Err(_) => return 11,
    }
    let _ = close(ack_w);
    let mut ack = [0u8; 1];
    match read(ack_r, &mut ack) {
        Ok(1) => 0,
        _ => 12,
    }
}

/// The grandchild: reports `[ppid at start, middle's pid, ppid after the
/// middle exited, own pid]` through the pipe.
fn orphan_grandchild(middle: Pid, ack_w: i32, report_w: i32) -> i32 {
    let first = getppid();
    let _ = write(ack_w, b"a");
    let _ = close(ack_w);
    let deadline = monotonic_ns() + TIMEOUT_NS;
    let mut now = getppid();
    while now == middle && monotonic_ns() < deadline {
        sleep_ns(MS / 2);
        now = getppid();
    }
    let mut report = [0u8; 16];
    for (i, v) in [first, middle, now, getpid()].into_iter().enumerate() {
        report[i * 4..i * 4 + 4].copy_from_slice(&v.to_ne_bytes());
    }
    match write_all(report_w, &report) {
        Ok(()) => 0,
        Err(_) => 1,
    }
}

/// A child forks a grandchild and exits: the grandchild's `getppid()`
/// changes from the child's pid to the reaper's (on Linux: init of the pid
/// namespace or a subreaper; this process itself if it is pid 1, in which
/// case it reaps the grandchild).
fn orphan_reparented(_: &Ctx) -> Outcome {
    let (r, w) = pipe()?;
    let middle = Child::spawn(|| orphan_middle(w.raw()))?;
    let middle_pid = middle.pid();
    drop(w);
    let status = middle.wait()?;
    expect_exit("child", status, 0)?;
    // Ends at the grandchild's exit (its write end closes) at the latest.
    let mut report = [0u8; 16];
    let n = read_full(r.raw(), &mut report)?;
    ensure!(n == 16, "grandchild's report: {n} of 16 bytes");
    // End of file once the grandchild has exited (closing its write end).
    let mut more = [0u8; 1];
    let eof = read_full(r.raw(), &mut more)?;
    ensure!(eof == 0, "grandchild wrote more than its report");
    let word =
        |i: usize| u32::from_ne_bytes([report[i], report[i + 1], report[i + 2], report[i + 3]]);
    let (first, middle, now, grandchild) = (word(0), word(4), word(8), word(12));
    if now == getpid() {
        // We are the reaper.
        let _ = Child { pid: grandchild }.wait_bounded("orphaned grandchild");
    }
    ensure!(
        middle == middle_pid && first == middle_pid,
        "grandchild's first getppid() {first}, expected its parent {middle_pid}"
    );
    ensure!(
        now != middle_pid,
        "grandchild's getppid() still {now} (its exited parent) after {} ms",
        TIMEOUT_NS / MS
    );
    ensure!(now != 0, "orphan's getppid() is 0");
    Ok(())
}

const ZOMBIES: usize = 50;

/// 50 children that exit at once are all reaped by `wait4(-1)` (each once,
/// with its own status); then `wait4(-1, WNOHANG)` fails with `ECHILD`.
fn zombie_reaped(_: &Ctx) -> Outcome {
    let mut pids = [0 as Pid; ZOMBIES];
    let mut forked = 0;
    let mut outcome = Ok(());
    for (i, slot) in pids.iter_mut().enumerate() {
        match Child::spawn(|| i as i32) {
            Ok(child) => {
                *slot = child.reaped();
                forked += 1;
            }
            Err(e) => {
                outcome = Err(e);
                break;
            }
        }
    }
    let mut reaped = [false; ZOMBIES];
    for _ in 0..forked {
        match wait4(-1, 0) {
            Ok((pid, status)) => match pids[..forked].iter().position(|&p| p == pid) {
                Some(i) if !reaped[i] => {
                    reaped[i] = true;
                    if outcome.is_ok() {
                        outcome = expect_exit(msg!("child #{i}").as_str(), status, i as i32);
                    }
                }
                _ => {
                    if outcome.is_ok() {
                        outcome = Err(msg!("wait4(-1) returned unexpected pid {pid}"));
                    }
                }
            },
            Err(e) => {
                if outcome.is_ok() {
                    outcome = Err(msg!("wait4(-1) with zombies left: {e}"));
                }
                break;
            }
        }
    }
    // Whatever went wrong, leave no child behind.
    for (i, &pid) in pids[..forked].iter().enumerate() {
        if !reaped[i] {
            drop(Child { pid });
        }
    }
    outcome?;
    let last = wait4(-1, WNOHANG);
    ensure!(
        last.is_err_and(|e| e == Errno::ECHILD),
        "wait4(-1, WNOHANG) after reaping all: expected ECHILD, got {:?}",
        last.map(|(p, s)| (p, s.0))
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// Bad user pointers

/// `write` from an unmapped or kernel address fails with `EFAULT` (into a
/// pipe: fd 1 may be `/dev/null`, which does not even read the buffer) and
/// writes nothing.
fn efault_write(_: &Ctx) -> Outcome {
    let (r, w) = pipe()?;
    for addr in [1usize, 0x4000_0000_0000, 0xffff_8000_0000_0000] {
        // SAFETY: the kernel only reads from `addr` (and must refuse to).
        let ret = unsafe { syscall3(nr::WRITE, w.raw() as usize, addr, 10) };
        ensure!(
            ret == -(Errno::EFAULT.0 as isize),
            "write(pipe, {addr:#x}, 10): expected -EFAULT, got {}",
            Ret(ret)
        );
    }
    write_all(w.raw(), b"x").ctx("write(pipe)")?;
    drop(w);
    let mut buf = [0u8; 32];
    let n = read_full(r.raw(), &mut buf)?;
    ensure!(
        &buf[..n] == b"x",
        "pipe holds {n} bytes after the failed writes and a 1-byte write"
    );
    Ok(())
}

/// `wait4(child, (int *)1, 0, NULL)` for an exited child fails with
/// `EFAULT`, and (as Linux does) the child has been reaped all the same: the
/// status is copied out only after the child is released, so a second
/// `wait4` fails with `ECHILD`.
fn efault_wait4(_: &Ctx) -> Outcome {
    let child = Child::spawn(|| 7)?;
    let pid = child.pid();
    // SAFETY: the kernel writes the status to address 1, which it must refuse.
    let ret = unsafe { syscall4(nr::WAIT4, pid as usize, 1, 0, 0) };
    if ret == pid as isize {
        child.reaped();
        return Err(msg!(
            "wait4({pid}, (int *)1, 0, NULL): expected -EFAULT, got the pid"
        ));
    }
    ensure!(
        ret == -(Errno::EFAULT.0 as isize),
        "wait4({pid}, (int *)1, 0, NULL): expected -EFAULT, got {}",
        Ret(ret)
    );
    // Linux reaped it; if not, this reaps it.
    let pid = child.reaped();
    let again = wait4(pid as i32, 0);
    ensure!(
        again.is_err_and(|e| e == Errno::ECHILD),
        "wait4({pid}) after the EFAULT one: expected ECHILD (child already reaped, as on Linux), got {:?}",
        again.map(|(p, s)| (p, s.0))
    );
    Ok(())
}

/// `clone(CLONE_PARENT_SETTID | SIGCHLD)` with `parent_tid = (int *)1`:
/// Linux ignores the failed store (`put_user`'s result is not checked), so
/// the call succeeds, returning the child's pid, and the child runs normally.
fn efault_clone_settid(_: &Ctx) -> Outcome {
    // SAFETY: without CLONE_VM and with stack 0 this is a fork (the child
    // returns here with a copy of our memory and rax = 0) whose parent_tid
    // store goes to address 1, which the kernel must not write.
    let ret = unsafe {
        syscall5(
            nr::CLONE,
            (CLONE_PARENT_SETTID | SIGCHLD) as usize,
            0,
            1,
            0,
            0,
        )
    };
    if ret == 0 {
        exit_group(37);
    }
    ensure!(
        ret > 0,
        "clone(CLONE_PARENT_SETTID, parent_tid=1): expected a pid (Linux ignores the failed store), got {}",
        Ret(ret)
    );
    let status = Child { pid: ret as Pid }.wait()?;
    expect_exit("clone child", status, 37)
}

// ---------------------------------------------------------------------------
// Descriptors

/// A child writes 100 bytes into a pipe and exits; the parent, having closed
/// its write end, reads all of them and then end of file.
fn pipe_basic(_: &Ctx) -> Outcome {
    let (r, w) = pipe()?;
    let data: [u8; 100] = core::array::from_fn(|i| (i * 3 + 1) as u8);
    let child = Child::spawn(|| {
        let _ = close(r.raw());
        match write_all(w.raw(), &data) {
            Ok(()) => 0,
            Err(_) => 1,
        }
    })?;
    w.close()?;
    let mut buf = [0u8; 100];
    let n = read_full(r.raw(), &mut buf)?;
    ensure!(n == 100, "read {n} of the child's 100 bytes before EOF");
    ensure!(buf == data, "the 100 bytes read differ from those written");
    let mut more = [0u8; 1];
    let eof = read(r.raw(), &mut more);
    ensure!(
        eof == Ok(0),
        "read after all data, writers closed: expected 0 (EOF), got {eof:?}"
    );
    expect_exit("writer child", child.wait()?, 0)
}

/// `dup2` of a pipe's write end to fd 10: writes through 10 arrive; the pipe
/// stays open for writing until 10 is closed too.
fn dup2_basic(_: &Ctx) -> Outcome {
    let (r, w) = pipe()?;
    let target = if r.raw() == 10 || w.raw() == 10 {
        11
    } else {
        10
    };
    let got = dup2(w.raw(), target).ctx("dup2")?;
    ensure!(got == target, "dup2(w, {target}) returned {got}");
    let ten = Fd(got);
    write_all(ten.raw(), b"via ten").ctx("write(fd 10)")?;
    w.close()?;
    write_all(ten.raw(), b"!").ctx("write(fd 10) after closing the original")?;
    ten.close()?;
    let mut buf = [0u8; 16];
    let n = read_full(r.raw(), &mut buf)?;
    ensure!(
        &buf[..n] == b"via ten!",
        "read \"{}\" through the pipe, expected \"via ten!\" then EOF",
        Bytes(&buf[..n])
    );
    Ok(())
}

/// The `files-shared-by-thread` thread: closes the fd in `result` and stores
/// the outcome there (0 or -errno).
extern "C" fn thread_closes_fd(arg: usize) -> ! {
    // SAFETY: the creator joins us before its report goes away.
    let report: &ThreadReport = unsafe { shared(arg) };
    let fd = report.result.load(Ordering::Relaxed);
    let outcome = match close(fd) {
        Ok(()) => 0,
        Err(e) => -e.0,
    };
    report.result.store(outcome, Ordering::Relaxed);
    exit(0)
}

/// A `CLONE_FILES` thread's `close` closes the creator's fd; a forked
/// child's does not.
fn files_shared_by_thread(_: &Ctx) -> Outcome {
    ensure!(
        THREAD_FLAGS & CLONE_FILES != 0,
        "THREAD_FLAGS lack CLONE_FILES"
    );
    let (r, w) = pipe()?;
    let stack = ThreadStack::new()?;
    let report = ThreadReport::default();
    report.result.store(r.raw(), Ordering::Relaxed);
    // SAFETY: as in thread_shares_mm.
    unsafe {
        stack.clone(
            THREAD_FLAGS,
            thread_closes_fd,
            &report as *const ThreadReport as usize,
        )
    }
    .ctx("clone(thread)")?;
    stack.join()?;
    let closed = report.result.load(Ordering::Relaxed);
    ensure!(closed == 0, "thread's close(fd): {}", Errno(-closed));
    let fd = r.into_raw();
    let after = close(fd);
    ensure!(
        after == Err(Errno::EBADF),
        "close({fd}) after a CLONE_FILES thread closed it: expected EBADF, got {after:?}"
    );
    drop(w);

    let (r, w) = pipe()?;
    let child = Child::spawn(|| match close(r.raw()) {
        Ok(()) => 0,
        Err(_) => 1,
    })?;
    expect_exit("forked child's close", child.wait()?, 0)?;
    write_all(w.raw(), b"k").ctx("write(pipe)")?;
    let mut buf = [0u8; 1];
    let n = read(r.raw(), &mut buf);
    ensure!(
        n == Ok(1) && buf == *b"k",
        "read from our pipe after a forked child closed its copy: {n:?}"
    );
    r.close()?;
    w.close()
}

// ---------------------------------------------------------------------------
// exit_group

static SPINNER_STARTED: AtomicU32 = AtomicU32::new(0);

extern "C" fn thread_spins(_arg: usize) -> ! {
    SPINNER_STARTED.store(1, Ordering::Release);
    loop {
        core::hint::spin_loop();
    }
}

/// The forked child of `exit-group-kills-threads`: starts a spinning thread,
/// waits until it runs, then `exit_group(7)`s (99: the thread never ran).
fn exit_group_child() -> i32 {
    SPINNER_STARTED.store(0, Ordering::Relaxed);
    let Ok(stack) = ThreadStack::new() else {
        return 98;
    };
    // SAFETY: the thread uses only its stack and a static; the stack stays
    // mapped until exit_group ends the whole process.
    if unsafe { stack.clone(THREAD_FLAGS, thread_spins, 0) }.is_err() {
        return 97;
    }
    let deadline = monotonic_ns() + TIMEOUT_NS;
    while SPINNER_STARTED.load(Ordering::Acquire) == 0 {
        if monotonic_ns() > deadline {
            exit_group(99);
        }
        sleep_ns(100_000);
    }
    exit_group(7)
}

/// `exit_group(7)` ends a process whose other thread spins: status exit 7.
fn exit_group_kills_threads(_: &Ctx) -> Outcome {
    let child = Child::spawn(exit_group_child)?;
    let status = child.wait_bounded("exit_group with a spinning thread")?;
    ensure!(
        status != WaitStatus(99 << 8),
        "the spinning thread never ran"
    );
    expect_exit("exit_group(7) with a spinning thread", status, 7)
}

// ---------------------------------------------------------------------------
// Memory

/// Anonymous memory is zero, readable and writable; after `munmap` a child
/// touching it dies of `SIGSEGV`.
fn mmap_munmap(_: &Ctx) -> Outcome {
    let map = Mapping::new(2 * PAGE)?;
    ensure!(
        map.addr() % PAGE == 0,
        "mmap returned unaligned {:#x}",
        map.addr()
    );
    for i in (0..2 * PAGE).step_by(61) {
        ensure!(map.get(i) == 0, "fresh anonymous memory not zero at +{i}");
        map.set(i, i as u8 ^ 0x6c);
    }
    for i in (0..2 * PAGE).step_by(61) {
        ensure!(map.get(i) == i as u8 ^ 0x6c, "read back differs at +{i}");
    }
    let addr = map.unmap()?;
    let child = Child::spawn(|| {
        peek(addr + PAGE + 8);
        0
    })?;
    let status = child.wait_bounded("touching unmapped memory")?;
    expect_signal("child reading an unmapped page", status, SIGSEGV)
}

/// A free address given as mmap's hint (no MAP_FIXED) is where the mapping
/// goes, also far above where mmap places mappings by itself (1 TiB:
/// above the guest's default mmap area, inside Linux's).
fn mmap_hint_honoured(_: &Ctx) -> Outcome {
    const HINT: usize = 1 << 40;
    use forkvm_user::syscall::{MAP_ANONYMOUS, MAP_PRIVATE};
    // SAFETY: without MAP_FIXED the kernel replaces no existing mapping.
    let got = unsafe {
        forkvm_user::syscall::mmap(
            HINT,
            PAGE,
            PROT_READ | PROT_WRITE,
            MAP_PRIVATE | MAP_ANONYMOUS,
            -1,
            0,
        )
    }
    .ctx("mmap(hint)")?;
    let map = Mapping {
        ptr: got,
        len: PAGE,
    };
    ensure!(
        map.addr() == HINT,
        "mmap with the free hint {HINT:#x} returned {:#x}",
        map.addr()
    );
    map.set(8, 0x5a);
    ensure!(
        map.get(8) == 0x5a,
        "read back at the hinted mapping differs"
    );
    map.unmap()?;
    Ok(())
}

/// Code placed in a page mapped without `PROT_EXEC` does not run: a child
/// that jumps there dies of `SIGSEGV` (no-execute pages); after
/// `mprotect(PROT_READ | PROT_EXEC)` the same code runs.
fn nx_data_page(_: &Ctx) -> Outcome {
    // mov eax, 42; ret
    const CODE: [u8; 6] = [0xb8, 42, 0, 0, 0, 0xc3];
    let map = Mapping::new(PAGE)?;
    for (i, byte) in CODE.iter().enumerate() {
        map.set(i, *byte);
    }
    let addr = map.addr();
    let child = Child::spawn(|| {
        // SAFETY: deliberately calls into a non-executable page: the fetch
        // faults and the child dies before anything runs.
        let f: extern "C" fn() -> u32 = unsafe { core::mem::transmute(addr) };
        f() as i32
    })?;
    let status = child.wait_bounded("running code from a data page")?;
    expect_signal(
        "child calling into a PROT_READ|PROT_WRITE page",
        status,
        SIGSEGV,
    )?;
    // SAFETY: the page holds the complete function above.
    unsafe { mprotect(map.ptr, PAGE, PROT_READ | PROT_EXEC) }
        .ctx("mprotect(PROT_READ|PROT_EXEC)")?;
    // SAFETY: now executable; the function follows the C ABI.
    let f: extern "C" fn() -> u32 = unsafe { core::mem::transmute(addr) };
    ensure!(f() == 42, "the code did not run after PROT_EXEC");
    Ok(())
}

/// A page made `PROT_READ` can be read (by the parent and a child) but a
/// child writing it dies of `SIGSEGV`, and the contents stay.
fn mprotect_readonly(_: &Ctx) -> Outcome {
    let map = Mapping::new(PAGE)?;
    map.set(0, 0xa5);
    map.set(PAGE - 1, 0x5a);
    // SAFETY: only read from here on (the writer is a child that dies).
    unsafe { mprotect(map.ptr, PAGE, PROT_READ) }.ctx("mprotect(PROT_READ)")?;
    ensure!(
        map.get(0) == 0xa5 && map.get(PAGE - 1) == 0x5a,
        "read-only page lost its contents"
    );
    let addr = map.addr();
    let child = Child::spawn(|| {
        if peek(addr) != 0xa5 {
            return 1;
        }
        // SAFETY: our copy of a read-only page: the write faults.
        unsafe { poke(addr + 16, 1) };
        0
    })?;
    let status = child.wait_bounded("writing a read-only page")?;
    ensure!(
        status != WaitStatus(1 << 8),
        "child could not read the read-only page"
    );
    expect_signal("child writing a PROT_READ page", status, SIGSEGV)?;
    ensure!(
        map.get(0) == 0xa5 && map.get(16) == 0,
        "read-only page changed"
    );
    Ok(())
}

/// `brk` grows the heap by 64 KiB (writable), shrinks it back (the memory
/// above is gone) and grows it again (fresh pages are zero).
fn brk_grow(_: &Ctx) -> Outcome {
    const GROW: usize = 64 * 1024;
    // SAFETY: 0 only queries the break.
    let cur = unsafe { brk(0) };
    ensure!(
        cur != 0 && cur < 0x7fff_ffff_f000,
        "brk(0) returned {cur:#x}"
    );
    let end = cur + GROW;
    // SAFETY: growing maps fresh memory nobody uses.
    let got = unsafe { brk(end) };
    ensure!(got == end, "brk({end:#x}) returned {got:#x}");
    for addr in cur..end {
        // SAFETY: [cur, end) is the heap memory brk just gave us.
        unsafe { (addr as *mut u8).write_volatile(addr as u8 ^ 0x3c) };
    }
    for addr in cur..end {
        // SAFETY: as above.
        let byte = unsafe { (addr as *const u8).read_volatile() };
        ensure!(byte == addr as u8 ^ 0x3c, "heap byte at {addr:#x} differs");
    }
    // SAFETY: nothing uses the memory above `cur`.
    let got = unsafe { brk(cur) };
    ensure!(got == cur, "shrinking: brk({cur:#x}) returned {got:#x}");
    let probe = cur + GROW / 2;
    let child = Child::spawn(|| {
        peek(probe);
        0
    })?;
    let status = child.wait_bounded("touching memory above the break")?;
    expect_signal("child reading above the lowered break", status, SIGSEGV)?;
    // SAFETY: growing again maps fresh memory.
    let got = unsafe { brk(end) };
    ensure!(got == end, "growing again: brk({end:#x}) returned {got:#x}");
    let fresh = peek(probe);
    // SAFETY: nothing uses the memory above `cur`.
    let back = unsafe { brk(cur) };
    ensure!(
        fresh == 0,
        "regrown heap at {probe:#x}: expected 0, got {fresh:#x}"
    );
    ensure!(
        back == cur,
        "shrinking again: brk({cur:#x}) returned {back:#x}"
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// Process churn, scheduling, time, identity

const FORKS: usize = 200;

/// 200 sequential fork + exit + wait4 cycles, each child with its own status.
fn fork_many(_: &Ctx) -> Outcome {
    for i in 0..FORKS {
        let code = (i % 256) as i32;
        let child = Child::spawn(|| code)?;
        expect_exit(msg!("fork #{i}").as_str(), child.wait()?, code)?;
    }
    Ok(())
}

fn sched_yield(_: &Ctx) -> Outcome {
    // SAFETY: touches no memory.
    let ret = unsafe { syscall0(nr::SCHED_YIELD) };
    ensure!(ret == 0, "sched_yield returned {}", Ret(ret));
    Ok(())
}

/// A 10 ms `nanosleep` lasts at least 10 ms of `CLOCK_MONOTONIC` (and less
/// than a second).
fn nanosleep_10ms(_: &Ctx) -> Outcome {
    let start = monotonic_ns();
    nanosleep(Timespec::from_nanos(10 * MS)).map_err(|(e, _)| msg!("nanosleep: {e}"))?;
    let slept = monotonic_ns() - start;
    ensure!(
        slept >= 10 * MS,
        "nanosleep(10 ms) returned after {slept} ns"
    );
    ensure!(slept < 1_000 * MS, "nanosleep(10 ms) took {slept} ns");
    Ok(())
}

fn uname_linux(_: &Ctx) -> Outcome {
    let u = uname().ctx("uname")?;
    let (sysname, machine) = (c_field(&u.sysname), c_field(&u.machine));
    ensure!(
        sysname == b"Linux",
        "sysname \"{}\", expected \"Linux\"",
        Bytes(sysname)
    );
    ensure!(
        machine == b"x86_64",
        "machine \"{}\", expected \"x86_64\"",
        Bytes(machine)
    );
    Ok(())
}

/// The host name from `uname`.
fn hostname() -> Result<[u8; 65], Msg> {
    Ok(uname().ctx("uname")?.nodename)
}

/// `sethostname(name)`.
fn sethostname(name: &[u8]) -> isize {
    // SAFETY: a live slice of the given length.
    unsafe { forkvm_user::syscall::syscall2(170, name.as_ptr() as usize, name.len()) }
}

/// `umask(mask)`: the previous mask.
fn umask(mask: u32) -> u32 {
    // SAFETY: no memory is passed.
    unsafe { forkvm_user::syscall::syscall1(95, mask as usize) as u32 }
}

/// A child in a new UTS namespace (CLONE_NEWUTS, needs CAP_SYS_ADMIN)
/// changes its host name; the parent's stays. Without CLONE_NEWUTS a
/// child's change would be everyone's, so that is not tried.
fn uts_namespace(_: &Ctx) -> Outcome {
    const CLONE_NEWUTS: u64 = 0x0400_0000;
    let before = hostname()?;
    let child = Child::spawn_with_flags(CLONE_NEWUTS, || {
        if sethostname(b"proctest-uts") != 0 {
            return 1;
        }
        match uname() {
            Ok(u) if c_field(&u.nodename) == b"proctest-uts" => 0,
            _ => 2,
        }
    })?;
    let status = child.wait_bounded("the child in a new UTS namespace")?;
    expect_exit("sethostname in a new UTS namespace", status, 0)?;
    ensure!(
        hostname()? == before,
        "the parent's host name changed with the child's namespace"
    );
    Ok(())
}

/// A child in a new pid namespace (CLONE_NEWPID, needs CAP_SYS_ADMIN) is
/// pid 1 there with parent 0; the parent sees its outer pid. Inside, the
/// next process is pid 2, and an orphan is adopted by the namespace's
/// init (pid 1), not by the real init.
fn pid_namespace(_: &Ctx) -> Outcome {
    const CLONE_NEWPID: u64 = 0x2000_0000;
    let child = Child::spawn_with_flags(CLONE_NEWPID, || {
        if getpid() != 1 {
            return 10;
        }
        if getppid() != 0 {
            return 11;
        }
        // pid 2 forks pid 3 and exits; pid 3 must then see parent 1.
        let Ok(middle) = fork() else { return 12 };
        if middle == 0 {
            if getpid() != 2 {
                exit_group(20);
            }
            let Ok(grandchild) = fork() else {
                exit_group(21)
            };
            if grandchild == 0 {
                let deadline = monotonic_ns() + TIMEOUT_NS;
                while getppid() != 1 {
                    if monotonic_ns() > deadline {
                        exit_group(31);
                    }
                    forkvm_user::syscall::sched_yield();
                }
                exit_group(0);
            }
            exit_group(0);
        }
        // As the namespace's init, reap both (the orphan was adopted).
        let mut statuses = 0;
        for _ in 0..2 {
            match wait4(-1, 0) {
                Ok((_, status)) if status.exited() && status.exit_status() == 0 => statuses += 1,
                Ok((_, status)) => return 40 + status.exit_status().max(status.term_signal()),
                Err(_) => return 13,
            }
        }
        if statuses == 2 {
            0
        } else {
            14
        }
    })?;
    ensure!(
        child.pid() > 1,
        "the parent should see the child's outer pid, got {}",
        child.pid()
    );
    let status = child.wait_bounded("the init of a new pid namespace")?;
    expect_exit(
        "pid numbering and reaping in a new pid namespace",
        status,
        0,
    )
}

/// RLIMIT_NPROC spares a non-root task that holds CAP_SYS_RESOURCE: with
/// PR_SET_KEEPCAPS the permitted set survives setuid, capset raises
/// CAP_SYS_RESOURCE again, and forks past the limit succeed; dropping it
/// makes the next fork fail with EAGAIN.
fn nproc_cap_sys_resource(_: &Ctx) -> Outcome {
    use forkvm_user::cred::{self, Capabilities, Rlimit, RLIMIT_NPROC};
    const CAP_SYS_RESOURCE: u64 = 1 << 24;
    const NOBODY: u32 = 65534;
    // Where the caller itself lacks the capability (some container roots,
    // this CI host's among them) there is nothing to show; the forkvm guest
    // gives root every capability, so it always runs there.
    if cred::capget(0).ctx("capget")?.permitted & CAP_SYS_RESOURCE == 0 {
        return Ok(());
    }
    let child = Child::spawn(|| {
        let one = Rlimit { cur: 1, max: 1 };
        // SAFETY: no memory is passed.
        let keep = unsafe { forkvm_user::syscall::syscall2(157, 8, 1) };
        if keep != 0 || cred::prlimit64(0, RLIMIT_NPROC, Some(one)).is_err() {
            return 10;
        }
        if cred::setgid(NOBODY).is_err() || cred::setuid(NOBODY).is_err() {
            return 11;
        }
        let Ok(caps) = cred::capget(0) else { return 12 };
        if caps.permitted & CAP_SYS_RESOURCE == 0 || caps.effective != 0 {
            return 13; // keep-caps keeps the permitted set, clears the effective
        }
        let with_cap = Capabilities {
            effective: CAP_SYS_RESOURCE,
            ..caps
        };
        if cred::capset(with_cap).is_err() {
            return 14;
        }
        for _ in 0..3 {
            match fork() {
                Ok(0) => exit_group(0),
                Ok(pid) => {
                    let _ = wait4(pid as i32, 0);
                }
                Err(_) => return 15, // the capability should have exempted us
            }
        }
        if cred::capset(Capabilities {
            effective: 0,
            ..caps
        })
        .is_err()
        {
            return 16;
        }
        match fork() {
            Ok(0) => exit_group(0),
            Ok(pid) => {
                let _ = wait4(pid as i32, 0);
                17 // over the limit without the capability: must fail
            }
            Err(e) if e == forkvm_user::Errno::EAGAIN => 0,
            Err(_) => 18,
        }
    })?;
    let status = child.wait_bounded("the CAP_SYS_RESOURCE child")?;
    expect_exit("RLIMIT_NPROC with and without CAP_SYS_RESOURCE", status, 0)
}

/// `umask` is per process after fork and shared with CLONE_FS (the file
/// system context, Linux `fs_struct`).
fn clone_fs_umask(_: &Ctx) -> Outcome {
    const CLONE_FS: u64 = 0x200;
    let original = umask(0o022);
    let child = Child::spawn(|| {
        umask(0o077);
        0
    })?;
    expect_exit(
        "a forked child setting its umask",
        child.wait_bounded("umask child")?,
        0,
    )?;
    let after_fork = umask(0o022);
    let child = Child::spawn_with_flags(CLONE_FS, || {
        umask(0o077);
        0
    })?;
    expect_exit(
        "a CLONE_FS child setting its umask",
        child.wait_bounded("umask child")?,
        0,
    )?;
    let after_clone_fs = umask(original);
    ensure!(
        after_fork == 0o022,
        "a forked child's umask leaked into the parent: {after_fork:#o}"
    );
    ensure!(
        after_clone_fs == 0o077,
        "a CLONE_FS child's umask was not shared: {after_clone_fs:#o}"
    );
    Ok(())
}

/// `ioprio_set(which, who, ioprio)`: 0 or a negative errno.
fn ioprio_set(which: usize, who: usize, ioprio: usize) -> isize {
    // SAFETY: no memory is passed.
    unsafe { forkvm_user::syscall::syscall3(251, which, who, ioprio) }
}

/// `ioprio_get(which, who)`: the priority or a negative errno.
fn ioprio_get(which: usize, who: usize) -> isize {
    // SAFETY: no memory is passed.
    unsafe { forkvm_user::syscall::syscall2(252, which, who) }
}

/// The I/O priority lives in the I/O context: a fork copies a priority
/// the parent chose, CLONE_IO shares it (Linux `copy_io`). Bad values and
/// targets get Linux's errno.
fn clone_io_ioprio(_: &Ctx) -> Outcome {
    const CLONE_IO: u64 = 0x8000_0000;
    const WHO_PROCESS: usize = 1;
    const BE: usize = 2 << 13;
    ensure!(
        ioprio_set(WHO_PROCESS, 0, BE | 2) == 0,
        "ioprio_set(BE 2) failed"
    );
    let child_sets_be6 = || {
        if ioprio_get(WHO_PROCESS, 0) != (BE | 2) as isize {
            return 1;
        }
        if ioprio_set(WHO_PROCESS, 0, BE | 6) != 0 {
            return 2;
        }
        0
    };
    let child = Child::spawn(child_sets_be6)?;
    expect_exit(
        "a forked child reading and setting its I/O priority",
        child.wait_bounded("ioprio child")?,
        0,
    )?;
    let after_fork = ioprio_get(WHO_PROCESS, 0);
    let child = Child::spawn_with_flags(CLONE_IO, child_sets_be6)?;
    expect_exit(
        "a CLONE_IO child reading and setting its I/O priority",
        child.wait_bounded("ioprio child")?,
        0,
    )?;
    let after_clone_io = ioprio_get(WHO_PROCESS, 0);
    let none_with_level = ioprio_set(WHO_PROCESS, 0, 1);
    let bad_class = ioprio_set(WHO_PROCESS, 0, 4 << 13);
    let bad_which = ioprio_get(9, 0);
    let no_such_pid = ioprio_get(WHO_PROCESS, 0x3fff_fff0);
    ioprio_set(WHO_PROCESS, 0, 0);
    ensure!(
        after_fork == (BE | 2) as isize,
        "a forked child's I/O priority leaked into the parent: {after_fork:#x}"
    );
    ensure!(
        after_clone_io == (BE | 6) as isize,
        "a CLONE_IO child's I/O priority was not shared: {after_clone_io:#x}"
    );
    ensure!(
        (none_with_level, bad_class, bad_which, no_such_pid) == (-22, -22, -22, -3),
        "errors: class none with a level {none_with_level}, class 4 {bad_class}, \
         which 9 {bad_which}, no such pid {no_such_pid} (want -22 -22 -22 -3)"
    );
    Ok(())
}

/// System V semaphores through raw system calls: `semget`, `semop`
/// (one `struct sembuf`), `semctl` with an integer argument.
mod sysv {
    pub const IPC_PRIVATE: usize = 0;
    pub const IPC_CREAT: usize = 0o1000;
    pub const IPC_EXCL: usize = 0o2000;
    pub const IPC_RMID: usize = 0;
    pub const GETVAL: usize = 12;
    pub const GETNCNT: usize = 14;
    pub const SETVAL: usize = 16;
    pub const IPC_NOWAIT: i16 = 0o4000;
    pub const SEM_UNDO: i16 = 0x1000;

    pub fn semget(key: usize, nsems: usize, flags: usize) -> isize {
        // SAFETY: no memory is passed.
        unsafe { forkvm_user::syscall::syscall3(64, key, nsems, flags) }
    }

    /// `semop` of `ops` (`(num, op, flags)`), or of `nsops` entries when
    /// it differs (to test the count checks).
    pub fn semop_n(id: isize, ops: &[(u16, i16, i16)], nsops: usize) -> isize {
        let mut buf = [0u8; 6 * 4];
        for (i, &(num, op, flags)) in ops.iter().take(4).enumerate() {
            buf[i * 6..i * 6 + 2].copy_from_slice(&num.to_le_bytes());
            buf[i * 6 + 2..i * 6 + 4].copy_from_slice(&op.to_le_bytes());
            buf[i * 6 + 4..i * 6 + 6].copy_from_slice(&flags.to_le_bytes());
        }
        // SAFETY: `buf` is live and holds at least the entries passed
        // (the count tests pass 0 or too many, refused before reading).
        unsafe { forkvm_user::syscall::syscall3(65, id as usize, buf.as_ptr() as usize, nsops) }
    }

    pub fn semop(id: isize, ops: &[(u16, i16, i16)]) -> isize {
        semop_n(id, ops, ops.len())
    }

    pub fn semctl(id: isize, num: usize, cmd: usize, arg: usize) -> isize {
        // SAFETY: only integer commands are used; no memory is passed.
        unsafe { forkvm_user::syscall::syscall4(66, id as usize, num, cmd, arg) }
    }
}

/// System V semaphore undo (SEM_UNDO) is applied when the process exits;
/// CLONE_SYSVSEM shares the undo list, so a sharer's exit does not apply
/// it but the last holder's does (Linux `copy_semundo`/`exit_sem`).
/// Blocking waits, IPC_RMID waking a sleeper with EIDRM, and Linux's
/// errnos.
fn sysvsem_undo(_: &Ctx) -> Outcome {
    use sysv::*;
    const CLONE_SYSVSEM: u64 = 0x40000;
    let id = semget(IPC_PRIVATE, 2, 0o600);
    ensure!(id >= 0, "semget(IPC_PRIVATE): {id}");
    let result = sysvsem_scenario(id);
    let removed = semctl(id, 0, IPC_RMID, 0);
    result?;
    ensure!(removed == 0, "IPC_RMID: {removed}");
    ensure!(
        semop(id, &[(0, 1, 0)]) == -22,
        "semop on a removed set is EINVAL"
    );
    return Ok(());

    fn sysvsem_scenario(id: isize) -> Outcome {
        let val = |num| semctl(id, num, GETVAL, 0);
        ensure!(semctl(id, 0, SETVAL, 1) == 0, "SETVAL 1");
        // Undo at exit.
        let child = Child::spawn(|| (semop(id, &[(0, -1, SEM_UNDO)]) != 0) as i32)?;
        expect_exit("semop(-1, SEM_UNDO)", child.wait_bounded("sem child")?, 0)?;
        ensure!(val(0) == 1, "SEM_UNDO was not applied at exit: {}", val(0));
        // No undo without SEM_UNDO.
        let child = Child::spawn(|| (semop(id, &[(0, -1, 0)]) != 0) as i32)?;
        expect_exit("semop(-1)", child.wait_bounded("sem child")?, 0)?;
        ensure!(val(0) == 0, "a plain semop was undone: {}", val(0));
        ensure!(semctl(id, 0, SETVAL, 1) == 0, "SETVAL 1");
        // A CLONE_SYSVSEM child shares its parent's list: its exit does not
        // undo; the parent's (the last holder's) does.
        let middle = Child::spawn(move || {
            let sharer = Child::spawn_with_flags(CLONE_SYSVSEM, || {
                (semop(id, &[(0, -1, SEM_UNDO)]) != 0) as i32
            });
            let Ok(sharer) = sharer else { return 10 };
            match sharer.wait_bounded("sysvsem sharer") {
                Ok(status) if status.exited() && status.exit_status() == 0 => {}
                _ => return 11,
            }
            if semctl(id, 0, GETVAL, 0) != 0 {
                return 12; // undone at the sharer's exit
            }
            0
        })?;
        expect_exit(
            "a CLONE_SYSVSEM child's undo waits for its parent",
            middle.wait_bounded("sysvsem parent")?,
            0,
        )?;
        ensure!(
            val(0) == 1,
            "the last holder's exit did not undo: {}",
            val(0)
        );
        // A sleeper: waits for the value, counted by GETNCNT, woken by +1.
        ensure!(semctl(id, 1, SETVAL, 0) == 0, "SETVAL 0");
        let sleeper = Child::spawn(|| (semop(id, &[(1, -1, 0)]) != 0) as i32)?;
        let deadline = monotonic_ns() + TIMEOUT_NS;
        while semctl(id, 1, GETNCNT, 0) != 1 && monotonic_ns() < deadline {
            sleep_ns(MS);
        }
        ensure!(semctl(id, 1, GETNCNT, 0) == 1, "GETNCNT of a sleeper");
        ensure!(semop(id, &[(1, 1, 0)]) == 0, "semop(+1)");
        expect_exit("a woken semop", sleeper.wait_bounded("sem sleeper")?, 0)?;
        ensure!(val(1) == 0, "the sleeper's -1 was not applied");
        // Linux's errnos.
        let errors = [
            semop_n(id, &[], 0),
            semop_n(id, &[(0, 1, 0)], 501),
            semop(-1, &[(0, 1, 0)]),
            semop(id, &[(2, 1, 0)]),
            semop(id, &[(1, -1, IPC_NOWAIT)]),
            semop(id, &[(0, i16::MAX, 0)]),
            semctl(id, 0, SETVAL, 40000),
            semctl(id, 2, GETVAL, 0),
        ];
        ensure!(
            errors == [-22, -7, -22, -27, -11, -34, -34, -22],
            "errnos {errors:?}, want EINVAL E2BIG EINVAL EFBIG EAGAIN ERANGE ERANGE EINVAL"
        );
        // Keys: absent without IPC_CREAT, EEXIST with IPC_EXCL.
        let key = 0x4b46_0000 + forkvm_user::syscall::getpid() as usize;
        ensure!(semget(key, 1, 0o600) == -2, "semget of an absent key");
        let keyed = semget(key, 1, IPC_CREAT | 0o600);
        ensure!(keyed >= 0, "semget(IPC_CREAT): {keyed}");
        let again = semget(key, 1, 0o600);
        let excl = semget(key, 1, IPC_CREAT | IPC_EXCL | 0o600);
        let too_many = semget(key, 2, 0o600);
        semctl(keyed, 0, IPC_RMID, 0);
        ensure!(
            (again == keyed, excl, too_many) == (true, -17, -22),
            "existing key: same id {}, IPC_EXCL {excl}, more semaphores {too_many}",
            again == keyed
        );
        // IPC_RMID wakes a sleeper with EIDRM.
        let victim_set = semget(IPC_PRIVATE, 1, 0o600);
        ensure!(victim_set >= 0, "semget: {victim_set}");
        let sleeper = Child::spawn(|| (semop(victim_set, &[(0, -1, 0)]) != -43) as i32)?;
        let deadline = monotonic_ns() + TIMEOUT_NS;
        while semctl(victim_set, 0, GETNCNT, 0) != 1 && monotonic_ns() < deadline {
            sleep_ns(MS);
        }
        ensure!(semctl(victim_set, 0, IPC_RMID, 0) == 0, "IPC_RMID");
        expect_exit(
            "EIDRM for a sleeper",
            sleeper.wait_bounded("sem sleeper")?,
            0,
        )
    }
}

// ---------------------------------------------------------------------------
// The table and the driver

/// What scenarios may need from the command line.
struct Ctx<'a> {
    /// The path this program was started with (to `execve` it again).
    argv0: Option<&'a [u8]>,
}

type Scenario = fn(&Ctx) -> Outcome;

// Topic modules: after the macros above, which they use.
mod altstack;
mod fs;
mod pgrp;
mod sched;
mod sem;
mod signals;
mod sigwait;
mod userns;
mod waitid;

/// The scenarios of this file (the topic modules add theirs).
const CORE_SCENARIOS: &[(&str, Scenario)] = &[
    ("cow-parent-write", cow_parent_write),
    ("cow-child-write", cow_child_write),
    ("cow-many-pages", cow_many_pages),
    ("clone-vm-shares", clone_vm_shares),
    ("thread-shares-mm", thread_shares_mm),
    ("thread-getpid", thread_getpid),
    ("thread-tls", thread_tls),
    ("child-cleartid-wakes", child_cleartid_wakes),
    ("vfork-order", vfork_order),
    ("vfork-exec", vfork_exec),
    ("wait-status-exit", wait_status_exit),
    ("wait-status-sigkill", wait_status_sigkill),
    ("wait-status-sigsegv", wait_status_sigsegv),
    ("wait-any-and-wnohang", wait_any_and_wnohang),
    ("wait-echild", wait_echild),
    ("orphan-reparented", orphan_reparented),
    ("zombie-reaped", zombie_reaped),
    ("efault-write", efault_write),
    ("efault-wait4", efault_wait4),
    ("efault-clone-settid", efault_clone_settid),
    ("pipe-basic", pipe_basic),
    ("dup2-basic", dup2_basic),
    ("files-shared-by-thread", files_shared_by_thread),
    ("exit-group-kills-threads", exit_group_kills_threads),
    ("mmap-munmap", mmap_munmap),
    ("mmap-hint-honoured", mmap_hint_honoured),
    ("nx-data-page", nx_data_page),
    ("mprotect-readonly", mprotect_readonly),
    ("brk-grow", brk_grow),
    ("fork-many", fork_many),
    ("sched-yield", sched_yield),
    ("nanosleep", nanosleep_10ms),
    ("uname", uname_linux),
    ("sighand-shared", sighand_shared),
    ("nproc-cap-sys-resource", nproc_cap_sys_resource),
    ("uts-namespace", uts_namespace),
    ("pid-namespace", pid_namespace),
    ("clone-fs-umask", clone_fs_umask),
    ("clone-io-ioprio", clone_io_ioprio),
    ("sysvsem-undo", sysvsem_undo),
];

/// The helper that `vfork-exec` executes: exit 42 at once, print nothing.
const EXIT_42: &[u8] = b"exit-42";
/// The helper that `exec-kills-other-threads` executes: write one byte to
/// descriptor 9, sleep 100 ms, exit 0.
const EXEC_MARKER: &[u8] = b"exec-marker-fd9";
/// The helper that `exec-unshares-files` executes: close descriptor 9,
/// exit 0.
const EXEC_CLOSE: &[u8] = b"exec-close-fd9";
/// The helper that `exec-closes-cloexec` executes: exit 0 if descriptor 8
/// is open (it writes "o" to it) and 9 is closed.
const EXEC_FD_CHECK: &[u8] = b"exec-fd8-open-fd9-closed";

/// Every scenario, in the order `list` and `all` use: this file's, then each
/// topic module's.
fn scenarios() -> impl Iterator<Item = &'static (&'static str, Scenario)> {
    CORE_SCENARIOS
        .iter()
        .chain(pgrp::SCENARIOS)
        .chain(sem::SCENARIOS)
        .chain(fs::SCENARIOS)
        .chain(userns::SCENARIOS)
        .chain(signals::SCENARIOS)
        .chain(altstack::SCENARIOS)
        .chain(waitid::SCENARIOS)
        .chain(sigwait::SCENARIOS)
        .chain(sched::SCENARIOS)
}

fn lookup(name: &[u8]) -> Option<&'static (&'static str, Scenario)> {
    scenarios().find(|(n, _)| n.as_bytes() == name)
}

fn usage(problem: &str) -> i32 {
    eprintln!("proctest: {problem}\n{USAGE}");
    2
}

fn main(args: &[&[u8]], _env: &[&[u8]]) -> i32 {
    let requested = args.get(1..).unwrap_or(&[]);
    if requested.is_empty() {
        return usage("no scenario given");
    }
    if requested.len() == 1 && requested[0] == b"list" {
        for (name, _) in scenarios() {
            println!("{name}");
        }
        return 0;
    }
    // Check every name before running anything.
    for &arg in requested {
        let helper = [
            EXIT_42,
            EXEC_MARKER,
            EXEC_CLOSE,
            EXEC_FD_CHECK,
            altstack::EXEC_ALTSTACK_CHECK.to_bytes(),
            sched::PREEMPT_HELPER,
        ]
        .contains(&arg);
        if arg != b"all" && !helper && lookup(arg).is_none() {
            eprintln!("proctest: unknown scenario: {}", Bytes(arg));
            return usage("see `proctest list`");
        }
    }
    let ctx = Ctx {
        argv0: args.first().copied(),
    };
    let mut failed = false;
    let mut run = |name: &str, scenario: Scenario| match scenario(&ctx) {
        Ok(()) => println!("ok {name}"),
        Err(m) => {
            failed = true;
            println!("FAIL {name}: {}", m.as_str());
        }
    };
    for &arg in requested {
        if arg == EXIT_42 {
            exit_group(42);
        } else if arg == EXEC_FD_CHECK {
            let open = write(8, b"o") == Ok(1);
            let closed = write(9, b"x") == Err(Errno::EBADF);
            exit_group(i32::from(!open) | i32::from(!closed) << 1);
        } else if arg == altstack::EXEC_ALTSTACK_CHECK.to_bytes() {
            exit_group(altstack::exec_altstack_check());
        } else if arg == sched::PREEMPT_HELPER {
            exit_group(sched::preempt_checks());
        } else if arg == EXEC_CLOSE {
            exit_group(i32::from(close(9).is_err()));
        } else if arg == EXEC_MARKER {
            let _ = write(9, b"x");
            sleep_ns(100 * MS);
            exit_group(0);
        } else if arg == b"all" {
            for &(name, scenario) in scenarios() {
                run(name, scenario);
            }
        } else if let Some(&(name, scenario)) = lookup(arg) {
            run(name, scenario);
        }
    }
    i32::from(failed)
}
