//! Booting a Linux kernel (a bzImage) in the same VM as the forkvm guest:
//! the reference kernel of `forkbench compare --reference linux-vm`.
//!
//! [`is_bzimage`] tells a bzImage from forkvm's ELF kernel by its setup
//! header; [`build`] makes the VM: the same memory layout, in-kernel
//! irqchip, 8250 serial port and virtio-mmio console as the forkvm guest,
//! plus what Linux's 64-bit boot protocol (Documentation/arch/x86/boot.rst)
//! and an x86 PC need: the kernel loaded by linux-loader, `boot_params`
//! (the e820 map, the command line, the initramfs), identity-mapped page
//! tables and a GDT with `__BOOT_CS`/`__BOOT_DS`, an MP table for the CPUs
//! and IOAPIC ([`mptable`]) and minimal ACPI for power-off, reboot and
//! the virtio console ([`acpi`]). The serial port is Linux's console; the
//! virtio console is announced in the DSDT, not on the command line
//! (`virtio_mmio.device=` needs `CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES`, which
//! distribution kernels leave off).
//!
//! On the PVM host a Linux kernel cannot run natively (its ring-0 code
//! would go through KVM's instruction emulator): [`refuse_on_pvm`].

pub mod acpi;
pub mod mptable;

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use forkvm_abi::{Platform, SERIAL_GSI};
use kvm_bindings::{
    kvm_fpu, kvm_irqchip, kvm_pit_config, kvm_regs, kvm_sregs, KVM_IRQCHIP_PIC_MASTER,
    KVM_IRQCHIP_PIC_SLAVE, KVM_MAX_CPUID_ENTRIES, KVM_PIT_SPEAKER_DUMMY,
};
use linux_loader::configurator::linux::LinuxBootConfigurator;
use linux_loader::configurator::{BootConfigurator, BootParams};
use linux_loader::loader::bootparam::{boot_e820_entry, boot_params};
use linux_loader::loader::{bzimage::BzImage, load_cmdline, Cmdline, KernelLoader};
use vm_memory::{Bytes, GuestAddress};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use crate::builder::{open_kvm, Vm};
use crate::config::{PlatformChoice, VmConfig};
use crate::devices::serial::SharedSerial;
use crate::error::{Error, Result};
use crate::memory::{self, GuestMemory};

/// Offset of the setup header's "HdrS" magic in a bzImage.
const HDRS_OFFSET: u64 = 0x202;
const HDRS_MAGIC: &[u8; 4] = b"HdrS";
/// `setup_header.xloadflags`: the kernel has the 64-bit entry point.
const XLF_KERNEL_64: u16 = 1 << 0;
/// Offset of the 64-bit entry point from the protected-mode kernel's start.
const ENTRY_64_OFFSET: u64 = 0x200;
/// `type_of_loader`: a loader without an assigned id.
const LOADER_OTHER: u8 = 0xff;

/// Guest-physical layout of Linux's boot data (all below 1 MiB).
const GDT_PHYS: u64 = 0x500;
const ZERO_PAGE_PHYS: u64 = 0x7000;
const BOOT_STACK_TOP: u64 = 0x8ff0;
const PML4_PHYS: u64 = 0x9000;
const PDPT_PHYS: u64 = 0xa000;
/// Four page directories: the first 4 GiB, identity mapped.
const PD_PHYS: u64 = 0xb000;
const CMDLINE_PHYS: u64 = 0x20000;
/// The MP table sits in the last KiB of base memory, where Linux looks.
const MPTABLE_PHYS: u64 = 0x9fc00;
/// ACPI tables: where the legacy RSDP scan also finds them.
const ACPI_PHYS: u64 = 0xe0000;
/// The protected-mode kernel goes to 1 MiB (it relocates itself).
const KERNEL_PHYS: u64 = 0x10_0000;
/// Base memory ends where the MP table's reserved area begins.
const BASE_MEMORY_END: u64 = MPTABLE_PHYS;

