//! The task: one schedulable thread of execution (Linux's `task_struct`).

use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, AtomicU8, Ordering};

use spin::Mutex;

use super::cred::{Cred, UserTaskCount};
use super::files::FdTable;
use super::fs_struct::FsStruct;
use super::io_context::IoContext;
use super::nsproxy::NsProxy;
use super::pgrp::PgrpSession;
use super::pid_ns::{PidNamespace, PidNumbers};
use super::rlimit::Rlimits;
use super::signal::SigHand;
use super::ThreadCount;
use crate::ipc::sem::SemUndoList;
use crate::mm::address_space::AddressSpace;
use crate::mm::kstack::KernelStack;
use crate::sched::wait::{Completion, WaitQueue};

/// Process or thread id.
pub type Pid = u32;

/// Where a task is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum TaskState {
    /// Running or waiting on the run queue (Linux `TASK_RUNNING`).
    Runnable = 0,
    /// Sleeping until woken (`TASK_INTERRUPTIBLE`).
    Sleeping = 1,
    /// Exited, waiting to be reaped by its parent (`EXIT_ZOMBIE`).
    Zombie = 2,
    /// Reaped (`EXIT_DEAD`).
    Dead = 3,
    /// Created but not yet woken (`TASK_NEW`): only `wake_up_new_task`
    /// makes it runnable.
    New = 4,
}

impl TaskState {
    fn from_u8(raw: u8) -> TaskState {
        match raw {
            0 => TaskState::Runnable,
            1 => TaskState::Sleeping,
            2 => TaskState::Zombie,
            4 => TaskState::New,
            _ => TaskState::Dead,
        }
    }

    /// One letter, as `ps` shows it.
    pub fn letter(self) -> char {
        match self {
            TaskState::Runnable => 'R',
            TaskState::Sleeping => 'S',
            TaskState::Zombie => 'Z',
            TaskState::Dead => 'X',
            TaskState::New => 'N',
        }
    }
}

/// The kernel stack a task runs on.
pub enum TaskStack {
    /// The boot stack (the idle task).
    Boot,
    /// A stack of its own.
    Own(KernelStack),
}

