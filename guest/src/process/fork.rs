//! Creating tasks: `kernel_clone` and `copy_process` (Linux
//! `kernel/fork.c`) for fork, vfork, clone and clone3: Linux's flag checks
//! in its order, the RLIMIT_NPROC and max_threads limits, every copy_*
//! step (creds with user namespaces, semundo, files, fs, sighand, signal,
//! mm, namespaces, io, thread), alloc_pid at every pid-namespace level.
//!
//! Every resource the child acquires is an owned value (kernel stack, pid
//! slot, address space); if a later step fails they are dropped in reverse
//! order, which releases them, so no failure path leaks.

use alloc::sync::Arc;
use core::sync::atomic::Ordering;

use super::cred::{Cred, UserTaskCount, CAP_SYS_ADMIN, CAP_SYS_RESOURCE};
use super::io_context;
use super::rlimit::{self, RLIMIT_NPROC};
use super::sigaltstack::SigAltStack;
use super::task::{Pid, Task, TaskStack};
use crate::arch::entry::UserContext;
use crate::arch::switch;
use crate::errno::{EAGAIN, EBADF, EINVAL, ENOMEM, EPERM, ERESTARTNOINTR};
use crate::mm::kstack::KernelStack;
use crate::sched::{self, wait::Completion};

pub const CSIGNAL: u64 = 0xff;
pub const CLONE_VM: u64 = 0x100;
pub const CLONE_FS: u64 = 0x200;
pub const CLONE_PIDFD: u64 = 0x1000;
pub const CLONE_FILES: u64 = 0x400;
pub const CLONE_SIGHAND: u64 = 0x800;
pub const CLONE_VFORK: u64 = 0x4000;
pub const CLONE_SYSVSEM: u64 = 0x40000;
pub const CLONE_PARENT: u64 = 0x8000;
pub const CLONE_THREAD: u64 = 0x10000;
pub const CLONE_NEWNS: u64 = 0x20000;
pub const CLONE_SETTLS: u64 = 0x80000;
pub const CLONE_PARENT_SETTID: u64 = 0x100000;
pub const CLONE_CHILD_CLEARTID: u64 = 0x200000;
pub const CLONE_DETACHED: u64 = 0x400000;
pub const CLONE_CHILD_SETTID: u64 = 0x1000000;
pub const CLONE_NEWCGROUP: u64 = 0x2000000;
pub const CLONE_NEWUTS: u64 = 0x4000000;
pub const CLONE_NEWIPC: u64 = 0x8000000;
pub const CLONE_NEWUSER: u64 = 0x10000000;
pub const CLONE_NEWPID: u64 = 0x20000000;
pub const CLONE_NEWNET: u64 = 0x40000000;
pub const CLONE_IO: u64 = 0x80000000;
pub const CLONE_NEWTIME: u64 = 0x80;
/// clone3 only: reset signal handlers in the child.
pub const CLONE_CLEAR_SIGHAND: u64 = 0x1_0000_0000;
/// clone3 only: start the child in another cgroup.
pub const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
/// Every namespace flag.
pub const CLONE_NAMESPACES: u64 = CLONE_NEWNS
    | CLONE_NEWCGROUP
    | CLONE_NEWUTS
    | CLONE_NEWIPC
    | CLONE_NEWUSER
    | CLONE_NEWPID
    | CLONE_NEWNET
    | CLONE_NEWTIME;

/// SIGCHLD, the exit signal of fork and vfork.
pub const SIGCHLD: u64 = 17;