/// CPUID.1:ECX: running under a hypervisor.
const CPUID_1_ECX_HYPERVISOR: u32 = 1 << 31;
/// CPUID.1:ECX: the local APIC has the TSC-deadline timer mode.
const CPUID_1_ECX_TSC_DEADLINE: u32 = 1 << 24;

const E820_RAM: u32 = 1;
const E820_RESERVED: u32 = 2;

/// The VMM's TSS area for Intel VMX (unused by a 64-bit guest, but KVM
/// wants it set before a vCPU runs there); three pages below the IOAPIC.
const KVM_TSS_ADDR: usize = 0xfffb_d000;

const _: () = assert!(
    MPTABLE_PHYS <= ACPI_PHYS && ACPI_PHYS < KERNEL_PHYS,
    "the tables sit in the reserved area below the kernel"
);

/// The vCPUs a Linux guest gets (the MP table can describe more).
const CPUS: u8 = 1;

/// Whether the file at `path` is a Linux bzImage (it has the setup
/// header's magic); forkvm's own kernel is an ELF.
pub fn is_bzimage(kernel: &mut File) -> bool {
    let mut magic = [0u8; 4];
    let found = kernel.seek(SeekFrom::Start(HDRS_OFFSET)).is_ok()
        && kernel.read_exact(&mut magic).is_ok()
        && &magic == HDRS_MAGIC;
    let _ = kernel.seek(SeekFrom::Start(0));
    found
}

/// Refuses to boot Linux where it could not run natively: on the PVM host
/// (whatever `--platform` says) or when PVM is forced.
pub fn refuse_on_pvm(choice: PlatformChoice) -> Result<()> {
    let host = crate::platform::resolve(PlatformChoice::Auto);
    if host == Platform::PvmNative || choice == PlatformChoice::Pvm {
        return Err(Error::LinuxBoot(
            "this host's KVM is PVM, where a Linux kernel's ring-0 code would run in KVM's \
             instruction emulator; boot Linux on a VMX/SVM KVM host"
                .into(),
        ));
    }
    Ok(())
}

/// The command line: Linux's console on the serial port, ACPI reboot, no
/// PCI or legacy probing, then `append`. (The virtio console is in the
/// DSDT.)
pub fn command_line(append: Option<&str>, capacity: usize, verbose: bool) -> Result<Cmdline> {
    let bad = |e: linux_loader::cmdline::Error| Error::LinuxBoot(format!("command line: {e}"));
    let mut cmdline = Cmdline::new(capacity).map_err(bad)?;
    // panic=-1: a panicking kernel reboots at once, which ends the VM.
    cmdline
        .insert_str("console=ttyS0 reboot=acpi panic=-1 pci=off io_delay=none no_timer_check")
        .map_err(bad)?;
    if !verbose {
        cmdline.insert_str("quiet").map_err(bad)?;
    }
    if let Some(extra) = append.filter(|s| !s.trim().is_empty()) {
        cmdline.insert_str(extra.trim()).map_err(bad)?;
    }
    Ok(cmdline)
}

/// The e820 map: base memory, the reserved area of the MP table, ACPI and
/// the BIOS hole, then RAM from 1 MiB (around the MMIO hole).
pub fn e820_map(memory_size: u64) -> Vec<boot_e820_entry> {
    let entry = |addr, size, r#type| boot_e820_entry { addr, size, r#type };
    let (regions, count) = forkvm_abi::ram_regions(memory_size);
    let mut map = vec![
        entry(0, BASE_MEMORY_END, E820_RAM),
        entry(
            BASE_MEMORY_END,
            KERNEL_PHYS - BASE_MEMORY_END,
            E820_RESERVED,
        ),
    ];
    for region in &regions[..count] {
        let start = region.start.max(KERNEL_PHYS);
        let end = region.start + region.len;
        if end > start {
            map.push(entry(start, end - start, E820_RAM));
        }
    }
    map
}

