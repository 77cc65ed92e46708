//! The scheduler: a run queue with Linux's class order (real-time tasks by
//! priority, then the fair class in round robin), preemption when
//! returning to user mode (after a tick, or when a higher-priority task
//! woke), and the idle task. A task's policy is in [`attr`].
//!
//! A task becomes runnable for the first time only through
//! [`wake_up_new_task`] (as in Linux). The kernel is not preemptible: a
//! task leaves the CPU in [`schedule`], called when it sleeps, yields or
//! exits, or on its way back to user mode after a tick asked for it.

pub mod attr;
pub mod cputime;
pub mod wait;

use alloc::collections::VecDeque;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use spin::{Mutex, Once};

use crate::arch::{gdt, switch};
use crate::process::task::{Task, TaskState};

/// Ticks a fair task may run before a runnable peer gets the CPU.
const TIMESLICE_TICKS: u64 = 1;
/// A SCHED_RR task's slice (`sched_rr_timeslice_ms`, 100 ms), in ticks.
pub const RR_TIMESLICE_TICKS: u64 = crate::time::TICK_HZ / 10;

/// The runnable tasks but the current one (Linux `struct rq` with its
/// `rt_rq` and `cfs_rq`): real-time tasks ordered by priority, highest
/// first, in arrival order within one priority (Linux's per-priority
/// lists), then the fair class's round robin.
struct RunQueue {
    rt: VecDeque<Arc<Task>>,
    fair: VecDeque<Arc<Task>>,
}

impl RunQueue {
    const fn new() -> RunQueue {
        RunQueue {
            rt: VecDeque::new(),
            fair: VecDeque::new(),
        }
    }

    /// Queues `task` behind (`head` false) or before (`head` true) the
    /// tasks of its priority.
    fn enqueue(&mut self, task: Arc<Task>, head: bool) {
        let key = task.sched().queue_key();
        if key == 0 {
            if head {
                self.fair.push_front(task);
            } else {
                self.fair.push_back(task);
            }
            return;
        }
        let at = self.rt.partition_point(|t| {
            let k = t.sched().queue_key();
            k > key || (!head && k == key)
        });
        self.rt.insert(at, task);
    }

    fn pick_next(&mut self) -> Option<Arc<Task>> {
        self.rt.pop_front().or_else(|| self.fair.pop_front())
    }

    /// Takes `task` off the queue; whether it was on it.
    fn remove(&mut self, task: &Arc<Task>) -> bool {
        for queue in [&mut self.rt, &mut self.fair] {
            if let Some(at) = queue.iter().position(|t| Arc::ptr_eq(t, task)) {
                queue.remove(at);
                return true;
            }
        }
        false
    }

    /// The key of the task that would run next (0 if none or fair).
    fn best_key(&self) -> u32 {
        self.rt.front().map_or(0, |t| t.sched().queue_key())
    }

    fn is_empty(&self) -> bool {
        self.rt.is_empty() && self.fair.is_empty()
    }
}

static RUN_QUEUE: Mutex<RunQueue> = Mutex::new(RunQueue::new());
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

/// A new task's scheduling attributes (Linux `sched_fork`): the parent's,
/// or reset (SCHED_RESET_ON_FORK). The task stays `New`, off the run
/// queue, until [`wake_up_new_task`].
pub fn sched_fork(parent: &Task) -> attr::SchedAttr {
    parent.sched().get().for_child()
}

/// Makes a newly created task runnable (Linux `wake_up_new_task`). A child
/// of a higher class or priority than its parent (a real-time child of a
/// fair parent) preempts it: the parent gives up the CPU on its way back
/// to user mode. With `sched_child_runs_first` a fair child goes to the
/// front and preempts a fair parent too.
pub fn wake_up_new_task(task: Arc<Task>) {
    task.set_state(TaskState::Runnable);
    let key = task.sched().queue_key();
    let first = key == 0 && child_runs_first();
    RUN_QUEUE.lock().enqueue(task, first);
    if first {
        NEED_RESCHED.store(true, Ordering::Relaxed);
    } else {
        check_preempt_curr(key);
    }
}

