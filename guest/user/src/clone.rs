//! `clone` on a new stack, `vfork`, and joining threads.
//!
//! Both need assembly, for opposite reasons:
//! - A `clone` child with its own stack starts with `rsp` at that stack and
//!   every other register copied from the parent, in the middle of whatever
//!   function issued the system call. Compiled Rust cannot run there (its
//!   frame is on the parent's stack), so [`clone_raw`] stores the child's
//!   function and argument on the new stack before the call, and the child
//!   pops them and calls the function on a clean, aligned stack.
//! - A `vfork` child runs on the parent's stack while the parent sleeps.
//!   A wrapper function's return address lives on that stack, and the child
//!   overwrites it as soon as it calls anything after returning; the parent
//!   would then return through the child's garbage. `forkvm_user_vfork_raw`
//!   pops its return address into a register (each task has its own
//!   registers) before the system call and pushes it back after, the trick
//!   libc uses. [`vfork`] is always inlined so no other wrapper frame sits
//!   between it and the caller.

use core::sync::atomic::{AtomicU32, Ordering};

use crate::errno::Errno;
use crate::syscall::{check, futex, Pid, FUTEX_WAIT};

pub use forkvm_abi::linux::clone::{
    CloneFlags, CLONE_CHILD_CLEARTID, CLONE_CHILD_SETTID, CLONE_DETACHED, CLONE_FILES, CLONE_FS,
    CLONE_NEWNS, CLONE_PARENT, CLONE_PARENT_SETTID, CLONE_PIDFD, CLONE_PTRACE, CLONE_SETTLS,
    CLONE_SIGHAND, CLONE_SYSVSEM, CLONE_THREAD, CLONE_UNTRACED, CLONE_VFORK, CLONE_VM, CSIGNAL,
};
/// The exit signal most children use, as the low byte of clone's flags.
pub const SIGCHLD: u64 = forkvm_abi::linux::signal::SIGCHLD as u64;

/// The flags `pthread_create` passes (glibc), with `CLONE_SETTLS` and the
/// tid words: a thread sharing everything, joined through its tid word.
pub const THREAD_FLAGS: u64 = CLONE_VM
    | CLONE_FS
    | CLONE_FILES
    | CLONE_SIGHAND
    | CLONE_THREAD
    | CLONE_SYSVSEM
    | CLONE_SETTLS
    | CLONE_PARENT_SETTID
    | CLONE_CHILD_CLEARTID;

// extern "C" fn(flags rdi, stack rsi, ptid rdx, ctid rcx, tls r8, fn r9,
//               arg [rsp+8]) -> isize
core::arch::global_asm!(
    ".globl forkvm_user_clone_raw",
    ".type forkvm_user_clone_raw, @function",
    "forkvm_user_clone_raw:",
    // The child's stack: 16-byte aligned top, then fn and arg below it.
    "and rsi, -16",
    "sub rsi, 16",
    "mov [rsi], r9",
    "mov rax, [rsp + 8]",
    "mov [rsi + 8], rax",
    "mov r10, rcx",
    "mov eax, 56", // clone(flags, stack, ptid, ctid, tls)
    "syscall",
    "test rax, rax",
    "jz 2f",
    "ret", // parent (rax = tid) or error (rax = -errno)
    "2:",
    // Child, rsp = the new stack: no frames to return to.
    "xor ebp, ebp",
    "pop rax",
    "pop rdi",
    "call rax", // rsp is 16-byte aligned at the call
    "ud2",
    ".size forkvm_user_clone_raw, . - forkvm_user_clone_raw",
    "",
    ".globl forkvm_user_vfork_raw",
    ".type forkvm_user_vfork_raw, @function",
    "forkvm_user_vfork_raw:",
    "pop rdx", // our return address, out of the shared stack's way
    "mov eax, 58",
    "syscall",
    "push rdx",
    "ret",
    ".size forkvm_user_vfork_raw, . - forkvm_user_vfork_raw",
);

extern "C" {
    fn forkvm_user_clone_raw(
        flags: u64,
        child_stack: *mut u8,
        parent_tid: *mut u32,
        child_tid: *mut u32,
        tls: u64,
        child_fn: extern "C" fn(usize) -> !,
        arg: usize,
    ) -> isize;
    fn forkvm_user_vfork_raw() -> isize;
}

/// `clone(flags, child_stack, parent_tid, child_tid, tls)` with the child
/// running `child_fn(arg)` on `child_stack` (the stack's top, highest
/// address; aligned down to 16 bytes). Returns the child's tid in the
/// parent. The child must end with `exit`/`exit_group`: it has nothing to
/// return to.
///
/// # Safety
/// `child_stack` must be the top of writable memory that nothing else uses
/// until the child has exited (at least a few KiB; 16 bytes are written
/// before the call). `parent_tid`, `child_tid` and `tls` must be valid for
/// the flags given. Without `CLONE_VM` the child gets a copy of memory; with
/// it, `child_fn` must respect Rust's aliasing rules like any thread.
pub unsafe fn clone_raw(
    flags: u64,
    child_stack: *mut u8,
    parent_tid: *mut u32,
    child_tid: *mut u32,
    tls: u64,
    child_fn: extern "C" fn(usize) -> !,
    arg: usize,
) -> Result<Pid, Errno> {
    if child_stack.is_null() {
        return Err(Errno::EINVAL);
    }
    // SAFETY: the caller guarantees the stack and tid/tls pointers; the asm
    // keeps the child off our frames.
    let ret = unsafe {
        forkvm_user_clone_raw(
            flags,
            child_stack,
            parent_tid,
            child_tid,
            tls,
            child_fn,
            arg,
        )
    };
    check(ret).map(|tid| tid as Pid)
}

/// `vfork(2)`: `Ok(0)` in the child, which runs on this very stack and in
/// this memory while the parent is suspended; `Ok(pid)` in the parent once
/// the child has called `exit`/`execve`.
///
/// # Safety
/// The child may only call [`crate::syscall::exit`] /
/// [`crate::syscall::exit_group`] / [`crate::syscall::execve`] (inlined
/// system calls), and must not return from the function that called
/// `vfork`: anything else clobbers the parent's stack.
#[inline(always)]
pub unsafe fn vfork() -> Result<Pid, Errno> {
    // SAFETY: the caller obeys the vfork rules above.
    check(unsafe { forkvm_user_vfork_raw() }).map(|pid| pid as Pid)
}

/// Waits until the kernel has cleared a `CLONE_CHILD_CLEARTID` word, which
/// it does (followed by a futex wake) when that thread exits: how
/// `pthread_join` waits. The wait is a shared (not `FUTEX_PRIVATE`) futex
/// wait because the kernel's wake at thread exit is a shared wake.
pub fn wait_tid_cleared(word: &AtomicU32) {
    loop {
        let tid = word.load(Ordering::Acquire);
        if tid == 0 {
            return;
        }
        // EAGAIN (the word changed) and EINTR just mean: look again.
        let _ = futex(word, FUTEX_WAIT, tid, None);
    }
}
