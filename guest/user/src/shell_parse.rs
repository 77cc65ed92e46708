//! The shell's (`sh`) language and conventions, without system calls: the
//! command table, splitting scripts and lines, argument parsing and exit
//! statuses. The names, usages and statuses are those of the kernel's
//! original built-in shell, which the integration tests rely on.

use core::fmt;
use core::str::FromStr;

use crate::errno::Errno;
use crate::syscall::WaitStatus;

/// Exit status of a command (0 = success).
pub type Status = i32;
/// Status of an unknown command or a program that does not exist (POSIX).
pub const STATUS_NOT_FOUND: Status = 127;
/// Status of a program that exists but cannot be run (POSIX).
pub const STATUS_CANNOT_EXEC: Status = 126;
/// Status of a usage error.
pub const STATUS_USAGE: Status = 2;

/// The prompt of an interactive shell.
pub const PROMPT: &str = "forkvm> ";

/// A builtin command as `help` lists it.
#[derive(Clone, Copy, Debug)]
pub struct CommandInfo {
    /// What to type.
    pub name: &'static str,
    /// `usage: ...` text.
    pub usage: &'static str,
    /// One line for `help`.
    pub help: &'static str,
    /// Left out of `help` (test hooks).
    pub hidden: bool,
}

const fn command(
    name: &'static str,
    usage: &'static str,
    help: &'static str,
    hidden: bool,
) -> CommandInfo {
    CommandInfo {
        name,
        usage,
        help,
        hidden,
    }
}

/// Every builtin, in `help` order.
pub const COMMANDS: &[CommandInfo] = &[
    command("help", "help", "list the commands", false),
    command("echo", "echo [WORD...]", "print the words", false),
    command(
        "meminfo",
        "meminfo",
        "physical frames (total/free) and kernel heap",
        false,
    ),
    command("uptime", "uptime", "time since boot and timer ticks", false),
    command(
        "ticks",
        "ticks [MS]",
        "measure timer ticks delivered while the kernel spins, idles and runs user code",
        false,
    ),
    command(
        "poweroff",
        "poweroff [N]",
        "power the VM off; forkvm exits with status N (default 0)",
        false,
    ),
    command(
        "run",
        "run PROG [ARGS...]",
        "run a user program and wait for it; prints how it ended",
        false,
    ),
    command("ps", "ps", "list the tasks", false),
    command(
        "spin",
        "spin",
        "start a user process that computes forever (preemption test)",
        false,
    ),
    command("kill", "kill PID", "kill a process (SIGKILL)", false),
    command("sleep", "sleep MS", "sleep MS milliseconds", false),
    command(
        "sysctl",
        "sysctl NAME[=VALUE]",
        "show or set a kernel setting (kernel.sched_child_runs_first, kernel.threads-max)",
        false,
    ),
    command("programs", "programs", "list the user programs", false),
    command(
        "devices",
        "devices",
        "the devices the kernel found (virtio-mmio windows)",
        false,
    ),
    command(
        "vconsole-echo",
        "vconsole-echo N",
        "read N bytes from the virtio console and send them back",
        false,
    ),
    command("stat", "stat", "kernel event counters", false),
    command(
        "sysprobe",
        "sysprobe [N]",
        "time N getpid system calls from user mode",
        false,
    ),
    command(
        "bench",
        "bench OP [--iters N] [--mem MIB]",
        "time OP in the shell itself: create + exit + reap (fork vfork thread clone-vm) \
         or a refused creation (clone-einval rlimit-eagain max-threads-eagain)",
        false,
    ),
    command(
        "id",
        "id",
        "print the real and effective user and group ids and the effective capabilities",
        false,
    ),
    command(
        "su",
        "su UID [COMMAND...]",
        "run COMMAND (or a shell) in a child as user and group UID",
        false,
    ),
    command(
        "unshare",
        "unshare FLAGS [COMMAND...]",
        "run COMMAND (or a shell) in a child that unshares FLAGS (0x10000000: a user namespace)",
        false,
    ),
    command(
        "ulimit",
        "ulimit -u [N]",
        "show the soft process limit (RLIMIT_NPROC), or set soft and hard to N",
        false,
    ),
    command(
        "clone",
        "clone FLAGS [EXIT_SIGNAL]",
        "clone(FLAGS | EXIT_SIGNAL) a child that exits at once and reap it",
        false,
    ),
    command(
        "clone3",
        "clone3 [KEY=VALUE...]",
        "clone3 a child that exits at once and reap it; keys: flags exit_signal stack \
         stack_size tls set_tid set_tid_size cgroup size pidfd parent_tid child_tid",
        false,
    ),
    command(
        "forkbomb",
        "forkbomb [MAX]",
        "fork waiting children until fork fails or MAX (default 10000), then end them",
        false,
    ),
    command(
        "cd",
        "cd [DIR]",
        "change the working directory (default /)",
        false,
    ),
    command("pwd", "pwd", "print the working directory", false),
    command("mkdir", "mkdir DIR", "make a directory", false),
    command("rmdir", "rmdir DIR", "remove an empty directory", false),
    command(
        "nice",
        "nice N COMMAND...",
        "run the builtin COMMAND in a child with its nice value raised by N",
        false,
    ),
    command(
        "chrt",
        "chrt [-f|-r|-b|-i|-o] PRIO COMMAND...",
        "run the builtin COMMAND in a child with policy FIFO/RR/BATCH/IDLE/OTHER at PRIO",
        false,
    ),
    command(
        "renice",
        "renice N PID",
        "set the nice value of PID to N",
        false,
    ),
    command(
        "affinity",
        "affinity MASK COMMAND...",
        "run the builtin COMMAND in a child bound to the CPUs of the hex MASK (taskset)",
        false,
    ),
    command(
        "panic",
        "panic [--cpu N] [MESSAGE]",
        "panic the kernel (on CPU N)",
        true,
    ),
    command("fault", "fault", "touch an unmapped kernel address", true),
];

