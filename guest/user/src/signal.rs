//! Signal handlers without libc: `rt_sigaction` with the restorer x86-64
//! Linux requires (`SA_RESTORER`: the handler returns into
//! [`restore_rt`], which calls `rt_sigreturn`), `rt_sigprocmask`, and the
//! layout of what a handler receives (`siginfo_t`, `ucontext_t`).

use core::arch::global_asm;

use crate::errno::Errno;
use crate::syscall::{check, syscall0, syscall2, syscall3, syscall4};
use forkvm_abi::linux::signal as linux;

use crate::syscall::nr;

/// Signal numbers as the `int` the C API takes (the values are
/// `forkvm_abi::linux::signal`'s, which the guest kernel uses too).
#[allow(missing_docs)]
pub mod sig {
    use forkvm_abi::linux::signal as linux;

    pub const SIGHUP: i32 = linux::SIGHUP as i32;
    pub const SIGINT: i32 = linux::SIGINT as i32;
    pub const SIGQUIT: i32 = linux::SIGQUIT as i32;
    pub const SIGILL: i32 = linux::SIGILL as i32;
    pub const SIGTRAP: i32 = linux::SIGTRAP as i32;
    pub const SIGABRT: i32 = linux::SIGABRT as i32;
    pub const SIGBUS: i32 = linux::SIGBUS as i32;
    pub const SIGFPE: i32 = linux::SIGFPE as i32;
    pub const SIGKILL: i32 = linux::SIGKILL as i32;
    pub const SIGUSR1: i32 = linux::SIGUSR1 as i32;
    pub const SIGSEGV: i32 = linux::SIGSEGV as i32;
    pub const SIGUSR2: i32 = linux::SIGUSR2 as i32;
    pub const SIGPIPE: i32 = linux::SIGPIPE as i32;
    pub const SIGALRM: i32 = linux::SIGALRM as i32;
    pub const SIGVTALRM: i32 = linux::SIGVTALRM as i32;
    pub const SIGPROF: i32 = linux::SIGPROF as i32;
    pub const SIGTERM: i32 = linux::SIGTERM as i32;
    pub const SIGCHLD: i32 = linux::SIGCHLD as i32;
    pub const SIGCONT: i32 = linux::SIGCONT as i32;
    pub const SIGSTOP: i32 = linux::SIGSTOP as i32;
    pub const SIGTSTP: i32 = linux::SIGTSTP as i32;
    pub const SIGTTIN: i32 = linux::SIGTTIN as i32;
    pub const SIGTTOU: i32 = linux::SIGTTOU as i32;
    pub const SIGURG: i32 = linux::SIGURG as i32;
    pub const SIGWINCH: i32 = linux::SIGWINCH as i32;
    pub const SIGSYS: i32 = linux::SIGSYS as i32;
    /// The kernel's first real-time signal (the C library's is higher).
    pub const SIGRTMIN: i32 = linux::SIGRTMIN as i32;
    pub const SIGRTMAX: i32 = linux::SIGRTMAX as i32;
    /// Highest signal number (`_NSIG`).
    pub const NSIG: i32 = linux::NSIG as i32;
}

/// `sa_handler` value: the default action.
pub const SIG_DFL: usize = linux::SIG_DFL as usize;
/// `sa_handler` value: ignore the signal.
pub const SIG_IGN: usize = linux::SIG_IGN as usize;
pub use forkvm_abi::linux::signal::{
    SA_NODEFER, SA_ONSTACK, SA_RESETHAND, SA_RESTART, SA_RESTORER, SA_SIGINFO,
};

/// `ss_flags`: running on the alternate stack (or, when setting, the same
/// as 0).
pub const SS_ONSTACK: u32 = 1;
/// `ss_flags`: no alternate stack.
pub const SS_DISABLE: u32 = 2;
/// `ss_flags`: disarm the stack while a handler runs on it.
pub const SS_AUTODISARM: u32 = 1 << 31;
/// Offset of `uc_stack` (a [`StackT`]) in the ucontext a handler gets.
pub const UC_STACK: usize = 16;

