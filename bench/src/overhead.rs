//! The harness's own cost in a guest run, for the report: how long a
//! `Hello` round trip takes and how many VM exits it causes, and how many
//! VM exits each `RunBench` request causes.
//!
//! A request to the guest travels over the virtio console, and every exit
//! on the way costs a trip through the host kernel, tens of microseconds on
//! PVM: the notifies (ioeventfds, counted by KVM only), the interrupt, and
//! any register access of the guest driver (an exit to the VMM; normally
//! none, as the driver reads no register for an interrupt that brought
//! used buffers). These numbers say how much of a guest run is the harness
//! and not the operation being measured.
//!
//! Two counts are kept: exits that reach the VMM ([`vmm::VmExits`]: the
//! harness's transport cost, nearly independent of the operation) and, where
//! the host kernel has binary statistics, KVM's count of every VM exit,
//! including those it handles itself (page faults, timer, hlt), which grows
//! with what the guest kernel does in the operation.

use std::collections::BTreeMap;
use std::time::Instant;

use vmm::VmExits;

use crate::guest_harness::{GuestHarness, Result};
use crate::report::{HarnessCost, Stats, VmExitCount};

/// Hello round trips timed per report.
pub const HELLOS: u32 = 50;

/// The exit counters at one moment.
#[derive(Clone, Debug)]
struct Snapshot {
    vmm: VmExits,
    kvm: Option<u64>,
}

impl Snapshot {
    fn take(harness: &GuestHarness) -> Snapshot {
        Snapshot {
            vmm: harness.vm_exits(),
            kvm: kvm_exits(harness),
        }
    }

    /// The exits from `earlier` until `self`.
    fn since(&self, earlier: &Snapshot) -> RequestExits {
        RequestExits {
            vmm: self.vmm - earlier.vmm,
            kvm: match (self.kvm, earlier.kvm) {
                (Some(now), Some(before)) => Some(now.saturating_sub(before)),
                _ => None,
            },
        }
    }
}

/// KVM's `exits` statistic of the vCPU, if the host kernel has it.
fn kvm_exits(harness: &GuestHarness) -> Option<u64> {
    harness.kvm_vcpu_stats()?.get("exits").copied()
}

/// The exits one or more requests caused.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RequestExits {
    /// Exits that reached the VMM.
    pub vmm: VmExits,
    /// KVM's count of all exits; `None` without binary statistics.
    pub kvm: Option<u64>,
}

impl RequestExits {
    /// The report's form, per `iters` measured iterations.
    pub fn per_iters(&self, iters: u64) -> VmExitCount {
        let v = &self.vmm;
        let by_reason: BTreeMap<String, u64> = [
            ("io_in", v.io_in),
            ("io_out", v.io_out),
            ("mmio_read", v.mmio_read),
            ("mmio_write", v.mmio_write),
            ("hlt", v.hlt),
            ("shutdown", v.shutdown),
            ("interrupted", v.interrupted),
            ("other", v.other),
        ]
        .into_iter()
        .filter(|&(_, n)| n > 0)
        .map(|(name, n)| (name.to_string(), n))
        .collect();
        let per = |n: u64| n as f64 / iters.max(1) as f64;
        VmExitCount {
            total: v.total(),
            per_iter: per(v.total()),
            by_reason,
            kvm_total: self.kvm,
            kvm_per_iter: self.kvm.map(per),
            trap_ns_per_iter: None,
        }
    }
}

/// Runs `request` and counts the exits it caused. The counters are read
/// before and after it, never during: the request's own timing is
/// untouched.
pub fn exits_of<R>(
    harness: &mut GuestHarness,
    request: impl FnOnce(&mut GuestHarness) -> R,
) -> (R, RequestExits) {
    let before = Snapshot::take(harness);
    let result = request(harness);
    let exits = Snapshot::take(harness).since(&before);
    (result, exits)
}

/// `hellos` Hello round trips: each timed on the host's clock, from sending
/// the request to its decoded reply, and their exits together. One untimed
/// Hello goes first, so that pages the first request touches are in.
pub fn measure_hellos(harness: &mut GuestHarness, hellos: u32) -> Result<HelloCost> {
    harness.hello()?;
    let mut round_trips = Vec::with_capacity(hellos as usize);
    let (result, exits) = exits_of(harness, |harness| {
        for _ in 0..hellos {
            let start = Instant::now();
            harness.hello()?;
            round_trips.push(start.elapsed().as_nanos() as u64);
        }
        Ok(())
    });
    result?;
    Ok(HelloCost {
        round_trip_ns: crate::stats::summarize(&round_trips),
        hellos: u64::from(hellos),
        exits,
    })
}

