//! Per-CPU data, reached through a fixed virtual window.
//!
//! Every CPU runs on its own root page table for good (the boot PML4 for
//! CPU 0, `forkvm_abi::cpu_root_phys(n)` for the others, all at odd page
//! frames, the only roots on which the PVM host runs kernel code natively).
//! Entry
//! [`WINDOW_PML4_INDEX`] of each root maps that CPU's own [`CpuLocal`] page
//! at the same address, [`WINDOW`], so code reaches its CPU's data with an
//! absolute address: no GS base (which belongs to user programs here, and
//! whose `swapgs` would trap on the PVM host), no register, nothing that
//! costs a trap. The entry assembly uses it before it has a stack
//! (`syscall`) or before it knows which stack it is on (PVM events).
//!
//! Other CPUs' data is reached through the direct map ([`cpu_local`]).

use core::mem::offset_of;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use forkvm_abi::{MAX_CPUS, PAGE_OFFSET};

/// PML4 entry of the window: a kernel-half (lower-half) entry no other
/// mapping uses (the direct map and the kernel stacks are under entry 128).
pub const WINDOW_PML4_INDEX: usize = 255;
/// Address of the running CPU's [`CpuLocal`].
pub const WINDOW: u64 = (WINDOW_PML4_INDEX as u64) << 39;

/// One CPU's own data (one page). The fields the entry assembly touches
/// come first, at the offsets below.
#[repr(C)]
pub struct CpuLocal {
    /// The `syscall` entry parks the user's rax here while it switches stacks.
    pub entry_scratch: AtomicU64,
    /// The user stack pointer at `syscall` entry.
    pub user_rsp: AtomicU64,
    /// Top of the stack that entries from user mode switch to (the current
    /// task's kernel stack); the PVM entry path moves there itself.
    pub kernel_entry_stack: AtomicU64,
    /// PVM host: nonzero from the last instructions of a return to user
    /// mode (`sti; iretq`) until the next event or system call entry,
    /// which clears it (the hardware CS does not tell user from kernel
    /// there).
    pub pvm_user_mode: AtomicU64,
    /// This CPU's number (its x2APIC id).
    pub cpu: AtomicU64,
    /// This CPU's task-state segment (TSS.rsp0 follows the kernel stack).
    pub tss: AtomicU64,
    /// The timer's next TSC deadline (TSC-deadline mode is one-shot).
    pub next_deadline: AtomicU64,
    /// Timer interrupts taken.
    pub ticks: AtomicU64,
    /// Inter-processor interrupts sent from and received on this CPU.
    pub ipis_sent: AtomicU64,
    pub ipis_received: AtomicU64,
    /// Set by another CPU (with an IPI) to make this one panic with the
    /// test message of `forkvm_diag(DIAG_PANIC_ON_CPU, cpu)`.
    pub panic_request: AtomicU64,
    /// Root of the address space whose user entries are installed in this
    /// CPU's root (0: none). Together these make Linux's `mm_cpumask`:
    /// a TLB shootdown for an address space goes to the CPUs whose
    /// `active_root` is its root.
    pub active_root: AtomicU64,
    /// An address space that died while installed here (see
    /// `mm::address_space::activate`).
    pub dead_root: AtomicU64,
    /// A TLB flush another CPU asks of this one (see `tlb`): a user root,
    /// or a kernel page address with bit 0 set; 0 when done (the ack).
    pub flush_request: AtomicU64,
    /// TLB shootdowns this CPU asked of others (one per operation) and
    /// flush requests it served.
    pub shootdowns_sent: AtomicU64,
    pub flushes_received: AtomicU64,
    /// The page-table locks (`mm::PageTableLock`: every page-table edit)
    /// and the frame allocator's lock as this CPU saw them: what keeps
    /// fork from scaling across CPUs when they are contended (`stat`).
    pub mm_lock: LockCounters,
    pub frame_lock: LockCounters,
}

/// One CPU's view of a kind of lock: TSC cycles it held it, cycles it
/// spun waiting for it, and the acquisitions that had to wait.
#[derive(Default)]
pub struct LockCounters {
    pub held_cycles: AtomicU64,
    pub wait_cycles: AtomicU64,
    pub contended: AtomicU64,
}

impl LockCounters {
    pub fn add_held(&self, cycles: u64) {
        self.held_cycles.fetch_add(cycles, Ordering::Relaxed);
    }

    pub fn add_wait(&self, cycles: u64) {
        self.wait_cycles.fetch_add(cycles, Ordering::Relaxed);
        self.contended.fetch_add(1, Ordering::Relaxed);
    }
}

pub const OFFSET_SCRATCH: usize = offset_of!(CpuLocal, entry_scratch);
pub const OFFSET_USER_RSP: usize = offset_of!(CpuLocal, user_rsp);
pub const OFFSET_ENTRY_STACK: usize = offset_of!(CpuLocal, kernel_entry_stack);
pub const OFFSET_USER_MODE: usize = offset_of!(CpuLocal, pvm_user_mode);

const _: () = assert!(core::mem::size_of::<CpuLocal>() <= 4096);

/// Direct-map address of each CPU's [`CpuLocal`] (0: not set up).
static CPU_LOCALS: [AtomicU64; MAX_CPUS as usize] =
    [const { AtomicU64::new(0) }; MAX_CPUS as usize];
