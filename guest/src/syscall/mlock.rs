//! Locking memory: `mlock`, `mlock2`, `munlock`, `mlockall`, `munlockall`
//! (Linux mm/mlock.c). Nothing is ever swapped out here, so what locking
//! does is make the pages resident now (populate them, breaking COW
//! shares of writable private pages) and count against RLIMIT_MEMLOCK;
//! locked areas carry `VmaFlags::LOCKED` (MADV_DONTNEED and
//! msync(MS_INVALIDATE) refuse them, fork does not pass it on).

use forkvm_abi::PAGE_SIZE;

use super::{current_mm, Args, SysResult};
use crate::errno::{EAGAIN, EINVAL, ENOMEM, EPERM};
use crate::mm::address_space::AddressSpace;
use crate::mm::vma::{VmaFlags, TASK_SIZE};
use crate::sched;

/// Linux `CAP_IPC_LOCK`: lock memory beyond RLIMIT_MEMLOCK.
const CAP_IPC_LOCK: u32 = 14;
const RLIMIT_MEMLOCK: usize = 8;
const MLOCK_ONFAULT: u64 = 1;
const MCL_CURRENT: u64 = 1;
const MCL_FUTURE: u64 = 2;
const MCL_ONFAULT: u64 = 4;

/// RLIMIT_MEMLOCK in bytes, and whether the caller has CAP_IPC_LOCK.
pub(super) fn lock_limit() -> (u64, bool) {
    let task = sched::current();
    let limit = task.thread_group().rlimits().0[RLIMIT_MEMLOCK].cur;
    let capable = task.capable(CAP_IPC_LOCK);
    (limit, capable)
}

/// Linux `can_do_mlock`: a non-zero RLIMIT_MEMLOCK or CAP_IPC_LOCK.
fn can_do_mlock(limit: u64, capable: bool) -> Result<(), i32> {
    if limit > 0 || capable {
        Ok(())
    } else {
        Err(EPERM)
    }
}

/// The page-aligned range `mlock`/`munlock` work on: `start` rounded down,
/// the length rounded up to cover it (EINVAL if that wraps).
fn lock_range(start: u64, len: u64) -> Result<(u64, u64), i32> {
    let offset = start % PAGE_SIZE;
    let len = len
        .checked_add(offset)
        .and_then(|len| len.checked_next_multiple_of(PAGE_SIZE))
        .ok_or(EINVAL)?;
    let start = start - offset;
    let end = start.checked_add(len).ok_or(EINVAL)?;
    Ok((start, end))
}

/// Sets or clears `LOCKED` from `start` as far as areas follow each other
/// without a gap, up to `end` (Linux `apply_vma_lock_flags`): ENOMEM if
/// `start` is unmapped (nothing changes) or a gap comes first (the part
/// before it is done).
fn apply_lock(mm: &AddressSpace, start: u64, end: u64, lock: bool) -> Result<(), i32> {
    if end == start {
        return Ok(());
    }
    let areas = mm.areas_in(start, end.min(TASK_SIZE));
    let mut covered_to = start;
    for area in &areas {
        if area.start > covered_to {
            break;
        }
        covered_to = area.end;
    }
    if covered_to == start {
        return Err(ENOMEM);
    }
    let (set, clear) = if lock {
        (VmaFlags::LOCKED, VmaFlags::PRIVATE)
    } else {
        (VmaFlags::PRIVATE, VmaFlags::LOCKED)
    };
    mm.update_flags(start, covered_to, set, clear)?;
    if covered_to < end {
        return Err(ENOMEM);
    }
    Ok(())
}

/// Pages of `[start, end)` already in locked areas.
fn locked_in(mm: &AddressSpace, start: u64, end: u64) -> u64 {
    mm.areas_in(start, end.min(TASK_SIZE))
        .iter()
        .filter(|area| area.flags.contains(VmaFlags::LOCKED))
        .map(|area| area.pages())
        .sum()
}

/// Linux `do_mlock`.
fn do_mlock(start: u64, len: u64, on_fault: bool) -> SysResult {
    let (start, end) = lock_range(start, len)?;
    let (limit, capable) = lock_limit();
    can_do_mlock(limit, capable)?;
    let limit = limit / PAGE_SIZE;
    let mm = current_mm()?;
    let mut locked = (end - start) / PAGE_SIZE + mm.locked_pages();
    if locked > limit && !capable {
        // Areas already locked in the range are not counted twice.
        locked -= locked_in(&mm, start, end);
    }
    if locked > limit && !capable {
        return Err(ENOMEM);
    }
    apply_lock(&mm, start, end, true)?;
    if !on_fault {
        // Out of memory while populating is EAGAIN (Linux
        // `__mlock_posix_error_return`).
        mm.populate_range(start, end.min(TASK_SIZE)).map_err(|e| {
            if e == ENOMEM {
                EAGAIN
            } else {
                e
            }
        })?;
    }
    Ok(0)
}

pub fn mlock(a: Args) -> SysResult {
    do_mlock(a.0[0], a.0[1], false)
}

/// `mlock2(start, len, flags)`: MLOCK_ONFAULT locks without populating.
pub fn mlock2(a: Args) -> SysResult {
    let flags = a.0[2] as u32 as u64;
    if flags & !MLOCK_ONFAULT != 0 {
        return Err(EINVAL);
    }
    do_mlock(a.0[0], a.0[1], flags & MLOCK_ONFAULT != 0)
}

pub fn munlock(a: Args) -> SysResult {
    let (start, end) = lock_range(a.0[0], a.0[1])?;
    apply_lock(&*current_mm()?, start, end, false)?;
    Ok(0)
}

/// `mlockall(flags)`: MCL_CURRENT locks (and populates) every area;
/// MCL_FUTURE makes later mappings locked and populated too.
pub fn mlockall(a: Args) -> SysResult {
    let flags = a.0[0] as u32 as u64;
    if flags == 0 || flags & !(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) != 0 || flags == MCL_ONFAULT
    {
        return Err(EINVAL);
    }
    let (limit, capable) = lock_limit();
    can_do_mlock(limit, capable)?;
    let limit = limit / PAGE_SIZE;
    let mm = current_mm()?;
    if flags & MCL_CURRENT != 0 && mm.total_pages() > limit && !capable {
        return Err(ENOMEM);
    }
    mm.inner.lock().lock_future = flags & MCL_FUTURE != 0;
    if flags & MCL_CURRENT != 0 {
        mm.update_flags(0, TASK_SIZE, VmaFlags::LOCKED, VmaFlags::PRIVATE)?;
        // Best effort, as Linux's `mm_populate` here: the areas are
        // locked whatever it manages.
        if flags & MCL_ONFAULT == 0 {
            let _ = mm.populate_range(0, TASK_SIZE);
        }
    }
    Ok(0)
}

pub fn munlockall(_a: Args) -> SysResult {
    let mm = current_mm()?;
    mm.inner.lock().lock_future = false;
    mm.update_flags(0, TASK_SIZE, VmaFlags::PRIVATE, VmaFlags::LOCKED)?;
    Ok(0)
}

/// After mmap (or brk) added `[start, end)`: under `mlockall(MCL_FUTURE)`
/// the new area is locked and populated (Linux's `def_flags`).
pub fn lock_new_mapping(mm: &AddressSpace, start: u64, end: u64) -> Result<(), i32> {
    if !mm.inner.lock().lock_future {
        return Ok(());
    }
    mm.update_flags(start, end, VmaFlags::LOCKED, VmaFlags::PRIVATE)?;
    mm.populate_range(start, end)
}
