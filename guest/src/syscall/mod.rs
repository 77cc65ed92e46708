//! The Linux x86-64 system call table: same numbers, same arguments, and
//! negative errno values on failure.

use crate::arch::entry::TrapFrame;
use crate::errno::ENOSYS;

/// System call numbers (`arch/x86/entry/syscalls/syscall_64.tbl`).
pub mod nr {
    pub const GETPID: u64 = 39;
}

/// Result of a system call: a value or an errno.
pub type SysResult = Result<u64, i32>;

/// Runs the system call in `frame.rax` with the arguments in rdi, rsi,
/// rdx, r10, r8, r9, and stores the result (or `-errno`) in `frame.rax`.
pub fn dispatch(frame: &mut TrapFrame) {
    let result: SysResult = match frame.rax {
        nr::GETPID => Ok(1),
        _ => Err(ENOSYS),
    };
    frame.rax = match result {
        Ok(value) => value,
        Err(errno) => (-i64::from(errno)) as u64,
    };
}
