//! Scheduling policies and nice values: sched_setscheduler/getscheduler,
//! sched_setparam/getparam, sched_setattr/getattr (sizes, flags),
//! sched_get_priority_max/min, sched_rr_get_interval, setpriority and
//! getpriority, with their permission rules (CAP_SYS_NICE, RLIMIT_NICE,
//! RLIMIT_RTPRIO, another user's task) and what fork, vfork, clone and
//! threads inherit (SCHED_RESET_ON_FORK).
//!
//! The program's own policy and nice are left alone (on the host they
//! are the test runner's): every change happens in children. The
//! scenarios that need CAP_SYS_NICE (root in the guest, and on hosts whose
//! root has it) skip those parts without it, with a `skip` line. Not checked here because they
//! depend on the host: a fair task's slice (`sched_runtime`,
//! `sched_rr_get_interval`), utilization clamping (kernel configuration)
//! and SCHED_DEADLINE as root (the guest has no deadline class).

use forkvm_user::cred::{self, Rlimit};
use forkvm_user::rusage::{
    getrusage, spin_cpu_ns, Timeval, RUSAGE_CHILDREN, RUSAGE_SELF, RUSAGE_THREAD,
};
use forkvm_user::sched::{self as s, SchedAttr};
use forkvm_user::syscall::{check, setpgid, syscall2, syscall3, syscall4};

use super::*;

const NOBODY: u32 = 65534;
/// A user id no host process is likely to run as (PRIO_USER targets it).
const PRIO_TEST_UID: u32 = 4243;
/// An address no scenario maps: reads and writes there are EFAULT.
const BAD_ADDR: usize = 8;

pub const SCENARIOS: &[(&str, Scenario)] = &[
    ("sched-setscheduler-errors", setscheduler_errors),
    ("sched-priority-range", priority_range),
    ("sched-policies-as-root", policies_as_root),
    ("sched-attr-sizes", attr_sizes),
    ("sched-attr-flags", attr_flags),
    ("sched-unprivileged", unprivileged),
    ("sched-rlimit-rtprio", rlimit_rtprio),
    ("sched-rlimit-nice", rlimit_nice),
    ("sched-other-user", other_user),
    ("sched-user-namespace", user_namespace),
    ("sched-fair-slice", fair_slice),
    ("sched-proc-stat", proc_stat),
    ("sched-inherit", inherit),
    ("sched-reset-on-fork", reset_on_fork),
    ("getpriority-encoding", getpriority_encoding),
    ("priority-pgrp-user", priority_pgrp_user),
];

/// Runs `body` in a forked child; its failure message comes back through
/// a pipe and fails the scenario.
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

/// Sets `resource`'s soft and hard limit to `value`. Raising a hard limit
/// needs CAP_SYS_RESOURCE, which some hosts' root lacks (this CI host's,
/// whose hard RLIMIT_NICE and RLIMIT_RTPRIO are 0): `Ok(false)` then, and
/// the caller says it skipped the part; the guest's root always can.
fn raise_limit(resource: u32, value: u64) -> Result<bool, Msg> {
    let limit = Rlimit {
        cur: value,
        max: value,
    };
    match cred::prlimit64(0, resource, Some(limit)) {
        Ok(_) => Ok(true),
        Err(Errno::EPERM) => Ok(false),
        Err(e) => Err(msg!("prlimit64({resource}, {value}): {e}")),
    }
}

/// What [`skipped`] says of the parts that need root's capabilities.
const NEEDS_CAP_SYS_NICE: &str = "the rest needs CAP_SYS_NICE";
const NEEDS_CAP_SYS_RESOURCE: &str = "needs CAP_SYS_RESOURCE to raise a hard limit";

/// Whether this process may use CAP_SYS_NICE (over the whole machine).
fn has_cap_sys_nice() -> Result<bool, Msg> {
    const CAP_SYS_NICE: u64 = 1 << 23;
    Ok(cred::capget(0).ctx("capget")?.effective & CAP_SYS_NICE != 0)
}

/// setgid+setuid to `uid`: no capabilities left.
fn become_user(uid: u32) -> Outcome {
    cred::setgid(uid).ctx("setgid")?;
    cred::setuid(uid).ctx("setuid")
}

fn expect_err<T: fmt::Debug>(what: &str, got: Result<T, Errno>, want: Errno) -> Outcome {
    match got {
        Err(e) if e == want => Ok(()),
        other => Err(msg!("{what}: {other:?}, expected {want}")),
    }
}

fn expect_ok<T: fmt::Debug + PartialEq + Copy>(
    what: &str,
    got: Result<T, Errno>,
    want: T,
) -> Outcome {
    ensure!(got == Ok(want), "{what}: {got:?}, expected Ok({want:?})");
    Ok(())
}

/// `(policy with the reset flag, rt priority, nice)` of thread `pid`.
fn sched_of(pid: i32) -> Result<(i32, i32, i32), Msg> {
    Ok((
        s::sched_getscheduler(pid).ctx("sched_getscheduler")?,
        s::sched_getparam(pid).ctx("sched_getparam")?,
        s::nice_of(pid).ctx("getpriority")?,
    ))
}

fn raw_setscheduler(pid: i32, policy: i32, param: usize) -> Result<usize, Errno> {
    // SAFETY: `param` is either a live int or an address that faults.
    check(unsafe {
        syscall3(
            nr::SCHED_SETSCHEDULER,
            pid as usize,
            policy as usize,
            param,
        )
    })
}

fn raw_getparam(pid: i32, param: usize) -> Result<usize, Errno> {
    // SAFETY: `param` is either a live int or an address that faults.
    check(unsafe { syscall2(nr::SCHED_GETPARAM, pid as usize, param) })
}

fn raw_setattr(pid: i32, attr: usize, flags: usize) -> Result<usize, Errno> {
    // SAFETY: `attr` is live memory of the size its size field says, or
    // an address that faults.
    check(unsafe { syscall3(nr::SCHED_SETATTR, pid as usize, attr, flags) })
}

fn raw_getattr(pid: i32, attr: usize, size: usize, flags: usize) -> Result<usize, Errno> {
    // SAFETY: `attr` has `size` writable bytes, or is an address that faults.
    check(unsafe { syscall4(nr::SCHED_GETATTR, pid as usize, attr, size, flags) })
}

/// A pid that names nobody: a child's, once it has been reaped.
fn gone_pid() -> Result<i32, Msg> {
    let child = Child::spawn(|| 0)?;
    let pid = child.pid() as i32;
    expect_exit("short-lived child", child.wait()?, 0)?;
    Ok(pid)
}

