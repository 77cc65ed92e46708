//! Minimal ACPI for a Linux guest: only what turns its power-off and
//! reboot into exits the VMM sees.
//!
//! Without ACPI, Linux on x86 has no way to power off a PC (the request
//! becomes a halt with interrupts off, which KVM's in-kernel APIC keeps
//! to itself). So the tables are: the RSDP (found through
//! `boot_params.acpi_rsdp_addr`, or Linux's scan of 0xE0000..0xFFFFF), an
//! XSDT with one entry, a hardware-reduced FADT (ACPI 6: no PM1 blocks, no
//! SCI, no legacy PIC or PIT) whose sleep control register and reset
//! register are I/O ports of this VMM, and a DSDT that defines the `\_S5`
//! (soft-off) sleep type and the virtio-mmio console (`\_SB.VR00`, ACPI id
//! `LNRO0005`, its MMIO window and interrupt): distribution kernels build
//! virtio-mmio without `virtio_mmio.device=` command-line devices
//! (Debian's has `CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES` off), so ACPI is how
//! they find it. A MADT lists the CPUs' local APICs and the IOAPIC (GSI
//! base 0, no overrides: ISA IRQ n is GSI n, as KVM routes them), so Linux
//! takes the ACPI IOAPIC interrupt model and maps the console's GSI to an
//! IOAPIC input. (The MP table, `super::mptable`, says the same for a
//! kernel without ACPI.)
//!
//! Linux powers off by writing `SLP_TYP << 2 | SLP_EN` to the sleep
//! control register (ACPI 6.x 4.8.3.7); it reboots (`reboot=acpi`, x86's
//! first choice) by writing the reset value to the reset register.

use forkvm_abi::{
    IOAPIC_PHYS, LAPIC_PHYS, VIRTIO_CONSOLE_GSI, VIRTIO_CONSOLE_MMIO_BASE, VIRTIO_MMIO_SIZE,
};

use super::mptable::checksum;

/// I/O port of the FADT's sleep control register.
pub const SLEEP_CONTROL_PORT: u16 = 0x600;
/// I/O port of the FADT's sleep status register (writes ignored, reads 0).
pub const SLEEP_STATUS_PORT: u16 = 0x601;
/// I/O port of the FADT's reset register.
pub const RESET_PORT: u16 = 0x602;
/// The value Linux writes to [`RESET_PORT`] to reboot.
pub const RESET_VALUE: u8 = 0x01;
/// `SLP_TYP` of `\_S5` in the DSDT.
pub const S5_SLEEP_TYPE: u8 = 5;
/// `SLP_EN` of the sleep control register.
const SLEEP_ENABLE: u8 = 1 << 5;

/// What a write to one of the ports above asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortRequest {
    PowerOff,
    Reboot,
    /// A write that changes nothing (status clears, other sleep types).
    Nothing,
}

/// Whether `port` is one of the ACPI ports above.
pub fn is_acpi_port(port: u16) -> bool {
    (SLEEP_CONTROL_PORT..=RESET_PORT).contains(&port)
}

/// What writing `value` to `port` asks for.
pub fn port_write(port: u16, value: u8) -> PortRequest {
    match port {
        SLEEP_CONTROL_PORT if value & SLEEP_ENABLE != 0 && (value >> 2) & 7 == S5_SLEEP_TYPE => {
            PortRequest::PowerOff
        }
        RESET_PORT if value == RESET_VALUE => PortRequest::Reboot,
        _ => PortRequest::Nothing,
    }
}

const OEM_ID: &[u8; 6] = b"FORKVM";
const OEM_TABLE_ID: &[u8; 8] = b"LINUXREF";
const FADT_REVISION: u8 = 6;
const FADT_LEN: usize = 276;
/// FADT flags: RESET_REG_SUP, HW_REDUCED_ACPI.
const FADT_FLAGS: u32 = (1 << 10) | (1 << 20);
/// IA-PC boot architecture flags: no VGA (bit 2), no CMOS RTC (bit 3);
/// bit 1 (an 8042) is clear, so Linux does not probe a keyboard
/// controller.
const IAPC_BOOT_ARCH: u16 = (1 << 2) | (1 << 3);

