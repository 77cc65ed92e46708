//! Thin wrappers around single privileged instructions.

use core::arch::asm;

/// Writes a byte to an I/O port.
#[inline]
pub fn outb(port: u16, value: u8) {
    // SAFETY: port I/O has no memory effects; the ports we use belong to
    // devices the VMM emulates.
    unsafe {
        asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack, preserves_flags))
    }
}

/// Writes a 32-bit value to an I/O port.
#[inline]
pub fn outl(port: u16, value: u32) {
    // SAFETY: as for `outb`.
    unsafe {
        asm!("out dx, eax", in("dx") port, in("eax") value, options(nomem, nostack, preserves_flags))
    }
}

/// Reads a byte from an I/O port.
#[inline]
pub fn inb(port: u16) -> u8 {
    let value: u8;
    // SAFETY: as for `outb`.
    unsafe {
        asm!("in al, dx", in("dx") port, out("al") value, options(nomem, nostack, preserves_flags))
    }
    value
}

/// Reads a model-specific register.
#[inline]
pub fn rdmsr(msr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: callers only name MSRs the platform has (checked via CPUID or
    // the boot information); rdmsr has no memory effects.
    unsafe {
        asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags))
    }
    (u64::from(hi) << 32) | u64::from(lo)
}

/// Writes a model-specific register.
///
/// # Safety
/// The MSR must exist and the value must not break the kernel's invariants
/// (e.g. EFER, the PVM control MSR).
#[inline]
pub unsafe fn wrmsr(msr: u32, value: u64) {
    // SAFETY: the caller upholds the contract above.
    unsafe {
        asm!("wrmsr", in("ecx") msr, in("eax") value as u32, in("edx") (value >> 32) as u32,
             options(nostack, preserves_flags))
    }
}

