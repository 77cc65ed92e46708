//! The scheduler: a run queue per CPU with Linux's class order (real-time
//! tasks by priority, then the fair class, EEVDF by nice weight: see
//! [`fair`]), preemption when returning to user mode (after a tick, or
//! when a task that should run first woke), an idle task per CPU, and
//! placement across CPUs. A task's policy is in [`attr`].
//!
//! A task becomes runnable for the first time only through
//! [`wake_up_new_task`] (as in Linux). The kernel is not preemptible: a
//! task leaves the CPU in [`schedule`], called when it sleeps, yields or
//! exits, or on its way back to user mode after a tick asked for it.
//!
//! Across CPUs (Linux's names): a new task goes to the idlest CPU
//! (`select_task_rq` with WF_FORK: fewest running plus queued tasks, the
//! parent's CPU on a tie); a woken one to its previous CPU if that is idle,
//! else to an idle CPU, else back to its previous one. A wake-up or new
//! task that must preempt another CPU's task (that CPU idles, or runs a
//! lower priority) sets that CPU's NEED_RESCHED and sends it a reschedule
//! IPI. An idle CPU pulls a queued task from another CPU's queue whenever
//! its own is empty in `schedule` (Linux's newidle balance), which its
//! idle loop runs after every interrupt, so at least at every tick; busy
//! CPUs balance periodically at the tick ([`balance`]).
//!
//! No task runs on two CPUs: a task is `on_cpu` from the moment a CPU picks
//! it until the CPU it leaves has switched to another stack
//! (`schedule_tail`); a waker spins until then before queueing it
//! elsewhere, and a puller skips such tasks. A wake-up and the task's own
//! decision to sleep are serialised by the task's `wake_lock` (Linux
//! `pi_lock`): the waker of a task that is still current (`on_rq`) only
//! marks it runnable. Locks: a task's `wake_lock`, then one run queue's
//! lock (never two), then a CPU's `curr`/`previous` slots.

pub mod attr;
mod balance;
pub mod cputime;
pub mod fair;
pub mod wait;

use alloc::collections::VecDeque;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use core::sync::atomic::AtomicU32;

use forkvm_abi::MAX_CPUS;
use spin::{Mutex, Once};

use crate::arch::{apic, gdt, interrupts, percpu, switch};
use crate::process::task::{Task, TaskState};

/// A SCHED_RR task's default slice (Linux `RR_TIMESLICE`, 100 ms), in ticks.
pub const RR_TIMESLICE_TICKS: u64 = crate::time::TICK_HZ / 10;

/// `kernel.sched_rr_timeslice_ms` as written (Linux
/// `sysctl_sched_rr_timeslice`), and the SCHED_RR slice it sets, in
/// ticks (Linux `sched_rr_timeslice`).
static RR_TIMESLICE_MS: AtomicI64 = AtomicI64::new(rr_default_ms());
static RR_TIMESLICE: AtomicU64 = AtomicU64::new(RR_TIMESLICE_TICKS);

/// The default slice in ms (Linux `jiffies_to_msecs(RR_TIMESLICE)`).
const fn rr_default_ms() -> i64 {
    (RR_TIMESLICE_TICKS * 1000 / crate::time::TICK_HZ) as i64
}

/// Linux `msecs_to_jiffies`: milliseconds to ticks, rounded up.
fn msecs_to_ticks(ms: u64) -> u64 {
    (ms * crate::time::TICK_HZ).div_ceil(1000)
}

/// `kernel.sched_rr_timeslice_ms`: the value written, or the default.
pub fn rr_timeslice_ms() -> i64 {
    RR_TIMESLICE_MS.load(Ordering::Relaxed)
}

/// Sets `kernel.sched_rr_timeslice_ms` (Linux `sched_rr_handler`): a
/// value <= 0 restores the default (100 ms); any other is kept as written
/// and sets the slice to that many ms rounded up to whole ticks. A slice
/// in progress ends when its own count runs out.
pub fn set_rr_timeslice_ms(ms: i64) {
    let (ms, ticks) = if ms <= 0 {
        (rr_default_ms(), RR_TIMESLICE_TICKS)
    } else {
        (ms, msecs_to_ticks(ms as u64))
    };
    RR_TIMESLICE_MS.store(ms, Ordering::Relaxed);
    RR_TIMESLICE.store(ticks, Ordering::Relaxed);
}

