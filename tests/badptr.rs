//! Linux's rules for bad user pointers, with the host's Linux as the
//! oracle: the `badptr` program (guest/user/src/bin/badptr.rs) hands
//! unmapped, read-only, kernel-half, non-canonical and page-straddling
//! pointers to every guest system call that dereferences one and prints
//! one line per call (errno, and what must be left as it was: bytes in a
//! pipe, descriptors, children, pending signals). The same executable runs
//! on the host and in the guest, and the two outputs must match line by
//! line. The host's output is taken now, not stored: it is the reference.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{code, run_script_with_timeout, stderr, stdout};

/// Lines that failed before the kernel followed Linux (issue 10, defect 7):
/// present in the host's output, so a guest that matches it has them too.
const LINUX_FACTS: &[&str] = &[
    // The bytes stay in the pipe when they cannot be stored.
    "read unmapped EFAULT pipe-left=16",
    "read straddle EFAULT pipe-left=16",
    // No descriptor is left open when `fds` cannot be written.
    "pipe2 readonly EFAULT fds-left=0",
    "pipe readonly EFAULT fds-left=0",
    // A shared futex word must be a page the task could write.
    "futex-wake unmapped EFAULT",
    "futex-wake readonly EFAULT",
    "futex-wake-private unmapped ok=0",
    "futex-wake-private kernel EFAULT",
    "getrlimit null EFAULT",
    "setrlimit null EFAULT",
    // The child is reaped, then the rusage store fails.
    "wait4-rusage unmapped EFAULT child=reaped",
    "waitid-rusage unmapped EFAULT child=reaped",
    "pidfd_send_signal unmapped EFAULT queued=false",
    "pidfd_send_signal readonly EINVAL queued=false",
    // The file is looked up before the arguments are read.
    "execve-argv-missing-file unmapped ENOENT",
    // A GS base is a user address; GET stores it.
    "arch_prctl-set_gs kernel EPERM",
    "arch_prctl-get_gs unmapped EFAULT",
    // The system call number is an int.
    "syscall-number getpid+bit32 ok is-getpid=true",
];

/// Runs the host build of `badptr` (the executable the guest embeds) and
/// returns its standard output.
fn badptr_on_host() -> String {
    // The nested HVM run (tests/hvm_nested.rs) hands in the outer host's
    // output: its own Linux (Debian 12's 6.1) predates 6.8's execve, which
    // opens the file before it reads the arguments, the order the guest
    // follows.
    if let Some(reference) = std::env::var_os(common::BADPTR_REFERENCE_ENV) {
        return std::fs::read_to_string(&reference)
            .unwrap_or_else(|e| panic!("{}: {e}", reference.to_string_lossy()));
    }
    let Some(dir) = option_env!("FORKVM_USER_PROGRAMS_DIR") else {
        panic!(
            "vmm/build.rs did not build the user programs (FORKVM_GUEST_KERNEL set?): \
             no host copy of badptr to compare with"
        );
    };
    let program = std::path::Path::new(dir).join("badptr");
    let mut child = Command::new(&program)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", program.display()));
    let start = Instant::now();
    while child.try_wait().expect("try_wait").is_none() {
        if start.elapsed() > Duration::from_secs(60) {
            child.kill().expect("kill badptr");
            panic!("badptr still running on the host after 60 s (killed)");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let output = child.wait_with_output().expect("badptr output");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(
        output.status.code(),
        Some(0),
        "badptr on the host (run as root):\n{text}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    text
}

#[test]
fn bad_pointers_get_what_linux_gives() {
    require_kvm!();
    let host = badptr_on_host();
    let host: Vec<&str> = host.lines().collect();
    assert!(
        host.len() > 300,
        "host output too short:\n{}",
        host.join("\n")
    );
    for fact in LINUX_FACTS {
        assert!(
            host.contains(fact),
            "the host's Linux no longer prints `{fact}`:\n{}",
            host.join("\n")
        );
    }

    let out = run_script_with_timeout("run badptr; echo kernel alive", 120);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    // Without the shell's job reports and the final echo.
    let guest: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with('[') && *l != "kernel alive")
        .collect();
    assert!(text.contains("kernel alive"), "{text}\n{}", stderr(&out));

    let differences: Vec<String> = host
        .iter()
        .zip(&guest)
        .filter(|(h, g)| h != g)
        .map(|(h, g)| format!("  host:  {h}\n  guest: {g}"))
        .collect();
    assert!(
        differences.is_empty() && host.len() == guest.len(),
        "{} of {} lines differ (host {} lines, guest {}):\n{}\n\nguest output:\n{text}",
        differences.len(),
        host.len().min(guest.len()),
        host.len(),
        guest.len(),
        differences.join("\n")
    );
}
