//! The `syscall` instruction's entry point (Linux x86-64 ABI).
//!
//! `syscall` switches neither stacks nor anything else, so the entry saves
//! the user stack pointer, moves to the current task's kernel stack and
//! pushes a hardware-like frame (user SS, RSP, RFLAGS from r11, CS, RIP
//! from rcx) with the pseudo-vector [`SYSCALL_VECTOR`]. From there it is an
//! ordinary trap: the same [`TrapFrame`](super::entry::TrapFrame), the same
//! FPU save and the same return path (which on the PVM host must be
//! `sti; iretq`; `sysretq` is emulated there).

use core::arch::global_asm;

use super::cpu::wrmsr;
use super::gdt::{KERNEL_CS, USER_CS, USER_DS};

/// `TrapFrame::vector` of a system call (above every real vector).
pub const SYSCALL_VECTOR: u64 = 256;

const MSR_STAR: u32 = 0xc000_0081;
const MSR_LSTAR: u32 = 0xc000_0082;
const MSR_SFMASK: u32 = 0xc000_0084;

/// RFLAGS bits cleared on entry: IF (the entry runs with interrupts off until
/// it is on the kernel stack), TF, DF, AC, and NT (a user's nested-task
/// flag would make the kernel's `iretq` fault; Linux masks it too).
const ENTRY_FLAGS_MASK: u64 = (1 << 9) | (1 << 8) | (1 << 10) | (1 << 18) | (1 << 14);

extern "C" {
    fn syscall_entry();
}

/// Points the `syscall` instruction at our entry.
pub fn init() {
    // `sysret` would load CS = base + 16 and SS = base + 8 from this base.
    let user_base = u64::from(USER_CS) - 16;
    // SAFETY: architectural syscall MSRs; EFER.SCE was set by the VMM and
    // the entry point below is valid kernel code.
    unsafe {
        wrmsr(MSR_STAR, (user_base << 48) | (u64::from(KERNEL_CS) << 32));
        wrmsr(MSR_LSTAR, syscall_entry as *const () as u64);
        wrmsr(MSR_SFMASK, ENTRY_FLAGS_MASK);
    }
}

global_asm!(
    r#"
    .section .text
    .global syscall_entry
syscall_entry:
    /* Only rcx and r11 are free: park rax in this CPU's data (an absolute
       address, see percpu), then reach the rest through it. */
    movabs qword ptr [{percpu} + {scratch}], rax
    movabs rax, {percpu}
    mov byte ptr [rax + {user_mode}], 0
    mov [rax + {user_rsp}], rsp
    mov rsp, [rax + {entry_stack}]
    push {user_ds}
    push qword ptr [rax + {user_rsp}]
    push r11
    push {user_cs}
    push rcx
    push 0
    push {vector}
    mov rax, [rax + {scratch}]
    cmp byte ptr [rip + PVM_NATIVE], 0
    jne 1f
    jmp trap_save_registers

1:  /* PVM: a `syscall` made with a non-canonical rsp enters the kernel in
       the host's instruction emulator (which then fails at the first SSE
       instruction); switch back to native execution as the event stubs
       do. Canonical means bits 63..47 all equal. The user rsp is the
       frame's sixth word, above the pushed rax. */
    push rax
    mov rax, [rsp + 48]
    sar rax, 47
    jz 2f
    inc rax
    jz 2f
    push rcx
    push rdx
    mov ecx, {pvm_msr}
    mov eax, 1
    xor edx, edx
    wrmsr
    pop rdx
    pop rcx
2:  pop rax
    jmp trap_save_registers
    "#,
    user_ds = const USER_DS,
    user_cs = const USER_CS,
    vector = const SYSCALL_VECTOR,
    pvm_msr = const forkvm_abi::PVM_CONTROL_MSR,
    percpu = const super::percpu::WINDOW,
    scratch = const super::percpu::OFFSET_SCRATCH,
    user_rsp = const super::percpu::OFFSET_USER_RSP,
    user_mode = const super::percpu::OFFSET_USER_MODE,
    entry_stack = const super::percpu::OFFSET_ENTRY_STACK,
);