/// Mutable state of a task, under its lock.
pub struct TaskInner {
    /// Parent (Linux `real_parent`); the idle task has none.
    pub parent: Weak<Task>,
    /// Children not yet reaped.
    pub children: Vec<Arc<Task>>,
    /// Wait status for the parent (Linux encoding), set at exit.
    pub exit_status: u32,
    /// Command name.
    pub comm: [u8; 16],
    /// The address space; `None` for kernel threads.
    pub mm: Option<Arc<AddressSpace>>,
    /// Signal sent to the parent at exit (`SIGCHLD` for fork; 0 for threads).
    pub exit_signal: u32,
    /// User address zeroed and futex-woken at exit (`CLONE_CHILD_CLEARTID`,
    /// `set_tid_address`).
    pub clear_child_tid: u64,
    /// FS segment base (thread-local storage).
    pub fs_base: u64,
    /// Completed when a vfork child execs or exits (Linux `vfork_done`).
    pub vfork_done: Option<Arc<Completion>>,
    /// Open files (shared with `CLONE_FILES`); `None` for kernel threads.
    pub files: Option<Arc<Mutex<FdTable>>>,
    /// Signal actions (shared with `CLONE_SIGHAND`).
    pub sighand: Arc<Mutex<SigHand>>,
    /// Blocked signals.
    pub blocked: u64,
    /// Signals sent to this thread and not taken yet (Linux
    /// `task->pending`), with their siginfo.
    pub pending: super::signal::SigPending,
    /// The mask `rt_sigtimedwait` lifted for its wait (Linux
    /// `real_blocked`): its signals are neither ignored nor fatal.
    pub real_blocked: u64,
    /// The mask `rt_sigsuspend` replaced, restored on the way back to
    /// user mode (by `rt_sigreturn` if a handler runs; Linux
    /// `saved_sigmask` with `TIF_RESTORE_SIGMASK`).
    pub saved_sigmask: Option<u64>,
    /// The alternate signal stack (`sigaltstack`).
    pub sas: super::sigaltstack::SigAltStack,
    /// Signals sent to the process, not to one thread (Linux
    /// `signal->shared_pending`), shared by the thread group.
    pub shared_pending: Arc<Mutex<super::signal::SigPending>>,
    /// Identity (copied at fork, changed by setuid/capset).
    pub cred: Cred,
    /// This task's place in its real user's task count (RLIMIT_NPROC).
    pub user_count: Option<UserTaskCount>,
    /// This task's place in `nr_threads` (max_threads).
    pub thread_count: Option<ThreadCount>,
    /// Resource limits (shared by a thread group, copied at fork).
    pub rlimits: Arc<Mutex<Rlimits>>,
    /// File-system context (umask), shared with `CLONE_FS`.
    pub fs: Arc<Mutex<FsStruct>>,
    /// Namespaces.
    pub nsproxy: Arc<NsProxy>,
    /// System V semaphore undo list (Linux `sysvsem`), shared with
    /// `CLONE_SYSVSEM`; `None` until the first `SEM_UNDO` operation.
    pub sysvsem: Option<Arc<SemUndoList>>,
    /// I/O context (the I/O priority), shared with `CLONE_IO`; `None`
    /// until `ioprio_set` creates it.
    pub io_context: Option<Arc<IoContext>>,
    /// This task's pid numbers (Linux `struct pid`); none for the idle task.
    pub pids: Option<Arc<PidNumbers>>,
    /// Its thread group leader's (the process id).
    pub tgid_pids: Option<Arc<PidNumbers>>,
    /// Process group and session, shared by the thread group; `None` for
    /// kernel threads.
    pub pgrp_session: Option<Arc<Mutex<PgrpSession>>>,
    /// Forked but has not exec'd (Linux `PF_FORKNOEXEC`): `setpgid` from
    /// the parent is allowed only while this holds.
    pub fork_no_exec: bool,
    /// Fault injection: fail the n-th fallible step (0: off).
    pub fail_nth: u32,
    /// Fallible steps the last copy_process went through.
    pub fail_points_seen: u32,
}

/// A task.
pub struct Task {
    pub pid: Pid,
    /// Thread-group id (the pid of the group leader).
    pub tgid: Pid,
    state: AtomicU8,
    /// Saved kernel stack pointer while switched out.
    pub(crate) saved_rsp: AtomicU64,
    pub stack: TaskStack,
    pub inner: Mutex<TaskInner>,
    /// Where the parent sleeps in `wait4` until a child changes state
    /// (Linux's `signal->wait_chldexit`).
    pub child_exit: WaitQueue,
    /// A pending fatal event: `FATAL_PENDING | wait status` to exit with
    /// (a fatal signal, or another thread's `exit_group`); 0 if none.
    fatal: AtomicU64,
    /// Linux `signal->oom_score_adj` (-1000..=1000, 0 by default): moves the
    /// OOM killer's badness; -1000 exempts the task (process/oom.rs).
    pub oom_score_adj: core::sync::atomic::AtomicI16,
}

/// Flag bit of [`Task::fatal`] (a wait status fits in the low 16 bits).
const FATAL_PENDING: u64 = 1 << 63;

