//! System V semaphores: `semget`, `semop`, `semtimedop`, `semctl` (Linux
//! ipc/sem.c), on the sets of the caller's IPC namespace (`ipc::sem`).
//! Every check and its errno comes in Linux's order.

use alloc::sync::Arc;
use alloc::vec::Vec;

use super::{current_mm, Args, SysResult};
use crate::errno::{EACCES, EAGAIN, EFAULT, EIDRM, EINTR, EINVAL, ENOMEM, EPERM, ERANGE};
use crate::ipc::sem::{real_seconds, IpcPerm, SemSet, SemUsage, ALTER, READ, SEMMNI, SEMMNS};
use crate::ipc::sem_array::{
    check_nsops, SemBuf, SemopOutcome, SEMAEM, SEMMSL, SEMOPM, SEMVMX, SEM_UNDO,
};
use crate::process::cred::Cred;
use crate::process::nsproxy::NsKind;
use crate::process::task::Task;
use crate::sched;
use crate::sched::wait::WaitEnd;

// `semctl` commands. x86-64 Linux takes them as they are: a command with
// the IPC_64 bit (0x100) set is unknown, EINVAL.
const IPC_RMID: u32 = 0;
const IPC_SET: u32 = 1;
const IPC_STAT: u32 = 2;
const IPC_INFO: u32 = 3;
const GETPID: u32 = 11;
const GETVAL: u32 = 12;
const GETALL: u32 = 13;
const GETNCNT: u32 = 14;
const GETZCNT: u32 = 15;
const SETVAL: u32 = 16;
const SETALL: u32 = 17;
const SEM_STAT: u32 = 18;
const SEM_INFO: u32 = 19;
const SEM_STAT_ANY: u32 = 20;

/// `struct semid64_ds` on x86-64: `ipc64_perm` (key, uid, gid, cuid,
/// cgid, mode: u32 each; seq: u16 at 24; two unused longs from 32), then
/// sem_otime, unused, sem_ctime, unused, sem_nsems, two unused: 8 bytes each.
const SEMID64_DS_SIZE: usize = 104;
const SEMID64_UID: usize = 4;
const SEMID64_GID: usize = 8;
const SEMID64_MODE: usize = 20;
const SEMID64_SEQ: usize = 24;
const SEMID64_OTIME: usize = 48;
const SEMID64_CTIME: usize = 64;
const SEMID64_NSEMS: usize = 80;
/// `struct seminfo`: ten ints.
const SEMINFO_SIZE: usize = 40;
/// IPC_INFO's fixed `semusz` (Linux SEMUSZ, the size of a `struct sem_undo`).
const SEMUSZ: i32 = 20;
/// Linux `SEMMNU`, `SEMMAP`, `SEMUME`: historical limits it still reports.
const SEMMNU: i32 = SEMMNS as i32;
const SEMMAP: i32 = SEMMNS as i32;
const SEMUME: i32 = SEMOPM as i32;

/// The caller's IPC namespace.
fn ipc_ns(task: &Task) -> Arc<crate::process::nsproxy::Namespace> {
    task.nsproxy().get(NsKind::Ipc).clone()
}

/// The caller's process id in its own pid namespace (`sempid`).
fn caller_pid(task: &Task) -> u32 {
    task.tgid_in(&task.active_pid_ns())
}

/// The owner and creator ids a set reports to the caller (`ipc64_perm`;
/// Linux `from_kuid_munged`/`from_kgid_munged`): `[uid, gid, cuid, cgid]`.
/// Ids are stored as kernel ids; 65534 stands for one the caller's user
/// namespace does not map.
fn ids_to_user(perm: &IpcPerm, cred: &Cred) -> [u32; 4] {
    [
        cred.uid_seen(perm.uid),
        cred.gid_seen(perm.gid),
        cred.uid_seen(perm.cuid),
        cred.gid_seen(perm.cgid),
    ]
}

/// IPC_SET's new owner in the kernel's terms (Linux `make_kuid`,
/// `make_kgid`): -1 names no user, EINVAL. The counterpart of
/// [`ids_to_user`].
fn ids_from_user(uid: u32, gid: u32, cred: &Cred) -> Result<(u32, u32), i32> {
    match (cred.make_kuid(uid), cred.make_kgid(gid)) {
        (Some(uid), Some(gid)) => Ok((uid, gid)),
        _ => Err(EINVAL),
    }
}

