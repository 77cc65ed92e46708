//! `vfork`: the child runs first in the parent's memory, and `execve`
//! from it.

use super::*;

pub const SCENARIOS: &[(&str, Scenario)] =
    &[("vfork-order", vfork_order), ("vfork-exec", vfork_exec)];

/// How far the `vfork-order` child counted.
static VFORK_PROGRESS: AtomicU32 = AtomicU32::new(0);
/// Set by the parent as soon as `vfork` returns to it.
static VFORK_PARENT_RAN: AtomicU32 = AtomicU32::new(0);
/// What the child saw of `VFORK_PARENT_RAN` just before its `_exit`.
static VFORK_CHILD_SAW_PARENT: AtomicU32 = AtomicU32::new(u32::MAX);
const VFORK_COUNT: u32 = 200_000;

/// `vfork`, then the child counts to [`VFORK_COUNT`] in shared memory and
/// `_exit`s. Not inlined: the child never returns from this frame, the
/// parent does once the child has exited.
#[inline(never)]
fn vfork_counting_child() -> Result<Pid, Errno> {
    // SAFETY: the child only stores to statics and makes the inlined exit
    // system call; it never returns from this function.
    match unsafe { vfork() } {
        Ok(0) => {
            for i in 1..=VFORK_COUNT {
                VFORK_PROGRESS.store(core::hint::black_box(i), Ordering::Relaxed);
            }
            VFORK_CHILD_SAW_PARENT
                .store(VFORK_PARENT_RAN.load(Ordering::Relaxed), Ordering::Relaxed);
            exit(0)
        }
        other => other,
    }
}

/// The `vfork` child runs first, in the parent's memory, while the parent
/// is suspended: once the parent resumes, the child has finished writing.
fn vfork_order(_: &Ctx) -> Outcome {
    VFORK_PROGRESS.store(0, Ordering::Relaxed);
    VFORK_PARENT_RAN.store(0, Ordering::Relaxed);
    VFORK_CHILD_SAW_PARENT.store(u32::MAX, Ordering::Relaxed);
    let pid = vfork_counting_child().ctx("vfork")?;
    VFORK_PARENT_RAN.store(1, Ordering::Relaxed);
    let progress = VFORK_PROGRESS.load(Ordering::Relaxed);
    let saw = VFORK_CHILD_SAW_PARENT.load(Ordering::Relaxed);
    let status = Child { pid }.wait()?;
    ensure!(
        progress == VFORK_COUNT,
        "parent resumed with the child's counter at {progress}, expected {VFORK_COUNT} (parent not suspended until the child's exit, or memory not shared)"
    );
    ensure!(
        saw == 0,
        "child saw the parent running before it exited (flag {saw})"
    );
    expect_exit("vfork child", status, 0)
}

/// The errno of a failed `execve` in the `vfork-exec` child (0: none).
pub static EXEC_ERRNO: AtomicI32 = AtomicI32::new(0);

/// `vfork`, then the child `execve`s `path` (or `_exit`s 127). Not inlined,
/// as [`vfork_counting_child`].
#[inline(never)]
pub fn vfork_exec_child(path: &CStr, argv: &[*const u8], envp: &[*const u8]) -> Result<Pid, Errno> {
    // SAFETY: the child only calls execve (its frame goes below ours, which
    // the suspended parent does not use), stores to a static and makes the
    // inlined exit system call; it never returns from this function.
    match unsafe { vfork() } {
        Ok(0) => {
            let e = execve(path, argv, envp);
            EXEC_ERRNO.store(e.0, Ordering::Relaxed);
            exit(127)
        }
        other => other,
    }
}

/// `vfork` + `execve` of this very program (`argv[0]`) with the helper
/// `exit-42`: the parent sees exit status 42.
fn vfork_exec(ctx: &Ctx) -> Outcome {
    let Some(argv0) = ctx.argv0 else {
        return Err(msg!("no argv[0] to execute"));
    };
    // SAFETY: argv[0] is a slice of the NUL-terminated string the kernel put
    // on the initial stack (see forkvm_user::start); its NUL follows it.
    let path = unsafe { CStr::from_ptr(argv0.as_ptr().cast()) };
    let argv = [
        argv0.as_ptr(),
        c"exit-42".as_ptr().cast(),
        core::ptr::null(),
    ];
    let envp = [core::ptr::null()];
    EXEC_ERRNO.store(0, Ordering::Relaxed);
    let pid = vfork_exec_child(path, &argv, &envp).ctx("vfork")?;
    let status = Child { pid }.wait()?;
    let errno = EXEC_ERRNO.load(Ordering::Relaxed);
    ensure!(
        errno == 0,
        "child's execve({}) failed: {}",
        Bytes(argv0),
        Errno(errno)
    );
    expect_exit("exec'd `proctest exit-42`", status, 42)
}
