//! The virtio-mmio transport, version 2 (virtio 1.x section 4.2.2).
//!
//! The register file is 0x100 bytes of 32-bit registers followed by the
//! device's configuration space; the whole window is [`MMIO_SIZE`] bytes.
//! Register accesses must be aligned 32-bit accesses, configuration space
//! accesses may have any width; everything else is logged and ignored
//! (reads return zeros).

use std::io;

use virtio_queue::{Queue, QueueT};
use vm_memory::GuestAddress;
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use super::status::{ACKNOWLEDGE, DEVICE_NEEDS_RESET, DRIVER, DRIVER_OK, FAILED, FEATURES_OK};
use super::{DeviceError, Interrupt, Memory, VirtioDevice, VIRTIO_F_VERSION_1};

/// Size of a device's MMIO window.
pub const MMIO_SIZE: u64 = 0x1000;

pub use forkvm_abi::virtio_mmio::MAGIC_VALUE;
/// The vendor ID the transport reports ("FKVM").
pub const VENDOR_ID: u32 = 0x4d56_4b46;

/// Register offsets (shared with the guest driver).
pub use forkvm_abi::virtio_mmio::reg;

/// What the driver wrote about one queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct QueueConfig {
    max_size: u16,
    size: u16,
    ready: bool,
    desc: u64,
    avail: u64,
    used: u64,
}

impl QueueConfig {
    fn new(max_size: u16) -> Self {
        Self {
            max_size,
            size: max_size,
            ..Self::default()
        }
    }

    /// A ready `Queue` from this configuration, if it is valid in `mem`.
    fn build(&self, mem: &Memory) -> Result<Queue, String> {
        let mut queue = Queue::new(self.max_size).map_err(|e| e.to_string())?;
        queue
            .try_set_size(self.size)
            .map_err(|_| format!("size {} (max {})", self.size, self.max_size))?;
        queue
            .try_set_desc_table_address(GuestAddress(self.desc))
            .map_err(|e| format!("{e} ({:#x})", self.desc))?;
        queue
            .try_set_avail_ring_address(GuestAddress(self.avail))
            .map_err(|e| format!("{e} ({:#x})", self.avail))?;
        queue
            .try_set_used_ring_address(GuestAddress(self.used))
            .map_err(|e| format!("{e} ({:#x})", self.used))?;
        queue.set_ready(true);
        if !queue.is_valid(mem) {
            return Err("rings outside guest memory".into());
        }
        Ok(queue)
    }
}

fn set_low(value: &mut u64, low: u32) {
    *value = (*value & !0xffff_ffff) | u64::from(low);
}

fn set_high(value: &mut u64, high: u32) {
    *value = (*value & 0xffff_ffff) | (u64::from(high) << 32);
}

/// A virtio device behind a virtio-mmio (version 2) register window.
pub struct MmioTransport<D: VirtioDevice> {
    device: D,
    mem: Memory,
    interrupt: Interrupt,
    notify: EventFd,
    status: u32,
    device_features_sel: u32,
    driver_features_sel: u32,
    driver_features: u64,
    queue_sel: u32,
    queues: Vec<QueueConfig>,
    activated: bool,
}

impl<D: VirtioDevice> MmioTransport<D> {
    /// The transport of `device`, whose queues live in `mem` and which
    /// interrupts the driver through `interrupt`.
    pub fn new(device: D, mem: Memory, interrupt: Interrupt) -> io::Result<Self> {
        let queues = device
            .queue_max_sizes()
            .iter()
            .map(|&max| QueueConfig::new(max))
            .collect();
        Ok(Self {
            device,
            mem,
            interrupt,
            notify: EventFd::new(EFD_NONBLOCK)?,
            status: 0,
            device_features_sel: 0,
            driver_features_sel: 0,
            driver_features: 0,
            queue_sel: 0,
            queues,
            activated: false,
        })
    }

    /// The device.
    pub fn device(&self) -> &D {
        &self.device
    }

