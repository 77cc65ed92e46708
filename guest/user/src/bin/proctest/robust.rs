//! Robust futex lists: `set_robust_list` and `get_robust_list` with
//! Linux's checks, and what a thread's exit does to the locks on its list
//! (Linux `exit_robust_list`: FUTEX_OWNER_DIED, one waiter woken).

use forkvm_user::syscall::{getuid, sched_yield, syscall1};

use super::*;

pub const SCENARIOS: &[(&str, Scenario)] = &[
    ("robust-list-syscalls", robust_list_syscalls),
    ("robust-list-owner-died", robust_list_owner_died),
];

use forkvm_user::syscall::nr::{GET_ROBUST_LIST, SETUID, SET_ROBUST_LIST};
/// `sizeof(struct robust_list_head)`.
const HEAD_SIZE: usize = 24;
const FUTEX_WAITERS: u32 = 0x8000_0000;
const FUTEX_OWNER_DIED: u32 = 0x4000_0000;

fn set_robust_list(head: usize, len: usize) -> Result<usize, Errno> {
    // SAFETY: the kernel only records the address.
    forkvm_user::syscall::check(unsafe { syscall2(SET_ROBUST_LIST, head, len) })
}

/// `get_robust_list(pid, head_ptr, len_ptr)` with raw pointers.
fn get_robust_list_raw(pid: i32, head_ptr: usize, len_ptr: usize) -> Result<usize, Errno> {
    // SAFETY: the kernel writes one word to each pointer or fails.
    forkvm_user::syscall::check(unsafe {
        syscall3(GET_ROBUST_LIST, pid as usize, head_ptr, len_ptr)
    })
}

/// The (head, len) `get_robust_list` reports for `pid`.
fn get_robust_list(pid: i32) -> Result<(usize, usize), Errno> {
    let (mut head, mut len) = (usize::MAX, usize::MAX);
    get_robust_list_raw(
        pid,
        &mut head as *mut usize as usize,
        &mut len as *mut usize as usize,
    )?;
    Ok((head, len))
}

/// The length must be the head's size; the head comes back with it, for
/// the caller, its own pid and a child (a forked child starts with none);
/// a bad pointer is EFAULT, no such thread ESRCH; another user's list is
/// EPERM without CAP_SYS_PTRACE.
fn robust_list_syscalls(_: &Ctx) -> Outcome {
    let head = [0u64; 3];
    let at = head.as_ptr() as usize;
    ensure!(
        get_robust_list(0) == Ok((0, HEAD_SIZE)),
        "before set_robust_list: {:?}, expected (0, 24)",
        get_robust_list(0)
    );
    for len in [0, 23, 25, 48] {
        let got = set_robust_list(at, len);
        ensure!(got == Err(Errno::EINVAL), "len {len}: {got:?}, expected EINVAL");
    }
    set_robust_list(at, HEAD_SIZE).ctx("set_robust_list")?;
    let own = get_robust_list(0);
    ensure!(own == Ok((at, HEAD_SIZE)), "own list {own:?}, expected ({at:#x}, 24)");
    let by_pid = get_robust_list(getpid() as i32);
    ensure!(by_pid == Ok((at, HEAD_SIZE)), "by pid {by_pid:?}");
    let mut word = 0usize;
    let word_at = &mut word as *mut usize as usize;
    for (what, head_ptr, len_ptr) in [("head", 8, word_at), ("len", word_at, 8)] {
        let got = get_robust_list_raw(0, head_ptr, len_ptr);
        ensure!(got == Err(Errno::EFAULT), "bad {what} pointer: {got:?}, expected EFAULT");
    }
    for pid in [-1, i32::MAX] {
        let got = get_robust_list(pid);
        ensure!(got == Err(Errno::ESRCH), "pid {pid}: {got:?}, expected ESRCH");
    }
    let (ready_r, ready_w) = pipe()?;
    let (go_r, go_w) = pipe()?;
    let child = Child::spawn(|| {
        let fresh = get_robust_list(0) == Ok((0, HEAD_SIZE));
        if set_robust_list(at + 8, HEAD_SIZE).is_err() || write(ready_w.raw(), b"r") != Ok(1) {
            return 1;
        }
        wait_byte(go_r.raw());
        if fresh {
            0
        } else {
            2
        }
    })?;
    wait_byte(ready_r.raw());
    let childs = get_robust_list(child.pid() as i32);
    let _ = write(go_w.raw(), b"g");
    expect_exit("child (its list starts empty)", child.wait()?, 0)?;
    ensure!(
        childs == Ok((at + 8, HEAD_SIZE)),
        "the child's list {childs:?}, expected ({:#x}, 24)",
        at + 8
    );
    // An unprivileged user may not read root's list.
    if getuid() == 0 {
        let parent = getpid() as i32;
        let child = Child::spawn(|| {
            // SAFETY: plain system call.
            let ret = unsafe { syscall1(SETUID, 1000) };
            if ret != 0 {
                return 1;
            }
            match get_robust_list(parent) {
                Err(Errno::EPERM) => 0,
                _ => 2,
            }
        })?;
        expect_exit("uid 1000 reading root's list (EPERM)", child.wait()?, 0)?;
    }
    set_robust_list(0, HEAD_SIZE).ctx("set_robust_list(NULL)")?;
    Ok(())
}

