//! What `clone` copies and what it shares, flag by flag (the steps of
//! Linux `copy_process`): signal actions (`CLONE_SIGHAND`), the
//! RLIMIT_NPROC check, UTS and pid namespaces, the fs context
//! (`CLONE_FS`), the I/O context (`CLONE_IO`) and System V semaphore undo
//! lists (`CLONE_SYSVSEM`).

use forkvm_user::ioprio::{
    ioprio_get, ioprio_set, ioprio_value, IOPRIO_CLASS_BE, IOPRIO_CLASS_NONE, IOPRIO_WHO_PROCESS,
};
use forkvm_user::sem::{
    cmd, semctl, semget, semop, SemBuf, IPC_CREAT, IPC_EXCL, IPC_NOWAIT, IPC_PRIVATE, SEM_UNDO,
};
use forkvm_user::signal::sig::SIGUSR2;
use forkvm_user::signal::{sigaction_raw, SigAction, SIG_DFL, SIG_IGN};

use super::*;

pub const SCENARIOS: &[(&str, Scenario)] = &[
    ("sighand-shared", sighand_shared),
    ("nproc-cap-sys-resource", nproc_cap_sys_resource),
    ("uts-namespace", uts_namespace),
    ("pid-namespace", pid_namespace),
    ("clone-fs-umask", clone_fs_umask),
    ("clone-io-ioprio", clone_io_ioprio),
    ("sysvsem-undo", sysvsem_undo),
];

/// The handler word of `signal`'s action; with `set_ignore`, installs
/// SIG_IGN first (and returns the handler before it).
fn sigaction_handler(signal: i32, set_ignore: bool) -> Result<usize, Msg> {
    let ignore = SigAction {
        handler: SIG_IGN,
        ..SigAction::default()
    };
    sigaction_raw(signal, set_ignore.then_some(&ignore))
        .map(|old| old.handler)
        .map_err(|e| msg!("rt_sigaction({signal}): {e}"))
}

extern "C" fn thread_ignores_sigusr2(_: usize) -> ! {
    let _ = sigaction_handler(SIGUSR2, true);
    exit(0)
}

/// Signal actions are shared with CLONE_SIGHAND (a thread's change is the
/// process's) and copied without it (a forked child's change is its own).
/// SIGUSR2 is the signal whose action changes.
fn sighand_shared(_: &Ctx) -> Outcome {
    ensure!(
        sigaction_handler(SIGUSR2, false)? == SIG_DFL,
        "SIGUSR2 is not at its default action to start with"
    );
    let child = Child::spawn(|| match sigaction_handler(SIGUSR2, true) {
        Ok(_) => 0,
        Err(_) => 1,
    })?;
    expect_exit(
        "a forked child ignoring SIGUSR2",
        child.wait_bounded("sigaction child")?,
        0,
    )?;
    ensure!(
        sigaction_handler(SIGUSR2, false)? == SIG_DFL,
        "a forked child's signal action leaked into the parent"
    );
    let stack = ThreadStack::new()?;
    // SAFETY: as in thread_shares_mm.
    unsafe { stack.clone(THREAD_FLAGS, thread_ignores_sigusr2, 0) }.ctx("clone(thread)")?;
    stack.join()?;
    let after = sigaction_handler(SIGUSR2, false)?;
    // Put the default back before judging, so a failure leaves no trace.
    let _ = sigaction_raw(SIGUSR2, Some(&SigAction::default()));
    ensure!(
        after == SIG_IGN,
        "a CLONE_SIGHAND thread's signal action was not shared"
    );
    Ok(())
}