pub fn semget(a: Args) -> SysResult {
    let [key, nsems, flags, ..] = a.0;
    let task = sched::current();
    let cred = task.cred();
    let id = ipc_ns(&task)
        .sem
        .lock()
        .semget(key as i32, nsems as i32, flags as i32, &cred)?;
    Ok(id as u64)
}

/// The set `semid` names (a negative or unknown id is EINVAL).
fn find_set(task: &Task, semid: i32) -> Result<Arc<SemSet>, i32> {
    if semid < 0 {
        return Err(EINVAL);
    }
    ipc_ns(task).sem.lock().find(semid)
}

/// `semop(semid, sops, nsops)`: `semtimedop` without a timeout.
pub fn semop(a: Args) -> SysResult {
    let [semid, sops, nsops, ..] = a.0;
    do_semtimedop(semid as i32, sops, nsops as u32, None)
}

/// `semtimedop(semid, sops, nsops, timeout)`: `timeout` (a relative
/// `struct timespec`, or NULL for none) is read before anything else is
/// looked at, and checked once the operations have been read.
pub fn semtimedop(a: Args) -> SysResult {
    let [semid, sops, nsops, timeout, ..] = a.0;
    let timeout = if timeout == 0 {
        None
    } else {
        Some(super::time::read_raw_timespec(timeout)?)
    };
    do_semtimedop(semid as i32, sops, nsops as u32, timeout)
}

/// Linux `do_semtimedop`.
fn do_semtimedop(
    semid: i32,
    sops_address: u64,
    nsops: u32,
    timeout: Option<(i64, i64)>,
) -> SysResult {
    if semid < 0 {
        return Err(EINVAL);
    }
    check_nsops(nsops as usize)?;
    let mut bytes = alloc::vec![0u8; nsops as usize * SemBuf::SIZE];
    current_mm()?
        .copy_from_user(sops_address, &mut bytes)
        .map_err(|_| EFAULT)?;
    let sops: Vec<SemBuf> = bytes
        .chunks_exact(SemBuf::SIZE)
        .map(|b| SemBuf::from_bytes(b.try_into().expect("chunk of SIZE")))
        .collect();
    let deadline = timeout.map(crate::time::relative_deadline).transpose()?;

    let task = sched::current();
    let set = find_set(&task, semid)?;
    set.array.lock().check_nums(&sops)?;
    let alters = sops.iter().any(|s| s.op != 0);
    let cred = task.cred();
    if !set.permits(&cred, if alters { ALTER } else { READ }) {
        return Err(EACCES);
    }
    // Linux `find_alloc_undo`: the first SEM_UNDO gives the process its list.
    let undo = if sops.iter().any(|s| s.flags & SEM_UNDO != 0) {
        Some(task.sysvsem_or_create())
    } else {
        None
    };
    // The undo adjustments (one per semaphore) live as long as the process.
    if undo.is_some() && !crate::mm::heap::has_room(set.array.lock().len() * 4) {
        return Err(ENOMEM);
    }
    let pid = caller_pid(&task);
    if let Some(list) = &undo {
        list.track(&set, pid);
    }

    let undo_id = undo.as_ref().map(|list| list.id);
    let mut result = Ok(());
    // The semaphore this task is counted as waiting on (GETNCNT/GETZCNT).
    let mut waiting: Option<(u16, bool)> = None;
    let attempt = || {
        if set.is_removed() {
            result = Err(EIDRM);
            return true;
        }
        let mut array = set.array.lock();
        if let Some((num, for_zero)) = waiting.take() {
            let sem = &mut array.sems[usize::from(num)];
            if for_zero {
                sem.zcnt -= 1
            } else {
                sem.ncnt -= 1
            }
        }
        match array.semop(&sops, undo_id, pid) {
            Ok(SemopOutcome::Done) => {
                array.otime = real_seconds();
                true
            }
            Ok(SemopOutcome::Block { num, for_zero }) => {
                let sem = &mut array.sems[usize::from(num)];
                if for_zero {
                    sem.zcnt += 1
                } else {
                    sem.ncnt += 1
                }
                waiting = Some((num, for_zero));
                false
            }
            Err(e) => {
                result = Err(e);
                true
            }
        }
    };
    let end = if let Some(deadline) = deadline {
        set.waiters.wait_until_deadline(deadline, attempt)
    } else if set.waiters.wait_until(attempt) {
        WaitEnd::Done
    } else {
        WaitEnd::Interrupted
    };
    if end != WaitEnd::Done {
        // Timed out, or a signal (semop is never restarted: EINTR):
        // stop counting it as a waiter.
        if let Some((num, for_zero)) = waiting {
            let mut array = set.array.lock();
            let sem = &mut array.sems[usize::from(num)];
            if for_zero {
                sem.zcnt -= 1
            } else {
                sem.ncnt -= 1
            }
        }
        return Err(if end == WaitEnd::TimedOut {
            EAGAIN
        } else {
            EINTR
        });
    }
    result?;
    if alters {
        set.waiters.wake_all();
    }
    Ok(0)
}

