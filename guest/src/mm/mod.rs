//! Memory management: physical frames and the kernel heap.

pub mod address_space;
pub mod file_map;
pub mod heap;
pub mod kstack;

pub use forkvm_core::mm::{cow, frame, paging, vma};

use core::sync::atomic::{AtomicU64, Ordering};
use forkvm_abi::{BootInfo, LOW_MEMORY_END, PAGE_OFFSET};

use spin::Mutex;

use self::cow::DataFrame;
use self::frame::{FrameAllocator, FrameUse, Pfn, FRAME_SIZE};
use self::paging::TablePage;

/// The frame allocator, set up by [`init`].
pub static FRAMES: Mutex<Option<FrameAllocator<'static>>> = Mutex::new(None);

extern "C" {
    static __kernel_end: u8;
}

/// Converts a guest-physical address to its direct-map virtual address.
pub fn phys_to_virt(phys: u64) -> u64 {
    PAGE_OFFSET + phys
}

fn align_up(value: u64, align: u64) -> u64 {
    value.div_ceil(align) * align
}

/// Kernel heap size for `ram` bytes of RAM: 1/16 of it, 4 MiB..1 GiB
/// (tasks, areas and semaphores grow with RAM: `kernel.threads-max`
/// does, and a 4 GiB guest's tasks did not fit a 64 MiB heap).
fn heap_size(ram: u64) -> u64 {
    (ram / 16).clamp(4 << 20, 1 << 30)
}

/// Sets up the frame allocator and the heap from the boot memory map.
/// Layout after the kernel image: frame metadata, then the heap; every
/// frame above that (and below the MMIO hole or above 4 GiB) is free.
pub fn init(info: &BootInfo) {
    let regions = info.regions();
    let max_phys = regions.iter().map(|r| r.start + r.len).max().unwrap_or(0);
    let max_pfn = (max_phys / FRAME_SIZE) as usize;
    let ram_frames: usize = regions.iter().map(|r| (r.len / FRAME_SIZE) as usize).sum();

    // Only the address of the linker symbol is taken.
    let kernel_end = (&raw const __kernel_end) as u64 - PAGE_OFFSET;
    let mut cursor = align_up(kernel_end, FRAME_SIZE);
    let mut carve = |bytes: u64| {
        let start = cursor;
        cursor = align_up(cursor + bytes, FRAME_SIZE);
        start
    };
    let refcounts_phys = carve(max_pfn as u64 * 2);
    let normal_phys = carve(ram_frames as u64 * 4);
    let aligned_len = ram_frames / 512 + regions.len();
    let aligned_phys = carve(aligned_len as u64 * 4);
    let heap_bytes = heap_size(info.total_memory());
    let heap_phys = carve(heap_bytes);
    let reserved_end = cursor;
    assert!(
        reserved_end < regions[0].start + regions[0].len,
        "guest memory too small for the kernel ({} MiB)",
        info.total_memory() >> 20
    );

    // SAFETY: the carved ranges lie in RAM right after the kernel image
    // (checked above), are mapped by the direct map, are used for
    // nothing else, and live for the rest of the kernel's life.
    let allocator = unsafe {
        let refcounts =
            core::slice::from_raw_parts_mut(phys_to_virt(refcounts_phys) as *mut u16, max_pfn);
        let normal =
            core::slice::from_raw_parts_mut(phys_to_virt(normal_phys) as *mut u32, ram_frames);
        let aligned =
            core::slice::from_raw_parts_mut(phys_to_virt(aligned_phys) as *mut u32, aligned_len);
        heap::init(phys_to_virt(heap_phys) as *mut u8, heap_bytes as usize);
        FrameAllocator::new(refcounts, normal, aligned)
    };
    let mut allocator = allocator;
    for region in regions {
        let start = align_up(
            region.start.max(reserved_end).max(LOW_MEMORY_END),
            FRAME_SIZE,
        );
        let end = (region.start + region.len) / FRAME_SIZE * FRAME_SIZE;
        if end > start {
            allocator.add_range(Pfn::containing(start), ((end - start) / FRAME_SIZE) as u32);
        }
    }
    *FRAMES.lock() = Some(allocator);
    // Its full size now, so the heap does not move when it fills.
    ZEROED_TABLES.lock().reserve_exact(ZEROED_TABLES_MAX);
    const IA32_EFER: u32 = 0xc000_0080;
    const EFER_NXE: u64 = 1 << 11;
    self::cow::set_no_execute_supported(crate::arch::cpu::rdmsr(IA32_EFER) & EFER_NXE != 0);
    forkvm_core::fs::page_cache::set_page_frames(&FILE_PAGE_FRAMES);
}

