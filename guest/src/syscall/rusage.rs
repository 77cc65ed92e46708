//! `getrusage` and `times` (Linux `kernel/sys.c`): the CPU time and
//! context switches `sched::cputime` counts, of the caller's thread, its
//! process or its reaped children.

use super::{current_mm, Args, SysResult};
use crate::errno::{EFAULT, EINVAL};
use crate::sched::{self, cputime};

const RUSAGE_SELF: i32 = 0;
const RUSAGE_CHILDREN: i32 = -1;
const RUSAGE_THREAD: i32 = 1;

/// `getrusage(who, usage)`: `who` (an int) is checked first (EINVAL),
/// then the usage is copied out (EFAULT).
pub fn getrusage(a: Args) -> SysResult {
    let [who, address, ..] = a.0;
    let task = sched::current();
    let totals = match who as i32 {
        RUSAGE_SELF => cputime::group_totals(task.thread_group(), Some(&task)),
        RUSAGE_CHILDREN => cputime::children_totals(task.thread_group()),
        RUSAGE_THREAD => cputime::thread_totals(&task),
        _ => return Err(EINVAL),
    };
    current_mm()?
        .copy_to_user(address, &totals.to_rusage())
        .map_err(|_| EFAULT)?;
    Ok(0)
}

/// Where `times`' tick count starts: Linux's `INITIAL_JIFFIES` (300 s
/// before the 32-bit wrap, so that programs meet the wrap early) as a
/// Linux with HZ = USER_HZ = 100 returns it. The count is never an error
/// value (with a NULL buffer it is the only result).
const INITIAL_CLOCK_T: u64 = (1 << 32) - 300 * cputime::USER_HZ;

/// `times(buf)`: the process's and its reaped children's user and system
/// time in clock ticks (`struct tms`: four longs), if `buf` is not NULL;
/// returns the clock ticks elapsed since an arbitrary point.
pub fn times(a: Args) -> SysResult {
    let [address, ..] = a.0;
    if address != 0 {
        let task = sched::current();
        let own = cputime::group_totals(task.thread_group(), Some(&task));
        let children = cputime::children_totals(task.thread_group());
        let mut tms = [0u8; 32];
        let fields = [own.utime, own.stime, children.utime, children.stime];
        for (i, cycles) in fields.iter().enumerate() {
            let ticks = cputime::ns_to_clock_t(crate::time::tsc_to_ns(*cycles));
            tms[i * 8..i * 8 + 8].copy_from_slice(&ticks.to_le_bytes());
        }
        current_mm()?
            .copy_to_user(address, &tms)
            .map_err(|_| EFAULT)?;
    }
    Ok(INITIAL_CLOCK_T + cputime::ns_to_clock_t(crate::time::uptime_ns()))
}
