//! A split virtqueue (virtio 1.x section 2.7; Linux
//! `drivers/virtio/virtio_ring.c`, written by hand: it is small, and the
//! kernel's frame allocator hands out single pages): one zeroed page holds
//! the descriptor table, the available ring and the used ring of
//! [`QUEUE_SIZE`] entries. The ring logic is pure; the kernel's virtio
//! console driver gives it a page and talks to the device.

use core::sync::atomic::{fence, Ordering};

/// Entries per queue (the device allows up to 256).
pub const QUEUE_SIZE: u16 = 16;
/// Bytes of one receive buffer (16 of them fill a page).
pub const RX_BUFFER_SIZE: u32 = 256;

/// Byte offsets of the three parts inside a queue's page.
pub const DESC_OFFSET: u64 = 0;
pub const AVAIL_OFFSET: u64 = 256;
pub const USED_OFFSET: u64 = 512;

/// Descriptor flags (virtio 1.x section 2.7.5).
pub const VIRTQ_DESC_F_WRITE: u16 = 2;
/// Available ring flag: the driver wants no used-buffer notifications.
pub const VIRTQ_AVAIL_F_NO_INTERRUPT: u16 = 1;
/// Used ring flag: the device wants no available-buffer notifications.
pub const VIRTQ_USED_F_NO_NOTIFY: u16 = 1;

/// VIRTIO_F_VERSION_1: bit 32, i.e. bit 0 of feature word 1.
pub const VIRTIO_F_VERSION_1_WORD1: u32 = 1;

pub const RECEIVEQ: u16 = 0;
pub const TRANSMITQ: u16 = 1;

/// The feature words the driver accepts from what the device offers
/// (`offered[i]` is feature word `i`): exactly VERSION_1, or `None` if the
/// device lacks it (a legacy device this driver does not speak to).
pub fn negotiate(offered: [u32; 2]) -> Option<[u32; 2]> {
    (offered[1] & VIRTIO_F_VERSION_1_WORD1 != 0).then_some([0, VIRTIO_F_VERSION_1_WORD1])
}

#[repr(C)]
#[derive(Clone, Copy)]
struct Desc {
    addr: u64,
    len: u32,
    flags: u16,
    next: u16,
}

/// A split virtqueue over one page at `base` (a kernel pointer) whose
/// guest-physical address is `phys` (what the device is told).
pub struct Virtqueue {
    base: *mut u8,
    phys: u64,
    /// Bit i set: descriptor i is free.
    free: u32,
    /// The driver's copy of avail->idx.
    avail_idx: u16,
    /// The next used entry to look at.
    last_used: u16,
    /// The buffer address each descriptor carries (to recycle it).
    buffers: [u64; QUEUE_SIZE as usize],
}

// SAFETY: the queue's page belongs to the queue alone; the driver serialises
// access with its lock.
unsafe impl Send for Virtqueue {}

impl Virtqueue {
    /// A queue in the zeroed page at `base` (physical `phys`).
    ///
    /// # Safety
    /// `base` must point to a zeroed, 4 KiB, page-aligned region that lives
    /// as long as the queue and that nothing but the queue (and the device)
    /// touches.
    pub unsafe fn new(base: *mut u8, phys: u64) -> Virtqueue {
        Virtqueue {
            base,
            phys,
            free: (1u32 << QUEUE_SIZE) - 1,
            avail_idx: 0,
            last_used: 0,
            buffers: [0; QUEUE_SIZE as usize],
        }
    }

    pub fn desc_phys(&self) -> u64 {
        self.phys + DESC_OFFSET
    }
    pub fn avail_phys(&self) -> u64 {
        self.phys + AVAIL_OFFSET
    }
    pub fn used_phys(&self) -> u64 {
        self.phys + USED_OFFSET
    }

    /// Descriptors not given to the device.
    #[cfg(test)]
    pub fn free_descriptors(&self) -> u32 {
        self.free.count_ones()
    }

    fn at<T>(&self, offset: u64) -> *mut T {
        // Offsets stay inside the page (see the layout constants).
        self.base.wrapping_add(offset as usize).cast()
    }

    /// Gives the device the buffer at physical `addr` of `len` bytes
    /// (device-writable if `write`); it becomes visible with the next
    /// [`publish`](Self::publish). `None` if every descriptor is in use.
    pub fn add(&mut self, addr: u64, len: u32, write: bool) -> Option<u16> {
        if self.free == 0 {
            return None;
        }
        let id = self.free.trailing_zeros() as u16;
        self.free &= !(1 << id);
        self.buffers[id as usize] = addr;
        let desc = Desc {
            addr,
            len,
            flags: if write { VIRTQ_DESC_F_WRITE } else { 0 },
            next: 0,
        };
        let slot = AVAIL_OFFSET + 4 + 2 * u64::from(self.avail_idx % QUEUE_SIZE);
        // SAFETY: both writes are inside the queue's page (`new`'s contract):
        // descriptor `id` < QUEUE_SIZE and the ring slot < QUEUE_SIZE.
        unsafe {
            core::ptr::write_volatile(self.at::<Desc>(DESC_OFFSET).add(id as usize), desc);
            core::ptr::write_volatile(self.at::<u16>(slot), id);
        }
        self.avail_idx = self.avail_idx.wrapping_add(1);
        Some(id)
    }

