//! `setreuid`, `setregid`, `setresuid`, `setresgid`: which transitions
//! root and an unprivileged process may make (-1 leaves an id alone), what
//! happens to the saved id, and the capabilities lost and regained as the
//! ids leave and return to root (Linux `cap_emulate_setxuid`). Each
//! scenario runs in a forked child, which may drop privilege for good.

use forkvm_user::cred;
use forkvm_abi::linux::fcntl::{O_CREAT, O_EXCL, O_RDONLY, O_WRONLY};
use forkvm_user::syscall::{check, open, syscall1};

use super::*;

pub const SCENARIOS: &[(&str, Scenario)] = &[
    ("setresuid-transitions", setresuid_transitions),
    ("setreuid-saved-id", setreuid_saved_id),
    ("setresgid-setregid", setresgid_setregid),
    ("setresuid-capabilities", setresuid_capabilities),
    ("setfsuid-file-access", setfsuid_file_access),
    ("exec-resets-saved-ids", exec_resets_saved_ids),
];

/// The helper `exec-resets-saved-ids` executes: exit 0 if the saved and
/// file-system ids are the effective ones.
pub const EXEC_IDS_CHECK: &CStr = c"exec-saved-ids-are-effective";

use forkvm_user::syscall::nr::{GETRESGID, GETRESUID, SETFSGID, SETFSUID, SETREGID, SETRESGID, SETRESUID, SETREUID, UNLINK};
const CAP_CHOWN: u64 = 1 << 0;
const CAP_DAC_OVERRIDE: u64 = 1 << 1;
/// -1: leave this id as it is.
const KEEP: u32 = u32::MAX;
const ALL_CAPS: u64 = (1 << 41) - 1;

fn set2(n: usize, a: u32, b: u32) -> Result<(), Errno> {
    // SAFETY: takes no pointer.
    check(unsafe { syscall2(n, a as usize, b as usize) }).map(drop)
}

fn set3(n: usize, ids: [u32; 3]) -> Result<(), Errno> {
    // SAFETY: takes no pointer.
    check(unsafe { syscall3(n, ids[0] as usize, ids[1] as usize, ids[2] as usize) }).map(drop)
}

fn get3(n: usize) -> Result<[u32; 3], Msg> {
    let mut ids = [0u32; 3];
    let base = ids.as_mut_ptr() as usize;
    let (a, b, c) = (base, base + 4, base + 8);
    // SAFETY: three writable u32s.
    check(unsafe { syscall3(n, a, b, c) }).ctx("getres*id")?;
    Ok(ids)
}

/// Runs `body` in a forked child; its failure message comes back.
fn in_child(what: &str, body: impl FnOnce() -> Outcome) -> Outcome {
    let (r, w) = pipe()?;
    let w_raw = w.raw();
    let child = Child::spawn(|| match body() {
        Ok(()) => 0,
        Err(m) => {
            let _ = write_all(w_raw, m.as_str().as_bytes());
            1
        }
    })?;
    drop(w);
    let status = child.wait_bounded(what)?;
    if status.exited() && status.exit_status() == 0 {
        return Ok(());
    }
    let mut text = [0u8; 200];
    let n = read_full(r.raw(), &mut text)?;
    match core::str::from_utf8(&text[..n]) {
        Ok(m) if !m.is_empty() => Err(msg!("{what}: {m}")),
        _ => Err(msg!("{what}: {}", Status(status))),
    }
}

fn expect(what: &str, got: Result<(), Errno>, want: Result<(), Errno>) -> Outcome {
    ensure!(got == want, "{what}: {got:?}, expected {want:?}");
    Ok(())
}

fn expect_ids(what: &str, n: usize, want: [u32; 3]) -> Outcome {
    let ids = get3(n)?;
    ensure!(ids == want, "{what}: ids {ids:?}, expected {want:?}");
    Ok(())
}

/// Root sets any three uids; then, unprivileged, only the current ones
/// may be taken (EPERM otherwise), and all -1 is a no-op.
fn setresuid_transitions(_: &Ctx) -> Outcome {
    in_child("setresuid", || {
        expect("setresuid(1000, 2000, 3000)", set3(SETRESUID, [1000, 2000, 3000]), Ok(()))?;
        expect_ids("after setresuid", GETRESUID, [1000, 2000, 3000])?;
        expect("all -1", set3(SETRESUID, [KEEP; 3]), Ok(()))?;
        expect("ruid 3000 (the saved one)", set3(SETRESUID, [3000, KEEP, KEEP]), Ok(()))?;
        expect_ids("after ruid 3000", GETRESUID, [3000, 2000, 3000])?;
        expect("euid 4000", set3(SETRESUID, [KEEP, 4000, KEEP]), Err(Errno::EPERM))?;
        expect("suid 0", set3(SETRESUID, [KEEP, KEEP, 0]), Err(Errno::EPERM))?;
        expect("rotate", set3(SETRESUID, [2000, 3000, 2000]), Ok(()))?;
        expect_ids("after the rotation", GETRESUID, [2000, 3000, 2000])?;
        ensure!(cred::geteuid() == 3000, "geteuid {}", cred::geteuid());
        Ok(())
    })
}

