//! Process groups and sessions (Linux `PIDTYPE_PGID` and `PIDTYPE_SID`):
//! every process belongs to one group and one session, each named by the
//! pid of its leader. The system calls are in `syscall/pgrp.rs`; `kill`,
//! `wait4` and `ioprio_set`/`ioprio_get` address groups through the
//! group's member list ([`PidNumbers::pgrp_members`]).
//!
//! A group or session refers to its leader's [`PidNumbers`] (Linux's
//! `struct pid`), not to a number: the leader's pid stays allocated while a
//! member is left (even after the leader is reaped), and every caller sees
//! the id in its own pid namespace (0 if the leader is outside it). The
//! record is the thread group's (`ThreadGroup::ids`); the group's pid
//! lists its member processes until they are reaped.

use alloc::sync::Arc;

use spin::Mutex;

use super::pid_ns::{PidNamespace, PidNumbers};
use super::task::{Task, TaskState};

/// A process's group and session (Linux keeps them, and `leader`, in
/// `signal_struct`; here in its [`super::thread_group::ThreadGroup`]).
pub struct PgrpSession {
    /// The process group: its leader's pid.
    pub pgrp: Arc<PidNumbers>,
    /// The session: its leader's pid.
    pub session: Arc<PidNumbers>,
    /// This process leads its session (Linux `signal->leader`): set by
    /// `setsid`, never inherited.
    pub leader: bool,
}

impl PgrpSession {
    /// The process `pid` leading a new group and session (init, `setsid`).
    pub fn new_leader(pid: &Arc<PidNumbers>) -> PgrpSession {
        PgrpSession {
            pgrp: pid.clone(),
            session: pid.clone(),
            leader: true,
        }
    }

    /// A forked process's: the parent's group and session, not leading
    /// anything (Linux `copy_process`: `init_task_pid` from `current`).
    pub fn inherit(parent: &PgrpSession) -> PgrpSession {
        PgrpSession {
            pgrp: parent.pgrp.clone(),
            session: parent.session.clone(),
            leader: false,
        }
    }
}

/// The task's process group (Linux `task_pgrp`).
pub fn task_pgrp(task: &Task) -> Option<Arc<PidNumbers>> {
    task.thread_group().pgrp()
}

/// The task's session (Linux `task_session`).
pub fn task_session(task: &Task) -> Option<Arc<PidNumbers>> {
    task.thread_group().session()
}

/// Whether two ids are the same `struct pid`.
pub fn same(a: &Arc<PidNumbers>, b: &Arc<PidNumbers>) -> bool {
    Arc::ptr_eq(a, b)
}

/// The process group whose id in `ns` is `pgid` (Linux `find_vpid` for a
/// group that has members), if there is one.
pub fn find_pgrp(ns: &PidNamespace, pgid: u32) -> Option<Arc<PidNumbers>> {
    ns.find_pid(pgid).filter(|pid| pid.has_pgrp_members())
}

/// The task whose id in `ns` is `pid`, thread or process, zombies included
/// (Linux `find_task_by_vpid`).
pub fn find_task_by_vpid(ns: &PidNamespace, pid: u32) -> Option<Arc<Task>> {
    if pid == 0 {
        return None;
    }
    ns.find_task(pid)
        .filter(|task| task.state() != TaskState::Dead)
}

/// Serialises the changes of `setpgid` and `setsid` (the part of Linux's
/// `tasklist_lock` they need): each checks the groups and then changes one,
/// and no other change may come in between. Taken before any
/// `ThreadGroup::ids` lock.
pub static CHANGE_LOCK: Mutex<()> = Mutex::new(());
