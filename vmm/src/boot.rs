//! The guest's initial state: boot page tables, GDT, boot information and
//! the vCPU's registers (64-bit mode, paging on, at the kernel entry).

use forkvm_abi::*;
use kvm_bindings::{kvm_fpu, kvm_regs, kvm_segment, kvm_sregs};
use vm_memory::{Bytes, GuestAddress};

use crate::error::{Error, Result};
use crate::memory::GuestMemory;

const PTE_PRESENT: u64 = 1 << 0;
const PTE_WRITABLE: u64 = 1 << 1;
const PTE_USER: u64 = 1 << 2;
const PTE_PWT: u64 = 1 << 3;
const PTE_PCD: u64 = 1 << 4;
const PTE_HUGE: u64 = 1 << 7;

const CR0_PE: u64 = 1 << 0;
const CR0_MP: u64 = 1 << 1;
const CR0_ET: u64 = 1 << 4;
const CR0_NE: u64 = 1 << 5;
const CR0_WP: u64 = 1 << 16;
const CR0_PG: u64 = 1 << 31;
const CR4_PAE: u64 = 1 << 5;
const CR4_OSFXSR: u64 = 1 << 9;
const CR4_OSXMMEXCPT: u64 = 1 << 10;
const EFER_SCE: u64 = 1 << 0;
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;
const EFER_NXE: u64 = 1 << 11;

/// Linux's GDT layout (the guest installs the same one later).
const GDT: [u64; 9] = [
    0,
    0,
    0x00af_9b00_0000_ffff, // 0x10 kernel code, 64-bit
    0x00cf_9300_0000_ffff, // 0x18 kernel data
    0x00cf_fb00_0000_ffff, // 0x23 user code, 32-bit
    0x00cf_f300_0000_ffff, // 0x2b user data
    0x00af_fb00_0000_ffff, // 0x33 user code, 64-bit
    0,
    0x0000_8b00_0000_0067, // 0x40 TSS (busy, base 0): KVM checks TR on entry
];

fn write<T: vm_memory::ByteValued>(memory: &GuestMemory, phys: u64, value: T) -> Result<()> {
    memory
        .write_obj(value, GuestAddress(phys))
        .map_err(|e| Error::Memory(format!("write at {phys:#x}: {e}")))
}

/// Writes the boot page tables: all RAM (and the MMIO hole below 4 GiB,
/// uncached: IOAPIC, virtio-mmio) mapped with 2 MiB pages at `PAGE_OFFSET`. On the PVM host every entry
/// carries U=1, which that host requires of kernel mappings, and the same
/// map also appears at `PVM_EVENT_ALIAS`.
pub fn write_page_tables(memory: &GuestMemory, ram_top: u64, platform: Platform) -> Result<()> {
    let user = if platform == Platform::PvmNative {
        PTE_USER
    } else {
        0
    };
    let table = PTE_PRESENT | PTE_WRITABLE | user;
    let gigabytes = ram_top.max(MMIO_HOLE_END).div_ceil(1 << 30);
    if gigabytes > BOOT_PD_MAX {
        return Err(Error::Memory(format!(
            "RAM top {ram_top:#x} beyond what the boot page tables map"
        )));
    }
    let pml4_index = (PAGE_OFFSET >> 39) & 511;
    write(
        memory,
        BOOT_PML4_PHYS + pml4_index * 8,
        BOOT_PDPT_PHYS | table,
    )?;
    if platform == Platform::PvmNative {
        // The PVM host delivers events only onto upper-half stacks: alias
        // the direct map there too (see forkvm_abi::PVM_EVENT_ALIAS).
        let alias_index = (PVM_EVENT_ALIAS >> 39) & 511;
        write(
            memory,
            BOOT_PML4_PHYS + alias_index * 8,
            BOOT_PDPT_PHYS | table,
        )?;
    }
    for gib in 0..gigabytes {
        let pd = BOOT_PD_PHYS + gib * PAGE_SIZE;
        write(memory, BOOT_PDPT_PHYS + gib * 8, pd | table)?;
        let mut entries = [0u64; 512];
        for (i, entry) in entries.iter_mut().enumerate() {
            let phys = (gib << 30) + ((i as u64) << 21);
            *entry = phys | table | PTE_HUGE | cache_bits(phys);
        }
        memory
            .write_slice(as_bytes(&entries), GuestAddress(pd))
            .map_err(|e| Error::Memory(format!("page directory at {pd:#x}: {e}")))?;
    }
    Ok(())
}