    /// The device, mutably.
    pub fn device_mut(&mut self) -> &mut D {
        &mut self.device
    }

    /// The device's interrupt (and broken flag).
    pub fn interrupt(&self) -> &Interrupt {
        &self.interrupt
    }

    /// The eventfd to register as an ioeventfd on `QueueNotify` (window
    /// base + 0x50, 4 bytes, no datamatch); on its event call
    /// [`handle_notify_event`](Self::handle_notify_event).
    pub fn notify_eventfd(&self) -> &EventFd {
        &self.notify
    }

    /// The device status as the driver reads it.
    pub fn status(&self) -> u32 {
        if self.interrupt.needs_reset() {
            self.status | DEVICE_NEEDS_RESET
        } else {
            self.status
        }
    }

    /// Whether the driver set `DRIVER_OK` and the device runs.
    pub fn is_activated(&self) -> bool {
        self.activated
    }

    /// The features the driver acknowledged.
    pub fn driver_features(&self) -> u64 {
        self.driver_features
    }

    fn device_features(&self) -> u64 {
        self.device.features() | VIRTIO_F_VERSION_1
    }

    /// Consumes the notify eventfd and processes every ready queue (the
    /// ioeventfd does not say which queue was notified).
    pub fn handle_notify_event(&mut self) {
        // EAGAIN: a spurious wakeup; processing anyway is harmless.
        let _ = self.notify.read();
        if !self.running() {
            self.interrupt.remind_config_change();
            return;
        }
        for index in 0..self.queues.len() {
            if self.queues[index].ready && self.running() {
                if let Err(e) = self.device.process_queue(index) {
                    self.interrupt.set_needs_reset(&e);
                }
            }
        }
    }

    fn running(&self) -> bool {
        self.activated && !self.interrupt.needs_reset() && self.status & FAILED == 0
    }

    /// A guest read of `data.len()` bytes at `offset` in the window.
    pub fn read(&self, offset: u64, data: &mut [u8]) {
        data.fill(0);
        if (reg::CONFIG..MMIO_SIZE).contains(&offset) {
            self.device.read_config(offset - reg::CONFIG, data);
            return;
        }
        if data.len() != 4 || !offset.is_multiple_of(4) {
            log::warn!(
                "virtio-mmio: ignored {}-byte read at {offset:#x}",
                data.len()
            );
            return;
        }
        let queue = self.queues.get(self.queue_sel as usize);
        let value = match offset {
            reg::MAGIC_VALUE => MAGIC_VALUE,
            reg::VERSION => 2,
            reg::DEVICE_ID => self.device.device_id(),
            reg::VENDOR_ID => VENDOR_ID,
            reg::DEVICE_FEATURES => match self.device_features_sel {
                0 => self.device_features() as u32,
                1 => (self.device_features() >> 32) as u32,
                _ => 0,
            },
            reg::QUEUE_NUM_MAX => queue.map_or(0, |q| u32::from(q.max_size)),
            reg::QUEUE_NUM => queue.map_or(0, |q| u32::from(q.size)),
            reg::QUEUE_READY => queue.map_or(0, |q| u32::from(q.ready)),
            reg::QUEUE_DESC_LOW => queue.map_or(0, |q| q.desc as u32),
            reg::QUEUE_DESC_HIGH => queue.map_or(0, |q| (q.desc >> 32) as u32),
            reg::QUEUE_DRIVER_LOW => queue.map_or(0, |q| q.avail as u32),
            reg::QUEUE_DRIVER_HIGH => queue.map_or(0, |q| (q.avail >> 32) as u32),
            reg::QUEUE_DEVICE_LOW => queue.map_or(0, |q| q.used as u32),
            reg::QUEUE_DEVICE_HIGH => queue.map_or(0, |q| (q.used >> 32) as u32),
            reg::INTERRUPT_STATUS => self.interrupt.status(),
            reg::STATUS => self.status(),
            reg::CONFIG_GENERATION => 0,
            _ => {
                log::warn!("virtio-mmio: read of unknown register {offset:#x}");
                0
            }
        };
        data.copy_from_slice(&value.to_le_bytes());
    }

