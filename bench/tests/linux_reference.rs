//! `forkbench compare --reference linux-vm`: Linux booted by forkvm's VMM
//! serves the same harness requests as forkvm's guest.
//!
//! On a PVM host Linux cannot run natively: forkbench refuses in one line
//! (exit 1) before measuring anything. On a VMX/SVM host (the nested HVM
//! run on our machines, `tests/hvm_nested.rs`, where this binary runs in
//! QEMU's TCG) it boots the Debian kernel that `provision.sh` cached and
//! checks that every operation has a result on both guests. Timings under
//! TCG mean nothing; only that each request was served is checked.

use std::process::Command;

use bench::report::{Outcome, Report, Target};

fn on_pvm() -> bool {
    vmm::platform::resolve(vmm::config::PlatformChoice::Auto) == forkvm_abi::Platform::PvmNative
}

#[test]
fn compare_with_a_linux_guest() {
    if on_pvm() {
        let out = Command::new(env!("CARGO_BIN_EXE_forkbench"))
            .args(["compare", "--reference", "linux-vm", "--iters", "20"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains("this host's KVM is PVM"), "{stderr}");
        assert!(out.stdout.is_empty(), "nothing measured");
        return;
    }
    let nested = std::env::var_os("FORKVM_UNDER_QEMU_TCG").is_some();
    let exe = std::path::PathBuf::from(env!("CARGO_BIN_EXE_forkbench"));
    let cached = exe
        .ancestors()
        .any(|d| d.join("tmp/hvm-nested/cache/linux/vmlinuz").is_file());
    if !cached && !nested {
        eprintln!(
            "no cached Linux kernel: run `bash tests/hvm_nested/provision.sh \
             target/tmp/hvm-nested/cache` to test the Linux reference here"
        );
        return;
    }
    let json = std::env::temp_dir().join(format!("linuxref-{}.json", std::process::id()));
    // Progress straight to the console (a nested run that stops shows
    // where); Linux's whole log ends any error about its guest.
    let out = Command::new(&exe)
        .args(["compare", "--reference", "linux-vm"])
        .args(["--iters", "20", "--warmup", "2"])
        .args(["--linux-append", "loglevel=7"])
        .args(["--format", "json", "--output"])
        .arg(&json)
        .stderr(std::process::Stdio::inherit())
        .output()
        .unwrap();
    let stderr = "(forkbench's messages are above)";
    let text = std::fs::read_to_string(&json).unwrap_or_default();
    let _ = std::fs::remove_file(&json);
    assert_eq!(out.status.code(), Some(0), "{stderr}\n{text}");
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    bench::report::check_json(&value).unwrap();
    let report: Report = bench::report::parse_report(&text).unwrap();
    let reference = report
        .metadata
        .reference
        .as_ref()
        .expect("metadata.reference");
    assert_eq!(reference.kind, "linux-vm");
    assert!(
        reference.kernel_version.starts_with("Linux "),
        "{reference:?}"
    );
    assert!(
        reference.command_line.starts_with("console=ttyS0 "),
        "{reference:?}"
    );
    // Every operation `all` runs (not those that need `--initrd`).
    let ops = bench::forkbench::select("all").unwrap();
    for op in ops.into_iter().map(bench::host_linux::op_name) {
        for target in [Target::Guest, Target::LinuxGuest] {
            let entries: Vec<_> = report
                .entries
                .iter()
                .filter(|e| e.op == op && e.target == target)
                .collect();
            assert!(
                !entries.is_empty(),
                "{op} on {target:?}: no entry\n{stderr}"
            );
            for e in entries {
                let served = match &e.outcome {
                    Outcome::Ok { .. } => true,
                    // Only the op that needs forkvm's sysctl.
                    Outcome::NotApplicable { .. } => {
                        target == Target::LinuxGuest && op == "max_threads_eagain"
                    }
                    Outcome::Error { .. } => false,
                };
                assert!(served, "{op} on {target:?}: {:?}\n{stderr}", e.outcome);
            }
        }
    }
}
