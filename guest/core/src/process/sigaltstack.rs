//! The alternate signal stack (Linux's `sas_ss_sp`/`sas_ss_size`/
//! `sas_ss_flags` of a task, `do_sigaltstack`, `sas_ss_flags()`,
//! `on_sig_stack()`): where handlers installed with SA_ONSTACK run.
//!
//! Its life follows Linux: `fork` copies it, a `clone` sharing the address
//! space without CLONE_VFORK (a thread) starts without one (copy_process's
//! `sas_ss_reset`: two threads must not share a stack), `execve` forgets
//! the stack but keeps the flags, and SS_AUTODISARM drops it while a
//! handler runs on it (the frame's `uc_stack` brings it back at
//! `rt_sigreturn`).

use crate::errno::{EINVAL, ENOMEM, EPERM};

/// `ss_flags`: the caller is running on the alternate stack.
pub const SS_ONSTACK: u32 = 1;
/// `ss_flags`: no alternate stack.
pub const SS_DISABLE: u32 = 2;
/// `ss_flags`: disarm the stack while a handler runs on it.
pub const SS_AUTODISARM: u32 = 1 << 31;
/// Flag bits besides the mode.
const SS_FLAG_BITS: u32 = SS_AUTODISARM;
/// x86-64 `MINSIGSTKSZ`: smaller stacks are refused with ENOMEM.
pub const MINSIGSTKSZ: u64 = 2048;

/// `stack_t` as x86-64 lays it out: `ss_sp`, `ss_flags` (+4 padding),
/// `ss_size`.
pub const STACK_T_SIZE: usize = 24;

/// A task's alternate signal stack; the default is a task that never had
/// one (all zero, as Linux's init task).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SigAltStack {
    /// Lowest address (`ss_sp`).
    pub sp: u64,
    /// Size in bytes; 0 when there is none.
    pub size: u64,
    /// The flags as last set (mode and SS_AUTODISARM).
    pub flags: u32,
}

impl SigAltStack {
    /// Linux `sas_ss_reset`.
    pub const RESET: SigAltStack = SigAltStack {
        sp: 0,
        size: 0,
        flags: SS_DISABLE,
    };

    /// Whether `sp` lies in the stack (it grows down: the top is inside).
    pub fn contains(&self, sp: u64) -> bool {
        sp > self.sp && sp - self.sp <= self.size
    }

    /// Linux `on_sig_stack`: never while SS_AUTODISARM is set (the stack
    /// is then disarmed for the duration of a handler).
    pub fn on_sig_stack(&self, sp: u64) -> bool {
        self.flags & SS_AUTODISARM == 0 && self.contains(sp)
    }

    /// Linux `sas_ss_flags`: SS_DISABLE, SS_ONSTACK or 0 as seen at `sp`.
    pub fn mode_at(&self, sp: u64) -> u32 {
        if self.size == 0 {
            SS_DISABLE
        } else if self.on_sig_stack(sp) {
            SS_ONSTACK
        } else {
            0
        }
    }

    /// What `sigaltstack` reports as the old stack to a caller at `sp`.
    pub fn to_user(self, sp: u64) -> [u8; STACK_T_SIZE] {
        let flags = self.mode_at(sp) | (self.flags & SS_FLAG_BITS);
        Self::encode(self.sp, flags, self.size)
    }

    /// The stack as saved in a signal frame's `uc_stack` (the raw flags,
    /// as Linux's `__save_altstack`).
    pub fn to_frame(self) -> [u8; STACK_T_SIZE] {
        Self::encode(self.sp, self.flags, self.size)
    }

    fn encode(sp: u64, flags: u32, size: u64) -> [u8; STACK_T_SIZE] {
        let mut bytes = [0u8; STACK_T_SIZE];
        bytes[0..8].copy_from_slice(&sp.to_le_bytes());
        bytes[8..12].copy_from_slice(&flags.to_le_bytes());
        bytes[16..24].copy_from_slice(&size.to_le_bytes());
        bytes
    }

