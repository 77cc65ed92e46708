//! System V semaphores: semop with SEM_UNDO, semtimedop, the semctl commands.
//!
//! Every set is `IPC_PRIVATE` and removed when its scenario ends (a [`Set`]
//! guard), so the host is left clean. Errors are compared as raw results
//! (`-22` for EINVAL), in the order Linux checks them.

use forkvm_user::cred::{getegid, geteuid, setuid};
use forkvm_user::sem::{
    cmd, semctl, semctl_info, semctl_set, semctl_stat, semget, semop, semtimedop, SemBuf, SemidDs,
    IPC_NOWAIT, IPC_PRIVATE,
};
use forkvm_user::syscall::clock_gettime;

use super::*;

pub const SCENARIOS: &[(&str, Scenario)] = &[
    ("semtimedop-timeout", semtimedop_timeout),
    ("semtimedop-woken", semtimedop_woken),
    ("semtimedop-errors", semtimedop_errors),
    ("semctl-ipc-stat", semctl_ipc_stat),
    ("semctl-ipc-set", semctl_ipc_set),
    ("semctl-ipc-set-eperm", semctl_ipc_set_eperm),
    ("semctl-ctime", semctl_ctime),
    ("semctl-info-stat", semctl_info_stat),
    ("semctl-errors", semctl_errors),
];

const EPERM: i64 = -1;
const EAGAIN: i64 = -11;
const EACCES: i64 = -13;
const EFAULT: i64 = -14;
const EINVAL: i64 = -22;
const EFBIG: i64 = -27;
const ERANGE: i64 = -34;
const EIDRM: i64 = -43;
/// An address nothing is mapped at.
const BAD_ADDRESS: usize = 8;
/// Linux `IPCMNI`: an id is `seq * IPCMNI + index`.
const IPCMNI: i32 = 32768;
/// A uid and gid that are not root's.
const OTHER_UID: u32 = 1000;

/// A result as the raw system-call value: the number, or `-errno`.
fn raw(result: Result<usize, Errno>) -> i64 {
    match result {
        Ok(v) => v as i64,
        Err(e) => -i64::from(e.0),
    }
}

fn raw0(result: Result<(), Errno>) -> i64 {
    raw(result.map(|()| 0))
}

/// A set of this scenario, removed when dropped.
struct Set(i32);

impl Set {
    fn new(nsems: i32, mode: i32) -> Result<Set, Msg> {
        semget(IPC_PRIVATE, nsems, mode)
            .map(Set)
            .ctx("semget(IPC_PRIVATE)")
    }

    fn val(&self, num: i32) -> i64 {
        raw(semctl(self.0, num, cmd::GETVAL, 0))
    }

    fn stat(&self) -> Result<SemidDs, Msg> {
        semctl_stat(self.0, cmd::IPC_STAT)
            .map(|(_, ds)| ds)
            .ctx("IPC_STAT")
    }

    /// The set's index (`id % IPCMNI`), what SEM_STAT takes.
    fn index(&self) -> i32 {
        self.0 % IPCMNI
    }
}

impl Drop for Set {
    fn drop(&mut self) {
        let _ = semctl(self.0, 0, cmd::IPC_RMID, 0);
    }
}

/// `CLOCK_REALTIME_COARSE`: the realtime clock as of the last tick.
const CLOCK_REALTIME_COARSE: u32 = 5;

/// Realtime seconds as `sem_otime` and `sem_ctime` take them (Linux
/// `ktime_get_real_seconds`: the coarse clock, which can lag
/// CLOCK_REALTIME's seconds by a tick).
fn realtime() -> Result<i64, Msg> {
    Ok(clock_gettime(CLOCK_REALTIME_COARSE)
        .ctx("clock_gettime")?
        .sec)
}

/// Sleeps until [`realtime`] has passed `second` (at most a second
/// and a bit), so a time stamped from now on differs from one before.
fn wait_past(second: i64) -> Result<i64, Msg> {
    let deadline = monotonic_ns() + TIMEOUT_NS;
    loop {
        let now = realtime()?;
        if now > second {
            return Ok(now);
        }
        ensure!(
            monotonic_ns() < deadline,
            "CLOCK_REALTIME_COARSE stuck at {now}"
        );
        sleep_ns(10 * MS);
    }
}