/// Arguments of a clone (Linux `struct kernel_clone_args`).
#[derive(Clone, Debug, Default)]
pub struct CloneArgs {
    pub flags: u64,
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
    if flags & CLONE_PIDFD != 0 && flags & CLONE_PARENT_SETTID != 0 && args.pidfd == args.parent_tid
    {
        return Err(EINVAL);
    }
    let parent = sched::current();
    let vfork = (flags & CLONE_VFORK != 0).then(|| Arc::new(Completion::new()));
    let child = copy_process(&parent, args, frame, vfork.clone())?;
    // The pid the caller sees: its number in the caller's pid namespace
    // (Linux `pid_vnr`), not the kernel's global one.
    let pid = child.tid_in(&parent.active_pid_ns());
    crate::stats::TASKS_CREATED.add(1);
    if let Some(mm) = parent.mm() {
        if flags & CLONE_PARENT_SETTID != 0 {
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
fn check_clone_flags(parent: &Task, flags: u64) -> Result<(), i32> {
    if flags & (CLONE_NEWNS | CLONE_FS) == CLONE_NEWNS | CLONE_FS {
        return Err(EINVAL);
    }
    if flags & (CLONE_NEWUSER | CLONE_FS) == CLONE_NEWUSER | CLONE_FS {
        return Err(EINVAL);
    }
    // Thread groups share signals; signal handlers need a shared VM.
    if flags & CLONE_THREAD != 0 && flags & CLONE_SIGHAND == 0 {
        return Err(EINVAL);
    }
    if flags & CLONE_SIGHAND != 0 && flags & CLONE_VM == 0 {
        return Err(EINVAL);
    }
    // Siblings of init (which is SIGNAL_UNKILLABLE) would be unreapable.
    if flags & CLONE_PARENT != 0 && parent.is_namespace_init() {
        return Err(EINVAL);
    }
    // A thread cannot live in another user or pid namespace than its group.
    if flags & CLONE_THREAD != 0 && flags & (CLONE_NEWUSER | CLONE_NEWPID) != 0 {
        return Err(EINVAL);
    }
    if flags & CLONE_PIDFD != 0 && flags & CLONE_DETACHED != 0 {
        return Err(EINVAL);
    }
    Ok(())
}

/// Fault injection for copy_process (Linux's fail-nth): counts the
/// fallible steps of one call and fails the one the task armed.
struct FailPoints<'a> {
    task: &'a Task,
    seen: u32,
    nth: u32,
}

impl<'a> FailPoints<'a> {
    fn new(task: &'a Task) -> Self {
        // The setting is one-shot, as /proc/self/fail-nth is.
        let nth = core::mem::take(&mut task.inner.lock().fail_nth);
        FailPoints { task, seen: 0, nth }
    }

    /// A fallible step: `Err(errno)` if it is the one to fail.
    fn check(&mut self, errno: i32) -> Result<(), i32> {
        self.seen += 1;
        if self.seen == self.nth {
            Err(errno)
        } else {
            Ok(())
        }
    }
}

impl Drop for FailPoints<'_> {
    fn drop(&mut self) {
        self.task.inner.lock().fail_points_seen = self.seen;
    }
}

/// Each namespace kind built so far, with its clone flag.
pub(super) const NAMESPACE_FLAGS: [(super::nsproxy::NsKind, u64); 6] = {
    use super::nsproxy::NsKind;
    [
        (NsKind::Uts, CLONE_NEWUTS),
        (NsKind::Ipc, CLONE_NEWIPC),
        (NsKind::Mnt, CLONE_NEWNS),
        (NsKind::Net, CLONE_NEWNET),
        (NsKind::Cgroup, CLONE_NEWCGROUP),
        (NsKind::Time, CLONE_NEWTIME),
    ]
};

/// Linux `copy_namespaces`. `cred` is the child's: with CLONE_NEWUSER it
/// is root of its new user namespace, which then owns the other new
/// namespaces, so an unprivileged user may create them together.
fn copy_namespaces(
    parent: &Task,
    cred: &Cred,
    flags: u64,
) -> Result<Arc<super::nsproxy::NsProxy>, i32> {
    let parent_ns = parent.inner.lock().nsproxy.clone();
    if flags & CLONE_NAMESPACES & !CLONE_NEWUSER == 0 {
        return Ok(parent_ns);
    }
    if !cred.ns_capable(&cred.user_ns, CAP_SYS_ADMIN) {
        return Err(EPERM);
    }
    // CLONE_SYSVSEM shares the undo list, whose sets a new IPC namespace
    // could no longer reach.
    if flags & (CLONE_NEWIPC | CLONE_SYSVSEM) == CLONE_NEWIPC | CLONE_SYSVSEM {
        return Err(EINVAL);
    }
    parent_ns.copy(
        flags,
        &NAMESPACE_FLAGS,
        flags & CLONE_NEWPID != 0,
        &cred.user_ns,
    )
}

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

/// Builds the child task (Linux `copy_process`), not yet runnable. The
/// steps run in Linux's order; every resource taken is an owned value, so
/// an error at any step drops what was taken so far, in reverse order.
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

