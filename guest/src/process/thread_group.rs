//! The thread group: what the threads of one process share (Linux
//! `signal_struct`, Asterinas `Process`). A [`Task`] is one thread and
//! keeps only per-thread state; its `ThreadGroup` owns
//!
//! - the process tree: its threads, its children (only group leaders are on
//!   a parent's children list, as in Linux) and its parent;
//! - the process's pending signals (`shared_pending`), resource limits,
//!   process group and session;
//! - the group exit (SIGNAL_GROUP_EXIT and its code), SIGNAL_UNKILLABLE for
//!   a pid namespace's init, the signal the parent gets when the process
//!   ends, and the queue its waiting threads sleep on (`wait_chldexit`).
//!
//! Locks (the order they nest in is in docs/ARCHITECTURE.md): `tree`,
//! `shared_pending`, `rlimits` and `ids` are separate; none is held while
//! calling into another subsystem.

use alloc::collections::VecDeque;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicI16, AtomicU32, Ordering};

use spin::Mutex;

use super::pgrp::PgrpSession;
use super::pid_ns::PidNumbers;
use super::rlimit::Rlimits;
use super::sigqueue::SigPending;
use super::task::{Pid, Task, TaskState};
use super::wait::WaitStatus;
use crate::sched::wait::WaitQueue;
use forkvm_abi::linux::signal::Signal;

/// `flags` bit: init of a pid namespace, which takes no signal it has no
/// handler for (Linux `SIGNAL_UNKILLABLE`).
const SIGNAL_UNKILLABLE: u32 = 1 << 0;
/// `flags` bit: the whole group is exiting (`SIGNAL_GROUP_EXIT`), with
/// `group_exit_status`.
const SIGNAL_GROUP_EXIT: u32 = 1 << 1;

/// The process tree around one thread group, under [`ThreadGroup::tree`].
struct Tree {
    /// Threads not yet released, the leader first while it is there. The
    /// list owns them: a sleeping thread is kept alive by it.
    threads: Vec<Arc<Task>>,
    /// Threads that have not exited (Linux `signal->live`).
    live: u32,
    /// Leaders of the child processes not yet reaped, oldest first (Linux
    /// `children`: forks and adoptions go to the back). Waits scan it from
    /// the front, so children that end in the order they were made are
    /// found and taken off at once, not after a scan of all the others.
    children: VecDeque<Arc<Task>>,
    /// The thread that created the process, or the reaper that adopted it
    /// (Linux the leader's `real_parent`).
    parent: Weak<Task>,
}

/// One process: the state its threads share.
pub struct ThreadGroup {
    /// The process id: the leader's pid, set once it is allocated (never
    /// for the kernel's own group).
    pids: spin::Once<Arc<PidNumbers>>,
    tree: Mutex<Tree>,
    /// Signals sent to the process, not to one thread.
    shared_pending: Mutex<SigPending>,
    rlimits: Mutex<Rlimits>,
    /// Process group and session (none for the kernel's own group).
    ids: Mutex<Option<PgrpSession>>,
    /// What the parent is sent when the process ends (the leader's
    /// `exit_signal`; 0: nothing). Legacy clone takes any CSIGNAL byte,
    /// kept as it came (`/proc/PID/stat` shows it); only a valid signal is
    /// sent.
    exit_signal: AtomicU32,
    /// Linux `signal->oom_score_adj` (-1000..=1000, 0 by default): moves the
    /// OOM killer's badness; -1000 exempts the process (process/oom.rs).
    oom_score_adj: AtomicI16,
    /// SIGNAL_UNKILLABLE, SIGNAL_GROUP_EXIT.
    flags: AtomicU32,
    /// The wait status every thread exits with once SIGNAL_GROUP_EXIT is set.
    group_exit_status: AtomicU32,
    /// Where threads of this process sleep in `wait4`/`waitid` until a
    /// child changes state (Linux `wait_chldexit`).
    wait_chldexit: WaitQueue,
    /// Times of released threads and reaped children (`sched::cputime`).
    cputime: crate::sched::cputime::GroupCputime,
    /// ITIMER_REAL/VIRTUAL/PROF (`time::itimer`); disarmed in a new process.
    itimers: crate::time::itimer::ITimers,
}

