//! `uname`, `sethostname`, `setdomainname` (the UTS namespace), `umask`
//! and `sysinfo`.

use super::{current_mm, Args, SysResult};
use crate::errno::{EINVAL, EPERM};
use crate::process::cred::CAP_SYS_ADMIN;
use crate::process::nsproxy::{NsKind, UTS_LEN};
use crate::sched;

/// One field of `struct utsname`.
const FIELD: usize = UTS_LEN + 1;

pub fn uname(a: Args) -> SysResult {
    let uts = sched::current().nsproxy().get(NsKind::Uts).clone();
    let names = *uts.uts.lock();
    let fields: [&[u8]; 6] = [
        b"Linux",
        &names.hostname[..names.hostname_len],
        b"6.0.0-forkvm",
        b"#1 forkvm",
        b"x86_64",
        &names.domainname[..names.domainname_len],
    ];
    let mut bytes = [0u8; FIELD * 6];
    for (i, field) in fields.iter().enumerate() {
        bytes[i * FIELD..i * FIELD + field.len()].copy_from_slice(field);
    }
    current_mm()?.copy_to_user(a.0[0], &bytes)?;
    Ok(0)
}

/// `sethostname`/`setdomainname`: CAP_SYS_ADMIN over the user namespace
/// owning the caller's UTS namespace, at most 64 bytes.
fn set_uts_name(a: Args, domain: bool) -> SysResult {
    let [address, len, ..] = a.0;
    let task = sched::current();
    let owner = task.nsproxy().get(NsKind::Uts).user_ns.clone();
    if !task.cred().ns_capable(&owner, CAP_SYS_ADMIN) {
        return Err(EPERM);
    }
    if len > UTS_LEN as u64 {
        return Err(EINVAL);
    }
    let mut name = [0u8; UTS_LEN];
    current_mm()?.copy_from_user(address, &mut name[..len as usize])?;
    let uts = task.nsproxy().get(NsKind::Uts).clone();
    let mut names = uts.uts.lock();
    if domain {
        names.domainname = name;
        names.domainname_len = len as usize;
    } else {
        names.hostname = name;
        names.hostname_len = len as usize;
    }
    Ok(0)
}

pub fn sethostname(a: Args) -> SysResult {
    set_uts_name(a, false)
}

pub fn setdomainname(a: Args) -> SysResult {
    set_uts_name(a, true)
}

/// `umask(mask)`: returns the old mask.
pub fn umask(a: Args) -> SysResult {
    let fs = sched::current().fs_struct();
    let mut fs = fs.lock();
    let old = fs.umask;
    fs.umask = (a.0[0] & 0o777) as u32;
    Ok(u64::from(old))
}

/// `sysinfo(info)` (Linux `do_sysinfo`): uptime in whole seconds, rounded
/// up; the memory figures of `/proc/meminfo` (MemTotal, MemFree; no
/// shared, buffer or swap memory) in bytes with `mem_unit` 1, as a 64-bit
/// Linux reports them; `procs` is `nr_threads` (every task, threads
/// included). The load averages are 0: the scheduler keeps no run-queue
/// averages (Linux `avenrun`) and there is no `/proc/loadavg`.
pub fn sysinfo(a: Args) -> SysResult {
    /// `struct sysinfo` on x86-64 (112 bytes): uptime, loads[3],
    /// totalram, freeram, sharedram, bufferram, totalswap, freeswap
    /// (longs), procs (u16, then padding), totalhigh, freehigh (longs),
    /// mem_unit (u32).
    const SIZE: usize = 112;
    let ns = crate::time::uptime_ns();
    let uptime = ns.div_ceil(1_000_000_000);
    let (total, free) = crate::mm::frame_counts();
    let page = 4096u64;
    let mut bytes = [0u8; SIZE];
    let mut put = |offset: usize, value: u64| {
        bytes[offset..offset + 8].copy_from_slice(&value.to_le_bytes());
    };
    put(0, uptime);
    put(32, total as u64 * page);
    put(40, free as u64 * page);
    let procs = crate::process::nr_threads() as u16;
    bytes[80..82].copy_from_slice(&procs.to_le_bytes());
    bytes[104..108].copy_from_slice(&1u32.to_le_bytes());
    current_mm()?.copy_to_user(a.0[0], &bytes)?;
    Ok(0)
}
