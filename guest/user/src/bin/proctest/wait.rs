//! Exit and `wait4`: statuses, `WNOHANG`, `ECHILD`, orphans reparented,
//! zombies reaped.

use super::*;

pub const SCENARIOS: &[(&str, Scenario)] = &[
    ("wait-status-exit", wait_status_exit),
    ("wait-status-sigkill", wait_status_sigkill),
    ("wait-status-sigsegv", wait_status_sigsegv),
    ("wait-any-and-wnohang", wait_any_and_wnohang),
    ("wait-any-oldest-first", wait_any_oldest_first),
    ("wait-echild", wait_echild),
    ("orphan-reparented", orphan_reparented),
    ("zombie-reaped", zombie_reaped),
];

/// Children exiting 0, 1 and 255, each reaped by pid in creation order.
fn wait_status_exit(_: &Ctx) -> Outcome {
    let codes = [0, 1, 255];
    let c0 = Child::spawn(|| codes[0])?;
    let c1 = Child::spawn(|| codes[1])?;
    let c2 = Child::spawn(|| codes[2])?;
    for (child, code) in [c0, c1, c2].into_iter().zip(codes) {
        let pid = child.pid();
        let status = child.wait()?;
        expect_exit(msg!("child {pid}").as_str(), status, code)?;
    }
    Ok(())
}

/// A child busy in user mode (no system calls) is killed by `SIGKILL`.
fn wait_status_sigkill(_: &Ctx) -> Outcome {
    let (r, w) = pipe()?;
    let child = Child::spawn(|| {
        let _ = write(w.raw(), b"s");
        loop {
            core::hint::spin_loop();
        }
    })?;
    drop(w);
    let mut started = [0u8; 1];
    ensure!(
        read_full(r.raw(), &mut started)? == 1,
        "child died before spinning"
    );
    kill(child.pid() as i32, SIGKILL).ctx("kill(child, SIGKILL)")?;
    let status = child.wait_bounded("SIGKILL of a spinning child")?;
    expect_signal("spinning child after SIGKILL", status, SIGKILL)
}

/// A child writing to address 0 dies of `SIGSEGV`; the parent goes on.
fn wait_status_sigsegv(_: &Ctx) -> Outcome {
    let canary = core::hint::black_box(0x5e9f_u32);
    let child = Child::spawn(|| {
        // SAFETY: nothing lives at address 0; the write faults.
        unsafe { poke(0, 1) };
        0
    })?;
    let status = child.wait_bounded("write to address 0")?;
    expect_signal("child writing address 0", status, SIGSEGV)?;
    ensure!(
        core::hint::black_box(canary) == 0x5e9f && getpid() > 0,
        "parent damaged"
    );
    Ok(())
}

/// `wait4(-1, WNOHANG)` with a running child returns 0; once it exits,
/// `wait4(-1)` returns its pid; then `wait4(-1)` fails with `ECHILD`.
fn wait_any_and_wnohang(_: &Ctx) -> Outcome {
    let (r, w) = pipe()?;
    let child = Child::spawn(|| {
        let mut go = [0u8; 1];
        match read(r.raw(), &mut go) {
            Ok(1) => 0,
            _ => 1,
        }
    })?;
    drop(r);
    let pid = child.pid();
    match wait4(-1, WNOHANG) {
        Ok((0, _)) => {}
        Ok((got, status)) => {
            if got == pid {
                child.reaped();
            }
            return Err(msg!(
                "wait4(-1, WNOHANG) with a running child: expected 0, got pid {got} ({})",
                Status(status)
            ));
        }
        Err(e) => return Err(msg!("wait4(-1, WNOHANG) with a running child: {e}")),
    }
    write_all(w.raw(), b"g").ctx("write(pipe)")?;
    match wait4(-1, 0) {
        Ok((got, status)) if got == pid => {
            child.reaped();
            expect_exit("child", status, 0)?;
        }
        Ok((got, _)) => return Err(msg!("wait4(-1): expected pid {pid}, got {got}")),
        Err(e) => return Err(msg!("wait4(-1) with an exiting child: {e}")),
    }
    let last = wait4(-1, 0);
    ensure!(
        last.is_err_and(|e| e == Errno::ECHILD),
        "wait4(-1) with no children: expected ECHILD, got {:?}",
        last.map(|(p, s)| (p, s.0))
    );
    Ok(())
}

/// `wait4(-1)` reaps ended children oldest first: Linux keeps a parent's
/// children in creation order and a wait reports the first zombie on that
/// list. Each child is known to have ended before any is reaped
/// (`waitid(P_PID, WNOWAIT)` reports without reaping).
fn wait_any_oldest_first(_: &Ctx) -> Outcome {
    use forkvm_user::syscall::{waitid, P_PID, WEXITED, WNOWAIT};
    let mut pids = [0 as Pid; 5];
    for (code, pid) in pids.iter_mut().enumerate() {
        *pid = Child::spawn(|| code as i32)?.reaped();
    }
    for &pid in &pids {
        waitid(P_PID, pid as i32, WEXITED | WNOWAIT).ctx("waitid(P_PID, WNOWAIT)")?;
    }
    let mut order = [0 as Pid; 5];
    for slot in order.iter_mut() {
        let (pid, status) = wait4(-1, 0).ctx("wait4(-1)")?;
        *slot = pid;
        let code = pids.iter().position(|&p| p == pid).unwrap_or(99) as i32;
        expect_exit(msg!("child {pid}").as_str(), status, code)?;
    }
    ensure!(
        order == pids,
        "wait4(-1) reaped {order:?}; created (oldest first) {pids:?}"
    );
    Ok(())
}

