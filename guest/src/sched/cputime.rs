//! CPU time accounting (Linux `kernel/sched/cputime.c` and the rusage
//! side of `kernel/sys.c` and `kernel/exit.c`).
//!
//! Each task's user and system time are measured on the TSC at the
//! boundaries where its mode changes: entry from user mode (the time since
//! the last stamp was user time), the return to user mode and a switch
//! away (kernel time), as Linux's `CONFIG_VIRT_CPU_ACCOUNTING_GEN` does,
//! not sampled by the tick. So `utime + stime` is the task's
//! `sum_exec_runtime` exactly and Linux's `cputime_adjust` scaling has
//! nothing to do. The hooks read the TSC and touch the task's counters
//! only: no VM exit.
//!
//! A thread group adds up its threads' times: the live ones' counters plus
//! what its released threads left (`signal_struct`'s utime/stime/nvcsw/
//! nivcsw, added in Linux's `__exit_signal`). When a parent reaps a child
//! process, the child's totals and its own reaped children's go to the
//! parent's group (`cutime`/`cstime`/`cnvcsw`/`cnivcsw`, Linux
//! `wait_task_zombie`); a child reaped without a wait (SIGCHLD ignored)
//! adds nothing, as POSIX says.
//!
//! Not accounted (0 in `struct rusage`): page faults, block I/O and the
//! maximum resident set size.

use core::sync::atomic::{AtomicU64, Ordering};

use spin::Mutex;

use crate::arch::cpu::rdtsc;
use crate::process::task::{Task, TaskState};
use crate::process::thread_group::ThreadGroup;
use crate::time::tsc_to_ns;

/// Linux `USER_HZ`: the unit of `times` (clock ticks).
pub const USER_HZ: u64 = 100;

/// One task's CPU time and context switches (Linux `task_struct`'s
/// utime, stime, nvcsw, nivcsw; `se.sum_exec_runtime` is their sum). Only
/// the CPU running the task writes them.
#[derive(Default)]
pub struct TaskCputime {
    /// TSC at which the interval being measured began (last entry, exit
    /// or switch in).
    stamp: AtomicU64,
    /// User and system time, in TSC cycles.
    utime: AtomicU64,
    stime: AtomicU64,
    /// Switches away while blocked (voluntary) and while still runnable
    /// (preempted or yielding: involuntary, as Linux counts `sched_yield`).
    nvcsw: AtomicU64,
    nivcsw: AtomicU64,
}

impl TaskCputime {
    /// Ends the interval at `now`, charging it to `bucket`.
    fn charge(&self, bucket: &AtomicU64, now: u64) {
        let start = self.stamp.swap(now, Ordering::Relaxed);
        bucket.fetch_add(now.saturating_sub(start), Ordering::Relaxed);
    }

    /// This task's totals; `running` adds the kernel time of the interval
    /// in progress (the caller's own, measured from inside a system call).
    fn totals(&self, running: bool) -> Totals {
        let mut stime = self.stime.load(Ordering::Relaxed);
        if running {
            stime += rdtsc().saturating_sub(self.stamp.load(Ordering::Relaxed));
        }
        Totals {
            utime: self.utime.load(Ordering::Relaxed),
            stime,
            nvcsw: self.nvcsw.load(Ordering::Relaxed),
            nivcsw: self.nivcsw.load(Ordering::Relaxed),
        }
    }
}

/// Times (TSC cycles) and switch counts of a task, a group or its reaped
/// children.
#[derive(Clone, Copy, Debug, Default)]
pub struct Totals {
    pub utime: u64,
    pub stime: u64,
    pub nvcsw: u64,
    pub nivcsw: u64,
}

impl Totals {
    fn add(&mut self, other: &Totals) {
        self.utime += other.utime;
        self.stime += other.stime;
        self.nvcsw += other.nvcsw;
        self.nivcsw += other.nivcsw;
    }

    /// Linux `sum_exec_runtime`, in nanoseconds.
    pub fn runtime_ns(&self) -> u64 {
        tsc_to_ns(self.utime + self.stime)
    }

    /// `struct rusage` (x86-64, 144 bytes): ru_utime and ru_stime as
    /// `struct timeval`, then 14 longs of which ru_nvcsw and ru_nivcsw
    /// (the last two) are counted here.
    pub fn to_rusage(self) -> [u8; RUSAGE_SIZE] {
        let mut bytes = [0u8; RUSAGE_SIZE];
        let timeval = |cycles: u64| {
            let ns = tsc_to_ns(cycles);
            (ns / 1_000_000_000, ns % 1_000_000_000 / 1000)
        };
        let (us, uus) = timeval(self.utime);
        let (ss, sus) = timeval(self.stime);
        let longs = [us, uus, ss, sus];
        for (i, value) in longs.iter().enumerate() {
            bytes[i * 8..i * 8 + 8].copy_from_slice(&value.to_le_bytes());
        }
        bytes[128..136].copy_from_slice(&self.nvcsw.to_le_bytes());
        bytes[136..144].copy_from_slice(&self.nivcsw.to_le_bytes());
        bytes
    }
}