/// The builtin named `name`.
pub fn find_command(name: &[u8]) -> Option<&'static CommandInfo> {
    COMMANDS.iter().find(|c| c.name.as_bytes() == name)
}

/// The commands of a script: separated by `;` or newlines (a command may
/// be empty).
pub fn split_commands(script: &[u8]) -> impl Iterator<Item = &[u8]> {
    script.split(|&b| b == b';' || b == b'\n')
}

/// Whitespace between words (what `str::split_whitespace` splits ASCII on).
pub fn is_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// The words of a command, split on runs of whitespace.
pub fn words(line: &[u8]) -> impl Iterator<Item = &[u8]> {
    line.split(|&b| is_space(b)).filter(|w| !w.is_empty())
}

/// A decimal number as Rust's `str::parse` reads it (an optional `+`, no
/// spaces, no overflow).
pub fn parse_number<T: FromStr>(word: &[u8]) -> Option<T> {
    core::str::from_utf8(word).ok()?.parse().ok()
}

/// A usage error: the command prints `usage: ...` and returns
/// [`STATUS_USAGE`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UsageError;

/// `[N]` with N in `range`: `default` without an argument.
pub fn optional_number_in(
    args: &[&[u8]],
    default: u64,
    range: core::ops::RangeInclusive<u64>,
) -> Result<u64, UsageError> {
    match args {
        [] => Ok(default),
        [n] => parse_number::<u64>(n)
            .filter(|n| range.contains(n))
            .ok_or(UsageError),
        _ => Err(UsageError),
    }
}

/// `ticks [MS]`: the window in milliseconds, 1..=10000 (default 100).
pub fn ticks_ms(args: &[&[u8]]) -> Result<u64, UsageError> {
    optional_number_in(args, 100, 1..=10_000)
}

/// `sysprobe [N]`: the number of calls, 1..=1000000 (default 1000).
pub fn sysprobe_iterations(args: &[&[u8]]) -> Result<u64, UsageError> {
    optional_number_in(args, 1000, 1..=1_000_000)
}

