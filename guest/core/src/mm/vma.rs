//! Virtual memory areas: which ranges of a user address space are mapped,
//! and how (Linux's `vm_area_struct` and the per-process set of them).
//!
//! Only bookkeeping lives here; the page tables are `cow`'s business. The
//! operations that change areas return the pieces they changed, so the
//! caller can bring the page tables in line (free pages, adjust PTEs).
//! Every range is validated: bad input is an error, never a panic.

use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::ops::BitOr;

use forkvm_abi::PAGE_SIZE;

use crate::errno::{EEXIST, EINVAL, ENOMEM};
use crate::fs::inode::Inode;

/// First address above user space (Linux's `TASK_SIZE`).
pub const TASK_SIZE: u64 = forkvm_abi::USER_SPACE_END;

/// Access rights of an area, with the values of Linux's `PROT_*`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Prot(u8);

impl Prot {
    pub const NONE: Prot = Prot(0);
    pub const READ: Prot = Prot(forkvm_abi::linux::mman::PROT_READ as u8);
    pub const WRITE: Prot = Prot(forkvm_abi::linux::mman::PROT_WRITE as u8);
    pub const EXEC: Prot = Prot(forkvm_abi::linux::mman::PROT_EXEC as u8);

    /// The rights named by a Linux `prot` argument; unknown bits (including
    /// `PROT_GROWSDOWN`, which this kernel does not support) are EINVAL.
    pub fn from_linux(prot: u64) -> Result<Prot, VmaError> {
        if prot & !0b111 != 0 {
            return Err(VmaError::InvalidProt);
        }
        Ok(Prot(prot as u8))
    }

    /// The rights of both `self` and `other` (`|`, usable in constants).
    pub const fn union(self, other: Prot) -> Prot {
        Prot(self.0 | other.0)
    }

    /// The Linux `PROT_*` value.
    pub fn to_linux(self) -> u64 {
        u64::from(self.0)
    }

    /// Whether every right in `other` is also in `self`.
    pub fn contains(self, other: Prot) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether reads are allowed. Without NX and protection keys, x86 page
    /// tables cannot express write-only or execute-only, so any right
    /// implies read, as on Linux/x86.
    pub fn allows_read(self) -> bool {
        self.0 != 0
    }

    /// Whether writes are allowed.
    pub fn allows_write(self) -> bool {
        self.contains(Prot::WRITE)
    }
}

impl BitOr for Prot {
    type Output = Prot;
    fn bitor(self, other: Prot) -> Prot {
        self.union(other)
    }
}

/// What an area is, besides its rights (a subset of Linux's `VM_*` flags).
///
/// An area without `ANONYMOUS` maps a file ([`Vma::file`]) or is an ELF
/// image segment exec copied its initial contents into; the flag keeps
/// those from merging with `mmap`'s anonymous areas.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VmaFlags(u8);

impl VmaFlags {
    /// Private (copy-on-write across fork): no bits set.
    pub const PRIVATE: VmaFlags = VmaFlags(0);
    /// Shared with the other processes that map it (`MAP_SHARED`): fork
    /// shares the frames, writes are never copied.
    pub const SHARED: VmaFlags = VmaFlags(1);
    /// Zero-filled memory (`MAP_ANONYMOUS`, brk, stacks).
    pub const ANONYMOUS: VmaFlags = VmaFlags(2);
    /// A stack that grows down (`VM_GROWSDOWN`): the fault path may extend
    /// it downwards.
    pub const GROWSDOWN: VmaFlags = VmaFlags(4);
    /// Not copied into a forked child (`madvise(MADV_DONTFORK)`, Linux
    /// `VM_DONTCOPY`): the child has nothing mapped there.
    pub const DONTCOPY: VmaFlags = VmaFlags(8);
    /// Locked in memory (`mlock`, Linux `VM_LOCKED`): its pages were
    /// populated when it was locked; fork does not pass it on.
    pub const LOCKED: VmaFlags = VmaFlags(16);

    /// Whether every flag in `other` is also in `self`.
    pub fn contains(self, other: VmaFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// These flags without those in `other`.
    pub fn without(self, other: VmaFlags) -> VmaFlags {
        VmaFlags(self.0 & !other.0)
    }
}

impl BitOr for VmaFlags {
    type Output = VmaFlags;
    fn bitor(self, other: VmaFlags) -> VmaFlags {
        VmaFlags(self.0 | other.0)
    }
}

/// Why an area operation was refused; [`VmaError::errno`] gives the Linux
/// error number a system call returns (negated).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmaError {
    /// Unaligned, empty or inverted range, or one reaching past
    /// [`TASK_SIZE`] (EINVAL).
    InvalidRange,
    /// Unknown protection bits (EINVAL).
    InvalidProt,
    /// The range overlaps an existing area (EEXIST, as
    /// `MAP_FIXED_NOREPLACE` reports).
    Overlap,
    /// Part of the range is not mapped (ENOMEM, as `mprotect` reports).
    NotMapped,
}

impl VmaError {
    /// The (positive) Linux errno.
    pub fn errno(&self) -> i32 {
        match self {
            VmaError::InvalidRange | VmaError::InvalidProt => EINVAL,
            VmaError::Overlap => EEXIST,
            VmaError::NotMapped => ENOMEM,
        }
    }
}

