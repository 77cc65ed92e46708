//! Signal frames on the user stack, as x86-64 Linux builds them
//! (`arch/x86/kernel/signal.c`, `signal_64.c`): `do_signal` on every
//! return to user mode, and `rt_sigreturn` back.
//!
//! The frame, from the handler's stack pointer up (`struct rt_sigframe`):
//! `pretcode` (the action's `sa_restorer`, popped by the handler's `ret`),
//! `struct ucontext` (flags, link, `uc_stack`, `uc_mcontext` = `struct
//! sigcontext`, `uc_sigmask`), `struct siginfo`; the FPU/SSE state (an
//! `fxsave` image, 64-byte aligned) lies above it, below the red zone.

use forkvm_abi::USER_SPACE_END;

use super::entry::{FpuState, TrapFrame, UserContext, NO_SYSCALL};
use super::gdt::{USER_CS, USER_DS};
use crate::errno::{EINTR, ERESTARTNOHAND, ERESTARTNOINTR, ERESTARTSYS};
use crate::process::sigaltstack::STACK_T_SIZE;
use crate::process::signal::{
    self, SigAction, SigFields, SigInfo, Signal, SA_ONSTACK, SA_RESTART, SA_RESTORER,
};
use crate::sched;

/// Bytes below the user stack pointer a leaf function may use (System V).
const RED_ZONE: u64 = 128;
/// `sizeof(struct ucontext)`: flags, link, stack_t (24), sigcontext (256), sigmask.
const UCONTEXT_SIZE: usize = 8 + 8 + 24 + SIGCONTEXT_SIZE + 8;
const SIGCONTEXT_SIZE: usize = 256;
const SIGINFO_SIZE: usize = 128;
/// `sizeof(struct rt_sigframe)`.
const FRAME_SIZE: usize = 8 + UCONTEXT_SIZE + SIGINFO_SIZE;
/// Offsets in the frame.
const UC: usize = 8;
const MCONTEXT: usize = UC + 40;
const SIGMASK: usize = UC + 40 + SIGCONTEXT_SIZE;
const INFO: usize = 8 + UCONTEXT_SIZE;
/// `uc_stack` (after `uc_flags` and `uc_link`).
const UC_STACK: usize = UC + 16;
/// Offset of the `fpstate` pointer in the sigcontext (after 18 registers,
/// the selectors, err, trapno, oldmask and cr2).
const FPSTATE: usize = 184;
/// `uc_flags`: the sigcontext's `ss` is valid and restored as is.
const UC_SIGCONTEXT_SS: u64 = 2;
const UC_STRICT_RESTORE_SS: u64 = 4;

/// RFLAGS bits `rt_sigreturn` takes from the frame (Linux `FIX_EFLAGS`):
/// AC, RF, OF, DF, TF, SF, ZF, AF, PF, CF. IF, IOPL and the rest stay.
const FIX_EFLAGS: u64 = 0x4_0000 | 0x1_0000 | 0x800 | 0x400 | 0x100 | 0xd5;
/// RFLAGS bits cleared for the handler: DF, RF, TF.
const HANDLER_CLEARS: u64 = 0x400 | 0x1_0000 | 0x100;

/// The `syscall` instruction's length: a restarted call re-executes it.
const SYSCALL_INSN_LEN: u64 = 2;

/// Registers in `struct sigcontext` order (r8 first, rip 17th).
fn sigcontext_words(frame: &TrapFrame) -> [u64; 18] {
    [
        frame.r8,
        frame.r9,
        frame.r10,
        frame.r11,
        frame.r12,
        frame.r13,
        frame.r14,
        frame.r15,
        frame.rdi,
        frame.rsi,
        frame.rbp,
        frame.rbx,
        frame.rdx,
        frame.rax,
        frame.rcx,
        frame.rsp,
        frame.rip,
        frame.rflags,
    ]
}

fn put(buf: &mut [u8], offset: usize, value: u64) {
    buf[offset..offset + 8].copy_from_slice(&value.to_le_bytes());
}

fn get(buf: &[u8], offset: usize) -> u64 {
    u64::from_le_bytes(buf[offset..offset + 8].try_into().expect("8 bytes"))
}

