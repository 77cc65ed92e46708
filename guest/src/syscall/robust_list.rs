//! Robust futexes (Linux `kernel/futex/syscalls.c` and `futex/core.c`):
//! `set_robust_list` records where a thread keeps the list of the
//! process-shared locks it holds, `get_robust_list` reads that back, and
//! when the thread exits or execs, [`exit_robust_list`] marks every lock
//! the thread still owns `FUTEX_OWNER_DIED` and wakes one waiter, so the
//! next locker learns the owner died (glibc's `EOWNERDEAD`).
//!
//! The list lives in user memory (`struct robust_list_head`, 24 bytes):
//! `list.next` (the first entry, or the head itself when empty; bit 0 of
//! each pointer marks a PI futex), `futex_offset` (from an entry to its
//! futex word) and `list_op_pending` (a lock being taken or released).

use crate::errno::{EFAULT, EINVAL, EPERM, ESRCH};

use super::{Args, SysResult};
use crate::mm::address_space::AddressSpace;
use crate::process::task::Task;
use crate::sched;

/// `sizeof(struct robust_list_head)` on x86-64.
const ROBUST_LIST_HEAD_SIZE: u64 = 24;
/// Entries walked at most (Linux `ROBUST_LIST_LIMIT`): a looped list ends.
const ROBUST_LIST_LIMIT: u32 = 2048;
/// Futex word bits (Linux `FUTEX_WAITERS`, `FUTEX_OWNER_DIED`,
/// `FUTEX_TID_MASK`).
const FUTEX_WAITERS: u32 = 0x8000_0000;
const FUTEX_OWNER_DIED: u32 = 0x4000_0000;
const FUTEX_TID_MASK: u32 = 0x3fff_ffff;

/// `set_robust_list(head, len)`: EINVAL unless `len` is the size of the
/// head; the address is not checked until it is used.
pub fn set_robust_list(a: Args) -> SysResult {
    let [head, len, ..] = a.0;
    if len != ROBUST_LIST_HEAD_SIZE {
        return Err(EINVAL);
    }
    sched::current().set_robust_list(head);
    Ok(0)
}

/// `get_robust_list(pid, head_ptr, len_ptr)`: the list head of thread
/// `pid` (0: the caller) and its size. ESRCH for no such thread, EPERM
/// unless the caller may read it (Linux `ptrace_may_access` in
/// `PTRACE_MODE_READ_REALCREDS` mode), then EFAULT from either store.
pub fn get_robust_list(a: Args) -> SysResult {
    let [pid, head_ptr, len_ptr, ..] = a.0;
    let current = sched::current();
    let task = if pid as i32 == 0 {
        current.clone()
    } else {
        let pid = u32::try_from(pid as i32).map_err(|_| ESRCH)?;
        crate::process::pgrp::find_task_by_vpid(&current.active_pid_ns(), pid).ok_or(ESRCH)?
    };
    if !crate::process::cred::ptrace_may_read(&current, &task) {
        return Err(EPERM);
    }
    let head = task.robust_list();
    let mm = super::current_mm()?;
    mm.copy_to_user(len_ptr, &ROBUST_LIST_HEAD_SIZE.to_le_bytes())
        .map_err(|_| EFAULT)?;
    mm.copy_to_user(head_ptr, &head.to_le_bytes())
        .map_err(|_| EFAULT)?;
    Ok(0)
}

/// Walks the exiting (or exec'ing) `task`'s robust list in `mm` (Linux
/// `exit_robust_list`): each futex it owns gets `FUTEX_OWNER_DIED` and
/// one waiter woken; the pending one is handled last. A fault or an
/// unaligned word ends the walk quietly, as does the entry limit.
pub fn exit_robust_list(task: &Task, mm: &alloc::sync::Arc<AddressSpace>, head: u64) {
    let tid = task.tid_in(&task.active_pid_ns());
    let read_word = |addr: u64| -> Option<u64> {
        let mut bytes = [0u8; 8];
        mm.copy_from_user(addr, &mut bytes).ok()?;
        Some(u64::from_le_bytes(bytes))
    };
    let Some(first) = read_word(head) else { return };
    let Some(futex_offset) = read_word(head + 8) else {
        return;
    };
    let Some(pending) = read_word(head + 16) else {
        return;
    };
    let (pending, pending_pi) = (pending & !1, pending & 1 != 0);
    let (mut entry, mut pi) = (first & !1, first & 1 != 0);
    let mut limit = ROBUST_LIST_LIMIT;
    while entry != head {
        let next = read_word(entry);
        if entry != pending {
            handle_futex_death(mm, entry.wrapping_add(futex_offset), tid, pi, false);
        }
        let Some(next) = next else { return };
        (entry, pi) = (next & !1, next & 1 != 0);
        limit -= 1;
        if limit == 0 {
            break;
        }
    }
    if pending != 0 {
        handle_futex_death(
            mm,
            pending.wrapping_add(futex_offset),
            tid,
            pending_pi,
            true,
        );
    }
}

/// Linux `handle_futex_death`: if the futex word at `uaddr` is owned by
/// `tid`, keep its waiters bit, set `FUTEX_OWNER_DIED` and wake one
/// waiter (not for PI futexes, whose waiters the PI code hands over). A
/// pending lock with a zero word may have a waiter the lock's release
/// meant to wake: wake one.
fn handle_futex_death(
    mm: &alloc::sync::Arc<AddressSpace>,
    uaddr: u64,
    tid: u32,
    pi: bool,
    pending: bool,
) {
    if !uaddr.is_multiple_of(4) {
        return;
    }
    let mut word = [0u8; 4];
    if mm.copy_from_user(uaddr, &mut word).is_err() {
        return;
    }
    let value = u32::from_le_bytes(word);
    if pending && !pi && value == 0 {
        super::futex::wake(mm, uaddr, 1);
        return;
    }
    if value & FUTEX_TID_MASK != tid {
        return;
    }
    // Read and store are not one atomic exchange: a thread on another CPU
    // that sets FUTEX_WAITERS in between finds the word changed when it
    // waits (EAGAIN) and sees the owner died when it retries.
    let marked = (value & FUTEX_WAITERS) | FUTEX_OWNER_DIED;
    if mm.copy_to_user(uaddr, &marked.to_le_bytes()).is_err() {
        return;
    }
    if !pi && value & FUTEX_WAITERS != 0 {
        super::futex::wake(mm, uaddr, 1);
    }
}
