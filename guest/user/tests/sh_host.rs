//! Runs the user-space shell (`sh`) and `init` on the host's Linux. Its
//! builtins and output formats are what the guest's integration tests
//! parse; forkvm's own system calls fail there with ENOSYS, which the
//! shell must report and survive.
//!
//! Never run `poweroff` with a valid status here: these tests may run as
//! root, and `reboot(POWER_OFF)` would then really act on the host. Only
//! its usage errors are tested (they make no system call).
#![cfg(feature = "heap")]

use std::io::{Read, Write};
use std::process::{Command, Output, Stdio};

const SH: &str = env!("CARGO_BIN_EXE_sh");
const INIT: &str = env!("CARGO_BIN_EXE_init");

fn sh(script: &str) -> Output {
    Command::new(SH)
        .args(["-c", script])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running sh -c {script:?}: {e}"))
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("UTF-8 output")
}

/// Runs `script`, checks its status, returns its output.
fn sh_expect(script: &str, status: i32) -> String {
    let out = sh(script);
    assert_eq!(out.status.code(), Some(status), "sh -c {script:?}: {out:?}");
    assert!(out.stderr.is_empty(), "sh -c {script:?}: {out:?}");
    stdout(&out)
}

/// The pid in `[PID] exited with status N` (the whole line must match).
fn exited_pid(line: &str, status: i32) -> u32 {
    let rest = line.strip_prefix('[').unwrap_or_else(|| panic!("{line:?}"));
    let (pid, tail) = rest.split_once(']').unwrap_or_else(|| panic!("{line:?}"));
    assert_eq!(tail, format!(" exited with status {status}"), "{line:?}");
    pid.parse().unwrap_or_else(|_| panic!("{line:?}"))
}

#[test]
fn echo_then_run_exit_with() {
    let text = sh_expect("echo hello; run exit_with 3", 3);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text:?}");
    assert_eq!(lines[0], "hello");
    assert!(exited_pid(lines[1], 3) > 1);
}

#[test]
fn echo_joins_words() {
    assert_eq!(sh_expect("echo  a \t b ;echo", 0), "a b\n\n");
    assert_eq!(sh_expect("echo one\necho two", 0), "one\ntwo\n");
}

#[test]
fn run_passes_arguments_and_maps_statuses() {
    let text = sh_expect("run hello a b", 0);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text:?}");
    let pid: u32 = lines[0]
        .strip_prefix("hello from pid ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{text:?}"));
    assert_eq!(lines[1], "argv: hello a b", "argv[0] is the name as typed");
    assert_eq!(exited_pid(lines[2], 0), pid);

    let out = sh("run panicker; echo still here");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "panic: on purpose\n");
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text:?}");
    exited_pid(lines[0], 134);
    assert_eq!(lines[1], "still here");

    assert_eq!(sh("run panicker").status.code(), Some(134));
}

#[test]
fn run_of_a_missing_program_is_127() {
    let text = sh_expect("run no-such-program", 127);
    assert_eq!(text, "run: no-such-program: ENOENT\n");
    let text = sh_expect("run /no/such/dir/prog x", 127);
    assert_eq!(text, "run: /no/such/dir/prog: ENOENT\n");
}

#[test]
fn run_of_a_non_executable_file_is_126() {
    let file = std::env::temp_dir().join(format!("forkvm-sh-test-{}", std::process::id()));
    std::fs::write(&file, "not a program\n").unwrap();
    let path = file.to_str().unwrap();
    let text = sh_expect(&format!("run {path}"), 126);
    std::fs::remove_file(&file).unwrap();
    assert_eq!(text, format!("run: {path}: EACCES\n"));
}

#[test]
fn unknown_command_is_127() {
    let text = sh_expect("no-such-command", 127);
    assert_eq!(text, "no-such-command: command not found (try 'help')\n");
    assert_eq!(
        sh_expect("echo fine; no-such-command", 127).lines().count(),
        2
    );
    sh_expect("no-such-command; echo fine", 0);
}

#[test]
fn empty_commands_keep_the_status() {
    sh_expect("run exit_with 3;; ;\n", 3);
    sh_expect("", 0);
    sh_expect(" ; ", 0);
}