impl Task {
    /// A new task in state `Runnable`, not yet on the run queue.
    pub fn new(pid: Pid, tgid: Pid, stack: TaskStack, parent: Weak<Task>, comm: &[u8]) -> Task {
        let mut name = [0u8; 16];
        let n = comm.len().min(15);
        name[..n].copy_from_slice(&comm[..n]);
        Task {
            pid,
            tgid,
            state: AtomicU8::new(TaskState::New as u8),
            saved_rsp: AtomicU64::new(0),
            stack,
            inner: Mutex::new(TaskInner {
                parent,
                children: Vec::new(),
                exit_status: 0,
                comm: name,
                mm: None,
                exit_signal: 0,
                clear_child_tid: 0,
                fs_base: 0,
                vfork_done: None,
                files: None,
                sighand: SigHand::new_shared(),
                blocked: 0,
                pending: Default::default(),
                real_blocked: 0,
                shared_pending: Default::default(),
                saved_sigmask: None,
                sas: Default::default(),
                cred: Cred::root(),
                user_count: None,
                thread_count: None,
                rlimits: Arc::new(Mutex::new(Rlimits::for_init(super::rlimit::max_threads()))),
                fs: FsStruct::new_shared(),
                nsproxy: crate::process::initial_nsproxy(),
                sysvsem: None,
                io_context: None,
                pids: None,
                tgid_pids: None,
                pgrp_session: None,
                fork_no_exec: false,
                fail_nth: 0,
                fail_points_seen: 0,
            }),
            child_exit: WaitQueue::new(),
            fatal: AtomicU64::new(0),
            oom_score_adj: core::sync::atomic::AtomicI16::new(0),
        }
    }

    pub fn state(&self) -> TaskState {
        TaskState::from_u8(self.state.load(Ordering::Acquire))
    }

    pub fn set_state(&self, state: TaskState) {
        self.state.store(state as u8, Ordering::Release);
    }

    /// Top of the kernel stack (where traps from user mode land).
    pub fn kernel_stack_top(&self) -> Option<u64> {
        match &self.stack {
            TaskStack::Boot => None,
            TaskStack::Own(stack) => Some(stack.top()),
        }
    }

    /// The command name.
    pub fn comm(&self) -> [u8; 16] {
        self.inner.lock().comm
    }

    /// Sets the command name (at exec).
    pub fn set_comm(&self, name: &[u8]) {
        let mut comm = [0u8; 16];
        let n = name.len().min(15);
        comm[..n].copy_from_slice(&name[..n]);
        self.inner.lock().comm = comm;
    }

    /// Makes the task exit with wait status `status` at its next return to
    /// user mode (or now, if it sleeps); the first such request wins.
    pub fn set_fatal(self: &Arc<Self>, status: u32) {
        if self
            .fatal
            .compare_exchange(
                0,
                FATAL_PENDING | u64::from(status),
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
        {
            crate::sched::wake_up(self);
        }
    }

    /// The wait status of a pending fatal event.
    pub fn fatal_status(&self) -> Option<u32> {
        let fatal = self.fatal.load(Ordering::Acquire);
        (fatal & FATAL_PENDING != 0).then_some(fatal as u32)
    }

    /// The task's open files.
    pub fn files(&self) -> Option<Arc<Mutex<FdTable>>> {
        self.inner.lock().files.clone()
    }

    /// The task's address space, if it has one.
    pub fn mm(&self) -> Option<Arc<AddressSpace>> {
        self.inner.lock().mm.clone()
    }

    /// The pid namespace the task lives in (Linux `task_active_pid_ns`).
    pub fn active_pid_ns(&self) -> Arc<PidNamespace> {
        self.inner
            .lock()
            .pids
            .as_ref()
            .map_or_else(super::pid_ns::initial, |p| p.ns().clone())
    }

    /// Its thread id as seen from `ns` (0 if not visible there).
    pub fn tid_in(&self, ns: &PidNamespace) -> u32 {
        self.inner
            .lock()
            .pids
            .as_ref()
            .and_then(|p| p.nr_in(ns))
            .unwrap_or(0)
    }

    /// Its process id as seen from `ns` (0 if not visible there).
    pub fn tgid_in(&self, ns: &PidNamespace) -> u32 {
        self.inner
            .lock()
            .tgid_pids
            .as_ref()
            .and_then(|p| p.nr_in(ns))
            .unwrap_or(0)
    }

    /// Whether the task is pid 1 of its own pid namespace (its reaper).
    pub fn is_namespace_init(&self) -> bool {
        self.inner
            .lock()
            .tgid_pids
            .as_ref()
            .is_some_and(|p| p.innermost() == 1)
    }

    /// Whether this task leads its thread group.
    pub fn is_group_leader(&self) -> bool {
        self.pid == self.tgid
    }
}
