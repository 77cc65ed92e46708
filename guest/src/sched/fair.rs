//! The fair class (SCHED_NORMAL, SCHED_BATCH, SCHED_IDLE) in the kernel:
//! each CPU's EEVDF queue ([`forkvm_core::sched::fair`], the pure logic
//! and its host tests) fed with the tasks' exact CPU time from
//! [`super::cputime`], and what a task keeps of the fair class while it is
//! on no queue (its lag).
//!
//! A task's weight is Linux's `sched_prio_to_weight[nice]`, 3 under
//! SCHED_IDLE (`WEIGHT_IDLEPRIO`); its slice is `sched_attr`'s
//! `sched_runtime`, by default Linux's `sysctl_sched_base_slice`
//! ([`super::attr::base_slice_ns`]: 0.70 ms times 1 + log2 of the CPUs). The tick (4 ms) is the
//! preemption granularity: a spinning task's slice is over at every tick
//! and the queue then picks the eligible task with the earliest deadline.
//!
//! All of a queue's state is under its run-queue lock; the running
//! entity's CPU time is charged only on its own CPU (tick, schedule, a
//! wake-up there), where the running interval can be read exactly.

use alloc::sync::Arc;
use core::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};

pub use forkvm_core::sched::fair::{nice_to_weight, FairQueue, Left, Placement, WEIGHT_IDLEPRIO};

use super::attr::{SchedAttr, SCHED_IDLE, SCHED_NORMAL};
use crate::process::task::Task;

/// A CPU's fair queue of tasks.
pub type FairRunQueue = FairQueue<Arc<Task>>;

/// The tick as the lag limit's floor (Linux `TICK_NSEC`).
pub const TICK_NS: u64 = 1_000_000_000 / crate::time::TICK_HZ;

/// A task's fair-class fields (one field of `SchedEntity`): its weight,
/// slice and policy, copied from its attributes when they change so the
/// run queue reads them without the attribute lock, and what it took
/// along when it last left a queue.
#[derive(Default)]
pub struct TaskFair {
    weight: AtomicU64,
    slice: AtomicU64,
    policy: AtomicU32,
    /// Linux `se->vlag`: avg_vruntime - vruntime when it left a queue.
    vlag: AtomicI64,
    /// Its CPU time (ns) when last charged.
    exec_seen_ns: AtomicU64,
}

impl TaskFair {
    pub fn new(attr: &SchedAttr) -> TaskFair {
        let fair = TaskFair::default();
        fair.set(attr);
        fair
    }

    /// Takes the weight, slice and policy of `attr`.
    pub fn set(&self, attr: &SchedAttr) {
        let weight = if attr.policy == SCHED_IDLE {
            WEIGHT_IDLEPRIO
        } else {
            nice_to_weight(attr.nice)
        };
        self.weight.store(weight, Ordering::Relaxed);
        // 0: the base slice, read when used (it follows the CPUs online).
        let custom = if attr.custom_slice { attr.slice_ns } else { 0 };
        self.slice.store(custom, Ordering::Relaxed);
        self.policy.store(attr.policy, Ordering::Relaxed);
    }

    fn weight(&self) -> u64 {
        self.weight.load(Ordering::Relaxed)
    }

    fn slice(&self) -> u64 {
        match self.slice.load(Ordering::Relaxed) {
            0 => super::attr::base_slice_ns(),
            custom => custom,
        }
    }

    fn policy(&self) -> u32 {
        self.policy.load(Ordering::Relaxed)
    }
}

/// Queues `task`: a new one without lag, any other with the lag it left
/// its last queue with. Returns whether it preempts the running fair task
/// (Linux `check_preempt_wakeup_fair`): a task that is not SCHED_IDLE
/// always preempts a SCHED_IDLE one; otherwise only a SCHED_NORMAL one
/// does (SCHED_BATCH and SCHED_IDLE wait for the tick), and only if EEVDF
/// would pick it and the running task used up its slice. `local`: the
/// queue is this CPU's, whose running task is charged first.
pub fn enqueue(queue: &mut FairRunQueue, task: Arc<Task>, new: bool, local: bool) -> bool {
    if local {
        update_curr(queue);
    }
    let fair = &task.sched().fair;
    let placement = if new {
        Placement::New
    } else {
        Placement::Lag(fair.vlag.load(Ordering::Relaxed))
    };
    let policy = fair.policy();
    let (weight, slice) = (fair.weight(), fair.slice());
    let eevdf_picks = queue.enqueue(task, weight, slice, placement);
    let Some((_, curr)) = queue.curr() else {
        return true;
    };
    let curr_policy = curr.sched().fair.policy();
    if curr_policy == SCHED_IDLE && policy != SCHED_IDLE {
        return true;
    }
    policy == SCHED_NORMAL && eevdf_picks
}

/// Records what a task took along from a queue; returns the task.
pub fn left(left: Left<Arc<Task>>) -> Arc<Task> {
    let fair = &left.task.sched().fair;
    fair.vlag.store(left.vlag, Ordering::Relaxed);
    left.task
}

/// Charges the running fair task of this CPU's queue with the CPU time it
/// used since last charged (Linux `update_curr`). Returns whether its
/// slice is used up and another task waits.
pub fn update_curr(queue: &mut FairRunQueue) -> bool {
    let Some((_, task)) = queue.curr() else {
        return false;
    };
    let fair = &task.sched().fair;
    let now = super::cputime::sum_exec_runtime_ns(task, true);
    let delta = now.saturating_sub(fair.exec_seen_ns.swap(now, Ordering::Relaxed));
    queue.update_curr(delta)
}

/// Picks the next fair task of this CPU and makes it the running one;
/// its CPU time is charged from now on. `prev` is the task this CPU runs
/// now (it may be picked again: its running interval was charged).
pub fn pick_next(queue: &mut FairRunQueue, prev: &Arc<Task>) -> Option<Arc<Task>> {
    let task = queue.pick_next()?.clone();
    let running = Arc::ptr_eq(&task, prev);
    let seen = super::cputime::sum_exec_runtime_ns(&task, running);
    task.sched()
        .fair
        .exec_seen_ns
        .store(seen, Ordering::Relaxed);
    Some(task)
}

/// Whether `task` is the running entity of `queue`.
pub fn is_curr(queue: &FairRunQueue, task: &Arc<Task>) -> bool {
    queue.curr().is_some_and(|(_, t)| Arc::ptr_eq(t, task))
}

/// A queued or running task's weight or slice changed (nice, policy
/// within the class, `sched_runtime`).
pub fn reweight(queue: &mut FairRunQueue, task: &Arc<Task>) {
    let fair = &task.sched().fair;
    queue.reweight(|t| Arc::ptr_eq(t, task), fair.weight(), fair.slice());
}
