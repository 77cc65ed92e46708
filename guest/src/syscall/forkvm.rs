//! forkvm's own system calls (numbers from 1024, see `forkvm_abi::sys`) and
//! `reboot` for powering off.

use alloc::vec::Vec;

use forkvm_abi::sys::{self, SystemInfo, TaskInfo};
use zerocopy::{Immutable, IntoBytes};

use super::{current_mm, Args, SysResult};
use crate::errno::{EACCES, EINVAL, ENOENT, EPERM};
use crate::process::cred::{CAP_SYS_ADMIN, CAP_SYS_RESOURCE};
use crate::{mm, process, sched, time};

/// Linux's `CAP_SYS_BOOT`: `reboot`.
const CAP_SYS_BOOT: u32 = 22;

/// Whether the caller holds `cap` over the whole machine (Linux `capable`).
fn capable(cap: u32) -> bool {
    sched::current().capable(cap)
}

/// The bytes of a plain-data value, to copy to a user: only types whose
/// `IntoBytes` derive proved them free of padding (whose bytes would be
/// uninitialised kernel memory) qualify.
fn bytes_of<T: IntoBytes + Immutable>(value: &T) -> &[u8] {
    value.as_bytes()
}

/// Copies `data` (truncated to `len`) to the user buffer; returns the bytes written.
fn copy_out(buffer: u64, len: u64, data: &[u8]) -> SysResult {
    let n = data.len().min(len as usize);
    current_mm()?.copy_to_user(buffer, &data[..n])?;
    Ok(n as u64)
}

/// The numbers of [`sys::INFO_SYSTEM`].
pub fn system_info() -> SystemInfo {
    let (total_frames, free_frames) = mm::frame_counts();
    let (heap_used, heap_size) = mm::heap::usage();
    SystemInfo {
        tsc_khz: time::tsc_khz(),
        platform: crate::arch::platform::current() as u32,
        tick_hz: time::TICK_HZ as u32,
        total_frames: total_frames as u64,
        free_frames: free_frames as u64,
        heap_used: heap_used as u64,
        heap_size: heap_size as u64,
        cached_kernel_stacks: mm::kstack::cached_stacks() as u64,
        pooled_page_tables: mm::pooled_tables() as u64,
        tasks: process::all_tasks().len() as u64,
        uptime_ns: time::uptime_ns(),
        ticks: time::ticks(),
        context_switches: sched::switches(),
    }
}

/// One [`TaskInfo`] per task, by pid.
pub fn task_infos() -> Vec<TaskInfo> {
    process::all_tasks()
        .iter()
        .map(|task| {
            let attr = task.sched().get();
            let cpu_ns = sched::cputime::thread_totals(task).runtime_ns();
            TaskInfo {
                pid: task.pid,
                ppid: task.parent().map_or(0, |p| p.tgid),
                tgid: task.tgid,
                uid: 0,
                state: task.state().letter() as u8,
                vsz_kb: task.mm().map_or(0, |mm| mm.total_pages() * 4),
                fds: task.files().map_or(0, |files| files.lock().count() as u32),
                comm: task.comm(),
                policy: attr.policy,
                nice: attr.nice,
                cpu_ns,
                cpu: task.sched().cpu(),
                ..TaskInfo::default()
            }
        })
        .collect()
}