#[test]
fn usage_errors_are_2() {
    for (script, usage) in [
        ("poweroff notanumber", "usage: poweroff [N]"),
        ("poweroff 256", "usage: poweroff [N]"),
        ("poweroff 1 2", "usage: poweroff [N]"),
        ("run", "usage: run PROG [ARGS...]"),
        ("kill", "usage: kill PID"),
        ("kill x", "usage: kill PID"),
        ("sleep", "usage: sleep MS"),
        ("sleep -1", "usage: sleep MS"),
        ("ticks 0", "usage: ticks [MS]"),
        ("ticks 10001", "usage: ticks [MS]"),
        ("sysprobe 0", "usage: sysprobe [N]"),
        ("sysctl", "usage: sysctl NAME[=VALUE]"),
        (
            "bench",
            "usage: bench fork|vfork|thread|clone-vm|fork-exec|clone-einval|rlimit-eagain|max-threads-eagain|yield-pingpong|pipe-pingpong|fork-threaded|exec-static|shell [--iters N] [--mem MIB]",
        ),
        (
            "bench spawn",
            "usage: bench fork|vfork|thread|clone-vm|fork-exec|clone-einval|rlimit-eagain|max-threads-eagain|yield-pingpong|pipe-pingpong|fork-threaded|exec-static|shell [--iters N] [--mem MIB]",
        ),
        (
            "bench fork --iters 0",
            "usage: bench fork|vfork|thread|clone-vm|fork-exec|clone-einval|rlimit-eagain|max-threads-eagain|yield-pingpong|pipe-pingpong|fork-threaded|exec-static|shell [--iters N] [--mem MIB]",
        ),
        (
            "bench fork --iters",
            "usage: bench fork|vfork|thread|clone-vm|fork-exec|clone-einval|rlimit-eagain|max-threads-eagain|yield-pingpong|pipe-pingpong|fork-threaded|exec-static|shell [--iters N] [--mem MIB]",
        ),
        (
            "bench fork --bogus",
            "usage: bench fork|vfork|thread|clone-vm|fork-exec|clone-einval|rlimit-eagain|max-threads-eagain|yield-pingpong|pipe-pingpong|fork-threaded|exec-static|shell [--iters N] [--mem MIB]",
        ),
        ("id x", "usage: id"),
        ("su", "usage: su UID [COMMAND...]"),
        ("su nobody id", "usage: su UID [COMMAND...]"),
        ("ulimit", "usage: ulimit -u [N]"),
        ("ulimit -n", "usage: ulimit -u [N]"),
        ("ulimit -u -1", "usage: ulimit -u [N]"),
        ("clone", "usage: clone FLAGS [EXIT_SIGNAL]"),
        ("clone 0xg", "usage: clone FLAGS [EXIT_SIGNAL]"),
        ("clone 0x100 256", "usage: clone FLAGS [EXIT_SIGNAL]"),
        ("clone3 flags", "usage: clone3 [KEY=VALUE...]"),
        ("clone3 bogus=1", "usage: clone3 [KEY=VALUE...]"),
        ("clone3 pidfd=maybe", "usage: clone3 [KEY=VALUE...]"),
        ("forkbomb 0", "usage: forkbomb [MAX]"),
        ("forkbomb x", "usage: forkbomb [MAX]"),
        // A usage error inside `su` is the child's; its status comes back.
        ("su 65534 clone", "usage: clone FLAGS [EXIT_SIGNAL]"),
    ] {
        assert_eq!(sh_expect(script, 2), format!("{usage}\n"), "{script:?}");
    }
}

#[test]
fn sleep_sleeps() {
    let start = std::time::Instant::now();
    assert_eq!(sh_expect("sleep 1", 0), "");
    assert_eq!(sh_expect("sleep 50", 0), "");
    assert!(start.elapsed() >= std::time::Duration::from_millis(51));
}

