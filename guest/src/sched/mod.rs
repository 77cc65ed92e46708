//! The scheduler: a round-robin run queue, preemption on the timer tick
//! when returning to user mode, and the idle task.
//!
//! A task becomes runnable for the first time only through
//! [`wake_up_new_task`] (as in Linux). The kernel is not preemptible: a
//! task leaves the CPU in [`schedule`], called when it sleeps, yields or
//! exits, or on its way back to user mode after a tick asked for it.

pub mod wait;

use alloc::collections::VecDeque;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use spin::{Mutex, Once};

use crate::arch::{gdt, switch};
use crate::process::task::{Task, TaskState};

/// Ticks a task may run before a runnable peer gets the CPU.
const TIMESLICE_TICKS: u64 = 1;

static RUN_QUEUE: Mutex<VecDeque<Arc<Task>>> = Mutex::new(VecDeque::new());
static CURRENT: Mutex<Option<Arc<Task>>> = Mutex::new(None);
static IDLE: Once<Arc<Task>> = Once::new();
/// Set by the tick when the current task's slice is over.
static NEED_RESCHED: AtomicBool = AtomicBool::new(false);
static SLICE_TICKS: AtomicU64 = AtomicU64::new(0);
/// The task we switched away from, released on the other side of the switch.
static PREVIOUS: Mutex<Option<Arc<Task>>> = Mutex::new(None);
/// Context switches so far.
static SWITCHES: AtomicU64 = AtomicU64::new(0);

/// Makes the boot context the idle task (pid 0).
pub fn init() {
    let idle = IDLE.call_once(|| {
        let idle = Arc::new(Task::idle());
        idle.set_state(TaskState::Runnable);
        idle
    });
    *CURRENT.lock() = Some(idle.clone());
}

/// The running task.
pub fn current() -> Arc<Task> {
    CURRENT.lock().clone().expect("scheduler initialised")
}

/// Whether `task` is the idle task.
pub fn is_idle(task: &Task) -> bool {
    task.pid == 0
}

/// `kernel.sched_child_runs_first`: a new child runs before its parent
/// returns from fork (off by default, as in Linux).
static CHILD_RUNS_FIRST: AtomicBool = AtomicBool::new(false);

pub fn set_child_runs_first(on: bool) {
    CHILD_RUNS_FIRST.store(on, Ordering::Relaxed);
}

pub fn child_runs_first() -> bool {
    CHILD_RUNS_FIRST.load(Ordering::Relaxed)
}

/// Prepares a new task's scheduling state (Linux `sched_fork`): it stays
/// `New`, off the run queue, until [`wake_up_new_task`].
pub fn sched_fork(task: &Task) {
    task.set_state(TaskState::New);
}

/// Makes a newly created task runnable (Linux `wake_up_new_task`). With
/// `sched_child_runs_first` it goes to the front and the parent gives up
/// the CPU on its way back to user mode.
pub fn wake_up_new_task(task: Arc<Task>) {
    task.set_state(TaskState::Runnable);
    if child_runs_first() {
        RUN_QUEUE.lock().push_front(task);
        NEED_RESCHED.store(true, Ordering::Relaxed);
    } else {
        RUN_QUEUE.lock().push_back(task);
    }
}

/// Makes a sleeping task runnable again.
pub fn wake_up(task: &Arc<Task>) {
    if task.state() == TaskState::Sleeping {
        task.set_state(TaskState::Runnable);
        RUN_QUEUE.lock().push_back(task.clone());
    }
}

/// Tasks sleeping until a TSC deadline (nanosleep).
static SLEEPERS: Mutex<alloc::vec::Vec<(u64, Arc<Task>)>> = Mutex::new(alloc::vec::Vec::new());

/// Puts the current task to sleep for at least `ns` nanoseconds; the tick
/// wakes it (so the resolution is one tick). A signal ends the sleep
/// early: the result is the time left then, 0 if the sleep completed.
pub fn sleep_for_ns(ns: u64) -> u64 {
    let deadline = crate::arch::cpu::rdtsc().saturating_add(crate::time::ns_to_tsc(ns));
    let task = current();
    loop {
        let now = crate::arch::cpu::rdtsc();
        if now >= deadline {
            return 0;
        }
        if crate::process::signal::signal_pending(&task) {
            return crate::time::tsc_to_ns(deadline - now).max(1);
        }
        task.set_state(TaskState::Sleeping);
        SLEEPERS.lock().push((deadline, task.clone()));
        schedule();
        // A signal may have woken it before the deadline.
        cancel_timer(&task);
    }
}

