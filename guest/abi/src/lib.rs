//! The contract between the `forkvm` VMM and the guest kernel.
//!
//! Both sides compile this crate, so the guest-physical layout, the boot
//! information page and the I/O ports cannot drift apart.
#![no_std]

pub mod linux;

/// Size of a small page.
pub const PAGE_SIZE: u64 = 4096;

/// Virtual address at which the kernel maps all guest-physical memory
/// (`virt = PAGE_OFFSET + phys`). The kernel image lives inside this map.
///
/// It is in the *lower* canonical half on purpose: the PVM host injects
/// no interrupt while native kernel code runs at an upper-half RIP
/// (see docs/ARCHITECTURE.md, "Platform modes"). User space therefore ends
/// below it (`USER_SPACE_END`).
pub const PAGE_OFFSET: u64 = 0x0000_4000_0000_0000;

/// Upper-half alias of the direct map, used only on the PVM host: that host
/// delivers interrupts and exceptions only onto an upper-half stack (a
/// lower-half one raises #SS), yet native kernel code cannot touch
/// upper-half memory. So events arrive on the alias of the kernel's event
/// stack and the entry stub moves `rsp` to the lower-half view of the same
/// memory before it switches back to native execution.
pub const PVM_EVENT_ALIAS: u64 = 0xffff_8000_0000_0000;

/// First address above user space (64 TiB of user address space).
pub const USER_SPACE_END: u64 = PAGE_OFFSET;

/// Guest-physical address the kernel ELF is linked to load at.
pub const KERNEL_PHYS_BASE: u64 = 0x10_0000;

/// Guest-physical page holding [`BootInfo`].
pub const BOOT_INFO_PHYS: u64 = 0x5000;
/// Guest-physical page where the kernel writes its panic message before
/// reporting it through [`port::PANIC`].
pub const PANIC_BUFFER_PHYS: u64 = 0x6000;
/// Size of the panic buffer.
pub const PANIC_BUFFER_SIZE: usize = 4096;
/// Guest-physical address of the GDT the VMM boots the vCPU with.
pub const BOOT_GDT_PHYS: u64 = 0x7000;
/// Guest-physical address of the boot page tables: PML4, then one PDPT,
/// then the page directories. None of these pages may sit at a 2 MiB-aligned
/// address (the PVM host falls back to its emulator for good if one does).
pub const BOOT_PML4_PHYS: u64 = 0x9000;
/// Boot PDPT (covers 512 GiB of the direct map).
pub const BOOT_PDPT_PHYS: u64 = 0xA000;
/// First boot page directory; one 4 KiB directory maps 1 GiB with 2 MiB pages.
pub const BOOT_PD_PHYS: u64 = 0x10000;
/// Most page directories the boot tables use (64 GiB of direct map).
pub const BOOT_PD_MAX: u64 = 64;
/// Guest-physical address of the shell script passed with `forkvm -c`.
pub const SCRIPT_PHYS: u64 = BOOT_PD_PHYS + BOOT_PD_MAX * PAGE_SIZE;
/// Largest script the VMM accepts: the kernel hands it to init as one
/// argument, and Linux's limit for one argument is 128 KiB
/// (`MAX_ARG_STRLEN`, including the terminating NUL).
pub const SCRIPT_MAX_LEN: u64 = 128 * 1024 - 1;
const _: () = assert!(
    SCRIPT_PHYS + SCRIPT_MAX_LEN <= 0x9_f000,
    "the script area ends below 0x9f000"
);
/// Guest-physical address of the first program's path and arguments
/// (`forkvm --init PATH -- ARGS...`): NUL-terminated strings, one after
/// the other, [`BootInfo::init_len`] bytes in all.
pub const INIT_ARGV_PHYS: u64 = SCRIPT_PHYS + SCRIPT_MAX_LEN + 1;
/// Most bytes of [`INIT_ARGV_PHYS`] (up to the secondary CPUs' roots).
pub const INIT_ARGV_MAX_LEN: u64 = 0x8_0000 - INIT_ARGV_PHYS;
/// Most vCPUs a forkvm guest can have (the kernel's per-CPU tables are
/// sized for it; the VMM also refuses more than the host has).
pub const MAX_CPUS: u32 = 64;
/// Guest-physical root page table of secondary CPU `n` (1..MAX_CPUS):
/// `AP_PML4_PHYS + (n - 1) * AP_PML4_STRIDE`, a copy of the boot PML4 the
/// VMM writes and loads into that vCPU's CR3. Every CPU keeps its own root
/// for good, so the user half (the address space it runs) and the per-CPU
/// window can differ per CPU.
///
/// Every root, the boot one included, sits at an odd page frame number:
/// measured on the PVM host, a vCPU whose CR3 has bit 12 clear (0x2000,
/// 0x4000, 0x8000, 0xa0000, 0xc0000, ...) runs guest kernel code in the
/// host's instruction emulator whatever the control MSR says, while one
/// with bit 12 set (0x1000, 0x3000, 0x9000, 0xb000, 0xa1000, ...) runs it
/// natively (the host seems to read bit 12 as Linux PTI's user-root bit).
pub const AP_PML4_PHYS: u64 = 0x8_1000;
/// Distance between two secondary CPUs' roots: two pages keep bit 12 set.
pub const AP_PML4_STRIDE: u64 = 2 * PAGE_SIZE;
const _: () = assert!(
    INIT_ARGV_PHYS + INIT_ARGV_MAX_LEN <= AP_PML4_PHYS
        && AP_PML4_PHYS + (MAX_CPUS as u64 - 1) * AP_PML4_STRIDE <= KERNEL_PHYS_BASE,
    "the secondary CPUs' roots fit between the boot area and the kernel"
);
const _: () = assert!(
    BOOT_PML4_PHYS & PAGE_SIZE != 0
        && AP_PML4_PHYS & PAGE_SIZE != 0
        && AP_PML4_STRIDE & PAGE_SIZE == 0,
    "every CPU root has bit 12 set (the PVM host runs the kernel natively only then)"
);
/// The root page table of CPU `cpu` (0 is the boot CPU's).
pub const fn cpu_root_phys(cpu: u32) -> u64 {
    if cpu == 0 {
        BOOT_PML4_PHYS
    } else {
        AP_PML4_PHYS + (cpu as u64 - 1) * AP_PML4_STRIDE
    }
}

