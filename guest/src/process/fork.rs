//! Creating tasks: `kernel_clone` and `copy_process` (Linux
//! `kernel/fork.c`) for fork, vfork, clone and clone3: Linux's flag checks
//! in its order, the RLIMIT_NPROC and max_threads limits, then one function
//! per step (`dup_task_struct`, `copy_creds` with user namespaces,
//! `copy_semundo`, `copy_files`, `copy_fs`, `copy_sighand`, `copy_signal`,
//! `copy_mm`, `copy_namespaces`, `copy_io`, `copy_thread`, `alloc_pid` at
//! every pid-namespace level), each returning an owned part of the child,
//! which is built once from them (`new_task`) and made known last
//! (`attach_new_task`, also the end of `exec::spawn_user_process`).
//!
//! Every resource the child acquires is an owned value (kernel stack, pid
//! slot, address space); if a later step fails they are dropped in reverse
//! order, which releases them, so no failure path leaks. The fallible steps
//! are named fail points ([`ForkStep`]) for fault injection.

use alloc::sync::{Arc, Weak};
use core::sync::atomic::{AtomicU32, Ordering};

use spin::Mutex;

use super::cred::{Cred, UserTaskCount, CAP_SYS_ADMIN, CAP_SYS_RESOURCE};
use super::files::FdTable;
use super::fs_struct::FsStruct;
use super::io_context::{self, IoContext};
use super::nsproxy::NsProxy;
use super::pid_ns::PidNumbers;
use super::rlimit::{self, RLIMIT_NPROC};
use super::sigaltstack::SigAltStack;
use super::signal::SigHand;
use super::task::{Pid, Task, TaskInner, TaskParts, TaskStack};
use super::thread_group::{NewGroup, ThreadGroup};
use super::ThreadCount;
use crate::arch::entry::{TrapFrame, UserContext};
use crate::arch::switch;
use crate::errno::{EAGAIN, EBADF, EINVAL, ENOMEM, EPERM, ERESTARTNOINTR};
use crate::ipc::sem::SemUndoList;
use crate::mm::address_space::{AddressSpace, TaskMm};
use crate::mm::kstack::KernelStack;
use crate::sched::{self, wait::Completion};
use forkvm_abi::linux::signal::NSIG;
use forkvm_abi::sys::ForkStep;

pub use forkvm_abi::linux::clone::{
    CloneFlags, CLONE_ARGS_SIZE_VER0, CLONE_ARGS_SIZE_VER2, CSIGNAL,
};

/// Arguments of a clone (Linux `struct kernel_clone_args`).
#[derive(Clone, Debug, Default)]
pub struct CloneArgs {
    pub flags: CloneFlags,
    /// Where CLONE_PIDFD stores the pidfd.
    pub pidfd: u64,
    /// clone3 `set_tid`: the pids asked for, innermost namespace first
    /// (empty: any).
    pub set_tid: alloc::vec::Vec<u32>,
    pub exit_signal: u64,
    pub stack: u64,
    pub parent_tid: u64,
    pub child_tid: u64,
    pub tls: u64,
}

/// Creates a task as a copy of the current one and starts it; returns its
/// pid (Linux `kernel_clone`). `frame` is the caller's user context.
pub fn kernel_clone(args: &CloneArgs, frame: &UserContext) -> Result<Pid, i32> {
    let flags = args.flags;
    // Legacy clone returns the pidfd through parent_tid: both cannot use it.
    if flags.contains(CloneFlags::CLONE_PIDFD)
        && flags.contains(CloneFlags::CLONE_PARENT_SETTID)
        && args.pidfd == args.parent_tid
    {
        return Err(EINVAL);
    }
    let parent = sched::current();
    let vfork = flags
        .contains(CloneFlags::CLONE_VFORK)
        .then(|| Arc::new(Completion::new()));
    let child = copy_process(&parent, args, frame, vfork.clone())?;
    // The pid the caller sees: its number in the caller's pid namespace
    // (Linux `pid_vnr`), not the kernel's global one.
    let pid = child.tid_in(&parent.active_pid_ns());
    crate::stats::TASKS_CREATED.add(1);
    if let Some(mm) = parent.mm() {
        if flags.contains(CloneFlags::CLONE_PARENT_SETTID) {
            // Linux writes it before the child can run; a bad pointer is ignored.
            let _ = mm.copy_to_user(args.parent_tid, &pid.to_le_bytes());
        }
    }
    sched::wake_up_new_task(child);
    if let Some(done) = vfork {
        // The parent sleeps until the child execs or exits (shares its
        // memory); a fatal signal ends the wait (Linux: killable).
        let _ = done.wait();
    }
    Ok(pid)
}

