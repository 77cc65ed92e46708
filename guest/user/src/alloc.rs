//! A small global allocator over anonymous `mmap` memory (feature `heap`).
//!
//! Requests of up to 2 KiB are rounded up to a power-of-two size class
//! (16 B .. 2 KiB) and served from a per-class free list, or carved from the
//! current 128 KiB chunk; freed blocks go back on their class's list (never
//! to the kernel). Larger requests get their own mapping, returned with
//! `munmap` when freed. Blocks of a class are aligned to the class size, so
//! any alignment up to 2 KiB comes for free; larger alignments are served by
//! over-mapping and trimming.
//!
//! It uses only `mmap`/`munmap` (never `brk`), so the kernel needs nothing
//! else for a program to use `alloc`. A spin lock (yielding when contended)
//! makes it usable from `clone`d threads; after `fork` only the forking
//! thread exists, so a multi-threaded program's child should not allocate.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::ptr::null_mut;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::syscall::{mmap_anonymous, munmap, sched_yield, PROT_READ, PROT_WRITE};

const PAGE: usize = 4096;
const MIN_CLASS_SHIFT: u32 = 4; // 16 bytes: room for the free-list link
const NUM_CLASSES: usize = 8; // 16, 32, ..., 2048
/// Largest request served from size classes.
pub const MAX_SMALL: usize = 1 << (MIN_CLASS_SHIFT as usize + NUM_CLASSES - 1);
/// Size of each mapping the size classes are carved from.
pub const CHUNK: usize = 128 * 1024;

/// Index of the size class for a block of `size` bytes aligned to `align`,
/// or `None` if it needs its own mapping.
fn class_of(size: usize, align: usize) -> Option<usize> {
    let need = size.max(align).max(1);
    if need > MAX_SMALL {
        return None;
    }
    let shift = need
        .next_power_of_two()
        .trailing_zeros()
        .max(MIN_CLASS_SHIFT);
    Some((shift - MIN_CLASS_SHIFT) as usize)
}

fn class_size(class: usize) -> usize {
    1 << (class + MIN_CLASS_SHIFT as usize)
}

fn page_round(size: usize) -> Option<usize> {
    size.checked_add(PAGE - 1).map(|s| s & !(PAGE - 1))
}

struct Inner {
    /// Heads of the per-class free lists; each free block's first word
    /// points to the next.
    free: [*mut u8; NUM_CLASSES],
    /// Unused part of the current chunk.
    bump: usize,
    end: usize,
}

/// The allocator; [`MmapAlloc::new`] is `const` so it can be a `static`.
pub struct MmapAlloc {
    locked: AtomicBool,
    inner: UnsafeCell<Inner>,
}

// SAFETY: `inner` is only touched with `locked` held.
unsafe impl Sync for MmapAlloc {}

impl Default for MmapAlloc {
    fn default() -> Self {
        Self::new()
    }
}

impl MmapAlloc {
    /// An allocator that has mapped nothing yet.
    pub const fn new() -> Self {
        Self {
            locked: AtomicBool::new(false),
            inner: UnsafeCell::new(Inner {
                free: [null_mut(); NUM_CLASSES],
                bump: 0,
                end: 0,
            }),
        }
    }

    fn with_lock<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        let mut spins = 0u32;
        while self
            .locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            spins += 1;
            if spins & 63 == 0 {
                sched_yield();
            } else {
                core::hint::spin_loop();
            }
        }
        // SAFETY: we hold the lock, so this is the only reference.
        let r = f(unsafe { &mut *self.inner.get() });
        self.locked.store(false, Ordering::Release);
        r
    }

    fn alloc_small(&self, class: usize) -> *mut u8 {
        let size = class_size(class);
        self.with_lock(|inner| {
            let head = inner.free[class];
            if !head.is_null() {
                // SAFETY: free blocks are at least 16 bytes, aligned, and
                // their first word holds the next free block.
                inner.free[class] = unsafe { head.cast::<*mut u8>().read() };
                return head;
            }
            let mut start = (inner.bump + size - 1) & !(size - 1);
            if inner.end == 0 || start + size > inner.end {
                let Ok(chunk) = mmap_anonymous(CHUNK, PROT_READ | PROT_WRITE) else {
                    return null_mut();
                };
                start = chunk as usize; // page-aligned: fits any class
                inner.end = start + CHUNK;
            }
            inner.bump = start + size;
            start as *mut u8
        })
    }

    fn alloc_large(size: usize, align: usize) -> *mut u8 {
        let Some(len) = page_round(size) else {
            return null_mut();
        };
        if align <= PAGE {
            return mmap_anonymous(len, PROT_READ | PROT_WRITE).unwrap_or(null_mut());
        }
        // Over-map by `align` and trim both ends to an aligned `len`.
        let Some(total) = len.checked_add(align) else {
            return null_mut();
        };
        let Ok(p) = mmap_anonymous(total, PROT_READ | PROT_WRITE) else {
            return null_mut();
        };
        let base = p as usize;
        let aligned = (base + align - 1) & !(align - 1);
        // SAFETY: the trimmed ranges are parts of our fresh mapping that
        // are never handed out.
        unsafe {
            if aligned > base {
                let _ = munmap(p, aligned - base);
            }
            let tail = base + total - (aligned + len);
            if tail > 0 {
                let _ = munmap((aligned + len) as *mut u8, tail);
            }
        }
        aligned as *mut u8
    }
}

