//! Signal delivery to handlers: the siginfo a handler gets, the mask while
//! it runs, SA_NODEFER and SA_RESETHAND, `rt_sigreturn` restoring every
//! register and the SSE state, a SIGSEGV handler that fixes the fault,
//! interrupted system calls (EINTR, or restarted with SA_RESTART), SIGCHLD,
//! and the SIGSEGV that a frame which cannot be built turns into.
//!
//! Handlers record what they saw in atomics; each scenario installs its
//! handlers through a [`Handled`] guard, which restores the previous action
//! and the signal mask, so the scenarios leave the process as they found it.

use forkvm_user::signal::{
    blocked, pause, sig, sigaction, sigaction_raw, sigmask, sigprocmask, sigsuspend, Handler,
    SigAction, SigInfo, CLD_EXITED, REG_FPSTATE, SA_NODEFER, SA_RESETHAND, SA_RESTART, SEGV_ACCERR,
    SEGV_MAPERR, SIG_DFL, SIG_SETMASK, SI_USER, UC_MCONTEXT, UC_SIGMASK,
};
use forkvm_user::syscall::getuid;

use super::*;

pub const SCENARIOS: &[(&str, Scenario)] = &[
    ("signal-handler-siginfo", signal_handler_siginfo),
    ("signal-interrupts-spinner", signal_interrupts_spinner),
    ("signal-mask-in-handler", signal_mask_in_handler),
    ("signal-nodefer", signal_nodefer),
    ("signal-resethand", signal_resethand),
    ("signal-sigreturn-registers", signal_sigreturn_registers),
    ("signal-segv-handler-fixes", signal_segv_handler_fixes),
    ("signal-segv-maperr", signal_segv_maperr),
    ("signal-blocked-segv-kills", signal_blocked_segv_kills),
    ("signal-ignored-segv-kills", signal_ignored_segv_kills),
    ("signal-nanosleep-eintr", signal_nanosleep_eintr),
    ("signal-pipe-read-eintr", signal_pipe_read_eintr),
    ("signal-pipe-read-restart", signal_pipe_read_restart),
    ("signal-wait4-eintr", signal_wait4_eintr),
    ("signal-wait4-restart", signal_wait4_restart),
    ("signal-sigchld-handler", signal_sigchld_handler),
    ("signal-pause-eintr", signal_pause_eintr),
    ("signal-futex-wait-eintr", signal_futex_wait_eintr),
    ("signal-sigsuspend-mask", signal_sigsuspend_mask),
    ("signal-sigreturn-bad-frame", signal_sigreturn_bad_frame),
    ("signal-bad-stack-segv", signal_bad_stack_segv),
    ("signal-no-restorer-segv", signal_no_restorer_segv),
    ("jump-to-kernel-address-segv", jump_to_kernel_address_segv),
    ("futex-wait-timeout", futex_wait_timeout),
    ("kill-zombie", kill_zombie),
    ("exec-kills-other-threads", exec_kills_other_threads),
    ("exec-unshares-files", exec_unshares_files),
    ("exec-closes-cloexec", exec_closes_cloexec),
];

use forkvm_user::signal::sig::SIGUSR1;
use forkvm_user::signal::sig::SIGUSR2;

/// What the last handler call saw, and how many calls there were.
static CALLS: AtomicU32 = AtomicU32::new(0);
static SEEN_SIGNO: AtomicI32 = AtomicI32::new(0);
static SEEN_CODE: AtomicI32 = AtomicI32::new(-1);
static SEEN_PID: AtomicU32 = AtomicU32::new(0);
static SEEN_UID: AtomicU32 = AtomicU32::new(0);
static SEEN_STATUS: AtomicI32 = AtomicI32::new(0);
static SEEN_ADDR: AtomicUsize = AtomicUsize::new(0);
static SEEN_INFO_SIGNO: AtomicI32 = AtomicI32::new(0);
static SEEN_MASK: AtomicU64 = AtomicU64::new(0);
static SEEN_UC_MASK: AtomicU64 = AtomicU64::new(0);
static SEEN_UC_ADDR: AtomicUsize = AtomicUsize::new(0);
static DEPTH: AtomicU32 = AtomicU32::new(0);
static MAX_DEPTH: AtomicU32 = AtomicU32::new(0);

fn reset_seen() {
    CALLS.store(0, Ordering::SeqCst);
    SEEN_SIGNO.store(0, Ordering::SeqCst);
    SEEN_CODE.store(-1, Ordering::SeqCst);
    SEEN_PID.store(0, Ordering::SeqCst);
    SEEN_UID.store(u32::MAX, Ordering::SeqCst);
    SEEN_STATUS.store(0, Ordering::SeqCst);
    SEEN_ADDR.store(0, Ordering::SeqCst);
    SEEN_INFO_SIGNO.store(0, Ordering::SeqCst);
    SEEN_MASK.store(0, Ordering::SeqCst);
    SEEN_UC_MASK.store(0, Ordering::SeqCst);
    SEEN_UC_ADDR.store(0, Ordering::SeqCst);
    DEPTH.store(0, Ordering::SeqCst);
    MAX_DEPTH.store(0, Ordering::SeqCst);
}

/// Records its arguments, the mask it runs with and the mask saved in the
/// ucontext (the one `rt_sigreturn` restores).
extern "C" fn record(signo: i32, info: *mut SigInfo, uc: *mut u8) {
    // SAFETY: the kernel passes a valid siginfo and ucontext for the call.
    let (info, uc_mask) = unsafe { (*info, uc.add(UC_SIGMASK).cast::<u64>().read()) };
    SEEN_SIGNO.store(signo, Ordering::SeqCst);
    SEEN_INFO_SIGNO.store(info.signo, Ordering::SeqCst);
    SEEN_CODE.store(info.code, Ordering::SeqCst);
    SEEN_PID.store(info.pid(), Ordering::SeqCst);
    SEEN_UID.store(info.uid(), Ordering::SeqCst);
    SEEN_STATUS.store(info.status(), Ordering::SeqCst);
    SEEN_ADDR.store(info.addr(), Ordering::SeqCst);
    SEEN_MASK.store(blocked(), Ordering::SeqCst);
    SEEN_UC_MASK.store(uc_mask, Ordering::SeqCst);
    SEEN_UC_ADDR.store(uc as usize, Ordering::SeqCst);
    CALLS.fetch_add(1, Ordering::SeqCst);
}

/// A handler installed for one scenario: dropping it restores the previous
/// action and the mask the scenario started with.
struct Handled {
    signal: i32,
    old: SigAction,
    mask: u64,
}

impl Handled {
    fn install(signal: i32, handler: Handler, flags: u64, mask: u64) -> Result<Handled, Msg> {
        let old_mask = blocked();
        let old = sigaction(signal, handler, flags, mask).ctx("rt_sigaction")?;
        Ok(Handled {
            signal,
            old,
            mask: old_mask,
        })
    }
}

