//! Trap accounting: on PVM every guest system call and page fault is a
//! trip through the hypervisor (two KVM exits for a system call, tens of
//! microseconds), so a guest time mixes kernel work with hypervisor work.
//! Once per guest run a null-syscall probe prices one exit, and each guest
//! entry gets the estimated time its KVM exits cost ([`annotate`]).
//!
//! The probe is `clone_einval`'s `RunBench`: a `clone` refused by its first
//! flag check, the nearest to a null system call the harness protocol can
//! request (the shell's `sysprobe` is not a protocol request; no protocol
//! change was needed). Its median time over its KVM exits per call (the
//! request's exits less one `Hello`'s, the request's own transport cost,
//! spread over every call including the warm-up) is the cost of one exit.

use crate::guest_harness::GuestHarness;
use crate::host_linux::{BenchOp, Params};
use crate::overhead::RunBenchTotals;
use crate::report::{Entry, TrapCost};

/// Calls the probe makes at most (measured; plus [`PROBE_WARMUP`]).
pub const PROBE_CALLS: usize = 2000;

/// Untimed calls first.
pub const PROBE_WARMUP: usize = 50;

/// KVM exits per iteration of a request of `iters + warmup` iterations
/// that caused `kvm_total` exits, less `per_request` for the request
/// itself.
pub fn exits_per_iteration(kvm_total: u64, per_request: f64, iterations: u64) -> f64 {
    ((kvm_total as f64 - per_request) / iterations.max(1) as f64).max(0.0)
}

/// Runs the probe (`min(iters, PROBE_CALLS)` calls) and prices one exit;
/// `hello_kvm_exits` is KVM's count of exits per Hello round trip. `None`
/// (with the reason) when KVM counts no exits here or the probe failed.
pub fn measure(
    harness: &mut GuestHarness,
    iters: u64,
    hello_kvm_exits: Option<f64>,
) -> Result<TrapCost, String> {
    let per_request =
        hello_kvm_exits.ok_or("the host kernel has no KVM exit statistics".to_string())?;
    let params = Params {
        iters: (iters as usize).clamp(1, PROBE_CALLS),
        warmup: PROBE_WARMUP,
        mem_mib: 0,
    };
    let mut totals = RunBenchTotals::default();
    let entries = crate::entries::guest_entries(harness, BenchOp::CloneEinval, params, &mut totals);
    let entry = entries.first().ok_or("the probe made no entry")?;
    let stats = entry.stats().ok_or_else(|| match &entry.outcome {
        crate::report::Outcome::Error { error } => format!("the probe failed: {error}"),
        _ => "the probe was not measured".to_string(),
    })?;
    let kvm_total = entry
        .vm_exits
        .as_ref()
        .and_then(|e| e.kvm_total)
        .ok_or("KVM counted no exits for the probe")?;
    let calls = (params.iters + params.warmup) as u64;
    let exits_per_call = exits_per_iteration(kvm_total, per_request, calls);
    if exits_per_call < 0.5 {
        return Err(format!(
            "a null syscall made {exits_per_call:.2} KVM exits: system calls do not trap here"
        ));
    }
    Ok(TrapCost {
        probe: "clone_einval".to_string(),
        calls: params.iters as u64,
        ns_per_call: stats.median,
        exits_per_call,
        ns_per_exit: stats.median as f64 / exits_per_call,
    })
}

/// Whether the trap estimate can be given for `entry`: not for a
/// `fork_mem` point that touched memory, whose request's exits include the
/// page faults of touching it before the loop (a 1 GiB point: ~540000),
/// which no per-iteration price can separate.
pub fn priced(entry: &Entry) -> bool {
    entry.mem_mib.unwrap_or(0) == 0
}

/// Sets each guest entry's `trap_ns_per_iter` (where [`priced`]): its
/// request's KVM exits (less `hello_kvm_exits`, over `iters + warmup`
/// iterations) times the probe's cost per exit.
pub fn annotate(entries: &mut [Entry], trap: &TrapCost, hello_kvm_exits: f64, warmup: u64) {
    for entry in entries {
        if !priced(entry) {
            continue;
        }
        let iters = entry.iters;
        if let Some(exits) = entry.vm_exits.as_mut() {
            if let Some(kvm_total) = exits.kvm_total {
                let per = exits_per_iteration(kvm_total, hello_kvm_exits, iters + warmup);
                exits.trap_ns_per_iter = Some(per * trap.ns_per_exit);
            }
        }
    }
}

/// Runs the probe in a guest run's harness when the guest is on PVM,
/// saying on stderr why there is no estimate otherwise.
pub fn probe_if_pvm(
    harness: &mut GuestHarness,
    on_pvm: bool,
    iters: u64,
    hello_kvm_exits: Option<f64>,
) -> Option<TrapCost> {
    if !on_pvm {
        return None;
    }
    match measure(harness, iters, hello_kvm_exits) {
        Ok(trap) => Some(trap),
        Err(why) => {
            eprintln!("forkbench: no trap-cost estimate: {why}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Outcome, Target, VmExitCount};

    #[test]
    fn exits_per_iteration_leave_out_the_request() {
        assert_eq!(exits_per_iteration(2_030, 30.0, 1_000), 2.0);
        assert_eq!(exits_per_iteration(10, 30.0, 1_000), 0.0);
        assert_eq!(exits_per_iteration(5, 0.0, 0), 5.0);
    }

    #[test]
    fn entries_get_their_exits_priced() {
        let trap = TrapCost {
            probe: "clone_einval".to_string(),
            calls: 1000,
            ns_per_call: 30_000,
            exits_per_call: 2.0,
            ns_per_exit: 15_000.0,
        };
        let exits = |kvm_total| VmExitCount {
            total: 0,
            per_iter: 0.0,
            by_reason: Default::default(),
            kvm_total,
            kvm_per_iter: kvm_total.map(|t| t as f64 / 100.0),
            trap_ns_per_iter: None,
        };
        let entry = |vm_exits| Entry {
            op: "fork".to_string(),
            metric: "create".to_string(),
            target: Target::Guest,
            mem_mib: None,
            iters: 100,
            outcome: Outcome::Error {
                error: "x".to_string(),
            },
            note: None,
            vm_exits,
            samples: Vec::new(),
        };
        let mut touched = entry(Some(exits(Some(1_110))));
        touched.mem_mib = Some(16);
        let mut entries = vec![
            entry(Some(exits(Some(1_110)))),
            entry(Some(exits(None))),
            entry(None),
            touched,
        ];
        annotate(&mut entries, &trap, 10.0, 10);
        assert_eq!(entries[3].vm_exits.as_ref().unwrap().trap_ns_per_iter, None);
        // (1110 - 10) / 110 = 10 exits per iteration, 15 us each.
        let priced = entries[0].vm_exits.as_ref().unwrap().trap_ns_per_iter;
        assert_eq!(priced, Some(150_000.0));
        assert_eq!(entries[1].vm_exits.as_ref().unwrap().trap_ns_per_iter, None);
    }
}
