//! The guest kernel's pure logic: code that needs no hardware, so the
//! kernel (`guest`) links it and `cargo test` runs its unit tests on the
//! host. The modules keep the kernel's layout (`mm::cow` here is
//! `crate::mm::cow` there, re-exported); what touches the machine (the
//! direct map, the frame allocator's storage, devices) stays in the
//! kernel and reaches this code through traits such as
//! [`mm::paging::TableAccess`].
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

extern crate alloc;

pub mod errno;

pub mod drivers {
    //! The pure parts of the drivers: virtio-mmio identification and the
    //! split virtqueue's ring logic.
    pub mod virtio_mmio;
    pub mod virtqueue;
}

pub mod fs {
    //! The file tree (a ramfs): `dentry` (directories), `inode` (files,
    //! symlinks, devices), `page_cache` (a file's pages), walked by
    //! `namei`, checked by `permission`, filled at boot by `initramfs`
    //! from the archive `cpio` parses; `shebang` reads a script's `#!`
    //! line for exec.
    pub mod cpio;
    pub mod dentry;
    pub mod initramfs;
    pub mod inode;
    pub mod namei;
    pub mod page_cache;
    pub mod permission;
    pub mod shebang;
}

pub mod ipc {
    //! System V semaphore sets: the array and its operations.
    pub mod sem_array;
}

pub mod mm {
    //! Physical frame accounting, user areas, the page-table walker and
    //! copy-on-write.
    pub mod cow;
    pub mod frame;
    pub mod paging;
    pub mod vma;
}

pub mod sched {
    //! The fair class's EEVDF run queue and Linux's nice-to-weight table.
    pub mod fair;
}

pub mod process {
    //! Per-process rules that need no task: ELF headers, I/O priorities,
    //! resource limits, the alternate signal stack, pending signals and
    //! their queue, the initial user stack.
    pub mod elf;
    pub mod io_context;
    pub mod rlimit;
    pub mod sigaltstack;
    pub mod sigqueue;
    pub mod user_stack;
}