/// Builds the VM for the bzImage `kernel`; the serial console writes to
/// `serial_out`.
pub fn build(config: &VmConfig, mut kernel: File, serial_out: Box<dyn Write + Send>) -> Result<Vm> {
    refuse_on_pvm(config.platform)?;
    if config.script.is_some() || config.init.is_some() {
        return Err(Error::LinuxBoot(
            "-c and --init are for forkvm's kernel; a Linux kernel runs the initramfs's /init \
             (give its arguments with --append)"
                .into(),
        ));
    }
    if config.cpus != u32::from(CPUS) {
        return Err(Error::LinuxBoot(format!(
            "--cpus {}: a Linux guest boots with {CPUS} vCPU for now",
            config.cpus
        )));
    }
    // The archive as it is: Linux unpacks (and decompresses) it itself.
    let initrd = match &config.initrd {
        Some(path) => {
            Some(std::fs::read(path).map_err(|e| Error::InitrdFile(path.to_path_buf(), e))?)
        }
        None => None,
    };

    let kvm = open_kvm(&config.kvm_device)?;
    let vm = kvm
        .create_vm()
        .map_err(|e| Error::Kvm("KVM_CREATE_VM", e))?;
    if let Err(e) = vm.set_tss_address(KVM_TSS_ADDR) {
        log::debug!("KVM_SET_TSS_ADDR: {e}");
    }
    let memory = memory::create(&vm, config.memory)?;
    vm.create_irq_chip()
        .map_err(|e| Error::Kvm("KVM_CREATE_IRQCHIP", e))?;
    mask_legacy_pics(&vm)?;
    // A PIT, as on a PC: Linux may calibrate against it.
    vm.create_pit2(kvm_pit_config {
        flags: KVM_PIT_SPEAKER_DUMMY,
        ..Default::default()
    })
    .map_err(|e| Error::Kvm("KVM_CREATE_PIT2", e))?;

    let loaded = BzImage::load(&memory, Some(GuestAddress(KERNEL_PHYS)), &mut kernel, None)
        .map_err(|e| Error::KernelFormat(config.kernel.clone(), format!("bzImage: {e}")))?;
    let mut header = loaded
        .setup_header
        .ok_or_else(|| Error::KernelFormat(config.kernel.clone(), "no setup header".into()))?;
    if header.xloadflags & XLF_KERNEL_64 == 0 {
        return Err(Error::KernelFormat(
            config.kernel.clone(),
            "the bzImage has no 64-bit entry point".into(),
        ));
    }

    let verbose = log::log_enabled!(log::Level::Info);
    let cmdline = command_line(
        config.append.as_deref(),
        header.cmdline_size.max(256) as usize,
        verbose,
    )?;
    load_cmdline(&memory, GuestAddress(CMDLINE_PHYS), &cmdline)
        .map_err(|e| Error::LinuxBoot(format!("command line: {e}")))?;
    log::info!("Linux command line: {}", cmdline_text(&cmdline));

    header.type_of_loader = LOADER_OTHER;
    header.cmd_line_ptr = CMDLINE_PHYS as u32;
    if let Some(archive) = &initrd {
        let at = place_initrd(config, &header, archive.len() as u64)?;
        memory
            .write_slice(archive, GuestAddress(at))
            .map_err(|e| Error::Memory(format!("initramfs: {e}")))?;
        header.ramdisk_image = at as u32;
        header.ramdisk_size = archive.len() as u32;
    }
    let mut params = boot_params {
        hdr: header,
        acpi_rsdp_addr: ACPI_PHYS,
        ..Default::default()
    };
    let map = e820_map(config.memory);
    params.e820_table[..map.len()].copy_from_slice(&map);
    params.e820_entries = map.len() as u8;
    LinuxBootConfigurator::write_bootparams::<GuestMemory>(
        &BootParams::new(&params, GuestAddress(ZERO_PAGE_PHYS)),
        &memory,
    )
    .map_err(|e| Error::LinuxBoot(format!("boot_params: {e}")))?;

    write(&memory, MPTABLE_PHYS, &mptable::build(MPTABLE_PHYS, CPUS))?;
    write(&memory, ACPI_PHYS, &acpi::build(ACPI_PHYS, CPUS))?;
    write_identity_map(&memory)?;
    write(&memory, GDT_PHYS, &gdt_bytes())?;

    let vcpu = vm
        .create_vcpu(0)
        .map_err(|e| Error::Kvm("KVM_CREATE_VCPU", e))?;
    let mut cpuid = kvm
        .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
        .map_err(|e| Error::Kvm("KVM_GET_SUPPORTED_CPUID", e))?;
    let tsc_deadline = kvm.check_extension(kvm_ioctls::Cap::TscDeadlineTimer);
    for entry in cpuid.as_mut_slice() {
        if entry.function == 1 {
            // KVM leaves these to the VMM: the hypervisor bit (without it
            // Linux looks for no KVM leaves: no kvm-clock, no paravirt
            // features) and the in-kernel APIC's TSC-deadline timer.
            entry.ecx |= CPUID_1_ECX_HYPERVISOR;
            if tsc_deadline {
                entry.ecx |= CPUID_1_ECX_TSC_DEADLINE;
            }
        }
    }
    vcpu.set_cpuid2(&cpuid)
        .map_err(|e| Error::Kvm("KVM_SET_CPUID2", e))?;
    let tsc_khz = vcpu
        .get_tsc_khz()
        .map_err(|e| Error::Kvm("KVM_GET_TSC_KHZ", e))?;
    let mut sregs = vcpu
        .get_sregs()
        .map_err(|e| Error::Kvm("KVM_GET_SREGS", e))?;
    long_mode_sregs(&mut sregs);
    vcpu.set_sregs(&sregs)
        .map_err(|e| Error::Kvm("KVM_SET_SREGS", e))?;
    vcpu.set_regs(&kvm_regs {
        rip: loaded.kernel_load.0 + ENTRY_64_OFFSET,
        rsi: ZERO_PAGE_PHYS,
        rsp: BOOT_STACK_TOP,
        rbp: BOOT_STACK_TOP,
        rflags: 0x2,
        ..Default::default()
    })
    .map_err(|e| Error::Kvm("KVM_SET_REGS", e))?;
    vcpu.set_fpu(&kvm_fpu {
        fcw: 0x37f,
        mxcsr: 0x1f80,
        ..Default::default()
    })
    .map_err(|e| Error::Kvm("KVM_SET_FPU", e))?;

    let serial_irq = EventFd::new(EFD_NONBLOCK).map_err(|e| Error::Io("eventfd", e))?;
    vm.register_irqfd(&serial_irq, SERIAL_GSI)
        .map_err(|e| Error::Kvm("KVM_IRQFD (serial)", e))?;
    let serial_drained = EventFd::new(EFD_NONBLOCK).map_err(|e| Error::Io("eventfd", e))?;
    let drained_for_device = serial_drained
        .try_clone()
        .map_err(|e| Error::Io("eventfd", e))?;
    let serial = SharedSerial::new(serial_irq, drained_for_device, serial_out);
    let virtio_console = crate::builder::attach_virtio_console(&vm, &memory)?;

    Ok(Vm {
        vcpus: vec![vcpu],
        vm,
        kvm,
        memory,
        platform: Platform::Hvm,
        tsc_khz,
        serial,
        serial_drained,
        virtio_console,
    })
}