    let (parent_cred, parent_rlimits) = {
        let inner = parent.inner.lock();
        (inner.cred.clone(), inner.rlimits.clone())
    };
    // The limits are checked before anything is allocated so that their
    // failures cost no more than a system call. (Linux checks them right
    // after dup_task_struct and copy_creds; the errno and what stays
    // behind, nothing, are the same.) A child in a new user namespace is
    // counted there, so its check waits for copy_creds.
    let nproc_limit = parent_rlimits.lock().0[RLIMIT_NPROC].cur;
    let new_user_ns = flags & CLONE_NEWUSER != 0;
    if !new_user_ns {
        check_task_limits(&parent_cred, nproc_limit)?;
    }

    let mut fail = FailPoints::new(parent);
    // dup_task_struct: the kernel stack.
    fail.check(ENOMEM)?;
    let stack = KernelStack::new().map_err(|_| ENOMEM)?;
    // copy_creds: the same identity, or root of a new user namespace;
    // counted against the real user and in nr_threads.
    fail.check(ENOMEM)?;
    let cred = if new_user_ns {
        let fs = parent.inner.lock().fs.clone();
        let chrooted = fs.lock().chrooted();
        let cred = super::user_ns::create_user_ns(&parent_cred, nproc_limit, chrooted, || {
            fail.check(ENOMEM)
        })?;
        check_task_limits(&cred, nproc_limit)?;
        cred
    } else {
        parent_cred
    };
    let user_count = UserTaskCount::charge(&cred.user_ns, cred.uid);
    let thread_count = super::ThreadCount::charge();

    // copy_semundo, copy_files, copy_fs, copy_sighand, copy_signal (the
    // limits), then copy_mm, copy_namespaces, copy_io and copy_thread, as
    // Linux orders them.
    let sysvsem = {
        let mut inner = parent.inner.lock();
        crate::ipc::sem::copy_semundo(&mut inner.sysvsem, flags & CLONE_SYSVSEM != 0, || {
            fail.check(ENOMEM)
        })?
    };
    fail.check(ENOMEM)?; // copy_files
    let files = parent.inner.lock().files.as_ref().map(|files| {
        if flags & CLONE_FILES != 0 {
            files.clone()
        } else {
            Arc::new(spin::Mutex::new(files.lock().clone()))
        }
    });
    fail.check(ENOMEM)?; // copy_fs
    let fs = {
        let parent_fs = parent.inner.lock().fs.clone();
        if flags & CLONE_FS != 0 {
            parent_fs
        } else {
            let copy = parent_fs.lock().clone();
            Arc::new(spin::Mutex::new(copy))
        }
    };
    fail.check(ENOMEM)?; // copy_sighand
    let (sighand, blocked, fs_base) = {
        let inner = parent.inner.lock();
        let sighand = if flags & CLONE_SIGHAND != 0 {
            inner.sighand.clone()
        } else if flags & CLONE_CLEAR_SIGHAND != 0 {
            let mut actions = inner.sighand.lock().clone();
            actions.reset_for_exec();
            Arc::new(spin::Mutex::new(actions))
        } else {
            Arc::new(spin::Mutex::new(inner.sighand.lock().clone()))
        };
        (
            sighand,
            inner.blocked,
            // The parent is the caller: its live FS base (user code may
            // have moved it).
            crate::arch::cpu::live_fs_base(inner.fs_base),
        )
    };
    // "sigaltstack should be cleared when sharing the same VM" (a thread
    // must not run handlers on its creator's stack); vfork keeps it.
    let sas = if flags & (CLONE_VM | CLONE_VFORK) == CLONE_VM {
        SigAltStack::RESET
    } else {
        parent.inner.lock().sas
    };
    fail.check(ENOMEM)?; // copy_signal
    let rlimits = if flags & CLONE_THREAD != 0 {
        parent_rlimits
    } else {
        Arc::new(spin::Mutex::new(*parent_rlimits.lock()))
    };
    // A thread shares its process's pending signals; a new process starts
    // with none (Linux `signal->shared_pending`).
    let shared_pending = if flags & CLONE_THREAD != 0 {
        parent.inner.lock().shared_pending.clone()
    } else {
        Default::default()
    };
    fail.check(ENOMEM)?; // copy_mm
    let mm = match parent.mm() {
        Some(mm) if flags & CLONE_VM != 0 => Some(mm),
        Some(mm) => Some(
            mm.dup(&eager_copy_addresses(frame.rsp), copy_max_pages())
                .map_err(|_| ENOMEM)?,
        ),
        None => None,
    };

