//! The Linux x86-64 system call table: same numbers, same arguments, and
//! negative errno values on failure.

mod affinity;
mod cred;
mod file;
pub mod forkvm;
mod fs;
pub mod futex;
mod info;
mod io;
mod ioctl;
mod ioprio;
mod itimer;
mod madvise;
mod memory;
mod mlock;
mod mremap;
mod pgrp;
mod pidfd;
mod process;
mod random;
pub mod robust_list;
mod rusage;
/// sched.rs (as `sched_calls`: `sched` names the scheduler here).
#[path = "sched.rs"]
mod sched_calls;
mod select;
mod sem;
mod signal;
mod sigwait;
mod socket;
mod time;
mod wait;

use alloc::sync::Arc;

use crate::arch::entry::UserContext;
use crate::errno::{EFAULT, ENOSYS};
use crate::mm::address_space::AddressSpace;
use crate::sched;
use forkvm_abi::linux::nr;

/// `openat`'s "relative to the working directory" (-100).
const AT_FDCWD: u64 = forkvm_abi::linux::fcntl::AT_FDCWD as i64 as u64;

/// Result of a system call: a value or an errno.
pub type SysResult = Result<u64, i32>;

/// The six argument registers.
#[derive(Clone, Copy, Debug)]
pub struct Args(pub [u64; 6]);

