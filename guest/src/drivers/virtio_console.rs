//! virtio console driver (Linux: `drivers/char/virtio_console.c`, with the
//! split virtqueue of `drivers/virtio/virtio_ring.c` written by hand: it is
//! small, and the kernel's frame allocator hands out single pages).
//!
//! One port, no multiport: receiveq 0 and transmitq 1, each in one zeroed
//! page (descriptor table, available ring, used ring) of [`QUEUE_SIZE`]
//! entries; receive buffers are 256-byte slices of one more page, the
//! transmit buffer is one page. Only VIRTIO_F_VERSION_1 is negotiated.
//!
//! Interrupts (GSI from `BootInfo`, through the IOAPIC): the handler moves
//! the used receive buffers' bytes into a kernel byte queue, gives the
//! buffers back (one QueueNotify per batch, and none while the device sets
//! VIRTQ_USED_F_NO_NOTIFY) and wakes readers; used transmit buffers wake
//! the writer. A device that sets DEVICE_NEEDS_RESET is logged once and not
//! used again.
//!
//! Busy polling (`idle_poll`, sysctl `dev.console.busy_poll_ns`): while a
//! reader waits and input came recently, the idle loop watches the receive
//! ring with the receive interrupt off before it halts, so a request in a
//! stream of them needs no interrupt at all (on PVM: a Hello round trip
//! ~26 us instead of ~65 us, KVM exits 10 -> 5 per request).
//!
//! The handler touches InterruptStatus and InterruptACK only for an
//! interrupt that brought no announced used buffer: each register access
//! is an exit to the VMM, the most expensive part of a request on a
//! trap-costly host. This is safe because the line is edge-triggered (the
//! IOAPIC route) and the VMM pulses it on every notification (an irqfd
//! without a resample fd), so an unacknowledged InterruptStatus neither
//! re-raises the line nor masks the next edge: ACK is bookkeeping only.
//! Every receive buffer the device uses is followed by an edge, and so is
//! a transmit buffer while transmit interrupts are on (with them off,
//! transmit buffers come back silently and explain no interrupt). An
//! interrupt that finds none is a configuration change, or one whose
//! buffers an earlier run took: then the status is read and acknowledged
//! and DEVICE_NEEDS_RESET checked. A configuration change whose edge
//! merged with a used-buffer edge (both before the CPU took the vector),
//! or that came with buffers used just before the device broke, stays
//! pending in InterruptStatus; the device raises it again at its next
//! event (a notify, host input) and from a timer until acknowledged, and
//! a broken device uses no buffer, so such an interrupt reads the status.
//!
//! The ring logic is `forkvm_core::drivers::virtqueue` (unit-tested on the
//! host on ordinary memory); this module touches the device.

use forkvm_core::drivers::virtqueue::*;

/// The register file (virtio 1.x section 4.2.2), shared with the VMM.
pub use forkvm_abi::virtio_mmio::reg;

/// Device status bits (virtio 1.x section 2.1).
pub use forkvm_abi::virtio_mmio::status;

/// InterruptStatus bit 1 (bit 0, used buffers, needs no test: the rings
/// are always looked at).
use forkvm_abi::virtio_mmio::INT_CONFIG as VIRTIO_MMIO_INT_CONFIG;

use alloc::collections::VecDeque;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use spin::Mutex;

use crate::mm::frame::{FrameUse, FRAME_SIZE};
use crate::sched::wait::WaitQueue;

/// Bytes received and not read yet, at most this many (more input
/// waits in the device's queue: its buffers are not recycled).
const RX_QUEUE_LIMIT: usize = 64 * 1024;

struct Device {
    base: u64,
    rx: Virtqueue,
    tx: Virtqueue,
    tx_buffer: u64,
    /// Receive buffers harvested while the byte queue was full.
    parked: alloc::vec::Vec<u64>,
}

static DEVICE: Mutex<Option<Device>> = Mutex::new(None);
static GSI: AtomicU32 = AtomicU32::new(u32::MAX);
static BROKEN: AtomicBool = AtomicBool::new(false);
static INPUT: Mutex<VecDeque<u8>> = Mutex::new(VecDeque::new());
/// Readers wait here for input.
static RX_WAIT: WaitQueue = WaitQueue::new();
/// The writer waits here for the device to consume its buffer.
static TX_WAIT: WaitQueue = WaitQueue::new();
/// A writer owns the transmit page (others sleep on `TX_WAIT`: a spin
/// lock held across a sleep would hang the single CPU).
static TX_OWNED: AtomicBool = AtomicBool::new(false);
/// The device holds the transmit page.
static TX_BUSY: AtomicBool = AtomicBool::new(false);

