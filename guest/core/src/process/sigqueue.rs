//! A set of pending signals with their queued siginfo (Linux `struct
//! sigpending` and its `sigqueue` list).
//!
//! A standard signal (below SIGRTMIN) is pending once: another instance
//! while it is pending is dropped (`legacy_queue`). A real-time one queues
//! every instance, taken in the order sent. Each queued siginfo is charged
//! to the receiver's real user (RLIMIT_SIGPENDING); the kernel keeps the
//! counts and hands out the charge through [`SigQueueCharge`]. Past the
//! limit a standard signal with si_code >= 0 (kill, the kernel) is still
//! queued; a real-time one from `kill` and a standard one with another
//! code become pending without their siginfo (they arrive as SI_USER from
//! pid 0); any other real-time one fails with EAGAIN.

use alloc::vec::Vec;

pub use forkvm_abi::linux::signal::Signal;

use crate::errno::EAGAIN;

/// `si_code` of a signal sent by `kill`.
pub const SI_USER: i32 = 0;

/// Bit of `signal` in a signal set.
pub const fn bit(signal: Signal) -> u64 {
    1 << (signal.number() - 1)
}

/// What a signal carries to its handler (Linux `kernel_siginfo`): the
/// fields of the union the `si_code` selects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SigInfo {
    pub signo: Signal,
    pub code: i32,
    pub fields: SigFields,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SigFields {
    /// Nothing beyond signo and code (SI_KERNEL).
    #[default]
    None,
    /// `kill`: the sender, as the receiver sees it.
    Kill { pid: u32, uid: u32 },
    /// A fault: the address.
    Fault { addr: u64 },
    /// SIGCHLD: the child, its uid and its exit code or signal.
    Child { pid: u32, uid: u32, status: i32 },
    /// The union as `rt_sigqueueinfo` got it from user space (Linux's
    /// `kernel_siginfo` keeps 32 bytes of it): delivered unchanged but for
    /// `si_pid`/`si_uid`, which the sender fixes up for the receiver.
    Raw([u8; 32]),
}

impl SigInfo {
    /// The 128-byte `siginfo_t` of x86-64: signo, errno, code, then the
    /// union at offset 16.
    pub fn to_bytes(self) -> [u8; 128] {
        let mut bytes = [0u8; 128];
        bytes[0..4].copy_from_slice(&self.signo.number().to_le_bytes());
        bytes[8..12].copy_from_slice(&self.code.to_le_bytes());
        match self.fields {
            SigFields::None => {}
            SigFields::Kill { pid, uid } => {
                bytes[16..20].copy_from_slice(&pid.to_le_bytes());
                bytes[20..24].copy_from_slice(&uid.to_le_bytes());
            }
            SigFields::Fault { addr } => bytes[16..24].copy_from_slice(&addr.to_le_bytes()),
            SigFields::Child { pid, uid, status } => {
                bytes[16..20].copy_from_slice(&pid.to_le_bytes());
                bytes[20..24].copy_from_slice(&uid.to_le_bytes());
                bytes[24..28].copy_from_slice(&status.to_le_bytes());
            }
            SigFields::Raw(union) => bytes[16..48].copy_from_slice(&union),
        }
        bytes
    }
}

/// Where a queued siginfo is counted: the receiver's user and its limit
/// (Linux `__sigqueue_alloc`'s accounting half).
pub trait SigQueueCharge {
    /// One queued siginfo counted for the user; dropping it uncounts.
    type Charge;
    /// Counts one more siginfo, unless that passes the limit and
    /// `override_rlimit` is not set.
    fn charge(&self, override_rlimit: bool) -> Option<Self::Charge>;
}

struct Queued<C> {
    info: SigInfo,
    _charge: C,
}

/// Pending signals and their queued siginfo, each holding its charge `C`.
pub struct SigPending<C> {
    /// The pending signals (bit `signal - 1`).
    pub signal: u64,
    queue: Vec<Queued<C>>,
}

impl<C> Default for SigPending<C> {
    fn default() -> Self {
        SigPending {
            signal: 0,
            queue: Vec::new(),
        }
    }
}

impl<C> SigPending<C> {
    /// Queues `info` (Linux `__send_signal_locked` from `legacy_queue`
    /// on), charged through `receiver`. EAGAIN for a real-time signal that
    /// cannot be queued.
    pub fn send<R>(&mut self, info: SigInfo, receiver: &R) -> Result<(), i32>
    where
        R: SigQueueCharge<Charge = C>,
    {
        let signal = info.signo;
        if !signal.is_realtime() && self.signal & bit(signal) != 0 {
            return Ok(()); // a standard signal is pending once
        }
        // Standard signals from kill and the kernel are not refused for
        // the limit; real-time ones always count.
        let override_rlimit = !signal.is_realtime() && info.code >= 0;
        match receiver.charge(override_rlimit) {
            Some(charge) => self.queue.push(Queued {
                info,
                _charge: charge,
            }),
            None if signal.is_realtime() && info.code != SI_USER => return Err(EAGAIN),
            None => {} // pending without its siginfo
        }
        self.signal |= bit(signal);
        Ok(())
    }

