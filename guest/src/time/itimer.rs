//! Interval timers (Linux `kernel/time/itimer.c`): per process, one real
//! timer (ITIMER_REAL: SIGALRM when the clock reaches it) and two CPU-time
//! timers (ITIMER_VIRTUAL: SIGVTALRM after so much user time of the whole
//! process; ITIMER_PROF: SIGPROF after so much user + system time).
//!
//! The state lives in the process's `ThreadGroup` (Linux `signal_struct`'s
//! `real_timer`, `it_real_incr` and `it[]`): a new process starts with all
//! three disarmed (Linux `copy_signal`), and `execve` keeps them.
//!
//! Firing: a queued real timer is on [`REAL_TIMERS`], which the boot CPU's
//! tick scans (so the resolution is one tick, 4 ms); it sends SIGALRM to
//! the process and leaves the timer unqueued. A periodic one is queued
//! again when the process takes its SIGALRM from the process's pending set
//! (Linux `posixtimer_rearm_itimer`, called from `dequeue_signal`): its
//! next expiry moves forward by whole intervals past now, so a blocked
//! SIGALRM accumulates nothing. The CPU-time timers are checked at every
//! CPU's tick against the running task's process (Linux
//! `run_posix_cpu_timers` -> `check_cpu_itimer`): on expiry they move
//! forward by one interval (or disarm) and the signal goes to the process.
//!
//! Locks: a group's [`ITimers`] state, then [`REAL_TIMERS`]; neither is
//! held while a signal is sent (sending takes the tasks' locks, and
//! `dequeue_signal` calls [`rearm_real`] with one of those held).

use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};

use spin::Mutex;

use crate::arch::cpu::rdtsc;
use crate::process::signal::{SigFields, SigInfo, SI_KERNEL};
use crate::process::task::Task;
use crate::process::thread_group::ThreadGroup;
use forkvm_abi::linux::signal::Signal;

pub const ITIMER_REAL: u64 = 0;
pub const ITIMER_VIRTUAL: u64 = 1;
pub const ITIMER_PROF: u64 = 2;

const NSEC_PER_USEC: u64 = 1_000;
/// Linux `TICK_NSEC`: what a CPU timer gets added when armed, and what an
/// overdue one reports as left.
const TICK_NSEC: u64 = 1_000_000_000 / super::TICK_HZ;

/// A timer's value and interval, in nanoseconds (`struct itimerspec64`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ITimerSpec {
    pub value_ns: u64,
    pub interval_ns: u64,
}

/// One CPU-time timer (Linux `struct cpu_itimer`): the process CPU time
/// (ns) it fires at (0: disarmed) and its interval.
#[derive(Clone, Copy, Default)]
struct CpuITimer {
    expires: u64,
    incr: u64,
}

#[derive(Default)]
struct State {
    /// The TSC value the real timer fires at, while queued.
    real_queued: bool,
    real_expires: u64,
    /// The real timer's interval in nanoseconds (`it_real_incr`).
    real_incr_ns: u64,
    /// ITIMER_VIRTUAL, ITIMER_PROF.
    cpu: [CpuITimer; 2],
}

/// A process's interval timers.
#[derive(Default)]
pub struct ITimers {
    state: Mutex<State>,
    /// Whether a CPU-time timer is armed: the tick looks no further
    /// otherwise (one relaxed load per tick).
    cpu_armed: AtomicBool,
}

impl Drop for ITimers {
    /// The process is gone (its `ThreadGroup` dropped, so no strong
    /// reference is left): its queued real timer leaves the list now, not
    /// at an expiry that may be centuries away.
    fn drop(&mut self) {
        if self.state.get_mut().real_queued {
            REAL_TIMERS
                .lock()
                .retain(|(_, group)| group.strong_count() > 0);
        }
    }
}

/// Queued real timers: (TSC expiry, process).
static REAL_TIMERS: Mutex<Vec<(u64, Weak<ThreadGroup>)>> = Mutex::new(Vec::new());