impl Drop for Handled {
    fn drop(&mut self) {
        let _ = sigaction_raw(self.signal, Some(&self.old));
        let _ = sigprocmask(SIG_SETMASK, Some(self.mask));
    }
}

/// Sends `signal` to this process; a handler runs before `kill` returns.
fn raise(signal: i32) -> Outcome {
    kill(getpid() as i32, signal).ctx("kill(self)")
}

/// `kill` from another process: the handler gets si_code SI_USER and the
/// sender's pid and uid, and the ucontext's mask is the one before.
fn signal_handler_siginfo(_ctx: &Ctx) -> Outcome {
    reset_seen();
    let _h = Handled::install(SIGUSR1, record, 0, 0)?;
    let before = blocked();
    let parent = getpid();
    let child = Child::spawn(|| match kill(getppid() as i32, SIGUSR1) {
        Ok(()) => 0,
        Err(_) => 1,
    })?;
    let pid = child.pid();
    let status = wait_restarting(child)?;
    expect_exit("child", status, 0)?;
    ensure!(
        CALLS.load(Ordering::SeqCst) == 1,
        "handler ran {} times, expected 1",
        CALLS.load(Ordering::SeqCst)
    );
    let (signo, info_signo, code) = (
        SEEN_SIGNO.load(Ordering::SeqCst),
        SEEN_INFO_SIGNO.load(Ordering::SeqCst),
        SEEN_CODE.load(Ordering::SeqCst),
    );
    ensure!(
        signo == SIGUSR1 && info_signo == SIGUSR1 && code == SI_USER,
        "handler got signo {signo}, si_signo {info_signo}, si_code {code}; expected {SIGUSR1}, {SIGUSR1}, SI_USER"
    );
    let (got_pid, got_uid) = (
        SEEN_PID.load(Ordering::SeqCst),
        SEEN_UID.load(Ordering::SeqCst),
    );
    ensure!(
        got_pid == pid && got_uid == getuid(),
        "si_pid {got_pid}, si_uid {got_uid}; expected {pid}, {} (parent {parent})",
        getuid()
    );
    let uc_mask = SEEN_UC_MASK.load(Ordering::SeqCst);
    ensure!(
        uc_mask == before,
        "uc_sigmask {uc_mask:#x}, expected the mask before the signal {before:#x}"
    );
    // The frame starts 8 bytes below a 16-byte boundary (the handler's
    // stack as after a call), so the ucontext 8 bytes into it is aligned.
    let uc = SEEN_UC_ADDR.load(Ordering::SeqCst);
    ensure!(
        uc.is_multiple_of(16),
        "ucontext at {uc:#x}: not 16-byte aligned"
    );
    Ok(())
}

/// Reaps `child` with blocking `wait4`, calling it again after EINTR (a
/// handler without SA_RESTART interrupts it).
fn wait_restarting(child: Child) -> Result<WaitStatus, Msg> {
    let pid = child.pid();
    for _ in 0..100 {
        match wait4(pid as i32, 0) {
            Ok((got, status)) if got == pid => {
                child.reaped();
                return Ok(status);
            }
            Ok((got, _)) => return Err(msg!("wait4({pid}) returned pid {got}")),
            Err(Errno::EINTR) => {}
            Err(e) => return Err(msg!("wait4({pid}): {e}")),
        }
    }
    Err(msg!("wait4({pid}): EINTR 100 times"))
}

/// A process that makes no system call gets its handler too (delivered
/// on the return from the interrupt that preempts it): the child spins in
/// user mode until its handler has run, then exits 0 (if it never runs,
/// `wait_bounded` kills the child and the scenario fails).
fn signal_interrupts_spinner(_ctx: &Ctx) -> Outcome {
    let (r, w) = pipe()?;
    let child = Child::spawn(|| {
        reset_seen();
        if sigaction(SIGUSR1, record, 0, 0).is_err() || write(w.raw(), b"r") != Ok(1) {
            return 1;
        }
        while CALLS.load(Ordering::SeqCst) == 0 {
            core::hint::spin_loop();
        }
        0
    })?;
    let mut ready = [0u8];
    ensure!(
        read_full(r.raw(), &mut ready)? == 1,
        "the child did not install its handler"
    );
    kill(child.pid() as i32, SIGUSR1).ctx("kill")?;
    let status = child.wait_bounded("spinning child")?;
    expect_exit("spinning child", status, 0)
}

/// Raises SIGUSR1 again from its first call: blocked then, it runs again
/// once the first call has returned.
extern "C" fn record_and_reraise(signo: i32, info: *mut SigInfo, uc: *mut u8) {
    let depth = DEPTH.fetch_add(1, Ordering::SeqCst) + 1;
    MAX_DEPTH.fetch_max(depth, Ordering::SeqCst);
    let first = CALLS.load(Ordering::SeqCst) == 0;
    record(signo, info, uc);
    if first {
        let _ = kill(getpid() as i32, signo);
    }
    DEPTH.fetch_sub(1, Ordering::SeqCst);
}

/// During the handler, sa_mask and the signal itself are blocked; a second
/// instance waits until the handler returns; afterwards the mask is back.
fn signal_mask_in_handler(_ctx: &Ctx) -> Outcome {
    reset_seen();
    let _h = Handled::install(SIGUSR1, record_and_reraise, 0, sigmask(SIGUSR2))?;
    let before = blocked();
    raise(SIGUSR1)?;
    let in_handler = SEEN_MASK.load(Ordering::SeqCst);
    let want = before | sigmask(SIGUSR1) | sigmask(SIGUSR2);
    ensure!(
        in_handler == want,
        "mask in the handler {in_handler:#x}, expected {want:#x}"
    );
    let (calls, depth) = (
        CALLS.load(Ordering::SeqCst),
        MAX_DEPTH.load(Ordering::SeqCst),
    );
    ensure!(
        calls == 2 && depth == 1,
        "the re-raised signal: {calls} calls, nesting {depth}; expected 2 calls, not nested"
    );
    let after = blocked();
    ensure!(
        after == before,
        "mask after {after:#x}, expected {before:#x}"
    );
    Ok(())
}

