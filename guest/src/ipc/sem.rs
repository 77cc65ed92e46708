//! Semaphore sets as kernel objects: a namespace's id table (`semget`),
//! one lock and wait queue per set (`semop` sleeps there), permissions,
//! and undo lists (`SEM_UNDO`): shared with `CLONE_SYSVSEM`, applied when
//! the last task holding one exits.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use spin::Mutex;

use super::sem_array::{Sem, SemArray, SEMMSL};
use crate::errno::{EACCES, EEXIST, EINVAL, ENOENT, ENOMEM, ENOSPC, EPERM};
use crate::process::cred::{Cred, CAP_SYS_ADMIN};
use crate::process::user_ns::UserNamespace;
use crate::sched::wait::WaitQueue;

/// `IPC_PRIVATE`: always a new set.
pub const IPC_PRIVATE: i32 = 0;
pub const IPC_CREAT: i32 = 0o1000;
pub const IPC_EXCL: i32 = 0o2000;
/// Most sets per namespace (`SEMMNI`).
pub const SEMMNI: usize = 32000;
/// Most semaphores per namespace, all sets together (`SEMMNS`).
pub const SEMMNS: usize = SEMMNI * SEMMSL;
/// Linux `IPCMNI`: an id is `seq * IPCMNI + index`.
const IPCMNI: i32 = 32768;
/// `CAP_IPC_OWNER`: bypasses the permission bits.
const CAP_IPC_OWNER: u32 = 15;

/// Access a caller asks for (the `S_IRUGO`/`S_IWUGO` bits of `ipcperms`).
pub const READ: u32 = 0o4;
pub const ALTER: u32 = 0o2;

/// Linux `ktime_get_real_seconds` (`sem_otime`, `sem_ctime`): the guest
/// has no wall clock, so its realtime clock counts from boot, as
/// `clock_gettime` reports it.
pub fn real_seconds() -> i64 {
    (crate::time::uptime_ns() / 1_000_000_000) as i64
}

/// Owner and creator of a set, and the mode's low 9 bits (the parts of
/// Linux `kern_ipc_perm` that IPC_SET may change, and what it checks).
#[derive(Clone, Copy, Debug)]
pub struct IpcPerm {
    pub uid: u32,
    pub gid: u32,
    pub cuid: u32,
    pub cgid: u32,
    pub mode: u32,
}

/// One semaphore set.
pub struct SemSet {
    pub id: i32,
    pub key: i32,
    /// Changed by IPC_SET; copy it out with [`SemSet::perm`].
    perm: Mutex<IpcPerm>,
    pub array: Mutex<SemArray>,
    /// `semop` callers waiting for a value to change, woken on every change.
    pub waiters: WaitQueue,
    /// Set by IPC_RMID: sleepers return EIDRM, lookups fail.
    pub removed: core::sync::atomic::AtomicBool,
    /// The user namespace owning the set's IPC namespace: capabilities
    /// over it override the permissions.
    owner_ns: Arc<UserNamespace>,
}

impl SemSet {
    pub fn perm(&self) -> IpcPerm {
        *self.perm.lock()
    }

    /// The sequence number in the id (`ipc_perm.seq`).
    pub fn seq(&self) -> i32 {
        self.id / IPCMNI
    }

    /// Linux `ipcperms`: owner, group or other bits; CAP_IPC_OWNER passes.
    pub fn permits(&self, cred: &Cred, want: u32) -> bool {
        let perm = self.perm();
        let granted = if cred.euid == perm.uid || cred.euid == perm.cuid {
            perm.mode >> 6
        } else if cred.in_group(perm.gid) || cred.in_group(perm.cgid) {
            perm.mode >> 3
        } else {
            perm.mode
        };
        want & !granted & 0o7 == 0 || cred.ns_capable(&self.owner_ns, CAP_IPC_OWNER)
    }

    /// Owner, creator or CAP_SYS_ADMIN (IPC_RMID, IPC_SET).
    pub fn owned_by(&self, cred: &Cred) -> bool {
        let perm = self.perm();
        cred.euid == perm.uid
            || cred.euid == perm.cuid
            || cred.ns_capable(&self.owner_ns, CAP_SYS_ADMIN)
    }