/// The clone flag checks of Linux's `copy_process`, in its order.
fn check_clone_flags(parent: &Task, flags: CloneFlags) -> Result<(), i32> {
    if flags.contains(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_FS) {
        return Err(EINVAL);
    }
    if flags.contains(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_FS) {
        return Err(EINVAL);
    }
    // Thread groups share signals; signal handlers need a shared VM.
    if flags.contains(CloneFlags::CLONE_THREAD) && !flags.contains(CloneFlags::CLONE_SIGHAND) {
        return Err(EINVAL);
    }
    if flags.contains(CloneFlags::CLONE_SIGHAND) && !flags.contains(CloneFlags::CLONE_VM) {
        return Err(EINVAL);
    }
    // Siblings of init (which is SIGNAL_UNKILLABLE) would be unreapable.
    if flags.contains(CloneFlags::CLONE_PARENT) && parent.thread_group().is_unkillable() {
        return Err(EINVAL);
    }
    // A thread cannot live in another user or pid namespace than its group.
    if flags.contains(CloneFlags::CLONE_THREAD)
        && flags.intersects(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWPID)
    {
        return Err(EINVAL);
    }
    if flags.contains(CloneFlags::CLONE_PIDFD) && flags.contains(CloneFlags::CLONE_DETACHED) {
        return Err(EINVAL);
    }
    Ok(())
}

/// The errno an injected failure returns: what each step fails with when
/// memory runs out.
const INJECTED_ERRNO: i32 = ENOMEM;

/// A task's fault-injection setting (Linux `task->fail_nth`,
/// `/proc/self/fail-nth`) and what its last copy_process reported. Atomics:
/// read and written by the task itself, with no lock on the fork path.
#[derive(Default)]
pub struct FailNth {
    /// Fail the n-th fallible step of the next copy_process (0: off).
    armed: AtomicU32,
    /// The last copy_process's steps and failed step
    /// (`forkvm_abi::sys::FAIL_NTH_STEP_SHIFT`).
    report: AtomicU32,
}

impl FailNth {
    /// Arms the `nth` fallible step of the next copy_process (0 disarms) and
    /// returns the previous one's report.
    pub fn arm(&self, nth: u32) -> u32 {
        self.armed.store(nth, Ordering::Relaxed);
        self.report.load(Ordering::Relaxed)
    }
}

/// Fault injection for one copy_process: counts its fallible steps and
/// fails the one the task armed; the count and the failed step are the
/// task's [`FailNth`] report when it ends.
struct FailPoints<'a> {
    setting: &'a FailNth,
    seen: u32,
    nth: u32,
    failed: Option<ForkStep>,
}

impl<'a> FailPoints<'a> {
    fn new(task: &'a Task) -> Self {
        let setting = task.fail_nth();
        // The setting is one-shot, as /proc/self/fail-nth is.
        let nth = setting.armed.swap(0, Ordering::Relaxed);
        FailPoints {
            setting,
            seen: 0,
            nth,
            failed: None,
        }
    }

    /// Step `step` is about to allocate: its errno if it is the one to fail.
    fn check(&mut self, step: ForkStep) -> Result<(), i32> {
        self.seen += 1;
        if self.seen == self.nth {
            self.failed = Some(step);
            Err(INJECTED_ERRNO)
        } else {
            Ok(())
        }
    }
}

impl Drop for FailPoints<'_> {
    fn drop(&mut self) {
        let failed = self.failed.map_or(0, ForkStep::number);
        let report = self.seen | failed << forkvm_abi::sys::FAIL_NTH_STEP_SHIFT;
        self.setting.report.store(report, Ordering::Relaxed);
    }
}

/// Each namespace kind built so far, with its clone flag.
pub(super) const NAMESPACE_FLAGS: [(super::nsproxy::NsKind, CloneFlags); 6] = {
    use super::nsproxy::NsKind;
    [
        (NsKind::Uts, CloneFlags::CLONE_NEWUTS),
        (NsKind::Ipc, CloneFlags::CLONE_NEWIPC),
        (NsKind::Mnt, CloneFlags::CLONE_NEWNS),
        (NsKind::Net, CloneFlags::CLONE_NEWNET),
        (NsKind::Cgroup, CloneFlags::CLONE_NEWCGROUP),
        (NsKind::Time, CloneFlags::CLONE_NEWTIME),
    ]
};