/// SA_NODEFER: the signal is not blocked in its handler, so raising it
/// there runs the handler again at once, nested.
fn signal_nodefer(_ctx: &Ctx) -> Outcome {
    reset_seen();
    let _h = Handled::install(SIGUSR1, record_and_reraise, SA_NODEFER, 0)?;
    let before = blocked();
    raise(SIGUSR1)?;
    let (calls, depth) = (
        CALLS.load(Ordering::SeqCst),
        MAX_DEPTH.load(Ordering::SeqCst),
    );
    ensure!(
        calls == 2 && depth == 2,
        "{calls} calls, nesting {depth}; expected 2 calls, nested"
    );
    let in_handler = SEEN_MASK.load(Ordering::SeqCst);
    ensure!(
        in_handler & sigmask(SIGUSR1) == 0,
        "SIGUSR1 blocked in its SA_NODEFER handler (mask {in_handler:#x})"
    );
    ensure!(blocked() == before, "mask not restored after the handler");
    Ok(())
}

/// SA_RESETHAND: the action is SIG_DFL once the handler has run, so a
/// second signal kills (in a child).
fn signal_resethand(_ctx: &Ctx) -> Outcome {
    let child = Child::spawn(|| {
        reset_seen();
        if sigaction(SIGUSR1, record, SA_RESETHAND, 0).is_err() || raise(SIGUSR1).is_err() {
            return 1;
        }
        if CALLS.load(Ordering::SeqCst) != 1 {
            return 2;
        }
        match sigaction_raw(SIGUSR1, None) {
            Ok(action) if action.handler == SIG_DFL => {}
            _ => return 3,
        }
        let _ = raise(SIGUSR1);
        4
    })?;
    let status = child.wait_bounded("SA_RESETHAND child")?;
    ensure!(
        !status.exited() || status.exit_status() != 1,
        "child: rt_sigaction or kill failed"
    );
    ensure!(
        !status.exited() || status.exit_status() != 2,
        "child: the handler did not run once"
    );
    ensure!(
        !status.exited() || status.exit_status() != 3,
        "child: the action is not SIG_DFL after the handler"
    );
    expect_signal("second SIGUSR1", status, SIGUSR1)
}

/// What the SSE handler saw: xmm5's low word and MXCSR on entry.
static HANDLER_XMM5: AtomicU64 = AtomicU64::new(u64::MAX);
static HANDLER_MXCSR: AtomicU32 = AtomicU32::new(0);
static HANDLER_FPSTATE: AtomicU64 = AtomicU64::new(0);

/// Checks the clean FPU state a handler starts with, then clobbers every
/// xmm register and MXCSR: `rt_sigreturn` must bring the old ones back.
extern "C" fn clobber_sse(signo: i32, info: *mut SigInfo, uc: *mut u8) {
    let xmm5: u64;
    let mut mxcsr: u32 = 0;
    let pattern = [0xdead_beef_dead_beef_u64; 2];
    let default_mxcsr: u32 = 0x1f80;
    // SAFETY: reads xmm5 and MXCSR into locals, then overwrites the SSE
    // registers (declared clobbered) from a local array and sets MXCSR to
    // its default.
    unsafe {
        asm!(
            "movq {x}, xmm5",
            "stmxcsr [{m}]",
            x = out(reg) xmm5,
            m = in(reg) &mut mxcsr as *mut u32,
            options(nostack),
        );
        asm!(
            "movdqu xmm0, [{p}]", "movdqu xmm1, [{p}]", "movdqu xmm2, [{p}]", "movdqu xmm3, [{p}]",
            "movdqu xmm4, [{p}]", "movdqu xmm5, [{p}]", "movdqu xmm6, [{p}]", "movdqu xmm7, [{p}]",
            "movdqu xmm8, [{p}]", "movdqu xmm9, [{p}]", "movdqu xmm10, [{p}]", "movdqu xmm11, [{p}]",
            "movdqu xmm12, [{p}]", "movdqu xmm13, [{p}]", "movdqu xmm14, [{p}]", "movdqu xmm15, [{p}]",
            "ldmxcsr [{m}]",
            p = in(reg) pattern.as_ptr(),
            m = in(reg) &default_mxcsr as *const u32,
            out("xmm0") _, out("xmm1") _, out("xmm2") _, out("xmm3") _,
            out("xmm4") _, out("xmm5") _, out("xmm6") _, out("xmm7") _,
            out("xmm8") _, out("xmm9") _, out("xmm10") _, out("xmm11") _,
            out("xmm12") _, out("xmm13") _, out("xmm14") _, out("xmm15") _,
            options(nostack),
        );
    }
    // SAFETY: the kernel passes a valid ucontext.
    let fpstate = unsafe { uc.add(UC_MCONTEXT + REG_FPSTATE * 8).cast::<u64>().read() };
    HANDLER_FPSTATE.store(fpstate, Ordering::SeqCst);
    HANDLER_XMM5.store(xmm5, Ordering::SeqCst);
    HANDLER_MXCSR.store(mxcsr, Ordering::SeqCst);
    record(signo, info, uc);
}

