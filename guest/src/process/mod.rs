//! Processes and threads: the task table, pids, kernel threads.

#[cfg(not(test))]
pub mod cred;
pub mod elf;
#[cfg(not(test))]
pub mod exec;
#[cfg(not(test))]
pub mod exit;
#[cfg(not(test))]
pub mod files;
#[cfg(not(test))]
pub mod fork;
#[cfg(not(test))]
pub mod fs_struct;
#[cfg(not(test))]
pub mod nsproxy;
pub mod rlimit;
#[cfg(not(test))]
pub mod signal;
#[cfg(not(test))]
pub mod task;
pub mod user_stack;
#[cfg(not(test))]
pub mod wait;

#[cfg(not(test))]
pub use self::kernel::*;

#[cfg(not(test))]
mod kernel {

    use alloc::collections::BTreeMap;
    use alloc::sync::Arc;
    use alloc::vec::Vec;
    use core::sync::atomic::{AtomicU32, Ordering};

    use spin::Mutex;

    use super::nsproxy;
    use super::task::{Pid, Task};
    use crate::errno::EAGAIN;

    /// Every task that has not been reaped, by pid.
    static TASKS: Mutex<BTreeMap<Pid, Arc<Task>>> = Mutex::new(BTreeMap::new());
    static NEXT_PID: AtomicU32 = AtomicU32::new(1);
    /// Largest pid (Linux's default `pid_max`).
    pub const PID_MAX: Pid = 32768;

    /// Hands out the next free pid, wrapping like Linux (to 300 after `PID_MAX`).
    fn alloc_pid() -> Result<Pid, i32> {
        let tasks = TASKS.lock();
        for _ in 0..PID_MAX {
            let pid = NEXT_PID.fetch_add(1, Ordering::Relaxed);
            if pid >= PID_MAX {
                NEXT_PID.store(300, Ordering::Relaxed);
                continue;
            }
            if !tasks.contains_key(&pid) {
                return Ok(pid);
            }
        }
        Err(EAGAIN)
    }

    /// Switches the address space and thread-local base from `prev`'s to
    /// `next`'s. Kernel threads keep whatever address space is loaded (its
    /// kernel half is the same everywhere).
    pub fn switch_mm(_prev: &Task, next: &Task) {
        let (mm, fs_base) = {
            let inner = next.inner.lock();
            (inner.mm.clone(), inner.fs_base)
        };
        if let Some(mm) = mm {
            if !mm.is_active() {
                crate::mm::address_space::activate(Some(&mm));
            }
            crate::arch::cpu::set_fs_base(fs_base);
        }
    }

    /// Adds a task to the task table.
    pub fn register(task: &Arc<Task>) {
        TASKS.lock().insert(task.pid, task.clone());
    }

    /// Removes a reaped task from the task table.
    pub fn unregister(pid: Pid) {
        TASKS.lock().remove(&pid);
    }

    /// The task with this pid.
    pub fn find(pid: Pid) -> Option<Arc<Task>> {
        TASKS.lock().get(&pid).cloned()
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

    /// Takes exactly `pid` for a new task (clone3 set_tid): EEXIST if in use.
    pub fn claim_pid(pid: Pid) -> Result<Pid, i32> {
        if TASKS.lock().contains_key(&pid) {
            return Err(crate::errno::EEXIST);
        }
        Ok(pid)
    }

    /// Allocates a pid for a new task.
    pub fn new_pid() -> Result<Pid, i32> {
        alloc_pid()
    }

    /// A snapshot of every task, by pid.
    pub fn all_tasks() -> Vec<Arc<Task>> {
        TASKS.lock().values().cloned().collect()
    }
}