/// Gives every secondary CPU its own root page table, a copy of the boot
/// PML4 at [`cpu_root_phys`] (the kernel half's lower tables are shared).
pub fn write_cpu_roots(memory: &GuestMemory, nr_cpus: u32) -> Result<()> {
    let mut boot = [0u8; PAGE_SIZE as usize];
    memory
        .read_slice(&mut boot, GuestAddress(BOOT_PML4_PHYS))
        .map_err(|e| Error::Memory(format!("boot PML4: {e}")))?;
    for cpu in 1..nr_cpus {
        let root = cpu_root_phys(cpu);
        memory
            .write_slice(&boot, GuestAddress(root))
            .map_err(|e| Error::Memory(format!("root of CPU {cpu} at {root:#x}: {e}")))?;
    }
    Ok(())
}

/// Device memory (the MMIO hole) is mapped uncached (PCD|PWT), RAM
/// write-back.
fn cache_bits(phys: u64) -> u64 {
    if (MMIO_HOLE_START..MMIO_HOLE_END).contains(&phys) {
        PTE_PCD | PTE_PWT
    } else {
        0
    }
}

fn as_bytes(entries: &[u64; 512]) -> &[u8] {
    // SAFETY: u64 has no padding and any byte pattern is a valid u8.
    unsafe {
        std::slice::from_raw_parts(
            entries.as_ptr().cast::<u8>(),
            std::mem::size_of_val(entries),
        )
    }
}

/// Writes the boot GDT.
pub fn write_gdt(memory: &GuestMemory) -> Result<()> {
    for (i, entry) in GDT.iter().enumerate() {
        write(memory, BOOT_GDT_PHYS + i as u64 * 8, *entry)?;
    }
    Ok(())
}

/// Everything the VMM puts in the boot information page.
pub struct BootParams<'a> {
    pub platform: Platform,
    pub tsc_khz: u64,
    pub memory_size: u64,
    pub script: Option<&'a str>,
    /// The initramfs, decompressed.
    pub initrd: Option<&'a [u8]>,
    /// The first program's path and arguments.
    pub init: Option<&'a [String]>,
    /// Number of vCPUs.
    pub nr_cpus: u32,
}

/// `init`'s path and arguments as the guest reads them: NUL-terminated
/// strings one after the other.
pub fn init_argv_bytes(init: &[String]) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    for arg in init {
        bytes.extend_from_slice(arg.as_bytes());
        bytes.push(0);
    }
    if bytes.len() as u64 > INIT_ARGV_MAX_LEN {
        return Err(Error::InitTooLong {
            len: bytes.len(),
            max: INIT_ARGV_MAX_LEN,
        });
    }
    Ok(bytes)
}

/// Writes the boot information page, the script, init's arguments and
/// the initramfs.
pub fn write_boot_info(memory: &GuestMemory, params: &BootParams) -> Result<()> {
    let (mut mem_regions, nr_mem_regions) = ram_regions(params.memory_size);
    let (mut initrd_phys, mut initrd_size) = (0, 0);
    if let Some(archive) = params.initrd {
        let (kept, phys) = crate::initrd::place(&mem_regions, archive.len() as u64)?;
        memory
            .write_slice(archive, GuestAddress(phys))
            .map_err(|e| Error::Memory(format!("initramfs: {e}")))?;
        mem_regions = kept;
        (initrd_phys, initrd_size) = (phys, archive.len() as u64);
    }
    let mut init_len = 0;
    let mut flags = 0;
    let mut script_len = 0;
    if let Some(script) = params.script {
        if script.len() as u64 > SCRIPT_MAX_LEN {
            return Err(Error::ScriptTooLong {
                len: script.len(),
                max: SCRIPT_MAX_LEN,
            });
        }
        memory
            .write_slice(script.as_bytes(), GuestAddress(SCRIPT_PHYS))
            .map_err(|e| Error::Memory(format!("script: {e}")))?;
        flags |= BOOT_FLAG_SCRIPT;
        script_len = script.len() as u64;
    }
    if let Some(init) = params.init {
        let bytes = init_argv_bytes(init)?;
        memory
            .write_slice(&bytes, GuestAddress(INIT_ARGV_PHYS))
            .map_err(|e| Error::Memory(format!("init arguments: {e}")))?;
        flags |= BOOT_FLAG_INIT;
        init_len = bytes.len() as u64;
    }
    let info = BootInfo {
        magic: BOOT_INFO_MAGIC,
        version: BOOT_INFO_VERSION,
        platform: params.platform as u32,
        tsc_khz: params.tsc_khz,
        flags,
        script_len,
        nr_mem_regions: nr_mem_regions as u32,
        serial_gsi: SERIAL_GSI,
        mem_regions,
        virtio_console_base: VIRTIO_CONSOLE_MMIO_BASE,
        virtio_console_size: VIRTIO_MMIO_SIZE,
        virtio_console_gsi: VIRTIO_CONSOLE_GSI,
        nr_cpus: params.nr_cpus,
        initrd_phys,
        initrd_size,
        init_len,
    };
    // SAFETY: BootInfo is repr(C) plain data; viewing it as bytes is sound.
    let bytes = unsafe {
        std::slice::from_raw_parts(
            (&info as *const BootInfo).cast::<u8>(),
            std::mem::size_of::<BootInfo>(),
        )
    };
    memory
        .write_slice(bytes, GuestAddress(BOOT_INFO_PHYS))
        .map_err(|e| Error::Memory(format!("boot info: {e}")))
}

