//! The task: one schedulable thread of execution (Linux's `task_struct`).
//! What the threads of a process share is its [`ThreadGroup`]; a task
//! keeps its per-thread state (registers, signal mask, its own pending
//! signals, credentials, the resources `clone` may or may not share).

use alloc::sync::{Arc, Weak};
use core::sync::atomic::{AtomicU64, AtomicU8, Ordering};

use spin::Mutex;

use super::cred::{Cred, UserTaskCount};
use super::files::FdTable;
use super::fs_struct::FsStruct;
use super::io_context::IoContext;
use super::nsproxy::NsProxy;
use super::pid_ns::{PidNamespace, PidNumbers};
use super::signal::SigHand;
use super::thread_group::ThreadGroup;
use super::ThreadCount;
use crate::ipc::sem::SemUndoList;
use crate::mm::address_space::{AddressSpace, TaskMm};
use crate::mm::kstack::KernelStack;
use crate::sched::attr::{SchedAttr, SchedEntity};
use crate::sched::wait::Completion;

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

/// Mutable per-thread state of a task, under its lock (`Task::inner`).
pub struct TaskInner {
    /// Wait status for the parent (Linux encoding), set at exit.
    pub(super) exit_status: u32,
    /// Command name.
    pub(super) comm: [u8; 16],
    /// The address space; `None` for kernel threads.
    pub(super) mm: Option<TaskMm>,
    /// User address zeroed and futex-woken at exit (`CLONE_CHILD_CLEARTID`,
    /// `set_tid_address`).
    pub(super) clear_child_tid: u64,
    /// User address of the thread's robust futex list head
    /// (`set_robust_list`; 0: none), walked at exit and exec.
    pub(super) robust_list: u64,
    /// FS segment base (thread-local storage).
    pub(super) fs_base: u64,
    /// GS segment base (`arch_prctl(ARCH_SET_GS)`; user mode's own).
    pub(super) gs_base: u64,
    /// Completed when a vfork child execs or exits (Linux `vfork_done`).
    pub(super) vfork_done: Option<Arc<Completion>>,
    /// Open files (shared with `CLONE_FILES`); `None` for kernel threads.
    pub(super) files: Option<Arc<Mutex<FdTable>>>,
    /// Signal actions (shared with `CLONE_SIGHAND`).
    pub(super) sighand: Arc<Mutex<SigHand>>,
    /// Blocked signals.
    pub(super) blocked: u64,
    /// Signals sent to this thread and not taken yet (Linux
    /// `task->pending`), with their siginfo. The process's are in its
    /// [`ThreadGroup`].
    pub(super) pending: super::signal::SigPending,
    /// The mask `rt_sigtimedwait` lifted for its wait (Linux
    /// `real_blocked`): its signals are neither ignored nor fatal.
    pub(super) real_blocked: u64,
    /// The mask `rt_sigsuspend` replaced, restored on the way back to
    /// user mode (by `rt_sigreturn` if a handler runs; Linux
    /// `saved_sigmask` with `TIF_RESTORE_SIGMASK`).
    pub(super) saved_sigmask: Option<u64>,
    /// The alternate signal stack (`sigaltstack`).
    pub(super) sas: super::sigaltstack::SigAltStack,
    /// Identity (copied at fork, changed by setuid/capset).
    pub(super) cred: Cred,
    /// This task's place in its real user's task count (RLIMIT_NPROC).
    pub(super) user_count: Option<UserTaskCount>,
    /// This task's place in `nr_threads` (max_threads), held for its
    /// drop, which uncounts it.
    pub(super) _thread_count: Option<ThreadCount>,
    /// File-system context (umask), shared with `CLONE_FS`.
    pub(super) fs: Arc<Mutex<FsStruct>>,
    /// Namespaces.
    pub(super) nsproxy: Arc<NsProxy>,
    /// System V semaphore undo list (Linux `sysvsem`), shared with
    /// `CLONE_SYSVSEM`; `None` until the first `SEM_UNDO` operation.
    pub(super) sysvsem: Option<Arc<SemUndoList>>,
    /// I/O context (the I/O priority), shared with `CLONE_IO`; `None`
    /// until `ioprio_set` creates it.
    pub(super) io_context: Option<Arc<IoContext>>,
    /// Forked but has not exec'd (Linux `PF_FORKNOEXEC`): `setpgid` from
    /// the parent is allowed only while this holds.
    pub(super) fork_no_exec: bool,
}

