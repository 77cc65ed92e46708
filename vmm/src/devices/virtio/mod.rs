//! Virtio devices on the virtio-mmio transport (virtio 1.x, split queues).
//!
//! [`mmio::MmioTransport`] implements the register file a driver sees;
//! it owns a [`VirtioDevice`] (here [`console::Console`]) and hands it the
//! configured [`Queue`]s when the driver sets `DRIVER_OK`. The device reaches
//! the driver through an [`Interrupt`], shared with the transport, which
//! also carries the device's "broken" flag (`DEVICE_NEEDS_RESET`).
//!
//! The driver is not trusted: every descriptor chain is walked by
//! [`walk_chain`], which bounds the walk by the queue size and checks every
//! buffer against guest memory before a byte moves. Any violation marks the
//! device broken: it stops touching the queues until the driver resets it.

pub mod console;
pub mod mmio;

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use virtio_bindings::bindings::virtio_ring::{
    VRING_DESC_F_INDIRECT, VRING_DESC_F_NEXT, VRING_DESC_F_WRITE,
};
use virtio_queue::desc::split::Descriptor;
use virtio_queue::{Queue, QueueT};
use vm_memory::{Address, Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap};
use vmm_sys_util::eventfd::EventFd;

/// Guest memory as the devices see it.
pub type Memory = GuestMemoryMmap<()>;

/// `VIRTIO_F_VERSION_1`: always offered by the transport and required.
pub const VIRTIO_F_VERSION_1: u64 = 1 << 32;

/// Device status bits (virtio 1.x section 2.1).
pub use forkvm_abi::virtio_mmio::status;

/// `InterruptStatus` bits: used buffers, configuration change.
pub use forkvm_abi::virtio_mmio::{INT_CONFIG, INT_USED_RING};

/// Largest total length of one descriptor chain the devices accept.
pub const MAX_CHAIN_BYTES: u32 = 64 * 1024;

/// Why a device gave up on its driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceError {
    /// The device was used before `DRIVER_OK` or after a reset.
    NotActivated,
    /// A queue index the device does not have.
    NoSuchQueue(usize),
    /// A notification for a queue the driver did not make ready.
    QueueNotReady(usize),
    /// The available ring index moved by more than the queue size.
    AvailRingIndex,
    /// A chain head or `next` index outside the descriptor table.
    DescriptorIndex(u16),
    /// A chain longer than the queue: it loops.
    ChainLoop,
    /// An indirect descriptor (`VIRTIO_F_INDIRECT_DESC` is not offered).
    IndirectDescriptor,
    /// A write-only buffer where the device reads, or the other way round.
    WrongDirection,
    /// A chain longer than [`MAX_CHAIN_BYTES`].
    ChainTooLong,
    /// A buffer (or the descriptor table) outside guest memory.
    OutOfMemory(u64, u32),
    /// The rings could not be accessed.
    Queue(String),
}

impl fmt::Display for DeviceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotActivated => write!(f, "the device is not activated"),
            Self::NoSuchQueue(q) => write!(f, "no queue {q}"),
            Self::QueueNotReady(q) => write!(f, "queue {q} is not ready"),
            Self::AvailRingIndex => write!(f, "the available index moved past the queue size"),
            Self::DescriptorIndex(i) => write!(f, "descriptor index {i} is out of the table"),
            Self::ChainLoop => write!(f, "a descriptor chain loops"),
            Self::IndirectDescriptor => write!(f, "an indirect descriptor (not negotiated)"),
            Self::WrongDirection => write!(f, "a buffer has the wrong direction"),
            Self::ChainTooLong => write!(f, "a chain is longer than {MAX_CHAIN_BYTES} bytes"),
            Self::OutOfMemory(addr, len) => {
                write!(f, "buffer {addr:#x}+{len:#x} is outside guest memory")
            }
            Self::Queue(e) => write!(f, "queue access: {e}"),
        }
    }
}

impl std::error::Error for DeviceError {}

impl From<virtio_queue::Error> for DeviceError {
    fn from(e: virtio_queue::Error) -> Self {
        match e {
            virtio_queue::Error::InvalidAvailRingIndex => Self::AvailRingIndex,
            virtio_queue::Error::QueueNotReady => Self::NotActivated,
            other => Self::Queue(other.to_string()),
        }
    }
}