    // copy_namespaces: new ones need CAP_SYS_ADMIN over the child's user
    // namespace.
    fail.check(ENOMEM)?;
    let nsproxy = copy_namespaces(parent, &cred, flags)?;

    // copy_io: allocates (and so can fail) only when the parent chose an
    // I/O priority and does not share its context.
    let parent_ioc = parent.inner.lock().io_context.clone();
    let io_context = io_context::copy_io(parent_ioc.as_ref(), flags & CLONE_IO != 0, || {
        fail.check(ENOMEM)
    })?;

    // copy_thread: a TLS base outside user space is refused (x86's
    // `do_arch_prctl_64` rule) before anything else of the thread is built.
    if flags & CLONE_SETTLS != 0 && args.tls >= crate::mm::vma::TASK_SIZE {
        return Err(EPERM);
    }
    // The child returns to user mode where the parent will,
    // with rax = 0, on its own stack if one was given, with its TLS.
    let mut child_frame = *frame;
    child_frame.rax = 0;
    if args.stack != 0 {
        child_frame.rsp = args.stack;
    }
    // SAFETY: the top of the child's fresh kernel stack.
    let rsp = unsafe { switch::prepare_user_return(stack.top(), &child_frame, &regs.fpu) };

    // alloc_pid: a number in the child's pid namespace and every ancestor
    // (clone3's set_tid chooses them; that needs CAP_SYS_ADMIN).
    fail.check(ENOMEM)?;
    let pid_ns = nsproxy.pid_ns_for_children.clone();
    if args.set_tid.len() as u32 > pid_ns.level + 1 {
        return Err(EINVAL);
    }
    if args
        .set_tid
        .iter()
        .any(|&tid| !(1..super::pid_ns::PID_MAX).contains(&tid))
    {
        return Err(EINVAL);
    }
    // Each level given a pid needs CAP_SYS_ADMIN over its owner.
    let mut level_ns = Some(&pid_ns);
    for _ in &args.set_tid {
        let ns = level_ns.expect("checked: no more pids than levels");
        if !cred.ns_capable(&ns.user_ns, CAP_SYS_ADMIN) {
            return Err(EPERM);
        }
        level_ns = ns.parent.as_ref();
    }
    let pids = Arc::new(super::pid_ns::PidNumbers::alloc(&pid_ns, &args.set_tid)?);
    let pid = pids.global();
    let (tgid, tgid_pids) = if flags & CLONE_THREAD != 0 {
        (parent.tgid, parent.inner.lock().tgid_pids.clone())
    } else {
        (pid, Some(pids.clone()))
    };
    let real_parent = if flags & (CLONE_PARENT | CLONE_THREAD) != 0 {
        parent.inner.lock().parent.clone()
    } else {
        Arc::downgrade(parent)
    };
    // A thread shares its group's process group and session; a new
    // process starts in the caller's (Linux `init_task_pid` from `current`).
    let pgrp_session = parent.inner.lock().pgrp_session.clone().map(|ids| {
        if flags & CLONE_THREAD != 0 {
            ids
        } else {
            super::pgrp::PgrpSession::inherit(&ids.lock())
        }
    });
    let leader_exit_signal =
        super::find(parent.tgid).map_or(0, |leader| leader.inner.lock().exit_signal);
    let comm = parent.comm();
    let name_len = comm.iter().position(|&b| b == 0).unwrap_or(comm.len());
    let child = Arc::new(Task::new(
        pid,
        tgid,
        TaskStack::Own(stack),
        real_parent.clone(),
        &comm[..name_len],
    ));
    child.saved_rsp.store(rsp, Ordering::Release);
    sched::sched_fork(&child);
    {
        let mut inner = child.inner.lock();
        inner.mm = mm;
        inner.exit_signal = if flags & CLONE_THREAD != 0 {
            0
        } else if flags & CLONE_PARENT != 0 {
            // A sibling tells the shared parent what the caller's group
            // leader would (Linux: `current->group_leader->exit_signal`).
            leader_exit_signal
        } else {
            args.exit_signal as u32
        };
        inner.fs_base = if flags & CLONE_SETTLS != 0 {
            args.tls
        } else {
            fs_base
        };
        inner.clear_child_tid = if flags & CLONE_CHILD_CLEARTID != 0 {
            args.child_tid
        } else {
            0
        };
        inner.vfork_done = vfork;
        inner.sighand = sighand;
        inner.blocked = blocked;
        inner.sas = sas;
        inner.files = files;
        inner.cred = cred;
        inner.user_count = Some(user_count);
        inner.thread_count = Some(thread_count);
        inner.rlimits = rlimits;
        inner.shared_pending = shared_pending;
        inner.fs = fs;
        inner.nsproxy = nsproxy;
        inner.io_context = io_context;
        inner.sysvsem = sysvsem;
        inner.pids = Some(pids.clone());
        inner.tgid_pids = tgid_pids;
        inner.pgrp_session = pgrp_session;
        inner.fork_no_exec = true;
    }
    if flags & CLONE_PIDFD != 0 {
        fail.check(ENOMEM)?;
        let pidfd = crate::fs::File::new(crate::fs::FileKind::Pidfd(Arc::downgrade(&child)));
        let table = parent.files().ok_or(EBADF)?;
        // Close-on-exec, as pidfd_open's (Linux: O_CLOEXEC).
        let fd = table.lock().install_flagged(pidfd, true)?;
        // The parent learns the number before the child exists for anyone
        // else: a bad pointer undoes the whole clone (Linux: EFAULT).
        let stored = parent
            .mm()
            .map(|mm| mm.copy_to_user(args.pidfd, &(fd as u32).to_le_bytes()));
        if !matches!(stored, Some(Ok(()))) {
            drop(table.lock().close(fd));
            return Err(crate::errno::EFAULT);
        }
    }
    if flags & CLONE_CHILD_SETTID != 0 {
        if let Some(mm) = child.mm() {
            // The child's own view of its tid.
            let _ = mm.copy_to_user(args.child_tid, &pids.innermost().to_le_bytes());
        }
    }