/// Waits (bounded) until `count()` reaches `want`.
fn wait_for(what: &str, want: i64, count: impl Fn() -> i64) -> Outcome {
    let deadline = monotonic_ns() + TIMEOUT_NS;
    while count() != want && monotonic_ns() < deadline {
        sleep_ns(MS);
    }
    ensure!(count() == want, "{what}: {} (want {want})", count());
    Ok(())
}

fn timespec(sec: i64, nsec: i64) -> Timespec {
    Timespec { sec, nsec }
}

/// A semtimedop that cannot complete before its timeout fails with EAGAIN
/// and changes nothing: no operation of it applied, no waiter left counted,
/// and the set works as before (a later waiter is woken normally).
fn semtimedop_timeout(_: &Ctx) -> Outcome {
    let set = Set::new(2, 0o600)?;
    let id = set.0;
    // Semaphore 0 is 0: the -1 must wait; the +1 on 1 must not be applied.
    let ops = [SemBuf::new(1, 1, 0), SemBuf::new(0, -1, 0)];
    let timed_out = raw0(semtimedop(id, &ops, Some(&timespec(0, 20 * MS as i64))));
    let zero = raw0(semtimedop(id, &ops, Some(&timespec(0, 0))));
    let for_zero = [SemBuf::new(1, 0, 0)];
    semctl(id, 1, cmd::SETVAL, 3).ctx("SETVAL 3")?;
    let zero_timed_out = raw0(semtimedop(
        id,
        &for_zero,
        Some(&timespec(0, 10 * MS as i64)),
    ));
    ensure!(
        (timed_out, zero, zero_timed_out) == (EAGAIN, EAGAIN, EAGAIN),
        "timed out: -1 {timed_out}, with a zero timeout {zero}, wait-for-zero \
         {zero_timed_out} (want -11 each)"
    );
    let counts = [
        raw(semctl(id, 0, cmd::GETNCNT, 0)),
        raw(semctl(id, 1, cmd::GETZCNT, 0)),
    ];
    ensure!(
        (set.val(0), set.val(1), counts) == (0, 3, [0, 0]),
        "after the timeouts: values {} {}, GETNCNT/GETZCNT {counts:?} (want 0 3, [0, 0])",
        set.val(0),
        set.val(1)
    );
    // Something that can complete at once does, timeout or not.
    semctl(id, 0, cmd::SETVAL, 1).ctx("SETVAL 1")?;
    semtimedop(id, &ops, Some(&timespec(0, 0))).ctx("semtimedop that needs no wait")?;
    ensure!(
        (set.val(0), set.val(1)) == (0, 4),
        "values {} {} (want 0 4)",
        set.val(0),
        set.val(1)
    );
    // IPC_NOWAIT wins over a timeout.
    let nowait = raw0(semtimedop(
        id,
        &[SemBuf::new(0, -1, IPC_NOWAIT)],
        Some(&timespec(5, 0)),
    ));
    ensure!(nowait == EAGAIN, "IPC_NOWAIT with a timeout: {nowait}");
    // The timed-out sleeper left the queue cleanly: a new sleeper is
    // counted alone and woken by the next +1.
    let sleeper = Child::spawn(|| i32::from(semop(id, &[SemBuf::new(0, -1, 0)]).is_err()))?;
    wait_for("GETNCNT of a sleeper", 1, || {
        raw(semctl(id, 0, cmd::GETNCNT, 0))
    })?;
    semop(id, &[SemBuf::new(0, 1, 0)]).ctx("semop(+1)")?;
    expect_exit("a woken semop", sleeper.wait_bounded("sem sleeper")?, 0)?;
    ensure!(set.val(0) == 0, "the sleeper's -1: value {}", set.val(0));
    Ok(())
}

