//! Credentials (Linux `struct cred`): kernel user and group ids, the
//! capability sets and the user namespace they are valid in.

use alloc::sync::Arc;

pub use super::user_ns::UserTaskCount;
use super::user_ns::{init_user_ns, IdKind, UserNamespace};

/// User or group id.
pub type Uid = u32;

/// Capabilities this kernel knows (Linux CAP_LAST_CAP is 40 in 6.x).
pub const CAP_LAST_CAP: u32 = 40;
/// Every capability.
pub const CAP_FULL_SET: u64 = (1 << (CAP_LAST_CAP + 1)) - 1;
pub const CAP_DAC_OVERRIDE: u32 = 1;
pub const CAP_KILL: u32 = 5;
pub const CAP_SETGID: u32 = 6;
pub const CAP_SETUID: u32 = 7;
pub const CAP_SYS_CHROOT: u32 = 18;
pub const CAP_SYS_PTRACE: u32 = 19;
pub const CAP_SYS_ADMIN: u32 = 21;
pub const CAP_SYS_NICE: u32 = 23;
pub const CAP_SYS_RESOURCE: u32 = 24;
pub const CAP_SETFCAP: u32 = 31;
/// The file-system capabilities (Linux `CAP_FS_SET`: CHOWN, DAC_OVERRIDE,
/// DAC_READ_SEARCH, FOWNER, FSETID, LINUX_IMMUTABLE, MKNOD, MAC_OVERRIDE),
/// which follow the fsuid in and out of root.
pub const CAP_FS_SET: u64 = 0b1_1111 | 1 << 9 | 1 << 27 | 1 << 32;

/// The identity a task acts with. Ids are kernel ids (Linux `kuid_t`):
/// `user_ns` translates them to what the task sees.
#[derive(Clone)]
pub struct Cred {
    pub uid: Uid,
    pub euid: Uid,
    pub suid: Uid,
    pub gid: Uid,
    pub egid: Uid,
    pub sgid: Uid,
    /// The ids file permission checks use (Linux `fsuid`, `fsgid`): the
    /// effective ones, unless `setfsuid`/`setfsgid` set them apart.
    pub fsuid: Uid,
    pub fsgid: Uid,
    pub cap_effective: u64,
    pub cap_permitted: u64,
    pub cap_inheritable: u64,
    /// `prctl(PR_SET_KEEPCAPS)`: leaving uid 0 keeps the permitted set.
    pub keep_caps: bool,
    /// The namespace the capabilities apply to and ids are seen in.
    pub user_ns: Arc<UserNamespace>,
    /// Supplementary groups (kernel gids, sorted; Linux `group_info`).
    pub groups: Arc<[Uid]>,
}

impl Cred {
    /// Root with every capability (init's credentials).
    pub fn root() -> Cred {
        Cred {
            uid: 0,
            euid: 0,
            suid: 0,
            gid: 0,
            egid: 0,
            sgid: 0,
            fsuid: 0,
            fsgid: 0,
            cap_effective: CAP_FULL_SET,
            cap_permitted: CAP_FULL_SET,
            cap_inheritable: 0,
            keep_caps: false,
            user_ns: init_user_ns().clone(),
            groups: Arc::from([]),
        }
    }

    /// Whether `gid` is the effective or a supplementary group (Linux
    /// `in_group_p`).
    pub fn in_group(&self, gid: Uid) -> bool {
        self.egid == gid || self.groups.binary_search(&gid).is_ok()
    }

    /// `setgroups`: CAP_SETGID in the credentials' namespace, and a
    /// namespace whose gid map is written and that allows setgroups
    /// (Linux `may_setgroups`, `userns_may_setgroups`).
    pub fn may_setgroups(&self) -> bool {
        self.capable_in_own_ns(CAP_SETGID) && self.user_ns.may_setgroups()
    }

    /// Whether these credentials hold `cap` over namespace `target` (Linux
    /// `cap_capable`): in their own namespace the effective set decides;
    /// over a descendant namespace, its owner (seen from its parent) holds
    /// every capability; over anything else, none.
    pub fn ns_capable(&self, target: &Arc<UserNamespace>, cap: u32) -> bool {
        let mut ns = target;
        loop {
            if Arc::ptr_eq(ns, &self.user_ns) {
                return self.cap_effective & (1 << cap) != 0;
            }
            if ns.level <= self.user_ns.level {
                return false;
            }
            let parent = ns.parent.as_ref().expect("level > 0 has a parent");
            if Arc::ptr_eq(parent, &self.user_ns) && ns.owner == self.euid {
                return true;
            }
            ns = parent;
        }
    }

