//! CPU affinity: sched_setaffinity, sched_getaffinity and getcpu, their
//! checks in Linux's order (mask copy, lookup, ownership, an empty or
//! offline mask), the sizes the kernel reports, and inheritance across
//! fork and thread creation.
//!
//! Printed results do not depend on the machine's CPU count or the
//! kernel's mask size: every change happens in children, on the lowest
//! CPU the test runs on, and sizes are checked for their rules (a
//! multiple of a long, at most what was offered).

use forkvm_user::cred;
use forkvm_user::sched as s;
use forkvm_user::syscall::{check, syscall3};

use super::*;

const NOBODY: u32 = 65534;
/// An address no scenario maps.
const BAD_ADDR: usize = 8;

pub const SCENARIOS: &[(&str, Scenario)] = &[
    ("affinity-errors", errors),
    ("affinity-set-and-get", set_and_get),
    ("affinity-inherit", inherit),
    ("affinity-other-user", other_user),
];

fn expect_err<T: fmt::Debug>(what: &str, got: Result<T, Errno>, want: Errno) -> Outcome {
    match got {
        Err(e) if e == want => Ok(()),
        other => Err(msg!("{what}: {other:?}, expected {want}")),
    }
}

/// Runs `body` in a forked child that must exit 0; a failure message
/// comes back through a pipe.
fn in_child(what: &str, body: impl FnOnce() -> Outcome) -> Outcome {
    let (report_r, report_w) = pipe()?;
    let report = report_w.raw();
    let child = Child::spawn(move || match body() {
        Ok(()) => 0,
        Err(m) => {
            let _ = write_all(report, m.as_str().as_bytes());
            1
        }
    })?;
    drop(report_w);
    let mut buf = [0u8; 240];
    let n = read_full(report_r.raw(), &mut buf)?;
    let status = child.wait_bounded(what)?;
    ensure!(
        n == 0,
        "{what}: {}",
        core::str::from_utf8(&buf[..n]).unwrap_or("(bad message)")
    );
    expect_exit(what, status, 0)
}

/// A pid that names nobody: a child's, once it has been reaped.
fn gone_pid() -> Result<i32, Msg> {
    let child = Child::spawn(|| 0)?;
    let pid = child.pid() as i32;
    expect_exit("short-lived child", child.wait()?, 0)?;
    Ok(pid)
}

/// The lowest CPU this process may run on.
fn lowest_cpu() -> Result<u32, Msg> {
    let mask = s::sched_getaffinity(0).ctx("sched_getaffinity")?;
    ensure!(mask != 0, "empty affinity mask");
    Ok(mask.trailing_zeros())
}

fn errors(_: &Ctx) -> Outcome {
    let gone = gone_pid()?;
    let mut buf = [0u64; 16];
    let p = buf.as_mut_ptr() as usize;
    // getaffinity: the length first (it must hold every CPU id and be a
    // multiple of a long), then the task, then the copy.
    expect_err("get, len 0", s::sched_getaffinity_raw(0, 0, p), Errno::EINVAL)?;
    expect_err("get, len 9", s::sched_getaffinity_raw(0, 9, p), Errno::EINVAL)?;
    expect_err("get, len 12", s::sched_getaffinity_raw(0, 12, p), Errno::EINVAL)?;
    expect_err("get, len 0, no task", s::sched_getaffinity_raw(gone, 0, p), Errno::EINVAL)?;
    expect_err("get, no task", s::sched_getaffinity_raw(gone, 128, p), Errno::ESRCH)?;
    expect_err("get, pid -1", s::sched_getaffinity_raw(-1, 128, p), Errno::ESRCH)?;
    expect_err("get, bad buffer", s::sched_getaffinity_raw(0, 128, BAD_ADDR), Errno::EFAULT)?;
    expect_err(
        "get, bad buffer, no task",
        s::sched_getaffinity_raw(gone, 128, BAD_ADDR),
        Errno::ESRCH,
    )?;
    // setaffinity: the copy first, then the task, then the mask.
    let cpu = lowest_cpu()?;
    let one = 1u64 << cpu;
    let q = &one as *const u64 as usize;
    expect_err("set, bad mask", s::sched_setaffinity_raw(0, 8, BAD_ADDR), Errno::EFAULT)?;
    expect_err(
        "set, bad mask, no task",
        s::sched_setaffinity_raw(gone, 8, BAD_ADDR),
        Errno::EFAULT,
    )?;
    expect_err("set, no task", s::sched_setaffinity_raw(gone, 8, q), Errno::ESRCH)?;
    expect_err("set, pid -1", s::sched_setaffinity_raw(-1, 8, q), Errno::ESRCH)?;
    expect_err("set, empty mask", s::sched_setaffinity(0, 0), Errno::EINVAL)?;
    expect_err("set, len 0", s::sched_setaffinity_raw(0, 0, q), Errno::EINVAL)?;
    // A mask naming only CPU 1023: beyond every CPU this runs on, or cut
    // off with the rest of a longer mask than the kernel's.
    let mut far = [0u64; 16];
    far[15] = 1 << 63;
    expect_err(
        "set, only CPU 1023",
        s::sched_setaffinity_raw(0, 128, far.as_ptr() as usize),
        Errno::EINVAL,
    )?;
    // getcpu stores what it is given a place for.
    expect_err(
        "getcpu, bad cpu pointer",
        // SAFETY: the kernel checks the pointer.
        check(unsafe { syscall3(nr::GETCPU, BAD_ADDR, 0, 0) }),
        Errno::EFAULT,
    )?;
    ensure!(
        // SAFETY: no pointer.
        check(unsafe { syscall3(nr::GETCPU, 0, 0, 0) }) == Ok(0),
        "getcpu(NULL, NULL, NULL) is not 0"
    );
    Ok(())
}

