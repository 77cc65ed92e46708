//! Interrupt and exception entry and return.
//!
//! Every vector has a 64-byte stub that pushes its vector (and a zero where
//! the CPU pushes no error code) and jumps to `interrupt_common`, which
//! saves a uniform [`TrapFrame`] and the FPU state below it (together a
//! [`UserContext`]) and calls [`handle_trap`].
//!
//! On the PVM host four things differ, all handled here:
//! * Events arrive only on upper-half stacks, so every vector uses an IST
//!   stack seen through `PVM_EVENT_ALIAS`, and any event switches the kernel
//!   back to the host's instruction emulator. Each stub therefore starts
//!   with a PVM prefix (run emulated, ~1 us per instruction) that moves
//!   `rsp` to the lower-half view of the same stack and re-arms native
//!   execution. On HVM the IDT points past the prefix.
//! * `interrupt_common` then leaves the shared IST stack for the
//!   interrupted kernel stack or the task's kernel stack, so events nest.
//! * An `iretq` to a kernel frame raises #GP, and a return to user mode must
//!   be `sti; iretq`, so kernel frames return with a same-privilege
//!   `popfq; [sti;] ret` sequence.
//! * The CPU pushes a user CS for kernel events too, so the per-CPU
//!   `pvm_user_mode` flag ([`CpuLocal`](super::percpu::CpuLocal)) records
//!   whether user code runs and the entry writes the real CS into the frame.
//!
//! Per-CPU values (that flag, the entry stack) are read through the
//! per-CPU window at a fixed address ([`super::percpu`]).

use core::arch::global_asm;
use core::mem::{offset_of, size_of};

use forkvm_abi::{PAGE_OFFSET, PVM_CONTROL_MSR, PVM_EVENT_ALIAS};

use super::gdt::{KERNEL_CS, USER_CS};

/// Registers saved on interrupt entry, lowest address first.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct TrapFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    /// Interrupt vector (pushed by the stub), [`SYSCALL_VECTOR`] for a
    /// system call, or [`NO_SYSCALL`] once `rt_sigreturn` replaced the
    /// registers (Linux sets `orig_ax` to -1 there).
    ///
    /// [`SYSCALL_VECTOR`]: super::syscall::SYSCALL_VECTOR
    pub vector: u64,
    /// Hardware error code, or 0 for vectors without one.
    pub error_code: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

impl TrapFrame {
    /// Whether the interrupted code was user code: the privilege level of
    /// its CS (Linux `user_mode`). On the PVM host the CPU pushes a user CS
    /// even for the kernel, so the entry below overwrites the frame's CS
    /// with what the per-CPU `pvm_user_mode` flag says; whatever a user program puts in
    /// rip and rsp, its frames are user frames.
    pub fn is_from_user(&self) -> bool {
        self.cs & 3 == 3
    }
}

/// [`TrapFrame::vector`] of registers that no system call is to be
/// restarted from (see there).
pub const NO_SYSCALL: u64 = u64::MAX;

/// Size of the `fxsave64` area saved below every trap frame.
pub const FPU_STATE_SIZE: usize = 512;

/// The interrupted code's FPU/SSE registers, as `fxsave64` stored them
/// below its trap frame; `fxrstor64` loads them back on return, so a
/// change here (a signal frame, `rt_sigreturn`) reaches user mode.
#[repr(C, align(16))]
pub struct FpuState(pub [u8; FPU_STATE_SIZE]);

/// Everything the entry code saved of the interrupted code, as it lies on
/// the kernel stack (FPU area at the lower address, then the frame): the
/// user context a system call works on (fork copies it, execve replaces
/// it, signal delivery and `rt_sigreturn` rewrite it). The entry passes
/// `handle_trap` a reference to it; nothing outside `arch` needs to know
/// the layout.
#[repr(C)]
pub struct UserContext {
    pub fpu: FpuState,
    pub frame: TrapFrame,
}