/// Memory below this address holds firmware-like VMM data and is never
/// handed out by the kernel's frame allocator.
pub const LOW_MEMORY_END: u64 = KERNEL_PHYS_BASE;

/// Smallest guest memory the VMM accepts (the kernel needs room for its
/// image, heap and frames).
pub const MIN_GUEST_MEMORY: u64 = 16 << 20;
/// Largest guest memory the boot page tables can map.
pub const MAX_GUEST_MEMORY: u64 = BOOT_PD_MAX << 30;
/// Start of the 32-bit MMIO hole (IOAPIC, LAPIC, virtio-mmio); RAM above
/// it is placed at 4 GiB.
pub const MMIO_HOLE_START: u64 = 0xC000_0000;
/// End of the 32-bit MMIO hole.
pub const MMIO_HOLE_END: u64 = 0x1_0000_0000;

/// Guest-physical address of the IOAPIC.
pub const IOAPIC_PHYS: u64 = 0xFEC0_0000;
/// Guest-physical address of the local APIC (x2APIC mode leaves it unused,
/// but nothing else may sit there).
pub const LAPIC_PHYS: u64 = 0xFEE0_0000;

/// Guest-physical base of the virtio-mmio window of the virtio console.
pub const VIRTIO_CONSOLE_MMIO_BASE: u64 = 0xD000_0000;
/// Size of one virtio-mmio window (registers and configuration space).
pub const VIRTIO_MMIO_SIZE: u64 = 0x1000;
/// IOAPIC input (GSI) of the virtio console.
pub const VIRTIO_CONSOLE_GSI: u32 = 5;
const _: () = {
    let (base, end) = (
        VIRTIO_CONSOLE_MMIO_BASE,
        VIRTIO_CONSOLE_MMIO_BASE + VIRTIO_MMIO_SIZE,
    );
    assert!(base % PAGE_SIZE == 0, "the virtio window is page aligned");
    assert!(
        base >= MMIO_HOLE_START && end <= MMIO_HOLE_END,
        "inside the MMIO hole"
    );
    assert!(
        end <= IOAPIC_PHYS || base >= IOAPIC_PHYS + PAGE_SIZE,
        "clear of the IOAPIC"
    );
    assert!(
        end <= LAPIC_PHYS || base >= LAPIC_PHYS + PAGE_SIZE,
        "clear of the LAPIC"
    );
    assert!(VIRTIO_CONSOLE_GSI != SERIAL_GSI, "its own interrupt line");
};