    /// A guest write of `data` at `offset` in the window.
    pub fn write(&mut self, offset: u64, data: &[u8]) {
        if (reg::CONFIG..MMIO_SIZE).contains(&offset) {
            self.device.write_config(offset - reg::CONFIG, data);
            return;
        }
        let Ok(bytes) = <[u8; 4]>::try_from(data) else {
            log::warn!(
                "virtio-mmio: ignored {}-byte write at {offset:#x}",
                data.len()
            );
            return;
        };
        if !offset.is_multiple_of(4) {
            log::warn!("virtio-mmio: ignored misaligned write at {offset:#x}");
            return;
        }
        let value = u32::from_le_bytes(bytes);
        match offset {
            reg::DEVICE_FEATURES_SEL => self.device_features_sel = value,
            reg::DRIVER_FEATURES_SEL => self.driver_features_sel = value,
            reg::DRIVER_FEATURES => self.write_driver_features(value),
            reg::QUEUE_SEL => self.queue_sel = value,
            reg::QUEUE_NUM
            | reg::QUEUE_READY
            | reg::QUEUE_DESC_LOW
            | reg::QUEUE_DESC_HIGH
            | reg::QUEUE_DRIVER_LOW
            | reg::QUEUE_DRIVER_HIGH
            | reg::QUEUE_DEVICE_LOW
            | reg::QUEUE_DEVICE_HIGH => self.write_queue(offset, value),
            reg::QUEUE_NOTIFY => self.notify_queue(value),
            reg::INTERRUPT_ACK => self.interrupt.ack(value),
            reg::STATUS => self.write_status(value),
            _ => log::warn!("virtio-mmio: write of {value:#x} to unknown register {offset:#x}"),
        }
    }

    fn write_driver_features(&mut self, value: u32) {
        if self.status & DRIVER == 0 || self.status & FEATURES_OK != 0 {
            log::warn!("virtio-mmio: driver features written outside negotiation, ignored");
            return;
        }
        match self.driver_features_sel {
            0 => set_low(&mut self.driver_features, value),
            1 => set_high(&mut self.driver_features, value),
            sel => {
                if value != 0 {
                    log::warn!("virtio-mmio: driver features {value:#x} in word {sel}, ignored");
                }
            }
        }
    }

    fn write_queue(&mut self, offset: u64, value: u32) {
        if self.status & FEATURES_OK == 0 || self.status & (DRIVER_OK | FAILED) != 0 {
            log::warn!(
                "virtio-mmio: queue register {offset:#x} written outside queue setup (status {:#x}), ignored",
                self.status
            );
            return;
        }
        let Some(queue) = self.queues.get_mut(self.queue_sel as usize) else {
            log::warn!(
                "virtio-mmio: write to register {offset:#x} of missing queue {}, ignored",
                self.queue_sel
            );
            return;
        };
        if queue.ready && !(offset == reg::QUEUE_READY && value == 0) {
            log::warn!("virtio-mmio: register {offset:#x} of a ready queue written, ignored");
            return;
        }
        match offset {
            reg::QUEUE_NUM => queue.size = u16::try_from(value).unwrap_or(u16::MAX),
            reg::QUEUE_DESC_LOW => set_low(&mut queue.desc, value),
            reg::QUEUE_DESC_HIGH => set_high(&mut queue.desc, value),
            reg::QUEUE_DRIVER_LOW => set_low(&mut queue.avail, value),
            reg::QUEUE_DRIVER_HIGH => set_high(&mut queue.avail, value),
            reg::QUEUE_DEVICE_LOW => set_low(&mut queue.used, value),
            reg::QUEUE_DEVICE_HIGH => set_high(&mut queue.used, value),
            _ if value == 0 => queue.ready = false,
            _ => match queue.build(&self.mem) {
                Ok(_) => queue.ready = true,
                Err(e) => {
                    let index = self.queue_sel;
                    self.interrupt
                        .set_needs_reset(&format_args!("queue {index} refused: {e}"));
                }
            },
        }
    }

