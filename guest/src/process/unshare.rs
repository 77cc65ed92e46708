//! `unshare(flags)` (Linux `ksys_unshare` in `kernel/fork.c`): the calling
//! task gives up sharing what `flags` name, copy_process's steps applied
//! to itself: a private fs_struct or fd table, no SysV undo list, a new
//! user namespace, new namespaces of the other kinds (a new pid namespace
//! for its future children). Everything is built first; only when every
//! step succeeded is anything installed, so a failure changes nothing.

use alloc::sync::Arc;

use super::cred::{Cred, CAP_SYS_ADMIN};
use super::rlimit::RLIMIT_NPROC;
use super::task::Task;
use crate::errno::{EINVAL, EPERM};
use forkvm_abi::linux::clone::CloneFlags;

/// What `unshare` accepts (Linux `check_unshare_flags`).
const UNSHARE_FLAGS: CloneFlags = CloneFlags::CLONE_THREAD
    .union(CloneFlags::CLONE_FS)
    .union(CloneFlags::CLONE_NEWNS)
    .union(CloneFlags::CLONE_SIGHAND)
    .union(CloneFlags::CLONE_VM)
    .union(CloneFlags::CLONE_FILES)
    .union(CloneFlags::CLONE_SYSVSEM)
    .union(CloneFlags::CLONE_NEWUTS)
    .union(CloneFlags::CLONE_NEWIPC)
    .union(CloneFlags::CLONE_NEWNET)
    .union(CloneFlags::CLONE_NEWUSER)
    .union(CloneFlags::CLONE_NEWPID)
    .union(CloneFlags::CLONE_NEWCGROUP)
    .union(CloneFlags::CLONE_NEWTIME);

/// Namespace kinds other than user.
const OTHER_NAMESPACES: CloneFlags = CloneFlags::CLONE_NEWNS
    .union(CloneFlags::CLONE_NEWUTS)
    .union(CloneFlags::CLONE_NEWIPC)
    .union(CloneFlags::CLONE_NEWNET)
    .union(CloneFlags::CLONE_NEWPID)
    .union(CloneFlags::CLONE_NEWCGROUP)
    .union(CloneFlags::CLONE_NEWTIME);

/// Whether another task shares `task`'s thread group.
fn has_other_threads(task: &Arc<Task>) -> bool {
    task.thread_group().has_other_threads(task)
}

pub fn ksys_unshare(task: &Arc<Task>, flags: u64) -> Result<(), i32> {
    // What unsharing one thing implies.
    let mut flags = CloneFlags::from_bits_retain(flags);
    if flags.contains(CloneFlags::CLONE_NEWUSER) {
        flags |= CloneFlags::CLONE_THREAD | CloneFlags::CLONE_FS;
    }
    if flags.contains(CloneFlags::CLONE_VM) {
        flags |= CloneFlags::CLONE_SIGHAND;
    }
    if flags.contains(CloneFlags::CLONE_SIGHAND) {
        flags |= CloneFlags::CLONE_THREAD;
    }
    if flags.contains(CloneFlags::CLONE_NEWNS) {
        flags |= CloneFlags::CLONE_FS;
    }

    // check_unshare_flags: a thread group, shared signal handlers or a
    // shared address space cannot be given up (only "unshared" when there
    // is nothing to unshare).
    if !UNSHARE_FLAGS.contains(flags) {
        return Err(EINVAL);
    }
    if flags.intersects(CloneFlags::CLONE_THREAD | CloneFlags::CLONE_SIGHAND | CloneFlags::CLONE_VM)
        && has_other_threads(task)
    {
        return Err(EINVAL);
    }
    let (fs, files, sighand, mm, cred, nsproxy, nproc_limit) = {
        let inner = task.inner.lock();
        let nproc = task.thread_group().rlimits().0[RLIMIT_NPROC].cur;
        (
            inner.fs.clone(),
            inner.files.clone(),
            inner.sighand.clone(),
            inner.mm.as_deref().cloned(),
            inner.cred.clone(),
            inner.nsproxy.clone(),
            nproc,
        )
    };
    // Counted without the references just taken above.
    if flags.intersects(CloneFlags::CLONE_SIGHAND | CloneFlags::CLONE_VM)
        && Arc::strong_count(&sighand) > 2
    {
        return Err(EINVAL);
    }
    // Linux `current_is_single_threaded`: another task uses the address
    // space (a CLONE_VM child, a vfork parent). The users counted are
    // tasks only, so the count alone answers (Linux scans every process
    // when its `mm_users`, which also counts temporary references, is
    // above one).
    if flags.contains(CloneFlags::CLONE_VM) && mm.as_ref().is_some_and(|mm| mm.users() > 1) {
        return Err(EINVAL);
    }
    drop((sighand, mm));

    // unshare_fs, unshare_fd: private copies when shared.
    let new_fs = (flags.contains(CloneFlags::CLONE_FS) && Arc::strong_count(&fs) > 2)
        .then(|| Arc::new(spin::Mutex::new(fs.lock().clone())));
    let new_files = match &files {
        Some(files) if flags.contains(CloneFlags::CLONE_FILES) && Arc::strong_count(files) > 2 => {
            Some(Arc::new(spin::Mutex::new(files.lock().clone())))
        }
        _ => None,
    };
    // unshare_userns: root of a new user namespace.
    let new_cred: Option<Cred> = if flags.contains(CloneFlags::CLONE_NEWUSER) {
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
    let new_nsproxy = if flags.intersects(OTHER_NAMESPACES) {
        let user_ns = &new_cred.as_ref().unwrap_or(&cred).user_ns;
        if !new_cred
            .as_ref()
            .unwrap_or(&cred)
            .ns_capable(user_ns, CAP_SYS_ADMIN)
        {
            return Err(EPERM);
        }
        if flags.contains(CloneFlags::CLONE_NEWPID)
            && !Arc::ptr_eq(&nsproxy.pid_ns_for_children, &task.active_pid_ns())
        {
            return Err(EINVAL);
        }
        Some(nsproxy.copy(
            flags,
            &super::fork::NAMESPACE_FLAGS,
            flags.contains(CloneFlags::CLONE_NEWPID),
            user_ns,
        )?)
    } else {
        None
    };

    // Everything built: install it. What it replaces is dropped after the
    // lock, since dropping a last undo list applies it (IPC's locks).
    let mut inner = task.inner.lock();
    let old_undo = if flags.intersects(CloneFlags::CLONE_NEWIPC | CloneFlags::CLONE_SYSVSEM) {
        // Like exit: the undo list is applied if this was its last user.
        inner.sysvsem.take()
    } else {
        None
    };
    let old_nsproxy = new_nsproxy.map(|nsproxy| core::mem::replace(&mut inner.nsproxy, nsproxy));
    let old_fs = new_fs.map(|fs| core::mem::replace(&mut inner.fs, fs));
    let old_files = new_files.and_then(|files| inner.files.replace(files));
    drop(inner);
    drop((old_undo, old_nsproxy, old_fs, old_files));
    if let Some(cred) = new_cred {
        task.commit_creds(cred);
    }
    Ok(())
}