/// A child in a new UTS namespace (CLONE_NEWUTS, needs CAP_SYS_ADMIN)
/// changes its host name; the parent's stays. Without CLONE_NEWUTS a
/// child's change would be everyone's, so that is not tried.
fn uts_namespace(_: &Ctx) -> Outcome {
    use forkvm_abi::linux::clone::CLONE_NEWUTS;
    let before = hostname()?;
    let child = Child::spawn_with_flags(CLONE_NEWUTS, || {
        if sethostname(b"proctest-uts") != 0 {
            return 1;
        }
        match uname() {
            Ok(u) if c_field(&u.nodename) == b"proctest-uts" => 0,
            _ => 2,
        }
    })?;
    let status = child.wait_bounded("the child in a new UTS namespace")?;
    expect_exit("sethostname in a new UTS namespace", status, 0)?;
    ensure!(
        hostname()? == before,
        "the parent's host name changed with the child's namespace"
    );
    Ok(())
}

/// A child in a new pid namespace (CLONE_NEWPID, needs CAP_SYS_ADMIN) is
/// pid 1 there with parent 0; the parent sees its outer pid. Inside, the
/// next process is pid 2, and an orphan is adopted by the namespace's
/// init (pid 1), not by the real init.
fn pid_namespace(_: &Ctx) -> Outcome {
    use forkvm_abi::linux::clone::CLONE_NEWPID;
    let child = Child::spawn_with_flags(CLONE_NEWPID, || {
        if getpid() != 1 {
            return 10;
        }
        if getppid() != 0 {
            return 11;
        }
        // pid 2 forks pid 3 and exits; pid 3 must then see parent 1.
        let Ok(middle) = fork() else { return 12 };
        if middle == 0 {
            if getpid() != 2 {
                exit_group(20);
            }
            let Ok(grandchild) = fork() else {
                exit_group(21)
            };
            if grandchild == 0 {
                let deadline = monotonic_ns() + TIMEOUT_NS;
                while getppid() != 1 {
                    if monotonic_ns() > deadline {
                        exit_group(31);
                    }
                    forkvm_user::syscall::sched_yield();
                }
                exit_group(0);
            }
            exit_group(0);
        }
        // As the namespace's init, reap both (the orphan was adopted).
        let mut statuses = 0;
        for _ in 0..2 {
            match wait4(-1, 0) {
                Ok((_, status)) if status.exited() && status.exit_status() == 0 => statuses += 1,
                Ok((_, status)) => return 40 + status.exit_status().max(status.term_signal()),
                Err(_) => return 13,
            }
        }
        if statuses == 2 {
            0
        } else {
            14
        }
    })?;
    ensure!(
        child.pid() > 1,
        "the parent should see the child's outer pid, got {}",
        child.pid()
    );
    let status = child.wait_bounded("the init of a new pid namespace")?;
    expect_exit(
        "pid numbering and reaping in a new pid namespace",
        status,
        0,
    )
}

/// RLIMIT_NPROC spares a non-root task that holds CAP_SYS_RESOURCE: with
/// PR_SET_KEEPCAPS the permitted set survives setuid, capset raises
/// CAP_SYS_RESOURCE again, and forks past the limit succeed; dropping it
/// makes the next fork fail with EAGAIN.
fn nproc_cap_sys_resource(_: &Ctx) -> Outcome {
    use forkvm_user::cred::{self, Capabilities, Rlimit, RLIMIT_NPROC};
    const CAP_SYS_RESOURCE: u64 = 1 << 24;
    const NOBODY: u32 = 65534;
    // Where the caller itself lacks the capability (some container roots,
    // this CI host's among them) there is nothing to show; the forkvm guest
    // gives root every capability, so it always runs there.
    if cred::capget(0).ctx("capget")?.permitted & CAP_SYS_RESOURCE == 0 {
        return Ok(());
    }
    let child = Child::spawn(|| {
        let one = Rlimit { cur: 1, max: 1 };
        // SAFETY: no memory is passed.
        let keep = unsafe { forkvm_user::syscall::syscall2(nr::PRCTL, 8, 1) };
        if keep != 0 || cred::prlimit64(0, RLIMIT_NPROC, Some(one)).is_err() {
            return 10;
        }
        if cred::setgid(NOBODY).is_err() || cred::setuid(NOBODY).is_err() {
            return 11;
        }
        let Ok(caps) = cred::capget(0) else { return 12 };
        if caps.permitted & CAP_SYS_RESOURCE == 0 || caps.effective != 0 {
            return 13; // keep-caps keeps the permitted set, clears the effective
        }
        let with_cap = Capabilities {
            effective: CAP_SYS_RESOURCE,
            ..caps
        };
        if cred::capset(with_cap).is_err() {
            return 14;
        }
        for _ in 0..3 {
            match fork() {
                Ok(0) => exit_group(0),
                Ok(pid) => {
                    let _ = wait4(pid as i32, 0);
                }
                Err(_) => return 15, // the capability should have exempted us
            }
        }
        if cred::capset(Capabilities {
            effective: 0,
            ..caps
        })
        .is_err()
        {
            return 16;
        }
        match fork() {
            Ok(0) => exit_group(0),
            Ok(pid) => {
                let _ = wait4(pid as i32, 0);
                17 // over the limit without the capability: must fail
            }
            Err(e) if e == forkvm_user::Errno::EAGAIN => 0,
            Err(_) => 18,
        }
    })?;
    let status = child.wait_bounded("the CAP_SYS_RESOURCE child")?;
    expect_exit("RLIMIT_NPROC with and without CAP_SYS_RESOURCE", status, 0)
}

