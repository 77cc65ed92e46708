//! Bad input: every mistake gets one clear line on stderr and a non-zero
//! status, and nothing hangs.

mod common;

use std::io::Write;

use common::{code, forkvm, stderr};

#[test]
fn missing_kernel_file() {
    let out = forkvm()
        .args(["--kernel", "/nonexistent/kernel", "-c", "echo"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("cannot read kernel image /nonexistent/kernel"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn kernel_that_is_not_an_elf() {
    let dir = std::env::temp_dir().join(format!("forkvm-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("not-a-kernel");
    std::fs::File::create(&path)
        .unwrap()
        .write_all(b"#!/bin/sh\necho this is not a kernel\n")
        .unwrap();
    let out = forkvm()
        .arg("--kernel")
        .arg(&path)
        .args(["-c", "echo"])
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("is not a loadable x86-64 ELF"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn kernel_that_is_a_directory() {
    let out = forkvm()
        .args(["--kernel", "/", "-c", "echo"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("it is a directory"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn elf_that_is_not_a_forkvm_kernel() {
    // A host program is an x86-64 ELF, but not one the VMM can boot.
    let out = forkvm()
        .args(["--kernel", common::FORKVM, "-c", "echo"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not a loadable x86-64 ELF"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn memory_sizes_that_are_too_small_or_unparsable() {
    for (arg, message) in [
        ("1K", "at least 16 MiB"),
        ("lots", "expected a number"),
        ("12Q", "unknown unit"),
        ("99999999999G", "too large"),
        ("1000T", "unknown unit"),
        ("64G", "at most 63 GiB"),
    ] {
        let out = forkvm()
            .args(["--mem", arg, "-c", "echo"])
            .output()
            .unwrap();
        assert_eq!(code(&out), 2, "--mem {arg}");
        assert!(
            stderr(&out).contains(message),
            "--mem {arg}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn missing_kvm_device() {
    let out = forkvm()
        .args(["--kvm-device", "/nonexistent/kvm", "-c", "echo"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 1);
    let err = stderr(&out);
    assert!(
        err.contains("/nonexistent/kvm does not exist: forkvm needs Linux KVM"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "one clear line: {err}");
}

#[test]
fn device_that_is_not_kvm() {
    let out = forkvm()
        .args(["--kvm-device", "/dev/null", "-c", "echo"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("/dev/null is not a KVM device"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn unknown_flags_and_bad_values() {
    for args in [
        &["--bogus"][..],
        &["--timeout", "soon"],
        &["--timeout", "-1"],
        &["--platform", "xen"],
    ] {
        let out = forkvm().args(args).output().unwrap();
        assert_eq!(code(&out), 2, "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("error:"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn script_too_long_for_the_boot_area() {
    // Longer than one command-line argument may be, so through the library.
    let mut config = vmm::VmConfig::new(vmm::BUILT_KERNEL.into());
    config.script = Some("echo x;".repeat(100_000));
    let err = vmm::run(&config).expect_err("a 700 KB script does not fit");
    assert!(
        matches!(err, vmm::Error::ScriptTooLong { len: 700_000, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("at most"), "{err}");
}

#[test]
fn help_documents_the_escape_key_and_exit_statuses() {
    let out = forkvm().arg("--help").output().unwrap();
    assert_eq!(code(&out), 0);
    let text = common::stdout(&out);
    assert!(text.contains("Ctrl-]"), "{text}");
    assert!(text.contains("124 timeout"), "{text}");
}

/// A Linux bzImage on the PVM host: one line saying why it cannot run
/// there, exit 1, before any VM exists (the file only needs the setup
/// header's magic to be taken for a bzImage). On a VMX/SVM host the real
/// boot is tested by bench's `linux_reference` (run nested on PVM hosts).
#[test]
fn a_linux_kernel_is_refused_on_the_pvm_host() {
    if vmm::platform::resolve(vmm::config::PlatformChoice::Auto) != forkvm_abi::Platform::PvmNative
    {
        eprintln!("not a PVM host: nothing to refuse");
        return;
    }
    let dir = std::env::temp_dir().join(format!("forkvm-bz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bzImage");
    let mut image = vec![0u8; 0x1000];
    image[0x202..0x206].copy_from_slice(b"HdrS");
    std::fs::write(&path, image).unwrap();
    let out = forkvm()
        .arg("--kernel")
        .arg(&path)
        .args(["--append", "quiet"])
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let text = stderr(&out);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(
        text.starts_with("forkvm: cannot boot the Linux kernel: this host's KVM is PVM"),
        "{text}"
    );
}
