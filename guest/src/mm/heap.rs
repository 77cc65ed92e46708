//! The kernel heap behind `alloc` (a linked-list allocator over a fixed
//! region carved out at boot).

use linked_list_allocator::LockedHeap;

#[global_allocator]
static HEAP: LockedHeap = LockedHeap::empty();

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
