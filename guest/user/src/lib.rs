//! Runtime for forkvm's user programs: freestanding static x86-64 ELFs that
//! speak only the Linux system-call ABI, so the same binary runs on the forkvm
//! guest kernel and, unmodified, on the host's Linux (which is how they are
//! tested).
//!
//! A program is `#![no_std]`, `#![no_main]`, defines
//! `fn main(args: &[&[u8]], env: &[&[u8]]) -> i32` and names it with
//! [`entry!`]; this crate supplies `_start`, the panic handler, the C memory
//! functions the compiler calls, and (feature `heap`) a global allocator.
//!
//! Under `cargo test` the library is an ordinary std crate: everything that
//! would clash with std (`_start`, the panic handler, `memcpy` and friends,
//! the `#[global_allocator]`) is compiled only outside tests.
#![cfg_attr(not(test), no_std)]
#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

#[cfg(feature = "heap")]
pub mod alloc;
pub mod clone;
pub mod clone_probe;
pub mod cred;
pub mod errno;
#[cfg(feature = "heap")]
pub mod exec;
pub mod forkvm;
#[cfg(feature = "heap")]
pub mod harness;
pub mod io;
pub mod ioprio;
pub mod latency;
#[cfg(feature = "heap")]
pub mod linux_init;
#[cfg(not(test))]
mod mem;
#[cfg(not(test))]
mod panic;
pub mod pingpong;
pub mod rusage;
pub mod scale;
pub mod sched;
pub mod sem;
pub mod shell_parse;
pub mod shell_report;
pub mod signal;
pub mod spinners;
pub mod start;
pub mod stats;
pub mod syscall;
pub mod time;
pub mod userns;

pub use errno::Errno;

/// Names a program's `main(args: &[&[u8]], env: &[&[u8]]) -> i32` as the
/// function `_start` calls once it has parsed the initial stack; its return
/// value becomes the `exit_group` status.
///
/// ```text
/// #![no_std]
/// #![no_main]
/// forkvm_user::entry!(main);
/// fn main(args: &[&[u8]], _env: &[&[u8]]) -> i32 { 0 }
/// ```
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        /// Called by `forkvm_user::start` (the symbol is looked up by name).
        #[no_mangle]
        fn forkvm_user_main(args: &[&[u8]], env: &[&[u8]]) -> i32 {
            let main: fn(&[&[u8]], &[&[u8]]) -> i32 = $main;
            main(args, env)
        }
    };
}
