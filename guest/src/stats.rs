//! Event counters, for understanding where time goes (`stat`).

use core::sync::atomic::{AtomicU64, Ordering};

/// A monotonically increasing event count.
pub struct Counter(AtomicU64);

impl Counter {
    pub const fn new() -> Counter {
        Counter(AtomicU64::new(0))
    }

    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl Default for Counter {
    fn default() -> Self {
        Self::new()
    }
}

/// System calls made.
pub static SYSCALLS: Counter = Counter::new();
/// Page faults resolved by mapping a zeroed page.
pub static FAULTS_DEMAND_ZERO: Counter = Counter::new();
/// Copy-on-write faults that copied the page.
pub static FAULTS_COW_COPY: Counter = Counter::new();
/// Copy-on-write faults that reused the page (last reference).
pub static FAULTS_COW_REUSE: Counter = Counter::new();
/// Faults that mapped pages of a file from its page cache.
pub static FAULTS_FILE: Counter = Counter::new();
/// Faults that found the page already fixed (stale TLB entry).
pub static FAULTS_SPURIOUS: Counter = Counter::new();
/// Full TLB flushes (CR3 reloads).
pub static TLB_FLUSHES: Counter = Counter::new();
/// Tasks created by clone/fork/vfork.
pub static TASKS_CREATED: Counter = Counter::new();
/// Processes the OOM killer killed (Linux `oom_kill` in /proc/vmstat).
pub static OOM_KILLS: Counter = Counter::new();

/// Time the boot spent unpacking the initramfs, in microseconds.
pub static INITRAMFS_UNPACK_US: Counter = Counter::new();

/// (name, value) of every counter.
pub fn all() -> [(&'static str, u64); 10] {
    [
        ("syscalls", SYSCALLS.get()),
        ("faults_demand_zero", FAULTS_DEMAND_ZERO.get()),
        ("faults_cow_copy", FAULTS_COW_COPY.get()),
        ("faults_cow_reuse", FAULTS_COW_REUSE.get()),
        ("faults_spurious", FAULTS_SPURIOUS.get()),
        ("faults_file", FAULTS_FILE.get()),
        ("tlb_flushes", TLB_FLUSHES.get()),
        ("tasks_created", TASKS_CREATED.get()),
        ("initramfs_unpack_us", INITRAMFS_UNPACK_US.get()),
        ("oom_kill", OOM_KILLS.get()),
    ]
}
