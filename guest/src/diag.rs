//! Kernel measurements that only the kernel can make: where timer ticks
//! arrive (kernel spinning, idle, user mode) and what one costs.

use forkvm_abi::sys::TickReport;

use crate::arch::apic::TimerMode;
use crate::arch::cpu::{disable_interrupts, enable_interrupts, enable_interrupts_and_halt, rdtsc};
use crate::arch::user_probe::{self, STOLEN_GAP_CYCLES};
use crate::errno::{EINVAL, ENOMEM};
use crate::time;

/// Longest measurement window.
pub const MAX_WINDOW_MS: u64 = 10_000;

/// Counts ticks over `ms` milliseconds three times: with the kernel
/// spinning (interrupts on), halted in `sti; hlt`, and spinning in user
/// mode; and the time each tick took from the interrupted code.
pub fn measure_ticks(ms: u64) -> Result<TickReport, i32> {
    if !(1..=MAX_WINDOW_MS).contains(&ms) {
        return Err(EINVAL);
    }
    let window = time::ms_to_tsc(ms);

    enable_interrupts();
    let start_ticks = this_cpu_ticks();
    let busy_stolen = spin_in_kernel(rdtsc() + window);
    let kernel_busy = this_cpu_ticks() - start_ticks;

    let start_ticks = this_cpu_ticks();
    let start = rdtsc();
    while rdtsc() - start < window {
        enable_interrupts_and_halt();
    }
    let idle = this_cpu_ticks() - start_ticks;
    // The kernel runs with interrupts off (they are taken in user mode and
    // in the idle loop).
    disable_interrupts();

    let start_ticks = this_cpu_ticks();
    let user_stolen = user_probe::spin_in_user_mode(rdtsc() + window).map_err(|_| ENOMEM)?;
    let user = this_cpu_ticks() - start_ticks;

    let per_tick_ns = |stolen: u64, ticks: u64| time::tsc_to_ns(stolen / ticks.max(1));
    Ok(TickReport {
        window_ms: ms,
        expected: ms * time::TICK_HZ / 1000,
        kernel_busy,
        idle,
        user,
        kernel_cost_ns: per_tick_ns(busy_stolen, kernel_busy),
        user_cost_ns: per_tick_ns(user_stolen, user),
        timer_mode: match crate::TIMER_MODE.get() {
            Some(TimerMode::Periodic) => 1,
            _ => 0,
        },
        tick_hz: time::TICK_HZ as u32,
    })
}

/// Timer interrupts taken by the CPU running the probe (the global clock
/// counts the boot CPU's only; the probe may run on another).
fn this_cpu_ticks() -> u64 {
    crate::arch::percpu::this_cpu()
        .ticks
        .load(core::sync::atomic::Ordering::Relaxed)
}

/// Spins until the TSC reaches `deadline` and returns the cycles lost to
/// interrupts (gaps between consecutive reads, as the user probe measures).
fn spin_in_kernel(deadline: u64) -> u64 {
    let mut stolen = 0;
    let mut previous = rdtsc();
    while previous < deadline {
        let now = rdtsc();
        if now - previous >= STOLEN_GAP_CYCLES {
            stolen += now - previous;
        }
        previous = now;
    }
    stolen
}