/// The argument checks of sched_setscheduler, sched_setparam,
/// sched_getscheduler and sched_getparam, in Linux's order: the pid and
/// pointer (EINVAL), the copy (EFAULT), the lookup (ESRCH), then the
/// policy and priority (EINVAL).
fn setscheduler_errors(_: &Ctx) -> Outcome {
    let gone = gone_pid()?;
    let zero = 0i32;
    let p = &zero as *const i32 as usize;
    expect_err("policy -1", raw_setscheduler(0, -1, p), Errno::EINVAL)?;
    expect_err(
        "policy 4 (SCHED_ISO)",
        raw_setscheduler(0, 4, p),
        Errno::EINVAL,
    )?;
    expect_err("policy 100", raw_setscheduler(0, 100, p), Errno::EINVAL)?;
    // SCHED_EXT is known, but without a BPF scheduler loaded it cannot be
    // set.
    expect_err(
        "policy 7 (SCHED_EXT)",
        raw_setscheduler(0, 7, p),
        Errno::EINVAL,
    )?;
    expect_err("pid -1", raw_setscheduler(-1, 0, p), Errno::EINVAL)?;
    expect_err("NULL param", raw_setscheduler(0, 0, 0), Errno::EINVAL)?;
    expect_err("bad param", raw_setscheduler(0, 0, BAD_ADDR), Errno::EFAULT)?;
    expect_err(
        "bad param, no pid",
        raw_setscheduler(gone, 0, BAD_ADDR),
        Errno::EFAULT,
    )?;
    expect_err("no such pid", raw_setscheduler(gone, 100, p), Errno::ESRCH)?;
    expect_err(
        "NORMAL with priority 5",
        s::sched_setscheduler(0, s::SCHED_NORMAL, 5),
        Errno::EINVAL,
    )?;
    expect_err(
        "FIFO with priority 0",
        s::sched_setscheduler(0, s::SCHED_FIFO, 0),
        Errno::EINVAL,
    )?;
    expect_err(
        "FIFO with priority 100",
        s::sched_setscheduler(0, s::SCHED_FIFO, 100),
        Errno::EINVAL,
    )?;
    expect_err(
        "RR with priority -1",
        s::sched_setscheduler(0, s::SCHED_RR, -1),
        Errno::EINVAL,
    )?;
    expect_err(
        "setparam 5 for NORMAL",
        s::sched_setparam(0, 5),
        Errno::EINVAL,
    )?;
    expect_err("setparam NULL", raw_setscheduler_param(0, 0), Errno::EINVAL)?;
    expect_err(
        "setparam no such pid",
        s::sched_setparam(gone, 0),
        Errno::ESRCH,
    )?;
    expect_ok("setparam 0 for NORMAL", s::sched_setparam(0, 0), ())?;
    expect_err("getscheduler(-1)", s::sched_getscheduler(-1), Errno::EINVAL)?;
    expect_err(
        "getscheduler(no such pid)",
        s::sched_getscheduler(gone),
        Errno::ESRCH,
    )?;
    expect_err("getparam(-1)", s::sched_getparam(-1), Errno::EINVAL)?;
    expect_err("getparam NULL", raw_getparam(0, 0), Errno::EINVAL)?;
    expect_err(
        "getparam bad pointer",
        raw_getparam(0, BAD_ADDR),
        Errno::EFAULT,
    )?;
    expect_err(
        "getparam(no such pid)",
        s::sched_getparam(gone),
        Errno::ESRCH,
    )?;
    expect_err(
        "rr_get_interval(-1)",
        s::sched_rr_get_interval(-1),
        Errno::EINVAL,
    )?;
    expect_err(
        "rr_get_interval(no such pid)",
        s::sched_rr_get_interval(gone),
        Errno::ESRCH,
    )?;
    // SAFETY: the kernel writes to an address that faults.
    let bad = check(unsafe { syscall2(nr::SCHED_RR_GET_INTERVAL, 0, BAD_ADDR) });
    expect_err("rr_get_interval bad pointer", bad, Errno::EFAULT)
}

fn raw_setscheduler_param(pid: i32, param: usize) -> Result<usize, Errno> {
    // SAFETY: `param` is 0 here: nothing is read.
    check(unsafe { syscall2(nr::SCHED_SETPARAM, pid as usize, param) })
}

/// The BPF-extensible class (Linux 6.12+), which the priority ranges know.
const SCHED_EXT: i32 = 7;

/// sched_get_priority_max/min for every policy (SCHED_EXT included, 0 as
/// for the fair ones), and unknown ones (8 is the first past SCHED_EXT).
fn priority_range(_: &Ctx) -> Outcome {
    for (policy, max, min) in [
        (s::SCHED_NORMAL, 0, 0),
        (s::SCHED_FIFO, 99, 1),
        (s::SCHED_RR, 99, 1),
        (s::SCHED_BATCH, 0, 0),
        (s::SCHED_IDLE, 0, 0),
        (s::SCHED_DEADLINE, 0, 0),
        (SCHED_EXT, 0, 0),
    ] {
        expect_ok(
            "sched_get_priority_max",
            s::sched_get_priority_max(policy),
            max,
        )?;
        expect_ok(
            "sched_get_priority_min",
            s::sched_get_priority_min(policy),
            min,
        )?;
    }
    for policy in [4, 8, -1, 100, s::SCHED_FIFO | s::SCHED_RESET_ON_FORK] {
        expect_err(
            "max of an unknown policy",
            s::sched_get_priority_max(policy),
            Errno::EINVAL,
        )?;
        expect_err(
            "min of an unknown policy",
            s::sched_get_priority_min(policy),
            Errno::EINVAL,
        )?;
    }
    Ok(())
}

/// As root (CAP_SYS_NICE): every policy can be set and reads back through
/// getscheduler, getparam, getattr, getpriority and rr_get_interval; the
/// nice value stays under a real-time policy.
fn policies_as_root(_: &Ctx) -> Outcome {
    if !has_cap_sys_nice()? {
        skipped(NEEDS_CAP_SYS_NICE);
        return Ok(());
    }
    in_child("policies", || {
        s::setpriority(s::PRIO_PROCESS, 0, 4).ctx("setpriority 4")?;
        s::sched_setscheduler(0, s::SCHED_FIFO, 10).ctx("FIFO 10")?;
        ensure!(
            sched_of(0)? == (s::SCHED_FIFO, 10, 4),
            "FIFO 10 at nice 4: {:?}",
            sched_of(0)?
        );
        let attr = s::sched_getattr(0).ctx("getattr")?;
        ensure!(
            (
                attr.size,
                attr.sched_policy,
                attr.sched_flags,
                attr.sched_priority,
                attr.sched_nice
            ) == (56, 1, 0, 10, 0),
            "getattr of FIFO 10: {attr:?}"
        );
        expect_ok("FIFO interval", s::sched_rr_get_interval(0), 0)?;
        s::sched_setparam(0, 20).ctx("setparam 20")?;
        ensure!(
            sched_of(0)? == (s::SCHED_FIFO, 20, 4),
            "setparam 20: {:?}",
            sched_of(0)?
        );
        expect_err(
            "setparam 0 under FIFO",
            s::sched_setparam(0, 0),
            Errno::EINVAL,
        )?;
        s::sched_setscheduler(0, s::SCHED_RR, 5).ctx("RR 5")?;
        ensure!(
            sched_of(0)? == (s::SCHED_RR, 5, 4),
            "RR 5: {:?}",
            sched_of(0)?
        );
        expect_ok(
            "RR interval (100 ms)",
            s::sched_rr_get_interval(0),
            100_000_000,
        )?;
        // A nice change under a real-time policy is kept.
        s::setpriority(s::PRIO_PROCESS, 0, -3).ctx("setpriority -3 under RR")?;
        ensure!(
            sched_of(0)? == (s::SCHED_RR, 5, -3),
            "nice under RR: {:?}",
            sched_of(0)?
        );
        for policy in [s::SCHED_BATCH, s::SCHED_IDLE, s::SCHED_NORMAL] {
            s::sched_setscheduler(0, policy, 0).ctx("a fair policy")?;
            ensure!(
                sched_of(0)? == (policy, 0, -3),
                "policy {policy}: {:?}",
                sched_of(0)?
            );
        }
        let attr = s::sched_getattr(0).ctx("getattr")?;
        ensure!(
            (attr.sched_policy, attr.sched_nice, attr.sched_priority) == (0, -3, 0),
            "getattr of NORMAL at nice -3: {attr:?}"
        );
        s::sched_setscheduler(0, s::SCHED_FIFO | s::SCHED_RESET_ON_FORK, 1).ctx("FIFO|RESET")?;
        expect_ok(
            "getscheduler with the reset flag",
            s::sched_getscheduler(0),
            s::SCHED_FIFO | s::SCHED_RESET_ON_FORK,
        )?;
        let attr = s::sched_getattr(0).ctx("getattr")?;
        ensure!(
            attr.sched_flags == s::SCHED_FLAG_RESET_ON_FORK,
            "flags {attr:?}"
        );
        // Root may clear the flag again.
        s::sched_setscheduler(0, s::SCHED_FIFO, 1).ctx("FIFO without RESET")?;
        expect_ok("flag cleared", s::sched_getscheduler(0), s::SCHED_FIFO)
    })
}

