//! Linux x86-64 system calls, raw and typed.
//!
//! Programs use nothing but the `syscall` instruction (no libc, no vDSO), so
//! the kernel they run on needs to implement exactly the calls they make and
//! nothing else; `nr` (`forkvm_abi::linux::nr`, shared with the kernel)
//! numbers them.
//!
//! Register convention: `rax` = number, arguments in `rdi`, `rsi`, `rdx`,
//! `r10`, `r8`, `r9`; the result comes back in `rax`, and the instruction
//! itself overwrites `rcx` (return RIP) and `r11` (saved RFLAGS). A result in
//! `-4095..=-1` is a negated errno.

use core::arch::asm;
use core::ffi::CStr;

use crate::errno::Errno;

/// Linux x86-64 system-call numbers (`arch/x86/entry/syscalls/syscall_64.tbl`).
pub use forkvm_abi::linux::nr;

/// Raw system call with no arguments.
///
/// # Safety
/// The call must not break any invariant the program relies on (for example
/// `munmap` of memory still in use); the kernel validates the rest.
#[inline(always)]
pub unsafe fn syscall0(n: usize) -> isize {
    let ret: isize;
    // SAFETY: the `syscall` instruction clobbers only rax (result), rcx and
    // r11; the caller vouches for the call's effect on memory.
    unsafe {
        asm!("syscall", inlateout("rax") n as isize => ret, lateout("rcx") _, lateout("r11") _,
             options(nostack));
    }
    ret
}

/// Raw system call with one argument. See [`syscall0`].
///
/// # Safety
/// As for [`syscall0`].
#[inline(always)]
pub unsafe fn syscall1(n: usize, a1: usize) -> isize {
    let ret: isize;
    // SAFETY: as in syscall0.
    unsafe {
        asm!("syscall", inlateout("rax") n as isize => ret, in("rdi") a1,
             lateout("rcx") _, lateout("r11") _, options(nostack));
    }
    ret
}

/// Raw system call with two arguments. See [`syscall0`].
///
/// # Safety
/// As for [`syscall0`].
#[inline(always)]
pub unsafe fn syscall2(n: usize, a1: usize, a2: usize) -> isize {
    let ret: isize;
    // SAFETY: as in syscall0.
    unsafe {
        asm!("syscall", inlateout("rax") n as isize => ret, in("rdi") a1, in("rsi") a2,
             lateout("rcx") _, lateout("r11") _, options(nostack));
    }
    ret
}

/// Raw system call with three arguments. See [`syscall0`].
///
/// # Safety
/// As for [`syscall0`].
#[inline(always)]
pub unsafe fn syscall3(n: usize, a1: usize, a2: usize, a3: usize) -> isize {
    let ret: isize;
    // SAFETY: as in syscall0.
    unsafe {
        asm!("syscall", inlateout("rax") n as isize => ret, in("rdi") a1, in("rsi") a2,
             in("rdx") a3, lateout("rcx") _, lateout("r11") _, options(nostack));
    }
    ret
}

/// Raw system call with four arguments (the fourth goes in `r10`, not `rcx`).
///
/// # Safety
/// As for [`syscall0`].
#[inline(always)]
pub unsafe fn syscall4(n: usize, a1: usize, a2: usize, a3: usize, a4: usize) -> isize {
    let ret: isize;
    // SAFETY: as in syscall0.
    unsafe {
        asm!("syscall", inlateout("rax") n as isize => ret, in("rdi") a1, in("rsi") a2,
             in("rdx") a3, in("r10") a4, lateout("rcx") _, lateout("r11") _,
             options(nostack));
    }
    ret
}

/// Raw system call with five arguments. See [`syscall4`].
///
/// # Safety
/// As for [`syscall0`].
#[inline(always)]
pub unsafe fn syscall5(n: usize, a1: usize, a2: usize, a3: usize, a4: usize, a5: usize) -> isize {
    let ret: isize;
    // SAFETY: as in syscall0.
    unsafe {
        asm!("syscall", inlateout("rax") n as isize => ret, in("rdi") a1, in("rsi") a2,
             in("rdx") a3, in("r10") a4, in("r8") a5, lateout("rcx") _, lateout("r11") _,
             options(nostack));
    }
    ret
}

