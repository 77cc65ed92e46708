//! `proctest list | all | SCENARIO...`: checks the semantics of process
//! creation (copy-on-write `fork`, `vfork`, `clone` of processes and
//! threads), exit and `wait4` statuses, faults, pipes and descriptors, and a
//! few memory and time calls: what the forkvm kernel must do exactly as Linux
//! does.
//!
//! Each scenario prints one line, `ok <scenario>` or
//! `FAIL <scenario>: <expected vs seen>`, after a line `skip <scenario>:
//! <why>` for each part it could not run here (a part that needs a
//! capability the host's root lacks). The exit status is 0 if every
//! requested scenario passed, 1 otherwise, and 2 (with a usage message on
//! stderr, before anything runs) for an unknown scenario. `list` prints the
//! names of the scenarios, one per line; `all` runs them all in that order.
//!
//! The scenarios live in one module per topic (`cow`, `threads`, `wait`,
//! `signals`, ...), each with its `SCENARIOS` table; this file is the
//! runner: the order of the topics ([`TOPICS`]), the helpers and `main`.
//!
//! `exit-42` is a helper, not a scenario: it makes the program exit with
//! status 42 at once, printing nothing (`vfork-exec` executes this program
//! with it). `list` and `all` leave it out, and the other `exec-*`
//! helpers, which the scenarios that execute this program name.
//!
//! Every scenario is fast (well under a second on Linux), cleans up the
//! children it creates (a child still around on an early return is killed
//! and reaped) and never waits unboundedly in a loop. Children that must end
//! on their own (exit, `execve`) are reaped with a blocking `wait4`, which is
//! part of what is tested; children whose end depends on a signal or fault
//! the kernel might fail to deliver (`SIGKILL` of a spinner, `SIGSEGV`,
//! `exit_group` of a process with a spinning thread) are polled with a
//! deadline and killed if they outlive it. Threads are joined with timed
//! futex waits. The one process left to someone else is the orphaned
//! grandchild of `orphan-reparented`: it has exited before the scenario
//! returns and is reaped by its new parent (by this program if it is pid 1).
//!
//! System calls: read, write, close, dup2, pipe2, mmap, munmap, mprotect,
//! brk, sched_yield, nanosleep, getpid, getppid, gettid, clone, fork, vfork,
//! execve, execveat, exit, exit_group, wait4, kill, uname, futex, clock_gettime.
#![no_std]
#![no_main]
// Failure messages are formatted into a 240-byte buffer returned by value
// (no heap needed); they only travel on the failure path, once per scenario.
#![allow(clippy::result_large_err)]

// What every module sees: each `use super::*`, so these imports and the
// shared helpers (`support`) are the scenarios' common vocabulary.
use core::arch::asm;
use core::ffi::CStr;
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use forkvm_user::clone::{
    clone_raw, vfork, CLONE_FILES, CLONE_PARENT_SETTID, CLONE_VM, SIGCHLD, THREAD_FLAGS,
};
use forkvm_user::io::Bytes;
use forkvm_user::syscall::{
    brk, c_field, close, dup2, execve, exit, exit_group, fork, futex, getpid, getppid, gettid,
    kill, mmap_anonymous, mprotect, munmap, nanosleep, nr, pipe2, read, syscall0, syscall2,
    syscall3, syscall4, syscall5, uname, wait4, write, write_all, Pid, Timespec, WaitStatus,
    FUTEX_WAIT, PROT_EXEC, PROT_READ, PROT_WRITE, WNOHANG,
};
use forkvm_user::time::monotonic_ns;
use forkvm_user::{entry, eprintln, println, Errno};

entry!(main);

const USAGE: &str = "usage: proctest list | all | SCENARIO...\n\
    (`list` names the scenarios, `all` runs them; helper `exit-42` exits 42 at once)";

/// What scenarios may need from the command line.
struct Ctx<'a> {
    /// The path this program was started with (to `execve` it again).
    argv0: Option<&'a [u8]>,
}

type Scenario = fn(&Ctx) -> Outcome;

// The shared helpers first: their macros (`msg!`, `ensure!`) are in scope
// in every module declared after them.
#[macro_use]
mod support;
use support::*;

/// Declares each topic module and lists its scenarios in [`TOPICS`].
macro_rules! topics {
    ($($topic:ident),* $(,)?) => {
        $(mod $topic;)*

        /// Each topic's scenarios, in the order `list` and `all` use.
        const TOPICS: &[&[(&str, Scenario)]] = &[$($topic::SCENARIOS),*];
    };
}

