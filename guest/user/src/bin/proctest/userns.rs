//! User namespaces: CLONE_NEWUSER by an unprivileged user, the uid and gid
//! maps written through `/proc/PID/uid_map`, `gid_map` and `setgroups` with
//! Linux's rules, capabilities that hold only over the namespace (and the
//! namespaces it owns), and RLIMIT_NPROC counted for the creator too.

use super::*;
use forkvm_user::cred::{self, Rlimit, RLIMIT_NPROC};
use forkvm_user::syscall::unshare;
use forkvm_user::userns::{self, IdFile};

pub const SCENARIOS: &[(&str, Scenario)] = &[
    ("userns-id-maps", userns_id_maps),
    ("userns-owns-namespaces", userns_owns_namespaces),
    ("userns-nproc-counts-creator", userns_nproc_counts_creator),
    ("unshare-user-and-uts", unshare_user_and_uts),
    ("unshare-fs-and-files", unshare_fs_and_files),
    ("unshare-pid", unshare_pid),
    ("kill-needs-permission", kill_needs_permission),
    ("setgroups-rules", setgroups_rules),
];

use forkvm_abi::linux::clone::CLONE_NEWUSER;
use forkvm_abi::linux::clone::CLONE_NEWUTS;
const CAP_SYS_ADMIN: u64 = 1 << 21;
const CAP_SETUID: u64 = 1 << 7;
/// An unprivileged user no other process on the host is likely to run as
/// (the RLIMIT_NPROC scenario counts its tasks).
const USER: u32 = 61234;
/// What an unmapped id looks like.
const OVERFLOW_ID: u32 = 65534;

/// Becomes `USER` (group first, while still allowed), losing every
/// capability.
fn become_unprivileged() -> Outcome {
    cred::setgid(USER).ctx("setgid")?;
    cred::setuid(USER).ctx("setuid")?;
    let caps = cred::capget(0).ctx("capget")?;
    ensure!(
        caps.effective == 0,
        "capabilities left after setuid: {:#x}",
        caps.effective
    );
    Ok(())
}

/// `prctl(PR_SET_DUMPABLE, 1)`.
fn set_dumpable() -> Outcome {
    // SAFETY: touches no memory.
    let ret = unsafe { forkvm_user::syscall::syscall2(157, 4, 1) };
    forkvm_user::syscall::check(ret).ctx("prctl(PR_SET_DUMPABLE)")?;
    Ok(())
}

/// A child whose scenario steps report a failure message through a pipe.
struct Reporting {
    child: Child,
    report: Fd,
}

impl Reporting {
    /// Starts `body` in a child made with `clone(flags | SIGCHLD)`.
    fn spawn(flags: u64, body: impl FnOnce() -> Outcome) -> Result<Reporting, Msg> {
        let (report_r, report_w) = pipe()?;
        let report_w_raw = report_w.raw();
        let child = Child::spawn_with_flags(flags, || match body() {
            Ok(()) => 0,
            Err(m) => {
                let _ = write_all(report_w_raw, m.as_str().as_bytes());
                1
            }
        })?;
        drop(report_w);
        Ok(Reporting {
            child,
            report: report_r,
        })
    }

    /// Waits for the child; its message (or status) becomes this outcome.
    fn finish(self, what: &str) -> Outcome {
        let status = self.child.wait_bounded(what)?;
        if status.exited() && status.exit_status() == 0 {
            return Ok(());
        }
        let mut text = [0u8; 200];
        let n = read_full(self.report.raw(), &mut text)?;
        match core::str::from_utf8(&text[..n]) {
            Ok(m) if !m.is_empty() => Err(msg!("{what}: {m}")),
            _ => Err(msg!("{what}: {}", Status(status))),
        }
    }
}

/// Runs `body` in a forked child and returns its outcome.
fn in_child(what: &str, body: impl FnOnce() -> Outcome) -> Outcome {
    Reporting::spawn(0, body)?.finish(what)
}

fn expect_errno(what: &str, got: Result<(), Errno>, want: Errno) -> Outcome {
    ensure!(got == Err(want), "{what}: expected {want}, got {got:?}");
    Ok(())
}

fn read_text(pid: u32, file: IdFile, buf: &mut [u8; 128]) -> Result<&[u8], Msg> {
    let n = userns::read_file(pid, file, buf).ctx("read a /proc id file")?;
    Ok(&buf[..n])
}

