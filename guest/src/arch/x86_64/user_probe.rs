//! A minimal excursion to ring 3, used to measure timer-interrupt delivery
//! in user mode before processes exist (the `ticks` shell command).
//!
//! The probe maps one code page and one stack page at fixed user
//! addresses in the current address space, enters ring 3 with `iretq`
//! (`sti; iretq` on the PVM host), spins until a TSC deadline, and executes
//! `ud2`; the #UD handler sees a trap from the probe and resumes the kernel
//! right after the `enter` call.

use core::arch::global_asm;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::cpu::read_cr3;
use super::gdt::{USER_CS, USER_DS};
use crate::mm::frame::FrameUse;
use crate::mm::paging::{self, flags};
use crate::mm::{phys_to_virt, KernelTables, FRAMES};

/// User address of the probe's code page.
const CODE_ADDRESS: u64 = 0x40_0000;
/// User address of the probe's stack page.
const STACK_ADDRESS: u64 = 0x7f_f000;

/// A gap longer than this between two consecutive TSC reads of a spin loop
/// is time taken by an interrupt (a loop iteration takes ~50 cycles).
pub const STOLEN_GAP_CYCLES: u64 = 1000;

static MAPPED: AtomicBool = AtomicBool::new(false);
static STOLEN: AtomicU64 = AtomicU64::new(0);
static RUNNING: AtomicBool = AtomicBool::new(false);

/// Kernel stack pointer saved while the probe runs.
#[no_mangle]
static mut USER_PROBE_KERNEL_RSP: u64 = 0;

extern "C" {
    static user_probe_syscalls: u8;
    static user_probe_code: u8;
    static user_probe_code_end: u8;
    fn user_probe_enter(entry: u64, stack: u64, deadline: u64, pvm_native: u64);
    fn user_probe_resume() -> !;
}

/// Why the probe could not run.
#[derive(Debug)]
pub struct ProbeError(&'static str);

impl core::fmt::Display for ProbeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.0)
    }
}

fn map() -> Result<(), ProbeError> {
    if MAPPED.load(Ordering::Acquire) {
        return Ok(());
    }
    let mut frames = FRAMES.lock();
    let frames = frames.as_mut().ok_or(ProbeError("no frame allocator"))?;
    let code = frames
        .alloc(FrameUse::Data)
        .ok_or(ProbeError("out of memory"))?;
    let stack = frames
        .alloc(FrameUse::Data)
        .ok_or(ProbeError("out of memory"))?;
    // Only the addresses of the assembly labels are taken.
    let (start, end) = (
        &raw const user_probe_code as u64,
        &raw const user_probe_code_end as u64,
    );
    // SAFETY: both frames were just allocated and are mapped by the direct
    // map; the source is the probe's code in the kernel image.
    unsafe {
        core::ptr::copy_nonoverlapping(
            start as *const u8,
            phys_to_virt(code.phys()) as *mut u8,
            (end - start) as usize,
        );
        core::ptr::write_bytes(phys_to_virt(stack.phys()) as *mut u8, 0, 4096);
    }
    let root = read_cr3() & paging::ADDRESS_MASK;
    let table = flags::WRITABLE | flags::USER;
    let mut tables = KernelTables(frames);
    paging::map_page(
        &mut tables,
        root,
        CODE_ADDRESS,
        code.phys(),
        flags::USER,
        table,
    )
    .map_err(|_| ProbeError("cannot map the probe's code"))?;
    paging::map_page(
        &mut tables,
        root,
        STACK_ADDRESS,
        stack.phys(),
        flags::USER | flags::WRITABLE,
        table,
    )
    .map_err(|_| ProbeError("cannot map the probe's stack"))?;
    MAPPED.store(true, Ordering::Release);
    Ok(())
}

/// Runs user-mode code that spins until the TSC reaches `deadline`.
/// Returns the TSC cycles the spin lost to interrupts, with interrupts
/// disabled.
pub fn spin_in_user_mode(deadline: u64) -> Result<u64, ProbeError> {
    map()?;
    let task_stack = super::gdt::kernel_stack();
    // Traps from the probe must not land on this task's own (busy) stack.
    super::gdt::set_kernel_stack(super::gdt::spare_entry_stack_top());
    RUNNING.store(true, Ordering::Release);
    // SAFETY: the probe's pages are mapped; `user_probe_enter` saves the
    // callee-saved registers and returns once the probe traps (see
    // `finish_from_trap`).
    unsafe {
        user_probe_enter(
            CODE_ADDRESS,
            STACK_ADDRESS + 4096,
            deadline,
            u64::from(super::platform::is_pvm_native()),
        )
    };
    RUNNING.store(false, Ordering::Release);
    super::gdt::set_kernel_stack(task_stack);
    Ok(STOLEN.load(Ordering::Acquire))
}

