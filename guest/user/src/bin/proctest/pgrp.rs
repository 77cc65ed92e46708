//! Process groups and sessions: setpgid, getpgid, setsid, getsid, kill and wait4 of a group.
//!
//! The program's own group and session are left alone (on the host they
//! are the test runner's): every change happens to children, and `kill(0)`
//! and `setsid` are only called by children in groups of their own.

use forkvm_user::ioprio::{
    ioprio_get, ioprio_set, ioprio_value, IOPRIO_CLASS_BE, IOPRIO_WHO_PGRP, IOPRIO_WHO_PROCESS,
};
use forkvm_user::syscall::{getpgid, getpgrp, getsid, setpgid, setsid};

use super::vfork::{vfork_exec_child, EXEC_ERRNO};
use super::*;

use forkvm_user::signal::sig::SIGTERM;
const EXIT_42_ARG: &CStr = c"exit-42";

pub const SCENARIOS: &[(&str, Scenario)] = &[
    ("pgrp-basics", pgrp_basics),
    ("setpgid-errors", setpgid_errors),
    ("setsid-getsid", setsid_getsid),
    ("kill-pgrp", kill_pgrp),
    ("wait-pgrp", wait_pgrp),
    ("ioprio-pgrp", ioprio_pgrp),
    ("pgrp-thread", pgrp_thread),
    ("pgrp-pid-namespace", pgrp_pid_namespace),
];

/// Writes `value` to `fd` (from a child to its parent).
fn send(fd: i32, value: u32) {
    let _ = write_all(fd, &value.to_le_bytes());
}

/// Reads one value a child sent.
fn receive(fd: &Fd, what: &str) -> Result<u32, Msg> {
    let mut bytes = [0u8; 4];
    let n = read_full(fd.raw(), &mut bytes)?;
    ensure!(n == 4, "{what}: the child sent {n} of 4 bytes");
    Ok(u32::from_le_bytes(bytes))
}

/// A pid that names nobody: a child's, once it has been reaped.
fn gone_pid() -> Result<i32, Msg> {
    let child = Child::spawn(|| 0)?;
    let pid = child.pid() as i32;
    expect_exit("short-lived child", child.wait()?, 0)?;
    Ok(pid)
}

/// `(getpgid(pid), getsid(pid))`.
fn ids_of(pid: Pid) -> (Result<Pid, Errno>, Result<Pid, Errno>) {
    (getpgid(pid as i32), getsid(pid as i32))
}

/// A child starts in its parent's group and session; the parent can put it
/// in a group of its own or in another group of the session, and a child
/// can move itself.
fn pgrp_basics(_: &Ctx) -> Outcome {
    let me = getpid() as i32;
    let pg = getpgrp();
    let sid = getsid(0).ctx("getsid(0)")?;
    ensure!(
        getpgid(0) == Ok(pg) && getpgid(me) == Ok(pg) && getsid(me) == Ok(sid),
        "getpgrp {pg}, getpgid(0) {:?}, getpgid(self) {:?}, getsid(0) {sid}, getsid(self) {:?}",
        getpgid(0),
        getpgid(me),
        getsid(me)
    );
    let gate = Gate::new()?;
    let (report_r, report_w) = pipe()?;
    let report = report_w.raw();
    let hold = gate.read.raw();
    // a reports the ids it inherited, then waits.
    let a = Child::spawn(move || {
        send(report, getpgrp());
        send(report, getsid(0).unwrap_or(0));
        wait_byte(hold);
        0
    })?;
    // c moves itself into a new group and back into the parent's.
    let c = Child::spawn(move || {
        if setpgid(0, 0).is_err() || getpgrp() != getpid() {
            return 1;
        }
        if setpgid(0, pg as i32).is_err() || getpgrp() != pg {
            return 2;
        }
        0
    })?;
    report_w.close()?;
    let b = Child::spawn(gate.hold(0))?;
    let (a_pid, b_pid) = (a.pid(), b.pid());

    let inherited = (receive(&report_r, "a")?, receive(&report_r, "a")?);
    ensure!(
        inherited == (pg, sid),
        "the child's (pgrp, sid) {inherited:?}, the parent's ({pg}, {sid})"
    );
    ensure!(
        ids_of(a_pid) == (Ok(pg), Ok(sid)),
        "getpgid/getsid of a child: {:?}, want the parent's ({pg}, {sid})",
        ids_of(a_pid)
    );
    setpgid(a_pid as i32, 0).ctx("setpgid(child, 0)")?;
    setpgid(a_pid as i32, a_pid as i32).ctx("setpgid(child, child) again")?;
    ensure!(
        ids_of(a_pid) == (Ok(a_pid), Ok(sid)),
        "after setpgid(a, 0): {:?}, want ({a_pid}, {sid})",
        ids_of(a_pid)
    );
    setpgid(b_pid as i32, a_pid as i32).ctx("setpgid(b, a)")?;
    ensure!(
        ids_of(b_pid) == (Ok(a_pid), Ok(sid)),
        "after setpgid(b, a): {:?}, want ({a_pid}, {sid})",
        ids_of(b_pid)
    );
    setpgid(b_pid as i32, pg as i32).ctx("setpgid(b, parent's group)")?;
    ensure!(
        getpgid(b_pid as i32) == Ok(pg),
        "after setpgid(b, {pg}): {:?}",
        getpgid(b_pid as i32)
    );
    expect_exit(
        "c (setpgid(0, 0), then back into the parent's group)",
        c.wait_bounded("c")?,
        0,
    )?;
    ensure!(
        getpgrp() == pg,
        "the parent's group changed to {}",
        getpgrp()
    );
    gate.release(2)?;
    for (name, child) in [("a", a), ("b", b)] {
        expect_exit(name, child.wait_bounded(name)?, 0)?;
    }
    Ok(())
}

