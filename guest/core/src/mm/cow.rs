//! The page-table side of copy-on-write fork: sharing a parent's pages with
//! a child (`copy_page_range`), tearing mappings down (`unmap_range`,
//! `free_page_tables`), changing rights (`change_protection`), filling
//! pages eagerly (`populate`, `write_bytes`) and resolving page faults
//! (`handle_fault`: demand zero and COW breaking, like `handle_mm_fault`).
//!
//! Rules these functions keep, and the rest of the kernel must keep too:
//! - Every present user PTE holds one reference on its frame.
//! - A private page whose frame may be shared is read-only and carries
//!   [`PTE_COW`]; the write fault that follows copies or reuses it.
//! - A page of a `PROT_NONE` area stays present but loses `USER`, so it
//!   keeps its contents while user mode cannot touch it.
//! - Only the first [`USER_PML4_ENTRIES`] PML4 entries are ever read or
//!   written: the entries above belong to the kernel (index 128, and 256
//!   on PVM) and are shared by every address space.
//! - User mappings are 4 KiB pages. Table entries are
//!   `PRESENT | WRITABLE | USER`; leaf entries carry the rights.
//!
//! Nothing here touches the TLB: each function reports when the caller
//! must flush it.

use forkvm_abi::PAGE_SIZE;

use super::paging::{flags, index, TableAccess, TablePage, ADDRESS_MASK};
use super::vma::{Prot, Vma, VmaSet, TASK_SIZE};

/// Software PTE bit (bit 9 is ignored by the MMU): the page is private and
/// its frame may be shared with another address space, so a write must go
/// through the fault handler.
pub const PTE_COW: u64 = 1 << 9;

/// PML4 entries that map user space. The kernel's direct map starts at
/// entry 128 (`PAGE_OFFSET`).
pub const USER_PML4_ENTRIES: usize = 128;

/// First address above the user half of the page tables.
const USER_END: u64 = (USER_PML4_ENTRIES as u64) << 39;
const _: () = assert!(
    USER_END == TASK_SIZE,
    "user PML4 entries and TASK_SIZE disagree"
);

/// Flags of the entries pointing to user table pages: the leaf entries
/// alone decide the rights.
const TABLE_FLAGS: u64 = flags::PRESENT | flags::WRITABLE | flags::USER;

/// A data frame (a page of user memory or of a file), by guest-physical
/// address. Only mm makes one: [`MemoryOps::alloc_data_frame`], the
/// walkers here from a present leaf entry (which points at a data frame),
/// and `unsafe` [`DataFrame::new`]. So [`MemoryOps::read_frame`] and
/// [`MemoryOps::write_frame`] only ever reach a data frame, never an
/// arbitrary address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataFrame(u64);

impl DataFrame {
    /// The data frame at `phys`.
    ///
    /// # Safety
    /// `phys` is the 4 KiB-aligned address of an allocated data frame (not
    /// a page-table page, not kernel memory) for as long as this value is
    /// used.
    pub const unsafe fn new(phys: u64) -> DataFrame {
        DataFrame(phys)
    }

    /// The frame a present leaf entry of a user page table maps.
    pub(crate) const fn from_entry(entry: u64) -> DataFrame {
        DataFrame(entry & ADDRESS_MASK)
    }

    pub fn phys(self) -> u64 {
        self.0
    }
}

/// What these operations need from the kernel: table pages (through
/// [`TableAccess`]) and reference-counted data frames.
pub trait MemoryOps: TableAccess {
    /// Allocates a zeroed data frame (refcount 1); None when out of memory.
    fn alloc_data_frame(&mut self) -> Option<DataFrame>;
    /// Takes another reference to the data frame at `phys`.
    fn get_frame(&mut self, phys: u64);
    /// Drops a reference to a data or table frame; returns true when it was
    /// freed.
    fn put_frame(&mut self, phys: u64) -> bool;
    /// References held on the frame at `phys`.
    fn frame_refcount(&self, phys: u64) -> u16;
    /// Copies the contents of frame `src` into frame `dst` (4 KiB).
    fn copy_frame(&mut self, dst: DataFrame, src: DataFrame);
    /// Copies `buf.len()` bytes at `offset` of `frame` into `buf`.
    fn read_frame(&mut self, frame: DataFrame, offset: usize, buf: &mut [u8]);
    /// Copies `data` to `offset` of `frame`. (No method hands out a
    /// reference to a frame: other CPUs may access it at the same time,
    /// through other address spaces or user mappings.)
    fn write_frame(&mut self, frame: DataFrame, offset: usize, data: &[u8]);
    /// Frees a table page that is all zeros (every entry cleared). The
    /// kernel keeps such pages for reuse: zeroing a page again is
    /// expensive where page-table pages are write-protected by a shadow MMU.
    fn free_zeroed_table(&mut self, table: TablePage) {
        self.put_frame(table.phys());
    }
}

/// Not enough memory for a page or a page table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutOfMemory;

/// Bytes one entry of a table at `level` maps (4 = PML4 ... 1 = PT).
fn entry_span(level: u32) -> u64 {
    1 << (12 + 9 * (level - 1))
}

/// The entries of a table at `level` that `[start, end)` touches (the range
/// lies within the table and is not empty): their index and the part of
/// the range each one maps.
fn entries(level: u32, start: u64, end: u64) -> impl Iterator<Item = (usize, u64, u64)> {
    let span = entry_span(level);
    (start / span..=(end - 1) / span).map(move |n| {
        let lo = (n * span).max(start);
        let hi = ((n + 1) * span).min(end);
        ((n % 512) as usize, lo, hi)
    })
}

/// `[start, end)` widened to whole pages and clipped to the user half, or
/// None if nothing is left. Clipping is what keeps the kernel's PML4
/// entries out of reach.
fn user_range(start: u64, end: u64) -> Option<(u64, u64)> {
    let start = start / PAGE_SIZE * PAGE_SIZE;
    let end = end.min(USER_END).next_multiple_of(PAGE_SIZE);
    (start < end).then_some((start, end))
}

/// The leaf bits for a page with rights `prot`; `writable` says whether a
/// write may go straight to the frame (false while it is COW-shared).
/// Whether the CPU runs with EFER.NXE: then pages without `PROT_EXEC` get
/// the no-execute bit (without NXE that bit is reserved and must stay 0).
static NO_EXECUTE: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Enables no-execute protection for user pages mapped from now on.
pub fn set_no_execute_supported(on: bool) {
    NO_EXECUTE.store(on, core::sync::atomic::Ordering::Relaxed);
}

fn leaf_flags(prot: Prot, writable: bool) -> u64 {
    let mut bits = flags::PRESENT;
    if !prot.contains(Prot::EXEC) && NO_EXECUTE.load(core::sync::atomic::Ordering::Relaxed) {
        bits |= flags::NO_EXECUTE;
    }
    if prot.allows_read() {
        bits |= flags::USER;
    }
    if writable && prot.allows_write() {
        bits |= flags::WRITABLE;
    }
    bits
}

/// Where the PTE of an address lives.
enum Walk {
    /// The page table and index of the PTE (which may be empty).
    Slot(TablePage, usize),
    /// A table on the way is missing (only when not allocating).
    NoTable,
    /// A table could not be allocated.
    OutOfMemory,
    /// A huge page maps the address; user space never has any.
    Huge,
}

/// Walks to the PTE of the user address `addr`, allocating missing tables
/// if `allocate`.
fn walk(ops: &mut impl MemoryOps, root: TablePage, addr: u64, allocate: bool) -> Walk {
    debug_assert!(addr < USER_END);
    let mut table = root;
    for level in (2..=4).rev() {
        let i = index(addr, level);
        let entry = ops.table(table)[i];
        table = if entry & flags::PRESENT == 0 {
            if !allocate {
                return Walk::NoTable;
            }
            let Some(new) = ops.alloc_table() else {
                return Walk::OutOfMemory;
            };
            ops.table(table)[i] = new.phys() | TABLE_FLAGS;
            new
        } else if entry & flags::HUGE != 0 {
            return Walk::Huge;
        } else {
            TablePage::from_entry(entry)
        };
    }
    Walk::Slot(table, index(addr, 1))
}

/// Gives parent and child their own copy of the page at `addr` right
/// after [`copy_page_range`], instead of sharing it copy-on-write: for a
/// page both will write at once (the stack top), one copy at fork is far
/// cheaper than two write faults. Only a private page shared by exactly
/// these two (refcount 2, marked COW) is copied; returns whether it was.
/// The caller flushes the parent's TLB as after `copy_page_range`.
pub fn copy_page_eagerly(
    ops: &mut impl MemoryOps,
    parent_root: TablePage,
    child_root: TablePage,
    addr: u64,
) -> Result<bool, OutOfMemory> {
    if addr >= USER_END {
        return Ok(false);
    }
    let page = addr & !(PAGE_SIZE - 1);
    let (Walk::Slot(parent_table, pi), Walk::Slot(child_table, ci)) = (
        walk(ops, parent_root, page, false),
        walk(ops, child_root, page, false),
    ) else {
        return Ok(false);
    };
    let parent_entry = ops.table(parent_table)[pi];
    let child_entry = ops.table(child_table)[ci];
    let frame = parent_entry & ADDRESS_MASK;
    let shared_by_both = parent_entry & PTE_COW != 0
        && child_entry & ADDRESS_MASK == frame
        && ops.frame_refcount(frame) == 2;
    if !shared_by_both {
        return Ok(false);
    }
    let copy = ops.alloc_data_frame().ok_or(OutOfMemory)?;
    ops.copy_frame(copy, DataFrame::from_entry(parent_entry));
    ops.put_frame(frame);
    let writable = (parent_entry & !(PTE_COW | ADDRESS_MASK)) | flags::WRITABLE;
    ops.table(child_table)[ci] = copy.phys() | writable;
    ops.table(parent_table)[pi] = frame | writable;
    Ok(true)
}

/// Shares the pages of the parent's area `vma` with the child (Linux's
/// `copy_page_range`, called by fork for each area). The child gets the
/// parent's frames (one more reference each) and its own tables. In a
/// private area both sides lose `WRITABLE` and gain [`PTE_COW`]; a shared
/// area stays writable on both sides.
///
/// Returns how many parent PTEs lost `WRITABLE`: if any did, the caller
/// must flush the parent's TLB before the parent runs again.
///
/// On `OutOfMemory` the child holds a consistent prefix of the copy (every
/// child PTE holds its reference; some child tables may be empty) that
/// [`free_page_tables`] releases completely. Parent PTEs may already be
/// write-protected, so flush the parent's TLB in that case too; their
/// write faults will reuse the frames once the child is gone.
///
/// The child must have nothing mapped in the area yet.
pub fn copy_page_range(
    ops: &mut impl MemoryOps,
    parent_root: TablePage,
    child_root: TablePage,
    vma: &Vma,
) -> Result<u64, OutOfMemory> {
    copy_area(ops, parent_root, child_root, vma, false)
}

/// [`copy_page_range`], or with `copy_writable` the variant that gives the
/// child its own copy of every page the parent can write (see [`dup_mmap`]).
fn copy_area(
    ops: &mut impl MemoryOps,
    parent_root: TablePage,
    child_root: TablePage,
    vma: &Vma,
    copy_writable: bool,
) -> Result<u64, OutOfMemory> {
    let Some((start, end)) = user_range(vma.start, vma.end) else {
        return Ok(0);
    };
    let mut copy = CopyState {
        shared: vma.is_shared(),
        copy_writable,
        write_protected: 0,
    };
    copy_table(ops, parent_root, child_root, 4, start, end, &mut copy)?;
    Ok(copy.write_protected)
}