/// Raw system call with six arguments. See [`syscall4`].
///
/// # Safety
/// As for [`syscall0`].
#[inline(always)]
pub unsafe fn syscall6(
    n: usize,
    a1: usize,
    a2: usize,
    a3: usize,
    a4: usize,
    a5: usize,
    a6: usize,
) -> isize {
    let ret: isize;
    // SAFETY: as in syscall0.
    unsafe {
        asm!("syscall", inlateout("rax") n as isize => ret, in("rdi") a1, in("rsi") a2,
             in("rdx") a3, in("r10") a4, in("r8") a5, in("r9") a6, lateout("rcx") _,
             lateout("r11") _, options(nostack));
    }
    ret
}

/// Turns a raw result into `Ok(value)` or `Err(errno)` (`-4095..=-1`).
#[inline]
pub fn check(ret: isize) -> Result<usize, Errno> {
    if (-4095..0).contains(&ret) {
        Err(Errno(-ret as i32))
    } else {
        Ok(ret as usize)
    }
}

/// A process or thread id.
pub type Pid = u32;

/// `write(2)`: writes some of `buf` to `fd`, returning how many bytes.
pub fn write(fd: i32, buf: &[u8]) -> Result<usize, Errno> {
    // SAFETY: the kernel only reads buf.len() bytes of a live slice.
    check(unsafe { syscall3(nr::WRITE, fd as usize, buf.as_ptr() as usize, buf.len()) })
}

