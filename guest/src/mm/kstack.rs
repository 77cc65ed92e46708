//! Kernel stacks: 16 KiB each, in a virtually mapped region with an
//! unmapped guard page range below every stack (Linux's VMAP_STACK), so an
//! overflow faults instead of corrupting a neighbour.
//!
//! The region sits inside the kernel's PML4 entry, whose lower tables are
//! shared by every address space, so a stack mapped once is visible in all
//! of them. Freed stacks are kept mapped in a small cache: a fork then
//! reuses a stack whose pages are already known to the (shadow) MMU.

use alloc::vec::Vec;

use forkvm_abi::PAGE_OFFSET;
use spin::Mutex;

use super::frame::{FrameUse, FRAME_SIZE};
use super::paging::{self, flags};

/// Usable size of a kernel stack (Linux x86-64's THREAD_SIZE).
pub const KERNEL_STACK_SIZE: u64 = 16 * 1024;
/// Virtual space per stack: the stack plus an equal unmapped guard below.
const SLOT_SIZE: u64 = 2 * KERNEL_STACK_SIZE;
/// Start of the stack region: 256 GiB into the kernel's map, far above the
/// direct map of RAM (at most 64 GiB).
const REGION_START: u64 = PAGE_OFFSET + (256 << 30);
/// Slots in the region (it ends at the kernel map's 512 GiB boundary).
const MAX_SLOTS: u64 = (256 << 30) / SLOT_SIZE;
/// Freed stacks kept mapped for reuse.
const CACHE_CAPACITY: usize = 16;

struct Slots {
    /// Slots never used yet start here.
    next_fresh: u64,
    /// Unmapped slots available again.
    free: Vec<u64>,
    /// Freed stacks that are still mapped.
    cached: Vec<u64>,
}

static SLOTS: Mutex<Slots> = Mutex::new(Slots {
    next_fresh: 0,
    free: Vec::new(),
    cached: Vec::new(),
});

/// A kernel stack; dropping it returns it to the cache or frees it.
#[derive(Debug)]
pub struct KernelStack {
    slot: u64,
}

/// Why no stack could be had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutOfMemory;

impl KernelStack {
    /// A stack, from the cache if possible, else freshly mapped.
    pub fn new() -> Result<KernelStack, OutOfMemory> {
        // The stack is a new task's first allocation; the rest of it comes
        // from the heap, where a failure would panic: refuse it here.
        if !super::heap::has_room(super::heap::TASK_HEAP_BYTES as usize) {
            return Err(OutOfMemory);
        }
        let mut slots = SLOTS.lock();
        if let Some(slot) = slots.cached.pop() {
            return Ok(KernelStack { slot });
        }
        let slot = match slots.free.pop() {
            Some(slot) => slot,
            None if slots.next_fresh < MAX_SLOTS => {
                slots.next_fresh += 1;
                slots.next_fresh - 1
            }
            None => return Err(OutOfMemory),
        };
        drop(slots);
        match map_slot(slot) {
            Ok(()) => Ok(KernelStack { slot }),
            Err(e) => {
                SLOTS.lock().free.push(slot);
                Err(e)
            }
        }
    }

    /// Lowest usable address.
    pub fn bottom(&self) -> u64 {
        REGION_START + self.slot * SLOT_SIZE + KERNEL_STACK_SIZE
    }

    /// One past the highest usable address (the initial stack pointer).
    pub fn top(&self) -> u64 {
        self.bottom() + KERNEL_STACK_SIZE
    }
}

impl Drop for KernelStack {
    fn drop(&mut self) {
        let mut slots = SLOTS.lock();
        if slots.cached.len() < CACHE_CAPACITY {
            slots.cached.push(self.slot);
            return;
        }
        drop(slots);
        unmap_slot(self.slot);
        SLOTS.lock().free.push(self.slot);
    }
}

/// Stacks currently kept in the cache (they hold frames).
pub fn cached_stacks() -> usize {
    SLOTS.lock().cached.len()
}

fn page_addresses(slot: u64) -> impl Iterator<Item = u64> {
    let bottom = REGION_START + slot * SLOT_SIZE + KERNEL_STACK_SIZE;
    (0..KERNEL_STACK_SIZE / FRAME_SIZE).map(move |i| bottom + i * FRAME_SIZE)
}

fn map_slot(slot: u64) -> Result<(), OutOfMemory> {
    let kernel = crate::arch::platform::kernel_page_flags();
    let mapped = super::with_kernel_tables(|memory| {
        let mut mapped = 0;
        for address in page_addresses(slot) {
            let Some(frame) = super::alloc_frame(FrameUse::Data) else {
                break;
            };
            let table_flags = flags::WRITABLE | kernel;
            let leaf = flags::WRITABLE | kernel;
            if paging::map_page(
                memory,
                super::BOOT_PML4,
                address,
                frame.phys(),
                leaf,
                table_flags,
            )
            .is_err()
            {
                super::put_frame(frame.phys());
                break;
            }
            mapped += 1;
        }
        mapped
    });
    if mapped == KERNEL_STACK_SIZE / FRAME_SIZE {
        return Ok(());
    }
    // The table lock is released: undo the partial mapping.
    unmap_slot(slot);
    Err(OutOfMemory)
}

fn unmap_slot(slot: u64) {
    let unmapped = super::with_kernel_tables(|tables| {
        let mut unmapped = alloc::vec::Vec::new();
        for address in page_addresses(slot) {
            if let Some(entry) = paging::unmap_page(tables, super::BOOT_PML4, address) {
                crate::arch::cpu::invlpg(address);
                unmapped.push(entry);
            }
        }
        unmapped
    });
    // Other CPUs may cache the pages' translations: they forget them
    // before the frames go back (outside the table lock, which a target
    // could be waiting for).
    crate::arch::tlb::shootdown_kernel();
    for entry in unmapped {
        super::put_frame(entry & paging::ADDRESS_MASK);
    }
}
