//! `harnessd`: serves the host harness protocol (`forkvm-protocol`) on the
//! virtio console until the host sends `Shutdown`, then exits 0 so the
//! script that started it goes on (the host runs `harnessd; poweroff`).
//! See `forkvm_user::harness` for what each request does.
#![no_std]
#![no_main]

use forkvm_user::harness::{End, FdLink, Server};
use forkvm_user::{entry, eprintln, forkvm};

entry!(main);

fn main(_args: &[&[u8]], _env: &[&[u8]]) -> i32 {
    let fd = match forkvm::vconsole_open() {
        Ok(fd) => fd,
        Err(e) => {
            eprintln!("harnessd: vconsole_open: {e}");
            return 1;
        }
    };
    match Server::new().serve(&mut FdLink(fd)) {
        Ok(End::Shutdown(_)) => 0,
        Ok(End::Eof) => {
            eprintln!("harnessd: the virtio console closed");
            1
        }
        Err(e) => {
            eprintln!("harnessd: virtio console: {e}");
            1
        }
    }
}