    /// Takes `signal`'s first queued siginfo (Linux `collect_signal`): it
    /// stays pending while more instances are queued. One pending without
    /// a siginfo (over the limit) is SI_USER from pid 0.
    pub fn collect(&mut self, signal: Signal) -> SigInfo {
        let found = self.queue.iter().position(|q| q.info.signo == signal);
        let info = found.map_or(
            SigInfo {
                signo: signal,
                code: SI_USER,
                fields: SigFields::Kill { pid: 0, uid: 0 },
            },
            |i| self.queue.remove(i).info,
        );
        if !self.queue.iter().any(|q| q.info.signo == signal) {
            self.signal &= !bit(signal);
        }
        info
    }

    /// Discards the signals in `mask` and their queued siginfo (Linux
    /// `flush_sigqueue_mask`).
    pub fn flush(&mut self, mask: u64) {
        self.signal &= !mask;
        self.queue.retain(|q| mask & bit(q.info.signo) == 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::cell::Cell;
    use std::rc::Rc;

    const SIGUSR1: Signal = Signal::SIGUSR1;
    const SIGRTMIN: Signal = Signal::SIGRTMIN;
    const SI_QUEUE: i32 = -1;
    const SI_KERNEL: i32 = 0x80;

    /// A user with `limit` queued siginfo allowed, counting what it holds.
    struct User {
        limit: u64,
        count: Rc<Cell<u64>>,
    }

    struct Charge(Rc<Cell<u64>>);

    impl Drop for Charge {
        fn drop(&mut self) {
            self.0.set(self.0.get() - 1);
        }
    }

    impl SigQueueCharge for User {
        type Charge = Charge;
        fn charge(&self, override_rlimit: bool) -> Option<Charge> {
            if !override_rlimit && self.count.get() + 1 > self.limit {
                return None;
            }
            self.count.set(self.count.get() + 1);
            Some(Charge(self.count.clone()))
        }
    }

    fn user(limit: u64) -> User {
        User {
            limit,
            count: Rc::new(Cell::new(0)),
        }
    }

    fn info(signo: Signal, code: i32, pid: u32) -> SigInfo {
        SigInfo {
            signo,
            code,
            fields: SigFields::Kill { pid, uid: 0 },
        }
    }

    #[test]
    fn a_standard_signal_is_pending_once() {
        let user = user(10);
        let mut pending = SigPending::default();
        pending.send(info(SIGUSR1, SI_USER, 7), &user).unwrap();
        pending.send(info(SIGUSR1, SI_USER, 8), &user).unwrap();
        assert_eq!(user.count.get(), 1);
        assert_eq!(pending.collect(SIGUSR1), info(SIGUSR1, SI_USER, 7));
        assert_eq!(pending.signal, 0);
        assert_eq!(user.count.get(), 0, "collecting uncounts");
    }

    #[test]
    fn real_time_signals_queue_every_instance_in_order() {
        let user = user(10);
        let mut pending = SigPending::default();
        for pid in 1..=3 {
            pending.send(info(SIGRTMIN, SI_QUEUE, pid), &user).unwrap();
        }
        for pid in 1..=3 {
            assert_ne!(pending.signal & bit(SIGRTMIN), 0, "pending while queued");
            assert_eq!(pending.collect(SIGRTMIN), info(SIGRTMIN, SI_QUEUE, pid));
        }
        assert_eq!(pending.signal, 0);
    }

    #[test]
    fn over_the_limit_each_kind_ends_as_linux_says() {
        let user = user(0);
        let mut pending = SigPending::default();
        // A standard signal from kill or the kernel is queued anyway.
        pending.send(info(SIGUSR1, SI_KERNEL, 3), &user).unwrap();
        assert_eq!(pending.collect(SIGUSR1), info(SIGUSR1, SI_KERNEL, 3));
        // A real-time one from kill is pending without its siginfo.
        pending.send(info(SIGRTMIN, SI_USER, 3), &user).unwrap();
        assert_eq!(pending.collect(SIGRTMIN), info(SIGRTMIN, SI_USER, 0));
        // A standard one with a negative code too.
        pending.send(info(SIGUSR1, SI_QUEUE, 3), &user).unwrap();
        assert_eq!(pending.collect(SIGUSR1), info(SIGUSR1, SI_USER, 0));
        // Any other real-time one is refused.
        assert_eq!(
            pending.send(
                info(Signal::new(SIGRTMIN.number() + 1).unwrap(), SI_QUEUE, 3),
                &user
            ),
            Err(EAGAIN)
        );
        assert_eq!(pending.signal, 0);
    }

    #[test]
    fn flush_discards_the_masked_signals_and_their_charges() {
        let user = user(10);
        let mut pending = SigPending::default();
        pending.send(info(SIGUSR1, SI_USER, 1), &user).unwrap();
        pending.send(info(SIGRTMIN, SI_QUEUE, 1), &user).unwrap();
        pending.flush(bit(SIGRTMIN));
        assert_eq!(pending.signal, bit(SIGUSR1));
        assert_eq!(user.count.get(), 1);
    }
}
