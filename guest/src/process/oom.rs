//! The out-of-memory killer (Linux `mm/oom_kill.c`).
//!
//! When a page fault (or a fault-like population of an area: MAP_POPULATE,
//! a shared area, an exec'd segment) finds no free frame, the faulting
//! task calls [`out_of_memory`]: it picks the process whose death frees
//! the most memory (its *badness*: resident pages plus page-table pages,
//! moved by `oom_score_adj` in thousandths of RAM), kills its whole thread
//! group and every other process sharing its address space with SIGKILL,
//! logs `Out of memory: Killed process ...` on the console, and frees the
//! victim's private pages at once (Linux's OOM reaper), so the faulting
//! allocation can be retried. Init (global pid 1), kernel threads, tasks
//! with `oom_score_adj` -1000 and already reaped address spaces are never
//! chosen; if nothing else is left the kernel panics, as Linux does.
//!
//! System calls that allocate on the caller's behalf (fork's copy of the
//! address space, kernel stacks, semaphore sets, areas) do not come here:
//! they fail with ENOMEM (see docs/ARCHITECTURE.md, "Allocation rules").

use alloc::sync::Arc;
use alloc::vec::Vec;

use super::signal::{SigFields, SigInfo, Signal, SI_KERNEL};
use super::task::{Task, TaskState};
use crate::mm::address_space::{AddressSpace, MemoryUsage};

/// `oom_score_adj` that exempts a process from the killer.
pub const OOM_SCORE_ADJ_MIN: i16 = -1000;

/// What the faulting task does after [`out_of_memory`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OomOutcome {
    /// Memory was (or is being) freed: retry the allocation.
    Retry,
    /// The faulting task itself is being killed: give up the allocation
    /// and let it exit.
    CurrentKilled,
}

/// A process the killer may choose.
struct Candidate {
    task: Arc<Task>,
    mm: Arc<AddressSpace>,
    usage: MemoryUsage,
    points: i64,
}

/// Whether `task` is init of the initial pid namespace (Linux
/// `is_global_init`): the kernel's task table is keyed by global pids.
fn is_global_init(task: &Task) -> bool {
    task.tgid == super::exit::REAPER_PID
}

/// Linux `oom_badness`: pages the process would free, moved by its
/// `oom_score_adj` in thousandths of `total_frames`; None if it may not
/// be killed.
fn badness(task: &Task, usage: &MemoryUsage, total_frames: u64) -> Option<i64> {
    let adj = task.thread_group().oom_score_adj();
    if adj == OOM_SCORE_ADJ_MIN {
        return None;
    }
    let points = (usage.anon_pages + usage.shmem_pages + usage.table_pages) as i64;
    // Linux gives every killable process at least one point.
    Some((points + i64::from(adj) * total_frames as i64 / 1000).max(1))
}

/// The process with the highest badness (Linux `select_bad_process`).
fn select_bad_process(tasks: &[Arc<Task>], total_frames: u64) -> Option<Candidate> {
    let mut seen_groups: Vec<u32> = Vec::new();
    let mut chosen: Option<Candidate> = None;
    for task in tasks {
        if seen_groups.contains(&task.tgid) || task.state() == TaskState::Zombie {
            continue;
        }
        // Kernel threads and exited tasks have no address space.
        let Some(mm) = task.mm() else { continue };
        seen_groups.push(task.tgid);
        if is_global_init(task) || mm.oom_reaped() {
            continue;
        }
        let usage = mm.memory_usage();
        let Some(points) = badness(task, &usage, total_frames) else {
            continue;
        };
        if chosen.as_ref().is_none_or(|c| points > c.points) {
            chosen = Some(Candidate {
                task: task.clone(),
                mm,
                usage,
                points,
            });
        }
    }
    chosen
}

/// Called by a task whose fault found no free frame (Linux
/// `out_of_memory`). Kills a victim and frees its memory; panics if no
/// process can be killed.
pub fn out_of_memory() -> OomOutcome {
    let current = crate::sched::current();
    // A dying task frees its memory soon: it need not take anybody's.
    if current.fatal_status().is_some() {
        return OomOutcome::CurrentKilled;
    }
    let total_frames = crate::mm::frame_counts().0 as u64;
    let tasks = super::all_tasks();
    let Some(victim) = select_bad_process(&tasks, total_frames) else {
        panic!("Out of memory and no killable processes...");
    };
    if victim.task.fatal_status().is_some() {
        // Already killed, by us or anyone, and not reaped (it shares its
        // memory with init): wait a tick for it to exit (Linux waits for
        // an OOM victim rather than choosing a second one).
        drop(tasks);
        crate::sched::sleep_for_ns(1_000_000);
        return if current.fatal_status().is_some() {
            OomOutcome::CurrentKilled
        } else {
            OomOutcome::Retry
        };
    }
    oom_kill_process(&victim, &tasks);
    if Arc::ptr_eq(&victim.task, &current) || current.fatal_status().is_some() {
        OomOutcome::CurrentKilled
    } else {
        OomOutcome::Retry
    }
}

/// Kills the victim's thread group and every other process that uses
/// its address space (init and kernel threads aside), logs it, and frees
/// its private pages unless init shares them (Linux `__oom_kill_process`
/// and the OOM reaper).
fn oom_kill_process(victim: &Candidate, tasks: &[Arc<Task>]) {
    let task = &victim.task;
    let comm = task.comm();
    let name_len = comm.iter().position(|&b| b == 0).unwrap_or(comm.len());
    let uid = task.inner.lock().cred.uid;
    let kib = |pages: u64| pages * (forkvm_abi::PAGE_SIZE / 1024);
    crate::println!(
        "Out of memory: Killed process {} ({}) total-vm:{}kB, anon-rss:{}kB, file-rss:0kB, shmem-rss:{}kB, UID:{} pgtables:{}kB oom_score_adj:{}",
        task.tgid,
        core::str::from_utf8(&comm[..name_len]).unwrap_or("?"),
        kib(victim.usage.total_vm_pages),
        kib(victim.usage.anon_pages),
        kib(victim.usage.shmem_pages),
        uid,
        kib(victim.usage.table_pages),
        task.thread_group().oom_score_adj(),
    );
    crate::stats::OOM_KILLS.add(1);
    let mut init_shares = false;
    for other in tasks {
        let shares = other.mm().is_some_and(|mm| Arc::ptr_eq(&mm, &victim.mm));
        if !shares {
            continue;
        }
        if is_global_init(other) {
            init_shares = true;
            continue;
        }
        kill_thread_group(other);
    }
    if !init_shares {
        victim.mm.oom_reap();
    }
}

/// SIGKILL for the whole thread group of `task` (one helper, so the
/// process module's group API is the only way in).
fn kill_thread_group(task: &Arc<Task>) {
    super::signal::group_send_signal(
        task,
        SigInfo {
            signo: Signal::SIGKILL,
            code: SI_KERNEL,
            fields: SigFields::None,
        },
    );
}