/// A file's pages (`fs::page_cache`) are data frames of this allocator,
/// reached through the direct map.
static FILE_PAGE_FRAMES: forkvm_core::fs::page_cache::PageFrames =
    forkvm_core::fs::page_cache::PageFrames {
        alloc_zeroed: alloc_zeroed_data_frame,
        free: |frame| {
            put_frame(frame.phys());
        },
        read: |frame, offset, buf| read_frame(frame, offset, buf),
        write: |frame, offset, bytes| write_frame(frame, offset, bytes),
    };

/// The boot PML4, the CPU's only page-table root (see `address_space`).
// SAFETY: the VMM builds the boot page tables with their root at
// BOOT_PML4_PHYS; it is a table page for the kernel's whole life.
pub const BOOT_PML4: TablePage = unsafe { TablePage::new(forkvm_abi::BOOT_PML4_PHYS) };

/// Runs `f` on the frame allocator under its lock, counting per CPU the
/// TSC cycles it is held and waited for (`stat`'s `cpuN_frame_lock_*`).
/// A leaf lock: nothing is locked inside it, and it is held for one
/// allocation or reference-count change at a time.
fn with_frames<R>(f: impl FnOnce(&mut FrameAllocator<'static>) -> R) -> R {
    let cpu = crate::arch::percpu::this_cpu();
    let mut frames = lock_counted(&FRAMES, &cpu.frame_lock);
    let taken = crate::arch::cpu::rdtsc();
    let result = f(frames.as_mut().expect("frame allocator initialised"));
    drop(frames);
    cpu.frame_lock.add_held(crate::arch::cpu::rdtsc() - taken);
    result
}

/// Takes `lock`, adding to `counters` the cycles spent waiting if it was
/// taken: the uncontended path costs one TSC read.
fn lock_counted<'a, T>(
    lock: &'a Mutex<T>,
    counters: &crate::arch::percpu::LockCounters,
) -> spin::MutexGuard<'a, T> {
    lock.try_lock().unwrap_or_else(|| {
        let start = crate::arch::cpu::rdtsc();
        let guard = lock.lock();
        counters.add_wait(crate::arch::cpu::rdtsc() - start);
        guard
    })
}

/// Allocates a frame for `usage`; None when none is free.
pub fn alloc_frame(usage: FrameUse) -> Option<Pfn> {
    with_frames(|frames| frames.alloc(usage))
}

/// Allocates a zeroed data frame (zeroed outside the frame lock).
pub fn alloc_zeroed_data_frame() -> Option<DataFrame> {
    let phys = alloc_frame(FrameUse::Data)?.phys();
    // SAFETY: a freshly allocated frame, mapped by the direct map and
    // reachable by nobody else yet.
    unsafe { core::ptr::write_bytes(phys_to_virt(phys) as *mut u8, 0, FRAME_SIZE as usize) };
    // SAFETY: a data frame just allocated, handed out as one.
    Some(unsafe { DataFrame::new(phys) })
}

/// Drops a reference to the frame at `phys`; true when that freed it.
pub fn put_frame(phys: u64) -> bool {
    with_frames(|frames| frames.put(Pfn::containing(phys)))
}

/// Copies `buf.len()` bytes at `offset` of `frame` into `buf`.
pub fn read_frame(frame: DataFrame, offset: usize, buf: &mut [u8]) {
    assert!(
        offset + buf.len() <= FRAME_SIZE as usize,
        "read past a frame"
    );
    // SAFETY: an allocated data frame in RAM (the `DataFrame` contract),
    // reached through the direct map; no reference to the frame is made
    // (other CPUs may write it at the same time, as user threads do).
    unsafe {
        core::ptr::copy_nonoverlapping(
            (phys_to_virt(frame.phys()) as *const u8).add(offset),
            buf.as_mut_ptr(),
            buf.len(),
        )
    };
}