    /// Asks the device for used-buffer notifications or not (avail->flags,
    /// VIRTQ_AVAIL_F_NO_INTERRUPT). A driver turning them on must look at
    /// the used ring again afterwards: a buffer used just before was not
    /// notified.
    pub fn set_interrupts(&mut self, on: bool) {
        let flags = if on { 0 } else { VIRTQ_AVAIL_F_NO_INTERRUPT };
        // SAFETY: avail->flags is inside the queue's page.
        unsafe { core::ptr::write_volatile(self.at::<u16>(AVAIL_OFFSET), flags) };
        fence(Ordering::SeqCst);
    }

    /// Whether used-buffer notifications are asked for (see
    /// [`set_interrupts`](Self::set_interrupts)).
    pub fn interrupts_enabled(&self) -> bool {
        // SAFETY: avail->flags is inside the queue's page.
        let flags = unsafe { core::ptr::read_volatile(self.at::<u16>(AVAIL_OFFSET)) };
        flags & VIRTQ_AVAIL_F_NO_INTERRUPT == 0
    }

    /// Makes the added buffers visible to the device (avail->idx).
    pub fn publish(&mut self) {
        // The descriptors and ring entries before the index.
        fence(Ordering::SeqCst);
        // SAFETY: avail->idx is inside the queue's page.
        unsafe { core::ptr::write_volatile(self.at::<u16>(AVAIL_OFFSET + 2), self.avail_idx) };
        fence(Ordering::SeqCst);
    }

    /// Whether the device wants a QueueNotify for what was just
    /// published: not if it set VIRTQ_USED_F_NO_NOTIFY (virtio 1.x section
    /// 2.7.10). Read after [`publish`](Self::publish)'s fence: a device
    /// that clears the flag looks at avail->idx after, so either it sees
    /// the new buffers or we see the cleared flag.
    pub fn needs_notify(&self) -> bool {
        // SAFETY: used->flags is inside the queue's page.
        let flags = unsafe { core::ptr::read_volatile(self.at::<u16>(USED_OFFSET)) };
        flags & VIRTQ_USED_F_NO_NOTIFY == 0
    }

    /// Whether the device has used a buffer not taken yet (one read of
    /// used->idx: no exit, no side effect).
    pub fn has_used(&self) -> bool {
        // SAFETY: used->idx is inside the queue's page.
        let used_idx = unsafe { core::ptr::read_volatile(self.at::<u16>(USED_OFFSET + 2)) };
        used_idx != self.last_used
    }