// SAFETY: blocks never overlap (each comes from a free list, a fresh part
// of a chunk, or a fresh mapping) and satisfy the layout: a class block is
// aligned to its power-of-two size >= the alignment; mappings are page
// aligned, or trimmed to the requested alignment.
unsafe impl GlobalAlloc for MmapAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match class_of(layout.size(), layout.align()) {
            Some(class) => self.alloc_small(class),
            None => Self::alloc_large(layout.size(), layout.align()),
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        match class_of(layout.size(), layout.align()) {
            Some(class) => self.with_lock(|inner| {
                // SAFETY: ptr is a block of this class that the caller no
                // longer uses; its first word becomes the list link.
                unsafe { ptr.cast::<*mut u8>().write(inner.free[class]) };
                inner.free[class] = ptr;
            }),
            None => {
                let len = page_round(layout.size()).unwrap_or(0);
                // SAFETY: the mapping was made for exactly this layout and
                // the caller no longer uses it.
                let _ = unsafe { munmap(ptr, len) };
            }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let old = class_of(layout.size(), layout.align());
        if old.is_some() && old == class_of(new_size, layout.align()) {
            return ptr; // same block size: nothing to move
        }
        // SAFETY: the caller upholds realloc's contract, which the default
        // (allocate, copy, free) relies on.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: as above.
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both blocks are valid for the smaller size and distinct.
            unsafe {
                core::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        new
    }
}

/// The process-wide allocator (not in the std unit-test build).
#[cfg(not(test))]
#[global_allocator]
static GLOBAL: MmapAlloc = MmapAlloc::new();

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        assert_eq!(class_of(0, 1), Some(0));
        assert_eq!(class_of(1, 1), Some(0));
        assert_eq!(class_of(16, 8), Some(0));
        assert_eq!(class_of(17, 8), Some(1));
        assert_eq!(class_of(8, 64), Some(2));
        assert_eq!(class_of(2048, 8), Some(7));
        assert_eq!(class_of(2049, 8), None);
        assert_eq!(class_of(8, 4096), None);
        assert_eq!(class_size(7), MAX_SMALL);
    }

    #[test]
    fn blocks_are_aligned_distinct_and_reused() {
        let a = MmapAlloc::new();
        let mut seen = std::collections::HashSet::new();
        let mut blocks = Vec::new();
        for (size, align) in [
            (1, 1),
            (24, 8),
            (100, 4),
            (64, 64),
            (2048, 2048),
            (3000, 8),
            (5000, 8192),
        ] {
            for _ in 0..200 {
                let layout = Layout::from_size_align(size, align).unwrap();
                // SAFETY: non-zero-size layout.
                let p = unsafe { a.alloc(layout) };
                assert!(!p.is_null());
                assert_eq!(p as usize % align, 0, "{size}/{align}");
                assert!(seen.insert(p as usize));
                // SAFETY: p is valid for `size` bytes.
                unsafe { p.write_bytes(0xa5, size) };
                blocks.push((p, layout));
            }
        }
        for &(p, layout) in &blocks {
            // SAFETY: allocated above with this layout, freed once.
            unsafe { a.dealloc(p, layout) };
        }
        // A freed small block comes back for the same class.
        let layout = Layout::from_size_align(24, 8).unwrap();
        // SAFETY: as above.
        let p = unsafe { a.alloc(layout) };
        assert!(blocks.iter().any(|&(q, _)| q == p));
        // SAFETY: as above.
        unsafe { a.dealloc(p, layout) };
    }

    #[test]
    fn realloc_keeps_contents() {
        let a = MmapAlloc::new();
        let layout = Layout::from_size_align(10, 1).unwrap();
        // SAFETY: valid layouts; each pointer is used per its current size.
        unsafe {
            let p = a.alloc(layout);
            p.copy_from_nonoverlapping(b"0123456789".as_ptr(), 10);
            let q = a.realloc(p, layout, 12); // same 16-byte class
            assert_eq!(p, q);
            let r = a.realloc(q, Layout::from_size_align(12, 1).unwrap(), 10_000);
            assert_eq!(core::slice::from_raw_parts(r, 10), b"0123456789");
            let s = a.realloc(r, Layout::from_size_align(10_000, 1).unwrap(), 5);
            assert_eq!(core::slice::from_raw_parts(s, 5), b"01234");
            a.dealloc(s, Layout::from_size_align(5, 1).unwrap());
        }
    }
}
