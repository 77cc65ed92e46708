//! `sh`: forkvm's shell, in user space.
//!
//! - `sh`: interactive. Prompt `forkvm> `, line editing (`forkvm-lineedit`)
//!   on a raw serial line: reads single bytes from fd 0, echoes and redraws
//!   on fd 1. End of input (`read` returns 0) or Ctrl-D on an empty line
//!   ends it with status 0.
//! - `sh -c SCRIPT`: runs the commands of SCRIPT, separated by `;` or
//!   newlines, without prompt or echo; the exit status is the last
//!   command's (an empty command leaves it as it was).
//!
//! The builtins (see `help`) are those of the kernel's original built-in
//! shell, with the same names, usages, output lines and statuses
//! (`forkvm_user::shell_parse`, `forkvm_user::shell_report`): unknown
//! command 127, usage error 2. Kernel reports come from forkvm's own system
//! calls (`forkvm_user::forkvm`); on another kernel those fail with ENOSYS,
//! which the command reports before the shell goes on.
//!
//! Before every command the shell reaps children of its own that have ended
//! (with `wait4(-1, WNOHANG)`); orphans go to pid 1, `init`, which reaps
//! them at once.
//!
//! Process builtins, one line each (errors name the errno and its number):
//! - `clone FLAGS [EXIT_SIGNAL]`, `clone3 [KEY=VALUE...]`: `ok pid=N` or
//!   `err ENAME N` (status 0/1); a child that did not end normally adds
//!   `(how it ended)` after `ok pid=N`, status 1. The child exits 0 at once
//!   and is reaped (`forkvm_user::clone_probe`).
//! - `id`: `uid=U euid=E gid=G egid=H caps=0x<effective capabilities>`.
//! - `su UID [COMMAND...]`: a child does `setgid(UID)`, `setuid(UID)` and
//!   runs the builtin COMMAND (or an interactive shell); its status.
//!   `su: setgid: EPERM 1` (status 1) if it may not.
//! - `unshare FLAGS [COMMAND...]`: a child does `unshare(FLAGS)` and runs
//!   the builtin COMMAND (or a shell); `unshare: unshare: EPERM 1`.
//! - `ulimit -u [N]`: the soft `RLIMIT_NPROC` (`unlimited`), or sets soft and
//!   hard to N (silent); `ulimit: -u: EPERM 1`.
//! - `forkbomb [MAX]`: `forkbomb: N forks, stopped by EAGAIN 11` or
//!   `forkbomb: N forks, reached the limit`; then ends and reaps them all.
//!
//! Scheduling builtins:
//! - `nice N COMMAND...`: a child adds N to its nice value and runs the
//!   builtin COMMAND; `chrt [-f|-r|-b|-i|-o] PRIO COMMAND...`: a child takes
//!   SCHED_FIFO/RR (default)/BATCH/IDLE/OTHER at PRIO and runs COMMAND;
//!   their status, or `nice: setpriority: EACCES 13` / `chrt:
//!   sched_setscheduler: EPERM 1` (status 1).
//! - `renice N PID`: `PID (process ID) old priority O, new priority N`, or
//!   `renice: setpriority: EPERM 1` (status 1).
//!
//! Directory builtins (the shell's own working directory):
//! - `cd [DIR]` (default `/`), `mkdir DIR` (mode 0777 less the umask),
//!   `rmdir DIR`: silent on success, else `COMMAND: DIR: ENAME N` (status 1).
//! - `pwd`: the working directory, or `pwd: getcwd: ENAME N` (status 1).
#![no_std]
#![no_main]

extern crate alloc;

use alloc::ffi::CString;
use alloc::vec::Vec;
use core::ffi::CStr;
use core::fmt::Write;
use core::sync::atomic::{AtomicI32, Ordering};

use forkvm_lineedit::{LineEditor, LineEvent};
use forkvm_user::clone_probe::{
    clone3_exit0, clone_exit0, close_pidfd, reap, CloneArea, CloneArgs, ProbeResult,
    CLONE_ARGS_SIZE_VER2,
};
use forkvm_user::cred::{
    capget, getegid, geteuid, getgid, getrlimit, getuid, prlimit64, setgid, setuid, Rlimit,
    RLIMIT_NPROC,
};
use forkvm_user::exec::ExecImage;
use forkvm_user::forkvm::{self, TaskInfo};
use forkvm_user::io::{write_bytes, BufWriter, Bytes, STDOUT};
use forkvm_user::latency;
use forkvm_user::sched;
use forkvm_user::shell_parse::parse_number;
use forkvm_user::shell_parse::{
    cd_dir, clone3_spec, clone_command, exec_failure_status, find_command, forkbomb_max, kill_pid,
    one_dir, poweroff_status, shell_status, sleep_ms, split_commands, su_command, sysctl_setting,
    sysprobe_iterations, ticks_ms, ulimit_command, unshare_command, vconsole_echo_len, words,
    ErrName, PointerArg, Status, Ulimit, UsageError, PROMPT, STATUS_NOT_FOUND, STATUS_USAGE,
};
use forkvm_user::shell_report::{
    Banner, Bench, CallFailure, Forkbomb, Help, IdLine, LimitValue, Meminfo, PsHeader, PsRow,
    SysFailure, Sysprobe, Ticks, Uptime,
};
use forkvm_user::syscall::{
    chdir, close, exit_group, fork, getcwd, getpid, getppid, kill, mkdir, mmap, nanosleep, pipe2,
    read, rmdir, wait4, write_all, Pid, Timespec, WaitStatus, MAP_ANONYMOUS, MAP_SHARED, PROT_READ,
    PROT_WRITE, WNOHANG,
};
use forkvm_user::time::{monotonic_ns, rdtsc_serialized};
use forkvm_user::{entry, eprintln, print, println, Errno};

