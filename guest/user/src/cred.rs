//! Credentials, capabilities and resource limits: the Linux x86-64 system
//! calls behind the shell's `id`, `su` and `ulimit`.
//!
//! - `getuid`(102), `getgid`(104), `geteuid`(107), `getegid`(108): cannot fail.
//! - `setuid`(105), `setgid`(106): with `CAP_SETUID`/`CAP_SETGID` they set the
//!   real, effective, saved (and filesystem) ids; without, only the effective
//!   id, and only to the real or saved one (else `EPERM`). When a process with
//!   some uid 0 ends with none (real, effective and saved all non-zero),
//!   Linux clears its permitted and effective capabilities.
//! - `capget`(125)/`capset`(126), version 3 (`_LINUX_CAPABILITY_VERSION_3`):
//!   a header `{version: u32, pid: i32}` and two data words
//!   `{effective, permitted, inheritable: u32}` (capabilities 0-31, 32-63).
//! - `getrlimit`(97), `setrlimit`(160), `prlimit64`(302): `struct rlimit64
//!   {cur, max: u64}`, `RLIM_INFINITY` = `u64::MAX`.

use crate::errno::Errno;
use crate::syscall::{check, syscall0, syscall1, syscall2, syscall4};

use crate::syscall::nr;

/// `getuid(2)`: the real user id.
pub fn getuid() -> u32 {
    // SAFETY: touches no memory; cannot fail.
    unsafe { syscall0(nr::GETUID) as u32 }
}

/// `geteuid(2)`: the effective user id.
pub fn geteuid() -> u32 {
    // SAFETY: touches no memory; cannot fail.
    unsafe { syscall0(nr::GETEUID) as u32 }
}

/// `getgid(2)`: the real group id.
pub fn getgid() -> u32 {
    // SAFETY: touches no memory; cannot fail.
    unsafe { syscall0(nr::GETGID) as u32 }
}

/// `getegid(2)`: the effective group id.
pub fn getegid() -> u32 {
    // SAFETY: touches no memory; cannot fail.
    unsafe { syscall0(nr::GETEGID) as u32 }
}

/// `setuid(2)`.
pub fn setuid(uid: u32) -> Result<(), Errno> {
    // SAFETY: touches no memory of ours.
    check(unsafe { syscall1(nr::SETUID, uid as usize) }).map(drop)
}

/// `setgid(2)`.
pub fn setgid(gid: u32) -> Result<(), Errno> {
    // SAFETY: touches no memory of ours.
    check(unsafe { syscall1(nr::SETGID, gid as usize) }).map(drop)
}

/// `_LINUX_CAPABILITY_VERSION_3`: 64-bit capability sets in two data words.
pub const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// `struct __user_cap_header_struct`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CapHeader {
    /// `_LINUX_CAPABILITY_VERSION_*`.
    pub version: u32,
    /// The process (0: the caller).
    pub pid: i32,
}

/// `struct __user_cap_data_struct`: 32 capabilities of each set.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CapData {
    /// Effective set.
    pub effective: u32,
    /// Permitted set.
    pub permitted: u32,
    /// Inheritable set.
    pub inheritable: u32,
}

/// A process's capability sets, bit N = capability N.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// Effective set.
    pub effective: u64,
    /// Permitted set.
    pub permitted: u64,
    /// Inheritable set.
    pub inheritable: u64,
}

impl Capabilities {
    /// Joins version 3's two data words (capabilities 0-31, then 32-63).
    pub fn from_data(data: [CapData; 2]) -> Self {
        let join = |f: fn(&CapData) -> u32| u64::from(f(&data[0])) | u64::from(f(&data[1])) << 32;
        Self {
            effective: join(|d| d.effective),
            permitted: join(|d| d.permitted),
            inheritable: join(|d| d.inheritable),
        }
    }

    /// Splits the sets into version 3's two data words.
    pub fn to_data(self) -> [CapData; 2] {
        let word = |shift: u32| CapData {
            effective: (self.effective >> shift) as u32,
            permitted: (self.permitted >> shift) as u32,
            inheritable: (self.inheritable >> shift) as u32,
        };
        [word(0), word(32)]
    }
}

/// `capget(2)` (version 3) of process `pid` (0: the caller).
pub fn capget(pid: i32) -> Result<Capabilities, Errno> {
    let mut header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: the kernel reads/writes the live header and writes two data
    // structs into the live local array.
    check(unsafe {
        syscall2(
            nr::CAPGET,
            &mut header as *mut CapHeader as usize,
            data.as_mut_ptr() as usize,
        )
    })?;
    Ok(Capabilities::from_data(data))
}

