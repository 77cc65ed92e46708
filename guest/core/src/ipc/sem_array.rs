//! The values of one System V semaphore set and the rules of `semop`
//! (Linux ipc/sem.c `perform_atomic_semop`, `exit_sem`), as pure logic:
//! no locking, no sleeping; `ipc::sem` adds those.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use crate::errno::{E2BIG, EAGAIN, EFBIG, EINVAL, ENOMEM, ERANGE};

/// Largest semaphore value (`SEMVMX`).
pub const SEMVMX: i32 = 32767;
/// Largest undo adjustment (`SEMAEM`).
pub const SEMAEM: i32 = SEMVMX;
/// Most semaphores in a set (`SEMMSL`).
pub const SEMMSL: usize = 32000;
/// Most operations in one `semop` (`SEMOPM`).
pub const SEMOPM: usize = 500;
/// `sem_flg` bits.
pub const IPC_NOWAIT: i16 = 0o4000;
pub const SEM_UNDO: i16 = 0x1000;

/// One `struct sembuf`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SemBuf {
    pub num: u16,
    pub op: i16,
    pub flags: i16,
}

impl SemBuf {
    /// Size of `struct sembuf` in user memory.
    pub const SIZE: usize = 6;

    pub fn from_bytes(b: &[u8; Self::SIZE]) -> SemBuf {
        SemBuf {
            num: u16::from_le_bytes([b[0], b[1]]),
            op: i16::from_le_bytes([b[2], b[3]]),
            flags: i16::from_le_bytes([b[4], b[5]]),
        }
    }
}

/// Checks the `semop` arguments that do not depend on a set (Linux order:
/// nsops < 1 -> EINVAL, > SEMOPM -> E2BIG).
pub fn check_nsops(nsops: usize) -> Result<(), i32> {
    match nsops {
        0 => Err(EINVAL),
        n if n > SEMOPM => Err(E2BIG),
        _ => Ok(()),
    }
}

/// One semaphore.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sem {
    pub val: i32,
    /// Process that last changed it (`sempid`, `GETPID`).
    pub pid: u32,
    /// Tasks waiting for it to grow (`GETNCNT`) / to reach zero (`GETZCNT`).
    pub ncnt: u32,
    pub zcnt: u32,
}

/// What a `semop` attempt found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SemopOutcome {
    /// All operations were applied.
    Done,
    /// Operation `index` must wait (for an increase if `for_zero` is false).
    Block { num: u16, for_zero: bool },
}

/// A set's semaphores and the undo adjustments every undo list holds for it.
pub struct SemArray {
    pub sems: Vec<Sem>,
    /// Realtime seconds of the last successful `semop` (0: none yet) and
    /// of the last change by `semctl` or creation (`sem_otime`, `sem_ctime`).
    pub otime: i64,
    pub ctime: i64,
    /// Undo list id -> one adjustment per semaphore (`struct sem_undo`).
    undo: BTreeMap<u64, Vec<i32>>,
}

/// `n` copies of `value`, or ENOMEM if the heap cannot hold them (a set
/// of SEMMSL semaphores is big enough for a user to exhaust the kernel
/// heap with a few dozen).
fn try_filled<T: Clone>(value: T, n: usize) -> Result<Vec<T>, i32> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| ENOMEM)?;
    v.resize(n, value);
    Ok(v)
}

impl SemArray {
    /// A set of `nsems` semaphores at 0; ENOMEM if the heap cannot hold it.
    pub fn new(nsems: usize) -> Result<SemArray, i32> {
        Ok(SemArray {
            sems: try_filled(Sem::default(), nsems)?,
            otime: 0,
            ctime: 0,
            undo: BTreeMap::new(),
        })
    }

