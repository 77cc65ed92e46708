//! KVM's own statistics of the vCPU (`KVM_GET_STATS_FD`, Linux 5.14+).
//!
//! [`crate::exits`] sees only the exits that reach the VMM. KVM also counts
//! the ones it handles in the kernel (ioeventfd writes, APIC timer and EOI,
//! `hlt`, interrupts, page faults), in a binary file of its own: a header, a
//! table of descriptors (name, offset, size) and the values. This module
//! reads the scalar ones by name. The kvm-ioctls crate has no wrapper for
//! it, hence the one raw ioctl.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::fs::FileExt;

use kvm_ioctls::VcpuFd;

/// `_IO(KVMIO, 0xce)`.
const KVM_GET_STATS_FD: libc::c_ulong = 0xae_ce;
/// `struct kvm_stats_header`: six u32.
const HEADER_LEN: usize = 24;
/// `struct kvm_stats_desc` before its name: flags u32, exponent i16,
/// size u16, offset u32, bucket_size u32.
const DESC_FIXED_LEN: usize = 16;

/// One scalar statistic: where its u64 value lives.
struct Stat {
    name: String,
    offset: u64,
}

/// An open statistics file of one vCPU; readable from any thread while the
/// vCPU runs.
pub struct KvmStats {
    file: File,
    stats: Vec<Stat>,
}

impl KvmStats {
    /// Opens the statistics of `vcpu` and reads their descriptors.
    pub fn open(vcpu: &VcpuFd) -> io::Result<Self> {
        // SAFETY: KVM_GET_STATS_FD takes no argument and returns a new file
        // descriptor (or -1), which we own from here on.
        let fd = unsafe { libc::ioctl(vcpu.as_raw_fd(), KVM_GET_STATS_FD as _) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor nothing else owns.
        let file = unsafe { File::from_raw_fd(fd) };
        let mut header = [0u8; HEADER_LEN];
        file.read_exact_at(&mut header, 0)?;
        let field = |i: usize| u32::from_le_bytes(header[i * 4..i * 4 + 4].try_into().unwrap());
        let (name_size, count, desc_offset, data_offset) =
            (field(1) as usize, field(2) as usize, field(4), field(5));
        let desc_len = DESC_FIXED_LEN + name_size;
        let mut table = vec![0u8; desc_len * count];
        file.read_exact_at(&mut table, desc_offset.into())?;
        let stats = table
            .chunks_exact(desc_len)
            .filter_map(|desc| {
                let size = u16::from_le_bytes([desc[6], desc[7]]);
                let offset = u32::from_le_bytes(desc[8..12].try_into().unwrap());
                let name = &desc[DESC_FIXED_LEN..];
                let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
                // Histograms (size > 1) are left out.
                (size == 1).then(|| Stat {
                    name: String::from_utf8_lossy(name).into_owned(),
                    offset: u64::from(data_offset) + u64::from(offset),
                })
            })
            .collect();
        Ok(Self { file, stats })
    }

    /// Every scalar statistic now, by KVM's name (`exits`, `io_exits`,
    /// `mmio_exits`, `halt_exits`, `irq_exits`, ...).
    pub fn read(&self) -> io::Result<BTreeMap<String, u64>> {
        let mut values = BTreeMap::new();
        for stat in &self.stats {
            let mut value = [0u8; 8];
            self.file.read_exact_at(&mut value, stat.offset)?;
            values.insert(stat.name.clone(), u64::from_le_bytes(value));
        }
        Ok(values)
    }
}
