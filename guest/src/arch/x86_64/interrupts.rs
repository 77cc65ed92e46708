//! Vector assignment and dispatch of interrupts and exceptions.

use core::sync::atomic::Ordering;

use super::apic;
use super::cpu::read_cr2;
use super::entry::{TrapFrame, UserContext};

/// Local APIC timer (the tick).
pub const TIMER_VECTOR: u8 = 0x20;
/// Inter-processor interrupt: the sender left work in the target's
/// per-CPU data (today: a panic request of `forkvm_diag`).
pub const CALL_FUNCTION_VECTOR: u8 = 0xf1;
/// IPI: the target must reschedule (its NEED_RESCHED is set), or leave
/// its idle loop's halt to pick up work.
pub const RESCHEDULE_VECTOR: u8 = 0xf0;
/// IPI: the target must flush its TLB (see `tlb`).
pub const TLB_FLUSH_VECTOR: u8 = 0xf2;
/// First vector used for IOAPIC lines: GSI n arrives as `IRQ_BASE + n`.
pub const IRQ_BASE: u8 = 0x20;

const EXCEPTION_NAMES: [&str; 32] = [
    "#DE divide error",
    "#DB debug",
    "NMI",
    "#BP breakpoint",
    "#OF overflow",
    "#BR bound range",
    "#UD invalid opcode",
    "#NM device not available",
    "#DF double fault",
    "coprocessor segment overrun",
    "#TS invalid TSS",
    "#NP segment not present",
    "#SS stack fault",
    "#GP general protection",
    "#PF page fault",
    "reserved 15",
    "#MF x87 floating point",
    "#AC alignment check",
    "#MC machine check",
    "#XM SIMD floating point",
    "#VE virtualization",
    "#CP control protection",
    "reserved 22",
    "reserved 23",
    "reserved 24",
    "reserved 25",
    "reserved 26",
    "reserved 27",
    "#HV hypervisor injection",
    "#VC VMM communication",
    "#SX security",
    "reserved 31",
];

const PAGE_FAULT: u64 = 14;

pub(super) fn dispatch(ctx: &mut UserContext) {
    match ctx.frame.vector {
        super::syscall::SYSCALL_VECTOR => crate::syscall::dispatch(ctx),
        v if v < 32 => exception(&ctx.frame),
        v if v == u64::from(TIMER_VECTOR) => {
            apic::rearm_timer();
            let local = super::percpu::this_cpu();
            local.ticks.fetch_add(1, Ordering::Relaxed);
            // The clock is the boot CPU's; every CPU schedules.
            if local.cpu.load(Ordering::Relaxed) == 0 {
                crate::time::tick();
            }
            crate::time::tick_cpu_timers();
            crate::sched::tick();
            apic::eoi();
        }
        v if v == u64::from(RESCHEDULE_VECTOR) => {
            super::percpu::this_cpu()
                .ipis_received
                .fetch_add(1, Ordering::Relaxed);
            apic::eoi();
        }
        v if v == u64::from(TLB_FLUSH_VECTOR) => {
            super::percpu::this_cpu()
                .ipis_received
                .fetch_add(1, Ordering::Relaxed);
            apic::eoi();
            super::tlb::serve_pending();
        }
        v if v == u64::from(CALL_FUNCTION_VECTOR) => {
            let local = super::percpu::this_cpu();
            local.ipis_received.fetch_add(1, Ordering::Relaxed);
            apic::eoi();
            if local.panic_request.load(Ordering::Acquire) != 0 {
                super::smp::panic_requested();
            }
        }
        v if v == u64::from(apic::SPURIOUS_VECTOR) => {}
        v if v >= u64::from(IRQ_BASE) && v < u64::from(IRQ_BASE) + 24 => {
            crate::drivers::handle_irq((v - u64::from(IRQ_BASE)) as u32);
            apic::eoi();
        }
        v => {
            crate::println!("kernel: unexpected interrupt vector {v:#x}");
            apic::eoi();
        }
    }
}

use crate::process::wait::WaitStatus;
use forkvm_abi::linux::signal::Signal;

