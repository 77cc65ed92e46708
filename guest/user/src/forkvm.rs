//! forkvm's own system calls (`forkvm_abi::sys`: numbers 1024..=1027) and
//! powering off through `reboot`, with typed results.
//!
//! On any other kernel the forkvm calls fail with `ENOSYS` (Linux has no such
//! numbers) and `reboot` with `EPERM` (unless run as root on Linux, where it
//! really powers the machine off: never call [`poweroff`] in a host test).

pub use forkvm_abi::sys::{SystemInfo, TaskInfo, TickReport};
use forkvm_abi::sys::{
    DIAG_KERNEL_FAULT, DIAG_PANIC, DIAG_PANIC_ON_CPU, DIAG_TICKS, INFO_SYSTEM, INFO_TASKS,
    LINUX_REBOOT_CMD_POWER_OFF, LINUX_REBOOT_MAGIC1, LINUX_REBOOT_MAGIC2, SYS_FORKVM_DIAG,
    SYS_FORKVM_INFO, SYS_FORKVM_SYSCTL, SYS_FORKVM_VCONSOLE_OPEN,
};

use crate::errno::Errno;
use crate::syscall::{c_field, check, nr, syscall0, syscall3, syscall4, syscall6};

/// `forkvm_info(kind, buf, len)`, raw: copies the report of `kind` into
/// `buf` (truncated if short) and returns the bytes written.
pub fn info_raw(kind: u64, buf: &mut [u8]) -> Result<usize, Errno> {
    // SAFETY: the kernel writes at most buf.len() bytes into a live, exclusive slice.
    check(unsafe {
        syscall3(
            SYS_FORKVM_INFO,
            kind as usize,
            buf.as_mut_ptr() as usize,
            buf.len(),
        )
    })
}

/// `forkvm_info(INFO_SYSTEM)`: the system-wide numbers. Fields a (shorter,
/// older) report leaves out are zero.
pub fn system_info() -> Result<SystemInfo, Errno> {
    let mut info = SystemInfo::default();
    // SAFETY: the kernel writes at most size_of::<SystemInfo>() bytes of
    // plain integers into the live local.
    check(unsafe {
        syscall3(
            SYS_FORKVM_INFO,
            INFO_SYSTEM as usize,
            &mut info as *mut SystemInfo as usize,
            core::mem::size_of::<SystemInfo>(),
        )
    })?;
    Ok(info)
}

/// `forkvm_info(INFO_TASKS)`: fills `buf` with one [`TaskInfo`] per task (by
/// pid) and returns how many it holds. If it returns `buf.len()` there may
/// be more tasks: call again with a larger buffer
/// ([`SystemInfo::tasks`] says how many there were).
pub fn tasks(buf: &mut [TaskInfo]) -> Result<usize, Errno> {
    let size = core::mem::size_of::<TaskInfo>();
    // SAFETY: the kernel writes at most len bytes of plain integers into the
    // live, exclusive slice.
    let written = check(unsafe {
        syscall3(
            SYS_FORKVM_INFO,
            INFO_TASKS as usize,
            buf.as_mut_ptr() as usize,
            core::mem::size_of_val(buf),
        )
    })?;
    Ok(written / size)
}

/// The command name of a task (its `comm`, up to the first NUL).
pub fn comm(task: &TaskInfo) -> &[u8] {
    c_field(&task.comm)
}

/// `forkvm_diag(DIAG_TICKS, ms)`: counts timer ticks over `ms` milliseconds
/// (1..=10000, else `EINVAL`) with the kernel spinning, idling and running
/// user code.
pub fn diag_ticks(ms: u64) -> Result<TickReport, Errno> {
    let mut report = TickReport::default();
    // SAFETY: the kernel writes at most size_of::<TickReport>() bytes of
    // plain integers into the live local.
    check(unsafe {
        syscall4(
            SYS_FORKVM_DIAG,
            DIAG_TICKS as usize,
            ms as usize,
            &mut report as *mut TickReport as usize,
            core::mem::size_of::<TickReport>(),
        )
    })?;
    Ok(report)
}

/// `forkvm_diag(DIAG_PANIC, 0, message)`: panics the kernel with `message`
/// (the kernel reads at most 1024 bytes). Returns only if that failed.
pub fn diag_panic(message: &[u8]) -> Errno {
    // SAFETY: the kernel only reads the live slice.
    let ret = unsafe {
        syscall4(
            SYS_FORKVM_DIAG,
            DIAG_PANIC as usize,
            0,
            message.as_ptr() as usize,
            message.len(),
        )
    };
    check(ret).err().unwrap_or(Errno::EINVAL)
}

/// `forkvm_diag(DIAG_PANIC_ON_CPU)`: panics the kernel on CPU `cpu`.
pub fn diag_panic_on_cpu(cpu: u32, message: &[u8]) -> Errno {
    // SAFETY: the kernel only reads the live slice.
    let ret = unsafe {
        syscall4(
            SYS_FORKVM_DIAG,
            DIAG_PANIC_ON_CPU as usize,
            cpu as usize,
            message.as_ptr() as usize,
            message.len(),
        )
    };
    check(ret).err().unwrap_or(Errno::EINVAL)
}

/// `forkvm_diag(DIAG_KERNEL_FAULT)`: makes the kernel read an unmapped
/// kernel address (which stops it). Returns only if that failed.
pub fn diag_kernel_fault() -> Errno {
    // SAFETY: no user memory is passed.
    let ret = unsafe { syscall4(SYS_FORKVM_DIAG, DIAG_KERNEL_FAULT as usize, 0, 0, 0) };
    check(ret).err().unwrap_or(Errno::EINVAL)
}

