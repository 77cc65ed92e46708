//! Assembles a bootable VM from a [`VmConfig`]: KVM, memory, irqchip, the
//! kernel image, boot state and devices.

use std::ffi::CString;
use std::fs::File;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use forkvm_abi::{
    Platform, KERNEL_PHYS_BASE, PAGE_OFFSET, PVM_CONTROL_MSR, SERIAL_GSI, VIRTIO_CONSOLE_GSI,
    VIRTIO_CONSOLE_MMIO_BASE, VIRTIO_MMIO_SIZE,
};
use kvm_bindings::{
    kvm_mp_state, kvm_msr_entry, CpuId, Msrs, KVM_MAX_CPUID_ENTRIES, KVM_MP_STATE_RUNNABLE,
};
use kvm_ioctls::{IoEventAddress, Kvm, NoDatamatch, VcpuFd, VmFd};
use linux_loader::loader::{elf::Elf, KernelLoader};
use vm_memory::GuestAddress;
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use crate::boot::{self, BootParams};
use crate::config::VmConfig;
use crate::devices::serial::SharedSerial;
use crate::devices::virtio::console::{Console, ConsoleIo};
use crate::devices::virtio::mmio::{reg, MmioTransport, MMIO_SIZE};
use crate::devices::virtio::Interrupt;
use crate::error::{Error, Result};
use crate::memory::{self, GuestMemory};
use crate::platform;

/// The only KVM API version there has ever been.
const KVM_API_VERSION: i32 = 12;

const _: () = assert!(
    MMIO_SIZE == VIRTIO_MMIO_SIZE,
    "one window size on both sides"
);

/// The virtio console's transport, shared by the vCPU thread (register
/// accesses) and the event loop (queue notifications).
pub type SharedConsoleTransport = Arc<Mutex<MmioTransport<Console>>>;

/// The virtio console attached to the VM.
pub struct VirtioConsole {
    /// Guest-physical base of its virtio-mmio window.
    pub base: u64,
    /// Its IOAPIC input.
    pub gsi: u32,
    pub transport: SharedConsoleTransport,
    /// The host side: input for the guest, the guest's output (kept in
    /// the device's buffer until taken).
    pub io: ConsoleIo,
    /// Signalled (ioeventfd) when the guest writes `QueueNotify`; a clone
    /// of the transport's notify eventfd.
    pub notify: EventFd,
}

/// A VM ready to run: its vCPUs at the kernel entry.
pub struct Vm {
    // Field order is drop order: the vCPU and VM fds go before the memory
    // that KVM maps.
    /// vCPU `n` is CPU `n` of the guest, APIC id `n`.
    pub vcpus: Vec<VcpuFd>,
    pub vm: VmFd,
    pub kvm: Kvm,
    pub memory: GuestMemory,
    pub platform: Platform,
    pub tsc_khz: u32,
    pub serial: SharedSerial,
    /// Signalled when the guest empties the serial receive FIFO.
    pub serial_drained: EventFd,
    pub virtio_console: VirtioConsole,
}

/// Opens the KVM device, with an error that says what to do.
pub fn open_kvm(path: &Path) -> Result<Kvm> {
    if !path.exists() {
        return Err(Error::KvmMissing(path.to_path_buf()));
    }
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| Error::KvmMissing(path.to_path_buf()))?;
    let kvm = Kvm::new_with_path(&c_path).map_err(|e| match e.errno() {
        libc::EACCES | libc::EPERM => Error::KvmPermission(path.to_path_buf()),
        libc::ENOENT | libc::ENXIO | libc::ENODEV => Error::KvmMissing(path.to_path_buf()),
        _ => Error::Kvm("open", e),
    })?;
    match kvm.get_api_version() {
        KVM_API_VERSION => Ok(kvm),
        _ => Err(Error::NotKvm(path.to_path_buf())),
    }
}

