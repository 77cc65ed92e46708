//! `exit_group`: the whole process ends, threads included.

use super::*;

pub const SCENARIOS: &[(&str, Scenario)] =
    &[("exit-group-kills-threads", exit_group_kills_threads)];

static SPINNER_STARTED: AtomicU32 = AtomicU32::new(0);

extern "C" fn thread_spins(_arg: usize) -> ! {
    SPINNER_STARTED.store(1, Ordering::Release);
    loop {
        core::hint::spin_loop();
    }
}

/// The forked child of `exit-group-kills-threads`: starts a spinning thread,
/// waits until it runs, then `exit_group(7)`s (99: the thread never ran).
fn exit_group_child() -> i32 {
    SPINNER_STARTED.store(0, Ordering::Relaxed);
    let Ok(stack) = ThreadStack::new() else {
        return 98;
    };
    // SAFETY: the thread uses only its stack and a static; the stack stays
    // mapped until exit_group ends the whole process.
    if unsafe { stack.clone(THREAD_FLAGS, thread_spins, 0) }.is_err() {
        return 97;
    }
    let deadline = monotonic_ns() + TIMEOUT_NS;
    while SPINNER_STARTED.load(Ordering::Acquire) == 0 {
        if monotonic_ns() > deadline {
            exit_group(99);
        }
        sleep_ns(100_000);
    }
    exit_group(7)
}

/// `exit_group(7)` ends a process whose other thread spins: status exit 7.
fn exit_group_kills_threads(_: &Ctx) -> Outcome {
    let child = Child::spawn(exit_group_child)?;
    let status = child.wait_bounded("exit_group with a spinning thread")?;
    ensure!(
        status != WaitStatus(99 << 8),
        "the spinning thread never ran"
    );
    expect_exit("exit_group(7) with a spinning thread", status, 7)
}
