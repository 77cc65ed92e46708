//! What every scenario uses: failure messages (`msg!`, `ensure!`, [`Msg`]),
//! wait-status checks, and resources that clean up after themselves
//! (descriptors, mappings, child processes, thread stacks), so no scenario
//! leaves a child, a mapping or a descriptor behind.

use super::*;

pub const PAGE: usize = 4096;
pub const MS: u64 = 1_000_000;
/// How long a child or thread may take to end before the scenario fails
/// (and kills it): far more than any needs on Linux.
pub const TIMEOUT_NS: u64 = 2_000 * MS;
/// Stack (with a TLS block and tid words at the bottom) of `clone` children.
pub const STACK_SIZE: usize = 64 * 1024;
pub use forkvm_user::signal::sig::SIGKILL;
pub use forkvm_user::signal::sig::SIGSEGV;

// ---------------------------------------------------------------------------
// Skipped parts

/// The scenario running (its place in `list` order), for [`skipped`]; a
/// forked child inherits it.
static CURRENT: AtomicUsize = AtomicUsize::new(usize::MAX);

/// Records the scenario about to run.
pub fn set_current(name: &str) {
    let at = scenarios().position(|(n, _)| *n == name);
    CURRENT.store(at.unwrap_or(usize::MAX), Ordering::Relaxed);
}

/// Says that part of the running scenario did not run here (on a host
/// whose root lacks a capability, say): a line `skip NAME: WHY` before
/// the scenario's `ok` or `FAIL` line, so a pass does not hide it. The
/// guest's root has every capability: it never skips.
pub fn skipped(why: &str) {
    let at = CURRENT.load(Ordering::Relaxed);
    let name = scenarios().nth(at).map_or("?", |(n, _)| n);
    println!("skip {name}: {why}");
}

// ---------------------------------------------------------------------------
// Failure messages

/// A failure message, formatted into a fixed buffer (no heap needed);
/// longer messages are cut short.
pub struct Msg {
    len: usize,
    buf: [u8; 240],
}

impl Msg {
    pub const fn new() -> Self {
        Self {
            len: 0,
            buf: [0; 240],
        }
    }

    pub fn as_str(&self) -> &str {
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

pub type Outcome = Result<(), Msg>;

/// Names a failed system call in a scenario's message.
pub trait Context<T> {
    fn ctx(self, what: &str) -> Result<T, Msg>;
}

impl<T> Context<T> for Result<T, Errno> {
    fn ctx(self, what: &str) -> Result<T, Msg> {
        self.map_err(|e| msg!("{what}: {e}"))
    }
}

/// Shows a wait status as `exit N`, `killed by signal N` or the raw word.
pub struct Status(pub WaitStatus);

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
pub struct Ret(pub isize);

impl fmt::Display for Ret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match forkvm_user::syscall::check(self.0) {
            Ok(v) => write!(f, "{v}"),
            Err(e) => write!(f, "-{e}"),
        }
    }
}

pub fn expect_exit(what: &str, status: WaitStatus, code: i32) -> Outcome {
    ensure!(
        status.exited() && status.exit_status() == code,
        "{what}: expected exit {code}, got {}",
        Status(status)
    );
    Ok(())
}