/// A task.
pub struct Task {
    /// Thread id in the initial pid namespace.
    pub pid: Pid,
    /// Thread-group id (the pid of the group leader).
    pub tgid: Pid,
    /// This task's pid numbers (Linux `struct pid`); none for the idle task.
    pids: Option<Arc<PidNumbers>>,
    /// The process it is a thread of.
    group: Arc<ThreadGroup>,
    state: AtomicU8,
    /// Saved kernel stack pointer while switched out.
    pub(crate) saved_rsp: AtomicU64,
    pub stack: TaskStack,
    /// Per-thread state; only `process` reaches in, everyone else goes
    /// through the accessors below, each of which holds the lock only
    /// for its own read or write.
    pub(super) inner: Mutex<TaskInner>,
    /// A pending fatal event: `FATAL_PENDING | wait status` to exit with
    /// (a fatal signal, or another thread's `exit_group`); 0 if none.
    fatal: AtomicU64,
    /// Fault injection for the copy_process calls this thread makes.
    fail_nth: super::fork::FailNth,
    /// Scheduling policy and priorities (`sched_fork` builds them).
    sched: SchedEntity,
    /// CPU time and context switches (`sched::cputime`).
    cputime: crate::sched::cputime::TaskCputime,
}

/// Flag bit of [`Task::fatal`] (a wait status fits in the low 16 bits).
const FATAL_PENDING: u64 = 1 << 63;

/// Everything a task is made of, built by `copy_process` (or for init by
/// `spawn_user_process`, for the idle task by [`Task::idle`]).
pub struct TaskParts {
    pub pids: Option<Arc<PidNumbers>>,
    pub group: Arc<ThreadGroup>,
    pub stack: TaskStack,
    /// Where `switch` resumes it: the prepared return to user mode.
    pub saved_rsp: u64,
    pub inner: TaskInner,
    /// Scheduling attributes (`sched::sched_fork`).
    pub sched: SchedAttr,
}

/// A command name, cut to 15 bytes and NUL-padded.
pub fn comm_from(name: &[u8]) -> [u8; 16] {
    let mut comm = [0u8; 16];
    let n = name.len().min(15);
    comm[..n].copy_from_slice(&name[..n]);
    comm
}

impl Task {
    /// A task from its parts, in state `New`, not yet on the run queue nor
    /// on its group's thread list.
    pub fn from_parts(parts: TaskParts) -> Task {
        let pid = parts.pids.as_ref().map_or(0, |p| p.global());
        Task {
            pid,
            tgid: parts.group.tgid(),
            pids: parts.pids,
            group: parts.group,
            state: AtomicU8::new(TaskState::New as u8),
            saved_rsp: AtomicU64::new(parts.saved_rsp),
            stack: parts.stack,
            inner: Mutex::new(parts.inner),
            fatal: AtomicU64::new(0),
            fail_nth: Default::default(),
            sched: SchedEntity::new(parts.sched),
            cputime: Default::default(),
        }
    }

    /// The idle task (pid 0): the boot context, in the kernel's own group.
    pub fn idle() -> Task {
        let group = ThreadGroup::new(super::thread_group::NewGroup {
            parent: Weak::new(),
            rlimits: super::rlimit::Rlimits::for_init(super::rlimit::max_threads()),
            ids: None,
            exit_signal: 0,
            oom_score_adj: 0,
        });
        Task::from_parts(TaskParts {
            pids: None,
            group,
            stack: TaskStack::Boot,
            saved_rsp: 0,
            sched: SchedAttr::normal(),
            inner: TaskInner {
                exit_status: 0,
                comm: comm_from(b"swapper"),
                mm: None,
                clear_child_tid: 0,
                robust_list: 0,
                fs_base: 0,
                gs_base: 0,
                vfork_done: None,
                files: None,
                sighand: SigHand::new_shared(),
                blocked: 0,
                pending: Default::default(),
                real_blocked: 0,
                saved_sigmask: None,
                sas: Default::default(),
                cred: Cred::root(),
                user_count: None,
                _thread_count: None,
                fs: FsStruct::new_shared(),
                nsproxy: crate::process::initial_nsproxy(),
                sysvsem: None,
                io_context: None,
                fork_no_exec: false,
            },
        })
    }