/// An exception in user mode: a page fault the address space resolves, or
/// the signal Linux would send (`force_sig_fault`), delivered on the way
/// back to user mode: to a handler if one is installed and the signal is
/// neither blocked nor ignored, else it kills the task.
fn user_exception(frame: &TrapFrame) {
    use crate::mm::cow::{Access, FaultResult};
    use crate::process::signal::{SigFields, SigInfo, SEGV_ACCERR, SEGV_MAPERR, SI_KERNEL};
    // si_code values of the other faults (Linux `asm-generic/siginfo.h`).
    const FPE_INTDIV: i32 = 1;
    const ILL_ILLOPN: i32 = 2;
    const BUS_ADRALN: i32 = 1;
    const BUS_ADRERR: i32 = 2;
    const TRAP_BRKPT: i32 = 1;
    use Signal as S;
    let (signal, code, addr) = match frame.vector {
        PAGE_FAULT => {
            let address = read_cr2();
            let mut access = Access::from_error_code(frame.error_code);
            // The PVM host does not report instruction fetches (error-code
            // bit 4); a fault at the instruction being fetched is one.
            access.execute |= address >= frame.rip && address < frame.rip.saturating_add(16);
            let mm = crate::sched::current().mm();
            let Some(mm) = mm else {
                crate::process::exit::do_exit(WaitStatus::for_signal(Signal::SIGSEGV));
            };
            match mm.handle_fault(address, access) {
                FaultResult::Segv if mm.has_vma(address) => (S::SIGSEGV, SEGV_ACCERR, address),
                FaultResult::Segv => (S::SIGSEGV, SEGV_MAPERR, address),
                FaultResult::Sigbus => (S::SIGBUS, BUS_ADRERR, address),
                FaultResult::Oom => {
                    drop(mm);
                    crate::process::exit::do_exit(WaitStatus::for_signal(Signal::SIGKILL));
                }
                _ => return,
            }
        }
        0 => (S::SIGFPE, FPE_INTDIV, frame.rip),
        16 | 19 => (S::SIGFPE, 0, frame.rip),
        1 | 3 => (S::SIGTRAP, TRAP_BRKPT, 0),
        6 => (S::SIGILL, ILL_ILLOPN, frame.rip),
        17 => (S::SIGBUS, BUS_ADRALN, 0),
        // Segment not present and stack-segment faults (a stack access at
        // a non-canonical rsp): SIGBUS from the kernel, as Linux sends.
        11 | 12 => (S::SIGBUS, SI_KERNEL, 0),
        // #GP and the rest: SIGSEGV from the kernel, no address.
        _ => (S::SIGSEGV, SI_KERNEL, 0),
    };
    if crate::process::signal::unhandled_signal(signal) {
        show_signal_msg(frame, signal, addr);
    }
    let fields = if code == SI_KERNEL {
        SigFields::None
    } else {
        SigFields::Fault { addr }
    };
    crate::process::signal::force_sig(SigInfo {
        signo: signal,
        code,
        fields,
    });
}

/// The kernel log line Linux prints when a fault kills a task (x86
/// `show_signal_msg` and `do_trap`, with `show_unhandled_signals` on): a
/// program that crashes says where, instead of only dying. Rate-limited
/// like Linux's `printk_ratelimit` (a burst of 10 per 5 s), so a fuzzer's
/// dying workers cannot flood the console.
fn show_signal_msg(frame: &TrapFrame, signal: Signal, addr: u64) {
    use core::sync::atomic::{AtomicU64, Ordering};
    const BURST: u64 = 10;
    const INTERVAL_NS: u64 = 5_000_000_000;
    static WINDOW_START: AtomicU64 = AtomicU64::new(0);
    static PRINTED: AtomicU64 = AtomicU64::new(0);
    static SUPPRESSED: AtomicU64 = AtomicU64::new(0);
    let now = super::cpu::rdtsc();
    let start = WINDOW_START.load(Ordering::Relaxed);
    if start == 0 || now.saturating_sub(start) > crate::time::ns_to_tsc(INTERVAL_NS) {
        WINDOW_START.store(now, Ordering::Relaxed);
        PRINTED.store(0, Ordering::Relaxed);
        let missed = SUPPRESSED.swap(0, Ordering::Relaxed);
        if missed > 0 {
            crate::println!("forkvm: show_signal_msg: {missed} callbacks suppressed");
        }
    }
    if PRINTED.fetch_add(1, Ordering::Relaxed) >= BURST {
        SUPPRESSED.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let task = crate::sched::current();
    let comm = task.comm();
    let comm = core::str::from_utf8(&comm)
        .unwrap_or("?")
        .trim_end_matches('\0');
    let (ip, sp, error) = (frame.rip, frame.rsp, frame.error_code);
    match frame.vector {
        PAGE_FAULT => crate::println!(
            "forkvm: {comm}[{}]: segfault at {addr:x} ip {ip:016x} sp {sp:016x} error {error:x}",
            task.pid
        ),
        13 => crate::println!(
            "forkvm: traps: {comm}[{}] general protection fault ip:{ip:x} sp:{sp:x} error:{error:x}",
            task.pid
        ),
        v => crate::println!(
            "forkvm: traps: {comm}[{}] trap {} ip:{ip:x} sp:{sp:x} error:{error:x} (signal {})",
            task.pid,
            EXCEPTION_NAMES.get(v as usize).copied().unwrap_or("?"),
            signal.number()
        ),
    }
}

/// Kernel-mode exceptions: nothing recovers from them, so they stop the
/// kernel with enough state to debug it.
fn exception(frame: &TrapFrame) {
    if frame.is_from_user() {
        // The tick probe ends in `ud2`; this does not return if it ran.
        super::user_probe::finish_from_trap(frame);
        return user_exception(frame);
    }
    let name = EXCEPTION_NAMES[frame.vector as usize];
    let mode = if frame.is_from_user() {
        "user"
    } else {
        "kernel"
    };
    if frame.vector == PAGE_FAULT {
        panic!(
            "unhandled exception {name} (vector {}) in {mode} mode: rip={:#x} cr2={:#x} error={:#x} rsp={:#x}",
            frame.vector,
            frame.rip,
            read_cr2(),
            frame.error_code,
            frame.rsp
        );
    }
    panic!(
        "unhandled exception {name} (vector {}) in {mode} mode: rip={:#x} error={:#x} rsp={:#x}",
        frame.vector, frame.rip, frame.error_code, frame.rsp
    );
}