/// How `copy_table` treats leaf entries, and what it has done.
struct CopyState {
    /// The area is shared: leave the PTEs as they are.
    shared: bool,
    /// Copy private writable pages now instead of write-protecting them.
    copy_writable: bool,
    /// Parent PTEs that lost `WRITABLE`.
    write_protected: u64,
}

fn copy_table(
    ops: &mut impl MemoryOps,
    parent: TablePage,
    child: TablePage,
    level: u32,
    start: u64,
    end: u64,
    copy: &mut CopyState,
) -> Result<(), OutOfMemory> {
    for (i, lo, hi) in entries(level, start, end) {
        let entry = ops.table(parent)[i];
        if entry & flags::PRESENT == 0 {
            continue;
        }
        if level == 1 {
            copy_pte(ops, parent, child, i, entry, copy)?;
            continue;
        }
        if entry & flags::HUGE != 0 {
            debug_assert!(false, "huge page in user space");
            continue;
        }
        let child_entry = ops.table(child)[i];
        let child_next = if child_entry & flags::PRESENT != 0 {
            TablePage::from_entry(child_entry)
        } else {
            let new = ops.alloc_table().ok_or(OutOfMemory)?;
            ops.table(child)[i] = new.phys() | TABLE_FLAGS;
            new
        };
        copy_table(
            ops,
            TablePage::from_entry(entry),
            child_next,
            level - 1,
            lo,
            hi,
            copy,
        )?;
    }
    Ok(())
}

/// Copies one present leaf entry from the parent's table to the child's.
fn copy_pte(
    ops: &mut impl MemoryOps,
    parent: TablePage,
    child: TablePage,
    i: usize,
    entry: u64,
    copy: &mut CopyState,
) -> Result<(), OutOfMemory> {
    let frame = entry & ADDRESS_MASK;
    let entry = if copy.shared {
        ops.get_frame(frame);
        entry
    } else if copy.copy_writable && entry & flags::WRITABLE != 0 {
        // A writable private page is the parent's alone: the child gets a
        // copy, and the parent's PTE stays as it is.
        let copy = ops.alloc_data_frame().ok_or(OutOfMemory)?;
        ops.copy_frame(copy, DataFrame::from_entry(entry));
        copy.phys() | (entry & !ADDRESS_MASK)
    } else {
        ops.get_frame(frame);
        let protected = (entry & !flags::WRITABLE) | PTE_COW;
        if protected != entry {
            ops.table(parent)[i] = protected;
            if entry & flags::WRITABLE != 0 {
                copy.write_protected += 1;
            }
        }
        protected
    };
    let old = core::mem::replace(&mut ops.table(child)[i], entry);
    if old & flags::PRESENT != 0 {
        debug_assert!(false, "fork into a populated child");
        ops.put_frame(old & ADDRESS_MASK);
    }
    Ok(())
}

/// Shares every area of the parent with the child (the page-table half of
/// Linux's `dup_mmap`; the caller clones the [`VmaSet`]). Returns the
/// number of write-protected parent PTEs, as [`copy_page_range`] does;
/// on error, [`free_page_tables`] on the child undoes the partial copy.
///
/// If the parent has at most `copy_max` private pages it can write, the
/// child gets its own copy of each of them instead: the parent's writable
/// PTEs are then left as they are, so it needs no TLB flush, and
/// neither side takes a write fault on those pages later. Where a fault
/// and a flush cost tens of microseconds (the PVM host) and a page copy a
/// tenth of one, that is the cheaper fork for a small process; what user
/// space sees is the same (only the moment of the copy differs).
pub fn dup_mmap(
    ops: &mut impl MemoryOps,
    vmas: &VmaSet,
    parent_root: TablePage,
    child_root: TablePage,
    copy_max: u64,
) -> Result<u64, OutOfMemory> {
    let copy_writable =
        copy_max > 0 && writable_private_pages(ops, vmas, parent_root, copy_max) <= copy_max;
    let mut write_protected = 0;
    for vma in vmas.iter() {
        write_protected += copy_area(ops, parent_root, child_root, vma, copy_writable)?;
    }
    Ok(write_protected)
}

/// Present private pages that the address space at `root` can write (each
/// one a fork would write-protect), counted until past `limit`.
fn writable_private_pages(
    ops: &mut impl MemoryOps,
    vmas: &VmaSet,
    root: TablePage,
    limit: u64,
) -> u64 {
    let mut count = 0;
    for vma in vmas.iter().filter(|vma| !vma.is_shared()) {
        let Some((start, end)) = user_range(vma.start, vma.end) else {
            continue;
        };
        for_each_pte(ops, root, 4, start, end, &mut |_, _, _, entry| {
            count += u64::from(entry & flags::WRITABLE != 0);
        });
        if count > limit {
            break;
        }
    }
    count
}

/// What [`unmap_range`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UnmapStats {
    /// Present PTEs cleared.
    pub pages_unmapped: u64,
    /// Data frames whose last reference went with them.
    pub pages_freed: u64,
    /// Page-table pages freed because they became empty.
    pub tables_freed: u64,
}

impl UnmapStats {
    /// Whether the TLB (and the paging-structure caches, for freed tables)
    /// may hold stale entries: flush it before the range is used again.
    pub fn needs_flush(&self) -> bool {
        self.pages_unmapped > 0 || self.tables_freed > 0
    }
}

/// Unmaps `[start, end)` (widened to pages, clipped to user space): clears
/// the PTEs, drops their frames' references, and frees the table pages
/// (PT, PD, PDPT) left empty. Never frees the root. Like Linux's
/// `unmap_page_range` + `free_pgtables`; flush the TLB afterwards if
/// [`UnmapStats::needs_flush`].
pub fn unmap_range(ops: &mut impl MemoryOps, root: TablePage, start: u64, end: u64) -> UnmapStats {
    let mut stats = UnmapStats::default();
    if let Some((start, end)) = user_range(start, end) {
        zap_table(ops, root, 4, start, end, true, &mut stats);
    }
    stats
}

/// Clears the PTEs of `[start, end)` under `table` and drops their
/// frames' references; with `free_empty`, frees the tables left empty.
fn zap_table(
    ops: &mut impl MemoryOps,
    table: TablePage,
    level: u32,
    start: u64,
    end: u64,
    free_empty: bool,
    stats: &mut UnmapStats,
) {
    for (i, lo, hi) in entries(level, start, end) {
        let entry = ops.table(table)[i];
        if entry & flags::PRESENT == 0 {
            continue;
        }
        if level == 1 {
            ops.table(table)[i] = 0;
            stats.pages_unmapped += 1;
            if ops.put_frame(entry & ADDRESS_MASK) {
                stats.pages_freed += 1;
            }
            continue;
        }
        if entry & flags::HUGE != 0 {
            debug_assert!(false, "huge page in user space");
            continue;
        }
        let next = TablePage::from_entry(entry);
        zap_table(ops, next, level - 1, lo, hi, free_empty, stats);
        if free_empty && ops.table(next).iter().all(|&e| e == 0) {
            ops.table(table)[i] = 0;
            ops.free_zeroed_table(next);
            stats.tables_freed += 1;
        }
    }
}

/// [`MemoryOps`] for an unmap whose pages other CPUs may still reach
/// through their TLBs (Linux's `mmu_gather`): it clears the entries at
/// once, but keeps every reference it drops (data frames and emptied
/// table pages) until [`PendingFrees::free`], which the caller runs after
/// the TLB shootdown. Freed earlier, a frame could be reused while a CPU
/// still writes through a stale translation of it; and a shared frame's
/// other holder, seeing its count fall to one, could reuse it in place
/// (a COW break without a copy) while this address space's stale
/// translations still read it. Deciding at the unmap whether a reference
/// is the last would also race with other address spaces, each under its
/// own table lock, dropping theirs.
pub struct FreeAfterFlush<'a, M: MemoryOps> {
    ops: &'a mut M,
    pending: PendingFrees,
}

/// Frames an unmap took out of the page tables and still owns.
#[must_use = "the frames are freed only by PendingFrees::free, after the TLB flush"]
#[derive(Default)]
pub struct PendingFrees {
    frames: alloc::vec::Vec<u64>,
    tables: alloc::vec::Vec<TablePage>,
}

impl<'a, M: MemoryOps> FreeAfterFlush<'a, M> {
    pub fn new(ops: &'a mut M) -> Self {
        FreeAfterFlush {
            ops,
            pending: PendingFrees::default(),
        }
    }

    /// The frames kept back: free them once no TLB can map them.
    pub fn into_pending(self) -> PendingFrees {
        self.pending
    }
}

impl<M: MemoryOps> TableAccess for FreeAfterFlush<'_, M> {
    fn table(&mut self, page: TablePage) -> &mut [u64; 512] {
        self.ops.table(page)
    }

    fn alloc_table(&mut self) -> Option<TablePage> {
        self.ops.alloc_table()
    }
}

impl<M: MemoryOps> MemoryOps for FreeAfterFlush<'_, M> {
    fn alloc_data_frame(&mut self) -> Option<DataFrame> {
        self.ops.alloc_data_frame()
    }

    fn get_frame(&mut self, phys: u64) {
        self.ops.get_frame(phys);
    }

    /// Every reference is kept until the flush (reported as freed when it
    /// is the last one now).
    fn put_frame(&mut self, phys: u64) -> bool {
        self.pending.frames.push(phys);
        self.ops.frame_refcount(phys) == 1
    }

    fn frame_refcount(&self, phys: u64) -> u16 {
        self.ops.frame_refcount(phys)
    }

    fn copy_frame(&mut self, dst: DataFrame, src: DataFrame) {
        self.ops.copy_frame(dst, src);
    }

    fn read_frame(&mut self, frame: DataFrame, offset: usize, buf: &mut [u8]) {
        self.ops.read_frame(frame, offset, buf);
    }

    fn write_frame(&mut self, frame: DataFrame, offset: usize, data: &[u8]) {
        self.ops.write_frame(frame, offset, data);
    }

    fn free_zeroed_table(&mut self, table: TablePage) {
        self.pending.tables.push(table);
    }
}

