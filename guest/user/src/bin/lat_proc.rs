//! `lat_proc OP [--iters N] [--mem MIB]`: the cost
//! of one create + exit + reap cycle, timed in user mode with the TSC (see
//! `forkvm_user::latency` for what each operation does; the shell's `bench`
//! runs the same measurement).
//!
//! Prints `bench <op> iters=N min_cycles=.. median_cycles=.. p90_cycles=..
//! max_cycles=..`: TSC cycles, since user space does not know the TSC rate.
//! A failing system call prints `lat_proc: <what>: <ERRNAME> <n>` and exits
//! 1; bad usage prints the reason and the usage on stderr and exits 2.
#![no_std]
#![no_main]

use forkvm_user::latency::{measure, parse_args, USAGE_ARGS};
use forkvm_user::{entry, eprintln, println};

entry!(main);

fn main(args: &[&[u8]], _env: &[&[u8]]) -> i32 {
    let options = match parse_args(args.get(1..).unwrap_or(&[])) {
        Ok(options) => options,
        Err(e) => {
            eprintln!("lat_proc: {e}\nusage: lat_proc {USAGE_ARGS}");
            return 2;
        }
    };
    match measure(&options) {
        Ok(s) => {
            println!(
                "bench {} iters={} min_cycles={} median_cycles={} p90_cycles={} max_cycles={}",
                options.op.name(),
                options.iters,
                s.min,
                s.median,
                s.p90,
                s.max
            );
            0
        }
        Err(e) => {
            eprintln!("lat_proc: {e}");
            1
        }
    }
}
