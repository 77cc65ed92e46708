//! Pid namespaces (Linux `kernel/pid.c`, `kernel/pid_namespace.c`): each
//! task has a number in its own namespace and in every ancestor, the
//! first task of a namespace is its pid 1 and child reaper, and a task
//! sees only the pids of its namespace and below.
//!
//! Each namespace maps its numbers to their [`PidNumbers`] (Linux's idr of
//! `struct pid`), and a `PidNumbers` knows the thread it names, the process
//! (thread group) when that thread leads one, and the processes whose
//! process group it names: `find_task_by_vpid`, `kill(pid)` and `kill(-pgrp)`
//! are lookups, not scans of every task.

use alloc::collections::BTreeMap;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use spin::Mutex;

use super::task::Task;
use super::thread_group::ThreadGroup;
use crate::errno::{EAGAIN, EEXIST, EINVAL, ENOSPC};

/// Largest pid (Linux's default `pid_max`).
pub const PID_MAX: u32 = 32768;
/// Where the initial namespace's pids wrap to (Linux `RESERVED_PIDS`).
const RESERVED_PIDS: u32 = 300;
/// Deepest nesting (`MAX_PID_NS_LEVEL`).
pub const MAX_PID_NS_LEVEL: u32 = 32;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);
static LIVE: AtomicU64 = AtomicU64::new(0);

/// A pid namespace.
pub struct PidNamespace {
    /// 0 for the initial namespace.
    pub level: u32,
    pub parent: Option<Arc<PidNamespace>>,
    /// Identity (what `/proc/self/ns/pid` would show).
    pub id: u64,
    numbers: Mutex<Numbers>,
    /// The namespace's pid 1, which adopts its orphans.
    pub child_reaper: Mutex<Weak<Task>>,
    /// The owning user namespace.
    pub user_ns: Arc<super::user_ns::UserNamespace>,
}

/// The numbers in use, each with the pid it belongs to.
struct Numbers {
    used: BTreeMap<u32, Weak<PidNumbers>>,
    last: u32,
}

impl PidNamespace {
    /// The initial namespace.
    pub fn initial() -> Arc<PidNamespace> {
        LIVE.fetch_add(1, Ordering::Relaxed);
        Arc::new(PidNamespace {
            level: 0,
            parent: None,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            numbers: Mutex::new(Numbers {
                used: BTreeMap::new(),
                last: 0,
            }),
            child_reaper: Mutex::new(Weak::new()),
            user_ns: super::user_ns::init_user_ns().clone(),
        })
    }

    /// A namespace nested in `parent`, owned by `user_ns` (Linux
    /// `create_pid_namespace`).
    pub fn new_child(
        parent: &Arc<PidNamespace>,
        user_ns: &Arc<super::user_ns::UserNamespace>,
    ) -> Result<Arc<PidNamespace>, i32> {
        // The new namespace's owner must be at or below the parent's.
        if !user_ns.is_within(&parent.user_ns) {
            return Err(EINVAL);
        }
        if parent.level + 1 > MAX_PID_NS_LEVEL {
            return Err(ENOSPC);
        }
        LIVE.fetch_add(1, Ordering::Relaxed);
        Ok(Arc::new(PidNamespace {
            level: parent.level + 1,
            parent: Some(parent.clone()),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            numbers: Mutex::new(Numbers {
                used: BTreeMap::new(),
                last: 0,
            }),
            child_reaper: Mutex::new(Weak::new()),
            user_ns: user_ns.clone(),
        }))
    }

    /// Takes a number for `pid`: `requested`, or the next free one
    /// (cyclic; the initial namespace wraps to 300 as Linux does).
    fn alloc(&self, requested: Option<u32>, pid: &Weak<PidNumbers>) -> Result<u32, i32> {
        use alloc::collections::btree_map::Entry;
        let mut numbers = self.numbers.lock();
        if let Some(nr) = requested {
            if !(1..PID_MAX).contains(&nr) {
                return Err(EINVAL);
            }
            return match numbers.used.entry(nr) {
                Entry::Occupied(_) => Err(EEXIST),
                Entry::Vacant(slot) => {
                    slot.insert(pid.clone());
                    Ok(nr)
                }
            };
        }
        let wrap_to = if self.level == 0 { RESERVED_PIDS } else { 2 };
        let mut candidate = numbers.last + 1;
        for _ in 0..PID_MAX {
            if candidate >= PID_MAX {
                candidate = wrap_to;
            }
            if let Entry::Vacant(slot) = numbers.used.entry(candidate) {
                slot.insert(pid.clone());
                numbers.last = candidate;
                return Ok(candidate);
            }
            candidate += 1;
        }
        Err(EAGAIN)
    }

    /// The pid numbered `nr` here (Linux `find_pid_ns`), if in use.
    pub fn find_pid(&self, nr: u32) -> Option<Arc<PidNumbers>> {
        self.numbers.lock().used.get(&nr)?.upgrade()
    }

    /// The thread numbered `nr` here, zombies included (Linux
    /// `find_task_by_pid_ns`).
    pub fn find_task(&self, nr: u32) -> Option<Arc<Task>> {
        self.find_pid(nr)?.task()
    }

    /// Every pid in use here, by number: the tasks of this namespace and of
    /// those nested in it. For the operations that address everyone
    /// (`kill(-1)`, `IOPRIO_WHO_USER`, listings, a dying init's namespace).
    pub fn pids(&self) -> Vec<Arc<PidNumbers>> {
        let numbers = self.numbers.lock();
        numbers.used.values().filter_map(Weak::upgrade).collect()
    }