/// On the way back to user mode (Linux `arch_do_signal_or_restart`):
/// delivers the next signal that has a handler, after fixing up the result
/// of an interrupted system call (`syscall` is its number); with no
/// handler to run, an interrupted call is restarted.
pub fn do_signal(ctx: &mut UserContext, syscall: Option<u64>) {
    let mut syscall = syscall;
    while let Some((info, action)) = signal::get_signal() {
        if let Some(nr) = syscall.take() {
            fixup_interrupted_syscall(&mut ctx.frame, nr, Some(&action));
        }
        // x86-64 Linux builds no frame without a restorer to return through.
        let built = action.flags & SA_RESTORER != 0 && setup_rt_frame(ctx, &info, &action).is_ok();
        if built {
            // The handler runs with the current mask (rt_sigsuspend's, if
            // it was interrupted) plus the action's; the frame keeps the
            // mask to go back to.
            signal::signal_delivered(info.signo, &action);
            sched::current().clear_restore_sigmask();
            return;
        }
        signal::force_sigsegv(info.signo);
    }
    if let Some(nr) = syscall {
        fixup_interrupted_syscall(&mut ctx.frame, nr, None);
    }
}

/// The result of an interrupted system call (Linux `handle_signal` and the
/// no-handler path): ERESTARTNOINTR always restarts; ERESTARTSYS restarts
/// unless a handler without SA_RESTART runs; ERESTARTNOHAND restarts only
/// if no handler runs; otherwise the caller sees EINTR.
fn fixup_interrupted_syscall(frame: &mut TrapFrame, nr: u64, action: Option<&SigAction>) {
    let errno = (frame.rax as i64).checked_neg().unwrap_or(0);
    let restart = match errno {
        e if e == i64::from(ERESTARTNOINTR) => true,
        e if e == i64::from(ERESTARTSYS) => action.is_none_or(|a| a.flags & SA_RESTART != 0),
        e if e == i64::from(ERESTARTNOHAND) => action.is_none(),
        _ => return,
    };
    if restart {
        frame.rax = nr;
        frame.rip -= SYSCALL_INSN_LEN;
    } else {
        frame.rax = (-i64::from(EINTR)) as u64;
    }
}

/// Builds the frame for `info`'s handler on the user stack and points the
/// registers at the handler: rdi = signo, rsi = &info, rdx = &uc, rax = 0,
/// rsp = the frame (so rsp + 8 is 16-byte aligned, as after a call). The
/// handler starts with a clean FPU state. `Err` if the frame cannot be
/// written.
fn setup_rt_frame(ctx: &mut UserContext, info: &SigInfo, action: &SigAction) -> Result<(), i32> {
    let UserContext { fpu, frame } = ctx;
    let mm = sched::current().mm().ok_or(crate::errno::EFAULT)?;
    // The mask to restore at rt_sigreturn: the one before rt_sigsuspend,
    // if that is what the signal interrupted (Linux `sigmask_to_save`).
    let blocked = sched::current().sigmask_to_save();
    // Linux `get_sigframe`: below the red zone, or at the top of the
    // alternate stack for an SA_ONSTACK action not already running there.
    let sas = sched::current().sigaltstack();
    let nested_altstack = sas.on_sig_stack(frame.rsp);
    let (sp, entering_altstack) = sas.frame_top(
        frame.rsp.wrapping_sub(RED_ZONE),
        action.flags & SA_ONSTACK != 0,
    );
    let fpstate = sp.wrapping_sub(FpuState::SIZE as u64) & !63;
    let address = (fpstate.wrapping_sub(FRAME_SIZE as u64) & !15).wrapping_sub(8);
    if address >= USER_SPACE_END || fpstate >= USER_SPACE_END {
        return Err(crate::errno::EFAULT);
    }
    // A frame that would overflow the alternate stack is not written
    // below it: the task gets SIGSEGV instead.
    if (nested_altstack || entering_altstack) && !sas.contains(address) {
        return Err(crate::errno::EFAULT);
    }
    // Linux would return to a kernel handler address and take the fault
    // in user mode; kernel pages are user-accessible on the PVM host, so
    // such a handler gets the SIGSEGV up front.
    if action.handler >= USER_SPACE_END {
        return Err(crate::errno::EFAULT);
    }

    let mut buf = [0u8; FRAME_SIZE];
    put(&mut buf, 0, action.restorer);
    put(&mut buf, UC, UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS);
    // uc_link 0; uc_stack: the alternate stack, restored by rt_sigreturn.
    buf[UC_STACK..UC_STACK + STACK_T_SIZE].copy_from_slice(&sas.to_frame());
    for (i, word) in sigcontext_words(frame).iter().enumerate() {
        put(&mut buf, MCONTEXT + i * 8, *word);
    }
    // cs, gs, fs, ss (16 bits each).
    let selectors = MCONTEXT + 18 * 8;
    buf[selectors..selectors + 2].copy_from_slice(&(frame.cs as u16).to_le_bytes());
    buf[selectors + 6..selectors + 8].copy_from_slice(&(frame.ss as u16).to_le_bytes());
    let fault_address = match info.fields {
        SigFields::Fault { addr } => addr,
        _ => 0,
    };
    put(&mut buf, MCONTEXT + 152, frame.error_code);
    put(&mut buf, MCONTEXT + 160, trap_number(frame));
    put(&mut buf, MCONTEXT + 168, blocked); // oldmask
    put(&mut buf, MCONTEXT + 176, fault_address); // cr2
    put(&mut buf, MCONTEXT + FPSTATE, fpstate);
    put(&mut buf, SIGMASK, blocked);
    buf[INFO..INFO + SIGINFO_SIZE].copy_from_slice(&info.to_bytes());

    mm.copy_to_user(fpstate, &fpu.0)?;
    mm.copy_to_user(address, &buf)?;

    frame.rdi = u64::from(info.signo.number());
    frame.rsi = address + INFO as u64;
    frame.rdx = address + UC as u64;
    frame.rax = 0;
    frame.rsp = address;
    frame.rip = action.handler;
    frame.cs = u64::from(USER_CS);
    frame.ss = u64::from(USER_DS);
    frame.rflags &= !HANDLER_CLEARS;
    *fpu = FpuState::init();
    Ok(())
}

