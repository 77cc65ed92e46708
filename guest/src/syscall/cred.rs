//! Identity and limits: get/set user and group ids, capabilities,
//! resource limits.

use core::sync::atomic::Ordering;

use super::{current_mm, Args, SysResult};
use crate::errno::{EFAULT, EINVAL, EPERM, ESRCH};
use crate::process::cred::{Cred, CAP_SYS_RESOURCE};
use crate::process::rlimit::{Rlimit, RLIM_NLIMITS};
use crate::sched;

/// The ids are kernel ids: each call reports them as the caller's user
/// namespace sees them (65534 when unmapped, Linux `from_kuid_munged`).
pub fn getuid() -> SysResult {
    let cred = sched::current().cred();
    Ok(u64::from(cred.uid_seen(cred.uid)))
}

pub fn geteuid() -> SysResult {
    let cred = sched::current().cred();
    Ok(u64::from(cred.uid_seen(cred.euid)))
}

pub fn getgid() -> SysResult {
    let cred = sched::current().cred();
    Ok(u64::from(cred.gid_seen(cred.gid)))
}

pub fn getegid() -> SysResult {
    let cred = sched::current().cred();
    Ok(u64::from(cred.gid_seen(cred.egid)))
}

/// `getresuid(ruid, euid, suid)` / `getresgid`: three u32s written to user memory.
pub fn getresuid(a: Args, gids: bool) -> SysResult {
    let cred = sched::current().cred();
    let ids = if gids {
        [cred.gid, cred.egid, cred.sgid].map(|id| cred.gid_seen(id))
    } else {
        [cred.uid, cred.euid, cred.suid].map(|id| cred.uid_seen(id))
    };
    let mm = current_mm()?;
    for (address, id) in a.0[..3].iter().zip(ids) {
        mm.copy_to_user(*address, &id.to_le_bytes())?;
    }
    Ok(0)
}

/// Most supplementary groups (`NGROUPS_MAX`).
const NGROUPS_MAX: u64 = 65536;

/// `getgroups(size, list)`: the count if `size` is 0; EINVAL if the
/// groups do not fit; the gids as the caller's namespace sees them.
pub fn getgroups(a: Args) -> SysResult {
    let [size, list, ..] = a.0;
    let size = size as i32;
    if size < 0 {
        return Err(EINVAL);
    }
    let cred = sched::current().cred();
    let count = cred.groups.len();
    if size == 0 {
        return Ok(count as u64);
    }
    if (size as usize) < count {
        return Err(EINVAL);
    }
    let mut bytes = alloc::vec::Vec::with_capacity(count * 4);
    for &gid in cred.groups.iter() {
        bytes.extend_from_slice(&cred.gid_seen(gid).to_le_bytes());
    }
    current_mm()?.copy_to_user(list, &bytes)?;
    Ok(count as u64)
}

/// `setgroups(size, list)` (Linux order: EPERM unless `may_setgroups`,
/// EINVAL past NGROUPS_MAX, EFAULT, EINVAL for a gid the namespace does
/// not map); the groups are kept sorted.
pub fn setgroups(a: Args) -> SysResult {
    let [size, list, ..] = a.0;
    let task = sched::current();
    let cred = task.cred();
    if !cred.may_setgroups() {
        return Err(EPERM);
    }
    let size = u64::from(size as u32);
    if size > NGROUPS_MAX {
        return Err(EINVAL);
    }
    let mut bytes = alloc::vec![0u8; size as usize * 4];
    current_mm()?
        .copy_from_user(list, &mut bytes)
        .map_err(|_| EFAULT)?;
    let mut groups = bytes
        .chunks(4)
        .map(|c| cred.make_kgid(u32::from_le_bytes(c.try_into().expect("4 bytes"))))
        .collect::<Option<alloc::vec::Vec<u32>>>()
        .ok_or(EINVAL)?;
    groups.sort_unstable();
    let new = Cred {
        groups: alloc::sync::Arc::from(groups),
        ..task.cred()
    };
    task.commit_creds(new);
    Ok(0)
}

pub fn setuid(a: Args) -> SysResult {
    let task = sched::current();
    let new = task.cred().setuid(a.0[0] as u32)?;
    task.commit_creds(new);
    Ok(0)
}

pub fn setgid(a: Args) -> SysResult {
    let task = sched::current();
    let new = task.cred().setgid(a.0[0] as u32)?;
    task.commit_creds(new);
    Ok(0)
}

/// `setreuid(ruid, euid)`; `setregid` with `gids` (ids are `uid_t`: the
/// registers' upper halves do not count).
pub fn setreuid(a: Args, gids: bool) -> SysResult {
    let (r, e) = (a.0[0] as u32, a.0[1] as u32);
    let task = sched::current();
    let cred = task.cred();
    let new = if gids {
        cred.setregid(r, e)?
    } else {
        cred.setreuid(r, e)?
    };
    task.commit_creds(new);
    Ok(0)
}