/// setreuid: setting the real uid, or an effective uid other than the
/// real one, copies the effective uid to the saved one.
fn setreuid_saved_id(_: &Ctx) -> Outcome {
    in_child("setreuid", || {
        expect("setreuid(100, 200)", set2(SETREUID, 100, 200), Ok(()))?;
        expect_ids("after setreuid(100, 200)", GETRESUID, [100, 200, 200])?;
        expect("euid 100 (the real one)", set2(SETREUID, KEEP, 100), Ok(()))?;
        expect_ids("after euid 100", GETRESUID, [100, 100, 200])?;
        expect("euid 200 (the saved one)", set2(SETREUID, KEEP, 200), Ok(()))?;
        expect_ids("after euid 200", GETRESUID, [100, 200, 200])?;
        expect("ruid 300", set2(SETREUID, 300, KEEP), Err(Errno::EPERM))?;
        expect("ruid 200 (the effective one)", set2(SETREUID, 200, KEEP), Ok(()))?;
        expect_ids("after ruid 200", GETRESUID, [200, 200, 200])?;
        expect("euid 100 (gone)", set2(SETREUID, KEEP, 100), Err(Errno::EPERM))?;
        Ok(())
    })
}

/// The same for groups: CAP_SETGID decides, and is gone with root.
fn setresgid_setregid(_: &Ctx) -> Outcome {
    in_child("setresgid", || {
        expect("setresgid(10, 20, 30)", set3(SETRESGID, [10, 20, 30]), Ok(()))?;
        expect_ids("after setresgid", GETRESGID, [10, 20, 30])?;
        expect("drop root", set3(SETRESUID, [1000, 1000, 1000]), Ok(()))?;
        expect("rgid 20", set3(SETRESGID, [20, KEEP, KEEP]), Ok(()))?;
        expect("egid 40", set3(SETRESGID, [KEEP, 40, KEEP]), Err(Errno::EPERM))?;
        expect("setregid(-1, 30)", set2(SETREGID, KEEP, 30), Ok(()))?;
        expect_ids("after setregid(-1, 30)", GETRESGID, [20, 30, 30])?;
        expect("setregid(99, -1)", set2(SETREGID, 99, KEEP), Err(Errno::EPERM))?;
        expect("setregid(30, 20)", set2(SETREGID, 30, 20), Ok(()))?;
        expect_ids("after setregid(30, 20)", GETRESGID, [30, 20, 20])?;
        expect("setregid(10, -1)", set2(SETREGID, 10, KEEP), Err(Errno::EPERM))?;
        expect("setregid(30, 30)", set2(SETREGID, 30, 30), Ok(()))?;
        expect_ids("after setregid(30, 30)", GETRESGID, [30, 30, 30])?;
        Ok(())
    })
}

/// Capabilities follow the uids: an effective uid leaving 0 clears the
/// effective set, coming back restores it from the permitted one, and
/// no uid left at 0 clears both.
fn setresuid_capabilities(_: &Ctx) -> Outcome {
    in_child("capabilities", || {
        // Root's sets as they are (a container may hold fewer).
        let full = cred::capget(0).ctx("capget")?.permitted;
        ensure!(full != 0, "root has no capabilities");
        let caps = |what: &str, effective: u64, permitted: u64| -> Outcome {
            let got = cred::capget(0).ctx("capget")?;
            let (effective, permitted) = (effective & full, permitted & full);
            ensure!(
                got.effective == effective && got.permitted == permitted,
                "{what}: effective {:#x} permitted {:#x}",
                got.effective,
                got.permitted
            );
            Ok(())
        };
        expect("setresuid(1000, 0, 0)", set3(SETRESUID, [1000, 0, 0]), Ok(()))?;
        caps("euid and suid 0", ALL_CAPS, ALL_CAPS)?;
        expect("euid 1000", set3(SETRESUID, [KEEP, 1000, KEEP]), Ok(()))?;
        caps("suid 0 only", 0, ALL_CAPS)?;
        expect("euid 0 again", set3(SETRESUID, [KEEP, 0, KEEP]), Ok(()))?;
        caps("euid 0 again", ALL_CAPS, ALL_CAPS)?;
        expect("setreuid(-1, 1000)", set2(SETREUID, KEEP, 1000), Ok(()))?;
        // The effective uid is the real one: the saved uid stays 0.
        expect_ids("after setreuid(-1, 1000)", GETRESUID, [1000, 1000, 0])?;
        caps("suid 0 left", 0, ALL_CAPS)?;
        expect("setreuid(1000, 1000)", set2(SETREUID, 1000, 1000), Ok(()))?;
        expect_ids("after setreuid(1000, 1000)", GETRESUID, [1000, 1000, 1000])?;
        caps("no uid 0", 0, 0)?;
        expect("euid 0 unprivileged", set3(SETRESUID, [KEEP, 0, KEEP]), Err(Errno::EPERM))?;
        Ok(())
    })
}

