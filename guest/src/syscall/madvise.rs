//! Advice and queries about mapped memory: `madvise`, `mincore`, `msync`
//! (Linux mm/madvise.c, mm/mincore.c, mm/msync.c: same checks in the same
//! order, same errno).

use forkvm_abi::PAGE_SIZE;

use super::{current_mm, Args, SysResult};
use crate::errno::{EBUSY, EFAULT, EINVAL, ENOMEM};
use crate::mm::vma::{Vma, VmaFlags, TASK_SIZE};

const MADV_NORMAL: i32 = 0;
const MADV_RANDOM: i32 = 1;
const MADV_SEQUENTIAL: i32 = 2;
const MADV_WILLNEED: i32 = 3;
const MADV_DONTNEED: i32 = 4;
const MADV_FREE: i32 = 8;
const MADV_DONTFORK: i32 = 10;
const MADV_DOFORK: i32 = 11;
const MADV_DONTDUMP: i32 = 16;
const MADV_DODUMP: i32 = 17;
const MADV_COLD: i32 = 20;
const MADV_PAGEOUT: i32 = 21;

/// Whether the address range `[start, start + len)` lies in user space
/// (Linux `access_ok`).
fn user_range_ok(start: u64, len: u64) -> bool {
    len <= TASK_SIZE && start <= TASK_SIZE - len
}

/// Whether `areas` (clipped to `[start, end)`, in order) leave part of it
/// unmapped.
fn has_hole(areas: &[Vma], start: u64, end: u64) -> bool {
    let mut covered_to = start;
    for area in areas {
        if area.start > covered_to {
            return true;
        }
        covered_to = area.end;
    }
    covered_to < end
}

/// `madvise(start, len, advice)`. Hints about access patterns, readahead,
/// reclaim and core dumps are accepted and change nothing (every page is
/// in RAM and stays there, and there are no core dumps). MADV_DONTNEED
/// drops the pages of private areas (the next touch sees zeros or the
/// file's contents again); shared anonymous areas keep theirs, as Linux's
/// shmem does. MADV_FREE does the same for private anonymous memory.
/// MADV_DONTFORK/DOFORK set or clear `VmaFlags::DONTCOPY`. Other advice,
/// including MADV_REMOVE and the huge-page and KSM ones this kernel does
/// not have, is EINVAL. A hole in the range is ENOMEM once the mapped
/// parts are done, as Linux reports it.
pub fn madvise(a: Args) -> SysResult {
    let [start, len_in, advice, ..] = a.0;
    let advice = advice as i32;
    let known = matches!(
        advice,
        MADV_NORMAL
            | MADV_RANDOM
            | MADV_SEQUENTIAL
            | MADV_WILLNEED
            | MADV_DONTNEED
            | MADV_FREE
            | MADV_DONTFORK
            | MADV_DOFORK
            | MADV_DONTDUMP
            | MADV_DODUMP
            | MADV_COLD
            | MADV_PAGEOUT
    );
    if !known || !start.is_multiple_of(PAGE_SIZE) {
        return Err(EINVAL);
    }
    let len = len_in.checked_next_multiple_of(PAGE_SIZE).ok_or(EINVAL)?;
    let end = start.checked_add(len).ok_or(EINVAL)?;
    if end == start {
        return Ok(0);
    }
    let mm = current_mm()?;
    let areas = mm.areas_in(start, end.min(TASK_SIZE));
    if areas.is_empty() {
        return Err(ENOMEM);
    }
    let hole = has_hole(&areas, start, end);
    match advice {
        MADV_DONTNEED | MADV_FREE => {
            for area in &areas {
                if area.flags.contains(VmaFlags::LOCKED) {
                    return Err(EINVAL);
                }
                let private_anonymous =
                    !area.is_shared() && area.flags.contains(VmaFlags::ANONYMOUS);
                if advice == MADV_FREE && !private_anonymous {
                    return Err(EINVAL);
                }
                // Shared anonymous pages are the shared object itself, and
                // an ELF segment exec filled has no file to come back from:
                // both keep their pages.
                if private_anonymous || area.file.is_some() {
                    mm.zap_pages(area.start, area.end);
                }
            }
        }
        MADV_DONTFORK | MADV_DOFORK => {
            let (set, clear) = if advice == MADV_DONTFORK {
                (VmaFlags::DONTCOPY, VmaFlags::PRIVATE)
            } else {
                (VmaFlags::PRIVATE, VmaFlags::DONTCOPY)
            };
            mm.update_flags(start, end.min(TASK_SIZE), set, clear)?;
        }
        _ => {}
    }
    if hole {
        return Err(ENOMEM);
    }
    Ok(0)
}

