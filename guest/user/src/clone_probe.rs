//! Probing `clone`(56) and `clone3`(435) with arbitrary flags: a child that
//! exits 0 at once, and reaping it whatever kind of child the flags made.
//! Used by the shell's `clone`/`clone3` builtins and by `clonecheck`.
//!
//! The child protocol:
//! - Legacy `clone` goes through [`clone_raw`] with a fresh stack
//!   ([`CloneArea`]); the child stores 1 in the area's `ran` word (visible to
//!   the parent only with `CLONE_VM`) and calls `exit`(60) with 0 (`exit`,
//!   not `exit_group`: a `CLONE_THREAD` child must end only itself).
//!   `parent_tid` and `child_tid` point at the area's words, `tls` is the
//!   caller's.
//! - `clone3` goes through [`clone3_exit0`], whose child touches no stack at
//!   all (it stores to `ran` through a register and makes the `exit` system
//!   call), so any `stack` value the caller passes is safe for us.
//! - [`reap`]: a `CLONE_THREAD` child cannot be waited for; it is joined
//!   through its `CLONE_CHILD_CLEARTID` word (timed futex waits) if it has
//!   one, else left alone. Any other child is reaped with
//!   `wait4(pid, __WALL)` (so children with no or another exit signal are
//!   reaped too); `ECHILD` means it is not our child (`CLONE_PARENT`).
//!
//! A child that may still use its area (a thread that could not be joined,
//! a `CLONE_VM` child that is not ours) must have its area leaked
//! ([`CloneArea::leak`]), never unmapped under it.

use core::fmt;
use core::sync::atomic::{AtomicU32, Ordering};

use crate::clone::{clone_raw, CLONE_CHILD_CLEARTID, CLONE_PIDFD, CLONE_THREAD, CLONE_VM};
use crate::errno::Errno;
use crate::syscall::{
    check, close, exit, futex, mmap_anonymous, munmap, wait4, Pid, Timespec, WaitStatus,
    FUTEX_WAIT, PROT_READ, PROT_WRITE, WALL,
};
use crate::time::monotonic_ns;

/// Clone flags `crate::clone` does not name.
pub use forkvm_abi::linux::clone::{
    CLONE_CLEAR_SIGHAND, CLONE_INTO_CGROUP, CLONE_IO, CLONE_NEWCGROUP, CLONE_NEWIPC, CLONE_NEWNET,
    CLONE_NEWPID, CLONE_NEWTIME, CLONE_NEWUSER, CLONE_NEWUTS,
};

/// `clone3`'s first published `struct clone_args` (up to `tls`).
pub const CLONE_ARGS_SIZE_VER0: usize = forkvm_abi::linux::clone::CLONE_ARGS_SIZE_VER0 as usize;
/// With `set_tid`, `set_tid_size`.
pub const CLONE_ARGS_SIZE_VER1: usize = forkvm_abi::linux::clone::CLONE_ARGS_SIZE_VER1 as usize;
/// With `cgroup`: the whole of [`CloneArgs`].
pub const CLONE_ARGS_SIZE_VER2: usize = forkvm_abi::linux::clone::CLONE_ARGS_SIZE_VER2 as usize;

/// `struct clone_args` (x86-64: eleven `u64`s, 88 bytes). Pointers are
/// addresses; `set_tid` points at `set_tid_size` `pid_t`s (`i32`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CloneArgs {
    /// `CLONE_*` flags (no exit signal in the low byte: that is `EINVAL`).
    pub flags: u64,
    /// `CLONE_PIDFD`: where to store the pidfd (an `int`).
    pub pidfd: u64,
    /// `CLONE_CHILD_SETTID`/`CLONE_CHILD_CLEARTID` word (in the child).
    pub child_tid: u64,
    /// `CLONE_PARENT_SETTID` word (in the parent).
    pub parent_tid: u64,
    /// Signal sent to the parent when the child ends (0..=64).
    pub exit_signal: u64,
    /// Lowest address of the child's stack (0: the caller's stack pointer).
    pub stack: u64,
    /// Size of the stack (must be 0 exactly when `stack` is).
    pub stack_size: u64,
    /// `CLONE_SETTLS`: the child's FS base.
    pub tls: u64,
    /// Pids to give the child, innermost namespace first.
    pub set_tid: u64,
    /// Entries of `set_tid` (at most 32).
    pub set_tid_size: u64,
    /// `CLONE_INTO_CGROUP`: a cgroup directory descriptor.
    pub cgroup: u64,
}