/// A semtimedop woken by another process before its timeout completes
/// (0), with the waker's +1 consumed; one woken by IPC_RMID fails EIDRM.
fn semtimedop_woken(_: &Ctx) -> Outcome {
    let set = Set::new(1, 0o600)?;
    let id = set.0;
    // Far longer than the test: it must be the +1 that ends the wait.
    let long = timespec(30, 0);
    let sleeper =
        Child::spawn(|| i32::from(semtimedop(id, &[SemBuf::new(0, -2, 0)], Some(&long)).is_err()))?;
    let sleeper_pid = sleeper.pid();
    wait_for("GETNCNT of a timed sleeper", 1, || {
        raw(semctl(id, 0, cmd::GETNCNT, 0))
    })?;
    // +1 is not enough for its -2: it sleeps on.
    semop(id, &[SemBuf::new(0, 1, 0)]).ctx("semop(+1)")?;
    sleep_ns(5 * MS);
    ensure!(
        raw(semctl(id, 0, cmd::GETNCNT, 0)) == 1 && set.val(0) == 1,
        "after +1: GETNCNT {}, value {}",
        raw(semctl(id, 0, cmd::GETNCNT, 0)),
        set.val(0)
    );
    semop(id, &[SemBuf::new(0, 1, 0)]).ctx("semop(+1)")?;
    expect_exit(
        "semtimedop woken before its timeout",
        sleeper.wait_bounded("timed sem sleeper")?,
        0,
    )?;
    let pid = raw(semctl(id, 0, cmd::GETPID, 0));
    ensure!(
        (set.val(0), pid) == (0, i64::from(sleeper_pid)),
        "after the wake-up: value {} (want 0), GETPID {pid} (want {sleeper_pid})",
        set.val(0)
    );
    // IPC_RMID ends a timed wait with EIDRM.
    let victim = Set::new(1, 0o600)?;
    let victim_id = victim.0;
    let sleeper = Child::spawn(|| {
        i32::from(raw0(semtimedop(victim_id, &[SemBuf::new(0, -1, 0)], Some(&long))) != EIDRM)
    })?;
    wait_for("GETNCNT of a timed sleeper", 1, || {
        raw(semctl(victim_id, 0, cmd::GETNCNT, 0))
    })?;
    drop(victim);
    expect_exit(
        "EIDRM for a timed sleeper",
        sleeper.wait_bounded("timed sem sleeper")?,
        0,
    )
}

/// `semtimedop(semid, sops, nsops, timeout)` with raw pointers.
fn semtimedop_raw(id: i32, sops: usize, nsops: usize, timeout: usize) -> i64 {
    // SAFETY: semtimedop only reads user memory; bad pointers get EFAULT.
    let ret = unsafe {
        syscall4(
            forkvm_user::syscall::nr::SEMTIMEDOP,
            id as usize,
            sops,
            nsops,
            timeout,
        )
    };
    raw(forkvm_user::syscall::check(ret))
}

/// Linux's checks in its order: the timeout pointer (EFAULT) first, then
/// the id and count (EINVAL, E2BIG) and the operations' pointer (EFAULT),
/// then the timespec (EINVAL: negative seconds, nanoseconds outside
/// 0..1e9; even for an operation that would not wait), then the set.
fn semtimedop_errors(_: &Ctx) -> Outcome {
    let set = Set::new(1, 0o600)?;
    let id = set.0;
    let up = [SemBuf::new(0, 1, 0)];
    let beyond = [SemBuf::new(1, 1, 0)];
    let bad_timespecs = [
        timespec(0, 1_000_000_000),
        timespec(0, -1),
        timespec(-1, 0),
        timespec(i64::MIN, 999_999_999),
    ];
    for ts in &bad_timespecs {
        let got = raw0(semtimedop(id, &up, Some(ts)));
        ensure!(
            got == EINVAL,
            "timeout {}s {}ns: {got} (want -22)",
            ts.sec,
            ts.nsec
        );
    }
    let bad = &bad_timespecs[0] as *const Timespec as usize;
    let good = timespec(1, 0);
    let good = &good as *const Timespec as usize;
    let errors = [
        semtimedop_raw(id, up.as_ptr() as usize, 0, BAD_ADDRESS),
        semtimedop_raw(id, up.as_ptr() as usize, 0, bad),
        semtimedop_raw(id, up.as_ptr() as usize, 501, bad),
        semtimedop_raw(-1, up.as_ptr() as usize, 1, bad),
        semtimedop_raw(id, BAD_ADDRESS, 1, bad),
        semtimedop_raw(id, beyond.as_ptr() as usize, 1, bad),
        semtimedop_raw(id, beyond.as_ptr() as usize, 1, good),
        semtimedop_raw(id + IPCMNI, up.as_ptr() as usize, 1, good),
        semtimedop_raw(id, BAD_ADDRESS, 1, good),
    ];
    ensure!(
        errors == [EFAULT, EINVAL, -7, EINVAL, EFAULT, EINVAL, EFBIG, EINVAL, EFAULT],
        "errnos {errors:?}, want EFAULT (timeout) EINVAL (nsops 0) E2BIG EINVAL (id) \
         EFAULT (sops) EINVAL (timespec before EFBIG) EFBIG EINVAL (stale id) EFAULT"
    );
    ensure!(set.val(0) == 0, "a failed semtimedop changed the value");
    semtimedop(id, &up, None).ctx("semtimedop without a timeout")?;
    ensure!(
        set.val(0) == 1,
        "semtimedop(NULL timeout): value {}",
        set.val(0)
    );
    Ok(())
}

