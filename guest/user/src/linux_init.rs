//! What `harnessd` needs to be the `/init` of a Linux guest (the reference
//! kernel of `forkbench compare --reference linux-vm`): as pid 1 of a
//! Linux kernel it mounts `/proc` and `/dev` (devtmpfs), loads the
//! kernel modules the archive carries (`/modules/order` names them in
//! load order, `/modules/NAME.ko`; each gets its `NAME.param=value`
//! arguments from the kernel command line, as modprobe would pass them),
//! opens the virtio console `/dev/hvc0` in raw mode (a tty would otherwise
//! echo and translate the protocol's bytes), and at the end powers the
//! machine off (an init that exits makes Linux panic).

extern crate alloc as alloc_crate;

use alloc_crate::vec::Vec;
use core::ffi::CStr;

use crate::errno::Errno;
use crate::syscall::{self, check, nr, syscall3, syscall5, Timespec};
use forkvm_abi::linux::fcntl::{O_CLOEXEC, O_NOCTTY, O_RDONLY, O_RDWR};

/// The virtio console's tty.
const CONSOLE: &CStr = c"/dev/hvc0";
/// How long the console may take to appear (the driver probes, then
/// devtmpfs creates the node).
const CONSOLE_WAIT_MS: u32 = 10_000;

/// Opens the virtio console of a Linux guest whose init this process is,
/// after mounting `/proc` and `/dev` and loading `/modules`; `ENOSYS` when
/// this process is not pid 1 (it is not a guest's init: a host's
/// `/dev/hvc0` is left alone).
pub fn open_console() -> Result<i32, Errno> {
    if syscall::getpid() != 1 {
        return Err(Errno::ENOSYS);
    }
    // Each step to the console: a guest that stops shows where.
    crate::eprintln!("harnessd: Linux's init: mounting /proc and /dev");
    mount_once(c"proc", c"/proc", c"proc")?;
    mount_once(c"devtmpfs", c"/dev", c"devtmpfs")?;
    crate::eprintln!("harnessd: loading /modules");
    load_modules()?;
    crate::eprintln!("harnessd: opening /dev/hvc0");
    let mut waited = 0;
    let fd = loop {
        match open(CONSOLE, O_RDWR | O_NOCTTY | O_CLOEXEC) {
            Ok(fd) => break fd,
            Err(e) if waited >= CONSOLE_WAIT_MS => return Err(e),
            Err(_) => {
                let _ = syscall::nanosleep(Timespec::from_nanos(10_000_000));
                waited += 10;
            }
        }
    };
    make_raw(fd)?;
    crate::eprintln!("harnessd: serving on /dev/hvc0");
    Ok(fd)
}

/// Powers the Linux guest off (its VMM then exits with status 0); returns
/// only if Linux refused.
pub fn power_off() -> Errno {
    // SAFETY: no arguments.
    unsafe { syscall::syscall0(nr::SYNC) };
    crate::forkvm::poweroff(0)
}

fn open(path: &CStr, flags: u32) -> Result<i32, Errno> {
    syscall::openat(syscall::AT_FDCWD, path, flags, 0)
}

/// Mounts `fstype` at `target` (made if missing); already mounted is fine.
fn mount_once(source: &CStr, target: &CStr, fstype: &CStr) -> Result<(), Errno> {
    match syscall::mkdir(target, 0o755) {
        Ok(()) | Err(Errno::EEXIST) => {}
        Err(e) => return Err(e),
    }
    // SAFETY: the strings are NUL-terminated and outlive the call; no data.
    let ret = unsafe {
        syscall5(
            nr::MOUNT,
            source.as_ptr() as usize,
            target.as_ptr() as usize,
            fstype.as_ptr() as usize,
            0,
            0,
        )
    };
    match check(ret) {
        Ok(_) | Err(Errno::EBUSY) => Ok(()),
        Err(e) => Err(e),
    }
}

/// The whole of a small file (`None` if it does not exist).
fn read_file(path: &CStr) -> Result<Option<Vec<u8>>, Errno> {
    let fd = match open(path, O_RDONLY | O_CLOEXEC) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut data = Vec::new();
    let mut chunk = [0u8; 512];
    let result = loop {
        match syscall::read(fd, &mut chunk) {
            Ok(0) => break Ok(Some(data)),
            Ok(n) => data.extend_from_slice(&chunk[..n]),
            Err(Errno::EINTR) => {}
            Err(e) => break Err(e),
        }
    };
    let _ = syscall::close(fd);
    result
}

