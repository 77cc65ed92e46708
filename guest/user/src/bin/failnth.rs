//! `failnth [FLAGS_HEX]`: fault-injection sweep over `copy_process` (guest
//! only). FLAGS must not contain CLONE_VM (the child runs on a copy of
//! this program's stack). For n = 1, 2, ...: arm the n-th fallible step to fail, clone
//! with FLAGS (default: fork), and check the failure left nothing behind:
//! free frames, tasks and kernel heap exactly as before. Stops when a
//! clone succeeds with no step left to fail. One line per step, naming the
//! kernel's step that failed (`forkvm_abi::sys::ForkStep`):
//! `step N copy_mm: ENAME counters unchanged` or `FAIL step N ...`; the
//! summary `failnth: N steps, all unwound` ends a clean run (exit 0).
#![no_std]
#![no_main]

use forkvm_user::forkvm::{self, diag_fail_nth};
use forkvm_user::syscall::{self, nr, syscall5};
use forkvm_user::{entry, println};

entry!(main);

/// Counters that must not move across a failed clone: memory, tasks, and
/// the kernel's object counts from `stat` (live namespaces of each kind and
/// references to the caller's, pids per pid namespace, tasks per user and
/// user namespace, threads, fd tables and references to them).
#[derive(Clone, Copy, PartialEq, Eq)]
struct Counters {
    free_frames: u64,
    tasks: u64,
    heap_used: u64,
    objects: [u8; OBJECTS_MAX],
    objects_len: usize,
}

const OBJECTS_MAX: usize = 1024;

/// The `stat` fields that count kernel objects.
fn is_object_count(key: &[u8]) -> bool {
    key.ends_with(b"_namespaces")
        || key.starts_with(b"pids_in_ns.")
        || key.starts_with(b"user_tasks.")
        || key.ends_with(b".refs")
        || key == b"nr_threads"
        || key == b"fd_tables"
        || key == b"fd_table_refs"
}

impl core::fmt::Debug for Counters {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "free_frames={} tasks={} heap_used={} {}",
            self.free_frames,
            self.tasks,
            self.heap_used,
            forkvm_user::io::Bytes(&self.objects[..self.objects_len])
        )
    }
}

fn counters() -> Counters {
    let info = forkvm::system_info().unwrap_or_else(|e| {
        println!("failnth: forkvm_info: {e}");
        syscall::exit_group(1)
    });
    let mut stats = [0u8; 4096];
    let len = forkvm::info_raw(forkvm_abi::sys::INFO_STATS, &mut stats).unwrap_or_else(|e| {
        println!("failnth: forkvm_info(stats): {e}");
        syscall::exit_group(1)
    });
    let mut counters = Counters {
        free_frames: info.free_frames,
        tasks: info.tasks,
        heap_used: info.heap_used,
        objects: [0; OBJECTS_MAX],
        objects_len: 0,
    };
    for field in stats[..len].split(|&b| b == b' ') {
        let key = field.split(|&b| b == b'=').next().unwrap_or(field);
        let at = counters.objects_len;
        if is_object_count(key) && at + field.len() < OBJECTS_MAX {
            counters.objects[at..at + field.len()].copy_from_slice(field);
            counters.objects[at + field.len()] = b' ';
            counters.objects_len += field.len() + 1;
        }
    }
    counters
}

fn parse_hex(arg: &[u8]) -> Option<u64> {
    let digits = arg.strip_prefix(b"0x").unwrap_or(arg);
    let text = core::str::from_utf8(digits).ok()?;
    u64::from_str_radix(text, 16).ok()
}

/// One clone with `flags` (no CLONE_VM: the child runs on a copy of this
/// stack); the child exits at once and is reaped.
fn clone_once(flags: u64) -> Result<(), forkvm_user::Errno> {
    // SAFETY: without CLONE_VM the child gets its own copy of memory and
    // returns here with 0; the pointers are unused (no *_TID flags given).
    let ret = unsafe { syscall5(nr::CLONE, flags as usize, 0, 0, 0, 0) };
    let pid = syscall::check(ret)?;
    if pid == 0 {
        syscall::exit(0);
    }
    let _ = syscall::wait4(pid as i32, 0);
    Ok(())
}

fn main(args: &[&[u8]], _env: &[&[u8]]) -> i32 {
    use forkvm_abi::linux::clone::CLONE_VM;
    use forkvm_user::clone::SIGCHLD;
    let flags = match args.get(1) {
        None => SIGCHLD,
        Some(arg) => match parse_hex(arg) {
            Some(flags) if flags & CLONE_VM == 0 => flags,
            _ => {
                println!("usage: failnth [FLAGS_HEX] (without CLONE_VM)");
                return 2;
            }
        },
    };
    // One CPU for this program and its children (they inherit the mask):
    // with several, a child that ran on another CPU leaves work there that
    // finishes later (its address space stays installed, kept lazily, until
    // that CPU switches to another one), which would move the counters of a
    // later step.
    if let Err(e) = forkvm_user::sched::sched_setaffinity(0, 1) {
        println!("failnth: sched_setaffinity: {e}");
        return 1;
    }
    // Warm up: caches (kernel stacks, page tables) reach their working size.
    for _ in 0..4 {
        if let Err(e) = clone_once(flags) {
            println!("failnth: clone without injection failed: {e}");
            return 1;
        }
    }
    let mut failures = 0;
    let mut step = 1;
    loop {
        let before = counters();
        if let Err(e) = diag_fail_nth(step) {
            println!("failnth: forkvm_diag: {e}");
            return 1;
        }
        let result = clone_once(flags);
        let report = diag_fail_nth(0).ok();
        let seen = report.map_or(0, |r| r.steps);
        let name = report
            .and_then(|r| r.failed_step)
            .unwrap_or("(no step failed)");
        match result {
            Ok(()) if step > seen => {
                println!(
                    "failnth: {} steps, {}",
                    step - 1,
                    if failures == 0 {
                        "all unwound"
                    } else {
                        "LEAKS"
                    }
                );
                return i32::from(failures != 0);
            }
            Ok(()) => {
                failures += 1;
                println!("FAIL step {step}: the clone succeeded although step {step} of {seen} was armed");
            }
            Err(e) => {
                let after = counters();
                if after == before {
                    println!("step {step} {name}: {e} counters unchanged");
                } else {
                    failures += 1;
                    println!("FAIL step {step} {name}: {e} but counters moved: before {before:?} after {after:?}");
                }
            }
        }
        step += 1;
        if step > 64 {
            println!("FAIL: more than 64 steps");
            return 1;
        }
    }
}