/// A system description table: the 36-byte header, then `body`.
fn table(signature: &[u8; 4], revision: u8, body: &[u8]) -> Vec<u8> {
    let mut t = Vec::with_capacity(36 + body.len());
    t.extend_from_slice(signature);
    t.extend_from_slice(&((36 + body.len()) as u32).to_le_bytes());
    t.push(revision);
    t.push(0); // checksum, below
    t.extend_from_slice(OEM_ID);
    t.extend_from_slice(OEM_TABLE_ID);
    t.extend_from_slice(&1u32.to_le_bytes()); // OEM revision
    t.extend_from_slice(b"FKVM"); // creator id
    t.extend_from_slice(&1u32.to_le_bytes()); // creator revision
    t.extend_from_slice(body);
    t[9] = checksum(&t);
    t
}

/// A Generic Address Structure for one byte-wide I/O port.
fn io_port_gas(port: u16) -> [u8; 12] {
    let mut gas = [0u8; 12];
    gas[0] = 1; // system I/O space
    gas[1] = 8; // register bit width
    gas[2] = 0; // bit offset
    gas[3] = 1; // byte access
    gas[4..12].copy_from_slice(&u64::from(port).to_le_bytes());
    gas
}

/// AML encodings (ACPI 6.x chapter 20) of the few terms the DSDT uses.
mod aml {
    pub const ZERO_OP: u8 = 0x00;
    pub const NAME_OP: u8 = 0x08;
    pub const BYTE_PREFIX: u8 = 0x0a;
    pub const DWORD_PREFIX: u8 = 0x0c;
    pub const STRING_PREFIX: u8 = 0x0d;
    pub const SCOPE_OP: u8 = 0x10;
    pub const BUFFER_OP: u8 = 0x11;
    pub const PACKAGE_OP: u8 = 0x12;
    pub const EXT_OP_PREFIX: u8 = 0x5b;
    pub const DEVICE_OP: u8 = 0x82;

    /// `PkgLength` of a package whose contents after it are `len` bytes:
    /// it counts its own one to three bytes.
    pub fn pkg_length(len: usize) -> Vec<u8> {
        if len + 1 < 1 << 6 {
            vec![(len + 1) as u8]
        } else if len + 2 < 1 << 12 {
            let total = len + 2;
            vec![0x40 | (total & 0xf) as u8, (total >> 4) as u8]
        } else {
            let total = len + 3;
            assert!(total < 1 << 20, "AML package too long");
            vec![
                0x80 | (total & 0xf) as u8,
                (total >> 4) as u8,
                (total >> 12) as u8,
            ]
        }
    }

    /// `Name (name, object)`; `name` is a 4-character segment or a path.
    pub fn name(name: &[u8], object: &[u8]) -> Vec<u8> {
        [&[NAME_OP], name, object].concat()
    }

    /// A package-encoded term: `op`, PkgLength, then `contents`.
    fn package_term(op: &[u8], contents: &[u8]) -> Vec<u8> {
        [op, &pkg_length(contents.len()), contents].concat()
    }

    /// `Scope (name) { terms }`.
    pub fn scope(name: &[u8], terms: &[u8]) -> Vec<u8> {
        package_term(&[SCOPE_OP], &[name, terms].concat())
    }

    /// `Device (name) { terms }`.
    pub fn device(name: &[u8; 4], terms: &[u8]) -> Vec<u8> {
        package_term(
            &[EXT_OP_PREFIX, DEVICE_OP],
            &[name.as_slice(), terms].concat(),
        )
    }

    /// A string constant.
    pub fn string(text: &str) -> Vec<u8> {
        [&[STRING_PREFIX], text.as_bytes(), &[0]].concat()
    }

    /// `Package () { elements }` of already encoded elements.
    pub fn package(count: u8, elements: &[u8]) -> Vec<u8> {
        package_term(&[PACKAGE_OP], &[&[count], elements].concat())
    }

    /// `ResourceTemplate () { descriptors }`: a buffer of the resource
    /// descriptors and the end tag (its checksum 0: "treat as correct").
    pub fn resource_template(descriptors: &[u8]) -> Vec<u8> {
        let bytes = [descriptors, &[0x79, 0x00]].concat();
        let size = u32::try_from(bytes.len()).expect("small buffer");
        let size = [&[DWORD_PREFIX], size.to_le_bytes().as_slice()].concat();
        package_term(&[BUFFER_OP], &[size.as_slice(), &bytes].concat())
    }

