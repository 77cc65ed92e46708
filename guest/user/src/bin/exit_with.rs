//! `exit_with [STATUS]`: exits with STATUS (decimal, default 0), to test that
//! an exit status travels from `exit_group` through `wait4` to the parent.
#![no_std]
#![no_main]

use forkvm_user::io::Bytes;
use forkvm_user::{entry, eprintln};

entry!(main);

fn main(args: &[&[u8]], _env: &[&[u8]]) -> i32 {
    let Some(arg) = args.get(1) else { return 0 };
    match core::str::from_utf8(arg)
        .ok()
        .and_then(|s| s.parse::<i32>().ok())
    {
        Some(status) => status,
        None => {
            eprintln!("exit_with: not a decimal number: {}", Bytes(arg));
            2
        }
    }
}