/// sched_setattr's and sched_getattr's sizes: 0 is the first version
/// (48), less than 48 or more than a page is E2BIG with the kernel's size
/// written back, a larger structure is fine if its tail is zero (E2BIG
/// otherwise, EFAULT if it cannot be read); getattr writes only what the
/// caller's size allows and zeroes what lies beyond its own structure.
fn attr_sizes(_: &Ctx) -> Outcome {
    let gone = gone_pid()?;
    let map = Mapping::new(2 * PAGE)?;
    let base = map.addr();
    let attr_at = |addr: usize, size: u32| {
        let attr = SchedAttr {
            size,
            ..Default::default()
        };
        // SAFETY: `addr` is inside the mapping with 56 bytes of room, and
        // no Rust reference to that memory exists.
        unsafe { (addr as *mut SchedAttr).write_unaligned(attr) };
    };
    let size_at = |addr: usize| {
        // SAFETY: as above; reads the size field back.
        unsafe { (addr as *const u32).read_unaligned() }
    };
    expect_err("NULL attr", raw_setattr(0, 0, 0), Errno::EINVAL)?;
    attr_at(base, 56);
    expect_err("flags 1", raw_setattr(0, base, 1), Errno::EINVAL)?;
    expect_err("pid -1", raw_setattr(-1, base, 0), Errno::EINVAL)?;
    expect_err("bad pointer", raw_setattr(0, BAD_ADDR, 0), Errno::EFAULT)?;
    expect_err("no such pid", raw_setattr(gone, base, 0), Errno::ESRCH)?;
    for size in [0, 48, 56] {
        attr_at(base, size);
        expect_ok("a known size", raw_setattr(0, base, 0), 0)?;
    }
    for size in [1, 47, 4097, u32::MAX] {
        attr_at(base, size);
        expect_err("size out of range", raw_setattr(0, base, 0), Errno::E2BIG)?;
        ensure!(
            size_at(base) == 56,
            "size {size}: written back {}",
            size_at(base)
        );
    }
    attr_at(base, 64);
    expect_ok("size 64, zero tail", raw_setattr(0, base, 0), 0)?;
    ensure!(size_at(base) == 64, "size 64 changed to {}", size_at(base));
    map.set(60, 1);
    expect_err(
        "size 64, non-zero tail",
        raw_setattr(0, base, 0),
        Errno::E2BIG,
    )?;
    ensure!(size_at(base) == 56, "E2BIG wrote back {}", size_at(base));
    map.set(60, 0);
    attr_at(base, PAGE as u32);
    map.set(PAGE - 1, 1);
    expect_err(
        "size 4096, last byte set",
        raw_setattr(0, base, 0),
        Errno::E2BIG,
    )?;
    // The tail runs into a page that cannot be read.
    let edge = base + PAGE - 56;
    // SAFETY: nothing lives in the second page of our own mapping.
    unsafe { mprotect((base + PAGE) as *mut u8, PAGE, 0) }.ctx("mprotect")?;
    attr_at(edge, 64);
    expect_err("tail unreadable", raw_setattr(0, edge, 0), Errno::EFAULT)?;
    attr_at(edge, 56);
    expect_ok("size 56 at the edge", raw_setattr(0, edge, 0), 0)?;
    // SAFETY: gives the page its access back.
    unsafe { mprotect((base + PAGE) as *mut u8, PAGE, PROT_READ | PROT_WRITE) }.ctx("mprotect")?;

    // sched_getattr.
    expect_err("getattr NULL", raw_getattr(0, 0, 56, 0), Errno::EINVAL)?;
    expect_err(
        "getattr size 47",
        raw_getattr(0, base, 47, 0),
        Errno::EINVAL,
    )?;
    expect_err(
        "getattr size 4097",
        raw_getattr(0, base, 4097, 0),
        Errno::EINVAL,
    )?;
    expect_err(
        "getattr flags 1",
        raw_getattr(0, base, 56, 1),
        Errno::EINVAL,
    )?;
    expect_err(
        "getattr pid -1",
        raw_getattr(-1, base, 56, 0),
        Errno::EINVAL,
    )?;
    expect_err(
        "getattr no such pid",
        raw_getattr(gone, base, 56, 0),
        Errno::ESRCH,
    )?;
    expect_err(
        "getattr bad pointer",
        raw_getattr(0, BAD_ADDR, 56, 0),
        Errno::EFAULT,
    )?;
    for off in 0..80 {
        map.set(off, 0xaa);
    }
    expect_ok("getattr size 48", raw_getattr(0, base, 48, 0), 0)?;
    ensure!(
        size_at(base) == 48,
        "getattr 48 reported size {}",
        size_at(base)
    );
    ensure!(map.get(48) == 0xaa, "getattr 48 wrote byte 48");
    expect_ok("getattr size 72", raw_getattr(0, base, 72, 0), 0)?;
    ensure!(
        size_at(base) == 56,
        "getattr 72 reported size {}",
        size_at(base)
    );
    ensure!(
        (56..72).all(|off| map.get(off) == 0) && map.get(72) == 0xaa,
        "getattr 72: tail not zeroed or too much written"
    );
    Ok(())
}

/// sched_setattr's flags and fields: unknown flags, a negative or unknown
/// policy, utilization clamping with the first version's size (EINVAL),
/// KEEP_POLICY / KEEP_PARAMS, the nice value clamped to -20..19, reset on
/// fork; SCHED_DEADLINE's parameter checks (EINVAL) and, unprivileged,
/// EPERM.
fn attr_flags(_: &Ctx) -> Outcome {
    let set = |attr: SchedAttr| s::sched_setattr(0, &attr);
    let normal = SchedAttr {
        size: 56,
        ..Default::default()
    };
    expect_err(
        "unknown flag",
        set(SchedAttr {
            sched_flags: 0x80,
            ..normal
        }),
        Errno::EINVAL,
    )?;
    expect_err(
        "policy -1",
        set(SchedAttr {
            sched_policy: u32::MAX,
            ..normal
        }),
        Errno::EINVAL,
    )?;
    expect_err(
        "policy 4",
        set(SchedAttr {
            sched_policy: 4,
            ..normal
        }),
        Errno::EINVAL,
    )?;
    expect_err(
        "util clamp with size 48",
        set(SchedAttr {
            size: 48,
            sched_flags: s::SCHED_FLAG_UTIL_CLAMP_MIN,
            ..normal
        }),
        Errno::EINVAL,
    )?;
    let dl = SchedAttr {
        sched_policy: s::SCHED_DEADLINE as u32,
        sched_runtime: 10_000_000,
        sched_deadline: 30_000_000,
        sched_period: 100_000_000,
        ..normal
    };
    expect_err(
        "deadline 0",
        set(SchedAttr {
            sched_deadline: 0,
            ..dl
        }),
        Errno::EINVAL,
    )?;
    expect_err(
        "runtime > deadline",
        set(SchedAttr {
            sched_runtime: 40_000_000,
            ..dl
        }),
        Errno::EINVAL,
    )?;
    expect_err(
        "deadline > period",
        set(SchedAttr {
            sched_period: 20_000_000,
            ..dl
        }),
        Errno::EINVAL,
    )?;
    expect_err(
        "runtime < 1024 ns",
        set(SchedAttr {
            sched_runtime: 1000,
            ..dl
        }),
        Errno::EINVAL,
    )?;
    expect_err(
        "period > 4.19 s",
        set(SchedAttr {
            sched_period: 5_000_000_000,
            ..dl
        }),
        Errno::EINVAL,
    )?;
    expect_err(
        "DL with a priority",
        set(SchedAttr {
            sched_priority: 1,
            ..dl
        }),
        Errno::EINVAL,
    )?;
    in_child("unprivileged deadline", || {
        become_user(NOBODY)?;
        expect_err("valid DL, unprivileged", set(dl), Errno::EPERM)
    })?;
    in_child("unprivileged nice via setattr", || {
        let zero = Rlimit { cur: 0, max: 0 };
        cred::prlimit64(0, s::RLIMIT_NICE, Some(zero)).ctx("RLIMIT_NICE 0")?;
        s::setpriority(s::PRIO_PROCESS, 0, 0).ctx("nice 0")?;
        become_user(NOBODY)?;
        expect_ok(
            "nice 5",
            set(SchedAttr {
                sched_nice: 5,
                ..normal
            }),
            (),
        )?;
        expect_ok("nice", s::nice_of(0), 5)?;
        // KEEP_PARAMS: Linux then changes neither the parameters nor the
        // policy, only the reset-on-fork flag (its permission checks use
        // the task's own parameters: nice -20 is not asked for).
        let batch = SchedAttr {
            sched_policy: s::SCHED_BATCH as u32,
            sched_flags: s::SCHED_FLAG_KEEP_PARAMS | s::SCHED_FLAG_RESET_ON_FORK,
            sched_nice: -20,
            ..normal
        };
        expect_ok("BATCH keeping params", set(batch), ())?;
        let reset = s::SCHED_RESET_ON_FORK;
        ensure!(
            sched_of(0)? == (reset, 0, 5),
            "after KEEP_PARAMS: {:?}",
            sched_of(0)?
        );
        s::sched_setscheduler(0, s::SCHED_BATCH | reset, 0).ctx("BATCH")?;
        // KEEP_POLICY changes the nice value only (and keeps the flag
        // whatever sched_flags says).
        let nicer = SchedAttr {
            sched_flags: s::SCHED_FLAG_KEEP_POLICY,
            sched_nice: 7,
            ..normal
        };
        expect_ok("nice 7 keeping the policy", set(nicer), ())?;
        ensure!(
            sched_of(0)? == (s::SCHED_BATCH | reset, 0, 7),
            "keep policy: {:?}",
            sched_of(0)?
        );
        expect_err(
            "nice 6 without RLIMIT_NICE",
            set(SchedAttr {
                sched_nice: 6,
                ..normal
            }),
            Errno::EPERM,
        )
    })?;
    if !has_cap_sys_nice()? {
        skipped(NEEDS_CAP_SYS_NICE);
        return Ok(());
    }
    in_child("nice clamped", || {
        expect_ok(
            "nice -100",
            set(SchedAttr {
                sched_nice: -100,
                ..normal
            }),
            (),
        )?;
        expect_ok("clamped to -20", s::nice_of(0), -20)?;
        expect_ok(
            "nice 100",
            set(SchedAttr {
                sched_nice: 100,
                ..normal
            }),
            (),
        )?;
        expect_ok("clamped to 19", s::nice_of(0), 19)?;
        let rr = SchedAttr {
            sched_policy: s::SCHED_RR as u32,
            sched_priority: 3,
            sched_flags: s::SCHED_FLAG_RESET_ON_FORK,
            ..normal
        };
        expect_ok("RR 3 reset-on-fork", set(rr), ())?;
        let attr = s::sched_getattr(0).ctx("getattr")?;
        ensure!(
            (attr.sched_policy, attr.sched_priority, attr.sched_flags) == (2, 3, 1),
            "getattr: {attr:?}"
        );
        expect_ok(
            "getscheduler",
            s::sched_getscheduler(0),
            s::SCHED_RR | s::SCHED_RESET_ON_FORK,
        )
    })
}