/// The remaining time of a queued real timer as `getitimer` reports it:
/// an expiry already passed but not yet processed is 1 us, not 0 (Linux
/// `itimer_get_remtime`).
fn real_remaining(state: &State, now: u64) -> u64 {
    if !state.real_queued {
        return 0;
    }
    let left = super::tsc_to_ns(state.real_expires.saturating_sub(now));
    if left == 0 {
        NSEC_PER_USEC
    } else {
        left
    }
}

/// The process's CPU time as a CPU timer counts it: user time for
/// ITIMER_VIRTUAL (`index` 0), user + system for ITIMER_PROF (1).
fn cpu_sample(group: &ThreadGroup, index: usize) -> u64 {
    let totals = crate::sched::cputime::group_totals(group, None);
    let cycles = if index == 0 {
        totals.utime
    } else {
        totals.utime + totals.stime
    };
    super::tsc_to_ns(cycles)
}

/// Nanoseconds as TSC cycles, capped (decades) so the conversion cannot
/// overflow.
fn to_tsc(ns: u64) -> u64 {
    super::ns_to_tsc(ns.min(u64::MAX / 16))
}

fn cpu_index(which: u64) -> usize {
    (which - ITIMER_VIRTUAL) as usize
}

/// `getitimer(which)` for `group` (Linux `do_getitimer`): EINVAL for an
/// unknown timer.
pub fn get(group: &ThreadGroup, which: u64) -> Result<ITimerSpec, i32> {
    match which {
        ITIMER_REAL => {
            let state = group.itimers().state.lock();
            Ok(ITimerSpec {
                value_ns: real_remaining(&state, rdtsc()),
                interval_ns: state.real_incr_ns,
            })
        }
        ITIMER_VIRTUAL | ITIMER_PROF => {
            let index = cpu_index(which);
            let timer = group.itimers().state.lock().cpu[index];
            let mut value_ns = timer.expires;
            if value_ns != 0 {
                let now = cpu_sample(group, index);
                // About to fire: a tick's worth, as Linux says.
                value_ns = if value_ns < now {
                    TICK_NSEC
                } else {
                    value_ns - now
                };
            }
            Ok(ITimerSpec {
                value_ns,
                interval_ns: timer.incr,
            })
        }
        _ => Err(crate::errno::EINVAL),
    }
}

/// `setitimer(which, new)` for `group` (Linux `do_setitimer`): arms the
/// timer (a zero value disarms it) and returns the old setting. EINVAL for
/// an unknown timer.
pub fn set(group: &Arc<ThreadGroup>, which: u64, new: ITimerSpec) -> Result<ITimerSpec, i32> {
    match which {
        ITIMER_REAL => {
            let now = rdtsc();
            let mut state = group.itimers().state.lock();
            let old = ITimerSpec {
                value_ns: real_remaining(&state, now),
                interval_ns: state.real_incr_ns,
            };
            let mut timers = REAL_TIMERS.lock();
            if state.real_queued {
                state.real_queued = false;
                let me = Arc::as_ptr(group);
                timers.retain(|(_, g)| g.as_ptr() != me);
            }
            if new.value_ns != 0 {
                state.real_incr_ns = new.interval_ns;
                state.real_expires = now.saturating_add(to_tsc(new.value_ns));
                state.real_queued = true;
                timers.push((state.real_expires, Arc::downgrade(group)));
            } else {
                state.real_incr_ns = 0;
            }
            Ok(old)
        }
        ITIMER_VIRTUAL | ITIMER_PROF => {
            let index = cpu_index(which);
            // Sampled before the lock: the sum takes the group's locks.
            let now = cpu_sample(group, index);
            let itimers = group.itimers();
            let mut state = itimers.state.lock();
            let old = state.cpu[index];
            let mut old_value = old.expires;
            if old_value != 0 {
                old_value = if old_value <= now {
                    TICK_NSEC
                } else {
                    old_value - now
                };
            }
            // Linux adds a tick to a new value (`set_cpu_itimer`).
            let expires = if new.value_ns != 0 {
                now.saturating_add(new.value_ns).saturating_add(TICK_NSEC)
            } else {
                0
            };
            state.cpu[index] = CpuITimer {
                expires,
                incr: new.interval_ns,
            };
            let armed = state.cpu.iter().any(|t| t.expires != 0);
            itimers.cpu_armed.store(armed, Ordering::Relaxed);
            Ok(ITimerSpec {
                value_ns: old_value,
                interval_ns: old.incr,
            })
        }
        _ => Err(crate::errno::EINVAL),
    }
}

