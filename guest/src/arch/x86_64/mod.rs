//! x86-64 support: boot entry, descriptor tables, interrupt entry, APIC,
//! and the platform switch between plain HVM and the PVM host.

pub mod apic;
pub mod boot;
pub mod cpu;
pub mod entry;
pub mod gdt;
pub mod idt;
pub mod interrupts;
pub mod ioapic;
pub mod percpu;
pub mod platform;
pub mod signal;
pub mod smp;
pub mod switch;
pub mod syscall;
pub mod tlb;
pub mod user_probe;

use forkvm_abi::Platform;

/// Brings up the boot CPU: descriptor tables, exception handling, APIC.
/// Interrupts stay disabled.
pub fn init(platform: Platform) {
    platform::init(platform);
    // Before anything can trap: the entry code reads the per-CPU window.
    percpu::init_boot_cpu();
    gdt::init(platform::is_pvm_native());
    idt::init(platform::is_pvm_native());
    platform::rearm_native();
    ioapic::mask_legacy_pic();
    assert!(
        apic::has_x2apic(),
        "the CPU offers no x2APIC (the VMM passes KVM's supported CPUID)"
    );
    apic::init();
    syscall::init();
    cpu::init_fsgsbase();
}
