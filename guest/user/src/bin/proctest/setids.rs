//! `setreuid`, `setregid`, `setresuid`, `setresgid`: which transitions
//! root and an unprivileged process may make (-1 leaves an id alone), what
//! happens to the saved id, and the capabilities lost and regained as the
//! ids leave and return to root (Linux `cap_emulate_setxuid`). Each
//! scenario runs in a forked child, which may drop privilege for good.

use forkvm_user::cred;
use forkvm_user::syscall::check;

use super::*;

pub const SCENARIOS: &[(&str, Scenario)] = &[
    ("setresuid-transitions", setresuid_transitions),
    ("setreuid-saved-id", setreuid_saved_id),
    ("setresgid-setregid", setresgid_setregid),
    ("setresuid-capabilities", setresuid_capabilities),
];

const SETREUID: usize = 113;
const SETREGID: usize = 114;
const SETRESUID: usize = 117;
const GETRESUID: usize = 118;
const SETRESGID: usize = 119;
const GETRESGID: usize = 120;
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