    // The first task of a new pid namespace is its pid 1 and reaper.
    if pids.innermost() == 1 {
        *pid_ns.child_reaper.lock() = Arc::downgrade(&child);
    }

    // Attach: to the parent's children, and to the task table.
    if let Some(real_parent) = real_parent.upgrade() {
        real_parent.inner.lock().children.push(child.clone());
    }
    super::register(&child);
    Ok(child)
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

/// Size of the first `struct clone_args` (`CLONE_ARGS_SIZE_VER0`).
pub const CLONE_ARGS_SIZE_VER0: u64 = 64;
/// Size of the newest `struct clone_args` this kernel knows (VER2).
pub const CLONE_ARGS_SIZE_VER2: u64 = 88;
/// Deepest pid-namespace nesting (`MAX_PID_NS_LEVEL`).
const MAX_PID_NS_LEVEL: u64 = 32;
/// Highest signal number.
const NSIG: u64 = 64;
const CSIGNAL_BITS: u64 = 0xff;
/// Flags legacy clone can express.
const CLONE_LEGACY_FLAGS: u64 = 0xffff_ffff;

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
    let (flags, pidfd, child_tid, parent_tid, exit_signal) =
        (field(0), field(1), field(2), field(3), field(4));
    let (stack, stack_size, tls, set_tid, set_tid_size, cgroup) =
        (field(5), field(6), field(7), field(8), field(9), field(10));

    if set_tid_size > MAX_PID_NS_LEVEL {
        return Err(EINVAL);
    }
    if (set_tid == 0 && set_tid_size > 0) || (set_tid != 0 && set_tid_size == 0) {
        return Err(EINVAL);
    }
    if exit_signal & !CSIGNAL_BITS != 0 || exit_signal > NSIG {
        return Err(EINVAL);
    }
    if flags & CLONE_INTO_CGROUP != 0 && (cgroup > i32::MAX as u64 || size < CLONE_ARGS_SIZE_VER2) {
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
    if flags & !(CLONE_LEGACY_FLAGS | CLONE_CLEAR_SIGHAND | CLONE_INTO_CGROUP) != 0 {
        return Err(EINVAL);
    }
    if flags & (CLONE_DETACHED | (CSIGNAL_BITS & !CLONE_NEWTIME)) != 0 {
        return Err(EINVAL);
    }
    if flags & (CLONE_SIGHAND | CLONE_CLEAR_SIGHAND) == CLONE_SIGHAND | CLONE_CLEAR_SIGHAND {
        return Err(EINVAL);
    }
    if flags & (CLONE_THREAD | CLONE_PARENT) != 0 && exit_signal != 0 {
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
    if flags & CLONE_INTO_CGROUP != 0 {
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
