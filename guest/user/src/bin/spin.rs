//! `spin`: computes forever in user mode without a single system call, so
//! only a timer interrupt (preemption) can take the CPU from it.
//!
//! `spin pair ROUNDS`: forks two CPU-bound children that each compute
//! ROUNDS rounds (about a million additions each), asking `getcpu` after
//! every round, and print `spin child N: ROUNDS rounds, mostly on cpu C
//! (K rounds), cpus seen MASK`; the parent waits for both and prints
//! `spin pair: both done`. On two idle CPUs the children run side by side,
//! one on each (tests/smp.rs).
//!
//! `spin share MS NICE...`: on one CPU (the first its affinity allows),
//! runs one spinner per NICE value, each at that nice, for MS ms, kills
//! them and prints, from `wait4`'s rusage, each one's CPU time and share
//! in per mille: `spin share: nice N cpu_us U permille P` (tests/sched.rs:
//! the fair class weighs nice values).
//!
//! `spin policy MS STEP POLICY...`: on one CPU, runs one spinner per
//! POLICY (`normal`, `batch`, `idle`: nice 0; `fifo`, `rr`: real-time
//! priority 10, set by the parent in that order, so they queue in it) for
//! MS ms, with the parent at SCHED_FIFO 50 (needs CAP_SYS_NICE) sleeping
//! in steps of STEP ms, each wake-up preempting the running spinner; then
//! prints each one's CPU time and share as `share` does: `spin policy:
//! POLICY cpu_us U permille P` (tests/sched.rs: SCHED_RR peers rotate,
//! also when preempted every few ms, a SCHED_FIFO one keeps the CPU,
//! SCHED_IDLE gets a sliver).
//!
//! `spin slices`: prints its fair slice (`sched_getattr`'s
//! `sched_runtime`), then makes itself SCHED_RR and prints its
//! `sched_rr_get_interval`: `spin slices: fair F ns, rr R us`.
//!
//! `spin forkloop MS`: on one CPU, runs a spinner while forking children
//! that exit at once (and reaping them) for MS ms, then prints the
//! spinner's share of that time: `spin forkloop: forks F elapsed_us E
//! spinner_us S permille P` (a fork loop must not starve it).
//!
//! `spin childfirst`: on one CPU, forks a child that marks a shared page
//! and exits, and tells whether the mark was there when `fork` returned in
//! the parent (`spin childfirst: child ran before fork returned: yes|no`),
//! which `kernel.sched_child_runs_first=1` guarantees.
//!
//! `spin balance N0 N1`: starts N0 spinners allowed only CPU 0 and N1
//! allowed only CPU 1 (each publishes the CPU of its latest round), then
//! allows them both CPUs and watches, up to 10 s, until the counts per
//! CPU differ by at most one in 5 samples in a row (100 ms); prints `spin
//! balance: N0+N1 spinners spread to A on cpu 0, B on cpu 1` and exits 0,
//! or `spin balance: N0+N1 spinners not spread after 10 s: A on cpu 0, B
//! on cpu 1` and exits 1; kills and reaps them either way. (3 and 0 needs
//! an idle CPU to pull; 3 and 1 needs a periodic balance of busy CPUs.)
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU32, Ordering};

use forkvm_user::rusage::wait4_rusage;
use forkvm_user::signal::sig::SIGKILL;
use forkvm_user::syscall::Timespec;
use forkvm_user::time::monotonic_ns;
use forkvm_user::{println, sched, syscall};

forkvm_user::entry!(main);

