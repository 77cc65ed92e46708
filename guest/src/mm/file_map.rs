//! Mappings of regular files (`mmap` with a file descriptor, and exec's
//! program image). As in Linux, an area remembers its file and offset
//! (`Vma::file`) and its pages come in on first touch, from the file's
//! page cache (`filemap_fault`): the pages *are* the file's frames.
//! - `MAP_SHARED`: the frames are mapped writable where the area is; a
//!   store through the mapping is at once what `read` and every other
//!   mapper of the file see, and fork shares them.
//! - `MAP_PRIVATE`: the frames are mapped read-only and copy-on-write
//!   (`PTE_COW`); until a page is written, later writes to the file show
//!   through, as on Linux; the first store copies the page (the file keeps
//!   its reference, so the fault handler always copies). A write fault on
//!   a page not yet mapped copies it at once (`do_cow_fault`).
//!
//! Mapping costs nothing per page, so an `mmap` of a big library is cheap
//! and fork copies only the pages the process has touched. A read fault
//! also maps the neighbouring pages the file already has in memory, within
//! an aligned window of [`FAULT_AROUND_PAGES`] (Linux's fault-around), so
//! reading through a library does not fault once per page: on the PVM
//! host a fault costs two VM exits, a present PTE nothing.
//!
//! A page wholly past the end of the file raises SIGBUS (`BUS_ADRERR`);
//! the tail of the last partial page reads zeros. A hole inside the file
//! gets its zeroed frame at the first fault (a tmpfs fault allocates it).
//!
//! Frames go back to the allocator when the last reference goes: the
//! file's (truncate, unlink of the last name and close) or a mapping's
//! (munmap, exit, exec). A truncate that shrinks the file also takes the
//! pages wholly past its new end out of every mapping of it, private
//! copies included ([`truncate_file`], Linux `truncate_pagecache`), so
//! they fault again (SIGBUS) and their frames come back at once.

use alloc::sync::Arc;

use forkvm_abi::PAGE_SIZE;

use super::address_space::AddressSpace;
use super::cow::{Access, FaultResult};
use super::vma::{Prot, Vma, VmaFlags};
use crate::fs::inode::Inode;

/// Pages a read fault may map around the faulting one: the 2 MiB one
/// page-table page maps. Linux's default `fault_around_bytes` is 64 KiB
/// (16 pages); on the PVM host a fault costs two VM exits and a PTE write
/// next to nothing, and an exec of a dynamically linked `/bin/true` took
/// 22 faults with 16 pages, 18 with 512 (15 when every page was mapped at
/// mmap time).
pub const FAULT_AROUND_PAGES: u64 = 512;

/// Maps the regular file `inode` from `offset` (page multiple) at `range`
/// (page aligned), which the caller has made free.
/// Nothing is mapped yet unless `populate` (`MAP_POPULATE`, exec's image):
/// then every page the file has in the range is mapped now.
pub fn map_file(
    mm: &AddressSpace,
    range: core::ops::Range<u64>,
    prot: Prot,
    shared: bool,
    inode: &Arc<Inode>,
    offset: u64,
    populate: bool,
) -> Result<(), i32> {
    let (start, len) = (range.start, range.end - range.start);
    let flags = if shared {
        VmaFlags::SHARED
    } else {
        VmaFlags::PRIVATE
    };
    let area = Vma::new(start, start + len, prot, flags)
        .map_err(|e| e.errno())?
        .with_file(inode.clone(), offset / PAGE_SIZE);
    mm.map_area(area)?;
    if populate {
        let data = inode.data().ok_or(crate::errno::ENODEV)?;
        // The file's lock is held until the mapping holds its references,
        // so a concurrent truncate cannot free a frame in between.
        let mut data = data.lock();
        let frames = match data.frames_for_map(offset / PAGE_SIZE, len / PAGE_SIZE) {
            Ok(frames) => frames,
            Err(e) => {
                drop(data);
                mm.unmap(start, start + len).ok();
                return Err(e);
            }
        };
        mm.populate_frames(start, &frames, prot, shared)?;
    }
    Ok(())
}

/// Resolves a fault that found no page in the file-backed area `vma`
/// (`FaultResult::FileNoPage`): finds the file's page (SIGBUS past the
/// end), and on a read the neighbours it has in memory, and maps them.
pub fn filemap_fault(mm: &AddressSpace, vma: &Vma, addr: u64, access: Access) -> FaultResult {
    let (Some(file), Some(index)) = (vma.file.as_ref(), vma.file_page(addr)) else {
        return FaultResult::Segv;
    };
    let Some(data) = file.inode.data() else {
        return FaultResult::Sigbus;
    };
    let mut data = data.lock();
    let frame = match data.frame_for_fault(index) {
        Ok(Some(frame)) => frame,
        Ok(None) => return FaultResult::Sigbus,
        Err(_) => return FaultResult::Oom,
    };
    let around = if access.write {
        alloc::vec::Vec::new()
    } else {
        // The aligned window of the faulting page, within the area.
        let page = addr / PAGE_SIZE;
        let first_page =
            (page / FAULT_AROUND_PAGES * FAULT_AROUND_PAGES).max(vma.start / PAGE_SIZE);
        let end_page = (first_page + FAULT_AROUND_PAGES).min(vma.end / PAGE_SIZE);
        let first_index = index - (page - first_page);
        data.cached_frames(first_index, end_page - first_page)
            .into_iter()
            .map(|(i, frame)| ((first_page + (i - first_index)) * PAGE_SIZE, frame))
            .collect()
    };
    mm.map_file_fault(vma, addr, access, frame, &around)
}

/// Sets the size of the regular file `inode` (`truncate`, `ftruncate`,
/// `O_TRUNC`). When it shrinks, the file's pages past the end go first
/// (under the file's lock, so no fault can map them again: it finds the
/// new size), then every address space that maps the file loses its
/// pages from the first page wholly past the new end (Linux
/// `truncate_pagecache`). The partial last page stays mapped; its tail
/// reads zeros.
pub fn truncate_file(inode: &Arc<Inode>, size: u64) -> Result<(), i32> {
    let data = inode.data().ok_or(crate::errno::EINVAL)?;
    let old_size = {
        let mut data = data.lock();
        let old_size = data.size();
        data.truncate(size)?;
        old_size
    };
    if size < old_size {
        unmap_mapping_range(inode, size.div_ceil(PAGE_SIZE));
    }
    Ok(())
}

/// Unmaps file pages `first..` of `inode` in every address space (Linux
/// walks the inode's `i_mmap` tree; this kernel keeps none, so it looks
/// at each live task's address space once: a truncate of a file is rare).
fn unmap_mapping_range(inode: &Arc<Inode>, first: u64) {
    let mut seen = alloc::collections::BTreeSet::new();
    for task in crate::process::all_tasks() {
        let Some(mm) = task.mm() else { continue };
        if seen.insert(Arc::as_ptr(&mm) as usize) {
            mm.unmap_file_pages(inode, first);
        }
    }
}