/// `trapno` of the sigcontext: the exception vector, 0 for a system call
/// or an interrupt.
fn trap_number(frame: &TrapFrame) -> u64 {
    if frame.vector < 32 {
        frame.vector
    } else {
        0
    }
}

/// `rt_sigreturn()`: restores the registers, the FPU state and the signal
/// mask saved in the frame the handler returned through (its `ret` popped
/// `pretcode`, so the frame starts 8 bytes below rsp), and returns the
/// restored rax as its result. A frame that cannot be read, or that would
/// return into the kernel, is answered with SIGSEGV and the result 0
/// (Linux `signal_fault`).
pub fn rt_sigreturn(ctx: &mut UserContext) -> u64 {
    match restore_sigcontext(&mut ctx.frame, &mut ctx.fpu) {
        Ok(()) => {
            // Linux's `orig_ax = -1`: the restored registers are no
            // interrupted system call to restart.
            ctx.frame.vector = NO_SYSCALL;
            ctx.frame.rax
        }
        Err(_) => {
            signal::force_sig(SigInfo {
                signo: Signal::SIGSEGV,
                code: signal::SI_KERNEL,
                fields: SigFields::None,
            });
            0
        }
    }
}

fn restore_sigcontext(frame: &mut TrapFrame, fpu: &mut FpuState) -> Result<(), i32> {
    let task = sched::current();
    let mm = task.mm().ok_or(crate::errno::EFAULT)?;
    let address = frame.rsp.wrapping_sub(8);
    let mut buf = [0u8; FRAME_SIZE];
    mm.copy_from_user(address, &mut buf)?;
    let word = |i: usize| get(&buf, MCONTEXT + i * 8);
    let rip = word(16);
    // Linux returns with iret and takes the fault in user mode; here a
    // kernel-side rip is refused up front (the task gets its SIGSEGV
    // either way): on the PVM host kernel pages are user-accessible, so
    // the fetch would not fault. Any rsp is fine, as with Linux's iret.
    if rip >= USER_SPACE_END {
        return Err(crate::errno::EFAULT);
    }
    let fpstate = get(&buf, MCONTEXT + FPSTATE);
    let mut restored = FpuState::init();
    if fpstate != 0 {
        mm.copy_from_user(fpstate, &mut restored.0)?;
        restored.sanitize(fpu.mxcsr_mask());
    }

    let mask = get(&buf, SIGMASK) & !(signal::bit(Signal::SIGKILL) | signal::bit(Signal::SIGSTOP));
    task.set_blocked(mask);
    frame.r8 = word(0);
    frame.r9 = word(1);
    frame.r10 = word(2);
    frame.r11 = word(3);
    frame.r12 = word(4);
    frame.r13 = word(5);
    frame.r14 = word(6);
    frame.r15 = word(7);
    frame.rdi = word(8);
    frame.rsi = word(9);
    frame.rbp = word(10);
    frame.rbx = word(11);
    frame.rdx = word(12);
    frame.rax = word(13);
    frame.rcx = word(14);
    frame.rsp = word(15);
    frame.rip = rip;
    frame.rflags = (frame.rflags & !FIX_EFLAGS) | (word(17) & FIX_EFLAGS);
    frame.cs = u64::from(USER_CS);
    frame.ss = u64::from(USER_DS);
    *fpu = restored;
    // Linux `restore_altstack`: the frame's `uc_stack` through
    // do_sigaltstack at the restored stack pointer (re-arms an
    // SS_AUTODISARM stack); its refusals are ignored, as there.
    let uc_stack: [u8; STACK_T_SIZE] = buf[UC_STACK..UC_STACK + STACK_T_SIZE]
        .try_into()
        .expect("stack_t");
    let _ = task.swap_sigaltstack(frame.rsp, Some(&uc_stack));
    Ok(())
}
