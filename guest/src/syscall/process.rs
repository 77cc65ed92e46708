//! Process system calls: fork, vfork, clone, execve, execveat, exit, ids (`wait4`
//! is in `wait.rs`).

use alloc::vec::Vec;

use super::{current_mm, Args, SysResult};
use crate::arch::entry::UserContext;
use crate::errno::{E2BIG, EINVAL};
use crate::process::exit::{do_exit, exit_status};
use crate::process::fork::{self, CloneArgs, CloneFlags, CSIGNAL};
use crate::process::signal::SIGCHLD;
use crate::process::{exec, user_stack};
use crate::sched;

pub fn fork(frame: &UserContext) -> SysResult {
    let args = CloneArgs {
        exit_signal: u64::from(SIGCHLD),
        ..CloneArgs::default()
    };
    fork::kernel_clone(&args, frame).map(u64::from)
}

pub fn vfork(frame: &UserContext) -> SysResult {
    let args = CloneArgs {
        flags: CloneFlags::CLONE_VFORK | CloneFlags::CLONE_VM,
        exit_signal: u64::from(SIGCHLD),
        ..CloneArgs::default()
    };
    fork::kernel_clone(&args, frame).map(u64::from)
}

/// `clone(flags, newsp, parent_tid, child_tid, tls)` (x86-64 order).
/// As in Linux, only the low 32 bits of `flags` count, the exit signal is
/// in CSIGNAL, and CLONE_PIDFD returns the pidfd through `parent_tid`.
pub fn clone(a: Args, frame: &UserContext) -> SysResult {
    let [flags, stack, parent_tid, child_tid, tls, _] = a.0;
    let flags = flags & 0xffff_ffff;
    let args = CloneArgs {
        flags: CloneFlags::from_bits_retain(flags & !CSIGNAL),
        pidfd: parent_tid,
        set_tid: alloc::vec::Vec::new(),
        exit_signal: flags & CSIGNAL,
        stack,
        parent_tid,
        child_tid,
        tls,
    };
    fork::kernel_clone(&args, frame).map(u64::from)
}

/// `clone3(args, size)`.
pub fn clone3(a: Args, frame: &UserContext) -> SysResult {
    let [address, size, ..] = a.0;
    let args = fork::copy_clone_args_from_user(&*current_mm()?, address, size)?;
    fork::kernel_clone(&args, frame).map(u64::from)
}

/// Most arguments or environment strings accepted (Linux's limit comes
/// from the stack size; this bound keeps the kernel's copy small).
const MAX_STRINGS: usize = 8192;

/// Reads a NUL-terminated string from user memory, a page-sized chunk at a
/// time; E2BIG past Linux's per-string limit.
pub(super) fn read_c_string(address: u64) -> Result<Vec<u8>, i32> {
    let mm = current_mm()?;
    let mut bytes = Vec::new();
    let mut at = address;
    loop {
        // Up to the end of the page, so a string ending just before an
        // unmapped page is read without touching it.
        let chunk_len = (4096 - (at % 4096)) as usize;
        let mut chunk = alloc::vec![0u8; chunk_len];
        mm.copy_from_user(at, &mut chunk)?;
        if let Some(end) = chunk.iter().position(|&b| b == 0) {
            bytes.extend_from_slice(&chunk[..end]);
            return Ok(bytes);
        }
        bytes.extend_from_slice(&chunk);
        if bytes.len() >= user_stack::MAX_ARG_STRLEN {
            return Err(E2BIG);
        }
        at += chunk_len as u64;
    }
}

/// Reads a NULL-terminated array of string pointers.
fn read_string_array(address: u64) -> Result<Vec<Vec<u8>>, i32> {
    let mut strings = Vec::new();
    if address == 0 {
        return Ok(strings);
    }
    let mm = current_mm()?;
    let mut total = 0;
    loop {
        let mut pointer = [0u8; 8];
        mm.copy_from_user(address + 8 * strings.len() as u64, &mut pointer)?;
        let pointer = u64::from_le_bytes(pointer);
        if pointer == 0 {
            return Ok(strings);
        }
        if strings.len() >= MAX_STRINGS {
            return Err(E2BIG);
        }
        let string = read_c_string(pointer)?;
        total += string.len() + 1;
        if total > user_stack::MAX_ARG_BYTES {
            return Err(E2BIG);
        }
        strings.push(string);
    }
}

