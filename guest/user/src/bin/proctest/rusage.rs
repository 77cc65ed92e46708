//! Resource usage: `getrusage` (RUSAGE_SELF, RUSAGE_CHILDREN,
//! RUSAGE_THREAD), the `rusage` of `wait4` and `waitid`, and `times`: the
//! errors in Linux's order, a reaped child's CPU time going to its parent
//! (not before it is reaped), a process's total including its exited
//! threads, voluntary context switches after sleeping.
//!
//! Times are compared only with lower bounds the work guarantees (a child
//! that used 30 ms of CPU reports at least 20 ms), never with the clock.

use forkvm_user::rusage::{
    getrusage, getrusage_raw, spin_cpu_ns, times, wait4_rusage, waitid_rusage, Rusage,
    RUSAGE_CHILDREN, RUSAGE_SELF, RUSAGE_THREAD,
};
use forkvm_user::syscall::{sched_yield, WEXITED, WNOWAIT};

use super::*;

/// An address no scenario maps: writes there are EFAULT.
const BAD_ADDR: usize = 8;
/// CPU time the spinning children and threads use.
const SPIN_NS: u64 = 30 * MS;
/// What their usage must at least show of it.
const SPIN_MIN_US: u64 = 20_000;
/// `waitid`'s P_PID.
const P_PID: u32 = 1;

pub const SCENARIOS: &[(&str, Scenario)] = &[
    ("getrusage-bad-who", bad_who),
    ("getrusage-bad-pointer", bad_pointer),
    ("wait4-rusage-spinning-child", wait4_spinning_child),
    ("rusage-children-after-reap", children_after_reap),
    ("rusage-self-includes-threads", self_includes_threads),
    ("times-sanity", times_sanity),
    ("rusage-nvcsw-after-sleep", nvcsw_after_sleep),
];

fn cpu_us(usage: &Rusage) -> u64 {
    usage.utime.as_micros() + usage.stime.as_micros()
}

fn usage_of(who: i32) -> Result<Rusage, Msg> {
    getrusage(who).map_err(|e| msg!("getrusage({who}): {e}"))
}

/// `who` is an int and one of three values, checked before the pointer.
fn bad_who(_: &Ctx) -> Outcome {
    for who in [2isize, -2, 3, i32::MAX as isize, i32::MIN as isize] {
        // SAFETY: BAD_ADDR is unmapped; the call must fail before using it.
        let got = unsafe { getrusage_raw(who as i32, BAD_ADDR) };
        ensure!(
            got == Err(Errno::EINVAL),
            "getrusage({who}, bad pointer): {got:?}, expected EINVAL"
        );
    }
    // The upper half of the register is not part of the int.
    let mut usage = Rusage::default();
    // SAFETY: the kernel writes one struct rusage into the live local.
    let ret = unsafe {
        forkvm_user::syscall::syscall2(
            nr::GETRUSAGE,
            0x1_0000_0000usize | RUSAGE_THREAD as usize,
            &mut usage as *mut Rusage as usize,
        )
    };
    ensure!(ret == 0, "getrusage(1 << 32 | RUSAGE_THREAD): {}", Ret(ret));
    Ok(())
}

/// A pointer the kernel cannot write is EFAULT, NULL included.
fn bad_pointer(_: &Ctx) -> Outcome {
    for who in [RUSAGE_SELF, RUSAGE_CHILDREN, RUSAGE_THREAD] {
        for address in [0, BAD_ADDR] {
            // SAFETY: both addresses are unmapped.
            let got = unsafe { getrusage_raw(who, address) };
            ensure!(
                got == Err(Errno::EFAULT),
                "getrusage({who}, {address:#x}): {got:?}, expected EFAULT"
            );
        }
    }
    // SAFETY: as above.
    let got = forkvm_user::syscall::check(unsafe {
        forkvm_user::syscall::syscall1(nr::TIMES, BAD_ADDR)
    });
    ensure!(
        got == Err(Errno::EFAULT),
        "times(bad pointer): {got:?}, expected EFAULT"
    );
    Ok(())
}

