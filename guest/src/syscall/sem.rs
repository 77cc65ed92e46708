//! System V semaphores: `semget`, `semop`, `semctl` (Linux ipc/sem.c),
//! on the sets of the caller's IPC namespace (`ipc::sem`). `semtimedop`
//! is not provided (ENOSYS); `semctl` offers the value commands and
//! IPC_RMID, not the `*_STAT`/`*_INFO`/IPC_SET ones (EINVAL).

use alloc::sync::Arc;
use alloc::vec::Vec;

use super::{current_mm, Args, SysResult};
use crate::errno::{EACCES, EFAULT, EIDRM, EINTR, EINVAL};
use crate::ipc::sem::{SemSet, SemUndoList, ALTER, READ};
use crate::ipc::sem_array::{check_nsops, SemBuf, SemopOutcome, SEMVMX, SEM_UNDO};
use crate::process::nsproxy::NsKind;
use crate::process::task::Task;
use crate::sched;

const IPC_RMID: u64 = 0;
/// Set by some C libraries to ask for the 64-bit structures.
const IPC_64: u64 = 0x100;
const GETPID: u64 = 11;
const GETVAL: u64 = 12;
const GETALL: u64 = 13;
const GETNCNT: u64 = 14;
const GETZCNT: u64 = 15;
const SETVAL: u64 = 16;
const SETALL: u64 = 17;

/// The caller's IPC namespace.
fn ipc_ns(task: &Task) -> Arc<crate::process::nsproxy::Namespace> {
    task.inner.lock().nsproxy.get(NsKind::Ipc).clone()
}

/// The caller's process id in its own pid namespace (`sempid`).
fn caller_pid(task: &Task) -> u32 {
    task.tgid_in(&task.active_pid_ns())
}

pub fn semget(a: Args) -> SysResult {
    let [key, nsems, flags, ..] = a.0;
    let task = sched::current();
    let cred = task.inner.lock().cred.clone();
    let id = ipc_ns(&task)
        .sem
        .lock()
        .semget(key as i32, nsems as i32, flags as i32, &cred)?;
    Ok(id as u64)
}

/// The set `semid` names (a negative or unknown id is EINVAL).
fn find_set(task: &Task, semid: u64) -> Result<Arc<SemSet>, i32> {
    let semid = semid as i32;
    if semid < 0 {
        return Err(EINVAL);
    }
    ipc_ns(task).sem.lock().find(semid)
}

pub fn semop(a: Args) -> SysResult {
    let [semid, sops_address, nsops, ..] = a.0;
    if (semid as i32) < 0 {
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

    let task = sched::current();
    let set = find_set(&task, semid)?;
    set.array.lock().check_nums(&sops)?;
    let alters = sops.iter().any(|s| s.op != 0);
    let cred = task.inner.lock().cred.clone();
    if !set.permits(&cred, if alters { ALTER } else { READ }) {
        return Err(EACCES);
    }
    // Linux `find_alloc_undo`: the first SEM_UNDO gives the process its list.
    let undo = if sops.iter().any(|s| s.flags & SEM_UNDO != 0) {
        let list = task
            .inner
            .lock()
            .sysvsem
            .get_or_insert_with(SemUndoList::new)
            .clone();
        Some(list)
    } else {
        None
    };
    let pid = caller_pid(&task);
    if let Some(list) = &undo {
        list.track(&set, pid);
    }

    let undo_id = undo.as_ref().map(|list| list.id);
    let mut result = Ok(());
    // The semaphore this task is counted as waiting on (GETNCNT/GETZCNT).
    let mut waiting: Option<(u16, bool)> = None;
    let finished = set.waiters.wait_until(|| {
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
            Ok(SemopOutcome::Done) => true,
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
    });
    if !finished {
        // A fatal signal: the task exits on its way out; stop counting it.
        if let Some((num, for_zero)) = waiting {
            let mut array = set.array.lock();
            let sem = &mut array.sems[usize::from(num)];
            if for_zero {
                sem.zcnt -= 1
            } else {
                sem.ncnt -= 1
            }
        }
        return Err(EINTR);
    }
    result?;
    if alters {
        set.waiters.wake_all();
    }
    Ok(0)
}

pub fn semctl(a: Args) -> SysResult {
    let [semid, semnum, cmd, arg, ..] = a.0;
    let cmd = cmd & !IPC_64;
    let task = sched::current();
    let cred = task.inner.lock().cred.clone();
    if cmd == IPC_RMID {
        if (semid as i32) < 0 {
            return Err(EINVAL);
        }
        return ipc_ns(&task)
            .sem
            .lock()
            .remove(semid as i32, &cred)
            .map(|()| 0);
    }
    let want = match cmd {
        GETPID | GETVAL | GETALL | GETNCNT | GETZCNT => READ,
        SETVAL | SETALL => ALTER,
        _ => return Err(EINVAL),
    };
    let set = find_set(&task, semid)?;
    if !set.permits(&cred, want) {
        return Err(EACCES);
    }
    let pid = caller_pid(&task);
    let semnum = semnum as u32 as usize;
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
                return Err(crate::errno::ERANGE);
            }
            {
                let mut array = set.array.lock();
                for (num, val) in values.into_iter().enumerate() {
                    array.set_val(num, val, pid)?;
                }
            }
            set.waiters.wake_all();
            Ok(0)
        }
        _ => {
            let mut array = set.array.lock();
            if semnum >= array.len() {
                return Err(EINVAL);
            }
            let sem = array.sems[semnum];
            match cmd {
                GETPID => Ok(u64::from(sem.pid)),
                GETVAL => Ok(sem.val as u64),
                GETNCNT => Ok(u64::from(sem.ncnt)),
                GETZCNT => Ok(u64::from(sem.zcnt)),
                _ => {
                    // SETVAL: `union semun` arrives by value; its int.
                    array.set_val(semnum, arg as i32, pid)?;
                    drop(array);
                    set.waiters.wake_all();
                    Ok(0)
                }
            }
        }
    }
}