impl Vm {
    /// Builds the VM; the serial console writes to `serial_out`.
    pub fn new(config: &VmConfig, serial_out: Box<dyn Write + Send>) -> Result<Vm> {
        crate::config::check_cpus(config.cpus)?;
        // Check the kernel first: it is the cheapest error to report.
        let mut kernel =
            File::open(&config.kernel).map_err(|e| Error::KernelFile(config.kernel.clone(), e))?;
        if kernel.metadata().map(|m| m.is_dir()).unwrap_or(false) {
            return Err(Error::KernelFormat(
                config.kernel.clone(),
                "it is a directory".into(),
            ));
        }
        if crate::linux_boot::is_bzimage(&mut kernel) {
            return crate::linux_boot::build(config, kernel, serial_out);
        }

        if let Some(script) = &config.script {
            if script.len() as u64 > forkvm_abi::SCRIPT_MAX_LEN {
                return Err(Error::ScriptTooLong {
                    len: script.len(),
                    max: forkvm_abi::SCRIPT_MAX_LEN,
                });
            }
        }

        if let Some(init) = &config.init {
            boot::init_argv_bytes(init)?;
        }
        // Read (and decompress) the archive before KVM is touched: a bad
        // file is the user's most likely mistake.
        let initrd = match &config.initrd {
            Some(path) => {
                let archive = crate::initrd::read(path)?;
                crate::initrd::place(
                    &forkvm_abi::ram_regions(config.memory).0,
                    archive.len() as u64,
                )?;
                Some(archive)
            }
            None => None,
        };

        let kvm = open_kvm(&config.kvm_device)?;
        let platform = platform::resolve(config.platform);
        let vm = kvm
            .create_vm()
            .map_err(|e| Error::Kvm("KVM_CREATE_VM", e))?;
        let memory = memory::create(&vm, config.memory)?;
        vm.create_irq_chip()
            .map_err(|e| Error::Kvm("KVM_CREATE_IRQCHIP", e))?;

        let loaded = Elf::load(
            &memory,
            None,
            &mut kernel,
            Some(GuestAddress(KERNEL_PHYS_BASE)),
        )
        .map_err(|e| Error::KernelFormat(config.kernel.clone(), e.to_string()))?;
        let entry = loaded.kernel_load.0;
        if entry < PAGE_OFFSET {
            return Err(Error::KernelFormat(
                config.kernel.clone(),
                format!("entry point {entry:#x} is not in the forkvm kernel map (built for another loader?)"),
            ));
        }

        let ram_top = forkvm_abi::ram_regions(config.memory)
            .0
            .iter()
            .map(|r| r.start + r.len)
            .max()
            .unwrap_or(0);
        boot::write_page_tables(&memory, ram_top, platform)?;
        boot::write_gdt(&memory)?;

        let cpuid = kvm
            .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
            .map_err(|e| Error::Kvm("KVM_GET_SUPPORTED_CPUID", e))?;
        let nx = cpuid
            .as_slice()
            .iter()
            .any(|e| e.function == 0x8000_0001 && e.edx & (1 << 20) != 0);
        boot::write_cpu_roots(&memory, config.cpus)?;
        let mut vcpus = Vec::with_capacity(config.cpus as usize);
        for cpu in 0..config.cpus {
            vcpus.push(create_vcpu(
                &vm,
                &cpuid,
                cpu,
                config.cpus,
                entry,
                nx,
                platform,
            )?);
        }
        let tsc_khz = vcpus[0]
            .get_tsc_khz()
            .map_err(|e| Error::Kvm("KVM_GET_TSC_KHZ", e))?;

        boot::write_boot_info(
            &memory,
            &BootParams {
                platform,
                tsc_khz: u64::from(tsc_khz),
                memory_size: config.memory,
                script: config.script.as_deref(),
                initrd: initrd.as_deref(),
                init: config.init.as_deref(),
                nr_cpus: config.cpus,
            },
        )?;

        let serial_irq = EventFd::new(EFD_NONBLOCK).map_err(|e| Error::Io("eventfd", e))?;
        vm.register_irqfd(&serial_irq, SERIAL_GSI)
            .map_err(|e| Error::Kvm("KVM_IRQFD (serial)", e))?;
        let serial_drained = EventFd::new(EFD_NONBLOCK).map_err(|e| Error::Io("eventfd", e))?;
        let drained_for_device = serial_drained
            .try_clone()
            .map_err(|e| Error::Io("eventfd", e))?;
        let serial = SharedSerial::new(serial_irq, drained_for_device, serial_out);
        let virtio_console = attach_virtio_console(&vm, &memory)?;

        Ok(Vm {
            vcpus,
            vm,
            kvm,
            memory,
            platform,
            tsc_khz,
            serial,
            serial_drained,
            virtio_console,
        })
    }