/// Writes all of `buf` to `fd`, retrying after short writes and `EINTR`.
pub fn write_all(fd: i32, mut buf: &[u8]) -> Result<(), Errno> {
    while !buf.is_empty() {
        match write(fd, buf) {
            Ok(0) => return Err(Errno::EIO),
            Ok(n) => buf = &buf[n..],
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// `read(2)`: reads into `buf`, returning how many bytes (0 at end of file).
pub fn read(fd: i32, buf: &mut [u8]) -> Result<usize, Errno> {
    // SAFETY: the kernel writes at most buf.len() bytes into a live, exclusive slice.
    check(unsafe { syscall3(nr::READ, fd as usize, buf.as_mut_ptr() as usize, buf.len()) })
}

/// `close(2)`.
pub fn close(fd: i32) -> Result<(), Errno> {
    // SAFETY: closing a descriptor touches no memory of ours.
    check(unsafe { syscall1(nr::CLOSE, fd as usize) }).map(drop)
}

/// `dup2(2)`: makes `new` a copy of `old`, returning `new`.
pub fn dup2(old: i32, new: i32) -> Result<i32, Errno> {
    // SAFETY: touches no memory of ours.
    check(unsafe { syscall2(nr::DUP2, old as usize, new as usize) }).map(|fd| fd as i32)
}

/// `pipe2(2)`: returns `[read end, write end]`.
pub fn pipe2(flags: u32) -> Result<[i32; 2], Errno> {
    let mut fds = [0i32; 2];
    // SAFETY: the kernel writes two ints into the live local array.
    check(unsafe { syscall2(nr::PIPE2, fds.as_mut_ptr() as usize, flags as usize) })?;
    Ok(fds)
}

/// `getpid(2)`.
pub fn getpid() -> Pid {
    // SAFETY: touches no memory; cannot fail.
    unsafe { syscall0(nr::GETPID) as Pid }
}

/// `getppid(2)`.
pub fn getppid() -> Pid {
    // SAFETY: touches no memory; cannot fail.
    unsafe { syscall0(nr::GETPPID) as Pid }
}

/// `gettid(2)`.
pub fn gettid() -> Pid {
    // SAFETY: touches no memory; cannot fail.
    unsafe { syscall0(nr::GETTID) as Pid }
}

/// `getuid(2)`.
pub fn getuid() -> u32 {
    // SAFETY: touches no memory; cannot fail.
    unsafe { syscall0(nr::GETUID) as u32 }
}

/// `fork(2)`: `Ok(0)` in the child, `Ok(child pid)` in the parent.
///
/// Only the calling thread exists in the child; a lock another thread held
/// at the moment of the fork stays held there (this crate's allocator lock
/// included), so multi-threaded programs should only `exit`/`execve` in the
/// child.
pub fn fork() -> Result<Pid, Errno> {
    // SAFETY: the child gets a copy of our memory; nothing is shared.
    check(unsafe { syscall0(nr::FORK) }).map(|pid| pid as Pid)
}

/// `exit(2)`: ends the calling thread only (other threads of the group go on;
/// the last one to exit ends the process with this status).
#[inline(always)]
pub fn exit(status: i32) -> ! {
    // SAFETY: the thread ends here; nothing returns.
    unsafe {
        asm!("syscall", in("rax") nr::EXIT, in("rdi") status as isize as usize,
             options(noreturn, nostack));
    }
}

/// `exit_group(2)`: ends every thread of the process with `status & 0xff`.
#[inline(always)]
pub fn exit_group(status: i32) -> ! {
    // SAFETY: the process ends here; nothing returns.
    unsafe {
        asm!("syscall", in("rax") nr::EXIT_GROUP, in("rdi") status as isize as usize,
             options(noreturn, nostack));
    }
}

/// The wait status word and the `wait4`/`waitid` options (`WCLONE` and
/// `WALL` are Linux's `__WCLONE` and `__WALL`).
pub use forkvm_abi::linux::wait::{
    WaitStatus, __WALL as WALL, __WCLONE as WCLONE, WCONTINUED, WEXITED, WNOHANG, WNOWAIT,
    WSTOPPED, WUNTRACED,
};

/// `wait4(2)` without resource usage: waits for `pid` (-1: any child) and
/// returns its pid and status (pid 0 with `WNOHANG` if none is ready).
pub fn wait4(pid: i32, options: u32) -> Result<(Pid, WaitStatus), Errno> {
    let mut status = 0i32;
    // SAFETY: the kernel writes one int into the live local; rusage is NULL.
    let ret = unsafe {
        syscall4(
            nr::WAIT4,
            pid as isize as usize,
            &mut status as *mut i32 as usize,
            options as usize,
            0,
        )
    };
    check(ret).map(|pid| (pid as Pid, WaitStatus(status)))
}

/// `kill(2)`: sends `signal` to `pid`.
pub fn kill(pid: i32, signal: i32) -> Result<(), Errno> {
    // SAFETY: touches no memory of ours.
    check(unsafe { syscall2(nr::KILL, pid as isize as usize, signal as usize) }).map(drop)
}

/// `sched_yield(2)`.
pub fn sched_yield() {
    // SAFETY: touches no memory; always succeeds on Linux.
    unsafe { syscall0(nr::SCHED_YIELD) };
}

/// `struct timespec`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timespec {
    /// Seconds.
    pub sec: i64,
    /// Nanoseconds, `0..1_000_000_000`.
    pub nsec: i64,
}

impl Timespec {
    /// The whole value in nanoseconds.
    pub fn as_nanos(self) -> u64 {
        (self.sec as u64)
            .wrapping_mul(1_000_000_000)
            .wrapping_add(self.nsec as u64)
    }
    /// A timespec of `ns` nanoseconds.
    pub fn from_nanos(ns: u64) -> Self {
        Self {
            sec: (ns / 1_000_000_000) as i64,
            nsec: (ns % 1_000_000_000) as i64,
        }
    }
}

/// `nanosleep(2)`: sleeps for `duration`; on `EINTR` returns the time left.
pub fn nanosleep(duration: Timespec) -> Result<(), (Errno, Timespec)> {
    let mut left = Timespec::default();
    // SAFETY: the kernel reads one live timespec and writes another.
    let ret = unsafe {
        syscall2(
            nr::NANOSLEEP,
            &duration as *const Timespec as usize,
            &mut left as *mut Timespec as usize,
        )
    };
    check(ret).map(drop).map_err(|e| (e, left))
}

/// `CLOCK_REALTIME` for [`clock_gettime`].
pub const CLOCK_REALTIME: u32 = 0;
/// `CLOCK_MONOTONIC` for [`clock_gettime`].
pub const CLOCK_MONOTONIC: u32 = 1;

/// `clock_gettime(2)` (the system call itself, not the vDSO).
pub fn clock_gettime(clock: u32) -> Result<Timespec, Errno> {
    let mut ts = Timespec::default();
    // SAFETY: the kernel writes one timespec into the live local.
    check(unsafe {
        syscall2(
            nr::CLOCK_GETTIME,
            clock as usize,
            &mut ts as *mut Timespec as usize,
        )
    })?;
    Ok(ts)
}

pub use forkvm_abi::linux::mman::{
    MAP_ANONYMOUS, MAP_FIXED, MAP_NORESERVE, MAP_POPULATE, MAP_PRIVATE, MAP_SHARED, MAP_STACK,
    PROT_EXEC, PROT_NONE, PROT_READ, PROT_WRITE,
};

/// `mmap(2)`, raw.
///
/// # Safety
/// With `MAP_FIXED` this replaces whatever was mapped at `addr`.
pub unsafe fn mmap(
    addr: usize,
    len: usize,
    prot: u32,
    flags: u32,
    fd: i32,
    offset: usize,
) -> Result<*mut u8, Errno> {
    // SAFETY: the caller vouches for MAP_FIXED; otherwise the kernel picks
    // unused addresses and our memory is untouched.
    let ret = unsafe {
        syscall6(
            nr::MMAP,
            addr,
            len,
            prot as usize,
            flags as usize,
            fd as isize as usize,
            offset,
        )
    };
    check(ret).map(|p| p as *mut u8)
}

/// `mmap(NULL, len, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)`: fresh
/// zero-filled memory at an address the kernel picks (page-aligned).
pub fn mmap_anonymous(len: usize, prot: u32) -> Result<*mut u8, Errno> {
    // SAFETY: without MAP_FIXED the kernel never replaces an existing mapping.
    unsafe { mmap(0, len, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) }
}

/// `munmap(2)`.
///
/// # Safety
/// Nothing may use `[addr, addr + len)` afterwards.
pub unsafe fn munmap(addr: *mut u8, len: usize) -> Result<(), Errno> {
    // SAFETY: the caller guarantees the range is no longer used.
    check(unsafe { syscall2(nr::MUNMAP, addr as usize, len) }).map(drop)
}

/// `mprotect(2)`: changes the access of the pages of `[addr, addr + len)`.
///
/// # Safety
/// After access is removed, Rust code must not touch the range in a way the
/// new protection forbids (the access faults).
pub unsafe fn mprotect(addr: *mut u8, len: usize, prot: u32) -> Result<(), Errno> {
    // SAFETY: the caller guarantees nothing relies on the access removed.
    check(unsafe { syscall3(nr::MPROTECT, addr as usize, len, prot as usize) }).map(drop)
}

/// `brk(2)`, raw: asks for the program break to be `addr` (0 only asks) and
/// returns the break now in effect, which is the old one if the request
/// failed (the system call itself never returns an errno).
///
/// # Safety
/// Lowering the break unmaps the memory above it: nothing may use it.
pub unsafe fn brk(addr: usize) -> usize {
    // SAFETY: the caller guarantees memory given back is unused; growing
    // only maps fresh memory.
    unsafe { syscall1(nr::BRK, addr) as usize }
}

/// `FUTEX_WAIT`.
pub const FUTEX_WAIT: u32 = 0;
/// `FUTEX_WAKE`.
pub const FUTEX_WAKE: u32 = 1;
/// `FUTEX_PRIVATE_FLAG`: the futex is not shared with other processes.
pub const FUTEX_PRIVATE_FLAG: u32 = 128;

/// `futex(word, op, val, timeout, NULL, 0)` for `FUTEX_WAIT`/`FUTEX_WAKE`
/// (with or without `FUTEX_PRIVATE_FLAG`): waits while `*word == val`, or wakes
/// up to `val` waiters.
pub fn futex(
    word: &core::sync::atomic::AtomicU32,
    op: u32,
    val: u32,
    timeout: Option<&Timespec>,
) -> Result<usize, Errno> {
    let timeout = timeout.map_or(0, |t| t as *const Timespec as usize);
    // SAFETY: the kernel reads the live atomic word (and the timeout, if any)
    // and touches nothing else for these operations.
    check(unsafe {
        syscall4(
            nr::FUTEX,
            word.as_ptr() as usize,
            op as usize,
            val as usize,
            timeout,
        )
    })
}

/// `execve(2)`: replaces the program. `argv` and `envp` are arrays of
/// pointers to NUL-terminated strings and must end with a null pointer
/// (checked: `EINVAL` otherwise). Returns only on failure.
pub fn execve(path: &CStr, argv: &[*const u8], envp: &[*const u8]) -> Errno {
    if argv.last() != Some(&core::ptr::null()) || envp.last() != Some(&core::ptr::null()) {
        return Errno::EINVAL;
    }
    // SAFETY: the kernel only reads the strings and arrays; a bad pointer in
    // them is EFAULT, not a write to our memory.
    let ret = unsafe {
        syscall3(
            nr::EXECVE,
            path.as_ptr() as usize,
            argv.as_ptr() as usize,
            envp.as_ptr() as usize,
        )
    };
    match check(ret) {
        Err(e) => e,
        Ok(_) => Errno::EINVAL,
    }
}

/// `execveat(2)`: [`execve`] of `path` relative to the directory `dirfd`
/// (`AT_FDCWD`: the cwd; an absolute path ignores it), or of `dirfd`'s own
/// file with an empty path and `AT_EMPTY_PATH`; `flags` may also hold
/// `AT_SYMLINK_NOFOLLOW`. Same argument rules as [`execve`]; returns only
/// on failure.
pub fn execveat(
    dirfd: i32,
    path: &CStr,
    argv: &[*const u8],
    envp: &[*const u8],
    flags: usize,
) -> Errno {
    if argv.last() != Some(&core::ptr::null()) || envp.last() != Some(&core::ptr::null()) {
        return Errno::EINVAL;
    }
    // SAFETY: as for `execve`: the kernel only reads the strings and arrays.
    let ret = unsafe {
        syscall5(
            nr::EXECVEAT,
            dirfd as isize as usize,
            path.as_ptr() as usize,
            argv.as_ptr() as usize,
            envp.as_ptr() as usize,
            flags,
        )
    };
    match check(ret) {
        Err(e) => e,
        Ok(_) => Errno::EINVAL,
    }
}

/// `struct utsname` (six NUL-padded 65-byte fields).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Utsname {
    /// Operating system name, e.g. `Linux`.
    pub sysname: [u8; 65],
    /// Host name.
    pub nodename: [u8; 65],
    /// Kernel release.
    pub release: [u8; 65],
    /// Kernel version string.
    pub version: [u8; 65],
    /// Machine, e.g. `x86_64`.
    pub machine: [u8; 65],
    /// NIS domain name.
    pub domainname: [u8; 65],
}

/// The bytes of a NUL-padded field, up to its first NUL.
pub fn c_field(field: &[u8]) -> &[u8] {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    &field[..end]
}

/// `uname(2)`.
pub fn uname() -> Result<Utsname, Errno> {
    let mut u = Utsname {
        sysname: [0; 65],
        nodename: [0; 65],
        release: [0; 65],
        version: [0; 65],
        machine: [0; 65],
        domainname: [0; 65],
    };
    // SAFETY: the kernel writes one struct utsname into the live local.
    check(unsafe { syscall1(nr::UNAME, &mut u as *mut Utsname as usize) })?;
    Ok(u)
}

/// `setpgid(2)`: moves process `pid` (0: the caller) into process group
/// `pgid` (0: a new group led by `pid`).
pub fn setpgid(pid: i32, pgid: i32) -> Result<(), Errno> {
    // SAFETY: touches no memory of ours.
    check(unsafe { syscall2(nr::SETPGID, pid as isize as usize, pgid as isize as usize) }).map(drop)
}

/// `getpgrp(2)`: the caller's process group.
pub fn getpgrp() -> Pid {
    // SAFETY: touches no memory; cannot fail.
    unsafe { syscall0(nr::GETPGRP) as Pid }
}

/// `setsid(2)`: starts a new session and process group led by the caller;
/// returns the session id.
pub fn setsid() -> Result<Pid, Errno> {
    // SAFETY: touches no memory of ours.
    check(unsafe { syscall0(nr::SETSID) }).map(|sid| sid as Pid)
}

/// `getpgid(2)`: the process group of `pid` (0: the caller).
pub fn getpgid(pid: i32) -> Result<Pid, Errno> {
    // SAFETY: touches no memory of ours.
    check(unsafe { syscall1(nr::GETPGID, pid as isize as usize) }).map(|id| id as Pid)
}

/// `getsid(2)`: the session of `pid` (0: the caller).
pub fn getsid(pid: i32) -> Result<Pid, Errno> {
    // SAFETY: touches no memory of ours.
    check(unsafe { syscall1(nr::GETSID, pid as isize as usize) }).map(|id| id as Pid)
}

/// `getcwd(2)`, raw: writes the working directory and a NUL into `buf`
/// and returns the length written, NUL included.
pub fn getcwd(buf: &mut [u8]) -> Result<usize, Errno> {
    // SAFETY: the kernel writes at most buf.len() bytes into a live, exclusive slice.
    check(unsafe { syscall2(nr::GETCWD, buf.as_mut_ptr() as usize, buf.len()) })
}

/// `chdir(2)`.
pub fn chdir(path: &CStr) -> Result<(), Errno> {
    // SAFETY: the kernel only reads the NUL-terminated string.
    check(unsafe { syscall1(nr::CHDIR, path.as_ptr() as usize) }).map(drop)
}

/// `mkdir(2)`: `mode` less the umask.
pub fn mkdir(path: &CStr, mode: u32) -> Result<(), Errno> {
    // SAFETY: the kernel only reads the NUL-terminated string.
    check(unsafe { syscall2(nr::MKDIR, path.as_ptr() as usize, mode as usize) }).map(drop)
}

/// `rmdir(2)`: removes an empty directory.
pub fn rmdir(path: &CStr) -> Result<(), Errno> {
    // SAFETY: the kernel only reads the NUL-terminated string.
    check(unsafe { syscall1(nr::RMDIR, path.as_ptr() as usize) }).map(drop)
}

/// `chroot(2)`: makes `path` the root of absolute paths (CAP_SYS_CHROOT);
/// the working directory does not move.
pub fn chroot(path: &CStr) -> Result<(), Errno> {
    // SAFETY: the kernel only reads the NUL-terminated string.
    check(unsafe { syscall1(nr::CHROOT, path.as_ptr() as usize) }).map(drop)
}

/// `AT_FDCWD`: the `*at` calls' relative paths start at the working directory.
pub use forkvm_abi::linux::fcntl::AT_FDCWD;
/// `unlinkat` flag: remove a directory (as `rmdir`).
pub const AT_REMOVEDIR: u32 = 0x200;

/// `open(2)` (the system call, not the C library's, which is `openat`):
/// a new descriptor; `mode` (less the umask) for a file it creates.
pub fn open(path: &CStr, flags: u32, mode: u32) -> Result<i32, Errno> {
    // SAFETY: the kernel only reads the NUL-terminated string.
    check(unsafe {
        syscall3(
            nr::OPEN,
            path.as_ptr() as usize,
            flags as usize,
            mode as usize,
        )
    })
    .map(|fd| fd as i32)
}

/// `openat(2)`: `open` with a relative path starting at `dirfd`
/// ([`AT_FDCWD`]: the working directory).
pub fn openat(dirfd: i32, path: &CStr, flags: u32, mode: u32) -> Result<i32, Errno> {
    // SAFETY: the kernel only reads the NUL-terminated string.
    check(unsafe {
        syscall4(
            nr::OPENAT,
            dirfd as isize as usize,
            path.as_ptr() as usize,
            flags as usize,
            mode as usize,
        )
    })
    .map(|fd| fd as i32)
}

/// `fcntl(2)` with a command whose argument is an integer or unused
/// (`F_DUPFD*`, `F_GETFD`, `F_SETFD`, `F_GETFL`, `F_SETFL`): what it returns.
pub fn fcntl(fd: i32, cmd: u32, arg: usize) -> Result<usize, Errno> {
    // SAFETY: these commands pass no pointer.
    check(unsafe { syscall3(nr::FCNTL, fd as isize as usize, cmd as usize, arg) })
}

/// `mkdirat(2)`: `mkdir` with relative paths starting at `dirfd`.
pub fn mkdirat(dirfd: i32, path: &CStr, mode: u32) -> Result<(), Errno> {
    // SAFETY: the kernel only reads the NUL-terminated string.
    check(unsafe {
        syscall3(
            nr::MKDIRAT,
            dirfd as isize as usize,
            path.as_ptr() as usize,
            mode as usize,
        )
    })
    .map(drop)
}

/// `unlinkat(2)`: removes a name (a directory with [`AT_REMOVEDIR`]).
pub fn unlinkat(dirfd: i32, path: &CStr, flags: u32) -> Result<(), Errno> {
    // SAFETY: the kernel only reads the NUL-terminated string.
    check(unsafe {
        syscall3(
            nr::UNLINKAT,
            dirfd as isize as usize,
            path.as_ptr() as usize,
            flags as usize,
        )
    })
    .map(drop)
}

/// `unshare(2)`: stops sharing what the clone `flags` name (new namespaces,
/// a private fs_struct or fd table).
pub fn unshare(flags: u64) -> Result<(), Errno> {
    // SAFETY: touches no memory of ours.
    check(unsafe { syscall1(272, flags as usize) }).map(drop)
}

/// `waitid` id types and the `si_code` of its reports.
pub use forkvm_abi::linux::signal::{CLD_EXITED, CLD_KILLED};
pub use forkvm_abi::linux::wait::{P_ALL, P_PGID, P_PID, P_PIDFD};
/// `pidfd_open` flag: a non-blocking pidfd (`O_NONBLOCK`).
pub const PIDFD_NONBLOCK: u32 = 0o4000;

/// The fields `waitid` stores in its `siginfo_t` (128 bytes): `si_signo`,
/// `si_errno`, `si_code` at 0, 4, 8; `si_pid`, `si_uid`, `si_status` at 16,
/// 20, 24.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WaitidInfo {
    /// `SIGCHLD` for a report, 0 if none.
    pub signo: i32,
    /// Always 0.
    pub errno: i32,
    /// `CLD_EXITED`, `CLD_KILLED`, ...
    pub code: i32,
    /// The child, as the caller's pid namespace sees it.
    pub pid: i32,
    /// The child's real uid, as the caller's user namespace sees it.
    pub uid: u32,
    /// Exit code, or the signal.
    pub status: i32,
}

