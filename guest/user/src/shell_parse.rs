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
        "show or set a kernel setting (kernel.sched_child_runs_first)",
        false,
    ),
    command("programs", "programs", "list the user programs", false),
    command("stat", "stat", "kernel event counters", false),
    command(
        "sysprobe",
        "sysprobe [N]",
        "time N getpid system calls from user mode",
        false,
    ),
    command(
        "bench",
        "bench fork|vfork|thread|clone-vm [--iters N] [--mem MIB]",
        "time process/thread creation + exit + reap in the shell itself",
        false,
    ),
    command("panic", "panic [MESSAGE]", "panic the kernel", true),
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

/// `sleep MS`.
pub fn sleep_ms(args: &[&[u8]]) -> Result<u64, UsageError> {
    match args {
        [ms] => parse_number(ms).ok_or(UsageError),
        _ => Err(UsageError),
    }
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
        assert_eq!(COMMANDS.iter().filter(|c| !c.hidden).count(), 16);
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
    fn errno_names() {
        assert_eq!(format!("{}", ErrName(Errno::ENOENT)), "ENOENT");
        assert_eq!(format!("{}", ErrName(Errno(41))), "errno 41");
    }
}