/// SIGALRM was taken from `group`'s pending signals (Linux
/// `posixtimer_rearm_itimer`): a periodic real timer that fired is queued
/// again at its next expiry after now.
pub fn rearm_real(group: &Arc<ThreadGroup>) {
    let mut state = group.itimers().state.lock();
    if state.real_queued || state.real_incr_ns == 0 {
        return;
    }
    let incr = to_tsc(state.real_incr_ns).max(1);
    let now = rdtsc();
    if state.real_expires <= now {
        // Whole intervals past now (Linux `hrtimer_forward_now`).
        let periods = (now - state.real_expires) / incr + 1;
        state.real_expires = state
            .real_expires
            .saturating_add(periods.saturating_mul(incr));
    }
    state.real_queued = true;
    REAL_TIMERS
        .lock()
        .push((state.real_expires, Arc::downgrade(group)));
}

/// The process-directed signal a timer sends (Linux `SEND_SIG_PRIV`:
/// SI_KERNEL, no sender), to `group` through its first thread.
fn send_to_group(group: &ThreadGroup, signal: Signal) {
    let Some(thread) = group.find_thread(|_| true) else {
        return;
    };
    crate::process::signal::group_send_signal(
        &thread,
        SigInfo {
            signo: signal,
            code: SI_KERNEL,
            fields: SigFields::None,
        },
    );
}

/// The boot CPU's tick: fires the real timers whose expiry has passed.
pub fn run_real_timers() {
    let now = rdtsc();
    let due: Vec<(u64, Weak<ThreadGroup>)> = {
        let mut timers = REAL_TIMERS.lock();
        if timers.iter().all(|(expires, _)| *expires > now) {
            return;
        }
        let (due, later) = core::mem::take(&mut *timers)
            .into_iter()
            .partition(|(expires, _)| *expires <= now);
        *timers = later;
        due
    };
    for (expires, group) in due {
        let Some(group) = group.upgrade() else {
            continue;
        };
        let fire = {
            let mut state = group.itimers().state.lock();
            // Not a timer set again since it was queued.
            let current = state.real_queued && state.real_expires == expires;
            if current {
                state.real_queued = false;
            }
            current
        };
        if fire {
            send_to_group(&group, Signal::SIGALRM);
        }
    }
}

/// Every CPU's tick: checks the CPU-time timers of the running task's
/// process (Linux `check_process_timers`' `check_cpu_itimer`).
pub fn run_cpu_timers(task: &Task) {
    let group = task.thread_group();
    if !group.itimers().cpu_armed.load(Ordering::Relaxed) {
        return;
    }
    for (index, signal) in [(0, Signal::SIGVTALRM), (1, Signal::SIGPROF)] {
        let now = cpu_sample(group, index);
        let fire = {
            let itimers = group.itimers();
            let mut state = itimers.state.lock();
            let timer = &mut state.cpu[index];
            let fire = timer.expires != 0 && now >= timer.expires;
            if fire {
                timer.expires = if timer.incr != 0 {
                    timer.expires.saturating_add(timer.incr)
                } else {
                    0
                };
                let armed = state.cpu.iter().any(|t| t.expires != 0);
                itimers.cpu_armed.store(armed, Ordering::Relaxed);
            }
            fire
        };
        if fire {
            send_to_group(group, signal);
        }
    }
}
