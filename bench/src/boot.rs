//! Boot latency: how long it takes from starting a VM until the guest,
//! booted all the way to its shell, has powered off again.
//!
//! Two variants are measured:
//!
//! * [`boot_to_poweroff`] runs the VMM in this process ([`vmm::run_timed`]):
//!   VM creation, guest kernel load, guest boot, shell start, `poweroff`
//!   (the headline number: VMM start to guest powered off), and separately
//!   the total including VM teardown, which the host kernel dominates.
//! * [`spawn_to_poweroff`] runs the `forkvm` binary as a child process, so it
//!   additionally includes `fork`/`exec`, dynamic loading, argument parsing
//!   and process exit: what a user typing `forkvm -c poweroff` waits for.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use vmm::config::DEFAULT_KVM_DEVICE;
use vmm::{GuestExit, Outcome, VmConfig};

/// The guest script that is measured: the shell powers off (status 0) as the
/// first thing it does, and nothing is written to the console.
pub const POWEROFF_SCRIPT: &str = "poweroff";

/// How long one boot may take before it is stopped and counted as a failure.
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether the KVM device (`/dev/kvm`) exists, i.e. whether the boot
/// measurements can run on this host at all.
pub fn kvm_available() -> bool {
    Path::new(DEFAULT_KVM_DEVICE).exists()
}

/// Says, loudly, that the test `test` did not run for lack of KVM. Written
/// straight to the process's stderr: the test harness captures `eprintln!`
/// of a passing test, and `.ci/run` counts these lines.
pub fn announce_missing_kvm(test: &str) {
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr().lock(),
        "\n!!!!!!!! KVM NOT AVAILABLE: {test} DID NOT RUN (no /dev/kvm on this machine) !!!!!!!!\n"
    );
}

/// Times of one in-process boot.
#[derive(Debug, Clone, Copy)]
pub struct BootTimes {
    /// VMM start (the [`vmm::run_timed`] call) to the guest's `poweroff`
    /// exit: VM creation, kernel load, guest boot to a ready shell, and the
    /// shell's first command.
    pub to_poweroff: Duration,
    /// The whole call, VM teardown included.
    pub total: Duration,
}

/// Boots the guest kernel built with `vmm` ([`vmm::BUILT_KERNEL`]) in this
/// process with `memory` bytes of RAM, runs the script `poweroff`, and
/// returns how long that took ([`BootTimes`]).
///
/// Anything but a clean power-off with status 0 (a VMM error, guest panic,
/// crash, or the [`BOOT_TIMEOUT`] expiring) is an error: a failed boot is
/// not a measurement.
pub fn boot_to_poweroff(memory: u64) -> Result<BootTimes, String> {
    let mut config = VmConfig::new(PathBuf::from(vmm::BUILT_KERNEL));
    config.memory = memory;
    config.script = Some(POWEROFF_SCRIPT.to_owned());
    config.timeout = Some(BOOT_TIMEOUT);

    let start = Instant::now();
    let result = vmm::run_timed(&config);
    let total = start.elapsed();

    let mib = memory >> 20;
    match result {
        Ok((Outcome::Guest(GuestExit::Poweroff(0)), timings)) => Ok(BootTimes {
            to_poweroff: timings.setup + timings.guest,
            total,
        }),
        Ok((Outcome::Guest(GuestExit::Poweroff(status)), _)) => Err(format!(
            "boot with {mib} MiB: the guest powered off with status {status}, expected 0"
        )),
        Ok((other, _)) => Err(format!(
            "boot with {mib} MiB did not end in a clean power-off: {other:?}"
        )),
        Err(e) => Err(format!(
            "boot with {mib} MiB: the VMM failed: {e} (kernel {})",
            vmm::BUILT_KERNEL
        )),
    }
}

/// Where a `forkvm` binary built alongside the executable `exe` would be, in
/// order of preference.
///
/// Tests and benches run as `target/<profile>/deps/<name>-<hash>`, binaries
/// as `target/<profile>/<name>`; either way the first candidate is
/// `target/<profile>/forkvm`, the second `target/release/forkvm`.
fn forkvm_candidates(exe: &Path) -> Vec<PathBuf> {
    let Some(mut profile_dir) = exe.parent() else {
        return Vec::new();
    };
    if profile_dir.file_name().is_some_and(|name| name == "deps") {
        match profile_dir.parent() {
            Some(parent) => profile_dir = parent,
            None => return Vec::new(),
        }
    }
    let mut candidates = vec![profile_dir.join("forkvm")];
    if let Some(target_dir) = profile_dir.parent() {
        let release = target_dir.join("release").join("forkvm");
        if !candidates.contains(&release) {
            candidates.push(release);
        }
    }
    candidates
}