pub fn execve(a: Args, frame: &mut UserContext) -> SysResult {
    let [path, argv, envp, ..] = a.0;
    let path = read_c_string(path)?;
    // Linux opens the file before it reads the arguments: a missing file
    // is ENOENT even with a bad argv.
    let opened = crate::fs::exec::ExecStart::open(&path)?;
    exec_opened(opened, argv, envp, frame)
}

/// `execveat(dirfd, path, argv, envp, flags)`: `execve` of the file
/// `path` names relative to `dirfd`, or of `dirfd`'s own file
/// (AT_EMPTY_PATH); see `file::open_execat`.
pub fn execveat(a: Args, frame: &mut UserContext) -> SysResult {
    let [dirfd, path, argv, envp, flags, _] = a.0;
    let path = super::file::getname_maybe_empty(path, flags)?;
    let opened = super::file::open_execat(dirfd, &path, flags)?;
    exec_opened(opened, argv, envp, frame)
}

fn exec_opened(
    opened: crate::fs::exec::ExecStart,
    argv: u64,
    envp: u64,
    frame: &mut UserContext,
) -> SysResult {
    let argv = read_string_array(argv)?;
    let envp = read_string_array(envp)?;
    let argv: Vec<&[u8]> = argv.iter().map(Vec::as_slice).collect();
    let envp: Vec<&[u8]> = envp.iter().map(Vec::as_slice).collect();
    exec::execve(&sched::current(), opened, &argv, &envp, frame)?;
    Ok(0)
}

pub fn exit(a: Args) -> SysResult {
    do_exit(exit_status(a.0[0] as i32))
}

/// `exit_group`: every thread of the process exits with this status.
pub fn exit_group(a: Args) -> SysResult {
    crate::process::exit::do_group_exit(exit_status(a.0[0] as i32))
}

pub fn getppid() -> u64 {
    let task = sched::current();
    let parent = task.parent();
    // Seen from the caller's namespace: 0 if the parent is outside it.
    parent.map_or(0, |p| u64::from(p.tgid_in(&task.active_pid_ns())))
}

pub fn set_tid_address(a: Args) -> SysResult {
    let task = sched::current();
    task.set_clear_child_tid(a.0[0]);
    Ok(u64::from(task.tid_in(&task.active_pid_ns())))
}

const ARCH_SET_GS: u64 = 0x1001;
const ARCH_SET_FS: u64 = 0x1002;
const ARCH_GET_FS: u64 = 0x1003;
const ARCH_GET_GS: u64 = 0x1004;

/// `arch_prctl(code, address)`: the FS and GS bases. A base is a user
/// address (EPERM from TASK_SIZE up); a GET stores it at `address`
/// (EFAULT). Fork copies both, execve clears both, as Linux.
pub fn arch_prctl(a: Args) -> SysResult {
    let [code, address, ..] = a.0;
    let task = sched::current();
    // An `int` code.
    match code as u32 as u64 {
        ARCH_SET_GS => {
            if address >= crate::mm::vma::TASK_SIZE {
                return Err(crate::errno::EPERM);
            }
            task.set_gs_base(address);
            crate::arch::cpu::set_gs_base(address);
            Ok(0)
        }
        ARCH_GET_GS => {
            let base = crate::arch::cpu::live_gs_base(task.gs_base());
            current_mm()?.copy_to_user(address, &base.to_le_bytes())?;
            Ok(0)
        }
        ARCH_SET_FS => {
            if address >= crate::mm::vma::TASK_SIZE {
                return Err(crate::errno::EPERM);
            }
            task.set_fs_base(address);
            crate::arch::cpu::set_fs_base(address);
            Ok(0)
        }
        ARCH_GET_FS => {
            let base = crate::arch::cpu::live_fs_base(task.fs_base());
            current_mm()?.copy_to_user(address, &base.to_le_bytes())?;
            Ok(0)
        }
        _ => Err(EINVAL),
    }
}