    /// `Memory32Fixed (ReadWrite, base, length)`: large item 0x86.
    pub fn memory32_fixed(base: u32, length: u32) -> Vec<u8> {
        let mut d = vec![0x86, 9, 0, 1];
        d.extend_from_slice(&base.to_le_bytes());
        d.extend_from_slice(&length.to_le_bytes());
        d
    }

    /// `Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive) { gsi }`:
    /// the extended interrupt descriptor, large item 0x89.
    pub fn edge_interrupt(gsi: u32) -> Vec<u8> {
        const CONSUMER: u8 = 1 << 0;
        const EDGE: u8 = 1 << 1;
        let mut d = vec![0x89, 6, 0, CONSUMER | EDGE, 1];
        d.extend_from_slice(&gsi.to_le_bytes());
        d
    }
}

/// The DSDT's AML: `Name (\_S5, Package () { S5_SLEEP_TYPE, 0 })` and
/// the virtio-mmio console as a device under `\_SB` (see the module
/// comment).
fn dsdt_aml() -> Vec<u8> {
    let s5 = aml::package(2, &[aml::BYTE_PREFIX, S5_SLEEP_TYPE, aml::ZERO_OP]);
    let mut out = aml::name(b"\\_S5_", &s5);
    let resources = [
        aml::memory32_fixed(
            u32::try_from(VIRTIO_CONSOLE_MMIO_BASE).expect("below 4 GiB"),
            VIRTIO_MMIO_SIZE as u32,
        ),
        aml::edge_interrupt(VIRTIO_CONSOLE_GSI),
    ]
    .concat();
    let console = aml::device(
        b"VR00",
        &[
            aml::name(b"_HID", &aml::string("LNRO0005")),
            aml::name(b"_UID", &[aml::ZERO_OP]),
            aml::name(b"_CRS", &aml::resource_template(&resources)),
        ]
        .concat(),
    );
    out.extend(aml::scope(b"\\_SB_", &console));
    out
}

fn fadt(dsdt: u64) -> Vec<u8> {
    let mut body = vec![0u8; FADT_LEN - 36];
    let at = |offset: usize| offset - 36;
    body[at(40)..at(44)].copy_from_slice(&(dsdt as u32).to_le_bytes());
    body[at(109)..at(111)].copy_from_slice(&IAPC_BOOT_ARCH.to_le_bytes());
    body[at(112)..at(116)].copy_from_slice(&FADT_FLAGS.to_le_bytes());
    body[at(116)..at(128)].copy_from_slice(&io_port_gas(RESET_PORT));
    body[at(128)] = RESET_VALUE;
    body[at(131)] = 0; // FADT minor version (6.0)
    body[at(140)..at(148)].copy_from_slice(&dsdt.to_le_bytes());
    body[at(244)..at(256)].copy_from_slice(&io_port_gas(SLEEP_CONTROL_PORT));
    body[at(256)..at(268)].copy_from_slice(&io_port_gas(SLEEP_STATUS_PORT));
    body[at(268)..at(276)].copy_from_slice(b"FORKVM  ");
    table(b"FACP", FADT_REVISION, &body)
}

/// MADT revision (ACPI 6.0).
const MADT_REVISION: u8 = 4;
const MADT_LOCAL_APIC: u8 = 0;
const MADT_IO_APIC: u8 = 1;
/// A local APIC entry's flags: enabled.
const LOCAL_APIC_ENABLED: u32 = 1;

/// The MADT: the local APICs of `cpus` vCPUs (ACPI processor uid = APIC
/// id = 0..cpus) and the IOAPIC (id `cpus`, as in the MP table) at GSI 0.
/// Flags 0: no dual 8259 to set up (they stay masked).
fn madt(cpus: u8) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&(LAPIC_PHYS as u32).to_le_bytes());
    body.extend_from_slice(&0u32.to_le_bytes());
    for cpu in 0..cpus {
        body.extend_from_slice(&[MADT_LOCAL_APIC, 8, cpu, cpu]);
        body.extend_from_slice(&LOCAL_APIC_ENABLED.to_le_bytes());
    }
    body.extend_from_slice(&[MADT_IO_APIC, 12, cpus, 0]);
    body.extend_from_slice(&(IOAPIC_PHYS as u32).to_le_bytes());
    body.extend_from_slice(&0u32.to_le_bytes());
    table(b"APIC", MADT_REVISION, &body)
}