/// A virtio device behind a transport.
pub trait VirtioDevice: Send {
    /// The virtio device ID (3 for a console).
    fn device_id(&self) -> u32;
    /// Device-specific feature bits; the transport adds `VIRTIO_F_VERSION_1`.
    fn features(&self) -> u64;
    /// The largest size of each queue (powers of two); its length is the
    /// number of queues.
    fn queue_max_sizes(&self) -> &[u16];
    /// Reads `data.len()` bytes of the configuration space at `offset`;
    /// bytes beyond the space read as zero.
    fn read_config(&self, offset: u64, data: &mut [u8]);
    /// Writes the configuration space (read-only fields ignore it).
    fn write_config(&mut self, offset: u64, data: &[u8]);
    /// Starts the device on `DRIVER_OK`. `queues` holds one queue per
    /// entry of `queue_max_sizes`; those the driver made ready were checked
    /// against `mem`, the others are not ready and must not be used.
    fn activate(
        &mut self,
        mem: Memory,
        acked_features: u64,
        queues: Vec<Queue>,
        interrupt: Interrupt,
    ) -> Result<(), DeviceError>;
    /// Handles the driver's notification of queue `index`. An error means
    /// the driver misbehaved: the transport marks the device broken.
    fn process_queue(&mut self, index: usize) -> Result<(), DeviceError>;
    /// Returns the device to its pre-activation state (drops the queues).
    fn reset(&mut self);
}

enum Trigger {
    EventFd(EventFd),
    Callback(Box<dyn Fn() + Send + Sync>),
}

struct InterruptInner {
    status: AtomicU32,
    needs_reset: AtomicBool,
    /// A reminder thread runs (see [`Interrupt::start_reminders`]).
    reminding: AtomicBool,
    trigger: Trigger,
}

/// A broken device raises its unacknowledged configuration change again
/// after this long, then after twice as long each time, up to
/// [`REMINDER_MAX`].
const REMINDER_FIRST: Duration = Duration::from_millis(1);
const REMINDER_MAX: Duration = Duration::from_millis(100);

/// The device's interrupt line and `InterruptStatus`, plus its "broken"
/// flag; cloned between the transport and the device.
#[derive(Clone)]
pub struct Interrupt(Arc<InterruptInner>);

impl Interrupt {
    fn with_trigger(trigger: Trigger) -> Self {
        Self(Arc::new(InterruptInner {
            status: AtomicU32::new(0),
            needs_reset: AtomicBool::new(false),
            reminding: AtomicBool::new(false),
            trigger,
        }))
    }

    /// An interrupt raised by writing `eventfd` (register it as an irqfd).
    pub fn with_eventfd(eventfd: EventFd) -> Self {
        Self::with_trigger(Trigger::EventFd(eventfd))
    }

    /// An interrupt raised by calling `callback`.
    pub fn with_callback(callback: impl Fn() + Send + Sync + 'static) -> Self {
        Self::with_trigger(Trigger::Callback(Box::new(callback)))
    }

    fn raise(&self, bits: u32) {
        self.0.status.fetch_or(bits, Ordering::SeqCst);
        // Always pulse: the driver may be between reading and acknowledging
        // `InterruptStatus` (or not read it at all: see the guest driver),
        // and an edge it misses is a lost interrupt.
        self.pulse();
    }

    fn pulse(&self) {
        match &self.0.trigger {
            Trigger::EventFd(fd) => {
                if let Err(e) = fd.write(1) {
                    log::warn!("virtio: cannot raise the interrupt: {e}");
                }
            }
            Trigger::Callback(callback) => callback(),
        }
    }

    /// Raises the used buffer notification (`InterruptStatus` bit 0).
    pub fn signal_used_queue(&self) {
        self.raise(INT_USED_RING);
    }

    /// Raises the configuration change notification (bit 1).
    pub fn signal_config_change(&self) {
        self.raise(INT_CONFIG);
    }

    /// Marks the device broken (`DEVICE_NEEDS_RESET`): logs `reason` and
    /// notifies the driver the first time (reminding it until it
    /// acknowledges), does nothing afterwards.
    pub fn set_needs_reset(&self, reason: &dyn fmt::Display) {
        if !self.0.needs_reset.swap(true, Ordering::SeqCst) {
            log::warn!("virtio: device needs reset: {reason}");
            self.signal_config_change();
            self.start_reminders();
        }
    }

    /// Whether the device is broken and the driver has not acknowledged
    /// the configuration change yet.
    fn config_change_pending(&self) -> bool {
        self.needs_reset() && self.status() & INT_CONFIG != 0
    }

    /// Raises the interrupt again if the configuration change of a broken
    /// device is not acknowledged yet. Called on every later event of the
    /// device (a notify, host input), and by the reminder thread: a driver
    /// that reads `InterruptStatus` only for interrupts that brought no
    /// used buffer (the guest's) misses a change whose edge merged with a
    /// used-buffer edge, and a broken device uses no buffer, so a later
    /// edge alone gets the status read.
    pub fn remind_config_change(&self) {
        if self.config_change_pending() {
            self.pulse();
        }
    }