/// Runs `iterations` `getpid` system calls from user mode; returns their
/// total TSC cycles (entry, dispatch and return each time).
pub fn syscalls_from_user_mode(iterations: u64) -> Result<u64, ProbeError> {
    map()?;
    // Only label addresses are taken.
    let offset = &raw const user_probe_syscalls as u64 - &raw const user_probe_code as u64;
    let task_stack = super::gdt::kernel_stack();
    super::gdt::set_kernel_stack(super::gdt::spare_entry_stack_top());
    RUNNING.store(true, Ordering::Release);
    // SAFETY: as in `spin_in_user_mode`.
    unsafe {
        user_probe_enter(
            CODE_ADDRESS + offset,
            STACK_ADDRESS + 4096,
            iterations.max(1),
            u64::from(super::platform::is_pvm_native()),
        )
    };
    RUNNING.store(false, Ordering::Release);
    super::gdt::set_kernel_stack(task_stack);
    Ok(STOLEN.load(Ordering::Acquire))
}

/// Called for an exception from user mode: if the probe is running, this
/// is its final `ud2`; resume the kernel where it entered the probe.
pub fn finish_from_trap(frame: &super::entry::TrapFrame) {
    if RUNNING.load(Ordering::Acquire) {
        STOLEN.store(frame.r8, Ordering::Release);
        // SAFETY: the probe is running, so USER_PROBE_KERNEL_RSP holds the
        // stack saved by `user_probe_enter`, which is still live below it.
        unsafe { user_probe_resume() }
    }
}

global_asm!(
    r#"
    .section .text
    /* The probe itself: copied to a user page, position independent.
       rdi = TSC deadline. */
    .global user_probe_code
    .global user_probe_code_end
user_probe_code:
    /* r8 = cycles lost in gaps between two TSC reads longer than
       rsi cycles (interrupts taken), r9 = previous TSC. */
    xor r8d, r8d
    rdtsc
    shl rdx, 32
    or rax, rdx
    mov r9, rax
1:  rdtsc
    shl rdx, 32
    or rax, rdx
    mov r10, rax
    sub r10, r9
    cmp r10, rsi
    jb 2f
    add r8, r10
2:  mov r9, rax
    cmp rax, rdi
    jb 1b
    ud2

    /* rdi = iterations: r8 = total cycles of `getpid` system calls. */
    .global user_probe_syscalls
user_probe_syscalls:
    xor r8d, r8d
1:  lfence
    rdtsc
    shl rdx, 32
    or rax, rdx
    mov r9, rax
    mov eax, 39
    syscall
    lfence
    rdtsc
    shl rdx, 32
    or rax, rdx
    sub rax, r9
    add r8, rax
    dec rdi
    jnz 1b
    ud2
user_probe_code_end:

    /* user_probe_enter(entry, stack, deadline, pvm_native) */
    .global user_probe_enter
user_probe_enter:
    push rbx
    push rbp
    push r12
    push r13
    push r14
    push r15
    mov [rip + USER_PROBE_KERNEL_RSP], rsp
    push {user_ds}
    push rsi
    push 0x202
    push {user_cs}
    push rdi
    mov rdi, rdx
    mov rsi, {gap}
    test rcx, rcx
    /* Leave no kernel values in registers. */
    mov eax, 0
    mov ebx, 0
    mov ecx, 0
    mov edx, 0
    mov ebp, 0
    mov r8d, 0
    mov r9d, 0
    mov r10d, 0
    mov r11d, 0
    mov r12d, 0
    mov r13d, 0
    mov r14d, 0
    mov r15d, 0
    jnz 2f
    iretq
2:  sti
    iretq

    .global user_probe_resume
user_probe_resume:
    mov rsp, [rip + USER_PROBE_KERNEL_RSP]
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbp
    pop rbx
    ret
    "#,
    user_ds = const USER_DS,
    user_cs = const USER_CS,
    gap = const STOLEN_GAP_CYCLES,
);