/// `stack_t`: an alternate signal stack.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StackT {
    /// Lowest address.
    pub sp: usize,
    /// `SS_*` flags.
    pub flags: u32,
    /// Size in bytes.
    pub size: usize,
}

/// `sigaltstack(new, old)` with raw pointers (0 for none), for callers that
/// test bad ones.
pub fn sigaltstack_raw(new: usize, old: usize) -> Result<(), Errno> {
    // SAFETY: the kernel validates both pointers (EFAULT).
    check(unsafe { syscall2(nr::SIGALTSTACK, new, old) }).map(|_| ())
}

/// `sigaltstack`: installs `new` (if any) and returns the previous stack.
pub fn sigaltstack(new: Option<&StackT>) -> Result<StackT, Errno> {
    let mut old = StackT::default();
    sigaltstack_raw(
        new.map_or(0, |n| n as *const StackT as usize),
        &mut old as *mut StackT as usize,
    )?;
    Ok(old)
}

/// `rt_sigprocmask` `how`: add the set to the mask.
pub const SIG_BLOCK: usize = linux::SIG_BLOCK as usize;
/// `rt_sigprocmask` `how`: take the set out of the mask.
pub const SIG_UNBLOCK: usize = linux::SIG_UNBLOCK as usize;
/// `rt_sigprocmask` `how`: the set becomes the mask.
pub const SIG_SETMASK: usize = linux::SIG_SETMASK as usize;

/// `si_code`: sent by `kill`.
pub const SI_USER: i32 = 0;
/// `si_code` of SIGSEGV: no mapping at the address.
pub const SEGV_MAPERR: i32 = 1;
/// `si_code` of SIGSEGV: the mapping forbids the access.
pub const SEGV_ACCERR: i32 = 2;
/// `si_code` of SIGCHLD: the child exited.
pub use forkvm_abi::linux::signal::CLD_EXITED;

/// Byte offset of `uc_mcontext` (`struct sigcontext`) in the ucontext.
pub const UC_MCONTEXT: usize = 40;
/// Byte offset of `uc_sigmask` in the ucontext.
pub const UC_SIGMASK: usize = 296;
/// Index of a register in `uc_mcontext` (in 8-byte words): rip.
pub const REG_RIP: usize = 16;
/// Index of the `fpstate` pointer in `uc_mcontext`.
pub const REG_FPSTATE: usize = 23;

/// A handler taking `SA_SIGINFO` arguments.
pub type Handler = extern "C" fn(signo: i32, info: *mut SigInfo, ucontext: *mut u8);

/// The kernel's `struct sigaction` on x86-64.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SigAction {
    /// Handler address, [`SIG_DFL`] or [`SIG_IGN`].
    pub handler: usize,
    /// `SA_*` flags.
    pub flags: u64,
    /// Where the handler returns to.
    pub restorer: usize,
    /// Signals blocked while the handler runs.
    pub mask: u64,
}

/// `siginfo_t` (128 bytes): the first three ints and the union, as words.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SigInfo {
    /// Signal number.
    pub signo: i32,
    /// Always 0 here.
    pub errno: i32,
    /// How the signal was sent (`SI_USER`, `SEGV_ACCERR`...).
    pub code: i32,
    _pad: i32,
    fields: [u64; 14],
}

impl SigInfo {
    /// `si_pid` (kill, SIGCHLD).
    pub fn pid(&self) -> u32 {
        self.fields[0] as u32
    }
    /// `si_uid` (kill, SIGCHLD).
    pub fn uid(&self) -> u32 {
        (self.fields[0] >> 32) as u32
    }
    /// `si_addr` (faults).
    pub fn addr(&self) -> usize {
        self.fields[0] as usize
    }
    /// `si_status` (SIGCHLD): exit code or signal.
    pub fn status(&self) -> i32 {
        self.fields[1] as i32
    }
}

/// Bit of `signal` in a signal set.
pub fn sigmask(signal: i32) -> u64 {
    1 << (signal - 1)
}

extern "C" {
    /// Returns from a handler: `rt_sigreturn()` (the handler's `ret` pops
    /// this address; the frame is above).
    pub fn restore_rt();
}