/// Linux `ksys_semctl`: `arg` is the `union semun`, by value (SETVAL's
/// int) or a pointer (the array and structure commands).
pub fn semctl(a: Args) -> SysResult {
    let [semid, semnum, cmd, arg, ..] = a.0;
    let (semid, semnum, cmd) = (semid as i32, semnum as i32, cmd as u32);
    if semid < 0 {
        return Err(EINVAL);
    }
    let task = sched::current();
    match cmd {
        IPC_INFO | SEM_INFO => semctl_info(&task, cmd, arg),
        IPC_STAT | SEM_STAT | SEM_STAT_ANY => {
            let (ds, ret) = semctl_stat(&task, semid, cmd)?;
            current_mm()?.copy_to_user(arg, &ds).map_err(|_| EFAULT)?;
            Ok(ret)
        }
        GETALL | GETVAL | GETPID | GETNCNT | GETZCNT | SETALL => {
            semctl_main(&task, semid, semnum, cmd, arg)
        }
        SETVAL => semctl_setval(&task, semid, semnum, arg as i32),
        IPC_SET => {
            let mut ds = [0u8; SEMID64_DS_SIZE];
            current_mm()?
                .copy_from_user(arg, &mut ds)
                .map_err(|_| EFAULT)?;
            let word = |at: usize| u32::from_le_bytes(ds[at..at + 4].try_into().expect("4 bytes"));
            let set = semctl_down(&task, semid)?;
            let cred = task.cred();
            let (uid, gid) = ids_from_user(word(SEMID64_UID), word(SEMID64_GID), &cred)?;
            set.set_perm(uid, gid, word(SEMID64_MODE));
            Ok(0)
        }
        IPC_RMID => {
            let cred = task.cred();
            ipc_ns(&task).sem.lock().remove(semid, &cred).map(|()| 0)
        }
        _ => Err(EINVAL),
    }
}

/// IPC_INFO and SEM_INFO: the limits in a `struct seminfo`, SEM_INFO with
/// the sets and semaphores in use instead of `semusz`/`semaem`; returns
/// the highest index in use (0 if none).
fn semctl_info(task: &Task, cmd: u32, address: u64) -> SysResult {
    let SemUsage {
        sets,
        sems,
        max_index,
    } = ipc_ns(task).sem.lock().usage();
    let (semusz, semaem) = if cmd == SEM_INFO {
        (sets as i32, sems as i32)
    } else {
        (SEMUSZ, SEMAEM)
    };
    let fields: [i32; 10] = [
        SEMMAP,
        SEMMNI as i32,
        SEMMNS as i32,
        SEMMNU,
        SEMMSL as i32,
        SEMOPM as i32,
        SEMUME,
        semusz,
        SEMVMX,
        semaem,
    ];
    let mut bytes = [0u8; SEMINFO_SIZE];
    for (chunk, field) in bytes.chunks_exact_mut(4).zip(fields) {
        chunk.copy_from_slice(&field.to_le_bytes());
    }
    current_mm()?
        .copy_to_user(address, &bytes)
        .map_err(|_| EFAULT)?;
    Ok(max_index.max(0) as u64)
}