/// Checks `bench <op> iters=N min_<unit>=.. median_<unit>=.. p90_<unit>=..
/// max_<unit>=..` with 0 < min <= median <= p90 <= max.
fn check_bench_line(line: &str, op: &str, iters: u32, unit: &str) {
    let fields: Vec<&str> = line.split(' ').collect();
    assert_eq!(fields.len(), 7, "{line:?}");
    assert_eq!(
        fields[..3],
        ["bench", op, &format!("iters={iters}")],
        "{line:?}"
    );
    let mut values = [0u64; 4];
    for (i, key) in ["min", "median", "p90", "max"].iter().enumerate() {
        let (k, v) = fields[3 + i].split_once('=').expect("key=value");
        assert_eq!(k, format!("{key}_{unit}"), "{line:?}");
        values[i] = v.parse().unwrap_or_else(|_| panic!("{line:?}"));
    }
    let [min, median, p90, max] = values;
    assert!(
        0 < min && min <= median && median <= p90 && p90 <= max,
        "{line:?}"
    );
}

#[test]
fn bench_prints_cycles_on_the_host() {
    let text = sh_expect("bench fork --iters 20", 0);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "{text:?}");
    check_bench_line(lines[0], "fork", 20, "cycles");

    let text = sh_expect(
        "bench vfork --iters 20; bench thread --iters 20; bench clone-vm --iters 20 --mem 4; \
         bench fork --iters 5; echo done",
        0,
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5, "{text:?}");
    check_bench_line(lines[0], "vfork", 20, "cycles");
    check_bench_line(lines[1], "thread", 20, "cycles");
    check_bench_line(lines[2], "clone-vm", 20, "cycles");
    check_bench_line(lines[3], "fork", 5, "cycles");
    assert_eq!(lines[4], "done", "the shell goes on after its benchmarks");
}

#[test]
fn sysprobe_prints_cycles_on_the_host() {
    let text = sh_expect("sysprobe 100", 0);
    let rest = text
        .strip_prefix("sysprobe: 100 getpid calls from user mode, ")
        .and_then(|r| r.strip_suffix(" cycles each\n"))
        .unwrap_or_else(|| panic!("{text:?}"));
    assert!(rest.parse::<u64>().unwrap() > 0, "{text:?}");
}

#[test]
fn forkvm_calls_fail_cleanly_on_the_host() {
    for (script, line) in [
        ("meminfo", "meminfo: forkvm_info: ENOSYS"),
        ("uptime", "uptime: forkvm_info: ENOSYS"),
        ("devices", "devices: forkvm_info: ENOSYS"),
        (
            "vconsole-echo 4",
            "vconsole-echo: forkvm_vconsole_open: ENOSYS",
        ),
        ("ps", "ps: forkvm_info: ENOSYS"),
        ("ticks 10", "ticks: forkvm_diag: ENOSYS"),
        (
            "sysctl kernel.sched_child_runs_first",
            "sysctl: forkvm_sysctl: ENOSYS",
        ),
        (
            "sysctl kernel.sched_child_runs_first=1",
            "sysctl: forkvm_sysctl: ENOSYS",
        ),
        ("sysctl kernel.threads-max", "sysctl: forkvm_sysctl: ENOSYS"),
        (
            "sysctl kernel.threads-max=100",
            "sysctl: forkvm_sysctl: ENOSYS",
        ),
        ("panic", "panic: forkvm_diag: ENOSYS"),
        ("panic the sky is falling", "panic: forkvm_diag: ENOSYS"),
        ("fault", "fault: forkvm_diag: ENOSYS"),
    ] {
        let text = sh_expect(&format!("{script}; echo after"), 0);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{script}: {text:?}");
        assert!(lines[0].starts_with(line), "{script}: {text:?}");
        assert_eq!(lines[1], "after");
        assert_eq!(sh(script).status.code(), Some(1), "{script}");
    }
}

#[test]
fn kill_of_a_missing_process() {
    // Above Linux's largest pid (2^22).
    let text = sh_expect("kill 999999999", 1);
    assert_eq!(text, "kill: (999999999): no such process\n");
    // 0 would signal our own process group: refused the same way.
    let text = sh_expect("kill 0", 1);
    assert_eq!(text, "kill: (0): no such process\n");
}