/// A child that spun 30 ms of CPU reports at least 20 ms in `wait4`'s
/// rusage, most of it user time.
fn wait4_spinning_child(_: &Ctx) -> Outcome {
    let child = Child::spawn(|| {
        spin_cpu_ns(SPIN_NS);
        0
    })?;
    let pid = child.pid;
    let (got, status, usage) = wait4_rusage(pid as i32, 0).ctx("wait4 with rusage")?;
    child.reaped();
    ensure!(got == pid, "wait4 returned {got}, expected {pid}");
    expect_exit("the spinning child", status, 0)?;
    ensure!(
        cpu_us(&usage) >= SPIN_MIN_US,
        "the child's rusage shows {} us of CPU, expected >= {SPIN_MIN_US}",
        cpu_us(&usage)
    );
    ensure!(
        usage.utime.as_micros() > 0 && usage.utime.usec < 1_000_000,
        "the child's ru_utime is {:?}",
        usage.utime
    );
    ensure!(
        usage.nvcsw >= 0 && usage.nivcsw >= 0,
        "negative switch counts"
    );
    Ok(())
}

/// RUSAGE_CHILDREN counts a child once it is reaped, not while it is a
/// zombie (waitid with WNOWAIT reports its usage and leaves it), and then
/// with at least the usage its parent was told.
fn children_after_reap(_: &Ctx) -> Outcome {
    let before = usage_of(RUSAGE_CHILDREN)?;
    let child = Child::spawn(|| {
        spin_cpu_ns(SPIN_NS);
        0
    })?;
    let peek = waitid_rusage(P_PID, child.pid as i32, WEXITED | WNOWAIT)
        .ctx("waitid(WEXITED | WNOWAIT) with rusage")?;
    ensure!(
        cpu_us(&peek) >= SPIN_MIN_US,
        "waitid's rusage of the zombie shows {} us of CPU, expected >= {SPIN_MIN_US}",
        cpu_us(&peek)
    );
    let unreaped = usage_of(RUSAGE_CHILDREN)?;
    ensure!(
        cpu_us(&unreaped) == cpu_us(&before),
        "RUSAGE_CHILDREN grew from {} to {} us before the child was reaped",
        cpu_us(&before),
        cpu_us(&unreaped)
    );
    let (_, _, reported) = wait4_rusage(child.pid as i32, 0).ctx("wait4")?;
    child.reaped();
    let after = usage_of(RUSAGE_CHILDREN)?;
    let grew = cpu_us(&after) - cpu_us(&before);
    // Each timeval is rounded down to a microsecond.
    ensure!(
        grew + 2 >= cpu_us(&reported) && grew >= SPIN_MIN_US,
        "RUSAGE_CHILDREN grew by {grew} us, the reaped child reported {} us",
        cpu_us(&reported)
    );
    let (_, tms) = times().ctx("times")?;
    ensure!(
        tms.cutime + tms.cstime >= 2,
        "times: cutime {} + cstime {} ticks after reaping a child that spun 30 ms",
        tms.cutime,
        tms.cstime
    );
    Ok(())
}

extern "C" fn spinning_thread(_: usize) -> ! {
    spin_cpu_ns(SPIN_NS);
    exit(0)
}

/// RUSAGE_SELF is the whole process: a thread that spun and exited still
/// counts; RUSAGE_THREAD is the caller alone.
fn self_includes_threads(_: &Ctx) -> Outcome {
    let self_before = usage_of(RUSAGE_SELF)?;
    let thread_before = usage_of(RUSAGE_THREAD)?;
    let stack = ThreadStack::new()?;
    // SAFETY: the thread uses nothing of ours but its stack, joined below.
    unsafe { stack.clone(THREAD_FLAGS, spinning_thread, 0) }.ctx("clone(thread)")?;
    stack.join()?;
    let self_after = usage_of(RUSAGE_SELF)?;
    let thread_after = usage_of(RUSAGE_THREAD)?;
    let self_grew = cpu_us(&self_after) - cpu_us(&self_before);
    let thread_grew = cpu_us(&thread_after) - cpu_us(&thread_before);
    ensure!(
        self_grew >= SPIN_MIN_US,
        "RUSAGE_SELF grew by {self_grew} us over a thread that spun 30 ms"
    );
    ensure!(
        self_grew >= thread_grew + SPIN_MIN_US,
        "RUSAGE_THREAD grew by {thread_grew} us, RUSAGE_SELF by {self_grew}: the thread's time is not apart"
    );
    Ok(())
}

