//! Per-task I/O context (Linux `struct io_context`, block/blk-ioc.c and
//! block/ioprio.c): here only the I/O priority, as there is no block
//! layer. Like Linux, a task has none until `ioprio_set` gives it one;
//! `CLONE_IO` shares it, otherwise fork copies a priority that was set.

use alloc::sync::Arc;
use core::sync::atomic::{AtomicU16, Ordering};

/// `IOPRIO_CLASS_SHIFT`: the class sits above 13 bits of data.
const CLASS_SHIFT: u32 = 13;
/// `IOPRIO_CLASS_MASK`.
const CLASS_MASK: u32 = 0x7;
/// `IOPRIO_LEVEL_MASK`: the level is the low 3 bits (the bits above it,
/// up to the class, are hints, which Linux accepts unchecked).
const LEVEL_MASK: u32 = 0x7;

pub const IOPRIO_CLASS_NONE: u32 = 0;
pub const IOPRIO_CLASS_RT: u32 = 1;
pub const IOPRIO_CLASS_BE: u32 = 2;
pub const IOPRIO_CLASS_IDLE: u32 = 3;

/// `IOPRIO_DEFAULT`: class none, level 0 (what a task without a context
/// reports).
pub const IOPRIO_DEFAULT: u16 = 0;

/// The class of a priority value (`IOPRIO_PRIO_CLASS`).
pub fn ioprio_class(ioprio: u32) -> u32 {
    (ioprio >> CLASS_SHIFT) & CLASS_MASK
}

/// The level of a priority value (`IOPRIO_PRIO_LEVEL`).
pub fn ioprio_level(ioprio: u32) -> u32 {
    ioprio & LEVEL_MASK
}

/// Linux `ioprio_valid`: an explicit class was chosen.
pub fn ioprio_valid(ioprio: u16) -> bool {
    let class = ioprio_class(u32::from(ioprio));
    class > IOPRIO_CLASS_NONE && class <= IOPRIO_CLASS_IDLE
}

/// Why a priority value is refused (Linux `ioprio_check_cap`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoprioError {
    /// The real-time class needs CAP_SYS_NICE or CAP_SYS_ADMIN (EPERM).
    NeedsPrivilege,
    /// Unknown class, or a level given with class none (EINVAL).
    Invalid,
}

/// Linux `ioprio_check_cap`; `privileged` is CAP_SYS_NICE or CAP_SYS_ADMIN.
pub fn ioprio_check(ioprio: u32, privileged: bool) -> Result<(), IoprioError> {
    match ioprio_class(ioprio) {
        IOPRIO_CLASS_RT if !privileged => Err(IoprioError::NeedsPrivilege),
        IOPRIO_CLASS_RT | IOPRIO_CLASS_BE | IOPRIO_CLASS_IDLE => Ok(()),
        IOPRIO_CLASS_NONE if ioprio_level(ioprio) == 0 => Ok(()),
        _ => Err(IoprioError::Invalid),
    }
}

/// The priority a task's I/O gets (Linux `__get_task_ioprio`): class
/// none follows the nice value, always 0 here, which gives best-effort
/// level 4.
pub fn ioprio_effective(ioprio: u16) -> u16 {
    if ioprio_valid(ioprio) {
        ioprio
    } else {
        ((IOPRIO_CLASS_BE << CLASS_SHIFT) | 4) as u16
    }
}

/// Linux `ioprio_best`: the higher of two priorities for the
/// `IOPRIO_WHO_PGRP`/`USER` queries, each as the task's I/O gets it.
pub fn ioprio_best(a: u16, b: u16) -> u16 {
    ioprio_effective(a).min(ioprio_effective(b))
}

/// An I/O context.
#[derive(Debug)]
pub struct IoContext {
    /// The priority; Linux keeps an `unsigned short`, so higher bits of the
    /// value given to `ioprio_set` are dropped.
    ioprio: AtomicU16,
}

