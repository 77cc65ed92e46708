//! `spin`: computes forever in user mode without a single system call, so
//! only a timer interrupt (preemption) can take the CPU from it.
//!
//! `spin pair ROUNDS`: forks two CPU-bound children that each compute
//! ROUNDS rounds (about a million additions each), asking `getcpu` after
//! every round, and print `spin child N: ROUNDS rounds, mostly on cpu C
//! (K rounds), cpus seen MASK`; the parent waits for both and prints
//! `spin pair: both done`. On two idle CPUs the children run side by side,
//! one on each (tests/smp.rs).
#![no_std]
#![no_main]

use forkvm_user::{println, sched, syscall};

forkvm_user::entry!(main);

fn main(args: &[&[u8]], _env: &[&[u8]]) -> i32 {
    match args.get(1..) {
        Some([]) | None => spin_forever(),
        Some([b"pair", rounds]) => match parse(rounds) {
            Some(rounds) if rounds > 0 => pair(rounds),
            _ => usage(),
        },
        Some(_) => usage(),
    }
}

fn usage() -> i32 {
    println!("usage: spin [pair ROUNDS]");
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