/// An unprivileged user creates a user namespace: inside, the child is
/// the overflow user with every capability; the parent may map only its
/// own uid (and its gid once setgroups is denied), once, in Linux's text
/// format; after that the child is root inside.
fn userns_id_maps(_: &Ctx) -> Outcome {
    in_child("the unprivileged creator", || {
        become_unprivileged()?;
        // Changing ids made this process undumpable: its /proc files
        // belong to root, so it cannot write its own maps until it is
        // dumpable again (what container runtimes do).
        let opened = userns::ProcFd::open(0, IdFile::UidMap, forkvm_abi::linux::fcntl::O_WRONLY).map(drop);
        expect_errno(
            "opening an undumpable process's uid_map",
            opened,
            Errno::EACCES,
        )?;
        set_dumpable()?;
        // The initial namespace's maps are fixed.
        expect_errno(
            "writing the initial namespace's uid_map",
            userns::write_file(0, IdFile::UidMap, b"0 0 1\n"),
            Errno::EPERM,
        )?;
        // The child checks its ids, says it is ready, and waits for the
        // maps before checking again.
        let (go_r, go_w) = pipe()?;
        let (ready_r, ready_w) = pipe()?;
        let (go_r_raw, ready_w_raw) = (go_r.raw(), ready_w.raw());
        let inner = Reporting::spawn(CLONE_NEWUSER, || {
            let ids = (cred::getuid(), cred::geteuid(), cred::getgid());
            ensure!(
                ids == (OVERFLOW_ID, OVERFLOW_ID, OVERFLOW_ID),
                "ids before the maps: {ids:?}"
            );
            let caps = cred::capget(0).ctx("capget")?;
            ensure!(
                caps.effective & (CAP_SYS_ADMIN | CAP_SETUID) == CAP_SYS_ADMIN | CAP_SETUID,
                "capabilities in the new namespace: {:#x}",
                caps.effective
            );
            write_all(ready_w_raw, b"r").ctx("write")?;
            let mut byte = [0u8; 1];
            ensure!(
                read_full(go_r_raw, &mut byte)? == 1,
                "no go from the parent"
            );
            let ids = (cred::getuid(), cred::geteuid(), cred::getgid());
            ensure!(ids == (0, 0, 0), "ids after the maps: {ids:?}");
            let mut buf = [0u8; 128];
            let own_view = read_text(0, IdFile::UidMap, &mut buf)?;
            ensure!(
                own_view == b"         0      61234          1\n",
                "uid_map seen from inside: \"{}\"",
                Bytes(own_view)
            );
            expect_errno("setuid to an unmapped uid", cred::setuid(1), Errno::EINVAL)?;
            // Its CAP_DAC_OVERRIDE does not reach a directory whose owner
            // (root outside) the namespace cannot name.
            expect_errno(
                "mkdir in / as root of the namespace",
                forkvm_user::syscall::mkdir(c"/proctest-userns-denied", 0o755),
                Errno::EACCES,
            )?;
            cred::setuid(0).ctx("setuid(0) inside")?;
            Ok(())
        })?;
        drop(go_r);
        drop(ready_w);
        let mut byte = [0u8; 1];
        if read_full(ready_r.raw(), &mut byte)? != 1 {
            // It failed before getting ready: its message says why.
            return inner.finish("the child in the new user namespace");
        }
        let pid = inner.child.pid();
        let uid_map = |text: &[u8]| userns::write_file(pid, IdFile::UidMap, text);
        expect_errno(
            "mapping another user's uid",
            uid_map(b"0 61235 1\n"),
            Errno::EPERM,
        )?;
        expect_errno("mapping two uids", uid_map(b"0 61234 2\n"), Errno::EPERM)?;
        expect_errno(
            "a map that is not numbers",
            uid_map(b"x 61234 1\n"),
            Errno::EINVAL,
        )?;
        expect_errno("trailing junk", uid_map(b"0 61234 1 x\n"), Errno::EINVAL)?;
        expect_errno("a zero count", uid_map(b"0 61234 0\n"), Errno::EINVAL)?;
        uid_map(b"0 61234 1\n").ctx("mapping its own uid")?;
        expect_errno(
            "a second uid_map write",
            uid_map(b"0 61234 1\n"),
            Errno::EPERM,
        )?;
        let mut buf = [0u8; 128];
        let text = read_text(pid, IdFile::UidMap, &mut buf)?;
        ensure!(
            text == b"         0      61234          1\n",
            "uid_map as read by its writer: \"{}\"",
            Bytes(text)
        );

        let gid_map = |text: &[u8]| userns::write_file(pid, IdFile::GidMap, text);
        expect_errno(
            "gid_map before setgroups is denied",
            gid_map(b"0 61234 1\n"),
            Errno::EPERM,
        )?;
        let mut buf = [0u8; 128];
        ensure!(
            read_text(pid, IdFile::Setgroups, &mut buf)? == b"allow\n",
            "setgroups does not start as allow"
        );
        userns::write_file(pid, IdFile::Setgroups, b"deny").ctx("denying setgroups")?;
        gid_map(b"0 61234 1\n").ctx("mapping its own gid")?;
        expect_errno(
            "allowing setgroups again",
            userns::write_file(pid, IdFile::Setgroups, b"allow"),
            Errno::EPERM,
        )?;
        let mut buf = [0u8; 128];
        ensure!(
            read_text(pid, IdFile::Setgroups, &mut buf)? == b"deny\n",
            "setgroups does not read deny"
        );

        write_all(go_w.raw(), b"g").ctx("write")?;
        drop(go_w);
        inner.finish("the child in the new user namespace")
    })
}