/// Without CAP_SYS_NICE and with both limits 0: no real-time policy, no
/// lower nice, no way back from SCHED_IDLE, no clearing reset-on-fork;
/// raising nice, fair policies and setting the flag are fine.
fn unprivileged(_: &Ctx) -> Outcome {
    in_child("unprivileged", || {
        let zero = Rlimit { cur: 0, max: 0 };
        cred::prlimit64(0, s::RLIMIT_RTPRIO, Some(zero)).ctx("RLIMIT_RTPRIO 0")?;
        cred::prlimit64(0, s::RLIMIT_NICE, Some(zero)).ctx("RLIMIT_NICE 0")?;
        s::setpriority(s::PRIO_PROCESS, 0, 0).ctx("nice 0")?;
        become_user(NOBODY)?;
        expect_err(
            "FIFO 1",
            s::sched_setscheduler(0, s::SCHED_FIFO, 1),
            Errno::EPERM,
        )?;
        expect_err(
            "RR 1",
            s::sched_setscheduler(0, s::SCHED_RR, 1),
            Errno::EPERM,
        )?;
        // The priority is checked before the permission.
        expect_err(
            "FIFO 100",
            s::sched_setscheduler(0, s::SCHED_FIFO, 100),
            Errno::EINVAL,
        )?;
        expect_ok("nice 3", s::setpriority(s::PRIO_PROCESS, 0, 3), ())?;
        expect_err(
            "nice back to 2",
            s::setpriority(s::PRIO_PROCESS, 0, 2),
            Errno::EACCES,
        )?;
        expect_ok("same nice", s::setpriority(s::PRIO_PROCESS, 0, 3), ())?;
        expect_ok("BATCH", s::sched_setscheduler(0, s::SCHED_BATCH, 0), ())?;
        expect_ok("IDLE", s::sched_setscheduler(0, s::SCHED_IDLE, 0), ())?;
        expect_err(
            "IDLE -> NORMAL",
            s::sched_setscheduler(0, s::SCHED_NORMAL, 0),
            Errno::EPERM,
        )?;
        expect_ok("IDLE again", s::sched_setscheduler(0, s::SCHED_IDLE, 0), ())?;
        expect_ok(
            "IDLE|RESET",
            s::sched_setscheduler(0, s::SCHED_IDLE | s::SCHED_RESET_ON_FORK, 0),
            (),
        )?;
        expect_err(
            "clearing RESET",
            s::sched_setscheduler(0, s::SCHED_IDLE, 0),
            Errno::EPERM,
        )?;
        expect_ok(
            "getscheduler",
            s::sched_getscheduler(0),
            s::SCHED_IDLE | s::SCHED_RESET_ON_FORK,
        )
    })
}

/// RLIMIT_RTPRIO lets an unprivileged task take a real-time policy up to
/// the limit; a lower priority is always allowed, a higher one within the
/// limit; CAP_SYS_NICE ignores the limit.
fn rlimit_rtprio(_: &Ctx) -> Outcome {
    in_child("RLIMIT_RTPRIO 10", || {
        if !raise_limit(s::RLIMIT_RTPRIO, 10)? {
            skipped(NEEDS_CAP_SYS_RESOURCE);
            return Ok(());
        }
        s::setpriority(s::PRIO_PROCESS, 0, 0).ctx("nice 0")?;
        become_user(NOBODY)?;
        expect_err(
            "FIFO 11",
            s::sched_setscheduler(0, s::SCHED_FIFO, 11),
            Errno::EPERM,
        )?;
        expect_ok("FIFO 5", s::sched_setscheduler(0, s::SCHED_FIFO, 5), ())?;
        expect_ok("FIFO 10", s::sched_setparam(0, 10), ())?;
        expect_err("FIFO 11 from 10", s::sched_setparam(0, 11), Errno::EPERM)?;
        expect_ok("RR 2", s::sched_setscheduler(0, s::SCHED_RR, 2), ())?;
        ensure!(
            sched_of(0)? == (s::SCHED_RR, 2, 0),
            "RR 2: {:?}",
            sched_of(0)?
        );
        cred::prlimit64(0, s::RLIMIT_RTPRIO, Some(Rlimit { cur: 0, max: 0 })).ctx("limit 0")?;
        // At limit 0 the priority may still go down, not the policy change.
        expect_ok("RR 1 at limit 0", s::sched_setparam(0, 1), ())?;
        expect_err(
            "FIFO 1 at limit 0",
            s::sched_setscheduler(0, s::SCHED_FIFO, 1),
            Errno::EPERM,
        )?;
        expect_ok(
            "back to NORMAL",
            s::sched_setscheduler(0, s::SCHED_NORMAL, 0),
            (),
        )
    })?;
    if !has_cap_sys_nice()? {
        skipped(NEEDS_CAP_SYS_NICE);
        return Ok(());
    }
    in_child("root ignores RLIMIT_RTPRIO", || {
        let zero = Rlimit { cur: 0, max: 0 };
        cred::prlimit64(0, s::RLIMIT_RTPRIO, Some(zero)).ctx("RLIMIT_RTPRIO 0")?;
        expect_ok(
            "FIFO 50 as root",
            s::sched_setscheduler(0, s::SCHED_FIFO, 50),
            (),
        )
    })
}

