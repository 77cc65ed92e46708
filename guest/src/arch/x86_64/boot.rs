//! The kernel's first instructions.
//!
//! The VMM enters `_start` in 64-bit mode with paging on (the boot page
//! tables map all RAM at `PAGE_OFFSET`), interrupts off, and the physical
//! address of the boot information in `rsi` and the CPU's number in `rdx`.
//! On the PVM host the kernel already runs natively (the VMM set the
//! control MSR before the first run). CPU 0 boots the kernel; the others
//! wait here until it gives them a stack (see `smp`).

use core::arch::global_asm;

/// Size of the boot stack, which later serves as the idle task's stack.
pub const BOOT_STACK_SIZE: usize = 64 * 1024;

/// The boot stack (in `.bss`, so it costs nothing in the image).
#[repr(C, align(16))]
pub struct BootStack(pub [u8; BOOT_STACK_SIZE]);

#[no_mangle]
static mut BOOT_STACK: BootStack = BootStack([0; BOOT_STACK_SIZE]);

global_asm!(
    r#"
    .section .text.boot, "ax"
    .global _start
_start:
    cli
    cld
    xor ebp, ebp
    /* The precompiled `core` uses SSE: CR0.MP=1, CR0.EM=0, CR4.OSFXSR and
       CR4.OSXMMEXCPT before any Rust code runs. */
    mov rax, cr0
    and rax, ~(1 << 2)
    or rax, (1 << 1)
    mov cr0, rax
    mov rax, cr4
    or rax, (1 << 9) | (1 << 10)
    mov cr4, rax
    test rdx, rdx
    jnz 1f
    lea rsp, [rip + BOOT_STACK + {stack_size}]
    mov rdi, rsi
    call {kernel_main}
0:  hlt
    jmp 0b

1:  /* A secondary CPU: wait for the boot CPU to publish its stack. */
    lea rcx, [rip + AP_STACK_TOPS]
2:  pause
    mov rax, [rcx + rdx * 8]
    test rax, rax
    jz 2b
    mov rsp, rax
    mov rdi, rdx
    call {ap_main}
    jmp 0b
    "#,
    stack_size = const BOOT_STACK_SIZE,
    kernel_main = sym crate::kernel_main,
    ap_main = sym super::smp::ap_main,
);
