//! The forkvm guest kernel.
//!
//! The kernel is this library; `main.rs` only links it into a freestanding
//! static ELF (stable rustc, host triple, see build.rs and linker.ld). The
//! pure logic is the `forkvm-core` crate (guest/core), whose unit tests run
//! on the host; its modules are re-exported at their kernel paths
//! (`crate::mm::cow` is `forkvm_core::mm::cow`).
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

extern crate alloc;

mod arch;
mod console;
mod diag;
mod drivers;
use forkvm_core::errno;
mod fs;
mod ipc;
mod mem;
mod mm;
mod panic;
mod process;
mod programs;
mod sched;
mod stats;
mod syscall;
mod time;

use alloc::vec::Vec;

use forkvm_abi::{
    BootInfo, Platform, BOOT_FLAG_INIT, BOOT_FLAG_SCRIPT, BOOT_INFO_MAGIC, BOOT_INFO_VERSION,
    INIT_ARGV_MAX_LEN, INIT_ARGV_PHYS, SCRIPT_PHYS,
};

use crate::arch::{apic, cpu, interrupts::TIMER_VECTOR};

/// How the tick is generated (for diagnostics).
pub static TIMER_MODE: spin::Once<apic::TimerMode> = spin::Once::new();

/// Entered from `_start` with the physical address of the boot information.
pub extern "C" fn kernel_main(boot_info_phys: u64) -> ! {
    let entry_tsc = cpu::rdtsc();
    // SAFETY: the VMM wrote a BootInfo at this address, inside the
    // direct map; it is validated before use.
    let info: BootInfo =
        unsafe { core::ptr::read(mm::phys_to_virt(boot_info_phys) as *const BootInfo) };
    if info.magic != BOOT_INFO_MAGIC || info.version != BOOT_INFO_VERSION {
        panic!(
            "bad boot information (magic {:#x}, version {})",
            info.magic, info.version
        );
    }
    let platform = Platform::from_raw(info.platform)
        .unwrap_or_else(|| panic!("unknown platform {}", info.platform));

    arch::init(platform);
    time::init(info.tsc_khz, entry_tsc);
    mm::init(&info);
    let ram = mm::frame_counts().0 as u64 * 4096;
    let threads = crate::process::rlimit::compute_max_threads(
        ram,
        mm::kstack::KERNEL_STACK_SIZE,
        mm::heap::usage().1 as u64,
        mm::heap::TASK_HEAP_BYTES,
    );
    crate::process::rlimit::set_max_threads(threads).expect("computed within bounds");
    drivers::init(info.serial_gsi);
    drivers::virtio_mmio::init(
        info.virtio_console_base,
        info.virtio_console_size,
        info.virtio_console_gsi,
    );
    if drivers::virtio_mmio::console_identified() {
        drivers::virtio_console::init(info.virtio_console_base, info.virtio_console_gsi);
    }
    TIMER_MODE.call_once(|| apic::start_timer(TIMER_VECTOR, time::tick_period_tsc()));
    arch::smp::start_secondary_cpus(info.nr_cpus);

    let script_mode = info.flags & BOOT_FLAG_SCRIPT != 0;
    crate::console::set_crlf(!script_mode);
    let script = script_mode.then(|| {
        let len = info.script_len.min(forkvm_abi::SCRIPT_MAX_LEN) as usize;
        // SAFETY: the VMM copied `script_len` bytes to SCRIPT_PHYS (at
        // most SCRIPT_MAX_LEN); the region is reserved low memory.
        unsafe { core::slice::from_raw_parts(mm::phys_to_virt(SCRIPT_PHYS) as *const u8, len) }
    });
    crate::sched::init();
    populate_root(&info);
    // pid 1: init, which runs the shell (`init -c SCRIPT` for `forkvm
    // -c`), or the program `forkvm --init PATH -- ARGS` names.
    let mut argv: Vec<&[u8]> = alloc::vec![b"/sbin/forkvm/init"];
    if let Some(script) = script {
        argv.extend_from_slice(&[b"-c", script]);
    }
    if info.flags & BOOT_FLAG_INIT != 0 {
        let len = info.init_len.min(INIT_ARGV_MAX_LEN) as usize;
        // SAFETY: the VMM copied `init_len` bytes (at most
        // INIT_ARGV_MAX_LEN) to INIT_ARGV_PHYS, reserved low memory.
        let bytes = unsafe {
            core::slice::from_raw_parts(mm::phys_to_virt(INIT_ARGV_PHYS) as *const u8, len)
        };
        argv = bytes.split(|&b| b == 0).collect();
        argv.pop(); // after the last NUL
    }
    let path = argv.first().copied().unwrap_or(b"/sbin/forkvm/init");
    match crate::process::exec::spawn_user_process(path, &argv) {
        Ok(pid) => assert_eq!(pid, 1, "init must be pid 1"),
        Err(errno) => {
            let message = alloc::format!(
                "cannot start init {}: {}",
                core::str::from_utf8(path).unwrap_or("?"),
                crate::errno::name(errno).unwrap_or("E?")
            );
            crate::drivers::vmm_ports::report_boot_failure(message.as_bytes())
        }
    }
    crate::sched::idle_loop()
}

/// Fills the root file system: the initramfs the VMM loaded (a corrupt
/// one stops the boot with its byte offset and what was wrong), then
/// the device nodes and the built-in programs under `/sbin/forkvm/`.
fn populate_root(info: &BootInfo) {
    let root = crate::process::fs_struct::init_root();
    crate::fs::exec::set_builtin_by_name(info.initrd_size == 0);
    if info.initrd_size != 0 {
        // SAFETY: the VMM copied the archive there and left the range
        // out of the RAM regions, so no frame of it is ever handed out;
        // the direct map covers all RAM.
        let archive = unsafe {
            core::slice::from_raw_parts(
                mm::phys_to_virt(info.initrd_phys) as *const u8,
                info.initrd_size as usize,
            )
        };
        let start = crate::time::uptime_ns();
        if let Err(e) = crate::fs::initramfs::unpack(&root, archive) {
            let message = alloc::format!("{e}");
            crate::drivers::vmm_ports::report_boot_failure(message.as_bytes());
        }
        let spent = crate::time::uptime_ns() - start;
        crate::stats::INITRAMFS_UNPACK_US.add(spent / 1000);
    }
    let images = crate::programs::names()
        .filter_map(|name| crate::programs::find(name.as_bytes()).map(|image| (name, image)));
    crate::fs::initramfs::add_system_files(&root, images);
}