/// RLIMIT_NICE (as 20 - nice) bounds how far an unprivileged task may
/// lower its nice value (EACCES from setpriority, EPERM from
/// sched_setattr); CAP_SYS_NICE ignores it.
fn rlimit_nice(_: &Ctx) -> Outcome {
    in_child("RLIMIT_NICE 25", || {
        if !raise_limit(s::RLIMIT_NICE, 25)? {
            skipped(NEEDS_CAP_SYS_RESOURCE);
            return Ok(());
        }
        s::setpriority(s::PRIO_PROCESS, 0, 10).ctx("nice 10")?;
        become_user(NOBODY)?;
        expect_ok("nice -5", s::setpriority(s::PRIO_PROCESS, 0, -5), ())?;
        expect_err(
            "nice -6",
            s::setpriority(s::PRIO_PROCESS, 0, -6),
            Errno::EACCES,
        )?;
        let attr = SchedAttr {
            size: 56,
            sched_nice: -6,
            ..Default::default()
        };
        expect_err("setattr nice -6", s::sched_setattr(0, &attr), Errno::EPERM)?;
        // SCHED_IDLE counts as nice 20: back to NORMAL is allowed when the
        // limit allows the current nice value (-5 here).
        expect_ok("IDLE", s::sched_setscheduler(0, s::SCHED_IDLE, 0), ())?;
        expect_ok(
            "IDLE -> NORMAL",
            s::sched_setscheduler(0, s::SCHED_NORMAL, 0),
            (),
        )?;
        expect_ok("nice", s::nice_of(0), -5)
    })?;
    if !has_cap_sys_nice()? {
        skipped(NEEDS_CAP_SYS_NICE);
        return Ok(());
    }
    in_child("root ignores RLIMIT_NICE", || {
        let zero = Rlimit { cur: 0, max: 0 };
        cred::prlimit64(0, s::RLIMIT_NICE, Some(zero)).ctx("RLIMIT_NICE 0")?;
        expect_ok(
            "nice -10 as root",
            s::setpriority(s::PRIO_PROCESS, 0, -10),
            (),
        )?;
        expect_ok("nice", s::nice_of(0), -10)
    })
}

/// Another user's task: EPERM for setpriority and sched_setscheduler
/// (reading is allowed); a task of one's own uid can be changed.
fn other_user(_: &Ctx) -> Outcome {
    let parent = getpid() as i32;
    let before = s::getpriority(s::PRIO_PROCESS, 0).ctx("getpriority")?;
    in_child("another user's task", || {
        become_user(NOBODY)?;
        expect_err(
            "setpriority of root's",
            s::setpriority(s::PRIO_PROCESS, parent, 19),
            Errno::EPERM,
        )?;
        expect_err(
            "setscheduler of root's",
            s::sched_setscheduler(parent, s::SCHED_NORMAL, 0),
            Errno::EPERM,
        )?;
        let attr = SchedAttr {
            size: 56,
            ..Default::default()
        };
        expect_err(
            "setattr of root's",
            s::sched_setattr(parent, &attr),
            Errno::EPERM,
        )?;
        expect_ok(
            "getpriority of root's",
            s::getpriority(s::PRIO_PROCESS, parent),
            before,
        )?;
        expect_ok(
            "getscheduler of root's",
            s::sched_getscheduler(parent),
            s::SCHED_NORMAL,
        )?;
        // A sibling of the same user can be changed.
        let sibling = Child::spawn(|| {
            sleep_ns(TIMEOUT_NS);
            0
        })?;
        let pid = sibling.pid() as i32;
        expect_ok(
            "setpriority of own uid's",
            s::setpriority(s::PRIO_PROCESS, pid, 9),
            (),
        )?;
        expect_ok("its nice", s::nice_of(pid), 9)?;
        expect_ok(
            "setscheduler of own uid's",
            s::sched_setscheduler(pid, s::SCHED_BATCH, 0),
            (),
        )?;
        expect_ok("its policy", s::sched_getscheduler(pid), s::SCHED_BATCH)
    })
}

/// Every capability in a new user namespace is not CAP_SYS_NICE over the
/// machine: sched_setscheduler and lowering nice check `capable` (the
/// initial namespace), so an unprivileged user is refused inside its own
/// namespace as outside.
fn user_namespace(_: &Ctx) -> Outcome {
    const CLONE_NEWUSER: u64 = 0x1000_0000;
    in_child("user namespace", || {
        let zero = Rlimit { cur: 0, max: 0 };
        cred::prlimit64(0, s::RLIMIT_RTPRIO, Some(zero)).ctx("RLIMIT_RTPRIO 0")?;
        cred::prlimit64(0, s::RLIMIT_NICE, Some(zero)).ctx("RLIMIT_NICE 0")?;
        s::setpriority(s::PRIO_PROCESS, 0, 0).ctx("nice 0")?;
        become_user(NOBODY)?;
        forkvm_user::syscall::unshare(CLONE_NEWUSER).ctx("unshare(CLONE_NEWUSER)")?;
        let caps = cred::capget(0).ctx("capget")?;
        ensure!(
            caps.effective & 1 << 23 != 0,
            "no CAP_SYS_NICE in the new namespace: {caps:?}"
        );
        expect_err(
            "FIFO 1",
            s::sched_setscheduler(0, s::SCHED_FIFO, 1),
            Errno::EPERM,
        )?;
        expect_err(
            "nice -1",
            s::setpriority(s::PRIO_PROCESS, 0, -1),
            Errno::EACCES,
        )?;
        expect_ok("nice 1", s::setpriority(s::PRIO_PROCESS, 0, 1), ())?;
        expect_ok("BATCH", s::sched_setscheduler(0, s::SCHED_BATCH, 0), ())
    })
}

/// A fair task's slice (`sched_runtime`): sched_setattr sets it, clamped
/// to 0.1..100 ms, sched_getattr reports it, sched_setscheduler keeps it,
/// a child inherits it unless the parent resets on fork; 0 goes back to
/// the default. (The default itself depends on the host's CPU count and
/// is not compared.)
fn fair_slice(_: &Ctx) -> Outcome {
    in_child("fair slice", || {
        let with_runtime = |runtime: u64| SchedAttr {
            size: 56,
            sched_runtime: runtime,
            ..Default::default()
        };
        let runtime = || s::sched_getattr(0).map(|a| a.sched_runtime);
        let default = runtime().ctx("getattr")?;
        for (asked, got) in [
            (5_000_000, 5_000_000),
            (50_000, 100_000),
            (200_000_000, 100_000_000),
        ] {
            s::sched_setattr(0, &with_runtime(asked)).ctx("setattr runtime")?;
            expect_ok("the slice", runtime(), got)?;
        }
        s::sched_setattr(0, &with_runtime(5_000_000)).ctx("setattr 5 ms")?;
        s::sched_setscheduler(0, s::SCHED_BATCH, 0).ctx("BATCH")?;
        expect_ok("kept by sched_setscheduler", runtime(), 5_000_000)?;
        ensure!(
            child_slice()? == 5_000_000,
            "a child's slice: {}",
            child_slice()?
        );
        s::sched_setscheduler(0, s::SCHED_BATCH | s::SCHED_RESET_ON_FORK, 0).ctx("BATCH|RESET")?;
        ensure!(
            child_slice()? == default,
            "a reset child's slice: {}, the default is {default}",
            child_slice()?
        );
        let reset = SchedAttr {
            sched_flags: s::SCHED_FLAG_RESET_ON_FORK,
            ..with_runtime(0)
        };
        s::sched_setattr(0, &reset).ctx("setattr 0")?;
        expect_ok("back to the default", runtime(), default)
    })
}

/// Fields of `/proc/self/stat` by Linux's 1-based number (`proc_pid_stat`
/// in proc(5)): those this file checks (14-19, 39-41) as numbers, the
/// others left 0. All 52 must be there.
fn self_stat() -> Result<[i64; 53], Msg> {
    let mut buf = [0u8; 1024];
    let text = super::files::read_file("/proc/self/stat", &mut buf)?;
    let rest = text
        .rfind(") ")
        .map(|at| &text[at + 2..])
        .ok_or_else(|| msg!("stat: {text}"))?;
    let mut fields = [0i64; 53];
    let mut count = 2;
    for (word, n) in rest.split_ascii_whitespace().zip(3..) {
        count = n;
        if !(14..=19).contains(&n) && !(39..=41).contains(&n) {
            continue;
        }
        fields[n] = word
            .parse()
            .map_err(|_| msg!("stat field {n}: {word:?}"))?;
    }
    ensure!(count == 52, "stat has {count} fields: {text}");
    Ok(fields)
}