/// I/O ports the VMM serves.
pub mod port {
    /// 8250 UART (COM1), 8 registers.
    pub const SERIAL_COM1: u16 = 0x3f8;
    /// 32-bit write: power the VM off; the value is forkvm's exit status.
    pub const POWEROFF: u16 = 0x501;
    /// 32-bit write: the kernel panicked; the value is the length of the
    /// message it wrote at [`crate::PANIC_BUFFER_PHYS`].
    pub const PANIC: u16 = 0x502;
    /// 32-bit write: the kernel cannot boot because of its input (a
    /// corrupt initramfs, a missing init), not because of a kernel bug;
    /// the value is the length of the message at
    /// [`crate::PANIC_BUFFER_PHYS`]. forkvm prints it and exits 1.
    pub const BOOT_FAILED: u16 = 0x503;
}

/// IOAPIC input (GSI) of the serial port.
pub const SERIAL_GSI: u32 = 4;

/// `BootInfo::magic`: "FORKVMBI".
pub const BOOT_INFO_MAGIC: u64 = u64::from_le_bytes(*b"FORKVMBI");
/// Version of the [`BootInfo`] layout.
pub const BOOT_INFO_VERSION: u32 = 4;

/// How the guest kernel executes.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Platform {
    /// An ordinary hardware-virtualised guest (VMX/SVM).
    Hvm = 0,
    /// The PVM host of our CI machines, with the kernel switched to native
    /// execution through [`PVM_CONTROL_MSR`].
    PvmNative = 1,
}

impl Platform {
    /// Decodes the value stored in [`BootInfo::platform`].
    pub fn from_raw(raw: u32) -> Option<Self> {
        match raw {
            0 => Some(Self::Hvm),
            1 => Some(Self::PvmNative),
            _ => None,
        }
    }

    /// Human-readable name, as printed by the VMM and the guest.
    pub fn name(self) -> &'static str {
        match self {
            Self::Hvm => "hvm",
            Self::PvmNative => "pvm-native",
        }
    }
}

/// PVM control MSR: writing 1 switches guest ring-0 code to native execution.
pub const PVM_CONTROL_MSR: u32 = 0x4b56_4d10;

/// One range of guest RAM.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemRegion {
    /// Guest-physical start.
    pub start: u64,
    /// Length in bytes.
    pub len: u64,
}

/// Most RAM regions in [`BootInfo`].
pub const MAX_MEM_REGIONS: usize = 4;

/// `BootInfo::flags`: run the script at [`SCRIPT_PHYS`] instead of an
/// interactive prompt, then power off with the last command's status.
pub const BOOT_FLAG_SCRIPT: u64 = 1 << 0;
/// `BootInfo::flags`: start the program at [`INIT_ARGV_PHYS`] as pid 1
/// instead of the built-in init.
pub const BOOT_FLAG_INIT: u64 = 1 << 1;

