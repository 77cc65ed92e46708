//! `mmap` (anonymous memory and regular files, see `mm::file_map`),
//! `munmap`, `mprotect`, `brk`.

use alloc::sync::Arc;
use core::sync::atomic::{AtomicU64, Ordering};

use forkvm_abi::linux::mman;
use forkvm_abi::PAGE_SIZE;

use super::{current_mm, Args, SysResult};
use crate::errno::{EACCES, EBADF, EINVAL, ENODEV, ENOMEM, EOVERFLOW};
use crate::fs::dentry::Node;
use crate::fs::file::O_PATH;
use crate::fs::inode::{DevNum, InodeKind};
use crate::fs::{File, FileKind};
use crate::mm::vma::{Prot, VmaFlags, TASK_SIZE};

// The flags as the register holds them (forkvm_abi's are C `int`s).
const MAP_SHARED: u64 = mman::MAP_SHARED as u64;
const MAP_PRIVATE: u64 = mman::MAP_PRIVATE as u64;
const MAP_FIXED: u64 = mman::MAP_FIXED as u64;
const MAP_ANONYMOUS: u64 = mman::MAP_ANONYMOUS as u64;
const MAP_GROWSDOWN: u64 = mman::MAP_GROWSDOWN as u64;
const MAP_DENYWRITE: u64 = mman::MAP_DENYWRITE as u64;
const MAP_EXECUTABLE: u64 = mman::MAP_EXECUTABLE as u64;
const MAP_NORESERVE: u64 = mman::MAP_NORESERVE as u64;
const MAP_POPULATE: u64 = mman::MAP_POPULATE as u64;
const MAP_STACK: u64 = mman::MAP_STACK as u64;
const MAP_FIXED_NOREPLACE: u64 = mman::MAP_FIXED_NOREPLACE as u64;
/// Flags accepted (others are EINVAL here, where Linux would accept some).
const KNOWN_FLAGS: u64 = MAP_SHARED
    | MAP_PRIVATE
    | MAP_FIXED
    | MAP_ANONYMOUS
    | MAP_GROWSDOWN
    | MAP_DENYWRITE
    | MAP_EXECUTABLE
    | MAP_NORESERVE
    | MAP_POPULATE
    | MAP_STACK
    | MAP_FIXED_NOREPLACE;

/// `vm.overcommit_memory`: 0 (heuristic, the default) or 1 (always).
/// Linux's 2 (strict accounting) is not implemented.
static OVERCOMMIT_MEMORY: AtomicU64 = AtomicU64::new(0);

/// `vm.overcommit_memory`.
pub fn overcommit_memory() -> u64 {
    OVERCOMMIT_MEMORY.load(Ordering::Relaxed)
}

/// Sets `vm.overcommit_memory` (0 or 1; EINVAL otherwise).
pub fn set_overcommit_memory(mode: u64) -> Result<(), i32> {
    if mode > 1 {
        return Err(EINVAL);
    }
    OVERCOMMIT_MEMORY.store(mode, Ordering::Relaxed);
    Ok(())
}

/// Linux's overcommit check (`__vm_enough_memory`): in heuristic mode a
/// mapping that commits memory (private and writable, or shared) may not
/// be larger than all of RAM (there is no swap); anything smaller is
/// allowed, and running out later is the OOM killer's business.
fn enough_memory(len: u64) -> bool {
    overcommit_memory() == 1 || len / PAGE_SIZE <= crate::mm::frame_counts().0 as u64
}

fn page_up(len: u64) -> Option<u64> {
    len.checked_add(PAGE_SIZE - 1).map(|l| l & !(PAGE_SIZE - 1))
}

/// What an mmap of a descriptor maps.
enum Source {
    /// Zero-filled memory: MAP_ANONYMOUS, or `/dev/zero` (Linux makes its
    /// private mappings anonymous and its shared ones shmem, which is what
    /// a shared anonymous area is here).
    Anonymous,
    /// A regular file's pages.
    File(Arc<File>),
}