/// The `forkvm` binary in the same target directory as the running
/// executable (`target/<profile>/forkvm`, else `target/release/forkvm`), if
/// one has been built.
///
/// Cargo does not build it for a bench or test of this crate: run
/// `cargo build --release` first. It is not rebuilt automatically either:
/// a binary older than the guest kernel it boots ([`vmm::BUILT_KERNEL`],
/// rebuilt whenever the guest changes) predates that kernel and may speak
/// an older boot protocol, so it is refused with the reason.
pub fn forkvm_binary() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let binary = forkvm_candidates(&exe)
        .into_iter()
        .find(|candidate| candidate.is_file())
        .ok_or("no forkvm binary next to this bench; run `cargo build --release` first")?;
    let modified = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let kernel = Path::new(vmm::BUILT_KERNEL);
    if let (Some(binary_time), Some(kernel_time)) = (modified(&binary), modified(kernel)) {
        if binary_time < kernel_time {
            return Err(format!(
                "{} is older than the guest kernel {}; run `cargo build --release` first",
                binary.display(),
                kernel.display()
            ));
        }
    }
    Ok(binary)
}

/// Runs `binary --mem <memory_arg> --timeout 10 -c poweroff` as a child
/// process (stdin and stdout null, stderr captured) and returns the
/// wall-clock time from just before the spawn until the child has exited:
/// process start, VM creation, guest boot until its shell is ready,
/// `poweroff`, VM teardown and process exit.
///
/// A non-zero exit status is an error carrying the child's stderr.
pub fn spawn_to_poweroff(binary: &Path, memory_arg: &str) -> Result<Duration, String> {
    let timeout_secs = BOOT_TIMEOUT.as_secs().to_string();
    let mut command = Command::new(binary);
    command
        .args(["--mem", memory_arg, "--timeout", &timeout_secs])
        .args(["-c", POWEROFF_SCRIPT])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());

    let start = Instant::now();
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
    // Drain stderr before waiting so a chatty child cannot block on a full pipe.
    let mut stderr = Vec::new();
    let read = child
        .stderr
        .take()
        .map(|mut pipe| pipe.read_to_end(&mut stderr));
    let status = child.wait();
    let elapsed = start.elapsed();

    let status = status.map_err(|e| format!("waiting for {}: {e}", binary.display()))?;
    if let Some(Err(e)) = read {
        return Err(format!("reading the stderr of {}: {e}", binary.display()));
    }
    if status.success() {
        Ok(elapsed)
    } else {
        Err(format!(
            "{} --mem {memory_arg} -c {POWEROFF_SCRIPT} failed ({status}): {}",
            binary.display(),
            String::from_utf8_lossy(&stderr).trim()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_from_deps_dir() {
        let exe = Path::new("/w/target/debug/deps/boot-0123abcd");
        assert_eq!(
            forkvm_candidates(exe),
            [
                PathBuf::from("/w/target/debug/forkvm"),
                PathBuf::from("/w/target/release/forkvm"),
            ]
        );
    }

    #[test]
    fn candidates_release_not_repeated() {
        let exe = Path::new("/w/target/release/deps/boot-0123abcd");
        assert_eq!(
            forkvm_candidates(exe),
            [PathBuf::from("/w/target/release/forkvm")]
        );
    }

    #[test]
    fn candidates_from_binary_in_profile_dir() {
        let exe = Path::new("/w/target/x86_64-unknown-linux-gnu/debug/bench-cli");
        assert_eq!(
            forkvm_candidates(exe),
            [
                PathBuf::from("/w/target/x86_64-unknown-linux-gnu/debug/forkvm"),
                PathBuf::from("/w/target/x86_64-unknown-linux-gnu/release/forkvm"),
            ]
        );
    }

    #[test]
    fn candidates_degenerate_paths() {
        assert!(forkvm_candidates(Path::new("/")).is_empty());
        assert_eq!(
            forkvm_candidates(Path::new("/forkvm-bench")),
            [PathBuf::from("/forkvm")]
        );
    }

    #[test]
    fn forkvm_binary_is_a_file_named_forkvm() {
        if let Ok(binary) = forkvm_binary() {
            assert!(binary.is_file());
            assert_eq!(binary.file_name().unwrap(), "forkvm");
        }
    }

    #[test]
    fn spawn_reports_missing_binary() {
        let err = spawn_to_poweroff(Path::new("/nonexistent/forkvm"), "64M").unwrap_err();
        assert!(err.contains("/nonexistent/forkvm"), "{err}");
    }

    #[test]
    fn spawn_reports_failure_with_stderr() {
        // `sh --mem ...` fails and complains on stderr; no KVM needed.
        let err = spawn_to_poweroff(Path::new("/bin/sh"), "64M").unwrap_err();
        assert!(err.contains("failed"), "{err}");
    }
}
