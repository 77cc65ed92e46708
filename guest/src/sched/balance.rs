//! Periodic load balance of busy CPUs (a much simplified Linux
//! `sched_balance_trigger` -> `sched_balance_rq`): every
//! [`BALANCE_INTERVAL_TICKS`] ticks each CPU compares its load (running
//! plus queued tasks) with the busiest other CPU's; if that one has at
//! least two more, this CPU pulls one of its queued tasks (allowed here by
//! its affinity, not `on_cpu`), which then waits in this CPU's queue.
//!
//! The other half of balancing is in `schedule`: a CPU whose queue is
//! empty pulls a queued task at once (newidle balance), and an idle CPU
//! runs `schedule` after every interrupt. That one covers an idle CPU;
//! this one covers CPUs that are both busy (3 tasks on one, 1 on the
//! other never meet an empty queue). One run-queue lock at a time: the
//! source's to take the task, then this CPU's to queue it.

use core::sync::atomic::Ordering;

use super::{activate_task, cpu_rq, online_cpus, Enqueue};
use crate::arch::percpu;

/// Ticks between two balance attempts of one CPU (32 ms at 250 Hz, about
/// Linux's busy interval for a two-CPU domain).
pub const BALANCE_INTERVAL_TICKS: u64 = 8;

/// Called from every CPU's tick (interrupts are taken only in user mode
/// and in the idle loop, so no run-queue lock is held here).
pub(super) fn tick() {
    if percpu::nr_cpus() == 1 {
        return;
    }
    let local = percpu::this_cpu();
    if !local
        .ticks
        .load(Ordering::Relaxed)
        .is_multiple_of(BALANCE_INTERVAL_TICKS)
    {
        return;
    }
    let this = percpu::cpu_id();
    let my_load = cpu_rq(this).load();
    let Some((busiest, load)) = online_cpus()
        .filter(|&cpu| cpu != this)
        .map(|cpu| (cpu, cpu_rq(cpu).load()))
        .max_by_key(|&(_, load)| load)
    else {
        return;
    };
    if load < my_load + 2 {
        return;
    }
    let source = cpu_rq(busiest);
    let Some(task) = source.queue.lock().take_movable(this) else {
        return;
    };
    source.nr_queued.fetch_sub(1, Ordering::Relaxed);
    activate_task(this, task, Enqueue::Wakeup);
}
