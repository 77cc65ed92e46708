//! virtio-mmio device discovery (Linux: `drivers/virtio/virtio_mmio.c`).
//!
//! The VMM tells the kernel where its virtio-mmio window is and which
//! IOAPIC line it uses (`BootInfo::virtio_console_*`); at boot the kernel
//! checks the window's identification registers (MagicValue, Version,
//! DeviceID, VendorID) and records what it found for `forkvm_info(
//! INFO_DEVICES)`. A console found there is then driven by
//! `virtio_console`.
//! The identification logic is pure (a register-read callback) and unit-tested
//! on the host; the kernel's `drivers::virtio_mmio::init` touches the device.

use core::fmt;

use forkvm_abi::{MMIO_HOLE_END, MMIO_HOLE_START, PAGE_SIZE};

/// "virt", and the (non-legacy) transport version this driver speaks.
pub use forkvm_abi::virtio_mmio::{MAGIC_VALUE, VERSION};
/// Smallest window that holds the register file.
pub const MIN_WINDOW: u64 = 0x100;

/// Register offsets (virtio 1.x section 4.2.2).
pub use forkvm_abi::virtio_mmio::reg;

/// Name of a virtio device id (virtio 1.x section 5).
pub fn device_name(id: u32) -> &'static str {
    match id {
        1 => "net",
        2 => "block",
        3 => "console",
        4 => "entropy",
        5 => "balloon",
        9 => "9p",
        16 => "gpu",
        18 => "input",
        19 => "vsock",
        _ => "unknown",
    }
}

/// What the identification registers said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Identity {
    pub version: u32,
    pub device_id: u32,
    pub vendor_id: u32,
}

/// Why a window holds no usable device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeError {
    /// The window is not a page-aligned range inside the MMIO hole (the
    /// kernel does not touch it).
    BadWindow,
    /// MagicValue is not "virt".
    BadMagic(u32),
    /// Not a version-2 (virtio 1.x) transport.
    BadVersion(u32),
    /// DeviceID 0: a placeholder window without a device.
    NoDevice,
}

impl fmt::Display for ProbeError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Self::BadWindow => write!(f, "window outside the MMIO hole"),
            Self::BadMagic(v) => write!(f, "bad magic {v:#x}"),
            Self::BadVersion(v) => write!(f, "unsupported version {v}"),
            Self::NoDevice => write!(f, "no device"),
        }
    }
}

/// Whether `[base, base + size)` is a window the kernel may probe.
pub fn check_window(base: u64, size: u64) -> Result<(), ProbeError> {
    let aligned = base.is_multiple_of(PAGE_SIZE);
    let inside = base >= MMIO_HOLE_START
        && size >= MIN_WINDOW
        && base
            .checked_add(size)
            .is_some_and(|end| end <= MMIO_HOLE_END);
    if aligned && inside {
        Ok(())
    } else {
        Err(ProbeError::BadWindow)
    }
}

/// Reads the identification registers with `read(offset)`, in the order
/// the specification asks for (magic first, stop at the first mismatch).
pub fn identify(mut read: impl FnMut(u64) -> u32) -> Result<Identity, ProbeError> {
    let magic = read(reg::MAGIC_VALUE);
    if magic != MAGIC_VALUE {
        return Err(ProbeError::BadMagic(magic));
    }
    let version = read(reg::VERSION);
    if version != VERSION {
        return Err(ProbeError::BadVersion(version));
    }
    let device_id = read(reg::DEVICE_ID);
    if device_id == 0 {
        return Err(ProbeError::NoDevice);
    }
    let vendor_id = read(reg::VENDOR_ID);
    Ok(Identity {
        version,
        device_id,
        vendor_id,
    })
}

/// One probed window, as `forkvm_info(INFO_DEVICES)` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Probe {
    pub base: u64,
    pub gsi: u32,
    pub result: Result<Identity, ProbeError>,
    /// Average time of one register read (an exit to the VMM), in ns; 0 if
    /// not measured.
    pub read_ns: u64,
}

impl fmt::Display for Probe {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "virtio-mmio@{:#x} gsi={}", self.base, self.gsi)?;
        match self.result {
            Ok(id) => write!(
                f,
                " device={} version={} vendor={:#x}",
                device_name(id.device_id),
                id.version,
                id.vendor_id
            )?,
            Err(e) => write!(f, " probe failed: {e}")?,
        }
        if self.read_ns > 0 {
            write!(f, " mmio_read_ns={}", self.read_ns)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registers(values: [u32; 4]) -> impl FnMut(u64) -> u32 {
        move |offset| values[(offset / 4) as usize]
    }

    #[test]
    fn identifies_a_console() {
        let id = identify(registers([MAGIC_VALUE, 2, 3, 0x4d56_4b46])).unwrap();
        assert_eq!(
            id,
            Identity {
                version: 2,
                device_id: 3,
                vendor_id: 0x4d56_4b46
            }
        );
        let probe = Probe {
            base: 0xd000_0000,
            gsi: 5,
            result: Ok(id),
            read_ns: 0,
        };
        assert_eq!(
            alloc::format!("{probe}"),
            "virtio-mmio@0xd0000000 gsi=5 device=console version=2 vendor=0x4d564b46"
        );
        let timed = Probe {
            read_ns: 42_000,
            ..probe
        };
        assert!(alloc::format!("{timed}").ends_with(" vendor=0x4d564b46 mmio_read_ns=42000"));
    }

    #[test]
    fn rejects_what_is_not_a_v2_device() {
        assert_eq!(
            identify(registers([0xffff_ffff, 2, 3, 0])),
            Err(ProbeError::BadMagic(0xffff_ffff))
        );
        assert_eq!(
            identify(registers([MAGIC_VALUE, 1, 3, 0])),
            Err(ProbeError::BadVersion(1))
        );
        assert_eq!(
            identify(registers([MAGIC_VALUE, 2, 0, 0])),
            Err(ProbeError::NoDevice)
        );
        let probe = Probe {
            base: 0xd000_0000,
            gsi: 5,
            result: Err(ProbeError::BadMagic(0)),
            read_ns: 0,
        };
        assert_eq!(
            alloc::format!("{probe}"),
            "virtio-mmio@0xd0000000 gsi=5 probe failed: bad magic 0x0"
        );
    }

    #[test]
    fn stops_reading_at_the_first_mismatch() {
        let mut seen = alloc::vec::Vec::new();
        let _ = identify(|offset| {
            seen.push(offset);
            0
        });
        assert_eq!(seen, [reg::MAGIC_VALUE]);
    }

    #[test]
    fn windows() {
        assert_eq!(check_window(0xd000_0000, 0x1000), Ok(()));
        assert_eq!(check_window(0xffff_f000, 0x1000), Ok(()));
        assert_eq!(
            check_window(0xd000_0004, 0x1000),
            Err(ProbeError::BadWindow)
        );
        assert_eq!(check_window(0x10_0000, 0x1000), Err(ProbeError::BadWindow));
        assert_eq!(
            check_window(0xffff_f000, 0x2000),
            Err(ProbeError::BadWindow)
        );
        assert_eq!(check_window(0xd000_0000, 0x10), Err(ProbeError::BadWindow));
        assert_eq!(check_window(!0xfff, 0x1000), Err(ProbeError::BadWindow));
    }

    #[test]
    fn names() {
        assert_eq!(device_name(3), "console");
        assert_eq!(device_name(1), "net");
        assert_eq!(device_name(1000), "unknown");
    }
}
