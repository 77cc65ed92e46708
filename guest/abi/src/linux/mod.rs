//! Linux's user ABI on x86-64, defined once for the guest kernel (which
//! implements it) and the user programs (which run on it and on the host's
//! Linux): system-call numbers, errno values, signal numbers, clone flags,
//! wait statuses, open flags, fcntl commands and mmap flags. Names and values are Linux's
//! (`include/uapi/...`).

pub mod clone;
pub mod errno;
pub mod fcntl;
pub mod mman;
pub mod nr;
pub mod signal;
pub mod wait;