/// The tables for `cpus` vCPUs, laid out from guest-physical `base`
/// (16-byte aligned, below 1 MiB so that the legacy scan finds the RSDP
/// there too): the RSDP at `base` itself.
pub fn build(base: u64, cpus: u8) -> Vec<u8> {
    assert_eq!(base % 16, 0, "the RSDP is 16-byte aligned");
    assert!((1..0xff).contains(&cpus), "APIC ids must fit");
    let xsdt_at = base + 64;
    let fadt_at = xsdt_at + 64;
    let madt_at = fadt_at + 512;
    let madt = madt(cpus);
    let dsdt_at = madt_at + (madt.len() as u64).next_multiple_of(16);

    let mut rsdp = Vec::with_capacity(36);
    rsdp.extend_from_slice(b"RSD PTR ");
    rsdp.push(0); // checksum of the first 20 bytes, below
    rsdp.extend_from_slice(OEM_ID);
    rsdp.push(2); // revision: ACPI 2.0+, the XSDT is used
    rsdp.extend_from_slice(&0u32.to_le_bytes()); // no RSDT
    rsdp.extend_from_slice(&36u32.to_le_bytes());
    rsdp.extend_from_slice(&xsdt_at.to_le_bytes());
    rsdp.push(0); // extended checksum, below
    rsdp.extend_from_slice(&[0; 3]);
    rsdp[8] = checksum(&rsdp[..20]);
    rsdp[32] = checksum(&rsdp);

    let xsdt = table(
        b"XSDT",
        1,
        &[fadt_at.to_le_bytes(), madt_at.to_le_bytes()].concat(),
    );
    let fadt = fadt(dsdt_at);
    let dsdt = table(b"DSDT", 2, &dsdt_aml());
    assert!(xsdt.len() <= 64 && fadt.len() <= 512);

    let mut out = vec![0u8; (dsdt_at - base) as usize];
    out[..rsdp.len()].copy_from_slice(&rsdp);
    let put = |out: &mut Vec<u8>, at: u64, bytes: &[u8]| {
        let offset = (at - base) as usize;
        out[offset..offset + bytes.len()].copy_from_slice(bytes);
    };
    put(&mut out, xsdt_at, &xsdt);
    put(&mut out, fadt_at, &fadt);
    put(&mut out, madt_at, &madt);
    out.extend_from_slice(&dsdt);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(bytes: &[u8]) -> u8 {
        bytes.iter().fold(0u8, |s, &b| s.wrapping_add(b))
    }

    fn u64_at(bytes: &[u8], offset: usize) -> u64 {
        u64::from_le_bytes(bytes[offset..offset + 8].try_into().unwrap())
    }

    /// The table at guest address `at` in `tables` (laid out from `base`).
    fn table_at(tables: &[u8], base: u64, at: u64) -> &[u8] {
        let offset = (at - base) as usize;
        let len = u32::from_le_bytes(tables[offset + 4..offset + 8].try_into().unwrap());
        &tables[offset..offset + len as usize]
    }

    #[test]
    fn the_rsdp_leads_through_the_xsdt_to_a_checked_fadt_and_dsdt() {
        let base = 0xe0000;
        let tables = build(base, 2);
        assert_eq!(&tables[..8], b"RSD PTR ");
        assert_eq!(sum(&tables[..20]), 0);
        assert_eq!(sum(&tables[..36]), 0);
        let xsdt = table_at(&tables, base, u64_at(&tables, 24));
        assert_eq!(&xsdt[..4], b"XSDT");
        assert_eq!(sum(xsdt), 0);
        assert_eq!(xsdt.len(), 52, "two entries");
        let fadt = table_at(&tables, base, u64_at(xsdt, 36));
        assert_eq!(&fadt[..4], b"FACP");
        assert_eq!(fadt.len(), FADT_LEN);
        assert_eq!(fadt[8], 6, "revision 6: sleep registers present");
        assert_eq!(sum(fadt), 0);
        let flags = u32::from_le_bytes(fadt[112..116].try_into().unwrap());
        assert_ne!(flags & (1 << 20), 0, "hardware-reduced");
        assert_eq!(u64_at(fadt, 244 + 4), u64::from(SLEEP_CONTROL_PORT));
        assert_eq!(u64_at(fadt, 116 + 4), u64::from(RESET_PORT));
        let madt = table_at(&tables, base, u64_at(xsdt, 44));
        assert_eq!(&madt[..4], b"APIC");
        assert_eq!(sum(madt), 0);
        assert_eq!(&madt[36..40], &0xfee0_0000u32.to_le_bytes());
        assert_eq!(
            &madt[44..],
            &[
                0, 8, 0, 0, 1, 0, 0, 0, // CPU 0's local APIC, enabled
                0, 8, 1, 1, 1, 0, 0, 0, // CPU 1's
                1, 12, 2, 0, 0, 0, 0xc0, 0xfe, 0, 0, 0, 0, // IOAPIC 2 at GSI 0
            ]
        );
        let dsdt = table_at(&tables, base, u64_at(fadt, 140));
        assert_eq!(&dsdt[..4], b"DSDT");
        assert_eq!(sum(dsdt), 0);
        assert_eq!(
            &dsdt[36..48],
            &[0x08, b'\\', b'_', b'S', b'5', b'_', 0x12, 5, 2, 0x0a, 5, 0]
        );
        assert_eq!(&dsdt[48..], VIRTIO_CONSOLE_DEVICE_AML);
        assert!(tables.len() < 0x1000);
    }

    /// The console's device as iasl 20200925 disassembles it:
    /// `Scope (\_SB) { Device (VR00) { Name (_HID, "LNRO0005")
    /// Name (_UID, Zero) Name (_CRS, ResourceTemplate () {
    /// Memory32Fixed (ReadWrite, 0xD0000000, 0x00001000)
    /// Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive) { 5 } }) } }`.
    const VIRTIO_CONSOLE_DEVICE_AML: &[u8] = &[
        0x10, 0x46, 0x04, b'\\', b'_', b'S', b'B', b'_', 0x5b, 0x82, 0x3d, b'V', b'R', b'0', b'0',
        0x08, b'_', b'H', b'I', b'D', 0x0d, b'L', b'N', b'R', b'O', b'0', b'0', b'0', b'5', 0x00,
        0x08, b'_', b'U', b'I', b'D', 0x00, 0x08, b'_', b'C', b'R', b'S', 0x11, 0x1d, 0x0c, 0x17,
        0x00, 0x00, 0x00, 0x86, 0x09, 0x00, 0x01, 0x00, 0x00, 0x00, 0xd0, 0x00, 0x10, 0x00, 0x00,
        0x89, 0x06, 0x00, 0x03, 0x01, 0x05, 0x00, 0x00, 0x00, 0x79, 0x00,
    ];

    #[test]
    fn pkg_length_counts_itself_in_one_two_or_three_bytes() {
        assert_eq!(aml::pkg_length(4), [5]);
        assert_eq!(aml::pkg_length(62), [63]);
        // 63 + 2 = 65 = 0x41: low nibble 1, then 0x41 >> 4.
        assert_eq!(aml::pkg_length(63), [0x41, 0x04]);
        assert_eq!(aml::pkg_length(4093), [0x4f, 0xff]);
        // 4094 + 3 = 0x1001.
        assert_eq!(aml::pkg_length(4094), [0x81, 0x00, 0x01]);
    }

    #[test]
    fn only_s5_with_slp_en_powers_off_and_only_the_reset_value_reboots() {
        assert_eq!(
            port_write(SLEEP_CONTROL_PORT, (5 << 2) | 0x20),
            PortRequest::PowerOff
        );
        assert_eq!(port_write(SLEEP_CONTROL_PORT, 5 << 2), PortRequest::Nothing);
        assert_eq!(
            port_write(SLEEP_CONTROL_PORT, (3 << 2) | 0x20),
            PortRequest::Nothing
        );
        assert_eq!(port_write(SLEEP_STATUS_PORT, 0x80), PortRequest::Nothing);
        assert_eq!(port_write(RESET_PORT, RESET_VALUE), PortRequest::Reboot);
        assert_eq!(port_write(RESET_PORT, 0), PortRequest::Nothing);
        assert!(is_acpi_port(0x601) && !is_acpi_port(0x603) && !is_acpi_port(0x5ff));
    }
}