/// Every errno of setpgid, in Linux's order of checks.
fn setpgid_errors(ctx: &Ctx) -> Outcome {
    let gone = gone_pid()?;
    let gate = Gate::new()?;
    let e = |r: Result<(), Errno>| r.err().unwrap_or(Errno(0));

    ensure!(
        e(setpgid(0, -1)) == Errno::EINVAL,
        "setpgid(0, -1): {}, want EINVAL",
        e(setpgid(0, -1))
    );
    // pgid 0 means pgid = pid, and a negative pid is then a negative pgid.
    ensure!(
        e(setpgid(-5, 0)) == Errno::EINVAL,
        "setpgid(-5, 0): {}, want EINVAL",
        e(setpgid(-5, 0))
    );
    ensure!(
        e(setpgid(gone, 0)) == Errno::ESRCH,
        "setpgid(reaped pid, 0): {}, want ESRCH",
        e(setpgid(gone, 0))
    );

    // A grandchild is neither the caller nor its child.
    let (a_report_r, a_report_w) = pipe()?;
    let (s_report_r, s_report_w) = pipe()?;
    let (a_report, s_report) = (a_report_w.raw(), s_report_w.raw());
    let hold = gate.read.raw();
    let a = Child::spawn(move || {
        let Ok(grandchild) = Child::spawn(move || {
            wait_byte(hold);
            0
        }) else {
            return 1;
        };
        send(a_report, grandchild.pid());
        match grandchild.wait() {
            Ok(status) if status.exited() && status.exit_status() == 0 => 0,
            _ => 2,
        }
    })?;
    // A session leader of its own session.
    let s = Child::spawn(move || {
        let sid = setsid().unwrap_or(0);
        let again = setpgid(0, 0).err().unwrap_or(Errno(0)).0 as u32;
        send(s_report, sid);
        send(s_report, again);
        wait_byte(hold);
        0
    })?;
    a_report_w.close()?;
    s_report_w.close()?;
    let b = Child::spawn(gate.hold(0))?;
    let (s_pid, b_pid) = (s.pid() as i32, b.pid() as i32);

    let grandchild = receive(&a_report_r, "a")? as i32;
    ensure!(
        e(setpgid(grandchild, 0)) == Errno::ESRCH,
        "setpgid(grandchild, 0): {}, want ESRCH",
        e(setpgid(grandchild, 0))
    );
    ensure!(
        getpgid(grandchild) == Ok(getpgrp()),
        "getpgid(grandchild) {:?}, want {}",
        getpgid(grandchild),
        getpgrp()
    );
    let (sid, again) = (receive(&s_report_r, "s")?, receive(&s_report_r, "s")?);
    ensure!(
        sid == s_pid as u32 && Errno(again as i32) == Errno::EPERM,
        "a child's setsid() {sid} (want {s_pid}), then its setpgid(0, 0): {} (want EPERM)",
        Errno(again as i32)
    );
    // A child in another session; a group of another session.
    ensure!(
        e(setpgid(s_pid, 0)) == Errno::EPERM,
        "setpgid(child in another session, 0): {}, want EPERM",
        e(setpgid(s_pid, 0))
    );
    ensure!(
        e(setpgid(b_pid, s_pid)) == Errno::EPERM,
        "setpgid(b, group of another session): {}, want EPERM",
        e(setpgid(b_pid, s_pid))
    );
    // A pgid naming no group at all, unless it is the target's own pid.
    ensure!(
        e(setpgid(b_pid, gone)) == Errno::EPERM,
        "setpgid(b, reaped pid): {}, want EPERM",
        e(setpgid(b_pid, gone))
    );
    // A live process that leads no group names no group either.
    let not_leader = a.pid() as i32;
    ensure!(
        e(setpgid(b_pid, not_leader)) == Errno::EPERM,
        "setpgid(b, pid of a process in our group): {}, want EPERM",
        e(setpgid(b_pid, not_leader))
    );
    setpgid(b_pid, b_pid).ctx("setpgid(b, b)")?;
    ensure!(
        getpgid(b_pid) == Ok(b_pid as Pid),
        "getpgid(b) {:?}",
        getpgid(b_pid)
    );

    // A child that has exec'd (vfork returns once it has).
    let Some(argv0) = ctx.argv0 else {
        return Err(msg!("no argv[0] to execute"));
    };
    // SAFETY: argv[0] is a slice of the NUL-terminated string the kernel put
    // on the initial stack (see forkvm_user::start); its NUL follows it.
    let path = unsafe { CStr::from_ptr(argv0.as_ptr().cast()) };
    let argv = [
        argv0.as_ptr(),
        EXIT_42_ARG.as_ptr().cast(),
        core::ptr::null(),
    ];
    EXEC_ERRNO.store(0, Ordering::Relaxed);
    let exec_pid = vfork_exec_child(path, &argv, &[core::ptr::null()]).ctx("vfork")?;
    let exec_child = Child { pid: exec_pid };
    let after_exec = e(setpgid(exec_pid as i32, 0));
    let status = exec_child.wait()?;
    let errno = EXEC_ERRNO.load(Ordering::Relaxed);
    ensure!(errno == 0, "the child's execve failed: {}", Errno(errno));
    expect_exit("exec'd `proctest exit-42`", status, 42)?;
    ensure!(
        after_exec == Errno::EACCES,
        "setpgid(child after execve, 0): {after_exec}, want EACCES"
    );

    gate.release(3)?;
    for (name, child) in [("a", a), ("s", s), ("b", b)] {
        expect_exit(name, child.wait_bounded(name)?, 0)?;
    }
    Ok(())
}

