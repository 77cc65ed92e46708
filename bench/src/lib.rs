//! bench: the forkvm measuring harness (boots guests, measures them).
//!
//! The measurements live in library modules so that both the criterion
//! benchmarks (`cargo bench`) and command-line tools can use them.

pub mod boot;
pub mod entries;
pub mod forkbench;
pub mod gate;
pub mod guest_harness;
pub mod host_linux;
pub mod linux_reference;
pub mod overhead;
pub mod probe;
pub mod progress;
pub mod report;
pub mod scale;
pub mod stats;
pub mod sweep;
pub mod traps;
