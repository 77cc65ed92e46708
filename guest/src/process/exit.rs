//! Task exit (Linux `kernel/exit.c`): release the task's resources, hand
//! its children to the reaper, become a zombie and tell the parent.

use alloc::sync::Arc;
use alloc::vec::Vec;

use super::task::{Task, TaskState};
use crate::sched;

/// Pid of the task that adopts orphans.
pub const REAPER_PID: u32 = 1;

/// Wait status of a normal exit with `code` (Linux `(code & 0xff) << 8`).
pub fn exit_status(code: i32) -> u32 {
    ((code as u32) & 0xff) << 8
}

/// Wait status of a death by `signal`.
pub fn signal_status(signal: u32) -> u32 {
    signal & 0x7f
}

/// On the way back to user mode: exit if SIGKILL or another thread's
/// `exit_group` asked for it.
pub fn exit_if_fatal_pending() {
    // Not `if let Some(..) = sched::current()...`: the temporary task
    // reference would live through do_exit, which never returns, and leak.
    let status = sched::current().fatal_status();
    if let Some(status) = status {
        do_exit(status);
    }
}

/// Ends every other thread of the current task's group with `status`, then
/// the current one (Linux `do_group_exit`).
pub fn do_group_exit(status: u32) -> ! {
    let current = sched::current();
    for task in super::all_tasks() {
        if task.tgid == current.tgid && !Arc::ptr_eq(&task, &current) {
            task.set_fatal(status);
        }
    }
    drop(current);
    do_exit(status)
}

/// Ends the current task with wait status `status` (Linux `do_exit`).
/// When init (pid 1) ends, the VM powers off with its exit status (or
/// 128 + the signal that killed it), as a container's pid 1 would.
pub fn do_exit(status: u32) -> ! {
    let task = sched::current();
    if task.pid == REAPER_PID && task.mm().is_some() {
        let code = if status & 0x7f == 0 {
            (status >> 8) & 0xff
        } else {
            128 + (status & 0x7f)
        };
        crate::drivers::vmm_ports::poweroff(code);
    }
    if task.is_namespace_init() && task.is_group_leader() {
        zap_pid_namespace(&task);
    }
    super::signal::retarget_shared_pending(&task);
    exit_mm(&task);
    // exit_sem: the last task holding an undo list applies it.
    let sysvsem = task.inner.lock().sysvsem.take();
    drop(sysvsem);
    // exit_files: pipe ends close when the last table referring to them goes.
    let files = task.inner.lock().files.take();
    drop(files);
    // exit_io_context: a zombie reports no I/O priority (IOPRIO_WHO_PGRP
    // still counts it, with the default).
    let io_context = task.inner.lock().io_context.take();
    drop(io_context);
    super::fork::release_vfork_parent(&task);
    reparent_children(&task);

    // A thread that is not its group's leader notifies nobody (Linux
    // `exit_notify`): its parent is the group's parent, woken for it only
    // if it was that parent's last child (a waiter then gets ECHILD). A
    // spurious wake-up costs the parent a switch to its address space and
    // back per thread exit (~30 us on PVM: harnessd's clone_thread).
    let thread = !task.is_group_leader();
    let mut wake_parent = !thread;
    let (parent, mut autoreap, exit_signal) = {
        let mut inner = task.inner.lock();
        inner.exit_status = status;
        let signal = inner.exit_signal;
        (inner.parent.upgrade(), signal == 0 && thread, signal)
    };
    // Legacy clone takes any CSIGNAL byte; only a valid signal is sent.
    let valid = (1..=super::signal::NSIG as u32).contains(&exit_signal);
    if let Some(parent) = parent.as_ref().filter(|_| !thread && valid) {
        notify_parent(&task, parent, exit_signal, status);
    }
    // A parent that ignores SIGCHLD (or set SA_NOCLDWAIT) gets no zombies.
    if let Some(parent) = &parent {
        let sighand = parent.inner.lock().sighand.clone();
        let ignores = sighand.lock().children_autoreap();
        autoreap |= ignores && parent.mm().is_some();
    }
    if autoreap {
        // A thread with no exit signal is released at once (Linux
        // `release_task` from `exit_notify`).
        if let Some(parent) = &parent {
            let mut inner = parent.inner.lock();
            inner.children.retain(|c| !Arc::ptr_eq(c, &task));
            wake_parent |= inner.children.is_empty();
        }
        super::unregister(task.pid);
        task.set_state(TaskState::Dead);
    } else {
        task.set_state(TaskState::Zombie);
    }
    if let Some(parent) = parent.filter(|_| wake_parent) {
        parent.child_exit.wake_all();
    }
    drop(task);
    sched::schedule();
    unreachable!("a dead task was scheduled again");
}