/// A signal delivered on return from `kill`: afterwards every general
/// register the system call preserves, all sixteen xmm registers and MXCSR
/// are what they were, though the handler clobbered them; the handler
/// started with a clean SSE state (xmm zero, default MXCSR) and a
/// non-NULL fpstate pointer.
fn signal_sigreturn_registers(_ctx: &Ctx) -> Outcome {
    reset_seen();
    let _h = Handled::install(SIGUSR1, clobber_sse, 0, 0)?;
    let mut input = [[0u64; 2]; 16];
    for (i, reg) in input.iter_mut().enumerate() {
        *reg = [0x0101_0101_0101_0101 * (i as u64 + 1), !(i as u64)];
    }
    let mut output = [[0u64; 2]; 16];
    // MXCSR in, out, and this function's own (saved around the test).
    // Round toward zero, all exceptions masked: not the default 0x1f80.
    let mxcsr_in: u32 = 0x7f80;
    let mut mxcsr = [mxcsr_in, 0, 0];
    let pid = getpid() as usize;
    let (mut rdi, mut rsi, mut rdx, mut r8, mut r9, mut r10) = (
        pid,
        SIGUSR1 as usize,
        0x1111_usize,
        0x8888_usize,
        0x9999_usize,
        0x1010_usize,
    );
    let ret: isize;
    // SAFETY: loads the xmm registers and MXCSR from `input`, makes the
    // kill system call, stores them into `output`; every register touched
    // is declared.
    unsafe {
        asm!(
            "stmxcsr [{mx} + 8]",
            "ldmxcsr [{mx}]",
            "movdqu xmm0, [{i} + 0]", "movdqu xmm1, [{i} + 16]", "movdqu xmm2, [{i} + 32]",
            "movdqu xmm3, [{i} + 48]", "movdqu xmm4, [{i} + 64]", "movdqu xmm5, [{i} + 80]",
            "movdqu xmm6, [{i} + 96]", "movdqu xmm7, [{i} + 112]", "movdqu xmm8, [{i} + 128]",
            "movdqu xmm9, [{i} + 144]", "movdqu xmm10, [{i} + 160]", "movdqu xmm11, [{i} + 176]",
            "movdqu xmm12, [{i} + 192]", "movdqu xmm13, [{i} + 208]", "movdqu xmm14, [{i} + 224]",
            "movdqu xmm15, [{i} + 240]",
            "syscall",
            "movdqu [{o} + 0], xmm0", "movdqu [{o} + 16], xmm1", "movdqu [{o} + 32], xmm2",
            "movdqu [{o} + 48], xmm3", "movdqu [{o} + 64], xmm4", "movdqu [{o} + 80], xmm5",
            "movdqu [{o} + 96], xmm6", "movdqu [{o} + 112], xmm7", "movdqu [{o} + 128], xmm8",
            "movdqu [{o} + 144], xmm9", "movdqu [{o} + 160], xmm10", "movdqu [{o} + 176], xmm11",
            "movdqu [{o} + 192], xmm12", "movdqu [{o} + 208], xmm13", "movdqu [{o} + 224], xmm14",
            "movdqu [{o} + 240], xmm15",
            "stmxcsr [{mx} + 4]",
            "ldmxcsr [{mx} + 8]",
            i = in(reg) input.as_ptr(),
            o = in(reg) output.as_mut_ptr(),
            mx = in(reg) mxcsr.as_mut_ptr(),
            inlateout("rax") nr::KILL as isize => ret,
            inout("rdi") rdi, inout("rsi") rsi, inout("rdx") rdx,
            inout("r8") r8, inout("r9") r9, inout("r10") r10,
            // Not lateout: the pointers above must not live in them.
            out("rcx") _, out("r11") _,
            out("xmm0") _, out("xmm1") _, out("xmm2") _, out("xmm3") _,
            out("xmm4") _, out("xmm5") _, out("xmm6") _, out("xmm7") _,
            out("xmm8") _, out("xmm9") _, out("xmm10") _, out("xmm11") _,
            out("xmm12") _, out("xmm13") _, out("xmm14") _, out("xmm15") _,
        );
    }
    ensure!(ret == 0, "kill returned {}", Ret(ret));
    ensure!(
        CALLS.load(Ordering::SeqCst) == 1,
        "the handler did not run on return from kill"
    );
    for (i, (got, want)) in output.iter().zip(&input).enumerate() {
        ensure!(
            got == want,
            "xmm{i} after the handler {:#x}:{:#x}, expected {:#x}:{:#x}",
            got[1],
            got[0],
            want[1],
            want[0]
        );
    }
    let mxcsr_out = mxcsr[1];
    ensure!(
        mxcsr_out == mxcsr_in,
        "MXCSR after the handler {mxcsr_out:#x}, expected {mxcsr_in:#x}"
    );
    let regs = [rdi, rsi, rdx, r8, r9, r10];
    let want = [pid, SIGUSR1 as usize, 0x1111, 0x8888, 0x9999, 0x1010];
    ensure!(
        regs == want,
        "rdi, rsi, rdx, r8, r9, r10 after the handler {regs:x?}, expected {want:x?}"
    );
    let (xmm5, mxcsr) = (
        HANDLER_XMM5.load(Ordering::SeqCst),
        HANDLER_MXCSR.load(Ordering::SeqCst),
    );
    ensure!(
        xmm5 == 0 && mxcsr == 0x1f80,
        "the handler started with xmm5 {xmm5:#x} and MXCSR {mxcsr:#x}, expected 0 and 0x1f80"
    );
    ensure!(
        HANDLER_FPSTATE.load(Ordering::SeqCst) != 0,
        "uc_mcontext.fpstate is NULL"
    );
    Ok(())
}

/// The page a SIGSEGV handler makes writable (0: none).
static FIX_PAGE: AtomicUsize = AtomicUsize::new(0);

extern "C" fn fix_segv(signo: i32, info: *mut SigInfo, uc: *mut u8) {
    record(signo, info, uc);
    let page = FIX_PAGE.load(Ordering::SeqCst);
    // SAFETY: the page is the scenario's own mapping.
    if page == 0 || unsafe { mprotect(page as *mut u8, PAGE, PROT_READ | PROT_WRITE) }.is_err() {
        exit_group(99);
    }
}

/// A write to a read-only page: the SIGSEGV handler gets SEGV_ACCERR and
/// the address, makes the page writable and returns; the write is
/// executed again and succeeds.
fn signal_segv_handler_fixes(_ctx: &Ctx) -> Outcome {
    reset_seen();
    let map = Mapping::new(PAGE)?;
    // SAFETY: our own mapping.
    unsafe { mprotect(map.ptr, PAGE, PROT_READ) }.ctx("mprotect(PROT_READ)")?;
    FIX_PAGE.store(map.addr(), Ordering::SeqCst);
    let _h = Handled::install(sig::SIGSEGV, fix_segv, 0, 0)?;
    map.set(100, 42);
    FIX_PAGE.store(0, Ordering::SeqCst);
    ensure!(
        CALLS.load(Ordering::SeqCst) == 1,
        "SIGSEGV handler ran {} times, expected 1",
        CALLS.load(Ordering::SeqCst)
    );
    let (code, addr) = (
        SEEN_CODE.load(Ordering::SeqCst),
        SEEN_ADDR.load(Ordering::SeqCst),
    );
    ensure!(
        code == SEGV_ACCERR && addr == map.addr() + 100,
        "si_code {code}, si_addr {addr:#x}; expected SEGV_ACCERR ({SEGV_ACCERR}), {:#x}",
        map.addr() + 100
    );
    ensure!(map.get(100) == 42, "the re-executed write did not happen");
    Ok(())
}

extern "C" fn exit_with_segv_code(_signo: i32, info: *mut SigInfo, _uc: *mut u8) {
    // SAFETY: the kernel passes a valid siginfo.
    let info = unsafe { *info };
    let expected = FIX_PAGE.load(Ordering::SeqCst);
    exit_group(info.code * 10 + i32::from(info.addr() == expected));
}

/// A read of an unmapped address: si_code SEGV_MAPERR with the address
/// (the child's handler exits with 10 * si_code + (si_addr right)).
fn signal_segv_maperr(_ctx: &Ctx) -> Outcome {
    let hole = Mapping::new(PAGE)?.unmap()?;
    let child = Child::spawn(|| {
        FIX_PAGE.store(hole + 8, Ordering::SeqCst);
        if sigaction(sig::SIGSEGV, exit_with_segv_code, 0, 0).is_err() {
            return 1;
        }
        // SAFETY: deliberately faults; the handler exits.
        unsafe { ((hole + 8) as *const u8).read_volatile() };
        2
    })?;
    let status = child.wait_bounded("faulting child")?;
    expect_exit("SIGSEGV handler", status, SEGV_MAPERR * 10 + 1)
}