/// What the VMM tells the kernel at boot, at [`BOOT_INFO_PHYS`]. The kernel
/// gets its physical address in `rsi`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BootInfo {
    /// [`BOOT_INFO_MAGIC`].
    pub magic: u64,
    /// [`BOOT_INFO_VERSION`].
    pub version: u32,
    /// A [`Platform`] value.
    pub platform: u32,
    /// TSC frequency in kHz, from `KVM_GET_TSC_KHZ`.
    pub tsc_khz: u64,
    /// `BOOT_FLAG_*` bits.
    pub flags: u64,
    /// Length of the script at [`SCRIPT_PHYS`].
    pub script_len: u64,
    /// Number of valid entries in `mem_regions`.
    pub nr_mem_regions: u32,
    /// IOAPIC input of the serial port.
    pub serial_gsi: u32,
    /// Guest RAM.
    pub mem_regions: [MemRegion; MAX_MEM_REGIONS],
    /// Guest-physical base of the virtio console's virtio-mmio window
    /// ([`VIRTIO_CONSOLE_MMIO_BASE`]); 0: no virtio console.
    pub virtio_console_base: u64,
    /// Size of that window ([`VIRTIO_MMIO_SIZE`]).
    pub virtio_console_size: u64,
    /// IOAPIC input of the virtio console ([`VIRTIO_CONSOLE_GSI`]).
    pub virtio_console_gsi: u32,
    /// Number of vCPUs (1..=[`MAX_CPUS`]); CPU `n` has APIC id `n`.
    pub nr_cpus: u32,
    /// Guest-physical address of the initramfs (an uncompressed newc cpio
    /// archive; the VMM decompresses a gzip one), page aligned, outside
    /// `mem_regions` so the kernel's allocator never hands it out; 0 and
    /// `initrd_size` 0: none.
    pub initrd_phys: u64,
    /// Length of the archive in bytes.
    pub initrd_size: u64,
    /// Bytes of init's path and arguments at [`INIT_ARGV_PHYS`] (with
    /// [`BOOT_FLAG_INIT`]).
    pub init_len: u64,
}

impl BootInfo {
    /// The RAM regions the VMM filled in.
    pub fn regions(&self) -> &[MemRegion] {
        let n = (self.nr_mem_regions as usize).min(MAX_MEM_REGIONS);
        &self.mem_regions[..n]
    }

    /// Total RAM in bytes.
    pub fn total_memory(&self) -> u64 {
        self.regions().iter().map(|r| r.len).sum()
    }
}

/// Splits `size` bytes of guest RAM around the 32-bit MMIO hole.
pub fn ram_regions(size: u64) -> ([MemRegion; MAX_MEM_REGIONS], usize) {
    let mut regions = [MemRegion::default(); MAX_MEM_REGIONS];
    if size <= MMIO_HOLE_START {
        regions[0] = MemRegion {
            start: 0,
            len: size,
        };
        (regions, 1)
    } else {
        regions[0] = MemRegion {
            start: 0,
            len: MMIO_HOLE_START,
        };
        regions[1] = MemRegion {
            start: MMIO_HOLE_END,
            len: size - MMIO_HOLE_START,
        };
        (regions, 2)
    }
}

/// forkvm's own system calls, numbered above Linux's table (from 1024) so
/// they can never collide with a Linux system call. User programs reach
/// everything else through the ordinary Linux ABI; powering off is
/// `reboot(LINUX_REBOOT_MAGIC1, LINUX_REBOOT_MAGIC2,
/// LINUX_REBOOT_CMD_POWER_OFF, status)` (Linux ignores the fourth argument
/// for POWER_OFF; forkvm exits with it), and when init (pid 1) exits the VM
/// powers off with init's exit status.
pub mod sys {
    /// `forkvm_info(kind, buf, len) -> bytes written`: copies a report of
    /// `kind` into `buf` (EINVAL for an unknown kind, EFAULT for a bad
    /// buffer; a short buffer gets a truncated report).
    pub const SYS_FORKVM_INFO: usize = 1024;
    /// `kind` of [`SYS_FORKVM_INFO`]: one [`SystemInfo`].
    pub const INFO_SYSTEM: u64 = 0;
    /// `kind` of [`SYS_FORKVM_INFO`]: one [`TaskInfo`] per task, by pid.
    pub const INFO_TASKS: u64 = 1;
    /// `kind` of [`SYS_FORKVM_INFO`]: the kernel's event counters as text,
    /// `name=value` pairs separated by spaces.
    pub const INFO_STATS: u64 = 2;
    /// `kind` of [`SYS_FORKVM_INFO`]: the names of the programs built into
    /// the kernel image (what `execve` can run), one per line.
    pub const INFO_PROGRAMS: u64 = 3;
    /// `kind` of [`SYS_FORKVM_INFO`]: the devices the kernel probed, one
    /// per line, e.g. `virtio-mmio@0xd0000000 gsi=5 device=console
    /// version=2 vendor=0x4d564b46`.
    pub const INFO_DEVICES: u64 = 4;

