//! The shell's process builtins on the host's Linux: `clone`, `clone3`,
//! `id`, `su`, `ulimit -u`, `forkbomb`. Their lines are what the guest's
//! tests will compare.
//!
//! These tests expect to run as root (as they do here). Limits are only
//! ever lowered inside the `sh` child a test starts (its `ulimit -u`), never
//! for the test process or the host.
#![cfg(feature = "heap")]

use std::process::{Command, Output, Stdio};

const SH: &str = env!("CARGO_BIN_EXE_sh");

fn sh(script: &str) -> Output {
    Command::new(SH)
        .args(["-c", script])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running sh -c {script:?}: {e}"))
}

/// Runs `script`, checks its status and that stderr is empty, returns its
/// output.
fn sh_expect(script: &str, status: i32) -> String {
    let out = sh(script);
    assert_eq!(out.status.code(), Some(status), "sh -c {script:?}: {out:?}");
    assert!(out.stderr.is_empty(), "sh -c {script:?}: {out:?}");
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// The pid in an `ok pid=N` line (the whole line must match).
fn ok_pid(line: &str) -> u32 {
    line.strip_prefix("ok pid=")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("expected `ok pid=N`, got {line:?}"))
}

/// A field of `/proc/self/status` (`CapEff:` etc.), trimmed.
fn proc_status(field: &str) -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .unwrap_or_else(|| panic!("{field} in /proc/self/status"))
        .trim()
        .to_string()
}

fn is_root() -> bool {
    proc_status("Uid:").split_whitespace().nth(1) == Some("0")
}

#[test]
fn clone_reports_ok_pid_or_the_errno() {
    for flags in [
        "0x11",
        "17",
        "0x100 17",
        "0x0",
        "0x3d0f00",
        "0x10900",
        "0x4100 17",
        "0x1000 17",
        "0x1200000 17",
        "0x100000000 17",
    ] {
        let text = sh_expect(&format!("clone {flags}"), 0);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1, "clone {flags}: {text:?}");
        assert!(ok_pid(lines[0]) > 1, "clone {flags}: {text:?}");
    }
    for (flags, line) in [
        ("0x800", "err EINVAL 22"),
        ("0x10000", "err EINVAL 22"),
        ("0x800 17", "err EINVAL 22"),
        ("0x101000 17", "err EINVAL 22"),
        ("0x401000 17", "err EINVAL 22"),
    ] {
        assert_eq!(
            sh_expect(&format!("clone {flags}"), 1),
            format!("{line}\n"),
            "clone {flags}"
        );
    }
}

#[test]
fn clone3_reports_ok_pid_or_the_errno() {
    for args in [
        "",
        "exit_signal=17",
        "flags=0x100 exit_signal=17",
        "flags=0x4100 exit_signal=17",
        "flags=0x210900 child_tid=valid",
        "flags=0x10900",
        "flags=0x1000 pidfd=valid exit_signal=17",
        "flags=0x101000 pidfd=valid parent_tid=valid exit_signal=17",
        "flags=0x80000 tls=valid exit_signal=17",
        "size=64 exit_signal=17",
        "size=96",
        "stack=0 stack_size=0 exit_signal=17",
    ] {
        let text = sh_expect(&format!("clone3 {args}"), 0);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1, "clone3 {args}: {text:?}");
        assert!(ok_pid(lines[0]) > 1, "clone3 {args}: {text:?}");
    }
    for (args, line) in [
        ("size=8", "err EINVAL 22"),
        ("size=63", "err EINVAL 22"),
        ("size=4097", "err E2BIG 7"),
        ("size=1000000", "err E2BIG 7"),
        ("exit_signal=65", "err EINVAL 22"),
        ("flags=0x11", "err EINVAL 22"),
        ("stack_size=0", "err EINVAL 22"),
        ("stack=4096", "err EINVAL 22"),
        ("flags=0x10000000000", "err EINVAL 22"),
        ("flags=0x1000", "err EFAULT 14"),
        ("set_tid_size=1", "err EINVAL 22"),
        ("set_tid=", "err EINVAL 22"),
        ("set_tid=1,1", "err EINVAL 22"),
        ("flags=0x10900 exit_signal=17", "err EINVAL 22"),
    ] {
        assert_eq!(
            sh_expect(&format!("clone3 {args}"), 1),
            format!("{line}\n"),
            "clone3 {args}"
        );
    }
    if is_root() {
        // Our own pid is taken.
        let text = sh_expect("clone3 set_tid=1 exit_signal=17", 1);
        assert_eq!(text, "err EEXIST 17\n");
    }
}