/// The two limits on task creation (Linux: right after copy_creds).
/// RLIMIT_NPROC counts the new task for its real user at every user
/// namespace level; the initial namespace's root and CAP_SYS_RESOURCE or
/// CAP_SYS_ADMIN over the machine are exempt. max_threads applies to
/// everyone.
fn check_task_limits(cred: &Cred, nproc_limit: u64) -> Result<(), i32> {
    if super::user_ns::nproc_over_limit(&cred.user_ns, cred.uid, nproc_limit)
        && cred.uid != 0
        && !cred.capable(CAP_SYS_RESOURCE)
        && !cred.capable(CAP_SYS_ADMIN)
    {
        return Err(EAGAIN);
    }
    if super::nr_threads() >= rlimit::max_threads() {
        return Err(EAGAIN);
    }
    Ok(())
}

/// What the steps read of the parent (the caller), taken under one lock.
struct ParentView {
    files: Option<Arc<Mutex<FdTable>>>,
    fs: Arc<Mutex<FsStruct>>,
    sighand: Arc<Mutex<SigHand>>,
    blocked: u64,
    sas: SigAltStack,
    fs_base: u64,
    gs_base: u64,
    mm: Option<Arc<AddressSpace>>,
    nsproxy: Arc<NsProxy>,
    io_context: Option<Arc<IoContext>>,
    comm: [u8; 16],
}

impl ParentView {
    fn of(parent: &Task) -> ParentView {
        let inner = parent.inner.lock();
        ParentView {
            files: inner.files.clone(),
            fs: inner.fs.clone(),
            sighand: inner.sighand.clone(),
            blocked: inner.blocked,
            sas: inner.sas,
            fs_base: inner.fs_base,
            gs_base: inner.gs_base,
            mm: inner.mm.as_deref().cloned(),
            nsproxy: inner.nsproxy.clone(),
            io_context: inner.io_context.clone(),
            comm: inner.comm,
        }
    }
}

/// Builds the child task (Linux `copy_process`), not yet runnable: the
/// flag checks, the limits, then one function per step in Linux's order,
/// each returning what it made for the child; the child is built from
/// those parts at the end ([`new_task`], [`attach_new_task`]). Every part
/// is an owned value, so an error at any step drops what was made so far,
/// in reverse order, and nothing leaks.
fn copy_process(
    parent: &Arc<Task>,
    args: &CloneArgs,
    regs: &UserContext,
    vfork: Option<Arc<Completion>>,
) -> Result<Arc<Task>, i32> {
    let frame = &regs.frame;
    let flags = args.flags;
    check_clone_flags(parent, flags)?;
    // A pending fatal signal: let it act first; the fork is restarted.
    if parent.fatal_status().is_some() {
        return Err(ERESTARTNOINTR);
    }
    // The limits are checked before anything is allocated so that their
    // failures cost no more than a system call. (Linux checks them right
    // after dup_task_struct and copy_creds; the errno and what stays
    // behind, nothing, are the same.) A child in a new user namespace is
    // counted there, so its check waits for copy_creds.
    let parent_cred = parent.inner.lock().cred.clone();
    let nproc_limit = parent.thread_group().rlimits().0[RLIMIT_NPROC].cur;
    if !flags.contains(CloneFlags::CLONE_NEWUSER) {
        check_task_limits(&parent_cred, nproc_limit)?;
    }

    let view = ParentView::of(parent);
    let mut fail = FailPoints::new(parent);
    let mut stack = dup_task_struct(&mut fail)?;
    let creds = copy_creds(parent_cred, &view, flags, nproc_limit, &mut fail)?;
    let sysvsem = copy_semundo(parent, flags, &mut fail)?;
    let files = copy_files(&view, flags, &mut fail)?;
    let fs = copy_fs(&view, flags, &mut fail)?;
    let signals = copy_sighand(&view, flags, &mut fail)?;
    let signal = copy_signal(parent, args, &mut fail)?;
    let mm = copy_mm(&view, flags, frame, &mut fail)?;
    let nsproxy = copy_namespaces(&view, &creds.cred, flags, &mut fail)?;
    let io_context = copy_io(&view, flags, &mut fail)?;
    let thread = copy_thread(&mut stack, &view, args, regs)?;
    let pids = alloc_pid(&nsproxy, &creds.cred, &args.set_tid, &mut fail)?;

    let group = match signal {
        SignalPart::Thread(group) => group,
        SignalPart::Process(group) => {
            group.set_pids(&pids);
            group
        }
    };
    let child = new_task(TaskParts {
        pids: Some(pids),
        group,
        stack: TaskStack::Own(stack),
        saved_rsp: thread.saved_rsp,
        sched: sched::sched_fork(parent),
        inner: TaskInner {
            exit_status: 0,
            comm: view.comm,
            mm: mm.map(TaskMm::new),
            clear_child_tid: if flags.contains(CloneFlags::CLONE_CHILD_CLEARTID) {
                args.child_tid
            } else {
                0
            },
            // Linux `futex_init_task`: a new thread holds no robust locks.
            robust_list: 0,
            fs_base: thread.fs_base,
            gs_base: thread.gs_base,
            vfork_done: vfork,
            files,
            sighand: signals.sighand,
            blocked: signals.blocked,
            pending: Default::default(),
            real_blocked: 0,
            saved_sigmask: None,
            sas: signals.sas,
            cred: creds.cred,
            user_count: Some(creds.user_count),
            _thread_count: Some(creds.thread_count),
            fs,
            nsproxy,
            sysvsem,
            io_context,
            fork_no_exec: true,
        },
    });
    if flags.contains(CloneFlags::CLONE_PIDFD) {
        install_pidfd(parent, &child, args.pidfd, &mut fail)?;
    }
    if flags.contains(CloneFlags::CLONE_CHILD_SETTID) {
        if let (Some(mm), Some(pids)) = (child.mm(), child.pids()) {
            // The child's own view of its tid.
            let _ = mm.copy_to_user(args.child_tid, &pids.innermost().to_le_bytes());
        }
    }
    attach_new_task(&child);
    Ok(child)
}

