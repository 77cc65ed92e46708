//! Memory management: physical frames and the kernel heap.

pub mod address_space;
pub mod file_map;
pub mod heap;
pub mod kstack;

pub use forkvm_core::mm::{cow, frame, paging, vma};

use forkvm_abi::{BootInfo, LOW_MEMORY_END, PAGE_OFFSET};
use spin::Mutex;

use self::cow::{DataFrame, MemoryOps};
use self::frame::{FrameAllocator, Pfn, FRAME_SIZE};
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
        alloc_zeroed: || with_memory(|memory| memory.alloc_data_frame()),
        free: |frame| {
            with_memory(|memory| memory.put_frame(frame.phys()));
        },
        read: |frame, offset, buf| {
            with_memory(|memory| {
                buf.copy_from_slice(&memory.frame_bytes(frame)[offset..offset + buf.len()])
            })
        },
        write: |frame, offset, bytes| {
            with_memory(|memory| {
                memory.frame_bytes(frame)[offset..offset + bytes.len()].copy_from_slice(bytes)
            })
        },
    };

/// The boot PML4, the CPU's only page-table root (see `address_space`).
// SAFETY: the VMM builds the boot page tables with their root at
// BOOT_PML4_PHYS; it is a table page for the kernel's whole life.
pub const BOOT_PML4: TablePage = unsafe { TablePage::new(forkvm_abi::BOOT_PML4_PHYS) };

/// Page-table access through the direct map, allocating table pages
/// from the frame allocator.
pub struct KernelTables<'a>(pub &'a mut FrameAllocator<'static>);

impl self::paging::TableAccess for KernelTables<'_> {
    fn table(&mut self, page: TablePage) -> &mut [u64; 512] {
        // SAFETY: a `TablePage` is a table page in RAM (its type's
        // contract: made only from table entries, `alloc_table` and
        // known roots), which the direct map covers; the frame
        // allocator's lock (held by the caller through `self.0`)
        // serialises page-table edits.
        unsafe { &mut *(phys_to_virt(page.phys()) as *mut [u64; 512]) }
    }

    fn alloc_table(&mut self) -> Option<TablePage> {
        if let Some(table) = ZEROED_TABLES.lock().pop() {
            return Some(table);
        }
        let phys = self.0.alloc(self::frame::FrameUse::PageTable)?.phys();
        // SAFETY: a freshly allocated frame, mapped by the direct map.
        unsafe { core::ptr::write_bytes(phys_to_virt(phys) as *mut u8, 0, FRAME_SIZE as usize) };
        // SAFETY: a zeroed frame of our own, handed out as a table page.
        Some(unsafe { TablePage::new(phys) })
    }
}

impl self::cow::MemoryOps for KernelTables<'_> {
    fn alloc_data_frame(&mut self) -> Option<DataFrame> {
        let phys = self.0.alloc(self::frame::FrameUse::Data)?.phys();
        // SAFETY: a freshly allocated frame, mapped by the direct map.
        unsafe { core::ptr::write_bytes(phys_to_virt(phys) as *mut u8, 0, FRAME_SIZE as usize) };
        // SAFETY: a data frame just allocated, handed out as one.
        Some(unsafe { DataFrame::new(phys) })
    }

    fn get_frame(&mut self, phys: u64) {
        self.0.get(Pfn::containing(phys));
    }

    fn put_frame(&mut self, phys: u64) -> bool {
        self.0.put(Pfn::containing(phys))
    }

    fn frame_refcount(&self, phys: u64) -> u16 {
        self.0.refcount(Pfn::containing(phys))
    }

    fn copy_frame(&mut self, dst: DataFrame, src: DataFrame) {
        // SAFETY: both are allocated data frames in RAM (the
        // `DataFrame` contract; the direct map covers them) and
        // distinct.
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

    fn frame_bytes(&mut self, frame: DataFrame) -> &mut [u8; 4096] {
        // SAFETY: an allocated data frame in RAM (the `DataFrame`
        // contract), reached through the direct map; the frame lock
        // (held through `self.0`) serialises users.
        unsafe { &mut *(phys_to_virt(frame.phys()) as *mut [u8; 4096]) }
    }
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

/// Runs `f` with the kernel's page-table and frame operations.
///
/// One lock for the frame allocator and every address space's page
/// tables (frame reference counts and the table entries that hold them
/// change together). Each CPU counts the TSC cycles it holds and waits for
/// it (`stat`'s `cpuN_mm_lock_*`): the uncontended path costs two TSC
/// reads.
pub fn with_memory<R>(f: impl FnOnce(&mut KernelTables) -> R) -> R {
    use crate::arch::cpu::rdtsc;
    use core::sync::atomic::Ordering::Relaxed;
    let cpu = crate::arch::percpu::this_cpu();
    let mut frames = FRAMES.try_lock().unwrap_or_else(|| {
        let start = rdtsc();
        let frames = FRAMES.lock();
        cpu.mm_lock_wait_cycles.fetch_add(rdtsc() - start, Relaxed);
        cpu.mm_lock_contended.fetch_add(1, Relaxed);
        frames
    });
    let frames = frames.as_mut().expect("frame allocator initialised");
    let taken = rdtsc();
    let result = f(&mut KernelTables(frames));
    cpu.mm_lock_held_cycles.fetch_add(rdtsc() - taken, Relaxed);
    result
}

/// Frame counts: (total handed to the allocator, free now).
pub fn frame_counts() -> (usize, usize) {
    FRAMES
        .lock()
        .as_ref()
        .map_or((0, 0), |a| (a.total_frames(), a.free_frames()))
}