    /// `forkvm_diag(op, arg, buf, len) -> bytes written`: kernel
    /// measurements and test hooks.
    pub const SYS_FORKVM_DIAG: usize = 1025;
    /// Measure timer ticks over `arg` milliseconds (1..=10000) with the
    /// kernel spinning, idling, and running user code; writes a [`TickReport`].
    pub const DIAG_TICKS: u64 = 0;
    /// Panic the kernel with the message in `buf[..len]` (tests the panic path).
    pub const DIAG_PANIC: u64 = 1;
    /// Make the kernel read an unmapped kernel address (tests exception reports).
    pub const DIAG_KERNEL_FAULT: u64 = 2;
    /// Fault injection (like Linux's `/proc/self/fail-nth`): the `arg`-th
    /// fallible step of the calling task's next `copy_process` fails with
    /// its natural errno (0 disarms). Returns the steps counted by the
    /// previous clone/fork (so a sweep knows when it has covered them all).
    pub const DIAG_FAIL_NTH: u64 = 3;
    /// Panic the kernel on CPU `arg` with the message in `buf[..len]`
    /// (tests that a panic on any CPU ends the VM and names the CPU);
    /// EINVAL if that CPU is not online.
    pub const DIAG_PANIC_ON_CPU: u64 = 4;
    /// `DIAG_FAIL_NTH`'s result: bits 0..16 count the fallible steps the
    /// previous clone went through; the bits from this shift on say which
    /// step an injected failure hit ([`ForkStep::number`], 0 if none
    /// failed).
    pub const FAIL_NTH_STEP_SHIFT: u32 = 16;