/// `umask` is per process after fork and shared with CLONE_FS (the file
/// system context, Linux `fs_struct`).
fn clone_fs_umask(_: &Ctx) -> Outcome {
    use forkvm_abi::linux::clone::CLONE_FS;
    let original = umask(0o022);
    let child = Child::spawn(|| {
        umask(0o077);
        0
    })?;
    expect_exit(
        "a forked child setting its umask",
        child.wait_bounded("umask child")?,
        0,
    )?;
    let after_fork = umask(0o022);
    let child = Child::spawn_with_flags(CLONE_FS, || {
        umask(0o077);
        0
    })?;
    expect_exit(
        "a CLONE_FS child setting its umask",
        child.wait_bounded("umask child")?,
        0,
    )?;
    let after_clone_fs = umask(original);
    ensure!(
        after_fork == 0o022,
        "a forked child's umask leaked into the parent: {after_fork:#o}"
    );
    ensure!(
        after_clone_fs == 0o077,
        "a CLONE_FS child's umask was not shared: {after_clone_fs:#o}"
    );
    Ok(())
}

/// The I/O priority lives in the I/O context: a fork copies a priority
/// the parent chose, CLONE_IO shares it (Linux `copy_io`). Bad values and
/// targets get Linux's errno.
fn clone_io_ioprio(_: &Ctx) -> Outcome {
    use forkvm_abi::linux::clone::CLONE_IO;
    let be = |level| ioprio_value(IOPRIO_CLASS_BE, level);
    ensure!(
        ioprio_set(IOPRIO_WHO_PROCESS, 0, be(2)).is_ok(),
        "ioprio_set(BE 2) failed"
    );
    let child_sets_be6 = || {
        if ioprio_get(IOPRIO_WHO_PROCESS, 0) != Ok(be(2)) {
            return 1;
        }
        if ioprio_set(IOPRIO_WHO_PROCESS, 0, be(6)).is_err() {
            return 2;
        }
        0
    };
    let child = Child::spawn(child_sets_be6)?;
    expect_exit(
        "a forked child reading and setting its I/O priority",
        child.wait_bounded("ioprio child")?,
        0,
    )?;
    let after_fork = ioprio_get(IOPRIO_WHO_PROCESS, 0);
    let child = Child::spawn_with_flags(CLONE_IO, child_sets_be6)?;
    expect_exit(
        "a CLONE_IO child reading and setting its I/O priority",
        child.wait_bounded("ioprio child")?,
        0,
    )?;
    let after_clone_io = ioprio_get(IOPRIO_WHO_PROCESS, 0);
    let none_with_level = ioprio_set(IOPRIO_WHO_PROCESS, 0, ioprio_value(IOPRIO_CLASS_NONE, 1));
    let bad_class = ioprio_set(IOPRIO_WHO_PROCESS, 0, ioprio_value(4, 0));
    let bad_which = ioprio_get(9, 0);
    let no_such_pid = ioprio_get(IOPRIO_WHO_PROCESS, 0x3fff_fff0);
    let _ = ioprio_set(IOPRIO_WHO_PROCESS, 0, 0);
    ensure!(
        after_fork == Ok(be(2)),
        "a forked child's I/O priority leaked into the parent: {after_fork:?}"
    );
    ensure!(
        after_clone_io == Ok(be(6)),
        "a CLONE_IO child's I/O priority was not shared: {after_clone_io:?}"
    );
    ensure!(
        (none_with_level, bad_class, bad_which, no_such_pid)
            == (
                Err(Errno::EINVAL),
                Err(Errno::EINVAL),
                Err(Errno::EINVAL),
                Err(Errno::ESRCH)
            ),
        "errors: class none with a level {none_with_level:?}, class 4 {bad_class:?}, \
         which 9 {bad_which:?}, no such pid {no_such_pid:?} (want EINVAL EINVAL EINVAL ESRCH)"
    );
    Ok(())
}