/// `times` returns a tick count that moves with the clock (at least 4
/// ticks over a 50 ms sleep) and the process's own time after spinning.
fn times_sanity(_: &Ctx) -> Outcome {
    let (start, _) = times().ctx("times")?;
    // SAFETY: NULL is allowed: only the tick count is returned.
    let null = unsafe { forkvm_user::syscall::syscall1(nr::TIMES, 0) };
    ensure!(
        null as u64 >= start,
        "times(NULL) {} is before times(&buf) {start}",
        null as u64
    );
    sleep_ns(50 * MS);
    spin_cpu_ns(SPIN_NS);
    let (end, tms) = times().ctx("times")?;
    ensure!(
        end >= start + 4,
        "times went from {start} to {end} ticks over a 50 ms sleep"
    );
    ensure!(
        tms.utime + tms.stime >= 2,
        "times: utime {} + stime {} ticks after spinning 30 ms",
        tms.utime,
        tms.stime
    );
    Ok(())
}

/// Each sleep blocks the caller once: a voluntary context switch for the
/// thread and its process.
fn nvcsw_after_sleep(_: &Ctx) -> Outcome {
    let thread_before = usage_of(RUSAGE_THREAD)?;
    let self_before = usage_of(RUSAGE_SELF)?;
    for _ in 0..3 {
        sleep_ns(MS);
    }
    let thread_after = usage_of(RUSAGE_THREAD)?;
    let self_after = usage_of(RUSAGE_SELF)?;
    ensure!(
        thread_after.nvcsw >= thread_before.nvcsw + 3,
        "RUSAGE_THREAD nvcsw went from {} to {} over 3 sleeps",
        thread_before.nvcsw,
        thread_after.nvcsw
    );
    ensure!(
        self_after.nvcsw >= self_before.nvcsw + 3 && self_after.nvcsw >= thread_after.nvcsw,
        "RUSAGE_SELF nvcsw {} -> {}, the thread's {}",
        self_before.nvcsw,
        self_after.nvcsw,
        thread_after.nvcsw
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// VM-only check (helper `rusage-yield-vm`): on one CPU, `sched_yield`s
// with another task runnable switch to it (not every one: EEVDF hands the
// CPU only to an eligible task, and a spinner that just ran a tick is not
// until the yielder forfeited enough virtual time); on the host's several
// CPUs that task may be running elsewhere, so this is not a scenario.

/// The helper argument that runs [`yield_checks`].
pub const YIELD_HELPER: &[u8] = b"rusage-yield-vm";

/// A `sched_yield` that hands the CPU to a runnable task is an involuntary
/// switch (Linux counts it in nivcsw: the task never blocked), not a
/// voluntary one.
fn yield_is_involuntary() -> Outcome {
    let spinner = Child::spawn(|| loop {
        core::hint::spin_loop();
    })?;
    // Let the spinner run once, so it is on the run queue for sure.
    sched_yield();
    let before = usage_of(RUSAGE_THREAD)?;
    // Yield until 5 switches happened (bounded: a yield costs ~30 us).
    let mut after = before;
    for _ in 0..20_000 {
        sched_yield();
        after = usage_of(RUSAGE_THREAD)?;
        if after.nivcsw >= before.nivcsw + 5 {
            break;
        }
    }
    drop(spinner);
    ensure!(
        after.nivcsw >= before.nivcsw + 5 && after.nvcsw == before.nvcsw,
        "yields to a runnable spinner: nivcsw {} -> {}, nvcsw {} -> {}",
        before.nivcsw,
        after.nivcsw,
        before.nvcsw,
        after.nvcsw
    );
    Ok(())
}

/// Runs the VM-only checks, one `ok`/`FAIL` line each; 1 if any failed.
pub fn yield_checks() -> i32 {
    // One CPU for us and the spinner (a guest with several CPUs).
    if let Err(e) = forkvm_user::sched::sched_setaffinity(0, 1) {
        println!("FAIL yield-is-involuntary: sched_setaffinity: {e}");
        return 1;
    }
    match yield_is_involuntary() {
        Ok(()) => {
            println!("ok yield-is-involuntary");
            0
        }
        Err(m) => {
            println!("FAIL yield-is-involuntary: {}", m.as_str());
            1
        }
    }
}
