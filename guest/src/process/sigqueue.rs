//! A set of pending signals with their queued siginfo (Linux `struct
//! sigpending` and its `sigqueue` list), and the RLIMIT_SIGPENDING count
//! each queued siginfo is charged to.
//!
//! A standard signal (below SIGRTMIN) is pending once: another instance
//! while it is pending is dropped (`legacy_queue`). A real-time one queues
//! every instance, taken in the order sent. Each queued siginfo counts for
//! the receiver's real user. Past the receiver's RLIMIT_SIGPENDING a
//! standard signal with si_code >= 0 (kill, the kernel) is still queued; a
//! real-time one from `kill` and a standard one with another code become
//! pending without their siginfo (they arrive as SI_USER from pid 0); any
//! other real-time one fails with EAGAIN. The count is kept at the user's
//! own namespace level (Linux also charges the levels above).

use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec::Vec;

use spin::Mutex;

use super::cred::Uid;
use super::signal::{bit, SigFields, SigInfo, SI_USER};
use super::user_ns::UserNamespace;
use crate::errno::EAGAIN;

/// The first real-time signal as the kernel numbers them.
pub use forkvm_abi::linux::signal::SIGRTMIN;
/// Index of RLIMIT_SIGPENDING in the limits.
pub const RLIMIT_SIGPENDING: usize = 11;

/// Queued siginfo per (user namespace id, kernel uid).
static COUNTS: Mutex<BTreeMap<(u64, Uid), u64>> = Mutex::new(BTreeMap::new());

/// One queued siginfo counted for a user; dropping it uncounts.
struct Charge {
    ns: u64,
    uid: Uid,
}

impl Drop for Charge {
    fn drop(&mut self) {
        let mut counts = COUNTS.lock();
        if let Some(count) = counts.get_mut(&(self.ns, self.uid)) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&(self.ns, self.uid));
            }
        }
    }
}

/// Whose count a signal sent to a task goes to, and its limit.
pub struct Receiver {
    pub ns: Arc<UserNamespace>,
    /// The receiver's real uid.
    pub uid: Uid,
    /// Its RLIMIT_SIGPENDING (soft).
    pub limit: u64,
}

impl Receiver {
    /// Linux `__sigqueue_alloc`: counts one more siginfo for the user,
    /// unless that passes the limit and `override_rlimit` is not set.
    fn charge(&self, override_rlimit: bool) -> Option<Charge> {
        let mut counts = COUNTS.lock();
        let count = counts.entry((self.ns.id, self.uid)).or_insert(0);
        if !override_rlimit && *count + 1 > self.limit {
            return None;
        }
        *count += 1;
        Some(Charge {
            ns: self.ns.id,
            uid: self.uid,
        })
    }
}

struct Queued {
    info: SigInfo,
    _charge: Charge,
}

/// Pending signals and their queued siginfo.
#[derive(Default)]
pub struct SigPending {
    /// The pending signals (bit `signal - 1`).
    pub signal: u64,
    queue: Vec<Queued>,
}

impl SigPending {
    /// Queues `info` (Linux `__send_signal_locked` from `legacy_queue`
    /// on). EAGAIN for a real-time signal that cannot be queued.
    pub fn send(&mut self, info: SigInfo, receiver: &Receiver) -> Result<(), i32> {
        let signal = info.signo;
        if signal < SIGRTMIN && self.signal & bit(signal) != 0 {
            return Ok(()); // a standard signal is pending once
        }
        // Standard signals from kill and the kernel are not refused for
        // the limit; real-time ones always count.
        let override_rlimit = signal < SIGRTMIN && info.code >= 0;
        match receiver.charge(override_rlimit) {
            Some(charge) => self.queue.push(Queued {
                info,
                _charge: charge,
            }),
            None if signal >= SIGRTMIN && info.code != SI_USER => return Err(EAGAIN),
            None => {} // pending without its siginfo
        }
        self.signal |= bit(signal);
        Ok(())
    }

    /// Takes `signal`'s first queued siginfo (Linux `collect_signal`): it
    /// stays pending while more instances are queued. One pending without
    /// a siginfo (over the limit) is SI_USER from pid 0.
    pub fn collect(&mut self, signal: u32) -> SigInfo {
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