pub fn forkvm_info(a: Args) -> SysResult {
    let [kind, buffer, len, ..] = a.0;
    match kind {
        sys::INFO_SYSTEM => copy_out(buffer, len, bytes_of(&system_info())),
        sys::INFO_TASKS => {
            let mut bytes = Vec::new();
            for info in task_infos() {
                bytes.extend_from_slice(bytes_of(&info));
            }
            copy_out(buffer, len, &bytes)
        }
        sys::INFO_STATS => {
            let mut text = alloc::string::String::new();
            for (i, (name, value)) in crate::stats::all().iter().enumerate() {
                if i > 0 {
                    text.push(' ');
                }
                text.push_str(&alloc::format!("{name}={value}"));
            }
            // Per CPU: IPIs sent and received, TLB shootdowns asked of
            // others (one per operation) and flush requests served.
            for cpu in 0..crate::arch::percpu::nr_cpus() {
                if let Some(local) = crate::arch::percpu::cpu_local(cpu) {
                    use core::sync::atomic::Ordering::Relaxed;
                    text.push_str(&alloc::format!(
                        " cpu{cpu}_ipis_sent={} cpu{cpu}_ipis_received={} cpu{cpu}_shootdowns={} cpu{cpu}_flushes={}",
                        local.ipis_sent.load(Relaxed),
                        local.ipis_received.load(Relaxed),
                        local.shootdowns_sent.load(Relaxed),
                        local.flushes_received.load(Relaxed)
                    ));
                    // The page-table locks (`mm::PageTableLock`) and the
                    // frame allocator's lock: time held and spent waiting,
                    // and the waits.
                    let us = |cycles: &core::sync::atomic::AtomicU64| {
                        crate::time::tsc_to_ns(cycles.load(Relaxed)) / 1000
                    };
                    for (name, lock) in [
                        ("mm_lock", &local.mm_lock),
                        ("frame_lock", &local.frame_lock),
                    ] {
                        text.push_str(&alloc::format!(
                            " cpu{cpu}_{name}_held_us={} cpu{cpu}_{name}_wait_us={} cpu{cpu}_{name}_waits={}",
                            us(&lock.held_cycles),
                            us(&lock.wait_cycles),
                            lock.contended.load(Relaxed)
                        ));
                    }
                }
            }
            let (total, free) = mm::frame_counts();
            text.push_str(&alloc::format!(
                " frames_total={total} frames_free={free} nr_threads={} max_threads={}",
                process::nr_threads(),
                process::rlimit::max_threads()
            ));
            // Live namespaces of each kind, and the caller's (like /proc/self/ns).
            let own = sched::current().nsproxy();
            // With the references to the caller's own (the namespace
            // proxies, Linux `nsproxy`, pointing at it).
            for kind in process::nsproxy::NsKind::ALL {
                text.push_str(&alloc::format!(
                    " {}_namespaces={} ns.{}={} ns.{}.refs={}",
                    kind.name(),
                    process::nsproxy::live(kind),
                    kind.name(),
                    own.get(kind).id,
                    kind.name(),
                    alloc::sync::Arc::strong_count(own.get(kind))
                ));
            }
            let own_pid_ns = sched::current().active_pid_ns();
            text.push_str(&alloc::format!(
                " pid_namespaces={} ns.pid={} ns.pid_level={}",
                process::pid_ns::live(),
                own_pid_ns.id,
                own_pid_ns.level
            ));
            // Tasks per pid namespace (by id), distinct fd tables and the
            // tasks referring to them (CLONE_FILES shares one table).
            let mut per_ns: alloc::collections::BTreeMap<u64, u64> =
                alloc::collections::BTreeMap::new();
            let mut fd_tables = alloc::collections::BTreeSet::new();
            let mut fd_table_refs = 0;
            for task in process::all_tasks() {
                *per_ns.entry(task.active_pid_ns().id).or_insert(0) += 1;
                if let Some(files) = task.files() {
                    fd_tables.insert(alloc::sync::Arc::as_ptr(&files) as usize);
                    fd_table_refs += 1;
                }
            }
            for (id, count) in per_ns {
                text.push_str(&alloc::format!(" pids_in_ns.{id}={count}"));
            }
            text.push_str(&alloc::format!(
                " fd_tables={} fd_table_refs={fd_table_refs}",
                fd_tables.len()
            ));
            // User namespaces, the caller's, and tasks per user: in the
            // initial namespace as `user_tasks.UID`, in others as
            // `user_tasks.NSID.UID` (kernel uids, every level counted).
            let own_user_ns = sched::current().cred().user_ns.clone();
            text.push_str(&alloc::format!(
                " user_namespaces={} ns.user={} ns.user_level={}",
                process::user_ns::live(),
                own_user_ns.id,
                own_user_ns.level
            ));
            let init_user_ns = process::user_ns::init_user_ns().id;
            for (ns, uid, count) in process::user_ns::all_task_counts() {
                if ns == init_user_ns {
                    text.push_str(&alloc::format!(" user_tasks.{uid}={count}"));
                } else {
                    text.push_str(&alloc::format!(" user_tasks.{ns}.{uid}={count}"));
                }
            }
            copy_out(buffer, len, text.as_bytes())
        }
        sys::INFO_PROGRAMS => {
            let mut text = alloc::string::String::new();
            for name in crate::programs::names() {
                text.push_str(name);
                text.push('\n');
            }
            copy_out(buffer, len, text.as_bytes())
        }
        sys::INFO_DEVICES => copy_out(
            buffer,
            len,
            crate::drivers::virtio_mmio::report().as_bytes(),
        ),
        _ => Err(EINVAL),
    }
}