/// setsid makes the caller leader of a new session and group; it fails
/// (EPERM) for a group leader, and while a group with the caller's id
/// exists, until its last member is gone.
fn setsid_getsid(_: &Ctx) -> Outcome {
    let gone = gone_pid()?;
    let pg = getpgrp();
    let sid = getsid(0).ctx("getsid(0)")?;
    let gate = Gate::new()?;
    let hold = gate.read.raw();
    // x: a new session; a second setsid fails.
    let x = Child::spawn(move || {
        let me = getpid();
        if setsid() != Ok(me) {
            return 1;
        }
        if getsid(0) != Ok(me) || getpgrp() != me || getpgid(0) != Ok(me) {
            return 2;
        }
        if setsid() != Err(Errno::EPERM) {
            return 3;
        }
        wait_byte(hold);
        0
    })?;
    // y: a group leader cannot start a session.
    let y = Child::spawn(move || {
        if setpgid(0, 0).is_err() {
            return 1;
        }
        if setsid() != Err(Errno::EPERM) {
            return 2;
        }
        0
    })?;
    // z: leaves its group behind with a member in it; setsid fails until
    // that member is reaped.
    let z = Child::spawn(move || {
        if setpgid(0, 0).is_err() {
            return 1;
        }
        let Ok(member) = Child::spawn(move || {
            wait_byte(hold);
            0
        }) else {
            return 2;
        };
        if setpgid(0, pg as i32).is_err() {
            return 3;
        }
        if setsid() != Err(Errno::EPERM) {
            return 4;
        }
        if getpgid(member.pid() as i32) != Ok(getpid()) {
            return 5;
        }
        drop(member); // killed and reaped: the group is gone
        if setsid() != Ok(getpid()) {
            return 6;
        }
        0
    })?;
    expect_exit("y (setsid as a group leader)", y.wait_bounded("y")?, 0)?;
    expect_exit(
        "z (setsid with its group left over)",
        z.wait_bounded("z")?,
        0,
    )?;
    // x waits in its own session; the parent sees it there.
    let x_pid = x.pid();
    let deadline = monotonic_ns() + TIMEOUT_NS;
    while getsid(x_pid as i32) != Ok(x_pid) && monotonic_ns() < deadline {
        sleep_ns(200_000);
    }
    ensure!(
        ids_of(x_pid) == (Ok(x_pid), Ok(x_pid)),
        "getpgid/getsid of a session leader child: {:?}, want ({x_pid}, {x_pid})",
        ids_of(x_pid)
    );
    ensure!(
        (getpgrp(), getsid(0)) == (pg, Ok(sid)),
        "the parent's ids changed: ({}, {:?}), were ({pg}, {sid})",
        getpgrp(),
        getsid(0)
    );
    ensure!(
        getsid(gone) == Err(Errno::ESRCH) && getsid(-1) == Err(Errno::ESRCH),
        "getsid(reaped pid) {:?}, getsid(-1) {:?}, want ESRCH",
        getsid(gone),
        getsid(-1)
    );
    ensure!(
        getpgid(gone) == Err(Errno::ESRCH) && getpgid(-1) == Err(Errno::ESRCH),
        "getpgid(reaped pid) {:?}, getpgid(-1) {:?}, want ESRCH",
        getpgid(gone),
        getpgid(-1)
    );
    gate.release(2)?;
    expect_exit("x (setsid)", x.wait_bounded("x")?, 0)
}

