//! Mappings of regular files (`mmap` with a file descriptor): the area's
//! pages *are* the file's page-cache frames, as in Linux, so nothing is
//! copied at mmap time.
//! - `MAP_SHARED`: the frames are mapped writable where the area is; a
//!   store through the mapping is at once what `read` and every other
//!   mapper of the file see, and fork shares them.
//! - `MAP_PRIVATE`: the frames are mapped read-only and copy-on-write
//!   (`PTE_COW`); until a page is written, later writes to the file show
//!   through, as on Linux; the first store copies the page (the file keeps
//!   its reference, so the fault handler always copies).
//!
//! Unlike Linux, whose fault handler finds the page in the page cache on
//! first touch, every page the file has is mapped at once: on the PVM host
//! a page fault costs two exits, a present PTE nothing. Holes inside the
//! file get their frames first (a tmpfs fault allocates them too). Pages
//! past the end of the file are left to demand-zero faults (Linux sends
//! SIGBUS there; here they read zeros, and a file that grows later does
//! not show in them).
//!
//! Frames go back to the allocator when the last reference goes: the
//! file's (truncate, unlink of the last name and close) or a mapping's
//! (munmap, exit, exec).

use spin::Mutex;

use forkvm_abi::PAGE_SIZE;

use super::address_space::AddressSpace;
use super::vma::{Prot, VmaFlags};
use crate::fs::page_cache::FileData;

/// Maps `len` bytes (page multiple) of the file `data` from `offset`
/// (page multiple) at `start`, which the caller has made free.
pub fn map_file(
    mm: &AddressSpace,
    start: u64,
    len: u64,
    prot: Prot,
    shared: bool,
    data: &Mutex<FileData>,
    offset: u64,
) -> Result<(), i32> {
    // The file's lock is held until the mapping holds its references, so
    // a concurrent truncate cannot free a frame in between.
    let mut data = data.lock();
    let frames = data.frames_for_map(offset / PAGE_SIZE, len / PAGE_SIZE)?;
    let flags = if shared {
        VmaFlags::SHARED
    } else {
        VmaFlags::PRIVATE
    };
    mm.map_frames(start, &frames, prot, flags)
}