/// Capabilities in a new user namespace reach only what it owns: an
/// unprivileged user cannot make a UTS namespace alone, can together with
/// a user namespace (which then owns it), and root of a new user
/// namespace still cannot rename the host it shares with its creator.
fn userns_owns_namespaces(_: &Ctx) -> Outcome {
    let before = hostname()?;
    in_child("the unprivileged creator", || {
        become_unprivileged()?;
        // SAFETY: a plain fork-like clone; the child exits at once.
        let ret = unsafe { syscall5(nr::CLONE, (CLONE_NEWUTS | 17) as usize, 0, 0, 0, 0) };
        match forkvm_user::syscall::check(ret) {
            Ok(0) => exit_group(0),
            Ok(pid) => {
                let _ = wait4(pid as i32, 0);
                return Err(msg!("CLONE_NEWUTS without privilege succeeded"));
            }
            Err(e) => ensure!(
                e == Errno::EPERM,
                "CLONE_NEWUTS alone: expected EPERM, got {e}"
            ),
        }
        Reporting::spawn(CLONE_NEWUSER | CLONE_NEWUTS, || {
            ensure!(
                sethostname(b"proctest-userns") == 0,
                "sethostname in an owned UTS namespace failed"
            );
            let u = uname().ctx("uname")?;
            ensure!(
                c_field(&u.nodename) == b"proctest-userns",
                "the new host name did not stick"
            );
            Ok(())
        })?
        .finish("CLONE_NEWUSER | CLONE_NEWUTS")?;
        Reporting::spawn(CLONE_NEWUSER, || {
            let caps = cred::capget(0).ctx("capget")?;
            ensure!(
                caps.effective & CAP_SYS_ADMIN != 0,
                "no CAP_SYS_ADMIN in the new namespace"
            );
            let ret = sethostname(b"proctest-escape");
            ensure!(
                ret == -(Errno::EPERM.0 as isize),
                "sethostname on the creator's UTS namespace: expected EPERM, got {}",
                Ret(ret)
            );
            Ok(())
        })?
        .finish("CLONE_NEWUSER alone")
    })?;
    ensure!(hostname()? == before, "the host name changed");
    Ok(())
}

/// RLIMIT_NPROC inside a user namespace also charges the creator's user
/// in the parent namespace, against the creator's limit: with a limit of
/// 2, the creator and its namespaced child use it up, so the child (root
/// with every capability in its own namespace, but not over the machine)
/// cannot fork.
fn userns_nproc_counts_creator(_: &Ctx) -> Outcome {
    in_child("the limited creator", || {
        let two = Rlimit { cur: 2, max: 2 };
        cred::prlimit64(0, RLIMIT_NPROC, Some(two)).ctx("prlimit64")?;
        become_unprivileged()?;
        Reporting::spawn(CLONE_NEWUSER, || match fork() {
            Ok(0) => exit_group(0),
            Ok(pid) => {
                let _ = wait4(pid as i32, 0);
                Err(msg!("fork inside the namespace passed the creator's limit"))
            }
            Err(e) => {
                ensure!(e == Errno::EAGAIN, "fork inside: expected EAGAIN, got {e}");
                Ok(())
            }
        })?
        .finish("the child in the new user namespace")
    })
}

