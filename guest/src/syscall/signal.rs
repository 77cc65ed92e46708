//! `kill`. There are no signal handlers yet, so every signal has its
//! default action: terminate (the wait status shows the signal), or be
//! ignored (SIGCHLD, SIGCONT, SIGURG, SIGWINCH). Stop signals are ignored
//! too until job control exists.

use alloc::vec::Vec;

use super::{Args, SysResult};
use crate::errno::{EINVAL, ESRCH};
use crate::process::exit::signal_status;
use crate::sched;

const SIGCHLD: u64 = 17;
const SIGCONT: u64 = 18;
const SIGSTOP: u64 = 19;
const SIGTSTP: u64 = 20;
const SIGTTIN: u64 = 21;
const SIGTTOU: u64 = 22;
const SIGURG: u64 = 23;
const SIGWINCH: u64 = 28;
/// Highest signal number (Linux `_NSIG`).
const NSIG: u64 = 64;

fn default_action_ignores(signal: u64) -> bool {
    matches!(
        signal,
        SIGCHLD | SIGCONT | SIGURG | SIGWINCH | SIGSTOP | SIGTSTP | SIGTTIN | SIGTTOU
    )
}

/// `kill(pid, sig)`: a process (pid > 0) or every process but init and
/// the caller (pid == -1). Process groups do not exist yet: other pids
/// find nobody.
pub fn kill(a: Args) -> SysResult {
    let pid = a.0[0] as i32;
    let signal = a.0[1];
    if signal > NSIG {
        return Err(EINVAL);
    }
    let current = sched::current();
    let targets: Vec<_> = crate::process::all_tasks()
        .into_iter()
        .filter(|task| task.mm().is_some()) // kernel threads take no signals
        .filter(|task| match pid {
            p if p > 0 => task.tgid == p as u32,
            -1 => task.tgid != 1 && task.tgid != current.tgid,
            _ => false,
        })
        .collect();
    if targets.is_empty() {
        return Err(ESRCH);
    }
    if signal == 0 || default_action_ignores(signal) {
        return Ok(0);
    }
    // A fatal signal ends the whole thread group.
    for task in targets {
        task.set_fatal(signal_status(signal as u32));
    }
    Ok(0)
}