/// The KVM segment register for `selector` from its flat GDT
/// `descriptor` (the type and flag bits; base 0, limit 4 GiB).
pub(crate) fn segment(selector: u16, descriptor: u64) -> kvm_segment {
    kvm_segment {
        base: 0,
        limit: 0xffff_ffff,
        selector,
        type_: ((descriptor >> 40) & 0xf) as u8,
        present: ((descriptor >> 47) & 1) as u8,
        dpl: ((descriptor >> 45) & 3) as u8,
        db: ((descriptor >> 54) & 1) as u8,
        s: ((descriptor >> 44) & 1) as u8,
        l: ((descriptor >> 53) & 1) as u8,
        g: ((descriptor >> 55) & 1) as u8,
        avl: 0,
        unusable: 0,
        padding: 0,
    }
}

/// Puts vCPU `cpu` in 64-bit mode with its root page table and the boot GDT.
pub fn setup_sregs(sregs: &mut kvm_sregs, nx: bool, cpu: u32) {
    let code = segment(0x10, GDT[2]);
    let data = segment(0x18, GDT[3]);
    sregs.cs = code;
    sregs.ds = data;
    sregs.es = data;
    sregs.fs = data;
    sregs.gs = data;
    sregs.ss = data;
    let mut tr = segment(0x40, GDT[8]);
    tr.limit = 0x67;
    tr.g = 0;
    sregs.tr = tr;
    sregs.gdt.base = PAGE_OFFSET + BOOT_GDT_PHYS;
    sregs.gdt.limit = (GDT.len() * 8 - 1) as u16;
    sregs.idt.base = 0;
    sregs.idt.limit = 0;
    sregs.cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_PG;
    sregs.cr3 = cpu_root_phys(cpu);
    sregs.cr4 = CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT;
    sregs.efer = EFER_SCE | EFER_LME | EFER_LMA | if nx { EFER_NXE } else { 0 };
}

/// General registers at entry: `rsi` points at the boot information,
/// `rdx` is the CPU's number (0: the boot CPU, which brings up the kernel;
/// the others wait in `_start` until it lets them in).
pub fn entry_regs(entry: u64, cpu: u32) -> kvm_regs {
    kvm_regs {
        rip: entry,
        rsi: BOOT_INFO_PHYS,
        rdx: u64::from(cpu),
        rflags: 0x2,
        ..Default::default()
    }
}

/// x87/SSE state at reset values.
pub fn entry_fpu() -> kvm_fpu {
    kvm_fpu {
        fcw: 0x37f,
        mxcsr: 0x1f80,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mmio_hole_is_mapped_uncached() {
        assert_eq!(cache_bits(0), 0);
        assert_eq!(cache_bits(MMIO_HOLE_START - (2 << 20)), 0);
        assert_eq!(cache_bits(MMIO_HOLE_START), PTE_PCD | PTE_PWT);
        assert_eq!(cache_bits(VIRTIO_CONSOLE_MMIO_BASE), PTE_PCD | PTE_PWT);
        assert_eq!(
            cache_bits(IOAPIC_PHYS & !((2 << 20) - 1)),
            PTE_PCD | PTE_PWT
        );
        assert_eq!(cache_bits(MMIO_HOLE_END), 0);
    }
}