    /// Starts the thread that calls [`Self::remind_config_change`] with
    /// growing delays until the driver
    /// acknowledges the change, resets the device or the device is gone:
    /// a driver blocked on a broken device may cause no event of its own.
    fn start_reminders(&self) {
        if self.0.reminding.swap(true, Ordering::SeqCst) {
            return;
        }
        let weak = Arc::downgrade(&self.0);
        let spawned = std::thread::Builder::new()
            .name("virtio-reminder".into())
            .spawn(move || {
                let mut delay = REMINDER_FIRST;
                loop {
                    std::thread::sleep(delay);
                    let Some(inner) = weak.upgrade() else {
                        return;
                    };
                    let interrupt = Interrupt(inner);
                    if interrupt.config_change_pending() {
                        interrupt.pulse();
                        delay = (delay * 2).min(REMINDER_MAX);
                        continue;
                    }
                    interrupt.0.reminding.store(false, Ordering::SeqCst);
                    // A break after the check found the flag still set and
                    // started no thread: this one carries on for it.
                    if !interrupt.config_change_pending()
                        || interrupt.0.reminding.swap(true, Ordering::SeqCst)
                    {
                        return;
                    }
                    delay = REMINDER_FIRST;
                }
            });
        if let Err(e) = spawned {
            self.0.reminding.store(false, Ordering::SeqCst);
            log::warn!("virtio: no reminder thread for the configuration change: {e}");
        }
    }

    /// Whether the device is broken until the driver resets it.
    pub fn needs_reset(&self) -> bool {
        self.0.needs_reset.load(Ordering::SeqCst)
    }

    /// The current `InterruptStatus`.
    pub fn status(&self) -> u32 {
        self.0.status.load(Ordering::SeqCst)
    }

    /// `InterruptACK`: clears `bits`.
    pub fn ack(&self, bits: u32) {
        self.0.status.fetch_and(!bits, Ordering::SeqCst);
    }

    /// Device reset: no pending interrupt, not broken.
    pub fn reset(&self) {
        self.0.status.store(0, Ordering::SeqCst);
        self.0.needs_reset.store(false, Ordering::SeqCst);
    }
}

impl fmt::Debug for Interrupt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Interrupt")
            .field("status", &self.status())
            .field("needs_reset", &self.needs_reset())
            .finish()
    }
}

/// Which way the device moves data through a queue's buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The device reads driver buffers (read-only descriptors).
    DeviceReads,
    /// The device writes driver buffers (write-only descriptors).
    DeviceWrites,
}

/// One validated buffer of a chain: entirely inside guest memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Buffer {
    /// Guest physical address.
    pub addr: GuestAddress,
    /// Length in bytes.
    pub len: u32,
}

/// Walks the chain starting at descriptor `head` of `queue` and checks it:
/// indices inside the table, at most `queue.size()` descriptors (longer is a
/// loop), no indirect descriptors, every buffer in `direction` and inside
/// `mem`, at most [`MAX_CHAIN_BYTES`] in total.
pub fn walk_chain(
    mem: &Memory,
    queue: &Queue,
    head: u16,
    direction: Direction,
) -> Result<Vec<Buffer>, DeviceError> {
    let size = queue.size();
    let table = GuestAddress(queue.desc_table());
    let mut buffers = Vec::new();
    let mut index = head;
    let mut total: u32 = 0;
    loop {
        if index >= size {
            return Err(DeviceError::DescriptorIndex(index));
        }
        if buffers.len() >= usize::from(size) {
            return Err(DeviceError::ChainLoop);
        }
        let at = table
            .checked_add(u64::from(index) * 16)
            .ok_or(DeviceError::OutOfMemory(table.raw_value(), 16))?;
        let desc: Descriptor = mem
            .read_obj(at)
            .map_err(|_| DeviceError::OutOfMemory(at.raw_value(), 16))?;
        let flags = u32::from(desc.flags());
        if flags & VRING_DESC_F_INDIRECT != 0 {
            return Err(DeviceError::IndirectDescriptor);
        }
        let writable = flags & VRING_DESC_F_WRITE != 0;
        if writable != (direction == Direction::DeviceWrites) {
            return Err(DeviceError::WrongDirection);
        }
        total = total
            .checked_add(desc.len())
            .filter(|&t| t <= MAX_CHAIN_BYTES)
            .ok_or(DeviceError::ChainTooLong)?;
        let addr = desc.addr();
        if desc.len() > 0 && !GuestMemoryBackend::check_range(mem, addr, desc.len() as usize) {
            return Err(DeviceError::OutOfMemory(addr.raw_value(), desc.len()));
        }
        buffers.push(Buffer {
            addr,
            len: desc.len(),
        });
        if flags & VRING_DESC_F_NEXT == 0 {
            return Ok(buffers);
        }
        index = desc.next();
    }
}

/// Driver-side helpers for the unit tests.
#[cfg(test)]
pub(crate) mod testutil {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use virtio_queue::desc::{split::Descriptor, RawDescriptor};
    use virtio_queue::mock::MockSplitQueue;
    use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

