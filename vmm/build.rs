//! Builds the guest kernel (with the user programs it embeds) and tells
//! the VMM where it is.
//!
//! The kernel needs code-generation flags that a crate cannot set for
//! itself (`-C no-redzone`: interrupts arrive on the kernel stack), so it is
//! built by a nested cargo with those flags, into its own target directory
//! (`target/guest`), always optimised: a debug kernel would distort every
//! measurement. The user programs (`guest/user`) are built first, with
//! ordinary flags, into `target/guest-user`; the kernel embeds them (see
//! guest/build.rs). Set FORKVM_GUEST_KERNEL to use a prebuilt kernel instead.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=FORKVM_GUEST_KERNEL");
    if let Ok(prebuilt) = env::var("FORKVM_GUEST_KERNEL") {
        println!("cargo:rustc-env=FORKVM_GUEST_KERNEL={prebuilt}");
        return;
    }

    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let workspace = manifest_dir
        .parent()
        .expect("vmm/ sits in the workspace")
        .to_path_buf();
    let target_dir = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"));
    let guest_target_dir = target_dir.join("guest");
    let user_target_dir = target_dir.join("guest-user");
    let triple = env::var("TARGET").expect("set by cargo");

    for watched in [
        "guest/src",
        "guest/abi",
        "guest/core",
        "guest/user",
        "guest/lineedit",
        "guest/Cargo.toml",
        "guest/build.rs",
        "guest/linker.ld",
        "Cargo.lock",
    ] {
        println!(
            "cargo:rerun-if-changed={}",
            workspace.join(watched).display()
        );
    }

    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let programs = build_user_programs(&cargo, &workspace, &triple, &user_target_dir);
    // The same static executables run on the host's Linux: tests compare
    // a program's output there and in the guest (tests/badptr.rs).
    if let Some(dir) = programs.first().and_then(|(_, path)| path.parent()) {
        println!("cargo:rustc-env=FORKVM_USER_PROGRAMS_DIR={}", dir.display());
    }
    let program_list: Vec<String> = programs
        .iter()
        .map(|(name, path)| format!("{name}={}", path.display()))
        .collect();

    let status = Command::new(&cargo)
        .current_dir(&workspace)
        .args([
            "build",
            "--release",
            "--package",
            "guest",
            "--bin",
            "guest",
            "--target",
            &triple,
        ])
        .arg("--target-dir")
        .arg(&guest_target_dir)
        // Our flags only, not the outer build's.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .env("CARGO_ENCODED_RUSTFLAGS", "-Cno-redzone=yes")
        .env("FORKVM_USER_PROGRAMS", program_list.join(";"))
        .status()
        .expect("cannot run cargo to build the guest kernel");
    if !status.success() {
        panic!("building the guest kernel failed ({status}); the errors are above");
    }

    let kernel = guest_target_dir.join(&triple).join("release").join("guest");
    assert!(
        Path::new(&kernel).exists(),
        "guest kernel missing at {}",
        kernel.display()
    );
    println!("cargo:rustc-env=FORKVM_GUEST_KERNEL={}", kernel.display());
}

/// Builds the user programs and returns (name, path) of each executable.
fn build_user_programs(
    cargo: &str,
    workspace: &Path,
    triple: &str,
    target_dir: &Path,
) -> Vec<(String, PathBuf)> {
    let output = Command::new(cargo)
        .current_dir(workspace)
        .args([
            "build",
            "--release",
            "--package",
            "forkvm-user",
            "--bins",
            "--target",
            triple,
        ])
        .args(["--message-format", "json-render-diagnostics"])
        .arg("--target-dir")
        .arg(target_dir)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .env("CARGO_ENCODED_RUSTFLAGS", "")
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("cannot run cargo to build the user programs");
    if !output.status.success() {
        panic!(
            "building the user programs failed ({}); the errors are above",
            output.status
        );
    }
    let mut programs = Vec::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if message["reason"] != "compiler-artifact" {
            continue;
        }
        if let (Some(name), Some(path)) = (
            message["target"]["name"].as_str(),
            message["executable"].as_str(),
        ) {
            programs.push((name.to_string(), PathBuf::from(path)));
        }
    }
    assert!(
        !programs.is_empty(),
        "the user programs build produced no executables"
    );
    programs.sort();
    programs
}