/// A `/proc/self/status` line's number (`voluntary_ctxt_switches`, ...).
fn self_status(key: &str) -> Result<i64, Msg> {
    let mut buf = [0u8; 2048];
    let text = super::files::read_file("/proc/self/status", &mut buf)?;
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(":\t"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| msg!("status has no {key}"))
}

/// Clock ticks (`USER_HZ`, 100) of a `struct timeval`.
fn ticks(t: &Timeval) -> i64 {
    (t.as_micros() / 10_000) as i64
}

/// `/proc/self/stat` agrees with the calls: utime, stime (14, 15) lie
/// between getrusage(RUSAGE_SELF) before and after, in clock ticks;
/// cutime, cstime (16, 17) are RUSAGE_CHILDREN's after a child that spun
/// was reaped; priority and nice (18, 19) are 20 + nice for a fair policy
/// and -1 - rt_priority for a real-time one, with the nice value kept;
/// processor (39) is getcpu's on a pinned task; rt_priority and policy
/// (40, 41) are sched_getparam's and sched_getscheduler's without the
/// reset-on-fork flag. `/proc/self/status`'s voluntary and involuntary
/// context switches lie between RUSAGE_THREAD's before and after. A
/// SCHED_RR task's `sched_rr_get_interval` is `kernel.sched_rr_timeslice_ms`
/// rounded up to a whole jiffy.
fn proc_stat(_: &Ctx) -> Outcome {
    in_child("proc stat", || {
        spin_cpu_ns(30 * MS);
        let before = getrusage(RUSAGE_SELF).ctx("getrusage")?;
        let stat = self_stat()?;
        let after = getrusage(RUSAGE_SELF).ctx("getrusage")?;
        ensure!(
            (ticks(&before.utime)..=ticks(&after.utime)).contains(&stat[14])
                && (ticks(&before.stime)..=ticks(&after.stime)).contains(&stat[15]),
            "utime {} stime {}, rusage from {:?} to {:?}",
            stat[14],
            stat[15],
            (before.utime, before.stime),
            (after.utime, after.stime)
        );
        ensure!(stat[14] + stat[15] >= 2, "30 ms of CPU: {} + {} ticks", stat[14], stat[15]);
        let spinner = Child::spawn(|| {
            spin_cpu_ns(30 * MS);
            0
        })?;
        expect_exit("spinner", spinner.wait()?, 0)?;
        let children = getrusage(RUSAGE_CHILDREN).ctx("getrusage children")?;
        let stat = self_stat()?;
        ensure!(
            (stat[16], stat[17]) == (ticks(&children.utime), ticks(&children.stime))
                && stat[16] + stat[17] >= 2,
            "cutime {} cstime {}, RUSAGE_CHILDREN {:?} {:?}",
            stat[16],
            stat[17],
            children.utime,
            children.stime
        );

        let (cpu, _) = s::getcpu().ctx("getcpu")?;
        s::sched_setaffinity(0, 1 << cpu).ctx("pin")?;
        s::setpriority(s::PRIO_PROCESS, 0, 7).ctx("nice 7")?;
        let sched_fields = || -> Result<[i64; 5], Msg> {
            let stat = self_stat()?;
            Ok([stat[18], stat[19], stat[39], stat[40], stat[41]])
        };
        let cpu = i64::from(cpu);
        ensure!(
            sched_fields()? == [27, 7, cpu, 0, 0],
            "nice 7: {:?}",
            sched_fields()?
        );
        s::sched_setscheduler(0, s::SCHED_BATCH | s::SCHED_RESET_ON_FORK, 0).ctx("BATCH")?;
        ensure!(
            sched_fields()? == [27, 7, cpu, 0, 3],
            "BATCH: {:?}",
            sched_fields()?
        );
        // (Keeping the reset-on-fork flag: only CAP_SYS_NICE may clear it.)
        s::sched_setscheduler(0, s::SCHED_IDLE | s::SCHED_RESET_ON_FORK, 0).ctx("IDLE")?;
        ensure!(
            sched_fields()? == [27, 7, cpu, 0, 5],
            "IDLE: {:?}",
            sched_fields()?
        );

        for _ in 0..3 {
            let _ = nanosleep(Timespec::from_nanos(MS));
        }
        let before = getrusage(RUSAGE_THREAD).ctx("getrusage thread")?;
        let voluntary = self_status("voluntary_ctxt_switches")?;
        let involuntary = self_status("nonvoluntary_ctxt_switches")?;
        let after = getrusage(RUSAGE_THREAD).ctx("getrusage thread")?;
        ensure!(
            voluntary >= 3
                && (before.nvcsw..=after.nvcsw).contains(&voluntary)
                && (before.nivcsw..=after.nivcsw).contains(&involuntary),
            "status {voluntary} {involuntary}, rusage from {} {} to {} {}",
            before.nvcsw,
            before.nivcsw,
            after.nvcsw,
            after.nivcsw
        );

        if !has_cap_sys_nice()? {
            skipped(NEEDS_CAP_SYS_NICE);
            return Ok(());
        }
        s::sched_setscheduler(0, s::SCHED_FIFO, 10).ctx("FIFO 10")?;
        ensure!(
            sched_fields()? == [-11, 7, cpu, 10, 1],
            "FIFO 10: {:?}",
            sched_fields()?
        );
        s::sched_setscheduler(0, s::SCHED_RR | s::SCHED_RESET_ON_FORK, 20).ctx("RR 20")?;
        ensure!(
            sched_fields()? == [-21, 7, cpu, 20, 2],
            "RR 20: {:?}",
            sched_fields()?
        );
        let mut buf = [0u8; 32];
        let text = super::files::read_file("/proc/sys/kernel/sched_rr_timeslice_ms", &mut buf)?;
        let ms: u64 = text
            .trim()
            .parse()
            .map_err(|_| msg!("sched_rr_timeslice_ms: {text:?}"))?;
        let interval = s::sched_rr_get_interval(0).ctx("sched_rr_get_interval")?;
        ensure!(
            (ms * MS..ms * MS + 10 * MS).contains(&interval),
            "RR interval {interval} ns, sched_rr_timeslice_ms {ms}"
        );
        Ok(())
    })
}

/// The `sched_runtime` a forked child reports.
fn child_slice() -> Result<u64, Msg> {
    let (r, w) = pipe()?;
    let wfd = w.raw();
    let child = Child::spawn(move || {
        let got = s::sched_getattr(0).map_or(0, |a| a.sched_runtime);
        let _ = write_all(wfd, &got.to_le_bytes());
        0
    })?;
    drop(w);
    let mut bytes = [0u8; 8];
    ensure!(
        read_full(r.raw(), &mut bytes)? == 8,
        "the child sent nothing"
    );
    expect_exit("child", child.wait()?, 0)?;
    Ok(u64::from_le_bytes(bytes))
}

/// A child's report of its own policy, rt priority and nice, packed in a
/// word (policy << 16 | priority << 8 | nice + 20).
fn packed_sched() -> u32 {
    let policy = s::sched_getscheduler(0).unwrap_or(0xff) as u32 & 0xffff;
    let prio = s::sched_getparam(0).unwrap_or(0xff) as u32;
    let nice = s::nice_of(0).map_or(0xff, |n| (n + 20) as u32);
    policy << 16 | prio << 8 | nice
}

fn unpack(word: u32) -> (i32, i32, i32) {
    (
        (word >> 16) as i32,
        (word >> 8 & 0xff) as i32,
        (word & 0xff) as i32 - 20,
    )
}

