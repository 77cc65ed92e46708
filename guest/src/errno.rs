//! Linux errno values (x86-64, `include/uapi/asm-generic/errno*.h`).
//! System calls return them negated, as Linux does.
#![cfg_attr(test, allow(dead_code))] // most users are kernel-only modules

pub const EPERM: i32 = 1;
pub const ENOENT: i32 = 2;
pub const ESRCH: i32 = 3;
pub const EINTR: i32 = 4;
pub const EIO: i32 = 5;
pub const E2BIG: i32 = 7;
pub const ENOEXEC: i32 = 8;
pub const EBADF: i32 = 9;
pub const ECHILD: i32 = 10;
pub const EAGAIN: i32 = 11;
pub const ENOMEM: i32 = 12;
pub const EACCES: i32 = 13;
pub const EFAULT: i32 = 14;
pub const EBUSY: i32 = 16;
pub const EEXIST: i32 = 17;
pub const ENOTDIR: i32 = 20;
pub const EISDIR: i32 = 21;
pub const EINVAL: i32 = 22;
pub const EPIPE: i32 = 32;
pub const EMFILE: i32 = 24;
pub const ENODEV: i32 = 19;
pub const EFBIG: i32 = 27;
pub const ENOSPC: i32 = 28;
pub const ERANGE: i32 = 34;
pub const EIDRM: i32 = 43;
pub const ENOSYS: i32 = 38;
pub const ETIMEDOUT: i32 = 110;
pub const ENAMETOOLONG: i32 = 36;
pub const ENOTEMPTY: i32 = 39;
pub const EOPNOTSUPP: i32 = 95;
/// Restart the system call unless a handler without SA_RESTART runs
/// (never seen by user space, like the other ERESTART codes).
pub const ERESTARTSYS: i32 = 512;
/// Restart the system call (never seen by user space).
pub const ERESTARTNOINTR: i32 = 513;
/// Restart the system call only if no handler runs.
pub const ERESTARTNOHAND: i32 = 514;

/// The symbolic name of an errno, for messages.
pub fn name(errno: i32) -> &'static str {
    match errno {
        EPERM => "EPERM",
        ENOENT => "ENOENT",
        ETIMEDOUT => "ETIMEDOUT",
        ESRCH => "ESRCH",
        EINTR => "EINTR",
        EIO => "EIO",
        E2BIG => "E2BIG",
        ENOEXEC => "ENOEXEC",
        EBADF => "EBADF",
        ECHILD => "ECHILD",
        EAGAIN => "EAGAIN",
        ENOMEM => "ENOMEM",
        EACCES => "EACCES",
        EFAULT => "EFAULT",
        EFBIG => "EFBIG",
        ERANGE => "ERANGE",
        EIDRM => "EIDRM",
        ENOSPC => "ENOSPC",
        EEXIST => "EEXIST",
        ENODEV => "ENODEV",
        EINVAL => "EINVAL",
        EPIPE => "EPIPE",
        EMFILE => "EMFILE",
        ENOSYS => "ENOSYS",
        EBUSY => "EBUSY",
        ENOTDIR => "ENOTDIR",
        EISDIR => "EISDIR",
        ENAMETOOLONG => "ENAMETOOLONG",
        ENOTEMPTY => "ENOTEMPTY",
        EOPNOTSUPP => "EOPNOTSUPP",
        _ => "E?",
    }
}
// The file system's.
pub const ESPIPE: i32 = 29;
pub const ELOOP: i32 = 40;
pub const ENXIO: i32 = 6;
