//! The forkvm guest kernel.
//!
//! The kernel is this library; `main.rs` only links it into a freestanding
//! static ELF (stable rustc, host triple, see build.rs and linker.ld). The
//! pure logic modules also build for the host, where `cargo test` runs
//! their unit tests.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

#[cfg(not(test))]
mod arch;
#[cfg(not(test))]
mod console;
#[cfg(not(test))]
mod diag;
#[cfg(not(test))]
mod drivers;
mod errno;
#[cfg(not(test))]
mod fs;
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
mod shell;
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
    use crate::{drivers, mm, shell, time};

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
        drivers::init(info.serial_gsi);
        TIMER_MODE.call_once(|| apic::start_timer(TIMER_VECTOR, time::tick_period_tsc()));

        let script_mode = info.flags & BOOT_FLAG_SCRIPT != 0;
        crate::console::set_crlf(!script_mode);
        let script = script_mode.then(|| {
            // SAFETY: the VMM copied `script_len` bytes to SCRIPT_PHYS (it
            // enforces SCRIPT_MAX_LEN); the region is reserved low memory.
            let bytes = unsafe {
                core::slice::from_raw_parts(
                    mm::phys_to_virt(SCRIPT_PHYS) as *const u8,
                    info.script_len as usize,
                )
            };
            core::str::from_utf8(bytes).unwrap_or_else(|_| panic!("boot script is not UTF-8"))
        });
        *SCRIPT.lock() = script;
        crate::sched::init();
        crate::process::kernel_thread(b"kshell", shell_thread, 0).expect("cannot start the shell");
        crate::sched::idle_loop()
    }

    /// The `forkvm -c` script, if any, for the shell thread.
    static SCRIPT: spin::Mutex<Option<&'static str>> = spin::Mutex::new(None);

    extern "C" fn shell_thread(_: usize) -> ! {
        let script = *SCRIPT.lock();
        shell::run(script)
    }
}
