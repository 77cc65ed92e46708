//! `futex` WAIT (with an optional relative timeout) and WAKE (private and
//! shared alike: one CPU, and shared futexes are only used within one
//! address space here).

use alloc::sync::Arc;
use alloc::vec::Vec;

use spin::Mutex;

use super::{current_mm, Args, SysResult};
use crate::errno::{EAGAIN, EFAULT, EINVAL, ENOSYS, ERESTARTNOHAND, ERESTARTSYS, ETIMEDOUT};
use crate::mm::address_space::AddressSpace;
use crate::mm::vma::TASK_SIZE;
use crate::process::task::{Task, TaskState};
use crate::sched;

const FUTEX_WAIT: u64 = 0;
const FUTEX_WAKE: u64 = 1;
const FUTEX_PRIVATE_FLAG: u64 = 128;
const FUTEX_CLOCK_REALTIME: u64 = 256;

/// A sleeping waiter: (address space, user address, task).
static WAITERS: Mutex<Vec<(usize, u64, Arc<Task>)>> = Mutex::new(Vec::new());

fn key(mm: &Arc<AddressSpace>) -> usize {
    Arc::as_ptr(mm) as usize
}

/// `futex(address, op, value, timeout)`. FUTEX_WAIT's `timeout` is a
/// relative `struct timespec` (NULL: none), read and checked before the
/// word (EFAULT, EINVAL); when it passes the wait ends with ETIMEDOUT, and
/// a signal ends a timed wait with EINTR (Linux restarts it only through
/// `restart_syscall`, which is not built).
pub fn futex(a: Args) -> SysResult {
    let [address, op, value, timeout, ..] = a.0;
    let mm = current_mm()?;
    let shared = op & FUTEX_PRIVATE_FLAG == 0;
    match op & !(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME) {
        FUTEX_WAIT => {
            let deadline = if timeout == 0 {
                None
            } else {
                let timespec = super::time::read_raw_timespec(timeout)?;
                Some(crate::time::relative_deadline(timespec)?)
            };
            check_key(&mm, address, shared)?;
            let task = sched::current();
            // The word is read and the task queued under the waiters' lock
            // (Linux's hash-bucket lock): a FUTEX_WAKE on another CPU after
            // the word changed finds the task queued.
            let mut waiters = WAITERS.lock();
            let mut word = [0u8; 4];
            mm.copy_from_user(address, &mut word)?;
            if u32::from_le_bytes(word) != value as u32 {
                return Err(EAGAIN);
            }
            sched::set_current_sleeping(&task);
            if crate::process::signal::signal_pending(&task) {
                task.set_state(TaskState::Runnable);
                return Err(ERESTARTSYS);
            }
            waiters.push((key(&mm), address, task.clone()));
            drop(waiters);
            if let Some(deadline) = deadline {
                sched::arm_timer(deadline, task.clone());
            }
            sched::schedule();
            if deadline.is_some() {
                sched::cancel_timer(&task);
            }
            // `wake` takes its waiters off the list: still on it means the
            // timer or a signal woke the task.
            let mut waiters = WAITERS.lock();
            match waiters.iter().position(|w| Arc::ptr_eq(&w.2, &task)) {
                Some(i) => {
                    waiters.remove(i);
                    match deadline {
                        // The timer wins over a signal (Linux checks it first).
                        Some(deadline) if crate::arch::cpu::rdtsc() >= deadline => Err(ETIMEDOUT),
                        Some(_) => Err(ERESTARTNOHAND),
                        // Restarted if SA_RESTART, else EINTR.
                        None => Err(ERESTARTSYS),
                    }
                }
                None => Ok(0),
            }
        }
        FUTEX_WAKE => {
            check_key(&mm, address, shared)?;
            Ok(wake(&mm, address, value.min(u64::from(u32::MAX)) as u32))
        }
        _ => Err(ENOSYS),
    }
}

/// Linux `get_futex_key`'s checks on the futex word: aligned (EINVAL) and
/// in user space (EFAULT). A private futex is keyed by its address alone,
/// so nothing more is looked at (FUTEX_WAKE on an unmapped private word
/// wakes no one and succeeds). A shared one is keyed by its page, which
/// must be one the task could write (Linux pins it with FOLL_WRITE; a
/// read-only anonymous page is EFAULT): faulted in for writing here,
/// without writing the word (storing back what was read lost a store
/// another CPU made in between: a thread's exit clearing its tid, whose
/// joiner then slept for good). Read-only MAP_SHARED words, which
/// Linux accepts, are EFAULT here.
fn check_key(mm: &AddressSpace, address: u64, shared: bool) -> Result<(), i32> {
    if !address.is_multiple_of(4) {
        return Err(EINVAL);
    }
    if address.checked_add(4).is_none_or(|end| end > TASK_SIZE) {
        return Err(EFAULT);
    }
    if shared {
        mm.fault_in_writable(address, 4).map_err(|_| EFAULT)?;
    }
    Ok(())
}

/// Wakes up to `count` tasks waiting on `address` in `mm`; returns how many.
pub fn wake(mm: &Arc<AddressSpace>, address: u64, count: u32) -> u64 {
    let mut woken = Vec::new();
    {
        let mut waiters = WAITERS.lock();
        let mut i = 0;
        while i < waiters.len() && (woken.len() as u32) < count {
            if waiters[i].0 == key(mm) && waiters[i].1 == address {
                woken.push(waiters.remove(i).2);
            } else {
                i += 1;
            }
        }
    }
    for task in &woken {
        sched::wake_up(task);
    }
    woken.len() as u64
}