impl CloneArgs {
    /// The struct as the 88 bytes `clone3` reads.
    pub fn to_bytes(&self) -> [u8; CLONE_ARGS_SIZE_VER2] {
        let fields = [
            self.flags,
            self.pidfd,
            self.child_tid,
            self.parent_tid,
            self.exit_signal,
            self.stack,
            self.stack_size,
            self.tls,
            self.set_tid,
            self.set_tid_size,
            self.cgroup,
        ];
        let mut bytes = [0u8; CLONE_ARGS_SIZE_VER2];
        for (chunk, field) in bytes.chunks_exact_mut(8).zip(fields) {
            chunk.copy_from_slice(&field.to_ne_bytes());
        }
        bytes
    }
}

// extern "C" fn(args rdi, size rsi, ran rdx) -> isize
//
// The child starts here with every register but rax/rcx/r11 as the parent
// passed them (rdx = ran) and rsp = stack + stack_size (or the parent's rsp
// when no stack was given): it uses no stack, stores 1 to *ran if ran is not
// NULL and ends itself with exit(0).
core::arch::global_asm!(
    ".globl forkvm_user_clone3_exit0",
    ".type forkvm_user_clone3_exit0, @function",
    "forkvm_user_clone3_exit0:",
    "mov eax, 435",
    "syscall",
    "test rax, rax",
    "jz 2f",
    "ret",
    "2:",
    "test rdx, rdx",
    "jz 3f",
    "mov dword ptr [rdx], 1",
    "3:",
    "mov eax, 60",
    "xor edi, edi",
    "syscall",
    "ud2",
    ".size forkvm_user_clone3_exit0, . - forkvm_user_clone3_exit0",
);

extern "C" {
    fn forkvm_user_clone3_exit0(args: *const u8, size: usize, ran: *mut u32) -> isize;
}

/// `clone3(args, size)` with a child that stores 1 to `ran` (if not null)
/// and exits 0 at once, touching no stack. Returns the child's tid.
///
/// # Safety
/// Whatever the arguments' pointers (`pidfd`, `child_tid`, `parent_tid`,
/// `set_tid`) name may be written by the kernel; `ran` must be null or
/// writable in the child (with `CLONE_VM`, our memory) until it has exited.
/// `args` may be invalid (that is `EFAULT`).
pub unsafe fn clone3_exit0(args: *const u8, size: usize, ran: *mut u32) -> Result<Pid, Errno> {
    // SAFETY: the caller vouches for the pointers; the child runs only the
    // assembly above.
    check(unsafe { forkvm_user_clone3_exit0(args, size, ran) }).map(|tid| tid as Pid)
}

/// Size of a [`CloneArea`]: a page of words and TLS block, then the stack.
pub const AREA_SIZE: usize = 64 * 1024;
const HEAD: usize = 4096;
const PTID: usize = 64;
const CTID: usize = 68;
const PIDFD: usize = 72;
const RAN: usize = 76;
/// What the tid and pidfd words hold until the kernel writes them.
pub const UNWRITTEN: u32 = u32::MAX;

/// The memory of one probe child: a fresh anonymous mapping with a TLS
/// block (its first word points at itself, as the x86-64 TLS ABI wants) and
/// the `parent_tid`, `child_tid`, `pidfd` and `ran` words in its first page,
/// and the child's stack above. Unmapped on drop.
pub struct CloneArea {
    ptr: *mut u8,
}

impl CloneArea {
    /// A fresh area: tid and pidfd words [`UNWRITTEN`], `ran` 0.
    pub fn new() -> Result<Self, Errno> {
        let ptr = mmap_anonymous(AREA_SIZE, PROT_READ | PROT_WRITE)?;
        let area = Self { ptr };
        // SAFETY: the mapping is fresh, writable and 4096-aligned.
        unsafe { ptr.cast::<u64>().write(ptr as u64) };
        for word in [area.ptid(), area.ctid(), area.pidfd()] {
            word.store(UNWRITTEN, Ordering::Relaxed);
        }
        Ok(area)
    }

    fn word(&self, offset: usize) -> &AtomicU32 {
        // SAFETY: offset + 4 <= HEAD, 4-aligned, in our live mapping; the
        // words are only accessed atomically (by us, children, the kernel).
        unsafe { AtomicU32::from_ptr(self.ptr.add(offset).cast()) }
    }