    /// The process this task is a thread of.
    pub fn thread_group(&self) -> &Arc<ThreadGroup> {
        &self.group
    }

    /// Fault injection for this thread's clones (`DIAG_FAIL_NTH`).
    pub fn fail_nth(&self) -> &super::fork::FailNth {
        &self.fail_nth
    }

    /// Its scheduling policy and priorities.
    pub fn sched(&self) -> &SchedEntity {
        &self.sched
    }

    /// CPU time and context switches.
    pub fn cputime(&self) -> &crate::sched::cputime::TaskCputime {
        &self.cputime
    }

    /// This thread's pid numbers (none for the idle task).
    pub fn pids(&self) -> Option<&Arc<PidNumbers>> {
        self.pids.as_ref()
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
        self.inner.lock().comm = comm_from(name);
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
        self.inner.lock().mm.as_deref().cloned()
    }

    /// The pid namespace the task lives in (Linux `task_active_pid_ns`).
    pub fn active_pid_ns(&self) -> Arc<PidNamespace> {
        self.pids
            .as_ref()
            .map_or_else(super::pid_ns::initial, |p| p.ns().clone())
    }

    /// Its thread id as seen from `ns` (0 if not visible there).
    pub fn tid_in(&self, ns: &PidNamespace) -> u32 {
        self.pids.as_ref().and_then(|p| p.nr_in(ns)).unwrap_or(0)
    }

    /// Its process id as seen from `ns` (0 if not visible there).
    pub fn tgid_in(&self, ns: &PidNamespace) -> u32 {
        self.group.pids().and_then(|p| p.nr_in(ns)).unwrap_or(0)
    }

    /// Whether the task is pid 1 of its own pid namespace (its reaper).
    pub fn is_namespace_init(&self) -> bool {
        self.group.pids().is_some_and(|p| p.innermost() == 1)
    }

    /// Whether this task leads its thread group.
    pub fn is_group_leader(&self) -> bool {
        self.pid == self.tgid
    }

    /// The parent process's thread (Linux `real_parent`): the creator of
    /// its process, or the reaper that adopted it.
    pub fn parent(&self) -> Option<Arc<Task>> {
        self.group.parent()
    }
}

/// Per-thread state for the rest of the kernel. Each accessor holds the
/// task's lock only for its own read or write and never across a call
/// into another subsystem; shared objects come back as `Arc`s to lock on
/// their own.
impl Task {
    /// A copy of the task's credentials (Linux `get_task_cred`). A task
    /// changes only its own: it edits a copy and hands it to
    /// [`Task::commit_creds`] (Linux `prepare_creds`/`commit_creds`).
    pub fn cred(&self) -> Cred {
        self.inner.lock().cred.clone()
    }

    /// Whether the task holds `cap` in its own user namespace (Linux
    /// `has_capability`; for the caller, `capable`).
    pub fn capable(&self, cap: u32) -> bool {
        self.inner.lock().cred.capable(cap)
    }

    /// Its real user id (a kernel id).
    pub fn real_uid(&self) -> super::cred::Uid {
        self.inner.lock().cred.uid
    }