/// IPC_STAT: the creator's ids as owner and creator, the mode's low 9
/// bits, the key, the sequence number of the id, nsems; no `sem_otime`
/// before the first semop, `sem_ctime` at creation, `sem_otime` set by a
/// semop (a wait for zero too); read permission is enough.
fn semctl_ipc_stat(_: &Ctx) -> Outcome {
    // The guest's realtime clock starts at boot: make sure a stamp is not 0.
    wait_past(0)?;
    let before = realtime()?;
    let set = Set::new(3, 0o640 | forkvm_user::sem::IPC_CREAT)?;
    let after = realtime()?;
    let ds = set.stat()?;
    let (uid, gid) = (geteuid(), getegid());
    let p = ds.perm;
    ensure!(
        (p.key, p.uid, p.gid, p.cuid, p.cgid, p.mode) == (0, uid, gid, uid, gid, 0o640),
        "perm: key {} uid {} gid {} cuid {} cgid {} mode {:o} (want 0 {uid} {gid} {uid} \
         {gid} 640)",
        p.key,
        p.uid,
        p.gid,
        p.cuid,
        p.cgid,
        p.mode
    );
    ensure!(
        i32::from(p.seq) == set.0 / IPCMNI && ds.nsems == 3,
        "seq {} for id {} (want {}), nsems {}",
        p.seq,
        set.0,
        set.0 / IPCMNI,
        ds.nsems
    );
    ensure!(
        ds.otime == 0 && (before..=after).contains(&ds.ctime),
        "new set: otime {} (want 0), ctime {} (want {before}..={after})",
        ds.otime,
        ds.ctime
    );
    let unused = [
        p.pad2 as u64,
        p.unused1,
        p.unused2,
        ds.unused1,
        ds.unused2,
        ds.unused3,
        ds.unused4,
    ];
    ensure!(unused == [0; 7], "unused fields not zero: {unused:?}");

    let before = realtime()?;
    semop(set.0, &[SemBuf::new(2, 0, 0)]).ctx("semop(wait for zero)")?;
    let after = realtime()?;
    let ds = set.stat()?;
    ensure!(
        (before..=after).contains(&ds.otime) && ds.otime > 0,
        "otime after a semop: {} (want {before}..={after})",
        ds.otime
    );
    // A read-only set can still be read.
    let read_only = Set::new(1, 0o400)?;
    let ds = read_only.stat()?;
    ensure!(
        ds.perm.mode == 0o400 && ds.nsems == 1,
        "read-only set: {ds:?}"
    );
    Ok(())
}

