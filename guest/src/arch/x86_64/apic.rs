//! The local APIC in x2APIC mode (all registers are MSRs, no MMIO mapping)
//! and its timer, which drives the kernel tick.
//!
//! The timer uses TSC-deadline mode when the CPU offers it (the TSC
//! frequency comes from the VMM), else periodic mode calibrated against the
//! TSC. Both work on the PVM host (docs/ARCHITECTURE.md, "Platform modes").

use core::sync::atomic::{AtomicU64, Ordering};

use super::cpu::{cpuid, rdmsr, rdtsc, wrmsr};

const IA32_APIC_BASE: u32 = 0x1b;
const APIC_BASE_ENABLE: u64 = 1 << 11;
const APIC_BASE_X2APIC: u64 = 1 << 10;
const IA32_TSC_DEADLINE: u32 = 0x6e0;

const X2APIC_ID: u32 = 0x802;
const X2APIC_EOI: u32 = 0x80b;
const X2APIC_SVR: u32 = 0x80f;
const X2APIC_LVT_TIMER: u32 = 0x832;
const X2APIC_LVT_LINT0: u32 = 0x835;
const X2APIC_LVT_LINT1: u32 = 0x836;
const X2APIC_TIMER_INITIAL_COUNT: u32 = 0x838;
const X2APIC_TIMER_CURRENT_COUNT: u32 = 0x839;
const X2APIC_TIMER_DIVIDE: u32 = 0x83e;

const LVT_MASKED: u64 = 1 << 16;
const LVT_TIMER_PERIODIC: u64 = 1 << 17;
const LVT_TIMER_TSC_DEADLINE: u64 = 2 << 17;
const SVR_ENABLE: u64 = 1 << 8;

/// Vector of the spurious interrupt.
pub const SPURIOUS_VECTOR: u8 = 0xff;

/// How the timer is programmed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimerMode {
    TscDeadline,
    Periodic,
}

impl TimerMode {
    pub fn name(self) -> &'static str {
        match self {
            Self::TscDeadline => "tsc-deadline",
            Self::Periodic => "periodic",
        }
    }
}

static TICK_TSC_PERIOD: AtomicU64 = AtomicU64::new(0);
static MODE_IS_DEADLINE: AtomicU64 = AtomicU64::new(0);

/// Whether the CPU advertises x2APIC.
pub fn has_x2apic() -> bool {
    cpuid(1, 0).ecx & (1 << 21) != 0
}

/// Switches the local APIC to x2APIC mode, enables it and masks the
/// legacy LINT pins (the 8259 PIC is not used).
pub fn init() {
    // SAFETY: the CPU advertises x2APIC (checked by the caller) and these
    // are the architectural APIC MSRs.
    unsafe {
        let base = rdmsr(IA32_APIC_BASE);
        wrmsr(IA32_APIC_BASE, base | APIC_BASE_ENABLE | APIC_BASE_X2APIC);
        wrmsr(X2APIC_SVR, SVR_ENABLE | u64::from(SPURIOUS_VECTOR));
        wrmsr(X2APIC_LVT_LINT0, LVT_MASKED);
        wrmsr(X2APIC_LVT_LINT1, LVT_MASKED);
    }
}

/// This CPU's APIC id.
pub fn id() -> u32 {
    rdmsr(X2APIC_ID) as u32
}

const X2APIC_ICR: u32 = 0x830;

/// Sends a fixed interrupt on `vector` to the CPU with x2APIC id `cpu`
/// (one `wrmsr` to the interrupt command register; the in-kernel APIC
/// delivers it).
pub fn send_ipi(cpu: u32, vector: u8) {
    // SAFETY: a fixed, physical-destination IPI to a vector with a handler.
    unsafe { wrmsr(X2APIC_ICR, (u64::from(cpu) << 32) | u64::from(vector)) };
    super::percpu::this_cpu()
        .ipis_sent
        .fetch_add(1, Ordering::Relaxed);
}

/// Signals end of interrupt.
#[inline]
pub fn eoi() {
    // SAFETY: writing 0 to the EOI register only acknowledges the interrupt
    // being serviced.
    unsafe { wrmsr(X2APIC_EOI, 0) };
}

/// Starts the tick: one interrupt on `vector` every `period_tsc` TSC cycles.
pub fn start_timer(vector: u8, period_tsc: u64) -> TimerMode {
    TICK_TSC_PERIOD.store(period_tsc, Ordering::Relaxed);
    let tsc_deadline = cpuid(1, 0).ecx & (1 << 24) != 0;
    // SAFETY: architectural timer MSRs; the vector has a handler.
    unsafe {
        if tsc_deadline {
            MODE_IS_DEADLINE.store(1, Ordering::Relaxed);
            wrmsr(X2APIC_LVT_TIMER, LVT_TIMER_TSC_DEADLINE | u64::from(vector));
            let first = rdtsc() + period_tsc;
            super::percpu::this_cpu()
                .next_deadline
                .store(first, Ordering::Relaxed);
            wrmsr(IA32_TSC_DEADLINE, first);
            TimerMode::TscDeadline
        } else {
            let count = calibrate_periodic_count(period_tsc);
            wrmsr(X2APIC_LVT_TIMER, LVT_TIMER_PERIODIC | u64::from(vector));
            wrmsr(X2APIC_TIMER_INITIAL_COUNT, count);
            TimerMode::Periodic
        }
    }
}

/// Called from the timer interrupt: arms the next deadline (TSC-deadline
/// mode is one-shot). Deadlines advance by whole periods so ticks do not
/// drift; after a long stall the next one is one period from now.
pub fn rearm_timer() {
    if MODE_IS_DEADLINE.load(Ordering::Relaxed) == 0 {
        return;
    }
    let period = TICK_TSC_PERIOD.load(Ordering::Relaxed);
    let now = rdtsc();
    let deadline = &super::percpu::this_cpu().next_deadline;
    let mut next = deadline.load(Ordering::Relaxed) + period;
    if next <= now {
        next = now + period;
    }
    deadline.store(next, Ordering::Relaxed);
    // SAFETY: TSC-deadline mode is active (checked above).
    unsafe { wrmsr(IA32_TSC_DEADLINE, next) };
}

/// Measures how many APIC timer counts (divide by 1) elapse in `period_tsc`
/// TSC cycles, using a one-shot countdown over a short window.
fn calibrate_periodic_count(period_tsc: u64) -> u64 {
    const WINDOW_TSC: u64 = 2_000_000; // ~1 ms at 2 GHz
    const START: u64 = u32::MAX as u64;
    // SAFETY: architectural timer MSRs; the timer is masked while measuring.
    unsafe {
        wrmsr(X2APIC_TIMER_DIVIDE, 0xb); // divide by 1
        wrmsr(X2APIC_LVT_TIMER, LVT_MASKED);
        let t0 = rdtsc();
        wrmsr(X2APIC_TIMER_INITIAL_COUNT, START);
        while rdtsc() - t0 < WINDOW_TSC {
            core::hint::spin_loop();
        }
        let elapsed_counts = START - rdmsr(X2APIC_TIMER_CURRENT_COUNT);
        let elapsed_tsc = rdtsc() - t0;
        wrmsr(X2APIC_TIMER_INITIAL_COUNT, 0);
        (elapsed_counts * period_tsc / elapsed_tsc.max(1)).max(1)
    }
}