    /// IPC_SET (Linux `ipc_update_perm`, then `sem_ctime`): the new owner
    /// and the mode's low 9 bits. The caller has checked ownership and
    /// the ids' validity.
    pub fn set_perm(&self, uid: u32, gid: u32, mode: u32) {
        {
            let mut perm = self.perm.lock();
            perm.uid = uid;
            perm.gid = gid;
            perm.mode = mode & 0o777;
        }
        self.array.lock().ctime = real_seconds();
    }

    pub fn is_removed(&self) -> bool {
        self.removed.load(Ordering::Acquire)
    }
}

/// Heap a set takes in the namespace's tree besides the set itself (its
/// share of a tree node, and of the free-index set).
const SET_TREE_BYTES: usize = 64;

/// A namespace's semaphore sets (Linux `ipc_ids` for `sem_ids`).
pub struct SemIds {
    /// The user namespace owning this IPC namespace.
    owner_ns: Arc<UserNamespace>,
    sets: BTreeMap<i32, Arc<SemSet>>,
    /// Indices (id % IPCMNI) given back by removed sets, below
    /// `next_index`; the lowest free index is the first of these or
    /// `next_index` (Linux's `idr_alloc` gives the lowest), found without
    /// scanning the sets.
    free_indices: BTreeSet<i32>,
    /// Indices from here up have never been used.
    next_index: i32,
    seq: i32,
    /// Semaphores in all sets (`used_sems`).
    used_sems: usize,
}

/// What IPC_INFO and SEM_INFO report about a namespace's sets.
pub struct SemUsage {
    /// Sets in use (`in_use`).
    pub sets: usize,
    /// Semaphores in them (`used_sems`).
    pub sems: usize,
    /// The highest index in use, -1 if none (Linux `ipc_get_maxidx`).
    pub max_index: i32,
}

impl SemIds {
    /// No sets, in an IPC namespace owned by `owner_ns`.
    pub fn new(owner_ns: &Arc<UserNamespace>) -> SemIds {
        SemIds {
            owner_ns: owner_ns.clone(),
            sets: BTreeMap::new(),
            free_indices: BTreeSet::new(),
            next_index: 0,
            seq: 0,
            used_sems: 0,
        }
    }

    /// Linux `ksys_semget`.
    pub fn semget(&mut self, key: i32, nsems: i32, flags: i32, cred: &Cred) -> Result<i32, i32> {
        if !(0..=SEMMSL as i32).contains(&nsems) {
            return Err(EINVAL);
        }
        if key != IPC_PRIVATE {
            if let Some(set) = self.sets.values().find(|s| s.key == key) {
                if flags & IPC_CREAT != 0 && flags & IPC_EXCL != 0 {
                    return Err(EEXIST);
                }
                if !set.permits(
                    cred,
                    (flags as u32 >> 6) & 0o7 | (flags as u32 >> 3) & 0o7 | flags as u32 & 0o7,
                ) {
                    return Err(EACCES);
                }
                if nsems as usize > set.array.lock().len() {
                    return Err(EINVAL);
                }
                return Ok(set.id);
            }
            if flags & IPC_CREAT == 0 {
                return Err(ENOENT);
            }
        }
        if nsems == 0 {
            return Err(EINVAL);
        }
        if self.used_sems + nsems as usize > SEMMNS || self.sets.len() >= SEMMNI {
            return Err(ENOSPC);
        }
        // Linux `newary`: ENOMEM when the set cannot be allocated; here the
        // heap also keeps its reserve for what nobody can refuse.
        let bytes = core::mem::size_of::<SemSet>()
            + SET_TREE_BYTES
            + nsems as usize * core::mem::size_of::<Sem>();
        if !crate::mm::heap::has_room(bytes) {
            return Err(ENOMEM);
        }
        let mut array = SemArray::new(nsems as usize)?;
        let index = match self.free_indices.pop_first() {
            Some(index) => index,
            None if self.next_index < IPCMNI => {
                self.next_index += 1;
                self.next_index - 1
            }
            None => return Err(ENOSPC),
        };
        let id = self.seq * IPCMNI + index;
        self.seq = (self.seq + 1) % (i32::MAX / IPCMNI);
        array.ctime = real_seconds();
        self.used_sems += nsems as usize;
        self.sets.insert(
            id,
            Arc::new(SemSet {
                id,
                key,
                perm: Mutex::new(IpcPerm {
                    uid: cred.euid,
                    gid: cred.egid,
                    cuid: cred.euid,
                    cgid: cred.egid,
                    mode: flags as u32 & 0o777,
                }),
                array: Mutex::new(array),
                waiters: WaitQueue::new(),
                removed: core::sync::atomic::AtomicBool::new(false),
                owner_ns: self.owner_ns.clone(),
            }),
        );
        Ok(id)
    }