/// Sends the exit signal (SIGCHLD unless clone said otherwise) to the
/// parent, with the child's pid, uid and how it ended (Linux
/// `do_notify_parent`); an ignored one is dropped by `send_signal`.
fn notify_parent(task: &Arc<Task>, parent: &Arc<Task>, signal: u32, status: u32) {
    use super::signal::{SigFields, SigInfo, CLD_EXITED, CLD_KILLED};
    let (code, value) = if status & 0x7f == 0 {
        (CLD_EXITED, ((status >> 8) & 0xff) as i32)
    } else {
        (CLD_KILLED, (status & 0x7f) as i32)
    };
    let pid = task.tgid_in(&parent.active_pid_ns());
    let uid = {
        let kuid = task.inner.lock().cred.uid;
        parent.inner.lock().cred.uid_seen(kuid)
    };
    let info = SigInfo {
        signo: signal,
        code,
        fields: SigFields::Child {
            pid,
            uid,
            status: value,
        },
    };
    super::signal::group_send_signal(parent, info);
}

/// Releases the address space (Linux `exit_mm`): clear and wake the
/// `clear_child_tid` word, switch away from the page tables, drop them.
fn exit_mm(task: &Arc<Task>) {
    let (mm, clear_child_tid) = {
        let mut inner = task.inner.lock();
        (inner.mm.take(), core::mem::take(&mut inner.clear_child_tid))
    };
    let Some(mm) = mm else { return };
    if clear_child_tid != 0
        && mm
            .copy_to_user(clear_child_tid, &0u32.to_le_bytes())
            .is_ok()
    {
        crate::syscall::futex::wake(&mm, clear_child_tid, 1);
    }
    // Threads sharing it keep it alive; the last user uninstalls it on drop.
    drop(mm);
}

/// Who adopts an exiting task's children (Linux `find_new_reaper`): its
/// pid namespace's init, or, when that init itself exits, the init of
/// the parent namespace.
fn find_new_reaper(task: &Arc<Task>) -> Option<Arc<Task>> {
    let mut ns = Some(task.active_pid_ns());
    while let Some(n) = ns {
        let reaper = n.child_reaper.lock().upgrade();
        if let Some(reaper) =
            reaper.filter(|r| !Arc::ptr_eq(r, task) && r.state() != TaskState::Zombie)
        {
            return Some(reaper);
        }
        ns = n.parent.clone();
    }
    None
}

/// When a pid namespace's init exits, every task in the namespace is
/// killed (Linux `zap_pid_ns_processes`).
fn zap_pid_namespace(init: &Arc<Task>) {
    let ns = init.active_pid_ns();
    for task in super::all_tasks() {
        if !Arc::ptr_eq(&task, init) && ns.contains(&task.active_pid_ns()) {
            task.set_fatal(signal_status(9));
        }
    }
}

/// Gives the children of an exiting task to the reaper (Linux
/// `forget_original_parent`); zombies among them wake it up.
fn reparent_children(task: &Arc<Task>) {
    let children: Vec<Arc<Task>> = core::mem::take(&mut task.inner.lock().children);
    if children.is_empty() {
        return;
    }
    let reaper = find_new_reaper(task);
    let Some(reaper) = reaper else {
        // No reaper: nobody can wait for them; release the zombies.
        for child in children {
            if child.state() == TaskState::Zombie {
                super::unregister(child.pid);
            }
        }
        return;
    };
    let mut any_zombie = false;
    for child in &children {
        let mut inner = child.inner.lock();
        inner.parent = Arc::downgrade(&reaper);
        // "We don't want people slaying init" (Linux `reparent_leader`):
        // an adopted process tells its new parent of its exit with SIGCHLD,
        // whatever its clone asked for.
        if child.is_group_leader() {
            inner.exit_signal = super::signal::SIGCHLD;
        }
        drop(inner);
        any_zombie |= child.state() == TaskState::Zombie;
    }
    reaper.inner.lock().children.extend(children);
    if any_zombie {
        reaper.child_exit.wake_all();
    }
}