/// `setresuid(ruid, euid, suid)`; `setresgid` with `gids`.
pub fn setresuid(a: Args, gids: bool) -> SysResult {
    let ids = [a.0[0] as u32, a.0[1] as u32, a.0[2] as u32];
    let task = sched::current();
    let cred = task.cred();
    let new = if gids {
        cred.setresgid(ids)?
    } else {
        cred.setresuid(ids)?
    };
    if let Some(new) = new {
        task.commit_creds(new);
    }
    Ok(0)
}

/// `setfsuid(fsuid)`; `setfsgid` with `gids`: returns the old id as the
/// caller's namespace sees it, changed or not (never an errno).
pub fn setfsuid(a: Args, gids: bool) -> SysResult {
    let id = a.0[0] as u32;
    let task = sched::current();
    let cred = task.cred();
    let (old, new) = if gids {
        (cred.gid_seen(cred.fsgid), cred.setfsgid(id))
    } else {
        (cred.uid_seen(cred.fsuid), cred.setfsuid(id))
    };
    if let Some(new) = new {
        task.commit_creds(new);
    }
    Ok(u64::from(old))
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// Reads the capget/capset header; an unknown version gets the preferred
/// one written back and EINVAL, as Linux does.
fn cap_header(address: u64) -> Result<i32, i32> {
    let mm = current_mm()?;
    let mut header = [0u8; 8];
    mm.copy_from_user(address, &mut header)
        .map_err(|_| EFAULT)?;
    let version = u32::from_le_bytes(header[..4].try_into().expect("4 bytes"));
    if version != LINUX_CAPABILITY_VERSION_3 {
        mm.copy_to_user(address, &LINUX_CAPABILITY_VERSION_3.to_le_bytes())?;
        return Err(EINVAL);
    }
    let pid = i32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
    if pid < 0 {
        return Err(EINVAL);
    }
    Ok(pid)
}

pub fn capget(a: Args) -> SysResult {
    let [header, data, ..] = a.0;
    let pid = cap_header(header)?;
    let task = if pid == 0 {
        sched::current()
    } else {
        crate::process::find(pid as u32).ok_or(ESRCH)?
    };
    let cred = task.cred();
    if data == 0 {
        return Ok(0);
    }
    let mut bytes = [0u8; 24];
    for (i, set) in [cred.cap_effective, cred.cap_permitted, cred.cap_inheritable]
        .iter()
        .enumerate()
    {
        bytes[i * 4..i * 4 + 4].copy_from_slice(&(*set as u32).to_le_bytes());
        bytes[12 + i * 4..12 + i * 4 + 4].copy_from_slice(&((*set >> 32) as u32).to_le_bytes());
    }
    current_mm()?.copy_to_user(data, &bytes)?;
    Ok(0)
}

pub fn capset(a: Args) -> SysResult {
    let [header, data, ..] = a.0;
    let pid = cap_header(header)?;
    let task = sched::current();
    if pid != 0 && pid as u32 != task.pid {
        return Err(EPERM);
    }
    let mut bytes = [0u8; 24];
    current_mm()?
        .copy_from_user(data, &mut bytes)
        .map_err(|_| EFAULT)?;
    let word = |i: usize| {
        u64::from(u32::from_le_bytes(
            bytes[i * 4..i * 4 + 4].try_into().expect("4 bytes"),
        ))
    };
    let set = |i: usize| word(i) | (word(3 + i) << 32);
    let new = task.cred().capset(set(0), set(1), set(2))?;
    task.commit_creds(new);
    Ok(0)
}

fn rlimit_to_bytes(limit: Rlimit) -> [u8; 16] {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&limit.cur.to_le_bytes());
    bytes[8..].copy_from_slice(&limit.max.to_le_bytes());
    bytes
}