    /// Declares [`ForkStep`] from one list, each step with its name, so a
    /// step cannot be added without one.
    macro_rules! fork_steps {
        ($($(#[$meta:meta])* $step:ident => $name:literal,)*) => {
            /// The fallible steps of `copy_process`, in the order they run
            /// (Linux `kernel/fork.c`'s), named as Linux names them: the
            /// fail points of the kernel's fault injection. A step that has
            /// nothing to allocate for a given clone is not counted
            /// (`create_user_ns` without CLONE_NEWUSER, `copy_semundo` unless
            /// CLONE_SYSVSEM needs a new undo list, `copy_io` unless the
            /// parent chose an I/O priority, `pidfd` without CLONE_PIDFD).
            #[derive(Clone, Copy, Debug, PartialEq, Eq)]
            pub enum ForkStep {
                $($(#[$meta])* $step,)*
            }

            impl ForkStep {
                /// Every step, in the order they run.
                pub const ALL: &'static [ForkStep] = &[$(ForkStep::$step,)*];

                /// Its Linux name.
                pub const fn name(self) -> &'static str {
                    match self {
                        $(ForkStep::$step => $name,)*
                    }
                }
            }
        };
    }

    fork_steps! {
        /// The kernel stack.
        DupTaskStruct => "dup_task_struct",
        /// The child's credentials.
        CopyCreds => "copy_creds",
        /// A new user namespace (CLONE_NEWUSER, within copy_creds).
        CreateUserNs => "create_user_ns",
        /// A System V undo list to share (CLONE_SYSVSEM).
        CopySemundo => "copy_semundo",
        CopyFiles => "copy_files",
        CopyFs => "copy_fs",
        CopySighand => "copy_sighand",
        /// The process's shared state (here: its limits, then its group).
        CopySignal => "copy_signal",
        CopyMm => "copy_mm",
        CopyNamespaces => "copy_namespaces",
        /// A copy of the parent's I/O context.
        CopyIo => "copy_io",
        /// Pid numbers at every namespace level.
        AllocPid => "alloc_pid",
        /// The CLONE_PIDFD file descriptor.
        Pidfd => "pidfd",
    }

    impl ForkStep {
        /// Its number in a `DIAG_FAIL_NTH` report: its place in
        /// [`ForkStep::ALL`], from 1.
        pub const fn number(self) -> u32 {
            self as u32 + 1
        }

        /// The step numbered `number` ([`ForkStep::number`]).
        pub fn from_number(number: u32) -> Option<ForkStep> {
            let index = usize::try_from(number.checked_sub(1)?).ok()?;
            ForkStep::ALL.get(index).copied()
        }
    }

    /// `forkvm_sysctl(name, name_len, value, value_len, out, out_len) ->
    /// bytes written`: reads a kernel setting as decimal text into `out`,
    /// after setting it to the decimal text `value[..value_len]` if
    /// `value` is not null. ENOENT for an unknown name, EINVAL for a bad value.
    pub const SYS_FORKVM_SYSCTL: usize = 1026;

    /// `forkvm_vconsole_open() -> fd`: opens the virtio console (the
    /// `VIRTIO_CONSOLE_MMIO_BASE` device) as a file: `read` blocks until the
    /// host sent at least one byte and returns what is there, `write`
    /// transmits (one `QueueNotify` per chunk of up to a page) and returns
    /// when the device has consumed it. ENODEV without a working device
    /// (none announced, or it needed a reset; then reads and writes on
    /// open descriptors fail with EIO).
    pub const SYS_FORKVM_VCONSOLE_OPEN: usize = 1027;

    /// `reboot` magic numbers and command (Linux `include/uapi/linux/reboot.h`).
    pub const LINUX_REBOOT_MAGIC1: u64 = 0xfee1_dead;
    pub const LINUX_REBOOT_MAGIC2: u64 = 672_274_793;
    pub const LINUX_REBOOT_CMD_POWER_OFF: u64 = 0x4321_fedc;

    /// System-wide numbers ([`INFO_SYSTEM`]).
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, zerocopy::IntoBytes, zerocopy::Immutable)]
    pub struct SystemInfo {
        /// TSC frequency in kHz (to turn `rdtsc` differences into time).
        pub tsc_khz: u64,
        /// A [`crate::Platform`] value.
        pub platform: u32,
        /// Timer ticks per second.
        pub tick_hz: u32,
        /// Frames handed to the frame allocator.
        pub total_frames: u64,
        /// Frames free now.
        pub free_frames: u64,
        /// Kernel heap bytes in use and in total.
        pub heap_used: u64,
        pub heap_size: u64,
        /// Freed kernel stacks kept mapped for reuse (their frames count as used).
        pub cached_kernel_stacks: u64,
        /// Zeroed page-table pages kept for reuse (their frames count as used).
        pub pooled_page_tables: u64,
        /// Tasks that exist (not reaped).
        pub tasks: u64,
        /// Nanoseconds since the kernel started.
        pub uptime_ns: u64,
        /// Timer ticks since boot.
        pub ticks: u64,
        /// Context switches since boot.
        pub context_switches: u64,
    }

    /// One task ([`INFO_TASKS`]).
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, zerocopy::IntoBytes, zerocopy::Immutable)]
    pub struct TaskInfo {
        pub pid: u32,
        pub ppid: u32,
        pub tgid: u32,
        pub uid: u32,
        /// `ps` state letter: R, S, Z, X.
        pub state: u8,
        pub _pad: [u8; 7],
        /// Virtual size of the address space in KiB (0 for kernel threads).
        pub vsz_kb: u64,
        /// Open file descriptors.
        pub fds: u32,
        /// The CPU the task last ran on (Linux `ps -o psr`).
        pub cpu: u32,
        /// Command name, NUL padded.
        pub comm: [u8; 16],
        /// Scheduling policy (`SCHED_*`) and nice value.
        pub policy: u32,
        pub nice: i32,
        /// CPU time used (user + system), in nanoseconds.
        pub cpu_ns: u64,
    }

    /// Result of [`DIAG_TICKS`].
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, zerocopy::IntoBytes, zerocopy::Immutable)]
    pub struct TickReport {
        pub window_ms: u64,
        /// Ticks the window should see at the tick rate.
        pub expected: u64,
        pub kernel_busy: u64,
        pub idle: u64,
        pub user: u64,
        /// Average time one tick took from the interrupted code, in ns.
        pub kernel_cost_ns: u64,
        pub user_cost_ns: u64,
        /// 0: TSC-deadline timer, 1: periodic.
        pub timer_mode: u32,
        pub tick_hz: u32,
    }
}

