//! Credentials (Linux `struct cred`): user and group ids and capability
//! sets, and the per-user task counts that RLIMIT_NPROC is checked against
//! (Linux ucounts).

use alloc::collections::BTreeMap;

use spin::Mutex;

/// User or group id.
pub type Uid = u32;

/// Capabilities this kernel knows (Linux CAP_LAST_CAP is 40 in 6.x).
pub const CAP_LAST_CAP: u32 = 40;
/// Every capability.
pub const CAP_FULL_SET: u64 = (1 << (CAP_LAST_CAP + 1)) - 1;
pub const CAP_SETGID: u32 = 6;
pub const CAP_SETUID: u32 = 7;
pub const CAP_SYS_CHROOT: u32 = 18;
pub const CAP_SYS_ADMIN: u32 = 21;
pub const CAP_SYS_NICE: u32 = 23;
pub const CAP_SYS_RESOURCE: u32 = 24;

/// The identity a task acts with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cred {
    pub uid: Uid,
    pub euid: Uid,
    pub suid: Uid,
    pub gid: Uid,
    pub egid: Uid,
    pub sgid: Uid,
    pub cap_effective: u64,
    pub cap_permitted: u64,
    pub cap_inheritable: u64,
    /// `prctl(PR_SET_KEEPCAPS)`: leaving uid 0 keeps the permitted set.
    pub keep_caps: bool,
}

impl Cred {
    /// Root with every capability (init's credentials).
    pub const fn root() -> Cred {
        Cred {
            uid: 0,
            euid: 0,
            suid: 0,
            gid: 0,
            egid: 0,
            sgid: 0,
            cap_effective: CAP_FULL_SET,
            cap_permitted: CAP_FULL_SET,
            cap_inheritable: 0,
            keep_caps: false,
        }
    }

    /// Whether the effective set holds `cap` (Linux `capable`, in the
    /// initial user namespace).
    pub fn capable(&self, cap: u32) -> bool {
        self.cap_effective & (1 << cap) != 0
    }

    /// `setuid(uid)`, with Linux's rules and capability effects
    /// (`__sys_setuid` + `cap_emulate_setxuid`).
    pub fn setuid(&self, uid: Uid) -> Result<Cred, i32> {
        let mut new = *self;
        if self.capable(CAP_SETUID) {
            new.uid = uid;
            new.suid = uid;
        } else if uid != self.uid && uid != self.suid {
            return Err(crate::errno::EPERM);
        }
        new.euid = uid;
        new.emulate_setxuid(self);
        Ok(new)
    }

    /// `setgid(gid)` (`__sys_setgid`).
    pub fn setgid(&self, gid: Uid) -> Result<Cred, i32> {
        let mut new = *self;
        if self.capable(CAP_SETGID) {
            new.gid = gid;
            new.sgid = gid;
        } else if gid != self.gid && gid != self.sgid {
            return Err(crate::errno::EPERM);
        }
        new.egid = gid;
        Ok(new)
    }

    /// Losing root: when none of the user ids stays 0, the permitted and
    /// effective sets are cleared; an effective id leaving 0 clears the
    /// effective set (Linux `cap_emulate_setxuid`, no SECURE_NO_SETUID_FIXUP).
    fn emulate_setxuid(&mut self, old: &Cred) {
        let old_had_root = old.uid == 0 || old.euid == 0 || old.suid == 0;
        let new_has_root = self.uid == 0 || self.euid == 0 || self.suid == 0;
        if old_had_root && !new_has_root {
            if !self.keep_caps {
                self.cap_permitted = 0;
            }
            self.cap_effective = 0;
        }
        if old.euid == 0 && self.euid != 0 {
            self.cap_effective = 0;
        }
        if old.euid != 0 && self.euid == 0 {
            self.cap_effective = self.cap_permitted;
        }
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
            ..*self
        })
    }
}

/// Tasks per real user id (Linux `ucounts`, UCOUNT_RLIMIT_NPROC).
static USER_TASKS: Mutex<BTreeMap<Uid, u64>> = Mutex::new(BTreeMap::new());

/// One task counted against its real user id; dropping it uncounts.
#[derive(Debug)]
pub struct UserTaskCount {
    uid: Uid,
}

impl UserTaskCount {
    /// Counts one more task for `uid` (Linux `inc_rlimit_ucounts`).
    pub fn charge(uid: Uid) -> UserTaskCount {
        *USER_TASKS.lock().entry(uid).or_insert(0) += 1;
        UserTaskCount { uid }
    }
}

impl Drop for UserTaskCount {
    fn drop(&mut self) {
        let mut counts = USER_TASKS.lock();
        if let Some(count) = counts.get_mut(&self.uid) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.uid);
            }
        }
    }
}

/// Tasks counted for `uid`.
pub fn user_tasks(uid: Uid) -> u64 {
    USER_TASKS.lock().get(&uid).copied().unwrap_or(0)
}

/// Every user with tasks, with the count.
pub fn all_user_tasks() -> alloc::vec::Vec<(Uid, u64)> {
    USER_TASKS
        .lock()
        .iter()
        .map(|(&uid, &count)| (uid, count))
        .collect()
}