fn main(args: &[&[u8]], _env: &[&[u8]]) -> i32 {
    match args.get(1..) {
        Some([]) | None => spin_forever(),
        Some([b"pair", rounds]) => match parse(rounds) {
            Some(rounds) if rounds > 0 => pair(rounds),
            _ => usage(),
        },
        Some([b"share", ms, nices @ ..]) if !nices.is_empty() && nices.len() <= 8 => {
            let mut values = [0i32; 8];
            for (value, text) in values.iter_mut().zip(nices) {
                match core::str::from_utf8(text).ok().and_then(|t| t.parse().ok()) {
                    Some(nice) => *value = nice,
                    None => return usage(),
                }
            }
            match parse(ms) {
                Some(ms) if ms > 0 => share(ms, &values[..nices.len()]),
                _ => usage(),
            }
        }
        Some([b"policy", ms, step, policies @ ..])
            if !policies.is_empty() && policies.len() <= 8 =>
        {
            let mut values = [0i32; 8];
            for (value, name) in values.iter_mut().zip(policies) {
                match policy_by_name(name) {
                    Some(policy) => *value = policy,
                    None => return usage(),
                }
            }
            match (parse(ms), parse(step)) {
                (Some(ms), Some(step)) if ms > 0 && step > 0 => {
                    policy_share(ms, step, policies, &values[..policies.len()])
                }
                _ => usage(),
            }
        }
        Some([b"slices"]) => slices(),
        Some([b"childfirst"]) => child_first(),
        Some([b"forkloop", ms]) => match parse(ms) {
            Some(ms) if ms > 0 => forkloop(ms),
            _ => usage(),
        },
        Some([b"balance", on0, on1]) => match (parse(on0), parse(on1)) {
            (Some(on0), Some(on1)) if on0 + on1 > 0 && on0 + on1 <= MAX_SPINNERS => {
                balance(on0, on1)
            }
            _ => usage(),
        },
        Some(_) => usage(),
    }
}

fn usage() -> i32 {
    println!(
        "usage: spin [pair ROUNDS | share MS NICE... | policy MS STEP normal|batch|idle|fifo|rr... \
         | slices | forkloop MS | childfirst | balance N0 N1]"
    );
    2
}

fn spin_forever() -> ! {
    let mut x = 0u64;
    loop {
        x = core::hint::black_box(x.wrapping_add(1));
    }
}

fn parse(text: &[u8]) -> Option<u64> {
    core::str::from_utf8(text).ok()?.parse().ok()
}

fn pair(rounds: u64) -> i32 {
    let mut children = [0; 2];
    for (n, child) in children.iter_mut().enumerate() {
        match syscall::fork() {
            Ok(0) => syscall::exit(compute(n, rounds)),
            Ok(pid) => *child = pid,
            Err(e) => {
                println!("spin pair: fork: {e}");
                return 1;
            }
        }
    }
    let mut status = 0;
    for child in children {
        match syscall::wait4(child as i32, 0) {
            Ok((_, wait)) if wait.exited() && wait.exit_status() == 0 => {}
            Ok(_) => status = 1,
            Err(e) => {
                println!("spin pair: wait4: {e}");
                status = 1;
            }
        }
    }
    if status == 0 {
        println!("spin pair: both done");
    }
    status
}

/// One child's work: `rounds` rounds of pure computation, counting the
/// rounds that ended on each CPU.
fn compute(n: usize, rounds: u64) -> i32 {
    let mut per_cpu = [0u64; 64];
    let mut x = 0u64;
    for _ in 0..rounds {
        for _ in 0..1_000_000 {
            x = core::hint::black_box(x.wrapping_add(1));
        }
        match sched::getcpu() {
            Ok((cpu, _)) => per_cpu[cpu as usize % 64] += 1,
            Err(e) => {
                println!("spin child {n}: getcpu: {e}");
                return 1;
            }
        }
    }
    let (cpu, most) = per_cpu
        .iter()
        .enumerate()
        .max_by_key(|&(_, count)| *count)
        .map(|(cpu, count)| (cpu, *count))
        .unwrap_or_default();
    let seen = per_cpu
        .iter()
        .enumerate()
        .filter(|&(_, count)| *count > 0)
        .fold(0u64, |mask, (cpu, _)| mask | 1 << cpu);
    println!(
        "spin child {n}: {rounds} rounds, mostly on cpu {cpu} ({most} rounds), cpus seen {seen:#x}"
    );
    0
}

/// Pins the caller (and so its children) to the first CPU it may use.
fn pin_to_one_cpu() -> Result<(), forkvm_user::Errno> {
    let mask = sched::sched_getaffinity(0)?;
    sched::sched_setaffinity(0, mask & mask.wrapping_neg())
}