fn read(base: u64, offset: u64) -> u32 {
    // SAFETY: `base` is the probed virtio-mmio window inside the MMIO
    // hole, mapped uncached in the direct map; registers are aligned
    // 32-bit.
    unsafe { core::ptr::read_volatile(crate::mm::phys_to_virt(base + offset) as *const u32) }
}

fn write(base: u64, offset: u64, value: u32) {
    // SAFETY: as in `read`; the driver owns the device.
    unsafe { core::ptr::write_volatile(crate::mm::phys_to_virt(base + offset) as *mut u32, value) }
}

fn zeroed_frame() -> Option<u64> {
    let pfn = crate::mm::alloc_frame(FrameUse::Data)?;
    let phys = pfn.phys();
    // SAFETY: a freshly allocated RAM frame, mapped by the direct map
    // and owned by nobody else.
    unsafe {
        core::ptr::write_bytes(
            crate::mm::phys_to_virt(phys) as *mut u8,
            0,
            FRAME_SIZE as usize,
        )
    };
    Some(phys)
}

fn setup_queue(base: u64, index: u16) -> Result<Virtqueue, &'static str> {
    write(base, reg::QUEUE_SEL, u32::from(index));
    if read(base, reg::QUEUE_READY) != 0 {
        return Err("queue already live");
    }
    if read(base, reg::QUEUE_NUM_MAX) < u32::from(QUEUE_SIZE) {
        return Err("queue too small");
    }
    let phys = zeroed_frame().ok_or("out of memory")?;
    // SAFETY: a zeroed page of our own, kept for the kernel's life.
    let queue = unsafe { Virtqueue::new(crate::mm::phys_to_virt(phys) as *mut u8, phys) };
    write(base, reg::QUEUE_NUM, u32::from(QUEUE_SIZE));
    for (low, high, addr) in [
        (reg::QUEUE_DESC_LOW, reg::QUEUE_DESC_HIGH, queue.desc_phys()),
        (
            reg::QUEUE_DRIVER_LOW,
            reg::QUEUE_DRIVER_HIGH,
            queue.avail_phys(),
        ),
        (
            reg::QUEUE_DEVICE_LOW,
            reg::QUEUE_DEVICE_HIGH,
            queue.used_phys(),
        ),
    ] {
        write(base, low, addr as u32);
        write(base, high, (addr >> 32) as u32);
    }
    write(base, reg::QUEUE_READY, 1);
    Ok(queue)
}

/// Brings the device at `base` up (after `virtio_mmio` identified a
/// console there) and routes its interrupt line `gsi`.
pub fn init(base: u64, gsi: u32) {
    if let Err(e) = try_init(base, gsi) {
        write(base, reg::STATUS, status::FAILED);
        crate::println!("virtio-console: not used: {e}");
    }
}

fn try_init(base: u64, gsi: u32) -> Result<(), &'static str> {
    use crate::arch::{apic, interrupts::IRQ_BASE, ioapic};
    write(base, reg::STATUS, 0);
    write(base, reg::STATUS, status::ACKNOWLEDGE);
    write(base, reg::STATUS, status::ACKNOWLEDGE | status::DRIVER);
    let mut offered = [0u32; 2];
    for (word, value) in offered.iter_mut().enumerate() {
        write(base, reg::DEVICE_FEATURES_SEL, word as u32);
        *value = read(base, reg::DEVICE_FEATURES);
    }
    let accepted = negotiate(offered).ok_or("no VIRTIO_F_VERSION_1")?;
    for (word, value) in accepted.iter().enumerate() {
        write(base, reg::DRIVER_FEATURES_SEL, word as u32);
        write(base, reg::DRIVER_FEATURES, *value);
    }
    let features_ok = status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK;
    write(base, reg::STATUS, features_ok);
    if read(base, reg::STATUS) & status::FEATURES_OK == 0 {
        return Err("FEATURES_OK refused");
    }
    let mut rx = setup_queue(base, RECEIVEQ)?;
    let mut tx = setup_queue(base, TRANSMITQ)?;
    // The transmit page is usually back long before the next write:
    // look at the used ring then, and take an interrupt only when it
    // is not (see `wait_tx_idle`).
    tx.set_interrupts(false);
    let rx_page = zeroed_frame().ok_or("out of memory")?;
    let tx_buffer = zeroed_frame().ok_or("out of memory")?;
    for i in 0..u64::from(QUEUE_SIZE) {
        rx.add(
            rx_page + i * u64::from(RX_BUFFER_SIZE),
            RX_BUFFER_SIZE,
            true,
        );
    }
    rx.publish();
    GSI.store(gsi, Ordering::Relaxed);
    *DEVICE.lock() = Some(Device {
        base,
        rx,
        tx,
        tx_buffer,
        parked: alloc::vec::Vec::new(),
    });
    // Route before DRIVER_OK: the device may use buffers at once.
    ioapic::route(gsi, IRQ_BASE + gsi as u8, apic::id());
    write(base, reg::STATUS, features_ok | status::DRIVER_OK);
    write(base, reg::QUEUE_NOTIFY, u32::from(RECEIVEQ));
    // Input the host queued before boot may already be in our buffers.
    handle_irq(gsi);
    Ok(())
}

