//! The vCPU thread: runs the guest and serves its port I/O until the guest
//! powers off, panics or crashes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use forkvm_abi::{port, PANIC_BUFFER_PHYS, PANIC_BUFFER_SIZE};
use kvm_ioctls::{VcpuExit, VcpuFd};
use vm_memory::{Bytes, GuestAddress};

use crate::builder::SharedConsoleTransport;
use crate::devices::serial::SharedSerial;
use crate::devices::virtio::console::Console;
use crate::devices::virtio::mmio::{MmioTransport, MMIO_SIZE};
use crate::exits::{ExitCounters, ExitReason};
use crate::memory::GuestMemory;

/// Why the guest stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuestExit {
    /// The guest wrote its status to the poweroff port (a Linux guest:
    /// powered off through ACPI, status 0).
    Poweroff(u32),
    /// A Linux guest asked for a reboot (ACPI reset register); forkvm
    /// does not restart it.
    Reboot,
    /// The guest kernel panicked with this message on this CPU.
    Panic { message: String, cpu: u32 },
    /// The guest kernel could not boot because of its input (a corrupt
    /// initramfs, no init to start); the message says what was wrong.
    BootFailed(String),
    /// The vCPU shut down (a triple fault).
    TripleFault { rip: u64 },
    /// KVM could not run the guest.
    InternalError { detail: String, rip: u64 },
    /// The guest stopped in a way the VMM does not handle.
    Unexpected { detail: String, rip: u64 },
    /// The VMM stopped the vCPU (timeout or quit).
    Stopped,
}

/// What the vCPU loop needs besides the vCPU.
#[derive(Clone)]
pub struct VcpuContext {
    /// Which vCPU this loop runs (the guest's CPU number).
    pub cpu: u32,
    pub memory: GuestMemory,
    pub serial: SharedSerial,
    /// The virtio console's transport and the base of its MMIO window.
    pub virtio_console: SharedConsoleTransport,
    pub virtio_console_base: u64,
    /// Set by the VMM to make the loop return `Stopped`.
    pub stop: Arc<AtomicBool>,
    /// Every return from `KVM_RUN` of all vCPUs, counted by reason.
    pub exits: ExitCounters,
    /// This vCPU's own counts, kept when the VM has more than one.
    pub cpu_exits: Option<ExitCounters>,
}

impl VcpuContext {
    fn record(&self, reason: ExitReason) {
        self.exits.record(reason);
        if let Some(own) = &self.cpu_exits {
            own.record(reason);
        }
    }
}

const SERIAL_PORTS: std::ops::Range<u16> = port::SERIAL_COM1..port::SERIAL_COM1 + 8;

/// Runs the guest until it stops.
pub fn run(vcpu: &mut VcpuFd, context: &VcpuContext) -> GuestExit {
    loop {
        if context.stop.load(Ordering::Acquire) {
            if let Ok(regs) = vcpu.get_regs() {
                log::info!(
                    "vCPU stopped at rip {:#x} rsp {:#x} rflags {:#x}",
                    regs.rip,
                    regs.rsp,
                    regs.rflags
                );
            }
            return GuestExit::Stopped;
        }
        let exit = match vcpu.run() {
            Ok(exit) => exit,
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
                context.record(ExitReason::Interrupted);
                continue;
            }
            Err(e) => {
                context.record(ExitReason::Other);
                return GuestExit::InternalError {
                    detail: format!("KVM_RUN failed: {e}"),
                    rip: 0,
                };
            }
        };
        context.record(exit_reason(&exit));
        match exit {
            VcpuExit::IoOut(addr, data) => {
                if let Some(done) = io_out(context, addr, data) {
                    return done;
                }
            }
            VcpuExit::IoIn(addr, data) => io_in(context, addr, data),
            VcpuExit::Shutdown => return GuestExit::TripleFault { rip: rip(vcpu) },
            VcpuExit::InternalError => {
                return GuestExit::InternalError {
                    detail: "KVM internal error (emulation failure)".into(),
                    rip: rip(vcpu),
                }
            }
            VcpuExit::FailEntry(reason, cpu) => {
                return GuestExit::InternalError {
                    detail: format!("VM entry failed: hardware reason {reason:#x} on cpu {cpu}"),
                    rip: rip(vcpu),
                }
            }
            VcpuExit::Hlt => {
                return GuestExit::Unexpected {
                    detail: "the guest halted with interrupts off".into(),
                    rip: rip(vcpu),
                }
            }
            VcpuExit::MmioRead(addr, data) => mmio_read(context, addr, data),
            VcpuExit::MmioWrite(addr, data) => mmio_write(context, addr, data),
            other => {
                let detail = format!("unexpected vCPU exit {other:?}");
                return GuestExit::Unexpected {
                    detail,
                    rip: rip(vcpu),
                };
            }
        }
    }
}

fn exit_reason(exit: &VcpuExit<'_>) -> ExitReason {
    match exit {
        VcpuExit::IoIn(..) => ExitReason::IoIn,
        VcpuExit::IoOut(..) => ExitReason::IoOut,
        VcpuExit::MmioRead(..) => ExitReason::MmioRead,
        VcpuExit::MmioWrite(..) => ExitReason::MmioWrite,
        VcpuExit::Hlt => ExitReason::Hlt,
        VcpuExit::Shutdown => ExitReason::Shutdown,
        _ => ExitReason::Other,
    }
}