impl WaitidInfo {
    /// Decodes the fields from a `siginfo_t`.
    pub fn from_bytes(bytes: &[u8; 128]) -> WaitidInfo {
        let word = |at: usize| i32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
        WaitidInfo {
            signo: word(0),
            errno: word(4),
            code: word(8),
            pid: word(16),
            uid: word(20) as u32,
            status: word(24),
        }
    }
}

/// `waitid(2)` with the `siginfo_t` at any address (NULL allowed) and no
/// resource usage.
///
/// # Safety
/// Unless NULL, `infop` must be an address where the kernel may write 128
/// bytes, or one it cannot write (EFAULT).
pub unsafe fn waitid_raw(idtype: u32, id: i32, infop: usize, options: u32) -> Result<(), Errno> {
    // SAFETY: guaranteed by the caller.
    let ret = unsafe {
        syscall5(
            nr::WAITID,
            idtype as usize,
            id as isize as usize,
            infop,
            options as usize,
            0,
        )
    };
    check(ret).map(drop)
}

/// `waitid(2)` into `info` (whose bytes the kernel does not own are left
/// as they were).
pub fn waitid_into(idtype: u32, id: i32, info: &mut [u8; 128], options: u32) -> Result<(), Errno> {
    // SAFETY: info is 128 writable bytes.
    unsafe { waitid_raw(idtype, id, info.as_mut_ptr() as usize, options) }
}