    fn notify_queue(&mut self, value: u32) {
        if self.interrupt.needs_reset() || self.status & FAILED != 0 {
            self.interrupt.remind_config_change();
            return;
        }
        let index = value as usize;
        let result = if !self.activated {
            Err(DeviceError::NotActivated)
        } else {
            match self.queues.get(index) {
                None => Err(DeviceError::NoSuchQueue(index)),
                Some(q) if !q.ready => Err(DeviceError::QueueNotReady(index)),
                Some(_) => self.device.process_queue(index),
            }
        };
        if let Err(e) = result {
            self.interrupt.set_needs_reset(&e);
        }
    }

    fn write_status(&mut self, value: u32) {
        if value == 0 {
            self.reset();
            return;
        }
        // DEVICE_NEEDS_RESET belongs to the device.
        let value = value & !DEVICE_NEEDS_RESET;
        let old = self.status;
        if value & old != old {
            log::warn!("virtio-mmio: status {old:#x} -> {value:#x} clears bits, ignored");
            return;
        }
        let order_ok = (value & DRIVER == 0 || value & ACKNOWLEDGE != 0)
            && (value & FEATURES_OK == 0 || value & DRIVER != 0)
            && (value & DRIVER_OK == 0 || value & FEATURES_OK != 0);
        if !order_ok {
            log::warn!("virtio-mmio: status {old:#x} -> {value:#x} out of order, ignored");
            return;
        }
        let added = value & !old;
        let mut value = value;
        if added & FEATURES_OK != 0 {
            let unknown = self.driver_features & !self.device_features();
            if self.driver_features & VIRTIO_F_VERSION_1 == 0 || unknown != 0 {
                log::warn!(
                    "virtio-mmio: features {:#x} refused (offered {:#x}, VERSION_1 required)",
                    self.driver_features,
                    self.device_features()
                );
                // The driver reads FEATURES_OK back and gives up.
                value &= !(FEATURES_OK | DRIVER_OK);
            }
        }
        self.status = value;
        if added & DRIVER_OK != 0 && value & DRIVER_OK != 0 {
            self.activate();
        }
    }

    fn activate(&mut self) {
        let mut queues = Vec::with_capacity(self.queues.len());
        for (index, config) in self.queues.iter().enumerate() {
            let queue = if config.ready {
                config.build(&self.mem)
            } else {
                Queue::new(config.max_size).map_err(|e| e.to_string())
            };
            match queue {
                Ok(queue) => queues.push(queue),
                Err(e) => {
                    self.interrupt
                        .set_needs_reset(&format_args!("queue {index} at activation: {e}"));
                    return;
                }
            }
        }
        match self.device.activate(
            self.mem.clone(),
            self.driver_features,
            queues,
            self.interrupt.clone(),
        ) {
            Ok(()) => self.activated = true,
            Err(e) => self.interrupt.set_needs_reset(&e),
        }
    }