/// Makes a sleeping task runnable again.
pub fn wake_up(task: &Arc<Task>) {
    if task.state() == TaskState::Sleeping {
        task.set_state(TaskState::Runnable);
        let key = task.sched().queue_key();
        RUN_QUEUE.lock().enqueue(task.clone(), false);
        check_preempt_curr(key);
    }
}

/// Linux `wakeup_preempt`: a task with run-queue key `key` became runnable;
/// the current task gives way on its next return to user mode if it is of
/// a lower priority (fair tasks among themselves wait for the tick).
fn check_preempt_curr(key: u32) {
    if key != 0 {
        let current = CURRENT.lock().clone();
        if current.is_some_and(|c| is_idle(&c) || c.sched().queue_key() < key) {
            NEED_RESCHED.store(true, Ordering::Relaxed);
        }
    }
}

/// Applies changed attributes of `task` (Linux `__sched_setscheduler`'s
/// dequeue/enqueue): a queued task moves to its new place, behind its new
/// priority's tasks, or before them if its priority went down; whoever
/// now outranks the current task preempts it.
pub fn set_sched_attr(task: &Arc<Task>, new: attr::SchedAttr) {
    let old_key = task.sched().queue_key();
    task.sched().set(new);
    let mut queue = RUN_QUEUE.lock();
    if queue.remove(task) {
        queue.enqueue(task.clone(), new.queue_key() < old_key);
    }
    let best = queue.best_key();
    drop(queue);
    let current = current();
    if best > current.sched().queue_key() {
        NEED_RESCHED.store(true, Ordering::Relaxed);
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

/// Called from the timer interrupt. A fair task's slice is one tick, a
/// SCHED_RR task's [`RR_TIMESLICE_TICKS`]; a SCHED_FIFO task has none.
pub fn tick() {
    wake_sleepers();
    let ticks = SLICE_TICKS.fetch_add(1, Ordering::Relaxed) + 1;
    let current = current();
    let slice = match current.sched().queue_key() {
        0 => TIMESLICE_TICKS,
        _ if current.sched().is_round_robin() => RR_TIMESLICE_TICKS,
        _ => return,
    };
    if ticks >= slice {
        SLICE_OVER.store(true, Ordering::Relaxed);
        NEED_RESCHED.store(true, Ordering::Relaxed);
    }
}

/// Set with NEED_RESCHED when the current task's slice is over (a
/// preempted real-time task keeps its place at the head of its priority
/// otherwise).
static SLICE_OVER: AtomicBool = AtomicBool::new(false);

/// Called on every return to user mode: give up the CPU if the slice is
/// over or a higher-priority task is waiting.
pub fn preempt_on_return_to_user() {
    if NEED_RESCHED.load(Ordering::Relaxed) {
        let head = !SLICE_OVER.load(Ordering::Relaxed);
        __schedule(head);
    }
}

/// Gives the CPU to the next runnable task of the same or a higher
/// priority, if any (`sched_yield`); the current task stays runnable,
/// behind the others of its priority.
pub fn yield_now() {
    schedule();
}

/// Context switches so far.
pub fn switches() -> u64 {
    SWITCHES.load(Ordering::Relaxed)
}

/// Picks the next task and switches to it. A runnable current task goes
/// behind the others of its priority; a sleeping or exited one does not.
pub fn schedule() {
    __schedule(false);
}

/// [`schedule`]; a runnable real-time current task goes before the others
/// of its priority if `head_if_rt` (preempted, not yielding: Linux keeps a
/// preempted SCHED_FIFO task at the head of its list).
fn __schedule(head_if_rt: bool) {
    NEED_RESCHED.store(false, Ordering::Relaxed);
    SLICE_OVER.store(false, Ordering::Relaxed);
    // A slice starts whenever a task is (re)picked: a SCHED_RR task that
    // was preempted starts a new one (Linux keeps what was left).
    SLICE_TICKS.store(0, Ordering::Relaxed);
    let prev = current();
    let next = {
        let mut queue = RUN_QUEUE.lock();
        if prev.state() == TaskState::Runnable && !is_idle(&prev) {
            let head = head_if_rt && prev.sched().queue_key() != 0;
            queue.enqueue(prev.clone(), head);
        }
        match queue.pick_next() {
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
    cputime::switch(&prev, &next);
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