/// Size of `struct rusage` on x86-64.
pub const RUSAGE_SIZE: usize = 144;

/// What a thread group keeps of threads and children that are gone.
#[derive(Default)]
pub struct GroupCputime {
    inner: Mutex<GroupTotals>,
}

#[derive(Default)]
struct GroupTotals {
    /// Its released threads (Linux `signal->utime`, ...).
    dead_threads: Totals,
    /// Its reaped children, theirs included (Linux `signal->cutime`, ...).
    children: Totals,
}

/// Linux nanoseconds to `clock_t` (`nsec_to_clock_t`).
pub fn ns_to_clock_t(ns: u64) -> u64 {
    ns / (1_000_000_000 / USER_HZ)
}

// The hooks.

/// Entry into the kernel (a system call, fault or interrupt); from user
/// mode, the time since the last stamp was user time.
pub fn enter_kernel(from_user: bool) {
    if !from_user {
        return;
    }
    let task = super::current();
    task.cputime().charge(&task.cputime().utime, rdtsc());
}

/// Return to user mode: the time since the last stamp was system time.
pub fn exit_to_user() {
    let task = super::current();
    task.cputime().charge(&task.cputime().stime, rdtsc());
}

/// A context switch from `prev` (in the kernel: system time until now)
/// to `next` (its interval starts now). Counted as voluntary if `prev`
/// blocked or exited, involuntary if it stays runnable (Linux
/// `__schedule`'s `switch_count`).
pub fn switch(prev: &Task, next: &Task) {
    let now = rdtsc();
    let prev_time = prev.cputime();
    prev_time.charge(&prev_time.stime, now);
    let count = if prev.state() == TaskState::Runnable {
        &prev_time.nivcsw
    } else {
        &prev_time.nvcsw
    };
    count.fetch_add(1, Ordering::Relaxed);
    next.cputime().stamp.store(now, Ordering::Relaxed);
}

/// A thread is released (Linux `__exit_signal`): its group keeps its
/// times after it leaves the thread list.
pub fn release_thread(task: &Task) {
    let totals = task.cputime().totals(false);
    task.thread_group()
        .cputime()
        .inner
        .lock()
        .dead_threads
        .add(&totals);
}

/// `child`, a zombie process, is reported to a thread of `parent`: its
/// usage with its reaped children's (Linux `getrusage(p, RUSAGE_BOTH)`),
/// which goes to `parent`'s children totals if `reap` (Linux
/// `wait_task_zombie`; not with WNOWAIT).
pub fn report_child(parent: &ThreadGroup, child: &Task, reap: bool) -> Totals {
    let group = child.thread_group();
    let mut both = group_totals(group, None);
    both.add(&group.cputime().inner.lock().children);
    if reap {
        parent.cputime().inner.lock().children.add(&both);
    }
    both
}

/// `task`'s CPU time in ns (Linux `se.sum_exec_runtime`), the interval
/// in progress included if `running` (only for the task running on this
/// CPU: a task switched out has a stale stamp). The fair class charges
/// its vruntime from this.
pub fn sum_exec_runtime_ns(task: &Task, running: bool) -> u64 {
    let totals = task.cputime().totals(running);
    tsc_to_ns(totals.utime + totals.stime)
}

// What the calls report.

/// One thread's totals (RUSAGE_THREAD); the caller's own include the
/// system call in progress.
pub fn thread_totals(task: &Task) -> Totals {
    let current = super::current();
    task.cputime().totals(core::ptr::eq(task, current.as_ref()))
}

/// The group's totals: its threads' and its released threads' (RUSAGE_SELF,
/// Linux `thread_group_cputime`). `caller` is the thread asking, whose
/// current system call counts.
pub fn group_totals(group: &ThreadGroup, caller: Option<&Task>) -> Totals {
    let mut totals = group.cputime().inner.lock().dead_threads;
    for thread in group.threads() {
        let running = caller.is_some_and(|c| core::ptr::eq(c, thread.as_ref()));
        totals.add(&thread.cputime().totals(running));
    }
    totals
}

/// The group's reaped children's totals (RUSAGE_CHILDREN).
pub fn children_totals(group: &ThreadGroup) -> Totals {
    group.cputime().inner.lock().children
}