/// What [`measure_hellos`] found.
#[derive(Clone, Debug, PartialEq)]
pub struct HelloCost {
    pub hellos: u64,
    /// `None` only when no Hello was timed.
    pub round_trip_ns: Option<Stats>,
    /// The exits of all `hellos` round trips together.
    pub exits: RequestExits,
}

/// The exits of every measured `RunBench` of a run, summed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunBenchTotals {
    pub requests: u64,
    pub iters: u64,
    pub exits: u64,
}

impl RunBenchTotals {
    /// Adds one request of `iters` measured iterations.
    pub fn add(&mut self, iters: u64, exits: &RequestExits) {
        self.requests += 1;
        self.iters += iters;
        self.exits += exits.vmm.total();
    }

    /// Exits per 1000 measured iterations; `None` before any request.
    pub fn per_1000_iters(&self) -> Option<f64> {
        (self.iters > 0).then(|| self.exits as f64 * 1000.0 / self.iters as f64)
    }
}

/// The report's `harness` object from the Hellos and the `RunBench` totals.
pub fn harness_cost(hellos: &HelloCost, run_bench: &RunBenchTotals) -> HarnessCost {
    let per_hello = |n: u64| n as f64 / hellos.hellos.max(1) as f64;
    HarnessCost {
        hellos: hellos.hellos,
        hello_round_trip_ns: hellos.round_trip_ns,
        exits_per_hello: per_hello(hellos.exits.vmm.total()),
        kvm_exits_per_hello: hellos.exits.kvm.map(per_hello),
        run_bench_requests: run_bench.requests,
        run_bench_exits_per_1000_iters: run_bench.per_1000_iters(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exits(mmio_read: u64, mmio_write: u64, kvm: Option<u64>) -> RequestExits {
        RequestExits {
            vmm: VmExits {
                mmio_read,
                mmio_write,
                ..VmExits::default()
            },
            kvm,
        }
    }

    #[test]
    fn request_exits_per_iteration_and_by_reason() {
        let count = exits(30, 31, Some(4000)).per_iters(1000);
        assert_eq!(count.total, 61);
        assert!((count.per_iter - 0.061).abs() < 1e-12);
        let reasons: Vec<(&str, u64)> = count
            .by_reason
            .iter()
            .map(|(k, v)| (k.as_str(), *v))
            .collect();
        assert_eq!(reasons, [("mmio_read", 30), ("mmio_write", 31)]);
        assert_eq!(count.kvm_total, Some(4000));
        assert_eq!(count.kvm_per_iter, Some(4.0));
        let none = exits(0, 0, None).per_iters(0);
        assert_eq!((none.total, none.per_iter), (0, 0.0));
        assert!(none.by_reason.is_empty());
        assert_eq!(none.kvm_per_iter, None);
    }

    #[test]
    fn snapshots_subtract() {
        let before = Snapshot {
            vmm: VmExits {
                mmio_read: 5,
                ..VmExits::default()
            },
            kvm: Some(100),
        };
        let after = Snapshot {
            vmm: VmExits {
                mmio_read: 8,
                mmio_write: 2,
                ..VmExits::default()
            },
            kvm: Some(130),
        };
        assert_eq!(after.since(&before), exits(3, 2, Some(30)));
        let no_kvm = Snapshot { kvm: None, ..after };
        assert_eq!(no_kvm.since(&before).kvm, None);
    }

    #[test]
    fn totals_and_harness_cost() {
        let mut totals = RunBenchTotals::default();
        assert_eq!(totals.per_1000_iters(), None);
        totals.add(1000, &exits(4, 4, Some(9)));
        totals.add(3000, &exits(12, 12, None));
        assert_eq!(totals.requests, 2);
        assert_eq!(totals.per_1000_iters(), Some(8.0));
        let hellos = HelloCost {
            hellos: 50,
            round_trip_ns: crate::stats::summarize(&[1, 2, 3, 4]),
            exits: exits(75, 50, Some(1150)),
        };
        let cost = harness_cost(&hellos, &totals);
        assert_eq!(cost.hellos, 50);
        assert_eq!(cost.exits_per_hello, 2.5);
        assert_eq!(cost.kvm_exits_per_hello, Some(23.0));
        assert_eq!(cost.hello_round_trip_ns.unwrap().median, 2);
        assert_eq!(cost.run_bench_requests, 2);
        assert_eq!(cost.run_bench_exits_per_1000_iters, Some(8.0));
    }
}
