//! Waiting for children (Linux `do_wait` for `wait4`).

use alloc::sync::Arc;

use super::task::{Pid, Task, TaskState};
use crate::errno::{ECHILD, ERESTARTSYS};
use crate::sched;

/// `wait4` option: return 0 at once if no child has exited.
pub const WNOHANG: u32 = 1;

/// Which children a wait accepts.
#[derive(Clone)]
pub enum WaitFor {
    Any,
    Pid(Pid),
    /// Members of this process group (compared when each child is
    /// looked at: a child that changed groups counts in its new one).
    Pgrp(Arc<super::pid_ns::PidNumbers>),
}

/// Waits for a child to exit and reaps it: `Ok(Some((pid, status)))`, or
/// `Ok(None)` with `WNOHANG` when none has exited yet.
pub fn do_wait(which: WaitFor, options: u32) -> Result<Option<(Pid, u32)>, i32> {
    let parent = sched::current();
    let mut result = Err(ECHILD);
    let completed = parent.child_exit.wait_until(|| {
        result = try_reap(&parent, &which);
        match result {
            Ok(Some(_)) | Err(_) => true,
            Ok(None) => options & WNOHANG != 0,
        }
    });
    if !completed {
        // Interrupted: restarted if the handler has SA_RESTART.
        return Err(ERESTARTSYS);
    }
    result
}

/// One pass over the children: reap a matching zombie if there is one.
fn try_reap(parent: &Arc<Task>, which: &WaitFor) -> Result<Option<(Pid, u32)>, i32> {
    // Pids are the waiter's view (its pid namespace).
    let ns = parent.active_pid_ns();
    let mut inner = parent.inner.lock();
    let matches = |child: &Arc<Task>| match which {
        WaitFor::Any => true,
        WaitFor::Pid(pid) => child.tid_in(&ns) == *pid,
        WaitFor::Pgrp(group) => {
            super::pgrp::task_pgrp(child).is_some_and(|g| super::pgrp::same(&g, group))
        }
    };
    if !inner.children.iter().any(matches) {
        return Err(ECHILD);
    }
    let Some(index) = inner
        .children
        .iter()
        .position(|c| matches(c) && c.state() == TaskState::Zombie)
    else {
        return Ok(None);
    };
    let child = inner.children.swap_remove(index);
    drop(inner);
    let status = child.inner.lock().exit_status;
    child.set_state(TaskState::Dead);
    super::unregister(child.pid);
    Ok(Some((child.tid_in(&ns), status)))
}
