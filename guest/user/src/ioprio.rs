//! I/O priorities: `ioprio_set`(251) and `ioprio_get`(252), as in Linux's
//! `include/uapi/linux/ioprio.h`. A priority is a class in bits 13-15 and
//! a level (0-7, 0 the highest) below; 0 is "none": the default, derived
//! from the CPU nice value.

use crate::errno::Errno;
use crate::syscall::{check, syscall2, syscall3};

use crate::syscall::nr;

/// `which`: `who` is a process (0: the caller).
pub const IOPRIO_WHO_PROCESS: i32 = 1;
/// `which`: `who` is a process group (0: the caller's).
pub const IOPRIO_WHO_PGRP: i32 = 2;
/// `which`: `who` is a user id (0: the caller's).
pub const IOPRIO_WHO_USER: i32 = 3;

/// No class set: the default priority.
pub const IOPRIO_CLASS_NONE: i32 = 0;
/// Real time.
pub const IOPRIO_CLASS_RT: i32 = 1;
/// Best effort.
pub const IOPRIO_CLASS_BE: i32 = 2;
/// Idle.
pub const IOPRIO_CLASS_IDLE: i32 = 3;
/// Where the class starts in a priority value.
pub const IOPRIO_CLASS_SHIFT: u32 = 13;

/// The priority value of `class` at `level` (Linux `IOPRIO_PRIO_VALUE`).
pub const fn ioprio_value(class: i32, level: i32) -> i32 {
    class << IOPRIO_CLASS_SHIFT | level
}

/// `ioprio_set(2)`: gives `who` (as `which` says) the priority `ioprio`.
pub fn ioprio_set(which: i32, who: i32, ioprio: i32) -> Result<(), Errno> {
    // SAFETY: touches no memory.
    check(unsafe {
        syscall3(
            nr::IOPRIO_SET,
            which as usize,
            who as usize,
            ioprio as usize,
        )
    })
    .map(drop)
}

/// `ioprio_get(2)`: the priority of `who` (of a group or user: the best
/// of its members').
pub fn ioprio_get(which: i32, who: i32) -> Result<i32, Errno> {
    // SAFETY: touches no memory.
    check(unsafe { syscall2(nr::IOPRIO_GET, which as usize, who as usize) }).map(|p| p as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_class_then_level() {
        assert_eq!(ioprio_value(IOPRIO_CLASS_BE, 5), 0x4005);
        assert_eq!(ioprio_value(IOPRIO_CLASS_IDLE, 0), 0x6000);
        assert_eq!(ioprio_value(IOPRIO_CLASS_NONE, 0), 0);
    }
}