/// `prlimit64(pid, resource, new, old)`; getrlimit/setrlimit are the same
/// on the calling process.
pub fn prlimit64(a: Args) -> SysResult {
    let [pid, resource, new_address, old_address, ..] = a.0;
    // An `unsigned int`: the register's upper half does not count.
    let resource = resource as u32 as usize;
    let current = sched::current();
    let mm = current_mm()?;
    // Linux reads the new limit first, then looks for the task, then
    // checks the resource (`do_prlimit`).
    let new = if new_address != 0 {
        let mut bytes = [0u8; 16];
        mm.copy_from_user(new_address, &mut bytes)
            .map_err(|_| EFAULT)?;
        Some(Rlimit {
            cur: u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")),
            max: u64::from_le_bytes(bytes[8..].try_into().expect("8 bytes")),
        })
    } else {
        None
    };
    let pid = pid as u32;
    let task = if pid == 0 || pid == current.tgid {
        current.clone()
    } else {
        crate::process::find(pid).ok_or(ESRCH)?
    };
    let caller = current.cred();
    if !core::ptr::eq(&*task, &*current) {
        let target = task.cred();
        let same_user =
            caller.uid == target.uid && caller.uid == target.euid && caller.uid == target.suid;
        let same_group =
            caller.gid == target.gid && caller.gid == target.egid && caller.gid == target.sgid;
        let same_ids = same_user && same_group;
        if !same_ids && !caller.ns_capable(&target.user_ns, CAP_SYS_RESOURCE) {
            return Err(EPERM);
        }
    }
    if resource >= RLIM_NLIMITS || new.is_some_and(|limit| limit.cur > limit.max) {
        return Err(EINVAL);
    }
    let mut rlimits = task.thread_group().rlimits();
    let old = rlimits.0[resource];
    if let Some(limit) = new {
        if limit.max > old.max && !caller.capable(CAP_SYS_RESOURCE) {
            return Err(EPERM);
        }
        rlimits.0[resource] = limit;
    }
    drop(rlimits);
    if old_address != 0 {
        mm.copy_to_user(old_address, &rlimit_to_bytes(old))?;
    }
    Ok(0)
}

/// `getrlimit(resource, rlim)`: as Linux, the limit is looked up first
/// (EINVAL), then stored: a NULL `rlim` is EFAULT, not "don't store".
pub fn getrlimit(a: Args) -> SysResult {
    let [resource, address, ..] = a.0;
    prlimit64(Args([0, resource, 0, address, 0, 0]))?;
    if address == 0 {
        return Err(EFAULT);
    }
    Ok(0)
}

/// `setrlimit(resource, rlim)`: the new limit is read first, so a NULL
/// `rlim` is EFAULT before anything else is checked.
pub fn setrlimit(a: Args) -> SysResult {
    let [resource, address, ..] = a.0;
    if address == 0 {
        return Err(EFAULT);
    }
    prlimit64(Args([0, resource, address, 0, 0, 0]))
}

const PR_GET_DUMPABLE: u64 = 3;
const PR_SET_DUMPABLE: u64 = 4;
const PR_GET_KEEPCAPS: u64 = 7;
const PR_SET_KEEPCAPS: u64 = 8;
const PR_SET_NAME: u64 = 15;
const PR_GET_NAME: u64 = 16;

/// `prctl`: the dumpable flag, the keep-capabilities switch, and the
/// calling thread's name (`comm`: PR_SET_NAME takes up to 15 bytes of a
/// string, PR_GET_NAME gives 16 with the NUL; EFAULT for a bad pointer).
pub fn prctl(a: Args) -> SysResult {
    let [option, arg2, ..] = a.0;
    let task = sched::current();
    match option {
        PR_GET_DUMPABLE => Ok(u64::from(task.is_dumpable())),
        PR_SET_DUMPABLE if arg2 <= 1 => {
            if let Some(mm) = task.mm() {
                mm.dumpable.store(arg2 == 1, Ordering::Relaxed);
            }
            Ok(0)
        }
        PR_GET_KEEPCAPS => Ok(u64::from(task.cred().keep_caps)),
        PR_SET_KEEPCAPS if arg2 <= 1 => {
            let new = Cred {
                keep_caps: arg2 == 1,
                ..task.cred()
            };
            task.commit_creds(new);
            Ok(0)
        }
        PR_SET_NAME => {
            let name = read_comm(arg2)?;
            task.set_comm(&name);
            Ok(0)
        }
        PR_GET_NAME => {
            current_mm()?.copy_to_user(arg2, &task.comm())?;
            Ok(0)
        }
        _ => Err(EINVAL),
    }
}

/// Up to 15 bytes of the string at `address` (Linux `strncpy_from_user`
/// into a `comm`), never reading past its NUL's page.
fn read_comm(address: u64) -> Result<alloc::vec::Vec<u8>, i32> {
    let mm = current_mm()?;
    let mut name = alloc::vec::Vec::new();
    let mut at = address;
    while name.len() < 15 {
        let chunk_len = ((4096 - at % 4096) as usize).min(15 - name.len());
        let mut chunk = [0u8; 15];
        mm.copy_from_user(at, &mut chunk[..chunk_len])?;
        if let Some(end) = chunk[..chunk_len].iter().position(|&b| b == 0) {
            name.extend_from_slice(&chunk[..end]);
            return Ok(name);
        }
        name.extend_from_slice(&chunk[..chunk_len]);
        at += chunk_len as u64;
    }
    Ok(name)
}