/// `capset(2)` (version 3) of the caller.
pub fn capset(caps: Capabilities) -> Result<(), Errno> {
    let mut header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = caps.to_data();
    // SAFETY: the kernel reads the live header (and may write its version)
    // and reads the two data structs.
    check(unsafe {
        syscall2(
            nr::CAPSET,
            &mut header as *mut CapHeader as usize,
            data.as_ptr() as usize,
        )
    })
    .map(drop)
}

/// `RLIMIT_NPROC`: processes (threads) per real user id.
pub const RLIMIT_NPROC: u32 = 6;
/// `RLIMIT_NOFILE`: open descriptors.
pub const RLIMIT_NOFILE: u32 = 7;
/// No limit.
pub const RLIM_INFINITY: u64 = u64::MAX;

/// `struct rlimit` (= `struct rlimit64` on x86-64).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rlimit {
    /// Soft limit.
    pub cur: u64,
    /// Hard limit (ceiling of the soft one).
    pub max: u64,
}

/// `getrlimit(2)`.
pub fn getrlimit(resource: u32) -> Result<Rlimit, Errno> {
    let mut limit = Rlimit::default();
    // SAFETY: the kernel writes one struct rlimit into the live local.
    check(unsafe {
        syscall2(
            nr::GETRLIMIT,
            resource as usize,
            &mut limit as *mut Rlimit as usize,
        )
    })?;
    Ok(limit)
}

/// `setrlimit(2)`.
pub fn setrlimit(resource: u32, limit: Rlimit) -> Result<(), Errno> {
    // SAFETY: the kernel reads one live struct rlimit.
    check(unsafe {
        syscall2(
            nr::SETRLIMIT,
            resource as usize,
            &limit as *const Rlimit as usize,
        )
    })
    .map(drop)
}

/// `prlimit64(pid, resource, new, old)` (pid 0: the caller): sets the limit
/// to `new` if given and returns the one before.
pub fn prlimit64(pid: i32, resource: u32, new: Option<Rlimit>) -> Result<Rlimit, Errno> {
    let mut old = Rlimit::default();
    let new_ptr = new
        .as_ref()
        .map_or(0, |limit| limit as *const Rlimit as usize);
    // SAFETY: the kernel reads the live `new` (if any) and writes the live `old`.
    check(unsafe {
        syscall4(
            nr::PRLIMIT64,
            pid as isize as usize,
            resource as usize,
            new_ptr,
            &mut old as *mut Rlimit as usize,
        )
    })?;
    Ok(old)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_words() {
        let caps = Capabilities {
            effective: 0x1_ffff_ffff,
            permitted: 0x1ff_feff_ffff,
            inheritable: 0,
        };
        let data = caps.to_data();
        assert_eq!(data[0].effective, 0xffff_ffff);
        assert_eq!(data[1].effective, 1);
        assert_eq!(data[1].permitted, 0x1ff);
        assert_eq!(Capabilities::from_data(data), caps);
    }

    // The wrappers run on the host's Linux in the test binary.
    #[test]
    fn host_credentials() {
        assert_eq!(getuid(), crate::syscall::getuid());
        let _ = (geteuid(), getgid(), getegid());
        let caps = capget(0).unwrap();
        if geteuid() != 0 {
            assert_eq!(caps.effective, 0);
        }
        assert_eq!(capset(caps), Ok(()), "setting the same sets again");
        // A bad version: EINVAL, and the kernel writes its preferred one;
        // with a NULL data pointer (a probe) the same call returns 0.
        for (data, want) in [(true, Err(Errno::EINVAL)), (false, Ok(0))] {
            let mut header = CapHeader {
                version: 0x1234,
                pid: 0,
            };
            let mut buf = [CapData::default(); 2];
            let ptr = if data { buf.as_mut_ptr() as usize } else { 0 };
            // SAFETY: the kernel writes at most the live header and buffer.
            let ret = unsafe { syscall2(nr::CAPGET, &mut header as *mut CapHeader as usize, ptr) };
            assert_eq!(check(ret), want, "data pointer: {data}");
            assert_eq!(header.version, LINUX_CAPABILITY_VERSION_3);
        }
    }

    #[test]
    fn host_limits() {
        let limit = getrlimit(RLIMIT_NPROC).unwrap();
        assert!(limit.cur <= limit.max);
        assert_eq!(prlimit64(0, RLIMIT_NPROC, None), Ok(limit));
        // Setting what is there is always allowed (and changes nothing).
        assert_eq!(setrlimit(RLIMIT_NPROC, limit), Ok(()));
        assert_eq!(prlimit64(0, RLIMIT_NPROC, Some(limit)), Ok(limit));
        let bad = Rlimit { cur: 2, max: 1 };
        assert_eq!(setrlimit(RLIMIT_NPROC, bad), Err(Errno::EINVAL));
        assert_eq!(getrlimit(1000), Err(Errno::EINVAL));
    }
}
