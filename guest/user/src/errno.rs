//! Linux errno values (x86-64 uses the generic numbering of
//! `include/uapi/asm-generic/errno-base.h` and `errno.h`).
//!
//! Programs report failures as `NAME N` (e.g. `ENOMEM 12`) so a message from
//! the guest kernel and one from the host's Linux read the same, and a wrong
//! errno from the guest is obvious.
//!
//! The numbers and names are defined once, in `forkvm_abi::linux::errno`,
//! which the guest kernel uses too.

pub use forkvm_abi::linux::errno::Errno;