/// The descriptor of a file mapping, checked as Linux's `do_mmap` checks
/// it: open (EBADF, also for O_PATH), readable (EACCES), writable for a
/// shared writable mapping (EACCES), and a kind that can be mapped
/// (ENODEV: pipes, the console, directories, pidfds, ...).
fn mapping_source(file: Arc<File>, shared: bool, prot: u64) -> Result<Source, i32> {
    let (readable, writable) = match &file.kind {
        FileKind::Vfs(open) if open.flags() & O_PATH != 0 => return Err(EBADF),
        FileKind::Vfs(open) => (open.readable(), open.writable()),
        FileKind::PipeRead(_) => (true, false),
        FileKind::PipeWrite(_) => (false, true),
        FileKind::Console | FileKind::VirtioConsole | FileKind::Pidfd(_) | FileKind::Proc(_) => {
            (true, true)
        }
    };
    if shared && prot & Prot::WRITE.to_linux() != 0 && !writable {
        return Err(EACCES);
    }
    if !readable {
        return Err(EACCES);
    }
    let FileKind::Vfs(open) = &file.kind else {
        return Err(ENODEV);
    };
    match &open.node {
        Node::Inode(inode) => match inode.kind {
            InodeKind::Regular(_) => Ok(Source::File(file.clone())),
            InodeKind::CharDevice(DevNum::ZERO) => Ok(Source::Anonymous),
            _ => Err(ENODEV),
        },
        Node::Dir(_) => Err(ENODEV),
    }
}

pub fn mmap(a: Args) -> SysResult {
    let [addr, len, prot, flags, fd, offset] = a.0;
    // Linux's order: the offset (x86 `sys_mmap`), the descriptor
    // (`ksys_mmap_pgoff`), then `do_mmap`'s checks.
    if offset % PAGE_SIZE != 0 {
        return Err(EINVAL);
    }
    let shared = flags & MAP_SHARED != 0;
    let file = if flags & MAP_ANONYMOUS == 0 {
        Some(
            crate::sched::current()
                .files()
                .ok_or(EBADF)?
                .lock()
                .get(fd)?,
        )
    } else {
        None
    };
    let len = page_up(len)
        .filter(|&l| l > 0 && l <= TASK_SIZE)
        .ok_or(EINVAL)?;
    let prot_bits = prot;
    let prot = Prot::from_linux(prot).map_err(|e| e.errno())?;
    let sharing = flags & (MAP_SHARED | MAP_PRIVATE);
    if flags & !KNOWN_FLAGS != 0 || sharing == 0 || sharing == MAP_SHARED | MAP_PRIVATE {
        return Err(EINVAL);
    }
    if (offset / PAGE_SIZE).checked_add(len / PAGE_SIZE).is_none() {
        return Err(EOVERFLOW);
    }
    let source = match file {
        Some(file) => mapping_source(file, shared, prot_bits)?,
        None => Source::Anonymous,
    };
    let anonymous = matches!(source, Source::Anonymous);
    // Shared file pages are the file's, not new memory (Linux accounts
    // private writable and shared anonymous mappings).
    let commits =
        flags & MAP_NORESERVE == 0 && ((shared && anonymous) || (!shared && prot.allows_write()));
    if commits && !enough_memory(len) {
        return Err(ENOMEM);
    }
    let mm = current_mm()?;
    let fixed = flags & (MAP_FIXED | MAP_FIXED_NOREPLACE) != 0;
    let start = if fixed {
        if addr % PAGE_SIZE != 0 || addr.checked_add(len).is_none_or(|end| end > TASK_SIZE) {
            return Err(EINVAL);
        }
        if flags & MAP_FIXED != 0 {
            mm.unmap(addr, addr + len)?;
        }
        addr
    } else {
        mm.get_unmapped_area(len, addr).ok_or(ENOMEM)?
    };
    if let Source::File(file) = &source {
        let FileKind::Vfs(open) = &file.kind else {
            return Err(ENODEV);
        };
        let Node::Inode(inode) = &open.node else {
            return Err(ENODEV);
        };
        inode.data().ok_or(ENODEV)?;
        let populate = flags & MAP_POPULATE != 0;
        let range = start..start + len;
        crate::mm::file_map::map_file(&mm, range, prot, shared, inode, offset, populate)?;
        lock_if_future(&mm, start, len);
        return Ok(start);
    }
    let mut area_flags = VmaFlags::ANONYMOUS;
    if shared {
        area_flags = area_flags | VmaFlags::SHARED;
    }
    if flags & MAP_GROWSDOWN != 0 {
        area_flags = area_flags | VmaFlags::GROWSDOWN;
    }
    // Shared memory must exist before a fork, or each side would fault in
    // its own page; MAP_POPULATE asks for it too. Filling it may call the
    // OOM killer; a mapping that cannot be completed is removed entirely.
    if flags & (MAP_SHARED | MAP_POPULATE) != 0 {
        mm.map_populated(start, start + len, prot, area_flags)?;
    } else {
        mm.map_lazy(start, start + len, prot, area_flags)?;
    }
    lock_if_future(&mm, start, len);
    Ok(start)
}

