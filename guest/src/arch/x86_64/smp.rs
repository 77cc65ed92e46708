//! Bringing up the secondary CPUs (APs).
//!
//! The VMM starts every vCPU at `_start` at once (no INIT/SIPI: on the PVM
//! host a vCPU made runnable by the VMM simply runs), each on its own root
//! page table, with its number in `rdx`. A secondary CPU enables SSE and
//! spins until the boot CPU has given it a per-CPU window and an idle
//! stack ([`start_secondary_cpus`], after the heap and the frame allocator
//! exist), then [`ap_main`] loads its own GDT/TSS/IST stacks, the shared
//! IDT, re-arms native execution on the PVM host (the descriptor-table
//! loads drop a vCPU into the host's emulator), enables its x2APIC and
//! timer and enters the scheduler's idle loop as its idle task.

use alloc::boxed::Box;
use core::sync::atomic::{AtomicU64, Ordering};

use forkvm_abi::{cpu_root_phys, MAX_CPUS};

use super::{apic, cpu, gdt, idt, interrupts, percpu, platform, syscall};
use crate::mm::frame::FrameUse;

/// Top of each secondary CPU's idle stack; `_start` waits for its entry.
#[no_mangle]
static AP_STACK_TOPS: [AtomicU64; MAX_CPUS as usize] =
    [const { AtomicU64::new(0) }; MAX_CPUS as usize];

/// Size of a secondary CPU's idle stack.
const AP_IDLE_STACK_SIZE: usize = 32 * 1024;

/// How long the boot CPU waits for the others to come up.
const BRING_UP_TIMEOUT_NS: u64 = 2_000_000_000;

#[repr(C, align(16))]
struct IdleStack([u8; AP_IDLE_STACK_SIZE]);

/// Gives CPUs 1..`nr_cpus` their per-CPU window and idle stack, lets them
/// in, and waits until each runs its idle loop. Panics if one does not
/// come up in time.
pub fn start_secondary_cpus(nr_cpus: u32) {
    percpu::set_nr_cpus(nr_cpus);
    for cpu in 1..percpu::nr_cpus() {
        let pages = {
            let table = || crate::mm::alloc_frame(FrameUse::PageTable).map(|f| f.phys());
            let tables = [table(), table(), table()];
            let data = crate::mm::alloc_frame(FrameUse::Data).map(|f| f.phys());
            match (tables, data) {
                ([Some(a), Some(b), Some(c)], Some(data)) => Some(([a, b, c], data)),
                _ => None,
            }
        };
        let (tables, data) = pages.expect("frames for a CPU's per-CPU window at boot");
        // SAFETY: fresh frames, kept for good; CPU `cpu` does not run on its
        // root yet (it spins in `_start` until its stack top appears below).
        unsafe { percpu::map_window(cpu_root_phys(cpu), tables, data, cpu) };
        let stack = Box::leak(Box::new(IdleStack([0; AP_IDLE_STACK_SIZE])));
        let top = stack as *mut IdleStack as u64 + AP_IDLE_STACK_SIZE as u64;
        AP_STACK_TOPS[cpu as usize].store(top, Ordering::Release);
    }
    let deadline = cpu::rdtsc() + crate::time::ns_to_tsc(BRING_UP_TIMEOUT_NS);
    for cpu in 1..percpu::nr_cpus() {
        while !percpu::is_online(cpu) {
            assert!(
                cpu::rdtsc() < deadline,
                "CPU {cpu} did not come up within {} ms",
                BRING_UP_TIMEOUT_NS / 1_000_000
            );
            core::hint::spin_loop();
        }
    }
}

/// A secondary CPU's first Rust code, on its idle stack.
#[no_mangle]
pub(super) extern "C" fn ap_main(cpu: u64) -> ! {
    let pvm = platform::is_pvm_native();
    gdt::init_secondary(pvm);
    idt::load();
    platform::rearm_native();
    apic::init();
    syscall::init();
    cpu::init_fsgsbase();
    crate::sched::init();
    apic::start_timer(interrupts::TIMER_VECTOR, crate::time::tick_period_tsc());
    percpu::set_online(cpu as u32);
    crate::sched::idle_loop()
}

/// The message a panic requested on another CPU carries.
static PANIC_MESSAGE: spin::Mutex<alloc::string::String> =
    spin::Mutex::new(alloc::string::String::new());

/// Makes CPU `cpu` panic with `message` (`forkvm_diag(DIAG_PANIC_ON_CPU)`,
/// which tests that a panic on any CPU ends the VM and is reported with
/// its CPU): the running CPU panics itself; another online one gets the
/// request in its per-CPU data and an IPI. Returns `false` if there is no
/// such CPU online; otherwise, for another CPU, waits (up to a second)
/// for the VMM to stop the VM and returns `true` if it did not.
pub fn request_panic(cpu: u32, message: &str) -> bool {
    if cpu == percpu::cpu_id() {
        panic!("{message}");
    }
    let Some(target) = percpu::cpu_local(cpu).filter(|_| percpu::is_online(cpu)) else {
        return false;
    };
    *PANIC_MESSAGE.lock() = alloc::string::String::from(message);
    target.panic_request.store(1, Ordering::Release);
    apic::send_ipi(cpu, interrupts::CALL_FUNCTION_VECTOR);
    let deadline = cpu::rdtsc() + crate::time::ns_to_tsc(1_000_000_000);
    while cpu::rdtsc() < deadline {
        core::hint::spin_loop();
    }
    true
}

/// Called on a CPU that another asked to panic.
pub(super) fn panic_requested() -> ! {
    let message = PANIC_MESSAGE.lock().clone();
    panic!("{message}");
}
