//! Global descriptor table and task-state segment.
//!
//! The layout is Linux's (`arch/x86/include/asm/segment.h`), which the PVM
//! host expects and which makes `syscall`/`sysret` selectors work:
//! 0x10 kernel code, 0x18 kernel data, 0x23 user 32-bit code, 0x2b user
//! data, 0x33 user code, 0x40 TSS. The kernel selectors are loaded by the
//! VMM before entry and never reloaded here.

use core::arch::asm;
use core::mem::size_of;

use forkvm_abi::{PAGE_OFFSET, PVM_EVENT_ALIAS};

pub const KERNEL_CS: u16 = 0x10;
pub const USER_DS: u16 = 0x2b;
pub const USER_CS: u16 = 0x33;
pub const TSS_SELECTOR: u16 = 0x40;

/// IST index of the double-fault stack (so a kernel stack overflow is
/// reported instead of triple-faulting).
pub const DOUBLE_FAULT_IST: u8 = 1;
/// IST index of the stack every other event arrives on (PVM host only).
pub const EVENT_IST: u8 = 2;

const IST_STACK_SIZE: usize = 16 * 1024;

/// The 64-bit task-state segment.
#[repr(C, packed(4))]
pub struct TaskStateSegment {
    reserved0: u32,
    /// Stack pointers loaded on a privilege change to ring 0 (only rsp[0] is used).
    pub rsp: [u64; 3],
    reserved1: u64,
    /// Interrupt stack table.
    pub ist: [u64; 7],
    reserved2: u64,
    reserved3: u16,
    iomap_base: u16,
}

#[repr(C, align(16))]
struct Stack<const N: usize>([u8; N]);

static mut DOUBLE_FAULT_STACK: Stack<IST_STACK_SIZE> = Stack([0; IST_STACK_SIZE]);
static mut EVENT_STACK: Stack<IST_STACK_SIZE> = Stack([0; IST_STACK_SIZE]);
/// Kernel stack for entries from user mode until the scheduler installs
/// per-task stacks.
static mut INITIAL_ENTRY_STACK: Stack<IST_STACK_SIZE> = Stack([0; IST_STACK_SIZE]);

/// The boot CPU's TSS; the others allocate theirs ([`init_secondary`]).
static mut TSS: TaskStateSegment = TaskStateSegment::EMPTY;

impl TaskStateSegment {
    const EMPTY: TaskStateSegment = TaskStateSegment {
        reserved0: 0,
        rsp: [0; 3],
        reserved1: 0,
        ist: [0; 7],
        reserved2: 0,
        reserved3: 0,
        // No I/O permission bitmap: the offset points past the segment limit.
        iomap_base: size_of::<TaskStateSegment>() as u16,
    };
}

const fn segment(access: u64, flags: u64) -> u64 {
    // limit 0xfffff, base 0: only the access byte and flags matter in long mode.
    0xffff | (0xf << 48) | (access << 40) | (flags << 52)
}

const PRESENT: u64 = 0x80;
const DPL3: u64 = 0x60;
const CODE: u64 = 0x18 | 0x2 | 0x1; // code segment, readable, accessed
const DATA: u64 = 0x10 | 0x2 | 0x1; // data segment, writable, accessed
const LONG: u64 = 0x2; // L bit
const GRAN_4K: u64 = 0x8;
const SIZE_32: u64 = 0x4;

static mut GDT: [u64; 10] = [
    0,
    0,
    segment(PRESENT | CODE, LONG | GRAN_4K),
    segment(PRESENT | DATA, SIZE_32 | GRAN_4K),
    segment(PRESENT | DPL3 | CODE, SIZE_32 | GRAN_4K),
    segment(PRESENT | DPL3 | DATA, SIZE_32 | GRAN_4K),
    segment(PRESENT | DPL3 | CODE, LONG | GRAN_4K),
    0,
    0, // TSS, low half (filled in by `init`)
    0, // TSS, high half
];

#[repr(C, packed)]
struct DescriptorPointer {
    limit: u16,
    base: u64,
}

/// The address at which the CPU must see a stack top: on the PVM host,
/// its upper-half alias.
fn ist_top(stack_base: u64, pvm_native: bool) -> u64 {
    let top = stack_base + IST_STACK_SIZE as u64;
    if pvm_native {
        top - PAGE_OFFSET + PVM_EVENT_ALIAS
    } else {
        top
    }
}

/// The two GDT words of a 64-bit available TSS at `base`.
fn tss_descriptor(base: u64) -> [u64; 2] {
    let limit = size_of::<TaskStateSegment>() as u64 - 1;
    [
        (limit & 0xffff)
            | ((base & 0xff_ffff) << 16)
            | (0x89 << 40) // present, 64-bit available TSS
            | (((limit >> 16) & 0xf) << 48)
            | (((base >> 24) & 0xff) << 56),
        base >> 32,
    ]
}