/// The virtio-mmio (version 2) register file both sides use: the VMM's
/// device model and the guest's driver (virtio 1.x section 4.2.2).
pub mod virtio_mmio {
    /// "virt", little-endian, at [`reg::MAGIC_VALUE`].
    pub const MAGIC_VALUE: u32 = 0x7472_6976;
    /// The non-legacy transport version.
    pub const VERSION: u32 = 2;
    /// InterruptStatus bits: used buffers, configuration change.
    pub const INT_USED_RING: u32 = 1;
    pub const INT_CONFIG: u32 = 2;

    /// Register offsets.
    pub mod reg {
        pub const MAGIC_VALUE: u64 = 0x000;
        pub const VERSION: u64 = 0x004;
        pub const DEVICE_ID: u64 = 0x008;
        pub const VENDOR_ID: u64 = 0x00c;
        pub const DEVICE_FEATURES: u64 = 0x010;
        pub const DEVICE_FEATURES_SEL: u64 = 0x014;
        pub const DRIVER_FEATURES: u64 = 0x020;
        pub const DRIVER_FEATURES_SEL: u64 = 0x024;
        pub const QUEUE_SEL: u64 = 0x030;
        pub const QUEUE_NUM_MAX: u64 = 0x034;
        pub const QUEUE_NUM: u64 = 0x038;
        pub const QUEUE_READY: u64 = 0x044;
        pub const QUEUE_NOTIFY: u64 = 0x050;
        pub const INTERRUPT_STATUS: u64 = 0x060;
        pub const INTERRUPT_ACK: u64 = 0x064;
        pub const STATUS: u64 = 0x070;
        pub const QUEUE_DESC_LOW: u64 = 0x080;
        pub const QUEUE_DESC_HIGH: u64 = 0x084;
        pub const QUEUE_DRIVER_LOW: u64 = 0x090;
        pub const QUEUE_DRIVER_HIGH: u64 = 0x094;
        pub const QUEUE_DEVICE_LOW: u64 = 0x0a0;
        pub const QUEUE_DEVICE_HIGH: u64 = 0x0a4;
        pub const CONFIG_GENERATION: u64 = 0x0fc;
        pub const CONFIG: u64 = 0x100;
    }

    /// Device status bits (virtio 1.x section 2.1).
    pub mod status {
        /// The guest noticed the device.
        pub const ACKNOWLEDGE: u32 = 0x01;
        /// The guest knows how to drive the device.
        pub const DRIVER: u32 = 0x02;
        /// The driver is set up and ready to drive the device.
        pub const DRIVER_OK: u32 = 0x04;
        /// Feature negotiation is complete.
        pub const FEATURES_OK: u32 = 0x08;
        /// The device hit an error it cannot recover from without reset.
        pub const DEVICE_NEEDS_RESET: u32 = 0x40;
        /// The guest gave up on the device.
        pub const FAILED: u32 = 0x80;
    }
}
