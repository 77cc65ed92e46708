//! Device drivers. Their pure parts (`virtio_mmio`'s identification
//! logic, `virtio_console`'s virtqueue) are in `forkvm_core::drivers`.

pub mod uart;
pub mod virtio_console;
pub mod virtio_mmio;
pub mod vmm_ports;

use forkvm_abi::port::SERIAL_COM1;

/// The serial console.
pub static COM1: uart::Uart = uart::Uart::new(SERIAL_COM1);

/// IOAPIC line of the serial port (from the boot information).
static SERIAL_GSI: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(u32::MAX);

/// Brings up the serial console and routes its interrupt.
pub fn init(serial_gsi: u32) {
    use crate::arch::{apic, interrupts::IRQ_BASE, ioapic};
    SERIAL_GSI.store(serial_gsi, core::sync::atomic::Ordering::Relaxed);
    // Route the line before the UART may raise it: the IOAPIC drops an
    // edge on a masked line, and input queued by the VMM before boot would
    // then never be announced again.
    ioapic::route(serial_gsi, IRQ_BASE + serial_gsi as u8, apic::id());
    COM1.init();
    // Take whatever arrived before the receive interrupt was enabled.
    COM1.handle_irq();
}

/// Called for an interrupt on IOAPIC line `gsi`.
pub fn handle_irq(gsi: u32) {
    if gsi == SERIAL_GSI.load(core::sync::atomic::Ordering::Relaxed) {
        COM1.handle_irq();
    }
    virtio_console::handle_irq(gsi);
}