/// Reads the time-stamp counter.
#[inline]
pub fn rdtsc() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: rdtsc only reads the counter.
    unsafe { asm!("rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags)) }
    (u64::from(hi) << 32) | u64::from(lo)
}

/// Result of the `cpuid` instruction.
#[derive(Clone, Copy, Debug)]
pub struct CpuidResult {
    pub eax: u32,
    pub ebx: u32,
    pub ecx: u32,
    pub edx: u32,
}

/// Executes `cpuid` for `leaf`/`subleaf`.
pub fn cpuid(leaf: u32, subleaf: u32) -> CpuidResult {
    let r = core::arch::x86_64::__cpuid_count(leaf, subleaf);
    CpuidResult {
        eax: r.eax,
        ebx: r.ebx,
        ecx: r.ecx,
        edx: r.edx,
    }
}

/// Reads CR2 (the faulting address of the last page fault).
#[inline]
pub fn read_cr2() -> u64 {
    let value: u64;
    // SAFETY: reading CR2 has no side effects.
    unsafe { asm!("mov {}, cr2", out(reg) value, options(nomem, nostack, preserves_flags)) }
    value
}

/// Invalidates the TLB entry for `address`.
#[inline]
pub fn invlpg(address: u64) {
    // SAFETY: invlpg only drops a cached translation.
    unsafe { asm!("invlpg [{}]", in(reg) address, options(nostack, preserves_flags)) }
}

/// Loads CR3 (switches address space; flushes non-global TLB entries).
///
/// # Safety
/// `root` must be a valid PML4 that maps the kernel.
#[inline]
pub unsafe fn write_cr3(root: u64) {
    // SAFETY: forwarded from the caller.
    unsafe { asm!("mov cr3, {}", in(reg) root, options(nostack, preserves_flags)) }
}

const MSR_FS_BASE: u32 = 0xc000_0100;
const MSR_GS_BASE: u32 = 0xc000_0101;
const CR4_FSGSBASE: u64 = 1 << 16;

/// Whether `rdfsbase`/`wrfsbase` are enabled (CR4.FSGSBASE). They are
/// plain instructions where the FS_BASE `wrmsr` traps to the hypervisor
/// (~3 us on the PVM host, twice per switch between two threads with
/// their own TLS). User code may then change its FS base itself, so the
/// register, not a cached value, is the truth for the running task (as in
/// Linux with FSGSBASE).
static FSGSBASE: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// The FS base last written with `wrmsr` (without FSGSBASE, only the
/// kernel changes it, so an unchanged value is not written again).
static FS_BASE: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Enables the FS/GS base instructions if the CPU has them (CPUID leaf 7
/// EBX bit 0), like Linux at boot.
pub fn init_fsgsbase() {
    if cpuid(0, 0).eax < 7 || cpuid(7, 0).ebx & 1 == 0 {
        return;
    }
    // SAFETY: setting CR4.FSGSBASE only makes the four base instructions
    // legal; the CPU has them (checked above).
    unsafe {
        let cr4: u64;
        asm!("mov {}, cr4", out(reg) cr4, options(nomem, nostack, preserves_flags));
        asm!("mov cr4, {}", in(reg) cr4 | CR4_FSGSBASE, options(nomem, nostack, preserves_flags));
    }
    // The FS base before: what `set_fs_base` assumed was loaded.
    let current = FS_BASE.load(core::sync::atomic::Ordering::Relaxed);
    FSGSBASE.store(true, core::sync::atomic::Ordering::Relaxed);
    // SAFETY: FSGSBASE is now on; the kernel makes no fs-relative accesses.
    unsafe { asm!("wrfsbase {}", in(reg) current, options(nomem, nostack, preserves_flags)) };
}

/// Whether the FS/GS base instructions are enabled (for kernel and user).
pub fn has_fsgsbase() -> bool {
    FSGSBASE.load(core::sync::atomic::Ordering::Relaxed)
}

/// Sets the FS segment base (user thread-local storage).
pub fn set_fs_base(base: u64) {
    if has_fsgsbase() {
        // SAFETY: FSGSBASE is on; FS only affects fs-relative accesses,
        // which the kernel does not make.
        unsafe { asm!("wrfsbase {}", in(reg) base, options(nomem, nostack, preserves_flags)) };
    } else if FS_BASE.swap(base, core::sync::atomic::Ordering::Relaxed) != base {
        // SAFETY: as above.
        unsafe { wrmsr(MSR_FS_BASE, base) };
    }
}

/// The running task's FS base as user mode last left it: the register
/// with FSGSBASE (user code may have changed it), else `saved`, the value
/// the kernel last set for it.
pub fn live_fs_base(saved: u64) -> u64 {
    if has_fsgsbase() {
        let base: u64;
        // SAFETY: FSGSBASE is on; reading the base has no side effects.
        unsafe { asm!("rdfsbase {}", out(reg) base, options(nomem, nostack, preserves_flags)) };
        base
    } else {
        saved
    }
}

/// The GS base last written with `wrmsr` (as [`FS_BASE`]).
static GS_BASE: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Sets the GS segment base. The kernel makes no gs-relative accesses (no
/// per-CPU area, no `swapgs`): the base is user mode's alone.
pub fn set_gs_base(base: u64) {
    if has_fsgsbase() {
        // SAFETY: FSGSBASE is on; GS only affects gs-relative accesses,
        // which the kernel does not make.
        unsafe { asm!("wrgsbase {}", in(reg) base, options(nomem, nostack, preserves_flags)) };
    } else if GS_BASE.swap(base, core::sync::atomic::Ordering::Relaxed) != base {
        // SAFETY: as above.
        unsafe { wrmsr(MSR_GS_BASE, base) };
    }
}

/// The running task's GS base as user mode last left it (as
/// [`live_fs_base`]).
pub fn live_gs_base(saved: u64) -> u64 {
    if has_fsgsbase() {
        let base: u64;
        // SAFETY: FSGSBASE is on; reading the base has no side effects.
        unsafe { asm!("rdgsbase {}", out(reg) base, options(nomem, nostack, preserves_flags)) };
        base
    } else {
        saved
    }
}

/// Enables maskable interrupts.
#[inline]
pub fn enable_interrupts() {
    // SAFETY: the IDT is installed before anything calls this.
    unsafe { asm!("sti", options(nomem, nostack)) }
}

/// Disables maskable interrupts.
#[inline]
pub fn disable_interrupts() {
    // SAFETY: cli only masks interrupts.
    unsafe { asm!("cli", options(nomem, nostack)) }
}

/// Atomically enables interrupts and halts until the next one arrives
/// (`sti` delays interrupts by one instruction, so none is lost between
/// the two). Returns with interrupts enabled.
#[inline]
pub fn enable_interrupts_and_halt() {
    // SAFETY: see above; the interrupt handler returns here.
    unsafe { asm!("sti", "hlt", options(nomem, nostack)) }
}

/// Stops this CPU for good.
pub fn halt_forever() -> ! {
    loop {
        disable_interrupts();
        // SAFETY: with interrupts masked, hlt just parks the CPU.
        unsafe { asm!("hlt", options(nomem, nostack)) }
    }
}
