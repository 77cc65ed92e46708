//! Linux signal numbers, signal actions' handler values and flags and
//! `rt_sigprocmask`'s `how` on x86-64 (`arch/x86/include/uapi/asm/signal.h`,
//! `include/uapi/asm-generic/signal-defs.h`) and the `si_code` values of
//! `SIGCHLD` (`include/uapi/asm-generic/siginfo.h`).

pub const SIGHUP: u32 = 1;
pub const SIGINT: u32 = 2;
pub const SIGQUIT: u32 = 3;
pub const SIGILL: u32 = 4;
pub const SIGTRAP: u32 = 5;
pub const SIGABRT: u32 = 6;
pub const SIGBUS: u32 = 7;
pub const SIGFPE: u32 = 8;
pub const SIGKILL: u32 = 9;
pub const SIGUSR1: u32 = 10;
pub const SIGSEGV: u32 = 11;
pub const SIGUSR2: u32 = 12;
pub const SIGPIPE: u32 = 13;
pub const SIGALRM: u32 = 14;
pub const SIGTERM: u32 = 15;
pub const SIGSTKFLT: u32 = 16;
pub const SIGCHLD: u32 = 17;
pub const SIGCONT: u32 = 18;
pub const SIGSTOP: u32 = 19;
pub const SIGTSTP: u32 = 20;
pub const SIGTTIN: u32 = 21;
pub const SIGTTOU: u32 = 22;
pub const SIGURG: u32 = 23;
pub const SIGXCPU: u32 = 24;
pub const SIGXFSZ: u32 = 25;
pub const SIGVTALRM: u32 = 26;
pub const SIGPROF: u32 = 27;
pub const SIGWINCH: u32 = 28;
pub const SIGIO: u32 = 29;
pub const SIGPWR: u32 = 30;
pub const SIGSYS: u32 = 31;
/// First real-time signal as the kernel numbers them (the C library
/// reserves a few and its `SIGRTMIN` is higher).
pub const SIGRTMIN: u32 = 32;
/// Last real-time signal.
pub const SIGRTMAX: u32 = NSIG;
/// Highest signal number (Linux `_NSIG`): signals are 1..=64.
pub const NSIG: u32 = 64;

/// `sa_handler` value: the default action.
pub const SIG_DFL: u64 = 0;
/// `sa_handler` value: ignore the signal.
pub const SIG_IGN: u64 = 1;
/// `sa_flags`: do not turn exiting children into zombies.
pub const SA_NOCLDWAIT: u64 = 2;
/// `sa_flags`: the handler takes (signo, siginfo, ucontext).
pub const SA_SIGINFO: u64 = 4;
/// `sa_flags`: `sa_restorer` is set (x86-64 requires it to deliver).
pub const SA_RESTORER: u64 = 0x0400_0000;
/// `sa_flags`: run the handler on the alternate signal stack.
pub const SA_ONSTACK: u64 = 0x0800_0000;
/// `sa_flags`: restart system calls the signal interrupts.
pub const SA_RESTART: u64 = 0x1000_0000;
/// `sa_flags`: do not block the signal during its handler.
pub const SA_NODEFER: u64 = 0x4000_0000;
/// `sa_flags`: reset the action to SIG_DFL when the handler runs.
pub const SA_RESETHAND: u64 = 0x8000_0000;

/// `rt_sigprocmask` `how`: add the set to the mask.
pub const SIG_BLOCK: u32 = 0;
/// `rt_sigprocmask` `how`: take the set out of the mask.
pub const SIG_UNBLOCK: u32 = 1;
/// `rt_sigprocmask` `how`: the set becomes the mask.
pub const SIG_SETMASK: u32 = 2;

/// `si_code` of `SIGCHLD`: the child exited.
pub const CLD_EXITED: i32 = 1;
/// `si_code` of `SIGCHLD`: the child was killed.
pub const CLD_KILLED: i32 = 2;
/// `si_code` of `SIGCHLD`: the child was killed and dumped core.
pub const CLD_DUMPED: i32 = 3;

/// A valid signal number, 1..=[`NSIG`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Signal(u32);

impl Signal {
    /// `number` as a signal, or `None` outside 1..=[`NSIG`] (0 is the
    /// "probe only" value of `kill`, not a signal).
    pub const fn new(number: u32) -> Option<Signal> {
        if number >= 1 && number <= NSIG {
            Some(Signal(number))
        } else {
            None
        }
    }

    /// The signal's number.
    pub const fn number(self) -> u32 {
        self.0
    }

    /// Whether it is a real-time signal (queued once per send).
    pub const fn is_realtime(self) -> bool {
        self.0 >= SIGRTMIN
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_1_to_64_are_signals() {
        assert_eq!(Signal::new(0), None);
        assert_eq!(Signal::new(NSIG + 1), None);
        assert_eq!(Signal::new(SIGKILL).map(Signal::number), Some(9));
        assert_eq!(Signal::new(SIGRTMAX).map(Signal::number), Some(64));
        assert!(Signal::new(SIGRTMIN).is_some_and(Signal::is_realtime));
        assert!(!Signal::new(SIGSYS).is_some_and(Signal::is_realtime));
    }
}
