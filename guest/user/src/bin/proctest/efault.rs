//! Bad user pointers: `EFAULT` where Linux gives it, nothing where it
//! ignores a failed store.

use super::*;

pub const SCENARIOS: &[(&str, Scenario)] = &[
    ("efault-write", efault_write),
    ("efault-wait4", efault_wait4),
    ("efault-clone-settid", efault_clone_settid),
];

/// `write` from an unmapped or kernel address fails with `EFAULT` (into a
/// pipe: fd 1 may be `/dev/null`, which does not even read the buffer) and
/// writes nothing.
fn efault_write(_: &Ctx) -> Outcome {
    let (r, w) = pipe()?;
    for addr in [1usize, 0x4000_0000_0000, 0xffff_8000_0000_0000] {
        // SAFETY: the kernel only reads from `addr` (and must refuse to).
        let ret = unsafe { syscall3(nr::WRITE, w.raw() as usize, addr, 10) };
        ensure!(
            ret == -(Errno::EFAULT.0 as isize),
            "write(pipe, {addr:#x}, 10): expected -EFAULT, got {}",
            Ret(ret)
        );
    }
    write_all(w.raw(), b"x").ctx("write(pipe)")?;
    drop(w);
    let mut buf = [0u8; 32];
    let n = read_full(r.raw(), &mut buf)?;
    ensure!(
        &buf[..n] == b"x",
        "pipe holds {n} bytes after the failed writes and a 1-byte write"
    );
    Ok(())
}

/// `wait4(child, (int *)1, 0, NULL)` for an exited child fails with
/// `EFAULT`, and (as Linux does) the child has been reaped all the same: the
/// status is copied out only after the child is released, so a second
/// `wait4` fails with `ECHILD`.
fn efault_wait4(_: &Ctx) -> Outcome {
    let child = Child::spawn(|| 7)?;
    let pid = child.pid();
    // SAFETY: the kernel writes the status to address 1, which it must refuse.
    let ret = unsafe { syscall4(nr::WAIT4, pid as usize, 1, 0, 0) };
    if ret == pid as isize {
        child.reaped();
        return Err(msg!(
            "wait4({pid}, (int *)1, 0, NULL): expected -EFAULT, got the pid"
        ));
    }
    ensure!(
        ret == -(Errno::EFAULT.0 as isize),
        "wait4({pid}, (int *)1, 0, NULL): expected -EFAULT, got {}",
        Ret(ret)
    );
    // Linux reaped it; if not, this reaps it.
    let pid = child.reaped();
    let again = wait4(pid as i32, 0);
    ensure!(
        again.is_err_and(|e| e == Errno::ECHILD),
        "wait4({pid}) after the EFAULT one: expected ECHILD (child already reaped, as on Linux), got {:?}",
        again.map(|(p, s)| (p, s.0))
    );
    Ok(())
}

/// `clone(CLONE_PARENT_SETTID | SIGCHLD)` with `parent_tid = (int *)1`:
/// Linux ignores the failed store (`put_user`'s result is not checked), so
/// the call succeeds, returning the child's pid, and the child runs normally.
fn efault_clone_settid(_: &Ctx) -> Outcome {
    // SAFETY: without CLONE_VM and with stack 0 this is a fork (the child
    // returns here with a copy of our memory and rax = 0) whose parent_tid
    // store goes to address 1, which the kernel must not write.
    let ret = unsafe {
        syscall5(
            nr::CLONE,
            (CLONE_PARENT_SETTID | SIGCHLD) as usize,
            0,
            1,
            0,
            0,
        )
    };
    if ret == 0 {
        exit_group(37);
    }
    ensure!(
        ret > 0,
        "clone(CLONE_PARENT_SETTID, parent_tid=1): expected a pid (Linux ignores the failed store), got {}",
        Ret(ret)
    );
    let status = Child { pid: ret as Pid }.wait()?;
    expect_exit("clone child", status, 37)
}