    use super::console::{Console, ConsoleIo};
    use super::mmio::{reg, MmioTransport};
    use super::status::*;
    use super::{Interrupt, Memory};

    pub const MEM_SIZE: usize = 0x10_0000;
    pub const QSIZE: u16 = 16;
    /// Queue bases (descriptor table and available ring from the mock).
    pub const BASES: [u64; 2] = [0x1000, 0x4000];
    /// Used rings: apart from the mock's, whose layout overlaps the
    /// available ring's tail.
    pub const USED: [u64; 2] = [0x3000, 0x6000];
    pub const DATA: u64 = 0x1_0000;

    pub fn memory() -> Memory {
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEM_SIZE)]).unwrap()
    }

    pub type Transport = MmioTransport<Console>;

    pub fn console(mem: &Memory) -> (Transport, ConsoleIo, Arc<AtomicUsize>) {
        let count = Arc::new(AtomicUsize::new(0));
        let counter = count.clone();
        let interrupt = Interrupt::with_callback(move || {
            counter.fetch_add(1, Ordering::SeqCst);
        });
        let (device, io) = Console::new();
        let transport = MmioTransport::new(device, mem.clone(), interrupt).unwrap();
        (transport, io, count)
    }

    pub fn r(t: &Transport, offset: u64) -> u32 {
        let mut data = [0u8; 4];
        t.read(offset, &mut data);
        u32::from_le_bytes(data)
    }

    pub fn w(t: &mut Transport, offset: u64, value: u32) {
        t.write(offset, &value.to_le_bytes());
    }

    /// ACKNOWLEDGE, DRIVER, VERSION_1, FEATURES_OK.
    pub fn negotiate(t: &mut Transport) {
        w(t, reg::STATUS, ACKNOWLEDGE);
        w(t, reg::STATUS, ACKNOWLEDGE | DRIVER);
        w(t, reg::DRIVER_FEATURES_SEL, 1);
        w(t, reg::DRIVER_FEATURES, 1);
        w(t, reg::STATUS, ACKNOWLEDGE | DRIVER | FEATURES_OK);
        assert_eq!(r(t, reg::STATUS), ACKNOWLEDGE | DRIVER | FEATURES_OK);
    }

    pub fn setup_queue(t: &mut Transport, index: u32, size: u32, desc: u64, avail: u64, used: u64) {
        w(t, reg::QUEUE_SEL, index);
        w(t, reg::QUEUE_NUM, size);
        for (low, value) in [
            (reg::QUEUE_DESC_LOW, desc),
            (reg::QUEUE_DRIVER_LOW, avail),
            (reg::QUEUE_DEVICE_LOW, used),
        ] {
            w(t, low, value as u32);
            w(t, low + 4, (value >> 32) as u32);
        }
        w(t, reg::QUEUE_READY, 1);
    }

    pub fn driver_ok(t: &mut Transport) {
        let s = r(t, reg::STATUS);
        w(t, reg::STATUS, s | DRIVER_OK);
    }

    /// Both mock queues, configured and the device started.
    pub fn start<'a>(t: &mut Transport, mem: &'a Memory) -> [MockSplitQueue<'a, Memory>; 2] {
        let queues = BASES.map(|base| MockSplitQueue::create(mem, GuestAddress(base), QSIZE));
        negotiate(t);
        for (i, q) in queues.iter().enumerate() {
            setup_queue(
                t,
                i as u32,
                QSIZE.into(),
                q.desc_table_addr().0,
                q.avail_addr().0,
                USED[i],
            );
            assert_eq!(r(t, reg::QUEUE_READY), 1);
        }
        driver_ok(t);
        assert!(t.is_activated());
        queues
    }

    pub fn desc(addr: u64, len: u32, flags: u16, next: u16) -> RawDescriptor {
        RawDescriptor::from(Descriptor::new(addr, len, flags, next))
    }

    pub fn used_idx(mem: &Memory, queue: usize) -> u16 {
        mem.read_obj(GuestAddress(USED[queue] + 2)).unwrap()
    }

    pub fn used_flags(mem: &Memory, queue: usize) -> u16 {
        mem.read_obj(GuestAddress(USED[queue])).unwrap()
    }

    /// (id, len) of used element `i`.
    pub fn used_elem(mem: &Memory, queue: usize, i: u64) -> (u32, u32) {
        let at = USED[queue] + 4 + 8 * i;
        (
            mem.read_obj(GuestAddress(at)).unwrap(),
            mem.read_obj(GuestAddress(at + 4)).unwrap(),
        )
    }

    pub fn needs_reset(t: &Transport) -> bool {
        r(t, reg::STATUS) & DEVICE_NEEDS_RESET != 0
    }
}