/// Under `mlockall(MCL_FUTURE)`, locks and populates a new mapping; as on
/// Linux (`mm_populate` after `do_mmap`), failing to populate it does not
/// fail the mmap.
fn lock_if_future(mm: &crate::mm::address_space::AddressSpace, start: u64, len: u64) {
    let _ = super::mlock::lock_new_mapping(mm, start, start + len);
}

pub fn munmap(a: Args) -> SysResult {
    let [addr, len, ..] = a.0;
    if addr % PAGE_SIZE != 0 {
        return Err(EINVAL);
    }
    let len = page_up(len).filter(|&l| l > 0).ok_or(EINVAL)?;
    let end = addr
        .checked_add(len)
        .filter(|&end| end <= TASK_SIZE)
        .ok_or(EINVAL)?;
    current_mm()?.unmap(addr, end)?;
    Ok(0)
}

pub fn mprotect(a: Args) -> SysResult {
    let [addr, len, prot, ..] = a.0;
    if addr % PAGE_SIZE != 0 {
        return Err(EINVAL);
    }
    let prot = Prot::from_linux(prot).map_err(|e| e.errno())?;
    let len = page_up(len).ok_or(ENOMEM)?;
    if len == 0 {
        return Ok(0);
    }
    let end = addr
        .checked_add(len)
        .filter(|&end| end <= TASK_SIZE)
        .ok_or(ENOMEM)?;
    current_mm()?.protect(addr, end, prot)?;
    Ok(0)
}

/// `brk`: returns the new break, or the old one if it cannot move there
/// (Linux reports failure that way, not with an errno).
pub fn brk(a: Args) -> SysResult {
    let requested = a.0[0];
    let mm = current_mm()?;
    let (start_brk, old) = {
        let inner = mm.inner.lock();
        (inner.start_brk, inner.brk)
    };
    if requested < start_brk || requested >= TASK_SIZE {
        return Ok(old);
    }
    let (old_top, new_top) = (
        page_up(old).unwrap_or(old),
        page_up(requested).unwrap_or(requested),
    );
    let moved = if new_top > old_top && !enough_memory(new_top - old_top) {
        Err(ENOMEM)
    } else if new_top > old_top {
        mm.map_lazy(
            old_top,
            new_top,
            Prot::READ | Prot::WRITE,
            VmaFlags::ANONYMOUS,
        )
    } else if new_top < old_top {
        mm.unmap(new_top, old_top)
    } else {
        Ok(())
    };
    if moved.is_err() {
        return Ok(old);
    }
    mm.inner.lock().brk = requested;
    Ok(requested)
}
