//! Linux's clone/clone3 semantics in the guest: the `clonecheck` table
//! (every flag check, clone3 argument validation, set_tid, pidfd) must be
//! exactly what the host's Linux gives (guest/user/tests/clonecheck.expected,
//! checked on the host by guest/user/tests/clonecheck_host.rs); and every
//! fallible step of copy_process, made to fail, must leave nothing behind.

mod common;

use common::{code, run_script_with_timeout, stderr, stdout};

/// The table Linux gives, recorded on the host as root.
const LINUX: &str = include_str!("../guest/user/tests/clonecheck.expected");

#[test]
fn clone_and_clone3_behave_like_linux() {
    require_kvm!();
    // The shell runs it as root with every capability, as on the host.
    let out = run_script_with_timeout("run clonecheck", 120);
    let text = stdout(&out);
    let got: Vec<&str> = text.lines().filter(|l| !l.starts_with('[')).collect();
    let want: Vec<&str> = LINUX.lines().collect();
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(
            g,
            w,
            "case {} differs from Linux; whole output:\n{text}",
            i + 1
        );
    }
    assert_eq!(
        got.len(),
        want.len(),
        "whole output:\n{text}\n{}",
        stderr(&out)
    );
    assert_eq!(code(&out), 0);
}

#[test]
fn every_failing_step_of_copy_process_unwinds() {
    require_kvm!();
    for (flags, name) in [
        ("0x11", "fork"),
        ("0x611", "fork sharing fs and files"),
        ("0x10000011", "fork into a new user namespace"),
        (
            "0x3c000011",
            "fork into new user, pid, ipc and uts namespaces",
        ),
    ] {
        let out = run_script_with_timeout(&format!("run failnth {flags}"), 120);
        let text = stdout(&out);
        assert!(!text.contains("FAIL"), "{name}:\n{text}");
        assert!(
            text.contains("steps, all unwound"),
            "{name}:\n{text}\n{}",
            stderr(&out)
        );
        assert!(
            text.matches("counters unchanged").count() >= 6,
            "{name}: every step was tried:\n{text}"
        );
        assert_eq!(code(&out), 0, "{name}:\n{text}");
    }
}

/// `failnth` names the kernel's step each injected failure hit, in Linux's
/// order (`forkvm_abi::sys::ForkStep`): a plain fork, and one into a new
/// user namespace.
#[test]
fn failnth_names_each_step_of_copy_process() {
    require_kvm!();
    let steps = |flags: &str| -> Vec<String> {
        let out = run_script_with_timeout(&format!("run failnth {flags}"), 120);
        let text = stdout(&out);
        assert_eq!(code(&out), 0, "{text}\n{}", stderr(&out));
        text.lines()
            .filter(|l| l.starts_with("step "))
            .map(|l| l.split([' ', ':']).nth(2).unwrap_or_default().to_owned())
            .collect()
    };
    assert_eq!(
        steps("0x11"),
        [
            "dup_task_struct",
            "copy_creds",
            "copy_files",
            "copy_fs",
            "copy_sighand",
            "copy_signal",
            "copy_mm",
            "copy_namespaces",
            "alloc_pid"
        ]
    );
    assert_eq!(
        steps("0x10000011"),
        [
            "dup_task_struct",
            "copy_creds",
            "create_user_ns",
            "copy_files",
            "copy_fs",
            "copy_sighand",
            "copy_signal",
            "copy_mm",
            "copy_namespaces",
            "alloc_pid"
        ]
    );
}

#[test]
fn rlimit_nproc_and_threads_max() {
    require_kvm!();
    // A non-root user at its RLIMIT_NPROC gets EAGAIN; root is exempt.
    let text = stdout(&run_script_with_timeout(
        "ulimit -u 5; su 1000 forkbomb 100; forkbomb 20; id; su 1000 id; stat",
        120,
    ));
    assert!(
        text.contains("forkbomb: 4 forks, stopped by EAGAIN 11"),
        "{text}"
    );
    assert!(
        text.contains("forkbomb: 20 forks, reached the limit"),
        "root is exempt: {text}"
    );
    assert!(
        text.contains("uid=1000 euid=1000 gid=1000 egid=1000 caps=0x0"),
        "{text}"
    );
    // max_threads applies to root too (init and the shell are 2 of the
    // 4); invalid values are refused.
    let out = run_script_with_timeout(
        "sysctl kernel.threads-max=4; forkbomb 20; sysctl kernel.threads-max=0; sysctl kernel.threads-max=500; clone 0x11",
        120,
    );
    let text = stdout(&out);
    assert!(text.contains("kernel.threads-max = 4\n"), "{text}");
    assert!(
        text.contains("forkbomb: 2 forks, stopped by EAGAIN 11"),
        "{text}"
    );
    assert!(text.contains("invalid argument"), "{text}");
    assert!(text.contains("kernel.threads-max = 500\nok pid="), "{text}");
}
