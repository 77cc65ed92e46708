//! `poll`, `ppoll`, `select` and `pselect6` (Linux `fs/select.c`): the
//! argument checks in Linux's order, one wait loop for all four, and the
//! time left written back.
//!
//! The wait (Linux `do_poll`/`do_select` with `poll_wait`): the task marks
//! itself sleeping, then for every file puts itself on its wait queue (a
//! pipe end, a console) and only then asks for its events, then sleeps
//! unless something was ready, the timeout passed or a signal is
//! pending. A writer, reader or closer changes a pipe and then wakes its
//! queue, so whatever it changed after the scan finds the task on the
//! queue: no wake-up is lost, on either CPU. The task leaves every queue
//! (and the timer list) before the next scan. Files whose readiness
//! changes with no queue to tell (pidfds) are looked at again each tick.
//!
//! A signal ends the wait with ERESTARTNOHAND: EINTR after a handler,
//! restarted without one. `select`, `pselect6` and `ppoll` have written
//! the time left into their timeout by then, so the restarted call waits
//! only for the rest, as on Linux; `poll` (whose timeout is a register)
//! restarts with its whole timeout, where Linux's `restart_syscall` would
//! resume with the rest (not built here; see `nanosleep`).

use alloc::sync::Arc;
use alloc::vec::Vec;

use super::{current_mm, Args, SysResult};
use crate::errno::{EBADF, EFAULT, EINVAL, ENOMEM, ERESTARTNOHAND};
use crate::fs::poll::{
    self, POLLERR, POLLHUP, POLLIN, POLLNVAL, POLLOUT, POLLPRI, POLLRDBAND, POLLRDNORM, POLLWRBAND,
    POLLWRNORM,
};
use crate::fs::File;
use crate::process::rlimit::RLIMIT_NOFILE;
use crate::process::task::{Task, TaskState};
use crate::sched;

const NSEC_PER_SEC: u64 = 1_000_000_000;
const SIGSET_SIZE: u64 = 8;

/// When a wait ends (Linux's `end_time`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Timeout {
    /// No timeout: until something is ready or a signal comes.
    Never,
    /// A zero timeout: look once, never sleep.
    Now,
    /// The TSC value it ends at.
    At(u64),
}

impl Timeout {
    /// Linux `poll_select_set_timeout`: EINVAL for a negative or
    /// non-canonical time; zero means look once.
    fn after(seconds: i64, nanoseconds: i64) -> Result<Timeout, i32> {
        if seconds == 0 && nanoseconds == 0 {
            return Ok(Timeout::Now);
        }
        crate::time::relative_deadline((seconds, nanoseconds)).map(Timeout::At)
    }

    fn passed(self) -> bool {
        match self {
            Timeout::Never => false,
            Timeout::Now => true,
            Timeout::At(end) => crate::arch::cpu::rdtsc() >= end,
        }
    }

    /// The time left, 0 once passed (Linux `poll_select_finish`); `None`
    /// when nothing is to be written back (no timeout, or a zero one).
    fn left_ns(self) -> Option<u64> {
        match self {
            Timeout::At(end) => Some(crate::time::tsc_to_ns(
                end.saturating_sub(crate::arch::cpu::rdtsc()),
            )),
            Timeout::Never | Timeout::Now => None,
        }
    }
}

/// The queues one scan put the task on (Linux `struct poll_wqueues`).
struct PollWait {
    task: Arc<Task>,
    /// Files whose queue holds the task.
    files: Vec<Arc<File>>,
    /// A file without a queue may change: wake at the next tick.
    recheck: bool,
    /// Still registering (Linux clears `_qproc` once something is ready,
    /// and never sets it for a zero timeout).
    registering: bool,
}

impl PollWait {
    fn new(task: Arc<Task>, registering: bool) -> PollWait {
        PollWait {
            task,
            files: Vec::new(),
            recheck: false,
            registering,
        }
    }

