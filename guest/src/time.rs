//! Kernel time: the TSC for clocks, the APIC timer for ticks; interval
//! timers in [`itimer`].

pub mod itimer;

use core::sync::atomic::{AtomicU64, Ordering};

use crate::arch::cpu::rdtsc;

/// Tick frequency. 250 Hz keeps the tick cost (tens of microseconds per
/// tick on the PVM host) around 1% of a CPU.
pub const TICK_HZ: u64 = 250;

static TSC_KHZ: AtomicU64 = AtomicU64::new(1);
static BOOT_TSC: AtomicU64 = AtomicU64::new(0);
static TICKS: AtomicU64 = AtomicU64::new(0);

/// Records the TSC frequency (from the VMM) and the boot time stamp.
pub fn init(tsc_khz: u64, boot_tsc: u64) {
    TSC_KHZ.store(tsc_khz.max(1), Ordering::Relaxed);
    BOOT_TSC.store(boot_tsc, Ordering::Relaxed);
}

/// TSC frequency in kHz.
pub fn tsc_khz() -> u64 {
    TSC_KHZ.load(Ordering::Relaxed)
}

/// TSC cycles per tick.
pub fn tick_period_tsc() -> u64 {
    tsc_khz() * 1000 / TICK_HZ
}

/// Converts TSC cycles to nanoseconds.
pub fn tsc_to_ns(cycles: u64) -> u64 {
    (u128::from(cycles) * 1_000_000 / u128::from(tsc_khz())) as u64
}

/// Converts nanoseconds to TSC cycles.
pub fn ns_to_tsc(ns: u64) -> u64 {
    (u128::from(ns) * u128::from(tsc_khz()) / 1_000_000) as u64
}

/// Converts milliseconds to TSC cycles.
pub fn ms_to_tsc(ms: u64) -> u64 {
    ms * tsc_khz()
}

/// Nanoseconds since the kernel was entered.
pub fn uptime_ns() -> u64 {
    tsc_to_ns(rdtsc().wrapping_sub(BOOT_TSC.load(Ordering::Relaxed)))
}

/// Timer ticks taken since the timer started.
pub fn ticks() -> u64 {
    TICKS.load(Ordering::Relaxed)
}

/// Called from the boot CPU's timer interrupt: the clock, and the real
/// interval timers due.
pub fn tick() {
    TICKS.fetch_add(1, Ordering::Relaxed);
    itimer::run_real_timers();
}

/// Called from every CPU's timer interrupt: the CPU-time interval timers
/// of the process running there.
pub fn tick_cpu_timers() {
    let task = crate::sched::current();
    if !crate::sched::is_idle(&task) {
        itimer::run_cpu_timers(&task);
    }
}

/// The TSC value a relative timeout `(seconds, nanoseconds)` ends at
/// (Linux `timespec64_valid` first: EINVAL for negative seconds or
/// nanoseconds out of 0..1e9).
pub fn relative_deadline((seconds, nanoseconds): (i64, i64)) -> Result<u64, i32> {
    if seconds < 0 || !(0..1_000_000_000).contains(&nanoseconds) {
        return Err(crate::errno::EINVAL);
    }
    let ns = (seconds as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(nanoseconds as u64);
    // Capped (decades) so the conversion cannot overflow.
    let cycles = ns_to_tsc(ns.min(u64::MAX / 16));
    Ok(crate::arch::cpu::rdtsc().saturating_add(cycles))
}