    /// The `parent_tid` word (legacy `clone` also stores a pidfd there).
    pub fn ptid(&self) -> &AtomicU32 {
        self.word(PTID)
    }

    /// The `child_tid` word.
    pub fn ctid(&self) -> &AtomicU32 {
        self.word(CTID)
    }

    /// The `pidfd` word of `clone3`.
    pub fn pidfd(&self) -> &AtomicU32 {
        self.word(PIDFD)
    }

    /// Set to 1 by the child before it exits (seen here only with `CLONE_VM`).
    pub fn ran(&self) -> &AtomicU32 {
        self.word(RAN)
    }

    /// The TLS block (for `CLONE_SETTLS`).
    pub fn tls(&self) -> u64 {
        self.ptr as u64
    }

    /// Lowest address of the stack (`clone3`'s `stack`).
    pub fn stack_base(&self) -> u64 {
        self.ptr as u64 + HEAD as u64
    }

    /// Size of the stack (`clone3`'s `stack_size`).
    pub fn stack_size(&self) -> u64 {
        (AREA_SIZE - HEAD) as u64
    }

    /// Top of the stack (legacy `clone`'s `stack`).
    pub fn stack_top(&self) -> *mut u8 {
        // SAFETY: one past the end of our mapping.
        unsafe { self.ptr.add(AREA_SIZE) }
    }

    /// Keeps the mapping for good: for a child that may still use it.
    pub fn leak(self) {
        core::mem::forget(self);
    }
}

impl Drop for CloneArea {
    fn drop(&mut self) {
        // SAFETY: our mapping; the caller leaks areas a child may still use.
        let _ = unsafe { munmap(self.ptr, AREA_SIZE) };
    }
}

/// The child of [`clone_exit0`]: marks `ran` (its address is the argument)
/// and exits 0 (this thread only).
extern "C" fn child_exit0(ran: usize) -> ! {
    // SAFETY: the parent passes the `ran` word of an area that stays mapped
    // until we are reaped (or forever); it is only accessed atomically.
    unsafe { AtomicU32::from_ptr(ran as *mut u32) }.store(1, Ordering::Release);
    exit(0)
}

/// Legacy `clone(flags, top of the area's stack, &ptid, &ctid, tls)` with a
/// child that marks `ran` and exits 0 at once. `flags` includes the exit
/// signal in its low byte.
pub fn clone_exit0(flags: u64, area: &CloneArea, tls: u64) -> Result<Pid, Errno> {
    // SAFETY: the stack and words are the area's, unused by anyone else; the
    // child touches only its stack and `ran`; the caller keeps (or leaks)
    // the area until the child is gone. A bad `tls` only affects the child,
    // which never reads its FS base.
    unsafe {
        clone_raw(
            flags,
            area.stack_top(),
            area.ptid().as_ptr(),
            area.ctid().as_ptr(),
            tls,
            child_exit0,
            area.ran().as_ptr() as usize,
        )
    }
}

/// How long [`reap`] waits for a thread's `CLONE_CHILD_CLEARTID` word.
pub const JOIN_TIMEOUT_NS: u64 = 5_000_000_000;

/// What became of a probe child.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reaped {
    /// `wait4` reaped it with this status (0 is the expected one).
    Exited(WaitStatus),
    /// A thread whose `CLONE_CHILD_CLEARTID` word the kernel cleared.
    Joined,
    /// A thread that has no `CLONE_CHILD_CLEARTID` word of ours: left alone.
    Unjoinable,
    /// A thread whose word was not cleared within [`JOIN_TIMEOUT_NS`].
    JoinTimedOut,
    /// `wait4` failed (`ECHILD`: not our child, as with `CLONE_PARENT`).
    WaitFailed(Errno),
}

impl Reaped {
    /// Whether the child can no longer touch its area (else leak it).
    /// Without `CLONE_VM` it only ever had a copy.
    pub fn area_free(self, flags: u64) -> bool {
        flags & CLONE_VM == 0 || matches!(self, Reaped::Exited(_) | Reaped::Joined)
    }

    /// Whether this is how a child of these flags should end: reaped with
    /// status 0, joined, or beyond our reach as its flags say it is.
    pub fn normal(self, flags: u64) -> bool {
        match self {
            Reaped::Exited(status) => status.0 == 0,
            Reaped::Joined | Reaped::Unjoinable => true,
            Reaped::JoinTimedOut => false,
            Reaped::WaitFailed(e) => e == Errno::ECHILD && flags & crate::clone::CLONE_PARENT != 0,
        }
    }
}