#[test]
fn help_and_programs() {
    let text = sh_expect("help", 0);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 33, "{text}");
    assert_eq!(lines[0], "  help             list the commands");
    for command in [
        "echo [WORD...]",
        "meminfo",
        "uptime",
        "ticks [MS]",
        "poweroff [N]",
        "run PROG [ARGS...]",
        "kill PID",
        "bench OP [--iters N] [--mem MIB]",
        "id ",
        "su UID [COMMAND...]",
        "ulimit -u [N]",
        "clone FLAGS [EXIT_SIGNAL]",
        "clone3 [KEY=VALUE...]",
        "forkbomb [MAX]",
        "devices",
        "vconsole-echo N",
        "cd [DIR]",
        "pwd ",
        "mkdir DIR",
        "rmdir DIR",
    ] {
        assert!(
            lines.iter().any(|l| l.starts_with(&format!("  {command}"))),
            "help lists {command}: {text}"
        );
    }
    assert!(
        !text.contains("panic [MESSAGE]"),
        "hidden commands stay hidden"
    );
    // The program list comes from the forkvm kernel; the host's Linux has none.
    let text = sh_expect("programs", 1);
    assert!(text.contains("programs: forkvm_info: ENOSYS"), "{text}");
}

#[test]
fn bad_invocations() {
    let out = Command::new(SH).args(["-x"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage: sh [-c SCRIPT]"));
    let out = Command::new(SH).args(["-c"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(INIT).args(["-c"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage: init [-c SCRIPT]"));
}

/// Feeds `input` to an interactive shell on a pipe; returns its output and status.
fn interactive(input: &[u8]) -> (String, Option<i32>) {
    let mut child = Command::new(SH)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.stderr.is_empty(), "{out:?}");
    (stdout(&out), out.status.code())
}

#[test]
fn interactive_shell_prompts_echoes_and_ends_at_eof() {
    let (text, status) = interactive(b"echo hi\nrun exit_with 4\r\necho last");
    assert_eq!(status, Some(0), "end of input ends the shell with 0");
    assert!(
        text.starts_with("forkvm> echo hi\r\nhi\nforkvm> run exit_with 4\r\n["),
        "{text:?}"
    );
    assert!(
        text.contains("] exited with status 4\nforkvm> "),
        "{text:?}"
    );
    assert!(
        text.ends_with("forkvm> echo last\r\nlast\n"),
        "a last line without newline still runs: {text:?}"
    );
}

#[test]
fn interactive_ctrl_d_on_an_empty_line_ends_the_shell() {
    let (text, status) = interactive(b"echo x\n\x04echo never\n");
    assert_eq!(status, Some(0));
    assert!(text.contains("x\n"), "{text:?}");
    assert!(!text.contains("never\n"), "{text:?}");
    // Ctrl-C abandons the line; history and editing work on a pipe too.
    let (text, _) = interactive(b"echo wrong\x03echo helo\x1b[Dl\n\x1b[A\n");
    assert!(!text.contains("wrong\n"), "{text:?}");
    assert_eq!(text.matches("hello\n").count(), 2, "{text:?}");
}

#[test]
fn spin_runs_in_the_background_until_killed() {
    let mut child = Command::new(SH)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    stdin.write_all(b"spin\n").unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 256];
    while !seen.contains("] spin\n") {
        let n = stdout.read(&mut buf).unwrap();
        assert!(n > 0, "sh ended: {seen:?}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let start = seen.find("\n[").map_or(0, |i| i + 1);
    let pid: u32 = seen[start..]
        .strip_prefix('[')
        .and_then(|r| r.split_once(']'))
        .and_then(|(p, _)| p.parse().ok())
        .unwrap_or_else(|| panic!("{seen:?}"));
    let proc_dir = format!("/proc/{pid}");
    assert!(std::path::Path::new(&proc_dir).exists(), "spin {pid} runs");
    stdin
        .write_all(format!("sleep 10\nkill {pid}\nkill {pid}\n").as_bytes())
        .unwrap();
    drop(stdin);
    let status = child.wait().unwrap();
    let spinning = std::fs::read_to_string(format!("{proc_dir}/comm")).is_ok_and(|c| c == "spin\n");
    if spinning {
        // Leave no spinner behind (it also holds our end of the pipe).
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    }
    stdout.read_to_string(&mut seen).unwrap();
    assert_eq!(status.code(), Some(0), "{seen:?}");
    assert!(!spinning, "spin {pid} killed and reaped: {seen:?}");
    assert!(
        seen.contains(&format!("kill: ({pid}): no such process\n")),
        "the second kill finds nothing: {seen:?}"
    );
}

#[test]
fn init_becomes_the_shell() {
    let out = Command::new(INIT)
        .args(["-c", "echo hi; run exit_with 5"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5), "{out:?}");
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text:?}");
    assert_eq!(lines[0], "hi");
    exited_pid(lines[1], 5);

    let mut child = Command::new(INIT)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"echo interactive\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("forkvm> echo interactive\r\ninteractive\n"));
}

#[test]
fn init_without_a_shell_fails() {
    let dir = std::env::temp_dir().join(format!("forkvm-init-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let lonely = dir.join("init");
    std::fs::copy(INIT, &lonely).unwrap();
    // A child another test thread forks at the moment of the copy holds the
    // copy's (close-on-exec) write descriptor until it execs: ETXTBSY (26)
    // for a moment.
    let mut tries = 0;
    let out = loop {
        match Command::new(&lonely)
            .current_dir(&dir)
            .args(["-c", "echo hi"])
            .output()
        {
            Err(e) if e.raw_os_error() == Some(26) && tries < 100 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => break other.unwrap(),
        }
    };
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "init: cannot run sh: ENOENT\n"
    );
}

/// The guest's loader needs static non-PIE executables without `PT_INTERP`
/// (as `host_linux` checks for the other programs).
#[test]
fn sh_and_init_are_static_executables() {
    for path in [SH, INIT] {
        let elf = std::fs::read(path).unwrap();
        assert_eq!(&elf[..4], b"\x7fELF", "{path}");
        assert_eq!(u16::from_le_bytes([elf[16], elf[17]]), 2, "{path}: ET_EXEC");
        let phoff = u64::from_le_bytes(elf[32..40].try_into().unwrap()) as usize;
        let phnum = u16::from_le_bytes([elf[56], elf[57]]) as usize;
        for i in 0..phnum {
            let p_type = u32::from_le_bytes(elf[phoff + i * 56..][..4].try_into().unwrap());
            assert!(
                ![2, 3, 7].contains(&p_type),
                "{path}: segment type {p_type}"
            );
        }
    }
}

#[test]
fn directory_builtins() {
    let dir = format!("/tmp/sh-fs-{}", std::process::id());
    let text = sh_expect(
        &format!(
            "mkdir {dir}; cd {dir}; pwd; mkdir a; mkdir a; cd a; pwd; cd ..; \
             rmdir a; rmdir a; cd; pwd; rmdir {dir}; cd {dir}"
        ),
        1,
    );
    assert_eq!(
        text,
        format!(
            "{dir}\nmkdir: a: EEXIST 17\n{dir}/a\nrmdir: a: ENOENT 2\n/\n\
             cd: {dir}: ENOENT 2\n"
        )
    );
    assert!(!std::path::Path::new(&dir).exists());
    assert_eq!(sh_expect("cd a b", 2), "usage: cd [DIR]\n");
    assert_eq!(sh_expect("pwd x", 2), "usage: pwd\n");
    assert_eq!(sh_expect("mkdir", 2), "usage: mkdir DIR\n");
    assert_eq!(sh_expect("rmdir / /", 2), "usage: rmdir DIR\n");
}

/// `unshare FLAGS [COMMAND]` on the host's Linux: in a new user namespace
/// the ids are the overflow id until mapped; an unprivileged user may not
/// make a UTS namespace alone, but may together with a user namespace;
/// unknown flags are EINVAL.
#[test]
fn unshare_builtin() {
    let text = sh_expect("unshare 0x10000000 id", 0);
    assert!(
        text.starts_with("uid=65534 euid=65534 gid=65534 egid=65534 caps=0x"),
        "{text}"
    );
    let text = sh_expect("su 61234 unshare 0x4000000 id", 1);
    assert_eq!(text, "unshare: unshare: EPERM 1\n");
    let text = sh_expect("su 61234 unshare 0x14000000 id", 0);
    assert!(text.starts_with("uid=65534 euid=65534"), "{text}");
    let text = sh_expect("unshare 0x8000", 1);
    assert_eq!(text, "unshare: unshare: EINVAL 22\n");
}