/// What a new process's group starts with (Linux `copy_signal`'s result);
/// its pid comes later ([`ThreadGroup::set_pids`]).
pub struct NewGroup {
    pub parent: Weak<Task>,
    pub rlimits: Rlimits,
    pub ids: Option<PgrpSession>,
    pub exit_signal: u32,
    pub oom_score_adj: i16,
}

impl ThreadGroup {
    /// A process with no pid and no threads yet: [`ThreadGroup::set_pids`]
    /// gives it its id, [`ThreadGroup::add_thread`] its first thread, and
    /// [`ThreadGroup::join_pgrp`] makes it a member of its process group.
    /// (Made early in a fork, before copy_mm, as Linux's `copy_signal`
    /// allocates `signal_struct`: after copy_mm's TLB flush every kernel
    /// page touched first costs a shadow-paging fill on the PVM host.)
    pub fn new(new: NewGroup) -> Arc<ThreadGroup> {
        Arc::new(ThreadGroup {
            pids: spin::Once::new(),
            tree: Mutex::new(Tree {
                // Room for the first thread, allocated now.
                threads: Vec::with_capacity(1),
                live: 0,
                children: VecDeque::new(),
                parent: new.parent,
            }),
            shared_pending: Mutex::new(SigPending::default()),
            rlimits: Mutex::new(new.rlimits),
            ids: Mutex::new(new.ids),
            exit_signal: AtomicU32::new(new.exit_signal),
            oom_score_adj: AtomicI16::new(new.oom_score_adj),
            flags: AtomicU32::new(0),
            group_exit_status: AtomicU32::new(0),
            wait_chldexit: WaitQueue::new(),
            cputime: Default::default(),
            itimers: Default::default(),
        })
    }

    /// Gives the new process its id, its leader's pid (once). The first
    /// process of a pid namespace is its init: SIGNAL_UNKILLABLE.
    pub fn set_pids(self: &Arc<Self>, pids: &Arc<PidNumbers>) {
        self.pids.call_once(|| pids.clone());
        pids.attach_group(self);
        if pids.innermost() == 1 {
            self.flags.fetch_or(SIGNAL_UNKILLABLE, Ordering::Relaxed);
        }
    }

    /// Puts the new process on its process group's member list (once it
    /// is sure to exist: the last step of its creation).
    pub fn join_pgrp(self: &Arc<Self>) {
        if let Some(pgrp) = self.pgrp() {
            pgrp.join_pgrp(self);
        }
    }

    /// Times of released threads and reaped children.
    pub fn cputime(&self) -> &crate::sched::cputime::GroupCputime {
        &self.cputime
    }

    /// The interval timers (`time::itimer`).
    pub fn itimers(&self) -> &crate::time::itimer::ITimers {
        &self.itimers
    }

    /// The process id in the initial namespace (0 for the kernel's group).
    pub fn tgid(&self) -> Pid {
        self.pids.get().map_or(0, |p| p.global())
    }

    /// The OOM killer's adjustment of this process's badness.
    pub fn oom_score_adj(&self) -> i16 {
        self.oom_score_adj.load(Ordering::Relaxed)
    }

    /// The process id's numbers (Linux `task_tgid`).
    pub fn pids(&self) -> Option<&Arc<PidNumbers>> {
        self.pids.get()
    }

    // ---- The process tree.

    /// Adds a new thread (at creation, before it can run).
    pub fn add_thread(&self, task: Arc<Task>) {
        let mut tree = self.tree.lock();
        tree.threads.push(task);
        tree.live += 1;
    }

    /// A thread has exited; true if it was the last live one (the process
    /// is dead).
    pub fn thread_exited(&self) -> bool {
        let mut tree = self.tree.lock();
        tree.live -= 1;
        tree.live == 0
    }

