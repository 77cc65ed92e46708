//! Task exit (Linux `kernel/exit.c`): release the task's resources, hand
//! its children to the reaper, become a zombie and tell the parent.

use alloc::sync::Arc;

use super::task::{Task, TaskState};
use super::wait::WaitStatus;
use crate::sched;
use forkvm_abi::linux::signal::Signal;

/// Pid of the task that adopts orphans.
pub const REAPER_PID: u32 = 1;

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
/// the current one (Linux `do_group_exit`). If the group is already
/// exiting, its status wins.
pub fn do_group_exit(status: WaitStatus) -> ! {
    let current = sched::current();
    let status = current.thread_group().start_group_exit(status);
    for thread in current.thread_group().threads() {
        if !Arc::ptr_eq(&thread, &current) {
            thread.set_fatal(status);
        }
    }
    drop(current);
    do_exit(status)
}

/// Ends the current task with wait status `status` (Linux `do_exit`).
/// When init (pid 1) ends, the VM powers off with its exit status (or
/// 128 + the signal that killed it), as a container's pid 1 would.
pub fn do_exit(status: WaitStatus) -> ! {
    let task = sched::current();
    if task.pid == REAPER_PID && task.mm().is_some() {
        let code = if status.exited() {
            status.exit_status()
        } else {
            128 + status.term_signal()
        };
        crate::drivers::vmm_ports::poweroff(code as u32);
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
    let group = task.thread_group().clone();
    if group.thread_exited() {
        // The process is dead: its children go to the reaper.
        forget_original_parent(&task);
    } else {
        group.hand_children_to_live_thread(&task);
    }
    task.inner.lock().exit_status = status;
    exit_notify(&task, status);
    drop(group);
    drop(task);
    sched::schedule();
    unreachable!("a dead task was scheduled again");
}

/// Tells the parent (Linux `exit_notify`): a thread that is not its
/// group's leader notifies nobody and is released at once; a leader sends
/// its process's exit signal and stays a zombie until reaped, unless the
/// parent ignores SIGCHLD (or set SA_NOCLDWAIT), which reaps it now.
fn exit_notify(task: &Arc<Task>, status: WaitStatus) {
    if !task.is_group_leader() {
        release_task(task);
        return;
    }
    let group = task.thread_group();
    let parent = group.parent();
    let exit_signal = group.exit_signal();
    if let (Some(parent), Some(exit_signal)) = (parent.as_ref(), exit_signal) {
        notify_parent(task, parent, exit_signal, status);
    }
    let autoreap = parent.as_ref().is_some_and(|parent| {
        let sighand = parent.inner.lock().sighand.clone();
        let ignores = sighand.lock().children_autoreap();
        ignores && parent.mm().is_some()
    });
    if let Some(parent) = &parent {
        if autoreap {
            parent.thread_group().remove_child(task);
            release_task(task);
        } else {
            task.set_state(TaskState::Zombie);
        }
        parent.thread_group().wait_chldexit().wake_all();
    } else {
        task.set_state(TaskState::Zombie);
    }
}

/// Frees what is left of a dead task (Linux `release_task`): it leaves its
/// group's thread list (and, the last one, its process group) and its pid
/// numbers go with the last reference. The caller has taken it off its
/// parent's children list if it was there.
pub fn release_task(task: &Task) {
    task.set_state(TaskState::Dead);
    // Its user's RLIMIT_NPROC count drops now, as in Linux's release_task,
    // not with the last reference: the CPU it ran on may drop that after
    // the reaper's wait has returned (and its next fork got EAGAIN).
    let user_count = task.inner.lock().user_count.take();
    drop(user_count);
    crate::sched::cputime::release_thread(task);
    task.thread_group().release_thread(task);
}

/// Sends the exit signal (SIGCHLD unless clone said otherwise) to the
/// parent, with the child's pid, uid and how it ended (Linux
/// `do_notify_parent`); an ignored one is dropped by `send_signal`.
fn notify_parent(task: &Arc<Task>, parent: &Arc<Task>, signal: Signal, status: WaitStatus) {
    use super::signal::{SigFields, SigInfo, CLD_EXITED, CLD_KILLED};
    let (code, value) = if status.exited() {
        (CLD_EXITED, status.exit_status())
    } else {
        (CLD_KILLED, status.term_signal())
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

/// Releases the address space (Linux `exit_mm`): mark the robust futexes
/// the thread holds as dead (`futex_exit_release`), clear and wake the
/// `clear_child_tid` word, switch away from the page tables, drop them.
fn exit_mm(task: &Arc<Task>) {
    let (mm, clear_child_tid, robust_list) = {
        let mut inner = task.inner.lock();
        (
            inner.mm.take(),
            core::mem::take(&mut inner.clear_child_tid),
            core::mem::take(&mut inner.robust_list),
        )
    };
    let Some(mm) = mm else { return };
    if robust_list != 0 {
        crate::syscall::robust_list::exit_robust_list(task, &mm, robust_list);
    }
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

/// Who adopts a dead process's children (Linux `find_new_reaper`): its
/// pid namespace's init, or, when that init's process itself is the one
/// dying, the init of the parent namespace.
fn find_new_reaper(task: &Arc<Task>) -> Option<Arc<Task>> {
    let mut ns = Some(task.active_pid_ns());
    while let Some(n) = ns {
        let reaper = n.child_reaper().filter(|r| {
            !Arc::ptr_eq(r.thread_group(), task.thread_group()) && r.state() != TaskState::Zombie
        });
        if reaper.is_some() {
            return reaper;
        }
        ns = n.parent.clone();
    }
    None
}

/// When a pid namespace's init exits, every process in the namespace is
/// killed (Linux `zap_pid_ns_processes`): every pid of the namespace's
/// map, which holds those of nested namespaces too.
fn zap_pid_namespace(init: &Arc<Task>) {
    let ns = init.active_pid_ns();
    for task in ns.pids().iter().filter_map(|pid| pid.task()) {
        if !Arc::ptr_eq(task.thread_group(), init.thread_group()) {
            super::signal::sigkill_thread_group(&task);
        }
    }
}

/// Gives the children of a dead process to the reaper (Linux
/// `forget_original_parent` + `reparent_leader`); zombies among them wake
/// it up. `task` is the process's last thread.
fn forget_original_parent(task: &Arc<Task>) {
    let children = task.thread_group().take_children();
    if children.is_empty() {
        return;
    }
    let Some(reaper) = find_new_reaper(task) else {
        // No reaper: nobody can wait for them; release the zombies.
        for child in children {
            if child.state() == TaskState::Zombie {
                release_task(&child);
            }
        }
        return;
    };
    let mut any_zombie = false;
    for child in &children {
        let child_group = child.thread_group();
        child_group.set_parent(&reaper);
        // "We don't want people slaying init": an adopted process tells
        // its new parent of its exit with SIGCHLD, whatever its clone
        // asked for.
        child_group.reset_exit_signal_for_adoption();
        any_zombie |= child.state() == TaskState::Zombie;
    }
    let reaper_group = reaper.thread_group();
    reaper_group.adopt_children(children);
    if any_zombie {
        reaper_group.wait_chldexit().wake_all();
    }
}