impl PendingFrees {
    /// Frees the frames kept back (after the TLB flush).
    pub fn free(self, ops: &mut impl MemoryOps) {
        for phys in self.frames {
            ops.put_frame(phys);
        }
        for table in self.tables {
            ops.free_zeroed_table(table);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty() && self.tables.is_empty()
    }
}

/// Unmaps all of user space and frees every user table page (like Linux's
/// `exit_mmap`). The root itself, and the kernel entries in it, are left
/// to the caller. Flush the TLB afterwards if the root is loaded.
pub fn free_page_tables(ops: &mut impl MemoryOps, root: TablePage) -> UnmapStats {
    unmap_range(ops, root, 0, USER_END)
}

/// Unmaps every user page like [`free_page_tables`], but leaves the table
/// pages where they are, empty: what remains is a valid empty address
/// space whose tables a later fork or exec can fill without writing the
/// upper levels again (see `address_space`). Returns what was unmapped
/// and how many table pages remain below the root.
pub fn unmap_pages_keep_tables(ops: &mut impl MemoryOps, root: TablePage) -> (UnmapStats, u64) {
    let mut stats = UnmapStats::default();
    zap_table(ops, root, 4, 0, USER_END, false, &mut stats);
    (stats, count_tables(ops, root, 4))
}

/// Table pages below the table at `level` in the user half.
fn count_tables(ops: &mut impl MemoryOps, table: TablePage, level: u32) -> u64 {
    let mut count = 0;
    let slots = if level == 4 { USER_PML4_ENTRIES } else { 512 };
    for i in 0..slots {
        let entry = ops.table(table)[i];
        if level > 1 && entry & flags::PRESENT != 0 && entry & flags::HUGE == 0 {
            count += 1 + count_tables(ops, TablePage::from_entry(entry), level - 1);
        }
    }
    count
}

/// Present user pages in `[start, end)` of the address space at `root`
/// (its resident set there: the OOM killer's count, Linux's rss counters).
pub fn count_present(ops: &mut impl MemoryOps, root: TablePage, start: u64, end: u64) -> u64 {
    let Some((start, end)) = user_range(start, end) else {
        return 0;
    };
    let mut pages = 0;
    for_each_pte(ops, root, 4, start, end, &mut |_, _, _, _| pages += 1);
    pages
}

/// Page-table pages of the address space at `root`, the root included
/// (Linux `mm_pgtables_bytes` in pages).
pub fn table_pages(ops: &mut impl MemoryOps, root: TablePage) -> u64 {
    1 + count_tables(ops, root, 4)
}

/// Gives the present pages of `area` the leaf rights of `area.prot` (the
/// page-table half of `mprotect`, Linux's `change_protection`; call it for
/// each piece [`VmaSet::protect`] returns). A private page only becomes
/// writable if its frame is no longer shared; otherwise it stays
/// read-only with [`PTE_COW`] and the next write fault copies it.
/// Returns the number of PTEs changed: flush the TLB if it is not 0.
pub fn change_protection(ops: &mut impl MemoryOps, root: TablePage, area: &Vma) -> u64 {
    let Some((start, end)) = user_range(area.start, area.end) else {
        return 0;
    };
    let mut changed = 0;
    for_each_pte(ops, root, 4, start, end, &mut |ops, table, i, entry| {
        let exclusive = area.is_shared() || ops.frame_refcount(entry & ADDRESS_MASK) == 1;
        let mut new = entry & !(flags::USER | flags::WRITABLE | flags::NO_EXECUTE | PTE_COW);
        new |= leaf_flags(area.prot, exclusive);
        if !exclusive {
            new |= PTE_COW;
        }
        if new != entry {
            ops.table(table)[i] = new;
            changed += 1;
        }
    });
    changed
}

/// Calls `visit(ops, table, index, entry)` for each present PTE of
/// `[start, end)` under the table at `level`, skipping missing tables.
fn for_each_pte<O: MemoryOps>(
    ops: &mut O,
    table: TablePage,
    level: u32,
    start: u64,
    end: u64,
    visit: &mut impl FnMut(&mut O, TablePage, usize, u64),
) {
    for (i, lo, hi) in entries(level, start, end) {
        let entry = ops.table(table)[i];
        if entry & flags::PRESENT == 0 {
            continue;
        }
        if level == 1 {
            visit(ops, table, i, entry);
        } else if entry & flags::HUGE != 0 {
            debug_assert!(false, "huge page in user space");
        } else {
            for_each_pte(ops, TablePage::from_entry(entry), level - 1, lo, hi, visit);
        }
    }
}

/// Moves the present PTEs of `[start, end)` to the same offsets from
/// `to` (the page-table half of mremap, Linux `move_page_tables`): each
/// frame keeps its reference, its COW state and its rights. The new range
/// must be empty. Returns the number of PTEs moved: if not 0, flush the
/// TLB before the old range is used again, then free the old range's
/// tables (unmapping it). On `OutOfMemory` (a table for the new range) the
/// pages moved so far stay at their new place.
pub fn move_page_range(
    ops: &mut impl MemoryOps,
    root: TablePage,
    start: u64,
    end: u64,
    to: u64,
) -> Result<u64, OutOfMemory> {
    let Some((start, end)) = user_range(start, end) else {
        return Ok(0);
    };
    if to.checked_add(end - start).is_none_or(|top| top > USER_END) {
        return Ok(0);
    }
    let mut moved = 0;
    for page in (start..end).step_by(PAGE_SIZE as usize) {
        let Some((table, i)) = present_pte(ops, root, page) else {
            continue;
        };
        let entry = ops.table(table)[i];
        let (new_table, j) = match walk(ops, root, to + (page - start), true) {
            Walk::Slot(table, j) => (table, j),
            Walk::OutOfMemory => return Err(OutOfMemory),
            Walk::NoTable | Walk::Huge => continue,
        };
        debug_assert_eq!(ops.table(new_table)[j] & flags::PRESENT, 0);
        ops.table(new_table)[j] = entry;
        ops.table(table)[i] = 0;
        moved += 1;
    }
    Ok(moved)
}

/// Which pages of `[start, end)` are present (bit `i` of the result for
/// page `i`; at most 64 pages): `mincore`'s answer for memory without a
/// backing store.
pub fn present_pages(ops: &mut impl MemoryOps, root: TablePage, start: u64, end: u64) -> u64 {
    let mut bits = 0;
    let Some((start, end)) = user_range(start, end.min(start.saturating_add(64 * PAGE_SIZE)))
    else {
        return 0;
    };
    for page in (start..end).step_by(PAGE_SIZE as usize) {
        if present_pte(ops, root, page).is_some() {
            bits |= 1 << ((page - start) / PAGE_SIZE);
        }
    }
    bits
}

/// Maps zeroed frames with the rights `prot` at every unmapped page of
/// `[start, end)` (widened to pages, clipped to user space), for stacks,
/// ELF segments and shared anonymous areas. Pages already mapped are kept.
/// Returns the number of pages mapped. On `OutOfMemory` the pages mapped
/// so far stay; unmapping the range releases them. No TLB flush is needed:
/// only empty PTEs are filled.
pub fn populate(
    ops: &mut impl MemoryOps,
    root: TablePage,
    start: u64,
    end: u64,
    prot: Prot,
) -> Result<u64, OutOfMemory> {
    let mut mapped = 0;
    let Some((start, end)) = user_range(start, end) else {
        return Ok(0);
    };
    for page in (start..end).step_by(PAGE_SIZE as usize) {
        let (table, i) = match walk(ops, root, page, true) {
            Walk::Slot(table, i) => (table, i),
            Walk::OutOfMemory => return Err(OutOfMemory),
            Walk::NoTable | Walk::Huge => continue,
        };
        if ops.table(table)[i] & flags::PRESENT != 0 {
            continue;
        }
        let frame = ops.alloc_data_frame().ok_or(OutOfMemory)?;
        ops.table(table)[i] = frame.phys() | leaf_flags(prot, true);
        mapped += 1;
    }
    Ok(mapped)
}

/// Maps the existing data frame `frame` at the empty PTE of `addr` with
/// the rights `prot`, taking a reference on it (a file's page-cache page,
/// `mm::file_map`). `cow`: the page belongs to a private area, so it is
/// read-only and carries [`PTE_COW`], and the first write copies it. A
/// page already mapped is left alone (returns false). No TLB flush is
/// needed: only an empty PTE is filled.
pub fn map_frame(
    ops: &mut impl MemoryOps,
    root: TablePage,
    addr: u64,
    frame: DataFrame,
    prot: Prot,
    cow: bool,
) -> Result<bool, OutOfMemory> {
    if addr >= USER_END {
        return Ok(false);
    }
    let (table, i) = match walk(ops, root, addr, true) {
        Walk::Slot(table, i) => (table, i),
        Walk::OutOfMemory => return Err(OutOfMemory),
        Walk::NoTable | Walk::Huge => return Ok(false),
    };
    if ops.table(table)[i] & flags::PRESENT != 0 {
        return Ok(false);
    }
    ops.get_frame(frame.phys());
    let bits = if cow {
        leaf_flags(prot, false) | PTE_COW
    } else {
        leaf_flags(prot, true)
    };
    ops.table(table)[i] = frame.phys() | bits;
    Ok(true)
}

/// Why the kernel could not copy to or from user memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserCopyError {
    /// A page of the range is not mapped, or lies outside user space.
    Unmapped,
    /// Breaking a COW share needed a frame and none was left.
    OutOfMemory,
}

/// The present PTE mapping the user address `addr`: its table and index.
fn present_pte(ops: &mut impl MemoryOps, root: TablePage, addr: u64) -> Option<(TablePage, usize)> {
    if addr >= USER_END {
        return None;
    }
    match walk(ops, root, addr, false) {
        Walk::Slot(table, i) if ops.table(table)[i] & flags::PRESENT != 0 => Some((table, i)),
        _ => None,
    }
}

/// Splits `[addr, addr + len)` into per-page chunks: (page address, offset
/// in page, offset in the buffer, length). None if it wraps around.
fn page_chunks(addr: u64, len: usize) -> Option<impl Iterator<Item = (u64, usize, usize, usize)>> {
    addr.checked_add(len as u64)?;
    let mut done = 0;
    Some(core::iter::from_fn(move || {
        if done == len {
            return None;
        }
        let at = addr + done as u64;
        let offset = (at % PAGE_SIZE) as usize;
        let n = (PAGE_SIZE as usize - offset).min(len - done);
        let chunk = (at - offset as u64, offset, done, n);
        done += n;
        Some(chunk)
    }))
}

/// Copies `data` into the already mapped user pages at `addr` of the
/// address space at `root`, whatever their rights (exec fills read-only
/// ELF segments this way). A private page still COW-shared is copied first,
/// so the other sharers keep their contents. Returns the number of pages
/// so copied: if not 0 and `root` is loaded, flush the TLB. Pages before
/// a failing one have been written.
pub fn write_bytes(
    ops: &mut impl MemoryOps,
    root: TablePage,
    addr: u64,
    data: &[u8],
) -> Result<u64, UserCopyError> {
    let mut copied = 0;
    for (page, offset, from, n) in page_chunks(addr, data.len()).ok_or(UserCopyError::Unmapped)? {
        let (table, i) = present_pte(ops, root, page).ok_or(UserCopyError::Unmapped)?;
        let mut entry = ops.table(table)[i];
        if entry & PTE_COW != 0 && ops.frame_refcount(entry & ADDRESS_MASK) > 1 {
            let old = entry & ADDRESS_MASK;
            let new = ops.alloc_data_frame().ok_or(UserCopyError::OutOfMemory)?;
            ops.copy_frame(new, DataFrame::from_entry(entry));
            // Still read-only and COW: a later write fault will reuse the
            // now exclusive frame.
            entry = (entry & !ADDRESS_MASK) | new.phys();
            ops.table(table)[i] = entry;
            ops.put_frame(old);
            copied += 1;
        }
        ops.write_frame(DataFrame::from_entry(entry), offset, &data[from..from + n]);
    }
    Ok(copied)
}

/// Copies the mapped user memory at `addr` of the address space at `root`
/// into `buf`, whatever the pages' rights.
pub fn read_bytes(
    ops: &mut impl MemoryOps,
    root: TablePage,
    addr: u64,
    buf: &mut [u8],
) -> Result<(), UserCopyError> {
    for (page, offset, to, n) in page_chunks(addr, buf.len()).ok_or(UserCopyError::Unmapped)? {
        let (table, i) = present_pte(ops, root, page).ok_or(UserCopyError::Unmapped)?;
        let frame = DataFrame::from_entry(ops.table(table)[i]);
        ops.read_frame(frame, offset, &mut buf[to..to + n]);
    }
    Ok(())
}

/// A page fault, as the CPU describes it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Access {
    /// The access was a write.
    pub write: bool,
    /// It came from user mode (a kernel access to user memory is handled
    /// the same way; on `Segv` the kernel fails the copy with EFAULT).
    pub user: bool,
    /// The PTE was present (a protection fault). Informational:
    /// [`handle_fault`] decides from the PTE as it is now.
    pub present_fault: bool,
    /// An instruction fetch (only reported with no-execute enabled).
    pub execute: bool,
}

impl Access {
    /// The access described by a #PF error code (bits P, W/R, U/S, I/D).
    pub fn from_error_code(code: u64) -> Access {
        Access {
            present_fault: code & 1 != 0,
            write: code & 2 != 0,
            user: code & 4 != 0,
            execute: code & 0x10 != 0,
        }
    }
}