/// Linux `dup_task_struct`: the child's kernel stack.
fn dup_task_struct(fail: &mut FailPoints) -> Result<KernelStack, i32> {
    fail.check(ForkStep::DupTaskStruct)?;
    KernelStack::new().map_err(|_| ENOMEM)
}

/// What copy_creds makes: the child's identity, counted against its real
/// user (RLIMIT_NPROC) and in `nr_threads`.
struct CredPart {
    cred: Cred,
    user_count: UserTaskCount,
    thread_count: ThreadCount,
}

/// Linux `copy_creds`: the parent's identity, or root of a new user
/// namespace (CLONE_NEWUSER), whose limits are checked then.
fn copy_creds(
    parent_cred: Cred,
    view: &ParentView,
    flags: CloneFlags,
    nproc_limit: u64,
    fail: &mut FailPoints,
) -> Result<CredPart, i32> {
    fail.check(ForkStep::CopyCreds)?;
    let cred = if flags.contains(CloneFlags::CLONE_NEWUSER) {
        let chrooted = view.fs.lock().chrooted();
        let cred = super::user_ns::create_user_ns(&parent_cred, nproc_limit, chrooted, || {
            fail.check(ForkStep::CreateUserNs)
        })?;
        check_task_limits(&cred, nproc_limit)?;
        cred
    } else {
        parent_cred
    };
    Ok(CredPart {
        user_count: UserTaskCount::charge(&cred.user_ns, cred.uid),
        thread_count: ThreadCount::charge(),
        cred,
    })
}

/// Linux `copy_semundo`: CLONE_SYSVSEM shares the parent's undo list
/// (made now if it has none).
fn copy_semundo(
    parent: &Task,
    flags: CloneFlags,
    fail: &mut FailPoints,
) -> Result<Option<Arc<SemUndoList>>, i32> {
    if !flags.contains(CloneFlags::CLONE_SYSVSEM) {
        return Ok(None);
    }
    // The parent's list, made (outside its lock) if it has none yet.
    let mut parents = parent.inner.lock().sysvsem.clone();
    let had_one = parents.is_some();
    let shared =
        crate::ipc::sem::copy_semundo(&mut parents, true, || fail.check(ForkStep::CopySemundo))?;
    if !had_one {
        parent.inner.lock().sysvsem = parents;
    }
    Ok(shared)
}

/// Linux `copy_files`: the parent's fd table, shared (CLONE_FILES) or copied.
fn copy_files(
    view: &ParentView,
    flags: CloneFlags,
    fail: &mut FailPoints,
) -> Result<Option<Arc<Mutex<FdTable>>>, i32> {
    fail.check(ForkStep::CopyFiles)?;
    Ok(view.files.as_ref().map(|files| {
        if flags.contains(CloneFlags::CLONE_FILES) {
            files.clone()
        } else {
            Arc::new(Mutex::new(files.lock().clone()))
        }
    }))
}