/// The SCHED_RR slice in ticks (Linux `sched_rr_timeslice`), what
/// `sched_rr_get_interval` reports for a SCHED_RR task.
pub fn rr_timeslice() -> u64 {
    RR_TIMESLICE.load(Ordering::Relaxed)
}

/// How a task joins a run queue.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Enqueue {
    /// A new task (`wake_up_new_task`): the fair class places it without
    /// lag.
    New,
    /// Woken, moved from another CPU or class: behind its real-time
    /// peers, or with its lag in the fair class.
    Wakeup,
    /// A preempted real-time task: before its peers.
    RtHead,
}

/// The runnable tasks (Linux `struct rq` with its `rt_rq` and `cfs_rq`):
/// real-time tasks but the current one, ordered by priority, highest
/// first, in arrival order within one priority (Linux's per-priority
/// lists); then the fair class's EEVDF queue, which holds its running
/// task too.
struct RunQueue {
    rt: VecDeque<Arc<Task>>,
    fair: fair::FairRunQueue,
}

impl RunQueue {
    const fn new() -> RunQueue {
        RunQueue {
            rt: VecDeque::new(),
            fair: fair::FairRunQueue::new(fair::TICK_NS),
        }
    }

    /// Queues `task` (see [`Enqueue`]) on this queue, which is CPU
    /// `local`'s if `local`. Returns whether a fair task preempts the
    /// running fair task (see `fair::enqueue`).
    fn enqueue(&mut self, task: Arc<Task>, how: Enqueue, local: bool) -> bool {
        let key = task.sched().queue_key();
        if key == 0 {
            return fair::enqueue(&mut self.fair, task, how == Enqueue::New, local);
        }
        let head = how == Enqueue::RtHead;
        let at = self.rt.partition_point(|t| {
            let k = t.sched().queue_key();
            k > key || (!head && k == key)
        });
        self.rt.insert(at, task);
        false
    }

    /// Takes the next task off the queue; a fair one becomes the fair
    /// class's running task. `prev` is the task this CPU runs now.
    fn pick_next(&mut self, prev: &Arc<Task>) -> Option<Arc<Task>> {
        self.rt
            .pop_front()
            .or_else(|| fair::pick_next(&mut self.fair, prev))
    }

    /// Takes a queued (not running) `task` off; whether it was there.
    fn remove(&mut self, task: &Arc<Task>) -> bool {
        if let Some(at) = self.rt.iter().position(|t| Arc::ptr_eq(t, task)) {
            self.rt.remove(at);
            return true;
        }
        match self.fair.dequeue(|t| Arc::ptr_eq(t, task)) {
            Some(left) => {
                fair::left(left);
                true
            }
            None => false,
        }
    }

    /// The key of the real-time task that would run next (0 if none).
    fn best_key(&self) -> u32 {
        self.rt.front().map_or(0, |t| t.sched().queue_key())
    }

    /// Takes a task CPU `to` may run (allowed there, and not `on_cpu`: a
    /// task queued by `schedule` is still on its stack until the switch
    /// is done). A fair task takes its lag along.
    fn take_movable(&mut self, to: u32) -> Option<Arc<Task>> {
        let movable =
            |t: &Arc<Task>| !t.sched().on_cpu.load(Ordering::Acquire) && t.sched().may_run_on(to);
        if let Some(at) = self.rt.iter().rposition(movable) {
            return self.rt.remove(at);
        }
        self.fair.take_movable(movable).map(fair::left)
    }

    /// The running task `prev` leaves the CPU in `schedule`: charged, then
    /// queued again if it `stays` runnable here, else off the queue with
    /// its lag. Returns whether it was queued.
    fn put_prev(&mut self, prev: &Arc<Task>, stays: bool, preempted: bool) -> bool {
        fair::update_curr(&mut self.fair);
        let fair_stays = stays && prev.sched().queue_key() == 0;
        if fair::is_curr(&self.fair, prev) {
            if fair_stays {
                self.fair.put_prev();
                return true;
            }
            self.fair.dequeue_curr().map(fair::left);
        }
        if !stays {
            return false;
        }
        // A real-time task, or one that joined the fair class while it
        // ran.
        let how = if preempted {
            Enqueue::RtHead
        } else {
            Enqueue::Wakeup
        };
        self.enqueue(prev.clone(), how, true);
        true
    }
}

