//! An address space (Linux `mm_struct`): the page tables and the areas of
//! one process, shared by its threads (`CLONE_VM`).
//!
//! Each CPU always runs on its own page-table root (the boot PML4 for CPU
//! 0, `forkvm_abi::cpu_root_phys`): switching address spaces copies the
//! user half of the next one's PML4 (128 entries, usually one in use: see
//! [`STACK_TOP`]) into it and reloads CR3. The PVM host needs this: after a switch to any other root it can
//! no longer deliver events onto the kernel's upper-half event stack (the
//! vCPU hangs at the first one). On HVM it costs the same as a CR3
//! switch, so both platforms share the mechanism. Each address space
//! still owns a private PML4 whose user half is the master copy; edits to
//! it are re-synced while active.

use alloc::sync::Arc;
use core::sync::atomic::{AtomicU64, Ordering};

use forkvm_abi::{cpu_root_phys, PAGE_SIZE};
use spin::Mutex;

use super::cow::{self, Access, FaultResult, MemoryOps, OutOfMemory, UserCopyError};
use super::frame::FrameUse;
use super::paging::{flags, TableAccess, TablePage};
use super::vma::{Prot, Vma, VmaFlags, VmaSet, TASK_SIZE};
use super::PageTableLock;
use crate::arch::cpu;
use crate::errno::{EFAULT, ENOMEM};
use crate::process::oom::OomOutcome;
use crate::stats;

/// Top of the user stack area: one guard page below 512 GiB, the span of
/// the first user PML4 entry; mmap allocates downwards from below the
/// stack. A process's default layout (program, heap, mmap areas, stack)
/// then lives under one entry of the CPU's root, so a switch between two
/// processes rewrites one root entry instead of two (stack and program
/// under different ones): on the PVM host each such write traps, ~4-5 us,
/// twice per fork+exit+wait. Where the stack sits is no ABI (Linux
/// randomises it); user space still ends at `TASK_SIZE` (64 TiB), which
/// mmap hints and MAP_FIXED can reach.
pub const STACK_TOP: u64 = USER_PML4_ENTRY_SPAN - PAGE_SIZE;
/// Bytes of address space one PML4 entry maps.
const USER_PML4_ENTRY_SPAN: u64 = 512 << 30;
/// Initial size of the user stack area.
pub const STACK_SIZE: u64 = 8 << 20;
/// Lowest address mmap hands out without a hint.
const MMAP_MIN: u64 = 0x1_0000;

/// This CPU's record of the address space whose user entries are
/// installed in its root (0: none); other CPUs read it to find the targets
/// of a TLB shootdown (`arch::tlb`).
fn active_root() -> &'static AtomicU64 {
    &crate::arch::percpu::this_cpu().active_root
}

/// This CPU's root of an address space that died while installed (0: none). Its
/// entries stay in the hardware root, and its tables and frames stay
/// allocated, until the next [`activate`] has replaced them and flushed
/// the TLB (Linux's lazy TLB: an exiting task does not switch to an empty
/// address space only to switch again to the next task's). That saves a
/// CR3 reload per exit, and nothing can use the stale entries meanwhile:
/// no user code runs before the next activation, and the kernel reaches
/// user memory only through page-table walks of its own.
fn dead_root() -> &'static AtomicU64 {
    &crate::arch::percpu::this_cpu().dead_root
}

/// Most bytes of address space one [`AddressSpace::unmap_then_free`]
/// batch covers: at most 2,048 pages (16 KiB of frame list) per shootdown.
const UNMAP_BATCH: u64 = 8 << 20;

/// The root page table this CPU runs on.
fn this_cpu_root() -> u64 {
    cpu_root_phys(crate::arch::percpu::cpu_id())
}

/// The root kept in [`dead_root`] or [`SPARE_ROOT`] as its address (0: none).
fn stored_root(phys: u64) -> Option<TablePage> {
    // SAFETY: those two hold only roots of address spaces (stored from
    // `AddressSpace::root`), table pages until `free_address_space` frees
    // them, which it does only after taking them out.
    (phys != 0).then(|| unsafe { TablePage::new(phys) })
}

/// Before this CPU halts: frees the address space that died installed
/// here, if any (else it would stay allocated until this CPU runs another
/// task, which on an idle CPU of several may be never).
pub fn free_dead_root_when_idle() {
    if dead_root().load(Ordering::Relaxed) != 0 {
        activate(None);
    }
}

/// Installs the user half of `mm` (or an empty one) in the hardware root.
pub fn activate(mm: Option<&AddressSpace>) {
    let root = mm.map(|mm| mm.root);
    // Published before the tables are read: a CPU that changes them after
    // this either sees us as a shootdown target or changed them before we
    // read them (see `arch::tlb`).
    active_root().store(root.map_or(0, TablePage::phys), Ordering::SeqCst);
    let dead = stored_root(dead_root().swap(0, Ordering::Relaxed));
    // A root with the same entries (say, both empty) would skip the
    // reload: the dead one's mappings must be flushed all the same.
    if !install_user_entries(root) && dead.is_some() {
        reload_cr3();
    }
    if let Some(dead) = dead {
        free_address_space(dead);
    }
}