/// A fault while SIGSEGV is blocked kills, handler or not (Linux
/// `force_sig_info`).
fn signal_blocked_segv_kills(_ctx: &Ctx) -> Outcome {
    let hole = Mapping::new(PAGE)?.unmap()?;
    let child = Child::spawn(|| {
        if sigaction(sig::SIGSEGV, exit_with_segv_code, 0, 0).is_err()
            || sigprocmask(SIG_SETMASK, Some(sigmask(sig::SIGSEGV))).is_err()
        {
            return 1;
        }
        // SAFETY: deliberately faults.
        unsafe { (hole as *const u8).read_volatile() };
        2
    })?;
    let status = child.wait_bounded("faulting child")?;
    expect_signal("fault with SIGSEGV blocked", status, SIGSEGV)
}

/// A fault while SIGSEGV is ignored kills too: SIG_IGN does not apply to
/// a signal the kernel forces.
fn signal_ignored_segv_kills(_ctx: &Ctx) -> Outcome {
    let hole = Mapping::new(PAGE)?.unmap()?;
    let child = Child::spawn(|| {
        let ignore = SigAction {
            handler: forkvm_user::signal::SIG_IGN,
            ..SigAction::default()
        };
        if sigaction_raw(sig::SIGSEGV, Some(&ignore)).is_err() {
            return 1;
        }
        // SAFETY: deliberately faults.
        unsafe { (hole as *const u8).read_volatile() };
        2
    })?;
    let status = child.wait_bounded("faulting child")?;
    expect_signal("fault with SIGSEGV ignored", status, SIGSEGV)
}

/// Starts a child that sends SIGUSR1 to this process after `delay_ms`,
/// then (if `then_write` is given) writes one byte to it `late_ms` later.
fn signal_me_later(delay_ms: u64, then_write: Option<(i32, u64)>) -> Result<Child, Msg> {
    let parent = getpid() as i32;
    Child::spawn(move || {
        sleep_ns(delay_ms * MS);
        if kill(parent, SIGUSR1).is_err() {
            return 1;
        }
        if let Some((fd, late_ms)) = then_write {
            sleep_ns(late_ms * MS);
            if write(fd, b"x") != Ok(1) {
                return 2;
            }
        }
        0
    })
}

/// nanosleep interrupted by a handled signal: EINTR with the time left.
fn signal_nanosleep_eintr(_ctx: &Ctx) -> Outcome {
    reset_seen();
    let _h = Handled::install(SIGUSR1, record, SA_RESTART, 0)?;
    let child = signal_me_later(50, None)?;
    let asked = Timespec::from_nanos(1_500 * MS);
    let result = nanosleep(asked);
    let status = wait_restarting(child)?;
    expect_exit("signalling child", status, 0)?;
    ensure!(CALLS.load(Ordering::SeqCst) == 1, "the handler did not run");
    match result {
        Err((Errno::EINTR, left)) => {
            ensure!(
                left.as_nanos() > 0 && left.as_nanos() < asked.as_nanos(),
                "EINTR with {} ns left of {} ns",
                left.as_nanos(),
                asked.as_nanos()
            );
            Ok(())
        }
        Err((e, _)) => Err(msg!("nanosleep: {e}, expected EINTR")),
        Ok(()) => Err(msg!(
            "nanosleep slept its full time (SA_RESTART does not restart it: EINTR expected)"
        )),
    }
}

/// A pipe read that a handler without SA_RESTART interrupts returns EINTR
/// (the byte the child writes later is not waited for).
fn signal_pipe_read_eintr(_ctx: &Ctx) -> Outcome {
    reset_seen();
    let _h = Handled::install(SIGUSR1, record, 0, 0)?;
    let (r, w) = pipe()?;
    let child = signal_me_later(50, Some((w.raw(), 400)))?;
    let mut byte = [0u8];
    let result = read(r.raw(), &mut byte);
    let status = wait_restarting(child)?;
    expect_exit("signalling child", status, 0)?;
    ensure!(CALLS.load(Ordering::SeqCst) == 1, "the handler did not run");
    ensure!(
        result == Err(Errno::EINTR),
        "read: {result:?}, expected EINTR"
    );
    Ok(())
}

/// The same read with SA_RESTART: restarted after the handler, it returns
/// the byte written later.
fn signal_pipe_read_restart(_ctx: &Ctx) -> Outcome {
    reset_seen();
    let _h = Handled::install(SIGUSR1, record, SA_RESTART, 0)?;
    let (r, w) = pipe()?;
    let child = signal_me_later(50, Some((w.raw(), 100)))?;
    let mut byte = [0u8];
    let result = read(r.raw(), &mut byte);
    let status = wait_restarting(child)?;
    expect_exit("signalling child", status, 0)?;
    ensure!(CALLS.load(Ordering::SeqCst) == 1, "the handler did not run");
    ensure!(
        result == Ok(1) && byte[0] == b'x',
        "read: {result:?} ({:?}), expected the byte written after the signal",
        byte[0] as char
    );
    Ok(())
}

/// Blocking wait4 interrupted by a handler without SA_RESTART: EINTR.
fn signal_wait4_eintr(_ctx: &Ctx) -> Outcome {
    reset_seen();
    let _h = Handled::install(SIGUSR1, record, 0, 0)?;
    let parent = getpid() as i32;
    let child = Child::spawn(move || {
        sleep_ns(50 * MS);
        let _ = kill(parent, SIGUSR1);
        sleep_ns(300 * MS);
        7
    })?;
    let result = wait4(child.pid() as i32, 0);
    ensure!(CALLS.load(Ordering::SeqCst) == 1, "the handler did not run");
    ensure!(
        matches!(result, Err(Errno::EINTR)),
        "wait4: {result:?}, expected EINTR"
    );
    let status = wait_restarting(child)?;
    expect_exit("child", status, 7)
}

/// The same with SA_RESTART: wait4 is restarted and reaps the child.
fn signal_wait4_restart(_ctx: &Ctx) -> Outcome {
    reset_seen();
    let _h = Handled::install(SIGUSR1, record, SA_RESTART, 0)?;
    let parent = getpid() as i32;
    let child = Child::spawn(move || {
        sleep_ns(50 * MS);
        let _ = kill(parent, SIGUSR1);
        sleep_ns(100 * MS);
        7
    })?;
    let pid = child.pid();
    let result = wait4(pid as i32, 0);
    ensure!(CALLS.load(Ordering::SeqCst) == 1, "the handler did not run");
    match result {
        Ok((got, status)) if got == pid => {
            child.reaped();
            expect_exit("child", status, 7)
        }
        other => Err(msg!("wait4: {other:?}, expected the child, restarted")),
    }
}

