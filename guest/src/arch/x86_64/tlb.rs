//! TLB shootdown: making other CPUs forget translations this one changed.
//!
//! Each CPU publishes the root of the address space it has installed
//! (`CpuLocal::active_root`), so the CPUs that may cache an address space's
//! translations (Linux's `mm_cpumask`) are found by looking. After changing
//! page tables that other CPUs may cache (write-protect at fork, munmap,
//! mprotect, a COW break, an address space's death, a kernel stack's
//! unmapping), the changer calls [`shootdown_user`] or
//! [`shootdown_kernel`]: one IPI per target CPU per operation, then it
//! waits until each target has flushed (so frames may then be reused).
//! A target takes the IPI in user mode or in its idle loop (the kernel runs
//! with interrupts off); a CPU that waits here serves requests aimed at it
//! meanwhile, so two CPUs shooting at each other cannot deadlock.
//! With one CPU nothing of this runs.
//!
//! `debug.tlb_shootdown` (root, default 1) = 0 makes
//! [`shootdown_user_nothing_freed`] send nothing: for the tests that show
//! a stale translation on another CPU is seen without the IPI. Shootdowns
//! after which frames are freed are always sent (skipping those would let
//! another CPU write to reused frames).

use core::sync::atomic::{AtomicBool, Ordering};

use spin::Mutex;

use super::{apic, interrupts, percpu};

/// One shootdown at a time (targets have one request slot each).
static SHOOTDOWN: Mutex<()> = Mutex::new(());

/// `flush_request` for kernel mappings: a full flush (CR3 reload).
const KERNEL_ALL: u64 = 1;

/// `debug.tlb_shootdown`: whether [`shootdown_user_nothing_freed`] sends IPIs.
static NOTHING_FREED_SHOOTDOWNS: AtomicBool = AtomicBool::new(true);

/// `debug.tlb_shootdown` (0 or 1).
pub fn nothing_freed_shootdowns() -> bool {
    NOTHING_FREED_SHOOTDOWNS.load(Ordering::Relaxed)
}

pub fn set_nothing_freed_shootdowns(on: bool) {
    NOTHING_FREED_SHOOTDOWNS.store(on, Ordering::Relaxed);
}

/// [`shootdown_user`] after a change that narrowed rights or replaced a
/// page but freed no frame (fork's write-protect, a COW break); skipped
/// when `debug.tlb_shootdown` is 0.
pub fn shootdown_user_nothing_freed(root: u64) -> u32 {
    if !nothing_freed_shootdowns() {
        return 0;
    }
    shootdown_user(root)
}

/// Flushes `root`'s translations on every other CPU that has it installed.
/// Returns how many CPUs were asked.
pub fn shootdown_user(root: u64) -> u32 {
    shootdown(root, |local| {
        local.active_root.load(Ordering::SeqCst) == root
    })
}

/// Flushes every CPU's translations of kernel mappings that were just
/// removed (a kernel stack's pages), on every other online CPU.
pub fn shootdown_kernel() -> u32 {
    shootdown(KERNEL_ALL, |_| true)
}

fn shootdown(request: u64, wanted: impl Fn(&percpu::CpuLocal) -> bool) -> u32 {
    let nr_cpus = percpu::nr_cpus();
    if nr_cpus == 1 {
        return 0;
    }
    // Our page-table change must be visible before we look at who has the
    // address space installed (a CPU installing it concurrently publishes
    // its root, then reads the tables: see `activate`).
    core::sync::atomic::fence(Ordering::SeqCst);
    let me = percpu::cpu_id();
    let targets = (0..nr_cpus).filter(|&cpu| {
        cpu != me && percpu::is_online(cpu) && percpu::cpu_local(cpu).is_some_and(&wanted)
    });
    let mut mask = 0u64;
    for cpu in targets {
        mask |= 1 << cpu;
    }
    if mask == 0 {
        return 0;
    }
    let _one_at_a_time = loop {
        if let Some(guard) = SHOOTDOWN.try_lock() {
            break guard;
        }
        serve_pending();
        core::hint::spin_loop();
    };
    let this = percpu::this_cpu();
    this.shootdowns_sent.fetch_add(1, Ordering::Relaxed);
    let each = || (0..nr_cpus).filter(move |cpu| mask & (1 << cpu) != 0);
    for cpu in each() {
        let local = percpu::cpu_local(cpu).expect("online CPU");
        local.flush_request.store(request, Ordering::SeqCst);
        apic::send_ipi(cpu, interrupts::TLB_FLUSH_VECTOR);
    }
    for cpu in each() {
        let local = percpu::cpu_local(cpu).expect("online CPU");
        while local.flush_request.load(Ordering::SeqCst) != 0 {
            serve_pending();
            core::hint::spin_loop();
        }
    }
    mask.count_ones()
}

/// Serves a flush request aimed at this CPU, if there is one: from the
/// IPI handler, and from CPUs waiting in [`shootdown`].
pub fn serve_pending() {
    let local = percpu::this_cpu();
    let request = local.flush_request.load(Ordering::SeqCst);
    if request == 0 {
        return;
    }
    if request == KERNEL_ALL {
        let root = forkvm_abi::cpu_root_phys(percpu::cpu_id());
        // SAFETY: reloading this CPU's own root, which maps the kernel.
        unsafe { super::cpu::write_cr3(root) };
    } else {
        crate::mm::address_space::flush_for_shootdown(request);
    }
    local.flushes_received.fetch_add(1, Ordering::Relaxed);
    local.flush_request.store(0, Ordering::SeqCst);
}
