//! Linux's user ABI on x86-64, defined once for the guest kernel (which
//! implements it) and the user programs (which run on it and on the host's
//! Linux): errno values, signal numbers, clone flags, wait statuses, open
//! flags and fcntl commands. Names and values are Linux's
//! (`include/uapi/...`).

pub mod clone;
pub mod errno;
pub mod fcntl;
pub mod signal;
pub mod wait;