/// Checks that `[start, end)` is a non-empty, page-aligned range of user
/// space.
fn check_range(start: u64, end: u64) -> Result<(), VmaError> {
    let aligned = start.is_multiple_of(PAGE_SIZE) && end.is_multiple_of(PAGE_SIZE);
    if !aligned || start >= end || end > TASK_SIZE {
        return Err(VmaError::InvalidRange);
    }
    Ok(())
}

/// The file an area maps (Linux's `vm_file` and `vm_pgoff`): page `i` of
/// the area is page `pgoff + i` of the file. Holding the inode keeps an
/// unlinked file's pages alive while they are mapped, as on Linux.
#[derive(Clone)]
pub struct VmFile {
    pub inode: Arc<Inode>,
    /// The file page the area's first page maps.
    pub pgoff: u64,
}

impl PartialEq for VmFile {
    fn eq(&self, other: &VmFile) -> bool {
        Arc::ptr_eq(&self.inode, &other.inode) && self.pgoff == other.pgoff
    }
}

impl Eq for VmFile {}

impl core::fmt::Debug for VmFile {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "VmFile(ino {}, pgoff {})", self.inode.ino, self.pgoff)
    }
}

/// A virtual memory area: `[start, end)`, page aligned, with one set of
/// rights and flags (Linux's `vm_area_struct`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vma {
    pub start: u64,
    /// First address after the area.
    pub end: u64,
    pub prot: Prot,
    pub flags: VmaFlags,
    /// The file whose pages the area maps, faulted in from its page cache
    /// (`None`: anonymous memory or an ELF segment filled by exec).
    pub file: Option<VmFile>,
}

impl Vma {
    /// An area, if `[start, end)` is a valid range of user space.
    pub fn new(start: u64, end: u64, prot: Prot, flags: VmaFlags) -> Result<Vma, VmaError> {
        check_range(start, end)?;
        Ok(Vma {
            start,
            end,
            prot,
            flags,
            file: None,
        })
    }

    /// The same area mapping `file` (its first page at file page `pgoff`).
    pub fn with_file(self, inode: Arc<Inode>, pgoff: u64) -> Vma {
        Vma {
            file: Some(VmFile { inode, pgoff }),
            ..self
        }
    }

    /// Size in bytes (never 0: an area covers at least one page).
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    /// Size in pages.
    pub fn pages(&self) -> u64 {
        self.len() / PAGE_SIZE
    }

    pub fn contains(&self, addr: u64) -> bool {
        self.start <= addr && addr < self.end
    }

    /// Whether the area is `MAP_SHARED` rather than private.
    pub fn is_shared(&self) -> bool {
        self.flags.contains(VmaFlags::SHARED)
    }

    /// The file page mapped at `addr` (an address in the area), if the
    /// area maps a file.
    pub fn file_page(&self, addr: u64) -> Option<u64> {
        let file = self.file.as_ref()?;
        Some(file.pgoff + (addr - self.start) / PAGE_SIZE)
    }

    /// The same area cut down to `[start, end)` (the file offset follows).
    fn with_range(&self, start: u64, end: u64) -> Vma {
        let file = self.file.as_ref().map(|file| VmFile {
            inode: file.inode.clone(),
            pgoff: file.pgoff + (start - self.start) / PAGE_SIZE,
        });
        Vma {
            start,
            end,
            file,
            ..self.clone()
        }
    }

    /// Whether `next` directly follows this area and is alike, so the two
    /// can be one area (Linux's `vma_merge` test): the same file, its
    /// pages continuing where this area's end, or no file at all.
    fn can_merge_with(&self, next: &Vma) -> bool {
        let files_continue = match (&self.file, &next.file) {
            (None, None) => true,
            (Some(a), Some(b)) => {
                Arc::ptr_eq(&a.inode, &b.inode) && a.pgoff + self.pages() == b.pgoff
            }
            _ => false,
        };
        self.end == next.start
            && self.prot == next.prot
            && self.flags == next.flags
            && files_continue
    }
}

/// The areas of one address space, keyed by start address. Areas never
/// overlap, and no two adjacent areas are alike (they are merged).
#[derive(Clone, Debug, Default)]
pub struct VmaSet {
    areas: BTreeMap<u64, Vma>,
}

impl VmaSet {
    pub fn new() -> VmaSet {
        VmaSet::default()
    }

    /// Number of areas.
    pub fn len(&self) -> usize {
        self.areas.len()
    }

    pub fn is_empty(&self) -> bool {
        self.areas.is_empty()
    }