/// A child's exit sends SIGCHLD to a parent with a handler: CLD_EXITED,
/// the child's pid, uid and exit code.
fn signal_sigchld_handler(_ctx: &Ctx) -> Outcome {
    reset_seen();
    let _h = Handled::install(sig::SIGCHLD, record, SA_RESTART, 0)?;
    let child = Child::spawn(|| 5)?;
    let pid = child.pid();
    let status = wait_restarting(child)?;
    expect_exit("child", status, 5)?;
    ensure!(
        CALLS.load(Ordering::SeqCst) == 1,
        "SIGCHLD handler ran {} times, expected 1",
        CALLS.load(Ordering::SeqCst)
    );
    let (signo, code, got_pid, uid, value) = (
        SEEN_SIGNO.load(Ordering::SeqCst),
        SEEN_CODE.load(Ordering::SeqCst),
        SEEN_PID.load(Ordering::SeqCst),
        SEEN_UID.load(Ordering::SeqCst),
        SEEN_STATUS.load(Ordering::SeqCst),
    );
    ensure!(
        signo == sig::SIGCHLD
            && code == CLD_EXITED
            && got_pid == pid
            && uid == getuid()
            && value == 5,
        "SIGCHLD info: signo {signo} code {code} pid {got_pid} uid {uid} status {value}; \
         expected {} {CLD_EXITED} {pid} {} 5",
        sig::SIGCHLD,
        getuid()
    );
    Ok(())
}

/// Runs `body` in a child that first installs `record` for SIGUSR1 with
/// `flags` (and blocks `blocked`), tells this process it is ready, and
/// exits with `body`'s result; SIGUSR1 is sent once it is ready.
fn signalled_child(flags: u64, blocked: u64, body: fn() -> i32) -> Result<WaitStatus, Msg> {
    let (r, w) = pipe()?;
    let child = Child::spawn(|| {
        reset_seen();
        if sigaction(SIGUSR1, record, flags, 0).is_err()
            || sigprocmask(SIG_SETMASK, Some(blocked)).is_err()
            || write(w.raw(), b"r") != Ok(1)
        {
            return 100;
        }
        body()
    })?;
    let mut ready = [0u8];
    ensure!(
        read_full(r.raw(), &mut ready)? == 1,
        "the child did not get ready"
    );
    kill(child.pid() as i32, SIGUSR1).ctx("kill")?;
    let status = child.wait_bounded("signalled child")?;
    ensure!(
        !status.exited() || status.exit_status() != 100,
        "child: rt_sigaction, rt_sigprocmask or write failed"
    );
    Ok(status)
}

/// Runs `body` in a child that installs `record` for SIGUSR1 with `flags`
/// and tells this process it is ready; SIGUSR1 is then sent every 20 ms
/// until the child exits (one may arrive before the child blocks, so one
/// is not enough; a call that never returns times out). The child's exit
/// status is returned; 100 means its setup failed.
fn repeatedly_signalled_child(flags: u64, body: fn() -> i32) -> Result<WaitStatus, Msg> {
    let (r, w) = pipe()?;
    let child = Child::spawn(|| {
        reset_seen();
        if sigaction(SIGUSR1, record, flags, 0).is_err() || write(w.raw(), b"r") != Ok(1) {
            return 100;
        }
        body()
    })?;
    let status = signal_until_exit(child, r.raw(), SIGUSR1, "the child's call")?;
    ensure!(
        !status.exited() || status.exit_status() != 100,
        "child: rt_sigaction or write failed"
    );
    Ok(status)
}

/// The child's exit code for "EINTR after at least one handler call".
fn eintr_after_handler(result: Result<usize, Errno>) -> i32 {
    match (result, CALLS.load(Ordering::SeqCst)) {
        (Err(Errno::EINTR), n) if n >= 1 => 0,
        (Err(Errno::EINTR), _) => 1,
        _ => 2,
    }
}

fn expect_eintr_status(call: &str, status: WaitStatus) -> Outcome {
    ensure!(
        !status.exited() || status.exit_status() != 1,
        "{call} returned EINTR but no handler ran"
    );
    ensure!(
        !status.exited() || status.exit_status() != 2,
        "{call} returned, but not EINTR"
    );
    expect_exit(call, status, 0)
}

/// `pause` returns EINTR after the handler, even with SA_RESTART
/// (ERESTARTNOHAND).
fn signal_pause_eintr(_ctx: &Ctx) -> Outcome {
    let status = repeatedly_signalled_child(SA_RESTART, || eintr_after_handler(Err(pause())))?;
    expect_eintr_status("pause", status)
}

/// FUTEX_WAIT (no timeout) interrupted by a handler without SA_RESTART:
/// EINTR.
fn signal_futex_wait_eintr(_ctx: &Ctx) -> Outcome {
    let status = repeatedly_signalled_child(0, || {
        let word = AtomicU32::new(7);
        eintr_after_handler(futex(&word, FUTEX_WAIT, 7, None))
    })?;
    expect_eintr_status("futex wait", status)
}

/// `rt_sigsuspend` with SIGUSR1 unblocked, SIGUSR2 blocked, while the
/// process blocks SIGUSR1: the pending SIGUSR1 runs its handler with the
/// suspend mask plus SIGUSR1; the frame's uc_sigmask is the mask from
/// before; afterwards sigsuspend gives EINTR and that mask is back.
fn signal_sigsuspend_mask(_ctx: &Ctx) -> Outcome {
    let status = signalled_child(0, sigmask(SIGUSR1), || {
        let e = sigsuspend(sigmask(SIGUSR2));
        let in_handler = SEEN_MASK.load(Ordering::SeqCst);
        let saved = SEEN_UC_MASK.load(Ordering::SeqCst);
        if e != Errno::EINTR || CALLS.load(Ordering::SeqCst) != 1 {
            1
        } else if in_handler != sigmask(SIGUSR1) | sigmask(SIGUSR2) {
            2
        } else if saved != sigmask(SIGUSR1) {
            3
        } else if blocked() != sigmask(SIGUSR1) {
            4
        } else {
            0
        }
    })?;
    let what = match status.exited().then(|| status.exit_status()) {
        Some(1) => "sigsuspend did not give EINTR after one handler call",
        Some(2) => "the handler's mask is not the suspend mask plus SIGUSR1",
        Some(3) => "uc_sigmask is not the mask from before sigsuspend",
        Some(4) => "the mask from before is not back after sigsuspend",
        _ => "",
    };
    ensure!(what.is_empty(), "{what}");
    expect_exit("suspended child", status, 0)
}