/// Whether the device is up and usable.
pub fn available() -> bool {
    DEVICE.lock().is_some() && !BROKEN.load(Ordering::Acquire)
}

/// Moves used receive buffers into the byte queue and recycles them
/// (notifying once, if the device asks for it); wakes the writer on
/// used transmit buffers. Whether it took a used buffer the device
/// announced with an interrupt: any receive buffer, a transmit buffer
/// only while transmit interrupts are on (otherwise it was used
/// silently and explains no interrupt).
fn harvest(device: &mut Device) -> bool {
    let mut input = INPUT.lock();
    let mut recycled = false;
    let mut received = false;
    let mut progress = false;
    // Buffers parked while the queue was full go back first.
    while input.len() < RX_QUEUE_LIMIT {
        let Some(buffer) = device.parked.pop() else {
            break;
        };
        device.rx.add(buffer, RX_BUFFER_SIZE, true);
        recycled = true;
    }
    while let Some((buffer, len)) = device.rx.pop_used() {
        progress = true;
        let len = len.min(RX_BUFFER_SIZE) as usize;
        // SAFETY: `buffer` is one of our receive buffers in RAM (direct
        // map); the device has returned it, so nobody writes it now.
        let bytes = unsafe {
            core::slice::from_raw_parts(crate::mm::phys_to_virt(buffer) as *const u8, len)
        };
        input.extend(bytes);
        received |= len > 0;
        if input.len() < RX_QUEUE_LIMIT {
            device.rx.add(buffer, RX_BUFFER_SIZE, true);
            recycled = true;
        } else {
            device.parked.push(buffer);
        }
    }
    drop(input);
    if recycled {
        device.rx.publish();
        // The device asks for buffers only while host input waits for
        // them; otherwise this notify would be an exit for nothing.
        if device.rx.needs_notify() {
            write(device.base, reg::QUEUE_NOTIFY, u32::from(RECEIVEQ));
        }
    }
    if received {
        LAST_INPUT_NS.store(crate::time::uptime_ns(), Ordering::Relaxed);
        RX_WAIT.wake_all();
    }
    let announced = device.tx.interrupts_enabled();
    let transmitted = pop_tx(device);
    if transmitted && !TX_BUSY.load(Ordering::Acquire) {
        TX_WAIT.wake_all();
    }
    progress || (transmitted && announced)
}

/// Takes the transmit page back if the device has used it; whether a
/// used entry was there.
fn pop_tx(device: &mut Device) -> bool {
    let mut popped = false;
    while device.tx.pop_used().is_some() {
        TX_BUSY.store(false, Ordering::Release);
        popped = true;
    }
    popped
}

/// Takes the transmit page back if the device has used it; whether it
/// is free.
fn reap_tx(device: &mut Device) -> bool {
    pop_tx(device);
    !TX_BUSY.load(Ordering::Acquire)
}

/// How long a writer spins on the used ring for the transmit page
/// before it turns interrupts on and sleeps: the VMM's device thread
/// normally answers within tens of microseconds, less than an
/// interrupt costs on a trap-expensive host.
const TX_SPIN_NS: u64 = 50_000;

/// Waits until the device has consumed the transmit page: a look at
/// the used ring, a short spin, then an interrupt. `Ok(false)` if a
/// fatal signal ended the wait; `Err(EIO)` for a broken device.
fn wait_tx_idle() -> Result<bool, i32> {
    let free = || -> Result<bool, i32> {
        if BROKEN.load(Ordering::Acquire) {
            return Err(crate::errno::EIO);
        }
        Ok(DEVICE.lock().as_mut().is_some_and(reap_tx))
    };
    if free()? {
        return Ok(true);
    }
    let deadline = crate::time::uptime_ns() + TX_SPIN_NS;
    while crate::time::uptime_ns() < deadline {
        core::hint::spin_loop();
        if free()? {
            return Ok(true);
        }
    }
    let set_interrupts = |on: bool| {
        if let Some(device) = DEVICE.lock().as_mut() {
            device.tx.set_interrupts(on);
        }
    };
    set_interrupts(true);
    // Looked at again by the predicate: a page used before the flag
    // changed raised no interrupt.
    let woken = TX_WAIT.wait_until(|| free().unwrap_or(true));
    set_interrupts(false);
    if BROKEN.load(Ordering::Acquire) {
        return Err(crate::errno::EIO);
    }
    Ok(woken)
}