/// Starts a child that sets its nice value and spins forever.
fn start_spinner(nice: i32) -> Result<i32, forkvm_user::Errno> {
    match syscall::fork()? {
        0 => {
            if let Err(e) = sched::setpriority(sched::PRIO_PROCESS, 0, nice) {
                println!("spin: setpriority({nice}): {e}");
                syscall::exit(1);
            }
            spin_forever()
        }
        pid => Ok(pid as i32),
    }
}

/// Kills and reaps a spinner; its CPU time in microseconds.
fn stop_spinner(pid: i32) -> Result<u64, forkvm_user::Errno> {
    syscall::kill(pid, SIGKILL)?;
    let (_, _, usage) = wait4_rusage(pid, 0)?;
    Ok(usage.utime.as_micros() + usage.stime.as_micros())
}

fn share(ms: u64, nices: &[i32]) -> i32 {
    if let Err(e) = pin_to_one_cpu() {
        println!("spin share: sched_setaffinity: {e}");
        return 1;
    }
    let mut pids = [0i32; 8];
    for (pid, &nice) in pids.iter_mut().zip(nices) {
        match start_spinner(nice) {
            Ok(child) => *pid = child,
            Err(e) => {
                println!("spin share: fork: {e}");
                return 1;
            }
        }
    }
    sleep_ns(ms * 1_000_000);
    let mut cpu_us = [0u64; 8];
    for (used, &pid) in cpu_us.iter_mut().zip(&pids[..nices.len()]) {
        match stop_spinner(pid) {
            Ok(us) => *used = us,
            Err(e) => {
                println!("spin share: kill/wait4: {e}");
                return 1;
            }
        }
    }
    let total: u64 = cpu_us.iter().sum::<u64>().max(1);
    for (nice, used) in nices.iter().zip(cpu_us) {
        println!(
            "spin share: nice {nice} cpu_us {used} permille {}",
            used * 1000 / total
        );
    }
    0
}

fn policy_by_name(name: &[u8]) -> Option<i32> {
    Some(match name {
        b"normal" => sched::SCHED_NORMAL,
        b"batch" => sched::SCHED_BATCH,
        b"idle" => sched::SCHED_IDLE,
        b"fifo" => sched::SCHED_FIFO,
        b"rr" => sched::SCHED_RR,
        _ => return None,
    })
}

/// The real-time priority of `policy`'s spinners and of the parent.
const SPINNER_RT_PRIO: i32 = 10;
const PARENT_RT_PRIO: i32 = 50;

fn policy_share(ms: u64, step: u64, names: &[&[u8]], policies: &[i32]) -> i32 {
    if let Err(e) = pin_to_one_cpu() {
        println!("spin policy: sched_setaffinity: {e}");
        return 1;
    }
    // Above every spinner, so the parent's wake-up preempts them; its
    // children start as SCHED_NORMAL and wait until it sleeps.
    let parent = sched::SCHED_FIFO | sched::SCHED_RESET_ON_FORK;
    if let Err(e) = sched::sched_setscheduler(0, parent, PARENT_RT_PRIO) {
        println!("spin policy: sched_setscheduler(FIFO {PARENT_RT_PRIO}): {e}");
        return 1;
    }
    let mut pids = [0i32; 8];
    let mut status = 0;
    for (pid, &policy) in pids.iter_mut().zip(policies) {
        match start_spinner(0) {
            Ok(child) => *pid = child,
            Err(e) => {
                println!("spin policy: fork: {e}");
                status = 1;
                break;
            }
        }
        let prio = if policy == sched::SCHED_FIFO || policy == sched::SCHED_RR {
            SPINNER_RT_PRIO
        } else {
            0
        };
        if let Err(e) = sched::sched_setscheduler(*pid, policy, prio) {
            println!("spin policy: sched_setscheduler({policy}, {prio}): {e}");
            status = 1;
            break;
        }
    }
    if status == 0 {
        let start = monotonic_ns();
        while let Some(left) = (ms * 1_000_000).checked_sub(monotonic_ns() - start) {
            sleep_ns(left.min(step * 1_000_000).max(1));
        }
    }
    let mut cpu_us = [0u64; 8];
    for (used, &pid) in cpu_us.iter_mut().zip(&pids).filter(|(_, &pid)| pid > 0) {
        match stop_spinner(pid) {
            Ok(us) => *used = us,
            Err(e) => {
                println!("spin policy: kill/wait4: {e}");
                status = 1;
            }
        }
    }
    if status != 0 {
        return status;
    }
    let total: u64 = cpu_us.iter().sum::<u64>().max(1);
    for (name, used) in names.iter().zip(cpu_us) {
        println!(
            "spin policy: {} cpu_us {used} permille {}",
            core::str::from_utf8(name).unwrap_or("?"),
            used * 1000 / total
        );
    }
    0
}

