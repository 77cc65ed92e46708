//! `init [-c SCRIPT]`: pid 1. Becomes the shell: `sh` (interactive), or
//! `sh -c SCRIPT`, in the same process (the shell reaps the orphans pid 1
//! inherits, and when it exits the VM powers off with its status). If the
//! shell cannot be executed: `init: cannot run sh: ENAME`, exit 1.
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
use forkvm_user::shell_parse::{sibling_dir, ErrName};
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
        let own = args.first().copied().unwrap_or_default();
        if let Some(dir) = sibling_dir(own, b"sh") {
            error = exec(&[dir, b"sh"].concat());
        }
    }
    eprintln!("init: cannot run sh: {}", ErrName(error));
    1
}