/// The memory of one robust list: the head (3 words), then entries of 2
/// words each, `next` and the futex word (`futex_offset` 8).
struct RobustArea {
    words: [AtomicU64; 20],
    /// Set by the parent when the owner may exit.
    go: AtomicU32,
    /// Set by the owner once its list is registered.
    ready: AtomicU32,
}

impl RobustArea {
    fn addr(&self, word: usize) -> u64 {
        &self.words[word] as *const AtomicU64 as u64
    }

    /// The futex word of the entry at `word` (the low half of the next).
    fn futex(&self, word: usize) -> &AtomicU32 {
        // SAFETY: the low 4 bytes of an AtomicU64 of `self` (x86-64 is
        // little-endian); both the kernel and this thread use it atomically.
        unsafe { AtomicU32::from_ptr(self.addr(word + 1) as *mut u32) }
    }
}

/// Entries: A (word 4) held by the owner, B (word 8) held by someone
/// else, C (word 12) held by the owner with a waiter; D (word 16) is
/// the pending operation, held by the owner.
const A: usize = 4;
const B: usize = 8;
const C: usize = 12;
const D: usize = 16;
const OTHER_OWNER: u32 = 12345;

/// The owner thread: takes A, C and D, registers its list, waits for the
/// go and exits holding them.
extern "C" fn robust_owner(arg: usize) -> ! {
    // SAFETY: the parent joins us before the area goes away.
    let area: &RobustArea = unsafe { shared(arg) };
    let tid = gettid() as u32;
    area.words[0].store(area.addr(A), Ordering::Relaxed);
    area.words[1].store(8, Ordering::Relaxed);
    area.words[2].store(area.addr(D), Ordering::Relaxed);
    area.words[A].store(area.addr(B), Ordering::Relaxed);
    area.words[B].store(area.addr(C), Ordering::Relaxed);
    area.words[C].store(area.addr(0), Ordering::Relaxed);
    area.futex(A).store(tid, Ordering::Relaxed);
    area.futex(B).store(OTHER_OWNER, Ordering::Relaxed);
    area.futex(C).store(tid | FUTEX_WAITERS, Ordering::Relaxed);
    area.futex(D).store(tid, Ordering::Relaxed);
    if set_robust_list(area.addr(0) as usize, HEAD_SIZE).is_err() {
        exit(1);
    }
    area.ready.store(1, Ordering::Release);
    let deadline = monotonic_ns() + TIMEOUT_NS;
    while area.go.load(Ordering::Acquire) == 0 && monotonic_ns() < deadline {
        sched_yield();
    }
    exit(0)
}

/// A thread exits holding robust locks: each word it owns becomes
/// FUTEX_OWNER_DIED (the waiters bit kept, the tid gone), including the
/// pending one; a word owned by another is left alone; the waiter on C
/// is woken (or finds the word already changed).
fn robust_list_owner_died(_: &Ctx) -> Outcome {
    let area = RobustArea {
        words: [const { AtomicU64::new(0) }; 20],
        go: AtomicU32::new(0),
        ready: AtomicU32::new(0),
    };
    let stack = ThreadStack::new()?;
    // SAFETY: `area` and `stack` outlive the thread: it is joined below
    // (or leaked with its stack if it does not end).
    unsafe {
        stack.clone(
            THREAD_FLAGS,
            robust_owner,
            &area as *const RobustArea as usize,
        )
    }
    .ctx("clone thread")?;
    let deadline = monotonic_ns() + TIMEOUT_NS;
    while area.ready.load(Ordering::Acquire) == 0 && monotonic_ns() < deadline {
        sched_yield();
    }
    let owned_c = area.futex(C).load(Ordering::Acquire);
    area.go.store(1, Ordering::Release);
    let timeout = Timespec::from_nanos(TIMEOUT_NS);
    let waited = futex(area.futex(C), FUTEX_WAIT, owned_c, Some(&timeout));
    stack.join()?;
    ensure!(
        matches!(waited, Ok(_) | Err(Errno::EAGAIN)),
        "the waiter on C: {waited:?}, expected woken or EAGAIN"
    );
    let words = [A, B, C, D].map(|w| area.futex(w).load(Ordering::Acquire));
    let expected = [
        FUTEX_OWNER_DIED,
        OTHER_OWNER,
        FUTEX_OWNER_DIED | FUTEX_WAITERS,
        FUTEX_OWNER_DIED,
    ];
    ensure!(
        words == expected,
        "futex words A B C D {words:x?}, expected {expected:x?}"
    );
    Ok(())
}
