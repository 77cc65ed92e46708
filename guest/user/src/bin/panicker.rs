//! `panicker [MESSAGE]`: panics with MESSAGE (default `on purpose`), to test
//! that a user-mode panic prints `panic: MESSAGE` on stderr and ends the
//! process with status 134.
#![no_std]
#![no_main]

use forkvm_user::io::Bytes;

forkvm_user::entry!(main);

fn main(args: &[&[u8]], _env: &[&[u8]]) -> i32 {
    match args.get(1) {
        Some(message) => panic!("{}", Bytes(message)),
        None => panic!("on purpose"),
    }
}