fn slices() -> i32 {
    let fair = match sched::sched_getattr(0) {
        Ok(attr) => attr.sched_runtime,
        Err(e) => {
            println!("spin slices: sched_getattr: {e}");
            return 1;
        }
    };
    if let Err(e) = sched::sched_setscheduler(0, sched::SCHED_RR, 1) {
        println!("spin slices: sched_setscheduler(RR 1): {e}");
        return 1;
    }
    match sched::sched_rr_get_interval(0) {
        Ok(ns) => {
            println!("spin slices: fair {fair} ns, rr {} us", ns / 1000);
            0
        }
        Err(e) => {
            println!("spin slices: sched_rr_get_interval: {e}");
            1
        }
    }
}

fn forkloop(ms: u64) -> i32 {
    if let Err(e) = pin_to_one_cpu() {
        println!("spin forkloop: sched_setaffinity: {e}");
        return 1;
    }
    let spinner = match start_spinner(0) {
        Ok(pid) => pid,
        Err(e) => {
            println!("spin forkloop: fork: {e}");
            return 1;
        }
    };
    let start = monotonic_ns();
    let mut forks = 0u64;
    while monotonic_ns().saturating_sub(start) < ms * 1_000_000 {
        match syscall::fork() {
            Ok(0) => syscall::exit(0),
            Ok(child) => {
                if let Err(e) = syscall::wait4(child as i32, 0) {
                    println!("spin forkloop: wait4: {e}");
                    return 1;
                }
                forks += 1;
            }
            Err(e) => {
                println!("spin forkloop: fork: {e}");
                return 1;
            }
        }
    }
    let elapsed_us = (monotonic_ns() - start) / 1000;
    match stop_spinner(spinner) {
        Ok(used) => {
            println!(
                "spin forkloop: forks {forks} elapsed_us {elapsed_us} spinner_us {used} permille {}",
                used * 1000 / elapsed_us.max(1)
            );
            0
        }
        Err(e) => {
            println!("spin forkloop: kill/wait4: {e}");
            1
        }
    }
}

fn child_first() -> i32 {
    if let Err(e) = pin_to_one_cpu() {
        println!("spin childfirst: sched_setaffinity: {e}");
        return 1;
    }
    let Some(slot) = shared_page() else {
        println!("spin childfirst: mmap failed");
        return 1;
    };
    // The child's first act is to mark the page: whether that happened
    // before `fork` returned here says who ran first, however long the
    // child then takes to exit (seconds under emulation).
    let ran = &slot[0];
    let child = match syscall::fork() {
        Ok(0) => {
            ran.store(1, Ordering::SeqCst);
            syscall::exit(0)
        }
        Ok(pid) => pid as i32,
        Err(e) => {
            println!("spin childfirst: fork: {e}");
            return 1;
        }
    };
    let child_ran_first = ran.load(Ordering::SeqCst) == 1;
    if let Err(e) = syscall::wait4(child, 0) {
        println!("spin childfirst: wait4: {e}");
        return 1;
    }
    let answer = if child_ran_first { "yes" } else { "no" };
    println!("spin childfirst: child ran before fork returned: {answer}");
    0
}

/// A fresh zeroed page shared with the children forked later, as slots.
fn shared_page() -> Option<&'static [AtomicU32; MAX_SPINNERS as usize]> {
    // SAFETY: without MAP_FIXED no mapping is replaced.
    let page = unsafe {
        syscall::mmap(
            0,
            4096,
            syscall::PROT_READ | syscall::PROT_WRITE,
            syscall::MAP_SHARED | syscall::MAP_ANONYMOUS,
            -1,
            0,
        )
    }
    .ok()?;
    // SAFETY: a fresh shared page, never unmapped, zeroed; atomics are
    // valid for any bits.
    Some(unsafe { &*(page as *const [AtomicU32; MAX_SPINNERS as usize]) })
}