/// IPC_STAT (by id, read permission), SEM_STAT (by index, read
/// permission) and SEM_STAT_ANY (by index, no permission check): the
/// `struct semid64_ds` to copy out and the result (0, or the set's id).
fn semctl_stat(task: &Task, semid: i32, cmd: u32) -> Result<([u8; SEMID64_DS_SIZE], u64), i32> {
    let set = if cmd == IPC_STAT {
        find_set(task, semid)?
    } else {
        ipc_ns(task).sem.lock().find_index(semid)?
    };
    let cred = task.cred();
    if cmd != SEM_STAT_ANY && !set.permits(&cred, READ) {
        return Err(EACCES);
    }
    if set.is_removed() {
        return Err(EIDRM);
    }
    let perm = set.perm();
    let mut ds = [0u8; SEMID64_DS_SIZE];
    ds[0..4].copy_from_slice(&set.key.to_le_bytes());
    // uid, gid, cuid, cgid: consecutive words from SEMID64_UID.
    for (i, id) in ids_to_user(&perm, &cred).into_iter().enumerate() {
        let at = SEMID64_UID + 4 * i;
        ds[at..at + 4].copy_from_slice(&id.to_le_bytes());
    }
    ds[SEMID64_MODE..SEMID64_MODE + 4].copy_from_slice(&perm.mode.to_le_bytes());
    ds[SEMID64_SEQ..SEMID64_SEQ + 2].copy_from_slice(&(set.seq() as u16).to_le_bytes());
    {
        let array = set.array.lock();
        ds[SEMID64_OTIME..SEMID64_OTIME + 8].copy_from_slice(&array.otime.to_le_bytes());
        ds[SEMID64_CTIME..SEMID64_CTIME + 8].copy_from_slice(&array.ctime.to_le_bytes());
        ds[SEMID64_NSEMS..SEMID64_NSEMS + 8].copy_from_slice(&(array.len() as u64).to_le_bytes());
    }
    let ret = if cmd == IPC_STAT { 0 } else { set.id as u64 };
    Ok((ds, ret))
}

/// Linux `semctl_main`: the set, then permission (write for SETALL, read
/// otherwise), then the command; the single-value ones check `semnum`.
fn semctl_main(task: &Task, semid: i32, semnum: i32, cmd: u32, arg: u64) -> SysResult {
    let set = find_set(task, semid)?;
    let cred = task.cred();
    if !set.permits(&cred, if cmd == SETALL { ALTER } else { READ }) {
        return Err(EACCES);
    }
    match cmd {
        GETALL => {
            let values: Vec<u8> = {
                let array = set.array.lock();
                array
                    .sems
                    .iter()
                    .flat_map(|s| (s.val as u16).to_le_bytes())
                    .collect()
            };
            current_mm()?
                .copy_to_user(arg, &values)
                .map_err(|_| EFAULT)?;
            Ok(0)
        }
        SETALL => {
            let n = set.array.lock().len();
            let mut bytes = alloc::vec![0u8; n * 2];
            current_mm()?
                .copy_from_user(arg, &mut bytes)
                .map_err(|_| EFAULT)?;
            let values: Vec<i32> = bytes
                .chunks_exact(2)
                .map(|b| i32::from(u16::from_le_bytes([b[0], b[1]])))
                .collect();
            if values.iter().any(|&v| v > SEMVMX) {
                return Err(ERANGE);
            }
            let pid = caller_pid(task);
            {
                let mut array = set.array.lock();
                for (num, val) in values.into_iter().enumerate() {
                    array.set_val(num, val, pid)?;
                }
                array.ctime = real_seconds();
            }
            set.waiters.wake_all();
            Ok(0)
        }
        _ => {
            let array = set.array.lock();
            let Some(sem) = usize::try_from(semnum).ok().and_then(|n| array.sems.get(n)) else {
                return Err(EINVAL);
            };
            Ok(match cmd {
                GETPID => u64::from(sem.pid),
                GETVAL => sem.val as u64,
                GETNCNT => u64::from(sem.ncnt),
                _ => u64::from(sem.zcnt),
            })
        }
    }
}

/// Linux `semctl_setval`: the value's range first, then the set, the
/// semaphore number and write permission.
fn semctl_setval(task: &Task, semid: i32, semnum: i32, val: i32) -> SysResult {
    if !(0..=SEMVMX).contains(&val) {
        return Err(ERANGE);
    }
    let set = find_set(task, semid)?;
    let num = usize::try_from(semnum).map_err(|_| EINVAL)?;
    if num >= set.array.lock().len() {
        return Err(EINVAL);
    }
    let cred = task.cred();
    if !set.permits(&cred, ALTER) {
        return Err(EACCES);
    }
    {
        let mut array = set.array.lock();
        array.set_val(num, val, caller_pid(task))?;
        array.ctime = real_seconds();
    }
    set.waiters.wake_all();
    Ok(0)
}

/// Linux `ipcctl_obtain_check` for IPC_SET: the set, which only its
/// owner, its creator or CAP_SYS_ADMIN may change (EPERM).
fn semctl_down(task: &Task, semid: i32) -> Result<Arc<SemSet>, i32> {
    let set = find_set(task, semid)?;
    let cred = task.cred();
    if !set.owned_by(&cred) {
        return Err(EPERM);
    }
    Ok(set)
}