#[test]
fn the_shell_goes_on_after_clones() {
    let text = sh_expect(
        "clone 0x3d0f00; clone 0x10900; clone 0x4100 17; clone3 flags=0x10900; echo after",
        0,
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5, "{text:?}");
    for line in &lines[..4] {
        ok_pid(line);
    }
    assert_eq!(lines[4], "after");
}

#[test]
fn id_prints_ids_and_effective_capabilities() {
    let text = sh_expect("id", 0);
    let caps = u64::from_str_radix(&proc_status("CapEff:"), 16).unwrap();
    let ids = |field| {
        let value = proc_status(field);
        let ids: Vec<u32> = value
            .split_whitespace()
            .map(|id| id.parse().unwrap())
            .collect();
        (ids[0], ids[1])
    };
    let (uid, euid) = ids("Uid:");
    let (gid, egid) = ids("Gid:");
    assert_eq!(
        text,
        format!("uid={uid} euid={euid} gid={gid} egid={egid} caps={caps:#x}\n")
    );
    if is_root() {
        assert!(text.starts_with("uid=0 euid=0 gid=0 egid=0 caps=0x"));
    }
}

#[test]
fn su_drops_ids_and_capabilities() {
    if !is_root() {
        eprintln!("not root: su cannot change ids; skipped");
        return;
    }
    assert_eq!(
        sh_expect("su 65534 id", 0),
        "uid=65534 euid=65534 gid=65534 egid=65534 caps=0x0\n"
    );
    assert_eq!(
        sh_expect("su 0 id; su 1000 id", 0),
        format!(
            "uid=0 euid=0 gid=0 egid=0 caps={:#x}\nuid=1000 euid=1000 gid=1000 egid=1000 caps=0x0\n",
            u64::from_str_radix(&proc_status("CapEff:"), 16).unwrap()
        )
    );
    // No way back: setgid is the first call refused.
    assert_eq!(sh_expect("su 65534 su 0 id", 1), "su: setgid: EPERM 1\n");
    // The command's status comes back; builtins run inside the child.
    let text = sh_expect("su 65534 run exit_with 3", 3);
    assert!(text.ends_with("] exited with status 3\n"), "{text:?}");
    ok_pid(sh_expect("su 65534 clone 0x11", 0).trim_end());
    assert_eq!(sh_expect("su 65534 clone 0x800", 1), "err EINVAL 22\n");
    // Choosing a pid takes privilege.
    assert_eq!(
        sh_expect("su 65534 clone3 set_tid=1 exit_signal=17", 1),
        "err EPERM 1\n"
    );
}

#[test]
fn su_without_a_command_runs_a_shell() {
    if !is_root() {
        eprintln!("not root: su cannot change ids; skipped");
        return;
    }
    let mut child = Command::new(SH)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"su 65534\nid\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("forkvm> id\r\nuid=65534 euid=65534 gid=65534 egid=65534 caps=0x0\n"),
        "{text:?}"
    );
}

/// `ulimit -u`'s line for a limit as `/proc/self/limits` shows it.
fn nproc_soft_limit() -> String {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max processes"))
        .unwrap();
    line.split_whitespace().nth(2).unwrap().to_string()
}