fn rip(vcpu: &VcpuFd) -> u64 {
    vcpu.get_regs().map(|r| r.rip).unwrap_or(0)
}

fn io_out(context: &VcpuContext, addr: u16, data: &[u8]) -> Option<GuestExit> {
    match addr {
        a if SERIAL_PORTS.contains(&a) => {
            if let Some(&byte) = data.first() {
                context.serial.write((a - port::SERIAL_COM1) as u8, byte);
            }
            None
        }
        port::POWEROFF => Some(GuestExit::Poweroff(le_u32(data))),
        a if crate::linux_boot::acpi::is_acpi_port(a) => {
            use crate::linux_boot::acpi::{port_write, PortRequest};
            match port_write(a, data.first().copied().unwrap_or(0)) {
                PortRequest::PowerOff => Some(GuestExit::Poweroff(0)),
                PortRequest::Reboot => Some(GuestExit::Reboot),
                PortRequest::Nothing => None,
            }
        }
        port::PANIC => Some(GuestExit::Panic {
            message: read_panic_message(&context.memory, le_u32(data) as usize),
            cpu: context.cpu,
        }),
        port::BOOT_FAILED => Some(GuestExit::BootFailed(read_panic_message(
            &context.memory,
            le_u32(data) as usize,
        ))),
        // The guest masks the legacy PICs through the in-kernel irqchip;
        // anything else reaching us is logged and ignored.
        a => {
            log::debug!("unhandled port write {a:#x} <- {data:?}");
            None
        }
    }
}

fn io_in(context: &VcpuContext, addr: u16, data: &mut [u8]) {
    match addr {
        a if SERIAL_PORTS.contains(&a) => {
            let value = context.serial.read((a - port::SERIAL_COM1) as u8);
            data.fill(0);
            if let Some(first) = data.first_mut() {
                *first = value;
            }
        }
        // A Linux guest's ACPI sleep status: nothing pending.
        a if crate::linux_boot::acpi::is_acpi_port(a) => data.fill(0),
        a => {
            log::debug!("unhandled port read {a:#x}");
            data.fill(0xff);
        }
    }
}

/// The offset of `addr` in the window at `base`, if it falls inside
/// (the whole access must fit).
fn window_offset(base: u64, addr: u64, len: usize) -> Option<u64> {
    let offset = addr.checked_sub(base)?;
    (offset.checked_add(len as u64)? <= MMIO_SIZE).then_some(offset)
}

fn mmio_read(context: &VcpuContext, addr: u64, data: &mut [u8]) {
    match window_offset(context.virtio_console_base, addr, data.len()) {
        Some(offset) => lock(&context.virtio_console).read(offset, data),
        None => {
            log::debug!("unhandled MMIO read at {addr:#x}");
            data.fill(0xff);
        }
    }
}

fn mmio_write(context: &VcpuContext, addr: u64, data: &[u8]) {
    match window_offset(context.virtio_console_base, addr, data.len()) {
        Some(offset) => lock(&context.virtio_console).write(offset, data),
        None => log::debug!("unhandled MMIO write at {addr:#x}"),
    }
}

/// Locks the transport; a panic elsewhere while holding it leaves the
/// registers usable (they are plain values).
fn lock(transport: &SharedConsoleTransport) -> std::sync::MutexGuard<'_, MmioTransport<Console>> {
    transport.lock().unwrap_or_else(|e| e.into_inner())
}

fn le_u32(data: &[u8]) -> u32 {
    let mut bytes = [0u8; 4];
    let n = data.len().min(4);
    bytes[..n].copy_from_slice(&data[..n]);
    u32::from_le_bytes(bytes)
}

fn read_panic_message(memory: &GuestMemory, len: usize) -> String {
    let mut buffer = vec![0u8; len.min(PANIC_BUFFER_SIZE)];
    match memory.read_slice(&mut buffer, GuestAddress(PANIC_BUFFER_PHYS)) {
        Ok(()) => String::from_utf8_lossy(&buffer).into_owned(),
        Err(e) => format!("(the panic message could not be read: {e})"),
    }
}

#[cfg(test)]
mod tests {
    use super::window_offset;

    #[test]
    fn window_offsets() {
        let base = 0xd000_0000;
        assert_eq!(window_offset(base, base, 4), Some(0));
        assert_eq!(window_offset(base, base + 0x50, 4), Some(0x50));
        assert_eq!(window_offset(base, base + 0xffc, 4), Some(0xffc));
        assert_eq!(window_offset(base, base + 0xfff, 1), Some(0xfff));
        assert_eq!(
            window_offset(base, base + 0xffe, 4),
            None,
            "straddles the end"
        );
        assert_eq!(window_offset(base, base + 0x1000, 1), None);
        assert_eq!(window_offset(base, base - 4, 4), None);
        assert_eq!(window_offset(base, 0xfec0_0000, 4), None);
        assert_eq!(window_offset(base, u64::MAX, 4), None);
    }
}