/// IPC_SET takes the owner's uid and gid and the mode's low 9 bits (key,
/// creator and nsems stay); the creator keeps control after giving the
/// set away; -1 as uid or gid is EINVAL; a bad pointer is EFAULT before
/// the id is looked at.
fn semctl_ipc_set(_: &Ctx) -> Outcome {
    let set = Set::new(2, 0o600)?;
    let (uid, gid) = (geteuid(), getegid());
    let mut ds = set.stat()?;
    ds.perm.uid = 1234;
    ds.perm.gid = 5678;
    ds.perm.cuid = 42;
    ds.perm.cgid = 43;
    ds.perm.key = 99;
    ds.perm.mode = 0o7_1642;
    ds.nsems = 7;
    semctl_set(set.0, &ds).ctx("IPC_SET")?;
    let got = set.stat()?;
    let p = got.perm;
    ensure!(
        (p.key, p.uid, p.gid, p.cuid, p.cgid, p.mode, got.nsems)
            == (0, 1234, 5678, uid, gid, 0o642, 2),
        "after IPC_SET: key {} uid {} gid {} cuid {} cgid {} mode {:o} nsems {} \
         (want 0 1234 5678 {uid} {gid} 642 2)",
        p.key,
        p.uid,
        p.gid,
        p.cuid,
        p.cgid,
        p.mode,
        got.nsems
    );
    // Invalid ids change nothing.
    let mut bad = got;
    bad.perm.uid = u32::MAX;
    let bad_uid = raw0(semctl_set(set.0, &bad));
    bad.perm.uid = 7;
    bad.perm.gid = u32::MAX;
    let bad_gid = raw0(semctl_set(set.0, &bad));
    ensure!(
        (bad_uid, bad_gid) == (EINVAL, EINVAL),
        "IPC_SET with uid -1: {bad_uid}, gid -1: {bad_gid} (want -22 -22)"
    );
    ensure!(
        set.stat()?.perm.uid == 1234,
        "a failed IPC_SET changed the owner"
    );
    // Back to the creator.
    let mut back = got;
    back.perm.uid = uid;
    back.perm.gid = gid;
    back.perm.mode = 0o600;
    semctl_set(set.0, &back).ctx("IPC_SET back")?;
    let p = set.stat()?.perm;
    ensure!(
        (p.uid, p.gid, p.mode) == (uid, gid, 0o600),
        "IPC_SET back: uid {} gid {} mode {:o}",
        p.uid,
        p.gid,
        p.mode
    );
    let ipc_set_raw = |id: i32, address: usize| {
        // SAFETY: IPC_SET only reads user memory; a bad pointer is EFAULT.
        let ret = unsafe {
            syscall4(
                forkvm_user::syscall::nr::SEMCTL,
                id as usize,
                0,
                cmd::IPC_SET as usize,
                address,
            )
        };
        raw(forkvm_user::syscall::check(ret))
    };
    let errors = [
        ipc_set_raw(set.0, BAD_ADDRESS),
        ipc_set_raw(set.0 + IPCMNI, BAD_ADDRESS),
        ipc_set_raw(set.0 + IPCMNI, &back as *const SemidDs as usize),
    ];
    ensure!(
        errors == [EFAULT, EFAULT, EINVAL],
        "IPC_SET errnos {errors:?}, want EFAULT EFAULT (before the id) EINVAL (stale id)"
    );
    Ok(())
}

