//! `hello [ARG...]`: prints `hello from pid N` and `argv: ARG0 ARG1 ...`,
//! exits 0. The first program to try on a new kernel: it needs only the
//! initial stack, `getpid`, one `write` and `exit_group`.
#![no_std]
#![no_main]

use core::fmt::Write;

use forkvm_user::io::{BufWriter, Bytes, STDOUT};
use forkvm_user::{entry, syscall};

entry!(main);

fn main(args: &[&[u8]], _env: &[&[u8]]) -> i32 {
    let mut out = BufWriter::<1024>::new(STDOUT);
    let _ = writeln!(out, "hello from pid {}", syscall::getpid());
    let _ = out.write_str("argv:");
    for arg in args {
        let _ = write!(out, " {}", Bytes(arg));
    }
    let _ = out.write_str("\n");
    match out.flush() {
        Ok(()) => 0,
        Err(_) => 1,
    }
}