// One module per topic, one line each, in `list` order.
topics! {
    cow,
    threads,
    robust,
    vfork,
    wait,
    efault,
    fds,
    exit_group,
    memory,
    basics,
    copy_process,
    pgrp,
    sem,
    fs,
    files,
    execat,
    tty,
    userns,
    signals,
    altstack,
    waitid,
    sigwait,
    userregs,
    sched,
    rusage,
    affinity,
    clocks,
    pipes,
    setids,
    vmcalls,
    sockets,
    itimers,
    poll,
}

/// The helper that `vfork-exec` executes: exit 42 at once, print nothing.
const EXIT_42: &[u8] = b"exit-42";
/// The helper that `exec-kills-other-threads` executes: write one byte to
/// descriptor 9, sleep 100 ms, exit 0.
const EXEC_MARKER: &[u8] = b"exec-marker-fd9";
/// The helper that `exec-unshares-files` executes: close descriptor 9,
/// exit 0.
const EXEC_CLOSE: &[u8] = b"exec-close-fd9";
/// The helper that `exec-closes-cloexec` executes: exit 0 if descriptor 8
/// is open (it writes "o" to it) and 9 is closed.
const EXEC_FD_CHECK: &[u8] = b"exec-fd8-open-fd9-closed";

/// Every scenario, in the order `list` and `all` use.
fn scenarios() -> impl Iterator<Item = &'static (&'static str, Scenario)> {
    TOPICS.iter().flat_map(|topic| topic.iter())
}

fn lookup(name: &[u8]) -> Option<&'static (&'static str, Scenario)> {
    scenarios().find(|(n, _)| n.as_bytes() == name)
}

fn usage(problem: &str) -> i32 {
    eprintln!("proctest: {problem}\n{USAGE}");
    2
}

fn main(args: &[&[u8]], _env: &[&[u8]]) -> i32 {
    let requested = args.get(1..).unwrap_or(&[]);
    if requested.is_empty() {
        return usage("no scenario given");
    }
    // The one helper with arguments of its own.
    if requested[0] == execat::EXEC_REPORT.to_bytes() {
        return execat::exec_report(args);
    }
    if requested.len() == 1 && requested[0] == b"list" {
        for (name, _) in scenarios() {
            println!("{name}");
        }
        return 0;
    }
    // Check every name before running anything.
    for &arg in requested {
        let helper = [
            EXIT_42,
            EXEC_MARKER,
            EXEC_CLOSE,
            EXEC_FD_CHECK,
            threads::EXEC_GS_CHECK,
            altstack::EXEC_ALTSTACK_CHECK.to_bytes(),
            sched::PREEMPT_HELPER,
            rusage::YIELD_HELPER,
            setids::EXEC_IDS_CHECK.to_bytes(),
        ]
        .contains(&arg);
        if arg != b"all" && !helper && lookup(arg).is_none() {
            eprintln!("proctest: unknown scenario: {}", Bytes(arg));
            return usage("see `proctest list`");
        }
    }
    let ctx = Ctx {
        argv0: args.first().copied(),
    };
    let mut failed = false;
    let mut run = |name: &str, scenario: Scenario| {
        set_current(name);
        match scenario(&ctx) {
            Ok(()) => println!("ok {name}"),
            Err(m) => {
                failed = true;
                println!("FAIL {name}: {}", m.as_str());
            }
        }
    };
    for &arg in requested {
        if arg == EXIT_42 {
            exit_group(42);
        } else if arg == EXEC_FD_CHECK {
            let open = write(8, b"o") == Ok(1);
            let closed = write(9, b"x") == Err(Errno::EBADF);
            exit_group(i32::from(!open) | i32::from(!closed) << 1);
        } else if arg == altstack::EXEC_ALTSTACK_CHECK.to_bytes() {
            exit_group(altstack::exec_altstack_check());
        } else if arg == threads::EXEC_GS_CHECK {
            exit_group(i32::from(threads::gs_base() != Ok(0)));
        } else if arg == sched::PREEMPT_HELPER {
            exit_group(sched::preempt_checks());
        } else if arg == setids::EXEC_IDS_CHECK.to_bytes() {
            exit_group(setids::exec_ids_check());
        } else if arg == rusage::YIELD_HELPER {
            exit_group(rusage::yield_checks());
        } else if arg == EXEC_CLOSE {
            exit_group(i32::from(close(9).is_err()));
        } else if arg == EXEC_MARKER {
            let _ = write(9, b"x");
            sleep_ns(100 * MS);
            exit_group(0);
        } else if arg == b"all" {
            for &(name, scenario) in scenarios() {
                run(name, scenario);
            }
        } else if let Some(&(name, scenario)) = lookup(arg) {
            run(name, scenario);
        }
    }
    i32::from(failed)
}