/// Another user (a child that did `setuid`): IPC_SET and IPC_RMID are
/// EPERM unless it owns or created the set; without read permission
/// IPC_STAT and SEM_STAT are EACCES, SEM_STAT_ANY is not; semop, GETVAL
/// and SETVAL are EACCES; IPC_INFO needs nothing. Once IPC_SET made it the
/// owner it may IPC_STAT, IPC_SET and IPC_RMID.
fn semctl_ipc_set_eperm(_: &Ctx) -> Outcome {
    let set = Set::new(1, 0o600)?;
    let id = set.0;
    let index = set.index();
    let stranger = Child::spawn(move || {
        if setuid(OTHER_UID).is_err() {
            return 100;
        }
        let mut ds = SemidDs::default();
        ds.perm.uid = OTHER_UID;
        ds.perm.mode = 0o666;
        let results = [
            raw0(semctl_set(id, &ds)),
            raw(semctl(id, 0, cmd::IPC_RMID, 0)),
            raw(semctl_stat(id, cmd::IPC_STAT).map(|(r, _)| r)),
            raw(semctl_stat(index, cmd::SEM_STAT).map(|(r, _)| r)),
            raw(semctl_stat(index, cmd::SEM_STAT_ANY).map(|(r, _)| r)),
            raw0(semop(id, &[SemBuf::new(0, 1, IPC_NOWAIT)])),
            raw0(semop(id, &[SemBuf::new(0, 0, IPC_NOWAIT)])),
            raw(semctl(id, 0, cmd::GETVAL, 0)),
            raw(semctl(id, 0, cmd::SETVAL, 1)),
            raw(semctl_info(cmd::IPC_INFO).map(|_| 0)),
        ];
        let want = [
            EPERM,
            EPERM,
            EACCES,
            EACCES,
            i64::from(id),
            EACCES,
            EACCES,
            EACCES,
            EACCES,
            0,
        ];
        // The first mismatch, numbered from 1.
        results
            .iter()
            .zip(want)
            .position(|(&got, want)| got != want)
            .map_or(0, |i| i as i32 + 1)
    })?;
    let status = stranger.wait_bounded("stranger")?;
    ensure!(
        status.exited() && status.exit_status() == 0,
        "uid {OTHER_UID} on root's 0600 set: check {} of IPC_SET, IPC_RMID, IPC_STAT, \
         SEM_STAT, SEM_STAT_ANY, semop, semop(0), GETVAL, SETVAL, IPC_INFO failed \
         (100: setuid failed; {})",
        status.exit_status(),
        Status(status)
    );
    ensure!(
        set.stat()?.perm.mode == 0o600,
        "the stranger changed the set"
    );

    // Give the set to the other user: now it is the owner.
    let mut ds = set.stat()?;
    ds.perm.uid = OTHER_UID;
    semctl_set(id, &ds).ctx("IPC_SET uid")?;
    let owner = Child::spawn(move || {
        if setuid(OTHER_UID).is_err() {
            return 100;
        }
        let Ok((_, mut ds)) = semctl_stat(id, cmd::IPC_STAT) else {
            return 1;
        };
        ds.perm.mode = 0o644;
        if semctl_set(id, &ds).is_err() {
            return 2;
        }
        if semop(id, &[SemBuf::new(0, 1, 0)]).is_err() {
            return 3;
        }
        0
    })?;
    expect_exit("the new owner", owner.wait_bounded("owner")?, 0)?;
    ensure!(
        (set.stat()?.perm.mode, set.val(0)) == (0o644, 1),
        "the owner's IPC_SET and semop: mode {:o}, value {}",
        set.stat()?.perm.mode,
        set.val(0)
    );
    let remover = Child::spawn(move || {
        if setuid(OTHER_UID).is_err() {
            return 100;
        }
        i32::from(semctl(id, 0, cmd::IPC_RMID, 0).is_err())
    })?;
    expect_exit("IPC_RMID by the owner", remover.wait_bounded("owner")?, 0)?;
    let gone = raw(semctl_stat(id, cmd::IPC_STAT).map(|(r, _)| r));
    ensure!(gone == EINVAL, "IPC_STAT after IPC_RMID: {gone}");
    Ok(())
}

/// `sem_ctime` moves with SETVAL, SETALL and IPC_SET (and not with GETVAL
/// or semop); one second boundary is waited for, three sets show the three.
fn semctl_ctime(_: &Ctx) -> Outcome {
    let sets = [
        Set::new(2, 0o600)?,
        Set::new(2, 0o600)?,
        Set::new(2, 0o600)?,
    ];
    let quiet = Set::new(1, 0o600)?;
    let quiet_created = quiet.stat()?.ctime;
    let mut created = quiet_created;
    for set in &sets {
        created = created.max(set.stat()?.ctime);
    }
    let before = wait_past(created)?;
    semctl(sets[0].0, 1, cmd::SETVAL, 5).ctx("SETVAL")?;
    let values = [1u16, 2];
    // SAFETY: SETALL reads one u16 per semaphore: two, from `values`.
    let setall = unsafe {
        syscall4(
            forkvm_user::syscall::nr::SEMCTL,
            sets[1].0 as usize,
            0,
            cmd::SETALL as usize,
            values.as_ptr() as usize,
        )
    };
    forkvm_user::syscall::check(setall).ctx("SETALL")?;
    let ds = sets[2].stat()?;
    semctl_set(sets[2].0, &ds).ctx("IPC_SET")?;
    semop(quiet.0, &[SemBuf::new(0, 1, 0)]).ctx("semop")?;
    semctl(quiet.0, 0, cmd::GETVAL, 0).ctx("GETVAL")?;
    let after = realtime()?;
    let mut ctimes = [0; 3];
    for (ctime, set) in ctimes.iter_mut().zip(&sets) {
        *ctime = set.stat()?.ctime;
    }
    ensure!(
        ctimes.iter().all(|t| (before..=after).contains(t)),
        "ctime after SETVAL, SETALL, IPC_SET: {ctimes:?} (want {before}..={after}; \
         created at {created})"
    );
    ensure!(
        (sets[1].val(0), sets[1].val(1)) == (1, 2),
        "SETALL: values {} {}",
        sets[1].val(0),
        sets[1].val(1)
    );
    // Reading and semop leave it.
    let ds = quiet.stat()?;
    ensure!(
        ds.ctime == quiet_created && (before..=after).contains(&ds.otime),
        "semop and GETVAL: ctime {} (want {quiet_created}), otime {} (want {before}..={after})",
        ds.ctime,
        ds.otime
    );
    Ok(())
}

