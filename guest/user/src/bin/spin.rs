//! `spin`: computes forever in user mode without a single system call, so
//! only a timer interrupt (preemption) can take the CPU from it.
#![no_std]
#![no_main]

forkvm_user::entry!(main);

fn main(_args: &[&[u8]], _env: &[&[u8]]) -> i32 {
    let mut x = 0u64;
    loop {
        x = core::hint::black_box(x.wrapping_add(1));
    }
}
