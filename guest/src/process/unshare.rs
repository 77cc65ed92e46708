//! `unshare(flags)` (Linux `ksys_unshare` in `kernel/fork.c`): the calling
//! task gives up sharing what `flags` name, copy_process's steps applied
//! to itself: a private fs_struct or fd table, no SysV undo list, a new
//! user namespace, new namespaces of the other kinds (a new pid namespace
//! for its future children). Everything is built first; only when every
//! step succeeded is anything installed, so a failure changes nothing.

use alloc::sync::Arc;

use super::cred::{Cred, CAP_SYS_ADMIN};
use super::fork::{
    CLONE_FILES, CLONE_FS, CLONE_NEWCGROUP, CLONE_NEWIPC, CLONE_NEWNET, CLONE_NEWNS, CLONE_NEWPID,
    CLONE_NEWTIME, CLONE_NEWUSER, CLONE_NEWUTS, CLONE_SIGHAND, CLONE_SYSVSEM, CLONE_THREAD,
    CLONE_VM,
};
use super::rlimit::RLIMIT_NPROC;
use super::task::Task;
use crate::errno::{EINVAL, EPERM};

/// What `unshare` accepts (Linux `check_unshare_flags`).
const UNSHARE_FLAGS: u64 = CLONE_THREAD
    | CLONE_FS
    | CLONE_NEWNS
    | CLONE_SIGHAND
    | CLONE_VM
    | CLONE_FILES
    | CLONE_SYSVSEM
    | CLONE_NEWUTS
    | CLONE_NEWIPC
    | CLONE_NEWNET
    | CLONE_NEWUSER
    | CLONE_NEWPID
    | CLONE_NEWCGROUP
    | CLONE_NEWTIME;

/// Namespace kinds other than user.
const OTHER_NAMESPACES: u64 = CLONE_NEWNS
    | CLONE_NEWUTS
    | CLONE_NEWIPC
    | CLONE_NEWNET
    | CLONE_NEWPID
    | CLONE_NEWCGROUP
    | CLONE_NEWTIME;

/// Whether another task shares `task`'s thread group.
fn has_other_threads(task: &Arc<Task>) -> bool {
    task.thread_group().has_other_threads(task)
}

pub fn ksys_unshare(task: &Arc<Task>, flags: u64) -> Result<(), i32> {
    // What unsharing one thing implies.
    let mut flags = flags;
    if flags & CLONE_NEWUSER != 0 {
        flags |= CLONE_THREAD | CLONE_FS;
    }
    if flags & CLONE_VM != 0 {
        flags |= CLONE_SIGHAND;
    }
    if flags & CLONE_SIGHAND != 0 {
        flags |= CLONE_THREAD;
    }
    if flags & CLONE_NEWNS != 0 {
        flags |= CLONE_FS;
    }

    // check_unshare_flags: a thread group, shared signal handlers or a
    // shared address space cannot be given up (only "unshared" when there
    // is nothing to unshare).
    if flags & !UNSHARE_FLAGS != 0 {
        return Err(EINVAL);
    }
    if flags & (CLONE_THREAD | CLONE_SIGHAND | CLONE_VM) != 0 && has_other_threads(task) {
        return Err(EINVAL);
    }
    let (fs, files, sighand, mm, cred, nsproxy, nproc_limit) = {
        let inner = task.inner.lock();
        let nproc = task.thread_group().rlimits().0[RLIMIT_NPROC].cur;
        (
            inner.fs.clone(),
            inner.files.clone(),
            inner.sighand.clone(),
            inner.mm.clone(),
            inner.cred.clone(),
            inner.nsproxy.clone(),
            nproc,
        )
    };
    // Counted without the references just taken above.
    if flags & (CLONE_SIGHAND | CLONE_VM) != 0 && Arc::strong_count(&sighand) > 2 {
        return Err(EINVAL);
    }
    if flags & CLONE_VM != 0 {
        if let Some(mm) = &mm {
            let sharers = super::all_tasks()
                .iter()
                .filter(|other| other.mm().is_some_and(|m| Arc::ptr_eq(&m, mm)))
                .count();
            if sharers > 1 {
                return Err(EINVAL);
            }
        }
    }
    drop((sighand, mm));

    // unshare_fs, unshare_fd: private copies when shared.
    let new_fs = (flags & CLONE_FS != 0 && Arc::strong_count(&fs) > 2)
        .then(|| Arc::new(spin::Mutex::new(fs.lock().clone())));
    let new_files = match &files {
        Some(files) if flags & CLONE_FILES != 0 && Arc::strong_count(files) > 2 => {
            Some(Arc::new(spin::Mutex::new(files.lock().clone())))
        }
        _ => None,
    };
    // unshare_userns: root of a new user namespace.
    let new_cred: Option<Cred> = if flags & CLONE_NEWUSER != 0 {
        let chrooted = fs.lock().chrooted();
        Some(super::user_ns::create_user_ns(
            &cred,
            nproc_limit,
            chrooted,
            || Ok(()),
        )?)
    } else {
        None
    };
    // unshare_nsproxy_namespaces: CAP_SYS_ADMIN over the (new) user
    // namespace; a second new pid namespace before the first is entered
    // is refused (Linux `copy_pid_ns`).
    let new_nsproxy = if flags & OTHER_NAMESPACES != 0 {
        let user_ns = &new_cred.as_ref().unwrap_or(&cred).user_ns;
        if !new_cred
            .as_ref()
            .unwrap_or(&cred)
            .ns_capable(user_ns, CAP_SYS_ADMIN)
        {
            return Err(EPERM);
        }
        if flags & CLONE_NEWPID != 0
            && !Arc::ptr_eq(&nsproxy.pid_ns_for_children, &task.active_pid_ns())
        {
            return Err(EINVAL);
        }
        Some(nsproxy.copy(
            flags,
            &super::fork::NAMESPACE_FLAGS,
            flags & CLONE_NEWPID != 0,
            user_ns,
        )?)
    } else {
        None
    };

    // Everything built: install it.
    let mut inner = task.inner.lock();
    if flags & (CLONE_NEWIPC | CLONE_SYSVSEM) != 0 {
        // Like exit: the undo list is applied if this was its last user.
        drop(inner.sysvsem.take());
    }
    if let Some(nsproxy) = new_nsproxy {
        inner.nsproxy = nsproxy;
    }
    if let Some(fs) = new_fs {
        inner.fs = fs;
    }
    if let Some(files) = new_files {
        inner.files = Some(files);
    }
    if let Some(cred) = new_cred {
        super::cred::commit_creds(&mut inner, cred);
    }
    Ok(())
}
