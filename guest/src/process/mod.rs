//! Processes and threads: the task table, pids, kernel threads.

pub mod cred;
pub mod exec;
pub mod exit;
pub mod files;
pub mod fork;
pub mod fs_struct;
pub mod nsproxy;
pub mod oom;
pub mod pgrp;
pub mod pid_ns;
pub mod signal;
pub mod sigqueue;
pub mod task;
pub mod thread_group;
pub mod unshare;
pub mod user_ns;
pub mod wait;

pub use forkvm_core::process::{elf, io_context, rlimit, sigaltstack, user_stack};

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;

use self::task::{Pid, Task};

/// Switches the address space and thread-local base from `prev`'s to
/// `next`'s. Kernel threads keep whatever address space is loaded (its
/// kernel half is the same everywhere).
pub fn switch_mm(prev: &Task, next: &Task) {
    {
        // User code may have moved its own FS base (FSGSBASE): keep
        // it for the next switch-in (Linux `save_fsgs`).
        let mut inner = prev.inner.lock();
        if inner.mm.is_some() {
            inner.fs_base = crate::arch::cpu::live_fs_base(inner.fs_base);
            inner.gs_base = crate::arch::cpu::live_gs_base(inner.gs_base);
        }
    }
    let (mm, fs_base, gs_base) = {
        let inner = next.inner.lock();
        (inner.mm.as_deref().cloned(), inner.fs_base, inner.gs_base)
    };
    if let Some(mm) = mm {
        if !mm.is_active() {
            crate::mm::address_space::activate(Some(&mm));
        }
        crate::arch::cpu::set_fs_base(fs_base);
        crate::arch::cpu::set_gs_base(gs_base);
    }
}

/// The task whose pid in the initial namespace is `pid`, until it is
/// reaped (a lookup in that namespace's pid map).
pub fn find(pid: Pid) -> Option<Arc<Task>> {
    self::pid_ns::initial().find_task(pid)
}

/// The initial namespaces, shared by init and everything that does not
/// ask for new ones.
pub fn initial_nsproxy() -> Arc<nsproxy::NsProxy> {
    static INITIAL: spin::Once<Arc<nsproxy::NsProxy>> = spin::Once::new();
    INITIAL.call_once(nsproxy::NsProxy::initial).clone()
}

/// Tasks that exist, the idle task aside (Linux `nr_threads`).
static NR_THREADS: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// One task counted in `nr_threads`; dropping it uncounts.
#[derive(Debug)]
pub struct ThreadCount(());

impl ThreadCount {
    pub fn charge() -> ThreadCount {
        NR_THREADS.fetch_add(1, Ordering::Relaxed);
        ThreadCount(())
    }
}

impl Drop for ThreadCount {
    fn drop(&mut self) {
        NR_THREADS.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Current `nr_threads`.
pub fn nr_threads() -> u64 {
    NR_THREADS.load(Ordering::Relaxed)
}

/// A snapshot of every task not yet reaped, by pid (every task has a
/// pid in the initial namespace). For listings (`ps`, `stat`); the
/// signal, exit, wait, exec and process-group paths use the pid maps
/// and the thread groups' lists instead.
pub fn all_tasks() -> Vec<Arc<Task>> {
    self::pid_ns::initial()
        .pids()
        .iter()
        .filter_map(|pid| pid.task())
        .filter(|task| task.state() != self::task::TaskState::Dead)
        .collect()
}