/// `rt_sigreturn` with no frame to read (rsp in an unmapped page):
/// SIGSEGV.
fn signal_sigreturn_bad_frame(_ctx: &Ctx) -> Outcome {
    let hole = Mapping::new(PAGE)?.unmap()?;
    let child = Child::spawn(|| {
        // SAFETY: rt_sigreturn with rsp in the unmapped page; the process
        // should die of SIGSEGV, and returns 3 if the kernel went on.
        unsafe {
            asm!(
                "mov r12, rsp",
                "mov rsp, {bad}",
                "syscall",
                "mov rsp, r12",
                bad = in(reg) hole + PAGE / 2,
                inlateout("rax") forkvm_user::syscall::nr::RT_SIGRETURN => _,
                out("r12") _, out("rcx") _, out("r11") _,
            );
        }
        3
    })?;
    let status = child.wait_bounded("child with a bad signal frame")?;
    expect_signal("rt_sigreturn from an unmapped frame", status, SIGSEGV)
}

/// A handler whose frame cannot be written (the stack pointer is in an
/// unmapped page when the signal arrives) kills with SIGSEGV.
fn signal_bad_stack_segv(_ctx: &Ctx) -> Outcome {
    let hole = Mapping::new(PAGE)?.unmap()?;
    let child = Child::spawn(|| {
        if sigaction(SIGUSR1, record, 0, 0).is_err() {
            return 1;
        }
        let pid = getpid() as usize;
        // SAFETY: runs `kill(getpid(), SIGUSR1)` with rsp in the unmapped
        // page (nothing is pushed), then puts rsp back; the signal should
        // kill the process before that.
        unsafe {
            asm!(
                "mov r12, rsp",
                "mov rsp, {bad}",
                "syscall",
                "mov rsp, r12",
                bad = in(reg) hole + PAGE / 2,
                inlateout("rax") nr::KILL => _,
                in("rdi") pid, in("rsi") SIGUSR1 as usize,
                out("r12") _, out("rcx") _, out("r11") _,
            );
        }
        3
    })?;
    let status = child.wait_bounded("child with a bad stack")?;
    expect_signal("signal frame on an unmapped stack", status, SIGSEGV)
}

/// x86-64 Linux delivers no handler without SA_RESTORER: SIGSEGV instead.
fn signal_no_restorer_segv(_ctx: &Ctx) -> Outcome {
    let child = Child::spawn(|| {
        let action = SigAction {
            handler: record as *const () as usize,
            flags: forkvm_user::signal::SA_SIGINFO,
            restorer: 0,
            mask: 0,
        };
        if sigaction_raw(SIGUSR1, Some(&action)).is_err() {
            return 1;
        }
        let _ = raise(SIGUSR1);
        2
    })?;
    let status = child.wait_bounded("child without a restorer")?;
    expect_signal("handler without SA_RESTORER", status, SIGSEGV)
}

/// A jump to an address no user mapping covers, in the forkvm guest the
/// kernel's half of the address space: the process dies with SIGSEGV and
/// the kernel lives on (it must not take the fault for its own).
fn jump_to_kernel_address_segv(_ctx: &Ctx) -> Outcome {
    // forkvm's PAGE_OFFSET + 2^45: unmapped on the guest's kernel side,
    // and an unmapped user address on the host's Linux.
    const TARGET: usize = 0x0000_6000_0000_0000;
    let child = Child::spawn(|| {
        // SAFETY: not safe at all, on purpose: the jump faults.
        unsafe { asm!("jmp {target}", target = in(reg) TARGET, options(noreturn)) }
    })?;
    let status = child.wait_bounded("child that jumped to a kernel address")?;
    expect_signal("jump to a kernel address", status, SIGSEGV)
}

/// `futex(FUTEX_WAIT)` with a relative timeout: ETIMEDOUT once it passed
/// (not before), EAGAIN for a changed word, EINVAL for a bad timespec
/// and EFAULT for a bad pointer, both before the word is looked at.
fn futex_wait_timeout(_ctx: &Ctx) -> Outcome {
    const FUTEX_WAIT_PRIVATE: usize = 128;
    static WORD: AtomicU32 = AtomicU32::new(7);
    let wait = |value: u32, timeout: usize| {
        // SAFETY: the kernel reads the word and the timespec (if any).
        forkvm_user::syscall::check(unsafe {
            forkvm_user::syscall::syscall4(
                nr::FUTEX,
                WORD.as_ptr() as usize,
                FUTEX_WAIT_PRIVATE,
                value as usize,
                timeout,
            )
        })
        .map(drop)
    };
    let ts = Timespec::from_nanos(20 * MS);
    let start = monotonic_ns();
    let got = wait(7, &ts as *const Timespec as usize);
    let waited = monotonic_ns() - start;
    ensure!(
        got == Err(Errno::ETIMEDOUT),
        "expected ETIMEDOUT, got {got:?}"
    );
    ensure!(
        waited >= 20 * MS,
        "returned after {waited} ns, before the timeout"
    );
    let got = wait(8, &ts as *const Timespec as usize);
    ensure!(
        got == Err(Errno::EAGAIN),
        "changed word: expected EAGAIN, got {got:?}"
    );
    let bad: [i64; 2] = [0, 1_000_000_000];
    let got = wait(8, bad.as_ptr() as usize);
    ensure!(
        got == Err(Errno::EINVAL),
        "bad timespec: expected EINVAL, got {got:?}"
    );
    let got = wait(8, 8);
    ensure!(
        got == Err(Errno::EFAULT),
        "bad pointer: expected EFAULT, got {got:?}"
    );
    Ok(())
}

/// A zombie can still be signalled (nothing happens, `kill` succeeds);
/// once reaped its pid is gone (ESRCH).
fn kill_zombie(_ctx: &Ctx) -> Outcome {
    let (r, w) = pipe()?;
    let child = Child::spawn(|| 0)?;
    let pid = child.pid() as i32;
    // The child's copy of the write end closes when it exits: EOF here
    // means it is exiting; a short sleep lets it become a zombie.
    w.close()?;
    let mut byte = [0u8; 1];
    ensure!(read_full(r.raw(), &mut byte)? == 0, "data from the child?");
    sleep_ns(20 * MS);
    ensure!(
        kill(pid, 0).is_ok(),
        "signal 0 to a zombie: {:?}",
        kill(pid, 0)
    );
    ensure!(kill(pid, SIGUSR1).is_ok(), "SIGUSR1 to a zombie");
    let status = child.wait()?;
    expect_exit("the zombie", status, 0)?;
    let got = kill(pid, 0);
    ensure!(got == Err(Errno::ESRCH), "signal 0 after the reap: {got:?}");
    Ok(())
}

/// Counts as fast as it can in the shared page at `counter`.
extern "C" fn thread_counts(counter: usize) -> ! {
    let counter = counter as *const AtomicU64;
    loop {
        // SAFETY: the page stays mapped (MAP_SHARED, mapped by the test
        // before the fork) as long as this thread's address space lives.
        unsafe { (*counter).fetch_add(1, Ordering::Relaxed) };
    }
}

