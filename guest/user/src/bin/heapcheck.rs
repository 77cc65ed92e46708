//! `heapcheck`: exercises the `heap` allocator (small classes, reuse, large
//! mappings, over-aligned blocks, growth by realloc) and prints
//! `heapcheck ok`; panics (status 134) on any mismatch.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

use forkvm_user::{entry, println};

entry!(main);

#[repr(align(8192))]
struct Aligned([u8; 100]);

fn main(_args: &[&[u8]], _env: &[&[u8]]) -> i32 {
    let mut map = BTreeMap::new();
    for i in 0..5000u32 {
        map.insert(i, i * 3);
    }
    assert_eq!(
        map.values().map(|&v| u64::from(v)).sum::<u64>(),
        3 * 4999 * 5000 / 2
    );

    let mut s = String::new();
    for i in 0..2000 {
        write!(s, "{i},").unwrap();
    }
    assert!(s.starts_with("0,1,2,") && s.ends_with("1999,"));

    let mut v: Vec<u64> = Vec::new();
    for i in 0..1_000_000 {
        v.push(i);
    }
    assert_eq!(v.iter().sum::<u64>(), 999_999 * 1_000_000 / 2);
    drop(v);

    let boxes: Vec<Box<Aligned>> = (0..8).map(|_| Box::new(Aligned([7; 100]))).collect();
    for b in &boxes {
        assert_eq!(&**b as *const Aligned as usize % 8192, 0);
        assert_eq!(b.0[99], 7);
    }
    drop(boxes);

    for round in 0..100u8 {
        let blocks: Vec<Vec<u8>> = (1..200).map(|n| alloc::vec![round; n * 7]).collect();
        for (n, b) in blocks.iter().enumerate() {
            assert!(b.len() == (n + 1) * 7 && b.iter().all(|&x| x == round));
        }
    }
    println!("heapcheck ok");
    0
}