    /// Takes the next buffer the device used: its address and the bytes
    /// it wrote. Its descriptor is free again. A used entry naming a
    /// descriptor the driver does not own is skipped.
    pub fn pop_used(&mut self) -> Option<(u64, u32)> {
        loop {
            // SAFETY: used->idx is inside the queue's page.
            let used_idx = unsafe { core::ptr::read_volatile(self.at::<u16>(USED_OFFSET + 2)) };
            if used_idx == self.last_used {
                return None;
            }
            // The entry after the index that announced it.
            fence(Ordering::SeqCst);
            let slot = USED_OFFSET + 4 + 8 * u64::from(self.last_used % QUEUE_SIZE);
            // SAFETY: the slot (id, len) is inside the queue's page.
            let (id, len) = unsafe {
                (
                    core::ptr::read_volatile(self.at::<u32>(slot)),
                    core::ptr::read_volatile(self.at::<u32>(slot + 4)),
                )
            };
            self.last_used = self.last_used.wrapping_add(1);
            if id >= u32::from(QUEUE_SIZE) || self.free & (1 << id) != 0 {
                continue;
            }
            self.free |= 1 << id;
            return Some((self.buffers[id as usize], len));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[repr(C, align(4096))]
    struct Page([u8; 4096]);

    fn queue() -> (alloc::boxed::Box<Page>, Virtqueue) {
        let mut page = alloc::boxed::Box::new(Page([0; 4096]));
        // SAFETY: a zeroed page that outlives the queue in each test.
        let queue = unsafe { Virtqueue::new(page.0.as_mut_ptr(), 0x1000) };
        (page, queue)
    }

    fn u16_at(page: &Page, offset: u64) -> u16 {
        let o = offset as usize;
        u16::from_le_bytes([page.0[o], page.0[o + 1]])
    }

    /// What a device does: returns descriptor `id` with `len` bytes.
    fn device_use(page: &mut Page, id: u32, len: u32) {
        let idx = u16_at(page, USED_OFFSET + 2);
        let slot = (USED_OFFSET + 4 + 8 * u64::from(idx % QUEUE_SIZE)) as usize;
        page.0[slot..slot + 4].copy_from_slice(&id.to_le_bytes());
        page.0[slot + 4..slot + 8].copy_from_slice(&len.to_le_bytes());
        let o = (USED_OFFSET + 2) as usize;
        page.0[o..o + 2].copy_from_slice(&idx.wrapping_add(1).to_le_bytes());
    }

    #[test]
    fn layout_fits_a_page() {
        assert!(DESC_OFFSET + 16 * u64::from(QUEUE_SIZE) <= AVAIL_OFFSET);
        assert!(AVAIL_OFFSET + 6 + 2 * u64::from(QUEUE_SIZE) <= USED_OFFSET);
        assert!(USED_OFFSET + 6 + 8 * u64::from(QUEUE_SIZE) <= 4096);
        let (_page, q) = queue();
        assert_eq!(
            (q.desc_phys(), q.avail_phys(), q.used_phys()),
            (0x1000, 0x1100, 0x1200)
        );
    }

    #[test]
    fn add_publish_and_descriptors() {
        let (mut page, mut q) = queue();
        assert_eq!(q.add(0xabc000, 256, true), Some(0));
        assert_eq!(q.add(0xdef000, 100, false), Some(1));
        assert_eq!(u16_at(&page, AVAIL_OFFSET + 2), 0, "not published yet");
        q.publish();
        assert_eq!(u16_at(&page, AVAIL_OFFSET + 2), 2);
        assert_eq!(u16_at(&page, AVAIL_OFFSET + 4), 0);
        assert_eq!(u16_at(&page, AVAIL_OFFSET + 6), 1);
        let d = &page.0[16..32];
        assert_eq!(u64::from_le_bytes(d[..8].try_into().unwrap()), 0xdef000);
        assert_eq!(u32::from_le_bytes(d[8..12].try_into().unwrap()), 100);
        assert_eq!(u16::from_le_bytes(d[12..14].try_into().unwrap()), 0);
        let d0 = &page.0[..16];
        assert_eq!(
            u16::from_le_bytes(d0[12..14].try_into().unwrap()),
            VIRTQ_DESC_F_WRITE
        );
        assert_eq!(q.pop_used(), None);
        device_use(&mut page, 1, 0);
        device_use(&mut page, 0, 7);
        assert_eq!(q.pop_used(), Some((0xdef000, 0)));
        assert_eq!(q.pop_used(), Some((0xabc000, 7)));
        assert_eq!(q.pop_used(), None);
        assert_eq!(q.free_descriptors(), u32::from(QUEUE_SIZE));
    }

    #[test]
    fn full_queue_and_wrap_around() {
        let (mut page, mut q) = queue();
        for i in 0..u64::from(QUEUE_SIZE) {
            assert!(q.add(i * 256, 256, true).is_some());
        }
        assert_eq!(q.add(0, 1, true), None);
        q.publish();
        // Recycle every buffer many times: indices wrap past 65535.
        for round in 0..5000u32 {
            let id = round % u32::from(QUEUE_SIZE);
            device_use(&mut page, id, round % 257);
            let (buffer, len) = q.pop_used().unwrap();
            assert_eq!(buffer, u64::from(id) * 256);
            assert_eq!(len, round % 257);
            assert_eq!(q.add(buffer, 256, true), Some(id as u16));
            q.publish();
        }
        assert_eq!(q.free_descriptors(), 0);
    }

    #[test]
    fn bogus_used_entries_are_skipped() {
        let (mut page, mut q) = queue();
        q.add(0x5000, 10, false);
        q.publish();
        device_use(&mut page, 999, 1); // out of range
        device_use(&mut page, 3, 1); // not given to the device
        device_use(&mut page, 0, 10);
        assert_eq!(q.pop_used(), Some((0x5000, 10)));
        assert_eq!(q.pop_used(), None);
    }

    #[test]
    fn notification_flags() {
        let (mut page, mut q) = queue();
        assert!(q.interrupts_enabled());
        q.set_interrupts(false);
        assert!(!q.interrupts_enabled());
        assert_eq!(u16_at(&page, AVAIL_OFFSET), VIRTQ_AVAIL_F_NO_INTERRUPT);
        q.set_interrupts(true);
        assert!(q.interrupts_enabled());
        // used->flags is the device's: it asks for no notify, then again.
        assert!(q.needs_notify());
        let o = USED_OFFSET as usize;
        page.0[o..o + 2].copy_from_slice(&VIRTQ_USED_F_NO_NOTIFY.to_le_bytes());
        assert!(!q.needs_notify());
        page.0[o..o + 2].copy_from_slice(&0u16.to_le_bytes());
        assert!(q.needs_notify());
    }

    #[test]
    fn features() {
        assert_eq!(negotiate([0xffff_ffff, 1]), Some([0, 1]));
        assert_eq!(negotiate([0, 0x7]), Some([0, 1]));
        assert_eq!(negotiate([1, 0]), None);
    }
}
