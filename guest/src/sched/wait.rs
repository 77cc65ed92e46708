//! Wait queues: where tasks sleep until an event, and who wakes them.
//!
//! The kernel runs with interrupts disabled (they are taken only in user
//! mode and in the idle loop), so a waker in an interrupt handler can never
//! find these locks held.

use alloc::collections::VecDeque;
use alloc::sync::Arc;

use spin::Mutex;

use crate::process::task::{Task, TaskState};

/// Tasks sleeping until an event.
pub struct WaitQueue {
    sleepers: Mutex<VecDeque<Arc<Task>>>,
}

impl WaitQueue {
    pub const fn new() -> WaitQueue {
        WaitQueue {
            sleepers: Mutex::new(VecDeque::new()),
        }
    }

    /// Puts the current task to sleep until `done()` holds; `done` is
    /// checked before every sleep, so no wake-up is lost. Returns `false`
    /// if a signal interrupted the wait (Linux `TASK_INTERRUPTIBLE`): a
    /// fatal one (SIGKILL, exit_group: the task exits on its way to user
    /// mode) or one to deliver; the caller backs out (EINTR, ERESTARTSYS).
    #[must_use]
    pub fn wait_until(&self, done: impl FnMut() -> bool) -> bool {
        self.wait(done, crate::process::signal::signal_pending)
    }

    /// Like [`wait_until`](Self::wait_until), but only a fatal event ends
    /// the wait (Linux `TASK_KILLABLE`, e.g. the vfork parent's wait).
    #[must_use]
    pub fn wait_until_killable(&self, done: impl FnMut() -> bool) -> bool {
        self.wait(done, |task| task.fatal_status().is_some())
    }

    fn wait(&self, mut done: impl FnMut() -> bool, interrupted: impl Fn(&Task) -> bool) -> bool {
        let current = super::current();
        loop {
            if done() {
                return true;
            }
            if interrupted(&current) {
                return false;
            }
            // Asleep and on the queue before the last look: a waker that
            // makes `done` true after it finds us there (no lost wake-up
            // with the waker on another CPU).
            super::set_current_sleeping(&current);
            self.sleepers.lock().push_back(current.clone());
            // (`done` may consume what it waits for: its answer stands.)
            let end = if done() {
                Some(true)
            } else if interrupted(&current) {
                Some(false)
            } else {
                None
            };
            if let Some(end) = end {
                current.set_state(TaskState::Runnable);
                self.remove(&current);
                return end;
            }
            super::schedule();
            // A signal may have woken it: leave the queue (a no-op after
            // `wake_all`), so no stale entry wakes a later sleep.
            self.remove(&current);
        }
    }

    /// Like [`wait_until`](Self::wait_until), but gives up once the TSC
    /// reaches `deadline` (Linux: `schedule_hrtimeout` in a wait loop).
    /// `done` is checked first, so a wait whose condition holds by the
    /// time it looks succeeds even past the deadline. However it ends, the
    /// task has left both this queue and the timer list.
    pub fn wait_until_deadline(&self, deadline: u64, mut done: impl FnMut() -> bool) -> WaitEnd {
        let current = super::current();
        loop {
            if done() {
                return WaitEnd::Done;
            }
            if crate::process::signal::signal_pending(&current) {
                return WaitEnd::Interrupted;
            }
            if crate::arch::cpu::rdtsc() >= deadline {
                return WaitEnd::TimedOut;
            }
            super::set_current_sleeping(&current);
            self.sleepers.lock().push_back(current.clone());
            let end = if done() {
                Some(WaitEnd::Done)
            } else if crate::process::signal::signal_pending(&current) {
                Some(WaitEnd::Interrupted)
            } else {
                None
            };
            if let Some(end) = end {
                current.set_state(TaskState::Runnable);
                self.remove(&current);
                return end;
            }
            super::arm_timer(deadline, current.clone());
            super::schedule();
            // Woken by one of the two: leave the other.
            self.remove(&current);
            super::cancel_timer(&current);
        }
    }

    /// Puts `task` on the queue without sleeping here: a `poll` waits on
    /// several queues at once (Linux `add_wait_queue` from `poll_wait`).
    /// The caller marks itself sleeping first, checks its conditions, then
    /// sleeps, and takes itself off with [`remove`](Self::remove).
    pub fn add(&self, task: Arc<Task>) {
        self.sleepers.lock().push_back(task);
    }

    /// Takes `task` off the queue (it stopped waiting on its own).
    pub fn remove(&self, task: &Arc<Task>) {
        self.sleepers.lock().retain(|t| !Arc::ptr_eq(t, task));
    }

    /// Whether a task sleeps here.
    pub fn has_sleepers(&self) -> bool {
        !self.sleepers.lock().is_empty()
    }

    /// Wakes every sleeper (they re-check their condition).
    pub fn wake_all(&self) {
        while let Some(task) = self.sleepers.lock().pop_front() {
            super::wake_up(&task);
        }
    }
}

/// Sleeps until a signal is pending (`pause`, `rt_sigsuspend`): the
/// sender wakes the task. Interrupts are off in the kernel, so no signal
/// can slip in between the check and the sleep.
pub fn sleep_until_signal() {
    let current = super::current();
    while !crate::process::signal::signal_pending(&current) {
        super::set_current_sleeping(&current);
        if crate::process::signal::signal_pending(&current) {
            current.set_state(TaskState::Runnable);
            break;
        }
        super::schedule();
    }
}

/// How [`WaitQueue::wait_until_deadline`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitEnd {
    /// The condition held.
    Done,
    /// A signal: a fatal one (the task is exiting) or one to deliver.
    Interrupted,
    /// The deadline passed first.
    TimedOut,
}

impl Default for WaitQueue {
    fn default() -> Self {
        Self::new()
    }
}

/// A one-shot event a task can wait for (Linux `struct completion`).
pub struct Completion {
    done: core::sync::atomic::AtomicBool,
    waiters: WaitQueue,
}

impl Completion {
    pub const fn new() -> Completion {
        Completion {
            done: core::sync::atomic::AtomicBool::new(false),
            waiters: WaitQueue::new(),
        }
    }

    /// Marks the event done and wakes the waiters.
    pub fn complete(&self) {
        self.done.store(true, core::sync::atomic::Ordering::Release);
        self.waiters.wake_all();
    }

    /// Sleeps until [`complete`](Self::complete) has been called; `false`
    /// if a fatal event interrupted the wait (other signals do not).
    #[must_use]
    pub fn wait(&self) -> bool {
        self.waiters
            .wait_until_killable(|| self.done.load(core::sync::atomic::Ordering::Acquire))
    }
}

impl Default for Completion {
    fn default() -> Self {
        Self::new()
    }
}