/// `setfsuid`/`setfsgid`: the old id, whatever happens (never an errno).
fn setfs(n: usize, id: u32) -> usize {
    // SAFETY: takes no pointer.
    unsafe { syscall1(n, id as usize) as usize }
}

/// The file-system uid decides file access: root with fsuid 1000 cannot
/// read root's private file (the fsuid left root and took the
/// file-system capabilities with it), and reads it again with fsuid 0.
/// Without CAP_SETUID only one of the four uids is taken; the call
/// always returns the old fsuid (-1, never mapped, only asks).
fn setfsuid_file_access(_: &Ctx) -> Outcome {
    in_child("setfsuid", || {
        let mut path = *b"/tmp/proctest-setfsuid-0000000000\0";
        let mut pid = getpid();
        for digit in path[23..33].iter_mut().rev() {
            *digit = b'0' + (pid % 10) as u8;
            pid /= 10;
        }
        let file = CStr::from_bytes_with_nul(&path).map_err(|_| msg!("no NUL in {path:?}"))?;
        drop(open(file, O_CREAT | O_EXCL | O_WRONLY, 0o600).map(Fd).ctx("create")?);
        let result = (|| {
            ensure!(setfs(SETFSUID, 1000) == 0, "setfsuid(1000) did not return 0");
            ensure!(setfs(SETFSUID, KEEP) == 1000, "fsuid is not 1000");
            let caps = cred::capget(0).ctx("capget")?;
            ensure!(
                caps.effective & (CAP_CHOWN | CAP_DAC_OVERRIDE) == 0,
                "file-system capabilities kept: {:#x}",
                caps.effective
            );
            expect_ids("uids with fsuid 1000", GETRESUID, [0, 0, 0])?;
            let got = open(file, O_RDONLY, 0).map(|fd| drop(Fd(fd)));
            expect("open with fsuid 1000", got, Err(Errno::EACCES))?;
            ensure!(setfs(SETFSUID, 0) == 1000, "setfsuid(0) did not return 1000");
            let got = open(file, O_RDONLY, 0).map(|fd| drop(Fd(fd)));
            expect("open with fsuid 0", got, Ok(()))?;
            ensure!(setfs(SETFSGID, 77) == 0, "setfsgid(77) did not return 0");
            ensure!(setfs(SETFSGID, KEEP) == 77, "fsgid is not 77");
            expect("drop root", set3(SETRESUID, [1000, 1000, 1000]), Ok(()))?;
            ensure!(setfs(SETFSUID, KEEP) == 1000, "setresuid did not set the fsuid");
            ensure!(setfs(SETFSUID, 2000) == 1000, "setfsuid(2000) unprivileged");
            ensure!(setfs(SETFSUID, KEEP) == 1000, "setfsuid(2000) took effect");
            ensure!(setfs(SETFSGID, 99) == 77, "setfsgid(99) unprivileged");
            ensure!(setfs(SETFSGID, KEEP) == 77, "setfsgid(99) took effect");
            Ok(())
        })();
        // SAFETY: `path` is NUL-terminated.
        let _ = unsafe { syscall1(UNLINK, path.as_ptr() as usize) };
        result
    })
}

/// execve makes the saved and file-system ids the effective ones: a
/// program run with saved uid 0 cannot get root back.
fn exec_resets_saved_ids(ctx: &Ctx) -> Outcome {
    let argv0 = ctx.argv0.ok_or_else(|| msg!("no argv[0]"))?;
    let child = Child::spawn(|| {
        if set3(SETRESGID, [50, 50, 0]).is_err() || set3(SETRESUID, [1000, 1000, 0]).is_err() {
            return 93;
        }
        setfs(SETFSUID, 0);
        exec_self_helper(argv0, EXEC_IDS_CHECK)
    })?;
    expect_exit("the exec'd helper", child.wait()?, 0)
}

/// The [`EXEC_IDS_CHECK`] helper's exit status.
pub fn exec_ids_check() -> i32 {
    let uids = get3(GETRESUID).ok() == Some([1000; 3]);
    let gids = get3(GETRESGID).ok() == Some([50; 3]);
    let fsuid = setfs(SETFSUID, KEEP) == 1000;
    let fsgid = setfs(SETFSGID, KEEP) == 50;
    i32::from(!uids) | i32::from(!gids) << 1 | i32::from(!fsuid) << 2 | i32::from(!fsgid) << 3
}