/// Pages `mincore` reports per round (one bitmap of the walk).
const MINCORE_BATCH: u64 = 64;

/// `mincore(start, len, vec)`: one byte per page, 1 if it is in memory.
/// A mapped page is; so is a file page in the page cache (every page a
/// file has here, which lives in RAM); a never-touched anonymous page is
/// not. An unmapped page ends the walk with ENOMEM (the bytes before it
/// are written), as on Linux.
pub fn mincore(a: Args) -> SysResult {
    let [start, len, vec, ..] = a.0;
    if !start.is_multiple_of(PAGE_SIZE) {
        return Err(EINVAL);
    }
    if !user_range_ok(start, len) {
        return Err(ENOMEM);
    }
    let pages = len.div_ceil(PAGE_SIZE);
    if !user_range_ok(vec, pages) {
        return Err(EFAULT);
    }
    let mm = current_mm()?;
    let mut done = 0;
    while done < pages {
        let addr = start + done * PAGE_SIZE;
        let area_end = area_end(&mm, addr).ok_or(ENOMEM)?;
        let count = (pages - done)
            .min(MINCORE_BATCH)
            .min((area_end - addr) / PAGE_SIZE);
        let end = addr + count * PAGE_SIZE;
        let present = mm.present_pages(addr, end);
        let cached = file_pages_cached(&mm, addr, count);
        let bytes: alloc::vec::Vec<u8> = (0..count)
            .map(|i| u8::from(present & (1 << i) != 0 || cached & (1 << i) != 0))
            .collect();
        mm.copy_to_user(vec + done, &bytes)?;
        done += count;
    }
    Ok(0)
}

/// The end of the area containing `addr` (None: unmapped).
fn area_end(mm: &crate::mm::address_space::AddressSpace, addr: u64) -> Option<u64> {
    mm.inner.lock().vmas.find(addr).map(|vma| vma.end)
}

/// Which of `count` (at most 64) pages from `addr`, in one area, are a
/// file's pages held in its page cache.
fn file_pages_cached(mm: &crate::mm::address_space::AddressSpace, addr: u64, count: u64) -> u64 {
    let Some(area) = mm.areas_in(addr, addr + PAGE_SIZE).pop() else {
        return 0;
    };
    let (Some(file), Some(index)) = (area.file.as_ref(), area.file_page(addr)) else {
        return 0;
    };
    let Some(data) = file.inode.data() else {
        return 0;
    };
    let cached = data.lock().cached_frames(index, count);
    cached
        .into_iter()
        .fold(0, |bits, (i, _)| bits | 1 << (i - index))
}

const MS_ASYNC: u64 = 1;
const MS_INVALIDATE: u64 = 2;
const MS_SYNC: u64 = 4;

/// `msync(start, len, flags)`: Linux's checks (EINVAL for the flags and
/// alignment, ENOMEM for unmapped parts, EBUSY to invalidate locked
/// memory). Files live in RAM and a shared mapping maps the page-cache
/// frames themselves, so the data is already where `read` finds it: a
/// valid call has nothing more to write.
pub fn msync(a: Args) -> SysResult {
    let [start, len, flags, ..] = a.0;
    let flags = flags as u32 as u64;
    if flags & !(MS_ASYNC | MS_INVALIDATE | MS_SYNC) != 0
        || !start.is_multiple_of(PAGE_SIZE)
        || (flags & MS_ASYNC != 0 && flags & MS_SYNC != 0)
    {
        return Err(EINVAL);
    }
    let len = len.checked_next_multiple_of(PAGE_SIZE).ok_or(ENOMEM)?;
    let end = start.checked_add(len).ok_or(ENOMEM)?;
    if end == start {
        return Ok(0);
    }
    let mm = current_mm()?;
    let areas = mm.areas_in(start, end.min(TASK_SIZE));
    let mut covered_to = start;
    let mut unmapped = false;
    for area in &areas {
        if area.start > covered_to {
            if flags == MS_SYNC {
                return Err(ENOMEM);
            }
            unmapped = true;
        }
        if flags & MS_INVALIDATE != 0 && area.flags.contains(VmaFlags::LOCKED) {
            return Err(EBUSY);
        }
        covered_to = area.end;
    }
    if covered_to < end {
        return Err(ENOMEM);
    }
    if unmapped {
        return Err(ENOMEM);
    }
    Ok(0)
}