    /// Installs `new` as the task's credentials (Linux `commit_creds`):
    /// a change of effective ids or lost capabilities makes the process
    /// undumpable, and a new real user takes over the RLIMIT_NPROC count.
    pub fn commit_creds(&self, new: Cred) {
        let (user_changed, ids_changed, mm) = {
            let inner = self.inner.lock();
            let old = &inner.cred;
            (
                new.uid != old.uid || !Arc::ptr_eq(&new.user_ns, &old.user_ns),
                new.euid != old.euid
                    || new.egid != old.egid
                    || new.fsuid != old.fsuid
                    || new.fsgid != old.fsgid
                    || !new.caps_subset_of(old),
                inner.mm.as_deref().cloned(),
            )
        };
        if ids_changed {
            if let Some(mm) = mm {
                mm.dumpable.store(false, Ordering::Relaxed);
            }
        }
        let count = user_changed.then(|| UserTaskCount::charge(&new.user_ns, new.uid));
        let old_count = {
            let mut inner = self.inner.lock();
            inner.cred = new;
            match count {
                Some(count) => inner.user_count.replace(count),
                None => None,
            }
        };
        // The old user's count drops here, outside the task's lock.
        drop(old_count);
    }

    /// Whether the process may be inspected by others and dumps core
    /// (Linux `get_dumpable`): cleared when its identity changes.
    pub fn is_dumpable(&self) -> bool {
        self.mm()
            .is_some_and(|mm| mm.dumpable.load(Ordering::Relaxed))
    }

    /// Its namespaces.
    pub fn nsproxy(&self) -> Arc<NsProxy> {
        self.inner.lock().nsproxy.clone()
    }

    /// Its file-system context (umask), shared with `CLONE_FS`.
    pub fn fs_struct(&self) -> Arc<Mutex<FsStruct>> {
        self.inner.lock().fs.clone()
    }

    /// Its signal actions, shared with `CLONE_SIGHAND`.
    pub fn sighand(&self) -> Arc<Mutex<SigHand>> {
        self.inner.lock().sighand.clone()
    }

    /// Sets the address cleared and futex-woken at exit
    /// (`set_tid_address`).
    pub fn set_clear_child_tid(&self, address: u64) {
        self.inner.lock().clear_child_tid = address;
    }

    /// The user address of its robust futex list head (0: none).
    pub fn robust_list(&self) -> u64 {
        self.inner.lock().robust_list
    }

    /// Records its robust futex list head (`set_robust_list`).
    pub fn set_robust_list(&self, head: u64) {
        self.inner.lock().robust_list = head;
    }

    /// Its FS segment base as last saved (thread-local storage).
    pub fn fs_base(&self) -> u64 {
        self.inner.lock().fs_base
    }

    /// Sets the FS base restored when it next runs.
    pub fn set_fs_base(&self, base: u64) {
        self.inner.lock().fs_base = base;
    }

    /// Its GS segment base as last saved.
    pub fn gs_base(&self) -> u64 {
        self.inner.lock().gs_base
    }

    /// Sets the GS base restored when it next runs.
    pub fn set_gs_base(&self, base: u64) {
        self.inner.lock().gs_base = base;
    }

    /// Whether it has forked and not exec'd since (Linux `PF_FORKNOEXEC`).
    pub fn forked_without_exec(&self) -> bool {
        self.inner.lock().fork_no_exec
    }

    /// Its System V semaphore undo list, created on first use (Linux
    /// `find_alloc_undo`'s allocation half).
    pub fn sysvsem_or_create(&self) -> Arc<SemUndoList> {
        self.inner
            .lock()
            .sysvsem
            .get_or_insert_with(SemUndoList::new)
            .clone()
    }

    /// Its I/O context, if `ioprio_set` or `CLONE_IO` gave it one.
    pub fn io_context(&self) -> Option<Arc<IoContext>> {
        self.inner.lock().io_context.clone()
    }

    /// Gives the task the I/O context `ioc` unless it has one already;
    /// returns the one it has afterwards.
    pub fn io_context_or_insert(&self, ioc: Arc<IoContext>) -> Arc<IoContext> {
        self.inner.lock().io_context.get_or_insert(ioc).clone()
    }
}

impl Task {
    /// Runs `f` on the task's address space if its lock is free (`None`
    /// if not): for interrupt handlers, which must not spin on a lock the
    /// interrupted code may hold.
    pub fn try_with_mm<R>(&self, f: impl FnOnce(Option<&AddressSpace>) -> R) -> Option<R> {
        self.inner
            .try_lock()
            .map(|inner| f(inner.mm.as_deref().map(Arc::as_ref)))
    }
}
