//! The Intel MultiProcessor Specification (1.4) table: how a Linux guest
//! learns its CPUs, the IOAPIC and which IOAPIC input each ISA interrupt
//! arrives on, without ACPI's MADT.
//!
//! Layout: the 16-byte floating pointer structure, found by Linux's scan
//! of the last KiB of base memory, followed by the configuration table:
//! one processor entry per vCPU, an ISA bus, the IOAPIC, one I/O
//! interrupt entry per IOAPIC input (ISA IRQ n -> pin n, as KVM's default
//! GSI routing wires them) and the two local interrupt entries of a PC
//! (ExtINT on LINT0, NMI on LINT1).

use forkvm_abi::{IOAPIC_PHYS, LAPIC_PHYS};

/// IOAPIC inputs KVM's in-kernel IOAPIC has.
pub const IOAPIC_PINS: u8 = 24;
/// Local APIC version of the processor entries (an integrated APIC).
const LAPIC_VERSION: u8 = 0x14;
/// IOAPIC version KVM's IOAPIC reports.
const IOAPIC_VERSION: u8 = 0x11;
/// The ISA bus's id.
const ISA_BUS: u8 = 0;

const ENTRY_PROCESSOR: u8 = 0;
const ENTRY_BUS: u8 = 1;
const ENTRY_IOAPIC: u8 = 2;
const ENTRY_IO_INTERRUPT: u8 = 3;
const ENTRY_LOCAL_INTERRUPT: u8 = 4;

const INT_VECTORED: u8 = 0;
const INT_NMI: u8 = 1;
const INT_EXTINT: u8 = 3;

const CPU_ENABLED: u8 = 1;
const CPU_BOOTSTRAP: u8 = 2;
/// CPUID.1:EDX bits the processor entries claim: FPU and APIC.
const CPU_FEATURES: u32 = 1 | (1 << 9);
/// CPUID.1:EAX signature the processor entries claim (family 6).
const CPU_SIGNATURE: u32 = 0x600;

/// The table for `cpus` vCPUs (APIC ids 0..cpus), to be placed at guest
/// physical address `base`. The IOAPIC's id follows the CPUs'.
pub fn build(base: u64, cpus: u8) -> Vec<u8> {
    assert!((1..0xff - 1).contains(&cpus), "APIC ids must fit");
    let config_base = base + 16;
    let ioapic_id = cpus;

    let mut entries = Vec::new();
    let mut count: u16 = 0;
    for cpu in 0..cpus {
        let flags = CPU_ENABLED | if cpu == 0 { CPU_BOOTSTRAP } else { 0 };
        entries.extend_from_slice(&[ENTRY_PROCESSOR, cpu, LAPIC_VERSION, flags]);
        entries.extend_from_slice(&CPU_SIGNATURE.to_le_bytes());
        entries.extend_from_slice(&CPU_FEATURES.to_le_bytes());
        entries.extend_from_slice(&[0; 8]);
        count += 1;
    }
    entries.extend_from_slice(&[ENTRY_BUS, ISA_BUS]);
    entries.extend_from_slice(b"ISA   ");
    count += 1;
    entries.extend_from_slice(&[ENTRY_IOAPIC, ioapic_id, IOAPIC_VERSION, 1]);
    entries.extend_from_slice(&(IOAPIC_PHYS as u32).to_le_bytes());
    count += 1;
    for pin in 0..IOAPIC_PINS {
        // Flags 0: polarity and trigger mode conform to the bus (ISA:
        // active high, edge), which is how KVM's IOAPIC pins start.
        entries.extend_from_slice(&[ENTRY_IO_INTERRUPT, INT_VECTORED, 0, 0]);
        entries.extend_from_slice(&[ISA_BUS, pin, ioapic_id, pin]);
        count += 1;
    }
    // LINT0: the 8259's ExtINT on the bootstrap CPU; LINT1: NMI on all.
    entries.extend_from_slice(&[ENTRY_LOCAL_INTERRUPT, INT_EXTINT, 0, 0, ISA_BUS, 0, 0, 0]);
    entries.extend_from_slice(&[ENTRY_LOCAL_INTERRUPT, INT_NMI, 0, 0, ISA_BUS, 0, 0xff, 1]);
    count += 2;

    let mut config = Vec::new();
    config.extend_from_slice(b"PCMP");
    let length = (44 + entries.len()) as u16;
    config.extend_from_slice(&length.to_le_bytes());
    config.push(4); // specification revision 1.4
    config.push(0); // checksum, below
    config.extend_from_slice(b"FORKVM  "); // OEM id
    config.extend_from_slice(b"LINUXREF    "); // product id
    config.extend_from_slice(&[0; 4]); // no OEM table
    config.extend_from_slice(&[0; 2]);
    config.extend_from_slice(&count.to_le_bytes());
    config.extend_from_slice(&(LAPIC_PHYS as u32).to_le_bytes());
    config.extend_from_slice(&[0; 4]); // no extended table
    config.extend_from_slice(&entries);
    config[7] = checksum(&config);

    let mut floating = Vec::new();
    floating.extend_from_slice(b"_MP_");
    floating.extend_from_slice(&(config_base as u32).to_le_bytes());
    floating.push(1); // length in 16-byte units
    floating.push(4); // revision 1.4
    floating.push(0); // checksum, below
                      // Feature byte 1 = 0: the configuration table is present; byte 2 bit
                      // 7 = 0: virtual-wire mode (no IMCR).
    floating.extend_from_slice(&[0; 5]);
    floating[10] = checksum(&floating);

    floating.extend_from_slice(&config);
    floating
}

/// The byte that makes `bytes` sum to zero (mod 256).
pub fn checksum(bytes: &[u8]) -> u8 {
    0u8.wrapping_sub(bytes.iter().fold(0u8, |sum, &b| sum.wrapping_add(b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(bytes: &[u8]) -> u8 {
        bytes.iter().fold(0u8, |s, &b| s.wrapping_add(b))
    }

    #[test]
    fn both_structures_check_and_point_at_each_other() {
        let base = 0x9fc00;
        let table = build(base, 1);
        assert_eq!(&table[..4], b"_MP_");
        assert_eq!(sum(&table[..16]), 0);
        let config_at = u32::from_le_bytes(table[4..8].try_into().unwrap()) as u64;
        assert_eq!(config_at, base + 16);
        let config = &table[16..];
        assert_eq!(&config[..4], b"PCMP");
        let len = u16::from_le_bytes([config[4], config[5]]) as usize;
        assert_eq!(len, config.len());
        assert_eq!(sum(config), 0);
        // 1 CPU, bus, IOAPIC, 24 pins, 2 local interrupts.
        assert_eq!(
            u16::from_le_bytes([config[34], config[35]]),
            1 + 1 + 1 + 24 + 2
        );
        assert_eq!(len, 44 + 20 + 8 * (1 + 1 + 24 + 2));
    }

    #[test]
    fn one_processor_entry_per_cpu_and_the_first_boots() {
        let table = build(0x9fc00, 4);
        let config = &table[16..];
        let cpus: Vec<&[u8]> = config[44..].chunks(20).take(4).collect();
        for (i, entry) in cpus.iter().enumerate() {
            assert_eq!(entry[0], ENTRY_PROCESSOR);
            assert_eq!(entry[1], i as u8);
            assert_eq!(entry[3] & CPU_BOOTSTRAP != 0, i == 0);
        }
        // The IOAPIC's id follows the CPUs'.
        let ioapic = &config[44 + 80 + 8..44 + 80 + 16];
        assert_eq!(ioapic[0], ENTRY_IOAPIC);
        assert_eq!(ioapic[1], 4);
    }
}