/// `(child killed by signal 9)`: how an abnormal end reads after `ok pid=N`.
impl fmt::Display for Reaped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Reaped::Exited(status) if status.signaled() => {
                write!(f, "child killed by signal {}", status.term_signal())
            }
            Reaped::Exited(status) if status.exited() => {
                write!(f, "child exited with status {}", status.exit_status())
            }
            Reaped::Exited(status) => write!(f, "child wait status {:#x}", status.0),
            Reaped::Joined => f.write_str("thread joined"),
            Reaped::Unjoinable => f.write_str("thread not joinable"),
            Reaped::JoinTimedOut => write!(
                f,
                "thread not joined after {} ms",
                JOIN_TIMEOUT_NS / 1_000_000
            ),
            Reaped::WaitFailed(e) => write!(f, "wait4: {e}"),
        }
    }
}

/// Waits (timed futex waits, [`JOIN_TIMEOUT_NS`] in all) until the kernel
/// has cleared `word`; false on timeout.
pub fn join_cleared(word: &AtomicU32) -> bool {
    let deadline = monotonic_ns() + JOIN_TIMEOUT_NS;
    loop {
        let value = word.load(Ordering::Acquire);
        if value == 0 {
            return true;
        }
        let now = monotonic_ns();
        if now >= deadline {
            return false;
        }
        let left = Timespec::from_nanos((deadline - now).min(100_000_000));
        // EAGAIN (changed), EINTR, ETIMEDOUT: look again.
        let _ = futex(word, FUTEX_WAIT, value, Some(&left));
    }
}

/// Reaps the child `pid` of a clone with `flags` (see the module docs).
/// `ctid` is the `child_tid` word the kernel clears, if it is ours.
pub fn reap(flags: u64, pid: Pid, ctid: Option<&AtomicU32>) -> Reaped {
    if flags & CLONE_THREAD != 0 {
        return match ctid {
            Some(word) if flags & CLONE_CHILD_CLEARTID != 0 => {
                if join_cleared(word) {
                    Reaped::Joined
                } else {
                    Reaped::JoinTimedOut
                }
            }
            _ => Reaped::Unjoinable,
        };
    }
    loop {
        match wait4(pid as i32, WALL) {
            Ok((_, status)) => return Reaped::Exited(status),
            Err(Errno::EINTR) => {}
            Err(e) => return Reaped::WaitFailed(e),
        }
    }
}

/// Closes the pidfd the kernel stored in `word` for `CLONE_PIDFD` (if it
/// did); returns it.
pub fn close_pidfd(flags: u64, word: &AtomicU32) -> Option<i32> {
    let fd = word.load(Ordering::Acquire);
    if flags & CLONE_PIDFD == 0 || fd == UNWRITTEN {
        return None;
    }
    let _ = close(fd as i32);
    Some(fd as i32)
}

/// What a probe printed: `ok pid=N` (with `(how it ended)` if the child did
/// not end normally) or `err ENAME N`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeResult {
    /// The clone succeeded: the child and how it was reaped.
    Ok(Pid, Reaped, u64),
    /// The clone failed.
    Err(Errno),
}

impl ProbeResult {
    /// The shell status: 0 for a successful clone whose child ended
    /// normally, else 1.
    pub fn status(&self) -> i32 {
        match *self {
            ProbeResult::Ok(_, reaped, flags) if reaped.normal(flags) => 0,
            _ => 1,
        }
    }
}