    /// Semaphores in the set (never 0: `semget` refuses an empty set).
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        self.sems.len()
    }

    /// Every `sem_num` must name a semaphore of the set (EFBIG).
    pub fn check_nums(&self, sops: &[SemBuf]) -> Result<(), i32> {
        if sops.iter().any(|s| usize::from(s.num) >= self.sems.len()) {
            return Err(EFBIG);
        }
        Ok(())
    }

    /// Linux `perform_atomic_semop`: all operations apply, or none. A
    /// value above SEMVMX or an adjustment beyond SEMAEM is ERANGE; an
    /// operation that must wait is EAGAIN with IPC_NOWAIT, else `Block`.
    /// `undo` is the caller's undo list id (needed if any op has SEM_UNDO).
    pub fn semop(
        &mut self,
        sops: &[SemBuf],
        undo: Option<u64>,
        pid: u32,
    ) -> Result<SemopOutcome, i32> {
        self.check_nums(sops)?;
        let mut vals = try_filled(0, self.sems.len())?;
        for (val, sem) in vals.iter_mut().zip(&self.sems) {
            *val = sem.val;
        }
        // Linux `find_alloc_undo`: ENOMEM if the adjustments cannot be held.
        let mut adj = match undo {
            None => None,
            Some(id) => Some(match self.undo.get(&id) {
                Some(adj) => {
                    let mut copy = try_filled(0, adj.len())?;
                    copy.copy_from_slice(adj);
                    copy
                }
                None => try_filled(0, self.sems.len())?,
            }),
        };
        for sop in sops {
            let n = usize::from(sop.num);
            let op = i32::from(sop.op);
            let result = vals[n] + op;
            if (op == 0 && vals[n] != 0) || result < 0 {
                if sop.flags & IPC_NOWAIT != 0 {
                    return Err(EAGAIN);
                }
                return Ok(SemopOutcome::Block {
                    num: sop.num,
                    for_zero: op == 0,
                });
            }
            if result > SEMVMX {
                return Err(ERANGE);
            }
            if sop.flags & SEM_UNDO != 0 {
                let adj = adj.as_mut().ok_or(EINVAL)?;
                let undone = adj[n] - op;
                if !(-SEMAEM - 1..=SEMAEM).contains(&undone) {
                    return Err(ERANGE);
                }
                adj[n] = undone;
            }
            vals[n] = result;
        }
        for sop in sops {
            self.sems[usize::from(sop.num)].pid = pid;
        }
        for (sem, val) in self.sems.iter_mut().zip(vals) {
            sem.val = val;
        }
        if let (Some(id), Some(adj)) = (undo, adj) {
            if sops.iter().any(|s| s.flags & SEM_UNDO != 0) {
                self.undo.insert(id, adj);
            }
        }
        Ok(SemopOutcome::Done)
    }

    /// `SETVAL`: 0..=SEMVMX (ERANGE), and every undo list forgets its
    /// adjustment of that semaphore.
    pub fn set_val(&mut self, num: usize, val: i32, pid: u32) -> Result<(), i32> {
        if num >= self.sems.len() {
            return Err(EINVAL);
        }
        if !(0..=SEMVMX).contains(&val) {
            return Err(ERANGE);
        }
        for adj in self.undo.values_mut() {
            adj[num] = 0;
        }
        self.sems[num].val = val;
        self.sems[num].pid = pid;
        Ok(())
    }

    /// Linux `exit_sem` for one set: applies undo list `id`'s adjustments,
    /// clamped to 0..=SEMVMX. Returns whether anything changed.
    pub fn exit_undo(&mut self, id: u64, pid: u32) -> bool {
        let Some(adj) = self.undo.remove(&id) else {
            return false;
        };
        for (sem, a) in self.sems.iter_mut().zip(adj) {
            if a != 0 {
                sem.val = (sem.val + a).clamp(0, SEMVMX);
                sem.pid = pid;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(num: u16, op: i16, flags: i16) -> SemBuf {
        SemBuf { num, op, flags }
    }

    #[test]
    fn all_or_nothing() {
        let mut set = SemArray::new(2).unwrap();
        assert_eq!(set.semop(&[op(0, 2, 0)], None, 7), Ok(SemopOutcome::Done));
        // The second op must wait, so the first is not applied either.
        assert_eq!(
            set.semop(&[op(0, -1, 0), op(1, -1, 0)], None, 8),
            Ok(SemopOutcome::Block {
                num: 1,
                for_zero: false
            })
        );
        assert_eq!(set.sems[0].val, 2);
        assert_eq!(set.sems[0].pid, 7);
        assert_eq!(
            set.semop(&[op(1, 0, IPC_NOWAIT)], None, 8),
            Ok(SemopOutcome::Done)
        );
        assert_eq!(set.semop(&[op(0, 0, IPC_NOWAIT)], None, 8), Err(EAGAIN));
        assert_eq!(set.semop(&[op(2, 1, 0)], None, 8), Err(EFBIG));
        assert_eq!(set.semop(&[op(0, i16::MAX, 0)], None, 8), Err(ERANGE));
    }

    #[test]
    fn undo_is_applied_at_exit_and_cleared_by_setval() {
        let mut set = SemArray::new(2).unwrap();
        set.set_val(0, 5, 1).unwrap();
        assert_eq!(
            set.semop(&[op(0, -3, SEM_UNDO)], Some(1), 2),
            Ok(SemopOutcome::Done)
        );
        assert_eq!(
            set.semop(&[op(1, 4, SEM_UNDO)], Some(1), 2),
            Ok(SemopOutcome::Done)
        );
        assert_eq!((set.sems[0].val, set.sems[1].val), (2, 4));
        assert!(set.exit_undo(1, 2));
        assert_eq!((set.sems[0].val, set.sems[1].val), (5, 0));
        assert!(!set.exit_undo(1, 2), "applied once");

        assert_eq!(
            set.semop(&[op(0, -5, SEM_UNDO)], Some(2), 3),
            Ok(SemopOutcome::Done)
        );
        set.set_val(0, 1, 1).unwrap();
        assert!(set.exit_undo(2, 3));
        assert_eq!(set.sems[0].val, 1, "SETVAL forgot the adjustment");
    }

    #[test]
    fn exit_clamps_and_limits() {
        let mut set = SemArray::new(1).unwrap();
        assert_eq!(
            set.semop(&[op(0, 3, SEM_UNDO)], Some(1), 2),
            Ok(SemopOutcome::Done)
        );
        // Another process takes two without undo: undoing +3 would go below 0.
        assert_eq!(set.semop(&[op(0, -2, 0)], None, 3), Ok(SemopOutcome::Done));
        assert!(set.exit_undo(1, 2));
        assert_eq!(set.sems[0].val, 0, "clamped at zero");
        assert_eq!(set.semop(&[op(0, 0, 0)], None, 3), Ok(SemopOutcome::Done));
        assert_eq!(set.set_val(0, SEMVMX + 1, 1), Err(ERANGE));
        assert_eq!(set.set_val(1, 0, 1), Err(EINVAL));
        assert_eq!(check_nsops(0), Err(EINVAL));
        assert_eq!(check_nsops(SEMOPM + 1), Err(E2BIG));
        assert_eq!(check_nsops(SEMOPM), Ok(()));
    }
}
