//! Pid namespaces (Linux `kernel/pid.c`, `kernel/pid_namespace.c`): each
//! task has a number in its own namespace and in every ancestor, the
//! first task of a namespace is its pid 1 and child reaper, and a task
//! sees only the pids of its namespace and below.

use alloc::collections::BTreeSet;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use spin::Mutex;

use super::task::Task;
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

struct Numbers {
    used: BTreeSet<u32>,
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
                used: BTreeSet::new(),
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
                used: BTreeSet::new(),
                last: 0,
            }),
            child_reaper: Mutex::new(Weak::new()),
            user_ns: user_ns.clone(),
        }))
    }

    /// Takes a number: `requested`, or the next free one (cyclic; the
    /// initial namespace wraps to 300 as Linux does).
    fn alloc(&self, requested: Option<u32>) -> Result<u32, i32> {
        let mut numbers = self.numbers.lock();
        if let Some(nr) = requested {
            if !(1..PID_MAX).contains(&nr) {
                return Err(EINVAL);
            }
            if !numbers.used.insert(nr) {
                return Err(EEXIST);
            }
            return Ok(nr);
        }
        let wrap_to = if self.level == 0 { RESERVED_PIDS } else { 2 };
        let mut candidate = numbers.last + 1;
        for _ in 0..PID_MAX {
            if candidate >= PID_MAX {
                candidate = wrap_to;
            }
            if numbers.used.insert(candidate) {
                numbers.last = candidate;
                return Ok(candidate);
            }
            candidate += 1;
        }
        Err(EAGAIN)
    }

    fn free(&self, nr: u32) {
        self.numbers.lock().used.remove(&nr);
    }

    /// Whether `other` is this namespace or nested in it.
    pub fn contains(&self, other: &PidNamespace) -> bool {
        let mut ns = Some(other);
        while let Some(n) = ns {
            if core::ptr::eq(n, self) {
                return true;
            }
            ns = n.parent.as_deref();
        }
        false
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
/// initial namespace down to its own. Dropping it frees the numbers.
pub struct PidNumbers {
    numbers: Vec<(Arc<PidNamespace>, u32)>,
}

impl PidNumbers {
    /// Numbers in `ns` and every ancestor (Linux `alloc_pid`). `set_tid`
    /// asks for specific numbers, innermost first (clone3).
    pub fn alloc(ns: &Arc<PidNamespace>, set_tid: &[u32]) -> Result<PidNumbers, i32> {
        if set_tid.len() as u32 > ns.level + 1 {
            return Err(EINVAL);
        }
        let mut chain = Vec::new();
        let mut level = Some(ns.clone());
        while let Some(n) = level {
            level = n.parent.clone();
            chain.push(n);
        }
        // `chain` is innermost first, like set_tid.
        let mut numbers = PidNumbers {
            numbers: Vec::new(),
        };
        for (i, n) in chain.iter().enumerate() {
            let nr = n.alloc(set_tid.get(i).copied())?; // a failure frees what was taken (Drop)
            numbers.numbers.push((n.clone(), nr));
        }
        numbers.numbers.reverse(); // the initial namespace first
        Ok(numbers)
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
