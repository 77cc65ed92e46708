//! CPU affinity and the running CPU: `sched_setaffinity`,
//! `sched_getaffinity` and `getcpu`, with Linux's checks in its order.
//!
//! The kernel's cpumask is one 64-bit word (`forkvm_abi::MAX_CPUS` = 64),
//! so `cpumask_size()` is 8 bytes and `nr_cpu_ids` the number of vCPUs.

use super::{current_mm, Args, SysResult};
use crate::arch::percpu;
use crate::errno::{EINVAL, EPERM, ESRCH};
use crate::process::cred::CAP_SYS_NICE;
use crate::process::pgrp;
use crate::process::task::Task;
use crate::sched;
use alloc::sync::Arc;

/// Linux `cpumask_size()`: bytes of the kernel's CPU mask.
const CPUMASK_SIZE: u64 = 8;

/// Linux `find_process_by_pid`: 0 is the caller, else the thread with that
/// id in the caller's pid namespace.
fn find_process_by_pid(pid: i32) -> Result<Arc<Task>, i32> {
    let current = sched::current();
    if pid == 0 {
        return Ok(current);
    }
    if pid < 0 {
        return Err(ESRCH);
    }
    pgrp::find_task_by_vpid(&current.active_pid_ns(), pid as u32).ok_or(ESRCH)
}

/// `sched_setaffinity(pid, len, mask)`: the mask is read first (a shorter
/// one is zero-filled, a longer one cut to the kernel's size: EFAULT),
/// then the task is looked up (ESRCH), the caller must own it (its
/// effective uid is the task's real or effective uid) or hold CAP_SYS_NICE
/// over the task's user namespace (EPERM), and the mask must name a CPU
/// that runs (EINVAL).
pub fn sched_setaffinity(a: Args) -> SysResult {
    let [pid, len, user_mask, ..] = a.0;
    let len = (len as u32 as u64).min(CPUMASK_SIZE);
    let mut bytes = [0u8; CPUMASK_SIZE as usize];
    current_mm()?.copy_from_user(user_mask, &mut bytes[..len as usize])?;
    let mask = u64::from_le_bytes(bytes);
    let task = find_process_by_pid(pid as i32)?;
    let caller = sched::current().cred();
    let crate::process::cred::Cred {
        uid, euid, user_ns, ..
    } = task.cred();
    if caller.euid != euid && caller.euid != uid && !caller.ns_capable(&user_ns, CAP_SYS_NICE) {
        return Err(EPERM);
    }
    if mask & sched::online_mask() == 0 {
        return Err(EINVAL);
    }
    sched::set_cpus_allowed(&task, mask);
    Ok(0)
}

/// `sched_getaffinity(pid, len, mask)`: `len` must hold `nr_cpu_ids` bits
/// and be a multiple of a long (EINVAL), the task must exist (ESRCH); the
/// mask (as many bytes as both sizes allow) is the task's allowed CPUs
/// that run (EFAULT if it cannot be stored); returns its size.
pub fn sched_getaffinity(a: Args) -> SysResult {
    let [pid, len, user_mask, ..] = a.0;
    let len = u64::from(len as u32);
    if len * 8 < u64::from(percpu::nr_cpus()) || len % 8 != 0 {
        return Err(EINVAL);
    }
    let task = find_process_by_pid(pid as i32)?;
    let mask = task.sched().cpus_allowed() & sched::online_mask();
    let size = len.min(CPUMASK_SIZE);
    current_mm()?.copy_to_user(user_mask, &mask.to_le_bytes()[..size as usize])?;
    Ok(size)
}

/// `getcpu(cpu, node, cache)`: the CPU the caller runs on and its NUMA
/// node (always 0), each stored if its pointer is not NULL (EFAULT).
pub fn getcpu(a: Args) -> SysResult {
    let [cpu, node, ..] = a.0;
    let mm = current_mm()?;
    if cpu != 0 {
        mm.copy_to_user(cpu, &percpu::cpu_id().to_le_bytes())?;
    }
    if node != 0 {
        mm.copy_to_user(node, &0u32.to_le_bytes())?;
    }
    Ok(0)
}