    /// The areas in address order.
    pub fn iter(&self) -> impl Iterator<Item = &Vma> + '_ {
        self.areas.values()
    }

    /// The area containing `addr` (unlike Linux's `find_vma`, not the next
    /// one above it).
    pub fn find(&self, addr: u64) -> Option<&Vma> {
        self.areas
            .range(..=addr)
            .next_back()
            .map(|(_, vma)| vma)
            .filter(|vma| vma.contains(addr))
    }

    /// The areas that intersect `[start, end)`, in address order (empty for
    /// an empty or inverted range).
    pub fn find_intersecting(&self, start: u64, end: u64) -> impl Iterator<Item = &Vma> + '_ {
        let end = end.max(start);
        let straddling = self
            .areas
            .range(..start)
            .next_back()
            .map(|(_, vma)| vma)
            .filter(move |vma| start < end && vma.end > start);
        straddling
            .into_iter()
            .chain(self.areas.range(start..end).map(|(_, vma)| vma))
    }

    /// Adds an area, merging it with alike neighbours. Refuses areas that
    /// overlap an existing one.
    pub fn insert(&mut self, vma: Vma) -> Result<(), VmaError> {
        check_range(vma.start, vma.end)?;
        if self.find_intersecting(vma.start, vma.end).next().is_some() {
            return Err(VmaError::Overlap);
        }
        let (start, end) = (vma.start, vma.end);
        self.areas.insert(start, vma);
        self.merge_around(start, end);
        Ok(())
    }

    /// Removes `[start, end)` from the address space, splitting areas that
    /// stick out of it (Linux's `do_munmap`). Returns the removed pieces,
    /// whose pages the caller must unmap; unmapping a hole is no error.
    pub fn unmap(&mut self, start: u64, end: u64) -> Result<Vec<Vma>, VmaError> {
        check_range(start, end)?;
        let hit: Vec<Vma> = self.find_intersecting(start, end).cloned().collect();
        let mut removed = Vec::with_capacity(hit.len());
        for vma in hit {
            self.areas.remove(&vma.start);
            self.keep_outside(&vma, start, end);
            removed.push(vma.with_range(vma.start.max(start), vma.end.min(end)));
        }
        Ok(removed)
    }

    /// Gives `[start, end)` the rights `prot` (Linux's `mprotect`, through
    /// `mprotect_fixup`): splits areas at the range's ends and merges alike
    /// neighbours afterwards. Fails without changing anything if part of
    /// the range is unmapped. Returns the pieces whose rights changed (with
    /// the new rights), whose PTEs the caller must adjust.
    pub fn protect(&mut self, start: u64, end: u64, prot: Prot) -> Result<Vec<Vma>, VmaError> {
        check_range(start, end)?;
        let hit: Vec<Vma> = self.find_intersecting(start, end).cloned().collect();
        let mut covered_to = start;
        for vma in &hit {
            if vma.start > covered_to {
                return Err(VmaError::NotMapped);
            }
            covered_to = vma.end;
        }
        if covered_to < end {
            return Err(VmaError::NotMapped);
        }

        let mut changed = Vec::new();
        for vma in hit.into_iter().filter(|vma| vma.prot != prot) {
            self.areas.remove(&vma.start);
            self.keep_outside(&vma, start, end);
            let piece = Vma {
                prot,
                ..vma.with_range(vma.start.max(start), vma.end.min(end))
            };
            self.areas.insert(piece.start, piece.clone());
            changed.push(piece);
        }
        self.merge_around(start, end);
        Ok(changed)
    }

    /// Sets the flags `set` and clears `clear` on the mapped parts of
    /// `[start, end)` (Linux `madvise_update_vma`, `mlock_fixup`): splits
    /// areas at the range's ends and merges alike neighbours afterwards.
    /// Returns the pieces whose flags changed (with the new flags) and
    /// whether part of the range was unmapped (the caller's ENOMEM, once
    /// the mapped parts are done, as Linux's madvise and mlock report it).
    pub fn update_flags(
        &mut self,
        start: u64,
        end: u64,
        set: VmaFlags,
        clear: VmaFlags,
    ) -> Result<(Vec<Vma>, bool), VmaError> {
        check_range(start, end)?;
        let hit: Vec<Vma> = self.find_intersecting(start, end).cloned().collect();
        let mut covered_to = start;
        let mut hole = false;
        for vma in &hit {
            hole |= vma.start > covered_to;
            covered_to = vma.end;
        }
        hole |= covered_to < end;
        let mut changed = Vec::new();
        for vma in hit {
            let flags = vma.flags.without(clear) | set;
            if flags == vma.flags {
                continue;
            }
            self.areas.remove(&vma.start);
            self.keep_outside(&vma, start, end);
            let piece = Vma {
                flags,
                ..vma.with_range(vma.start.max(start), vma.end.min(end))
            };
            self.areas.insert(piece.start, piece.clone());
            changed.push(piece);
        }
        self.merge_around(start, end);
        Ok((changed, hole))
    }

    /// The areas a forked child gets (Linux `dup_mmap`): all but the
    /// `DONTCOPY` ones, none of them locked.
    pub fn for_fork(&self) -> VmaSet {
        let special = VmaFlags::DONTCOPY | VmaFlags::LOCKED;
        if !self.areas.values().any(|vma| vma.flags.0 & special.0 != 0) {
            return self.clone();
        }
        let mut child = VmaSet::new();
        for vma in self
            .iter()
            .filter(|vma| !vma.flags.contains(VmaFlags::DONTCOPY))
        {
            let vma = Vma {
                flags: vma.flags.without(VmaFlags::LOCKED),
                ..vma.clone()
            };
            let (start, end) = (vma.start, vma.end);
            child.areas.insert(start, vma);
            child.merge_around(start, end);
        }
        child
    }

    /// Moves the area piece `[start, end)` (within one area) to `to`, a
    /// free range (mremap's `move_vma`); with `keep_old`, the old range
    /// stays mapped, empty (MREMAP_DONTUNMAP). The file offset moves along.
    pub fn move_range(
        &mut self,
        start: u64,
        end: u64,
        to: u64,
        keep_old: bool,
    ) -> Result<(), VmaError> {
        check_range(start, end)?;
        check_range(
            to,
            to.checked_add(end - start).ok_or(VmaError::InvalidRange)?,
        )?;
        let vma = self
            .find(start)
            .filter(|vma| vma.end >= end)
            .ok_or(VmaError::NotMapped)?;
        let piece = vma.with_range(start, end);
        if !keep_old {
            self.unmap(start, end)?;
        }
        self.insert(Vma {
            start: to,
            end: to + (end - start),
            ..piece
        })
    }

    /// A free, page-aligned range of `len` bytes (rounded up to pages)
    /// within `[low, high)`: `hint` if that range is free and within bounds
    /// (a non-zero hint is rounded up to a page, as Linux does), else the
    /// highest free range (top-down, like Linux's `mmap_base` layout).
    pub fn get_unmapped_area(&self, len: u64, hint: u64, low: u64, high: u64) -> Option<u64> {
        let len = len.checked_next_multiple_of(PAGE_SIZE)?;
        let low = low.checked_next_multiple_of(PAGE_SIZE)?;
        let high = high.min(TASK_SIZE) / PAGE_SIZE * PAGE_SIZE;
        if len == 0 || low >= high || len > high - low {
            return None;
        }
        if let Some(hint) = hint.checked_next_multiple_of(PAGE_SIZE) {
            let fits = hint != 0 && hint >= low && hint <= high - len;
            if fits && self.find_intersecting(hint, hint + len).next().is_none() {
                return Some(hint);
            }
        }
        // Walk the gaps downwards from `high`; `gap_end` is the top of the
        // current gap.
        let mut gap_end = high;
        for vma in self.areas.range(..high).rev().map(|(_, vma)| vma) {
            let gap_start = vma.end.max(low);
            if gap_start <= gap_end && gap_end - gap_start >= len {
                return Some(gap_end - len);
            }
            gap_end = gap_end.min(vma.start);
            if gap_end < low + len {
                return None;
            }
        }
        Some(gap_end - len)
    }

    /// Pages covered by all areas.
    pub fn total_pages(&self) -> u64 {
        self.areas.values().map(Vma::pages).sum()
    }

    /// Puts back the parts of the (removed) area `vma` outside
    /// `[start, end)`.
    fn keep_outside(&mut self, vma: &Vma, start: u64, end: u64) {
        if vma.start < start {
            self.areas
                .insert(vma.start, vma.with_range(vma.start, start));
        }
        if vma.end > end {
            self.areas.insert(end, vma.with_range(end, vma.end));
        }
    }

    /// Merges alike neighbours among the areas from the one before `start`
    /// to the one starting at `end`, the only ones a change to
    /// `[start, end)` can have made mergeable.
    fn merge_around(&mut self, start: u64, end: u64) {
        let first = self
            .areas
            .range(..start)
            .next_back()
            .map_or(start, |(&key, _)| key);
        let window: Vec<Vma> = self
            .areas
            .range(first..=end)
            .map(|(_, vma)| vma.clone())
            .collect();
        let mut previous: Option<Vma> = None;
        for vma in window {
            match previous.as_mut() {
                Some(merged) if merged.can_merge_with(&vma) => {
                    self.areas.remove(&vma.start);
                    merged.end = vma.end;
                    self.areas.insert(merged.start, merged.clone());
                }
                _ => previous = Some(vma),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: u64 = PAGE_SIZE;
    const RW: Prot = Prot::READ.union(Prot::WRITE);
    const ANON: VmaFlags = VmaFlags::ANONYMOUS;

    fn vma(start_page: u64, end_page: u64, prot: Prot) -> Vma {
        Vma::new(start_page * P, end_page * P, prot, ANON).unwrap()
    }

    fn set_of(areas: &[Vma]) -> VmaSet {
        let mut set = VmaSet::new();
        for area in areas {
            set.insert(area.clone()).unwrap();
        }
        set
    }

    fn areas(set: &VmaSet) -> Vec<(u64, u64, Prot)> {
        set.iter()
            .map(|v| (v.start / P, v.end / P, v.prot))
            .collect()
    }

    #[test]
    fn prot_round_trips_linux_values() {
        assert_eq!(Prot::from_linux(0), Ok(Prot::NONE));
        assert_eq!(Prot::from_linux(1), Ok(Prot::READ));
        assert_eq!(Prot::from_linux(3), Ok(Prot::READ | Prot::WRITE));
        assert_eq!(Prot::from_linux(7).unwrap().to_linux(), 7);
        assert_eq!(Prot::from_linux(8), Err(VmaError::InvalidProt));
        assert_eq!(Prot::from_linux(0x0100_0001), Err(VmaError::InvalidProt));
        assert!(Prot::EXEC.allows_read() && !Prot::EXEC.allows_write());
        assert!(Prot::WRITE.allows_read() && Prot::WRITE.allows_write());
        assert!(!Prot::NONE.allows_read());
        assert!(RW.contains(Prot::READ) && !Prot::READ.contains(RW));
    }

    #[test]
    fn update_flags_splits_merges_and_reports_holes() {
        let mut set = VmaSet::new();
        set.insert(Vma::new(0x1000, 0x5000, RW, ANON).unwrap())
            .unwrap();
        set.insert(Vma::new(0x6000, 0x7000, RW, ANON).unwrap())
            .unwrap();
        let (changed, hole) = set
            .update_flags(0x2000, 0x3000, VmaFlags::DONTCOPY, VmaFlags::PRIVATE)
            .unwrap();
        assert_eq!(changed.len(), 1);
        assert!(!hole);
        assert_eq!(set.len(), 4);
        assert!(set.find(0x2000).unwrap().flags.contains(VmaFlags::DONTCOPY));
        // Clearing it merges the three pieces back; the gap is reported.
        let (_, hole) = set
            .update_flags(0x1000, 0x7000, VmaFlags::PRIVATE, VmaFlags::DONTCOPY)
            .unwrap();
        assert!(hole);
        assert_eq!(set.len(), 2);
        // Nothing to change: nothing changed.
        let (changed, _) = set
            .update_flags(0x1000, 0x5000, VmaFlags::PRIVATE, VmaFlags::LOCKED)
            .unwrap();
        assert!(changed.is_empty());
    }

    #[test]
    fn for_fork_drops_dontcopy_and_unlocks() {
        let mut set = VmaSet::new();
        set.insert(Vma::new(0x1000, 0x4000, RW, ANON).unwrap())
            .unwrap();
        set.update_flags(0x1000, 0x2000, VmaFlags::DONTCOPY, VmaFlags::PRIVATE)
            .unwrap();
        set.update_flags(0x2000, 0x3000, VmaFlags::LOCKED, VmaFlags::PRIVATE)
            .unwrap();
        let child = set.for_fork();
        assert!(child.find(0x1000).is_none());
        // The unlocked middle merges with the last page.
        let area = child.find(0x2000).unwrap();
        assert_eq!((area.start, area.end, area.flags), (0x2000, 0x4000, ANON));
        assert_eq!(set.len(), 3, "the parent keeps its areas");
    }

    #[test]
    fn move_range_carries_the_area() {
        let mut set = VmaSet::new();
        set.insert(Vma::new(0x1000, 0x4000, RW, ANON).unwrap())
            .unwrap();
        set.move_range(0x2000, 0x3000, 0x10_0000, false).unwrap();
        assert!(set.find(0x2000).is_none());
        assert!(set.find(0x1000).is_some() && set.find(0x3000).is_some());
        assert_eq!(set.find(0x10_0000).unwrap().end, 0x10_1000);
        set.move_range(0x1000, 0x2000, 0x20_0000, true).unwrap();
        assert!(
            set.find(0x1000).is_some(),
            "MREMAP_DONTUNMAP keeps the old range"
        );
        assert_eq!(
            set.move_range(0x5000, 0x6000, 0x30_0000, false),
            Err(VmaError::NotMapped)
        );
        assert_eq!(
            set.move_range(0x3000, 0x4000, 0x10_0000, false),
            Err(VmaError::Overlap)
        );
    }

    #[test]
    fn errors_map_to_linux_errnos() {
        assert_eq!(VmaError::InvalidRange.errno(), 22);
        assert_eq!(VmaError::InvalidProt.errno(), 22);
        assert_eq!(VmaError::Overlap.errno(), 17);
        assert_eq!(VmaError::NotMapped.errno(), 12);
    }

    #[test]
    fn vma_basics() {
        let area = Vma::new(
            0x1000,
            0x4000,
            Prot::READ,
            VmaFlags::SHARED | VmaFlags::ANONYMOUS,
        )
        .unwrap();
        assert_eq!(area.len(), 0x3000);
        assert_eq!(area.pages(), 3);
        assert!(area.contains(0x1000) && area.contains(0x3fff));
        assert!(!area.contains(0xfff) && !area.contains(0x4000));
        assert!(area.is_shared());
        assert!(!vma(1, 2, RW).is_shared());
        assert!((VmaFlags::GROWSDOWN | ANON).contains(VmaFlags::GROWSDOWN));
        assert!(!VmaFlags::PRIVATE.contains(ANON));
    }

    #[test]
    fn bad_ranges_are_einval_never_panics() {
        let bad = [
            (0x1001, 0x2000),
            (0x1000, 0x2001),
            (0x2000, 0x2000),
            (0x3000, 0x2000),
            (TASK_SIZE - P, TASK_SIZE + P),
            (u64::MAX - P + 1, u64::MAX),
        ];
        let mut set = set_of(&[vma(1, 8, RW)]);
        for (start, end) in bad {
            assert_eq!(Vma::new(start, end, RW, ANON), Err(VmaError::InvalidRange));
            let raw = Vma {
                start,
                end,
                prot: RW,
                flags: ANON,
                file: None,
            };
            assert_eq!(set.insert(raw), Err(VmaError::InvalidRange));
            assert_eq!(set.unmap(start, end), Err(VmaError::InvalidRange));
            assert_eq!(
                set.protect(start, end, Prot::READ),
                Err(VmaError::InvalidRange)
            );
        }
        assert_eq!(areas(&set), [(1, 8, RW)]);
        assert!(Vma::new(TASK_SIZE - P, TASK_SIZE, RW, ANON).is_ok());
        // Empty and inverted ranges intersect nothing.
        assert_eq!(set.find_intersecting(3 * P, 3 * P).count(), 0);
        assert_eq!(set.find_intersecting(4 * P, 2 * P).count(), 0);
    }

    #[test]
    fn find_and_find_intersecting() {
        let set = set_of(&[vma(2, 4, RW), vma(6, 8, Prot::READ), vma(8, 9, RW)]);
        assert_eq!(set.find(2 * P - 1), None);
        assert_eq!(set.find(2 * P).unwrap().start, 2 * P);
        assert_eq!(set.find(4 * P - 1).unwrap().start, 2 * P);
        assert_eq!(set.find(4 * P), None);
        assert_eq!(set.find(8 * P).unwrap().start, 8 * P);
        let starts = |s, e| {
            set.find_intersecting(s * P, e * P)
                .map(|v| v.start / P)
                .collect::<Vec<_>>()
        };
        assert_eq!(starts(0, 2), []);
        assert_eq!(starts(3, 7), [2, 6]);
        assert_eq!(starts(4, 6), []);
        assert_eq!(starts(0, 100), [2, 6, 8]);
        assert_eq!(starts(8, 9), [8]);
        assert_eq!(starts(3, 3), []);
    }

    #[test]
    fn insert_refuses_overlaps() {
        let mut set = set_of(&[vma(4, 8, RW)]);
        for (s, e) in [(4, 8), (3, 5), (7, 9), (5, 6), (0, 100)] {
            assert_eq!(set.insert(vma(s, e, RW)), Err(VmaError::Overlap));
        }
        assert_eq!(areas(&set), [(4, 8, RW)]);
    }

    #[test]
    fn insert_merges_alike_neighbours() {
        let mut set = set_of(&[vma(0, 2, RW), vma(4, 6, RW)]);
        set.insert(vma(2, 4, RW)).unwrap();
        assert_eq!(areas(&set), [(0, 6, RW)]);
        // Different rights or flags stay separate.
        set.insert(vma(6, 7, Prot::READ)).unwrap();
        let shared = Vma::new(7 * P, 8 * P, RW, VmaFlags::SHARED | ANON).unwrap();
        set.insert(shared).unwrap();
        set.insert(vma(8, 9, RW)).unwrap();
        assert_eq!(
            areas(&set),
            [(0, 6, RW), (6, 7, Prot::READ), (7, 8, RW), (8, 9, RW)]
        );
        assert_eq!(set.len(), 4);
        assert_eq!(set.total_pages(), 9);
    }

    #[test]
    fn unmap_splits_in_the_middle() {
        let mut set = set_of(&[vma(0, 10, RW)]);
        let removed = set.unmap(4 * P, 6 * P).unwrap();
        assert_eq!(removed, [vma(4, 6, RW)]);
        assert_eq!(areas(&set), [(0, 4, RW), (6, 10, RW)]);
        assert_eq!(set.total_pages(), 8);
        // Mapping the hole again merges the three pieces back into one.
        set.insert(vma(4, 6, RW)).unwrap();
        assert_eq!(areas(&set), [(0, 10, RW)]);
    }

    #[test]
    fn unmap_across_several_areas() {
        let mut set = set_of(&[vma(0, 3, RW), vma(4, 6, Prot::READ), vma(7, 10, RW)]);
        let removed = set.unmap(2 * P, 8 * P).unwrap();
        assert_eq!(
            removed,
            [vma(2, 3, RW), vma(4, 6, Prot::READ), vma(7, 8, RW)]
        );
        assert_eq!(areas(&set), [(0, 2, RW), (8, 10, RW)]);
        // A hole is no error.
        assert_eq!(set.unmap(3 * P, 7 * P), Ok(Vec::new()));
        assert_eq!(set.unmap(0, TASK_SIZE).unwrap().len(), 2);
        assert!(set.is_empty());
    }

    #[test]
    fn protect_sub_range_then_restore_remerges() {
        let mut set = set_of(&[vma(0, 10, RW)]);
        let changed = set.protect(3 * P, 5 * P, Prot::READ).unwrap();
        assert_eq!(changed, [vma(3, 5, Prot::READ)]);
        assert_eq!(areas(&set), [(0, 3, RW), (3, 5, Prot::READ), (5, 10, RW)]);
        let changed = set.protect(3 * P, 5 * P, RW).unwrap();
        assert_eq!(changed, [vma(3, 5, RW)]);
        assert_eq!(areas(&set), [(0, 10, RW)]);
        // Protecting with the same rights changes nothing.
        assert_eq!(set.protect(0, 10 * P, RW), Ok(Vec::new()));
    }

    #[test]
    fn protect_spanning_areas_merges_them() {
        let mut set = set_of(&[vma(0, 2, RW), vma(2, 4, Prot::READ), vma(4, 6, Prot::NONE)]);
        let changed = set.protect(P, 5 * P, RW).unwrap();
        assert_eq!(changed, [vma(2, 4, RW), vma(4, 5, RW)]);
        assert_eq!(areas(&set), [(0, 5, RW), (5, 6, Prot::NONE)]);
    }

    #[test]
    fn protect_with_a_hole_is_enomem_and_changes_nothing() {
        let mut set = set_of(&[vma(0, 2, RW), vma(3, 5, RW)]);
        for (s, e) in [(0, 5), (1, 3), (2, 3), (4, 6), (10, 11)] {
            let error = set.protect(s * P, e * P, Prot::READ).unwrap_err();
            assert_eq!(error, VmaError::NotMapped);
            assert_eq!(error.errno(), 12);
        }
        assert_eq!(areas(&set), [(0, 2, RW), (3, 5, RW)]);
    }

    #[test]
    fn get_unmapped_area_is_top_down() {
        let (low, high) = (16 * P, 64 * P);
        let mut set = VmaSet::new();
        assert_eq!(set.get_unmapped_area(2 * P, 0, low, high), Some(62 * P));
        set.insert(vma(60, 64, RW)).unwrap();
        set.insert(vma(50, 58, RW)).unwrap();
        // The 2-page gap [58, 60) fits two pages, not three.
        assert_eq!(set.get_unmapped_area(2 * P, 0, low, high), Some(58 * P));
        assert_eq!(set.get_unmapped_area(3 * P, 0, low, high), Some(47 * P));
        // Lengths are rounded up to pages.
        assert_eq!(set.get_unmapped_area(P + 1, 0, low, high), Some(58 * P));
        // An area straddling `high` is skipped over.
        assert_eq!(set.get_unmapped_area(P, 0, low, 62 * P), Some(58 * P + P));
        // Down to `low` exactly.
        assert_eq!(set.get_unmapped_area(34 * P, 0, low, high), Some(16 * P));
        assert_eq!(set.get_unmapped_area(35 * P, 0, low, high), None);
    }

    #[test]
    fn get_unmapped_area_honours_a_free_hint() {
        let (low, high) = (16 * P, 64 * P);
        let set = set_of(&[vma(30, 40, RW)]);
        assert_eq!(
            set.get_unmapped_area(2 * P, 20 * P, low, high),
            Some(20 * P)
        );
        // Unaligned hints are rounded up.
        assert_eq!(
            set.get_unmapped_area(2 * P, 20 * P - 5, low, high),
            Some(20 * P)
        );
        // Taken, out of bounds, or crossing `high`: the top-down choice.
        for hint in [29 * P, 35 * P, 8 * P, 63 * P, 200 * P, u64::MAX] {
            assert_eq!(set.get_unmapped_area(2 * P, hint, low, high), Some(62 * P));
        }
    }

    #[test]
    fn get_unmapped_area_when_full_or_invalid() {
        let set = set_of(&[vma(16, 64, RW)]);
        assert_eq!(set.get_unmapped_area(P, 0, 16 * P, 64 * P), None);
        assert_eq!(set.get_unmapped_area(P, 20 * P, 16 * P, 64 * P), None);
        let empty = VmaSet::new();
        assert_eq!(empty.get_unmapped_area(0, 0, 0, 64 * P), None);
        assert_eq!(empty.get_unmapped_area(P, 0, 64 * P, 16 * P), None);
        assert_eq!(empty.get_unmapped_area(u64::MAX, 0, 0, u64::MAX), None);
        assert_eq!(empty.get_unmapped_area(P, 0, u64::MAX, u64::MAX), None);
        // `high` is clamped to user space.
        assert_eq!(
            empty.get_unmapped_area(P, 0, 0, u64::MAX),
            Some(TASK_SIZE - P)
        );
    }

    #[test]
    fn file_areas_keep_their_offsets_through_splits_and_merges() {
        use crate::fs::inode::{Inode, InodeKind};
        use crate::fs::page_cache::FileData;
        let inode = Arc::new(Inode::new(
            InodeKind::Regular(spin::Mutex::new(FileData::default())),
            0o644,
            0,
            0,
        ));
        let other = Arc::new(Inode::new(
            InodeKind::Regular(spin::Mutex::new(FileData::default())),
            0o644,
            0,
            0,
        ));
        let file_area = |s: u64, e: u64, inode: &Arc<Inode>, pgoff: u64| {
            Vma::new(s * P, e * P, RW, VmaFlags::PRIVATE)
                .unwrap()
                .with_file(inode.clone(), pgoff)
        };
        let mut set = VmaSet::new();
        set.insert(file_area(10, 20, &inode, 5)).unwrap();
        assert_eq!(set.find(13 * P).unwrap().file_page(13 * P + 7), Some(8));
        // mprotect of the middle splits it; each piece keeps its offset.
        set.protect(12 * P, 14 * P, Prot::READ).unwrap();
        let pgoffs: Vec<(u64, u64)> = set
            .iter()
            .map(|v| (v.start / P, v.file.as_ref().unwrap().pgoff))
            .collect();
        assert_eq!(pgoffs, [(10, 5), (12, 7), (14, 9)]);
        // Restoring the rights merges them back: the offsets continue.
        set.protect(12 * P, 14 * P, RW).unwrap();
        assert_eq!(set.len(), 1);
        // munmap of the head leaves the tail at its own offset.
        let removed = set.unmap(10 * P, 11 * P).unwrap();
        assert_eq!(removed[0].file.as_ref().unwrap().pgoff, 5);
        assert_eq!(set.find(11 * P).unwrap().file.as_ref().unwrap().pgoff, 6);
        // Neighbours merge only with the same file at the next offset.
        set.insert(file_area(20, 21, &inode, 15)).unwrap();
        assert_eq!(set.len(), 1, "the next page of the same file merges");
        set.insert(file_area(21, 22, &other, 17)).unwrap();
        set.insert(file_area(22, 23, &other, 0)).unwrap();
        set.insert(vma(23, 24, RW)).unwrap();
        set.insert(file_area(24, 25, &inode, 16)).unwrap();
        assert_eq!(
            set.len(),
            5,
            "another file, a gap in the offsets, anonymous"
        );
    }

    /// A tiny deterministic generator (Knuth's MMIX LCG).
    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            self.0 >> 33
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    const MODEL_PAGES: u64 = 48;

    /// Checks the set against a page-by-page model, and its own invariants.
    fn check(set: &VmaSet, model: &[Option<(Prot, VmaFlags)>]) {
        let mut previous: Option<&Vma> = None;
        for (&key, area) in &set.areas {
            assert_eq!(key, area.start);
            assert!(area.start < area.end);
            if let Some(previous) = previous {
                assert!(previous.end <= area.start, "overlap");
                assert!(
                    !previous.can_merge_with(area),
                    "unmerged {previous:?} {area:?}"
                );
            }
            previous = Some(area);
        }
        for (page, expected) in model.iter().enumerate() {
            let found = set.find(page as u64 * P).map(|v| (v.prot, v.flags));
            assert_eq!(found, *expected, "page {page}");
        }
        let mapped = model.iter().filter(|p| p.is_some()).count() as u64;
        assert_eq!(set.total_pages(), mapped);
    }

    #[test]
    fn randomized_against_page_model() {
        let prots = [RW, Prot::READ];
        let flags = [ANON, VmaFlags::SHARED | ANON];
        let mut rng = Lcg(0x5eed);
        for _round in 0..50 {
            let mut set = VmaSet::new();
            let mut model = vec![None; MODEL_PAGES as usize];
            for _step in 0..200 {
                let s = rng.below(MODEL_PAGES);
                let e = s + 1 + rng.below((MODEL_PAGES - s).min(8));
                let pages = s as usize..e as usize;
                let prot = prots[rng.below(2) as usize];
                match rng.below(4) {
                    0 => {
                        let attrs = (prot, flags[rng.below(2) as usize]);
                        let area = Vma::new(s * P, e * P, attrs.0, attrs.1).unwrap();
                        if model[pages.clone()].iter().any(Option::is_some) {
                            assert_eq!(set.insert(area), Err(VmaError::Overlap));
                        } else {
                            set.insert(area).unwrap();
                            model[pages].fill(Some(attrs));
                        }
                    }
                    1 => {
                        let removed = set.unmap(s * P, e * P).unwrap();
                        let removed_pages: u64 = removed.iter().map(Vma::pages).sum();
                        for piece in &removed {
                            assert!(piece.start >= s * P && piece.end <= e * P);
                            let first = (piece.start / P) as usize;
                            let attrs = Some((piece.prot, piece.flags));
                            assert!(model[first..(piece.end / P) as usize]
                                .iter()
                                .all(|p| *p == attrs));
                        }
                        let mapped = model[pages.clone()].iter().filter(|p| p.is_some());
                        assert_eq!(removed_pages, mapped.count() as u64);
                        model[pages].fill(None);
                    }
                    2 => {
                        let result = set.protect(s * P, e * P, prot);
                        if model[pages.clone()].iter().any(Option::is_none) {
                            assert_eq!(result, Err(VmaError::NotMapped));
                        } else {
                            let changed: u64 = result.unwrap().iter().map(Vma::pages).sum();
                            let differing = model[pages.clone()]
                                .iter()
                                .filter(|p| p.unwrap().0 != prot)
                                .count();
                            assert_eq!(changed, differing as u64);
                            for page in &mut model[pages] {
                                page.as_mut().unwrap().0 = prot;
                            }
                        }
                    }
                    _ => {
                        let len = (e - s) * P;
                        let hint = if rng.below(2) == 0 { 0 } else { s * P };
                        let found = set.get_unmapped_area(len, hint, 0, MODEL_PAGES * P);
                        let free = |first: u64| {
                            model[first as usize..(first + e - s) as usize]
                                .iter()
                                .all(Option::is_none)
                        };
                        let highest = (0..=MODEL_PAGES - (e - s)).rev().find(|&f| free(f));
                        match found {
                            Some(addr) if hint != 0 && free(s) => assert_eq!(addr, hint),
                            _ => assert_eq!(found, highest.map(|f| f * P)),
                        }
                    }
                }
                check(&set, &model);
            }
        }
    }
}
