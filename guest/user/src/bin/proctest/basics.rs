//! Process churn, scheduling, time and identity: many forks in a row,
//! `sched_yield`, `nanosleep`, `uname`.

use super::*;

pub const SCENARIOS: &[(&str, Scenario)] = &[
    ("fork-many", fork_many),
    ("sched-yield", sched_yield),
    ("nanosleep", nanosleep_10ms),
    ("uname", uname_linux),
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
