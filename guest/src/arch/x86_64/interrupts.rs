//! Vector assignment and dispatch of interrupts and exceptions.

use super::apic;
use super::cpu::read_cr2;
use super::entry::TrapFrame;

/// Local APIC timer (the tick).
pub const TIMER_VECTOR: u8 = 0x20;
/// First vector used for IOAPIC lines: GSI n arrives as `IRQ_BASE + n`.
pub const IRQ_BASE: u8 = 0x20;

const EXCEPTION_NAMES: [&str; 32] = [
    "#DE divide error",
    "#DB debug",
    "NMI",
    "#BP breakpoint",
    "#OF overflow",
    "#BR bound range",
    "#UD invalid opcode",
    "#NM device not available",
    "#DF double fault",
    "coprocessor segment overrun",
    "#TS invalid TSS",
    "#NP segment not present",
    "#SS stack fault",
    "#GP general protection",
    "#PF page fault",
    "reserved 15",
    "#MF x87 floating point",
    "#AC alignment check",
    "#MC machine check",
    "#XM SIMD floating point",
    "#VE virtualization",
    "#CP control protection",
    "reserved 22",
    "reserved 23",
    "reserved 24",
    "reserved 25",
    "reserved 26",
    "reserved 27",
    "#HV hypervisor injection",
    "#VC VMM communication",
    "#SX security",
    "reserved 31",
];

const PAGE_FAULT: u64 = 14;

pub(super) fn dispatch(frame: &mut TrapFrame) {
    match frame.vector {
        super::syscall::SYSCALL_VECTOR => crate::syscall::dispatch(frame),
        v if v < 32 => exception(frame),
        v if v == u64::from(TIMER_VECTOR) => {
            apic::rearm_timer();
            crate::time::tick();
            crate::sched::tick();
            apic::eoi();
        }
        v if v == u64::from(apic::SPURIOUS_VECTOR) => {}
        v if v >= u64::from(IRQ_BASE) && v < u64::from(IRQ_BASE) + 24 => {
            crate::drivers::handle_irq((v - u64::from(IRQ_BASE)) as u32);
            apic::eoi();
        }
        v => {
            crate::println!("kernel: unexpected interrupt vector {v:#x}");
            apic::eoi();
        }
    }
}

/// Exceptions: nothing recovers from them yet, so they all stop the kernel
/// with enough state to debug it.
fn exception(frame: &TrapFrame) {
    if frame.is_from_user() {
        // The only user code so far is the tick probe, which ends in `ud2`.
        super::user_probe::finish_from_trap(frame);
    }
    let name = EXCEPTION_NAMES[frame.vector as usize];
    let mode = if frame.is_from_user() {
        "user"
    } else {
        "kernel"
    };
    if frame.vector == PAGE_FAULT {
        panic!(
            "unhandled exception {name} (vector {}) in {mode} mode: rip={:#x} cr2={:#x} error={:#x} rsp={:#x}",
            frame.vector,
            frame.rip,
            read_cr2(),
            frame.error_code,
            frame.rsp
        );
    }
    panic!(
        "unhandled exception {name} (vector {}) in {mode} mode: rip={:#x} error={:#x} rsp={:#x}",
        frame.vector, frame.rip, frame.error_code, frame.rsp
    );
}