/// Loads `gdt` and its TSS.
///
/// # Safety
/// `gdt` must live forever and hold a valid available TSS descriptor at
/// [`TSS_SELECTOR`].
unsafe fn load(gdt: *const [u64; 10]) {
    let pointer = DescriptorPointer {
        limit: (size_of::<[u64; 10]>() - 1) as u16,
        base: gdt as u64,
    };
    // The VMM entered us with CS/SS/DS already holding these selectors
    // (same layout), so the segment registers need no reload: on the PVM
    // host a segment load would drop the kernel into the emulator.
    // SAFETY: forwarded from the caller.
    unsafe {
        asm!(
            "lgdt [{ptr}]",
            "ltr {tss:x}",
            ptr = in(reg) &pointer,
            tss = in(reg) TSS_SELECTOR,
        );
    }
}

/// Installs the boot CPU's GDT and TSS.
pub fn init(pvm_native: bool) {
    // SAFETY: runs once on the boot CPU before interrupts are enabled, so
    // nothing else touches the GDT or TSS while they are written.
    unsafe {
        let tss = &raw mut TSS;
        (*tss).ist[usize::from(DOUBLE_FAULT_IST) - 1] =
            ist_top((&raw const DOUBLE_FAULT_STACK) as u64, pvm_native);
        (*tss).ist[usize::from(EVENT_IST) - 1] =
            ist_top((&raw const EVENT_STACK) as u64, pvm_native);
        super::percpu::this_cpu()
            .tss
            .store(tss as u64, core::sync::atomic::Ordering::Relaxed);
        set_kernel_stack((&raw const INITIAL_ENTRY_STACK) as u64 + IST_STACK_SIZE as u64);

        let gdt = &raw mut GDT;
        [(*gdt)[8], (*gdt)[9]] = tss_descriptor(tss as u64);
        load(gdt);
    }
}

/// Installs a secondary CPU's own GDT and TSS, with its own IST stacks
/// (a busy TSS cannot be loaded twice, and shared event stacks would
/// corrupt each other's events) and entry stack, all allocated for good.
pub fn init_secondary(pvm_native: bool) {
    use alloc::boxed::Box;
    let stack_top = || {
        let stack = Box::leak(Box::new(Stack([0u8; IST_STACK_SIZE])));
        stack as *mut _ as u64 + IST_STACK_SIZE as u64
    };
    let tss = Box::leak(Box::new(TaskStateSegment::EMPTY));
    let (double_fault, event, entry) = (stack_top(), stack_top(), stack_top());
    let to_ist = |top: u64| ist_top(top - IST_STACK_SIZE as u64, pvm_native);
    tss.ist[usize::from(DOUBLE_FAULT_IST) - 1] = to_ist(double_fault);
    tss.ist[usize::from(EVENT_IST) - 1] = to_ist(event);
    let tss_address = tss as *mut TaskStateSegment as u64;
    super::percpu::this_cpu()
        .tss
        .store(tss_address, core::sync::atomic::Ordering::Relaxed);
    set_kernel_stack(entry);
    // SAFETY: GDT is only written by the boot CPU's `init`, long done.
    let mut gdt = Box::new(unsafe { GDT });
    [gdt[8], gdt[9]] = tss_descriptor(tss_address);
    // SAFETY: the leaked GDT lives forever and holds this CPU's fresh
    // (available) TSS descriptor.
    unsafe { load(Box::leak(gdt)) };
}

/// Top of a kernel stack reserved for traps from code that enters user
/// mode in the middle of a kernel call chain (the user-mode probe), whose
/// own stack top is in use.
pub fn spare_entry_stack_top() -> u64 {
    (&raw const INITIAL_ENTRY_STACK) as u64 + IST_STACK_SIZE as u64
}

/// The stack traps from user mode currently land on.
pub fn kernel_stack() -> u64 {
    use core::sync::atomic::Ordering;
    super::percpu::this_cpu()
        .kernel_entry_stack
        .load(Ordering::Relaxed)
}

/// Sets the stack the kernel switches to when an interrupt or system call
/// arrives from user mode, on this CPU.
pub fn set_kernel_stack(top: u64) {
    use core::sync::atomic::Ordering;
    let local = super::percpu::this_cpu();
    let tss = local.tss.load(Ordering::Relaxed) as *mut TaskStateSegment;
    // SAFETY: `tss` is this CPU's TSS (set before the first call); rsp0 is
    // read by the CPU only on entry from user mode, which cannot happen
    // concurrently on this CPU. The field is 4-byte aligned (packed).
    unsafe { (&raw mut (*tss).rsp[0]).write_unaligned(top) };
    local.kernel_entry_stack.store(top, Ordering::Relaxed);
}