    /// `cap` over the initial namespace: the whole machine (Linux `capable`).
    pub fn capable(&self, cap: u32) -> bool {
        self.ns_capable(init_user_ns(), cap)
    }

    /// `cap` in the credentials' own namespace (Linux
    /// `ns_capable(current_user_ns(), cap)`).
    pub fn capable_in_own_ns(&self, cap: u32) -> bool {
        self.cap_effective & (1 << cap) != 0
    }

    /// The kernel id of `id` as seen in these credentials' namespace.
    pub fn make_kuid(&self, id: u32) -> Option<Uid> {
        self.user_ns.make_kid(IdKind::Uid, id)
    }

    pub fn make_kgid(&self, id: u32) -> Option<Uid> {
        self.user_ns.make_kid(IdKind::Gid, id)
    }

    /// Kernel uid `kid` as these credentials see it (65534 if unmapped).
    pub fn uid_seen(&self, kid: Uid) -> u32 {
        self.user_ns.id_of_munged(IdKind::Uid, kid)
    }

    pub fn gid_seen(&self, kid: Uid) -> u32 {
        self.user_ns.id_of_munged(IdKind::Gid, kid)
    }

    /// The same ids in new user namespace `ns`, with every capability
    /// there (Linux `set_cred_user_ns`).
    pub fn enter_user_ns(&self, ns: Arc<UserNamespace>) -> Cred {
        Cred {
            cap_effective: CAP_FULL_SET,
            cap_permitted: CAP_FULL_SET,
            cap_inheritable: 0,
            user_ns: ns,
            ..self.clone()
        }
    }

    /// `setuid(uid)`, `uid` as seen in the caller's namespace, with Linux's
    /// rules and capability effects (`__sys_setuid` + `cap_emulate_setxuid`).
    pub fn setuid(&self, uid: Uid) -> Result<Cred, i32> {
        let uid = self.make_kuid(uid).ok_or(crate::errno::EINVAL)?;
        let mut new = self.clone();
        if self.capable_in_own_ns(CAP_SETUID) {
            new.uid = uid;
            new.suid = uid;
        } else if uid != self.uid && uid != self.suid {
            return Err(crate::errno::EPERM);
        }
        new.euid = uid;
        new.fsuid = uid;
        new.emulate_setxuid(self);
        Ok(new)
    }

    /// `setgid(gid)` (`__sys_setgid`).
    pub fn setgid(&self, gid: Uid) -> Result<Cred, i32> {
        let gid = self.make_kgid(gid).ok_or(crate::errno::EINVAL)?;
        let mut new = self.clone();
        if self.capable_in_own_ns(CAP_SETGID) {
            new.gid = gid;
            new.sgid = gid;
        } else if gid != self.gid && gid != self.sgid {
            return Err(crate::errno::EPERM);
        }
        new.egid = gid;
        new.fsgid = gid;
        Ok(new)
    }

    /// `setreuid(ruid, euid)` (`__sys_setreuid`; -1 leaves an id as it
    /// is): without CAP_SETUID the real uid may become the real or
    /// effective one, the effective uid any of the three. The saved uid
    /// follows the effective one when the real uid is set or the effective
    /// one leaves the real one.
    pub fn setreuid(&self, ruid: u32, euid: u32) -> Result<Cred, i32> {
        let (kruid, keuid) = (self.id_arg(ruid, true)?, self.id_arg(euid, true)?);
        let privileged = self.capable_in_own_ns(CAP_SETUID);
        let mut new = self.clone();
        if let Some(uid) = kruid {
            if uid != self.uid && uid != self.euid && !privileged {
                return Err(crate::errno::EPERM);
            }
            new.uid = uid;
        }
        if let Some(uid) = keuid {
            if uid != self.uid && uid != self.euid && uid != self.suid && !privileged {
                return Err(crate::errno::EPERM);
            }
            new.euid = uid;
        }
        if kruid.is_some() || keuid.is_some_and(|uid| uid != self.uid) {
            new.suid = new.euid;
        }
        new.fsuid = new.euid;
        new.emulate_setxuid(self);
        Ok(new)
    }