entry!(main);

/// Lines the interactive shell remembers.
const HISTORY: usize = 64;
use forkvm_user::signal::sig::SIGKILL;

/// What a builtin returns: a status, or a usage error (printed as
/// `usage: ...`, status 2).
type CommandResult = Result<Status, UsageError>;

struct Shell<'a> {
    /// Our own `argv[0]`: programs are also looked for next to it.
    argv0: &'a [u8],
    /// Passed on to the programs we run.
    env: &'a [&'a [u8]],
    /// A word of memory shared with forked children, where a child whose
    /// `execve` failed leaves the errno (so `run` does not also report its
    /// exit); `None` if no shared mapping could be made.
    exec_error: Option<&'static AtomicI32>,
}

fn main(args: &[&[u8]], env: &[&[u8]]) -> i32 {
    let shell = Shell {
        argv0: args.first().copied().unwrap_or(b"sh"),
        env,
        exec_error: shared_word(),
    };
    match args.get(1..).unwrap_or(&[]) {
        [] => shell.interactive(),
        [b"-c", script, ..] => shell.script(script),
        [b"-c"] => {
            eprintln!("sh: -c: option requires an argument\nusage: sh [-c SCRIPT]");
            STATUS_USAGE
        }
        _ => {
            eprintln!("usage: sh [-c SCRIPT]");
            STATUS_USAGE
        }
    }
}