// The layout the assembly below and `switch::prepare_user_return` rely on:
// the entry pushes the general registers in this order onto the hardware
// frame, then stores the FPU area below them; no padding anywhere.
const _: () = {
    let order = [
        offset_of!(TrapFrame, r15),
        offset_of!(TrapFrame, r14),
        offset_of!(TrapFrame, r13),
        offset_of!(TrapFrame, r12),
        offset_of!(TrapFrame, r11),
        offset_of!(TrapFrame, r10),
        offset_of!(TrapFrame, r9),
        offset_of!(TrapFrame, r8),
        offset_of!(TrapFrame, rbp),
        offset_of!(TrapFrame, rdi),
        offset_of!(TrapFrame, rsi),
        offset_of!(TrapFrame, rdx),
        offset_of!(TrapFrame, rcx),
        offset_of!(TrapFrame, rbx),
        offset_of!(TrapFrame, rax),
        offset_of!(TrapFrame, vector),
        offset_of!(TrapFrame, error_code),
        offset_of!(TrapFrame, rip),
        offset_of!(TrapFrame, cs),
        offset_of!(TrapFrame, rflags),
        offset_of!(TrapFrame, rsp),
        offset_of!(TrapFrame, ss),
    ];
    let mut i = 0;
    while i < order.len() {
        assert!(order[i] == i * 8);
        i += 1;
    }
    assert!(size_of::<TrapFrame>() == order.len() * 8);
    assert!(offset_of!(UserContext, fpu) == 0);
    assert!(offset_of!(UserContext, frame) == FPU_STATE_SIZE);
    assert!(size_of::<UserContext>() == FPU_STATE_SIZE + size_of::<TrapFrame>());
    // fxsave64 needs a 16-byte aligned area: a context at a 16-byte
    // aligned stack top keeps it aligned.
    assert!(size_of::<UserContext>().is_multiple_of(16));
};

/// Offsets the assembly uses: in the frame, and of the frame's
/// hardware-pushed part (vector onwards) after two more pushes.
const FRAME_RAX: usize = offset_of!(TrapFrame, rax);
const FRAME_RIP: usize = offset_of!(TrapFrame, rip);
const FRAME_RFLAGS: usize = offset_of!(TrapFrame, rflags);
const FRAME_RSP: usize = offset_of!(TrapFrame, rsp);
/// Bytes from `vector` to the end of the frame (vector, error code and the
/// five words the CPU pushes).
const FRAME_EVENT_PART: usize = size_of::<TrapFrame>() - offset_of!(TrapFrame, vector);

impl FpuState {
    pub const SIZE: usize = FPU_STATE_SIZE;
    const MXCSR: usize = 24;
    const MXCSR_MASK: usize = 28;

    /// The state after `fninit` with default MXCSR (Linux `init_fpstate`):
    /// what a signal handler starts with.
    pub fn init() -> FpuState {
        let mut state = FpuState([0; FPU_STATE_SIZE]);
        state.0[0..2].copy_from_slice(&0x37fu16.to_le_bytes()); // FCW
        state.0[Self::MXCSR..Self::MXCSR + 4].copy_from_slice(&0x1f80u32.to_le_bytes());
        state
    }

    /// The MXCSR bits this CPU supports (0 in the image means the
    /// architectural default 0xffbf).
    pub fn mxcsr_mask(&self) -> u32 {
        let mask = u32::from_le_bytes(
            self.0[Self::MXCSR_MASK..Self::MXCSR_MASK + 4]
                .try_into()
                .expect("4 bytes"),
        );
        if mask == 0 {
            0xffbf
        } else {
            mask
        }
    }

    /// Clears MXCSR bits the CPU does not support: `fxrstor` would fault on
    /// them (Linux masks user images with `mxcsr_feature_mask`).
    pub fn sanitize(&mut self, mxcsr_mask: u32) {
        let range = Self::MXCSR..Self::MXCSR + 4;
        let mxcsr = u32::from_le_bytes(self.0[range.clone()].try_into().expect("4 bytes"));
        self.0[range].copy_from_slice(&(mxcsr & mxcsr_mask).to_le_bytes());
    }
}

/// Bytes per stub; the IDT entry of vector `v` is `interrupt_stubs + v * STUB_SIZE`.
pub const STUB_SIZE: u64 = 64;