/// An emptied address space kept for the next [`AddressSpace::new`]
/// (0: none): its pages are unmapped, its table pages stay in place.
/// Where a shadow MMU tracks page tables (the PVM host), writing an entry
/// of an upper-level table (PDPT, PD) traps, ~3-4 us each (a leaf entry
/// ~0.2-0.4 us); a fork would write ~5 of them into its new tables
/// and the exit clear them again. A reused tree of the same shape needs
/// neither: a fork+exit+wait cycle of a small process saves ~60 us.
static SPARE_ROOT: AtomicU64 = AtomicU64::new(0);
/// Largest tree kept as the spare, in table pages below the root (a small
/// process has 5-10): a bigger one is freed.
const SPARE_MAX_TABLES: u64 = 16;

/// Releases an address space that is not installed: its pages, then its
/// tables and root, unless it becomes the spare. Nobody else reaches its
/// tables any more, so a lock of its own is uncontended.
fn free_address_space(root: TablePage) {
    PageTableLock::new().with_tables(|memory| {
        let (_, tables) = cow::unmap_pages_keep_tables(memory, root);
        let spare = tables <= SPARE_MAX_TABLES
            && SPARE_ROOT
                .compare_exchange(0, root.phys(), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok();
        if !spare {
            cow::free_page_tables(memory, root);
            memory.put_frame(root.phys());
        }
    });
}

/// Copies the user PML4 entries of `root` (none if `None`) into this
/// CPU's root, reloading CR3 (a full TLB flush) if any changed. Returns
/// whether it did. Takes no table lock (it runs in a shootdown's IPI
/// handler too): each entry is read whole, and a CPU that changes one
/// after we published `active_root` shoots us down, so we read it again.
fn install_user_entries(root: Option<TablePage>) -> bool {
    let source = root.map_or([0; cow::USER_PML4_ENTRIES], super::user_root_entries);
    let changed = super::install_in_cpu_root(this_cpu_root(), &source);
    if changed {
        reload_cr3();
    }
    changed
}

fn reload_cr3() {
    stats::TLB_FLUSHES.add(1);
    // SAFETY: every CPU's root maps the kernel and is never freed.
    unsafe { cpu::write_cr3(this_cpu_root()) };
}

/// Mutable parts of an address space.
pub struct MmInner {
    pub vmas: VmaSet,
    /// Start of the heap (just above the program image).
    pub start_brk: u64,
    /// Current program break.
    pub brk: u64,
    /// Where exec put the argument strings (Linux `mm->arg_start`,
    /// `arg_end`): what `/proc/PID/cmdline` reads.
    pub arg_start: u64,
    pub arg_end: u64,
    /// The absolute path of the program exec loaded (Linux `exe_file`):
    /// what `/proc/PID/exe` reads.
    pub exe_path: Option<Arc<[u8]>>,
    /// `mlockall(MCL_FUTURE)`: new mappings are locked and populated
    /// (Linux's `VM_LOCKED` in `mm->def_flags`; not inherited by fork).
    pub lock_future: bool,
}

/// An address space.
pub struct AddressSpace {
    /// The PML4.
    root: TablePage,
    /// Serialises edits of the page tables under `root` (Linux
    /// `page_table_lock`); taken after `inner`, before the frame lock.
    tables: PageTableLock,
    pub inner: Mutex<MmInner>,
    /// Linux `MMF_DUMPABLE`: cleared when the owner's credentials change
    /// (its `/proc/PID` files then belong to root), set again by exec or
    /// `prctl(PR_SET_DUMPABLE)`.
    pub dumpable: core::sync::atomic::AtomicBool,
    /// Linux `MMF_OOM_SKIP`: the OOM killer has freed this address space's
    /// private pages; it is not chosen again.
    oom_reaped: core::sync::atomic::AtomicBool,
    /// How many tasks use it (Linux `mm_users`, less the temporary
    /// references Linux's `get_task_mm` also counts there): one per
    /// [`TaskMm`].
    users: AtomicU64,
}

/// A task's use of an address space (Linux `mmget` when a task takes it,
/// `mmput` when it lets go): counted in the address space's users for as
/// long as it lives. Other holders of the `Arc` (a syscall's reference,
/// the OOM killer's victim) are not users.
pub struct TaskMm(Arc<AddressSpace>);

impl TaskMm {
    /// A task's use of `mm`, counted.
    pub fn new(mm: Arc<AddressSpace>) -> TaskMm {
        mm.users.fetch_add(1, Ordering::Relaxed);
        TaskMm(mm)
    }
}

impl core::ops::Deref for TaskMm {
    type Target = Arc<AddressSpace>;
    fn deref(&self) -> &Arc<AddressSpace> {
        &self.0
    }
}

impl Drop for TaskMm {
    fn drop(&mut self) {
        self.0.users.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What an address space holds, in pages (the OOM killer's report).
#[derive(Clone, Copy, Debug, Default)]
pub struct MemoryUsage {
    /// Pages covered by areas (`total-vm`).
    pub total_vm_pages: u64,
    /// Present pages of private areas (`anon-rss`).
    pub anon_pages: u64,
    /// Present pages of shared areas (`shmem-rss`).
    pub shmem_pages: u64,
    /// Page-table pages, the root included (`pgtables`).
    pub table_pages: u64,
}

/// Most areas an address space may have (Linux `vm.max_map_count`,
/// `DEFAULT_MAX_MAP_COUNT`); a sysctl.
static MAX_MAP_COUNT: AtomicU64 = AtomicU64::new(DEFAULT_MAX_MAP_COUNT);
/// Linux's default: `USHRT_MAX - 5`.
pub const DEFAULT_MAX_MAP_COUNT: u64 = 65530;

/// `vm.max_map_count`.
pub fn max_map_count() -> u64 {
    MAX_MAP_COUNT.load(Ordering::Relaxed)
}

/// Sets `vm.max_map_count` (Linux accepts 0..=INT_MAX).
pub fn set_max_map_count(count: u64) -> Result<(), i32> {
    if count > i32::MAX as u64 {
        return Err(crate::errno::EINVAL);
    }
    MAX_MAP_COUNT.store(count, Ordering::Relaxed);
    Ok(())
}

/// Kernel heap an area takes at most (its node share in the area tree):
/// a new area needs this much free heap above the heap's reserve.
const HEAP_BYTES_PER_AREA: usize = 128;

/// Whether the kernel heap can take `areas` more areas and keep its
/// reserve for the allocations nobody can refuse.
fn heap_has_room_for_areas(areas: usize) -> bool {
    super::heap::has_room(areas.saturating_mul(HEAP_BYTES_PER_AREA))
}

impl AddressSpace {
    /// An empty address space: kernel half only.
    pub fn new() -> Result<Arc<AddressSpace>, OutOfMemory> {
        // The new root is nobody else's yet: a lock of its own.
        let root = PageTableLock::new().with_tables(|memory| {
            let spare = stored_root(SPARE_ROOT.swap(0, Ordering::Relaxed));
            let root = if let Some(spare) = spare {
                // Already empty, with its (empty) tables in place.
                spare
            } else {
                let phys = super::alloc_frame(FrameUse::PageTable)
                    .ok_or(OutOfMemory)?
                    .phys();
                // SAFETY: a fresh frame of our own, to be this root (zeroed
                // next, before any walk reads it).
                let root = unsafe { TablePage::new(phys) };
                memory.table(root).fill(0);
                root
            };
            // The kernel half is shared: same lower-level tables everywhere.
            memory.table(root)[cow::USER_PML4_ENTRIES..]
                .copy_from_slice(&super::kernel_root_entries());
            Ok(root)
        })?;
        Ok(Arc::new(AddressSpace {
            root,
            tables: PageTableLock::new(),
            inner: Mutex::new(MmInner {
                vmas: VmaSet::new(),
                start_brk: 0,
                brk: 0,
                arg_start: 0,
                arg_end: 0,
                exe_path: None,
                lock_future: false,
            }),
            dumpable: core::sync::atomic::AtomicBool::new(true),
            oom_reaped: core::sync::atomic::AtomicBool::new(false),
            users: AtomicU64::new(0),
        }))
    }

    /// A copy-on-write duplicate for a forked child (Linux `dup_mm`).
    /// Write-protects the parent's private pages, so the caller (running
    /// in this address space) must have its TLB flushed: done here.
    ///
    /// The pages at `eager` (typically the stack top, which parent and
    /// child both write at once) are copied now rather than shared; so is
    /// every writable private page if there are at most `copy_max` (see
    /// `cow::dup_mmap`).
    pub fn dup(&self, eager: &[u64], copy_max: u64) -> Result<Arc<AddressSpace>, OutOfMemory> {
        // The child's copy of the area tree comes from the kernel heap.
        if !heap_has_room_for_areas(self.inner.lock().vmas.len()) {
            return Err(OutOfMemory);
        }
        let child = AddressSpace::new()?;
        let inner = self.inner.lock();
        // Without the MADV_DONTFORK areas, and unlocked.
        let child_vmas = inner.vmas.for_fork();
        let result = self.tables.with_tables(|memory| {
            let write_protected =
                cow::dup_mmap(memory, &child_vmas, self.root, child.root, copy_max)?;
            for &address in eager {
                if child_vmas.find(address).is_some_and(|vma| !vma.is_shared()) {
                    cow::copy_page_eagerly(memory, self.root, child.root, address)?;
                }
            }
            Ok(write_protected)
        });
        let write_protected = match result {
            Ok(n) => n,
            Err(e) => {
                // `child` is dropped here and frees what was copied.
                drop(inner);
                self.flush_if_current();
                return Err(e);
            }
        };
        {
            let mut child_inner = child.inner.lock();
            child_inner.vmas = child_vmas;
            child_inner.start_brk = inner.start_brk;
            child_inner.brk = inner.brk;
            child_inner.arg_start = inner.arg_start;
            child_inner.arg_end = inner.arg_end;
            child_inner.exe_path = inner.exe_path.clone();
        }
        child
            .dumpable
            .store(self.dumpable.load(Ordering::Relaxed), Ordering::Relaxed);
        drop(inner);
        if write_protected > 0 {
            self.flush_write_protected();
        }
        Ok(child)
    }

    /// How many tasks use it (Linux `mm_users`): 1 when only the caller
    /// does.
    pub fn users(&self) -> u64 {
        self.users.load(Ordering::Relaxed)
    }

    /// Whether this address space's user entries are installed.
    pub fn is_active(&self) -> bool {
        active_root().load(Ordering::Relaxed) == self.root.phys()
    }

    /// If active: brings the installed user entries up to date and flushes
    /// the TLB (after write-protecting or unmapping pages); the other CPUs
    /// that have it installed do the same (one shootdown IPI each).
    fn flush_if_current(&self) {
        if self.is_active() && !install_user_entries(Some(self.root)) {
            reload_cr3();
        }
        crate::arch::tlb::shootdown_user(self.root.phys());
    }

    /// [`Self::flush_if_current`] after fork's write-protect, which frees
    /// nothing: the one whose IPIs `debug.tlb_shootdown` = 0 skips.
    fn flush_write_protected(&self) {
        if self.is_active() && !install_user_entries(Some(self.root)) {
            reload_cr3();
        }
        crate::arch::tlb::shootdown_user_nothing_freed(self.root.phys());
    }

    /// If active: installs user PML4 entries created since activation (a
    /// new mapping needs no flush otherwise).
    fn sync_if_active(&self) {
        if self.is_active() {
            install_user_entries(Some(self.root));
        }
    }

    /// Adds an area and maps it eagerly, zero-filled. Filling it faults
    /// pages in as touching them would, so running out of frames calls the
    /// OOM killer; if that kills the caller, the area and every page it
    /// got are removed again and the result is ENOMEM: a failed mapping
    /// leaves nothing behind.
    pub fn map_populated(
        &self,
        start: u64,
        end: u64,
        prot: Prot,
        flags: VmaFlags,
    ) -> Result<(), i32> {
        self.map_lazy(start, end, prot, flags)?;
        self.populate_or_remove(start, end, prot)
    }

    /// Faults in `[start, end)` of a just-mapped range as touching it
    /// would, calling the OOM killer when out of frames; if that kills the
    /// caller, the range is removed again (ENOMEM): nothing is left behind.
    fn populate_or_remove(&self, start: u64, end: u64, prot: Prot) -> Result<(), i32> {
        loop {
            let populated = self
                .tables
                .with_tables(|memory| cow::populate(memory, self.root, start, end, prot));
            self.sync_if_active();
            if populated.is_ok() {
                return Ok(());
            }
            if crate::process::oom::out_of_memory() == OomOutcome::CurrentKilled {
                self.remove_range(start, end);
                return Err(ENOMEM);
            }
        }
    }

    /// Maps the frames `frames[i]` (another reference on each; `None`
    /// leaves a page to its fault) at the pages from `start` of an area
    /// already added, copy-on-write unless `shared`: a file's page-cache
    /// pages mapped ahead (`mm::file_map`). Running out of table pages
    /// removes the whole area (ENOMEM).
    pub fn populate_frames(
        &self,
        start: u64,
        frames: &[Option<cow::DataFrame>],
        prot: Prot,
        shared: bool,
    ) -> Result<(), i32> {
        let end = start + frames.len() as u64 * PAGE_SIZE;
        let mapped = self.tables.with_tables(|memory| {
            for (i, frame) in frames.iter().enumerate() {
                if let Some(frame) = *frame {
                    let addr = start + i as u64 * PAGE_SIZE;
                    cow::map_frame(memory, self.root, addr, frame, prot, !shared)?;
                }
            }
            Ok::<(), OutOfMemory>(())
        });
        self.sync_if_active();
        if mapped.is_err() {
            self.remove_range(start, end);
            return Err(ENOMEM);
        }
        Ok(())
    }

    /// Maps the file page `frame` at `addr` in the file-backed `vma`, and
    /// the pages `around` it (`cow::do_file_fault`; the caller holds the
    /// file's lock).
    pub fn map_file_fault(
        &self,
        vma: &Vma,
        addr: u64,
        access: Access,
        frame: cow::DataFrame,
        around: &[(u64, cow::DataFrame)],
    ) -> FaultResult {
        let result = self.tables.with_tables(|memory| {
            cow::do_file_fault(memory, self.root, vma, addr, access, frame, around)
        });
        self.sync_if_active();
        result
    }

    /// Adds an area whose pages appear on first touch (demand zero). ENOMEM
    /// past `vm.max_map_count` areas (Linux checks before merging, so the
    /// count may reach the limit + 1) or when the kernel heap is short.
    pub fn map_lazy(&self, start: u64, end: u64, prot: Prot, flags: VmaFlags) -> Result<(), i32> {
        self.map_area(Vma::new(start, end, prot, flags).map_err(|e| e.errno())?)
    }

    /// Adds the area `vma` with nothing mapped yet, as [`Self::map_lazy`]
    /// (a file mapping's area carries its file).
    pub fn map_area(&self, vma: Vma) -> Result<(), i32> {
        let mut inner = self.inner.lock();
        if inner.vmas.len() as u64 > max_map_count() || !heap_has_room_for_areas(1) {
            return Err(ENOMEM);
        }
        inner.vmas.insert(vma).map_err(|e| e.errno())
    }

    /// Whether splitting areas to change `[start, end)` is refused: Linux's
    /// `split_vma` fails with ENOMEM at `vm.max_map_count` areas. `middle_only`:
    /// only a split that leaves pieces on both sides counts (munmap).
    fn split_refused(inner: &MmInner, start: u64, end: u64, middle_only: bool) -> bool {
        if (inner.vmas.len() as u64) < max_map_count() && heap_has_room_for_areas(2) {
            return false;
        }
        let head = inner.vmas.find(start).is_some_and(|vma| vma.start < start);
        let tail = end > 0 && inner.vmas.find(end - 1).is_some_and(|vma| vma.end > end);
        if middle_only {
            head && tail && inner.vmas.find(start) == inner.vmas.find(end - 1)
        } else {
            head || tail
        }
    }

    /// Removes `[start, end)` (Linux `do_munmap`).
    pub fn unmap(&self, start: u64, end: u64) -> Result<(), i32> {
        let removed = {
            let mut inner = self.inner.lock();
            if Self::split_refused(&inner, start, end, true) {
                return Err(ENOMEM);
            }
            inner.vmas.unmap(start, end).map_err(|e| e.errno())?
        };
        self.unmap_areas(removed);
        Ok(())
    }

    /// Takes back a range this kernel just mapped (a failed mmap), whatever
    /// the area limits say.
    fn remove_range(&self, start: u64, end: u64) {
        let removed = self.inner.lock().vmas.unmap(start, end).unwrap_or_default();
        self.unmap_areas(removed);
    }

    /// Unmaps the pages of areas just removed from the area set.
    fn unmap_areas(&self, removed: alloc::vec::Vec<Vma>) {
        if crate::arch::percpu::nr_cpus() > 1 {
            self.unmap_then_free(removed.iter().map(|area| (area.start, area.end)));
            return;
        }
        let mut flush = false;
        for area in removed {
            let stats = self
                .tables
                .with_tables(|memory| cow::unmap_range(memory, self.root, area.start, area.end));
            flush |= stats.needs_flush();
        }
        if flush {
            self.flush_if_current();
        }
    }

    /// Unmaps the pages of this address space's mappings of `inode` from
    /// file page `first` on, the private copy-on-write copies included
    /// (Linux's `unmap_mapping_range(..., even_cows = 1)` of a truncate):
    /// the areas stay, and the next access faults and meets the file's
    /// new end (SIGBUS). The frames whose last reference goes are freed
    /// after the TLB flush.
    pub fn unmap_file_pages(&self, inode: &Arc<crate::fs::inode::Inode>, first: u64) {
        let ranges: alloc::vec::Vec<(u64, u64)> = {
            let inner = self.inner.lock();
            inner
                .vmas
                .iter()
                .filter_map(|vma| {
                    let file = vma.file.as_ref().filter(|f| Arc::ptr_eq(&f.inode, inode))?;
                    let skip = first.saturating_sub(file.pgoff);
                    (skip < vma.pages()).then(|| (vma.start + skip * PAGE_SIZE, vma.end))
                })
                .collect()
        };
        if ranges.is_empty() {
            return;
        }
        if crate::arch::percpu::nr_cpus() > 1 {
            self.unmap_then_free(ranges.into_iter());
            return;
        }
        let mut flush = false;
        for (start, end) in ranges {
            flush |= self
                .tables
                .with_tables(|memory| cow::unmap_range(memory, self.root, start, end))
                .needs_flush();
        }
        if flush {
            self.flush_if_current();
        }
    }

    /// Unmaps `ranges` where other CPUs may run this address space: the
    /// frames whose last reference goes are freed only after every CPU
    /// that may cache them has flushed its TLB (Linux's `mmu_gather`), in
    /// batches of at most [`UNMAP_BATCH`] bytes of address space (one
    /// shootdown each) so the list of frames kept back stays small. Called
    /// with no lock held (a shootdown waits for the other CPUs).
    fn unmap_then_free(&self, ranges: impl Iterator<Item = (u64, u64)>) {
        let mut pieces = ranges.flat_map(|(start, end)| {
            (start..end)
                .step_by(UNMAP_BATCH as usize)
                .map(move |piece| (piece, end.min(piece + UNMAP_BATCH)))
        });
        loop {
            let (flush, pending, done) = self.tables.with_tables(|memory| {
                let mut deferring = cow::FreeAfterFlush::new(memory);
                let mut flush = false;
                let mut covered = 0;
                while covered < UNMAP_BATCH {
                    let Some((start, end)) = pieces.next() else {
                        return (flush, deferring.into_pending(), true);
                    };
                    flush |= cow::unmap_range(&mut deferring, self.root, start, end).needs_flush();
                    covered += end - start;
                }
                (flush, deferring.into_pending(), false)
            });
            if flush {
                self.flush_if_current();
            }
            if !pending.is_empty() {
                self.tables.with_tables(|memory| pending.free(memory));
            }
            if done {
                return;
            }
        }
    }

    /// Sets the area flags `set` and clears `clear` over the mapped parts
    /// of `[start, end)` (madvise, mlock). Returns the pieces changed and
    /// whether part of the range was unmapped; ENOMEM if the areas it would
    /// split are too many.
    pub fn update_flags(
        &self,
        start: u64,
        end: u64,
        set: VmaFlags,
        clear: VmaFlags,
    ) -> Result<(alloc::vec::Vec<Vma>, bool), i32> {
        let mut inner = self.inner.lock();
        if Self::split_refused(&inner, start, end, false) {
            return Err(ENOMEM);
        }
        inner
            .vmas
            .update_flags(start, end, set, clear)
            .map_err(|e| e.errno())
    }

    /// The areas intersecting `[start, end)`, clipped to it.
    pub fn areas_in(&self, start: u64, end: u64) -> alloc::vec::Vec<Vma> {
        let inner = self.inner.lock();
        inner
            .vmas
            .find_intersecting(start, end)
            .map(|vma| {
                let mut piece = vma.clone();
                if let Some(file) = piece.file.as_mut() {
                    file.pgoff += (start.max(vma.start) - vma.start) / PAGE_SIZE;
                }
                piece.start = vma.start.max(start);
                piece.end = vma.end.min(end);
                piece
            })
            .collect()
    }

    /// Frees the pages of `[start, end)`, keeping the area (MADV_DONTNEED,
    /// Linux `zap_page_range_single`): the next touch faults in a zeroed
    /// page, or the file's page again. Batched shootdown as for munmap.
    pub fn zap_pages(&self, start: u64, end: u64) {
        self.unmap_areas(alloc::vec![Vma {
            start,
            end,
            prot: Prot::NONE,
            flags: VmaFlags::PRIVATE,
            file: None,
        }]);
    }

    /// Faults in every page of `[start, end)` the area allows, for writing
    /// where a private area is writable (breaking COW shares), as Linux's
    /// `populate_vma_page_range` does for mlock. Pages past a file's end
    /// and PROT_NONE areas are skipped; ENOMEM if memory runs out, EINTR
    /// if the task was killed meanwhile.
    pub fn populate_range(&self, start: u64, end: u64) -> Result<(), i32> {
        for area in self.areas_in(start, end) {
            if !area.prot.allows_read() && !area.prot.allows_write() {
                continue;
            }
            let write = area.prot.allows_write() && !area.is_shared();
            for page in (area.start..area.end).step_by(PAGE_SIZE as usize) {
                let present = self.tables.with_tables(|memory| {
                    super::paging::translate(memory, self.root, page)
                        .is_some_and(|pte| !write || pte & flags::WRITABLE != 0)
                });
                if present {
                    continue;
                }
                // A killed task stops here (Linux: `fatal_signal_pending`).
                if crate::sched::current().fatal_status().is_some() {
                    return Err(crate::errno::EINTR);
                }
                let access = Access {
                    write,
                    user: true,
                    present_fault: false,
                    execute: false,
                };
                if self.handle_fault(page, access) == FaultResult::Oom {
                    return Err(ENOMEM);
                }
            }
        }
        Ok(())
    }

    /// Pages of locked areas (Linux `mm->locked_vm`).
    pub fn locked_pages(&self) -> u64 {
        let inner = self.inner.lock();
        inner
            .vmas
            .iter()
            .filter(|vma| vma.flags.contains(VmaFlags::LOCKED))
            .map(Vma::pages)
            .sum()
    }

    /// Which of the (at most 64) pages from `start` have a frame mapped.
    pub fn present_pages(&self, start: u64, end: u64) -> u64 {
        self.tables
            .with_tables(|memory| cow::present_pages(memory, self.root, start, end))
    }

    /// Moves `[start, end)`, all in one area, with its pages to the free
    /// range at `to` (mremap's `move_vma`); with `keep_old` the old range
    /// stays mapped and empty (MREMAP_DONTUNMAP). ENOMEM when out of areas
    /// or table pages (then nothing has moved, or, out of table pages, the
    /// pages moved so far go back).
    pub fn move_range(&self, start: u64, end: u64, to: u64, keep_old: bool) -> Result<(), i32> {
        let len = end - start;
        {
            let mut inner = self.inner.lock();
            if inner.vmas.len() as u64 >= max_map_count() || !heap_has_room_for_areas(2) {
                return Err(ENOMEM);
            }
            // The area move below must not fail once the pages have moved.
            let target_taken = inner.vmas.find_intersecting(to, to + len).next().is_some();
            let source_whole = inner.vmas.find(start).is_some_and(|vma| vma.end >= end);
            if target_taken || !source_whole {
                return Err(crate::errno::EINVAL);
            }
            let moved = self
                .tables
                .with_tables(|memory| cow::move_page_range(memory, self.root, start, end, to));
            if moved.is_err() {
                // Back where they were: their tables still exist.
                let back = self.tables.with_tables(|memory| {
                    cow::move_page_range(memory, self.root, to, to + len, start)
                });
                debug_assert!(back.is_ok());
                drop(inner);
                self.flush_if_current();
                return Err(ENOMEM);
            }
            inner
                .vmas
                .move_range(start, end, to, keep_old)
                .map_err(|e| e.errno())?;
        }
        self.sync_if_active();
        // The old PTEs are gone: no CPU may keep using them. Then free the
        // old range's emptied tables (nothing else is left there).
        self.flush_if_current();
        self.zap_pages(start, end);
        Ok(())
    }

    /// Grows the area ending at `old_end` to `new_end` in place (mremap;
    /// the caller checked the range above is free). A shared anonymous
    /// area's new pages are populated, as mmap does for it.
    pub fn expand(&self, old_end: u64, new_end: u64) -> Result<(), i32> {
        let area = {
            let inner = self.inner.lock();
            let vma = inner.vmas.find(old_end - 1).ok_or(ENOMEM)?;
            let mut area =
                Vma::new(old_end, new_end, vma.prot, vma.flags).map_err(|e| e.errno())?;
            if let Some(file) = &vma.file {
                area = area.with_file(file.inode.clone(), file.pgoff + vma.pages());
            }
            area
        };
        let populate = area.is_shared() && area.file.is_none();
        let prot = area.prot;
        self.map_area(area)?;
        if !populate {
            return Ok(());
        }
        self.populate_or_remove(old_end, new_end, prot)
    }

    /// Changes the rights of `[start, end)` (Linux `mprotect`).
    pub fn protect(&self, start: u64, end: u64, prot: Prot) -> Result<(), i32> {
        let changed = {
            let mut inner = self.inner.lock();
            if Self::split_refused(&inner, start, end, false) {
                return Err(ENOMEM);
            }
            inner
                .vmas
                .protect(start, end, prot)
                .map_err(|e| e.errno())?
        };
        let mut flush = false;
        for area in changed {
            flush |= self
                .tables
                .with_tables(|memory| cow::change_protection(memory, self.root, &area))
                > 0;
        }
        if flush {
            self.flush_if_current();
        }
        Ok(())
    }

    /// A free range of `len` bytes for mmap: at `hint` if that range is
    /// free anywhere in user space (Linux checks hints against
    /// `TASK_SIZE`), else the highest free range below the stack area.
    pub fn get_unmapped_area(&self, len: u64, hint: u64) -> Option<u64> {
        let inner = self.inner.lock();
        if hint != 0 {
            let at_hint = inner
                .vmas
                .get_unmapped_area(len, hint, MMAP_MIN, TASK_SIZE)
                .filter(|&addr| Some(addr) == hint.checked_next_multiple_of(PAGE_SIZE));
            if at_hint.is_some() {
                return at_hint;
            }
        }
        inner
            .vmas
            .get_unmapped_area(len, 0, MMAP_MIN, STACK_TOP - STACK_SIZE)
    }

    /// Whether an area covers `addr` (a fault outside every area is
    /// SEGV_MAPERR, one an area forbids SEGV_ACCERR).
    pub fn has_vma(&self, addr: u64) -> bool {
        self.inner.lock().vmas.find(addr).is_some()
    }

    /// Resolves a page fault at `addr`; the caller signals the task on
    /// `Segv`. Out of frames, it calls the OOM killer and retries; `Oom`
    /// means the faulting task itself was killed (it must exit).
    pub fn handle_fault(&self, addr: u64, access: Access) -> FaultResult {
        loop {
            let result = self.handle_fault_once(addr, access);
            if result != FaultResult::Oom
                || crate::process::oom::out_of_memory() == OomOutcome::CurrentKilled
            {
                return result;
            }
        }
    }

    fn handle_fault_once(&self, addr: u64, access: Access) -> FaultResult {
        let inner = self.inner.lock();
        let vma = inner.vmas.find(addr).cloned();
        drop(inner);
        // A COW break drops its reference to the old frame; should that be
        // the last one (the other sharer let go meanwhile), the frame is
        // kept until the flush below: another CPU running this address
        // space may still read it through its TLB (Linux flushes before
        // `put_page` in `wp_page_copy`).
        let (mut result, pending) = self.tables.with_tables(|memory| {
            let mut deferring = cow::FreeAfterFlush::new(memory);
            let result = cow::handle_fault(&mut deferring, self.root, addr, access, vma.as_ref());
            (result, deferring.into_pending())
        });
        if let (FaultResult::FileNoPage, Some(vma)) = (result, &vma) {
            result = super::file_map::filemap_fault(self, vma, addr, access);
        }
        match result {
            FaultResult::Mapped => stats::FAULTS_DEMAND_ZERO.add(1),
            FaultResult::FileMapped => stats::FAULTS_FILE.add(1),
            FaultResult::Copied => stats::FAULTS_COW_COPY.add(1),
            FaultResult::Reused => stats::FAULTS_COW_REUSE.add(1),
            FaultResult::Spurious => stats::FAULTS_SPURIOUS.add(1),
            FaultResult::Segv | FaultResult::Sigbus | FaultResult::Oom => {}
            FaultResult::FileNoPage => unreachable!("resolved above"),
        }
        // Spurious: another CPU may have created the PML4 entry (a
        // thread's mmap) that this CPU's root lacks.
        if matches!(result, FaultResult::Mapped | FaultResult::Spurious) {
            self.sync_if_active();
        }
        if result.needs_flush() {
            if self.is_active() {
                cpu::invlpg(addr & !(PAGE_SIZE - 1));
            }
            // A frame the fault let go of for good (in `pending`) must
            // leave every TLB before it is freed, whatever the debug knob.
            if pending.is_empty() {
                crate::arch::tlb::shootdown_user_nothing_freed(self.root.phys());
            } else {
                crate::arch::tlb::shootdown_user(self.root.phys());
            }
        }
        if !pending.is_empty() {
            self.tables.with_tables(|memory| pending.free(memory));
        }
        result
    }

    /// Makes `[addr, addr + len)` present and writable as a user write's
    /// faults would, without writing it (EFAULT where one would SIGSEGV).
    pub fn fault_in_writable(&self, addr: u64, len: usize) -> Result<(), i32> {
        self.fault_in(addr, len, true)
    }

    /// Makes `[addr, addr + len)` present with the rights an access needs,
    /// as the faults of a real access would (EFAULT where one would SIGSEGV).
    fn fault_in(&self, addr: u64, len: usize, write: bool) -> Result<(), i32> {
        if len == 0 {
            return Ok(());
        }
        let end = addr
            .checked_add(len as u64)
            .filter(|&end| end <= TASK_SIZE)
            .ok_or(EFAULT)?;
        let mut page = addr & !(PAGE_SIZE - 1);
        while page < end {
            // Most pages are already mapped with the rights needed: only
            // the others go through the fault path (which also flushes).
            let entry = self
                .tables
                .with_tables(|memory| super::paging::translate(memory, self.root, page));
            let usable = entry.is_some_and(|pte| {
                pte & flags::USER != 0 && (!write || pte & flags::WRITABLE != 0)
            });
            if usable {
                page += PAGE_SIZE;
                continue;
            }
            let access = Access {
                write,
                user: true,
                present_fault: true,
                execute: false,
            };
            match self.handle_fault(page, access) {
                FaultResult::Segv | FaultResult::Sigbus => return Err(EFAULT),
                FaultResult::Oom => return Err(ENOMEM),
                _ => {}
            }
            page += PAGE_SIZE;
        }
        Ok(())
    }

    /// Copies user memory into `buf` (Linux `copy_from_user`): EFAULT for
    /// any byte the task could not read itself.
    pub fn copy_from_user(&self, addr: u64, buf: &mut [u8]) -> Result<(), i32> {
        self.fault_in(addr, buf.len(), false)?;
        self.tables
            .with_tables(|memory| cow::read_bytes(memory, self.root, addr, buf))
            .map_err(copy_errno)
    }

    /// Copies `data` to user memory (Linux `copy_to_user`): EFAULT for any
    /// byte the task could not write itself.
    pub fn copy_to_user(&self, addr: u64, data: &[u8]) -> Result<(), i32> {
        self.fault_in(addr, data.len(), true)?;
        // A fork on another CPU may have shared a page again since the
        // fault-in: the write then copies it, and the old frame's reference
        // is dropped only after the other CPUs' TLBs forget it.
        let (written, pending) = self.tables.with_tables(|memory| {
            let mut deferring = cow::FreeAfterFlush::new(memory);
            let written = cow::write_bytes(&mut deferring, self.root, addr, data);
            (written, deferring.into_pending())
        });
        if !pending.is_empty() {
            self.flush_if_current();
            self.tables.with_tables(|memory| pending.free(memory));
        }
        written.map(|_| ()).map_err(copy_errno)
    }

    /// Writes into user memory regardless of the area's rights (exec
    /// filling a read-only code segment it just mapped).
    pub fn poke(&self, addr: u64, data: &[u8]) -> Result<(), i32> {
        self.tables
            .with_tables(|memory| cow::write_bytes(memory, self.root, addr, data))
            .map(|_| ())
            .map_err(copy_errno)
    }

    /// Pages mapped in this address space's areas (virtual size).
    pub fn total_pages(&self) -> u64 {
        self.inner.lock().vmas.total_pages()
    }

    /// What this address space holds now (walks its page tables: for the
    /// OOM killer, not for hot paths).
    pub fn memory_usage(&self) -> MemoryUsage {
        let inner = self.inner.lock();
        let mut usage = MemoryUsage {
            total_vm_pages: inner.vmas.total_pages(),
            ..MemoryUsage::default()
        };
        self.tables.with_tables(|memory| {
            for vma in inner.vmas.iter() {
                let present = cow::count_present(memory, self.root, vma.start, vma.end);
                if vma.is_shared() {
                    usage.shmem_pages += present;
                } else {
                    usage.anon_pages += present;
                }
            }
            usage.table_pages = cow::table_pages(memory, self.root);
        });
        usage
    }

    /// Whether the OOM killer has already reaped this address space.
    pub fn oom_reaped(&self) -> bool {
        self.oom_reaped.load(Ordering::Relaxed)
    }

    /// Frees the pages of every private area now, keeping the areas (Linux's
    /// OOM reaper, run on a killed process so its memory need not wait for
    /// its threads to exit; a later touch would fault in zeroed pages, but
    /// its owners are dying). Shared areas are left to their last user.
    pub fn oom_reap(&self) {
        self.oom_reaped.store(true, Ordering::Relaxed);
        if crate::arch::percpu::nr_cpus() > 1 {
            let private: alloc::vec::Vec<(u64, u64)> = self
                .inner
                .lock()
                .vmas
                .iter()
                .filter(|vma| !vma.is_shared())
                .map(|vma| (vma.start, vma.end))
                .collect();
            self.unmap_then_free(private.into_iter());
            return;
        }
        let inner = self.inner.lock();
        let mut flush = false;
        self.tables.with_tables(|memory| {
            for vma in inner.vmas.iter().filter(|vma| !vma.is_shared()) {
                flush |= cow::unmap_range(memory, self.root, vma.start, vma.end).needs_flush();
            }
        });
        drop(inner);
        if flush {
            self.flush_if_current();
        }
    }
}

fn copy_errno(error: UserCopyError) -> i32 {
    match error {
        UserCopyError::Unmapped => EFAULT,
        UserCopyError::OutOfMemory => ENOMEM,
    }
}

impl Drop for AddressSpace {
    fn drop(&mut self) {
        // Other CPUs that still have it installed (lazily: their idle task,
        // or a thread that exits there) drop it first.
        crate::arch::tlb::shootdown_user(self.root.phys());
        if self.is_active() {
            // Freed by the next activation, after its TLB flush.
            active_root().store(0, Ordering::Relaxed);
            let previous = dead_root().swap(self.root.phys(), Ordering::Relaxed);
            debug_assert_eq!(previous, 0, "two dead address spaces installed");
            return;
        }
        free_address_space(self.root);
    }
}

/// A TLB shootdown for `root` reached this CPU (`arch::tlb`): if its user
/// entries are installed here, bring them up to date and flush, or, if the
/// running task does not use that address space (a lazily kept one: the
/// idle task, an exiting thread), uninstall it, so later changes to it
/// send this CPU nothing.
pub fn flush_for_shootdown(root: u64) {
    if active_root().load(Ordering::Relaxed) != root {
        return;
    }
    let current = crate::sched::current();
    // This CPU may be waiting in a shootdown of its own while holding its
    // task's lock: then keep the entries (they stay valid until we ack).
    let in_use = current
        .try_with_mm(|mm| mm.is_some_and(|mm| mm.root.phys() == root))
        .unwrap_or(true);
    if in_use {
        // SAFETY: `root` is installed on this CPU (checked above), so it is
        // the root of a live address space: a table page until its drop,
        // which uninstalls it here first (a shootdown to this CPU).
        if !install_user_entries(Some(unsafe { TablePage::new(root) })) {
            reload_cr3();
        }
    } else {
        active_root().store(0, Ordering::SeqCst);
        if !install_user_entries(None) {
            reload_cr3();
        }
    }
}
