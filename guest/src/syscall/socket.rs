//! Sockets. The guest has no network and registers no protocol family, so
//! `socket` and `socketpair` end where Linux's `__sock_create` ends for a
//! family nobody registered: EAFNOSUPPORT, after Linux's earlier checks
//! (flags, family range, type range; for socketpair, the two descriptors
//! reserved and stored first). No descriptor is ever a socket, so the
//! calls that take one answer EBADF for a bad descriptor and ENOTSOCK for
//! any other, after the checks Linux makes before looking it up (net/socket.c).

use alloc::sync::Arc;

use super::{current_mm, Args, SysResult};
use crate::errno::{EAFNOSUPPORT, EBADF, EFAULT, EINVAL, EMFILE, ENOTSOCK};
use crate::fs::file::{O_NONBLOCK, O_PATH};
use crate::fs::{File, FileKind};
use crate::mm::vma::TASK_SIZE;
use crate::process::files::NR_OPEN;
use crate::sched;

/// Linux `AF_MAX` (`NPROTO`): families at or above it are EAFNOSUPPORT.
const AF_MAX: i32 = 46;
/// Linux `SOCK_MAX`: types at or above it are EINVAL.
const SOCK_MAX: i32 = 11;
const SOCK_TYPE_MASK: i32 = 0xf;
const SOCK_CLOEXEC: i32 = 0o2_000_000;
/// `struct sockaddr_storage`: the largest address a call copies in.
const SOCKADDR_STORAGE_SIZE: i32 = 128;
/// Linux `MAX_RW_COUNT`: the most bytes one send or receive takes.
const MAX_RW_COUNT: u64 = (i32::MAX as u64) & !0xfff;
const MSG_CMSG_COMPAT: u32 = 0x8000_0000;

/// The type's flag bits (SOCK_CLOEXEC, SOCK_NONBLOCK) and the type itself,
/// checked as `__sys_socket_create` does.
fn socket_type(type_: i32) -> Result<i32, i32> {
    let flags = type_ & !SOCK_TYPE_MASK;
    if flags & !(SOCK_CLOEXEC | O_NONBLOCK as i32) != 0 {
        return Err(EINVAL);
    }
    Ok(type_ & SOCK_TYPE_MASK)
}

/// Linux `__sock_create` with no family registered.
fn sock_create(family: i32, type_: i32) -> Result<u64, i32> {
    if !(0..AF_MAX).contains(&family) {
        return Err(EAFNOSUPPORT);
    }
    if type_ >= SOCK_MAX {
        return Err(EINVAL);
    }
    Err(EAFNOSUPPORT)
}

/// `socket(family, type, protocol)`.
pub fn socket(a: Args) -> SysResult {
    let type_ = socket_type(a.0[1] as i32)?;
    sock_create(a.0[0] as i32, type_)
}

/// `socketpair(family, type, protocol, sv)`: as Linux, the two lowest
/// free descriptors are reserved and written to `sv` before the sockets
/// are created (so a bad `sv` is EFAULT, and a failed call leaves their
/// numbers there).
pub fn socketpair(a: Args) -> SysResult {
    let [family, type_, _protocol, sv, ..] = a.0;
    let type_ = socket_type(type_ as i32)?;
    let free = {
        let files = sched::current().files().ok_or(EBADF)?;
        let files = files.lock();
        let mut open: alloc::vec::Vec<u64> = files.open_fds().map(|(fd, _)| fd).collect();
        open.sort_unstable();
        let mut free = [0u64; 2];
        let mut candidate = 0;
        for slot in &mut free {
            while open.binary_search(&candidate).is_ok() {
                candidate += 1;
            }
            *slot = candidate;
            candidate += 1;
        }
        free
    };
    if free.iter().any(|&fd| fd >= NR_OPEN as u64) {
        return Err(EMFILE);
    }
    let mm = current_mm()?;
    for (i, fd) in free.iter().enumerate() {
        mm.copy_to_user(sv + 4 * i as u64, &(*fd as u32).to_le_bytes())?;
    }
    sock_create(family as i32, type_)
}

/// The descriptor `fd` (an `int`): EBADF if it is not open or O_PATH
/// (Linux `fdget`).
fn fdget(fd: u64) -> Result<Arc<File>, i32> {
    let fd = fd as i32;
    if fd < 0 {
        return Err(EBADF);
    }
    let file = sched::current()
        .files()
        .ok_or(EBADF)?
        .lock()
        .get(fd as u64)?;
    if matches!(&file.kind, FileKind::Vfs(open) if open.flags() & O_PATH != 0) {
        return Err(EBADF);
    }
    Ok(file)
}

/// Linux `sockfd_lookup_light`: EBADF, else ENOTSOCK (nothing is a socket).
fn sockfd_lookup(fd: u64) -> Result<u64, i32> {
    fdget(fd)?;
    Err(ENOTSOCK)
}

/// Linux `move_addr_to_kernel`: EINVAL for a length out of range, EFAULT
/// for an address it cannot read.
fn move_addr_to_kernel(addr: u64, len: u64) -> Result<(), i32> {
    let len = len as i32;
    if !(0..=SOCKADDR_STORAGE_SIZE).contains(&len) {
        return Err(EINVAL);
    }
    if len == 0 {
        return Ok(());
    }
    let mut buf = [0u8; SOCKADDR_STORAGE_SIZE as usize];
    current_mm()?
        .copy_from_user(addr, &mut buf[..len as usize])
        .map_err(|_| EFAULT)
}

/// Linux `import_ubuf`'s check of a send or receive buffer (`access_ok`).
fn check_buffer(buf: u64, len: u64) -> Result<(), i32> {
    let len = len.min(MAX_RW_COUNT);
    if buf.checked_add(len).is_none_or(|end| end > TASK_SIZE) {
        return Err(EFAULT);
    }
    Ok(())
}

/// `connect(fd, addr, addrlen)`: the address is read before the socket is
/// looked up.
pub fn connect(a: Args) -> SysResult {
    fdget(a.0[0])?;
    move_addr_to_kernel(a.0[1], a.0[2])?;
    Err(ENOTSOCK)
}

/// bind, listen, shutdown, getsockname, getpeername: the socket first
/// (the address of bind is read only once the socket is found).
pub fn by_socket_fd(a: Args) -> SysResult {
    sockfd_lookup(a.0[0])
}

/// `accept4(fd, addr, addrlen, flags)` (`accept` has flags 0): the
/// descriptor, then the flags (`__sys_accept4_file`), then the socket.
pub fn accept4(a: Args) -> SysResult {
    fdget(a.0[0])?;
    let flags = a.0[3] as i32;
    if flags & !(SOCK_CLOEXEC | O_NONBLOCK as i32) != 0 {
        return Err(EINVAL);
    }
    Err(ENOTSOCK)
}

/// `sendto` / `recvfrom(fd, buf, len, flags, addr, addrlen)`: the buffer
/// is checked first.
pub fn sendto_recvfrom(a: Args) -> SysResult {
    check_buffer(a.0[1], a.0[2])?;
    sockfd_lookup(a.0[0])
}

/// `sendmsg` / `recvmsg(fd, msg, flags)`.
pub fn sendmsg_recvmsg(a: Args) -> SysResult {
    if a.0[2] as u32 & MSG_CMSG_COMPAT != 0 {
        return Err(EINVAL);
    }
    sockfd_lookup(a.0[0])
}

/// `setsockopt` / `getsockopt(fd, level, name, value, len)`: the socket
/// first; the length is the protocol's business (`do_sock_setsockopt`).
pub fn sockopt(a: Args) -> SysResult {
    sockfd_lookup(a.0[0])
}
