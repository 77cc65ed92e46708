//! `forkbench probe`: one `clone`/`clone3` call on the host, the same call
//! the guest's `Probe` request makes ([`crate::guest_harness::ProbeArgs`]).
//!
//! The call is made in a forked helper process, so the uid and
//! `RLIMIT_NPROC` changes never touch the caller; the helper reports the
//! result through a pipe. A created child `_exit(0)`s at once and is reaped.

use serde::Serialize;

use crate::guest_harness::ProbeArgs;

/// What one probe found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum ProbeOutcome {
    /// The call created a process with this pid.
    Ok { pid: i64 },
    /// The call failed with `errno`.
    Err { errno: i32, name: String },
    /// The call cannot sensibly be made here.
    NotApplicable { reason: String },
}

impl ProbeOutcome {
    /// A protocol-style result: pid, or `-errno`.
    pub fn from_result(result: i64) -> ProbeOutcome {
        if result >= 0 {
            ProbeOutcome::Ok { pid: result }
        } else {
            let errno = (-result) as i32;
            ProbeOutcome::Err {
                errno,
                name: errno_name(errno).to_string(),
            }
        }
    }
}

impl std::fmt::Display for ProbeOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProbeOutcome::Ok { pid } => write!(f, "ok pid={pid}"),
            ProbeOutcome::Err { errno, name } => write!(f, "err {name} {errno}"),
            ProbeOutcome::NotApplicable { reason } => write!(f, "N/A ({reason})"),
        }
    }
}

/// The symbolic name of the errno values process creation can return.
pub fn errno_name(errno: i32) -> &'static str {
    match errno {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EINTR => "EINTR",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EFAULT => "EFAULT",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::EINVAL => "EINVAL",
        libc::ENOSPC => "ENOSPC",
        libc::E2BIG => "E2BIG",
        libc::ENOSYS => "ENOSYS",
        libc::EUSERS => "EUSERS",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::ERESTART => "ERESTART",
        _ => "E?",
    }
}

/// `struct clone_args` (version 0, 64 bytes).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
}

/// Makes the call `args` describes on the host.
pub fn host_probe(args: ProbeArgs) -> Result<ProbeOutcome, String> {
    if args.threads_max != 0 {
        return Ok(ProbeOutcome::NotApplicable {
            reason: "changing the host's kernel.threads-max would affect the whole machine"
                .to_string(),
        });
    }
    if args.flags & libc::CLONE_VM as u64 != 0 {
        return Ok(ProbeOutcome::NotApplicable {
            reason: "CLONE_VM without a stack would run the child on the caller's stack"
                .to_string(),
        });
    }
    // SAFETY: plain system calls.
    let root = unsafe { libc::geteuid() } == 0;
    if args.uid != 0 && !root {
        return Ok(ProbeOutcome::NotApplicable {
            reason: "switching uid needs root on the host".to_string(),
        });
    }
    let mut fds = [0i32; 2];
    // SAFETY: `fds` has room for two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(format!("pipe: {}", std::io::Error::last_os_error()));
    }
    let [read_fd, write_fd] = fds;
    // SAFETY: the helper only makes raw system calls and exits.
    let helper = unsafe { libc::fork() };
    if helper < 0 {
        let e = std::io::Error::last_os_error();
        // SAFETY: our descriptors.
        unsafe {
            libc::close(read_fd);
            libc::close(write_fd);
        }
        return Err(format!("fork: {e}"));
    }
    if helper == 0 {
        // SAFETY: in the freshly forked helper: raw system calls only.
        unsafe { helper_main(args, write_fd) }
    }
    // SAFETY: our descriptors and child.
    unsafe {
        libc::close(write_fd);
        let mut buf = [0u8; 8];
        let mut got = 0;
        while got < 8 {
            let n = libc::read(read_fd, buf[got..].as_mut_ptr().cast(), 8 - got);
            if n <= 0 {
                break;
            }
            got += n as usize;
        }
        libc::close(read_fd);
        let mut status = 0;
        libc::waitpid(helper, &mut status, 0);
        if got != 8 {
            return Err(format!(
                "the probe helper exited without reporting (status {status:#x})"
            ));
        }
        Ok(ProbeOutcome::from_result(i64::from_ne_bytes(buf)))
    }
}