/// What fork, vfork, clone and a new thread start with (reported through a
/// pipe; the thread through shared memory).
fn children_see() -> Result<[(i32, i32, i32); 4], Msg> {
    let (r, w) = pipe()?;
    let wfd = w.raw();
    let forked = Child::spawn(move || {
        let _ = write_all(wfd, &packed_sched().to_le_bytes());
        0
    })?;
    expect_exit("fork child", forked.wait()?, 0)?;
    let cloned = Child::spawn_with_flags(0, move || {
        let _ = write_all(wfd, &packed_sched().to_le_bytes());
        0
    })?;
    expect_exit("clone child", cloned.wait()?, 0)?;
    let pid = vfork_reporting_child().ctx("vfork")?;
    expect_exit("vfork child", Child { pid }.wait()?, 0)?;
    let stack = ThreadStack::new()?;
    let thread_word = AtomicU32::new(0);
    // SAFETY: the thread is joined before `stack` and `thread_word` go.
    unsafe {
        stack.clone(
            THREAD_FLAGS,
            thread_reports_sched,
            &thread_word as *const _ as usize,
        )
    }
    .ctx("clone thread")?;
    stack.join()?;
    drop(w);
    let mut words = [0u8; 8];
    ensure!(
        read_full(r.raw(), &mut words)? == 8,
        "children sent too little"
    );
    let word = |i: usize| u32::from_le_bytes(words[i * 4..i * 4 + 4].try_into().expect("4"));
    Ok([
        unpack(word(0)),
        unpack(word(1)),
        unpack(VFORK_SAW.load(Ordering::Relaxed)),
        unpack(thread_word.load(Ordering::Relaxed)),
    ])
}

/// What the last `vfork` child reported (see [`packed_sched`]).
static VFORK_SAW: AtomicU32 = AtomicU32::new(0);

/// `vfork`; the child reports its policy into [`VFORK_SAW`] and `_exit`s.
/// Not inlined: the child never returns from this frame.
#[inline(never)]
fn vfork_reporting_child() -> Result<Pid, Errno> {
    // SAFETY: the child only makes system calls (its frames go below ours,
    // which the suspended parent does not use), stores to a static and
    // exits; it never returns from this function.
    match unsafe { vfork() } {
        Ok(0) => {
            VFORK_SAW.store(packed_sched(), Ordering::Relaxed);
            exit(0)
        }
        other => other,
    }
}

extern "C" fn thread_reports_sched(arg: usize) -> ! {
    // SAFETY: the creator joins us before the word goes away.
    let word: &AtomicU32 = unsafe { shared(arg) };
    word.store(packed_sched(), Ordering::Relaxed);
    exit(0)
}

/// fork, clone, vfork and threads inherit the policy, rt priority and
/// nice value of the calling thread.
fn inherit(_: &Ctx) -> Outcome {
    in_child("fair inheritance", || {
        s::setpriority(s::PRIO_PROCESS, 0, 6).ctx("nice 6")?;
        s::sched_setscheduler(0, s::SCHED_BATCH, 0).ctx("BATCH")?;
        let seen = children_see()?;
        ensure!(
            seen.iter().all(|&c| c == (s::SCHED_BATCH, 0, 6)),
            "children of BATCH nice 6 (fork, clone, vfork, thread): {seen:?}"
        );
        Ok(())
    })?;
    if !has_cap_sys_nice()? {
        skipped(NEEDS_CAP_SYS_NICE);
        return Ok(());
    }
    in_child("real-time inheritance", || {
        s::setpriority(s::PRIO_PROCESS, 0, -4).ctx("nice -4")?;
        s::sched_setscheduler(0, s::SCHED_RR, 7).ctx("RR 7")?;
        let seen = children_see()?;
        ensure!(
            seen.iter().all(|&c| c == (s::SCHED_RR, 7, -4)),
            "children of RR 7 nice -4 (fork, clone, vfork, thread): {seen:?}"
        );
        Ok(())
    })
}

/// SCHED_RESET_ON_FORK: a real-time parent's children start as
/// SCHED_NORMAL at nice 0 (also from a positive nice), a fair parent's
/// keep their policy and a positive nice but not a negative one; no
/// child has the flag, the parent keeps it.
fn reset_on_fork(_: &Ctx) -> Outcome {
    let reset = s::SCHED_RESET_ON_FORK;
    in_child("fair reset-on-fork", || {
        s::setpriority(s::PRIO_PROCESS, 0, 5).ctx("nice 5")?;
        s::sched_setscheduler(0, s::SCHED_BATCH | reset, 0).ctx("BATCH|RESET")?;
        let seen = children_see()?;
        ensure!(
            seen.iter().all(|&c| c == (s::SCHED_BATCH, 0, 5)),
            "children of BATCH|RESET nice 5: {seen:?}"
        );
        expect_ok(
            "parent keeps the flag",
            s::sched_getscheduler(0),
            s::SCHED_BATCH | reset,
        )
    })?;
    if !has_cap_sys_nice()? {
        skipped(NEEDS_CAP_SYS_NICE);
        return Ok(());
    }
    in_child("negative nice reset", || {
        s::setpriority(s::PRIO_PROCESS, 0, -7).ctx("nice -7")?;
        s::sched_setscheduler(0, s::SCHED_NORMAL | reset, 0).ctx("NORMAL|RESET")?;
        let seen = children_see()?;
        ensure!(
            seen.iter().all(|&c| c == (s::SCHED_NORMAL, 0, 0)),
            "children of NORMAL|RESET nice -7: {seen:?}"
        );
        Ok(())
    })?;
    in_child("real-time reset", || {
        s::setpriority(s::PRIO_PROCESS, 0, 3).ctx("nice 3")?;
        s::sched_setscheduler(0, s::SCHED_FIFO | reset, 9).ctx("FIFO|RESET")?;
        let seen = children_see()?;
        ensure!(
            seen.iter().all(|&c| c == (s::SCHED_NORMAL, 0, 0)),
            "children of FIFO|RESET 9 nice 3: {seen:?}"
        );
        ensure!(
            sched_of(0)? == (s::SCHED_FIFO | reset, 9, 3),
            "parent: {:?}",
            sched_of(0)?
        );
        Ok(())
    })
}

/// getpriority returns 20 - nice (1..40); setpriority clamps to -20..19;
/// `which` outside PRIO_PROCESS..PRIO_USER is EINVAL, a pid nobody has
/// ESRCH.
fn getpriority_encoding(_: &Ctx) -> Outcome {
    let gone = gone_pid()?;
    expect_err("getpriority which 3", s::getpriority(3, 0), Errno::EINVAL)?;
    expect_err("getpriority which -1", s::getpriority(-1, 0), Errno::EINVAL)?;
    expect_err(
        "setpriority which 3",
        s::setpriority(3, 0, 0),
        Errno::EINVAL,
    )?;
    expect_err(
        "getpriority no such pid",
        s::getpriority(s::PRIO_PROCESS, gone),
        Errno::ESRCH,
    )?;
    expect_err(
        "setpriority no such pid",
        s::setpriority(s::PRIO_PROCESS, gone, 0),
        Errno::ESRCH,
    )?;
    expect_err(
        "getpriority no such group",
        s::getpriority(s::PRIO_PGRP, gone),
        Errno::ESRCH,
    )?;
    expect_err(
        "getpriority pid -1",
        s::getpriority(s::PRIO_PROCESS, -1),
        Errno::ESRCH,
    )?;
    in_child("encodings", || {
        s::setpriority(s::PRIO_PROCESS, 0, 7).ctx("nice 7")?;
        expect_ok("nice 7", s::getpriority(s::PRIO_PROCESS, 0), 13)?;
        s::setpriority(s::PRIO_PROCESS, 0, 100).ctx("nice 100")?;
        expect_ok("nice 100 -> 19", s::getpriority(s::PRIO_PROCESS, 0), 1)?;
        let me = getpid() as i32;
        expect_ok("by pid", s::getpriority(s::PRIO_PROCESS, me), 1)?;
        if has_cap_sys_nice()? {
            s::setpriority(s::PRIO_PROCESS, 0, -100).ctx("nice -100")?;
            expect_ok("nice -100 -> -20", s::getpriority(s::PRIO_PROCESS, 0), 40)?;
        } else {
            skipped(NEEDS_CAP_SYS_NICE);
        }
        Ok(())
    })
}