/// Nonzero when running natively on the PVM host; read by the entry code.
#[no_mangle]
static mut PVM_NATIVE: u8 = 0;

/// Selects the return path for the platform. Called once, before the IDT
/// is loaded.
pub fn set_pvm_native(on: bool) {
    // SAFETY: written once at boot before any interrupt can be taken.
    unsafe { PVM_NATIVE = u8::from(on) };
}

extern "C" {
    static interrupt_stubs: u8;
    static interrupt_stub0_hvm: u8;
}

/// Address of the entry stub for `vector` on this platform.
pub fn stub_address(vector: u8, pvm_native: bool) -> u64 {
    // Only the addresses of the assembly labels are taken.
    let (base, hvm0) = (
        &raw const interrupt_stubs as u64,
        &raw const interrupt_stub0_hvm as u64,
    );
    let pvm_prefix_len = hvm0 - base;
    base + u64::from(vector) * STUB_SIZE + if pvm_native { 0 } else { pvm_prefix_len }
}

/// Called by the entry code with interrupts disabled, with the context it
/// saved.
#[no_mangle]
extern "C" fn handle_trap(ctx: &mut UserContext) {
    use super::syscall::SYSCALL_VECTOR;
    let syscall = (ctx.frame.vector == SYSCALL_VECTOR).then_some(ctx.frame.rax);
    crate::sched::cputime::enter_kernel(ctx.frame.is_from_user());
    super::interrupts::dispatch(ctx);
    if ctx.frame.is_from_user() && !super::user_probe::interrupted_probe() {
        crate::sched::preempt_on_return_to_user();
        crate::process::exit::exit_if_fatal_pending();
        // Registers that rt_sigreturn restored are no call to restart.
        let syscall = syscall.filter(|_| ctx.frame.vector == SYSCALL_VECTOR);
        super::signal::do_signal(ctx, syscall);
        crate::sched::cputime::exit_to_user();
    }
}