#[test]
fn ulimit_shows_and_sets_the_process_limit() {
    assert_eq!(
        sh_expect("ulimit -u", 0),
        format!("{}\n", nproc_soft_limit())
    );
    // Lowered inside the sh child only; a lowered hard limit stays lowered
    // (raising it needs CAP_SYS_RESOURCE, which even root may lack).
    assert_eq!(sh_expect("ulimit -u 20; ulimit -u", 0), "20\n");
    assert_eq!(
        sh_expect("ulimit -u 30; ulimit -u 20; ulimit -u", 0),
        "20\n"
    );
    let caps = u64::from_str_radix(&proc_status("CapEff:"), 16).unwrap();
    const CAP_SYS_RESOURCE: u64 = 1 << 24;
    if caps & CAP_SYS_RESOURCE == 0 {
        let text = sh_expect("ulimit -u 20; ulimit -u 30", 1);
        assert_eq!(text, "ulimit: -u: EPERM 1\n", "the hard limit was 20");
    } else {
        assert_eq!(
            sh_expect("ulimit -u 20; ulimit -u 30; ulimit -u", 0),
            "30\n"
        );
    }
    // As uid 65534 (no capabilities) raising it again is refused.
    if is_root() {
        let text = sh_expect("ulimit -u 20; su 65534 ulimit -u 30", 1);
        assert_eq!(text, "ulimit: -u: EPERM 1\n");
    }
    if is_root() {
        let text = sh_expect("su 65534 ulimit -u", 0);
        let value = text.trim_end();
        assert!(
            value == "unlimited" || value.parse::<u64>().is_ok(),
            "{text:?}"
        );
        assert_eq!(sh_expect("ulimit -u 25; su 65534 ulimit -u", 0), "25\n");
    }
}

/// Parses `forkbomb: N forks, stopped by ENAME N` / `..., reached the
/// limit`: the count and the errno name, if any.
fn forkbomb_line(line: &str) -> (u64, Option<String>) {
    let rest = line
        .strip_prefix("forkbomb: ")
        .unwrap_or_else(|| panic!("{line:?}"));
    let (n, rest) = rest
        .split_once(" forks, ")
        .unwrap_or_else(|| panic!("{line:?}"));
    let n = n.parse().unwrap_or_else(|_| panic!("{line:?}"));
    if rest == "reached the limit" {
        return (n, None);
    }
    let errno = rest
        .strip_prefix("stopped by ")
        .unwrap_or_else(|| panic!("{line:?}"));
    let (name, number) = errno.split_once(' ').unwrap_or_else(|| panic!("{line:?}"));
    number.parse::<u32>().unwrap_or_else(|_| panic!("{line:?}"));
    (n, Some(name.to_string()))
}

#[test]
fn forkbomb_reaches_its_limit_and_cleans_up() {
    let text = sh_expect("forkbomb 50; echo after", 0);
    assert_eq!(text, "forkbomb: 50 forks, reached the limit\nafter\n");
    // Its children are gone: a later fork's child is the only one left to
    // reap, and the shell still works.
    let text = sh_expect("forkbomb 200; clone 0x11; forkbomb 1; echo after", 0);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text:?}");
    assert_eq!(lines[0], "forkbomb: 200 forks, reached the limit");
    ok_pid(lines[1]);
    assert_eq!(lines[2], "forkbomb: 1 forks, reached the limit");
    assert_eq!(lines[3], "after");
}

#[test]
fn forkbomb_is_stopped_by_rlimit_nproc() {
    if !is_root() {
        eprintln!("not root: su cannot change ids; skipped");
        return;
    }
    // RLIMIT_NPROC counts every process of uid 65534 on the host (the su
    // child included), and root is exempt: so only the format, the errno
    // and an upper bound are certain.
    let start = std::time::Instant::now();
    let text = sh_expect("ulimit -u 20; su 65534 forkbomb 1000; echo after", 0);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text:?}");
    let (forks, errno) = forkbomb_line(lines[0]);
    assert_eq!(errno.as_deref(), Some("EAGAIN"), "{text:?}");
    assert!(forks < 20, "{text:?}");
    assert_eq!(lines[1], "after");
    assert!(start.elapsed() < std::time::Duration::from_secs(10));
}

#[test]
fn forkbomb_lines_parse() {
    assert_eq!(
        forkbomb_line("forkbomb: 19 forks, stopped by EAGAIN 11"),
        (19, Some("EAGAIN".to_string()))
    );
    assert_eq!(
        forkbomb_line("forkbomb: 5 forks, reached the limit"),
        (5, None)
    );
}
