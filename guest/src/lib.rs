//! The forkvm guest kernel.
//!
//! The kernel is this library; `main.rs` only links it into a freestanding
//! static ELF (stable rustc, host triple, see build.rs and linker.ld). The
//! pure logic modules also build for the host, where `cargo test` runs
//! their unit tests.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

extern crate alloc;

#[cfg(not(test))]
mod arch;
#[cfg(not(test))]
mod console;
#[cfg(not(test))]
mod diag;
mod drivers;
mod errno;
mod fs;
mod ipc;
#[cfg(not(test))]
mod mem;
mod mm;
#[cfg(not(test))]
mod panic;
mod process;
#[cfg(not(test))]
mod programs;
#[cfg(not(test))]
mod sched;
#[cfg(not(test))]
mod stats;
#[cfg(not(test))]
mod syscall;
#[cfg(not(test))]
mod time;

#[cfg(not(test))]
pub use kernel::*;

#[cfg(not(test))]
mod kernel {
    use forkvm_abi::{
        BootInfo, Platform, BOOT_FLAG_SCRIPT, BOOT_INFO_MAGIC, BOOT_INFO_VERSION, SCRIPT_PHYS,
    };

    use crate::arch::{self, apic, cpu, interrupts::TIMER_VECTOR};
    use crate::{drivers, mm, time};

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
        let threads =
            crate::process::rlimit::compute_max_threads(ram, mm::kstack::KERNEL_STACK_SIZE);
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

        let script_mode = info.flags & BOOT_FLAG_SCRIPT != 0;
        crate::console::set_crlf(!script_mode);
        let script = script_mode.then(|| {
            let len = info.script_len.min(forkvm_abi::SCRIPT_MAX_LEN) as usize;
            // SAFETY: the VMM copied `script_len` bytes to SCRIPT_PHYS (at
            // most SCRIPT_MAX_LEN); the region is reserved low memory.
            unsafe { core::slice::from_raw_parts(mm::phys_to_virt(SCRIPT_PHYS) as *const u8, len) }
        });
        crate::sched::init();
        // pid 1: init, which runs the shell (`init -c SCRIPT` for `forkvm -c`).
        let mut argv: alloc::vec::Vec<&[u8]> = alloc::vec![b"init"];
        if let Some(script) = script {
            argv.extend_from_slice(&[b"-c", script]);
        }
        match crate::process::exec::spawn_user_process(b"init", &argv) {
            Ok(pid) => assert_eq!(pid, 1, "init must be pid 1"),
            Err(errno) => panic!(
                "cannot start init: {}",
                crate::errno::name(errno).unwrap_or("E?")
            ),
        }
        crate::sched::idle_loop()
    }
}