/// Linux `copy_fs`: root, cwd and umask, shared (CLONE_FS) or copied.
fn copy_fs(
    view: &ParentView,
    flags: CloneFlags,
    fail: &mut FailPoints,
) -> Result<Arc<Mutex<FsStruct>>, i32> {
    fail.check(ForkStep::CopyFs)?;
    Ok(if flags.contains(CloneFlags::CLONE_FS) {
        view.fs.clone()
    } else {
        let copy = view.fs.lock().clone();
        Arc::new(Mutex::new(copy))
    })
}

/// What copy_sighand makes: the signal actions, and the per-thread signal
/// state the child starts with (the parent's mask, its alternate stack
/// unless the memory is shared).
struct SighandPart {
    sighand: Arc<Mutex<SigHand>>,
    blocked: u64,
    sas: SigAltStack,
}

/// Linux `copy_sighand`: the actions, shared (CLONE_SIGHAND), copied, or
/// copied and reset (clone3's CLONE_CLEAR_SIGHAND).
fn copy_sighand(
    view: &ParentView,
    flags: CloneFlags,
    fail: &mut FailPoints,
) -> Result<SighandPart, i32> {
    fail.check(ForkStep::CopySighand)?;
    let sighand = if flags.contains(CloneFlags::CLONE_SIGHAND) {
        view.sighand.clone()
    } else {
        let mut actions = view.sighand.lock().clone();
        if flags.contains(CloneFlags::CLONE_CLEAR_SIGHAND) {
            actions.reset_for_exec();
        }
        Arc::new(Mutex::new(actions))
    };
    // "sigaltstack should be cleared when sharing the same VM" (a thread
    // must not run handlers on its creator's stack); vfork keeps it.
    let sas = if flags & (CloneFlags::CLONE_VM | CloneFlags::CLONE_VFORK) == CloneFlags::CLONE_VM {
        SigAltStack::RESET
    } else {
        view.sas
    };
    Ok(SighandPart {
        sighand,
        blocked: view.blocked,
        sas,
    })
}

/// What copy_signal makes: the caller's thread group for a thread, or
/// the new process's own (its pid is set once allocated).
enum SignalPart {
    Thread(Arc<ThreadGroup>),
    Process(Arc<ThreadGroup>),
}

/// Linux `copy_signal` (and the parent and exit signal `copy_process`
/// picks): CLONE_THREAD shares the caller's thread group; a new process
/// gets a group of its own with a copy of the limits, starts in its process group and session (Linux
/// `init_task_pid` from `current`), and is the child of the caller, or
/// with CLONE_PARENT its sibling, telling their parent what the caller's
/// process would (`current->group_leader->exit_signal`).
fn copy_signal(
    parent: &Arc<Task>,
    args: &CloneArgs,
    fail: &mut FailPoints,
) -> Result<SignalPart, i32> {
    fail.check(ForkStep::CopySignal)?;
    let parent_group = parent.thread_group();
    if args.flags.contains(CloneFlags::CLONE_THREAD) {
        return Ok(SignalPart::Thread(parent_group.clone()));
    }
    let (real_parent, exit_signal) = if args.flags.contains(CloneFlags::CLONE_PARENT) {
        (
            parent_group
                .parent()
                .as_ref()
                .map_or_else(Weak::new, Arc::downgrade),
            parent_group.exit_signal(),
        )
    } else {
        (Arc::downgrade(parent), args.exit_signal as u32)
    };
    let ids = parent_group
        .ids()
        .as_ref()
        .map(super::pgrp::PgrpSession::inherit);
    Ok(SignalPart::Process(ThreadGroup::new(NewGroup {
        parent: real_parent,
        rlimits: parent_group.rlimits_copy(),
        ids,
        exit_signal,
        // Linux copies `oom_score_adj` with the rest of signal_struct.
        oom_score_adj: parent_group.oom_score_adj(),
    })))
}

/// Linux `copy_mm`: the parent's address space, shared (CLONE_VM) or
/// duplicated copy-on-write (a few pages near the stack pointer, or all of
/// a small one, copied at once: `vm.fork_*`).
fn copy_mm(
    view: &ParentView,
    flags: CloneFlags,
    frame: &TrapFrame,
    fail: &mut FailPoints,
) -> Result<Option<Arc<AddressSpace>>, i32> {
    fail.check(ForkStep::CopyMm)?;
    Ok(match &view.mm {
        Some(mm) if flags.contains(CloneFlags::CLONE_VM) => Some(mm.clone()),
        Some(mm) => Some(
            mm.dup(&eager_copy_addresses(frame.rsp), copy_max_pages())
                .map_err(|_| ENOMEM)?,
        ),
        None => None,
    })
}

