//! A minimal excursion to ring 3, used to measure timer-interrupt delivery
//! in user mode before processes exist (the `ticks` shell command).
//!
//! The probe maps one code page and one stack page at fixed user
//! addresses in the current address space, enters ring 3 with `iretq`
//! (`sti; iretq` on the PVM host), spins until a TSC deadline, and executes
//! `ud2`; the #UD handler sees a trap from the probe and resumes the kernel
//! right after the `enter` call. Interrupts taken meanwhile return straight
//! to the probe ([`interrupted_probe`]): no preemption, no signal frame.

use core::arch::global_asm;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use alloc::sync::Arc;

use super::gdt::{USER_CS, USER_DS};
use crate::mm::address_space::{activate, AddressSpace};
use crate::mm::vma::{Prot, VmaFlags};

/// User address of the probe's code page.
const CODE_ADDRESS: u64 = 0x40_0000;
/// User address of the probe's stack page.
const STACK_ADDRESS: u64 = 0x7f_f000;

/// A gap longer than this between two consecutive TSC reads of a spin loop
/// is time taken by an interrupt (a loop iteration takes ~50 cycles).
pub const STOLEN_GAP_CYCLES: u64 = 1000;

static STOLEN: AtomicU64 = AtomicU64::new(0);
static RUNNING: AtomicBool = AtomicBool::new(false);

/// Kernel stack pointer saved while the probe runs.
#[no_mangle]
static mut USER_PROBE_KERNEL_RSP: u64 = 0;

extern "C" {
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

/// The probe's own address space: its code page and stack page.
static PROBE_MM: spin::Once<Option<Arc<AddressSpace>>> = spin::Once::new();

fn probe_mm() -> Result<Arc<AddressSpace>, ProbeError> {
    PROBE_MM
        .call_once(|| {
            let mm = AddressSpace::new().ok()?;
            mm.map_populated(
                CODE_ADDRESS,
                CODE_ADDRESS + 4096,
                Prot::READ | Prot::EXEC,
                VmaFlags::PRIVATE,
            )
            .ok()?;
            mm.map_populated(
                STACK_ADDRESS,
                STACK_ADDRESS + 4096,
                Prot::READ | Prot::WRITE,
                VmaFlags::ANONYMOUS,
            )
            .ok()?;
            // Only the addresses of the assembly labels are taken.
            let (start, end) = (
                &raw const user_probe_code as u64,
                &raw const user_probe_code_end as u64,
            );
            // SAFETY: the probe's code, inside the kernel image.
            let code =
                unsafe { core::slice::from_raw_parts(start as *const u8, (end - start) as usize) };
            mm.poke(CODE_ADDRESS, code).ok()?;
            Some(mm)
        })
        .clone()
        .ok_or(ProbeError("out of memory"))
}

/// Runs the probe code at `entry` with `argument` in its own address
/// space and on a spare kernel entry stack; restores both afterwards.
fn run_probe(entry: u64, argument: u64) -> Result<u64, ProbeError> {
    let mm = probe_mm()?;
    let previous = crate::sched::current().mm();
    activate(Some(&mm));
    let task_stack = super::gdt::kernel_stack();
    // Traps from the probe must not land on this task's own (busy) stack.
    super::gdt::set_kernel_stack(super::gdt::spare_entry_stack_top());
    RUNNING.store(true, Ordering::Release);
    // SAFETY: the probe's pages are mapped and active; `user_probe_enter`
    // saves the callee-saved registers and returns once the probe traps
    // (see `finish_from_trap`).
    unsafe {
        user_probe_enter(
            entry,
            STACK_ADDRESS + 4096,
            argument,
            u64::from(super::platform::is_pvm_native()),
        )
    };
    RUNNING.store(false, Ordering::Release);
    super::gdt::set_kernel_stack(task_stack);
    activate(previous.as_deref());
    Ok(STOLEN.load(Ordering::Acquire))
}

/// Runs user-mode code that spins until the TSC reaches `deadline`.
/// Returns the TSC cycles the spin lost to interrupts, with interrupts
/// disabled.
pub fn spin_in_user_mode(deadline: u64) -> Result<u64, ProbeError> {
    run_probe(CODE_ADDRESS, deadline)
}

/// Whether a trap from user mode came from the probe: it is running and
/// its address space is the active one. The probe is kernel code at ring
/// 3, in the middle of a system call: such a trap goes straight back to it,
/// with no preemption and no signal delivery (the task's registers and
/// stack are not the probe's; both wait until the system call returns, as
/// for any other kernel code, which is not preemptible).
pub fn interrupted_probe() -> bool {
    RUNNING.load(Ordering::Acquire)
        && PROBE_MM
            .get()
            .and_then(Option::as_ref)
            .is_some_and(|mm| mm.is_active())
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
2:  movabs rax, {percpu}
    mov byte ptr [rax + {user_mode}], 1
    mov eax, 0
    sti
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
    percpu = const super::percpu::WINDOW,
    user_mode = const super::percpu::OFFSET_USER_MODE,
);