    fn reset(&mut self) {
        self.device.reset();
        self.interrupt.reset();
        self.status = 0;
        self.device_features_sel = 0;
        self.driver_features_sel = 0;
        self.driver_features = 0;
        self.queue_sel = 0;
        for queue in &mut self.queues {
            *queue = QueueConfig::new(queue.max_size);
        }
        self.activated = false;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use vm_memory::Bytes;

    use super::super::testutil::*;
    use super::super::{INT_CONFIG, INT_USED_RING};
    use super::*;

    #[test]
    fn identification_registers() {
        let mem = memory();
        let (mut t, _io, _) = console(&mem);
        assert_eq!(r(&t, reg::MAGIC_VALUE), 0x7472_6976);
        assert_eq!(&r(&t, reg::MAGIC_VALUE).to_le_bytes(), b"virt");
        assert_eq!(r(&t, reg::VERSION), 2);
        assert_eq!(r(&t, reg::DEVICE_ID), 3);
        assert_eq!(r(&t, reg::VENDOR_ID), VENDOR_ID);
        assert_eq!(r(&t, reg::DEVICE_FEATURES), 0);
        w(&mut t, reg::DEVICE_FEATURES_SEL, 1);
        assert_eq!(r(&t, reg::DEVICE_FEATURES), 1, "VERSION_1 is bit 32");
        w(&mut t, reg::DEVICE_FEATURES_SEL, 7);
        assert_eq!(r(&t, reg::DEVICE_FEATURES), 0);
        assert_eq!(r(&t, reg::QUEUE_NUM_MAX), 256);
        w(&mut t, reg::QUEUE_SEL, 1);
        assert_eq!(r(&t, reg::QUEUE_NUM_MAX), 256);
        w(&mut t, reg::QUEUE_SEL, 2);
        assert_eq!(r(&t, reg::QUEUE_NUM_MAX), 0);
        assert_eq!(r(&t, reg::CONFIG_GENERATION), 0);
        assert_eq!(r(&t, reg::STATUS), 0);
        // Config space: any width.
        let mut byte = [0xaa];
        t.read(reg::CONFIG + 3, &mut byte);
        assert_eq!(byte, [0]);
        t.write(reg::CONFIG, &[1, 2]);
    }

    #[test]
    fn bad_register_accesses_are_ignored() {
        let mem = memory();
        let (mut t, _io, _) = console(&mem);
        let mut two = [0xffu8; 2];
        t.read(reg::MAGIC_VALUE, &mut two);
        assert_eq!(two, [0, 0]);
        let mut eight = [0xffu8; 8];
        t.read(reg::MAGIC_VALUE, &mut eight);
        assert_eq!(eight, [0; 8]);
        t.write(reg::STATUS, &[ACKNOWLEDGE as u8]);
        assert_eq!(r(&t, reg::STATUS), 0);
        w(&mut t, reg::STATUS + 1, ACKNOWLEDGE);
        assert_eq!(r(&t, reg::STATUS), 0);
        w(&mut t, 0x0f0, 1);
        assert_eq!(r(&t, 0x0f0), 0);
        let mut out_of_window = [0xffu8; 4];
        t.read(MMIO_SIZE + 4, &mut out_of_window);
        t.write(MMIO_SIZE + 4, &[1, 2, 3, 4]);
        assert!(!needs_reset(&t));
    }

    #[test]
    fn status_state_machine() {
        let mem = memory();
        let (mut t, _io, _) = console(&mem);
        // DRIVER before ACKNOWLEDGE: refused.
        w(&mut t, reg::STATUS, DRIVER);
        assert_eq!(r(&t, reg::STATUS), 0);
        w(&mut t, reg::STATUS, ACKNOWLEDGE);
        w(&mut t, reg::STATUS, ACKNOWLEDGE | DRIVER);
        assert_eq!(r(&t, reg::STATUS), ACKNOWLEDGE | DRIVER);
        // DRIVER_OK before FEATURES_OK: refused.
        w(&mut t, reg::STATUS, ACKNOWLEDGE | DRIVER | DRIVER_OK);
        assert_eq!(r(&t, reg::STATUS), ACKNOWLEDGE | DRIVER);
        // Clearing bits without a reset: refused.
        w(&mut t, reg::STATUS, ACKNOWLEDGE);
        assert_eq!(r(&t, reg::STATUS), ACKNOWLEDGE | DRIVER);
        // The driver cannot set DEVICE_NEEDS_RESET.
        w(
            &mut t,
            reg::STATUS,
            ACKNOWLEDGE | DRIVER | DEVICE_NEEDS_RESET,
        );
        assert_eq!(r(&t, reg::STATUS), ACKNOWLEDGE | DRIVER);
        w(&mut t, reg::STATUS, ACKNOWLEDGE | DRIVER | FAILED);
        assert_eq!(r(&t, reg::STATUS), ACKNOWLEDGE | DRIVER | FAILED);
        // Reset clears everything.
        w(&mut t, reg::STATUS, 0);
        assert_eq!(r(&t, reg::STATUS), 0);
        let _queues = start(&mut t, &mem);
        assert_eq!(
            r(&t, reg::STATUS),
            ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK
        );
        assert_eq!(t.driver_features(), VIRTIO_F_VERSION_1);
        t.interrupt().signal_used_queue();
        w(&mut t, reg::STATUS, 0);
        assert_eq!(r(&t, reg::STATUS), 0);
        assert_eq!(r(&t, reg::INTERRUPT_STATUS), 0);
        assert_eq!(t.driver_features(), 0);
        assert!(!t.is_activated());
        for q in 0..2 {
            w(&mut t, reg::QUEUE_SEL, q);
            assert_eq!(r(&t, reg::QUEUE_READY), 0);
            assert_eq!(r(&t, reg::QUEUE_DESC_LOW), 0);
            assert_eq!(r(&t, reg::QUEUE_NUM), 256);
        }
    }

    #[test]
    fn features_ok_requires_version_1() {
        let mem = memory();
        let (mut t, _io, _) = console(&mem);
        w(&mut t, reg::STATUS, ACKNOWLEDGE);
        w(&mut t, reg::STATUS, ACKNOWLEDGE | DRIVER);
        w(&mut t, reg::STATUS, ACKNOWLEDGE | DRIVER | FEATURES_OK);
        assert_eq!(
            r(&t, reg::STATUS),
            ACKNOWLEDGE | DRIVER,
            "legacy driver refused"
        );
        // A feature that was not offered is refused too.
        w(&mut t, reg::DRIVER_FEATURES_SEL, 1);
        w(&mut t, reg::DRIVER_FEATURES, 1);
        w(&mut t, reg::DRIVER_FEATURES_SEL, 0);
        w(&mut t, reg::DRIVER_FEATURES, 1 << 1);
        w(&mut t, reg::STATUS, ACKNOWLEDGE | DRIVER | FEATURES_OK);
        assert_eq!(r(&t, reg::STATUS), ACKNOWLEDGE | DRIVER);
        w(&mut t, reg::DRIVER_FEATURES, 0);
        w(&mut t, reg::STATUS, ACKNOWLEDGE | DRIVER | FEATURES_OK);
        assert_eq!(r(&t, reg::STATUS), ACKNOWLEDGE | DRIVER | FEATURES_OK);
        // Features are frozen after FEATURES_OK.
        w(&mut t, reg::DRIVER_FEATURES, 1 << 1);
        assert_eq!(t.driver_features(), VIRTIO_F_VERSION_1);
    }

    #[test]
    fn features_before_driver_are_ignored() {
        let mem = memory();
        let (mut t, _io, _) = console(&mem);
        w(&mut t, reg::DRIVER_FEATURES_SEL, 1);
        w(&mut t, reg::DRIVER_FEATURES, 1);
        assert_eq!(t.driver_features(), 0);
    }

    #[test]
    fn queue_registers_round_trip_and_window() {
        let mem = memory();
        let (mut t, _io, _) = console(&mem);
        // Before FEATURES_OK: ignored.
        w(&mut t, reg::QUEUE_DESC_LOW, 0x1000);
        assert_eq!(r(&t, reg::QUEUE_DESC_LOW), 0);
        negotiate(&mut t);
        w(&mut t, reg::QUEUE_SEL, 1);
        w(&mut t, reg::QUEUE_NUM, 64);
        w(&mut t, reg::QUEUE_DESC_LOW, 0x1000);
        w(&mut t, reg::QUEUE_DESC_HIGH, 0x1);
        assert_eq!(r(&t, reg::QUEUE_NUM), 64);
        assert_eq!(r(&t, reg::QUEUE_DESC_LOW), 0x1000);
        assert_eq!(r(&t, reg::QUEUE_DESC_HIGH), 1);
        w(&mut t, reg::QUEUE_SEL, 0);
        assert_eq!(r(&t, reg::QUEUE_DESC_LOW), 0);
        // A queue that does not exist.
        w(&mut t, reg::QUEUE_SEL, 9);
        w(&mut t, reg::QUEUE_READY, 1);
        assert_eq!(r(&t, reg::QUEUE_READY), 0);
        assert!(!needs_reset(&t));
    }

    fn refused(size: u32, desc: u64, avail: u64, used: u64) {
        let mem = memory();
        let (mut t, _io, _) = console(&mem);
        negotiate(&mut t);
        setup_queue(&mut t, 1, size, desc, avail, used);
        assert_eq!(
            r(&t, reg::QUEUE_READY),
            0,
            "{size} {desc:#x} {avail:#x} {used:#x}"
        );
        assert!(needs_reset(&t));
        // A broken device stays broken until reset, even if DRIVER_OK.
        driver_ok(&mut t);
        w(&mut t, reg::QUEUE_NOTIFY, 1);
        assert!(needs_reset(&t));
        w(&mut t, reg::STATUS, 0);
        assert!(!needs_reset(&t));
    }

    #[test]
    fn queue_ready_refuses_bad_sizes() {
        refused(12, 0x1000, 0x2000, 0x3000);
        refused(0, 0x1000, 0x2000, 0x3000);
        refused(512, 0x1000, 0x2000, 0x3000);
        refused(0x1_0000, 0x1000, 0x2000, 0x3000);
    }

    #[test]
    fn queue_ready_refuses_bad_addresses() {
        refused(16, 0x1008, 0x2000, 0x3000);
        refused(16, 0x1000, 0x2001, 0x3000);
        refused(16, 0x1000, 0x2000, 0x3002);
        refused(16, 0x2000_0000, 0x2000, 0x3000);
        refused(16, 0x1000, 0x2000, MEM_SIZE as u64 - 8);
        refused(16, 0x1000, u64::MAX - 1, 0x3000);
        refused(16, 0xffff_ffff_ffff_fff0, 0x2000, 0x3000);
    }

    #[test]
    fn notify_before_driver_ok_breaks_the_device() {
        let mem = memory();
        let (mut t, _io, _) = console(&mem);
        w(&mut t, reg::QUEUE_NOTIFY, 1);
        assert!(needs_reset(&t));
        w(&mut t, reg::STATUS, 0);
        assert!(!needs_reset(&t));
        negotiate(&mut t);
        w(&mut t, reg::QUEUE_NOTIFY, 0);
        assert!(needs_reset(&t));
    }

    #[test]
    fn notify_of_unready_or_missing_queue_breaks_the_device() {
        for queue in [0, 5, u32::MAX] {
            let mem = memory();
            let (mut t, _io, count) = console(&mem);
            negotiate(&mut t);
            setup_queue(&mut t, 1, 16, 0x4000, 0x4100, 0x6000);
            driver_ok(&mut t);
            assert!(t.is_activated());
            w(&mut t, reg::QUEUE_NOTIFY, queue);
            assert!(needs_reset(&t), "queue {queue}");
            // The driver hears about it through a config interrupt (and
            // reminders until it acknowledges).
            assert_eq!(r(&t, reg::INTERRUPT_STATUS), INT_CONFIG);
            assert!(count.load(Ordering::SeqCst) >= 1);
        }
    }

    /// Waits (at most 10 s) until the interrupt was raised `n` times.
    fn wait_for_interrupts(count: &std::sync::atomic::AtomicUsize, n: usize) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while count.load(Ordering::SeqCst) < n {
            assert!(std::time::Instant::now() < deadline, "{count:?} of {n}");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    #[test]
    fn broken_device_reminds_the_driver_until_acknowledged() {
        let mem = memory();
        let (mut t, _io, count) = console(&mem);
        let _queues = start(&mut t, &mem);
        // Before a break nothing is pending: events raise nothing.
        t.interrupt().remind_config_change();
        assert_eq!(count.load(Ordering::SeqCst), 0);
        w(&mut t, reg::QUEUE_NOTIFY, 7);
        assert!(needs_reset(&t));
        // The change is raised again by itself while nobody acknowledges
        // it, and at once by the device's next event (a notify).
        wait_for_interrupts(&count, 3);
        let before = count.load(Ordering::SeqCst);
        w(&mut t, reg::QUEUE_NOTIFY, 0);
        assert!(count.load(Ordering::SeqCst) > before);
        // Acknowledged: no more reminders (the longest delay is 100 ms).
        w(&mut t, reg::INTERRUPT_ACK, INT_CONFIG);
        let acked = count.load(Ordering::SeqCst);
        std::thread::sleep(std::time::Duration::from_millis(300));
        // One reminder may have been on its way during the write.
        assert!(count.load(Ordering::SeqCst) <= acked + 1);
        w(&mut t, reg::QUEUE_NOTIFY, 0);
        assert!(count.load(Ordering::SeqCst) <= acked + 1);
        // Reset and broken again: reminders start over.
        w(&mut t, reg::STATUS, 0);
        assert!(!needs_reset(&t));
        let _queues = start(&mut t, &mem);
        let before = count.load(Ordering::SeqCst);
        w(&mut t, reg::QUEUE_NOTIFY, 7);
        wait_for_interrupts(&count, before + 3);
    }

    #[test]
    fn queue_registers_after_driver_ok_are_ignored() {
        let mem = memory();
        let (mut t, _io, _) = console(&mem);
        let _queues = start(&mut t, &mem);
        w(&mut t, reg::QUEUE_SEL, 0);
        let desc = r(&t, reg::QUEUE_DESC_LOW);
        w(&mut t, reg::QUEUE_DESC_LOW, 0x8000);
        w(&mut t, reg::QUEUE_READY, 0);
        assert_eq!(r(&t, reg::QUEUE_DESC_LOW), desc);
        assert_eq!(r(&t, reg::QUEUE_READY), 1);
    }

    #[test]
    fn interrupt_ack_clears_bits() {
        let mem = memory();
        let (mut t, _io, count) = console(&mem);
        t.interrupt().signal_used_queue();
        t.interrupt().signal_config_change();
        assert_eq!(r(&t, reg::INTERRUPT_STATUS), INT_USED_RING | INT_CONFIG);
        assert_eq!(count.load(Ordering::SeqCst), 2);
        w(&mut t, reg::INTERRUPT_ACK, INT_USED_RING);
        assert_eq!(r(&t, reg::INTERRUPT_STATUS), INT_CONFIG);
        w(&mut t, reg::INTERRUPT_ACK, INT_CONFIG);
        assert_eq!(r(&t, reg::INTERRUPT_STATUS), 0);
    }

    #[test]
    fn eventfd_interrupt_and_notify_eventfd() {
        let mem = memory();
        let irq = EventFd::new(EFD_NONBLOCK).unwrap();
        let (device, io) = super::super::console::Console::new();
        let mut t = MmioTransport::new(
            device,
            mem.clone(),
            Interrupt::with_eventfd(irq.try_clone().unwrap()),
        )
        .unwrap();
        let queues = start(&mut t, &mem);
        mem.write_slice(b"hi", GuestAddress(DATA)).unwrap();
        queues[1]
            .add_desc_chains(&[desc(DATA, 2, 0, 0)], 0)
            .unwrap();
        // What KVM does for an ioeventfd on QueueNotify.
        t.notify_eventfd().write(1).unwrap();
        t.handle_notify_event();
        assert_eq!(io.take_output(), b"hi");
        assert_eq!(irq.read().unwrap(), 1);
        assert_eq!(r(&t, reg::INTERRUPT_STATUS), INT_USED_RING);
        // Spurious wakeup: nothing happens.
        t.handle_notify_event();
        assert!(!needs_reset(&t));
    }
}
