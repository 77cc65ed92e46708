//! Creating tasks: `kernel_clone` and `copy_process` (Linux
//! `kernel/fork.c`). This is the first cut: fork, vfork and clone with
//! CLONE_VM, CLONE_VFORK, CLONE_THREAD (+SIGHAND), CLONE_SETTLS,
//! CLONE_PARENT_SETTID, CLONE_CHILD_SETTID and CLONE_CHILD_CLEARTID.
//!
//! Every resource the child acquires is an owned value (kernel stack, pid
//! slot, address space); if a later step fails they are dropped in reverse
//! order, which releases them, so no failure path leaks.

use alloc::sync::Arc;
use core::sync::atomic::Ordering;

use super::task::{Pid, Task, TaskStack};
use crate::arch::entry::{TrapFrame, FPU_STATE_SIZE};
use crate::arch::switch;
use crate::errno::{EINVAL, ENOMEM};
use crate::mm::kstack::KernelStack;
use crate::sched::{self, wait::Completion};

pub const CSIGNAL: u64 = 0xff;
pub const CLONE_VM: u64 = 0x100;
pub const CLONE_FILES: u64 = 0x400;
pub const CLONE_SIGHAND: u64 = 0x800;
pub const CLONE_VFORK: u64 = 0x4000;
pub const CLONE_PARENT: u64 = 0x8000;
pub const CLONE_THREAD: u64 = 0x10000;
pub const CLONE_SETTLS: u64 = 0x80000;
pub const CLONE_PARENT_SETTID: u64 = 0x100000;
pub const CLONE_CHILD_CLEARTID: u64 = 0x200000;
pub const CLONE_CHILD_SETTID: u64 = 0x1000000;

/// SIGCHLD, the exit signal of fork and vfork.
pub const SIGCHLD: u64 = 17;

/// Arguments of a clone (Linux `struct kernel_clone_args`).
#[derive(Clone, Copy, Debug, Default)]
pub struct CloneArgs {
    pub flags: u64,
    pub exit_signal: u64,
    pub stack: u64,
    pub parent_tid: u64,
    pub child_tid: u64,
    pub tls: u64,
}

/// Creates a task as a copy of the current one and starts it; returns its
/// pid (Linux `kernel_clone`). `frame` is the caller's user register state.
pub fn kernel_clone(args: &CloneArgs, frame: &TrapFrame) -> Result<Pid, i32> {
    let parent = sched::current();
    let vfork = (args.flags & CLONE_VFORK != 0).then(|| Arc::new(Completion::new()));
    let child = copy_process(&parent, args, frame, vfork.clone())?;
    let pid = child.pid;
    crate::stats::TASKS_CREATED.add(1);
    if args.flags & CLONE_PARENT_SETTID != 0 {
        if let Some(mm) = parent.mm() {
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

/// Builds the child task (Linux `copy_process`), not yet runnable.
fn copy_process(
    parent: &Arc<Task>,
    args: &CloneArgs,
    frame: &TrapFrame,
    vfork: Option<Arc<Completion>>,
) -> Result<Arc<Task>, i32> {
    let flags = args.flags;
    if flags & CLONE_THREAD != 0 && flags & CLONE_SIGHAND == 0 {
        return Err(EINVAL);
    }
    if flags & CLONE_SIGHAND != 0 && flags & CLONE_VM == 0 {
        return Err(EINVAL);
    }

    let stack = KernelStack::new().map_err(|_| ENOMEM)?;
    let parent_mm = parent.mm();
    let mm = match &parent_mm {
        Some(mm) if flags & CLONE_VM != 0 => Some(mm.clone()),
        Some(mm) => Some(
            mm.dup(&eager_copy_addresses(frame.rsp))
                .map_err(|_| ENOMEM)?,
        ),
        None => None,
    };
    let pid = super::new_pid()?;
    let tgid = if flags & CLONE_THREAD != 0 {
        parent.tgid
    } else {
        pid
    };
    let real_parent = if flags & (CLONE_PARENT | CLONE_THREAD) != 0 {
        parent.inner.lock().parent.clone()
    } else {
        Arc::downgrade(parent)
    };

    // copy_thread: the child returns to user mode where the parent will,
    // with rax = 0, on its own stack if one was given, with its TLS.
    let mut child_frame = *frame;
    child_frame.rax = 0;
    if args.stack != 0 {
        child_frame.rsp = args.stack;
    }
    let parent_fpu =
        (frame as *const TrapFrame as u64 - FPU_STATE_SIZE as u64) as *const [u8; FPU_STATE_SIZE];
    // SAFETY: the trap entry saved the parent's FPU state right below its frame.
    let fpu = unsafe { *parent_fpu };
    let top = stack.top();
    // SAFETY: `top` is the top of the child's fresh kernel stack.
    let rsp = unsafe { switch::prepare_user_return(top, &child_frame, &fpu) };

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
        let parent_inner = parent.inner.lock();
        let mut inner = child.inner.lock();
        inner.mm = mm;
        inner.exit_signal = if flags & CLONE_THREAD != 0 {
            0
        } else {
            args.exit_signal as u32
        };
        inner.fs_base = if flags & CLONE_SETTLS != 0 {
            args.tls
        } else {
            parent_inner.fs_base
        };
        inner.clear_child_tid = if flags & CLONE_CHILD_CLEARTID != 0 {
            args.child_tid
        } else {
            0
        };
        inner.vfork_done = vfork;
        // copy_sighand: share the actions, or copy them.
        inner.sighand = if flags & CLONE_SIGHAND != 0 {
            parent_inner.sighand.clone()
        } else {
            Arc::new(spin::Mutex::new(parent_inner.sighand.lock().clone()))
        };
        inner.blocked = parent_inner.blocked;
        // copy_files: share the table, or a copy referring to the same files.
        inner.files = parent_inner.files.as_ref().map(|files| {
            if flags & CLONE_FILES != 0 {
                files.clone()
            } else {
                Arc::new(spin::Mutex::new(files.lock().clone()))
            }
        });
    }
    if flags & CLONE_CHILD_SETTID != 0 {
        if let Some(mm) = child.mm() {
            let _ = mm.copy_to_user(args.child_tid, &pid.to_le_bytes());
        }
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