    /// `file`'s events; puts the task on its queue first while
    /// registering (Linux `vfs_poll` with `poll_wait`, which queues the
    /// waiter before the file looks at its state: a change made after the
    /// look finds the task queued).
    fn poll(&mut self, file: &Arc<File>) -> u16 {
        if !poll::pollable(file) {
            return POLLNVAL;
        }
        if self.registering {
            let readiness = poll::poll(file);
            if let Some(queue) = readiness.queue {
                if self.files.try_reserve(1).is_ok() {
                    queue.add(self.task.clone());
                    self.files.push(file.clone());
                } else {
                    // No room to remember the queue: look again each tick.
                    self.recheck = true;
                }
            }
            self.recheck |= readiness.recheck;
        }
        poll::poll(file).mask
    }

    /// Something was ready: no more registering.
    fn found(&mut self) {
        self.registering = false;
    }

    /// Takes the task off every queue it was put on.
    fn forget(&mut self) {
        for file in self.files.drain(..) {
            if let Some(queue) = poll::poll(&file).queue {
                queue.remove(&self.task);
            }
        }
        self.recheck = false;
    }
}

/// The wait both `poll` and `select` make: `scan` looks at every file
/// once (registering on their queues through the `PollWait`) and returns
/// how many are ready. Ends with that count when it is not 0, with 0
/// when the timeout passes, ERESTARTNOHAND on a signal (the files win:
/// Linux checks the signal after a scan that found nothing).
fn wait_for_events(
    timeout: Timeout,
    mut scan: impl FnMut(&mut PollWait) -> Result<u64, i32>,
) -> Result<u64, i32> {
    let task = sched::current();
    let may_sleep = timeout != Timeout::Now;
    loop {
        // Asleep before the scan: a wake-up after it finds us queued.
        if may_sleep {
            sched::set_current_sleeping(&task);
        }
        let mut wait = PollWait::new(task.clone(), may_sleep);
        let scanned = scan(&mut wait);
        let end = match scanned {
            Err(errno) => Some(Err(errno)),
            Ok(0) if crate::process::signal::signal_pending(&task) => Some(Err(ERESTARTNOHAND)),
            Ok(0) if timeout.passed() => Some(Ok(0)),
            Ok(0) => None,
            Ok(count) => Some(Ok(count)),
        };
        if let Some(end) = end {
            task.set_state(TaskState::Runnable);
            wait.forget();
            return end;
        }
        let wake_at = match timeout {
            Timeout::At(end) => Some(end),
            Timeout::Never | Timeout::Now => None,
        };
        let wake_at = if wait.recheck {
            let tick = crate::arch::cpu::rdtsc().saturating_add(crate::time::tick_period_tsc());
            Some(wake_at.map_or(tick, |end| end.min(tick)))
        } else {
            wake_at
        };
        if let Some(at) = wake_at {
            sched::arm_timer(at, task.clone());
        }
        sched::schedule();
        if wake_at.is_some() {
            sched::cancel_timer(&task);
        }
        wait.forget();
    }
}

// ---- The signal mask of ppoll and pselect6 (Linux `set_user_sigmask`).

/// Blocks `mask` (read from user memory) for the call, keeping the old
/// mask in `saved_sigmask`, as `rt_sigsuspend` does; nothing for NULL.
/// EINVAL for a size other than 8, EFAULT.
fn set_user_sigmask(mask: u64, size: u64) -> Result<(), i32> {
    if mask == 0 {
        return Ok(());
    }
    if size != SIGSET_SIZE {
        return Err(EINVAL);
    }
    let mut bytes = [0u8; 8];
    current_mm()?.copy_from_user(mask, &mut bytes)?;
    sched::current().set_sigsuspend_mask(u64::from_le_bytes(bytes));
    Ok(())
}

/// Puts the mask from before back, unless the call was interrupted:
/// then the handler's frame carries it, or `get_signal` restores it
/// (Linux `restore_saved_sigmask_unless`).
fn restore_saved_sigmask_unless(interrupted: bool) {
    if interrupted {
        return;
    }
    sched::current().restore_saved_sigmask();
}