fn set_and_get(_: &Ctx) -> Outcome {
    let mut buf = [0u64; 16];
    let size = s::sched_getaffinity_raw(0, 128, buf.as_mut_ptr() as usize).ctx("get")?;
    ensure!(
        (8..=128).contains(&size) && size.is_multiple_of(8),
        "sched_getaffinity stored {size} bytes of 128"
    );
    let (now, node) = s::getcpu().ctx("getcpu")?;
    ensure!(buf[0] & (1 << now) != 0, "getcpu says CPU {now}, outside the mask {:#x}", buf[0]);
    ensure!(node == 0, "getcpu: node {node}");
    let cpu = lowest_cpu()?;
    in_child("pinned child", || {
        s::sched_setaffinity(0, 1 << cpu).ctx("set to one CPU")?;
        ensure!(
            s::sched_getaffinity(0).ctx("get")? == 1 << cpu,
            "the mask is not the one CPU set"
        );
        // It runs there from the call's return on.
        let (now, _) = s::getcpu().ctx("getcpu")?;
        ensure!(now == cpu, "pinned to CPU {cpu}, runs on {now}");
        // A 1-byte mask is read as is, the rest of the kernel's zeroed.
        if cpu < 8 {
            let byte = 1u8 << cpu;
            s::sched_setaffinity_raw(0, 1, &byte as *const u8 as usize).ctx("1-byte mask")?;
            ensure!(s::sched_getaffinity(0).ctx("get")? == 1 << cpu, "after a 1-byte mask");
        }
        // Extra CPUs that do not exist are dropped from what is reported.
        s::sched_setaffinity(0, u64::MAX).ctx("set to all")?;
        let all = s::sched_getaffinity(0).ctx("get")?;
        ensure!(all & (1 << cpu) != 0, "all CPUs: {all:#x}");
        Ok(())
    })
}

extern "C" fn thread_reports_mask(arg: usize) -> ! {
    // SAFETY: the creator joins us before the word goes away.
    let word: &AtomicU64 = unsafe { shared(arg) };
    word.store(s::sched_getaffinity(0).unwrap_or(0), Ordering::Relaxed);
    exit(0)
}

fn inherit(_: &Ctx) -> Outcome {
    let cpu = lowest_cpu()?;
    in_child("pinned parent", || {
        s::sched_setaffinity(0, 1 << cpu).ctx("set")?;
        // fork: the child starts with the parent's mask.
        let (report_r, report_w) = pipe()?;
        let w = report_w.raw();
        let child = Child::spawn(move || {
            let mask = s::sched_getaffinity(0).unwrap_or(0);
            let _ = write_all(w, &mask.to_le_bytes());
            0
        })?;
        drop(report_w);
        let mut bytes = [0u8; 8];
        read_full(report_r.raw(), &mut bytes)?;
        expect_exit("child", child.wait_bounded("child")?, 0)?;
        ensure!(u64::from_le_bytes(bytes) == 1 << cpu, "fork child's mask");
        // A thread too.
        let stack = ThreadStack::new()?;
        let word = AtomicU64::new(u64::MAX);
        // SAFETY: the thread is joined before `stack` and `word` go.
        unsafe {
            stack.clone(
                THREAD_FLAGS,
                thread_reports_mask,
                &word as *const _ as usize,
            )
        }
        .ctx("clone thread")?;
        stack.join()?;
        ensure!(word.load(Ordering::Relaxed) == 1 << cpu, "thread's mask");
        Ok(())
    })
}

fn other_user(_: &Ctx) -> Outcome {
    let parent = getpid() as i32;
    let mask = s::sched_getaffinity(0).ctx("get")?;
    in_child("another user", || {
        cred::setgid(NOBODY).ctx("setgid")?;
        cred::setuid(NOBODY).ctx("setuid")?;
        // Reading needs no permission; changing root's task does.
        ensure!(s::sched_getaffinity(parent).ctx("get root's")? == mask, "root's mask");
        expect_err("set root's", s::sched_setaffinity(parent, mask), Errno::EPERM)?;
        // Its own is fine.
        s::sched_setaffinity(0, mask).ctx("set own")?;
        Ok(())
    })
}