/// PRIO_PGRP addresses every process of a group (the best nice wins
/// getpriority), PRIO_USER every task of a real uid; a uid with no task
/// is ESRCH.
fn priority_pgrp_user(_: &Ctx) -> Outcome {
    in_child("process group", || {
        setpgid(0, 0).ctx("setpgid")?;
        s::setpriority(s::PRIO_PROCESS, 0, 10).ctx("nice 10")?;
        let gate = Gate::new()?;
        let member = Child::spawn(gate.hold(0))?;
        let pid = member.pid() as i32;
        s::setpriority(s::PRIO_PROCESS, pid, 4).ctx("member nice 4")?;
        expect_ok("group's best", s::getpriority(s::PRIO_PGRP, 0), 16)?;
        let pgid = getpid() as i32;
        expect_ok("group by id", s::getpriority(s::PRIO_PGRP, pgid), 16)?;
        expect_ok("set the group", s::setpriority(s::PRIO_PGRP, 0, 12), ())?;
        expect_ok("member", s::nice_of(pid), 12)?;
        expect_ok("leader", s::nice_of(0), 12)?;
        gate.open()?;
        expect_exit("member", member.wait()?, 0)
    })?;
    if !has_cap_sys_nice()? {
        skipped(NEEDS_CAP_SYS_NICE);
        return Ok(());
    }
    in_child("user", || {
        let gate = Gate::new()?;
        let (hold, release) = (gate.read.raw(), gate.write.raw());
        let mut users = [const { None }; 2];
        for (slot, nice) in users.iter_mut().zip([3, 8]) {
            let (ready_r, ready_w) = pipe()?;
            let ready = ready_w.raw();
            let child = Child::spawn(move || {
                let _ = s::setpriority(s::PRIO_PROCESS, 0, nice);
                if cred::setuid(PRIO_TEST_UID).is_err() {
                    return 1;
                }
                let _ = write_all(ready, b"r");
                let _ = close(release);
                wait_byte(hold);
                0
            })?;
            drop(ready_w);
            let mut byte = [0u8];
            ensure!(
                read_full(ready_r.raw(), &mut byte)? == 1,
                "user child not ready"
            );
            *slot = Some(child);
        }
        let uid = PRIO_TEST_UID as i32;
        expect_ok("user's best", s::getpriority(s::PRIO_USER, uid), 17)?;
        expect_ok("set the user", s::setpriority(s::PRIO_USER, uid, 15), ())?;
        for child in users.iter().flatten() {
            expect_ok("user's task", s::nice_of(child.pid() as i32), 15)?;
        }
        expect_err(
            "uid without tasks",
            s::getpriority(s::PRIO_USER, uid + 1),
            Errno::ESRCH,
        )?;
        expect_err(
            "set uid without tasks",
            s::setpriority(s::PRIO_USER, uid + 1, 1),
            Errno::ESRCH,
        )?;
        gate.open()?;
        for child in users.into_iter().flatten() {
            expect_exit("user child", child.wait()?, 0)?;
        }
        Ok(())
    })
}

// ---------------------------------------------------------------------------
// VM-only checks (helper `sched-preempt-vm`): on one CPU the order is
// deterministic; on the host's several CPUs the child may run at once on
// another one, so these are not scenarios. The helper pins itself to CPU 0
// (a guest with several CPUs).

/// The helper argument that runs [`preempt_checks`].
pub const PREEMPT_HELPER: &[u8] = b"sched-preempt-vm";

/// A `CLONE_VM` child's report: 1 + its policy when it ran.
extern "C" fn report_policy(arg: usize) -> ! {
    // SAFETY: the creator reaps us before the word goes away.
    let word: &AtomicU32 = unsafe { shared(arg) };
    let policy = s::sched_getscheduler(0).unwrap_or(0xff) as u32;
    word.store(1 + policy, Ordering::Release);
    exit(0)
}

/// A fair task that makes a runnable task SCHED_FIFO gives it the CPU
/// before its own `sched_setscheduler` returns to user mode.
fn fifo_preempts_on_setscheduler() -> Outcome {
    // A tick between clone and sched_setscheduler may let the child run
    // first as a fair task (word 1): try again then.
    for _ in 0..20 {
        let stack = ThreadStack::new()?;
        let word = AtomicU32::new(0);
        // SAFETY: the child is reaped below, before `stack` and `word` go.
        let pid = unsafe {
            stack.clone(
                CLONE_VM | SIGCHLD,
                report_policy,
                &word as *const _ as usize,
            )
        }
        .ctx("clone")?;
        let child = Child { pid };
        s::sched_setscheduler(pid as i32, s::SCHED_FIFO, 10).ctx("make the child FIFO")?;
        let seen = word.load(Ordering::Acquire);
        expect_exit("the FIFO child", child.wait()?, 0)?;
        match seen {
            2 => return Ok(()),
            1 => continue,
            _ => {
                return Err(msg!(
                    "the FIFO child had not run when sched_setscheduler returned ({seen})"
                ))
            }
        }
    }
    Err(msg!("the child always ran before it was made FIFO"))
}

/// The `fifo_preempts_on_wakeup` child: becomes FIFO, says so, sleeps on
/// the gate, and on waking reports.
extern "C" fn fifo_sleeper(arg: usize) -> ! {
    // SAFETY: the creator reaps us before the pipes and word go away.
    let ends: &(i32, i32, AtomicU32) = unsafe { shared(arg) };
    let (ready, gate, word) = (ends.0, ends.1, &ends.2);
    if s::sched_setscheduler(0, s::SCHED_FIFO, 10).is_err() {
        exit(1)
    }
    let _ = write_all(ready, b"r");
    wait_byte(gate);
    word.store(1, Ordering::Release);
    exit(0)
}

/// A SCHED_FIFO task woken by a fair one (a pipe write) runs before the
/// waker's `write` returns to user mode.
fn fifo_preempts_on_wakeup() -> Outcome {
    let (ready_r, ready_w) = pipe()?;
    let (gate_r, gate_w) = pipe()?;
    let shared_state = (ready_w.raw(), gate_r.raw(), AtomicU32::new(0));
    let stack = ThreadStack::new()?;
    // SAFETY: the child is reaped below, before `stack` and the state go.
    let pid = unsafe {
        stack.clone(
            CLONE_VM | CLONE_FILES | SIGCHLD,
            fifo_sleeper,
            &shared_state as *const _ as usize,
        )
    }
    .ctx("clone")?;
    let child = Child { pid };
    let mut byte = [0u8];
    ensure!(
        read_full(ready_r.raw(), &mut byte)? == 1,
        "the child did not get ready"
    );
    // Let it reach its read of the gate (it is FIFO: it runs until it
    // sleeps as soon as it is on the CPU).
    sleep_ns(10 * MS);
    write_all(gate_w.raw(), b"g").ctx("wake the child")?;
    let seen = shared_state.2.load(Ordering::Acquire);
    expect_exit("the FIFO sleeper", child.wait()?, 0)?;
    ensure!(
        seen == 1,
        "the woken FIFO task had not run when the waker's write returned"
    );
    Ok(())
}

/// Runs the VM-only checks, one `ok`/`FAIL` line each; 0 if all passed.
pub fn preempt_checks() -> i32 {
    // One CPU for us and the children (they inherit the mask): with
    // several, the child runs at once on another one.
    if let Err(e) = s::sched_setaffinity(0, 1) {
        println!("FAIL sched-preempt-vm: sched_setaffinity: {e}");
        return 1;
    }
    let mut failed = false;
    for (name, check) in [
        (
            "fifo-preempts-on-setscheduler",
            fifo_preempts_on_setscheduler as fn() -> Outcome,
        ),
        ("fifo-preempts-on-wakeup", fifo_preempts_on_wakeup),
    ] {
        match check() {
            Ok(()) => println!("ok {name}"),
            Err(m) => {
                failed = true;
                println!("FAIL {name}: {}", m.as_str());
            }
        }
    }
    i32::from(failed)
}