/// Runs the system call in rax with the arguments in rdi, rsi, rdx, r10,
/// r8, r9 of the caller's registers, and stores the result (or `-errno`)
/// in rax. The calls that work on the whole user context (fork and clone
/// copy it, execve replaces it, rt_sigreturn restores it) get `ctx`.
pub fn dispatch(ctx: &mut UserContext) {
    crate::stats::SYSCALLS.add(1);
    let frame = &ctx.frame;
    let a = Args([
        frame.rdi, frame.rsi, frame.rdx, frame.r10, frame.r8, frame.r9,
    ]);
    // The number is an `int`: Linux ignores the upper half of rax.
    let result: SysResult = match frame.rax as u32 as usize {
        nr::READ => io::read(a),
        nr::WRITE => io::write(a),
        nr::CLOSE => io::close(a),
        nr::DUP => io::dup(a),
        nr::DUP2 => io::dup2(a),
        nr::DUP3 => io::dup3(a),
        nr::PIPE => io::pipe2(Args([a.0[0], 0, 0, 0, 0, 0])),
        nr::PIPE2 => io::pipe2(a),
        nr::OPEN => file::openat(Args([AT_FDCWD, a.0[0], a.0[1], a.0[2], 0, 0])),
        nr::OPENAT => file::openat(a),
        // `creat` is `open(path, O_CREAT | O_WRONLY | O_TRUNC, mode)`.
        nr::CREAT => file::openat(Args([
            AT_FDCWD,
            a.0[0],
            u64::from(
                crate::fs::file::O_CREAT | crate::fs::file::O_WRONLY | crate::fs::file::O_TRUNC,
            ),
            a.0[1],
            0,
            0,
        ])),
        nr::GETRESUID => cred::getresuid(a, false),
        nr::GETRESGID => cred::getresuid(a, true),
        nr::GETGROUPS => cred::getgroups(a),
        nr::SETGROUPS => cred::setgroups(a),
        nr::FCNTL => io::fcntl(a),
        nr::UNSHARE => crate::process::unshare::ksys_unshare(&sched::current(), a.0[0]).map(|()| 0),
        nr::KILL => signal::kill(a),
        nr::MMAP => memory::mmap(a),
        nr::MPROTECT => memory::mprotect(a),
        nr::MUNMAP => memory::munmap(a),
        nr::BRK => memory::brk(a),
        nr::RT_SIGACTION => signal::rt_sigaction(a),
        nr::RT_SIGPROCMASK => signal::rt_sigprocmask(a),
        nr::RT_SIGRETURN => Ok(crate::arch::signal::rt_sigreturn(ctx)),
        nr::PAUSE => signal::pause(a),
        nr::RT_SIGSUSPEND => signal::rt_sigsuspend(a),
        nr::SIGALTSTACK => signal::sigaltstack(a, frame.rsp),
        nr::SCHED_YIELD => {
            sched::yield_now();
            Ok(0)
        }
        nr::NANOSLEEP => time::nanosleep(a),
        nr::GETPID => {
            let task = sched::current();
            Ok(u64::from(task.tgid_in(&task.active_pid_ns())))
        }
        nr::CLONE => process::clone(a, ctx),
        nr::FORK => process::fork(ctx),
        nr::VFORK => process::vfork(ctx),
        nr::EXECVE => process::execve(a, ctx),
        nr::EXECVEAT => process::execveat(a, ctx),
        nr::EXIT => process::exit(a),
        nr::WAIT4 => wait::wait4(a),
        nr::WAITID => wait::waitid(a),
        nr::GETRUSAGE => rusage::getrusage(a),
        nr::TIMES => rusage::times(a),
        nr::UNAME => info::uname(a),
        nr::UMASK => info::umask(a),
        nr::SETHOSTNAME => info::sethostname(a),
        nr::SETDOMAINNAME => info::setdomainname(a),
        nr::GETUID => cred::getuid(),
        nr::GETGID => cred::getgid(),
        nr::GETEUID => cred::geteuid(),
        nr::GETEGID => cred::getegid(),
        nr::SETUID => cred::setuid(a),
        nr::SETGID => cred::setgid(a),
        nr::CAPGET => cred::capget(a),
        nr::CAPSET => cred::capset(a),
        nr::GETRLIMIT => cred::getrlimit(a),
        nr::SETRLIMIT => cred::setrlimit(a),
        nr::PRLIMIT64 => cred::prlimit64(a),
        nr::IOPRIO_SET => ioprio::ioprio_set(a),
        nr::SEMGET => sem::semget(a),
        nr::SEMOP => sem::semop(a),
        nr::SEMCTL => sem::semctl(a),
        nr::SEMTIMEDOP => sem::semtimedop(a),
        nr::IOPRIO_GET => ioprio::ioprio_get(a),
        nr::PRCTL => cred::prctl(a),
        nr::CLONE3 => process::clone3(a, ctx),
        nr::PIDFD_SEND_SIGNAL => pidfd::pidfd_send_signal(a),
        nr::PIDFD_OPEN => pidfd::pidfd_open(a),
        nr::RT_SIGPENDING => sigwait::rt_sigpending(a),
        nr::RT_SIGTIMEDWAIT => sigwait::rt_sigtimedwait(a),
        nr::RT_SIGQUEUEINFO => sigwait::rt_sigqueueinfo(a),
        nr::TKILL => sigwait::tkill(a),
        nr::TGKILL => sigwait::tgkill(a),
        nr::RT_TGSIGQUEUEINFO => sigwait::rt_tgsigqueueinfo(a),
        nr::GETPPID => Ok(process::getppid()),
        nr::ARCH_PRCTL => process::arch_prctl(a),
        nr::GETTID => {
            let task = sched::current();
            Ok(u64::from(task.tid_in(&task.active_pid_ns())))
        }
        nr::FUTEX => futex::futex(a),
        nr::SET_TID_ADDRESS => process::set_tid_address(a),
        nr::IOCTL => ioctl::ioctl(a),
        nr::SET_ROBUST_LIST => robust_list::set_robust_list(a),
        nr::GET_ROBUST_LIST => robust_list::get_robust_list(a),
        nr::CLOCK_GETTIME => time::clock_gettime(a),
        nr::CLOCK_NANOSLEEP => time::clock_nanosleep(a),
        nr::EXIT_GROUP => process::exit_group(a),
        nr::REBOOT => forkvm::reboot(a),
        nr::SETPGID => pgrp::setpgid(a),
        nr::GETPGRP => pgrp::getpgrp(),
        nr::SETSID => pgrp::setsid(),
        nr::GETPGID => pgrp::getpgid(a),
        nr::GETSID => pgrp::getsid(a),
        nr::GETCWD => fs::getcwd(a),
        nr::CHDIR => fs::chdir(a),
        nr::MKDIR => fs::mkdir(a),
        nr::RMDIR => fs::rmdir(a),
        nr::CHROOT => fs::chroot(a),
        nr::MKDIRAT => fs::mkdirat(a),
        nr::UNLINKAT => fs::unlinkat(a),
        nr::STAT => file::newfstatat(Args([AT_FDCWD, a.0[0], a.0[1], 0, 0, 0])),
        nr::LSTAT => file::newfstatat(Args([AT_FDCWD, a.0[0], a.0[1], 0x100, 0, 0])),
        nr::FSTAT => file::fstat(a),
        nr::NEWFSTATAT => file::newfstatat(a),
        nr::LSEEK => file::lseek(a),
        nr::PREAD64 => file::pread64(a),
        nr::PWRITE64 => file::pwrite64(a),
        nr::ACCESS => file::faccessat2(Args([AT_FDCWD, a.0[0], a.0[1], 0, 0, 0])),
        nr::FACCESSAT => file::faccessat2(Args([a.0[0], a.0[1], a.0[2], 0, 0, 0])),
        nr::FACCESSAT2 => file::faccessat2(a),
        nr::TRUNCATE => file::truncate(a),
        nr::FTRUNCATE => file::ftruncate(a),
        nr::FCHDIR => file::fchdir(a),
        nr::GETDENTS64 => file::getdents64(a),
        nr::UNLINK => file::unlink(a),
        nr::READLINK => file::readlinkat(Args([AT_FDCWD, a.0[0], a.0[1], a.0[2], 0, 0])),
        nr::READLINKAT => file::readlinkat(a),
        nr::SYMLINK => file::symlinkat(Args([a.0[0], AT_FDCWD, a.0[1], 0, 0, 0])),
        nr::SYMLINKAT => file::symlinkat(a),
        nr::LINK => file::linkat(Args([AT_FDCWD, a.0[0], AT_FDCWD, a.0[1], 0, 0])),
        nr::LINKAT => file::linkat(a),
        nr::RENAME => file::renameat2(Args([AT_FDCWD, a.0[0], AT_FDCWD, a.0[1], 0, 0])),
        nr::RENAMEAT => file::renameat2(Args([a.0[0], a.0[1], a.0[2], a.0[3], 0, 0])),
        nr::RENAMEAT2 => file::renameat2(a),
        nr::READV => file::readv_writev(a, false),
        nr::WRITEV => file::readv_writev(a, true),
        nr::CHMOD => file::fchmodat(Args([AT_FDCWD, a.0[0], a.0[1], 0, 0, 0])),
        nr::FCHMOD => file::fchmod(a),
        nr::FCHMODAT => file::fchmodat(a),
        nr::CHOWN => file::fchownat(Args([AT_FDCWD, a.0[0], a.0[1], a.0[2], 0, 0])),
        nr::FCHOWN => file::fchown(a),
        nr::LCHOWN => file::fchownat(Args([AT_FDCWD, a.0[0], a.0[1], a.0[2], 0x100, 0])),
        nr::FCHOWNAT => file::fchownat(a),
        nr::UTIMENSAT => file::utimensat(a),
        nr::STATX => file::statx(a),
        nr::FSYNC | nr::FDATASYNC => file::fsync(a),
        nr::GETXATTR => file::getxattr(a, true, false),
        nr::LGETXATTR => file::getxattr(a, false, false),
        nr::FGETXATTR => file::getxattr(a, true, true),
        nr::LISTXATTR => file::listxattr(a, true, false),
        nr::LLISTXATTR => file::listxattr(a, false, false),
        nr::FLISTXATTR => file::listxattr(a, true, true),
        nr::GETRANDOM => random::getrandom(a),
        nr::GETPRIORITY => sched_calls::getpriority(a),
        nr::SETPRIORITY => sched_calls::setpriority(a),
        nr::SCHED_SETPARAM => sched_calls::sched_setparam(a),
        nr::SCHED_GETPARAM => sched_calls::sched_getparam(a),
        nr::SCHED_SETSCHEDULER => sched_calls::sched_setscheduler(a),
        nr::SCHED_GETSCHEDULER => sched_calls::sched_getscheduler(a),
        nr::SCHED_GET_PRIORITY_MAX => sched_calls::sched_get_priority_max(a),
        nr::SCHED_GET_PRIORITY_MIN => sched_calls::sched_get_priority_min(a),
        nr::SCHED_RR_GET_INTERVAL => sched_calls::sched_rr_get_interval(a),
        nr::SCHED_SETATTR => sched_calls::sched_setattr(a),
        nr::SCHED_GETATTR => sched_calls::sched_getattr(a),
        nr::SCHED_SETAFFINITY => affinity::sched_setaffinity(a),
        nr::SCHED_GETAFFINITY => affinity::sched_getaffinity(a),
        nr::GETCPU => affinity::getcpu(a),
        nr::SETREUID => cred::setreuid(a, false),
        nr::SETREGID => cred::setreuid(a, true),
        nr::SETRESUID => cred::setresuid(a, false),
        nr::SETRESGID => cred::setresuid(a, true),
        nr::SETFSUID => cred::setfsuid(a, false),
        nr::SETFSGID => cred::setfsuid(a, true),
        nr::MREMAP => mremap::mremap(a),
        nr::MSYNC => madvise::msync(a),
        nr::MINCORE => madvise::mincore(a),
        nr::MADVISE => madvise::madvise(a),
        nr::MLOCK => mlock::mlock(a),
        nr::MLOCK2 => mlock::mlock2(a),
        nr::MUNLOCK => mlock::munlock(a),
        nr::MLOCKALL => mlock::mlockall(a),
        nr::MUNLOCKALL => mlock::munlockall(a),
        nr::SOCKET => socket::socket(a),
        nr::SOCKETPAIR => socket::socketpair(a),
        nr::CONNECT => socket::connect(a),
        nr::ACCEPT => socket::accept4(Args([a.0[0], a.0[1], a.0[2], 0, 0, 0])),
        nr::ACCEPT4 => socket::accept4(a),
        nr::SENDTO | nr::RECVFROM => socket::sendto_recvfrom(a),
        nr::SENDMSG | nr::RECVMSG => socket::sendmsg_recvmsg(a),
        nr::BIND | nr::LISTEN | nr::SHUTDOWN | nr::GETSOCKNAME | nr::GETPEERNAME => {
            socket::by_socket_fd(a)
        }
        nr::SETSOCKOPT | nr::GETSOCKOPT => socket::sockopt(a),
        nr::POLL => select::poll(a),
        nr::SELECT => select::select(a),
        nr::PSELECT6 => select::pselect6(a),
        nr::PPOLL => select::ppoll(a),
        nr::GETITIMER => itimer::getitimer(a),
        nr::SETITIMER => itimer::setitimer(a),
        nr::ALARM => itimer::alarm(a),
        nr::GETTIMEOFDAY => time::gettimeofday(a),
        nr::TIME => time::time(a),
        nr::SYSINFO => info::sysinfo(a),
        forkvm_abi::sys::SYS_FORKVM_INFO => forkvm::forkvm_info(a),
        forkvm_abi::sys::SYS_FORKVM_DIAG => forkvm::forkvm_diag(a),
        forkvm_abi::sys::SYS_FORKVM_SYSCTL => forkvm::forkvm_sysctl(a),
        forkvm_abi::sys::SYS_FORKVM_VCONSOLE_OPEN => io::vconsole_open(a),
        number => Err(not_implemented(number)),
    };
    ctx.frame.rax = match result {
        Ok(value) => value,
        Err(errno) => (-i64::from(errno)) as u64,
    };
}

/// A system call this kernel does not have: ENOSYS, and a kernel log line
/// naming it (once per number, so a program probing in a loop does not
/// flood the console).
fn not_implemented(number: usize) -> i32 {
    use core::sync::atomic::{AtomicU64, Ordering};
    static REPORTED: [AtomicU64; 8] = [const { AtomicU64::new(0) }; 8];
    if let Some(word) = REPORTED.get(number / 64) {
        let bit = 1 << (number % 64);
        if word.fetch_or(bit, Ordering::Relaxed) & bit != 0 {
            return ENOSYS;
        }
    }
    let task = sched::current();
    crate::println!(
        "forkvm: {} (pid {}): system call {} ({}) not implemented: ENOSYS",
        core::str::from_utf8(&task.comm())
            .unwrap_or("?")
            .trim_end_matches('\0'),
        task.pid,
        number,
        nr::name(number).unwrap_or("unknown"),
    );
    ENOSYS
}

/// The current task's address space (every task that makes system calls
/// has one).
fn current_mm() -> Result<Arc<AddressSpace>, i32> {
    sched::current().mm().ok_or(EFAULT)
}