/// Masks every input of KVM's two 8259 PICs. The ACPI tables say the
/// machine has none (hardware-reduced), so Linux never programs them; but
/// KVM routes GSIs 0-15 to them as well as to the IOAPIC and starts the
/// bootstrap vCPU's LINT0 in ExtINT mode, so an unmasked PIC at its reset
/// vector base 0 would deliver the serial port's IRQ 4 as vector 4, which
/// Linux takes for the overflow exception (seen: an oops in the 8250
/// probe). Masked, the interrupts reach the CPU through the IOAPIC only.
pub fn mask_legacy_pics(vm: &kvm_ioctls::VmFd) -> Result<()> {
    for chip_id in [KVM_IRQCHIP_PIC_MASTER, KVM_IRQCHIP_PIC_SLAVE] {
        let mut chip = kvm_irqchip {
            chip_id,
            ..Default::default()
        };
        vm.get_irqchip(&mut chip)
            .map_err(|e| Error::Kvm("KVM_GET_IRQCHIP (PIC)", e))?;
        // For a PIC chip id KVM fills (and reads) the union's `pic` member.
        chip.chip.pic.imr = 0xff;
        vm.set_irqchip(&chip)
            .map_err(|e| Error::Kvm("KVM_SET_IRQCHIP (PIC)", e))?;
    }
    Ok(())
}