/// kill(-pgid) and kill(0) reach every process of the group and no other.
fn kill_pgrp(_: &Ctx) -> Outcome {
    let gone = gone_pid()?;
    let gate = Gate::new()?;
    let a = Child::spawn(gate.hold(0))?;
    let b = Child::spawn(gate.hold(0))?;
    let c = Child::spawn(gate.hold(0))?;
    let a_pid = a.pid() as i32;
    setpgid(a_pid, 0).ctx("setpgid(a, 0)")?;
    setpgid(b.pid() as i32, a_pid).ctx("setpgid(b, a)")?;
    ensure!(
        kill(-a_pid, 0).is_ok(),
        "kill(-a, 0): {:?}",
        kill(-a_pid, 0)
    );
    kill(-a_pid, SIGKILL).ctx("kill(-a, SIGKILL)")?;
    expect_signal("a", a.wait_bounded("a")?, SIGKILL)?;
    expect_signal("b", b.wait_bounded("b")?, SIGKILL)?;
    ensure!(
        kill(-a_pid, 0) == Err(Errno::ESRCH),
        "kill(-a, 0) with a and b reaped: {:?}, want ESRCH",
        kill(-a_pid, 0)
    );
    ensure!(
        kill(-gone, 0) == Err(Errno::ESRCH) && kill(i32::MIN, 0) == Err(Errno::ESRCH),
        "kill(-reaped pid, 0) {:?}, kill(INT_MIN, 0) {:?}, want ESRCH",
        kill(-gone, 0),
        kill(i32::MIN, 0)
    );
    match wait4(c.pid() as i32, WNOHANG) {
        Ok((0, _)) => {}
        other => return Err(msg!("c, outside the group, after kill(-a): {other:?}")),
    }

    // kill(0) from d reaches d and e, its group, not c.
    let d_gate = Gate::new()?;
    let hold = d_gate.read.raw();
    let d = Child::spawn(move || {
        let _ = setpgid(0, 0);
        wait_byte(hold);
        match kill(0, SIGTERM) {
            Ok(()) => 2, // should not live to return
            Err(_) => 1,
        }
    })?;
    let e = Child::spawn(gate.hold(0))?;
    let d_pid = d.pid() as i32;
    setpgid(d_pid, 0).ctx("setpgid(d, 0)")?;
    setpgid(e.pid() as i32, d_pid).ctx("setpgid(e, d)")?;
    d_gate.release(1)?;
    expect_signal("d (kill(0, SIGTERM))", d.wait_bounded("d")?, SIGTERM)?;
    expect_signal("e (in d's group)", e.wait_bounded("e")?, SIGTERM)?;
    match wait4(c.pid() as i32, WNOHANG) {
        Ok((0, _)) => {}
        other => return Err(msg!("c, outside the group, after kill(0): {other:?}")),
    }

    // A group whose only member has exited but is not reaped still exists.
    let f_gate = Gate::new()?;
    let (done_r, done_w) = pipe()?;
    let f = Child::spawn(f_gate.hold(0))?;
    done_w.close()?;
    let f_pid = f.pid() as i32;
    setpgid(f_pid, 0).ctx("setpgid(f, 0)")?;
    f_gate.release(1)?;
    let mut byte = [0u8; 1];
    read_full(done_r.raw(), &mut byte)?; // end of file: f is exiting
    let zombie_group = kill(-f_pid, 0);
    expect_exit("f", f.wait()?, 0)?;
    ensure!(
        zombie_group.is_ok(),
        "kill(-pgid, 0) of a group of one exited, unreaped child: {zombie_group:?}"
    );

    gate.release(1)?;
    expect_exit("c", c.wait_bounded("c")?, 0)
}