pub fn forkvm_diag(a: Args) -> SysResult {
    let [op, arg, buffer, len, ..] = a.0;
    match op {
        // Stopping the kernel on purpose is the administrator's (as Linux's
        // sysrq-trigger is root's): any user could otherwise crash it. So
        // is the tick probe, which takes the CPU for up to 30 s and runs
        // code in ring 3 outside any process.
        sys::DIAG_TICKS | sys::DIAG_PANIC | sys::DIAG_PANIC_ON_CPU | sys::DIAG_KERNEL_FAULT
            if !capable(CAP_SYS_ADMIN) =>
        {
            Err(EPERM)
        }
        sys::DIAG_TICKS => {
            let report = crate::diag::measure_ticks(arg)?;
            copy_out(buffer, len, bytes_of(&report))
        }
        sys::DIAG_PANIC => {
            let mut message = alloc::vec![0u8; len.min(1024) as usize];
            current_mm()?.copy_from_user(buffer, &mut message)?;
            panic!(
                "{}",
                core::str::from_utf8(&message).unwrap_or("(message is not UTF-8)")
            );
        }
        sys::DIAG_PANIC_ON_CPU => {
            let cpu = u32::try_from(arg).map_err(|_| EINVAL)?;
            let mut message = alloc::vec![0u8; len.min(1024) as usize];
            current_mm()?.copy_from_user(buffer, &mut message)?;
            let text = core::str::from_utf8(&message).unwrap_or("(message is not UTF-8)");
            if !crate::arch::smp::request_panic(cpu, text) {
                return Err(EINVAL);
            }
            Err(crate::errno::EIO)
        }
        sys::DIAG_FAIL_NTH => {
            let nth = u32::try_from(arg).map_err(|_| EINVAL)?;
            Ok(u64::from(sched::current().fail_nth().arm(nth)))
        }
        sys::DIAG_KERNEL_FAULT => {
            // An address in the kernel half that the direct map does not cover.
            let address = forkvm_abi::PAGE_OFFSET + (1 << 45);
            // SAFETY: not safe at all: it deliberately faults to test the
            // exception report; the page-fault handler stops the kernel.
            unsafe { core::ptr::read_volatile(address as *const u64) };
            Ok(0)
        }
        _ => Err(EINVAL),
    }
}

/// Largest sysctl name or value.
const SYSCTL_TEXT_MAX: u64 = 256;

pub fn forkvm_sysctl(a: Args) -> SysResult {
    let [name, name_len, value, value_len, out, out_len] = a.0;
    if name_len > SYSCTL_TEXT_MAX || value_len > SYSCTL_TEXT_MAX {
        return Err(EINVAL);
    }
    let mm = current_mm()?;
    let mut name_bytes = alloc::vec![0u8; name_len as usize];
    mm.copy_from_user(name, &mut name_bytes)?;
    if value != 0 && !may_write_sysctl(&name_bytes) {
        // Linux: the /proc/sys file does not open for writing.
        return Err(EACCES);
    }
    let new_value = if value != 0 {
        let mut bytes = alloc::vec![0u8; value_len as usize];
        mm.copy_from_user(value, &mut bytes)?;
        Some(parse_sysctl_value(&bytes)?)
    } else {
        None
    };
    let current = sysctl(&name_bytes, new_value)?;
    let text = alloc::format!("{current}");
    copy_out(out, out_len, text.as_bytes())
}

/// Every sysctl [`sysctl`] knows, in the order `/proc/sys` lists them.
pub const SYSCTL_NAMES: [&[u8]; 10] = [
    b"debug.tlb_shootdown",
    b"dev.console.busy_poll_ns",
    b"kernel.sched_child_runs_first",
    b"kernel.sched_rr_timeslice_ms",
    b"kernel.threads-max",
    b"user.max_user_namespaces",
    b"vm.fork_copy_max_pages",
    b"vm.fork_eager_stack_pages",
    b"vm.max_map_count",
    b"vm.overcommit_memory",
];

/// A value written to a sysctl: one decimal number, perhaps negative,
/// with white space around it (EINVAL otherwise).
pub fn parse_sysctl_value(bytes: &[u8]) -> Result<i64, i32> {
    let text = core::str::from_utf8(bytes).map_err(|_| EINVAL)?;
    text.trim().parse::<i64>().map_err(|_| EINVAL)
}