impl IoContext {
    pub fn new(ioprio: u16) -> Arc<IoContext> {
        Arc::new(IoContext {
            ioprio: AtomicU16::new(ioprio),
        })
    }

    pub fn ioprio(&self) -> u16 {
        self.ioprio.load(Ordering::Relaxed)
    }

    pub fn set_ioprio(&self, ioprio: u16) {
        self.ioprio.store(ioprio, Ordering::Relaxed);
    }
}

/// Linux `copy_io`: the child shares the parent's context with
/// `CLONE_IO`, gets a copy when the parent chose a priority, and otherwise
/// has none (it would get one on first use). `may_allocate` is asked
/// before the one allocation (fault injection).
pub fn copy_io(
    parent: Option<&Arc<IoContext>>,
    share: bool,
    may_allocate: impl FnOnce() -> Result<(), i32>,
) -> Result<Option<Arc<IoContext>>, i32> {
    let Some(ioc) = parent else {
        return Ok(None);
    };
    if share {
        Ok(Some(ioc.clone()))
    } else if ioprio_valid(ioc.ioprio()) {
        may_allocate()?;
        Ok(Some(IoContext::new(ioc.ioprio())))
    } else {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BE: u32 = IOPRIO_CLASS_BE << CLASS_SHIFT;
    const RT: u32 = IOPRIO_CLASS_RT << CLASS_SHIFT;
    const IDLE: u32 = IOPRIO_CLASS_IDLE << CLASS_SHIFT;

    #[test]
    fn check_follows_linux() {
        assert_eq!(ioprio_check(0, false), Ok(()));
        assert_eq!(ioprio_check(1, false), Err(IoprioError::Invalid));
        assert_eq!(ioprio_check(8, false), Ok(()), "a hint is not a level");
        assert_eq!(ioprio_check(BE | 7, false), Ok(()));
        assert_eq!(ioprio_check(BE | (100 << 3), false), Ok(()));
        assert_eq!(ioprio_check(IDLE | 5, false), Ok(()));
        assert_eq!(ioprio_check(RT, false), Err(IoprioError::NeedsPrivilege));
        assert_eq!(ioprio_check(RT | 7, true), Ok(()));
        assert_eq!(
            ioprio_check(4 << CLASS_SHIFT, true),
            Err(IoprioError::Invalid)
        );
        assert_eq!(ioprio_check(u32::MAX, true), Err(IoprioError::Invalid));
        // Above the 16 bits Linux keeps: class none, level 0.
        assert_eq!(ioprio_check(0x10000, false), Ok(()));
    }

    #[test]
    fn best_prefers_higher_class_and_level() {
        let be4 = (BE | 4) as u16;
        assert_eq!(ioprio_best(0, 0), be4);
        assert_eq!(
            ioprio_best((RT | 3) as u16, (BE | 1) as u16),
            (RT | 3) as u16
        );
        assert_eq!(ioprio_best(IDLE as u16, 0), be4);
        assert_eq!(ioprio_effective(0), be4);
        assert_eq!(ioprio_effective(IDLE as u16), IDLE as u16);
    }

    #[test]
    fn copy_io_shares_copies_or_skips() {
        let ok = || Ok(());
        assert!(copy_io(None, true, ok).unwrap().is_none());
        let unset = IoContext::new(IOPRIO_DEFAULT);
        assert!(copy_io(Some(&unset), false, ok).unwrap().is_none());
        let shared = copy_io(Some(&unset), true, ok).unwrap().unwrap();
        shared.set_ioprio((BE | 6) as u16);
        assert_eq!(unset.ioprio(), (BE | 6) as u16, "CLONE_IO shares");
        let set = IoContext::new((BE | 3) as u16);
        let copy = copy_io(Some(&set), false, ok).unwrap().unwrap();
        assert!(!Arc::ptr_eq(&copy, &set));
        assert_eq!(copy.ioprio(), (BE | 3) as u16);
        assert_eq!(copy_io(Some(&set), false, || Err(12)).unwrap_err(), 12);
    }
}