/// wait4(-pgid) waits for the children of that group only, wait4(0) for
/// those of the caller's group.
fn wait_pgrp(_: &Ctx) -> Outcome {
    let gone = gone_pid()?;
    let gate = Gate::new()?;
    let a = Child::spawn(gate.hold(1))?;
    let b = Child::spawn(gate.hold(2))?;
    let c = Child::spawn(gate.hold(3))?;
    let d = Child::spawn(gate.hold(4))?;
    let (a_pid, b_pid, c_pid, d_pid) = (a.pid(), b.pid(), c.pid(), d.pid());
    setpgid(a_pid as i32, 0).ctx("setpgid(a, 0)")?;
    setpgid(b_pid as i32, a_pid as i32).ctx("setpgid(b, a)")?;
    setpgid(d_pid as i32, 0).ctx("setpgid(d, 0)")?;
    ensure!(
        wait4(-(gone), WNOHANG).err() == Some(Errno::ECHILD),
        "wait4(-reaped pid): {:?}, want ECHILD",
        wait4(-(gone), WNOHANG)
    );
    ensure!(
        wait4(i32::MIN, WNOHANG).err() == Some(Errno::ESRCH),
        "wait4(INT_MIN): {:?}, want ESRCH",
        wait4(i32::MIN, WNOHANG)
    );
    gate.release(4)?;

    let (mut a, mut b) = (Some(a), Some(b));
    let mut from_group = [0; 2];
    for slot in &mut from_group {
        let (pid, status) = wait4(-(a_pid as i32), 0).ctx("wait4(-a)")?;
        let code = if pid == a_pid {
            a.take().map(Child::reaped);
            1
        } else if pid == b_pid {
            b.take().map(Child::reaped);
            2
        } else {
            return Err(msg!(
                "wait4(-a) returned {pid}, not a ({a_pid}) or b ({b_pid})"
            ));
        };
        expect_exit("a member of group a", status, code)?;
        *slot = pid;
    }
    // Both taken (their number once each): the group is gone.
    ensure!(
        from_group[0] != from_group[1],
        "wait4(-a) returned {} twice",
        from_group[0]
    );
    let third = wait4(-(a_pid as i32), WNOHANG);
    ensure!(
        third.err() == Some(Errno::ECHILD),
        "a third wait4(-a): {third:?}, want ECHILD"
    );

    let (pid, status) = wait4(0, 0).ctx("wait4(0)")?;
    ensure!(
        pid == c_pid,
        "wait4(0) returned {pid}, want c ({c_pid}), the only child in our group"
    );
    c.reaped();
    expect_exit("c", status, 3)?;
    let again = wait4(0, WNOHANG);
    ensure!(
        again.err() == Some(Errno::ECHILD),
        "wait4(0) with d in another group: {again:?}, want ECHILD"
    );
    let (pid, status) = wait4(-(d_pid as i32), 0).ctx("wait4(-d)")?;
    ensure!(pid == d_pid, "wait4(-d) returned {pid}, want {d_pid}");
    d.reaped();
    expect_exit("d", status, 4)
}

