//! Socket calls where no socket can be made: `socket` and `socketpair`
//! fail with Linux's errno for families no kernel has (EAFNOSUPPORT) and
//! bad types or flags (EINVAL, checked in Linux's order), and the calls
//! on a descriptor answer EBADF for a closed one and ENOTSOCK for a pipe,
//! after the argument checks Linux makes first.

use forkvm_user::syscall::{check, syscall6};

use super::*;

pub const SCENARIOS: &[(&str, Scenario)] = &[
    ("socket-create-errors", socket_create_errors),
    ("socket-calls-on-non-sockets", socket_calls_on_non_sockets),
];

use forkvm_user::syscall::nr::{ACCEPT, ACCEPT4, BIND, CONNECT, GETPEERNAME, GETSOCKNAME, GETSOCKOPT, LISTEN, RECVFROM, RECVMSG, SENDMSG, SENDTO, SETSOCKOPT, SHUTDOWN, SOCKET, SOCKETPAIR};
const SOCK_STREAM: usize = 1;
const SOCK_DGRAM: usize = 2;
/// `AF_MAX`: the first family number no kernel knows.
const AF_MAX: usize = 46;
/// `AF_IPX`, long gone from Linux.
const AF_IPX: usize = 4;
const AF_UNIX: usize = 1;
const KERNEL_ADDR: usize = 0xffff_8000_0000_0000;

fn sys(n: usize, a: [usize; 6]) -> Result<usize, Errno> {
    // SAFETY: the pointers passed are our own buffers or ones the kernel
    // must refuse.
    check(unsafe { syscall6(n, a[0], a[1], a[2], a[3], a[4], a[5]) })
}

fn socket_create_errors(_: &Ctx) -> Outcome {
    let minus_one = -1i64 as usize;
    let cases = [
        ("AF_MAX", sys(SOCKET, [AF_MAX, SOCK_STREAM, 0, 0, 0, 0]), Errno::EAFNOSUPPORT),
        ("family -1", sys(SOCKET, [minus_one, SOCK_STREAM, 0, 0, 0, 0]), Errno::EAFNOSUPPORT),
        ("AF_IPX", sys(SOCKET, [AF_IPX, SOCK_DGRAM, 0, 0, 0, 0]), Errno::EAFNOSUPPORT),
        ("type 11", sys(SOCKET, [AF_UNIX, 11, 0, 0, 0, 0]), Errno::EINVAL),
        ("AF_MAX type 11", sys(SOCKET, [AF_MAX, 11, 0, 0, 0, 0]), Errno::EAFNOSUPPORT),
        ("type flag 0x100", sys(SOCKET, [AF_MAX, SOCK_STREAM | 0x100, 0, 0, 0, 0]), Errno::EINVAL),
        (
            "socketpair AF_MAX",
            sys(SOCKETPAIR, [AF_MAX, SOCK_STREAM, 0, KERNEL_ADDR, 0, 0]),
            Errno::EFAULT,
        ),
        (
            "socketpair flag 0x100",
            sys(SOCKETPAIR, [AF_UNIX, SOCK_STREAM | 0x100, 0, KERNEL_ADDR, 0, 0]),
            Errno::EINVAL,
        ),
    ];
    for (what, got, want) in cases {
        ensure!(got == Err(want), "{what}: {got:?}, expected {want}");
    }
    // socketpair stores the two descriptors it reserved before it fails.
    let (r, w) = pipe()?;
    let lowest = r.raw();
    drop(r);
    let mut sv = [-7i32; 2];
    let got = sys(SOCKETPAIR, [AF_MAX, SOCK_STREAM, 0, sv.as_mut_ptr() as usize, 0, 0]);
    ensure!(got == Err(Errno::EAFNOSUPPORT), "socketpair AF_MAX: {got:?}");
    ensure!(sv[0] == lowest && sv[1] > lowest, "socketpair left {sv:?}, lowest free {lowest}");
    drop(w);
    Ok(())
}