/// Sysctl `name` (dotted, as `kernel.threads-max`): sets it to
/// `new_value` if given (the caller checked [`may_write_sysctl`]) and
/// returns its value; ENOENT for an unknown name. Also what the files
/// under `/proc/sys` read and write.
pub fn sysctl(name: &[u8], new_value: Option<i64>) -> Result<u64, i32> {
    if name == b"kernel.sched_rr_timeslice_ms" {
        // Linux `proc_dointvec` under `sched_rr_handler`: an int, where
        // a value <= 0 means the default.
        if let Some(v) = new_value {
            sched::set_rr_timeslice_ms(i32::try_from(v).map_err(|_| EINVAL)?.into());
        }
        return Ok(sched::rr_timeslice_ms().unsigned_abs());
    }
    // The others are unsigned: a negative value is EINVAL (Linux
    // `proc_doulongvec_minmax`, `proc_douintvec`).
    let new_value = new_value
        .map(u64::try_from)
        .transpose()
        .map_err(|_| EINVAL)?;
    let current = match name {
        b"kernel.sched_child_runs_first" => {
            if let Some(v) = new_value {
                sched::set_child_runs_first(v != 0);
            }
            u64::from(sched::child_runs_first())
        }
        b"kernel.threads-max" => {
            if let Some(v) = new_value {
                crate::process::rlimit::set_max_threads(v)?;
            }
            crate::process::rlimit::max_threads()
        }
        // Per user namespace, like Linux's /proc/sys/user: the caller's.
        b"user.max_user_namespaces" => {
            let ns = sched::current().cred().user_ns.clone();
            if let Some(v) = new_value {
                if v > i32::MAX as u64 {
                    return Err(EINVAL);
                }
                ns.max_user_namespaces
                    .store(v, core::sync::atomic::Ordering::Relaxed);
            }
            ns.max_user_namespaces
                .load(core::sync::atomic::Ordering::Relaxed)
        }
        b"vm.overcommit_memory" => {
            if let Some(v) = new_value {
                super::memory::set_overcommit_memory(v)?;
            }
            super::memory::overcommit_memory()
        }
        b"vm.max_map_count" => {
            if let Some(v) = new_value {
                crate::mm::address_space::set_max_map_count(v)?;
            }
            crate::mm::address_space::max_map_count()
        }
        b"vm.fork_eager_stack_pages" => {
            if let Some(v) = new_value {
                crate::process::fork::set_eager_stack_pages(v)?;
            }
            crate::process::fork::eager_stack_pages()
        }
        b"debug.tlb_shootdown" => {
            if let Some(v) = new_value {
                crate::arch::tlb::set_nothing_freed_shootdowns(v != 0);
            }
            u64::from(crate::arch::tlb::nothing_freed_shootdowns())
        }
        b"dev.console.busy_poll_ns" => {
            if let Some(v) = new_value {
                crate::drivers::virtio_console::set_busy_poll_ns(v)?;
            }
            crate::drivers::virtio_console::busy_poll_ns()
        }
        b"vm.fork_copy_max_pages" => {
            if let Some(v) = new_value {
                crate::process::fork::set_copy_max_pages(v)?;
            }
            crate::process::fork::copy_max_pages()
        }
        _ => return Err(ENOENT),
    };
    Ok(current)
}

/// Whether the caller may set sysctl `name`: the machine-wide settings are
/// root's (their /proc/sys files are 0644, owned by root); a user
/// namespace's `user.*` limits belong to whoever holds CAP_SYS_RESOURCE in
/// it (Linux `set_permissions` in kernel/ucount.c).
pub fn may_write_sysctl(name: &[u8]) -> bool {
    let cred = sched::current().cred();
    if name.starts_with(b"user.") {
        cred.capable_in_own_ns(CAP_SYS_RESOURCE)
    } else {
        cred.capable(CAP_SYS_ADMIN)
    }
}

/// `reboot(magic1, magic2, cmd, arg)`: only POWER_OFF, whose `arg` is
/// forkvm's exit status (Linux ignores it for this command). Like Linux,
/// CAP_SYS_BOOT is checked first (EPERM), then the magic numbers. Only the
/// initial namespaces' administrator may power off: Linux would let the
/// root of a child pid namespace end just that namespace, which forkvm
/// does not do (EPERM too).
pub fn reboot(a: Args) -> SysResult {
    let [magic1, magic2, command, arg, ..] = a.0;
    if !capable(CAP_SYS_BOOT) || sched::current().active_pid_ns().level != 0 {
        return Err(EPERM);
    }
    if magic1 != sys::LINUX_REBOOT_MAGIC1 || magic2 != sys::LINUX_REBOOT_MAGIC2 {
        return Err(EINVAL);
    }
    if command != sys::LINUX_REBOOT_CMD_POWER_OFF {
        return Err(EINVAL); // restart, halt, kexec...: not supported
    }
    crate::drivers::vmm_ports::poweroff((arg & 0xff) as u32)
}
