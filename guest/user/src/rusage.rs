//! Resource usage: `getrusage`, `times` and `wait4` with its `struct
//! rusage` (the CPU time and context switches of a thread, a process or its
//! reaped children).

use crate::errno::Errno;
use crate::syscall::{
    check, clock_gettime, nr, syscall1, syscall2, syscall4, syscall5, Pid, WaitStatus,
};

/// `getrusage`'s `who`: the calling process (all its threads).
pub const RUSAGE_SELF: i32 = 0;
/// Its reaped children (and theirs).
pub const RUSAGE_CHILDREN: i32 = -1;
/// The calling thread.
pub const RUSAGE_THREAD: i32 = 1;

/// `struct timeval`: seconds and microseconds.
#[allow(missing_docs)]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timeval {
    pub sec: i64,
    pub usec: i64,
}

impl Timeval {
    /// The whole value in microseconds.
    pub fn as_micros(&self) -> u64 {
        (self.sec as u64) * 1_000_000 + self.usec as u64
    }
}

/// `struct rusage` (x86-64, 144 bytes), fields named as Linux's without
/// the `ru_` prefix.
#[allow(missing_docs)]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Rusage {
    pub utime: Timeval,
    pub stime: Timeval,
    pub maxrss: i64,
    pub ixrss: i64,
    pub idrss: i64,
    pub isrss: i64,
    pub minflt: i64,
    pub majflt: i64,
    pub nswap: i64,
    pub inblock: i64,
    pub oublock: i64,
    pub msgsnd: i64,
    pub msgrcv: i64,
    pub nsignals: i64,
    /// Voluntary context switches (the task blocked).
    pub nvcsw: i64,
    /// Involuntary ones (preempted, or yielded while runnable).
    pub nivcsw: i64,
}

/// `getrusage(who, &usage)`.
pub fn getrusage(who: i32) -> Result<Rusage, Errno> {
    let mut usage = Rusage::default();
    // SAFETY: the kernel writes one struct rusage into the live local.
    let ret = unsafe {
        syscall2(
            nr::GETRUSAGE,
            who as isize as usize,
            &mut usage as *mut Rusage as usize,
        )
    };
    check(ret).map(|_| usage)
}

/// `getrusage(who, address)` with any address (for EFAULT checks: the
/// kernel must refuse to write where nothing is mapped).
///
/// # Safety
/// `address` must be unmapped, or point to 144 writable bytes.
pub unsafe fn getrusage_raw(who: i32, address: usize) -> Result<usize, Errno> {
    // SAFETY: the caller vouches for `address`.
    check(unsafe { syscall2(nr::GETRUSAGE, who as isize as usize, address) })
}

/// `struct tms`: clock ticks (`USER_HZ`, 100 a second), fields named as
/// Linux's without the `tms_` prefix.
#[allow(missing_docs)]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Tms {
    pub utime: i64,
    pub stime: i64,
    pub cutime: i64,
    pub cstime: i64,
}

/// `times(&buf)`: the process's and its reaped children's times, and the
/// clock ticks since an arbitrary point.
pub fn times() -> Result<(u64, Tms), Errno> {
    let mut tms = Tms::default();
    // SAFETY: the kernel writes one struct tms into the live local.
    let ret = unsafe { syscall1(nr::TIMES, &mut tms as *mut Tms as usize) };
    check(ret).map(|ticks| (ticks as u64, tms))
}

/// `wait4(pid, &status, options, &usage)`: the reported child's status and
/// its usage (with its own reaped children's).
pub fn wait4_rusage(pid: i32, options: u32) -> Result<(Pid, WaitStatus, Rusage), Errno> {
    let mut status = 0i32;
    let mut usage = Rusage::default();
    // SAFETY: the kernel writes an int and a struct rusage into live locals.
    let ret = unsafe {
        syscall4(
            nr::WAIT4,
            pid as isize as usize,
            &mut status as *mut i32 as usize,
            options as usize,
            &mut usage as *mut Rusage as usize,
        )
    };
    check(ret).map(|pid| (pid as Pid, WaitStatus(status), usage))
}

/// `waitid(idtype, id, &info, options, &usage)`: the reported child's
/// usage (the `siginfo_t` is not decoded here).
pub fn waitid_rusage(idtype: u32, id: i32, options: u32) -> Result<Rusage, Errno> {
    let mut info = [0u8; 128];
    let mut usage = Rusage::default();
    // SAFETY: the kernel writes into the two live locals.
    let ret = unsafe {
        syscall5(
            nr::WAITID,
            idtype as usize,
            id as isize as usize,
            info.as_mut_ptr() as usize,
            options as usize,
            &mut usage as *mut Rusage as usize,
        )
    };
    check(ret).map(|_| usage)
}

/// `CLOCK_THREAD_CPUTIME_ID`: the calling thread's CPU time.
pub const CLOCK_THREAD_CPUTIME_ID: u32 = 3;

/// Runs in user mode until the calling thread has used `ns` of CPU time
/// (it looks at the clock every few million instructions).
pub fn spin_cpu_ns(ns: u64) {
    let start = thread_cpu_ns();
    let mut x = 0u64;
    while thread_cpu_ns().saturating_sub(start) < ns {
        for i in 0..200_000u64 {
            x = core::hint::black_box(x.wrapping_add(i));
        }
    }
}

/// The calling thread's CPU time in nanoseconds (0 if the clock fails).
pub fn thread_cpu_ns() -> u64 {
    clock_gettime(CLOCK_THREAD_CPUTIME_ID).map_or(0, |t| t.as_nanos())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn struct_sizes() {
        assert_eq!(core::mem::size_of::<Rusage>(), 144);
        assert_eq!(core::mem::size_of::<Tms>(), 32);
    }

    // On the host's Linux: the calls and their layout agree with it.
    #[test]
    fn own_usage_on_linux() {
        let start = getrusage(RUSAGE_THREAD).expect("getrusage");
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = core::hint::black_box(x.wrapping_add(i));
        }
        let end = getrusage(RUSAGE_SELF).expect("getrusage");
        assert!(end.utime.as_micros() + end.stime.as_micros() > start.utime.as_micros());
        assert!(end.utime.usec < 1_000_000);
        assert_eq!(getrusage(2).unwrap_err(), Errno::EINVAL);
        let (ticks, _) = times().expect("times");
        assert!(ticks > 0);
    }
}