/// IPC_INFO and SEM_INFO report the same limits (SEM_INFO with the sets
/// and semaphores in use) and return the highest index in use; SEM_STAT
/// and SEM_STAT_ANY take an index (only its index bits count) and return
/// the set's id, which IPC_STAT agrees with.
fn semctl_info_stat(_: &Ctx) -> Outcome {
    let small = Set::new(2, 0o600)?;
    let large = Set::new(5, 0o600)?;
    let (max_ipc, ipc) = semctl_info(cmd::IPC_INFO).ctx("IPC_INFO")?;
    let (max_sem, sem) = semctl_info(cmd::SEM_INFO).ctx("SEM_INFO")?;
    ensure!(
        (ipc.semusz, ipc.semaem, ipc.semvmx) == (20, 32767, 32767),
        "IPC_INFO semusz {} semaem {} semvmx {} (want 20 32767 32767)",
        ipc.semusz,
        ipc.semaem,
        ipc.semvmx
    );
    let limits = |i: &forkvm_user::sem::Seminfo| {
        [
            i.semmap, i.semmni, i.semmns, i.semmnu, i.semmsl, i.semopm, i.semume, i.semvmx,
        ]
    };
    ensure!(
        limits(&ipc) == limits(&sem) && limits(&ipc).iter().all(|&l| l > 0),
        "limits differ or are not positive: IPC_INFO {:?}, SEM_INFO {:?}",
        limits(&ipc),
        limits(&sem)
    );
    // Other sets may exist (other processes): at least ours are counted.
    ensure!(
        sem.semusz >= 2 && sem.semaem >= 7,
        "SEM_INFO: {} sets, {} semaphores in use (want at least 2, 7)",
        sem.semusz,
        sem.semaem
    );
    let highest = small.index().max(large.index()) as usize;
    ensure!(
        max_ipc >= highest && max_sem >= highest,
        "highest index: IPC_INFO {max_ipc}, SEM_INFO {max_sem} (ours go up to {highest})"
    );
    for set in [&small, &large] {
        let (by_index, ds) = semctl_stat(set.index(), cmd::SEM_STAT).ctx("SEM_STAT")?;
        let (any, ds_any) = semctl_stat(set.index(), cmd::SEM_STAT_ANY).ctx("SEM_STAT_ANY")?;
        let (high, _) =
            semctl_stat(set.index() + IPCMNI, cmd::SEM_STAT).ctx("SEM_STAT index + IPCMNI")?;
        let by_id = set.stat()?;
        ensure!(
            [by_index, any, high] == [set.0 as usize; 3] && ds == by_id && ds_any == by_id,
            "set {}: SEM_STAT {by_index}, SEM_STAT_ANY {any}, with the index bits only \
             {high}; same structure as IPC_STAT: {} {}",
            set.0,
            ds == by_id,
            ds_any == by_id
        );
    }
    // A walk over the indices, as ipcs does, finds both.
    let mut found = 0;
    for index in 0..=max_sem as i32 {
        if let Ok((id, _)) = semctl_stat(index, cmd::SEM_STAT_ANY) {
            found += usize::from(id == small.0 as usize || id == large.0 as usize);
        }
    }
    ensure!(
        found == 2,
        "walking 0..={max_sem} found {found} of our 2 sets"
    );
    let (small_index, small_id) = (small.index(), small.0);
    drop(small);
    let gone = raw(semctl_stat(small_index, cmd::SEM_STAT).map(|(r, _)| r));
    ensure!(
        gone != i64::from(small_id),
        "SEM_STAT still finds a removed set"
    );
    Ok(())
}