/// Copies `data` to `offset` of `frame`.
pub fn write_frame(frame: DataFrame, offset: usize, data: &[u8]) {
    assert!(
        offset + data.len() <= FRAME_SIZE as usize,
        "write past a frame"
    );
    // SAFETY: as in `read_frame`.
    unsafe {
        core::ptr::copy_nonoverlapping(
            data.as_ptr(),
            (phys_to_virt(frame.phys()) as *mut u8).add(offset),
            data.len(),
        )
    };
}

/// The lock of one page-table tree (Linux `mm->page_table_lock`): an
/// address space's user tables, or the kernel's ([`with_kernel_tables`]).
/// Page-table pages are edited only through [`KernelTables`], which only
/// this lock hands out. Frames are reference-counted under the frame
/// allocator's own lock, taken per operation inside (lock order: an
/// address space's area lock, then its table lock, then the frame lock;
/// two table locks nest only in fork, parent before the new child).
/// Each CPU counts the cycles it holds and waits for table locks (`stat`'s
/// `cpuN_mm_lock_*`).
pub struct PageTableLock(Mutex<()>);

impl PageTableLock {
    pub const fn new() -> PageTableLock {
        PageTableLock(Mutex::new(()))
    }

    /// Runs `f` with the tree's page tables and the frame operations.
    pub fn with_tables<R>(&self, f: impl FnOnce(&mut KernelTables) -> R) -> R {
        let cpu = crate::arch::percpu::this_cpu();
        let guard = lock_counted(&self.0, &cpu.mm_lock);
        let taken = crate::arch::cpu::rdtsc();
        let result = f(&mut KernelTables {
            _locked: core::marker::PhantomData,
        });
        drop(guard);
        cpu.mm_lock.add_held(crate::arch::cpu::rdtsc() - taken);
        result
    }
}

impl Default for PageTableLock {
    fn default() -> Self {
        Self::new()
    }
}

/// The kernel half's tables (shared by every root: kernel stacks, per-CPU
/// windows), Linux's `init_mm.page_table_lock`.
static KERNEL_TABLES: PageTableLock = PageTableLock::new();

/// Runs `f` on the kernel half's page tables.
pub fn with_kernel_tables<R>(f: impl FnOnce(&mut KernelTables) -> R) -> R {
    KERNEL_TABLES.with_tables(f)
}

/// Page-table access through the direct map for the holder of a
/// [`PageTableLock`], allocating table pages and data frames from the
/// frame allocator.
pub struct KernelTables<'a> {
    /// Made only by [`PageTableLock::with_tables`], for as long as it holds
    /// the lock.
    _locked: core::marker::PhantomData<&'a mut ()>,
}

impl self::paging::TableAccess for KernelTables<'_> {
    fn table(&mut self, page: TablePage) -> &mut [u64; 512] {
        // SAFETY: a `TablePage` is a table page in RAM (its type's
        // contract: made only from table entries, `alloc_table` and
        // known roots), which the direct map covers; the holder of this
        // value holds the lock of the tree the page belongs to (a CPU's
        // own root is edited only by that CPU).
        unsafe { &mut *(phys_to_virt(page.phys()) as *mut [u64; 512]) }
    }

    fn alloc_table(&mut self) -> Option<TablePage> {
        if let Some(table) = ZEROED_TABLES.lock().pop() {
            return Some(table);
        }
        let phys = alloc_frame(self::frame::FrameUse::PageTable)?.phys();
        // SAFETY: a freshly allocated frame, mapped by the direct map.
        unsafe { core::ptr::write_bytes(phys_to_virt(phys) as *mut u8, 0, FRAME_SIZE as usize) };
        // SAFETY: a zeroed frame of our own, handed out as a table page.
        Some(unsafe { TablePage::new(phys) })
    }
}

