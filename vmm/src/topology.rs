//! The CPU topology the guest sees in CPUID: `nr_cpus` single-threaded
//! cores in one package, vCPU `n` with APIC id `n` (the guest's x2APIC
//! ids, which its IPIs address, are the vCPU numbers).

use kvm_bindings::kvm_cpuid_entry2;

/// Bits of an APIC id that number the cores of a package of `nr_cpus`.
fn core_id_bits(nr_cpus: u32) -> u32 {
    nr_cpus.max(1).next_power_of_two().trailing_zeros()
}

/// Rewrites KVM's supported CPUID for vCPU `cpu` of `nr_cpus`: leaf 1
/// (initial APIC id, logical processors per package, HTT), leaves 0xB
/// and 0x1F (x2APIC id and the SMT/core levels), and AMD's leaf
/// 0x8000_0008 (cores per package).
pub fn set_cpuid_topology(entries: &mut [kvm_cpuid_entry2], cpu: u32, nr_cpus: u32) {
    for entry in entries.iter_mut() {
        match (entry.function, entry.index) {
            (1, _) => {
                entry.ebx = (entry.ebx & 0x0000_ffff) | (cpu << 24) | ((nr_cpus & 0xff) << 16);
                if nr_cpus > 1 {
                    entry.edx |= 1 << 28;
                } else {
                    entry.edx &= !(1 << 28);
                }
            }
            (0xb | 0x1f, level) => {
                // Level 0: SMT, one thread per core; level 1: cores.
                let (shift, count, kind) = match level {
                    0 => (0, 1, 1),
                    1 => (core_id_bits(nr_cpus), nr_cpus, 2),
                    _ => (0, 0, 0),
                };
                entry.eax = shift;
                entry.ebx = count;
                entry.ecx = (kind << 8) | (level & 0xff);
                entry.edx = cpu;
            }
            (0x8000_0008, _) => {
                entry.ecx = (entry.ecx & !0xf0ff) | (core_id_bits(nr_cpus) << 12) | (nr_cpus - 1);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(function: u32, index: u32) -> kvm_cpuid_entry2 {
        kvm_cpuid_entry2 {
            function,
            index,
            ebx: 0xdead_0800,
            ..Default::default()
        }
    }

    #[test]
    fn each_vcpu_sees_its_apic_id_and_the_core_count() {
        for (cpu, nr) in [(0, 1), (0, 2), (1, 2), (5, 6)] {
            let mut entries = [
                entry(1, 0),
                entry(0xb, 0),
                entry(0xb, 1),
                entry(0x8000_0008, 0),
            ];
            set_cpuid_topology(&mut entries, cpu, nr);
            assert_eq!(entries[0].ebx >> 24, cpu, "leaf 1 initial APIC id");
            assert_eq!((entries[0].ebx >> 16) & 0xff, nr, "leaf 1 logical count");
            assert_eq!(entries[0].ebx & 0xffff, 0x0800, "CLFLUSH size kept");
            assert_eq!(entries[0].edx & (1 << 28) != 0, nr > 1, "HTT");
            assert_eq!(entries[1].edx, cpu, "leaf 0xB x2APIC id");
            assert_eq!((entries[1].ebx, entries[1].ecx), (1, 0x100));
            assert_eq!((entries[2].ebx, entries[2].ecx), (nr, 0x201));
            assert!(1 << entries[2].eax >= nr, "the core field holds every id");
            assert_eq!(entries[3].ecx & 0xff, nr - 1, "AMD NC");
        }
    }
}