/// How the time left goes back to user memory.
#[derive(Clone, Copy)]
enum TimeFormat {
    Timeval,
    Timespec,
}

/// Linux `poll_select_finish`: the mask back, then the time left written
/// into the caller's timeout (not for a zero one). A timeout that cannot
/// be written is no error, but an interrupted call is then EINTR, not
/// restarted (it would wait its whole time again).
fn poll_select_finish(
    timeout: Timeout,
    address: u64,
    format: TimeFormat,
    result: SysResult,
) -> SysResult {
    restore_saved_sigmask_unless(result == Err(ERESTARTNOHAND));
    if address == 0 {
        return result;
    }
    let Some(left) = timeout.left_ns() else {
        return result;
    };
    let seconds = left / NSEC_PER_SEC;
    let nanoseconds = left % NSEC_PER_SEC;
    let fraction = match format {
        TimeFormat::Timeval => nanoseconds / 1_000,
        TimeFormat::Timespec => nanoseconds,
    };
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&seconds.to_le_bytes());
    bytes[8..].copy_from_slice(&fraction.to_le_bytes());
    let written = current_mm().and_then(|mm| mm.copy_to_user(address, &bytes));
    match (written, result) {
        (Err(_), Err(ERESTARTNOHAND)) => Err(crate::errno::EINTR),
        _ => result,
    }
}

/// A `struct timespec` timeout (ppoll, pselect6): EFAULT, then EINVAL.
fn read_timespec_timeout(address: u64) -> Result<Timeout, i32> {
    let (seconds, nanoseconds) = super::time::read_raw_timespec(address)?;
    Timeout::after(seconds, nanoseconds)
}

// ---- poll

/// `struct pollfd`: int fd, short events, short revents.
const POLLFD_SIZE: usize = 8;

/// Linux `do_sys_poll`: EINVAL for more entries than RLIMIT_NOFILE, the
/// array read (EFAULT), the wait, then each `revents` written (EFAULT).
fn do_sys_poll(ufds: u64, nfds: u64, timeout: Timeout) -> SysResult {
    let task = sched::current();
    let limit = task.thread_group().rlimits().0[RLIMIT_NOFILE].cur;
    if nfds > limit {
        return Err(EINVAL);
    }
    let mm = current_mm()?;
    let mut raw = Vec::new();
    raw.try_reserve_exact(nfds as usize * POLLFD_SIZE)
        .map_err(|_| ENOMEM)?;
    raw.resize(nfds as usize * POLLFD_SIZE, 0);
    mm.copy_from_user(ufds, &mut raw).map_err(|_| EFAULT)?;
    // Every allocation here is as large as the user asked: fallible.
    let mut revents = Vec::new();
    revents
        .try_reserve_exact(nfds as usize)
        .map_err(|_| ENOMEM)?;
    revents.resize(nfds as usize, 0u16);
    let entry = |e: &[u8]| {
        let fd = i32::from_le_bytes(e[..4].try_into().expect("4 bytes"));
        let events = u16::from_le_bytes(e[4..6].try_into().expect("2 bytes"));
        (fd, events)
    };
    let table = task.files();
    drop(task);
    let count = wait_for_events(timeout, |wait| {
        let mut count = 0;
        for (raw_entry, revent) in raw.chunks_exact(POLLFD_SIZE).zip(revents.iter_mut()) {
            let (fd, events) = entry(raw_entry);
            // A negative descriptor is skipped (Linux `do_pollfd`).
            *revent = 0;
            if fd < 0 {
                continue;
            }
            let file = table.as_ref().and_then(|t| t.lock().get(fd as u64).ok());
            let mask = match file {
                None => POLLNVAL,
                Some(file) => wait.poll(&file) & (events | POLLERR | POLLHUP),
            };
            *revent = mask;
            if mask != 0 {
                count += 1;
                wait.found();
            }
        }
        Ok(count)
    })?;
    for (i, revent) in revents.iter().enumerate() {
        let at = ufds + (i * POLLFD_SIZE + 6) as u64;
        mm.copy_to_user(at, &revent.to_le_bytes())
            .map_err(|_| EFAULT)?;
    }
    Ok(count)
}