/// `dev.console.busy_poll_ns`: how long the idle CPU watches the
/// receive ring for a waiting reader, with the receive interrupt off,
/// before it halts (Linux's guest haltpoll and NAPI busy polling, in
/// one). A request then reaches the reader without an interrupt
/// injection, a wake from `hlt`, an EOI and (on PVM) the re-arm of
/// native mode: tens of microseconds per request where traps are
/// dear (PVM: default 200 us), little where they are not (HVM:
/// default 0, off). `u64::MAX` stands for the platform default.
static BUSY_POLL_NS: AtomicU64 = AtomicU64::new(u64::MAX);
/// Upper bound of `dev.console.busy_poll_ns` (10 ms).
pub const MAX_BUSY_POLL_NS: u64 = 10_000_000;
/// Polling pays only while requests keep coming: not once the last
/// input is older than this, so an idle harness costs no CPU beyond
/// its timer ticks.
const BUSY_POLL_RECENT_NS: u64 = 50_000_000;
/// Uptime of the last input taken from the device.
static LAST_INPUT_NS: AtomicU64 = AtomicU64::new(0);

pub fn busy_poll_ns() -> u64 {
    match BUSY_POLL_NS.load(Ordering::Relaxed) {
        u64::MAX => crate::arch::platform::defaults().console_busy_poll_ns,
        ns => ns,
    }
}

pub fn set_busy_poll_ns(ns: u64) -> Result<(), i32> {
    if ns > MAX_BUSY_POLL_NS {
        return Err(crate::errno::EINVAL);
    }
    BUSY_POLL_NS.store(ns, Ordering::Relaxed);
    Ok(())
}

/// Called by the idle loop before it halts: while a reader sleeps on
/// the console, watches the receive ring for up to
/// [`busy_poll_ns`] with the receive interrupt off, and takes what
/// comes (waking the reader). The interrupt is on again when it
/// returns, and the ring is looked at once more after that: a buffer
/// used in between raised none. Whether it found input.
pub fn idle_poll() -> bool {
    let window = busy_poll_ns();
    let now = crate::time::uptime_ns();
    let recent = now.saturating_sub(LAST_INPUT_NS.load(Ordering::Relaxed)) < BUSY_POLL_RECENT_NS;
    if window == 0 || !recent || BROKEN.load(Ordering::Acquire) || !RX_WAIT.has_sleepers() {
        return false;
    }
    let set_rx_interrupts = |on: bool| {
        if let Some(device) = DEVICE.lock().as_mut() {
            device.rx.set_interrupts(on);
        }
    };
    let arrived = || DEVICE.lock().as_ref().is_some_and(|d| d.rx.has_used());
    set_rx_interrupts(false);
    let deadline = now + window;
    while !arrived() && crate::time::uptime_ns() < deadline {
        core::hint::spin_loop();
    }
    set_rx_interrupts(true);
    let mut guard = DEVICE.lock();
    match guard.as_mut() {
        Some(device) if device.rx.has_used() => {
            harvest(device);
            POLL_TOOK_INPUT.store(true, Ordering::Relaxed);
            true
        }
        _ => false,
    }
}

/// Set when [`idle_poll`] took input, cleared by the next interrupt
/// that finds the rings empty (see `handle_irq`).
static POLL_TOOK_INPUT: AtomicBool = AtomicBool::new(false);

/// Interrupt on IOAPIC line `gsi`: ours if it is the console's.
pub fn handle_irq(gsi: u32) {
    if gsi != GSI.load(Ordering::Relaxed) || BROKEN.load(Ordering::Acquire) {
        return;
    }
    let mut guard = DEVICE.lock();
    let Some(device) = guard.as_mut() else {
        return;
    };
    // The rings first: an interrupt that brought used buffers needs no
    // register access (see the module comment).
    if harvest(device) {
        return;
    }
    // The first empty-handed interrupt after a poll took input is that
    // input's late edge (the device saw the interrupt back on before
    // the CPU took it); a configuration change behind it is raised
    // again by the device until acknowledged, and read then.
    if POLL_TOOK_INPUT.swap(false, Ordering::Relaxed) {
        return;
    }
    let pending = read(device.base, reg::INTERRUPT_STATUS);
    if pending != 0 {
        write(device.base, reg::INTERRUPT_ACK, pending);
    }
    if pending & VIRTIO_MMIO_INT_CONFIG != 0
        && read(device.base, reg::STATUS) & status::DEVICE_NEEDS_RESET != 0
    {
        drop(guard);
        mark_broken();
    }
}

