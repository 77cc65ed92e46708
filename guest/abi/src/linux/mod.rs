//! Linux's user ABI on x86-64, defined once for the guest kernel (which
//! implements it) and the user programs (which run on it and on the host's
//! Linux): errno values, signal numbers, clone flags and wait statuses.
//! Names and values are Linux's (`include/uapi/...`).

pub mod clone;
pub mod errno;
pub mod signal;
pub mod wait;
