//! `init [-c SCRIPT]`: pid 1. Starts the shell as its child — `sh`
//! (interactive), or `sh -c SCRIPT` — and then does nothing but reap: every
//! child that ends, the shell's and the orphans the kernel hands to pid 1,
//! is waited for at once (a blocking `wait4(-1, __WALL)` loop, whatever its
//! exit signal), so zombies never pile up while a long command runs. When the shell ends, init exits with its
//! status (128 + the signal if it was killed) and the VM powers off with it.
//! If the shell cannot be executed: `init: cannot run sh: ENAME`, exit 1.
//!
//! `sh` is executed by name (the forkvm kernel finds its embedded programs
//! by name). If there is no such file, as on the host's Linux, init tries
//! the `sh` next to itself and passes that path as the shell's `argv[0]`,
//! so the shell finds the other programs there too.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;

use forkvm_user::exec::ExecImage;
use forkvm_user::shell_parse::{shell_status, sibling_dir, ErrName};
use forkvm_user::syscall::{exit_group, fork, wait4, Pid, WALL};
use forkvm_user::{entry, eprintln, Errno};

entry!(main);

fn main(args: &[&[u8]], env: &[&[u8]]) -> i32 {
    let script = match args.get(1..).unwrap_or(&[]) {
        [] => None,
        [b"-c", script] => Some(*script),
        _ => {
            eprintln!("usage: init [-c SCRIPT]");
            return 2;
        }
    };
    let own = args.first().copied().unwrap_or_default();
    let shell = match fork() {
        Ok(0) => exec_shell(own, script, env),
        Ok(pid) => pid,
        Err(e) => {
            eprintln!("init: cannot start sh: fork: {}", ErrName(e));
            return 1;
        }
    };
    reap_until(shell)
}

/// In the child: becomes the shell; returns only by exiting 1.
fn exec_shell(own: &[u8], script: Option<&[u8]>, env: &[&[u8]]) -> ! {
    let exec = |path: &[u8]| {
        let mut argv: Vec<&[u8]> = Vec::with_capacity(3);
        argv.push(path);
        if let Some(script) = script {
            argv.extend([&b"-c"[..], script]);
        }
        // No fallback inside ExecImage: argv[0] must follow the path.
        ExecImage::new(path, &argv, env, b"").exec()
    };
    let mut error = exec(b"sh");
    if error == Errno::ENOENT {
        if let Some(dir) = sibling_dir(own, b"sh") {
            error = exec(&[dir, b"sh"].concat());
        }
    }
    eprintln!("init: cannot run sh: {}", ErrName(error));
    exit_group(1)
}

/// Reaps every child as it ends until the shell (`shell`) has; returns the
/// shell's status.
fn reap_until(shell: Pid) -> i32 {
    loop {
        match wait4(-1, WALL) {
            Ok((pid, status)) if pid == shell => return shell_status(status),
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => {
                // ECHILD would mean the shell is gone without a status.
                eprintln!("init: wait4: {}", ErrName(e));
                return 1;
            }
        }
    }
}