/// `poweroff [N]`: the status, 0..=255 (default 0).
pub fn poweroff_status(args: &[&[u8]]) -> Result<u8, UsageError> {
    match args {
        [] => Ok(0),
        [n] => parse_number(n).ok_or(UsageError),
        _ => Err(UsageError),
    }
}

/// `kill PID`.
pub fn kill_pid(args: &[&[u8]]) -> Result<u32, UsageError> {
    match args {
        [pid] => parse_number(pid).ok_or(UsageError),
        _ => Err(UsageError),
    }
}

/// `cd [DIR]`: the directory, `/` without one.
pub fn cd_dir<'a>(args: &[&'a [u8]]) -> Result<&'a [u8], UsageError> {
    match args {
        [] => Ok(b"/"),
        [dir] => Ok(dir),
        _ => Err(UsageError),
    }
}

/// `mkdir DIR`, `rmdir DIR`: the one directory.
pub fn one_dir<'a>(args: &[&'a [u8]]) -> Result<&'a [u8], UsageError> {
    match args {
        [dir] => Ok(dir),
        _ => Err(UsageError),
    }
}

/// `sleep MS`.
pub fn sleep_ms(args: &[&[u8]]) -> Result<u64, UsageError> {
    match args {
        [ms] => parse_number(ms).ok_or(UsageError),
        _ => Err(UsageError),
    }
}

/// `vconsole-echo N`: the byte count.
pub fn vconsole_echo_len(args: &[&[u8]]) -> Result<u64, UsageError> {
    sleep_ms(args)
}

/// `sysctl NAME[=VALUE]`: the name and the value to set, if any.
pub fn sysctl_setting<'a>(args: &[&'a [u8]]) -> Result<(&'a [u8], Option<&'a [u8]>), UsageError> {
    let [setting] = args else {
        return Err(UsageError);
    };
    Ok(match setting.iter().position(|&b| b == b'=') {
        Some(i) => (&setting[..i], Some(&setting[i + 1..])),
        None => (setting, None),
    })
}

/// A number in hex (`0x...`, `0X...`) or decimal.
pub fn parse_u64(word: &[u8]) -> Option<u64> {
    match word {
        [b'0', b'x' | b'X', hex @ ..] if !hex.is_empty() && hex[0] != b'+' => {
            u64::from_str_radix(core::str::from_utf8(hex).ok()?, 16).ok()
        }
        _ => parse_number(word),
    }
}

/// `clone FLAGS [EXIT_SIGNAL]`: the flags (hex or decimal) and the exit
/// signal (decimal, 0..=255, default 0) to OR into them.
pub fn clone_command(args: &[&[u8]]) -> Result<(u64, u64), UsageError> {
    let (flags, signal) = match args {
        [flags] => (flags, None),
        [flags, signal] => (flags, Some(signal)),
        _ => return Err(UsageError),
    };
    let flags = parse_u64(flags).ok_or(UsageError)?;
    let signal = match signal {
        None => 0,
        Some(s) => u64::from(parse_number::<u8>(s).ok_or(UsageError)?),
    };
    Ok((flags, signal))
}

/// A pointer argument of `clone3`: a valid word of the shell's, or a raw
/// address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PointerArg {
    /// `valid`: a word (or TLS block) the shell provides.
    Valid,
    /// A number: passed as is.
    Raw(u64),
}

impl PointerArg {
    /// The address: `valid` for [`PointerArg::Valid`], or the raw one.
    pub fn address(self, valid: u64) -> u64 {
        match self {
            PointerArg::Valid => valid,
            PointerArg::Raw(address) => address,
        }
    }
}

/// Most `set_tid` entries `clone3 set_tid=...` takes (Linux allows 32).
pub const MAX_SET_TID: usize = 64;