/// What [`handle_fault`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultResult {
    /// Mapped a zeroed frame (demand zero, `do_anonymous_page`).
    Mapped,
    /// Made an exclusive COW page writable again (`wp_page_reuse`).
    Reused,
    /// Copied a shared COW page to a new frame (`wp_page_copy`).
    Copied,
    /// Mapped a page of the area's file from its page cache, and maybe
    /// some of its neighbours (`filemap_fault`, `do_fault_around`); a
    /// write to a private mapping got its copy at once (`do_cow_fault`).
    FileMapped,
    /// No page in an area that maps a file: the caller looks the page up
    /// in the file's page cache and calls [`do_file_fault`].
    FileNoPage,
    /// The page of a file mapping lies wholly past the end of the file:
    /// SIGBUS (BUS_ADRERR), or EFAULT for a kernel access.
    Sigbus,
    /// The PTE already allows the access (or was fixed up): a stale TLB
    /// entry; retry.
    Spurious,
    /// No area, or the area forbids the access: SIGSEGV (or EFAULT).
    Segv,
    /// No memory for a page or page table: the task has to die.
    Oom,
}

impl FaultResult {
    /// Whether the caller must invalidate the TLB entry of the faulting
    /// address before returning.
    pub fn needs_flush(self) -> bool {
        matches!(
            self,
            FaultResult::Reused | FaultResult::Copied | FaultResult::Spurious
        )
    }
}

/// Resolves a page fault at `addr` in the address space at `root`, whose
/// area at `addr` is `vma` (from [`VmaSet::find`]; growing a stack is the
/// caller's business). Like Linux's `handle_mm_fault`:
/// - no area, or one that forbids the access: `Segv`;
/// - no page: in an area that maps a file, `FileNoPage` (the caller
///   finds the file's page, then [`do_file_fault`] maps it); else a
///   zeroed frame, writable if the area is (`Mapped`);
/// - a write to a read-only page of a writable area: in a shared area,
///   or if the frame has no other user, make it writable (`Reused`);
///   else copy it to a new frame (`Copied`).
///
/// Shared anonymous areas must be populated before fork: a demand-zero
/// fault after it would give each process its own page.
pub fn handle_fault(
    ops: &mut impl MemoryOps,
    root: TablePage,
    addr: u64,
    access: Access,
    vma: Option<&Vma>,
) -> FaultResult {
    let Some(vma) = vma.filter(|vma| vma.contains(addr) && addr < USER_END) else {
        return FaultResult::Segv;
    };
    let allowed = if access.execute {
        vma.prot.contains(Prot::EXEC)
    } else if access.write {
        vma.prot.allows_write()
    } else {
        vma.prot.allows_read()
    };
    if !allowed {
        return FaultResult::Segv;
    }
    let page = addr / PAGE_SIZE * PAGE_SIZE;
    let (table, i) = match walk(ops, root, page, true) {
        Walk::Slot(table, i) => (table, i),
        Walk::OutOfMemory => return FaultResult::Oom,
        Walk::NoTable | Walk::Huge => return FaultResult::Segv,
    };
    let entry = ops.table(table)[i];
    if entry & flags::PRESENT == 0 {
        if vma.file.is_some() {
            return FaultResult::FileNoPage;
        }
        return do_anonymous_page(ops, table, i, vma.prot);
    }
    // The area allows the access, so a page without USER is a leftover of
    // PROT_NONE that `change_protection` did not revisit.
    let entry_with_user = entry | flags::USER;
    if access.write && entry & flags::WRITABLE == 0 {
        return do_wp_page(ops, table, i, entry_with_user, vma);
    }
    if entry_with_user != entry {
        ops.table(table)[i] = entry_with_user;
    }
    FaultResult::Spurious
}

/// Resolves a `FileNoPage` fault at `addr` in the file-backed `vma`: maps
/// `frame`, the file's page there (the caller holds the file's lock, so
/// it cannot go away before this takes its reference). A read maps it as
/// it is (read-only and copy-on-write in a private area), and so are the
/// `around` pages (address, file frame) the file already has in memory,
/// where nothing is mapped yet: Linux's fault-around, which spares a
/// fault per page of a library being read. A write to a private area maps
/// a copy at once (`do_cow_fault`); a shared area maps the file's frame
/// itself, so stores are what `read` and every other mapper see.
pub fn do_file_fault(
    ops: &mut impl MemoryOps,
    root: TablePage,
    vma: &Vma,
    addr: u64,
    access: Access,
    frame: DataFrame,
    around: &[(u64, DataFrame)],
) -> FaultResult {
    let page = addr / PAGE_SIZE * PAGE_SIZE;
    let private = !vma.is_shared();
    if access.write && private {
        let (table, i) = match walk(ops, root, page, true) {
            Walk::Slot(table, i) => (table, i),
            Walk::OutOfMemory => return FaultResult::Oom,
            Walk::NoTable | Walk::Huge => return FaultResult::Segv,
        };
        if ops.table(table)[i] & flags::PRESENT != 0 {
            return FaultResult::Spurious;
        }
        let Some(copy) = ops.alloc_data_frame() else {
            return FaultResult::Oom;
        };
        ops.copy_frame(copy, frame);
        ops.table(table)[i] = copy.phys() | leaf_flags(vma.prot, true);
        return FaultResult::FileMapped;
    }
    match map_frame(ops, root, page, frame, vma.prot, private) {
        Ok(true) => {}
        Ok(false) => return FaultResult::Spurious,
        Err(OutOfMemory) => return FaultResult::Oom,
    }
    for &(at, frame) in around {
        if at != page && vma.contains(at) {
            // Out of table pages here only means fewer pages mapped ahead.
            let _ = map_frame(ops, root, at, frame, vma.prot, private);
        }
    }
    FaultResult::FileMapped
}

/// Maps a zeroed frame at the empty PTE `table[i]`.
fn do_anonymous_page(
    ops: &mut impl MemoryOps,
    table: TablePage,
    i: usize,
    prot: Prot,
) -> FaultResult {
    let Some(frame) = ops.alloc_data_frame() else {
        return FaultResult::Oom;
    };
    ops.table(table)[i] = frame.phys() | leaf_flags(prot, true);
    FaultResult::Mapped
}

