//! Counts of the vCPU's returns from `KVM_RUN`, by reason.
//!
//! Every return to the VMM costs a round trip through the host kernel (tens
//! of microseconds on the PVM host), so how many a guest operation causes is
//! a cost worth watching. The vCPU thread bumps one relaxed atomic per exit;
//! anyone holding an [`ExitCounters`] (see [`crate::VmHandle`]) can take a
//! [`VmExits`] snapshot at any time, also while the guest runs, and subtract
//! two snapshots to get the exits of whatever happened in between.
//!
//! Only exits to user space are seen here: what KVM handles in the kernel
//! (ioeventfd writes such as the virtio console's `QueueNotify`, the
//! in-kernel APIC and its timer, `hlt` with the in-kernel irqchip) never
//! reaches the VMM and is not counted.

use std::fmt;
use std::ops::Sub;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Why `KVM_RUN` returned to the VMM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitReason {
    IoIn,
    IoOut,
    MmioRead,
    MmioWrite,
    Hlt,
    Shutdown,
    /// `KVM_RUN` failed with EINTR/EAGAIN: the VMM kicked the vCPU (a
    /// signal), no guest exit.
    Interrupted,
    /// Anything else (internal error, failed entry, exits the VMM does not
    /// handle); the vCPU loop stops on most of them.
    Other,
}

const REASONS: usize = 8;

/// The live counters, shared between the vCPU thread and observers.
#[derive(Clone, Default)]
pub struct ExitCounters(Arc<[AtomicU64; REASONS]>);

impl ExitCounters {
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one exit. Relaxed: each counter is independent and only read
    /// as a statistic, so no ordering with guest memory is needed.
    pub fn record(&self, reason: ExitReason) {
        self.0[reason as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// The counts now.
    pub fn snapshot(&self) -> VmExits {
        let get = |reason: ExitReason| self.0[reason as usize].load(Ordering::Relaxed);
        VmExits {
            io_in: get(ExitReason::IoIn),
            io_out: get(ExitReason::IoOut),
            mmio_read: get(ExitReason::MmioRead),
            mmio_write: get(ExitReason::MmioWrite),
            hlt: get(ExitReason::Hlt),
            shutdown: get(ExitReason::Shutdown),
            interrupted: get(ExitReason::Interrupted),
            other: get(ExitReason::Other),
        }
    }
}

/// A snapshot of the exit counts (see [`ExitReason`] for the fields).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VmExits {
    pub io_in: u64,
    pub io_out: u64,
    pub mmio_read: u64,
    pub mmio_write: u64,
    pub hlt: u64,
    pub shutdown: u64,
    pub interrupted: u64,
    pub other: u64,
}

impl VmExits {
    /// Every return from `KVM_RUN`.
    pub fn total(&self) -> u64 {
        self.io_in
            + self.io_out
            + self.mmio_read
            + self.mmio_write
            + self.hlt
            + self.shutdown
            + self.interrupted
            + self.other
    }
}

/// The exits between two snapshots (`later - earlier`).
impl Sub for VmExits {
    type Output = VmExits;

    fn sub(self, earlier: VmExits) -> VmExits {
        VmExits {
            io_in: self.io_in.saturating_sub(earlier.io_in),
            io_out: self.io_out.saturating_sub(earlier.io_out),
            mmio_read: self.mmio_read.saturating_sub(earlier.mmio_read),
            mmio_write: self.mmio_write.saturating_sub(earlier.mmio_write),
            hlt: self.hlt.saturating_sub(earlier.hlt),
            shutdown: self.shutdown.saturating_sub(earlier.shutdown),
            interrupted: self.interrupted.saturating_sub(earlier.interrupted),
            other: self.other.saturating_sub(earlier.other),
        }
    }
}

impl fmt::Display for VmExits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} exits (io in {}, io out {}, mmio read {}, mmio write {}, hlt {}, \
             shutdown {}, interrupted {}, other {})",
            self.total(),
            self.io_in,
            self.io_out,
            self.mmio_read,
            self.mmio_write,
            self.hlt,
            self.shutdown,
            self.interrupted,
            self.other
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_reason_and_differences() {
        let counters = ExitCounters::new();
        let before = counters.snapshot();
        assert_eq!(before, VmExits::default());
        for _ in 0..3 {
            counters.record(ExitReason::MmioRead);
        }
        counters.record(ExitReason::MmioWrite);
        counters.record(ExitReason::IoOut);
        counters.record(ExitReason::Interrupted);
        // A clone observes the same counters.
        let after = counters.clone().snapshot();
        let delta = after - before;
        assert_eq!(delta.mmio_read, 3);
        assert_eq!(delta.mmio_write, 1);
        assert_eq!(delta.io_out, 1);
        assert_eq!(delta.interrupted, 1);
        assert_eq!(delta.io_in + delta.hlt + delta.shutdown + delta.other, 0);
        assert_eq!(delta.total(), 6);
        assert_eq!(after - after, VmExits::default());
    }
}