/// IOPRIO_WHO_PGRP sets every member of a group (who 0: the caller's) and
/// reads the best priority among them.
fn ioprio_pgrp(_: &Ctx) -> Outcome {
    let be = |level| ioprio_value(IOPRIO_CLASS_BE, level);
    let gone = gone_pid()?;
    let gate = Gate::new()?;
    let a = Child::spawn(gate.hold(0))?;
    let b = Child::spawn(gate.hold(0))?;
    let c = Child::spawn(gate.hold(0))?;
    let (a_pid, b_pid, c_pid) = (a.pid() as i32, b.pid() as i32, c.pid() as i32);
    setpgid(a_pid, 0).ctx("setpgid(a, 0)")?;
    setpgid(b_pid, a_pid).ctx("setpgid(b, a)")?;
    let c_before = ioprio_get(IOPRIO_WHO_PROCESS, c_pid);

    let set_group = ioprio_set(IOPRIO_WHO_PGRP, a_pid, be(5));
    let (a_prio, b_prio) = (
        ioprio_get(IOPRIO_WHO_PROCESS, a_pid),
        ioprio_get(IOPRIO_WHO_PROCESS, b_pid),
    );
    let c_after = ioprio_get(IOPRIO_WHO_PROCESS, c_pid);
    let set_b = ioprio_set(IOPRIO_WHO_PROCESS, b_pid, be(3));
    let group_best = ioprio_get(IOPRIO_WHO_PGRP, a_pid);
    let no_group = (
        ioprio_set(IOPRIO_WHO_PGRP, gone, be(0)),
        ioprio_get(IOPRIO_WHO_PGRP, gone),
    );
    ensure!(
        set_group.is_ok() && (a_prio, b_prio) == (Ok(be(5)), Ok(be(5))),
        "ioprio_set(PGRP a, BE 5) {set_group:?}: a {a_prio:?}, b {b_prio:?}"
    );
    ensure!(
        c_after == c_before,
        "c, outside the group, changed from {c_before:?} to {c_after:?}"
    );
    ensure!(
        set_b.is_ok() && group_best == Ok(be(3)),
        "with b at BE 3, ioprio_get(PGRP a) = {group_best:?}, want {:#x}",
        be(3)
    );
    ensure!(
        no_group == (Err(Errno::ESRCH), Err(Errno::ESRCH)),
        "ioprio_set/get(PGRP, reaped pid): {no_group:?}, want ESRCH"
    );

    // An exited, unreaped member counts with the default priority (its I/O
    // context is released at exit): best-effort level 4 is the best.
    let f_gate = Gate::new()?;
    let f = Child::spawn(f_gate.hold(0))?;
    let f_pid = f.pid() as i32;
    setpgid(f_pid, 0).ctx("setpgid(f, 0)")?;
    ensure!(
        ioprio_set(IOPRIO_WHO_PGRP, f_pid, be(6)).is_ok(),
        "ioprio_set(PGRP f, BE 6) failed"
    );
    f_gate.release(1)?;
    let deadline = monotonic_ns() + TIMEOUT_NS;
    while ioprio_get(IOPRIO_WHO_PROCESS, f_pid) != Ok(0) && monotonic_ns() < deadline {
        sleep_ns(200_000);
    }
    let (f_prio, f_group) = (
        ioprio_get(IOPRIO_WHO_PROCESS, f_pid),
        ioprio_get(IOPRIO_WHO_PGRP, f_pid),
    );
    expect_exit("f", f.wait()?, 0)?;
    ensure!(
        (f_prio, f_group) == (Ok(0), Ok(be(4))),
        "an exited member of its own group: ioprio {f_prio:?} (want 0), the group's \
         {f_group:?} (want {:#x})",
        be(4)
    );

    // who 0: the caller's own group.
    let d = Child::spawn(|| {
        if setpgid(0, 0).is_err() {
            return 1;
        }
        if ioprio_set(IOPRIO_WHO_PGRP, 0, be(6)).is_err() {
            return 2;
        }
        if ioprio_get(IOPRIO_WHO_PROCESS, 0) != Ok(be(6)) {
            return 3;
        }
        if ioprio_get(IOPRIO_WHO_PGRP, 0) != Ok(be(6)) {
            return 4;
        }
        0
    })?;
    expect_exit("d (ioprio of its own group)", d.wait_bounded("d")?, 0)?;
    gate.release(3)?;
    for (name, child) in [("a", a), ("b", b), ("c", c)] {
        expect_exit(name, child.wait_bounded(name)?, 0)?;
    }
    Ok(())
}