global_asm!(
    r#"
    .section .text
    .global restore_rt
restore_rt:
    mov eax, {rt_sigreturn}
    syscall
    ud2
    "#,
    rt_sigreturn = const nr::RT_SIGRETURN,
);

/// `rt_sigaction(signal, act, oldact)` with the action as given.
pub fn sigaction_raw(signal: i32, action: Option<&SigAction>) -> Result<SigAction, Errno> {
    let mut old = SigAction::default();
    let new = action.map_or(0, |a| a as *const SigAction as usize);
    // SAFETY: the kernel reads one live SigAction and writes another.
    let ret = unsafe {
        syscall4(
            nr::RT_SIGACTION,
            signal as usize,
            new,
            &mut old as *mut SigAction as usize,
            8,
        )
    };
    check(ret).map(|_| old)
}

/// Installs `handler` for `signal` with `SA_SIGINFO | SA_RESTORER | flags`
/// and `mask` blocked while it runs; returns the previous action.
pub fn sigaction(signal: i32, handler: Handler, flags: u64, mask: u64) -> Result<SigAction, Errno> {
    let action = SigAction {
        handler: handler as usize,
        flags: SA_SIGINFO | SA_RESTORER | flags,
        restorer: restore_rt as *const () as usize,
        mask,
    };
    sigaction_raw(signal, Some(&action))
}

/// `rt_sigprocmask(how, set, oldset)`: returns the previous mask.
pub fn sigprocmask(how: usize, set: Option<u64>) -> Result<u64, Errno> {
    let mut old = 0u64;
    let new = set.as_ref().map_or(0, |s| s as *const u64 as usize);
    // SAFETY: the kernel reads one live u64 and writes another.
    let ret = unsafe {
        syscall4(
            nr::RT_SIGPROCMASK,
            how,
            new,
            &mut old as *mut u64 as usize,
            8,
        )
    };
    check(ret).map(|_| old)
}

/// The blocked signals now.
pub fn blocked() -> u64 {
    sigprocmask(SIG_BLOCK, None).unwrap_or(u64::MAX)
}

/// `pause()`: waits for a signal; after a handler, always `EINTR`.
pub fn pause() -> Errno {
    // SAFETY: no memory is involved.
    let ret = unsafe { syscall0(nr::PAUSE) };
    check(ret).err().unwrap_or(Errno(0))
}

/// `rt_sigsuspend(mask)`: waits for a signal with `mask` blocked, then
/// puts the old mask back; after a handler, always `EINTR`.
pub fn sigsuspend(mask: u64) -> Errno {
    // SAFETY: the kernel reads one live u64.
    let ret = unsafe { syscall2(nr::RT_SIGSUSPEND, &mask as *const u64 as usize, 8) };
    check(ret).err().unwrap_or(Errno(0))
}

/// `si_code`: sent by `sigqueue`/`rt_sigqueueinfo`.
pub const SI_QUEUE: i32 = -1;
/// `si_code`: sent by `tkill`/`tgkill`.
pub const SI_TKILL: i32 = -6;

impl SigInfo {
    /// A siginfo to queue with `rt_sigqueueinfo`: `code`, `si_pid`,
    /// `si_uid` and `si_value` (`si_int`/`si_ptr`), the rest zero.
    pub fn queued(code: i32, pid: u32, uid: u32, value: u64) -> SigInfo {
        let mut fields = [0u64; 14];
        fields[0] = u64::from(pid) | u64::from(uid) << 32;
        fields[1] = value;
        SigInfo {
            signo: 0,
            errno: 0,
            code,
            _pad: 0,
            fields,
        }
    }

    /// All zero (what `rt_sigtimedwait` fills in).
    pub fn zeroed() -> SigInfo {
        SigInfo::queued(0, 0, 0, 0)
    }

    /// `si_value` (`si_int` in its low half, `si_ptr`): what
    /// `rt_sigqueueinfo` sent.
    pub fn value(&self) -> u64 {
        self.fields[1]
    }