/// `poll(fds, nfds, timeout_ms)`: a negative timeout waits forever, 0
/// looks once.
pub fn poll(a: Args) -> SysResult {
    let [ufds, nfds, timeout_ms, ..] = a.0;
    let nfds = u64::from(nfds as u32);
    let timeout_ms = timeout_ms as i32;
    let timeout = if timeout_ms < 0 {
        Timeout::Never
    } else {
        let ms = i64::from(timeout_ms);
        Timeout::after(ms / 1000, ms % 1000 * 1_000_000)?
    };
    do_sys_poll(ufds, nfds, timeout)
}

/// `ppoll(fds, nfds, tsp, sigmask, sigsetsize)`: the timeout (EFAULT,
/// EINVAL; NULL waits forever), then the mask (EINVAL, EFAULT), then
/// `poll`; the time left goes back into `tsp`.
pub fn ppoll(a: Args) -> SysResult {
    let [ufds, nfds, tsp, sigmask, sigsetsize, ..] = a.0;
    let timeout = if tsp != 0 {
        read_timespec_timeout(tsp)?
    } else {
        Timeout::Never
    };
    set_user_sigmask(sigmask, sigsetsize)?;
    let result = do_sys_poll(ufds, u64::from(nfds as u32), timeout);
    poll_select_finish(timeout, tsp, TimeFormat::Timespec, result)
}

// ---- select

const BITS_PER_LONG: usize = 64;
/// Events that make a descriptor readable, writable or exceptional
/// (Linux `POLLIN_SET`, `POLLOUT_SET`, `POLLEX_SET`).
const POLLIN_SET: u16 = POLLRDNORM | POLLRDBAND | POLLIN | POLLHUP | POLLERR;
const POLLOUT_SET: u16 = POLLWRBAND | POLLWRNORM | POLLOUT | POLLERR;
const POLLEX_SET: u16 = POLLPRI;

/// An `fd_set` of `n` descriptors as longs (Linux `get_fd_set`: whole
/// longs are read; NULL is an empty set).
fn get_fd_set(address: u64, longs: usize) -> Result<Vec<u64>, i32> {
    let mut set = Vec::new();
    set.try_reserve_exact(longs).map_err(|_| ENOMEM)?;
    set.resize(longs, 0);
    if address == 0 {
        return Ok(set);
    }
    let mut bytes = alloc::vec![0u8; longs * 8];
    current_mm()?
        .copy_from_user(address, &mut bytes)
        .map_err(|_| EFAULT)?;
    for (word, chunk) in set.iter_mut().zip(bytes.chunks_exact(8)) {
        *word = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
    }
    Ok(set)
}

fn set_fd_set(address: u64, set: &[u64]) -> Result<(), i32> {
    if address == 0 {
        return Ok(());
    }
    let bytes: Vec<u8> = set.iter().flat_map(|w| w.to_le_bytes()).collect();
    current_mm()?
        .copy_to_user(address, &bytes)
        .map_err(|_| EFAULT)
}