/// Handles a write to the present, read-only PTE `entry` at `table[i]`
/// in the writable area `vma`.
fn do_wp_page(
    ops: &mut impl MemoryOps,
    table: TablePage,
    i: usize,
    entry: u64,
    vma: &Vma,
) -> FaultResult {
    let old = entry & ADDRESS_MASK;
    let writable = (entry & !PTE_COW) | flags::WRITABLE;
    // wp_page_reuse: nobody else can see the frame (or all sharers should).
    if vma.is_shared() || ops.frame_refcount(old) == 1 {
        ops.table(table)[i] = writable;
        return FaultResult::Reused;
    }
    // wp_page_copy: a private copy for this address space.
    let Some(new) = ops.alloc_data_frame() else {
        return FaultResult::Oom;
    };
    ops.copy_frame(new, DataFrame::from_entry(entry));
    ops.table(table)[i] = (writable & !ADDRESS_MASK) | new.phys();
    ops.put_frame(old);
    FaultResult::Copied
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mm::paging::translate;
    use crate::mm::vma::VmaFlags;
    use std::collections::{HashMap, HashSet};

    const P: u64 = PAGE_SIZE;
    const RW: Prot = Prot::READ.union(Prot::WRITE);
    const ROOT: TablePage = TablePage::from_entry(0x1000);
    /// The kernel's PDPTs, hung from the root at PML4 128 and 256.
    const KERNEL_PDPT: u64 = 0x2000;
    const ALIAS_PDPT: u64 = 0x3000;
    const KERNEL_SLOTS: [(usize, u64); 2] = [(128, KERNEL_PDPT), (256, ALIAS_PDPT)];

    enum Contents {
        Table(Box<[u64; 512]>),
        Data(Box<[u8; 4096]>),
    }

    struct FakeFrame {
        refcount: u16,
        contents: Contents,
    }

    /// Table pages and data frames in a hash map, with reference counts
    /// and a budget of allocations left (to inject out-of-memory).
    struct FakeMemory {
        frames: HashMap<u64, FakeFrame>,
        /// Roots and kernel tables: not allocated through `MemoryOps`.
        permanent: HashSet<u64>,
        next: u64,
        budget: usize,
    }

    impl FakeMemory {
        fn new() -> Self {
            let mut mem = FakeMemory {
                frames: HashMap::new(),
                permanent: HashSet::new(),
                next: 0x10_0000,
                budget: usize::MAX,
            };
            for (_, pdpt) in KERNEL_SLOTS {
                mem.add_permanent_table(pdpt, [0xdead_b000 | flags::PRESENT; 512]);
            }
            let mut root = [0; 512];
            for (slot, pdpt) in KERNEL_SLOTS {
                root[slot] = pdpt | flags::PRESENT | flags::WRITABLE;
            }
            mem.add_permanent_table(ROOT.phys(), root);
            mem
        }

        fn add_permanent_table(&mut self, phys: u64, entries: [u64; 512]) {
            let frame = FakeFrame {
                refcount: 1,
                contents: Contents::Table(Box::new(entries)),
            };
            self.frames.insert(phys, frame);
            self.permanent.insert(phys);
        }

        /// A new root sharing the kernel entries, as fork creates one.
        fn new_root(&mut self) -> TablePage {
            let phys = self.next;
            self.next += P;
            let mut entries = [0; 512];
            entries[USER_PML4_ENTRIES..].copy_from_slice(&self.table(ROOT)[USER_PML4_ENTRIES..]);
            self.add_permanent_table(phys, entries);
            TablePage::from_entry(phys)
        }

        fn allocate(&mut self, contents: Contents) -> Option<u64> {
            if self.budget == 0 {
                return None;
            }
            self.budget -= 1;
            let phys = self.next;
            self.next += P;
            self.frames.insert(
                phys,
                FakeFrame {
                    refcount: 1,
                    contents,
                },
            );
            Some(phys)
        }

        fn frame(&self, phys: u64) -> &FakeFrame {
            self.frames
                .get(&phys)
                .unwrap_or_else(|| panic!("frame {phys:#x} is free"))
        }

        /// Frames allocated through `MemoryOps` and not freed.
        fn outstanding(&self) -> usize {
            self.frames.len() - self.permanent.len()
        }

        fn data_frames(&self) -> usize {
            let data = self.frames.values();
            data.filter(|f| matches!(f.contents, Contents::Data(_)))
                .count()
        }

        /// The kernel half of `root` and the kernel tables are as set up.
        fn assert_kernel_untouched(&mut self, root: TablePage) {
            for (slot, pdpt) in KERNEL_SLOTS {
                assert_eq!(
                    self.table(root)[slot],
                    pdpt | flags::PRESENT | flags::WRITABLE
                );
                assert_eq!(self.frame(pdpt).refcount, 1);
                assert!(self
                    .table(TablePage::from_entry(pdpt))
                    .iter()
                    .all(|&e| e == 0xdead_b000 | 1));
            }
            for slot in USER_PML4_ENTRIES..512 {
                if !KERNEL_SLOTS.iter().any(|&(s, _)| s == slot) {
                    assert_eq!(self.table(root)[slot], 0, "PML4 entry {slot}");
                }
            }
        }

        fn pte(&mut self, root: TablePage, addr: u64) -> Option<u64> {
            translate(self, root, addr)
        }

        fn refcount_at(&mut self, root: TablePage, addr: u64) -> u16 {
            let pte = self.pte(root, addr).expect("page not mapped");
            self.frame_refcount(pte & ADDRESS_MASK)
        }

        fn byte_at(&mut self, root: TablePage, addr: u64) -> u8 {
            let mut byte = [0];
            read_bytes(self, root, addr, &mut byte).unwrap();
            byte[0]
        }
    }

    impl TableAccess for FakeMemory {
        fn table(&mut self, page: TablePage) -> &mut [u64; 512] {
            let phys = page.phys();
            match self.frames.get_mut(&phys).map(|f| &mut f.contents) {
                Some(Contents::Table(table)) => table,
                _ => panic!("{phys:#x} is not a table page"),
            }
        }

        fn alloc_table(&mut self) -> Option<TablePage> {
            self.allocate(Contents::Table(Box::new([0; 512])))
                .map(TablePage::from_entry)
        }
    }

    impl MemoryOps for FakeMemory {
        fn alloc_data_frame(&mut self) -> Option<DataFrame> {
            self.allocate(Contents::Data(Box::new([0; 4096])))
                .map(DataFrame::from_entry)
        }

        fn get_frame(&mut self, phys: u64) {
            let frame = self.frames.get_mut(&phys).expect("get on a free frame");
            assert!(
                matches!(frame.contents, Contents::Data(_)),
                "get on a table"
            );
            frame.refcount += 1;
        }

        fn put_frame(&mut self, phys: u64) -> bool {
            assert!(!self.permanent.contains(&phys), "put on {phys:#x}");
            let frame = self.frames.get_mut(&phys).expect("put on a free frame");
            frame.refcount -= 1;
            if frame.refcount == 0 {
                self.frames.remove(&phys);
                return true;
            }
            false
        }

        fn frame_refcount(&self, phys: u64) -> u16 {
            self.frames.get(&phys).map_or(0, |f| f.refcount)
        }

        fn copy_frame(&mut self, dst: DataFrame, src: DataFrame) {
            let data = *self.frame_bytes(src);
            *self.frame_bytes(dst) = data;
        }

        fn read_frame(&mut self, frame: DataFrame, offset: usize, buf: &mut [u8]) {
            buf.copy_from_slice(&self.frame_bytes(frame)[offset..offset + buf.len()]);
        }

        fn write_frame(&mut self, frame: DataFrame, offset: usize, data: &[u8]) {
            self.frame_bytes(frame)[offset..offset + data.len()].copy_from_slice(data);
        }
    }

    impl FakeMemory {
        fn frame_bytes(&mut self, frame: DataFrame) -> &mut [u8; 4096] {
            let phys = frame.phys();
            match self.frames.get_mut(&phys).map(|f| &mut f.contents) {
                Some(Contents::Data(data)) => data,
                _ => panic!("{phys:#x} is not a data frame"),
            }
        }
    }

    fn private(start: u64, end: u64, prot: Prot) -> Vma {
        Vma::new(start, end, prot, VmaFlags::ANONYMOUS).unwrap()
    }

    fn shared(start: u64, end: u64, prot: Prot) -> Vma {
        let flags = VmaFlags::SHARED | VmaFlags::ANONYMOUS;
        Vma::new(start, end, prot, flags).unwrap()
    }

    const WRITE: Access = Access {
        write: true,
        user: true,
        present_fault: true,
        execute: false,
    };
    const READ: Access = Access {
        write: false,
        user: true,
        present_fault: false,
        execute: false,
    };
    const FETCH: Access = Access {
        write: false,
        user: true,
        present_fault: true,
        execute: true,
    };

    /// Populates `vma` in the root address space, page n holding byte n.
    fn parent_with(mem: &mut FakeMemory, vma: &Vma) {
        populate(mem, ROOT, vma.start, vma.end, vma.prot).unwrap();
        for (n, page) in (vma.start..vma.end).step_by(P as usize).enumerate() {
            write_bytes(mem, ROOT, page, &[n as u8; 8]).unwrap();
        }
    }

    #[test]
    fn an_unmap_that_frees_after_the_flush_keeps_its_last_references() {
        let mut mem = FakeMemory::new();
        let area = private(0x40_0000, 0x40_3000, RW);
        parent_with(&mut mem, &area);
        // A second reference on one frame (as a fork's child would hold).
        let shared = mem.pte(ROOT, 0x40_1000).unwrap() & ADDRESS_MASK;
        mem.get_frame(shared);
        let before = mem.outstanding();
        let mut deferring = FreeAfterFlush::new(&mut mem);
        let stats = unmap_range(&mut deferring, ROOT, 0x40_0000, 0x40_3000);
        let pending = deferring.into_pending();
        assert_eq!((stats.pages_unmapped, stats.pages_freed), (3, 2));
        assert_eq!(count_present(&mut mem, ROOT, 0, USER_END), 0);
        // Nothing freed yet; the shared frame keeps its unmapped reference
        // until the flush, so its other holder cannot reuse it in place.
        assert_eq!(mem.outstanding(), before);
        assert_eq!(mem.frame_refcount(shared), 2);
        pending.free(&mut mem);
        // Two data frames and the emptied PT, PD and PDPT.
        assert_eq!(mem.outstanding(), before - 2 - 3);
        assert_eq!(mem.frame_refcount(shared), 1);
    }

    #[test]
    fn access_from_error_code() {
        assert_eq!(
            Access::from_error_code(0b111),
            Access {
                write: true,
                user: true,
                present_fault: true,
                execute: false
            }
        );
        assert_eq!(Access::from_error_code(0), Access::default());
        assert!(Access::from_error_code(2).write);
        assert!(Access::from_error_code(0x15).execute);
    }

    #[test]
    fn instruction_fetch_needs_exec_rights() {
        let mut mem = FakeMemory::new();
        let data = private(0x40_0000, 0x40_1000, RW);
        parent_with(&mut mem, &data);
        assert_eq!(
            handle_fault(&mut mem, ROOT, 0x40_0000, FETCH, Some(&data)),
            FaultResult::Segv
        );
        let code = private(0x40_0000, 0x40_1000, Prot::READ | Prot::EXEC);
        assert_ne!(
            handle_fault(&mut mem, ROOT, 0x40_0000, FETCH, Some(&code)),
            FaultResult::Segv
        );
    }

    #[test]
    fn resident_pages_and_tables_are_counted() {
        let mut mem = FakeMemory::new();
        assert_eq!(table_pages(&mut mem, ROOT), 1);
        populate(&mut mem, ROOT, 0x40_0000, 0x40_3000, RW).unwrap();
        populate(&mut mem, ROOT, 1 << 30, (1 << 30) + P, RW).unwrap();
        assert_eq!(count_present(&mut mem, ROOT, 0, USER_END), 4);
        assert_eq!(count_present(&mut mem, ROOT, 0x40_1000, 0x40_3000), 2);
        assert_eq!(count_present(&mut mem, ROOT, 0x50_0000, 0x60_0000), 0);
        // Root, one PDPT, two PDs (0 and 1 GiB), two PTs.
        assert_eq!(table_pages(&mut mem, ROOT), 6);
    }

    #[test]
    fn populate_maps_zeroed_pages_with_the_rights() {
        let mut mem = FakeMemory::new();
        let mapped = populate(&mut mem, ROOT, 0x40_0000, 0x40_3000, RW).unwrap();
        assert_eq!(mapped, 3);
        // Already mapped pages are kept.
        assert_eq!(populate(&mut mem, ROOT, 0x40_0000, 0x40_3000, RW), Ok(0));
        let pte = mem.pte(ROOT, 0x40_1000).unwrap();
        assert_eq!(
            pte & !ADDRESS_MASK,
            flags::PRESENT | flags::USER | flags::WRITABLE
        );
        assert_eq!(mem.byte_at(ROOT, 0x40_1fff), 0);
        populate(&mut mem, ROOT, 0x80_0000, 0x80_1000, Prot::READ).unwrap();
        let pte = mem.pte(ROOT, 0x80_0000).unwrap();
        assert_eq!(pte & !ADDRESS_MASK, flags::PRESENT | flags::USER);
        populate(&mut mem, ROOT, 0x60_0000, 0x60_1000, Prot::NONE).unwrap();
        let pte = mem.pte(ROOT, 0x60_0000).unwrap();
        assert_eq!(pte & !ADDRESS_MASK, flags::PRESENT);
        // 5 data pages, one PDPT + PD, one PT per 2 MiB.
        assert_eq!(mem.outstanding(), 5 + 2 + 3);
    }

    #[test]
    fn map_frame_shares_a_file_page_private_copies_on_write() {
        use crate::mm::vma::VmaFlags;
        let mut mem = FakeMemory::new();
        // A page-cache frame: the file holds one reference.
        let file_frame = mem.alloc_data_frame().unwrap();
        let file_page = file_frame.phys();
        mem.frame_bytes(file_frame)[0] = 7;
        // Private, writable: read-only + COW, another reference.
        assert_eq!(
            map_frame(&mut mem, ROOT, 0x40_0000, file_frame, RW, true),
            Ok(true)
        );
        let pte = mem.pte(ROOT, 0x40_0000).unwrap();
        assert_eq!(pte & ADDRESS_MASK, file_page);
        assert_eq!(pte & (flags::WRITABLE | PTE_COW), PTE_COW);
        assert_eq!(mem.frame_refcount(file_page), 2);
        assert_eq!(mem.byte_at(ROOT, 0x40_0000), 7);
        // An occupied slot is left alone.
        assert_eq!(
            map_frame(&mut mem, ROOT, 0x40_0000, file_frame, RW, true),
            Ok(false)
        );
        assert_eq!(mem.frame_refcount(file_page), 2);
        // The first store copies: the file's page keeps its byte.
        let private = Vma::new(0x40_0000, 0x40_1000, RW, VmaFlags::PRIVATE).unwrap();
        let result = handle_fault(&mut mem, ROOT, 0x40_0000, WRITE, Some(&private));
        assert_eq!(result, FaultResult::Copied);
        assert_ne!(mem.pte(ROOT, 0x40_0000).unwrap() & ADDRESS_MASK, file_page);
        assert_eq!(mem.frame_refcount(file_page), 1);
        // Shared: writable in place.
        assert_eq!(
            map_frame(&mut mem, ROOT, 0x80_0000, file_frame, RW, false),
            Ok(true)
        );
        let pte = mem.pte(ROOT, 0x80_0000).unwrap();
        assert_eq!(pte & (flags::WRITABLE | PTE_COW), flags::WRITABLE);
        // Unmapping drops only the mappings' references.
        unmap_range(&mut mem, ROOT, 0x40_0000, 0x80_1000);
        assert_eq!(mem.frame_refcount(file_page), 1);
        assert!(mem.put_frame(file_page));
    }

    #[test]
    fn write_and_read_bytes_across_pages() {
        let mut mem = FakeMemory::new();
        populate(&mut mem, ROOT, 0x40_0000, 0x40_2000, Prot::READ).unwrap();
        let data: Vec<u8> = (0..100).collect();
        assert_eq!(write_bytes(&mut mem, ROOT, 0x40_0fce, &data), Ok(0));
        let mut back = [0; 100];
        read_bytes(&mut mem, ROOT, 0x40_0fce, &mut back).unwrap();
        assert_eq!(back[..], data[..]);
        assert_eq!(mem.byte_at(ROOT, 0x40_1000), 50);
        assert_eq!(write_bytes(&mut mem, ROOT, 0x40_0000, &[]), Ok(0));

        let unmapped = Err(UserCopyError::Unmapped);
        assert_eq!(write_bytes(&mut mem, ROOT, 0x40_1fff, &[1, 2]), unmapped);
        let read = read_bytes(&mut mem, ROOT, 0x30_0000, &mut back);
        assert_eq!(read, Err(UserCopyError::Unmapped));
        assert_eq!(write_bytes(&mut mem, ROOT, USER_END, &[1]), unmapped);
        assert_eq!(write_bytes(&mut mem, ROOT, u64::MAX, &[1, 2]), unmapped);
        mem.assert_kernel_untouched(ROOT);
    }

    #[test]
    fn fork_shares_frames_and_write_protects_private_pages() {
        let mut mem = FakeMemory::new();
        let vma = private(0x40_0000, 0x40_4000, RW);
        parent_with(&mut mem, &vma);
        let child = mem.new_root();
        assert_eq!(copy_page_range(&mut mem, ROOT, child, &vma), Ok(4));
        for page in (vma.start..vma.end).step_by(P as usize) {
            let parent_pte = mem.pte(ROOT, page).unwrap();
            let child_pte = mem.pte(child, page).unwrap();
            assert_eq!(parent_pte, child_pte);
            assert_eq!(parent_pte & (flags::WRITABLE | PTE_COW), PTE_COW);
            assert_eq!(mem.refcount_at(ROOT, page), 2);
        }
        assert_eq!(mem.byte_at(child, 0x40_3000), 3);
        // Data frames are shared; the child got its own PDPT, PD and PT.
        assert_eq!(mem.data_frames(), 4);
        assert_eq!(mem.outstanding(), 4 + 3 + 3);
        mem.assert_kernel_untouched(ROOT);
        mem.assert_kernel_untouched(child);
    }

    #[test]
    fn eager_copy_unshares_one_page_for_both_sides() {
        let mut mem = FakeMemory::new();
        let vma = private(0x40_0000, 0x40_4000, RW);
        parent_with(&mut mem, &vma);
        let child = mem.new_root();
        copy_page_range(&mut mem, ROOT, child, &vma).unwrap();
        assert_eq!(
            copy_page_eagerly(&mut mem, ROOT, child, 0x40_2ff8),
            Ok(true)
        );
        let (parent_pte, child_pte) = (
            mem.pte(ROOT, 0x40_2000).unwrap(),
            mem.pte(child, 0x40_2000).unwrap(),
        );
        assert_ne!(
            parent_pte & ADDRESS_MASK,
            child_pte & ADDRESS_MASK,
            "two frames now"
        );
        for pte in [parent_pte, child_pte] {
            assert_eq!(
                pte & (flags::WRITABLE | PTE_COW),
                flags::WRITABLE,
                "both writable, no COW"
            );
        }
        assert_eq!(mem.refcount_at(ROOT, 0x40_2000), 1);
        assert_eq!(mem.refcount_at(child, 0x40_2000), 1);
        assert_eq!(
            mem.byte_at(child, 0x40_2000),
            mem.byte_at(ROOT, 0x40_2000),
            "same contents"
        );
        // The other pages stay shared; a second call is a no-op.
        assert_eq!(mem.refcount_at(ROOT, 0x40_1000), 2);
        assert_eq!(
            copy_page_eagerly(&mut mem, ROOT, child, 0x40_2000),
            Ok(false)
        );
        // Unmapped addresses and kernel addresses are left alone.
        assert_eq!(
            copy_page_eagerly(&mut mem, ROOT, child, 0x90_0000),
            Ok(false)
        );
        assert_eq!(
            copy_page_eagerly(&mut mem, ROOT, child, 0x4000_0000_0000),
            Ok(false)
        );
        free_page_tables(&mut mem, child);
        free_page_tables(&mut mem, ROOT);
        assert_eq!(mem.data_frames(), 0, "no frame leaked");
    }

    #[test]
    fn cow_write_copies_once_then_the_last_writer_reuses() {
        let mut mem = FakeMemory::new();
        let vma = private(0x40_0000, 0x40_2000, RW);
        parent_with(&mut mem, &vma);
        let child = mem.new_root();
        copy_page_range(&mut mem, ROOT, child, &vma).unwrap();
        let shared_frame = mem.pte(ROOT, 0x40_1000).unwrap() & ADDRESS_MASK;

        // The parent writes first: it gets a copy.
        let result = handle_fault(&mut mem, ROOT, 0x40_1234, WRITE, Some(&vma));
        assert_eq!(result, FaultResult::Copied);
        assert!(result.needs_flush());
        let parent_pte = mem.pte(ROOT, 0x40_1000).unwrap();
        assert_ne!(parent_pte & ADDRESS_MASK, shared_frame);
        assert_eq!(parent_pte & (flags::WRITABLE | PTE_COW), flags::WRITABLE);
        assert_eq!(mem.frame_refcount(parent_pte & ADDRESS_MASK), 1);
        assert_eq!(mem.frame_refcount(shared_frame), 1);
        assert_eq!(mem.byte_at(ROOT, 0x40_1000), 1, "the copy has the contents");
        write_bytes(&mut mem, ROOT, 0x40_1000, &[0xaa]).unwrap();
        assert_eq!(mem.byte_at(child, 0x40_1000), 1, "the child is unaffected");

        // The child is now the frame's only user: no second copy.
        let result = handle_fault(&mut mem, child, 0x40_1000, WRITE, Some(&vma));
        assert_eq!(result, FaultResult::Reused);
        let child_pte = mem.pte(child, 0x40_1000).unwrap();
        assert_eq!(child_pte & ADDRESS_MASK, shared_frame);
        assert_eq!(child_pte & (flags::WRITABLE | PTE_COW), flags::WRITABLE);
        assert_eq!(mem.frame_refcount(shared_frame), 1);
        assert_eq!(mem.data_frames(), 3);

        // A second write by either side is spurious.
        let result = handle_fault(&mut mem, child, 0x40_1000, WRITE, Some(&vma));
        assert_eq!(result, FaultResult::Spurious);
        // The untouched page is still shared.
        assert_eq!(mem.refcount_at(ROOT, 0x40_0000), 2);
        assert_eq!(mem.refcount_at(child, 0x40_0000), 2);
    }

    #[test]
    fn shared_areas_stay_writable_and_shared() {
        let mut mem = FakeMemory::new();
        let vma = shared(0x40_0000, 0x40_2000, RW);
        parent_with(&mut mem, &vma);
        let child = mem.new_root();
        assert_eq!(copy_page_range(&mut mem, ROOT, child, &vma), Ok(0));
        let pte = mem.pte(child, 0x40_0000).unwrap();
        assert_eq!(pte & (flags::WRITABLE | PTE_COW), flags::WRITABLE);
        assert_eq!(mem.pte(ROOT, 0x40_0000), Some(pte));
        assert_eq!(mem.refcount_at(ROOT, 0x40_0000), 2);
        write_bytes(&mut mem, child, 0x40_0000, &[0x77]).unwrap();
        assert_eq!(mem.byte_at(ROOT, 0x40_0000), 0x77);
        // A read-only shared page made writable is not copied either.
        change_protection(&mut mem, ROOT, &shared(0x40_0000, 0x40_2000, Prot::READ));
        let result = handle_fault(&mut mem, ROOT, 0x40_0000, WRITE, Some(&vma));
        assert_eq!(result, FaultResult::Reused);
        assert_eq!(mem.refcount_at(ROOT, 0x40_0000), 2);
    }

    #[test]
    fn read_only_private_pages_are_marked_cow_without_write_protecting() {
        let mut mem = FakeMemory::new();
        let vma = private(0x40_0000, 0x40_1000, Prot::READ);
        parent_with(&mut mem, &vma);
        let child = mem.new_root();
        assert_eq!(copy_page_range(&mut mem, ROOT, child, &vma), Ok(0));
        assert_ne!(mem.pte(child, 0x40_0000).unwrap() & PTE_COW, 0);
        // mprotect(RW) in the child keeps the shared frame read-only...
        let writable = private(0x40_0000, 0x40_1000, RW);
        assert_eq!(change_protection(&mut mem, child, &writable), 0);
        let pte = mem.pte(child, 0x40_0000).unwrap();
        assert_eq!(pte & (flags::WRITABLE | PTE_COW), PTE_COW);
        // ...so the write copies instead of scribbling on the parent's page.
        let result = handle_fault(&mut mem, child, 0x40_0000, WRITE, Some(&writable));
        assert_eq!(result, FaultResult::Copied);
        write_bytes(&mut mem, child, 0x40_0000, &[9]).unwrap();
        assert_eq!(mem.byte_at(ROOT, 0x40_0000), 0);
        // The parent's frame is exclusive again: mprotect(RW) makes it writable.
        assert_eq!(change_protection(&mut mem, ROOT, &writable), 1);
        let pte = mem.pte(ROOT, 0x40_0000).unwrap();
        assert_eq!(pte & (flags::WRITABLE | PTE_COW), flags::WRITABLE);
    }

    #[test]
    fn change_protection_to_none_and_back() {
        let mut mem = FakeMemory::new();
        let vma = private(0x40_0000, 0x40_2000, RW);
        parent_with(&mut mem, &vma);
        let none = private(0x40_0000, 0x40_2000, Prot::NONE);
        assert_eq!(change_protection(&mut mem, ROOT, &none), 2);
        let pte = mem.pte(ROOT, 0x40_0000).unwrap();
        assert_eq!(pte & !ADDRESS_MASK, flags::PRESENT);
        assert_eq!(
            handle_fault(&mut mem, ROOT, 0x40_0000, READ, Some(&none)),
            FaultResult::Segv
        );
        // Contents survive PROT_NONE.
        assert_eq!(change_protection(&mut mem, ROOT, &vma), 2);
        assert_eq!(mem.byte_at(ROOT, 0x40_1000), 1);
        let pte = mem.pte(ROOT, 0x40_1000).unwrap();
        assert_eq!(
            pte & !ADDRESS_MASK,
            flags::PRESENT | flags::USER | flags::WRITABLE
        );
        // Nothing mapped: nothing changed, and tables are not created.
        let outstanding = mem.outstanding();
        let far = private(0x8000_0000, 0x8040_0000, RW);
        assert_eq!(change_protection(&mut mem, ROOT, &far), 0);
        assert_eq!(mem.outstanding(), outstanding);
        // A PROT_NONE leftover the fault path meets is fixed up.
        change_protection(&mut mem, ROOT, &none);
        let result = handle_fault(&mut mem, ROOT, 0x40_0000, READ, Some(&vma));
        assert_eq!(result, FaultResult::Spurious);
        assert_ne!(mem.pte(ROOT, 0x40_0000).unwrap() & flags::USER, 0);
    }

    #[test]
    fn write_bytes_breaks_cow_sharing() {
        let mut mem = FakeMemory::new();
        let vma = private(0x40_0000, 0x40_1000, RW);
        parent_with(&mut mem, &vma);
        let child = mem.new_root();
        copy_page_range(&mut mem, ROOT, child, &vma).unwrap();
        assert_eq!(write_bytes(&mut mem, child, 0x40_0000, &[5]), Ok(1));
        assert_eq!(mem.byte_at(child, 0x40_0000), 5);
        assert_eq!(mem.byte_at(ROOT, 0x40_0000), 0);
        assert_eq!(mem.refcount_at(ROOT, 0x40_0000), 1);
        assert_eq!(mem.refcount_at(child, 0x40_0000), 1);
        // Out of memory while breaking the share.
        let vma = private(0x50_0000, 0x50_1000, RW);
        parent_with(&mut mem, &vma);
        copy_page_range(&mut mem, ROOT, child, &vma).unwrap();
        mem.budget = 0;
        let result = write_bytes(&mut mem, child, 0x50_0000, &[5]);
        assert_eq!(result, Err(UserCopyError::OutOfMemory));
        assert_eq!(mem.refcount_at(ROOT, 0x50_0000), 2);
    }

    #[test]
    fn demand_zero_follows_the_area_rights() {
        let mut mem = FakeMemory::new();
        let ro = private(0x40_0000, 0x40_2000, Prot::READ);
        let result = handle_fault(&mut mem, ROOT, 0x40_0010, READ, Some(&ro));
        assert_eq!(result, FaultResult::Mapped);
        assert!(!result.needs_flush());
        let pte = mem.pte(ROOT, 0x40_0000).unwrap();
        assert_eq!(pte & !ADDRESS_MASK, flags::PRESENT | flags::USER);
        assert_eq!(mem.byte_at(ROOT, 0x40_0010), 0);
        // Writes to a read-only area are refused, mapped or not.
        for addr in [0x40_0000, 0x40_1000] {
            let result = handle_fault(&mut mem, ROOT, addr, WRITE, Some(&ro));
            assert_eq!(result, FaultResult::Segv);
        }
        assert_eq!(mem.pte(ROOT, 0x40_1000), None);
        // A write to a writable area maps a writable page straight away.
        let rw = private(0x40_2000, 0x40_3000, RW);
        let result = handle_fault(&mut mem, ROOT, 0x40_2000, WRITE, Some(&rw));
        assert_eq!(result, FaultResult::Mapped);
        let pte = mem.pte(ROOT, 0x40_2000).unwrap();
        assert_ne!(pte & flags::WRITABLE, 0);
        assert_eq!(mem.refcount_at(ROOT, 0x40_2000), 1);
    }

    #[test]
    fn faults_outside_an_area_are_segv() {
        let mut mem = FakeMemory::new();
        let vma = private(0x40_0000, 0x40_1000, RW);
        let segv = FaultResult::Segv;
        assert_eq!(handle_fault(&mut mem, ROOT, 0x40_0000, READ, None), segv);
        // An area that does not contain the address (a caller bug) is none.
        let elsewhere = handle_fault(&mut mem, ROOT, 0x40_1000, READ, Some(&vma));
        assert_eq!(elsewhere, segv);
        let none = private(0x40_0000, 0x40_1000, Prot::NONE);
        assert_eq!(
            handle_fault(&mut mem, ROOT, 0x40_0000, READ, Some(&none)),
            segv
        );
        // Kernel addresses, even with a forged area.
        let forged = Vma {
            start: USER_END,
            end: USER_END + 0x1000,
            prot: RW,
            flags: VmaFlags::ANONYMOUS,
            file: None,
        };
        assert_eq!(
            handle_fault(&mut mem, ROOT, USER_END, WRITE, Some(&forged)),
            segv
        );
        assert_eq!(mem.outstanding(), 0);
        mem.assert_kernel_untouched(ROOT);
    }

    #[test]
    fn faults_out_of_memory() {
        let vma = private(0x40_0000, 0x40_2000, RW);
        // No frame for a table, then none for the page.
        for budget in 0..4 {
            let mut mem = FakeMemory::new();
            mem.budget = budget;
            let result = handle_fault(&mut mem, ROOT, 0x40_0000, WRITE, Some(&vma));
            assert_eq!(result, FaultResult::Oom);
            assert_eq!(mem.pte(ROOT, 0x40_0000), None);
            free_page_tables(&mut mem, ROOT);
            assert_eq!(mem.outstanding(), 0);
        }
        let mut mem = FakeMemory::new();
        parent_with(&mut mem, &vma);
        let child = mem.new_root();
        copy_page_range(&mut mem, ROOT, child, &vma).unwrap();
        let before = mem.pte(ROOT, 0x40_0000);
        mem.budget = 0;
        let result = handle_fault(&mut mem, ROOT, 0x40_0000, WRITE, Some(&vma));
        assert_eq!(result, FaultResult::Oom);
        assert_eq!(mem.pte(ROOT, 0x40_0000), before);
        assert_eq!(mem.refcount_at(ROOT, 0x40_0000), 2);
    }

    #[test]
    fn move_page_range_keeps_frames_and_cow() {
        let mut mem = FakeMemory::new();
        populate(&mut mem, ROOT, 0x10_0000, 0x10_3000, RW).unwrap();
        write_bytes(&mut mem, ROOT, 0x10_1000, &[42]).unwrap();
        // Share the pages with a child: they become COW on both sides.
        let child = mem.new_root();
        copy_page_range(&mut mem, ROOT, child, &private(0x10_0000, 0x10_3000, RW)).unwrap();
        let frame = mem.pte(ROOT, 0x10_1000).unwrap() & ADDRESS_MASK;
        let before = mem.outstanding();
        // Across a 2 MiB boundary: the target needs two new PTs.
        let moved = move_page_range(&mut mem, ROOT, 0x10_0000, 0x10_3000, 0x5f_f000).unwrap();
        assert_eq!(moved, 3);
        assert_eq!(mem.pte(ROOT, 0x10_1000), None);
        let entry = mem.pte(ROOT, 0x60_0000).unwrap();
        assert_eq!(entry & ADDRESS_MASK, frame, "the same frame, not a copy");
        assert_ne!(entry & PTE_COW, 0, "still copy-on-write");
        assert_eq!(mem.refcount_at(ROOT, 0x60_0000), 2);
        assert_eq!(mem.byte_at(ROOT, 0x60_0000), 42);
        assert_eq!(
            mem.outstanding(),
            before + 2,
            "two new tables, no new frame"
        );
        // The old range's emptied tables go with an unmap, no page with it.
        let stats = unmap_range(&mut mem, ROOT, 0x10_0000, 0x10_3000);
        assert_eq!(stats.pages_unmapped, 0);
        assert_eq!(stats.tables_freed, 1);
        // A write in the moved range copies, leaving the child's page alone.
        let vma = private(0x5f_f000, 0x60_2000, RW);
        let result = handle_fault(&mut mem, ROOT, 0x60_0000, WRITE, Some(&vma));
        assert_eq!(result, FaultResult::Copied);
        assert_eq!(mem.refcount_at(child, 0x10_1000), 1);
    }

    #[test]
    fn present_pages_reports_mapped_pages() {
        let mut mem = FakeMemory::new();
        populate(&mut mem, ROOT, 0x20_1000, 0x20_2000, RW).unwrap();
        populate(&mut mem, ROOT, 0x20_3000, 0x20_4000, RW).unwrap();
        assert_eq!(present_pages(&mut mem, ROOT, 0x20_0000, 0x20_5000), 0b1010);
        assert_eq!(present_pages(&mut mem, ROOT, 0x4000_0000, 0x4000_2000), 0);
    }

    #[test]
    fn unmap_frees_pages_and_empty_tables() {
        let mut mem = FakeMemory::new();
        // Two pages on each side of a 2 MiB boundary: two PTs.
        populate(&mut mem, ROOT, 0x5f_e000, 0x60_2000, RW).unwrap();
        assert_eq!(mem.outstanding(), 4 + 4);
        let stats = unmap_range(&mut mem, ROOT, 0x5f_e000, 0x60_0000);
        assert_eq!(
            stats,
            UnmapStats {
                pages_unmapped: 2,
                pages_freed: 2,
                tables_freed: 1
            }
        );
        assert!(stats.needs_flush());
        assert_eq!(mem.pte(ROOT, 0x5f_e000), None);
        assert!(mem.pte(ROOT, 0x60_0000).is_some());
        // A partly emptied table stays.
        let stats = unmap_range(&mut mem, ROOT, 0x60_1000, 0x60_2000);
        assert_eq!(stats.tables_freed, 0);
        // Unmapping a hole does nothing.
        let stats = unmap_range(&mut mem, ROOT, 0x1000_0000, 0x2000_0000);
        assert_eq!(stats, UnmapStats::default());
        assert!(!stats.needs_flush());
        // The last page takes the PT, PD and PDPT with it; the root stays.
        let stats = unmap_range(&mut mem, ROOT, 0x60_0000, 0x60_1000);
        assert_eq!(stats.tables_freed, 3);
        assert_eq!(mem.outstanding(), 0);
        assert!(mem.table(ROOT)[..USER_PML4_ENTRIES].iter().all(|&e| e == 0));
        mem.assert_kernel_untouched(ROOT);
    }

    #[test]
    fn unmapping_a_shared_frame_only_drops_a_reference() {
        let mut mem = FakeMemory::new();
        let vma = private(0x40_0000, 0x40_3000, RW);
        parent_with(&mut mem, &vma);
        let child = mem.new_root();
        copy_page_range(&mut mem, ROOT, child, &vma).unwrap();
        let stats = unmap_range(&mut mem, ROOT, vma.start, vma.end);
        assert_eq!(stats.pages_unmapped, 3);
        assert_eq!(stats.pages_freed, 0);
        assert_eq!(mem.refcount_at(child, 0x40_2000), 1);
        assert_eq!(mem.byte_at(child, 0x40_2000), 2);
        // The child's write now reuses its frame.
        let result = handle_fault(&mut mem, child, 0x40_2000, WRITE, Some(&vma));
        assert_eq!(result, FaultResult::Reused);
    }

    /// A small parent: 3 writable private pages, a read-only private one
    /// and a shared writable one.
    fn small_parent(mem: &mut FakeMemory) -> (VmaSet, [Vma; 3]) {
        let areas = [
            private(0x40_0000, 0x40_3000, RW),
            private(0x1000, 0x2000, Prot::READ),
            shared(0x2000_0000_0000, 0x2000_0000_1000, RW),
        ];
        let mut vmas = VmaSet::new();
        for vma in &areas {
            parent_with(mem, vma);
            vmas.insert(vma.clone()).unwrap();
        }
        (vmas, areas)
    }

    #[test]
    fn dup_mmap_copies_the_writable_pages_of_a_small_parent() {
        let mut mem = FakeMemory::new();
        let (vmas, areas) = small_parent(&mut mem);
        let pages = [0x40_0000, 0x40_1000, 0x40_2000, 0x1000, 0x2000_0000_0000];
        let before: Vec<u64> = pages.iter().map(|&a| mem.pte(ROOT, a).unwrap()).collect();
        let child = mem.new_root();
        // Nothing write-protected: the parent's writable PTEs are untouched
        // (the read-only page only gains the software bit PTE_COW).
        assert_eq!(dup_mmap(&mut mem, &vmas, ROOT, child, 3), Ok(0));
        let after: Vec<u64> = pages.iter().map(|&a| mem.pte(ROOT, a).unwrap()).collect();
        assert_eq!(before[..3], after[..3]);
        assert_eq!(before[3] | PTE_COW, after[3]);
        assert_eq!(before[4], after[4]);
        for (n, &page) in pages[..3].iter().enumerate() {
            let pte = mem.pte(child, page).unwrap();
            assert_ne!(pte & ADDRESS_MASK, before[n] & ADDRESS_MASK, "{page:#x}");
            assert_eq!(pte & !ADDRESS_MASK, before[n] & !ADDRESS_MASK, "{page:#x}");
            assert_eq!(mem.byte_at(child, page), n as u8);
        }
        // The child's copies are its own: a write shows on one side only.
        write_bytes(&mut mem, child, 0x40_1000, &[0xaa]).unwrap();
        assert_eq!(mem.byte_at(ROOT, 0x40_1000), 1);
        assert_eq!(
            handle_fault(&mut mem, child, 0x40_2000, WRITE, Some(&areas[0])),
            FaultResult::Spurious
        );
        // The read-only page is shared copy-on-write, the shared one as is.
        let read_only = mem.pte(child, 0x1000).unwrap();
        assert_eq!(read_only & ADDRESS_MASK, before[3] & ADDRESS_MASK);
        assert_ne!(read_only & PTE_COW, 0);
        assert_eq!(mem.pte(child, 0x2000_0000_0000), Some(before[4]));
        free_page_tables(&mut mem, child);
        free_page_tables(&mut mem, ROOT);
        assert_eq!(mem.outstanding(), 0);
        mem.assert_kernel_untouched(child);
    }

    #[test]
    fn dup_mmap_shares_copy_on_write_above_the_copy_limit() {
        let mut mem = FakeMemory::new();
        let (vmas, areas) = small_parent(&mut mem);
        let child = mem.new_root();
        assert_eq!(dup_mmap(&mut mem, &vmas, ROOT, child, 2), Ok(3));
        let parent = mem.pte(ROOT, 0x40_0000).unwrap();
        assert_eq!(mem.pte(child, 0x40_0000), Some(parent));
        assert_eq!(parent & (flags::WRITABLE | PTE_COW), PTE_COW);
        assert_eq!(
            handle_fault(&mut mem, child, 0x40_0000, WRITE, Some(&areas[0])),
            FaultResult::Copied
        );
        free_page_tables(&mut mem, child);
        free_page_tables(&mut mem, ROOT);
        assert_eq!(mem.outstanding(), 0);
    }

    #[test]
    fn dup_mmap_copying_out_of_memory_at_every_allocation() {
        let mut succeeded = false;
        for budget in 0.. {
            let mut mem = FakeMemory::new();
            let (vmas, _) = small_parent(&mut mem);
            let parent_frames = mem.outstanding();
            let before = mem.pte(ROOT, 0x40_0000);
            let child = mem.new_root();
            mem.budget = budget;
            let result = dup_mmap(&mut mem, &vmas, ROOT, child, 3);
            mem.budget = usize::MAX;
            // The parent is never write-protected, even half way.
            assert_eq!(mem.pte(ROOT, 0x40_0000), before, "budget {budget}");
            free_page_tables(&mut mem, child);
            assert_eq!(mem.outstanding(), parent_frames, "budget {budget}");
            free_page_tables(&mut mem, ROOT);
            assert_eq!(mem.outstanding(), 0, "budget {budget}");
            if result.is_ok() {
                succeeded = true;
                // Tables: a shared PDPT and PD and a PT each for the first
                // two areas, 3 for the shared one; and the 3 copies.
                assert_eq!(budget, 4 + 3 + 3, "budget {budget}");
                break;
            }
            assert_eq!(result, Err(OutOfMemory));
        }
        assert!(succeeded);
    }

    #[test]
    fn an_emptied_tree_is_filled_again_by_the_next_fork() {
        let mut mem = FakeMemory::new();
        let (vmas, _) = small_parent(&mut mem);
        let parent_frames = mem.outstanding();
        let child = mem.new_root();
        dup_mmap(&mut mem, &vmas, ROOT, child, 0).unwrap();
        let tables = mem.outstanding() - parent_frames;
        let (stats, kept) = unmap_pages_keep_tables(&mut mem, child);
        assert_eq!(stats.pages_unmapped, 5);
        assert_eq!(stats.pages_freed, 0);
        assert_eq!(kept, tables as u64);
        assert_eq!(mem.outstanding(), parent_frames + tables);
        for page in [0x1000, 0x40_0000, 0x2000_0000_0000] {
            assert_eq!(mem.pte(child, page), None);
        }
        // Forking into it again allocates no table and maps the same.
        assert_eq!(dup_mmap(&mut mem, &vmas, ROOT, child, 0), Ok(0));
        assert_eq!(mem.outstanding(), parent_frames + tables);
        assert_eq!(mem.pte(child, 0x40_0000), mem.pte(ROOT, 0x40_0000));
        assert_eq!(mem.byte_at(child, 0x40_2000), 2);
        free_page_tables(&mut mem, child);
        free_page_tables(&mut mem, ROOT);
        assert_eq!(mem.outstanding(), 0);
        mem.assert_kernel_untouched(child);
    }

    #[test]
    fn free_page_tables_leaves_nothing_behind() {
        let mut mem = FakeMemory::new();
        let areas = [
            private(0x40_0000, 0x40_5000, RW),
            shared(0x2000_0000_0000, 0x2000_0000_2000, RW),
            private(0x3fff_ffff_e000, USER_END, RW),
            private(0x1000, 0x2000, Prot::READ),
        ];
        let mut vmas = VmaSet::new();
        for vma in &areas {
            parent_with(&mut mem, vma);
            vmas.insert(vma.clone()).unwrap();
        }
        let child = mem.new_root();
        // The writable private pages; the last area is read-only.
        assert_eq!(dup_mmap(&mut mem, &vmas, ROOT, child, 0), Ok(5 + 2));
        handle_fault(&mut mem, ROOT, 0x40_0000, WRITE, Some(&areas[0]));
        handle_fault(&mut mem, child, 0x40_1000, WRITE, Some(&areas[0]));
        handle_fault(
            &mut mem,
            child,
            0x50_0000,
            READ,
            Some(&private(0x50_0000, 0x50_1000, RW)),
        );
        let stats = free_page_tables(&mut mem, child);
        assert_eq!(stats.pages_unmapped, 5 + 2 + 2 + 1 + 1);
        // The child's two copies and the page the parent no longer maps.
        assert_eq!(stats.pages_freed, 3);
        free_page_tables(&mut mem, ROOT);
        assert_eq!(mem.outstanding(), 0);
        mem.assert_kernel_untouched(ROOT);
        mem.assert_kernel_untouched(child);
    }

    #[test]
    fn copy_page_range_out_of_memory_at_every_allocation() {
        let areas = [
            private(0x40_0000, 0x40_3000, RW),
            private(0x7f_ffff_f000, 0x80_0000_1000, RW),
            shared(0x1_0000_0000, 0x1_0000_1000, RW),
        ];
        let mut vmas = VmaSet::new();
        areas
            .iter()
            .for_each(|vma| vmas.insert(vma.clone()).unwrap());
        let mut succeeded = false;
        for budget in 0.. {
            let mut mem = FakeMemory::new();
            for vma in &areas {
                parent_with(&mut mem, vma);
            }
            let parent_frames = mem.outstanding();
            let child = mem.new_root();
            mem.budget = budget;
            let result = dup_mmap(&mut mem, &vmas, ROOT, child, 0);
            mem.budget = usize::MAX;
            free_page_tables(&mut mem, child);
            assert_eq!(mem.outstanding(), parent_frames, "budget {budget}");
            // The parent works on: its writes reuse the frames.
            for vma in &areas {
                let result = handle_fault(&mut mem, ROOT, vma.start, WRITE, Some(vma));
                assert!(
                    matches!(result, FaultResult::Reused | FaultResult::Spurious),
                    "budget {budget}: {result:?}"
                );
            }
            free_page_tables(&mut mem, ROOT);
            assert_eq!(mem.outstanding(), 0, "budget {budget}");
            mem.assert_kernel_untouched(ROOT);
            mem.assert_kernel_untouched(child);
            if result.is_ok() {
                succeeded = true;
                // 3 tables for the first area, 2 for the shared one (the
                // PDPT is there), 5 for the one across 512 GiB.
                assert_eq!(budget, 3 + 2 + 5);
                break;
            }
            assert_eq!(result, Err(OutOfMemory));
        }
        assert!(succeeded);
    }

    #[test]
    fn populate_out_of_memory_at_every_allocation() {
        // 3 tables and 3 pages.
        for budget in 0..=6 {
            let mut mem = FakeMemory::new();
            mem.budget = budget;
            let result = populate(&mut mem, ROOT, 0x40_0000, 0x40_3000, RW);
            assert_eq!(result.is_ok(), budget == 6, "budget {budget}");
            free_page_tables(&mut mem, ROOT);
            assert_eq!(mem.outstanding(), 0);
        }
    }

    #[test]
    fn kernel_entries_are_out_of_reach() {
        let mut mem = FakeMemory::new();
        populate(&mut mem, ROOT, USER_END - P, u64::MAX, RW).unwrap();
        assert_eq!(mem.outstanding(), 1 + 3);
        let child = mem.new_root();
        let everything = Vma {
            start: 0,
            end: !(P - 1),
            prot: RW,
            flags: VmaFlags::ANONYMOUS,
            file: None,
        };
        assert_eq!(copy_page_range(&mut mem, ROOT, child, &everything), Ok(1));
        assert_eq!(change_protection(&mut mem, ROOT, &everything), 0);
        unmap_range(&mut mem, ROOT, 0, u64::MAX);
        unmap_range(&mut mem, child, USER_END, u64::MAX);
        free_page_tables(&mut mem, child);
        assert_eq!(mem.outstanding(), 0);
        assert_eq!(
            unmap_range(&mut mem, ROOT, u64::MAX - P, u64::MAX),
            UnmapStats::default()
        );
        mem.assert_kernel_untouched(ROOT);
        mem.assert_kernel_untouched(child);
    }

    /// A tiny deterministic generator (Knuth's MMIX LCG).
    struct Lcg(u64);

    impl Lcg {
        fn below(&mut self, n: u64) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (self.0 >> 33) % n
        }
    }

    /// Processes that fork, write, unmap and exit at random; checks every
    /// byte each one sees against a model, and that every frame's
    /// reference count equals the PTEs pointing at it.
    #[test]
    fn randomized_processes_against_a_model() {
        const PAGES: u64 = 24;
        let vma = private(0x40_0000, 0x40_0000 + PAGES * P, RW);
        let mut rng = Lcg(7);
        for _round in 0..20 {
            let mut mem = FakeMemory::new();
            // Per process: its root and the byte each page holds (None:
            // unmapped).
            let mut processes: Vec<(TablePage, Vec<Option<u8>>)> =
                vec![(ROOT, vec![None; PAGES as usize])];
            for step in 0..150u32 {
                let p = rng.below(processes.len() as u64) as usize;
                let page = rng.below(PAGES);
                let addr = vma.start + page * P;
                let root = processes[p].0;
                match rng.below(10) {
                    0 if processes.len() < 6 => {
                        let child = mem.new_root();
                        copy_page_range(&mut mem, root, child, &vma).unwrap();
                        let model = processes[p].1.clone();
                        processes.push((child, model));
                    }
                    1 if processes.len() > 1 => {
                        free_page_tables(&mut mem, root);
                        processes.swap_remove(p);
                    }
                    2 => {
                        let end = (addr + rng.below(4) * P).min(vma.end);
                        unmap_range(&mut mem, root, addr, end);
                        processes[p].1[page as usize..((end - vma.start) / P) as usize].fill(None);
                    }
                    _ => {
                        let value = step as u8;
                        let result = handle_fault(&mut mem, root, addr, WRITE, Some(&vma));
                        assert_ne!(result, FaultResult::Oom);
                        assert_ne!(result, FaultResult::Segv);
                        write_bytes(&mut mem, root, addr + 7, &[value]).unwrap();
                        processes[p].1[page as usize] = Some(value);
                    }
                }
                check_processes(&mut mem, &vma, &processes);
            }
            for (root, _) in processes {
                free_page_tables(&mut mem, root);
            }
            assert_eq!(mem.outstanding(), 0);
        }
    }

    fn check_processes(
        mem: &mut FakeMemory,
        vma: &Vma,
        processes: &[(TablePage, Vec<Option<u8>>)],
    ) {
        let mut references: HashMap<u64, u16> = HashMap::new();
        for (root, model) in processes {
            for (page, expected) in model.iter().enumerate() {
                let addr = vma.start + page as u64 * P;
                let pte = mem.pte(*root, addr);
                assert_eq!(pte.is_some(), expected.is_some());
                if let (Some(pte), Some(byte)) = (pte, expected) {
                    *references.entry(pte & ADDRESS_MASK).or_default() += 1;
                    assert_eq!(mem.byte_at(*root, addr + 7), *byte);
                    // A writable private page is never shared.
                    if pte & flags::WRITABLE != 0 {
                        assert_eq!(mem.frame_refcount(pte & ADDRESS_MASK), 1);
                    }
                }
            }
        }
        assert_eq!(references.len(), mem.data_frames());
        for (frame, count) in references {
            assert_eq!(mem.frame_refcount(frame), count);
        }
    }
}