    /// Releases a thread (Linux `__unhash_process`): off the thread list,
    /// and for the last one off its process group.
    pub fn release_thread(&self, task: &Task) {
        let now_empty = {
            let mut tree = self.tree.lock();
            tree.threads.retain(|t| !core::ptr::eq(t.as_ref(), task));
            tree.threads.is_empty()
        };
        if now_empty {
            let pgrp = self.ids.lock().as_ref().map(|ids| ids.pgrp.clone());
            if let Some(pgrp) = pgrp {
                pgrp.leave_pgrp(self);
            }
        }
    }

    /// The threads not yet released (zombies included).
    pub fn threads(&self) -> Vec<Arc<Task>> {
        self.tree.lock().threads.clone()
    }

    /// The first thread `pick` accepts, in thread-list order.
    pub fn find_thread(&self, mut pick: impl FnMut(&Arc<Task>) -> bool) -> Option<Arc<Task>> {
        let tree = self.tree.lock();
        tree.threads.iter().find(|t| pick(t)).cloned()
    }

    /// Whether a thread other than `task` is not yet released.
    pub fn has_other_threads(&self, task: &Task) -> bool {
        let tree = self.tree.lock();
        tree.threads
            .iter()
            .any(|t| !core::ptr::eq(t.as_ref(), task))
    }

    /// The thread that created the process, or the reaper that adopted it.
    pub fn parent(&self) -> Option<Arc<Task>> {
        self.tree.lock().parent.upgrade()
    }

    /// Gives the process a new parent thread (`reparent`).
    pub fn set_parent(&self, parent: &Arc<Task>) {
        self.tree.lock().parent = Arc::downgrade(parent);
    }

    /// Adds a child process (its leader).
    pub fn add_child(&self, child: Arc<Task>) {
        self.tree.lock().children.push_back(child);
    }

    /// Adds adopted child processes, after the others.
    pub fn adopt_children(&self, children: VecDeque<Arc<Task>>) {
        self.tree.lock().children.extend(children);
    }

    /// Takes a reaped child off the children list; true if none is left.
    pub fn remove_child(&self, child: &Task) -> bool {
        let mut tree = self.tree.lock();
        // Compares addresses only: no child's memory is touched.
        if let Some(at) = tree
            .children
            .iter()
            .position(|c| core::ptr::eq(c.as_ref(), child))
        {
            tree.children.remove(at);
        }
        tree.children.is_empty()
    }

    /// Takes every child (the process is dead: they go to a reaper).
    pub fn take_children(&self) -> VecDeque<Arc<Task>> {
        core::mem::take(&mut self.tree.lock().children)
    }

    /// Runs `f` over the children list (the waiting side: Linux
    /// `do_wait_thread` under `tasklist_lock`). `f` may take a child's
    /// `ids` lock (see the lock order) and nothing else.
    pub fn with_children<R>(&self, f: impl FnOnce(&mut VecDeque<Arc<Task>>) -> R) -> R {
        f(&mut self.tree.lock().children)
    }

    /// The children `exiting` created gets another live thread of the
    /// group as their parent (Linux `find_alive_thread`), so that
    /// `__WNOTHREAD` waits find them; nothing if none is left.
    pub fn hand_children_to_live_thread(&self, exiting: &Task) {
        let tree = self.tree.lock();
        let Some(heir) = tree.threads.iter().find(|t| {
            !core::ptr::eq(t.as_ref(), exiting)
                && t.fatal_status().is_none()
                && !matches!(t.state(), TaskState::Zombie | TaskState::Dead)
        }) else {
            return;
        };
        let heir = Arc::downgrade(heir);
        let children = tree.children.clone();
        drop(tree);
        for child in children {
            let mut child_tree = child.thread_group().tree.lock();
            if core::ptr::eq(child_tree.parent.as_ptr(), exiting) {
                child_tree.parent = heir.clone();
            }
        }
    }

    /// The queue waiting threads of this process sleep on.
    pub fn wait_chldexit(&self) -> &WaitQueue {
        &self.wait_chldexit
    }

    // ---- Signals and limits.