/// What the previous clone/fork reported to [`diag_fail_nth`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FailNthReport {
    /// The fallible steps it went through.
    pub steps: u32,
    /// The step an injected failure hit (a `forkvm_abi::sys::ForkStep`
    /// name), if one did.
    pub failed_step: Option<&'static str>,
}

/// `forkvm_diag(DIAG_FAIL_NTH, n)`: the `n`-th fallible step of this
/// task's next clone/fork fails (0 disarms). Returns what the previous
/// clone/fork went through.
pub fn diag_fail_nth(n: u32) -> Result<FailNthReport, Errno> {
    use forkvm_abi::sys::{ForkStep, FAIL_NTH_STEP_SHIFT};
    // SAFETY: no user memory is passed.
    let ret = unsafe {
        syscall4(
            SYS_FORKVM_DIAG,
            forkvm_abi::sys::DIAG_FAIL_NTH as usize,
            n as usize,
            0,
            0,
        )
    };
    check(ret).map(|report| {
        let report = report as u32;
        let step = report >> FAIL_NTH_STEP_SHIFT;
        FailNthReport {
            steps: report & ((1 << FAIL_NTH_STEP_SHIFT) - 1),
            failed_step: ForkStep::from_number(step).map(ForkStep::name),
        }
    })
}

/// `forkvm_sysctl`: reads the kernel setting `name` as decimal text into
/// `out` (returns the bytes written), after setting it to the decimal text
/// `value` if given. `ENOENT`: no such setting; `EINVAL`: bad value.
pub fn sysctl(name: &[u8], value: Option<&[u8]>, out: &mut [u8]) -> Result<usize, Errno> {
    let (value_ptr, value_len) = value.map_or((0, 0), |v| (v.as_ptr() as usize, v.len()));
    // SAFETY: the kernel reads the name and value slices and writes at most
    // out.len() bytes into the live, exclusive `out`.
    check(unsafe {
        syscall6(
            SYS_FORKVM_SYSCTL,
            name.as_ptr() as usize,
            name.len(),
            value_ptr,
            value_len,
            out.as_mut_ptr() as usize,
            out.len(),
        )
    })
}

/// `forkvm_vconsole_open()`: a descriptor for the virtio console (read:
/// bytes from the host, blocking; write: bytes to the host).
pub fn vconsole_open() -> Result<i32, Errno> {
    // SAFETY: no user memory is passed.
    check(unsafe { syscall0(SYS_FORKVM_VCONSOLE_OPEN) }).map(|fd| fd as i32)
}

/// `reboot(LINUX_REBOOT_MAGIC1, LINUX_REBOOT_MAGIC2,
/// LINUX_REBOOT_CMD_POWER_OFF, status)`: powers the VM off, forkvm exiting
/// with `status`. Returns only if that failed (`EPERM` on Linux for a
/// non-root caller).
pub fn poweroff(status: u8) -> Errno {
    // SAFETY: no user memory is passed. (On Linux as root this powers the
    // machine off, which is what was asked for.)
    let ret = unsafe {
        syscall4(
            nr::REBOOT,
            LINUX_REBOOT_MAGIC1 as usize,
            LINUX_REBOOT_MAGIC2 as usize,
            LINUX_REBOOT_CMD_POWER_OFF as usize,
            usize::from(status),
        )
    };
    check(ret).err().unwrap_or(Errno::EINVAL)
}

/// Converts TSC cycles to nanoseconds at `tsc_khz` (`None` if the rate is 0).
pub fn cycles_to_ns(cycles: u64, tsc_khz: u64) -> Option<u64> {
    if tsc_khz == 0 {
        return None;
    }
    let ns = u128::from(cycles) * 1_000_000 / u128::from(tsc_khz);
    Some(u64::try_from(ns).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abi_struct_sizes() {
        assert_eq!(core::mem::size_of::<SystemInfo>(), 96);
        assert_eq!(core::mem::size_of::<TaskInfo>(), 72);
        assert_eq!(core::mem::size_of::<TickReport>(), 64);
    }

    // The host's Linux has no forkvm system calls: they must fail cleanly.
    #[test]
    fn forkvm_calls_are_enosys_on_linux() {
        assert_eq!(system_info().unwrap_err(), Errno::ENOSYS);
        let mut buf = [TaskInfo::default(); 4];
        assert_eq!(tasks(&mut buf), Err(Errno::ENOSYS));
        assert_eq!(diag_ticks(1).unwrap_err(), Errno::ENOSYS);
        let mut out = [0u8; 16];
        assert_eq!(
            sysctl(b"kernel.sched_child_runs_first", None, &mut out),
            Err(Errno::ENOSYS)
        );
        assert_eq!(info_raw(INFO_SYSTEM, &mut out), Err(Errno::ENOSYS));
        // DIAG_PANIC and DIAG_KERNEL_FAULT are not called: on a forkvm
        // kernel they would stop it.
    }

    #[test]
    fn comm_stops_at_nul() {
        let mut task = TaskInfo::default();
        task.comm[..5].copy_from_slice(b"hello");
        assert_eq!(comm(&task), b"hello");
        task.comm = [b'x'; 16];
        assert_eq!(comm(&task), [b'x'; 16]);
    }

    #[test]
    fn cycle_conversion() {
        assert_eq!(cycles_to_ns(3_000, 3_000_000), Some(1_000));
        assert_eq!(cycles_to_ns(1, 1_000_000), Some(1));
        assert_eq!(cycles_to_ns(2_500, 2_000_000), Some(1_250));
        assert_eq!(cycles_to_ns(5, 0), None);
        assert_eq!(cycles_to_ns(u64::MAX, 1), Some(u64::MAX));
    }
}