impl self::cow::MemoryOps for KernelTables<'_> {
    fn alloc_data_frame(&mut self) -> Option<DataFrame> {
        alloc_zeroed_data_frame()
    }

    fn get_frame(&mut self, phys: u64) {
        with_frames(|frames| frames.get(Pfn::containing(phys)));
    }

    fn put_frame(&mut self, phys: u64) -> bool {
        put_frame(phys)
    }

    fn frame_refcount(&self, phys: u64) -> u16 {
        with_frames(|frames| frames.refcount(Pfn::containing(phys)))
    }

    fn copy_frame(&mut self, dst: DataFrame, src: DataFrame) {
        // SAFETY: both are allocated data frames in RAM (the
        // `DataFrame` contract; the direct map covers them) and
        // distinct; no reference to either is made.
        unsafe {
            core::ptr::copy_nonoverlapping(
                phys_to_virt(src.phys()) as *const u8,
                phys_to_virt(dst.phys()) as *mut u8,
                FRAME_SIZE as usize,
            )
        };
    }

    fn free_zeroed_table(&mut self, table: TablePage) {
        let mut pool = ZEROED_TABLES.lock();
        if pool.len() < ZEROED_TABLES_MAX {
            pool.push(table);
        } else {
            drop(pool);
            self.put_frame(table.phys());
        }
    }

    fn read_frame(&mut self, frame: DataFrame, offset: usize, buf: &mut [u8]) {
        read_frame(frame, offset, buf);
    }

    fn write_frame(&mut self, frame: DataFrame, offset: usize, data: &[u8]) {
        write_frame(frame, offset, data);
    }
}

/// The entry at `index` of the table page `page`, read whole without a
/// table lock (x86-64 reads an aligned 8-byte entry atomically; the page
/// walker does the same).
fn load_entry(page: TablePage, index: usize) -> u64 {
    assert!(index < 512);
    // SAFETY: a table page in RAM (the `TablePage` contract), covered by
    // the direct map; an aligned u64 read through an atomic, so a
    // concurrent writer under the tree's lock is no data race.
    unsafe { AtomicU64::from_ptr((phys_to_virt(page.phys()) as *mut u64).add(index)) }
        .load(Ordering::Relaxed)
}

/// The user half of the root `root` (read without its table lock: see
/// `address_space::install_user_entries` for why that is enough).
pub fn user_root_entries(root: TablePage) -> [u64; cow::USER_PML4_ENTRIES] {
    core::array::from_fn(|i| load_entry(root, i))
}

/// The kernel half of the boot root, which never changes after boot (its
/// lower tables do, under the kernel's table lock).
pub fn kernel_root_entries() -> [u64; 512 - cow::USER_PML4_ENTRIES] {
    core::array::from_fn(|i| load_entry(BOOT_PML4, cow::USER_PML4_ENTRIES + i))
}

/// Writes `entries` into the user half of `cpu_root`, the root the
/// calling CPU runs on (only that CPU edits it); true if any changed.
pub fn install_in_cpu_root(cpu_root: u64, entries: &[u64; cow::USER_PML4_ENTRIES]) -> bool {
    // SAFETY: every CPU's root is a table page mm set up at boot and never
    // frees.
    let root = unsafe { TablePage::new(cpu_root) };
    let mut changed = false;
    for (i, &entry) in entries.iter().enumerate() {
        if load_entry(root, i) != entry {
            // SAFETY: as in `load_entry`; this CPU is the root's only
            // writer, and other CPUs only read its entries atomically.
            unsafe { AtomicU64::from_ptr((phys_to_virt(cpu_root) as *mut u64).add(i)) }
                .store(entry, Ordering::Relaxed);
            changed = true;
        }
    }
    changed
}

/// Freed page-table pages, still all zeros, kept for the next table
/// allocation: on the PVM host (shadow paging) zeroing a page that was
/// a page table costs ~8 us, and a fork allocates several tables.
static ZEROED_TABLES: Mutex<alloc::vec::Vec<TablePage>> = Mutex::new(alloc::vec::Vec::new());
/// Most pages kept in [`ZEROED_TABLES`] (they count as used frames).
const ZEROED_TABLES_MAX: usize = 64;

/// Page-table pages kept for reuse.
pub fn pooled_tables() -> usize {
    ZEROED_TABLES.lock().len()
}

/// Frame counts: (total handed to the allocator, free now).
pub fn frame_counts() -> (usize, usize) {
    FRAMES
        .lock()
        .as_ref()
        .map_or((0, 0), |a| (a.total_frames(), a.free_frames()))
}