/// At most this many spinners for `balance` (one slot each in a page).
const MAX_SPINNERS: u64 = 16;
/// `balance`'s samples: this far apart, this many in a row, for at most
/// this long.
const SAMPLE_NS: u64 = 20_000_000;
const SAMPLES_IN_A_ROW: u32 = 5;
const WATCH_NS: u64 = 10_000_000_000;

/// `balance`'s spinner: forever a round, then its CPU + 1 in `slot`.
fn publish_cpu_forever(slot: &AtomicU32) -> ! {
    let mut x = 0u64;
    loop {
        for _ in 0..100_000 {
            x = core::hint::black_box(x.wrapping_add(1));
        }
        if let Ok((cpu, _)) = sched::getcpu() {
            slot.store(cpu + 1, Ordering::Relaxed);
        }
    }
}

fn balance(on0: u64, on1: u64) -> i32 {
    let Some(slots) = shared_page() else {
        println!("spin balance: mmap failed");
        return 1;
    };
    let total = (on0 + on1) as usize;
    let mut pids = [0i32; MAX_SPINNERS as usize];
    let mut status = 0;
    for (n, pid) in pids.iter_mut().enumerate().take(total) {
        let cpu_mask = if (n as u64) < on0 { 0b01 } else { 0b10 };
        match syscall::fork() {
            Ok(0) => {
                if sched::sched_setaffinity(0, cpu_mask).is_err() {
                    syscall::exit(3)
                }
                publish_cpu_forever(&slots[n])
            }
            Ok(child) => *pid = child as i32,
            Err(e) => {
                println!("spin balance: fork: {e}");
                status = 1;
                break;
            }
        }
    }
    if status == 0 {
        status = watch(on0, on1, &slots[..total], &pids[..total]);
    }
    for &pid in pids.iter().filter(|&&pid| pid > 0) {
        let _ = syscall::kill(pid, SIGKILL);
        let _ = syscall::wait4(pid, 0);
    }
    status
}

/// Spinners whose latest round was on CPU 0 and on CPU 1.
fn per_cpu(slots: &[AtomicU32]) -> (u32, u32) {
    slots
        .iter()
        .fold((0, 0), |(a, b), slot| match slot.load(Ordering::Relaxed) {
            1 => (a + 1, b),
            2 => (a, b + 1),
            _ => (a, b),
        })
}

/// Sleeps `ns` nanoseconds.
fn sleep_ns(ns: u64) {
    let _ = syscall::nanosleep(Timespec::from_nanos(ns));
}

fn watch(on0: u64, on1: u64, slots: &[AtomicU32], pids: &[i32]) -> i32 {
    // Every spinner has run where it was put.
    let (mut a, mut b) = (0, 0);
    for _ in 0..500 {
        (a, b) = per_cpu(slots);
        if (u64::from(a), u64::from(b)) == (on0, on1) {
            break;
        }
        sleep_ns(SAMPLE_NS);
    }
    if (u64::from(a), u64::from(b)) != (on0, on1) {
        println!("spin balance: the spinners did not start where they were put: {a} on cpu 0, {b} on cpu 1");
        return 1;
    }
    for &pid in pids {
        if let Err(e) = sched::sched_setaffinity(pid, 0b11) {
            println!("spin balance: sched_setaffinity: {e}");
            return 1;
        }
    }
    let start = forkvm_user::time::monotonic_ns();
    let mut in_a_row = 0;
    while forkvm_user::time::monotonic_ns() - start < WATCH_NS {
        sleep_ns(SAMPLE_NS);
        (a, b) = per_cpu(slots);
        in_a_row = if a.abs_diff(b) <= 1 { in_a_row + 1 } else { 0 };
        if in_a_row == SAMPLES_IN_A_ROW {
            println!("spin balance: {on0}+{on1} spinners spread to {a} on cpu 0, {b} on cpu 1");
            return 0;
        }
    }
    println!(
        "spin balance: {on0}+{on1} spinners not spread after 10 s: {a} on cpu 0, {b} on cpu 1"
    );
    1
}
