//! The VMM's own I/O ports: power off with a status, report a panic or a
//! failed boot.

use forkvm_abi::{port, PAGE_OFFSET, PANIC_BUFFER_PHYS, PANIC_BUFFER_SIZE};

use crate::arch::cpu::{halt_forever, outl};

/// Powers the VM off; `forkvm` exits with `status`.
pub fn poweroff(status: u32) -> ! {
    // The last virtio-console write may still be in flight.
    super::virtio_console::flush();
    outl(port::POWEROFF, status);
    // The VMM stops the vCPU on that write; never come back.
    halt_forever()
}

/// Hands the panic message to the VMM, which prints it and exits non-zero.
pub fn report_panic(message: &[u8]) -> ! {
    report(port::PANIC, message)
}

/// Tells the VMM the kernel cannot boot because of its input (a corrupt
/// initramfs, no init), with why; forkvm prints it and exits 1.
pub fn report_boot_failure(message: &[u8]) -> ! {
    super::virtio_console::flush();
    report(port::BOOT_FAILED, message)
}

fn report(port: u16, message: &[u8]) -> ! {
    let len = message.len().min(PANIC_BUFFER_SIZE);
    // SAFETY: the panic buffer is a page of low memory reserved for this in
    // the boot layout and mapped by the direct map; nothing else uses it.
    unsafe {
        let buffer = (PAGE_OFFSET + PANIC_BUFFER_PHYS) as *mut u8;
        core::ptr::copy_nonoverlapping(message.as_ptr(), buffer, len);
    }
    outl(port, len as u32);
    halt_forever()
}
