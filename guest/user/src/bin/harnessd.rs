//! `harnessd`: serves the host harness protocol (`forkvm-protocol`) on the
//! virtio console until the host sends `Shutdown`, then exits 0 so the
//! script that started it goes on (the host runs `harnessd; poweroff`).
//! See `forkvm_user::harness` for what each request does.
//!
//! It is also the `/init` of a Linux guest (`forkvm_user::linux_init`):
//! as pid 1 under Linux, where forkvm's `vconsole_open` does not exist, it
//! serves on `/dev/hvc0` and powers the machine off at the end.
#![no_std]
#![no_main]

use forkvm_user::errno::Errno;
use forkvm_user::harness::{End, FdLink, Server};
use forkvm_user::{entry, eprintln, forkvm, linux_init};

entry!(main);

fn main(_args: &[&[u8]], _env: &[&[u8]]) -> i32 {
    let (fd, linux_init) = match forkvm::vconsole_open() {
        Ok(fd) => (fd, false),
        Err(Errno::ENOSYS) => match linux_init::open_console() {
            Ok(fd) => (fd, true),
            // Not a Linux guest's init: say what was missing.
            Err(Errno::ENOSYS) => {
                eprintln!("harnessd: vconsole_open: {}", Errno::ENOSYS);
                return 1;
            }
            Err(e) => {
                eprintln!("harnessd: /dev/hvc0 of the Linux guest: {e}");
                return end_linux_guest(1);
            }
        },
        Err(e) => {
            eprintln!("harnessd: vconsole_open: {e}");
            return 1;
        }
    };
    let status = match Server::new().serve(&mut FdLink(fd)) {
        Ok(End::Shutdown(_)) => 0,
        Ok(End::Eof) => {
            eprintln!("harnessd: the virtio console closed");
            1
        }
        Err(e) => {
            eprintln!("harnessd: virtio console: {e}");
            1
        }
    };
    if linux_init {
        return end_linux_guest(status);
    }
    status
}

/// The end of a Linux guest's init: power off (an init that returned
/// would make Linux panic).
fn end_linux_guest(status: i32) -> i32 {
    let e = linux_init::power_off();
    eprintln!("harnessd: power-off refused: {e}");
    status
}