/// Linux `copy_namespaces`. `cred` is the child's: with CLONE_NEWUSER it
/// is root of its new user namespace, which then owns the other new
/// namespaces, so an unprivileged user may create them together.
fn copy_namespaces(
    view: &ParentView,
    cred: &Cred,
    flags: CloneFlags,
    fail: &mut FailPoints,
) -> Result<Arc<NsProxy>, i32> {
    fail.check(ForkStep::CopyNamespaces)?;
    if !flags.intersects(CloneFlags::NAMESPACES.difference(CloneFlags::CLONE_NEWUSER)) {
        return Ok(view.nsproxy.clone());
    }
    if !cred.ns_capable(&cred.user_ns, CAP_SYS_ADMIN) {
        return Err(EPERM);
    }
    // CLONE_SYSVSEM shares the undo list, whose sets a new IPC namespace
    // could no longer reach.
    if flags.contains(CloneFlags::CLONE_NEWIPC | CloneFlags::CLONE_SYSVSEM) {
        return Err(EINVAL);
    }
    view.nsproxy.copy(
        flags,
        &NAMESPACE_FLAGS,
        flags.contains(CloneFlags::CLONE_NEWPID),
        &cred.user_ns,
    )
}

/// Linux `copy_io`: allocates (and so can fail) only when the parent chose
/// an I/O priority and does not share its context (CLONE_IO).
fn copy_io(
    view: &ParentView,
    flags: CloneFlags,
    fail: &mut FailPoints,
) -> Result<Option<Arc<IoContext>>, i32> {
    io_context::copy_io(
        view.io_context.as_ref(),
        flags.contains(CloneFlags::CLONE_IO),
        || fail.check(ForkStep::CopyIo),
    )
}

/// What copy_thread makes: where the child resumes, and its TLS base.
struct ThreadPart {
    /// The child's kernel stack pointer, at a prepared return to user mode.
    saved_rsp: u64,
    fs_base: u64,
    /// The parent's live GS base (`arch_prctl(ARCH_SET_GS)`).
    gs_base: u64,
}

/// Linux `copy_thread`: the child returns to user mode where the parent
/// will, with rax = 0, on its own stack if one was given, with the
/// parent's FPU state; its TLS base is CLONE_SETTLS's (outside user space:
/// EPERM, x86's `do_arch_prctl_64` rule) or the parent's live one.
fn copy_thread(
    stack: &mut KernelStack,
    view: &ParentView,
    args: &CloneArgs,
    regs: &UserContext,
) -> Result<ThreadPart, i32> {
    let fs_base = if args.flags.contains(CloneFlags::CLONE_SETTLS) {
        if args.tls >= crate::mm::vma::TASK_SIZE {
            return Err(EPERM);
        }
        args.tls
    } else {
        // The parent is the caller: its live FS base (user code may have
        // moved it).
        crate::arch::cpu::live_fs_base(view.fs_base)
    };
    let mut child_frame = regs.frame;
    child_frame.rax = 0;
    if args.stack != 0 {
        child_frame.rsp = args.stack;
    }
    let rsp = switch::prepare_user_return(stack, &child_frame, &regs.fpu);
    Ok(ThreadPart {
        saved_rsp: rsp,
        fs_base,
        gs_base: crate::arch::cpu::live_gs_base(view.gs_base),
    })
}

/// Linux `alloc_pid`: a number in the child's pid namespace and every
/// ancestor (clone3's set_tid chooses them; each level given one needs
/// CAP_SYS_ADMIN over its owner).
fn alloc_pid(
    nsproxy: &NsProxy,
    cred: &Cred,
    set_tid: &[u32],
    fail: &mut FailPoints,
) -> Result<Arc<PidNumbers>, i32> {
    fail.check(ForkStep::AllocPid)?;
    let pid_ns = &nsproxy.pid_ns_for_children;
    if set_tid.len() as u32 > pid_ns.level + 1 {
        return Err(EINVAL);
    }
    if set_tid
        .iter()
        .any(|&tid| !(1..super::pid_ns::PID_MAX).contains(&tid))
    {
        return Err(EINVAL);
    }
    let mut level_ns = Some(pid_ns);
    for _ in set_tid {
        let ns = level_ns.expect("checked: no more pids than levels");
        if !cred.ns_capable(&ns.user_ns, CAP_SYS_ADMIN) {
            return Err(EPERM);
        }
        level_ns = ns.parent.as_ref();
    }
    PidNumbers::alloc(pid_ns, set_tid)
}

