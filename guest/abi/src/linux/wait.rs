//! `wait4`/`waitid` options, `waitid` id types (`include/uapi/linux/wait.h`)
//! and the wait status word (`<sys/wait.h>`).

use super::signal::Signal;

/// Return at once if no child has changed state.
pub const WNOHANG: u32 = 0x0000_0001;
/// `wait4`: also report stopped children (same bit as [`WSTOPPED`]).
pub const WUNTRACED: u32 = 0x0000_0002;
/// `waitid`: report stopped children.
pub const WSTOPPED: u32 = WUNTRACED;
/// `waitid`: report exited children.
pub const WEXITED: u32 = 0x0000_0004;
/// Report continued children.
pub const WCONTINUED: u32 = 0x0000_0008;
/// `waitid`: leave the child waitable.
pub const WNOWAIT: u32 = 0x0100_0000;
/// Do not wait for children of other threads of the group.
pub const __WNOTHREAD: u32 = 0x2000_0000;
/// Wait for any child, whatever its exit signal.
pub const __WALL: u32 = 0x4000_0000;
/// Wait only for children whose exit signal is not `SIGCHLD`.
pub const __WCLONE: u32 = 0x8000_0000;

/// `waitid` id type: any child.
pub const P_ALL: u32 = 0;
/// `waitid` id type: the child with this pid.
pub const P_PID: u32 = 1;
/// `waitid` id type: the children in this process group.
pub const P_PGID: u32 = 2;
/// `waitid` id type: the child this pidfd refers to.
pub const P_PIDFD: u32 = 3;

/// A wait status word (`wait4`'s `*wstatus`), encoded by the kernel's exit
/// and decoded as `<sys/wait.h>` does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WaitStatus(pub i32);

impl WaitStatus {
    /// The status of a normal exit with `code` (only its low byte counts).
    pub const fn for_exit(code: i32) -> WaitStatus {
        WaitStatus((code & 0xff) << 8)
    }
    /// The status of a death by `signal` (no core dump).
    pub const fn for_signal(signal: Signal) -> WaitStatus {
        WaitStatus((signal.number() & 0x7f) as i32)
    }
    /// `WIFEXITED`: the child called `exit`/`exit_group` (or returned from main).
    pub const fn exited(self) -> bool {
        self.0 & 0x7f == 0
    }
    /// `WEXITSTATUS`: the low 8 bits of the exit status (meaningful if [`Self::exited`]).
    pub const fn exit_status(self) -> i32 {
        (self.0 >> 8) & 0xff
    }
    /// `WIFSIGNALED`: the child was killed by a signal.
    pub const fn signaled(self) -> bool {
        let low = self.0 & 0x7f;
        low != 0 && low != 0x7f
    }
    /// `WTERMSIG`: the signal that killed the child (meaningful if [`Self::signaled`]).
    pub const fn term_signal(self) -> i32 {
        self.0 & 0x7f
    }
    /// `WCOREDUMP`: the killed child dumped core.
    pub const fn core_dumped(self) -> bool {
        self.signaled() && self.0 & 0x80 != 0
    }
    /// `WIFSTOPPED`: the child is stopped (only reported with `WUNTRACED`).
    pub const fn stopped(self) -> bool {
        self.0 & 0xff == 0x7f
    }
    /// `WSTOPSIG`: the signal that stopped the child.
    pub const fn stop_signal(self) -> i32 {
        (self.0 >> 8) & 0xff
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_as_linux_and_decodes_back() {
        let exit = WaitStatus::for_exit(0x1_2a);
        assert_eq!(exit.0, 0x2a00);
        assert!(exit.exited() && !exit.signaled());
        assert_eq!(exit.exit_status(), 0x2a);
        let killed = WaitStatus::for_signal(Signal::new(9).unwrap());
        assert_eq!(killed.0, 9);
        assert!(killed.signaled() && !killed.exited() && !killed.core_dumped());
        assert_eq!(killed.term_signal(), 9);
        assert!(WaitStatus(0x8b).core_dumped());
        assert!(WaitStatus(0x137f).stopped());
        assert_eq!(WaitStatus(0x137f).stop_signal(), 19);
    }
}