/// One CPU's scheduler state (Linux `struct rq`).
struct Rq {
    queue: Mutex<RunQueue>,
    /// Tasks in `queue`, readable without its lock (placement, balance).
    nr_queued: AtomicU32,
    curr: Mutex<Option<Arc<Task>>>,
    /// Whether `curr` is the idle task.
    running_idle: AtomicBool,
    idle: Once<Arc<Task>>,
    /// The task we switched away from, released on the other side of the
    /// switch (`schedule_tail`).
    previous: Mutex<Option<Arc<Task>>>,
    /// Set by the tick when the current task's slice is over, or by a
    /// wake-up that must preempt it.
    need_resched: AtomicBool,
    /// Set with `need_resched` when the current task's slice is over (a
    /// preempted real-time task keeps its place at the head of its
    /// priority otherwise).
    slice_over: AtomicBool,
    /// Context switches on this CPU.
    switches: AtomicU64,
}

impl Rq {
    const fn new() -> Rq {
        Rq {
            queue: Mutex::new(RunQueue::new()),
            nr_queued: AtomicU32::new(0),
            curr: Mutex::new(None),
            running_idle: AtomicBool::new(true),
            idle: Once::new(),
            previous: Mutex::new(None),
            need_resched: AtomicBool::new(false),
            slice_over: AtomicBool::new(false),
            switches: AtomicU64::new(0),
        }
    }

    /// Queues `task`; whether it preempts the running fair task (see
    /// [`RunQueue::enqueue`]).
    fn enqueue(&self, task: Arc<Task>, how: Enqueue) -> bool {
        let local = core::ptr::eq(self, this_rq());
        let preempt = self.queue.lock().enqueue(task, how, local);
        self.nr_queued.fetch_add(1, Ordering::Relaxed);
        preempt
    }

    /// Running plus queued tasks (the idle task counts for nothing).
    fn load(&self) -> u32 {
        self.nr_queued.load(Ordering::Relaxed)
            + u32::from(!self.running_idle.load(Ordering::Relaxed))
    }

    fn is_idle(&self) -> bool {
        self.load() == 0
    }
}

static RQS: [Rq; MAX_CPUS as usize] = [const { Rq::new() }; MAX_CPUS as usize];

fn this_rq() -> &'static Rq {
    &RQS[percpu::cpu_id() as usize]
}

fn cpu_rq(cpu: u32) -> &'static Rq {
    &RQS[cpu as usize]
}

/// CPUs that run tasks.
fn online_cpus() -> impl Iterator<Item = u32> {
    (0..percpu::nr_cpus()).filter(|&cpu| percpu::is_online(cpu))
}

/// Makes the boot context this CPU's idle task (pid 0): the boot CPU's in
/// `kernel_main`, each secondary CPU's in its bring-up.
pub fn init() {
    let rq = this_rq();
    let idle = rq.idle.call_once(|| {
        let idle = Arc::new(Task::idle());
        idle.set_state(TaskState::Runnable);
        idle.sched().cpu.store(percpu::cpu_id(), Ordering::Relaxed);
        idle.sched().on_cpu.store(true, Ordering::Relaxed);
        idle
    });
    *rq.curr.lock() = Some(idle.clone());
}