/// System V semaphore undo (SEM_UNDO) is applied when the process exits;
/// CLONE_SYSVSEM shares the undo list, so a sharer's exit does not apply
/// it but the last holder's does (Linux `copy_semundo`/`exit_sem`).
/// Blocking waits, IPC_RMID waking a sleeper with EIDRM, and Linux's
/// errnos.
fn sysvsem_undo(_: &Ctx) -> Outcome {
    use forkvm_abi::linux::clone::CLONE_SYSVSEM;
    let id = semget(IPC_PRIVATE, 2, 0o600).ctx("semget(IPC_PRIVATE)")?;
    let result = sysvsem_scenario(id);
    let removed = semctl(id, 0, cmd::IPC_RMID, 0);
    result?;
    ensure!(removed.is_ok(), "IPC_RMID: {removed:?}");
    ensure!(
        semop(id, &[SemBuf::new(0, 1, 0)]) == Err(Errno::EINVAL),
        "semop on a removed set is EINVAL"
    );
    return Ok(());

    /// `semop` of the one operation `(num, op, flg)`.
    fn op1(id: i32, num: u16, op: i16, flg: i16) -> Result<(), Errno> {
        semop(id, &[SemBuf::new(num, op, flg)])
    }

    fn sysvsem_scenario(id: i32) -> Outcome {
        let get = |num, cmd| semctl(id, num, cmd, 0);
        let val = |num| get(num, cmd::GETVAL);
        let set = |num, value| semctl(id, num, cmd::SETVAL, value).map(drop);
        ensure!(set(0, 1).is_ok(), "SETVAL 1");
        // Undo at exit.
        let child = Child::spawn(|| op1(id, 0, -1, SEM_UNDO).is_err() as i32)?;
        expect_exit("semop(-1, SEM_UNDO)", child.wait_bounded("sem child")?, 0)?;
        ensure!(
            val(0) == Ok(1),
            "SEM_UNDO was not applied at exit: {:?}",
            val(0)
        );
        // No undo without SEM_UNDO.
        let child = Child::spawn(|| op1(id, 0, -1, 0).is_err() as i32)?;
        expect_exit("semop(-1)", child.wait_bounded("sem child")?, 0)?;
        ensure!(val(0) == Ok(0), "a plain semop was undone: {:?}", val(0));
        ensure!(set(0, 1).is_ok(), "SETVAL 1");
        // A CLONE_SYSVSEM child shares its parent's list: its exit does not
        // undo; the parent's (the last holder's) does.
        let middle = Child::spawn(move || {
            let sharer =
                Child::spawn_with_flags(CLONE_SYSVSEM, || op1(id, 0, -1, SEM_UNDO).is_err() as i32);
            let Ok(sharer) = sharer else { return 10 };
            match sharer.wait_bounded("sysvsem sharer") {
                Ok(status) if status.exited() && status.exit_status() == 0 => {}
                _ => return 11,
            }
            if semctl(id, 0, cmd::GETVAL, 0) != Ok(0) {
                return 12; // undone at the sharer's exit
            }
            0
        })?;
        expect_exit(
            "a CLONE_SYSVSEM child's undo waits for its parent",
            middle.wait_bounded("sysvsem parent")?,
            0,
        )?;
        ensure!(
            val(0) == Ok(1),
            "the last holder's exit did not undo: {:?}",
            val(0)
        );
        // A sleeper: waits for the value, counted by GETNCNT, woken by +1.
        ensure!(set(1, 0).is_ok(), "SETVAL 0");
        let sleeper = Child::spawn(|| op1(id, 1, -1, 0).is_err() as i32)?;
        let deadline = monotonic_ns() + TIMEOUT_NS;
        while get(1, cmd::GETNCNT) != Ok(1) && monotonic_ns() < deadline {
            sleep_ns(MS);
        }
        ensure!(get(1, cmd::GETNCNT) == Ok(1), "GETNCNT of a sleeper");
        ensure!(op1(id, 1, 1, 0).is_ok(), "semop(+1)");
        expect_exit("a woken semop", sleeper.wait_bounded("sem sleeper")?, 0)?;
        ensure!(val(1) == Ok(0), "the sleeper's -1 was not applied");
        // Linux's errnos. 501 operations: one more than SEMOPM, refused
        // before any is looked at.
        let too_many = [SemBuf::new(0, 1, 0); 501];
        let errors = [
            semop(id, &[]),
            semop(id, &too_many),
            op1(-1, 0, 1, 0),
            op1(id, 2, 1, 0),
            op1(id, 1, -1, IPC_NOWAIT),
            op1(id, 0, i16::MAX, 0),
            semctl(id, 0, cmd::SETVAL, 40000).map(drop),
            get(2, cmd::GETVAL).map(drop),
        ];
        let want = [
            Errno::EINVAL,
            Errno::E2BIG,
            Errno::EINVAL,
            Errno::EFBIG,
            Errno::EAGAIN,
            Errno::ERANGE,
            Errno::ERANGE,
            Errno::EINVAL,
        ]
        .map(Err);
        ensure!(
            errors == want,
            "errnos {errors:?}, want EINVAL E2BIG EINVAL EFBIG EAGAIN ERANGE ERANGE EINVAL"
        );
        // Keys: absent without IPC_CREAT, EEXIST with IPC_EXCL.
        let key = 0x4b46_0000 + forkvm_user::syscall::getpid() as i32;
        ensure!(
            semget(key, 1, 0o600) == Err(Errno::ENOENT),
            "semget of an absent key"
        );
        let keyed = semget(key, 1, IPC_CREAT | 0o600).ctx("semget(IPC_CREAT)")?;
        let again = semget(key, 1, 0o600);
        let excl = semget(key, 1, IPC_CREAT | IPC_EXCL | 0o600);
        let more = semget(key, 2, 0o600);
        let _ = semctl(keyed, 0, cmd::IPC_RMID, 0);
        ensure!(
            (again, excl, more) == (Ok(keyed), Err(Errno::EEXIST), Err(Errno::EINVAL)),
            "existing key: again {again:?} (want {keyed}), IPC_EXCL {excl:?}, more \
             semaphores {more:?}"
        );
        // IPC_RMID wakes a sleeper with EIDRM.
        let victim_set = semget(IPC_PRIVATE, 1, 0o600).ctx("semget")?;
        let sleeper = Child::spawn(|| (op1(victim_set, 0, -1, 0) != Err(Errno::EIDRM)) as i32)?;
        let deadline = monotonic_ns() + TIMEOUT_NS;
        while semctl(victim_set, 0, cmd::GETNCNT, 0) != Ok(1) && monotonic_ns() < deadline {
            sleep_ns(MS);
        }
        ensure!(semctl(victim_set, 0, cmd::IPC_RMID, 0).is_ok(), "IPC_RMID");
        expect_exit(
            "EIDRM for a sleeper",
            sleeper.wait_bounded("sem sleeper")?,
            0,
        )
    }
}