/// `wait4` for a pid that is not a child: `ECHILD`.
fn wait_echild(_: &Ctx) -> Outcome {
    let reaped = Child::spawn(|| 0)?;
    let old = reaped.pid();
    reaped.wait()?;
    for (what, pid) in [
        ("the parent", getppid()),
        ("itself", getpid()),
        ("an already reaped child", old),
    ] {
        let got = wait4(pid as i32, WNOHANG);
        ensure!(
            got.is_err_and(|e| e == Errno::ECHILD),
            "wait4({pid}) for {what}: expected ECHILD, got {:?}",
            got.map(|(p, s)| (p, s.0))
        );
    }
    Ok(())
}

/// The middle process of `orphan-reparented`: forks the grandchild, waits
/// until it has seen us as its parent, and exits without reaping it.
fn orphan_middle(report_w: i32) -> i32 {
    let me = getpid();
    let Ok([ack_r, ack_w]) = pipe2(0) else {
        return 10;
    };
    match fork() {
        Ok(0) => exit_group(orphan_grandchild(me, ack_w, report_w)),
        Ok(_) => {}
        Err(_) => return 11,
    }
    let _ = close(ack_w);
    let mut ack = [0u8; 1];
    match read(ack_r, &mut ack) {
        Ok(1) => 0,
        _ => 12,
    }
}

/// The grandchild: reports `[ppid at start, middle's pid, ppid after the
/// middle exited, own pid]` through the pipe.
fn orphan_grandchild(middle: Pid, ack_w: i32, report_w: i32) -> i32 {
    let first = getppid();
    let _ = write(ack_w, b"a");
    let _ = close(ack_w);
    let deadline = monotonic_ns() + TIMEOUT_NS;
    let mut now = getppid();
    while now == middle && monotonic_ns() < deadline {
        sleep_ns(MS / 2);
        now = getppid();
    }
    let mut report = [0u8; 16];
    for (i, v) in [first, middle, now, getpid()].into_iter().enumerate() {
        report[i * 4..i * 4 + 4].copy_from_slice(&v.to_ne_bytes());
    }
    match write_all(report_w, &report) {
        Ok(()) => 0,
        Err(_) => 1,
    }
}

/// A child forks a grandchild and exits: the grandchild's `getppid()`
/// changes from the child's pid to the reaper's (on Linux: init of the pid
/// namespace or a subreaper; this process itself if it is pid 1, in which
/// case it reaps the grandchild).
fn orphan_reparented(_: &Ctx) -> Outcome {
    let (r, w) = pipe()?;
    let middle = Child::spawn(|| orphan_middle(w.raw()))?;
    let middle_pid = middle.pid();
    drop(w);
    let status = middle.wait()?;
    expect_exit("child", status, 0)?;
    // Ends at the grandchild's exit (its write end closes) at the latest.
    let mut report = [0u8; 16];
    let n = read_full(r.raw(), &mut report)?;
    ensure!(n == 16, "grandchild's report: {n} of 16 bytes");
    // End of file once the grandchild has exited (closing its write end).
    let mut more = [0u8; 1];
    let eof = read_full(r.raw(), &mut more)?;
    ensure!(eof == 0, "grandchild wrote more than its report");
    let word =
        |i: usize| u32::from_ne_bytes([report[i], report[i + 1], report[i + 2], report[i + 3]]);
    let (first, middle, now, grandchild) = (word(0), word(4), word(8), word(12));
    if now == getpid() {
        // We are the reaper.
        let _ = Child { pid: grandchild }.wait_bounded("orphaned grandchild");
    }
    ensure!(
        middle == middle_pid && first == middle_pid,
        "grandchild's first getppid() {first}, expected its parent {middle_pid}"
    );
    ensure!(
        now != middle_pid,
        "grandchild's getppid() still {now} (its exited parent) after {} ms",
        TIMEOUT_NS / MS
    );
    ensure!(now != 0, "orphan's getppid() is 0");
    Ok(())
}

const ZOMBIES: usize = 50;

/// 50 children that exit at once are all reaped by `wait4(-1)` (each once,
/// with its own status); then `wait4(-1, WNOHANG)` fails with `ECHILD`.
fn zombie_reaped(_: &Ctx) -> Outcome {
    let mut pids = [0 as Pid; ZOMBIES];
    let mut forked = 0;
    let mut outcome = Ok(());
    for (i, slot) in pids.iter_mut().enumerate() {
        match Child::spawn(|| i as i32) {
            Ok(child) => {
                *slot = child.reaped();
                forked += 1;
            }
            Err(e) => {
                outcome = Err(e);
                break;
            }
        }
    }
    let mut reaped = [false; ZOMBIES];
    for _ in 0..forked {
        match wait4(-1, 0) {
            Ok((pid, status)) => match pids[..forked].iter().position(|&p| p == pid) {
                Some(i) if !reaped[i] => {
                    reaped[i] = true;
                    if outcome.is_ok() {
                        outcome = expect_exit(msg!("child #{i}").as_str(), status, i as i32);
                    }
                }
                _ => {
                    if outcome.is_ok() {
                        outcome = Err(msg!("wait4(-1) returned unexpected pid {pid}"));
                    }
                }
            },
            Err(e) => {
                if outcome.is_ok() {
                    outcome = Err(msg!("wait4(-1) with zombies left: {e}"));
                }
                break;
            }
        }
    }
    // Whatever went wrong, leave no child behind.
    for (i, &pid) in pids[..forked].iter().enumerate() {
        if !reaped[i] {
            drop(Child { pid });
        }
    }
    outcome?;
    let last = wait4(-1, WNOHANG);
    ensure!(
        last.is_err_and(|e| e == Errno::ECHILD),
        "wait4(-1, WNOHANG) after reaping all: expected ECHILD, got {:?}",
        last.map(|(p, s)| (p, s.0))
    );
    Ok(())
}