    /// The process's pending signals (locked after the thread's `inner`).
    pub fn shared_pending(&self) -> spin::MutexGuard<'_, SigPending> {
        self.shared_pending.lock()
    }

    /// The resource limits, to read or change.
    pub fn rlimits(&self) -> spin::MutexGuard<'_, Rlimits> {
        self.rlimits.lock()
    }

    /// A copy of the resource limits.
    pub fn rlimits_copy(&self) -> Rlimits {
        *self.rlimits.lock()
    }

    /// The signal the parent gets when the process ends, if any.
    pub fn exit_signal(&self) -> Option<Signal> {
        Signal::new(self.exit_signal_number())
    }

    /// The exit signal's number as clone set it (0: none; it may be no
    /// signal at all), for `/proc/PID/stat` and CLONE_PARENT.
    pub fn exit_signal_number(&self) -> u32 {
        self.exit_signal.load(Ordering::Relaxed)
    }

    /// An adopted process tells its new parent with SIGCHLD ("we don't want
    /// people slaying init", Linux `reparent_leader`).
    pub fn reset_exit_signal_for_adoption(&self) {
        self.exit_signal
            .store(Signal::SIGCHLD.number(), Ordering::Relaxed);
    }

    /// Whether this is a pid namespace's init that refuses signals it has
    /// no handler for (SIGNAL_UNKILLABLE).
    pub fn is_unkillable(&self) -> bool {
        self.flags.load(Ordering::Relaxed) & SIGNAL_UNKILLABLE != 0
    }

    /// A fault signal reset to its default action kills even init (Linux
    /// `force_sig_info_to_task` clears SIGNAL_UNKILLABLE).
    pub fn clear_unkillable(&self) {
        self.flags.fetch_and(!SIGNAL_UNKILLABLE, Ordering::Relaxed);
    }

    /// Starts a group exit with `status` (SIGNAL_GROUP_EXIT) and returns
    /// the status every thread exits with: the first request's.
    pub fn start_group_exit(&self, status: WaitStatus) -> WaitStatus {
        // The status is stored before the flag is published.
        if self.flags.load(Ordering::Acquire) & SIGNAL_GROUP_EXIT == 0 {
            self.group_exit_status
                .store(status.0 as u32, Ordering::Relaxed);
            self.flags.fetch_or(SIGNAL_GROUP_EXIT, Ordering::Release);
        }
        WaitStatus(self.group_exit_status.load(Ordering::Relaxed) as i32)
    }

    /// Whether the whole group is exiting.
    pub fn is_group_exiting(&self) -> bool {
        self.flags.load(Ordering::Acquire) & SIGNAL_GROUP_EXIT != 0
    }

    // ---- Process group and session.

    /// The process group and session (none for the kernel's group).
    pub fn ids(&self) -> spin::MutexGuard<'_, Option<PgrpSession>> {
        self.ids.lock()
    }

    /// The process group (Linux `task_pgrp`).
    pub fn pgrp(&self) -> Option<Arc<PidNumbers>> {
        self.ids.lock().as_ref().map(|ids| ids.pgrp.clone())
    }

    /// The session (Linux `task_session`).
    pub fn session(&self) -> Option<Arc<PidNumbers>> {
        self.ids.lock().as_ref().map(|ids| ids.session.clone())
    }

    /// Moves the process to process group `pgrp` (and, for `setsid`, to a
    /// new session it leads); the member lists follow. The caller holds
    /// `pgrp::CHANGE_LOCK`.
    pub fn change_pgrp(
        self: &Arc<Self>,
        pgrp: &Arc<PidNumbers>,
        new_session: Option<&Arc<PidNumbers>>,
    ) {
        let mut ids = self.ids.lock();
        let Some(ids) = ids.as_mut() else { return };
        if !Arc::ptr_eq(&ids.pgrp, pgrp) {
            ids.pgrp.leave_pgrp(self);
            pgrp.join_pgrp(self);
            ids.pgrp = pgrp.clone();
        }
        if let Some(session) = new_session {
            ids.session = session.clone();
            ids.leader = true;
        }
    }
}

impl Drop for ThreadGroup {
    fn drop(&mut self) {
        // Normally gone already with its last thread (`release_thread`).
        let pgrp = self.ids.get_mut().as_ref().map(|ids| ids.pgrp.clone());
        if let Some(pgrp) = pgrp {
            pgrp.leave_pgrp(self);
        }
    }
}