impl fmt::Display for ProbeResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ProbeResult::Ok(pid, reaped, flags) => {
                write!(f, "ok pid={pid}")?;
                if !reaped.normal(flags) {
                    write!(f, " ({reaped})")?;
                }
                Ok(())
            }
            ProbeResult::Err(e) => write!(f, "err {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clone::{CLONE_PARENT, CLONE_SIGHAND, CLONE_VFORK, SIGCHLD, THREAD_FLAGS};

    #[test]
    fn clone_args_layout() {
        assert_eq!(core::mem::size_of::<CloneArgs>(), CLONE_ARGS_SIZE_VER2);
        let args = CloneArgs {
            flags: 1,
            exit_signal: 17,
            cgroup: 0x0102_0304_0506_0708,
            ..CloneArgs::default()
        };
        let bytes = args.to_bytes();
        assert_eq!(bytes[0], 1);
        assert_eq!(bytes[32], 17);
        assert_eq!(bytes[80..88], 0x0102_0304_0506_0708u64.to_ne_bytes());
    }

    #[test]
    fn result_lines() {
        let ok = ProbeResult::Ok(42, Reaped::Exited(WaitStatus(0)), SIGCHLD);
        assert_eq!(ok.to_string(), "ok pid=42");
        assert_eq!(ok.status(), 0);
        let err = ProbeResult::Err(Errno::EINVAL);
        assert_eq!(err.to_string(), "err EINVAL 22");
        assert_eq!(err.status(), 1);
        let killed = ProbeResult::Ok(7, Reaped::Exited(WaitStatus(11)), 0);
        assert_eq!(killed.to_string(), "ok pid=7 (child killed by signal 11)");
        assert_eq!(killed.status(), 1);
        let exited = ProbeResult::Ok(7, Reaped::Exited(WaitStatus(3 << 8)), 0);
        assert_eq!(exited.to_string(), "ok pid=7 (child exited with status 3)");
        let sibling = ProbeResult::Ok(8, Reaped::WaitFailed(Errno::ECHILD), CLONE_PARENT);
        assert_eq!(sibling.to_string(), "ok pid=8");
        let lost = ProbeResult::Ok(8, Reaped::WaitFailed(Errno::ECHILD), 0);
        assert_eq!(lost.to_string(), "ok pid=8 (wait4: ECHILD 10)");
        let thread = ProbeResult::Ok(9, Reaped::JoinTimedOut, THREAD_FLAGS);
        assert_eq!(
            thread.to_string(),
            "ok pid=9 (thread not joined after 5000 ms)"
        );
        assert!(Reaped::Unjoinable.normal(CLONE_THREAD));
        assert!(!Reaped::Unjoinable.area_free(CLONE_THREAD | CLONE_VM));
        assert!(Reaped::WaitFailed(Errno::ECHILD).area_free(CLONE_PARENT));
    }

    // The probes run on the host's Linux in the test binary (threads and
    // CLONE_VM children of the test process itself).
    #[test]
    fn host_probes() {
        for flags in [
            SIGCHLD,
            0,
            CLONE_VM | SIGCHLD,
            CLONE_VM | CLONE_VFORK | SIGCHLD,
            THREAD_FLAGS,
            CLONE_THREAD | CLONE_SIGHAND | CLONE_VM,
        ] {
            let area = CloneArea::new().unwrap();
            let pid = clone_exit0(flags, &area, area.tls()).unwrap();
            let reaped = reap(flags, pid, Some(area.ctid()));
            assert!(reaped.normal(flags), "{flags:#x}: {reaped:?}");
            if reaped.area_free(flags) {
                if flags & CLONE_VM != 0 {
                    assert_eq!(area.ran().load(Ordering::Acquire), 1, "{flags:#x}");
                }
            } else {
                area.leak();
            }
        }
        assert_eq!(
            clone_exit0(CLONE_SIGHAND, &CloneArea::new().unwrap(), 0),
            Err(Errno::EINVAL)
        );
        for flags in [0, CLONE_VM, CLONE_VM | CLONE_VFORK] {
            let area = CloneArea::new().unwrap();
            let args = CloneArgs {
                flags,
                exit_signal: SIGCHLD,
                stack: area.stack_base(),
                stack_size: area.stack_size(),
                ..CloneArgs::default()
            };
            let bytes = args.to_bytes();
            // SAFETY: no pointers in the args; `ran` is the area's.
            let pid =
                unsafe { clone3_exit0(bytes.as_ptr(), bytes.len(), area.ran().as_ptr()) }.unwrap();
            assert_eq!(reap(flags, pid, None), Reaped::Exited(WaitStatus(0)));
            if flags & CLONE_VM != 0 {
                assert_eq!(area.ran().load(Ordering::Acquire), 1, "{flags:#x}");
            }
        }
        let bytes = CloneArgs::default().to_bytes();
        // SAFETY: a size below VER0 is refused before anything is read.
        let small = unsafe { clone3_exit0(bytes.as_ptr(), 8, core::ptr::null_mut()) };
        assert_eq!(small, Err(Errno::EINVAL));
    }
}