fn socket_calls_on_non_sockets(_: &Ctx) -> Outcome {
    let (r, _w) = pipe()?;
    let fd = r.raw() as usize;
    let bad = 999usize;
    let mut buf = [0u8; 128];
    let b = buf.as_mut_ptr() as usize;
    let cases = [
        ("connect", sys(CONNECT, [fd, b, 16, 0, 0, 0]), Errno::ENOTSOCK),
        ("connect closed fd", sys(CONNECT, [bad, b, 16, 0, 0, 0]), Errno::EBADF),
        ("connect addrlen 129", sys(CONNECT, [fd, b, 129, 0, 0, 0]), Errno::EINVAL),
        ("connect bad address", sys(CONNECT, [fd, KERNEL_ADDR, 16, 0, 0, 0]), Errno::EFAULT),
        ("bind", sys(BIND, [fd, b, 16, 0, 0, 0]), Errno::ENOTSOCK),
        ("bind closed fd", sys(BIND, [bad, b, 200, 0, 0, 0]), Errno::EBADF),
        ("listen", sys(LISTEN, [fd, 5, 0, 0, 0, 0]), Errno::ENOTSOCK),
        ("listen fd -1", sys(LISTEN, [usize::MAX, 5, 0, 0, 0, 0]), Errno::EBADF),
        ("accept", sys(ACCEPT, [fd, 0, 0, 0, 0, 0]), Errno::ENOTSOCK),
        ("accept4 bad flags", sys(ACCEPT4, [fd, 0, 0, 1, 0, 0]), Errno::EINVAL),
        ("accept4 closed fd, bad flags", sys(ACCEPT4, [bad, 0, 0, 1, 0, 0]), Errno::EBADF),
        ("accept4", sys(ACCEPT4, [fd, 0, 0, 0, 0, 0]), Errno::ENOTSOCK),
        ("sendto", sys(SENDTO, [fd, b, 1, 0, 0, 0]), Errno::ENOTSOCK),
        ("sendto closed fd", sys(SENDTO, [bad, b, 1, 0, 0, 0]), Errno::EBADF),
        ("sendto kernel buffer", sys(SENDTO, [bad, KERNEL_ADDR, 1, 0, 0, 0]), Errno::EFAULT),
        ("recvfrom", sys(RECVFROM, [fd, b, 1, 0, 0, 0]), Errno::ENOTSOCK),
        ("sendmsg", sys(SENDMSG, [fd, 0, 0, 0, 0, 0]), Errno::ENOTSOCK),
        ("sendmsg compat flag", sys(SENDMSG, [bad, 0, 0x8000_0000, 0, 0, 0]), Errno::EINVAL),
        ("recvmsg", sys(RECVMSG, [fd, 0, 0, 0, 0, 0]), Errno::ENOTSOCK),
        ("recvmsg closed fd", sys(RECVMSG, [bad, 0, 0, 0, 0, 0]), Errno::EBADF),
        ("shutdown", sys(SHUTDOWN, [fd, 2, 0, 0, 0, 0]), Errno::ENOTSOCK),
        ("getsockname", sys(GETSOCKNAME, [fd, b, b + 64, 0, 0, 0]), Errno::ENOTSOCK),
        ("getpeername", sys(GETPEERNAME, [bad, b, b + 64, 0, 0, 0]), Errno::EBADF),
        ("setsockopt", sys(SETSOCKOPT, [fd, 1, 2, b, 4, 0]), Errno::ENOTSOCK),
        ("setsockopt optlen -1", sys(SETSOCKOPT, [fd, 1, 2, b, usize::MAX, 0]), Errno::ENOTSOCK),
        ("setsockopt closed fd", sys(SETSOCKOPT, [bad, 1, 2, b, usize::MAX, 0]), Errno::EBADF),
        ("getsockopt", sys(GETSOCKOPT, [fd, 1, 2, b, b + 64, 0]), Errno::ENOTSOCK),
        ("getsockopt closed fd", sys(GETSOCKOPT, [bad, 1, 2, b, b + 64, 0]), Errno::EBADF),
    ];
    for (what, got, want) in cases {
        ensure!(got == Err(want), "{what}: {got:?}, expected {want}");
    }
    Ok(())
}