/// `clone3 [KEY=VALUE...]`: what to put in `struct clone_args`. Numbers are
/// hex (`0x...`) or decimal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Clone3Spec {
    /// `flags` (default 0).
    pub flags: u64,
    /// `exit_signal` (default 0).
    pub exit_signal: u64,
    /// `stack`; `None`: a valid stack of the shell's.
    pub stack: Option<u64>,
    /// `stack_size`; `None`: the shell's stack's size if `stack` is not
    /// given either, else 0.
    pub stack_size: Option<u64>,
    /// `tls` (`valid`: a TLS block; default 0).
    pub tls: Option<PointerArg>,
    /// `set_tid=PID,PID...` (decimal `pid_t`s): the entries, the first
    /// `set_tid_len` of them. The pointer is 0 if `has_set_tid` is false.
    pub set_tid: [i32; MAX_SET_TID],
    /// How many `set_tid` entries were given.
    pub set_tid_len: usize,
    /// Whether `set_tid` was given (an empty list still passes a pointer).
    pub has_set_tid: bool,
    /// `set_tid_size`; `None`: the number of `set_tid` entries.
    pub set_tid_size: Option<u64>,
    /// `cgroup` (default 0).
    pub cgroup: u64,
    /// `size`: the size passed to `clone3` (default 88, `CLONE_ARGS_SIZE_VER2`).
    pub size: u64,
    /// `pidfd` (default NULL).
    pub pidfd: Option<PointerArg>,
    /// `parent_tid` (default NULL).
    pub parent_tid: Option<PointerArg>,
    /// `child_tid` (default NULL).
    pub child_tid: Option<PointerArg>,
}

impl Default for Clone3Spec {
    fn default() -> Self {
        Self {
            flags: 0,
            exit_signal: 0,
            stack: None,
            stack_size: None,
            tls: None,
            set_tid: [0; MAX_SET_TID],
            set_tid_len: 0,
            has_set_tid: false,
            set_tid_size: None,
            cgroup: 0,
            size: 88,
            pidfd: None,
            parent_tid: None,
            child_tid: None,
        }
    }
}

impl Clone3Spec {
    /// The `set_tid` entries given.
    pub fn set_tid(&self) -> &[i32] {
        &self.set_tid[..self.set_tid_len]
    }
}

fn pointer_arg(value: &[u8]) -> Option<PointerArg> {
    if value == b"valid" {
        Some(PointerArg::Valid)
    } else {
        parse_u64(value).map(PointerArg::Raw)
    }
}

/// Parses `clone3`'s `KEY=VALUE` words (a key given twice: the last wins).
pub fn clone3_spec(args: &[&[u8]]) -> Result<Clone3Spec, UsageError> {
    let mut spec = Clone3Spec::default();
    for arg in args {
        let i = arg.iter().position(|&b| b == b'=').ok_or(UsageError)?;
        let (key, value) = (&arg[..i], &arg[i + 1..]);
        let number = || parse_u64(value).ok_or(UsageError);
        let pointer = || pointer_arg(value).ok_or(UsageError);
        match key {
            b"flags" => spec.flags = number()?,
            b"exit_signal" => spec.exit_signal = number()?,
            b"stack" => spec.stack = Some(number()?),
            b"stack_size" => spec.stack_size = Some(number()?),
            b"tls" => spec.tls = Some(pointer()?),
            b"set_tid_size" => spec.set_tid_size = Some(number()?),
            b"cgroup" => spec.cgroup = number()?,
            b"size" => spec.size = number()?,
            b"pidfd" => spec.pidfd = Some(pointer()?),
            b"parent_tid" => spec.parent_tid = Some(pointer()?),
            b"child_tid" => spec.child_tid = Some(pointer()?),
            b"set_tid" => {
                spec.has_set_tid = true;
                spec.set_tid_len = 0;
                for pid in value.split(|&b| b == b',').filter(|p| !p.is_empty()) {
                    let slot = spec.set_tid.get_mut(spec.set_tid_len).ok_or(UsageError)?;
                    *slot = parse_number(pid).ok_or(UsageError)?;
                    spec.set_tid_len += 1;
                }
            }
            _ => return Err(UsageError),
        }
    }
    Ok(spec)
}

/// `ulimit -u [N]`: show, or set soft and hard limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ulimit {
    /// `ulimit -u`.
    Show,
    /// `ulimit -u N` (`unlimited`: `u64::MAX`, `RLIM_INFINITY`).
    Set(u64),
}

