//! Switching between tasks' kernel stacks, and the first frames a new
//! task's stack needs so that its first switch-in lands somewhere useful.

use core::arch::global_asm;

use super::entry::{TrapFrame, FPU_STATE_SIZE};

extern "C" {
    fn context_switch_asm(prev_rsp: *mut u64, next_rsp: u64);
    fn ret_from_fork();
}

/// Saves the callee-saved registers on the current stack, stores the stack
/// pointer in `*prev_rsp`, and resumes the task whose stack pointer is
/// `next_rsp`. Returns when some task switches back to `prev`.
///
/// # Safety
/// Interrupts must be off; `next_rsp` must come from a previous switch or
/// from [`prepare_user_return`] on a live stack.
pub unsafe fn context_switch(prev_rsp: *mut u64, next_rsp: u64) {
    // SAFETY: forwarded from the caller.
    unsafe { context_switch_asm(prev_rsp, next_rsp) }
}

/// Default x87/SSE state in `fxsave` format (FCW 0x37f, MXCSR 0x1f80).
pub fn initial_fpu_state() -> [u8; FPU_STATE_SIZE] {
    let mut state = [0u8; FPU_STATE_SIZE];
    state[0..2].copy_from_slice(&0x37fu16.to_le_bytes());
    state[24..28].copy_from_slice(&0x1f80u32.to_le_bytes());
    state
}

/// Words of a switch frame: r15, r14, r13, r12, rbx, rbp, return address.
const SWITCH_FRAME_WORDS: usize = 7;

/// Lays out a new task's stack so that its first switch-in returns to user
/// mode with `frame` and `fpu`, after `schedule_tail`. Returns the stack
/// pointer to switch to.
///
/// # Safety
/// `stack_top` must be the 16-byte aligned top of an unused kernel stack.
pub unsafe fn prepare_user_return(
    stack_top: u64,
    frame: &TrapFrame,
    fpu: &[u8; FPU_STATE_SIZE],
) -> u64 {
    let frame_at = stack_top - core::mem::size_of::<TrapFrame>() as u64;
    let fpu_at = frame_at - FPU_STATE_SIZE as u64;
    let switch_at = fpu_at - (SWITCH_FRAME_WORDS * 8) as u64;
    // SAFETY: all three areas lie inside the caller's unused stack.
    unsafe {
        core::ptr::write(frame_at as *mut TrapFrame, *frame);
        core::ptr::copy_nonoverlapping(fpu.as_ptr(), fpu_at as *mut u8, FPU_STATE_SIZE);
        let words = switch_at as *mut u64;
        for i in 0..SWITCH_FRAME_WORDS - 1 {
            words.add(i).write(0);
        }
        words
            .add(SWITCH_FRAME_WORDS - 1)
            .write(ret_from_fork as *const () as u64);
    }
    switch_at
}

global_asm!(
    r#"
    .section .text
    .global context_switch_asm
context_switch_asm:
    push rbp
    push rbx
    push r12
    push r13
    push r14
    push r15
    mov [rdi], rsp
    mov rsp, rsi
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbx
    pop rbp
    ret

    .global ret_from_fork
ret_from_fork:
    call schedule_tail
    jmp trap_exit

    "#
);