/// `semctl` errors in Linux's order: a negative id first (whatever the
/// command), unknown commands (the IPC_64 bit too, on x86-64), a stale
/// or removed id, the semaphore number, SETVAL's range before the id,
/// EFAULT after the lookup for IPC_STAT but not for IPC_INFO.
fn semctl_errors(_: &Ctx) -> Outcome {
    let set = Set::new(2, 0o600)?;
    let id = set.0;
    let semctl_raw = |id: i32, num: i32, cmd: i32, arg: usize| {
        // SAFETY: every pointer passed is either unmapped (EFAULT) or to
        // a live buffer as large as the command writes.
        let ret = unsafe {
            syscall4(
                forkvm_user::syscall::nr::SEMCTL,
                id as usize,
                num as usize,
                cmd as usize,
                arg,
            )
        };
        raw(forkvm_user::syscall::check(ret))
    };
    let mut ds = SemidDs::default();
    let ds_address = &mut ds as *mut SemidDs as usize;
    let errors = [
        semctl_raw(-1, 0, cmd::IPC_INFO, ds_address),
        semctl_raw(-1, 0, 99, 0),
        semctl_raw(id, 0, 99, 0),
        semctl_raw(id, 0, cmd::IPC_STAT | cmd::IPC_64, ds_address),
        semctl_raw(id, 0, cmd::GETVAL | cmd::IPC_64, 0),
        semctl_raw(id, 0, cmd::SETVAL | cmd::IPC_64, 1),
        semctl_raw(id + IPCMNI, 0, cmd::IPC_STAT, ds_address),
        semctl_raw(id + IPCMNI, 0, cmd::GETVAL, 0),
        semctl_raw(id, 0, cmd::IPC_STAT, BAD_ADDRESS),
        semctl_raw(id + IPCMNI, 0, cmd::IPC_STAT, BAD_ADDRESS),
        semctl_raw(0, 0, cmd::IPC_INFO, BAD_ADDRESS),
        semctl_raw(IPCMNI - 1, 0, cmd::SEM_STAT, ds_address),
        semctl_raw(id, 2, cmd::GETVAL, 0),
        semctl_raw(id, -1, cmd::GETNCNT, 0),
        semctl_raw(id, 2, cmd::SETVAL, 1),
        semctl_raw(id, 0, cmd::SETVAL, 32768),
        semctl_raw(id, 0, cmd::SETVAL, -1i32 as u32 as usize),
        semctl_raw(id + IPCMNI, 0, cmd::SETVAL, 40000),
        semctl_raw(id + IPCMNI, 9, cmd::SETVAL, 1),
    ];
    let want = [
        EINVAL, EINVAL, EINVAL, EINVAL, EINVAL, EINVAL, EINVAL, EINVAL, EFAULT, EINVAL, EFAULT,
        EINVAL, EINVAL, EINVAL, EINVAL, ERANGE, ERANGE, ERANGE, EINVAL,
    ];
    ensure!(errors == want, "errnos {errors:?}\n want {want:?}");
    ensure!(
        (set.val(0), set.val(1)) == (0, 0),
        "a failed semctl changed a value"
    );
    // A removed set is gone for every command.
    drop(set);
    let removed = [
        semctl_raw(id, 0, cmd::IPC_STAT, ds_address),
        semctl_raw(id, 0, cmd::GETVAL, 0),
        semctl_raw(id, 0, cmd::SETVAL, 1),
        semctl_raw(id, 0, cmd::IPC_SET, ds_address),
        semctl_raw(id, 0, cmd::IPC_RMID, 0),
        semtimedop_raw(id, [SemBuf::new(0, 1, 0)].as_ptr() as usize, 1, 0),
    ];
    ensure!(
        removed == [EINVAL; 6],
        "on a removed set: {removed:?} (want EINVAL for all)"
    );
    Ok(())
}