fn mark_broken() {
    if !BROKEN.swap(true, Ordering::AcqRel) {
        crate::println!("virtio-console: device needs a reset; not used any more");
    }
    RX_WAIT.wake_all();
    TX_WAIT.wake_all();
}

/// Whether a read would not wait: input is buffered, or the device broke
/// (the read fails at once); and the queue readers sleep on (`poll`).
pub fn poll_readable() -> (bool, &'static WaitQueue) {
    let ready = BROKEN.load(Ordering::Acquire) || !INPUT.lock().is_empty();
    (ready, &RX_WAIT)
}

/// Reads at least one byte (blocking) into `out`. `Err(EINTR)` if a
/// fatal signal interrupted the wait, `Err(EIO)` for a broken device.
pub fn read_bytes(out: &mut [u8]) -> Result<usize, i32> {
    use crate::errno::{EINTR, EIO};
    let mut n = 0;
    let done = RX_WAIT.wait_until(|| {
        if BROKEN.load(Ordering::Acquire) {
            return true;
        }
        let mut input = INPUT.lock();
        n = out.len().min(input.len());
        for (slot, byte) in out.iter_mut().zip(input.drain(..n)) {
            *slot = byte;
        }
        n > 0
    });
    if n > 0 {
        // Buffers parked for lack of room can go back now.
        if let Some(device) = DEVICE.lock().as_mut() {
            if !device.parked.is_empty() {
                harvest(device);
            }
        }
        return Ok(n);
    }
    if !done {
        return Err(EINTR);
    }
    Err(EIO)
}

/// Transmits `data` in page-sized chunks, one QueueNotify each; a
/// chunk waits for the device to have consumed the previous one (the
/// last one is reclaimed by the next write). Returns the bytes sent.
pub fn write_bytes(data: &[u8]) -> Result<usize, i32> {
    use crate::errno::{EINTR, EIO};
    let mut owned = false;
    let woken = TX_WAIT.wait_until(|| {
        owned = TX_OWNED
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        owned || BROKEN.load(Ordering::Acquire)
    });
    if !owned {
        return Err(if woken { EIO } else { EINTR });
    }
    let result = transmit(data);
    TX_OWNED.store(false, Ordering::Release);
    TX_WAIT.wake_all();
    result
}

/// Spins (at most 10 ms, never sleeping: it runs on the way to a
/// power-off) until the device has taken the last transmitted chunk,
/// so that output written just before reaches the host.
pub fn flush() {
    let deadline = crate::time::uptime_ns() + 10_000_000;
    while available()
        && !DEVICE.lock().as_mut().is_some_and(reap_tx)
        && crate::time::uptime_ns() < deadline
    {
        core::hint::spin_loop();
    }
}

/// [`write_bytes`] with the transmit page owned.
fn transmit(data: &[u8]) -> Result<usize, i32> {
    use crate::errno::{EINTR, EIO};
    let mut sent = 0;
    for chunk in data.chunks(FRAME_SIZE as usize) {
        match wait_tx_idle() {
            Ok(true) => {}
            // The device may still read the page: leave it alone.
            Ok(false) => return if sent > 0 { Ok(sent) } else { Err(EINTR) },
            Err(_) => break,
        }
        {
            let mut guard = DEVICE.lock();
            let Some(device) = guard.as_mut() else {
                return Err(EIO);
            };
            // SAFETY: the transmit page is ours and the device is done
            // with it (TX_BUSY was clear: the previous chunk came back).
            unsafe {
                core::ptr::copy_nonoverlapping(
                    chunk.as_ptr(),
                    crate::mm::phys_to_virt(device.tx_buffer) as *mut u8,
                    chunk.len(),
                )
            };
            TX_BUSY.store(true, Ordering::Release);
            let buffer = device.tx_buffer;
            device.tx.add(buffer, chunk.len() as u32, false);
            device.tx.publish();
            write(device.base, reg::QUEUE_NOTIFY, u32::from(TRANSMITQ));
        }
        sent += chunk.len();
    }
    if sent == 0 && !data.is_empty() {
        return Err(EIO);
    }
    Ok(sent)
}