/// CLONE_PIDFD: a close-on-exec pidfd for the child in the parent's table
/// (as pidfd_open's, Linux O_CLOEXEC). The parent learns the number before
/// the child exists for anyone else: a bad pointer undoes the whole clone
/// (Linux: EFAULT).
fn install_pidfd(
    parent: &Task,
    child: &Arc<Task>,
    address: u64,
    fail: &mut FailPoints,
) -> Result<(), i32> {
    fail.check(ForkStep::Pidfd)?;
    let pidfd = crate::fs::File::new(crate::fs::FileKind::Pidfd(Arc::downgrade(child)));
    let table = parent.files().ok_or(EBADF)?;
    let fd = table.lock().install_flagged(pidfd, true)?;
    let stored = parent
        .mm()
        .map(|mm| mm.copy_to_user(address, &(fd as u32).to_le_bytes()));
    if !matches!(stored, Some(Ok(()))) {
        drop(table.lock().close(fd));
        return Err(crate::errno::EFAULT);
    }
    Ok(())
}

/// The child built from its parts, in state `New` (its scheduling
/// attributes came from `sched::sched_fork`), known to nobody yet:
/// dropping it undoes everything.
pub(super) fn new_task(parts: TaskParts) -> Arc<Task> {
    Arc::new(Task::from_parts(parts))
}

/// Makes a new task known (the end of Linux `copy_process`, under
/// `tasklist_lock` there): its pid names it, the first task of a pid
/// namespace becomes that namespace's reaper, it joins its thread group,
/// and a new process joins its process group and its parent's children.
/// Nothing can fail from here on.
pub(super) fn attach_new_task(child: &Arc<Task>) {
    let group = child.thread_group();
    if let Some(pids) = child.pids() {
        pids.attach_task(child);
        if pids.innermost() == 1 {
            *pids.ns().child_reaper.lock() = Arc::downgrade(child);
        }
    }
    group.add_thread(child.clone());
    if child.is_group_leader() {
        group.join_pgrp();
        if let Some(parent) = group.parent() {
            parent.thread_group().add_child(child.clone());
        }
    }
}

/// `vm.fork_eager_stack_pages`: pages at and below the user stack
/// pointer that fork copies at once instead of sharing copy-on-write.
/// Parent and child both write the top of the stack right after fork; a
/// copy costs ~0.1 us while a write fault costs tens of microseconds on the
/// PVM host (1-2 us elsewhere), so the default copies one page.
static EAGER_STACK_PAGES: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(1);
/// Upper bound of `vm.fork_eager_stack_pages`.
pub const MAX_EAGER_STACK_PAGES: u64 = 16;

pub fn eager_stack_pages() -> u64 {
    EAGER_STACK_PAGES.load(Ordering::Relaxed)
}

pub fn set_eager_stack_pages(pages: u64) -> Result<(), i32> {
    if pages > MAX_EAGER_STACK_PAGES {
        return Err(EINVAL);
    }
    EAGER_STACK_PAGES.store(pages, Ordering::Relaxed);
    Ok(())
}

/// `vm.fork_copy_max_pages`: a fork copies every private page the parent
/// can write, instead of write-protecting them for copy-on-write, when
/// there are at most this many (`cow::dup_mmap`): no parent TLB flush, no
/// later write faults. Worth it where faults and flushes cost tens of
/// microseconds (the PVM host: default 32); elsewhere the default 0 keeps
/// plain copy-on-write. `u64::MAX` here stands for the platform default.
static COPY_MAX_PAGES: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(u64::MAX);
/// Upper bound of `vm.fork_copy_max_pages` (4 MiB of copies per fork).
pub const MAX_COPY_MAX_PAGES: u64 = 1024;

pub fn copy_max_pages() -> u64 {
    match COPY_MAX_PAGES.load(Ordering::Relaxed) {
        u64::MAX => crate::arch::platform::defaults().fork_copy_max_pages,
        pages => pages,
    }
}

pub fn set_copy_max_pages(pages: u64) -> Result<(), i32> {
    if pages > MAX_COPY_MAX_PAGES {
        return Err(EINVAL);
    }
    COPY_MAX_PAGES.store(pages, Ordering::Relaxed);
    Ok(())
}

/// The page addresses to copy eagerly for a fork at user stack pointer `rsp`.
fn eager_copy_addresses(rsp: u64) -> alloc::vec::Vec<u64> {
    (0..eager_stack_pages())
        .filter_map(|i| rsp.checked_sub(i * 4096))
        .collect()
}

/// Wakes a vfork parent: the child has exec'd or is exiting (Linux
/// `mm_release` -> `complete_vfork_done`).
pub fn release_vfork_parent(task: &Task) {
    let done = task.inner.lock().vfork_done.take();
    if let Some(done) = done {
        done.complete();
    }
}

