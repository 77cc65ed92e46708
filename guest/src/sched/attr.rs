//! A task's scheduling attributes (Linux's `policy`, `static_prio`,
//! `rt_priority`, `sched_reset_on_fork` and the fair slice of
//! `task_struct`/`sched_entity`), what `sched_fork` makes of them for a
//! child, and the key the run queue orders tasks by.
//!
//! Classes in Linux's order: real-time (`SCHED_FIFO`, `SCHED_RR`, by
//! priority 99..1) before fair (`SCHED_NORMAL`, `SCHED_BATCH`,
//! `SCHED_IDLE`). The fair class weighs tasks by nice value (EEVDF, see
//! [`super::fair`]).

use core::sync::atomic::{AtomicU32, Ordering};

use spin::Mutex;

pub const SCHED_NORMAL: u32 = 0;
pub const SCHED_FIFO: u32 = 1;
pub const SCHED_RR: u32 = 2;
pub const SCHED_BATCH: u32 = 3;
pub const SCHED_IDLE: u32 = 5;
pub const SCHED_DEADLINE: u32 = 6;
/// The BPF-extensible class (Linux 6.12+): `sched_get_priority_max/min`
/// know it (0), but without a loaded BPF scheduler Linux refuses to set
/// it (EINVAL), and so does this kernel, which has none.
pub const SCHED_EXT: u32 = 7;
/// Or'ed into `sched_setscheduler`'s policy (the legacy form of
/// `SCHED_FLAG_RESET_ON_FORK`).
pub const SCHED_RESET_ON_FORK: u32 = 0x4000_0000;

/// Highest real-time priority + 1 (`MAX_RT_PRIO`).
pub const MAX_RT_PRIO: u32 = 100;
pub const MIN_NICE: i32 = -20;
pub const MAX_NICE: i32 = 19;

/// Linux `normalized_sysctl_sched_base_slice`: the fair slice of one
/// CPU: 0.70 ms in mainline (as this project's 6.18 host reports; the
/// first EEVDF kernels had 0.75 ms).
pub const NORMALIZED_BASE_SLICE_NS: u64 = 700_000;

/// The fair slice of a task that chose none (Linux
/// `sysctl_sched_base_slice`), reported by `sched_getattr` as
/// `sched_runtime`: [`NORMALIZED_BASE_SLICE_NS`] scaled by 1 + log2 of
/// the online CPUs, counting at most 8 (Linux `update_sysctl` with the
/// default SCHED_TUNABLESCALING_LOG): 0.7 ms on one CPU, 1.4 ms on two
/// or three, up to 2.8 ms.
pub fn base_slice_ns() -> u64 {
    let cpus = crate::arch::percpu::online_count().clamp(1, 8);
    NORMALIZED_BASE_SLICE_NS * u64::from(1 + cpus.ilog2())
}
/// A custom slice (`sched_setattr`'s `sched_runtime`) is clamped to this.
pub const MIN_SLICE_NS: u64 = 100_000;
pub const MAX_SLICE_NS: u64 = 100_000_000;

/// Linux `rt_policy`.
pub fn rt_policy(policy: u32) -> bool {
    policy == SCHED_FIFO || policy == SCHED_RR
}

/// Linux `fair_policy` (SCHED_IDLE is `idle_policy`, also of the fair class).
pub fn fair_policy(policy: u32) -> bool {
    policy == SCHED_NORMAL || policy == SCHED_BATCH
}

/// Linux `valid_policy`.
pub fn valid_policy(policy: u32) -> bool {
    fair_policy(policy) || policy == SCHED_IDLE || rt_policy(policy) || policy == SCHED_DEADLINE
}

/// Linux `nice_to_rlimit`: nice 19..-20 as 1..40 (RLIMIT_NICE's scale and
/// `getpriority`'s result).
pub fn nice_to_rlimit(nice: i32) -> u64 {
    (MAX_NICE - nice + 1) as u64
}

/// What the scheduler knows of a task's policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SchedAttr {
    pub policy: u32,
    /// The static priority as a nice value, -20..19. Kept (and reported)
    /// under a real-time policy, as in Linux.
    pub nice: i32,
    /// 1..99 for SCHED_FIFO/SCHED_RR, 0 otherwise.
    pub rt_priority: u32,
    /// SCHED_FLAG_RESET_ON_FORK: children start as SCHED_NORMAL, nice >= 0.
    pub reset_on_fork: bool,
    /// The fair slice the task chose (`sched_runtime`), if it did
    /// (`custom_slice`); [`SchedAttr::slice`] is the one in effect.
    pub slice_ns: u64,
    pub custom_slice: bool,
}

impl SchedAttr {
    /// SCHED_NORMAL, nice 0 (init's, and the idle task's).
    pub const fn normal() -> SchedAttr {
        SchedAttr {
            policy: SCHED_NORMAL,
            nice: 0,
            rt_priority: 0,
            reset_on_fork: false,
            slice_ns: 0,
            custom_slice: false,
        }
    }

    /// The fair slice in effect (Linux `se->slice`): the chosen one, or
    /// the base slice of the CPUs online now.
    pub fn slice(&self) -> u64 {
        if self.custom_slice {
            self.slice_ns
        } else {
            base_slice_ns()
        }
    }