    /// The host side of the virtio console (input for the guest, its output).
    pub fn console_io(&self) -> &ConsoleIo {
        &self.virtio_console.io
    }
}

/// Creates vCPU `cpu` of `nr_cpus` at the kernel's entry: CPUID with its
/// APIC id and the machine's topology, its own root page table, the boot
/// GDT, and on the PVM host native execution from the first instruction.
/// A secondary vCPU is made runnable at once (with the in-kernel irqchip it
/// would otherwise wait for INIT/SIPI): it waits in the kernel's `_start`
/// until the boot CPU lets it in.
fn create_vcpu(
    vm: &VmFd,
    supported: &CpuId,
    cpu: u32,
    nr_cpus: u32,
    entry: u64,
    nx: bool,
    platform: Platform,
) -> Result<VcpuFd> {
    let vcpu = vm
        .create_vcpu(u64::from(cpu))
        .map_err(|e| Error::Kvm("KVM_CREATE_VCPU", e))?;
    let mut cpuid = supported.clone();
    crate::topology::set_cpuid_topology(cpuid.as_mut_slice(), cpu, nr_cpus);
    vcpu.set_cpuid2(&cpuid)
        .map_err(|e| Error::Kvm("KVM_SET_CPUID2", e))?;
    let mut sregs = vcpu
        .get_sregs()
        .map_err(|e| Error::Kvm("KVM_GET_SREGS", e))?;
    boot::setup_sregs(&mut sregs, nx, cpu);
    vcpu.set_sregs(&sregs)
        .map_err(|e| Error::Kvm("KVM_SET_SREGS", e))?;
    vcpu.set_regs(&boot::entry_regs(entry, cpu))
        .map_err(|e| Error::Kvm("KVM_SET_REGS", e))?;
    vcpu.set_fpu(&boot::entry_fpu())
        .map_err(|e| Error::Kvm("KVM_SET_FPU", e))?;
    if platform == Platform::PvmNative {
        // Run guest ring-0 code natively from the first instruction.
        let msrs = Msrs::from_entries(&[kvm_msr_entry {
            index: PVM_CONTROL_MSR,
            data: 1,
            ..Default::default()
        }])
        .expect("one MSR fits");
        let written = vcpu
            .set_msrs(&msrs)
            .map_err(|e| Error::Kvm("KVM_SET_MSRS (PVM control)", e))?;
        if written != 1 {
            return Err(Error::Kvm(
                "the PVM control MSR was refused (is this really a PVM host? try --platform hvm)",
                kvm_ioctls::Error::new(libc::EINVAL),
            ));
        }
    }
    if cpu != 0 {
        vcpu.set_mp_state(kvm_mp_state {
            mp_state: KVM_MP_STATE_RUNNABLE,
        })
        .map_err(|e| Error::Kvm("KVM_SET_MP_STATE", e))?;
    }
    Ok(vcpu)
}

/// Creates the virtio console behind its virtio-mmio window: interrupt
/// through an irqfd on [`VIRTIO_CONSOLE_GSI`], `QueueNotify` writes through
/// an ioeventfd (no exit to the VMM's vCPU thread).
pub(crate) fn attach_virtio_console(vm: &VmFd, memory: &GuestMemory) -> Result<VirtioConsole> {
    let base = VIRTIO_CONSOLE_MMIO_BASE;
    let irq = EventFd::new(EFD_NONBLOCK).map_err(|e| Error::Io("eventfd", e))?;
    vm.register_irqfd(&irq, VIRTIO_CONSOLE_GSI)
        .map_err(|e| Error::Kvm("KVM_IRQFD (virtio console)", e))?;
    let (console, io) = Console::new();
    let transport = MmioTransport::new(console, memory.clone(), Interrupt::with_eventfd(irq))
        .map_err(|e| Error::Io("virtio console", e))?;
    vm.register_ioevent(
        transport.notify_eventfd(),
        &IoEventAddress::Mmio(base + reg::QUEUE_NOTIFY),
        NoDatamatch,
    )
    .map_err(|e| Error::Kvm("KVM_IOEVENTFD (virtio console)", e))?;
    let notify = transport
        .notify_eventfd()
        .try_clone()
        .map_err(|e| Error::Io("eventfd", e))?;
    Ok(VirtioConsole {
        base,
        gsi: VIRTIO_CONSOLE_GSI,
        transport: Arc::new(Mutex::new(transport)),
        io,
        notify,
    })
}