/// Where the initramfs goes: page aligned at the top of low RAM, below
/// the kernel's `initrd_addr_max`, above the kernel's decompression room.
fn place_initrd(
    config: &VmConfig,
    header: &linux_loader::loader::bootparam::setup_header,
    size: u64,
) -> Result<u64> {
    let (regions, _) = forkvm_abi::ram_regions(config.memory);
    let top = (regions[0].start + regions[0].len).min(u64::from(header.initrd_addr_max) + 1);
    let kernel_room = KERNEL_PHYS + u64::from(header.init_size);
    let at = top.saturating_sub(size) & !0xfff;
    if at < kernel_room {
        return Err(Error::InitrdTooLarge {
            size,
            max: top.saturating_sub(kernel_room),
            memory: config.memory,
        });
    }
    Ok(at)
}

fn write(memory: &GuestMemory, phys: u64, bytes: &[u8]) -> Result<()> {
    memory
        .write_slice(bytes, GuestAddress(phys))
        .map_err(|e| Error::Memory(format!("write at {phys:#x}: {e}")))
}

/// The first 4 GiB identity mapped with 2 MiB pages (the boot protocol
/// wants the kernel, `boot_params` and the command line mapped 1:1).
fn write_identity_map(memory: &GuestMemory) -> Result<()> {
    const PRESENT_WRITABLE: u64 = 0b11;
    const HUGE: u64 = 1 << 7;
    write(
        memory,
        PML4_PHYS,
        &(PDPT_PHYS | PRESENT_WRITABLE).to_le_bytes(),
    )?;
    for gib in 0..4u64 {
        let pd = PD_PHYS + gib * 0x1000;
        write(
            memory,
            PDPT_PHYS + gib * 8,
            &(pd | PRESENT_WRITABLE).to_le_bytes(),
        )?;
        let entries: Vec<u8> = (0..512u64)
            .flat_map(|i| (((gib << 30) + (i << 21)) | PRESENT_WRITABLE | HUGE).to_le_bytes())
            .collect();
        write(memory, pd, &entries)?;
    }
    Ok(())
}

/// Null, null, `__BOOT_CS` (0x10, 64-bit code), `__BOOT_DS` (0x18, flat
/// data), and a busy 64-bit TSS (0x20) for TR, which VM entry checks.
const GDT: [u64; 6] = [
    0,
    0,
    0x00af_9b00_0000_ffff,
    0x00cf_9300_0000_ffff,
    0x0000_8b00_0000_0067,
    0,
];

fn gdt_bytes() -> Vec<u8> {
    GDT.iter().flat_map(|e| e.to_le_bytes()).collect()
}

/// 64-bit mode, paging on the identity map, the boot GDT's segments.
fn long_mode_sregs(sregs: &mut kvm_sregs) {
    const CR0_PE: u64 = 1;
    const CR0_ET: u64 = 1 << 4;
    const CR0_NE: u64 = 1 << 5;
    const CR0_PG: u64 = 1 << 31;
    const CR4_PAE: u64 = 1 << 5;
    const EFER_LME: u64 = 1 << 8;
    const EFER_LMA: u64 = 1 << 10;
    let data = crate::boot::segment(0x18, GDT[3]);
    sregs.cs = crate::boot::segment(0x10, GDT[2]);
    sregs.ds = data;
    sregs.es = data;
    sregs.fs = data;
    sregs.gs = data;
    sregs.ss = data;
    let mut tr = crate::boot::segment(0x20, GDT[4]);
    tr.limit = 0x67;
    tr.g = 0;
    sregs.tr = tr;
    sregs.gdt.base = GDT_PHYS;
    sregs.gdt.limit = (GDT.len() * 8 - 1) as u16;
    sregs.idt.base = 0;
    sregs.idt.limit = 0;
    sregs.cr0 = CR0_PE | CR0_ET | CR0_NE | CR0_PG;
    sregs.cr3 = PML4_PHYS;
    sregs.cr4 = CR4_PAE;
    sregs.efer = EFER_LME | EFER_LMA;
}

