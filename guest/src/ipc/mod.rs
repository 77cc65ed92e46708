//! System V IPC (Linux ipc/): semaphore sets, kept per IPC namespace, and
//! the per-process undo lists that `CLONE_SYSVSEM` shares (Linux
//! `copy_semundo`) and exit applies (`exit_sem`).

pub mod sem;

pub use forkvm_core::ipc::sem_array;