global_asm!(
    r#"
    .section .text
    .balign 64
    .global interrupt_stubs
    .global interrupt_stub0_hvm
interrupt_stubs:
    vector = 0
    .rept 256
    .balign 64
    /* PVM prefix, run by the host's emulator: move to the lower-half view
       of the event stack, then switch back to native execution. */
    push rax
    movabs rax, {alias_to_direct}
    add rsp, rax
    push rcx
    push rdx
    mov ecx, {pvm_msr}
    mov eax, 1
    xor edx, edx
    wrmsr
    pop rdx
    pop rcx
    pop rax
    .if vector == 0
interrupt_stub0_hvm:
    .endif
    .if (vector == 8) || ((vector >= 10) && (vector <= 14)) || (vector == 17) || (vector == 21) || (vector == 29) || (vector == 30)
    .else
    push 0
    .endif
    push vector
    jmp interrupt_common
    vector = vector + 1
    .endr

interrupt_common:
    cmp byte ptr [rip + PVM_NATIVE], 0
    je 5f
    /* PVM: leave the shared event stack (except for double faults, whose
       interrupted stack may be the problem). Move vector, error code and
       the 5-word hardware frame to the interrupted kernel stack (below a
       128-byte gap the kernel-frame return uses) or, coming from user
       mode, to the task's kernel stack. After the two pushes below, the
       event part of the frame starts at rsp + 16; rax points at this
       CPU's data. */
    push rax
    push rbx
    movabs rax, {percpu}
    cmp byte ptr [rax + {user_mode}], 0
    jne 1f
    /* From the kernel: the frame gets the kernel CS (see is_from_user). */
    mov qword ptr [rsp + 16 + {ev_cs}], {kernel_cs}
    cmp qword ptr [rsp + 16], 8
    je 6f
    mov rbx, [rsp + 16 + {ev_rsp}]
    sub rbx, 256
    and rbx, -16
    jmp 2f
1:  /* From user mode. */
    mov byte ptr [rax + {user_mode}], 0
    mov qword ptr [rsp + 16 + {ev_cs}], {user_cs}
    cmp qword ptr [rsp + 16], 8
    je 6f
    mov rbx, [rax + {entry_stack}]
2:  sub rbx, 16 + {event_part}
    copied = 0
    .rept (16 + {event_part}) / 8
    mov rax, [rsp + copied]
    mov [rbx + copied], rax
    copied = copied + 8
    .endr
    mov rsp, rbx
6:  pop rbx
    pop rax

5:  jmp trap_save_registers

    /* rsp -> vector, error code, hardware frame: save the rest of the
       TrapFrame and the FPU/SSE state (the kernel itself uses SSE, so the
       interrupted code's registers must survive it), then dispatch. */
    .global trap_save_registers
trap_save_registers:
    push rax
    push rbx
    push rcx
    push rdx
    push rsi
    push rdi
    push rbp
    push r8
    push r9
    push r10
    push r11
    push r12
    push r13
    push r14
    push r15
    sub rsp, {fpu_size}
    fxsave64 [rsp]
    mov rdi, rsp
    cld
    call handle_trap

    /* rsp -> the UserContext (FPU state, then the TrapFrame). A new task
       starts here. */
    .global trap_exit
trap_exit:
    fxrstor64 [rsp]
    add rsp, {fpu_size}

    .global interrupt_return
interrupt_return:
    cmp byte ptr [rip + PVM_NATIVE], 0
    jne 1f
    pop r15
    pop r14
    pop r13
    pop r12
    pop r11
    pop r10
    pop r9
    pop r8
    pop rbp
    pop rdi
    pop rsi
    pop rdx
    pop rcx
    pop rbx
    pop rax
    add rsp, 16 /* vector, error code */
    iretq

1:  /* PVM: user frames return with sti; iretq */
    test byte ptr [rsp + {cs}], 3
    jz 2f
    pop r15
    pop r14
    pop r13
    pop r12
    pop r11
    pop r10
    pop r9
    pop r8
    pop rbp
    pop rdi
    pop rsi
    pop rdx
    pop rcx
    pop rbx
    movabs rax, {percpu}
    mov byte ptr [rax + {user_mode}], 1
    pop rax
    add rsp, 16 /* vector, error code */
    sti
    iretq

2:  /* PVM kernel frame: build [rax, rflags, rip] just below the
       interrupted stack pointer minus 128 (above this frame, which starts
       256 bytes lower), restore, switch stacks, popfq, ret 128. */
    mov rax, [rsp + {rsp}]
    sub rax, 128 + 24
    mov rbx, [rsp + {rip}]
    mov [rax + 16], rbx
    mov rbx, [rsp + {rflags}]
    mov [rax + 8], rbx
    mov rbx, [rsp + {rax}]
    mov [rax], rbx
    mov [rsp + {rax}], rax
    bt qword ptr [rsp + {rflags}], 9
    pop r15
    pop r14
    pop r13
    pop r12
    pop r11
    pop r10
    pop r9
    pop r8
    pop rbp
    pop rdi
    pop rsi
    pop rdx
    pop rcx
    pop rbx
    mov rsp, [rsp]
    jc 3f
    pop rax
    popfq
    ret 128
3:  pop rax
    popfq
    sti
    ret 128
    "#,
    alias_to_direct = const PAGE_OFFSET.wrapping_sub(PVM_EVENT_ALIAS),
    pvm_msr = const PVM_CONTROL_MSR,
    fpu_size = const FPU_STATE_SIZE,
    percpu = const super::percpu::WINDOW,
    user_mode = const super::percpu::OFFSET_USER_MODE,
    entry_stack = const super::percpu::OFFSET_ENTRY_STACK,
    kernel_cs = const KERNEL_CS,
    user_cs = const USER_CS,
    cs = const offset_of!(TrapFrame, cs),
    ev_cs = const offset_of!(TrapFrame, cs) - offset_of!(TrapFrame, vector),
    rax = const FRAME_RAX,
    rip = const FRAME_RIP,
    rflags = const FRAME_RFLAGS,
    rsp = const FRAME_RSP,
    ev_rsp = const FRAME_RSP - offset_of!(TrapFrame, vector),
    event_part = const FRAME_EVENT_PART,
);