pub fn expect_signal(what: &str, status: WaitStatus, signal: i32) -> Outcome {
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
pub struct Fd(pub i32);

impl Fd {
    pub fn raw(&self) -> i32 {
        self.0
    }

    /// Gives up ownership without closing (someone else closed it).
    pub fn into_raw(self) -> i32 {
        let fd = self.0;
        core::mem::forget(self);
        fd
    }

    pub fn close(self) -> Outcome {
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
pub fn pipe() -> Result<(Fd, Fd), Msg> {
    let [r, w] = pipe2(0).ctx("pipe2")?;
    Ok((Fd(r), Fd(w)))
}

/// Reads until `buf` is full or end of file; returns the bytes read.
pub fn read_full(fd: i32, buf: &mut [u8]) -> Result<usize, Msg> {
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
pub struct Mapping {
    pub ptr: *mut u8,
    pub len: usize,
}

impl Mapping {
    pub fn new(len: usize) -> Result<Self, Msg> {
        let ptr = mmap_anonymous(len, PROT_READ | PROT_WRITE).ctx("mmap")?;
        Ok(Self { ptr, len })
    }

    pub fn addr(&self) -> usize {
        self.ptr as usize
    }

    pub fn get(&self, off: usize) -> u8 {
        assert!(off < self.len);
        // SAFETY: off is inside our readable mapping.
        unsafe { self.ptr.add(off).read_volatile() }
    }

    pub fn set(&self, off: usize, value: u8) {
        assert!(off < self.len);
        // SAFETY: off is inside our mapping, which is writable wherever this
        // is called (plain bytes: no Rust reference to them exists).
        unsafe { self.ptr.add(off).write_volatile(value) }
    }

    /// Unmaps now, returning the address that is no longer mapped.
    pub fn unmap(self) -> Result<usize, Msg> {
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
pub fn exec_self_helper(argv0: &[u8], helper: &CStr) -> i32 {
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
pub fn signal_until_exit(
    child: Child,
    ready: i32,
    signal: i32,
    what: &str,
) -> Result<WaitStatus, Msg> {
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
pub struct Gate {
    pub read: Fd,
    pub write: Fd,
}

impl Gate {
    pub fn new() -> Result<Gate, Msg> {
        let (read, write) = pipe()?;
        Ok(Gate { read, write })
    }

    /// A child body that waits for one byte (or end of file: the child
    /// closes its copy of the write end), then exits with `code`.
    pub fn hold(&self, code: i32) -> impl FnOnce() -> i32 {
        let (read_fd, write_fd) = (self.read.raw(), self.write.raw());
        move || {
            let _ = close(write_fd);
            wait_byte(read_fd);
            code
        }
    }

    /// Lets `n` held children go.
    pub fn release(&self, n: usize) -> Outcome {
        write_all(self.write.raw(), &[0u8; 8][..n]).ctx("write to the gate")
    }

    /// Lets every held child go.
    pub fn open(self) -> Outcome {
        self.write.close()
    }
}

/// Blocks until one byte or end of file arrives on `fd`.
pub fn wait_byte(fd: i32) {
    let mut byte = [0u8; 1];
    while let Err(Errno::EINTR) = read(fd, &mut byte) {}
}

/// A child process not yet reaped. Dropping it (an early return) kills it
/// with `SIGKILL` and reaps it, so no scenario leaves one behind.
pub struct Child {
    pub pid: Pid,
}

impl Child {
    /// Like [`spawn`](Self::spawn) but with `clone(flags | SIGCHLD)`; the
    /// flags must not include CLONE_VM (the child runs on a copy of this
    /// stack, as after fork).
    pub fn spawn_with_flags(flags: u64, body: impl FnOnce() -> i32) -> Result<Child, Msg> {
        use forkvm_user::clone::SIGCHLD;
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
    pub fn spawn(body: impl FnOnce() -> i32) -> Result<Child, Msg> {
        match fork() {
            Ok(0) => exit_group(body()),
            Ok(pid) => Ok(Child { pid }),
            Err(e) => Err(msg!("fork: {e}")),
        }
    }

    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// Forgets the child: it has been reaped some other way.
    pub fn reaped(self) -> Pid {
        let pid = self.pid;
        core::mem::forget(self);
        pid
    }

    /// Reaps the child with a blocking `wait4(pid, &status, 0, NULL)`.
    pub fn wait(self) -> Result<WaitStatus, Msg> {
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
    pub fn wait_bounded(self, what: &str) -> Result<WaitStatus, Msg> {
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

pub fn sleep_ns(ns: u64) {
    let _ = nanosleep(Timespec::from_nanos(ns));
}

/// The memory of a `clone` child: its stack, with a TLS block (a word
/// pointing to itself, the x86-64 convention) and the parent/child tid words
/// at the bottom, where they stay put while the child runs. Unmapped when
/// dropped, so it must outlive the child.
pub struct ThreadStack {
    pub map: Mapping,
}

pub const PTID_OFFSET: usize = 64;
pub const CTID_OFFSET: usize = 68;

impl ThreadStack {
    pub fn new() -> Result<Self, Msg> {
        let map = Mapping::new(STACK_SIZE)?;
        // SAFETY: the first 8 bytes of the fresh, aligned mapping: the TLS block.
        unsafe { map.ptr.cast::<u64>().write(map.ptr as u64) };
        Ok(Self { map })
    }

    pub fn word(&self, offset: usize) -> &AtomicU32 {
        // SAFETY: offset + 4 <= STACK_SIZE and 4-aligned in our mapping, which
        // lives as long as `self`; the word is only ever accessed atomically
        // (by us and by the kernel).
        unsafe { AtomicU32::from_ptr(self.map.ptr.add(offset).cast()) }
    }

    /// The `CLONE_PARENT_SETTID` word.
    pub fn ptid(&self) -> &AtomicU32 {
        self.word(PTID_OFFSET)
    }

    /// The `CLONE_CHILD_CLEARTID` word: `u32::MAX` until the thread exits.
    pub fn ctid(&self) -> &AtomicU32 {
        self.word(CTID_OFFSET)
    }

    /// `clone(flags, top of stack, ptid, ctid, tls)`, the child running
    /// `child(arg)`; returns what `clone` returned.
    ///
    /// # Safety
    /// The child must be gone before `self` is dropped, and whatever `arg`
    /// points to must outlive it (see [`clone_raw`]).
    pub unsafe fn clone(
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
    pub fn join(self) -> Outcome {
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
pub unsafe fn shared<'a, T>(arg: usize) -> &'a T {
    // SAFETY: guaranteed by the caller.
    unsafe { &*(arg as *const T) }
}

/// Loads the byte at `addr` with an instruction the compiler knows nothing
/// about, so that touching an address that is not (or no longer) mapped is
/// a fault in the process and not a question of Rust semantics.
pub fn peek(addr: usize) -> u8 {
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
pub unsafe fn poke(addr: usize, value: u8) {
    // SAFETY: the caller guarantees no Rust object lives at `addr`.
    unsafe {
        asm!("mov byte ptr [{a}], {v}", a = in(reg) addr, v = in(reg_byte) value,
             options(nostack, preserves_flags));
    }
}

/// The host name from `uname`.
pub fn hostname() -> Result<[u8; 65], Msg> {
    Ok(uname().ctx("uname")?.nodename)
}

/// `sethostname(name)`.
pub fn sethostname(name: &[u8]) -> isize {
    // SAFETY: a live slice of the given length.
    unsafe { forkvm_user::syscall::syscall2(nr::SETHOSTNAME, name.as_ptr() as usize, name.len()) }
}

/// `umask(mask)`: the previous mask.
pub fn umask(mask: u32) -> u32 {
    // SAFETY: no memory is passed.
    unsafe { forkvm_user::syscall::syscall1(nr::UMASK, mask as usize) as u32 }
}

/// What a thread reports to its creator.
#[derive(Default)]
pub struct ThreadReport {
    pub word: AtomicU64,
    pub page: AtomicUsize,
    pub pid: AtomicU32,
    pub tid: AtomicU32,
    pub ppid: AtomicU32,
    pub result: AtomicI32,
}

/// The number of the first false check, 0 if all hold: what a child
/// exits with (the parent names the check from its list).
pub fn first_failure(checks: &[bool]) -> i32 {
    checks.iter().position(|ok| !ok).map_or(0, |i| i as i32 + 1)
}

/// Reaps a child that ran [`first_failure`] over `names`.
pub fn expect_checks(what: &str, child: Child, names: &[&str]) -> Outcome {
    let status = child.wait_bounded(what)?;
    ensure!(status.exited(), "{what}: {}", Status(status));
    let code = status.exit_status() as usize;
    ensure!(
        code == 0,
        "{what}: check {code} failed: {}",
        names.get(code.wrapping_sub(1)).unwrap_or(&"?")
    );
    Ok(())
}