/// `ulimit -u [N|unlimited]`.
pub fn ulimit_command(args: &[&[u8]]) -> Result<Ulimit, UsageError> {
    match args {
        [b"-u"] => Ok(Ulimit::Show),
        [b"-u", b"unlimited"] => Ok(Ulimit::Set(u64::MAX)),
        [b"-u", n] => parse_number(n).map(Ulimit::Set).ok_or(UsageError),
        _ => Err(UsageError),
    }
}

/// `su UID [COMMAND...]`: the id and the command's words (maybe none).
pub fn su_command<'a, 'b>(args: &'a [&'b [u8]]) -> Result<(u32, &'a [&'b [u8]]), UsageError> {
    let (uid, command) = args.split_first().ok_or(UsageError)?;
    Ok((parse_number(uid).ok_or(UsageError)?, command))
}

/// `unshare FLAGS [COMMAND...]`: the clone flags (hex `0x...` or decimal)
/// and the command's words (maybe none).
pub fn unshare_command<'a, 'b>(args: &'a [&'b [u8]]) -> Result<(u64, &'a [&'b [u8]]), UsageError> {
    let (flags, command) = args.split_first().ok_or(UsageError)?;
    Ok((parse_u64(flags).ok_or(UsageError)?, command))
}

/// `forkbomb [MAX]`: 1..=1000000, default 10000.
pub fn forkbomb_max(args: &[&[u8]]) -> Result<u64, UsageError> {
    optional_number_in(args, 10_000, 1..=1_000_000)
}

/// The status a shell reports for a child that ended with `status`: its
/// exit code, or 128 + the signal that killed it.
pub fn shell_status(status: WaitStatus) -> Status {
    if status.0 & 0x7f == 0 {
        status.exit_status()
    } else {
        128 + (status.0 & 0x7f)
    }
}

/// The status of a child whose `execve` failed with `errno`: 127 if there
/// is no such program, else 126.
pub fn exec_failure_status(errno: Errno) -> Status {
    if errno == Errno::ENOENT {
        STATUS_NOT_FOUND
    } else {
        STATUS_CANNOT_EXEC
    }
}

/// Where to look for a program `name` that `execve` did not find as given:
/// the directory of the running program's own path `argv0` (on the host the
/// programs sit side by side). The result is that directory with its
/// trailing `/`, to put in front of `name`; `None` if `name` is a path or
/// `argv0` is not.
pub fn sibling_dir<'a>(argv0: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    if name.is_empty() || name.contains(&b'/') {
        return None;
    }
    let slash = argv0.iter().rposition(|&b| b == b'/')?;
    Some(&argv0[..=slash])
}

/// An errno as the shell prints it: its name (`ENOENT`), or `errno N`.
#[derive(Clone, Copy, Debug)]
pub struct ErrName(pub Errno);