    /// `setregid(rgid, egid)` (`__sys_setregid`), the same rules with
    /// CAP_SETGID.
    pub fn setregid(&self, rgid: u32, egid: u32) -> Result<Cred, i32> {
        let (krgid, kegid) = (self.id_arg(rgid, false)?, self.id_arg(egid, false)?);
        let privileged = self.capable_in_own_ns(CAP_SETGID);
        let mut new = self.clone();
        if let Some(gid) = krgid {
            if gid != self.gid && gid != self.egid && !privileged {
                return Err(crate::errno::EPERM);
            }
            new.gid = gid;
        }
        if let Some(gid) = kegid {
            if gid != self.gid && gid != self.egid && gid != self.sgid && !privileged {
                return Err(crate::errno::EPERM);
            }
            new.egid = gid;
        }
        if krgid.is_some() || kegid.is_some_and(|gid| gid != self.gid) {
            new.sgid = new.egid;
        }
        new.fsgid = new.egid;
        Ok(new)
    }

    /// `setresuid(ruid, euid, suid)` (`__sys_setresuid`): without
    /// CAP_SETUID each new id must be one of the current three. `None`:
    /// nothing changes (a no-op commits nothing, as on Linux).
    pub fn setresuid(&self, ids: [u32; 3]) -> Result<Option<Cred>, i32> {
        let [r, e, s] = [
            self.id_arg(ids[0], true)?,
            self.id_arg(ids[1], true)?,
            self.id_arg(ids[2], true)?,
        ];
        let current = [self.uid, self.euid, self.suid];
        let unchanged = [r, e, s]
            .iter()
            .zip(current)
            .all(|(id, old)| id.is_none_or(|id| id == old));
        if unchanged && e.is_none_or(|id| id == self.fsuid) {
            return Ok(None);
        }
        let foreign = [r, e, s].iter().flatten().any(|id| !current.contains(id));
        if foreign && !self.capable_in_own_ns(CAP_SETUID) {
            return Err(crate::errno::EPERM);
        }
        let mut new = self.clone();
        new.uid = r.unwrap_or(self.uid);
        new.euid = e.unwrap_or(self.euid);
        new.suid = s.unwrap_or(self.suid);
        new.fsuid = new.euid;
        new.emulate_setxuid(self);
        Ok(Some(new))
    }

    /// `setresgid(rgid, egid, sgid)` (`__sys_setresgid`), with CAP_SETGID.
    pub fn setresgid(&self, ids: [u32; 3]) -> Result<Option<Cred>, i32> {
        let [r, e, s] = [
            self.id_arg(ids[0], false)?,
            self.id_arg(ids[1], false)?,
            self.id_arg(ids[2], false)?,
        ];
        let current = [self.gid, self.egid, self.sgid];
        let unchanged = [r, e, s]
            .iter()
            .zip(current)
            .all(|(id, old)| id.is_none_or(|id| id == old));
        if unchanged && e.is_none_or(|id| id == self.fsgid) {
            return Ok(None);
        }
        let foreign = [r, e, s].iter().flatten().any(|id| !current.contains(id));
        if foreign && !self.capable_in_own_ns(CAP_SETGID) {
            return Err(crate::errno::EPERM);
        }
        let mut new = self.clone();
        new.gid = r.unwrap_or(self.gid);
        new.egid = e.unwrap_or(self.egid);
        new.sgid = s.unwrap_or(self.sgid);
        new.fsgid = new.egid;
        Ok(Some(new))
    }

    /// `setfsuid(fsuid)` (`__sys_setfsuid`): the new credentials, if the
    /// id is mapped, differs from the current fsuid and is one of the four
    /// uids or the caller has CAP_SETUID; the call itself only ever
    /// returns the old fsuid. The fsuid leaving root drops the file-system
    /// capabilities from the effective set, coming back raises them from
    /// the permitted one (Linux `cap_task_fix_setuid`, LSM_SETID_FS).
    pub fn setfsuid(&self, id: u32) -> Option<Cred> {
        let uid = self.make_kuid(id)?;
        let allowed = [self.uid, self.euid, self.suid, self.fsuid].contains(&uid)
            || self.capable_in_own_ns(CAP_SETUID);
        if !allowed || uid == self.fsuid {
            return None;
        }
        let mut new = self.clone();
        new.fsuid = uid;
        let root = self.make_kuid(0);
        if Some(self.fsuid) == root && Some(uid) != root {
            new.cap_effective &= !CAP_FS_SET;
        } else if Some(self.fsuid) != root && Some(uid) == root {
            new.cap_effective |= new.cap_permitted & CAP_FS_SET;
        }
        Some(new)
    }