/// The command line as text (for logs and tests).
pub fn cmdline_text(cmdline: &Cmdline) -> String {
    cmdline
        .as_cstring()
        .map(|c| c.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Whether `path` names a bzImage (for callers that have only a path).
pub fn path_is_bzimage(path: &Path) -> bool {
    File::open(path).is_ok_and(|mut f| is_bzimage(&mut f))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_with_the_setup_magic_is_a_bzimage_and_an_elf_is_not() {
        let dir = std::env::temp_dir().join(format!("forkvm-bz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bz = dir.join("bz");
        let mut bytes = vec![0u8; 0x400];
        bytes[0x202..0x206].copy_from_slice(b"HdrS");
        std::fs::write(&bz, &bytes).unwrap();
        assert!(path_is_bzimage(&bz));
        assert!(
            path_is_bzimage(&bz),
            "the check leaves the file at its start"
        );
        let elf = dir.join("elf");
        std::fs::write(&elf, b"\x7fELF\x02\x01\x01").unwrap();
        assert!(!path_is_bzimage(&elf));
        assert!(!path_is_bzimage(&dir.join("missing")));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Both PICs end with every input masked (a fresh irqchip's are not).
    #[test]
    fn the_legacy_pics_are_masked() {
        let Ok(kvm) = open_kvm(Path::new(crate::config::DEFAULT_KVM_DEVICE)) else {
            eprintln!("no KVM here");
            return;
        };
        let vm = kvm.create_vm().unwrap();
        vm.create_irq_chip().unwrap();
        let imr = |vm: &kvm_ioctls::VmFd, chip_id| {
            let mut chip = kvm_irqchip {
                chip_id,
                ..Default::default()
            };
            vm.get_irqchip(&mut chip).unwrap();
            // SAFETY: a PIC chip id: KVM filled the `pic` member.
            unsafe { chip.chip.pic.imr }
        };
        assert_ne!(imr(&vm, KVM_IRQCHIP_PIC_MASTER), 0xff, "KVM's reset state");
        mask_legacy_pics(&vm).unwrap();
        assert_eq!(imr(&vm, KVM_IRQCHIP_PIC_MASTER), 0xff);
        assert_eq!(imr(&vm, KVM_IRQCHIP_PIC_SLAVE), 0xff);
    }

    #[test]
    fn the_e820_map_reserves_the_tables_and_follows_the_mmio_hole() {
        let map = e820_map(256 << 20);
        let triples: Vec<(u64, u64, u32)> =
            map.iter().map(|e| (e.addr, e.size, e.r#type)).collect();
        assert_eq!(
            triples,
            vec![
                (0, 0x9fc00, E820_RAM),
                (0x9fc00, 0x100000 - 0x9fc00, E820_RESERVED),
                (0x100000, (256 << 20) - 0x100000, E820_RAM),
            ]
        );
        let big = e820_map(4 << 30);
        assert_eq!(big.len(), 4);
        assert_eq!((big[3].addr, big[3].size), (1 << 32, 1 << 30));
    }

    #[test]
    fn the_command_line_has_the_serial_console_and_appends() {
        let line = cmdline_text(&command_line(Some("rdinit=/init x=1"), 2048, false).unwrap());
        assert!(line.starts_with("console=ttyS0 "), "{line}");
        assert!(line.ends_with(" quiet rdinit=/init x=1"), "{line}");
        // The DSDT announces the virtio console; the command line must not
        // announce it a second time.
        assert!(!line.contains("virtio_mmio"), "{line}");
        assert!(line.ends_with("rdinit=/init x=1"), "{line}");
        assert!(!cmdline_text(&command_line(None, 2048, true).unwrap()).contains("quiet"));
    }
}
