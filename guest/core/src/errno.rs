//! Linux errno values (defined once in `forkvm_abi::linux::errno`, shared
//! with the user programs), plus the kernel-internal restart codes.
//! System calls return them negated, as Linux does.

pub use forkvm_abi::linux::errno::*;

/// Restart the system call unless a handler without SA_RESTART runs
/// (never seen by user space, like the other ERESTART codes).
pub const ERESTARTSYS: i32 = 512;
/// Restart the system call (never seen by user space).
pub const ERESTARTNOINTR: i32 = 513;
/// Restart the system call only if no handler runs.
pub const ERESTARTNOHAND: i32 = 514;