/// Arms a one-shot timer: the tick wakes `task` once the TSC reaches
/// `deadline` (a timed wait elsewhere, e.g. `semtimedop`).
pub fn arm_timer(deadline: u64, task: Arc<Task>) {
    SLEEPERS.lock().push((deadline, task));
}

/// Disarms `task`'s timers, so a deadline that passes later cannot wake
/// it out of an unrelated sleep.
pub fn cancel_timer(task: &Arc<Task>) {
    SLEEPERS.lock().retain(|(_, t)| !Arc::ptr_eq(t, task));
}

/// Wakes the sleepers whose deadline has passed.
fn wake_sleepers() {
    let now = crate::arch::cpu::rdtsc();
    let mut due = alloc::vec::Vec::new();
    SLEEPERS.lock().retain(|(deadline, task)| {
        if *deadline <= now {
            due.push(task.clone());
            false
        } else {
            true
        }
    });
    for task in &due {
        wake_up(task);
    }
}

/// Called from the timer interrupt.
pub fn tick() {
    wake_sleepers();
    if SLICE_TICKS.fetch_add(1, Ordering::Relaxed) + 1 >= TIMESLICE_TICKS {
        NEED_RESCHED.store(true, Ordering::Relaxed);
    }
}

/// Called on every return to user mode: give up the CPU if the slice is over.
pub fn preempt_on_return_to_user() {
    if NEED_RESCHED.load(Ordering::Relaxed) {
        yield_now();
    }
}

/// Gives the CPU to the next runnable task, if any; the current task stays runnable.
pub fn yield_now() {
    schedule();
}

/// Context switches so far.
pub fn switches() -> u64 {
    SWITCHES.load(Ordering::Relaxed)
}

/// Picks the next task and switches to it. A runnable current task goes to
/// the back of the queue; a sleeping or exited one does not.
pub fn schedule() {
    NEED_RESCHED.store(false, Ordering::Relaxed);
    SLICE_TICKS.store(0, Ordering::Relaxed);
    let prev = current();
    let next = {
        let mut queue = RUN_QUEUE.lock();
        if prev.state() == TaskState::Runnable && !is_idle(&prev) {
            queue.push_back(prev.clone());
        }
        match queue.pop_front() {
            Some(next) => next,
            None => IDLE.get().expect("idle task").clone(),
        }
    };
    if Arc::ptr_eq(&prev, &next) {
        return;
    }
    switch_to(prev, next);
}

fn switch_to(prev: Arc<Task>, next: Arc<Task>) {
    SWITCHES.fetch_add(1, Ordering::Relaxed);
    if let Some(top) = next.kernel_stack_top() {
        gdt::set_kernel_stack(top);
    }
    crate::process::switch_mm(&prev, &next);
    let prev_rsp = prev.saved_rsp.as_ptr();
    let next_rsp = next.saved_rsp.load(Ordering::Acquire);
    *CURRENT.lock() = Some(next);
    // Keep `prev` alive across the switch; the next task drops it.
    *PREVIOUS.lock() = Some(prev);
    // SAFETY: interrupts are off in the kernel; `prev_rsp` points into
    // `prev`, which PREVIOUS keeps alive until the other side has switched;
    // `next_rsp` was saved by a switch away from `next` or prepared for it.
    unsafe { switch::context_switch(prev_rsp, next_rsp) };
    schedule_tail();
}

/// First thing a task does after being switched to: release the task it
/// replaced (Linux `finish_task_switch`).
#[no_mangle]
pub extern "C" fn schedule_tail() {
    let previous = PREVIOUS.lock().take();
    drop(previous);
}

/// The idle loop: run whatever becomes runnable, halt otherwise.
pub fn idle_loop() -> ! {
    loop {
        schedule();
        // Interrupts are taken only here and in user mode; `sti; hlt`
        // cannot miss one that arrives in between. A console reader's
        // input is first waited for by polling (see `idle_poll`).
        if RUN_QUEUE.lock().is_empty() && !crate::drivers::virtio_console::idle_poll() {
            crate::arch::cpu::enable_interrupts_and_halt();
            crate::arch::cpu::disable_interrupts();
        }
    }
}
