//! Guest RAM: host mappings (vm-memory) registered with KVM.

use kvm_bindings::kvm_userspace_memory_region;
use kvm_ioctls::VmFd;
use vm_memory::{GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};

use crate::error::{Error, Result};

/// Guest memory as the VMM sees it.
pub type GuestMemory = GuestMemoryMmap<()>;

/// Allocates `size` bytes of guest RAM split around the MMIO hole and
/// registers every region with KVM.
pub fn create(vm: &VmFd, size: u64) -> Result<GuestMemory> {
    let (regions, count) = forkvm_abi::ram_regions(size);
    let ranges: Vec<(GuestAddress, usize)> = regions[..count]
        .iter()
        .map(|r| (GuestAddress(r.start), r.len as usize))
        .collect();
    let memory = GuestMemory::from_ranges(&ranges)
        .map_err(|e| Error::Memory(format!("cannot allocate: {e}")))?;
    for (slot, region) in memory.iter().enumerate() {
        // A child the VMM's process forks (the host-Linux reference runs in
        // the same process as an in-process guest) must not inherit, and
        // pay to copy the page tables of, guest RAM (QEMU does the same).
        // SAFETY: the range is exactly this region's own mapping; the
        // advice changes only what fork does with it.
        let rc = unsafe {
            libc::madvise(
                region.as_ptr().cast(),
                region.len() as usize,
                libc::MADV_DONTFORK,
            )
        };
        if rc != 0 {
            log::warn!(
                "madvise(MADV_DONTFORK) on guest RAM: {}",
                std::io::Error::last_os_error()
            );
        }
        let kvm_region = kvm_userspace_memory_region {
            slot: slot as u32,
            flags: 0,
            guest_phys_addr: region.start_addr().0,
            memory_size: region.len(),
            userspace_addr: region.as_ptr() as u64,
        };
        // SAFETY: the mapping belongs to `memory`, which outlives the VM
        // (the `Vm` owns both and drops the VM fd first), and the slots do
        // not overlap.
        unsafe { vm.set_user_memory_region(kvm_region) }
            .map_err(|e| Error::Kvm("KVM_SET_USER_MEMORY_REGION", e))?;
    }
    Ok(memory)
}
