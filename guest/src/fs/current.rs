//! The calling task's view of the file system: its `fs_struct` and the
//! credentials permission checks use.

use alloc::sync::Arc;

use spin::Mutex;

use super::permission::{Access, OwnerMapped};
use crate::process::fs_struct::FsStruct;
use crate::process::user_ns::IdKind;
use crate::sched;

/// The current task's file-system context.
pub fn current_fs() -> Arc<Mutex<FsStruct>> {
    sched::current().fs_struct()
}

/// What the current task's credentials allow (its file-system ids).
pub fn current_access() -> Access {
    let cred = sched::current().cred();
    let owner_mapped: OwnerMapped = if cred.user_ns.level == 0 {
        None
    } else {
        let ns = cred.user_ns.clone();
        Some(Arc::new(move |uid, gid| {
            ns.id_of(IdKind::Uid, uid).is_some() && ns.id_of(IdKind::Gid, gid).is_some()
        }))
    };
    Access {
        fsuid: cred.fsuid,
        fsgid: cred.fsgid,
        groups: (!cred.groups.is_empty()).then(|| cred.groups.clone()),
        caps: cred.cap_effective,
        owner_mapped,
    }
}

/// The same with the real ids, as `access`/`faccessat` check (Linux
/// `access_override_creds`): a real uid that is not its user namespace's
/// root has no capabilities; that root has its permitted ones (even when
/// the effective uid, not being 0, has none in effect).
pub fn current_real_access() -> Access {
    let cred = sched::current().cred();
    let mut access = current_access();
    access.fsuid = cred.uid;
    access.fsgid = cred.gid;
    access.caps = if cred.make_kuid(0) == Some(cred.uid) {
        cred.cap_permitted
    } else {
        0
    };
    access
}

/// The kernel ids a `chown(user, group)` asks for, as the caller's user
/// namespace maps them (Linux `make_kuid`/`make_kgid` in `chown_common`):
/// -1 is `None`, "unchanged"; an id the namespace does not map is EINVAL.
pub fn chown_ids(user: u32, group: u32) -> Result<(Option<u32>, Option<u32>), i32> {
    let cred = sched::current().cred();
    let uid = match user {
        u32::MAX => None,
        id => Some(cred.make_kuid(id).ok_or(crate::errno::EINVAL)?),
    };
    let gid = match group {
        u32::MAX => None,
        id => Some(cred.make_kgid(id).ok_or(crate::errno::EINVAL)?),
    };
    Ok((uid, gid))
}
