//! Helpers shared by the integration tests: run the real `forkvm` binary
//! against the real guest kernel under KVM.
#![allow(dead_code)] // each test file uses a different subset

pub mod busybox;

use std::path::Path;
use std::process::{Command, Output, Stdio};

/// The `forkvm` binary cargo built for these tests.
pub const FORKVM: &str = env!("CARGO_BIN_EXE_forkvm");

/// Every guest started by a test is killed after this long, so a hang
/// fails the test instead of blocking the suite.
pub const GUEST_TIMEOUT_SECS: &str = "60";

/// Whether this machine has KVM. Tests that need it call [`require_kvm!`].
pub fn kvm_present() -> bool {
    Path::new("/dev/kvm").exists()
}

/// Says, loudly, that a KVM test could not run.
/// Written straight to the process's stderr: the test harness captures
/// `eprintln!` of a passing test, and `.ci/run` counts these lines.
pub fn announce_missing_kvm(test: &str) {
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr().lock(),
        "\n!!!!!!!! KVM NOT AVAILABLE: {test} DID NOT RUN (no /dev/kvm on this machine) !!!!!!!!\n"
    );
}

/// Returns from the calling test, loudly, when there is no KVM.
#[macro_export]
macro_rules! require_kvm {
    () => {
        if !common::kvm_present() {
            common::announce_missing_kvm(module_path!());
            return;
        }
    };
}

/// The vCPU count `FORKVM_TEST_CPUS` asks every test guest to have (the
/// whole suite with `--cpus 2`: `FORKVM_TEST_CPUS=2 cargo test ...`);
/// tests that choose a count themselves keep theirs.
pub fn test_cpus() -> Option<String> {
    std::env::var("FORKVM_TEST_CPUS")
        .ok()
        .filter(|n| !n.is_empty())
}

/// `forkvm` with a safety timeout and no standard input, with the vCPU
/// count of [`test_cpus`].
pub fn forkvm() -> Command {
    let mut command = forkvm_choosing_cpus();
    if let Some(cpus) = test_cpus() {
        command.args(["--cpus", &cpus]);
    }
    command
}

/// [`forkvm`] for a caller that passes `--cpus` itself.
pub fn forkvm_choosing_cpus() -> Command {
    let mut command = Command::new(FORKVM);
    command
        .args(["--timeout", GUEST_TIMEOUT_SECS])
        .stdin(Stdio::null());
    command
}

/// Runs `forkvm -c SCRIPT` with extra arguments.
pub fn run_script(script: &str, extra: &[&str]) -> Output {
    let mut command = if extra.contains(&"--cpus") {
        forkvm_choosing_cpus()
    } else {
        forkvm()
    };
    command
        .args(extra)
        .args(["-c", script])
        .output()
        .expect("forkvm runs")
}

/// Runs `forkvm -c SCRIPT` with its own `--timeout` instead of the default.
pub fn run_script_with_timeout(script: &str, timeout_secs: u32) -> Output {
    let mut command = Command::new(FORKVM);
    if let Some(cpus) = test_cpus() {
        command.args(["--cpus", &cpus]);
    }
    command
        .args(["--timeout", &timeout_secs.to_string(), "-c", script])
        .stdin(Stdio::null())
        .output()
        .expect("forkvm runs")
}

/// Standard output as text.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Standard error as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The exit code (panics if killed by a signal).
pub fn code(output: &Output) -> i32 {
    output
        .status
        .code()
        .unwrap_or_else(|| panic!("forkvm was killed: {:?}\n{}", output.status, stderr(output)))
}

/// Set by `tests/hvm_nested.rs` in its nested VM: the guest's "hardware" is
/// QEMU's TCG emulating SVM, which differs from real CPUs in one way a
/// scenario sees (below).
pub const UNDER_QEMU_TCG_ENV: &str = "FORKVM_UNDER_QEMU_TCG";

/// Proctest result lines that are correct on real CPUs but cannot be under
/// QEMU's TCG: a memory access at a non-canonical address raises a page
/// fault there, not #SS/#GP, so a read at a non-canonical stack pointer
/// ends in SIGSEGV instead of Linux's (and hardware's) SIGBUS. Empty
/// outside the nested run.
pub fn emulator_deviations() -> &'static [&'static str] {
    if std::env::var_os(UNDER_QEMU_TCG_ENV).is_some() {
        &[
            "FAIL clone-noncanonical-stack-read-sigbus: read at a non-canonical stack pointer: \
           expected death by signal 7, got killed by signal 11",
        ]
    } else {
        &[]
    }
}

/// The `FAIL` lines of proctest output, less the emulator's known deviations.
pub fn proctest_failures(text: &str) -> Vec<&str> {
    let allowed = emulator_deviations();
    text.lines()
        .filter(|l| l.starts_with("FAIL") && !allowed.contains(l))
        .collect()
}

/// Set by `tests/hvm_nested.rs` in its nested VM: a file holding the
/// output of `badptr` on the outer host, which `tests/badptr.rs` compares
/// the guest with instead of running the nested Linux's.
pub const BADPTR_REFERENCE_ENV: &str = "FORKVM_BADPTR_REFERENCE";

/// Runs `forkvm --timeout SECS EXTRA -c SCRIPT`, which must power off with
/// `expected` status; returns its standard output.
pub fn run_expect_within(script: &str, expected: i32, timeout_secs: u32, extra: &[&str]) -> String {
    let mut command = Command::new(FORKVM);
    if let (Some(cpus), false) = (test_cpus(), extra.contains(&"--cpus")) {
        command.args(["--cpus", &cpus]);
    }
    let out = command
        .args(["--timeout", &timeout_secs.to_string()])
        .args(extra)
        .args(["-c", script])
        .stdin(Stdio::null())
        .output()
        .expect("forkvm runs");
    assert_eq!(
        code(&out),
        expected,
        "script {script:?}\nstdout:\n{}\nstderr:\n{}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

/// The number after `key` in a line (`key` includes its `=` or `: `).
pub fn field(line: &str, key: &str) -> u64 {
    let start = line
        .find(key)
        .unwrap_or_else(|| panic!("no {key} in {line}"))
        + key.len();
    line[start..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}