/// `unshare(CLONE_NEWUSER)` by an unprivileged user: the caller itself
/// becomes the overflow user with every capability in the new namespace,
/// maps its own ids from inside, and can then make a UTS namespace of its
/// own. Flags unshare does not know are EINVAL.
fn unshare_user_and_uts(_: &Ctx) -> Outcome {
    let before = hostname()?;
    in_child("the unprivileged caller", || {
        become_unprivileged()?;
        set_dumpable()?;
        expect_errno("unshare(CLONE_PARENT)", unshare(0x8000), Errno::EINVAL)?;
        expect_errno("unshare of an exit signal", unshare(17), Errno::EINVAL)?;
        expect_errno(
            "unshare(CLONE_NEWUTS) unprivileged",
            unshare(CLONE_NEWUTS),
            Errno::EPERM,
        )?;
        unshare(CLONE_NEWUSER).ctx("unshare(CLONE_NEWUSER)")?;
        let ids = (cred::getuid(), cred::geteuid());
        ensure!(
            ids == (OVERFLOW_ID, OVERFLOW_ID),
            "ids in the new namespace: {ids:?}"
        );
        let caps = cred::capget(0).ctx("capget")?;
        ensure!(
            caps.effective & CAP_SYS_ADMIN != 0,
            "no CAP_SYS_ADMIN after unshare"
        );
        userns::write_file(0, IdFile::Setgroups, b"deny").ctx("setgroups deny")?;
        userns::write_file(0, IdFile::UidMap, b"0 61234 1").ctx("own uid_map")?;
        userns::write_file(0, IdFile::GidMap, b"0 61234 1").ctx("own gid_map")?;
        let ids = (cred::getuid(), cred::getgid());
        ensure!(ids == (0, 0), "ids after the maps: {ids:?}");
        unshare(CLONE_NEWUTS).ctx("unshare(CLONE_NEWUTS) as the namespace's root")?;
        ensure!(
            sethostname(b"proctest-unshare") == 0,
            "sethostname in the new UTS namespace"
        );
        Ok(())
    })?;
    ensure!(hostname()? == before, "the host name changed");
    Ok(())
}

/// A child sharing the fs_struct and fd table (CLONE_FS | CLONE_FILES)
/// unshares both: its chdir and close no longer reach the parent.
fn unshare_fs_and_files(_: &Ctx) -> Outcome {
    use forkvm_abi::linux::clone::CLONE_FS;
    use forkvm_abi::linux::clone::CLONE_FILES;
    let mut before = [0u8; 256];
    let before_len = forkvm_user::syscall::getcwd(&mut before).ctx("getcwd")?;
    let (r, w) = pipe()?;
    let r_raw = r.raw();
    Reporting::spawn(CLONE_FS | CLONE_FILES, || {
        unshare(CLONE_FS | CLONE_FILES).ctx("unshare(CLONE_FS | CLONE_FILES)")?;
        forkvm_user::syscall::chdir(c"/").ctx("chdir")?;
        close(r_raw).ctx("close")?;
        Ok(())
    })?
    .finish("the child that unshared")?;
    let mut after = [0u8; 256];
    let after_len = forkvm_user::syscall::getcwd(&mut after).ctx("getcwd")?;
    ensure!(
        before[..before_len] == after[..after_len],
        "the child's chdir moved the parent"
    );
    write_all(w.raw(), b"x").ctx("write")?;
    let mut byte = [0u8; 1];
    ensure!(
        read(r.raw(), &mut byte) == Ok(1),
        "the child's close closed the parent's descriptor"
    );
    Ok(())
}

/// `unshare(CLONE_NEWPID)` keeps the caller where it is and puts its next
/// child first in a new pid namespace (pid 1 there); a second one before
/// that namespace has a process is EINVAL.
fn unshare_pid(_: &Ctx) -> Outcome {
    use forkvm_abi::linux::clone::CLONE_NEWPID;
    in_child("the caller", || {
        let pid = getpid();
        unshare(CLONE_NEWPID).ctx("unshare(CLONE_NEWPID)")?;
        ensure!(getpid() == pid, "the caller's pid changed");
        expect_errno(
            "a second unshare(CLONE_NEWPID)",
            unshare(CLONE_NEWPID),
            Errno::EINVAL,
        )?;
        Reporting::spawn(0, || {
            ensure!(getpid() == 1, "the first child is pid {}", getpid());
            Ok(())
        })?
        .finish("the first child of the new namespace")
    })
}