/// Linux `core_sys_select`: EINVAL for a negative `n`, which is then cut
/// to the descriptor table's size; the three sets read (EFAULT); EBADF if
/// a set names a descriptor that is not open (`max_select_fd`); the wait;
/// then the result sets written back (EFAULT), unless a signal ended it.
fn core_sys_select(n: u64, inp: u64, outp: u64, exp: u64, timeout: Timeout) -> SysResult {
    let n = n as i32;
    if n < 0 {
        return Err(EINVAL);
    }
    let task = sched::current();
    let table = task.files().ok_or(EBADF)?;
    drop(task);
    let n = (n as usize).min(table.lock().max_fds());
    let longs = n.div_ceil(BITS_PER_LONG);
    let in_set = get_fd_set(inp, longs)?;
    let out_set = get_fd_set(outp, longs)?;
    let ex_set = get_fd_set(exp, longs)?;
    let wanted = |fd: usize| {
        let (word, bit) = (fd / BITS_PER_LONG, 1u64 << (fd % BITS_PER_LONG));
        (
            in_set[word] & bit != 0,
            out_set[word] & bit != 0,
            ex_set[word] & bit != 0,
        )
    };
    // Every descriptor named must be open (O_PATH ones too).
    {
        let table = table.lock();
        let named = (0..n).filter(|&fd| wanted(fd) != (false, false, false));
        for fd in named {
            table.get(fd as u64).map_err(|_| EBADF)?;
        }
    }
    let mut res_in = alloc::vec![0u64; longs];
    let mut res_out = alloc::vec![0u64; longs];
    let mut res_ex = alloc::vec![0u64; longs];
    let result = wait_for_events(timeout, |wait| {
        let mut count = 0;
        res_in.fill(0);
        res_out.fill(0);
        res_ex.fill(0);
        for fd in 0..n {
            let (want_in, want_out, want_ex) = wanted(fd);
            if !(want_in || want_out || want_ex) {
                continue;
            }
            let file = table.lock().get(fd as u64).ok();
            // Closed since, or O_PATH: POLLNVAL, in none of the sets.
            let mask = file.map_or(POLLNVAL, |file| wait.poll(&file));
            let (word, bit) = (fd / BITS_PER_LONG, 1u64 << (fd % BITS_PER_LONG));
            for (want, events, res) in [
                (want_in, POLLIN_SET, &mut res_in),
                (want_out, POLLOUT_SET, &mut res_out),
                (want_ex, POLLEX_SET, &mut res_ex),
            ] {
                if want && mask & events != 0 {
                    res[word] |= bit;
                    count += 1;
                    wait.found();
                }
            }
        }
        Ok(count)
    });
    let count = result?;
    set_fd_set(inp, &res_in)?;
    set_fd_set(outp, &res_out)?;
    set_fd_set(exp, &res_ex)?;
    Ok(count)
}

/// `select(n, readfds, writefds, exceptfds, timeout)`: the `struct
/// timeval` timeout first (EFAULT; microseconds beyond a second carry into
/// the seconds; EINVAL if negative), the time left written back.
pub fn select(a: Args) -> SysResult {
    let [n, inp, outp, exp, tvp, ..] = a.0;
    let timeout = if tvp != 0 {
        let (seconds, micros) = super::time::read_raw_timespec(tvp)?;
        Timeout::after(
            seconds.wrapping_add(micros / 1_000_000),
            micros % 1_000_000 * 1_000,
        )?
    } else {
        Timeout::Never
    };
    let result = core_sys_select(n, inp, outp, exp, timeout);
    poll_select_finish(timeout, tvp, TimeFormat::Timeval, result)
}

/// `pselect6(n, readfds, writefds, exceptfds, timeout, sig)`: `sig` points
/// at { sigset pointer, size }, read first (EFAULT); then the `struct
/// timespec` timeout (EFAULT, EINVAL), the mask (EINVAL, EFAULT), the
/// select, and the time left written back.
pub fn pselect6(a: Args) -> SysResult {
    let [n, inp, outp, exp, tsp, sig] = a.0;
    let (sigmask, sigsetsize) = if sig != 0 {
        let mut bytes = [0u8; 16];
        current_mm()?
            .copy_from_user(sig, &mut bytes)
            .map_err(|_| EFAULT)?;
        (
            u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")),
            u64::from_le_bytes(bytes[8..].try_into().expect("8 bytes")),
        )
    } else {
        (0, 0)
    };
    let timeout = if tsp != 0 {
        read_timespec_timeout(tsp)?
    } else {
        Timeout::Never
    };
    set_user_sigmask(sigmask, sigsetsize)?;
    let result = core_sys_select(n, inp, outp, exp, timeout);
    poll_select_finish(timeout, tsp, TimeFormat::Timespec, result)
}