/// The running task.
pub fn current() -> Arc<Task> {
    this_rq()
        .curr
        .lock()
        .clone()
        .expect("scheduler initialised")
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

/// The CPU for a new task (Linux `select_task_rq` with WF_FORK, its
/// `find_idlest_cpu`): the one with the fewest running and queued tasks,
/// this (the parent's) CPU on a tie.
fn select_task_rq_fork(task: &Task) -> u32 {
    let this = percpu::cpu_id();
    if percpu::nr_cpus() == 1 {
        return this;
    }
    let se = task.sched();
    let mut best: Option<(u32, u32)> = se.may_run_on(this).then(|| (this_rq().load(), this));
    for cpu in online_cpus().filter(|&cpu| se.may_run_on(cpu)) {
        let load = cpu_rq(cpu).load();
        if best.is_none_or(|(least, _)| load < least) {
            best = Some((load, cpu));
        }
    }
    best.map_or(this, |(_, cpu)| cpu)
}

/// The CPU for a woken task: its previous CPU if that one idles (its
/// caches are there), else an idle CPU, else its previous CPU.
fn select_task_rq_wake(task: &Task) -> u32 {
    if percpu::nr_cpus() == 1 {
        return 0;
    }
    let se = task.sched();
    let prev = task.sched().cpu();
    let usable = |cpu: u32| percpu::is_online(cpu) && se.may_run_on(cpu);
    if usable(prev) && cpu_rq(prev).is_idle() {
        return prev;
    }
    online_cpus()
        .find(|&cpu| usable(cpu) && cpu_rq(cpu).is_idle())
        .or_else(|| usable(prev).then_some(prev))
        .or_else(|| online_cpus().find(|&cpu| usable(cpu)))
        .unwrap_or(0)
}

/// Sets the CPUs `task` may run on (Linux `__set_cpus_allowed_ptr`): the
/// caller checked that `mask` holds an online CPU. A task running or
/// queued elsewhere moves at its next `schedule` (asked for at once if it
/// is this CPU's current task).
pub fn set_cpus_allowed(task: &Arc<Task>, mask: u64) {
    task.sched().set_cpus_allowed(mask);
    if Arc::ptr_eq(task, &current()) && !task.sched().may_run_on(percpu::cpu_id()) {
        this_rq().need_resched.store(true, Ordering::Relaxed);
    }
}

/// CPUs that run tasks, as a mask (Linux `cpu_active_mask`).
pub fn online_mask() -> u64 {
    online_cpus().fold(0, |mask, cpu| mask | 1 << cpu)
}

/// Queues a runnable task on `cpu` and makes that CPU notice.
fn activate_task(cpu: u32, task: Arc<Task>, how: Enqueue) {
    let key = task.sched().queue_key();
    task.sched().cpu.store(cpu, Ordering::Relaxed);
    task.sched().on_rq.store(true, Ordering::Release);
    let fair_preempts = cpu_rq(cpu).enqueue(task, how);
    check_preempt_curr(cpu, key, fair_preempts);
}

/// Makes a newly created task runnable (Linux `wake_up_new_task`) on the
/// CPU [`select_task_rq_fork`] picks. A child of a higher class or
/// priority than its parent (a real-time child of a fair parent) preempts
/// it: the parent gives up the CPU on its way back to user mode; a fair
/// child preempts by EEVDF's rule (once the parent used its slice). With
/// `sched_child_runs_first` a fair child stays on this CPU as the fair
/// class's next buddy (Linux `set_next_buddy`) and preempts a fair parent.
pub fn wake_up_new_task(task: Arc<Task>) {
    task.set_state(TaskState::Runnable);
    // The CPUs allowed are inherited (Linux copies them with the whole
    // task_struct in `dup_task_struct`); the caller is the parent.
    let parent_mask = current().sched().cpus_allowed();
    task.sched().set_cpus_allowed(parent_mask);
    let first = task.sched().queue_key() == 0 && child_runs_first();
    if first {
        let this = percpu::cpu_id();
        task.sched().cpu.store(this, Ordering::Relaxed);
        task.sched().on_rq.store(true, Ordering::Release);
        let rq = this_rq();
        {
            let mut queue = rq.queue.lock();
            queue.enqueue(task, Enqueue::New, true);
            queue.fair.set_next_buddy_last();
        }
        rq.nr_queued.fetch_add(1, Ordering::Relaxed);
        rq.need_resched.store(true, Ordering::Relaxed);
    } else {
        let cpu = select_task_rq_fork(&task);
        activate_task(cpu, task, Enqueue::New);
    }
}

/// Makes a sleeping task runnable again (Linux `try_to_wake_up`).
pub fn wake_up(task: &Arc<Task>) {
    let se = task.sched();
    let guard = se.wake_lock.lock();
    if task.state() != TaskState::Sleeping {
        return;
    }
    task.set_state(TaskState::Runnable);
    if se.on_rq.load(Ordering::Acquire) {
        // Still some CPU's current task, before its `schedule`: that one
        // now sees it runnable and keeps it (Linux `ttwu_runnable`).
        return;
    }
    // It may still be on its old CPU's stack, switching away.
    while se.on_cpu.load(Ordering::Acquire) {
        core::hint::spin_loop();
    }
    let cpu = select_task_rq_wake(task);
    activate_task(cpu, task.clone(), Enqueue::Wakeup);
    drop(guard);
}

/// Linux `wakeup_preempt`: a task with run-queue key `key` was queued on
/// `cpu`. Its current task gives way on its next return to user mode if
/// it is of a lower priority, or if both are fair and the fair class said
/// so (`fair_preempts`, EEVDF's decision); another CPU is told by a
/// reschedule IPI, which also wakes it from its idle halt.
fn check_preempt_curr(cpu: u32, key: u32, fair_preempts: bool) {
    let rq = cpu_rq(cpu);
    let outranked = |c: &Arc<Task>| {
        let curr_key = c.sched().queue_key();
        curr_key < key || (key == 0 && curr_key == 0 && fair_preempts)
    };
    if cpu == percpu::cpu_id() {
        let current = rq.curr.lock().clone();
        if current.is_some_and(|c| is_idle(&c) || outranked(&c)) {
            rq.need_resched.store(true, Ordering::Relaxed);
        }
        return;
    }
    let preempt =
        rq.running_idle.load(Ordering::Acquire) || rq.curr.lock().as_ref().is_some_and(outranked);
    // One IPI until the target has rescheduled.
    if preempt && !rq.need_resched.swap(true, Ordering::AcqRel) {
        apic::send_ipi(cpu, interrupts::RESCHEDULE_VECTOR);
    }
}

/// Applies changed attributes of `task` (Linux `__sched_setscheduler`'s
/// dequeue/enqueue, `set_user_nice`'s reweight): a queued real-time task
/// moves to its new place, behind its new priority's tasks, or before
/// them if its priority went down; a fair task that stays fair, queued or
/// running, is re-weighted with its lag kept; one changing class takes
/// its lag along. Whoever now outranks the current task of that CPU
/// preempts it.
pub fn set_sched_attr(task: &Arc<Task>, new: attr::SchedAttr) {
    let old_key = task.sched().queue_key();
    task.sched().set(new);
    let cpu = task.sched().cpu();
    let local = cpu == percpu::cpu_id();
    let mut queue = cpu_rq(cpu).queue.lock();
    let was_fair_queued = old_key == 0 && !fair::is_curr(&queue.fair, task);
    if old_key == 0 && new.queue_key() == 0 {
        // Queued or running in the fair class (a no-op for neither).
        fair::reweight(&mut queue.fair, task);
    } else if (old_key != 0 || was_fair_queued) && queue.remove(task) {
        let how = if new.queue_key() < old_key {
            Enqueue::RtHead
        } else {
            Enqueue::Wakeup
        };
        queue.enqueue(task.clone(), how, local);
    }
    // A running task that changed class changes queue in its next
    // `schedule` (the fair class charges only its own running task).
    let best = queue.best_key();
    drop(queue);
    let rq = cpu_rq(cpu);
    let changed_class = (old_key == 0) != (new.queue_key() == 0);
    let running = changed_class
        && rq
            .curr
            .lock()
            .as_ref()
            .is_some_and(|c| Arc::ptr_eq(c, task));
    if local {
        if running || best > current().sched().queue_key() {
            this_rq().need_resched.store(true, Ordering::Relaxed);
        }
    } else if running {
        if !rq.need_resched.swap(true, Ordering::AcqRel) {
            apic::send_ipi(cpu, interrupts::RESCHEDULE_VECTOR);
        }
    } else if best > 0 {
        check_preempt_curr(cpu, best, false);
    }
}

/// Marks the current task as going to sleep: the caller then publishes
/// itself where a waker finds it and checks its condition once more
/// before calling [`schedule`] (a waker that made the condition true in
/// between finds the task asleep and wakes it: no lost wake-up). The full
/// fence orders this store before the caller's condition loads.
pub fn set_current_sleeping(task: &Task) {
    task.set_state(TaskState::Sleeping);
    core::sync::atomic::fence(Ordering::SeqCst);
}

/// Tasks sleeping until a TSC deadline (nanosleep); the boot CPU's tick
/// wakes them.
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
        set_current_sleeping(&task);
        SLEEPERS.lock().push((deadline, task.clone()));
        if crate::process::signal::signal_pending(&task) {
            task.set_state(TaskState::Runnable);
            cancel_timer(&task);
            let now = crate::arch::cpu::rdtsc();
            return crate::time::tsc_to_ns(deadline.saturating_sub(now)).max(1);
        }
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

/// Called from every CPU's timer interrupt (Linux `scheduler_tick`). A
/// fair task is charged its CPU time and gives way once its slice is used
/// up (its vruntime passed its deadline) and another waits; a SCHED_RR
/// task's slice is [`rr_timeslice`] ticks, counted down by the tick while
/// it runs and refilled when used up (Linux `task_tick_rt`: a preempted
/// task keeps what was left); a SCHED_FIFO task has none. The boot CPU's
/// tick also wakes timed sleepers.
pub fn tick() {
    if percpu::cpu_id() == 0 {
        wake_sleepers();
    }
    balance::tick();
    let rq = this_rq();
    let current = current();
    if is_idle(&current) {
        return;
    }
    let slice_over = match current.sched().queue_key() {
        0 => fair::update_curr(&mut rq.queue.lock().fair),
        _ if current.sched().is_round_robin() => current.sched().rr_tick(rr_timeslice()),
        _ => false,
    };
    if slice_over {
        rq.slice_over.store(true, Ordering::Relaxed);
        rq.need_resched.store(true, Ordering::Relaxed);
    }
}

/// Called on every return to user mode: give up the CPU if the slice is
/// over or a higher-priority task is waiting.
pub fn preempt_on_return_to_user() {
    let rq = this_rq();
    if rq.need_resched.load(Ordering::Relaxed) {
        let head = !rq.slice_over.load(Ordering::Relaxed);
        __schedule(head);
    }
}

/// Gives the CPU to the next runnable task of the same or a higher
/// priority, if any (`sched_yield`); the current task stays runnable,
/// behind the others of its priority, or in the fair class with its
/// deadline a slice later (Linux `yield_task_fair`).
pub fn yield_now() {
    {
        let mut queue = this_rq().queue.lock();
        fair::update_curr(&mut queue.fair);
        queue.fair.yield_curr();
    }
    schedule();
}

/// Context switches so far, on all CPUs.
pub fn switches() -> u64 {
    RQS.iter()
        .map(|rq| rq.switches.load(Ordering::Relaxed))
        .sum()
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
    let rq = this_rq();
    rq.need_resched.store(false, Ordering::Relaxed);
    rq.slice_over.store(false, Ordering::Relaxed);
    let prev = current();
    let prev_stays = !is_idle(&prev) && {
        // Decided under the wake lock: a waker either saw it asleep here
        // and queues it once we are off its stack, or made it runnable
        // before, and it stays (Linux `deactivate_task`).
        let _guard = prev.sched().wake_lock.lock();
        let runnable = prev.state() == TaskState::Runnable;
        if !runnable {
            prev.sched().on_rq.store(false, Ordering::Release);
        }
        runnable
    };
    let this = percpu::cpu_id();
    // Its affinity may no longer have this CPU: then it is queued where it
    // may run, below (the new CPU waits for it to be off this stack).
    let prev_moves = prev_stays && !prev.sched().may_run_on(this);
    let picked = {
        let mut queue = rq.queue.lock();
        let head = head_if_rt && prev.sched().queue_key() != 0;
        if !is_idle(&prev) && queue.put_prev(&prev, prev_stays && !prev_moves, head) {
            rq.nr_queued.fetch_add(1, Ordering::Relaxed);
        }
        let picked = queue.pick_next(&prev);
        if picked.is_some() {
            rq.nr_queued.fetch_sub(1, Ordering::Relaxed);
        }
        picked
    };
    if prev_moves {
        activate_task(select_task_rq_wake(&prev), prev.clone(), Enqueue::Wakeup);
    }
    let next = match picked.or_else(|| pull_task(rq, &prev)) {
        Some(next) => next,
        None => rq.idle.get().expect("idle task").clone(),
    };
    if Arc::ptr_eq(&prev, &next) {
        return;
    }
    // A task moved here by its affinity change may still be on its old
    // CPU's stack.
    while next.sched().on_cpu.load(Ordering::Acquire) {
        core::hint::spin_loop();
    }
    switch_to(rq, prev, next);
}

/// Idle balance: takes a queued task from the CPU with the most queued
/// tasks, if any waits there, and makes it this CPU's next task (one
/// run-queue lock at a time; a fair task joins this CPU's queue with the
/// lag it left with, so its vruntime is renormalised to this queue).
fn pull_task(rq: &'static Rq, prev: &Arc<Task>) -> Option<Arc<Task>> {
    if percpu::nr_cpus() == 1 {
        return None;
    }
    let this = percpu::cpu_id();
    let busiest = online_cpus()
        .filter(|&cpu| cpu != this)
        .max_by_key(|&cpu| cpu_rq(cpu).nr_queued.load(Ordering::Relaxed))?;
    let source = cpu_rq(busiest);
    if source.nr_queued.load(Ordering::Relaxed) == 0 {
        return None;
    }
    let task = source.queue.lock().take_movable(this)?;
    source.nr_queued.fetch_sub(1, Ordering::Relaxed);
    task.sched().cpu.store(this, Ordering::Relaxed);
    let mut queue = rq.queue.lock();
    queue.enqueue(task, Enqueue::Wakeup, true);
    queue.pick_next(prev)
}

fn switch_to(rq: &'static Rq, prev: Arc<Task>, next: Arc<Task>) {
    rq.switches.fetch_add(1, Ordering::Relaxed);
    cputime::switch(&prev, &next);
    next.sched().on_cpu.store(true, Ordering::Relaxed);
    next.sched().cpu.store(percpu::cpu_id(), Ordering::Relaxed);
    rq.running_idle.store(is_idle(&next), Ordering::Release);
    if let Some(top) = next.kernel_stack_top() {
        gdt::set_kernel_stack(top);
    }
    crate::process::switch_mm(&prev, &next);
    let prev_rsp = prev.saved_rsp.as_ptr();
    let next_rsp = next.saved_rsp.load(Ordering::Acquire);
    *rq.curr.lock() = Some(next);
    // Keep `prev` alive across the switch; the next task drops it.
    *rq.previous.lock() = Some(prev);
    // SAFETY: interrupts are off in the kernel; `prev_rsp` points into
    // `prev`, which `previous` keeps alive until the other side has
    // switched; `next_rsp` was saved by a switch away from `next` (on
    // whichever CPU: it was off that CPU's stack, `on_cpu` clear, before
    // it could be queued here) or prepared for it.
    unsafe { switch::context_switch(prev_rsp, next_rsp) };
    schedule_tail();
}

/// First thing a task does after being switched to: release the task it
/// replaced (Linux `finish_task_switch`), which other CPUs may now run.
#[no_mangle]
pub extern "C" fn schedule_tail() {
    let previous = this_rq().previous.lock().take();
    if let Some(previous) = &previous {
        previous.sched().on_cpu.store(false, Ordering::Release);
    }
    drop(previous);
}

/// The idle loop of every CPU: run whatever becomes runnable, halt
/// otherwise.
pub fn idle_loop() -> ! {
    let rq = this_rq();
    let boot_cpu = percpu::cpu_id() == 0;
    loop {
        schedule();
        // Interrupts are taken only here and in user mode; `sti; hlt`
        // cannot miss one that arrives in between. A console reader's
        // input is first waited for by polling (see `idle_poll`; the
        // console interrupts the boot CPU).
        if rq.nr_queued.load(Ordering::Relaxed) == 0
            && !rq.need_resched.load(Ordering::Relaxed)
            && !(boot_cpu && crate::drivers::virtio_console::idle_poll())
        {
            crate::mm::address_space::free_dead_root_when_idle();
            crate::arch::cpu::enable_interrupts_and_halt();
            crate::arch::cpu::disable_interrupts();
        }
    }
}