/// What the `pgrp-thread` thread saw.
#[derive(Default)]
struct ThreadIds {
    /// setpgid(0, 0) (0 or an errno).
    setpgid_self: AtomicI32,
    /// getpgrp() after it.
    pgrp: AtomicU32,
    /// setpgid(own tid, 0): not a group leader (an errno).
    setpgid_tid: AtomicI32,
    /// getpgid(own tid): the process's group.
    pgid_of_tid: AtomicU32,
}

/// The `pgrp-thread` thread: moves its process into a new group.
extern "C" fn thread_sets_pgrp(arg: usize) -> ! {
    // SAFETY: the creator joins us before the report goes away.
    let ids: &ThreadIds = unsafe { shared(arg) };
    let errno = |r: Result<(), Errno>| r.err().map_or(0, |e| e.0);
    ids.setpgid_self
        .store(errno(setpgid(0, 0)), Ordering::Relaxed);
    ids.pgrp.store(getpgrp(), Ordering::Relaxed);
    ids.setpgid_tid
        .store(errno(setpgid(gettid() as i32, 0)), Ordering::Relaxed);
    ids.pgid_of_tid
        .store(getpgid(gettid() as i32).unwrap_or(0), Ordering::Relaxed);
    exit(0)
}

/// A process's group is its threads': a thread's setpgid(0, 0) moves the
/// whole process (pid 0 is the process, not the thread), and a thread that
/// is not the group leader cannot be named (EINVAL).
fn pgrp_thread(_: &Ctx) -> Outcome {
    let child = Child::spawn(|| {
        let Ok(stack) = ThreadStack::new() else {
            return 10;
        };
        let ids = ThreadIds::default();
        // SAFETY: the thread only touches `ids`, which outlives the join,
        // and its own stack, which outlives it.
        let spawned = unsafe {
            stack.clone(
                THREAD_FLAGS,
                thread_sets_pgrp,
                &ids as *const ThreadIds as usize,
            )
        };
        if spawned.is_err() || stack.join().is_err() {
            return 11;
        }
        let me = getpid();
        if ids.setpgid_self.load(Ordering::Relaxed) != 0 {
            return 1;
        }
        if ids.pgrp.load(Ordering::Relaxed) != me {
            return 2;
        }
        if Errno(ids.setpgid_tid.load(Ordering::Relaxed)) != Errno::EINVAL {
            return 3;
        }
        if getpgrp() != me {
            return 4;
        }
        if ids.pgid_of_tid.load(Ordering::Relaxed) != me {
            return 5;
        }
        0
    })?;
    let pid = child.pid();
    let status = child.wait_bounded("pgrp-thread child")?;
    ensure!(
        status.exited() && status.exit_status() == 0,
        "child: {} (1: thread's setpgid(0, 0) failed, 2: thread's getpgrp not the \
         process's pid, 3: setpgid(thread tid) not EINVAL, 4: process not moved, 5: getpgid(thread tid) not the process's group; {pid})",
        Status(status)
    );
    Ok(())
}

/// Ids are shown in the caller's pid namespace: a new namespace's init
/// sees its parent's group and session as 0, and its own session as 1.
fn pgrp_pid_namespace(_: &Ctx) -> Outcome {
    use forkvm_abi::linux::clone::CLONE_NEWPID;
    let gate = Gate::new()?;
    let hold = gate.read.raw();
    let child = Child::spawn_with_flags(CLONE_NEWPID, move || {
        if getpid() != 1 {
            return 1;
        }
        if getpgrp() != 0 || getsid(0) != Ok(0) || getpgid(1) != Ok(0) {
            return 2;
        }
        if setsid() != Ok(1) {
            return 3;
        }
        if getpgrp() != 1 || getsid(0) != Ok(1) {
            return 4;
        }
        wait_byte(hold);
        0
    })?;
    let pid = child.pid();
    let deadline = monotonic_ns() + TIMEOUT_NS;
    while getsid(pid as i32) != Ok(pid) && monotonic_ns() < deadline {
        sleep_ns(200_000);
    }
    let seen = ids_of(pid);
    gate.release(1)?;
    let status = child.wait_bounded("pid namespace init")?;
    ensure!(
        status.exited() && status.exit_status() == 0,
        "the namespace's init: {} (1: pid not 1, 2: outer ids not 0, 3: setsid not 1, \
         4: ids after setsid not 1)",
        Status(status)
    );
    ensure!(
        seen == (Ok(pid), Ok(pid)),
        "from outside, the namespace init's (pgid, sid): {seen:?}, want ({pid}, {pid})"
    );
    Ok(())
}