/// CPUs the VMM gave the guest.
static NR_CPUS: AtomicU32 = AtomicU32::new(1);
/// Which CPUs have come up (run their idle loop with interrupts on).
static ONLINE: [AtomicBool; MAX_CPUS as usize] =
    [const { AtomicBool::new(false) }; MAX_CPUS as usize];

/// The running CPU's data.
#[inline]
pub fn this_cpu() -> &'static CpuLocal {
    // SAFETY: every CPU maps its own CpuLocal page at WINDOW before any
    // code that calls this runs (`init_boot_cpu`, `map_window` for the
    // others), and the page lives forever.
    unsafe { &*(WINDOW as *const CpuLocal) }
}

/// The running CPU's number.
#[inline]
pub fn cpu_id() -> u32 {
    this_cpu().cpu.load(Ordering::Relaxed) as u32
}

/// CPU `cpu`'s data, if it was set up.
pub fn cpu_local(cpu: u32) -> Option<&'static CpuLocal> {
    let address = CPU_LOCALS.get(cpu as usize)?.load(Ordering::Acquire);
    // SAFETY: a nonzero entry is the direct-map address of a CpuLocal page
    // that is never freed.
    (address != 0).then(|| unsafe { &*(address as *const CpuLocal) })
}

/// Number of CPUs the VMM gave the guest.
pub fn nr_cpus() -> u32 {
    NR_CPUS.load(Ordering::Relaxed)
}

pub fn set_nr_cpus(n: u32) {
    NR_CPUS.store(n.clamp(1, MAX_CPUS), Ordering::Relaxed);
}

pub fn set_online(cpu: u32) {
    ONLINE[cpu as usize].store(true, Ordering::Release);
}

/// CPUs online now (Linux `num_online_cpus`).
pub fn online_count() -> u32 {
    (0..nr_cpus()).filter(|&cpu| is_online(cpu)).count() as u32
}

pub fn is_online(cpu: u32) -> bool {
    ONLINE
        .get(cpu as usize)
        .is_some_and(|o| o.load(Ordering::Acquire))
}

/// Maps the window in the root at `root_phys`: PML4 entry -> `tables[0]`
/// (PDPT) -> `tables[1]` (PD) -> `tables[2]` (PT) -> the page `data_phys`,
/// which becomes CPU `cpu`'s zeroed CpuLocal. The table pages must not be
/// 2 MiB-aligned (the PVM host's rule for page-table pages).
///
/// # Safety
/// The four pages must be unused, stay allocated for good, and `root_phys`
/// must be a CPU root that no CPU runs on yet, or the caller's own (whose
/// window entry is still empty).
pub unsafe fn map_window(root_phys: u64, tables: [u64; 3], data_phys: u64, cpu: u32) {
    use crate::mm::paging::flags::{NO_EXECUTE, PRESENT, WRITABLE};
    let kernel = super::platform::kernel_page_flags();
    let entry = |phys: u64| phys | PRESENT | WRITABLE | kernel;
    let virt = |phys: u64| (PAGE_OFFSET + phys) as *mut u64;
    // SAFETY: all five pages are reachable through the direct map, and the
    // caller guarantees they are ours to write.
    unsafe {
        for &table in &tables {
            core::ptr::write_bytes(virt(table), 0, 512);
        }
        core::ptr::write_bytes(virt(data_phys), 0, 512);
        let local = &*(virt(data_phys) as *const CpuLocal);
        local.cpu.store(u64::from(cpu), Ordering::Relaxed);
        virt(tables[2]).write_volatile(entry(data_phys) | nx_if_supported(NO_EXECUTE));
        virt(tables[1]).write_volatile(entry(tables[2]));
        virt(tables[0]).write_volatile(entry(tables[1]));
        virt(root_phys)
            .add(WINDOW_PML4_INDEX)
            .write_volatile(entry(tables[0]));
    }
    CPU_LOCALS[cpu as usize].store(PAGE_OFFSET + data_phys, Ordering::Release);
}

/// The no-execute bit if EFER.NXE is on (else the bit is reserved).
fn nx_if_supported(bit: u64) -> u64 {
    const EFER: u32 = 0xc000_0080;
    const EFER_NXE: u64 = 1 << 11;
    if super::cpu::rdmsr(EFER) & EFER_NXE != 0 {
        bit
    } else {
        0
    }
}

#[repr(C, align(4096))]
struct Page([u8; 4096]);

/// The boot CPU's window pages, in the image: the window must work before
/// the frame allocator does (the entry code uses it for every trap). One
/// spare, so three table pages can avoid a 2 MiB-aligned address.
static mut BOOT_CPU_PAGES: [Page; 5] = [const { Page([0; 4096]) }; 5];

/// Maps CPU 0's window into the boot root. First thing `arch::init` does.
pub fn init_boot_cpu() {
    let base = (&raw const BOOT_CPU_PAGES) as u64 - PAGE_OFFSET;
    let mut tables = [0u64; 3];
    let mut pages = (0..5).map(|i| base + i * 4096);
    for table in tables.iter_mut() {
        *table = pages
            .by_ref()
            .find(|phys| phys % (2 << 20) != 0)
            .expect("two 2 MiB boundaries cannot fall in five pages");
    }
    let data = pages.next().expect("a page left for the data");
    // SAFETY: the pages are this static's, used for nothing else, and the
    // boot root's window entry is empty (the VMM does not map it).
    unsafe { map_window(forkvm_abi::cpu_root_phys(0), tables, data, 0) };
    set_online(0);
}
