//! Signal dispositions (Linux `sighand_struct`) and masks. Handlers can be
//! installed and read back, but this kernel does not yet build signal
//! frames: a signal whose action is a handler stays pending, undelivered.
//! Default actions (terminate or ignore) and SIG_IGN are honoured.

use alloc::sync::Arc;

use spin::Mutex;

/// Highest signal number.
pub const NSIG: usize = 64;
pub const SIGKILL: u32 = 9;
pub const SIGCHLD: u32 = 17;
pub const SIGSTOP: u32 = 19;

/// `sa_handler` values.
pub const SIG_DFL: u64 = 0;
pub const SIG_IGN: u64 = 1;
/// `sa_flags`: do not turn exiting children into zombies.
pub const SA_NOCLDWAIT: u64 = 2;

/// The kernel's `struct sigaction` on x86-64 (what `rt_sigaction` copies).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SigAction {
    pub handler: u64,
    pub flags: u64,
    pub restorer: u64,
    pub mask: u64,
}

impl SigAction {
    pub fn to_bytes(self) -> [u8; 32] {
        let mut bytes = [0u8; 32];
        for (i, word) in [self.handler, self.flags, self.restorer, self.mask]
            .iter()
            .enumerate()
        {
            bytes[i * 8..i * 8 + 8].copy_from_slice(&word.to_le_bytes());
        }
        bytes
    }

    pub fn from_bytes(bytes: &[u8; 32]) -> SigAction {
        let word =
            |i: usize| u64::from_le_bytes(bytes[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
        SigAction {
            handler: word(0),
            flags: word(1),
            restorer: word(2),
            mask: word(3),
        }
    }
}

/// The actions of every signal, shared by tasks created with `CLONE_SIGHAND`.
#[derive(Clone)]
pub struct SigHand {
    actions: [SigAction; NSIG],
}

impl Default for SigHand {
    fn default() -> Self {
        SigHand {
            actions: [SigAction::default(); NSIG],
        }
    }
}

impl SigHand {
    pub fn new_shared() -> Arc<Mutex<SigHand>> {
        Arc::new(Mutex::new(SigHand::default()))
    }

    /// The action of `signal` (1..=64).
    pub fn action(&self, signal: u32) -> SigAction {
        self.actions[signal as usize - 1]
    }

    pub fn set_action(&mut self, signal: u32, action: SigAction) {
        self.actions[signal as usize - 1] = action;
    }

    /// At exec, caught signals go back to their default action; ignored
    /// ones stay ignored (Linux `flush_signal_handlers`).
    pub fn reset_for_exec(&mut self) {
        for action in &mut self.actions {
            if action.handler != SIG_IGN {
                *action = SigAction::default();
            }
        }
    }

    /// Whether exiting children are reaped at once (SIGCHLD ignored or
    /// SA_NOCLDWAIT), so they never become zombies.
    pub fn children_autoreap(&self) -> bool {
        let action = self.action(SIGCHLD);
        action.handler == SIG_IGN || action.flags & SA_NOCLDWAIT != 0
    }
}

/// Signals that can be neither caught, ignored nor blocked.
pub fn is_unblockable(signal: u32) -> bool {
    signal == SIGKILL || signal == SIGSTOP
}

/// Bit of `signal` in a signal set.
pub fn bit(signal: u32) -> u64 {
    1 << (signal - 1)
}