impl fmt::Display for ErrName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "errno {}", self.0 .0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect<'a>(it: impl Iterator<Item = &'a [u8]>) -> Vec<&'a str> {
        it.map(|w| core::str::from_utf8(w).unwrap()).collect()
    }

    #[test]
    fn scripts_split_on_semicolons_and_newlines() {
        assert_eq!(
            collect(split_commands(b"echo one; echo two\necho three;;")),
            ["echo one", " echo two", "echo three", "", ""]
        );
        assert_eq!(collect(split_commands(b"")), [""]);
        assert_eq!(collect(split_commands(b"help")), ["help"]);
    }

    #[test]
    fn lines_split_into_words() {
        assert_eq!(
            collect(words(b"  run  hello\ta b \r")),
            ["run", "hello", "a", "b"]
        );
        assert!(words(b" \t ").next().is_none());
        assert!(words(b"").next().is_none());
        assert_eq!(collect(words(b"x\x0by\x0cz")), ["x", "y", "z"]);
    }

    #[test]
    fn numbers_parse_like_str_parse() {
        assert_eq!(parse_number::<u64>(b"42"), Some(42));
        assert_eq!(parse_number::<u64>(b"+7"), Some(7));
        assert_eq!(parse_number::<u64>(b"-1"), None);
        assert_eq!(parse_number::<u64>(b" 1"), None);
        assert_eq!(parse_number::<u64>(b""), None);
        assert_eq!(parse_number::<u64>(b"0x10"), None);
        assert_eq!(parse_number::<u8>(b"255"), Some(255));
        assert_eq!(parse_number::<u8>(b"256"), None);
        assert_eq!(parse_number::<u32>(b"\xff"), None);
    }

    #[test]
    fn builtin_arguments() {
        assert_eq!(ticks_ms(&[]), Ok(100));
        assert_eq!(ticks_ms(&[b"1"]), Ok(1));
        assert_eq!(ticks_ms(&[b"10000"]), Ok(10_000));
        assert_eq!(ticks_ms(&[b"0"]), Err(UsageError));
        assert_eq!(ticks_ms(&[b"10001"]), Err(UsageError));
        assert_eq!(ticks_ms(&[b"1", b"2"]), Err(UsageError));
        assert_eq!(sysprobe_iterations(&[]), Ok(1000));
        assert_eq!(sysprobe_iterations(&[b"1000000"]), Ok(1_000_000));
        assert_eq!(sysprobe_iterations(&[b"1000001"]), Err(UsageError));
        assert_eq!(poweroff_status(&[]), Ok(0));
        assert_eq!(poweroff_status(&[b"255"]), Ok(255));
        assert_eq!(poweroff_status(&[b"256"]), Err(UsageError));
        assert_eq!(poweroff_status(&[b"notanumber"]), Err(UsageError));
        assert_eq!(poweroff_status(&[b"1", b"2"]), Err(UsageError));
        assert_eq!(kill_pid(&[b"12"]), Ok(12));
        assert_eq!(kill_pid(&[]), Err(UsageError));
        assert_eq!(kill_pid(&[b"-1"]), Err(UsageError));
        assert_eq!(sleep_ms(&[b"100"]), Ok(100));
        assert_eq!(sleep_ms(&[b"x"]), Err(UsageError));
        assert_eq!(sleep_ms(&[]), Err(UsageError));
    }

    #[test]
    fn sysctl_settings() {
        assert_eq!(sysctl_setting(&[b"a.b"]), Ok((&b"a.b"[..], None)));
        assert_eq!(
            sysctl_setting(&[b"a.b=1"]),
            Ok((&b"a.b"[..], Some(&b"1"[..])))
        );
        assert_eq!(
            sysctl_setting(&[b"a.b="]),
            Ok((&b"a.b"[..], Some(&b""[..])))
        );
        assert_eq!(
            sysctl_setting(&[b"a=b=c"]),
            Ok((&b"a"[..], Some(&b"b=c"[..])))
        );
        assert_eq!(sysctl_setting(&[]), Err(UsageError));
        assert_eq!(sysctl_setting(&[b"a", b"b"]), Err(UsageError));
    }

    #[test]
    fn statuses() {
        assert_eq!(shell_status(WaitStatus(0)), 0);
        assert_eq!(shell_status(WaitStatus(42 << 8)), 42);
        assert_eq!(shell_status(WaitStatus(134 << 8)), 134);
        assert_eq!(shell_status(WaitStatus(9)), 137);
        assert_eq!(shell_status(WaitStatus(11 | 0x80)), 139);
        assert_eq!(exec_failure_status(Errno::ENOENT), 127);
        assert_eq!(exec_failure_status(Errno::EACCES), 126);
        assert_eq!(exec_failure_status(Errno::ENOEXEC), 126);
    }

    #[test]
    fn sibling_directories() {
        assert_eq!(sibling_dir(b"/a/b/sh", b"hello"), Some(&b"/a/b/"[..]));
        assert_eq!(sibling_dir(b"./sh", b"hello"), Some(&b"./"[..]));
        assert_eq!(sibling_dir(b"/sh", b"hello"), Some(&b"/"[..]));
        assert_eq!(sibling_dir(b"sh", b"hello"), None);
        assert_eq!(sibling_dir(b"/a/sh", b"b/hello"), None);
        assert_eq!(sibling_dir(b"/a/sh", b""), None);
    }

    #[test]
    fn command_table() {
        assert_eq!(find_command(b"run").unwrap().usage, "run PROG [ARGS...]");
        assert!(find_command(b"panic").unwrap().hidden);
        assert!(find_command(b"fault").unwrap().hidden);
        assert!(find_command(b"nope").is_none());
        assert_eq!(COMMANDS.iter().filter(|c| !c.hidden).count(), 33);
        assert_eq!(
            find_command(b"vconsole-echo").unwrap().usage,
            "vconsole-echo N"
        );
        assert!(!find_command(b"devices").unwrap().hidden);
        for (i, c) in COMMANDS.iter().enumerate() {
            assert!(c.usage.starts_with(c.name), "{}", c.name);
            assert!(
                COMMANDS[..i].iter().all(|d| d.name != c.name),
                "{} twice",
                c.name
            );
        }
    }

    #[test]
    fn directory_arguments() {
        assert_eq!(cd_dir(&[]), Ok(&b"/"[..]));
        assert_eq!(cd_dir(&[b"/tmp"]), Ok(&b"/tmp"[..]));
        assert_eq!(cd_dir(&[b"a", b"b"]), Err(UsageError));
        assert_eq!(one_dir(&[b"x"]), Ok(&b"x"[..]));
        assert_eq!(one_dir(&[]), Err(UsageError));
        assert_eq!(one_dir(&[b"x", b"y"]), Err(UsageError));
    }

    #[test]
    fn hex_or_decimal() {
        assert_eq!(parse_u64(b"0x11"), Some(0x11));
        assert_eq!(parse_u64(b"0X10000"), Some(0x10000));
        assert_eq!(parse_u64(b"0xffffffffffffffff"), Some(u64::MAX));
        assert_eq!(parse_u64(b"0x10000000000000000"), None);
        assert_eq!(parse_u64(b"17"), Some(17));
        assert_eq!(parse_u64(b"0"), Some(0));
        assert_eq!(parse_u64(b"0x"), None);
        assert_eq!(parse_u64(b"0x+1"), None);
        assert_eq!(parse_u64(b"0xg"), None);
        assert_eq!(parse_u64(b"-1"), None);
        assert_eq!(parse_u64(b""), None);
    }

    #[test]
    fn clone_arguments() {
        assert_eq!(clone_command(&[b"0x11"]), Ok((0x11, 0)));
        assert_eq!(clone_command(&[b"256", b"17"]), Ok((256, 17)));
        assert_eq!(clone_command(&[b"0x100", b"0"]), Ok((0x100, 0)));
        assert_eq!(clone_command(&[b"0x100", b"256"]), Err(UsageError));
        assert_eq!(clone_command(&[b"0x100", b"0x11"]), Err(UsageError));
        assert_eq!(clone_command(&[]), Err(UsageError));
        assert_eq!(clone_command(&[b"x"]), Err(UsageError));
        assert_eq!(clone_command(&[b"1", b"2", b"3"]), Err(UsageError));
    }

    #[test]
    fn clone3_arguments() {
        assert_eq!(clone3_spec(&[]), Ok(Clone3Spec::default()));
        assert_eq!(Clone3Spec::default().size, 88);
        let spec = clone3_spec(&[
            b"flags=0x100",
            b"exit_signal=17",
            b"stack=4096",
            b"stack_size=0",
            b"tls=valid",
            b"set_tid=1,-2,300",
            b"cgroup=3",
            b"size=96",
            b"pidfd=valid",
            b"parent_tid=0x10",
            b"child_tid=valid",
        ])
        .unwrap();
        assert_eq!(spec.flags, 0x100);
        assert_eq!(spec.exit_signal, 17);
        assert_eq!(spec.stack, Some(4096));
        assert_eq!(spec.stack_size, Some(0));
        assert_eq!(spec.tls, Some(PointerArg::Valid));
        assert_eq!(spec.set_tid(), [1, -2, 300]);
        assert!(spec.has_set_tid);
        assert_eq!(spec.set_tid_size, None);
        assert_eq!(spec.cgroup, 3);
        assert_eq!(spec.size, 96);
        assert_eq!(spec.pidfd, Some(PointerArg::Valid));
        assert_eq!(spec.parent_tid, Some(PointerArg::Raw(0x10)));
        assert_eq!(spec.parent_tid.unwrap().address(99), 0x10);
        assert_eq!(spec.child_tid.unwrap().address(99), 99);
        let spec = clone3_spec(&[b"set_tid=", b"set_tid_size=2", b"size=8"]).unwrap();
        assert!(spec.has_set_tid && spec.set_tid().is_empty());
        assert_eq!(spec.set_tid_size, Some(2));
        assert_eq!(spec.size, 8);
        let many = format!("set_tid={}", ["1"; MAX_SET_TID].join(","));
        assert_eq!(
            clone3_spec(&[many.as_bytes()]).unwrap().set_tid_len,
            MAX_SET_TID
        );
        let too_many = format!("{many},1");
        assert_eq!(clone3_spec(&[too_many.as_bytes()]), Err(UsageError));
        for bad in [
            &b"flags"[..],
            b"flags=",
            b"bogus=1",
            b"size=x",
            b"pidfd=invalid",
            b"set_tid=1,x",
            b"set_tid=99999999999",
        ] {
            assert_eq!(clone3_spec(&[bad]), Err(UsageError), "{:?}", bad);
        }
    }

    #[test]
    fn ulimit_su_forkbomb_arguments() {
        assert_eq!(ulimit_command(&[b"-u"]), Ok(Ulimit::Show));
        assert_eq!(ulimit_command(&[b"-u", b"20"]), Ok(Ulimit::Set(20)));
        assert_eq!(
            ulimit_command(&[b"-u", b"unlimited"]),
            Ok(Ulimit::Set(u64::MAX))
        );
        assert_eq!(ulimit_command(&[]), Err(UsageError));
        assert_eq!(ulimit_command(&[b"-n"]), Err(UsageError));
        assert_eq!(ulimit_command(&[b"-u", b"x"]), Err(UsageError));
        assert_eq!(ulimit_command(&[b"-u", b"1", b"2"]), Err(UsageError));
        let args: [&[u8]; 3] = [b"65534", b"clone", b"0x11"];
        let (uid, command) = su_command(&args).unwrap();
        assert_eq!(uid, 65534);
        assert_eq!(command, [&b"clone"[..], b"0x11"]);
        assert_eq!(su_command(&[b"0"]), Ok((0, &[][..])));
        assert_eq!(su_command(&[]), Err(UsageError));
        assert_eq!(su_command(&[b"nobody", b"id"]), Err(UsageError));
        assert_eq!(su_command(&[b"-1"]), Err(UsageError));
        let args: [&[u8]; 3] = [b"0x10000000", b"id", b"-x"];
        let (flags, command) = unshare_command(&args).unwrap();
        assert_eq!((flags, command), (0x1000_0000, &args[1..]));
        assert_eq!(unshare_command(&[b"67108864"]), Ok((0x400_0000, &[][..])));
        assert_eq!(unshare_command(&[]), Err(UsageError));
        assert_eq!(unshare_command(&[b"user"]), Err(UsageError));
        assert_eq!(forkbomb_max(&[]), Ok(10_000));
        assert_eq!(forkbomb_max(&[b"50"]), Ok(50));
        assert_eq!(forkbomb_max(&[b"0"]), Err(UsageError));
        assert_eq!(forkbomb_max(&[b"1000001"]), Err(UsageError));
    }

    #[test]
    fn errno_names() {
        assert_eq!(format!("{}", ErrName(Errno::ENOENT)), "ENOENT");
        assert_eq!(format!("{}", ErrName(Errno(41))), "errno 41");
    }
}
