//! The kernel heap behind `alloc` (a linked-list allocator over a region
//! carved out at boot, sized from RAM: see `mm::init`).
//!
//! An `alloc` failure panics, so what a user can make the kernel allocate
//! without bound is checked against [`has_room`] first (and fails with
//! ENOMEM/EAGAIN when it says no), or uses `try_reserve`: the reserve it
//! keeps is for the small allocations nobody can refuse.

use linked_list_allocator::LockedHeap;

#[global_allocator]
static HEAP: LockedHeap = LockedHeap::empty();

/// Heap bytes a task costs (its `Task`, signal, file and pid state; a
/// forked process measured ~5.2 KiB): bounds `kernel.threads-max` and
/// gates each new task.
pub const TASK_HEAP_BYTES: u64 = 6 << 10;

/// Gives the heap its memory.
///
/// # Safety
/// `start..start + size` must be unused, writable memory that lives forever.
pub unsafe fn init(start: *mut u8, size: usize) {
    // SAFETY: forwarded from the caller.
    unsafe { HEAP.lock().init(start, size) };
}

/// (bytes in use, heap size).
pub fn usage() -> (usize, usize) {
    let heap = HEAP.lock();
    (heap.used(), heap.size())
}

/// Heap kept free beyond what user-driven allocations may take: an
/// eighth of the heap, at least 256 KiB.
fn reserve(size: usize) -> usize {
    (size / 8).max(256 << 10)
}

/// Whether `bytes` more can come from the heap and still leave its
/// reserve free. The kernel runs on one CPU without preemption inside
/// the kernel, so nothing takes the room between this check and the
/// allocation it guards.
pub fn has_room(bytes: usize) -> bool {
    let heap = HEAP.lock();
    heap.free() >= bytes.saturating_add(reserve(heap.size()))
}