/// The `module.param=value` words of `cmdline` for `module` (`-` and `_`
/// alike in the name, as Linux treats them), as `param=value` separated
/// by spaces.
pub fn module_params(cmdline: &[u8], module: &[u8]) -> Vec<u8> {
    let same = |a: u8, b: u8| a == b || (matches!(a, b'-' | b'_') && matches!(b, b'-' | b'_'));
    let mut params = Vec::new();
    for word in cmdline.split(|b| b.is_ascii_whitespace()) {
        let Some(dot) = word.iter().position(|&b| b == b'.') else {
            continue;
        };
        let (name, rest) = (&word[..dot], &word[dot + 1..]);
        if name.len() == module.len() && name.iter().zip(module).all(|(&a, &b)| same(a, b)) {
            if !params.is_empty() {
                params.push(b' ');
            }
            params.extend_from_slice(rest);
        }
    }
    params
}

/// Loads each module `/modules/order` names, in that order.
fn load_modules() -> Result<(), Errno> {
    let Some(order) = read_file(c"/modules/order")? else {
        return Ok(());
    };
    let cmdline = read_file(c"/proc/cmdline")?.unwrap_or_default();
    for name in order
        .split(|b| b.is_ascii_whitespace())
        .filter(|n| !n.is_empty())
    {
        let mut path = Vec::from(&b"/modules/"[..]);
        path.extend_from_slice(name);
        path.extend_from_slice(b".ko\0");
        let path = CStr::from_bytes_with_nul(&path).map_err(|_| Errno::EINVAL)?;
        let fd = open(path, O_RDONLY | O_CLOEXEC)?;
        let mut params = module_params(&cmdline, name);
        params.push(0);
        // SAFETY: `params` is NUL-terminated and outlives the call.
        let ret = unsafe { syscall3(nr::FINIT_MODULE, fd as usize, params.as_ptr() as usize, 0) };
        let _ = syscall::close(fd);
        match check(ret) {
            Ok(_) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The kernel's `struct termios` (x86-64).
#[repr(C)]
#[derive(Default)]
struct Termios {
    iflag: u32,
    oflag: u32,
    cflag: u32,
    lflag: u32,
    line: u8,
    cc: [u8; 19],
}

const TCGETS: usize = 0x5401;
const TCSETS: usize = 0x5402;
const TCFLSH: usize = 0x540b;
const TCIOFLUSH: usize = 2;

/// cfmakeraw: no input translation, echo, signals or output processing;
/// 8-bit characters; a read returns as soon as one byte is there. Then
/// both queues are flushed: what arrived while the tty was still cooked
/// (echoed, CR translated) is gone, and the host, which repeats its first
/// `Hello` until answered, is not confused by its own echo.
fn make_raw(fd: i32) -> Result<(), Errno> {
    const IGNBRK: u32 = 0o1;
    const BRKINT: u32 = 0o2;
    const PARMRK: u32 = 0o10;
    const ISTRIP: u32 = 0o40;
    const INLCR: u32 = 0o100;
    const IGNCR: u32 = 0o200;
    const ICRNL: u32 = 0o400;
    const IXON: u32 = 0o2000;
    const OPOST: u32 = 0o1;
    const ISIG: u32 = 0o1;
    const ICANON: u32 = 0o2;
    const ECHO: u32 = 0o10;
    const ECHONL: u32 = 0o100;
    const IEXTEN: u32 = 0o100000;
    const CSIZE: u32 = 0o60;
    const CS8: u32 = 0o60;
    const PARENB: u32 = 0o400;
    const VTIME: usize = 5;
    const VMIN: usize = 6;
    let mut t = Termios::default();
    // SAFETY: the kernel writes one `struct termios` into `t`.
    check(unsafe {
        syscall3(
            nr::IOCTL,
            fd as usize,
            TCGETS,
            &mut t as *mut Termios as usize,
        )
    })?;
    t.iflag &= !(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON);
    t.oflag &= !OPOST;
    t.lflag &= !(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
    t.cflag &= !(CSIZE | PARENB);
    t.cflag |= CS8;
    t.cc[VMIN] = 1;
    t.cc[VTIME] = 0;
    // SAFETY: the kernel reads one `struct termios` from `t`.
    check(unsafe {
        syscall3(
            nr::IOCTL,
            fd as usize,
            TCSETS,
            &t as *const Termios as usize,
        )
    })?;
    // SAFETY: no memory is passed.
    check(unsafe { syscall3(nr::IOCTL, fd as usize, TCFLSH, TCIOFLUSH) }).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_modules_words_are_picked_from_the_command_line() {
        let cmdline = b"console=ttyS0 virtio_mmio.device=4K@0xd0000000:5 quiet virtio-mmio.x=1 \
                        virtio_console.y=2 virtio_mmiox.z=3\n";
        assert_eq!(
            module_params(cmdline, b"virtio_mmio"),
            b"device=4K@0xd0000000:5 x=1".to_vec()
        );
        assert_eq!(module_params(cmdline, b"virtio_console"), b"y=2".to_vec());
        assert!(module_params(cmdline, b"virtio").is_empty());
    }
}