/// The helper: sets the limit and uid, makes the call, reaps the child,
/// writes pid or `-errno` to `fd`, exits.
unsafe fn helper_main(args: ProbeArgs, fd: i32) -> ! {
    let errno = || -(*libc::__errno_location()) as i64;
    let mut result: i64 = 0;
    if args.nproc_limit != u64::MAX {
        let limit = libc::rlimit64 {
            rlim_cur: args.nproc_limit,
            rlim_max: args.nproc_limit,
        };
        if libc::syscall(libc::SYS_prlimit64, 0, libc::RLIMIT_NPROC, &limit, 0usize) != 0 {
            result = errno();
        }
    }
    if result == 0 && args.uid != 0 {
        let id = args.uid as libc::c_long;
        for (nr, arg) in [
            (libc::SYS_setgroups, 0),
            (libc::SYS_setgid, id),
            (libc::SYS_setuid, id),
        ] {
            if libc::syscall(nr, arg, 0usize) != 0 {
                result = errno();
                break;
            }
        }
    }
    if result == 0 {
        let ret = if args.use_clone3 {
            let cl = CloneArgs {
                flags: args.flags,
                exit_signal: u64::from(args.exit_signal),
                ..CloneArgs::default()
            };
            libc::syscall(
                libc::SYS_clone3,
                &cl as *const CloneArgs,
                std::mem::size_of::<CloneArgs>(),
            )
        } else {
            let flags = args.flags | u64::from(args.exit_signal);
            libc::syscall(libc::SYS_clone, flags, 0usize, 0usize, 0usize, 0usize)
        };
        if ret == 0 {
            libc::syscall(libc::SYS_exit, 0);
        }
        result = if ret < 0 { errno() } else { ret };
        if ret > 0 {
            let mut status = 0;
            libc::waitpid(ret as i32, &mut status, libc::__WALL);
        }
    }
    let bytes = result.to_ne_bytes();
    libc::write(fd, bytes.as_ptr().cast(), 8);
    libc::syscall(libc::SYS_exit_group, 0);
    unreachable!()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_and_names() {
        assert_eq!(ProbeOutcome::from_result(5).to_string(), "ok pid=5");
        assert_eq!(ProbeOutcome::from_result(-22).to_string(), "err EINVAL 22");
        assert_eq!(ProbeOutcome::from_result(-11).to_string(), "err EAGAIN 11");
        assert_eq!(
            serde_json::to_value(ProbeOutcome::from_result(-22)).unwrap(),
            serde_json::json!({"result": "err", "errno": 22, "name": "EINVAL"})
        );
    }

    #[test]
    fn host_fork_and_einval() {
        let fork = ProbeArgs {
            exit_signal: libc::SIGCHLD as u32,
            nproc_limit: u64::MAX,
            ..ProbeArgs::default()
        };
        assert!(matches!(host_probe(fork), Ok(ProbeOutcome::Ok { pid }) if pid > 0));
        let clone3 = ProbeArgs {
            use_clone3: true,
            ..fork
        };
        assert!(matches!(host_probe(clone3), Ok(ProbeOutcome::Ok { .. })));
        let sighand = ProbeArgs {
            flags: libc::CLONE_SIGHAND as u64,
            ..fork
        };
        assert_eq!(
            host_probe(sighand).unwrap(),
            ProbeOutcome::from_result(-i64::from(libc::EINVAL))
        );
        let vm = ProbeArgs {
            flags: libc::CLONE_VM as u64,
            ..fork
        };
        assert!(matches!(
            host_probe(vm),
            Ok(ProbeOutcome::NotApplicable { .. })
        ));
    }
}
