//! `mremap`: shrink, grow or move a mapping (Linux mm/mremap.c: the same
//! checks in the same order, the same errno). A move takes the page-table
//! entries along (`cow::move_page_range`): frames keep their references
//! and COW state, nothing is copied.

use forkvm_abi::PAGE_SIZE;

use super::{current_mm, Args, SysResult};
use crate::errno::{EAGAIN, EFAULT, EINVAL, ENOMEM};
use crate::mm::address_space::AddressSpace;
use crate::mm::vma::{Vma, VmaFlags, TASK_SIZE};

const MREMAP_MAYMOVE: u64 = 1;
const MREMAP_FIXED: u64 = 2;
const MREMAP_DONTUNMAP: u64 = 4;

/// `PAGE_ALIGN`: wraps to 0 past the top, as Linux's does.
fn page_align(len: u64) -> u64 {
    len.wrapping_add(PAGE_SIZE - 1) & !(PAGE_SIZE - 1)
}

pub fn mremap(a: Args) -> SysResult {
    let [addr, old_len, new_len, flags, new_addr, ..] = a.0;
    if flags & !(MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP) != 0
        || (flags & MREMAP_FIXED != 0 && flags & MREMAP_MAYMOVE == 0)
        || (flags & MREMAP_DONTUNMAP != 0 && (flags & MREMAP_MAYMOVE == 0 || old_len != new_len))
        || !addr.is_multiple_of(PAGE_SIZE)
    {
        return Err(EINVAL);
    }
    let (old_len, new_len) = (page_align(old_len), page_align(new_len));
    if new_len == 0 {
        return Err(EINVAL);
    }
    let mm = current_mm()?;
    area_at(&mm, addr)?;
    // Linux duplicates a shared mapping given old_len 0; that is not
    // supported here (private ones are EINVAL there too).
    if old_len == 0 {
        return Err(EINVAL);
    }
    if flags & (MREMAP_FIXED | MREMAP_DONTUNMAP) != 0 {
        return mremap_to(&mm, addr, old_len, new_addr, new_len, flags);
    }
    if old_len >= new_len {
        if old_len > new_len {
            let tail = addr.checked_add(new_len).ok_or(EINVAL)?;
            mm.unmap(tail, addr.saturating_add(old_len))?;
        }
        return Ok(addr);
    }
    let vma = area_to_resize(&mm, addr, old_len, new_len)?;
    // Grow in place if the area ends where the range does and the pages
    // above are free.
    let new_end = addr.checked_add(new_len).filter(|&end| end <= TASK_SIZE);
    if let Some(new_end) = new_end {
        let free = mm.areas_in(addr + old_len, new_end).is_empty();
        if vma.end == addr + old_len && free {
            mm.expand(addr + old_len, new_end)?;
            populate_if_locked(&mm, &vma, addr + old_len, new_end);
            return Ok(addr);
        }
    }
    if flags & MREMAP_MAYMOVE == 0 {
        return Err(ENOMEM);
    }
    let to = mm.get_unmapped_area(new_len, 0).ok_or(ENOMEM)?;
    move_area(&mm, &vma, addr, old_len, to, new_len, false)
}

/// MREMAP_FIXED or MREMAP_DONTUNMAP (Linux `mremap_to`).
fn mremap_to(
    mm: &AddressSpace,
    addr: u64,
    mut old_len: u64,
    new_addr: u64,
    new_len: u64,
    flags: u64,
) -> SysResult {
    if !new_addr.is_multiple_of(PAGE_SIZE) || new_len > TASK_SIZE || new_addr > TASK_SIZE - new_len
    {
        return Err(EINVAL);
    }
    // The old and new ranges may not overlap.
    if addr.saturating_add(old_len) > new_addr && new_addr + new_len > addr {
        return Err(EINVAL);
    }
    if flags & MREMAP_FIXED != 0 {
        mm.unmap(new_addr, new_addr + new_len)?;
    }
    if old_len > new_len {
        let tail = addr.checked_add(new_len).ok_or(EINVAL)?;
        mm.unmap(tail, addr.saturating_add(old_len))?;
        old_len = new_len;
    }
    let vma = area_to_resize(mm, addr, old_len, new_len)?;
    let keep_old = flags & MREMAP_DONTUNMAP != 0;
    // The old range of a shared area would refault pages of its own rather
    // than the shared ones: only private areas, as Linux 5.7-5.12 allowed.
    if keep_old && vma.is_shared() {
        return Err(EINVAL);
    }
    let to = if flags & MREMAP_FIXED != 0 {
        new_addr
    } else {
        mm.get_unmapped_area(new_len, new_addr).ok_or(ENOMEM)?
    };
    move_area(mm, &vma, addr, old_len, to, new_len, keep_old)
}

/// The area containing `addr` (EFAULT: none, Linux `vma_lookup`).
fn area_at(mm: &AddressSpace, addr: u64) -> Result<Vma, i32> {
    mm.inner.lock().vmas.find(addr).cloned().ok_or(EFAULT)
}

/// Linux `vma_to_resize`: the old range must lie in one area (EFAULT);
/// growing a locked one must stay within RLIMIT_MEMLOCK (EAGAIN).
fn area_to_resize(mm: &AddressSpace, addr: u64, old_len: u64, new_len: u64) -> Result<Vma, i32> {
    let vma = area_at(mm, addr)?;
    if old_len > vma.end - addr {
        return Err(EFAULT);
    }
    if new_len > old_len && vma.flags.contains(VmaFlags::LOCKED) {
        let (limit, capable) = super::mlock::lock_limit();
        let locked = mm.locked_pages() + (new_len - old_len) / PAGE_SIZE;
        if locked > limit / PAGE_SIZE && !capable {
            return Err(EAGAIN);
        }
    }
    Ok(vma)
}

/// Moves `[addr, addr + old_len)` to `to` and grows it there to `new_len`
/// (Linux `move_vma`); returns the new address.
fn move_area(
    mm: &AddressSpace,
    vma: &Vma,
    addr: u64,
    old_len: u64,
    to: u64,
    new_len: u64,
    keep_old: bool,
) -> SysResult {
    mm.move_range(addr, addr + old_len, to, keep_old)?;
    if new_len > old_len {
        mm.expand(to + old_len, to + new_len)?;
        populate_if_locked(mm, vma, to + old_len, to + new_len);
    }
    Ok(to)
}

/// A locked area's new pages are made resident (best effort, as Linux's
/// `mm_populate` after mremap).
fn populate_if_locked(mm: &AddressSpace, vma: &Vma, start: u64, end: u64) {
    if vma.flags.contains(VmaFlags::LOCKED) {
        let _ = mm.populate_range(start, end);
    }
}