/// One word in a fresh shared anonymous page (it stays mapped for the
/// shell's lifetime, in parent and children alike).
fn shared_word() -> Option<&'static AtomicI32> {
    // SAFETY: without MAP_FIXED no existing mapping is touched.
    let page = unsafe {
        mmap(
            0,
            4096,
            PROT_READ | PROT_WRITE,
            MAP_SHARED | MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    // SAFETY: a fresh zeroed page, never unmapped; AtomicI32 has the size
    // and (page) alignment it needs and any bits are a valid value.
    page.ok().map(|p| unsafe { &*p.cast::<AtomicI32>() })
}

/// Reads one byte from fd 0; `None` at end of input or on an error.
fn read_byte() -> Option<u8> {
    let mut byte = [0u8];
    loop {
        match read(0, &mut byte) {
            Ok(0) => return None,
            Ok(_) => return Some(byte[0]),
            Err(Errno::EINTR) => {}
            Err(_) => return None,
        }
    }
}

/// Reaps every child that has ended (orphans included), without waiting.
fn reap_strays() {
    while let Ok((pid, _)) = wait4(-1, WNOHANG) {
        if pid == 0 {
            break;
        }
    }
}

/// Waits for `pid`, retrying after interruptions.
fn wait_for(pid: Pid) -> Result<WaitStatus, Errno> {
    loop {
        match wait4(pid as i32, 0) {
            Ok((_, status)) => return Ok(status),
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
}

fn usage(name: &str) -> Status {
    if let Some(command) = find_command(name.as_bytes()) {
        println!("usage: {}", command.usage);
    }
    STATUS_USAGE
}

fn failure(command: &str, call: &str, errno: Errno) -> Status {
    println!(
        "{}",
        SysFailure {
            command,
            call,
            errno
        }
    );
    1
}

impl Shell<'_> {
    fn interactive(&self) -> Status {
        // The greeting is the boot's: the shell init started (a nested
        // shell stays quiet).
        if getppid() == 1 {
            if let Ok(info) = forkvm::system_info() {
                println!("{}", Banner(&info));
            }
        }
        let mut editor = LineEditor::new(HISTORY);
        // Terminal output of one input byte, written out at once.
        let mut echo: Vec<u8> = Vec::new();
        let flush = |echo: &mut Vec<u8>| {
            write_bytes(STDOUT, echo);
            echo.clear();
        };
        editor.start(PROMPT, &mut |bytes| echo.extend_from_slice(bytes));
        flush(&mut echo);
        loop {
            let Some(byte) = read_byte() else {
                // Run what was typed before the end of input, then stop.
                if let LineEvent::Line(line) =
                    editor.feed(b'\n', &mut |bytes| echo.extend_from_slice(bytes))
                {
                    flush(&mut echo);
                    self.execute(line.as_bytes());
                }
                return 0;
            };
            let event = editor.feed(byte, &mut |bytes| echo.extend_from_slice(bytes));
            flush(&mut echo);
            match event {
                LineEvent::Pending => continue,
                LineEvent::Line(line) => {
                    self.execute(line.as_bytes());
                }
                LineEvent::Interrupt => {}
                LineEvent::EndOfInput => return 0,
            }
            editor.start(PROMPT, &mut |bytes| echo.extend_from_slice(bytes));
            flush(&mut echo);
        }
    }

    fn script(&self, script: &[u8]) -> Status {
        let mut status = 0;
        for command in split_commands(script) {
            if let Some(s) = self.execute(command) {
                status = s;
            }
        }
        status
    }

    /// Runs one command; `None` for an empty one.
    fn execute(&self, line: &[u8]) -> Option<Status> {
        reap_strays();
        let words: Vec<&[u8]> = words(line).collect();
        self.dispatch(&words)
    }

    /// Runs the command made of `words`; `None` if there are none.
    fn dispatch(&self, words: &[&[u8]]) -> Option<Status> {
        let (&name, args) = words.split_first()?;
        let result = match name {
            b"help" => Ok(cmd_help()),
            b"echo" => Ok(cmd_echo(args)),
            b"meminfo" => Ok(cmd_meminfo()),
            b"uptime" => Ok(cmd_uptime()),
            b"ticks" => cmd_ticks(args),
            b"poweroff" => cmd_poweroff(args),
            b"run" => self.cmd_run(args),
            b"ps" => Ok(cmd_ps()),
            b"spin" => Ok(self.cmd_spin()),
            b"kill" => cmd_kill(args),
            b"sleep" => cmd_sleep(args),
            b"sysctl" => cmd_sysctl(args),
            b"programs" => Ok(cmd_programs()),
            b"devices" => Ok(cmd_devices()),
            b"vconsole-echo" => cmd_vconsole_echo(args),
            b"stat" => Ok(cmd_stat()),
            b"sysprobe" => cmd_sysprobe(args),
            b"bench" => cmd_bench(args),
            b"panic" => Ok(cmd_panic(args)),
            b"fault" => Ok(cmd_fault()),
            b"id" => cmd_id(args),
            b"su" => self.cmd_su(args),
            b"unshare" => self.cmd_unshare(args),
            b"ulimit" => cmd_ulimit(args),
            b"clone" => cmd_clone(args),
            b"clone3" => cmd_clone3(args),
            b"forkbomb" => cmd_forkbomb(args),
            b"cd" => cmd_cd(args),
            b"pwd" => cmd_pwd(args),
            b"mkdir" => cmd_mkdir(args),
            b"rmdir" => cmd_rmdir(args),
            b"nice" => self.cmd_nice(args),
            b"chrt" => self.cmd_chrt(args),
            b"renice" => cmd_renice(args),
            b"affinity" => self.cmd_affinity(args),
            _ => {
                println!("{}: command not found (try 'help')", Bytes(name));
                return Some(STATUS_NOT_FOUND);
            }
        };
        Some(
            result
                .unwrap_or_else(|UsageError| usage(core::str::from_utf8(name).unwrap_or_default())),
        )
    }

    /// Forks a child that executes `program` with `args`. If the `execve`
    /// fails the child prints `COMMAND: PROGRAM: ENAME` (or `COMMAND:
    /// ENAME` without `name_program`), records the errno in `exec_error`
    /// if given and exits 127 (no such program) or 126.
    fn spawn(
        &self,
        command: &str,
        program: &[u8],
        args: &[&[u8]],
        exec_error: Option<&AtomicI32>,
        name_program: bool,
    ) -> Result<Pid, Errno> {
        let image = ExecImage::new(program, args, self.env, self.argv0);
        if let Some(word) = exec_error {
            word.store(0, Ordering::SeqCst);
        }
        match fork()? {
            0 => {
                let e = image.exec();
                if let Some(word) = exec_error {
                    word.store(e.0, Ordering::SeqCst);
                }
                if name_program {
                    println!("{command}: {}: {}", Bytes(program), ErrName(e));
                } else {
                    println!("{command}: {}", ErrName(e));
                }
                exit_group(exec_failure_status(e))
            }
            pid => Ok(pid),
        }
    }

    fn cmd_run(&self, args: &[&[u8]]) -> CommandResult {
        let Some(&program) = args.first() else {
            return Err(UsageError);
        };
        let pid = match self.spawn("run", program, args, self.exec_error, true) {
            Ok(pid) => pid,
            Err(e) => {
                println!("run: {}: {}", Bytes(program), ErrName(e));
                return Ok(exec_failure_status(e));
            }
        };
        let status = match wait_for(pid) {
            Ok(status) => status,
            Err(e) => {
                println!("run: wait for {pid} failed: {}", ErrName(e));
                return Ok(1);
            }
        };
        let code = shell_status(status);
        let exec_failed = self
            .exec_error
            .is_some_and(|word| word.load(Ordering::SeqCst) != 0);
        if !exec_failed {
            if status.0 & 0x7f == 0 {
                println!("[{pid}] exited with status {code}");
            } else {
                println!("[{pid}] killed by signal {}", status.0 & 0x7f);
            }
        }
        Ok(code)
    }

    /// `su UID [COMMAND...]`: a child that takes group and user id UID
    /// (`setgid`, then `setuid`, which drops every capability when a root
    /// process becomes non-root) and runs COMMAND as a builtin, or an
    /// interactive shell; returns its status.
    fn cmd_su(&self, args: &[&[u8]]) -> CommandResult {
        let (uid, command) = su_command(args)?;
        Ok(self.run_in_child("su", command, || {
            setgid(uid).map_err(|errno| ("setgid", errno))?;
            setuid(uid).map_err(|errno| ("setuid", errno))
        }))
    }

    /// `unshare FLAGS [COMMAND...]`: a child that calls `unshare(FLAGS)`
    /// and runs COMMAND as a builtin, or an interactive shell; returns its
    /// status (1 with `unshare: unshare: ENAME N` if the call fails).
    fn cmd_unshare(&self, args: &[&[u8]]) -> CommandResult {
        let (flags, command) = unshare_command(args)?;
        Ok(self.run_in_child("unshare", command, || {
            forkvm_user::syscall::unshare(flags).map_err(|errno| ("unshare", errno))
        }))
    }

    // Scheduling builtins: nice, chrt (and `renice` below).

    /// `nice N COMMAND...`: a child that adds N to its nice value (Linux
    /// clamps it to -20..19) and runs the builtin COMMAND; its status.
    /// `nice: setpriority: EACCES 13` (status 1) if it may not.
    fn cmd_nice(&self, args: &[&[u8]]) -> CommandResult {
        let (&n, command) = args.split_first().ok_or(UsageError)?;
        let n: i32 = parse_number(n).ok_or(UsageError)?;
        if command.is_empty() {
            return Err(UsageError);
        }
        Ok(self.run_in_child("nice", command, || {
            let now = sched::nice_of(0).map_err(|errno| ("getpriority", errno))?;
            sched::setpriority(sched::PRIO_PROCESS, 0, now.saturating_add(n))
                .map_err(|errno| ("setpriority", errno))
        }))
    }

    /// `chrt [-f|-r|-b|-i|-o] PRIO COMMAND...`: a child that takes policy
    /// SCHED_FIFO, SCHED_RR (the default), SCHED_BATCH, SCHED_IDLE or
    /// SCHED_OTHER with priority PRIO (0 for the last three) and runs the
    /// builtin COMMAND; its status. `chrt: sched_setscheduler: EPERM 1`.
    fn cmd_chrt(&self, args: &[&[u8]]) -> CommandResult {
        let (policy, rest) = match args.first() {
            Some(&b"-f") => (sched::SCHED_FIFO, &args[1..]),
            Some(&b"-r") => (sched::SCHED_RR, &args[1..]),
            Some(&b"-b") => (sched::SCHED_BATCH, &args[1..]),
            Some(&b"-i") => (sched::SCHED_IDLE, &args[1..]),
            Some(&b"-o") => (sched::SCHED_NORMAL, &args[1..]),
            _ => (sched::SCHED_RR, args),
        };
        let (&priority, command) = rest.split_first().ok_or(UsageError)?;
        let priority: i32 = parse_number(priority).ok_or(UsageError)?;
        if command.is_empty() {
            return Err(UsageError);
        }
        Ok(self.run_in_child("chrt", command, || {
            sched::sched_setscheduler(0, policy, priority)
                .map_err(|errno| ("sched_setscheduler", errno))
        }))
    }

    /// `affinity MASK COMMAND...` (util-linux `taskset MASK`): a child that
    /// restricts itself to the CPUs of the hexadecimal MASK (bit n = CPU
    /// n; `0x` optional) and runs the builtin COMMAND; its status. The
    /// mask is inherited by what the command forks. `affinity:
    /// sched_setaffinity: EINVAL 22` (status 1) if it names no online CPU.
    fn cmd_affinity(&self, args: &[&[u8]]) -> CommandResult {
        let (&mask, command) = args.split_first().ok_or(UsageError)?;
        let digits = mask.strip_prefix(b"0x").unwrap_or(mask);
        let mask = core::str::from_utf8(digits)
            .ok()
            .and_then(|text| u64::from_str_radix(text, 16).ok())
            .ok_or(UsageError)?;
        if command.is_empty() {
            return Err(UsageError);
        }
        Ok(self.run_in_child("affinity", command, || {
            sched::sched_setaffinity(0, mask).map_err(|errno| ("sched_setaffinity", errno))
        }))
    }

    /// Forks a child that runs `prepare` (its failing call is reported as
    /// `NAME: CALL: ENAME N`, status 1), then COMMAND as a builtin or an
    /// interactive shell; returns the child's status.
    fn run_in_child(
        &self,
        name: &str,
        command: &[&[u8]],
        prepare: impl FnOnce() -> Result<(), (&'static str, Errno)>,
    ) -> Status {
        let pid = match fork() {
            Ok(0) => {
                if let Err((call, errno)) = prepare() {
                    call_failure(name, call, errno);
                    exit_group(1)
                }
                let status = if command.is_empty() {
                    self.interactive()
                } else {
                    self.dispatch(command).unwrap_or(0)
                };
                exit_group(status)
            }
            Ok(pid) => pid,
            Err(errno) => return call_failure(name, "fork", errno),
        };
        match wait_for(pid) {
            Ok(status) => shell_status(status),
            Err(errno) => call_failure(name, "wait4", errno),
        }
    }

    fn cmd_spin(&self) -> Status {
        match self.spawn("spin", b"spin", &[b"spin"], None, false) {
            Ok(pid) => {
                println!("[{pid}] spin");
                0
            }
            Err(e) => {
                println!("spin: {}", ErrName(e));
                1
            }
        }
    }
}

/// `renice N PID`: sets the nice value of PID (a thread id) to N and
/// prints `PID (process ID) old priority OLD, new priority NEW`
/// (util-linux's words); `renice: setpriority: EPERM 1` (status 1).
fn cmd_renice(args: &[&[u8]]) -> CommandResult {
    let [n, pid] = args else {
        return Err(UsageError);
    };
    let n: i32 = parse_number(n).ok_or(UsageError)?;
    let pid: i32 = parse_number(pid).ok_or(UsageError)?;
    let old = match sched::nice_of(pid) {
        Ok(old) => old,
        Err(errno) => return Ok(call_failure("renice", "getpriority", errno)),
    };
    if let Err(errno) = sched::setpriority(sched::PRIO_PROCESS, pid, n) {
        return Ok(call_failure("renice", "setpriority", errno));
    }
    let new = sched::nice_of(pid).unwrap_or(n);
    println!("{pid} (process ID) old priority {old}, new priority {new}");
    Ok(0)
}

/// Prints `COMMAND: CALL: ENAME N`; status 1.
fn call_failure(command: &str, call: &str, errno: Errno) -> Status {
    println!(
        "{}",
        CallFailure {
            command,
            call,
            errno
        }
    );
    1
}

fn cmd_id(args: &[&[u8]]) -> CommandResult {
    if !args.is_empty() {
        return Err(UsageError);
    }
    Ok(match capget(0) {
        Ok(caps) => {
            let line = IdLine {
                uid: getuid(),
                euid: geteuid(),
                gid: getgid(),
                egid: getegid(),
                caps: caps.effective,
            };
            println!("{line}");
            0
        }
        Err(errno) => call_failure("id", "capget", errno),
    })
}

/// `ulimit -u [N]`: reads with `getrlimit`, sets with `prlimit64` (pid 0).
fn cmd_ulimit(args: &[&[u8]]) -> CommandResult {
    Ok(match ulimit_command(args)? {
        Ulimit::Show => match getrlimit(RLIMIT_NPROC) {
            Ok(limit) => {
                println!("{}", LimitValue(limit.cur));
                0
            }
            Err(errno) => call_failure("ulimit", "-u", errno),
        },
        Ulimit::Set(n) => match prlimit64(0, RLIMIT_NPROC, Some(Rlimit { cur: n, max: n })) {
            Ok(_) => 0,
            Err(errno) => call_failure("ulimit", "-u", errno),
        },
    })
}

/// Prints `COMMAND: DIR: ENAME N`; status 1.
fn dir_failure(command: &str, dir: &[u8], errno: Errno) -> Status {
    println!("{command}: {}: {errno}", Bytes(dir));
    1
}

/// Runs `call` on `dir` as a C string (a NUL inside is a usage error);
/// silent on success, `COMMAND: DIR: ENAME N` on failure.
fn dir_call(
    command: &str,
    dir: &[u8],
    call: impl FnOnce(&CStr) -> Result<(), Errno>,
) -> CommandResult {
    let path = CString::new(dir).map_err(|_| UsageError)?;
    Ok(match call(&path) {
        Ok(()) => 0,
        Err(errno) => dir_failure(command, dir, errno),
    })
}

/// `cd [DIR]`: `chdir(DIR)`, `/` by default.
fn cmd_cd(args: &[&[u8]]) -> CommandResult {
    dir_call("cd", cd_dir(args)?, chdir)
}

/// `pwd`: the working directory (`getcwd`).
fn cmd_pwd(args: &[&[u8]]) -> CommandResult {
    if !args.is_empty() {
        return Err(UsageError);
    }
    let mut buf = alloc::vec![0u8; 4096];
    Ok(match getcwd(&mut buf) {
        Ok(n) => {
            println!("{}", Bytes(&buf[..n.saturating_sub(1)]));
            0
        }
        Err(errno) => call_failure("pwd", "getcwd", errno),
    })
}

/// `mkdir DIR`: mode 0777 less the umask.
fn cmd_mkdir(args: &[&[u8]]) -> CommandResult {
    dir_call("mkdir", one_dir(args)?, |path| mkdir(path, 0o777))
}

/// `rmdir DIR`.
fn cmd_rmdir(args: &[&[u8]]) -> CommandResult {
    dir_call("rmdir", one_dir(args)?, rmdir)
}

/// Prints a probe's line; its status.
fn probe_result(result: ProbeResult) -> Status {
    println!("{result}");
    result.status()
}

/// `clone FLAGS [EXIT_SIGNAL]`: legacy clone of a child that exits at
/// once, on a fresh stack, with `parent_tid`/`child_tid` pointing at words
/// of its area and `tls` 0 (see `forkvm_user::clone_probe`).
fn cmd_clone(args: &[&[u8]]) -> CommandResult {
    let (flags, signal) = clone_command(args)?;
    let flags = flags | signal;
    let area = match CloneArea::new() {
        Ok(area) => area,
        Err(errno) => return Ok(call_failure("clone", "mmap", errno)),
    };
    let result = match clone_exit0(flags, &area, 0) {
        Ok(pid) => {
            // Legacy clone stores the pidfd in the parent_tid word.
            close_pidfd(flags, area.ptid());
            let reaped = reap(flags, pid, Some(area.ctid()));
            if !reaped.area_free(flags) {
                area.leak();
            }
            ProbeResult::Ok(pid, reaped, flags)
        }
        Err(errno) => ProbeResult::Err(errno),
    };
    Ok(probe_result(result))
}

/// Largest `struct clone_args` buffer `clone3` gets (Linux refuses sizes
/// above a page with E2BIG before reading anything).
const CLONE3_BUFFER_MAX: usize = 64 * 1024;

/// `clone3 [KEY=VALUE...]`: builds `struct clone_args` in a zeroed buffer of
/// `size` bytes (at least 88, at most [`CLONE3_BUFFER_MAX`]) and calls
/// `clone3(buffer, size)` with a child that exits at once touching no stack.
/// Without `stack`, the child gets a valid stack and size; `valid` pointers
/// are words (and a TLS block) of its area.
fn cmd_clone3(args: &[&[u8]]) -> CommandResult {
    let spec = clone3_spec(args)?;
    let area = match CloneArea::new() {
        Ok(area) => area,
        Err(errno) => return Ok(call_failure("clone3", "mmap", errno)),
    };
    let address =
        |arg: Option<PointerArg>, valid: *mut u32| arg.map_or(0, |arg| arg.address(valid as u64));
    let set_tid = spec.set_tid();
    let clone_args = CloneArgs {
        flags: spec.flags,
        pidfd: address(spec.pidfd, area.pidfd().as_ptr()),
        child_tid: address(spec.child_tid, area.ctid().as_ptr()),
        parent_tid: address(spec.parent_tid, area.ptid().as_ptr()),
        exit_signal: spec.exit_signal,
        stack: spec.stack.unwrap_or(area.stack_base()),
        stack_size: spec.stack_size.unwrap_or(match spec.stack {
            None => area.stack_size(),
            Some(_) => 0,
        }),
        tls: spec.tls.map_or(0, |tls| tls.address(area.tls())),
        set_tid: if spec.has_set_tid {
            set_tid.as_ptr() as u64
        } else {
            0
        },
        set_tid_size: spec.set_tid_size.unwrap_or(set_tid.len() as u64),
        cgroup: spec.cgroup,
    };
    let size = usize::try_from(spec.size).unwrap_or(usize::MAX);
    let mut buffer = alloc::vec![0u8; size.clamp(CLONE_ARGS_SIZE_VER2, CLONE3_BUFFER_MAX)];
    buffer[..CLONE_ARGS_SIZE_VER2].copy_from_slice(&clone_args.to_bytes());
    // SAFETY: `valid` pointers are the area's words; raw addresses are what
    // the user asked the kernel to write to (this is a kernel test tool).
    // The child touches no stack and writes only `ran`, in its own copy or
    // (CLONE_VM) in the area, which is leaked if it might still be in use.
    let result = match unsafe { clone3_exit0(buffer.as_ptr(), size, area.ran().as_ptr()) } {
        Ok(pid) => {
            if spec.pidfd == Some(PointerArg::Valid) {
                close_pidfd(spec.flags, area.pidfd());
            }
            let ctid = (spec.child_tid == Some(PointerArg::Valid)).then(|| area.ctid());
            let reaped = reap(spec.flags, pid, ctid);
            if !reaped.area_free(spec.flags) {
                area.leak();
            }
            ProbeResult::Ok(pid, reaped, spec.flags)
        }
        Err(errno) => ProbeResult::Err(errno),
    };
    Ok(probe_result(result))
}

/// How long `forkbomb` waits for its children to end once their pipe is
/// closed, before it kills the rest.
const FORKBOMB_REAP_NS: u64 = 10_000_000_000;

/// `forkbomb [MAX]`: forks children that block reading a pipe until fork
/// fails or MAX are alive, reports, then closes the pipe (every child reads
/// end of file and exits) and reaps them all: polled with `WNOHANG` for at
/// most [`FORKBOMB_REAP_NS`], then any left are killed and reaped.
fn cmd_forkbomb(args: &[&[u8]]) -> CommandResult {
    let max = forkbomb_max(args)?;
    let [reader, writer] = match pipe2(0) {
        Ok(fds) => fds,
        Err(errno) => return Ok(call_failure("forkbomb", "pipe2", errno)),
    };
    let mut pids: Vec<Pid> = Vec::new();
    let mut stopped_by = None;
    while (pids.len() as u64) < max {
        match fork() {
            Ok(0) => {
                let _ = close(writer);
                let mut byte = [0u8];
                loop {
                    match read(reader, &mut byte) {
                        Ok(0) => break,
                        Ok(_) | Err(Errno::EINTR) => {}
                        Err(_) => break,
                    }
                }
                exit_group(0)
            }
            Ok(pid) => pids.push(pid),
            Err(errno) => {
                stopped_by = Some(errno);
                break;
            }
        }
    }
    println!(
        "{}",
        Forkbomb {
            forks: pids.len() as u64,
            stopped_by
        }
    );
    let _ = close(writer);
    let _ = close(reader);
    reap_all(&mut pids);
    Ok(0)
}

/// Reaps every child in `pids` (see [`cmd_forkbomb`]); other children that
/// end meanwhile are reaped too.
fn reap_all(pids: &mut Vec<Pid>) {
    pids.sort_unstable();
    let mut left = pids.len();
    let deadline = monotonic_ns() + FORKBOMB_REAP_NS;
    while left > 0 && monotonic_ns() < deadline {
        match wait4(-1, WNOHANG) {
            Ok((0, _)) => {
                let _ = nanosleep(Timespec::from_nanos(1_000_000));
            }
            Ok((pid, _)) => {
                if let Ok(i) = pids.binary_search(&pid) {
                    pids.remove(i);
                    left -= 1;
                }
            }
            Err(Errno::EINTR) => {}
            Err(_) => break,
        }
    }
    for &pid in pids.iter() {
        let _ = kill(pid as i32, SIGKILL);
        let _ = wait_for(pid);
    }
    pids.clear();
}

fn cmd_help() -> Status {
    print!("{Help}");
    0
}

fn cmd_echo(args: &[&[u8]]) -> Status {
    let mut line = Vec::new();
    for (i, word) in args.iter().enumerate() {
        if i > 0 {
            line.push(b' ');
        }
        line.extend_from_slice(word);
    }
    line.push(b'\n');
    write_bytes(STDOUT, &line);
    0
}

fn cmd_meminfo() -> Status {
    match forkvm::system_info() {
        Ok(info) => {
            println!("{}", Meminfo(&info));
            0
        }
        Err(e) => failure("meminfo", "forkvm_info", e),
    }
}

fn cmd_uptime() -> Status {
    match forkvm::system_info() {
        Ok(info) => {
            println!("{}", Uptime(&info));
            0
        }
        Err(e) => failure("uptime", "forkvm_info", e),
    }
}

fn cmd_ticks(args: &[&[u8]]) -> CommandResult {
    let ms = ticks_ms(args)?;
    Ok(match forkvm::diag_ticks(ms) {
        Ok(report) => {
            println!("{}", Ticks(&report));
            0
        }
        Err(e) => failure("ticks", "forkvm_diag", e),
    })
}

fn cmd_poweroff(args: &[&[u8]]) -> CommandResult {
    let status = poweroff_status(args)?;
    // Returns only if powering off failed.
    Ok(failure("poweroff", "reboot", forkvm::poweroff(status)))
}

fn cmd_ps() -> Status {
    // Room for the tasks there are now, and some more: a short buffer gets
    // a truncated list, so try again with more room if it filled up.
    let mut room = forkvm::system_info().map_or(0, |i| i.tasks as usize) + 16;
    loop {
        let mut tasks = alloc::vec![TaskInfo::default(); room];
        match forkvm::tasks(&mut tasks) {
            Ok(n) if n < room || room >= 1 << 20 => {
                let mut out = BufWriter::<2048>::new(STDOUT);
                let _ = writeln!(out, "{PsHeader}");
                for task in &tasks[..n] {
                    let _ = writeln!(out, "{}", PsRow(task));
                }
                let _ = out.flush();
                return 0;
            }
            Ok(_) => room *= 2,
            Err(e) => return failure("ps", "forkvm_info", e),
        }
    }
}

fn cmd_kill(args: &[&[u8]]) -> CommandResult {
    let pid = kill_pid(args)?;
    // 0 and "negative" pids would signal process groups, ourselves included.
    let target = match i32::try_from(pid) {
        Ok(target) if target > 0 => target,
        _ => {
            println!("kill: ({pid}): no such process");
            return Ok(1);
        }
    };
    Ok(match kill(target, SIGKILL) {
        Ok(()) => {
            // Reap it if it is ours (ECHILD otherwise), as the kernel shell did.
            let _ = wait_for(pid);
            0
        }
        Err(Errno::ESRCH) => {
            println!("kill: ({pid}): no such process");
            1
        }
        Err(e) => {
            println!("kill: ({pid}): {}", ErrName(e));
            1
        }
    })
}

fn cmd_sleep(args: &[&[u8]]) -> CommandResult {
    let ms = sleep_ms(args)?;
    let mut left = Timespec::from_nanos(ms.saturating_mul(1_000_000));
    loop {
        match nanosleep(left) {
            Ok(()) => return Ok(0),
            Err((Errno::EINTR, rest)) => left = rest,
            Err((e, _)) => return Ok(failure("sleep", "nanosleep", e)),
        }
    }
}

fn cmd_sysctl(args: &[&[u8]]) -> CommandResult {
    let (name, value) = sysctl_setting(args)?;
    let mut out = [0u8; 64];
    Ok(match forkvm::sysctl(name, value, &mut out) {
        Ok(n) => {
            println!("{} = {}", Bytes(name), Bytes(&out[..n.min(out.len())]));
            0
        }
        Err(Errno::ENOENT) => {
            println!(
                "sysctl: cannot stat {}: No such file or directory",
                Bytes(name)
            );
            1
        }
        Err(Errno::EINVAL) if value.is_some() => {
            println!(
                "sysctl: {}: invalid argument",
                Bytes(value.unwrap_or_default())
            );
            1
        }
        Err(e) => failure("sysctl", "forkvm_sysctl", e),
    })
}

fn cmd_programs() -> Status {
    info_text("programs", forkvm_abi::sys::INFO_PROGRAMS)
}

fn cmd_devices() -> Status {
    info_text("devices", forkvm_abi::sys::INFO_DEVICES)
}

/// Reads N bytes from the virtio console, sending each read back as it
/// comes, then reports on the serial console.
fn cmd_vconsole_echo(args: &[&[u8]]) -> CommandResult {
    let total = vconsole_echo_len(args)?;
    let fd = match forkvm::vconsole_open() {
        Ok(fd) => fd,
        Err(e) => return Ok(failure("vconsole-echo", "forkvm_vconsole_open", e)),
    };
    let mut buffer = [0u8; 4096];
    let mut done = 0u64;
    let mut status = 0;
    while done < total {
        let want = (total - done).min(buffer.len() as u64) as usize;
        let n = match read(fd, &mut buffer[..want]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(Errno::EINTR) => continue,
            Err(e) => {
                status = failure("vconsole-echo", "read", e);
                break;
            }
        };
        if let Err(e) = write_all(fd, &buffer[..n]) {
            status = failure("vconsole-echo", "write", e);
            break;
        }
        done += n as u64;
    }
    let _ = close(fd);
    println!("vconsole-echo: {done} bytes");
    Ok(status)
}

fn cmd_stat() -> Status {
    info_text("stat", forkvm_abi::sys::INFO_STATS)
}

/// Prints a text report of the kernel's (`forkvm_info` of `kind`).
fn info_text(command: &str, kind: u64) -> Status {
    let mut buffer = [0u8; 4096];
    match forkvm::info_raw(kind, &mut buffer) {
        Ok(n) => {
            let text = &buffer[..n];
            write_bytes(STDOUT, text);
            if !text.ends_with(b"\n") {
                write_bytes(STDOUT, b"\n");
            }
            0
        }
        Err(e) => failure(command, "forkvm_info", e),
    }
}

/// The TSC rate, if the kernel tells it (not on the host's Linux).
fn tsc_khz() -> Option<u64> {
    forkvm::system_info()
        .ok()
        .map(|i| i.tsc_khz)
        .filter(|&khz| khz > 0)
}

fn cmd_sysprobe(args: &[&[u8]]) -> CommandResult {
    let iterations = sysprobe_iterations(args)?;
    let tsc_khz = tsc_khz();
    let start = rdtsc_serialized();
    for _ in 0..iterations {
        getpid();
    }
    let total_cycles = rdtsc_serialized() - start;
    println!(
        "{}",
        Sysprobe {
            iterations,
            total_cycles,
            tsc_khz
        }
    );
    Ok(0)
}

fn cmd_bench(args: &[&[u8]]) -> CommandResult {
    let Ok(options) = latency::parse_args(args) else {
        println!("usage: bench {}", latency::USAGE_ARGS);
        return Ok(STATUS_USAGE);
    };
    let tsc_khz = tsc_khz();
    Ok(match latency::measure(&options) {
        Ok(cycles) => {
            println!(
                "{}",
                Bench {
                    op: options.op.name(),
                    iters: options.iters,
                    cycles,
                    tsc_khz
                }
            );
            0
        }
        Err(e) => {
            println!("bench: {e}");
            1
        }
    })
}

fn cmd_panic(args: &[&[u8]]) -> Status {
    // `panic --cpu N MESSAGE`: on CPU N (through an IPI if it is another).
    let (cpu, args) = match args {
        [b"--cpu", n, rest @ ..] => match parse_number::<u32>(n) {
            Some(cpu) => (Some(cpu), rest),
            None => return usage("panic [--cpu N] [MESSAGE]"),
        },
        _ => (None, args),
    };
    let mut message = Vec::new();
    for (i, word) in args.iter().enumerate() {
        if i > 0 {
            message.push(b' ');
        }
        message.extend_from_slice(word);
    }
    if message.is_empty() {
        message.extend_from_slice(b"requested from the shell");
    }
    // Returns only if the kernel did not panic.
    let error = match cpu {
        Some(cpu) => forkvm::diag_panic_on_cpu(cpu, &message),
        None => forkvm::diag_panic(&message),
    };
    failure("panic", "forkvm_diag", error)
}

fn cmd_fault() -> Status {
    failure("fault", "forkvm_diag", forkvm::diag_kernel_fault())
}
