//! The one place that knows which kind of KVM host the kernel runs on.
//!
//! * `Hvm`: an ordinary VMX/SVM guest; everything is architectural.
//! * `PvmNative`: our CI machines' PVM host with the kernel switched to
//!   native execution (the VMM sets the control MSR before the first run).
//!   Events delivered to the kernel switch it back to the host's emulator
//!   until the MSR is written again, which the entry stubs do; returns to
//!   user mode must be `sti; iretq`; kernel page-table entries need U=1.
//!
//! Nothing outside `arch` asks which platform runs.

use core::sync::atomic::{AtomicBool, Ordering};

use forkvm_abi::{Platform, PVM_CONTROL_MSR};

use super::cpu::wrmsr;

static PVM_NATIVE: AtomicBool = AtomicBool::new(false);

/// Records the platform from the boot information.
pub fn init(platform: Platform) {
    let pvm = platform == Platform::PvmNative;
    PVM_NATIVE.store(pvm, Ordering::Relaxed);
    super::entry::set_pvm_native(pvm);
}

/// Whether the kernel runs natively on the PVM host.
pub fn is_pvm_native() -> bool {
    PVM_NATIVE.load(Ordering::Relaxed)
}

/// The platform in force.
pub fn current() -> Platform {
    if is_pvm_native() {
        Platform::PvmNative
    } else {
        Platform::Hvm
    }
}

/// Defaults of the kernel's settings whose best value depends on what a
/// trap costs on this platform (measured; docs/ARCHITECTURE.md): where a
/// page fault, a TLB flush or an interrupt costs tens of microseconds (the
/// PVM host), eager work that avoids one pays; on ordinary hardware
/// virtualisation it does not. Each can still be set at run time.
#[derive(Clone, Copy, Debug)]
pub struct Defaults {
    /// `vm.fork_copy_max_pages`: up to this many private writable pages a
    /// fork copies at once instead of write-protecting them.
    pub fork_copy_max_pages: u64,
    /// `dev.console.busy_poll_ns`: how long the idle CPU polls the console
    /// for a waiting reader before it halts.
    pub console_busy_poll_ns: u64,
}

/// The defaults for the platform in force.
pub fn defaults() -> Defaults {
    if is_pvm_native() {
        Defaults {
            fork_copy_max_pages: 32,
            console_busy_poll_ns: 200_000,
        }
    } else {
        Defaults {
            fork_copy_max_pages: 0,
            console_busy_poll_ns: 0,
        }
    }
}

/// Page-table bits every kernel mapping needs on this platform: the PVM
/// host requires U=1 on kernel pages (their protection then comes from
/// separate address spaces, not from the U bit).
pub fn kernel_page_flags() -> u64 {
    if is_pvm_native() {
        crate::mm::paging::flags::USER
    } else {
        0
    }
}

/// On the PVM host, switches kernel execution back to native after an
/// instruction that the host emulates and that leaves it emulating
/// (descriptor-table and segment loads). A no-op elsewhere.
pub fn rearm_native() {
    if is_pvm_native() {
        // SAFETY: the PVM control MSR exists on this platform; 1 = native.
        unsafe { wrmsr(PVM_CONTROL_MSR, 1) };
    }
}
