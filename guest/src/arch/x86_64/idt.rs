//! Interrupt descriptor table.

use core::arch::asm;
use core::mem::size_of;

use super::entry::stub_address;
use super::gdt::{DOUBLE_FAULT_IST, EVENT_IST, KERNEL_CS};

/// Double-fault vector.
const DOUBLE_FAULT: u8 = 8;

#[repr(C)]
#[derive(Clone, Copy)]
struct Gate {
    offset_low: u16,
    selector: u16,
    ist: u8,
    type_attr: u8,
    offset_mid: u16,
    offset_high: u32,
    reserved: u32,
}

impl Gate {
    const MISSING: Gate = Gate {
        offset_low: 0,
        selector: 0,
        ist: 0,
        type_attr: 0,
        offset_mid: 0,
        offset_high: 0,
        reserved: 0,
    };

    /// A present 64-bit interrupt gate (interrupts masked on entry), DPL 0.
    fn interrupt(handler: u64, ist: u8) -> Gate {
        Gate {
            offset_low: handler as u16,
            selector: KERNEL_CS,
            ist,
            type_attr: 0x8e,
            offset_mid: (handler >> 16) as u16,
            offset_high: (handler >> 32) as u32,
            reserved: 0,
        }
    }
}

static mut IDT: [Gate; 256] = [Gate::MISSING; 256];

#[repr(C, packed)]
struct DescriptorPointer {
    limit: u16,
    base: u64,
}

/// Fills every vector with its entry stub for this platform and loads the IDT.
pub fn init(pvm_native: bool) {
    // SAFETY: runs once at boot with interrupts disabled; the IDT is a
    // static that lives forever.
    unsafe {
        let idt = &raw mut IDT;
        for vector in 0..=255u8 {
            // On the PVM host every event must arrive on an (upper-half) IST
            // stack; the entry code moves off it at once.
            let ist = match (vector, pvm_native) {
                (DOUBLE_FAULT, _) => DOUBLE_FAULT_IST,
                (_, true) => EVENT_IST,
                (_, false) => 0,
            };
            (*idt)[usize::from(vector)] = Gate::interrupt(stub_address(vector, pvm_native), ist);
        }
    }
    load();
}

/// Loads the IDT (which every CPU shares) on this CPU.
pub fn load() {
    let pointer = DescriptorPointer {
        limit: (size_of::<[Gate; 256]>() - 1) as u16,
        base: (&raw const IDT) as u64,
    };
    // SAFETY: the IDT is a static filled by `init` before any CPU loads it.
    unsafe { asm!("lidt [{}]", in(reg) &pointer, options(readonly, nostack, preserves_flags)) };
}
