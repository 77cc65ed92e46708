//! Switching between tasks' kernel stacks, and the first frames a new
//! task's stack needs so that its first switch-in lands somewhere useful.

use core::arch::global_asm;

use core::mem::size_of;

use super::entry::{FpuState, TrapFrame, UserContext};
use crate::mm::kstack::KernelStack;

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
/// from [`prepare_user_return`] on a stack that still exists.
pub unsafe fn context_switch(prev_rsp: *mut u64, next_rsp: u64) {
    // SAFETY: forwarded from the caller.
    unsafe { context_switch_asm(prev_rsp, next_rsp) }
}

/// Words of a switch frame: r15, r14, r13, r12, rbx, rbp, return address.
const SWITCH_FRAME_WORDS: usize = 7;

/// Lays out a new task's stack so that its first switch-in returns to user
/// mode with `frame` and `fpu` (a [`UserContext`] at the top of the stack,
/// where the entry code would have saved it), after `schedule_tail`.
/// Returns the stack pointer to switch to.
///
/// Safe because no code runs on a stack borrowed mutably: the stack a task
/// runs on belongs to its `Task`, which is shared and never lends it out
/// mutably, and a `KernelStack` is dropped (back to the cache) only by the
/// task that switched in after its owner's last switch-out
/// (`sched::schedule_tail`). Its top is page-aligned.
pub fn prepare_user_return(stack: &mut KernelStack, frame: &TrapFrame, fpu: &FpuState) -> u64 {
    let ctx_at = stack.top() - size_of::<UserContext>() as u64;
    let switch_at = ctx_at - (SWITCH_FRAME_WORDS * 8) as u64;
    let ctx = ctx_at as *mut UserContext;
    // SAFETY: the context and the switch frame lie inside `stack`, which
    // no code runs on (see above) and which the borrow makes ours alone;
    // the context is 16-byte aligned (its size is a multiple of 16 below
    // a page-aligned top), as UserContext requires.
    unsafe {
        (&raw mut (*ctx).frame).write(*frame);
        core::ptr::copy_nonoverlapping(fpu, &raw mut (*ctx).fpu, 1);
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