    /// The child's attributes (Linux `sched_fork`): the parent's policy,
    /// priority, nice and slice; with reset-on-fork a real-time parent's
    /// child is SCHED_NORMAL at nice 0, a fair one's negative nice becomes
    /// 0, the slice is the default again, and the flag is not inherited.
    pub fn for_child(&self) -> SchedAttr {
        let mut child = *self;
        if self.reset_on_fork {
            child.slice_ns = 0;
            child.custom_slice = false;
            if rt_policy(child.policy) || child.policy == SCHED_DEADLINE {
                child.policy = SCHED_NORMAL;
                child.rt_priority = 0;
                child.nice = 0;
            } else {
                child.nice = child.nice.max(0);
            }
            child.reset_on_fork = false;
        }
        child
    }

    /// Where the run queue puts the task: its real-time priority, 0 for
    /// the fair class. A higher key runs first.
    pub fn queue_key(&self) -> u32 {
        if rt_policy(self.policy) {
            self.rt_priority
        } else {
            0
        }
    }
}

/// A task's scheduling attributes (one field of `Task`): the attributes
/// under their lock, and their run-queue key readable without it (the
/// run queue reads it at every enqueue).
pub struct SchedEntity {
    attr: Mutex<SchedAttr>,
    queue_key: AtomicU32,
    /// The CPU the task last ran on or is queued on (Linux `task_cpu`).
    pub(super) cpu: AtomicU32,
    /// The task runs on its CPU or is being switched away from it (Linux
    /// `p->on_cpu`): cleared only after the switch is complete, so no
    /// other CPU runs it on the stack still in use.
    pub(super) on_cpu: core::sync::atomic::AtomicBool,
    /// The task is queued or is some CPU's current task and has not been
    /// taken off by `schedule` for sleeping (Linux `p->on_rq`).
    pub(super) on_rq: core::sync::atomic::AtomicBool,
    /// Serialises a wake-up against the task's own `schedule` deciding to
    /// sleep (Linux `p->pi_lock`). Taken before any run-queue lock.
    pub(super) wake_lock: Mutex<()>,
    /// The CPUs the task may run on (Linux `cpus_mask`), bit n = CPU n.
    cpus_allowed: core::sync::atomic::AtomicU64,
    /// The fair class's weight, slice and lag of the task.
    pub(super) fair: super::fair::TaskFair,
    /// Ticks left of the SCHED_RR slice (Linux `rt.time_slice`): counted
    /// down only while the task runs, so a preempted task goes on with
    /// what it had left.
    rr_time_slice: core::sync::atomic::AtomicU64,
}

impl SchedEntity {
    pub fn new(attr: SchedAttr) -> SchedEntity {
        SchedEntity {
            queue_key: AtomicU32::new(attr.queue_key()),
            attr: Mutex::new(attr),
            cpu: AtomicU32::new(0),
            on_cpu: core::sync::atomic::AtomicBool::new(false),
            on_rq: core::sync::atomic::AtomicBool::new(false),
            wake_lock: Mutex::new(()),
            cpus_allowed: core::sync::atomic::AtomicU64::new(u64::MAX),
            fair: super::fair::TaskFair::new(&attr),
            rr_time_slice: core::sync::atomic::AtomicU64::new(super::rr_timeslice()),
        }
    }

    /// A tick while the task runs as SCHED_RR: one tick less of its slice;
    /// a used-up slice is refilled with `full` ticks and the result is
    /// `true` (it goes behind its peers). Only its CPU calls this.
    pub(super) fn rr_tick(&self, full: u64) -> bool {
        let left = self.rr_time_slice.load(Ordering::Relaxed).saturating_sub(1);
        let over = left == 0;
        self.rr_time_slice
            .store(if over { full } else { left }, Ordering::Relaxed);
        over
    }

    /// The CPUs the task may run on (`sched_getaffinity`).
    pub fn cpus_allowed(&self) -> u64 {
        self.cpus_allowed.load(Ordering::Relaxed)
    }

    /// Replaces the CPUs the task may run on; the scheduler moves it at
    /// its next `schedule` (see `sched::set_cpus_allowed`).
    pub(super) fn set_cpus_allowed(&self, mask: u64) {
        self.cpus_allowed.store(mask, Ordering::Relaxed);
    }

    /// Whether the task may run on `cpu`.
    pub fn may_run_on(&self, cpu: u32) -> bool {
        self.cpus_allowed() & (1 << cpu) != 0
    }

    /// The CPU the task last ran on (Linux `task_cpu`).
    pub fn cpu(&self) -> u32 {
        self.cpu.load(Ordering::Relaxed)
    }

    /// A copy of the attributes.
    pub fn get(&self) -> SchedAttr {
        *self.attr.lock()
    }

    /// Replaces the attributes. The run queue must be told of a task
    /// waiting on it or running (see `sched::set_sched_attr`).
    pub fn set(&self, attr: SchedAttr) {
        let mut guard = self.attr.lock();
        *guard = attr;
        self.queue_key.store(attr.queue_key(), Ordering::Relaxed);
        self.fair.set(&attr);
    }

    /// The run-queue key (see [`SchedAttr::queue_key`]).
    pub fn queue_key(&self) -> u32 {
        self.queue_key.load(Ordering::Relaxed)
    }

    /// Whether the task is SCHED_RR (its slice ends at the tick).
    pub fn is_round_robin(&self) -> bool {
        self.attr.lock().policy == SCHED_RR
    }
}
