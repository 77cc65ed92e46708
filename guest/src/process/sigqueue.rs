//! The RLIMIT_SIGPENDING accounting of queued signals: how many siginfo
//! each user has queued (Linux `ucounts`' UCOUNT_RLIMIT_SIGPENDING). The
//! queue itself and its rules are `forkvm_core::process::sigqueue`, which
//! charges each queued siginfo through [`Receiver`]. The count is kept at
//! the user's own namespace level (Linux also charges the levels above).

use alloc::collections::BTreeMap;
use alloc::sync::Arc;

use spin::Mutex;

use super::cred::Uid;
use super::user_ns::UserNamespace;
use forkvm_core::process::sigqueue::SigQueueCharge;

/// Index of RLIMIT_SIGPENDING in the limits.
pub const RLIMIT_SIGPENDING: usize = 11;

/// Pending signals whose queued siginfo are counted here.
pub type SigPending = forkvm_core::process::sigqueue::SigPending<Charge>;

/// Queued siginfo per (user namespace id, kernel uid).
static COUNTS: Mutex<BTreeMap<(u64, Uid), u64>> = Mutex::new(BTreeMap::new());

/// One queued siginfo counted for a user; dropping it uncounts.
pub struct Charge {
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

impl SigQueueCharge for Receiver {
    type Charge = Charge;

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