    /// The change half of Linux `do_sigaltstack`, for a caller at `sp`
    /// asking for the user `stack_t` in `bytes`: EPERM while running on
    /// the stack, EINVAL for an unknown mode, ENOMEM below MINSIGSTKSZ.
    pub fn set(&mut self, sp: u64, bytes: &[u8; STACK_T_SIZE]) -> Result<(), i32> {
        let word = |range: core::ops::Range<usize>| {
            let mut b = [0u8; 8];
            b[..range.len()].copy_from_slice(&bytes[range]);
            u64::from_le_bytes(b)
        };
        let (mut ss_sp, ss_flags, mut ss_size) = (word(0..8), word(8..12) as u32, word(16..24));
        if self.on_sig_stack(sp) {
            return Err(EPERM);
        }
        let mode = ss_flags & !SS_FLAG_BITS;
        if mode != SS_DISABLE && mode != SS_ONSTACK && mode != 0 {
            return Err(EINVAL);
        }
        if (self.sp, self.size, self.flags) == (ss_sp, ss_size, ss_flags) {
            return Ok(());
        }
        if mode == SS_DISABLE {
            ss_sp = 0;
            ss_size = 0;
        } else if ss_size < MINSIGSTKSZ {
            return Err(ENOMEM);
        }
        *self = SigAltStack {
            sp: ss_sp,
            size: ss_size,
            flags: ss_flags,
        };
        Ok(())
    }

    /// Where a handler's frame starts for a signal arriving at `sp` (below
    /// the red zone, `below_red_zone`): the top of the alternate stack if
    /// the action asks for it and the task is not on it already.
    /// `entering` says whether it switches.
    pub fn frame_top(&self, below_red_zone: u64, on_stack_action: bool) -> (u64, bool) {
        if on_stack_action && self.mode_at(below_red_zone) == 0 {
            (self.sp + self.size, true)
        } else {
            (below_red_zone, false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(sp: u64, flags: u32, size: u64) -> [u8; STACK_T_SIZE] {
        SigAltStack { sp, size, flags }.to_frame()
    }

    const BASE: u64 = 0x10_0000;
    const SIZE: u64 = 0x4000;

    #[test]
    fn checks_in_linux_order() {
        let mut sas = SigAltStack::default();
        assert_eq!(sas.mode_at(0x5000), SS_DISABLE);
        assert_eq!(sas.set(0x5000, &request(BASE, 4, SIZE)), Err(EINVAL));
        assert_eq!(
            sas.set(0x5000, &request(BASE, 0, MINSIGSTKSZ - 1)),
            Err(ENOMEM)
        );
        assert_eq!(sas, SigAltStack::default());
        assert_eq!(sas.set(0x5000, &request(BASE, SS_ONSTACK, SIZE)), Ok(()));
        // Reported as 0 off the stack, SS_ONSTACK on it (top inclusive).
        assert_eq!(sas.mode_at(0x5000), 0);
        assert_eq!(sas.mode_at(BASE + SIZE), SS_ONSTACK);
        assert_eq!(sas.mode_at(BASE), 0);
        // On it, nothing may change, not even to the same values.
        assert_eq!(
            sas.set(BASE + 8, &request(BASE, SS_ONSTACK, SIZE)),
            Err(EPERM)
        );
        assert_eq!(sas.set(0x5000, &request(7, SS_DISABLE, 9)), Ok(()));
        assert_eq!(sas, SigAltStack::RESET);
    }

    #[test]
    fn report_and_frame_flags() {
        let mut sas = SigAltStack::default();
        sas.set(0, &request(BASE, SS_AUTODISARM, SIZE)).unwrap();
        let user = sas.to_user(BASE + 16);
        // Disarmable: never "on" it, and the flag is reported.
        assert_eq!(
            u32::from_le_bytes(user[8..12].try_into().unwrap()),
            SS_AUTODISARM
        );
        assert!(!sas.on_sig_stack(BASE + 16));
        assert_eq!(sas.to_frame(), request(BASE, SS_AUTODISARM, SIZE));
    }

    #[test]
    fn frame_goes_to_the_top_only_when_asked_and_not_there_yet() {
        let mut sas = SigAltStack::default();
        assert_eq!(sas.frame_top(0x9000, true), (0x9000, false));
        sas.set(0, &request(BASE, 0, SIZE)).unwrap();
        assert_eq!(sas.frame_top(0x9000, false), (0x9000, false));
        assert_eq!(sas.frame_top(0x9000, true), (BASE + SIZE, true));
        // Already on it: the frame goes below the current stack pointer.
        assert_eq!(sas.frame_top(BASE + 0x100, true), (BASE + 0x100, false));
        assert!(sas.contains(BASE + 1) && !sas.contains(BASE));
    }
}
