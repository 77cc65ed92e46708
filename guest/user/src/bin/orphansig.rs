//! `orphansig init|pidns`: a process whose clone exit signal is not SIGCHLD
//! (`clone(SIGSEGV)`) loses its parent and exits; its new parent, an init,
//! must survive (Linux `reparent_leader` resets the exit signal to SIGCHLD,
//! and init, SIGNAL_UNKILLABLE, ignores signals it has no handler for).
//!
//! - `init`: the orphan is adopted by pid 1 (the shell with `forkvm -c`).
//!   Prints `orphansig: orphan gone` once it has exited; a killed init
//!   would have ended the machine before that.
//! - `pidns`: the same inside a new pid namespace (needs CAP_SYS_ADMIN),
//!   whose init also has a `clone(SIGSEGV)` child of its own and reaps
//!   both; prints how that init ended
//!   (`pid-namespace init: exited after reaping 2` when it survived).
#![no_std]
#![no_main]

use forkvm_user::syscall::{self, nr, syscall5, Timespec, WALL};
use forkvm_user::{entry, eprintln, println};

entry!(main);

const SIGSEGV: u64 = forkvm_abi::linux::signal::SIGSEGV as u64;
use forkvm_abi::linux::clone::CLONE_NEWPID;
use forkvm_user::clone::SIGCHLD;

fn main(args: &[&[u8]], _env: &[&[u8]]) -> i32 {
    match args.get(1).copied() {
        Some(b"init") => {
            orphan_with_exit_signal(SIGSEGV);
            println!("orphansig: orphan gone");
            0
        }
        Some(b"pidns") => pidns(),
        _ => {
            eprintln!("usage: orphansig init|pidns");
            2
        }
    }
}

/// `clone(flags)` without CLONE_VM and without a new stack: like `fork`,
/// the child returns 0 on its copy of this stack.
fn clone_copy(flags: u64) -> usize {
    // SAFETY: no CLONE_VM: the child runs on a copy of our memory.
    let ret = unsafe { syscall5(nr::CLONE, flags as usize, 0, 0, 0, 0) };
    syscall::check(ret).unwrap_or_else(|e| {
        eprintln!("orphansig: clone({flags:#x}): {e}");
        syscall::exit_group(1)
    })
}

/// Forks a middle process that clones an orphan-to-be with `exit_signal`
/// and exits at once. The orphan waits until it has been adopted, then
/// exits; this returns when it has (its end of a pipe closed), plus a
/// moment for its exit signal to reach its new parent.
fn orphan_with_exit_signal(exit_signal: u64) {
    let [read_end, write_end] = syscall::pipe2(0).unwrap_or_else(|e| {
        eprintln!("orphansig: pipe2: {e}");
        syscall::exit_group(1)
    });
    let middle = clone_copy(SIGCHLD);
    if middle == 0 {
        let _ = syscall::close(read_end);
        let me = syscall::getpid();
        if clone_copy(exit_signal) == 0 {
            // The orphan: the write end stays open until it exits.
            while syscall::getppid() == me {
                syscall::sched_yield();
            }
            syscall::exit_group(0);
        }
        syscall::exit_group(0);
    }
    let _ = syscall::close(write_end);
    if let Err(e) = syscall::wait4(middle as i32, 0) {
        eprintln!("orphansig: wait4: {e}");
        syscall::exit_group(1);
    }
    let mut byte = [0u8; 1];
    while matches!(syscall::read(read_end, &mut byte), Ok(n) if n > 0) {}
    let _ = syscall::close(read_end);
    let _ = syscall::nanosleep(Timespec::from_nanos(20_000_000));
}

/// The orphan in a new pid namespace: its init adopts it, then reaps the
/// middle process and the orphan.
fn pidns() -> i32 {
    let init = clone_copy(CLONE_NEWPID | SIGCHLD);
    if init == 0 {
        orphan_with_exit_signal(SIGSEGV);
        // Its own child with that exit signal: init ignores it too.
        if clone_copy(SIGSEGV) == 0 {
            syscall::exit_group(0);
        }
        let _ = syscall::nanosleep(Timespec::from_nanos(20_000_000));
        let mut reaped = 0;
        while syscall::wait4(-1, WALL).is_ok() {
            reaped += 1;
        }
        syscall::exit_group(reaped);
    }
    match syscall::wait4(init as i32, 0) {
        Ok((_, status)) if status.exited() => {
            println!(
                "pid-namespace init: exited after reaping {}",
                status.exit_status()
            );
            0
        }
        Ok((_, status)) => {
            println!(
                "pid-namespace init: killed by signal {}",
                status.term_signal()
            );
            1
        }
        Err(e) => {
            eprintln!("orphansig: wait4: {e}");
            1
        }
    }
}
