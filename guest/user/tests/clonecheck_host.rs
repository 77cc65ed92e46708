//! Runs `clonecheck` on the host's Linux and compares its table with the
//! one Linux gave when it was written (x86-64, Linux 6.18, as root): the
//! reference the forkvm kernel's output is diffed against.
//!
//! Every result agrees with the kernel's source (`kernel/fork.c`:
//! `copy_process`, `kernel_clone`, the `clone`/`clone3` entry points,
//! `copy_clone_args_from_user`, `clone3_args_valid`; `kernel/pid.c`:
//! `alloc_pid`) and `clone(2)`. The ones worth a second look are marked
//! `NOTE` below.
#![cfg(feature = "heap")]

use std::process::Command;

const CLONECHECK: &str = env!("CARGO_BIN_EXE_clonecheck");

/// Linux's table. Legacy `clone` lines are `<flags> <exit signal>
/// [<variant>] <result>`, `clone3` lines `clone3 <case> <result>`.
const EXPECTED: &str = include_str!("clonecheck.expected");

// NOTE on the results above:
// - `0x100000000 17 ok`, `0x8000000000000000 17 ok`: legacy `clone` takes
//   only the low 32 bits of its flags (`lower_32_bits(clone_flags)`), so
//   bit 32 (CLONE_CLEAR_SIGHAND in clone3) and bit 63 are silently ignored;
//   clone3 refuses unknown bits (`flag-bit-40`).
// - `0x0 128 ok`: legacy `clone` does not validate its exit signal (the
//   low byte, up to 255); an invalid one is simply never sent
//   (`do_notify_parent` sends only `valid_signal()` ones). clone3 checks it
//   (`exit-signal-65`).
// - `0x400000 17 ok`: CLONE_DETACHED alone is ignored by legacy clone, but
//   refused with CLONE_PIDFD (`0x401000`) and by clone3 (`detached`).
// - `0x10900 17 ok`: a thread's exit signal is ignored by legacy clone;
//   clone3 refuses one for CLONE_THREAD or CLONE_PARENT
//   (`thread-exit-signal`, `parent-exit-signal`).
// - `0x80000 17 tls=noncanonical err EPERM`: a non-canonical FS base makes
//   the whole clone fail with EPERM (the `arch_prctl(ARCH_SET_FS)` check in
//   `copy_thread`), not EINVAL.
// - `0x101000 17 err EINVAL` vs `clone3 pidfd-parent-settid ok`: legacy
//   clone has one pointer for the pidfd and the parent tid; clone3 refuses
//   them only if they are the same address.
// - `clone3 pidfd-null err EFAULT`: the pidfd is stored with `put_user`,
//   whose failure fails the clone (a failed `CLONE_PARENT_SETTID` store is
//   ignored).
// - `clone3 set-tid-size-2 err EINVAL`: more `set_tid` entries than the
//   caller's pid namespace depth (1 in the initial namespace).
// - `clone3 set-tid-self err EEXIST` needs CAP_SYS_ADMIN or
//   CAP_CHECKPOINT_RESTORE (root here); without, the permission check comes
//   first: EPERM (`set-tid-unprivileged`, run as uid/gid 65534).

/// Whether this process may choose pids (CAP_SYS_ADMIN or
/// CAP_CHECKPOINT_RESTORE in its effective set).
fn may_set_tid() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let caps = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .map(|hex| u64::from_str_radix(hex.trim(), 16).unwrap())
        .unwrap();
    caps & (1 << 21 | 1 << 40) != 0
}

#[test]
fn clonecheck_matches_linux() {
    let out = Command::new(CLONECHECK).output().unwrap();
    assert!(out.stderr.is_empty(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let mut expected = EXPECTED.to_string();
    if !may_set_tid() {
        expected = expected.replace(
            "clone3 set-tid-self err EEXIST",
            "clone3 set-tid-self err EPERM",
        );
    }
    let got: Vec<&str> = text.lines().collect();
    let want: Vec<&str> = expected.lines().collect();
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g, w, "line {}; whole output:\n{text}", i + 1);
    }
    assert_eq!(got.len(), want.len(), "whole output:\n{text}");
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(!text.contains("FAIL"));
}

#[test]
fn clonecheck_is_repeatable() {
    // Two more runs at once: the same table (nothing depends on timing or
    // on the other run's processes).
    let children: Vec<_> = (0..2)
        .map(|_| {
            Command::new(CLONECHECK)
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let runs: Vec<_> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    assert_eq!(runs[0].stdout, runs[1].stdout);
    assert_eq!(runs[0].status.code(), Some(0));
    assert_eq!(runs[1].status.code(), Some(0));
}
