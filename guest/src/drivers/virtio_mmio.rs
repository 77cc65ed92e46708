//! virtio-mmio device discovery at boot: probes the window the VMM
//! announced with `forkvm_core::drivers::virtio_mmio`'s identification
//! logic and records what it found for `forkvm_info(INFO_DEVICES)`.

pub use forkvm_core::drivers::virtio_mmio::*;

use self::{check_window, identify, Probe};

/// The virtio console's window, once probed.
static CONSOLE: spin::Once<Probe> = spin::Once::new();

/// Probes the virtio console window the VMM announced (`base` 0: none).
pub fn init(base: u64, size: u64, gsi: u32) {
    if base == 0 {
        return;
    }
    let mut reads = 0u64;
    let start = crate::arch::cpu::rdtsc();
    let result = check_window(base, size).and_then(|()| {
        identify(|offset| {
            reads += 1;
            let address = crate::mm::phys_to_virt(base + offset);
            // SAFETY: check_window put the window inside the MMIO hole,
            // which the boot page tables map (uncached) in the direct
            // map; identification registers are aligned 32-bit
            // registers whose reads have no side effects.
            unsafe { core::ptr::read_volatile(address as *const u32) }
        })
    });
    let cycles = crate::arch::cpu::rdtsc() - start;
    let read_ns = match reads {
        0 => 0,
        n => crate::time::tsc_to_ns(cycles / n),
    };
    CONSOLE.call_once(|| Probe {
        base,
        gsi,
        result,
        read_ns,
    });
}

/// Whether the probe found a virtio console (device id 3).
pub fn console_identified() -> bool {
    CONSOLE
        .get()
        .is_some_and(|probe| matches!(probe.result, Ok(id) if id.device_id == 3))
}

/// One line per probed window (empty without virtio devices).
pub fn report() -> alloc::string::String {
    let mut text = alloc::string::String::new();
    if let Some(probe) = CONSOLE.get() {
        text.push_str(&alloc::format!("{probe}\n"));
    }
    text
}