/// `execve` from a process with another thread (Linux `de_thread`): the
/// other thread is killed before the new program runs. The thread counts
/// in a page shared with this test; once the exec'd program has said so
/// (a byte on descriptor 9), the count must stand still.
fn exec_kills_other_threads(ctx: &Ctx) -> Outcome {
    use forkvm_user::syscall::{MAP_ANONYMOUS, MAP_SHARED};
    let Some(argv0) = ctx.argv0 else {
        return Err(msg!("no argv[0] to execute"));
    };
    // SAFETY: a fresh anonymous shared page, unmapped at the end.
    let page = unsafe {
        forkvm_user::syscall::mmap(
            0,
            PAGE,
            PROT_READ | PROT_WRITE,
            MAP_SHARED | MAP_ANONYMOUS,
            -1,
            0,
        )
    }
    .ctx("mmap(MAP_SHARED)")?;
    // SAFETY: the page is mapped, aligned and zeroed.
    let counter = unsafe { &*(page as *const AtomicU64) };
    let (r, w) = pipe()?;
    let w_raw = w.raw();
    let child = Child::spawn(|| {
        if dup2(w_raw, 9).is_err() {
            return 90;
        }
        let Ok(stack) = ThreadStack::new() else {
            return 91;
        };
        // SAFETY: the thread uses its own stack and the shared page.
        if unsafe { stack.clone(THREAD_FLAGS, thread_counts, page as usize) }.is_err() {
            return 92;
        }
        core::mem::forget(stack);
        let deadline = monotonic_ns() + TIMEOUT_NS;
        while counter.load(Ordering::Relaxed) == 0 {
            if monotonic_ns() > deadline {
                return 93;
            }
            sleep_ns(100_000);
        }
        exec_self_helper(argv0, c"exec-marker-fd9")
    })?;
    w.close()?;
    let mut byte = [0u8; 1];
    ensure!(
        read_full(r.raw(), &mut byte)? == 1,
        "the exec'd program never wrote"
    );
    let before = counter.load(Ordering::Relaxed);
    sleep_ns(30 * MS);
    let after = counter.load(Ordering::Relaxed);
    let status = child.wait_bounded("the exec'd process")?;
    // SAFETY: the page is ours and nobody uses it any more.
    let _ = unsafe { munmap(page, PAGE) };
    ensure!(before > 0, "the thread never counted");
    ensure!(
        after == before,
        "the other thread still ran after the exec ({before} -> {after})"
    );
    expect_exit("the exec'd program", status, 0)
}

/// `execve` in a process that shares its descriptor table with its parent
/// (CLONE_FILES) gives it a private copy first (Linux `unshare_files`):
/// the new program closing descriptor 9 leaves the parent's open.
fn exec_unshares_files(ctx: &Ctx) -> Outcome {
    use forkvm_abi::linux::clone::CLONE_FILES;
    let Some(argv0) = ctx.argv0 else {
        return Err(msg!("no argv[0] to execute"));
    };
    let (r, w) = pipe()?;
    dup2(w.raw(), 9).ctx("dup2")?;
    let child =
        Child::spawn_with_flags(CLONE_FILES, || exec_self_helper(argv0, c"exec-close-fd9"))?;
    let status = child.wait_bounded("the exec'd child")?;
    expect_exit(
        "`proctest exec-close-fd9` (closing its copy of 9)",
        status,
        0,
    )?;
    let wrote = write(9, b"y");
    let _ = close(9);
    ensure!(
        wrote == Ok(1),
        "descriptor 9 was closed in the parent too: {wrote:?}"
    );
    let mut byte = [0u8; 1];
    drop(w);
    ensure!(
        read(r.raw(), &mut byte) == Ok(1),
        "nothing came through descriptor 9"
    );
    Ok(())
}

/// FD_CLOEXEC: set by pipe2(O_CLOEXEC), dup3(O_CLOEXEC) and
/// F_DUPFD_CLOEXEC, read and changed with F_GETFD/F_SETFD, cleared on a
/// dup; `execve` closes exactly the descriptors that have it.
fn exec_closes_cloexec(ctx: &Ctx) -> Outcome {
    use forkvm_abi::linux::fcntl::{F_DUPFD_CLOEXEC, F_GETFD, F_SETFD, O_CLOEXEC};
    use forkvm_user::syscall::fcntl;
    let Some(argv0) = ctx.argv0 else {
        return Err(msg!("no argv[0] to execute"));
    };
    let [r, w] = pipe2(O_CLOEXEC).ctx("pipe2(O_CLOEXEC)")?;
    let (r, w) = (Fd(r), Fd(w));
    ensure!(
        fcntl(w.raw(), F_GETFD, 0) == Ok(1),
        "pipe2(O_CLOEXEC) end without FD_CLOEXEC"
    );
    fcntl(r.raw(), F_SETFD, 0).ctx("F_SETFD 0")?;
    ensure!(
        fcntl(r.raw(), F_GETFD, 0) == Ok(0),
        "F_SETFD 0 did not clear FD_CLOEXEC"
    );
    let high = fcntl(w.raw(), F_DUPFD_CLOEXEC, 20).ctx("F_DUPFD_CLOEXEC")?;
    let high = Fd(high as i32);
    ensure!(high.raw() >= 20, "F_DUPFD_CLOEXEC below 20: {}", high.raw());
    ensure!(
        fcntl(high.raw(), F_GETFD, 0) == Ok(1),
        "F_DUPFD_CLOEXEC without FD_CLOEXEC"
    );
    ensure!(fcntl(-1, F_GETFD, 0) == Err(Errno::EBADF), "F_GETFD on -1");
    dup2(w.raw(), 8).ctx("dup2 to 8")?;
    ensure!(fcntl(8, F_GETFD, 0) == Ok(0), "dup2 kept FD_CLOEXEC");
    // SAFETY: no memory is passed.
    forkvm_user::syscall::check(unsafe { syscall3(292, w.raw() as usize, 9, O_CLOEXEC as usize) })
        .ctx("dup3(O_CLOEXEC)")?;
    ensure!(
        fcntl(9, F_GETFD, 0) == Ok(1),
        "dup3(O_CLOEXEC) without FD_CLOEXEC"
    );
    let child = Child::spawn(|| exec_self_helper(argv0, c"exec-fd8-open-fd9-closed"))?;
    let status = child.wait_bounded("the exec'd child")?;
    let _ = close(8);
    let _ = close(9);
    drop((w, high));
    // 1: descriptor 8 was closed; 2: descriptor 9 stayed open.
    expect_exit("8 open and 9 closed after exec", status, 0)?;
    let mut byte = [0u8; 1];
    ensure!(
        read(r.raw(), &mut byte) == Ok(1) && byte == *b"o",
        "nothing through descriptor 8"
    );
    Ok(())
}
