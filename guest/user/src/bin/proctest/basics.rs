//! Process churn, scheduling, time and identity: many forks in a row,
//! `sched_yield`, `nanosleep`, `uname`, a thread's name (`prctl`).

use super::*;

pub const SCENARIOS: &[(&str, Scenario)] = &[
    ("fork-many", fork_many),
    ("sched-yield", sched_yield),
    ("nanosleep", nanosleep_10ms),
    ("uname", uname_linux),
    ("prctl-name", prctl_name),
];

const FORKS: usize = 200;

/// 200 sequential fork + exit + wait4 cycles, each child with its own status.
fn fork_many(_: &Ctx) -> Outcome {
    for i in 0..FORKS {
        let code = (i % 256) as i32;
        let child = Child::spawn(|| code)?;
        expect_exit(msg!("fork #{i}").as_str(), child.wait()?, code)?;
    }
    Ok(())
}

fn sched_yield(_: &Ctx) -> Outcome {
    // SAFETY: touches no memory.
    let ret = unsafe { syscall0(nr::SCHED_YIELD) };
    ensure!(ret == 0, "sched_yield returned {}", Ret(ret));
    Ok(())
}

/// A 10 ms `nanosleep` lasts at least 10 ms of `CLOCK_MONOTONIC` (and less
/// than a second).
fn nanosleep_10ms(_: &Ctx) -> Outcome {
    let start = monotonic_ns();
    nanosleep(Timespec::from_nanos(10 * MS)).map_err(|(e, _)| msg!("nanosleep: {e}"))?;
    let slept = monotonic_ns() - start;
    ensure!(
        slept >= 10 * MS,
        "nanosleep(10 ms) returned after {slept} ns"
    );
    ensure!(slept < 1_000 * MS, "nanosleep(10 ms) took {slept} ns");
    Ok(())
}

fn uname_linux(_: &Ctx) -> Outcome {
    let u = uname().ctx("uname")?;
    let (sysname, machine) = (c_field(&u.sysname), c_field(&u.machine));
    ensure!(
        sysname == b"Linux",
        "sysname \"{}\", expected \"Linux\"",
        Bytes(sysname)
    );
    ensure!(
        machine == b"x86_64",
        "machine \"{}\", expected \"x86_64\"",
        Bytes(machine)
    );
    Ok(())
}

/// PR_SET_NAME keeps the first 15 bytes of the name, which PR_GET_NAME
/// (16 bytes with the NUL) and `/proc/self/status` then show; a bad
/// pointer is EFAULT. In a child, so this program keeps its name.
fn prctl_name(_: &Ctx) -> Outcome {
    const PRCTL: usize = 157;
    const PR_SET_NAME: usize = 15;
    const PR_GET_NAME: usize = 16;
    let child = Child::spawn(|| {
        let long = c"abcdefghijklmnopqrstuvwxyz";
        // SAFETY: the kernel reads at most 16 bytes of the string.
        if unsafe { syscall2(PRCTL, PR_SET_NAME, long.as_ptr() as usize) } != 0 {
            return 1;
        }
        let mut name = [0xffu8; 16];
        // SAFETY: the kernel writes 16 bytes into `name`.
        if unsafe { syscall2(PRCTL, PR_GET_NAME, name.as_mut_ptr() as usize) } != 0 {
            return 2;
        }
        if &name != b"abcdefghijklmno\0" {
            return 3;
        }
        let mut status = [0u8; 64];
        let path = c"/proc/self/status";
        // SAFETY: a NUL-terminated path.
        let opened = unsafe { syscall4(257, -100isize as usize, path.as_ptr() as usize, 0, 0) };
        let Ok(fd) = forkvm_user::syscall::check(opened).map(|fd| fd as i32) else {
            return 4;
        };
        let n = read(fd, &mut status).unwrap_or(0);
        let _ = close(fd);
        if !status[..n].starts_with(b"Name:\tabcdefghijklmno\n") {
            return 5;
        }
        // SAFETY: an unmapped address: the kernel's copy faults.
        if unsafe { syscall2(PRCTL, PR_SET_NAME, 8) } != -(Errno::EFAULT.0 as isize) {
            return 6;
        }
        // SAFETY: as above.
        if unsafe { syscall2(PRCTL, PR_GET_NAME, 8) } != -(Errno::EFAULT.0 as isize) {
            return 7;
        }
        0
    })?;
    expect_exit("the child (exit: the check that failed)", child.wait()?, 0)
}
