//! Runs `badptr` on the host's Linux, the oracle the guest's output is
//! compared with (tests/badptr.rs does the comparison under KVM): the
//! program runs cleanly there, covers every pointer kind for every call,
//! prints the same twice, and Linux still answers what the guest was fixed
//! to answer. Needs root, as the program does.

use std::process::{Command, Output, Stdio};

const BADPTR: &str = env!("CARGO_BIN_EXE_badptr");

const KINDS: [&str; 5] = ["unmapped", "readonly", "kernel", "noncanonical", "straddle"];

fn badptr(args: &[&str]) -> Output {
    Command::new(BADPTR)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run badptr")
}

fn run_clean() -> String {
    let out = badptr(&[]);
    let text = String::from_utf8(out.stdout.clone()).expect("UTF-8 output");
    assert_eq!(out.status.code(), Some(0), "{out:?}\n{text}");
    assert!(out.stderr.is_empty(), "{out:?}");
    text
}

#[test]
fn every_call_gets_every_kind_of_pointer() {
    let text = run_clean();
    let mut calls: Vec<(&str, Vec<&str>)> = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        assert!(fields.len() >= 3, "malformed line `{line}`");
        let (call, kind) = (fields[0], fields[1]);
        match calls.iter_mut().find(|(c, _)| *c == call) {
            Some((_, kinds)) => kinds.push(kind),
            None => calls.push((call, vec![kind])),
        }
    }
    assert!(calls.len() > 60, "only {} calls:\n{text}", calls.len());
    for (call, kinds) in &calls {
        // Calls with a pointer per position name it (`getresuid unmapped@0`).
        let bare: Vec<&str> = kinds
            .iter()
            .map(|k| k.split('@').next().unwrap())
            .filter(|k| KINDS.contains(k))
            .collect();
        if *call == "syscall-number" {
            continue;
        }
        // rt_sigsuspend skips `readonly` (a zero mask would wait forever).
        let expected: Vec<&str> = KINDS
            .iter()
            .copied()
            .filter(|k| !(*call == "rt_sigsuspend" && *k == "readonly"))
            .collect();
        for kind in &expected {
            assert!(
                bare.contains(kind),
                "{call} never got a {kind} pointer:\n{text}"
            );
        }
    }
}

#[test]
fn the_output_is_the_same_every_run() {
    assert_eq!(run_clean(), run_clean());
}

/// What the guest kernel was fixed to do (issue 10, defect 7), as Linux
/// does it.
#[test]
fn linux_keeps_what_a_bad_pointer_must_not_lose() {
    let text = run_clean();
    for fact in [
        "read readonly EFAULT pipe-left=16",
        "pipe2 readonly EFAULT fds-left=0",
        "futex-wake unmapped EFAULT",
        "futex-wake-private unmapped ok=0",
        "getrlimit null EFAULT",
        "setrlimit null EFAULT",
        "wait4-rusage kernel EFAULT child=reaped",
        "pidfd_send_signal straddle EFAULT queued=false",
        "execve-argv-missing-file unmapped ENOENT",
        "syscall-number getpid+bit32 ok is-getpid=true",
        "arch_prctl-set_gs noncanonical EPERM",
    ] {
        assert!(text.lines().any(|l| l == fact), "no `{fact}` in:\n{text}");
    }
}

/// With an argument (what an execve case starts), it exits 100 at once.
#[test]
fn exec_probe_exits_100_silently() {
    let out = badptr(&["exec-probe"]);
    assert_eq!(out.status.code(), Some(100), "{out:?}");
    assert!(out.stdout.is_empty() && out.stderr.is_empty(), "{out:?}");
}