/// `waitid(2)`: what it reports (all zero with `WNOHANG` and no child ready).
pub fn waitid(idtype: u32, id: i32, options: u32) -> Result<WaitidInfo, Errno> {
    let mut info = [0u8; 128];
    waitid_into(idtype, id, &mut info, options)?;
    Ok(WaitidInfo::from_bytes(&info))
}

/// `pidfd_open(2)`: a close-on-exec descriptor for process `pid`.
pub fn pidfd_open(pid: i32, flags: u32) -> Result<i32, Errno> {
    // SAFETY: touches no memory of ours.
    check(unsafe { syscall2(nr::PIDFD_OPEN, pid as isize as usize, flags as usize) })
        .map(|fd| fd as i32)
}

/// `pidfd_send_signal(2)` without siginfo or flags.
pub fn pidfd_send_signal(pidfd: i32, signal: i32) -> Result<(), Errno> {
    // SAFETY: no siginfo pointer: touches no memory of ours.
    check(unsafe { syscall4(nr::PIDFD_SEND_SIGNAL, pidfd as usize, signal as usize, 0, 0) })
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_splits_errors() {
        assert_eq!(check(0), Ok(0));
        assert_eq!(check(12345), Ok(12345));
        assert_eq!(check(-1), Err(Errno::EPERM));
        assert_eq!(check(-4095), Err(Errno(4095)));
        // Large "negative" values are addresses (e.g. mmap near the top), not errors.
        assert_eq!(check(-4096), Ok((-4096isize) as usize));
    }

    #[test]
    fn wait_status_decoding_matches_linux() {
        // exit(0), exit(42), exit(255)
        for code in [0, 42, 255] {
            let s = WaitStatus(code << 8);
            assert!(s.exited() && !s.signaled() && !s.stopped());
            assert_eq!(s.exit_status(), code);
        }
        // killed by SIGKILL (9); by SIGSEGV (11) with core dump
        let s = WaitStatus(9);
        assert!(!s.exited() && s.signaled() && !s.core_dumped());
        assert_eq!(s.term_signal(), 9);
        let s = WaitStatus(11 | 0x80);
        assert!(s.signaled() && s.core_dumped());
        assert_eq!(s.term_signal(), 11);
        // stopped by SIGSTOP (19)
        let s = WaitStatus((19 << 8) | 0x7f);
        assert!(s.stopped() && !s.exited() && !s.signaled());
        assert_eq!(s.stop_signal(), 19);
        // continued (0xffff) is neither exited nor signaled
        let s = WaitStatus(0xffff);
        assert!(!s.exited() && !s.signaled());
    }

    // The wrappers themselves run on the host's Linux in the test binary.
    #[test]
    fn host_syscalls_work() {
        assert!(getpid() > 0);
        assert!(gettid() > 0);
        let fds = pipe2(0).unwrap();
        assert_eq!(write(fds[1], b"abc").unwrap(), 3);
        let mut buf = [0u8; 8];
        assert_eq!(read(fds[0], &mut buf).unwrap(), 3);
        assert_eq!(&buf[..3], b"abc");
        close(fds[0]).unwrap();
        close(fds[1]).unwrap();
        assert_eq!(close(fds[1]), Err(Errno::EBADF));
        let u = uname().unwrap();
        assert_eq!(c_field(&u.sysname), b"Linux");
        let a = clock_gettime(CLOCK_MONOTONIC).unwrap().as_nanos();
        nanosleep(Timespec::from_nanos(1_000_000)).unwrap();
        let b = clock_gettime(CLOCK_MONOTONIC).unwrap().as_nanos();
        assert!(b - a >= 1_000_000);
        let p = mmap_anonymous(8192, PROT_READ | PROT_WRITE).unwrap();
        assert_eq!(p as usize % 4096, 0);
        // SAFETY: p is a fresh 8 KiB read-write mapping, unmapped right after.
        unsafe {
            p.add(8191).write(7);
            munmap(p, 8192).unwrap();
        }
        assert_eq!(mmap_anonymous(0, PROT_READ), Err(Errno::EINVAL));
    }

    #[test]
    fn process_group_wrappers_agree() {
        let pg = getpgrp();
        assert_eq!(getpgid(0), Ok(pg));
        assert_eq!(getpgid(getpid() as i32), Ok(pg));
        assert_eq!(getsid(0), getsid(getpid() as i32));
        assert_eq!(getsid(-1), Err(Errno::ESRCH));
        assert_eq!(setpgid(0, -1), Err(Errno::EINVAL));
    }

    #[test]
    fn mprotect_changes_protection() {
        let p = mmap_anonymous(4096, PROT_READ | PROT_WRITE).unwrap();
        // SAFETY: p is a fresh page, only read while read-only, unmapped after.
        unsafe {
            p.write(9);
            mprotect(p, 4096, PROT_READ).unwrap();
            assert_eq!(p.read_volatile(), 9);
            assert_eq!(mprotect(p.add(1), 4096, PROT_READ), Err(Errno::EINVAL));
            munmap(p, 4096).unwrap();
        }
    }
}
