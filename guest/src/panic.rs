//! Kernel panics end the VM: the message goes to the VMM, which prints it
//! and exits non-zero.

use core::fmt::Write;
use core::panic::PanicInfo;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::drivers::vmm_ports;

/// Formats into a fixed buffer (the heap may be what broke).
struct FixedBuffer {
    bytes: [u8; 1024],
    len: usize,
}

impl Write for FixedBuffer {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let room = self.bytes.len() - self.len;
        let n = s.len().min(room);
        self.bytes[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    crate::arch::cpu::disable_interrupts();
    // One report: the panic buffer is shared by all CPUs, and the VMM stops
    // them all at the first. A second CPU panicking meanwhile waits.
    static PANICKING: AtomicBool = AtomicBool::new(false);
    if PANICKING.swap(true, Ordering::AcqRel) {
        crate::arch::cpu::halt_forever();
    }
    let mut buffer = FixedBuffer {
        bytes: [0; 1024],
        len: 0,
    };
    let _ = write!(buffer, "{}", info.message());
    if let Some(location) = info.location() {
        let _ = write!(buffer, " (at {}:{})", location.file(), location.line());
    }
    vmm_ports::report_panic(&buffer.bytes[..buffer.len])
}