fn kill_errno(pid: i32, signal: i32) -> Result<(), Errno> {
    kill(pid, signal)
}

/// `kill` checks the sender's ids against the target's (Linux
/// `check_kill_permission`): an unprivileged user cannot signal root's
/// processes, not even as root of its own user namespace (CAP_KILL there
/// does not reach the initial namespace); its own processes it can;
/// `kill(-1)` skips what it may not signal; SIGCONT within the session
/// is allowed.
fn kill_needs_permission(_: &Ctx) -> Outcome {
    let root_pid = getpid() as i32;
    in_child("the unprivileged sender", || {
        become_unprivileged()?;
        expect_errno(
            "signal 0 to root's process",
            kill_errno(root_pid, 0),
            Errno::EPERM,
        )?;
        kill_errno(root_pid, 18).ctx("SIGCONT within the session")?;
        kill_errno(getpid() as i32, 0).ctx("signal 0 to itself")?;
        kill_errno(-1, 0).ctx("kill(-1, 0)")?;
        let own = getpid() as i32;
        Reporting::spawn(CLONE_NEWUSER, || {
            let caps = cred::capget(0).ctx("capget")?;
            ensure!(
                caps.effective & (1 << 5) != 0,
                "no CAP_KILL in the new namespace"
            );
            expect_errno(
                "signal 0 to root's process from a user namespace",
                kill_errno(root_pid, 0),
                Errno::EPERM,
            )?;
            kill_errno(own, 0).ctx("signal 0 to its creator (the same user)")?;
            Ok(())
        })?
        .finish("the child in a new user namespace")
    })
}

/// `getgroups(size, list)`; returns the count.
fn getgroups(list: &mut [u32]) -> Result<usize, Errno> {
    // SAFETY: the kernel writes at most list.len() gids into the live slice.
    forkvm_user::syscall::check(unsafe {
        forkvm_user::syscall::syscall2(115, list.len(), list.as_mut_ptr() as usize)
    })
}

/// `setgroups(size, list)` with a raw pointer (to test EFAULT).
fn setgroups_raw(size: usize, list: usize) -> Result<(), Errno> {
    // SAFETY: the kernel only reads; a bad pointer is its EFAULT.
    forkvm_user::syscall::check(unsafe { forkvm_user::syscall::syscall2(116, size, list) })
        .map(drop)
}

fn setgroups(list: &[u32]) -> Result<(), Errno> {
    setgroups_raw(list.len(), list.as_ptr() as usize)
}

/// Supplementary groups: root sets them (sorted, as getgroups shows),
/// with Linux's EINVAL/EFAULT rules; they survive setuid; an unprivileged
/// user, and root of a user namespace whose gid map is not written, may
/// not set them; seen from a namespace that does not map them they are
/// the overflow gid.
fn setgroups_rules(_: &Ctx) -> Outcome {
    in_child("root", || {
        setgroups(&[7, 5]).ctx("setgroups([7, 5])")?;
        ensure!(getgroups(&mut []) == Ok(2), "getgroups(0) is not 2");
        expect_errno(
            "getgroups into 1 slot",
            getgroups(&mut [0]).map(drop),
            Errno::EINVAL,
        )?;
        let mut list = [0u32; 4];
        let n = getgroups(&mut list).ctx("getgroups")?;
        ensure!(list[..n] == [5, 7], "groups: {:?}", &list[..n]);
        expect_errno("65537 groups", setgroups_raw(65537, 0), Errno::EINVAL)?;
        expect_errno("a bad list", setgroups_raw(1, 8), Errno::EFAULT)?;
        expect_errno("gid -1", setgroups(&[u32::MAX]), Errno::EINVAL)?;
        become_unprivileged()?;
        let n = getgroups(&mut list).ctx("getgroups after setuid")?;
        ensure!(list[..n] == [5, 7], "groups after setuid: {:?}", &list[..n]);
        expect_errno("setgroups unprivileged", setgroups(&[]), Errno::EPERM)?;
        Reporting::spawn(CLONE_NEWUSER, || {
            expect_errno("setgroups before the gid map", setgroups(&[]), Errno::EPERM)?;
            let mut list = [0u32; 4];
            let n = getgroups(&mut list).ctx("getgroups in the namespace")?;
            ensure!(
                list[..n] == [OVERFLOW_ID, OVERFLOW_ID],
                "groups in the namespace: {:?}",
                &list[..n]
            );
            Ok(())
        })?
        .finish("the child in a new user namespace")
    })
}