    /// The live set `id` (Linux: a bad id is EINVAL).
    pub fn find(&self, id: i32) -> Result<Arc<SemSet>, i32> {
        self.sets.get(&id).cloned().ok_or(EINVAL)
    }

    /// The set at `index` whatever its sequence number (SEM_STAT; Linux
    /// keeps only the index bits of the argument).
    pub fn find_index(&self, index: i32) -> Result<Arc<SemSet>, i32> {
        let index = index % IPCMNI;
        self.sets
            .values()
            .find(|s| s.id % IPCMNI == index)
            .cloned()
            .ok_or(EINVAL)
    }

    pub fn usage(&self) -> SemUsage {
        SemUsage {
            sets: self.sets.len(),
            sems: self.used_sems,
            max_index: self.sets.keys().map(|id| id % IPCMNI).max().unwrap_or(-1),
        }
    }

    /// IPC_RMID: removes the set and wakes its sleepers (they get EIDRM).
    pub fn remove(&mut self, id: i32, cred: &Cred) -> Result<(), i32> {
        let set = self.find(id)?;
        if !set.owned_by(cred) {
            return Err(EPERM);
        }
        self.sets.remove(&id);
        self.free_indices.insert(id % IPCMNI);
        // Free indices at the top go back to never-used.
        while self.free_indices.last() == Some(&(self.next_index - 1)) {
            self.free_indices.pop_last();
            self.next_index -= 1;
        }
        self.used_sems -= set.array.lock().len();
        set.removed.store(true, Ordering::Release);
        set.waiters.wake_all();
        Ok(())
    }
}

static NEXT_UNDO_ID: AtomicU64 = AtomicU64::new(1);

/// A process's undo list (Linux `sem_undo_list`): its id keys the
/// adjustments each set keeps; the sets it touched are remembered so exit
/// can find them. Shared by the tasks of a `CLONE_SYSVSEM` family; dropping
/// the last reference is Linux's `exit_sem`.
pub struct SemUndoList {
    pub id: u64,
    sets: Mutex<Vec<Weak<SemSet>>>,
    /// Process id recorded as the last changer when the undo is applied.
    pid: core::sync::atomic::AtomicU32,
}

impl SemUndoList {
    pub fn new() -> Arc<SemUndoList> {
        Arc::new(SemUndoList {
            id: NEXT_UNDO_ID.fetch_add(1, Ordering::Relaxed),
            sets: Mutex::new(Vec::new()),
            pid: core::sync::atomic::AtomicU32::new(0),
        })
    }

    /// Remembers that `set` holds adjustments of this list.
    pub fn track(&self, set: &Arc<SemSet>, pid: u32) {
        self.pid.store(pid, Ordering::Relaxed);
        let mut sets = self.sets.lock();
        if !sets.iter().any(|s| s.as_ptr() == Arc::as_ptr(set)) {
            sets.push(Arc::downgrade(set));
        }
    }
}

impl Drop for SemUndoList {
    fn drop(&mut self) {
        let pid = self.pid.load(Ordering::Relaxed);
        for set in self.sets.lock().drain(..) {
            let Some(set) = set.upgrade() else { continue };
            if set.is_removed() {
                continue;
            }
            if set.array.lock().exit_undo(self.id, pid) {
                set.waiters.wake_all();
            }
        }
    }
}

/// Linux `copy_semundo`: with `CLONE_SYSVSEM` the child shares the
/// parent's undo list, which the parent gets now if it had none;
/// otherwise the child starts without one. `may_allocate` is asked
/// before that allocation (fault injection).
pub fn copy_semundo(
    parent: &mut Option<Arc<SemUndoList>>,
    share: bool,
    may_allocate: impl FnOnce() -> Result<(), i32>,
) -> Result<Option<Arc<SemUndoList>>, i32> {
    if !share {
        return Ok(None);
    }
    if let Some(list) = parent.as_ref() {
        return Ok(Some(list.clone()));
    }
    may_allocate()?;
    let list = SemUndoList::new();
    *parent = Some(list.clone());
    Ok(Some(list))
}
