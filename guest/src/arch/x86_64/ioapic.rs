//! The IOAPIC: routes device interrupt lines (GSIs) to vectors.

use forkvm_abi::{IOAPIC_PHYS, PAGE_OFFSET};

const IOREGSEL: u64 = 0x00;
const IOWIN: u64 = 0x10;
const REDIRECTION_TABLE: u32 = 0x10;

fn write(register: u32, value: u32) {
    let base = PAGE_OFFSET + IOAPIC_PHYS;
    // SAFETY: the IOAPIC's MMIO window is mapped in the direct map; its two
    // registers are 32-bit and these are plain device writes.
    unsafe {
        core::ptr::write_volatile((base + IOREGSEL) as *mut u32, register);
        core::ptr::write_volatile((base + IOWIN) as *mut u32, value);
    }
}

/// Delivers `gsi` (edge-triggered, active high) as `vector` to the CPU with
/// APIC id `apic_id`.
pub fn route(gsi: u32, vector: u8, apic_id: u32) {
    let entry = REDIRECTION_TABLE + 2 * gsi;
    write(entry + 1, apic_id << 24);
    write(entry, u32::from(vector));
}

/// Masks both legacy 8259 PICs; KVM's in-kernel irqchip has them too and
/// they must not deliver anything.
pub fn mask_legacy_pic() {
    super::cpu::outb(0x21, 0xff);
    super::cpu::outb(0xa1, 0xff);
}