    /// `setfsgid(fsgid)` (`__sys_setfsgid`): the same with CAP_SETGID and
    /// no capability change.
    pub fn setfsgid(&self, id: u32) -> Option<Cred> {
        let gid = self.make_kgid(id)?;
        let allowed = [self.gid, self.egid, self.sgid, self.fsgid].contains(&gid)
            || self.capable_in_own_ns(CAP_SETGID);
        if !allowed || gid == self.fsgid {
            return None;
        }
        Some(Cred {
            fsgid: gid,
            ..self.clone()
        })
    }

    /// An id argument of the set*id calls: `None` for -1 (unchanged), the
    /// kernel id, or EINVAL if the namespace does not map it.
    fn id_arg(&self, id: u32, uid: bool) -> Result<Option<Uid>, i32> {
        if id == u32::MAX {
            return Ok(None);
        }
        let kid = if uid {
            self.make_kuid(id)
        } else {
            self.make_kgid(id)
        };
        kid.map(Some).ok_or(crate::errno::EINVAL)
    }

    /// Losing root (uid 0 of the namespace): when none of the user ids
    /// stays root, the permitted and effective sets are cleared; an
    /// effective id leaving root clears the effective set (Linux
    /// `cap_emulate_setxuid`, no SECURE_NO_SETUID_FIXUP).
    fn emulate_setxuid(&mut self, old: &Cred) {
        let root = old.make_kuid(0);
        let is_root = |id: Uid| Some(id) == root;
        let old_had_root = is_root(old.uid) || is_root(old.euid) || is_root(old.suid);
        let new_has_root = is_root(self.uid) || is_root(self.euid) || is_root(self.suid);
        if old_had_root && !new_has_root {
            if !self.keep_caps {
                self.cap_permitted = 0;
            }
            self.cap_effective = 0;
        }
        if is_root(old.euid) && !is_root(self.euid) {
            self.cap_effective = 0;
        }
        if !is_root(old.euid) && is_root(self.euid) {
            self.cap_effective = self.cap_permitted;
        }
    }

    /// Whether these capabilities are no more than `set`'s (Linux
    /// `cred_cap_issubset`): in the same namespace, a permitted subset; in
    /// a descendant namespace owned by `set`'s euid, always.
    pub fn caps_subset_of(&self, set: &Cred) -> bool {
        if Arc::ptr_eq(&self.user_ns, &set.user_ns) {
            return self.cap_permitted & !set.cap_permitted == 0;
        }
        let mut ns = &self.user_ns;
        while let Some(parent) = &ns.parent {
            if Arc::ptr_eq(parent, &set.user_ns) && ns.owner == set.euid {
                return true;
            }
            ns = parent;
        }
        false
    }

    /// `capset`: the new sets may only shrink what is permitted.
    pub fn capset(&self, effective: u64, permitted: u64, inheritable: u64) -> Result<Cred, i32> {
        let (effective, permitted, inheritable) = (
            effective & CAP_FULL_SET,
            permitted & CAP_FULL_SET,
            inheritable & CAP_FULL_SET,
        );
        if permitted & !self.cap_permitted != 0
            || effective & !permitted != 0
            || inheritable & !(self.cap_inheritable | self.cap_permitted) != 0
        {
            return Err(crate::errno::EPERM);
        }
        Ok(Cred {
            cap_effective: effective,
            cap_permitted: permitted,
            cap_inheritable: inheritable,
            ..self.clone()
        })
    }
}

/// Linux `ptrace_may_access(task, PTRACE_MODE_READ_REALCREDS)`: a thread
/// of the same process; else the caller's real uid and gid must be all of
/// the target's uids and gids, or it has CAP_SYS_PTRACE over the target's
/// namespace; and an undumpable target needs CAP_SYS_PTRACE too.
pub fn ptrace_may_read(current: &super::task::Task, task: &super::task::Task) -> bool {
    if core::ptr::eq(
        alloc::sync::Arc::as_ptr(current.thread_group()),
        alloc::sync::Arc::as_ptr(task.thread_group()),
    ) {
        return true;
    }
    let caller = current.inner.lock().cred.clone();
    let (target, dumpable) = {
        let inner = task.inner.lock();
        let dumpable = inner
            .mm
            .as_ref()
            .is_none_or(|mm| mm.dumpable.load(core::sync::atomic::Ordering::Relaxed));
        (inner.cred.clone(), dumpable)
    };
    let same_ids = [target.uid, target.euid, target.suid] == [caller.uid; 3]
        && [target.gid, target.egid, target.sgid] == [caller.gid; 3];
    let privileged = caller.ns_capable(&target.user_ns, CAP_SYS_PTRACE);
    privileged || (same_ids && dumpable)
}