    /// Sets a raw byte of the 128 (past the fields the kernel keeps, to
    /// test its check that they are zero).
    pub fn set_byte(&mut self, offset: usize, byte: u8) {
        let word = &mut self.fields[(offset - 16) / 8];
        let shift = (offset % 8) * 8;
        *word = (*word & !(0xff << shift)) | u64::from(byte) << shift;
    }
}

/// `tkill(tid, sig)`: `signal` to one thread.
pub fn tkill(tid: i32, signal: i32) -> Result<(), Errno> {
    // SAFETY: no memory is involved.
    check(unsafe { syscall2(nr::TKILL, tid as usize, signal as usize) }).map(|_| ())
}

/// `tgkill(tgid, tid, sig)`: `signal` to thread `tid` of process `tgid`.
pub fn tgkill(tgid: i32, tid: i32, signal: i32) -> Result<(), Errno> {
    // SAFETY: no memory is involved.
    check(unsafe { syscall3(nr::TGKILL, tgid as usize, tid as usize, signal as usize) }).map(|_| ())
}

/// `rt_sigpending(set, sigsetsize)` with a raw pointer (for bad ones).
pub fn sigpending_raw(set: usize, sigsetsize: usize) -> Result<(), Errno> {
    // SAFETY: the kernel validates the pointer (EFAULT).
    check(unsafe { syscall2(nr::RT_SIGPENDING, set, sigsetsize) }).map(|_| ())
}

/// `rt_sigpending`: the pending signals this thread blocks.
pub fn sigpending() -> Result<u64, Errno> {
    let mut set = 0u64;
    sigpending_raw(&mut set as *mut u64 as usize, 8)?;
    Ok(set)
}

/// `rt_sigtimedwait(set, info, timeout, sigsetsize)` with raw pointers (0
/// for NULL): the signal number taken.
pub fn sigtimedwait_raw(
    set: usize,
    info: usize,
    timeout: usize,
    sigsetsize: usize,
) -> Result<i32, Errno> {
    // SAFETY: the kernel validates every pointer (EFAULT).
    check(unsafe { syscall4(nr::RT_SIGTIMEDWAIT, set, info, timeout, sigsetsize) })
        .map(|signal| signal as i32)
}

/// `rt_sigtimedwait`: takes a pending signal of `set`, waiting at most
/// `timeout` (forever if `None`); returns it and its siginfo.
pub fn sigtimedwait(
    set: u64,
    timeout: Option<&crate::syscall::Timespec>,
) -> Result<(i32, SigInfo), Errno> {
    let mut info = SigInfo::zeroed();
    let timeout = timeout.map_or(0, |t| t as *const crate::syscall::Timespec as usize);
    let signal = sigtimedwait_raw(
        &set as *const u64 as usize,
        &mut info as *mut SigInfo as usize,
        timeout,
        8,
    )?;
    Ok((signal, info))
}

/// `rt_sigqueueinfo(tgid, sig, info)` with a raw pointer (for bad ones).
pub fn sigqueueinfo_raw(tgid: i32, signal: i32, info: usize) -> Result<(), Errno> {
    // SAFETY: the kernel reads 128 bytes at most and validates the pointer.
    check(unsafe { syscall3(nr::RT_SIGQUEUEINFO, tgid as usize, signal as usize, info) })
        .map(|_| ())
}

/// `rt_sigqueueinfo(tgid, sig, info)`: `info` to process `tgid`.
pub fn sigqueueinfo(tgid: i32, signal: i32, info: &SigInfo) -> Result<(), Errno> {
    sigqueueinfo_raw(tgid, signal, info as *const SigInfo as usize)
}

/// `rt_tgsigqueueinfo(tgid, tid, sig, info)`: `info` to one thread.
pub fn tgsigqueueinfo(tgid: i32, tid: i32, signal: i32, info: &SigInfo) -> Result<(), Errno> {
    // SAFETY: the kernel reads one live siginfo.
    check(unsafe {
        syscall4(
            nr::RT_TGSIGQUEUEINFO,
            tgid as usize,
            tid as usize,
            signal as usize,
            info as *const SigInfo as usize,
        )
    })
    .map(|_| ())
}