    fn free(&self, nr: u32) {
        self.numbers.lock().used.remove(&nr);
    }

    /// The namespace's init (its child reaper), if it has one.
    pub fn child_reaper(&self) -> Option<Arc<Task>> {
        self.child_reaper.lock().upgrade()
    }
}

impl Drop for PidNamespace {
    fn drop(&mut self) {
        LIVE.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Live pid namespaces.
pub fn live() -> u64 {
    LIVE.load(Ordering::Relaxed)
}

/// A task's pid (Linux `struct pid`): its number at every level from the
/// initial namespace down to its own, and what the pid names (Linux
/// `pid->tasks[]`). Dropping it frees the numbers.
pub struct PidNumbers {
    numbers: Vec<(Arc<PidNamespace>, u32)>,
    /// The thread with this pid, set once it is built (`PIDTYPE_PID`).
    task: spin::Once<Weak<Task>>,
    /// The process this pid is the id of, when its thread leads a thread
    /// group (`PIDTYPE_TGID`).
    group: spin::Once<Weak<ThreadGroup>>,
    /// The processes whose process group this pid is (`PIDTYPE_PGID`):
    /// members stay until they are reaped, as in Linux. Locked after
    /// `ThreadGroup::ids` (see docs/ARCHITECTURE.md, lock order).
    pgrp_members: Mutex<Vec<Weak<ThreadGroup>>>,
}

impl PidNumbers {
    /// Numbers in `ns` and every ancestor (Linux `alloc_pid`). `set_tid`
    /// asks for specific numbers, innermost first (clone3). On an error
    /// the numbers taken so far are freed.
    pub fn alloc(ns: &Arc<PidNamespace>, set_tid: &[u32]) -> Result<Arc<PidNumbers>, i32> {
        if set_tid.len() as u32 > ns.level + 1 {
            return Err(EINVAL);
        }
        let mut result = Ok(());
        let pid = Arc::new_cyclic(|me| {
            let mut numbers = Vec::with_capacity(ns.level as usize + 1);
            // Innermost first, like set_tid.
            let mut level = Some(ns);
            let mut i = 0;
            while let Some(n) = level {
                match n.alloc(set_tid.get(i).copied(), me) {
                    Ok(nr) => numbers.push((n.clone(), nr)),
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                }
                level = n.parent.as_ref();
                i += 1;
            }
            numbers.reverse(); // the initial namespace first
            PidNumbers {
                numbers,
                task: spin::Once::new(),
                group: spin::Once::new(),
                pgrp_members: Mutex::new(Vec::new()),
            }
        });
        result.map(|()| pid)
    }

    /// Records the thread this pid names (once, when it is built).
    pub fn attach_task(&self, task: &Arc<Task>) {
        self.task.call_once(|| Arc::downgrade(task));
    }

    /// Records the process this pid is the id of (its leader's pid).
    pub fn attach_group(&self, group: &Arc<ThreadGroup>) {
        self.group.call_once(|| Arc::downgrade(group));
    }

    /// The thread with this pid, until it is reaped.
    pub fn task(&self) -> Option<Arc<Task>> {
        self.task.get()?.upgrade()
    }

    /// The process with this pid as its id, until its last thread is gone.
    pub fn thread_group(&self) -> Option<Arc<ThreadGroup>> {
        self.group.get()?.upgrade()
    }

    /// Adds `group` to the processes of this process group.
    pub fn join_pgrp(&self, group: &Arc<ThreadGroup>) {
        self.pgrp_members.lock().push(Arc::downgrade(group));
    }

    /// Takes `group` out of this process group.
    pub fn leave_pgrp(&self, group: &ThreadGroup) {
        self.pgrp_members
            .lock()
            .retain(|member| !core::ptr::eq(member.as_ptr(), group));
    }

    /// The processes of this process group (none: no such group).
    pub fn pgrp_members(&self) -> Vec<Arc<ThreadGroup>> {
        let members = self.pgrp_members.lock();
        members.iter().filter_map(Weak::upgrade).collect()
    }

    /// Whether some process is in this process group (Linux: a group
    /// exists while its pid has a `PIDTYPE_PGID` task).
    pub fn has_pgrp_members(&self) -> bool {
        let members = self.pgrp_members.lock();
        members.iter().any(|member| member.strong_count() > 0)
    }

    /// The number in the initial namespace (the kernel's own pid).
    pub fn global(&self) -> u32 {
        self.numbers[0].1
    }

    /// The innermost namespace (the task's active pid namespace).
    pub fn ns(&self) -> &Arc<PidNamespace> {
        &self.numbers[self.numbers.len() - 1].0
    }

    /// The number seen from `ns` (Linux `pid_nr_ns`), if visible there.
    pub fn nr_in(&self, ns: &PidNamespace) -> Option<u32> {
        self.numbers
            .iter()
            .find(|(n, _)| core::ptr::eq(&**n, ns))
            .map(|&(_, nr)| nr)
    }

    /// The number in the innermost namespace.
    pub fn innermost(&self) -> u32 {
        self.numbers[self.numbers.len() - 1].1
    }
}

impl Drop for PidNumbers {
    fn drop(&mut self) {
        for (ns, nr) in &self.numbers {
            ns.free(*nr);
        }
    }
}

/// The initial pid namespace.
pub fn initial() -> Arc<PidNamespace> {
    static INITIAL: spin::Once<Arc<PidNamespace>> = spin::Once::new();
    INITIAL.call_once(PidNamespace::initial).clone()
}