/// Deepest pid-namespace nesting (`MAX_PID_NS_LEVEL`).
const MAX_PID_NS_LEVEL: u64 = 32;
/// Flags legacy clone can express.
const CLONE_LEGACY_FLAGS: CloneFlags = CloneFlags::from_bits_retain(0xffff_ffff);

/// Reads and validates a `struct clone_args` of `size` bytes (Linux
/// `copy_clone_args_from_user` + `clone3_args_valid`), in Linux's order.
pub fn copy_clone_args_from_user(
    mm: &crate::mm::address_space::AddressSpace,
    address: u64,
    size: u64,
) -> Result<CloneArgs, i32> {
    use crate::errno::{E2BIG, EFAULT};
    if size > 4096 {
        return Err(E2BIG);
    }
    if size < CLONE_ARGS_SIZE_VER0 {
        return Err(EINVAL);
    }
    // copy_struct_from_user: a longer struct must have a zero tail.
    let mut bytes = alloc::vec![0u8; size as usize];
    mm.copy_from_user(address, &mut bytes).map_err(|_| EFAULT)?;
    if bytes.len() as u64 > CLONE_ARGS_SIZE_VER2
        && bytes[CLONE_ARGS_SIZE_VER2 as usize..]
            .iter()
            .any(|&b| b != 0)
    {
        return Err(E2BIG);
    }
    let field = |i: usize| -> u64 {
        bytes
            .get(i * 8..i * 8 + 8)
            .map_or(0, |b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
    };
    let (flags, pidfd, child_tid, parent_tid, exit_signal) = (
        CloneFlags::from_bits_retain(field(0)),
        field(1),
        field(2),
        field(3),
        field(4),
    );
    let (stack, stack_size, tls, set_tid, set_tid_size, cgroup) =
        (field(5), field(6), field(7), field(8), field(9), field(10));

    if set_tid_size > MAX_PID_NS_LEVEL {
        return Err(EINVAL);
    }
    if (set_tid == 0 && set_tid_size > 0) || (set_tid != 0 && set_tid_size == 0) {
        return Err(EINVAL);
    }
    if exit_signal & !CSIGNAL != 0 || exit_signal > u64::from(NSIG) {
        return Err(EINVAL);
    }
    if flags.contains(CloneFlags::CLONE_INTO_CGROUP)
        && (cgroup > i32::MAX as u64 || size < CLONE_ARGS_SIZE_VER2)
    {
        return Err(EINVAL);
    }
    let mut tids = alloc::vec::Vec::new();
    if set_tid_size > 0 {
        let mut bytes = alloc::vec![0u8; (set_tid_size * 4) as usize];
        mm.copy_from_user(set_tid, &mut bytes).map_err(|_| EFAULT)?;
        // The array lists the outermost namespace's pid last.
        tids = bytes
            .chunks(4)
            .map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect();
    }

    // clone3_args_valid.
    if !(CLONE_LEGACY_FLAGS | CloneFlags::CLONE_CLEAR_SIGHAND | CloneFlags::CLONE_INTO_CGROUP)
        .contains(flags)
    {
        return Err(EINVAL);
    }
    // The exit-signal byte is no flag in clone3 (bit 7 is CLONE_NEWTIME there).
    let csignal = CloneFlags::from_bits_retain(CSIGNAL).difference(CloneFlags::CLONE_NEWTIME);
    if flags.intersects(CloneFlags::CLONE_DETACHED | csignal) {
        return Err(EINVAL);
    }
    if flags.contains(CloneFlags::CLONE_SIGHAND | CloneFlags::CLONE_CLEAR_SIGHAND) {
        return Err(EINVAL);
    }
    if flags.intersects(CloneFlags::CLONE_THREAD | CloneFlags::CLONE_PARENT) && exit_signal != 0 {
        return Err(EINVAL);
    }
    // clone3_stack_valid: a stack is a base and a size (it grows down).
    let stack_top = match (stack, stack_size) {
        (0, 0) => 0,
        (0, _) | (_, 0) => return Err(EINVAL),
        (base, len) => base
            .checked_add(len)
            .filter(|&top| top <= crate::mm::vma::TASK_SIZE)
            .ok_or(EINVAL)?,
    };
    if flags.contains(CloneFlags::CLONE_INTO_CGROUP) {
        return Err(EINVAL); // no cgroups
    }
    Ok(CloneArgs {
        flags,
        pidfd,
        set_tid: tids,
        exit_signal,
        stack: stack_top,
        parent_tid,
        child_tid,
        tls,
    })
}
