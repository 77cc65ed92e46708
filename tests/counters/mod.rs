//! The kernel's counters before and after a stress or fuzz run, and what
//! "back to baseline" means for them (shared by tests/fuzz.rs and
//! tests/stress.rs).
//!
//! A script prints `stat` then `meminfo` once for the baseline and once
//! after the run. These must be equal: tasks per pid namespace and per
//! user, threads, live namespaces of each kind and the references to the
//! shell's own, fd tables and the tasks referring to them, and the frames
//! in use other than the kernel's caches. Excepted, as caches that keep
//! what they grew to: cached kernel stacks (4 frames each), pooled
//! page-table pages, the page tables mapping the kernel-stack region (kept
//! at their high-water mark: scripts warm up with [`WARM_UP`] first, more
//! tasks at once than the runs make), the spare address-space tree (at
//! most [`FRAME_SLACK`] frames, not shown by `meminfo`), and kernel heap
//! bytes (allocator and table capacity), which may only have grown by less
//! than [`HEAP_SLACK`]. Event counters
//! (`syscalls`, `faults_*`, `tlb_flushes`, `tasks_created`, and each CPU's
//! IPI, shootdown and flush counts) are excepted as what they are.
#![allow(dead_code)] // each test file uses a different subset

use std::collections::BTreeMap;

/// Creates 300 tasks at once (root, `kernel.threads-max` 300, restored).
pub const WARM_UP: &str = "run stress nproc 0 300 1";

/// Frames per cached kernel stack (16 KiB).
const STACK_FRAMES: u64 = 4;
/// Frames in use (caches excepted) may be above the baseline by at most
/// the one cache `meminfo` does not show: the spare address-space tree
/// kept for the next fork (`SPARE_ROOT` in mm/address_space.rs: a root
/// and at most 16 table pages, or none), which makes identical runs end a
/// few frames apart. A leak of a frame per task or per call exceeds it.
pub const FRAME_SLACK: u64 = 17;
/// Heap growth allowed to capacity kept by the kernel's tables (a leak of
/// even a few bytes per call over a run's thousands of calls exceeds it).
pub const HEAP_SLACK: u64 = 64 * 1024;

/// Event counters, not state.
const EVENTS: &[&str] = &[
    "syscalls",
    "faults_demand_zero",
    "faults_cow_copy",
    "faults_cow_reuse",
    "faults_spurious",
    "faults_file",
    "tlb_flushes",
    "tasks_created",
    "frames_free",
];

/// A CPU's event counter (`cpuN_ipis_sent`, `cpuN_ipis_received`,
/// `cpuN_shootdowns`, `cpuN_flushes`; all 0 with one CPU).
fn is_cpu_event(key: &str) -> bool {
    key.strip_prefix("cpu").is_some_and(|rest| {
        rest.split_once('_')
            .is_some_and(|(cpu, _)| !cpu.is_empty() && cpu.bytes().all(|b| b.is_ascii_digit()))
    })
}

/// The state one `stat` + `meminfo` pair shows.
#[derive(Debug)]
pub struct Counters {
    /// `stat`'s key=value pairs, events left out.
    pub stat: BTreeMap<String, String>,
    /// Frames in use less the caches'.
    pub frames_in_use: u64,
    /// Kernel heap bytes in use.
    pub heap_used: u64,
}

/// Every (stat, meminfo) pair in `text`, in order.
pub fn all(text: &str) -> Vec<Counters> {
    let stats = text.lines().filter(|l| l.starts_with("syscalls="));
    let meminfos = text.lines().filter(|l| l.starts_with("frames:"));
    stats
        .zip(meminfos)
        .map(|(stat, meminfo)| Counters {
            stat: stat
                .split_whitespace()
                .filter_map(|pair| pair.split_once('='))
                .filter(|(key, _)| !EVENTS.contains(key) && !is_cpu_event(key))
                .map(|(key, value)| (key.to_owned(), value.to_owned()))
                .collect(),
            frames_in_use: crate::common::field(meminfo, " used=")
                - STACK_FRAMES * crate::common::field(meminfo, "cached kernel stacks: ")
                - crate::common::field(meminfo, "pooled page tables: "),
            heap_used: crate::common::field(meminfo, "heap: used="),
        })
        .collect()
}

/// Asserts that `after` is back at `before` (see the module comment).
pub fn assert_back(before: &Counters, after: &Counters, text: &str) {
    assert_eq!(before.stat, after.stat, "stat counters differ\n{text}");
    assert!(
        after.frames_in_use <= before.frames_in_use + FRAME_SLACK,
        "frames in use (caches excepted) grew from {} to {}\n{text}",
        before.frames_in_use,
        after.frames_in_use
    );
    assert!(
        after.heap_used < before.heap_used + HEAP_SLACK,
        "kernel heap grew by {} bytes\n{text}",
        after.heap_used.saturating_sub(before.heap_used)
    );
}
